//! The image's `User` field as uid, gid and supplementary groups, looked up
//! in the image's own `/etc/passwd` and `/etc/group` the way Docker does.

use std::path::Path;

use super::rootfs_file::read_rootfs_file;
use super::BundleError;

/// The ids the container process runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Resolves `user` (`""`, `name`, `uid`, or either of those followed by
/// `:group` or `:gid`) against the passwd and group files of `rootfs`.
///
/// - Numeric ids that have no entry are used as they are (gid 0 when only a
///   uid is given), so images without a passwd file can still name a uid.
/// - Names that have no entry are errors.
/// - Supplementary groups are those of `/etc/group` listing the user's name,
///   also when the user was given as a uid (Docker does the same); an
///   explicit group replaces them, as in Docker and as conversion.md asks.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<ResolvedUser, BundleError> {
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    if group_part == Some("") {
        return Err(BundleError::InvalidUser {
            user: user.to_string(),
            reason: "empty group after ':'",
        });
    }
    // An unset user is root; looking uid 0 up still gives root's groups.
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let user_num = parse_id(user, user_part)?;

    let passwd = read_rootfs_file(rootfs, "/etc/passwd")?;
    let entry = passwd.as_deref().and_then(|data| {
        parse_passwd(data)
            .into_iter()
            .find(|e| e.name == user_part || user_num.is_some_and(|n| n == e.uid))
    });
    let (uid, mut gid, name) = match (entry, user_num) {
        (Some(e), _) => (e.uid, e.gid, Some(e.name)),
        (None, Some(n)) => (n, 0, None),
        (None, None) => {
            return Err(BundleError::UnknownUser {
                user: user_part.to_string(),
                rootfs: rootfs.to_path_buf(),
                reason: if passwd.is_some() {
                    "no matching entries in passwd file"
                } else {
                    "no passwd file"
                },
            })
        }
    };

    let group_data = read_rootfs_file(rootfs, "/etc/group")?;
    let groups: Vec<GroupEntry> = group_data.as_deref().map(parse_group).unwrap_or_default();

    let mut additional_gids = Vec::new();
    if let Some(group) = group_part {
        let group_num = parse_id(user, group)?;
        match groups
            .iter()
            .find(|g| g.name == group || group_num.is_some_and(|n| n == g.gid))
        {
            Some(g) => gid = g.gid,
            None => match group_num {
                Some(n) => gid = n,
                None => {
                    return Err(BundleError::UnknownGroup {
                        group: group.to_string(),
                        rootfs: rootfs.to_path_buf(),
                        reason: if group_data.is_some() {
                            "no matching entries in group file"
                        } else {
                            "no group file"
                        },
                    })
                }
            },
        }
    } else if let Some(name) = name {
        for g in groups.iter().filter(|g| g.members.contains(&name)) {
            if !additional_gids.contains(&g.gid) {
                additional_gids.push(g.gid);
            }
        }
    }
    tracing::debug!(user, uid, gid, ?additional_gids, "resolved image user");
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
    })
}

/// `Some(id)` for a decimal id, `None` for a name. Ids above i32::MAX are
/// refused as runc does: the kernel treats (u32)-1 as "unchanged" and tools
/// disagree on the rest of the upper half.
fn parse_id(user: &str, s: &str) -> Result<Option<u32>, BundleError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match s.parse::<u32>() {
        Ok(n) if n <= i32::MAX as u32 => Ok(Some(n)),
        _ => Err(BundleError::InvalidUser {
            user: user.to_string(),
            reason: "uids and gids must be in range 0-2147483647",
        }),
    }
}

/// Lines the shadow-utils format cannot have (comments, NIS `+`/`-` entries,
/// non-numeric ids) are skipped rather than failing the whole lookup, which
/// is also how libc's files backend treats them.
fn fields(line: &str) -> Option<Vec<&str>> {
    let line = line.trim_end_matches('\r');
    if line.is_empty() || line.starts_with('#') || line.starts_with('+') || line.starts_with('-') {
        return None;
    }
    Some(line.split(':').collect())
}

fn parse_passwd(data: &[u8]) -> Vec<PasswdEntry> {
    String::from_utf8_lossy(data)
        .lines()
        .filter_map(|line| {
            let f = fields(line)?;
            if f.len() < 4 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
            })
        })
        .collect()
}

