//! Signed data with a test PKI made by openssl: `check-config` on `[owner]` (key permissions,
//! key/certificate match, voucher serial and expiry), `bundle` (signed, flat and IOS-XR
//! layouts, unsigned refused), the artifacts verified by `openssl cms -verify` and by
//! `probe --bundle` (RFC 8572 §5.4), and a tampered byte caught.

mod pki;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use pki::{now, Alg, Pki};

const BIN: &str = env!("CARGO_BIN_EXE_sztp-redirector");

const REDIRECT_JSON: &str = "{\"ietf-sztp-conveyed-info:redirect-information\":{\"bootstrap-server\":[{\"address\":\"127.0.0.1\",\"port\":9443,\"trust-anchor\":\"";

fn config(pki: &Pki, extra: &str) -> String {
    format!(
        "[appliance]\nstate-dir = \"{state}\"\n\n\
         [[bootstrap-server]]\nname = \"owner\"\nuri = \"https://127.0.0.1:9443\"\n\
         trust-anchor = \"{ta}\"\n\n\
         [[rule]]\nname = \"all\"\nredirect-to = [\"owner\"]\n\n{owner}{extra}",
        state = pki.dir.join("state").display(),
        ta = pki.tls_ca.display(),
        owner = pki.owner_toml(),
    )
}

