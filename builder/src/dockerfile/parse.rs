//! Logical lines to the model: keyword, flags, and each instruction's
//! argument syntax, following Docker's rules for which forms are accepted.

use std::path::Path;
use std::time::Duration;

use super::error::DockerfileError;
use super::lex::Lexer;
use super::substitute::{expand_word, split_words, NoVars};
use super::{
    ArgDecl, CommandLine, Copy, Dockerfile, Healthcheck, Heredoc, Instruction, Kind, Run, Stage,
};

const KEYWORDS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

pub(crate) fn parse_dockerfile(path: &Path, text: &str) -> Result<Dockerfile, DockerfileError> {
    let mut lexer = Lexer::new(path, text)?;
    let escape = lexer.escape;
    let mut df = Dockerfile {
        path: path.to_path_buf(),
        escape,
        syntax: lexer.syntax.clone(),
        global_args: Vec::new(),
        stages: Vec::new(),
    };
    while let Some(logical) = lexer.next_line() {
        let ctx = Ctx {
            path,
            line: logical.line,
            escape,
        };
        match parse_line(&ctx, &logical.text, Some(&mut lexer))? {
            Parsed::From {
                base,
                name,
                platform,
            } => {
                if let Some(n) = &name {
                    if let Some(first) = df.stages.iter().find(|s| s.name.as_ref() == Some(n)) {
                        return Err(DockerfileError::DuplicateStageName {
                            path: path.to_path_buf(),
                            line: ctx.line,
                            name: n.clone(),
                            first_line: first.line,
                        });
                    }
                }
                df.stages.push(Stage {
                    index: df.stages.len(),
                    name,
                    base,
                    platform,
                    line: ctx.line,
                    instructions: Vec::new(),
                });
            }
            Parsed::Instruction(ins) => match df.stages.last_mut() {
                Some(stage) => stage.instructions.push(ins),
                None => match ins.kind {
                    Kind::Arg(args) => df.global_args.extend(args),
                    other => {
                        return Err(DockerfileError::BeforeFrom {
                            path: path.to_path_buf(),
                            line: ctx.line,
                            instruction: other.keyword(),
                        })
                    }
                },
            },
        }
    }
    if df.stages.is_empty() {
        return Err(DockerfileError::NoStages {
            path: path.to_path_buf(),
        });
    }
    tracing::debug!(path = %path.display(), stages = df.stages.len(), "parsed Dockerfile");
    Ok(df)
}

enum Parsed {
    From {
        base: String,
        name: Option<String>,
        platform: Option<String>,
    },
    Instruction(Instruction),
}

struct Ctx<'a> {
    path: &'a Path,
    line: usize,
    escape: char,
}

impl Ctx<'_> {
    fn missing(&self, instruction: &'static str, expected: &'static str) -> DockerfileError {
        DockerfileError::MissingArguments {
            path: self.path.to_path_buf(),
            line: self.line,
            instruction,
            expected,
        }
    }

    fn invalid(&self, instruction: &'static str, message: String) -> DockerfileError {
        DockerfileError::InvalidArguments {
            path: self.path.to_path_buf(),
            line: self.line,
            instruction,
            message,
        }
    }

    fn bad_flag(&self, instruction: &'static str, flag: &str, message: &str) -> DockerfileError {
        DockerfileError::BadFlag {
            path: self.path.to_path_buf(),
            line: self.line,
            instruction,
            flag: flag.to_string(),
            message: message.to_string(),
        }
    }
}

