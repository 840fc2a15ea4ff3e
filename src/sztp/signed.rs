//! Signed SZTP artifacts read as a device reads them (RFC 8572 §3.1–§3.3, §5.4): CMS
//! SignedData opened and its signature checked, certs-only bundles, RFC 8366 vouchers, and
//! certificate paths to a pinned-domain-cert or a manufacturer trust anchor
//!
//! Pure functions over bytes; the time of day comes in as Unix seconds. The `cms` crate parses
//! but does not verify (0.3.0-rc.0 has builders only), and webpki cannot anchor a path on an
//! end-entity certificate or on a voucher's pinned-domain-cert without TLS key-usage rules, so
//! the checks of RFC 5652 §5.4/§5.6 (message digest, content type, signature over the signed
//! attributes) and of the certificate signatures along a path are written here, small, over
//! `der`/`x509-cert` types with `ring` doing the cryptography.

use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use serde::Deserialize;
use x509_cert::Certificate;

use super::conveyed::{ID_CT_ANIMA_JSON_VOUCHER, ID_SIGNED_DATA};

/// id-data, 1.2.840.113549.1.7.1 (RFC 5652 §4): the eContentType of certs-only SignedData.
pub const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const ID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");

/// Why a signed artifact was not accepted. Every message names what a device would reject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedError {
    /// Not DER, truncated, or not the expected ASN.1 structure.
    #[error("{what} is not valid DER: {detail}")]
    Der {
        /// Which artifact.
        what: &'static str,
        /// The decoder's message.
        detail: String,
    },
    /// The outer ContentInfo is not id-signedData.
    #[error("{what}: content type {oid} is not id-signedData (1.2.840.113549.1.7.2)")]
    NotSignedData {
        /// Which artifact.
        what: &'static str,
        /// The content type found.
        oid: ObjectIdentifier,
    },
    /// eContentType is not one this artifact may carry.
    #[error("{what}: eContentType {oid} is not {expected}")]
    ContentType {
        /// Which artifact.
        what: &'static str,
        /// Found.
        oid: ObjectIdentifier,
        /// What was expected, in words.
        expected: &'static str,
    },
    /// SignedData without eContent (detached), where content is required.
    #[error("{what}: no encapsulated content")]
    NoContent {
        /// Which artifact.
        what: &'static str,
    },
    /// No SignerInfo.
    #[error("{what}: no signer")]
    NoSigner {
        /// Which artifact.
        what: &'static str,
    },
    /// The signer's certificate is in neither the SignedData nor the candidates given.
    #[error("{what}: the signer's certificate ({sid}) is not included")]
    SignerCertificateMissing {
        /// Which artifact.
        what: &'static str,
        /// The SignerIdentifier, in words.
        sid: String,
    },
    /// messageDigest attribute differs from the digest of eContent (content tampered with).
    #[error("{what}: message digest does not match the content (modified after signing)")]
    DigestMismatch {
        /// Which artifact.
        what: &'static str,
    },
    /// contentType attribute differs from eContentType (RFC 5652 §11.1).
    #[error("{what}: signed content-type attribute differs from eContentType")]
    ContentTypeAttribute {
        /// Which artifact.
        what: &'static str,
    },
    /// The signature does not verify with the named key.
    #[error("{what}: signature does not verify with the key of {signer}")]
    BadSignature {
        /// Which artifact or certificate.
        what: String,
        /// Subject of the certificate whose key was used.
        signer: String,
    },
    /// Algorithm not supported (only ECDSA P-256/P-384 and RSA PKCS#1 v1.5 with SHA-2).
    #[error("{what}: unsupported algorithm {oid}")]
    Unsupported {
        /// Which artifact.
        what: String,
        /// The algorithm OID.
        oid: ObjectIdentifier,
    },
    /// No certificate path from a certificate to the anchor.
    #[error("{0}")]
    Path(String),
    /// The voucher's JSON is not an RFC 8366 voucher.
    #[error("ownership voucher: {0}")]
    Voucher(String),
}

fn der_err(what: &'static str) -> impl Fn(der::Error) -> SignedError {
    move |e| SignedError::Der {
        what,
        detail: e.to_string(),
    }
}

