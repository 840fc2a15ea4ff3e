//! The one place that decides where a device goes: `DeviceFacts` in, `Decision` out

use std::fmt;
use std::str::FromStr;

use crate::sztp::SztpUri;

/// Lowercase hex digits, by value.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// An Ethernet MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The `aa:bb:cc:dd:ee:ff` text in a stack buffer: written for every lease record,
    /// journal line and device-table entry, where going through the formatter six times per
    /// address showed in the per-packet profile.
    pub fn text(&self) -> MacText {
        let mut b = [b':'; 17];
        for (i, x) in self.0.iter().enumerate() {
            b[i * 3] = HEX[usize::from(x >> 4)];
            b[i * 3 + 1] = HEX[usize::from(x & 0xf)];
        }
        MacText(b)
    }
}

/// A MAC address as 17 octets of lowercase colon hex ([`MacAddr::text`]).
#[derive(Clone, Copy, Debug)]
pub struct MacText([u8; 17]);

impl MacText {
    /// The text, `aa:bb:cc:dd:ee:ff`.
    pub fn as_str(&self) -> &str {
        // only ASCII hex digits and colons are ever written
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text().as_str())
    }
}

impl FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(format!("{s:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"));
        }
        let mut m = [0u8; 6];
        for (i, p) in parts.iter().enumerate() {
            if p.len() != 2 {
                return Err(format!("{s:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"));
            }
            m[i] = u8::from_str_radix(p, 16)
                .map_err(|_| format!("{s:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"))?;
        }
        Ok(MacAddr(m))
    }
}

impl MacAddr {
    /// The first 6 octets of `b`; `None` when shorter.
    pub fn from_slice(b: &[u8]) -> Option<MacAddr> {
        <[u8; 6]>::try_from(b.get(..6)?).ok().map(MacAddr)
    }
}

/// A MAC match: `aa:bb:cc:00:00:00/24` (prefix) or an exact address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacPattern {
    /// The address whose first `prefix_len` bits must match.
    pub addr: MacAddr,
    /// Bits that must match, 0..=48 (48: the exact address).
    pub prefix_len: u8,
}

impl FromStr for MacPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (
                a,
                p.parse::<u8>()
                    .ok()
                    .filter(|&n| n <= 48)
                    .ok_or_else(|| format!("{s:?}: prefix length must be 0..=48"))?,
            ),
            None => (s, 48),
        };
        Ok(MacPattern {
            addr: a.parse()?,
            prefix_len: p,
        })
    }
}

impl MacPattern {
    /// Whether `mac` starts with this pattern's prefix.
    pub fn matches(&self, mac: &MacAddr) -> bool {
        let a = u64::from_be_bytes([
            0,
            0,
            self.addr.0[0],
            self.addr.0[1],
            self.addr.0[2],
            self.addr.0[3],
            self.addr.0[4],
            self.addr.0[5],
        ]);
        let b = u64::from_be_bytes([
            0, 0, mac.0[0], mac.0[1], mac.0[2], mac.0[3], mac.0[4], mac.0[5],
        ]);
        let shift = 48 - u32::from(self.prefix_len);
        shift >= 48 || (a >> shift) == (b >> shift)
    }
}

/// A glob with `*` (any run) and `?` (one character); case-sensitive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob(pub String);

impl Glob {
    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        glob_match(self.0.as_bytes(), text.as_bytes())
    }
}

fn glob_match(p: &[u8], t: &[u8]) -> bool {
    // iterative matcher with single backtrack point: linear in practice, no recursion
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

/// Render opaque identifiers (client-id, circuit-id, remote-id) as text for matching and logs:
/// the string itself when it is printable UTF-8, colon hex otherwise.
pub fn id_text(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) if !s.is_empty() && s.chars().all(|c| !c.is_control()) => s.to_string(),
        _ => {
            let mut out = String::with_capacity(b.len() * 3);
            for (i, x) in b.iter().enumerate() {
                if i > 0 {
                    out.push(':');
                }
                out.push(char::from(HEX[usize::from(x >> 4)]));
                out.push(char::from(HEX[usize::from(x & 0xf)]));
            }
            out
        }
    }
}

