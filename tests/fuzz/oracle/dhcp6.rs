//! The DHCPv6 fuzz oracle, shared by the `dhcp6` fuzz target and `cargo test`
//! (`tests/fuzz_seeds.rs` runs every seed through it).
//!
//! Input: one selector octet (which arrival: link, unicast, relay, MTU, `server-unicast` on or
//! off), two octets of seconds the clock moves forward, then the datagram. The bindings persist
//! across inputs (the caller resets them), so Solicit/Request/Renew/Decline/Release sequences
//! build real state. Every violated invariant panics.
#![allow(dead_code)]

use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::Duration;

use dhcproto::v6::{Message, MessageType};
use dhcproto::{Decodable, Decoder};
use sztp_redirector::config::{Dhcp6, Pool6, Reservation6, Reservation6Key, Subnet6};
use sztp_redirector::dhcp::leases::LeaseState;
use sztp_redirector::dhcp::v6::bindings::Bindings;
use sztp_redirector::dhcp::v6::handler::{handle, Context, Outcome, RequestMeta};
use sztp_redirector::dhcp::v6::wire::{
    self, options, Received, IP_UDP_HEADERS, MIN_LINK_MTU, OPT_CLIENTID, OPT_IAADDR, OPT_IA_NA,
    OPT_INTERFACE_ID, OPT_RELAY_MSG, OPT_SERVERID, OPT_V6_SZTP_REDIRECT, RELAY_HEADER_LEN,
};
use sztp_redirector::journal::{DeviceEvent, Dhcp6Event, EventDetail};
use sztp_redirector::policy::{
    BootstrapServer, Glob, KnownDevice, MacAddr, Match, Policy, Rule, UriEncoding, UriForm, Via,
};
use sztp_redirector::sztp::{decode_list, encode_list, SztpUri, OPERATION_PATH};

/// A plausible Unix time to start from; `now` only moves forward from here.
pub(crate) const EPOCH: u64 = 1_700_000_000;
pub(crate) const SERVER_DUID: [u8; 14] = [0, 1, 0, 1, 0x2a, 0, 0, 0, 2, 0, 0, 0, 0, 1];

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

/// 40 URIs of 52 octets: more than a 1280 link holds, so the list must be cut to fit.
pub(crate) fn many() -> Vec<String> {
    (1..=40)
        .map(|i| format!("https://sztp-{i:03}.bootstrap.site-a.example.com:8443"))
        .collect()
}

pub(crate) fn policy() -> Policy {
    let many = many();
    let mut text = rule(
        "text",
        Match {
            vendor_class: vec![Glob("legacy*".into())],
            ..Match::default()
        },
        &many[..2],
    );
    text.encoding = UriEncoding::Text;
    let mut opi = rule(
        "opi",
        Match {
            user_class: vec![Glob("opi*".into())],
            ..Match::default()
        },
        &many[..3],
    );
    opi.form = UriForm::OperationUrl;
    let mut always = rule(
        "always",
        Match {
            mac: vec!["02:00:00:00:00:a0/44".parse().unwrap()],
            ..Match::default()
        },
        &[
            "https://sztp1.example.test:8443",
            "https://[2001:db8::1]:8443",
        ],
    );
    always.always_send = true;
    let mut relayed = rule(
        "port",
        Match {
            circuit_id: vec![Glob("ge-*".into())],
            ..Match::default()
        },
        &many[..5],
    );
    relayed.via = None; // the redirect server's advertised URI
    let excluded = rule(
        "bootz",
        Match {
            vendor_class: vec![Glob("bootz*".into())],
            ..Match::default()
        },
        &Vec::<String>::new(),
    );
    Policy {
        rules: vec![
            text,
            opi,
            always,
            relayed,
            excluded,
            rule("default", Match::default(), &many),
        ],
        devices: vec![KnownDevice {
            serial: None,
            mac: Some(MacAddr([2, 0, 0, 0, 0, 0x77])),
            redirect_to: servers(&["https://owner.example.org"]),
        }],
        advertise: Some(SztpUri::parse("https://redirect.example.net:8443").unwrap()),
    }
}

fn addr(s: &str) -> Ipv6Addr {
    s.parse().expect("fixture address")
}

