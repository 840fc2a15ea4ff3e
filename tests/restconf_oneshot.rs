//! The redirect server's router driven with `oneshot`: every row of digest §4.5 and TV9
//!
//! No socket: each request carries the `ConnInfo` extension the server loop would add.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use base64::Engine;
use http_body_util::BodyExt;
use sztp_redirector::config::load_str;
use sztp_redirector::journal::DeviceJournal;
use sztp_redirector::policy::{ClientId, MacAddr};
use sztp_redirector::restconf::identity::{CertificateSubject, ClientCertificate};
use sztp_redirector::restconf::{router, AppState, ConnInfo};
use sztp_redirector::runtime::{Events, Published, Snapshot};
use sztp_redirector::runtime::{LeaseFacts, LeaseLookup};
use sztp_redirector::sztp::conveyed::{
    decode_content_info, parse_redirect_json, parse_redirect_xml, ContentFormat,
};
use tower::ServiceExt;

const GBD: &str = "/restconf/operations/ietf-sztp-bootstrap-server:get-bootstrapping-data";
const RP: &str = "/restconf/operations/ietf-sztp-bootstrap-server:report-progress";
const JSON: &str = "application/yang-data+json";
const XML: &str = "application/yang-data+xml";

/// TV5 / digest §4.6: the one owner server, port 443 implicit.
const TV5_B64: &str = "MIGIBgsqhkiG9w0BCRABK6B5BHd7ImlldGYtc3p0cC1jb252ZXllZC1pbmZvOnJlZGlyZWN0LWluZm9ybWF0aW9uIjp7ImJvb3RzdHJhcC1zZXJ2ZXIiOlt7ImFkZHJlc3MiOiJzenRwLm93bmVyLmV4YW1wbGUuY29tIiwicG9ydCI6NDQzfV19fQ==";
const TV6_B64: &str = "MIHaBgsqhkiG9w0BCRABKqCBygSBxzxyZWRpcmVjdC1pbmZvcm1hdGlvbiB4bWxucz0idXJuOmlldGY6cGFyYW1zOnhtbDpuczp5YW5nOmlldGYtc3p0cC1jb252ZXllZC1pbmZvIj48Ym9vdHN0cmFwLXNlcnZlcj48YWRkcmVzcz5zenRwLm93bmVyLmV4YW1wbGUuY29tPC9hZGRyZXNzPjxwb3J0PjQ0MzwvcG9ydD48L2Jvb3RzdHJhcC1zZXJ2ZXI+PC9yZWRpcmVjdC1pbmZvcm1hdGlvbj4=";

/// Digest §4.6 request body, 221 octets.
const REQUEST_4_6: &str = "{\n  \"ietf-sztp-bootstrap-server:input\": {\n    \"signed-data-preferred\": [\n      null\n    ],\n    \"hw-model\": \"model-x\",\n    \"os-name\": \"vendor-os\",\n    \"os-version\": \"17.3R2.1\",\n    \"nonce\": \"AAECAwQFBgcICQoLDA0ODw==\"\n  }\n}";

const CONFIG: &str = r#"
[[bootstrap-server]]
name = "owner"
uri = "https://sztp.owner.example.com"

[[bootstrap-server]]
name = "lab"
uri = "https://[2001:db8::10]:8443"

[[bootstrap-server]]
name = "this"
uri = "https://192.0.2.1:8443"

[redirect-server]
listen = ["192.0.2.1:8443"]
advertise = "https://redirect.staging.example.com:8443"
rate-limit = 0

[[rule]]
name = "verified-only"
match.serial = ["VER*"]
match.serial-verified = true
redirect-to = ["lab"]

[[rule]]
name = "arista"
match.vendor-class = ["Arista*"]
redirect-to = ["lab", "owner"]

[[rule]]
name = "model-x"
match.hw-model = ["model-*"]
redirect-to = ["owner"]

[[rule]]
name = "nothing-for-rogue"
match.hw-model = ["rogue"]
redirect-to = ["lab"]

[[rule]]
name = "default"
match.serial = ["*"]
redirect-to = ["owner"]
"#;

struct Env {
    state: AppState,
    journal: Arc<DeviceJournal>,
    _dir: tempfile::TempDir,
}

fn env_with(config: &str, leases: Arc<dyn LeaseLookup>) -> Env {
    let cfg = load_str(Path::new("oneshot.toml"), config).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(DeviceJournal::open(dir.path(), 1 << 20).unwrap());
    let state = AppState::new(
        Published::new(Snapshot::new(cfg, 0)),
        Events::new(Some(Arc::clone(&journal))),
        leases,
    );
    Env {
        state,
        journal,
        _dir: dir,
    }
}

