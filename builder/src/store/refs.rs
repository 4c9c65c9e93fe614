//! Image names and `index.json`. Each tag is one index entry (a manifest descriptor)
//! annotated with `org.opencontainers.image.ref.name` = `name:tag`, which is what skopeo's
//! and umoci's `oci:<dir>:<ref>` look up. An image that loses its last tag stays in the
//! index as one entry without a name (docker's `<none>:<none>`) until prune removes it.

use std::collections::HashMap;
use std::fs;

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, ImageManifestBuilder, MediaType};

use super::{Result, Store, StoreError};
use crate::digest::Digest;
use crate::image::ImageConfig;

pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// Shortest image id prefix [`Store::resolve`] accepts, as in docker.
const MIN_ID_PREFIX: usize = 4;

#[derive(Debug, Clone)]
pub struct Image {
    pub manifest_digest: Digest,
    pub manifest: ImageManifest,
    /// The image id.
    pub config_digest: Digest,
    pub config: ImageConfig,
    /// Normalized `name:tag`s pointing at this manifest; empty for a dangling image.
    pub names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    pub names: Vec<String>,
    pub id: Digest,
    pub manifest_digest: Digest,
    pub created: Option<String>,
    /// Bytes of the manifest, the config and the (compressed) layer blobs.
    pub size: u64,
}

/// `busybox` -> `busybox:latest`, `local/busybox` -> `local/busybox:latest`; the first path
/// component may be a registry host (`localhost:5000/x`). There is no default registry:
/// names are kept as given, only the tag is added, except that Docker Hub's implicit
/// prefixes are dropped as docker shows names (`docker.io/library/busybox` and
/// `docker.io/busybox` are `busybox`), so images from `docker save` and skopeo's
/// `docker-archive:` keep the names docker users know. `name@digest` is refused: a tag
/// cannot pin a digest here (resolve the digest itself instead).
pub fn normalize_name(s: &str) -> Result<String> {
    let bad = |reason: &str| StoreError::InvalidName {
        name: s.to_string(),
        reason: reason.to_string(),
    };
    if s.is_empty() {
        return Err(bad("empty"));
    }
    if s.contains('@') {
        return Err(bad(
            "digest references (name@sha256:...) are not image names; use the digest alone",
        ));
    }
    let s = s
        .strip_prefix("docker.io/library/")
        .or_else(|| s.strip_prefix("docker.io/"))
        .or_else(|| s.strip_prefix("index.docker.io/library/"))
        .or_else(|| s.strip_prefix("index.docker.io/"))
        .unwrap_or(s);
    let last_slash = s.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match s[last_slash..].rfind(':') {
        Some(i) => (&s[..last_slash + i], &s[last_slash + i + 1..]),
        None => (s, "latest"),
    };
    if !valid_tag(tag) {
        return Err(bad(
            "the tag must be 1-128 of A-Z a-z 0-9 _ . - and not start with . or -",
        ));
    }
    if name.len() > 255 {
        return Err(bad("the name is longer than 255 characters"));
    }
    let components: Vec<&str> = name.split('/').collect();
    let has_domain = components.len() > 1
        && (components[0].contains('.')
            || components[0].contains(':')
            || components[0] == "localhost");
    if has_domain && !valid_domain(components[0]) {
        return Err(bad("the registry host is not a valid host[:port]"));
    }
    for c in &components[usize::from(has_domain)..] {
        if c.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad("repository names must be lowercase"));
        }
        if !valid_path_component(c) {
            return Err(bad(
                "each path component must be a-z 0-9 separated by '.', '_', '__' or '-'",
            ));
        }
    }
    Ok(format!("{name}:{tag}"))
}

fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
    };
    host.split('.').all(label_ok)
        && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
}

pub(crate) fn entry_name(d: &Descriptor) -> Option<&str> {
    d.annotations()
        .as_ref()
        .and_then(|a| a.get(REF_NAME_ANNOTATION))
        .map(String::as_str)
}

