//! DHCP: the lease store shared by both versions, the DHCPv4 and the DHCPv6 server

pub mod lease_store;
pub mod leases;
pub mod v4;
pub mod v6;
