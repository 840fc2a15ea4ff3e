//! Configuration: the TOML file (`file`), its checks (`validate`), errors with spans (`error`)
//! and the checked model every service is built from (this module)

mod error;
pub(crate) mod file;
pub(crate) mod validate;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::{Ipv4Net, Ipv6Net};

pub use error::{ConfigError, ConfigErrors};

use crate::policy::{BootstrapServer, KnownDevice, MacAddr, Policy, Rule};
use crate::sztp::SztpUri;

/// The largest configuration file read, in octets: a bigger one is refused before it is read
/// (or, from a pipe, once this much has been).
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Read, parse and validate a configuration file. Every semantic error is collected.
///
/// # Errors
/// The file cannot be read, is larger than [`MAX_FILE_BYTES`], or is invalid (every error,
/// `FILE:LINE:COL: key: message`).
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = read_limited(path).map_err(ConfigErrors::single)?;
    load_str(path, &text)
}

fn read_limited(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    // `exact`: the size is known (a regular file); else reading stopped past the limit
    let too_big = |n: u64, exact: bool| ConfigError {
        file: path.to_path_buf(),
        line: 0,
        col: 0,
        key: String::new(),
        message: format!(
            "{n} bytes{}: a configuration file may have at most {MAX_FILE_BYTES} (16 MiB)",
            if exact { "" } else { " or more" }
        ),
    };
    let f = std::fs::File::open(path).map_err(|e| ConfigError::io(path, &e))?;
    let meta = f.metadata().map_err(|e| ConfigError::io(path, &e))?;
    if meta.is_file() && meta.len() > MAX_FILE_BYTES {
        return Err(too_big(meta.len(), true));
    }
    let mut text = String::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| ConfigError::io(path, &e))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big(text.len() as u64, false));
    }
    Ok(text)
}

/// Parse and validate `text` as if read from `path` (used in error messages).
pub fn load_str(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
    let raw = file::parse(path, text)?;
    validate::validate(path, text, raw)
}

/// The checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was read from (error messages, reload).
    pub source: PathBuf,
    /// `[appliance]`.
    pub appliance: Appliance,
    /// `[[bootstrap-server]]`, in file order.
    pub bootstrap_servers: Vec<BootstrapServer>,
    /// `None` when absent or `enabled = false`.
    pub redirect_server: Option<RedirectServer>,
    /// `[[rule]]`, in file order (first match wins).
    pub rules: Vec<Rule>,
    /// `[[device]]`, in file order.
    pub devices: Vec<KnownDevice>,
    /// `[dhcp4]`; `None` when absent or `enabled = false`.
    pub dhcp4: Option<Dhcp4>,
    /// `[dhcp6]`; `None` when absent or `enabled = false`.
    pub dhcp6: Option<Dhcp6>,
    /// `[dns]`; `None` when absent or `enabled = false`.
    pub dns: Option<Dns>,
    /// `[status]`; `None` when absent or `enabled = false`.
    pub status: Option<Status>,
    /// `[owner]`: signing material for signed redirects and bundles; `None` when absent.
    pub owner: Option<Owner>,
    /// `bootstrap-server[i].trust-anchor` by bootstrap-server name, in file order.
    pub trust_anchors: Vec<(String, FileRef)>,
}

/// A file the configuration names, with where it is named (for `FILE:LINE:COL: key: message`
/// errors about its content, which `crate::owner` reads).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRef {
    /// The path as written (relative paths are relative to the working directory).
    pub path: PathBuf,
    /// Key path, e.g. `owner.key` or `bootstrap-server[1].trust-anchor`.
    pub key: String,
    /// 1-based line of the value in the configuration file.
    pub line: usize,
    /// 1-based column of the value.
    pub col: usize,
}

impl FileRef {
    /// An error about this file's content, located at the key that names it.
    pub fn error(&self, config: &Path, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: config.to_path_buf(),
            line: self.line,
            col: self.col,
            key: self.key.clone(),
            message: message.into(),
        }
    }
}