pub(crate) fn to_oci_digest(d: &Digest) -> Result<oci_spec::image::Digest> {
    d.as_str().parse().map_err(|e| StoreError::InvalidImage {
        reason: format!("digest {d} not accepted by oci-spec: {e}"),
    })
}

/// Our digest type from a descriptor in `where_` (a file or blob, for the message).
pub(crate) fn descriptor_digest(
    d: &Descriptor,
    where_: &std::path::Path,
    field: &str,
) -> Result<Digest> {
    Digest::parse(d.digest().as_ref()).map_err(|source| StoreError::BadDigest {
        path: where_.to_path_buf(),
        field: field.to_string(),
        source,
    })
}

fn with_name(desc: &Descriptor, name: Option<&str>) -> Descriptor {
    let mut d = desc.clone();
    let mut ann: HashMap<String, String> = d.annotations().clone().unwrap_or_default();
    match name {
        Some(n) => {
            ann.insert(REF_NAME_ANNOTATION.to_string(), n.to_string());
        }
        None => {
            ann.remove(REF_NAME_ANNOTATION);
        }
    }
    d.set_annotations(if ann.is_empty() { None } else { Some(ann) });
    d
}

fn same_digest(a: &Descriptor, b: &Descriptor) -> bool {
    a.digest() == b.digest()
}

/// Points `name` at `desc` in the index entries. The image it pointed at before, if now
/// nameless, stays as a dangling entry; a dangling entry of `desc` is replaced by the tag.
pub(crate) fn set_tag(entries: &mut Vec<Descriptor>, name: &str, desc: &Descriptor) {
    let old_pos = entries.iter().position(|e| entry_name(e) == Some(name));
    let old = old_pos.map(|i| entries.remove(i));
    entries.retain(|e| !(same_digest(e, desc) && entry_name(e).is_none()));
    let new_entry = with_name(desc, Some(name));
    match old_pos {
        Some(i) if i <= entries.len() => entries.insert(i, new_entry),
        _ => entries.push(new_entry),
    }
    if let Some(old) = old {
        add_dangling(entries, &old);
    }
}

/// Removes `name`; returns its entry. An image left without names stays, dangling.
pub(crate) fn remove_tag(entries: &mut Vec<Descriptor>, name: &str) -> Option<Descriptor> {
    let pos = entries.iter().position(|e| entry_name(e) == Some(name))?;
    let removed = entries.remove(pos);
    add_dangling(entries, &removed);
    Some(removed)
}

/// Lists `desc` without a name, unless some entry already lists its manifest.
pub(crate) fn add_dangling(entries: &mut Vec<Descriptor>, desc: &Descriptor) {
    if !entries.iter().any(|e| same_digest(e, desc)) {
        entries.push(with_name(desc, None));
    }
}

impl Store {
    /// Points `name` (normalized) at the manifest `manifest` describes, replacing what the
    /// name pointed at before. The manifest blob must be in the store.
    pub fn tag(&self, name: &str, manifest: Descriptor) -> Result<()> {
        let name = normalize_name(name)?;
        let desc = self.checked_manifest_descriptor(&manifest)?;
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        edit_entries(&mut index, |e| set_tag(e, &name, &desc));
        self.write_index(&index)?;
        tracing::info!(%name, manifest = %desc.digest(), "tagged");
        Ok(())
    }

    /// Drops the index entries of the image with this manifest (all its names, or its
    /// dangling entry), as `docker rmi` does once an image has no names left; its blobs
    /// and layers go at the next [`Store::prune`]. Returns the names it had.
    pub fn remove_image(&self, manifest: &Digest) -> Result<Vec<String>> {
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        let names = edit_entries(&mut index, |entries| {
            let names: Vec<String> = entries
                .iter()
                .filter(|e| e.digest().as_ref() == manifest.as_str())
                .filter_map(|e| entry_name(e).map(str::to_string))
                .collect();
            let before = entries.len();
            entries.retain(|e| e.digest().as_ref() != manifest.as_str());
            (before != entries.len()).then_some(names)
        })
        .ok_or_else(|| StoreError::NotFound(manifest.to_string()))?;
        self.write_index(&index)?;
        Ok(names)
    }

