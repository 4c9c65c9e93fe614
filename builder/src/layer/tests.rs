//! Round trips through the whole module: tree -> tar -> blob -> tree.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{lchown, symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{makedev, mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;

use super::*;

const T0: i64 = 1_600_000_000;

fn set_mtime(path: &Path, secs: i64) {
    let t = TimeSpec::new(secs, 0);
    utimensat(None, path, &t, &t, UtimensatFlags::NoFollowSymlink).unwrap();
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    xattr::set(path, OsStr::new(name), value).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// An overlay upper dir with one of everything a layer can hold.
fn build_upper(root: &Path) {
    let p = |r: &str| root.join(r);
    fs::write(p("a.txt"), b"hello\n").unwrap();
    lchown(p("a.txt"), Some(1000), Some(1000)).unwrap();
    set_xattr(&p("a.txt"), "user.x", b"some value");
    fs::hard_link(p("a.txt"), p("hard")).unwrap();
    fs::write(p("suid"), b"#!/bin/sh\n").unwrap();
    chmod(&p("suid"), 0o4755);
    fs::create_dir(p("dir")).unwrap();
    fs::create_dir(p("dir/sub")).unwrap();
    fs::write(p("dir/sub/deep.txt"), vec![7u8; 70_000]).unwrap();
    chmod(&p("dir"), 0o750);
    fs::create_dir(p("sticky")).unwrap();
    chmod(&p("sticky"), 0o1777);
    symlink("a.txt", p("link")).unwrap();
    symlink("/etc/passwd", p("abs-link")).unwrap();
    lchown(p("abs-link"), Some(5), Some(6)).unwrap();
    nix::unistd::mkfifo(&p("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
    chmod(&p("fifo"), 0o640);
    mknod(
        &p("null"),
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o666),
        makedev(1, 3),
    )
    .unwrap();
    chmod(&p("null"), 0o666);
    // An overlay whiteout and an opaque directory.
    mknod(&p("gone"), SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).unwrap();
    fs::create_dir(p("opq")).unwrap();
    fs::write(p("opq/new"), b"new").unwrap();
    set_xattr(&p("opq"), OVERLAY_OPAQUE_XATTR, b"y");
    let long = "d".repeat(90);
    fs::create_dir(p(&long)).unwrap();
    fs::write(p(&format!("{long}/{}", "f".repeat(120))), b"long").unwrap();
    symlink("t".repeat(150), p("long-target")).unwrap();
    touch_all(root, T0);
}

/// Sets every mtime under `root` (directories last, as their contents bump them).
fn touch_all(root: &Path, secs: i64) {
    let mut paths: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .min_depth(1)
        .contents_first(true)
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .collect();
    paths.dedup();
    for path in paths {
        set_mtime(&path, secs);
    }
}

#[derive(Debug, PartialEq)]
struct Node {
    kind: String,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    data: Vec<u8>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Everything extraction must preserve, per relative path.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).min_depth(1) {
        let e = e.unwrap();
        let m = e.path().symlink_metadata().unwrap();
        let ft = m.file_type();
        use std::os::unix::fs::FileTypeExt;
        let (kind, data) = if ft.is_dir() {
            ("dir".to_string(), Vec::new())
        } else if ft.is_file() {
            ("file".to_string(), fs::read(e.path()).unwrap())
        } else if ft.is_symlink() {
            let t = fs::read_link(e.path()).unwrap();
            ("symlink".to_string(), t.as_os_str().as_bytes().to_vec())
        } else if ft.is_char_device() {
            (
                format!("char {}:{}", libc::major(m.rdev()), libc::minor(m.rdev())),
                Vec::new(),
            )
        } else if ft.is_fifo() {
            ("fifo".to_string(), Vec::new())
        } else {
            ("other".to_string(), Vec::new())
        };
        let xattrs = xattr::list(e.path())
            .unwrap()
            .into_iter()
            .map(|n| {
                let v = xattr::get(e.path(), &n).unwrap().unwrap();
                (n, v)
            })
            .collect();
        out.insert(
            e.path().strip_prefix(root).unwrap().to_path_buf(),
            Node {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                mtime: m.mtime(),
                data,
                xattrs,
            },
        );
    }
    out
}

fn entry_names(tar: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(tar);
    a.entries()
        .unwrap()
        .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
        .collect()
}

fn diff_tar(upper: &Path, opts: &LayerOptions) -> Vec<u8> {
    let mut tar = Vec::new();
    write_diff(upper, &mut tar, opts).unwrap();
    tar
}

#[test]
fn upper_dir_round_trips_through_a_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let upper = tmp.path().join("upper");
    fs::create_dir(&upper).unwrap();
    build_upper(&upper);

    let mut blob = Vec::new();
    let lb = compress_layer(
        |w| write_diff(&upper, w, &LayerOptions::default()),
        &mut blob,
    )
    .unwrap();
    let mut tar = Vec::new();
    open_layer(&blob[..])
        .unwrap()
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(lb.diff_id, crate::digest::Digest::of_bytes(&tar));

    let long = "d".repeat(90);
    let long_file = format!("{long}/{}", "f".repeat(120));
    assert_eq!(
        entry_names(&tar),
        [
            "a.txt",
            "abs-link",
            &format!("{long}/"),
            &long_file,
            "dir/",
            "dir/sub/",
            "dir/sub/deep.txt",
            "fifo",
            ".wh.gone",
            "hard",
            "link",
            "long-target",
            "null",
            "opq/",
            "opq/.wh..wh..opq",
            "opq/new",
            "sticky/",
            "suid",
        ]
    );

    let dest = tmp.path().join("dest");
    let stats = extract(&tar[..], &dest, &ExtractOptions::default()).unwrap();
    assert_eq!(stats.files, 5);
    assert_eq!(stats.bytes, 6 + 10 + 70_000 + 3 + 4);
    assert_eq!(stats.whiteouts, 2);
    assert_eq!(stats.entries, 18);

    let (src, got) = (snapshot(&upper), snapshot(&dest));
    assert_eq!(
        src.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    for (path, node) in &src {
        assert_eq!(Some(node), got.get(path), "{}", path.display());
    }
    // Spot checks of what the comparison covers, so a broken snapshot cannot hide them.
    assert_eq!(got[Path::new("gone")].kind, "char 0:0");
    assert_eq!(
        got[Path::new("opq")].xattrs,
        [(b"trusted.overlay.opaque".to_vec(), b"y".to_vec())]
    );
    assert_eq!(got[Path::new("suid")].mode, 0o4755);
    assert_eq!(got[Path::new("a.txt")].xattrs[0].0, b"user.x");
    let ino = |p: &str| dest.join(p).symlink_metadata().unwrap().ino();
    assert_eq!(ino("a.txt"), ino("hard"));
}

#[test]
fn headers_carry_no_names_or_access_times() {
    let tmp = tempfile::tempdir().unwrap();
    build_upper(tmp.path());
    let tar = diff_tar(tmp.path(), &LayerOptions::default());
    let mut a = tar::Archive::new(&tar[..]);
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        assert_eq!(h.username_bytes().unwrap_or_default(), b"");
        assert_eq!(h.groupname_bytes().unwrap_or_default(), b"");
        let gnu = h.as_gnu().unwrap();
        assert!(gnu.atime.iter().chain(&gnu.ctime).all(|&b| b == 0));
        if e.path_bytes().as_ref() == b"a.txt" {
            assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (1000, 1000));
        }
        if e.path_bytes().as_ref() == b"hard" {
            assert_eq!(h.entry_type(), tar::EntryType::Link);
            assert_eq!(e.link_name_bytes().unwrap().as_ref(), b"a.txt");
        }
    }
}

