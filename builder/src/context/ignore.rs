//! `.dockerignore`: which context paths the build never sees.
//!
//! Semantics are Docker's (moby/patternmatcher): rules are evaluated in
//! order, the last rule that matches a path or one of its parent directories
//! decides, and `!` rules re-include.

use std::io;
use std::path::{Path, PathBuf};

use super::error::ContextError;
use super::glob::{clean, Glob, Syntax};

#[derive(Clone, Debug)]
struct Rule {
    /// The cleaned pattern, without its `!`.
    pattern: String,
    glob: Glob,
    exception: bool,
}

#[derive(Clone, Debug, Default)]
pub struct IgnoreMatcher {
    rules: Vec<Rule>,
}

impl IgnoreMatcher {
    /// A matcher that excludes nothing (a context without ignore file).
    pub fn empty() -> IgnoreMatcher {
        IgnoreMatcher::default()
    }

    /// Parses the text of an ignore file. A malformed pattern is an error, as
    /// in Docker, rather than a rule silently matching nothing.
    pub fn parse(text: &str) -> Result<IgnoreMatcher, ContextError> {
        IgnoreMatcher::parse_file(text, Path::new(".dockerignore"))
    }

    fn parse_file(text: &str, file: &Path) -> Result<IgnoreMatcher, ContextError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut rules = Vec::new();
        for (index, raw) in text.split('\n').enumerate() {
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            // Docker looks for `#` before trimming: " #x" is a pattern.
            if raw.starts_with('#') {
                continue;
            }
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            let (exception, rest) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let bad = |reason: String| ContextError::IgnorePattern {
                file: file.to_path_buf(),
                line: index + 1,
                pattern: raw.to_string(),
                reason,
            };
            if rest.is_empty() {
                return Err(bad("\"!\" must be followed by a pattern".into()));
            }
            let mut pattern = clean(rest);
            if pattern.len() > 1 {
                if let Some(stripped) = pattern.strip_prefix('/') {
                    pattern = stripped.to_string();
                }
            }
            let glob = Glob::parse(&pattern, Syntax::DockerIgnore).map_err(bad)?;
            rules.push(Rule {
                pattern,
                glob,
                exception,
            });
        }
        Ok(IgnoreMatcher { rules })
    }

    /// Whether `rel` (relative to the context root, `/`-separated, no `./`)
    /// is excluded from the context.
    pub fn matches(&self, rel: &Path) -> bool {
        let rel = rel.to_string_lossy();
        let rel = clean(&rel);
        if rel == "." || self.rules.is_empty() {
            return false;
        }
        let parents: Vec<&str> = rel.match_indices('/').map(|(i, _)| &rel[..i]).collect();
        let mut excluded = false;
        for rule in &self.rules {
            // An exclusion cannot change an excluded path, nor an exception
            // an included one: skip the matching work.
            if rule.exception != excluded {
                continue;
            }
            let hit = rule.glob.matches(&rel) || parents.iter().any(|p| rule.glob.matches(p));
            if hit {
                excluded = !rule.exception;
            }
        }
        excluded
    }

    /// Whether any `!` rule exists at all.
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|r| r.exception)
    }

    /// Whether something strictly below the directory `dir` could be
    /// re-included by a `!` rule. When `dir` is excluded and this is false,
    /// the whole subtree is excluded and need not be walked.
    pub fn may_reinclude_under(&self, dir: &Path) -> bool {
        let dir = clean(&dir.to_string_lossy());
        let prefix = if dir == "." {
            String::new()
        } else {
            format!("{dir}/")
        };
        self.rules
            .iter()
            .any(|r| r.exception && r.glob.could_match_extension_of(&prefix))
    }

    /// The cleaned patterns in file order, `!` kept, for logs and cache keys.
    pub fn patterns(&self) -> Vec<String> {
        self.rules
            .iter()
            .map(|r| {
                if r.exception {
                    format!("!{}", r.pattern)
                } else {
                    r.pattern.clone()
                }
            })
            .collect()
    }
}