fn env() -> Env {
    env_with(CONFIG, Arc::new(HashMap::<IpAddr, LeaseFacts>::new()))
}

impl Env {
    /// The device journal's events so far, as JSON values.
    fn events(&self) -> Vec<serde_json::Value> {
        self.journal.flush();
        let text = std::fs::read_to_string(self._dir.path().join("devices.jsonl")).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

struct Resp {
    status: StatusCode,
    content_type: Option<String>,
    allow: Option<String>,
    body: Vec<u8>,
}

impl Resp {
    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
    /// (error-type, error-tag) of an RFC 8040 JSON error body.
    fn error(&self) -> (String, String) {
        let j = self.json();
        let e = &j["ietf-restconf:errors"]["error"][0];
        (
            e["error-type"].as_str().unwrap().to_string(),
            e["error-tag"].as_str().unwrap().to_string(),
        )
    }
    fn conveyed(&self) -> Vec<u8> {
        let b64 = match self.content_type.as_deref() {
            Some(JSON) => self.json()["ietf-sztp-bootstrap-server:output"]["conveyed-information"]
                .as_str()
                .unwrap()
                .to_string(),
            _ => {
                let t = self.text();
                let start = t.find("<conveyed-information>").unwrap() + 22;
                let end = t.find("</conveyed-information>").unwrap();
                t[start..end].to_string()
            }
        };
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
    }
}

struct Req {
    method: Method,
    path: &'static str,
    headers: Vec<(header::HeaderName, String)>,
    body: Vec<u8>,
    cert: Option<ClientCertificate>,
    peer: &'static str,
}

fn req(method: Method, path: &'static str) -> Req {
    Req {
        method,
        path,
        headers: Vec::new(),
        body: Vec::new(),
        cert: None,
        peer: "192.0.2.100:50000",
    }
}

fn post(path: &'static str, content_type: &str, body: &str) -> Req {
    req(Method::POST, path)
        .header(header::CONTENT_TYPE, content_type)
        .body(body)
}

impl Req {
    fn header(mut self, name: header::HeaderName, value: &str) -> Req {
        self.headers.push((name, value.to_string()));
        self
    }
    fn body(mut self, b: impl AsRef<[u8]>) -> Req {
        self.body = b.as_ref().to_vec();
        self
    }
    fn cert(mut self, serial_number: &str, verified: bool) -> Req {
        self.cert = Some(ClientCertificate {
            subject: Some(CertificateSubject {
                serial_number: Some(serial_number.into()),
                common_name: None,
            }),
            verified,
        });
        self
    }
    fn from(mut self, peer: &'static str) -> Req {
        self.peer = peer;
        self
    }
    async fn send(self, env: &Env) -> Resp {
        let mut b = Request::builder().method(self.method).uri(self.path);
        for (k, v) in &self.headers {
            b = b.header(k, v);
        }
        let mut r = b.body(Body::from(self.body)).unwrap();
        r.extensions_mut().insert(ConnInfo {
            peer: self.peer.parse().unwrap(),
            local: "192.0.2.1:8443".parse().unwrap(),
            client_certificate: self.cert.map(Arc::new),
        });
        let resp = router(env.state.clone()).oneshot(r).await.unwrap();
        let h = |n| {
            resp.headers()
                .get(n)
                .map(|v: &header::HeaderValue| v.to_str().unwrap().to_string())
        };
        let (status, content_type, allow) =
            (resp.status(), h(header::CONTENT_TYPE), h(header::ALLOW));
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Resp {
            status,
            content_type,
            allow,
            body,
        }
    }
}

// ---- TV9 ----------------------------------------------------------------------------------

#[tokio::test]
async fn tv9_host_meta() {
    let e = env();
    let r = req(Method::GET, "/.well-known/host-meta").send(&e).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type.as_deref(), Some("application/xrd+xml"));
    assert_eq!(r.body.len(), 107);
    assert_eq!(
        r.text(),
        "<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n    <Link rel='restconf' href='/restconf'/>\n</XRD>\n"
    );
    // JRD on request (RFC 6415 §6), and at host-meta.json
    for r in [
        req(Method::GET, "/.well-known/host-meta")
            .header(header::ACCEPT, "application/json")
            .send(&e)
            .await,
        req(Method::GET, "/.well-known/host-meta.json")
            .send(&e)
            .await,
    ] {
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        assert_eq!(r.json()["links"][0]["href"], "/restconf");
        assert_eq!(r.json()["links"][0]["rel"], "restconf");
    }
    let r = req(Method::POST, "/.well-known/host-meta").send(&e).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.allow.as_deref(), Some("GET, HEAD"));
}

