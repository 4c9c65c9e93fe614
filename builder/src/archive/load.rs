//! `load`: a docker-archive, an OCI archive or an OCI layout directory into the store.
//!
//! Everything is checked before anything is named: members are read and verified, blobs
//! are stored, every layer is extracted and its diff_id compared, and only then are the
//! images tagged. A load that fails part-way leaves, at most, blobs and layer dirs that
//! no image names (gc removes them), never a tag on an incomplete image.

use std::collections::HashMap;
use std::io::{self, BufReader, Read};
use std::path::Path;

use oci_spec::image::{
    Descriptor, ImageIndex, ImageManifest, ImageManifestBuilder, MediaType, Platform,
};
use serde::Deserialize;
use serde_json::Value;

use super::input::{clean_name, Input};
use super::{oci_digest, ArchiveError, LoadedImage, IMAGE_NAME_ANNOTATION};
use crate::digest::{Digest, DigestReader};
use crate::image::{host_architecture, ImageConfig};
use crate::layer::{compress_layer, extract, open_layer, ExtractOptions, LayerError};
use crate::store::{normalize_name, Store, StoreError, REF_NAME_ANNOTATION};

/// Largest JSON document (manifest, index, config) read whole into memory.
const JSON_LIMIT: u64 = 16 << 20;
const DOCKER_MANIFEST: &str = "manifest.json";
const OCI_LAYOUT: &str = "oci-layout";
const OCI_INDEX: &str = "index.json";
const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// Loads every image of `input` (see the module docs of [`crate::archive`] for how they
/// are named); `tag` is one more name for the archive's only image.
pub fn load(
    store: &Store,
    input: &Path,
    tag: Option<&str>,
) -> Result<Vec<LoadedImage>, ArchiveError> {
    let tag = tag.map(normalize_name).transpose()?;
    let src = Input::open(store, input)?;
    let candidates = if src.has(DOCKER_MANIFEST) {
        plan_docker(&src)?
    } else if src.has(OCI_LAYOUT) {
        plan_oci(&src)?
    } else {
        return Err(ArchiveError::NotAnArchive {
            path: input.to_path_buf(),
            reason: format!(
                "it has neither {DOCKER_MANIFEST} (docker-archive) nor {OCI_LAYOUT} (OCI layout)"
            ),
        });
    };
    let names = final_names(&candidates, tag.as_deref())?;
    let mut stored = Vec::new();
    for c in &candidates {
        stored.push(materialize(store, &src, c)?);
    }
    let mut loaded = Vec::new();
    for ((desc, id), names) in stored.into_iter().zip(names) {
        if names.is_empty() {
            add_untagged(store, &desc)?;
        }
        for n in &names {
            store.tag(n, desc.clone())?;
        }
        tracing::info!(%id, ?names, "loaded image");
        loaded.push(LoadedImage { names, id });
    }
    Ok(loaded)
}

/// One image found in the archive, with everything small already read and checked.
struct Candidate {
    /// Where it came from, for messages.
    label: String,
    names: Vec<String>,
    /// `ref.name`s that are only a tag.
    bare_refs: Vec<String>,
    config_bytes: Vec<u8>,
    config: ImageConfig,
    kind: Kind,
}

