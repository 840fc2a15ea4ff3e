//! Semantic checks of the parsed file; every error is collected, none stops the others

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use toml::Spanned;

use super::error::{line_col, ConfigError, ConfigErrors};
use super::file::{
    OneOrMany, RawConfig, RawConveyedEncoding, RawLogFormat, RawReportProgress, RawSerialFrom,
    RawTlsVersion, RawUriEncoding, RawUriForm, RawVia, Str, StrList,
};
use super::{
    Appliance, Config, ConveyedEncoding, Dhcp4, Dhcp6, Dns, FileRef, LogFormat, Mdns, Owner, Pool4,
    Pool6, RedirectServer, ReportProgress, Reservation4, Reservation6, Reservation6Key, SerialFrom,
    Status, Subnet4, Subnet6, TlsFiles, TlsVersion,
};
use crate::policy::{
    BootstrapServer, Glob, KnownDevice, MacAddr, MacPattern, Match, Rule, UriEncoding, UriForm, Via,
};
use crate::sztp::SztpUri;

pub(crate) const DEFAULT_STATE_DIR: &str = "/var/lib/sztp-redirector";
pub(crate) const DEFAULT_JOURNAL_MAX_BYTES: u64 = 16 * 1024 * 1024;
pub(crate) const DEFAULT_STATUS_LISTEN: &str = "127.0.0.1:9143";
/// `redirect-server.max-connections` default.
pub(crate) const DEFAULT_MAX_CONNECTIONS: i64 = 1024;
/// `redirect-server.rate-limit` default: requests per second per source address.
pub(crate) const DEFAULT_RATE_LIMIT: i64 = 20;
/// `redirect-server.client-timeout` default.
pub(crate) const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// `status.max-devices` when absent.
pub(crate) const DEFAULT_STATUS_MAX_DEVICES: usize = 4096;
/// `status.events-per-device` when absent.
pub(crate) const DEFAULT_STATUS_EVENTS_PER_DEVICE: usize = 32;

/// The longest finite DHCPv4 lease and DHCPv6 lifetime, in seconds: option 51 and the IA
/// lifetimes are 32 bits, and 0xffffffff means infinite (RFC 2131 §3.3, RFC 8415 §7.7).
pub(crate) const MAX_FINITE_LEASE_SECS: u64 = 0xffff_fffe;
/// What `"infinite"` stands for: 0xffffffff seconds (RFC 2131 §3.3).
pub(crate) const INFINITE_LEASE: Duration = Duration::from_secs(0xffff_ffff);

/// An inclusive range of allowed values with why the upper bound is what it is.
struct Range4<T> {
    min: T,
    max: T,
    /// Said after the bounds: `(option 51 is 32 bits)`.
    why: &'static str,
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Every duration in the file has one of these ranges.
const OFFER_TIME: Range4<Duration> = Range4 {
    min: secs(1),
    max: secs(3600),
    why: "",
};
const DECLINE_TIME: Range4<Duration> = Range4 {
    min: secs(1),
    max: secs(30 * 86400),
    why: "",
};
const LEASE_TIME: Range4<Duration> = Range4 {
    min: secs(1),
    max: secs(MAX_FINITE_LEASE_SECS),
    why: " (about 136 years: option 51 is 32 bits; \"infinite\" for a lease without end)",
};
const T1_T2: Range4<Duration> = Range4 {
    min: secs(1),
    max: secs(MAX_FINITE_LEASE_SECS),
    why: " (options 58 and 59 are 32 bits)",
};
const IA_T1_T2: Range4<Duration> = Range4 {
    min: secs(1),
    max: secs(MAX_FINITE_LEASE_SECS),
    why: " (an IA_NA's T1 and T2 are 32 bits)",
};
const PREFERRED_LIFETIME: Range4<Duration> = Range4 {
    min: secs(0),
    max: secs(MAX_FINITE_LEASE_SECS),
    why: " (the IA address lifetimes are 32 bits)",
};
const VALID_LIFETIME: Range4<Duration> = Range4 {
    min: secs(1),
    max: secs(MAX_FINITE_LEASE_SECS),
    why: " (the IA address lifetimes are 32 bits)",
};
/// RFC 2181 §8: a TTL is 0 to 2^31 - 1 seconds.
const DNS_TTL: Range4<Duration> = Range4 {
    min: secs(0),
    max: secs(0x7fff_ffff),
    why: " (RFC 2181 §8)",
};
/// `redirect-server.client-timeout`: a device that needs more than an hour per step is gone.
const CLIENT_TIMEOUT: Range4<Duration> = Range4 {
    min: secs(1),
    max: secs(3600),
    why: "",
};
const JOURNAL_MAX_SIZE: Range4<u64> = Range4 {
    min: 4 << 10,
    max: 1 << 40,
    why: "",
};

/// `v` (written `s`) when it is in `r`, else why not, showing the bounds with `show`.
fn in_range<T: PartialOrd + Copy>(
    s: &str,
    v: T,
    r: &Range4<T>,
    show: fn(T) -> String,
) -> Result<T, String> {
    if v < r.min {
        Err(format!("{s:?} is too short: at least {}", show(r.min)))
    } else if v > r.max {
        Err(format!(
            "{s:?} is too long: at most {}{}",
            show(r.max),
            r.why
        ))
    } else {
        Ok(v)
    }
}

/// Collects errors with their byte offsets so they come out in file order.
struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
    errors: Vec<(usize, ConfigError)>,
}

impl Ctx<'_> {
    fn err(&mut self, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        let e = ConfigError::at(self.path, self.text, span.start, key, message);
        self.errors.push((span.start, e));
    }

    fn line(&self, span: &Range<usize>) -> usize {
        line_col(self.text, span.start).0
    }

    /// Parse with `f`; on error report it at the value and give `None`.
    fn parse<T>(
        &mut self,
        v: &Str,
        key: &str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match f(v.get_ref()) {
            Ok(t) => Some(t),
            Err(m) => {
                self.err(v.span(), key, m);
                None
            }
        }
    }

    /// A duration in `range` (a value outside is an error at the value, and `default` is used
    /// so later checks do not report it twice).
    fn duration_in(
        &mut self,
        v: &Option<Str>,
        key: &str,
        default: Duration,
        range: Range4<Duration>,
    ) -> Duration {
        self.opt_duration_in(v, key, range).unwrap_or(default)
    }

    /// An optional duration in `range`; `None` when absent or wrong (reported).
    fn opt_duration_in(
        &mut self,
        v: &Option<Str>,
        key: &str,
        range: Range4<Duration>,
    ) -> Option<Duration> {
        let v = v.as_ref()?;
        self.parse(v, key, |s| {
            let d = parse_duration(s)?;
            in_range(s, d, &range, show)
        })
    }

    fn each<T>(
        &mut self,
        list: &[Str],
        key: &str,
        f: impl Fn(&str) -> Result<T, String>,
    ) -> Vec<T> {
        list.iter()
            .enumerate()
            .filter_map(|(i, v)| self.parse(v, &format!("{key}[{i}]"), &f))
            .collect()
    }

    /// A required, non-empty list of socket addresses.
    fn listen(
        &mut self,
        v: &Option<StrList>,
        key: &str,
        section: &Range<usize>,
        default: Option<&str>,
    ) -> Vec<SocketAddr> {
        match v {
            None => match default {
                Some(d) => vec![d.parse().expect("default listen address")],
                None => {
                    self.err(
                        section.clone(),
                        key.rsplit_once('.').map_or(key, |k| k.0),
                        format!("missing key \"{}\"", key.rsplit('.').next().unwrap_or(key)),
                    );
                    Vec::new()
                }
            },
            Some(l) if l.get_ref().is_empty() => {
                self.err(l.span(), key, "needs at least one address");
                Vec::new()
            }
            Some(l) => self.each(l.get_ref(), key, parse_socket_addr),
        }
    }

    /// A required, non-empty list of interface names.
    fn interfaces(
        &mut self,
        v: &Option<StrList>,
        section_key: &str,
        section: &Range<usize>,
    ) -> Vec<String> {
        let key = format!("{section_key}.interfaces");
        match v {
            None => {
                self.err(section.clone(), section_key, "missing key \"interfaces\" (the service never answers on an interface the file does not name)");
                Vec::new()
            }
            Some(l) if l.get_ref().is_empty() => {
                self.err(l.span(), key, "needs at least one interface name");
                Vec::new()
            }
            Some(l) => self.each(l.get_ref(), &key, parse_interface),
        }
    }

    fn dns_names(&mut self, list: &[Str], key: &str) -> Vec<String> {
        self.each(list, key, parse_dns_name)
    }
}

