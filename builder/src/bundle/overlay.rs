//! The container rootfs as an overlay of the image's extracted layers.
//!
//! Layers are given as short names relative to the store's `layers/` dir
//! (see DESIGN.md), top layer first, as overlayfs orders `lowerdir`.
//!
//! Mount options, and why:
//! - `index=off`: with the index on, overlayfs refuses (EBUSY) a lower dir
//!   that is the upper or work dir of another live overlay, and records the
//!   lower stack's file handles in the upper dir, failing later mounts with
//!   ESTALE once a layer has been re-extracted (gc, re-pull). Our layer dirs
//!   are shared by any number of concurrent mounts, and we need neither of
//!   the index's features (hard links kept across copy-up, NFS export).
//! - `redirect_dir=off`: renaming a lower directory would otherwise leave
//!   only a `trusted.overlay.redirect` xattr in the upper dir, which a layer
//!   tar cannot express; off, the rename fails with EXDEV and tools fall back
//!   to copying, so the upper dir holds a plain copy plus a whiteout.
//! - `metacopy=off`: likewise, a chmod/chown would otherwise copy up only
//!   metadata and leave a data-less file in the upper dir.
//! - `xino` is left at the kernel's default: all layers of a store live on
//!   one filesystem, where inode numbers are already unique without it.
//!
//! The new mount API (fsopen/fsconfig with `lowerdir+`, Linux >= 6.8) adds
//! one layer per call, so there is no limit from the one-page option string
//! of mount(2). On older kernels the option string is used, with each layer
//! as `/proc/self/fd/<fd of layers_root>/<short>`: the paths stay short
//! without changing the process's cwd, which is shared by every thread.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::BundleError;

const FSOPEN_CLOEXEC: libc::c_uint = 0x1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 0x1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

const FIXED_OPTIONS: [(&str, &str); 3] = [
    ("index", "off"),
    ("redirect_dir", "off"),
    ("metacopy", "off"),
];

/// Mounts the layers `lower` (relative to `layers_root`, top first) at
/// `target`, with `upper`/`work` as the writable layer when given (both or
/// neither).
///
/// - no upper, no layers (a scratch image): `target` is left an empty dir;
/// - no upper, one layer: a read-only bind mount of it;
/// - upper, no layers: a bind mount of the upper dir;
/// - otherwise an overlay, read-only when there is no upper.
///
/// On error nothing is left mounted at `target`.
pub fn mount_overlay(
    layers_root: &Path,
    lower: &[String],
    upper: Option<&Path>,
    work: Option<&Path>,
    target: &Path,
) -> Result<(), BundleError> {
    let merr = |step: &str| {
        let step = step.to_string();
        move |source: io::Error| BundleError::Mount {
            target: target.to_path_buf(),
            layers: lower.len(),
            step,
            source,
        }
    };
    for layer in lower {
        check_layer_name(layer)?;
    }
    let upper = match (upper, work) {
        (Some(u), Some(w)) => Some((u, w)),
        (None, None) => None,
        _ => {
            return Err(merr("checking arguments")(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an upper dir needs a work dir and a work dir an upper dir",
            )))
        }
    };
    std::fs::create_dir_all(target).map_err(merr("creating the mount point"))?;
    tracing::debug!(target = %target.display(), layers = lower.len(), rw = upper.is_some(), "mounting rootfs");

    match (lower, upper) {
        ([], None) => Ok(()),
        ([only], None) => {
            bind(&layers_root.join(only), target, true).map_err(merr("bind-mounting the layer"))
        }
        ([], Some((upper, _))) => {
            bind(upper, target, false).map_err(merr("bind-mounting the upper dir"))
        }
        _ if !kernel_has_lowerdir_append() => {
            tracing::debug!("kernel older than 6.8, using mount(2) for the overlay");
            mount_legacy(layers_root, lower, upper, target).map_err(|(step, e)| merr(&step)(e))
        }
        _ => match mount_new_api(layers_root, lower, upper, target) {
            Ok(()) => Ok(()),
            Err(NewApi::Unsupported(why)) => {
                tracing::debug!(%why, "new mount API unusable for overlay, using mount(2)");
                mount_legacy(layers_root, lower, upper, target).map_err(|(step, e)| merr(&step)(e))
            }
            Err(NewApi::Failed(step, e)) => Err(merr(&step)(e)),
        },
    }
}

