//! Configuration: the TOML file (`file`), its checks (`validate`), errors with spans (`error`)
//! and the checked model every service is built from (this module)

pub mod error;
pub mod file;
pub mod validate;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::{Ipv4Net, Ipv6Net};

pub use error::{ConfigError, ConfigErrors};

use crate::policy::{BootstrapServer, KnownDevice, MacAddr, Policy, Rule};
use crate::sztp::SztpUri;

/// Read, parse and validate a configuration file. Every semantic error is collected.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors::single(ConfigError::io(path, &e)))?;
    load_str(path, &text)
}

/// Parse and validate `text` as if read from `path` (used in error messages).
pub fn load_str(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
    let raw = file::parse(path, text)?;
    validate::validate(path, text, raw)
}

/// The checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub source: PathBuf,
    pub appliance: Appliance,
    pub bootstrap_servers: Vec<BootstrapServer>,
    /// `None` when absent or `enabled = false`.
    pub redirect_server: Option<RedirectServer>,
    pub rules: Vec<Rule>,
    pub devices: Vec<KnownDevice>,
    pub dhcp4: Option<Dhcp4>,
    pub dhcp6: Option<Dhcp6>,
    pub dns: Option<Dns>,
    pub status: Option<Status>,
}

impl Config {
    /// The one Policy built from this configuration.
    pub fn policy(&self) -> Policy {
        Policy {
            rules: self.rules.clone(),
            devices: self.devices.clone(),
            advertise: self.redirect_server.as_ref().map(|r| r.advertise.clone()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Debug)]
pub struct Appliance {
    pub state_dir: PathBuf,
    pub log_format: LogFormat,
    pub user: Option<String>,
    /// Rotate the device journal past this size (`journal-max-size`, default 16 MiB).
    pub journal_max_bytes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SerialFrom {
    SubjectSerialNumber,
    SubjectCn,
    BasicUsername,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportProgress {
    Accept,
    Reject,
}

/// The lowest TLS version the redirect server accepts (`min-tls-version`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TlsVersion {
    /// TLS 1.2 (RFC 5246) and 1.3: devices such as Cisco SUDI clients need 1.2.
    #[default]
    Tls12,
    /// TLS 1.3 (RFC 8446) only.
    Tls13,
}

/// Which CMS content type the redirect server's conveyed information uses
/// (`conveyed-encoding`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ConveyedEncoding {
    /// JSON (1.43) in a JSON response, XML (1.42) in an XML response.
    #[default]
    AsResponse,
    /// Always id-ct-sztpConveyedInfoJSON (1.43), for devices that parse only JSON.
    Json,
    /// Always id-ct-sztpConveyedInfoXML (1.42).
    Xml,
}

/// One configured TLS server certificate chain and its private key (PEM files).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, end-entity first.
    pub certificate: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// `[redirect-server]`: the RESTCONF redirect server (RFC 8572 §7).
#[derive(Clone, Debug)]
pub struct RedirectServer {
    pub listen: Vec<SocketAddr>,
    pub advertise: SztpUri,
    /// Configured certificate/key pairs (`tls-certificate`/`tls-key`, paired by position);
    /// empty: an RSA and an ECDSA certificate are generated into state-dir.
    pub tls: Vec<TlsFiles>,
    pub client_ca: Option<PathBuf>,
    pub serial_from: SerialFrom,
    pub report_progress: ReportProgress,
    /// `min-tls-version`, default 1.2.
    pub min_tls_version: TlsVersion,
    /// `max-connections`: TLS connections served at once; more are closed at accept.
    pub max_connections: usize,
    /// `rate-limit`: requests per second per source address (bursts of twice that);
    /// 0 turns the limit off.
    pub rate_limit: u32,
    /// `client-timeout`: the longest a client may take for its TLS handshake, for a request's
    /// headers (and between requests on a kept-alive connection), and for a request body.
    pub client_timeout: Duration,
    /// `conveyed-encoding`.
    pub conveyed_encoding: ConveyedEncoding,
}

#[derive(Clone, Debug)]
pub struct Dhcp4 {
    /// Interface names; never checked against the live system at validation time.
    pub interfaces: Vec<String>,
    /// Server port (default 67).
    pub port: u16,
    /// Port replies to clients go to (default 68); relays get theirs from giaddr:port.
    pub client_port: u16,
    /// Override of the server identifier (option 54); default: the interface's address.
    pub server_id: Option<Ipv4Addr>,
    /// How long an OFFER holds its address (`offer-time`, default 60s).
    pub offer_time: Duration,
    /// How long a DECLINEd address is quarantined (`decline-time`, default 1h).
    pub decline_time: Duration,
    pub subnets: Vec<Subnet4>,
}

#[derive(Clone, Debug)]
pub struct Subnet4 {
    pub subnet: Ipv4Net,
    pub pools: Vec<Pool4>,
    pub routers: Vec<Ipv4Addr>,
    pub dns_servers: Vec<Ipv4Addr>,
    pub domain_name: Option<String>,
    /// Option 119; defaults to `[domain-name]` when that is set.
    pub domain_search: Vec<String>,
    pub lease_time: Duration,
    /// Option 58; default half the lease time.
    pub renewal_time: Option<Duration>,
    /// Option 59; default 7/8 of the lease time.
    pub rebinding_time: Option<Duration>,
    pub reservations: Vec<Reservation4>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool4 {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
}

impl Pool4 {
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        self.start <= a && a <= self.end
    }
    pub fn size(&self) -> u64 {
        u64::from(u32::from(self.end)) - u64::from(u32::from(self.start)) + 1
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation4 {
    pub mac: MacAddr,
    pub address: Ipv4Addr,
    pub hostname: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Dhcp6 {
    pub interfaces: Vec<String>,
    pub port: u16,
    pub subnets: Vec<Subnet6>,
}

#[derive(Clone, Debug)]
pub struct Subnet6 {
    pub prefix: Ipv6Net,
    pub pools: Vec<Pool6>,
    pub dns_servers: Vec<Ipv6Addr>,
    pub domain_search: Vec<String>,
    pub preferred_lifetime: Duration,
    pub valid_lifetime: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool6 {
    pub start: Ipv6Addr,
    pub end: Ipv6Addr,
}

#[derive(Clone, Debug)]
pub struct Dns {
    pub listen: Vec<SocketAddr>,
    pub zones: Vec<String>,
    pub ttl: Duration,
    pub forwarders: Vec<SocketAddr>,
    /// name → addresses, in file order.
    pub hosts: Vec<(String, Vec<std::net::IpAddr>)>,
    pub mdns: Option<Mdns>,
}

#[derive(Clone, Debug)]
pub struct Mdns {
    pub interfaces: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Status {
    pub listen: Vec<SocketAddr>,
}