/// Two subnets: a whole /64 on eth1 with reservations, and a four-address pool behind
/// relays (so exhaustion is reachable).
pub(crate) fn dhcp6(server_unicast: bool) -> Dhcp6 {
    Dhcp6 {
        interfaces: vec!["eth1".into(), "eth2".into(), "eth3".into()],
        port: 547,
        rapid_commit: true,
        server_unicast: server_unicast.then(|| addr("2001:db8:1::1")),
        offer_time: Duration::from_secs(60),
        decline_time: Duration::from_secs(3600),
        subnets: vec![
            Subnet6 {
                prefix: "2001:db8:1::/64".parse().unwrap(),
                pools: vec![Pool6 {
                    start: addr("2001:db8:1::"),
                    end: addr("2001:db8:1::ffff:ffff:ffff:ffff"),
                }],
                dns_servers: vec![addr("2001:db8:1::1")],
                domain_search: vec!["staging.example.com".into(), "example.com".into()],
                preferred_lifetime: Duration::from_secs(1800),
                valid_lifetime: Duration::from_secs(3600),
                renewal_time: None,
                rebinding_time: None,
                interface: Some("eth1".into()),
                reservations: vec![
                    Reservation6 {
                        key: Reservation6Key::Mac(MacAddr([2, 0, 0, 0, 0, 0x42])),
                        address: addr("2001:db8:1::42"),
                    },
                    Reservation6 {
                        key: Reservation6Key::Duid(vec![0, 2, 0, 0, 0, 9, b'x']),
                        address: addr("2001:db8:1::99"),
                    },
                ],
            },
            Subnet6 {
                prefix: "2001:db8:2::/64".parse().unwrap(),
                pools: vec![Pool6 {
                    start: addr("2001:db8:2::100"),
                    end: addr("2001:db8:2::103"),
                }],
                dns_servers: vec![],
                domain_search: vec![],
                preferred_lifetime: Duration::from_secs(600),
                valid_lifetime: Duration::from_secs(900),
                renewal_time: Some(Duration::from_secs(100)),
                rebinding_time: Some(Duration::from_secs(200)),
                interface: None,
                reservations: vec![Reservation6 {
                    key: Reservation6Key::Mac(MacAddr([2, 0, 0, 0, 0, 0x43])),
                    address: addr("2001:db8:2::43"),
                }],
            },
        ],
    }
}

/// Arrivals, chosen by the selector octet.
pub(crate) fn metas() -> Vec<RequestMeta> {
    let m = |iface: &str, prefixes: &[&str], mtu: u32, src: &str, dst: &str| RequestMeta {
        interface: iface.into(),
        iface_addrs: prefixes.iter().map(|p| p.parse().unwrap()).collect(),
        link_mtu: mtu,
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
    };
    vec![
        m(
            "eth1",
            &["2001:db8:1::1/64"],
            1500,
            "[fe80::1%2]:546",
            "ff02::1:2",
        ),
        m(
            "eth1",
            &["2001:db8:1::1/64"],
            1500,
            "[fe80::1%2]:546",
            "2001:db8:1::1",
        ),
        m(
            "eth2",
            &["2001:db8:9::1/64"],
            9000,
            "[2001:db8:9::2]:547",
            "2001:db8:9::1",
        ),
        m("eth3", &[], 1280, "[fe80::9%4]:40000", "ff02::1:2"),
        m(
            "eth2",
            &["2001:db8:2::1/64"],
            1280,
            "[fe80::2%3]:546",
            "ff02::1:2",
        ),
    ]
}

pub(crate) struct State {
    pub(crate) dhcp6: [Dhcp6; 2],
    pub(crate) policy: Policy,
    pub(crate) metas: Vec<RequestMeta>,
    pub(crate) bindings: Bindings,
    pub(crate) now: u64,
    pub(crate) trace: bool,
}

