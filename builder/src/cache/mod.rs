//! Build cache: step keys and what they resolved to.
