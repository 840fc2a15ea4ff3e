//! The local redirect server: RESTCONF `get-bootstrapping-data` over HTTPS (RFC 8572 §7, RFC 8040)
//!
//! Three layers, as for every protocol:
//! - wire: [`media`] (content types, Accept), [`rpc`] (input parsing, output rendering),
//!   [`error`] (RFC 8040 `ietf-restconf:errors`), [`identity`] (serial from a client
//!   certificate or a Basic user name);
//! - logic: [`handler::handle`], pure: snapshot, request, meta, now → reply and device event;
//! - I/O: [`router`] (the axum `Router`: host-meta, RESTCONF root, the two operations, rate
//!   limit) and [`server`] (TLS accept loop over tokio-rustls and hyper-util: connection limit,
//!   timeouts, client certificates, drain on cancel), with [`tls`] for certificates (configured
//!   or generated, RSA or ECDSA chosen per handshake).
//!
//! What DHCP learnt about a device reaches the Policy through [`LeaseLookup`]: the source
//! address of a request → its lease's MAC, client-id/DUID, vendor class.

pub mod error;
pub mod handler;
pub mod identity;
pub mod media;
pub mod ratelimit;
pub mod router;
pub mod rpc;
pub mod server;
pub mod tls;

use std::collections::HashMap;
use std::net::IpAddr;

use crate::policy::{ClientId, MacAddr};

pub use router::{router, AppState, ConnInfo};
pub use server::{bind, serve, BoundRestconf, Stats};

/// RESTCONF root resource path (RFC 8040 §3.1), what host-meta names.
pub const RESTCONF_ROOT: &str = "/restconf";
/// `get-bootstrapping-data` operation resource (RFC 8572 §7.2, RFC 8040 §3.6).
pub const GET_BOOTSTRAPPING_DATA_PATH: &str =
    "/restconf/operations/ietf-sztp-bootstrap-server:get-bootstrapping-data";
/// `report-progress` operation resource.
pub const REPORT_PROGRESS_PATH: &str =
    "/restconf/operations/ietf-sztp-bootstrap-server:report-progress";
/// RFC 6415 host-meta, where a device discovers the RESTCONF root (RFC 8040 §3.1).
pub const HOST_META_PATH: &str = "/.well-known/host-meta";
/// The JRD form of host-meta (RFC 6415 §6).
pub const HOST_META_JSON_PATH: &str = "/.well-known/host-meta.json";

/// What the DHCP server learnt about the device holding an address, for rules written for
/// DHCP to apply to its RESTCONF requests too.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseFacts {
    /// The lease's hardware address (DHCPv4 chaddr, or the MAC behind a DHCPv6 DUID).
    pub mac: Option<MacAddr>,
    /// DHCPv4 option 61 or the DHCPv6 DUID of the lease.
    pub client_id: Option<ClientId>,
    /// DHCPv4 option 60 / DHCPv6 option 16 the device last sent.
    pub vendor_class: Option<String>,
    /// DHCPv4 option 77 / DHCPv6 option 15 entries the device last sent.
    pub user_class: Vec<String>,
    /// Relay circuit-id / interface-id seen with its last request.
    pub circuit_id: Option<Vec<u8>>,
    /// Relay remote-id seen with its last request.
    pub remote_id: Option<Vec<u8>>,
    /// The appliance interface the lease was served on.
    pub interface: Option<String>,
}

/// Read-only lookup of the DHCP lease currently bound to an address (v4 or v6). Implemented by
/// the DHCP services; called once per RESTCONF request, so it must be cheap and never block
/// on I/O.
pub trait LeaseLookup: Send + Sync + 'static {
    /// The facts of the active lease on `addr`, if any.
    fn lease_facts(&self, addr: IpAddr) -> Option<LeaseFacts>;
}

/// No DHCP service: nothing is known about any address.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoLeases;

impl LeaseLookup for NoLeases {
    fn lease_facts(&self, _addr: IpAddr) -> Option<LeaseFacts> {
        None
    }
}

/// A fixed table (tests, and a static map an operator might load).
impl LeaseLookup for HashMap<IpAddr, LeaseFacts> {
    fn lease_facts(&self, addr: IpAddr) -> Option<LeaseFacts> {
        self.get(&addr).cloned()
    }
}
