//! `keel-build inspect IMAGE`: id, names, manifest, config, layers, history.

use anyhow::{Context, Result};
use keel_builder::store::Store;

use super::print;

pub fn run(store: &Store, image: &str) -> Result<u8> {
    let i = store
        .resolve(image)
        .with_context(|| format!("image {image}"))?;
    let v = serde_json::json!([{
        "Id": i.config_digest.to_string(),
        "RepoTags": i.names,
        "ManifestDigest": i.manifest_digest.to_string(),
        "Created": i.config.created,
        "Author": i.config.author,
        "Architecture": i.config.architecture,
        "Os": i.config.os,
        "Config": i.config.config,
        "RootFS": { "Type": i.config.rootfs.kind, "Layers": i.config.rootfs.diff_ids },
        "Layers": i.manifest.layers(),
        "History": i.config.history,
    }]);
    print(&(serde_json::to_string_pretty(&v)? + "\n"))?;
    Ok(0)
}
