//! The real binary on loopback, unprivileged: a relay-mode client built with dhcproto (not our
//! encoder) drives exchanges; reload, restart, kill -9 durability and malformed input.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::relay::{mac, uris_143, Relay};
use dhcproto::v4::MessageType;

const BIN: &str = env!("CARGO_BIN_EXE_sztp-redirector");

fn config(state: &Path, primary: &str) -> String {
    format!(
        r#"
[appliance]
state-dir = "{}"

[[bootstrap-server]]
name = "owner-primary"
uri = "{primary}"

[[bootstrap-server]]
name = "owner-backup"
uri = "https://[2001:db8::10]:8443"

[[rule]]
name = "default"
redirect-to = ["owner-primary", "owner-backup"]

[dhcp4]
interfaces = ["lo"]
port = 0

[[dhcp4.subnet]]
subnet = "192.0.2.0/24"
pools = ["192.0.2.100-192.0.2.199"]
routers = ["192.0.2.1"]
dns-servers = ["192.0.2.1"]
domain-name = "staging.example.com"
lease-time = "1h"
"#,
        state.display()
    )
}

/// The server process; killed on drop. Its stderr lines are collected.
struct Server {
    child: Child,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(cfg: &Path) -> Server {
        let mut child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(cfg)
            .env("RUST_LOG", "debug")
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
                if let Some(p) = line.split("listening for dhcp4 on lo 0.0.0.0:").nth(1) {
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
            log,
            reader: Some(reader),
        }
    }

    fn log_contains(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Wait (bounded) for a log line; returns whether it came.
    fn wait_log(&self, needle: &str) -> bool {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if self.log_contains(needle) {
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

    /// SIGTERM, wait, and return the exit status with every log line.
    fn stop(mut self) -> (std::process::ExitStatus, Vec<String>) {
        self.signal("TERM");
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

fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cfg = dir.path().join("sztp.toml");
    std::fs::write(&cfg, config(&state, "https://sztp.owner.example.com:8443")).unwrap();
    (dir, state, cfg)
}

fn leases_json(state: &Path) -> serde_json::Value {
    let out = Command::new(BIN)
        .args(["leases", "--json", "--state-dir"])
        .arg(state)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn relayed_exchange_gets_address_and_redirect() {
    let (_d, _state, cfg) = setup();
    let s = Server::start(&cfg);
    let r = Relay::new(s.port);
    let x = r.exchange(mac(1), 0x100, true).expect("exchange");
    assert_eq!(x.ack.opts().msg_type(), Some(MessageType::Ack));
    assert_eq!(x.ack.yiaddr(), x.offer.yiaddr());
    assert!((100..=199).contains(&x.ack.yiaddr().octets()[3]));
    assert_eq!(x.ack.giaddr(), Ipv4Addr::LOCALHOST);
    assert_eq!(
        uris_143(&x.ack).unwrap(),
        [
            "https://sztp.owner.example.com:8443",
            "https://[2001:db8::10]:8443"
        ]
    );
    // a device that does not ask gets no 143
    let y = r.exchange(mac(2), 0x200, false).expect("exchange");
    assert_eq!(uris_143(&y.ack), None);
    assert!(s.stop().0.success());
}

#[test]
fn sighup_applies_a_good_file_and_keeps_the_old_one_on_a_bad_file() {
    let (_d, state, cfg) = setup();
    let s = Server::start(&cfg);
    let r = Relay::new(s.port);
    let first = r.exchange(mac(7), 0x10, true).unwrap().ack.yiaddr();
    std::fs::write(&cfg, config(&state, "https://new-owner.example.com")).unwrap();
    s.signal("HUP");
    assert!(s.wait_log("configuration reloaded"));
    let x = r.exchange(mac(7), 0x20, true).unwrap();
    assert_eq!(
        uris_143(&x.ack).unwrap()[0],
        "https://new-owner.example.com"
    );
    assert_eq!(x.ack.yiaddr(), first, "the lease survives a reload");
    std::fs::write(&cfg, config(&state, "http://not-https.example.com")).unwrap();
    s.signal("HUP");
    assert!(s.wait_log("reload refused"));
    let x = r.exchange(mac(7), 0x30, true).unwrap();
    assert_eq!(
        uris_143(&x.ack).unwrap()[0],
        "https://new-owner.example.com"
    );
    assert!(s.stop().0.success());
}

#[test]
fn restart_keeps_leases() {
    let (_d, state, cfg) = setup();
    let s = Server::start(&cfg);
    let a = Relay::new(s.port)
        .exchange(mac(9), 0x1, true)
        .unwrap()
        .ack
        .yiaddr();
    assert!(s.stop().0.success());
    let listed = leases_json(&state);
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["address"] == a.to_string() && l["state"] == "bound"));
    let s = Server::start(&cfg);
    let b = Relay::new(s.port).exchange(mac(9), 0x2, true).unwrap();
    assert_eq!(b.offer.yiaddr(), a);
    assert!(s.stop().0.success());
}

#[test]
fn kill_9_loses_no_acked_lease() {
    let (_d, state, cfg) = setup();
    let s = Server::start(&cfg);
    let port = s.port;
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let mut clients = vec![];
    for t in 0..4u32 {
        let acked = Arc::clone(&acked);
        clients.push(std::thread::spawn(move || {
            let r = Relay::new(port);
            r.sock
                .set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            for i in 0..25u32 {
                let n = t * 1000 + i;
                // a busy machine may miss a 500 ms read: retry the device a few times; a client
                // that gives up ends its thread, so the wait below always ends
                let mut tries = 0;
                loop {
                    match r.exchange(mac(n), n * 4, true) {
                        Some(x) => {
                            acked
                                .lock()
                                .unwrap()
                                .insert((x.ack.yiaddr(), x.ack.chaddr()[..6].to_vec()));
                            break;
                        }
                        None if tries < 5 => tries += 1,
                        None => return,
                    }
                }
            }
        }));
    }
    // kill in the middle of the load (or once every client has finished or given up)
    while acked.lock().unwrap().len() < 30 && !clients.iter().all(|c| c.is_finished()) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut s = s;
    s.child.kill().unwrap(); // SIGKILL
    s.child.wait().unwrap();
    for c in clients {
        c.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 30,
        "only {} exchanges were ACKed before the clients gave up",
        acked.len()
    );
    let listed = leases_json(&state);
    let journal: BTreeSet<(Ipv4Addr, Vec<u8>)> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["state"] == "bound")
        .map(|l| {
            let mac: Vec<u8> = l["mac"]
                .as_str()
                .unwrap()
                .split(':')
                .map(|h| u8::from_str_radix(h, 16).unwrap())
                .collect();
            (l["address"].as_str().unwrap().parse().unwrap(), mac)
        })
        .collect();
    let lost: Vec<_> = acked.difference(&journal).collect();
    assert!(lost.is_empty(), "ACKed but not in the journal: {lost:?}");
}

#[test]
fn malformed_packets_are_dropped_and_counted() {
    let (_d, _state, cfg) = setup();
    let s = Server::start(&cfg);
    let r = Relay::new(s.port);
    let good = r.message(MessageType::Discover, mac(3), 0x33, true);
    let mut bad_cookie = good.clone();
    bad_cookie[236] = 0;
    let mut bootreply = good.clone();
    bootreply[0] = 2;
    let mut overrun = good[..240].to_vec();
    overrun.extend_from_slice(&[53, 1, 1, 55, 200, 1]);
    let garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff; 3],
        bad_cookie,
        bootreply,
        overrun,
        vec![0; 1400],
    ];
    for g in &garbage {
        r.sock.send_to(g, r.server).unwrap();
    }
    // still serving
    assert!(r.exchange(mac(3), 0x40, true).is_some());
    let (st, log) = s.stop();
    assert!(st.success());
    let summary = log
        .iter()
        .find(|l| l.contains("dhcp4 stopped"))
        .expect("shutdown summary");
    assert!(
        summary.contains(&format!("malformed={}", garbage.len())),
        "{summary}"
    );
}

