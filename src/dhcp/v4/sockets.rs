//! DHCPv4 sockets: one UDP socket per served interface (SO_BINDTODEVICE), interface facts, raw sender
//!
//! No unsafe code: interface facts come from [`crate::netif`] (pnet's getifaddrs wrapper) and
//! socket options from socket2 and nix.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use pnet::datalink::{self, Channel, DataLinkReceiver, DataLinkSender};
use socket2::{Domain, Protocol, Socket, Type};

use super::frame::build_udp_frame;
use crate::netif::find_interface;
pub use crate::netif::{iface_info, IfaceInfo};
use crate::policy::MacAddr;
use crate::udp_bind::{bind_exclusive, PortClaim};

/// Receive buffer asked for on each DHCP socket.
pub const RECV_BUFFER: usize = 4 << 20;

/// A UDP socket on `0.0.0.0:port` scoped to `iface` (SO_BINDTODEVICE), able to send to
/// 255.255.255.255 (SO_BROADCAST), non-blocking so tokio can adopt it; no other process can
/// bind the same interface and port while the returned claim lives ([`bind_exclusive`]).
pub fn bind_udp4(iface: &str, port: u16) -> io::Result<(UdpSocket, Arc<PortClaim>)> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_broadcast(true)?;
    s.bind_device(Some(iface.as_bytes()))
        .map_err(|e| io::Error::new(e.kind(), format!("SO_BINDTODEVICE {iface:?}: {e}")))?;
    let claim = bind_exclusive(
        &s,
        SocketAddr::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)),
        Some(iface),
    )?;
    // a deep queue absorbs bursts (a rack of devices powering up at once): ask for 4 MiB,
    // past net.core.rmem_max when allowed, else take what the kernel grants
    if crate::sys::force_recv_buffer(&s, RECV_BUFFER).is_err() {
        let _ = s.set_recv_buffer_size(RECV_BUFFER);
    }
    s.set_nonblocking(true)?;
    Ok((s.into(), claim))
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

    /// Sends `payload` from `src` to `dst` in a frame to `dst_mac`.
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
    fn bind_on_loopback_is_nonblocking() {
        let (s, _claim) = bind_udp4("lo", 0).unwrap();
        let mut buf = [0u8; 4];
        let e = s.recv_from(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(s.broadcast().unwrap());
    }
}
