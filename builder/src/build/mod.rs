//! The build itself: a parsed Dockerfile, its context and the store become
//! an image. Stages are built in the order the plan gives; each instruction
//! is a step with a cache key (`cache::step_key` over the parent's key, the
//! instruction after substitution and, for COPY/ADD, the content digest of
//! exactly the selected files). A hit reuses the recorded config and layer;
//! a miss runs the step over an overlay of the parent's layers and turns
//! the overlay's upper dir into the new layer.

mod error;
pub mod guard;
mod rootfs;
mod stage;
mod steps;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

pub use error::{BuildError, StepError};

use crate::context::{load_ignore, SourceRoot};
use crate::dockerfile::{self, expand_word, Dockerfile};
use crate::exec::Network;
use crate::plan::{self, Source};
use crate::progress::Progress;
use crate::store::{Image, Store};
use stage::StageState;

/// Build args Docker predefines: usable without an ARG line, and left out
/// of the image's history and of cache keys.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub context: PathBuf,
    /// Default: `CONTEXT/Dockerfile`.
    pub dockerfile: Option<PathBuf>,
    pub tags: Vec<String>,
    pub build_args: Vec<(String, String)>,
    pub target: Option<String>,
    pub no_cache: bool,
    /// The runc-compatible binary that runs RUN steps.
    pub runtime: PathBuf,
    pub network: Network,
    /// `SOURCE_DATE_EPOCH`: timestamps in layers and the config are clamped
    /// to it, so the same inputs give the same digests.
    pub source_date_epoch: Option<i64>,
}

#[derive(Debug)]
pub struct BuildOutput {
    pub image: Image,
    pub executed: usize,
    pub cached: usize,
}

/// What the whole build shares: the store, the context, the runtime.
pub(crate) struct Build<'a> {
    pub store: &'a Store,
    pub opts: &'a BuildOptions,
    pub df: Dockerfile,
    pub context: SourceRoot,
    pub runtime: keel_runtime_client::Runtime,
    /// Keeps the runtime's private `--root` alive for the build.
    _runtime_root: crate::store::TempDir,
    pub progress: &'a mut Progress,
    pub build_args: BTreeMap<String, String>,
    pub used_args: std::collections::BTreeSet<String>,
    pub global_args: Vec<(String, String)>,
    pub stages: HashMap<usize, StageState>,
    pub containers: usize,
    pub executed: usize,
    pub cached: usize,
}

pub fn build(
    store: &Store,
    opts: &BuildOptions,
    progress: &mut Progress,
) -> Result<BuildOutput, BuildError> {
    let dockerfile_path = opts
        .dockerfile
        .clone()
        .unwrap_or_else(|| opts.context.join("Dockerfile"));
    if !opts.context.exists() {
        return Err(BuildError::ContextNotFound(opts.context.clone()));
    }
    if !opts.context.is_dir() {
        return Err(BuildError::ContextMissing(opts.context.clone()));
    }
    let df = dockerfile::parse_file(&dockerfile_path)?;
    let ignore =
        load_ignore(&opts.context, &dockerfile_path).map_err(|source| BuildError::Context {
            path: opts.context.clone(),
            source,
        })?;
    for tag in &opts.tags {
        crate::store::normalize_name(tag).map_err(|source| BuildError::Tag {
            tag: tag.clone(),
            source,
        })?;
    }
    let runtime_root = store.tmp_dir("runtime")?;
    let runtime = keel_runtime_client::Runtime::new(opts.runtime.clone()).root(runtime_root.path());
    let mut b = Build {
        store,
        opts,
        context: SourceRoot::context(opts.context.clone(), ignore),
        runtime,
        _runtime_root: runtime_root,
        progress,
        build_args: opts.build_args.iter().cloned().collect(),
        used_args: Default::default(),
        global_args: Vec::new(),
        stages: HashMap::new(),
        containers: 0,
        executed: 0,
        cached: 0,
        df,
    };
    b.run()
}