/// One instruction. Heredoc bodies are read from `lexer`; ONBUILD's
/// trigger is parsed without one, since Docker reads no heredocs there.
fn parse_line(
    ctx: &Ctx,
    text: &str,
    lexer: Option<&mut Lexer>,
) -> Result<Parsed, DockerfileError> {
    let text = text.trim();
    let (word, rest) = split_first_word(text);
    let upper = word.to_ascii_uppercase();
    let Some(instr) = KEYWORDS.iter().copied().find(|k| *k == upper) else {
        return Err(DockerfileError::UnknownInstruction {
            path: ctx.path.to_path_buf(),
            line: ctx.line,
            suggestion: suggest(&upper),
            name: upper,
        });
    };
    let (raw_flags, rest) = extract_flags(rest, ctx.escape);
    let mut flags = Flags {
        ctx,
        instruction: instr,
        flags: raw_flags,
    };
    let kind = match instr {
        "FROM" => {
            let platform = flags.string("platform")?;
            flags.finish()?;
            let (base, name) = parse_from(ctx, rest)?;
            return Ok(Parsed::From {
                base,
                name,
                platform,
            });
        }
        "RUN" => {
            let network = flags.string("network")?;
            let mounts = flags.strings("mount")?;
            let security = flags.string("security")?;
            flags.finish()?;
            if rest.is_empty() {
                return Err(ctx.missing(instr, "a command to run"));
            }
            let (command, heredocs) = match json_array(rest) {
                Some(args) => (CommandLine::Exec(args), Vec::new()),
                None => (
                    CommandLine::Shell(rest.to_string()),
                    read_heredocs(ctx, rest, lexer)?,
                ),
            };
            Kind::Run(Run {
                command,
                network,
                mounts,
                security,
                heredocs,
            })
        }
        "CMD" | "ENTRYPOINT" => {
            flags.finish()?;
            if rest.is_empty() {
                return Err(ctx.missing(instr, "a command (or [] for none)"));
            }
            let command = match json_array(rest) {
                Some(args) => CommandLine::Exec(args),
                // An invalid JSON array is a shell command, as in Docker.
                None => CommandLine::Shell(rest.to_string()),
            };
            if instr == "CMD" {
                Kind::Cmd(command)
            } else {
                Kind::Entrypoint(command)
            }
        }
        "COPY" | "ADD" => {
            let copy = parse_copy(ctx, instr, &mut flags, rest, lexer)?;
            if instr == "COPY" {
                Kind::Copy(copy)
            } else {
                Kind::Add(copy)
            }
        }
        "WORKDIR" | "USER" | "STOPSIGNAL" | "MAINTAINER" => {
            flags.finish()?;
            if rest.is_empty() {
                return Err(ctx.missing(instr, "exactly one argument"));
            }
            let value = rest.to_string();
            match instr {
                "WORKDIR" => Kind::Workdir(value),
                "USER" => Kind::User(value),
                "STOPSIGNAL" => Kind::StopSignal(value),
                _ => Kind::Maintainer(value),
            }
        }
        "ENV" | "LABEL" => {
            flags.finish()?;
            let pairs = parse_pairs(ctx, instr, rest)?;
            if instr == "ENV" {
                Kind::Env(pairs)
            } else {
                Kind::Label(pairs)
            }
        }
        "ARG" => {
            flags.finish()?;
            let words = split_words(rest, ctx.escape);
            if words.is_empty() {
                return Err(ctx.missing(instr, "at least one NAME or NAME=default"));
            }
            let mut decls = Vec::new();
            for word in words {
                let (name, default) = match word.split_once('=') {
                    Some((n, d)) => (n.to_string(), Some(d.to_string())),
                    None => (word.clone(), None),
                };
                if name.is_empty() {
                    return Err(ctx.invalid(instr, format!("{word:?} has no name before =")));
                }
                decls.push(ArgDecl {
                    name,
                    default,
                    line: ctx.line,
                });
            }
            Kind::Arg(decls)
        }
        "EXPOSE" => {
            flags.finish()?;
            let ports: Vec<String> = rest.split_whitespace().map(String::from).collect();
            if ports.is_empty() {
                return Err(ctx.missing(instr, "at least one port"));
            }
            Kind::Expose(ports)
        }
        "VOLUME" => {
            flags.finish()?;
            let vols = json_array(rest)
                .unwrap_or_else(|| rest.split_whitespace().map(String::from).collect());
            if vols.is_empty() {
                return Err(ctx.missing(instr, "at least one path"));
            }
            Kind::Volume(vols)
        }
        "SHELL" => {
            flags.finish()?;
            let Some(shell) = json_array(rest) else {
                return Err(DockerfileError::ShellNotJson {
                    path: ctx.path.to_path_buf(),
                    line: ctx.line,
                    input: rest.to_string(),
                });
            };
            if shell.is_empty() {
                return Err(ctx.missing(instr, "at least one argument, e.g. [\"/bin/sh\", \"-c\"]"));
            }
            Kind::Shell(shell)
        }
        "HEALTHCHECK" => Kind::Healthcheck(parse_healthcheck(ctx, &mut flags, rest)?),
        "ONBUILD" => {
            flags.finish()?;
            if rest.is_empty() {
                return Err(ctx.missing(instr, "an instruction to trigger"));
            }
            let inner = split_first_word(rest).0.to_ascii_uppercase();
            if matches!(inner.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                return Err(DockerfileError::OnbuildForbidden {
                    path: ctx.path.to_path_buf(),
                    line: ctx.line,
                    instruction: inner,
                });
            }
            match parse_line(ctx, rest, None)? {
                Parsed::Instruction(ins) => Kind::Onbuild(Box::new(ins)),
                // FROM was rejected above.
                Parsed::From { .. } => {
                    return Err(DockerfileError::OnbuildForbidden {
                        path: ctx.path.to_path_buf(),
                        line: ctx.line,
                        instruction: "FROM".to_string(),
                    })
                }
            }
        }
        _ => unreachable!("every keyword in KEYWORDS has an arm"),
    };
    Ok(Parsed::Instruction(Instruction {
        line: ctx.line,
        text: text.to_string(),
        kind,
    }))
}

