//! The real binary serving DHCPv6 on loopback, unprivileged (port 0, relay path): a relay
//! agent built with dhcproto (not our wire module), `probe --relay6`, malformed input counted,
//! the same address for the same DUID/IAID after a restart, bindings durable across `kill -9`,
//! a Decline's quarantine across a restart, SIGHUP turning the service off and on, and
//! `leases` listing DHCPv4 and DHCPv6 together.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dhcproto::v6::{
    DhcpOption, DhcpOptions, Message, MessageType, OptionCode, UnknownOption, IANA, ORO,
};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};

const BIN: &str = env!("CARGO_BIN_EXE_sztp-redirector");
const KEA_PAYLOAD_HEX: &str = "001f68747470733a2f2f737a7470312e6578616d706c652e746573743a38343433001a68747470733a2f2f5b323030313a6462383a3a315d3a38343433";

fn write_config(dir: &Path) -> std::path::PathBuf {
    write_config_with(dir, "2001:db8:1::1000-2001:db8:1::1fff", "")
}

/// The file with `pool` as the DHCPv6 pool and `more` appended (another section).
fn write_config_with(dir: &Path, pool: &str, more: &str) -> std::path::PathBuf {
    let cfg = dir.join("sztp.toml");
    std::fs::write(&cfg, config_text(dir, pool, true) + more).unwrap();
    cfg
}

/// The configuration text; `dhcp6` false leaves the `[dhcp6]` section out.
fn config_text(dir: &Path, pool: &str, dhcp6: bool) -> String {
    let mut s = format!(
        r#"[appliance]
state-dir = "{}"

[[bootstrap-server]]
name = "sztp1"
uri = "https://sztp1.example.test:8443"

[[bootstrap-server]]
name = "sztp2"
uri = "https://[2001:db8::1]:8443"

[[rule]]
name = "default"
redirect-to = ["sztp1", "sztp2"]
"#,
        dir.join("state").display()
    );
    if dhcp6 {
        s += &format!(
            r#"
[dhcp6]
interfaces = ["lo"]
port = 0
decline-time = "1h"

[[dhcp6.subnet]]
prefix = "2001:db8:1::/64"
pools = ["{pool}"]
"#
        );
    }
    s
}

