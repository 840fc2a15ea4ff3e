//! The device journal: one JSON line per DHCP step in state-dir, rotated by size
