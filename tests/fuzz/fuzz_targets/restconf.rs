//! RESTCONF request bodies (get-bootstrapping-data and report-progress, JSON and XML) through
//! the whole handler, client-certificate serial extraction and Basic user names. See
//! `restconf_check.rs` for the first-byte modes and the invariants.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

include!("restconf_check.rs");

static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    check(SNAPSHOT.get_or_init(fuzz_snapshot), data);
});
