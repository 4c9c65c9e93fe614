//! `keel-build import DIR NAME` (stand-in until archive::import lands).

use std::path::Path;

use anyhow::{Context, Result};
use keel_builder::cache::LayerRef;
use keel_builder::image::{History, ImageConfig};
use keel_builder::layer::{compress_layer, write_dir, LayerOptions};
use keel_builder::store::Store;

pub fn run(store: &Store, dir: &Path, name: &str) -> Result<u8> {
    let opts = LayerOptions::default();
    let mut w = store.blob_writer()?;
    let blob = compress_layer(|out| write_dir(dir, out, &opts), &mut w)
        .with_context(|| format!("reading {}", dir.display()))?;
    let (digest, size) = w.commit()?;
    store.ensure_layer(&blob.diff_id, |dest: &Path| -> Result<(), std::io::Error> {
        let st = std::process::Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", dir.display()))
            .arg(dest)
            .status()?;
        if st.success() {
            Ok(())
        } else {
            Err(std::io::Error::other("cp failed"))
        }
    })?;
    let mut config = ImageConfig::scratch();
    config.rootfs.diff_ids.push(blob.diff_id.clone());
    config.created = Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    config.config.cmd = Some(vec!["sh".to_string()]);
    config.history.push(History {
        created: config.created.clone(),
        created_by: Some(format!("keel-build import {}", dir.display())),
        ..Default::default()
    });
    let layer = LayerRef {
        diff_id: blob.diff_id,
        digest,
        size,
        media_type: oci_spec::image::MediaType::ImageLayerGzip.to_string(),
    };
    let image = store.commit_image(&config, &[layer.descriptor()?], Some(name))?;
    super::print(&format!("{}\n", image.config_digest))?;
    Ok(0)
}