/// DHCPv4 option 61 as text, when it is text: a type octet of 0 ("the rest is not a hardware
/// address", RFC 2132 §9.14) followed by printable UTF-8, as Cisco IOS sends
/// `\0cisco-0200.0000.0041-Vl1`. `None` for any other identifier.
pub fn client_id_text(id: &[u8]) -> Option<String> {
    let (&0, rest) = id.split_first()? else {
        return None;
    };
    match std::str::from_utf8(rest) {
        Ok(s) if !s.is_empty() && s.chars().all(|c| !c.is_control()) => Some(s.to_string()),
        _ => None,
    }
}

/// The front end that built a [`DeviceFacts`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A DHCPv4 message (RFC 2131).
    #[default]
    Dhcp4,
    /// A DHCPv6 message (RFC 8415).
    Dhcp6,
    /// A unicast DNS or mDNS query (RFC 8572 §4.2).
    Dns,
    /// A RESTCONF request to the redirect server (RFC 8572 §7).
    Restconf,
    /// A removable-storage bundle written by `bundle` (RFC 8572 §4.1): the serial comes from
    /// the operator.
    RemovableStorage,
}

/// The client identifier a DHCP client sent: option 61 (RFC 2132 §9.14) or a DUID (RFC 8415
/// §11). Octets as received.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClientId {
    /// DHCPv4 option 61: a type octet followed by the identifier.
    Dhcp4(Vec<u8>),
    /// DHCPv6 DUID (option 1 of the client): a 2-octet DUID type followed by its body.
    Duid(Vec<u8>),
}

impl ClientId {
    /// The identifier's octets (the whole option 61 value, or the whole DUID).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            ClientId::Dhcp4(b) | ClientId::Duid(b) => b,
        }
    }

    /// What `match.client-id` patterns see: a DHCPv4 identifier of type 0 as the text after
    /// the type octet ([`client_id_text`]), else the identifier as [`id_text`] renders it.
    pub fn text(&self) -> String {
        match self {
            ClientId::Dhcp4(b) => client_id_text(b).unwrap_or_else(|| id_text(b)),
            ClientId::Duid(b) => id_text(b),
        }
    }
}

/// A device serial number and how the appliance learnt it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Serial {
    /// The serial number, as the device's IDevID certificate (or its claim) spells it.
    pub value: String,
    /// `true` when it comes from a client certificate whose chain was verified against the
    /// configured `client-ca`; `false` when it is only claimed (a DHCP option, a DNS query
    /// name, an HTTP username, an unverified certificate).
    pub verified: bool,
}

impl Serial {
    /// A serial the device only claims.
    pub fn claimed(value: impl Into<String>) -> Serial {
        Serial {
            value: value.into(),
            verified: false,
        }
    }

    /// A serial proven by a verified certificate chain.
    pub fn verified(value: impl Into<String>) -> Serial {
        Serial {
            value: value.into(),
            verified: true,
        }
    }
}

/// Everything a front end knows about a device, built once per request at the top of its
/// handler. Each field says where it came from through [`DeviceFacts::source`] and, for the
/// serial, [`Serial::verified`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceFacts {
    /// Which front end saw the request.
    pub source: Source,
    /// The device's link-layer address: DHCPv4 chaddr, DHCPv6 DUID-LL/LLT or RFC 6939 option
    /// 79, or the MAC of the DHCP lease behind a RESTCONF source address.
    pub mac: Option<MacAddr>,
    /// DHCPv4 option 61 or the DHCPv6 DUID.
    pub client_id: Option<ClientId>,
    /// DHCPv4 option 60, or the first vendor-class-data of DHCPv6 option 16.
    pub vendor_class: Option<String>,
    /// The IANA enterprise number of DHCPv6 option 16 (or 17).
    pub enterprise_number: Option<u32>,
    /// DHCPv4 option 77 / DHCPv6 option 15 entries.
    pub user_class: Vec<String>,
    /// Relay agent circuit-id (DHCPv4 option 82.1) or DHCPv6 interface-id (option 18).
    pub circuit_id: Option<Vec<u8>>,
    /// Relay agent remote-id (DHCPv4 option 82.2) or DHCPv6 remote-id (option 37).
    pub remote_id: Option<Vec<u8>>,
    /// The appliance interface the request arrived on.
    pub interface: Option<String>,
    /// The IP source address of the request (the device's, or its relay's for DHCP).
    pub source_addr: Option<std::net::IpAddr>,
    /// The device's serial number, with its provenance.
    pub serial: Option<Serial>,
    /// `hw-model` (RESTCONF input) or a vendor DHCP option that names it.
    pub hw_model: Option<String>,
    /// `os-name` of the RESTCONF input.
    pub os_name: Option<String>,
    /// `os-version` of the RESTCONF input.
    pub os_version: Option<String>,
}

