//! The DHCPv4 fuzz oracle: a fixture handler state and the invariants every reply must keep.
//! Shared by the libFuzzer target (`fuzz_targets/dhcp4.rs`) and `cargo test` (`tests/fuzz_seeds.rs`
//! in the main crate runs every committed seed through it).
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::sync::OnceLock;
use std::time::Duration;

use dhcproto::v4::{Message, MessageType, Opcode};
use dhcproto::{Decodable, Decoder};
use sztp_redirector::config::{Dhcp4, Pool4, Reservation4, Subnet4};
use sztp_redirector::dhcp::leases::LeaseTable;
use sztp_redirector::dhcp::v4::handler::{handle, Context, Outcome, RequestMeta};
use sztp_redirector::dhcp::v4::reply::message_budget;
use sztp_redirector::dhcp::v4::wire::{
    scan_options, Request, BOOTP_HEADER_LEN, MAGIC_COOKIE, OPT_END, OPT_MESSAGE_TYPE,
    OPT_RELAY_AGENT, OPT_SZTP_REDIRECT,
};
use sztp_redirector::journal::{DeviceEvent, Dhcp4Event, EventDetail};
use sztp_redirector::policy::{
    BootstrapServer, Glob, KnownDevice, MacAddr, Match, Policy, Rule, UriEncoding, UriForm, Via,
};
use sztp_redirector::sztp::redirect_list::rfc3396_wire_len;
use sztp_redirector::sztp::{decode_list, encode_list, SztpUri, OPERATION_PATH};

/// Inputs between two clears of the lease table (bounds its size and the replay history).
pub(crate) const RESET_EVERY: u64 = 256;
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
        authoritative: false,
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
                authoritative: false,
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
                authoritative: true,
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
    let mut host_port = rule(
        "host-port",
        Match {
            vendor_class: vec![Glob("fl-sztp*".into())],
            ..Match::default()
        },
        &KEA_URIS,
    );
    host_port.encoding = UriEncoding::Text;
    host_port.form = UriForm::HostPort;
    let mut excluded = rule(
        "excluded",
        Match {
            vendor_class: vec![Glob("bootz*".into())],
            ..Match::default()
        },
        &[] as &[&str],
    );
    excluded.always_send = true;
    Policy {
        rules: vec![
            excluded,
            host_port,
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

/// The handler state the inputs drive.
pub(crate) struct State {
    dhcp4: Dhcp4,
    policy: Policy,
    metas: Vec<RequestMeta>,
    leases: LeaseTable,
    now: u64,
    pub(crate) inputs: u64,
}

impl State {
    pub(crate) fn new() -> State {
        State {
            dhcp4: dhcp4(),
            policy: policy(),
            metas: metas(),
            leases: LeaseTable::default(),
            now: EPOCH,
            inputs: 0,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.leases = LeaseTable::default();
        self.now = EPOCH;
    }

    /// Handle one packet; false when it does not decode (and so touched nothing).
    pub(crate) fn step(&mut self, data: &[u8]) -> bool {
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
                    .map(|r| (r.msg_type, r.encode().len(), r.to)),
                out.commit,
                out.ignored,
                out.event.as_ref().map(|e| (
                    dhcp4_detail(e).event,
                    &e.rule,
                    &e.uris,
                    dhcp4_detail(e).encoding
                )),
            );
        }
        check(&self.dhcp4, &req, &out);
        true
    }
}

/// `DHCP4_TRACE=1`: one line per handled request on stderr (for seed and replay checks).
static TRACE: OnceLock<bool> = OnceLock::new();

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

fn dhcp4_detail(ev: &DeviceEvent) -> &Dhcp4Event {
    match &ev.detail {
        EventDetail::Dhcp4(d) => d,
        #[allow(unreachable_patterns)]
        _ => panic!("a DHCPv4 reply with a non-DHCPv4 event: {ev:?}"),
    }
}

fn in_subnet(d: &Dhcp4, a: Ipv4Addr) -> bool {
    d.subnets.iter().any(|s| s.subnet.contains(&a))
}

/// The reply's option instances in wire order (not joined, the one scanner of `wire`), and
/// whether the options end with End followed only by padding.
fn tlvs(b: &[u8]) -> (Vec<(u8, &[u8])>, bool) {
    let (instances, complete) = sztp_redirector::dhcp::v4::wire::option_instances(b)
        .unwrap_or_else(|| panic!("reply without magic cookie: {}", hex(b)));
    assert!(
        complete,
        "an option runs past the end of the reply: {}",
        hex(b)
    );
    let end = b
        .iter()
        .rposition(|&x| x != 0)
        .is_some_and(|i| b[i] == OPT_END);
    (instances, end)
}

fn is_valid_entry(u: &str) -> bool {
    SztpUri::parse(u).is_ok()
        || u.strip_suffix(OPERATION_PATH)
            .is_some_and(|a| SztpUri::parse(a).is_ok())
}

/// The fl-sztp form: what `https://` + it parses as, with an explicit port.
fn is_host_port(u: &str) -> bool {
    u.rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok_and(|p| p > 0))
        && SztpUri::parse(&format!("https://{u}")).is_ok()
}

/// Panics when `out` breaks an invariant (see the fuzz README).
pub(crate) fn check(d: &Dhcp4, req: &Request, out: &Outcome) {
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
    let bytes = reply.encode();
    let b = &bytes;
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

    // the value the handler returned is what went on the wire
    assert_eq!(
        reply.option(OPT_SZTP_REDIRECT),
        scan_options(b)
            .unwrap()
            .get(&OPT_SZTP_REDIRECT)
            .map(Vec::as_slice)
    );
    assert_eq!(
        Ipv4Addr::from(<[u8; 4]>::try_from(&b[16..20]).unwrap()),
        reply.header.yiaddr
    );

    // option 143: all instances, in order, as one bootstrap-server-list
    let p143: Vec<u8> = wire
        .iter()
        .filter(|(c, _)| *c == OPT_SZTP_REDIRECT)
        .flat_map(|(_, v)| v.iter().copied())
        .collect();
    let has_143 = wire.iter().any(|(c, _)| *c == OPT_SZTP_REDIRECT);
    let ev = out.event.as_ref();
    // a rule with redirect-to = [] never sends 143, even with always-send
    if ev.and_then(|e| e.rule.as_deref()) == Some("excluded") {
        assert!(
            !has_143,
            "option 143 sent to an excluded device: {}",
            hex(b)
        );
    }
    if has_143 {
        let ev = ev.expect("a reply with option 143 has an event");
        assert!(!ev.uris.is_empty(), "option 143 sent but event.uris empty");
        match dhcp4_detail(ev).encoding {
            Some(UriEncoding::Rfc8572) => {
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
            Some(UriEncoding::Text) => {
                assert_eq!(ev.uris.len(), 1, "text form carries one URI");
                assert_eq!(p143, ev.uris[0].as_bytes(), "option 143 is not event.uris");
                assert!(is_valid_entry(&ev.uris[0]) || is_host_port(&ev.uris[0]));
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
