//! The container state document printed by `state` and `list --format json`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
    /// A status this client does not know; kept rather than refused so a
    /// newer runtime does not break `list`.
    Other(String),
}

impl From<String> for Status {
    fn from(s: String) -> Self {
        match s.as_str() {
            "creating" => Status::Creating,
            "created" => Status::Created,
            "running" => Status::Running,
            "paused" => Status::Paused,
            "stopped" => Status::Stopped,
            _ => Status::Other(s),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
            Status::Other(s) => s,
        })
    }
}

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Status::from)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct State {
    pub id: String,
    /// 0 once the container is stopped.
    #[serde(default)]
    pub pid: i32,
    pub status: Status,
    #[serde(default)]
    pub bundle: PathBuf,
    #[serde(default)]
    pub rootfs: Option<PathBuf>,
    #[serde(default)]
    pub created: Option<String>,
    // runc prints `null` or omits the key when there are none.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub annotations: BTreeMap<String, String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

/// `list --format json` prints `null` (runc) or `[]` (keel-runtime) when
/// there are no containers.
pub(crate) fn parse_list(out: &[u8]) -> serde_json::Result<Vec<State>> {
    Ok(serde_json::from_slice::<Option<Vec<State>>>(out)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_of_runc_parses() {
        let s: State = serde_json::from_str(
            r#"{"ociVersion":"1.0.2-dev","id":"a","pid":42,"status":"running",
            "bundle":"/b","rootfs":"/b/rootfs","created":"2024-01-01T00:00:00Z",
            "owner":"","annotations":{"k":"v"}}"#,
        )
        .unwrap();
        assert_eq!(s.id, "a");
        assert_eq!(s.pid, 42);
        assert_eq!(s.status, Status::Running);
        assert_eq!(s.bundle, PathBuf::from("/b"));
        assert_eq!(s.annotations.get("k").map(String::as_str), Some("v"));
    }

    #[test]
    fn missing_or_null_annotations_are_empty() {
        let s: State =
            serde_json::from_str(r#"{"id":"a","pid":0,"status":"stopped","annotations":null}"#)
                .unwrap();
        assert!(s.annotations.is_empty());
        assert_eq!(s.status, Status::Stopped);
        let s: State = serde_json::from_str(r#"{"id":"a","status":"frozen"}"#).unwrap();
        assert_eq!(s.status, Status::Other("frozen".into()));
    }

    #[test]
    fn empty_list_is_null_or_array() {
        assert!(parse_list(b"null\n").unwrap().is_empty());
        assert!(parse_list(b"[]").unwrap().is_empty());
        let l = parse_list(br#"[{"id":"x","pid":1,"status":"created"}]"#).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].status, Status::Created);
    }
}
