//! `state`: the OCI state of one container as JSON.

use crate::container::{load, GlobalOpts, StateView};
use crate::error::{Result, RuntimeError};

pub fn state(g: &GlobalOpts, id: &str) -> Result<String> {
    let c = load(g, id)?;
    serde_json::to_string_pretty(&StateView::of(&c)).map_err(|source| RuntimeError::Json {
        what: format!("state of container {id}"),
        source,
    })
}
