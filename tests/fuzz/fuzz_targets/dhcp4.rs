//! DHCPv4 request → handler → reply, with the reply checked the way a strict client and relay
//! would read it. The lease table persists across inputs (cleared every `RESET_EVERY` inputs), so
//! DISCOVER/REQUEST/DECLINE/RELEASE sequences build real state; `now` moves forward by each
//! request's `secs` field, so offers and leases expire.
//!
//! Any violated invariant panics. Because a finding can depend on the inputs before it, the panic
//! hook also writes the packets handled since the last reset to
//! `target/dhcp4-history-<pid>.hex` (one hex packet a line, oldest first, the crashing
//! input excluded); replay with
//! `DHCP4_REPLAY=target/dhcp4-history-<pid>.hex cargo fuzz run dhcp4 <crash-file>`;
//! `DHCP4_TRACE=1` prints one line per handled request.
#![no_main]

use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::sync::{Once, OnceLock};
use std::time::Duration;

use dhcproto::v4::{Message, MessageType, Opcode};
use dhcproto::{Decodable, Decoder};
use libfuzzer_sys::fuzz_target;
use sztp_redirector::config::{Dhcp4, Pool4, Reservation4, Subnet4};
use sztp_redirector::dhcp::leases::LeaseTable;
use sztp_redirector::dhcp::v4::handler::{handle, Context, Outcome, RequestMeta};
use sztp_redirector::dhcp::v4::reply::message_budget;
use sztp_redirector::dhcp::v4::wire::{
    scan_options, Request, BOOTP_HEADER_LEN, MAGIC_COOKIE, OPT_END, OPT_MESSAGE_TYPE, OPT_PAD,
    OPT_RELAY_AGENT, OPT_SZTP_REDIRECT,
};
use sztp_redirector::policy::{
    BootstrapServer, Glob, KnownDevice, MacAddr, Match, Policy, Rule, UriEncoding, UriForm, Via,
};
use sztp_redirector::sztp::redirect_list::rfc3396_wire_len;
use sztp_redirector::sztp::{decode_list, encode_list, SztpUri, OPERATION_PATH};

/// Inputs between two clears of the lease table (bounds its size and the replay history).
const RESET_EVERY: u64 = 256;
/// A plausible Unix time to start from; `now` only moves forward from here.
const EPOCH: u64 = 1_700_000_000;

const KEA_URIS: [&str; 2] = [
    "https://sztp1.example.test:8443",
    "https://[2001:db8::1]:8443",
];

fn six() -> Vec<String> {
    (1..=6)
        .map(|n| format!("https://sztp-{n}.bootstrap.site-a.example.com:8443"))
        .collect()
}

fn servers<S: AsRef<str>>(uris: &[S]) -> Vec<BootstrapServer> {
    uris.iter()
        .enumerate()
        .map(|(i, u)| BootstrapServer {
            name: format!("bs{i}"),
            uri: SztpUri::parse(u.as_ref()).expect("fixture URI"),
        })
        .collect()
}

fn rule<S: AsRef<str>>(name: &str, matches: Match, uris: &[S]) -> Rule {
    Rule {
        name: name.into(),
        matches,
        redirect_to: servers(uris),
        via: Some(Via::Direct),
        encoding: UriEncoding::Rfc8572,
        form: UriForm::Authority,
        always_send: false,
    }
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("fixture address")
}

