//! The SZTP record sets of one snapshot: per-zone SOA, NS, SRV and TXT, `[dns] hosts`, and the `.local` set for mDNS
//!
//! Everything here is pure: [`RecordSet::build`] turns a checked [`Config`] and its [`Policy`]
//! into owner name → records, once per published snapshot, and the unicast and mDNS handlers
//! only look names up. The `ci=` TXT values are the unsigned conveyed-information DER the
//! RESTCONF server also serves ([`crate::sztp::conveyed::unsigned_redirect`]).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use hickory_proto::rr::rdata::{A, AAAA, NS, SOA, SRV, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record};
use ipnet::IpNet;

use crate::config::Config;
use crate::policy::{Decision, DeviceFacts, Policy, Serial, Source, Via};
use crate::sztp::conveyed::{unsigned_redirect, ContentFormat, RedirectEntry};
use crate::sztp::uri::Host;
use crate::sztp::SztpUri;

/// The RFC 8552 underscored node name of SZTP (RFC 8572 §10.6).
pub const SZTP_LABEL: &str = "_sztp";
/// TTL of mDNS records that name or hold host names: SRV, A, AAAA (RFC 6762 §10), seconds.
pub const MDNS_HOST_TTL: u32 = 120;
/// TTL of other mDNS records: the per-device TXT (RFC 6762 §10, 75 minutes), seconds.
pub const MDNS_OTHER_TTL: u32 = 4500;
/// A TXT character-string holds at most this many octets (RFC 1035 §3.3).
pub const TXT_STRING_MAX: usize = 255;

/// SOA timers (RFC 1035 §3.3.13), seconds; only secondaries read them and we refuse AXFR, so
/// they are the conventional values.
const SOA_REFRESH: i32 = 3600;
const SOA_RETRY: i32 = 600;
const SOA_EXPIRE: i32 = 604_800;

/// What an owner name is, for the handlers' answers, events and counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// A zone apex: SOA and NS.
    Apex,
    /// `_sztp._tcp.<zone>`: the device-independent SRV set (RFC 8572 §4.2.3).
    Srv,
    /// `<serial>._sztp.<zone>`: one device's TXT set (RFC 8572 §4.2.2).
    Device(DeviceTxt),
    /// A/AAAA of a `[dns] hosts` entry, of the name server or of a synthesized SRV target.
    Host,
    /// A name with no records but names below it (RFC 8020 §2: NODATA, not NXDOMAIN).
    EmptyNonTerminal,
}

/// Who a device TXT set is for and what it says, for the device journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceTxt {
    /// The serial as configured in `[[device]]`.
    pub serial: String,
    /// The rule (or `device:<serial>`) that decided.
    pub rule: String,
    /// The URIs the redirect-information names, most preferred first.
    pub uris: Vec<String>,
    /// Whether the records carry signed data (`ci` signed, `oc`, `ov`) and why not.
    pub signing: crate::journal::Signing,
}

/// One device's TXT artifacts: `(key, value)` pairs in RFC 8572 §4.2.2 order, who they are
/// for, and whether they are signed.
type DeviceArtifacts = (String, DeviceTxt, Vec<(&'static str, Vec<u8>)>);

/// The records at one owner name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// What the name is.
    pub kind: NodeKind,
    /// Every record at this name, all types.
    pub records: Vec<Record>,
}

/// A zone we are authoritative for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    /// The zone's apex, e.g. `staging.example.com.`.
    pub origin: LowerName,
    /// The synthesized SOA, for the authority section of negative answers (RFC 2308 §3).
    pub soa: Record,
}

/// The `.local` records the mDNS responder owns (RFC 6762). The appliance's own
/// `<hostname>.local` A/AAAA are not here: they are the addresses of the interface a query
/// came in on, known only to the responder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalSet {
    /// `<hostname>.local.`
    pub host: Name,
    /// `_sztp._tcp.local.` SRV records, TTL 120, shared (no cache-flush bit: other responders
    /// may serve the same RRset, RFC 6762 §10.2).
    pub srv: Vec<Record>,
    /// `<serial>._sztp.local.` → the device's TXT records (TTL 4500, cache-flush: we alone own
    /// them) and who they are for.
    pub devices: HashMap<LowerName, (Vec<Record>, DeviceTxt)>,
    /// Synthesized `ip-….local.` names of IP-literal SRV targets → their A/AAAA (unique).
    pub names: HashMap<LowerName, Vec<Record>>,
}

