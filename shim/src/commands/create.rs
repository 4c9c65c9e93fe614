//! `create`: an image (or a given bundle) becomes a container record with
//! its own bundle: config.json from the image by the conversion rules, with
//! `-e`, `-v`, `-w`, `-u`, `--entrypoint` applied, and an overlay rootfs
//! whose upper dir is the container's writable layer. Nothing is left if
//! any step fails.

use std::fs;
use std::path::{Path, PathBuf};

use keel_builder::bundle::{create_bundle, remove_bundle, BundleOptions, SpecOptions};

use super::{Result, Shim, ShimError};
use crate::container::{new_id, ContainerMeta};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Network {
    #[default]
    Host,
    None,
}

#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    /// The image, unless `bundle` is given.
    pub image: Option<String>,
    /// `--bundle DIR`: an existing OCI bundle, used in place.
    pub bundle: Option<PathBuf>,
    /// Command and arguments instead of the image's Cmd.
    pub command: Vec<String>,
    pub name: Option<String>,
    pub env: Vec<String>,
    pub env_files: Vec<PathBuf>,
    pub volumes: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub entrypoint: Option<String>,
    pub log_opts: Vec<String>,
    pub hostname: Option<String>,
    pub network: Network,
    pub tty: bool,
    pub interactive: bool,
    pub auto_remove: bool,
}

/// One `-v SRC:DST[:ro|rw]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub source: PathBuf,
    pub target: String,
    pub read_only: bool,
}

pub fn parse_volume(spec: &str) -> Result<Volume> {
    let bad = |reason: &str| ShimError::Flag {
        flag: "-v",
        value: spec.to_string(),
        reason: reason.to_string(),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [s, d] => (*s, *d, "rw"),
        [s, d, m] => (*s, *d, *m),
        _ => return Err(bad("want SRC:DST[:ro|rw]")),
    };
    let read_only = match mode {
        "ro" => true,
        "rw" => false,
        _ => return Err(bad("the mode must be ro or rw")),
    };
    if !src.starts_with('/') {
        return Err(bad(
            "the source must be an absolute host path (named volumes are not supported)",
        ));
    }
    if !dst.starts_with('/') || dst == "/" {
        return Err(bad("the destination must be an absolute path other than /"));
    }
    let source = fs::canonicalize(src).map_err(|e| bad(&format!("source {src}: {e}")))?;
    Ok(Volume {
        source,
        target: dst.to_string(),
        read_only,
    })
}

/// docker's `max-size` (`10k`, `5m`, `1g`, bytes without a unit) and `max-file`.
pub fn parse_log_opts(opts: &[String]) -> Result<(Option<u64>, u32)> {
    let mut size = None;
    let mut files = 0;
    for o in opts {
        let bad = |reason: &str| ShimError::Flag {
            flag: "--log-opt",
            value: o.clone(),
            reason: reason.to_string(),
        };
        let (k, v) = o.split_once('=').ok_or_else(|| bad("want KEY=VALUE"))?;
        match k {
            "max-size" => {
                let (num, mult) = match v.to_ascii_lowercase().chars().last() {
                    Some('k') => (&v[..v.len() - 1], 1024u64),
                    Some('m') => (&v[..v.len() - 1], 1024 * 1024),
                    Some('g') => (&v[..v.len() - 1], 1024 * 1024 * 1024),
                    _ => (v, 1),
                };
                let n: u64 = num
                    .parse()
                    .map_err(|_| bad("max-size must be a number with an optional k, m or g"))?;
                if n == 0 {
                    return Err(bad("max-size must be positive"));
                }
                size = Some(n * mult);
            }
            "max-file" => {
                files = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("max-file must be a positive number"))?;
            }
            _ => return Err(bad("known options: max-size, max-file")),
        }
    }
    if files > 1 && size.is_none() {
        return Err(ShimError::Flag {
            flag: "--log-opt",
            value: format!("max-file={files}"),
            reason: "max-file needs max-size".to_string(),
        });
    }
    Ok((size, files))
}

/// `-e K=V`, `-e K` (from our environment, skipped if unset), `--env-file`.
fn environment(req: &CreateRequest) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut one = |entry: &str, origin: &str| -> Result<()> {
        match entry.split_once('=') {
            Some(("", _)) => Err(ShimError::Flag {
                flag: "-e",
                value: entry.to_string(),
                reason: format!("empty variable name (from {origin})"),
            }),
            Some(_) => {
                out.push(entry.to_string());
                Ok(())
            }
            None => {
                if let Ok(v) = std::env::var(entry) {
                    out.push(format!("{entry}={v}"));
                }
                Ok(())
            }
        }
    };
    for f in &req.env_files {
        let text = fs::read_to_string(f).map_err(ShimError::io("reading env file", f))?;
        for line in text.lines() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            one(line, &f.display().to_string())?;
        }
    }
    for e in &req.env {
        one(e, "-e")?;
    }
    Ok(out)
}

