//! One stage's state as its instructions run: the config so far, its
//! layers, the cache key chain and the ARGs in scope.

use crate::cache::LayerRef;
use crate::digest::Digest;
use crate::dockerfile::{self, Instruction, Kind, Vars};
use crate::image::ImageConfig;

use super::{Build, BuildError, StepError};

#[derive(Debug, Clone)]
pub enum Base {
    Stage(usize),
    Scratch,
    Image(String),
}

#[derive(Debug, Clone)]
pub struct StageState {
    pub config: ImageConfig,
    pub layers: Vec<LayerRef>,
    /// Identity of the state for cache keys: the base image's config digest,
    /// then one `step_key` per instruction.
    pub key: Digest,
    /// ARGs declared in this stage, with their values (unset ones absent).
    pub args: Vec<(String, String)>,
    /// A CMD was given in this stage (an ENTRYPOINT then keeps it).
    pub cmd_set: bool,
}

impl StageState {
    /// The SHELL in force: Docker's default when the image has none.
    pub fn shell(&self) -> Vec<String> {
        if self.config.config.shell.is_empty() {
            vec!["/bin/sh".to_string(), "-c".to_string()]
        } else {
            self.config.config.shell.clone()
        }
    }

    pub fn workdir(&self) -> String {
        if self.config.config.working_dir.is_empty() {
            "/".to_string()
        } else {
            self.config.config.working_dir.clone()
        }
    }
}

/// Variables for substitution: ENV wins over an ARG of the same name.
pub struct StageVars<'a>(pub &'a StageState);

