//! The real binary speaks systemd's notify protocol to a NOTIFY_SOCKET this test listens on:
//! READY=1 once every socket is bound (the status listener accepts at that moment), WATCHDOG=1
//! at half of WATCHDOG_USEC from the serving loop, RELOADING=1 then READY=1 around a SIGHUP,
//! STOPPING=1 on SIGTERM, then a clean exit.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use common::{Child, BIN};

/// Next datagram that is not a watchdog ping (those are counted into `pings`).
fn next_state(sock: &UnixDatagram, pings: &mut u32) -> String {
    let mut buf = [0u8; 4096];
    loop {
        let n = sock.recv(&mut buf).expect("a notify message within 30 s");
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if msg == "WATCHDOG=1\n" {
            *pings += 1;
            continue;
        }
        return msg;
    }
}

#[test]
fn the_daemon_notifies_systemd() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let cfg = dir.path().join("sztp.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[appliance]
state-dir = "{}"

[[bootstrap-server]]
name = "owner-primary"
uri = "https://sztp.owner.example.com:8443"

[[rule]]
name = "default"
redirect-to = ["owner-primary"]

[dhcp4]
interfaces = ["lo"]
port = 0

[[dhcp4.subnet]]
subnet = "192.0.2.0/24"
pools = ["192.0.2.100-192.0.2.109"]
lease-time = "1h"

[status]
listen = ["127.0.0.1:0"]
"#,
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let notify = format!("NOTIFY_SOCKET={}", sock_path.display());
    let mut child = Child::spawn(
        &[
            "env",
            &notify,
            "WATCHDOG_USEC=200000",
            BIN,
            "run",
            "--config",
            cfg.to_str().unwrap(),
        ],
        Duration::from_secs(300),
    );
    let mut pings = 0;
    let ready = next_state(&sock, &mut pings);
    assert_eq!(ready, "READY=1\nSTATUS=serving dhcp4, status\n");
    // READY comes after every bind: the status listener accepts now
    assert!(child.wait_for_lines(
        "listening for status on 127.0.0.1:",
        1,
        Duration::from_secs(10)
    ));
    let line = child
        .lines()
        .into_iter()
        .find(|l| l.contains("listening for status on 127.0.0.1:"))
        .unwrap();
    let port: u16 = line.rsplit(':').next().unwrap().trim().parse().unwrap();
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("status listener bound before READY");

    // pings from the serving loop
    let mut buf = [0u8; 64];
    while pings < 2 {
        let n = sock.recv(&mut buf).expect("a watchdog ping");
        assert_eq!(&buf[..n], b"WATCHDOG=1\n");
        pings += 1;
    }

    child.signal("HUP");
    let reloading = next_state(&sock, &mut pings);
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading:?}"
    );
    assert_eq!(
        next_state(&sock, &mut pings),
        "READY=1\nSTATUS=serving dhcp4, status\n"
    );

    child.signal("TERM");
    assert_eq!(
        next_state(&sock, &mut pings),
        "STOPPING=1\nSTATUS=stopping\n"
    );
    let st = child.wait_exit(Duration::from_secs(30));
    assert!(
        st.is_some_and(|s| s.success()),
        "{st:?}\n{}",
        child.output_text()
    );
}
