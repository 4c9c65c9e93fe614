//! Dockerfile parsing: lexing (directives, continuations, heredocs), instructions with file:line, variable substitution.
