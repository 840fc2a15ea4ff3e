//! `sztp-redirector devices`: the device table from a running appliance's status API, or
//! folded from the device journal when it is not running

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header;

use super::DeviceList;
use crate::config::Config;
use crate::devices::{DeviceSummary, Fold, Limits, Stage, VerdictContext};

/// Default configuration file, as the packages install it.
pub const DEFAULT_CONFIG: &str = "/etc/sztp-redirector/sztp-redirector.toml";
/// How long to wait for the status server before reading the journal instead.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Arguments of `sztp-redirector devices`.
#[derive(Args, Debug, Clone)]
pub struct DevicesArgs {
    /// One device's timeline: its serial number, MAC, DUID (hex), address or #id
    pub key: Option<String>,
    /// Print the status API's JSON instead of a table
    #[arg(long)]
    pub json: bool,
    /// Configuration file: where the status server listens, its token, the state directory
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Status server to ask, e.g. http://127.0.0.1:9143 (overrides the file's [status] listen)
    #[arg(long)]
    pub url: Option<String>,
    /// Read the device journal in this directory; do not ask a running appliance
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

/// Where the answer came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The status API at this base URL.
    Api(String),
    /// The device journal in this directory.
    Journal(PathBuf),
}

/// `sztp-redirector devices …`; returns the exit code (0 ok, 1 failure, 2 unknown device,
/// 78 bad configuration).
pub fn main(args: DevicesArgs) -> i32 {
    let config_path = args.config.clone().or_else(|| {
        let p = PathBuf::from(DEFAULT_CONFIG);
        (args.state_dir.is_none() && args.url.is_none() && p.exists()).then_some(p)
    });
    let cfg = match &config_path {
        Some(p) => match crate::config::load(p) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("{e}");
                return crate::EXIT_CONFIG;
            }
        },
        None => None,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return 1;
        }
    };
    let mut out = String::new();
    let code = rt.block_on(run(&args, cfg.as_ref(), &mut out));
    print!("{out}");
    code
}

async fn run(args: &DevicesArgs, cfg: Option<&Config>, out: &mut String) -> i32 {
    let token = cfg
        .and_then(|c| c.status.as_ref())
        .and_then(|s| s.token_file.as_ref())
        .and_then(|p| match std::fs::read_to_string(p) {
            Ok(t) => Some(t.trim().to_owned()),
            Err(e) => {
                eprintln!("note: cannot read status.token-file {}: {e}", p.display());
                None
            }
        });
    let base = match (&args.url, &args.state_dir) {
        (Some(u), _) => Some(u.trim_end_matches('/').to_owned()),
        (None, Some(_)) => None,
        (None, None) => cfg.and_then(status_url),
    };
    let state_dir = args
        .state_dir
        .clone()
        .or_else(|| cfg.map(|c| c.appliance.state_dir.clone()))
        .unwrap_or_else(|| PathBuf::from("/var/lib/sztp-redirector"));
    if let Some(base) = base {
        let path = match &args.key {
            None => "/api/devices".to_owned(),
            Some(k) => format!("/api/devices/{}", percent_encode(k)),
        };
        match get(&base, &path, token.as_deref()).await {
            Ok((200, body)) => {
                return render(args, &body, &Origin::Api(base), out);
            }
            Ok((404, _)) if args.key.is_some() => {
                eprintln!(
                    "no device known by {:?} at {base}",
                    args.key.as_deref().unwrap_or("")
                );
                return 2;
            }
            Ok((401, _)) => {
                eprintln!("{base} wants a bearer token: give --config with status.token-file");
                return 1;
            }
            Ok((code, body)) => {
                eprintln!(
                    "{base}{path} answered {code}: {}",
                    String::from_utf8_lossy(&body)
                );
                return 1;
            }
            Err(e) if args.url.is_some() => {
                eprintln!("cannot reach {base}: {e}");
                return 1;
            }
            Err(e) => {
                eprintln!(
                    "note: the status server at {base} does not answer ({e}); reading the device journal in {}",
                    state_dir.display()
                );
            }
        }
    }
    from_journal(args, cfg, &state_dir, out)
}

/// The URL of the first `[status] listen` address (loopback for an unspecified address).
pub fn status_url(cfg: &Config) -> Option<String> {
    let a = *cfg.status.as_ref()?.listen.first()?;
    let ip = match a.ip() {
        IpAddr::V4(v) if v.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v) if v.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Some(format!("http://{}", SocketAddr::new(ip, a.port())))
}

