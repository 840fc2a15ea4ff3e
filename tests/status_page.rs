//! The status page in a real browser (Debian's headless Chromium): the status server runs in
//! process on 127.0.0.1:0 with a device table fed the events a DHCPv4 exchange produces; the
//! DOM Chromium renders must list the devices with their verdicts, and a device's timeline.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sztp_redirector::devices::{DeviceTable, Fold, Limits};
use sztp_redirector::journal::{DeviceEvent, Dhcp4Kind, EventDetail};
use sztp_redirector::metrics::Metrics;
use sztp_redirector::policy::MacAddr;
use sztp_redirector::runtime::{Events, Published, ServiceContext, Snapshot};
use sztp_redirector::status;
use tokio_util::sync::CancellationToken;

/// Debian's chromium, or None (then the test skips, or fails under
/// SZTP_REQUIRE_PRIVILEGED_TESTS=1, which CI sets: the browser test must not pass by skipping).
pub fn chromium() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/bin/chromium");
    if p.exists() {
        return Some(p);
    }
    let reason = "SKIP: /usr/bin/chromium is not installed (apt-get install chromium)";
    if std::env::var(common::REQUIRE_ENV).as_deref() == Ok("1") {
        panic!("{reason}, and {}=1 forbids skipping", common::REQUIRE_ENV);
    }
    eprintln!("{reason}");
    None
}

/// Headless Chromium on `url` with a fresh profile: `--dump-dom` output, or a screenshot
/// written to `screenshot` at `size` (width, height in CSS pixels). Virtual time lets the page's fetches and first poll
/// finish before the DOM is taken; the outer timeout only bounds a hung browser.
pub fn chromium_run(url: &str, screenshot: Option<(&Path, (u32, u32))>) -> String {
    let bin = chromium().expect("chromium");
    let profile = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--virtual-time-budget=5000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("--user-data-dir={}", profile.path().display()));
    match screenshot {
        Some((p, (w, h))) => {
            args.push(format!("--window-size={w},{h}"));
            args.push(format!("--screenshot={}", p.display()));
        }
        None => args.push("--dump-dom".into()),
    }
    args.push(url.to_owned());
    let mut argv: Vec<&str> = vec![bin.to_str().unwrap()];
    argv.extend(args.iter().map(String::as_str));
    let out = common::run_cmd(&argv, Duration::from_secs(120));
    assert!(
        out.success(),
        "chromium failed ({:?}):\n{}",
        out.status,
        out.stderr
    );
    out.stdout
}

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

fn event(ts: u64, kind: Dhcp4Kind, last: u8, requested_143: bool) -> DeviceEvent {
    let mut ev = DeviceEvent::dhcp4(ts, kind, 0x1234, MacAddr([2, 0, 0, 0x53, 0x5a, last]));
    ev.rule = Some("default".into());
    let EventDetail::Dhcp4(d) = &mut ev.detail else {
        unreachable!("built as a DHCPv4 event")
    };
    d.address = Some(Ipv4Addr::new(192, 0, 2, 100 + last));
    d.requested_143 = requested_143;
    d.interface = Some("eth1".into());
    d.vendor_class = Some(format!("<b>vendor-{last}</b>"));
    if requested_143 {
        ev.uris = vec!["https://sztp.owner.example.com:8443".into()];
        d.encoding = Some(sztp_redirector::policy::UriEncoding::Rfc8572);
    }
    ev
}

struct Running {
    addr: SocketAddr,
    token: CancellationToken,
    rt: tokio::runtime::Runtime,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _table: Arc<DeviceTable>,
}

fn start(events: &[DeviceEvent]) -> Running {
    let cfg = sztp_redirector::config::load_str(Path::new("status.toml"), CONFIG).unwrap();
    let bound = status::bind(cfg.status.as_ref().unwrap()).unwrap();
    let addr = bound.listeners[0].local_addr().unwrap();
    let metrics = Metrics::new();
    let table = Arc::new(
        DeviceTable::spawn(Fold::new(Limits::default()), Some(metrics.events.clone())).unwrap(),
    );
    for ev in events {
        table.submit(ev);
    }
    table.flush();
    let ctx = ServiceContext::new(
        Published::new(Snapshot::new(cfg, 0)),
        Events::new(None).with_table(Arc::clone(&table)),
        std::env::temp_dir(),
        metrics,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let token = CancellationToken::new();
    let task = rt.spawn(status::serve(bound, ctx, token.clone()));
    Running {
        addr,
        token,
        rt,
        task,
        _table: table,
    }
}

impl Running {
    fn stop(self) {
        self.token.cancel();
        let r = self
            .rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(30), self.task).await });
        assert!(
            matches!(r, Ok(Ok(Ok(())))),
            "serve did not end cleanly: {r:?}"
        );
    }
}

