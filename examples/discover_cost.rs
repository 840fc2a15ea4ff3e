//! Micro-measurement: CPU time of one DHCPv4 DISCOVER on a /15 pool that is fresh, used
//! through (every address leased once and expired: no never-used address is left) and
//! exhausted (every address bound), with 64 reservations in the subnet.
//!
//! `cargo run --release --example discover_cost` prints microseconds per DISCOVER (median of
//! the runs). It measures the handler alone: no sockets, no journal.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, Message, MessageType, OptionCode};
use dhcproto::Encodable;
use sztp_redirector::config::{Dhcp4, Pool4, Reservation4, Subnet4};
use sztp_redirector::dhcp::leases::{Lease4, LeaseState, LeaseTable};
use sztp_redirector::dhcp::v4::handler::{handle, Context, RequestMeta};
use sztp_redirector::dhcp::v4::wire::Request;
use sztp_redirector::policy::{MacAddr, Policy};

const NOW: u64 = 1_800_000_000;
const START: u32 = 0xC612_0001; // 198.18.0.1
const END: u32 = 0xC613_FFFE; // 198.19.255.254

fn dhcp4() -> Dhcp4 {
    Dhcp4 {
        interfaces: vec!["eth1".into()],
        port: 67,
        client_port: 68,
        server_id: Some(Ipv4Addr::new(198, 18, 0, 1)),
        offer_time: Duration::from_secs(60),
        decline_time: Duration::from_secs(3600),
        authoritative: false,
        subnets: vec![Subnet4 {
            subnet: "198.18.0.0/15".parse().unwrap(),
            pools: vec![Pool4 {
                start: Ipv4Addr::from(START + 1),
                end: Ipv4Addr::from(END),
            }],
            routers: vec![],
            dns_servers: vec![],
            domain_name: None,
            domain_search: vec![],
            lease_time: Duration::from_secs(3600),
            renewal_time: None,
            rebinding_time: None,
            authoritative: false,
            reservations: (0..64u32)
                .map(|i| Reservation4 {
                    mac: MacAddr([2, 0xee, 0, 0, 0, i as u8]),
                    address: Ipv4Addr::from(START + 1000 + i * 97),
                    hostname: None,
                })
                .collect(),
        }],
    }
}

fn mac(n: u32) -> MacAddr {
    let b = n.to_be_bytes();
    MacAddr([2, 1, b[0], b[1], b[2], b[3]])
}

fn table(state: Option<(LeaseState, u64)>) -> LeaseTable {
    let Some((st, expires)) = state else {
        return LeaseTable::default();
    };
    LeaseTable::from_records(
        (START + 1..=END)
            .map(|a| Lease4 {
                addr: Ipv4Addr::from(a),
                mac: mac(a),
                client_id: None,
                hostname: None,
                expires,
                state: st,
            })
            .collect(),
    )
}

fn discover(n: u32) -> Request {
    let m = mac(0x4000_0000 + n);
    let mut msg = Message::new_with_id(
        n,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::new(198, 18, 0, 2),
        &m.0,
    );
    msg.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Discover));
    msg.opts_mut().insert(DhcpOption::ParameterRequestList(vec![
        OptionCode::SubnetMask,
    ]));
    Request::decode(&msg.to_vec().unwrap()).unwrap()
}

fn measure(label: &str, mut t: LeaseTable, n: u32) {
    let d = dhcp4();
    let p = Policy::default();
    let ctx = Context {
        dhcp4: &d,
        policy: &p,
    };
    let meta = RequestMeta {
        interface: "eth1".into(),
        iface_addrs: vec!["198.18.0.1/15".parse().unwrap()],
        src: "198.18.0.2:67".parse().unwrap(),
    };
    let reqs: Vec<Request> = (0..n).map(discover).collect();
    let mut per = Vec::new();
    let mut offered = 0;
    for r in &reqs {
        let t0 = Instant::now();
        let o = handle(&ctx, &mut t, r, &meta, NOW);
        per.push(t0.elapsed());
        offered += usize::from(o.reply.is_some());
    }
    per.sort();
    let median = per[per.len() / 2];
    println!(
        "{label:<40} {:>10.2} us/DISCOVER (median of {n}, max {:.2} us), {offered} offers",
        median.as_secs_f64() * 1e6,
        per[per.len() - 1].as_secs_f64() * 1e6
    );
}

fn main() {
    println!(
        "pool: 198.18.0.2-198.19.255.254 ({} addresses), 64 reservations",
        END - START
    );
    measure("fresh (no lease)", table(None), 1000);
    measure(
        "used through (every address expired)",
        table(Some((LeaseState::Bound, NOW - 10))),
        50,
    );
    measure(
        "exhausted (every address bound)",
        table(Some((LeaseState::Bound, NOW + 3600))),
        20,
    );
}
