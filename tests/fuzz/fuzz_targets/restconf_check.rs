// The check behind the `restconf` fuzz target, shared with `tests/restconf_fuzz_seeds.rs`
// (which runs every committed seed under `cargo test`). Included with `include!`.
//
// The first byte picks what the rest is:
//   0 / 1: a get-bootstrapping-data body, JSON / XML, through the whole handler
//   2 / 3: a report-progress body, JSON / XML, through the whole handler
//   4: a client certificate (DER): subject attributes, serial per `serial-from`
//   5: an Authorization header value: the Basic user name
// Any panic is a finding, and so is an answer that breaks an invariant below.

use sztp_redirector::config::{load_str, SerialFrom};
use sztp_redirector::journal::RestconfRpc;
use sztp_redirector::probe::restconf::{read_output, request_body, Answer, RestconfParams};
use sztp_redirector::restconf::handler::{handle, Body, Reply, Request, RequestMeta};
use sztp_redirector::restconf::identity::{
    basic_username, certificate_subject, device_serial, serial_from_serial_number,
    ClientCertificate,
};
use sztp_redirector::restconf::media::Encoding;
use sztp_redirector::restconf::rpc::parse_get_bootstrapping_data;
use sztp_redirector::runtime::Snapshot;

const FUZZ_CONFIG: &str = r#"
[[bootstrap-server]]
name = "owner"
uri = "https://sztp.owner.example.com:8443"

[[bootstrap-server]]
name = "v6"
uri = "https://[2001:db8::10]"

[[bootstrap-server]]
name = "this"
uri = "https://192.0.2.1:443"

[redirect-server]
listen = ["192.0.2.1:443"]
advertise = "https://redirect.example.com"

[[rule]]
name = "loop"
match.hw-model = ["loop*"]
redirect-to = ["this"]

[[rule]]
name = "lab"
match.hw-model = ["lab*"]
redirect-to = ["v6", "owner", "this"]

[[rule]]
name = "verified"
match.serial = ["V*"]
match.serial-verified = true
redirect-to = ["v6"]

[[rule]]
name = "default"
match.hw-model = ["*"]
redirect-to = ["owner"]
"#;

fn fuzz_snapshot() -> Snapshot {
    let cfg = load_str(std::path::Path::new("fuzz.toml"), FUZZ_CONFIG).expect("fixture config");
    Snapshot::new(cfg, 0)
}

fn check(snapshot: &Snapshot, data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 6 {
        m @ 0..=3 => {
            let (rpc, enc) = match m {
                0 => (RestconfRpc::GetBootstrappingData, Encoding::Json),
                1 => (RestconfRpc::GetBootstrappingData, Encoding::Xml),
                2 => (RestconfRpc::ReportProgress, Encoding::Json),
                _ => (RestconfRpc::ReportProgress, Encoding::Xml),
            };
            check_request(snapshot, rpc, enc, rest);
        }
        4 => check_certificate(rest),
        _ => {
            if let Ok(text) = std::str::from_utf8(rest) {
                if let Some(u) = basic_username(text) {
                    assert!(!u.is_empty() && !u.contains(':'), "user name {u:?}");
                }
            }
        }
    }
}

fn check_request(snapshot: &Snapshot, rpc: RestconfRpc, enc: Encoding, body: &[u8]) {
    let cert = ClientCertificate::default();
    let meta = RequestMeta {
        peer: "192.0.2.100:40000".parse().unwrap(),
        local: "192.0.2.1:443".parse().unwrap(),
        client_certificate: Some(&cert),
        lease: None,
    };
    let req = Request {
        rpc,
        method: "POST",
        content_type: Some(enc.media_type()),
        accept: None,
        authorization: None,
        body: Body::Received(body),
    };
    let outcome = handle(snapshot, &req, &meta, 0);
    match &outcome.reply {
        Reply::Output(out, renc) => {
            assert_eq!(rpc, RestconfRpc::GetBootstrappingData);
            assert_eq!(*renc, enc, "the answer is in the request's encoding");
            // a strict device decoder reads it back to the servers the event names
            let (answer, notes) = read_output(enc == Encoding::Xml, &out.render(*renc));
            assert!(notes.is_empty(), "{notes:?}");
            let Answer::Redirect { entries, .. } = answer else {
                panic!("not a redirect: {answer:?}");
            };
            assert!(!entries.is_empty());
            assert_eq!(entries.len(), outcome.event.uris.len());
            for e in &entries {
                assert!(e.trust_anchor.is_none());
                assert!(!(e.address == "192.0.2.1" && e.port == 443), "redirect to itself");
            }
            // decode → encode → decode: the leaves survive the probe's encoder
            let input = parse_get_bootstrapping_data(enc, body).expect("accepted input parses");
            let p = RestconfParams {
                hw_model: input.hw_model.clone(),
                os_name: input.os_name.clone(),
                os_version: input.os_version.clone(),
                xml: enc == Encoding::Xml,
                ..RestconfParams::default()
            };
            let again = parse_get_bootstrapping_data(enc, request_body(&p).as_bytes())
                .expect("the probe's own body parses");
            let trim = |v: &Option<String>| v.as_ref().map(|s| s.trim().to_string());
            if enc == Encoding::Xml {
                // XML leaves are read trimmed
                assert_eq!(trim(&again.hw_model), trim(&input.hw_model));
                assert_eq!(trim(&again.os_name), trim(&input.os_name));
                assert_eq!(trim(&again.os_version), trim(&input.os_version));
            } else {
                assert_eq!(again.hw_model, input.hw_model);
                assert_eq!(again.os_name, input.os_name);
                assert_eq!(again.os_version, input.os_version);
            }
            assert!(again.signed_data_preferred);
        }
        Reply::NoContent => assert_eq!(rpc, RestconfRpc::ReportProgress),
        Reply::Error(e, _) => {
            assert!(
                matches!(e.status, 400 | 403 | 404 | 500),
                "unexpected status {} ({})",
                e.status,
                e.message
            );
            if e.status == 400 {
                assert!(
                    matches!(
                        e.error_tag,
                        "malformed-message" | "invalid-value" | "missing-element"
                    ),
                    "{}",
                    e.error_tag
                );
            }
            if e.status == 500 {
                assert!(!outcome.loops.is_empty(), "500 without a loop: {}", e.message);
            }
        }
    }
}

fn check_certificate(der: &[u8]) {
    let Ok(subject) = certificate_subject(der) else {
        return;
    };
    if let Some(sn) = &subject.serial_number {
        if let Some(s) = serial_from_serial_number(sn) {
            assert!(!s.is_empty() && s == s.trim(), "serial {s:?} from {sn:?}");
        }
    }
    for verified in [false, true] {
        let cert = ClientCertificate {
            subject: Some(subject.clone()),
            verified,
        };
        for from in [
            SerialFrom::SubjectSerialNumber,
            SerialFrom::SubjectCn,
            SerialFrom::BasicUsername,
        ] {
            let (serial, _) = device_serial(from, Some(&cert), None);
            if let Some(s) = serial {
                assert!(!s.value.is_empty());
                assert_eq!(s.verified, verified);
            }
        }
    }
}
