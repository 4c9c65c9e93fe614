//! The json-file writer: container output in, docker's lines out, rotated
//! by size as `--log-opt max-size/max-file` ask.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::json::{escape_into, escape_line, go_rfc3339_nano};
use super::{rotated_path, LogOptions, Stream, MAX_ENTRY};

/// Entries are collected here and reach the file in one write per
/// [`LogWriter::write`] call; past this size mid-call they go out early so
/// one huge write does not hold a huge buffer.
const BUFFER: usize = 1024 * 1024;

pub struct LogWriter {
    path: PathBuf,
    file: File,
    /// Bytes already in the current file.
    size: u64,
    /// Encoded entries not yet written.
    buf: Vec<u8>,
    opts: LogOptions,
    /// Bytes of a line not yet ended, per stream.
    partial: [Vec<u8>; 2],
    /// The `time` of every entry of the current call, formatted once.
    time: String,
}

impl LogWriter {
    pub fn open(path: &Path, opts: LogOptions) -> io::Result<LogWriter> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            buf: Vec::with_capacity(BUFFER + 2 * MAX_ENTRY),
            opts,
            partial: [Vec::new(), Vec::new()],
            time: String::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn options(&self) -> &LogOptions {
        &self.opts
    }

    /// Output as it came from the container: whole lines become entries
    /// now, the rest waits for its newline (or [`LogWriter::flush`]). A line
    /// longer than [`MAX_ENTRY`] is cut into entries of that size, as
    /// docker's copier does. Everything handed over is in the file when
    /// this returns, so followers see it without a flush.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.time = go_rfc3339_nano(chrono::Utc::now());
        let i = stream as usize;
        let mut partial = std::mem::take(&mut self.partial[i]);
        let result = self.split(stream, &mut partial, data);
        self.partial[i] = partial;
        result?;
        self.write_out()
    }

    /// Writes unfinished lines as entries of their own and flushes the file.
    pub fn flush(&mut self) -> io::Result<()> {
        self.time = go_rfc3339_nano(chrono::Utc::now());
        for stream in [Stream::Stdout, Stream::Stderr] {
            let p = std::mem::take(&mut self.partial[stream as usize]);
            if !p.is_empty() {
                self.entry(stream, &p)?;
            }
        }
        self.write_out()?;
        self.file.flush()
    }

    /// Cuts `data` (after what `partial` holds of the same line) into
    /// entries; what is left without a newline stays in `partial`.
    fn split(&mut self, stream: Stream, partial: &mut Vec<u8>, data: &[u8]) -> io::Result<()> {
        let mut rest = data;
        while !rest.is_empty() {
            if !partial.is_empty() {
                // The rare case (once per call at most): the line's start
                // came earlier, and is escaped together with its end so a
                // character cut between two reads stays whole.
                let room = MAX_ENTRY - partial.len();
                let window = &rest[..rest.len().min(room)];
                let cut = match window.iter().position(|b| *b == b'\n') {
                    Some(nl) => nl + 1,
                    None if rest.len() >= room => room,
                    None => {
                        partial.extend_from_slice(rest);
                        return Ok(());
                    }
                };
                partial.extend_from_slice(&rest[..cut]);
                let mark = self.begin_entry();
                escape_into(&mut self.buf, partial);
                self.end_entry(stream, mark)?;
                partial.clear();
                rest = &rest[cut..];
                continue;
            }
            // The common case: the line is found while it is escaped.
            let window = &rest[..rest.len().min(MAX_ENTRY)];
            let mark = self.begin_entry();
            let (used, newline) = escape_line(&mut self.buf, window);
            if !newline && used < MAX_ENTRY {
                // Unfinished: kept raw until its end comes.
                self.buf.truncate(mark);
                partial.extend_from_slice(rest);
                return Ok(());
            }
            self.end_entry(stream, mark)?;
            rest = &rest[used..];
        }
        Ok(())
    }

    fn entry(&mut self, stream: Stream, text: &[u8]) -> io::Result<()> {
        let mark = self.begin_entry();
        escape_into(&mut self.buf, text);
        self.end_entry(stream, mark)
    }

    /// Starts an entry in the buffer; returns where it starts.
    fn begin_entry(&mut self) -> usize {
        let mark = self.buf.len();
        self.buf.extend_from_slice(b"{\"log\":\"");
        mark
    }

    /// Closes the entry started at `mark` (its text escaped after it), and
    /// rotates first if it would not fit in the current file.
    fn end_entry(&mut self, stream: Stream, mark: usize) -> io::Result<()> {
        self.buf.extend_from_slice(match stream {
            Stream::Stdout => b"\",\"stream\":\"stdout\",\"time\":\"",
            Stream::Stderr => b"\",\"stream\":\"stderr\",\"time\":\"",
        });
        self.buf.extend_from_slice(self.time.as_bytes());
        self.buf.extend_from_slice(b"\"}\n");

        if let Some(max) = self.opts.max_size {
            let before = self.size + mark as u64;
            // A file is never left empty: an entry larger than max_size
            // gets a file of its own.
            if before > 0 && before + (self.buf.len() - mark) as u64 > max {
                let done = self.write_bytes(mark);
                if done.is_err() {
                    self.buf.clear();
                }
                done?;
                self.rotate()?;
            }
        }
        if self.buf.len() >= BUFFER {
            self.write_out()?;
        }
        Ok(())
    }

    fn write_out(&mut self) -> io::Result<()> {
        let done = self.write_bytes(self.buf.len());
        if done.is_err() {
            // A failed write (disk full) loses this batch rather than
            // growing the buffer forever or writing it twice.
            self.buf.clear();
        }
        done
    }

    /// Writes the first `n` buffered bytes to the current file.
    fn write_bytes(&mut self, n: usize) -> io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.file.write_all(&self.buf[..n])?;
        self.size += n as u64;
        self.buf.drain(..n);
        Ok(())
    }

    /// ctr.log -> ctr.log.1 -> ... -> ctr.log.N (dropping what was N), then
    /// a fresh ctr.log. Renames, not copies: a follower holding the old
    /// file keeps reading it to its end, then finds the new one.
    fn rotate(&mut self) -> io::Result<()> {
        let keep = self.opts.max_files;
        if keep == 0 {
            remove_if_present(&self.path)?;
        } else {
            for k in (1..keep).rev() {
                rename_if_present(
                    &rotated_path(&self.path, k),
                    &rotated_path(&self.path, k + 1),
                )?;
            }
            fs::rename(&self.path, rotated_path(&self.path, 1))?;
        }
        self.file = open_append(&self.path)?;
        self.size = 0;
        tracing::debug!(log = %self.path.display(), keep, "rotated container log");
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn rename_if_present(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Line {
        log: String,
        stream: String,
        time: String,
    }

    fn lines(path: &Path) -> Vec<Line> {
        let data = fs::read_to_string(path).unwrap();
        data.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn logs_of(path: &Path) -> Vec<String> {
        lines(path).into_iter().map(|l| l.log).collect()
    }

    #[test]
    fn lines_become_docker_entries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ctr.log");
        let mut w = LogWriter::open(&p, LogOptions::default()).unwrap();
        w.write(Stream::Stdout, b"one\ntwo <&>\n").unwrap();
        w.write(Stream::Stderr, b"oops\n").unwrap();
        let raw = fs::read_to_string(&p).unwrap();
        let first = raw.lines().next().unwrap();
        assert!(
            first.starts_with(r#"{"log":"one\n","stream":"stdout","time":""#),
            "{first}"
        );
        assert!(
            raw.contains(r#"{"log":"two \u003c\u0026\u003e\n","stream":"stdout""#),
            "{raw}"
        );
        let l = lines(&p);
        assert_eq!(l.len(), 3);
        assert_eq!(l[2].log, "oops\n");
        assert_eq!(l[2].stream, "stderr");
        // One time per call, Go's RFC3339Nano.
        assert_eq!(l[0].time, l[1].time);
        assert!(
            chrono::DateTime::parse_from_rfc3339(&l[0].time).is_ok(),
            "{}",
            l[0].time
        );
        assert!(l[0].time.ends_with('Z'));
    }

    #[test]
    fn partial_lines_wait_for_their_newline_per_stream() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ctr.log");
        let mut w = LogWriter::open(&p, LogOptions::default()).unwrap();
        w.write(Stream::Stdout, b"hel").unwrap();
        w.write(Stream::Stderr, b"err ").unwrap();
        assert_eq!(fs::metadata(&p).unwrap().len(), 0);
        w.write(Stream::Stdout, b"lo\nwor").unwrap();
        assert_eq!(logs_of(&p), ["hello\n"]);
        w.write(Stream::Stderr, b"line\n").unwrap();
        w.flush().unwrap();
        let l = lines(&p);
        let got: Vec<(&str, &str)> = l
            .iter()
            .map(|l| (l.stream.as_str(), l.log.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("stdout", "hello\n"),
                ("stderr", "err line\n"),
                ("stdout", "wor")
            ]
        );
        // Nothing left to flush twice.
        w.flush().unwrap();
        assert_eq!(lines(&p).len(), 3);
    }

    #[test]
    fn a_character_cut_between_two_reads_stays_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ctr.log");
        let mut w = LogWriter::open(&p, LogOptions::default()).unwrap();
        w.write(Stream::Stdout, b"caf\xc3").unwrap();
        w.write(Stream::Stdout, b"\xa9 <\n").unwrap();
        assert_eq!(logs_of(&p), ["café <\n"]);
    }

    #[test]
    fn long_lines_are_cut_at_16k() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ctr.log");
        let mut w = LogWriter::open(&p, LogOptions::default()).unwrap();
        let mut line = vec![b'a'; 40_000];
        line.push(b'\n');
        w.write(Stream::Stdout, &line).unwrap();
        // Exactly 16 KiB with its newline fits one entry; one byte more
        // leaves the newline alone.
        let mut exact = vec![b'b'; MAX_ENTRY - 1];
        exact.push(b'\n');
        w.write(Stream::Stdout, &exact).unwrap();
        let mut over = vec![b'c'; MAX_ENTRY];
        over.push(b'\n');
        // Fed in small pieces: the cut must not depend on the call sizes.
        for piece in over.chunks(1000) {
            w.write(Stream::Stdout, piece).unwrap();
        }
        let got: Vec<usize> = logs_of(&p).iter().map(String::len).collect();
        assert_eq!(
            got,
            [
                MAX_ENTRY,
                MAX_ENTRY,
                40_000 - 2 * MAX_ENTRY + 1,
                MAX_ENTRY,
                MAX_ENTRY,
                1
            ]
        );
        let all: String = logs_of(&p).concat();
        assert_eq!(all.len(), line.len() + exact.len() + over.len());
    }

    #[test]
    fn appends_to_an_existing_log() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ctr.log");
        LogWriter::open(&p, LogOptions::default())
            .unwrap()
            .write(Stream::Stdout, b"a\n")
            .unwrap();
        LogWriter::open(&p, LogOptions::default())
            .unwrap()
            .write(Stream::Stdout, b"b\n")
            .unwrap();
        assert_eq!(logs_of(&p), ["a\n", "b\n"]);
    }

    #[test]
    fn rotation_keeps_max_files_and_every_line_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ctr.log");
        let opts = LogOptions {
            max_size: Some(2000),
            max_files: 3,
        };
        let mut w = LogWriter::open(&p, opts).unwrap();
        // ~90 bytes per entry, ~22 per file: the first ones rotate away.
        let total = 200;
        for n in 0..total {
            w.write(Stream::Stdout, format!("line {n:05}\n").as_bytes())
                .unwrap();
        }
        w.flush().unwrap();
        assert!(rotated_path(&p, 3).exists());
        assert!(!rotated_path(&p, 4).exists());
        let mut seen = Vec::new();
        for f in [
            rotated_path(&p, 3),
            rotated_path(&p, 2),
            rotated_path(&p, 1),
            p.clone(),
        ] {
            assert!(
                fs::metadata(&f).unwrap().len() <= 2000,
                "{} too big",
                f.display()
            );
            seen.extend(logs_of(&f));
        }
        let first: usize = seen[0][5..10].parse().unwrap();
        let want: Vec<String> = (first..total).map(|n| format!("line {n:05}\n")).collect();
        assert_eq!(seen, want);
        // Three full rotated files plus the current one.
        assert!(seen.len() > 3 * 20, "{}", seen.len());
    }

    #[test]
    fn rotation_within_one_call_and_oversized_entries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ctr.log");
        let opts = LogOptions {
            max_size: Some(100),
            max_files: 5,
        };
        let mut w = LogWriter::open(&p, opts).unwrap();
        let big = format!("{}\n", "x".repeat(300));
        w.write(Stream::Stdout, format!("a\n{big}b\n").as_bytes())
            .unwrap();
        assert_eq!(logs_of(&rotated_path(&p, 2)), ["a\n"]);
        assert_eq!(logs_of(&rotated_path(&p, 1)), [big]);
        assert_eq!(logs_of(&p), ["b\n"]);
    }

    #[test]
    fn max_files_zero_starts_over_without_keeping_old() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ctr.log");
        let opts = LogOptions {
            max_size: Some(100),
            max_files: 0,
        };
        let mut w = LogWriter::open(&p, opts).unwrap();
        for n in 0..10 {
            w.write(Stream::Stdout, format!("{n}\n").as_bytes())
                .unwrap();
        }
        assert!(!rotated_path(&p, 1).exists());
        assert_eq!(logs_of(&p), ["9\n"]);
    }

    /// `cargo test -p keel-shim --release bench_writer -- --ignored --nocapture`.
    /// KEEL_LOG_BENCH_MB sets the amount (default 1024), KEEL_LOG_BENCH_DIR
    /// where the log goes (default the temp dir), and KEEL_LOG_BENCH_CMD a
    /// shell command whose stdout is logged through a pipe instead of
    /// generated lines (the same a supervisor does, for a fair comparison
    /// with conmon fed by the same command).
    #[test]
    #[ignore]
    fn bench_writer() {
        use std::io::Read;
        let mb: usize = std::env::var("KEEL_LOG_BENCH_MB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1024);
        let dir = match std::env::var_os("KEEL_LOG_BENCH_DIR") {
            Some(d) => tempfile::tempdir_in(d).unwrap(),
            None => tempfile::tempdir().unwrap(),
        };
        let p = dir.path().join("ctr.log");
        let mut w = LogWriter::open(&p, LogOptions::default()).unwrap();
        let start = std::time::Instant::now();
        let mut input = 0usize;
        if let Ok(cmd) = std::env::var("KEEL_LOG_BENCH_CMD") {
            let mut child = std::process::Command::new("sh")
                .args(["-c", &cmd])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut out = child.stdout.take().unwrap();
            // What a supervisor should do with its pipes: fewer, larger
            // reads (the default pipe holds 64 KiB).
            let _ = nix::fcntl::fcntl(
                std::os::fd::AsRawFd::as_raw_fd(&out),
                nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20),
            );
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = out.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                input += n;
                w.write(Stream::Stdout, &buf[..n]).unwrap();
            }
            child.wait().unwrap();
        } else {
            // Pipe-sized reads of ~100-byte lines, as a supervisor gets them.
            let mut chunk = Vec::new();
            let mut n = 0u64;
            while chunk.len() < 64 * 1024 - 128 {
                chunk.extend_from_slice(
                    format!("{n:08} the quick brown fox jumps over the lazy dog \"quoted\" <tag> and\ttab\n")
                        .as_bytes(),
                );
                n += 1;
            }
            for _ in 0..mb * 1024 * 1024 / chunk.len() {
                w.write(Stream::Stdout, &chunk).unwrap();
                input += chunk.len();
            }
        }
        w.flush().unwrap();
        let secs = start.elapsed().as_secs_f64();
        let input = input as f64 / 1e6;
        println!(
            "log writer: {input:.0} MB of lines in {secs:.2} s = {:.0} MB/s input, file {} MB",
            input / secs,
            fs::metadata(&p).unwrap().len() / 1_000_000
        );
    }
}
