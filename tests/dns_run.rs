//! The real `sztp-redirector run` serving DNS: dig and kdig against the address it logs
//! (`listening for dns on udp 127.0.0.1:PORT`, port 0 in the file), SIGHUP that changes a rule
//! changes the SRV and TXT answers, a reload that moves `[dns] listen` keeps the address it
//! still lists, `[dns]` turned off and on by reloads, and (root) the mDNS responder announcing,
//! re-announcing after a SIGHUP and saying goodbye at SIGTERM, seen by tcpdump and
//! python-zeroconf in a namespace pair.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::dns::Daemon;
use common::{require_root_or_skip, run_cmd, Capture, NetnsPair, Output, STATE_DIR};

fn config(rule_target: &str, dns: &str) -> String {
    format!(
        r#"
[appliance]
state-dir = "{STATE_DIR}"

[[bootstrap-server]]
name = "owner-primary"
uri = "https://sztp.owner.example.com"

[[bootstrap-server]]
name = "owner-backup"
uri = "https://[2001:db8::10]:8443"

[[rule]]
name = "default"
redirect-to = ["{rule_target}"]

[[device]]
serial = "SN123"
{dns}"#
    )
}

const DNS_LOOPBACK: &str = r#"
[dns]
listen = ["127.0.0.1:0"]
zones = ["example.com"]
ttl = "1h"
hosts = { "sztp.owner.example.com" = ["192.0.2.10"] }
"#;

