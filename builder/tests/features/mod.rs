//! Helpers of the Dockerfile feature tests: a private store with the busybox
//! base imported, build contexts written from (path, content) lists, and
//! bundles run by keel-runtime, every one undone by a guard.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use serde_json::Value;
use tempfile::TempDir;

pub type Files<'a> = &'a [(&'a str, &'a str)];

/// The binaries run from copies taken when the test process starts (in
/// cargo's tmp dir for tests, renamed into place so a running copy is
/// never overwritten): in a target dir shared between worktrees, another
/// `cargo build` replaces the originals at any time.
fn snapshot(cell: &'static OnceLock<PathBuf>, built: PathBuf) -> &'static Path {
    cell.get_or_init(|| {
        let name = built.file_name().expect("binary name").to_string_lossy();
        assert!(
            built.is_file(),
            "{} is missing: run `cargo build -p keel-runtime` first",
            built.display()
        );
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let p = dir.join(format!("{name}-features"));
        let partial = dir.join(format!("{name}-features.{}", std::process::id()));
        fs::copy(&built, &partial).expect("copying a binary");
        fs::rename(&partial, &p).expect("renaming a binary copy");
        p
    })
}

fn keel_build() -> &'static Path {
    static COPY: OnceLock<PathBuf> = OnceLock::new();
    snapshot(&COPY, PathBuf::from(env!("CARGO_BIN_EXE_keel-build")))
}

/// keel-runtime is another package's binary: cargo puts it beside ours.
fn keel_runtime() -> &'static Path {
    static COPY: OnceLock<PathBuf> = OnceLock::new();
    let built = Path::new(env!("CARGO_BIN_EXE_keel-build")).with_file_name("keel-runtime");
    snapshot(&COPY, built)
}

/// The busybox base tree, made once per test process (the script is a
/// no-op when its cached tree is current).
fn busybox_tree() -> &'static Path {
    static TREE: OnceLock<PathBuf> = OnceLock::new();
    TREE.get_or_init(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(|| PathBuf::from("/root/.cache"));
        let tree = cache.join("keel/bases/busybox");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/base-rootfs.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg("busybox")
            .arg(&tree)
            .output()
            .expect("running base-rootfs.sh");
        assert!(
            out.status.success(),
            "base-rootfs.sh busybox failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tree
    })
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

pub struct Env {
    pub tmp: TempDir,
    pub store: PathBuf,
    contexts: AtomicUsize,
}

