//! Writing a bundle directory: `config.json` and the anonymous volume dirs.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use nix::fcntl::OFlag;
use oci_spec::runtime::Spec;

use super::convert::VOLUMES_DIR;
use super::rootfs_file::open_in_rootfs;
use super::BundleError;

/// Writes `spec` as `dir/config.json` (pretty, atomically: a reader sees the
/// old file or the new one, never a part), creating `dir` if needed.
///
/// Bind mounts with a relative source (the runtime spec makes them relative
/// to the bundle) are written with the absolute path instead, because not
/// every runtime resolves them against the bundle. Sources under `volumes/`
/// are the anonymous volumes of [`super::image_to_spec`]: they are created
/// here, owned and moded like the image's directory at the mount point (so
/// that `VOLUME /data` after `chown app /data` stays writable by `app`).
pub fn write_bundle(dir: &Path, spec: &Spec) -> Result<(), BundleError> {
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source: io::Error| BundleError::Write { path, source }
    };
    fs::create_dir_all(dir).map_err(werr(dir))?;
    let dir = fs::canonicalize(dir).map_err(werr(dir))?;
    let rootfs = spec.root().as_ref().map(|r| dir.join(r.path()));

    let mut spec = spec.clone();
    if let Some(mounts) = spec.mounts_mut() {
        for m in mounts.iter_mut() {
            if m.typ().as_deref() != Some("bind") {
                continue;
            }
            let Some(source) = m.source().clone().filter(|s| s.is_relative()) else {
                continue;
            };
            let absolute = dir.join(&source);
            if source.starts_with(VOLUMES_DIR) {
                create_volume(&absolute, rootfs.as_deref(), m.destination())?;
            }
            m.set_source(Some(absolute));
        }
    }

    let json = serde_json::to_vec_pretty(&spec).map_err(|source| BundleError::Serialize {
        path: dir.clone(),
        source,
    })?;
    let tmp = dir.join(format!(".config.json.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
        fs::rename(&tmp, dir.join("config.json"))?;
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        // Best effort: a leftover temp file is harmless but untidy.
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(werr(&dir.join("config.json")))
}

fn create_volume(path: &Path, rootfs: Option<&Path>, dest: &Path) -> Result<(), BundleError> {
    let werr = |source: io::Error| BundleError::Write {
        path: path.to_path_buf(),
        source,
    };
    fs::create_dir_all(path).map_err(werr)?;
    let Some(rootfs) = rootfs.filter(|r| r.is_dir()) else {
        return Ok(());
    };
    let Some(image_dir) = open_in_rootfs(
        rootfs,
        &dest.to_string_lossy(),
        OFlag::O_PATH | OFlag::O_DIRECTORY,
    )
    .or_else(|e| match e {
        // Something that is not a directory at the mount point: the runtime
        // will report that, here there is just nothing to copy.
        BundleError::RootfsFile { ref source, .. }
            if source.raw_os_error() == Some(libc::ENOTDIR) =>
        {
            Ok(None)
        }
        e => Err(e),
    })?
    else {
        return Ok(());
    };
    let meta = image_dir.metadata().map_err(werr)?;
    std::os::unix::fs::chown(path, Some(meta.uid()), Some(meta.gid())).map_err(werr)?;
    fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() & 0o7777)).map_err(werr)?;
    Ok(())
}
