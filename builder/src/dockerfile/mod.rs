//! Dockerfile parsing: lexing (directives, continuations, heredocs), instructions with file:line, variable substitution.
//!
//! The model keeps every value as written (quotes included, nothing
//! expanded): what `$VAR` means depends on the ENV and ARG values in force at
//! that step, so the builder expands with [`substitute`] as it goes, for the
//! instructions where [`Kind::expands_variables`] says Docker does.

mod error;
mod lex;
mod parse;
pub mod substitute;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::DockerfileError;
pub use substitute::{expand_heredoc, expand_word, expand_words, SubstError, Vars};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub path: PathBuf,
    /// `\` unless a `# escape=` directive chose `` ` ``.
    pub escape: char,
    /// The `# syntax=` directive, kept for information; keel has no frontends.
    pub syntax: Option<String>,
    /// ARGs before the first FROM: usable in FROM lines, and in a stage only
    /// after an `ARG NAME` without a default re-declares them.
    pub global_args: Vec<ArgDecl>,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub index: usize,
    /// The `AS name`, lowercased (stage names are case-insensitive in Docker).
    pub name: Option<String>,
    /// The image as written, e.g. `${BASE}`; expanded with the global ARGs only.
    pub base: String,
    /// `--platform=` as written (may contain `$BUILDPLATFORM` etc.).
    pub platform: Option<String>,
    /// Line of the FROM.
    pub line: usize,
    /// The instructions after the FROM, up to the next FROM.
    pub instructions: Vec<Instruction>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line of the instruction's first line.
    pub line: usize,
    /// As written with continuation lines joined (history and cache keys).
    /// Heredoc bodies are not in it, so a cache key must also cover
    /// [`Instruction::heredocs`].
    pub text: String,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Run(Run),
    Cmd(CommandLine),
    Entrypoint(CommandLine),
    Copy(Copy),
    Add(Copy),
    Workdir(String),
    /// Keys and values as written; both are expanded (Docker expands keys too).
    Env(Vec<(String, String)>),
    Arg(Vec<ArgDecl>),
    /// Keys and values as written; both are expanded.
    Label(Vec<(String, String)>),
    Expose(Vec<String>),
    Volume(Vec<String>),
    User(String),
    Shell(Vec<String>),
    StopSignal(String),
    Healthcheck(Healthcheck),
    /// The trigger, stored unexpanded in the image and run by a child build.
    Onbuild(Box<Instruction>),
    Maintainer(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    /// JSON array form: run directly, no shell.
    Exec(Vec<String>),
    /// Anything else: run with the stage's SHELL (default `/bin/sh -c`).
    Shell(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// For a heredoc RUN this is the line as written, e.g. `<<EOF` or
    /// `python3 <<EOF`; the bodies are in `heredocs`.
    pub command: CommandLine,
    /// `--network=` as written.
    pub network: Option<String>,
    /// Each `--mount=` as written, in order.
    pub mounts: Vec<String>,
    /// `--security=` as written.
    pub security: Option<String>,
    pub heredocs: Vec<Heredoc>,
}

/// COPY and ADD. Flags ADD does not have (`--from`, `--parents`) are
/// rejected while parsing ADD, and those COPY lacks (`--checksum`,
/// `--keep-git-dir`) while parsing COPY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// Paths (or URLs for ADD) as written; heredoc sources are in `heredocs`.
    pub sources: Vec<String>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<String>,
    pub checksum: Option<String>,
    pub keep_git_dir: bool,
    /// Inline files: each is copied to `dest` (or `dest/<name>` when dest is
    /// a directory), its name being the heredoc delimiter.
    pub heredocs: Vec<Heredoc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter with quotes removed, e.g. `EOF` for `<<"EOF"`.
    pub name: String,
    /// The body lines with their newlines, without the terminator line;
    /// leading tabs already removed when `chomp`.
    pub content: String,
    /// False when the delimiter was quoted: the body is used literally.
    /// Otherwise COPY/ADD expand it with [`expand_heredoc`]; for RUN the
    /// shell does the expanding.
    pub expand: bool,
    /// `<<-`: leading tabs were stripped from the body and terminator.
    pub chomp: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    /// As written; Docker expands it with the ARGs and ENVs before it.
    pub default: Option<String>,
    /// Line of the ARG instruction (global ARGs have no [`Instruction`]).
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    /// None for `HEALTHCHECK NONE`; else `["CMD", args..]` (exec form) or
    /// `["CMD-SHELL", command]`, as in the image config.
    pub test: Option<Vec<String>>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub start_period: Option<Duration>,
    pub start_interval: Option<Duration>,
    pub retries: Option<u32>,
}

