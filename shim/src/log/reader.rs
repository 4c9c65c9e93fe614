//! `logs [-f] [-t] [--tail N] [--since T] [--until T]`: json-file entries
//! decoded back to the raw output, across rotated files, following the
//! log while its writer lives.

use std::borrow::Cow;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Local, NaiveDateTime, TimeZone, Utc};
use serde::Deserialize;

use super::json::rfc3339_nano_fixed;
use crate::container::Paths;

/// How much is read at once, forwards and backwards.
const CHUNK: usize = 64 * 1024;
/// How often a follower looks for new data: short enough to feel live,
/// long enough to cost nothing measurable.
const POLL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// `-f`: keep reading until the writer is gone.
    pub follow: bool,
    /// `-t`: each entry prefixed with its time (RFC3339Nano, nine digits).
    pub timestamps: bool,
    /// `--tail N`: only the last N entries; None is docker's `all`.
    pub tail: Option<usize>,
    /// `--since`: entries at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// `--until`: entries at or before this time; reading ends at the first
    /// later one, following or not.
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot read container log {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write log output: {0}")]
    Output(#[source] io::Error),
    #[error("failed to parse value as time or duration: {value:?}")]
    Time { value: String },
}

/// The logs of container `id`. `stop` is asked while following: once it
/// says the writer is gone (the container has exited), whatever is left is
/// read and the call returns.
pub fn read(
    paths: &Paths,
    id: &str,
    opts: ReadOptions,
    out_stdout: &mut dyn Write,
    out_stderr: &mut dyn Write,
    stop: &dyn Fn() -> bool,
) -> Result<(), LogError> {
    read_log(&paths.log(id), &opts, out_stdout, out_stderr, stop)
}

/// [`read`] of the log at `log` (its rotated files beside it).
pub fn read_log(
    log: &Path,
    opts: &ReadOptions,
    out_stdout: &mut dyn Write,
    out_stderr: &mut dyn Write,
    stop: &dyn Fn() -> bool,
) -> Result<(), LogError> {
    let mut sink = Sink {
        out: out_stdout,
        err: out_stderr,
        opts,
        done: false,
    };
    let mut files = open_all(log)?;
    let (first, offset) = match opts.tail {
        Some(n) => tail_start(&files, n)?,
        None => (0, 0),
    };
    for (i, src) in files.iter_mut().enumerate().skip(first) {
        if i == first {
            src.pos = offset;
        }
        src.drain(&mut sink)?;
        if sink.done {
            return sink.flush();
        }
    }
    if !opts.follow {
        return sink.flush();
    }

    let mut cur = files.pop();
    drop(files);
    loop {
        // Asked before draining: if the writer was gone already, this
        // drain has seen everything it wrote.
        let stopped = stop();
        let now = file_id(log);
        if let Some(c) = cur.as_mut() {
            c.drain(&mut sink)?;
        }
        if sink.done {
            break;
        }
        if let Some(now) = now {
            if cur.as_ref().map(|c| c.id) != Some(now) {
                // Replaced (rotated) after `cur` was drained to its end:
                // nothing more will be written to `cur`; read on in the
                // file that came after it.
                let next = match cur.as_ref() {
                    Some(c) => match successor(log, c)? {
                        Next::File(next) => Some(next),
                        Next::NotYet => None,
                        // What followed it may be gone too: go on at the
                        // oldest file kept.
                        Next::Evicted => oldest_kept(log)?,
                    },
                    None => Source::open(log)?,
                };
                if next.is_some() {
                    cur = next;
                    continue;
                }
            }
        }
        if stopped {
            break;
        }
        sink.flush()?;
        std::thread::sleep(POLL);
    }
    sink.flush()
}

/// One log file being read, from `pos`, with the start of a line not yet
/// complete (the writer's next write ends it).
struct Source {
    path: PathBuf,
    file: File,
    id: (u64, u64),
    pos: u64,
    pending: Vec<u8>,
    /// The rotation number it was last seen under (0: the current file),
    /// where [`successor`] looks for it first.
    seen: u32,
}

impl Source {
    fn open(path: &Path) -> Result<Option<Source>, LogError> {
        let read_err = |source| LogError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(read_err(e)),
        };
        let meta = file.metadata().map_err(read_err)?;
        Ok(Some(Source {
            path: path.to_path_buf(),
            file,
            id: (meta.dev(), meta.ino()),
            pos: 0,
            pending: Vec::new(),
            seen: 0,
        }))
    }

    fn len(&self) -> Result<u64, LogError> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|source| LogError::Read {
                path: self.path.clone(),
                source,
            })
    }

    /// Every complete line up to the current end of the file.
    fn drain(&mut self, sink: &mut Sink) -> Result<(), LogError> {
        while !sink.done {
            let have = self.pending.len();
            self.pending.resize(have + CHUNK, 0);
            let n = self.file.read_at(&mut self.pending[have..], self.pos);
            let n = match n {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                Err(source) => {
                    self.pending.truncate(have);
                    return Err(LogError::Read {
                        path: self.path.clone(),
                        source,
                    });
                }
            };
            self.pending.truncate(have + n);
            if n == 0 {
                return Ok(());
            }
            self.pos += n as u64;
            let mut start = 0;
            while let Some(nl) = self.pending[start..].iter().position(|b| *b == b'\n') {
                sink.line(&self.pending[start..start + nl])?;
                start += nl + 1;
                if sink.done {
                    break;
                }
            }
            self.pending.drain(..start);
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(default, borrow)]
    log: Cow<'a, str>,
    #[serde(default, borrow)]
    stream: Cow<'a, str>,
    #[serde(default, borrow)]
    time: Cow<'a, str>,
}

