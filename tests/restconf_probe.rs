//! `sztp-redirector probe --restconf`: the real probe binary against the redirect server (in
//! process on 127.0.0.1:0) and the Python owner bootstrap-server double, which records that
//! the device arrived. No privileges needed.

mod restconf_common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use restconf_common::*;

const BIN: &str = env!("CARGO_BIN_EXE_sztp-redirector");

fn config(owner: &str, extra: &str) -> String {
    format!(
        r#"
[appliance]
state-dir = "{STATE_DIR}"

[[bootstrap-server]]
name = "owner"
uri = "{owner}"

[[bootstrap-server]]
name = "elsewhere"
uri = "https://127.0.0.1:1"

[redirect-server]
listen = ["127.0.0.1:0"]
advertise = "https://192.0.2.1"
rate-limit = 0
{extra}

[[rule]]
name = "lab"
match.serial = ["LAB*"]
redirect-to = ["owner"]

[[rule]]
name = "default"
redirect-to = ["elsewhere"]
"#
    )
}

async fn probe(args: &[&str]) -> Out {
    let mut v = s(&[BIN, "probe"]);
    v.extend(s(args));
    run(v, Duration::from_secs(60)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_follows_the_redirect_to_the_owner_double() {
    let owner = OwnerDouble::start(&[]);
    let r = Redirector::start(&config(
        &format!("https://{}", owner.addr),
        "serial-from = \"basic-username\"",
    ))
    .await;
    let out = probe(&[
        "--restconf",
        &r.base(),
        "--serial",
        "LAB1",
        "--hw-model",
        "model-x",
    ])
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let text = &out.stdout;
    let hop1 = format!("RESTCONF hop 1: https://{}", r.addr);
    let hop2 = format!("RESTCONF hop 2: https://{}", owner.addr);
    assert!(text.contains(&hop1), "{text}");
    assert!(
        text.contains("host-meta: RESTCONF root /restconf"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "answer: unsigned redirect-information (JSON, 1.2.840.113549.1.9.16.1.43), 1 bootstrap server:\n    1. https://{}",
            owner.addr
        )),
        "{text}"
    );
    assert!(text.contains(&hop2), "{text}");
    assert!(
        text.contains("server certificate: CN=sztp-redirector (ECDSA)"),
        "{text}"
    );
    assert!(
        text.contains("server certificate: CN=owner.example.com (ECDSA)"),
        "{text}"
    );
    assert!(
        text.contains("answer: unsigned onboarding-information"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "result: bootstrapping data from https://{} after 2 hops",
            owner.addr
        )),
        "{text}"
    );
    // the owner double saw the device: host-meta discovery, then the RPC with the RFC input
    let arrivals = owner.arrivals();
    assert_eq!(arrivals.len(), 2, "{arrivals:?}");
    assert_eq!(arrivals[0]["path"], "/.well-known/host-meta");
    assert_eq!(
        arrivals[1]["path"],
        "/restconf/operations/ietf-sztp-bootstrap-server:get-bootstrapping-data"
    );
    assert_eq!(arrivals[1]["content_type"], "application/yang-data+json");
    assert_eq!(arrivals[1]["basic_user"], "LAB1");
    let body: serde_json::Value =
        serde_json::from_str(arrivals[1]["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body["ietf-sztp-bootstrap-server:input"]["signed-data-preferred"],
        serde_json::json!([null])
    );
    // and the redirect server journaled why it sent it there
    let ev = r.events();
    assert_eq!(ev[0]["serial"], "LAB1");
    assert_eq!(ev[0]["rule"], "lab");
    assert_eq!(ev[0]["uris"][0], format!("https://{}", owner.addr));
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_with_a_client_certificate_in_xml() {
    let owner = OwnerDouble::start(&[]);
    let r = Redirector::start(&config(&format!("https://{}", owner.addr), "")).await;
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) =
        openssl_self_signed(certs.path(), "dev", "/serialNumber=PID:T-1 SN:LAB9/CN=dev");
    let out = probe(&[
        "--restconf",
        &r.base(),
        "--client-cert",
        cert.to_str().unwrap(),
        "--client-key",
        key.to_str().unwrap(),
        "--xml",
        "--json",
    ])
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let j: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let hops = j["restconf"]["hops"].as_array().unwrap();
    assert_eq!(hops.len(), 2);
    assert_eq!(hops[0]["answer"]["kind"], "redirect");
    assert_eq!(
        hops[0]["answer"]["format"],
        "XML, 1.2.840.113549.1.9.16.1.42"
    );
    assert_eq!(
        hops[0]["answer"]["bootstrap_servers"][0]["port"],
        owner.addr.port()
    );
    assert_eq!(hops[1]["answer"]["kind"], "onboarding");
    assert_eq!(j["restconf"]["end"], "reached");
    assert_eq!(
        owner.arrivals()[1]["content_type"],
        "application/yang-data+xml"
    );
    let ev = r.events();
    assert_eq!(ev[0]["serial"], "LAB9");
    assert_eq!(ev[0]["identity"], "subject-serial-number");
    assert_eq!(ev[0]["media_type"], "application/yang-data+xml");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_detects_a_loop_between_two_redirect_servers() {
    let basic = "serial-from = \"basic-username\"";
    let a = Redirector::start(&config("https://192.0.2.99", basic)).await;
    let b = Redirector::start(&config(&a.base(), basic)).await;
    // now point a at b: a → b → a (a reload publishes the next configuration)
    assert!(a.reload(&config(&b.base(), basic)));
    let out = probe(&["--restconf", &a.base(), "--serial", "LAB2"]).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    let text = &out.stdout;
    assert!(
        text.contains(&format!("RESTCONF hop 2: https://{}", b.addr)),
        "{text}"
    );
    assert!(!text.contains("RESTCONF hop 3"), "{text}");
    assert!(
        text.contains(&format!(
            "result: redirect loop: https://{} was already visited",
            a.addr
        )),
        "{text}"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_posts_straight_to_an_operation_url() {
    let r = Redirector::start(&config("https://192.0.2.99", "")).await;
    let url = format!(
        "{}/restconf/operations/ietf-sztp-bootstrap-server:get-bootstrapping-data",
        r.base()
    );
    let out = probe(&["--restconf", &url, "--restconf-timeout", "2s"]).await;
    // the default rule sends to 127.0.0.1:1, where nothing listens (traffic stays on loopback)
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        !out.stdout.contains("host-meta: RESTCONF root"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("RESTCONF hop 2: https://127.0.0.1:1\n  unreachable: connect 127.0.0.1:1:"),
        "{}",
        out.stdout
    );
    assert_eq!(r.state.stats.host_meta.load(Ordering::Relaxed), 0);
    assert_eq!(r.state.stats.redirects.load(Ordering::Relaxed), 1);
    // an error answer is shown with its RFC 8040 tag
    let out = probe(&["--restconf", &format!("{}/restconf/nothing", r.base())]).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stdout
            .contains("answer: HTTP 404 invalid-value: no such resource"),
        "{}",
        out.stdout
    );
    r.stop().await;
}