/// Where DHCP and DNS point a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The local redirect server's `advertise` URI.
    RedirectServer,
    /// The owner's bootstrap servers themselves.
    Direct,
}

/// How option 143/136 carries the URIs (`dhcp-uri-encoding`); `"rfc8572"` / `"text"` in the
/// device journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UriEncoding {
    /// RFC 8572 §8.3 `uri-length ‖ URI` list.
    #[default]
    Rfc8572,
    /// The bare string of the first URI (ISC `code 143 = text` clients).
    Text,
}

/// Which URI a DHCP option carries for a target (`dhcp-uri-form`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UriForm {
    /// `https://host[:port]` (RFC 8572, IOS-XE).
    #[default]
    Authority,
    /// The full get-bootstrapping-data URL (OPI sztp-agent).
    OperationUrl,
    /// A bare `host:port` (port 443 when the URI has none), not a URI: the fl-sztp client
    /// (interop.md §1). Only with the `text` encoding.
    HostPort,
}

/// A named owner bootstrap server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootstrapServer {
    /// `name`, what rules and devices refer to.
    pub name: String,
    /// `uri`: `https://host[:port]` (RFC 8572 §8.3).
    pub uri: SztpUri,
}

/// Match keys of a rule; every non-empty key must match (any of its patterns).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Match {
    /// `match.mac`: MAC addresses or prefixes.
    pub mac: Vec<MacPattern>,
    /// `match.vendor-class`: DHCPv4 option 60 / DHCPv6 option 16.
    pub vendor_class: Vec<Glob>,
    /// `match.user-class`: DHCPv4 option 77 / DHCPv6 option 15 (any instance).
    pub user_class: Vec<Glob>,
    /// `match.client-id`: option 61 or DUID, as text or colon hex.
    pub client_id: Vec<Glob>,
    /// `match.circuit-id`: option 82.1 / DHCPv6 interface-id.
    pub circuit_id: Vec<Glob>,
    /// `match.remote-id`: option 82.2 / DHCPv6 remote-id.
    pub remote_id: Vec<Glob>,
    /// `match.interface`: the appliance interface the request came in on.
    pub interface: Vec<Glob>,
    /// `match.serial`: the device serial number.
    pub serial: Vec<Glob>,
    /// `match.hw-model`: the RESTCONF `hw-model` input.
    pub hw_model: Vec<Glob>,
    /// `match.serial-verified`: `Some(true)` matches only a device whose serial comes from a
    /// client certificate verified against `client-ca` ([`Serial::verified`]); `Some(false)`
    /// only one whose serial is claimed or unknown.
    pub serial_verified: Option<bool>,
}

fn any_glob(globs: &[Glob], value: Option<&str>) -> bool {
    globs.is_empty() || value.is_some_and(|v| globs.iter().any(|g| g.matches(v)))
}

/// [`any_glob`] over a value rendered only when a pattern needs it: identifiers are turned
/// into text (an allocation, hex for binary ones) per rule tried, on every packet.
fn any_glob_with(globs: &[Glob], value: impl FnOnce() -> Option<String>) -> bool {
    globs.is_empty() || any_glob(globs, value().as_deref())
}

