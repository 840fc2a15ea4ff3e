//! Privileges and the one socket option socket2 lacks, through safe wrappers (nix, caps)
//!
//! Dropping root happens once, after every service has bound its sockets and before any thread
//! is started, so every thread inherits the reduced credentials (Linux capabilities are per
//! thread). The capabilities in [`RUNTIME_CAPABILITIES`] are kept when the process had them:
//! a SIGHUP that moves a service to a new port below 1024 or a new interface must still be able
//! to bind and open raw frames. Bound sockets, raw channels and open files stay usable.

use std::io;

use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Uid, User};

/// Capabilities kept after dropping root (when the process had them): binding ports below
/// 1024 on reload, and raw frames to a client MAC (RFC 2131 §4.1) on a newly served interface.
pub const RUNTIME_CAPABILITIES: [Capability; 2] =
    [Capability::CAP_NET_BIND_SERVICE, Capability::CAP_NET_RAW];

fn errno(e: nix::errno::Errno) -> io::Error {
    io::Error::from(e)
}

fn caps_err(e: caps::errors::CapsError) -> io::Error {
    io::Error::other(e.to_string())
}

/// uid and gid of a user name (getpwnam_r).
///
/// # Errors
/// `NotFound` with `no such user "name"`; the OS error when the lookup itself fails.
pub fn lookup(user: &str) -> io::Result<(u32, u32)> {
    match User::from_name(user).map_err(errno)? {
        Some(u) => Ok((u.uid.as_raw(), u.gid.as_raw())),
        None => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no such user {user:?}"),
        )),
    }
}

/// Whether the effective uid is 0.
pub fn is_root() -> bool {
    Uid::effective().is_root()
}

/// Drop supplementary groups, then gid, then uid, keeping those of `keep` the process has in
/// its permitted set (effective and permitted, nothing inheritable or ambient); irreversible.
/// The capability bounding set is cleared first and no-new-privs is set last ([`restrict`]), so
/// nothing the process could ever execute regains a privilege. Call it while the process has
/// one thread: capabilities and these attributes are per thread.
///
/// Returns the capabilities kept.
///
/// # Errors
/// Any step the kernel refuses (the process is then in an undefined state: exit).
pub fn drop_to(uid: u32, gid: u32, keep: &[Capability]) -> io::Result<CapsHashSet> {
    let had = caps::read(None, CapSet::Permitted).map_err(caps_err)?;
    let kept: CapsHashSet = keep.iter().copied().filter(|c| had.contains(c)).collect();
    // dropping from the bounding set needs CAP_SETPCAP, which only root still has here
    caps::clear(None, CapSet::Bounding).map_err(caps_err)?;
    caps::clear(None, CapSet::Ambient).map_err(caps_err)?;
    // without keep-caps, setuid from 0 clears the permitted set
    caps::securebits::set_keepcaps(true).map_err(caps_err)?;
    nix::unistd::setgroups(&[]).map_err(errno)?;
    nix::unistd::setgid(Gid::from_raw(gid)).map_err(errno)?;
    nix::unistd::setuid(Uid::from_raw(uid)).map_err(errno)?;
    caps::securebits::set_keepcaps(false).map_err(caps_err)?;
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new()).map_err(caps_err)?;
    caps::set(None, CapSet::Permitted, &kept).map_err(caps_err)?;
    caps::set(None, CapSet::Effective, &kept).map_err(caps_err)?;
    restrict()?;
    // setuid(2) must not be reversible: check that root cannot be regained
    if uid != 0 && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(io::Error::other(
            "could regain root after dropping privileges",
        ));
    }
    Ok(kept)
}

/// Sets no-new-privs (execve can never grant privileges again: no setuid binaries, no file
/// capabilities) and clears the capability bounding set when the process may (CAP_SETPCAP).
/// For a process that keeps its user; [`drop_to`] does the same when it drops to another.
///
/// # Errors
/// The kernel refuses PR_SET_NO_NEW_PRIVS or a bounding-set drop it allowed to try.
pub fn restrict() -> io::Result<()> {
    let effective = caps::read(None, CapSet::Effective).map_err(caps_err)?;
    if effective.contains(&Capability::CAP_SETPCAP) {
        caps::clear(None, CapSet::Bounding).map_err(caps_err)?;
    }
    nix::sys::prctl::set_no_new_privs().map_err(errno)
}

/// This thread's no-new-privs attribute and capability bounding set, for checks and logs.
///
/// # Errors
/// The kernel refuses to report them.
pub fn restrictions() -> io::Result<(bool, CapsHashSet)> {
    let nnp = nix::sys::prctl::get_no_new_privs().map_err(errno)?;
    let bounding = caps::read(None, CapSet::Bounding).map_err(caps_err)?;
    Ok((nnp, bounding))
}

/// SO_RCVBUFFORCE: a receive buffer above net.core.rmem_max (needs CAP_NET_ADMIN), so bursts
/// of DHCP requests queue instead of being dropped by the kernel. `bytes` in octets.
pub fn force_recv_buffer(fd: &impl std::os::fd::AsFd, bytes: usize) -> io::Result<()> {
    nix::sys::socket::setsockopt(fd, nix::sys::socket::sockopt::RcvBufForce, &bytes).map_err(errno)
}

/// The user name of the current effective uid (the number when it has no name), for logs.
pub fn current_user() -> String {
    let uid = Uid::effective();
    match User::from_uid(uid) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_root_and_refuses_unknown_users() {
        assert_eq!(lookup("root").unwrap(), (0, 0));
        let e = lookup("no-such-user-sztp").unwrap_err();
        assert_eq!(e.to_string(), "no such user \"no-such-user-sztp\"");
    }

    #[test]
    fn forced_receive_buffer_needs_cap_net_admin() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let r = force_recv_buffer(&s, 1 << 20);
        if is_root() {
            r.unwrap();
            let granted = socket2::SockRef::from(&s).recv_buffer_size().unwrap();
            // the kernel doubles the value it stores (socket(7))
            assert!(granted >= 1 << 20, "{granted}");
        } else {
            assert_eq!(
                r.unwrap_err().raw_os_error(),
                Some(nix::errno::Errno::EPERM as i32)
            );
        }
    }
}