/// Where decoded entries go, and the filters on the way.
struct Sink<'a> {
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    opts: &'a ReadOptions,
    /// `--until` was passed: nothing more is to be written.
    done: bool,
}

impl Sink<'_> {
    fn line(&mut self, raw: &[u8]) -> Result<(), LogError> {
        if raw.is_empty() {
            return Ok(());
        }
        let e: Entry = match serde_json::from_slice(raw) {
            Ok(e) => e,
            Err(err) => {
                tracing::warn!(%err, "skipping a log line that is not a json-file entry");
                return Ok(());
            }
        };
        let o = self.opts;
        let time = if o.timestamps || o.since.is_some() || o.until.is_some() {
            DateTime::parse_from_rfc3339(&e.time)
                .map(|t| t.with_timezone(&Utc))
                .ok()
        } else {
            None
        };
        if let (Some(since), Some(t)) = (o.since, time) {
            if t < since {
                return Ok(());
            }
        }
        if let (Some(until), Some(t)) = (o.until, time) {
            if t > until {
                self.done = true;
                return Ok(());
            }
        }
        let w: &mut dyn Write = if e.stream == "stderr" {
            &mut *self.err
        } else {
            &mut *self.out
        };
        if o.timestamps {
            let stamp = time.map(rfc3339_nano_fixed);
            let stamp = stamp.as_deref().unwrap_or(&e.time);
            w.write_all(stamp.as_bytes()).map_err(LogError::Output)?;
            w.write_all(b" ").map_err(LogError::Output)?;
        }
        w.write_all(e.log.as_bytes()).map_err(LogError::Output)
    }

    fn flush(&mut self) -> Result<(), LogError> {
        self.out.flush().map_err(LogError::Output)?;
        self.err.flush().map_err(LogError::Output)
    }
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The rotation number `src` is under now, and that name. Looked for
/// first just above where it was last seen (a walk from file to file finds
/// each at once), then in a listing of all.
fn locate(log: &Path, src: &Source) -> Result<Option<(u32, PathBuf)>, LogError> {
    for k in src.seen.max(1)..src.seen + 4 {
        let name = super::rotated_path(log, k);
        if file_id(&name) == Some(src.id) {
            return Ok(Some((k, name)));
        }
    }
    Ok(rotated_files(log)?
        .into_iter()
        .find(|(_, p)| file_id(p) == Some(src.id)))
}

