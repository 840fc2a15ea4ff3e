//! The probe's RESTCONF step: what an SZTP device does with a bootstrap-server URI (RFC 8572
//! §5.3–§5.5): host-meta discovery, `get-bootstrapping-data` with `signed-data-preferred`,
//! decode the CMS, follow redirect-information hop by hop (at most 10, loops detected)
//!
//! Like a device facing an untrusted server, the probe accepts any server certificate (it
//! reports which one it got). The walk ([`walk`]) is separate from the transport
//! ([`fetch`]), so its logic is tested with a scripted chain of servers.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use cms::content_info::ContentInfo;
use der::Decode;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use serde_json::{json, Value};

use crate::sztp::conveyed::{
    parse_redirect_json, parse_redirect_xml, ContentFormat, RedirectEntry, ID_SIGNED_DATA,
};
use crate::sztp::signed::{certs_only_certificates, verify_bootstrapping_data, Check};
use crate::sztp::uri::{Host, SztpUri};

/// RFC 8572 §5.5: devices SHOULD stop after this many redirects.
pub const DEFAULT_MAX_HOPS: usize = 10;
const GBD_OPERATION: &str = "operations/ietf-sztp-bootstrap-server:get-bootstrapping-data";
const MAX_RESPONSE: usize = 1 << 20;

/// What the probe sends and how it connects.
#[derive(Clone, Debug)]
pub struct RestconfParams {
    /// HTTP Basic user name (the serial), sent with an empty password.
    pub serial: Option<String>,
    /// Client certificate chain and key (PEM files).
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// `hw-model` input leaf.
    pub hw_model: Option<String>,
    /// `os-name` input leaf.
    pub os_name: Option<String>,
    /// `os-version` input leaf.
    pub os_version: Option<String>,
    /// Send XML instead of JSON.
    pub xml: bool,
    /// Redirects followed at most.
    pub max_hops: usize,
    /// Bound on each connection and request.
    pub timeout: Duration,
    /// The local address every connection is made from (a device speaks from the address it
    /// leased, which is how the device table links its RESTCONF steps to its lease); `None`
    /// lets the kernel choose.
    pub source: Option<IpAddr>,
    /// Manufacturer trust anchors for ownership vouchers (`--manufacturer-ca`): signed data is
    /// verified as a device does (RFC 8572 §5.4); empty: signed data is reported unchecked.
    pub manufacturer_ca: Vec<x509_cert::Certificate>,
}

impl Default for RestconfParams {
    fn default() -> Self {
        RestconfParams {
            serial: None,
            client_cert: None,
            hw_model: None,
            os_name: None,
            os_version: None,
            xml: false,
            max_hops: DEFAULT_MAX_HOPS,
            timeout: Duration::from_secs(10),
            source: None,
            manufacturer_ca: Vec::new(),
        }
    }
}

/// A place to ask: a bootstrap server (`https://host[:port]`, RESTCONF root found through
/// host-meta) or an operation URL (`https://host:port/…:get-bootstrapping-data`, posted to as
/// it is, as the OPI agent does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// Host as written (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The operation path when given; `None`: discover through host-meta.
    pub path: Option<String>,
    /// DER certs-only SignedData to authenticate the server's TLS certificate with: the
    /// `trust-anchor` of a verified signed redirect (RFC 8572 §5.5); `None`: provisional.
    pub trust_anchor: Option<Vec<u8>>,
}

impl Target {
    /// Parses `https://host[:port][/path]`.
    pub(crate) fn parse(s: &str) -> Result<Target, String> {
        let (authority, path) = match s
            .get(8..)
            .map(|r| (r, s[..8].eq_ignore_ascii_case("https://")))
        {
            Some((rest, true)) => match rest.find('/') {
                Some(i) => (&rest[..i], Some(rest[i..].to_string())),
                None => (rest, None),
            },
            _ => return Err(format!("{s:?}: not an https:// URI")),
        };
        let uri =
            SztpUri::parse(&format!("https://{authority}")).map_err(|e| format!("{s:?}: {e}"))?;
        Ok(Target {
            host: match &uri.host {
                Host::Name(n) => n.clone(),
                Host::V4(a) => a.to_string(),
                Host::V6(a) => a.to_string(),
            },
            port: uri.effective_port(),
            path: path.filter(|p| p != "/"),
            trust_anchor: None,
        })
    }

    /// The target a redirect entry names (RFC 8572 §5.5: host and port; root discovered).
    pub(crate) fn from_entry(e: &RedirectEntry) -> Target {
        Target {
            host: e.address.clone(),
            port: e.port,
            path: None,
            trust_anchor: None,
        }
    }

    /// The target an entry of a trusted (verified signed) redirect names: its trust anchor,
    /// if any, authenticates the server (RFC 8572 §5.5).
    pub(crate) fn from_trusted_entry(e: &RedirectEntry) -> Target {
        Target {
            trust_anchor: e.trust_anchor.clone(),
            ..Target::from_entry(e)
        }
    }

    /// `https://host:port` (brackets for IPv6), plus the path when there is one.
    pub(crate) fn url(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!(
            "https://{host}:{}{}",
            self.port,
            self.path.as_deref().unwrap_or("")
        )
    }

    /// Identity for loop detection: the same server whatever the path.
    fn key(&self) -> (String, u16) {
        (self.host.to_ascii_lowercase(), self.port)
    }
}

/// What one server answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Unsigned redirect-information naming these servers.
    Redirect {
        /// JSON (1.43) or XML (1.42) content.
        format: ContentFormat,
        /// The `bootstrap-server` entries, in order.
        entries: Vec<RedirectEntry>,
    },
    /// Unsigned onboarding-information (a device accepts it only from a trusted server).
    Onboarding {
        /// JSON (1.43) or XML (1.42) content.
        format: ContentFormat,
    },
    /// Signed conveyed information (id-signedData), verified as a device does when
    /// `--manufacturer-ca` is given (RFC 8572 §5.4).
    Signed {
        /// The output carried `owner-certificate`.
        owner_certificate: bool,
        /// The output carried `ownership-voucher`.
        ownership_voucher: bool,
        /// The §5.4 checks, in order (empty when not checked).
        checks: Vec<Check>,
        /// What the checks concluded.
        verdict: SignedVerdict,
    },
    /// A non-200 answer, with the RFC 8040 error-tag and message when there is one.
    Error {
        /// HTTP status.
        status: u16,
        /// `error-tag`.
        tag: Option<String>,
        /// `error-message`.
        message: Option<String>,
    },
    /// No connection, TLS or HTTP exchange.
    Unreachable(String),
    /// A 200 whose body a strict device decoder refuses.
    Invalid(String),
}

