//! Real DHCPv4 peers (dhclient, udhcpc, dhcrelay, perfdhcp, tcpdump/tshark) against
//! `sztp-redirector run`, each test in its own throwaway network namespaces. Needs root;
//! without it every test prints SKIP (or fails when SZTP_REQUIRE_PRIVILEGED_TESTS=1).

mod common;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use common::*;

const POOL_LO: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);
const POOL_HI: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 199);

const SUBNET_198: &str = r#"[[dhcp4.subnet]]
subnet = "198.51.100.0/24"
pools = ["198.51.100.100-198.51.100.199"]
routers = ["198.51.100.1"]
dns-servers = ["198.51.100.1"]
domain-name = "staging.example.test"
lease-time = "1h"
"#;

const RULE_DEFAULT: &str = r#"[[rule]]
name = "default"
redirect-to = ["sztp1", "sztp2"]
via = "direct"
"#;

fn in_range(ip: Ipv4Addr, lo: Ipv4Addr, hi: Ipv4Addr) -> bool {
    (u32::from(lo)..=u32::from(hi)).contains(&u32::from(ip))
}

/// A config serving `iface` with `servers` (name, uri), `rules` and `subnets` (TOML text).
fn config_with(iface: &str, servers: &[(&str, &str)], rules: &str, subnets: &str) -> String {
    let mut s = format!("[appliance]\nstate-dir = \"{STATE_DIR}\"\n\n");
    for (name, uri) in servers {
        s += &format!("[[bootstrap-server]]\nname = \"{name}\"\nuri = \"{uri}\"\n\n");
    }
    s += rules;
    s += &format!("\n[dhcp4]\ninterfaces = [\"{iface}\"]\n\n");
    s += subnets;
    s
}

/// The two servers of peers-and-crates §7, one rule sending both, 198.51.100.0/24.
fn default_config(iface: &str) -> String {
    config_with(
        iface,
        &[("sztp1", URI1), ("sztp2", URI2)],
        RULE_DEFAULT,
        SUBNET_198,
    )
}

fn kea_payload() -> Vec<u8> {
    unhex(KEA_PAYLOAD_HEX)
}

// ---------------------------------------------------------------------------------------
// Without root: the harness's own parsers and the reference vector.

#[test]
fn reference_vector_is_the_rfc8572_list_of_the_two_uris() {
    assert_eq!(hex(&rfc8572_list(&[URI1, URI2])), KEA_PAYLOAD_HEX);
}

#[test]
fn dhclient_colon_hex_has_no_zero_padding() {
    assert_eq!(
        dhclient_colon_hex("0:1f:68:74:74:70:73:3a"),
        Some(vec![0, 0x1f, 0x68, 0x74, 0x74, 0x70, 0x73, 0x3a])
    );
    assert_eq!(dhclient_colon_hex("https://x"), None);
    assert_eq!(dhclient_colon_hex("plain"), None);
}

#[test]
fn env_dump_keeps_blocks_in_order() {
    let d = parse_env_dump("### deconfig\ninterface=x\n### bound\nip=198.51.100.100\nopt143=00\n");
    assert_eq!(d.len(), 2);
    let b = last_event(&d, &["bound"]).unwrap();
    assert_eq!(b["ip"], "198.51.100.100");
    assert_eq!(unhex(&b["opt143"]), vec![0]);
}

#[test]
fn perfdhcp_report_is_parsed() {
    // Layout of perfdhcp 2.2's final report (abridged).
    let text = "***Rate statistics***\nRate: 4.9952 4-way exchanges/second, expected rate: 10\n\
                ***Statistics for: DISCOVER-OFFER***\nsent packets: 20\nreceived packets: 19\n\
                drops: 1\ndrops ratio: 5 %\norphans: 0\n\n\
                ***Statistics for: REQUEST-ACK***\nsent packets: 19\nreceived packets: 19\n\
                drops: 0\ndrops ratio: 0.000 %\n";
    let p = parse_perfdhcp(text);
    assert_eq!(p["DISCOVER-OFFER"], (20, 19, 1));
    assert_eq!(p["REQUEST-ACK"], (19, 19, 0));
}

// ---------------------------------------------------------------------------------------
// (a) dhclient

