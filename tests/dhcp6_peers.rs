//! Real DHCPv6 peers (dhclient -6, dhcrelay -6, perfdhcp -6, tcpdump/tshark) against
//! `sztp-redirector run`, each test in its own throwaway network namespaces. Needs root;
//! without it every test prints SKIP (or fails when SZTP_REQUIRE_PRIVILEGED_TESTS=1).

mod common;

use std::net::Ipv6Addr;
use std::time::Duration;

use common::v6::*;
use common::*;

const POOL_LO: &str = "2001:db8:1::1000";
const POOL_HI: &str = "2001:db8:1::1fff";

const RULE_DEFAULT: &str = r#"[[rule]]
name = "default"
redirect-to = ["sztp1", "sztp2"]
"#;

fn subnet(prefix: &str, lo: &str, hi: &str) -> String {
    format!(
        r#"[[dhcp6.subnet]]
prefix = "{prefix}"
pools = ["{lo}-{hi}"]
dns-servers = ["2001:db8:1::1"]
domain-search = ["staging.example.test"]
preferred-lifetime = "30m"
valid-lifetime = "1h"
"#
    )
}

/// The two servers of peers-and-crates §7, one rule sending both, `[dhcp6]` on `iface`.
fn config6(iface: &str, dhcp6_extra: &str, subnets: &str) -> String {
    format!(
        "[appliance]\nstate-dir = \"{STATE_DIR}\"\n\n\
         [[bootstrap-server]]\nname = \"sztp1\"\nuri = \"{URI1}\"\n\n\
         [[bootstrap-server]]\nname = \"sztp2\"\nuri = \"{URI2}\"\n\n\
         {RULE_DEFAULT}\n[dhcp6]\ninterfaces = [\"{iface}\"]\n{dhcp6_extra}\n{subnets}"
    )
}

fn default_config6(iface: &str) -> String {
    config6(iface, "", &subnet("2001:db8:1::/64", POOL_LO, POOL_HI))
}

fn in_pool(a: &str) -> bool {
    let a: Ipv6Addr = a
        .parse()
        .unwrap_or_else(|_| panic!("not an IPv6 address: {a}"));
    let (lo, hi): (Ipv6Addr, Ipv6Addr) = (POOL_LO.parse().unwrap(), POOL_HI.parse().unwrap());
    lo <= a && a <= hi
}