fn from_journal(args: &DevicesArgs, cfg: Option<&Config>, dir: &Path, out: &mut String) -> i32 {
    if !dir.is_dir() {
        eprintln!(
            "no status server answered and {} does not exist: nothing to show",
            dir.display()
        );
        return 1;
    }
    let mut fold = Fold::new(Limits {
        max_devices: usize::MAX,
        events_per_device: cfg
            .and_then(|c| c.status.as_ref())
            .map_or(Limits::default().events_per_device, |s| s.events_per_device),
    });
    if let Err(e) = fold.replay_journal(dir) {
        eprintln!("{e}");
        return 1;
    }
    let cx = VerdictContext {
        redirect_server: cfg
            .and_then(|c| c.redirect_server.as_ref())
            .map(|r| r.advertise.to_string()),
    };
    let body = match &args.key {
        Some(k) => match fold.find(k) {
            Some(d) => serde_json::to_vec(&d.detail(&cx)),
            None => {
                eprintln!(
                    "no device known by {k:?} in the journal in {}",
                    dir.display()
                );
                return 2;
            }
        },
        None => serde_json::to_vec(&DeviceList {
            generation: fold.folded(),
            total: fold.len(),
            counts: Default::default(),
            devices: fold.devices().map(|d| d.summary(&cx)).collect(),
        }),
    };
    match body {
        Ok(b) => render(args, &b, &Origin::Journal(dir.to_path_buf()), out),
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

fn render(args: &DevicesArgs, body: &[u8], origin: &Origin, out: &mut String) -> i32 {
    if args.json {
        // re-encoded: serde_json (the API's and ours) leaves DEL, C1 controls and bidi
        // overrides a device sent raw
        let text = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| crate::text::to_json_string(&v).ok())
            .unwrap_or_else(|| crate::text::printable_bytes(body));
        out.push_str(&text);
        out.push('\n');
        return 0;
    }
    let from = match origin {
        Origin::Api(u) => format!("from {u}"),
        Origin::Journal(d) => format!("from the device journal in {}", d.display()),
    };
    if args.key.is_some() {
        match serde_json::from_slice::<DeviceDetailIn>(body) {
            Ok(d) => {
                timeline(&d, out);
                let _ = writeln!(out, "({from})");
                0
            }
            Err(e) => {
                eprintln!("unexpected answer ({e})");
                1
            }
        }
    } else {
        match serde_json::from_slice::<DeviceList>(body) {
            Ok(l) => {
                table(&l.devices, out);
                let noun = if l.total == 1 { "device" } else { "devices" };
                let _ = writeln!(out, "({} {noun} {from})", l.total);
                0
            }
            Err(e) => {
                eprintln!("unexpected answer ({e})");
                1
            }
        }
    }
}

/// `DeviceDetail` as read back (its timeline entries as plain JSON).
#[derive(serde::Deserialize)]
struct DeviceDetailIn {
    #[serde(flatten)]
    device: DeviceSummary,
    timeline: Vec<serde_json::Value>,
    timeline_truncated: bool,
}

/// Device-supplied text with control characters and bidi overrides escaped, so printing it
/// cannot drive the operator's terminal ([`crate::text::printable`]).
fn printable(s: &str) -> String {
    crate::text::printable(s).into_owned()
}

/// The device table as aligned columns, most recently seen first.
pub fn table(devices: &[DeviceSummary], out: &mut String) {
    const HEAD: [&str; 5] = ["DEVICE", "ADDRESS", "LAST SEEN", "STAGE", "VERDICT"];
    let rows: Vec<[String; 5]> = devices
        .iter()
        .map(|d| {
            let addr = d
                .addresses
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",");
            [
                printable(&d.key),
                if addr.is_empty() { "-".into() } else { addr },
                crate::journal::rfc3339(d.last_seen),
                d.stage.map_or("-", Stage::as_str).to_owned(),
                format!(
                    "{}: {}",
                    serde_json::to_value(d.verdict.status)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    printable(&d.verdict.text)
                ),
            ]
        })
        .collect();
    let mut width = HEAD.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r.iter()).take(4) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut line = |cells: [&str; 5]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 4 {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ", w = width[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(HEAD);
    for r in &rows {
        line(r.each_ref().map(String::as_str));
    }
}

