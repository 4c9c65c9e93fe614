//! `keel-build check`: every blob's digest, every image's blobs and layers.

use anyhow::Result;
use keel_builder::store::Store;

use super::print;

pub fn run(store: &Store) -> Result<u8> {
    let r = store.check()?;
    let mut out = String::new();
    for p in &r.problems {
        out.push_str(&format!("problem: {p}\n"));
    }
    out.push_str(&format!(
        "{} blobs and {} images checked, {} problems\n",
        r.blobs_checked,
        r.images_checked,
        r.problems.len()
    ));
    print(&out)?;
    Ok(if r.is_ok() { 0 } else { 1 })
}
