//! The serde mirror of the TOML file: kebab-case keys, unknown keys refused, spans kept

use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::error::{ConfigError, ConfigErrors};

/// A string with its position in the file.
pub(crate) type Str = Spanned<String>;
/// A list of strings, each element with its position, the list with its own.
pub(crate) type StrList = Spanned<Vec<Str>>;

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawConfig {
    pub(crate) appliance: Option<Spanned<RawAppliance>>,
    #[serde(default)]
    pub(crate) bootstrap_server: Vec<Spanned<RawBootstrapServer>>,
    pub(crate) redirect_server: Option<Spanned<RawRedirectServer>>,
    #[serde(default)]
    pub(crate) rule: Vec<Spanned<RawRule>>,
    #[serde(default)]
    pub(crate) device: Vec<Spanned<RawDevice>>,
    pub(crate) dhcp4: Option<Spanned<RawDhcp4>>,
    pub(crate) dhcp6: Option<Spanned<RawDhcp6>>,
    pub(crate) dns: Option<Spanned<RawDns>>,
    pub(crate) status: Option<Spanned<RawStatus>>,
    pub(crate) owner: Option<Spanned<RawOwner>>,
}

/// `[owner]`: the owner's signing material (RFC 8572 §3.2, §3.3).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawOwner {
    pub(crate) certificate: Str,
    pub(crate) key: Str,
    pub(crate) vouchers: Option<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawAppliance {
    pub(crate) state_dir: Option<Str>,
    pub(crate) log_format: Option<RawLogFormat>,
    pub(crate) user: Option<Str>,
    pub(crate) journal_max_size: Option<Str>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawLogFormat {
    Text,
    Json,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawBootstrapServer {
    pub(crate) name: Str,
    pub(crate) uri: Str,
    pub(crate) trust_anchor: Option<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawRedirectServer {
    pub(crate) enabled: Option<bool>,
    pub(crate) listen: Option<StrList>,
    pub(crate) advertise: Option<Str>,
    pub(crate) tls_certificate: Option<Spanned<OneOrMany>>,
    pub(crate) tls_key: Option<Spanned<OneOrMany>>,
    pub(crate) client_ca: Option<Str>,
    pub(crate) serial_from: Option<RawSerialFrom>,
    pub(crate) report_progress: Option<RawReportProgress>,
    pub(crate) min_tls_version: Option<Spanned<RawTlsVersion>>,
    pub(crate) max_connections: Option<Spanned<i64>>,
    pub(crate) rate_limit: Option<Spanned<i64>>,
    pub(crate) client_timeout: Option<Str>,
    pub(crate) conveyed_encoding: Option<RawConveyedEncoding>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub(crate) enum RawTlsVersion {
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawConveyedEncoding {
    AsResponse,
    Json,
    Xml,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawSerialFrom {
    SubjectSerialNumber,
    SubjectCn,
    BasicUsername,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawReportProgress {
    Accept,
    Reject,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawRule {
    pub(crate) name: Str,
    #[serde(rename = "match")]
    pub(crate) matches: Option<RawMatch>,
    pub(crate) redirect_to: StrList,
    pub(crate) via: Option<Spanned<RawVia>>,
    pub(crate) dhcp_uri_encoding: Option<RawUriEncoding>,
    pub(crate) dhcp_uri_form: Option<Spanned<RawUriForm>>,
    pub(crate) dhcp_always_send: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawMatch {
    pub(crate) mac: Option<Spanned<OneOrMany>>,
    pub(crate) vendor_class: Option<Spanned<OneOrMany>>,
    pub(crate) user_class: Option<Spanned<OneOrMany>>,
    pub(crate) client_id: Option<Spanned<OneOrMany>>,
    pub(crate) circuit_id: Option<Spanned<OneOrMany>>,
    pub(crate) remote_id: Option<Spanned<OneOrMany>>,
    pub(crate) interface: Option<Spanned<OneOrMany>>,
    pub(crate) serial: Option<Spanned<OneOrMany>>,
    pub(crate) hw_model: Option<Spanned<OneOrMany>>,
    pub(crate) serial_verified: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawVia {
    RedirectServer,
    Direct,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawUriEncoding {
    Rfc8572,
    Text,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawUriForm {
    Authority,
    OperationUrl,
    HostPort,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawDevice {
    pub(crate) serial: Option<Str>,
    pub(crate) mac: Option<Str>,
    pub(crate) redirect_to: Option<StrList>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawDhcp4 {
    pub(crate) enabled: Option<bool>,
    pub(crate) interfaces: Option<StrList>,
    pub(crate) port: Option<u16>,
    pub(crate) client_port: Option<Spanned<u16>>,
    pub(crate) server_id: Option<Str>,
    pub(crate) offer_time: Option<Str>,
    pub(crate) decline_time: Option<Str>,
    pub(crate) authoritative: Option<bool>,
    #[serde(default)]
    pub(crate) subnet: Vec<Spanned<RawSubnet4>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawSubnet4 {
    pub(crate) subnet: Str,
    #[serde(default)]
    pub(crate) pools: Vec<Str>,
    #[serde(default)]
    pub(crate) routers: Vec<Str>,
    #[serde(default)]
    pub(crate) dns_servers: Vec<Str>,
    pub(crate) domain_name: Option<Str>,
    pub(crate) domain_search: Option<Vec<Str>>,
    pub(crate) lease_time: Option<Str>,
    pub(crate) renewal_time: Option<Str>,
    pub(crate) rebinding_time: Option<Str>,
    pub(crate) authoritative: Option<bool>,
    #[serde(default)]
    pub(crate) reservation: Vec<Spanned<RawReservation4>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawReservation4 {
    pub(crate) mac: Str,
    pub(crate) address: Str,
    pub(crate) hostname: Option<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawDhcp6 {
    pub(crate) enabled: Option<bool>,
    pub(crate) interfaces: Option<StrList>,
    pub(crate) port: Option<u16>,
    pub(crate) rapid_commit: Option<bool>,
    pub(crate) server_unicast: Option<Str>,
    pub(crate) offer_time: Option<Str>,
    pub(crate) decline_time: Option<Str>,
    #[serde(default)]
    pub(crate) subnet: Vec<Spanned<RawSubnet6>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawSubnet6 {
    pub(crate) prefix: Str,
    #[serde(default)]
    pub(crate) pools: Vec<Str>,
    #[serde(default)]
    pub(crate) dns_servers: Vec<Str>,
    #[serde(default)]
    pub(crate) domain_search: Vec<Str>,
    pub(crate) preferred_lifetime: Option<Str>,
    pub(crate) valid_lifetime: Option<Str>,
    pub(crate) renewal_time: Option<Str>,
    pub(crate) rebinding_time: Option<Str>,
    pub(crate) interface: Option<Str>,
    #[serde(default)]
    pub(crate) reservation: Vec<Spanned<RawReservation6>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawReservation6 {
    pub(crate) duid: Option<Str>,
    pub(crate) mac: Option<Str>,
    pub(crate) address: Str,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawDns {
    pub(crate) enabled: Option<bool>,
    pub(crate) listen: Option<StrList>,
    #[serde(default)]
    pub(crate) zones: Vec<Str>,
    pub(crate) ttl: Option<Str>,
    #[serde(default)]
    pub(crate) forwarders: Vec<Str>,
    #[serde(default)]
    pub(crate) hosts: Hosts,
    pub(crate) mdns: Option<Spanned<RawMdns>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawMdns {
    pub(crate) enabled: Option<bool>,
    pub(crate) interfaces: Option<StrList>,
    pub(crate) hostname: Option<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawStatus {
    pub(crate) enabled: Option<bool>,
    pub(crate) listen: Option<StrList>,
    pub(crate) token_file: Option<Str>,
    pub(crate) max_devices: Option<Spanned<i64>>,
    pub(crate) events_per_device: Option<Spanned<i64>>,
}

/// A string or a list of strings (`match.vendor-class = "Arista*"` or `= ["Arista*", ...]`).
#[derive(Debug)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<Str>),
}

impl OneOrMany {
    /// The elements with their spans; a single string takes the span of the whole value.
    pub(crate) fn items(value: &Spanned<OneOrMany>) -> Vec<Str> {
        match value.get_ref() {
            OneOrMany::One(s) => vec![Spanned::new(value.span(), s.clone())],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<Str>()? {
                    out.push(s);
                }
                Ok(OneOrMany::Many(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// `dns.hosts`: a free-form map of name → addresses, kept in file order.
#[derive(Debug, Default)]
pub(crate) struct Hosts(pub(crate) Vec<(Str, Spanned<OneOrMany>)>);

impl<'de> Deserialize<'de> for Hosts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Hosts;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of host name = [addresses]")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Hosts, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<Str>()? {
                    let v = map.next_value::<Spanned<OneOrMany>>()?;
                    out.push((k, v));
                }
                Ok(Hosts(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Parse `text`; a syntax, unknown-key or type error becomes one located error.
pub(crate) fn parse(path: &Path, text: &str) -> Result<RawConfig, ConfigErrors> {
    let (tree, syntax) = DeTable::parse_recoverable(text);
    let err = match syntax.into_iter().next() {
        Some(e) => e,
        None => match toml::from_str::<RawConfig>(text) {
            Ok(raw) => return Ok(raw),
            Err(e) => e,
        },
    };
    let span = err.span().unwrap_or(0..0);
    let key = key_path_at(tree.get_ref(), span.start)
        .or_else(|| key_on_line_before(tree.get_ref(), text, span.start))
        .unwrap_or_default();
    Err(ConfigErrors::single(ConfigError::at(
        path,
        text,
        span.start,
        key,
        humanize(err.message()),
    )))
}

/// Reword serde's messages in the file's vocabulary (keys, not fields).
fn humanize(message: &str) -> String {
    let message = message.trim_end();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((name, tail)) = rest.split_once('`') {
            let known = tail
                .strip_prefix(", expected one of ")
                .or_else(|| tail.strip_prefix(", expected "))
                .map(|l| l.replace("` or `", "`, `").replace('`', ""));
            return match known {
                Some(k) => format!("unknown key {name:?} (known keys: {k})"),
                None => format!("unknown key {name:?}"),
            };
        }
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        if let Some((name, _)) = rest.split_once('`') {
            return format!("missing key {name:?}");
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        if let Some((name, tail)) = rest.split_once('`') {
            return format!("unknown value {name:?}{}", tail.replace('`', "\""));
        }
    }
    let message = match message.split_once("expected struct Raw") {
        Some((head, _)) => format!("{head}expected a table"),
        None => message.to_string(),
    };
    message
        .replace("expected a sequence", "expected a list")
        .replace("expected a map", "expected a table")
        .replace("expected u16", "expected a port number (0-65535)")
}

fn covers(span: &Range<usize>, offset: usize) -> bool {
    span.contains(&offset) || span.start == offset
}

/// The dotted key path (`dhcp4.subnet[0].pools[1]`) of the deepest key or value at `offset`.
pub(crate) fn key_path_at(table: &DeTable<'_>, offset: usize) -> Option<String> {
    find_in_table(table, "", offset)
}

fn join(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

fn find_in_table(table: &DeTable<'_>, prefix: &str, offset: usize) -> Option<String> {
    for (k, v) in table.iter() {
        let path = join(prefix, k.get_ref());
        if covers(&k.span(), offset) {
            return Some(path);
        }
        if let Some(p) = find_in_value(v.get_ref(), &path, offset) {
            return Some(p);
        }
    }
    table
        .iter()
        .find(|(_, v)| covers(&v.span(), offset))
        .map(|(k, _)| join(prefix, k.get_ref()))
}

fn find_in_value(value: &DeValue<'_>, path: &str, offset: usize) -> Option<String> {
    match value {
        DeValue::Table(t) => find_in_table(t, path, offset),
        DeValue::Array(a) => {
            for (i, e) in a.iter().enumerate() {
                if let Some(p) = find_in_value(e.get_ref(), &format!("{path}[{i}]"), offset) {
                    return Some(p);
                }
            }
            a.iter()
                .position(|e| covers(&e.span(), offset))
                .map(|i| format!("{path}[{i}]"))
        }
        _ => None,
    }
}

/// For syntax errors past the end of what was parsed: the last key written before `offset` on
/// the same line (`state-dir = "unterminated` names `appliance.state-dir`).
fn key_on_line_before(table: &DeTable<'_>, text: &str, offset: usize) -> Option<String> {
    let line_start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let mut best: Option<(usize, String)> = None;
    let mut visit = |start: usize, path: &str| {
        if (line_start..=offset).contains(&start) && best.as_ref().is_none_or(|(b, _)| start >= *b)
        {
            best = Some((start, path.to_string()));
        }
    };
    walk_keys(table, "", &mut visit);
    best.map(|(_, p)| p)
}

fn walk_keys(table: &DeTable<'_>, prefix: &str, visit: &mut dyn FnMut(usize, &str)) {
    for (k, v) in table.iter() {
        let path = join(prefix, k.get_ref());
        visit(k.span().start, &path);
        walk_value(v.get_ref(), &path, visit);
    }
}

fn walk_value(value: &DeValue<'_>, path: &str, visit: &mut dyn FnMut(usize, &str)) {
    match value {
        DeValue::Table(t) => walk_keys(t, path, visit),
        DeValue::Array(a) => {
            for (i, e) in a.iter().enumerate() {
                walk_value(e.get_ref(), &format!("{path}[{i}]"), visit);
            }
        }
        _ => {}
    }
}
