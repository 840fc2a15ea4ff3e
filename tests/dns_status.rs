//! DNS seen by operators, through the real `sztp-redirector run` on loopback (unprivileged):
//! dig and kdig ask for the SRV, a known serial's TXT (UDP and TCP), an unknown serial and a
//! name outside the zones; a datagram that does not parse and a stray response are sent as
//! raw UDP. Then `/api/devices` (read with curl) shows the known serial handed off at
//! `dns-answered` and the unknown one failed with NXDOMAIN in words, and `/metrics`, parsed by
//! the Python Prometheus client's own parsers (text 0.0.4 and strict OpenMetrics), counts the
//! requests, replies, drops by reason, answers by transport and RCODE, and SRV/TXT questions.

mod common;

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::dns::Daemon;
use common::{run_cmd, run_ok, STATE_DIR};

fn config() -> String {
    format!(
        r#"
[appliance]
state-dir = "{STATE_DIR}"

[[bootstrap-server]]
name = "owner-primary"
uri = "https://sztp.owner.example.com:8443"

[[rule]]
name = "default"
redirect-to = ["owner-primary"]

[[device]]
serial = "SN123"

[dns]
listen = ["127.0.0.1:0"]
zones = ["example.com"]

[status]
listen = ["127.0.0.1:0"]
"#
    )
}

/// dig or kdig at `addr`; the answer's status line (`status: NOERROR`, …) must be there.
fn ask(tool: &str, addr: SocketAddr, args: &[&str]) -> String {
    let at = format!("@{}", addr.ip());
    let port = addr.port().to_string();
    let tries = if tool == "kdig" {
        "+retry=0"
    } else {
        "+tries=1"
    };
    let mut v = vec![tool, at.as_str(), "-p", &port, "+norec", "+time=5", tries];
    v.extend_from_slice(args);
    let out = run_cmd(&v, Duration::from_secs(20));
    assert!(out.success(), "{v:?}: {}\n{}", out.stdout, out.stderr);
    out.stdout
}

fn curl(url: &str) -> String {
    run_ok(&["curl", "-sS", "--fail", "--max-time", "20", url]).stdout
}

/// Every sample as "name{k=v,…}" (labels sorted) → value, parsed by the module in argv[1].
const PARSE_PY: &str = r#"
import importlib, json, sys
parser = importlib.import_module(sys.argv[1])
out = {}
with open(sys.argv[2]) as f:
    for fam in parser.text_string_to_metric_families(f.read()):
        for s in fam.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps(out))
"#;

