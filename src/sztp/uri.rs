//! The `https://host[:port]` URI form of RFC 8572 §8.3 and the two forms the appliance hands out

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// RESTCONF path of the get-bootstrapping-data RPC, used by the `operation-url` form.
pub const OPERATION_PATH: &str =
    "/restconf/operations/ietf-sztp-bootstrap-server:get-bootstrapping-data";

/// The host part of an SZTP URI.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name (ASCII).
    Name(String),
    /// An IPv4 literal.
    V4(Ipv4Addr),
    /// An IPv6 literal (bracketed in the URI).
    V6(Ipv6Addr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// A validated `https://host[:port]` URI. `Display` gives back the authority form.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SztpUri {
    /// The host.
    pub host: Host,
    /// The port as written; `None` means the https default, 443.
    pub port: Option<u16>,
}

/// Why a string is not an RFC 8572 §8.3 bootstrap server URI.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// The scheme is not `https`.
    #[error("scheme must be https")]
    Scheme,
    /// No host.
    #[error("no host")]
    NoHost,
    /// A path, query or fragment.
    #[error("a path, query or fragment is not allowed (RFC 8572 §8.3: https://host[:port] only)")]
    Path,
    /// User information before the host.
    #[error("userinfo is not allowed")]
    UserInfo,
    /// A port that is not 1..=65535.
    #[error("bad port {0:?}")]
    Port(String),
    /// A malformed IPv6 literal.
    #[error("bad IPv6 literal {0:?}")]
    V6(String),
    /// A host name that is not a valid DNS name.
    #[error("bad host name {0:?}")]
    HostName(String),
}

impl SztpUri {
    /// Parse and validate. Only `https://host[:port]` is accepted.
    pub fn parse(s: &str) -> Result<SztpUri, UriError> {
        let rest = match s.get(..8) {
            Some(p) if p.eq_ignore_ascii_case("https://") => &s[8..],
            _ => return Err(UriError::Scheme),
        };
        if rest.contains(['/', '?', '#']) {
            return Err(UriError::Path);
        }
        if rest.contains('@') {
            return Err(UriError::UserInfo);
        }
        if rest.is_empty() {
            return Err(UriError::NoHost);
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let end = v6.find(']').ok_or_else(|| UriError::V6(rest.to_string()))?;
            let addr: Ipv6Addr = v6[..end]
                .parse()
                .map_err(|_| UriError::V6(v6[..end].to_string()))?;
            let after = &v6[end + 1..];
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| UriError::Port(p.to_string()))?,
                ),
            };
            (Host::V6(addr), port)
        } else {
            let (h, p) = match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            };
            if h.is_empty() {
                return Err(UriError::NoHost);
            }
            let host = match h.parse::<Ipv4Addr>() {
                Ok(a) => Host::V4(a),
                Err(_) => {
                    if !valid_hostname(h) {
                        return Err(UriError::HostName(h.to_string()));
                    }
                    Host::Name(h.to_ascii_lowercase())
                }
            };
            (host, p)
        };
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 && !p.starts_with('+') => Some(n),
                _ => return Err(UriError::Port(p.to_string())),
            },
        };
        Ok(SztpUri { host, port })
    }

    /// The port a device will connect to.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(443)
    }

    /// `https://host[:port]`, as configured (RFC 8572 §8.3 form).
    pub fn authority(&self) -> String {
        // rendered for every OFFER and ACK: names and IPv4 literals without the formatter
        let mut s = String::with_capacity(48);
        s.push_str("https://");
        match &self.host {
            Host::Name(n) => s.push_str(n),
            Host::V4(a) => push_ipv4(&mut s, *a),
            Host::V6(a) => {
                use std::fmt::Write as _;
                let _ = write!(s, "[{a}]");
            }
        }
        if let Some(p) = self.port {
            s.push(':');
            push_decimal(&mut s, u32::from(p));
        }
        s
    }

    /// `host:port` with the effective port (`[2001:db8::1]:443` for an IPv6 literal): what
    /// the fl-sztp client reads from option 143/136 (interop.md §1).
    pub fn host_port(&self) -> String {
        format!("{}:{}", self.host, self.effective_port())
    }

    /// The full get-bootstrapping-data URL, for agents that use the URL verbatim (OPI).
    pub fn operation_url(&self) -> String {
        format!("{self}{OPERATION_PATH}")
    }
}

