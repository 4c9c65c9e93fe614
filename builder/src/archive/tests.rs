//! Round trips through both archive formats, tools that read and write them (skopeo,
//! umoci, docker when asked for), and crafted archives that must not write outside the
//! store.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::import::import_at;
use super::*;
use crate::digest::Digest;
use crate::image::ImageConfig;
use crate::store::Store;

const EPOCH: Option<i64> = Some(1_700_000_000);

fn tree(root: &Path) -> PathBuf {
    let dir = root.join("rootfs");
    fs::create_dir_all(dir.join("etc")).unwrap();
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::write(dir.join("etc/hostname"), b"keel\n").unwrap();
    fs::write(dir.join("etc/data"), vec![7u8; 10_000]).unwrap();
    fs::hard_link(dir.join("etc/data"), dir.join("etc/data-link")).unwrap();
    symlink("hostname", dir.join("etc/name")).unwrap();
    dir
}

fn import_test_image(root: &Path, store: &Store) -> crate::store::Image {
    import_at(store, &tree(root), "local/test", EPOCH).unwrap()
}

fn has_tool(name: &str) -> bool {
    Command::new(name).arg("--version").output().is_ok()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The archive's members as name -> bytes (directories left out).
fn members(path: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut a = tar::Archive::new(fs::File::open(path).unwrap());
    let mut out = std::collections::BTreeMap::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type().is_dir() {
            continue;
        }
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(name, data);
    }
    out
}

fn assert_store_clean(store: &Store) {
    let report = store.check().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    for entry in fs::read_dir(store.root().join("tmp")).unwrap() {
        let entry = entry.unwrap().path();
        let left: Vec<_> = fs::read_dir(&entry).unwrap().collect();
        assert!(left.is_empty(), "{} has {left:?}", entry.display());
    }
}

fn assert_same_image(a: &crate::store::Image, b: &crate::store::Image) {
    assert_eq!(a.config_digest, b.config_digest);
    assert_eq!(a.manifest, b.manifest);
    assert_eq!(a.manifest_digest, b.manifest_digest);
}

#[test]
fn import_makes_a_one_layer_image_with_history() {
    let t = tempfile::tempdir().unwrap();
    let store = Store::open(&t.path().join("s")).unwrap();
    let dir = tree(t.path());
    fs::write(dir.join("bin/busybox"), b"not really").unwrap();
    symlink("busybox", dir.join("bin/sh")).unwrap();
    let img = import_at(&store, &dir, "local/test", EPOCH).unwrap();
    assert_eq!(img.names, ["local/test:latest"]);
    assert_eq!(img.config.rootfs.diff_ids.len(), 1);
    assert_eq!(img.config.created.as_deref(), Some("2023-11-14T22:13:20Z"));
    assert_eq!(
        img.config.history[0].created_by.as_deref(),
        Some(format!("keel-build import {}", dir.display()).as_str())
    );
    assert_eq!(
        img.config.config.cmd.as_deref(),
        Some(&["sh".to_string()][..])
    );
    let layer = store.layer_dir(&img.config.rootfs.diff_ids[0]);
    assert_eq!(fs::read(layer.join("etc/hostname")).unwrap(), b"keel\n");
    assert_eq!(
        fs::metadata(layer.join("etc/data")).unwrap().ino(),
        fs::metadata(layer.join("etc/data-link")).unwrap().ino()
    );
    // Same tree, same epoch: same image.
    let again = import_at(&store, &dir, "local/again", EPOCH).unwrap();
    assert_same_image(&img, &again);
    assert_store_clean(&store);
    // Without /bin/sh there is no default command; a file is not a directory.
    let bare = t.path().join("bare");
    fs::create_dir(&bare).unwrap();
    let img = import_at(&store, &bare, "local/bare", EPOCH).unwrap();
    assert_eq!(img.config.config.cmd, None);
    assert!(matches!(
        import_at(&store, &bare.join("nope"), "x", EPOCH),
        Err(ArchiveError::Io { .. })
    ));
    fs::write(t.path().join("file"), b"").unwrap();
    assert!(matches!(
        import_at(&store, &t.path().join("file"), "x", EPOCH),
        Err(ArchiveError::ImportSource { .. })
    ));
}