/// Check everything and build the configuration, or return every error in file order.
pub(crate) fn validate(path: &Path, text: &str, raw: RawConfig) -> Result<Config, ConfigErrors> {
    let mut cx = Ctx {
        path,
        text,
        errors: Vec::new(),
    };
    let appliance = appliance(&mut cx, &raw);
    let bootstrap_servers = bootstrap_servers(&mut cx, &raw);
    let redirect_server = redirect_server(&mut cx, &raw);
    // judged from the file, so an invalid but enabled section does not add a second error
    let redirect_enabled = raw
        .redirect_server
        .as_ref()
        .is_some_and(|r| r.get_ref().enabled != Some(false));
    if let Some(rs) = &redirect_server {
        no_loop_to_redirect_server(&mut cx, &raw, &bootstrap_servers, &rs.advertise);
    }
    let rules = rules(&mut cx, &raw, &bootstrap_servers, redirect_enabled);
    let devices = devices(&mut cx, &raw, &bootstrap_servers);
    let dhcp4 = dhcp4(&mut cx, &raw);
    let dhcp6 = dhcp6(&mut cx, &raw);
    let dns = dns(&mut cx, &raw);
    let status = status(&mut cx, &raw);
    let (owner, trust_anchors) = owner(&mut cx, &raw);
    if !cx.errors.is_empty() {
        cx.errors.sort_by_key(|(offset, _)| *offset);
        return Err(ConfigErrors(
            cx.errors.into_iter().map(|(_, e)| e).collect(),
        ));
    }
    Ok(Config {
        source: path.to_path_buf(),
        appliance,
        bootstrap_servers,
        redirect_server,
        rules,
        devices,
        dhcp4,
        dhcp6,
        dns,
        status,
        owner,
        trust_anchors,
    })
}

/// A path value: kept as written (relative to the working directory), with its position.
fn file_ref(cx: &mut Ctx<'_>, v: &Str, key: String) -> Option<FileRef> {
    if v.get_ref().is_empty() {
        cx.err(v.span(), key, "must not be empty");
        return None;
    }
    let (line, col) = line_col(cx.text, v.span().start);
    Some(FileRef {
        path: PathBuf::from(v.get_ref()),
        key,
        line,
        col,
    })
}

/// `[owner]` and every `bootstrap-server[i].trust-anchor`; the files are read by
/// `crate::owner`, not here (this module stays free of I/O beyond the TOML text).
fn owner(cx: &mut Ctx<'_>, raw: &RawConfig) -> (Option<Owner>, Vec<(String, FileRef)>) {
    let owner = raw.owner.as_ref().and_then(|o| {
        let o = o.get_ref();
        let certificate = file_ref(cx, &o.certificate, "owner.certificate".into());
        let key = file_ref(cx, &o.key, "owner.key".into());
        let vouchers = o
            .vouchers
            .as_ref()
            .and_then(|v| file_ref(cx, v, "owner.vouchers".into()));
        Some(Owner {
            certificate: certificate?,
            key: key?,
            vouchers,
        })
    });
    let mut anchors = Vec::new();
    for (i, b) in raw.bootstrap_server.iter().enumerate() {
        let b = b.get_ref();
        if let Some(t) = &b.trust_anchor {
            if let Some(f) = file_ref(cx, t, format!("bootstrap-server[{i}].trust-anchor")) {
                anchors.push((b.name.get_ref().clone(), f));
            }
        }
    }
    (owner, anchors)
}

fn appliance(cx: &mut Ctx<'_>, raw: &RawConfig) -> Appliance {
    let mut a = Appliance {
        state_dir: PathBuf::from(DEFAULT_STATE_DIR),
        log_format: LogFormat::Text,
        user: None,
        journal_max_bytes: DEFAULT_JOURNAL_MAX_BYTES,
    };
    let Some(r) = &raw.appliance else { return a };
    let r = r.get_ref();
    if let Some(d) = &r.state_dir {
        if d.get_ref().is_empty() {
            cx.err(d.span(), "appliance.state-dir", "must not be empty");
        } else {
            // relative paths are kept as written: relative to the working directory
            a.state_dir = PathBuf::from(d.get_ref());
        }
    }
    a.log_format = match r.log_format {
        Some(RawLogFormat::Json) => LogFormat::Json,
        _ => LogFormat::Text,
    };
    if let Some(u) = &r.user {
        if u.get_ref().is_empty() {
            cx.err(
                u.span(),
                "appliance.user",
                "must not be empty (leave the key out to keep the current user)",
            );
        } else {
            a.user = Some(u.get_ref().clone());
        }
    }
    if let Some(s) = &r.journal_max_size {
        let check = |v: &str| {
            let n = parse_size(v)?;
            in_range(v, n, &JOURNAL_MAX_SIZE, show_size).map_err(|e| {
                e.replace("too short", "too small")
                    .replace("too long", "too large")
            })
        };
        if let Some(n) = cx.parse(s, "appliance.journal-max-size", check) {
            a.journal_max_bytes = n;
        }
    }
    a
}

/// Subnets (or prefixes) of one section must not overlap; `net` joins `nets` either way.
#[allow(clippy::too_many_arguments)]
fn no_overlap(
    cx: &mut Ctx<'_>,
    nets: &mut Vec<(usize, IpNet)>,
    i: usize,
    net: IpNet,
    span: Range<usize>,
    key: &str,
    what: &str,
    section: &str,
) {
    if let Some((j, other)) = nets
        .iter()
        .find(|(_, o)| o.contains(&net.network()) || net.contains(&o.network()))
    {
        cx.err(
            span,
            format!("{key}.{what}"),
            format!("{what} {net} overlaps {what} {other} ({section}.subnet[{j}])"),
        );
    }
    nets.push((i, net));
}

/// Whether pool `start-end` overlaps an earlier pool of the subnet (reported if so).
fn pool_overlaps<A: Ord + Copy + std::fmt::Display>(
    cx: &mut Ctx<'_>,
    earlier: impl Iterator<Item = (A, A)>,
    (start, end): (A, A),
    span: Range<usize>,
    key: &str,
    pkey: &str,
) -> bool {
    let mut earlier = earlier.enumerate();
    let Some((k, (os, oe))) = earlier.find(|(_, (os, oe))| *os <= end && start <= *oe) else {
        return false;
    };
    cx.err(
        span,
        pkey,
        format!("pool {start}-{end} overlaps pool {os}-{oe} ({key}.pools[{k}])"),
    );
    true
}

/// A name must be non-empty and unique among the `what`s of the file.
fn unique_name(
    cx: &mut Ctx<'_>,
    seen: &mut HashMap<String, Range<usize>>,
    name: &Spanned<String>,
    key: String,
    what: &str,
) {
    let n = name.get_ref();
    if n.is_empty() {
        cx.err(name.span(), key, "must not be empty");
    } else if let Some(first) = seen.get(n) {
        let line = cx.line(first);
        cx.err(
            name.span(),
            key,
            format!("duplicate {what} name {n:?} (first defined at line {line})"),
        );
    } else {
        seen.insert(n.clone(), name.span());
    }
}

fn bootstrap_servers(cx: &mut Ctx<'_>, raw: &RawConfig) -> Vec<BootstrapServer> {
    let mut out = Vec::new();
    let mut seen: HashMap<String, Range<usize>> = HashMap::new();
    for (i, b) in raw.bootstrap_server.iter().enumerate() {
        let b = b.get_ref();
        let name = b.name.get_ref();
        unique_name(
            cx,
            &mut seen,
            &b.name,
            format!("bootstrap-server[{i}].name"),
            "bootstrap-server",
        );
        let key = format!("bootstrap-server[{i}].uri");
        if let Some(uri) = cx.parse(&b.uri, &key, parse_uri) {
            out.push(BootstrapServer {
                name: name.clone(),
                uri,
            });
        }
    }
    out
}

/// A bootstrap server that is the redirect server itself would send devices round in a loop
/// (digest §10.13): refuse it where it is defined.
fn no_loop_to_redirect_server(
    cx: &mut Ctx<'_>,
    raw: &RawConfig,
    servers: &[BootstrapServer],
    advertise: &SztpUri,
) {
    for (i, b) in raw.bootstrap_server.iter().enumerate() {
        let b = b.get_ref();
        let same = servers.iter().any(|s| {
            &s.name == b.name.get_ref()
                && s.uri.host == advertise.host
                && s.uri.effective_port() == advertise.effective_port()
        });
        if same {
            cx.err(
                b.uri.span(),
                format!("bootstrap-server[{i}].uri"),
                format!(
                    "{:?} is the redirect server's own advertise URI: devices sent there would \
                     come straight back (a redirect loop)",
                    b.uri.get_ref()
                ),
            );
        }
    }
}

fn parse_uri(s: &str) -> Result<SztpUri, String> {
    SztpUri::parse(s).map_err(|e| format!("{s:?} is not a bootstrap server URI: {e}"))
}