/// `a` in dotted decimal, as its `Display` writes it, without the formatter (per-packet
/// device-table and option 143 text).
pub(crate) fn ipv4_text(a: std::net::Ipv4Addr) -> String {
    let mut s = String::with_capacity(15);
    push_ipv4(&mut s, a);
    s
}

fn push_ipv4(s: &mut String, a: std::net::Ipv4Addr) {
    for (i, o) in a.octets().iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        push_decimal(s, u32::from(*o));
    }
}

/// Appends `n` in decimal.
fn push_decimal(s: &mut String, n: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for d in &digits[i..] {
        s.push(char::from(*d));
    }
}

impl fmt::Display for SztpUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "https://{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for SztpUri {
    type Err = UriError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SztpUri::parse(s)
    }
}

/// LDH host names in ASCII (IDNs must be given as A-labels), labels 1..=63 octets.
fn valid_hostname(h: &str) -> bool {
    let h = h.strip_suffix('.').unwrap_or(h);
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_rfc_forms() {
        let u = SztpUri::parse("https://sztp1.example.com").unwrap();
        assert_eq!(u.host, Host::Name("sztp1.example.com".into()));
        assert_eq!(u.effective_port(), 443);
        let u = SztpUri::parse("https://[2001:db8::10]:8443").unwrap();
        assert_eq!(u.host, Host::V6("2001:db8::10".parse().unwrap()));
        assert_eq!(u.port, Some(8443));
        assert_eq!(u.to_string(), "https://[2001:db8::10]:8443");
        let u = SztpUri::parse("https://192.0.2.10:8443").unwrap();
        assert_eq!(u.host, Host::V4("192.0.2.10".parse().unwrap()));
    }

    #[test]
    fn rejects_what_rfc_8572_forbids() {
        assert_eq!(SztpUri::parse("http://192.0.2.1"), Err(UriError::Scheme));
        assert_eq!(
            SztpUri::parse("https://192.0.2.2/restconf"),
            Err(UriError::Path)
        );
        assert_eq!(SztpUri::parse("https://h?x"), Err(UriError::Path));
        assert_eq!(SztpUri::parse("https://u@h"), Err(UriError::UserInfo));
        assert_eq!(SztpUri::parse("https://"), Err(UriError::NoHost));
        assert_eq!(SztpUri::parse("https://:443"), Err(UriError::NoHost));
        assert!(matches!(
            SztpUri::parse("https://h:0"),
            Err(UriError::Port(_))
        ));
        assert!(matches!(
            SztpUri::parse("https://h:65536"),
            Err(UriError::Port(_))
        ));
        assert!(matches!(
            SztpUri::parse("https://[zz::1]"),
            Err(UriError::V6(_))
        ));
        assert!(matches!(
            SztpUri::parse("https://bad host"),
            Err(UriError::HostName(_))
        ));
    }

    #[test]
    fn operation_url_form() {
        let u = SztpUri::parse("https://192.0.2.1:8443").unwrap();
        assert_eq!(
            u.operation_url(),
            "https://192.0.2.1:8443/restconf/operations/ietf-sztp-bootstrap-server:get-bootstrapping-data"
        );
    }

    #[test]
    fn authority_is_the_display_form() {
        for u in [
            "https://sztp1.example.test:8443",
            "https://sztp1.example.test",
            "https://192.0.2.1",
            "https://198.51.100.255:65535",
            "https://0.0.0.9:1",
            "https://[2001:db8::1]:8443",
            "https://[fd00::a:0:0:1]",
        ] {
            let p = SztpUri::parse(u).unwrap();
            assert_eq!(p.authority(), p.to_string(), "{u}");
            assert_eq!(p.authority(), u);
        }
        for a in ["0.0.0.0", "192.0.2.1", "255.255.255.255", "10.100.9.250"] {
            assert_eq!(ipv4_text(a.parse().unwrap()), a);
        }
    }
}
