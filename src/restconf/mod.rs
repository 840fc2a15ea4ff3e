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
//! What DHCP learnt about a device reaches the Policy through the daemon's
//! [`LeaseRegistry`](crate::runtime::LeaseRegistry): the source address of a request → its
//! lease's MAC, client-id/DUID, vendor class (see [`crate::runtime::LeaseFacts`]).

pub mod error;
pub mod handler;
pub mod identity;
pub mod media;
pub mod ratelimit;
pub mod router;
pub mod rpc;
pub mod server;
pub mod tls;

pub use router::{router, AppState, ConnInfo};
pub use server::{bind, bind_reusing, serve, BoundRestconf, PreparedTls, Stats, TlsHandle};

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
