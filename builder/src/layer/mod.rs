//! Layers: overlay upper-dir diffs as deterministic tar streams, compression, and safe extraction.