impl Match {
    /// Whether every non-empty key matches `f`.
    pub fn matches(&self, f: &DeviceFacts) -> bool {
        (self.mac.is_empty()
            || f.mac
                .is_some_and(|m| self.mac.iter().any(|p| p.matches(&m))))
            && any_glob(&self.vendor_class, f.vendor_class.as_deref())
            && (self.user_class.is_empty()
                || f.user_class
                    .iter()
                    .any(|u| self.user_class.iter().any(|g| g.matches(u))))
            && any_glob_with(&self.client_id, || f.client_id.as_ref().map(ClientId::text))
            && any_glob_with(&self.circuit_id, || f.circuit_id.as_deref().map(id_text))
            && any_glob_with(&self.remote_id, || f.remote_id.as_deref().map(id_text))
            && any_glob(&self.interface, f.interface.as_deref())
            && any_glob(&self.serial, f.serial.as_ref().map(|s| s.value.as_str()))
            && any_glob(&self.hw_model, f.hw_model.as_deref())
            && self
                .serial_verified
                .is_none_or(|want| f.serial.as_ref().is_some_and(|s| s.verified) == want)
    }
}

/// A `[[rule]]`, with names already resolved to bootstrap servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// `name`.
    pub name: String,
    /// `match`: every key must match; empty matches every device.
    pub matches: Match,
    /// `redirect-to`, most preferred first; empty: the device is excluded from SZTP.
    pub redirect_to: Vec<BootstrapServer>,
    /// `None`: redirect-server when the redirect server is enabled, direct otherwise.
    pub via: Option<Via>,
    /// `dhcp-uri-encoding`.
    pub encoding: UriEncoding,
    /// `dhcp-uri-form`.
    pub form: UriForm,
    /// `dhcp-always-send`.
    pub always_send: bool,
}

/// A `[[device]]`: a known device, by serial and/or MAC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownDevice {
    /// `serial`.
    pub serial: Option<String>,
    /// `mac`.
    pub mac: Option<MacAddr>,
    /// Empty: the matching rule's targets.
    pub redirect_to: Vec<BootstrapServer>,
}

/// What the policy decided for one device: routing only. How DHCP renders it (encoding, URI
/// form, always-send) is read from the rule with [`Policy::rendering`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The rule that matched (`device:<serial-or-mac>` when only a known device matched).
    pub rule: String,
    /// The known device entry that matched, if any (its serial or MAC).
    pub device: Option<String>,
    /// The owner's bootstrap servers, most preferred first. Empty when the rule has
    /// `redirect-to = []`: the device is excluded from SZTP (see [`Decision::excluded`]).
    pub bootstrap_servers: Vec<BootstrapServer>,
    /// Whether DHCP and DNS point at the local redirect server or at the bootstrap servers.
    pub via: Via,
    /// What DHCP and DNS hand out, most preferred first: the redirect server's `advertise` URI
    /// when `via` is [`Via::RedirectServer`], otherwise the bootstrap servers' URIs.
    pub targets: Vec<SztpUri>,
}

impl Decision {
    /// True when the matching rule sends this device nowhere (`redirect-to = []`): no option
    /// 143/136, no SRV/TXT, no redirect (for device classes such as OpenConfig bootz that reuse
    /// the options for another protocol).
    pub fn excluded(&self) -> bool {
        self.bootstrap_servers.is_empty()
    }

    /// The target URIs in `form`, most preferred first (what DHCP option 143/136 carries).
    pub fn uris(&self, form: UriForm) -> Vec<String> {
        self.targets
            .iter()
            .map(|u| match form {
                UriForm::Authority => u.authority(),
                UriForm::OperationUrl => u.operation_url(),
                UriForm::HostPort => u.host_port(),
            })
            .collect()
    }
}

/// How the DHCP front ends render a [`Decision`] for one rule (RFC 8572 §8.3 and the legacy
/// forms of interop.md §1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rendering {
    /// `dhcp-uri-encoding`.
    pub encoding: UriEncoding,
    /// `dhcp-uri-form`.
    pub form: UriForm,
    /// `dhcp-always-send`: send 143/136 even when the client did not ask for it.
    pub always_send: bool,
}

/// Rules, known devices and the redirect server's advertised URI: everything that decides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// `[[rule]]`, first match wins.
    pub rules: Vec<Rule>,
    /// `[[device]]`, first match wins.
    pub devices: Vec<KnownDevice>,
    /// `Some` when `[redirect-server]` is enabled.
    pub advertise: Option<SztpUri>,
}