#[test]
fn run_refuses_an_invalid_file_with_78() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[dhcp4]\ninterfaces = [\"lo\"]\nbogus = 1\n").unwrap();
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:3:1"), "{err}");
    assert!(err.contains("bogus"), "{err}");
}

#[test]
fn drops_root_to_appliance_user_after_binding() {
    if !common::require_root_or_skip("drops_root_to_appliance_user_after_binding") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let (d, state, cfg) = setup();
    // the dropped process must reach its state directory
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("[appliance]\n", "[appliance]\nuser = \"nobody\"\n"),
    )
    .unwrap();
    let s = Server::start(&cfg);
    assert!(s.wait_log("running as nobody"));
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.child.id())).unwrap();
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .to_string();
    assert!(
        uid_line.split_whitespace().skip(1).all(|u| u == "65534"),
        "{uid_line}"
    );
    // only the capabilities a reload may still need: CAP_NET_BIND_SERVICE (10), CAP_NET_RAW (13)
    for set in ["CapPrm:", "CapEff:"] {
        let line = status.lines().find(|l| l.starts_with(set)).unwrap();
        assert_eq!(
            u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap(),
            (1 << 10) | (1 << 13),
            "{line}"
        );
    }
    // still serving, and ACKs are still journaled after the drop
    let r = Relay::new(s.port);
    let a = r
        .exchange(mac(77), 0x77, true)
        .expect("exchange")
        .ack
        .yiaddr();
    assert!(s.stop().0.success());
    assert!(leases_json(&state)
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["address"] == a.to_string()));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&state).unwrap().uid(), 65534);
}

#[test]
fn run_reports_a_missing_interface_when_it_binds() {
    let (_d, state, cfg) = setup();
    std::fs::write(
        &cfg,
        config(&state, "https://sztp.owner.example.com:8443")
            .replace("interfaces = [\"lo\"]", "interfaces = [\"sztp-nope0\"]"),
    )
    .unwrap();
    // the file itself is valid: interface names are not checked against this machine
    let check = Command::new(BIN)
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(check.status.success());
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot listen on interface sztp-nope0: no such interface \"sztp-nope0\""),
        "{err}"
    );
}

#[test]
fn a_second_daemon_on_the_same_state_dir_refuses_to_start_and_the_first_serves_on() {
    let (_d, state, cfg) = setup();
    let s = Server::start(&cfg);
    assert!(s.wait_log("ready"));
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "state-dir {} is in use by another sztp-redirector (lock {} held)",
            state.display(),
            state.join("lock").display()
        )),
        "{err}"
    );
    assert!(!err.contains("listening for"), "it must not bind: {err}");
    let x = Relay::new(s.port).exchange(mac(11), 0x110, true);
    assert!(x.is_some(), "the first daemon keeps serving");
    assert!(s.stop().0.success());
}