/// `ctr.log.N` beside `log` and each N, newest (lowest N) first. Listed
/// rather than probed one by one, so a gap left for an instant by a
/// rotation in progress does not hide the older files.
fn rotated_files(log: &Path) -> Result<Vec<(u32, PathBuf)>, LogError> {
    let dir = log.parent().unwrap_or(Path::new("."));
    let prefix = format!("{}.", log.file_name().unwrap_or_default().to_string_lossy());
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(LogError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut found: Vec<(u32, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name();
            let n = name.to_str()?.strip_prefix(&prefix)?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// The rotated files and the current one, oldest first, each once. Found
/// by walking from the oldest to each one's [`successor`], because a writer
/// may rotate meanwhile: opened by the names of one listing, files would be
/// missed or taken twice.
fn open_all(log: &Path) -> Result<Vec<Source>, LogError> {
    let Some(mut cur) = oldest_kept(log)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    while file_id(log) != Some(cur.id) {
        let next = match successor(log, &cur)? {
            Next::File(next) => next,
            Next::NotYet => break,
            // Rotated out of the kept files while this walked, and what
            // followed it may be gone too.
            Next::Evicted => match oldest_kept(log)? {
                Some(next) => next,
                None => break,
            },
        };
        out.push(std::mem::replace(&mut cur, next));
    }
    out.push(cur);
    Ok(out)
}

/// The oldest file there is: the oldest rotated one, else the current one.
fn oldest_kept(log: &Path) -> Result<Option<Source>, LogError> {
    loop {
        if let Some(oldest) = open_oldest(log)? {
            return Ok(Some(oldest));
        }
        let current = Source::open(log)?;
        // Rotated before it was opened: that file is now `.1`.
        if rotated_files(log)?.is_empty() {
            return Ok(current);
        }
    }
}

/// The oldest rotated file, if any. A name taken from a listing may hold
/// a newer file by the time it is opened, so it is taken only once nothing
/// is seen above it, while it is seen under its name both before and
/// after. One rename is made at a time, the highest name first, so at most
/// one name is ever missing between the kept files: two names free above
/// it mean none are taken.
fn open_oldest(log: &Path) -> Result<Option<Source>, LogError> {
    'again: loop {
        let Some(&(mut k, _)) = rotated_files(log)?.last() else {
            return Ok(None);
        };
        loop {
            let Some(mut oldest) = Source::open(&super::rotated_path(log, k))? else {
                continue 'again;
            };
            if let Some(above) = [k + 1, k + 2]
                .into_iter()
                .find(|j| super::rotated_path(log, *j).exists())
            {
                k = above;
                continue;
            }
            if file_id(&super::rotated_path(log, k)) != Some(oldest.id) {
                continue 'again;
            }
            oldest.seen = k;
            return Ok(Some(oldest));
        }
    }
}

enum Next {
    File(Source),
    /// Nothing to switch to yet (the new current file is not there).
    NotYet,
    /// `cur` was rotated out of the kept files (or removed).
    Evicted,
}

/// The file written after `cur`, which has been rotated away from `log`:
/// the one under the next lower name that is taken (`log` below `.1`).
/// Names only shift up, one rename at a time and the highest first (`.k`
/// to `.k+1` before `.k-1` to `.k`), so the files below `cur` do not move
/// past it: if `cur` is seen under `.k` both before and after that name is
/// opened, and the names skipped are empty before and after too, what was
/// opened is the file that followed it. A listing taken once would not do: files rotated meanwhile, newer
/// than any it was taken against, turn up under its names.
fn successor(log: &Path, cur: &Source) -> Result<Next, LogError> {
    let read_err = |source| LogError::Read {
        path: cur.path.clone(),
        source,
    };
    for _ in 0..1000 {
        if cur.file.metadata().map_err(read_err)?.nlink() == 0 {
            return Ok(Next::Evicted);
        }
        if let Some((k, name)) = locate(log, cur)? {
            let under = |j: u32| {
                if j == 0 {
                    log.to_path_buf()
                } else {
                    super::rotated_path(log, j)
                }
            };
            let mut next = None;
            for j in (0..k).rev() {
                next = Source::open(&under(j))?;
                if let Some(n) = next.as_mut() {
                    n.seen = j;
                    break;
                }
            }
            // The names passed over: for an instant the one a rotation in
            // progress has just emptied, or gone for good (removed by
            // hand). Still empty now, with `cur` still in place, nothing
            // below them has moved either.
            let from = next.as_ref().map_or(0, |n| n.seen + 1);
            if file_id(&name) == Some(cur.id) && (from..k).all(|j| !under(j).exists()) {
                return Ok(next.map_or(Next::NotYet, Next::File));
            }
        }
        // Renamed while it was looked for: look again.
        std::thread::yield_now();
    }
    Ok(Next::NotYet)
}

/// Where the last `n` entries start: the index of the file and the offset
/// in it. Read backwards from the end, so a long log costs only what is
/// shown.
fn tail_start(files: &[Source], n: usize) -> Result<(usize, u64), LogError> {
    let mut need = n;
    for (i, src) in files.iter().enumerate().rev() {
        // The k-th newline from the end closes the k-th last line, so the
        // last `need` lines begin after newline `need + 1`; an unfinished
        // line at the very end is not counted.
        let len = src.len()?;
        match newline_back(src, len, need + 1)? {
            Ok(offset) => return Ok((i, offset)),
            Err(seen) => need -= seen.min(need),
        }
    }
    Ok((0, 0))
}

/// Ok(offset just past the `k`-th newline before `len`), or Err(how many
/// newlines there are) when there are fewer.
fn newline_back(src: &Source, len: u64, k: usize) -> Result<Result<u64, usize>, LogError> {
    let mut buf = vec![0u8; CHUNK];
    let mut end = len;
    let mut seen = 0;
    while end > 0 {
        let start = end.saturating_sub(CHUNK as u64);
        let chunk = &mut buf[..(end - start) as usize];
        src.file
            .read_exact_at(chunk, start)
            .map_err(|source| LogError::Read {
                path: src.path.clone(),
                source,
            })?;
        for (j, b) in chunk.iter().enumerate().rev() {
            if *b == b'\n' {
                seen += 1;
                if seen == k {
                    return Ok(Ok(start + j as u64 + 1));
                }
            }
        }
        end = start;
    }
    Ok(Err(seen))
}

/// `--since`/`--until` as docker's client takes them, relative to `now`:
/// a Go duration (`10m`, `1h30m`, `1.5h`: that long before now), an RFC
/// 3339 time, a shorter form of it (`2024-01-02`, `2024-01-02T15`,
/// `2024-01-02T15:04`, in local time unless a zone is given), or Unix
/// seconds with an optional fraction (`1700000000.5`).
pub fn parse_time_arg(value: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, LogError> {
    let bad = || LogError::Time {
        value: value.to_string(),
    };
    // docker leaves "0" to mean the Unix epoch, not a zero duration.
    if value != "0" {
        if let Some(d) = go_duration(value) {
            return now.checked_sub_signed(d).ok_or_else(bad);
        }
    }
    if let Some(t) = parse_datetime(value) {
        return Ok(t);
    }
    if value.contains('-') {
        return Err(bad());
    }
    parse_unix(value).ok_or_else(bad)
}

/// Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?unit)+`.
fn go_duration(s: &str) -> Option<chrono::Duration> {
    let (neg, mut rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest.is_empty() {
        return None;
    }
    let digits_end = |r: &str| r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
    let mut nanos = 0f64;
    while !rest.is_empty() {
        let (int, r) = rest.split_at(digits_end(rest));
        let (frac, r) = match r.strip_prefix('.') {
            Some(r) => r.split_at(digits_end(r)),
            None => ("", r),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let unit_end = r
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(r.len());
        let (unit, r) = r.split_at(unit_end);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        let v: f64 = format!("0{int}.{frac}0").parse().ok()?;
        nanos += v * scale;
        rest = r;
    }
    if nanos > i64::MAX as f64 {
        return None;
    }
    let d = chrono::Duration::nanoseconds(nanos.round() as i64);
    Some(if neg { -d } else { d })
}

/// `YYYY-MM-DD[THH[:MM[:SS[.fraction]]]][Z|±hh:mm]`; without a zone, local.
fn parse_datetime(value: &str) -> Option<DateTime<Utc>> {
    let (body, zone) = split_zone(value);
    let full = match body.split_once('T') {
        None => format!("{body}T00:00:00"),
        Some((_, clock)) => match clock.matches(':').count() {
            0 => format!("{body}:00:00"),
            1 => format!("{body}:00"),
            _ => body.to_string(),
        },
    };
    let naive = NaiveDateTime::parse_from_str(&full, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    let t = match zone {
        Some(off) => off
            .from_local_datetime(&naive)
            .single()?
            .with_timezone(&Utc),
        None => Local
            .from_local_datetime(&naive)
            .earliest()?
            .with_timezone(&Utc),
    };
    Some(t)
}

fn split_zone(value: &str) -> (&str, Option<FixedOffset>) {
    if let Some(body) = value.strip_suffix(['Z', 'z']) {
        return (body, FixedOffset::east_opt(0));
    }
    let b = value.as_bytes();
    if b.len() > 6
        && value.contains('T')
        && matches!(b[b.len() - 6], b'+' | b'-')
        && b[b.len() - 3] == b':'
    {
        let (body, zone) = value.split_at(value.len() - 6);
        let h: i32 = zone[1..3].parse().ok().unwrap_or(99);
        let m: i32 = zone[4..6].parse().ok().unwrap_or(99);
        let secs = (h * 60 + m) * 60 * if zone.starts_with('-') { -1 } else { 1 };
        if let Some(off) = (h < 24 && m < 60)
            .then(|| FixedOffset::east_opt(secs))
            .flatten()
        {
            return (body, Some(off));
        }
    }
    (value, None)
}

/// `seconds[.fraction]` since the epoch.
fn parse_unix(value: &str) -> Option<DateTime<Utc>> {
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    let secs: i64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nanos: u32 = digits.parse().ok()?;
    DateTime::from_timestamp(secs, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{rotated_path, LogOptions, LogWriter, Stream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    fn entry(log: &str, stream: &str, time: &str) -> String {
        serde_json::json!({"log": log, "stream": stream, "time": time}).to_string() + "\n"
    }

    fn run(log: &Path, opts: &ReadOptions) -> (String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        read_log(log, opts, &mut out, &mut err, &|| true).unwrap();
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    /// ctr.log.2, ctr.log.1, ctr.log with entries "0\n".."8\n", one second apart.
    fn three_files(dir: &Path) -> PathBuf {
        let log = dir.join("ctr.log");
        let t = |n: u32| format!("2024-01-01T00:00:0{n}.5Z");
        for (f, range) in [
            (rotated_path(&log, 2), 0..3),
            (rotated_path(&log, 1), 3..6),
            (log.clone(), 6..9),
        ] {
            let s: String = range
                .map(|n| {
                    entry(
                        &format!("{n}\n"),
                        if n % 2 == 0 { "stdout" } else { "stderr" },
                        &t(n),
                    )
                })
                .collect();
            fs::write(f, s).unwrap();
        }
        log
    }

    /// A rotated file removed by hand leaves a gap in the names: the files
    /// on either side of it are still read, oldest first.
    #[test]
    fn reads_across_a_missing_rotated_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = three_files(dir.path());
        fs::rename(rotated_path(&log, 2), rotated_path(&log, 4)).unwrap();
        fs::remove_file(rotated_path(&log, 1)).unwrap();
        let (out, err) = run(&log, &ReadOptions::default());
        assert_eq!((out.as_str(), err.as_str()), ("0\n2\n6\n8\n", "1\n7\n"));
    }

    #[test]
    fn reads_every_entry_across_rotated_files_to_its_stream() {
        let dir = tempfile::tempdir().unwrap();
        let log = three_files(dir.path());
        let (out, err) = run(&log, &ReadOptions::default());
        assert_eq!(out, "0\n2\n4\n6\n8\n");
        assert_eq!(err, "1\n3\n5\n7\n");
    }

    #[test]
    fn timestamps_prefix_fixed_nanos() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("ctr.log");
        fs::write(&log, entry("hi\n", "stdout", "2024-01-01T00:00:01.5Z")).unwrap();
        let opts = ReadOptions {
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(run(&log, &opts).0, "2024-01-01T00:00:01.500000000Z hi\n");
    }

    #[test]
    fn tail_counts_back_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = three_files(dir.path());
        let tail = |n| {
            let (o, e) = run(
                &log,
                &ReadOptions {
                    tail: Some(n),
                    ..Default::default()
                },
            );
            let mut all: Vec<String> = o.lines().chain(e.lines()).map(String::from).collect();
            all.sort();
            all.join(",")
        };
        assert_eq!(tail(0), "");
        assert_eq!(tail(1), "8");
        assert_eq!(tail(3), "6,7,8");
        assert_eq!(tail(4), "5,6,7,8");
        assert_eq!(tail(7), "2,3,4,5,6,7,8");
        assert_eq!(tail(100), "0,1,2,3,4,5,6,7,8");
    }

    #[test]
    fn tail_ignores_an_unfinished_last_line_and_reads_long_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("ctr.log");
        // More than one backwards chunk.
        let mut s: String = (0..5000)
            .map(|n| entry(&format!("{n}\n"), "stdout", "2024-01-01T00:00:00Z"))
            .collect();
        s.push_str("{\"log\":\"half");
        fs::write(&log, s).unwrap();
        let (out, _) = run(
            &log,
            &ReadOptions {
                tail: Some(2),
                ..Default::default()
            },
        );
        assert_eq!(out, "4998\n4999\n");
        let (out, _) = run(
            &log,
            &ReadOptions {
                tail: Some(4321),
                ..Default::default()
            },
        );
        assert_eq!(out.lines().count(), 4321);
        assert!(out.starts_with("679\n"));
    }

    #[test]
    fn since_and_until_filter_by_entry_time() {
        let dir = tempfile::tempdir().unwrap();
        let log = three_files(dir.path());
        let at = |s: &str| Some(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc));
        let opts = ReadOptions {
            since: at("2024-01-01T00:00:02.5Z"),
            until: at("2024-01-01T00:00:06Z"),
            ..Default::default()
        };
        let (out, err) = run(&log, &opts);
        assert_eq!(out, "2\n4\n");
        assert_eq!(err, "3\n5\n");
        // Tail first, then the filter, as docker.
        let opts = ReadOptions {
            tail: Some(2),
            since: at("2024-01-01T00:00:02Z"),
            ..Default::default()
        };
        assert_eq!(run(&log, &opts), ("8\n".into(), "7\n".into()));
    }

    #[test]
    fn lines_that_are_not_entries_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("ctr.log");
        fs::write(&log, format!("garbage\n\n{}", entry("ok\n", "stdout", "x"))).unwrap();
        assert_eq!(run(&log, &ReadOptions::default()).0, "ok\n");
    }

    #[test]
    fn missing_log_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            run(&dir.path().join("ctr.log"), &ReadOptions::default()),
            (String::new(), String::new())
        );
    }

    #[test]
    fn time_args_as_docker() {
        let now = DateTime::parse_from_rfc3339("2024-06-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let p = |s: &str| parse_time_arg(s, now).unwrap().to_rfc3339();
        assert_eq!(p("10m"), "2024-06-01T11:50:00+00:00");
        assert_eq!(p("1h30m"), "2024-06-01T10:30:00+00:00");
        assert_eq!(p("1.5h"), "2024-06-01T10:30:00+00:00");
        assert_eq!(p("90s"), "2024-06-01T11:58:30+00:00");
        assert_eq!(p("-1h"), "2024-06-01T13:00:00+00:00");
        assert_eq!(p("2024-01-02T03:04:05Z"), "2024-01-02T03:04:05+00:00");
        assert_eq!(
            p("2024-01-02T03:04:05.25Z"),
            "2024-01-02T03:04:05.250+00:00"
        );
        assert_eq!(p("2024-01-02T03:04:05+02:00"), "2024-01-02T01:04:05+00:00");
        assert_eq!(p("2024-01-02T03:04:05-05:30"), "2024-01-02T08:34:05+00:00");
        assert_eq!(p("2024-01-02T03Z"), "2024-01-02T03:00:00+00:00");
        assert_eq!(p("2024-01-02T03:04Z"), "2024-01-02T03:04:00+00:00");
        assert_eq!(p("0"), "1970-01-01T00:00:00+00:00");
        assert_eq!(p("1700000000"), "2023-11-14T22:13:20+00:00");
        assert_eq!(p("1700000000.5"), "2023-11-14T22:13:20.500+00:00");
        // Without a zone: local time, whatever this machine's zone is.
        let local = Local
            .with_ymd_and_hms(2024, 1, 2, 0, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_time_arg("2024-01-02", now).unwrap(), local);
        let local = Local
            .with_ymd_and_hms(2024, 1, 2, 3, 4, 5)
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_time_arg("2024-01-02T03:04:05", now).unwrap(), local);
        for bad in [
            "",
            "yesterday",
            "10x",
            "2024-13-01",
            "2024-01-02T25:00:00Z",
            "1.2.3",
            "h",
        ] {
            let e = parse_time_arg(bad, now).unwrap_err();
            assert!(
                e.to_string()
                    .contains("failed to parse value as time or duration"),
                "{bad}: {e}"
            );
        }
    }

    /// A writer rotating fast and a follower: every line arrives exactly
    /// once, in order, and the follower ends once told the writer is done.
    #[test]
    fn follow_survives_rotation_and_ends_when_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("ctr.log");
        let done = Arc::new(AtomicBool::new(false));
        let total = 3000;
        let writer = {
            let (log, done) = (log.clone(), done.clone());
            std::thread::spawn(move || {
                // Opened late: the follower must wait for the file.
                std::thread::sleep(Duration::from_millis(80));
                let opts = LogOptions {
                    max_size: Some(4096),
                    max_files: 100,
                };
                let mut w = LogWriter::open(&log, opts).unwrap();
                for n in 0..total {
                    w.write(Stream::Stdout, format!("line {n}\n").as_bytes())
                        .unwrap();
                    if n % 500 == 0 {
                        std::thread::sleep(Duration::from_millis(60));
                    }
                }
                w.write(Stream::Stderr, b"no newline").unwrap();
                w.flush().unwrap();
                done.store(true, Ordering::SeqCst);
            })
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let opts = ReadOptions {
            follow: true,
            ..Default::default()
        };
        read_log(&log, &opts, &mut out, &mut err, &|| {
            done.load(Ordering::SeqCst)
        })
        .unwrap();
        writer.join().unwrap();
        let got: Vec<usize> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| l.trim_start_matches("line ").parse().unwrap())
            .collect();
        assert_eq!(out_of_place(&got), None, "lines lost or repeated");
        assert_eq!(got.len(), total);
        assert_eq!(err, b"no newline");
        assert!(rotated_path(&log, 10).exists());
    }

    /// The first (index, line number) of lines numbered from 0 that is not
    /// where it belongs.
    fn out_of_place(got: &[usize]) -> Option<(usize, usize)> {
        got.iter().copied().enumerate().find(|(i, n)| i != n)
    }

    /// Reads while the writer rotates as fast as it can: every read sees
    /// the lines written so far in order, none lost or repeated.
    #[test]
    fn reads_during_rotation_see_every_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("ctr.log");
        let done = Arc::new(AtomicBool::new(false));
        let writer = {
            let (log, done) = (log.clone(), done.clone());
            std::thread::spawn(move || {
                let opts = LogOptions {
                    max_size: Some(1000),
                    max_files: 1000,
                };
                let mut w = LogWriter::open(&log, opts).unwrap();
                for n in 0..4000 {
                    w.write(Stream::Stdout, format!("{n}\n").as_bytes())
                        .unwrap();
                    w.flush().unwrap();
                }
                done.store(true, Ordering::SeqCst);
            })
        };
        let mut reads = 0;
        while !done.load(Ordering::SeqCst) {
            let (out, _) = run(&log, &ReadOptions::default());
            let got: Vec<usize> = out.lines().map(|l| l.parse().unwrap()).collect();
            assert_eq!(out_of_place(&got), None, "read {reads}: lost or repeated");
            reads += 1;
        }
        writer.join().unwrap();
        assert!(reads > 1);
    }

    #[test]
    fn follow_with_tail_starts_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let log = three_files(dir.path());
        let opts = ReadOptions {
            follow: true,
            tail: Some(1),
            ..Default::default()
        };
        let (out, err) = run(&log, &opts);
        assert_eq!((out.as_str(), err.as_str()), ("8\n", ""));
    }
}
