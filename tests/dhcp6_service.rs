//! The DHCPv6 service in process, unprivileged, on `[::1]:0`: a relay agent built with
//! dhcproto's encoder and decoder (not our wire module) drives Solicit/Request/Renew/Release,
//! Information-request, malformed input, a foreign interface, the server DUID and shutdown.

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dhcproto::v6::{DhcpOption, Message, MessageType, OptionCode, IANA, ORO};
use dhcproto::{Decodable, Decoder, Encodable};
use sztp_redirector::config;
use sztp_redirector::dhcp::v6::server::{self, Bound6, Stats};
use sztp_redirector::journal::DeviceJournal;
use sztp_redirector::runtime::{Clock, Events, Published, ServiceContext, Snapshot};
use tokio_util::sync::CancellationToken;

const KEA_PAYLOAD_HEX: &str = "001f68747470733a2f2f737a7470312e6578616d706c652e746573743a38343433001a68747470733a2f2f5b323030313a6462383a3a315d3a38343433";

fn config_text(state: &Path, interfaces: &str) -> String {
    format!(
        r#"
[appliance]
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
interfaces = [{interfaces}]
rapid-commit = true

[[dhcp6.subnet]]
prefix = "2001:db8:1::/64"
pools = ["2001:db8:1::1000-2001:db8:1::1fff"]
dns-servers = ["2001:db8:1::1"]
domain-search = ["staging.example.test"]
preferred-lifetime = "30m"
valid-lifetime = "1h"
"#,
        state.display()
    )
}

/// The service on `[::1]:0` with a device journal; `stop` returns its counters.
struct Service {
    port: u16,
    token: CancellationToken,
    stats: Arc<Stats>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    journal: Arc<DeviceJournal>,
    state: std::path::PathBuf,
}

impl Service {
    fn start(state: &Path, interfaces: &str) -> Service {
        Service::start_with(state, &config_text(state, interfaces), Clock::System)
    }

