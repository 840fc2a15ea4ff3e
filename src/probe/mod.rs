//! `probe`: behave like an SZTP device on a segment and print what it is told
//!
//! Two ways onto the segment: `--interface` (raw frames, needs CAP_NET_RAW, sees every server on
//! the link) and `--relay` (a UDP socket acting as a relay agent, no privileges). DHCPv6 the
//! same way: `--interface IF --dhcp6` (link-local, port 546) or `--relay6 [ADDR]:PORT`.
//! Exit codes: 0 an ACK or Reply (with or without option 143/136), 2 a NAK, a refusal or no
//! answer to the request, 3 no server answered, 1 local error.
//! DNS mode (`--dns-server`/`--domain` and/or `--mdns`, with `--serial`) makes the RFC 8572
//! §4.2 lookups instead ([`dns`]): 0 a redirect or SRV found, 2 answers without one, 3 none.

pub(crate) mod dhcp4;
pub(crate) mod dhcp6;
pub(crate) mod dns;
pub(crate) mod exchange;
pub mod restconf;
pub(crate) mod signed;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::Args;

use crate::dhcp::v4::sockets::iface_info;
use crate::policy::MacAddr;
use dhcp4::{ProbeParams, ProbeReport, RelayAgent};
use exchange::{RawTransport, RelayTransport, Timing};

