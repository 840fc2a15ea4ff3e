//! The runtime in process: `serve` on already-bound `127.0.0.1:0` sockets, cancellation that
//! ends every task after the lease commits, and reloads through the `Supervisor` (a rule
//! changed while a lease stays; a service turned off and back on). No privileges needed.

mod common;

use std::net::{Ipv4Addr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use common::relay::{mac, uris_143, Relay};
use sztp_redirector::config::{self, Config};
use sztp_redirector::daemon::{self, Bound, ServiceName, Supervisor};
use sztp_redirector::dhcp::lease_store::{read_leases, LeaseStore, JOURNAL_FILE};
use sztp_redirector::dhcp::leases::{Lease4, LeaseState};
use sztp_redirector::dhcp::v4::server::{
    serve_with_clock, Bound4, BoundInterface, HOUSEKEEPING_INTERVAL, KEEP_EXPIRED_SECS,
};
use sztp_redirector::policy::MacAddr;
use sztp_redirector::runtime::{Clock, Events, LeaseLookup, Published, ServiceContext, Snapshot};
use tokio_util::sync::CancellationToken;

/// Upper bound for anything that must end; hitting it means a hang, not slowness.
const HANG: Duration = Duration::from_secs(30);

fn config_text(state: &Path, primary: &str, with_dhcp4: bool) -> String {
    let mut s = format!(
        r#"
[appliance]
state-dir = "{}"

[[bootstrap-server]]
name = "owner-primary"
uri = "{primary}"

[[rule]]
name = "default"
redirect-to = ["owner-primary"]
"#,
        state.display()
    );
    if with_dhcp4 {
        s += r#"
[dhcp4]
interfaces = ["lo"]
port = 0

[[dhcp4.subnet]]
subnet = "192.0.2.0/24"
pools = ["192.0.2.100-192.0.2.199"]
lease-time = "1h"
"#;
    }
    s
}

fn config(state: &Path, primary: &str, with_dhcp4: bool) -> Config {
    config::load_str(
        Path::new("runtime.toml"),
        &config_text(state, primary, with_dhcp4),
    )
    .expect("fixture config is valid")
}

fn context(cfg: Config) -> ServiceContext {
    let state_dir = cfg.appliance.state_dir.clone();
    ServiceContext::new(
        Published::new(Snapshot::read(cfg, 0)),
        Events::new(None),
        state_dir,
        sztp_redirector::metrics::Metrics::new(),
    )
}

/// A DHCPv4 service bound to 127.0.0.1:0 on `lo`, and that port.
fn loopback_dhcp4() -> (Bound, u16) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let bound = Bound {
        dhcp4: Some(Bound4 {
            interfaces: vec![BoundInterface::new("lo", sock).unwrap()],
        }),
        ..Bound::default()
    };
    (bound, port)
}

