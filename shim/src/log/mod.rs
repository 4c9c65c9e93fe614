//! The container log: Docker's json-file format, one JSON object per line
//! (`{"log":"text\n","stream":"stdout","time":"2024-01-01T00:00:00.000000000Z"}`),
//! written whether or not anyone is attached.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

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
    /// Rotate when the file reaches this many bytes.
    pub max_size: Option<u64>,
    /// Rotated files kept besides the current one (docker's max-file minus one).
    pub max_files: u32,
}

/// Docker cuts lines longer than this into several entries.
pub const MAX_ENTRY: usize = 16 * 1024;

pub struct LogWriter {
    path: PathBuf,
    out: BufWriter<File>,
    opts: LogOptions,
    /// Bytes of a line not yet ended, per stream.
    partial: [Vec<u8>; 2],
}

impl LogWriter {
    pub fn open(path: &Path, opts: LogOptions) -> io::Result<LogWriter> {
        let f = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(LogWriter {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(64 * 1024, f),
            opts,
            partial: [Vec::new(), Vec::new()],
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn options(&self) -> &LogOptions {
        &self.opts
    }

    /// Output as it came from the container: whole lines become entries
    /// now, the rest waits for its newline (or [`LogWriter::flush`]).
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        let i = stream as usize;
        let mut rest = data;
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            let (line, tail) = rest.split_at(nl + 1);
            if self.partial[i].is_empty() {
                self.entry(stream, line)?;
            } else {
                let mut whole = std::mem::take(&mut self.partial[i]);
                whole.extend_from_slice(line);
                self.entry(stream, &whole)?;
            }
            rest = tail;
        }
        self.partial[i].extend_from_slice(rest);
        while self.partial[i].len() >= MAX_ENTRY {
            let chunk: Vec<u8> = self.partial[i].drain(..MAX_ENTRY).collect();
            self.entry(stream, &chunk)?;
        }
        Ok(())
    }

    /// Writes unfinished lines as entries of their own and flushes the file.
    pub fn flush(&mut self) -> io::Result<()> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let p = std::mem::take(&mut self.partial[stream as usize]);
            if !p.is_empty() {
                self.entry(stream, &p)?;
            }
        }
        self.out.flush()
    }

    fn entry(&mut self, stream: Stream, text: &[u8]) -> io::Result<()> {
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let line = serde_json::json!({
            "log": String::from_utf8_lossy(text),
            "stream": stream.name(),
            "time": time,
        });
        serde_json::to_writer(&mut self.out, &line)?;
        self.out.write_all(b"\n")
    }
}
