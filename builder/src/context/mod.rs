//! The build context: walking it, the .dockerignore matcher, COPY/ADD source selection, content digests and copying.
//!
//! The flow for one COPY/ADD: `load_ignore` once per build, `select` the
//! sources of the instruction from a `SourceRoot`, `digest_selection` for
//! the cache key, and on a miss `copy_into` the parent image's merged root.

mod copy;
mod digest;
mod error;
mod extract;
mod glob;
mod ignore;
mod securejoin;
mod select;
mod walk;
mod write;

pub use copy::{copy_into, CopyOptions};
pub use digest::digest_selection;
pub use error::ContextError;
pub use ignore::{load_ignore, IgnoreMatcher};
pub use securejoin::secure_join;
pub use select::{is_remote_source, select, Selected, SourceKind, SourceRoot};
pub use walk::{walk, Entry};
