//! Dockerfile parsing: lexing (directives, continuations, heredocs), instructions with file:line, variable substitution.
//!
//! The model keeps every value as written (quotes included, nothing
//! expanded): what `$VAR` means depends on the ENV and ARG values in force at
//! that step, so the builder expands with [`substitute`] as it goes, for the
//! instructions where [`Kind::expands_variables`] says Docker does.

mod error;
mod lex;
mod parse;
pub mod substitute;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::DockerfileError;
pub use substitute::{expand_heredoc, expand_word, expand_words, SubstError, Vars};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub path: PathBuf,
    /// `\` unless a `# escape=` directive chose `` ` ``.
    pub escape: char,
    /// The `# syntax=` directive, kept for information; keel has no frontends.
    pub syntax: Option<String>,
    /// ARGs before the first FROM: usable in FROM lines, and in a stage only
    /// after an `ARG NAME` without a default re-declares them.
    pub global_args: Vec<ArgDecl>,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub index: usize,
    /// The `AS name`, lowercased (stage names are case-insensitive in Docker).
    pub name: Option<String>,
    /// The image as written, e.g. `${BASE}`; expanded with the global ARGs only.
    pub base: String,
    /// `--platform=` as written (may contain `$BUILDPLATFORM` etc.).
    pub platform: Option<String>,
    /// Line of the FROM.
    pub line: usize,
    /// The instructions after the FROM, up to the next FROM.
    pub instructions: Vec<Instruction>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line of the instruction's first line.
    pub line: usize,
    /// As written with continuation lines joined (history and cache keys).
    /// Heredoc bodies are not in it, so a cache key must also cover
    /// [`Instruction::heredocs`].
    pub text: String,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Run(Run),
    Cmd(CommandLine),
    Entrypoint(CommandLine),
    Copy(Copy),
    Add(Copy),
    Workdir(String),
    /// Keys and values as written; both are expanded (Docker expands keys too).
    Env(Vec<(String, String)>),
    Arg(Vec<ArgDecl>),
    /// Keys and values as written; both are expanded.
    Label(Vec<(String, String)>),
    Expose(Vec<String>),
    Volume(Vec<String>),
    User(String),
    Shell(Vec<String>),
    StopSignal(String),
    Healthcheck(Healthcheck),
    /// The trigger, stored unexpanded in the image and run by a child build.
    Onbuild(Box<Instruction>),
    Maintainer(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    /// JSON array form: run directly, no shell.
    Exec(Vec<String>),
    /// Anything else: run with the stage's SHELL (default `/bin/sh -c`).
    Shell(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// For a heredoc RUN this is the line as written, e.g. `<<EOF` or
    /// `python3 <<EOF`; the bodies are in `heredocs`.
    pub command: CommandLine,
    /// `--network=` as written.
    pub network: Option<String>,
    /// Each `--mount=` as written, in order.
    pub mounts: Vec<String>,
    /// `--security=` as written.
    pub security: Option<String>,
    pub heredocs: Vec<Heredoc>,
}

/// COPY and ADD. Flags ADD does not have (`--from`, `--parents`) are
/// rejected while parsing ADD, and those COPY lacks (`--checksum`,
/// `--keep-git-dir`) while parsing COPY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// Paths (or URLs for ADD) as written; heredoc sources are in `heredocs`.
    pub sources: Vec<String>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<String>,
    pub checksum: Option<String>,
    pub keep_git_dir: bool,
    /// Inline files: each is copied to `dest` (or `dest/<name>` when dest is
    /// a directory), its name being the heredoc delimiter.
    pub heredocs: Vec<Heredoc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter with quotes removed, e.g. `EOF` for `<<"EOF"`.
    pub name: String,
    /// The body lines with their newlines, without the terminator line;
    /// leading tabs already removed when `chomp`.
    pub content: String,
    /// False when the delimiter was quoted: the body is used literally.
    /// Otherwise COPY/ADD expand it with [`expand_heredoc`]; for RUN the
    /// shell does the expanding.
    pub expand: bool,
    /// `<<-`: leading tabs were stripped from the body and terminator.
    pub chomp: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    /// As written; Docker expands it with the ARGs and ENVs before it.
    pub default: Option<String>,
    /// Line of the ARG instruction (global ARGs have no [`Instruction`]).
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    /// None for `HEALTHCHECK NONE`; else `["CMD", args..]` (exec form) or
    /// `["CMD-SHELL", command]`, as in the image config.
    pub test: Option<Vec<String>>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub start_period: Option<Duration>,
    pub start_interval: Option<Duration>,
    pub retries: Option<u32>,
}

