//! Replays the committed DNS fuzz seeds (`tests/fuzz/seeds/dns/`) through the same checks the
//! libFuzzer target runs, so every `cargo test` exercises them. `--ignored write_seeds`
//! regenerates the seeds.

#[path = "fuzz/oracle/dns.rs"]
mod dns_check;

use std::path::PathBuf;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RecordType};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/seeds/dns")
}

#[test]
fn every_seed_passes_the_fuzz_checks() {
    let mut n = 0;
    for e in std::fs::read_dir(dir()).unwrap() {
        let p = e.unwrap().path();
        let data = std::fs::read(&p).unwrap();
        dns_check::check(&data);
        // every seed also through every path and source
        for sel in 0..32u8 {
            let mut d = data.clone();
            if let Some(first) = d.first_mut() {
                *first = sel;
            }
            dns_check::check(&d);
        }
        n += 1;
    }
    assert!(n >= 20, "only {n} seeds");
}

fn q(name: &str, t: RecordType, edit: impl FnOnce(&mut Message)) -> Vec<u8> {
    let mut m = Message::new(0x2a2a, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    edit(&mut m);
    m.to_vec().unwrap()
}

#[test]
#[ignore = "writes tests/fuzz/seeds/dns"]
fn write_seeds() {
    let d = dir();
    std::fs::create_dir_all(&d).unwrap();
    let edns = |size: u16, version: u8| {
        move |m: &mut Message| {
            let mut e = Edns::new();
            e.set_max_payload(size);
            e.set_version(version);
            m.set_edns(e);
        }
    };
    let mut seeds: Vec<(&str, u8, Vec<u8>)> = vec![
        (
            "udp-srv",
            0x08,
            q("_sztp._tcp.example.com.", RecordType::SRV, |_| {}),
        ),
        (
            "udp-txt-known",
            0x08,
            q("SN123._sztp.example.com.", RecordType::TXT, |_| {}),
        ),
        (
            "udp-txt-long",
            0x08,
            q(
                "Dx-long-serial-0123456789._sztp.example.com.",
                RecordType::TXT,
                |_| {},
            ),
        ),
        (
            "udp-txt-unknown",
            0x08,
            q("nope._sztp.sub.example.com.", RecordType::TXT, |_| {}),
        ),
        (
            "udp-any-apex",
            0x00,
            q("example.com.", RecordType::ANY, |_| {}),
        ),
        (
            "udp-ns",
            0x00,
            q("example.com.", RecordType::NS, edns(4096, 0)),
        ),
        (
            "udp-axfr",
            0x00,
            q("example.com.", RecordType::AXFR, |_| {}),
        ),
        (
            "udp-edns-v1",
            0x00,
            q("example.com.", RecordType::SOA, edns(1232, 1)),
        ),
        (
            "udp-edns-small",
            0x00,
            q("D1._sztp.example.com.", RecordType::TXT, edns(100, 0)),
        ),
        (
            "udp-forward",
            0x08,
            q("www.elsewhere.test.", RecordType::A, |_| {}),
        ),
        (
            "udp-forward-refused",
            0x10,
            q("www.elsewhere.test.", RecordType::A, |_| {}),
        ),
        (
            "udp-sztp-outside",
            0x00,
            q("SN123._sztp.elsewhere.test.", RecordType::TXT, |_| {}),
        ),
        (
            "udp-hosts-outside",
            0x00,
            q("outside.test.", RecordType::A, |_| {}),
        ),
        (
            "udp-chaos",
            0x00,
            q("version.bind.", RecordType::TXT, |m| {
                m.queries[0].set_query_class(DNSClass::CH);
            }),
        ),
        (
            "udp-notify",
            0x00,
            q("example.com.", RecordType::SOA, |m| {
                m.metadata.op_code = OpCode::Notify;
            }),
        ),
        (
            "udp-response",
            0x00,
            q("example.com.", RecordType::SOA, |m| {
                m.metadata.message_type = MessageType::Response;
            }),
        ),
        (
            "tcp-txt-long",
            0x01,
            q("D1._sztp.example.com.", RecordType::TXT, |_| {}),
        ),
        (
            "mdns-qm-srv",
            0x06,
            q("_sztp._tcp.local.", RecordType::SRV, |m| m.metadata.id = 0),
        ),
        (
            "mdns-qu-txt",
            0x06,
            q("SN123._sztp.local.", RecordType::TXT, |m| {
                m.metadata.id = 0;
                m.queries[0].set_mdns_unicast_response(true);
            }),
        ),
        (
            "mdns-legacy-srv",
            0x02,
            q("_sztp._tcp.local.", RecordType::SRV, |_| {}),
        ),
        (
            "mdns-host-a",
            0x06,
            q("appliance.local.", RecordType::A, |_| {}),
        ),
        (
            "mdns-ip-name",
            0x06,
            q("ip-2001-db8-0-0-0-0-0-10.local.", RecordType::ANY, |_| {}),
        ),
        (
            "mdns-unknown-serial",
            0x06,
            q("X9._sztp.local.", RecordType::TXT, |_| {}),
        ),
    ];
    // mDNS with a known answer, and two questions in one query
    let mut ka = Message::new(0, MessageType::Query, OpCode::Query);
    ka.add_query(Query::query(
        Name::from_ascii("_sztp._tcp.local.").unwrap(),
        RecordType::SRV,
    ));
    ka.add_query(Query::query(
        Name::from_ascii("D1._sztp.local.").unwrap(),
        RecordType::TXT,
    ));
    seeds.push(("mdns-two-questions", 0x06, ka.to_vec().unwrap()));
    // malformed: a header then a compression loop, a truncated name, a bare header
    seeds.push((
        "bad-loop",
        0x00,
        vec![
            0x11, 0x11, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1,
        ],
    ));
    seeds.push((
        "bad-short-name",
        0x00,
        vec![0x22, 0x22, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x3f, b'a'],
    ));
    seeds.push((
        "bad-header-only",
        0x02,
        vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0],
    ));
    for (name, sel, packet) in seeds {
        let mut data = vec![sel];
        data.extend_from_slice(&packet);
        std::fs::write(d.join(name), data).unwrap();
    }
}
