//! `keel-build load -i FILE|DIR [--tag NAME]` and `import DIR NAME`.

use std::path::Path;

use anyhow::{Context, Result};
use keel_builder::archive::{import as import_dir, load};
use keel_builder::store::Store;

use super::print;

pub fn run(store: &Store, input: &Path, tag: Option<&str>) -> Result<u8> {
    let loaded = load(store, input, tag).with_context(|| format!("loading {}", input.display()))?;
    let mut out = String::new();
    for i in loaded {
        if i.names.is_empty() {
            out.push_str(&format!("Loaded image ID: {}\n", i.id));
        }
        for n in i.names {
            out.push_str(&format!("Loaded image: {n}\n"));
        }
    }
    print(&out)?;
    Ok(0)
}

pub fn import(store: &Store, dir: &Path, name: &str) -> Result<u8> {
    let image =
        import_dir(store, dir, name).with_context(|| format!("importing {}", dir.display()))?;
    print(&format!("{}\n", image.config_digest))?;
    Ok(0)
}
