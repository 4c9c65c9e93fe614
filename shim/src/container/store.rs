//! The containers under `--root`: create (with its name reserved), find
//! by name or id, list, remove.
//!
//! Names are reserved as symlinks `root/names/<name> -> <id>`: a symlink is
//! created atomically with its content, and only one of two processes can
//! create it. A file lock on `root/names/.lock` (a name that can never be a
//! container's) serialises the few steps around it, so a reservation left
//! dangling by a crash can be told apart from one being made.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::ids::{is_valid_id, normalize_name, random_name};
use super::{ContainerError, ContainerMeta, Paths};

/// Random names tried before giving up on a (very) crowded host.
const NAME_ATTEMPTS: u32 = 20;

pub struct ContainerStore {
    paths: Paths,
}

impl ContainerStore {
    pub fn new(paths: Paths) -> ContainerStore {
        ContainerStore { paths }
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    fn names_dir(&self) -> PathBuf {
        self.paths.root.join("names")
    }

    /// Records a new container: its directory, `meta.json` (written
    /// atomically) and its name. An empty `meta.name` gets a random one.
    /// Returns the metadata as stored.
    pub fn create(&self, mut meta: ContainerMeta) -> Result<ContainerMeta, ContainerError> {
        if !is_valid_id(&meta.id) {
            return Err(ContainerError::InvalidId { id: meta.id });
        }
        let random = meta.name.is_empty();
        if !random {
            meta.name = normalize_name(&meta.name)?;
        }
        let _lock = self.lock()?;
        if random {
            meta.name = self.free_random_name()?;
        } else if let Some(owner) = self.name_owner(&meta.name)? {
            return Err(ContainerError::NameInUse {
                name: meta.name,
                id: owner,
            });
        }

        let dir = self.paths.container_dir(&meta.id);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(ContainerError::IdInUse { id: meta.id, dir });
            }
            Err(e) => return Err(ContainerError::io("create", &dir)(e)),
        }
        let made = self.write_meta(&meta).and_then(|()| self.reserve(&meta));
        if made.is_err() {
            // Nothing else refers to the directory yet.
            if let Err(e) = fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), %e, "cannot clean up a failed create");
            }
        }
        made.map(|()| meta)
    }

    /// A container by exact name (with or without its leading `/`), full
    /// id, or unique id prefix, in docker's order.
    pub fn resolve(&self, what: &str) -> Result<ContainerMeta, ContainerError> {
        let not_found = || ContainerError::NotFound(what.to_string());
        if is_valid_id(what) && self.paths.meta(what).exists() {
            return self.load(what);
        }
        let name = what.strip_prefix('/').unwrap_or(what);
        if !name.is_empty() && !name.contains('/') && !name.starts_with('.') {
            if let Some(id) = self.name_target(name)? {
                if self.paths.meta(&id).exists() {
                    return self.load(&id);
                }
            }
        }
        if what.is_empty() || !what.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_found());
        }
        let prefix = what.to_ascii_lowercase();
        let mut hits = self.ids()?.into_iter().filter(|id| id.starts_with(&prefix));
        match (hits.next(), hits.next()) {
            (Some(id), None) => self.load(&id),
            (Some(_), Some(_)) => Err(ContainerError::Ambiguous {
                prefix: what.to_string(),
            }),
            (None, _) => Err(not_found()),
        }
    }

    /// The metadata of container `id`.
    pub fn load(&self, id: &str) -> Result<ContainerMeta, ContainerError> {
        let path = self.paths.meta(id);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ContainerError::NotFound(id.to_string()))
            }
            Err(e) => return Err(ContainerError::io("read", &path)(e)),
        };
        serde_json::from_slice(&data).map_err(|source| ContainerError::Meta { path, source })
    }

    /// Every container, newest first (as `ps`). One whose metadata cannot
    /// be read is left out with a warning rather than hiding all others.
    pub fn list(&self) -> Vec<ContainerMeta> {
        let ids = match self.ids() {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(%e, "cannot list containers");
                return Vec::new();
            }
        };
        let mut all: Vec<ContainerMeta> = ids
            .iter()
            .filter_map(|id| match self.load(id) {
                Ok(m) => Some(m),
                // Removed meanwhile, or a create still writing it.
                Err(ContainerError::NotFound(_)) => None,
                Err(e) => {
                    tracing::warn!(%e, "skipping container");
                    None
                }
            })
            .collect();
        // RFC 3339 times of one writer sort as text; ties by id keep the
        // order stable.
        all.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
        all
    }

    /// Frees the name and removes the container's directories. Refuses while
    /// anything under the container's directory is still mounted: removing
    /// through a mounted rootfs would delete the image's files.
    pub fn remove(&self, id: &str) -> Result<(), ContainerError> {
        if !is_valid_id(id) {
            return Err(ContainerError::InvalidId { id: id.to_string() });
        }
        let dir = self.paths.container_dir(id);
        if !dir.exists() {
            return Err(ContainerError::NotFound(id.to_string()));
        }
        if let Some(mount) = mount_under(&dir)? {
            return Err(ContainerError::StillMounted {
                id: id.to_string(),
                mount,
            });
        }
        {
            let _lock = self.lock()?;
            for (name, target) in self.reservations()? {
                if target == id {
                    let link = self.names_dir().join(&name);
                    remove_if_present(&link, "free the name")?;
                }
            }
        }
        fs::remove_dir_all(&dir).map_err(ContainerError::io("remove", &dir))?;
        let run = self.paths.run_dir(id);
        match fs::remove_dir_all(&run) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(ContainerError::io("remove", run)(e))
            }
            _ => Ok(()),
        }
    }

    /// The ids that have a directory under root.
    fn ids(&self) -> Result<Vec<String>, ContainerError> {
        let entries = match fs::read_dir(&self.paths.root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ContainerError::io("list", &self.paths.root)(e)),
        };
        let mut ids: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| is_valid_id(n))
            .collect();
        ids.sort();
        Ok(ids)
    }

    fn lock(&self) -> Result<Flock<File>, ContainerError> {
        let dir = self.names_dir();
        fs::create_dir_all(&dir).map_err(ContainerError::io("create", &dir))?;
        let path = dir.join(".lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(ContainerError::io("open", &path))?;
        Flock::lock(f, FlockArg::LockExclusive)
            .map_err(|(_, errno)| ContainerError::io("lock", &path)(io::Error::from(errno)))
    }

    /// The id a name's reservation points to, if any.
    fn name_target(&self, name: &str) -> Result<Option<String>, ContainerError> {
        let link = self.names_dir().join(name);
        match fs::read_link(&link) {
            Ok(t) => Ok(Some(t.to_string_lossy().into_owned())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ContainerError::io("read", link)(e)),
        }
    }

    /// Under the lock: the container holding `name`, after dropping a
    /// reservation whose container is gone (left by a crash).
    fn name_owner(&self, name: &str) -> Result<Option<String>, ContainerError> {
        let Some(id) = self.name_target(name)? else {
            return Ok(None);
        };
        if is_valid_id(&id) && self.paths.meta(&id).exists() {
            return Ok(Some(id));
        }
        tracing::warn!(name, id, "dropping a stale name reservation");
        remove_if_present(&self.names_dir().join(name), "free the name")?;
        Ok(None)
    }

    fn free_random_name(&self) -> Result<String, ContainerError> {
        let mut last = None;
        for attempt in 0..NAME_ATTEMPTS {
            let name = random_name(attempt)?;
            match self.name_owner(&name)? {
                None => return Ok(name),
                Some(id) => last = Some((name, id)),
            }
        }
        // Only reachable with thousands of containers; report the last clash.
        let (name, id) = last.unwrap_or_default();
        Err(ContainerError::NameInUse { name, id })
    }

    fn reserve(&self, meta: &ContainerMeta) -> Result<(), ContainerError> {
        let link = self.names_dir().join(&meta.name);
        match std::os::unix::fs::symlink(&meta.id, &link) {
            Ok(()) => Ok(()),
            // Someone not taking the lock (an older binary) got there first.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(ContainerError::NameInUse {
                name: meta.name.clone(),
                id: self.name_target(&meta.name)?.unwrap_or_default(),
            }),
            Err(e) => Err(ContainerError::io("reserve the name", link)(e)),
        }
    }

    fn reservations(&self) -> Result<Vec<(String, String)>, ContainerError> {
        let dir = self.names_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ContainerError::io("list", dir)(e)),
        };
        let mut out = Vec::new();
        for e in entries.filter_map(Result::ok) {
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            if let Ok(t) = fs::read_link(e.path()) {
                out.push((name, t.to_string_lossy().into_owned()));
            }
        }
        Ok(out)
    }

    /// Rewrites the record of an existing container (its name stays).
    pub fn update(&self, meta: &ContainerMeta) -> Result<(), ContainerError> {
        if !self.paths.meta(&meta.id).is_file() {
            return Err(ContainerError::NotFound(meta.id.clone()));
        }
        self.write_meta(meta)
    }

    fn write_meta(&self, meta: &ContainerMeta) -> Result<(), ContainerError> {
        let path = self.paths.meta(&meta.id);
        let tmp = path.with_extension("json.tmp");
        let data = serde_json::to_vec_pretty(meta).map_err(|source| ContainerError::Meta {
            path: path.clone(),
            source,
        })?;
        File::create(&tmp)
            .and_then(|mut f| {
                f.write_all(&data)?;
                f.sync_all()
            })
            .map_err(ContainerError::io("write", &tmp))?;
        fs::rename(&tmp, &path).map_err(ContainerError::io("write", &path))
    }
}