/// A SignedData opened (not yet verified): its content and its certificates.
#[derive(Clone, Debug)]
pub struct SignedContent {
    /// encapContentInfo.eContentType.
    pub econtent_type: ObjectIdentifier,
    /// The eContent octets (the signed document); empty for certs-only SignedData.
    pub content: Option<Vec<u8>>,
    /// `certificates`, in the order given.
    pub certificates: Vec<Certificate>,
    /// The parsed SignedData.
    pub signed_data: SignedData,
}

/// Opens a DER ContentInfo that must be id-signedData (RFC 5652 §5). `what` names the artifact
/// in errors (e.g. `conveyed-information`).
pub fn open_signed_data(what: &'static str, der: &[u8]) -> Result<SignedContent, SignedError> {
    let ci = ContentInfo::from_der(der).map_err(der_err(what))?;
    if ci.content_type != ID_SIGNED_DATA {
        return Err(SignedError::NotSignedData {
            what,
            oid: ci.content_type,
        });
    }
    let sd: SignedData = ci.content.decode_as().map_err(der_err(what))?;
    let content = match &sd.encap_content_info.econtent {
        Some(any) => Some(
            any.decode_as::<OctetString>()
                .map_err(der_err(what))?
                .into_bytes()
                .into_vec(),
        ),
        None => None,
    };
    let certificates = sd
        .certificates
        .as_ref()
        .map(|set| {
            set.0
                .iter()
                .filter_map(|c| match c {
                    CertificateChoices::Certificate(c) => Some(c.clone()),
                    CertificateChoices::Other(_) => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(SignedContent {
        econtent_type: sd.encap_content_info.econtent_type,
        content,
        certificates,
        signed_data: sd,
    })
}

/// The certificates of a certs-only SignedData (RFC 8572 §3.2 owner-certificate, §6.3
/// trust-anchor): id-data without eContent and no signers.
pub fn certs_only_certificates(
    what: &'static str,
    der: &[u8],
) -> Result<Vec<Certificate>, SignedError> {
    let sc = open_signed_data(what, der)?;
    if sc.certificates.is_empty() {
        return Err(SignedError::Path(format!("{what}: holds no certificate")));
    }
    Ok(sc.certificates)
}

fn sid_matches(sid: &SignerIdentifier, cert: &Certificate) -> bool {
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => {
            ias.issuer == *cert.tbs_certificate().issuer()
                && ias.serial_number.as_bytes() == cert.tbs_certificate().serial_number().as_bytes()
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => cert
            .tbs_certificate()
            .get_extension::<x509_cert::ext::pkix::SubjectKeyIdentifier>()
            .ok()
            .flatten()
            .is_some_and(|(_, k)| k.0 == ski.0),
    }
}

fn sid_text(sid: &SignerIdentifier) -> String {
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => format!(
            "issuer {}, serial {}",
            ias.issuer,
            hex::encode(ias.serial_number.as_bytes())
        ),
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            format!("subject key id {}", hex::encode(ski.0.as_bytes()))
        }
    }
}

fn digest(what: &str, alg: &ObjectIdentifier, data: &[u8]) -> Result<Vec<u8>, SignedError> {
    let a = if *alg == ID_SHA256 {
        &ring::digest::SHA256
    } else if *alg == ID_SHA384 {
        &ring::digest::SHA384
    } else if *alg == ID_SHA512 {
        &ring::digest::SHA512
    } else {
        return Err(SignedError::Unsupported {
            what: what.to_string(),
            oid: *alg,
        });
    };
    Ok(ring::digest::digest(a, data).as_ref().to_vec())
}

/// Verifies `signature` over `message` with the public key of `cert`. `sig_alg` is the
/// signature algorithm OID; `digest_alg` the digest when `sig_alg` is plain rsaEncryption (as
/// OpenSSL writes in SignerInfo).
fn verify_with(
    what: &str,
    cert: &Certificate,
    sig_alg: &ObjectIdentifier,
    digest_alg: Option<&ObjectIdentifier>,
    message: &[u8],
    signature: &[u8],
) -> Result<(), SignedError> {
    use ring::signature as rs;
    let spki = cert.tbs_certificate().subject_public_key_info();
    let key = spki.subject_public_key.raw_bytes();
    let unsupported = |oid: ObjectIdentifier| SignedError::Unsupported {
        what: what.to_string(),
        oid,
    };
    let alg: &dyn rs::VerificationAlgorithm = if spki.algorithm.oid == ID_EC_PUBLIC_KEY {
        let curve: ObjectIdentifier = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as().ok())
            .ok_or(unsupported(spki.algorithm.oid))?;
        match (curve, *sig_alg) {
            (SECP256R1, ECDSA_SHA256) => &rs::ECDSA_P256_SHA256_ASN1,
            (SECP256R1, ECDSA_SHA384) => &rs::ECDSA_P256_SHA384_ASN1,
            (SECP384R1, ECDSA_SHA256) => &rs::ECDSA_P384_SHA256_ASN1,
            (SECP384R1, ECDSA_SHA384) => &rs::ECDSA_P384_SHA384_ASN1,
            (SECP256R1 | SECP384R1, other) => return Err(unsupported(other)),
            (other, _) => return Err(unsupported(other)),
        }
    } else if spki.algorithm.oid == RSA_ENCRYPTION {
        let effective = if *sig_alg == RSA_ENCRYPTION {
            match digest_alg {
                Some(d) if *d == ID_SHA256 => SHA256_WITH_RSA,
                Some(d) if *d == ID_SHA384 => SHA384_WITH_RSA,
                Some(d) if *d == ID_SHA512 => SHA512_WITH_RSA,
                Some(d) => return Err(unsupported(*d)),
                None => return Err(unsupported(*sig_alg)),
            }
        } else {
            *sig_alg
        };
        match effective {
            SHA256_WITH_RSA => &rs::RSA_PKCS1_2048_8192_SHA256,
            SHA384_WITH_RSA => &rs::RSA_PKCS1_2048_8192_SHA384,
            SHA512_WITH_RSA => &rs::RSA_PKCS1_2048_8192_SHA512,
            other => return Err(unsupported(other)),
        }
    } else {
        return Err(unsupported(spki.algorithm.oid));
    };
    rs::UnparsedPublicKey::new(alg, key)
        .verify(message, signature)
        .map_err(|_| SignedError::BadSignature {
            what: what.to_string(),
            signer: cert.tbs_certificate().subject().to_string(),
        })
}

/// Verifies the first SignerInfo of `sc` (RFC 5652 §5.4, §5.6): finds the signer's
/// certificate among the SignedData's certificates and `extra`, checks the messageDigest and
/// contentType signed attributes against the content, then the signature. Returns the
/// signer's certificate.
pub fn verify_signer(
    what: &'static str,
    sc: &SignedContent,
    extra: &[Certificate],
) -> Result<Certificate, SignedError> {
    let si: &SignerInfo = sc
        .signed_data
        .signer_infos
        .0
        .iter()
        .next()
        .ok_or(SignedError::NoSigner { what })?;
    let cert = sc
        .certificates
        .iter()
        .chain(extra)
        .find(|c| sid_matches(&si.sid, c))
        .ok_or_else(|| SignedError::SignerCertificateMissing {
            what,
            sid: sid_text(&si.sid),
        })?;
    let content = sc
        .content
        .as_deref()
        .ok_or(SignedError::NoContent { what })?;
    let message = match &si.signed_attrs {
        Some(attrs) => {
            let expected = digest(what, &si.digest_alg.oid, content)?;
            let mut digest_ok = false;
            let mut type_seen = false;
            for a in attrs.iter() {
                if a.oid == ID_MESSAGE_DIGEST {
                    digest_ok = a.values.iter().any(|v| {
                        v.decode_as::<OctetString>()
                            .is_ok_and(|o| o.as_bytes() == expected.as_slice())
                    });
                } else if a.oid == ID_CONTENT_TYPE {
                    type_seen = true;
                    let ok = a.values.iter().all(|v| {
                        v.decode_as::<ObjectIdentifier>()
                            .is_ok_and(|o| o == sc.econtent_type)
                    });
                    if !ok {
                        return Err(SignedError::ContentTypeAttribute { what });
                    }
                }
            }
            if !digest_ok {
                return Err(SignedError::DigestMismatch { what });
            }
            if !type_seen {
                return Err(SignedError::ContentTypeAttribute { what });
            }
            attrs.to_der().map_err(der_err(what))?
        }
        None => content.to_vec(),
    };
    verify_with(
        what,
        cert,
        &si.signature_algorithm.oid,
        Some(&si.digest_alg.oid),
        &message,
        si.signature.as_bytes(),
    )?;
    Ok(cert.clone())
}

/// Whether `child` was issued by `issuer`: names chain and `issuer`'s key verifies the
/// signature over `child`'s tbsCertificate (RFC 5280 §6.1.3 (a)(1), (a)(4)).
pub fn verify_issued_by(child: &Certificate, issuer: &Certificate) -> Result<(), SignedError> {
    if child.tbs_certificate().issuer() != issuer.tbs_certificate().subject() {
        return Err(SignedError::Path(format!(
            "{} is not issued by {}",
            child.tbs_certificate().subject(),
            issuer.tbs_certificate().subject()
        )));
    }
    let tbs = child
        .tbs_certificate()
        .to_der()
        .map_err(der_err("certificate"))?;
    let what = format!("certificate {}", child.tbs_certificate().subject());
    let sig = child
        .signature()
        .as_bytes()
        .ok_or(SignedError::BadSignature {
            what: what.clone(),
            signer: issuer.tbs_certificate().subject().to_string(),
        })?;
    verify_with(
        &what,
        issuer,
        &child.signature_algorithm().oid,
        None,
        &tbs,
        sig,
    )
}

/// Whether `cert` is valid at `now` (Unix seconds).
pub fn check_validity(cert: &Certificate, now: u64) -> Result<(), SignedError> {
    let v = cert.tbs_certificate().validity();
    let nb = v.not_before.to_unix_duration().as_secs();
    let na = v.not_after.to_unix_duration().as_secs();
    if now < nb || now > na {
        return Err(SignedError::Path(format!(
            "certificate {} is not valid now (valid {} to {})",
            cert.tbs_certificate().subject(),
            v.not_before,
            v.not_after
        )));
    }
    Ok(())
}

fn same(a: &Certificate, b: &Certificate) -> bool {
    a.to_der().ok() == b.to_der().ok()
}

/// Finds a path from `leaf` through `intermediates` to one of `anchors` (RFC 5280 §6, without
/// policy or name constraints): every signature verified and, when `now` is given, every
/// certificate valid then. `leaf` may itself be an anchor (a voucher may pin the owner
/// certificate). Returns the subjects along the path, leaf first.
pub fn path_to_anchor(
    leaf: &Certificate,
    intermediates: &[Certificate],
    anchors: &[Certificate],
    now: Option<u64>,
) -> Result<Vec<String>, SignedError> {
    let mut path = vec![leaf.tbs_certificate().subject().to_string()];
    let mut cur = leaf.clone();
    let mut last_error = None;
    // RFC 8572 chains are short; the bound also stops issuer loops
    for _ in 0..8 {
        if let Some(n) = now {
            check_validity(&cur, n)?;
        }
        if anchors.iter().any(|a| same(a, &cur)) {
            return Ok(path);
        }
        if let Some(a) = anchors.iter().find(|a| {
            verify_issued_by(&cur, a)
                .map_err(|e| last_error = Some(e))
                .is_ok()
        }) {
            path.push(a.tbs_certificate().subject().to_string());
            return Ok(path);
        }
        let next = intermediates.iter().find(|i| {
            !same(i, &cur)
                && verify_issued_by(&cur, i)
                    .map_err(|e| last_error = Some(e))
                    .is_ok()
        });
        match next {
            Some(n) => {
                path.push(n.tbs_certificate().subject().to_string());
                cur = n.clone();
            }
            None => break,
        }
    }
    let why = match last_error {
        Some(SignedError::BadSignature { what, signer }) => {
            format!(" ({what}: signature does not verify with the key of {signer})")
        }
        _ => String::new(),
    };
    Err(SignedError::Path(format!(
        "no certificate path from {} to {}{why}",
        path.join(" <- "),
        anchors
            .iter()
            .map(|a| a.tbs_certificate().subject().to_string())
            .collect::<Vec<_>>()
            .join(" or ")
    )))
}

/// An RFC 8366 ownership voucher's content (the `ietf-voucher:voucher` container).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Voucher {
    /// `serial-number`: the device it is for.
    pub serial_number: String,
    /// `created-on`, Unix seconds.
    pub created_on: i64,
    /// `expires-on`, Unix seconds; `None`: does not expire (nonceful vouchers).
    pub expires_on: Option<i64>,
    /// `assertion`: verified, logged or proximity.
    pub assertion: String,
    /// `nonce` octets, when the voucher is bound to one device request.
    pub nonce: Option<Vec<u8>>,
    /// `pinned-domain-cert`: DER of the certificate the owner chain must lead to.
    pub pinned_domain_cert: Vec<u8>,
    /// `idevid-issuer` octets (AuthorityKeyIdentifier of the device's IDevID), if present.
    pub idevid_issuer: Option<Vec<u8>>,
    /// `domain-cert-revocation-checks`.
    pub domain_cert_revocation_checks: bool,
}

