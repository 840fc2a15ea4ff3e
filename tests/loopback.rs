//! The real binary on loopback, unprivileged: a relay-mode client built with dhcproto (not our
//! encoder) drives exchanges; reload, restart, kill -9 durability and malformed input.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};

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

/// A relay agent on 127.0.0.1 that asks for subnet 192.0.2.0/24 by link selection (RFC 3527)
/// and gets replies on its own port (RFC 8357).
struct Relay {
    sock: UdpSocket,
    server: SocketAddr,
}

struct Exchange {
    offer: Message,
    ack: Message,
}

fn mac(n: u32) -> [u8; 6] {
    let b = n.to_be_bytes();
    [2, 0, b[0], b[1], b[2], b[3]]
}

impl Relay {
    fn new(port: u16) -> Relay {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        Relay {
            sock,
            server: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn message(&self, t: MessageType, chaddr: [u8; 6], xid: u32, ask_143: bool) -> Vec<u8> {
        let mut m = Message::new_with_id(
            xid,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::LOCALHOST,
            &chaddr,
        );
        m.set_hops(1);
        m.opts_mut().insert(DhcpOption::MessageType(t));
        let mut prl = vec![OptionCode::SubnetMask, OptionCode::Router];
        if ask_143 {
            prl.push(OptionCode::from(143u8));
        }
        m.opts_mut().insert(DhcpOption::ParameterRequestList(prl));
        let mut bytes = m.to_vec().unwrap();
        // option 82 by hand: link-selection 192.0.2.1 and relay-port
        let rai = [5, 4, 192, 0, 2, 1, 19, 0];
        let end = bytes.len() - 1;
        bytes.splice(end..end, [&[82u8, rai.len() as u8][..], &rai[..]].concat());
        bytes
    }

    fn recv(&self, xid: u32) -> Option<Message> {
        let mut buf = [0u8; 1500];
        loop {
            let (n, _) = self.sock.recv_from(&mut buf).ok()?;
            let m = Message::decode(&mut Decoder::new(&buf[..n])).expect("reply decodes");
            assert_eq!(m.opcode(), Opcode::BootReply);
            if m.xid() == xid {
                return Some(m);
            }
        }
    }

    fn exchange(&self, chaddr: [u8; 6], xid: u32, ask_143: bool) -> Option<Exchange> {
        self.sock
            .send_to(
                &self.message(MessageType::Discover, chaddr, xid, ask_143),
                self.server,
            )
            .unwrap();
        let offer = self.recv(xid)?;
        assert_eq!(offer.opts().msg_type(), Some(MessageType::Offer));
        let sid = match offer.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(s)) => *s,
            o => panic!("no server id: {o:?}"),
        };
        let mut req = Message::decode(&mut Decoder::new(&self.message(
            MessageType::Request,
            chaddr,
            xid + 1,
            ask_143,
        )))
        .unwrap();
        req.opts_mut()
            .insert(DhcpOption::RequestedIpAddress(offer.yiaddr()));
        req.opts_mut().insert(DhcpOption::ServerIdentifier(sid));
        // re-add 82 (dhcproto re-encodes decoded options; append ours by hand again)
        req.opts_mut().remove(OptionCode::RelayAgentInformation);
        let mut bytes = req.to_vec().unwrap();
        let rai = [5, 4, 192, 0, 2, 1, 19, 0];
        let end = bytes.len() - 1;
        bytes.splice(end..end, [&[82u8, rai.len() as u8][..], &rai[..]].concat());
        self.sock.send_to(&bytes, self.server).unwrap();
        let ack = self.recv(xid + 1)?;
        Some(Exchange { offer, ack })
    }
}

fn uris_143(m: &Message) -> Option<Vec<String>> {
    match m.opts().get(OptionCode::from(143u8)) {
        Some(DhcpOption::Unknown(u)) => {
            let mut d = u.data();
            let mut out = vec![];
            while d.len() >= 2 {
                let l = u16::from_be_bytes([d[0], d[1]]) as usize;
                out.push(String::from_utf8(d[2..2 + l].to_vec()).unwrap());
                d = &d[2 + l..];
            }
            Some(out)
        }
        _ => None,
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
                match r.exchange(mac(n), n * 4, true) {
                    Some(x) => {
                        acked
                            .lock()
                            .unwrap()
                            .insert((x.ack.yiaddr(), x.ack.chaddr()[..6].to_vec()));
                    }
                    None => return,
                }
            }
        }));
    }
    // kill in the middle of the load
    while acked.lock().unwrap().len() < 30 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut s = s;
    s.child.kill().unwrap(); // SIGKILL
    s.child.wait().unwrap();
    for c in clients {
        c.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 30);
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
