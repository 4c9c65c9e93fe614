//! The one error type of the build-context area: every variant names the
//! pattern, path or archive entry the user has to look at.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("{file}:{line}: invalid pattern {pattern:?}: {reason}")]
    IgnorePattern {
        file: PathBuf,
        line: usize,
        pattern: String,
        reason: String,
    },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("invalid source pattern {pattern:?}: {reason}")]
    BadPattern { pattern: String, reason: String },

    #[error("COPY failed: no source files were specified: {pattern:?} matches nothing{}", no_match_suffix(.in_context))]
    NoMatch { pattern: String, in_context: bool },

    #[error("{}", not_found_message(.pattern, .in_context))]
    NotFound { pattern: String, in_context: bool },

    #[error("{pattern:?} points outside the {}: {detail}", root_name(.in_context))]
    OutsideRoot {
        pattern: String,
        in_context: bool,
        detail: String,
    },

    #[error("{pattern:?}: symbolic link {link} points to {target:?}, which does not exist")]
    DanglingLink {
        pattern: String,
        link: PathBuf,
        target: PathBuf,
    },

    #[error("remote source {url:?} is not supported: keel-build has no network; download it into the build context and COPY it from there")]
    RemoteSource { url: String },

    #[error("destination {dest:?} must be an absolute container path")]
    DestNotAbsolute { dest: String },

    #[error("cannot copy to {dest:?}: {path} exists and is not a directory")]
    DestNotDirectory { dest: String, path: PathBuf },

    #[error("resolving {path:?} inside {root}: too many levels of symbolic links")]
    SymlinkLoop { root: PathBuf, path: PathBuf },

    #[error("archive {archive}: refusing entry {entry:?}: {reason}")]
    UnsafeArchiveEntry {
        archive: PathBuf,
        entry: String,
        reason: String,
    },

    #[error("archive {archive}: {format} compression is not supported (there is no pure-Rust decoder in keel-build); recompress it with gzip or unpack it before ADD")]
    UnsupportedCompression {
        archive: PathBuf,
        format: &'static str,
    },

    #[error("archive {archive}: {source}")]
    Archive {
        archive: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn no_match_suffix(in_context: &bool) -> &'static str {
    if *in_context {
        " in the build context (or only files excluded by .dockerignore)"
    } else {
        ""
    }
}

fn root_name(in_context: &bool) -> &'static str {
    if *in_context {
        "build context"
    } else {
        "source filesystem"
    }
}

fn not_found_message(pattern: &str, in_context: &bool) -> String {
    if *in_context {
        // Docker's wording, so users searching for it find the usual causes.
        format!(
            "file not found in build context or excluded by .dockerignore: stat {pattern}: file does not exist"
        )
    } else {
        format!("{pattern:?}: not found in the source filesystem")
    }
}

impl ContextError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> ContextError {
        ContextError::Io {
            path: path.into(),
            source,
        }
    }
}
