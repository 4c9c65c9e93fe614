//! Detach keys: docker's `--detach-keys` format and the matcher that
//! watches a client's stdin for the sequence.

/// ctrl-p ctrl-q, docker's default.
pub const DEFAULT_DETACH_KEYS: &[u8] = &[0x10, 0x11];

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeysError {
    #[error("detach keys {spec:?}: invalid key {key:?} (want a single character or ctrl-<a-z, @, [, \\, ], ^, _>)")]
    InvalidKey { spec: String, key: String },
}

/// Parses docker's format: comma-separated keys, each one character or
/// `ctrl-X`. An empty string gives no keys: detaching is then off.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>, KeysError> {
    if spec.is_empty() {
        return Ok(Vec::new());
    }
    spec.split(',')
        .map(|key| {
            let invalid = || KeysError::InvalidKey {
                spec: spec.to_string(),
                key: key.to_string(),
            };
            let lower = key.to_ascii_lowercase();
            if let Some(c) = lower.strip_prefix("ctrl-") {
                let b = match c.as_bytes() {
                    [b @ b'a'..=b'z'] => b - b'a' + 1,
                    [b'@'] => 0,
                    [b'['] => 27,
                    [b'\\'] => 28,
                    [b']'] => 29,
                    [b'^'] => 30,
                    [b'_'] => 31,
                    _ => return Err(invalid()),
                };
                Ok(b)
            } else if key.len() == 1 && key.is_ascii() {
                Ok(key.as_bytes()[0])
            } else {
                Err(invalid())
            }
        })
        .collect()
}

/// Watches input for the detach sequence. Bytes that might start it are
/// held back; when the next byte breaks the sequence they are released
/// with it, so a user typing ctrl-p alone still gets it to the container.
#[derive(Debug, Clone)]
pub struct DetachMatcher {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachMatcher {
    pub fn new(keys: Vec<u8>) -> DetachMatcher {
        DetachMatcher { keys, matched: 0 }
    }

    /// Appends to `out` what should go to the container; true when the
    /// whole sequence has been typed (what followed it is dropped).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        if self.keys.is_empty() {
            out.extend_from_slice(input);
            return false;
        }
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return true;
                }
                continue;
            }
            if self.matched > 0 {
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
                // The breaking byte may itself begin a new sequence.
                if b == self.keys[0] {
                    self.matched = 1;
                    continue;
                }
            }
            out.push(b);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_formats() {
        assert_eq!(
            parse_detach_keys("ctrl-p,ctrl-q").unwrap(),
            DEFAULT_DETACH_KEYS
        );
        assert_eq!(parse_detach_keys("ctrl-a,x,ctrl-@").unwrap(), [1, b'x', 0]);
        assert_eq!(
            parse_detach_keys("ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_").unwrap(),
            [27, 28, 29, 30, 31]
        );
        assert_eq!(parse_detach_keys("CTRL-Z").unwrap(), [26]);
        assert!(parse_detach_keys("").unwrap().is_empty());
    }

    #[test]
    fn refuses_bad_keys_naming_them() {
        assert_eq!(
            parse_detach_keys("ctrl-p,ab"),
            Err(KeysError::InvalidKey {
                spec: "ctrl-p,ab".into(),
                key: "ab".into()
            })
        );
        assert!(parse_detach_keys("ctrl-1").is_err());
        assert!(parse_detach_keys("ctrl-p,").is_err());
    }

    #[test]
    fn detects_the_sequence_across_reads_and_keeps_what_came_before() {
        let mut m = DetachMatcher::new(DEFAULT_DETACH_KEYS.to_vec());
        let mut out = Vec::new();
        assert!(!m.feed(b"ls\x10", &mut out));
        assert_eq!(out, b"ls");
        assert!(m.feed(b"\x11after", &mut out));
        assert_eq!(out, b"ls");
    }

    #[test]
    fn a_broken_sequence_is_sent_as_typed() {
        let mut m = DetachMatcher::new(DEFAULT_DETACH_KEYS.to_vec());
        let mut out = Vec::new();
        assert!(!m.feed(b"\x10a", &mut out));
        assert_eq!(out, b"\x10a");
        out.clear();
        // ctrl-p ctrl-p ctrl-q: the first is released, the next two detach.
        assert!(m.feed(b"\x10\x10\x11", &mut out));
        assert_eq!(out, b"\x10");
    }

    #[test]
    fn no_keys_passes_everything() {
        let mut m = DetachMatcher::new(Vec::new());
        let mut out = Vec::new();
        assert!(!m.feed(b"\x10\x11", &mut out));
        assert_eq!(out, b"\x10\x11");
    }
}
