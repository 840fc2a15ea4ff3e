//! A test PKI made with the openssl CLI: a manufacturer (MASA) CA and voucher signer, an owner
//! CA (the vouchers' pinned-domain-cert) and owner certificate, a TLS CA for the owner's
//! bootstrap server (the redirect's trust-anchor), and vouchers signed by the MASA with
//! `openssl cms -sign -econtent_type 1.2.840.113549.1.9.16.1.40`.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;

const CNF: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// Runs openssl with `args` in `dir`; panics with its stderr on failure.
pub(crate) fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs openssl and returns (success, stdout, stderr) without asserting.
pub(crate) fn openssl_try(dir: &Path, args: &[&str]) -> (bool, Vec<u8>, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Key algorithm of a generated key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Alg {
    /// P-256 written as SEC1 (`EC PRIVATE KEY`).
    P256Sec1,
    /// P-256 written as PKCS#8.
    P256,
    /// RSA 2048 as PKCS#8.
    Rsa,
}

/// Every file of the test PKI, under one temporary directory.
pub(crate) struct Pki {
    /// Keeps the directory alive.
    pub(crate) tmp: tempfile::TempDir,
    /// The directory.
    pub(crate) dir: PathBuf,
    /// Manufacturer trust anchor for vouchers (PEM).
    pub(crate) masa_ca: PathBuf,
    /// Owner CA: the vouchers' pinned-domain-cert (PEM).
    pub(crate) owner_ca: PathBuf,
    /// Owner certificate chain: owner certificate then owner CA (PEM).
    pub(crate) owner_chain: PathBuf,
    /// Owner private key (mode 0600).
    pub(crate) owner_key: PathBuf,
    /// TLS CA of the owner's bootstrap server (the trust-anchor file).
    pub(crate) tls_ca: PathBuf,
    /// The owner bootstrap server's TLS certificate (127.0.0.1, localhost) and key.
    pub(crate) server_cert: PathBuf,
    /// Its key.
    pub(crate) server_key: PathBuf,
    /// Directory of vouchers (`<serial>.vcj`).
    pub(crate) vouchers: PathBuf,
}

fn genkey(dir: &Path, name: &str, alg: Alg) -> PathBuf {
    let out = dir.join(name);
    let o = out.to_str().unwrap();
    match alg {
        Alg::P256Sec1 => openssl(
            dir,
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                o,
            ],
        ),
        Alg::P256 => openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                o,
            ],
        ),
        Alg::Rsa => openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                o,
            ],
        ),
    };
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o600)).unwrap();
    out
}

fn self_signed(dir: &Path, name: &str, cn: &str) -> (PathBuf, PathBuf) {
    let key = genkey(dir, &format!("{name}.key"), Alg::P256);
    let crt = dir.join(format!("{name}.pem"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-config",
            "openssl.cnf",
            "-extensions",
            "ca",
            "-key",
            key.to_str().unwrap(),
            "-subj",
            &format!("/CN={cn}"),
            "-days",
            "30",
            "-out",
            crt.to_str().unwrap(),
        ],
    );
    (crt, key)
}

/// Issues a certificate for `key` signed by `ca`/`ca_key` with the `ext` section of the config.
pub(crate) fn issue(
    dir: &Path,
    name: &str,
    cn: &str,
    key: &Path,
    ca: &Path,
    ca_key: &Path,
    ext: &str,
) -> PathBuf {
    let crt = dir.join(format!("{name}.pem"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-config",
            "openssl.cnf",
            "-extensions",
            ext,
            "-key",
            key.to_str().unwrap(),
            "-subj",
            &format!("/CN={cn}"),
            "-days",
            "30",
            "-CA",
            ca.to_str().unwrap(),
            "-CAkey",
            ca_key.to_str().unwrap(),
            "-out",
            crt.to_str().unwrap(),
        ],
    );
    crt
}

/// DER of the first certificate in a PEM file.
pub(crate) fn cert_der(dir: &Path, pem: &Path) -> Vec<u8> {
    openssl(
        dir,
        &["x509", "-in", pem.to_str().unwrap(), "-outform", "DER"],
    )
}

/// Unix seconds now.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// RFC 3339 UTC of Unix seconds.
pub(crate) fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

