//! One fuzz input through the DNS request paths (unicast and mDNS), with the answers checked
//! the way a strict resolver and an mDNS cache would read them. Shared by the libFuzzer target
//! (`fuzz_targets/dns.rs`) and the seed replay under `cargo test` (`tests/dns_fuzz_seeds.rs`).
//!
//! Input: the first octet picks the path and the query's source, the rest is the datagram.
//! - bits 0-1: 0 unicast UDP, 1 unicast TCP, 2 and 3 mDNS;
//! - bit 2: source port 5353 (mDNS querier) or 40000 (legacy / ordinary client);
//! - bits 3-4: source 127.0.0.1, 192.0.2.7 (served subnet), 203.0.113.9 (elsewhere), fe80::7.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::OnceLock;

use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::{LowerName, RData, RecordType};
use hickory_server::net::xfer::Protocol;
use hickory_server::server::Request;
use sztp_redirector::config::load_str;
use sztp_redirector::dns::handler::{self, Outcome, QueryMeta};
use sztp_redirector::dns::mdns::{self, Destination, MdnsMeta, MdnsState, LEGACY_TTL, MAX_MESSAGE};
use sztp_redirector::dns::records::{is_sztp_name, RecordSet};
use sztp_redirector::dns::server::{encode_answer, formerr};
use sztp_redirector::journal::DnsTransport;
use sztp_redirector::sztp::conveyed::decode_unsigned_redirect;

const CONFIG: &str = r#"
[[bootstrap-server]]
name = "owner-primary"
uri = "https://sztp.owner.example.com"

[[bootstrap-server]]
name = "owner-backup"
uri = "https://[2001:db8::10]:8443"

[[bootstrap-server]]
name = "long"
uri = "https://sztp-1.bootstrap.site-a.example.com:8443"

[redirect-server]
listen = ["127.0.0.1:8443"]
advertise = "https://192.0.2.1:8443"

[[rule]]
name = "direct"
match.serial = ["D*"]
redirect-to = ["owner-primary", "owner-backup", "long"]
via = "direct"

[[rule]]
name = "default"
redirect-to = ["owner-primary"]

[[device]]
serial = "SN123"

[[device]]
serial = "D1"

[[device]]
serial = "Dx-long-serial-0123456789"
redirect-to = ["long", "owner-backup"]

[dhcp4]
interfaces = ["eth1"]

[[dhcp4.subnet]]
subnet = "192.0.2.0/24"
domain-name = "example.com"

[dns]
listen = ["127.0.0.1:53"]
zones = ["example.com", "sub.example.com"]
forwarders = ["127.0.0.1:5301"]
hosts = { "sztp.owner.example.com" = ["192.0.2.10"], "outside.test" = ["192.0.2.11"] }
"#;

fn records() -> &'static RecordSet {
    static SET: OnceLock<RecordSet> = OnceLock::new();
    SET.get_or_init(|| {
        let c = load_str(Path::new("fuzz.toml"), CONFIG).expect("fuzz fixture config");
        RecordSet::build(&c, &c.policy(), 1, "appliance")
    })
}

thread_local! {
    static MDNS: RefCell<(MdnsState, u64)> = RefCell::new((MdnsState::default(), 0));
}

fn source(sel: u8) -> SocketAddr {
    let port = if sel & 0x04 != 0 { 5353 } else { 40000 };
    let ip = match (sel >> 3) & 0x03 {
        0 => "127.0.0.1",
        1 => "192.0.2.7",
        2 => "203.0.113.9",
        _ => "fe80::7",
    };
    SocketAddr::new(ip.parse().unwrap(), port)
}

/// Runs one input; panics on any violated invariant.
pub(crate) fn check(data: &[u8]) {
    let Some((&sel, packet)) = data.split_first() else {
        return;
    };
    let src = source(sel);
    match sel & 0x03 {
        0 => unicast(packet, src, Protocol::Udp),
        1 => unicast(packet, src, Protocol::Tcp),
        _ => mdns_path(packet, src),
    }
}

