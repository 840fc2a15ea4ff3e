//! Unicast DNS logic, pure: a decoded query and the snapshot's [`RecordSet`] in, an [`Outcome`] out
//!
//! No socket, clock or randomness: the server loop passes the source, the transport and `now`
//! in [`QueryMeta`], encodes the answer and sends it, or hands the query to the forwarder.

use std::net::SocketAddr;

use hickory_proto::op::{Edns, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, LowerName, RData, Record, RecordType};
use hickory_server::zone_handler::MessageRequest;

use super::records::{is_sztp_name, serial_of, NodeKind, RecordSet};
use crate::journal::{DeviceEvent, DnsEvent, DnsKind, DnsTransport, EventDetail};

/// Where and when a query arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryMeta {
    /// The query's source address and port.
    pub src: SocketAddr,
    /// UDP or TCP (never `Mdns` here).
    pub transport: DnsTransport,
    /// Unix seconds, for the device event.
    pub now: u64,
}

/// What a query is, for the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryClass {
    /// `_sztp._tcp.<zone>` SRV (or ANY).
    Srv,
    /// `<serial>._sztp.<zone>` TXT (or ANY) for a known serial.
    DeviceTxt,
    /// `<serial>._sztp.<zone>` TXT (or ANY) for an unknown serial.
    UnknownSerial,
    /// Any other name in or out of our zones.
    Other,
    /// Not a query we answer: wrong opcode, question count, class, AXFR, EDNS version.
    Bad,
}

/// An answer to send back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The response header: ID, opcode, RD copied from the query; AA and RCODE set.
    pub metadata: Metadata,
    /// The records at the name of the query's type (all of them for ANY).
    pub answers: Vec<Record>,
    /// The zone's SOA in a negative answer (RFC 2308 §3).
    pub authorities: Vec<Record>,
    /// A/AAAA of SRV targets and NS names.
    pub additionals: Vec<Record>,
    /// The OPT record to send, present when the query had one (RFC 6891 §6.1.1). Its payload
    /// size also bounds a UDP answer, past which the encoder sets TC.
    pub edns: Option<Edns>,
    /// What the query was, for the counters.
    pub class: QueryClass,
    /// One device-journal event for a device-specific TXT query.
    pub event: Option<DeviceEvent>,
}

/// What the server loop does with a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Send this answer.
    Answer(Box<Answer>),
    /// Hand the query to `[dns] forwarders` (a name outside our zones from a source allowed to
    /// recurse).
    Forward,
    /// Send nothing (a response message: answering it could loop or reflect).
    Drop,
}

/// The response EDNS for `req`: our payload size, version 0, DO copied; and whether the
/// query asked for a version we do not speak (RFC 6891 §6.1.3: BADVERS).
fn response_edns(req: &MessageRequest) -> (Option<Edns>, bool) {
    let Some(q) = &req.edns else {
        return (None, false);
    };
    let mut e = Edns::new();
    // the encoder bounds a UDP answer by this value: the client's size, never below 512
    e.set_max_payload(q.max_payload().max(512));
    e.set_version(0);
    e.set_dnssec_ok(q.flags().dnssec_ok);
    (Some(e), q.version() > 0)
}

fn answer(
    req: &MessageRequest,
    edns: Option<Edns>,
    rcode: ResponseCode,
    class: QueryClass,
) -> Answer {
    let mut metadata = Metadata::response_from_request(&req.metadata);
    metadata.response_code = rcode;
    Answer {
        metadata,
        answers: Vec::new(),
        authorities: Vec::new(),
        additionals: Vec::new(),
        edns,
        class,
        event: None,
    }
}

fn matches_type(r: &Record, qtype: RecordType) -> bool {
    qtype == RecordType::ANY || r.record_type() == qtype
}