/// `[owner]`: the device owner's certificate, key and ownership vouchers (RFC 8572 §3.2,
/// §3.3), with which the appliance signs redirect-information (§3.1, §5.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// `certificate`: PEM, the owner certificate first, then its CA certificates up to the
    /// vouchers' pinned-domain-cert.
    pub certificate: FileRef,
    /// `key`: PEM private key of the owner certificate (PKCS#8, SEC1 EC or PKCS#1 RSA); the
    /// file must be readable only by root or the service user.
    pub key: FileRef,
    /// `vouchers`: directory of RFC 8366 vouchers named `<serial>.vcj`, re-read on SIGHUP.
    pub vouchers: Option<FileRef>,
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

    /// Every interface an enabled service names (`[dhcp4]`, `[dhcp6]`, `[dns.mdns]`), each
    /// once, sorted.
    pub fn interface_names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .dhcp4
            .iter()
            .flat_map(|d| &d.interfaces)
            .chain(self.dhcp6.iter().flat_map(|d| &d.interfaces))
            .chain(
                self.dns
                    .iter()
                    .filter_map(|d| d.mdns.as_ref())
                    .flat_map(|m| &m.interfaces),
            )
            .map(String::as_str)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// `appliance.log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[appliance]`.
#[derive(Clone, Debug)]
pub struct Appliance {
    /// `state-dir`: leases, device journal, lock, generated TLS material.
    pub state_dir: PathBuf,
    /// `log-format`.
    pub log_format: LogFormat,
    /// `user`: the account to drop to once sockets are bound.
    pub user: Option<String>,
    /// Rotate the device journal past this size (`journal-max-size`, default 16 MiB).
    pub journal_max_bytes: u64,
}

/// `redirect-server.serial-from`: where the device's serial number is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SerialFrom {
    /// The client certificate's subject serialNumber attribute.
    SubjectSerialNumber,
    /// The client certificate's subject common name.
    SubjectCn,
    /// The user name of HTTP Basic authentication (RFC 7617).
    BasicUsername,
}

/// `redirect-server.report-progress`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportProgress {
    /// Journal the progress report, answer 204.
    Accept,
    /// Answer 404.
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
    /// `listen`: the socket addresses to bind.
    pub listen: Vec<SocketAddr>,
    /// `advertise`: the URI DHCP and DNS hand out for this server.
    pub advertise: SztpUri,
    /// Configured certificate/key pairs (`tls-certificate`/`tls-key`, paired by position);
    /// empty: an RSA and an ECDSA certificate are generated into state-dir.
    pub tls: Vec<TlsFiles>,
    /// `client-ca`: verify device certificates against it.
    pub client_ca: Option<PathBuf>,
    /// `serial-from`.
    pub serial_from: SerialFrom,
    /// `report-progress`.
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

/// `[dhcp4]`: the DHCPv4 server (RFC 2131).
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
    /// `authoritative` (default false): the default of every subnet's own `authoritative`.
    pub authoritative: bool,
    /// `[[dhcp4.subnet]]`, in file order.
    pub subnets: Vec<Subnet4>,
}

/// One `[[dhcp4.subnet]]`.
#[derive(Clone, Debug)]
pub struct Subnet4 {
    /// `subnet`: the network (host bits clear).
    pub subnet: Ipv4Net,
    /// `pools`: address ranges handed out, inside the subnet.
    pub pools: Vec<Pool4>,
    /// `routers`: option 3.
    pub routers: Vec<Ipv4Addr>,
    /// `dns-servers`: option 6.
    pub dns_servers: Vec<Ipv4Addr>,
    /// `domain-name`: option 15.
    pub domain_name: Option<String>,
    /// Option 119; defaults to `[domain-name]` when that is set.
    pub domain_search: Vec<String>,
    /// `lease-time`: option 51 (default 1h); 0xffffffff seconds when `"infinite"`.
    pub lease_time: Duration,
    /// Option 58; default half the lease time.
    pub renewal_time: Option<Duration>,
    /// Option 59; default 7/8 of the lease time.
    pub rebinding_time: Option<Duration>,
    /// `authoritative`, else `[dhcp4] authoritative`: whether this server is the only one that
    /// knows the subnet's bindings. True: a REQUEST for an address this server cannot give
    /// (another client's, another network's, or from a client it has no record of) gets a
    /// NAK. False (the default, as Kea and ISC dhcpd): a client this server has no record of
    /// gets no answer, so another server on the segment may keep serving it (RFC 2131
    /// §4.3.2).
    pub authoritative: bool,
    /// `[[dhcp4.subnet.reservation]]`, in file order.
    pub reservations: Vec<Reservation4>,
}

