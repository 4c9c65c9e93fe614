//! `keel-build history IMAGE`: newest step first, as docker shows it.

use anyhow::{Context, Result};
use keel_builder::store::Store;

use super::images::table;
use super::{ago, human_size, print};
use crate::cli::ListFormat;

pub fn run(store: &Store, image: &str, format: ListFormat) -> Result<u8> {
    let i = store
        .resolve(image)
        .with_context(|| format!("image {image}"))?;
    // Layer sizes line up with the history entries that made a layer.
    let mut sizes = i.manifest.layers().iter().map(|l| l.size());
    let mut rows = Vec::new();
    for h in &i.config.history {
        let size = if h.empty_layer {
            0
        } else {
            sizes.next().unwrap_or(0)
        };
        rows.push((h, size));
    }
    if format == ListFormat::Json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .rev()
            .map(|(h, size)| {
                serde_json::json!({
                    "Created": h.created,
                    "CreatedBy": h.created_by,
                    "Size": size,
                    "Comment": h.comment,
                    "EmptyLayer": h.empty_layer,
                })
            })
            .collect();
        print(&(serde_json::to_string_pretty(&v)? + "\n"))?;
        return Ok(0);
    }
    let mut t = vec![[
        "CREATED".to_string(),
        "CREATED BY".to_string(),
        "SIZE".to_string(),
        "COMMENT".to_string(),
    ]];
    for (h, size) in rows.iter().rev() {
        let by: String = h.created_by.clone().unwrap_or_default();
        let by = if by.chars().count() > 60 {
            by.chars().take(57).collect::<String>() + "..."
        } else {
            by
        };
        t.push([
            ago(h.created.as_deref()),
            by,
            human_size(*size),
            h.comment.clone().unwrap_or_default(),
        ]);
    }
    print(&table(&t))?;
    Ok(0)
}