/// The server process; killed on drop. Its stderr lines are collected.
struct Server {
    child: Child,
    /// The DHCPv6 port of the first `listening for dhcp6` line.
    port: u16,
    /// The ports of later `listening for dhcp6` lines (after a reload).
    ports: std::sync::mpsc::Receiver<u16>,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(cfg: &Path) -> Server {
        let mut child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(cfg)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn sztp-redirector");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let l = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // the bound port, read from the log: never assumed free
                if let Some(p) = line.split("listening for dhcp6 on lo [::]:").nth(1) {
                    let _ = tx.send(p.trim().parse::<u16>().unwrap());
                }
                l.lock().unwrap().push(line);
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("server did not start: {:?}", log.lock().unwrap()));
        Server {
            child,
            port,
            ports: rx,
            log,
            reader: Some(reader),
        }
    }

    /// The port of the next `listening for dhcp6` line (bounded wait).
    fn next_port(&self) -> u16 {
        self.ports
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no new listening line: {:?}", self.log()))
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits (bounded) until `count` log lines contain `needle`; returns whether they came.
    fn wait_log(&self, needle: &str, count: usize) -> bool {
        let end = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < end {
            if self.log().iter().filter(|l| l.contains(needle)).count() >= count {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// SIGKILL: no drain, no shutdown summary.
    fn kill9(mut self) {
        self.signal("KILL");
        self.child.wait().unwrap();
    }

    /// SIGTERM, wait, and return the exit status with every log line.
    fn stop(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let st = self.child.wait().unwrap();
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        let log = self.log.lock().unwrap().clone();
        (st, log)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A relay agent on [::1] with RFC 8357 Relay Source Port, built on dhcproto.
struct Relay {
    sock: UdpSocket,
    server: SocketAddr,
}

impl Relay {
    fn new(port: u16) -> Relay {
        let sock = UdpSocket::bind("[::1]:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Relay {
            sock,
            server: SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
        }
    }

    fn forward(&self, inner: &[u8]) -> Vec<u8> {
        let mut m = vec![12u8, 0];
        m.extend_from_slice(&"2001:db8:1::1".parse::<Ipv6Addr>().unwrap().octets());
        m.extend_from_slice(&"fe80::2".parse::<Ipv6Addr>().unwrap().octets());
        let mut opts = DhcpOptions::new();
        opts.insert(DhcpOption::Unknown(UnknownOption::new(
            OptionCode::RelayPort,
            vec![0, 0],
        )));
        opts.insert(DhcpOption::Unknown(UnknownOption::new(
            OptionCode::RelayMsg,
            inner.to_vec(),
        )));
        let mut e = Vec::new();
        opts.encode(&mut Encoder::new(&mut e)).unwrap();
        m.extend_from_slice(&e);
        m
    }

    fn exchange(&self, m: &Message) -> Message {
        self.try_exchange(m).expect("a Relay-reply")
    }

    /// The reply to `m`, or `None` when none came within the socket's read timeout.
    fn try_exchange(&self, m: &Message) -> Option<Message> {
        self.sock
            .send_to(&self.forward(&m.to_vec().unwrap()), self.server)
            .unwrap();
        let mut buf = [0u8; 4096];
        let (n, _) = self.sock.recv_from(&mut buf).ok()?;
        assert_eq!(buf[0], 13);
        // the only option of our Relay-reply is the relay message (no interface-id was sent)
        let opts = &buf[34..n];
        assert_eq!(u16::from_be_bytes([opts[0], opts[1]]), 9);
        Some(Message::decode(&mut Decoder::new(&opts[4..])).unwrap())
    }
}

fn solicit(n: u8) -> Message {
    let mut m = Message::new_with_id(MessageType::Solicit, [n, 0, 1]);
    m.opts_mut()
        .insert(DhcpOption::ClientId(vec![0, 3, 0, 1, 2, 0, 0, 0, 0, n]));
    m.opts_mut().insert(DhcpOption::ORO(ORO {
        opts: vec![OptionCode::from(136)],
    }));
    m.opts_mut().insert(DhcpOption::IANA(IANA {
        id: 9,
        t1: 0,
        t2: 0,
        opts: DhcpOptions::new(),
    }));
    m
}

fn address(m: &Message) -> Ipv6Addr {
    match m.opts().get(OptionCode::IANA) {
        Some(DhcpOption::IANA(ia)) => ia
            .opts
            .iter()
            .find_map(|o| match o {
                DhcpOption::IAAddr(a) => Some(a.addr),
                _ => None,
            })
            .expect("an address"),
        other => panic!("no IA_NA: {other:?}"),
    }
}

fn opt136(m: &Message) -> Option<String> {
    m.opts().iter().find_map(|o| match o {
        DhcpOption::Unknown(u) if u16::from(u.code()) == 136 => Some(hex::encode(u.data())),
        _ => None,
    })
}

/// Solicit + Request through the relay; the bound address.
fn bind(r: &Relay, n: u8) -> Ipv6Addr {
    let adv = r.exchange(&solicit(n));
    assert_eq!(adv.msg_type(), MessageType::Advertise);
    assert_eq!(opt136(&adv).as_deref(), Some(KEA_PAYLOAD_HEX));
    let sid = adv.opts().get(OptionCode::ServerId).cloned().unwrap();
    let mut req = solicit(n);
    req.set_msg_type(MessageType::Request);
    req.opts_mut().insert(sid);
    let rep = r.exchange(&req);
    assert_eq!(rep.msg_type(), MessageType::Reply);
    assert_eq!(address(&rep), address(&adv));
    address(&rep)
}

#[test]
fn relayed_exchange_probe_and_restart_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let s = Server::start(&cfg);
    let a = bind(&Relay::new(s.port), 1);
    assert!(a.to_string().starts_with("2001:db8:1::1"), "{a}");

    let out = Command::new(BIN)
        .args([
            "probe",
            "--relay6",
            &format!("[::1]:{}", s.port),
            "--wait",
            "500ms",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        j["uris"],
        serde_json::json!([
            "https://sztp1.example.test:8443",
            "https://[2001:db8::1]:8443"
        ])
    );
    assert_eq!(j["outcome"], "reply");
    let (st, _) = s.stop();
    assert!(st.success(), "{st:?}");

    // same DUID and IAID after a restart: same address
    let s = Server::start(&cfg);
    assert_eq!(bind(&Relay::new(s.port), 1), a);
    assert_ne!(bind(&Relay::new(s.port), 2), a);
    let (st, log) = s.stop();
    assert!(st.success());
    assert!(log.iter().any(|l| l.contains("dhcp6 stopped")), "{log:?}");
}

#[test]
fn malformed_packets_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let s = Server::start(&cfg);
    let r = Relay::new(s.port);
    let garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![1],
        vec![1, 0, 0, 1, 0, 1, 0, 200, 1],
        vec![7, 0, 0, 1],
        [vec![12u8, 0], vec![0; 32]].concat(),
        vec![0; 1400],
    ];
    for g in &garbage {
        r.sock.send_to(g, r.server).unwrap();
    }
    // answered afterwards: the loop did not stop
    bind(&r, 3);
    let (_, log) = s.stop();
    let summary = log
        .iter()
        .find(|l| l.contains("dhcp6 stopped"))
        .expect("shutdown summary");
    assert!(
        summary.contains(&format!("malformed={}", garbage.len())),
        "{summary}"
    );
}

/// `sztp-redirector leases --state-dir DIR` (table) and `--json`.
fn leases(dir: &Path) -> (String, Vec<serde_json::Value>) {
    let state = dir.join("state");
    let table = Command::new(BIN)
        .args(["leases", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(table.status.success(), "{table:?}");
    (
        String::from_utf8(table.stdout).unwrap(),
        common::leases_json(&state),
    )
}

/// Client `n` declines `a` (as after a failed DAD), naming the server `sid`; the Reply.
fn decline(r: &Relay, n: u8, a: Ipv6Addr, sid: DhcpOption) -> Message {
    let mut m = solicit(n);
    m.set_msg_type(MessageType::Decline);
    m.opts_mut().remove(OptionCode::ORO);
    m.opts_mut().insert(sid);
    m.opts_mut().insert(DhcpOption::IANA(IANA {
        id: 9,
        t1: 0,
        t2: 0,
        opts: [DhcpOption::IAAddr(dhcproto::v6::IAAddr {
            addr: a,
            preferred_life: 0,
            valid_life: 0,
            opts: DhcpOptions::new(),
        })]
        .into_iter()
        .collect(),
    }));
    r.exchange(&m)
}

#[test]
fn a_binding_survives_kill_9_and_leases_lists_it_beside_dhcp4() {
    let dir = tempfile::tempdir().unwrap();
    let v4 = r#"
[dhcp4]
interfaces = ["lo"]
port = 0

[[dhcp4.subnet]]
subnet = "192.0.2.0/24"
pools = ["192.0.2.100-192.0.2.199"]
lease-time = "1h"
"#;
    let cfg = write_config_with(dir.path(), "2001:db8:1::1000-2001:db8:1::1fff", v4);
    let s = Server::start(&cfg);
    assert!(s.wait_log("listening for dhcp4 on lo 0.0.0.0:", 1));
    let port4: u16 = s
        .log()
        .iter()
        .find_map(|l| l.split("listening for dhcp4 on lo 0.0.0.0:").nth(1))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let a6 = bind(&Relay::new(s.port), 4);
    let x = common::relay::Relay::new(port4)
        .exchange(common::relay::mac(4), 0x44, true)
        .expect("a DHCPv4 ACK");
    let a4 = x.ack.yiaddr();
    // no drain, no shutdown: only what was fsync'd before each reply is left
    s.kill9();

    let (table, rows) = leases(dir.path());
    let head = table.lines().next().unwrap();
    assert!(head.starts_with("PROTO "), "{table}");
    assert!(head.contains(" IAID "), "{table}");
    let row6 = table
        .lines()
        .find(|l| l.contains(&a6.to_string()))
        .unwrap_or_else(|| panic!("{a6} not listed:\n{table}"));
    assert!(row6.starts_with("dhcp6 "), "{row6}");
    assert!(row6.contains(" 00030001020000000004 "), "the DUID: {row6}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("dhcp4 ") && l.contains(&a4.to_string())),
        "{table}"
    );
    let j6 = rows
        .iter()
        .find(|r| r["proto"] == "dhcp6")
        .expect("a dhcp6 row");
    assert_eq!(j6["address"], a6.to_string());
    assert_eq!(j6["state"], "bound");
    assert_eq!(j6["client_id"], "00030001020000000004");
    assert_eq!(j6["iaid"], 9);
    assert_eq!(j6["mac"], "02:00:00:00:00:04", "from the DUID-LL");
    let j4 = rows
        .iter()
        .find(|r| r["proto"] == "dhcp4")
        .expect("a dhcp4 row");
    assert_eq!(j4["address"], a4.to_string());
    assert_eq!(j4["iaid"], serde_json::Value::Null);

    // and the restarted server replays it
    let s = Server::start(&cfg);
    assert!(s.wait_log("dhcp6 lease journal replayed", 1));
    assert!(
        s.log()
            .iter()
            .any(|l| l.contains("dhcp6 lease journal replayed") && l.contains("bindings=1")),
        "{:?}",
        s.log()
    );
    let (st, _) = s.stop();
    assert!(st.success());
}

#[test]
fn a_declined_address_stays_quarantined_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // one address in the pool
    let cfg = write_config_with(dir.path(), "2001:db8:1::1000-2001:db8:1::1000", "");
    let s = Server::start(&cfg);
    let r = Relay::new(s.port);
    let a = bind(&r, 1);
    let sid = r
        .exchange(&solicit(1))
        .opts()
        .get(OptionCode::ServerId)
        .cloned()
        .unwrap();
    assert_eq!(decline(&r, 1, a, sid).msg_type(), MessageType::Reply);
    let (st, _) = s.stop();
    assert!(st.success());

    let s = Server::start(&cfg);
    let adv = Relay::new(s.port).exchange(&solicit(2));
    assert_eq!(adv.msg_type(), MessageType::Advertise);
    let status = match adv.opts().get(OptionCode::IANA) {
        Some(DhcpOption::IANA(ia)) => ia.opts.iter().find_map(|o| match o {
            DhcpOption::StatusCode(c) => Some(u16::from(c.status)),
            _ => None,
        }),
        _ => None,
    };
    assert_eq!(status, Some(2), "NoAddrsAvail: {a} is still quarantined");
    let (_, rows) = leases(dir.path());
    assert!(
        rows.iter()
            .any(|r| r["address"] == a.to_string() && r["state"] == "declined"),
        "{rows:?}"
    );
    let (st, _) = s.stop();
    assert!(st.success());
}

#[test]
fn sighup_turns_dhcp6_off_and_back_on() {
    let dir = tempfile::tempdir().unwrap();
    let pool = "2001:db8:1::1000-2001:db8:1::1fff";
    let cfg = write_config(dir.path());
    let s = Server::start(&cfg);
    let first = bind(&Relay::new(s.port), 5);

    std::fs::write(&cfg, config_text(dir.path(), pool, false)).unwrap();
    s.signal("HUP");
    assert!(s.wait_log("configuration reloaded", 1), "{:?}", s.log());
    assert!(
        s.log()
            .iter()
            .any(|l| l.contains("service stopped") && l.contains("dhcp6")),
        "{:?}",
        s.log()
    );
    let old = Relay::new(s.port);
    old.sock
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(old.try_exchange(&solicit(5)).is_none(), "still answering");

    std::fs::write(&cfg, config_text(dir.path(), pool, true)).unwrap();
    s.signal("HUP");
    let port = s.next_port();
    assert!(s.wait_log("configuration reloaded", 2), "{:?}", s.log());
    assert!(
        s.wait_log("dhcp6 lease journal replayed", 2),
        "{:?}",
        s.log()
    );
    assert_eq!(
        bind(&Relay::new(port), 5),
        first,
        "the same binding after the service came back"
    );
    let (st, log) = s.stop();
    assert!(st.success(), "{st:?}");
    assert_eq!(
        log.iter().filter(|l| l.contains("dhcp6 stopped")).count(),
        2,
        "{log:?}"
    );
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

/// `curl` (a real HTTP client) GET of `url`, optionally with `Accept: accept`; the body.
fn curl(url: &str, accept: Option<&str>) -> String {
    let mut args = vec!["curl", "-sS", "--fail", "--max-time", "20"];
    let header;
    if let Some(a) = accept {
        header = format!("Accept: {a}");
        args.extend_from_slice(&["-H", &header]);
    }
    args.push(url);
    common::run_ok(&args).stdout
}

/// `/metrics` parsed by the Python Prometheus client (Debian's python3-prometheus-client, so
/// /usr/bin/python3): the strict OpenMetrics parser, then the text 0.0.4 one, which must agree.
fn metrics(status: &str) -> std::collections::BTreeMap<String, f64> {
    let url = format!("{status}/metrics");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("parse.py");
    std::fs::write(&script, PARSE_PY).unwrap();
    let mut parsed = Vec::new();
    for (accept, module) in [
        (
            Some("application/openmetrics-text; version=1.0.0"),
            "prometheus_client.openmetrics.parser",
        ),
        (None, "prometheus_client.parser"),
    ] {
        let input = dir.path().join("metrics.txt");
        std::fs::write(&input, curl(&url, accept)).unwrap();
        let out = common::run_cmd(
            &[
                "/usr/bin/python3",
                script.to_str().unwrap(),
                module,
                input.to_str().unwrap(),
            ],
            Duration::from_secs(60),
        );
        assert!(out.success(), "{module} refused /metrics: {}", out.stderr);
        let m: std::collections::BTreeMap<String, f64> = serde_json::from_str(&out.stdout).unwrap();
        parsed.push(m);
    }
    let (om, text) = (&parsed[0], &parsed[1]);
    for k in ["sztp_dhcp6_requests_total{}", "sztp_dhcp6_replies_total{}"] {
        assert_eq!(om.get(k), text.get(k), "{k}");
    }
    parsed.swap_remove(0)
}

fn sample(m: &std::collections::BTreeMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no sample {key}; have:\n{:#?}", m.keys()))
}

/// `/api/devices` once every device in `keys` has reached its stage or verdict `(key, what)`
/// (the table folds on its own thread after the reply has left), bounded at 30 s.
fn devices_when(status: &str, want: &[(&str, &str)]) -> serde_json::Value {
    let url = format!("{status}/api/devices");
    let end = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v: serde_json::Value = serde_json::from_str(&curl(&url, None)).unwrap();
        let all = want.iter().all(|(k, what)| {
            v["devices"].as_array().is_some_and(|d| {
                d.iter().any(|d| {
                    d["key"] == *k && (d["stage"] == *what || d["verdict"]["status"] == *what)
                })
            })
        });
        if all || std::time::Instant::now() > end {
            return v;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn device<'a>(list: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["key"] == key)
        .unwrap_or_else(|| panic!("no device {key} in {list:#}"))
}

#[test]
fn dhcp6_devices_in_the_status_api_and_counters_in_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config_with(
        dir.path(),
        "2001:db8:1::1000-2001:db8:1::1fff",
        "\n[status]\nlisten = [\"127.0.0.1:0\"]\n",
    );
    let s = Server::start(&cfg);
    assert!(s.wait_log("listening for status on ", 1), "{:?}", s.log());
    let status = s
        .log()
        .iter()
        .find_map(|l| l.split("listening for status on ").nth(1))
        .map(|a| format!("http://{}", a.trim()))
        .unwrap();
    let r = Relay::new(s.port);

    // device 1 asks for option 136 and binds; device 2 binds without asking; device 3 binds
    // and declines its address (a failed DAD)
    let a1 = bind(&r, 0x61);
    let mut quiet = solicit(0x62);
    quiet.opts_mut().remove(OptionCode::ORO);
    let adv = r.exchange(&quiet);
    assert_eq!(opt136(&adv), None, "no 136 without ORO");
    let mut req = quiet.clone();
    req.set_msg_type(MessageType::Request);
    req.opts_mut()
        .insert(adv.opts().get(OptionCode::ServerId).cloned().unwrap());
    let a2 = address(&r.exchange(&req));
    let a3 = bind(&r, 0x63);
    let sid = adv.opts().get(OptionCode::ServerId).cloned().unwrap();
    assert_eq!(decline(&r, 0x63, a3, sid).msg_type(), MessageType::Reply);
    // and one datagram that is not DHCPv6
    r.sock.send_to(&[1, 0, 0], r.server).unwrap();
    bind(&r, 0x61); // answered after it: the loop went on (and the drop is counted by now)

    let (k1, k2, k3) = (
        "02:00:00:00:00:61",
        "02:00:00:00:00:62",
        "02:00:00:00:00:63",
    );
    let list = devices_when(
        &status,
        &[(k1, "handed-off"), (k2, "dhcp-acked"), (k3, "failed")],
    );
    let one = device(&list, k1);
    let stages: Vec<&str> = one["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["dhcp-offered", "dhcp-acked"], "{one:#}");
    assert_eq!(one["asked"]["requested_136"], true);
    assert_eq!(
        one["told"]["uris"],
        serde_json::json!([
            "https://sztp1.example.test:8443",
            "https://[2001:db8::1]:8443"
        ])
    );
    assert_eq!(one["told"]["proto"], "dhcp6");
    assert_eq!(one["told"]["encoding"], "rfc8572");
    assert_eq!(one["verdict"]["status"], "handed-off", "{one:#}");
    assert!(
        one["addresses"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(a1.to_string())),
        "{one:#}"
    );
    // keyed by the DUID too
    let by_duid: serde_json::Value = serde_json::from_str(&curl(
        &format!("{status}/api/devices/00030001020000000061"),
        None,
    ))
    .unwrap();
    assert_eq!(by_duid["key"], k1, "{by_duid:#}");
    let timeline = by_duid["timeline"].as_array().unwrap();
    assert!(
        timeline.iter().any(|e| e["summary"]
            .as_str()
            .unwrap()
            .starts_with("DHCPv6 Advertise ")),
        "{by_duid:#}"
    );

    let two = device(&list, k2);
    assert_eq!(two["asked"]["requested_136"], false);
    assert_eq!(two["verdict"]["status"], "stuck");
    assert_eq!(
        two["verdict"]["text"],
        "got a lease but never asked for option 136: its DHCP client is not configured for SZTP"
    );
    assert_eq!(two["addresses"][0], a2.to_string());

    let three = device(&list, k3);
    assert_eq!(three["verdict"]["status"], "failed", "{three:#}");
    let why = three["verdict"]["text"].as_str().unwrap();
    assert!(why.starts_with(&format!("it Declined {a3}")), "{why}");

    // /api/leases lists the bindings: two bound, one declined (quarantined)
    let leases: Vec<serde_json::Value> =
        serde_json::from_str(&curl(&format!("{status}/api/leases"), None)).unwrap();
    let row = |a: Ipv6Addr| {
        leases
            .iter()
            .find(|l| l["address"] == a.to_string())
            .unwrap_or_else(|| panic!("{a} not in {leases:?}"))
    };
    assert_eq!(row(a1)["proto"], "dhcp6");
    assert_eq!(row(a1)["state"], "bound");
    assert_eq!(row(a1)["client_id"], "00030001020000000061");
    assert_eq!(row(a1)["iaid"], 9);
    assert_eq!(row(a1)["mac"], k1);
    assert_eq!(row(a3)["state"], "declined");

    let m = metrics(&status);
    // one malformed datagram, every other one answered
    assert_eq!(
        sample(&m, "sztp_dhcp6_dropped_total{reason=malformed}"),
        1.0
    );
    assert_eq!(
        sample(&m, "sztp_dhcp6_dropped_total{reason=not-served-interface}"),
        0.0
    );
    let requests = sample(&m, "sztp_dhcp6_requests_total{}");
    assert_eq!(
        requests, 10.0,
        "4 x (Solicit, Request), 1 Decline, 1 malformed"
    );
    assert_eq!(sample(&m, "sztp_dhcp6_replies_total{}"), 9.0);
    // Advertise + Reply of devices 1 (twice) and 3 carried 136; device 2 asked for none
    assert_eq!(
        sample(
            &m,
            "sztp_dhcp_redirect_option_total{option=136,outcome=requested-and-sent,proto=dhcp6}"
        ),
        6.0
    );
    assert_eq!(
        sample(
            &m,
            "sztp_dhcp_redirect_option_total{option=136,outcome=not-requested,proto=dhcp6}"
        ),
        2.0
    );
    assert_eq!(
        sample(&m, "sztp_device_events_total{event=decline,proto=dhcp6}"),
        1.0
    );
    assert_eq!(
        sample(&m, "sztp_policy_decisions_total{proto=dhcp6,rule=default}"),
        8.0
    );
    // devices 1 and 2 hold a binding; device 3's address is quarantined
    assert_eq!(sample(&m, "sztp_dhcp6_bindings_active{}"), 2.0);
    assert_eq!(sample(&m, "sztp_dhcp6_bindings{}"), 3.0);
    assert!(sample(&m, "sztp_lease_commits_total{proto=dhcp6}") >= 4.0);
    assert!(sample(&m, "sztp_dhcp6_lease_syncs_total{}") >= 1.0);
    let (st, _) = s.stop();
    assert!(st.success(), "{st:?}");
}

/// The DHCPv6 port is bound without SO_REUSEADDR (as DHCPv4's, `udp_bind`): a daemon whose
/// port another process holds fails at start with a clear error instead of sharing it.
#[test]
fn a_dhcp6_port_held_by_another_process_fails_the_start() {
    let dir = tempfile::tempdir().unwrap();
    // another "server" holds [::]:PORT, with SO_REUSEADDR as ISC dhcpd and Kea set it
    let other = socket2::Socket::new(
        socket2::Domain::IPV6,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .unwrap();
    other.set_only_v6(true).unwrap();
    other.set_reuse_address(true).unwrap();
    other
        .bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)).into())
        .unwrap();
    let port = other.local_addr().unwrap().as_socket().unwrap().port();
    let cfg = dir.path().join("sztp.toml");
    std::fs::write(
        &cfg,
        config_text(dir.path(), "2001:db8:1::1000-2001:db8:1::1fff", true)
            .replace("port = 0", &format!("port = {port}")),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("UDP port {port} is in use by another process")),
        "{err}"
    );
}
