//! The status server of the real binary under real exchanges:
//! - on loopback, unprivileged: `probe` as two devices behind a relay (one asks for option 143,
//!   one does not), then `/api/devices` (read with curl) has both with the right stages and
//!   verdicts, `/metrics` parsed by the Python Prometheus client's own parsers (text 0.0.4 and
//!   OpenMetrics) shows the pool gauges move as leases are taken, `sztp-redirector devices`
//!   prints the table and a timeline from the API and, after the daemon stopped, from the
//!   device journal, and headless Chromium's DOM lists the probed devices;
//! - in network namespaces (root): real DHCP clients (udhcpc asking for 143, dhclient not)
//!   get the verdicts the issue names.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{run_cmd, run_ok, Child, BIN};

const CONFIG: &str = r#"
[appliance]
state-dir = "{STATE_DIR}"

[[bootstrap-server]]
name = "owner-primary"
uri = "https://sztp.owner.example.com:8443"

[[rule]]
name = "default"
redirect-to = ["owner-primary"]

[dhcp4]
interfaces = ["lo"]
port = 0

[[dhcp4.subnet]]
subnet = "192.0.2.0/24"
pools = ["192.0.2.100-192.0.2.109"]
routers = ["192.0.2.1"]
lease-time = "1h"

[status]
listen = ["127.0.0.1:0"]
"#;

/// The daemon on loopback, with the ports it logged.
struct Daemon {
    child: Child,
    dhcp_port: u16,
    status: String,
    dir: tempfile::TempDir,
}

/// The port in the first log line containing `needle` followed by `ADDR:PORT`.
fn logged_port(child: &Child, needle: &str) -> u16 {
    assert!(
        child.wait_for_lines(needle, 1, Duration::from_secs(20)),
        "no `{needle}` line:\n{}",
        child.output_text()
    );
    let line = child
        .lines()
        .into_iter()
        .find(|l| l.contains(needle))
        .unwrap();
    line.rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"))
}

fn start() -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cfg = dir.path().join("sztp.toml");
    std::fs::write(&cfg, CONFIG.replace("{STATE_DIR}", state.to_str().unwrap())).unwrap();
    let child = Child::spawn(
        &[BIN, "run", "--config", cfg.to_str().unwrap()],
        Duration::from_secs(600),
    );
    let dhcp_port = logged_port(&child, "listening for dhcp4 on lo 0.0.0.0:");
    let status_port = logged_port(&child, "listening for status on 127.0.0.1:");
    Daemon {
        child,
        dhcp_port,
        status: format!("http://127.0.0.1:{status_port}"),
        dir,
    }
}

impl Daemon {
    fn probe(&self, mac: &str, extra: &[&str]) -> String {
        let port = format!("127.0.0.1:{}", self.dhcp_port);
        let mut args = vec![
            BIN,
            "probe",
            "--relay",
            &port,
            "--link-selection",
            "192.0.2.1",
            "--mac",
            mac,
            "--wait",
            "2s",
        ];
        args.extend_from_slice(extra);
        let out = run_ok(&args);
        assert!(out.stdout.contains("\nack 192.0.2.10"), "{}", out.stdout);
        out.stdout
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }
}

/// `curl` (a real HTTP client, not ours) GET; returns the body, failing on an HTTP error.
fn curl(url: &str, accept: Option<&str>) -> String {
    let mut args = vec!["curl", "-sS", "--fail", "--max-time", "20"];
    let header;
    if let Some(a) = accept {
        header = format!("Accept: {a}");
        args.extend_from_slice(&["-H", &header]);
    }
    args.push(url);
    run_ok(&args).stdout
}

/// Prints every sample of the exposition in argv[2] as JSON, "name{k=v,…}" (labels sorted)
/// → value, parsed by the module named in argv[1] of the Python Prometheus client.
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

/// Every sample of a Prometheus exposition, parsed by the Python client's parser (Debian's
/// python3-prometheus-client, so /usr/bin/python3): the text 0.0.4 parser, or with
/// `openmetrics` the strict OpenMetrics one.
fn parse_metrics(text: &str, openmetrics: bool) -> BTreeMap<String, f64> {
    let module = if openmetrics {
        "prometheus_client.openmetrics.parser"
    } else {
        "prometheus_client.parser"
    };
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("parse.py");
    std::fs::write(&script, PARSE_PY).unwrap();
    let input = dir.path().join("metrics.txt");
    std::fs::write(&input, text).unwrap();
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

fn sample(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    *m.get(key).unwrap_or_else(|| {
        panic!(
            "no sample {key}; have:\n{:#?}",
            m.keys().collect::<Vec<_>>()
        )
    })
}

const POOL: &str = "pool=192.0.2.100-192.0.2.109,proto=dhcp4,subnet=192.0.2.0/24";

fn device<'a>(list: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["key"] == key)
        .unwrap_or_else(|| panic!("no device {key} in {list:#}"))
}

