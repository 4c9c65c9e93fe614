//! `list`: every container under the root, as runc's table or JSON.

use crate::container::{list_ids, load, GlobalOpts, StateView};
use crate::error::{Result, RuntimeError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Json,
}

pub fn list(g: &GlobalOpts, format: ListFormat, quiet: bool) -> Result<String> {
    let mut states = Vec::new();
    for id in list_ids(g)? {
        // A container deleted while we read the root is simply not listed.
        match load(g, &id) {
            Ok(c) => states.push(StateView::of(&c)),
            Err(RuntimeError::NotExist(_)) => {}
            Err(e) => tracing::warn!("{e}"),
        }
    }
    if quiet {
        return Ok(states.iter().map(|s| format!("{}\n", s.id)).collect());
    }
    match format {
        ListFormat::Json => serde_json::to_string(&states)
            .map(|s| s + "\n")
            .map_err(|source| RuntimeError::Json {
                what: "container list".into(),
                source,
            }),
        ListFormat::Table => {
            let mut rows = vec![[
                "ID".to_string(),
                "PID".into(),
                "STATUS".into(),
                "BUNDLE".into(),
                "CREATED".into(),
                "OWNER".into(),
            ]];
            for s in &states {
                rows.push([
                    s.id.clone(),
                    s.pid.to_string(),
                    crate::error::status_name(s.status).to_string(),
                    s.bundle.display().to_string(),
                    s.created.clone(),
                    s.owner.clone(),
                ]);
            }
            Ok(tabulate(&rows))
        }
    }
}

/// Columns padded like Go's tabwriter with runc's settings (min width 12,
/// padding 1).
pub(crate) fn tabulate<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            widths[i] = widths[i].max(cell.len() + 1).max(12);
        }
    }
    let mut out = String::new();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == N {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}", w = widths[i]));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_lists_the_header_only() {
        let d = tempfile::tempdir().unwrap();
        let g = GlobalOpts {
            root: d.path().join("none"),
            systemd_cgroup: false,
        };
        let t = list(&g, ListFormat::Table, false).unwrap();
        assert!(t.starts_with("ID "), "{t}");
        assert_eq!(t.lines().count(), 1);
        assert_eq!(list(&g, ListFormat::Json, false).unwrap(), "[]\n");
        assert_eq!(list(&g, ListFormat::Table, true).unwrap(), "");
    }
}