/// What signed data amounted to after the §5.4 checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignedVerdict {
    /// No manufacturer trust anchor was given: not checked.
    NotChecked,
    /// A check failed: a device rejects it and tries the next server.
    Rejected,
    /// Trusted redirect-information: its trust anchors authenticate the next servers.
    Redirect {
        /// JSON (1.43) or XML (1.42) content.
        format: ContentFormat,
        /// The entries, trust anchors included.
        entries: Vec<RedirectEntry>,
    },
    /// Trusted onboarding-information.
    Onboarding,
}

/// One server visited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hop {
    /// Where the probe went.
    pub target: Target,
    /// The RESTCONF root host-meta named (None: not asked, or no answer).
    pub root: Option<String>,
    /// Notes worth a line (host-meta fallback, strict-decoder warnings, …).
    pub notes: Vec<String>,
    /// The server certificate as seen: subject and key type.
    pub server_certificate: Option<String>,
    /// The negotiated TLS version.
    pub tls_version: Option<String>,
    /// The trust anchor's subjects, when the server certificate was authenticated with the
    /// trust-anchor of a verified signed redirect.
    pub authenticated: Option<String>,
    /// What it answered.
    pub answer: Answer,
}

/// How the walk ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// A server gave bootstrapping data a device would act on (onboarding or signed data).
    Reached(Target),
    /// Every remaining path led back to a server already visited.
    Loop(Target),
    /// More than `max_hops` redirects.
    HopLimit,
    /// Every server failed.
    Exhausted,
}

/// The RESTCONF part of a probe run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RestconfReport {
    /// Every server asked, in order.
    pub hops: Vec<Hop>,
    /// How the walk ended.
    pub end: End,
}

impl RestconfReport {
    /// 0 bootstrapping data reached, 3 no server answered at all, 2 otherwise (errors, loop,
    /// hop limit).
    pub(crate) fn exit_code(&self) -> i32 {
        match self.end {
            End::Reached(_) => 0,
            _ if self
                .hops
                .iter()
                .all(|h| matches!(h.answer, Answer::Unreachable(_))) =>
            {
                3
            }
            _ => 2,
        }
    }

    /// Text as the operator reads it, one block per hop.
    pub(crate) fn render_text(&self) -> String {
        // every string that came from a server is escaped: a hostile one cannot drive the terminal
        use crate::text::Printable as P;
        let mut out = String::new();
        for (i, h) in self.hops.iter().enumerate() {
            let _ = writeln!(out, "RESTCONF hop {}: {}", i + 1, P(&h.target.url()));
            if let Some(c) = &h.server_certificate {
                let how = match &h.authenticated {
                    Some(ta) => format!("authenticated with the redirect's trust-anchor {ta}"),
                    None => "not verified: untrusted source".to_string(),
                };
                let _ = writeln!(
                    out,
                    "  server certificate: {}, {} ({})",
                    P(&c.to_string()),
                    h.tls_version.as_deref().unwrap_or("TLS"),
                    P(&how)
                );
            }
            if let Some(r) = &h.root {
                let _ = writeln!(out, "  host-meta: RESTCONF root {}", P(&r.to_string()));
            }
            for n in &h.notes {
                let _ = writeln!(out, "  note: {}", P(&n.to_string()));
            }
            let _ = match &h.answer {
                Answer::Redirect { format, entries } => {
                    let _ = writeln!(
                        out,
                        "  answer: unsigned redirect-information ({}), {} bootstrap server{}:",
                        format_name(*format),
                        entries.len(),
                        if entries.len() == 1 { "" } else { "s" }
                    );
                    for (j, e) in entries.iter().enumerate() {
                        let _ = writeln!(out, "    {}. {}", j + 1, P(&Target::from_entry(e).url()));
                    }
                    Ok(())
                }
                Answer::Onboarding { format } => writeln!(
                    out,
                    "  answer: unsigned onboarding-information ({}): a device takes it only from a trusted server",
                    format_name(*format)
                ),
                Answer::Signed {
                    owner_certificate,
                    ownership_voucher,
                    checks,
                    verdict,
                } => {
                    let _ = writeln!(
                        out,
                        "  answer: signed conveyed information (owner certificate {}, ownership voucher {})",
                        yes(*owner_certificate),
                        yes(*ownership_voucher)
                    );
                    for c in checks {
                        let _ = match &c.result {
                            Ok(d) => writeln!(out, "  ok    {}: {}", c.name, P(d)),
                            Err(e) => writeln!(out, "  FAIL  {}: {}", c.name, P(e)),
                        };
                    }
                    match verdict {
                        SignedVerdict::NotChecked => writeln!(
                            out,
                            "  signatures not checked: give --manufacturer-ca to verify as a device does"
                        ),
                        SignedVerdict::Rejected => {
                            writeln!(out, "  rejected: a device discards it")
                        }
                        SignedVerdict::Onboarding => {
                            writeln!(out, "  trusted onboarding-information")
                        }
                        SignedVerdict::Redirect { format, entries } => {
                            let _ = writeln!(
                                out,
                                "  trusted redirect-information ({}), {} bootstrap server{}:",
                                format_name(*format),
                                entries.len(),
                                if entries.len() == 1 { "" } else { "s" }
                            );
                            let mut lines = String::new();
                            super::signed::render_redirect(entries, &mut lines);
                            for l in lines.lines() {
                                let _ = writeln!(out, "    {}", P(l));
                            }
                            Ok(())
                        }
                    }
                }
                Answer::Error {
                    status,
                    tag,
                    message,
                } => writeln!(
                    out,
                    "  answer: HTTP {status}{}{}",
                    tag.as_ref().map(|t| format!(" {}", P(t))).unwrap_or_default(),
                    message
                        .as_ref()
                        .map(|m| format!(": {}", P(m)))
                        .unwrap_or_default()
                ),
                Answer::Unreachable(e) => writeln!(out, "  unreachable: {}", P(&e.to_string())),
                Answer::Invalid(e) => writeln!(out, "  invalid answer: {}", P(&e.to_string())),
            };
        }
        let _ = match &self.end {
            End::Reached(t) => writeln!(
                out,
                "result: bootstrapping data from {} after {} hop{}",
                P(&t.url()),
                self.hops.len(),
                if self.hops.len() == 1 { "" } else { "s" }
            ),
            End::Loop(t) => writeln!(
                out,
                "result: redirect loop: {} was already visited",
                P(&t.url())
            ),
            End::HopLimit => writeln!(out, "result: more redirects than the limit; stopped"),
            End::Exhausted => writeln!(out, "result: no server gave bootstrapping data"),
        };
        out
    }

