//! The owner's signing material (`[owner]`): certificate chain, private key, ownership vouchers and bootstrap-server trust anchors, and the signed artifacts built from them (RFC 8572 §3.1–§3.3, §5.4)
//!
//! Loading reads files (once per start or reload); signing gives the same bytes for the same
//! inputs: ECDSA signatures are deterministic (RFC 6979), RSA PKCS#1 v1.5 signatures are too
//! (the `rsa` crate blinds the private-key operation with OS randomness, which does not change
//! the result), and no signing-time attribute is added. CMS structures come from the `cms`
//! crate's `SignedDataBuilder`.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use cms::builder::{SignedDataBuilder, SignerInfoBuilder};
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::signed_data::{EncapsulatedContentInfo, SignerIdentifier};
use der::asn1::OctetString;
use der::{Any, Encode, Tag};
use sha2::Sha256;
use spki_compat::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

use crate::config::{Config, ConfigError, FileRef};
use crate::sztp::conveyed::{
    redirect_document, unsigned_redirect, ContentFormat, RedirectEntry, ID_CT_ANIMA_JSON_VOUCHER,
};
use crate::sztp::signed::{
    format_date_and_time, open_voucher, path_to_anchor, verify_signer, Voucher, ID_DATA,
};

// spki 0.8 is what cms 0.3.0-rc.0 and x509-cert 0.3 speak; reached through cms to avoid a
// second direct dependency on the same crate
mod spki_compat {
    pub(crate) use x509_cert::spki::AlgorithmIdentifierOwned;
}

const ID_SHA256: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// The owner's private key: ECDSA P-256 or RSA (PKCS#1 v1.5 with SHA-256, what Cisco-style
/// devices verify).
pub enum OwnerKey {
    /// ECDSA P-256, signing with SHA-256 (ecdsa-with-SHA256).
    P256(p256::ecdsa::SigningKey),
    /// RSA, signing sha256WithRSAEncryption.
    Rsa(Box<rsa::pkcs1v15::SigningKey<Sha256>>),
}

impl std::fmt::Debug for OwnerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never the key itself
        match self {
            OwnerKey::P256(_) => f.write_str("OwnerKey::P256(..)"),
            OwnerKey::Rsa(_) => f.write_str("OwnerKey::Rsa(..)"),
        }
    }
}