enum Kind {
    /// Layer member names, in `rootfs.diff_ids` order.
    Docker { layers: Vec<String> },
    Oci {
        manifest: Box<ImageManifest>,
        manifest_bytes: Vec<u8>,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

fn plan_docker(src: &Input) -> Result<Vec<Candidate>, ArchiveError> {
    let data = src.read_small(DOCKER_MANIFEST, "load", JSON_LIMIT)?;
    let entries: Vec<DockerEntry> =
        serde_json::from_slice(&data).map_err(|source| ArchiveError::Json {
            member: DOCKER_MANIFEST.to_string(),
            source,
        })?;
    let mut out = Vec::new();
    for (i, e) in entries.into_iter().enumerate() {
        let label = format!("{DOCKER_MANIFEST}[{i}]");
        for member in std::iter::once(&e.config).chain(&e.layers) {
            clean_name(member).map_err(|reason| ArchiveError::UnsafeMember {
                member: member.clone(),
                reason: format!("named by {label}: {reason}"),
            })?;
            if !src.has(member) {
                return Err(ArchiveError::MissingMember {
                    member: member.clone(),
                    referrer: label,
                });
            }
        }
        let config_bytes = src.read_small(&e.config, &label, JSON_LIMIT)?;
        let config = parse_config(&e.config, &config_bytes, e.layers.len())?;
        let names = e
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| normalize_name(t))
            .collect::<Result<Vec<_>, _>>()?;
        out.push(Candidate {
            label,
            names,
            bare_refs: Vec::new(),
            config_bytes,
            config,
            kind: Kind::Docker { layers: e.layers },
        });
    }
    Ok(out)
}

fn parse_config(member: &str, bytes: &[u8], layers: usize) -> Result<ImageConfig, ArchiveError> {
    let config: ImageConfig =
        serde_json::from_slice(bytes).map_err(|source| ArchiveError::Json {
            member: member.to_string(),
            source,
        })?;
    if config.rootfs.diff_ids.len() != layers {
        return Err(ArchiveError::BadMember {
            member: member.to_string(),
            reason: format!(
                "{} rootfs.diff_ids for {layers} layers",
                config.rootfs.diff_ids.len()
            ),
        });
    }
    Ok(config)
}

fn plan_oci(src: &Input) -> Result<Vec<Candidate>, ArchiveError> {
    let layout = src.read_small(OCI_LAYOUT, "load", JSON_LIMIT)?;
    let layout: Value = serde_json::from_slice(&layout).map_err(|source| ArchiveError::Json {
        member: OCI_LAYOUT.to_string(),
        source,
    })?;
    if !layout
        .get("imageLayoutVersion")
        .is_some_and(Value::is_string)
    {
        return Err(ArchiveError::BadMember {
            member: OCI_LAYOUT.to_string(),
            reason: "no imageLayoutVersion".to_string(),
        });
    }
    let data = src.read_small(OCI_INDEX, "load", JSON_LIMIT)?;
    let index: ImageIndex = serde_json::from_slice(&data).map_err(|source| ArchiveError::Json {
        member: OCI_INDEX.to_string(),
        source,
    })?;
    let mut out: Vec<Candidate> = Vec::new();
    let mut by_manifest: HashMap<Digest, usize> = HashMap::new();
    for (i, entry) in index.manifests().iter().enumerate() {
        let referrer = format!("{OCI_INDEX} manifests[{i}]");
        let (digest, manifest_bytes, manifest) = read_manifest(src, entry, &referrer, true)?;
        let pos = match by_manifest.get(&digest) {
            Some(&pos) => pos,
            None => {
                let config_type = manifest.config().media_type();
                if !matches!(config_type, MediaType::ImageConfig)
                    && config_type.to_string() != DOCKER_CONFIG
                {
                    return Err(ArchiveError::BadMember {
                        member: format!("manifest {digest}"),
                        reason: format!(
                            "config media type {config_type} is not an image config \
                             (an artifact, not an image?)"
                        ),
                    });
                }
                let config_bytes =
                    read_blob(src, manifest.config(), &format!("manifest {digest}"))?;
                let config = parse_config(
                    &blob_member(manifest.config(), &referrer)?,
                    &config_bytes,
                    manifest.layers().len(),
                )?;
                out.push(Candidate {
                    label: format!("manifest {digest}"),
                    names: Vec::new(),
                    bare_refs: Vec::new(),
                    config_bytes,
                    config,
                    kind: Kind::Oci {
                        manifest: Box::new(manifest),
                        manifest_bytes,
                    },
                });
                by_manifest.insert(digest, out.len() - 1);
                out.len() - 1
            }
        };
        let ann = entry.annotations().clone().unwrap_or_default();
        let c = &mut out[pos];
        if let Some(full) = ann.get(IMAGE_NAME_ANNOTATION) {
            push_unique(&mut c.names, normalize_name(full)?);
        } else if let Some(r) = ann.get(REF_NAME_ANNOTATION) {
            if r.contains('/') || r.contains(':') {
                push_unique(&mut c.names, normalize_name(r)?);
            } else {
                push_unique(&mut c.bare_refs, r.clone());
            }
        }
    }
    Ok(out)
}

fn push_unique(v: &mut Vec<String>, s: String) {
    if !v.contains(&s) {
        v.push(s);
    }
}

/// The name of a blob in an OCI layout; only sha256 digests are accepted, so the name is
/// always `blobs/sha256/<64 hex>`.
fn blob_member(d: &Descriptor, referrer: &str) -> Result<String, ArchiveError> {
    Ok(format!("blobs/sha256/{}", desc_digest(d, referrer)?.hex()))
}

fn desc_digest(d: &Descriptor, referrer: &str) -> Result<Digest, ArchiveError> {
    Digest::parse(d.digest().as_ref()).map_err(|e| ArchiveError::BadMember {
        member: referrer.to_string(),
        reason: e.to_string(),
    })
}

/// A small blob, checked against its descriptor's digest and size.
fn read_blob(src: &Input, d: &Descriptor, referrer: &str) -> Result<Vec<u8>, ArchiveError> {
    let member = blob_member(d, referrer)?;
    let expected = desc_digest(d, referrer)?;
    let data = src.read_small(&member, referrer, JSON_LIMIT)?;
    let actual = Digest::of_bytes(&data);
    if actual != expected {
        return Err(ArchiveError::DigestMismatch {
            what: member,
            expected,
            actual,
        });
    }
    if data.len() as u64 != d.size() {
        return Err(ArchiveError::BadMember {
            member,
            reason: format!(
                "{} bytes, its descriptor in {referrer} says {}",
                data.len(),
                d.size()
            ),
        });
    }
    Ok(data)
}

/// The image manifest `d` names; an index in its place (multi-platform images, docker
/// 25+ layouts) is followed once to the manifest for this host's platform.
fn read_manifest(
    src: &Input,
    d: &Descriptor,
    referrer: &str,
    may_be_index: bool,
) -> Result<(Digest, Vec<u8>, ImageManifest), ArchiveError> {
    let data = read_blob(src, d, referrer)?;
    let member = blob_member(d, referrer)?;
    let json = |source| ArchiveError::Json {
        member: member.clone(),
        source,
    };
    let value: Value = serde_json::from_slice(&data).map_err(json)?;
    let is_index = matches!(d.media_type(), MediaType::ImageIndex)
        || d.media_type().to_string() == DOCKER_MANIFEST_LIST
        || value.get("manifests").is_some();
    if !is_index {
        let manifest: ImageManifest = serde_json::from_value(value).map_err(json)?;
        return Ok((desc_digest(d, referrer)?, data, manifest));
    }
    if !may_be_index {
        return Err(ArchiveError::BadMember {
            member,
            reason: "an index inside an index is not supported".to_string(),
        });
    }
    let index: ImageIndex = serde_json::from_value(value).map_err(json)?;
    let chosen = pick_platform(index.manifests()).ok_or_else(|| ArchiveError::BadMember {
        member: member.clone(),
        reason: format!(
            "the index has no manifest for linux/{}",
            host_architecture()
        ),
    })?;
    read_manifest(src, chosen, &format!("index {member}"), false)
}

fn pick_platform(entries: &[Descriptor]) -> Option<&Descriptor> {
    let matches = |p: &Platform| {
        let s = |v: serde_json::Result<Value>| v.ok().and_then(|v| v.as_str().map(String::from));
        s(serde_json::to_value(p.os())).as_deref() == Some("linux")
            && s(serde_json::to_value(p.architecture())).as_deref() == Some(host_architecture())
    };
    entries
        .iter()
        .find(|e| e.platform().as_ref().is_some_and(matches))
        .or_else(|| match entries {
            [only] if only.platform().is_none() => Some(only),
            _ => None,
        })
}

fn final_names(cands: &[Candidate], tag: Option<&str>) -> Result<Vec<Vec<String>>, ArchiveError> {
    if let Some(tag) = tag {
        if cands.len() != 1 {
            return Err(ArchiveError::TagNeedsOneImage {
                tag: tag.to_string(),
                count: cands.len(),
            });
        }
    }
    cands
        .iter()
        .map(|c| {
            let mut names = c.names.clone();
            match (tag, c.bare_refs.first()) {
                (Some(t), _) => push_unique(&mut names, t.to_string()),
                (None, Some(bare)) if names.is_empty() => {
                    return Err(ArchiveError::NoName {
                        image: c.label.clone(),
                        reference: bare.clone(),
                    })
                }
                _ => {}
            }
            Ok(names)
        })
        .collect()
}

/// Stores the candidate's blobs and layers; returns its manifest descriptor and image id.
fn materialize(
    store: &Store,
    src: &Input,
    c: &Candidate,
) -> Result<(Descriptor, Digest), ArchiveError> {
    let (config_digest, config_size) = store.put_blob_bytes(&c.config_bytes)?;
    let diff_ids = &c.config.rootfs.diff_ids;
    let desc = match &c.kind {
        Kind::Docker { layers } => {
            let mut descs = Vec::new();
            for (i, (member, diff_id)) in layers.iter().zip(diff_ids).enumerate() {
                descs.push(docker_layer(store, src, &c.label, i, member, diff_id)?);
            }
            put_manifest(store, &config_digest, config_size, descs)?
        }
        Kind::Oci {
            manifest,
            manifest_bytes,
        } => {
            let referrer = &c.label;
            for (i, (l, diff_id)) in manifest.layers().iter().zip(diff_ids).enumerate() {
                oci_layer(store, src, referrer, i, l, diff_id)?;
            }
            let keeps_bytes =
                matches!(manifest.media_type(), None | Some(MediaType::ImageManifest))
                    && matches!(manifest.config().media_type(), MediaType::ImageConfig);
            if keeps_bytes {
                let (d, size) = store.put_blob_bytes(manifest_bytes)?;
                Descriptor::new(MediaType::ImageManifest, size, oci_digest(&d)?)
            } else {
                // A docker schema 2 manifest inside an OCI layout: the store indexes OCI
                // manifests only, so the same layers get an OCI manifest of ours.
                let layers = manifest
                    .layers()
                    .iter()
                    .map(|l| {
                        let mut l = l.clone();
                        l.set_media_type(oci_layer_type(l.media_type()));
                        l
                    })
                    .collect();
                put_manifest(store, &config_digest, config_size, layers)?
            }
        }
    };
    Ok((desc, config_digest))
}

/// A manifest as `Store::commit_image` writes it, so that an image saved and loaded
/// again keeps its manifest digest too.
fn put_manifest(
    store: &Store,
    config: &Digest,
    config_size: u64,
    layers: Vec<Descriptor>,
) -> Result<Descriptor, ArchiveError> {
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            config_size,
            oci_digest(config)?,
        ))
        .layers(layers)
        .build()
        .map_err(|e| StoreError::InvalidImage {
            reason: format!("building the manifest: {e}"),
        })?;
    let (d, size) = store.put_json(&manifest)?;
    Ok(Descriptor::new(
        MediaType::ImageManifest,
        size,
        oci_digest(&d)?,
    ))
}

