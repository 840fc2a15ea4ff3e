//! The README's quick start must keep working: run tests/quickstart.sh and check every step of
//! the one device's journey it shows, and that a held port stops it with a clear message.

use std::process::{Command, Output};
use std::sync::Mutex;

/// The quick start uses fixed ports and one state directory: its runs in this binary take
/// turns (the test harness runs tests in parallel).
static FIXED_PORTS: Mutex<()> = Mutex::new(());

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn run_quickstart() -> Output {
    Command::new("bash")
        .arg(format!("{ROOT}/tests/quickstart.sh"))
        .current_dir(ROOT)
        .env("SZTP_QUICKSTART_BIN", env!("CARGO_BIN_EXE_sztp-redirector"))
        .output()
        .expect("run tests/quickstart.sh")
}

/// The line of `text` that starts with `start` (after trimming) and holds every `parts`.
fn line_with<'a>(text: &'a str, start: &str, parts: &[&str]) -> Option<&'a str> {
    text.lines()
        .find(|l| l.trim_start().starts_with(start) && parts.iter().all(|p| l.contains(p)))
}

#[test]
fn quickstart_script_shows_one_device_journey() {
    let _turn = FIXED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let out = run_quickstart();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let has = |s: &str| assert!(text.contains(s), "missing {s:?} in:\n{text}");
    has("config/quickstart.toml: ok");
    // every service bound, on loopback high ports
    has("listening for dhcp4 on lo 0.0.0.0:6767");
    has("listening for dhcp6 on lo [::]:6547");
    has("listening for dns on udp 127.0.0.1:8053");
    has("listening for dns on tcp 127.0.0.1:8053");
    has("listening for restconf on 127.0.0.1:9443");
    has("listening for status on 127.0.0.1:9143");
    has("ready services=dhcp4,dhcp6,restconf,dns,status");

    // step 1: DHCPv4 through the relay path, option 143 naming the redirect server, followed
    // over RESTCONF (from the leased address) to the owner's bootstrap server
    has("server 127.0.0.1 answered: offer 127.0.2.100, option 143 present");
    has("ack 127.0.2.100 lease 1h");
    has("sztp redirect (option 143, rfc8572 encoding, 1 URI):\n  1. https://127.0.0.1:9443\n");
    has("RESTCONF hop 1: https://127.0.0.1:9443\n");
    has(
        "answer: unsigned redirect-information (JSON, 1.2.840.113549.1.9.16.1.43), 1 bootstrap \
         server:\n    1. https://127.0.0.1:9444\n",
    );
    has("RESTCONF hop 2: https://127.0.0.1:9444\n  server certificate: CN=owner.example.com");
    has("answer: unsigned onboarding-information");
    has("result: bootstrapping data from https://127.0.0.1:9444 after 2 hops");
    // the owner's test double saw the device arrive: its own record, not our probe's word
    has("owner's bootstrap server (test double): 1 get-bootstrapping-data request(s) recorded");
    let arrivals =
        std::fs::read_to_string(format!("{ROOT}/target/quickstart-owner/arrivals.jsonl"))
            .expect("the owner double's record");
    let gbd: Vec<serde_json::Value> = arrivals
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .filter(|r: &serde_json::Value| {
            r["path"]
                .as_str()
                .unwrap_or("")
                .ends_with(":get-bootstrapping-data")
        })
        .collect();
    assert_eq!(gbd.len(), 1, "{arrivals}");
    assert_eq!(gbd[0]["method"], "POST");
    assert_eq!(gbd[0]["basic_user"], "QS-0001");
    assert_eq!(gbd[0]["peer"], "127.0.2.100", "from the leased address");
    let input: serde_json::Value = serde_json::from_str(gbd[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        input["ietf-sztp-bootstrap-server:input"]["hw-model"],
        "quickstart-model"
    );

    // step 2: DHCPv6 through the relay path, option 136, the same device (DUID-LL of its MAC)
    has("as duid 00030001020000535a50\n");
    has("option 136 present\nreply 2001:db8:1::");
    has("sztp redirect (option 136, rfc8572 encoding, 1 URI):\n  1. https://127.0.0.1:9443\n");

    // step 3: DNS, the device's TXT record and the SRV, both naming the redirect server
    has(
        "1. TXT QS-0001._sztp.staging.example.com dns @127.0.0.1:8053: 127.0.0.1 answered: ci \
         redirect-information\n   1. https://127.0.0.1:9443\n",
    );
    has(
        "2. SRV _sztp._tcp.staging.example.com dns @127.0.0.1:8053: 127.0.0.1 answered: 1 SRV \
         target(s)\n   1. https://ip-127-0-0-1.staging.example.com:9443 (127.0.0.1)\n",
    );

    // step 4: one device in the table, every step in its timeline
    has("(1 device from http://127.0.0.1:9143)");
    assert!(
        line_with(
            &text,
            "QS-0001  127.0.2.100,2001:db8:1::",
            &[
                "  redirect-served  handed-off: got redirect-information naming \
                 https://127.0.0.1:9444: the next steps happen on the owner's bootstrap server"
            ]
        )
        .is_some(),
        "device row: {text}"
    );
    has("device QS-0001\n  MAC        02:00:00:53:5a:50\n  serial     QS-0001\n");
    has("  DUID       00030001020000535a50\n  address    127.0.2.100, 2001:db8:1::");
    has("  told       https://127.0.0.1:9444 (restconf)\n");
    has("  stages     dhcp-offered ×2, dhcp-acked ×2, dns-answered ×1, redirect-served ×1\n");
    let timeline = text
        .split("\ntimeline:\n")
        .nth(1)
        .expect("a timeline")
        .split("\n(from http://127.0.0.1:9143)")
        .next()
        .unwrap();
    let steps: Vec<&str> = timeline
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap_or(""))
        .collect();
    assert_eq!(
        steps,
        ["dhcp4", "dhcp4", "restconf", "dhcp6", "dhcp6", "dns"],
        "{timeline}"
    );
    for part in [
        "DHCPv4 ACK 127.0.2.100: asked for option 143, sent option 143 with 1 URI",
        "RESTCONF get-bootstrapping-data from 127.0.2.100 (serial QS-0001, Basic user): HTTP \
         200, unsigned redirect-information naming 1 bootstrap server",
        "DHCPv6 Reply to Request 2001:db8:1::",
        "DNS over UDP TXT qs-0001._sztp.staging.example.com from 127.0.0.1: answered",
    ] {
        assert!(timeline.contains(part), "{part:?} in {timeline}");
    }
    has("--- status page: http://127.0.0.1:9143/ (metrics: http://127.0.0.1:9143/metrics)");

    // leases: both, one MAC
    assert!(
        line_with(&text, "dhcp4  127.0.2.100", &["02:00:00:53:5a:50  bound"]).is_some(),
        "leases: {text}"
    );
    assert!(
        line_with(&text, "dhcp6  2001:db8:1::", &[" 00030001020000535a50 "]).is_some(),
        "leases: {text}"
    );

    // the device journal after SIGTERM: the last event of each protocol, one device's
    let journal: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| l.starts_with("{\"ts\""))
        .map(|l| serde_json::from_str(l).expect("journal line is JSON"))
        .collect();
    let of = |proto: &str| {
        journal
            .iter()
            .find(|e| e["proto"] == proto)
            .unwrap_or_else(|| panic!("no {proto} event in {text}"))
    };
    let ack = of("dhcp4");
    assert_eq!(
        (&ack["event"], &ack["requested_143"], &ack["address"]),
        (&"ack".into(), &true.into(), &"127.0.2.100".into())
    );
    let reply = of("dhcp6");
    assert_eq!(
        (&reply["event"], &reply["requested_136"], &reply["mac"]),
        (&"request".into(), &true.into(), &"02:00:00:53:5a:50".into())
    );
    let txt = of("dns");
    assert_eq!(
        (&txt["event"], &txt["serial"], &txt["qtype"]),
        (&"answered".into(), &"QS-0001".into(), &"TXT".into())
    );
    let rc = of("restconf");
    assert_eq!(rc["answer"], "redirect");
    assert_eq!(rc["source"], "127.0.2.100");
    assert_eq!(rc["serial"], "QS-0001");
    assert_eq!(
        rc["mac"], "02:00:00:53:5a:50",
        "the lease on the source address"
    );
    assert_eq!(rc["uris"], serde_json::json!(["https://127.0.0.1:9444"]));
}

/// Fixed ports are the demo's: when another program holds one, the script stops at once and
/// says which port, instead of showing a half journey.
#[test]
fn quickstart_script_stops_on_a_held_port() {
    let _turn = FIXED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    // the redirect server's port; if someone else holds it already, the premise holds anyway
    let _held = std::net::TcpListener::bind("127.0.0.1:9443");
    let out = run_quickstart();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("quick start: the appliance did not start; its quick start ports"),
        "{err}"
    );
    assert!(
        err.contains("cannot listen on 127.0.0.1:9443: Address already in use"),
        "{err}"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("--- 1."), "no step runs: {text}");
}