    /// One JSON object for scripts.
    pub(crate) fn to_json(&self) -> Value {
        let hops: Vec<Value> = self
            .hops
            .iter()
            .map(|h| {
                let answer = match &h.answer {
                    Answer::Redirect { format, entries } => json!({
                        "kind": "redirect",
                        "format": format_name(*format),
                        "bootstrap_servers": entries.iter().map(|e| json!({"address": e.address, "port": e.port})).collect::<Vec<_>>(),
                    }),
                    Answer::Onboarding { format } => {
                        json!({"kind": "onboarding", "format": format_name(*format)})
                    }
                    Answer::Signed {
                        owner_certificate,
                        ownership_voucher,
                        checks,
                        verdict,
                    } => json!({
                        "kind": "signed",
                        "owner_certificate": owner_certificate,
                        "ownership_voucher": ownership_voucher,
                        "checks": checks.iter().map(|c| json!({
                            "check": c.name,
                            "ok": c.result.is_ok(),
                            "detail": match &c.result { Ok(d) | Err(d) => d },
                        })).collect::<Vec<_>>(),
                        "verdict": match verdict {
                            SignedVerdict::NotChecked => "not-checked",
                            SignedVerdict::Rejected => "rejected",
                            SignedVerdict::Redirect { .. } => "trusted-redirect",
                            SignedVerdict::Onboarding => "trusted-onboarding",
                        },
                        "bootstrap_servers": match verdict {
                            SignedVerdict::Redirect { entries, .. } => entries.iter().map(|e| json!({"address": e.address, "port": e.port, "trust_anchor": e.trust_anchor.is_some()})).collect::<Vec<_>>(),
                            _ => Vec::new(),
                        },
                    }),
                    Answer::Error {
                        status,
                        tag,
                        message,
                    } => json!({"kind": "error", "status": status, "error_tag": tag, "error_message": message}),
                    Answer::Unreachable(e) => json!({"kind": "unreachable", "error": e}),
                    Answer::Invalid(e) => json!({"kind": "invalid", "error": e}),
                };
                json!({
                    "url": h.target.url(),
                    "root": h.root,
                    "server_certificate": h.server_certificate,
                    "tls_version": h.tls_version,
                    "authenticated_with_trust_anchor": h.authenticated,
                    "notes": h.notes,
                    "answer": answer,
                })
            })
            .collect();
        let (end, at) = match &self.end {
            End::Reached(t) => ("reached", Some(t.url())),
            End::Loop(t) => ("loop", Some(t.url())),
            End::HopLimit => ("hop-limit", None),
            End::Exhausted => ("exhausted", None),
        };
        json!({"hops": hops, "end": end, "at": at})
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "present"
    } else {
        "absent"
    }
}

fn format_name(f: ContentFormat) -> &'static str {
    match f {
        ContentFormat::Json => "JSON, 1.2.840.113549.1.9.16.1.43",
        ContentFormat::Xml => "XML, 1.2.840.113549.1.9.16.1.42",
    }
}

/// Walks from `start` as a device does (RFC 8572 §5.5): each list in order until one server
/// yields bootstrapping data; a redirect's list is walked before the rest of the list that
/// led to it. A server already visited is a loop and is not asked again; more than
/// `max_hops` redirects stop the walk.
pub(crate) fn walk(
    start: &[Target],
    max_hops: usize,
    fetch: &mut dyn FnMut(&Target) -> Hop,
) -> RestconfReport {
    let mut hops = Vec::new();
    let mut visited = HashSet::new();
    let mut looped = None;
    let end = walk_list(
        start,
        0,
        max_hops,
        fetch,
        &mut hops,
        &mut visited,
        &mut looped,
    );
    let end = match (end, looped) {
        (Some(e), _) => e,
        (None, Some(t)) => End::Loop(t),
        (None, None) => End::Exhausted,
    };
    RestconfReport { hops, end }
}

fn walk_list(
    list: &[Target],
    depth: usize,
    max_hops: usize,
    fetch: &mut dyn FnMut(&Target) -> Hop,
    hops: &mut Vec<Hop>,
    visited: &mut HashSet<(String, u16)>,
    looped: &mut Option<Target>,
) -> Option<End> {
    for t in list {
        if !visited.insert(t.key()) {
            looped.get_or_insert_with(|| t.clone());
            continue;
        }
        let hop = fetch(t);
        let answer = hop.answer.clone();
        hops.push(hop);
        match answer {
            Answer::Onboarding { .. }
            | Answer::Signed {
                verdict: SignedVerdict::NotChecked | SignedVerdict::Onboarding,
                ..
            } => return Some(End::Reached(t.clone())),
            Answer::Signed {
                verdict: SignedVerdict::Rejected,
                ..
            } => {}
            Answer::Redirect { .. }
            | Answer::Signed {
                verdict: SignedVerdict::Redirect { .. },
                ..
            } => {
                if depth + 1 > max_hops {
                    return Some(End::HopLimit);
                }
                // only a verified signed redirect's trust anchors are used (RFC 8572 §5.5)
                let next: Vec<Target> = match &answer {
                    Answer::Signed {
                        verdict: SignedVerdict::Redirect { entries, .. },
                        ..
                    } => entries.iter().map(Target::from_trusted_entry).collect(),
                    Answer::Redirect { entries, .. } => {
                        entries.iter().map(Target::from_entry).collect()
                    }
                    _ => Vec::new(),
                };
                if let Some(end) =
                    walk_list(&next, depth + 1, max_hops, fetch, hops, visited, looped)
                {
                    return Some(end);
                }
            }
            Answer::Error { .. } | Answer::Unreachable(_) | Answer::Invalid(_) => {}
        }
    }
    None
}