fn oci_layer_type(m: &MediaType) -> MediaType {
    match m.to_string().as_str() {
        DOCKER_LAYER_GZIP => MediaType::ImageLayerGzip,
        DOCKER_LAYER_TAR => MediaType::ImageLayer,
        _ => m.clone(),
    }
}

/// A docker-archive layer: a plain tar is gzipped into a store blob (its digest is the
/// diff_id, checked before any work); a gzipped one is stored as it is.
fn docker_layer(
    store: &Store,
    src: &Input,
    referrer: &str,
    i: usize,
    member: &str,
    diff_id: &Digest,
) -> Result<Descriptor, ArchiveError> {
    let label = format!("{member} ({referrer} layer {i})");
    let (raw, _) = src.digest_of(member, referrer)?;
    let (mut file, path) = src.open_member(member, referrer)?;
    let mut magic = [0u8; 2];
    let n = read_up_to(&mut file, &mut magic).map_err(ArchiveError::io("read", &path))?;
    if n == 2 && magic == [0x1f, 0x8b] {
        let size = src.put_blob(store, member, referrer, &raw)?;
        extract_verified(store, &label, diff_id, &|| {
            Ok(Box::new(BufReader::new(store.open_blob(&raw)?)))
        })?;
        return Ok(Descriptor::new(
            MediaType::ImageLayerGzip,
            size,
            oci_digest(&raw)?,
        ));
    }
    if &raw != diff_id {
        return Err(ArchiveError::DigestMismatch {
            what: format!("layer {label}, whose rootfs.diff_ids entry"),
            expected: diff_id.clone(),
            actual: raw,
        });
    }
    let open_plain = || -> Result<Box<dyn Read + '_>, ArchiveError> {
        let (f, _) = src.open_member(member, referrer)?;
        Ok(Box::new(BufReader::new(f)))
    };
    let mut w = store.blob_writer()?;
    let mut plain = open_plain()?;
    let blob = compress_layer(
        |out| {
            io::copy(&mut plain, out)
                .map(|_| ())
                .map_err(LayerError::Compress)
        },
        &mut w,
    )
    .map_err(ArchiveError::layer(label.clone()))?;
    if &blob.diff_id != diff_id {
        return Err(ArchiveError::DigestMismatch {
            what: format!("layer {label} (changed while being read)"),
            expected: diff_id.clone(),
            actual: blob.diff_id,
        });
    }
    let (digest, size) = w.commit_expecting(&blob.digest)?;
    extract_verified(store, &label, diff_id, &open_plain)?;
    Ok(Descriptor::new(
        MediaType::ImageLayerGzip,
        size,
        oci_digest(&digest)?,
    ))
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// An OCI layer blob, stored as it is.
fn oci_layer(
    store: &Store,
    src: &Input,
    referrer: &str,
    i: usize,
    l: &Descriptor,
    diff_id: &Digest,
) -> Result<(), ArchiveError> {
    let label = format!("{} ({referrer} layer {i})", l.digest());
    let media = l.media_type().to_string();
    let known = matches!(
        l.media_type(),
        MediaType::ImageLayer
            | MediaType::ImageLayerGzip
            | MediaType::ImageLayerNonDistributable
            | MediaType::ImageLayerNonDistributableGzip
    ) || media == DOCKER_LAYER_GZIP
        || media == DOCKER_LAYER_TAR;
    if !known {
        return Err(ArchiveError::BadMember {
            member: label,
            reason: format!("layer media type {media} is not supported (gzip or plain tar only)"),
        });
    }
    let member = blob_member(l, referrer)?;
    let digest = desc_digest(l, referrer)?;
    let size = src.put_blob(store, &member, referrer, &digest)?;
    if size != l.size() {
        return Err(ArchiveError::BadMember {
            member,
            reason: format!("{size} bytes, its descriptor says {}", l.size()),
        });
    }
    extract_verified(store, &label, diff_id, &|| {
        Ok(Box::new(BufReader::new(store.open_blob(&digest)?)))
    })
}