impl OwnerKey {
    /// Parses a PEM private key: PKCS#8 (`PRIVATE KEY`, EC P-256 or RSA), SEC1 (`EC PRIVATE
    /// KEY`) or PKCS#1 (`RSA PRIVATE KEY`). Errors never quote the file.
    pub fn from_pem(pem: &str) -> Result<OwnerKey, String> {
        use p256::pkcs8::DecodePrivateKey as _;
        use rsa::pkcs1::DecodeRsaPrivateKey as _;
        if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            return Err(
                "encrypted keys are not supported: store the key unencrypted, \
                        readable only by root or the service user"
                    .into(),
            );
        }
        if pem.contains("-----BEGIN EC PRIVATE KEY-----") {
            return p256::SecretKey::from_sec1_pem(pem)
                .map(|k| OwnerKey::P256(k.into()))
                .map_err(|_| "not an EC P-256 key (only P-256 is supported)".into());
        }
        if pem.contains("-----BEGIN RSA PRIVATE KEY-----") {
            return rsa::PrivateKey::from_pkcs1_pem(pem)
                .map(|k| OwnerKey::Rsa(Box::new(rsa::pkcs1v15::SigningKey::new(k))))
                .map_err(|e| format!("not a PKCS#1 RSA key: {e}"));
        }
        if pem.contains("-----BEGIN PRIVATE KEY-----") {
            if let Ok(k) = p256::SecretKey::from_pkcs8_pem(pem) {
                return Ok(OwnerKey::P256(k.into()));
            }
            return match <rsa::PrivateKey as rsa::pkcs8::DecodePrivateKey>::from_pkcs8_pem(pem) {
                Ok(k) => Ok(OwnerKey::Rsa(Box::new(rsa::pkcs1v15::SigningKey::new(k)))),
                Err(_) => Err("a PKCS#8 key that is neither EC P-256 nor RSA".into()),
            };
        }
        Err("no PEM private key (PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)".into())
    }

    /// DER SubjectPublicKeyInfo of the public half.
    pub fn public_key_der(&self) -> Result<Vec<u8>, String> {
        use p256::pkcs8::EncodePublicKey as _;
        match self {
            OwnerKey::P256(k) => k
                .verifying_key()
                .to_public_key_der()
                .map(|d| d.as_bytes().to_vec())
                .map_err(|e| e.to_string()),
            OwnerKey::Rsa(k) => {
                use rsa::pkcs8::EncodePublicKey as _;
                let public: &rsa::PrivateKey = k.as_ref().as_ref();
                rsa::PublicKey::from(public)
                    .to_public_key_der()
                    .map(|d| d.as_bytes().to_vec())
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// Why signing failed (our fault: the material was checked at load).
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The `cms` builder or DER encoder refused.
    #[error("cms: {0}")]
    Cms(String),
}

fn cms_err(e: impl std::fmt::Display) -> SignError {
    SignError::Cms(e.to_string())
}

/// A certs-only ("degenerate") SignedData ContentInfo holding `certs` (RFC 5652 §5.2, RFC 8572
/// §3.2 owner-certificate and §6.3 trust-anchor): id-data without eContent, no signers. DER.
pub fn certs_only(certs: &[Certificate]) -> Result<Vec<u8>, SignError> {
    let content = EncapsulatedContentInfo {
        econtent_type: ID_DATA,
        econtent: None,
    };
    let mut b = SignedDataBuilder::new(&content);
    for c in certs {
        b.add_certificate(CertificateChoices::Certificate(c.clone()))
            .map_err(cms_err)?;
    }
    b.build().map_err(cms_err)?.to_der().map_err(cms_err)
}

/// A loaded ownership voucher.
#[derive(Clone, Debug)]
pub struct LoadedVoucher {
    /// Its content.
    pub voucher: Voucher,
    /// The file's bytes, served as given (RFC 8572 §3.3 ownership-voucher).
    pub der: Vec<u8>,
    /// Where it was read from.
    pub path: PathBuf,
}

/// Everything `[owner]` and the trust anchors name, loaded and checked.
#[derive(Debug)]
pub struct OwnerMaterial {
    /// The owner certificate first, then its CA certificates.
    pub chain: Vec<Certificate>,
    key: OwnerKey,
    /// The owner-certificate artifact: certs-only SignedData with `chain` (DER).
    pub owner_certificate: Vec<u8>,
    /// Vouchers by serial number.
    pub vouchers: BTreeMap<String, LoadedVoucher>,
    /// Certs-only SignedData of each bootstrap server's trust anchor, by server name.
    pub trust_anchors: HashMap<String, Vec<u8>>,
}

/// Why an answer was not signed (journaled with every RESTCONF and DNS answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnsignedReason {
    /// The device did not send `signed-data-preferred`.
    NotRequested,
    /// No `[owner]` in the configuration.
    NoOwner,
    /// The device's serial number is unknown, so no voucher can be chosen.
    NoSerial,
    /// No `<serial>.vcj` for this device.
    NoVoucher,
    /// The device's voucher has expired.
    VoucherExpired,
    /// Signing failed (logged as an error).
    SigningFailed,
}

impl UnsignedReason {
    /// In words, for logs and the status page.
    pub fn as_str(self) -> &'static str {
        match self {
            UnsignedReason::NotRequested => "not requested",
            UnsignedReason::NoOwner => "no owner key configured",
            UnsignedReason::NoSerial => "serial number unknown",
            UnsignedReason::NoVoucher => "no voucher",
            UnsignedReason::VoucherExpired => "voucher expired",
            UnsignedReason::SigningFailed => "signing failed",
        }
    }
}

/// The three artifacts of signed data (RFC 8572 §3.5 "signed data" grouping), DER each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedArtifacts {
    /// conveyed-information: SignedData, eContentType 1.43 or 1.42, signed by the owner key.
    pub conveyed_information: Vec<u8>,
    /// owner-certificate: certs-only SignedData.
    pub owner_certificate: Vec<u8>,
    /// ownership-voucher: the voucher file as given.
    pub ownership_voucher: Vec<u8>,
    /// The voucher carries no nonce (journaled when the device sent one).
    pub nonceless: bool,
}

