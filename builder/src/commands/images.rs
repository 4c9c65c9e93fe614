//! `keel-build images`: docker's table, or JSON.

use anyhow::Result;
use keel_builder::store::Store;

use super::{ago, human_size, print, short_id};
use crate::cli::ListFormat;

pub fn run(store: &Store, format: ListFormat, quiet: bool) -> Result<u8> {
    let images = store.images()?;
    if quiet {
        let mut out = String::new();
        for i in &images {
            out.push_str(short_id(&i.id));
            out.push('\n');
        }
        print(&out)?;
        return Ok(0);
    }
    if format == ListFormat::Json {
        let v: Vec<serde_json::Value> = images
            .iter()
            .map(|i| {
                serde_json::json!({
                    "Id": i.id.to_string(),
                    "RepoTags": i.names,
                    "ManifestDigest": i.manifest_digest.to_string(),
                    "Created": i.created,
                    "Size": i.size,
                })
            })
            .collect();
        print(&(serde_json::to_string_pretty(&v)? + "\n"))?;
        return Ok(0);
    }
    let mut rows = vec![[
        "REPOSITORY".to_string(),
        "TAG".to_string(),
        "IMAGE ID".to_string(),
        "CREATED".to_string(),
        "SIZE".to_string(),
    ]];
    for i in &images {
        let names = if i.names.is_empty() {
            vec![("<none>".to_string(), "<none>".to_string())]
        } else {
            i.names
                .iter()
                .map(|n| match n.rsplit_once(':') {
                    Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
                    _ => (n.clone(), "<none>".to_string()),
                })
                .collect()
        };
        for (repo, tag) in names {
            rows.push([
                repo,
                tag,
                short_id(&i.id).to_string(),
                ago(i.created.as_deref()),
                human_size(i.size),
            ]);
        }
    }
    print(&table(&rows))?;
    Ok(0)
}

/// Columns padded to their widest cell, three spaces apart (docker's look).
pub fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == N {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
