//! The systemd notify protocol: a test listening on its own NOTIFY_SOCKET receives READY=1,
//! WATCHDOG=1 (and reads the interval, half of WATCHDOG_USEC, for this pid only), RELOADING=1
//! and STOPPING=1. tests/daemon_notify.rs checks the real binary sends them at the right time.
//! One test in its own binary: it sets process environment variables.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use sztp_redirector::notify;

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a notify datagram");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn notify_messages_reach_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    // bounded waits: a missing message fails the test instead of hanging it
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();

    // Outside systemd: nothing is sent, nothing fails.
    std::env::remove_var("NOTIFY_SOCKET");
    notify::ready("not under systemd");
    assert_eq!(notify::watchdog_interval(), None);

    std::env::set_var("NOTIFY_SOCKET", &path);
    std::env::set_var("WATCHDOG_USEC", "200000");
    std::env::set_var("WATCHDOG_PID", std::process::id().to_string());

    notify::ready("serving dhcp4 on eth1");
    assert_eq!(recv(&sock), "READY=1\nSTATUS=serving dhcp4 on eth1\n");

    assert_eq!(
        notify::watchdog_interval(),
        Some(Duration::from_millis(100))
    );
    // WATCHDOG_USEC meant for another process (a child) is not ours
    std::env::set_var("WATCHDOG_PID", "1");
    assert_eq!(notify::watchdog_interval(), None);

    notify::watchdog();
    assert_eq!(recv(&sock), "WATCHDOG=1\n");

    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    notify::reloading();
    let msg = recv(&sock);
    assert!(msg.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{msg}");
    notify::stopping();
    assert_eq!(recv(&sock), "STOPPING=1\nSTATUS=stopping\n");
}