/// Unmounts `target`; a busy mount is detached instead (it goes away when
/// its last user does). Not being a mount point is not an error, so that
/// cleanup can run whatever state a failed setup left.
pub fn unmount(target: &Path) -> Result<(), BundleError> {
    let err = |e: nix::errno::Errno| BundleError::Unmount {
        target: target.to_path_buf(),
        source: io::Error::from(e),
    };
    match umount2(target, MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EBUSY) => {
            tracing::debug!(target = %target.display(), "mount busy, detaching");
            umount2(target, MntFlags::MNT_DETACH).map_err(err)
        }
        Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(err(e)),
    }
}

/// Unmounts its target when dropped, unless [`OverlayGuard::keep`] is
/// called: a command that fails half-way leaves no mount behind.
#[derive(Debug)]
pub struct OverlayGuard {
    target: Option<PathBuf>,
}

impl OverlayGuard {
    /// Mounts as [`mount_overlay`] does and guards the result.
    pub fn mount(
        layers_root: &Path,
        lower: &[String],
        upper: Option<&Path>,
        work: Option<&Path>,
        target: &Path,
    ) -> Result<OverlayGuard, BundleError> {
        mount_overlay(layers_root, lower, upper, work, target)?;
        Ok(OverlayGuard {
            target: Some(target.to_path_buf()),
        })
    }

    pub fn target(&self) -> Option<&Path> {
        self.target.as_deref()
    }

    /// Leaves the mount in place; the caller now owns it.
    pub fn keep(mut self) -> PathBuf {
        self.target.take().unwrap_or_default()
    }

    /// Unmounts now, reporting failure (drop can only log it).
    pub fn unmount(mut self) -> Result<(), BundleError> {
        match self.target.take() {
            Some(t) => unmount(&t),
            None => Ok(()),
        }
    }
}

impl Drop for OverlayGuard {
    fn drop(&mut self) {
        if let Some(t) = self.target.take() {
            if let Err(e) = unmount(&t) {
                tracing::warn!(error = %e, "leaving rootfs mounted");
            }
        }
    }
}

/// Short names are relative paths below `layers_root`: anything that could
/// point elsewhere, or would need escaping in an option string, is refused.
fn check_layer_name(layer: &str) -> Result<(), BundleError> {
    let bad = |reason| BundleError::InvalidLayer {
        layer: layer.to_string(),
        reason,
    };
    if layer.is_empty() {
        return Err(bad("empty name"));
    }
    if layer.contains([',', ':', '\\']) || layer.contains('\0') {
        return Err(bad("contains ',', ':', '\\' or NUL"));
    }
    if !Path::new(layer)
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(bad(
            "must be relative to the layers dir, without '.' or '..'",
        ));
    }
    Ok(())
}

fn bind(source: &Path, target: &Path, readonly: bool) -> io::Result<()> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )?;
    if readonly {
        // A bind mount ignores MS_RDONLY on creation; it takes a remount.
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        if let Err(e) = mount(None::<&str>, target, None::<&str>, flags, None::<&str>) {
            let _ = umount2(target, MntFlags::MNT_DETACH);
            return Err(e.into());
        }
    }
    Ok(())
}

enum NewApi {
    /// The kernel lacks the API or `lowerdir+`: try mount(2).
    Unsupported(String),
    Failed(String, io::Error),
}

fn cstring(s: &[u8]) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