#[test]
fn same_tree_gives_the_same_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    fs::create_dir(&one).unwrap();
    fs::create_dir(&two).unwrap();
    build_upper(&one);
    build_upper(&two);
    let blob = |dir: &Path, opts: LayerOptions| {
        compress_layer(|w| write_diff(dir, w, &opts), std::io::sink()).unwrap()
    };
    let first = blob(&one, LayerOptions::default());
    assert_eq!(first, blob(&two, LayerOptions::default()));

    // Later mtimes, clamped back by SOURCE_DATE_EPOCH, change nothing.
    touch_all(&two, T0 + 5000);
    let sde = LayerOptions {
        source_date_epoch: Some(T0),
    };
    assert_ne!(first, blob(&two, LayerOptions::default()));
    assert_eq!(first, blob(&two, sde.clone()));
    assert_eq!(first, blob(&one, sde));
    // Clamping only ever lowers an mtime.
    let late = LayerOptions {
        source_date_epoch: Some(T0 + 10_000),
    };
    assert_eq!(first, blob(&one, late));
}

#[test]
fn write_dir_keeps_devices_and_drops_overlay_xattrs() {
    let tmp = tempfile::tempdir().unwrap();
    build_upper(tmp.path());
    let mut tar = Vec::new();
    write_dir(tmp.path(), &mut tar, &LayerOptions::default()).unwrap();
    let names = entry_names(&tar);
    assert!(names.iter().any(|n| n == "gone"), "{names:?}");
    assert!(!names.iter().any(|n| n.contains(".wh.")), "{names:?}");
    let mut a = tar::Archive::new(&tar[..]);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path_bytes().as_ref() == b"gone" {
            assert_eq!(e.header().entry_type(), tar::EntryType::Char);
        }
        if let Some(pax) = e.pax_extensions().unwrap() {
            for ext in pax {
                assert!(!ext.unwrap().key().unwrap().contains("overlay"));
            }
        }
    }
}

