//! For tests: where the shared fixtures and the workspace's binaries are,
//! wherever the checkout is (CI runs a fresh clone beside `shared/`).

use std::path::PathBuf;

/// `shared/fixtures` beside the checkout, or `KEEL_FIXTURES`.
pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("KEEL_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/fixtures"
            ))
        })
}

/// A binary of this workspace built beside the running test (`cargo test
/// --workspace` builds them all into the same profile dir), or `None`.
pub fn workspace_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/<name>
    let profile_dir = exe.parent()?.parent()?;
    let p = profile_dir.join(name);
    p.is_file().then_some(p)
}
