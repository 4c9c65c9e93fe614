//! Each instruction as a cached step. Every step has a key; a hit takes the
//! recorded config (and layer), a miss runs the step and records it. Only
//! RUN, COPY, ADD and a WORKDIR that creates its directory make layers.

use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::bundle::resolve_user;
use crate::cache::{step_key, CacheRecord, KeyPart, LayerRef};
use crate::context::{copy_into, digest_selection, secure_join, select, CopyOptions, SourceRoot};
use crate::digest::Digest;
use crate::dockerfile::{
    expand_heredoc, expand_word, CommandLine, Copy, Healthcheck, Instruction, Kind, Run,
};
use crate::exec::{run_step_with, CancelToken, RunSpec};
use crate::image::{Empty, HealthConfig, History};
use crate::layer::LayerOptions;
use crate::plan::{classify, Source};

use super::rootfs::Workspace;
use super::stage::{StageState, StageVars};
use super::{Build, StepError, PROXY_ARGS};

/// What a missed step produced, before it is recorded.
struct Outcome {
    layer: Option<LayerRef>,
    created_by: String,
}

impl Build<'_> {
    fn layer_opts(&self) -> LayerOptions {
        LayerOptions {
            source_date_epoch: self.opts.source_date_epoch,
        }
    }

    fn expand(&self, state: &StageState, word: &str) -> Result<String, StepError> {
        Ok(expand_word(word, &StageVars(state), self.df.escape)?)
    }

    /// The cache lookup and record around one step. `run` is called on a
    /// miss and changes `state.config` itself.
    fn cached_step(
        &mut self,
        state: &mut StageState,
        key: Digest,
        run: impl FnOnce(&mut Self, &mut StageState) -> Result<Outcome, StepError>,
    ) -> Result<bool, StepError> {
        if !self.opts.no_cache {
            if let Some(rec) = self.store.cache_get(&key) {
                state.config = rec.config;
                if let Some(l) = rec.layer {
                    state.layers.push(l);
                }
                state.key = key;
                return Ok(true);
            }
        }
        let outcome = run(self, state)?;
        let created = self.now();
        state.config.history.push(History {
            created: Some(created.clone()),
            created_by: Some(outcome.created_by),
            comment: Some("keel-build".to_string()),
            empty_layer: outcome.layer.is_none(),
            ..Default::default()
        });
        if let Some(l) = &outcome.layer {
            state.config.rootfs.diff_ids.push(l.diff_id.clone());
            state.layers.push(l.clone());
        }
        self.store.cache_put(&CacheRecord {
            key: key.clone(),
            layer: outcome.layer,
            config: state.config.clone(),
            created,
        })?;
        state.key = key;
        Ok(false)
    }

    pub(super) fn metadata_step(
        &mut self,
        state: &mut StageState,
        ins: &Instruction,
    ) -> Result<bool, StepError> {
        // Apply to a copy first: the expanded form is the cache key.
        let mut next = state.clone();
        let created_by = self.apply_metadata(&mut next, ins)?;
        let key = step_key(&state.key, &created_by, &[]);
        let cmd_set = next.cmd_set;
        let hit = self.cached_step(state, key, |_, s| {
            s.config = next.config;
            Ok(Outcome {
                layer: None,
                created_by,
            })
        })?;
        state.cmd_set = cmd_set;
        Ok(hit)
    }

    /// Changes the config for a metadata-only instruction; returns its
    /// expanded text (history's `created_by`, and the cache key).
    fn apply_metadata(&self, s: &mut StageState, ins: &Instruction) -> Result<String, StepError> {
        let c = &mut s.config.config;
        Ok(match &ins.kind {
            Kind::Env(pairs) => {
                let mut parts = Vec::new();
                for (k, v) in pairs {
                    let v = expand_word(v, &StageVars(s), self.df.escape)?;
                    let k = expand_word(k, &StageVars(s), self.df.escape)?;
                    s.config.env_set(&k, &v);
                    parts.push(format!("{k}={v}"));
                }
                format!("ENV {}", parts.join(" "))
            }
            Kind::Label(pairs) => {
                let mut parts = Vec::new();
                for (k, v) in pairs {
                    let k = self.expand(s, k)?;
                    let v = self.expand(s, v)?;
                    parts.push(format!("{k}={v}"));
                    s.config.config.labels.insert(k, v);
                }
                format!("LABEL {}", parts.join(" "))
            }
            Kind::Expose(ports) => {
                let mut out = Vec::new();
                for p in ports {
                    let p = self.expand(s, p)?;
                    // Docker's port specs: the protocol defaults to tcp and is lowercased.
                    let p = match p.split_once('/') {
                        Some((port, proto)) => format!("{port}/{}", proto.to_ascii_lowercase()),
                        None => format!("{p}/tcp"),
                    };
                    out.push(p.clone());
                    s.config.config.exposed_ports.insert(p, Empty {});
                }
                format!("EXPOSE map[{}]", out.join(" "))
            }
            Kind::Volume(vols) => {
                let mut out = Vec::new();
                for v in vols {
                    let v = self.expand(s, v)?;
                    if v.is_empty() {
                        return Err(StepError::Invalid(
                            "VOLUME specified can not be an empty string".into(),
                        ));
                    }
                    out.push(v.clone());
                    s.config.config.volumes.insert(v, Empty {});
                }
                format!("VOLUME [{}]", out.join(" "))
            }
            Kind::User(u) => {
                let u = self.expand(s, u)?;
                s.config.config.user = u.clone();
                format!("USER {u}")
            }
            Kind::StopSignal(sig) => {
                let sig = self.expand(s, sig)?;
                s.config.config.stop_signal = sig.clone();
                format!("STOPSIGNAL {sig}")
            }
            Kind::Shell(sh) => {
                c.shell = sh.clone();
                format!("SHELL {}", json(sh))
            }
            Kind::Cmd(cmd) => {
                let args = self.command_args(s, cmd);
                s.config.config.cmd = Some(args.clone());
                s.cmd_set = true;
                format!("CMD {}", json(&args))
            }
            Kind::Entrypoint(cmd) => {
                let args = self.command_args(s, cmd);
                s.config.config.entrypoint = Some(args.clone());
                // Docker: an ENTRYPOINT drops a CMD inherited from the base.
                if !s.cmd_set {
                    s.config.config.cmd = None;
                }
                format!("ENTRYPOINT {}", json(&args))
            }
            Kind::Healthcheck(h) => {
                s.config.config.healthcheck = Some(health(h));
                format!(
                    "HEALTHCHECK {}",
                    ins.text
                        .trim_start_matches(|ch: char| !ch.is_whitespace())
                        .trim()
                )
            }
            Kind::Onbuild(inner) => {
                c.on_build.push(inner.text.clone());
                format!("ONBUILD {}", inner.text)
            }
            Kind::Maintainer(m) => {
                s.config.author = Some(m.clone());
                format!("MAINTAINER {m}")
            }
            Kind::Arg(_) | Kind::Run(_) | Kind::Copy(_) | Kind::Add(_) | Kind::Workdir(_) => {
                return Err(StepError::Invalid(format!(
                    "{} is not a metadata instruction",
                    ins.kind.keyword()
                )))
            }
        })
    }

    fn command_args(&self, s: &StageState, cmd: &CommandLine) -> Vec<String> {
        match cmd {
            CommandLine::Exec(v) => v.clone(),
            CommandLine::Shell(line) => {
                let mut v = s.shell();
                v.push(line.clone());
                v
            }
        }
    }

    pub(super) fn workdir_step(
        &mut self,
        state: &mut StageState,
        w: &str,
    ) -> Result<bool, StepError> {
        let dir = self.expand(state, w)?;
        let abs = clean(&join(&state.workdir(), &dir));
        let created_by = format!("WORKDIR {abs}");
        let key = step_key(&state.key, &created_by, &[]);
        self.cached_step(state, key, |b, s| {
            s.config.config.working_dir = abs.clone();
            // Docker creates every WORKDIR, even one a later WORKDIR
            // supersedes; a layer only when the directory is new.
            let ws = Workspace::writable(b.store, &s.layers)?;
            let target = secure_join(&ws.merged, &abs)?;
            if target.is_dir() {
                ws.discard()?;
                return Ok(Outcome {
                    layer: None,
                    created_by,
                });
            }
            let user = &s.config.config.user;
            let ids = if user.is_empty() {
                None
            } else {
                let u = resolve_user(&ws.merged, user)?;
                Some((u.uid, u.gid))
            };
            create_dirs(&ws.merged, &abs, ids)?;
            let layer = ws.into_layer(b.store, &b.layer_opts())?;
            Ok(Outcome {
                layer: Some(layer),
                created_by,
            })
        })
    }

    pub(super) fn run_step(
        &mut self,
        state: &mut StageState,
        ins: &Instruction,
        run: &Run,
    ) -> Result<bool, StepError> {
        if let Some(n) = &run.network {
            if !matches!(n.as_str(), "default" | "host" | "none") {
                return Err(StepError::Invalid(format!(
                    "RUN --network={n}: want default, host or none"
                )));
            }
        }
        if let Some(m) = run.mounts.first() {
            return Err(StepError::Invalid(format!(
                "RUN --mount={m} is not supported by keel-build"
            )));
        }
        let args = self.run_args(state, run);
        // Build args reach RUN as environment; they are part of its key.
        let mut arg_env: Vec<String> = state
            .args
            .iter()
            .filter(|(k, _)| state.config.env_get(k).is_none())
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let arg_key = arg_env.join("\n");
        for p in PROXY_ARGS {
            if let Some(v) = self.build_args.get(*p) {
                if !state.args.iter().any(|(k, _)| k == p) {
                    arg_env.push(format!("{p}={v}"));
                    self.used_args.insert(p.to_string());
                }
            }
        }
        let network = match run.network.as_deref() {
            Some("none") => crate::exec::Network::None,
            Some("host") => crate::exec::Network::Host,
            _ => self.opts.network,
        };
        let shown = if run.heredocs.is_empty() {
            format!("RUN {}", display_args(&args, &run.command))
        } else {
            // `ins.text` already starts with the keyword.
            ins.text.clone()
        };
        let key = step_key(
            &state.key,
            &format!("RUN {}", json(&args)),
            &[
                ("args", KeyPart::Text(&arg_key)),
                ("network", KeyPart::Text(network_name(network))),
            ],
        );
        self.cached_step(state, key, |b, s| {
            let ws = Workspace::writable(b.store, &s.layers)?;
            let user = resolve_user(&ws.merged, &s.config.config.user)?;
            let mut env = s.config.config.env.clone();
            env.extend(arg_env);
            b.containers += 1;
            let spec = RunSpec {
                args: args.clone(),
                env,
                cwd: s.workdir(),
                uid: user.uid,
                gid: user.gid,
                additional_gids: user.additional_gids,
                network,
                hostname: String::new(),
                id: format!("keel-build-{}-{}", std::process::id(), b.containers),
            };
            let bundle = ws.tmp().join("bundle");
            let progress = &mut *b.progress;
            let code = match run_step_with(
                &b.runtime,
                &ws.merged,
                &bundle,
                &spec,
                &CancelToken::new(),
                &mut |d| progress.output(d),
            ) {
                Ok(c) => c,
                Err(crate::exec::ExecError::Cancelled { .. }) => return Err(StepError::Cancelled),
                Err(e) => return Err(e.into()),
            };
            if code != 0 {
                return Err(StepError::RunFailed {
                    command: display_args(&args, &run.command),
                    code,
                });
            }
            let layer = ws.into_layer(b.store, &b.layer_opts())?;
            Ok(Outcome {
                layer: Some(layer),
                created_by: shown,
            })
        })
    }

    /// RUN's argv: the exec form as is; the shell form through SHELL. A
    /// heredoc is the script itself (`RUN <<EOF`) or the shell's heredoc.
    fn run_args(&self, s: &StageState, run: &Run) -> Vec<String> {
        match &run.command {
            CommandLine::Exec(v) => v.clone(),
            CommandLine::Shell(line) => {
                let mut script = line.clone();
                if let [only] = run.heredocs.as_slice() {
                    let bare = line.trim();
                    if bare.starts_with("<<") && bare.split_whitespace().count() == 1 {
                        script = only.content.clone();
                        let mut v = s.shell();
                        v.push(script);
                        return v;
                    }
                }
                for h in &run.heredocs {
                    script.push('\n');
                    script.push_str(&h.content);
                    if !h.content.ends_with('\n') {
                        script.push('\n');
                    }
                    script.push_str(&h.name);
                }
                let mut v = s.shell();
                v.push(script);
                v
            }
        }
    }

    pub(super) fn copy_step(
        &mut self,
        state: &mut StageState,
        ins: &Instruction,
        c: &Copy,
        add: bool,
    ) -> Result<bool, StepError> {
        let keyword = if add { "ADD" } else { "COPY" };
        let mut sources = Vec::new();
        for src in &c.sources {
            sources.push(self.expand(state, src)?);
        }
        let dest_written = self.expand(state, &c.dest)?;
        let chown = c
            .chown
            .as_deref()
            .map(|v| self.expand(state, v))
            .transpose()?;
        let chmod = match c
            .chmod
            .as_deref()
            .map(|v| self.expand(state, v))
            .transpose()?
        {
            Some(m) => Some(
                u32::from_str_radix(&m, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| {
                        StepError::Invalid(format!(
                            "{keyword} --chmod={m}: want an octal mode such as 0755"
                        ))
                    })?,
            ),
            None => None,
        };
        if sources.len() + c.heredocs.len() > 1 && !dest_written.ends_with('/') {
            return Err(StepError::Invalid(format!(
                "When using {keyword} with more than one source file, the destination must be a directory and end with a /"
            )));
        }
        let dir_like = dest_written.ends_with('/')
            || dest_written == "."
            || dest_written.ends_with("/.")
            || dest_written.ends_with("..");
        let mut dest = clean(&join(&state.workdir(), &dest_written));
        if dir_like && !dest.ends_with('/') {
            dest.push('/');
        }

        // Where the sources come from: the context, another stage, an
        // image, or heredocs written to a tmp dir.
        let mut _from_ws = None;
        let mut _heredoc_dir = None;
        let from_label;
        let src_root = if !c.heredocs.is_empty() {
            let tmp = self.store.tmp_dir("heredoc")?;
            for h in &c.heredocs {
                let body = if h.expand {
                    expand_heredoc(&h.content, &StageVars(state), self.df.escape)?
                } else {
                    h.content.clone()
                };
                let p = tmp.path().join(&h.name);
                fs::write(&p, body).map_err(StepError::io("writing heredoc", &p))?;
                sources.push(h.name.clone());
            }
            let root = SourceRoot::filesystem(tmp.path());
            _heredoc_dir = Some(tmp);
            from_label = "heredoc".to_string();
            root
        } else if let Some(from) = &c.from {
            let from = self.expand(state, from)?;
            let layers = match classify(&self.df, &from, usize::MAX) {
                Source::Stage(i) => {
                    self.stages
                        .get(&i)
                        .map(|st| st.layers.clone())
                        .ok_or_else(|| {
                            StepError::Invalid(format!(
                                "{keyword} --from={from}: stage not built yet"
                            ))
                        })?
                }
                Source::Scratch => Vec::new(),
                Source::Image(name) => {
                    let image =
                        self.store
                            .resolve(&name)
                            .map_err(|source| StepError::BaseImage {
                                image: name.clone(),
                                source,
                            })?;
                    image
                        .manifest
                        .layers()
                        .iter()
                        .zip(&image.config.rootfs.diff_ids)
                        .map(|(d, id)| {
                            Ok(LayerRef {
                                diff_id: id.clone(),
                                digest: Digest::parse(d.digest().as_ref())
                                    .map_err(|e| StepError::Invalid(e.to_string()))?,
                                size: d.size(),
                                media_type: d.media_type().to_string(),
                            })
                        })
                        .collect::<Result<Vec<_>, StepError>>()?
                }
            };
            let ws = Workspace::read_only(self.store, &layers)?;
            let root = SourceRoot::filesystem(&ws.merged);
            _from_ws = Some(ws);
            from_label = format!("from={from}");
            root
        } else {
            from_label = "context".to_string();
            SourceRoot {
                root: self.context.root.clone(),
                ignore: self.context.ignore.clone(),
            }
        };
        let selected = select(&src_root, &sources)?;
        // Docker counts sources after wildcard expansion too: `COPY *.txt
        // /dst` with two matches is the same error as two named sources.
        if selected.len() > 1 && !dir_like {
            return Err(StepError::Invalid(format!(
                "When using {keyword} with more than one source file, the destination must be a directory and end with a / ({} matched {} files)",
                sources.join(" "),
                selected.len()
            )));
        }
        let content = digest_selection(&src_root, &selected)?;
        let created_by = format!(
            "{keyword} {}{}{}{} {}",
            chown
                .as_deref()
                .map(|c| format!("--chown={c} "))
                .unwrap_or_default(),
            chmod.map(|m| format!("--chmod={m:o} ")).unwrap_or_default(),
            if from_label == "context" {
                String::new()
            } else {
                format!("--{from_label} ")
            },
            sources.join(" "),
            dest
        );
        let key = step_key(
            &state.key,
            &created_by,
            &[
                ("content", KeyPart::Digest(&content)),
                ("source", KeyPart::Text(&from_label)),
            ],
        );
        let _ = ins;
        self.cached_step(state, key, |b, s| {
            let ws = Workspace::writable(b.store, &s.layers)?;
            let ids = match &chown {
                Some(spec) => {
                    let u = resolve_user(&ws.merged, spec)?;
                    Some((u.uid, u.gid))
                }
                None => None,
            };
            let opts = CopyOptions {
                chown: ids,
                chmod,
                extract_archives: add,
            };
            copy_into(&src_root, &selected, &ws.merged, &dest, &opts)?;
            let layer = ws.into_layer(b.store, &b.layer_opts())?;
            Ok(Outcome {
                layer: Some(layer),
                created_by,
            })
        })
    }
}

