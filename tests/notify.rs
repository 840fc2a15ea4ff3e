//! The systemd notify protocol: a test listening on its own NOTIFY_SOCKET receives READY=1,
//! WATCHDOG=1 (at half of WATCHDOG_USEC, only while the services are alive) and STOPPING=1.
//! One test in its own binary: it sets process environment variables.

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sztp_redirector::notify;
use tokio_util::sync::CancellationToken;

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

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let alive = Arc::new(AtomicBool::new(true));
    let pings_allowed = Arc::new(AtomicU64::new(0));
    let pings_withheld = Arc::new(AtomicU64::new(0));
    let token = CancellationToken::new();
    let (a, yes, no) = (
        Arc::clone(&alive),
        Arc::clone(&pings_allowed),
        Arc::clone(&pings_withheld),
    );
    let task = rt.spawn(notify::watchdog_loop(
        Duration::from_millis(20),
        token.clone(),
        move || {
            let ok = a.load(Ordering::SeqCst);
            if ok { &yes } else { &no }.fetch_add(1, Ordering::SeqCst);
            ok
        },
    ));
    // the runtime runs on its own thread so it keeps ticking while we block in recv
    let handle = std::thread::spawn(move || {
        rt.block_on(async {
            task.await.unwrap();
        })
    });
    let mut received = 0u64;
    assert_eq!(recv(&sock), "WATCHDOG=1\n");
    assert_eq!(recv(&sock), "WATCHDOG=1\n");
    received += 2;
    // a dead service: the loop keeps checking but pings no more
    alive.store(false, Ordering::SeqCst);
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while pings_withheld.load(Ordering::SeqCst) < 3 {
        assert!(
            std::time::Instant::now() < until,
            "the loop stopped checking"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    token.cancel();
    handle.join().unwrap();
    sock.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    while let Ok(n) = sock.recv(&mut buf) {
        assert_eq!(&buf[..n], b"WATCHDOG=1\n");
        received += 1;
    }
    // exactly one ping per healthy check, none for the withheld ones
    assert_eq!(received, pings_allowed.load(Ordering::SeqCst));
    sock.set_nonblocking(false).unwrap();

    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    notify::reloading();
    let msg = recv(&sock);
    assert!(msg.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{msg}");
    notify::stopping();
    assert_eq!(recv(&sock), "STOPPING=1\nSTATUS=stopping\n");
}