/// Everything the DNS front ends answer from, for one snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordSet {
    /// Zones in `[dns] zones` order.
    pub zones: Vec<Zone>,
    /// Owner name → records for every unicast name, in or out of our zones (a `[dns] hosts`
    /// name outside every zone is answered without the AA bit, like a hosts file).
    pub nodes: HashMap<LowerName, Node>,
    /// The mDNS set.
    pub local: LocalSet,
    /// `[dns] forwarders`; empty: names outside our zones are REFUSED.
    pub forwarders: Vec<SocketAddr>,
    /// Sources allowed to use the forwarders: loopback and the DHCP subnets we serve.
    pub forward_from: Vec<IpNet>,
    /// `[dns] ttl`, seconds.
    pub ttl: u32,
}

/// `ip-192-0-2-10` / `ip-2001-db8-0-0-0-0-0-10`: a host label for an IP-literal SRV target
/// (RFC 2782: an SRV target is a name, never an address). IPv6 groups are written out in
/// full so the label never holds `--`.
pub fn ip_label(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => format!("ip-{}", a.to_string().replace('.', "-")),
        IpAddr::V6(a) => {
            let groups: Vec<String> = a.segments().iter().map(|g| format!("{g:x}")).collect();
            format!("ip-{}", groups.join("-"))
        }
    }
}

fn host_ip(host: &Host) -> Option<IpAddr> {
    match host {
        Host::Name(_) => None,
        Host::V4(a) => Some(IpAddr::V4(*a)),
        Host::V6(a) => Some(IpAddr::V6(*a)),
    }
}

fn address_record(name: &Name, ttl: u32, ip: IpAddr) -> Record {
    let data = match ip {
        IpAddr::V4(a) => RData::A(A(a)),
        IpAddr::V6(a) => RData::AAAA(AAAA(a)),
    };
    Record::from_rdata(name.clone(), ttl, data)
}

/// A fully qualified name from presentation text; config names are already checked.
fn fqdn(s: &str) -> Option<Name> {
    let mut n = Name::from_ascii(s).ok()?;
    n.set_fqdn(true);
    Some(n)
}

/// TXT RDATA for DNS-SD style `key=value` artifacts (RFC 6763 §6.3; RFC 8572 §4.2.2: `ci`,
/// and later `oc`/`ov`), one TXT record per key. A value longer than one character-string
/// continues in the following strings of the same record (digest §3.3: the RFC is silent;
/// interop-untested for values over 252 octets).
pub fn txt_artifacts(artifacts: &[(&str, &[u8])]) -> Vec<TXT> {
    artifacts
        .iter()
        .map(|(key, value)| {
            let mut whole = Vec::with_capacity(key.len() + 1 + value.len());
            whole.extend_from_slice(key.as_bytes());
            whole.push(b'=');
            whole.extend_from_slice(value);
            TXT::from_bytes(whole.chunks(TXT_STRING_MAX).collect())
        })
        .collect()
}

/// The redirect-information DER a device's `ci=` value carries: `address` and explicit `port`
/// of each target, no trust anchor (an untrusted source's anchor is discarded anyway).
pub fn conveyed_information(decision: &Decision) -> Option<Vec<u8>> {
    let entries: Vec<RedirectEntry> = decision
        .targets
        .iter()
        .map(RedirectEntry::from_uri)
        .collect();
    // encoding plain strings and integers into DER cannot fail below 4 GiB
    unsigned_redirect(ContentFormat::Json, &entries).ok()
}

