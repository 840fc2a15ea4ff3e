//! Binding a server's UDP port so that no other process can share it, while this process can
//! bind it again on a reload
//!
//! Two DHCP servers on one interface and port used to both bind (each set SO_REUSEADDR), and
//! the kernel then delivered unicast (relayed) traffic to the newer one only: the older server
//! went silent without an error. SO_REUSEADDR was there so a reload can bind the new socket of
//! an interface while the old one still serves it. Now sockets are bound without it, so any
//! other process's bind of the same device and port fails (EADDRINUSE, and ours fails against
//! theirs); a rebind in this process finds the old socket among the [`PortClaim`]s this process
//! holds, sets SO_REUSEADDR on both only for the instant of the bind, and clears it again.
//! SO_REUSEADDR is thus only ever shared between sockets of this process.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, Weak};

use socket2::{SockRef, Socket};

/// Which bindings conflict: the device a socket is scoped to (SO_BINDTODEVICE, empty for none)
/// and its local address.
type Key = (String, SocketAddr);

/// Bindings of this process, by key; entries of sockets since closed are dead and pruned.
static HELD: Mutex<Vec<(Key, Weak<PortClaim>)>> = Mutex::new(Vec::new());

/// Proof that this process holds a bound socket: a duplicate of its descriptor. Keep it as
/// long as the socket serves (it keeps the socket bound); a rebind of the same device and
/// address in this process succeeds while any claim on it lives.
#[derive(Debug)]
pub struct PortClaim {
    key: Key,
    fd: OwnedFd,
}

impl PortClaim {
    /// The device (empty: none) and local address claimed.
    pub fn key(&self) -> (&str, SocketAddr) {
        (&self.key.0, self.key.1)
    }
}

fn set_reuse(fd: impl AsFd, on: bool) -> io::Result<()> {
    SockRef::from(&fd).set_reuse_address(on)
}

/// Binds `socket` (made by the caller, SO_BINDTODEVICE `device` already set, SO_REUSEADDR not)
/// to `addr`. Port 0 binds an ephemeral port, which nothing shares (the claim names the port
/// bound, so binding that port again later is a rebind).
///
/// # Errors
/// `AddrInUse` when another process has the device and port (`UDP port 67 on eth1 is in use by
/// another process: …`), or the OS error of the bind.
pub fn bind_exclusive(
    socket: &Socket,
    addr: SocketAddr,
    device: Option<&str>,
) -> io::Result<Arc<PortClaim>> {
    let key: Key = (device.unwrap_or("").to_owned(), addr);
    let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    held.retain(|(_, w)| w.strong_count() > 0);
    let ours: Vec<Arc<PortClaim>> = if addr.port() == 0 {
        Vec::new()
    } else {
        held.iter()
            .filter(|(k, _)| *k == key)
            .filter_map(|(_, w)| w.upgrade())
            .collect()
    };
    let bound = if ours.is_empty() {
        socket.bind(&addr.into())
    } else {
        // our own socket still serves this port (a reload): share it for this one bind
        let mut res = ours.iter().try_for_each(|c| set_reuse(&c.fd, true));
        if res.is_ok() {
            res = socket
                .set_reuse_address(true)
                .and_then(|()| socket.bind(&addr.into()));
        }
        for c in &ours {
            let _ = set_reuse(&c.fd, false);
        }
        let _ = socket.set_reuse_address(false);
        res
    };
    bound.map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            let on = device.map(|d| format!(" on {d}")).unwrap_or_default();
            io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "UDP port {}{on} is in use by another process: another DHCP server, or \
                     another sztp-redirector (with another state-dir), serves it",
                    addr.port()
                ),
            )
        } else {
            e
        }
    })?;
    let local = socket.local_addr()?.as_socket().unwrap_or(addr);
    let claim = Arc::new(PortClaim {
        key: (key.0, local),
        fd: OwnedFd::from(socket.try_clone()?),
    });
    held.push((claim.key.clone(), Arc::downgrade(&claim)));
    Ok(claim)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, UdpSocket};

    use socket2::{Domain, Protocol, Type};

    use super::*;

    fn socket() -> Socket {
        Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap()
    }

    const ANY_PORT: SocketAddr =
        SocketAddr::V4(std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));

    #[test]
    fn another_socket_cannot_share_the_port_even_with_reuseaddr() {
        let a = socket();
        let claim = bind_exclusive(&a, ANY_PORT, None).unwrap();
        let addr = claim.key().1;
        assert_ne!(addr.port(), 0);
        assert!(!a.reuse_address().unwrap());
        // a foreign socket (another daemon) that asks for SO_REUSEADDR is refused all the same
        let b = socket();
        b.set_reuse_address(true).unwrap();
        assert_eq!(
            b.bind(&addr.into()).unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );
    }

    #[test]
    fn this_process_rebinds_while_the_old_socket_lives_then_shares_no_more() {
        let old = socket();
        let old_claim = bind_exclusive(&old, ANY_PORT, None).unwrap();
        let addr = old_claim.key().1;
        let new = socket();
        let _new_claim = bind_exclusive(&new, addr, None).unwrap();
        assert!(!old.reuse_address().unwrap() && !new.reuse_address().unwrap());
        let foreign = socket();
        foreign.set_reuse_address(true).unwrap();
        assert_eq!(
            foreign.bind(&addr.into()).unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );
        // the old instance goes; the new one keeps the port to itself
        drop(old_claim);
        drop(old);
        let c = socket();
        c.set_reuse_address(true).unwrap();
        assert_eq!(
            c.bind(&addr.into()).unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );
    }

    #[test]
    fn a_port_held_elsewhere_is_a_clear_error() {
        let other = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = other.local_addr().unwrap();
        let e = bind_exclusive(&socket(), addr, Some("lo")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        assert_eq!(
            e.to_string(),
            format!(
                "UDP port {} on lo is in use by another process: another DHCP server, or \
                 another sztp-redirector (with another state-dir), serves it",
                addr.port()
            )
        );
        // port 0 is never shared and never refused
        let a = bind_exclusive(&socket(), ANY_PORT, None).unwrap();
        let b = bind_exclusive(&socket(), ANY_PORT, None).unwrap();
        assert_ne!(a.key().1, b.key().1);
    }
}
