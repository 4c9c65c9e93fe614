//! keel-build's library: a Dockerfile and its context become an OCI image of
//! content-addressed, cached layers in a local store; an image becomes an OCI
//! runtime bundle. RUN steps go through a runc-compatible CLI
//! (`keel_runtime_client`), never through libcontainer in this process.

pub mod archive;
pub mod build;
pub mod bundle;
pub mod cache;
pub mod context;
pub mod defaults;
pub mod digest;
pub mod dockerfile;
pub mod exec;
pub mod image;
pub mod layer;
pub mod plan;
pub mod progress;
pub mod store;
#[doc(hidden)]
pub mod testing;
