//! The real binary serving DHCPv6 on loopback, unprivileged (port 0, relay path): a relay
//! agent built with dhcproto (not our wire module), `probe --relay6`, malformed input counted,
//! the same address for the same DUID/IAID after a restart.

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
    let cfg = dir.join("sztp.toml");
    std::fs::write(
        &cfg,
        format!(
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

[dhcp6]
interfaces = ["lo"]
port = 0

[[dhcp6.subnet]]
prefix = "2001:db8:1::/64"
pools = ["2001:db8:1::1000-2001:db8:1::1fff"]
"#,
            dir.join("state").display()
        ),
    )
    .unwrap();
    cfg
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
            log,
            reader: Some(reader),
        }
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
        self.sock
            .send_to(&self.forward(&m.to_vec().unwrap()), self.server)
            .unwrap();
        let mut buf = [0u8; 4096];
        let (n, _) = self.sock.recv_from(&mut buf).expect("a Relay-reply");
        assert_eq!(buf[0], 13);
        // the only option of our Relay-reply is the relay message (no interface-id was sent)
        let opts = &buf[34..n];
        assert_eq!(u16::from_be_bytes([opts[0], opts[1]]), 9);
        Message::decode(&mut Decoder::new(&opts[4..])).unwrap()
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
