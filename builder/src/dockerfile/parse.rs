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
fn parse_line(ctx: &Ctx, text: &str, lexer: Option<&mut Lexer>) -> Result<Parsed, DockerfileError> {
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
        // Every keyword in KEYWORDS has an arm above; this keeps a keyword
        // added there without one an error instead of a panic.
        _ => {
            return Err(DockerfileError::UnknownInstruction {
                path: ctx.path.to_path_buf(),
                line: ctx.line,
                name: upper,
                suggestion: None,
            })
        }
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
            return Err(ctx.invalid(
                instr,
                format!("a heredoc ({dest}) cannot be the destination"),
            ));
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
            Some(RawFlag { value: None, .. }) => {
                Err(self
                    .ctx
                    .bad_flag(self.instruction, name, "needs a value (--name=value)"))
            }
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

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    fn df(text: &str) -> Dockerfile {
        parse(Path::new("Dockerfile"), text).unwrap()
    }

    fn err(text: &str) -> String {
        parse(Path::new("Dockerfile"), text)
            .unwrap_err()
            .to_string()
    }

    /// The kinds of the single stage's instructions.
    fn kinds(text: &str) -> Vec<Kind> {
        let d = df(text);
        assert_eq!(d.stages.len(), 1);
        d.stages[0]
            .instructions
            .iter()
            .map(|i| i.kind.clone())
            .collect()
    }

    fn one(text: &str) -> Kind {
        let mut k = kinds(&format!("FROM scratch\n{text}"));
        assert_eq!(k.len(), 1, "{k:?}");
        k.remove(0)
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn stages_names_platform_and_global_args() {
        let d = df("# syntax=docker/dockerfile:1\nARG BASE=alpine V\n\
                    FROM --platform=$BUILDPLATFORM ${BASE} AS Build\nRUN x\n\
                    from scratch\ncopy --from=build /a /b\n");
        assert_eq!(d.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(
            d.global_args,
            vec![
                ArgDecl {
                    name: "BASE".into(),
                    default: Some("alpine".into()),
                    line: 2
                },
                ArgDecl {
                    name: "V".into(),
                    default: None,
                    line: 2
                }
            ]
        );
        assert_eq!(d.stages.len(), 2);
        let b = &d.stages[0];
        assert_eq!(
            (b.index, b.name.as_deref(), b.base.as_str(), b.line),
            (0, Some("build"), "${BASE}", 3)
        );
        assert_eq!(b.platform.as_deref(), Some("$BUILDPLATFORM"));
        assert_eq!(b.instructions.len(), 1);
        assert_eq!(b.instructions[0].line, 4);
        let f = &d.stages[1];
        assert_eq!((f.index, f.name.as_deref(), f.line), (1, None, 5));
        assert_eq!(f.instructions[0].text, "copy --from=build /a /b");
        assert_eq!(d.stage("BUILD").map(|s| s.index), Some(0));
        assert_eq!(d.stage("1").map(|s| s.index), Some(1));
    }

    #[test]
    fn from_errors() {
        assert_eq!(err("FROM\n"), "Dockerfile:1: FROM requires a base image");
        assert!(err("FROM a b\n").starts_with("Dockerfile:1: FROM: expected"));
        assert!(err("FROM a AS 1x\n").contains("invalid name for build stage: \"1x\""));
        assert!(err("FROM a AS x\nFROM b AS X\n")
            .starts_with("Dockerfile:2: duplicate build stage name \"x\" (first used on line 1)"));
        assert_eq!(
            err("FROM --plat=x a\n"),
            "Dockerfile:1: FROM: unknown flag: --plat"
        );
    }

    #[test]
    fn file_level_errors() {
        assert_eq!(
            err(""),
            "Dockerfile: no build stages (the file has no FROM instruction)"
        );
        assert!(err("# just a comment\nARG X\n").contains("no build stages"));
        assert_eq!(
            err("ARG A\nRUN x\nFROM a\n"),
            "Dockerfile:2: RUN before the first FROM (only ARG may come before it)"
        );
        assert_eq!(
            err("FROM a\n\n\n\n\n\nCOPPY . /\n"),
            "Dockerfile:7: unknown instruction: COPPY (did you mean COPY?)"
        );
        assert_eq!(
            err("FROM a\nfrobnicate x\n"),
            "Dockerfile:2: unknown instruction: FROBNICATE"
        );
    }

    #[test]
    fn run_forms_and_flags() {
        assert_eq!(
            one("RUN [\"echo\", \"a b\"]"),
            Kind::Run(Run {
                command: CommandLine::Exec(s(&["echo", "a b"])),
                network: None,
                mounts: vec![],
                security: None,
                heredocs: vec![],
            })
        );
        let Kind::Run(r) = one("RUN --mount=type=cache,target=/root/.cache --network=none \
             --mount=type=secret,id=x echo $HOME")
        else {
            panic!()
        };
        assert_eq!(r.command, CommandLine::Shell("echo $HOME".into()));
        assert_eq!(r.network.as_deref(), Some("none"));
        assert_eq!(
            r.mounts,
            s(&["type=cache,target=/root/.cache", "type=secret,id=x"])
        );
        // Not valid JSON: a shell command.
        assert_eq!(
            one("RUN [not json]"),
            Kind::Run(Run {
                command: CommandLine::Shell("[not json]".into()),
                network: None,
                mounts: vec![],
                security: None,
                heredocs: vec![],
            })
        );
        assert_eq!(
            err("FROM a\nRUN\n"),
            "Dockerfile:2: RUN requires a command to run"
        );
        assert_eq!(
            err("FROM a\nRUN --foo=1 x\n"),
            "Dockerfile:2: RUN: unknown flag: --foo"
        );
        assert!(err("FROM a\nRUN --network=a --network=b x\n").contains("given more than once"));
        assert!(err("FROM a\nRUN --network x\n").contains("flag --network: needs a value"));
    }

    #[test]
    fn cmd_entrypoint() {
        assert_eq!(
            one("CMD [\"python3\", \"app.py\"]"),
            Kind::Cmd(CommandLine::Exec(s(&["python3", "app.py"])))
        );
        assert_eq!(one("CMD []"), Kind::Cmd(CommandLine::Exec(vec![])));
        assert_eq!(
            one("ENTRYPOINT exec top -b"),
            Kind::Entrypoint(CommandLine::Shell("exec top -b".into()))
        );
        // Single quotes are not JSON: shell form, as Docker does.
        assert_eq!(
            one("ENTRYPOINT ['a', 'b']"),
            Kind::Entrypoint(CommandLine::Shell("['a', 'b']".into()))
        );
        assert_eq!(
            one("CMD [\"a\", 1]"),
            Kind::Cmd(CommandLine::Shell("[\"a\", 1]".into()))
        );
        assert!(err("FROM a\nCMD\n").starts_with("Dockerfile:2: CMD requires"));
    }

    #[test]
    fn copy_and_add() {
        let Kind::Copy(c) = one(
            "COPY --from=build --chown=1000:1000 --chmod=644 --link --parents \
             --exclude=*.tmp a b /dest/",
        ) else {
            panic!()
        };
        assert_eq!(c.sources, s(&["a", "b"]));
        assert_eq!(c.dest, "/dest/");
        assert_eq!(c.from.as_deref(), Some("build"));
        assert_eq!(c.chown.as_deref(), Some("1000:1000"));
        assert_eq!(c.chmod.as_deref(), Some("644"));
        assert!(c.link && c.parents && !c.keep_git_dir);
        assert_eq!(c.exclude, s(&["*.tmp"]));

        let Kind::Copy(c) = one("COPY [\"my file\", \"/dest dir/\"]") else {
            panic!()
        };
        assert_eq!(
            (c.sources, c.dest),
            (s(&["my file"]), "/dest dir/".to_string())
        );

        let Kind::Copy(c) = one("COPY --link=false \"$SRC\" /d") else {
            panic!()
        };
        assert!(!c.link);
        assert_eq!(c.sources, s(&["\"$SRC\""]));

        let Kind::Add(a) = one("ADD --checksum=sha256:abc --keep-git-dir=true https://x/y.tar /y")
        else {
            panic!()
        };
        assert_eq!(a.checksum.as_deref(), Some("sha256:abc"));
        assert!(a.keep_git_dir);

        assert_eq!(
            err("FROM a\nADD --from=x a b\n"),
            "Dockerfile:2: ADD: unknown flag: --from"
        );
        assert_eq!(
            err("FROM a\nCOPY --checksum=x a b\n"),
            "Dockerfile:2: COPY: unknown flag: --checksum"
        );
        assert!(
            err("FROM a\nCOPY --link=maybe a b\n").contains("flag --link: expects true or false")
        );
        assert_eq!(
            err("FROM a\nCOPY onlyone\n"),
            "Dockerfile:2: COPY requires at least two arguments: one or more sources and a destination"
        );
    }

    #[test]
    fn env_label_arg() {
        assert_eq!(
            one("ENV A=1 B=\"two words\" C=x\\ y D="),
            Kind::Env(pairs(&[
                ("A", "1"),
                ("B", "\"two words\""),
                ("C", "x\\ y"),
                ("D", "")
            ]))
        );
        assert_eq!(
            one("ENV LEGACY some value  here"),
            Kind::Env(pairs(&[("LEGACY", "some value  here")]))
        );
        assert_eq!(
            one("LABEL \"com.example.a\"=\"x y\" b=c"),
            Kind::Label(pairs(&[("\"com.example.a\"", "\"x y\""), ("b", "c")]))
        );
        assert_eq!(
            one("ARG A B=2 C=\"x y\""),
            Kind::Arg(vec![
                ArgDecl {
                    name: "A".into(),
                    default: None,
                    line: 2
                },
                ArgDecl {
                    name: "B".into(),
                    default: Some("2".into()),
                    line: 2
                },
                ArgDecl {
                    name: "C".into(),
                    default: Some("\"x y\"".into()),
                    line: 2
                },
            ])
        );
        assert!(err("FROM a\nENV A=1 B\n").contains("can't find = in \"B\""));
        assert_eq!(
            err("FROM a\nENV\n"),
            "Dockerfile:2: ENV requires at least one name=value pair"
        );
        assert!(err("FROM a\nENV ONLYKEY\n").starts_with("Dockerfile:2: ENV requires a value"));
        assert!(err("FROM a\nLABEL =x\n").contains("name can't be blank"));
        assert!(err("FROM a\nARG =x\n").contains("has no name"));
    }

    #[test]
    fn simple_instructions() {
        assert_eq!(one("WORKDIR /a b"), Kind::Workdir("/a b".into()));
        assert_eq!(one("USER app:app"), Kind::User("app:app".into()));
        assert_eq!(
            one("STOPSIGNAL SIGTERM"),
            Kind::StopSignal("SIGTERM".into())
        );
        assert_eq!(
            one("MAINTAINER me <me@x>"),
            Kind::Maintainer("me <me@x>".into())
        );
        assert_eq!(
            one("EXPOSE 80 443/tcp 53/udp"),
            Kind::Expose(s(&["80", "443/tcp", "53/udp"]))
        );
        assert_eq!(one("VOLUME /a /b"), Kind::Volume(s(&["/a", "/b"])));
        assert_eq!(one("VOLUME [\"/a b\"]"), Kind::Volume(s(&["/a b"])));
        assert_eq!(
            one("SHELL [\"/bin/bash\", \"-c\"]"),
            Kind::Shell(s(&["/bin/bash", "-c"]))
        );
        assert_eq!(
            err("FROM a\nWORKDIR\n"),
            "Dockerfile:2: WORKDIR requires exactly one argument"
        );
        assert!(err("FROM a\nEXPOSE\n").contains("EXPOSE requires at least one port"));
        assert!(err("FROM a\nVOLUME []\n").contains("VOLUME requires at least one path"));
        assert!(err("FROM a\nUSER --x=1 app\n").contains("USER: unknown flag: --x"));
    }

    #[test]
    fn shell_must_be_json() {
        assert_eq!(
            err("FROM a\nSHELL /bin/bash -c\n"),
            "Dockerfile:2: SHELL requires the arguments in JSON form, e.g. [\"/bin/sh\", \"-c\"], not \"/bin/bash -c\""
        );
        assert!(err("FROM a\nSHELL [\"bash\", \n").contains("SHELL requires the arguments in JSON"));
        assert!(err("FROM a\nSHELL []\n").contains("SHELL requires at least one argument"));
    }

    #[test]
    fn healthcheck() {
        assert_eq!(
            one("HEALTHCHECK NONE"),
            Kind::Healthcheck(Healthcheck {
                test: None,
                interval: None,
                timeout: None,
                start_period: None,
                start_interval: None,
                retries: None,
            })
        );
        assert_eq!(
            one(
                "HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=0 \
                 --start-interval=2s --retries=3 CMD curl -f http://localhost/"
            ),
            Kind::Healthcheck(Healthcheck {
                test: Some(s(&["CMD-SHELL", "curl -f http://localhost/"])),
                interval: Some(Duration::from_secs(90)),
                timeout: Some(Duration::from_millis(500)),
                start_period: Some(Duration::ZERO),
                start_interval: Some(Duration::from_secs(2)),
                retries: Some(3),
            })
        );
        let Kind::Healthcheck(h) = one("healthcheck cmd [\"/bin/check\", \"-q\"]") else {
            panic!()
        };
        assert_eq!(h.test, Some(s(&["CMD", "/bin/check", "-q"])));
        assert!(err("FROM a\nHEALTHCHECK NONE x\n").contains("NONE takes no arguments"));
        assert!(err("FROM a\nHEALTHCHECK --retries=2 NONE\n").contains("NONE takes no arguments"));
        assert!(err("FROM a\nHEALTHCHECK CMD\n").contains("requires a command after CMD"));
        assert!(err("FROM a\nHEALTHCHECK RUN x\n").contains("unknown type \"RUN\""));
        assert!(err("FROM a\nHEALTHCHECK --interval=5 CMD x\n")
            .contains("flag --interval: \"5\" is not a duration"));
        assert!(err("FROM a\nHEALTHCHECK --timeout=10ns CMD x\n").contains("at least 1ms"));
        assert!(err("FROM a\nHEALTHCHECK --retries=-1 CMD x\n")
            .contains("flag --retries: \"-1\" is not a whole number"));
    }

    #[test]
    fn onbuild() {
        let k = one("ONBUILD RUN echo hi");
        let Kind::Onbuild(inner) = k else { panic!() };
        assert_eq!(inner.line, 2);
        assert_eq!(inner.text, "RUN echo hi");
        assert_eq!(
            inner.kind,
            Kind::Run(Run {
                command: CommandLine::Shell("echo hi".into()),
                network: None,
                mounts: vec![],
                security: None,
                heredocs: vec![],
            })
        );
        assert!(!Kind::Onbuild(inner).expands_variables());
        for bad in ["ONBUILD", "FROM", "MAINTAINER"] {
            assert_eq!(
                err(&format!("FROM a\nonbuild {} x\n", bad.to_lowercase())),
                format!("Dockerfile:2: {bad} isn't allowed as an ONBUILD trigger")
            );
        }
        assert!(err("FROM a\nONBUILD\n").contains("ONBUILD requires an instruction"));
        assert!(err("FROM a\nONBUILD NOPE x\n").contains("unknown instruction: NOPE"));
    }

    #[test]
    fn heredocs() {
        let d = df("FROM a\nRUN <<EOF\necho $HOME\n  # not a comment\nEOF\n\
                    RUN python3 <<'PY' && cat <<-\"T\" > /f\nprint(1)\nPY\n\tindented\n\tT\n\
                    COPY <<one.txt <<two.txt /etc/\n1\none.txt\n2\ntwo.txt\n\
                    CMD done\n");
        let ins = &d.stages[0].instructions;
        assert_eq!(ins.len(), 4);
        assert_eq!(
            (ins[0].line, ins[1].line, ins[2].line, ins[3].line),
            (2, 6, 11, 16)
        );
        let Kind::Run(r) = &ins[0].kind else { panic!() };
        assert_eq!(r.command, CommandLine::Shell("<<EOF".into()));
        assert_eq!(
            r.heredocs,
            vec![Heredoc {
                name: "EOF".into(),
                content: "echo $HOME\n  # not a comment\n".into(),
                expand: true,
                chomp: false
            }]
        );
        assert_eq!(
            ins[1].heredocs(),
            &[
                Heredoc {
                    name: "PY".into(),
                    content: "print(1)\n".into(),
                    expand: false,
                    chomp: false
                },
                Heredoc {
                    name: "T".into(),
                    content: "indented\n".into(),
                    expand: false,
                    chomp: true
                }
            ]
        );
        let Kind::Copy(c) = &ins[2].kind else {
            panic!()
        };
        assert!(c.sources.is_empty());
        assert_eq!(c.dest, "/etc/");
        let names: Vec<_> = c.heredocs.iter().map(|h| (&*h.name, &*h.content)).collect();
        assert_eq!(names, vec![("one.txt", "1\n"), ("two.txt", "2\n")]);
        assert_eq!(ins[3].kind, Kind::Cmd(CommandLine::Shell("done".into())));
    }

    #[test]
    fn heredoc_edge_cases() {
        // Quoted, JSON form, here-strings and ONBUILD: no heredoc.
        for text in [
            "RUN echo '<<EOF'",
            "RUN [\"<<EOF\"]",
            "RUN cat <<<word",
            "ONBUILD RUN cat <<EOF",
        ] {
            let d = df(&format!("FROM a\n{text}\nCMD x\n"));
            assert_eq!(d.stages[0].instructions.len(), 2, "{text}");
            assert!(d.stages[0].instructions[0].heredocs().is_empty(), "{text}");
        }
        // Mixed heredoc and path sources.
        let Kind::Copy(c) = one("COPY <<EOF file.txt /d/\nx\nEOF") else {
            panic!()
        };
        assert_eq!(c.sources, s(&["file.txt"]));
        assert_eq!(c.heredocs.len(), 1);
        // A continued instruction's heredoc body starts after its last line.
        let Kind::Run(r) = one("RUN cat <<EOF \\\n  > /out\nbody\nEOF") else {
            panic!()
        };
        assert_eq!(r.heredocs[0].content, "body\n");
        assert_eq!(
            err("FROM a\nRUN <<EOF\nno end\n"),
            "Dockerfile:2: unterminated heredoc <<EOF"
        );
        assert!(err("FROM a\nCOPY x <<EOF\nbody\nEOF\n").contains("cannot be the destination"));
    }

    #[test]
    fn escape_directive_changes_continuation_and_words() {
        let d = df("# escape=`\nFROM mcr/windows\nRUN dir c:\\ `\n    /s\n\
                    ENV P=C:\\dir Q=a` b\n");
        assert_eq!(d.escape, '`');
        let ins = &d.stages[0].instructions;
        assert_eq!(
            ins[0].kind,
            Kind::Run(Run {
                command: CommandLine::Shell("dir c:\\     /s".into()),
                network: None,
                mounts: vec![],
                security: None,
                heredocs: vec![],
            })
        );
        assert_eq!(
            ins[1].kind,
            Kind::Env(pairs(&[("P", "C:\\dir"), ("Q", "a` b")]))
        );
    }

    #[test]
    fn instruction_text_is_the_joined_line() {
        let d = df("FROM a\nRUN a \\\n  # c\n  && b\n");
        let i = &d.stages[0].instructions[0];
        assert_eq!((i.line, i.text.as_str()), (2, "RUN a   && b"));
    }

    #[test]
    fn expands_variables_per_kind() {
        assert!(one("COPY a b").expands_variables());
        assert!(one("ENV A=1").expands_variables());
        assert!(one("WORKDIR /x").expands_variables());
        assert!(one("ARG X=$Y").expands_variables());
        assert!(!one("RUN echo $X").expands_variables());
        assert!(!one("CMD echo $X").expands_variables());
        assert!(!one("SHELL [\"sh\"]").expands_variables());
        assert!(!one("HEALTHCHECK CMD true").expands_variables());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Some(Duration::from_micros(250)));
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("5x"), None);
    }
}
