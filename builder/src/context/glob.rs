//! Go `filepath.Match` patterns (`*`, `?`, `[...]`, `\` escapes), optionally
//! with `.dockerignore`'s `**`, compiled once and matched without a regex
//! engine, plus Go's lexical `filepath.Clean`.

/// `**` is only special in `.dockerignore`; COPY sources use plain Go syntax,
/// where `**` is two stars within one path element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Syntax {
    GoMatch,
    DockerIgnore,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Lit(char),
    /// `*`: any run of characters other than `/`.
    Star,
    /// `?`: one character other than `/`.
    One,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `**` followed by more pattern: zero or more whole directories.
    AnyDirs,
    /// `**` at the end: everything.
    All,
}

#[derive(Clone, Debug)]
pub(crate) struct Glob {
    tokens: Vec<Token>,
}

impl Glob {
    /// Errors are Go's `ErrBadPattern` cases, described.
    pub(crate) fn parse(pattern: &str, syntax: Syntax) -> Result<Glob, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' => {
                    if syntax == Syntax::DockerIgnore && chars.get(i + 1) == Some(&'*') {
                        i += 2;
                        // `**/` is the same as `**`.
                        if chars.get(i) == Some(&'/') {
                            i += 1;
                        }
                        tokens.push(if i == chars.len() {
                            Token::All
                        } else {
                            Token::AnyDirs
                        });
                        continue;
                    }
                    tokens.push(Token::Star);
                    i += 1;
                }
                '?' => {
                    tokens.push(Token::One);
                    i += 1;
                }
                '\\' => {
                    let c = chars
                        .get(i + 1)
                        .ok_or("trailing backslash escapes nothing")?;
                    tokens.push(Token::Lit(*c));
                    i += 2;
                }
                '[' => {
                    let (token, next) = parse_class(&chars, i + 1)?;
                    tokens.push(token);
                    i = next;
                }
                c => {
                    tokens.push(Token::Lit(c));
                    i += 1;
                }
            }
        }
        Ok(Glob { tokens })
    }

    pub(crate) fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        Matcher::new(&self.tokens, &text, false).run(0, 0)
    }

    /// Whether some path that starts with `prefix` and goes on could match.
    /// Errs on the side of yes: it lets a walker skip only what cannot match.
    pub(crate) fn could_match_extension_of(&self, prefix: &str) -> bool {
        let text: Vec<char> = prefix.chars().collect();
        Matcher::new(&self.tokens, &text, true).run(0, 0)
    }
}

/// True when `s` has no wildcard or escape, so it names exactly one path.
pub(crate) fn is_literal(s: &str) -> bool {
    !s.contains(['*', '?', '[', '\\'])
}

fn parse_class(chars: &[char], mut i: usize) -> Result<(Token, usize), String> {
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        match chars.get(i) {
            None => return Err("unterminated character class [".into()),
            Some(']') if !ranges.is_empty() => {
                return Ok((Token::Class { negated, ranges }, i + 1))
            }
            _ => {}
        }
        let (lo, next) = class_char(chars, i)?;
        i = next;
        let mut hi = lo;
        if chars.get(i) == Some(&'-') {
            let (h, next) = class_char(chars, i + 1)?;
            hi = h;
            i = next;
        }
        if hi < lo {
            return Err(format!("character range {lo}-{hi} is backwards"));
        }
        ranges.push((lo, hi));
    }
}

fn class_char(chars: &[char], i: usize) -> Result<(char, usize), String> {
    match chars.get(i) {
        None => Err("unterminated character class [".into()),
        Some('-') | Some(']') => Err(format!(
            "{:?} must be escaped inside a character class",
            chars[i]
        )),
        Some('\\') => match chars.get(i + 1) {
            Some(c) => Ok((*c, i + 2)),
            None => Err("unterminated character class [".into()),
        },
        Some(c) => Ok((*c, i + 1)),
    }
}

/// Memoised backtracking over (token, position): linear in
/// tokens x characters even for patterns full of stars.
struct Matcher<'a> {
    tokens: &'a [Token],
    text: &'a [char],
    /// At the end of the text, accept if the pattern could still go on.
    prefix_mode: bool,
    memo: Vec<Option<bool>>,
}

impl<'a> Matcher<'a> {
    fn new(tokens: &'a [Token], text: &'a [char], prefix_mode: bool) -> Self {
        Matcher {
            tokens,
            text,
            prefix_mode,
            memo: vec![None; (tokens.len() + 1) * (text.len() + 1)],
        }
    }

    fn run(&mut self, t: usize, s: usize) -> bool {
        let key = t * (self.text.len() + 1) + s;
        if let Some(r) = self.memo[key] {
            return r;
        }
        let r = self.step(t, s);
        self.memo[key] = Some(r);
        r
    }