fn unicast(packet: &[u8], src: SocketAddr, protocol: Protocol) {
    let set = records();
    let req = match Request::from_bytes(packet.to_vec(), src, protocol) {
        Ok(r) => r,
        Err(_) => {
            if let Some(reply) = formerr(packet) {
                let m = Message::from_vec(&reply).expect("FORMERR decodes");
                assert_eq!(m.metadata.id, u16::from_be_bytes([packet[0], packet[1]]));
                assert_eq!(m.metadata.message_type, MessageType::Response);
            }
            return;
        }
    };
    let meta = QueryMeta {
        src,
        transport: if protocol == Protocol::Tcp {
            DnsTransport::Tcp
        } else {
            DnsTransport::Udp
        },
        now: 1_700_000_000,
    };
    let a = match handler::handle(set, &req, &meta) {
        Outcome::Drop => {
            assert_eq!(req.metadata.message_type, MessageType::Response);
            return;
        }
        Outcome::Forward => {
            let q = &req.queries.queries()[0];
            assert!(!is_sztp_name(q.name()), "an _sztp name was forwarded");
            assert!(
                set.zone_of(q.name()).is_none(),
                "a name of our zones was forwarded"
            );
            assert!(set.may_forward(src.ip()), "forwarded for {src}");
            return;
        }
        Outcome::Answer(a) => a,
    };
    let limit = if protocol == Protocol::Udp {
        a.edns.as_ref().map_or(512, |e| e.max_payload().max(512))
    } else {
        u16::MAX
    };
    let bytes = encode_answer(&req, &a, limit);
    assert!(
        bytes.len() <= usize::from(limit),
        "{} > {limit}",
        bytes.len()
    );
    let m = Message::from_vec(&bytes).expect("our answer decodes");
    assert_eq!(m.metadata.id, req.metadata.id);
    assert_eq!(m.metadata.message_type, MessageType::Response);
    let questions = req.queries.queries();
    if questions.len() == 1 && !m.metadata.truncation {
        let q = &questions[0];
        for r in &m.answers {
            assert_eq!(
                LowerName::new(&r.name),
                *q.name(),
                "answer for another name"
            );
            assert!(q.query_type() == RecordType::ANY || r.record_type() == q.query_type());
            if let RData::TXT(t) = &r.data {
                let whole: Vec<u8> = t.txt_data.iter().flat_map(|s| s.iter().copied()).collect();
                if let Some(der) = whole.strip_prefix(b"ci=") {
                    decode_unsigned_redirect(der).expect("ci decodes");
                }
            }
        }
    }
}

fn mdns_path(packet: &[u8], src: SocketAddr) {
    let set = records();
    let Ok(query) = Message::from_vec(packet) else {
        return;
    };
    MDNS.with(|st| {
        let mut st = st.borrow_mut();
        st.1 += 250;
        let meta = MdnsMeta {
            src,
            now_ms: st.1,
            now: 1_700_000_000,
            jitter_ms: 20 + st.1 % 101,
            addrs: vec!["192.0.2.1".parse().unwrap(), "fe80::1".parse().unwrap()],
        };
        let out = mdns::handle(set, &mut st.0, &query, &meta);
        if query.metadata.message_type != MessageType::Query {
            assert!(out.replies.is_empty(), "answered a response");
        }
        let legacy = src.port() != mdns::MDNS_PORT;
        for r in &out.replies {
            let bytes = mdns::encode(&r.message);
            assert!(!bytes.is_empty() && bytes.len() <= usize::from(MAX_MESSAGE));
            let m = Message::from_vec(&bytes).expect("our mDNS answer decodes");
            assert!(m.metadata.authoritative);
            assert!(!m.answers.is_empty());
            if legacy {
                assert_eq!(r.to, Destination::Unicast(src));
                assert_eq!(m.metadata.id, query.metadata.id);
                assert!(m
                    .all_sections()
                    .all(|x| x.ttl <= LEGACY_TTL && !x.mdns_cache_flush));
            } else {
                assert_eq!(m.metadata.id, 0);
                assert!((20..=120).contains(&r.delay_ms) || r.delay_ms == 0);
            }
        }
        if st.1 % 64_000 == 0 {
            st.0 = MdnsState::default();
        }
    });
}