/// A device's TXT artifacts: signed (redirect-information naming the decision's bootstrap
/// servers with their trust anchors, owner certificate, voucher) when `owner` has an unexpired
/// voucher for it, else the unsigned `ci` naming the decision's targets.
fn device_artifacts(
    owner: Option<&crate::owner::OwnerMaterial>,
    now: u64,
    serial: String,
    d: &Decision,
) -> Option<DeviceArtifacts> {
    use crate::journal::Signing;
    use crate::owner::Conveyed;
    let entries: Vec<RedirectEntry> = d
        .bootstrap_servers
        .iter()
        .map(|b| RedirectEntry::from_uri(&b.uri))
        .collect();
    let names: Vec<&str> = d
        .bootstrap_servers
        .iter()
        .map(|b| b.name.as_str())
        .collect();
    // DNS is an untrusted source: signed data whenever there is a voucher (RFC 8572 §4.2)
    let signed = crate::owner::conveyed(
        owner,
        true,
        Some(&serial),
        ContentFormat::Json,
        &entries,
        &names,
        now,
    )
    .ok()?;
    let who = |signing: Signing, uris: Vec<String>| DeviceTxt {
        serial: serial.clone(),
        rule: d.rule.clone(),
        uris,
        signing,
    };
    match signed {
        Conveyed::Signed(a) => Some((
            serial.clone(),
            who(
                Signing::Signed,
                d.bootstrap_servers
                    .iter()
                    .map(|b| b.uri.authority())
                    .collect(),
            ),
            vec![
                ("ci", a.conveyed_information),
                ("oc", a.owner_certificate),
                ("ov", a.ownership_voucher),
            ],
        )),
        Conveyed::Unsigned(_, reason) => {
            let der = conveyed_information(d)?;
            Some((
                serial.clone(),
                who(reason.into(), d.uris(crate::policy::UriForm::Authority)),
                vec![("ci", der)],
            ))
        }
    }
}

/// The Decision for a device about which nothing is known: what `_sztp._tcp` SRV advertises.
pub fn default_decision(policy: &Policy) -> Option<Decision> {
    let facts = DeviceFacts {
        source: Source::Dns,
        ..DeviceFacts::default()
    };
    policy.decide(&facts).filter(|d| !d.excluded())
}

/// The Decision for the device whose serial a TXT name carries.
pub fn device_decision(policy: &Policy, serial: &str) -> Option<Decision> {
    let facts = DeviceFacts {
        source: Source::Dns,
        serial: Some(Serial::claimed(serial)),
        ..DeviceFacts::default()
    };
    policy.decide(&facts).filter(|d| !d.excluded())
}

impl RecordSet {
    /// An empty set: every query is NXDOMAIN-free REFUSED (no zones, no forwarders).
    pub fn empty() -> RecordSet {
        RecordSet {
            zones: Vec::new(),
            nodes: HashMap::new(),
            local: LocalSet {
                host: Name::from_ascii("sztp-redirector.local.").unwrap_or_else(|_| Name::root()),
                srv: Vec::new(),
                devices: HashMap::new(),
                names: HashMap::new(),
            },
            forwarders: Vec::new(),
            forward_from: Vec::new(),
            ttl: 1800,
        }
    }

    /// Builds every record of `config` (whose Policy is `policy`). `soa_serial` is the zones'
    /// SOA serial (the caller makes it grow on each rebuild); `local_host` the one label of
    /// `<hostname>.local`.
    pub fn build(config: &Config, policy: &Policy, soa_serial: u32, local_host: &str) -> RecordSet {
        Self::build_signed(config, policy, None, 0, soa_serial, local_host)
    }

