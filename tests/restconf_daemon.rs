//! The redirect server in the real binary (`sztp-redirector run`): bound, served, reloaded on
//! SIGHUP (rules, certificate files, `listen`, turned off and on) and stopped by the daemon,
//! driven by curl, `openssl s_client` and the probe; and the whole SZTP chain a device walks,
//! DHCPv4 → the appliance's redirect server → the owner's bootstrap server (the Python double,
//! which records that the device arrived).
//!
//! On loopback without privileges: the probe as a relay agent does DHCP and follows option 143.
//! As root, in a namespace pair: udhcpc (a real client) gets the lease and option 143, then
//! curl and the probe ask the redirect server from the leased address, whose DHCP facts
//! (vendor class, MAC) decide the rule through the lease registry. Both check what the status
//! server shows of these steps (`/api/devices`, and `/metrics` through the Python Prometheus
//! client's parser).

mod common;
mod restconf_common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{require_root_or_skip, rfc8572_list, run_udhcpc, Child, NetnsPair, BIN};
use restconf_common::{parse_metrics, s_client, sh, OwnerDouble};
use sztp_redirector::sztp::conveyed::decode_unsigned_redirect;

const GBD: &str = "/restconf/operations/ietf-sztp-bootstrap-server:get-bootstrapping-data";

/// Bound on waiting for the daemon to log something; hitting it means it never came.
const LOG_WAIT: Duration = Duration::from_secs(20);

/// `sztp-redirector run` on loopback, with its log lines collected; killed on drop.
struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
}

