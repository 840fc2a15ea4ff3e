//! What the device table costs per DHCPv4 event: the packet path's `submit` (a clone and a
//! `try_send`) and the fold thread's work, for 2 events (OFFER, ACK) per device over
//! `DEVICES` devices (default 20,000; the table keeps 4096).
//!
//! `cargo run --release --example device_table_cost [DEVICES]`

use std::net::Ipv4Addr;
use std::time::Instant;

use sztp_redirector::devices::{DeviceTable, Fold, Limits};
use sztp_redirector::journal::{DeviceEvent, Dhcp4Kind, EventDetail};
use sztp_redirector::metrics::Metrics;
use sztp_redirector::policy::MacAddr;

fn event(n: u32, kind: Dhcp4Kind) -> DeviceEvent {
    let b = n.to_be_bytes();
    let mut ev = DeviceEvent::dhcp4(
        1_795_810_500,
        kind,
        n,
        MacAddr([2, 0, b[0], b[1], b[2], b[3]]),
    );
    ev.rule = Some("default".into());
    ev.uris = vec!["https://sztp.owner.example.com:8443".into()];
    let EventDetail::Dhcp4(d) = &mut ev.detail else {
        unreachable!("built as a DHCPv4 event")
    };
    d.address = Some(Ipv4Addr::from(0xc612_0000 + n));
    d.requested_143 = true;
    d.interface = Some("eth1".into());
    d.encoding = Some(sztp_redirector::policy::UriEncoding::Rfc8572);
    ev
}

fn main() {
    let devices: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let events: Vec<DeviceEvent> = (0..devices)
        .flat_map(|n| [event(n, Dhcp4Kind::Offer), event(n, Dhcp4Kind::Ack)])
        .collect();

    // the fold alone, on this thread
    let metrics = Metrics::new();
    let mut fold = Fold::new(Limits::default());
    let t = Instant::now();
    for ev in events.iter().cloned() {
        let o = sztp_redirector::devices::observe(&ev);
        metrics.events.observe(&ev, &o);
        fold.fold_observed(ev, o);
    }
    let fold_ns = t.elapsed().as_nanos() as f64 / events.len() as f64;

    // the packet path: submit into a queue large enough to drop nothing, then wait for the fold
    let table = DeviceTable::spawn_with_capacity(
        Fold::new(Limits::default()),
        Some(Metrics::new().events.clone()),
        events.len() + 1,
    )
    .expect("fold thread");
    let t = Instant::now();
    for ev in &events {
        table.submit(ev);
    }
    let submit_ns = t.elapsed().as_nanos() as f64 / events.len() as f64;
    table.flush();
    let total = t.elapsed();
    let (kept, evicted) = {
        let f = table.read();
        (f.len(), f.evicted())
    };
    println!(
        "{} events over {devices} devices: submit {submit_ns:.0} ns/event (packet path), \
         fold + metrics {fold_ns:.0} ns/event (fold thread), all folded in {:.1} ms; \
         {} devices kept, {} evicted, {} dropped",
        events.len(),
        total.as_secs_f64() * 1e3,
        kept,
        evicted,
        table.dropped()
    );
}
