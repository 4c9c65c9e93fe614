//! Physical lines to logical instruction lines: parser directives at the
//! top, comments, blank lines, continuations with the escape character, and
//! heredoc bodies read on demand by the parser.

use std::path::Path;

use super::error::DockerfileError;

/// One instruction as written, continuation lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogicalLine {
    /// 1-based number of the instruction's first line.
    pub line: usize,
    pub text: String,
}

pub(crate) struct Lexer<'a> {
    path: &'a Path,
    lines: Vec<&'a str>,
    /// Index of the next physical line to read.
    next: usize,
    pub escape: char,
    pub syntax: Option<String>,
}

impl<'a> Lexer<'a> {
    /// Reads the parser directives; the lexer then stands on the first line
    /// after them.
    pub fn new(path: &'a Path, text: &'a str) -> Result<Self, DockerfileError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lexer = Lexer {
            path,
            lines: text.split_inclusive('\n').collect(),
            next: 0,
            escape: '\\',
            syntax: None,
        };
        lexer.directives()?;
        Ok(lexer)
    }

    fn directives(&mut self) -> Result<(), DockerfileError> {
        let mut seen: Vec<String> = Vec::new();
        while let Some(raw) = self.lines.get(self.next) {
            let line_no = self.next + 1;
            let Some((key, value)) = directive(trim_newline(raw).trim_start()) else {
                break;
            };
            let key = key.to_ascii_lowercase();
            if !matches!(key.as_str(), "syntax" | "escape" | "check") {
                // Docker stops looking for directives at the first comment
                // that is not a known one; this one is a plain comment.
                break;
            }
            if seen.contains(&key) {
                return Err(DockerfileError::Directive {
                    path: self.path.to_path_buf(),
                    line: line_no,
                    message: format!("only one {key} parser directive can be used"),
                });
            }
            match key.as_str() {
                "escape" => {
                    self.escape = match value {
                        "\\" => '\\',
                        "`" => '`',
                        other => {
                            return Err(DockerfileError::Directive {
                                path: self.path.to_path_buf(),
                                line: line_no,
                                message: format!(
                                    "invalid escape token {other:?}: it must be \\ or `"
                                ),
                            })
                        }
                    }
                }
                "syntax" => self.syntax = Some(value.to_string()),
                // `check` configures build checks (linting), which keel
                // does not run; accepted so such files still parse.
                _ => {}
            }
            seen.push(key);
            self.next += 1;
        }
        Ok(())
    }

    /// The next instruction, skipping comments and blank lines. Comment and
    /// blank lines inside a continued instruction are dropped and do not end
    /// it, as in Docker.
    pub fn next_line(&mut self) -> Option<LogicalLine> {
        while let Some(raw) = self.lines.get(self.next) {
            self.next += 1;
            let line = self.next;
            let first = trim_newline(raw).trim_start();
            if first.is_empty() || first.starts_with('#') {
                continue;
            }
            let (mut text, mut ended) = self.trim_continuation(first);
            let mut text_owned = text.to_string();
            while !ended {
                let Some(raw) = self.lines.get(self.next) else {
                    break;
                };
                self.next += 1;
                let part = trim_newline(raw);
                let lead = part.trim_start();
                if lead.is_empty() || lead.starts_with('#') {
                    continue;
                }
                (text, ended) = self.trim_continuation(part);
                text_owned.push_str(text);
            }
            if text_owned.trim().is_empty() {
                continue;
            }
            return Some(LogicalLine {
                line,
                text: text_owned,
            });
        }
        None
    }

    /// Consumes the body of a heredoc up to its terminator line. `start` is
    /// the instruction's line, for the error.
    pub fn heredoc_body(
        &mut self,
        name: &str,
        chomp: bool,
        start: usize,
    ) -> Result<String, DockerfileError> {
        let mut content = String::new();
        while let Some(raw) = self.lines.get(self.next) {
            self.next += 1;
            let body = if chomp {
                raw.trim_start_matches('\t')
            } else {
                raw
            };
            if trim_newline(body) == name {
                return Ok(content);
            }
            content.push_str(body);
        }
        Err(DockerfileError::UnterminatedHeredoc {
            path: self.path.to_path_buf(),
            line: start,
            name: name.to_string(),
        })
    }

    /// Strips a trailing escape character (optionally followed by blanks);
    /// returns the rest and whether the instruction ends on this line.
    fn trim_continuation<'s>(&self, line: &'s str) -> (&'s str, bool) {
        let trimmed = line.trim_end_matches([' ', '\t']);
        match trimmed.strip_suffix(self.escape) {
            Some(rest) => (rest, false),
            None => (line, true),
        }
    }
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