#[test]
fn docker_archive_round_trip_keeps_the_image_id() {
    let t = tempfile::tempdir().unwrap();
    let s1 = Store::open(&t.path().join("s1")).unwrap();
    let img = import_test_image(t.path(), &s1);
    let out = t.path().join("out.tar");
    save(
        &s1,
        &["local/test".to_string()],
        ArchiveFormat::DockerArchive,
        &out,
    )
    .unwrap();
    let m = members(&out);
    let diff_id = &img.config.rootfs.diff_ids[0];
    let manifest: serde_json::Value = serde_json::from_slice(&m["manifest.json"]).unwrap();
    assert_eq!(
        manifest,
        serde_json::json!([{
            "Config": format!("{}.json", img.config_digest.hex()),
            "RepoTags": ["local/test:latest"],
            "Layers": [format!("{}/layer.tar", diff_id.hex())],
        }])
    );
    // Layers are plain tars whose digest is the diff_id; the config is the stored bytes.
    let layer = &m[&format!("{}/layer.tar", diff_id.hex())];
    assert_eq!(&Digest::of_bytes(layer), diff_id);
    assert_eq!(
        m[&format!("{}.json", img.config_digest.hex())],
        s1.read_blob(&img.config_digest).unwrap()
    );
    // No stray temp file beside the output.
    let beside: Vec<_> = fs::read_dir(t.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(beside.is_empty(), "{beside:?}");

    let s2 = Store::open(&t.path().join("s2")).unwrap();
    let loaded = load(&s2, &out, None).unwrap();
    assert_eq!(
        loaded,
        [LoadedImage {
            names: vec!["local/test:latest".to_string()],
            id: img.config_digest.clone(),
        }]
    );
    let img2 = s2.resolve("local/test").unwrap();
    // Same id and layers; the layer is gzipped again here, and the gzip bytes depend on
    // how the tar was fed to the encoder, so the blob (and manifest) digest may differ.
    assert_eq!(img2.config_digest, img.config_digest);
    assert_eq!(img2.config, img.config);
    assert!(s2.has_blob(&Digest::parse(img2.manifest.layers()[0].digest().as_ref()).unwrap()));
    assert_eq!(
        fs::read(s2.layer_dir(diff_id).join("etc/hostname")).unwrap(),
        b"keel\n"
    );
    assert_store_clean(&s2);
    // Loading again changes nothing.
    assert_eq!(load(&s2, &out, None).unwrap(), loaded);
    assert_eq!(s2.images().unwrap().len(), 1);
}

#[test]
fn oci_archive_round_trip_and_index_annotations() {
    let t = tempfile::tempdir().unwrap();
    let s1 = Store::open(&t.path().join("s1")).unwrap();
    let img = import_test_image(t.path(), &s1);
    let m1 = s1.resolve("local/test").unwrap();
    s1.tag(
        "other/name:v2",
        oci_spec::image::Descriptor::new(
            oci_spec::image::MediaType::ImageManifest,
            fs::metadata(s1.blob_path(&m1.manifest_digest))
                .unwrap()
                .len(),
            oci_digest(&m1.manifest_digest).unwrap(),
        ),
    )
    .unwrap();
    let out = t.path().join("out.oci.tar");
    let id = img.config_digest.to_string();
    save(
        &s1,
        std::slice::from_ref(&id),
        ArchiveFormat::OciArchive,
        &out,
    )
    .unwrap();
    let m = members(&out);
    assert_eq!(m["oci-layout"], br#"{"imageLayoutVersion":"1.0.0"}"#);
    let index: serde_json::Value = serde_json::from_slice(&m["index.json"]).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    let ann: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            (
                e["annotations"][crate::store::REF_NAME_ANNOTATION]
                    .as_str()
                    .unwrap()
                    .to_string(),
                e["annotations"][IMAGE_NAME_ANNOTATION]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    // Saved by id: every name of the image, with the tag as the ref name.
    assert_eq!(
        ann,
        [
            ("latest".to_string(), "local/test:latest".to_string()),
            ("v2".to_string(), "other/name:v2".to_string()),
        ]
    );
    for (name, data) in &m {
        if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            assert_eq!(Digest::of_bytes(data).hex(), hex, "{name}");
        }
    }
    assert_eq!(
        m.len(),
        2 + 3,
        "oci-layout, index.json, manifest, config, layer"
    );

    let s2 = Store::open(&t.path().join("s2")).unwrap();
    let loaded = load(&s2, &out, None).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].id, img.config_digest);
    assert_eq!(loaded[0].names, ["local/test:latest", "other/name:v2"]);
    assert_same_image(&img, &s2.resolve("other/name:v2").unwrap());
    assert_store_clean(&s2);
}

