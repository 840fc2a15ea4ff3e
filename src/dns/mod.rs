//! DNS front end (RFC 8572 §4.2): SZTP SRV/TXT over unicast DNS and mDNS, in three layers
//!
//! - [`records`]: Config + Policy → owner names and records, rebuilt once per published
//!   snapshot (pure);
//! - [`handler`] (unicast) and [`mdns`] (its `handle`): a decoded query → an answer, no
//!   socket, clock or randomness;
//! - [`server`] (UDP loop, TCP on hickory-server, forwarding) and the socket loop in
//!   [`mdns`]: the only DNS code that touches sockets. Two services in the daemon, each
//!   `bind(&Config)` then `serve(bound, ctx, token)`: unicast DNS ([`bind`], [`serve`]) and
//!   the mDNS responder ([`mdns::bind`], [`mdns::serve`]), so a reload that changes one's
//!   sockets leaves the other running.

pub mod handler;
pub mod mdns;
pub mod records;
pub mod server;

pub use server::{bind, bind_reusing, serve, BoundDns, DnsStats, Listeners};
