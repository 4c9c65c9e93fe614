//! Step keys. The encoding is unambiguous (every field length-prefixed, every extra tagged
//! with its kind), so no two different inputs share a byte stream: `RUN a` + extra `b`
//! never collides with `RUN ab`.

use std::io::Write;

use crate::digest::{Digest, DigestWriter};

/// Bumped when the meaning of a key changes, so that old records stop matching.
const KEY_VERSION: &[u8] = b"keel-step-key-v1";

/// A value a step depends on besides its parent and instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPart<'a> {
    /// Content, e.g. the digest of COPY's sources.
    Digest(&'a Digest),
    /// A literal, e.g. a build arg's value.
    Text(&'a str),
}

impl<'a> From<&'a Digest> for KeyPart<'a> {
    fn from(d: &'a Digest) -> Self {
        KeyPart::Digest(d)
    }
}

impl<'a> From<&'a str> for KeyPart<'a> {
    fn from(s: &'a str) -> Self {
        KeyPart::Text(s)
    }
}

/// The cache key of a step: `parent` is the identity of the state it runs on (the parent
/// image's config digest or chain state), `instruction` its text after substitution,
/// `extras` named inputs. Extras are sorted by name first, so the order callers gather them
/// in (build args come from a map) does not change the key; names should be unique.
pub fn step_key(parent: &Digest, instruction: &str, extras: &[(&str, KeyPart<'_>)]) -> Digest {
    let mut extras: Vec<&(&str, KeyPart<'_>)> = extras.iter().collect();
    extras.sort_by(|a, b| a.0.cmp(b.0));
    let mut w = DigestWriter::new(std::io::sink());
    let mut field = |bytes: &[u8]| {
        // Writes to a sink cannot fail.
        let _ = w.write_all(&(bytes.len() as u64).to_be_bytes());
        let _ = w.write_all(bytes);
    };
    field(KEY_VERSION);
    field(parent.as_str().as_bytes());
    field(instruction.as_bytes());
    field(&(extras.len() as u64).to_be_bytes());
    for (name, part) in extras {
        field(name.as_bytes());
        match part {
            KeyPart::Digest(d) => {
                field(b"d");
                field(d.as_str().as_bytes());
            }
            KeyPart::Text(t) => {
                field(b"t");
                field(t.as_bytes());
            }
        }
    }
    w.finish().1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent() -> Digest {
        Digest::of_bytes(b"parent")
    }

    #[test]
    fn same_inputs_same_key() {
        let a = step_key(&parent(), "RUN make", &[("ARG X", "1".into())]);
        let b = step_key(&parent(), "RUN make", &[("ARG X", "1".into())]);
        assert_eq!(a, b);
    }

    #[test]
    fn every_input_changes_the_key() {
        let base = step_key(&parent(), "RUN make", &[]);
        assert_ne!(base, step_key(&Digest::of_bytes(b"other"), "RUN make", &[]));
        assert_ne!(base, step_key(&parent(), "RUN make all", &[]));
        assert_ne!(
            base,
            step_key(&parent(), "RUN make", &[("ARG X", "".into())])
        );
        let d = Digest::of_bytes(b"content");
        assert_ne!(
            step_key(&parent(), "COPY . .", &[("src", (&d).into())]),
            step_key(&parent(), "COPY . .", &[("src", d.as_str().into())]),
            "a digest and the same text are different kinds of input"
        );
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        assert_ne!(
            step_key(&parent(), "RUN a", &[("b", "c".into())]),
            step_key(&parent(), "RUN ab", &[("", "c".into())]),
        );
        assert_ne!(
            step_key(&parent(), "RUN", &[("x", "y".into()), ("z", "".into())]),
            step_key(&parent(), "RUN", &[("x", "yz".into())]),
        );
    }

    #[test]
    fn extras_order_does_not_matter() {
        let a = step_key(&parent(), "RUN", &[("A", "1".into()), ("B", "2".into())]);
        let b = step_key(&parent(), "RUN", &[("B", "2".into()), ("A", "1".into())]);
        assert_eq!(a, b);
    }
}
