//! The one module with unsafe code: dropping root after the sockets are bound
//! (`appliance.user`) and one socket option socket2 does not offer
//!
//! libc is the only way to look a user up, change credentials or force a receive buffer; each
//! call is a plain FFI call with checked arguments and results. Bound sockets, raw channels and open journal
//! files stay usable after the drop; only new privileged binds (a reload that changes the
//! DHCP interfaces) are refused, and the old sockets keep serving.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::io;
use std::path::Path;

/// uid and gid of a user name (getpwnam_r).
pub fn lookup(user: &str) -> io::Result<(u32, u32)> {
    let name = CString::new(user)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "user name contains NUL"))?;
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to live, correctly sized storage owned by this frame.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    if result.is_null() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no such user {user:?}"),
        ));
    }
    Ok((pwd.pw_uid, pwd.pw_gid))
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Give `dir` and the files directly in it to uid:gid, so the dropped process can keep
/// compacting and rotating there.
pub fn chown_state_dir(dir: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::os::unix::fs::chown(e.path(), Some(uid), Some(gid))?;
        }
    }
    Ok(())
}

/// Drop supplementary groups, then gid, then uid; irreversible.
pub fn drop_to(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: plain credential syscalls; an empty group list is a null pointer with length 0.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::setgid(gid) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::setuid(uid) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // setuid(2) must not be reversible: check that root cannot be regained
    // SAFETY: as above.
    if uid != 0 && unsafe { libc::setuid(0) } == 0 {
        return Err(io::Error::other(
            "could regain root after dropping privileges",
        ));
    }
    Ok(())
}

/// SO_RCVBUFFORCE: a receive buffer above net.core.rmem_max (needs CAP_NET_ADMIN), so bursts
/// of DHCP requests queue instead of being dropped by the kernel.
pub fn force_recv_buffer(fd: std::os::fd::BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: a valid fd, a pointer to a live c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The user name of the current effective uid, for logs.
pub fn current_user() -> String {
    // SAFETY: getpwuid returns null or a pointer to static storage read at once.
    unsafe {
        let p = libc::getpwuid(libc::geteuid());
        if p.is_null() {
            return libc::geteuid().to_string();
        }
        CStr::from_ptr((*p).pw_name).to_string_lossy().into_owned()
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
}