/// `probe` options.
#[derive(Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("via").required(true).multiple(true).args(["interface", "relay", "relay6", "dns_server", "mdns", "restconf", "bundle"])))]
#[command(group(clap::ArgGroup::new("relaying").multiple(false).args(["relay", "relay6"])))]
pub struct ProbeArgs {
    /// Act as a device on IFACE with raw frames (root or CAP_NET_RAW)
    #[arg(long, value_name = "IFACE")]
    pub interface: Option<String>,
    /// Act as a relay agent and unicast to the server at ADDR:PORT (no privileges needed)
    #[arg(long, value_name = "ADDR:PORT")]
    pub relay: Option<SocketAddr>,
    /// DHCPv6 as a relay agent: Relay-forward unicast to the server at [ADDR]:PORT (no
    /// privileges needed; RFC 8357 brings the answer back to the probe's port)
    #[arg(long, value_name = "[ADDR]:PORT")]
    pub relay6: Option<std::net::SocketAddrV6>,
    /// DHCPv6 on --interface: Solicit with 136 in the ORO from the link-local address (port 546)
    #[arg(long, short = '6', requires = "interface")]
    pub dhcp6: bool,
    /// DHCPv6 Information-request instead of Solicit/Request (no address)
    #[arg(long)]
    pub stateless: bool,
    /// DHCPv6: include Rapid Commit in the Solicit
    #[arg(long)]
    pub rapid_commit: bool,
    /// DHCPv6 relay mode: the Relay-forward link-address, which selects the server's subnet
    #[arg(long, value_name = "ADDR", requires = "relay6", default_value = "::")]
    pub link_address: std::net::Ipv6Addr,
    /// DHCPv6 client DUID in hex [default: DUID-LL of the MAC]
    #[arg(long, value_name = "HEX")]
    pub duid: Option<String>,
    /// DHCPv6 option 16 enterprise number for --vendor-class [default: 32473, RFC 5612]
    #[arg(long, value_name = "N")]
    pub enterprise_number: Option<u32>,
    /// DHCPv6: do not list 136 in the Option Request option
    #[arg(long)]
    pub no_request_136: bool,
    /// Relay mode: local address to bind [default: 127.0.0.1:0 ([::1]:0) for a loopback server, else 0.0.0.0:0 ([::]:0)]
    #[arg(long, value_name = "ADDR:PORT", requires = "relaying")]
    pub bind: Option<SocketAddr>,
    /// Relay mode: giaddr [default: the address the socket sends from]
    #[arg(long, value_name = "ADDR", requires = "relay")]
    pub giaddr: Option<Ipv4Addr>,
    /// Relay mode: option 82 link-selection sub-option (RFC 3527), selects the server's subnet
    #[arg(long, value_name = "ADDR", requires = "relay")]
    pub link_selection: Option<Ipv4Addr>,
    /// Relay mode: option 82 circuit-id (82.1); with --relay6 the interface-id (option 18)
    #[arg(long, requires = "relaying")]
    pub circuit_id: Option<String>,
    /// Relay mode: option 82 remote-id (82.2); with --relay6 the remote-id (option 37)
    #[arg(long, requires = "relaying")]
    pub remote_id: Option<String>,
    /// Client hardware address [default: the interface MAC]
    #[arg(long)]
    pub mac: Option<MacAddr>,
    /// Do not list 143 in the parameter request list
    #[arg(long)]
    pub no_request_143: bool,
    /// Option 60 vendor class identifier
    #[arg(long)]
    pub vendor_class: Option<String>,
    /// Option 77 user class instance (repeat for more)
    #[arg(long)]
    pub user_class: Vec<String>,
    /// Option 61 client identifier: text, or hex after `0x` (e.g. 0x01020000000002)
    #[arg(long, value_parser = client_id_arg)]
    pub client_id: Option<ClientIdArg>,
    /// Option 12 host name
    #[arg(long)]
    pub hostname: Option<String>,
    /// Option 57 maximum DHCP message size
    #[arg(long)]
    pub max_size: Option<u16>,
    /// How long each DISCOVER collects offers and each REQUEST waits: 2s, 500ms, 1.5
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub wait: Duration,
    /// Sends of DISCOVER and of REQUEST before giving up
    #[arg(long, default_value_t = 3)]
    pub attempts: u32,
    /// Request the offer of this server (option 54 or source address) instead of the first
    #[arg(long, value_name = "ADDR")]
    pub server: Option<Ipv4Addr>,
    /// Release the lease afterwards
    #[arg(long)]
    pub release: bool,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
    /// Start at the RESTCONF step instead of DHCP: a bootstrap server URI (https://host[:port],
    /// RESTCONF root found through host-meta) or a get-bootstrapping-data operation URL
    #[arg(long, value_name = "URL")]
    pub restconf: Option<String>,
    /// After DHCP, follow the option-143 URIs with RESTCONF as a device would
    #[arg(long, conflicts_with = "restconf")]
    pub follow: bool,
    /// With --follow: make the RESTCONF connections from the address the DHCPv4 answer leased,
    /// as the device would (so the device table links them to the lease). The address must be
    /// local to this host: the quick start leases from 127.0.2.0/24 on loopback
    #[arg(long, requires = "follow")]
    pub from_lease: bool,
    /// RESTCONF: TLS client certificate chain (PEM)
    #[arg(long, value_name = "PEM", requires = "client_key")]
    pub client_cert: Option<std::path::PathBuf>,
    /// RESTCONF: private key of --client-cert (PEM)
    #[arg(long, value_name = "PEM", requires = "client_cert")]
    pub client_key: Option<std::path::PathBuf>,
    /// RESTCONF: hw-model input leaf
    #[arg(long)]
    pub hw_model: Option<String>,
    /// RESTCONF: os-name input leaf
    #[arg(long)]
    pub os_name: Option<String>,
    /// RESTCONF: os-version input leaf
    #[arg(long)]
    pub os_version: Option<String>,
    /// RESTCONF: send and ask for YANG XML instead of JSON
    #[arg(long)]
    pub xml: bool,
    /// RESTCONF: redirects followed at most (RFC 8572 §5.5 recommends 10)
    #[arg(long, default_value_t = restconf::DEFAULT_MAX_HOPS)]
    pub max_hops: usize,
    /// RESTCONF: bound on each connection and request: 10s, 500ms
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub restconf_timeout: Duration,
    /// Read a removable-storage bundle (RFC 8572 §4.1) from DIR instead of the network: the
    /// device directory itself, or a bundle root with --serial (flat or IOS-XR layout)
    #[arg(long, value_name = "DIR")]
    pub bundle: Option<std::path::PathBuf>,
    /// PEM trust anchors for ownership vouchers (the manufacturer's): signed data is verified
    /// as a device does (RFC 8572 §5.4)
    #[arg(long, value_name = "FILE")]
    pub manufacturer_ca: Option<std::path::PathBuf>,
    /// DNS mode: ask this unicast DNS server (ADDR, ADDR:PORT or [V6]:PORT; port 53 by default)
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = parse_dns_server, requires = "domain", conflicts_with_all = ["interface", "relay"])]
    pub dns_server: Option<SocketAddr>,
    /// DNS mode: the domain of the unicast lookups (<serial>._sztp.<domain>, _sztp._tcp.<domain>)
    #[arg(long, requires = "dns_server")]
    pub domain: Option<String>,
    /// DNS mode: ask mDNS on IFACE (<serial>._sztp.local, _sztp._tcp.local)
    #[arg(long, value_name = "IFACE", conflicts_with_all = ["interface", "relay"])]
    pub mdns: Option<String>,
    /// The device serial number: DNS mode's TXT lookups (without it only SRV is asked); the
    /// RESTCONF HTTP Basic user name (sent with an empty password); with signed data (and
    /// --bundle) the serial the voucher's serial-number must match
    #[arg(long)]
    pub serial: Option<String>,
}