/// dig or kdig at `addr` with `args`; must reach the server.
fn ask(tool: &str, addr: SocketAddr, args: &[&str]) -> String {
    let at = format!("@{}", addr.ip());
    let port = addr.port().to_string();
    let tries = if tool == "kdig" {
        "+retry=0"
    } else {
        "+tries=1"
    };
    let mut v = vec![tool, at.as_str(), "-p", &port, "+norec", "+time=2", tries];
    v.extend_from_slice(args);
    let out: Output = run_cmd(&v, Duration::from_secs(20));
    assert!(out.success(), "{v:?}: {}\n{}", out.stdout, out.stderr);
    // dig separates fields by tabs, kdig by runs of spaces
    out.stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// dig at `addr`, expecting no server there: `connection refused` (UDP: ICMP port unreachable;
/// TCP: RST).
fn refused(addr: SocketAddr, tcp: bool) -> bool {
    let port = addr.port().to_string();
    let at = format!("@{}", addr.ip());
    let t = if tcp { "+tcp" } else { "+notcp" };
    let out = run_cmd(
        &[
            "dig",
            &at,
            "-p",
            &port,
            t,
            "+time=2",
            "+tries=1",
            "example.com",
            "SOA",
        ],
        Duration::from_secs(20),
    );
    !out.success() && out.stdout.contains("connection refused")
}

fn soa_serial(addr: SocketAddr) -> u64 {
    let out = ask("dig", addr, &["example.com", "SOA", "+short"]);
    out.split_whitespace()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no SOA serial in {out:?}"))
}

#[test]
fn run_answers_dig_and_a_sighup_changing_the_rule_changes_the_srv_answer() {
    let mut d = Daemon::start(None, &config("owner-primary", DNS_LOOPBACK));
    let udp = d.listening("dns on udp", 0);
    let tcp = d.listening("dns on tcp", 0);
    assert_eq!(udp.len(), 1, "{:?}", d.lines());
    assert_eq!(tcp, udp, "TCP on the port UDP got");
    let addr = udp[0];
    assert_ne!(addr.port(), 0);
    let ready = d
        .lines()
        .into_iter()
        .find(|l| l.contains(" ready"))
        .unwrap();
    assert!(ready.contains("services=dns"), "{ready}");
    assert!(
        !d.child.output_text().contains("does not serve it yet"),
        "{}",
        d.child.output_text()
    );

    for tool in ["dig", "kdig"] {
        for t in ["+notcp", "+tcp"] {
            let out = ask(tool, addr, &[t, "_sztp._tcp.example.com", "SRV", "+short"]);
            assert_eq!(out, "0 0 443 sztp.owner.example.com.", "{tool} {t}");
        }
    }
    let out = ask("kdig", addr, &["+tcp", "SN123._sztp.example.com", "TXT"]);
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(
        out.contains(r#"\"address\":\"sztp.owner.example.com\""#),
        "{out}"
    );
    let serial_before = soa_serial(addr);

    // a bad file is refused and nothing changes
    let err = d.reload("[dns\nbroken").unwrap_err();
    assert!(err.contains("reload refused"), "{err}");
    let out = ask("dig", addr, &["_sztp._tcp.example.com", "SRV", "+short"]);
    assert_eq!(out, "0 0 443 sztp.owner.example.com.");

    // the rule now sends devices to the backup: SRV, TXT and SOA serial follow, same socket
    let lines = d
        .reload(&config("owner-backup", DNS_LOOPBACK))
        .expect("reload accepted");
    assert!(
        !lines.iter().any(|l| l.contains("listening for dns")),
        "same [dns] listen: no rebind {lines:?}"
    );
    for t in ["+notcp", "+tcp"] {
        let out = ask("dig", addr, &[t, "_sztp._tcp.example.com", "SRV", "+short"]);
        assert_eq!(out, "0 0 8443 ip-2001-db8-0-0-0-0-0-10.example.com.", "{t}");
    }
    let out = ask("dig", addr, &["SN123._sztp.example.com", "TXT"]);
    assert!(
        out.contains(r#"\"address\":\"2001:db8::10\",\"port\":8443"#),
        "{out}"
    );
    assert!(soa_serial(addr) > serial_before);

    // the default filter keeps hickory-server's per-query info lines out of the log
    let text = d.child.output_text();
    assert!(!text.contains("request:"), "{text}");
    assert!(!text.contains("hickory_server"), "{text}");

    let st = d.terminate();
    assert_eq!(st.code(), Some(0), "{}", d.child.output_text());
    d.wait_for("dns stopped", 1);
    assert!(refused(addr, false) && refused(addr, true));

    let events: Vec<serde_json::Value> = d
        .events()
        .into_iter()
        .filter(|e| e["proto"] == "dns")
        .collect();
    assert_eq!(events.len(), 2, "{events:#?}");
    assert!(events
        .iter()
        .all(|e| e["serial"] == "SN123" && e["event"] == "answered"));
    assert_eq!(events[0]["transport"], "tcp");
    assert_eq!(events[0]["uris"][0], "https://sztp.owner.example.com");
    assert_eq!(events[1]["transport"], "udp");
    assert_eq!(events[1]["uris"][0], "https://[2001:db8::10]:8443");
}

#[test]
fn a_reload_moving_dns_listen_keeps_the_address_it_still_lists_and_off_then_on_starts_fresh() {
    let mut d = Daemon::start(None, &config("owner-primary", DNS_LOOPBACK));
    let first = d.listening("dns on udp", 0)[0];

    // the same address written with the port it got, plus a second one: the new instance
    // takes the running sockets over (binding TCP on it again would fail: EADDRINUSE)
    let moved = DNS_LOOPBACK.replace(
        r#"listen = ["127.0.0.1:0"]"#,
        &format!(r#"listen = ["{first}", "127.0.0.2:0"]"#),
    );
    let since = d.lines().len();
    let lines = d
        .reload(&config("owner-primary", &moved))
        .unwrap_or_else(|e| panic!("reload refused: {e}"));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("stopping for the new configuration") && l.contains("dns")),
        "{lines:?}"
    );
    let now = d.listening("dns on udp", since);
    assert_eq!(now.len(), 2, "{lines:?}");
    assert_eq!(now[0], first);
    let second = now[1];
    assert_eq!(second.ip().to_string(), "127.0.0.2");
    for a in [first, second] {
        for t in ["+notcp", "+tcp"] {
            let out = ask("dig", a, &[t, "_sztp._tcp.example.com", "SRV", "+short"]);
            assert_eq!(out, "0 0 443 sztp.owner.example.com.", "{a} {t}");
        }
    }

    // [dns] off: stopped and awaited (the verdict is logged after), its sockets closed
    d.reload(&config("owner-primary", ""))
        .expect("reload accepted");
    d.wait_for("dns stopped", 2);
    for a in [first, second] {
        assert!(refused(a, false), "{a} still answers over UDP");
        assert!(refused(a, true), "{a} still answers over TCP");
    }

    // [dns] on again: a fresh instance on a fresh socket
    let since = d.lines().len();
    d.reload(&config("owner-backup", DNS_LOOPBACK))
        .expect("reload accepted");
    let back = d.listening("dns on udp", since);
    assert_eq!(back.len(), 1);
    let out = ask(
        "kdig",
        back[0],
        &["+tcp", "_sztp._tcp.example.com", "SRV", "+short"],
    );
    assert_eq!(out, "0 0 8443 ip-2001-db8-0-0-0-0-0-10.example.com.");

    assert_eq!(d.terminate().code(), Some(0), "{}", d.child.output_text());
}

const QUERY_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mdns/query.py");
const CLIENT_IP: &str = "198.51.100.2";
const SERVER_IP: &str = "198.51.100.1";

/// python-zeroconf in the client namespace asks `name` `qtype` (QM) and prints the answers.
fn zeroconf(pair: &NetnsPair, name: &str, qtype: &str) -> serde_json::Value {
    let out = pair.client.run(
        &[
            "/usr/bin/python3",
            QUERY_PY,
            "zc",
            CLIENT_IP,
            name,
            qtype,
            "0",
        ],
        Duration::from_secs(30),
    );
    assert!(out.success(), "{}\n{}", out.stdout, out.stderr);
    serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

#[test]
fn run_announces_mdns_reannounces_after_a_sighup_and_says_goodbye_at_stop() {
    if !require_root_or_skip(
        "run_announces_mdns_reannounces_after_a_sighup_and_says_goodbye_at_stop",
    ) {
        return;
    }
    let pair = NetnsPair::with_client_addr("mdnsrun", Some("198.51.100.2/24"));
    let mut cap = Capture::start(&pair.client, &pair.client_if, "udp port 5353");
    let mdns = format!(
        "{DNS_LOOPBACK}\n[dns.mdns]\ninterfaces = [\"{}\"]\nhostname = \"sztp-appliance\"\n",
        pair.server_if
    );
    let mut d = Daemon::start(Some(&pair.server), &config("owner-primary", &mdns));
    let ready = d
        .lines()
        .into_iter()
        .find(|l| l.contains(" ready"))
        .unwrap();
    assert!(ready.contains("services=dns,mdns"), "{ready}");
    assert!(!d
        .listening(&format!("mdns on {}", pair.server_if), 0)
        .is_empty());

    let a = zeroconf(&pair, "_sztp._tcp.local.", "SRV");
    assert_eq!(a["answers"][0]["server"], "sztp.owner.example.com.");
    assert_eq!(a["answers"][0]["port"], 443);

    d.reload(&config("owner-backup", &mdns))
        .expect("reload accepted");
    // each mDNS socket (IPv4, and IPv6 when the link has it) re-announces at its next tick;
    // the IPv4 one has logged it (after its goodbye), so zeroconf is answered after that
    d.wait_for_all(&[
        "mdns records changed: goodbye sent, announcing",
        "ipv6=false",
    ]);
    let b = zeroconf(&pair, "_sztp._tcp.local.", "SRV");
    assert_eq!(b["answers"][0]["server"], "ip-2001-db8-0-0-0-0-0-10.local.");
    assert_eq!(b["answers"][0]["port"], 8443);
    assert_eq!(b["additional"][0]["address"], "2001:db8::10");

    // [dns.mdns] off: the responder stops (goodbye) and unicast DNS runs on untouched; on
    // again: a fresh responder on fresh sockets announces
    let lines = d
        .reload(&config("owner-backup", DNS_LOOPBACK))
        .expect("reload accepted");
    assert!(
        lines.iter().any(|l| l.contains("mdns stopped")),
        "{lines:?}"
    );
    assert!(!lines
        .iter()
        .any(|l| l.contains("dns stopped") && !l.contains("mdns")));
    let since = d.lines().len();
    let lines = d
        .reload(&config("owner-backup", &mdns))
        .expect("reload accepted");
    assert!(!d
        .listening(&format!("mdns on {}", pair.server_if), since)
        .is_empty());
    assert!(
        !lines.iter().any(|l| l.contains("listening for dns")),
        "{lines:?}"
    );
    let c = zeroconf(&pair, "_sztp._tcp.local.", "SRV");
    assert_eq!(c["answers"][0]["server"], "ip-2001-db8-0-0-0-0-0-10.local.");

    assert_eq!(d.terminate().code(), Some(0), "{}", d.child.output_text());
    d.wait_for("mdns stopped", 2);
    let file = cap.finish();
    // every unsolicited or multicast packet from us over IPv4, in order
    let rows = common::tshark_fields(
        &file,
        &format!("ip.src == {SERVER_IP} && ip.dst == 224.0.0.251 && dns.srv.target"),
        &["dns.srv.target", "dns.resp.ttl"],
    );
    let srv_ttl = |r: &Vec<String>| -> (String, String) {
        // the SRV record comes first in our answers: its TTL is the first one listed
        (
            r[0].clone(),
            r[1].split(',').next().unwrap_or("").to_string(),
        )
    };
    let seq: Vec<(String, String)> = rows.iter().map(srv_ttl).collect();
    // each expected packet after the one before
    let mut at = 0;
    let mut next = |target: &str, ttl: &str, what: &str| {
        let i = seq[at..]
            .iter()
            .position(|(t, l)| t == target && l == ttl)
            .unwrap_or_else(|| panic!("{what}: no {target} TTL {ttl} after #{at} in {seq:?}"));
        at += i + 1;
    };
    let (old, new) = ("sztp.owner.example.com", "ip-2001-db8-0-0-0-0-0-10.local");
    next(old, "120", "announcement at start");
    next(old, "0", "the old SRV withdrawn after SIGHUP");
    next(new, "120", "the new SRV announced");
    next(new, "0", "goodbye when a reload turned mdns off");
    next(new, "120", "announcement when a reload turned it on");
    next(new, "0", "goodbye at SIGTERM");
    assert_eq!(
        seq.last().unwrap(),
        &(
            "ip-2001-db8-0-0-0-0-0-10.local".to_string(),
            "0".to_string()
        ),
        "the goodbye at SIGTERM is the last SRV sent: {seq:?}"
    );
    let last = common::tshark_fields(&file, &format!("ip.src == {SERVER_IP}"), &["dns.resp.ttl"]);
    assert!(
        last.last().unwrap()[0].split(',').all(|t| t == "0"),
        "the last packet is all goodbye: {last:?}"
    );
}