impl State {
    pub(crate) fn new() -> State {
        State {
            dhcp6: [dhcp6(false), dhcp6(true)],
            policy: policy(),
            metas: metas(),
            bindings: Bindings::default(),
            now: EPOCH,
            trace: false,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.bindings = Bindings::default();
        self.now = EPOCH;
    }

    /// Handles one input; false when it is too short or does not decode.
    pub(crate) fn step(&mut self, data: &[u8]) -> bool {
        let [sel, t0, t1, packet @ ..] = data else {
            return false;
        };
        let Ok(req) = wire::decode(packet) else {
            return false;
        };
        self.now += u64::from(u16::from_be_bytes([*t0, *t1]));
        let meta = &self.metas[usize::from(*sel) % self.metas.len()];
        let d = &self.dhcp6[usize::from(*sel >> 7)];
        let ctx = Context {
            dhcp6: d,
            policy: &self.policy,
            server_duid: &SERVER_DUID,
        };
        let out = handle(&ctx, &mut self.bindings, &req, meta, self.now);
        if self.trace {
            eprintln!(
                "dhcp6: {:?} relays={} on {} at {} -> {:?} commits={:?} ignored={:?} event={:?}",
                req.msg_type,
                req.relays.len(),
                meta.interface,
                self.now,
                out.reply
                    .as_ref()
                    .map(|r| (r.msg_type, r.bytes.len(), r.to)),
                out.commit,
                out.ignored,
                out.event
                    .as_ref()
                    .map(|e| (d6(e).event, &e.rule, e.uris.len(), d6(e).status)),
            );
        }
        check(d, &self.policy, &req, meta, &out, self.now);
        true
    }
}

impl Default for State {
    fn default() -> State {
        State::new()
    }
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn is_valid_entry(u: &str) -> bool {
    SztpUri::parse(u).is_ok()
        || u.strip_suffix(OPERATION_PATH)
            .is_some_and(|a| SztpUri::parse(a).is_ok())
}

fn in_subnet(d: &Dhcp6, a: Ipv6Addr) -> bool {
    d.subnets.iter().any(|s| s.prefix.contains(&a))
}

fn assignable(d: &Dhcp6, a: Ipv6Addr) -> bool {
    d.subnets.iter().any(|s| {
        s.pools.iter().any(|p| p.contains(a)) || s.reservations.iter().any(|r| r.address == a)
    })
}

/// Unwraps one Relay-reply per relay of the request, checking each mirrors its Relay-forward.
fn unwrap_relays<'a>(mut b: &'a [u8], req: &Received) -> &'a [u8] {
    for hop in &req.relays {
        assert!(b.len() >= RELAY_HEADER_LEN, "short Relay-reply: {}", hex(b));
        assert_eq!(b[0], 13, "not a Relay-reply: {}", hex(b));
        assert_eq!(b[1], hop.hop_count, "hop-count changed");
        assert_eq!(
            &b[2..18],
            &hop.link_address.octets(),
            "link-address changed"
        );
        assert_eq!(
            &b[18..34],
            &hop.peer_address.octets(),
            "peer-address changed"
        );
        let opts = options(&b[RELAY_HEADER_LEN..])
            .unwrap_or_else(|e| panic!("Relay-reply options do not frame ({e:?}): {}", hex(b)));
        let ifid: Vec<&[u8]> = opts
            .iter()
            .filter(|(c, _)| *c == OPT_INTERFACE_ID)
            .map(|(_, v)| *v)
            .collect();
        match &hop.interface_id {
            Some(id) => assert_eq!(ifid, [&id[..]], "interface-id not echoed verbatim"),
            None => assert!(ifid.is_empty(), "interface-id invented"),
        }
        let msgs: Vec<&[u8]> = opts
            .iter()
            .filter(|(c, _)| *c == OPT_RELAY_MSG)
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(msgs.len(), 1, "a Relay-reply carries one relay message");
        b = msgs[0];
    }
    b
}

