//! Signed redirects from the real binary's redirect server: a device with a voucher that asks
//! for signed data gets SignedData conveyed information, owner certificate and voucher (curl
//! as the client, `openssl cms -verify` against the owner CA); `probe` verifies them as a
//! device would (RFC 8572 §5.4) and then authenticates the owner's bootstrap server (the
//! Python double, serving a certificate of the test TLS CA) with the redirect's trust-anchor;
//! a wrong anchor fails the TLS handshake; devices without a voucher or without
//! `signed-data-preferred` get the unsigned redirect and the journal says why.

mod common;
mod pki;
mod restconf_common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{Child, BIN};
use pki::{Alg, Pki};
use restconf_common::OwnerDouble;

const GBD: &str = "/restconf/operations/ietf-sztp-bootstrap-server:get-bootstrapping-data";
const LOG_WAIT: Duration = Duration::from_secs(20);

fn listening(lines: &[String], prefix: &str) -> Vec<SocketAddr> {
    lines
        .iter()
        .filter_map(|l| l.split(prefix).nth(1))
        .filter_map(|rest| rest.split_whitespace().last()?.parse().ok())
        .collect()
}

/// curl posting get-bootstrapping-data with `body` in `media`, Basic user `serial`:
/// (status, body).
fn curl(base: &str, serial: &str, media: &str, body: &str) -> (u16, String) {
    let url = format!("{base}{GBD}");
    let user = format!("{serial}:");
    let ct = format!("Content-Type: {media}");
    let accept = format!("Accept: {media}");
    let out = common::run_cmd(
        &[
            "curl",
            "-sS",
            "-k",
            "--max-time",
            "20",
            "-u",
            &user,
            "-H",
            &ct,
            "-H",
            &accept,
            "--data-binary",
            body,
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            &url,
        ],
        Duration::from_secs(30),
    );
    let (body, code) = out
        .stdout
        .rsplit_once('\n')
        .unwrap_or_else(|| panic!("{out:?}"));
    (code.parse().unwrap_or(0), body.to_string())
}

const SIGNED_JSON: &str = r#"{"ietf-sztp-bootstrap-server:input":{"signed-data-preferred":[null],"nonce":"AAECAwQFBgcICQoLDA0ODw=="}}"#;
const PLAIN_JSON: &str = r#"{"ietf-sztp-bootstrap-server:input":{"hw-model":"x"}}"#;
const SIGNED_XML: &str = r#"<input xmlns="urn:ietf:params:xml:ns:yang:ietf-sztp-bootstrap-server"><signed-data-preferred/></input>"#;