/// Conveyed information as a device gets it: signed, or unsigned and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conveyed {
    /// Signed data.
    Signed(SignedArtifacts),
    /// Unsigned ContentInfo (DER) and why it is not signed.
    Unsigned(Vec<u8>, UnsignedReason),
}

impl OwnerMaterial {
    /// Signs `document` as SignedData with eContentType `format.oid()` (RFC 8572 §3.1),
    /// SHA-256, the owner certificate included and identified by issuer and serial number.
    pub fn sign_conveyed(
        &self,
        format: ContentFormat,
        document: &[u8],
    ) -> Result<Vec<u8>, SignError> {
        self.sign(format.oid(), document)
    }

    fn sign(
        &self,
        econtent_type: der::asn1::ObjectIdentifier,
        content: &[u8],
    ) -> Result<Vec<u8>, SignError> {
        let octets = OctetString::new(content).map_err(cms_err)?;
        let eci = EncapsulatedContentInfo {
            econtent_type,
            econtent: Some(Any::new(Tag::OctetString, octets.as_bytes()).map_err(cms_err)?),
        };
        let owner = &self.chain[0];
        let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: owner.tbs_certificate().issuer().clone(),
            serial_number: owner.tbs_certificate().serial_number().clone(),
        });
        let digest = AlgorithmIdentifierOwned {
            oid: ID_SHA256,
            parameters: None,
        };
        let sib = SignerInfoBuilder::new(sid, digest.clone(), &eci, None).map_err(cms_err)?;
        let mut b = SignedDataBuilder::new(&eci);
        b.add_digest_algorithm(digest).map_err(cms_err)?;
        b.add_certificate(CertificateChoices::Certificate(owner.clone()))
            .map_err(cms_err)?;
        match &self.key {
            OwnerKey::P256(k) => {
                b.add_signer_info::<_, p256::ecdsa::DerSignature>(sib, k)
                    .map_err(cms_err)?;
            }
            OwnerKey::Rsa(k) => {
                b.add_signer_info::<_, rsa::pkcs1v15::Signature>(sib, k.as_ref())
                    .map_err(cms_err)?;
            }
        }
        b.build().map_err(cms_err)?.to_der().map_err(cms_err)
    }

    /// The voucher for `serial`, if any.
    pub fn voucher(&self, serial: &str) -> Option<&LoadedVoucher> {
        self.vouchers.get(serial)
    }

    /// Signed redirect-information for the device `serial` (RFC 8572 §5.3 signed data):
    /// `entries` get their bootstrap server's trust anchor (`names[i]` names `entries[i]`'s
    /// server). `nonce_sent`: the device sent a nonce (the event then says whether the voucher
    /// is nonceless). `now` in Unix seconds.
    pub fn signed_redirect(
        &self,
        serial: &str,
        format: ContentFormat,
        entries: &[RedirectEntry],
        names: &[&str],
        now: u64,
    ) -> Result<SignedArtifacts, UnsignedReason> {
        let v = self.voucher(serial).ok_or(UnsignedReason::NoVoucher)?;
        if v.voucher.expired_at(now) {
            return Err(UnsignedReason::VoucherExpired);
        }
        let with_anchors: Vec<RedirectEntry> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| RedirectEntry {
                trust_anchor: names
                    .get(i)
                    .and_then(|n| self.trust_anchors.get(*n))
                    .cloned(),
                ..e.clone()
            })
            .collect();
        let doc = redirect_document(format, &with_anchors);
        let ci = self.sign_conveyed(format, &doc).map_err(|e| {
            tracing::error!(serial, error = %e, "cannot sign redirect-information");
            UnsignedReason::SigningFailed
        })?;
        Ok(SignedArtifacts {
            conveyed_information: ci,
            owner_certificate: self.owner_certificate.clone(),
            ownership_voucher: v.der.clone(),
            nonceless: v.voucher.nonce.is_none(),
        })
    }
}