fn redirect_server(cx: &mut Ctx<'_>, raw: &RawConfig) -> Option<RedirectServer> {
    let s = raw.redirect_server.as_ref()?;
    let span = s.span();
    let r = s.get_ref();
    if r.enabled == Some(false) {
        return None;
    }
    let listen = cx.listen(&r.listen, "redirect-server.listen", &span, None);
    let advertise = match &r.advertise {
        None => {
            cx.err(
                span.clone(),
                "redirect-server",
                "missing key \"advertise\" (the URI DHCP and DNS hand out for this server)",
            );
            None
        }
        Some(a) => cx.parse(a, "redirect-server.advertise", |s| {
            SztpUri::parse(s).map_err(|e| format!("{s:?} is not an SZTP URI: {e}"))
        }),
    };
    let path = |v: &Str, cx: &mut Ctx<'_>, key: &str| -> Option<PathBuf> {
        if v.get_ref().is_empty() {
            cx.err(v.span(), key, "must not be empty");
            return None;
        }
        Some(PathBuf::from(v.get_ref()))
    };
    // tls-certificate and tls-key: one path each, or lists paired by position (an RSA and an
    // ECDSA certificate, say)
    let paths = |v: &Option<Spanned<OneOrMany>>, cx: &mut Ctx<'_>, key: &str| -> Vec<PathBuf> {
        let Some(v) = v else { return Vec::new() };
        let items = OneOrMany::items(v);
        if items.is_empty() {
            cx.err(v.span(), key, "needs at least one file");
        }
        let many = matches!(v.get_ref(), OneOrMany::Many(_));
        items
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let k = if many {
                    format!("{key}[{i}]")
                } else {
                    key.to_string()
                };
                path(p, cx, &k)
            })
            .collect()
    };
    let certs = paths(&r.tls_certificate, cx, "redirect-server.tls-certificate");
    let keys = paths(&r.tls_key, cx, "redirect-server.tls-key");
    match (&r.tls_certificate, &r.tls_key) {
        (Some(c), None) => cx.err(
            c.span(),
            "redirect-server.tls-certificate",
            "needs tls-key as well (give both or neither)",
        ),
        (None, Some(k)) => cx.err(
            k.span(),
            "redirect-server.tls-key",
            "needs tls-certificate as well (give both or neither)",
        ),
        (Some(c), Some(k)) => {
            let (nc, nk) = (OneOrMany::items(c).len(), OneOrMany::items(k).len());
            if nc != nk {
                cx.err(
                    k.span(),
                    "redirect-server.tls-key",
                    format!("names {nk} key file(s) for {nc} certificate file(s): they pair by position"),
                );
            }
        }
        (None, None) => {}
    }
    let tls = certs
        .into_iter()
        .zip(keys)
        .map(|(certificate, key)| TlsFiles { certificate, key })
        .collect();
    let client_ca = r
        .client_ca
        .as_ref()
        .and_then(|v| path(v, cx, "redirect-server.client-ca"));
    let count =
        |v: &Option<Spanned<i64>>, cx: &mut Ctx<'_>, key: &str, min: i64, default: i64| -> i64 {
            match v {
                None => default,
                Some(n) if (min..=i64::from(u32::MAX)).contains(n.get_ref()) => *n.get_ref(),
                Some(n) => {
                    cx.err(
                        n.span(),
                        key,
                        format!("must be a whole number from {min} to {}", u32::MAX),
                    );
                    default
                }
            }
        };
    let max_connections = count(
        &r.max_connections,
        cx,
        "redirect-server.max-connections",
        1,
        DEFAULT_MAX_CONNECTIONS,
    );
    let rate_limit = count(
        &r.rate_limit,
        cx,
        "redirect-server.rate-limit",
        0,
        DEFAULT_RATE_LIMIT,
    );
    let client_timeout = cx.duration_in(
        &r.client_timeout,
        "redirect-server.client-timeout",
        DEFAULT_CLIENT_TIMEOUT,
        CLIENT_TIMEOUT,
    );
    Some(RedirectServer {
        listen,
        advertise: advertise?,
        tls,
        client_ca,
        serial_from: match r.serial_from {
            None | Some(RawSerialFrom::SubjectSerialNumber) => SerialFrom::SubjectSerialNumber,
            Some(RawSerialFrom::SubjectCn) => SerialFrom::SubjectCn,
            Some(RawSerialFrom::BasicUsername) => SerialFrom::BasicUsername,
        },
        report_progress: match r.report_progress {
            None | Some(RawReportProgress::Accept) => ReportProgress::Accept,
            Some(RawReportProgress::Reject) => ReportProgress::Reject,
        },
        min_tls_version: match r.min_tls_version.as_ref().map(|v| *v.get_ref()) {
            None | Some(RawTlsVersion::Tls12) => TlsVersion::Tls12,
            Some(RawTlsVersion::Tls13) => TlsVersion::Tls13,
        },
        max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
        rate_limit: u32::try_from(rate_limit).unwrap_or(u32::MAX),
        client_timeout,
        conveyed_encoding: match r.conveyed_encoding {
            None | Some(RawConveyedEncoding::AsResponse) => ConveyedEncoding::AsResponse,
            Some(RawConveyedEncoding::Json) => ConveyedEncoding::Json,
            Some(RawConveyedEncoding::Xml) => ConveyedEncoding::Xml,
        },
    })
}

/// Resolve `redirect-to` names; unknown and repeated names are errors at the element.
fn resolve(
    cx: &mut Ctx<'_>,
    list: &StrList,
    key: &str,
    servers: &[BootstrapServer],
    raw: &RawConfig,
) -> Vec<BootstrapServer> {
    let mut out: Vec<BootstrapServer> = Vec::new();
    for (i, n) in list.get_ref().iter().enumerate() {
        let name = n.get_ref();
        let k = format!("{key}[{i}]");
        if out.iter().any(|b| &b.name == name) {
            cx.err(
                n.span(),
                k,
                format!("bootstrap-server {name:?} is listed twice"),
            );
        } else if let Some(b) = servers.iter().find(|b| &b.name == name) {
            out.push(b.clone());
        } else if !raw
            .bootstrap_server
            .iter()
            .any(|b| b.get_ref().name.get_ref() == name)
        {
            // a defined server with a bad URI has its own error already
            cx.err(n.span(), k, format!("unknown bootstrap-server {name:?}"));
        }
    }
    out
}

fn rules(
    cx: &mut Ctx<'_>,
    raw: &RawConfig,
    servers: &[BootstrapServer],
    redirect_server: bool,
) -> Vec<Rule> {
    let mut out = Vec::new();
    let mut seen: HashMap<String, Range<usize>> = HashMap::new();
    for (i, r) in raw.rule.iter().enumerate() {
        let r = r.get_ref();
        let name = r.name.get_ref();
        unique_name(cx, &mut seen, &r.name, format!("rule[{i}].name"), "rule");
        let key = format!("rule[{i}].redirect-to");
        // an empty list is allowed: the rule's devices are excluded from SZTP (no option
        // 143/136, no SRV/TXT, no redirect), e.g. OpenConfig bootz devices that reuse 143/136
        let redirect_to = resolve(cx, &r.redirect_to, &key, servers, raw);
        let via = r.via.as_ref().map(|v| match v.get_ref() {
            RawVia::RedirectServer => Via::RedirectServer,
            RawVia::Direct => Via::Direct,
        });
        if let Some(v) = &r.via {
            if *v.get_ref() == RawVia::RedirectServer && !redirect_server {
                cx.err(
                    v.span(),
                    format!("rule[{i}].via"),
                    "\"redirect-server\" needs an enabled [redirect-server] section",
                );
            }
        }
        let m = r.matches.as_ref();
        let mkey = format!("rule[{i}].match");
        let globs = |v: Option<&Spanned<OneOrMany>>| -> Vec<Glob> {
            v.map(|v| {
                OneOrMany::items(v)
                    .into_iter()
                    .map(|s| Glob(s.into_inner()))
                    .collect()
            })
            .unwrap_or_default()
        };
        let mac = match m.and_then(|m| m.mac.as_ref()) {
            Some(v) => {
                let items = OneOrMany::items(v);
                let k = match v.get_ref() {
                    OneOrMany::One(_) => vec![format!("{mkey}.mac")],
                    OneOrMany::Many(l) => {
                        (0..l.len()).map(|j| format!("{mkey}.mac[{j}]")).collect()
                    }
                };
                items
                    .iter()
                    .zip(k)
                    .filter_map(|(s, k)| cx.parse(s, &k, |s| s.parse::<MacPattern>()))
                    .collect()
            }
            None => Vec::new(),
        };
        let matches = match m {
            None => Match::default(),
            Some(m) => Match {
                mac,
                vendor_class: globs(m.vendor_class.as_ref()),
                user_class: globs(m.user_class.as_ref()),
                client_id: globs(m.client_id.as_ref()),
                circuit_id: globs(m.circuit_id.as_ref()),
                remote_id: globs(m.remote_id.as_ref()),
                interface: globs(m.interface.as_ref()),
                serial: globs(m.serial.as_ref()),
                hw_model: globs(m.hw_model.as_ref()),
                serial_verified: m.serial_verified,
            },
        };
        let encoding = match r.dhcp_uri_encoding {
            None | Some(RawUriEncoding::Rfc8572) => UriEncoding::Rfc8572,
            Some(RawUriEncoding::Text) => UriEncoding::Text,
        };
        let form = match r.dhcp_uri_form.as_ref().map(Spanned::get_ref) {
            None | Some(RawUriForm::Authority) => UriForm::Authority,
            Some(RawUriForm::OperationUrl) => UriForm::OperationUrl,
            Some(RawUriForm::HostPort) => UriForm::HostPort,
        };
        if let (UriForm::HostPort, UriEncoding::Rfc8572, Some(v)) =
            (form, encoding, &r.dhcp_uri_form)
        {
            // a bare host:port is not a URI: the RFC 8572 list would carry a string no
            // conforming client can use (interop.md §1: only fl-sztp reads it, as text)
            cx.err(
                v.span(),
                format!("rule[{i}].dhcp-uri-form"),
                "\"host-port\" needs dhcp-uri-encoding = \"text\" (RFC 8572 §8.3 lists carry URIs)",
            );
        }
        out.push(Rule {
            name: name.clone(),
            matches,
            redirect_to,
            via,
            encoding,
            form,
            always_send: r.dhcp_always_send.unwrap_or(false),
        });
    }
    out
}