/// Stops the server (which flushes the device journal) and reads the journal.
fn journal_events(srv: ServerGuard) -> Vec<serde_json::Value> {
    let dir = srv.terminate();
    std::fs::read_to_string(dir.path().join("state/devices.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------

#[test]
fn dhclient6_stateful_gets_kea_bytes_and_a_pool_address() {
    if !require_root_or_skip("dhclient6_stateful_gets_kea_bytes_and_a_pool_address") {
        return;
    }
    let net = pair6("dhc6");
    let _srv = spawn_server6(&net.server, &default_config6(&net.server_if));
    let dhc = start_dhclient6(
        &net.client,
        &net.client_if,
        &dhclient6_conf(true, false),
        false,
        false,
    );
    let env = dhc.wait_bound();
    assert_eq!(
        dhclient6_136(&env).map(|b| hex(&b)).as_deref(),
        Some(KEA_PAYLOAD_HEX),
        "{env:?}"
    );
    assert!(in_pool(&env["new_ip6_address"]), "{env:?}");
    assert_eq!(
        env.get("new_dhcp6_name_servers").map(String::as_str),
        Some("2001:db8:1::1")
    );
    assert_eq!(
        env.get("new_dhcp6_domain_search").map(String::as_str),
        Some("staging.example.test.")
    );
}

#[test]
fn dhclient6_stateless_gets_kea_bytes_and_no_address() {
    if !require_root_or_skip("dhclient6_stateless_gets_kea_bytes_and_no_address") {
        return;
    }
    let net = pair6("dhc6s");
    let srv = spawn_server6(&net.server, &default_config6(&net.server_if));
    let dhc = start_dhclient6(
        &net.client,
        &net.client_if,
        &dhclient6_conf(true, false),
        true,
        false,
    );
    let env = dhc.wait_bound();
    assert_eq!(
        dhclient6_136(&env).map(|b| hex(&b)).as_deref(),
        Some(KEA_PAYLOAD_HEX)
    );
    assert!(!env.contains_key("new_ip6_address"), "{env:?}");
    drop(dhc);
    let events = journal_events(srv);
    assert!(
        events.iter().any(|e| e["event"] == "information-request"
            && e["requested_136"] == true
            && e["proto"] == "dhcp6"),
        "{events:?}"
    );
}

#[test]
fn no_136_without_the_oro() {
    if !require_root_or_skip("no_136_without_the_oro") {
        return;
    }
    let net = pair6("no136");
    let _srv = spawn_server6(&net.server, &default_config6(&net.server_if));
    let mut cap = Capture::start(&net.client, &net.client_if, "udp port 546 or udp port 547");
    // option 136 is defined (so dhclient would print it) but not requested
    let dhc = start_dhclient6(
        &net.client,
        &net.client_if,
        &dhclient6_conf(false, false),
        false,
        false,
    );
    let env = dhc.wait_bound();
    assert!(in_pool(&env["new_ip6_address"]));
    assert!(!env.contains_key("new_dhcp6_sztp_redirect"), "{env:?}");
    drop(dhc);
    cap.finish();
    let answers = cap.fields(
        "dhcpv6.msgtype == 2 or dhcpv6.msgtype == 7",
        &["dhcpv6.option.type"],
    );
    assert!(
        answers.len() >= 2,
        "Advertise and Reply captured: {answers:?}"
    );
    for a in &answers {
        assert!(
            !a[0].split(',').any(|t| t == "136"),
            "option 136 sent unrequested: {a:?}"
        );
    }
}

#[test]
fn rapid_commit_binds_without_an_advertise() {
    if !require_root_or_skip("rapid_commit_binds_without_an_advertise") {
        return;
    }
    let net = pair6("rapid");
    let cfg = config6(
        &net.server_if,
        "rapid-commit = true",
        &subnet("2001:db8:1::/64", POOL_LO, POOL_HI),
    );
    let _srv = spawn_server6(&net.server, &cfg);
    let mut cap = Capture::start(&net.client, &net.client_if, "udp port 546 or udp port 547");
    let dhc = start_dhclient6(
        &net.client,
        &net.client_if,
        &dhclient6_conf(true, true),
        false,
        false,
    );
    let env = dhc.wait_bound();
    assert!(in_pool(&env["new_ip6_address"]));
    assert_eq!(
        dhclient6_136(&env).map(|b| hex(&b)).as_deref(),
        Some(KEA_PAYLOAD_HEX)
    );
    drop(dhc);
    cap.finish();
    let types: Vec<String> = cap
        .fields("dhcpv6", &["dhcpv6.msgtype"])
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert!(types.iter().any(|t| t == "1"), "a Solicit: {types:?}");
    assert!(types.iter().any(|t| t == "7"), "a Reply: {types:?}");
    assert!(
        !types.iter().any(|t| t == "2" || t == "3"),
        "no Advertise or Request: {types:?}"
    );
}

#[test]
fn perfdhcp6_completes_20_exchanges() {
    if !require_root_or_skip("perfdhcp6_completes_20_exchanges") {
        return;
    }
    let net = pair6("perf6");
    let _srv = spawn_server6(&net.server, &default_config6(&net.server_if));
    for relay in [false, true] {
        let mut args = vec![
            "perfdhcp",
            "-6",
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
            "6,0088",
        ];
        // -A1: perfdhcp encapsulates every message in a Relay-forward (a relay agent)
        if relay {
            args.push("-A1");
        }
        let out = net.client.run(&args, Duration::from_secs(60));
        let p = parse_perfdhcp(&out.stdout);
        let ctx = format!(
            "relay {relay}\nstdout:\n{}\nstderr:\n{}",
            out.stdout, out.stderr
        );
        assert_eq!(
            p.get("SOLICIT-ADVERTISE").map(|t| (t.1, t.2)),
            Some((20, 0)),
            "{ctx}"
        );
        assert_eq!(
            p.get("REQUEST-REPLY").map(|t| (t.1, t.2)),
            Some((20, 0)),
            "{ctx}"
        );
    }
}

#[test]
fn relayed_by_dhcrelay6_client_gets_relay_subnet_address_and_136() {
    if !require_root_or_skip("relayed_by_dhcrelay6_client_gets_relay_subnet_address_and_136") {
        return;
    }
    let topo = relay_topology6("dhcrelay6");
    let subnets = subnet("2001:db8:9::/64", "2001:db8:9::1000", "2001:db8:9::1fff")
        + &subnet("2001:db8:2::/64", "2001:db8:2::1000", "2001:db8:2::1fff");
    let srv = spawn_server6(&topo.server, &config6(&topo.server_if, "", &subnets));
    let tmp = tempfile::tempdir().unwrap();
    let pidf = tmp.path().join("dhcrelay6.pid");
    let upper = format!("{RELAY6_UP_SERVER}%{}", topo.relay_up_if);
    // -I: interface-id in every Relay-forward, which the server must echo for dhcrelay to
    // route the answer back down
    let relay = topo.relay.spawn(
        &[
            "dhcrelay",
            "-6",
            "-d",
            "-I",
            "-pf",
            pidf.to_str().unwrap(),
            "-l",
            &topo.relay_down_if,
            "-u",
            &upper,
        ],
        Duration::from_secs(120),
    );
    let ready = relay.wait_for_lines(
        &format!("Sending on   Socket/{}", topo.relay_down_if),
        1,
        Duration::from_secs(10),
    );
    assert!(ready, "dhcrelay -6 did not start:\n{}", relay.output_text());
    let dhc = start_dhclient6(
        &topo.client,
        &topo.client_if,
        &dhclient6_conf(true, false),
        false,
        false,
    );
    let env = dhc.wait_bound();
    let a: Ipv6Addr = env["new_ip6_address"].parse().unwrap();
    assert!(
        ("2001:db8:2::1000".parse::<Ipv6Addr>().unwrap()..="2001:db8:2::1fff".parse().unwrap())
            .contains(&a),
        "{a} not from the relay link's pool"
    );
    assert_eq!(
        dhclient6_136(&env).map(|b| hex(&b)).as_deref(),
        Some(KEA_PAYLOAD_HEX)
    );
    assert!(
        relay.output_text().contains("Relaying Reply"),
        "{}",
        relay.output_text()
    );
    drop(dhc);
    let events = journal_events(srv);
    let req = events
        .iter()
        .find(|e| e["event"] == "request")
        .expect("a request event");
    assert_eq!(req["relay"], RELAY6_UP_RELAY);
    assert_eq!(req["address"], a.to_string());
}

#[test]
fn restart_keeps_the_address_of_the_same_duid_and_iaid() {
    if !require_root_or_skip("restart_keeps_the_address_of_the_same_duid_and_iaid") {
        return;
    }
    let net = pair6("restart6");
    let cfg = default_config6(&net.server_if);
    let srv = spawn_server6(&net.server, &cfg);
    let first = {
        let dhc = start_dhclient6(
            &net.client,
            &net.client_if,
            &dhclient6_conf(true, false),
            false,
            false,
        );
        dhc.wait_bound()["new_ip6_address"].clone()
    };
    let dir = srv.terminate();
    let duid_before = std::fs::read_to_string(dir.path().join("state/server-duid")).unwrap();
    let srv = spawn_server6_in(&net.server, &cfg, dir, 1);
    let dhc = start_dhclient6(
        &net.client,
        &net.client_if,
        &dhclient6_conf(true, false),
        false,
        false,
    );
    let env = dhc.wait_bound();
    assert_eq!(env["new_ip6_address"], first);
    let duid_after = std::fs::read_to_string(srv.state_dir().join("server-duid")).unwrap();
    assert_eq!(
        duid_before, duid_after,
        "the server DUID is kept in state-dir"
    );
    let sid = env["new_dhcp6_server_id"].replace(':', "");
    let sid_bytes = dhclient_colon_hex(&env["new_dhcp6_server_id"]).unwrap();
    assert_eq!(hex(&sid_bytes), duid_after.trim(), "{sid}");
}

#[test]
fn decline_quarantines_the_address() {
    if !require_root_or_skip("decline_quarantines_the_address") {
        return;
    }
    let net = pair6("decline6");
    let srv = spawn_server6(&net.server, &default_config6(&net.server_if));
    // the client script fails the first binding (as a failed DAD does): dhclient Declines it,
    // Solicits again and must get another address
    let dhc = start_dhclient6(
        &net.client,
        &net.client_if,
        &dhclient6_conf(true, false),
        false,
        true,
    );
    let declined =
        dhc.wait_event(&["BOUND6"], 1, Duration::from_secs(40))["new_ip6_address"].clone();
    let kept = dhc.wait_event(&["BOUND6"], 2, Duration::from_secs(40))["new_ip6_address"].clone();
    assert_ne!(declined, kept);
    assert!(in_pool(&kept));
    assert!(
        srv.child
            .wait_for_lines(&format!("address={declined}"), 2, Duration::from_secs(10)),
        "the server logs the grant and the decline of {declined}:\n{}",
        srv.child.output_text()
    );
    drop(dhc);
    let events = journal_events(srv);
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "decline" && e["address"] == declined.as_str()),
        "{events:?}"
    );
}

#[test]
fn probe_on_the_link_reports_the_redirect_and_a_second_server() {
    if !require_root_or_skip("probe_on_the_link_reports_the_redirect_and_a_second_server") {
        return;
    }
    let net = pair6("probe6");
    let _srv = spawn_server6(&net.server, &default_config6(&net.server_if));
    let out = net.client.run(
        &[
            BIN,
            "probe",
            "--interface",
            &net.client_if,
            "--dhcp6",
            "--wait",
            "1s",
            "--json",
        ],
        Duration::from_secs(30),
    );
    assert!(out.success(), "{}\n{}", out.stdout, out.stderr);
    let j: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(j["outcome"], "reply");
    assert!(in_pool(j["address"].as_str().unwrap()));
    assert_eq!(j["uris"], serde_json::json!([URI1, URI2]));
    assert_eq!(j["servers"].as_array().unwrap().len(), 1);
    // a second DHCPv6 server on the link: Kea, in a third namespace on a macvlan of the
    // server's veth end (ours holds [::]:547 exclusively, so Kea cannot share its namespace)
    let kea_ns = Netns::new(format!("{}-k", net.server.name));
    let kea_if = format!("{}k", net.server_if);
    net.server.ip(&[
        "link",
        "add",
        "link",
        &net.server_if,
        "name",
        &kea_if,
        "type",
        "macvlan",
        "mode",
        "bridge",
    ]);
    net.server
        .ip(&["link", "set", "dev", &kea_if, "netns", &kea_ns.name]);
    kea_ns.ip(&["link", "set", "dev", &kea_if, "up"]);
    kea_ns.wait_link_up(&kea_if);
    wait_link_local(&kea_ns, &kea_if);
    let kea_dir = tempfile::tempdir().unwrap();
    let kea_conf = kea_dir.path().join("kea-dhcp6.json");
    std::fs::write(
        &kea_conf,
        format!(
            r#"{{ "Dhcp6": {{ "interfaces-config": {{ "interfaces": ["{}"] }},
  "server-id": {{ "type": "LL", "persist": false }},
  "lease-database": {{ "type": "memfile", "persist": false }},
  "option-def": [ {{ "name": "sztp-redirect", "code": 136, "type": "tuple", "array": true, "space": "dhcp6" }} ],
  "subnet6": [ {{ "id": 1, "subnet": "2001:db8:1::/64", "interface": "{}", "pools": [ {{ "pool": "2001:db8:1::2000 - 2001:db8:1::2fff" }} ],
    "option-data": [ {{ "name": "sztp-redirect", "data": "{URI1}, {URI2}" }} ] }} ],
  "preferred-lifetime": 300, "valid-lifetime": 600 }} }}"#,
            kea_if, kea_if
        ),
    )
    .unwrap();
    let d = kea_dir.path().to_str().unwrap().to_string();
    let kea = kea_ns.spawn(
        &[
            "env",
            &format!("KEA_PIDFILE_DIR={d}"),
            &format!("KEA_LOCKFILE_DIR={d}"),
            "kea-dhcp6",
            "-c",
            kea_conf.to_str().unwrap(),
        ],
        Duration::from_secs(120),
    );
    assert!(
        kea.wait_for_lines("DHCP6_STARTED", 1, Duration::from_secs(20)),
        "kea-dhcp6 did not start:\n{}",
        kea.output_text()
    );
    let out = net.client.run(
        &[
            BIN,
            "probe",
            "--interface",
            &net.client_if,
            "--dhcp6",
            "--wait",
            "2s",
            "--json",
        ],
        Duration::from_secs(30),
    );
    let j: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", out.stdout, out.stderr));
    assert_eq!(j["servers"].as_array().unwrap().len(), 2, "{j}");
    assert!(
        out.stderr.contains("2 DHCPv6 servers answered"),
        "{}",
        out.stderr
    );
    // both encoders agree: Kea's option 136 is what ours sends
    for s in j["servers"].as_array().unwrap() {
        assert_eq!(s["option_136"], true, "{s}");
    }
}