impl Voucher {
    /// The pinned-domain-cert parsed.
    pub fn pinned_certificate(&self) -> Result<Certificate, SignedError> {
        Certificate::from_der(&self.pinned_domain_cert).map_err(|e| {
            SignedError::Voucher(format!("pinned-domain-cert is not a certificate: {e}"))
        })
    }

    /// Whether it has expired at `now` (Unix seconds).
    pub fn expired_at(&self, now: u64) -> bool {
        self.expires_on.is_some_and(|e| e < now as i64)
    }
}

#[derive(Deserialize)]
struct VoucherDoc {
    #[serde(rename = "ietf-voucher:voucher")]
    voucher: RawVoucher,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawVoucher {
    created_on: String,
    expires_on: Option<String>,
    assertion: String,
    serial_number: String,
    idevid_issuer: Option<String>,
    pinned_domain_cert: String,
    #[serde(default)]
    domain_cert_revocation_checks: bool,
    nonce: Option<String>,
}

/// Parses a `yang:date-and-time` (RFC 3339) into Unix seconds.
pub fn parse_date_and_time(s: &str) -> Result<i64, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|e| format!("{s:?} is not an RFC 3339 date-and-time: {e}"))
}

/// Formats Unix seconds as RFC 3339 UTC.
pub fn format_date_and_time(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

/// Parses the JSON of an RFC 8366 voucher (§5.3 tree, RFC 7951 encoding).
pub fn parse_voucher_json(json: &[u8]) -> Result<Voucher, SignedError> {
    use base64::Engine;
    let b64 = |name: &str, s: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map_err(|e| SignedError::Voucher(format!("{name} is not base64: {e}")))
    };
    let doc: VoucherDoc = serde_json::from_slice(json)
        .map_err(|e| SignedError::Voucher(format!("not an RFC 8366 voucher: {e}")))?;
    let v = doc.voucher;
    if !matches!(v.assertion.as_str(), "verified" | "logged" | "proximity") {
        return Err(SignedError::Voucher(format!(
            "assertion {:?} is not verified, logged or proximity",
            v.assertion
        )));
    }
    Ok(Voucher {
        created_on: parse_date_and_time(&v.created_on)
            .map_err(|e| SignedError::Voucher(format!("created-on: {e}")))?,
        expires_on: v
            .expires_on
            .as_deref()
            .map(parse_date_and_time)
            .transpose()
            .map_err(|e| SignedError::Voucher(format!("expires-on: {e}")))?,
        assertion: v.assertion,
        serial_number: v.serial_number,
        idevid_issuer: v
            .idevid_issuer
            .as_deref()
            .map(|s| b64("idevid-issuer", s))
            .transpose()?,
        pinned_domain_cert: b64("pinned-domain-cert", &v.pinned_domain_cert)?,
        domain_cert_revocation_checks: v.domain_cert_revocation_checks,
        nonce: v.nonce.as_deref().map(|s| b64("nonce", s)).transpose()?,
    })
}