fn network_name(n: crate::exec::Network) -> &'static str {
    match n {
        crate::exec::Network::Host => "host",
        crate::exec::Network::None => "none",
    }
}

fn json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// History shows the shell form as Docker does: `/bin/sh -c make`.
fn display_args(args: &[String], cmd: &CommandLine) -> String {
    match cmd {
        CommandLine::Exec(_) => json(args),
        CommandLine::Shell(_) => args.join(" "),
    }
}

fn health(h: &Healthcheck) -> HealthConfig {
    let ns = |d: Option<std::time::Duration>| d.map(|d| d.as_nanos() as u64).unwrap_or(0);
    HealthConfig {
        test: h.test.clone().unwrap_or_else(|| vec!["NONE".to_string()]),
        interval: ns(h.interval),
        timeout: ns(h.timeout),
        start_period: ns(h.start_period),
        start_interval: ns(h.start_interval),
        retries: h.retries.map(u64::from).unwrap_or(0),
    }
}

/// `path` against the working directory `wd` (a container path).
fn join(wd: &str, path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{}", wd.trim_end_matches('/'), path)
    }
}

/// Lexically cleans an absolute container path (`/a/./b/../c` -> `/a/c`).
fn clean(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(s) => out.push(s.to_str().unwrap_or("")),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    format!("/{}", out.join("/"))
}

/// `mkdir -p` of a container path inside `root`, owned by `ids` if given.
fn create_dirs(root: &Path, abs: &str, ids: Option<(u32, u32)>) -> Result<(), StepError> {
    let mut cur = PathBuf::from("/");
    for c in Path::new(abs).components() {
        if let Component::Normal(s) = c {
            cur.push(s);
            let host = secure_join(root, &cur)?;
            if host.is_dir() {
                continue;
            }
            fs::create_dir(&host).map_err(StepError::io("creating WORKDIR", &host))?;
            if let Some((u, g)) = ids {
                nix::unistd::chown(&host, Some(u.into()), Some(g.into()))
                    .map_err(|e| StepError::io("chown of WORKDIR", &host)(e.into()))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_and_clean_like_docker() {
        assert_eq!(clean(&join("/src", "./")), "/src");
        assert_eq!(clean(&join("/", "app")), "/app");
        assert_eq!(clean(&join("/a/b", "../c")), "/a/c");
        assert_eq!(clean(&join("/a", "/x/./y/")), "/x/y");
        assert_eq!(clean("/../.."), "/");
    }
}
