//! A typed caller of any runc-compatible runtime binary.