#[test]
fn chromium_lists_devices_and_shows_a_timeline() {
    if chromium().is_none() {
        return;
    }
    let t0 = sztp_redirector::journal::unix_now() - 30;
    let server = start(&[
        event(t0, Dhcp4Kind::Offer, 1, true),
        event(t0 + 1, Dhcp4Kind::Ack, 1, true),
        event(t0 + 2, Dhcp4Kind::Offer, 2, false),
        event(t0 + 3, Dhcp4Kind::Ack, 2, false),
        event(t0 + 4, Dhcp4Kind::Offer, 3, true),
        // the same OFFER twice more (a device retrying): one timeline entry, ×3
        event(t0 + 5, Dhcp4Kind::Offer, 3, true),
        event(t0 + 6, Dhcp4Kind::Offer, 3, true),
    ]);
    let base = format!("http://{}/", server.addr);

    let dom = chromium_run(&base, None);
    for key in [
        "02:00:00:53:5a:01",
        "02:00:00:53:5a:02",
        "02:00:00:53:5a:03",
    ] {
        assert!(
            dom.contains(&format!("<tr data-key=\"{key}\"")),
            "row for {key} missing:\n{dom}"
        );
    }
    assert!(
        dom.contains("got a lease but never asked for option 143: its DHCP client is not configured for SZTP"),
        "{dom}"
    );
    assert!(dom.contains("data-status=\"handed-off\""), "{dom}");
    assert!(dom.contains("data-stage=\"dhcp-offered\""), "{dom}");
    // device-supplied text is shown as text, never parsed as markup
    assert!(dom.contains("&lt;b&gt;vendor-2&lt;/b&gt;"), "{dom}");
    assert!(!dom.contains("<b>vendor-2</b>"), "{dom}");
    assert!(dom.contains("live · 3 devices"), "{dom}");

    let dom = chromium_run(&format!("{base}#device/02%3A00%3A00%3A53%3A5a%3A02"), None);
    assert!(
        dom.contains(
            "DHCPv4 ACK 192.0.2.102: did not ask for option 143, sent no option 143 (rule default)"
        ),
        "timeline missing:\n{dom}"
    );
    assert!(dom.contains("id=\"list-view\" hidden"), "{dom}");

    let dom = chromium_run(&format!("{base}#device/02%3A00%3A00%3A53%3A5a%3A03"), None);
    let first = sztp_redirector::journal::rfc3339(t0 + 4);
    assert!(
        dom.contains(&format!("×3 since {first}")),
        "repeat count missing:\n{dom}"
    );
    assert_eq!(dom.matches("DHCPv4 OFFER 192.0.2.103").count(), 1, "{dom}");

    // a screenshot renders (the README's one comes from tests/status_e2e.rs's real exchange)
    let dir = tempfile::tempdir().unwrap();
    // SZTP_SCREENSHOT_DIR keeps the pictures for a look
    let out =
        std::env::var_os("SZTP_SCREENSHOT_DIR").map_or(dir.path().to_path_buf(), PathBuf::from);
    let png = out.join("page.png");
    chromium_run(&base, Some((&png, (1280, 800))));
    chromium_run(
        &format!("{base}#device/02%3A00%3A00%3A53%3A5a%3A01"),
        Some((&out.join("timeline.png"), (1280, 800))),
    );
    // a phone's viewport: the table turns into cards
    chromium_run(&base, Some((&out.join("phone.png"), (390, 844))));
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(bytes.len() > 10_000, "suspiciously small screenshot");
    server.stop();
}

/// The README's picture: `SZTP_BLESS_SCREENSHOT=1 cargo test --test status_page` rewrites
/// docs/status-page.png from a table with one device per verdict (events as the DHCPv4 server
/// emits them). Without the variable the test still renders it and checks the DOM.
#[test]
fn readme_screenshot() {
    if chromium().is_none() {
        return;
    }
    let t0 = sztp_redirector::journal::unix_now() - 95;
    let mut evs = Vec::new();
    let mut add = |dt: u64, kind: Dhcp4Kind, last: u8, req: bool, vendor: &str| {
        let mut ev = event(t0 + dt, kind, last, req);
        let EventDetail::Dhcp4(d) = &mut ev.detail else {
            unreachable!("built as a DHCPv4 event")
        };
        d.vendor_class = Some(vendor.to_owned());
        d.interface = Some("eth1".into());
        d.relay = Some(std::net::Ipv4Addr::new(192, 0, 2, 1));
        if kind == Dhcp4Kind::Nak {
            d.address = None;
            d.reason = Some(sztp_redirector::journal::Dhcp4Reason::NotOnNetwork);
            ev.uris.clear();
        }
        evs.push(ev);
    };
    add(0, Dhcp4Kind::Offer, 0x11, true, "Juniper-ex4300-48t");
    add(1, Dhcp4Kind::Ack, 0x11, true, "Juniper-ex4300-48t");
    add(20, Dhcp4Kind::Offer, 0x12, false, "Cisco C9300-24T");
    add(21, Dhcp4Kind::Ack, 0x12, false, "Cisco C9300-24T");
    add(40, Dhcp4Kind::Offer, 0x13, true, "Arista DCS-7050SX3");
    add(80, Dhcp4Kind::Nak, 0x14, true, "Nokia 7750");
    let server = start(&evs);
    let base = format!("http://{}/", server.addr);
    let dom = chromium_run(&base, None);
    assert_eq!(dom.matches("<tr data-key=").count(), 4, "{dom}");
    assert!(dom.contains("data-status=\"failed\""), "{dom}");
    let dir = tempfile::tempdir().unwrap();
    let png = if std::env::var_os("SZTP_BLESS_SCREENSHOT").is_some() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/status-page.png")
    } else {
        dir.path().join("status-page.png")
    };
    std::fs::create_dir_all(png.parent().unwrap()).unwrap();
    chromium_run(&base, Some((&png, (1100, 560))));
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    server.stop();
}
