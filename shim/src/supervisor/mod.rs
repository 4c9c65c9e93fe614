//! The per-container supervisor process: detached from the caller (double fork, own session), child subreaper, runtime create/start, the event loop, exit recording.