pub(crate) fn check(
    d: &Dhcp6,
    policy: &Policy,
    req: &Received,
    meta: &RequestMeta,
    out: &Outcome,
    now: u64,
) {
    for l in &out.commit {
        assert!(in_subnet(d, l.addr), "commit outside every prefix: {l:?}");
        if l.state == LeaseState::Bound {
            assert!(
                l.expires > now,
                "a binding committed already expired: {l:?}"
            );
            assert!(
                assignable(d, l.addr),
                "bound outside pools and reservations: {l:?}"
            );
        }
        assert_eq!(
            Some(&l.duid[..]),
            req.client_id(),
            "commit for another DUID"
        );
    }
    let Some(reply) = &out.reply else {
        assert!(out.commit.is_empty(), "records committed without a reply");
        return;
    };
    // destination
    match req.relays.first() {
        None => assert_eq!(reply.to, meta.src, "a direct reply goes back to the client"),
        Some(outer) => {
            let port = if outer.relay_source_port {
                meta.src.port()
            } else {
                547
            };
            assert_eq!(
                reply.to,
                SocketAddrV6::new(*meta.src.ip(), port, 0, meta.src.scope_id()),
                "a relayed reply goes to the relay"
            );
        }
    }
    let client = unwrap_relays(&reply.bytes, req);
    assert!(client.len() >= 4);
    let t = MessageType::from(client[0]);
    assert_eq!(t, reply.msg_type);
    match t {
        MessageType::Advertise => assert_eq!(req.msg_type, MessageType::Solicit),
        MessageType::Reply => {}
        other => panic!("the server sent {other:?}"),
    }
    assert_eq!(&client[1..4], &req.xid, "transaction id changed");
    let opts = options(&client[4..])
        .unwrap_or_else(|e| panic!("reply options do not frame ({e:?}): {}", hex(client)));
    // an independent decoder reads every option too (it stops silently at one it cannot read)
    let msg = Message::decode(&mut Decoder::new(client))
        .unwrap_or_else(|e| panic!("dhcproto cannot decode the reply ({e}): {}", hex(client)));
    assert_eq!(
        msg.opts().iter().count(),
        opts.len(),
        "dhcproto reads a different option list: {}",
        hex(client)
    );
    let all = |code: u16| -> Vec<&[u8]> {
        opts.iter()
            .filter(|(c, _)| *c == code)
            .map(|(_, v)| *v)
            .collect()
    };
    assert_eq!(all(OPT_SERVERID), [&SERVER_DUID[..]], "one server id, ours");
    match req.client_id() {
        Some(cid) => assert_eq!(all(OPT_CLIENTID), [cid], "client id echoed"),
        None => assert!(all(OPT_CLIENTID).is_empty()),
    }
    for ia in all(OPT_IA_NA) {
        assert!(ia.len() >= 12);
        for (c, v) in options(&ia[12..]).expect("IA_NA options frame") {
            if c == OPT_IAADDR {
                let a = Ipv6Addr::from(<[u8; 16]>::try_from(&v[..16]).unwrap());
                let valid = u32::from_be_bytes(v[20..24].try_into().unwrap());
                if valid > 0 {
                    assert!(
                        assignable(d, a),
                        "{a} handed out, outside pools and reservations"
                    );
                }
            }
        }
    }
    let p136 = all(OPT_V6_SZTP_REDIRECT);
    assert!(p136.len() <= 1, "option 136 is a singleton (RFC 8572 §8.2)");
    let ev = out.event.as_ref();
    if let Some(v) = p136.first() {
        let ev = ev.expect("a reply with option 136 has an event");
        let rendering = ev
            .rule
            .as_deref()
            .and_then(|r| policy.rule(r))
            .map(|r| r.always_send);
        assert!(
            d6(ev).requested_136 || rendering == Some(true),
            "option 136 sent unrequested"
        );
        assert!(!ev.uris.is_empty());
        match d6(ev).encoding.as_deref() {
            Some("rfc8572") => {
                let got = decode_list(v);
                assert!(!got.truncated, "option 136 truncated");
                assert_eq!(
                    *v,
                    &encode_list(&ev.uris)[..],
                    "option 136 is not event.uris"
                );
                assert!(ev.uris.iter().all(|u| is_valid_entry(u)));
            }
            Some("text") => {
                assert_eq!(ev.uris.len(), 1);
                assert_eq!(*v, ev.uris[0].as_bytes());
            }
            other => panic!("option 136 with encoding {other:?}"),
        }
        let mtu = if req.relays.is_empty() {
            meta.link_mtu.max(MIN_LINK_MTU)
        } else {
            MIN_LINK_MTU
        };
        assert!(
            client.len() <= (mtu - IP_UDP_HEADERS) as usize,
            "{} octets with option 136 exceed the client's link ({mtu})",
            client.len()
        );
    } else if let Some(ev) = ev {
        assert!(
            ev.uris.is_empty(),
            "event.uris {:?} but no option 136",
            ev.uris
        );
    }
}

/// The DHCPv6 part of a handler event.
fn d6(ev: &DeviceEvent) -> &Dhcp6Event {
    match &ev.detail {
        EventDetail::Dhcp6(x) => x,
        other => panic!("the DHCPv6 handler made a {other:?} event"),
    }
}
