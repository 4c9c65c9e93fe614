//! `ps [-a] [-q] [--format json]` and `inspect`.

use super::{Result, Shim};
use crate::container::{inspect_json, ps_table, short_id, status, Inspect, PsRow, Status};

pub fn ps(shim: &Shim, all: bool, quiet: bool, json: bool) -> Result<i32> {
    let now = chrono::Utc::now();
    let mut rows = Vec::new();
    let mut metas = shim.containers().list();
    // Newest first, as docker lists them.
    metas.sort_by(|a, b| b.created.cmp(&a.created));
    let mut docs = Vec::new();
    for meta in metas {
        let st = status(&shim.paths, &meta);
        if !all && !matches!(st, Status::Running { .. }) {
            continue;
        }
        if quiet {
            println!("{}", short_id(&meta.id));
            continue;
        }
        if json {
            docs.push(Inspect::new(&shim.paths, &meta, &st));
        } else {
            rows.push(PsRow::new(&meta, &st, now, true));
        }
    }
    if json {
        println!("{}", inspect_json(&docs));
    } else if !quiet {
        print!("{}", ps_table(&rows));
    }
    Ok(0)
}

pub fn inspect(shim: &Shim, names: &[String]) -> Result<i32> {
    let mut docs = Vec::new();
    for name in names {
        let meta = shim.containers().resolve(name)?;
        let st = status(&shim.paths, &meta);
        docs.push(Inspect::new(&shim.paths, &meta, &st));
    }
    println!("{}", inspect_json(&docs));
    Ok(0)
}
