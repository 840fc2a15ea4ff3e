//! Helpers shared by unit tests

/// Bytes from hex, ignoring white space (test vectors are written in spaced octets).
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    hex::decode(s).expect("test vector is hex")
}
