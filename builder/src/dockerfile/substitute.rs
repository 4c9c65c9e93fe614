//! Docker's shell-word rules for the instructions that expand variables:
//! quote removal, the escape character, `$VAR` / `${VAR}` and the
//! `${VAR<op>word}` forms. The parser keeps values as written; the builder
//! calls these with the ENV/ARG values in force at each step.

use std::collections::{BTreeMap, HashMap};

use thiserror::Error;

/// Where variable values come from while expanding.
pub trait Vars {
    fn get(&self, name: &str) -> Option<String>;
}

impl Vars for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

impl Vars for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        BTreeMap::get(self, name).cloned()
    }
}

/// Ordered `KEY=value` pairs where a later entry wins, as ENV/ARG accumulate.
impl Vars for [(String, String)] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

impl Vars for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<String> {
        Vars::get(self.as_slice(), name)
    }
}

impl<F> Vars for F
where
    F: Fn(&str) -> Option<String>,
{
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// No variables at all (everything unset).
pub struct NoVars;

impl Vars for NoVars {
    fn get(&self, _name: &str) -> Option<String> {
        None
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SubstError {
    /// `${VAR:?message}` / `${VAR?message}` with VAR unset (or empty for `:?`).
    #[error("{name}: {message}")]
    Required { name: String, message: String },
    #[error("unterminated {what} in {input:?}")]
    Unterminated { what: &'static str, input: String },
    #[error("bad substitution {found:?} in {input:?}")]
    BadSubstitution { found: String, input: String },
}

/// Quote removal and expansion of one word (whitespace is kept as is).
pub fn expand_word(word: &str, vars: &dyn Vars, escape: char) -> Result<String, SubstError> {
    let mut ex = Expander::new(word, vars, escape, Mode::Word);
    let (out, _) = ex.scan(&[])?;
    Ok(out)
}

/// Splits on unquoted, unescaped whitespace of the text as written, then
/// expands each word. Values of variables are not split again (Docker splits
/// an instruction's arguments before expanding them).
pub fn expand_words(text: &str, vars: &dyn Vars, escape: char) -> Result<Vec<String>, SubstError> {
    split_words(text, escape)
        .iter()
        .map(|w| expand_word(w, vars, escape))
        .collect()
}

/// Expands a heredoc body whose delimiter was not quoted. As in a shell
/// heredoc, quotes are ordinary characters here; the escape character only
/// protects `$` and itself.
pub fn expand_heredoc(content: &str, vars: &dyn Vars, escape: char) -> Result<String, SubstError> {
    let mut ex = Expander::new(content, vars, escape, Mode::Heredoc);
    let (out, _) = ex.scan(&[])?;
    Ok(out)
}

/// Splits on whitespace outside quotes, keeping quotes and escapes in the
/// words (the raw form the model stores). An escape at the very end is
/// dropped, as Docker does.
pub fn split_words(text: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A quoted empty string is still a word.
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                if c == escape && q != '\'' {
                    word.push(c);
                    if let Some(n) = chars.next() {
                        word.push(n);
                    }
                    continue;
                }
                word.push(c);
                if c == q {
                    quote = None;
                }
            }
            None => {
                if c.is_whitespace() {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                    continue;
                }
                in_word = true;
                if c == escape {
                    if let Some(n) = chars.next() {
                        word.push(c);
                        word.push(n);
                    }
                    continue;
                }
                if c == '\'' || c == '"' {
                    quote = Some(c);
                }
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Quotes are syntax and are removed.
    Word,
    /// Quotes are literal text.
    Heredoc,
}

struct Expander<'a> {
    input: &'a str,
    chars: Vec<char>,
    pos: usize,
    vars: &'a dyn Vars,
    escape: char,
    mode: Mode,
}

impl<'a> Expander<'a> {
    fn new(input: &'a str, vars: &'a dyn Vars, escape: char, mode: Mode) -> Self {
        Expander {
            input,
            chars: input.chars().collect(),
            pos: 0,
            vars,
            escape,
            mode,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Reads an unquoted stretch until one of `stops` (consumed and
    /// returned) or the end (returned as None).
    fn scan(&mut self, stops: &[char]) -> Result<(String, Option<char>), SubstError> {
        let mut out = String::new();
        while let Some(c) = self.next() {
            if stops.contains(&c) {
                return Ok((out, Some(c)));
            }
            if c == self.escape {
                match self.mode {
                    Mode::Word => {
                        if let Some(n) = self.next() {
                            out.push(n);
                        }
                    }
                    Mode::Heredoc => match self.peek() {
                        Some(n) if n == '$' || n == self.escape => {
                            self.pos += 1;
                            out.push(n);
                        }
                        _ => out.push(c),
                    },
                }
                continue;
            }
            match c {
                '$' => out.push_str(&self.dollar()?),
                '\'' if self.mode == Mode::Word => out.push_str(&self.single_quoted()?),
                '"' if self.mode == Mode::Word => out.push_str(&self.double_quoted()?),
                _ => out.push(c),
            }
        }
        Ok((out, None))
    }

    fn single_quoted(&mut self) -> Result<String, SubstError> {
        let mut out = String::new();
        loop {
            match self.next() {
                Some('\'') => return Ok(out),
                Some(c) => out.push(c),
                None => return Err(self.unterminated("single quote")),
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, SubstError> {
        let mut out = String::new();
        loop {
            match self.next() {
                Some('"') => return Ok(out),
                Some('$') => out.push_str(&self.dollar()?),
                Some(c) if c == self.escape => match self.peek() {
                    // Inside double quotes only these lose their escape;
                    // any other escaped character keeps it.
                    Some(n) if n == '"' || n == '$' || n == self.escape => {
                        self.pos += 1;
                        out.push(n);
                    }
                    Some(_) => out.push(c),
                    None => return Err(self.unterminated("double quote")),
                },
                Some(c) => out.push(c),
                None => return Err(self.unterminated("double quote")),
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        // Positional parameters are digits only ($1 is "1", never "1abc").
        if self.peek().is_some_and(|c| c.is_ascii_digit()) {
            while let Some(c) = self.peek().filter(|c| c.is_ascii_digit()) {
                name.push(c);
                self.pos += 1;
            }
            return name;
        }
        while let Some(c) = self.peek().filter(|c| c.is_alphanumeric() || *c == '_') {
            name.push(c);
            self.pos += 1;
        }
        name
    }

    /// After a `$`: a name, a `${...}` form, or a literal `$`.
    fn dollar(&mut self) -> Result<String, SubstError> {
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(self.vars.get(&name).unwrap_or_default());
        }
        self.pos += 1;
        let start = self.pos;
        let name = self.name();
        if name.is_empty() {
            return Err(self.bad(start));
        }
        let value = self.vars.get(&name);
        let op = match self.next() {
            Some('}') => return Ok(value.unwrap_or_default()),
            Some(c) => c,
            None => return Err(self.unterminated("${")),
        };
        match op {
            ':' => {
                let op2 = self.next();
                match op2 {
                    Some(o @ ('-' | '+' | '?')) => {
                        let word = self.brace_word()?;
                        let set = value.as_deref().is_some_and(|v| !v.is_empty());
                        Ok(apply_test(o, &name, value, set, word)?)
                    }
                    Some(_) => Err(self.bad(start)),
                    None => Err(self.unterminated("${")),
                }
            }
            '-' | '+' | '?' => {
                let word = self.brace_word()?;
                let set = value.is_some();
                Ok(apply_test(op, &name, value, set, word)?)
            }
            '#' | '%' => {
                let longest = self.peek() == Some(op);
                if longest {
                    self.pos += 1;
                }
                let pattern = self.brace_word()?;
                let value = value.unwrap_or_default();
                Ok(strip_pattern(&value, &pattern, op == '#', longest))
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.pos += 1;
                }
                let (pattern, stop) = self.scan(&['/', '}'])?;
                let replacement = match stop {
                    Some('/') => self.brace_word()?,
                    Some(_) => String::new(),
                    None => return Err(self.unterminated("${")),
                };
                let value = value.unwrap_or_default();
                Ok(replace_pattern(&value, &pattern, &replacement, all))
            }
            _ => Err(self.bad(start)),
        }
    }

    fn brace_word(&mut self) -> Result<String, SubstError> {
        match self.scan(&['}'])? {
            (word, Some(_)) => Ok(word),
            (_, None) => Err(self.unterminated("${")),
        }
    }

    fn unterminated(&self, what: &'static str) -> SubstError {
        SubstError::Unterminated {
            what,
            input: self.input.to_string(),
        }
    }

    fn bad(&self, start: usize) -> SubstError {
        let end = (self.pos + 1).min(self.chars.len());
        let found: String = self.chars[start.saturating_sub(2)..end].iter().collect();
        SubstError::BadSubstitution {
            found,
            input: self.input.to_string(),
        }
    }
}

fn apply_test(
    op: char,
    name: &str,
    value: Option<String>,
    set: bool,
    word: String,
) -> Result<String, SubstError> {
    match op {
        '-' => Ok(if set { value.unwrap_or_default() } else { word }),
        '+' => Ok(if set { word } else { String::new() }),
        _ => {
            if set {
                Ok(value.unwrap_or_default())
            } else {
                let message = if word.is_empty() {
                    "is not allowed to be unset".to_string()
                } else {
                    word
                };
                Err(SubstError::Required {
                    name: name.to_string(),
                    message,
                })
            }
        }
    }
}

/// `${V#p}`, `${V##p}` (prefix) and `${V%p}`, `${V%%p}` (suffix).
fn strip_pattern(value: &str, pattern: &str, prefix: bool, longest: bool) -> String {
    let v: Vec<char> = value.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    let n = v.len();
    let cuts: Box<dyn Iterator<Item = usize>> = match (prefix, longest) {
        (true, false) => Box::new(0..=n),
        (true, true) => Box::new((0..=n).rev()),
        (false, false) => Box::new((0..=n).rev()),
        (false, true) => Box::new(0..=n),
    };
    for cut in cuts {
        let (matched, rest) = if prefix {
            (&v[..cut], &v[cut..])
        } else {
            (&v[cut..], &v[..cut])
        };
        if glob_match(&p, matched) {
            return rest.iter().collect();
        }
    }
    value.to_string()
}

/// `${V/p/r}` (first, longest match) and `${V//p/r}` (every match).
fn replace_pattern(value: &str, pattern: &str, replacement: &str, all: bool) -> String {
    let v: Vec<char> = value.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    if p.is_empty() {
        return value.to_string();
    }
    let mut out = String::new();
    let mut i = 0;
    let mut replaced = false;
    while i < v.len() {
        if !replaced || all {
            if let Some(end) = (i + 1..=v.len()).rev().find(|&e| glob_match(&p, &v[i..e])) {
                out.push_str(replacement);
                i = end;
                replaced = true;
                continue;
            }
        }
        out.push(v[i]);
        i += 1;
    }
    out
}

/// Shell pattern matching with `*` and `?`; `\` makes the next character literal.
fn glob_match(p: &[char], s: &[char]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some('*') => (0..=s.len()).any(|i| glob_match(&p[1..], &s[i..])),
        Some('?') => !s.is_empty() && glob_match(&p[1..], &s[1..]),
        Some('\\') if p.len() > 1 => s.first() == Some(&p[1]) && glob_match(&p[2..], &s[1..]),
        Some(c) => s.first() == Some(c) && glob_match(&p[1..], &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> HashMap<String, String> {
        [
            ("FOO", "/bar"),
            ("EMPTY", ""),
            ("SP", "a b"),
            ("FILE", "archive.tar.gz"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn ex(w: &str) -> String {
        expand_word(w, &vars(), '\\').unwrap()
    }

    #[test]
    fn plain_and_braced_names() {
        assert_eq!(ex("$FOO"), "/bar");
        assert_eq!(ex("${FOO}_x"), "/bar_x");
        assert_eq!(ex("$FOO_x"), "");
        assert_eq!(ex("x$FOO/y"), "x/bar/y");
        assert_eq!(ex("$UNSET"), "");
        assert_eq!(ex("${UNSET}"), "");
        assert_eq!(ex("a$"), "a$");
        assert_eq!(ex("$/x"), "$/x");
        assert_eq!(ex("$1abc"), "abc");
    }

    #[test]
    fn colon_modifiers_treat_empty_as_unset() {
        assert_eq!(ex("${UNSET:-def}"), "def");
        assert_eq!(ex("${EMPTY:-def}"), "def");
        assert_eq!(ex("${FOO:-def}"), "/bar");
        assert_eq!(ex("${FOO:+alt}"), "alt");
        assert_eq!(ex("${EMPTY:+alt}"), "");
        assert_eq!(ex("${UNSET:+alt}"), "");
        assert_eq!(ex("${UNSET:-$FOO/x}"), "/bar/x");
        assert_eq!(ex("${UNSET:-${EMPTY:-deep}}"), "deep");
    }

    #[test]
    fn plain_modifiers_only_test_set() {
        assert_eq!(ex("${EMPTY-def}"), "");
        assert_eq!(ex("${UNSET-def}"), "def");
        assert_eq!(ex("${EMPTY+alt}"), "alt");
        assert_eq!(ex("${UNSET+alt}"), "");
        assert_eq!(ex("${EMPTY?x}"), "");
    }

    #[test]
    fn required_variable_names_it() {
        let err = expand_word("${UNSET:?must be given}", &vars(), '\\').unwrap_err();
        assert_eq!(
            err,
            SubstError::Required {
                name: "UNSET".into(),
                message: "must be given".into()
            }
        );
        assert_eq!(err.to_string(), "UNSET: must be given");
        let err = expand_word("${EMPTY:?}", &vars(), '\\').unwrap_err();
        assert!(err.to_string().starts_with("EMPTY: "), "{err}");
        assert!(expand_word("${UNSET?}", &vars(), '\\').is_err());
        assert_eq!(ex("${FOO:?x}"), "/bar");
    }

    #[test]
    fn patterns() {
        assert_eq!(ex("${FILE#*.}"), "tar.gz");
        assert_eq!(ex("${FILE##*.}"), "gz");
        assert_eq!(ex("${FILE%.*}"), "archive.tar");
        assert_eq!(ex("${FILE%%.*}"), "archive");
        assert_eq!(ex("${FILE/a/A}"), "Archive.tar.gz");
        assert_eq!(ex("${FILE//a/A}"), "Archive.tAr.gz");
        assert_eq!(ex("${FILE/.tar}"), "archive.gz");
        assert_eq!(ex("${FILE#nomatch}"), "archive.tar.gz");
    }

    #[test]
    fn quotes_are_removed_single_quotes_do_not_expand() {
        assert_eq!(ex("'$FOO'"), "$FOO");
        assert_eq!(ex("\"$FOO\""), "/bar");
        assert_eq!(ex("\"a  b\""), "a  b");
        assert_eq!(ex("x'y'\"z\""), "xyz");
        assert_eq!(ex("\"it's\""), "it's");
        assert_eq!(ex("'say \"hi\"'"), "say \"hi\"");
        assert_eq!(ex("\"${UNSET:-a b}\""), "a b");
    }

    #[test]
    fn escapes() {
        assert_eq!(ex("\\$FOO"), "$FOO");
        assert_eq!(ex("\\${FOO}"), "${FOO}");
        assert_eq!(ex("a\\ b"), "a b");
        assert_eq!(ex("\\\\"), "\\");
        assert_eq!(ex("\\'x"), "'x");
        // Inside double quotes only " $ and the escape itself are escapable.
        assert_eq!(ex("\"\\$FOO\""), "$FOO");
        assert_eq!(ex("\"\\\"\""), "\"");
        assert_eq!(ex("\"a\\nb\""), "a\\nb");
        // No escapes inside single quotes.
        assert_eq!(ex("'a\\'"), "a\\");
    }

    #[test]
    fn backtick_escape() {
        let v = vars();
        assert_eq!(expand_word("`$FOO", &v, '`').unwrap(), "$FOO");
        assert_eq!(expand_word("C:\\$FOO", &v, '`').unwrap(), "C:\\/bar");
        assert_eq!(expand_word("\"`\"q\"", &v, '`').unwrap(), "\"q");
        assert_eq!(expand_word("``", &v, '`').unwrap(), "`");
    }

    #[test]
    fn errors_on_malformed_input() {
        let v = vars();
        assert!(matches!(
            expand_word("'abc", &v, '\\'),
            Err(SubstError::Unterminated {
                what: "single quote",
                ..
            })
        ));
        assert!(matches!(
            expand_word("\"abc", &v, '\\'),
            Err(SubstError::Unterminated {
                what: "double quote",
                ..
            })
        ));
        assert!(matches!(
            expand_word("${FOO", &v, '\\'),
            Err(SubstError::Unterminated { .. })
        ));
        assert!(matches!(
            expand_word("${}", &v, '\\'),
            Err(SubstError::BadSubstitution { .. })
        ));
        assert!(matches!(
            expand_word("${FOO:=x}", &v, '\\'),
            Err(SubstError::BadSubstitution { .. })
        ));
    }

    #[test]
    fn words_split_on_unquoted_whitespace_only() {
        let v = vars();
        assert_eq!(
            expand_words("a \"b c\" $SP 'd e' f\\ g", &v, '\\').unwrap(),
            vec!["a", "b c", "a b", "d e", "f g"]
        );
        assert_eq!(expand_words("  ", &v, '\\').unwrap(), Vec::<String>::new());
        assert_eq!(expand_words("\"\"", &v, '\\').unwrap(), vec![""]);
    }

    #[test]
    fn split_words_keeps_quotes_and_escapes() {
        assert_eq!(
            split_words("k=\"v 1\" k2='a b' k3=x\\ y", '\\'),
            vec!["k=\"v 1\"", "k2='a b'", "k3=x\\ y"]
        );
        assert_eq!(split_words("a b\\", '\\'), vec!["a", "b"]);
        assert_eq!(split_words("a` b", '`'), vec!["a` b"]);
    }

    #[test]
    fn heredoc_keeps_quotes() {
        let v = vars();
        assert_eq!(
            expand_heredoc("echo \"hi $FOO\" '$FOO' \\$FOO \\n\n", &v, '\\').unwrap(),
            "echo \"hi /bar\" '/bar' $FOO \\n\n"
        );
    }

    #[test]
    fn closures_and_pair_lists_are_vars() {
        let f = |n: &str| (n == "X").then(|| "1".to_string());
        assert_eq!(expand_word("$X$Y", &f, '\\').unwrap(), "1");
        let pairs = vec![
            ("A".to_string(), "old".to_string()),
            ("A".to_string(), "new".to_string()),
        ];
        assert_eq!(expand_word("$A", &pairs, '\\').unwrap(), "new");
        assert_eq!(expand_word("${A:-x}", &NoVars, '\\').unwrap(), "x");
    }
}