fn parse_dns_server(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| {
            format!("{s:?} is not an address (192.0.2.53, 192.0.2.53:5353, [2001:db8::53]:53)")
        })
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (2s, 500ms)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("{s:?} is not a duration (2s, 500ms)")),
    };
    if !(0.0..=3600.0).contains(&secs) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The octets of an option 61 given on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIdArg(pub Vec<u8>);

fn client_id_arg(s: &str) -> Result<ClientIdArg, String> {
    parse_client_id(s).map(ClientIdArg)
}

/// Text as its UTF-8 octets, or hex after `0x`.
fn parse_client_id(s: &str) -> Result<Vec<u8>, String> {
    match s.strip_prefix("0x") {
        Some(h) => {
            hex::decode(h).map_err(|_| format!("{s:?}: after 0x give hex digits, two per octet"))
        }
        None => Ok(s.as_bytes().to_vec()),
    }
}

/// A transaction id that differs between runs; no RNG crate is needed for that.
fn new_xid() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.subsec_nanos() ^ (t.as_secs() as u32).rotate_left(16)) ^ std::process::id()
}

/// The interface that holds `ip`, for the heading.
fn interface_of(ip: Ipv4Addr) -> Option<(String, Option<MacAddr>)> {
    pnet::datalink::interfaces().into_iter().find_map(|i| {
        i.ips
            .iter()
            .any(|n| n.ip() == IpAddr::V4(ip))
            .then(|| iface_info(&i.name).ok().map(|f| (f.name, f.mac)))
            .flatten()
    })
}

/// The source address the kernel would use toward `server`.
fn source_toward(server: SocketAddr) -> std::io::Result<Ipv4Addr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
    s.connect(server)?;
    match s.local_addr()?.ip() {
        IpAddr::V4(a) => Ok(a),
        IpAddr::V6(_) => Err(std::io::Error::other("no IPv4 route to the server")),
    }
}

fn params(args: &ProbeArgs, chaddr: MacAddr) -> Result<ProbeParams, String> {
    let mut p = ProbeParams::new(new_xid(), chaddr);
    p.request_143 = !args.no_request_143;
    p.vendor_class = args.vendor_class.clone();
    p.user_class = args.user_class.clone();
    p.client_id = args.client_id.as_ref().map(|c| c.0.clone());
    p.hostname = args.hostname.clone();
    p.max_size = args.max_size;
    Ok(p)
}

fn probe(args: &ProbeArgs) -> Result<ProbeReport, String> {
    let timing = Timing {
        wait: args.wait,
        attempts: args.attempts,
    };
    if let Some(name) = &args.interface {
        let info = iface_info(name).map_err(|e| e.to_string())?;
        let mac = args
            .mac
            .or(info.mac)
            .ok_or_else(|| format!("{name}: no MAC address; give --mac"))?;
        let p = params(args, mac)?;
        let mut t = RawTransport::open(name, mac).map_err(|e| {
            if e.kind() == std::io::ErrorKind::PermissionDenied || e.raw_os_error() == Some(1) {
                format!("{e} (device mode needs root or CAP_NET_RAW; --relay does not)")
            } else {
                e.to_string()
            }
        })?;
        let heading = format!("DHCPv4 on {name} as {mac}");
        return exchange::run(
            &mut t,
            &p,
            timing,
            args.server,
            args.release,
            heading,
            name.clone(),
        )
        .map_err(|e| format!("{name}: {e}"));
    }
    let server = args.relay.ok_or("give --interface or --relay")?;
    if !server.is_ipv4() {
        return Err(format!(
            "--relay {server}: DHCPv4 needs an IPv4 server address"
        ));
    }
    let bind = args.bind.unwrap_or_else(|| {
        if server.ip().is_loopback() {
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
        } else {
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
        }
    });
    let t = RelayTransport::open(bind, server).map_err(|e| format!("bind {bind}: {e}"))?;
    let bound = t.local_addr().map_err(|e| e.to_string())?;
    let giaddr = match (args.giaddr, bound.ip()) {
        (Some(g), _) => g,
        (None, IpAddr::V4(a)) if !a.is_unspecified() => a,
        _ => source_toward(server).map_err(|e| format!("giaddr toward {server}: {e}"))?,
    };
    let iface = interface_of(giaddr);
    let chaddr = args
        .mac
        .or(iface.as_ref().and_then(|i| i.1))
        .unwrap_or(MacAddr([0x02, 0, 0, 0x53, 0x5a, 0x50]));
    let mut p = params(args, chaddr)?;
    p.relay = Some(RelayAgent {
        giaddr,
        link_selection: args.link_selection,
        circuit_id: args.circuit_id.as_ref().map(|s| s.as_bytes().to_vec()),
        remote_id: args.remote_id.as_ref().map(|s| s.as_bytes().to_vec()),
    });
    let name = iface.map_or_else(|| "?".to_string(), |i| i.0);
    let heading = format!("DHCPv4 on {name} via relay {server} (giaddr {giaddr})");
    let mut t = t;
    exchange::run(&mut t, &p, timing, args.server, args.release, heading, name)
        .map_err(|e| format!("relay {server}: {e}"))
}