/// The exposition at `url` parsed by /usr/bin/python3's prometheus_client (Debian's
/// python3-prometheus-client): the 0.0.4 text parser, or the strict OpenMetrics one.
fn metrics(url: &str, openmetrics: bool) -> BTreeMap<String, f64> {
    let (accept, module) = if openmetrics {
        (
            "Accept: application/openmetrics-text; version=1.0.0",
            "prometheus_client.openmetrics.parser",
        )
    } else {
        (
            "Accept: text/plain; version=0.0.4",
            "prometheus_client.parser",
        )
    };
    let text = run_ok(&[
        "curl",
        "-sS",
        "--fail",
        "--max-time",
        "20",
        "-H",
        accept,
        url,
    ])
    .stdout;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("parse.py");
    std::fs::write(&script, PARSE_PY).unwrap();
    let input = dir.path().join("metrics.txt");
    std::fs::write(&input, &text).unwrap();
    let out = run_cmd(
        &[
            "/usr/bin/python3",
            script.to_str().unwrap(),
            module,
            input.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert!(
        out.success(),
        "the Prometheus parser refused the exposition: {}\n{text}",
        out.stderr
    );
    serde_json::from_str(&out.stdout).unwrap()
}

/// Polls `get` until `ready` holds (the device table folds on its own thread and counters move
/// after the reply has left, so a client holding its answer does not mean they show it yet);
/// after 30 s returns the last value so the assertions show what was seen.
fn poll<T>(mut get: impl FnMut() -> T, ready: impl Fn(&T) -> bool) -> T {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let v = get();
        if ready(&v) || Instant::now() > until {
            return v;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn device<'a>(list: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    list["devices"].as_array()?.iter().find(|d| d["key"] == key)
}

/// The sample `key`, 0 when absent (a label set never incremented is not exported).
fn get(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

#[test]
fn dns_queries_show_in_the_device_table_and_the_metrics() {
    let mut d = Daemon::start(None, &config());
    let addr = d.listening("dns on udp", 0)[0];
    let status = format!("http://{}", d.listening("status on", 0)[0]);

    let srv = ask("dig", addr, &["_sztp._tcp.example.com", "SRV"]);
    assert!(srv.contains("status: NOERROR"), "{srv}");
    let txt = ask("kdig", addr, &["+tcp", "SN123._sztp.example.com", "TXT"]);
    assert!(
        txt.contains("status: NOERROR") && txt.contains("ci="),
        "{txt}"
    );
    let txt = ask("dig", addr, &["SN123._sztp.example.com", "TXT"]);
    assert!(txt.contains("status: NOERROR"), "{txt}");
    let nx = ask("dig", addr, &["SN999._sztp.example.com", "TXT"]);
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");
    let other = ask("dig", addr, &["www.example.org", "A"]);
    assert!(other.contains("status: REFUSED"), "{other}");
    // a query header with a question that runs past the datagram: FORMERR; a response (QR=1)
    // is dropped. The FORMERR reply is read back, so it was sent before the metrics are read.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.send_to(
        &[
            0x12, 0x34, 0x00, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0x3f, b'x',
        ],
        addr,
    )
    .unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert!(n >= 12 && buf[..2] == [0x12, 0x34], "{:?}", &buf[..n]);
    assert_eq!(buf[3] & 0x0f, 1, "FORMERR");
    sock.send_to(&[0xab, 0xcd, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0], addr)
        .unwrap();

    // the device table; an unknown serial is known by its query name, which DNS compares
    // case-insensitively (RFC 4343), so lowercase
    let url = format!("{status}/api/devices");
    let list = poll(
        || serde_json::from_str::<serde_json::Value>(&curl(&url)).unwrap(),
        |l| device(l, "SN123").is_some() && device(l, "sn999").is_some(),
    );
    let known = device(&list, "SN123").unwrap_or_else(|| panic!("{list:#}"));
    assert_eq!(known["stage"], "dns-answered", "{known:#}");
    assert_eq!(known["verdict"]["status"], "handed-off", "{known:#}");
    assert!(
        known["verdict"]["text"].as_str().unwrap().contains(
            "TXT record naming the owner's bootstrap server (https://sztp.owner.example.com:8443)"
        ),
        "{known:#}"
    );
    assert_eq!(known["told"]["proto"], "dns");
    assert_eq!(known["told"]["signed"], false);
    assert_eq!(known["stages"][0]["count"], 2, "UDP and TCP: {known:#}");
    let unknown = device(&list, "sn999").unwrap_or_else(|| panic!("{list:#}"));
    assert_eq!(unknown["verdict"]["status"], "failed", "{unknown:#}");
    assert!(
        unknown["verdict"]["text"].as_str().unwrap().contains(
            "got NXDOMAIN: no device entry or rule with a bootstrap server matches serial sn999"
        ),
        "{unknown:#}"
    );
    let one: serde_json::Value =
        serde_json::from_str(&curl(&format!("{status}/api/devices/SN123"))).unwrap();
    let timeline: Vec<&str> = one["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["summary"].as_str().unwrap())
        .collect();
    assert!(
        timeline
            .iter()
            .any(|s| s
                .starts_with("DNS over TCP TXT sn123._sztp.example.com from 127.0.0.1: answered")),
        "{timeline:#?}"
    );

    // the metrics: 7 datagrams/queries, 6 answered, the response dropped
    let want: &[(&str, f64)] = &[
        ("sztp_dns_requests_total{}", 7.0),
        ("sztp_dns_replies_total{}", 6.0),
        ("sztp_dns_dropped_total{reason=not-a-query}", 1.0),
        ("sztp_dns_answers_total{rcode=NOERROR,transport=udp}", 2.0),
        ("sztp_dns_answers_total{rcode=NOERROR,transport=tcp}", 1.0),
        ("sztp_dns_answers_total{rcode=NXDOMAIN,transport=udp}", 1.0),
        ("sztp_dns_answers_total{rcode=REFUSED,transport=udp}", 1.0),
        ("sztp_dns_answers_total{rcode=FORMERR,transport=udp}", 1.0),
        ("sztp_dns_srv_queries_total{}", 1.0),
        ("sztp_dns_txt_queries_total{answer=record}", 2.0),
        ("sztp_dns_txt_queries_total{answer=nxdomain}", 1.0),
        ("sztp_device_events_total{event=answered,proto=dns}", 2.0),
        ("sztp_device_events_total{event=nxdomain,proto=dns}", 1.0),
    ];
    let metrics_url = format!("{status}/metrics");
    for openmetrics in [false, true] {
        let m = poll(
            || metrics(&metrics_url, openmetrics),
            |m| want.iter().all(|(k, v)| get(m, k) == *v),
        );
        for (k, v) in want {
            assert_eq!(
                get(&m, k),
                *v,
                "{k} (openmetrics: {openmetrics}); have {m:#?}"
            );
        }
        assert_eq!(get(&m, "sztp_dns_dropped_total{reason=malformed}"), 0.0);
    }
    assert!(d.terminate().success());
}