/// Whether a question section (its wire octets as received, which start at message offset 12)
/// holds a compression pointer into the 12-octet header, or cannot be walked. hickory-server
/// echoes the question octets verbatim in the answer, where the header differs (QR, flags,
/// counts), so such a name would read differently there (found by the `dns` fuzz target).
pub fn question_points_into_header(question: &[u8]) -> bool {
    let mut i = 0;
    while i < question.len() {
        loop {
            let Some(&b) = question.get(i) else {
                return true;
            };
            match b & 0xc0 {
                0x00 if b == 0 => {
                    i += 1;
                    break;
                }
                0x00 => i += 1 + usize::from(b),
                0xc0 => {
                    let Some(&lo) = question.get(i + 1) else {
                        return true;
                    };
                    if (usize::from(b & 0x3f) << 8 | usize::from(lo)) < 12 {
                        return true;
                    }
                    i += 2;
                    break;
                }
                _ => return true,
            }
        }
        i += 4; // QTYPE, QCLASS
    }
    false
}

/// Answers one query from `set` (RFC 1034 §4.3.2, authoritative only; RFC 8572 §4.2 names).
pub fn handle(set: &RecordSet, req: &MessageRequest, meta: &QueryMeta) -> Outcome {
    if req.metadata.message_type == MessageType::Response {
        return Outcome::Drop;
    }
    if question_points_into_header(req.queries.as_bytes()) {
        // RFC 1035 §4.1.4 pointers may only point at earlier names; one into the header reads
        // the flags, which differ in the answer: not echoed (see `echo_queries`), FORMERR
        return Outcome::Answer(Box::new(answer(
            req,
            None,
            ResponseCode::FormErr,
            QueryClass::Bad,
        )));
    }
    let (edns, bad_version) = response_edns(req);
    if bad_version {
        return Outcome::Answer(Box::new(answer(
            req,
            edns,
            ResponseCode::BADVERS,
            QueryClass::Bad,
        )));
    }
    if req.metadata.op_code != OpCode::Query {
        return Outcome::Answer(Box::new(answer(
            req,
            edns,
            ResponseCode::NotImp,
            QueryClass::Bad,
        )));
    }
    let queries = req.queries.queries();
    if queries.len() != 1 {
        return Outcome::Answer(Box::new(answer(
            req,
            edns,
            ResponseCode::FormErr,
            QueryClass::Bad,
        )));
    }
    let q = &queries[0];
    let (name, qtype) = (q.name(), q.query_type());
    let class_ok = matches!(q.query_class(), DNSClass::IN | DNSClass::ANY);
    if !class_ok || matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
        // zone transfers are refused (digest §3.6); only class IN exists here
        return Outcome::Answer(Box::new(answer(
            req,
            edns,
            ResponseCode::Refused,
            QueryClass::Bad,
        )));
    }

    let Some(zone) = set.zone_of(name) else {
        if let Some(node) = set.nodes.get(name) {
            // a `[dns] hosts` name outside our zones: answered like a hosts file, not AA
            let mut a = answer(req, edns, ResponseCode::NoError, QueryClass::Other);
            a.answers = node
                .records
                .iter()
                .filter(|r| matches_type(r, qtype))
                .cloned()
                .collect();
            return Outcome::Answer(Box::new(a));
        }
        if !is_sztp_name(name) && set.may_forward(meta.src.ip()) {
            return Outcome::Forward;
        }
        // `_sztp` names carry serial numbers and never leave; no open recursion
        let class = if is_sztp_name(name) {
            QueryClass::UnknownSerial
        } else {
            QueryClass::Other
        };
        return Outcome::Answer(Box::new(answer(req, edns, ResponseCode::Refused, class)));
    };

    let txt_query = matches!(qtype, RecordType::TXT | RecordType::ANY);
    let mut a = answer(req, edns, ResponseCode::NoError, QueryClass::Other);
    a.metadata.authoritative = true;
    match set.nodes.get(name) {
        Some(node) => {
            a.answers = node
                .records
                .iter()
                .filter(|r| matches_type(r, qtype))
                .cloned()
                .collect();
            match &node.kind {
                NodeKind::Srv if matches!(qtype, RecordType::SRV | RecordType::ANY) => {
                    a.class = QueryClass::Srv;
                }
                NodeKind::Device(d) if txt_query => {
                    a.class = QueryClass::DeviceTxt;
                    let mut ev = dns_event(meta, name, qtype, DnsKind::Answered);
                    ev.serial = Some(d.serial.clone());
                    if let EventDetail::Dns(dns) = &mut ev.detail {
                        dns.signing = Some(d.signing);
                    }
                    ev.rule = Some(d.rule.clone());
                    ev.uris = d.uris.clone();
                    a.event = Some(ev);
                }
                _ => {}
            }
        }
        None => {
            a.metadata.response_code = ResponseCode::NXDomain;
            if let Some(serial) = serial_of(name, &zone.origin) {
                a.class = QueryClass::UnknownSerial;
                if txt_query {
                    let mut ev = dns_event(meta, name, qtype, DnsKind::Nxdomain);
                    ev.serial = Some(serial);
                    a.event = Some(ev);
                }
            }
        }
    }
    if a.answers.is_empty() {
        // NXDOMAIN or NODATA: the SOA tells caches how long (RFC 2308 §3)
        a.authorities.push(zone.soa.clone());
    }
    a.additionals = additionals(set, &a.answers);
    Outcome::Answer(Box::new(a))
}