/// The get-bootstrapping-data input the probe sends.
pub fn request_body(p: &RestconfParams) -> String {
    if p.xml {
        let mut s = String::from(
            "<input xmlns=\"urn:ietf:params:xml:ns:yang:ietf-sztp-bootstrap-server\"><signed-data-preferred/>",
        );
        for (name, v) in [
            ("hw-model", &p.hw_model),
            ("os-name", &p.os_name),
            ("os-version", &p.os_version),
        ] {
            if let Some(v) = v {
                let _ = write!(
                    s,
                    "<{name}>{}</{name}>",
                    quick_xml::escape::escape(v.as_str())
                );
            }
        }
        s.push_str("</input>");
        s
    } else {
        let mut input = serde_json::Map::new();
        input.insert("signed-data-preferred".into(), json!([null]));
        for (name, v) in [
            ("hw-model", &p.hw_model),
            ("os-name", &p.os_name),
            ("os-version", &p.os_version),
        ] {
            if let Some(v) = v {
                input.insert(name.into(), json!(v));
            }
        }
        json!({"ietf-sztp-bootstrap-server:input": input}).to_string()
    }
}

/// The RESTCONF root a host-meta XRD names (`<Link rel="restconf" href="…"/>`).
pub(crate) fn host_meta_root(xrd: &[u8]) -> Option<String> {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_reader(xrd);
    loop {
        match r.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) if e.local_name().as_ref() == b"Link" => {
                let attr = |name: &[u8]| {
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.local_name().as_ref() == name)
                        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
                };
                if attr(b"rel").as_deref() == Some("restconf") {
                    return attr(b"href");
                }
            }
            Ok(Event::Eof) | Err(_) => return None,
            _ => {}
        }
    }
}

/// Reads a 200 body of get-bootstrapping-data as a strict device decoder does: the answer,
/// and notes for anything such a decoder would refuse but the probe tolerates.
pub fn read_output(xml: bool, body: &[u8]) -> (Answer, Vec<String>) {
    read_output_checked(xml, body, &[], None, 0)
}

/// [`read_output`], verifying signed data as a device does (RFC 8572 §5.4) when
/// `manufacturer` is not empty: the voucher to those trust anchors, its serial-number against
/// `serial`, its validity at `now` (Unix seconds), the owner certificate and the signature.
pub fn read_output_checked(
    xml: bool,
    body: &[u8],
    manufacturer: &[x509_cert::Certificate],
    serial: Option<&str>,
    now: u64,
) -> (Answer, Vec<String>) {
    let mut notes = Vec::new();
    let fields = if xml {
        xml_output(body)
    } else {
        json_output(body)
    };
    let (ci, extra, signed_members) = match fields {
        Ok(f) => f,
        Err(e) => return (Answer::Invalid(e), notes),
    };
    let owner_certificate = extra.iter().any(|m| m == "owner-certificate");
    let ownership_voucher = extra.iter().any(|m| m == "ownership-voucher");
    let unexpected: Vec<&String> = extra
        .iter()
        .filter(|m| !matches!(m.as_str(), "owner-certificate" | "ownership-voucher"))
        .collect();
    if !unexpected.is_empty() {
        notes.push(format!(
            "output has members a strict decoder refuses: {unexpected:?}"
        ));
    }
    let der = match base64::engine::general_purpose::STANDARD.decode(ci.trim()) {
        Ok(d) => d,
        Err(e) => {
            return (
                Answer::Invalid(format!("conveyed-information is not base64: {e}")),
                notes,
            )
        }
    };
    let info = match ContentInfo::from_der(&der) {
        Ok(i) => i,
        Err(e) => {
            return (
                Answer::Invalid(format!(
                    "conveyed-information is not a CMS ContentInfo: {e}"
                )),
                notes,
            )
        }
    };
    if info.content_type == ID_SIGNED_DATA {
        let (checks, verdict) = check_signed(&der, &signed_members, manufacturer, serial, now);
        return (
            Answer::Signed {
                owner_certificate,
                ownership_voucher,
                checks,
                verdict,
            },
            notes,
        );
    }
    let (format, doc) = match crate::sztp::conveyed::decode_content_info(&der) {
        Ok(x) => x,
        Err(e) => return (Answer::Invalid(e.to_string()), notes),
    };
    if is_onboarding(format, &doc) {
        return (Answer::Onboarding { format }, notes);
    }
    let entries = match format {
        ContentFormat::Json => parse_redirect_json(&doc),
        ContentFormat::Xml => parse_redirect_xml(&doc),
    };
    match entries {
        Ok(entries) => {
            if entries.iter().any(|e| e.trust_anchor.is_some()) {
                notes.push("unsigned redirect carries a trust-anchor: a device discards it".into());
            }
            (Answer::Redirect { format, entries }, notes)
        }
        Err(e) => (Answer::Invalid(e.to_string()), notes),
    }
}