type Opener<'a> = dyn Fn() -> Result<Box<dyn Read + 'a>, ArchiveError> + 'a;

/// Extracts the layer `open` gives (gzip or plain) into `layers/<diff_id>` unless it is
/// there already; either way hashes the uncompressed tar and fails on a diff_id mismatch
/// (when extracting, before the layer dir is put in place).
fn extract_verified(
    store: &Store,
    label: &str,
    diff_id: &Digest,
    open: &Opener<'_>,
) -> Result<(), ArchiveError> {
    let run = |dest: Option<&Path>| -> Result<(), ArchiveError> {
        let tar = open_layer(open()?).map_err(ArchiveError::layer(label))?;
        let mut r = DigestReader::new(tar);
        match dest {
            Some(dir) => {
                extract(&mut r, dir, &ExtractOptions::default())
                    .map_err(ArchiveError::layer(label))?;
            }
            None => {
                io::copy(&mut r, &mut io::sink()).map_err(|e| {
                    ArchiveError::layer(label)(LayerError::TarRead {
                        after: "(hashing)".to_string(),
                        source: e,
                    })
                })?;
            }
        }
        let (_, actual, _) = r.finish();
        if &actual != diff_id {
            return Err(ArchiveError::DigestMismatch {
                what: format!("uncompressed layer {label} (its diff_id)"),
                expected: diff_id.clone(),
                actual,
            });
        }
        Ok(())
    };
    if store.has_layer(diff_id) {
        return run(None);
    }
    store.ensure_layer(diff_id, |dir| run(Some(dir)))?;
    Ok(())
}

/// Lists an image with no names in the index, as `docker load` keeps an archive's
/// untagged image (the store's own helper for this is private to it).
fn add_untagged(store: &Store, desc: &Descriptor) -> Result<(), ArchiveError> {
    let _lock = store.lock()?;
    let mut index = store.read_index()?;
    if index
        .manifests()
        .iter()
        .any(|e| e.digest() == desc.digest())
    {
        return Ok(());
    }
    let mut entries = index.manifests().clone();
    entries.push(desc.clone());
    index.set_manifests(entries);
    store.write_index(&index)?;
    Ok(())
}
