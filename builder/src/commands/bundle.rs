//! `keel-build bundle IMAGE DIR [--copy] [-- CMD...]` and `unbundle DIR`.

use std::path::Path;

use anyhow::{Context, Result};
use keel_builder::bundle::{create_bundle, remove_bundle, BundleOptions, SpecOptions};
use keel_builder::store::Store;

pub fn run(store: &Store, image: &str, dir: &Path, copy: bool, args: Vec<String>) -> Result<u8> {
    let opts = BundleOptions {
        copy,
        spec: SpecOptions {
            args: (!args.is_empty()).then_some(args),
            ..Default::default()
        },
    };
    create_bundle(store, image, dir, &opts)
        .with_context(|| format!("bundle of {image} in {}", dir.display()))?;
    Ok(0)
}

pub fn unbundle(dir: &Path) -> Result<u8> {
    remove_bundle(dir).with_context(|| format!("removing bundle {}", dir.display()))?;
    Ok(0)
}
