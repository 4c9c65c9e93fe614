//! The keel-shim binary: docker's verbs over the keel_shim library. Exit
//! codes are docker's: the container's own for run/start -a/wait, 125 when
//! keel-shim itself fails (126/127 when the command cannot be run).

mod cli;

use std::process::ExitCode;

use clap::Parser;
use keel_shim::commands::{self, CreateRequest, ExecRequest, Network, Shim};
use keel_shim::container::Paths;

use cli::{Cli, Command, CreateArgs, NetworkArg};

fn create_request(a: CreateArgs) -> CreateRequest {
    let mut args = a.args.into_iter();
    let (image, command) = if a.bundle.is_some() {
        (None, args.collect())
    } else {
        (args.next(), args.collect())
    };
    CreateRequest {
        image,
        bundle: a.bundle,
        command,
        name: a.name,
        env: a.env,
        env_files: a.env_file,
        volumes: a.volumes,
        workdir: a.workdir,
        user: a.user,
        entrypoint: a.entrypoint,
        log_opts: a.log_opts,
        hostname: a.hostname,
        network: match a.network {
            NetworkArg::Host => Network::Host,
            NetworkArg::None => Network::None,
        },
        tty: a.tty,
        interactive: a.interactive,
        auto_remove: a.rm,
    }
}

fn dispatch(cli: Cli) -> commands::Result<i32> {
    let shim = Shim {
        paths: Paths::new(cli.root, cli.run_dir),
        store: cli.store,
        // Left as given when not found: the error then comes from the runtime
        // call, naming it.
        runtime: keel_runtime_client::locate(&cli.runtime).unwrap_or(cli.runtime),
    };
    match cli.command {
        // Forks and carries on in the child: nothing here may have
        // started a thread before it.
        Command::Supervise { id } => {
            std::process::exit(keel_shim::supervisor::main(&shim.paths, &id))
        }
        Command::Run {
            detach,
            detach_keys,
            sig_proxy,
            create,
        } => {
            let req = create_request(create);
            if req.image.is_none() && req.bundle.is_none() {
                return Err(commands::ShimError::Refused(
                    "\"run\" requires an image (or --bundle DIR)".into(),
                ));
            }
            commands::run(&shim, &req, detach, detach_keys.as_deref(), sig_proxy)
        }
        Command::Create { create } => {
            let meta = commands::create(&shim, &create_request(create))?;
            println!("{}", meta.id);
            Ok(0)
        }
        Command::Start {
            attach,
            interactive,
            detach_keys,
            containers,
        } => commands::start(
            &shim,
            &containers,
            attach,
            interactive,
            detach_keys.as_deref(),
        ),
        Command::Ps { all, quiet, format } => {
            commands::ps(&shim, all, quiet, format == cli::ListFormat::Json)
        }
        Command::Logs {
            follow,
            timestamps,
            tail,
            since,
            until,
            container,
        } => commands::logs(
            &shim,
            &container,
            follow,
            timestamps,
            &tail,
            since.as_deref(),
            until.as_deref(),
        ),
        Command::Attach {
            no_stdin,
            detach_keys,
            sig_proxy,
            container,
        } => commands::attach(
            &shim,
            &container,
            !no_stdin,
            detach_keys.as_deref(),
            sig_proxy,
        ),
        Command::Stop { time, containers } => commands::stop(&shim, &containers, time),
        Command::Kill { signal, containers } => commands::kill(&shim, &containers, &signal),
        Command::Restart { time, containers } => commands::restart(&shim, &containers, time),
        Command::Rm {
            force,
            volumes: _,
            containers,
        } => commands::remove(&shim, &containers, force),
        Command::Exec {
            interactive,
            tty,
            detach,
            env,
            workdir,
            user,
            container,
            command,
        } => commands::exec(
            &shim,
            &container,
            &ExecRequest {
                interactive,
                tty,
                detach,
                env,
                workdir,
                user,
                command,
            },
        ),
        Command::Wait { containers } => commands::wait(&shim, &containers),
        Command::Inspect { containers } => commands::inspect(&shim, &containers),
        Command::Cp { src, dst } => commands::cp(&shim, &src, &dst),
        Command::Commit { container, image } => commands::commit(&shim, &container, &image),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = if cli.debug { "debug" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEEL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("keel-shim: {e}");
            ExitCode::from(e.exit_code().clamp(0, 255) as u8)
        }
    }
}