    /// [`RecordSet::build`] with the owner's signing material: a device whose serial has an
    /// unexpired voucher at `now` (Unix seconds) gets `ci=` signed redirect-information naming
    /// its bootstrap servers directly (with their trust anchors), `oc=` and `ov=` (RFC 8572
    /// §4.2.2); every other device the unsigned `ci=` as before. Devices are the `[[device]]`
    /// serials and, with `owner`, every serial that has a voucher.
    pub fn build_signed(
        config: &Config,
        policy: &Policy,
        owner: Option<&crate::owner::OwnerMaterial>,
        now: u64,
        soa_serial: u32,
        local_host: &str,
    ) -> RecordSet {
        let mut set = RecordSet::empty();
        set.local.host = fqdn(&format!("{local_host}.local"))
            .unwrap_or_else(|| Name::from_ascii("sztp-redirector.local.").unwrap_or_default());
        let Some(dns) = &config.dns else {
            return set;
        };
        let ttl = u32::try_from(dns.ttl.as_secs()).unwrap_or(u32::MAX);
        set.ttl = ttl;
        set.forwarders = dns.forwarders.clone();
        set.forward_from = vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        if let Some(d4) = &config.dhcp4 {
            set.forward_from
                .extend(d4.subnets.iter().map(|s| IpNet::V4(s.subnet)));
        }
        if let Some(d6) = &config.dhcp6 {
            set.forward_from
                .extend(d6.subnets.iter().map(|s| IpNet::V6(s.prefix)));
        }

        // [dns] hosts, wherever they are
        for (name, ips) in &dns.hosts {
            let Some(n) = fqdn(name) else { continue };
            let node = set.host_node(&n);
            node.records
                .extend(ips.iter().map(|ip| address_record(&n, ttl, *ip)));
        }

        let srv_decision = default_decision(policy);
        let mut serials: Vec<String> = policy
            .devices
            .iter()
            .filter_map(|d| d.serial.clone())
            .collect();
        if let Some(o) = owner {
            let extra: Vec<String> = o
                .vouchers
                .keys()
                .filter(|s| !serials.contains(s))
                .cloned()
                .collect();
            serials.extend(extra);
        }
        let ci: Vec<DeviceArtifacts> = serials
            .into_iter()
            .filter_map(|s| device_decision(policy, &s).map(|d| (s, d)))
            .filter_map(|(s, d)| device_artifacts(owner, now, s, &d))
            .collect();

        let ns_addrs: Vec<IpAddr> = dns
            .listen
            .iter()
            .map(|a| a.ip())
            .filter(|ip| !ip.is_unspecified())
            .collect();
        for zone in &dns.zones {
            let Some(origin) = fqdn(zone) else { continue };
            set.add_zone(&origin, soa_serial, &ns_addrs, srv_decision.as_ref(), &ci);
        }
        set.add_empty_non_terminals();
        set.build_local(srv_decision.as_ref(), &ci);
        set
    }

    fn host_node(&mut self, name: &Name) -> &mut Node {
        self.nodes.entry(LowerName::new(name)).or_insert(Node {
            kind: NodeKind::Host,
            records: Vec::new(),
        })
    }

    fn add_zone(
        &mut self,
        origin: &Name,
        soa_serial: u32,
        ns_addrs: &[IpAddr],
        srv: Option<&Decision>,
        ci: &[DeviceArtifacts],
    ) {
        let ttl = self.ttl;
        let ns_name = origin
            .prepend_label("ns")
            .unwrap_or_else(|_| origin.clone());
        let rname = origin
            .prepend_label("hostmaster")
            .unwrap_or_else(|_| origin.clone());
        let soa = Record::from_rdata(
            origin.clone(),
            ttl,
            RData::SOA(SOA::new(
                ns_name.clone(),
                rname,
                soa_serial,
                SOA_REFRESH,
                SOA_RETRY,
                SOA_EXPIRE,
                ttl,
            )),
        );
        let ns = Record::from_rdata(origin.clone(), ttl, RData::NS(NS(ns_name.clone())));
        self.nodes.insert(
            LowerName::new(origin),
            Node {
                kind: NodeKind::Apex,
                records: vec![soa.clone(), ns],
            },
        );
        self.zones.push(Zone {
            origin: LowerName::new(origin),
            soa,
        });
        if !ns_addrs.is_empty() {
            let node = self.host_node(&ns_name);
            if node.records.is_empty() {
                node.records = ns_addrs
                    .iter()
                    .map(|ip| address_record(&ns_name, ttl, *ip))
                    .collect();
            }
        }

        let Ok(sztp) = origin.prepend_label(SZTP_LABEL) else {
            return;
        };
        if let Some(d) = srv {
            // `_sztp._tcp.<zone>`: service label, then protocol label (RFC 2782)
            let Ok(srv_name) = origin
                .prepend_label("_tcp")
                .and_then(|n| n.prepend_label(SZTP_LABEL))
            else {
                return;
            };
            let mut records = Vec::new();
            for (i, uri) in d.targets.iter().enumerate() {
                let target = self.srv_target(uri, origin);
                let priority = u16::try_from(i).unwrap_or(u16::MAX);
                records.push(Record::from_rdata(
                    srv_name.clone(),
                    ttl,
                    RData::SRV(SRV::new(priority, 0, uri.effective_port(), target)),
                ));
            }
            self.nodes.insert(
                LowerName::new(&srv_name),
                Node {
                    kind: NodeKind::Srv,
                    records,
                },
            );
        }
        for (serial, who, artifacts) in ci {
            let Ok(owner) = sztp.prepend_label(serial.as_bytes()) else {
                continue;
            };
            let pairs: Vec<(&str, &[u8])> =
                artifacts.iter().map(|(k, v)| (*k, v.as_slice())).collect();
            let records = txt_artifacts(&pairs)
                .into_iter()
                .map(|t| Record::from_rdata(owner.clone(), ttl, RData::TXT(t)))
                .collect();
            self.nodes.insert(
                LowerName::new(&owner),
                Node {
                    kind: NodeKind::Device(who.clone()),
                    records,
                },
            );
        }
    }

