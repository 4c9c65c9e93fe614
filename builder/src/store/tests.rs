//! Store tests that cross its files: layout, images end to end, concurrency, gc, check.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use oci_spec::image::{Descriptor, MediaType};

use crate::image::ImageConfig;
use serde_json::Value;

use super::*;
use crate::cache::{CacheRecord, LayerRef};
use crate::digest::Digest;

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

/// A layer: `blob` as its (pretend) compressed blob, an extracted dir holding one file.
fn fake_layer(store: &Store, seed: &str) -> (Digest, Descriptor) {
    let diff_id = Digest::of_bytes(format!("tar of {seed}").as_bytes());
    store
        .ensure_layer(&diff_id, |dir| fs::write(dir.join("file"), seed))
        .unwrap();
    let (digest, size) = store
        .put_blob_bytes(format!("gz of {seed}").as_bytes())
        .unwrap();
    let desc = Descriptor::new(
        MediaType::ImageLayerGzip,
        size,
        refs::to_oci_digest(&digest).unwrap(),
    );
    (diff_id, desc)
}

fn config_for(seed: &str, diff_ids: &[Digest]) -> ImageConfig {
    let mut config = ImageConfig::scratch();
    config.author = Some(seed.to_string());
    config.created = Some("2024-05-01T12:00:00Z".to_string());
    config.rootfs.diff_ids = diff_ids.to_vec();
    config
}

fn image(store: &Store, seed: &str, name: Option<&str>) -> Image {
    let (diff_id, layer) = fake_layer(store, seed);
    store
        .commit_image(&config_for(seed, &[diff_id]), &[layer], name)
        .unwrap()
}

