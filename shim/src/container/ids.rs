//! Container ids and names: docker's 64 hex digits, and a random
//! `adjective_surname` when no `--name` is given.

use std::fs::File;
use std::io::Read;

use super::ContainerError;

const URANDOM: &str = "/dev/urandom";

fn random_bytes<const N: usize>() -> Result<[u8; N], ContainerError> {
    let mut buf = [0u8; N];
    File::open(URANDOM)
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(ContainerError::io("read random bytes from", URANDOM))?;
    Ok(buf)
}

/// 64 random hex digits. Like docker, never one whose 12-digit short form
/// is all decimal digits, which tools would take for a number.
pub fn new_id() -> Result<String, ContainerError> {
    loop {
        let bytes: [u8; 32] = random_bytes()?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        if !short_id(&id).bytes().all(|b| b.is_ascii_digit()) {
            return Ok(id);
        }
    }
}

/// The 12 digits `ps` shows.
pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

pub fn is_valid_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// docker's `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn is_valid_name(name: &str) -> bool {
    let mut b = name.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// A `--name` as given: docker accepts and drops one leading slash.
pub fn normalize_name(name: &str) -> Result<String, ContainerError> {
    let n = name.strip_prefix('/').unwrap_or(name);
    if is_valid_name(n) {
        Ok(n.to_string())
    } else {
        Err(ContainerError::InvalidName {
            name: name.to_string(),
        })
    }
}

const ADJECTIVES: &[&str] = &[
    "amber", "brave", "calm", "clever", "dapper", "eager", "fancy", "gentle", "happy", "idle",
    "jolly", "keen", "lucid", "mellow", "nimble", "odd", "patient", "quiet", "rapid", "sharp",
    "snug", "tender", "upbeat", "vivid", "witty", "young", "zesty", "bold", "crisp", "dreamy",
];

const SURNAMES: &[&str] = &[
    "ampere",
    "babbage",
    "curie",
    "dirac",
    "euler",
    "faraday",
    "galois",
    "hopper",
    "kepler",
    "lovelace",
    "maxwell",
    "noether",
    "ohm",
    "pascal",
    "ramanujan",
    "shannon",
    "tesla",
    "turing",
    "volta",
    "wiles",
    "yalow",
    "zuse",
    "bohr",
    "cantor",
    "darwin",
    "fermi",
    "gauss",
    "hubble",
    "joule",
    "lamarr",
];

/// `adjective_surname`; from the `attempt`-th retry on (after a clash),
/// with a digit appended, as docker does, so a crowded host still finds one.
pub fn random_name(attempt: u32) -> Result<String, ContainerError> {
    let [a, b, c]: [u8; 3] = random_bytes()?;
    let mut name = format!(
        "{}_{}",
        ADJECTIVES[a as usize % ADJECTIVES.len()],
        SURNAMES[b as usize % SURNAMES.len()]
    );
    if attempt > 0 {
        name.push(char::from(b'0' + c % 10));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_hex_and_differ() {
        let a = new_id().unwrap();
        let b = new_id().unwrap();
        assert!(is_valid_id(&a), "{a}");
        assert_ne!(a, b);
        assert!(!short_id(&a).bytes().all(|c| c.is_ascii_digit()));
        assert_eq!(short_id(&a).len(), 12);
        assert!(!is_valid_id(&a[..63]));
        assert!(!is_valid_id(&a.to_uppercase()));
    }

    #[test]
    fn names_follow_dockers_pattern() {
        for ok in ["a", "web", "my_app.v1-2", "9lives", "A"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", "_x", ".x", "-x", "a b", "a/b", "é", "x:y"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
        assert_eq!(normalize_name("/web").unwrap(), "web");
        let e = normalize_name("bad name").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Invalid container name (bad name), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        );
    }

    #[test]
    fn random_names_are_valid() {
        for attempt in 0..50 {
            let n = random_name(attempt).unwrap();
            assert!(is_valid_name(&n), "{n}");
            let (adj, rest) = n.split_once('_').unwrap();
            assert!(ADJECTIVES.contains(&adj));
            if attempt == 0 {
                assert!(SURNAMES.contains(&rest), "{n}");
            } else {
                assert!(rest.ends_with(|c: char| c.is_ascii_digit()), "{n}");
            }
        }
    }
}