    fn step(&mut self, t: usize, s: usize) -> bool {
        let Some(token) = self.tokens.get(t) else {
            return s == self.text.len() && !self.prefix_mode;
        };
        if s == self.text.len() && self.prefix_mode {
            // Every token can consume at least one more character.
            return true;
        }
        let c = self.text.get(s).copied();
        match token {
            Token::Lit(l) => c == Some(*l) && self.run(t + 1, s + 1),
            Token::One => matches!(c, Some(c) if c != '/') && self.run(t + 1, s + 1),
            Token::Class { negated, ranges } => match c {
                Some(c) => {
                    let inside = ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c));
                    inside != *negated && self.run(t + 1, s + 1)
                }
                None => false,
            },
            Token::Star => {
                self.run(t + 1, s) || (matches!(c, Some(c) if c != '/') && self.run(t, s + 1))
            }
            Token::All => true,
            Token::AnyDirs => {
                if self.run(t + 1, s) {
                    return true;
                }
                (s..self.text.len()).any(|k| self.text[k] == '/' && self.run(t + 1, k + 1))
            }
        }
    }
}

/// Go's `path.Clean`: the shortest lexically equal path (`.` for empty).
pub(crate) fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(p: &str, s: &str) -> bool {
        Glob::parse(p, Syntax::GoMatch).unwrap().matches(s)
    }

    fn di(p: &str, s: &str) -> bool {
        Glob::parse(p, Syntax::DockerIgnore).unwrap().matches(s)
    }

    #[test]
    fn go_match_cases() {
        assert!(go("abc", "abc"));
        assert!(go("*", "abc"));
        assert!(go("*c", "abc"));
        assert!(!go("a*", "ab/c"));
        assert!(go("a*/b", "abc/b"));
        assert!(go("a*b*c*d*e*/f", "axbxcxdxe/f"));
        assert!(!go("a*b*c*d*e*/f", "axbxcxdxe/xxx/f"));
        assert!(go("ab[c]", "abc"));
        assert!(go("ab[b-d]", "abc"));
        assert!(!go("ab[e-g]", "abc"));
        assert!(!go("ab[^c]", "abc"));
        assert!(go("ab[^e-g]", "abc"));
        assert!(go("a\\*b", "a*b"));
        assert!(!go("a\\*b", "ab"));
        assert!(go("a?b", "a☺b"));
        assert!(!go("a?b", "a/b"));
        assert!(go("[\\-]", "-"));
        assert!(go("[x\\-]", "x"));
        // In Go's Match `**` is just two stars within one element.
        assert!(!go("**/x", "a/b/x"));
        assert!(go("**/x", "a/x"));
    }

    #[test]
    fn go_bad_patterns() {
        for bad in ["[", "[^", "[]a]", "[-]", "[x-]", "a\\", "[a-", "[z-a]"] {
            assert!(Glob::parse(bad, Syntax::GoMatch).is_err(), "{bad}");
        }
    }

    #[test]
    fn double_star_in_dockerignore() {
        assert!(di("**/*.bak", "old.bak"));
        assert!(di("**/*.bak", "src/old.sh.bak"));
        assert!(di("**/*.bak", "a/b/c.bak"));
        assert!(!di("**/*.bak", "a/b/c.bakx"));
        assert!(di("a/**/b", "a/b"));
        assert!(di("a/**/b", "a/x/y/b"));
        assert!(!di("a/**/b", "ab"));
        assert!(di("a/**", "a/x/y"));
        assert!(di("**", "anything/at/all"));
        assert!(!di("*", "a/b"));
    }

    #[test]
    fn extension_check_is_conservative_but_useful() {
        let g = Glob::parse("tmp/keep*", Syntax::DockerIgnore).unwrap();
        assert!(g.could_match_extension_of("tmp/"));
        assert!(!g.could_match_extension_of("other/"));
        let g = Glob::parse("**/keep", Syntax::DockerIgnore).unwrap();
        assert!(g.could_match_extension_of("any/where/"));
        let g = Glob::parse("*/keep", Syntax::DockerIgnore).unwrap();
        assert!(g.could_match_extension_of("tmp/"));
        assert!(!g.could_match_extension_of("tmp/sub/"));
        let g = Glob::parse("keep.log", Syntax::DockerIgnore).unwrap();
        assert!(!g.could_match_extension_of("tmp/"));
    }

    #[test]
    fn clean_like_go() {
        for (i, o) in [
            ("", "."),
            ("./a", "a"),
            ("a/", "a"),
            ("/", "/"),
            ("//a//b/", "/a/b"),
            ("a/../b", "b"),
            ("../a", "../a"),
            ("a/../../b", "../b"),
            ("/../a", "/a"),
            ("a/./b/.", "a/b"),
        ] {
            assert_eq!(clean(i), o, "{i}");
        }
    }
}