    /// Removes a name; the image's blobs stay until [`Store::prune`].
    pub fn untag(&self, name: &str) -> Result<Descriptor> {
        let name = normalize_name(name)?;
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        let removed = edit_entries(&mut index, |e| remove_tag(e, &name))
            .ok_or_else(|| StoreError::NotFound(name.clone()))?;
        self.write_index(&index)?;
        Ok(removed)
    }

    /// Finds an image by `name[:tag]`, by manifest digest, by image id (config digest, with or
    /// without `sha256:`) or by a unique prefix of the id of at least 4 hex digits. A name
    /// wins over an id prefix that happens to be spelt the same, as in docker.
    pub fn resolve(&self, name_or_id: &str) -> Result<Image> {
        let index = self.read_index()?;
        let entries = index.manifests();
        let names_of = |d: &Descriptor| -> Vec<String> {
            entries
                .iter()
                .filter(|e| same_digest(e, d))
                .filter_map(|e| entry_name(e).map(str::to_string))
                .collect()
        };
        if let Ok(d) = Digest::parse(name_or_id) {
            if let Some(e) = entries.iter().find(|e| e.digest().as_ref() == d.as_str()) {
                return self.load_image(e, names_of(e));
            }
        }
        let as_name = normalize_name(name_or_id);
        if let Ok(name) = &as_name {
            if let Some(e) = entries
                .iter()
                .find(|e| entry_name(e) == Some(name.as_str()))
            {
                return self.load_image(e, names_of(e));
            }
        }
        let hex = name_or_id.strip_prefix("sha256:").unwrap_or(name_or_id);
        let is_hex = hex.len() >= MIN_ID_PREFIX
            && hex.len() <= 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !is_hex {
            return match as_name {
                Err(e) if !name_or_id.starts_with("sha256:") => Err(e),
                _ => Err(StoreError::NotFound(name_or_id.to_string())),
            };
        }
        let mut matches: Vec<Image> = Vec::new();
        for e in unique_manifests(entries) {
            let image = match self.load_image(e, names_of(e)) {
                Ok(image) => image,
                Err(err) => {
                    tracing::warn!(manifest = %e.digest(), error = %err, "skipping unreadable image");
                    continue;
                }
            };
            if image.config_digest.hex().starts_with(hex) {
                matches.push(image);
            }
        }
        match matches.len() {
            0 => Err(StoreError::NotFound(name_or_id.to_string())),
            1 => Ok(matches.remove(0)),
            _ => Err(StoreError::Ambiguous {
                prefix: name_or_id.to_string(),
                candidates: matches
                    .iter()
                    .map(|i| i.config_digest.to_string())
                    .collect(),
            }),
        }
    }

    /// Every image in the index (tagged or dangling), once per manifest, in index order.
    /// An image whose blobs cannot be read is left out with a warning (`check` names it).
    pub fn images(&self) -> Result<Vec<ImageSummary>> {
        let index = self.read_index()?;
        let entries = index.manifests();
        let mut out = Vec::new();
        for e in unique_manifests(entries) {
            let names: Vec<String> = entries
                .iter()
                .filter(|x| same_digest(x, e))
                .filter_map(|x| entry_name(x).map(str::to_string))
                .collect();
            match self.load_image(e, names) {
                Ok(image) => {
                    let size = e.size()
                        + image.manifest.config().size()
                        + image
                            .manifest
                            .layers()
                            .iter()
                            .map(|l| l.size())
                            .sum::<u64>();
                    out.push(ImageSummary {
                        names: image.names,
                        id: image.config_digest,
                        manifest_digest: image.manifest_digest,
                        created: image.config.created.clone(),
                        size,
                    });
                }
                Err(err) => {
                    tracing::warn!(manifest = %e.digest(), error = %err, "skipping unreadable image")
                }
            }
        }
        Ok(out)
    }