fn devices(cx: &mut Ctx<'_>, raw: &RawConfig, servers: &[BootstrapServer]) -> Vec<KnownDevice> {
    let mut out = Vec::new();
    let mut serials: HashMap<String, Range<usize>> = HashMap::new();
    let mut macs: HashMap<MacAddr, Range<usize>> = HashMap::new();
    for (i, d) in raw.device.iter().enumerate() {
        let span = d.span();
        let d = d.get_ref();
        if d.serial.is_none() && d.mac.is_none() {
            cx.err(
                span.clone(),
                format!("device[{i}]"),
                "needs a serial, a mac or both",
            );
        }
        let serial = d.serial.as_ref().and_then(|s| {
            let key = format!("device[{i}].serial");
            if s.get_ref().is_empty() {
                cx.err(s.span(), key, "must not be empty");
                return None;
            }
            if let Some(first) = serials.get(s.get_ref()) {
                let line = cx.line(first);
                cx.err(
                    s.span(),
                    key,
                    format!(
                        "duplicate device serial {:?} (first at line {line})",
                        s.get_ref()
                    ),
                );
            } else {
                serials.insert(s.get_ref().clone(), s.span());
            }
            Some(s.get_ref().clone())
        });
        let mac = d.mac.as_ref().and_then(|s| {
            let key = format!("device[{i}].mac");
            let mac = cx.parse(s, &key, |s| s.parse::<MacAddr>())?;
            if let Some(first) = macs.get(&mac) {
                let line = cx.line(first);
                cx.err(
                    s.span(),
                    key,
                    format!("duplicate device mac {mac} (first at line {line})"),
                );
            } else {
                macs.insert(mac, s.span());
            }
            Some(mac)
        });
        let redirect_to = match &d.redirect_to {
            Some(l) => resolve(cx, l, &format!("device[{i}].redirect-to"), servers, raw),
            None => Vec::new(),
        };
        out.push(KnownDevice {
            serial,
            mac,
            redirect_to,
        });
    }
    out
}

