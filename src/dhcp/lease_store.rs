//! The lease journal in state-dir: append-only, fsync'd in groups, replayed at start, compacted
