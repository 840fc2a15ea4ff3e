//! Interface facts read from the live system: name, index, MAC and IPv4/IPv6 networks
//!
//! Read once at start and again on every SIGHUP (into [`crate::runtime::Snapshot::interfaces`]),
//! never at validation time: `check-config` must not depend on the machine it runs on.

use std::collections::BTreeMap;
use std::io;

use ipnet::{Ipv4Net, Ipv6Net};
use pnet::datalink::{self, NetworkInterface};

use crate::policy::MacAddr;

/// What the services need to know about one interface.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IfaceInfo {
    /// Interface name, e.g. `eth1`.
    pub name: String,
    /// Kernel interface index (`if_nametoindex`), the scope id of its link-local addresses.
    pub index: u32,
    /// Ethernet address; `None` for loopback and tunnels (which report all zeros).
    pub mac: Option<MacAddr>,
    /// IPv4 networks (address + prefix length) configured on it, in kernel order.
    pub ipv4: Vec<Ipv4Net>,
    /// IPv6 networks configured on it (link-local included), in kernel order.
    pub ipv6: Vec<Ipv6Net>,
}

/// Interface facts by name.
pub type Interfaces = BTreeMap<String, IfaceInfo>;

pub(crate) fn find_interface(name: &str) -> io::Result<NetworkInterface> {
    datalink::interfaces()
        .into_iter()
        .find(|i| i.name == name)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no such interface {name:?}"),
            )
        })
}

fn facts(i: &NetworkInterface) -> IfaceInfo {
    let mut ipv4 = Vec::new();
    let mut ipv6 = Vec::new();
    for n in &i.ips {
        match n {
            pnet::ipnetwork::IpNetwork::V4(v4) => ipv4.extend(Ipv4Net::new(v4.ip(), v4.prefix())),
            pnet::ipnetwork::IpNetwork::V6(v6) => ipv6.extend(Ipv6Net::new(v6.ip(), v6.prefix())),
        }
    }
    IfaceInfo {
        name: i.name.clone(),
        index: i.index,
        // loopback and tunnels report the all-zero address: that is no MAC
        mac: i.mac.map(|m| MacAddr(m.octets())).filter(|m| m.0 != [0; 6]),
        ipv4,
        ipv6,
    }
}

/// Name, index, MAC and networks of `name`.
///
/// # Errors
/// `NotFound` with the message `no such interface "eth9"`.
pub fn iface_info(name: &str) -> io::Result<IfaceInfo> {
    find_interface(name).map(|i| facts(&i))
}

/// Facts of every interface in `names` that exists now (one getifaddrs walk); the missing ones
/// are left out, so a service serving a vanished interface finds no addresses for it.
pub fn read_interfaces<'a>(names: impl IntoIterator<Item = &'a str>) -> Interfaces {
    let wanted: std::collections::BTreeSet<&str> = names.into_iter().collect();
    if wanted.is_empty() {
        return Interfaces::new();
    }
    datalink::interfaces()
        .iter()
        .filter(|i| wanted.contains(i.name.as_str()))
        .map(|i| (i.name.clone(), facts(i)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn missing_interface_message() {
        let e = iface_info("eth9-nope").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!(e.to_string(), "no such interface \"eth9-nope\"");
    }

    #[test]
    fn loopback_facts() {
        let lo = iface_info("lo").unwrap();
        assert_eq!(lo.name, "lo");
        assert!(lo.index > 0);
        assert_eq!(lo.mac, None);
        assert!(lo.ipv4.iter().any(|n| n.addr() == Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn read_interfaces_skips_missing_ones() {
        let m = read_interfaces(["lo", "eth9-nope"]);
        assert_eq!(m.keys().collect::<Vec<_>>(), ["lo"]);
        assert_eq!(m["lo"], iface_info("lo").unwrap());
        assert!(read_interfaces([]).is_empty());
    }
}