fn last_os_error_fd(ret: libc::c_long) -> io::Result<OwnedFd> {
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the syscall just returned this descriptor; we are its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

fn fsconfig_string(fs: &OwnedFd, key: &str, value: &[u8]) -> io::Result<()> {
    let key = cstring(key.as_bytes())?;
    let value = cstring(value)?;
    // SAFETY: both strings are NUL-terminated and outlive the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_STRING,
            key.as_ptr(),
            value.as_ptr(),
            0,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The kernel's own explanation of an fsconfig failure ("overlayfs: failed
/// to resolve 'x': -2"), read from the fs context; much better than EINVAL.
fn kernel_log(fs: &OwnedFd) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::read(fs.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        out.push(
            String::from_utf8_lossy(&buf[..n as usize])
                .trim()
                .to_string(),
        );
    }
    out.join("; ")
}

fn with_log(fs: &OwnedFd, e: io::Error) -> io::Error {
    let log = kernel_log(fs);
    if log.is_empty() {
        e
    } else {
        io::Error::new(e.kind(), format!("{e} ({log})"))
    }
}

fn mount_new_api(
    layers_root: &Path,
    lower: &[String],
    upper: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<(), NewApi> {
    let name = cstring(b"overlay").map_err(|e| NewApi::Failed("fsopen".into(), e))?;
    // SAFETY: name is NUL-terminated.
    let fs =
        last_os_error_fd(unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), FSOPEN_CLOEXEC) })
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENOSYS) | Some(libc::EPERM) => {
                    NewApi::Unsupported(format!("fsopen: {e}"))
                }
                _ => NewApi::Failed("fsopen(overlay)".into(), e),
            })?;
    let failed = |step: String| |e: io::Error| NewApi::Failed(step, with_log(&fs, e));

    fsconfig_string(&fs, "source", b"keel").map_err(failed("setting source".into()))?;
    for (i, layer) in lower.iter().enumerate() {
        let path = layers_root.join(layer);
        if let Err(e) = fsconfig_string(&fs, "lowerdir+", path.as_os_str().as_bytes()) {
            // Before 6.8 the key is unknown: EINVAL with "Unknown parameter".
            let log = kernel_log(&fs);
            if i == 0 && e.raw_os_error() == Some(libc::EINVAL) && log.contains("nknown parameter")
            {
                return Err(NewApi::Unsupported(format!("lowerdir+: {log}")));
            }
            let msg = if log.is_empty() {
                e.to_string()
            } else {
                format!("{e} ({log})")
            };
            return Err(NewApi::Failed(
                format!("adding lower layer {i} ({})", path.display()),
                io::Error::new(e.kind(), msg),
            ));
        }
    }
    if let Some((upper, work)) = upper {
        fsconfig_string(&fs, "upperdir", upper.as_os_str().as_bytes())
            .map_err(failed(format!("setting upperdir {}", upper.display())))?;
        fsconfig_string(&fs, "workdir", work.as_os_str().as_bytes())
            .map_err(failed(format!("setting workdir {}", work.display())))?;
    }
    for (key, value) in FIXED_OPTIONS {
        fsconfig_string(&fs, key, value.as_bytes())
            .map_err(failed(format!("setting {key}={value}")))?;
    }
    // SAFETY: no pointers are passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if ret < 0 {
        return Err(failed("creating the overlay".into())(
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: no pointers are passed.
    let mnt = last_os_error_fd(unsafe {
        libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, 0)
    })
    .map_err(failed("fsmount".into()))?;
    let empty = cstring(b"").map_err(|e| NewApi::Failed("move_mount".into(), e))?;
    let target_c = cstring(target.as_os_str().as_bytes())
        .map_err(|e| NewApi::Failed("move_mount".into(), e))?;
    // SAFETY: both strings are NUL-terminated and outlive the call. Should it
    // fail, closing `mnt` frees the detached mount: nothing is left behind.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            target_c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if ret < 0 {
        return Err(NewApi::Failed(
            "attaching the overlay (move_mount)".into(),
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn mount_legacy(
    layers_root: &Path,
    lower: &[String],
    upper: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<(), (String, io::Error)> {
    let root = File::open(layers_root)
        .map_err(|e| (format!("opening layers dir {}", layers_root.display()), e))?;
    let data = legacy_options(root.as_raw_fd(), lower, upper);
    let page = page_size();
    if data.len() >= page {
        return Err((
            "building mount options".into(),
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} bytes of options exceed the {page}-byte limit of mount(2) on this kernel",
                    data.len()
                ),
            ),
        ));
    }
    // `root` stays open across the call: the paths in `data` go through it.
    mount(
        Some("keel"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(|e| ("mount(2) overlay".to_string(), io::Error::from(e)))?;
    drop(root);
    Ok(())
}

fn legacy_options(root_fd: RawFd, lower: &[String], upper: Option<(&Path, &Path)>) -> String {
    let lowers: Vec<String> = lower
        .iter()
        .map(|l| format!("/proc/self/fd/{root_fd}/{l}"))
        .collect();
    let mut data = format!("lowerdir={}", lowers.join(":"));
    if let Some((u, w)) = upper {
        data.push_str(&format!(
            ",upperdir={},workdir={}",
            u.display(),
            w.display()
        ));
    }
    for (k, v) in FIXED_OPTIONS {
        data.push_str(&format!(",{k}={v}"));
    }
    data
}

/// `lowerdir+` arrived in 6.8. Before 6.5 overlayfs took fsconfig keys
/// through a generic shim that accepts any key and fails only at create
/// time, so the key cannot be probed reliably: ask for the version.
fn kernel_has_lowerdir_append() -> bool {
    // SAFETY: utsname is plain old data, filled in by uname.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uts is a valid, writable utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return false;
    }
    // SAFETY: uname NUL-terminates release within the array.
    let release = unsafe { std::ffi::CStr::from_ptr(uts.release.as_ptr()) };
    release_at_least(&release.to_string_lossy(), 6, 8)
}

fn release_at_least(release: &str, major: u32, minor: u32) -> bool {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(ma), Some(mi)) => (ma, mi) >= (major, minor),
        _ => false,
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    fn mounted_at(target: &Path) -> bool {
        let target = fs::canonicalize(target).unwrap_or_else(|_| target.to_path_buf());
        let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
        info.lines()
            .any(|l| l.split(' ').nth(4) == Some(target.to_str().unwrap()))
    }

    /// A store-like tree: `layers/<long name>/` holding `file-<n>`, and short
    /// links `layers/l/<n>` -> `../<long name>`. Returns the short names, top first.
    fn make_layers(root: &Path, count: usize) -> Vec<String> {
        fs::create_dir_all(root.join("l")).unwrap();
        let mut names = Vec::new();
        for n in 0..count {
            let long = format!("sha256-{n:064}");
            fs::create_dir_all(root.join(&long)).unwrap();
            fs::write(root.join(&long).join(format!("file-{n}")), n.to_string()).unwrap();
            fs::write(root.join(&long).join("shared"), n.to_string()).unwrap();
            std::os::unix::fs::symlink(format!("../{long}"), root.join("l").join(n.to_string()))
                .unwrap();
            names.push(format!("l/{n}"));
        }
        // Layer 0 was made first, so it is the bottom one: top first means reversed.
        names.reverse();
        names
    }

    struct Setup {
        _dir: tempfile::TempDir,
        layers: PathBuf,
        upper: PathBuf,
        work: PathBuf,
        target: PathBuf,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().to_path_buf();
        for d in ["layers", "upper", "work", "merged"] {
            fs::create_dir_all(p.join(d)).unwrap();
        }
        Setup {
            layers: p.join("layers"),
            upper: p.join("upper"),
            work: p.join("work"),
            target: p.join("merged"),
            _dir: dir,
        }
    }

    fn check_150_layers(use_legacy: bool) {
        let s = setup();
        let lower = make_layers(&s.layers, 150);
        let guard_target = s.target.clone();
        let result = if use_legacy {
            mount_legacy(&s.layers, &lower, Some((&s.upper, &s.work)), &s.target)
                .map_err(|(step, e)| format!("{step}: {e}"))
        } else {
            mount_overlay(&s.layers, &lower, Some(&s.upper), Some(&s.work), &s.target)
                .map_err(|e| e.to_string())
        };
        let guard = OverlayGuard {
            target: Some(guard_target),
        };
        result.unwrap();
        assert!(mounted_at(&s.target));
        for n in 0..150 {
            assert_eq!(
                fs::read_to_string(s.target.join(format!("file-{n}"))).unwrap(),
                n.to_string()
            );
        }
        // The top layer (149) wins for a name all layers have.
        assert_eq!(fs::read_to_string(s.target.join("shared")).unwrap(), "149");
        fs::write(s.target.join("new-file"), "written").unwrap();
        assert_eq!(
            fs::read_to_string(s.upper.join("new-file")).unwrap(),
            "written"
        );
        assert!(!s.layers.join("l/149/new-file").exists());
        guard.unmount().unwrap();
        assert!(!mounted_at(&s.target));
        assert!(!s.target.join("file-0").exists());
    }

    #[test]
    fn overlay_of_150_layers_with_new_api() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        check_150_layers(false);
    }

    #[test]
    fn overlay_of_150_layers_with_mount2_fallback() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        check_150_layers(true);
    }

    #[test]
    fn failed_mount_leaves_nothing_mounted_and_names_the_layer() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let s = setup();
        let mut lower = make_layers(&s.layers, 5);
        lower.insert(2, "l/missing".to_string());
        let err =
            mount_overlay(&s.layers, &lower, Some(&s.upper), Some(&s.work), &s.target).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("6 layer(s)"), "{msg}");
        assert!(msg.contains(&s.target.display().to_string()), "{msg}");
        assert!(msg.contains("l/missing"), "{msg}");
        // This kernel (>= 6.8) takes the fsconfig path, which names the layer's index.
        assert!(msg.contains("adding lower layer 2"), "{msg}");
        assert!(!mounted_at(&s.target));
        // Cleanup of a target that is not mounted is fine.
        unmount(&s.target).unwrap();
    }

    #[test]
    fn read_only_variants() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let s = setup();
        let lower = make_layers(&s.layers, 3);

        // One layer, no upper: a read-only bind mount.
        let g = OverlayGuard::mount(&s.layers, &lower[..1], None, None, &s.target).unwrap();
        assert!(s.target.join("file-2").exists());
        let e = fs::write(s.target.join("x"), "x").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EROFS));
        g.unmount().unwrap();
        assert!(!mounted_at(&s.target));

        // Several layers, no upper: a read-only overlay.
        let g = OverlayGuard::mount(&s.layers, &lower, None, None, &s.target).unwrap();
        assert!(s.target.join("file-0").exists() && s.target.join("file-2").exists());
        let e = fs::write(s.target.join("x"), "x").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EROFS));
        drop(g);
        assert!(!mounted_at(&s.target));

        // No layers, no upper (scratch): just the empty directory.
        mount_overlay(&s.layers, &[], None, None, &s.target).unwrap();
        assert!(!mounted_at(&s.target));
        assert_eq!(fs::read_dir(&s.target).unwrap().count(), 0);

        // No layers with an upper: writes go to the upper dir.
        let g =
            OverlayGuard::mount(&s.layers, &[], Some(&s.upper), Some(&s.work), &s.target).unwrap();
        fs::write(s.target.join("y"), "y").unwrap();
        assert!(s.upper.join("y").exists());
        drop(g);
        assert!(!mounted_at(&s.target));
    }

    #[test]
    fn layer_names_that_could_escape_are_refused() {
        for bad in ["", "/abs", "../x", "l/../../x", "a:b", "a,b", "./a"] {
            let err = mount_overlay(
                Path::new("/nonexistent"),
                &[bad.to_string()],
                None,
                None,
                Path::new("/nonexistent/t"),
            )
            .unwrap_err();
            assert!(
                matches!(err, BundleError::InvalidLayer { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn kernel_release_comparison() {
        assert!(release_at_least("6.18.44-fc-v1045", 6, 8));
        assert!(release_at_least("6.8.0", 6, 8));
        assert!(!release_at_least("6.5.0-rc1", 6, 8));
        assert!(!release_at_least("5.19.3", 6, 8));
        assert!(!release_at_least("garbage", 6, 8));
    }

    #[test]
    fn legacy_options_use_fd_relative_paths() {
        let opts = legacy_options(7, &["l/a".into(), "l/b".into()], None);
        assert_eq!(
            opts,
            "lowerdir=/proc/self/fd/7/l/a:/proc/self/fd/7/l/b,index=off,redirect_dir=off,metacopy=off"
        );
    }
}
