//! The runtime's `--log F --log-format json` file: where its own error
//! message is found.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;

/// The log one call writes to, and where that call's lines start in it.
/// A user-given log is shared by every call (and appended to), so only the
/// part written after `start` belongs to this call.
pub(crate) struct CallLog {
    pub(crate) path: PathBuf,
    start: u64,
    owned: bool,
}

impl CallLog {
    pub(crate) fn shared(path: &Path) -> io::Result<CallLog> {
        let start = match fs::metadata(path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(CallLog {
            path: path.to_path_buf(),
            start,
            owned: false,
        })
    }

    /// A fresh file in the temp dir, removed when the call is over.
    pub(crate) fn temporary() -> io::Result<CallLog> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        loop {
            let path = std::env::temp_dir().join(format!(
                "keel-runtime-client-{}-{}-{nanos}.log",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            ));
            // create_new: never reuse (or follow a planted symlink at) a name.
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(_) => {
                    return Ok(CallLog {
                        path,
                        start: 0,
                        owned: true,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The message of the last error-level line this call wrote, if any.
    pub(crate) fn last_error(&self) -> io::Result<Option<String>> {
        let mut f = match File::open(&self.path) {
            Ok(f) => f,
            // A runtime that died before logging anything.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        f.seek(SeekFrom::Start(self.start))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(last_error_in(&String::from_utf8_lossy(&buf)))
    }
}

impl Drop for CallLog {
    fn drop(&mut self) {
        if self.owned {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    level: String,
    #[serde(default)]
    msg: String,
}

/// Lines that are not JSON (a runtime that ignored `--log-format`, a crash
/// trace) are skipped rather than failing the call: the exit status already
/// says it failed and stderr is the fallback text.
pub(crate) fn last_error_in(log: &str) -> Option<String> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Line>(l.trim()).ok())
        .filter(|l| matches!(l.level.as_str(), "error" | "fatal" | "panic"))
        .map(|l| l.msg)
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn picks_the_last_error_line() {
        let log = concat!(
            r#"{"level":"error","msg":"first","time":"t"}"#,
            "\n",
            r#"{"level":"warning","msg":"not this","time":"t"}"#,
            "\n",
            "garbage that is not json\n",
            r#"{"level":"error","msg":"container \"x\" does not exist","time":"t"}"#,
            "\n",
            r#"{"level":"info","msg":"later info","time":"t"}"#,
            "\n",
        );
        assert_eq!(
            last_error_in(log).as_deref(),
            Some("container \"x\" does not exist")
        );
        assert_eq!(last_error_in(r#"{"level":"info","msg":"x"}"#), None);
    }

    #[test]
    fn shared_log_only_reads_what_this_call_wrote() {
        let dir = std::env::temp_dir().join(format!("keel-client-log-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("shared.log");
        fs::write(&path, "{\"level\":\"error\",\"msg\":\"old call\"}\n").unwrap();
        let call = CallLog::shared(&path).unwrap();
        assert_eq!(call.last_error().unwrap(), None);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        writeln!(f, "{{\"level\":\"error\",\"msg\":\"this call\"}}").unwrap();
        assert_eq!(call.last_error().unwrap().as_deref(), Some("this call"));
        drop(call);
        assert!(path.exists(), "a user's log file is never removed");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn temporary_log_is_removed_on_drop() {
        let call = CallLog::temporary().unwrap();
        let path = call.path.clone();
        assert!(path.exists());
        drop(call);
        assert!(!path.exists());
    }
}
