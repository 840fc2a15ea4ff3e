//! Real peers for `probe`: kea-dhcp4 in network namespaces, the probe as a device (raw frames)
//! and as a relay agent, and a second server on the same segment.
//!
//! Topology (names carry the test's pid and a per-test number so parallel runs and the tests
//! of one run do not collide; PID below stands for both):
//! ```text
//!  netns szpPIDs: kea #1 (143)   szpPIDs0 198.51.100.1/24 ──┐
//!                                                           ├─ bridge szpPIDbr in netns szpPIDc: the probe
//!  netns szpPIDt: kea #2 (no 143) szpPIDt0 198.51.100.2/24 ─┘
//! ```
//! Needs root; otherwise prints `skipped: needs root for network namespaces` (and fails when
//! SZTP_REQUIRE_PRIVILEGED_TESTS=1).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

const KEA_143: &str = "001f68747470733a2f2f737a7470312e6578616d706c652e746573743a38343433001a68747470733a2f2f5b323030313a6462383a3a315d3a38343433";
const URIS: [&str; 2] = [
    "https://sztp1.example.test:8443",
    "https://[2001:db8::1]:8443",
];

fn privileged_or_skip() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let kea = Command::new("kea-dhcp4")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    let required = std::env::var("SZTP_REQUIRE_PRIVILEGED_TESTS").as_deref() == Ok("1");
    if !root {
        assert!(!required, "SZTP_REQUIRE_PRIVILEGED_TESTS=1 but not root");
        println!("skipped: needs root for network namespaces");
        return false;
    }
    if !kea {
        assert!(
            !required,
            "SZTP_REQUIRE_PRIVILEGED_TESTS=1 but kea-dhcp4 is missing"
        );
        println!("skipped: needs kea-dhcp4");
        return false;
    }
    true
}

fn sh(args: &[&str]) {
    let o = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Namespaces (and with them the veths and the bridge), deleted on drop even after a panic.
struct Topology {
    /// pid and per-process test number: short enough for 15-character interface names.
    tag: String,
    namespaces: Vec<String>,
}

impl Topology {
    fn ns(&self, role: char) -> String {
        format!("szp{}{role}", self.tag)
    }
    fn bridge(&self) -> String {
        format!("szp{}br", self.tag)
    }

    fn new() -> Topology {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 10;
        let tag = format!("{}{n}", std::process::id());
        let mut t = Topology {
            tag: tag.clone(),
            namespaces: Vec::new(),
        };
        let (s, tt, c) = (t.ns('s'), t.ns('t'), t.ns('c'));
        for n in [&s, &tt, &c] {
            sh(&["ip", "netns", "add", n]);
            t.namespaces.push(n.clone());
            sh(&["ip", "-n", n, "link", "set", "lo", "up"]);
        }
        let br = t.bridge();
        assert!(br.len() <= 15);
        sh(&[
            "ip",
            "-n",
            &c,
            "link",
            "add",
            &br,
            "type",
            "bridge",
            "forward_delay",
            "0",
        ]);
        for (srv, addr, end) in [(&s, "198.51.100.1/24", 'a'), (&tt, "198.51.100.2/24", 'b')] {
            let inner = format!("{srv}0");
            let outer = format!("szp{tag}c{end}");
            sh(&[
                "ip", "link", "add", &inner, "type", "veth", "peer", "name", &outer,
            ]);
            sh(&["ip", "link", "set", &inner, "netns", srv]);
            sh(&["ip", "link", "set", &outer, "netns", &c]);
            sh(&["ip", "-n", srv, "addr", "add", addr, "dev", &inner]);
            sh(&["ip", "-n", srv, "link", "set", &inner, "up"]);
            sh(&["ip", "-n", &c, "link", "set", &outer, "master", &br]);
            sh(&["ip", "-n", &c, "link", "set", &outer, "up"]);
        }
        sh(&["ip", "-n", &c, "link", "set", &br, "up"]);
        t
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for n in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// A child process killed and reaped on drop.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn kea_config(iface: &str, pool: &str, with_143: bool) -> String {
    let sztp = if with_143 {
        format!(
            r#"{{ "name": "sztp-redirect", "code": 143, "csv-format": false, "data": "{KEA_143}", "always-send": true }},"#
        )
    } else {
        String::new()
    };
    format!(
        r#"{{ "Dhcp4": {{ "interfaces-config": {{ "interfaces": ["{iface}"], "dhcp-socket-type": "raw" }},
  "lease-database": {{ "type": "memfile", "persist": false }},
  "option-def": [ {{ "name": "sztp-redirect", "code": 143, "type": "binary", "space": "dhcp4" }} ],
  "subnet4": [ {{ "id": 1, "subnet": "198.51.100.0/24", "pools": [ {{ "pool": "{pool}" }} ],
    "option-data": [ {sztp} {{ "name": "routers", "data": "198.51.100.1" }} ] }} ],
  "valid-lifetime": 600,
  "loggers": [ {{ "name": "kea-dhcp4", "output_options": [ {{ "output": "stdout" }} ], "severity": "INFO" }} ] }} }}"#
    )
}