/// The conveyed information for one answer: signed when `requested` (the device asked for
/// signed data, or the source is one where only signed data is trusted), `owner` is loaded,
/// the serial is known and has an unexpired voucher; otherwise the unsigned redirect and why.
/// `names[i]` is the bootstrap-server name of `entries[i]` (for its trust anchor).
pub fn conveyed(
    owner: Option<&OwnerMaterial>,
    requested: bool,
    serial: Option<&str>,
    format: ContentFormat,
    entries: &[RedirectEntry],
    names: &[&str],
    now: u64,
) -> Result<Conveyed, crate::sztp::conveyed::ConveyedError> {
    let reason = if !requested {
        UnsignedReason::NotRequested
    } else {
        match (owner, serial) {
            (None, _) => UnsignedReason::NoOwner,
            (Some(_), None) => UnsignedReason::NoSerial,
            (Some(o), Some(s)) => match o.signed_redirect(s, format, entries, names, now) {
                Ok(a) => return Ok(Conveyed::Signed(a)),
                Err(r) => r,
            },
        }
    };
    // trust anchors never go into unsigned data (digest §10.2)
    let plain: Vec<RedirectEntry> = entries
        .iter()
        .map(|e| RedirectEntry {
            trust_anchor: None,
            ..e.clone()
        })
        .collect();
    Ok(Conveyed::Unsigned(
        unsigned_redirect(format, &plain)?,
        reason,
    ))
}

/// Result of loading the owner material for a configuration.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The material; `None` without `[owner]` or when an error was found.
    pub material: Option<OwnerMaterial>,
    /// Errors that refuse the configuration (located at the key naming the file).
    pub errors: Vec<ConfigError>,
    /// Vouchers that have expired: errors for `check-config`, warnings for `run` (the
    /// devices get unsigned redirects, journaled as "voucher expired").
    pub expired: Vec<ConfigError>,
}

/// The uid and gid of the service user (`appliance.user`), if it exists.
fn service_ids(user: Option<&str>) -> Option<(u32, u32)> {
    let u = nix::unistd::User::from_name(user?).ok()??;
    Some((u.uid.as_raw(), u.gid.as_raw()))
}

/// Refuses a key file others can read: it must belong to root, the service user or the user
/// running us, and grant nothing to others; group access only for root's or the service
/// user's group.
fn check_key_permissions(path: &Path, user: Option<&str>) -> Result<(), String> {
    let m = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !m.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    let mode = m.mode() & 0o777;
    let ids = service_ids(user);
    let me = nix::unistd::geteuid().as_raw();
    let owner_ok = m.uid() == 0 || m.uid() == me || ids.is_some_and(|(u, _)| u == m.uid());
    if !owner_ok {
        return Err(format!(
            "{} belongs to uid {}: it must belong to root or the service user",
            path.display(),
            m.uid()
        ));
    }
    let group_ok = mode & 0o070 == 0 || m.gid() == 0 || ids.is_some_and(|(_, g)| g == m.gid());
    if mode & 0o007 != 0 || !group_ok {
        return Err(format!(
            "{} has mode {mode:04o}: a private key must be readable only by root or the service \
             user (chmod 600)",
            path.display()
        ));
    }
    Ok(())
}

fn read_pem_chain(f: &FileRef, config: &Path) -> Result<Vec<Certificate>, ConfigError> {
    let bytes = std::fs::read(&f.path)
        .map_err(|e| f.error(config, format!("cannot read {}: {e}", f.path.display())))?;
    let certs = Certificate::load_pem_chain(&bytes).map_err(|e| {
        f.error(
            config,
            format!("{} is not a PEM certificate chain: {e}", f.path.display()),
        )
    })?;
    if certs.is_empty() {
        return Err(f.error(config, format!("{} holds no certificate", f.path.display())));
    }
    Ok(certs)
}

