//! The build context: walking it, the .dockerignore matcher, COPY/ADD source selection, content digests and copying.
