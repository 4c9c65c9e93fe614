//! `keel-build prune [--all]`: dangling images, then unreferenced blobs and
//! layers; `--all` drops the build cache first, so its layers go too.

use anyhow::Result;
use keel_builder::store::Store;

use super::{human_size, print};

pub fn run(store: &Store, all: bool) -> Result<u8> {
    let mut out = String::new();
    if all {
        let n = store.clear_cache()?;
        out.push_str(&format!("Removed {n} build cache records\n"));
    }
    let r = store.prune(&|_| false)?;
    for d in &r.images_removed {
        out.push_str(&format!("Deleted image manifest: {d}\n"));
    }
    out.push_str(&format!(
        "Removed {} blobs and {} layers; reclaimed {}\n",
        r.blobs_removed.len(),
        r.layers_removed.len(),
        human_size(r.bytes_freed)
    ));
    print(&out)?;
    Ok(0)
}