    fn start_with(state: &Path, text: &str, clock: Clock) -> Service {
        let cfg = config::load_str(Path::new("test.toml"), text).expect("config");
        let names = cfg.dhcp6.as_ref().unwrap().interfaces.clone();
        let socket = UdpSocket::bind("[::1]:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let bound = Bound6::new(names, socket).unwrap();
        let stats = Arc::clone(&bound.stats);
        let journal = Arc::new(DeviceJournal::open(state, 1 << 20).unwrap());
        let ctx = ServiceContext::new(
            // interface facts (lo's index) as the daemon reads them at start
            Published::new(Snapshot::read(cfg, 0)),
            Events::new(Some(Arc::clone(&journal))),
            state.to_path_buf(),
            sztp_redirector::metrics::Metrics::new(),
        );
        let token = CancellationToken::new();
        let task = tokio::spawn(server::serve_with_clock(bound, ctx, token.clone(), clock));
        Service {
            port,
            token,
            stats,
            task,
            journal,
            state: state.to_path_buf(),
        }
    }

    /// Cancels and waits (bounded) for the service to end; returns its counters.
    async fn stop(self) -> Arc<Stats> {
        self.token.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the service ends after cancel")
            .expect("no panic")
            .expect("no error");
        self.journal.flush();
        self.stats
    }

    fn journal_lines(&self) -> Vec<serde_json::Value> {
        self.journal.flush();
        std::fs::read_to_string(self.state.join("devices.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// A relay agent on `[::1]` (RFC 8357: replies come back to its own port).
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

    /// Relay-forward around `inner`, with interface-id and Relay Source Port.
    fn forward(&self, inner: &[u8], link: Ipv6Addr) -> Vec<u8> {
        let mut m = vec![12u8, 0];
        m.extend_from_slice(&link.octets());
        m.extend_from_slice(&"fe80::ff:fe00:2".parse::<Ipv6Addr>().unwrap().octets());
        let mut opts = dhcproto::v6::DhcpOptions::new();
        opts.insert(DhcpOption::InterfaceId(b"port7".to_vec()));
        opts.insert(DhcpOption::Unknown(dhcproto::v6::UnknownOption::new(
            OptionCode::RelayPort,
            vec![0, 0],
        )));
        opts.insert(DhcpOption::Unknown(dhcproto::v6::UnknownOption::new(
            OptionCode::RelayMsg,
            inner.to_vec(),
        )));
        let mut e = Vec::new();
        opts.encode(&mut dhcproto::Encoder::new(&mut e)).unwrap();
        m.extend_from_slice(&e);
        m
    }

    fn send(&self, bytes: &[u8]) {
        self.sock.send_to(bytes, self.server).unwrap();
    }

    /// The next Relay-reply, unwrapped: (interface-id, client message). None on timeout.
    fn recv(&self) -> Option<(Option<Vec<u8>>, Message)> {
        let mut buf = [0u8; 4096];
        let (n, _) = self.sock.recv_from(&mut buf).ok()?;
        let b = &buf[..n];
        assert_eq!(b[0], 13, "a Relay-reply");
        let mut ifid = None;
        let mut inner = None;
        let mut rest = &b[34..];
        while rest.len() >= 4 {
            let code = u16::from_be_bytes([rest[0], rest[1]]);
            let len = u16::from_be_bytes([rest[2], rest[3]]) as usize;
            let v = &rest[4..4 + len];
            match code {
                18 => ifid = Some(v.to_vec()),
                9 => inner = Some(v.to_vec()),
                _ => {}
            }
            rest = &rest[4 + len..];
        }
        let inner = inner.expect("relay-msg");
        Some((ifid, Message::decode(&mut Decoder::new(&inner)).unwrap()))
    }

    fn exchange(&self, m: &Message) -> Message {
        self.send(&self.forward(&m.to_vec().unwrap(), link()));
        self.recv().expect("a reply").1
    }
}

fn link() -> Ipv6Addr {
    "2001:db8:1::1".parse().unwrap()
}

fn duid(n: u8) -> Vec<u8> {
    vec![0, 3, 0, 1, 2, 0, 0, 0, 0, n]
}

fn client(t: MessageType, n: u8, oro: &[u16], ia: Option<Vec<DhcpOption>>) -> Message {
    let mut m = Message::new_with_id(t, [n, 2, 3]);
    m.opts_mut().insert(DhcpOption::ClientId(duid(n)));
    if !oro.is_empty() {
        m.opts_mut().insert(DhcpOption::ORO(ORO {
            opts: oro.iter().map(|&c| OptionCode::from(c)).collect(),
        }));
    }
    m.opts_mut().insert(DhcpOption::ElapsedTime(0));
    if let Some(opts) = ia {
        m.opts_mut().insert(DhcpOption::IANA(IANA {
            id: 7,
            t1: 0,
            t2: 0,
            opts: opts.into_iter().collect(),
        }));
    }
    m
}

fn unknown(m: &Message, code: u16) -> Option<Vec<u8>> {
    m.opts().iter().find_map(|o| match o {
        DhcpOption::Unknown(u) if u16::from(u.code()) == code => Some(u.data().to_vec()),
        _ => None,
    })
}

fn address(m: &Message) -> Option<(Ipv6Addr, u32, u32)> {
    match m.opts().get(OptionCode::IANA) {
        Some(DhcpOption::IANA(ia)) => ia.opts.iter().find_map(|o| match o {
            DhcpOption::IAAddr(a) => Some((a.addr, a.preferred_life, a.valid_life)),
            _ => None,
        }),
        _ => None,
    }
}

fn server_id(m: &Message) -> Vec<u8> {
    match m.opts().get(OptionCode::ServerId) {
        Some(DhcpOption::ServerId(d)) => d.clone(),
        other => panic!("no server id: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_exchange_binds_and_journals() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), r#""lo""#);
    let port = svc.port;
    let msgs = tokio::task::spawn_blocking(move || {
        let r = Relay::new(port);
        let adv_wire = {
            let m = client(MessageType::Solicit, 1, &[23, 24, 136], Some(vec![]));
            r.send(&r.forward(&m.to_vec().unwrap(), link()));
            r.recv().expect("advertise")
        };
        let (ifid, adv) = adv_wire;
        assert_eq!(ifid.as_deref(), Some(&b"port7"[..]), "interface-id echoed");
        assert_eq!(adv.msg_type(), MessageType::Advertise);
        assert_eq!(adv.xid(), [1, 2, 3]);
        assert_eq!(hex::encode(unknown(&adv, 136).unwrap()), KEA_PAYLOAD_HEX);
        let (a, pref, valid) = address(&adv).unwrap();
        assert_eq!((pref, valid), (1800, 3600));
        let sid = server_id(&adv);
        let mut req = client(MessageType::Request, 1, &[136], Some(vec![DhcpOption::IAAddr(
            dhcproto::v6::IAAddr { addr: a, preferred_life: 0, valid_life: 0, opts: Default::default() },
        )]));
        req.opts_mut().insert(DhcpOption::ServerId(sid.clone()));
        let rep = r.exchange(&req);
        assert_eq!(rep.msg_type(), MessageType::Reply);
        assert_eq!(address(&rep).map(|x| x.0), Some(a));
        let mut renew = req.clone();
        renew.set_msg_type(MessageType::Renew);
        assert_eq!(address(&r.exchange(&renew)).map(|x| x.0), Some(a));
        let mut rel = req.clone();
        rel.set_msg_type(MessageType::Release);
        let done = r.exchange(&rel);
        assert!(matches!(done.opts().get(OptionCode::StatusCode), Some(DhcpOption::StatusCode(s)) if u16::from(s.status) == 0));
        // stateless
        let info = client(MessageType::InformationRequest, 2, &[136], None);
        let i = r.exchange(&info);
        assert_eq!(hex::encode(unknown(&i, 136).unwrap()), KEA_PAYLOAD_HEX);
        (a, sid)
    })
    .await
    .unwrap();
    let lines = svc.journal_lines();
    let kinds: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "advertise",
            "request",
            "renew",
            "release",
            "information-request"
        ]
    );
    let req = &lines[1];
    assert_eq!(req["proto"], "dhcp6");
    assert_eq!(req["duid"], hex::encode(duid(1)));
    assert_eq!(req["mac"], "02:00:00:00:00:01");
    assert_eq!(req["iaid"], 7);
    assert_eq!(req["address"], msgs.0.to_string());
    assert_eq!(req["requested_136"], true);
    assert_eq!(req["rule"], "default");
    assert_eq!(req["relay"], "::1");
    assert_eq!(req["interface"], "lo");
    assert_eq!(
        req["uris"],
        serde_json::json!([
            "https://sztp1.example.test:8443",
            "https://[2001:db8::1]:8443"
        ])
    );
    let st = svc.stop().await;
    assert_eq!(Stats::get(&st.replies), 5);
    // the server DUID was kept in state-dir
    let file = std::fs::read_to_string(dir.path().join(server::SERVER_DUID_FILE)).unwrap();
    assert_eq!(file.trim(), hex::encode(&msgs.1));
    assert_eq!(&msgs.1[..2], &[0, 1], "a DUID-LLT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_duid_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let svc = Service::start(dir.path(), r#""lo""#);
        let port = svc.port;
        let sid = tokio::task::spawn_blocking(move || {
            let r = Relay::new(port);
            server_id(&r.exchange(&client(MessageType::InformationRequest, 3, &[], None)))
        })
        .await
        .unwrap();
        seen.push(sid);
        svc.stop().await;
    }
    assert_eq!(seen[0], seen[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packets_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), r#""lo""#);
    let port = svc.port;
    let garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![1, 2],
        vec![1, 0, 0, 1, 0, 1, 0, 200, 1], // option runs past the end
        vec![2, 0, 0, 1],                  // an Advertise sent to a server
        vec![12, 0],                       // a truncated Relay-forward
        [vec![12u8, 0], vec![0; 32]].concat(), // a Relay-forward with no message
        vec![1, 0, 0, 1, 0, 8, 0, 3, 0, 0, 0], // Elapsed Time of 3 octets
        vec![0xff; 1400],
    ];
    let n = garbage.len() as u64;
    tokio::task::spawn_blocking(move || {
        let r = Relay::new(port);
        for g in &garbage {
            r.send(g);
        }
        // still serving afterwards
        let m = r.exchange(&client(MessageType::InformationRequest, 4, &[136], None));
        assert_eq!(m.msg_type(), MessageType::Reply);
    })
    .await
    .unwrap();
    let st = svc.stop().await;
    assert_eq!(Stats::get(&st.malformed), n);
    assert_eq!(Stats::get(&st.replies), 1);
    assert_eq!(Stats::get(&st.handler_panics), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_answers_on_an_interface_not_configured() {
    let dir = tempfile::tempdir().unwrap();
    // the datagram arrives on lo, which the file does not name
    let svc = Service::start(dir.path(), r#""eth-not-lo""#);
    let port = svc.port;
    let received = Arc::clone(&svc.stats);
    let got = tokio::task::spawn_blocking(move || {
        let r = Relay::new(port);
        r.sock
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        r.send(
            &r.forward(
                &client(MessageType::InformationRequest, 5, &[136], None)
                    .to_vec()
                    .unwrap(),
                link(),
            ),
        );
        // bounded wait until the server has seen it, so the silence below means something
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while Stats::get(&received.received) == 0 && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        r.recv()
    })
    .await
    .unwrap();
    assert!(got.is_none(), "answered on lo: {got:?}");
    let st = svc.stop().await;
    assert_eq!(Stats::get(&st.not_served), 1);
    assert_eq!(Stats::get(&st.replies), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_unicast_solicit_is_dropped_and_a_direct_information_request_answered() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), r#""lo""#);
    let port = svc.port;
    tokio::task::spawn_blocking(move || {
        let c = UdpSocket::bind("[::1]:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let to = SocketAddrV6::new(Ipv6Addr::LOCALHOST, port, 0, 0);
        // RFC 8415 §18.4 and Kea: a unicast Solicit is not answered
        c.send_to(
            &client(MessageType::Solicit, 6, &[136], Some(vec![]))
                .to_vec()
                .unwrap(),
            to,
        )
        .unwrap();
        c.send_to(
            &client(MessageType::InformationRequest, 6, &[136], None)
                .to_vec()
                .unwrap(),
            to,
        )
        .unwrap();
        let mut buf = [0u8; 2048];
        let (n, _) = c.recv_from(&mut buf).unwrap();
        let m = Message::decode(&mut Decoder::new(&buf[..n])).unwrap();
        assert_eq!(
            m.msg_type(),
            MessageType::Reply,
            "the Information-request's"
        );
        assert_eq!(hex::encode(unknown(&m, 136).unwrap()), KEA_PAYLOAD_HEX);
    })
    .await
    .unwrap();
    let st = svc.stop().await;
    assert_eq!(Stats::get(&st.ignored), 1);
}

// ---------------------------------------------------------------------------------------------
// The lease journal: durable before the Reply, replayed at start, quarantines kept, compacted.

use sztp_redirector::daemon::{Bound, ServiceName, Supervisor};
use sztp_redirector::dhcp::lease_store::{read_records, Journal};
use sztp_redirector::dhcp::leases::LeaseState;
use sztp_redirector::dhcp::v6::bindings::{Bindings, IaKey, Lease6, JOURNAL_FILE};

/// Upper bound for anything that must end; hitting it means a hang, not slowness.
const HANG: Duration = Duration::from_secs(30);
/// A plausible Unix time for the virtual-clock tests.
const T0: u64 = 1_800_000_000;

fn ia_addr(a: Ipv6Addr) -> DhcpOption {
    DhcpOption::IAAddr(dhcproto::v6::IAAddr {
        addr: a,
        preferred_life: 0,
        valid_life: 0,
        opts: Default::default(),
    })
}

/// Solicit then Request for client `n` through `r`; the Reply.
fn solicit_request(r: &Relay, n: u8) -> Message {
    let adv = r.exchange(&client(MessageType::Solicit, n, &[136], Some(vec![])));
    assert_eq!(adv.msg_type(), MessageType::Advertise);
    let (a, _, _) = address(&adv).expect("an address advertised");
    let mut req = client(MessageType::Request, n, &[136], Some(vec![ia_addr(a)]));
    req.opts_mut().insert(DhcpOption::ServerId(server_id(&adv)));
    r.exchange(&req)
}

/// The status code inside the IA_NA of `m`, if any.
fn ia_status(m: &Message) -> Option<u16> {
    match m.opts().get(OptionCode::IANA) {
        Some(DhcpOption::IANA(ia)) => ia.opts.iter().find_map(|o| match o {
            DhcpOption::StatusCode(s) => Some(u16::from(s.status)),
            _ => None,
        }),
        _ => None,
    }
}

fn text_with(state: &Path, from: &str, to: &str) -> String {
    config_text(state, r#""lo""#).replace(from, to)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_leaves_only_after_its_binding_is_in_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_path_buf();
    let svc = Service::start(&state, r#""lo""#);
    let port = svc.port;
    let st = state.clone();
    tokio::task::spawn_blocking(move || {
        let r = Relay::new(port);
        let rep = solicit_request(&r, 1);
        let (a, _, valid) = address(&rep).unwrap();
        // read the moment the Reply is in: the record was fsync'd before it was sent
        let recs: Vec<Lease6> = read_records(&st).unwrap();
        let l = recs.iter().find(|l| l.addr == a).expect("journaled");
        assert_eq!(
            (l.duid.clone(), l.iaid, l.state),
            (duid(1), 7, LeaseState::Bound)
        );
        assert_eq!(
            l.mac.map(|m| m.to_string()).as_deref(),
            Some("02:00:00:00:00:01")
        );
        assert_eq!(valid, 3600);
        // Rapid Commit: one round trip, journaled as well
        let mut rc = client(MessageType::Solicit, 2, &[136], Some(vec![]));
        rc.opts_mut().insert(DhcpOption::RapidCommit);
        let rep = r.exchange(&rc);
        assert_eq!(rep.msg_type(), MessageType::Reply);
        let (b, _, _) = address(&rep).unwrap();
        let recs: Vec<Lease6> = read_records(&st).unwrap();
        assert!(recs.iter().any(|l| l.addr == b && l.duid == duid(2)));
        // Release: the record says so before the Reply
        let mut rel = client(MessageType::Release, 1, &[], Some(vec![ia_addr(a)]));
        rel.opts_mut().insert(DhcpOption::ServerId(server_id(&rep)));
        r.exchange(&rel);
        let recs: Vec<Lease6> = read_records(&st).unwrap();
        let l = recs.iter().find(|l| l.addr == a).unwrap();
        assert_eq!(l.state, LeaseState::Released);
    })
    .await
    .unwrap();
    svc.stop().await;
    assert!(state.join(JOURNAL_FILE).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bindings_are_replayed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_path_buf();
    let cfg = config::load_str(Path::new("t.toml"), &config_text(&state, r#""lo""#)).unwrap();
    let subnet = &cfg.dhcp6.as_ref().unwrap().subnets[0];
    let key = IaKey {
        duid: duid(1),
        iaid: 7,
    };
    // an address the hash would not pick for this IA (as after a collision on an earlier
    // start): only the journal can bring it back
    let hashed = Bindings::default()
        .choose_pool_address(subnet, &key, T0, |_| true)
        .unwrap();
    let kept: Ipv6Addr = if hashed == "2001:db8:1::1abc".parse::<Ipv6Addr>().unwrap() {
        "2001:db8:1::1abd".parse().unwrap()
    } else {
        "2001:db8:1::1abc".parse().unwrap()
    };
    let (mut j, _) = Journal::<Lease6>::open(&state).unwrap();
    j.append(&[Lease6 {
        addr: kept,
        duid: duid(1),
        iaid: 7,
        mac: None,
        expires: u64::MAX / 2,
        state: LeaseState::Bound,
    }])
    .unwrap();
    drop(j);
    let svc = Service::start(&state, r#""lo""#);
    let port = svc.port;
    let got = tokio::task::spawn_blocking(move || {
        let r = Relay::new(port);
        let adv = r.exchange(&client(MessageType::Solicit, 1, &[136], Some(vec![])));
        address(&adv).unwrap().0
    })
    .await
    .unwrap();
    assert_eq!(got, kept);
    svc.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_declined_address_stays_quarantined_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_path_buf();
    // one address in the pool, declined for ten minutes
    let text = text_with(
        &state,
        "2001:db8:1::1000-2001:db8:1::1fff",
        "2001:db8:1::1000-2001:db8:1::1000",
    )
    .replace(
        "rapid-commit = true",
        "rapid-commit = true\ndecline-time = \"10m\"",
    );
    let only: Ipv6Addr = "2001:db8:1::1000".parse().unwrap();

    let svc = Service::start_with(&state, &text, Clock::tokio_at(T0));
    let port = svc.port;
    tokio::task::spawn_blocking(move || {
        let r = Relay::new(port);
        let rep = solicit_request(&r, 1);
        assert_eq!(address(&rep).unwrap().0, only);
        // a failed DAD: the client declines it
        let mut dec = client(MessageType::Decline, 1, &[], Some(vec![ia_addr(only)]));
        dec.opts_mut().insert(DhcpOption::ServerId(server_id(&rep)));
        assert_eq!(r.exchange(&dec).msg_type(), MessageType::Reply);
    })
    .await
    .unwrap();
    svc.stop().await;
    let recs: Vec<Lease6> = read_records(&state).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].state, LeaseState::Declined);
    assert_eq!(recs[0].expires, T0 + 600);

    // a restart replays the quarantine: nobody gets the address for the rest of the ten minutes
    let svc = Service::start_with(&state, &text, Clock::tokio_at(T0 + 60));
    let port = svc.port;
    let status = tokio::task::spawn_blocking(move || {
        let r = Relay::new(port);
        let adv = r.exchange(&client(MessageType::Solicit, 2, &[136], Some(vec![])));
        (address(&adv), ia_status(&adv))
    })
    .await
    .unwrap();
    assert_eq!(status, (None, Some(2)), "NoAddrsAvail while quarantined");
    tokio::time::advance(Duration::from_secs(600 - 60)).await;
    let got = tokio::task::spawn_blocking(move || {
        let r = Relay::new(port);
        address(&r.exchange(&client(MessageType::Solicit, 2, &[136], Some(vec![])))).map(|a| a.0)
    })
    .await
    .unwrap();
    assert_eq!(got, Some(only), "free again once the quarantine is over");
    tokio::time::timeout(HANG, svc.stop()).await.unwrap();
}

fn journal_lines(state: &Path) -> usize {
    std::fs::read_to_string(state.join(JOURNAL_FILE))
        .unwrap()
        .lines()
        .count()
}

#[tokio::test(start_paused = true)]
async fn housekeeping_compacts_the_journal_once_expired_bindings_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_path_buf();
    // 2,600 bindings written 4 times each: 10,400 records, 4 per live binding, below the
    // compaction threshold (more than 10,000 records and more than 4 per live binding)
    let lease = |i: u32, expires: u64, state: LeaseState| Lease6 {
        addr: Ipv6Addr::from(0x2001_0db8_0002_u128 << 80 | u128::from(i)),
        duid: vec![0, 3, 0, 1, 2, 0, 0, 0, (i >> 8) as u8, i as u8],
        iaid: 1,
        mac: None,
        expires,
        state,
    };
    {
        let (mut j, _) = Journal::<Lease6>::open(&state).unwrap();
        for round in 0..4u64 {
            // the odd half expires 100 s after T0; the even half is bound for a year, and a
            // tenth of it declined (quarantines are live records too)
            let recs: Vec<Lease6> = (0..2600)
                .map(|i| match i % 20 {
                    x if x % 2 == 1 => lease(i, T0 + 100, LeaseState::Bound),
                    0 => lease(i, T0 + 31_536_000 + round, LeaseState::Declined),
                    _ => lease(i, T0 + 31_536_000 + round, LeaseState::Bound),
                })
                .collect();
            j.append(&recs).unwrap();
        }
    }
    assert_eq!(journal_lines(&state), 10_400);
    let svc = Service::start_with(&state, &config_text(&state, r#""lo""#), Clock::tokio_at(T0));
    let port = svc.port;
    // one housekeeping round with nothing to sweep; the Reply after it was queued behind any
    // compaction the round would have asked for
    tokio::time::advance(server::HOUSEKEEPING_INTERVAL).await;
    let a = tokio::task::spawn_blocking(move || address(&solicit_request(&Relay::new(port), 1)))
        .await
        .unwrap()
        .expect("bound")
        .0;
    assert_eq!(journal_lines(&state), 10_401, "no compaction yet");
    // a day after the odd half expired, the sweep forgets them: 1,301 live bindings
    tokio::time::advance(Duration::from_secs(100 + server::KEEP_EXPIRED_SECS + 60)).await;
    let until = std::time::Instant::now() + HANG;
    while journal_lines(&state) != 1301 {
        assert!(
            std::time::Instant::now() < until,
            "not compacted: {} lines",
            journal_lines(&state)
        );
        tokio::time::advance(server::HOUSEKEEPING_INTERVAL).await;
        tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(20)))
            .await
            .unwrap();
    }
    let live: Vec<Lease6> = read_records(&state).unwrap();
    assert!(live.iter().any(|l| l.addr == a), "the new binding is kept");
    assert_eq!(
        live.iter()
            .filter(|l| l.state == LeaseState::Declined)
            .count(),
        130,
        "quarantines survive compaction"
    );
    assert!(live.iter().all(|l| l.expires > T0 + 100));
    tokio::time::timeout(HANG, svc.stop()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_turns_dhcp6_off_and_back_on_from_its_journal() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_path_buf();
    let on = config_text(&state, r#""lo""#);
    let off = on[..on.find("[dhcp6]").unwrap()].to_owned();
    let load = |t: &str| config::load_str(Path::new("t.toml"), t).unwrap();
    let socket = UdpSocket::bind("[::1]:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    let bound = Bound {
        dhcp6: Some(Bound6::new(vec!["lo".into()], socket).unwrap()),
        ..Bound::default()
    };
    let ctx = ServiceContext::new(
        Published::new(Snapshot::read(load(&on), 0)),
        Events::new(None),
        state.clone(),
        sztp_redirector::metrics::Metrics::new(),
    );
    let mut sup = Supervisor::start(bound, ctx, CancellationToken::new());
    assert_eq!(sup.running(), [ServiceName::Dhcp6]);
    // a device binds, then declines its address: the quarantine is only in the journal
    let declined = tokio::task::spawn_blocking(move || {
        let r = Relay::new(port);
        let rep = solicit_request(&r, 1);
        let (a, _, _) = address(&rep).unwrap();
        let mut dec = client(MessageType::Decline, 1, &[], Some(vec![ia_addr(a)]));
        dec.opts_mut().insert(DhcpOption::ServerId(server_id(&rep)));
        r.exchange(&dec);
        a
    })
    .await
    .unwrap();

    sup.reload(load(&off)).await.unwrap();
    assert!(sup.running().is_empty(), "dhcp6 stopped and awaited");
    assert!(sup.local_addrs(ServiceName::Dhcp6).is_empty());
    let silent = tokio::task::spawn_blocking(move || {
        let r = Relay::new(port);
        r.sock
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        r.send(
            &r.forward(
                &client(MessageType::InformationRequest, 3, &[], None)
                    .to_vec()
                    .unwrap(),
                link(),
            ),
        );
        r.recv()
    })
    .await
    .unwrap();
    assert!(silent.is_none(), "the old socket is closed");

    // back on: bound anew by the reload ([::]:0 joined on lo), journal replayed
    sup.reload(load(
        &on.replace("rapid-commit = true", "rapid-commit = true\nport = 0"),
    ))
    .await
    .unwrap();
    assert_eq!(sup.running(), [ServiceName::Dhcp6]);
    let addrs = sup.local_addrs(ServiceName::Dhcp6);
    assert_eq!(addrs.len(), 1);
    let port = addrs[0].port();
    assert_ne!(port, 0);
    let again = tokio::task::spawn_blocking(move || {
        address(&solicit_request(&Relay::new(port), 1)).unwrap().0
    })
    .await
    .unwrap();
    assert_ne!(again, declined, "the quarantine came back from the journal");
    tokio::time::timeout(HANG, sup.drain(HANG))
        .await
        .unwrap()
        .unwrap();
}
