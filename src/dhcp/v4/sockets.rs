//! DHCPv4 sockets: one UDP socket per served interface (SO_BINDTODEVICE), interface facts, raw sender
//!
//! No unsafe code: interface facts come from `pnet::datalink::interfaces()` (which wraps
//! getifaddrs) and socket options from socket2.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::Duration;

use ipnet::Ipv4Net;
use pnet::datalink::{self, Channel, DataLinkReceiver, DataLinkSender, NetworkInterface};
use socket2::{Domain, Protocol, Socket, Type};

use super::frame::build_udp_frame;
use crate::policy::MacAddr;

/// Receive buffer asked for on each DHCP socket.
pub const RECV_BUFFER: usize = 4 << 20;

/// What the server and the probe need to know about one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfaceInfo {
    pub name: String,
    pub index: u32,
    pub mac: Option<MacAddr>,
    pub ipv4: Vec<Ipv4Net>,
}

fn find_interface(name: &str) -> io::Result<NetworkInterface> {
    datalink::interfaces()
        .into_iter()
        .find(|i| i.name == name)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no such interface {name:?}"),
            )
        })
}

/// Name, index, MAC and IPv4 networks of `name`; `NotFound` with `no such interface "eth9"`.
pub fn iface_info(name: &str) -> io::Result<IfaceInfo> {
    let i = find_interface(name)?;
    let ipv4 = i
        .ips
        .iter()
        .filter_map(|n| match n {
            pnet::ipnetwork::IpNetwork::V4(v4) => Ipv4Net::new(v4.ip(), v4.prefix()).ok(),
            pnet::ipnetwork::IpNetwork::V6(_) => None,
        })
        .collect();
    Ok(IfaceInfo {
        name: i.name.clone(),
        index: i.index,
        // loopback and tunnels report the all-zero address: that is no MAC
        mac: i.mac.map(|m| MacAddr(m.octets())).filter(|m| m.0 != [0; 6]),
        ipv4,
    })
}

/// A UDP socket on `0.0.0.0:port` scoped to `iface` (SO_BINDTODEVICE), able to send to
/// 255.255.255.255 (SO_BROADCAST), non-blocking so tokio can adopt it.
pub fn bind_udp4(iface: &str, port: u16) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    s.bind_device(Some(iface.as_bytes()))
        .map_err(|e| io::Error::new(e.kind(), format!("SO_BINDTODEVICE {iface:?}: {e}")))?;
    s.bind(&SocketAddr::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).into())?;
    // a deep queue absorbs bursts (a rack of devices powering up at once): ask for 4 MiB,
    // past net.core.rmem_max when allowed, else take what the kernel grants
    if crate::sys::force_recv_buffer(std::os::fd::AsFd::as_fd(&s), RECV_BUFFER).is_err() {
        let _ = s.set_recv_buffer_size(RECV_BUFFER);
    }
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Open an AF_PACKET Ethernet channel on `iface` (needs CAP_NET_RAW). `read_timeout` bounds
/// each receive so callers can keep their own deadlines.
pub fn ethernet_channel(
    iface: &str,
    read_timeout: Option<Duration>,
    promiscuous: bool,
) -> io::Result<(Box<dyn DataLinkSender>, Box<dyn DataLinkReceiver>)> {
    let i = find_interface(iface)?;
    let config = datalink::Config {
        read_timeout,
        promiscuous,
        ..Default::default()
    };
    match datalink::channel(&i, config) {
        Ok(Channel::Ethernet(tx, rx)) => Ok((tx, rx)),
        Ok(_) => Err(io::Error::other(format!(
            "{iface}: not an Ethernet channel"
        ))),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("raw socket on {iface}: {e}"),
        )),
    }
}

/// Sends hand-built Ethernet/IPv4/UDP frames on one interface, so a reply can reach a client
/// MAC that has no address yet without ARP.
pub struct RawSender {
    src_mac: MacAddr,
    tx: Box<dyn DataLinkSender>,
}

impl RawSender {
    /// Fails with `PermissionDenied` (EPERM) without CAP_NET_RAW; the server then broadcasts.
    pub fn open(iface: &IfaceInfo) -> io::Result<RawSender> {
        let src_mac = iface.mac.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: interface has no MAC address", iface.name),
            )
        })?;
        // the server only sends: the served interface stays out of promiscuous mode
        let (tx, _rx) = ethernet_channel(&iface.name, None, false)?;
        Ok(RawSender { src_mac, tx })
    }

    pub fn send_udp(
        &mut self,
        dst_mac: MacAddr,
        src: SocketAddrV4,
        dst: SocketAddrV4,
        payload: &[u8],
    ) -> io::Result<()> {
        let frame = build_udp_frame(self.src_mac, dst_mac, src, dst, payload);
        match self.tx.send_to(&frame, None) {
            Some(r) => r,
            None => Err(io::Error::other("raw send: no buffer")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_interface_message() {
        let e = iface_info("eth9-nope").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!(e.to_string(), "no such interface \"eth9-nope\"");
    }

    #[test]
    fn loopback_facts() {
        let lo = iface_info("lo").unwrap();
        assert_eq!(lo.name, "lo");
        assert!(lo.index > 0);
        assert_eq!(lo.mac, None);
        assert!(lo.ipv4.iter().any(|n| n.addr() == Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn bind_on_loopback_is_nonblocking() {
        let s = bind_udp4("lo", 0).unwrap();
        let mut buf = [0u8; 4];
        let e = s.recv_from(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(s.broadcast().unwrap());
    }
}
