//! The attach socket protocol (framed stdin, stdout/stderr, resize, exit) and the client side (raw terminal, SIGWINCH, detach keys).
