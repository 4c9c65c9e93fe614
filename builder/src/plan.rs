//! Which stages a build needs, in which order: the target stage (the last
//! one, or `--target`) and, transitively, every stage it names in `FROM` or
//! `COPY --from`. Stages the target does not need are not built, as
//! BuildKit does.

use std::collections::BTreeSet;

use crate::dockerfile::{Dockerfile, Kind};

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{file}: target stage \"{target}\" could not be found")]
    UnknownTarget { file: String, target: String },
    #[error("{file}:{line}: stage {stage} refers to itself or a later stage: \"{name}\"")]
    ForwardReference {
        file: String,
        line: usize,
        stage: usize,
        name: String,
    },
}

/// Where a stage's base or a `COPY --from` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Stage(usize),
    Scratch,
    Image(String),
}

#[derive(Debug)]
pub struct Plan {
    pub target: usize,
    /// Stage indices to build, dependencies first.
    pub order: Vec<usize>,
    /// The base of each stage (by index), after global ARG expansion.
    pub bases: Vec<Source>,
}

/// A stage reference by name (case-insensitive, as Docker) or by index.
pub fn find_stage(df: &Dockerfile, name: &str, before: usize) -> Option<usize> {
    let lower = name.to_ascii_lowercase();
    if let Some(i) = df.stages[..before.min(df.stages.len())]
        .iter()
        .position(|s| s.name.as_deref() == Some(lower.as_str()))
    {
        return Some(i);
    }
    name.parse::<usize>().ok().filter(|i| *i < before)
}

/// Classifies a `COPY --from` or `FROM` value seen in stage `at`.
pub fn classify(df: &Dockerfile, value: &str, at: usize) -> Source {
    if let Some(i) = find_stage(df, value, at) {
        return Source::Stage(i);
    }
    if value.eq_ignore_ascii_case("scratch") {
        return Source::Scratch;
    }
    Source::Image(value.to_string())
}

/// `expanded_bases[i]` is stage i's FROM value with the global ARGs applied.
pub fn plan(
    df: &Dockerfile,
    target: Option<&str>,
    expanded_bases: &[String],
) -> Result<Plan, PlanError> {
    let file = df.path.display().to_string();
    let target_index = match target {
        None => df.stages.len().saturating_sub(1),
        Some(t) => find_stage(df, t, df.stages.len()).ok_or_else(|| PlanError::UnknownTarget {
            file: file.clone(),
            target: t.to_string(),
        })?,
    };
    let bases: Vec<Source> = expanded_bases
        .iter()
        .enumerate()
        .map(|(i, b)| classify(df, b, i))
        .collect();
    // A stage name equal to a later stage's own name is an image, not a
    // stage (find_stage only looks backwards), so no cycles are possible.
    let mut needed = BTreeSet::new();
    let mut todo = vec![target_index];
    while let Some(i) = todo.pop() {
        if !needed.insert(i) {
            continue;
        }
        if let Source::Stage(b) = bases[i] {
            todo.push(b);
        }
        for ins in &df.stages[i].instructions {
            let from = match &ins.kind {
                Kind::Copy(c) | Kind::Add(c) => c.from.as_deref(),
                _ => None,
            };
            if let Some(f) = from {
                if let Source::Stage(s) = classify(df, f, i) {
                    todo.push(s);
                } else if df
                    .stages
                    .iter()
                    .any(|s| s.name.as_deref() == Some(&f.to_ascii_lowercase()))
                {
                    return Err(PlanError::ForwardReference {
                        file: file.clone(),
                        line: ins.line,
                        stage: i,
                        name: f.to_string(),
                    });
                }
            }
        }
    }
    Ok(Plan {
        target: target_index,
        order: needed.into_iter().collect(),
        bases,
    })
}
