//! keel-build's command line, with docker's and buildah's flag names.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "keel-build",
    version,
    about = "Build OCI images from Dockerfiles into a local store, and turn them into runtime bundles"
)]
pub struct Cli {
    /// Image store directory
    #[arg(long, global = true, default_value = "/var/lib/keel")]
    pub root: PathBuf,
    /// Log debug details to stderr
    #[arg(long, global = true)]
    pub debug: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressArg {
    Auto,
    Plain,
    Quiet,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkArg {
    Host,
    None,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveFormat {
    DockerArchive,
    OciArchive,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build an image from a Dockerfile and a context directory
    Build(BuildArgs),
    /// List images
    Images {
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// Only show image ids
        #[arg(short, long)]
        quiet: bool,
    },
    /// Give an image another name
    Tag { source: String, target: String },
    /// Remove image names (and the image, once it has none)
    Rmi {
        #[arg(required = true)]
        images: Vec<String>,
        /// Accepted for docker compatibility; names are removed either way
        #[arg(short, long)]
        force: bool,
    },
    /// Show an image's manifest, config, layers and history as JSON
    Inspect { image: String },
    /// Show an image's history
    History {
        image: String,
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// Write images to an archive
    Save {
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long, value_enum, default_value_t = ArchiveFormat::DockerArchive)]
        format: ArchiveFormat,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Load images from a docker archive, an OCI archive or an OCI layout directory
    Load {
        #[arg(short, long)]
        input: PathBuf,
        /// Tag for an archive or layout entry that has no name
        #[arg(long)]
        tag: Option<String>,
    },
    /// Remove dangling images, unused layers and blobs
    Prune {
        /// Also drop the build cache
        #[arg(short, long)]
        all: bool,
    },
    /// Make a one-layer base image from a root filesystem directory
    Import { dir: PathBuf, name: String },
    /// Verify every blob's digest and every image's blobs and layers
    Check,
    /// Write an OCI runtime bundle (config.json + overlay rootfs) for an image
    Bundle {
        image: String,
        dir: PathBuf,
        /// A plain rootfs directory (a copy of the layers) instead of an overlay mount
        #[arg(long)]
        copy: bool,
        /// Command and arguments instead of the image's Cmd
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Unmount a bundle's overlay rootfs and remove the bundle
    Unbundle { dir: PathBuf },
}

#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// Name and optionally a tag (name:tag); may be repeated
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Dockerfile path (default: CONTEXT/Dockerfile)
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Set a build-time variable (K=V, or K to take it from the environment)
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Build up to this stage
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use the build cache
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// The OCI runtime that runs RUN steps
    #[arg(long, default_value = "keel-runtime")]
    pub runtime: PathBuf,
    /// Network for RUN steps
    #[arg(long, value_enum, default_value_t = NetworkArg::Host)]
    pub network: NetworkArg,
    /// Progress output
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    pub progress: ProgressArg,
    /// Print only the image id (same as --progress quiet)
    #[arg(short, long)]
    pub quiet: bool,
    /// Accepted for docker compatibility (linux/amd64 is what this host builds)
    #[arg(long)]
    pub platform: Option<String>,
    pub context: PathBuf,
}
