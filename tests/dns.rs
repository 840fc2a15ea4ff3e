//! The DNS service on loopback (no privileges), driven by real clients: dig and kdig over UDP
//! and TCP, openssl asn1parse on the TXT value, dnsmasq as the forwarding upstream, and raw
//! malformed datagrams.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::dns::{unescape_txt, DnsServer};
use common::{run_cmd, Output};
use sztp_redirector::dns::DnsStats;

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

[dns]
listen = ["127.0.0.1:0"]
zones = ["example.com"]
ttl = "1h"
hosts = { "sztp.owner.example.com" = ["192.0.2.10", "2001:db8::11"] }
"#;

fn dig(srv: &DnsServer, args: &[&str]) -> Output {
    let port = srv.port();
    let mut v = vec![
        "dig",
        "@127.0.0.1",
        "-p",
        &port,
        "+norec",
        "+time=2",
        "+tries=1",
    ];
    v.extend_from_slice(args);
    let mut out = run_cmd(&v, Duration::from_secs(20));
    assert!(out.success(), "{v:?}: {}\n{}", out.stdout, out.stderr);
    out.stdout = squeeze(&out.stdout);
    out
}

/// Runs of spaces and tabs inside each line become one space (dig separates fields by tabs).
fn squeeze(text: &str) -> String {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn kdig(srv: &DnsServer, args: &[&str]) -> Output {
    let port = srv.port();
    let mut v = vec![
        "kdig",
        "@127.0.0.1",
        "-p",
        &port,
        "+norec",
        "+time=2",
        "+retry=0",
    ];
    v.extend_from_slice(args);
    let mut out = run_cmd(&v, Duration::from_secs(20));
    assert!(out.success(), "{v:?}: {}\n{}", out.stdout, out.stderr);
    out.stdout = squeeze(&out.stdout);
    out
}

/// `status: NXDOMAIN` and the `flags:` of dig's or kdig's header line.
fn status_flags(text: &str) -> (String, String) {
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("")
        .trim()
        .to_string();
    let flags = text
        .split("flags: ")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .unwrap_or("")
        .trim()
        .to_string();
    (status, flags)
}

fn lines(out: &Output) -> Vec<String> {
    let mut v: Vec<String> = out.stdout.lines().map(|l| l.trim().to_string()).collect();
    v.sort();
    v
}

#[test]
fn srv_txt_soa_nxdomain_refused_over_udp_and_tcp_with_dig_and_kdig() {
    let srv = DnsServer::start(CONFIG);
    for tcp in [false, true] {
        let t = if tcp { "+tcp" } else { "+notcp" };
        let out = dig(&srv, &[t, "_sztp._tcp.example.com", "SRV"]);
        let (status, flags) = status_flags(&out.stdout);
        assert_eq!(status, "NOERROR");
        assert!(flags.contains("aa"), "{flags}");
        assert!(out
            .stdout
            .contains("_sztp._tcp.example.com. 3600 IN SRV 0 0 443 sztp.owner.example.com."));
        assert!(out.stdout.contains(
            "_sztp._tcp.example.com. 3600 IN SRV 1 0 8443 ip-2001-db8-0-0-0-0-0-10.example.com."
        ));
        // glue for both targets in the additional section
        assert!(out
            .stdout
            .contains("sztp.owner.example.com. 3600 IN A 192.0.2.10"));
        assert!(out
            .stdout
            .contains("ip-2001-db8-0-0-0-0-0-10.example.com. 3600 IN AAAA 2001:db8::10"));

        let out = kdig(&srv, &[t, "_sztp._tcp.example.com", "SRV", "+short"]);
        assert_eq!(
            lines(&out),
            [
                "0 0 443 sztp.owner.example.com.",
                "1 0 8443 ip-2001-db8-0-0-0-0-0-10.example.com."
            ]
        );
        let out = kdig(&srv, &[t, "sn123._SZTP.example.com", "TXT"]);
        assert!(out.stdout.contains("status: NOERROR"), "{}", out.stdout);
        assert!(out.stdout.contains("\"ci=0\\129\\136"), "{}", out.stdout);

        let out = dig(&srv, &[t, "example.com", "SOA", "+short"]);
        assert!(
            out.stdout
                .starts_with("ns.example.com. hostmaster.example.com. "),
            "{}",
            out.stdout
        );
        let out = dig(&srv, &[t, "SN999._sztp.example.com", "TXT"]);
        let (status, flags) = status_flags(&out.stdout);
        assert_eq!(status, "NXDOMAIN");
        assert!(flags.contains("aa"));
        assert!(
            out.stdout.contains("IN SOA ns.example.com."),
            "negative answer carries the SOA"
        );
        let out = kdig(&srv, &[t, "www.elsewhere.test", "A"]);
        assert!(out.stdout.contains("status: REFUSED"), "{}", out.stdout);
    }
    // zone transfers are refused (dig over TCP)
    let out = run_cmd(
        &[
            "dig",
            "@127.0.0.1",
            "-p",
            &srv.port(),
            "example.com",
            "AXFR",
            "+time=2",
            "+tries=1",
        ],
        Duration::from_secs(20),
    );
    assert!(out.stdout.contains("Transfer failed"), "{}", out.stdout);

    let events = srv.events();
    let txt: Vec<&serde_json::Value> = events.iter().filter(|e| e["proto"] == "dns").collect();
    assert_eq!(txt.len(), 4, "{events:#?}");
    assert_eq!(txt[0]["serial"], "SN123");
    assert_eq!(txt[0]["event"], "answered");
    assert_eq!(txt[0]["transport"], "udp");
    assert_eq!(txt[0]["source"], "127.0.0.1");
    assert_eq!(txt[0]["uris"][0], "https://sztp.owner.example.com");
    assert_eq!(txt[1]["event"], "nxdomain");
    assert_eq!(txt[1]["serial"], "sn999");
    assert_eq!(txt[2]["transport"], "tcp");
    assert_eq!(DnsStats::get(&srv.stats.srv_queries), 4);
    srv.stop();
}

#[test]
fn txt_value_is_a_cms_content_info_that_openssl_parses() {
    let srv = DnsServer::start(CONFIG);
    let out = dig(&srv, &["SN123._sztp.example.com", "TXT", "+short"]);
    let value = unescape_txt(&out.stdout);
    assert_eq!(&value[..3], b"ci=");
    let der = &value[3..];
    assert_eq!(der.len(), 139, "digest TV5");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("ci.der");
    std::fs::write(&f, der).unwrap();
    let out = run_cmd(
        &[
            "openssl",
            "asn1parse",
            "-inform",
            "DER",
            "-in",
            f.to_str().unwrap(),
        ],
        Duration::from_secs(20),
    );
    assert!(out.success(), "{}", out.stderr);
    assert!(
        out.stdout.contains(":1.2.840.113549.1.9.16.1.43"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(
        r#":{"ietf-sztp-conveyed-info:redirect-information":{"bootstrap-server":[{"address":"sztp.owner.example.com","port":443}]}}"#
    ), "{}", out.stdout);
    srv.stop();
}

#[test]
fn an_answer_too_big_for_udp_sets_tc_and_clients_retry_over_tcp() {
    // eight long direct targets: the ci= value needs two character-strings and ~600 octets
    let mut text = String::new();
    let mut names = Vec::new();
    for i in 0..8 {
        text.push_str(&format!(
            "[[bootstrap-server]]\nname = \"bs{i}\"\nuri = \"https://sztp-{i}.bootstrap.site-a.example.com:8443\"\n\n"
        ));
        names.push(format!("\"bs{i}\""));
    }
    text.push_str(&format!(
        "[[rule]]\nname = \"default\"\nredirect-to = [{}]\nvia = \"direct\"\n\n[[device]]\nserial = \"BIG1\"\n\n[dns]\nlisten = [\"127.0.0.1:0\"]\nzones = [\"example.com\"]\n",
        names.join(", ")
    ));
    let srv = DnsServer::start(&text);
    let out = dig(
        &srv,
        &["+noedns", "+ignore", "BIG1._sztp.example.com", "TXT"],
    );
    let (status, flags) = status_flags(&out.stdout);
    assert_eq!(status, "NOERROR");
    assert!(
        flags.contains("tc"),
        "no EDNS: 512 octets, truncated: {flags}"
    );
    // dig and kdig retry over TCP by themselves and get the whole record
    let out = dig(
        &srv,
        &["+noedns", "BIG1._sztp.example.com", "TXT", "+short"],
    );
    let value = unescape_txt(&out.stdout);
    assert!(value.len() > 512, "{}", value.len());
    let entries = sztp_redirector::sztp::conveyed::decode_unsigned_redirect(&value[3..]).unwrap();
    assert_eq!(entries.len(), 8);
    let out = kdig(&srv, &["+noedns", "BIG1._sztp.example.com", "TXT"]);
    assert!(
        out.stdout.contains("TCP"),
        "kdig fell back to TCP: {}",
        out.stdout
    );
    // a 4096-octet EDNS buffer takes it in one datagram
    let out = dig(
        &srv,
        &["+bufsize=4096", "+ignore", "BIG1._sztp.example.com", "TXT"],
    );
    assert!(!status_flags(&out.stdout).1.contains("tc"));
    assert!(DnsStats::get(&srv.stats.truncated) >= 2);
    srv.stop();
}

#[test]
fn malformed_queries_get_formerr_or_nothing_and_the_server_goes_on() {
    let srv = DnsServer::start(CONFIG);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    sock.connect(srv.addr).unwrap();
    // a header promising one question, then garbage
    let mut bad = vec![0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    bad.extend_from_slice(&[0xc0, 0xff, 0x3f, 0x41]);
    sock.send(&bad).unwrap();
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("a FORMERR answer");
    assert_eq!(&buf[..2], &[0xab, 0xcd], "ID copied");
    assert_eq!(buf[3] & 0x0f, 1, "RCODE FORMERR");
    assert!(buf[2] & 0x80 != 0, "QR set");
    assert_eq!(n, 12);
    // too short for a header, and a response: no answer at all
    sock.send(&[1, 2, 3]).unwrap();
    let mut resp = bad.clone();
    resp[2] |= 0x80;
    sock.send(&resp).unwrap();
    // a label pointing at itself (compression loop)
    let lp = [
        0x11, 0x11, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1,
    ];
    sock.send(&lp).unwrap();
    let n = sock
        .recv(&mut buf)
        .expect("FORMERR for the compression loop");
    assert_eq!(&buf[..2], &[0x11, 0x11]);
    assert_eq!(buf[3] & 0x0f, 1);
    assert!(n >= 12);
    // still serving
    let out = dig(&srv, &["_sztp._tcp.example.com", "SRV", "+short"]);
    assert_eq!(out.stdout.lines().count(), 2);
    // garbage over TCP (a length prefix longer than what follows, then close)
    {
        use std::io::Write;
        let mut t = std::net::TcpStream::connect(srv.addr).unwrap();
        t.write_all(&[0x00, 0x40, 1, 2, 3]).unwrap();
    }
    let out = kdig(&srv, &["+tcp", "_sztp._tcp.example.com", "SRV", "+short"]);
    assert_eq!(out.stdout.lines().count(), 2);
    let until = Instant::now() + Duration::from_secs(5);
    while DnsStats::get(&srv.stats.malformed) < 4 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(DnsStats::get(&srv.stats.malformed), 4);
    srv.stop();
}

#[test]
fn a_reload_changes_the_answers_and_cancel_ends_every_task() {
    let srv = DnsServer::start(CONFIG);
    let before = dig(&srv, &["_sztp._tcp.example.com", "SRV", "+short"]);
    assert_eq!(before.stdout.lines().count(), 2);
    let soa1 = dig(&srv, &["example.com", "SOA", "+short"]).stdout;
    let changed = CONFIG.replace(
        "redirect-to = [\"owner-primary\", \"owner-backup\"]",
        "redirect-to = [\"owner-backup\"]",
    );
    srv.reload(&changed);
    let after = dig(&srv, &["_sztp._tcp.example.com", "SRV", "+short"]);
    assert_eq!(
        after.stdout.trim(),
        "0 0 8443 ip-2001-db8-0-0-0-0-0-10.example.com."
    );
    let soa2 = dig(&srv, &["example.com", "SOA", "+short"]).stdout;
    let serial = |s: &str| s.split_whitespace().nth(2).unwrap().parse::<u32>().unwrap();
    assert!(serial(&soa2) > serial(&soa1), "{soa1} -> {soa2}");
    // an open TCP connection must not hold the shutdown
    let _idle = std::net::TcpStream::connect(srv.addr).unwrap();
    srv.stop();
}

/// dnsmasq on loopback, answering one name itself and logging every query it gets.
struct Dnsmasq {
    child: common::Child,
    port: u16,
}

impl Dnsmasq {
    fn start() -> Dnsmasq {
        // dnsmasq takes a port number, not a socket: find a free one and retry on a race
        for _ in 0..5 {
            let port = {
                let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                s.local_addr().unwrap().port()
            };
            let p = format!("--port={port}");
            let child = common::Child::spawn(
                &[
                    "dnsmasq",
                    "--no-daemon",
                    "--conf-file=/dev/null",
                    "--no-resolv",
                    "--no-hosts",
                    "--listen-address=127.0.0.1",
                    "--bind-interfaces",
                    &p,
                    "--log-queries",
                    "--log-facility=-",
                    "--pid-file=",
                    "--address=/upstream.test/192.0.2.99",
                ],
                Duration::from_secs(120),
            );
            if child.wait_for_lines("started, version", 1, Duration::from_secs(10)) {
                return Dnsmasq { child, port };
            }
        }
        panic!("dnsmasq did not start");
    }
}

#[test]
fn forwarding_goes_to_dnsmasq_and_sztp_names_never_leave() {
    let up = Dnsmasq::start();
    let config = CONFIG.replace(
        "ttl = \"1h\"",
        &format!("ttl = \"1h\"\nforwarders = [\"127.0.0.1:{}\"]", up.port),
    );
    let srv = DnsServer::start(&config);
    let out = dig(&srv, &["+rec", "www.upstream.test", "A", "+short"]);
    assert_eq!(out.stdout.trim(), "192.0.2.99");
    let out = kdig(&srv, &["+rec", "+tcp", "ftp.upstream.test", "A", "+short"]);
    assert_eq!(out.stdout.trim(), "192.0.2.99");
    for (name, t) in [
        ("SN123._sztp.other.test", "TXT"),
        ("_sztp._tcp.other.test", "SRV"),
        ("SN999._sztp.example.com", "TXT"),
        ("x.SN1._SZTP.upstream.test", "A"),
    ] {
        let out = dig(&srv, &["+rec", name, t]);
        let (status, _) = status_flags(&out.stdout);
        assert!(
            status == "REFUSED" || status == "NXDOMAIN",
            "{name}: {status}"
        );
    }
    assert!(
        up.child
            .wait_for_lines("query[A] ftp.upstream.test", 1, Duration::from_secs(5)),
        "{}",
        up.child.output_text()
    );
    let log = up.child.output_text().to_lowercase();
    assert!(
        log.contains("query[a] www.upstream.test from 127.0.0.1"),
        "{log}"
    );
    assert!(
        !log.contains("_sztp"),
        "an _sztp name reached the upstream:\n{log}"
    );
    assert_eq!(DnsStats::get(&srv.stats.forwarded), 2);
    srv.stop();
}

#[test]
fn probe_makes_the_device_lookups_and_decodes_the_ci_cms() {
    let srv = DnsServer::start(CONFIG);
    let server = srv.addr.to_string();
    let out = run_cmd(
        &[
            common::BIN,
            "probe",
            "--dns-server",
            &server,
            "--domain",
            "example.com",
            "--serial",
            "SN123",
            "--wait",
            "2s",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("1. TXT SN123._sztp.example.com dns @"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(
            "127.0.0.1 answered: ci redirect-information\n   1. https://sztp.owner.example.com:443"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("2. SRV _sztp._tcp.example.com"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("   2. https://ip-2001-db8-0-0-0-0-0-10.example.com:8443 (2001:db8::10)"),
        "{}",
        out.stdout
    );
    let out = run_cmd(
        &[
            common::BIN,
            "probe",
            "--dns-server",
            &server,
            "--domain",
            "example.com",
            "--serial",
            "NOPE",
            "--json",
        ],
        Duration::from_secs(30),
    );
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["steps"][0]["result"], "empty");
    assert_eq!(v["steps"][0]["rcode"], "Non-Existent Domain");
    assert_eq!(v["steps"][1]["result"], "srv");
    assert_eq!(out.status.code(), Some(0), "the SRV step found servers");
    srv.stop();
}

#[test]
fn a_repeated_query_gets_the_same_answer_with_its_own_id_and_case_and_is_journaled_again() {
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RecordType};
    let srv = DnsServer::start(CONFIG);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    sock.connect(srv.addr).unwrap();
    let ask = |id: u16, name: &str| -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = id;
        m.add_query(Query::query(
            Name::from_ascii(name).unwrap(),
            RecordType::TXT,
        ));
        sock.send(&m.to_vec().unwrap()).unwrap();
        let mut buf = [0u8; 1500];
        let n = sock.recv(&mut buf).unwrap();
        buf[..n].to_vec()
    };
    let first = ask(1, "sn123._sztp.example.com.");
    let second = ask(2, "SN123._SZTP.Example.Com.");
    let third = ask(3, "SN999._sztp.example.com.");
    let fourth = ask(4, "sn999._sztp.example.com.");
    assert_eq!(&second[..2], &[0, 2]);
    assert_eq!(
        &second[12..37],
        b"\x05SN123\x05_SZTP\x07Example\x03Com\x00",
        "question as asked"
    );
    assert_eq!(first[2..12], second[2..12]);
    assert_eq!(first[37..], second[37..], "same answer");
    let m = Message::from_vec(&second).unwrap();
    assert_eq!(m.answers.len(), 1);
    assert_eq!(&fourth[..2], &[0, 4]);
    assert_eq!(third[2..12], fourth[2..12]);
    assert_eq!(third[37..], fourth[37..]);
    assert_eq!(&fourth[12..18], b"\x05sn999", "question as asked");
    let events: Vec<serde_json::Value> = srv
        .events()
        .into_iter()
        .filter(|e| e["proto"] == "dns")
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["answered", "answered", "nxdomain", "nxdomain"]);
    assert_eq!(DnsStats::get(&srv.stats.txt_answered), 2);
    assert_eq!(DnsStats::get(&srv.stats.txt_nxdomain), 2);
    srv.stop();
}