#[tokio::test]
async fn tv9_json_exchange_is_byte_exact() {
    let e = env();
    assert_eq!(REQUEST_4_6.len(), 221);
    let r = post(GBD, JSON, REQUEST_4_6)
        .header(header::ACCEPT, JSON)
        .send(&e)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type.as_deref(), Some(JSON));
    assert_eq!(r.body.len(), 267);
    assert_eq!(
        r.text(),
        format!("{{\n  \"ietf-sztp-bootstrap-server:output\": {{\n    \"conveyed-information\": \"{TV5_B64}\"\n  }}\n}}")
    );
    let ev = e.events();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["proto"], "restconf");
    assert_eq!(ev[0]["rpc"], "get-bootstrapping-data");
    assert_eq!(ev[0]["rule"], "model-x");
    assert_eq!(ev[0]["hw_model"], "model-x");
    assert_eq!(ev[0]["os_version"], "17.3R2.1");
    assert_eq!(ev[0]["signed_data_preferred"], true);
    assert_eq!(ev[0]["answer"], "redirect");
    assert_eq!(ev[0]["status"], 200);
    assert_eq!(ev[0]["media_type"], JSON);
    assert_eq!(ev[0]["uris"][0], "https://sztp.owner.example.com");
}

#[tokio::test]
async fn tv9_xml_response_carries_tv6() {
    let e = env();
    let body = r#"<input xmlns="urn:ietf:params:xml:ns:yang:ietf-sztp-bootstrap-server"><signed-data-preferred/><hw-model>model-x</hw-model></input>"#;
    let r = post(GBD, XML, body).send(&e).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type.as_deref(), Some(XML));
    assert_eq!(
        r.text(),
        format!("<output xmlns=\"urn:ietf:params:xml:ns:yang:ietf-sztp-bootstrap-server\">\n  <conveyed-information>{TV6_B64}</conveyed-information>\n</output>")
    );
}

#[tokio::test]
async fn tv9_get_on_the_operation_is_405_with_the_exact_body() {
    let e = env();
    let r = req(Method::GET, GBD).send(&e).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.allow.as_deref(), Some("POST"));
    assert_eq!(r.content_type.as_deref(), Some(JSON));
    assert_eq!(
        r.text(),
        r#"{"ietf-restconf:errors":{"error":[{"error-type":"protocol","error-tag":"operation-not-supported"}]}}"#
    );
    // the same for report-progress and other methods
    for m in [Method::PUT, Method::DELETE, Method::PATCH] {
        let r = req(m, RP).send(&e).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.allow.as_deref(), Some("POST"));
    }
}

#[tokio::test]
async fn tv9_text_plain_is_415() {
    let e = env();
    let r = post(GBD, "text/plain", "hello").send(&e).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.error().1, "invalid-value");
    // a body without any Content-Type too
    let r = req(Method::POST, GBD).body("{}").send(&e).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn tv9_dotted_alias_answers_xml() {
    let e = env();
    let body = r#"<input xmlns="urn:ietf:params:xml:ns:yang:ietf-sztp-bootstrap-server"><signed-data-preferred/><hw-model>model-y</hw-model></input>"#;
    let r = post(GBD, "application/yang.data+xml", body).send(&e).await;
    assert_eq!(r.status, StatusCode::OK);
    // answered with the registered media type, not the misspelt one
    assert_eq!(r.content_type.as_deref(), Some(XML));
    let (format, doc) = decode_content_info(&r.conveyed()).unwrap();
    assert_eq!(format, ContentFormat::Xml);
    assert_eq!(parse_redirect_xml(&doc).unwrap()[0].port, 443);
}

#[tokio::test]
async fn tv9_rfc9646_member_is_ignored_and_journaled() {
    let e = env();
    let body = r#"{"ietf-sztp-bootstrap-server:input":{"signed-data-preferred":[null],"hw-model":"model-x","ietf-sztp-csr:csr-support":{"key-generation":{"supported-algorithms":{"algorithm-identifier":["BgcqhkjOPQIB"]}},"csr-generation":{"supported-formats":{"format-identifier":["ietf-ztp-types:p10-csr"]}}}}}"#;
    let r = post(GBD, JSON, body).send(&e).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.json()["ietf-sztp-bootstrap-server:output"]["conveyed-information"].is_string());
    assert_eq!(e.events()[0]["csr_offered"], true);
}