fn journal_until(path: &std::path::Path, n: usize) -> Vec<serde_json::Value> {
    let until = Instant::now() + LOG_WAIT;
    loop {
        let ev: Vec<serde_json::Value> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if ev.len() >= n || Instant::now() > until {
            return ev;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn signed_redirect_verified_by_openssl_and_probe_then_the_next_hop_authenticated() {
    let pki = Pki::new(Alg::Rsa);
    pki.voucher("SN1");
    pki.voucher("SN3");
    // the good owner server: a certificate of the TLS CA the redirect names as trust anchor
    let good = OwnerDouble::start_with_cert(&pki.server_cert, &pki.server_key, &[]);
    // another one with a self-signed certificate: the anchor does not authenticate it
    let bad = OwnerDouble::start(&[]);
    let state = pki.dir.join("state");
    let config = format!(
        r#"
[appliance]
state-dir = "{state}"

[[bootstrap-server]]
name = "owner"
uri = "https://{good}"
trust-anchor = "{ta}"

[[bootstrap-server]]
name = "impostor"
uri = "https://{bad}"
trust-anchor = "{ta}"

[redirect-server]
listen = ["127.0.0.1:0"]
advertise = "https://127.0.0.1:9"
serial-from = "basic-username"

[[rule]]
name = "impostor"
match.serial = ["SN3"]
redirect-to = ["impostor"]

[[rule]]
name = "all"
redirect-to = ["owner"]

{owner}"#,
        state = state.display(),
        good = good.addr,
        bad = bad.addr,
        ta = pki.tls_ca.display(),
        owner = pki.owner_toml(),
    );
    let cfg = pki.dir.join("sztp.toml");
    std::fs::write(&cfg, config).unwrap();
    let mut daemon = Child::spawn(
        &[BIN, "run", "--config", cfg.to_str().unwrap()],
        Duration::from_secs(300),
    );
    assert!(
        daemon.wait_for_lines(" ready", 1, LOG_WAIT),
        "not ready:\n{}",
        daemon.output_text()
    );
    assert!(
        daemon
            .output_text()
            .contains("owner material loaded: devices with a voucher get signed redirects"),
        "{}",
        daemon.output_text()
    );
    let addr = listening(&daemon.lines(), "listening for restconf on ")[0];
    let base = format!("https://{addr}");

    // curl: signed data for SN1, which asked for it
    let (status, body) = curl(&base, "SN1", "application/yang-data+json", SIGNED_JSON);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let out = &v["ietf-sztp-bootstrap-server:output"];
    let b64 = |k: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(out[k].as_str().unwrap_or_else(|| panic!("no {k}: {body}")))
            .unwrap()
    };
    let (ci, oc, ov) = (
        b64("conveyed-information"),
        b64("owner-certificate"),
        b64("ownership-voucher"),
    );
    assert_eq!(ov, std::fs::read(pki.vouchers.join("SN1.vcj")).unwrap());
    let json = pki
        .openssl_verify(&ci)
        .expect("openssl cms -verify accepts it");
    let doc: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let entry = &doc["ietf-sztp-conveyed-info:redirect-information"]["bootstrap-server"][0];
    assert_eq!(entry["address"], "127.0.0.1");
    assert_eq!(entry["port"], good.addr.port());
    let ta = base64::engine::general_purpose::STANDARD
        .decode(entry["trust-anchor"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        pki.openssl_pkcs7_subjects(&ta),
        ["subject=CN = Test Owner TLS CA"]
    );
    let mut subjects = pki.openssl_pkcs7_subjects(&oc);
    subjects.sort();
    assert_eq!(
        subjects,
        ["subject=CN = Test Owner", "subject=CN = Test Owner CA"]
    );

    // XML answers carry the same three leaves
    let (status, xml) = curl(&base, "SN1", "application/yang-data+xml", SIGNED_XML);
    assert_eq!(status, 200, "{xml}");
    for leaf in [
        "<conveyed-information>",
        "<owner-certificate>",
        "<ownership-voucher>",
    ] {
        assert!(xml.contains(leaf), "{xml}");
    }

    // unsigned: no voucher (SN2), not requested (SN1 without signed-data-preferred)
    let (status, body) = curl(&base, "SN2", "application/yang-data+json", SIGNED_JSON);
    assert_eq!(status, 200);
    assert!(!body.contains("owner-certificate"), "{body}");
    let (status, body) = curl(&base, "SN1", "application/yang-data+json", PLAIN_JSON);
    assert_eq!(status, 200);
    assert!(!body.contains("ownership-voucher"), "{body}");

    // probe: §5.4 checks, then the owner server authenticated with the trust anchor
    let probe = common::run_cmd(
        &[
            BIN,
            "probe",
            "--restconf",
            &base,
            "--serial",
            "SN1",
            "--manufacturer-ca",
            pki.masa_ca.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert!(probe.success(), "{}\n{}", probe.stdout, probe.stderr);
    for line in [
        "ok    voucher signature: signed by CN=Test MASA <- CN=Test Manufacturer CA",
        "ok    owner certificate path: CN=Test Owner <- CN=Test Owner CA (pinned-domain-cert)",
        "ok    conveyed-information signature: signed by CN=Test Owner",
        "trusted redirect-information (JSON, 1.2.840.113549.1.9.16.1.43), 1 bootstrap server:",
        "(authenticated with the redirect's trust-anchor CN=Test Owner TLS CA)",
        "answer: unsigned onboarding-information",
        &format!(
            "result: bootstrapping data from https://{} after 2 hops",
            good.addr
        ),
    ] {
        assert!(
            probe.stdout.contains(line),
            "missing {line:?}:\n{}",
            probe.stdout
        );
    }
    assert_eq!(
        good.arrivals().len(),
        2,
        "host-meta and get-bootstrapping-data"
    );

    // the impostor's self-signed certificate does not validate to the anchor: no hop 2 data
    let probe = common::run_cmd(
        &[
            BIN,
            "probe",
            "--restconf",
            &base,
            "--serial",
            "SN3",
            "--manufacturer-ca",
            pki.masa_ca.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(
        probe.status.code(),
        Some(2),
        "{}\n{}",
        probe.stdout,
        probe.stderr
    );
    assert!(
        probe.stdout.contains("invalid peer certificate"),
        "{}",
        probe.stdout
    );
    assert!(
        bad.arrivals().is_empty(),
        "nothing sent to a server that failed authentication"
    );

    // the journal says signed or why not, and that SN1's voucher is nonceless
    let events = journal_until(&state.join("devices.jsonl"), 6);
    let signing: Vec<(String, String, bool)> = events
        .iter()
        .filter(|e| e["proto"] == "restconf")
        .map(|e| {
            (
                e["serial"].as_str().unwrap_or("").to_string(),
                e["signing"].as_str().unwrap_or("").to_string(),
                e["nonceless_voucher"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    for want in [
        ("SN1", "signed", true),
        ("SN2", "no-voucher", false),
        ("SN1", "not-requested", false),
    ] {
        assert!(
            signing.contains(&(want.0.into(), want.1.into(), want.2)),
            "{want:?} not in {signing:?}"
        );
    }
    // vouchers are re-read on SIGHUP: SN2 gets one and is signed from then on; a voucher
    // whose serial-number is not its file name refuses the reload and the old set stays
    pki.voucher("SN2");
    daemon.signal("HUP");
    assert!(
        daemon.wait_for_lines("configuration reloaded", 1, LOG_WAIT),
        "{}",
        daemon.output_text()
    );
    let (status, body) = curl(&base, "SN2", "application/yang-data+json", SIGNED_JSON);
    assert_eq!(status, 200);
    assert!(body.contains("ownership-voucher"), "{body}");
    pki.write_voucher_json(
        "SN4.vcj",
        &pki.voucher_json("SN5", Some(pki::now() + 86400)),
    );
    daemon.signal("HUP");
    assert!(
        daemon.wait_for_lines("reload refused", 1, LOG_WAIT),
        "{}",
        daemon.output_text()
    );
    assert!(
        daemon
            .output_text()
            .contains("serial-number \"SN5\" does not match the file name (SN4.vcj)"),
        "{}",
        daemon.output_text()
    );
    let (_, body) = curl(&base, "SN2", "application/yang-data+json", SIGNED_JSON);
    assert!(
        body.contains("ownership-voucher"),
        "old material kept: {body}"
    );
    let st = daemon.stop("TERM", LOG_WAIT);
    assert!(st.is_some_and(|s| s.success()), "{}", daemon.output_text());
}