#[test]
fn dhclient_gets_rfc8572_list_and_pool_address() {
    if !require_root_or_skip("dhclient_gets_rfc8572_list_and_pool_address") {
        return;
    }
    let net = NetnsPair::new("dhclient");
    let _srv = spawn_server(&net.server, &default_config(&net.server_if));
    let dhc = start_dhclient(&net.client, &net.client_if, None);
    let env = dhc.wait_bound(Duration::from_secs(40));
    let raw = env
        .get("new_sztp_redirect")
        .unwrap_or_else(|| panic!("no new_sztp_redirect in {env:?}"));
    let bytes = dhclient_colon_hex(raw).unwrap_or_else(|| panic!("not colon hex: {raw}"));
    assert_eq!(hex(&bytes), KEA_PAYLOAD_HEX);
    let ip: Ipv4Addr = env["new_ip_address"].parse().unwrap();
    assert!(in_range(ip, POOL_LO, POOL_HI), "{ip} outside the pool");
}

// (b) udhcpc -O 143

#[test]
fn udhcpc_requesting_143_gets_kea_bytes() {
    if !require_root_or_skip("udhcpc_requesting_143_gets_kea_bytes") {
        return;
    }
    let net = NetnsPair::new("udhcpc143");
    let _srv = spawn_server(&net.server, &default_config(&net.server_if));
    let r = run_udhcpc(&net.client, &net.client_if, &["-O", "143"]);
    assert_eq!(
        r.bound().get("opt143").map(String::as_str),
        Some(KEA_PAYLOAD_HEX)
    );
    assert!(
        in_range(r.ip(), POOL_LO, POOL_HI),
        "{} outside the pool",
        r.ip()
    );
}

// Reply routing to a client without an address (broadcast flag 0): a frame straight to its MAC
// when CAP_NET_RAW allows, broadcast when it does not (RFC 2131 §4.1). Both must reach it.

/// Ethernet destinations of the OFFERs and ACKs seen by a udhcpc run against `srv`.
fn reply_destinations(net: &NetnsPair) -> (Udhcpc, Vec<String>) {
    let mut cap = Capture::start(&net.client, &net.client_if, "udp port 67 or udp port 68");
    let r = run_udhcpc(&net.client, &net.client_if, &["-O", "143"]);
    let _ = r.bound();
    cap.finish();
    let dst = cap
        .fields(
            "dhcp.option.dhcp == 2 or dhcp.option.dhcp == 5",
            &["eth.dst"],
        )
        .into_iter()
        .map(|row| row[0].to_ascii_lowercase())
        .collect();
    (r, dst)
}

#[test]
fn with_cap_net_raw_replies_go_straight_to_the_client_mac() {
    if !require_root_or_skip("with_cap_net_raw_replies_go_straight_to_the_client_mac") {
        return;
    }
    let net = NetnsPair::new("raw");
    let mac = "02:00:00:00:00:5a";
    net.client.set_mac(&net.client_if, mac);
    let _srv = spawn_server(&net.server, &default_config(&net.server_if));
    let (r, dst) = reply_destinations(&net);
    assert_eq!(
        r.bound().get("opt143").map(String::as_str),
        Some(KEA_PAYLOAD_HEX)
    );
    assert!(!dst.is_empty(), "no OFFER/ACK captured");
    assert!(dst.iter().all(|d| d == mac), "{dst:?}");
}

#[test]
fn without_cap_net_raw_replies_are_broadcast() {
    if !require_root_or_skip("without_cap_net_raw_replies_are_broadcast") {
        return;
    }
    let net = NetnsPair::new("noraw");
    let dir = tempfile::Builder::new()
        .prefix("sztpt-")
        .tempdir()
        .expect("tempdir");
    let srv = spawn_server_wrapped(
        &net.server,
        &default_config(&net.server_if),
        dir,
        1,
        &["setpriv", "--bounding-set", "-net_raw", "--"],
    );
    assert!(
        srv.child.output_text().contains("raw frames unavailable"),
        "{}",
        srv.child.output_text()
    );
    let (r, dst) = reply_destinations(&net);
    assert_eq!(
        r.bound().get("opt143").map(String::as_str),
        Some(KEA_PAYLOAD_HEX)
    );
    assert!(!dst.is_empty(), "no OFFER/ACK captured");
    assert!(dst.iter().all(|d| d == "ff:ff:ff:ff:ff:ff"), "{dst:?}");
}