/// dhclient -6 (DUID-LL) against the real binary with `[status]` on: its device, keyed by the
/// MAC its DUID carries, in `/api/devices` (read with curl in the server's namespace) with
/// the DHCPv6 stages, what it asked and was told, and the verdict; option 136 counted in
/// `/metrics`.
#[test]
fn dhclient6_device_in_the_status_api() {
    if !require_root_or_skip("dhclient6_device_in_the_status_api") {
        return;
    }
    let net = pair6("d6st");
    let cfg = default_config6(&net.server_if) + "\n[status]\nlisten = [\"127.0.0.1:0\"]\n";
    let srv = spawn_server6(&net.server, &cfg);
    let needle = "listening for status on 127.0.0.1:";
    assert!(
        srv.child.wait_for_lines(needle, 1, Duration::from_secs(10)),
        "{}",
        srv.child.output_text()
    );
    let port: u16 = srv
        .child
        .lines()
        .iter()
        .find_map(|l| l.split(needle).nth(1).map(|p| p.trim().parse().unwrap()))
        .unwrap();
    let get = |path: &str| -> Option<String> {
        let url = format!("http://127.0.0.1:{port}{path}");
        let out = net.server.run(
            &["curl", "-sS", "--fail", "--max-time", "20", &url],
            Duration::from_secs(30),
        );
        out.success().then_some(out.stdout)
    };
    let link = net
        .client
        .ip(&["link", "show", "dev", &net.client_if])
        .stdout;
    let mac = link
        .split("link/ether ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("the client's MAC")
        .to_owned();

    let dhc = start_dhclient6(
        &net.client,
        &net.client_if,
        &dhclient6_conf(true, false),
        false,
        false,
    );
    let env = dhc.wait_bound();
    let addr = env["new_ip6_address"].clone();
    // the table folds on its own thread after the Reply left: poll (bounded) for it
    let until = std::time::Instant::now() + Duration::from_secs(30);
    let v: serde_json::Value = loop {
        let v: Option<serde_json::Value> =
            get(&format!("/api/devices/{addr}")).map(|t| serde_json::from_str(&t).unwrap());
        match v {
            Some(v) if v["stage"] == "dhcp-acked" => break v,
            _ if std::time::Instant::now() > until => panic!("{addr} never reached dhcp-acked"),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    assert_eq!(v["key"], mac.as_str(), "{v:#}");
    let duid = v["duids"][0].as_str().expect("its DUID");
    assert!(duid.starts_with("00030001"), "DUID-LL: {duid}");
    assert!(
        duid.ends_with(&mac.replace(':', "")),
        "{duid} carries {mac}"
    );
    assert_eq!(v["asked"]["requested_136"], true, "{v:#}");
    assert_eq!(v["asked"]["interface"], net.server_if.as_str());
    assert_eq!(v["told"]["proto"], "dhcp6");
    assert_eq!(v["told"]["uris"], serde_json::json!([URI1, URI2]));
    assert_eq!(v["verdict"]["status"], "handed-off", "{v:#}");
    assert!(
        v["verdict"]["text"]
            .as_str()
            .unwrap()
            .contains("option 136 naming the owner's bootstrap server"),
        "{v:#}"
    );
    let stages: Vec<&str> = v["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["dhcp-offered", "dhcp-acked"], "{v:#}");

    let metrics = get("/metrics").expect("/metrics");
    let line = |prefix: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
            .trim()
            .parse()
            .unwrap()
    };
    // the Advertise and the Reply
    assert_eq!(
        line(
            r#"sztp_dhcp_redirect_option_total{proto="dhcp6",option="136",outcome="requested-and-sent"}"#
        ),
        2.0
    );
    assert!(line("sztp_dhcp6_replies_total ") >= 2.0, "{metrics}");
    assert_eq!(line("sztp_dhcp6_bindings_active "), 1.0, "{metrics}");
}
