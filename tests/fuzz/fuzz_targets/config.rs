//! Arbitrary UTF-8 as a configuration file: `load_str` may refuse it, never panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = sztp_redirector::config::load_str(Path::new("fuzz.toml"), text);
    }
});