/// The handler tests' fixture, widened: two subnets, reservations inside and outside a pool.
fn dhcp4() -> Dhcp4 {
    Dhcp4 {
        interfaces: vec!["eth1".into(), "eth2".into(), "eth3".into()],
        port: 67,
        client_port: 68,
        server_id: None,
        offer_time: Duration::from_secs(60),
        decline_time: Duration::from_secs(3600),
        subnets: vec![
            Subnet4 {
                subnet: "198.51.100.0/24".parse().unwrap(),
                pools: vec![
                    Pool4 {
                        start: ip("198.51.100.100"),
                        end: ip("198.51.100.102"),
                    },
                    Pool4 {
                        start: ip("198.51.100.200"),
                        end: ip("198.51.100.219"),
                    },
                ],
                routers: vec![ip("198.51.100.1")],
                dns_servers: vec![ip("198.51.100.1")],
                domain_name: Some("staging.example.com".into()),
                domain_search: vec!["staging.example.com".into()],
                lease_time: Duration::from_secs(3600),
                renewal_time: None,
                rebinding_time: None,
                reservations: vec![
                    Reservation4 {
                        mac: MacAddr([2, 0, 0, 0, 0, 0x42]),
                        address: ip("198.51.100.50"),
                        hostname: None,
                    },
                    Reservation4 {
                        mac: MacAddr([2, 0, 0, 0, 0, 0x43]),
                        address: ip("198.51.100.201"),
                        hostname: Some("in-pool".into()),
                    },
                ],
            },
            Subnet4 {
                subnet: "192.0.2.0/25".parse().unwrap(),
                pools: vec![Pool4 {
                    start: ip("192.0.2.10"),
                    end: ip("192.0.2.40"),
                }],
                routers: vec![],
                dns_servers: vec![ip("192.0.2.53"), ip("192.0.2.54")],
                domain_name: None,
                domain_search: vec!["a.example".into(), "b.example.org.".into()],
                lease_time: Duration::from_secs(600),
                renewal_time: Some(Duration::from_secs(200)),
                rebinding_time: Some(Duration::from_secs(500)),
                reservations: vec![],
            },
        ],
    }
}

fn policy() -> Policy {
    let six = six();
    let mut text = rule(
        "legacy-text",
        Match {
            vendor_class: vec![Glob("legacy*".into())],
            ..Match::default()
        },
        &KEA_URIS,
    );
    text.encoding = UriEncoding::Text;
    let mut opi = rule(
        "opi",
        Match {
            user_class: vec![Glob("opi*".into())],
            ..Match::default()
        },
        &KEA_URIS,
    );
    opi.form = UriForm::OperationUrl;
    let mut always = rule(
        "always",
        Match {
            mac: vec!["02:00:00:00:01:00/40".parse().unwrap()],
            ..Match::default()
        },
        &six,
    );
    always.always_send = true;
    let mut relayed = rule(
        "relayed",
        Match {
            circuit_id: vec![Glob("g*".into())],
            ..Match::default()
        },
        &six[..3],
    );
    relayed.via = None; // the redirect server's advertised URI
    let mut client_id_text = rule(
        "client-id-text",
        Match {
            client_id: vec![Glob("sn-*".into())],
            ..Match::default()
        },
        &six,
    );
    client_id_text.encoding = UriEncoding::Text;
    Policy {
        rules: vec![
            text,
            opi,
            always,
            relayed,
            client_id_text,
            rule("default", Match::default(), &six),
        ],
        devices: vec![KnownDevice {
            serial: None,
            mac: Some(MacAddr([2, 0, 0, 0, 0, 0x77])),
            redirect_to: servers(&["https://owner.example.org"]),
        }],
        advertise: Some(SztpUri::parse("https://redirect.example.net:8443").unwrap()),
    }
}

/// Receiving interfaces, chosen by the request's `hops` byte.
fn metas() -> Vec<RequestMeta> {
    let meta = |name: &str, addrs: &[&str]| RequestMeta {
        interface: name.into(),
        iface_addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        src: "0.0.0.0:68".parse().unwrap(),
    };
    vec![
        meta("eth1", &["198.51.100.1/24"]),
        meta("eth2", &["10.0.0.1/8", "192.0.2.1/25"]),
        meta("eth3", &["203.0.113.1/24"]),
    ]
}

struct State {
    dhcp4: Dhcp4,
    policy: Policy,
    metas: Vec<RequestMeta>,
    leases: LeaseTable,
    now: u64,
    inputs: u64,
}

impl State {
    fn new() -> State {
        State {
            dhcp4: dhcp4(),
            policy: policy(),
            metas: metas(),
            leases: LeaseTable::default(),
            now: EPOCH,
            inputs: 0,
        }
    }

    fn reset(&mut self) {
        self.leases = LeaseTable::default();
        self.now = EPOCH;
    }

