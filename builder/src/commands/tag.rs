//! `keel-build tag SOURCE TARGET`.

use anyhow::{Context, Result};
use keel_builder::store::Store;

pub fn run(store: &Store, source: &str, target: &str) -> Result<u8> {
    let image = store
        .resolve(source)
        .with_context(|| format!("image {source}"))?;
    let size = std::fs::metadata(store.blob_path(&image.manifest_digest))
        .with_context(|| format!("manifest of {source}"))?
        .len();
    let digest = image
        .manifest_digest
        .as_str()
        .parse::<oci_spec::image::Digest>()
        .with_context(|| format!("manifest digest of {source}"))?;
    let desc =
        oci_spec::image::Descriptor::new(oci_spec::image::MediaType::ImageManifest, size, digest);
    store
        .tag(target, desc)
        .with_context(|| format!("tag {target}"))?;
    Ok(0)
}
