//! The README's quick start must keep working: run tests/quickstart.sh and check what it shows.

use std::process::Command;

#[test]
fn quickstart_script_shows_a_device_being_redirected() {
    let root = env!("CARGO_MANIFEST_DIR");
    let _ = std::fs::remove_dir_all(format!("{root}/target/quickstart-state"));
    let out = Command::new("bash")
        .arg(format!("{root}/tests/quickstart.sh"))
        .current_dir(root)
        .output()
        .expect("run tests/quickstart.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("config/quickstart.toml: ok"), "{text}");
    assert!(
        text.contains("listening for dhcp4 on lo 0.0.0.0:6767"),
        "{text}"
    );
    assert!(
        text.contains("1. https://sztp.owner.example.com:8443"),
        "{text}"
    );
    assert!(text.contains("2. https://[2001:db8::10]:8443"), "{text}");
    assert!(text.contains(" bound "), "{text}");
    assert!(
        text.contains("listening for status on 127.0.0.1:9143"),
        "{text}"
    );
    // step 5: the device's journey from the status API
    assert!(
        text.contains("02:00:00:53:5a:50  192.0.2.100"),
        "devices table: {text}"
    );
    // the STAGE column is as wide as its longest entry (dns-answered)
    assert!(
        text.lines().any(|l| l.starts_with("02:00:00:53:5a:50")
            && l.contains(" dhcp-acked ")
            && l.contains("  handed-off: got a lease and option 143")),
        "{text}"
    );
    // one device: DHCPv4 and DHCPv6 folded by its MAC
    assert!(
        text.contains("(2 devices from http://127.0.0.1:9143)"),
        "{text}"
    );
    assert!(
        text.contains("DHCPv4 ACK 192.0.2.100: asked for option 143"),
        "{text}"
    );
    // step 2: DHCPv6 through the relay path, the same device (its DUID-LL carries the MAC)
    assert!(
        text.contains("listening for dhcp6 on lo [::]:6547"),
        "{text}"
    );
    assert!(
        text.contains("sztp redirect (option 136, rfc8572 encoding, 2 URIs):"),
        "{text}"
    );
    assert!(text.contains("reply 2001:db8:1::"), "{text}");
    assert!(
        text.contains("DHCPv6 Reply to Request 2001:db8:1::"),
        "{text}"
    );
    assert!(
        text.contains("asked      option 143: yes; option 136: yes"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("dhcp6  2001:db8:1::") && l.contains(" 00030001020000535a50 ")),
        "leases: {text}"
    );
    assert!(text.contains("\"requested_136\":true"), "{text}");
    // step 3: DNS, the probe's TXT then SRV lookups, and the device it shows in the table
    assert!(
        text.contains("listening for dns on udp 127.0.0.1:8053"),
        "{text}"
    );
    assert!(
        text.contains(
            "1. TXT SN0001._sztp.staging.example.com dns @127.0.0.1:8053: 127.0.0.1 answered: \
             ci redirect-information\n   1. https://sztp.owner.example.com:8443"
        ),
        "{text}"
    );
    assert!(
        text.contains("answered: 2 SRV target(s)\n   1. https://sztp.owner.example.com:8443"),
        "{text}"
    );
    assert!(
        text.contains(
            "dns-answered  handed-off: got its SZTP TXT record naming the owner's bootstrap \
             server (https://sztp.owner.example.com:8443"
        ),
        "{text}"
    );
    assert!(
        text.contains("\"proto\":\"dns\",\"event\":\"answered\",\"transport\":\"udp\""),
        "{text}"
    );
    // SLOT 4 (RESTCONF): its engineer asserts its step here
    assert!(text.contains("\"event\":\"ack\""), "{text}");
    assert!(text.contains("\"requested_143\":true"), "{text}");
}
