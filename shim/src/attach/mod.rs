//! The attach socket protocol and its client side.
//!
//! Each supervisor listens on `run_dir/<id>/attach.sock` (a unix stream
//! socket). Both directions carry frames `[kind u8][len u32 BE][payload]`,
//! payloads at most [`frame::MAX_PAYLOAD`] bytes:
//!
//! | kind | direction | payload |
//! |------|-----------|---------|
//! | 0x01 hello | client -> supervisor | 1 byte: bit 0 stdin, bit 1 stdout, bit 2 stderr wanted |
//! | 0x02 stdin | client -> supervisor | bytes for the container's stdin |
//! | 0x03 stdin close | client -> supervisor | none: close the container's stdin (pipes only) |
//! | 0x04 resize | client -> supervisor | rows u16 BE, cols u16 BE (TIOCSWINSZ on the pty) |
//! | 0x05 signal | client -> supervisor | signal number i32 BE (`runtime kill`) |
//! | 0x06 start | client -> supervisor | none: `runtime start` of a created container |
//! | 0x81 stdout | supervisor -> client | output (a tty's single stream comes as stdout) |
//! | 0x82 stderr | supervisor -> client | output |
//! | 0x83 exit | supervisor -> client | exit code i32 BE (docker's: 128+N for signal N), then the connection closes |
//! | 0x84 error | supervisor -> client | UTF-8 message (a failed request, or a protocol error before closing) |
//! | 0x85 started | supervisor -> client | none: the reply to start |
//!
//! Output is only sent to a client after its hello, and only the streams it
//! asked for; there is no replay of earlier output (that is the log's job).
//! Stdin from a client is only taken if its hello asked for stdin. A client
//! that does not read is disconnected once about 1 MiB is queued for it;
//! the container and its log never wait for a client. Closing the
//! connection (detach) leaves the container running.

pub mod client;
pub mod frame;
pub mod keys;

use std::io;
use std::path::PathBuf;

pub use client::{attach, AttachEnd, AttachOptions};
pub use frame::{Frame, FrameError};
pub use keys::{parse_detach_keys, DetachMatcher, KeysError, DEFAULT_DETACH_KEYS};

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("container {id} is not running (no supervisor listening at {path})")]
    NotRunning { id: String, path: PathBuf },
    #[error("container {id}: connecting to {path}: {source}")]
    Connect {
        id: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("container {id}: {what}: {source}")]
    Io {
        id: String,
        what: &'static str,
        source: io::Error,
    },
    #[error("container {id}: {source}")]
    Protocol { id: String, source: FrameError },
    #[error("container {id}: the supervisor closed the connection without an exit status")]
    Hangup { id: String },
    #[error("container {id}: {message}")]
    Remote { id: String, message: String },
    #[error("container {id}: {source}")]
    Terminal {
        id: String,
        source: crate::io::IoError,
    },
    #[error("container {id}: {what}: {source}")]
    Sys {
        id: String,
        what: &'static str,
        source: nix::Error,
    },
}
