//! `keel-build rmi IMAGE...`: by name removes that name, and the image once
//! it has no other; by id removes the image with all its names. Blobs and
//! layers go with the next `prune`, as nothing else may use them then.

use anyhow::{Context, Result};
use keel_builder::store::Store;

use super::print;

pub fn run(store: &Store, images: &[String]) -> Result<u8> {
    let mut failed = false;
    for name in images {
        match remove(store, name) {
            Ok(lines) => print(&lines)?,
            Err(e) => {
                eprintln!("keel-build: rmi {name}: {e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

fn remove(store: &Store, name: &str) -> Result<String> {
    let image = store.resolve(name)?;
    let by_name = keel_builder::store::normalize_name(name)
        .ok()
        .filter(|n| image.names.contains(n));
    let mut out = String::new();
    if let Some(n) = by_name {
        store.untag(&n).with_context(|| format!("untag {n}"))?;
        out.push_str(&format!("Untagged: {n}\n"));
        if image.names.len() > 1 {
            return Ok(out);
        }
    }
    for n in store.remove_image(&image.manifest_digest)? {
        out.push_str(&format!("Untagged: {n}\n"));
    }
    out.push_str(&format!("Deleted: {}\n", image.config_digest));
    Ok(out)
}
