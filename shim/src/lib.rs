//! keel-shim's library: one small supervisor process per container that
//! starts it through a runc-compatible CLI, owns its stdio (pipes, or the
//! pty master from `--console-socket`), writes every byte of output to a
//! json-file log, serves attach connections, and records the exit status.
//! Images become bundles through keel-builder's store and bundle code.

pub mod attach;
pub mod commands;
pub mod container;
pub mod io;
pub mod log;
pub mod supervisor;
