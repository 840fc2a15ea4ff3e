//! Writes the DHCPv6 seed corpus (`seeds/dhcp6/`): Solicit (with and without 136 in the ORO,
//! Rapid Commit, vendor and user class), Request/Renew/Rebind/Release/Decline/Confirm for the
//! server DUID of the fuzz fixture, Information-request, one and two levels of Relay-forward
//! with interface-id, remote-id, client link-layer address and Relay Source Port, and the
//! Solicit dhcproto's tests carry. Each seed is: selector octet, two octets of clock advance,
//! then the datagram (see `oracle/dhcp6.rs`).
//!
//! No dependencies, so it also builds alone:
//! `rustc --edition 2021 -O examples/gen_seeds_dhcp6.rs -o target/gen_seeds_dhcp6 && target/gen_seeds_dhcp6 seeds/dhcp6`

use std::path::PathBuf;

const SERVER_DUID: [u8; 14] = [0, 1, 0, 1, 0x2a, 0, 0, 0, 2, 0, 0, 0, 0, 1];

/// Selectors (index into the fixture's arrivals; +128 turns `server-unicast` on).
const LINK: u8 = 0;
const UNICAST: u8 = 1;
const RELAY: u8 = 2;
const RELAY_LL: u8 = 3;
const LINK_1280: u8 = 4;

fn opt(code: u16, v: &[u8]) -> Vec<u8> {
    let mut o = code.to_be_bytes().to_vec();
    o.extend_from_slice(&(v.len() as u16).to_be_bytes());
    o.extend_from_slice(v);
    o
}

fn duid_ll(last: u8) -> Vec<u8> {
    vec![0, 3, 0, 1, 2, 0, 0, 0, 0, last]
}

fn ia_na(iaid: u32, addrs: &[[u8; 16]]) -> Vec<u8> {
    let mut v = iaid.to_be_bytes().to_vec();
    v.extend_from_slice(&[0; 8]);
    for a in addrs {
        let mut x = a.to_vec();
        x.extend_from_slice(&[0, 0, 7, 8, 0, 0, 14, 16]);
        v.extend_from_slice(&opt(5, &x));
    }
    opt(3, &v)
}

fn msg(t: u8, xid: u8, opts: &[Vec<u8>]) -> Vec<u8> {
    let mut m = vec![t, 0x5a, 0x7e, xid];
    for o in opts {
        m.extend_from_slice(o);
    }
    m
}

fn oro(codes: &[u16]) -> Vec<u8> {
    let v: Vec<u8> = codes.iter().flat_map(|c| c.to_be_bytes()).collect();
    opt(6, &v)
}

fn relay(hop: u8, link: [u8; 16], inner: &[u8], extra: &[Vec<u8>]) -> Vec<u8> {
    let mut m = vec![12, hop];
    m.extend_from_slice(&link);
    let mut peer = [0u8; 16];
    peer[..2].copy_from_slice(&[0xfe, 0x80]);
    peer[15] = 2;
    m.extend_from_slice(&peer);
    for e in extra {
        m.extend_from_slice(e);
    }
    m.extend_from_slice(&opt(9, inner));
    m
}

fn a(prefix: u16, last: u16) -> [u8; 16] {
    let mut x = [0u8; 16];
    x[..6].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, prefix as u8]);
    x[14..].copy_from_slice(&last.to_be_bytes());
    x
}

