//! Ethernet/IPv4/UDP frames for replies sent straight to a client MAC (pnet), and their parsing

use std::net::{Ipv4Addr, SocketAddrV4};

use pnet::packet::ethernet::{EtherTypes, EthernetPacket, MutableEthernetPacket};
use pnet::packet::ip::IpNextHeaderProtocols;
use pnet::packet::ipv4::{self, Ipv4Packet, MutableIpv4Packet};
use pnet::packet::udp::{self, MutableUdpPacket, UdpPacket};

use crate::policy::MacAddr;

const ETH_LEN: usize = 14;
const IPV4_LEN: usize = 20;
const UDP_LEN: usize = 8;

/// A UDP datagram in an Ethernet II frame, borrowed from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UdpFrame<'a> {
    pub(crate) src_mac: MacAddr,
    pub(crate) dst_mac: MacAddr,
    pub(crate) src: SocketAddrV4,
    pub(crate) dst: SocketAddrV4,
    pub(crate) payload: &'a [u8],
}

/// Ethernet II + IPv4 (no options, TTL 64, DF clear, id 0) + UDP, both checksums filled in.
pub(crate) fn build_udp_frame(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: &[u8],
) -> Vec<u8> {
    let udp_len = UDP_LEN + payload.len();
    let ip_len = IPV4_LEN + udp_len;
    let mut buf = vec![0u8; ETH_LEN + ip_len];

    {
        let mut u = MutableUdpPacket::new(&mut buf[ETH_LEN + IPV4_LEN..]).expect("sized above");
        u.set_source(src.port());
        u.set_destination(dst.port());
        u.set_length(udp_len as u16);
        u.set_payload(payload);
        let sum = udp::ipv4_checksum(&u.to_immutable(), src.ip(), dst.ip());
        // RFC 768: a computed zero is sent as all ones (zero means "no checksum")
        u.set_checksum(if sum == 0 { 0xffff } else { sum });
    }
    {
        let mut ip = MutableIpv4Packet::new(&mut buf[ETH_LEN..]).expect("sized above");
        ip.set_version(4);
        ip.set_header_length(5);
        ip.set_total_length(ip_len as u16);
        ip.set_ttl(64);
        ip.set_next_level_protocol(IpNextHeaderProtocols::Udp);
        ip.set_source(*src.ip());
        ip.set_destination(*dst.ip());
        let sum = ipv4::checksum(&ip.to_immutable());
        ip.set_checksum(sum);
    }
    {
        let mut eth = MutableEthernetPacket::new(&mut buf).expect("sized above");
        eth.set_destination(to_pnet(dst_mac));
        eth.set_source(to_pnet(src_mac));
        eth.set_ethertype(EtherTypes::Ipv4);
    }
    buf
}

pub(crate) fn to_pnet(m: MacAddr) -> pnet::util::MacAddr {
    let [a, b, c, d, e, f] = m.0;
    pnet::util::MacAddr::new(a, b, c, d, e, f)
}

