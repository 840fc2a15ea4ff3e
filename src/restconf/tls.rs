//! TLS for the redirect server (rustls on ring): the certificates (configured PEM files, or an
//! RSA and an ECDSA self-signed pair generated into state-dir), the per-handshake choice
//! between them, and client certificates requested but never required
//!
//! Devices disagree on TLS (digest §4.3, interop.md §5): some accept only an RSA server
//! certificate over TLS 1.2, others demand TLS 1.3. [`CertResolver`] picks, per ClientHello,
//! the first chain whose key can sign with a scheme the client offered (ECDSA first, RSA
//! otherwise). Device identity comes from the client certificate, which is requested (with no
//! CA hints, so a device sends whatever it has) and accepted whatever its chain: the
//! CertificateVerify signature is checked (the device proves it holds the key), the chain only
//! after the handshake against `client-ca`, and an unverified certificate is an identity hint.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureAlgorithm,
    SignatureScheme,
};

use crate::config::{RedirectServer, TlsVersion};
use crate::sztp::uri::Host;

/// Directory under state-dir holding generated material.
pub const GENERATED_DIR: &str = "tls";
/// Generated ECDSA P-256 chain and key (PEM) in [`GENERATED_DIR`].
pub const GENERATED_ECDSA: (&str, &str) = ("redirect-ecdsa.crt", "redirect-ecdsa.key");
/// Generated RSA 2048 chain and key (PEM) in [`GENERATED_DIR`].
pub const GENERATED_RSA: (&str, &str) = ("redirect-rsa.crt", "redirect-rsa.key");

/// The one crypto provider: ring (aws-lc is kept out of the build).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS set-up error, naming the file at fault.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}: {message}", path.display())]
pub struct TlsError {
    /// What the file is (`tls-certificate`, `tls-key`, `client-ca`, `state-dir`).
    pub what: &'static str,
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

impl TlsError {
    fn new(what: &'static str, path: &Path, message: impl std::fmt::Display) -> TlsError {
        TlsError {
            what,
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }
}

/// Everything the handshakes need, loaded from the files a configuration names.
#[derive(Clone, Debug)]
pub struct TlsMaterial {
    /// Server chains with their keys, in preference order (ECDSA before RSA).
    pub keys: Vec<Arc<CertifiedKey>>,
    /// Verifier of device chains against `client-ca`, if configured.
    pub client_ca: Option<Arc<dyn ClientCertVerifier>>,
}

impl TlsMaterial {
    /// Loads the configured certificates (or generates/reuses the state-dir ones when none is
    /// configured) and the `client-ca` bundle.
    pub fn load(server: &RedirectServer, state_dir: &Path) -> Result<TlsMaterial, TlsError> {
        let provider = provider();
        let mut keys = Vec::new();
        if server.tls.is_empty() {
            for (cert, key) in ensure_generated(state_dir, &san_names(server))? {
                keys.push(load_pair(&cert, &key, &provider)?);
            }
        } else {
            for f in &server.tls {
                keys.push(load_pair(&f.certificate, &f.key, &provider)?);
            }
        }
        keys.sort_by_key(|k| match k.key.algorithm() {
            SignatureAlgorithm::ECDSA => 0,
            SignatureAlgorithm::ED25519 => 1,
            _ => 2,
        });
        let client_ca = match &server.client_ca {
            None => None,
            Some(path) => Some(load_client_ca(path, &provider)?),
        };
        Ok(TlsMaterial { keys, client_ca })
    }

    /// [`load`](Self::load) and [`server_config`](Self::server_config) in one step.
    pub fn load_with_config(
        server: &RedirectServer,
        state_dir: &Path,
    ) -> Result<(TlsMaterial, Arc<ServerConfig>), TlsError> {
        let m = TlsMaterial::load(server, state_dir)?;
        let c = m
            .server_config(server.min_tls_version)
            .map_err(|e| TlsError {
                what: "min-tls-version",
                path: PathBuf::new(),
                message: e.to_string(),
            })?;
        Ok((m, c))
    }