impl Kind {
    /// Whether Docker expands `$VAR` in this instruction's arguments when it
    /// runs: ADD, COPY (sources, dest and the `--from`/`--chown`/`--chmod`
    /// flags), ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR, and
    /// ARG defaults. FROM (not a `Kind`: [`Stage::base`]) expands too, with
    /// the global ARGs only.
    ///
    /// Not expanded: RUN, CMD, ENTRYPOINT and HEALTHCHECK (their shell does
    /// it at run time, the exec form never), SHELL, MAINTAINER, and ONBUILD,
    /// whose trigger is stored as written and expanded by the child build
    /// when it runs (if the wrapped instruction is one of the above). RUN's
    /// `--mount`/`--network` flag values are the exception: Docker expands
    /// them.
    pub fn expands_variables(&self) -> bool {
        matches!(
            self,
            Kind::Add(_)
                | Kind::Copy(_)
                | Kind::Env(_)
                | Kind::Expose(_)
                | Kind::Label(_)
                | Kind::StopSignal(_)
                | Kind::User(_)
                | Kind::Volume(_)
                | Kind::Workdir(_)
                | Kind::Arg(_)
        )
    }

    /// The instruction's keyword, upper case.
    pub fn keyword(&self) -> &'static str {
        match self {
            Kind::Run(_) => "RUN",
            Kind::Cmd(_) => "CMD",
            Kind::Entrypoint(_) => "ENTRYPOINT",
            Kind::Copy(_) => "COPY",
            Kind::Add(_) => "ADD",
            Kind::Workdir(_) => "WORKDIR",
            Kind::Env(_) => "ENV",
            Kind::Arg(_) => "ARG",
            Kind::Label(_) => "LABEL",
            Kind::Expose(_) => "EXPOSE",
            Kind::Volume(_) => "VOLUME",
            Kind::User(_) => "USER",
            Kind::Shell(_) => "SHELL",
            Kind::StopSignal(_) => "STOPSIGNAL",
            Kind::Healthcheck(_) => "HEALTHCHECK",
            Kind::Onbuild(_) => "ONBUILD",
            Kind::Maintainer(_) => "MAINTAINER",
        }
    }
}

impl Instruction {
    /// The heredocs of a RUN, COPY or ADD (empty for anything else).
    pub fn heredocs(&self) -> &[Heredoc] {
        match &self.kind {
            Kind::Run(r) => &r.heredocs,
            Kind::Copy(c) | Kind::Add(c) => &c.heredocs,
            _ => &[],
        }
    }
}

impl Dockerfile {
    /// The stage a `--from=` or `--target` names: a stage name
    /// (case-insensitive) or an index.
    pub fn stage(&self, name_or_index: &str) -> Option<&Stage> {
        let lower = name_or_index.to_ascii_lowercase();
        self.stages
            .iter()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| {
                name_or_index
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| self.stages.get(i))
            })
    }
}

/// Parses a Dockerfile's text; `path` is only used in errors and kept in
/// the result.
pub fn parse(path: &Path, text: &str) -> Result<Dockerfile, DockerfileError> {
    parse::parse_dockerfile(path, text)
}