#[test]
fn saving_is_deterministic_and_gzipped_archives_load() {
    let t = tempfile::tempdir().unwrap();
    let s1 = Store::open(&t.path().join("s1")).unwrap();
    let img = import_test_image(t.path(), &s1);
    for format in [ArchiveFormat::DockerArchive, ArchiveFormat::OciArchive] {
        let (a, b) = (t.path().join("a.tar"), t.path().join("b.tar"));
        save(&s1, &["local/test:latest".to_string()], format, &a).unwrap();
        save(&s1, &["local/test:latest".to_string()], format, &b).unwrap();
        assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap(), "{format:?}");
        let gz = t.path().join("a.tar.gz");
        let mut enc = flate2::write::GzEncoder::new(
            fs::File::create(&gz).unwrap(),
            flate2::Compression::fast(),
        );
        enc.write_all(&fs::read(&a).unwrap()).unwrap();
        enc.finish().unwrap();
        let s2 = Store::open(&t.path().join(format!("s2-{format:?}"))).unwrap();
        let loaded = load(&s2, &gz, None).unwrap();
        assert_eq!(loaded[0].id, img.config_digest);
        assert_store_clean(&s2);
    }
}

#[test]
fn names_tags_and_untagged_images() {
    let t = tempfile::tempdir().unwrap();
    let s1 = Store::open(&t.path().join("s1")).unwrap();
    let img = import_test_image(t.path(), &s1);
    let bare = t.path().join("bare");
    fs::create_dir(&bare).unwrap();
    let other = import_at(&s1, &bare, "local/empty", EPOCH).unwrap();
    let both = t.path().join("both.tar");
    save(
        &s1,
        &["local/test".to_string(), "local/empty".to_string()],
        ArchiveFormat::DockerArchive,
        &both,
    )
    .unwrap();
    let s2 = Store::open(&t.path().join("s2")).unwrap();
    match load(&s2, &both, Some("x/y")) {
        Err(ArchiveError::TagNeedsOneImage { count: 2, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(s2.images().unwrap().is_empty());
    let loaded = load(&s2, &both, None).unwrap();
    assert_eq!(
        loaded.iter().map(|l| l.id.clone()).collect::<Vec<_>>(),
        [img.config_digest.clone(), other.config_digest.clone()]
    );

    // A docker archive without RepoTags loads untagged; --tag names it.
    let out = t.path().join("untagged.tar");
    save(
        &s1,
        &["local/test".to_string()],
        ArchiveFormat::DockerArchive,
        &out,
    )
    .unwrap();
    let mut m = members(&out);
    m.insert(
        "manifest.json".to_string(),
        String::from_utf8(m["manifest.json"].clone())
            .unwrap()
            .replace(r#"["local/test:latest"]"#, "null")
            .into_bytes(),
    );
    let crafted = t.path().join("crafted.tar");
    let mut b = Crafted::default();
    for (name, data) in &m {
        b.file(name, data);
    }
    b.write(&crafted);
    let s3 = Store::open(&t.path().join("s3")).unwrap();
    let loaded = load(&s3, &crafted, None).unwrap();
    assert_eq!(loaded[0].names, Vec::<String>::new());
    let listed = s3.images().unwrap();
    assert_eq!((listed.len(), listed[0].names.len()), (1, 0));
    assert_store_clean(&s3);
    let loaded = load(&s3, &crafted, Some("named/now")).unwrap();
    assert_eq!(loaded[0].names, ["named/now:latest"]);
    assert_eq!(s3.images().unwrap().len(), 1);
}

#[test]
fn tools_read_what_we_write_and_we_read_theirs() {
    if !has_tool("skopeo") {
        eprintln!("skopeo not installed; skipping (apt-get install -y skopeo)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let s1 = Store::open(&t.path().join("s1")).unwrap();
    let img = import_test_image(t.path(), &s1);
    let oci_dir = t.path().join("layout");
    let store_ref = format!("oci:{}:local/test:latest", s1.root().join("oci").display());
    run(Command::new("skopeo").args([
        "copy",
        &store_ref,
        &format!("oci:{}:v1", oci_dir.display()),
    ]));
    let s2 = Store::open(&t.path().join("s2")).unwrap();
    match load(&s2, &oci_dir, None) {
        Err(e @ ArchiveError::NoName { .. }) => {
            assert!(e.to_string().contains("\"v1\""), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert!(s2.images().unwrap().is_empty());
    let loaded = load(&s2, &oci_dir, Some("from/skopeo:v1")).unwrap();
    assert_eq!(loaded[0].id, img.config_digest);
    assert_same_image(&img, &s2.resolve("from/skopeo:v1").unwrap());
    assert_store_clean(&s2);

    // skopeo reads our archives, and its docker-archive loads back to the same id.
    let ours_oci = t.path().join("ours.oci.tar");
    let ours_docker = t.path().join("ours.docker.tar");
    save(
        &s1,
        &["local/test".into()],
        ArchiveFormat::OciArchive,
        &ours_oci,
    )
    .unwrap();
    save(
        &s1,
        &["local/test".into()],
        ArchiveFormat::DockerArchive,
        &ours_docker,
    )
    .unwrap();
    run(Command::new("skopeo").args([
        "copy",
        &format!("oci-archive:{}:latest", ours_oci.display()),
        &format!("oci:{}:from-oci", t.path().join("l2").display()),
    ]));
    let theirs = t.path().join("theirs.tar");
    run(Command::new("skopeo").args([
        "copy",
        &format!("docker-archive:{}", ours_docker.display()),
        &format!("docker-archive:{}:skopeo/made:1", theirs.display()),
    ]));
    let s3 = Store::open(&t.path().join("s3")).unwrap();
    let loaded = load(&s3, &theirs, None).unwrap();
    assert_eq!(loaded[0].id, img.config_digest);
    // skopeo writes the name as docker would pull it; the store keeps it as docker shows it.
    assert_eq!(loaded[0].names, ["skopeo/made:1"]);
    assert_store_clean(&s3);
}

#[test]
fn loads_an_umoci_layout() {
    if !has_tool("umoci") {
        eprintln!("umoci not installed; skipping (apt-get install -y umoci)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("umoci");
    let dir = tree(t.path());
    let image = format!("{}:t", layout.display());
    run(Command::new("umoci").args(["init", "--layout", &layout.to_string_lossy()]));
    run(Command::new("umoci").args(["new", "--image", &image]));
    run(Command::new("umoci").args(["insert", "--image", &image, &dir.to_string_lossy(), "/"]));
    let store = Store::open(&t.path().join("s")).unwrap();
    let loaded = load(&store, &layout, Some("from/umoci")).unwrap();
    let img = store.resolve("from/umoci").unwrap();
    assert_eq!(loaded[0].id, img.config_digest);
    let diff_id = img.config.rootfs.diff_ids.last().unwrap();
    assert_eq!(
        fs::read(store.layer_dir(diff_id).join("etc/hostname")).unwrap(),
        b"keel\n"
    );
    assert_store_clean(&store);
}

/// A tar written entry by entry with raw names, so that names the tar crate refuses to
/// write (`..`, absolute) can be tested.
#[derive(Default)]
struct Crafted {
    out: Vec<u8>,
}

impl Crafted {
    fn entry(&mut self, name: &str, kind: tar::EntryType, data: &[u8], link: &str) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        {
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        h.set_size(data.len() as u64);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        self.out.extend_from_slice(h.as_bytes());
        self.out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.out.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.entry(name, tar::EntryType::Regular, data, "")
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut v = std::mem::take(&mut self.out);
        v.extend(std::iter::repeat_n(0u8, 1024));
        v
    }

    fn write(&mut self, path: &Path) {
        fs::write(path, self.finish()).unwrap();
    }
}

/// A docker archive of one image of `layers`, its config naming `diff_ids` (the layers'
/// own digests unless given), its manifest naming `layer_names` (defaults likewise).
fn docker_archive(layers: &[Vec<u8>], layer_names: Option<Vec<String>>) -> Crafted {
    let mut config = ImageConfig::scratch();
    config.rootfs.diff_ids = layers.iter().map(|l| Digest::of_bytes(l)).collect();
    let config = config.to_bytes();
    let config_name = format!("{}.json", Digest::of_bytes(&config).hex());
    let names: Vec<String> = layer_names.unwrap_or_else(|| {
        (0..layers.len())
            .map(|i| format!("l{i}/layer.tar"))
            .collect()
    });
    let manifest = serde_json::json!([{
        "Config": config_name, "RepoTags": ["evil/image:latest"], "Layers": names,
    }]);
    let mut b = Crafted::default();
    for (i, l) in layers.iter().enumerate() {
        b.file(&format!("l{i}/layer.tar"), l);
    }
    b.file(&config_name, &config);
    b.file("manifest.json", manifest.to_string().as_bytes());
    b
}

/// After a refused load: nothing named, nothing half-made, nothing outside.
fn assert_refused(store: &Store, result: Result<Vec<LoadedImage>, ArchiveError>, outside: &Path) {
    let err = match result {
        Err(e) => e,
        Ok(l) => panic!("crafted archive loaded: {l:?}"),
    };
    assert!(store.images().unwrap().is_empty(), "{err}");
    let left: Vec<_> = fs::read_dir(outside).unwrap().collect();
    assert!(left.is_empty(), "{err}: outside dir has {left:?}");
    assert_store_clean(store);
}

#[test]
fn crafted_archives_write_nothing_outside_the_store() {
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let secret = t.path().join("secret");
    fs::write(&secret, b"secret").unwrap();
    let store = Store::open(&t.path().join("a/b/s")).unwrap();
    let archive = t.path().join("crafted.tar");
    let good_layer = Crafted::default().file("ok.txt", b"fine").finish();
    let depth = "../".repeat(12);

    // Member names that leave the archive.
    for name in [
        "../../../../outside/x".to_string(),
        format!("{}/abs", outside.display()),
        format!(
            "{depth}{}/x",
            outside.display().to_string().trim_start_matches('/')
        ),
    ] {
        let mut b = docker_archive(std::slice::from_ref(&good_layer), None);
        b.file(&name, b"escaped");
        b.write(&archive);
        let r = load(&store, &archive, None);
        assert!(
            matches!(r, Err(ArchiveError::UnsafeMember { .. })),
            "{name}: {r:?}"
        );
        assert_refused(&store, r, &outside);
    }

    // A member symlink out of the archive, and manifest.json naming a path outside.
    let mut b = docker_archive(std::slice::from_ref(&good_layer), None);
    b.entry("l9", tar::EntryType::Symlink, b"", "../../outside");
    b.write(&archive);
    assert_refused(&store, load(&store, &archive, None), &outside);
    for layer_name in ["../../outside/x", "/etc/passwd"] {
        docker_archive(
            std::slice::from_ref(&good_layer),
            Some(vec![layer_name.to_string()]),
        )
        .write(&archive);
        let r = load(&store, &archive, None);
        assert!(matches!(r, Err(ArchiveError::UnsafeMember { .. })), "{r:?}");
        assert_refused(&store, r, &outside);
    }

    // Layers that try to leave their layer dir: a symlink out, then a write through it;
    // a hard link to a file outside.
    let abs_outside = outside.display().to_string();
    let rel_outside = format!("{depth}{}", abs_outside.trim_start_matches('/'));
    let secret_rel = format!(
        "{depth}{}",
        secret.display().to_string().trim_start_matches('/')
    );
    let hostile = [
        Crafted::default()
            .entry("evil", tar::EntryType::Symlink, b"", &abs_outside)
            .file("evil/pwned", b"pwned")
            .finish(),
        Crafted::default()
            .entry("evil", tar::EntryType::Symlink, b"", &rel_outside)
            .file("evil/pwned", b"pwned")
            .finish(),
        Crafted::default()
            .entry("h", tar::EntryType::Link, b"", &secret_rel)
            .finish(),
        Crafted::default()
            .file("../../../../outside/pwned", b"pwned")
            .finish(),
    ];
    for layer in &hostile {
        docker_archive(std::slice::from_ref(layer), None).write(&archive);
        let r = load(&store, &archive, None);
        assert_refused(&store, r, &outside);
        assert_eq!(fs::metadata(&secret).unwrap().nlink(), 1);
        let diff_id = Digest::of_bytes(layer);
        assert!(!store.has_layer(&diff_id));
    }

    // A layer that is not what the config's diff_ids say.
    let mut b = Crafted::default();
    let mut config = ImageConfig::scratch();
    config.rootfs.diff_ids = vec![Digest::of_bytes(b"something else")];
    let config = config.to_bytes();
    b.file("c.json", &config)
        .file("l/layer.tar", &good_layer)
        .file(
            "manifest.json",
            br#"[{"Config":"c.json","RepoTags":["x/y:1"],"Layers":["l/layer.tar"]}]"#,
        );
    b.write(&archive);
    let r = load(&store, &archive, None);
    assert!(
        matches!(r, Err(ArchiveError::DigestMismatch { .. })),
        "{r:?}"
    );
    assert_refused(&store, r, &outside);

    // The store still loads a good archive afterwards.
    docker_archive(std::slice::from_ref(&good_layer), None).write(&archive);
    let loaded = load(&store, &archive, None).unwrap();
    assert_eq!(loaded[0].names, ["evil/image:latest"]);
    assert_store_clean(&store);
}

#[test]
fn not_an_archive_is_said_so() {
    let t = tempfile::tempdir().unwrap();
    let store = Store::open(&t.path().join("s")).unwrap();
    let empty = t.path().join("empty");
    fs::create_dir(&empty).unwrap();
    assert!(matches!(
        load(&store, &empty, None),
        Err(ArchiveError::NotAnArchive { .. })
    ));
    let tar = t.path().join("x.tar");
    Crafted::default().file("hello", b"hi").write(&tar);
    let err = load(&store, &tar, None).unwrap_err();
    assert!(err.to_string().contains("manifest.json"), "{err}");
    assert_store_clean(&store);
}

/// Starts a private dockerd (own data root, exec root, socket and pid file under a
/// tempdir), loads our docker-archive and runs it. Needs docker.io and runc; run with
/// `cargo test -p keel-builder docker_loads -- --ignored`.
#[test]
#[ignore]
fn docker_loads_and_runs_our_archive() {
    let t = tempfile::Builder::new()
        .prefix("kd")
        .tempdir_in("/tmp")
        .unwrap();
    let root = t.path();
    let dockerd = Dockerd::start(root);
    let s1 = Store::open(&root.join("s1")).unwrap();
    let dir = tree(root);
    fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    symlink("busybox", dir.join("bin/sh")).unwrap();
    symlink("busybox", dir.join("bin/true")).unwrap();
    symlink("busybox", dir.join("bin/cat")).unwrap();
    // Not /etc/hostname: docker mounts its own over that one.
    fs::write(dir.join("etc/release"), b"keel\n").unwrap();
    let img = import_at(&s1, &dir, "keel-test/busybox:1", EPOCH).unwrap();
    let out = root.join("img.tar");
    save(
        &s1,
        &["keel-test/busybox:1".into()],
        ArchiveFormat::DockerArchive,
        &out,
    )
    .unwrap();
    let loaded = dockerd.docker(&["load", "-i", &out.to_string_lossy()]);
    assert!(loaded.contains("keel-test/busybox:1"), "{loaded}");
    let id = dockerd.docker(&["image", "inspect", "-f", "{{.Id}}", "keel-test/busybox:1"]);
    assert_eq!(id.trim(), img.config_digest.as_str());
    dockerd.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "keel-test/busybox:1",
        "true",
    ]);
    let hostname = dockerd.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "keel-test/busybox:1",
        "cat",
        "/etc/release",
    ]);
    assert_eq!(hostname, "keel\n");
    // docker save's output loads back here with the same id.
    let theirs = root.join("theirs.tar");
    dockerd.docker(&[
        "save",
        "-o",
        &theirs.to_string_lossy(),
        "keel-test/busybox:1",
    ]);
    let s2 = Store::open(&root.join("s2")).unwrap();
    let back = load(&s2, &theirs, None).unwrap();
    assert_eq!(back[0].id, img.config_digest);
    assert_store_clean(&s2);
}

struct Dockerd {
    root: PathBuf,
    child: std::process::Child,
}

impl Dockerd {
    fn start(root: &Path) -> Dockerd {
        let sock = root.join("docker.sock");
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("--pidfile")
            .arg(root.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .args(["--storage-driver=vfs"])
            .stdout(fs::File::create(root.join("dockerd.log")).unwrap())
            .stderr(fs::File::create(root.join("dockerd.err")).unwrap())
            .spawn()
            .unwrap();
        let d = Dockerd {
            root: root.to_path_buf(),
            child,
        };
        for _ in 0..300 {
            if sock.exists()
                && Command::new("/usr/bin/docker")
                    .arg("-H")
                    .arg(format!("unix://{}", sock.display()))
                    .arg("version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            {
                return d;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!(
            "dockerd did not start: {}",
            fs::read_to_string(root.join("dockerd.err")).unwrap_or_default()
        );
    }

    fn docker(&self, args: &[&str]) -> String {
        let out = Command::new("/usr/bin/docker")
            .arg("-H")
            .arg(format!(
                "unix://{}",
                self.root.join("docker.sock").display()
            ))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
        // dockerd unmounts what it mounted on a clean stop; detach whatever a failed run
        // left under our root, deepest first, before the tempdir is removed.
        let root = fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone());
        let mut mounts: Vec<PathBuf> = fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(PathBuf::from))
            .filter(|p| p.starts_with(&root))
            .collect();
        mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for m in mounts {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

#[test]
fn docker_variants_shared_layer_symlinks_and_blobs_layout() {
    let t = tempfile::tempdir().unwrap();
    let store = Store::open(&t.path().join("s")).unwrap();
    let archive = t.path().join("a.tar");
    // docker <25 writes a layer two images (or one image twice) share once, and a
    // symlink `layer.tar -> ../<id>/layer.tar` for the second.
    let layer = Crafted::default().file("f", b"shared").finish();
    let mut config = ImageConfig::scratch();
    config.rootfs.diff_ids = vec![Digest::of_bytes(&layer); 2];
    let config = config.to_bytes();
    Crafted::default()
        .file("l0/layer.tar", &layer)
        .entry("l1/layer.tar", tar::EntryType::Symlink, b"", "../l0/layer.tar")
        .file("c.json", &config)
        .file(
            "manifest.json",
            br#"[{"Config":"c.json","RepoTags":["two/layers:1"],"Layers":["l0/layer.tar","l1/layer.tar"]}]"#,
        )
        .write(&archive);
    let loaded = load(&store, &archive, None).unwrap();
    assert_eq!(loaded[0].id, Digest::of_bytes(&config));
    assert_eq!(
        store
            .resolve("two/layers:1")
            .unwrap()
            .manifest
            .layers()
            .len(),
        2
    );
    assert_store_clean(&store);

    // docker 25+ names blobs of an OCI layout from manifest.json; a gzipped layer there is
    // kept as it is, so the manifest comes out as the source's.
    let s1 = Store::open(&t.path().join("s1")).unwrap();
    let img = import_test_image(t.path(), &s1);
    let oci = t.path().join("o.tar");
    save(&s1, &["local/test".into()], ArchiveFormat::OciArchive, &oci).unwrap();
    let mut c = Crafted::default();
    for (name, data) in members(&oci) {
        c.file(&name, &data);
    }
    let layer_blob = img.manifest.layers()[0].digest().to_string();
    c.file(
        "manifest.json",
        serde_json::json!([{
            "Config": format!("blobs/sha256/{}", img.config_digest.hex()),
            "RepoTags": ["new/style:1"],
            "Layers": [format!("blobs/sha256/{}", &layer_blob["sha256:".len()..])],
        }])
        .to_string()
        .as_bytes(),
    );
    c.write(&archive);
    let s2 = Store::open(&t.path().join("s2")).unwrap();
    let loaded = load(&s2, &archive, None).unwrap();
    assert_eq!(loaded[0].names, ["new/style:1"]);
    assert_same_image(&img, &s2.resolve("new/style:1").unwrap());
    assert_store_clean(&s2);
}