/// Removes a half-made container: its bundle (unmounted first) and record.
struct Undo<'a> {
    shim: &'a Shim,
    id: String,
    recorded: bool,
    done: bool,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let bundle = self.shim.paths.bundle(&self.id);
        if bundle.join("config.json").is_file() && !bundle.is_symlink() {
            if let Err(e) = remove_bundle(&bundle) {
                tracing::warn!("cleaning up container {}: {e}", self.id);
                return;
            }
        }
        if self.recorded {
            if let Err(e) = self.shim.containers().remove(&self.id) {
                tracing::warn!("cleaning up container {}: {e}", self.id);
            }
        }
    }
}

pub fn create(shim: &Shim, req: &CreateRequest) -> Result<ContainerMeta> {
    // Everything that can be refused without touching the disk first.
    let volumes = req
        .volumes
        .iter()
        .map(|v| parse_volume(v))
        .collect::<Result<Vec<_>>>()?;
    let (log_max_size, log_max_files) = parse_log_opts(&req.log_opts)?;
    let env = environment(req)?;
    if let Some(b) = &req.bundle {
        if !b.join("config.json").is_file() {
            return Err(ShimError::Refused(format!(
                "bundle {}: no config.json there",
                b.display()
            )));
        }
    }
    let store = match &req.image {
        Some(_) => Some(
            keel_builder::store::Store::open(&shim.store).map_err(|source| ShimError::Store {
                path: shim.store.clone(),
                source,
            })?,
        ),
        None => None,
    };
    let image = match (&store, &req.image) {
        (Some(s), Some(i)) => Some(s.resolve(i).map_err(|source| ShimError::Store {
            path: shim.store.clone(),
            source,
        })?),
        _ => None,
    };

    let id = new_id()?;
    let meta = ContainerMeta {
        id: id.clone(),
        name: req.name.clone().unwrap_or_default(),
        image: req
            .image
            .clone()
            .or_else(|| req.bundle.as_ref().map(|b| b.display().to_string()))
            .unwrap_or_default(),
        image_id: image
            .as_ref()
            .map(|i| i.config_digest.to_string())
            .unwrap_or_default(),
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        args: Vec::new(),
        env: Vec::new(),
        entrypoint: None,
        cmd: None,
        tty: req.tty,
        stdin: req.interactive,
        auto_remove: req.auto_remove,
        stop_signal: image
            .as_ref()
            .map(|i| i.config.config.stop_signal.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "SIGTERM".to_string()),
        log_max_size,
        log_max_files,
        runtime: shim.runtime.clone(),
    };
    let containers = shim.containers();
    let mut meta = containers.create(meta)?;
    let mut undo = Undo {
        shim,
        id: id.clone(),
        recorded: true,
        done: false,
    };
    let bundle = shim.paths.bundle(&id);
    match (&store, &req.bundle) {
        (Some(store), _) => {
            let image_ref = req.image.as_deref().unwrap_or_default();
            let opts = BundleOptions {
                copy: false,
                spec: SpecOptions {
                    args: (!req.command.is_empty()).then(|| req.command.clone()),
                    entrypoint: req.entrypoint.as_ref().map(|e| {
                        if e.is_empty() {
                            Vec::new()
                        } else {
                            vec![e.clone()]
                        }
                    }),
                    env: env.clone(),
                    cwd: req.workdir.clone(),
                    user: req.user.clone(),
                    hostname: Some(req.hostname.clone().unwrap_or_else(|| id[..12].to_string())),
                    terminal: req.tty,
                    network: match req.network {
                        Network::Host => keel_builder::bundle::Network::Host,
                        Network::None => keel_builder::bundle::Network::None,
                    },
                },
            };
            create_bundle(store, image_ref, &bundle, &opts)?;
            if let Some(w) = &req.workdir {
                make_workdir(&bundle.join("rootfs"), w)?;
            }
            if let Some(i) = &image {
                let c = &i.config.config;
                meta.entrypoint = match &req.entrypoint {
                    Some(e) if e.is_empty() => None,
                    Some(e) => Some(vec![e.clone()]),
                    None => c.entrypoint.clone(),
                };
                meta.cmd = if req.command.is_empty() {
                    if req.entrypoint.is_some() {
                        None
                    } else {
                        c.cmd.clone()
                    }
                } else {
                    Some(req.command.clone())
                };
            }
        }
        (None, Some(dir)) => {
            let dir = fs::canonicalize(dir).map_err(ShimError::io("bundle", dir))?;
            std::os::unix::fs::symlink(&dir, &bundle)
                .map_err(ShimError::io("linking bundle", &bundle))?;
        }
        (None, None) => {
            return Err(ShimError::Refused(
                "an image or --bundle is required".into(),
            ))
        }
    }
    let config_path = bundle.join("config.json");
    let (args, env) = edit_config(&config_path, &volumes, req, store.is_none(), &env)?;
    meta.args = args;
    meta.env = env;
    containers.update(&meta)?;
    undo.done = true;
    Ok(meta)
}

