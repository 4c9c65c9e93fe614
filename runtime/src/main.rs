//! The keel-runtime binary: parse runc's flags, call the library, print, and
//! exit with runc's codes (1 on error, the container's status for a
//! foreground `run`/`exec`).

mod cli;

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;

use cli::{Cli, Command, LogFormatArg, TableFormat};
use keel_runtime::commands::{
    create, delete, events, exec, features, kill, list, pause, ps, run, spec, start, state, update,
};
use keel_runtime::log::LogFormat;
use keel_runtime::GlobalOpts;

fn print(s: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())
        .and_then(|_| out.flush())
        .context("writing to stdout")
}

fn version() -> String {
    format!(
        "keel-runtime version {}\nspec: {}\nlibcontainer: 0.7.0\nseccomp: seccompiler 0.5.0\n",
        env!("CARGO_PKG_VERSION"),
        keel_runtime::commands::features::features()["ociVersionMax"]
            .as_str()
            .unwrap_or("1")
    )
}

fn dispatch(cli: Cli) -> Result<i32> {
    if cli.version {
        print(&version())?;
        return Ok(0);
    }
    let Some(command) = cli.command else {
        bail!("no command given; see keel-runtime --help");
    };
    if cli.systemd_cgroup {
        bail!("--systemd-cgroup: the systemd cgroup driver is not supported by keel-runtime; use the cgroupfs driver (the default)");
    }
    if let Some(r) = &cli.rootless {
        if !matches!(r.as_str(), "true" | "false" | "auto") {
            bail!("--rootless \"{r}\": want true, false or auto");
        }
    }
    let needs_root = !matches!(command, Command::Spec { .. } | Command::Features);
    if needs_root && !nix::unistd::geteuid().is_root() {
        bail!("keel-runtime must run as root: rootless containers are not supported");
    }
    let g = GlobalOpts {
        root: cli.root,
        systemd_cgroup: false,
    };
    match command {
        Command::Create(a) => create::create(&g, &create_opts(a))?,
        Command::Start { id } => start::start(&g, &id)?,
        Command::State { id } => print(&(state::state(&g, &id)? + "\n"))?,
        Command::Kill { all, id, signal } => kill::kill(&g, &id, &signal, all)?,
        Command::Delete { force, id } => delete::delete(&g, &id, force)?,
        Command::Run {
            create,
            detach,
            no_subreaper,
            keep,
        } => {
            return Ok(run::run(
                &g,
                &run::RunOpts {
                    create: create_opts(create),
                    detach,
                    no_subreaper,
                    keep,
                },
            )?)
        }
        Command::Exec(a) => {
            let (id, args) = (a.id, a.command);
            return Ok(exec::exec(
                &g,
                &exec::ExecOpts {
                    id,
                    args,
                    process: a.process,
                    tty: a.tty,
                    detach: a.detach,
                    pid_file: a.pid_file,
                    console_socket: a.console_socket,
                    env: a.env,
                    cwd: a.cwd,
                    user: a.user,
                    additional_gids: a.additional_gids,
                    caps: a.cap,
                    no_new_privs: a.no_new_privs,
                    preserve_fds: a.preserve_fds,
                    ignore_paused: a.ignore_paused,
                    cgroup: a.cgroup,
                    apparmor: a.apparmor,
                    process_label: a.process_label,
                },
            )?);
        }
        Command::Ps {
            format,
            id,
            ps_args,
        } => match format {
            TableFormat::Json => print(&ps::ps_json(&g, &id)?)?,
            TableFormat::Table => print(&ps::ps_table(&g, &id, &ps_args)?)?,
        },
        Command::List { format, quiet } => {
            let f = match format {
                TableFormat::Json => list::ListFormat::Json,
                TableFormat::Table => list::ListFormat::Table,
            };
            print(&list::list(&g, f, quiet)?)?
        }
        Command::Pause { id } => pause::pause(&g, &id)?,
        Command::Resume { id } => pause::resume(&g, &id)?,
        Command::Events {
            interval,
            stats,
            id,
        } => events::events(&g, &id, events::parse_interval(&interval)?, stats)?,
        Command::Spec { bundle, rootless } => spec::spec(&bundle, rootless)?,
        Command::Features => print(&(serde_json::to_string_pretty(&features::features())? + "\n"))?,
        Command::Update(a) => {
            if a.l3_cache_schema.is_some() || a.mem_bw_schema.is_some() {
                bail!(
                    "--l3-cache-schema/--mem-bw-schema: Intel RDT is not supported by keel-runtime"
                );
            }
            update::update(
                &g,
                &a.id,
                &update::UpdateOpts {
                    resources: a.resources,
                    blkio_weight: a.blkio_weight,
                    cpu_period: a.cpu_period,
                    cpu_quota: a.cpu_quota,
                    cpu_share: a.cpu_share,
                    cpu_rt_period: a.cpu_rt_period,
                    cpu_rt_runtime: a.cpu_rt_runtime,
                    cpuset_cpus: a.cpuset_cpus,
                    cpuset_mems: a.cpuset_mems,
                    memory: a.memory,
                    memory_reservation: a.memory_reservation,
                    memory_swap: a.memory_swap,
                    pids_limit: a.pids_limit,
                },
            )?
        }
    }
    Ok(0)
}

fn create_opts(a: cli::CreateArgs) -> create::CreateOpts {
    create::CreateOpts {
        id: a.id,
        bundle: a.bundle,
        console_socket: a.console_socket,
        pid_file: a.pid_file,
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match cli.log_format {
        LogFormatArg::Text => LogFormat::Text,
        LogFormatArg::Json => LogFormat::Json,
    };
    let log_to_file = cli.log.is_some();
    if let Err(e) = keel_runtime::log::init(cli.log.as_deref(), format, cli.debug) {
        eprintln!("--log: {e}");
        return ExitCode::from(1);
    }
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            // Our errors already carry their causes in their own text.
            let msg = e.to_string();
            // As runc: the error goes to the log (where containerd and
            // podman read it) and, for people, to stderr.
            tracing::error!("{msg}");
            if log_to_file {
                eprintln!("{msg}");
            }
            ExitCode::from(1)
        }
    }
}