fn start_kea(ns: &str, dir: &Path, name: &str, config: &str) -> Kill {
    let run = dir.join(name);
    fs::create_dir_all(&run).unwrap();
    let cfg = run.join("kea-dhcp4.json");
    fs::write(&cfg, config).unwrap();
    let log = run.join("kea.log");
    let child = Command::new("ip")
        .args(["netns", "exec", ns, "kea-dhcp4", "-c"])
        .arg(&cfg)
        .env("KEA_PIDFILE_DIR", &run)
        .env("KEA_LOCKFILE_DIR", &run)
        .stdout(fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = Kill(child);
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let text = fs::read_to_string(&log).unwrap_or_default();
        if text.contains("DHCP4_STARTED") {
            // give the raw socket a moment after the start message
            sleep(Duration::from_millis(300));
            return guard;
        }
        assert!(Instant::now() < until, "kea {name} did not start:\n{text}");
        sleep(Duration::from_millis(100));
    }
}

fn probe(ns: &str, args: &[&str]) -> Output {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_sztp-redirector"));
    let o = Command::new("timeout")
        .args(["30", "ip", "netns", "exec", ns])
        .arg(bin)
        .arg("probe")
        .args(args)
        .output()
        .unwrap();
    eprintln!(
        "probe {args:?} -> {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn uri_block(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("sztp redirect"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.trim().to_string())
        .collect()
}

#[test]
fn probe_against_kea_device_relay_and_two_servers() {
    if !privileged_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let topo = Topology::new();
    let (s, t, c, br) = (topo.ns('s'), topo.ns('t'), topo.ns('c'), topo.bridge());
    let _kea1 = start_kea(
        &s,
        dir.path(),
        "kea1",
        &kea_config(&format!("{s}0"), "198.51.100.100 - 198.51.100.150", true),
    );

    // device mode, one server: exactly the two URIs of the Kea vector, in order
    let o = probe(&c, &["--interface", &br, "--wait", "1s", "--release"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        out.contains("server 198.51.100.1 (from 198.51.100.1 "),
        "{out}"
    );
    assert!(out.contains("option 143 present"), "{out}");
    assert!(out.contains("sztp redirect (option 143, rfc8572 encoding, 2 URIs):"));
    assert_eq!(
        uri_block(&out),
        [
            "1. https://sztp1.example.test:8443",
            "2. https://[2001:db8::1]:8443"
        ]
    );
    assert!(out.contains("released 198.51.100."));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("warning"));

    let o = probe(&c, &["--interface", &br, "--wait", "1s", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["uris"], serde_json::json!(URIS));
    assert_eq!(j["encoding"], "rfc8572");
    assert_eq!(j["servers"].as_array().unwrap().len(), 1);
    assert_eq!(j["chosen"], "198.51.100.1");

    // relay mode: the probe is a relay agent on 198.51.100.3 with an ephemeral port; Kea 2.2
    // answers that port because of the RFC 8357 relay-port sub-option
    sh(&["ip", "-n", &c, "addr", "add", "198.51.100.3/24", "dev", &br]);
    let o = probe(
        &c,
        &[
            "--relay",
            "198.51.100.1:67",
            "--bind",
            "198.51.100.3:0",
            "--wait",
            "1s",
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(0));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["uris"], serde_json::json!(URIS));
    assert_eq!(j["servers"][0]["source_mac"], serde_json::Value::Null);
    sh(&["ip", "-n", &c, "addr", "del", "198.51.100.3/24", "dev", &br]);

    // a second server on the same segment: the staging failure the probe must point out
    let _kea2 = start_kea(
        &t,
        dir.path(),
        "kea2",
        &kea_config(&format!("{t}0"), "198.51.100.160 - 198.51.100.199", false),
    );
    let o = probe(
        &c,
        &[
            "--interface",
            &br,
            "--wait",
            "1500ms",
            "--server",
            "198.51.100.1",
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        err.contains(&format!(
            "warning: 2 DHCP servers answered on {br}: a classic staging failure"
        )),
        "{err}"
    );
    assert!(
        out.contains("server 198.51.100.2 (from 198.51.100.2 "),
        "{out}"
    );
    assert!(out.contains("option 143 absent"), "{out}");
    assert_eq!(
        uri_block(&out),
        [
            "1. https://sztp1.example.test:8443",
            "2. https://[2001:db8::1]:8443"
        ]
    );
}

/// `entries` as an RFC 8572 bootstrap-server-list, in hex for Kea's binary option data.
fn list_hex(entries: &[&str]) -> String {
    let mut s = String::new();
    for e in entries {
        s.push_str(&format!("{:04x}", e.len()));
        for b in e.bytes() {
            s.push_str(&format!("{b:02x}"));
        }
    }
    s
}

/// Whether `s` holds a character a terminal acts on: C0/C1 controls but the newline, DEL, the
/// bidi formatting characters, U+2028/U+2029.
fn has_terminal_control(s: &str) -> bool {
    s.chars().any(|c| {
        (c.is_control() && c != '\n')
            || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
    })
}

/// A server (Kea, configured by someone hostile or careless) puts terminal control sequences
/// and a bidi override in option 143: the probe prints them escaped, in text and JSON (the
/// JSON still decodes to the octets the server sent). Neither entry is a usable SZTP URI (the
/// strict URI check refuses both), so both are reported as ignored.
#[test]
fn probe_escapes_what_a_hostile_server_sends() {
    if !privileged_or_skip() {
        return;
    }
    let usable = "https://sztp.example.test:8443/\u{202e}txt.exe";
    let ignored = "\u{1b}[2J\u{1b}]0;owned\u{7}\r\nfake: ok";
    let dir = tempfile::tempdir().unwrap();
    let topo = Topology::new();
    let (s, c, br) = (topo.ns('s'), topo.ns('c'), topo.bridge());
    let cfg = kea_config(&format!("{s}0"), "198.51.100.100 - 198.51.100.150", true)
        .replace(KEA_143, &list_hex(&[usable, ignored]));
    let _kea = start_kea(&s, dir.path(), "kea-hostile", &cfg);

    let o = probe(&c, &["--interface", &br, "--wait", "1s"]);
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("option 143 present"), "{out}");
    assert!(
        !has_terminal_control(&out),
        "raw control text printed: {out:?}"
    );
    assert!(
        out.contains("\\u{202e}txt.exe") && out.contains("\\u{1b}[2J"),
        "{out}"
    );

    let o = probe(&c, &["--interface", &br, "--wait", "1s", "--json"]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(
        !has_terminal_control(&text),
        "raw control text printed: {text:?}"
    );
    let j: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(j["uris"], serde_json::json!([]), "{text}");
    assert_eq!(j["ignored"], serde_json::json!([usable, ignored]), "{text}");
}
