//! The container log: Docker's json-file format, one JSON object per line
//! (`{"log":"text\n","stream":"stdout","time":"2024-01-01T00:00:00.123456789Z"}`,
//! the time in Go's RFC3339Nano: trailing zeros dropped), written whether
//! or not anyone is attached, rotated as `ctr.log.1` (newest) .. `ctr.log.N`.

use std::path::{Path, PathBuf};

mod json;
pub mod reader;
mod writer;

pub use reader::{parse_time_arg, read, read_log, LogError, ReadOptions};
pub use writer::LogWriter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Rotate before an entry would take the file past this many bytes.
    pub max_size: Option<u64>,
    /// Rotated files kept besides the current one (docker's max-file minus one).
    pub max_files: u32,
}

/// Docker cuts lines longer than this into several entries.
pub const MAX_ENTRY: usize = 16 * 1024;

/// `ctr.log.N`, the N-th newest rotated file of `log`.
pub fn rotated_path(log: &Path, n: u32) -> PathBuf {
    let mut name = log.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{n}"));
    log.with_file_name(name)
}
