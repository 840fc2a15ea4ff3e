//! The redirect server over real TLS on 127.0.0.1:0, driven by real peers: curl (client
//! certificates made by openssl, HTTP/1.1 and h2), `openssl s_client` (RSA versus ECDSA per
//! offered signature schemes, TLS versions), `openssl asn1parse` and Python's XML parser for
//! the output. No privileges needed.

mod restconf_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::Duration;

use restconf_common::*;

const GBD: &str = "/restconf/operations/ietf-sztp-bootstrap-server:get-bootstrapping-data";
const JSON: &str = "application/yang-data+json";
const XML: &str = "application/yang-data+xml";

const CONFIG: &str = r#"
[appliance]
state-dir = "{STATE_DIR}"

[[bootstrap-server]]
name = "owner"
uri = "https://sztp.owner.example.com:8443"

[[bootstrap-server]]
name = "lab"
uri = "https://[2001:db8::10]:8443"

[[bootstrap-server]]
name = "verified-target"
uri = "https://verified.example.com"

[redirect-server]
listen = ["127.0.0.1:0"]
advertise = "https://192.0.2.1"
rate-limit = 0
EXTRA

[[rule]]
name = "lab-serials"
match.serial = ["LAB*"]
redirect-to = ["lab", "owner"]

[[rule]]
name = "verified-only"
match.serial = ["VER*"]
match.serial-verified = true
redirect-to = ["verified-target"]

[[rule]]
name = "default"
match.serial = ["SN*", "LAB*"]
redirect-to = ["owner"]

[[rule]]
name = "by-model"
match.hw-model = ["*"]
redirect-to = ["owner"]
"#;

fn config(extra: &str) -> String {
    CONFIG.replace("EXTRA", extra)
}

const INPUT_JSON: &str = r#"{"ietf-sztp-bootstrap-server:input":{"signed-data-preferred":[null]}}"#;

/// `base64 -d | openssl asn1parse`: (OID line, OCTET STRING text) of a conveyed-information.
fn asn1parse(b64: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("ci.b64");
    std::fs::write(&f, b64).unwrap();
    let out = sh(&format!(
        "base64 -d '{}' | openssl asn1parse -inform DER",
        f.display()
    ));
    let oid = out
        .lines()
        .find(|l| l.contains("OBJECT"))
        .and_then(|l| l.rsplit(':').next())
        .unwrap_or_else(|| panic!("no OBJECT in\n{out}"))
        .trim()
        .to_string();
    let octets = out
        .lines()
        .find(|l| l.contains("OCTET STRING"))
        .and_then(|l| l.split_once("OCTET STRING").map(|(_, r)| r))
        .and_then(|r| r.split_once(':').map(|(_, t)| t))
        .unwrap_or_else(|| panic!("no OCTET STRING in\n{out}"))
        .to_string();
    (oid, octets)
}

fn conveyed_b64(json_body: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(json_body).unwrap_or_else(|e| panic!("{e}: {json_body}"));
    v["ietf-sztp-bootstrap-server:output"]["conveyed-information"]
        .as_str()
        .unwrap_or_else(|| panic!("no conveyed-information in {json_body}"))
        .to_string()
}