// (c) not requested → not sent, unless dhcp-always-send

/// udhcpc without `-O 143` under a capture: (result, option types of each ACK, PRL of each
/// DISCOVER). The wire is the authority: udhcpc may or may not export options it did not ask for.
fn udhcpc_without_143(net: &NetnsPair) -> (Udhcpc, Vec<Vec<String>>, Vec<Vec<String>>) {
    let mut cap = Capture::start(&net.client, &net.client_if, "udp port 67 or udp port 68");
    let r = run_udhcpc(&net.client, &net.client_if, &[]);
    let _ = r.bound();
    cap.finish();
    let acks = cap.fields("dhcp.option.dhcp == 5", &["dhcp.option.type"]);
    let prls = cap.fields("dhcp.option.dhcp == 1", &["dhcp.option.request_list_item"]);
    assert!(!acks.is_empty(), "no ACK captured");
    assert!(!prls.is_empty(), "no DISCOVER captured");
    for row in &prls {
        assert!(
            !row[0].split(',').any(|c| c == "143"),
            "udhcpc without -O asked for 143: {row:?}"
        );
    }
    (r, acks, prls)
}

#[test]
fn option_143_only_when_requested_or_always_send() {
    if !require_root_or_skip("option_143_only_when_requested_or_always_send") {
        return;
    }
    let net = NetnsPair::new("alwayssend");
    let srv = spawn_server(&net.server, &default_config(&net.server_if));
    let (r, acks, _) = udhcpc_without_143(&net);
    assert_eq!(r.opt143(), None, "143 exported although not requested");
    for row in &acks {
        assert!(
            !row[0].split(',').any(|c| c == "143"),
            "143 sent although not in the PRL: {row:?}"
        );
    }
    drop(srv.terminate());

    let always = RULE_DEFAULT.to_string() + "dhcp-always-send = true\n";
    let cfg = config_with(
        &net.server_if,
        &[("sztp1", URI1), ("sztp2", URI2)],
        &always,
        SUBNET_198,
    );
    let _srv = spawn_server(&net.server, &cfg);
    let (r, acks, _) = udhcpc_without_143(&net);
    for row in &acks {
        assert!(
            row[0].split(',').any(|c| c == "143"),
            "always-send rule, but the ACK has no 143: {row:?}"
        );
    }
    // busybox 1.35 udhcpc exports unknown options it received even when it did not ask.
    assert_eq!(
        r.opt143().map(|b| hex(&b)).as_deref(),
        Some(KEA_PAYLOAD_HEX)
    );
}

// (d) legacy text encoding

#[test]
fn text_encoding_rule_sends_the_bare_uri() {
    if !require_root_or_skip("text_encoding_rule_sends_the_bare_uri") {
        return;
    }
    let net = NetnsPair::new("textenc");
    let rule = r#"[[rule]]
name = "legacy"
redirect-to = ["sztp1"]
via = "direct"
dhcp-uri-encoding = "text"
"#;
    let cfg = config_with(
        &net.server_if,
        &[("sztp1", URI1), ("sztp2", URI2)],
        rule,
        SUBNET_198,
    );
    let _srv = spawn_server(&net.server, &cfg);
    let r = run_udhcpc(&net.client, &net.client_if, &["-O", "143"]);
    assert_eq!(r.opt143(), Some(URI1.as_bytes().to_vec()));
}

// (e) a 300-octet list: RFC 3396 split on the wire, reassembled by dhclient