/// What differs between `[dhcp4]` and `[dhcp6]` for the checks they share (one routine,
/// generic over the address family, validates their subnets' network, pools and DNS servers).
trait Family {
    /// `Ipv4Addr` or `Ipv6Addr`.
    type Addr: Copy + Ord + std::fmt::Display + std::str::FromStr;
    /// `Ipv4Net` or `Ipv6Net`.
    type Net: Copy + std::fmt::Display;
    /// `dhcp4` or `dhcp6`.
    const SECTION: &'static str;
    /// The key naming a subnet's network: `subnet` or `prefix`.
    const NET_KEY: &'static str;
    /// How an address is spelt out in errors.
    const ADDR_WHAT: &'static str;
    fn parse_net(s: &str) -> Result<Self::Net, String>;
    fn ip_net(n: Self::Net) -> IpNet;
    fn contains(n: &Self::Net, a: &Self::Addr) -> bool;
    /// Addresses of `n` no pool or reservation may use, with their name (IPv4: the network and
    /// broadcast addresses of a subnet of /30 or wider; IPv6: none).
    fn unusable(n: &Self::Net) -> Vec<(Self::Addr, &'static str)>;
}

struct V4;
struct V6;

impl Family for V4 {
    type Addr = Ipv4Addr;
    type Net = Ipv4Net;
    const SECTION: &'static str = "dhcp4";
    const NET_KEY: &'static str = "subnet";
    const ADDR_WHAT: &'static str = "an IPv4 address";
    fn parse_net(s: &str) -> Result<Ipv4Net, String> {
        parse_net4(s)
    }
    fn ip_net(n: Ipv4Net) -> IpNet {
        IpNet::V4(n)
    }
    fn contains(n: &Ipv4Net, a: &Ipv4Addr) -> bool {
        n.contains(a)
    }
    fn unusable(n: &Ipv4Net) -> Vec<(Ipv4Addr, &'static str)> {
        if n.prefix_len() <= 30 {
            vec![(n.network(), "network"), (n.broadcast(), "broadcast")]
        } else {
            Vec::new()
        }
    }
}

impl Family for V6 {
    type Addr = Ipv6Addr;
    type Net = Ipv6Net;
    const SECTION: &'static str = "dhcp6";
    const NET_KEY: &'static str = "prefix";
    const ADDR_WHAT: &'static str = "an IPv6 address";
    fn parse_net(s: &str) -> Result<Ipv6Net, String> {
        parse_net6(s)
    }
    fn ip_net(n: Ipv6Net) -> IpNet {
        IpNet::V6(n)
    }
    fn contains(n: &Ipv6Net, a: &Ipv6Addr) -> bool {
        n.contains(a)
    }
    fn unusable(_: &Ipv6Net) -> Vec<(Ipv6Addr, &'static str)> {
        Vec::new()
    }
}

/// The part of a `[[dhcp4.subnet]]` or `[[dhcp6.subnet]]` both families share.
struct SubnetCommon<F: Family> {
    /// `None` when it did not parse (the error is recorded).
    net: Option<F::Net>,
    /// Checked pools, `(start, end)` inclusive.
    pools: Vec<(F::Addr, F::Addr)>,
    dns_servers: Vec<F::Addr>,
}

/// Checks subnet `i` of section `F::SECTION`: its network (no overlap with the ones in
/// `nets`, to which it is added), its pools (a range, inside the network, clear of unusable
/// addresses, no overlap) and its DNS servers.
fn subnet_common<F: Family>(
    cx: &mut Ctx<'_>,
    i: usize,
    net_raw: &Str,
    pools_raw: &[Str],
    dns_raw: &[Str],
    nets: &mut Vec<(usize, IpNet)>,
) -> SubnetCommon<F> {
    let key = format!("{}.subnet[{i}]", F::SECTION);
    let net = cx.parse(net_raw, &format!("{key}.{}", F::NET_KEY), F::parse_net);
    if let Some(n) = net {
        no_overlap(
            cx,
            nets,
            i,
            F::ip_net(n),
            net_raw.span(),
            &key,
            F::NET_KEY,
            F::SECTION,
        );
    }
    let mut pools: Vec<(F::Addr, F::Addr)> = Vec::new();
    for (j, p) in pools_raw.iter().enumerate() {
        let pkey = format!("{key}.pools[{j}]");
        let Some((start, end)) = cx.parse(p, &pkey, parse_range::<F::Addr>) else {
            continue;
        };
        if let Some(m) = check_pool::<F>(net.as_ref(), start, end).err() {
            cx.err(p.span(), &pkey, m);
            continue;
        }
        if pool_overlaps(
            cx,
            pools.iter().copied(),
            (start, end),
            p.span(),
            &key,
            &pkey,
        ) {
            continue;
        }
        pools.push((start, end));
    }
    let dns_servers = cx.each(dns_raw, &format!("{key}.dns-servers"), |s| {
        parse_ip::<F::Addr>(s, F::ADDR_WHAT)
    });
    SubnetCommon {
        net,
        pools,
        dns_servers,
    }
}

/// A pool must be a range that sits inside its network and leaves out its unusable addresses.
fn check_pool<F: Family>(net: Option<&F::Net>, start: F::Addr, end: F::Addr) -> Result<(), String> {
    if start > end {
        return Err(format!("range {start}-{end} ends before it starts"));
    }
    let Some(n) = net else {
        return Ok(());
    };
    if !F::contains(n, &start) || !F::contains(n, &end) {
        return Err(format!(
            "pool {start}-{end} is not inside {} {n}",
            F::NET_KEY
        ));
    }
    for (a, what) in F::unusable(n) {
        if start <= a && a <= end {
            return Err(format!(
                "pool {start}-{end} includes the {what} address {a}"
            ));
        }
    }
    Ok(())
}

/// A reserved address must be inside its network and not one of its unusable addresses.
fn check_host<F: Family>(n: &F::Net, a: F::Addr) -> Result<(), String> {
    if !F::contains(n, &a) {
        return Err(format!("{a} is not inside {} {n}", F::NET_KEY));
    }
    if F::unusable(n).iter().any(|(u, _)| *u == a) {
        return Err(format!("{a} is the network or broadcast address of {n}"));
    }
    Ok(())
}

fn dhcp4(cx: &mut Ctx<'_>, raw: &RawConfig) -> Option<Dhcp4> {
    let s = raw.dhcp4.as_ref()?;
    let span = s.span();
    let d = s.get_ref();
    if d.enabled == Some(false) {
        return None;
    }
    let interfaces = cx.interfaces(&d.interfaces, "dhcp4", &span);
    let server_id = d.server_id.as_ref().and_then(|v| {
        cx.parse(v, "dhcp4.server-id", |s| {
            parse_ip::<Ipv4Addr>(s, "an IPv4 address")
        })
    });
    let offer_time = cx.duration_in(
        &d.offer_time,
        "dhcp4.offer-time",
        Duration::from_secs(60),
        OFFER_TIME,
    );
    let decline_time = cx.duration_in(
        &d.decline_time,
        "dhcp4.decline-time",
        Duration::from_secs(3600),
        DECLINE_TIME,
    );
    let authoritative = d.authoritative.unwrap_or(false);
    if let Some(p) = &d.client_port {
        if *p.get_ref() == 0 {
            cx.err(
                p.span(),
                "dhcp4.client-port",
                "0 is not a port replies can be sent to (1-65535; default 68)",
            );
        }
    }
    if d.subnet.is_empty() {
        cx.err(span.clone(), "dhcp4", "needs at least one [[dhcp4.subnet]]");
    }
    let mut subnets: Vec<Subnet4> = Vec::new();
    let mut nets: Vec<(usize, IpNet)> = Vec::new();
    let mut res_macs: HashMap<MacAddr, Range<usize>> = HashMap::new();
    let mut res_addrs: HashMap<Ipv4Addr, Range<usize>> = HashMap::new();
    for (i, sn) in d.subnet.iter().enumerate() {
        let sn = sn.get_ref();
        let key = format!("dhcp4.subnet[{i}]");
        let common = subnet_common::<V4>(cx, i, &sn.subnet, &sn.pools, &sn.dns_servers, &mut nets);
        let net = common.net;
        let pools: Vec<Pool4> = common
            .pools
            .iter()
            .map(|&(start, end)| Pool4 { start, end })
            .collect();
        let dns_servers = common.dns_servers;
        let routers = cx.each(&sn.routers, &format!("{key}.routers"), |s| {
            parse_ip::<Ipv4Addr>(s, "an IPv4 address")
        });
        let domain_name = sn
            .domain_name
            .as_ref()
            .and_then(|v| cx.parse(v, &format!("{key}.domain-name"), parse_dns_name));
        let domain_search = match &sn.domain_search {
            Some(l) => cx.dns_names(l, &format!("{key}.domain-search")),
            None => domain_name.iter().cloned().collect(),
        };
        let lease_time = sn
            .lease_time
            .as_ref()
            .and_then(|v| cx.parse(v, &format!("{key}.lease-time"), parse_lease_time))
            .unwrap_or(Duration::from_secs(3600));
        let renewal_time =
            cx.opt_duration_in(&sn.renewal_time, &format!("{key}.renewal-time"), T1_T2);
        let rebinding_time =
            cx.opt_duration_in(&sn.rebinding_time, &format!("{key}.rebinding-time"), T1_T2);
        let (_, d1, d2) = super::lease_times(lease_time, None, None);
        let t1 = renewal_time.unwrap_or(Duration::from_secs(d1.into()));
        let t2 = rebinding_time.unwrap_or(Duration::from_secs(d2.into()));
        if let (Some(v), Some(t1)) = (&sn.renewal_time, renewal_time) {
            if t1 >= t2 && !(lease_time == INFINITE_LEASE && rebinding_time.is_none()) {
                let other = if rebinding_time.is_some() {
                    format!("rebinding-time {}", show(t2))
                } else {
                    format!("rebinding-time (default 7/8 of lease-time: {})", show(t2))
                };
                cx.err(
                    v.span(),
                    format!("{key}.renewal-time"),
                    format!("renewal-time {} must be shorter than {other}", show(t1)),
                );
            }
        }
        if let (Some(v), Some(t2)) = (&sn.rebinding_time, rebinding_time) {
            if t2 >= lease_time && lease_time != INFINITE_LEASE {
                cx.err(
                    v.span(),
                    format!("{key}.rebinding-time"),
                    format!(
                        "rebinding-time {} must be shorter than lease-time {}",
                        show(t2),
                        show(lease_time)
                    ),
                );
            } else if renewal_time.is_none() && t1 >= t2 && lease_time != INFINITE_LEASE {
                cx.err(v.span(), format!("{key}.rebinding-time"), format!("rebinding-time {} must be longer than renewal-time (default half of lease-time: {})", show(t2), show(t1)));
            }
        }
        let mut reservations = Vec::new();
        for (j, r) in sn.reservation.iter().enumerate() {
            let r = r.get_ref();
            let rkey = format!("{key}.reservation[{j}]");
            let mac = cx.parse(&r.mac, &format!("{rkey}.mac"), |s| s.parse::<MacAddr>());
            if let Some(mac) = mac {
                if let Some(first) = res_macs.get(&mac) {
                    let line = cx.line(first);
                    cx.err(
                        r.mac.span(),
                        format!("{rkey}.mac"),
                        format!("duplicate reservation for mac {mac} (first at line {line})"),
                    );
                } else {
                    res_macs.insert(mac, r.mac.span());
                }
            }
            let address = cx.parse(&r.address, &format!("{rkey}.address"), |s| {
                parse_ip::<Ipv4Addr>(s, "an IPv4 address")
            });
            if let Some(a) = address {
                if let Some(first) = res_addrs.get(&a) {
                    let line = cx.line(first);
                    cx.err(
                        r.address.span(),
                        format!("{rkey}.address"),
                        format!("duplicate reservation for address {a} (first at line {line})"),
                    );
                } else {
                    res_addrs.insert(a, r.address.span());
                }
                if let Some(n) = net {
                    if let Err(m) = check_host::<V4>(&n, a) {
                        cx.err(r.address.span(), format!("{rkey}.address"), m);
                    }
                }
            }
            let hostname = r
                .hostname
                .as_ref()
                .and_then(|v| cx.parse(v, &format!("{rkey}.hostname"), parse_dns_name));
            if let (Some(mac), Some(address)) = (mac, address) {
                reservations.push(Reservation4 {
                    mac,
                    address,
                    hostname,
                });
            }
        }
        if let Some(subnet) = net {
            subnets.push(Subnet4 {
                subnet,
                pools,
                routers,
                dns_servers,
                domain_name,
                domain_search,
                lease_time,
                renewal_time,
                rebinding_time,
                authoritative: sn.authoritative.unwrap_or(authoritative),
                reservations,
            });
        }
    }
    Some(Dhcp4 {
        interfaces,
        port: d.port.unwrap_or(67),
        client_port: d.client_port.as_ref().map_or(68, |p| *p.get_ref()),
        server_id,
        offer_time,
        decline_time,
        authoritative,
        subnets,
    })
}

fn dhcp6(cx: &mut Ctx<'_>, raw: &RawConfig) -> Option<Dhcp6> {
    let s = raw.dhcp6.as_ref()?;
    let span = s.span();
    let d = s.get_ref();
    if d.enabled == Some(false) {
        return None;
    }
    let interfaces = cx.interfaces(&d.interfaces, "dhcp6", &span);
    let server_unicast = d.server_unicast.as_ref().and_then(|v| {
        cx.parse(v, "dhcp6.server-unicast", |s| {
            let a = parse_ip::<Ipv6Addr>(s, "an IPv6 address")?;
            if a.is_multicast() || a.is_unspecified() {
                return Err(format!("{s:?} is not a unicast address"));
            }
            Ok(a)
        })
    });
    let offer_time = cx.duration_in(
        &d.offer_time,
        "dhcp6.offer-time",
        Duration::from_secs(60),
        OFFER_TIME,
    );
    let decline_time = cx.duration_in(
        &d.decline_time,
        "dhcp6.decline-time",
        Duration::from_secs(3600),
        DECLINE_TIME,
    );
    if d.subnet.is_empty() {
        cx.err(span.clone(), "dhcp6", "needs at least one [[dhcp6.subnet]]");
    }
    let mut subnets = Vec::new();
    let mut nets: Vec<(usize, IpNet)> = Vec::new();
    let mut res_keys: HashMap<Reservation6Key, Range<usize>> = HashMap::new();
    let mut res_addrs: HashMap<Ipv6Addr, Range<usize>> = HashMap::new();
    let mut links: HashMap<String, Range<usize>> = HashMap::new();
    for (i, sn) in d.subnet.iter().enumerate() {
        let sn = sn.get_ref();
        let key = format!("dhcp6.subnet[{i}]");
        let common = subnet_common::<V6>(cx, i, &sn.prefix, &sn.pools, &sn.dns_servers, &mut nets);
        let prefix = common.net;
        let pools: Vec<Pool6> = common
            .pools
            .iter()
            .map(|&(start, end)| Pool6 { start, end })
            .collect();
        let dns_servers = common.dns_servers;
        let domain_search = cx.dns_names(&sn.domain_search, &format!("{key}.domain-search"));
        let preferred = cx.duration_in(
            &sn.preferred_lifetime,
            &format!("{key}.preferred-lifetime"),
            Duration::from_secs(1800),
            PREFERRED_LIFETIME,
        );
        let valid = cx.duration_in(
            &sn.valid_lifetime,
            &format!("{key}.valid-lifetime"),
            Duration::from_secs(3600),
            VALID_LIFETIME,
        );
        if preferred > valid {
            let (span, k) = match (&sn.preferred_lifetime, &sn.valid_lifetime) {
                (Some(p), _) => (p.span(), "preferred-lifetime"),
                (None, Some(v)) => (v.span(), "valid-lifetime"),
                (None, None) => (sn.prefix.span(), "prefix"),
            };
            cx.err(
                span,
                format!("{key}.{k}"),
                format!(
                    "preferred-lifetime {} must not be longer than valid-lifetime {}",
                    show(preferred),
                    show(valid)
                ),
            );
        }
        let renewal_time =
            cx.opt_duration_in(&sn.renewal_time, &format!("{key}.renewal-time"), IA_T1_T2);
        let rebinding_time = cx.opt_duration_in(
            &sn.rebinding_time,
            &format!("{key}.rebinding-time"),
            IA_T1_T2,
        );
        let t1 = renewal_time.unwrap_or(preferred / 2);
        let t2 = rebinding_time.unwrap_or(preferred * 4 / 5);
        if let (Some(v), Some(t1)) = (&sn.renewal_time, renewal_time) {
            if t1 >= t2 {
                let other = if rebinding_time.is_some() {
                    format!("rebinding-time {}", show(t2))
                } else {
                    format!(
                        "rebinding-time (default 0.8 of preferred-lifetime: {})",
                        show(t2)
                    )
                };
                cx.err(
                    v.span(),
                    format!("{key}.renewal-time"),
                    format!("renewal-time {} must be shorter than {other}", show(t1)),
                );
            }
        }
        if let (Some(v), Some(t2)) = (&sn.rebinding_time, rebinding_time) {
            if t2 > valid {
                cx.err(
                    v.span(),
                    format!("{key}.rebinding-time"),
                    format!(
                        "rebinding-time {} must not be longer than valid-lifetime {}",
                        show(t2),
                        show(valid)
                    ),
                );
            } else if renewal_time.is_none() && t1 >= t2 {
                cx.err(
                    v.span(),
                    format!("{key}.rebinding-time"),
                    format!(
                        "rebinding-time {} must be longer than renewal-time (default half of preferred-lifetime: {})",
                        show(t2),
                        show(t1)
                    ),
                );
            }
        }
        let interface = sn.interface.as_ref().and_then(|v| {
            let k = format!("{key}.interface");
            let name = cx.parse(v, &k, parse_interface)?;
            if !interfaces.is_empty() && !interfaces.contains(&name) {
                cx.err(
                    v.span(),
                    &k,
                    format!("interface {name:?} is not in dhcp6.interfaces (the server never answers there)"),
                );
            }
            if let Some(first) = links.get(&name) {
                let line = cx.line(first);
                cx.err(
                    v.span(),
                    k,
                    format!("interface {name:?} already has a subnet (line {line})"),
                );
            } else {
                links.insert(name.clone(), v.span());
            }
            Some(name)
        });
        let mut reservations = Vec::new();
        for (j, r) in sn.reservation.iter().enumerate() {
            let rspan = r.span();
            let r = r.get_ref();
            let rkey = format!("{key}.reservation[{j}]");
            let (k, kspan) = match (&r.duid, &r.mac) {
                (Some(v), None) => (
                    cx.parse(v, &format!("{rkey}.duid"), parse_duid)
                        .map(Reservation6Key::Duid),
                    Some((v.span(), "duid")),
                ),
                (None, Some(v)) => (
                    cx.parse(v, &format!("{rkey}.mac"), |s| s.parse::<MacAddr>())
                        .map(Reservation6Key::Mac),
                    Some((v.span(), "mac")),
                ),
                (Some(v), Some(_)) => {
                    cx.err(v.span(), &rkey, "give duid or mac, not both");
                    (None, None)
                }
                (None, None) => {
                    cx.err(rspan, &rkey, "needs a duid or a mac");
                    (None, None)
                }
            };
            if let (Some(k), Some((kspan, what))) = (&k, kspan) {
                if let Some(first) = res_keys.get(k) {
                    let line = cx.line(first);
                    cx.err(
                        kspan.clone(),
                        format!("{rkey}.{what}"),
                        format!(
                            "duplicate reservation for {what} {} (first at line {line})",
                            r.duid
                                .as_ref()
                                .or(r.mac.as_ref())
                                .map_or("", |v| v.get_ref())
                        ),
                    );
                } else {
                    res_keys.insert(k.clone(), kspan);
                }
            }
            let address = cx.parse(&r.address, &format!("{rkey}.address"), |s| {
                parse_ip::<Ipv6Addr>(s, "an IPv6 address")
            });
            if let Some(a) = address {
                if let Some(first) = res_addrs.get(&a) {
                    let line = cx.line(first);
                    cx.err(
                        r.address.span(),
                        format!("{rkey}.address"),
                        format!("duplicate reservation for address {a} (first at line {line})"),
                    );
                } else {
                    res_addrs.insert(a, r.address.span());
                }
                if let Some(n) = prefix {
                    if !n.contains(&a) {
                        cx.err(
                            r.address.span(),
                            format!("{rkey}.address"),
                            format!("{a} is not inside prefix {n}"),
                        );
                    }
                }
            }
            if let (Some(key), Some(address)) = (k, address) {
                reservations.push(Reservation6 { key, address });
            }
        }
        if let Some(prefix) = prefix {
            subnets.push(Subnet6 {
                prefix,
                pools,
                dns_servers,
                domain_search,
                preferred_lifetime: preferred,
                valid_lifetime: valid,
                renewal_time,
                rebinding_time,
                interface,
                reservations,
            });
        }
    }
    Some(Dhcp6 {
        interfaces,
        port: d.port.unwrap_or(547),
        rapid_commit: d.rapid_commit.unwrap_or(false),
        server_unicast,
        offer_time,
        decline_time,
        subnets,
    })
}

/// A DUID as colon or plain hex (`00:03:00:01:02:00:00:00:00:01`, `000300010200…`): a 2-octet
/// type and 1 to 128 octets of identifier (RFC 8415 §11.1).
pub(crate) fn parse_duid(s: &str) -> Result<Vec<u8>, String> {
    let bad = |why: &str| format!("{s:?} is not a DUID: {why}");
    let digits: String = s.chars().filter(|&c| c != ':' && c != '-').collect();
    let bytes =
        hex::decode(&digits).map_err(|_| bad("hex octets like 00:03:00:01:02:00:00:00:00:01"))?;
    if !(3..=130).contains(&bytes.len()) {
        return Err(bad(
            "a 2-octet type and 1 to 128 octets of identifier (RFC 8415 §11.1)",
        ));
    }
    Ok(bytes)
}

fn dns(cx: &mut Ctx<'_>, raw: &RawConfig) -> Option<Dns> {
    let s = raw.dns.as_ref()?;
    let span = s.span();
    let d = s.get_ref();
    if d.enabled == Some(false) {
        return None;
    }
    let listen = cx.listen(&d.listen, "dns.listen", &span, None);
    let zones = cx.dns_names(&d.zones, "dns.zones");
    let ttl = cx.duration_in(&d.ttl, "dns.ttl", Duration::from_secs(1800), DNS_TTL);
    let forwarders = cx.each(&d.forwarders, "dns.forwarders", parse_forwarder);
    let mut hosts = Vec::new();
    for (name, addrs) in &d.hosts.0 {
        let key = format!("dns.hosts.{:?}", name.get_ref());
        let Some(n) = cx.parse(name, &key, parse_dns_name) else {
            continue;
        };
        let items = OneOrMany::items(addrs);
        if items.is_empty() {
            cx.err(addrs.span(), &key, "needs at least one address");
        }
        let ips = match addrs.get_ref() {
            OneOrMany::One(_) => items
                .iter()
                .filter_map(|a| cx.parse(a, &key, |s| parse_ip::<IpAddr>(s, "an IP address")))
                .collect(),
            OneOrMany::Many(_) => cx.each(&items, &key, |s| parse_ip::<IpAddr>(s, "an IP address")),
        };
        hosts.push((n, ips));
    }
    let mdns = d.mdns.as_ref().and_then(|m| {
        let mspan = m.span();
        let m = m.get_ref();
        if m.enabled == Some(false) {
            return None;
        }
        let hostname = m
            .hostname
            .as_ref()
            .and_then(|h| cx.parse(h, "dns.mdns.hostname", parse_host_label));
        Some(Mdns {
            interfaces: cx.interfaces(&m.interfaces, "dns.mdns", &mspan),
            hostname,
        })
    });
    serials_are_labels(cx, raw);
    if !zones.is_empty() {
        domains_are_zones(cx, raw, &zones);
    }
    Some(Dns {
        listen,
        zones,
        ttl,
        forwarders,
        hosts,
        mdns,
    })
}

/// With DNS on, every `[[device]]` serial names one DNS label, `<serial>._sztp.<zone>` (RFC
/// 8572 §4.2.2): 1–63 octets of printable ASCII, no `.` (a dot would split the label) and no
/// space.
fn serials_are_labels(cx: &mut Ctx<'_>, raw: &RawConfig) {
    for (i, d) in raw.device.iter().enumerate() {
        let Some(s) = &d.get_ref().serial else {
            continue;
        };
        if s.get_ref().is_empty() {
            continue; // reported by devices()
        }
        if let Err(m) = serial_label(s.get_ref()) {
            cx.err(s.span(), format!("device[{i}].serial"), m);
        }
    }
}

/// Whether `serial` can be the one label of `<serial>._sztp.<zone>`.
pub(crate) fn serial_label(serial: &str) -> Result<(), String> {
    let why = if serial.len() > 63 {
        "it is longer than 63 octets"
    } else if serial.contains('.') {
        "it contains '.', which would split it into several labels"
    } else if !serial.bytes().all(|b| b.is_ascii_graphic()) {
        "only printable ASCII without spaces is allowed"
    } else {
        return Ok(());
    };
    Err(format!(
        "serial {serial:?} is not a single DNS label for <serial>._sztp.<zone> (RFC 8572 §4.2.2): {why}"
    ))
}

/// A device looks for `<serial>._sztp.<domain>` and `_sztp._tcp.<domain>` under the domain DHCP
/// gave it (options 15 and 119, DHCPv6 option 24): each such domain must be a zone we serve.
fn domains_are_zones(cx: &mut Ctx<'_>, raw: &RawConfig, zones: &[String]) {
    let mut handed_out: Vec<(String, &Str)> = Vec::new();
    if let Some(d) = raw
        .dhcp4
        .as_ref()
        .filter(|d| d.get_ref().enabled != Some(false))
    {
        for (i, sn) in d.get_ref().subnet.iter().enumerate() {
            let sn = sn.get_ref();
            if let Some(n) = &sn.domain_name {
                handed_out.push((format!("dhcp4.subnet[{i}].domain-name"), n));
            }
            for (j, n) in sn.domain_search.iter().flatten().enumerate() {
                handed_out.push((format!("dhcp4.subnet[{i}].domain-search[{j}]"), n));
            }
        }
    }
    if let Some(d) = raw
        .dhcp6
        .as_ref()
        .filter(|d| d.get_ref().enabled != Some(false))
    {
        for (i, sn) in d.get_ref().subnet.iter().enumerate() {
            for (j, n) in sn.get_ref().domain_search.iter().enumerate() {
                handed_out.push((format!("dhcp6.subnet[{i}].domain-search[{j}]"), n));
            }
        }
    }
    for (key, name) in handed_out {
        // a malformed name has its own error already
        let Ok(domain) = parse_dns_name(name.get_ref()) else {
            continue;
        };
        if !zones.contains(&domain) {
            cx.err(
                name.span(),
                key,
                format!(
                    "domain {domain:?} is handed out by DHCP but is not one of dns.zones ({}): \
                     a device would look for _sztp._tcp.{domain} and <serial>._sztp.{domain} \
                     and find nothing",
                    zones.join(", ")
                ),
            );
        }
    }
}

/// `[dns.mdns] hostname`: one DNS label, the `<hostname>.local` of the appliance.
fn parse_host_label(s: &str) -> Result<String, String> {
    let name = parse_dns_name(s)?;
    if name.contains('.') {
        return Err(format!(
            "{s:?} is not a single label: the name is <hostname>.local (give \"appliance\", not \"appliance.local\")"
        ));
    }
    Ok(name)
}

fn status(cx: &mut Ctx<'_>, raw: &RawConfig) -> Option<Status> {
    let s = raw.status.as_ref()?;
    let span = s.span();
    let st = s.get_ref();
    if st.enabled == Some(false) {
        return None;
    }
    let token_file = st.token_file.as_ref().and_then(|v| {
        if v.get_ref().is_empty() {
            cx.err(v.span(), "status.token-file", "must not be empty");
            return None;
        }
        Some(PathBuf::from(v.get_ref()))
    });
    let mut count = |v: &Option<toml::Spanned<i64>>, key: &str, default: usize, max: i64| match v {
        None => default,
        Some(n) if (1..=max).contains(n.get_ref()) => *n.get_ref() as usize,
        Some(n) => {
            cx.err(
                n.span(),
                key,
                format!("{} is out of range (1 to {max})", n.get_ref()),
            );
            default
        }
    };
    let max_devices = count(
        &st.max_devices,
        "status.max-devices",
        DEFAULT_STATUS_MAX_DEVICES,
        1_000_000,
    );
    let events_per_device = count(
        &st.events_per_device,
        "status.events-per-device",
        DEFAULT_STATUS_EVENTS_PER_DEVICE,
        10_000,
    );
    Some(Status {
        listen: cx.listen(
            &st.listen,
            "status.listen",
            &span,
            Some(DEFAULT_STATUS_LISTEN),
        ),
        token_file,
        max_devices,
        events_per_device,
    })
}

/// Format a duration the way the file writes it.
fn show(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".into(),
        _ if s.is_multiple_of(86400) => format!("{}d", s / 86400),
        _ if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        _ if s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

/// `"90s"`, `"30m"`, `"1h"`, `"7d"`: a whole number and one unit, nothing else.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration (like \"90s\", \"30m\", \"1h\", \"7d\")");
    let unit_at = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(unit_at);
    if n.is_empty() {
        return Err(bad());
    }
    let n: u64 = n.parse().map_err(|_| bad())?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).map(Duration::from_secs).ok_or_else(bad)
}