/// Opens an ownership voucher artifact (RFC 8366 §5.4: SignedData whose eContentType is
/// id-ct-animaJSONVoucher, or id-data as RFC 8572 §3.3 allows) and parses its JSON, without
/// checking the signature (see [`verify_voucher`]).
pub fn open_voucher(der: &[u8]) -> Result<(Voucher, SignedContent), SignedError> {
    let sc = open_signed_data("ownership-voucher", der)?;
    if sc.econtent_type != ID_CT_ANIMA_JSON_VOUCHER && sc.econtent_type != ID_DATA {
        return Err(SignedError::ContentType {
            what: "ownership-voucher",
            oid: sc.econtent_type,
            expected: "id-ct-animaJSONVoucher (1.2.840.113549.1.9.16.1.40) or id-data",
        });
    }
    let content = sc.content.as_deref().ok_or(SignedError::NoContent {
        what: "ownership-voucher",
    })?;
    Ok((parse_voucher_json(content)?, sc))
}

/// One §5.4 check as `probe` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What was checked, e.g. `voucher signature`.
    pub name: &'static str,
    /// `Ok(detail)` or `Err(why it fails)`.
    pub result: Result<String, String>,
}

/// Everything a device learns from signed bootstrapping data.
#[derive(Clone, Debug, Default)]
pub struct Verified {
    /// Every check in the order RFC 8572 §5.4 gives them; processing stops at the first
    /// failure, so a failed check is the last one.
    pub checks: Vec<Check>,
    /// The conveyed information's eContentType and document, when every check passed.
    pub document: Option<(ObjectIdentifier, Vec<u8>)>,
}

