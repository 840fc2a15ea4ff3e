//! Writes the DHCPv4 seed corpus (`seeds/dhcp4/`): DISCOVER/REQUEST/DECLINE/RELEASE/INFORM with
//! PRL incl. 143, option 57, option 82 (circuit-id, remote-id, link-selection, relay-port),
//! client-id, vendor and user class, RFC 3396 splits and overload, and the Kea OFFER of
//! peers-and-crates §7 turned into a BOOTREQUEST.
//!
//! No dependencies, so it also builds alone:
//! `rustc --edition 2021 -O examples/gen_seeds.rs -o target/gen_seeds && target/gen_seeds seeds/dhcp4`

use std::path::PathBuf;

const DISCOVER: u8 = 1;
const REQUEST: u8 = 3;
const DECLINE: u8 = 4;
const RELEASE: u8 = 7;
const INFORM: u8 = 8;

/// Kea 2.2 OFFER, UDP payload (peers-and-crates §7).
const KEA_OFFER: &str = "02010600064028080000000000000000c633646400000000000000000200000000020000000000000000000000000000\
000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
000000000000000000000000000000000000000000000000000000000000000000000000000000000000000063825363\
3501020104ffffff003304000002583604c63364018f3d001f68747470733a2f2f737a7470312e6578616d706c652e74\
6573743a38343433001a68747470733a2f2f5b323030313a6462383a3a315d3a38343433ff";

#[derive(Clone)]
struct Pkt {
    hops: u8,
    xid: u32,
    secs: u16,
    broadcast: bool,
    ciaddr: [u8; 4],
    giaddr: [u8; 4],
    mac: [u8; 6],
    sname: Vec<u8>,
    file: Vec<u8>,
    opts: Vec<u8>,
}

impl Pkt {
    fn new(msg_type: u8, mac_last: u8) -> Pkt {
        Pkt {
            hops: 0,
            xid: 0x5a7e_0000 | u32::from(mac_last) << 8 | u32::from(msg_type),
            secs: 0,
            broadcast: false,
            ciaddr: [0; 4],
            giaddr: [0; 4],
            mac: [2, 0, 0, 0, 0, mac_last],
            sname: vec![],
            file: vec![],
            opts: vec![53, 1, msg_type],
        }
    }
    fn opt(mut self, code: u8, value: &[u8]) -> Pkt {
        self.opts.push(code);
        self.opts.push(value.len() as u8);
        self.opts.extend_from_slice(value);
        self
    }
    fn prl(self, codes: &[u8]) -> Pkt {
        self.opt(55, codes)
    }
    fn bytes(&self) -> Vec<u8> {
        let mut p = vec![1, 1, 6, self.hops];
        p.extend_from_slice(&self.xid.to_be_bytes());
        p.extend_from_slice(&self.secs.to_be_bytes());
        p.extend_from_slice(&(if self.broadcast { 0x8000u16 } else { 0 }).to_be_bytes());
        p.extend_from_slice(&self.ciaddr);
        p.extend_from_slice(&[0; 4]); // yiaddr
        p.extend_from_slice(&[0; 4]); // siaddr
        p.extend_from_slice(&self.giaddr);
        let mut chaddr = [0u8; 16];
        chaddr[..6].copy_from_slice(&self.mac);
        p.extend_from_slice(&chaddr);
        let mut sname = self.sname.clone();
        sname.resize(64, 0);
        let mut file = self.file.clone();
        file.resize(128, 0);
        p.extend_from_slice(&sname);
        p.extend_from_slice(&file);
        p.extend_from_slice(&[99, 130, 83, 99]);
        p.extend_from_slice(&self.opts);
        p.push(255);
        if p.len() < 300 {
            p.resize(300, 0);
        }
        p
    }
}

fn client_id(mac_last: u8) -> Vec<u8> {
    vec![1, 2, 0, 0, 0, 0, mac_last]
}