/// The §5.4 checks of signed data and what they conclude.
fn check_signed(
    ci: &[u8],
    members: &SignedMembers,
    manufacturer: &[x509_cert::Certificate],
    serial: Option<&str>,
    now: u64,
) -> (Vec<Check>, SignedVerdict) {
    if manufacturer.is_empty() {
        return (Vec::new(), SignedVerdict::NotChecked);
    }
    let decode = |name: &'static str, v: &Option<String>| -> Result<Vec<u8>, Check> {
        let text = v.as_deref().ok_or(Check {
            name,
            result: Err(format!("no {name} beside signed conveyed-information")),
        })?;
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| Check {
                name,
                result: Err(format!("{name} is not base64: {e}")),
            })
    };
    let (oc, ov) = match (
        decode("owner-certificate", &members.owner_certificate),
        decode("ownership-voucher", &members.ownership_voucher),
    ) {
        (Ok(oc), Ok(ov)) => (oc, ov),
        (Err(c), _) | (_, Err(c)) => return (vec![c], SignedVerdict::Rejected),
    };
    let v = verify_bootstrapping_data(ci, &oc, &ov, manufacturer, serial, now);
    let mut checks = v.checks.clone();
    let verdict = match (&v.document, v.ok()) {
        (Some((oid, doc)), true) => {
            let format = ContentFormat::from_oid(oid).unwrap_or(ContentFormat::Json);
            if is_onboarding(format, doc) {
                SignedVerdict::Onboarding
            } else {
                let entries = match format {
                    ContentFormat::Json => parse_redirect_json(doc),
                    ContentFormat::Xml => parse_redirect_xml(doc),
                };
                match entries {
                    Ok(entries) => SignedVerdict::Redirect { format, entries },
                    Err(e) => {
                        checks.push(Check {
                            name: "redirect-information",
                            result: Err(e.to_string()),
                        });
                        SignedVerdict::Rejected
                    }
                }
            }
        }
        _ => SignedVerdict::Rejected,
    };
    (checks, verdict)
}

/// `owner-certificate` and `ownership-voucher` values of an output (base64 text).
#[derive(Debug, Default)]
struct SignedMembers {
    owner_certificate: Option<String>,
    ownership_voucher: Option<String>,
}

fn is_onboarding(format: ContentFormat, doc: &[u8]) -> bool {
    match format {
        ContentFormat::Json => serde_json::from_slice::<Value>(doc)
            .ok()
            .and_then(|v| {
                v.as_object()
                    .map(|o| o.contains_key("ietf-sztp-conveyed-info:onboarding-information"))
            })
            .unwrap_or(false),
        ContentFormat::Xml => {
            let mut r = quick_xml::Reader::from_reader(doc);
            loop {
                match r.read_event() {
                    Ok(quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e)) => {
                        return e.local_name().as_ref() == b"onboarding-information"
                    }
                    Ok(quick_xml::events::Event::Eof) | Err(_) => return false,
                    _ => {}
                }
            }
        }
    }
}

/// (conveyed-information text, other member names) of a JSON output.
fn json_output(body: &[u8]) -> Result<(String, Vec<String>, SignedMembers), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let top = v.as_object().ok_or("body is not a JSON object")?;
    let out = top
        .get("ietf-sztp-bootstrap-server:output")
        .and_then(Value::as_object)
        .ok_or("no ietf-sztp-bootstrap-server:output object")?;
    let mut extra: Vec<String> = top
        .keys()
        .filter(|k| *k != "ietf-sztp-bootstrap-server:output")
        .cloned()
        .collect();
    extra.extend(out.keys().filter(|k| *k != "conveyed-information").cloned());
    let ci = out
        .get("conveyed-information")
        .and_then(Value::as_str)
        .ok_or("no conveyed-information string")?;
    let member = |n: &str| out.get(n).and_then(Value::as_str).map(str::to_string);
    let signed = SignedMembers {
        owner_certificate: member("owner-certificate"),
        ownership_voucher: member("ownership-voucher"),
    };
    Ok((ci.to_string(), extra, signed))
}

/// (conveyed-information text, other child names) of an XML output.
fn xml_output(body: &[u8]) -> Result<(String, Vec<String>, SignedMembers), String> {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_reader(body);
    let mut depth = 0usize;
    let mut current = String::new();
    let mut ci = None;
    let mut extra = Vec::new();
    let mut signed = SignedMembers::default();
    loop {
        match r.read_event().map_err(|e| format!("bad XML: {e}"))? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if depth == 0 && name != "output" {
                    return Err(format!("root element <{name}>, not <output>"));
                }
                if depth == 1 {
                    current.clone_from(&name);
                    if name != "conveyed-information" {
                        extra.push(name);
                    }
                }
                depth += 1;
            }
            Event::Empty(e) if depth == 1 => {
                extra.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned())
            }
            Event::Text(t) if depth == 2 => {
                let text = Some(t.unescape().map_err(|e| e.to_string())?.into_owned());
                match current.as_str() {
                    "conveyed-information" => ci = text,
                    "owner-certificate" => signed.owner_certificate = text,
                    "ownership-voucher" => signed.ownership_voucher = text,
                    _ => {}
                }
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Eof => break,
            _ => {}
        }
    }
    Ok((ci.ok_or("no <conveyed-information>")?, extra, signed))
}

/// Accepts any server certificate, as a device does with a server it cannot authenticate yet
/// (RFC 8572 §5.3 "provisional"), but still checks the handshake signatures.
#[derive(Debug)]
struct Blind(rustls::crypto::WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Blind {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// The probe's TLS client: blind server trust, http/1.1, the client certificate if given.
pub(crate) fn client_config(p: &RestconfParams) -> Result<Arc<ClientConfig>, String> {
    let provider = crate::restconf::tls::provider();
    let algorithms = provider.signature_verification_algorithms;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Blind(algorithms)));
    with_client_auth(builder, p)
}

