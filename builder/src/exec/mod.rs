//! RUN steps: a container over the parent layers, through a runtime CLI.
