//! Build cache: step keys and what they resolved to.
//!
//! A step's key ([`step_key`]) hashes the parent's identity, the instruction after
//! substitution and whatever else the step sees (content digests of COPY sources, build
//! args). Its record ([`CacheRecord`], `cache/<key-hex>.json` in the store) names the layer
//! the step produced, if any, and the image config after it.
//!
//! Gc: [`Store::prune`](crate::store::Store::prune) always keeps the blobs and layer dirs
//! that cache records name (a cache whose layers vanish at every prune would be useless);
//! `prune --all` is [`Store::clear_cache`](crate::store::Store::clear_cache) followed by prune.

pub mod key;
pub mod record;

pub use key::{step_key, KeyPart};
pub use record::{CacheError, CacheRecord, LayerRef};