impl Policy {
    /// First matching known device (by MAC, then serial) and first matching rule.
    /// `None` when neither matches: the device gets addresses but no redirect.
    pub fn decide(&self, facts: &DeviceFacts) -> Option<Decision> {
        let serial = facts.serial.as_ref().map(|s| s.value.as_str());
        let device = self.devices.iter().find(|d| {
            (d.mac.is_some() && d.mac == facts.mac)
                || (d.serial.is_some() && d.serial.as_deref() == serial)
        });
        let rule = self.rules.iter().find(|r| r.matches.matches(facts));
        if device.is_none() && rule.is_none() {
            return None;
        }
        let default_via = if self.advertise.is_some() {
            Via::RedirectServer
        } else {
            Via::Direct
        };
        let device_label = device.map(|d| {
            d.serial
                .clone()
                .or_else(|| d.mac.map(|m| m.to_string()))
                .unwrap_or_default()
        });
        let servers = match device {
            Some(d) if !d.redirect_to.is_empty() => d.redirect_to.clone(),
            _ => rule.map(|r| r.redirect_to.clone()).unwrap_or_default(),
        };
        if servers.is_empty() && rule.is_none() {
            return None;
        }
        let mut via = rule.and_then(|r| r.via).unwrap_or(default_via);
        if self.advertise.is_none() {
            via = Via::Direct;
        }
        let targets = match (via, &self.advertise) {
            _ if servers.is_empty() => Vec::new(),
            (Via::RedirectServer, Some(a)) => vec![a.clone()],
            _ => servers.iter().map(|b| b.uri.clone()).collect(),
        };
        Some(Decision {
            rule: rule
                .map(|r| r.name.clone())
                .unwrap_or_else(|| format!("device:{}", device_label.clone().unwrap_or_default())),
            device: device_label,
            bootstrap_servers: servers,
            via,
            targets,
        })
    }