fn rai(subopts: &[(u8, &[u8])]) -> Vec<u8> {
    let mut v = vec![];
    for (c, d) in subopts {
        v.push(*c);
        v.push(d.len() as u8);
        v.extend_from_slice(d);
    }
    v
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .or_else(|| {
                std::env::var("CARGO_MANIFEST_DIR")
                    .ok()
                    .map(|d| d + "/seeds/dhcp4")
            })
            .unwrap_or_else(|| "seeds/dhcp4".into()),
    );
    std::fs::create_dir_all(&dir).unwrap();
    let sid = [198, 51, 100, 1];
    let a100 = [198, 51, 100, 100];
    let prl = [1, 3, 6, 15, 119, 143];
    let relay = rai(&[
        (1, b"g0/1"),
        (2, b"leaf-7"),
        (5, &[198, 51, 100, 1]),
        (19, &[0x1a, 0x6f]),
    ]);
    let relay_b = rai(&[(1, b"xe-0/0/1"), (5, &[192, 0, 2, 1])]);

    let mut seeds: Vec<(&str, Vec<u8>)> = vec![];
    let base = Pkt::new(DISCOVER, 2)
        .opt(61, &client_id(2))
        .opt(60, b"Cisco Systems, Inc.")
        .opt(12, b"sw1")
        .prl(&prl);
    seeds.push(("discover-prl143", base.bytes()));
    seeds.push((
        "discover-57-1500",
        base.clone().opt(57, &1500u16.to_be_bytes()).bytes(),
    ));
    seeds.push((
        "discover-57-576",
        base.clone().opt(57, &576u16.to_be_bytes()).bytes(),
    ));
    let mut p = base.clone().opt(82, &relay);
    p.giaddr = [203, 0, 113, 1];
    p.hops = 1;
    seeds.push(("discover-relay-82", p.bytes()));
    let mut p = Pkt::new(DISCOVER, 3).prl(&prl).opt(82, &relay_b);
    p.giaddr = [192, 0, 2, 1];
    p.hops = 1;
    seeds.push(("discover-relay-subnet-b", p.bytes()));
    let mut p = Pkt::new(REQUEST, 3)
        .prl(&prl)
        .opt(118, &[192, 0, 2, 0])
        .opt(50, &[192, 0, 2, 10])
        .opt(54, &[192, 0, 2, 1]);
    p.giaddr = [192, 0, 2, 1];
    p.hops = 1; // received on eth2, which has 192.0.2.1
    seeds.push(("request-subnet-selection", p.bytes()));
    seeds.push((
        "discover-legacy-text",
        Pkt::new(DISCOVER, 4)
            .opt(60, b"legacy-switch")
            .prl(&[143])
            .bytes(),
    ));
    seeds.push((
        "discover-opi-user-class",
        Pkt::new(DISCOVER, 5)
            .opt(77, b"\x08opi-sztp\x02xy")
            .prl(&[1, 143])
            .bytes(),
    ));
    seeds.push((
        "discover-always-send",
        Pkt::new(DISCOVER, 0)
            .bytes()
            .into_iter()
            .enumerate()
            .map(|(i, b)| if i == 32 { 1 } else { b }) // chaddr 02:00:00:00:01:00
            .collect(),
    ));
    seeds.push((
        "discover-reserved",
        Pkt::new(DISCOVER, 0x42).prl(&prl).bytes(),
    ));
    seeds.push((
        "discover-known-device",
        Pkt::new(DISCOVER, 0x77).prl(&prl).bytes(),
    ));
    seeds.push((
        "discover-client-id-text",
        Pkt::new(DISCOVER, 6)
            .opt(61, b"sn-FOC1234")
            .prl(&prl)
            .bytes(),
    ));
    let mut p = Pkt::new(DISCOVER, 7).opt(52, &[3]).opt(57, &[2, 64]);
    p.file = vec![55, 3, 1, 3, 143, 255];
    p.sname = vec![60, 4, b'o', b'p', b'i', b'x', 255];
    p.broadcast = true;
    seeds.push(("discover-overload", p.bytes()));
    let long82 = rai(&[(1, &[b'c'; 200]), (2, &[b'r'; 120]), (19, &[0x1a, 0x6f])]);
    let mut p = Pkt::new(DISCOVER, 8)
        .opt(55, &[1, 3])
        .opt(12, b"split")
        .opt(55, &[6, 143])
        .opt(82, &long82[..255])
        .opt(82, &long82[255..])
        .opt(57, &1500u16.to_be_bytes());
    p.giaddr = [198, 51, 100, 2];
    seeds.push(("discover-split-55-82", p.bytes()));
    seeds.push((
        "request-selecting",
        Pkt::new(REQUEST, 2)
            .opt(61, &client_id(2))
            .opt(50, &a100)
            .opt(54, &sid)
            .prl(&prl)
            .bytes(),
    ));
    seeds.push((
        "request-other-server",
        Pkt::new(REQUEST, 2)
            .opt(61, &client_id(2))
            .opt(50, &a100)
            .opt(54, &[192, 0, 2, 99])
            .bytes(),
    ));
    seeds.push((
        "request-init-reboot",
        Pkt::new(REQUEST, 9)
            .opt(50, &[198, 51, 100, 101])
            .prl(&prl)
            .bytes(),
    ));
    let mut p = Pkt::new(REQUEST, 2).opt(61, &client_id(2)).prl(&prl);
    p.ciaddr = a100;
    p.secs = 1800;
    seeds.push(("request-renewing", p.bytes()));
    seeds.push((
        "decline",
        Pkt::new(DECLINE, 2)
            .opt(61, &client_id(2))
            .opt(50, &a100)
            .opt(54, &sid)
            .bytes(),
    ));
    let mut p = Pkt::new(RELEASE, 2).opt(61, &client_id(2)).opt(54, &sid);
    p.ciaddr = a100;
    seeds.push(("release", p.bytes()));
    let mut p = Pkt::new(INFORM, 2).prl(&prl).opt(60, b"Juniper-ex4300");
    p.ciaddr = [198, 51, 100, 77];
    seeds.push(("inform", p.bytes()));
    let mut p = Pkt::new(INFORM, 3).prl(&prl).opt(82, &relay);
    p.ciaddr = [198, 51, 100, 78];
    p.giaddr = [198, 51, 100, 2];
    seeds.push(("inform-relayed", p.bytes()));

    // the Kea OFFER as a BOOTREQUEST: op 1, and its type made DISCOVER and REQUEST
    let kea = unhex(KEA_OFFER);
    assert_eq!(kea.len(), 325);
    let t = 240 + 2; // the value of option 53, the first option
    assert_eq!(&kea[240..243], &[53, 1, 2]);
    for (name, ty) in [
        ("kea-offer-as-discover", DISCOVER),
        ("kea-offer-as-request", REQUEST),
    ] {
        let mut k = kea.clone();
        k[0] = 1;
        k[t] = ty;
        seeds.push((name, k));
    }

    for (name, bytes) in &seeds {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    eprintln!("{} seeds in {}", seeds.len(), dir.display());
}