#[test]
fn redirected_dirs_in_an_upper_dir_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("moved")).unwrap();
    set_xattr(
        &tmp.path().join("moved"),
        "trusted.overlay.redirect",
        b"/orig",
    );
    let err = write_diff(tmp.path(), std::io::sink(), &LayerOptions::default()).unwrap_err();
    assert!(
        matches!(&err, LayerError::PartialOverlayEntry { path, .. } if path.ends_with("moved")),
        "{err}"
    );
}

/// Unmounts on drop, so a failing assertion leaves no mount behind.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn real_overlay_changes_become_whiteouts_and_opaque_dirs() {
    let tmp = tempfile::tempdir().unwrap();
    let d = |n: &str| {
        let p = tmp.path().join(n);
        fs::create_dir_all(&p).unwrap();
        p
    };
    let (lower, upper, work, merged) = (d("lower"), d("upper"), d("work"), d("merged"));
    fs::write(lower.join("keep"), b"k").unwrap();
    fs::write(lower.join("del1"), b"1").unwrap();
    fs::write(lower.join("del2"), b"2").unwrap();
    fs::create_dir(lower.join("redo")).unwrap();
    fs::write(lower.join("redo/old"), b"o").unwrap();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={},redirect_dir=off,metacopy=off",
        lower.display(),
        upper.display(),
        work.display()
    );
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(opts.as_str()),
    )
    .unwrap();
    let guard = Mount(merged.clone());
    fs::remove_file(merged.join("del1")).unwrap();
    fs::remove_file(merged.join("del2")).unwrap();
    fs::remove_dir_all(merged.join("redo")).unwrap();
    fs::create_dir(merged.join("redo")).unwrap();
    fs::write(merged.join("redo/new"), b"n").unwrap();
    drop(guard);

    let tar = diff_tar(&upper, &LayerOptions::default());
    assert_eq!(
        entry_names(&tar),
        [
            ".wh.del1",
            ".wh.del2",
            "redo/",
            "redo/.wh..wh..opq",
            "redo/new"
        ]
    );

    // Flattened onto the lower layer, the result is what the container saw.
    let flat = tmp.path().join("flat");
    let mut lower_tar = Vec::new();
    write_dir(&lower, &mut lower_tar, &LayerOptions::default()).unwrap();
    let apply = ExtractOptions {
        whiteouts: Whiteouts::Apply,
    };
    extract(&lower_tar[..], &flat, &apply).unwrap();
    extract(&tar[..], &flat, &apply).unwrap();
    let names: Vec<_> = snapshot(&flat).into_keys().collect();
    assert_eq!(
        names,
        ["keep", "redo", "redo/new"].map(PathBuf::from).to_vec()
    );
}