impl Verified {
    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        self.document.is_some() && self.checks.iter().all(|c| c.result.is_ok())
    }
}

/// Validates signed data as a device does (RFC 8572 §5.4): the voucher's signature to one of
/// `manufacturer` (trust anchors for vouchers), its `serial-number` against `serial` (when
/// known), its validity at `now` (Unix seconds), the owner certificate's path to the
/// pinned-domain-cert, and the conveyed information's signature by the owner certificate.
pub fn verify_bootstrapping_data(
    conveyed_information: &[u8],
    owner_certificate: &[u8],
    ownership_voucher: &[u8],
    manufacturer: &[Certificate],
    serial: Option<&str>,
    now: u64,
) -> Verified {
    let mut out = Verified::default();
    let mut push = |name: &'static str, r: Result<String, String>| {
        let ok = r.is_ok();
        out.checks.push(Check { name, result: r });
        ok
    };
    // voucher
    let (voucher, sc) = match open_voucher(ownership_voucher) {
        Ok(v) => v,
        Err(e) => {
            push("voucher format", Err(e.to_string()));
            return out;
        }
    };
    let signer = match verify_signer("ownership-voucher", &sc, &[]) {
        Ok(c) => c,
        Err(e) => {
            push("voucher signature", Err(e.to_string()));
            return out;
        }
    };
    let mut path = match path_to_anchor(&signer, &sc.certificates, manufacturer, Some(now)) {
        Ok(p) => Ok(format!("signed by {}", p.join(" <- "))),
        Err(e) => Err(format!("voucher signer: {e}")),
    };
    if manufacturer.is_empty() {
        path = Err("no manufacturer trust anchor given (--manufacturer-ca)".into());
    }
    if !push("voucher signature", path) {
        return out;
    }
    let serial_check = match serial {
        Some(s) if s == voucher.serial_number => Ok(format!("serial-number {s}")),
        Some(s) => Err(format!(
            "serial-number {:?} is not this device's ({s:?})",
            voucher.serial_number
        )),
        None => Ok(format!(
            "serial-number {} (device serial unknown: not compared)",
            voucher.serial_number
        )),
    };
    if !push("voucher serial-number", serial_check) {
        return out;
    }
    let n = now as i64;
    let validity = if voucher.created_on > n {
        Err(format!(
            "created-on {} is in the future",
            format_date_and_time(voucher.created_on)
        ))
    } else if voucher.expired_at(now) {
        Err(format!(
            "expired on {}",
            format_date_and_time(voucher.expires_on.unwrap_or_default())
        ))
    } else {
        Ok(format!(
            "created-on {}, expires-on {}, assertion {}",
            format_date_and_time(voucher.created_on),
            voucher
                .expires_on
                .map_or_else(|| "none".to_string(), format_date_and_time),
            voucher.assertion
        ))
    };
    if !push("voucher validity", validity) {
        return out;
    }
    let pinned = match voucher.pinned_certificate() {
        Ok(p) => p,
        Err(e) => {
            push("owner certificate", Err(e.to_string()));
            return out;
        }
    };
    // owner certificate and conveyed information
    let owner_chain = match certs_only_certificates("owner-certificate", owner_certificate) {
        Ok(c) => c,
        Err(e) => {
            push("owner certificate", Err(e.to_string()));
            return out;
        }
    };
    let ci = match open_signed_data("conveyed-information", conveyed_information) {
        Ok(c) => c,
        Err(e) => {
            push("conveyed-information signature", Err(e.to_string()));
            return out;
        }
    };
    // the owner certificate is the one that signs the conveyed information
    let ci_signer = match verify_signer("conveyed-information", &ci, &owner_chain) {
        Ok(c) => c,
        Err(e) => {
            push("conveyed-information signature", Err(e.to_string()));
            return out;
        }
    };
    let in_owner_chain = owner_chain.iter().any(|c| same(c, &ci_signer));
    let oc_path = if !in_owner_chain {
        Err(format!(
            "the conveyed-information signer {} is not in the owner-certificate artifact",
            ci_signer.tbs_certificate().subject()
        ))
    } else {
        path_to_anchor(
            &ci_signer,
            &owner_chain,
            std::slice::from_ref(&pinned),
            Some(now),
        )
        .map(|p| format!("{} (pinned-domain-cert)", p.join(" <- ")))
        .map_err(|e| e.to_string())
    };
    if !push("owner certificate path", oc_path) {
        return out;
    }
    let format_ok = super::conveyed::ContentFormat::from_oid(&ci.econtent_type).is_some();
    let detail = if format_ok {
        Ok(format!(
            "signed by {}, eContentType {}",
            ci_signer.tbs_certificate().subject(),
            ci.econtent_type
        ))
    } else {
        Err(format!(
            "eContentType {} is not SZTP conveyed information (1.42/1.43)",
            ci.econtent_type
        ))
    };
    if !push("conveyed-information signature", detail) {
        return out;
    }
    out.document = ci.content.map(|c| (ci.econtent_type, c));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voucher_json(extra: &str) -> String {
        format!(
            r#"{{"ietf-voucher:voucher":{{"created-on":"2026-01-01T00:00:00Z",{extra}"assertion":"verified","serial-number":"SN1","pinned-domain-cert":"AAEC"}}}}"#
        )
    }

    #[test]
    fn vouchers_parse_strictly_enough() {
        let v = parse_voucher_json(voucher_json("").as_bytes()).unwrap();
        assert_eq!(v.serial_number, "SN1");
        assert_eq!(v.created_on, 1_767_225_600);
        assert_eq!(v.expires_on, None);
        assert!(!v.expired_at(u64::MAX), "no expires-on: never expires");
        assert_eq!(v.pinned_domain_cert, [0, 1, 2]);
        let v = parse_voucher_json(
            voucher_json(r#""expires-on":"2026-01-02T01:00:00+01:00","nonce":"AAE=","#).as_bytes(),
        )
        .unwrap();
        assert_eq!(v.expires_on, Some(1_767_225_600 + 86_400));
        assert!(v.expired_at(1_767_225_600 + 86_401));
        assert!(!v.expired_at(1_767_225_600 + 86_400));
        assert_eq!(v.nonce.as_deref(), Some(&[0u8, 1][..]));
        for (bad, why) in [
            (r#"{"voucher":{}}"#, "not an RFC 8366 voucher"),
            (
                &voucher_json(r#""expires-on":"tomorrow","#)[..],
                "expires-on: \"tomorrow\" is not an RFC 3339 date-and-time",
            ),
            (
                &voucher_json("").replace("verified", "trusted")[..],
                "assertion \"trusted\" is not verified, logged or proximity",
            ),
            (
                &voucher_json("").replace("AAEC", "!!")[..],
                "pinned-domain-cert is not base64",
            ),
        ] {
            let e = parse_voucher_json(bad.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn not_signed_data_is_named() {
        let unsigned = crate::sztp::conveyed::unsigned_redirect(
            crate::sztp::conveyed::ContentFormat::Json,
            &[],
        )
        .unwrap();
        let e = open_signed_data("conveyed-information", &unsigned).unwrap_err();
        assert_eq!(
            e.to_string(),
            "conveyed-information: content type 1.2.840.113549.1.9.16.1.43 is not id-signedData \
             (1.2.840.113549.1.7.2)"
        );
        let e = open_signed_data("ownership-voucher", b"\x30\x03\x02").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("ownership-voucher is not valid DER"),
            "{e}"
        );
        let v = verify_bootstrapping_data(&unsigned, &unsigned, b"junk", &[], None, 0);
        assert!(!v.ok());
        assert_eq!(v.checks.len(), 1);
        assert_eq!(v.checks[0].name, "voucher format");
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(parse_date_and_time("1970-01-01T00:00:10Z"), Ok(10));
        assert_eq!(format_date_and_time(10), "1970-01-01T00:00:10Z");
    }
}