    /// The SRV target for `uri` in `origin`: its host name, or for an IP literal a name
    /// synthesized in the zone whose A/AAAA we serve.
    fn srv_target(&mut self, uri: &SztpUri, origin: &Name) -> Name {
        match host_ip(&uri.host) {
            None => fqdn(&uri.host.to_string()).unwrap_or_else(Name::root),
            Some(ip) => {
                let Ok(name) = origin.prepend_label(ip_label(ip)) else {
                    return Name::root();
                };
                let ttl = self.ttl;
                let node = self.host_node(&name);
                let rec = address_record(&name, ttl, ip);
                if !node.records.contains(&rec) {
                    node.records.push(rec);
                }
                name
            }
        }
    }

    /// Every ancestor of a name inside its zone that has no records of its own.
    fn add_empty_non_terminals(&mut self) {
        let mut ents: HashSet<LowerName> = HashSet::new();
        for name in self.nodes.keys() {
            let Some(zone) = self.zone_of(name) else {
                continue;
            };
            let mut n = name.base_name();
            while zone.origin.zone_of(&n) && n != zone.origin {
                if !self.nodes.contains_key(&n) {
                    ents.insert(n.clone());
                }
                n = n.base_name();
            }
        }
        for n in ents {
            self.nodes.insert(
                n,
                Node {
                    kind: NodeKind::EmptyNonTerminal,
                    records: Vec::new(),
                },
            );
        }
    }

    fn build_local(&mut self, srv: Option<&Decision>, ci: &[DeviceArtifacts]) {
        let local = fqdn("local").unwrap_or_else(Name::root);
        let host = self.local.host.clone();
        if let Some(d) = srv {
            let srv_name =
                fqdn(&format!("{SZTP_LABEL}._tcp.local")).unwrap_or_else(|| local.clone());
            let mut records = Vec::new();
            if d.via == Via::RedirectServer {
                // the redirect server runs here: reachable at this host's link addresses
                let port = d.targets.first().map_or(443, SztpUri::effective_port);
                records.push(Record::from_rdata(
                    srv_name.clone(),
                    MDNS_HOST_TTL,
                    RData::SRV(SRV::new(0, 0, port, host.clone())),
                ));
            } else {
                for (i, uri) in d.targets.iter().enumerate() {
                    let target = match host_ip(&uri.host) {
                        None => fqdn(&uri.host.to_string()).unwrap_or_else(Name::root),
                        Some(ip) => {
                            let Ok(name) = local.prepend_label(ip_label(ip)) else {
                                continue;
                            };
                            let mut rec = address_record(&name, MDNS_HOST_TTL, ip);
                            rec.mdns_cache_flush = true;
                            let e = self.local.names.entry(LowerName::new(&name)).or_default();
                            if !e.contains(&rec) {
                                e.push(rec);
                            }
                            name
                        }
                    };
                    records.push(Record::from_rdata(
                        srv_name.clone(),
                        MDNS_HOST_TTL,
                        RData::SRV(SRV::new(
                            u16::try_from(i).unwrap_or(u16::MAX),
                            0,
                            uri.effective_port(),
                            target,
                        )),
                    ));
                }
            }
            self.local.srv = records;
        }
        let Ok(sztp) = local.prepend_label(SZTP_LABEL) else {
            return;
        };
        for (serial, who, artifacts) in ci {
            let Ok(owner) = sztp.prepend_label(serial.as_bytes()) else {
                continue;
            };
            let pairs: Vec<(&str, &[u8])> =
                artifacts.iter().map(|(k, v)| (*k, v.as_slice())).collect();
            let records = txt_artifacts(&pairs)
                .into_iter()
                .map(|t| {
                    let mut r = Record::from_rdata(owner.clone(), MDNS_OTHER_TTL, RData::TXT(t));
                    r.mdns_cache_flush = true;
                    r
                })
                .collect();
            self.local
                .devices
                .insert(LowerName::new(&owner), (records, who.clone()));
        }
    }