pub fn parse_file(path: &Path) -> Result<Dockerfile, DockerfileError> {
    let text = std::fs::read_to_string(path).map_err(|source| DockerfileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixture's Dockerfile, or None (with a note) when it is absent.
    fn fixture(name: &str) -> Option<Dockerfile> {
        let path = crate::testing::fixtures_dir().join(name).join("Dockerfile");
        if !path.exists() {
            eprintln!("skipping: {} not found", path.display());
            return None;
        }
        Some(parse_file(&path).unwrap())
    }

    fn keywords(stage: &Stage) -> Vec<&'static str> {
        stage
            .instructions
            .iter()
            .map(|i| i.kind.keyword())
            .collect()
    }

    #[test]
    fn busybox_app_fixture() {
        let Some(d) = fixture("busybox-app") else {
            return;
        };
        assert_eq!(d.escape, '\\');
        assert_eq!(d.global_args.len(), 1);
        assert_eq!(d.global_args[0].name, "BASE");
        assert_eq!(
            d.global_args[0].default.as_deref(),
            Some("local/busybox:latest")
        );
        assert_eq!(d.stages.len(), 2);

        let build = &d.stages[0];
        assert_eq!(build.name.as_deref(), Some("build"));
        assert_eq!(build.base, "${BASE}");
        assert_eq!(keywords(build), ["ARG", "WORKDIR", "COPY", "COPY", "RUN"]);
        let run = &build.instructions[4];
        let Kind::Run(r) = &run.kind else { panic!() };
        let CommandLine::Shell(cmd) = &r.command else {
            panic!()
        };
        assert!(cmd.starts_with("sh ./build.sh \"$VERSION\" /out  && (cd /ctx"));
        assert!(cmd.ends_with("/out/share/context-listing.txt"));

        let fin = &d.stages[1];
        assert_eq!((fin.name.as_deref(), fin.base.as_str()), (None, "${BASE}"));
        assert_eq!(
            keywords(fin),
            [
                "ARG",
                "ARG",
                "LABEL",
                "ENV",
                "RUN",
                "WORKDIR",
                "COPY",
                "COPY",
                "ADD",
                "USER",
                "RUN",
                "VOLUME",
                "EXPOSE",
                "STOPSIGNAL",
                "ENTRYPOINT",
                "CMD"
            ]
        );
        let k = |i: usize| &fin.instructions[i].kind;
        let Kind::Arg(a) = k(1) else { panic!() };
        assert_eq!(a[0].default.as_deref(), Some("\"no note\""));
        let Kind::Label(l) = k(2) else { panic!() };
        assert_eq!(l.len(), 3);
        assert_eq!(
            l[1],
            (
                "org.opencontainers.image.version".to_string(),
                "\"${VERSION}\"".to_string()
            )
        );
        let Kind::Env(e) = k(3) else { panic!() };
        let keys: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["APP_HOME", "APP_PORT", "PATH"]);
        assert_eq!(*k(5), Kind::Workdir("${APP_HOME}".into()));
        let Kind::Copy(c) = k(6) else { panic!() };
        assert_eq!(c.from.as_deref(), Some("build"));
        assert_eq!(
            (c.sources.as_slice(), c.dest.as_str()),
            (&["/out/".to_string()][..], "./")
        );
        let Kind::Copy(c) = k(7) else { panic!() };
        assert_eq!(c.chown.as_deref(), Some("1000:1000"));
        assert_eq!(*k(9), Kind::User("app".into()));
        assert_eq!(*k(11), Kind::Volume(vec!["/srv/app/data".into()]));
        assert_eq!(*k(12), Kind::Expose(vec!["8080/tcp".into()]));
        assert_eq!(*k(13), Kind::StopSignal("SIGTERM".into()));
        assert_eq!(
            *k(14),
            Kind::Entrypoint(CommandLine::Exec(vec!["/srv/app/bin/entrypoint.sh".into()]))
        );
        assert_eq!(
            *k(15),
            Kind::Cmd(CommandLine::Exec(vec![
                "serve".into(),
                "--port".into(),
                "8080".into()
            ]))
        );
        // Lines are the first line of each instruction in the file.
        assert_eq!(build.line, 6);
        assert_eq!(fin.line, 16);
        assert_eq!(fin.instructions[2].line, 19);
    }

    #[test]
    fn python_app_fixture() {
        let Some(d) = fixture("python-app") else {
            return;
        };
        assert!(d.global_args.is_empty());
        assert_eq!(d.stages.len(), 1);
        let st = &d.stages[0];
        assert_eq!(st.base, "local/python:3");
        assert_eq!(
            keywords(st),
            ["WORKDIR", "COPY", "RUN", "COPY", "ENV", "EXPOSE", "CMD"]
        );
        let Kind::Run(r) = &st.instructions[2].kind else {
            panic!()
        };
        let CommandLine::Shell(cmd) = &r.command else {
            panic!()
        };
        // Seven physical lines joined into one shell command.
        assert!(cmd.starts_with("python3 -c \"import hashlib"));
        assert!(cmd.ends_with("'stub packages into', dest)\""));
        assert!(!cmd.contains('\n'));
        let Kind::Env(e) = &st.instructions[4].kind else {
            panic!()
        };
        assert_eq!(
            *e,
            vec![
                ("APP_ENV".to_string(), "production".to_string()),
                ("PORT".to_string(), "8000".to_string()),
                ("PYTHONUNBUFFERED".to_string(), "1".to_string()),
            ]
        );
        assert_eq!(
            st.instructions[6].kind,
            Kind::Cmd(CommandLine::Exec(vec!["python3".into(), "app.py".into()]))
        );
    }

    #[test]
    fn expanding_the_model_step_by_step() {
        let d = parse(
            Path::new("Dockerfile"),
            "ARG BASE=alpine\nFROM ${BASE:-x}:3\nENV D=/srv\nWORKDIR $D/app\n",
        )
        .unwrap();
        let globals: Vec<(String, String)> = d
            .global_args
            .iter()
            .map(|a| (a.name.clone(), a.default.clone().unwrap_or_default()))
            .collect();
        assert_eq!(
            expand_word(&d.stages[0].base, &globals, d.escape).unwrap(),
            "alpine:3"
        );
        let mut env: Vec<(String, String)> = Vec::new();
        for ins in &d.stages[0].instructions {
            match &ins.kind {
                Kind::Env(pairs) => {
                    for (k, v) in pairs {
                        let v = expand_word(v, &env, d.escape).unwrap();
                        env.push((k.clone(), v));
                    }
                }
                Kind::Workdir(w) => {
                    assert_eq!(expand_word(w, &env, d.escape).unwrap(), "/srv/app")
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn parse_file_names_the_path_when_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("Dockerfile");
        let err = parse_file(&missing).unwrap_err();
        assert!(err
            .to_string()
            .starts_with(&format!("{}: cannot read", missing.display())));
    }
}