    /// Stores `config` and a manifest of `layers` (blobs already in the store, in stack
    /// order, one per `config.rootfs.diff_ids`), then tags it as `name` or, without a name,
    /// lists it as a dangling image.
    pub fn commit_image(
        &self,
        config: &ImageConfig,
        layers: &[Descriptor],
        name: Option<&str>,
    ) -> Result<Image> {
        let name = name.map(normalize_name).transpose()?;
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != layers.len() {
            return Err(StoreError::InvalidImage {
                reason: format!(
                    "{} layers but {} rootfs.diff_ids",
                    layers.len(),
                    diff_ids.len()
                ),
            });
        }
        for (i, layer) in layers.iter().enumerate() {
            let d = descriptor_digest(layer, &self.blobs_dir(), &format!("layers[{i}].digest"))?;
            self.check_blob_size(&d, layer.size(), &format!("layer {i}"))?;
        }
        let (config_digest, config_size) = self.put_json(config)?;
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(Descriptor::new(
                MediaType::ImageConfig,
                config_size,
                to_oci_digest(&config_digest)?,
            ))
            .layers(layers.to_vec())
            .build()
            .map_err(|e| StoreError::InvalidImage {
                reason: format!("building the manifest: {e}"),
            })?;
        let (manifest_digest, manifest_size) = self.put_json(&manifest)?;
        let desc = Descriptor::new(
            MediaType::ImageManifest,
            manifest_size,
            to_oci_digest(&manifest_digest)?,
        );
        let names = {
            let _lock = self.lock()?;
            let mut index = self.read_index()?;
            match &name {
                Some(n) => edit_entries(&mut index, |e| set_tag(e, n, &desc)),
                None => edit_entries(&mut index, |e| add_dangling(e, &desc)),
            }
            self.write_index(&index)?;
            index
                .manifests()
                .iter()
                .filter(|e| same_digest(e, &desc))
                .filter_map(|e| entry_name(e).map(str::to_string))
                .collect()
        };
        tracing::info!(manifest = %manifest_digest, id = %config_digest, ?name, "committed image");
        Ok(Image {
            manifest_digest,
            manifest,
            config_digest,
            config: config.clone(),
            names,
        })
    }

    fn load_image(&self, entry: &Descriptor, names: Vec<String>) -> Result<Image> {
        let index_path = self.index_path();
        let manifest_digest = descriptor_digest(entry, &index_path, "manifests[].digest")?;
        let manifest = self.read_manifest(&manifest_digest)?;
        let config_digest = descriptor_digest(
            manifest.config(),
            &self.blob_path(&manifest_digest),
            "config.digest",
        )?;
        let config = self.read_config(&config_digest)?;
        Ok(Image {
            manifest_digest,
            manifest,
            config_digest,
            config,
            names,
        })
    }

    /// The index entry for a manifest that is in the store, parses, and has the given size.
    fn checked_manifest_descriptor(&self, given: &Descriptor) -> Result<Descriptor> {
        let d = descriptor_digest(given, &self.blobs_dir(), "manifest descriptor digest")?;
        self.read_manifest(&d)?;
        self.check_blob_size(&d, given.size(), "manifest")?;
        let mut desc = given.clone();
        desc.set_media_type(MediaType::ImageManifest);
        Ok(desc)
    }

    fn check_blob_size(&self, d: &Digest, size: u64, what: &str) -> Result<()> {
        let path = self.blob_path(d);
        let actual = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::BlobMissing {
                    digest: d.clone(),
                    needed_by: what.to_string(),
                })
            }
            Err(e) => return Err(StoreError::io("stat", &path)(e)),
        };
        if actual != size {
            return Err(StoreError::InvalidImage {
                reason: format!("{what} {d}: descriptor says {size} bytes, the blob has {actual}"),
            });
        }
        Ok(())
    }
}