#[tokio::test]
async fn tv9_report_progress_is_204_and_journaled() {
    let e = env();
    let r = post(
        RP,
        JSON,
        r#"{"ietf-sztp-bootstrap-server:input":{"progress-type":"bootstrap-initiated"}}"#,
    )
    .cert("PID:C9300 SN:FCW1", false)
    .send(&e)
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.body.is_empty());
    let ev = e.events();
    assert_eq!(ev[0]["rpc"], "report-progress");
    assert_eq!(ev[0]["progress_type"], "bootstrap-initiated");
    assert_eq!(ev[0]["serial"], "FCW1");
    assert_eq!(ev[0]["answer"], "progress-accepted");
    assert_eq!(ev[0]["status"], 204);
}

// ---- digest §4.5 ---------------------------------------------------------------------------

#[tokio::test]
async fn s4_5_ok_redirect_per_serial_and_per_lease() {
    let mut leases = HashMap::new();
    leases.insert(
        "198.51.100.20".parse::<IpAddr>().unwrap(),
        LeaseFacts {
            mac: Some("00:1c:73:aa:bb:cc".parse::<MacAddr>().unwrap()),
            client_id: Some(ClientId::Dhcp4(vec![1, 0, 0x1c, 0x73, 0xaa, 0xbb, 0xcc])),
            vendor_class: Some("Arista;DCS-7050".into()),
            ..LeaseFacts::default()
        },
    );
    let e = env_with(CONFIG, Arc::new(leases));
    // the DHCP rule applies through the source address's lease, with an empty body
    let r = req(Method::POST, GBD)
        .from("198.51.100.20:1234")
        .send(&e)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let (_, doc) = decode_content_info(&r.conveyed()).unwrap();
    let entries = parse_redirect_json(&doc).unwrap();
    assert_eq!(
        entries
            .iter()
            .map(|e| (e.address.as_str(), e.port))
            .collect::<Vec<_>>(),
        [("2001:db8::10", 8443), ("sztp.owner.example.com", 443)]
    );
    let ev = e.events();
    assert_eq!(ev[0]["rule"], "arista");
    assert_eq!(ev[0]["mac"], "00:1c:73:aa:bb:cc");
    // IPv4-mapped peers (a [::] listener) find the same lease
    let r = req(Method::POST, GBD)
        .from("[::ffff:198.51.100.20]:1234")
        .send(&e)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // the verified-only rule needs a verified serial
    let r = req(Method::POST, GBD).cert("VER1", true).send(&e).await;
    let (_, doc) = decode_content_info(&r.conveyed()).unwrap();
    assert_eq!(parse_redirect_json(&doc).unwrap()[0].port, 8443);
}

#[tokio::test]
async fn s4_5_unknown_path_is_404() {
    let e = env();
    for path in [
        "/restconf/operations/ietf-sztp-bootstrap-server:nope",
        "/restconf/data",
        "/index.html",
    ] {
        let r = req(Method::GET, path).send(&e).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.error(), ("protocol".into(), "invalid-value".into()));
    }
    // in XML when asked
    let r = req(Method::GET, "/x")
        .header(header::ACCEPT, XML)
        .send(&e)
        .await;
    assert_eq!(r.content_type.as_deref(), Some(XML));
    assert!(r
        .text()
        .starts_with("<errors xmlns=\"urn:ietf:params:xml:ns:yang:ietf-restconf\">"));
}

#[tokio::test]
async fn s4_5_unsatisfiable_accept_is_406() {
    let e = env();
    let r = post(GBD, JSON, REQUEST_4_6)
        .header(header::ACCEPT, "text/html")
        .send(&e)
        .await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE);
    // Accept decides the response encoding, else the request's
    let r = post(GBD, JSON, REQUEST_4_6)
        .header(header::ACCEPT, XML)
        .send(&e)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type.as_deref(), Some(XML));
}

#[tokio::test]
async fn s4_5_malformed_body_is_400_malformed_message() {
    let e = env();
    for (ct, body) in [
        (JSON, "{\"ietf-sztp-bootstrap-server:input\": {"),
        (XML, "<input><hw-model>x</input>"),
        (JSON, "[]"),
    ] {
        let r = post(GBD, ct, body)
            .header(header::ACCEPT, JSON)
            .send(&e)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.error(), ("protocol".into(), "malformed-message".into()));
    }
    assert_eq!(e.events()[0]["reason"], "malformed-message");
}