fn write_config(pki: &Pki, extra: &str) -> std::path::PathBuf {
    let p = pki.dir.join("sztp.toml");
    std::fs::write(&p, config(pki, extra)).unwrap();
    p
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    let o = Command::new(BIN).args(args).output().expect("binary runs");
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn check_config(p: &Path) -> Run {
    run(&["check-config", p.to_str().unwrap()])
}

#[test]
fn check_config_accepts_the_owner_material_and_reports_each_problem() {
    let pki = Pki::new(Alg::P256Sec1);
    pki.voucher("SN1");
    let cfg = write_config(&pki, "");
    let r = check_config(&cfg);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.ends_with(": ok\n"), "{}", r.stdout);

    // a voucher whose serial-number is not its file name, and an expired one
    pki.write_voucher_json("OTHER.vcj", &pki.voucher_json("SN1", Some(now() + 86400)));
    pki.write_voucher_json("OLD.vcj", &pki.voucher_json("OLD", Some(now() - 3600)));
    let r = check_config(&cfg);
    assert_eq!(r.code, 78, "{}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.stderr);
    let owner_line = config(&pki, "")
        .lines()
        .position(|l| l.starts_with("vouchers = "))
        .unwrap()
        + 1;
    let at = format!("{}:{owner_line}:12: owner.vouchers: ", cfg.display());
    assert!(lines.iter().all(|l| l.starts_with(&at)), "{}", r.stderr);
    assert!(
        r.stderr.contains("OLD.vcj: voucher expired on "),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("OTHER.vcj: serial-number \"SN1\" does not match the file name (OTHER.vcj)"),
        "{}",
        r.stderr
    );
    std::fs::remove_file(pki.vouchers.join("OTHER.vcj")).unwrap();
    std::fs::remove_file(pki.vouchers.join("OLD.vcj")).unwrap();

    // a key readable by everyone is refused, and never printed
    std::fs::set_permissions(&pki.owner_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = check_config(&cfg);
    assert_eq!(r.code, 78);
    assert!(r.stderr.contains(": owner.key: "), "{}", r.stderr);
    assert!(r.stderr.contains("has mode 0644"), "{}", r.stderr);
    assert!(!r.stderr.contains("PRIVATE KEY"), "{}", r.stderr);
    std::fs::set_permissions(&pki.owner_key, std::fs::Permissions::from_mode(0o600)).unwrap();

    // a key that is not the owner certificate's
    let other = pki.dir.join("server.key");
    let text = config(&pki, "").replace(pki.owner_key.to_str().unwrap(), other.to_str().unwrap());
    std::fs::write(&cfg, text).unwrap();
    let r = check_config(&cfg);
    assert_eq!(r.code, 78);
    assert!(
        r.stderr
            .contains("is not the key of the owner certificate CN=Test Owner"),
        "{}",
        r.stderr
    );

    // an unreadable key and a missing trust anchor are both reported
    let text = config(&pki, "")
        .replace(pki.owner_key.to_str().unwrap(), "/nonexistent/owner.key")
        .replace(pki.tls_ca.to_str().unwrap(), "/nonexistent/ta.pem");
    std::fs::write(&cfg, text).unwrap();
    let r = check_config(&cfg);
    assert_eq!(r.code, 78);
    assert!(
        r.stderr
            .contains(": owner.key: cannot read /nonexistent/owner.key"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(": bootstrap-server[0].trust-anchor: cannot read /nonexistent/ta.pem"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_voucher_pinning_another_ca_is_refused() {
    let pki = Pki::new(Alg::P256);
    // pinned-domain-cert = the TLS CA, which did not issue the owner certificate
    let pinned = pki::cert_der(&pki.dir, &pki.tls_ca);
    let json = pki.voucher_json("SN9", Some(now() + 86400)).replace(
        &base64_of(&pki::cert_der(&pki.dir, &pki.owner_ca)),
        &base64_of(&pinned),
    );
    pki.write_voucher_json("SN9.vcj", &json);
    let cfg = write_config(&pki, "");
    let r = check_config(&cfg);
    assert_eq!(r.code, 78);
    assert!(
        r.stderr
            .contains("does not lead to this voucher's pinned-domain-cert CN=Test Owner TLS CA"),
        "{}",
        r.stderr
    );
}

fn base64_of(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn expected_redirect(pki: &Pki) -> String {
    // the trust anchor is the certs-only SignedData of the TLS CA; compare everything else
    let _ = pki;
    REDIRECT_JSON.to_string()
}

fn bundle_and_verify(alg: Alg) {
    let pki = Pki::new(alg);
    pki.voucher("SN1");
    let cfg = write_config(&pki, "");
    let out = pki.dir.join("usb");
    let r = run(&[
        "bundle",
        "--config",
        cfg.to_str().unwrap(),
        "--serial",
        "SN1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let dir = out.join("EN9/SN1/bootstrapping-data");
    let ci = std::fs::read(dir.join("conveyed-information.cms")).unwrap();
    let oc = std::fs::read(dir.join("owner-certificate.cms")).unwrap();
    let ov = std::fs::read(dir.join("ownership-voucher.vcj")).unwrap();
    assert_eq!(
        ov,
        std::fs::read(pki.vouchers.join("SN1.vcj")).unwrap(),
        "voucher as given"
    );
    let readme = std::fs::read_to_string(out.join("README.txt")).unwrap();
    assert!(
        readme.contains("Device SN1  (EN9/SN1/bootstrapping-data)"),
        "{readme}"
    );
    assert!(
        readme.contains("sends the device to: 127.0.0.1:9443"),
        "{readme}"
    );

    // openssl accepts the signature against the owner CA and yields the JSON
    let json = pki
        .openssl_verify(&ci)
        .expect("openssl cms -verify accepts it");
    let json = String::from_utf8(json).unwrap();
    assert!(json.starts_with(&expected_redirect(&pki)), "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let ta = v["ietf-sztp-conveyed-info:redirect-information"]["bootstrap-server"][0]
        ["trust-anchor"]
        .as_str()
        .unwrap();
    use base64::Engine;
    let ta = base64::engine::general_purpose::STANDARD
        .decode(ta)
        .unwrap();
    assert_eq!(
        pki.openssl_pkcs7_subjects(&ta),
        ["subject=CN = Test Owner TLS CA"]
    );
    // `certificates` is a DER SET OF: sorted by encoding, not in chain order
    let mut subjects = pki.openssl_pkcs7_subjects(&oc);
    subjects.sort();
    assert_eq!(
        subjects,
        ["subject=CN = Test Owner", "subject=CN = Test Owner CA"]
    );

    // probe verifies the bundle as a device would (RFC 8572 §5.4)
    let r = run(&[
        "probe",
        "--bundle",
        out.to_str().unwrap(),
        "--serial",
        "SN1",
        "--manufacturer-ca",
        pki.masa_ca.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    for check in [
        "ok    voucher signature: signed by CN=Test MASA <- CN=Test Manufacturer CA",
        "ok    voucher serial-number: serial-number SN1",
        "ok    owner certificate path: CN=Test Owner <- CN=Test Owner CA (pinned-domain-cert)",
        "ok    conveyed-information signature: signed by CN=Test Owner",
        "redirect: 127.0.0.1:9443 (trust-anchor: CN=Test Owner TLS CA)",
    ] {
        assert!(
            r.stdout.contains(check),
            "missing {check:?} in\n{}",
            r.stdout
        );
    }

    // the wrong serial, and a tampered byte in the signed JSON, fail with a clear message
    let r = run(&[
        "probe",
        "--bundle",
        dir.to_str().unwrap(),
        "--serial",
        "SN2",
        "--manufacturer-ca",
        pki.masa_ca.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stdout.contains(
            "FAIL  voucher serial-number: serial-number \"SN1\" is not this device's (\"SN2\")"
        ),
        "{}",
        r.stdout
    );
    let mut bad = ci.clone();
    let at = bad.windows(7).position(|w| w == b"9443,\"t").unwrap();
    bad[at] = b'8';
    std::fs::write(dir.join("conveyed-information.cms"), &bad).unwrap();
    let r = run(&[
        "probe",
        "--bundle",
        dir.to_str().unwrap(),
        "--manufacturer-ca",
        pki.masa_ca.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stdout.contains(
            "FAIL  conveyed-information signature: conveyed-information: message digest does not \
             match the content (modified after signing)"
        ),
        "{}",
        r.stdout
    );
    assert!(
        pki.openssl_verify(&bad).is_err(),
        "openssl agrees it is tampered with"
    );
}

#[test]
fn bundle_signed_with_an_ec_key_verifies_with_openssl_and_probe() {
    bundle_and_verify(Alg::P256Sec1);
}

#[test]
fn bundle_signed_with_an_rsa_key_verifies_with_openssl_and_probe() {
    bundle_and_verify(Alg::Rsa);
}

#[test]
fn bundle_layouts_and_unsigned_refusal() {
    let pki = Pki::new(Alg::P256);
    pki.voucher("SN1");
    let cfg = write_config(&pki, "\n[[device]]\nserial = \"NOVOUCHER\"\n");
    let out = pki.dir.join("flat");
    // --all covers SN1 (voucher) and NOVOUCHER ([[device]]): refused as a whole without
    // --unsigned, nothing written
    let r = run(&[
        "bundle",
        "--config",
        cfg.to_str().unwrap(),
        "--all",
        "--out",
        out.to_str().unwrap(),
        "--layout",
        "flat",
    ]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("NOVOUCHER: would be unsigned (no voucher); give --unsigned"),
        "{}",
        r.stderr
    );
    assert!(!out.exists());
    let r = run(&[
        "bundle",
        "--config",
        cfg.to_str().unwrap(),
        "--all",
        "--out",
        out.to_str().unwrap(),
        "--layout",
        "flat",
        "--unsigned",
        "--enterprise",
        "2636",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut names: Vec<String> = std::fs::read_dir(out.join("SN1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "conveyed-information.cms",
            "owner-certificate.cms",
            "ownership-voucher.vcj"
        ]
    );
    let names: Vec<_> = std::fs::read_dir(out.join("NOVOUCHER")).unwrap().collect();
    assert_eq!(names.len(), 1);
    let ci = std::fs::read(out.join("NOVOUCHER/conveyed-information.cms")).unwrap();
    // unsigned: a plain ContentInfo 1.43 without trust-anchor
    let entries = sztp_redirector::sztp::conveyed::decode_unsigned_redirect(&ci).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].trust_anchor, None);
    let readme = std::fs::read_to_string(out.join("README.txt")).unwrap();
    assert!(
        readme.contains("Device NOVOUCHER  (NOVOUCHER)\n  UNSIGNED (no voucher)"),
        "{readme}"
    );
    // probe reads an unsigned bundle and says it is only provisional
    let r = run(&[
        "probe",
        "--bundle",
        out.to_str().unwrap(),
        "--serial",
        "NOVOUCHER",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("unsigned"), "{}", r.stdout);
}

/// Writes the CMS fuzz seeds (`tests/fuzz/seeds/cms/`) from a fresh PKI when
/// `SZTP_WRITE_CMS_SEEDS=1`; otherwise checks they are there.
#[test]
fn cms_fuzz_seeds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/seeds/cms");
    if std::env::var("SZTP_WRITE_CMS_SEEDS").as_deref() != Ok("1") {
        assert!(
            dir.join("voucher.vcj").is_file(),
            "run with SZTP_WRITE_CMS_SEEDS=1"
        );
        return;
    }
    std::fs::create_dir_all(&dir).unwrap();
    for (alg, tag) in [(Alg::P256Sec1, "ec"), (Alg::Rsa, "rsa")] {
        let pki = Pki::new(alg);
        let v = pki.voucher("SN1");
        let cfg = write_config(&pki, "");
        let out = pki.dir.join("usb");
        let r = run(&[
            "bundle",
            "--config",
            cfg.to_str().unwrap(),
            "--serial",
            "SN1",
            "--out",
            out.to_str().unwrap(),
            "--layout",
            "flat",
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let ci = std::fs::read(out.join("SN1/conveyed-information.cms")).unwrap();
        std::fs::write(dir.join(format!("signed-ci-{tag}.cms")), &ci).unwrap();
        if alg == Alg::Rsa {
            continue;
        }
        std::fs::copy(&v, dir.join("voucher.vcj")).unwrap();
        std::fs::copy(
            out.join("SN1/owner-certificate.cms"),
            dir.join("owner-certificate.cms"),
        )
        .unwrap();
        let mut t = ci.clone();
        t.truncate(ci.len() / 2);
        std::fs::write(dir.join("signed-ci-truncated.cms"), t).unwrap();
        // openssl's own certs-only form (crl2pkcs7)
        let p7 = pki::openssl(
            &pki.dir,
            &[
                "crl2pkcs7",
                "-nocrl",
                "-certfile",
                pki.owner_chain.to_str().unwrap(),
                "-outform",
                "DER",
            ],
        );
        std::fs::write(dir.join("crl2pkcs7.p7"), p7).unwrap();
        // a voucher with eContentType id-data and an unsigned conveyed information
        let json = pki.voucher_json("SN2", None);
        let src = pki.dir.join("v2.json");
        std::fs::write(&src, json).unwrap();
        let idv = pki::openssl(
            &pki.dir,
            &[
                "cms",
                "-sign",
                "-signer",
                "masa.pem",
                "-inkey",
                "masa.key",
                "-binary",
                "-nodetach",
                "-outform",
                "DER",
                "-in",
                src.to_str().unwrap(),
            ],
        );
        std::fs::write(dir.join("voucher-id-data.vcj"), idv).unwrap();
        let u = sztp_redirector::sztp::conveyed::unsigned_redirect(
            sztp_redirector::sztp::conveyed::ContentFormat::Json,
            &[sztp_redirector::sztp::conveyed::RedirectEntry {
                address: "sztp.owner.example.com".into(),
                port: 443,
                trust_anchor: None,
            }],
        )
        .unwrap();
        std::fs::write(dir.join("unsigned-tv5.cms"), u).unwrap();
        std::fs::write(dir.join("garbage"), b"\x30\x82\xff\xff\x06\x09").unwrap();
    }
}

#[test]
fn run_refuses_a_key_others_can_read() {
    let pki = Pki::new(Alg::P256);
    std::fs::set_permissions(&pki.owner_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = write_config(&pki, "");
    let r = run(&["run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(r.code, 78, "{}", r.stderr);
    assert!(r.stderr.contains(": owner.key: "), "{}", r.stderr);
    assert!(r.stderr.contains("has mode 0644"), "{}", r.stderr);
}