impl ProbeArgs {
    /// Whether this probe speaks DHCPv6.
    pub fn is_dhcp6(&self) -> bool {
        self.relay6.is_some() || self.dhcp6 || self.stateless
    }
}

fn params6(args: &ProbeArgs, mac: MacAddr) -> Result<dhcp6::Probe6Params, String> {
    let mut p = dhcp6::Probe6Params::new(new_xid(), mac);
    if let Some(d) = &args.duid {
        p.duid = crate::config::validate::parse_duid(d).map_err(|e| format!("--duid: {e}"))?;
    }
    p.request_136 = !args.no_request_136;
    p.stateless = args.stateless;
    p.rapid_commit = args.rapid_commit;
    p.vendor_class = args.vendor_class.clone().map(|v| {
        (
            args.enterprise_number.unwrap_or(dhcp6::EXAMPLE_ENTERPRISE),
            v,
        )
    });
    p.user_class = args.user_class.clone();
    Ok(p)
}

fn probe6(args: &ProbeArgs) -> Result<dhcp6::Probe6Report, String> {
    let timing = dhcp6::Timing6 {
        wait: args.wait,
        attempts: args.attempts,
    };
    let mode = if args.stateless {
        "Information-request"
    } else {
        "Solicit"
    };
    if let Some(name) = &args.interface {
        let info = iface_info(name).map_err(|e| e.to_string())?;
        let mac = args
            .mac
            .or(info.mac)
            .unwrap_or(MacAddr([0x02, 0, 0, 0x53, 0x5a, 0x50]));
        let p = params6(args, mac)?;
        let mut t = dhcp6::UdpTransport6::device(name).map_err(|e| {
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                format!("{name}: {e} (binding port 546 needs root or CAP_NET_BIND_SERVICE; --relay6 does not)")
            } else {
                format!("{name}: {e}")
            }
        })?;
        let heading = format!("DHCPv6 {mode} on {name} as {}", hex_duid(&p.duid));
        return dhcp6::run(&mut t, &p, timing, args.release, heading, name.clone())
            .map_err(|e| format!("{name}: {e}"));
    }
    let server = args.relay6.ok_or("give --interface or --relay6")?;
    let bind = args.bind.unwrap_or_else(|| {
        if server.ip().is_loopback() {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0))
        } else {
            SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
        }
    });
    let mut t =
        dhcp6::UdpTransport6::relay(bind, server).map_err(|e| format!("bind {bind}: {e}"))?;
    let bound = t.local_addr().map_err(|e| e.to_string())?;
    let mac = args.mac.unwrap_or(MacAddr([0x02, 0, 0, 0x53, 0x5a, 0x50]));
    let mut p = params6(args, mac)?;
    p.relay = Some(dhcp6::Relay6 {
        link_address: args.link_address,
        peer_address: dhcp6::link_local_of(mac),
        interface_id: args.circuit_id.as_ref().map(|s| s.as_bytes().to_vec()),
        remote_id: args.remote_id.as_ref().map(|s| s.as_bytes().to_vec()),
    });
    let heading = format!(
        "DHCPv6 {mode} via relay {bound} to {server} (link-address {}) as {}",
        args.link_address,
        hex_duid(&p.duid)
    );
    dhcp6::run(&mut t, &p, timing, args.release, heading, bound.to_string())
        .map_err(|e| format!("relay6 {server}: {e}"))
}

fn hex_duid(d: &[u8]) -> String {
    format!("duid {}", hex::encode(d))
}