/// Options 51, 58 and 59 in seconds for a lease of `lease` with T1 `renewal` and T2
/// `rebinding` when configured: T1 defaults to half the lease, T2 to 7/8 of it (RFC 2131
/// §4.4.5); an infinite lease (0xffffffff) has infinite T1 and T2 unless they are configured.
/// Saturates at 0xffffffff; never panics.
pub fn lease_times(
    lease: Duration,
    renewal: Option<Duration>,
    rebinding: Option<Duration>,
) -> (u32, u32, u32) {
    let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
    let lease = secs(lease);
    let (d1, d2) = if lease == u32::MAX {
        (u32::MAX, u32::MAX)
    } else {
        (lease / 2, (lease / 8).saturating_mul(7))
    };
    (lease, renewal.map_or(d1, secs), rebinding.map_or(d2, secs))
}

impl Subnet4 {
    /// Options 51, 58 and 59 of this subnet in seconds ([`lease_times`]).
    pub fn lease_times(&self) -> (u32, u32, u32) {
        lease_times(self.lease_time, self.renewal_time, self.rebinding_time)
    }
}

/// A pool range, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool4 {
    /// First address.
    pub start: Ipv4Addr,
    /// Last address.
    pub end: Ipv4Addr,
}

impl Pool4 {
    /// Whether `a` is in the range.
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        self.start <= a && a <= self.end
    }
    /// Number of addresses in the range.
    pub fn size(&self) -> u64 {
        u64::from(u32::from(self.end)) - u64::from(u32::from(self.start)) + 1
    }
}

/// A `[[dhcp4.subnet.reservation]]`: a fixed address for one MAC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation4 {
    /// The client's hardware address (chaddr).
    pub mac: MacAddr,
    /// The address it always gets.
    pub address: Ipv4Addr,
    /// `hostname`: sent as option 12 (RFC 2132 §3.14) when the client asks for it or sends
    /// its own, and recorded in the lease.
    pub hostname: Option<String>,
}

/// The `[dhcp6]` section: the DHCPv6 server (RFC 8415).
#[derive(Clone, Debug)]
pub struct Dhcp6 {
    /// Interface names; never checked against the live system at validation time.
    pub interfaces: Vec<String>,
    /// Server port (default 547).
    pub port: u16,
    /// `rapid-commit`: answer a Solicit carrying Rapid Commit with a committed Reply
    /// (RFC 8415 §18.3.1, §21.14). Default false.
    pub rapid_commit: bool,
    /// `server-unicast`: the address put in the Server Unicast option (RFC 8415 §21.12);
    /// when set, clients may unicast Request/Renew/Release/Decline, otherwise such messages
    /// get a Reply with status UseMulticast (§18.4).
    pub server_unicast: Option<Ipv6Addr>,
    /// How long an Advertise holds its address for the client (`offer-time`, default 60s).
    pub offer_time: Duration,
    /// How long a Declined address is quarantined (`decline-time`, default 1h).
    pub decline_time: Duration,
    /// `[[dhcp6.subnet]]`, in file order.
    pub subnets: Vec<Subnet6>,
}

/// One `[[dhcp6.subnet]]`: a link's prefix, its address pools and options.
#[derive(Clone, Debug)]
pub struct Subnet6 {
    /// `prefix`: the link's prefix (host bits clear).
    pub prefix: Ipv6Net,
    /// `pools`: address ranges handed out, inside the prefix.
    pub pools: Vec<Pool6>,
    /// Option 23 (RFC 3646).
    pub dns_servers: Vec<Ipv6Addr>,
    /// Option 24 (RFC 3646), lowercase, without the trailing dot.
    pub domain_search: Vec<String>,
    /// `preferred-lifetime` (default 30m).
    pub preferred_lifetime: Duration,
    /// `valid-lifetime` (default 1h).
    pub valid_lifetime: Duration,
    /// T1 of IA_NA (`renewal-time`); default half the preferred lifetime (RFC 8415 §21.4).
    pub renewal_time: Option<Duration>,
    /// T2 of IA_NA (`rebinding-time`); default 0.8 × the preferred lifetime (RFC 8415 §21.4).
    pub rebinding_time: Option<Duration>,
    /// `interface`: clients on this directly attached link (not relayed) get this subnet.
    pub interface: Option<String>,
    /// `[[dhcp6.subnet.reservation]]`, in file order.
    pub reservations: Vec<Reservation6>,
}