    /// The rustls configuration: versions from `min`, ALPN h2 and http/1.1, the per-handshake
    /// certificate choice, client certificates requested but optional.
    pub fn server_config(&self, min: TlsVersion) -> Result<Arc<ServerConfig>, rustls::Error> {
        let provider = provider();
        let versions: &[&rustls::SupportedProtocolVersion] = match min {
            TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersion::Tls13 => &[&rustls::version::TLS13],
        };
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(versions)?
            .with_client_cert_verifier(Arc::new(RequestClientCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_cert_resolver(Arc::new(CertResolver {
                keys: self.keys.clone(),
            }));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Whether `chain` (end-entity first, as the device sent it) is verified against
    /// `client-ca` at `now`. False without `client-ca`.
    pub fn verify_client_chain(&self, chain: &[CertificateDer<'_>], now: UnixTime) -> bool {
        match (&self.client_ca, chain.split_first()) {
            (Some(v), Some((ee, intermediates))) => {
                v.verify_client_cert(ee, intermediates, now).is_ok()
            }
            _ => false,
        }
    }
}

fn load_pair(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| TlsError::new("tls-certificate", cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::new("tls-certificate", cert, e))?;
    if chain.is_empty() {
        return Err(TlsError::new(
            "tls-certificate",
            cert,
            "no PEM CERTIFICATE in the file",
        ));
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::new("tls-key", key, e))?;
    CertifiedKey::from_der(chain, der, provider)
        .map(Arc::new)
        .map_err(|e| TlsError::new("tls-key", key, format!("{e} (with {})", cert.display())))
}

fn load_client_ca(
    path: &Path,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::new("client-ca", path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::new("client-ca", path, e))?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsError::new(
            "client-ca",
            path,
            "no usable CA certificate in the file",
        ));
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::new("client-ca", path, e))
}

/// Picks the server chain per handshake from the signature schemes the client offers.
#[derive(Debug)]
pub struct CertResolver {
    keys: Vec<Arc<CertifiedKey>>,
}

impl CertResolver {
    /// A resolver over `keys`, tried in order.
    pub fn new(keys: Vec<Arc<CertifiedKey>>) -> CertResolver {
        CertResolver { keys }
    }

    /// The chain for a client offering `offered`: the first key that can sign with one of
    /// them; a client that offers nothing we can use gets an RSA chain if there is one (a
    /// TLS 1.2 client without signature_algorithms implies RSA, RFC 5246 §7.4.1.4.1).
    pub fn choose(&self, offered: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.keys
            .iter()
            .find(|k| k.key.choose_scheme(offered).is_some())
            .or_else(|| {
                self.keys
                    .iter()
                    .find(|k| k.key.algorithm() == SignatureAlgorithm::RSA)
            })
            .or_else(|| self.keys.first())
            .cloned()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.choose(client_hello.signature_schemes())
    }
}

/// Asks for a client certificate, requires none, accepts any chain (it is verified after the
/// handshake against `client-ca`, when configured), but checks the CertificateVerify signature
/// so a device must hold the certificate's key.
#[derive(Debug)]
struct RequestClientCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for RequestClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // no hints: a client should then send whatever certificate it has (RFC 8446 §4.2.4)
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Subject alternative names of generated certificates: the advertise host and every listen
/// address that is not a wildcard.
pub fn san_names(server: &RedirectServer) -> Vec<String> {
    let mut names = vec![match &server.advertise.host {
        Host::Name(n) => n.clone(),
        Host::V4(a) => a.to_string(),
        Host::V6(a) => a.to_string(),
    }];
    for l in &server.listen {
        let ip = l.ip().to_string();
        if !l.ip().is_unspecified() && !names.contains(&ip) {
            names.push(ip);
        }
    }
    names
}

/// The generated (certificate, key) paths in state-dir, ECDSA first; missing ones are made now
/// with `names` as subject alternative names, existing ones are reused as they are.
pub fn ensure_generated(
    state_dir: &Path,
    names: &[String],
) -> Result<Vec<(PathBuf, PathBuf)>, TlsError> {
    let dir = state_dir.join(GENERATED_DIR);
    fs::create_dir_all(&dir).map_err(|e| TlsError::new("state-dir", &dir, e))?;
    let mut out = Vec::new();
    for (files, rsa) in [(GENERATED_ECDSA, false), (GENERATED_RSA, true)] {
        let cert = dir.join(files.0);
        let key = dir.join(files.1);
        if !(cert.exists() && key.exists()) {
            let (cert_pem, key_pem) = self_signed(names, rsa).map_err(|e| {
                TlsError::new("tls-certificate", &cert, format!("cannot generate: {e}"))
            })?;
            write_file(&key, key_pem.as_bytes(), 0o600)
                .map_err(|e| TlsError::new("tls-key", &key, e))?;
            write_file(&cert, cert_pem.as_bytes(), 0o644)
                .map_err(|e| TlsError::new("tls-certificate", &cert, e))?;
            tracing::info!(
                certificate = %cert.display(),
                names = ?names,
                "generated a self-signed {} certificate for the redirect server",
                if rsa { "RSA" } else { "ECDSA" }
            );
        }
        out.push((cert, key));
    }
    Ok(out)
}

/// A self-signed certificate (PEM) and its PKCS#8 key (PEM): ECDSA P-256 with SHA-256, or RSA
/// 2048 with SHA-256. Validity is rcgen's default (1975 to 4096): devices without a clock
/// must not reject it for dates.
pub fn self_signed(names: &[String], rsa: bool) -> Result<(String, String), rcgen::Error> {
    let key = if rsa {
        rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&rsa_pkcs8()?.into(), &rcgen::PKCS_RSA_SHA256)?
    } else {
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?
    };
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sztp-redirector");
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A new RSA 2048 private key, PKCS#8 DER. ring cannot generate RSA keys, so the RustCrypto
/// `rsa` crate does (only here, once per state-dir; ring signs with it afterwards).
fn rsa_pkcs8() -> Result<Vec<u8>, rcgen::Error> {
    use rsa::pkcs8::EncodePrivateKey;
    let mut rng = getrandom::SysRng;
    let key =
        rsa::PrivateKey::new(&mut rng, 2048).map_err(|_| rcgen::Error::KeyGenerationUnavailable)?;
    let der = key
        .to_pkcs8_der()
        .map_err(|_| rcgen::Error::KeyGenerationUnavailable)?;
    Ok(der.as_bytes().to_vec())
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    // write beside, then rename: a crash never leaves half a key
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(rsa: bool) -> Arc<CertifiedKey> {
        let (c, k) = self_signed(&["192.0.2.1".into()], rsa).unwrap();
        let chain = vec![CertificateDer::from_pem_slice(c.as_bytes()).unwrap()];
        let der = PrivateKeyDer::from_pem_slice(k.as_bytes()).unwrap();
        Arc::new(CertifiedKey::from_der(chain, der, &provider()).unwrap())
    }

    #[test]
    fn rsa_for_rsa_only_clients_ecdsa_otherwise() {
        let r = CertResolver::new(vec![key(false), key(true)]);
        let alg = |s: &[SignatureScheme]| r.choose(s).unwrap().key.algorithm();
        assert_eq!(
            alg(&[
                SignatureScheme::RSA_PKCS1_SHA256,
                SignatureScheme::RSA_PSS_SHA256
            ]),
            SignatureAlgorithm::RSA
        );
        assert_eq!(
            alg(&[
                SignatureScheme::ECDSA_NISTP256_SHA256,
                SignatureScheme::RSA_PSS_SHA256
            ]),
            SignatureAlgorithm::ECDSA
        );
        assert_eq!(alg(&[]), SignatureAlgorithm::RSA);
        assert_eq!(alg(&[SignatureScheme::ED448]), SignatureAlgorithm::RSA);
    }

    #[test]
    fn generated_material_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["192.0.2.1".to_string(), "sztp.example.com".to_string()];
        let first = ensure_generated(dir.path(), &names).unwrap();
        let pem = fs::read(&first[0].0).unwrap();
        let again = ensure_generated(dir.path(), &names).unwrap();
        assert_eq!(first, again);
        assert_eq!(fs::read(&again[0].0).unwrap(), pem);
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&first[1].1).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