/// A DHCPv4 lease time: a duration of 1s to 4294967294s, or `"infinite"` (0xffffffff, RFC
/// 2131 §3.3).
pub(crate) fn parse_lease_time(s: &str) -> Result<Duration, String> {
    if s == "infinite" {
        return Ok(INFINITE_LEASE);
    }
    let d = parse_duration(s).map_err(|e| format!("{e}, or \"infinite\""))?;
    in_range(s, d, &LEASE_TIME, show)
}

/// A size the way the file writes it: `16MiB`, `4KiB`, `1TiB`, else bytes.
fn show_size(n: u64) -> String {
    for (unit, size) in [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ] {
        if n >= size && n.is_multiple_of(size) {
            return format!("{}{unit}", n / size);
        }
    }
    format!("{n}B")
}

/// `"16MiB"`, `"512KiB"`, `"1GiB"`, `"100MB"`, `"4096B"`: a whole number and a unit.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a size (like \"512KiB\", \"16MiB\", \"1GiB\")");
    let unit_at = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(unit_at);
    if n.is_empty() {
        return Err(bad());
    }
    let n: u64 = n.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim_start() {
        "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

fn parse_ip<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("{s:?} is not {what}"))
}

/// `"start-end"`, both ends included.
pub(crate) fn parse_range<T: std::str::FromStr + std::fmt::Display>(
    s: &str,
) -> Result<(T, T), String> {
    let bad = || format!("{s:?} is not an address range (like \"192.0.2.100-192.0.2.199\")");
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let a = a.trim().parse().map_err(|_| bad())?;
    let b = b.trim().parse().map_err(|_| bad())?;
    Ok((a, b))
}