fn parse_group(data: &[u8]) -> Vec<GroupEntry> {
    String::from_utf8_lossy(data)
        .lines()
        .filter_map(|line| {
            let f = fields(line)?;
            if f.len() < 3 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const PASSWD: &str = "\
# comment line
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
app:x:1000:1000::/home/app:/bin/sh
broken:x:notanumber:1
";
    const GROUP: &str = "\
root:x:0:
wheel:x:10:root,app
audio:x:29:app
app:x:1000:
staff:x:50:
";

    fn rootfs(passwd: Option<&str>, group: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("etc")).unwrap();
        if let Some(p) = passwd {
            fs::write(dir.path().join("etc/passwd"), p).unwrap();
        }
        if let Some(g) = group {
            fs::write(dir.path().join("etc/group"), g).unwrap();
        }
        dir
    }

    fn ids(uid: u32, gid: u32, extra: &[u32]) -> ResolvedUser {
        ResolvedUser {
            uid,
            gid,
            additional_gids: extra.to_vec(),
        }
    }

    #[test]
    fn empty_user_is_root_with_roots_groups() {
        let r = rootfs(Some(PASSWD), Some(GROUP));
        assert_eq!(resolve_user(r.path(), "").unwrap(), ids(0, 0, &[10]));
    }

    #[test]
    fn name_gives_passwd_ids_and_supplementary_groups() {
        let r = rootfs(Some(PASSWD), Some(GROUP));
        assert_eq!(
            resolve_user(r.path(), "app").unwrap(),
            ids(1000, 1000, &[10, 29])
        );
    }

    #[test]
    fn uid_in_passwd_gets_the_same_groups_as_its_name() {
        let r = rootfs(Some(PASSWD), Some(GROUP));
        assert_eq!(
            resolve_user(r.path(), "1000").unwrap(),
            ids(1000, 1000, &[10, 29])
        );
    }

    #[test]
    fn unknown_uid_is_used_verbatim_with_gid_zero() {
        let r = rootfs(Some(PASSWD), Some(GROUP));
        assert_eq!(resolve_user(r.path(), "4242").unwrap(), ids(4242, 0, &[]));
        assert_eq!(
            resolve_user(r.path(), "4242:77").unwrap(),
            ids(4242, 77, &[])
        );
    }

    #[test]
    fn explicit_group_replaces_primary_and_supplementary_groups() {
        let r = rootfs(Some(PASSWD), Some(GROUP));
        assert_eq!(
            resolve_user(r.path(), "app:staff").unwrap(),
            ids(1000, 50, &[])
        );
        assert_eq!(
            resolve_user(r.path(), "app:123").unwrap(),
            ids(1000, 123, &[])
        );
        assert_eq!(
            resolve_user(r.path(), "1000:audio").unwrap(),
            ids(1000, 29, &[])
        );
        assert_eq!(resolve_user(r.path(), "0:0").unwrap(), ids(0, 0, &[]));
    }

    #[test]
    fn unknown_user_name_is_an_error_naming_it() {
        let r = rootfs(Some(PASSWD), Some(GROUP));
        let err = resolve_user(r.path(), "ghost").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unable to find user ghost: no matching entries in passwd file"),
            "{err}"
        );
    }

    #[test]
    fn unknown_group_name_is_an_error_naming_it() {
        let r = rootfs(Some(PASSWD), Some(GROUP));
        let err = resolve_user(r.path(), "app:ghosts").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unable to find group ghosts: no matching entries in group file"),
            "{err}"
        );
    }

    #[test]
    fn missing_passwd_file_is_fine_for_ids_and_an_error_for_names() {
        let r = rootfs(None, None);
        assert_eq!(
            resolve_user(r.path(), "1000:1000").unwrap(),
            ids(1000, 1000, &[])
        );
        assert_eq!(resolve_user(r.path(), "").unwrap(), ids(0, 0, &[]));
        let err = resolve_user(r.path(), "app").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unable to find user app: no passwd file"),
            "{err}"
        );
        let err = resolve_user(r.path(), "0:wheel").unwrap_err();
        assert!(matches!(err, BundleError::UnknownGroup { .. }), "{err}");
    }

    #[test]
    fn out_of_range_and_malformed_users_are_errors() {
        let r = rootfs(Some(PASSWD), Some(GROUP));
        assert!(matches!(
            resolve_user(r.path(), "4294967295"),
            Err(BundleError::InvalidUser { .. })
        ));
        assert!(matches!(
            resolve_user(r.path(), "app:"),
            Err(BundleError::InvalidUser { .. })
        ));
    }

    #[test]
    fn passwd_through_absolute_symlink_is_the_images() {
        let r = rootfs(None, None);
        fs::create_dir_all(r.path().join("usr/lib")).unwrap();
        fs::write(
            r.path().join("usr/lib/passwd"),
            "svc:x:321:654::/:/bin/sh\n",
        )
        .unwrap();
        std::os::unix::fs::symlink("/usr/lib/passwd", r.path().join("etc/passwd")).unwrap();
        assert_eq!(resolve_user(r.path(), "svc").unwrap(), ids(321, 654, &[]));
    }
}
