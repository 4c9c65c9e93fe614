//! docker-archive and OCI archive save and load.