/// oci-spec gives `ImageIndex` no `manifests_mut`.
pub(crate) fn edit_entries<R>(
    index: &mut ImageIndex,
    f: impl FnOnce(&mut Vec<Descriptor>) -> R,
) -> R {
    let mut entries = index.manifests().clone();
    let r = f(&mut entries);
    index.set_manifests(entries);
    r
}

/// One entry per manifest digest, first occurrence first.
fn unique_manifests(entries: &[Descriptor]) -> Vec<&Descriptor> {
    let mut seen = std::collections::HashSet::new();
    entries
        .iter()
        .filter(|e| seen.insert(e.digest().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_names() {
        for (input, want) in [
            ("busybox", "busybox:latest"),
            ("docker.io/library/busybox", "busybox:latest"),
            ("docker.io/skopeo/bbapp:v2", "skopeo/bbapp:v2"),
            ("local/busybox", "local/busybox:latest"),
            ("local/python:3", "local/python:3"),
            ("localhost:5000/a/b", "localhost:5000/a/b:latest"),
            (
                "registry.example.com/x_y.z-w:v1.2_rc-3",
                "registry.example.com/x_y.z-w:v1.2_rc-3",
            ),
            ("a__b---c:T", "a__b---c:T"),
        ] {
            assert_eq!(normalize_name(input).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn refuses_bad_names_and_names_them() {
        for bad in [
            "",
            "Busybox",
            "local/BusyBox:1",
            "a:",
            "a:-x",
            "a/:b",
            "-a",
            "a..b",
            "a___b",
            "busybox@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            &"a".repeat(256),
            &format!("a:{}", "t".repeat(129)),
        ] {
            match normalize_name(bad) {
                Err(StoreError::InvalidName { name, .. }) => assert_eq!(name, bad),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
        let msg = normalize_name("Busybox").unwrap_err().to_string();
        assert!(
            msg.contains("\"Busybox\"") && msg.contains("lowercase"),
            "{msg}"
        );
    }

    fn desc(seed: &str) -> Descriptor {
        let d = Digest::of_bytes(seed.as_bytes());
        Descriptor::new(MediaType::ImageManifest, 1, to_oci_digest(&d).unwrap())
    }

    fn listing(entries: &[Descriptor]) -> Vec<(String, Option<String>)> {
        entries
            .iter()
            .map(|e| (e.digest().to_string(), entry_name(e).map(str::to_string)))
            .collect()
    }

    #[test]
    fn moving_a_tag_leaves_the_old_image_dangling_once() {
        let (a, b) = (desc("a"), desc("b"));
        let mut entries = Vec::new();
        set_tag(&mut entries, "x:1", &a);
        set_tag(&mut entries, "x:1", &b);
        set_tag(&mut entries, "y:1", &b);
        assert_eq!(
            listing(&entries),
            [
                (b.digest().to_string(), Some("x:1".into())),
                (a.digest().to_string(), None),
                (b.digest().to_string(), Some("y:1".into())),
            ]
        );
        // Tagging the dangling image again replaces its nameless entry.
        set_tag(&mut entries, "z:1", &a);
        assert_eq!(
            entries.iter().filter(|e| entry_name(e).is_none()).count(),
            0
        );
        // Removing one of two names leaves no dangling entry; removing the last does.
        remove_tag(&mut entries, "x:1").unwrap();
        assert_eq!(
            entries.iter().filter(|e| entry_name(e).is_none()).count(),
            0
        );
        remove_tag(&mut entries, "y:1").unwrap();
        assert_eq!(
            listing(&entries),
            [
                (a.digest().to_string(), Some("z:1".into())),
                (b.digest().to_string(), None),
            ]
        );
        assert!(remove_tag(&mut entries, "y:1").is_none());
    }
}