/// `# key = value` with a key of letters and digits starting with a letter.
fn directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let key_len = rest
        .char_indices()
        .find(|(_, c)| !c.is_ascii_alphanumeric())
        .map_or(rest.len(), |(i, _)| i);
    let key = &rest[..key_len];
    if !key.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let value = rest[key_len..].trim_start().strip_prefix('=')?.trim();
    if value.is_empty() {
        return None;
    }
    Some((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<(usize, String)> {
        let mut lx = Lexer::new(Path::new("Dockerfile"), text).unwrap();
        std::iter::from_fn(|| lx.next_line())
            .map(|l| (l.line, l.text))
            .collect()
    }

    #[test]
    fn directives_only_at_the_top() {
        let lx = Lexer::new(
            Path::new("Dockerfile"),
            "# syntax=docker/dockerfile:1\n#ESCAPE = `\nFROM x\n",
        )
        .unwrap();
        assert_eq!(lx.escape, '`');
        assert_eq!(lx.syntax.as_deref(), Some("docker/dockerfile:1"));

        let lx = Lexer::new(Path::new("D"), "# hello\n# escape=`\nFROM x\n").unwrap();
        assert_eq!(lx.escape, '\\');
        let lx = Lexer::new(Path::new("D"), "\n# escape=`\nFROM x\n").unwrap();
        assert_eq!(lx.escape, '\\');
        let lx = Lexer::new(Path::new("D"), "FROM x\n# escape=`\n").unwrap();
        assert_eq!(lx.escape, '\\');
    }

    #[test]
    fn bad_and_repeated_directives() {
        let err = Lexer::new(Path::new("D"), "# escape=x\nFROM a\n")
            .err()
            .unwrap();
        assert!(
            err.to_string().starts_with("D:1: invalid escape token"),
            "{err}"
        );
        let err = Lexer::new(Path::new("D"), "# escape=`\n# escape=\\\n")
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "D:2: only one escape parser directive can be used"
        );
    }

    #[test]
    fn continuation_comments_blank_lines() {
        let text = "FROM a\n\n  # c\nRUN one \\\n  two \\\n# inside\n\n   three\nCMD x\n";
        assert_eq!(
            lines(text),
            vec![
                (1, "FROM a".to_string()),
                (4, "RUN one   two    three".to_string()),
                (9, "CMD x".to_string()),
            ]
        );
    }

    #[test]
    fn continuation_with_trailing_blanks_and_crlf() {
        assert_eq!(
            lines("RUN a \\  \r\n b\r\nCMD c"),
            vec![(1, "RUN a  b".to_string()), (3, "CMD c".to_string())]
        );
    }

    #[test]
    fn backtick_continuation() {
        let text = "# escape=`\nRUN dir c:\\ `\n  /s\n";
        assert_eq!(lines(text), vec![(2, "RUN dir c:\\   /s".to_string())]);
    }

    #[test]
    fn heredoc_body_and_chomp() {
        let text = "RUN <<EOF\n\tline1\nEOF\nRUN <<-X\n\tline2\n\tX\n";
        let mut lx = Lexer::new(Path::new("D"), text).unwrap();
        let l = lx.next_line().unwrap();
        assert_eq!(lx.heredoc_body("EOF", false, l.line).unwrap(), "\tline1\n");
        let l = lx.next_line().unwrap();
        assert_eq!(l.line, 4);
        assert_eq!(lx.heredoc_body("X", true, l.line).unwrap(), "line2\n");
        assert!(lx.next_line().is_none());
    }

    #[test]
    fn unterminated_heredoc() {
        let mut lx = Lexer::new(Path::new("D"), "FROM a\nRUN <<EOF\nx\n").unwrap();
        lx.next_line();
        let l = lx.next_line().unwrap();
        let err = lx.heredoc_body("EOF", false, l.line).unwrap_err();
        assert_eq!(err.to_string(), "D:2: unterminated heredoc <<EOF");
    }
}