fn restconf_params(args: &ProbeArgs) -> Result<restconf::RestconfParams, String> {
    let manufacturer_ca = match &args.manufacturer_ca {
        Some(p) => signed::read_anchors(p).map_err(|e| format!("--manufacturer-ca {e}"))?,
        None => Vec::new(),
    };
    Ok(restconf::RestconfParams {
        serial: args.serial.clone(),
        client_cert: args.client_cert.clone().zip(args.client_key.clone()),
        hw_model: args.hw_model.clone(),
        os_name: args.os_name.clone(),
        os_version: args.os_version.clone(),
        xml: args.xml,
        max_hops: args.max_hops,
        timeout: args.restconf_timeout,
        source: None,
        manufacturer_ca,
    })
}

/// The RESTCONF walk from `uris`, its connections made from `source` when given; prints it
/// unless `json` (the caller prints then).
fn follow(
    args: &ProbeArgs,
    uris: &[String],
    source: Option<IpAddr>,
) -> Result<restconf::RestconfReport, String> {
    let start = uris
        .iter()
        .map(|u| restconf::Target::parse(u))
        .collect::<Result<Vec<_>, _>>()?;
    let params = restconf::RestconfParams {
        source,
        ..restconf_params(args)?
    };
    let report = restconf::run(&start, &params)?;
    if !args.json {
        print!("{}", report.render_text());
    }
    Ok(report)
}

/// `sztp-redirector probe`: returns the process exit code.
pub fn main(args: ProbeArgs) -> i32 {
    if let Some(dir) = &args.bundle {
        return signed::bundle_main(dir, args.serial.as_deref(), args.manufacturer_ca.as_deref());
    }
    if args.is_dhcp6() {
        return match probe6(&args) {
            Ok(report) => {
                if args.json {
                    // as for DHCPv4: the server chose the text, escape what serde_json leaves
                    match crate::text::to_json_string(&report.to_json()) {
                        Ok(j) => println!("{j}"),
                        Err(e) => {
                            eprintln!("probe: {e}");
                            return 1;
                        }
                    }
                } else {
                    print!("{}", report.render_text());
                }
                for w in report.warnings() {
                    eprintln!("warning: {w}");
                }
                report.exit_code()
            }
            Err(e) => {
                eprintln!("probe: {e}");
                1
            }
        };
    }
    if args.dns_server.is_some() || args.mdns.is_some() {
        let report = dns::run(
            args.serial.as_deref(),
            args.domain.as_deref(),
            args.dns_server,
            args.mdns.as_deref(),
            args.wait,
        );
        if args.json {
            println!("{}", report.to_json());
        } else {
            print!("{}", report.render_text());
        }
        return report.exit_code();
    }
    if let Some(url) = &args.restconf {
        return match follow(&args, std::slice::from_ref(url), None) {
            Ok(r) => {
                if args.json {
                    match crate::text::to_json_string(
                        &serde_json::json!({ "restconf": r.to_json() }),
                    ) {
                        Ok(j) => println!("{j}"),
                        Err(e) => {
                            eprintln!("probe: {e}");
                            return 1;
                        }
                    }
                }
                r.exit_code()
            }
            Err(e) => {
                eprintln!("probe: {e}");
                1
            }
        };
    }
    match probe(&args) {
        Ok(report) => {
            if !args.json {
                print!("{}", report.render_text());
            }
            for w in report.warnings() {
                eprintln!("warning: {w}");
            }
            let mut code = report.exit_code();
            let mut json = report.to_json();
            if args.follow && code == 0 {
                let uris = report.redirect().map(|r| r.uris).unwrap_or_default();
                if uris.is_empty() {
                    eprintln!("probe: no option 143 in the answer: nothing to follow");
                    code = 2;
                } else {
                    let source = args
                        .from_lease
                        .then(|| report.leased())
                        .flatten()
                        .map(IpAddr::V4);
                    match follow(&args, &uris, source) {
                        Ok(r) => {
                            code = r.exit_code();
                            json["restconf"] = r.to_json();
                        }
                        Err(e) => {
                            eprintln!("probe: {e}");
                            code = 1;
                        }
                    }
                }
            }
            if args.json {
                // serde_json leaves DEL, C1 controls and bidi overrides raw: the server chose them
                match crate::text::to_json_string(&json) {
                    Ok(j) => println!("{j}"),
                    Err(e) => {
                        eprintln!("probe: {e}");
                        return 1;
                    }
                }
            }
            code
        }
        Err(e) => {
            eprintln!("probe: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_client_ids() {
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("2h").is_err());
        assert_eq!(parse_client_id("0x01aa").unwrap(), [1, 0xaa]);
        assert_eq!(parse_client_id("dev").unwrap(), b"dev");
        assert!(parse_client_id("0x1").is_err());
    }
}
