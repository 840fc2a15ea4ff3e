//! Router tests with `oneshot` (no sockets) and one `serve` run on 127.0.0.1:0.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;
use crate::devices::{DeviceTable, Fold, Limits};
use crate::journal::{DeviceEvent, Dhcp4Kind, EventDetail};
use crate::metrics::Metrics;
use crate::policy::MacAddr;
use crate::runtime::{Events, Published, ServiceContext, Snapshot};

const CONFIG: &str = r#"
[appliance]
state-dir = "/nonexistent"

[[bootstrap-server]]
name = "owner-primary"
uri = "https://sztp.owner.example.com:8443"

[[rule]]
name = "default"
redirect-to = ["owner-primary"]

[status]
listen = ["127.0.0.1:0"]
"#;

struct Fixture {
    state: StatusState,
    table: Arc<DeviceTable>,
    dir: tempfile::TempDir,
}

fn fixture(token: Option<&str>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::config::load_str(Path::new("status.toml"), CONFIG).unwrap();
    let metrics = Metrics::new();
    let table = Arc::new(
        DeviceTable::spawn(Fold::new(Limits::default()), Some(metrics.events.clone())).unwrap(),
    );
    let ctx = ServiceContext::new(
        Published::new(Snapshot::new(cfg, 0)),
        Events::new(None).with_table(Arc::clone(&table)),
        dir.path().to_path_buf(),
        metrics,
    );
    Fixture {
        state: StatusState::new(&ctx, token.map(str::to_owned)),
        table,
        dir,
    }
}

fn event(kind: Dhcp4Kind, last: u8, requested_143: bool) -> DeviceEvent {
    let mut ev = DeviceEvent::dhcp4(1_795_810_500, kind, 7, MacAddr([2, 0, 0, 0, 0, last]));
    ev.rule = Some("default".into());
    let EventDetail::Dhcp4(d) = &mut ev.detail else {
        unreachable!("built as a DHCPv4 event")
    };
    d.address = Some(Ipv4Addr::new(192, 0, 2, 100 + last));
    d.requested_143 = requested_143;
    if requested_143 {
        ev.uris = vec!["https://sztp.owner.example.com:8443".into()];
    }
    ev
}

