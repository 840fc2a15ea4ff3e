//! The CMS oracle shared by the `cms` fuzz target and `cargo test`: bytes as an ownership
//! voucher, signed conveyed information, a certs-only bundle and unsigned conveyed information
//! (the parsers `probe` and `[owner]` loading run on files and network answers). Refusing is
//! fine; panicking is not, and whatever opens must re-encode to a form that opens the same.

use der::{Decode, Encode};
use sztp_redirector::sztp::conveyed::decode_content_info;
use sztp_redirector::sztp::signed::{
    certs_only_certificates, open_signed_data, open_voucher, verify_bootstrapping_data,
    verify_signer,
};

/// Runs every parser over `data`; returns true when it opened as SignedData.
pub(crate) fn check(data: &[u8]) -> bool {
    let _ = decode_content_info(data);
    let _ = certs_only_certificates("fuzz", data);
    if let Ok((v, _)) = open_voucher(data) {
        // a voucher that parses has a pinned-domain-cert whose parse may fail, never panic
        let _ = v.pinned_certificate();
        let _ = v.expired_at(u64::MAX);
    }
    // the same bytes in every role of §5.4
    let _ = verify_bootstrapping_data(data, data, data, &[], Some("SN"), 0);
    let Ok(sc) = open_signed_data("fuzz", data) else {
        return false;
    };
    let _ = verify_signer("fuzz", &sc, &sc.certificates);
    // round trip: the parsed SignedData re-encodes to DER that parses to the same value
    let der = sc
        .signed_data
        .to_der()
        .expect("a parsed SignedData encodes");
    let again = cms::signed_data::SignedData::from_der(&der).expect("re-encoded SignedData parses");
    assert_eq!(again, sc.signed_data);
    true
}
