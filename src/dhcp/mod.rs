//! DHCP: the lease store shared by both versions, and the DHCPv4 server

pub mod lease_store;
pub mod leases;
pub mod v4;
