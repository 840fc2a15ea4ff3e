//! Arbitrary bytes as a lease journal: replay may refuse them (corruption names FILE:LINE),
//! never panic; whatever replays is listed as a table and as JSON without panicking, and the
//! listing holds no raw control character or bidi override.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sztp_redirector::dhcp::lease_store::{records_from_bytes, render_leases};
use sztp_redirector::dhcp::leases::Lease4;

fuzz_target!(|data: &[u8]| {
    let Ok(leases) = records_from_bytes::<Lease4>(Path::new("leases4.journal"), data) else {
        return;
    };
    for json in [false, true] {
        let mut out = Vec::new();
        render_leases(&leases, json, 1_800_000_000, &mut out).expect("writing to a Vec");
        let text = String::from_utf8(out).expect("the listing is UTF-8");
        assert!(
            text.chars()
                .all(|c| c == '\n' || !sztp_redirector::text::needs_escape(c)),
            "unescaped text in the listing: {text:?}"
        );
    }
});
