//! runc's command line, flag for flag, so that containerd, dockerd, podman
//! and people used to runc can drive keel-runtime unchanged.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "keel-runtime",
    about = "Open Container Initiative runtime (runc-compatible)",
    disable_version_flag = true
)]
pub struct Cli {
    /// Root directory for storage of container state (this should be located in tmpfs)
    #[arg(long, global = true, default_value = "/run/keel")]
    pub root: PathBuf,
    /// Set the log file to write runtime logs to (default is stderr)
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Set the log format ('text' (default), or 'json')
    #[arg(long = "log-format", global = true, value_enum, default_value_t = LogFormatArg::Text)]
    pub log_format: LogFormatArg,
    /// Enable debug logging
    #[arg(long, global = true)]
    pub debug: bool,
    /// Enable systemd cgroup support (not supported: refused with an error)
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Ignore cgroup permission errors ('true', 'false', or 'auto')
    #[arg(long)]
    pub rootless: Option<String>,
    /// Path to the criu binary (accepted for compatibility; checkpointing is not supported)
    #[arg(long, global = true, hide = true)]
    pub criu: Option<PathBuf>,
    /// Print the version
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormatArg {
    Text,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableFormat {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Path to the root of the bundle directory, defaults to the current directory
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Specify the file to write the process id to
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Do not use pivot root to jail process inside rootfs
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring for the container
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total)
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: i32,
    /// The container id
    pub id: String,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container
    Create(CreateArgs),
    /// Execute the user defined process in a created container
    Start { id: String },
    /// Output the state of a container
    State { id: String },
    /// Kill sends the specified signal (default: SIGTERM) to the container's init process
    Kill {
        /// Send the specified signal to all processes inside the container
        #[arg(short = 'a', long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete any resources held by the container
    Delete {
        /// Forcibly delete the container if it is still running (uses SIGKILL)
        #[arg(short = 'f', long)]
        force: bool,
        id: String,
    },
    /// Create and run a container
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Detach from the container's process
        #[arg(short = 'd', long)]
        detach: bool,
        /// Disable the use of the subreaper used to reap reparented processes
        #[arg(long = "no-subreaper")]
        no_subreaper: bool,
        /// Do not delete the container after it exits
        #[arg(long)]
        keep: bool,
    },
    /// Execute new process inside the container
    Exec(ExecArgs),
    /// ps displays the processes running inside a container
    Ps {
        /// Select one of: table or json
        #[arg(short = 'f', long, value_enum, default_value_t = TableFormat::Table)]
        format: TableFormat,
        id: String,
        /// Options passed to ps(1)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Lists containers started by keel-runtime with the given root
    List {
        /// Select one of: table or json
        #[arg(short = 'f', long, value_enum, default_value_t = TableFormat::Table)]
        format: TableFormat,
        /// Display only container IDs
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Pause suspends all processes inside the container
    Pause { id: String },
    /// Resumes all processes that have been previously paused
    Resume { id: String },
    /// Display container events such as OOM notifications and cpu, memory, and IO usage statistics
    Events {
        /// Set the stats collection interval
        #[arg(long, default_value = "5s")]
        interval: String,
        /// Display the container's stats then exit
        #[arg(long)]
        stats: bool,
        id: String,
    },
    /// Create a new specification file
    Spec {
        /// Path to the root of the bundle directory
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
        /// Generate a configuration for a rootless container
        #[arg(long = "rootless", id = "spec_rootless")]
        rootless: bool,
    },
    /// Show the enabled features
    Features,
    /// Update container resource constraints
    Update(UpdateArgs),
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Current working directory in the container
    #[arg(long)]
    pub cwd: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// UID (format: <uid>[:<gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Additional gids
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Path to the process.json
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    /// Detach from the container's process
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Specify the file to write the process id to
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Set the asm process label for the process commonly used with selinux
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// Set the apparmor profile for the process
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Set the no new privileges value for the process
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Add a capability to the bounding set for the process
    #[arg(short = 'c', long = "cap")]
    pub cap: Vec<String>,
    /// Pass N additional file descriptors to the container
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: i32,
    /// Run the process in an (existing) sub-cgroup
    #[arg(long)]
    pub cgroup: Option<String>,
    /// Allow exec in a paused container
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    pub id: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Path to a file containing the resources to update or '-' to read from the standard input
    #[arg(short = 'r', long)]
    pub resources: Option<PathBuf>,
    /// Specifies per cgroup weight, range is from 10 to 1000
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period to be used for hardcapping (in usecs)
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CPU CFS hardcap limit (in usecs)
    #[arg(long = "cpu-quota", allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight vs. other containers)
    #[arg(long = "cpu-share")]
    pub cpu_share: Option<u64>,
    /// CPU realtime period to be used for hardcapping (in usecs)
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    /// CPU realtime hardcap limit (in usecs)
    #[arg(long = "cpu-rt-runtime", allow_negative_numbers = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPU(s) to use
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory node(s) to use
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Memory limit (in bytes)
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory reservation or soft_limit (in bytes)
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Total memory usage (memory + swap); set '-1' to enable unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Maximum number of pids allowed in the container
    #[arg(long = "pids-limit", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Kernel memory limit (ignored: removed from kernels and from runc)
    #[arg(long = "kernel-memory", hide = true)]
    pub kernel_memory: Option<String>,
    /// The string of Intel RDT/CAT L3 cache schema (not supported)
    #[arg(long = "l3-cache-schema")]
    pub l3_cache_schema: Option<String>,
    /// The string of Intel RDT/MBA memory bandwidth schema (not supported)
    #[arg(long = "mem-bw-schema")]
    pub mem_bw_schema: Option<String>,
    pub id: String,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn runc_style_invocations_parse() {
        let c = Cli::try_parse_from([
            "keel-runtime",
            "--root",
            "/r",
            "--log",
            "/l.json",
            "--log-format",
            "json",
            "create",
            "--bundle",
            "/b",
            "--pid-file",
            "/p",
            "--console-socket",
            "/s",
            "id1",
        ])
        .unwrap();
        assert_eq!(c.log_format, LogFormatArg::Json);
        assert!(matches!(c.command, Some(Command::Create(ref a)) if a.id == "id1"));
        let c = Cli::try_parse_from(["keel-runtime", "kill", "--all", "id1", "9"]).unwrap();
        assert!(
            matches!(c.command, Some(Command::Kill { all: true, ref signal, .. }) if signal == "9")
        );
        let c = Cli::try_parse_from(["keel-runtime", "exec", "-t", "id1", "sh", "-c", "ls -l"])
            .unwrap();
        assert!(
            matches!(c.command, Some(Command::Exec(ref a)) if a.command == ["sh", "-c", "ls -l"])
        );
        let c = Cli::try_parse_from(["keel-runtime", "--rootless", "true", "spec", "--rootless"])
            .unwrap();
        assert_eq!(c.rootless.as_deref(), Some("true"));
        let c = Cli::try_parse_from([
            "keel-runtime",
            "update",
            "--memory",
            "-1",
            "--pids-limit",
            "-1",
            "id1",
        ])
        .unwrap();
        assert!(
            matches!(c.command, Some(Command::Update(ref a)) if a.memory.as_deref() == Some("-1"))
        );
    }
}