/// A/AAAA for SRV targets and NS names we know (RFC 2782, RFC 1035 §4.3.2 step 6).
fn additionals(set: &RecordSet, answers: &[Record]) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    for r in answers {
        let target = match &r.data {
            RData::SRV(s) => &s.target,
            RData::NS(ns) => &ns.0,
            _ => continue,
        };
        for rec in set.addresses(&LowerName::new(target)) {
            if !out.contains(rec) {
                out.push(rec.clone());
            }
        }
    }
    out
}

fn dns_event(meta: &QueryMeta, name: &LowerName, qtype: RecordType, kind: DnsKind) -> DeviceEvent {
    let qname = name.to_string();
    DeviceEvent {
        ts: meta.now,
        mac: None,
        duid: None,
        serial: None,
        rule: None,
        uris: Vec::new(),
        detail: EventDetail::Dns(DnsEvent {
            event: kind,
            transport: meta.transport,
            source: meta.src.ip(),
            qname: qname.strip_suffix('.').unwrap_or(&qname).to_string(),
            qtype: qtype.to_string(),
            signing: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::Name;
    use hickory_server::net::xfer::Protocol;
    use hickory_server::server::Request;
    use std::path::Path;

    const CONFIG: &str = r#"
[[bootstrap-server]]
name = "owner-primary"
uri = "https://sztp.owner.example.com"

[[bootstrap-server]]
name = "owner-backup"
uri = "https://[2001:db8::10]:8443"

[[rule]]
name = "default"
redirect-to = ["owner-primary", "owner-backup"]

[[device]]
serial = "SN123"
redirect-to = ["owner-primary"]

[dhcp4]
interfaces = ["eth1"]

[[dhcp4.subnet]]
subnet = "192.0.2.0/24"
domain-name = "example.com"

[dns]
listen = ["127.0.0.1:5300"]
zones = ["example.com"]
forwarders = ["127.0.0.1:5301"]
hosts = { "sztp.owner.example.com" = ["192.0.2.10"] }
"#;

    fn set() -> RecordSet {
        let c = load_str(Path::new("t.toml"), CONFIG).unwrap();
        RecordSet::build(&c, &c.policy(), 1, "appliance")
    }

    fn meta(src: &str) -> QueryMeta {
        QueryMeta {
            src: src.parse().unwrap(),
            transport: DnsTransport::Udp,
            now: 1_795_810_500,
        }
    }

    fn query(name: &str, qtype: RecordType, edit: impl FnOnce(&mut Message)) -> Request {
        let mut m = Message::query();
        m.metadata.id = 0x1234;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        edit(&mut m);
        Request::from_bytes(
            m.to_vec().unwrap(),
            "127.0.0.1:40000".parse().unwrap(),
            Protocol::Udp,
        )
        .unwrap()
    }

    fn run(name: &str, qtype: RecordType, src: &str) -> Outcome {
        handle(&set(), &query(name, qtype, |_| {}), &meta(src))
    }

    fn ans(o: Outcome) -> Answer {
        match o {
            Outcome::Answer(a) => *a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn srv_answer_is_authoritative_with_glue() {
        let a = ans(run(
            "_sztp._tcp.example.com.",
            RecordType::SRV,
            "192.0.2.5:1",
        ));
        assert_eq!(a.metadata.response_code, ResponseCode::NoError);
        assert!(a.metadata.authoritative);
        assert_eq!(a.metadata.id, 0x1234);
        assert_eq!(a.class, QueryClass::Srv);
        assert_eq!(a.answers.len(), 2);
        let glue: Vec<String> = a.additionals.iter().map(|r| r.to_string()).collect();
        assert_eq!(glue.len(), 2, "{glue:?}");
        assert!(a.event.is_none());
    }

    #[test]
    fn device_txt_is_answered_case_insensitively_and_journaled() {
        let a = ans(run(
            "sn123._SZTP.Example.COM.",
            RecordType::TXT,
            "192.0.2.5:1",
        ));
        assert_eq!(a.class, QueryClass::DeviceTxt);
        assert_eq!(a.answers.len(), 1);
        let ev = a.event.unwrap();
        assert_eq!(ev.serial.as_deref(), Some("SN123"));
        assert_eq!(ev.uris, ["https://sztp.owner.example.com"]);
        let EventDetail::Dns(d) = ev.detail else {
            panic!()
        };
        assert_eq!(d.event, DnsKind::Answered);
        assert_eq!(d.qname, "sn123._sztp.example.com");
        assert_eq!(d.source.to_string(), "192.0.2.5");
    }

    #[test]
    fn unknown_serial_is_nxdomain_with_soa_and_an_event() {
        let a = ans(run(
            "SN999._sztp.example.com.",
            RecordType::TXT,
            "192.0.2.5:1",
        ));
        assert_eq!(a.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(a.authorities.len(), 1);
        assert_eq!(a.authorities[0].record_type(), RecordType::SOA);
        let ev = a.event.unwrap();
        assert_eq!(ev.serial.as_deref(), Some("sn999"));
        assert!(matches!(
            ev.detail,
            EventDetail::Dns(DnsEvent {
                event: DnsKind::Nxdomain,
                ..
            })
        ));
    }

    #[test]
    fn empty_non_terminal_and_other_types_are_nodata() {
        for (name, t) in [
            ("_sztp.example.com.", RecordType::TXT),
            ("_sztp._tcp.example.com.", RecordType::A),
        ] {
            let a = ans(run(name, t, "192.0.2.5:1"));
            assert_eq!(a.metadata.response_code, ResponseCode::NoError, "{name}");
            assert!(a.answers.is_empty());
            assert_eq!(a.authorities.len(), 1);
        }
        let soa = ans(run("example.com.", RecordType::SOA, "192.0.2.5:1"));
        assert_eq!(soa.answers.len(), 1);
        let ns = ans(run("example.com.", RecordType::NS, "192.0.2.5:1"));
        assert_eq!(ns.answers.len(), 1);
        assert_eq!(ns.additionals.len(), 1, "ns glue from the listen address");
    }

    #[test]
    fn forwarding_only_for_served_sources_and_never_sztp() {
        assert_eq!(
            run("www.other.test.", RecordType::A, "192.0.2.5:1"),
            Outcome::Forward
        );
        assert_eq!(
            run("www.other.test.", RecordType::A, "127.0.0.1:1"),
            Outcome::Forward
        );
        let a = ans(run("www.other.test.", RecordType::A, "203.0.113.9:1"));
        assert_eq!(a.metadata.response_code, ResponseCode::Refused);
        let a = ans(run(
            "SN123._sztp.other.test.",
            RecordType::TXT,
            "127.0.0.1:1",
        ));
        assert_eq!(a.metadata.response_code, ResponseCode::Refused);
        let a = ans(run(
            "_sztp._tcp.other.test.",
            RecordType::SRV,
            "127.0.0.1:1",
        ));
        assert_eq!(a.metadata.response_code, ResponseCode::Refused);
    }

    #[test]
    fn transfers_classes_opcodes_and_edns_versions() {
        let a = ans(run("example.com.", RecordType::AXFR, "127.0.0.1:1"));
        assert_eq!(a.metadata.response_code, ResponseCode::Refused);
        let a = ans(run("example.com.", RecordType::IXFR, "127.0.0.1:1"));
        assert_eq!(a.metadata.response_code, ResponseCode::Refused);
        let chaos = query("version.bind.", RecordType::TXT, |m| {
            m.queries[0].set_query_class(DNSClass::CH);
        });
        let a = ans(handle(&set(), &chaos, &meta("127.0.0.1:1")));
        assert_eq!(a.metadata.response_code, ResponseCode::Refused);
        let notify = query("example.com.", RecordType::SOA, |m| {
            m.metadata.op_code = OpCode::Notify;
        });
        let a = ans(handle(&set(), &notify, &meta("127.0.0.1:1")));
        assert_eq!(a.metadata.response_code, ResponseCode::NotImp);
        let v1 = query("example.com.", RecordType::SOA, |m| {
            let mut e = Edns::new();
            e.set_version(1);
            m.set_edns(e);
        });
        let a = ans(handle(&set(), &v1, &meta("127.0.0.1:1")));
        assert_eq!(a.metadata.response_code, ResponseCode::BADVERS);
        assert!(a.edns.is_some());
        let two = query("example.com.", RecordType::SOA, |m| {
            m.add_query(Query::query(
                Name::from_ascii("a.example.com.").unwrap(),
                RecordType::A,
            ));
        });
        let a = ans(handle(&set(), &two, &meta("127.0.0.1:1")));
        assert_eq!(a.metadata.response_code, ResponseCode::FormErr);
        let resp = query("example.com.", RecordType::SOA, |m| {
            m.metadata.message_type = MessageType::Response;
        });
        assert_eq!(handle(&set(), &resp, &meta("127.0.0.1:1")), Outcome::Drop);
    }

    #[test]
    fn edns_payload_follows_the_client() {
        let q = query("_sztp._tcp.example.com.", RecordType::SRV, |m| {
            let mut e = Edns::new();
            e.set_max_payload(4096);
            m.set_edns(e);
        });
        let a = ans(handle(&set(), &q, &meta("127.0.0.1:1")));
        assert_eq!(a.edns.unwrap().max_payload(), 4096);
        assert!(ans(run("example.com.", RecordType::SOA, "127.0.0.1:1"))
            .edns
            .is_none());
    }

    #[test]
    fn a_question_pointing_into_the_header_is_formerr() {
        // one question whose name is a pointer to offset 0 (the ID octets read as labels)
        let mut packet = vec![0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
        packet.extend_from_slice(&[0xc0, 0x00, 0x00, 0x01, 0x00, 0x01]);
        assert!(question_points_into_header(&packet[12..]));
        // a plain name and one pointing at an earlier question name are fine
        let plain = [3, b'f', b'o', b'o', 0, 0, 1, 0, 1];
        assert!(!question_points_into_header(&plain));
        let mut two = plain.to_vec();
        two.extend_from_slice(&[0xc0, 12, 0, 16, 0, 1]);
        assert!(!question_points_into_header(&two));
        // truncated or reserved label types cannot be walked
        assert!(question_points_into_header(&[5, b'a']));
        assert!(question_points_into_header(&[0x40, 0]));
        let req = Request::from_bytes(packet, "127.0.0.1:40000".parse().unwrap(), Protocol::Udp)
            .expect("hickory reads it");
        let a = ans(handle(&set(), &req, &meta("127.0.0.1:1")));
        assert_eq!(a.metadata.response_code, ResponseCode::FormErr);
    }
}