    /// Handle one packet; false when it does not decode (and so touched nothing).
    fn step(&mut self, data: &[u8]) -> bool {
        let Ok(req) = Request::decode(data) else {
            return false;
        };
        // `now` from the input: the `secs` field moves the clock forward
        self.now += u64::from(u16::from_be_bytes([data[8], data[9]]));
        let meta = &self.metas[usize::from(data[3]) % self.metas.len()];
        let ctx = Context {
            dhcp4: &self.dhcp4,
            policy: &self.policy,
        };
        let out = handle(&ctx, &mut self.leases, &req, meta, self.now);
        if *TRACE.get_or_init(|| std::env::var_os("DHCP4_TRACE").is_some()) {
            eprintln!(
                "dhcp4: {:?} on {} at {} -> {:?} {:?} ignored={:?} event={:?}",
                req.msg_type,
                meta.interface,
                self.now,
                out.reply
                    .as_ref()
                    .map(|r| (r.msg_type, r.bytes.len(), r.to)),
                out.commit,
                out.ignored,
                out.event
                    .as_ref()
                    .map(|e| (e.kind, &e.rule, &e.uris, &e.encoding)),
            );
        }
        check(&self.dhcp4, &req, &out);
        true
    }
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::new());
    /// Decodable packets handled since the last reset, for the panic hook's replay file.
    static HISTORY: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

static INIT: Once = Once::new();
/// `DHCP4_TRACE=1`: one line per handled request on stderr (for seed and replay checks).
static TRACE: OnceLock<bool> = OnceLock::new();

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// Chain a hook in front of libFuzzer's (which aborts), and replay `DHCP4_REPLAY` if set.
fn init() {
    let next = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let lines = HISTORY.with(|h| {
            h.try_borrow()
                .map(|h| h.iter().map(|p| hex(p) + "\n").collect::<String>())
                .unwrap_or_default()
        });
        // not in artifacts/: `cargo fuzz tmin` takes the newest file there for its result
        let dir = if std::path::Path::new("target").is_dir() {
            "target/"
        } else {
            ""
        };
        let path = format!("{dir}dhcp4-history-{}.hex", std::process::id());
        if !lines.is_empty() && std::fs::write(&path, &lines).is_ok() {
            eprintln!(
                "dhcp4: {} packet(s) since the last lease-table reset written to {path}",
                lines.lines().count()
            );
        }
        next(info);
    }));
    if let Ok(path) = std::env::var("DHCP4_REPLAY") {
        let text = std::fs::read_to_string(&path).expect("DHCP4_REPLAY file");
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let packet = unhex(line.trim());
                s.step(&packet);
                HISTORY.with(|h| h.borrow_mut().push(packet));
            }
        });
    }
}

fuzz_target!(|data: &[u8]| {
    INIT.call_once(init);
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.inputs += 1;
        if s.inputs % RESET_EVERY == 0 {
            s.reset();
            HISTORY.with(|h| h.borrow_mut().clear());
        }
        if s.step(data) {
            HISTORY.with(|h| h.borrow_mut().push(data.to_vec()));
        }
    });
});

fn in_subnet(d: &Dhcp4, a: Ipv4Addr) -> bool {
    d.subnets.iter().any(|s| s.subnet.contains(&a))
}

/// The reply's option instances in wire order (not joined), and whether End was found.
fn tlvs(b: &[u8]) -> (Vec<(u8, &[u8])>, bool) {
    let mut out = Vec::new();
    let mut rest = &b[BOOTP_HEADER_LEN + 4..];
    while let Some((&code, r)) = rest.split_first() {
        match code {
            OPT_PAD => rest = r,
            OPT_END => return (out, true),
            _ => {
                let (&len, r) = r.split_first().expect("option without length");
                let data = r.get(..usize::from(len)).expect("option past the end");
                out.push((code, data));
                rest = &r[usize::from(len)..];
            }
        }
    }
    (out, false)
}

fn is_valid_entry(u: &str) -> bool {
    SztpUri::parse(u).is_ok()
        || u.strip_suffix(OPERATION_PATH)
            .is_some_and(|a| SztpUri::parse(a).is_ok())
}