fn parse_net4(s: &str) -> Result<Ipv4Net, String> {
    let n: Ipv4Net = s
        .parse()
        .map_err(|_| format!("{s:?} is not an IPv4 subnet (like \"192.0.2.0/24\")"))?;
    if n.prefix_len() == 0 {
        return Err(format!(
            "{s:?} is every IPv4 address: a subnet is the network of one link (like \"192.0.2.0/24\")"
        ));
    }
    if n.addr() != n.network() {
        return Err(format!(
            "{s:?} has host bits set; did you mean \"{}\"?",
            n.trunc()
        ));
    }
    Ok(n)
}

fn parse_net6(s: &str) -> Result<Ipv6Net, String> {
    let n: Ipv6Net = s
        .parse()
        .map_err(|_| format!("{s:?} is not an IPv6 prefix (like \"2001:db8:1::/64\")"))?;
    if n.prefix_len() == 0 {
        return Err(format!(
            "{s:?} is every IPv6 address: a prefix is the network of one link (like \"2001:db8:1::/64\")"
        ));
    }
    if n.addr() != n.network() {
        return Err(format!(
            "{s:?} has host bits set; did you mean \"{}\"?",
            n.trunc()
        ));
    }
    Ok(n)
}

fn parse_socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!("{s:?} is not a socket address (like \"0.0.0.0:443\" or \"[::]:443\")")
    })
}

/// A forwarder: a socket address, or a bare IP address meaning port 53.
fn parse_forwarder(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        if a.port() == 0 {
            return Err(format!(
                "{s:?}: port 0 is not a port queries can be sent to"
            ));
        }
        return Ok(a);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| {
            format!("{s:?} is not an address (like \"192.0.2.53\" or \"[2001:db8::53]:5353\")")
        })
}

/// A network interface name as the kernel accepts it; never looked up on this machine.
fn parse_interface(s: &str) -> Result<String, String> {
    if s.is_empty()
        || s.len() > 15
        || s == "."
        || s == ".."
        || s.contains(|c: char| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(format!("{s:?} is not an interface name"));
    }
    Ok(s.to_string())
}