fn remove_if_present(path: &Path, action: &'static str) -> Result<(), ContainerError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ContainerError::io(action, path)(e)),
        _ => Ok(()),
    }
}

/// The first mount point at or below `dir`, from this process's mountinfo.
fn mount_under(dir: &Path) -> Result<Option<PathBuf>, ContainerError> {
    let dir = fs::canonicalize(dir).map_err(ContainerError::io("resolve", dir))?;
    let info = "/proc/self/mountinfo";
    let text = fs::read_to_string(info).map_err(ContainerError::io("read", info))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mount(m)))
        .find(|m| m.starts_with(&dir)))
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if let (b'\\', Some(d)) = (b[i], octal) {
            out.push(
                d.iter()
                    .fold(0u8, |v, c| v.wrapping_mul(8).wrapping_add(c - b'0')),
            );
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::container::ids::new_id;

    pub(crate) fn meta(name: &str) -> ContainerMeta {
        ContainerMeta {
            id: new_id().unwrap(),
            name: name.to_string(),
            image: "busybox:latest".into(),
            image_id: "sha256:abc".into(),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            args: vec!["sh".into(), "-c".into(), "echo hi".into()],
            env: vec!["PATH=/bin".into()],
            entrypoint: None,
            cmd: Some(vec!["sh".into(), "-c".into(), "echo hi".into()]),
            tty: false,
            stdin: false,
            auto_remove: false,
            stop_signal: "SIGTERM".into(),
            log_max_size: None,
            log_max_files: 0,
            runtime: "/usr/bin/false".into(),
        }
    }

    fn store() -> (tempfile::TempDir, ContainerStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = ContainerStore::new(Paths::new(dir.path().join("root"), dir.path().join("run")));
        (dir, s)
    }

    #[test]
    fn create_writes_meta_and_resolves_by_name_id_and_prefix() {
        let (_d, s) = store();
        let m = s.create(meta("/web")).unwrap();
        assert_eq!(m.name, "web");
        let on_disk: ContainerMeta =
            serde_json::from_slice(&fs::read(s.paths().meta(&m.id)).unwrap()).unwrap();
        assert_eq!(on_disk, m);
        assert!(!s.paths().meta(&m.id).with_extension("json.tmp").exists());
        assert_eq!(s.resolve("web").unwrap(), m);
        assert_eq!(s.resolve("/web").unwrap(), m);
        assert_eq!(s.resolve(&m.id).unwrap(), m);
        assert_eq!(s.resolve(&m.id[..5]).unwrap(), m);
        assert_eq!(s.resolve(&m.id[..5].to_uppercase()).unwrap(), m);
        assert!(matches!(
            s.resolve("nope"),
            Err(ContainerError::NotFound(_))
        ));
        assert_eq!(
            s.resolve("nope").unwrap_err().to_string(),
            "No such container: nope"
        );
        assert!(matches!(s.resolve(""), Err(ContainerError::NotFound(_))));
    }

    #[test]
    fn a_name_in_use_is_refused_as_docker_says() {
        let (_d, s) = store();
        let a = s.create(meta("x")).unwrap();
        let b = meta("x");
        let e = s.create(b.clone()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "Conflict. The container name \"/x\" is already in use by container \"{}\". \
                 You have to remove (or rename) that container to be able to reuse that name.",
                a.id
            )
        );
        // The loser leaves nothing behind.
        assert!(!s.paths().container_dir(&b.id).exists());
        assert_eq!(s.list().len(), 1);
        assert!(matches!(
            s.create(meta("bad/name")),
            Err(ContainerError::InvalidName { .. })
        ));
        let mut dup = meta("other");
        dup.id = a.id.clone();
        assert!(matches!(s.create(dup), Err(ContainerError::IdInUse { .. })));
        assert_eq!(s.resolve("x").unwrap().id, a.id);
    }

    #[test]
    fn two_processes_racing_for_a_name_one_wins() {
        let (_d, s) = store();
        let root = s.paths().clone();
        // Real processes, not threads: flock and symlink are what makes
        // it safe across processes.
        let mut winners = 0;
        for round in 0..5 {
            let name = format!("race{round}");
            let kids: Vec<libc::pid_t> = (0..2)
                .map(|_| match unsafe { libc::fork() } {
                    0 => {
                        let s = ContainerStore::new(root.clone());
                        let code = match s.create(meta(&name)) {
                            Ok(_) => 0,
                            Err(ContainerError::NameInUse { .. }) => 1,
                            Err(_) => 2,
                        };
                        unsafe { libc::_exit(code) }
                    }
                    pid => pid,
                })
                .collect();
            let codes: Vec<i32> = kids
                .into_iter()
                .map(|pid| {
                    let mut status = 0;
                    unsafe { libc::waitpid(pid, &mut status, 0) };
                    libc::WEXITSTATUS(status)
                })
                .collect();
            let mut sorted = codes.clone();
            sorted.sort();
            assert_eq!(sorted, [0, 1], "round {round}: {codes:?}");
            winners += 1;
            let dirs = s.list().into_iter().filter(|m| m.name == name).count();
            assert_eq!(dirs, 1);
        }
        assert_eq!(winners, 5);
    }

    #[test]
    fn ambiguous_prefix_is_reported() {
        let (_d, s) = store();
        let mut a = meta("a");
        a.id = format!("abc1{}", &a.id[4..]);
        let mut b = meta("b");
        b.id = format!("abc2{}", &b.id[4..]);
        s.create(a.clone()).unwrap();
        s.create(b).unwrap();
        assert_eq!(
            s.resolve("abc").unwrap_err().to_string(),
            "multiple IDs found with provided prefix: abc"
        );
        assert_eq!(s.resolve("abc1").unwrap().id, a.id);
    }

    #[test]
    fn random_names_when_none_given() {
        let (_d, s) = store();
        let m = s.create(meta("")).unwrap();
        assert!(crate::container::ids::is_valid_name(&m.name));
        assert!(m.name.contains('_'));
        assert_eq!(s.resolve(&m.name).unwrap().id, m.id);
    }

    #[test]
    fn list_is_newest_first_and_remove_frees_the_name() {
        let (_d, s) = store();
        let mut old = meta("old");
        old.created = "2024-01-01T00:00:00Z".into();
        let old = s.create(old).unwrap();
        let new = s.create(meta("new")).unwrap();
        let names: Vec<String> = s.list().into_iter().map(|m| m.name).collect();
        assert_eq!(names, ["new", "old"]);

        fs::create_dir_all(s.paths().run_dir(&old.id)).unwrap();
        fs::write(s.paths().supervisor_pid(&old.id), "1").unwrap();
        s.remove(&old.id).unwrap();
        assert!(!s.paths().container_dir(&old.id).exists());
        assert!(!s.paths().run_dir(&old.id).exists());
        assert!(matches!(s.resolve("old"), Err(ContainerError::NotFound(_))));
        assert!(matches!(
            s.remove(&old.id),
            Err(ContainerError::NotFound(_))
        ));
        // The name is free again.
        s.create(meta("old")).unwrap();
        assert_eq!(s.list().len(), 2);
        assert_eq!(s.resolve("new").unwrap().id, new.id);
    }

    #[test]
    fn a_stale_reservation_does_not_block_the_name() {
        let (_d, s) = store();
        fs::create_dir_all(s.names_dir()).unwrap();
        std::os::unix::fs::symlink("0".repeat(64), s.names_dir().join("ghost")).unwrap();
        let m = s.create(meta("ghost")).unwrap();
        assert_eq!(s.resolve("ghost").unwrap().id, m.id);
    }

    #[test]
    fn remove_refuses_while_mounted() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root for a tmpfs mount");
            return;
        }
        let (_d, s) = store();
        let m = s.create(meta("mounted")).unwrap();
        let rootfs = s.paths().bundle(&m.id).join("rootfs");
        fs::create_dir_all(&rootfs).unwrap();
        use nix::mount::{mount, umount2, MntFlags, MsFlags};
        struct Unmount<'a>(&'a Path);
        impl Drop for Unmount<'_> {
            fn drop(&mut self) {
                let _ = umount2(self.0, MntFlags::MNT_DETACH);
            }
        }
        mount(
            Some("tmpfs"),
            &rootfs,
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        let guard = Unmount(&rootfs);
        fs::write(rootfs.join("precious"), "x").unwrap();
        let r = s.remove(&m.id);
        assert!(
            matches!(r, Err(ContainerError::StillMounted { .. })),
            "{r:?}"
        );
        assert!(rootfs.join("precious").exists());
        drop(guard);
        s.remove(&m.id).unwrap();
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mount(r"/a\040b"), "/a b");
        assert_eq!(unescape_mount(r"/a\134b\011"), "/a\\b\t");
        assert_eq!(unescape_mount(r"/plain\"), "/plain\\");
    }
}
