//! Signed DNS records from the real binary (RFC 8572 §4.2.2): `<serial>._sztp.<zone>` TXT of a
//! device with a voucher carries `ci=` (signed redirect-information naming the owner's server
//! with its trust anchor), `oc=` and `ov=`; too big for UDP, so dig over UDP sees TC and kdig
//! over TCP gets all three, which `openssl cms -verify` and `probe`'s §5.4 checks accept; a
//! device without a voucher keeps the unsigned `ci=`, and the journal says which.

mod common;
mod pki;

use std::time::Duration;

use common::dns::{unescape_txt, Daemon};
use common::run_cmd;
use pki::{Alg, Pki};

fn txt_values(stdout: &str) -> Vec<Vec<u8>> {
    stdout
        .lines()
        .filter(|l| !l.starts_with(';') && l.contains("TXT"))
        .filter_map(|l| l.split_once("TXT").map(|(_, v)| unescape_txt(v)))
        .collect()
}

#[test]
fn txt_records_carry_signed_ci_oc_ov_over_tcp() {
    let pki = Pki::new(Alg::P256);
    pki.voucher("SN1");
    let config = format!(
        r#"
[appliance]
state-dir = "{{STATE_DIR}}"

[[bootstrap-server]]
name = "owner"
uri = "https://sztp.owner.example.com:8443"
trust-anchor = "{ta}"

[[rule]]
name = "default"
redirect-to = ["owner"]

[[device]]
serial = "SN2"

[dns]
listen = ["127.0.0.1:0"]
zones = ["example.com"]

{owner}"#,
        ta = pki.tls_ca.display(),
        owner = pki.owner_toml(),
    );
    let mut d = Daemon::start(None, &config);
    let addr = d.listening("dns on udp", 0)[0];
    let at = format!("@{}", addr.ip());
    let port = addr.port().to_string();
    let ask = |tool: &str, t: &str, name: &str| {
        let out = run_cmd(
            &[tool, &at, "-p", &port, "+norec", "+time=2", t, name, "TXT"],
            Duration::from_secs(20),
        );
        assert!(out.success(), "{}\n{}", out.stdout, out.stderr);
        out.stdout
    };

    // UDP: does not fit a 512-octet answer, so TC is set (dig without retrying over TCP)
    let udp = ask("dig", "+ignore", "SN1._sztp.example.com");
    assert!(udp.contains(" tc"), "{udp}");

    // TCP: three records, ci= oc= ov=
    let tcp = ask("kdig", "+tcp", "SN1._sztp.example.com");
    let mut values = txt_values(&tcp);
    values.sort();
    let keys: Vec<&[u8]> = values.iter().map(|v| &v[..3]).collect();
    assert_eq!(keys, [&b"ci="[..], b"oc=", b"ov="], "{tcp}");
    let (ci, oc, ov) = (&values[0][3..], &values[1][3..], &values[2][3..]);
    assert_eq!(ov, std::fs::read(pki.vouchers.join("SN1.vcj")).unwrap());
    let json = pki
        .openssl_verify(ci)
        .expect("openssl cms -verify accepts ci");
    let doc: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let entry = &doc["ietf-sztp-conveyed-info:redirect-information"]["bootstrap-server"][0];
    assert_eq!(entry["address"], "sztp.owner.example.com");
    assert_eq!(entry["port"], 8443);
    assert!(entry["trust-anchor"].is_string(), "{doc}");
    // probe's device checks over the same bytes, as a bundle
    let dir = pki.dir.join("from-dns");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("conveyed-information.cms"), ci).unwrap();
    std::fs::write(dir.join("owner-certificate.cms"), oc).unwrap();
    std::fs::write(dir.join("ownership-voucher.vcj"), ov).unwrap();
    let probe = run_cmd(
        &[
            common::BIN,
            "probe",
            "--bundle",
            dir.to_str().unwrap(),
            "--serial",
            "SN1",
            "--manufacturer-ca",
            pki.masa_ca.to_str().unwrap(),
        ],
        Duration::from_secs(20),
    );
    assert!(probe.success(), "{}\n{}", probe.stdout, probe.stderr);
    assert!(
        probe
            .stdout
            .contains("redirect: sztp.owner.example.com:8443 (trust-anchor: CN=Test Owner TLS CA)"),
        "{}",
        probe.stdout
    );

    // a [[device]] without a voucher keeps the unsigned ci= alone
    let plain = ask("dig", "+tcp", "SN2._sztp.example.com");
    let values = txt_values(&plain);
    assert_eq!(values.len(), 1, "{plain}");
    assert_eq!(&values[0][..3], b"ci=");
    sztp_redirector::sztp::conveyed::decode_unsigned_redirect(&values[0][3..]).unwrap();

    // the journal says signed for SN1 and why not for SN2
    let until = std::time::Instant::now() + Duration::from_secs(20);
    let signing = loop {
        let s: Vec<(String, String)> = d
            .events()
            .iter()
            .filter(|e| e["proto"] == "dns")
            .map(|e| {
                (
                    e["serial"].as_str().unwrap_or("").to_string(),
                    e["signing"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        if s.len() >= 3 || std::time::Instant::now() > until {
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        signing.contains(&("SN1".into(), "signed".into())),
        "{signing:?}"
    );
    assert!(
        signing.contains(&("SN2".into(), "no-voucher".into())),
        "{signing:?}"
    );
    assert!(d.terminate().success());
}
