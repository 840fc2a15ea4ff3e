//! The command line itself: usage errors exit 2 with a message (never a panic), and the
//! committed man page is what the clap definitions generate.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sztp-redirector");

#[test]
fn a_client_id_that_is_not_hex_is_a_usage_error_not_a_panic() {
    for bad in ["0xaéb", "0xabc", "0xzz"] {
        let out = Command::new(BIN)
            .args(["probe", "--relay", "127.0.0.1:9", "--client-id", bad])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(
            err.contains(&format!(
                "invalid value '{bad}' for '--client-id <CLIENT_ID>': \"{bad}\": after 0x give hex digits, two per octet"
            )),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}
