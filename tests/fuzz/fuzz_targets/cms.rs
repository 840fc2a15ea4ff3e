//! Bytes as CMS artifacts (voucher, signed or unsigned conveyed information, certs-only):
//! the oracle in `oracle/cms.rs`.
#![no_main]

#[path = "../oracle/cms.rs"]
mod oracle;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    oracle::check(data);
});