impl Env {
    /// None (and a note) when not root: the tests need mounts and containers.
    pub fn new() -> Option<Env> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return None;
        }
        let tmp = tempfile::Builder::new()
            .prefix("keel-test-features-")
            .tempdir()
            .expect("temp dir");
        let store = tmp.path().join("store");
        let env = Env {
            store,
            tmp,
            contexts: AtomicUsize::new(0),
        };
        let tree = busybox_tree();
        let out = env.kb(&[
            "import".as_ref(),
            tree.as_os_str(),
            "local/busybox:latest".as_ref(),
        ]);
        assert!(out.status.success(), "import: {}", stderr(&out));
        Some(env)
    }

    pub fn kb<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Output {
        Command::new(keel_build())
            .arg("--root")
            .arg(&self.store)
            .args(args)
            .output()
            .expect("running keel-build")
    }

    /// A fresh context directory holding `files`.
    pub fn context(&self, files: Files) -> PathBuf {
        self.context_with(files, &[])
    }

    pub fn context_with(&self, files: Files, binary: &[(&str, &[u8])]) -> PathBuf {
        let n = self.contexts.fetch_add(1, Ordering::SeqCst);
        let dir = self.tmp.path().join(format!("ctx{n}"));
        let text = files.iter().map(|(p, c)| (*p, c.as_bytes()));
        for (rel, content) in text.chain(binary.iter().copied()) {
            let p = dir.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, content).unwrap();
        }
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    pub fn build(&self, ctx: &Path, args: &[&str]) -> Output {
        let mut all: Vec<&std::ffi::OsStr> = vec!["build".as_ref(), "--progress".as_ref()];
        all.push("plain".as_ref());
        all.push("--runtime".as_ref());
        let rt = keel_runtime();
        all.push(rt.as_os_str());
        all.extend(args.iter().map(std::ffi::OsStr::new));
        all.push(ctx.as_os_str());
        self.kb(&all)
    }

    /// Builds and returns the progress log (stderr).
    pub fn build_ok(&self, ctx: &Path, args: &[&str]) -> String {
        let out = self.build(ctx, args);
        let log = stderr(&out);
        assert!(out.status.success(), "build {args:?} failed:\n{log}");
        log
    }

    pub fn inspect(&self, image: &str) -> Value {
        let out = self.kb(&["inspect", image]);
        assert!(out.status.success(), "inspect {image}: {}", stderr(&out));
        let v: Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
        v[0].clone()
    }

    pub fn config(&self, image: &str) -> Value {
        self.inspect(image)["Config"].clone()
    }

    /// `cmd` in an overlay bundle of `image`; its stdout.
    pub fn run(&self, image: &str, cmd: &[&str]) -> String {
        self.run_bundle(image, false, cmd)
    }

    /// `cmd` in a `bundle --copy` (a flattened rootfs) of `image`.
    pub fn run_copy(&self, image: &str, cmd: &[&str]) -> String {
        self.run_bundle(image, true, cmd)
    }

    /// The image's own ENTRYPOINT and CMD.
    pub fn run_default(&self, image: &str) -> String {
        self.run_bundle(image, false, &[])
    }

    fn run_bundle(&self, image: &str, copy: bool, cmd: &[&str]) -> String {
        let bundle = self.bundle(image, copy, cmd);
        self.run_in(&bundle)
    }

    /// A bundle of `image` (with `cmd` instead of its own, if not empty),
    /// unbundled when the returned guard goes.
    pub fn bundle(&self, image: &str, copy: bool, cmd: &[&str]) -> Bundle {
        let n = RUNS.fetch_add(1, Ordering::SeqCst);
        let bundle = Bundle {
            dir: self.tmp.path().join(format!("bundle{n}")),
        };
        let mut args: Vec<&std::ffi::OsStr> = vec!["bundle".as_ref(), image.as_ref()];
        args.push(bundle.dir.as_os_str());
        if copy {
            args.push("--copy".as_ref());
        }
        if !cmd.is_empty() {
            args.push("--".as_ref());
            args.extend(cmd.iter().map(std::ffi::OsStr::new));
        }
        let out = self.kb(&args);
        assert!(out.status.success(), "bundle {image}: {}", stderr(&out));
        bundle
    }

    /// Runs a bundle's process attached; its stdout.
    pub fn run_in(&self, bundle: &Bundle) -> String {
        let n = RUNS.fetch_add(1, Ordering::SeqCst);
        let container = Container {
            root: self.tmp.path().join("runtime"),
            id: format!("keel-test-features-{}-{n}", std::process::id()),
        };
        let out = Command::new(keel_runtime())
            .arg("--root")
            .arg(&container.root)
            .args(["run", "--bundle"])
            .arg(&bundle.dir)
            .arg(&container.id)
            .output()
            .expect("running keel-runtime");
        assert!(
            out.status.success(),
            "keel-runtime run {}: {}\n{}",
            bundle.dir.display(),
            out.status,
            stderr(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Entry names of each layer of `image`, bottom first, read from the
    /// store's blobs as any OCI consumer would.
    pub fn layer_entries(&self, image: &str) -> Vec<Vec<String>> {
        let layers = self.inspect(image)["Layers"].clone();
        layers
            .as_array()
            .expect("Layers")
            .iter()
            .map(|l| {
                let digest = l["digest"].as_str().expect("digest");
                let hex = digest.trim_start_matches("sha256:");
                let blob = self.store.join("oci/blobs/sha256").join(hex);
                let f = fs::File::open(&blob).expect("layer blob");
                let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(f));
                tar.entries()
                    .expect("layer tar")
                    .map(|e| {
                        let e = e.expect("layer entry");
                        let p = e.path().expect("entry path").to_string_lossy().into_owned();
                        p.trim_start_matches("./").trim_end_matches('/').to_string()
                    })
                    .collect()
            })
            .collect()
    }
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Unbundles on drop, failed test or not; a mount that survives that is
/// detached so the temp dir's removal never reaches into the layers.
pub struct Bundle {
    pub dir: PathBuf,
}

impl Drop for Bundle {
    fn drop(&mut self) {
        if !self.dir.exists() {
            return;
        }
        let out = Command::new(keel_build())
            .arg("unbundle")
            .arg(&self.dir)
            .output();
        let ok = matches!(&out, Ok(o) if o.status.success());
        if !ok {
            let _ = nix::mount::umount2(&self.dir.join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
            eprintln!("unbundle {} failed: {out:?}", self.dir.display());
        }
    }
}

/// Deletes the container whatever state the run left it in.
struct Container {
    root: PathBuf,
    id: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new(keel_runtime())
            .arg("--root")
            .arg(&self.root)
            .args(["delete", "--force", &self.id])
            .output();
    }
}

/// A gzip'd tar of `files` (regular files, parents implied), for ADD.
pub fn tar_gz(files: &[(&str, &str)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (path, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        tar.append_data(&mut h, path, content.as_bytes())
            .expect("tar entry");
    }
    tar.into_inner()
        .expect("tar end")
        .finish()
        .expect("gzip end")
}