impl Kind {
    /// Whether Docker expands `$VAR` in this instruction's arguments when it
    /// runs: ADD, COPY (sources, dest and the `--from`/`--chown`/`--chmod`
    /// flags), ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR, and
    /// ARG defaults. FROM (not a `Kind`: [`Stage::base`]) expands too, with
    /// the global ARGs only.
    ///
    /// Not expanded: RUN, CMD, ENTRYPOINT and HEALTHCHECK (their shell does
    /// it at run time, the exec form never), SHELL, MAINTAINER, and ONBUILD,
    /// whose trigger is stored as written and expanded by the child build
    /// when it runs (if the wrapped instruction is one of the above). RUN's
    /// `--mount`/`--network` flag values are the exception: Docker expands
    /// them.
    pub fn expands_variables(&self) -> bool {
        matches!(
            self,
            Kind::Add(_)
                | Kind::Copy(_)
                | Kind::Env(_)
                | Kind::Expose(_)
                | Kind::Label(_)
                | Kind::StopSignal(_)
                | Kind::User(_)
                | Kind::Volume(_)
                | Kind::Workdir(_)
                | Kind::Arg(_)
        )
    }

    /// The instruction's keyword, upper case.
    pub fn keyword(&self) -> &'static str {
        match self {
            Kind::Run(_) => "RUN",
            Kind::Cmd(_) => "CMD",
            Kind::Entrypoint(_) => "ENTRYPOINT",
            Kind::Copy(_) => "COPY",
            Kind::Add(_) => "ADD",
            Kind::Workdir(_) => "WORKDIR",
            Kind::Env(_) => "ENV",
            Kind::Arg(_) => "ARG",
            Kind::Label(_) => "LABEL",
            Kind::Expose(_) => "EXPOSE",
            Kind::Volume(_) => "VOLUME",
            Kind::User(_) => "USER",
            Kind::Shell(_) => "SHELL",
            Kind::StopSignal(_) => "STOPSIGNAL",
            Kind::Healthcheck(_) => "HEALTHCHECK",
            Kind::Onbuild(_) => "ONBUILD",
            Kind::Maintainer(_) => "MAINTAINER",
        }
    }
}

impl Instruction {
    /// The heredocs of a RUN, COPY or ADD (empty for anything else).
    pub fn heredocs(&self) -> &[Heredoc] {
        match &self.kind {
            Kind::Run(r) => &r.heredocs,
            Kind::Copy(c) | Kind::Add(c) => &c.heredocs,
            _ => &[],
        }
    }
}

impl Dockerfile {
    /// The stage a `--from=` or `--target` names: a stage name
    /// (case-insensitive) or an index.
    pub fn stage(&self, name_or_index: &str) -> Option<&Stage> {
        let lower = name_or_index.to_ascii_lowercase();
        self.stages
            .iter()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| {
                name_or_index
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| self.stages.get(i))
            })
    }
}

/// Parses a Dockerfile's text; `path` is only used in errors and kept in
/// the result.
pub fn parse(path: &Path, text: &str) -> Result<Dockerfile, DockerfileError> {
    parse::parse_dockerfile(path, text)
}

pub fn parse_file(path: &Path) -> Result<Dockerfile, DockerfileError> {
    let text = std::fs::read_to_string(path).map_err(|source| DockerfileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}