fn blob_names(store: &Store) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(store.blobs_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn tags(store: &Store) -> Vec<String> {
    let mut v: Vec<String> = store
        .read_index()
        .unwrap()
        .manifests()
        .iter()
        .filter_map(|e| refs::entry_name(e).map(str::to_string))
        .collect();
    v.sort();
    v
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

#[test]
fn new_store_is_an_oci_layout() {
    let (dir, store) = open();
    let oci = dir.path().join("oci");
    assert_eq!(
        read_json(&oci.join("oci-layout")),
        serde_json::json!({"imageLayoutVersion": "1.0.0"})
    );
    let index = read_json(&oci.join("index.json"));
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(index["manifests"], serde_json::json!([]));
    for d in ["oci/blobs/sha256", "layers/l", "cache", "tmp"] {
        assert!(dir.path().join(d).is_dir(), "{d}");
    }
    // Opening again keeps what is there.
    image(&store, "a", Some("x"));
    drop(store);
    let again = Store::open(dir.path()).unwrap();
    assert_eq!(tags(&again), ["x:latest"]);
}

#[test]
fn committed_image_follows_the_image_spec() {
    let (dir, store) = open();
    let img = image(&store, "spec", Some("local/busybox"));
    let index = read_json(&dir.path().join("oci/index.json"));
    let entry = &index["manifests"][0];
    assert_eq!(
        entry["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(entry["digest"], img.manifest_digest.as_str());
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        "local/busybox:latest"
    );
    let manifest = read_json(&store.blob_path(&img.manifest_digest));
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert_eq!(manifest["config"]["digest"], img.config_digest.as_str());
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let size = fs::metadata(store.blob_path(&img.manifest_digest))
        .unwrap()
        .len();
    assert_eq!(entry["size"], size);
    let config = read_json(&store.blob_path(&img.config_digest));
    assert_eq!(config["rootfs"]["type"], "layers");
    assert!(store.check().unwrap().is_ok());
}

#[test]
fn json_blobs_are_canonical() {
    let (_dir, store) = open();
    let mut labels = std::collections::HashMap::new();
    for i in 0..20 {
        labels.insert(format!("label{i}"), i.to_string());
    }
    let mut oci = oci_spec::image::ImageConfiguration::default();
    let mut c = oci_spec::image::Config::default();
    c.set_labels(Some(labels));
    oci.set_config(Some(c));
    let (d1, _) = store.put_json(&oci).unwrap();
    let config = oci;
    // A clone's HashMap iterates in another order; the digest must not follow it.
    let rebuilt: oci_spec::image::ImageConfiguration =
        serde_json::from_slice(&serde_json::to_vec(&config).unwrap()).unwrap();
    let (d2, _) = store.put_json(&rebuilt).unwrap();
    assert_eq!(d1, d2);
    let text = String::from_utf8(store.read_blob(&d1).unwrap()).unwrap();
    assert!(!text.contains(' ') && !text.contains('\n'), "{text}");
}

#[test]
fn tag_resolve_untag() {
    let (_dir, store) = open();
    let a = image(&store, "a", Some("busybox"));
    let b = image(&store, "b", None);
    assert_eq!(
        store.resolve("busybox").unwrap().manifest_digest,
        a.manifest_digest
    );
    assert_eq!(
        store.resolve("busybox:latest").unwrap().names,
        ["busybox:latest"]
    );
    assert_eq!(
        store
            .resolve(a.manifest_digest.as_str())
            .unwrap()
            .config_digest,
        a.config_digest
    );
    assert_eq!(
        store
            .resolve(a.config_digest.as_str())
            .unwrap()
            .manifest_digest,
        a.manifest_digest
    );
    assert_eq!(
        store
            .resolve(a.config_digest.hex())
            .unwrap()
            .manifest_digest,
        a.manifest_digest
    );
    // b is dangling but still there by id.
    assert!(store
        .resolve(b.config_digest.as_str())
        .unwrap()
        .names
        .is_empty());

    // A second name, then moving the first onto b.
    let a_desc = store.untag("busybox").unwrap();
    assert!(matches!(
        store.resolve("busybox"),
        Err(StoreError::NotFound(_))
    ));
    store.tag("local/busybox:1", a_desc.clone()).unwrap();
    store.tag("busybox", a_desc).unwrap();
    let mut names = store.resolve("busybox").unwrap().names;
    names.sort();
    assert_eq!(names, ["busybox:latest", "local/busybox:1"]);
    let b_desc = Descriptor::new(
        MediaType::ImageManifest,
        fs::metadata(store.blob_path(&b.manifest_digest))
            .unwrap()
            .len(),
        refs::to_oci_digest(&b.manifest_digest).unwrap(),
    );
    store.tag("busybox", b_desc).unwrap();
    assert_eq!(
        store.resolve("busybox").unwrap().manifest_digest,
        b.manifest_digest
    );
    assert_eq!(
        store.resolve("local/busybox:1").unwrap().manifest_digest,
        a.manifest_digest
    );

    let images = store.images().unwrap();
    assert_eq!(images.len(), 2, "{images:?}");
    assert!(images.iter().all(|i| i.names.len() == 1));
    assert!(matches!(store.untag("nope"), Err(StoreError::NotFound(n)) if n == "nope:latest"));
    assert!(store.check().unwrap().is_ok());
}

#[test]
fn tag_refuses_a_manifest_not_in_the_store() {
    let (_dir, store) = open();
    let missing = Digest::of_bytes(b"no such manifest");
    let desc = Descriptor::new(
        MediaType::ImageManifest,
        3,
        refs::to_oci_digest(&missing).unwrap(),
    );
    assert!(matches!(
        store.tag("x", desc),
        Err(StoreError::BlobMissing { digest, .. }) if digest == missing
    ));
    assert!(tags(&store).is_empty());
}

#[test]
fn resolve_by_id_prefix() {
    let (_dir, store) = open();
    // Find two configs whose ids share 4 hex digits (about 300 tries by the birthday bound).
    let mut seen: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let (first, second) = (0..100_000)
        .find_map(|i| {
            let seed = format!("prefix-{i}");
            let bytes = layout::canonical_json("t", &config_for(&seed, &[])).unwrap();
            let prefix = Digest::of_bytes(&bytes).hex()[..4].to_string();
            seen.insert(prefix, seed.clone()).map(|other| (other, seed))
        })
        .unwrap();
    let a = store
        .commit_image(&config_for(&first, &[]), &[], Some("first"))
        .unwrap();
    let b = store
        .commit_image(&config_for(&second, &[]), &[], Some("second"))
        .unwrap();
    let shared = &a.config_digest.hex()[..4];
    assert_eq!(shared, &b.config_digest.hex()[..4]);
    match store.resolve(shared) {
        Err(StoreError::Ambiguous { candidates, .. }) => assert_eq!(candidates.len(), 2),
        other => panic!("expected ambiguous, got {other:?}"),
    }
    // Long enough to tell them apart (they differ somewhere in the 64 digits).
    let n = (4..64)
        .find(|&n| a.config_digest.hex()[..n] != b.config_digest.hex()[..n])
        .unwrap();
    let unique = &a.config_digest.hex()[..n];
    assert_eq!(
        store.resolve(unique).unwrap().manifest_digest,
        a.manifest_digest
    );
    assert_eq!(
        store
            .resolve(&format!("sha256:{unique}"))
            .unwrap()
            .manifest_digest,
        a.manifest_digest
    );
    // Too short to be an id: tried as a name, which does not exist.
    assert!(matches!(
        store.resolve(&a.config_digest.hex()[..3]),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn put_blob_file_with_wrong_digest_leaves_nothing() {
    let (dir, store) = open();
    let before = blob_names(&store);
    let src = dir.path().join("upload");
    fs::write(&src, b"some content").unwrap();
    let wrong = Digest::of_bytes(b"other content");
    match store.put_blob_file(&src, Some(&wrong)) {
        Err(StoreError::DigestMismatch {
            expected, actual, ..
        }) => {
            assert_eq!(expected, wrong);
            assert_eq!(actual, Digest::of_bytes(b"some content"));
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
    assert_eq!(blob_names(&store), before);
    assert!(!src.exists());
    assert_eq!(fs::read_dir(store.own_tmp_dir()).unwrap().count(), 0);

    fs::write(&src, b"some content").unwrap();
    let right = Digest::of_bytes(b"some content");
    let (d, n) = store.put_blob_file(&src, Some(&right)).unwrap();
    assert_eq!((d.clone(), n), (right, 12));
    assert_eq!(store.read_blob(&d).unwrap(), b"some content");
    assert!(!src.exists());
}

#[test]
fn blob_writer_commits_or_leaves_nothing() {
    let (_dir, store) = open();
    {
        let mut w = store.blob_writer().unwrap();
        w.write_all(b"abandoned").unwrap();
    }
    assert!(blob_names(&store).is_empty());
    assert_eq!(fs::read_dir(store.own_tmp_dir()).unwrap().count(), 0);

    let mut w = store.blob_writer().unwrap();
    w.write_all(b"hello ").unwrap();
    w.write_all(b"world").unwrap();
    let (d, n) = w.commit().unwrap();
    assert_eq!((d.clone(), n), (Digest::of_bytes(b"hello world"), 11));
    assert!(store.has_blob(&d));
    // Same content again: same blob, no error.
    assert_eq!(store.put_blob_bytes(b"hello world").unwrap(), (d, 11));
    let mut w = store.blob_writer().unwrap();
    w.write_all(b"x").unwrap();
    assert!(matches!(
        w.commit_expecting(&Digest::of_bytes(b"y")),
        Err(StoreError::DigestMismatch { .. })
    ));
    assert_eq!(blob_names(&store).len(), 1);
}

#[test]
fn read_blob_detects_corruption() {
    let (_dir, store) = open();
    let (d, _) = store.put_blob_bytes(b"{}").unwrap();
    fs::write(store.blob_path(&d), b"[]").unwrap();
    assert!(matches!(
        store.read_blob(&d),
        Err(StoreError::DigestMismatch { .. })
    ));
    let absent = Digest::of_bytes(b"absent");
    assert!(matches!(
        store.read_blob(&absent),
        Err(StoreError::BlobMissing { .. })
    ));
}

#[test]
fn open_removes_tmp_of_dead_processes_only() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    // No pid reaches pid_max, so this owner is certainly gone.
    let pid_max: i32 = fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let dead = tmp.join(format!("{pid_max}-0123456789abcdef"));
    fs::create_dir_all(dead.join("layer-0/rootfs/usr")).unwrap();
    fs::write(dead.join("blob-1"), b"partial").unwrap();
    let live = tmp.join(format!("{}-feedfacefeedface", std::process::id()));
    fs::create_dir_all(live.join("work")).unwrap();
    let stray = tmp.join("not-a-pid");
    fs::write(&stray, b"?").unwrap();

    let store = Store::open(dir.path()).unwrap();
    assert!(!dead.exists());
    assert!(!stray.exists());
    assert!(live.join("work").is_dir());
    assert!(store.own_tmp_dir().is_dir());
    let own = store.own_tmp_dir().to_path_buf();
    drop(store);
    assert!(
        !own.exists(),
        "a store removes its own tmp dir when dropped"
    );
}

/// Detaches a test's mount even when the test fails.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn dead_tmp_with_a_mount_is_unmounted_not_emptied_through() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("needs root for a bind mount: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("precious"), b"keep me").unwrap();
    let root = dir.path().join("store");
    let pid_max = fs::read_to_string("/proc/sys/kernel/pid_max").unwrap();
    let merged = root.join(format!("tmp/{}-00/bundle/rootfs", pid_max.trim()));
    fs::create_dir_all(&merged).unwrap();
    if let Err(e) = nix::mount::mount(
        Some(&outside),
        &merged,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    ) {
        eprintln!("bind mount refused ({e}): skipped");
        return;
    }
    let _guard = Unmount(merged.clone());
    let store = Store::open(&root).unwrap();
    assert!(!merged.exists(), "the dead process's tmp dir is gone");
    assert_eq!(fs::read(outside.join("precious")).unwrap(), b"keep me");
    drop(store);
}

#[test]
fn tmp_dir_guard_removes_its_tree() {
    let (_dir, store) = open();
    let t = store.tmp_dir("bundle/x").unwrap();
    let path = t.path().to_path_buf();
    assert!(path.starts_with(store.own_tmp_dir()));
    assert!(!path.file_name().unwrap().to_string_lossy().contains('/'));
    fs::create_dir_all(path.join("a/b")).unwrap();
    fs::write(path.join("a/b/c"), b"c").unwrap();
    drop(t);
    assert!(!path.exists());
    let kept = store.tmp_dir("kept").unwrap().keep();
    assert!(kept.is_dir());
}

#[test]
fn lock_excludes_other_holders() {
    let (_dir, store) = open();
    let store = std::sync::Arc::new(store);
    let guard = store.lock().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let s = store.clone();
    let t = std::thread::spawn(move || {
        let _g = s.lock().unwrap();
        tx.send(()).unwrap();
    });
    assert!(rx
        .recv_timeout(std::time::Duration::from_millis(200))
        .is_err());
    drop(guard);
    rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    t.join().unwrap();
}

/// Commits `count` images named `<prefix>-<i>` into the store at `root`.
fn tag_many(root: &Path, prefix: &str, count: usize) {
    let store = Store::open(root).unwrap();
    for i in 0..count {
        image(
            &store,
            &format!("{prefix}-{i}"),
            Some(&format!("{prefix}-{i}")),
        );
    }
}

const CHILD_ROOT: &str = "KEEL_STORE_TEST_ROOT";
const CHILD_PREFIX: &str = "KEEL_STORE_TEST_PREFIX";
const CHILD_COUNT: &str = "KEEL_STORE_TEST_COUNT";

/// The child half of `concurrent_tagging_keeps_every_tag`; it runs only when that test
/// starts this binary with the environment set.
#[test]
#[ignore = "run by concurrent_tagging_keeps_every_tag in a child process"]
fn child_process_tagger() {
    let (Ok(root), Ok(prefix)) = (std::env::var(CHILD_ROOT), std::env::var(CHILD_PREFIX)) else {
        eprintln!("{CHILD_ROOT} not set: nothing to do outside the parent test");
        return;
    };
    let count = std::env::var(CHILD_COUNT).map_or(10, |c| c.parse().unwrap());
    tag_many(Path::new(&root), &prefix, count);
}

fn spawn_child_tagger(root: &Path, prefix: &str, count: usize) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "store::tests::child_process_tagger",
            "--ignored",
            "--quiet",
        ])
        .env(CHILD_ROOT, root)
        .env(CHILD_PREFIX, prefix)
        .env(CHILD_COUNT, count.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn concurrent_tagging_keeps_every_tag() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    Store::open(&root).unwrap();
    let children: Vec<_> = ["proc-a", "proc-b"]
        .iter()
        .map(|p| spawn_child_tagger(&root, p, 10))
        .collect();
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let root = root.clone();
            std::thread::spawn(move || tag_many(&root, &format!("thread-{t}"), 10))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for mut c in children {
        assert!(c.wait().unwrap().success(), "child tagger failed");
    }
    let store = Store::open(&root).unwrap();
    let mut expected: Vec<String> = ["proc-a", "proc-b", "thread-0", "thread-1", "thread-2"]
        .iter()
        .flat_map(|p| (0..10).map(move |i| format!("{p}-{i}:latest")))
        .collect();
    expected.sort();
    assert_eq!(tags(&store), expected);
    let report = store.check().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.images_checked, 50);
}

#[test]
fn killed_writer_leaves_a_store_that_checks() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    Store::open(&root).unwrap();
    let mut child = spawn_child_tagger(&root, "killed", 100_000);
    // Let it get some way, then kill -9 wherever it is.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while tags(&Store::open(&root).unwrap()).len() < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let store = Store::open(&root).unwrap();
    let done = tags(&store).len();
    assert!(
        (3..100_000).contains(&done),
        "killed after {done} images, not midway"
    );
    let others: Vec<PathBuf> = fs::read_dir(root.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p != store.own_tmp_dir())
        .collect();
    assert!(others.is_empty(), "dead child's tmp left: {others:?}");
    let report = store.check().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
}

#[test]
fn check_reports_a_flipped_byte() {
    let (_dir, store) = open();
    let img = image(&store, "flip", Some("flip"));
    assert!(store.check().unwrap().is_ok());
    let layer = Digest::parse(img.manifest.layers()[0].digest().as_ref()).unwrap();
    let path = store.blob_path(&layer);
    let mut data = fs::read(&path).unwrap();
    data[0] ^= 0x01;
    fs::write(&path, &data).unwrap();
    let report = store.check().unwrap();
    assert_eq!(
        report.problems,
        [Problem::CorruptBlob {
            digest: layer,
            actual: Digest::of_bytes(&data)
        }]
    );
    assert!(report.problems[0].to_string().contains("corrupt"));
}

#[test]
fn check_reports_missing_pieces() {
    let (_dir, store) = open();
    let img = image(&store, "gone", Some("gone"));
    let diff_id = img.config.rootfs.diff_ids[0].clone();
    let link = store.layers_dir().join(store.short_link(&diff_id).unwrap());
    fs::remove_dir_all(store.layer_dir(&diff_id)).unwrap();
    fs::remove_file(store.blob_path(&img.config_digest)).unwrap();
    fs::write(store.blobs_dir().join("junk"), b"").unwrap();
    let report = store.check().unwrap();
    assert!(report.problems.contains(&Problem::MissingBlob {
        image: "gone:latest".into(),
        role: "config".into(),
        digest: img.config_digest.clone(),
    }));
    assert!(report.problems.contains(&Problem::StrayFile {
        path: store.blobs_dir().join("junk")
    }));
    assert!(report
        .problems
        .contains(&Problem::DanglingShortLink { link }));
}

#[test]
fn prune_removes_untagged_and_keeps_tagged() {
    let (_dir, store) = open();
    let kept = image(&store, "kept", Some("kept"));
    let old = image(&store, "old", None);
    let old_diff = old.config.rootfs.diff_ids[0].clone();
    let old_layer = Digest::parse(old.manifest.layers()[0].digest().as_ref()).unwrap();
    let old_link = store
        .layers_dir()
        .join(store.short_link(&old_diff).unwrap());
    let stray = store.put_blob_bytes(b"unreferenced").unwrap().0;

    let report = store.prune(&|_| false).unwrap();
    assert_eq!(
        report.images_removed,
        std::slice::from_ref(&old.manifest_digest)
    );
    let mut removed = report.blobs_removed.clone();
    removed.sort();
    let mut expected = vec![
        old.manifest_digest.clone(),
        old.config_digest.clone(),
        old_layer,
        stray,
    ];
    expected.sort();
    assert_eq!(removed, expected);
    assert_eq!(report.layers_removed, std::slice::from_ref(&old_diff));
    assert!(!store.has_layer(&old_diff));
    assert!(
        fs::symlink_metadata(&old_link).is_err(),
        "its short link goes too"
    );

    assert_eq!(
        store.resolve("kept").unwrap().manifest_digest,
        kept.manifest_digest
    );
    let kept_diff = kept.config.rootfs.diff_ids[0].clone();
    assert!(store.has_layer(&kept_diff));
    assert!(store.check().unwrap().is_ok());
    // Nothing left to do the second time.
    assert_eq!(
        store.prune(&|_| false).unwrap().blobs_removed,
        Vec::<Digest>::new()
    );
}

#[test]
fn prune_keeps_cache_references_and_what_keep_says() {
    let (_dir, store) = open();
    let (diff_id, layer) = fake_layer(&store, "cached");
    let digest = Digest::parse(layer.digest().as_ref()).unwrap();
    store
        .cache_put(&CacheRecord {
            key: Digest::of_bytes(b"step"),
            layer: Some(LayerRef {
                diff_id: diff_id.clone(),
                digest: digest.clone(),
                size: layer.size(),
                media_type: layer.media_type().to_string(),
            }),
            config: ImageConfig::scratch(),
            created: "2024-01-01T00:00:00Z".into(),
        })
        .unwrap();
    let precious = store.put_blob_bytes(b"precious").unwrap().0;
    let p = precious.clone();
    let report = store.prune(&move |d| d == &p).unwrap();
    assert!(report.blobs_removed.is_empty(), "{report:?}");
    assert!(store.has_blob(&digest) && store.has_layer(&diff_id) && store.has_blob(&precious));
    assert!(store.cache_get(&Digest::of_bytes(b"step")).is_some());

    // prune --all: the cache goes first, then what only it kept.
    assert_eq!(store.clear_cache().unwrap(), 1);
    let report = store.prune(&|_| false).unwrap();
    assert_eq!(report.layers_removed, [diff_id]);
    assert_eq!(report.blobs_removed.len(), 2);
}

#[test]
fn prune_spares_new_objects_while_another_process_is_live() {
    let (dir, store) = open();
    // Another live store on the same root: it may be about to tag what it wrote.
    let other = Store::open(dir.path()).unwrap();
    let (diff_id, layer) = fake_layer(&other, "in flight");
    let report = store.prune(&|_| false).unwrap();
    assert!(report.blobs_removed.is_empty() && report.layers_removed.is_empty());
    assert_eq!(report.kept_in_flight, 2);
    drop(other);
    let report = store.prune(&|_| false).unwrap();
    assert_eq!(report.layers_removed, [diff_id]);
    assert_eq!(
        report.blobs_removed,
        [Digest::parse(layer.digest().as_ref()).unwrap()]
    );
}

#[test]
fn short_links_fit_150_layers_in_a_page() {
    let (_dir, store) = open();
    let links: Vec<String> = (0..150)
        .map(|i| {
            let diff_id = Digest::of_bytes(format!("layer {i}").as_bytes());
            store
                .ensure_layer(&diff_id, |_| Ok::<(), std::io::Error>(()))
                .unwrap();
            let link = store.short_link(&diff_id).unwrap();
            assert_eq!(
                fs::canonicalize(store.layers_dir().join(&link)).unwrap(),
                fs::canonicalize(store.layer_dir(&diff_id)).unwrap()
            );
            link
        })
        .collect();
    let options = format!(
        "lowerdir={},upperdir=/var/lib/keel-shim/0123456789abcdef/bundle/upper,workdir=/var/lib/keel-shim/0123456789abcdef/bundle/work",
        links.join(":")
    );
    assert!(options.len() < 4096, "{} bytes", options.len());
}

#[test]
fn short_link_lengthens_on_collision() {
    let (_dir, store) = open();
    let diff_id = Digest::of_bytes(b"collides");
    store
        .ensure_layer(&diff_id, |_| Ok::<(), std::io::Error>(()))
        .unwrap();
    let first = store.short_link(&diff_id).unwrap();
    assert_eq!(first, format!("l/{}", &diff_id.hex()[..10]));
    // Another layer's link under the same 10 digits.
    let link = store.layers_dir().join(&first);
    fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("../someone-else", &link).unwrap();
    let second = store.short_link(&diff_id).unwrap();
    assert_eq!(second, format!("l/{}", &diff_id.hex()[..11]));
    assert_eq!(
        store.short_link(&diff_id).unwrap(),
        second,
        "stable once made"
    );
}

#[test]
fn ensure_layer_extracts_once_and_failures_leave_nothing() {
    let (_dir, store) = open();
    let diff_id = Digest::of_bytes(b"layer");
    let err = store
        .ensure_layer(&diff_id, |dir| {
            fs::write(dir.join("half"), b"")?;
            Err(std::io::Error::other("tar ended early"))
        })
        .unwrap_err();
    assert!(err.to_string().contains("tar ended early"), "{err}");
    assert!(!store.has_layer(&diff_id));
    assert_eq!(fs::read_dir(store.own_tmp_dir()).unwrap().count(), 0);

    let dir = store
        .ensure_layer(&diff_id, |dir| fs::write(dir.join("f"), b"1"))
        .unwrap();
    assert_eq!(fs::read(dir.join("f")).unwrap(), b"1");
    let again = store
        .ensure_layer(&diff_id, |_| -> Result<(), std::io::Error> {
            panic!("extracted twice")
        })
        .unwrap();
    assert_eq!(again, dir);
}

#[test]
fn commit_image_checks_its_inputs() {
    let (_dir, store) = open();
    let (diff_id, layer) = fake_layer(&store, "x");
    assert!(matches!(
        store.commit_image(&config_for("x", &[]), std::slice::from_ref(&layer), None),
        Err(StoreError::InvalidImage { .. })
    ));
    let missing = Descriptor::new(
        MediaType::ImageLayerGzip,
        1,
        refs::to_oci_digest(&Digest::of_bytes(b"nope")).unwrap(),
    );
    assert!(matches!(
        store.commit_image(&config_for("x", &[diff_id]), &[missing], None),
        Err(StoreError::BlobMissing { .. })
    ));
    assert!(matches!(
        store.commit_image(&config_for("x", &[]), &[], Some("Upper")),
        Err(StoreError::InvalidName { .. })
    ));
    assert!(store.images().unwrap().is_empty());
}

/// Writes a real one-file gzipped tar layer and returns (diff id, descriptor).
fn real_layer(store: &Store) -> (Digest, Descriptor) {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    let body = b"hello from keel\n";
    header.set_size(body.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "hello.txt", &body[..])
        .unwrap();
    let tar = tar.into_inner().unwrap();
    let diff_id = Digest::of_bytes(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let (digest, size) = store.put_blob_bytes(&gz.finish().unwrap()).unwrap();
    store
        .ensure_layer(&diff_id, |dir| fs::write(dir.join("hello.txt"), body))
        .unwrap();
    let desc = Descriptor::new(
        MediaType::ImageLayerGzip,
        size,
        refs::to_oci_digest(&digest).unwrap(),
    );
    (diff_id, desc)
}

fn tool(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

#[test]
fn skopeo_and_umoci_read_the_layout() {
    let (dir, store) = open();
    let (diff_id, layer) = real_layer(&store);
    let img = store
        .commit_image(
            &config_for("tools", &[diff_id]),
            &[layer],
            Some("local/busybox:latest"),
        )
        .unwrap();
    image(&store, "other", Some("local/other:1"));
    let oci = dir.path().join("oci");
    if let Some(skopeo) = tool("skopeo") {
        let out = Command::new(skopeo)
            .arg("inspect")
            .arg(format!("oci:{}:local/busybox:latest", oci.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["Digest"], img.manifest_digest.as_str());
        assert_eq!(
            v["Layers"][0],
            img.manifest.layers()[0].digest().to_string()
        );
    } else {
        eprintln!("skopeo not installed: skipped");
    }
    if let Some(umoci) = tool("umoci") {
        let out = Command::new(umoci)
            .args(["ls", "--layout"])
            .arg(&oci)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(
            listed.contains("local/busybox:latest") && listed.contains("local/other:1"),
            "{listed}"
        );
        let bundle = dir.path().join("bundle");
        let out = Command::new(tool("umoci").unwrap())
            .args(["unpack", "--image"])
            .arg(format!("{}:local/busybox:latest", oci.display()))
            .arg(&bundle)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            fs::read(bundle.join("rootfs/hello.txt")).unwrap(),
            b"hello from keel\n"
        );
    } else {
        eprintln!("umoci not installed: skipped");
    }
}
