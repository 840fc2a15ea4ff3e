//! The runtime in process: `serve` on already-bound `127.0.0.1:0` sockets, cancellation that
//! ends every task after the lease commits, and reloads through the `Supervisor` (a rule
//! changed while a lease stays; a service turned off and back on). No privileges needed.

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

use common::relay::{mac, uris_143, Relay};
use sztp_redirector::config::{self, Config};
use sztp_redirector::daemon::{self, Bound, ServiceName, Supervisor};
use sztp_redirector::dhcp::lease_store::read_leases;
use sztp_redirector::dhcp::v4::server::{Bound4, BoundInterface};
use sztp_redirector::runtime::{Events, Published, ServiceContext, Snapshot};
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
    ServiceContext {
        state_dir: cfg.appliance.state_dir.clone(),
        published: Published::new(Snapshot::read(cfg, 0)),
        events: Events::new(None),
    }
}

/// A DHCPv4 service bound to 127.0.0.1:0 on `lo`, and that port.
fn loopback_dhcp4() -> (Bound, u16) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let bound = Bound {
        dhcp4: Some(Bound4 {
            interfaces: vec![BoundInterface::new("lo", sock).unwrap()],
        }),
    };
    (bound, port)
}

/// Runs a blocking relay exchange off the runtime's threads.
async fn exchange(port: u16, n: u32) -> (std::net::Ipv4Addr, Vec<String>) {
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