/// Polls `get` until `ready` holds for its value, and returns that value; after 30 s, the last
/// value (or None), so the assertions that follow show what was seen. Needed because the device
/// table folds events on its own thread after the reply has left: a client holding its ACK
/// does not mean the API shows it yet.
fn poll<T>(mut get: impl FnMut() -> Option<T>, ready: impl Fn(&T) -> bool) -> Option<T> {
    let until = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = get();
        if v.as_ref().is_some_and(&ready) || std::time::Instant::now() > until {
            return v;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `/api/devices` once the device `key` has reached `stage`.
fn devices_once(status: &str, key: &str, stage: &str) -> serde_json::Value {
    let url = format!("{status}/api/devices");
    let get = || serde_json::from_str::<serde_json::Value>(&curl(&url, None)).ok();
    let at_stage = |l: &serde_json::Value| {
        l["devices"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["key"] == key && d["stage"] == stage))
    };
    poll(get, at_stage).expect("/api/devices answers JSON")
}

const NEVER_ASKED: &str =
    "got a lease but never asked for option 143: its DHCP client is not configured for SZTP";

#[test]
fn a_probed_device_reaches_the_api_metrics_cli_and_browser() {
    let mut d = start();
    let m = parse_metrics(&curl(&format!("{}/metrics", d.status), None), false);
    assert_eq!(sample(&m, &format!("sztp_dhcp_pool_size{{{POOL}}}")), 10.0);
    assert_eq!(sample(&m, &format!("sztp_dhcp_pool_used{{{POOL}}}")), 0.0);
    assert_eq!(sample(&m, &format!("sztp_dhcp_pool_free{{{POOL}}}")), 10.0);

    d.probe("02:00:00:53:5a:01", &[]);
    devices_once(&d.status, "02:00:00:53:5a:01", "dhcp-acked");
    let m = parse_metrics(&curl(&format!("{}/metrics", d.status), None), false);
    assert_eq!(sample(&m, &format!("sztp_dhcp_pool_used{{{POOL}}}")), 1.0);
    assert_eq!(sample(&m, &format!("sztp_dhcp_pool_free{{{POOL}}}")), 9.0);

    d.probe("02:00:00:53:5a:02", &["--no-request-143"]);
    devices_once(&d.status, "02:00:00:53:5a:02", "dhcp-acked");
    // OpenMetrics this time, through its strict parser
    let text = curl(
        &format!("{}/metrics", d.status),
        Some("application/openmetrics-text; version=1.0.0"),
    );
    assert!(text.ends_with("# EOF\n"));
    let m = parse_metrics(&text, true);
    assert_eq!(sample(&m, &format!("sztp_dhcp_pool_used{{{POOL}}}")), 2.0);
    assert_eq!(sample(&m, &format!("sztp_dhcp_pool_free{{{POOL}}}")), 8.0);
    // each device: an OFFER and an ACK
    assert_eq!(
        sample(
            &m,
            "sztp_dhcp_redirect_option_total{option=143,outcome=requested-and-sent,proto=dhcp4}"
        ),
        2.0
    );
    assert_eq!(
        sample(
            &m,
            "sztp_dhcp_redirect_option_total{option=143,outcome=not-requested,proto=dhcp4}"
        ),
        2.0
    );
    assert_eq!(
        sample(&m, "sztp_policy_decisions_total{proto=dhcp4,rule=default}"),
        4.0
    );
    assert!(sample(&m, "sztp_dhcp4_requests_total{}") >= 4.0);
    assert!(sample(&m, "sztp_dhcp4_replies_total{}") >= 4.0);
    assert_eq!(sample(&m, "sztp_device_table_devices{}"), 2.0);
    assert!(sample(&m, "sztp_lease_commits_total{proto=dhcp4}") >= 2.0);
    assert!(sample(&m, "sztp_lease_fsync_seconds_count{proto=dhcp4}") >= 1.0);

    let list: serde_json::Value =
        serde_json::from_str(&curl(&format!("{}/api/devices", d.status), None)).unwrap();
    assert_eq!(list["total"], 2);
    let one = device(&list, "02:00:00:53:5a:01");
    let stages: Vec<&str> = one["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["dhcp-offered", "dhcp-acked"]);
    assert_eq!(one["stage"], "dhcp-acked");
    assert_eq!(one["asked"]["requested_143"], true);
    assert_eq!(
        one["told"]["uris"][0],
        "https://sztp.owner.example.com:8443"
    );
    assert_eq!(one["verdict"]["status"], "handed-off");
    let two = device(&list, "02:00:00:53:5a:02");
    assert_eq!(two["stage"], "dhcp-acked");
    assert_eq!(two["asked"]["requested_143"], false);
    assert_eq!(two["verdict"]["status"], "stuck");
    assert_eq!(two["verdict"]["text"], NEVER_ASKED);
    let addr = two["addresses"][0].as_str().unwrap().to_owned();
    let by_addr: serde_json::Value =
        serde_json::from_str(&curl(&format!("{}/api/devices/{addr}", d.status), None)).unwrap();
    assert_eq!(by_addr["key"], "02:00:00:53:5a:02");
    assert_eq!(by_addr["timeline"].as_array().unwrap().len(), 2);
    let leases: serde_json::Value =
        serde_json::from_str(&curl(&format!("{}/api/leases", d.status), None)).unwrap();
    assert_eq!(leases.as_array().unwrap().len(), 2);

    // the CLI, from the API
    let out = run_ok(&[BIN, "devices", "--url", &d.status]);
    assert!(out.stdout.starts_with("DEVICE "), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("stuck: {NEVER_ASKED}")),
        "{}",
        out.stdout
    );
    assert!(out
        .stdout
        .contains(&format!("(2 devices from {})", d.status)));
    let out = run_ok(&[BIN, "devices", "--url", &d.status, "02:00:00:53:5a:02"]);
    assert!(
        out.stdout.contains("DHCPv4 ACK 192.0.2.10"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("option 143: no"), "{}", out.stdout);
    let out = run_cmd(
        &[BIN, "devices", "--url", &d.status, "SN-nobody"],
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    // the page, in a real browser
    if let Some(dom) = browser_dom(&format!("{}/", d.status)) {
        assert!(dom.contains("<tr data-key=\"02:00:00:53:5a:01\""), "{dom}");
        assert!(dom.contains("<tr data-key=\"02:00:00:53:5a:02\""), "{dom}");
        assert!(dom.contains(NEVER_ASKED), "{dom}");
    }

    // stopped: the CLI folds the device journal instead
    let st = d.child.stop("TERM", Duration::from_secs(20));
    assert!(st.is_some_and(|s| s.success()), "{}", d.child.output_text());
    let state = d.state_dir();
    let out = run_ok(&[BIN, "devices", "--state-dir", state.to_str().unwrap()]);
    assert!(
        out.stdout.contains(&format!("stuck: {NEVER_ASKED}")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("from the device journal"),
        "{}",
        out.stdout
    );
    let out = run_ok(&[
        BIN,
        "devices",
        "--json",
        "--state-dir",
        state.to_str().unwrap(),
        "02:00:00:53:5a:01",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["verdict"]["status"], "handed-off");
}

fn chromium_args(profile: &Path) -> Vec<String> {
    [
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
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

/// Headless Chromium's DOM of `url`; None (skip) without chromium unless
/// SZTP_REQUIRE_PRIVILEGED_TESTS=1, which makes it a failure.
fn browser_dom(url: &str) -> Option<String> {
    if !Path::new("/usr/bin/chromium").exists() {
        let reason = "SKIP browser part: /usr/bin/chromium is not installed";
        if std::env::var(common::REQUIRE_ENV).as_deref() == Ok("1") {
            panic!("{reason}, and {}=1 forbids skipping", common::REQUIRE_ENV);
        }
        eprintln!("{reason}");
        return None;
    }
    let profile = tempfile::tempdir().unwrap();
    let mut args = vec!["/usr/bin/chromium".to_owned()];
    args.extend(chromium_args(profile.path()));
    args.extend(["--dump-dom".to_owned(), url.to_owned()]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_cmd(&argv, Duration::from_secs(120));
    assert!(out.success(), "chromium failed: {}", out.stderr);
    Some(out.stdout)
}

/// Real clients in a namespace: udhcpc asking for option 143 and dhclient (configured without
/// it) against the daemon; the status API, read with curl inside the server's namespace,
/// gives each its verdict.
#[test]
fn real_dhcp_clients_get_their_verdicts() {
    if !common::require_root_or_skip("real_dhcp_clients_get_their_verdicts") {
        return;
    }
    let pair = common::NetnsPair::new("status");
    pair.client.set_mac(&pair.client_if, "02:00:00:53:5a:21");
    let cfg = format!(
        r#"
[appliance]
state-dir = "{}"

[[bootstrap-server]]
name = "owner-primary"
uri = "https://sztp.owner.example.com:8443"

[[rule]]
name = "default"
redirect-to = ["owner-primary"]

[dhcp4]
interfaces = ["{}"]

[[dhcp4.subnet]]
subnet = "198.51.100.0/24"
pools = ["198.51.100.100-198.51.100.150"]
lease-time = "1h"

[status]
listen = ["127.0.0.1:0"]
"#,
        common::STATE_DIR,
        pair.server_if
    );
    let server = common::spawn_server(&pair.server, &cfg);
    let port = logged_port(&server.child, "listening for status on 127.0.0.1:");
    // curl inside the server's namespace; 404 (not folded yet) reads as None
    let get = |path: &str| -> Option<serde_json::Value> {
        let url = format!("http://127.0.0.1:{port}{path}");
        let out = pair.server.run(
            &["curl", "-sS", "--fail", "--max-time", "20", &url],
            Duration::from_secs(30),
        );
        out.success()
            .then(|| serde_json::from_str(&out.stdout).unwrap())
    };
    let acked = |path: &str| -> serde_json::Value {
        poll(|| get(path), |v| v["stage"] == "dhcp-acked")
            .unwrap_or_else(|| panic!("{path} never answered"))
    };
    let api = |path: &str| get(path).unwrap_or_else(|| panic!("{path} failed"));

    let u = common::run_udhcpc(&pair.client, &pair.client_if, &["-O", "143"]);
    let ip = u.ip().to_string();
    let v = acked(&format!("/api/devices/{ip}"));
    assert_eq!(v["key"], "02:00:00:53:5a:21");
    assert_eq!(v["stage"], "dhcp-acked");
    assert_eq!(v["asked"]["requested_143"], true);
    assert_eq!(v["verdict"]["status"], "handed-off", "{v:#}");

    // dhclient with a configuration that does not request 143
    pair.client.set_mac(&pair.client_if, "02:00:00:53:5a:22");
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("dhclient.conf");
    std::fs::write(&conf, "request subnet-mask, routers;\n").unwrap();
    let log = dir.path().join("env.log");
    let script = common::write_dump_script(dir.path(), &log);
    let lease = dir.path().join("lease4");
    let pidf = dir.path().join("pid");
    let child = pair.client.spawn(
        &[
            "dhclient",
            "-d",
            "-v",
            "-1",
            "-cf",
            conf.to_str().unwrap(),
            "-sf",
            script.to_str().unwrap(),
            "-lf",
            lease.to_str().unwrap(),
            "-pf",
            pidf.to_str().unwrap(),
            &pair.client_if,
        ],
        Duration::from_secs(60),
    );
    let dhclient = common::Dhclient { dir, child };
    let bound = dhclient.wait_bound(Duration::from_secs(30));
    let v = acked(&format!("/api/devices/{}", bound["new_ip_address"]));
    assert_eq!(v["key"], "02:00:00:53:5a:22");
    assert_eq!(v["asked"]["requested_143"], false);
    assert_eq!(v["verdict"]["text"], NEVER_ASKED);
    let list = api("/api/devices?status=stuck");
    assert_eq!(list["devices"].as_array().unwrap().len(), 1);
    drop(server);
}

/// The port in the `n`th (1-based) log line containing `needle`.
fn nth_logged_port(child: &Child, needle: &str, n: usize) -> u16 {
    assert!(
        child.wait_for_lines(needle, n, Duration::from_secs(20)),
        "fewer than {n} `{needle}` lines:\n{}",
        child.output_text()
    );
    let line = child
        .lines()
        .into_iter()
        .filter(|l| l.contains(needle))
        .nth(n - 1)
        .unwrap();
    line.rsplit(':').next().unwrap().trim().parse().unwrap()
}

/// The HTTP status of a GET with `token` as bearer (curl, a real client).
fn status_code(url: &str, token: Option<&str>) -> u16 {
    let auth = token.map(|t| format!("Authorization: Bearer {t}"));
    let mut args = vec![
        "curl",
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "20",
    ];
    if let Some(a) = &auth {
        args.extend_from_slice(&["-H", a]);
    }
    args.push(url);
    run_ok(&args).stdout.trim().parse().unwrap()
}

/// Reloads of the real binary: a rotated token file takes effect on SIGHUP without new
/// listeners, an empty one is refused and the old token stays; `[status]` and `[dhcp4]` turned
/// off stop their listeners, and turned on again they come back as at a fresh start (DHCPv4
/// from its lease journal, the same device back at its address, its metrics source replaced,
/// not doubled: the strict OpenMetrics parser refuses a family twice).
#[test]
fn reloads_rotate_the_token_and_turn_the_status_server_off_and_on() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let token = dir.path().join("token");
    std::fs::write(&token, "first-token\n").unwrap();
    let with_status = format!(
        "{}token-file = \"{}\"\n",
        CONFIG.replace("{STATE_DIR}", state.to_str().unwrap()),
        token.display()
    );
    let without = with_status[..with_status.find("[dhcp4]").unwrap()].to_owned();
    let cfg = dir.path().join("sztp.toml");
    std::fs::write(&cfg, &with_status).unwrap();
    let mut child = Child::spawn(
        &[BIN, "run", "--config", cfg.to_str().unwrap()],
        Duration::from_secs(600),
    );
    let dhcp_port = logged_port(&child, "listening for dhcp4 on lo 0.0.0.0:");
    let status = format!(
        "http://127.0.0.1:{}",
        logged_port(&child, "listening for status on 127.0.0.1:")
    );
    let hup = |outcome: &str| {
        let before = child.lines().iter().filter(|l| l.contains(outcome)).count();
        child.signal("HUP");
        assert!(
            child.wait_for_lines(outcome, before + 1, Duration::from_secs(20)),
            "no `{outcome}` after SIGHUP:\n{}",
            child.output_text()
        );
    };
    let devices = format!("{status}/api/devices");
    assert_eq!(status_code(&devices, None), 401);
    assert_eq!(status_code(&devices, Some("first-token")), 200);
    assert_eq!(status_code(&format!("{status}/"), None), 200);

    // rotated
    std::fs::write(&token, "second-token\n").unwrap();
    hup("configuration reloaded");
    assert_eq!(status_code(&devices, Some("first-token")), 401);
    assert_eq!(status_code(&devices, Some("second-token")), 200);
    // emptied: refused, the second token stays
    std::fs::write(&token, "").unwrap();
    hup("reload refused");
    assert!(child.output_text().contains("the file is empty"));
    assert_eq!(status_code(&devices, Some("second-token")), 200);
    std::fs::write(&token, "second-token\n").unwrap();

    // a device, then both services off
    let relay = format!("127.0.0.1:{dhcp_port}");
    let probe = |port: &str| {
        let out = run_ok(&[
            BIN,
            "probe",
            "--relay",
            port,
            "--link-selection",
            "192.0.2.1",
            "--mac",
            "02:00:00:53:5a:31",
            "--wait",
            "2s",
        ]);
        assert!(out.stdout.contains("\nack 192.0.2.100"), "{}", out.stdout);
    };
    probe(&relay);
    std::fs::write(&cfg, &without).unwrap();
    hup("configuration reloaded");
    let refused = std::net::TcpStream::connect(status.trim_start_matches("http://"));
    assert!(refused.is_err(), "the status listener outlived [status]");
    assert!(child.is_running());

    // both back: new sockets, the lease journal replayed, the device table kept
    std::fs::write(&cfg, &with_status).unwrap();
    hup("configuration reloaded");
    let dhcp_port = nth_logged_port(&child, "listening for dhcp4 on lo 0.0.0.0:", 2);
    let status = format!(
        "http://127.0.0.1:{}",
        nth_logged_port(&child, "listening for status on 127.0.0.1:", 2)
    );
    probe(&format!("127.0.0.1:{dhcp_port}"));
    let auth = "Authorization: Bearer second-token";
    let list = poll(
        || {
            let out = run_ok(&[
                "curl",
                "-sS",
                "--fail",
                "-H",
                auth,
                &format!("{status}/api/devices"),
            ]);
            serde_json::from_str::<serde_json::Value>(&out.stdout).ok()
        },
        // two exchanges: OFFER and ACK before the reloads, OFFER and ACK after
        |l| l["devices"][0]["events"].as_u64() >= Some(4),
    )
    .unwrap();
    assert_eq!(list["total"], 1, "{list:#}");
    let out = run_ok(&[
        "curl",
        "-sS",
        "--fail",
        "-H",
        auth,
        "-H",
        "Accept: application/openmetrics-text; version=1.0.0",
        &format!("{status}/metrics"),
    ]);
    let m = parse_metrics(&out.stdout, true);
    assert_eq!(sample(&m, &format!("sztp_dhcp_pool_used{{{POOL}}}")), 1.0);
    // counted by the new instance only: its DISCOVER and REQUEST
    assert_eq!(sample(&m, "sztp_dhcp4_replies_total{}"), 2.0);
    let st = child.stop("TERM", Duration::from_secs(20));
    assert!(st.is_some_and(|s| s.success()), "{}", child.output_text());
}