#[tokio::test]
async fn s4_5_bad_leaf_is_400_invalid_value() {
    let e = env();
    let r = post(
        GBD,
        JSON,
        r#"{"ietf-sztp-bootstrap-server:input":{"nonce":"AAECAw=="}}"#,
    )
    .send(&e)
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error(), ("application".into(), "invalid-value".into()));
    // but an empty nonce, as the OPI agent sends it, is no nonce
    let r = post(
        GBD,
        JSON,
        r#"{"ietf-sztp-bootstrap-server:input":{"nonce":"","hw-model":"model-x"}}"#,
    )
    .send(&e)
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn s4_5_unknown_member_is_tolerated() {
    let e = env();
    let r = post(
        GBD,
        JSON,
        r#"{"ietf-sztp-bootstrap-server:input":{"hw-model":"model-x","vendor-x:extra":{"a":1},"bogus":2}}"#,
    )
    .send(&e)
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn s4_5_unverified_identity_for_a_verified_rule_is_403() {
    let e = env_with(
        &CONFIG.replace("match.serial = [\"*\"]", "match.serial = [\"SN*\"]"),
        Arc::new(HashMap::<IpAddr, LeaseFacts>::new()),
    );
    let r = req(Method::POST, GBD).cert("VER1", false).send(&e).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.error(), ("protocol".into(), "access-denied".into()));
    assert_eq!(e.events()[0]["reason"], "serial-not-verified");
}

#[tokio::test]
async fn s4_5_no_rule_is_404_application() {
    let e = env();
    // no serial, no hw-model, no lease: no rule matches
    let r = req(Method::POST, GBD).send(&e).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error(), ("application".into(), "invalid-value".into()));
    assert_eq!(e.events()[0]["reason"], "no-rule");
}

#[tokio::test]
async fn s4_5_a_loop_is_500_and_never_a_redirect_to_itself() {
    let e = env_with(
        &CONFIG.replace(
            "match.hw-model = [\"rogue\"]\nredirect-to = [\"lab\"]",
            "match.hw-model = [\"rogue\"]\nredirect-to = [\"this\"]",
        ),
        Arc::new(HashMap::<IpAddr, LeaseFacts>::new()),
    );
    let r = post(
        GBD,
        JSON,
        r#"{"ietf-sztp-bootstrap-server:input":{"hw-model":"rogue"}}"#,
    )
    .send(&e)
    .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.error(), ("application".into(), "operation-failed".into()));
    assert_eq!(e.events()[0]["reason"], "loop");
}

#[tokio::test]
async fn s4_5_body_over_64kib_is_413() {
    let e = env();
    let mut body = String::from(r#"{"ietf-sztp-bootstrap-server:input":{"hw-model":""#);
    body.push_str(&"x".repeat(64 * 1024));
    body.push_str("\"}}");
    let r = post(GBD, JSON, &body).send(&e).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.error(), ("transport".into(), "too-big".into()));
    // exactly at the limit is still read
    let pad = 64 * 1024 - r#"{"ietf-sztp-bootstrap-server:input":{"hw-model":"model-"}}"#.len();
    let body = format!(
        r#"{{"ietf-sztp-bootstrap-server:input":{{"hw-model":"model-{}"}}}}"#,
        "x".repeat(pad)
    );
    assert_eq!(body.len(), 64 * 1024);
    let r = post(GBD, JSON, &body).send(&e).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn s4_5_rate_limit_is_429_per_source() {
    // 1 request per second, bursts of 2: the third at once is refused
    let e = env_with(
        &CONFIG.replace("rate-limit = 0", "rate-limit = 1"),
        Arc::new(HashMap::<IpAddr, LeaseFacts>::new()),
    );
    let statuses = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(
                req(Method::GET, "/.well-known/host-meta")
                    .send(&e)
                    .await
                    .status,
            );
        }
        v
    };
    assert_eq!(statuses[..2], [StatusCode::OK, StatusCode::OK]);
    assert_eq!(statuses[2], StatusCode::TOO_MANY_REQUESTS);
    // another source is not affected
    let r = req(Method::GET, "/.well-known/host-meta")
        .from("192.0.2.200:1")
        .send(&e)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        e.state
            .stats
            .rate_limited
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn report_progress_reject_is_404_and_errors_in_xml() {
    let e = env_with(
        &CONFIG.replace(
            "rate-limit = 0",
            "rate-limit = 0\nreport-progress = \"reject\"",
        ),
        Arc::new(HashMap::<IpAddr, LeaseFacts>::new()),
    );
    let r = post(
        RP,
        XML,
        r#"<input xmlns="urn:ietf:params:xml:ns:yang:ietf-sztp-bootstrap-server"><progress-type>bootstrap-initiated</progress-type></input>"#,
    )
    .send(&e)
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.content_type.as_deref(), Some(XML));
    assert!(r.text().contains("<error-tag>invalid-value</error-tag>"));
    // accept mode: a report without progress-type is a 400
    let e = env();
    let r = post(RP, JSON, r#"{"ietf-sztp-bootstrap-server:input":{}}"#)
        .send(&e)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error().1, "missing-element");
}

