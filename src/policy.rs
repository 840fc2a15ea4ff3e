//! The one place that decides where a device goes: `DeviceFacts` in, `Decision` out

use std::fmt;
use std::str::FromStr;

use crate::sztp::SztpUri;

/// An Ethernet MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
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
    pub fn from_slice(b: &[u8]) -> Option<MacAddr> {
        <[u8; 6]>::try_from(b.get(..6)?).ok().map(MacAddr)
    }
}

/// A MAC match: `aa:bb:cc:00:00:00/24` (prefix) or an exact address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacPattern {
    pub addr: MacAddr,
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
        _ => b
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    }
}

/// Everything a front end knows about a device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceFacts {
    pub mac: Option<MacAddr>,
    pub client_id: Option<Vec<u8>>,
    pub vendor_class: Option<String>,
    pub user_class: Vec<String>,
    pub circuit_id: Option<Vec<u8>>,
    pub remote_id: Option<Vec<u8>>,
    pub interface: Option<String>,
    pub serial: Option<String>,
    pub hw_model: Option<String>,
}

/// Where DHCP and DNS point a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The local redirect server's `advertise` URI.
    RedirectServer,
    /// The owner's bootstrap servers themselves.
    Direct,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UriEncoding {
    /// RFC 8572 §8.3 `uri-length ‖ URI` list.
    #[default]
    Rfc8572,
    /// The bare string of the first URI (ISC `code 143 = text` clients).
    Text,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UriForm {
    /// `https://host[:port]` (RFC 8572, IOS-XE).
    #[default]
    Authority,
    /// The full get-bootstrapping-data URL (OPI sztp-agent).
    OperationUrl,
}

/// A named owner bootstrap server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootstrapServer {
    pub name: String,
    pub uri: SztpUri,
}

/// Match keys of a rule; every non-empty key must match (any of its patterns).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Match {
    pub mac: Vec<MacPattern>,
    pub vendor_class: Vec<Glob>,
    pub user_class: Vec<Glob>,
    pub client_id: Vec<Glob>,
    pub circuit_id: Vec<Glob>,
    pub remote_id: Vec<Glob>,
    pub interface: Vec<Glob>,
    pub serial: Vec<Glob>,
    pub hw_model: Vec<Glob>,
}

fn any_glob(globs: &[Glob], value: Option<&str>) -> bool {
    globs.is_empty() || value.is_some_and(|v| globs.iter().any(|g| g.matches(v)))
}

impl Match {
    pub fn matches(&self, f: &DeviceFacts) -> bool {
        (self.mac.is_empty()
            || f.mac
                .is_some_and(|m| self.mac.iter().any(|p| p.matches(&m))))
            && any_glob(&self.vendor_class, f.vendor_class.as_deref())
            && (self.user_class.is_empty()
                || f.user_class
                    .iter()
                    .any(|u| self.user_class.iter().any(|g| g.matches(u))))
            && any_glob(
                &self.client_id,
                f.client_id.as_deref().map(id_text).as_deref(),
            )
            && any_glob(
                &self.circuit_id,
                f.circuit_id.as_deref().map(id_text).as_deref(),
            )
            && any_glob(
                &self.remote_id,
                f.remote_id.as_deref().map(id_text).as_deref(),
            )
            && any_glob(&self.interface, f.interface.as_deref())
            && any_glob(&self.serial, f.serial.as_deref())
            && any_glob(&self.hw_model, f.hw_model.as_deref())
    }
}

/// A `[[rule]]`, with names already resolved to bootstrap servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub matches: Match,
    pub redirect_to: Vec<BootstrapServer>,
    /// `None`: redirect-server when the redirect server is enabled, direct otherwise.
    pub via: Option<Via>,
    pub encoding: UriEncoding,
    pub form: UriForm,
    pub always_send: bool,
}

/// A `[[device]]`: a known device, by serial and/or MAC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownDevice {
    pub serial: Option<String>,
    pub mac: Option<MacAddr>,
    /// Empty: the matching rule's targets.
    pub redirect_to: Vec<BootstrapServer>,
}

/// What the policy decided for one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The rule that matched (`device:<serial-or-mac>` when only a known device matched).
    pub rule: String,
    /// The known device entry that matched, if any (its serial or MAC).
    pub device: Option<String>,
    /// The owner's bootstrap servers, most preferred first.
    pub bootstrap_servers: Vec<BootstrapServer>,
    pub via: Via,
    pub encoding: UriEncoding,
    pub form: UriForm,
    pub always_send: bool,
    /// The redirect server's advertised URI, when one is configured.
    pub advertise: Option<SztpUri>,
}

impl Decision {
    /// The URIs DHCP hands out, most preferred first, in the rule's URI form.
    pub fn dhcp_uris(&self) -> Vec<String> {
        let targets: Vec<&SztpUri> = match (self.via, &self.advertise) {
            (Via::RedirectServer, Some(a)) => vec![a],
            _ => self.bootstrap_servers.iter().map(|b| &b.uri).collect(),
        };
        targets
            .into_iter()
            .map(|u| match self.form {
                UriForm::Authority => u.authority(),
                UriForm::OperationUrl => u.operation_url(),
            })
            .collect()
    }
}

/// Rules, known devices and the redirect server's advertised URI: everything that decides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub rules: Vec<Rule>,
    pub devices: Vec<KnownDevice>,
    /// `Some` when `[redirect-server]` is enabled.
    pub advertise: Option<SztpUri>,
}

impl Policy {
    /// First matching known device (by MAC, then serial) and first matching rule.
    /// `None` when neither matches: the device gets addresses but no redirect.
    pub fn decide(&self, facts: &DeviceFacts) -> Option<Decision> {
        let device = self.devices.iter().find(|d| {
            (d.mac.is_some() && d.mac == facts.mac)
                || (d.serial.is_some() && d.serial == facts.serial)
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
        if servers.is_empty() {
            return None;
        }
        let mut via = rule.and_then(|r| r.via).unwrap_or(default_via);
        if self.advertise.is_none() {
            via = Via::Direct;
        }
        Some(Decision {
            rule: rule
                .map(|r| r.name.clone())
                .unwrap_or_else(|| format!("device:{}", device_label.clone().unwrap_or_default())),
            device: device_label,
            bootstrap_servers: servers,
            via,
            encoding: rule.map(|r| r.encoding).unwrap_or_default(),
            form: rule.map(|r| r.form).unwrap_or_default(),
            always_send: rule.is_some_and(|r| r.always_send),
            advertise: self.advertise.clone(),
        })
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
        assert_eq!(d.dhcp_uris(), ["https://192.0.2.1"]);
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
        assert_eq!(d.encoding, UriEncoding::Text);
        assert_eq!(
            d.dhcp_uris(),
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
        assert_eq!(d.dhcp_uris(), ["https://[2001:db8::10]:8443"]);
        let by_serial = DeviceFacts {
            serial: Some("SN123".into()),
            ..Default::default()
        };
        assert_eq!(
            p.decide(&by_serial).unwrap().device.as_deref(),
            Some("SN123")
        );
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
    }
}