/// (address, port) pairs of a JSON redirect-information document.
fn entries(doc: &str) -> Vec<(String, u64)> {
    let v: serde_json::Value = serde_json::from_str(doc).unwrap_or_else(|e| panic!("{e}: {doc}"));
    v["ietf-sztp-conveyed-info:redirect-information"]["bootstrap-server"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["address"].as_str().unwrap().to_string(),
                e["port"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_with_a_client_certificate_gets_its_serial_rule() {
    let r = Redirector::start(&config("")).await;
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_self_signed(
        certs.path(),
        "dev",
        "/serialNumber=PID:TEST-24T SN:LAB42/CN=device-42",
    );
    let url = format!("{}{GBD}", r.base());
    let out = curl(&[
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "-H",
        &format!("Content-Type: {JSON}"),
        "-d",
        INPUT_JSON,
        &url,
    ])
    .await;
    assert!(out.ok(), "{out:?}");
    let (oid, doc) = asn1parse(&conveyed_b64(&out.stdout));
    assert_eq!(oid, "1.2.840.113549.1.9.16.1.43");
    assert_eq!(
        entries(&doc),
        [
            ("2001:db8::10".to_string(), 8443),
            ("sztp.owner.example.com".to_string(), 8443)
        ]
    );
    // without the certificate the device is anonymous: only the by-model rule (it needs a
    // hw-model) would match, so there is no redirect
    let anon = curl(&[
        "-H",
        &format!("Content-Type: {JSON}"),
        "-d",
        INPUT_JSON,
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        &url,
    ])
    .await;
    assert_eq!(anon.stdout, "404");
    let ev = r.events();
    assert_eq!(ev[0]["serial"], "LAB42");
    assert_eq!(ev[0]["identity"], "subject-serial-number");
    assert_eq!(ev[0]["client_certificate"], true);
    assert_eq!(ev[0]["serial_verified"], false);
    assert_eq!(ev[0]["rule"], "lab-serials");
    assert_eq!(ev[0]["source"], "127.0.0.1");
    assert_eq!(ev[1]["identity"], "none");
    assert_eq!(ev[1]["status"], 404);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_username_and_xml_output_parsed_by_python() {
    let r = Redirector::start(&config("serial-from = \"basic-username\"")).await;
    let url = format!("{}{GBD}", r.base());
    let out = curl(&[
        "-u",
        "LAB7:",
        "-H",
        &format!("Content-Type: {XML}"),
        "-d",
        r#"<input xmlns="urn:ietf:params:xml:ns:yang:ietf-sztp-bootstrap-server"><signed-data-preferred/><hw-model>C9300-24T</hw-model></input>"#,
        &url,
    ])
    .await;
    assert!(out.ok(), "{out:?}");
    // Python's XML parser reads the RPC output, then the XML inside the CMS
    let script = r#"
import base64, subprocess, sys, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.read())
NS = '{urn:ietf:params:xml:ns:yang:ietf-sztp-bootstrap-server}'
assert root.tag == NS + 'output', root.tag
assert [c.tag for c in root] == [NS + 'conveyed-information'], [c.tag for c in root]
der = base64.b64decode(root[0].text)
asn1 = subprocess.run(['openssl', 'asn1parse', '-inform', 'DER'], input=der, capture_output=True, check=True).stdout.decode()
oid = [l for l in asn1.splitlines() if 'OBJECT' in l][0].rsplit(':', 1)[1].strip()
doc = [l for l in asn1.splitlines() if 'OCTET STRING' in l][0].split('OCTET STRING', 1)[1].split(':', 1)[1]
ri = ET.fromstring(doc)
CI = '{urn:ietf:params:xml:ns:yang:ietf-sztp-conveyed-info}'
assert ri.tag == CI + 'redirect-information', ri.tag
for bs in ri:
    assert bs.tag == CI + 'bootstrap-server', bs.tag
    assert sorted(c.tag for c in bs) == [CI + 'address', CI + 'port'], [c.tag for c in bs]
    print(oid, bs.find(CI + 'address').text, bs.find(CI + 'port').text)
"#;
    let parsed = run_blocking(
        &s(&[PYTHON, "-c", script]),
        Duration::from_secs(30),
        Some(&out.stdout),
    );
    assert!(parsed.ok(), "{parsed:?}\n{}", out.stdout);
    assert_eq!(
        parsed.stdout,
        "1.2.840.113549.1.9.16.1.42 2001:db8::10 8443\n1.2.840.113549.1.9.16.1.42 sztp.owner.example.com 8443\n"
    );
    let ev = r.events();
    assert_eq!(ev[0]["identity"], "basic-username");
    assert_eq!(ev[0]["serial"], "LAB7");
    assert_eq!(ev[0]["media_type"], XML);
    assert_eq!(ev[0]["hw_model"], "C9300-24T");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ca_marks_the_serial_verified() {
    let certs = tempfile::tempdir().unwrap();
    let ca = openssl_ca(certs.path());
    let signed = openssl_signed(certs.path(), &ca, "ver", "/serialNumber=VER7/CN=dev-7");
    let forged = openssl_self_signed(certs.path(), "forged", "/serialNumber=VER7/CN=dev-7");
    let r = Redirector::start(&config(&format!("client-ca = \"{}\"", ca.0.display()))).await;
    let url = format!("{}{GBD}", r.base());
    let post = |c: &(std::path::PathBuf, std::path::PathBuf)| {
        let (c, k) = (
            c.0.to_str().unwrap().to_string(),
            c.1.to_str().unwrap().to_string(),
        );
        let url = url.clone();
        async move {
            curl(&[
                "--cert",
                &c,
                "--key",
                &k,
                "-H",
                &format!("Content-Type: {JSON}"),
                "-d",
                INPUT_JSON,
                "-w",
                "\n%{http_code}",
                &url,
            ])
            .await
        }
    };
    let ok = post(&signed).await;
    assert!(ok.stdout.ends_with("\n200"), "{ok:?}");
    let body = ok.stdout.rsplit_once('\n').unwrap().0;
    let (_, doc) = asn1parse(&conveyed_b64(body));
    assert_eq!(entries(&doc), [("verified.example.com".to_string(), 443)]);
    // the same serial in a certificate the CA did not sign proves nothing
    let no = post(&forged).await;
    assert!(no.stdout.ends_with("\n403"), "{no:?}");
    let ev = r.events();
    assert_eq!(ev[0]["serial_verified"], true);
    assert_eq!(ev[1]["serial_verified"], false);
    assert_eq!(ev[1]["reason"], "serial-not-verified");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_for_an_rsa_only_tls12_client_ecdsa_otherwise() {
    let r = Redirector::start(&config("")).await;
    let addr = r.addr;
    let results = tokio::task::spawn_blocking(move || {
        [
            // a TLS 1.2 client offering only RSA signature schemes (Cisco-like)
            s_client(
                addr,
                &[
                    "-tls1_2",
                    "-sigalgs",
                    "RSA+SHA256:RSA+SHA384:RSA-PSS+SHA256",
                ],
            ),
            // the same client with RSA key exchange suites only
            s_client(
                addr,
                &[
                    "-tls1_2",
                    "-sigalgs",
                    "RSA+SHA256",
                    "-cipher",
                    "ECDHE-RSA-AES128-GCM-SHA256",
                ],
            ),
            // TLS 1.2 offering ECDSA too
            s_client(addr, &["-tls1_2"]),
            // TLS 1.3, defaults
            s_client(addr, &["-tls1_3"]),
            // TLS 1.3 offering only RSA-PSS
            s_client(addr, &["-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256"]),
        ]
    })
    .await
    .unwrap();
    let expect = [
        "rsaEncryption",
        "rsaEncryption",
        "id-ecPublicKey",
        "id-ecPublicKey",
        "rsaEncryption",
    ];
    for (i, ((ok, alg, text), want)) in results.iter().zip(expect).enumerate() {
        assert!(ok, "case {i}: handshake failed\n{text}");
        assert_eq!(alg, want, "case {i}\n{text}");
    }
    assert!(
        results[0].2.contains("Protocol  : TLSv1.2") || results[0].2.contains("TLSv1.2"),
        "{}",
        results[0].2
    );
    // both generated certificates carry the advertise address as a SAN
    let san = sh(&format!(
        "openssl x509 -noout -ext subjectAltName -in '{}'",
        r.state_dir().join("tls/redirect-rsa.crt").display()
    ));
    assert!(san.contains("IP Address:192.0.2.1"), "{san}");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_tls_version_13_refuses_tls12() {
    let r = Redirector::start(&config("min-tls-version = \"1.3\"")).await;
    let addr = r.addr;
    let (v12, v13) = tokio::task::spawn_blocking(move || {
        (s_client(addr, &["-tls1_2"]), s_client(addr, &["-tls1_3"]))
    })
    .await
    .unwrap();
    assert!(!v12.0, "TLS 1.2 was accepted:\n{}", v12.2);
    assert!(v13.0, "{}", v13.2);
    assert!(r.state.stats.handshake_failures.load(Ordering::Relaxed) >= 1);
    assert!(
        r.state
            .counters()
            .dropped
            .get_or_create(&sztp_redirector::metrics::DropLabels {
                reason: "tls-handshake".into()
            })
            .get()
            >= 1
    );
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_h2_and_http11() {
    let r = Redirector::start(&config("")).await;
    let url = format!("{}/.well-known/host-meta", r.base());
    let h2 = curl(&["--http2", "-w", "%{http_version}", "-o", "/dev/null", &url]).await;
    assert_eq!(h2.stdout, "2", "{h2:?}");
    let h1 = curl(&[
        "--http1.1",
        "-w",
        "%{http_version}",
        "-o",
        "/dev/null",
        &url,
    ])
    .await;
    assert_eq!(h1.stdout, "1.1", "{h1:?}");
    // a full RPC over h2
    let out = curl(&[
        "--http2",
        "-u",
        "x:",
        "-H",
        &format!("Content-Type: {JSON}"),
        "-d",
        r#"{"ietf-sztp-bootstrap-server:input":{"hw-model":"m"}}"#,
        &format!("{}{GBD}", r.base()),
    ])
    .await;
    let (oid, _) = asn1parse(&conveyed_b64(&out.stdout));
    assert_eq!(oid, "1.2.840.113549.1.9.16.1.43");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_and_slow_clients() {
    let r = Redirector::start(&config("max-connections = 1\nclient-timeout = \"1s\"")).await;
    let addr = r.addr;
    let url = format!("{}/.well-known/host-meta", r.base());
    // a client that connects and never starts TLS holds the only slot...
    let mut idle = tokio::task::spawn_blocking(move || TcpStream::connect(addr).unwrap())
        .await
        .unwrap();
    // ...until the server sees it (wait for the slot to be taken, bounded)
    let stats = std::sync::Arc::clone(&r.state.stats);
    wait_until(|| stats.active.load(Ordering::Relaxed) == 1).await;
    let refused = curl(&["-o", "/dev/null", "-w", "%{http_code}", &url]).await;
    assert!(!refused.ok(), "a second connection was served: {refused:?}");
    assert_eq!(r.state.stats.connections_refused.load(Ordering::Relaxed), 1);
    assert_eq!(
        r.state
            .counters()
            .dropped
            .get_or_create(&sztp_redirector::metrics::DropLabels {
                reason: "max-connections".into()
            })
            .get(),
        1
    );
    // the handshake timeout closes the idle client: it reads end-of-file
    let eof = tokio::task::spawn_blocking(move || {
        idle.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut b = [0u8; 16];
        idle.read(&mut b)
    })
    .await
    .unwrap();
    assert!(matches!(eof, Ok(0)), "{eof:?}");
    wait_until(|| stats.active.load(Ordering::Relaxed) == 0).await;
    assert_eq!(r.state.stats.handshake_timeouts.load(Ordering::Relaxed), 1);
    assert_eq!(
        r.state
            .counters()
            .dropped
            .get_or_create(&sztp_redirector::metrics::DropLabels {
                reason: "tls-timeout".into()
            })
            .get(),
        1
    );
    let served = curl(&["-o", "/dev/null", "-w", "%{http_code}", &url]).await;
    assert_eq!(served.stdout, "200");
    // a TLS client that sends no request is closed after client-timeout as well (Python's
    // ssl module as the client: it blocks reading until the server ends the session)
    let script = format!(
        "import socket, ssl\n\
         ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n\
         s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', {port})))\n\
         s.settimeout(30)\n\
         try:\n    print('closed', s.recv(1))\n\
         except (ssl.SSLEOFError, ConnectionResetError) as e:\n    print('closed', type(e).__name__)\n",
        port = addr.port()
    );
    let held = run(s(&[PYTHON, "-c", &script]), Duration::from_secs(40)).await;
    assert!(held.ok() && held.stdout.starts_with("closed"), "{held:?}");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_certificates_are_reloaded_with_the_configuration() {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    // an RSA and an ECDSA pair, configured as lists
    sh(&format!(
        "cd '{d}' && openssl req -x509 -newkey rsa:2048 -nodes -days 30 -keyout rsa.key -out rsa.crt -subj /CN=first-rsa 2>&1 && \
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -keyout ec.key -out ec.crt -subj /CN=first-ec 2>&1",
        d = dir.display()
    ));
    let extra = format!(
        "tls-certificate = [\"{d}/rsa.crt\", \"{d}/ec.crt\"]\ntls-key = [\"{d}/rsa.key\", \"{d}/ec.key\"]",
        d = dir.display()
    );
    let r = Redirector::start(&config(&extra)).await;
    let addr = r.addr;
    let subject = move |args: &'static [&'static str]| {
        tokio::task::spawn_blocking(move || {
            let (_, _, text) = s_client(addr, args);
            text.lines()
                .find(|l| l.starts_with("subject="))
                .unwrap_or_default()
                .to_string()
        })
    };
    assert!(subject(&["-tls1_3"]).await.unwrap().contains("first-ec"));
    assert!(subject(&["-tls1_2", "-sigalgs", "RSA+SHA256"])
        .await
        .unwrap()
        .contains("first-rsa"));
    // new files, then a reload (what SIGHUP does)
    sh(&format!(
        "cd '{d}' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -keyout ec.key -out ec.crt -subj /CN=second-ec 2>&1",
        d = dir.display()
    ));
    assert!(r.reload(&config(&extra)));
    assert!(subject(&["-tls1_3"]).await.unwrap().contains("second-ec"));
    // a broken file at the next reload refuses it and keeps the certificates in force
    std::fs::write(dir.join("ec.crt"), "not a certificate").unwrap();
    assert!(!r.reload(&config(&extra)));
    assert!(subject(&["-tls1_3"]).await.unwrap().contains("second-ec"));
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_ends_every_task_and_closes_the_port() {
    let r = Redirector::start(&config("")).await;
    let addr = r.addr;
    // an open keep-alive HTTP/1.1 connection at cancel time
    let mut conn = tokio::task::spawn_blocking(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"\x16\x03\x01").unwrap();
        c
    })
    .await
    .unwrap();
    let stats = std::sync::Arc::clone(&r.state.stats);
    wait_until(|| stats.active.load(Ordering::Relaxed) == 1).await;
    r.stop().await;
    assert_eq!(stats.active.load(Ordering::Relaxed), 0);
    let refused = tokio::task::spawn_blocking(move || TcpStream::connect(addr))
        .await
        .unwrap();
    assert!(refused.is_err(), "the port still accepts after cancel");
    let mut b = [0u8; 8];
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert!(matches!(conn.read(&mut b), Ok(0) | Err(_)));
}

/// Polls `cond` every 10 ms, at most 20 s (a bound, not a timing assertion).
async fn wait_until(cond: impl Fn() -> bool) {
    for _ in 0..2000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 20 s");
}