    /// The rule named `name`, if any.
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }

    /// How DHCP renders `decision`: the settings of its rule, the defaults when only a known
    /// device matched.
    pub fn rendering(&self, decision: &Decision) -> Rendering {
        self.rule(&decision.rule)
            .map(|r| Rendering {
                encoding: r.encoding,
                form: r.form,
                always_send: r.always_send,
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bs(name: &str, uri: &str) -> BootstrapServer {
        BootstrapServer {
            name: name.into(),
            uri: SztpUri::parse(uri).unwrap(),
        }
    }

    fn rule(name: &str, m: Match, to: Vec<BootstrapServer>) -> Rule {
        Rule {
            name: name.into(),
            matches: m,
            redirect_to: to,
            via: None,
            encoding: UriEncoding::Rfc8572,
            form: UriForm::Authority,
            always_send: false,
        }
    }

    fn policy() -> Policy {
        let p = bs("owner-primary", "https://sztp.owner.example.com:8443");
        let b = bs("owner-backup", "https://[2001:db8::10]:8443");
        let mut legacy = rule(
            "legacy-agents",
            Match {
                user_class: vec![Glob("opi-sztp*".into())],
                ..Match::default()
            },
            vec![p.clone()],
        );
        legacy.via = Some(Via::Direct);
        legacy.encoding = UriEncoding::Text;
        legacy.form = UriForm::OperationUrl;
        Policy {
            rules: vec![
                rule(
                    "arista-lab",
                    Match {
                        vendor_class: vec![Glob("Arista*".into())],
                        mac: vec!["00:1c:73:00:00:00/24".parse().unwrap()],
                        ..Match::default()
                    },
                    vec![p.clone(), b.clone()],
                ),
                legacy,
                rule("default", Match::default(), vec![p.clone()]),
            ],
            devices: vec![KnownDevice {
                serial: Some("SN123".into()),
                mac: Some("02:00:00:00:00:01".parse().unwrap()),
                redirect_to: vec![b],
            }],
            advertise: Some(SztpUri::parse("https://192.0.2.1").unwrap()),
        }
    }

    #[test]
    fn every_match_key_must_match() {
        let p = policy();
        let mut f = DeviceFacts {
            vendor_class: Some("Arista;DCS-7050".into()),
            mac: Some("00:1c:73:aa:bb:cc".parse().unwrap()),
            ..Default::default()
        };
        let d = p.decide(&f).unwrap();
        assert_eq!(d.rule, "arista-lab");
        assert_eq!(d.bootstrap_servers.len(), 2);
        assert_eq!(d.via, Via::RedirectServer);
        assert_eq!(d.uris(UriForm::Authority), ["https://192.0.2.1"]);
        f.mac = Some("00:1c:74:aa:bb:cc".parse().unwrap());
        assert_eq!(p.decide(&f).unwrap().rule, "default");
    }

    #[test]
    fn legacy_rule_renders_direct_operation_urls() {
        let p = policy();
        let f = DeviceFacts {
            user_class: vec!["opi-sztp-agent".into()],
            ..Default::default()
        };
        let d = p.decide(&f).unwrap();
        assert_eq!(d.rule, "legacy-agents");
        let r = p.rendering(&d);
        assert_eq!(r.encoding, UriEncoding::Text);
        assert_eq!(
            d.uris(r.form),
            ["https://sztp.owner.example.com:8443/restconf/operations/ietf-sztp-bootstrap-server:get-bootstrapping-data"]
        );
    }

    #[test]
    fn known_device_overrides_targets_and_keeps_rule_settings() {
        let mut p = policy();
        p.advertise = None;
        let f = DeviceFacts {
            mac: Some("02:00:00:00:00:01".parse().unwrap()),
            ..Default::default()
        };
        let d = p.decide(&f).unwrap();
        assert_eq!(d.rule, "default");
        assert_eq!(d.device.as_deref(), Some("SN123"));
        assert_eq!(d.via, Via::Direct);
        assert_eq!(
            d.uris(p.rendering(&d).form),
            ["https://[2001:db8::10]:8443"]
        );
        let by_serial = DeviceFacts {
            serial: Some(Serial::claimed("SN123")),
            ..Default::default()
        };
        assert_eq!(
            p.decide(&by_serial).unwrap().device.as_deref(),
            Some("SN123")
        );
    }

    #[test]
    fn serial_verified_matches_provenance() {
        let mut p = policy();
        p.rules.insert(
            0,
            rule(
                "verified-only",
                Match {
                    serial: vec![Glob("SN9*".into())],
                    serial_verified: Some(true),
                    ..Match::default()
                },
                vec![bs("x", "https://x.example.com")],
            ),
        );
        let mut f = DeviceFacts {
            serial: Some(Serial::claimed("SN99")),
            ..Default::default()
        };
        assert_eq!(p.decide(&f).unwrap().rule, "default");
        f.serial = Some(Serial::verified("SN99"));
        assert_eq!(p.decide(&f).unwrap().rule, "verified-only");
        p.rules[0].matches.serial_verified = Some(false);
        assert_eq!(p.decide(&f).unwrap().rule, "default");
        f.serial = None;
        p.rules[0].matches.serial.clear();
        assert_eq!(p.decide(&f).unwrap().rule, "verified-only");
    }

    #[test]
    fn no_rule_no_device_no_decision() {
        let mut p = policy();
        p.rules.retain(|r| r.name != "default");
        assert!(p.decide(&DeviceFacts::default()).is_none());
    }

    #[test]
    fn globs_and_mac_prefixes() {
        assert!(Glob("Arista*".into()).matches("Arista"));
        assert!(Glob("*sw?tch*".into()).matches("a-switch-1"));
        assert!(!Glob("Arista*".into()).matches("arista"));
        assert!(Glob("*".into()).matches(""));
        let p: MacPattern = "00:1c:73:00:00:00/24".parse().unwrap();
        assert!(p.matches(&"00:1c:73:ff:ff:ff".parse().unwrap()));
        assert!(!p.matches(&"00:1c:72:ff:ff:ff".parse().unwrap()));
        let all: MacPattern = "00:00:00:00:00:00/0".parse().unwrap();
        assert!(all.matches(&"ff:ff:ff:ff:ff:ff".parse().unwrap()));
        assert!("00:1c:73:00:00:00/49".parse::<MacPattern>().is_err());
        assert_eq!(id_text(b"Gi0/1"), "Gi0/1");
        assert_eq!(id_text(&[1, 2, 0xff]), "01:02:ff");
        assert_eq!(id_text(&[0xab]), "ab");
        let m = MacAddr([0x02, 0xab, 0, 0x10, 0xff, 0x09]);
        assert_eq!(m.to_string(), "02:ab:00:10:ff:09");
        assert_eq!(m.to_string().parse::<MacAddr>(), Ok(m));
    }
}