impl Build<'_> {
    fn run(&mut self) -> Result<BuildOutput, BuildError> {
        // Global ARGs: only FROM lines see them (and ARGs redeclared in a stage).
        let file = self.df.path.display().to_string();
        for decl in self.df.global_args.clone() {
            let value = match self.build_args.get(&decl.name) {
                Some(v) => {
                    self.used_args.insert(decl.name.clone());
                    Some(v.clone())
                }
                None => match &decl.default {
                    Some(d) => Some(expand_word(d, &self.global_args, self.df.escape).map_err(
                        |e| BuildError::Expand {
                            at: format!("{file}:{}", decl.line),
                            source: e,
                        },
                    )?),
                    None => None,
                },
            };
            if let Some(v) = value {
                self.global_args.retain(|(k, _)| *k != decl.name);
                self.global_args.push((decl.name.clone(), v));
            }
        }
        let mut bases = Vec::new();
        for s in &self.df.stages {
            let base = expand_word(&s.base, &self.global_args, self.df.escape).map_err(|e| {
                BuildError::Expand {
                    at: format!("{file}:{}", s.line),
                    source: e,
                }
            })?;
            if base.is_empty() {
                return Err(BuildError::EmptyBase {
                    at: format!("{file}:{}", s.line),
                    written: s.base.clone(),
                });
            }
            bases.push(base);
        }
        let plan = plan::plan(&self.df, self.opts.target.as_deref(), &bases)?;
        for &i in &plan.order {
            let base = match &plan.bases[i] {
                Source::Stage(s) => stage::Base::Stage(*s),
                Source::Scratch => stage::Base::Scratch,
                Source::Image(name) => stage::Base::Image(name.clone()),
            };
            let state = self.build_stage(i, base, &bases[i])?;
            self.stages.insert(i, state);
        }
        let unused: Vec<&String> = self
            .build_args
            .keys()
            .filter(|k| !self.used_args.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
            .collect();
        if !unused.is_empty() {
            tracing::warn!("one or more build-args {unused:?} were not consumed");
        }
        let state = self
            .stages
            .remove(&plan.target)
            .ok_or(BuildError::Internal("target stage was not built"))?;
        let image = self.commit(state)?;
        Ok(BuildOutput {
            image,
            executed: self.executed,
            cached: self.cached,
        })
    }

    /// Writes the target stage's config and manifest and tags them.
    fn commit(&mut self, state: StageState) -> Result<Image, BuildError> {
        let mut config = state.config;
        config.created = config
            .history
            .last()
            .and_then(|h| h.created.clone())
            .or_else(|| Some(self.now()));
        let layers = state
            .layers
            .iter()
            .map(|l| l.descriptor())
            .collect::<Result<Vec<_>, _>>()?;
        let mut names = self.opts.tags.iter();
        let first = names.next();
        let image = self
            .store
            .commit_image(&config, &layers, first.map(String::as_str))?;
        for name in names {
            let desc = oci_spec::image::Descriptor::new(
                oci_spec::image::MediaType::ImageManifest,
                std::fs::metadata(self.store.blob_path(&image.manifest_digest))
                    .map(|m| m.len())
                    .map_err(|_| BuildError::Internal("manifest blob vanished"))?,
                image
                    .manifest_digest
                    .as_str()
                    .parse::<oci_spec::image::Digest>()
                    .map_err(|_| BuildError::Internal("manifest digest"))?,
            );
            self.store.tag(name, desc)?;
        }
        Ok(self.store.resolve(image.manifest_digest.as_str())?)
    }

    /// RFC 3339 time for history entries: SOURCE_DATE_EPOCH if set.
    pub(crate) fn now(&self) -> String {
        let t = match self.opts.source_date_epoch {
            Some(s) => chrono::DateTime::from_timestamp(s, 0).unwrap_or_default(),
            None => chrono::Utc::now(),
        };
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }
}
