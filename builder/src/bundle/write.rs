//! Writing a bundle directory: `config.json` and the anonymous volume dirs.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

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

    let serr = |source| BundleError::Serialize {
        path: dir.clone(),
        source,
    };
    let mut value = serde_json::to_value(&spec).map_err(serr)?;
    sort_capabilities(&mut value);
    let json = serde_json::to_vec_pretty(&value).map_err(serr)?;
    // pid and a counter: two threads writing the same bundle must not share
    // a temp file, or one could rename the other's half-written one.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".config.json.{}.{seq}.tmp", std::process::id()));
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

/// oci-spec keeps capabilities in hash sets, so their order would change
/// from run to run; sorted, the same spec always gives the same file.
fn sort_capabilities(value: &mut serde_json::Value) {
    let Some(caps) = value
        .pointer_mut("/process/capabilities")
        .and_then(|c| c.as_object_mut())
    else {
        return;
    };
    for set in caps.values_mut() {
        if let Some(list) = set.as_array_mut() {
            list.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{image_to_spec, SpecOptions};
    use oci_spec::image::ImageConfiguration;
    use std::path::PathBuf;
    use std::process::{Command, Stdio};

    fn image(config: serde_json::Value) -> ImageConfiguration {
        serde_json::from_value(serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": []}
        }))
        .unwrap()
    }

    /// A busybox rootfs under `bundle/rootfs` with `app` (1000:1000) owning
    /// `/data`; the chown needs root, so only root tests call it.
    fn busybox_rootfs(bundle: &Path) -> PathBuf {
        let rootfs = bundle.join("rootfs");
        for d in ["bin", "etc", "data", "work", "proc", "dev", "sys", "tmp"] {
            fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/work:/bin/sh\n",
        )
        .unwrap();
        fs::write(rootfs.join("etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
        std::os::unix::fs::chown(rootfs.join("data"), Some(1000), Some(1000)).unwrap();
        fs::set_permissions(rootfs.join("data"), fs::Permissions::from_mode(0o750)).unwrap();
        rootfs
    }

    #[test]
    fn config_json_is_written_pretty_and_volume_sources_made_absolute() {
        let bundle = tempfile::tempdir().unwrap();
        let rootfs = bundle.path().join("rootfs");
        fs::create_dir_all(rootfs.join("etc")).unwrap();
        let cfg = image(serde_json::json!({"Cmd": ["/bin/true"], "Volumes": {"/data": {}}}));
        let spec = image_to_spec(&cfg, &rootfs, &SpecOptions::default()).unwrap();
        write_bundle(bundle.path(), &spec).unwrap();

        let text = fs::read_to_string(bundle.path().join("config.json")).unwrap();
        assert!(text.contains("\n  \"ociVersion\""), "not pretty: {text}");
        let written = Spec::load(bundle.path().join("config.json")).unwrap();
        let volume = written
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.destination() == Path::new("/data"))
            .unwrap();
        let expected = fs::canonicalize(bundle.path()).unwrap().join("volumes/0");
        assert_eq!(volume.source().as_deref(), Some(expected.as_path()));
        assert!(expected.is_dir());
        // Everything else is as converted; no temp file is left behind.
        assert_eq!(written.process(), spec.process());
        let names: Vec<String> = fs::read_dir(bundle.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(names.is_empty(), "{names:?}");
        let caps = &serde_json::from_str::<serde_json::Value>(&text).unwrap()["process"]
            ["capabilities"]["bounding"];
        let caps: Vec<&str> = caps
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        let mut sorted = caps.clone();
        sorted.sort();
        assert_eq!(caps, sorted);
        // Rewriting replaces the file.
        write_bundle(bundle.path(), &spec).unwrap();
        assert_eq!(
            Spec::load(bundle.path().join("config.json")).unwrap(),
            written
        );
    }

    #[test]
    fn volume_dir_takes_owner_and_mode_of_the_images_dir() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let bundle = tempfile::tempdir().unwrap();
        let rootfs = busybox_rootfs(bundle.path());
        let cfg = image(serde_json::json!({"Cmd": ["x"], "Volumes": {"/data": {}, "/fresh": {}}}));
        let spec = image_to_spec(&cfg, &rootfs, &SpecOptions::default()).unwrap();
        write_bundle(bundle.path(), &spec).unwrap();
        let meta = fs::metadata(bundle.path().join("volumes/0")).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (1000, 1000, 0o750)
        );
        // No such dir in the image: a plain root-owned one.
        let meta = fs::metadata(bundle.path().join("volumes/1")).unwrap();
        assert_eq!((meta.uid(), meta.is_dir()), (0, true));
    }

    /// Deletes the container even when the test fails half-way.
    struct Container {
        runc_root: PathBuf,
        id: String,
    }

    impl Drop for Container {
        fn drop(&mut self) {
            let _ = Command::new("runc")
                .arg("--root")
                .arg(&self.runc_root)
                .args(["delete", "-f", &self.id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    fn runc_run(bundle: &Path, runc_root: &Path, name: &str) -> std::process::Output {
        let container = Container {
            runc_root: runc_root.to_path_buf(),
            id: format!("keel-test-bundle-{}-{name}", std::process::id()),
        };
        let out = Command::new("runc")
            .arg("--root")
            .arg(runc_root)
            .args(["run", "--bundle"])
            .arg(bundle)
            .arg(&container.id)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        drop(container);
        out
    }

    fn have_runc_and_busybox() -> bool {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return false;
        }
        let runc = Command::new("runc")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !runc || !Path::new("/bin/busybox").exists() {
            eprintln!("skipped: needs runc and /bin/busybox (apt-get install runc busybox-static)");
            return false;
        }
        true
    }

    #[test]
    fn runc_runs_a_written_bundle() {
        if !have_runc_and_busybox() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let bundle = tmp.path().join("bundle");
        let runc_root = tmp.path().join("runc-root");
        let rootfs = busybox_rootfs(&bundle);

        let cfg = image(serde_json::json!({"Cmd": ["/bin/busybox", "true"]}));
        let spec = image_to_spec(&cfg, &rootfs, &SpecOptions::default()).unwrap();
        write_bundle(&bundle, &spec).unwrap();
        let out = runc_run(&bundle, &runc_root, "true");
        assert!(
            out.status.success(),
            "runc run failed: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );

        // The converted user, cwd, env and volume are what the process sees,
        // and the volume's writes stay out of the rootfs.
        let script = "set -e; \
            test \"$(/bin/busybox id -u):$(/bin/busybox id -g)\" = 1000:1000; \
            test \"$(/bin/busybox pwd)\" = /work; \
            test \"$GREETING\" = hi; \
            echo from-container > /data/out";
        let cfg = image(serde_json::json!({
            "Entrypoint": ["/bin/busybox", "sh", "-c"],
            "Cmd": [script],
            "User": "app",
            "WorkingDir": "/work",
            "Env": ["GREETING=hello"],
            "Volumes": {"/data": {}}
        }));
        let opts = SpecOptions {
            env: vec!["GREETING=hi".into()],
            ..Default::default()
        };
        let spec = image_to_spec(&cfg, &rootfs, &opts).unwrap();
        write_bundle(&bundle, &spec).unwrap();
        let out = runc_run(&bundle, &runc_root, "checks");
        assert!(
            out.status.success(),
            "container checks failed: {:?}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            fs::read_to_string(bundle.join("volumes/0/out")).unwrap(),
            "from-container\n"
        );
        assert!(!rootfs.join("data/out").exists());
    }

    #[test]
    fn runc_runs_on_an_overlay_rootfs() {
        if !have_runc_and_busybox() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let layers = tmp.path().join("layers");
        // Bottom layer: busybox; top layer: a file the container reads.
        busybox_rootfs(&layers.join("base"));
        fs::rename(layers.join("base/rootfs"), layers.join("base-diff")).unwrap();
        fs::create_dir_all(layers.join("top/etc")).unwrap();
        fs::write(layers.join("top/etc/motd"), "from the top layer\n").unwrap();
        let bundle = tmp.path().join("bundle");
        let (upper, work) = (bundle.join("upper"), bundle.join("work"));
        fs::create_dir_all(&upper).unwrap();
        fs::create_dir_all(&work).unwrap();
        let rootfs = bundle.join("rootfs");
        let guard = crate::bundle::OverlayGuard::mount(
            &layers,
            &["top".to_string(), "base-diff".to_string()],
            Some(&upper),
            Some(&work),
            &rootfs,
        )
        .unwrap();

        let cfg = image(serde_json::json!({
            "Cmd": ["/bin/busybox", "sh", "-c", "/bin/busybox cp /etc/motd /copied"]
        }));
        let spec = image_to_spec(&cfg, &rootfs, &SpecOptions::default()).unwrap();
        write_bundle(&bundle, &spec).unwrap();
        let out = runc_run(&bundle, &tmp.path().join("runc-root"), "overlay");
        assert!(
            out.status.success(),
            "runc run failed: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        guard.unmount().unwrap();
        assert_eq!(
            fs::read_to_string(upper.join("copied")).unwrap(),
            "from the top layer\n"
        );
        assert!(!layers.join("top/copied").exists() && !layers.join("base-diff/copied").exists());
    }
}