    /// The most specific of our zones that contains `name`.
    pub fn zone_of(&self, name: &LowerName) -> Option<&Zone> {
        self.zones
            .iter()
            .filter(|z| z.origin.zone_of(name))
            .max_by_key(|z| z.origin.num_labels())
    }

    /// A/AAAA records at `name`, for additional sections.
    pub fn addresses(&self, name: &LowerName) -> impl Iterator<Item = &Record> {
        self.nodes
            .get(name)
            .into_iter()
            .flat_map(|n| n.records.iter())
            .filter(|r| matches!(r.data, RData::A(_) | RData::AAAA(_)))
    }

    /// Whether `ip` may use the forwarders (no open recursion).
    pub fn may_forward(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        !self.forwarders.is_empty() && self.forward_from.iter().any(|n| n.contains(&ip))
    }
}

/// Whether a name carries the `_sztp` label anywhere: such names carry serial numbers and are
/// never forwarded (digest §3.6).
pub fn is_sztp_name(name: &LowerName) -> bool {
    Name::from(name.clone())
        .iter()
        .any(|l| l.eq_ignore_ascii_case(SZTP_LABEL.as_bytes()))
}

/// The serial of a `<serial>._sztp.<zone>` name in `zone`, when the name has that shape.
pub fn serial_of(name: &LowerName, zone: &LowerName) -> Option<String> {
    let n = Name::from(name.clone());
    let labels: Vec<&[u8]> = n.iter().collect();
    let zone_labels = usize::from(zone.num_labels());
    if labels.len() != zone_labels + 2 || !labels[1].eq_ignore_ascii_case(SZTP_LABEL.as_bytes()) {
        return None;
    }
    Some(String::from_utf8_lossy(labels[0]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use std::path::Path;

    pub(crate) const CONFIG: &str = r#"
[[bootstrap-server]]
name = "owner-primary"
uri = "https://sztp.owner.example.com"

[[bootstrap-server]]
name = "owner-backup"
uri = "https://[2001:db8::10]:8443"

[[rule]]
name = "default"
redirect-to = ["owner-primary", "owner-backup"]

[[device]]
serial = "SN123"
redirect-to = ["owner-primary"]

[dns]
listen = ["127.0.0.1:5300"]
zones = ["example.com"]
ttl = "1h"
hosts = { "sztp.owner.example.com" = ["192.0.2.10"] }
"#;

    fn set(text: &str) -> RecordSet {
        let c = load_str(Path::new("t.toml"), text).unwrap();
        RecordSet::build(&c, &c.policy(), 7, "appliance")
    }

    fn lname(s: &str) -> LowerName {
        LowerName::new(&Name::from_ascii(s).unwrap())
    }

    #[test]
    fn tv8_txt_rdata_is_ci_and_the_tv5_der() {
        let s = set(CONFIG);
        let node = &s.nodes[&lname("sn123._sztp.example.com.")];
        let NodeKind::Device(d) = &node.kind else {
            panic!("{node:?}")
        };
        assert_eq!(d.serial, "SN123");
        assert_eq!(node.records.len(), 1);
        let RData::TXT(t) = &node.records[0].data else {
            panic!()
        };
        assert_eq!(t.txt_data.len(), 1);
        let s0 = &t.txt_data[0];
        assert_eq!(s0.len(), 142);
        assert_eq!(&s0[..3], b"ci=");
        // TV5: the one-server JSON redirect, 139 octets
        assert_eq!(&s0[3..6], &[0x30, 0x81, 0x88]);
        let entries = crate::sztp::conveyed::decode_unsigned_redirect(&s0[3..]).unwrap();
        assert_eq!(entries[0].address, "sztp.owner.example.com");
        assert_eq!(entries[0].port, 443);
        assert_eq!(node.records[0].ttl, 3600);
    }

    #[test]
    fn srv_in_preference_order_with_synthesized_ip_target() {
        let s = set(CONFIG);
        let node = &s.nodes[&lname("_sztp._tcp.example.com.")];
        assert_eq!(node.kind, NodeKind::Srv);
        let srv: Vec<String> = node.records.iter().map(|r| r.data.to_string()).collect();
        assert_eq!(
            srv,
            [
                "0 0 443 sztp.owner.example.com.",
                "1 0 8443 ip-2001-db8-0-0-0-0-0-10.example.com."
            ]
        );
        let a: Vec<String> = s
            .addresses(&lname("ip-2001-db8-0-0-0-0-0-10.example.com."))
            .map(|r| r.data.to_string())
            .collect();
        assert_eq!(a, ["2001:db8::10"]);
        assert_eq!(s.addresses(&lname("sztp.owner.example.com.")).count(), 1);
        // the name server has the listen address; ENTs exist for _tcp and _sztp
        assert_eq!(s.addresses(&lname("ns.example.com.")).count(), 1);
        assert_eq!(
            s.nodes[&lname("_tcp.example.com.")].kind,
            NodeKind::EmptyNonTerminal
        );
        assert_eq!(
            s.nodes[&lname("_sztp.example.com.")].kind,
            NodeKind::EmptyNonTerminal
        );
    }

    #[test]
    fn redirect_server_targets_the_advertised_uri_and_local_host() {
        let text = format!(
            "{CONFIG}\n[redirect-server]\nlisten = [\"127.0.0.1:8443\"]\nadvertise = \"https://192.0.2.1:8443\"\n"
        );
        let s = set(&text);
        let srv = &s.nodes[&lname("_sztp._tcp.example.com.")].records;
        assert_eq!(srv.len(), 1);
        assert_eq!(
            srv[0].data.to_string(),
            "0 0 8443 ip-192-0-2-1.example.com."
        );
        assert_eq!(s.local.srv.len(), 1);
        assert_eq!(s.local.srv[0].data.to_string(), "0 0 8443 appliance.local.");
        assert!(!s.local.srv[0].mdns_cache_flush);
        assert_eq!(s.local.srv[0].ttl, MDNS_HOST_TTL);
        let (txt, who) = &s.local.devices[&lname("SN123._sztp.local.")];
        assert_eq!(who.uris, ["https://192.0.2.1:8443"]);
        assert!(txt[0].mdns_cache_flush);
        assert_eq!(txt[0].ttl, MDNS_OTHER_TTL);
    }

    #[test]
    fn long_values_continue_in_further_strings() {
        let v = vec![7u8; 600];
        let t = txt_artifacts(&[("ci", &v), ("oc", b"x")]);
        assert_eq!(t.len(), 2);
        let lens: Vec<usize> = t[0].txt_data.iter().map(|s| s.len()).collect();
        assert_eq!(lens, [255, 255, 93]);
        assert_eq!(&*t[1].txt_data[0], b"oc=x");
    }

    #[test]
    fn names_and_labels() {
        assert_eq!(ip_label("192.0.2.10".parse().unwrap()), "ip-192-0-2-10");
        assert!(is_sztp_name(&lname("X._SZTP.other.test.")));
        assert!(!is_sztp_name(&lname("www.other.test.")));
        assert_eq!(
            serial_of(&lname("Ab1._sztp.example.com."), &lname("example.com.")).as_deref(),
            Some("ab1")
        );
        assert_eq!(
            serial_of(&lname("a.b._sztp.example.com."), &lname("example.com.")),
            None
        );
        let s = set(CONFIG);
        assert!(s.forwarders.is_empty());
        assert!(
            !s.may_forward("127.0.0.1".parse().unwrap()),
            "no forwarders: nothing leaves"
        );
    }
}