impl Subnet6 {
    /// T1 in seconds (RFC 8415 §21.4): `renewal-time`, else ½ of the preferred lifetime.
    pub fn t1(&self) -> Duration {
        self.renewal_time.unwrap_or(self.preferred_lifetime / 2)
    }

    /// T2 in seconds (RFC 8415 §21.4): `rebinding-time`, else 0.8 × the preferred lifetime.
    pub fn t2(&self) -> Duration {
        self.rebinding_time
            .unwrap_or(self.preferred_lifetime * 4 / 5)
    }
}

/// An IPv6 address range, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool6 {
    /// First address.
    pub start: Ipv6Addr,
    /// Last address.
    pub end: Ipv6Addr,
}

impl Pool6 {
    /// Whether `a` lies in the range.
    pub fn contains(&self, a: Ipv6Addr) -> bool {
        self.start <= a && a <= self.end
    }

    /// Number of addresses, minus one (a /64 pool holds 2^64, which `u128` counts exactly).
    pub fn last_offset(&self) -> u128 {
        u128::from(self.end) - u128::from(self.start)
    }
}

/// Who a DHCPv6 reservation is for: the client's DUID, or its MAC (from a DUID-LL/LLT or the
/// relay's RFC 6939 Client Link-Layer Address option).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Reservation6Key {
    /// `duid`: the client's whole DUID (option 1 contents).
    Duid(Vec<u8>),
    /// `mac`: the client's link-layer address.
    Mac(MacAddr),
}

/// A `[[dhcp6.subnet.reservation]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation6 {
    /// Whose reservation it is.
    pub key: Reservation6Key,
    /// `address`: the address the client always gets.
    pub address: Ipv6Addr,
}

/// `[dns]`: unicast DNS for the SZTP names (RFC 8572 §4.2).
#[derive(Clone, Debug)]
pub struct Dns {
    /// `listen`: the socket addresses to bind.
    pub listen: Vec<SocketAddr>,
    /// `zones`: `_sztp._tcp.<zone>` SRV and `<serial>._sztp.<zone>` TXT are served in each.
    pub zones: Vec<String>,
    /// `ttl` of the answers.
    pub ttl: Duration,
    /// `forwarders` for other names.
    pub forwarders: Vec<SocketAddr>,
    /// name → addresses, in file order.
    pub hosts: Vec<(String, Vec<std::net::IpAddr>)>,
    /// `[dns.mdns]`; `None` when absent or disabled.
    pub mdns: Option<Mdns>,
}

/// `[dns.mdns]`: the same names under `.local` over mDNS (RFC 6762).
#[derive(Clone, Debug)]
pub struct Mdns {
    /// Interface names.
    pub interfaces: Vec<String>,
    /// The appliance's `<hostname>.local` name (one DNS label, lowercase). `None`: the system
    /// host name's first label, read when the responder starts.
    pub hostname: Option<String>,
}

/// `[status]`: the operator's status server (device table, metrics, leases over HTTP).
#[derive(Clone, Debug)]
pub struct Status {
    /// `listen`: the socket addresses to bind (default `127.0.0.1:9143`).
    pub listen: Vec<SocketAddr>,
    /// A file holding the bearer token `/api` and `/metrics` require (`token-file`); read
    /// at start, before privileges are dropped.
    pub token_file: Option<PathBuf>,
    /// Devices the device table keeps (`max-devices`, default 4096); the one seen least
    /// recently is evicted.
    pub max_devices: usize,
    /// Events kept per device for its timeline (`events-per-device`, default 32).
    pub events_per_device: usize,
}