impl Vars for StageVars<'_> {
    fn get(&self, name: &str) -> Option<String> {
        if let Some(v) = self.0.config.env_get(name) {
            return Some(v.to_string());
        }
        self.0
            .args
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

impl Build<'_> {
    pub(super) fn build_stage(
        &mut self,
        index: usize,
        base: Base,
        base_name: &str,
    ) -> Result<StageState, BuildError> {
        let stage = self.df.stages[index].clone();
        let label = stage
            .name
            .clone()
            .unwrap_or_else(|| format!("stage-{index}"));
        let total = stage.instructions.len() + 1;
        let at = format!("{}:{}", self.df.path.display(), stage.line);
        let title = format!("[{label} 1/{total}] FROM {base_name}");
        self.progress.step(&title);
        let mut state = self.base_state(&base).map_err(|source| BuildError::Step {
            at: at.clone(),
            step: title.clone(),
            source: Box::new(source),
        })?;
        self.progress.done();
        // Docker and BuildKit give a stage whose base sets no PATH the
        // default one, and it stays in the image config: images built here
        // must say the same in `inspect`, not rely on runtimes adding it.
        if state.config.env_get("PATH").is_none() {
            if let Some(("PATH", path)) = crate::defaults::DEFAULT_PATH.split_once('=') {
                state.config.env_set("PATH", path);
            }
        }
        // ONBUILD triggers of the base image run first, then are dropped.
        let triggers = std::mem::take(&mut state.config.config.on_build);
        if !triggers.is_empty() {
            let text = format!("FROM scratch\n{}\n", triggers.join("\n"));
            let parsed = dockerfile::parse(&self.df.path, &text)?;
            for ins in parsed.stages.into_iter().flat_map(|s| s.instructions) {
                let title = format!("[{label} 1/{total}] ONBUILD {}", ins.text);
                self.step(&mut state, &ins, &title, &at)?;
            }
        }
        for (n, ins) in stage.instructions.iter().enumerate() {
            let title = format!("[{label} {}/{total}] {}", n + 2, one_line(&ins.text));
            let at = format!("{}:{}", self.df.path.display(), ins.line);
            self.step(&mut state, ins, &title, &at)?;
        }
        Ok(state)
    }

    fn step(
        &mut self,
        state: &mut StageState,
        ins: &Instruction,
        title: &str,
        at: &str,
    ) -> Result<(), BuildError> {
        if crate::exec::cancelled() {
            return Err(BuildError::Cancelled);
        }
        self.progress.step(title);
        let counts = !matches!(ins.kind, Kind::Arg(_));
        match self.instruction(state, ins) {
            Ok(cached) => {
                if !counts {
                    self.progress.done();
                } else if cached {
                    self.cached += 1;
                    self.progress.cached();
                } else {
                    self.executed += 1;
                    self.progress.done();
                }
                Ok(())
            }
            Err(StepError::Cancelled) => {
                self.progress.failed("cancelled");
                Err(BuildError::Cancelled)
            }
            Err(source) => {
                self.progress.failed(&source.to_string());
                Err(BuildError::Step {
                    at: at.to_string(),
                    step: title.to_string(),
                    source: Box::new(source),
                })
            }
        }
    }

    fn base_state(&mut self, base: &Base) -> Result<StageState, StepError> {
        match base {
            Base::Stage(i) => {
                let s = self
                    .stages
                    .get(i)
                    .ok_or_else(|| StepError::Invalid(format!("stage {i} was not built")))?;
                Ok(StageState {
                    args: Vec::new(),
                    cmd_set: false,
                    ..s.clone()
                })
            }
            Base::Scratch => Ok(StageState {
                config: ImageConfig::scratch(),
                layers: Vec::new(),
                key: Digest::of_bytes(b"keel-build scratch"),
                args: Vec::new(),
                cmd_set: false,
            }),
            Base::Image(name) => {
                let image = self
                    .store
                    .resolve(name)
                    .map_err(|source| StepError::BaseImage {
                        image: name.clone(),
                        source,
                    })?;
                let layers = image
                    .manifest
                    .layers()
                    .iter()
                    .zip(&image.config.rootfs.diff_ids)
                    .map(|(d, diff_id)| {
                        Ok(LayerRef {
                            diff_id: diff_id.clone(),
                            digest: Digest::parse(d.digest().as_ref())
                                .map_err(|e| StepError::Invalid(e.to_string()))?,
                            size: d.size(),
                            media_type: d.media_type().to_string(),
                        })
                    })
                    .collect::<Result<Vec<_>, StepError>>()?;
                for l in &layers {
                    if !self.store.has_layer(&l.diff_id) {
                        return Err(StepError::Invalid(format!(
                            "base image \"{name}\": layer {} is not extracted in the store (run `keel-build check`)",
                            l.diff_id
                        )));
                    }
                }
                Ok(StageState {
                    config: image.config,
                    layers,
                    key: image.config_digest,
                    args: Vec::new(),
                    cmd_set: false,
                })
            }
        }
    }

    /// Runs one instruction; true when it came from the cache.
    fn instruction(
        &mut self,
        state: &mut StageState,
        ins: &Instruction,
    ) -> Result<bool, StepError> {
        match &ins.kind {
            Kind::Arg(decls) => {
                self.declare_args(state, decls)?;
                Ok(false)
            }
            Kind::Run(run) => self.run_step(state, ins, run),
            Kind::Copy(c) => self.copy_step(state, ins, c, false),
            Kind::Add(c) => self.copy_step(state, ins, c, true),
            Kind::Workdir(w) => self.workdir_step(state, w),
            _ => self.metadata_step(state, ins),
        }
    }

    fn declare_args(
        &mut self,
        state: &mut StageState,
        decls: &[dockerfile::ArgDecl],
    ) -> Result<(), StepError> {
        for d in decls {
            let value = if let Some(v) = self.build_args.get(&d.name) {
                self.used_args.insert(d.name.clone());
                Some(v.clone())
            } else if let Some(default) = &d.default {
                Some(dockerfile::expand_word(
                    default,
                    &StageVars(state),
                    self.df.escape,
                )?)
            } else {
                // `ARG NAME` in a stage takes the global ARG's value.
                self.global_args
                    .iter()
                    .rev()
                    .find(|(k, _)| *k == d.name)
                    .map(|(_, v)| v.clone())
            };
            state.args.retain(|(k, _)| *k != d.name);
            if let Some(v) = value {
                state.args.push((d.name.clone(), v));
            }
        }
        Ok(())
    }
}

/// Step titles are one line: continuation newlines become spaces.
fn one_line(text: &str) -> String {
    let t: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if t.chars().count() > 100 {
        let mut s: String = t.chars().take(97).collect();
        s.push_str("...");
        s
    } else {
        t
    }
}