/// Loads `[owner]`, its vouchers and the trust anchors of `config`, checking (RFC 8572 §5.4
/// as a device will): the key file's permissions, that the key is the owner certificate's,
/// each voucher's serial-number against its file name `<serial>.vcj`, its expiry at `now`
/// (Unix seconds), and the owner chain's path to its pinned-domain-cert. Every problem is
/// collected.
pub fn load(config: &Config, now: u64) -> Loaded {
    let mut out = Loaded::default();
    let src = config.source.as_path();
    let mut anchors = HashMap::new();
    for (name, f) in &config.trust_anchors {
        match read_pem_chain(f, src)
            .and_then(|c| certs_only(&c).map_err(|e| f.error(src, format!("cannot encode: {e}"))))
        {
            Ok(der) => {
                anchors.insert(name.clone(), der);
            }
            Err(e) => out.errors.push(e),
        }
    }
    let Some(o) = &config.owner else {
        return out;
    };
    let chain = match read_pem_chain(&o.certificate, src) {
        Ok(c) => Some(c),
        Err(e) => {
            out.errors.push(e);
            None
        }
    };
    let key = check_key_permissions(&o.key.path, config.appliance.user.as_deref())
        .and_then(|()| {
            let pem = std::fs::read_to_string(&o.key.path)
                .map_err(|e| format!("cannot read {}: {e}", o.key.path.display()))?;
            OwnerKey::from_pem(&pem).map_err(|e| format!("{}: {e}", o.key.path.display()))
        })
        .map_err(|m| o.key.error(src, m));
    let key = match key {
        Ok(k) => Some(k),
        Err(e) => {
            out.errors.push(e);
            None
        }
    };
    if let (Some(chain), Some(key)) = (&chain, &key) {
        let cert_spki = chain[0]
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .ok();
        if key.public_key_der().ok() != cert_spki || cert_spki.is_none() {
            out.errors.push(o.key.error(
                src,
                format!(
                    "{} is not the key of the owner certificate {} ({})",
                    o.key.path.display(),
                    chain[0].tbs_certificate().subject(),
                    o.certificate.path.display()
                ),
            ));
        }
    }
    let mut vouchers = BTreeMap::new();
    if let Some(dir) = &o.vouchers {
        load_vouchers(dir, src, chain.as_deref(), now, &mut vouchers, &mut out);
    }
    if !out.errors.is_empty() {
        return out;
    }
    let (Some(chain), Some(key)) = (chain, key) else {
        return out;
    };
    match certs_only(&chain) {
        Ok(owner_certificate) => {
            out.material = Some(OwnerMaterial {
                chain,
                key,
                owner_certificate,
                vouchers,
                trust_anchors: anchors,
            })
        }
        Err(e) => out
            .errors
            .push(o.certificate.error(src, format!("cannot encode: {e}"))),
    }
    out
}

