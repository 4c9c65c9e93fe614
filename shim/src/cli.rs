//! keel-shim's command line: docker's verbs and flag names.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "keel-shim",
    version,
    about = "Run containers from keel-build images: attached, detached or interactive, with logs, attach and exit status"
)]
pub struct Cli {
    /// Container data (bundles with their writable layers, logs, metadata)
    #[arg(long, global = true, default_value = keel_shim::container::DEFAULT_ROOT)]
    pub root: PathBuf,
    /// Live state (supervisor sockets and pids, the runtime's state)
    #[arg(long = "run-dir", global = true, default_value = keel_shim::container::DEFAULT_RUN_DIR)]
    pub run_dir: PathBuf,
    /// keel-build's image store
    #[arg(long, global = true, default_value = "/var/lib/keel")]
    pub store: PathBuf,
    /// The OCI runtime (runc-compatible CLI) that runs containers
    #[arg(long, global = true, default_value = "keel-runtime")]
    pub runtime: PathBuf,
    /// Log debug details to stderr
    #[arg(long, global = true)]
    pub debug: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkArg {
    Host,
    None,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables (K=V, or K to take it from this environment)
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read environment variables from a file
    #[arg(long = "env-file")]
    pub env_file: Vec<PathBuf>,
    /// Bind mount a volume (SRC:DST[:ro|rw])
    #[arg(short = 'v', long = "volume")]
    pub volumes: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Log driver options (max-size=N[k|m|g], max-file=N)
    #[arg(long = "log-opt")]
    pub log_opts: Vec<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Network: the host's, or none (loopback only)
    #[arg(long, value_enum, default_value_t = NetworkArg::Host)]
    pub network: NetworkArg,
    /// Print help (`-h` is --hostname, as in docker)
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Run an existing OCI bundle instead of an image
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    /// IMAGE [COMMAND [ARG...]] (or COMMAND [ARG...] with --bundle)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create and start a container
    #[command(disable_help_flag = true)]
    Run {
        /// Run in the background and print the container ID
        #[arg(short, long)]
        detach: bool,
        /// Key sequence for detaching (default ctrl-p,ctrl-q)
        #[arg(long = "detach-keys")]
        detach_keys: Option<String>,
        /// Proxy received signals to the process (non-TTY attached mode)
        #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set)]
        sig_proxy: bool,
        #[command(flatten)]
        create: CreateArgs,
    },
    /// Create a container without starting it
    #[command(disable_help_flag = true)]
    Create {
        #[command(flatten)]
        create: CreateArgs,
    },
    /// Start created or stopped containers
    Start {
        /// Attach STDOUT/STDERR and forward signals
        #[arg(short, long)]
        attach: bool,
        /// Attach container's STDIN
        #[arg(short, long)]
        interactive: bool,
        #[arg(long = "detach-keys")]
        detach_keys: Option<String>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// List containers
    Ps {
        /// Show all containers (default shows just running)
        #[arg(short, long)]
        all: bool,
        /// Only display container IDs
        #[arg(short, long)]
        quiet: bool,
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// Fetch the logs of a container
    Logs {
        #[arg(short, long)]
        follow: bool,
        #[arg(short, long)]
        timestamps: bool,
        /// Number of lines to show from the end of the logs ("all" for all)
        #[arg(short = 'n', long, default_value = "all")]
        tail: String,
        /// Show logs since a timestamp or relative time (e.g. 42m)
        #[arg(long)]
        since: Option<String>,
        /// Show logs before a timestamp or relative time
        #[arg(long)]
        until: Option<String>,
        container: String,
    },
    /// Attach local standard input, output, and error streams to a running container
    Attach {
        #[arg(long = "no-stdin")]
        no_stdin: bool,
        #[arg(long = "detach-keys")]
        detach_keys: Option<String>,
        #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set)]
        sig_proxy: bool,
        container: String,
    },
    /// Stop running containers: StopSignal, then SIGKILL after the timeout
    Stop {
        /// Seconds to wait before killing the container
        #[arg(short = 't', long = "time", default_value_t = 10)]
        time: u64,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Kill running containers
    Kill {
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Restart containers
    Restart {
        #[arg(short = 't', long = "time", default_value_t = 10)]
        time: u64,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove containers
    Rm {
        /// Force the removal of a running container (uses SIGKILL)
        #[arg(short, long)]
        force: bool,
        /// Accepted for docker compatibility (anonymous volumes live in the bundle)
        #[arg(short, long)]
        volumes: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Run a command in a running container
    Exec {
        #[arg(short, long)]
        interactive: bool,
        #[arg(short, long)]
        tty: bool,
        #[arg(short, long)]
        detach: bool,
        #[arg(short = 'e', long = "env")]
        env: Vec<String>,
        #[arg(short = 'w', long = "workdir")]
        workdir: Option<String>,
        #[arg(short = 'u', long = "user")]
        user: Option<String>,
        container: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// Block until containers stop, then print their exit codes
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Display detailed information on containers
    Inspect {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Copy files between a container and the local filesystem (CONTAINER:PATH on one side)
    Cp { src: String, dst: String },
    /// Create a new image from a container's changes
    Commit { container: String, image: String },
    /// The per-container supervisor (started by run/create/start)
    #[command(name = "__supervise", hide = true)]
    Supervise { id: String },
}