/// A TLS client that authenticates the server with the certificates of `trust_anchor` (DER
/// certs-only SignedData from a verified signed redirect, RFC 8572 §5.5): webpki path
/// validation and the server name (host name or IP address) against the certificate.
pub(crate) fn anchored_config(
    p: &RestconfParams,
    trust_anchor: &[u8],
) -> Result<Arc<ClientConfig>, String> {
    use der::Encode;
    let certs = certs_only_certificates("trust-anchor", trust_anchor).map_err(|e| e.to_string())?;
    let mut roots = rustls::RootCertStore::empty();
    for c in &certs {
        let der = c.to_der().map_err(|e| e.to_string())?;
        roots
            .add(CertificateDer::from(der))
            .map_err(|e| format!("trust-anchor {}: {e}", c.tbs_certificate().subject()))?;
    }
    let builder = ClientConfig::builder_with_provider(crate::restconf::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    with_client_auth(builder, p)
}

/// Subjects of a trust anchor's certificates, for the report.
fn anchor_subjects(trust_anchor: &[u8]) -> String {
    match certs_only_certificates("trust-anchor", trust_anchor) {
        Ok(certs) => certs
            .iter()
            .map(|c| c.tbs_certificate().subject().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        Err(e) => e.to_string(),
    }
}

fn with_client_auth(
    builder: rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>,
    p: &RestconfParams,
) -> Result<Arc<ClientConfig>, String> {
    let mut config = match &p.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<Result<_, _>>())
                .map_err(|e| format!("--client-cert {}: {e}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("--client-key {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate: {e}"))?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

struct HttpAnswer {
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
}

/// A TCP connection to `addr`, from `source` (port chosen by the kernel) when given.
async fn connect_from(
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> std::io::Result<tokio::net::TcpStream> {
    let Some(ip) = source else {
        return tokio::net::TcpStream::connect(addr).await;
    };
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(ip, 0))?;
    socket.connect(addr).await
}

/// One connection, one request (devices do not rely on keep-alive between steps).
async fn exchange(
    target: &Target,
    tls: &Arc<ClientConfig>,
    request: hyper::Request<Full<Bytes>>,
    seen: &mut (Option<String>, Option<String>),
    source: Option<IpAddr>,
) -> Result<HttpAnswer, String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", target.host))?
        .collect();
    let mut last = format!("{} has no address", target.host);
    // RFC 8572 §5.5: every address of a name before the next list entry
    for addr in addrs {
        let tcp = match connect_from(addr, source).await {
            Ok(s) => s,
            Err(e) => {
                last = match source {
                    Some(ip) => format!("connect {addr} from {ip}: {e}"),
                    None => format!("connect {addr}: {e}"),
                };
                continue;
            }
        };
        let name = ServerName::try_from(target.host.clone())
            .map_err(|e| format!("{}: {e}", target.host))?;
        let stream = tokio_rustls::TlsConnector::from(Arc::clone(tls))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {addr}: {e}"))?;
        {
            let (_, conn) = stream.get_ref();
            seen.0 = conn
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| describe_certificate(c));
            seen.1 = conn.protocol_version().map(|v| {
                format!("{v:?}")
                    .replace("TLSv1_", "TLS 1.")
                    .replace("TLSv", "TLS ")
            });
        }
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| format!("HTTP with {addr}: {e}"))?;
        let driver = tokio::spawn(conn);
        let resp = send
            .send_request(request)
            .await
            .map_err(|e| format!("HTTP with {addr}: {e}"))?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| format!("reading the answer from {addr}: {e}"))?
            .to_bytes()
            .to_vec();
        driver.abort();
        return Ok(HttpAnswer {
            status,
            content_type,
            body,
        });
    }
    Err(last)
}

fn describe_certificate(der: &CertificateDer<'_>) -> String {
    match x509_cert::Certificate::from_der(der) {
        Ok(c) => {
            let tbs = c.tbs_certificate();
            let alg = tbs.subject_public_key_info().algorithm.oid.to_string();
            let kind = match alg.as_str() {
                "1.2.840.10045.2.1" => "ECDSA",
                "1.2.840.113549.1.1.1" => "RSA",
                "1.3.101.112" => "Ed25519",
                _ => alg.as_str(),
            };
            format!("{} ({kind})", tbs.subject())
        }
        Err(_) => "unparsable certificate".into(),
    }
}

/// Visits one server: host-meta (unless the target has a path), then get-bootstrapping-data.
pub(crate) async fn fetch(target: &Target, p: &RestconfParams, tls: &Arc<ClientConfig>) -> Hop {
    let mut hop = Hop {
        target: target.clone(),
        root: None,
        notes: Vec::new(),
        server_certificate: None,
        tls_version: None,
        authenticated: None,
        answer: Answer::Unreachable(String::new()),
    };
    let mut seen = (None, None);
    let authority = {
        let u = target.url();
        u.trim_start_matches("https://")
            .split('/')
            .next()
            .unwrap_or("")
            .to_string()
    };
    let path = match &target.path {
        Some(path) => path.clone(),
        None => {
            let req = hyper::Request::get("/.well-known/host-meta")
                .header(hyper::header::HOST, &authority)
                .header(hyper::header::ACCEPT, "application/xrd+xml")
                .body(Full::new(Bytes::new()))
                .expect("static request");
            let root = match tokio::time::timeout(
                p.timeout,
                exchange(target, tls, req, &mut seen, p.source),
            )
            .await
            {
                Err(_) => {
                    hop.answer = Answer::Unreachable("host-meta: timed out".into());
                    return hop;
                }
                Ok(Err(e)) => {
                    hop.answer = Answer::Unreachable(e);
                    return hop;
                }
                Ok(Ok(a)) if a.status == 200 => host_meta_root(&a.body),
                Ok(Ok(a)) => {
                    hop.notes
                        .push(format!("host-meta answered HTTP {}", a.status));
                    None
                }
            };
            let root = root.unwrap_or_else(|| {
                hop.notes
                    .push("no restconf link in host-meta: trying /restconf".into());
                "/restconf".into()
            });
            hop.root = Some(root.clone());
            format!("{}/{GBD_OPERATION}", root.trim_end_matches('/'))
        }
    };
    let media = if p.xml {
        "application/yang-data+xml"
    } else {
        "application/yang-data+json"
    };
    let mut req = hyper::Request::post(path)
        .header(hyper::header::HOST, &authority)
        .header(hyper::header::CONTENT_TYPE, media)
        .header(hyper::header::ACCEPT, media);
    if let Some(s) = &p.serial {
        let creds = base64::engine::general_purpose::STANDARD.encode(format!("{s}:"));
        req = req.header(hyper::header::AUTHORIZATION, format!("Basic {creds}"));
    }
    let req = req
        .body(Full::new(Bytes::from(request_body(p))))
        .expect("valid request");
    let answer =
        tokio::time::timeout(p.timeout, exchange(target, tls, req, &mut seen, p.source)).await;
    hop.server_certificate = seen.0;
    hop.tls_version = seen.1;
    hop.answer = match answer {
        Err(_) => Answer::Unreachable("get-bootstrapping-data: timed out".into()),
        Ok(Err(e)) => Answer::Unreachable(e),
        Ok(Ok(a)) if a.status == 200 => {
            let xml = a.content_type.as_deref().is_some_and(|c| c.contains("xml"));
            let (answer, notes) = read_output_checked(
                xml,
                &a.body,
                &p.manufacturer_ca,
                p.serial.as_deref(),
                crate::journal::unix_now(),
            );
            hop.notes.extend(notes);
            answer
        }
        Ok(Ok(a)) => {
            let (tag, message) = error_fields(&a.body);
            Answer::Error {
                status: a.status,
                tag,
                message,
            }
        }
    };
    hop
}

/// error-tag and error-message of an RFC 8040 error body (JSON or XML), if it is one.
fn error_fields(body: &[u8]) -> (Option<String>, Option<String>) {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let e = &v["ietf-restconf:errors"]["error"][0];
        return (
            e["error-tag"].as_str().map(str::to_string),
            e["error-message"].as_str().map(str::to_string),
        );
    }
    let text = String::from_utf8_lossy(body);
    let between = |a: &str, b: &str| {
        text.find(a).and_then(|i| {
            text[i + a.len()..]
                .find(b)
                .map(|j| text[i + a.len()..i + a.len() + j].to_string())
        })
    };
    (
        between("<error-tag>", "</error-tag>"),
        between("<error-message>", "</error-message>"),
    )
}