fn load_vouchers(
    dir: &FileRef,
    src: &Path,
    chain: Option<&[Certificate]>,
    now: u64,
    vouchers: &mut BTreeMap<String, LoadedVoucher>,
    out: &mut Loaded,
) {
    let entries = match std::fs::read_dir(&dir.path) {
        Ok(e) => e,
        Err(e) => {
            out.errors.push(dir.error(
                src,
                format!("cannot read directory {}: {e}", dir.path.display()),
            ));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "vcj"))
        .collect();
    paths.sort();
    for p in paths {
        let stem = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bad = |m: String| dir.error(src, format!("{}: {m}", p.display()));
        let der = match std::fs::read(&p) {
            Ok(d) => d,
            Err(e) => {
                out.errors.push(bad(format!("cannot read: {e}")));
                continue;
            }
        };
        let (voucher, sc) = match open_voucher(&der) {
            Ok(v) => v,
            Err(e) => {
                out.errors.push(bad(e.to_string()));
                continue;
            }
        };
        if sc.econtent_type != ID_CT_ANIMA_JSON_VOUCHER {
            tracing::debug!(path = %p.display(), "voucher eContentType is id-data");
        }
        // the signature is the MASA's: the appliance has no manufacturer trust anchor to
        // check it against, but a voucher that does not verify with its own signer is broken
        if let Err(e) = verify_signer("ownership-voucher", &sc, &[]) {
            out.errors.push(bad(e.to_string()));
            continue;
        }
        if voucher.serial_number != stem {
            out.errors.push(bad(format!(
                "serial-number {:?} does not match the file name ({stem}.vcj)",
                voucher.serial_number
            )));
            continue;
        }
        if let Some(chain) = chain {
            let pinned = match voucher.pinned_certificate() {
                Ok(c) => c,
                Err(e) => {
                    out.errors.push(bad(e.to_string()));
                    continue;
                }
            };
            if let Err(e) = path_to_anchor(&chain[0], chain, std::slice::from_ref(&pinned), None) {
                out.errors.push(bad(format!(
                    "the owner certificate does not lead to this voucher's pinned-domain-cert \
                     {}: {e}",
                    pinned.tbs_certificate().subject()
                )));
                continue;
            }
        }
        if voucher.expired_at(now) {
            out.expired.push(bad(format!(
                "voucher expired on {}",
                format_date_and_time(voucher.expires_on.unwrap_or_default())
            )));
        }
        vouchers.insert(
            stem,
            LoadedVoucher {
                voucher,
                der,
                path: p.clone(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sztp::signed::{certs_only_certificates, open_signed_data, verify_signer};
    use der::Decode;

    /// An owner CA and an owner certificate issued by it (rcgen, P-256), as material with
    /// `vouchers`.
    fn material(vouchers: &[(&str, Option<i64>)]) -> (OwnerMaterial, Certificate) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Unit Owner CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, &ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "Unit Owner");
        let owner = p.signed_by(&key, &issuer).unwrap();
        let chain = vec![
            Certificate::from_der(owner.der()).unwrap(),
            Certificate::from_der(ca.der()).unwrap(),
        ];
        let vouchers = vouchers
            .iter()
            .map(|(s, exp)| {
                (
                    s.to_string(),
                    LoadedVoucher {
                        voucher: Voucher {
                            serial_number: s.to_string(),
                            created_on: 0,
                            expires_on: *exp,
                            assertion: "verified".into(),
                            nonce: None,
                            pinned_domain_cert: ca.der().to_vec(),
                            idevid_issuer: None,
                            domain_cert_revocation_checks: false,
                        },
                        der: format!("voucher of {s}").into_bytes(),
                        path: PathBuf::from(format!("{s}.vcj")),
                    },
                )
            })
            .collect();
        let owner_certificate = certs_only(&chain).unwrap();
        let m = OwnerMaterial {
            chain: chain.clone(),
            key: OwnerKey::from_pem(&key.serialize_pem()).unwrap(),
            owner_certificate,
            vouchers,
            trust_anchors: HashMap::from([("b".to_string(), b"TA".to_vec())]),
        };
        (m, chain[1].clone())
    }

    fn entries() -> Vec<RedirectEntry> {
        vec![
            RedirectEntry {
                address: "a.example".into(),
                port: 443,
                trust_anchor: None,
            },
            RedirectEntry {
                address: "b.example".into(),
                port: 8443,
                trust_anchor: None,
            },
        ]
    }

    #[test]
    fn certs_only_has_the_shape_of_openssl_crl2pkcs7() {
        let (m, _) = material(&[]);
        let der = &m.owner_certificate;
        // digest TV7: version 1, empty digestAlgorithms, id-data without eContent
        let tv7 = [
            0x02, 0x01, 0x01, 0x31, 0x00, 0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7,
            0x0d, 0x01, 0x07, 0x01, 0xa0, 0x82,
        ];
        assert!(
            der.windows(tv7.len()).any(|w| w == tv7),
            "{}",
            hex::encode(der)
        );
        assert!(der.ends_with(&[0x31, 0x00]), "empty signerInfos last");
        let sc = open_signed_data("owner-certificate", der).unwrap();
        assert!(sc.content.is_none());
        assert_eq!(certs_only_certificates("oc", der).unwrap().len(), 2);
    }

    #[test]
    fn signing_is_deterministic_and_verifies() {
        let (m, _) = material(&[]);
        let a = m.sign_conveyed(ContentFormat::Json, b"{}").unwrap();
        let b = m.sign_conveyed(ContentFormat::Json, b"{}").unwrap();
        assert_eq!(a, b, "RFC 6979 and no signing-time: same input, same bytes");
        let sc = open_signed_data("ci", &a).unwrap();
        assert_eq!(sc.econtent_type, ContentFormat::Json.oid());
        assert_eq!(sc.content.as_deref(), Some(&b"{}"[..]));
        let signer = verify_signer("ci", &sc, &[]).unwrap();
        assert_eq!(signer, m.chain[0]);
        let xml = m.sign_conveyed(ContentFormat::Xml, b"<x/>").unwrap();
        assert_eq!(
            open_signed_data("ci", &xml).unwrap().econtent_type,
            ContentFormat::Xml.oid()
        );
    }

    #[test]
    fn conveyed_says_why_it_is_unsigned() {
        let now = 1_000_000;
        let (m, _) = material(&[("SN1", Some(2_000_000)), ("OLD", Some(10)), ("NONE", None)]);
        let e = entries();
        let names = ["a", "b"];
        let reason =
            |owner: Option<&OwnerMaterial>, req: bool, serial: Option<&str>| match conveyed(
                owner,
                req,
                serial,
                ContentFormat::Json,
                &e,
                &names,
                now,
            )
            .unwrap()
            {
                Conveyed::Signed(_) => None,
                Conveyed::Unsigned(ci, r) => {
                    // unsigned data never carries a trust anchor
                    let back = crate::sztp::conveyed::decode_unsigned_redirect(&ci).unwrap();
                    assert!(back.iter().all(|x| x.trust_anchor.is_none()));
                    Some(r)
                }
            };
        assert_eq!(
            reason(Some(&m), false, Some("SN1")),
            Some(UnsignedReason::NotRequested)
        );
        assert_eq!(
            reason(None, true, Some("SN1")),
            Some(UnsignedReason::NoOwner)
        );
        assert_eq!(reason(Some(&m), true, None), Some(UnsignedReason::NoSerial));
        assert_eq!(
            reason(Some(&m), true, Some("SN2")),
            Some(UnsignedReason::NoVoucher)
        );
        assert_eq!(
            reason(Some(&m), true, Some("OLD")),
            Some(UnsignedReason::VoucherExpired)
        );
        assert_eq!(reason(Some(&m), true, Some("NONE")), None, "no expires-on");
        let Conveyed::Signed(a) = conveyed(
            Some(&m),
            true,
            Some("SN1"),
            ContentFormat::Json,
            &e,
            &names,
            now,
        )
        .unwrap() else {
            panic!("signed expected")
        };
        assert!(a.nonceless);
        assert_eq!(a.ownership_voucher, b"voucher of SN1");
        assert_eq!(a.owner_certificate, m.owner_certificate);
        let sc = open_signed_data("ci", &a.conveyed_information).unwrap();
        let doc = crate::sztp::conveyed::parse_redirect_json(&sc.content.unwrap()).unwrap();
        // only the server with a configured trust anchor gets one
        assert_eq!(doc[0].trust_anchor, None);
        assert_eq!(doc[1].trust_anchor.as_deref(), Some(&b"TA"[..]));
    }

    #[test]
    fn key_formats_and_refusals() {
        assert!(
            OwnerKey::from_pem("-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
                .unwrap_err()
                .contains("encrypted keys are not supported")
        );
        assert!(OwnerKey::from_pem("nothing")
            .unwrap_err()
            .contains("no PEM private key"));
        let k = rcgen::KeyPair::generate().unwrap();
        let pem = k.serialize_pem();
        let parsed = OwnerKey::from_pem(&pem).unwrap();
        let spki = parsed.public_key_der().unwrap();
        assert!(k.public_key_pem().contains(&{
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(&spki)[..40].to_string()
        }));
        // the Debug form never shows key material
        assert_eq!(format!("{parsed:?}"), "OwnerKey::P256(..)");
    }

    #[test]
    fn key_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k.pem");
        std::fs::write(&p, "x").unwrap();
        for (mode, ok) in [(0o600, true), (0o400, true), (0o644, false), (0o604, false)] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(check_key_permissions(&p, None).is_ok(), ok, "mode {mode:o}");
        }
        assert!(check_key_permissions(d.path(), None)
            .unwrap_err()
            .contains("not a regular file"));
    }
}
