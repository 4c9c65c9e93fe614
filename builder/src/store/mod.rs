//! The image store: OCI layout, blobs, refs, extracted layers, locking, gc and check.
