//! The mDNS responder on a veth pair in two test namespaces, asked by real queriers:
//! python-zeroconf (QM and QU questions), a legacy one-shot querier and dig (source port ≠
//! 5353); tcpdump shows IP TTL 255, the multicast destination and the goodbye at stop.

mod common;

use std::time::Duration;

use common::dns::DnsServer;
use common::{require_root_or_skip, Capture, NetnsPair, Output};

const QUERY_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mdns/query.py");
const CLIENT_IP: &str = "198.51.100.2";

fn config(iface: &str) -> String {
    format!(
        r#"
[[bootstrap-server]]
name = "owner-primary"
uri = "https://sztp.owner.example.com"

[redirect-server]
listen = ["198.51.100.1:8443"]
advertise = "https://198.51.100.1:8443"

[[rule]]
name = "default"
redirect-to = ["owner-primary"]

[[device]]
serial = "SN123"

[dns]
listen = ["127.0.0.1:0"]
zones = ["example.com"]

[dns.mdns]
interfaces = ["{iface}"]
hostname = "sztp-appliance"
"#
    )
}

fn querier(pair: &NetnsPair, args: &[&str]) -> serde_json::Value {
    let mut v = vec!["/usr/bin/python3", QUERY_PY];
    v.extend_from_slice(args);
    let out: Output = pair.client.run(&v, Duration::from_secs(30));
    assert!(
        out.success(),
        "{args:?} got no answer ({:?})\n{}\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

#[test]
fn zeroconf_legacy_and_dig_queriers_get_rfc6762_answers() {
    if !require_root_or_skip("zeroconf_legacy_and_dig_queriers_get_rfc6762_answers") {
        return;
    }
    let pair = NetnsPair::with_client_addr("mdns", Some("198.51.100.2/24"));
    let mut cap = Capture::start(&pair.client, &pair.client_if, "udp port 5353");
    let srv = DnsServer::start_in(Some(&pair.server.name), &config(&pair.server_if));

    // QM: the SRV set comes back by multicast, with the host's address as additional data
    let srv_ans = querier(&pair, &["zc", CLIENT_IP, "_sztp._tcp.local.", "SRV", "0"]);
    let a = &srv_ans["answers"][0];
    assert_eq!(a["server"], "sztp-appliance.local.");
    assert_eq!(a["port"], 8443);
    assert_eq!(a["ttl"], 120);
    assert_eq!(a["unique"], false, "shared RRset: no cache-flush bit");
    let add = &srv_ans["additional"][0];
    assert_eq!(add["address"], "198.51.100.1");
    assert_eq!(add["unique"], true);

    // QU: the device TXT comes back by unicast
    let txt = querier(&pair, &["zc", CLIENT_IP, "SN123._sztp.local.", "TXT", "1"]);
    let t = &txt["answers"][0];
    assert_eq!(t["ttl"], 4500);
    assert_eq!(t["unique"], true);
    let text = common::unhex(t["text_hex"].as_str().unwrap());
    // zeroconf keeps the wire form: one length octet per character-string
    assert_eq!(&text[1..4], b"ci=");
    let entries = sztp_redirector::sztp::conveyed::decode_unsigned_redirect(&text[4..]).unwrap();
    assert_eq!(entries[0].address, "198.51.100.1");
    assert_eq!(entries[0].port, 8443);

    // a legacy one-shot querier to the group from an ephemeral port
    let leg = querier(&pair, &["legacy", CLIENT_IP, "_sztp._tcp.local.", "SRV"]);
    assert_eq!(leg["id"], 0x4242, "ID copied");
    assert_eq!(leg["source"][0], "198.51.100.1");
    assert_eq!(
        leg["questions"][0][0], "_sztp._tcp.local.",
        "question echoed"
    );
    assert!(leg["answers"][0]["ttl"].as_u64().unwrap() <= 10);
    assert_eq!(leg["answers"][0]["unique"], false);

    // dig unicast to port 5353 is a legacy querier too
    let out = pair.client.run(
        &[
            "dig",
            "@198.51.100.1",
            "-p",
            "5353",
            "+time=2",
            "+tries=2",
            "+norec",
            "SN123._sztp.local",
            "TXT",
        ],
        Duration::from_secs(20),
    );
    assert!(out.stdout.contains("status: NOERROR"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains(r#"\"address\":\"198.51.100.1\",\"port\":8443"#),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("10\tIN\tTXT\t\"ci=0"),
        "legacy TTL cap: {}",
        out.stdout
    );
    // unknown serial: mDNS stays silent (no negative answers)
    let out = pair.client.run(
        &[
            "dig",
            "@198.51.100.1",
            "-p",
            "5353",
            "+time=1",
            "+tries=1",
            "+norec",
            "SN999._sztp.local",
            "TXT",
        ],
        Duration::from_secs(20),
    );
    assert!(out.stdout.contains("timed out"), "{}", out.stdout);

    // our probe as a device on the client side: mDNS TXT then SRV
    let out = pair.client.run(
        &[
            common::BIN,
            "probe",
            "--mdns",
            &pair.client_if,
            "--serial",
            "SN123",
            "--wait",
            "2s",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(
            "198.51.100.1 answered: ci redirect-information\n   1. https://198.51.100.1:8443"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("1. https://sztp-appliance.local:8443 (198.51.100.1)"),
        "{}",
        out.stdout
    );

    let events = srv.events();
    let mdns: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["transport"] == "mdns").collect();
    assert!(
        mdns.iter()
            .any(|e| e["serial"] == "SN123" && e["event"] == "answered"),
        "{events:#?}"
    );
    assert!(mdns
        .iter()
        .any(|e| e["serial"] == "sn999" && e["event"] == "nxdomain"));

    srv.stop();
    let file = cap.finish();
    let rows = common::tshark_fields(
        &file,
        "ip.src == 198.51.100.1",
        &["ip.ttl", "ip.dst", "dns.resp.ttl"],
    );
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r[0] == "255"),
        "IP TTL 255 on every mDNS packet: {rows:?}"
    );
    assert!(
        rows.iter().any(|r| r[1] == "224.0.0.251"),
        "multicast answers: {rows:?}"
    );
    assert!(
        rows.iter().any(|r| r[1] == CLIENT_IP),
        "unicast answers: {rows:?}"
    );
    // the last packet is the goodbye: every record with TTL 0
    let last = rows.last().unwrap();
    assert_eq!(last[1], "224.0.0.251");
    assert!(last[2].split(',').all(|t| t == "0"), "goodbye: {last:?}");
}