/// docker creates a missing `-w` directory (root's, 0755) before the
/// process starts: a runtime cannot always do it as the container's user.
fn make_workdir(rootfs: &Path, workdir: &str) -> Result<()> {
    let dir = keel_builder::context::secure_join(rootfs, workdir).map_err(|e| ShimError::Flag {
        flag: "-w",
        value: workdir.to_string(),
        reason: e.to_string(),
    })?;
    fs::create_dir_all(&dir).map_err(ShimError::io("creating the working directory", &dir))
}

/// The things `create_bundle` has no option for: bind mounts, and for a
/// given bundle, the command, env, cwd and terminal. Returns the process's
/// final args and env.
fn edit_config(
    path: &Path,
    volumes: &[Volume],
    req: &CreateRequest,
    given_bundle: bool,
    env: &[String],
) -> Result<(Vec<String>, Vec<String>)> {
    let text = fs::read(path).map_err(ShimError::io("reading", path))?;
    let mut spec: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| ShimError::Refused(format!("{}: not valid JSON: {e}", path.display())))?;
    if given_bundle {
        let p = &mut spec["process"];
        if !req.command.is_empty() {
            p["args"] = serde_json::json!(req.command);
        }
        if let Some(w) = &req.workdir {
            p["cwd"] = serde_json::json!(w);
        }
        if req.tty {
            p["terminal"] = true.into();
        } else {
            p["terminal"] = false.into();
        }
        if let Some(list) = p["env"].as_array_mut() {
            for e in env {
                let key = e.split('=').next().unwrap_or_default();
                list.retain(|x| x.as_str().and_then(|s| s.split('=').next()) != Some(key));
                list.push(e.clone().into());
            }
        }
    }
    if !volumes.is_empty() {
        let mounts = spec["mounts"].as_array_mut().ok_or_else(|| {
            ShimError::Refused(format!("{}: mounts is not a list", path.display()))
        })?;
        for v in volumes {
            let mut options = vec!["rbind", "rprivate"];
            if v.read_only {
                options.push("ro");
            }
            mounts.push(serde_json::json!({
                "destination": v.target,
                "type": "bind",
                "source": v.source,
                "options": options,
            }));
        }
    }
    if given_bundle || !volumes.is_empty() {
        let out =
            serde_json::to_vec_pretty(&spec).map_err(|e| ShimError::Refused(e.to_string()))?;
        let tmp = path.with_extension("json.tmp");
        fs::write(&tmp, out).map_err(ShimError::io("writing", &tmp))?;
        fs::rename(&tmp, path).map_err(ShimError::io("renaming into", path))?;
    }
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok((
        strings(&spec["process"]["args"]),
        strings(&spec["process"]["env"]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_specs() {
        let v = parse_volume("/tmp:/data:ro").unwrap();
        assert_eq!((v.target.as_str(), v.read_only), ("/data", true));
        assert!(!parse_volume("/tmp:/data").unwrap().read_only);
        for bad in [
            "/tmp",
            "rel:/data",
            "/tmp:data",
            "/tmp:/",
            "/tmp:/d:rx",
            "/nonexistent-keel:/d",
            "a:b:c:d",
        ] {
            assert!(parse_volume(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn log_options() {
        assert_eq!(
            parse_log_opts(&["max-size=10k".into(), "max-file=3".into()]).unwrap(),
            (Some(10240), 3)
        );
        assert_eq!(
            parse_log_opts(&["max-size=2m".into()]).unwrap(),
            (Some(2 << 20), 0)
        );
        assert_eq!(parse_log_opts(&[]).unwrap(), (None, 0));
        for bad in [
            "max-size=x",
            "max-size=0",
            "max-file=0",
            "color=red",
            "max-size",
        ] {
            assert!(parse_log_opts(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(parse_log_opts(&["max-file=2".into()]).is_err());
    }
}