/// Parse an Ethernet II frame carrying an unfragmented IPv4/UDP datagram. `None` for anything
/// else, including a bad IPv4 header checksum. The UDP checksum is not checked: frames read
/// on the sending host may carry a partial (offloaded) one.
pub(crate) fn parse_udp_frame(frame: &[u8]) -> Option<UdpFrame<'_>> {
    let eth = EthernetPacket::new(frame)?;
    if eth.get_ethertype() != EtherTypes::Ipv4 {
        return None;
    }
    let ip_bytes = &frame[ETH_LEN..];
    let ip = Ipv4Packet::new(ip_bytes)?;
    let ihl = usize::from(ip.get_header_length()) * 4;
    let total = usize::from(ip.get_total_length());
    if ip.get_version() != 4 || ihl < IPV4_LEN || total < ihl || total > ip_bytes.len() {
        return None;
    }
    if ipv4::checksum(&ip) != ip.get_checksum() {
        return None;
    }
    // more-fragments flag or a non-zero offset: not a whole datagram
    if ip.get_flags() & 0b001 != 0 || ip.get_fragment_offset() != 0 {
        return None;
    }
    if ip.get_next_level_protocol() != IpNextHeaderProtocols::Udp {
        return None;
    }
    let udp_bytes = &ip_bytes[ihl..total];
    let u = UdpPacket::new(udp_bytes)?;
    let ulen = usize::from(u.get_length());
    if ulen < UDP_LEN || ulen > udp_bytes.len() {
        return None;
    }
    let src_ip: Ipv4Addr = ip.get_source();
    let dst_ip: Ipv4Addr = ip.get_destination();
    Some(UdpFrame {
        src_mac: MacAddr(eth.get_source().octets()),
        dst_mac: MacAddr(eth.get_destination().octets()),
        src: SocketAddrV4::new(src_ip, u.get_source()),
        dst: SocketAddrV4::new(dst_ip, u.get_destination()),
        payload: &udp_bytes[UDP_LEN..ulen],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::hex;

    /// RFC 1071 one's-complement sum, written out independently of pnet.
    fn rfc1071(chunks: &[&[u8]]) -> u16 {
        let mut all = Vec::new();
        for c in chunks {
            all.extend_from_slice(c);
        }
        if all.len() % 2 == 1 {
            all.push(0);
        }
        let mut sum: u32 = all
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    // peers-and-crates §7: the Kea 2.2 OFFER, 325 bytes of UDP payload
    fn kea_offer() -> Vec<u8> {
        hex("02010600064028080000000000000000c633646400000000000000000200000000020000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000063825363
        3501020104ffffff003304000002583604c63364018f3d001f68747470733a2f2f737a7470312e6578616d706c652e74
        6573743a38343433001a68747470733a2f2f5b323030313a6462383a3a315d3a38343433ff")
    }

    fn addrs() -> (MacAddr, MacAddr, SocketAddrV4, SocketAddrV4) {
        (
            "02:00:00:00:00:01".parse().unwrap(),
            "02:00:00:00:00:02".parse().unwrap(),
            "198.51.100.1:67".parse().unwrap(),
            "198.51.100.100:68".parse().unwrap(),
        )
    }

    #[test]
    fn kea_offer_frame_headers_and_checksums() {
        let payload = kea_offer();
        assert_eq!(payload.len(), 325);
        let (smac, dmac, src, dst) = addrs();
        let f = build_udp_frame(smac, dmac, src, dst, &payload);
        assert_eq!(f.len(), 14 + 20 + 8 + 325);
        // Ethernet
        assert_eq!(&f[..14], &hex("020000000002 020000000001 0800")[..]);
        // IPv4 header: 45 00 len=353 id 0 flags/frag 0 ttl 64 udp, addresses
        let ip = &f[14..34];
        assert_eq!(&ip[..10], &hex("4500 0161 0000 0000 4011")[..]);
        assert_eq!(&ip[12..20], &hex("c6336401 c6336464")[..]);
        let mut zeroed = ip.to_vec();
        zeroed[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(u16::from_be_bytes([ip[10], ip[11]]), rfc1071(&[&zeroed]));
        // whole header sums to zero with its checksum in place
        assert_eq!(rfc1071(&[ip]), 0);
        // UDP header and checksum over the pseudo-header
        let udp = &f[34..];
        assert_eq!(&udp[..6], &hex("0043 0044 014d")[..]);
        let pseudo = hex("c6336401 c6336464 0011 014d");
        let mut u = udp.to_vec();
        u[6..8].copy_from_slice(&[0, 0]);
        assert_eq!(
            u16::from_be_bytes([udp[6], udp[7]]),
            rfc1071(&[&pseudo, &u])
        );
        assert_eq!(rfc1071(&[&pseudo, udp]), 0);
    }

    #[test]
    fn round_trip() {
        let (smac, dmac, src, dst) = addrs();
        let payload = kea_offer();
        let f = build_udp_frame(smac, dmac, src, dst, &payload);
        let p = parse_udp_frame(&f).unwrap();
        assert_eq!(
            p,
            UdpFrame {
                src_mac: smac,
                dst_mac: dmac,
                src,
                dst,
                payload: &payload
            }
        );
        // odd payload length, broadcast addresses
        let b = build_udp_frame(
            smac,
            MacAddr([0xff; 6]),
            "0.0.0.0:68".parse().unwrap(),
            "255.255.255.255:67".parse().unwrap(),
            b"abc",
        );
        let p = parse_udp_frame(&b).unwrap();
        assert_eq!(p.payload, b"abc");
        assert_eq!(p.dst, "255.255.255.255:67".parse().unwrap());
    }

    #[test]
    fn parse_rejects_bad_checksum_and_non_udp() {
        let (smac, dmac, src, dst) = addrs();
        let mut f = build_udp_frame(smac, dmac, src, dst, b"hello");
        let good = f.clone();
        f[14 + 8] = 63; // ttl changed, checksum stale
        assert!(parse_udp_frame(&f).is_none());
        let mut f = good.clone();
        f[12] = 0x86; // ethertype IPv6
        assert!(parse_udp_frame(&f).is_none());
        assert!(parse_udp_frame(&good[..30]).is_none());
        // trailing Ethernet padding is ignored
        let mut padded = good.clone();
        padded.extend_from_slice(&[0; 20]);
        assert_eq!(parse_udp_frame(&padded).unwrap().payload, b"hello");
    }

    #[test]
    fn parse_handles_ip_options() {
        let (smac, dmac, src, dst) = addrs();
        let f = build_udp_frame(smac, dmac, src, dst, b"opt");
        // insert a 4-octet IPv4 option (NOP NOP NOP EOL), IHL 6
        let mut g = f[..34].to_vec();
        g.extend_from_slice(&[1, 1, 1, 0]);
        g.extend_from_slice(&f[34..]);
        g[14] = 0x46;
        let total = u16::from_be_bytes([g[16], g[17]]) + 4;
        g[16..18].copy_from_slice(&total.to_be_bytes());
        g[24..26].copy_from_slice(&[0, 0]);
        let sum = rfc1071(&[&g[14..38]]);
        g[24..26].copy_from_slice(&sum.to_be_bytes());
        let p = parse_udp_frame(&g).unwrap();
        assert_eq!(p.payload, b"opt");
        assert_eq!(p.src, src);
    }
}