fn parse_from(ctx: &Ctx, rest: &str) -> Result<(String, Option<String>), DockerfileError> {
    let words: Vec<&str> = rest.split_whitespace().collect();
    let (base, name) = match words.as_slice() {
        [] => return Err(ctx.missing("FROM", "a base image")),
        [base] => (*base, None),
        [base, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
            (*base, Some(name.to_ascii_lowercase()))
        }
        _ => {
            return Err(ctx.invalid(
                "FROM",
                format!("expected `FROM [--platform=<p>] <image> [AS <name>]`, got {rest:?}"),
            ))
        }
    };
    if let Some(n) = &name {
        let mut chars = n.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
        if !valid {
            return Err(DockerfileError::InvalidStageName {
                path: ctx.path.to_path_buf(),
                line: ctx.line,
                name: n.clone(),
            });
        }
    }
    Ok((base.to_string(), name))
}

fn parse_copy(
    ctx: &Ctx,
    instr: &'static str,
    flags: &mut Flags,
    rest: &str,
    lexer: Option<&mut Lexer>,
) -> Result<Copy, DockerfileError> {
    let is_copy = instr == "COPY";
    let from = if is_copy { flags.string("from")? } else { None };
    let chown = flags.string("chown")?;
    let chmod = flags.string("chmod")?;
    let link = flags.bool("link")?;
    let parents = is_copy && flags.bool("parents")?;
    let exclude = flags.strings("exclude")?;
    let checksum = if is_copy {
        None
    } else {
        flags.string("checksum")?
    };
    let keep_git_dir = !is_copy && flags.bool("keep-git-dir")?;
    flags.finish()?;

    let (mut args, heredocs) = match json_array(rest) {
        Some(args) => (args, Vec::new()),
        None => {
            // Docker splits the plain form on whitespace only; quotes are
            // removed later, by the expansion.
            let args: Vec<String> = rest.split_whitespace().map(String::from).collect();
            let heredocs = read_heredocs(ctx, rest, lexer)?;
            (args, heredocs)
        }
    };
    if args.len() < 2 {
        return Err(ctx.missing(
            instr,
            "at least two arguments: one or more sources and a destination",
        ));
    }
    let dest = args.pop().unwrap_or_default();
    if !heredocs.is_empty() {
        if heredoc_marker(&dest).is_some() {
            return Err(ctx.invalid(instr, format!("a heredoc ({dest}) cannot be the destination")));
        }
        args.retain(|a| heredoc_marker(a).is_none());
    }
    Ok(Copy {
        sources: args,
        dest,
        from,
        chown,
        chmod,
        link,
        parents,
        exclude,
        checksum,
        keep_git_dir,
        heredocs,
    })
}

/// `K=V K2="v 2"`, or the legacy one-pair form `K the rest of the line`.
fn parse_pairs(
    ctx: &Ctx,
    instr: &'static str,
    rest: &str,
) -> Result<Vec<(String, String)>, DockerfileError> {
    let words = split_words(rest, ctx.escape);
    let Some(first) = words.first() else {
        return Err(ctx.missing(instr, "at least one name=value pair"));
    };
    if !first.contains('=') {
        let (key, value) = split_first_word(rest);
        if value.is_empty() {
            return Err(ctx.missing(instr, "a value: `NAME=value` (or the legacy `NAME value`)"));
        }
        return Ok(vec![(key.to_string(), value.to_string())]);
    }
    let mut pairs = Vec::new();
    for word in &words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(ctx.invalid(
                instr,
                format!("can't find = in {word:?}; each argument must be of the form name=value"),
            ));
        };
        if key.is_empty() {
            return Err(ctx.invalid(instr, format!("{word:?}: the name can't be blank")));
        }
        pairs.push((key.to_string(), value.to_string()));
    }
    Ok(pairs)
}