/// The ignore rules of a build: `<Dockerfile name>.dockerignore` beside the
/// Dockerfile wins over `<context>/.dockerignore`; neither means none.
pub fn load_ignore(
    context_root: &Path,
    dockerfile_path: &Path,
) -> Result<IgnoreMatcher, ContextError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(name) = dockerfile_path.file_name() {
        let mut own = name.to_os_string();
        own.push(".dockerignore");
        candidates.push(dockerfile_path.with_file_name(own));
    }
    candidates.push(context_root.join(".dockerignore"));
    for file in candidates {
        match std::fs::read(&file) {
            Ok(bytes) => {
                tracing::debug!(file = %file.display(), "using ignore file");
                let text = String::from_utf8_lossy(&bytes);
                return IgnoreMatcher::parse_file(&text, &file);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(ContextError::io(file, e)),
        }
    }
    Ok(IgnoreMatcher::empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> IgnoreMatcher {
        IgnoreMatcher::parse(text).unwrap()
    }

    fn ex(m: &IgnoreMatcher, p: &str) -> bool {
        m.matches(Path::new(p))
    }

    #[test]
    fn comments_blank_lines_and_cleaning() {
        let i = m("# a comment\n\n  \n/secret.txt\n./build/\n  spaced  \r\nx/../y\n");
        assert_eq!(i.patterns(), ["secret.txt", "build", "spaced", "y"]);
        assert!(ex(&i, "secret.txt"));
        assert!(ex(&i, "build/out/bin"));
        assert!(ex(&i, "spaced"));
        assert!(ex(&i, "y"));
        assert!(!ex(&i, "x"));
        assert!(!ex(&i, "# a comment"));
        // Docker only treats `#` in the first column as a comment.
        assert!(ex(&m(" #hash"), "#hash"));
    }

    #[test]
    fn directory_pattern_excludes_everything_below() {
        let i = m("tmp/\n");
        assert!(ex(&i, "tmp"));
        assert!(ex(&i, "tmp/a/b.txt"));
        assert!(!ex(&i, "tmpx"));
        assert!(!ex(&i, "src/tmp"));
    }

    #[test]
    fn last_matching_rule_wins() {
        let i = m("*.log\n!keep.log\n");
        assert!(ex(&i, "app.log"));
        assert!(!ex(&i, "keep.log"));
        // `*` does not cross `/`, so nested logs are not excluded at all.
        assert!(!ex(&i, "sub/app.log"));
        let i = m("!keep.log\n*.log\n");
        assert!(ex(&i, "keep.log"));
        let i = m("docs\n!docs/README.md\n");
        assert!(ex(&i, "docs"));
        assert!(ex(&i, "docs/other.md"));
        assert!(!ex(&i, "docs/README.md"));
        let i = m("docs\n!docs/README.md\ndocs/*.md\n");
        assert!(ex(&i, "docs/README.md"));
    }

    #[test]
    fn exception_re_includes_below_an_exception() {
        let i = m("*\n!src\nsrc/*.bak\n");
        assert!(ex(&i, "Dockerfile"));
        assert!(!ex(&i, "src"));
        assert!(!ex(&i, "src/a/b.rs"));
        assert!(ex(&i, "src/x.bak"));
    }

    #[test]
    fn double_star_anywhere() {
        let i = m("**/*.bak\n**/node_modules\n");
        assert!(ex(&i, "x.bak"));
        assert!(ex(&i, "a/b/x.bak"));
        assert!(ex(&i, "web/node_modules/left-pad/index.js"));
        assert!(!ex(&i, "a/b/x.bak.txt"));
    }

    #[test]
    fn escapes_and_classes() {
        let i = m("\\*literal\nfile[0-9].txt\n");
        assert!(ex(&i, "*literal"));
        assert!(!ex(&i, "xliteral"));
        assert!(ex(&i, "file7.txt"));
        assert!(!ex(&i, "filex.txt"));
    }

    #[test]
    fn bad_patterns_are_errors_with_their_line() {
        match IgnoreMatcher::parse("ok\n[unclosed\n") {
            Err(ContextError::IgnorePattern { line, pattern, .. }) => {
                assert_eq!((line, pattern.as_str()), (2, "[unclosed"));
            }
            other => panic!("{other:?}"),
        }
        assert!(IgnoreMatcher::parse("!\n").is_err());
    }

    #[test]
    fn reinclude_check_lets_walkers_skip_directories() {
        let i = m("tmp\n*.log\n!keep.log\n");
        assert!(!i.may_reinclude_under(Path::new("tmp")));
        let i = m("tmp\n!tmp/keep\n");
        assert!(i.may_reinclude_under(Path::new("tmp")));
        assert!(!i.may_reinclude_under(Path::new("other")));
        let i = m("vendor\n!**/LICENSE\n");
        assert!(i.may_reinclude_under(Path::new("vendor/x")));
        assert!(!m("a\n").may_reinclude_under(Path::new("a")));
    }

    #[test]
    fn empty_matcher_excludes_nothing() {
        assert!(!ex(&IgnoreMatcher::empty(), "anything"));
        assert!(!ex(&m("*\n"), "."));
    }

    #[test]
    fn dockerfile_specific_ignore_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join(".dockerignore"), "general\n").unwrap();
        std::fs::create_dir(root.join("build")).unwrap();
        std::fs::write(root.join("build/app.Dockerfile.dockerignore"), "specific\n").unwrap();
        let i = load_ignore(root, &root.join("build/app.Dockerfile")).unwrap();
        assert_eq!(i.patterns(), ["specific"]);
        let i = load_ignore(root, &root.join("Dockerfile")).unwrap();
        assert_eq!(i.patterns(), ["general"]);
        std::fs::remove_file(root.join(".dockerignore")).unwrap();
        let i = load_ignore(root, &root.join("Dockerfile")).unwrap();
        assert!(i.patterns().is_empty());
    }
}