impl Daemon {
    /// Writes `config` (`{STATE_DIR}` replaced) and starts the daemon; returns once it logged
    /// `ready`.
    fn start(config: &str) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("sztpt-rcd-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("sztp.toml");
        let state = dir.path().join("state");
        std::fs::write(
            &path,
            config.replace("{STATE_DIR}", state.to_str().unwrap()),
        )
        .unwrap();
        let child = Child::spawn(
            &[BIN, "run", "--config", path.to_str().unwrap()],
            Duration::from_secs(300),
        );
        assert!(
            child.wait_for_lines(" ready", 1, LOG_WAIT),
            "the daemon did not get ready:\n{}",
            child.output_text()
        );
        Daemon { child, dir }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("sztp.toml")
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn text(&self, config: &str) -> String {
        config.replace("{STATE_DIR}", self.state_dir().to_str().unwrap())
    }

    /// Every `listening for restconf on ADDR` line so far, oldest first.
    fn restconf_addrs(&self) -> Vec<SocketAddr> {
        listening(&self.child.lines(), "listening for restconf on ")
    }

    /// The DHCPv4 port on `lo` (the file says port 0).
    fn dhcp4_port(&self) -> u16 {
        listening(&self.child.lines(), "listening for dhcp4 on lo ")
            .last()
            .expect("dhcp4 is listening")
            .port()
    }

    /// Writes `config` and sends SIGHUP; returns whether the reload was applied (false: the
    /// daemon refused it and kept the running configuration).
    fn reload(&self, config: &str) -> bool {
        let count = |needle: &str| {
            self.child
                .lines()
                .iter()
                .filter(|l| l.contains(needle))
                .count()
        };
        let (ok0, refused0) = (
            count("configuration reloaded from"),
            count("reload refused"),
        );
        std::fs::write(self.config_path(), self.text(config)).unwrap();
        self.child.signal("HUP");
        let until = Instant::now() + LOG_WAIT;
        loop {
            if count("configuration reloaded from") > ok0 {
                return true;
            }
            if count("reload refused") > refused0 {
                return false;
            }
            assert!(
                Instant::now() < until && self.child.is_running(),
                "no reload outcome logged after SIGHUP:\n{}",
                self.child.output_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Device journal lines of protocol `proto`, once one satisfies `want`.
    fn events_until(
        &self,
        proto: &str,
        want: impl Fn(&serde_json::Value) -> bool,
    ) -> Vec<serde_json::Value> {
        journal_until(&self.state_dir().join("devices.jsonl"), |all| {
            all.iter().any(|e| e["proto"] == proto && want(e))
        })
        .into_iter()
        .filter(|e| e["proto"] == proto)
        .collect()
    }

    /// SIGTERM, then (bounded) its exit status and whole log.
    fn stop(mut self) -> (ExitStatus, String) {
        let st = self.child.stop("TERM", LOG_WAIT);
        let log = self.child.output_text();
        (
            st.unwrap_or_else(|| panic!("no exit after SIGTERM:\n{log}")),
            log,
        )
    }
}

/// The device journal at `path` once `done` holds for its events, or after [`LOG_WAIT`] (it is
/// written in batches off the request path: poll, bounded).
fn journal_until(
    path: &Path,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let until = Instant::now() + LOG_WAIT;
    loop {
        let events: Vec<serde_json::Value> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if done(&events) || Instant::now() > until {
            return events;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The addresses of every log line containing `prefix` followed by an address.
fn listening(lines: &[String], prefix: &str) -> Vec<SocketAddr> {
    lines
        .iter()
        .filter_map(|l| l.split(prefix).nth(1))
        .map(|rest| {
            let word = rest.split_whitespace().last().unwrap_or_default();
            word.parse()
                .unwrap_or_else(|e| panic!("{word:?} in {rest:?}: {e}"))
        })
        .collect()
}

/// curl (a real HTTP client, blindly trusting the server as a device does) posting an
/// empty-bodied get-bootstrapping-data to `base`; `extra` adds options (`-u SERIAL:`).
/// Returns (HTTP status, Content-Type, body).
fn curl_gbd(base: &str, extra: &[&str]) -> (u16, String, String) {
    let mut args = vec![
        "curl",
        "-sS",
        "-k",
        "--max-time",
        "20",
        "-o",
        "-",
        "-w",
        "\n%{http_code} %{content_type}",
        "-X",
        "POST",
        "-H",
        "Accept: application/yang-data+json",
    ];
    args.extend_from_slice(extra);
    let url = format!("{base}{GBD}");
    args.push(&url);
    let out = common::run_cmd(&args, Duration::from_secs(30));
    parse_curl(&out.stdout, &out.stderr)
}

fn parse_curl(stdout: &str, stderr: &str) -> (u16, String, String) {
    let (body, tail) = stdout
        .rsplit_once('\n')
        .unwrap_or_else(|| panic!("curl said {stdout:?} {stderr:?}"));
    let (code, ctype) = tail.split_once(' ').unwrap_or((tail, ""));
    (
        code.parse().unwrap_or(0),
        ctype.to_string(),
        body.to_string(),
    )
}

/// The `host:port` entries of a get-bootstrapping-data JSON output.
fn redirect_targets(body: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let b64 = v["ietf-sztp-bootstrap-server:output"]["conveyed-information"]
        .as_str()
        .unwrap_or_else(|| panic!("no conveyed-information: {body}"));
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    decode_unsigned_redirect(&der)
        .unwrap()
        .iter()
        .map(|e| format!("{}:{}", e.address, e.port))
        .collect()
}

/// The subject line `openssl s_client` prints for the server certificate.
fn server_subject(addr: SocketAddr, args: &[&str]) -> String {
    let (ok, _, text) = s_client(addr, args);
    assert!(ok, "{text}");
    text.lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or_default()
        .to_string()
}

/// An RSA and an ECDSA certificate (openssl) in `dir`, subjects `CN=<tag>-rsa` / `CN=<tag>-ec`.
fn server_certificates(dir: &Path, tag: &str) {
    sh(&format!(
        "cd '{d}' && openssl req -x509 -newkey rsa:2048 -nodes -days 30 -keyout rsa.key -out rsa.crt -subj /CN={tag}-rsa 2>&1 && \
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -keyout ec.key -out ec.crt -subj /CN={tag}-ec 2>&1",
        d = dir.display()
    ));
}

fn loopback_config(owner: SocketAddr, advertise: &str, certs: &Path, with_dhcp4: bool) -> String {
    let mut text = format!(
        r#"
[appliance]
state-dir = "{{STATE_DIR}}"

[[bootstrap-server]]
name = "owner"
uri = "https://{owner}"

[[bootstrap-server]]
name = "elsewhere"
uri = "https://sztp.elsewhere.example.com:8443"

[redirect-server]
listen = ["127.0.0.1:0"]
advertise = "{advertise}"
serial-from = "basic-username"
tls-certificate = ["{d}/rsa.crt", "{d}/ec.crt"]
tls-key = ["{d}/rsa.key", "{d}/ec.key"]

[[rule]]
name = "lab-serial"
match.serial = ["SN-LAB-*"]
redirect-to = ["owner"]

[[rule]]
name = "default"
redirect-to = ["elsewhere"]
"#,
        d = certs.display()
    );
    if with_dhcp4 {
        text += r#"
[dhcp4]
interfaces = ["lo"]
port = 0

[[dhcp4.subnet]]
subnet = "192.0.2.0/24"
pools = ["192.0.2.100-192.0.2.199"]
lease-time = "1h"
"#;
    }
    text
}

#[test]
fn daemon_serves_the_chain_and_reloads_rules_and_certificates_on_sighup() {
    let owner = OwnerDouble::start(&[]);
    let certs = tempfile::tempdir().unwrap();
    server_certificates(certs.path(), "first");
    // the advertise URI needs the port the kernel picks: start with a placeholder, read the
    // port from the log, then hand the real URI out through a reload
    let placeholder = loopback_config(owner.addr, "https://192.0.2.1", certs.path(), true);
    let d = Daemon::start(&placeholder);
    let addrs = d.restconf_addrs();
    assert_eq!(addrs.len(), 1, "{addrs:?}");
    let rc = addrs[0];
    assert!(rc.ip().is_loopback() && rc.port() != 0, "{rc}");
    let base = format!("https://{rc}");
    let config = loopback_config(owner.addr, &base, certs.path(), true);
    assert!(d.reload(&config));
    // same sockets (listen unchanged): no new listening line
    assert_eq!(d.restconf_addrs(), [rc]);

    // the chain, as a device walks it: DHCPv4 (probe as a relay agent) hands out the redirect
    // server's advertise URI, the redirect server sends serial SN-LAB-7 to the owner, the
    // owner double answers onboarding information
    let probe = common::run_cmd(
        &[
            BIN,
            "probe",
            "--relay",
            &format!("127.0.0.1:{}", d.dhcp4_port()),
            "--link-selection",
            "192.0.2.1",
            "--follow",
            "--serial",
            "SN-LAB-7",
            "--hw-model",
            "chain-model",
            "--json",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(probe.status.code(), Some(0), "{probe:?}");
    let report: serde_json::Value = serde_json::from_str(&probe.stdout).unwrap();
    assert_eq!(report["restconf"]["end"], "reached", "{}", probe.stdout);
    let arrived: Vec<_> = owner
        .arrivals()
        .into_iter()
        .filter(|a| a["method"] == "POST" && a["path"] == GBD)
        .collect();
    assert_eq!(arrived.len(), 1, "{arrived:?}");
    assert_eq!(arrived[0]["basic_user"], "SN-LAB-7");
    assert!(arrived[0]["body"].as_str().unwrap().contains("chain-model"));
    // the daemon's device journal has both steps
    let is_ack = |e: &serde_json::Value| e["event"] == "ack" && e["uris"][0] == base.as_str();
    let dhcp4 = d.events_until("dhcp4", is_ack);
    assert!(dhcp4.iter().any(is_ack), "{dhcp4:?}");
    let rc_events = d.events_until("restconf", |e| e["serial"] == "SN-LAB-7");
    let by_probe = rc_events
        .iter()
        .find(|e| e["serial"] == "SN-LAB-7")
        .unwrap_or_else(|| panic!("{rc_events:?}"));
    assert_eq!(by_probe["rule"], "lab-serial");
    assert_eq!(by_probe["status"], 200);

    // curl: a per-serial rule by Basic user, the default rule without one
    let (code, ctype, body) = curl_gbd(&base, &["-u", "SN-LAB-8:"]);
    assert_eq!((code, ctype.as_str()), (200, "application/yang-data+json"));
    assert_eq!(redirect_targets(&body), [owner.addr.to_string()]);
    for user in [&["-u", "SN-OTHER:"][..], &[]] {
        let (code, _, body) = curl_gbd(&base, user);
        assert_eq!(code, 200, "{body}");
        assert_eq!(redirect_targets(&body), ["sztp.elsewhere.example.com:8443"]);
    }

    // a rule changed by SIGHUP applies to the next request
    let changed = config.replace(
        r#"match.serial = ["SN-LAB-*"]"#,
        r#"match.serial = ["SN-*"]"#,
    );
    assert!(d.reload(&changed));
    let (_, _, body) = curl_gbd(&base, &["-u", "SN-OTHER:"]);
    assert_eq!(redirect_targets(&body), [owner.addr.to_string()]);

    // configured certificates: ECDSA when the client can, RSA for an RSA-only TLS 1.2 client
    assert!(server_subject(rc, &["-tls1_3"]).contains("first-ec"));
    assert!(server_subject(rc, &["-tls1_2", "-sigalgs", "RSA+SHA256"]).contains("first-rsa"));
    // renewed files are read again on SIGHUP, even with the same file
    server_certificates(certs.path(), "second");
    assert!(d.reload(&changed));
    assert!(d.child.output_text().contains("TLS certificates reloaded"));
    assert!(server_subject(rc, &["-tls1_3"]).contains("second-ec"));
    assert!(server_subject(rc, &["-tls1_2", "-sigalgs", "RSA+SHA256"]).contains("second-rsa"));
    // a broken certificate refuses the reload: old certificates and old rules stay
    std::fs::write(certs.path().join("ec.crt"), "not a certificate").unwrap();
    assert!(!d.reload(&config));
    assert!(
        d.child.output_text().contains("ec.crt"),
        "the refusal names the file"
    );
    assert!(server_subject(rc, &["-tls1_3"]).contains("second-ec"));
    let (_, _, body) = curl_gbd(&base, &["-u", "SN-OTHER:"]);
    assert_eq!(redirect_targets(&body), [owner.addr.to_string()]);

    let (st, log) = d.stop();
    assert!(st.success(), "{log}");
    assert!(log.contains("restconf stopped"), "{log}");
    // our only error: the refused reload
    let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("reload refused"), "{errors:?}");
}

#[test]
fn redirect_server_turned_off_and_on_by_reloads_and_listen_changes_keep_listed_addresses() {
    let owner = OwnerDouble::start(&[]);
    let certs = tempfile::tempdir().unwrap();
    server_certificates(certs.path(), "only");
    let on = loopback_config(owner.addr, "https://192.0.2.1", certs.path(), false);
    let off = on[..on.find("[redirect-server]").unwrap()].to_string()
        + &on[on.find("[[rule]]").unwrap()..];
    let d = Daemon::start(&on);
    let first = d.restconf_addrs()[0];
    assert_eq!(
        curl_gbd(&format!("https://{first}"), &["-u", "SN-X:"]).0,
        200
    );

    // off: the service stops and its port closes
    assert!(d.reload(&off));
    assert!(d.child.wait_for_lines("restconf stopped", 1, LOG_WAIT));
    assert!(std::net::TcpStream::connect(first).is_err());
    // on again: bound and served like a fresh start
    assert!(d.reload(&on));
    let again = *d.restconf_addrs().last().unwrap();
    assert_eq!(d.restconf_addrs().len(), 2);
    assert_eq!(
        curl_gbd(&format!("https://{again}"), &["-u", "SN-X:"]).0,
        200
    );
    assert!(server_subject(again, &["-tls1_3"]).contains("only-ec"));

    // listen gains an address and keeps the running one (bound to the same socket: a new
    // bind of that address would fail while the running instance holds it)
    let kept = format!("127.0.0.1:{}", again.port());
    let two = on.replace(
        r#"listen = ["127.0.0.1:0"]"#,
        &format!(r#"listen = ["{kept}", "127.0.0.2:0"]"#),
    );
    assert!(d.reload(&two));
    let lines = d.restconf_addrs();
    assert_eq!(lines.len(), 3, "only the new address is bound: {lines:?}");
    let second = lines[2];
    assert_eq!(second.ip().to_string(), "127.0.0.2");
    for a in [again, second] {
        assert_eq!(curl_gbd(&format!("https://{a}"), &["-u", "SN-X:"]).0, 200);
    }
    // and drops the one no longer listed
    let one = on.replace(
        r#"listen = ["127.0.0.1:0"]"#,
        &format!(r#"listen = ["{second}"]"#),
    );
    assert!(d.reload(&one));
    assert_eq!(d.restconf_addrs().len(), 3);
    assert!(std::net::TcpStream::connect(again).is_err());
    assert_eq!(
        curl_gbd(&format!("https://{second}"), &["-u", "SN-X:"]).0,
        200
    );

    let (st, log) = d.stop();
    assert!(st.success(), "{log}");
}

/// curl GET of `url` (the status server's API or metrics); the body, failing on an HTTP error.
fn curl_get(url: &str) -> String {
    let out = common::run_cmd(
        &["curl", "-sS", "--fail", "--max-time", "20", url],
        Duration::from_secs(30),
    );
    assert!(out.success(), "{url}: {}", out.stderr);
    out.stdout
}

/// `/api/devices` of the status server at `status` once `ready` holds for it (the device
/// table folds on its own thread, after the reply has left: poll, bounded).
fn devices_until(
    status: &str,
    ready: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let until = Instant::now() + LOG_WAIT;
    loop {
        let v: serde_json::Value =
            serde_json::from_str(&curl_get(&format!("{status}/api/devices")))
                .expect("/api/devices answers JSON");
        let list = v["devices"].as_array().cloned().unwrap_or_default();
        if ready(&list) || Instant::now() > until {
            return list;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn device<'a>(list: &'a [serde_json::Value], key: &str) -> &'a serde_json::Value {
    list.iter()
        .find(|d| d["key"] == key)
        .unwrap_or_else(|| panic!("no device {key} in {list:#?}"))
}

fn metric(m: &std::collections::BTreeMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no sample {key}; have {:#?}", m.keys().collect::<Vec<_>>()))
}

/// The operator's view of the redirect server in the real binary: the probe redirected by
/// serial and a curl request with a wrong Content-Type show up in `/api/devices` (stage,
/// verdict in words, what was told) and in `/metrics` (answers by RPC and HTTP status,
/// requests and replies, device events, decisions per rule), parsed by the Python Prometheus
/// client.
#[test]
fn redirect_server_steps_show_in_the_status_api_and_metrics() {
    let owner = OwnerDouble::start(&[]);
    let certs = tempfile::tempdir().unwrap();
    server_certificates(certs.path(), "status");
    let config = loopback_config(owner.addr, "https://192.0.2.1", certs.path(), false)
        + "\n[status]\nlisten = [\"127.0.0.1:0\"]\n";
    let d = Daemon::start(&config);
    let rc = d.restconf_addrs()[0];
    let status = format!(
        "http://{}",
        listening(&d.child.lines(), "listening for status on ")[0]
    );
    let base = format!("https://{rc}");

    let probe = common::run_cmd(
        &[
            BIN,
            "probe",
            "--restconf",
            &base,
            "--serial",
            "SN-LAB-7",
            "--hw-model",
            "m-7",
            "--json",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(probe.status.code(), Some(0), "{probe:?}");
    let (code, _, body) = curl_gbd(
        &base,
        &[
            "-u",
            "SN-BAD:",
            "-H",
            "Content-Type: text/plain",
            "--data",
            "x",
        ],
    );
    assert_eq!(code, 415, "{body}");

    let list = devices_until(&status, |l| {
        l.iter()
            .any(|d| d["key"] == "SN-LAB-7" && d["stage"] == "redirect-served")
            && l.iter().any(|d| d["key"] == "SN-BAD")
    });
    let lab = device(&list, "SN-LAB-7");
    assert_eq!(lab["stage"], "redirect-served", "{lab:#}");
    assert_eq!(lab["rule"], "lab-serial");
    assert_eq!(lab["verdict"]["status"], "handed-off");
    let owner_uri = format!("https://{}", owner.addr);
    assert_eq!(
        lab["verdict"]["text"],
        format!(
            "got redirect-information naming {owner_uri}: the next steps happen on the owner's \
             bootstrap server"
        )
    );
    assert_eq!(lab["told"]["proto"], "restconf");
    assert_eq!(lab["told"]["uris"][0], owner_uri.as_str());
    assert_eq!(lab["told"]["signed"], false);
    assert_eq!(lab["asked"]["hw_model"], "m-7");
    let bad = device(&list, "SN-BAD");
    assert_eq!(bad["verdict"]["status"], "failed", "{bad:#}");
    assert_eq!(
        bad["verdict"]["text"],
        "its get-bootstrapping-data to the redirect server got HTTP 415: its Content-Type is \
         neither application/yang-data+json nor +xml (RFC 8040 §5.2)"
    );
    // one device's timeline
    let one: serde_json::Value =
        serde_json::from_str(&curl_get(&format!("{status}/api/devices/SN-LAB-7"))).unwrap();
    let timeline = one["timeline"].as_array().unwrap();
    assert!(
        timeline.iter().any(|e| e["proto"] == "restconf"
            && e["status"] == 200
            && e["summary"]
                .as_str()
                .unwrap()
                .starts_with("RESTCONF get-bootstrapping-data from 127.0.0.1 (serial SN-LAB-7, Basic user): HTTP 200")),
        "{one:#}"
    );

    let m = parse_metrics(&curl_get(&format!("{status}/metrics")));
    let gbd = |code: &str| {
        metric(
            &m,
            &format!("sztp_restconf_answers_total{{rpc=get-bootstrapping-data,status={code}}}"),
        )
    };
    assert_eq!(gbd("200"), 1.0);
    assert_eq!(gbd("415"), 1.0);
    let requests = metric(&m, "sztp_restconf_requests_total{}");
    assert!(requests >= 2.0, "{requests}");
    assert_eq!(metric(&m, "sztp_restconf_replies_total{}"), requests);
    assert!(metric(&m, "sztp_restconf_connections_total{}") >= 2.0);
    assert_eq!(
        metric(
            &m,
            "sztp_device_events_total{event=get-bootstrapping-data,proto=restconf}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &m,
            "sztp_policy_decisions_total{proto=restconf,rule=lab-serial}"
        ),
        1.0
    );

    let (st, log) = d.stop();
    assert!(st.success(), "{log}");
}

/// As root, in a namespace pair: udhcpc (vendor class `sztp-chain-…`) is the device's DHCP
/// client; the DHCP rule for that vendor class hands out the redirect server (on port 443 of
/// the server namespace); the device then asks the redirect server from its leased address
/// with curl and the probe, carrying nothing but a hw-model: only its lease (vendor class,
/// MAC) can select the rule that sends it to the owner double, which records the arrival. An
/// address without a lease gets the default rule. The daemon runs as `nobody` after binding,
/// and a SIGHUP still reloads its generated certificates.
#[test]
fn dhcp_lease_facts_select_the_redirect_for_a_real_client() {
    if !require_root_or_skip("dhcp_lease_facts_select_the_redirect_for_a_real_client") {
        return;
    }
    let net = NetnsPair::new("rc-chain");
    net.server.add_addr(&net.server_if, "198.51.100.3/24");
    let owner = OwnerDouble::start_at(Some(&net.server.name), "198.51.100.3", &[]);
    let config = format!(
        r#"
[appliance]
state-dir = "{{STATE_DIR}}"
user = "nobody"

[[bootstrap-server]]
name = "owner"
uri = "https://{owner}"

[[bootstrap-server]]
name = "elsewhere"
uri = "https://sztp.elsewhere.example.com:8443"

[redirect-server]
listen = ["198.51.100.1:443"]
advertise = "https://198.51.100.1"

[[rule]]
name = "chain-vendor"
match.vendor-class = ["sztp-chain-*"]
redirect-to = ["owner"]
via = "redirect-server"

[[rule]]
name = "default"
redirect-to = ["elsewhere"]

[dhcp4]
interfaces = ["{iface}"]

[[dhcp4.subnet]]
subnet = "198.51.100.0/24"
pools = ["198.51.100.100-198.51.100.199"]
lease-time = "1h"

[status]
listen = ["127.0.0.1:0"]
"#,
        owner = owner.addr,
        iface = net.server_if
    );
    // the dropped process must reach its state directory
    let dir = tempfile::Builder::new().prefix("sztpt-").tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let srv = common::spawn_server_in(&net.server, &config, dir, 1);
    assert!(
        srv.child.wait_for_lines(" ready", 1, LOG_WAIT),
        "{}",
        srv.child.output_text()
    );
    let rc = listening(&srv.child.lines(), "listening for restconf on ");
    assert_eq!(rc, ["198.51.100.1:443".parse::<SocketAddr>().unwrap()]);
    assert!(srv.child.output_text().contains("running as nobody"));

    // the device's DHCP: a real client
    let u = run_udhcpc(
        &net.client,
        &net.client_if,
        &["-V", "sztp-chain-device", "-O", "143"],
    );
    let bound = u.bound();
    let ip = bound["ip"].clone();
    assert_eq!(
        common::unhex(&bound["opt143"]),
        rfc8572_list(&["https://198.51.100.1"])
    );
    // udhcpc's script configures nothing: put the lease on the interface as a device would
    net.client.add_addr(&net.client_if, &format!("{ip}/24"));
    net.client.add_addr(&net.client_if, "198.51.100.60/24");

    let curl_in_client = |from: &str| {
        let url = format!("https://198.51.100.1{GBD}");
        let out = net.client.run(
            &[
                "curl",
                "-sS",
                "-k",
                "--max-time",
                "20",
                "--interface",
                from,
                "-o",
                "-",
                "-w",
                "\n%{http_code} %{content_type}",
                "-X",
                "POST",
                "-H",
                "Content-Type: application/yang-data+json",
                "--data",
                r#"{"ietf-sztp-bootstrap-server:input":{"hw-model":"chain-model"}}"#,
                &url,
            ],
            Duration::from_secs(30),
        );
        parse_curl(&out.stdout, &out.stderr)
    };
    // from the leased address: the lease's vendor class selects the owner
    let (code, _, body) = curl_in_client(&ip);
    assert_eq!(code, 200, "{body}");
    assert_eq!(redirect_targets(&body), [owner.addr.to_string()]);
    // from an address without a lease: nothing but the hw-model, so the default rule
    let (code, _, body) = curl_in_client("198.51.100.60");
    assert_eq!(code, 200, "{body}");
    assert_eq!(redirect_targets(&body), ["sztp.elsewhere.example.com:8443"]);

    // the probe walks the rest as a device: host-meta, get-bootstrapping-data, the redirect,
    // the owner's server (it leaves from the leased address: the route's preferred source is
    // the first address added)
    let probe = net.client.run(
        &[
            BIN,
            "probe",
            "--restconf",
            "https://198.51.100.1",
            "--hw-model",
            "chain-model",
            "--json",
        ],
        Duration::from_secs(60),
    );
    assert!(probe.success(), "{probe:?}");
    let arrived: Vec<_> = owner
        .arrivals()
        .into_iter()
        .filter(|a| a["method"] == "POST" && a["path"] == GBD)
        .collect();
    assert_eq!(arrived.len(), 1, "{arrived:?}");
    assert_eq!(arrived[0]["peer"], ip.as_str());

    // the device journal joins both protocols on the MAC
    let mac = net
        .client
        .ip(&["-o", "link", "show", "dev", &net.client_if])
        .stdout
        .split("link/ether ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    let from_lease = |e: &serde_json::Value| e["proto"] == "restconf" && e["source"] == ip.as_str();
    let events = journal_until(&srv.devices_journal(), |all| {
        all.iter().filter(|e| from_lease(e)).count() >= 2
            && all.iter().any(|e| e["source"] == "198.51.100.60")
    });
    assert!(events
        .iter()
        .any(|e| e["proto"] == "dhcp4" && e["event"] == "ack" && e["mac"] == mac.as_str()));
    let from_lease: Vec<_> = events.iter().filter(|e| from_lease(e)).collect();
    assert_eq!(from_lease.len(), 2, "curl and the probe: {from_lease:?}");
    for e in &from_lease {
        assert_eq!(e["mac"], mac.as_str());
        assert_eq!(e["rule"], "chain-vendor");
    }
    assert!(events.iter().any(|e| e["proto"] == "restconf"
        && e["source"] == "198.51.100.60"
        && e["rule"] == "default"
        && e.get("mac").is_none_or(|m| m.is_null())));

    // the status API (loopback of the server namespace) shows one device: the lease's MAC,
    // its address, DHCP's stages and the redirect served to that address
    let status = listening(&srv.child.lines(), "listening for status on ")[0];
    let api = |path: &str| -> serde_json::Value {
        let out = net.server.run(
            &[
                "curl",
                "-sS",
                "--fail",
                "--max-time",
                "20",
                &format!("http://{status}{path}"),
            ],
            Duration::from_secs(30),
        );
        assert!(out.success(), "{path}: {}", out.stderr);
        serde_json::from_str(&out.stdout).unwrap()
    };
    let until = Instant::now() + LOG_WAIT;
    let dev = loop {
        let dev = api(&format!("/api/devices/{mac}"));
        if dev["stage"] == "redirect-served" || Instant::now() > until {
            break dev;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(dev["key"], mac.as_str(), "{dev:#}");
    let stages: Vec<&str> = dev["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        ["dhcp-offered", "dhcp-acked", "redirect-served"],
        "{dev:#}"
    );
    assert_eq!(dev["addresses"][0], ip.as_str());
    assert_eq!(dev["rule"], "chain-vendor");
    assert_eq!(dev["asked"]["vendor_class"], "sztp-chain-device");
    assert_eq!(dev["asked"]["hw_model"], "chain-model");
    assert_eq!(dev["verdict"]["status"], "handed-off");
    assert_eq!(
        dev["verdict"]["text"],
        format!(
            "got redirect-information naming https://{}: the next steps happen on the owner's \
             bootstrap server",
            owner.addr
        )
    );
    // the address without a lease is a device of its own, known by that address
    assert_eq!(api("/api/devices/198.51.100.60")["rule"], "default");

    // after the privilege drop, SIGHUP still reads the generated certificates in state-dir/tls
    srv.sighup();
    assert!(
        srv.child
            .wait_for_lines("TLS certificates reloaded", 1, LOG_WAIT),
        "{}",
        srv.child.output_text()
    );
    assert!(!srv.child.output_text().contains("reload refused"));
    let (code, _, _) = curl_in_client(&ip);
    assert_eq!(code, 200);
    let _ = srv.terminate();
}