async fn call(state: &StatusState, req: Request<Body>) -> (StatusCode, header::HeaderMap, Vec<u8>) {
    let resp = router(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

async fn json(state: &StatusState, path: &str) -> (StatusCode, serde_json::Value) {
    let (s, _, b) = call(state, get(path)).await;
    (
        s,
        serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn page_and_assets_come_from_the_binary() {
    let f = fixture(None);
    let (s, h, b) = call(&f.state, get("/")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert!(h[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .starts_with("default-src 'self'"));
    let html = String::from_utf8(b).unwrap();
    assert!(html.contains(r#"<table id="devices">"#));
    assert!(html.contains(r#"<script src="page.js" defer>"#));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no CDN"
    );
    let (s, h, js) = call(&f.state, get("/page.js")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
    assert!(String::from_utf8(js).unwrap().contains("api/devices"));
    let (s, _, _) = call(&f.state, get("/page.css")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = json(&f.state, "/nope").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"], "no such page");
}

#[tokio::test]
async fn devices_list_filters_and_etag() {
    let f = fixture(None);
    f.table.submit(&event(Dhcp4Kind::Offer, 1, true));
    f.table.submit(&event(Dhcp4Kind::Ack, 1, true));
    f.table.submit(&event(Dhcp4Kind::Offer, 2, false));
    f.table.submit(&event(Dhcp4Kind::Ack, 2, false));
    f.table.submit(&event(Dhcp4Kind::Offer, 3, true));
    f.table.flush();
    let (s, h, b) = call(&f.state, get("/api/devices")).await;
    assert_eq!(s, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["total"], 3);
    assert_eq!(v["counts"]["dhcp-acked"], 2);
    assert_eq!(v["counts"]["dhcp-offered"], 1);
    assert_eq!(v["counts"]["stuck"], 2);
    assert_eq!(v["counts"]["handed-off"], 1);
    let by_key = |k: &str| {
        v["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["key"] == k)
            .cloned()
            .unwrap()
    };
    let two = by_key("02:00:00:00:00:02");
    assert_eq!(two["stage"], "dhcp-acked");
    assert_eq!(
        two["verdict"]["text"],
        "got a lease but never asked for option 143: its DHCP client is not configured for SZTP"
    );
    assert_eq!(
        by_key("02:00:00:00:00:01")["verdict"]["status"],
        "handed-off"
    );

    let (_, v) = json(&f.state, "/api/devices?stage=dhcp-offered").await;
    let keys: Vec<&str> = v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["02:00:00:00:00:03"]);
    let (_, v) = json(&f.state, "/api/devices?status=stuck&stage=dhcp-acked").await;
    assert_eq!(v["devices"].as_array().unwrap().len(), 1);
    let (s, v) = json(&f.state, "/api/devices?stage=bogus").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"], "unknown stage \"bogus\"");

    // unchanged: 304; one more event: 200 with a new tag
    let tag = h[header::ETAG].clone();
    let req = Request::get("/api/devices")
        .header(header::IF_NONE_MATCH, tag.clone())
        .body(Body::empty())
        .unwrap();
    let (s, _, b) = call(&f.state, req).await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);
    assert!(b.is_empty());
    f.table.submit(&event(Dhcp4Kind::Ack, 3, true));
    f.table.flush();
    let req = Request::get("/api/devices")
        .header(header::IF_NONE_MATCH, tag.clone())
        .body(Body::empty())
        .unwrap();
    let (s, h2, _) = call(&f.state, req).await;
    assert_eq!(s, StatusCode::OK);
    assert_ne!(h2[header::ETAG], tag);
}

#[tokio::test]
async fn one_device_by_any_key_with_its_timeline() {
    let f = fixture(None);
    f.table.submit(&event(Dhcp4Kind::Offer, 1, true));
    f.table.submit(&event(Dhcp4Kind::Ack, 1, true));
    f.table.flush();
    for key in [
        "02:00:00:00:00:01",
        "02-00-00-00-00-01",
        "192.0.2.101",
        "%231",
    ] {
        let (s, v) = json(&f.state, &format!("/api/devices/{key}")).await;
        assert_eq!(s, StatusCode::OK, "{key}");
        assert_eq!(v["key"], "02:00:00:00:00:01");
        let tl = v["timeline"].as_array().unwrap();
        assert_eq!(tl.len(), 2);
        assert_eq!(tl[0]["event"], "offer");
        assert_eq!(tl[1]["proto"], "dhcp4");
        assert!(tl[1]["summary"]
            .as_str()
            .unwrap()
            .starts_with("DHCPv4 ACK 192.0.2.101"));
        assert_eq!(v["timeline_truncated"], false);
    }
    let (s, v) = json(&f.state, "/api/devices/SN-unknown").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(v["error"].as_str().unwrap().contains("SN-unknown"));
}

#[tokio::test]
async fn metrics_in_both_text_formats() {
    let f = fixture(None);
    f.table.submit(&event(Dhcp4Kind::Ack, 1, true));
    f.table.flush();
    let (s, h, b) = call(&f.state, get("/metrics")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        h[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = String::from_utf8(b).unwrap();
    assert!(
        text.contains("sztp_device_events_total{proto=\"dhcp4\",event=\"ack\"} 1"),
        "{text}"
    );
    let req = Request::get("/metrics")
        .header(
            header::ACCEPT,
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )
        .body(Body::empty())
        .unwrap();
    let (s, h, b) = call(&f.state, req).await;
    assert_eq!(s, StatusCode::OK);
    assert!(h[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text; version=1.0.0"));
    let text = String::from_utf8(b).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    // the status server counts its own requests (two before this scrape's encoding)
    assert!(text.contains("sztp_status_requests_total 2"), "{text}");
}

#[tokio::test]
async fn a_token_guards_the_api_but_not_the_page() {
    let f = fixture(Some("s3cret-token"));
    let (s, _, _) = call(&f.state, get("/")).await;
    assert_eq!(s, StatusCode::OK);
    for path in ["/api/devices", "/api/devices/x", "/api/leases", "/metrics"] {
        let (s, h, _) = call(&f.state, get(path)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            h[header::WWW_AUTHENTICATE],
            "Bearer realm=\"sztp-redirector\""
        );
        for bad in [
            "Bearer wrong",
            "Basic czNjcmV0LXRva2Vu",
            "Bearer s3cret-token-x",
            "Bearer",
        ] {
            let req = Request::get(path)
                .header(header::AUTHORIZATION, bad)
                .body(Body::empty())
                .unwrap();
            let (s, _, _) = call(&f.state, req).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{path} with {bad:?}");
        }
    }
    let req = Request::get("/api/devices")
        .header(header::AUTHORIZATION, "bearer s3cret-token")
        .body(Body::empty())
        .unwrap();
    let (s, _, _) = call(&f.state, req).await;
    assert_eq!(s, StatusCode::OK);
    let text = f.state.metrics.encode_prometheus();
    assert!(
        text.contains("sztp_status_dropped_total{reason=\"unauthorized\"} 20"),
        "{text}"
    );
}

#[tokio::test]
async fn leases_from_the_journal() {
    use crate::dhcp::lease_store::LeaseStore;
    use crate::dhcp::leases::{Lease4, LeaseState};
    let f = fixture(None);
    let (s, v) = json(&f.state, "/api/leases").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, serde_json::json!([]));
    let (mut store, _) = LeaseStore::open(f.dir.path()).unwrap();
    let lease = |last: u8, mac: u8| Lease4 {
        addr: Ipv4Addr::new(192, 0, 2, last),
        mac: MacAddr([2, 0, 0, 0, 0, mac]),
        client_id: Some(vec![1, 2]),
        hostname: None,
        expires: 1_795_810_500,
        state: LeaseState::Bound,
    };
    store.append(&[lease(110, 1), lease(9, 2)]).unwrap();
    drop(store);
    let (s, v) = json(&f.state, "/api/leases").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        serde_json::json!([
            {"proto": "dhcp4", "address": "192.0.2.9", "mac": "02:00:00:00:00:02", "state": "bound",
             "expires": "2026-11-27T20:15:00Z", "expires_unix": 1_795_810_500u64, "client_id": "0102", "hostname": null},
            {"proto": "dhcp4", "address": "192.0.2.110", "mac": "02:00:00:00:00:01", "state": "bound",
             "expires": "2026-11-27T20:15:00Z", "expires_unix": 1_795_810_500u64, "client_id": "0102", "hostname": null},
        ])
    );

    // DHCPv6 bindings follow, with their IAID and the DUID as client_id
    use crate::dhcp::v6::bindings::Lease6;
    let (mut store6, _) = crate::dhcp::lease_store::Journal::<Lease6>::open(f.dir.path()).unwrap();
    store6
        .append(&[Lease6 {
            addr: "2001:db8:1::1000".parse().unwrap(),
            duid: vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 3],
            iaid: 9,
            mac: None,
            expires: 1_795_810_500,
            state: LeaseState::Declined,
        }])
        .unwrap();
    drop(store6);
    let (s, v) = json(&f.state, "/api/leases").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(v[0]["address"], "192.0.2.9");
    assert_eq!(v[0].get("iaid"), None);
    assert_eq!(
        v[2],
        serde_json::json!({"proto": "dhcp6", "address": "2001:db8:1::1000", "mac": null,
            "state": "declined", "expires": "2026-11-27T20:15:00Z",
            "expires_unix": 1_795_810_500u64, "client_id": "00030001020000000003", "iaid": 9,
            "hostname": null})
    );
}

/// The service shape: `bind` on 127.0.0.1:0, `serve` answers real HTTP (the `devices`
/// client's own request code), and every task ends after cancel, even with an idle
/// keep-alive connection open.
#[tokio::test]
async fn serve_answers_and_drains_on_cancel() {
    let f = fixture(None);
    let cfg = crate::config::load_str(Path::new("status.toml"), CONFIG).unwrap();
    let bound = bind(cfg.status.as_ref().unwrap()).unwrap();
    let addr = bound.listeners[0].local_addr().unwrap();
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    let ctx = ServiceContext::new(
        f.state.published.clone(),
        Events::new(None).with_table(Arc::clone(&f.table)),
        f.dir.path().to_path_buf(),
        f.state.metrics.clone(),
    );
    f.table.submit(&event(Dhcp4Kind::Ack, 4, false));
    f.table.flush();
    let token = CancellationToken::new();
    let task = tokio::spawn(serve(bound, ctx, token.clone()));
    let base = format!("http://{addr}");
    let (code, body) = client::get(&base, "/api/devices/02:00:00:00:00:04", None)
        .await
        .unwrap();
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["stage"], "dhcp-acked");
    // an idle connection that never sends a request must not hold the shutdown
    let idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    token.cancel();
    let res = tokio::time::timeout(std::time::Duration::from_secs(30), task)
        .await
        .expect("serve ends after cancel")
        .unwrap();
    assert!(res.is_ok(), "{res:?}");
    drop(idle);
    assert!(
        client::get(&base, "/", None).await.is_err(),
        "no longer listening"
    );
}

#[test]
fn bind_reads_the_token_file_and_refuses_an_empty_one() {
    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("token");
    std::fs::write(&tok, "  abc\n").unwrap();
    let text = format!("{CONFIG}token-file = \"{}\"\n", tok.display());
    let cfg = crate::config::load_str(Path::new("status.toml"), &text).unwrap();
    let st = cfg.status.as_ref().unwrap();
    assert_eq!(bind(st).unwrap().token.as_deref(), Some("abc"));
    std::fs::write(&tok, "\n").unwrap();
    let e = bind(st).unwrap_err();
    assert!(e.to_string().contains("the file is empty"), "{e}");
    std::fs::remove_file(&tok).unwrap();
    let e = bind(st).unwrap_err();
    assert!(e.to_string().starts_with("status.token-file"), "{e}");
}