/// Runs the whole walk from `start` on a runtime of its own.
pub(crate) fn run(start: &[Target], p: &RestconfParams) -> Result<RestconfReport, String> {
    let tls = client_config(p)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut fetch_one = |t: &Target| match &t.trust_anchor {
        None => rt.block_on(fetch(t, p, &tls)),
        Some(ta) => {
            let mut hop = match anchored_config(p, ta) {
                Ok(anchored) => rt.block_on(fetch(t, p, &anchored)),
                Err(e) => Hop {
                    target: t.clone(),
                    root: None,
                    notes: Vec::new(),
                    server_certificate: None,
                    tls_version: None,
                    authenticated: None,
                    answer: Answer::Unreachable(format!("trust-anchor unusable: {e}")),
                },
            };
            // the handshake completed, so the certificate path validated to the anchor
            if hop.server_certificate.is_some() {
                hop.authenticated = Some(anchor_subjects(ta));
            }
            hop
        }
    };
    Ok(walk(start, p.max_hops, &mut fetch_one))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn t(s: &str) -> Target {
        Target::parse(s).unwrap()
    }

    fn redirect(to: &[&str]) -> Answer {
        Answer::Redirect {
            format: ContentFormat::Json,
            entries: to
                .iter()
                .map(|u| {
                    let t = t(u);
                    RedirectEntry {
                        address: t.host,
                        port: t.port,
                        trust_anchor: None,
                    }
                })
                .collect(),
        }
    }

    fn scripted(answers: HashMap<String, Answer>) -> impl FnMut(&Target) -> Hop {
        move |target: &Target| Hop {
            target: target.clone(),
            root: Some("/restconf".into()),
            notes: Vec::new(),
            server_certificate: None,
            tls_version: None,
            authenticated: None,
            answer: answers
                .get(&target.url())
                .cloned()
                .unwrap_or(Answer::Unreachable("connection refused".into())),
        }
    }

    #[test]
    fn targets() {
        assert_eq!(
            t("https://192.0.2.1"),
            Target {
                host: "192.0.2.1".into(),
                port: 443,
                path: None,
                trust_anchor: None,
            }
        );
        let op = t("https://[2001:db8::1]:8443/restconf/operations/ietf-sztp-bootstrap-server:get-bootstrapping-data");
        assert_eq!(op.host, "2001:db8::1");
        assert_eq!(op.port, 8443);
        assert!(op.path.unwrap().ends_with(":get-bootstrapping-data"));
        assert_eq!(
            t("https://a.example.com:8443/").url(),
            "https://a.example.com:8443"
        );
        assert_eq!(
            t("https://[2001:db8::1]").url(),
            "https://[2001:db8::1]:443"
        );
        assert!(Target::parse("http://x").is_err());
        assert!(Target::parse("x").is_err());
    }

    #[test]
    fn follows_a_chain_to_onboarding() {
        let mut m = HashMap::new();
        m.insert(
            "https://a.example:443".into(),
            redirect(&["https://down.example:1", "https://b.example:8443"]),
        );
        m.insert(
            "https://b.example:8443".into(),
            Answer::Onboarding {
                format: ContentFormat::Json,
            },
        );
        let r = walk(&[t("https://a.example")], 10, &mut scripted(m));
        assert_eq!(r.end, End::Reached(t("https://b.example:8443")));
        assert_eq!(r.hops.len(), 3);
        assert!(matches!(r.hops[1].answer, Answer::Unreachable(_)));
        assert_eq!(r.exit_code(), 0);
        let text = r.render_text();
        assert!(
            text.contains("RESTCONF hop 1: https://a.example:443"),
            "{text}"
        );
        assert!(text.contains("    2. https://b.example:8443"), "{text}");
        assert!(
            text.contains("result: bootstrapping data from https://b.example:8443 after 3 hops"),
            "{text}"
        );
    }

    /// Everything a server chose (error tag and message, certificate subject, notes) is printed
    /// with terminal controls escaped.
    #[test]
    fn server_text_is_escaped() {
        let mut m = HashMap::new();
        m.insert(
            "https://a.example:443".into(),
            Answer::Error {
                status: 404,
                tag: Some("invalid-value\u{1b}[2J".into()),
                message: Some("no rule\u{9b}31m \u{202e}gnp.exe".into()),
            },
        );
        let mut script = scripted(m);
        let r = walk(&[t("https://a.example")], 10, &mut |target: &Target| {
            let mut h = script(target);
            h.server_certificate = Some("CN=evil\u{7}".into());
            h.notes.push("note\r\u{1b}]0;title\u{7}".into());
            h
        });
        let text = r.render_text();
        assert!(
            !text
                .chars()
                .any(|c| c != '\n' && crate::text::needs_escape(c)),
            "{text:?}"
        );
        assert!(
            text.contains("answer: HTTP 404 invalid-value\\u{1b}[2J: no rule"),
            "{text}"
        );
        assert!(text.contains("server certificate: CN=evil\\u{7}"), "{text}");
    }

    #[test]
    fn a_verified_signed_redirect_hands_its_trust_anchors_on_and_a_rejected_one_is_skipped() {
        let signed = |verdict: SignedVerdict| Answer::Signed {
            owner_certificate: true,
            ownership_voucher: true,
            checks: Vec::new(),
            verdict,
        };
        let mut m = HashMap::new();
        // a's signed answer fails a check: the device moves to the next list entry
        m.insert(
            "https://a.example:443".into(),
            signed(SignedVerdict::Rejected),
        );
        m.insert(
            "https://b.example:443".into(),
            signed(SignedVerdict::Redirect {
                format: ContentFormat::Json,
                entries: vec![RedirectEntry {
                    address: "c.example".into(),
                    port: 8443,
                    trust_anchor: Some(b"TA".to_vec()),
                }],
            }),
        );
        m.insert(
            "https://c.example:8443".into(),
            signed(SignedVerdict::Onboarding),
        );
        let seen = std::cell::RefCell::new(Vec::new());
        let mut inner = scripted(m);
        let mut fetch = |t: &Target| {
            seen.borrow_mut().push(t.trust_anchor.clone());
            inner(t)
        };
        let r = walk(
            &[t("https://a.example"), t("https://b.example")],
            10,
            &mut fetch,
        );
        let End::Reached(reached) = &r.end else {
            panic!("{:?}", r.end)
        };
        assert_eq!((reached.host.as_str(), reached.port), ("c.example", 8443));
        assert_eq!(*seen.borrow(), [None, None, Some(b"TA".to_vec())]);
        // an unsigned redirect's trust anchors are discarded (RFC 8572 §5.5)
        let mut m = HashMap::new();
        m.insert(
            "https://a.example:443".into(),
            Answer::Redirect {
                format: ContentFormat::Json,
                entries: vec![RedirectEntry {
                    address: "c.example".into(),
                    port: 8443,
                    trust_anchor: Some(b"TA".to_vec()),
                }],
            },
        );
        let seen = std::cell::RefCell::new(Vec::new());
        let mut inner = scripted(m);
        let mut fetch = |t: &Target| {
            seen.borrow_mut().push(t.trust_anchor.clone());
            inner(t)
        };
        walk(&[t("https://a.example")], 10, &mut fetch);
        assert_eq!(*seen.borrow(), [None, None]);
    }

    #[test]
    fn detects_loops() {
        let mut m = HashMap::new();
        m.insert(
            "https://a.example:443".into(),
            redirect(&["https://b.example:443"]),
        );
        m.insert(
            "https://b.example:443".into(),
            redirect(&["https://A.example:443"]),
        );
        let r = walk(&[t("https://a.example")], 10, &mut scripted(m));
        assert_eq!(r.end, End::Loop(t("https://a.example")));
        assert_eq!(r.hops.len(), 2);
        assert_eq!(r.exit_code(), 2);
        assert!(r.render_text().contains("result: redirect loop"));
    }

    #[test]
    fn stops_after_max_hops() {
        // 12 servers each redirecting to the next
        let mut m = HashMap::new();
        for i in 0..12 {
            m.insert(
                format!("https://s{i}.example:443"),
                redirect(&[&format!("https://s{}.example", i + 1)]),
            );
        }
        let r = walk(&[t("https://s0.example")], 10, &mut scripted(m));
        assert_eq!(r.end, End::HopLimit);
        // the start plus ten redirects
        assert_eq!(r.hops.len(), 11);
        assert_eq!(r.to_json()["end"], "hop-limit");
    }

    #[test]
    fn nothing_answering_is_exit_3() {
        let r = walk(&[t("https://a.example")], 10, &mut scripted(HashMap::new()));
        assert_eq!(r.end, End::Exhausted);
        assert_eq!(r.exit_code(), 3);
    }

    #[test]
    fn reads_outputs_strictly() {
        let tv5 = "MIGIBgsqhkiG9w0BCRABK6B5BHd7ImlldGYtc3p0cC1jb252ZXllZC1pbmZvOnJlZGlyZWN0LWluZm9ybWF0aW9uIjp7ImJvb3RzdHJhcC1zZXJ2ZXIiOlt7ImFkZHJlc3MiOiJzenRwLm93bmVyLmV4YW1wbGUuY29tIiwicG9ydCI6NDQzfV19fQ==";
        let body = format!(
            r#"{{"ietf-sztp-bootstrap-server:output":{{"conveyed-information":"{tv5}"}}}}"#
        );
        let (a, notes) = read_output(false, body.as_bytes());
        assert!(notes.is_empty());
        match a {
            Answer::Redirect { entries, .. } => {
                assert_eq!(entries[0].address, "sztp.owner.example.com")
            }
            other => panic!("{other:?}"),
        }
        let body = format!(
            r#"{{"ietf-sztp-bootstrap-server:output":{{"conveyed-information":"{tv5}","reporting-level":"verbose"}}}}"#
        );
        let (_, notes) = read_output(false, body.as_bytes());
        assert_eq!(notes.len(), 1, "{notes:?}");
        let xml = format!("<output xmlns=\"urn:ietf:params:xml:ns:yang:ietf-sztp-bootstrap-server\">\n  <conveyed-information>{tv5}</conveyed-information>\n</output>");
        assert!(matches!(
            read_output(true, xml.as_bytes()).0,
            Answer::Redirect { .. }
        ));
        assert!(matches!(read_output(false, b"{}").0, Answer::Invalid(_)));
    }

    #[test]
    fn host_meta_links() {
        let xrd = b"<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n    <Link rel='restconf' href='/top/restconf'/>\n</XRD>\n";
        assert_eq!(host_meta_root(xrd).as_deref(), Some("/top/restconf"));
        assert_eq!(host_meta_root(b"<XRD/>"), None);
    }

    #[test]
    fn request_bodies() {
        let p = RestconfParams {
            hw_model: Some("m<1>".into()),
            ..RestconfParams::default()
        };
        assert_eq!(
            request_body(&p),
            r#"{"ietf-sztp-bootstrap-server:input":{"hw-model":"m<1>","signed-data-preferred":[null]}}"#
        );
        let p = RestconfParams { xml: true, ..p };
        assert!(
            request_body(&p).contains("<signed-data-preferred/><hw-model>m&lt;1&gt;</hw-model>")
        );
    }
}
