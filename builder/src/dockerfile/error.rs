use std::path::PathBuf;

use thiserror::Error;

/// Everything that makes a Dockerfile unusable; each names `file:line`.
#[derive(Debug, Error)]
pub enum DockerfileError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    Directive {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}:{line}: unknown instruction: {name}{}", path.display(),
        suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    UnknownInstruction {
        path: PathBuf,
        line: usize,
        name: String,
        suggestion: Option<String>,
    },
    #[error("{}:{line}: {instruction} requires {expected}", path.display())]
    MissingArguments {
        path: PathBuf,
        line: usize,
        instruction: &'static str,
        expected: &'static str,
    },
    #[error("{}:{line}: {instruction}: {message}", path.display())]
    InvalidArguments {
        path: PathBuf,
        line: usize,
        instruction: &'static str,
        message: String,
    },
    #[error("{}:{line}: {instruction}: unknown flag: --{flag}", path.display())]
    UnknownFlag {
        path: PathBuf,
        line: usize,
        instruction: &'static str,
        flag: String,
    },
    #[error("{}:{line}: {instruction}: flag --{flag}: {message}", path.display())]
    BadFlag {
        path: PathBuf,
        line: usize,
        instruction: &'static str,
        flag: String,
        message: String,
    },
    #[error("{}:{line}: SHELL requires the arguments in JSON form, e.g. [\"/bin/sh\", \"-c\"], not {input:?}", path.display())]
    ShellNotJson {
        path: PathBuf,
        line: usize,
        input: String,
    },
    #[error("{}:{line}: {instruction} isn't allowed as an ONBUILD trigger", path.display())]
    OnbuildForbidden {
        path: PathBuf,
        line: usize,
        instruction: String,
    },
    #[error("{}:{line}: {instruction} before the first FROM (only ARG may come before it)", path.display())]
    BeforeFrom {
        path: PathBuf,
        line: usize,
        instruction: &'static str,
    },
    #[error("{}:{line}: unterminated heredoc <<{name}", path.display())]
    UnterminatedHeredoc {
        path: PathBuf,
        line: usize,
        name: String,
    },
    #[error("{}:{line}: invalid name for build stage: {name:?}, it must start with a letter and contain only letters, digits, '-', '_' and '.'", path.display())]
    InvalidStageName {
        path: PathBuf,
        line: usize,
        name: String,
    },
    #[error("{}:{line}: duplicate build stage name {name:?} (first used on line {first_line})", path.display())]
    DuplicateStageName {
        path: PathBuf,
        line: usize,
        name: String,
        first_line: usize,
    },
    #[error("{}: no build stages (the file has no FROM instruction)", path.display())]
    NoStages { path: PathBuf },
}