impl Pki {
    /// A fresh PKI with an owner key of `alg`.
    pub(crate) fn new(alg: Alg) -> Pki {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        std::fs::write(dir.join("openssl.cnf"), CNF).unwrap();
        let (masa_ca, masa_ca_key) = self_signed(&dir, "masa-ca", "Test Manufacturer CA");
        let masa_key = genkey(&dir, "masa.key", Alg::P256);
        issue(
            &dir,
            "masa",
            "Test MASA",
            &masa_key,
            &masa_ca,
            &masa_ca_key,
            "leaf",
        );
        let (owner_ca, owner_ca_key) = self_signed(&dir, "owner-ca", "Test Owner CA");
        let owner_key = genkey(&dir, "owner.key", alg);
        let owner_cert = issue(
            &dir,
            "owner",
            "Test Owner",
            &owner_key,
            &owner_ca,
            &owner_ca_key,
            "leaf",
        );
        let owner_chain = dir.join("owner-chain.pem");
        let mut chain = std::fs::read(&owner_cert).unwrap();
        chain.extend(std::fs::read(&owner_ca).unwrap());
        std::fs::write(&owner_chain, chain).unwrap();
        let (tls_ca, tls_ca_key) = self_signed(&dir, "tls-ca", "Test Owner TLS CA");
        let server_key = genkey(&dir, "server.key", Alg::P256);
        let server_cert = issue(
            &dir,
            "server",
            "localhost",
            &server_key,
            &tls_ca,
            &tls_ca_key,
            "server",
        );
        let vouchers = dir.join("vouchers");
        std::fs::create_dir(&vouchers).unwrap();
        Pki {
            tmp,
            dir,
            masa_ca,
            owner_ca,
            owner_chain,
            owner_key,
            tls_ca,
            server_cert,
            server_key,
            vouchers,
        }
    }

    /// The voucher JSON for `serial`, pinning the owner CA, expiring at `expires` (Unix s).
    pub(crate) fn voucher_json(&self, serial: &str, expires: Option<i64>) -> String {
        let pinned =
            base64::engine::general_purpose::STANDARD.encode(cert_der(&self.dir, &self.owner_ca));
        let mut v = serde_json::json!({
            "created-on": rfc3339(now() - 86400),
            "assertion": "verified",
            "serial-number": serial,
            "pinned-domain-cert": pinned,
            "domain-cert-revocation-checks": false,
        });
        if let Some(e) = expires {
            v["expires-on"] = serde_json::Value::String(rfc3339(e));
        }
        serde_json::json!({ "ietf-voucher:voucher": v }).to_string()
    }

    /// Signs `json` with the MASA key into `<vouchers>/<file>` (DER CMS, eContentType 1.40).
    pub(crate) fn write_voucher_json(&self, file: &str, json: &str) -> PathBuf {
        let src = self.dir.join(format!("{file}.json"));
        std::fs::write(&src, json).unwrap();
        let out = self.vouchers.join(file);
        openssl(
            &self.dir,
            &[
                "cms",
                "-sign",
                "-signer",
                "masa.pem",
                "-inkey",
                "masa.key",
                "-econtent_type",
                "1.2.840.113549.1.9.16.1.40",
                "-binary",
                "-nodetach",
                "-outform",
                "DER",
                "-in",
                src.to_str().unwrap(),
                "-out",
                out.to_str().unwrap(),
            ],
        );
        out
    }

    /// A voucher for `serial` valid for 30 more days, as `<serial>.vcj`.
    pub(crate) fn voucher(&self, serial: &str) -> PathBuf {
        self.write_voucher_json(
            &format!("{serial}.vcj"),
            &self.voucher_json(serial, Some(now() + 30 * 86400)),
        )
    }

    /// The `[owner]` section and a trust anchor for bootstrap server `server`.
    pub(crate) fn owner_toml(&self) -> String {
        format!(
            "[owner]\ncertificate = \"{}\"\nkey = \"{}\"\nvouchers = \"{}\"\n",
            self.owner_chain.display(),
            self.owner_key.display(),
            self.vouchers.display()
        )
    }

    /// `openssl cms -verify` of a signed artifact against the owner CA: the content, or the
    /// error text.
    pub(crate) fn openssl_verify(&self, der: &[u8]) -> Result<Vec<u8>, String> {
        let p = self.dir.join("to-verify.cms");
        std::fs::write(&p, der).unwrap();
        let (ok, out, err) = openssl_try(
            &self.dir,
            &[
                "cms",
                "-verify",
                "-inform",
                "DER",
                "-in",
                p.to_str().unwrap(),
                "-CAfile",
                self.owner_ca.to_str().unwrap(),
                "-purpose",
                "any",
                "-binary",
            ],
        );
        if ok {
            Ok(out)
        } else {
            Err(err)
        }
    }

    /// The certificates of a certs-only SignedData as openssl prints them (`subject=` lines).
    pub(crate) fn openssl_pkcs7_subjects(&self, der: &[u8]) -> Vec<String> {
        let p = self.dir.join("certs-only.p7");
        std::fs::write(&p, der).unwrap();
        let out = openssl(
            &self.dir,
            &[
                "pkcs7",
                "-inform",
                "DER",
                "-in",
                p.to_str().unwrap(),
                "-print_certs",
                "-noout",
            ],
        );
        String::from_utf8_lossy(&out)
            .lines()
            .filter(|l| l.starts_with("subject="))
            .map(str::to_string)
            .collect()
    }
}
