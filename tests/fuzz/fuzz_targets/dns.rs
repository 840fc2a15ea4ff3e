//! DNS request paths (unicast UDP/TCP and mDNS) under libFuzzer; the checks are in
//! `../oracle/dns.rs`, which `cargo test` also runs over `seeds/dns/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../oracle/dns.rs"]
mod dns_check;

fuzz_target!(|data: &[u8]| {
    dns_check::check(data);
});