#[test]
fn long_list_is_split_per_rfc3396_and_reassembled_by_dhclient() {
    if !require_root_or_skip("long_list_is_split_per_rfc3396_and_reassembled_by_dhclient") {
        return;
    }
    let net = NetnsPair::new("rfc3396");
    let uris: Vec<String> = (1..=6)
        .map(|n| format!("https://sztp-{n}.bootstrap.site-a.example.com:8443"))
        .collect();
    let names: Vec<String> = (1..=6).map(|n| format!("site-a-{n}")).collect();
    let servers: Vec<(&str, &str)> = names
        .iter()
        .zip(&uris)
        .map(|(n, u)| (n.as_str(), u.as_str()))
        .collect();
    let rule = format!(
        "[[rule]]\nname = \"site-a\"\nredirect-to = [{}]\nvia = \"direct\"\n",
        names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let expected = rfc8572_list(&uris.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(expected.len(), 300);

    let _srv = spawn_server(
        &net.server,
        &config_with(&net.server_if, &servers, &rule, SUBNET_198),
    );
    let mut cap = Capture::start(&net.client, &net.client_if, "udp port 67 or udp port 68");
    let dhc = start_dhclient(&net.client, &net.client_if, None);
    let env = dhc.wait_bound(Duration::from_secs(40));
    drop(dhc);
    cap.finish();

    let raw = env
        .get("new_sztp_redirect")
        .unwrap_or_else(|| panic!("no new_sztp_redirect in {env:?}"));
    let got = dhclient_colon_hex(raw).unwrap_or_else(|| panic!("not colon hex: {raw}"));
    assert_eq!(hex(&got), hex(&expected));

    // Every OFFER (2) and ACK (5) carries option 143 exactly twice (300 = 255 + 45 at most
    // per piece; any valid RFC 3396 split of 300 octets has two pieces).
    let replies = cap.fields(
        "dhcp.option.dhcp == 2 or dhcp.option.dhcp == 5",
        &["dhcp.option.dhcp", "dhcp.option.type"],
    );
    assert!(!replies.is_empty(), "no OFFER/ACK captured");
    for row in &replies {
        let n = row[1].split(',').filter(|c| *c == "143").count();
        assert_eq!(n, 2, "message type {} has {n} option-143 pieces", row[0]);
    }
}

// (f) through a relay: dhcrelay in a middle namespace

#[test]
fn relayed_by_dhcrelay_client_gets_relay_subnet_address_and_143() {
    if !require_root_or_skip("relayed_by_dhcrelay_client_gets_relay_subnet_address_and_143") {
        return;
    }
    let topo = RelayTopology::new("dhcrelay");
    let subnet = r#"[[dhcp4.subnet]]
subnet = "192.0.2.0/24"
pools = ["192.0.2.100-192.0.2.199"]
routers = ["192.0.2.1"]
lease-time = "1h"
"#;
    let cfg = config_with(
        &topo.server_if,
        &[("sztp1", URI1), ("sztp2", URI2)],
        RULE_DEFAULT,
        subnet,
    );
    let _srv = spawn_server(&topo.server, &cfg);
    let tmp = tempfile::tempdir().unwrap();
    let pidf = tmp.path().join("dhcrelay.pid");
    let relay = topo.relay.spawn(
        &[
            "dhcrelay",
            "-4",
            "-d",
            "-pf",
            pidf.to_str().unwrap(),
            "-id",
            &topo.relay_down_if,
            "-iu",
            &topo.relay_up_if,
            NetnsPair::SERVER_ADDR,
        ],
        Duration::from_secs(120),
    );
    let ready = relay.wait_for_lines("Sending on", 1, Duration::from_secs(10));
    assert!(ready, "dhcrelay did not start:\n{}", relay.output_text());

    let r = run_udhcpc(&topo.client, &topo.client_if, &["-O", "143"]);
    let ip = r.ip();
    assert!(
        in_range(
            ip,
            Ipv4Addr::new(192, 0, 2, 100),
            Ipv4Addr::new(192, 0, 2, 199)
        ),
        "{ip} not from the relay's subnet pool"
    );
    assert_eq!(r.opt143(), Some(kea_payload()));
    assert_eq!(
        r.bound().get("router").map(String::as_str),
        Some("192.0.2.1")
    );
}

// (f) perfdhcp -4 is itself a relay (giaddr set, source port 67)

#[test]
fn perfdhcp_as_relay_completes_20_exchanges() {
    if !require_root_or_skip("perfdhcp_as_relay_completes_20_exchanges") {
        return;
    }
    let net = NetnsPair::with_client_addr("perf20", Some("198.51.100.2/24"));
    let _srv = spawn_server(&net.server, &default_config(&net.server_if));
    let out = net.client.run(
        &[
            "perfdhcp",
            "-4",
            "-l",
            &net.client_if,
            "-r",
            "10",
            "-n",
            "20",
            "-R",
            "20",
            "-W",
            "2000000",
            "-o",
            "55,01038f",
        ],
        Duration::from_secs(60),
    );
    let p = parse_perfdhcp(&out.stdout);
    let ctx = format!("stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    assert_eq!(
        p.get("DISCOVER-OFFER").map(|t| (t.1, t.2)),
        Some((20, 0)),
        "{ctx}"
    );
    assert_eq!(
        p.get("REQUEST-ACK").map(|t| (t.1, t.2)),
        Some((20, 0)),
        "{ctx}"
    );
}

// (g) a reservation

#[test]
fn reserved_mac_gets_its_address() {
    if !require_root_or_skip("reserved_mac_gets_its_address") {
        return;
    }
    let net = NetnsPair::new("reservation");
    net.client.set_mac(&net.client_if, "02:00:00:00:00:42");
    let subnet = SUBNET_198.to_string()
        + "\n[[dhcp4.subnet.reservation]]\nmac = \"02:00:00:00:00:42\"\naddress = \"198.51.100.42\"\n";
    let cfg = config_with(
        &net.server_if,
        &[("sztp1", URI1), ("sztp2", URI2)],
        RULE_DEFAULT,
        &subnet,
    );
    let _srv = spawn_server(&net.server, &cfg);
    let r = run_udhcpc(&net.client, &net.client_if, &["-O", "143"]);
    assert_eq!(r.ip(), Ipv4Addr::new(198, 51, 100, 42));
    assert_eq!(r.opt143(), Some(kea_payload()));
}

// (h) NAK for a wrong requested address.
//
// udhcpc's `-r ADDR` only puts option 50 into its DISCOVER (the server then simply offers
// another address), so it never provokes a NAK. A NAK answers a REQUEST: dhclient started
// with a remembered lease goes through INIT-REBOOT (REQUEST, option 50, no server id). The
// client first gets a real lease, so the server knows it and RFC 2131 §4.3.2 says NAK
// (an unknown client would have to be ignored).

fn reboot_lease_file(iface: &str, addr: &str) -> String {
    format!(
        "lease {{\n  interface \"{iface}\";\n  fixed-address {addr};\n  option subnet-mask 255.255.255.0;\n  \
         option routers 198.51.100.1;\n  option dhcp-lease-time 3600;\n  option dhcp-message-type 5;\n  \
         option dhcp-server-identifier 198.51.100.1;\n  renew 4 2037/12/31 00:00:00;\n  \
         rebind 4 2037/12/31 00:00:00;\n  expire 4 2037/12/31 00:00:00;\n}}\n"
    )
}

#[test]
fn wrong_requested_address_is_naked_then_client_gets_pool_address() {
    if !require_root_or_skip("wrong_requested_address_is_naked_then_client_gets_pool_address") {
        return;
    }
    let net = NetnsPair::new("nak");
    let srv = spawn_server(&net.server, &default_config(&net.server_if));
    let first = start_dhclient(&net.client, &net.client_if, None);
    let env = first.wait_bound(Duration::from_secs(40));
    let first_ip: Ipv4Addr = env["new_ip_address"].parse().unwrap();
    drop(first);

    let mut cap = Capture::start(&net.client, &net.client_if, "udp port 67 or udp port 68");
    let second = start_dhclient(
        &net.client,
        &net.client_if,
        Some(&reboot_lease_file(&net.client_if, "198.51.100.250")),
    );
    let env = second.wait_bound(Duration::from_secs(60));
    drop(second);
    cap.finish();

    let ip: Ipv4Addr = env["new_ip_address"].parse().unwrap();
    assert!(in_range(ip, POOL_LO, POOL_HI), "{ip} outside the pool");
    assert_eq!(ip, first_ip, "the client's existing lease should be kept");

    let requests = cap.fields(
        "dhcp.option.dhcp == 3",
        &["dhcp.option.requested_ip_address"],
    );
    assert!(
        requests.iter().any(|r| r[0] == "198.51.100.250"),
        "dhclient did not INIT-REBOOT with 198.51.100.250: {requests:?}"
    );
    let naks = cap.fields("dhcp.option.dhcp == 6", &["ip.src"]);
    let journal = std::fs::read_to_string(srv.devices_journal()).unwrap_or_default();
    let journal_nak = journal.lines().any(|l| {
        serde_json::from_str::<serde_json::Value>(l)
            .map(|v| v.to_string().to_ascii_lowercase().contains("\"nak\""))
            .unwrap_or(false)
    });
    assert!(
        !naks.is_empty() || journal_nak,
        "no NAK on the wire and no \"nak\" event in devices.jsonl:\n{journal}"
    );
}

// (i) leases survive a restart

#[test]
fn restart_keeps_leases() {
    if !require_root_or_skip("restart_keeps_leases") {
        return;
    }
    let mac = "02:00:00:00:00:51";
    let net = NetnsPair::new("restart");
    net.client.set_mac(&net.client_if, mac);
    let cfg = default_config(&net.server_if);
    let srv = spawn_server(&net.server, &cfg);
    let first = run_udhcpc(&net.client, &net.client_if, &["-O", "143"]).ip();
    let dir = srv.terminate();

    let srv = spawn_server_in(&net.server, &cfg, dir, 1);
    let second = run_udhcpc(&net.client, &net.client_if, &["-O", "143"]).ip();
    assert_eq!(
        second, first,
        "same client, different address after restart"
    );
    let state = srv.state_dir();
    let _dir = srv.terminate();

    let leases = leases_json(&state);
    let found = leases.iter().any(|l| {
        lease_addr(l) == Some(&first.to_string())
            && l["mac"].as_str().map(str::to_ascii_lowercase).as_deref() == Some(mac)
            && l["state"].as_str() == Some("bound")
    });
    assert!(found, "{first}/{mac} not bound in {leases:#?}");
}

// (j) kill -9 under load: every ACK seen on the wire is in the journal

#[test]
fn every_acked_lease_survives_kill_9_under_load() {
    if !require_root_or_skip("every_acked_lease_survives_kill_9_under_load") {
        return;
    }
    // A /15 so 2000 perfdhcp clients never exhaust the pool; perfdhcp relays from 198.18.0.2.
    let net = NetnsPair::with_client_addr("kill9", Some("198.18.0.2/15"));
    net.server.add_addr(&net.server_if, "198.18.0.1/15");
    let subnet = r#"[[dhcp4.subnet]]
subnet = "198.18.0.0/15"
pools = ["198.18.1.0-198.19.255.254"]
lease-time = "1h"
"#;
    let cfg = config_with(
        &net.server_if,
        &[("sztp1", URI1), ("sztp2", URI2)],
        RULE_DEFAULT,
        subnet,
    );
    let srv = spawn_server(&net.server, &cfg);
    let state = srv.state_dir();
    let mut cap = Capture::start(&net.client, &net.client_if, "udp port 67");
    let mut perf = net.client.spawn(
        &[
            "perfdhcp",
            "-4",
            "-l",
            &net.client_if,
            "-r",
            "500",
            "-R",
            "2000",
            "-p",
            "5",
            "-o",
            "55,01038f",
        ],
        Duration::from_secs(60),
    );
    // Let the load run for a while, then pull the plug (this pause is no assertion).
    std::thread::sleep(Duration::from_millis(2500));
    let _dir = srv.kill9();
    perf.wait_exit(Duration::from_secs(30));
    cap.finish();

    // The latest ACK per client is the binding that must have been durable before it left.
    let mut acked: HashMap<String, String> = HashMap::new();
    for row in cap.fields(
        "dhcp.option.dhcp == 5",
        &["dhcp.hw.mac_addr", "dhcp.ip.your"],
    ) {
        // tshark also labels the MAC inside option 61 dhcp.hw.mac_addr: chaddr comes first.
        let chaddr = row[0].split(',').next().unwrap_or("").to_ascii_lowercase();
        acked.insert(chaddr, row[1].clone());
    }
    assert!(
        !acked.is_empty(),
        "no ACK captured before the kill:\n{}",
        perf.output_text()
    );

    let leases = leases_json(&state);
    let bound: HashMap<String, String> = leases
        .iter()
        .filter(|l| l["state"].as_str() == Some("bound"))
        .filter_map(|l| {
            Some((
                l["mac"].as_str()?.to_ascii_lowercase(),
                lease_addr(l)?.to_string(),
            ))
        })
        .collect();
    let missing: Vec<_> = acked
        .iter()
        .filter(|(mac, addr)| bound.get(*mac) != Some(*addr))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} ACKed leases lost by kill -9 (first 10: {:?}); journal has {} bound",
        missing.len(),
        acked.len(),
        missing.iter().take(10).collect::<Vec<_>>(),
        bound.len()
    );
    eprintln!(
        "kill -9 under load: {} ACKed clients, all bound in the journal",
        acked.len()
    );
}