#[tokio::test]
async fn restconf_root_and_operations() {
    let e = env();
    let r = req(Method::GET, "/restconf").send(&e).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json()["ietf-restconf:restconf"]["yang-library-version"],
        "2019-01-04"
    );
    let r = req(Method::GET, "/restconf/operations").send(&e).await;
    let ops = &r.json()["ietf-restconf:operations"];
    assert!(ops["ietf-sztp-bootstrap-server:get-bootstrapping-data"].is_array());
    assert!(ops["ietf-sztp-bootstrap-server:report-progress"].is_array());
    let r = req(Method::GET, "/restconf")
        .header(header::ACCEPT, XML)
        .send(&e)
        .await;
    assert_eq!(r.content_type.as_deref(), Some(XML));
    assert!(r
        .text()
        .starts_with("<restconf xmlns=\"urn:ietf:params:xml:ns:yang:ietf-restconf\">"));
}

#[tokio::test]
async fn strict_decoders_accept_the_output() {
    // interop.md §4: the output has no member besides conveyed-information, and each redirect
    // entry none besides address and port
    let e = env();
    let r = post(GBD, JSON, REQUEST_4_6).send(&e).await;
    let j = r.json();
    let top = j.as_object().unwrap();
    assert_eq!(top.len(), 1);
    let out = top["ietf-sztp-bootstrap-server:output"]
        .as_object()
        .unwrap();
    assert_eq!(out.keys().collect::<Vec<_>>(), ["conveyed-information"]);
    let (_, doc) = decode_content_info(&r.conveyed()).unwrap();
    let inner: serde_json::Value = serde_json::from_slice(&doc).unwrap();
    let ri = inner.as_object().unwrap();
    assert_eq!(
        ri.keys().collect::<Vec<_>>(),
        ["ietf-sztp-conveyed-info:redirect-information"]
    );
    for entry in ri["ietf-sztp-conveyed-info:redirect-information"]["bootstrap-server"]
        .as_array()
        .unwrap()
    {
        let mut keys: Vec<_> = entry.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["address", "port"]);
        assert!(entry["port"].is_u64());
    }
    // and our own strict decoder agrees
    assert!(parse_redirect_json(&doc).is_ok());
}

// ---- metrics ------------------------------------------------------------------------------

/// Every request is counted once, by RPC and the HTTP status it got, whatever answered it
/// (the handler, the router's fallback or a method check).
#[tokio::test]
async fn answers_are_counted_by_rpc_and_status() {
    let e = env();
    let r = req(Method::GET, "/.well-known/host-meta").send(&e).await;
    assert_eq!(r.status, StatusCode::OK);
    for _ in 0..2 {
        let r = post(GBD, JSON, REQUEST_4_6).send(&e).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    assert_eq!(
        req(Method::GET, GBD).send(&e).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        post(GBD, "text/plain", "x").send(&e).await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        req(Method::GET, "/index.html").send(&e).await.status,
        StatusCode::NOT_FOUND
    );
    let text = e.state.metrics.encode_prometheus();
    for line in [
        "sztp_restconf_requests_total 6",
        "sztp_restconf_replies_total 6",
        "sztp_restconf_answers_total{rpc=\"get-bootstrapping-data\",status=\"200\"} 2",
        "sztp_restconf_answers_total{rpc=\"get-bootstrapping-data\",status=\"405\"} 1",
        "sztp_restconf_answers_total{rpc=\"get-bootstrapping-data\",status=\"415\"} 1",
        "sztp_restconf_answers_total{rpc=\"other\",status=\"200\"} 1",
        "sztp_restconf_answers_total{rpc=\"other\",status=\"404\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
}