fn parse_healthcheck(
    ctx: &Ctx,
    flags: &mut Flags,
    rest: &str,
) -> Result<Healthcheck, DockerfileError> {
    let interval = flags.duration("interval")?;
    let timeout = flags.duration("timeout")?;
    let start_period = flags.duration("start-period")?;
    let start_interval = flags.duration("start-interval")?;
    let retries = match flags.string("retries")? {
        None => None,
        Some(r) => Some(r.parse::<u32>().map_err(|_| {
            ctx.bad_flag(
                "HEALTHCHECK",
                "retries",
                &format!("{r:?} is not a whole number >= 0"),
            )
        })?),
    };
    flags.finish()?;
    let (kind, command) = split_first_word(rest);
    let test = match kind.to_ascii_uppercase().as_str() {
        "" => return Err(ctx.missing("HEALTHCHECK", "NONE or CMD <command>")),
        "NONE" => {
            let any_flag = interval.is_some()
                || timeout.is_some()
                || start_period.is_some()
                || start_interval.is_some()
                || retries.is_some();
            if !command.is_empty() || any_flag {
                return Err(ctx.invalid("HEALTHCHECK", "NONE takes no arguments".to_string()));
            }
            None
        }
        "CMD" => {
            if command.is_empty() {
                return Err(ctx.missing("HEALTHCHECK", "a command after CMD"));
            }
            Some(match json_array(command) {
                Some(args) => std::iter::once("CMD".to_string()).chain(args).collect(),
                None => vec!["CMD-SHELL".to_string(), command.to_string()],
            })
        }
        _ => {
            return Err(ctx.invalid(
                "HEALTHCHECK",
                format!("unknown type {kind:?} (expected CMD or NONE)"),
            ))
        }
    };
    Ok(Healthcheck {
        test,
        interval,
        timeout,
        start_period,
        start_interval,
        retries,
    })
}

struct HeredocMarker {
    name: String,
    expand: bool,
    chomp: bool,
}

/// `<<EOF`, `<<-EOF`, `<<"EOF"`, `<<'EOF'`, with an optional fd number in
/// front, as one raw word.
fn heredoc_marker(word: &str) -> Option<HeredocMarker> {
    let rest = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = rest.strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    // Docker always lexes heredoc delimiters with `\` as the escape.
    let name = expand_word(rest, &NoVars, '\\').ok()?;
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    // Quote removal took some quotes away: the delimiter was quoted.
    let expand = quotes(rest) == quotes(&name);
    Some(HeredocMarker {
        name,
        expand,
        chomp,
    })
}

fn read_heredocs(
    ctx: &Ctx,
    args: &str,
    lexer: Option<&mut Lexer>,
) -> Result<Vec<Heredoc>, DockerfileError> {
    let Some(lexer) = lexer else {
        return Ok(Vec::new());
    };
    if !args.contains("<<") {
        return Ok(Vec::new());
    }
    let mut docs = Vec::new();
    for word in split_words(args, '\\') {
        if let Some(m) = heredoc_marker(&word) {
            let content = lexer.heredoc_body(&m.name, m.chomp, ctx.line)?;
            docs.push(Heredoc {
                name: m.name,
                content,
                expand: m.expand,
                chomp: m.chomp,
            });
        }
    }
    Ok(docs)
}

struct RawFlag {
    name: String,
    value: Option<String>,
}

/// Leading `--name[=value]` words; values stay as written.
fn extract_flags(rest: &str, escape: char) -> (Vec<RawFlag>, &str) {
    let mut flags = Vec::new();
    let mut rest = rest.trim_start();
    while rest.starts_with("--") {
        let end = raw_word_end(rest, escape);
        let word = &rest[..end];
        rest = rest[end..].trim_start();
        if word == "--" {
            break;
        }
        let body = &word[2..];
        flags.push(match body.split_once('=') {
            Some((n, v)) => RawFlag {
                name: n.to_string(),
                value: Some(v.to_string()),
            },
            None => RawFlag {
                name: body.to_string(),
                value: None,
            },
        });
    }
    (flags, rest)
}