fn seed(sel: u8, dt: u16, datagram: &[u8]) -> Vec<u8> {
    let mut s = vec![sel];
    s.extend_from_slice(&dt.to_be_bytes());
    s.extend_from_slice(datagram);
    s
}

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "seeds/dhcp6".into()));
    std::fs::create_dir_all(&dir).unwrap();
    let elapsed = opt(8, &[0, 0]);
    let sid = opt(2, &SERVER_DUID);
    let cid = |n| opt(1, &duid_ll(n));
    let ask = oro(&[23, 24, 136]);
    let link1 = a(1, 1);
    let link2 = a(2, 1);
    let mut vc = 30065u32.to_be_bytes().to_vec();
    vc.extend_from_slice(&[0, 10]);
    vc.extend_from_slice(b"legacy-dev");
    let uc = [&[0u8, 8][..], b"opi-sztp"].concat();
    let ll79 = opt(79, &[0, 1, 2, 0, 0, 0, 0, 0xa7]);
    let ifid = opt(18, b"ge-0/0/7");
    let rid = opt(37, &[0, 0, 0x7e, 0xd9, b's', b'w', b'1']);
    let port = opt(135, &[0, 0]);

    let solicit = msg(1, 1, &[cid(1), ask.clone(), elapsed.clone(), ia_na(1, &[])]);
    let mut seeds: Vec<(&str, Vec<u8>)> = vec![
        ("solicit-oro136", seed(LINK, 0, &solicit)),
        ("solicit-no-oro", seed(LINK, 0, &msg(1, 2, &[cid(2), elapsed.clone(), ia_na(1, &[])]))),
        (
            "solicit-rapid-commit",
            seed(LINK, 1, &msg(1, 3, &[cid(3), ask.clone(), opt(14, &[]), ia_na(7, &[])])),
        ),
        (
            "solicit-vendor-user-class",
            seed(
                LINK_1280,
                0,
                &msg(1, 4, &[cid(4), ask.clone(), opt(16, &vc), opt(15, &uc), ia_na(1, &[])]),
            ),
        ),
        (
            "request",
            seed(LINK, 2, &msg(3, 1, &[cid(1), sid.clone(), ask.clone(), ia_na(1, &[a(1, 0x1234)])])),
        ),
        (
            "request-unicast",
            seed(UNICAST, 0, &msg(3, 5, &[cid(5), sid.clone(), ia_na(1, &[])])),
        ),
        (
            "request-unicast-allowed",
            seed(UNICAST | 0x80, 0, &msg(3, 5, &[cid(5), sid.clone(), ask.clone(), ia_na(1, &[])])),
        ),
        (
            "renew",
            seed(LINK, 900, &msg(5, 1, &[cid(1), sid.clone(), ask.clone(), ia_na(1, &[a(1, 0x1234), a(2, 9)])])),
        ),
        (
            "rebind",
            seed(LINK, 600, &msg(6, 1, &[cid(1), ask.clone(), ia_na(1, &[a(1, 0x1234)])])),
        ),
        (
            "decline",
            seed(LINK, 1, &msg(9, 1, &[cid(1), sid.clone(), ia_na(1, &[a(1, 0x1234)])])),
        ),
        (
            "release",
            seed(LINK, 1, &msg(8, 3, &[cid(3), sid.clone(), ia_na(7, &[a(1, 0x77)])])),
        ),
        (
            "confirm",
            seed(LINK, 0, &msg(4, 6, &[cid(6), ia_na(1, &[a(1, 5), a(2, 5)])])),
        ),
        (
            "information-request",
            seed(LINK, 0, &msg(11, 7, &[cid(7), ask.clone(), elapsed.clone()])),
        ),
        (
            "information-request-anonymous",
            seed(UNICAST, 0, &msg(11, 8, &[oro(&[136])])),
        ),
        (
            "relay-solicit",
            seed(RELAY, 0, &relay(0, link2, &solicit, &[ifid.clone(), rid.clone(), ll79.clone()])),
        ),
        (
            "relay-two-levels-port",
            seed(
                RELAY_LL,
                0,
                &relay(1, [0; 16], &relay(0, link1, &msg(1, 9, &[cid(9), ask.clone(), ia_na(3, &[])]), &[ifid.clone()]), &[port.clone()]),
            ),
        ),
        (
            "relay-rapid-exhaust",
            seed(RELAY, 0, &relay(0, link2, &msg(1, 10, &[cid(10), opt(14, &[]), ia_na(1, &[]), ia_na(2, &[])]), &[])),
        ),
        (
            "relay-known-device",
            seed(RELAY, 0, &relay(0, link2, &msg(11, 11, &[cid(11), ask.clone()]), &[opt(79, &[0, 1, 2, 0, 0, 0, 0, 0x77])])),
        ),
        (
            "duid-reservation",
            seed(LINK, 0, &msg(1, 12, &[opt(1, &[0, 2, 0, 0, 0, 9, b'x']), ia_na(5, &[])])),
        ),
        (
            "mac-reservation",
            seed(LINK, 0, &msg(1, 13, &[cid(0x42), ia_na(5, &[])])),
        ),
        // dhcproto's test Solicit (DUID-LLT, ORO 23/24, elapsed, IA_PD)
        (
            "dhcproto-solicit",
            seed(
                LINK,
                0,
                &[
                    0x01, 0x10, 0x08, 0x74, 0x00, 0x01, 0x00, 0x0e, 0x00, 0x01, 0x00, 0x01, 0x1c,
                    0x39, 0xcf, 0x88, 0x08, 0x00, 0x27, 0xfe, 0x8f, 0x95, 0x00, 0x06, 0x00, 0x04,
                    0x00, 0x17, 0x00, 0x18, 0x00, 0x08, 0x00, 0x02, 0x00, 0x00, 0x00, 0x19, 0x00,
                    0x0c, 0x27, 0xfe, 0x8f, 0x95, 0x00, 0x00, 0x0e, 0x10, 0x00, 0x00, 0x15, 0x18,
                ],
            ),
        ),
    ];
    seeds.push(("malformed-overrun", seed(LINK, 0, &[1, 0, 0, 1, 0, 1, 0, 200, 1])));
    for (name, bytes) in &seeds {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    println!("{} seeds in {}", seeds.len(), dir.display());
}