/// Runs a blocking relay exchange off the runtime's threads.
async fn exchange(port: u16, n: u32) -> (Ipv4Addr, Vec<String>) {
    tokio::task::spawn_blocking(move || {
        let x = Relay::new(port)
            .exchange(mac(n), n * 16, true)
            .expect("the server answered");
        (x.ack.yiaddr(), uris_143(&x.ack).unwrap_or_default())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_then_cancel_ends_every_task_with_leases_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cfg = config(&state, "https://sztp.owner.example.com:8443", true);
    let (bound, port) = loopback_dhcp4();
    let token = CancellationToken::new();
    let serving = tokio::spawn(daemon::serve(bound, context(cfg), token.clone()));

    let (addr, uris) = exchange(port, 1).await;
    assert_eq!(uris, ["https://sztp.owner.example.com:8443"]);

    token.cancel();
    let res = tokio::time::timeout(HANG, serving)
        .await
        .expect("serve returned after cancel")
        .expect("serve did not panic");
    res.expect("serve drained without error");
    // the socket task is gone: the port no longer answers
    let r = Relay::new(port);
    r.sock
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(r.exchange(mac(2), 0x99, true).is_none());
    // and the ACKed lease was made durable before serve returned
    let leases = read_leases(&state).unwrap();
    assert!(
        leases.iter().any(|l| l.addr == addr),
        "{addr} not in {leases:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_changes_the_rule_and_the_lease_stays() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cfg = config(&state, "https://old-owner.example.com", true);
    let (bound, port) = loopback_dhcp4();
    let ctx = context(cfg);
    let published = ctx.published.clone();
    let mut sup = Supervisor::start(bound, ctx, CancellationToken::new());

    let (first, uris) = exchange(port, 7).await;
    assert_eq!(uris, ["https://old-owner.example.com"]);

    sup.reload(config(&state, "https://new-owner.example.com", true))
        .await
        .unwrap();
    assert_eq!(published.load().generation, 1);
    assert_eq!(sup.running(), [ServiceName::Dhcp4]);
    // same binding key: the same socket keeps serving, with the new rule
    let (again, uris) = exchange(port, 7).await;
    assert_eq!(uris, ["https://new-owner.example.com"]);
    assert_eq!(again, first, "the lease survives a reload");
    tokio::time::timeout(HANG, sup.drain(HANG))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_turns_dhcp4_off_and_back_on_from_its_journal() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let primary = "https://sztp.owner.example.com:8443";
    let (bound, port) = loopback_dhcp4();
    let mut sup = Supervisor::start(
        bound,
        context(config(&state, primary, true)),
        CancellationToken::new(),
    );
    let (first, _) = exchange(port, 5).await;

    sup.reload(config(&state, primary, false)).await.unwrap();
    assert!(sup.running().is_empty(), "dhcp4 stopped and awaited");
    assert!(sup.local_addrs(ServiceName::Dhcp4).is_empty());

    sup.reload(config(&state, primary, true)).await.unwrap();
    assert_eq!(sup.running(), [ServiceName::Dhcp4]);
    // bound anew by the reload (port 0 in the file: a new port)
    let addrs = sup.local_addrs(ServiceName::Dhcp4);
    assert_eq!(addrs.len(), 1);
    let (again, uris) = exchange(addrs[0].port(), 5).await;
    assert_eq!(uris, [primary]);
    assert_eq!(again, first, "replayed from the journal like a fresh start");
    tokio::time::timeout(HANG, sup.drain(HANG))
        .await
        .unwrap()
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Virtual time: tokio's clock paused, the DHCPv4 service's `now` following it (Clock::Tokio).

const T0: u64 = 1_800_000_000;

fn one_address_pool(state: &Path) -> Config {
    let text = config_text(state, "https://sztp.owner.example.com:8443", true)
        .replace("192.0.2.100-192.0.2.199", "192.0.2.100-192.0.2.100");
    config::load_str(Path::new("runtime.toml"), &text).unwrap()
}

/// DHCPv4 alone on a loopback socket, its clock on tokio's.
fn serve_dhcp4_virtual(cfg: Config) -> (u16, CancellationToken, tokio::task::JoinHandle<()>) {
    serve_dhcp4_with(context(cfg), Clock::tokio_at(T0))
}

/// DHCPv4 alone on a loopback socket with `ctx` and `clock`.
fn serve_dhcp4_with(
    ctx: ServiceContext,
    clock: Clock,
) -> (u16, CancellationToken, tokio::task::JoinHandle<()>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let bound = Bound4 {
        interfaces: vec![BoundInterface::new("lo", sock).unwrap()],
    };
    let token = CancellationToken::new();
    let t = token.clone();
    let task = tokio::spawn(async move { serve_with_clock(bound, ctx, t, clock).await.unwrap() });
    (port, token, task)
}

/// DISCOVER/REQUEST with a short receive timeout; `None` when the server stays silent.
async fn try_exchange(port: u16, n: u32) -> Option<Ipv4Addr> {
    tokio::task::spawn_blocking(move || {
        let r = Relay::new(port);
        r.sock
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        r.exchange(mac(n), n * 16, true).map(|x| x.ack.yiaddr())
    })
    .await
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_lease_expires_in_virtual_time_and_its_address_goes_to_the_next_device() {
    let dir = tempfile::tempdir().unwrap();
    let (port, token, task) = serve_dhcp4_virtual(one_address_pool(&dir.path().join("state")));
    let only = Ipv4Addr::new(192, 0, 2, 100);
    assert_eq!(try_exchange(port, 1).await, Some(only));
    // the pool's one address is bound for an hour: a second device gets nothing
    assert_eq!(try_exchange(port, 2).await, None);
    tokio::time::advance(Duration::from_secs(3599)).await;
    assert_eq!(try_exchange(port, 2).await, None, "not expired yet");
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(try_exchange(port, 2).await, Some(only), "expired: reused");
    token.cancel();
    tokio::time::timeout(HANG, task).await.unwrap().unwrap();
}

fn journal_lines(state: &Path) -> usize {
    std::fs::read_to_string(state.join(JOURNAL_FILE))
        .unwrap()
        .lines()
        .count()
}

#[tokio::test(start_paused = true)]
async fn housekeeping_compacts_the_journal_once_expired_leases_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // 2,600 leases written 4 times each: 10,400 records, 4 per live lease, below the
    // compaction threshold (more than 10,000 records and more than 4 per live lease)
    let lease = |i: u32, expires: u64| Lease4 {
        addr: Ipv4Addr::from(0x0a00_0000 + i),
        // not the test devices' MACs (relay::mac: 02:00:…): device 1 must be a new client, not
        // one holding lease 1 (moving it to the pool would journal the old lease's release)
        mac: MacAddr([2, 0xaa, 0, 0, (i >> 8) as u8, i as u8]),
        client_id: None,
        hostname: None,
        expires,
        state: LeaseState::Bound,
    };
    {
        let (mut j, _) = LeaseStore::open(&state).unwrap();
        for round in 0..4u64 {
            // the odd half expires 100 s after T0, the even half in a year
            let recs: Vec<Lease4> = (0..2600)
                .map(|i| {
                    lease(
                        i,
                        if i % 2 == 1 {
                            T0 + 100
                        } else {
                            T0 + 31_536_000 + round
                        },
                    )
                })
                .collect();
            j.append(&recs).unwrap();
        }
    }
    assert_eq!(journal_lines(&state), 10_400);
    let (port, token, task) = serve_dhcp4_virtual(config(&state, "https://a.example.com", true));
    // one housekeeping round with nothing to sweep; the ACK after it was queued behind any
    // compaction the round would have asked for
    tokio::time::advance(HOUSEKEEPING_INTERVAL).await;
    let a = try_exchange(port, 1).await.expect("served");
    assert_eq!(journal_lines(&state), 10_401, "no compaction yet");
    // a day after the odd half expired, the sweep forgets them: 1,301 live leases
    tokio::time::advance(Duration::from_secs(100 + KEEP_EXPIRED_SECS + 60)).await;
    let until = std::time::Instant::now() + HANG;
    while journal_lines(&state) != 1301 {
        assert!(
            std::time::Instant::now() < until,
            "not compacted: {} lines",
            journal_lines(&state)
        );
        tokio::time::advance(HOUSEKEEPING_INTERVAL).await;
        tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(20)))
            .await
            .unwrap();
    }
    let live = read_leases(&state).unwrap();
    assert!(live.iter().any(|l| l.addr == a), "the new lease is kept");
    assert!(live.iter().all(|l| l.expires > T0 + 100));
    token.cancel();
    tokio::time::timeout(HANG, task).await.unwrap().unwrap();
}

// ---------------------------------------------------------------------------------------------
// The lease registry: what the DHCPv4 service tells the redirect server about an address.

#[tokio::test(start_paused = true)]
async fn dhcp4_registers_its_active_leases_while_it_serves() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(config(
        &dir.path().join("state"),
        "https://a.example.com",
        true,
    ));
    let leases = ctx.leases.clone();
    assert!(leases.services().is_empty());
    let (port, token, task) = serve_dhcp4_with(ctx, Clock::tokio_at(T0));
    let addr = try_exchange(port, 3).await.expect("served");
    assert_eq!(leases.services(), ["dhcp4"]);
    let facts = leases.lease_facts(addr.into()).expect("an active lease");
    assert_eq!(facts.mac, Some(MacAddr(mac(3))));
    assert_eq!(facts.client_id, None);
    assert_eq!(facts.interface.as_deref(), Some("lo"));
    // neither another address nor an IPv6 one
    assert_eq!(
        leases.lease_facts(Ipv4Addr::new(192, 0, 2, 250).into()),
        None
    );
    assert_eq!(leases.lease_facts("2001:db8::1".parse().unwrap()), None);
    // a lease of one hour: gone once expired
    tokio::time::advance(Duration::from_secs(3601)).await;
    assert_eq!(leases.lease_facts(addr.into()), None);
    token.cancel();
    tokio::time::timeout(HANG, task).await.unwrap().unwrap();
    // a stopped service leaves no view behind
    assert!(leases.services().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_facts_carry_what_the_device_sent_with_its_request() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(config(
        &dir.path().join("state"),
        "https://a.example.com",
        true,
    ));
    let leases = ctx.leases.clone();
    let (port, token, task) = serve_dhcp4_with(ctx, Clock::System);
    // the probe binary as a relay agent (our client, built apart from the server's decoder)
    let probe = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_sztp-redirector"))
            .args(["probe", "--relay", &format!("127.0.0.1:{port}")])
            .args([
                "--link-selection",
                "192.0.2.1",
                "--mac",
                "02:00:00:00:00:42",
            ])
            .args(["--vendor-class", "Juniper-ex4300", "--user-class", "sztp"])
            .args(["--circuit-id", "ge-0/0/1", "--remote-id", "sw-7"])
            .args(["--client-id", "0x01020000000042", "--json"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(probe.status.success(), "{probe:?}");
    let report: serde_json::Value = serde_json::from_slice(&probe.stdout).unwrap();
    let addr: Ipv4Addr = report["address"].as_str().unwrap().parse().unwrap();
    let facts = leases.lease_facts(addr.into()).expect("an active lease");
    assert_eq!(
        facts,
        sztp_redirector::runtime::LeaseFacts {
            mac: Some(MacAddr([2, 0, 0, 0, 0, 0x42])),
            client_id: Some(sztp_redirector::policy::ClientId::Dhcp4(vec![
                1, 2, 0, 0, 0, 0, 0x42
            ])),
            vendor_class: Some("Juniper-ex4300".into()),
            enterprise_number: None,
            user_class: vec!["sztp".into()],
            circuit_id: Some(b"ge-0/0/1".to_vec()),
            remote_id: Some(b"sw-7".to_vec()),
            interface: Some("lo".into()),
        }
    );
    token.cancel();
    tokio::time::timeout(HANG, task).await.unwrap().unwrap();
}