/// A DNS name: dot-separated labels of letters, digits, `-` and `_`, 1–63 characters each.
pub(crate) fn parse_dns_name(s: &str) -> Result<String, String> {
    let bad = |why: &str| format!("{s:?} is not a DNS name: {why}");
    let name = s.strip_suffix('.').unwrap_or(s);
    if name.is_empty() {
        return Err(bad("it is empty"));
    }
    if name.len() > 253 {
        return Err(bad("longer than 253 characters"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(bad("empty label"));
        }
        if label.len() > 63 {
            return Err(bad("a label is longer than 63 characters"));
        }
        if !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad("only letters, digits, '-' and '_' are allowed"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label starts or ends with '-'"));
        }
    }
    Ok(name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    /// The IPv4 pool check as the tests knew it.
    fn check_pool4(net: &Ipv4Net, p: &Pool4) -> Result<(), String> {
        check_pool::<V4>(Some(net), p.start, p.end)
    }

    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(
            parse_duration("5x").unwrap_err(),
            r#""5x" is not a duration (like "90s", "30m", "1h", "7d")"#
        );
        for bad in [
            "",
            "90",
            "s",
            "1.5h",
            "-1h",
            "1h30m",
            " 1h",
            "1 h",
            "1H",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(show(Duration::from_secs(5400)), "90m");
        assert_eq!(show(Duration::from_secs(86400)), "1d");
    }

    /// Every duration and number of the file against values at and past its bounds: the
    /// validator answers (a config or errors with a line), it never panics (a SIGHUP with such
    /// a file used to kill the daemon).
    #[test]
    fn every_duration_and_number_is_range_checked_without_panicking() {
        let keys: [(&str, &str); 12] = [
            ("appliance", "journal-max-size"),
            ("dhcp4", "offer-time"),
            ("dhcp4", "decline-time"),
            ("dhcp4", "client-port"),
            ("dhcp4", "port"),
            ("dhcp4.subnet", "lease-time"),
            ("dhcp4.subnet", "renewal-time"),
            ("dhcp4.subnet", "rebinding-time"),
            ("dhcp6.subnet", "preferred-lifetime"),
            ("dhcp6.subnet", "valid-lifetime"),
            ("dns", "ttl"),
            ("dns", "forwarders"),
        ];
        let values = [
            "\"0s\"",
            "\"1s\"",
            "\"4294967294s\"",
            "\"4294967295s\"",
            "\"100000000000000d\"",
            "\"213503982334601d\"",
            "\"18446744073709551615s\"",
            "\"infinite\"",
            "\"0B\"",
            "\"16383PiB\"",
            "\"18446744073709551615B\"",
            "[\"192.0.2.53:0\"]",
            "0",
            "65535",
        ];
        for (section, key) in keys {
            for v in values {
                let line = format!("{key} = {v}\n");
                let pick = |s: &str| if s == section { line.as_str() } else { "" };
                let text = format!(
                    "[appliance]\n{}\n[dhcp4]\ninterfaces = [\"eth1\"]\n{}\n[[dhcp4.subnet]]\n\
                     subnet = \"192.0.2.0/24\"\n{}\n[dhcp6]\ninterfaces = [\"eth1\"]\n\n\
                     [[dhcp6.subnet]]\nprefix = \"2001:db8::/64\"\n{}\n[dns]\nlisten = \
                     [\"127.0.0.1:53\"]\n{}",
                    pick("appliance"),
                    pick("dhcp4"),
                    pick("dhcp4.subnet"),
                    pick("dhcp6.subnet"),
                    pick("dns"),
                );
                match crate::config::load_str(Path::new("r.toml"), &text) {
                    Ok(c) => {
                        // what passed is within its range
                        let d4 = c.dhcp4.as_ref().unwrap();
                        assert!((1..=3600).contains(&d4.offer_time.as_secs()), "{line}");
                        assert!(d4.decline_time.as_secs() <= 30 * 86400, "{line}");
                        assert_ne!(d4.client_port, 0, "{line}");
                        let l = d4.subnets[0].lease_time.as_secs();
                        assert!((1..=0xffff_ffff).contains(&l), "{line}");
                        assert!(c.appliance.journal_max_bytes >= 4096, "{line}");
                        assert!(
                            c.dns.as_ref().unwrap().ttl.as_secs() <= 0x7fff_ffff,
                            "{line}"
                        );
                    }
                    Err(errs) => {
                        for e in &errs.0 {
                            assert!(e.line > 0, "{line}: {e}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn an_infinite_lease_has_infinite_renewal_and_rebinding_times() {
        let text = |extra: &str| {
            format!(
                "[dhcp4]\ninterfaces = [\"eth1\"]\n[[dhcp4.subnet]]\nsubnet = \"192.0.2.0/24\"\n\
                 lease-time = \"infinite\"\n{extra}"
            )
        };
        let c = crate::config::load_str(Path::new("i.toml"), &text("")).unwrap();
        let sn = &c.dhcp4.unwrap().subnets[0];
        assert_eq!(sn.lease_times(), (u32::MAX, u32::MAX, u32::MAX));
        let c = crate::config::load_str(
            Path::new("i.toml"),
            &text("renewal-time = \"1d\"\nrebinding-time = \"2d\"\n"),
        )
        .unwrap();
        let sn = &c.dhcp4.unwrap().subnets[0];
        assert_eq!(sn.lease_times(), (u32::MAX, 86_400, 172_800));
        // finite leases: T1 half, T2 seven eighths, as before
        assert_eq!(
            crate::config::lease_times(Duration::from_secs(3600), None, None),
            (3600, 1800, 3150)
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("100B"), Ok(100));
        assert!(parse_size("16").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("16mib").is_err());
    }

    fn pool(s: &str) -> Pool4 {
        let (start, end) = parse_range::<Ipv4Addr>(s).unwrap();
        Pool4 { start, end }
    }

    #[test]
    fn pools() {
        let net: Ipv4Net = "192.0.2.0/24".parse().unwrap();
        assert_eq!(check_pool4(&net, &pool("192.0.2.100-192.0.2.199")), Ok(()));
        assert_eq!(check_pool4(&net, &pool("192.0.2.7-192.0.2.7")), Ok(()));
        assert_eq!(
            check_pool4(&net, &pool("192.0.2.250-192.0.2.10")).unwrap_err(),
            "range 192.0.2.250-192.0.2.10 ends before it starts"
        );
        assert_eq!(
            check_pool4(&net, &pool("192.0.2.100-192.0.3.10")).unwrap_err(),
            "pool 192.0.2.100-192.0.3.10 is not inside subnet 192.0.2.0/24"
        );
        assert!(check_pool4(&net, &pool("192.0.2.0-192.0.2.10"))
            .unwrap_err()
            .contains("network address"));
        assert!(check_pool4(&net, &pool("192.0.2.200-192.0.2.255"))
            .unwrap_err()
            .contains("broadcast address"));
        let p2p: Ipv4Net = "192.0.2.0/31".parse().unwrap();
        assert_eq!(check_pool4(&p2p, &pool("192.0.2.0-192.0.2.1")), Ok(()));
        assert!(parse_range::<Ipv4Addr>("192.0.2.1").is_err());
        assert!(parse_range::<Ipv4Addr>("192.0.2.1-banana").is_err());
        assert_eq!(
            parse_range::<Ipv6Addr>("2001:db8::1-2001:db8::ff").unwrap(),
            (
                "2001:db8::1".parse().unwrap(),
                "2001:db8::ff".parse().unwrap()
            )
        );
        assert_eq!(
            parse_net4("192.0.2.5/24").unwrap_err(),
            r#""192.0.2.5/24" has host bits set; did you mean "192.0.2.0/24"?"#
        );
    }

    #[test]
    fn mac_patterns() {
        let p: MacPattern = "00:1c:73:00:00:00/24".parse().unwrap();
        assert_eq!(p.prefix_len, 24);
        let exact: MacPattern = "02-00-00-00-00-01".parse().unwrap();
        assert_eq!(exact.prefix_len, 48);
        assert!("00:1c:73/24".parse::<MacPattern>().is_err());
        assert!("00:1c:73:00:00:00/49".parse::<MacPattern>().is_err());
        assert!("00:1c:73:00:00:zz".parse::<MacPattern>().is_err());
        assert!("0:1c:73:00:00:00".parse::<MacPattern>().is_err());
    }

    #[test]
    fn dns_names_and_forwarders() {
        assert_eq!(
            parse_dns_name("Staging.Example.com.").unwrap(),
            "staging.example.com"
        );
        assert!(parse_dns_name("a..b").is_err());
        assert!(parse_dns_name("-a.b").is_err());
        assert!(parse_dns_name("a b").is_err());
        assert_eq!(
            parse_forwarder("192.0.2.53").unwrap(),
            "192.0.2.53:53".parse().unwrap()
        );
        assert_eq!(
            parse_forwarder("[2001:db8::53]:5353").unwrap(),
            "[2001:db8::53]:5353".parse().unwrap()
        );
        assert!(parse_interface("eth1").is_ok());
        assert!(parse_interface("a-very-long-interface-name").is_err());
    }
}