fn check(d: &Dhcp4, req: &Request, out: &Outcome) {
    for l in &out.commit {
        assert!(
            in_subnet(d, l.addr),
            "commit for {} outside every configured subnet: {l:?}",
            l.addr
        );
    }
    let Some(reply) = &out.reply else {
        return;
    };
    let b = &reply.bytes;
    let budget = message_budget(req.max_message_size());
    // What the client receives: the agent that added option 82 strips it (RFC 3046 §2.2).
    // (Finding F1 was a long option 82 costing the client its budget; fixed in the handler.)
    let client_len = b.len()
        - req
            .relay_agent_info()
            .map_or(0, |r| rfc3396_wire_len(r.len()));
    assert!(
        client_len <= budget,
        "{:?} of {} octets exceeds the budget of {budget} (option 57: {:?}); reply {}",
        reply.msg_type,
        b.len(),
        req.opt(57),
        hex(b)
    );
    assert!(b.len() >= BOOTP_HEADER_LEN + 4 && b[BOOTP_HEADER_LEN..][..4] == MAGIC_COOKIE);
    let opts = scan_options(b).unwrap_or_else(|| panic!("reply does not scan: {}", hex(b)));
    let msg = Message::decode(&mut Decoder::new(b))
        .unwrap_or_else(|e| panic!("dhcproto cannot decode the reply ({e}): {}", hex(b)));
    assert_eq!(b[0], 2, "not a BOOTREPLY");
    assert_eq!(msg.opcode(), Opcode::BootReply);
    assert_eq!(msg.xid(), req.msg.xid(), "xid changed");
    assert_eq!(
        opts.get(&OPT_MESSAGE_TYPE).map(Vec::as_slice),
        Some(&[u8::from(reply.msg_type)][..]),
        "option 53 disagrees with the reply's type"
    );
    let yiaddr = msg.yiaddr();
    if reply.msg_type == MessageType::Offer || !yiaddr.is_unspecified() {
        assert!(in_subnet(d, yiaddr), "yiaddr {yiaddr} in no subnet");
    }

    let (wire, end) = tlvs(b);
    assert!(end, "reply has no End option: {}", hex(b));
    assert_eq!(
        wire.first().map(|(c, _)| *c),
        Some(OPT_MESSAGE_TYPE),
        "message type is not the first option"
    );

    // option 143: all instances, in order, as one bootstrap-server-list
    let p143: Vec<u8> = wire
        .iter()
        .filter(|(c, _)| *c == OPT_SZTP_REDIRECT)
        .flat_map(|(_, v)| v.iter().copied())
        .collect();
    let has_143 = wire.iter().any(|(c, _)| *c == OPT_SZTP_REDIRECT);
    let ev = out.event.as_ref();
    if has_143 {
        let ev = ev.expect("a reply with option 143 has an event");
        assert!(!ev.uris.is_empty(), "option 143 sent but event.uris empty");
        match ev.encoding {
            Some("rfc8572") => {
                let got = decode_list(&p143);
                assert!(!got.truncated, "option 143 truncated: {}", hex(&p143));
                assert_eq!(p143, encode_list(&ev.uris), "option 143 is not event.uris");
                assert!(
                    ev.uris.iter().all(|u| is_valid_entry(u)),
                    "invalid URI in {:?}",
                    ev.uris
                );
                // entries a strict client ignores may only be OPI operation URLs
                assert!(
                    got.ignored.iter().all(|u| is_valid_entry(u)),
                    "ignored entries {:?}",
                    got.ignored
                );
                assert_eq!(got.uris.len() + got.ignored.len(), ev.uris.len());
            }
            Some("text") => {
                assert_eq!(ev.uris.len(), 1, "text form carries one URI");
                assert_eq!(p143, ev.uris[0].as_bytes(), "option 143 is not event.uris");
                assert!(is_valid_entry(&ev.uris[0]));
            }
            other => panic!("option 143 sent with encoding {other:?}"),
        }
        assert_eq!(opts.get(&OPT_SZTP_REDIRECT), Some(&p143));
    } else if let Some(ev) = ev {
        assert!(
            ev.uris.is_empty(),
            "event.uris {:?} but no option 143",
            ev.uris
        );
    }

    // option 82: echoed byte for byte, last before End
    let r82: Vec<u8> = wire
        .iter()
        .filter(|(c, _)| *c == OPT_RELAY_AGENT)
        .flat_map(|(_, v)| v.iter().copied())
        .collect();
    let has_82 = wire.iter().any(|(c, _)| *c == OPT_RELAY_AGENT);
    match (req.relay_agent_info(), has_82) {
        (Some(q), true) => {
            assert_eq!(q, &r82[..], "option 82 not echoed verbatim: {}", hex(b));
            let first = wire
                .iter()
                .position(|(c, _)| *c == OPT_RELAY_AGENT)
                .unwrap();
            assert!(
                wire[first..].iter().all(|(c, _)| *c == OPT_RELAY_AGENT),
                "option 82 is not last before End: {}",
                hex(b)
            );
        }
        (None, true) => panic!("option 82 in a reply to a request without it"),
        (Some(_), false) => panic!("option 82 not echoed: {}", hex(b)),
        (None, false) => {}
    }
}
