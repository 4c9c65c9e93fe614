//! `spec`: write runc's default `config.json` into a bundle directory.

use std::path::Path;

use crate::error::{Result, RuntimeError};
use crate::spec::{default_spec_json, CONFIG_FILE};

pub fn spec(bundle: &Path, rootless: bool) -> Result<()> {
    let path = bundle.join(CONFIG_FILE);
    if path.exists() {
        return Err(RuntimeError::Invalid(format!(
            "File {} exists. Remove it first",
            path.display()
        )));
    }
    let text = serde_json::to_string_pretty(&default_spec_json(rootless)).map_err(|source| {
        RuntimeError::Json {
            what: "default spec".into(),
            source,
        }
    })?;
    std::fs::write(&path, text + "\n")
        .map_err(|e| RuntimeError::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_once_and_refuses_to_overwrite() {
        let d = tempfile::tempdir().unwrap();
        spec(d.path(), false).unwrap();
        assert!(d.path().join(CONFIG_FILE).is_file());
        let err = spec(d.path(), false).unwrap_err().to_string();
        assert!(err.contains("exists"), "{err}");
    }
}