fn timeline(d: &DeviceDetailIn, out: &mut String) {
    let s = &d.device;
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            printable(&v.join(", "))
        }
    };
    let _ = writeln!(out, "device {}", printable(&s.key));
    let _ = writeln!(out, "  MAC        {}", list(&s.macs));
    let _ = writeln!(out, "  serial     {}", list(&s.serials));
    if !s.duids.is_empty() {
        let _ = writeln!(out, "  DUID       {}", list(&s.duids));
    }
    let addrs: Vec<String> = s.addresses.iter().map(ToString::to_string).collect();
    let _ = writeln!(out, "  address    {}", list(&addrs));
    let _ = writeln!(
        out,
        "  seen       {} .. {}",
        crate::journal::rfc3339(s.first_seen),
        crate::journal::rfc3339(s.last_seen)
    );
    let _ = writeln!(out, "  rule       {}", s.rule.as_deref().unwrap_or("-"));
    let a = &s.asked;
    let yn = |b: Option<bool>| match b {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    };
    let mut asked = vec![format!("option 143: {}", yn(a.requested_143))];
    if a.requested_136.is_some() {
        asked.push(format!("option 136: {}", yn(a.requested_136)));
    }
    if let Some(v) = &a.vendor_class {
        asked.push(format!("vendor class {}", printable(v)));
    }
    if let Some(u) = &a.user_class {
        asked.push(format!("user class {}", printable(&u.join(","))));
    }
    if let Some(m) = &a.media_type {
        asked.push(format!("media type {}", printable(m)));
    }
    let _ = writeln!(out, "  asked      {}", asked.join("; "));
    match &s.told {
        Some(t) => {
            let _ = writeln!(out, "  told       {} ({})", list(&t.uris), t.proto);
        }
        None => {
            let _ = writeln!(out, "  told       nothing");
        }
    }
    let stages: Vec<String> = s
        .stages
        .iter()
        .map(|x| format!("{} ×{}", x.stage, x.count))
        .collect();
    let _ = writeln!(out, "  stages     {}", list(&stages));
    let status = serde_json::to_value(s.verdict.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let _ = writeln!(out, "  verdict    {status}: {}", s.verdict.text);
    let _ = writeln!(out, "timeline:");
    if d.timeline_truncated {
        let _ = writeln!(out, "  (older events left out: {} in all)", s.events);
    }
    for ev in &d.timeline {
        // a step repeated (renewals, retries) is one entry: its count and first time
        let repeats = match (ev["repeats"].as_u64(), ev["first"].as_str()) {
            (Some(n), Some(first)) if n > 1 => format!("  (×{n} since {})", printable(first)),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  {}  {:<8} {}{repeats}",
            ev["ts"].as_str().unwrap_or("-"),
            ev["proto"].as_str().unwrap_or("-"),
            printable(ev["summary"].as_str().unwrap_or(""))
        );
    }
}

/// Percent-encodes a path segment (RFC 3986 §2.1: everything but unreserved characters).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `GET base+path` over HTTP/1.1; returns (status, body).
pub(crate) async fn get(
    base: &str,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, Vec<u8>), String> {
    let authority = base
        .strip_prefix("http://")
        .ok_or_else(|| format!("{base:?}: only http:// URLs are supported"))?
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))?;
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let mut req = hyper::Request::get(path)
        .header(header::HOST, &authority)
        .header(header::ACCEPT, "application/json");
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(30), sender.send_request(req))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes()
        .to_vec();
    driver.abort();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a device sent (a serial with ESC and a bidi override) reaches `devices --json`
    /// escaped, and still decodes to what it sent.
    #[test]
    fn json_output_escapes_device_text() {
        let args = DevicesArgs {
            key: None,
            json: true,
            config: None,
            url: None,
            state_dir: None,
        };
        let sent = "SN\u{1b}[2J\u{202e}1\u{9b}";
        let body = serde_json::to_vec(&serde_json::json!({ "key": sent })).unwrap();
        let mut out = String::new();
        assert_eq!(render(&args, &body, &Origin::Api("x".into()), &mut out), 0);
        assert!(!out.contains(['\u{1b}', '\u{202e}', '\u{9b}']), "{out:?}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["key"], sent);
        assert_eq!(printable(sent), "SN\\u{1b}[2J\\u{202e}1\\u{9b}");
    }

    /// A step repeated (a client renewing) is one timeline line with its count and first time.
    #[test]
    fn a_repeated_step_prints_its_count() {
        use crate::devices::{Fold, Limits, VerdictContext};
        use crate::journal::{DeviceEvent, Dhcp4Kind, EventDetail};
        const T0: u64 = 1_795_810_500;
        let mut fold = Fold::new(Limits::default());
        for (i, kind) in [
            Dhcp4Kind::Offer,
            Dhcp4Kind::Ack,
            Dhcp4Kind::Ack,
            Dhcp4Kind::Ack,
        ]
        .into_iter()
        .enumerate()
        {
            let mut ev = DeviceEvent::dhcp4(
                T0 + 60 * i as u64,
                kind,
                i as u32,
                crate::policy::MacAddr([2, 0, 0, 0, 0, 9]),
            );
            if let EventDetail::Dhcp4(d) = &mut ev.detail {
                d.address = Some(std::net::Ipv4Addr::new(192, 0, 2, 9));
            }
            fold.fold(ev);
        }
        let detail = fold
            .find("192.0.2.9")
            .unwrap()
            .detail(&VerdictContext::default());
        let body = serde_json::to_vec(&detail).unwrap();
        let args = DevicesArgs {
            key: Some("192.0.2.9".into()),
            json: false,
            config: None,
            url: None,
            state_dir: None,
        };
        let mut out = String::new();
        assert_eq!(render(&args, &body, &Origin::Api("x".into()), &mut out), 0);
        let lines: Vec<&str> = out.lines().filter(|l| l.contains("DHCPv4")).collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(!lines[0].contains('×'), "{out}");
        assert!(
            lines[1].ends_with("(×3 since 2026-11-27T20:16:00Z)"),
            "{out}"
        );
    }
}