/// Byte offset of the first whitespace outside quotes and escapes.
fn raw_word_end(s: &str, escape: char) -> usize {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match quote {
            Some(q) if c == q => quote = None,
            Some(q) if c == escape && q != '\'' => escaped = true,
            Some(_) => {}
            None if c.is_whitespace() => return i,
            None if c == escape => escaped = true,
            None if c == '"' || c == '\'' => quote = Some(c),
            None => {}
        }
    }
    s.len()
}

struct Flags<'c> {
    ctx: &'c Ctx<'c>,
    instruction: &'static str,
    flags: Vec<RawFlag>,
}

impl Flags<'_> {
    fn take(&mut self, name: &str) -> Vec<RawFlag> {
        let (taken, kept) = std::mem::take(&mut self.flags)
            .into_iter()
            .partition(|f| f.name == name);
        self.flags = kept;
        taken
    }

    fn single(&mut self, name: &str) -> Result<Option<RawFlag>, DockerfileError> {
        let mut taken = self.take(name);
        if taken.len() > 1 {
            return Err(self
                .ctx
                .bad_flag(self.instruction, name, "given more than once"));
        }
        Ok(taken.pop())
    }

    fn string(&mut self, name: &str) -> Result<Option<String>, DockerfileError> {
        match self.single(name)? {
            None => Ok(None),
            Some(RawFlag { value: Some(v), .. }) => Ok(Some(v)),
            Some(RawFlag { value: None, .. }) => Err(self.ctx.bad_flag(
                self.instruction,
                name,
                "needs a value (--name=value)",
            )),
        }
    }

    fn strings(&mut self, name: &str) -> Result<Vec<String>, DockerfileError> {
        self.take(name)
            .into_iter()
            .map(|f| {
                f.value.ok_or_else(|| {
                    self.ctx
                        .bad_flag(self.instruction, name, "needs a value (--name=value)")
                })
            })
            .collect()
    }

    fn bool(&mut self, name: &str) -> Result<bool, DockerfileError> {
        match self.single(name)? {
            None => Ok(false),
            Some(RawFlag { value: None, .. }) => Ok(true),
            Some(RawFlag { value: Some(v), .. }) => match v.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(self.ctx.bad_flag(
                    self.instruction,
                    name,
                    &format!("expects true or false, not {v:?}"),
                )),
            },
        }
    }

    fn duration(&mut self, name: &str) -> Result<Option<Duration>, DockerfileError> {
        let Some(text) = self.string(name)? else {
            return Ok(None);
        };
        let d = parse_duration(&text).ok_or_else(|| {
            self.ctx.bad_flag(
                self.instruction,
                name,
                &format!("{text:?} is not a duration like 30s, 1m30s or 500ms"),
            )
        })?;
        // Docker: zero means "use the default"; anything else at least 1ms.
        if !d.is_zero() && d < Duration::from_millis(1) {
            return Err(self
                .ctx
                .bad_flag(self.instruction, name, "must be 0 or at least 1ms"));
        }
        Ok(Some(d))
    }

    fn finish(&mut self) -> Result<(), DockerfileError> {
        match std::mem::take(&mut self.flags).into_iter().next() {
            None => Ok(()),
            Some(f) => Err(DockerfileError::UnknownFlag {
                path: self.ctx.path.to_path_buf(),
                line: self.ctx.line,
                instruction: self.instruction,
                flag: f.name,
            }),
        }
    }
}

/// Go's duration syntax (`1h2m3.5s`, `250ms`, `0`), which Docker uses.
fn parse_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1e0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * nanos_per;
    }
    Some(Duration::from_nanos(total.round() as u64))
}

fn json_array(s: &str) -> Option<Vec<String>> {
    let t = s.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str(t).ok()
}

fn split_first_word(s: &str) -> (&str, &str) {
    let s = s.trim();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

/// The closest keyword within two edits, for "did you mean".
fn suggest(word: &str) -> Option<String> {
    KEYWORDS
        .iter()
        .map(|k| (edit_distance(word, k), k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
