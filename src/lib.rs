//! sztp-redirector: tells factory-fresh network devices where their owner's RFC 8572 bootstrap
//! server is, through every source a device may try.
//!
//! The one idea: every front end turns what it knows about a device into
//! [`policy::DeviceFacts`], asks the one [`policy::Policy`] where that device should go, and
//! renders the [`policy::Decision`] in its own wire format.
//!
//! Map of the crate:
//! - [`config`]: the TOML file (serde mirror with spans), its validation (all errors at once,
//!   `FILE:LINE:COL: key: message`) and the checked model;
//! - [`policy`]: device facts → first matching known device / rule → decision;
//! - [`sztp`]: SZTP wire specifics as pure functions (URI rules, bootstrap-server list, RFC 3396);
//! - [`owner`]: `[owner]` material (owner certificate, key, vouchers, trust anchors) loaded
//!   and checked, and the signed artifacts built from it (RFC 8572 §3, CMS via `cms`);
//!   [`sztp::signed`] reads them back as a device does (§5.4);
//! - [`bundle`]: removable-storage bundles (RFC 8572 §4.1) written and found;
//! - [`dhcp`]: the lease journal and, per protocol version, three layers: wire
//!   (`v4::wire`, `v4::reply`), logic (`v4::handler`, no sockets, clock or randomness) and I/O
//!   (`v4::server` with `v4::sockets` and `v4::frame`, the only DHCP code that touches
//!   sockets; `v4::frame` builds the Ethernet/IPv4/UDP frames sent straight to a client MAC);
//! - [`dns`]: `_sztp._tcp` SRV and `<serial>._sztp` TXT over unicast DNS (hickory-server) and
//!   mDNS (a small RFC 6762 responder on hickory-proto), in the same three layers;
//! - [`journal`]: the device journal (one JSON line per device step: DHCP, DNS);
//! - [`devices`]: the device table (events folded per device: stages, verdict, timeline);
//! - [`metrics`]: the Prometheus registry every service shares;
//! - [`notify`]: systemd's notify protocol (READY, WATCHDOG, STOPPING);
//! - [`status`]: the status server (`/`, `/metrics`, `/api/…`) and the `devices` command;
//! - [`runtime`]: what services share: the published snapshot (Config + Policy + interface
//!   facts), the event sink, the clock, the service shape (`bind` then `serve(bound, ctx,
//!   token)`);
//! - [`daemon`]: `bind` every service's sockets, drop privileges once, run every service in one
//!   `JoinSet` under one cancellation token (`Supervisor`), SIGHUP reload, SIGTERM/SIGINT drain,
//!   the state-dir lock;
//! - [`netif`]: interface facts (index, MAC, IPv4/IPv6 networks) read from the system;
//! - [`sys`]: dropping root to `appliance.user` keeping only the capabilities a reload needs
//!   (bounding set cleared, no-new-privs set), and SO_RCVBUFFORCE, through nix and caps (no
//!   `unsafe` anywhere in the crate);
//! - [`state_dir`]: state-dir opened without following links, checked, every state file
//!   opened under its descriptor;
//! - [`text`]: network text made safe to print (control characters, bidi overrides);
//! - [`ratelimit`]: rate-limited logging of faults that repeat per packet;
//! - [`udp_bind`]: server UDP ports bound so no other process shares them, rebindable on
//!   reload;
//! - [`probe`]: the client side, an SZTP device on a segment (operator's doctor and test client);
//! - [`cli`]: subcommands `run`, `check-config`, `leases`, `devices`, `probe`, `bundle`.
#![forbid(unsafe_code)]

pub mod bundle;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod devices;
pub mod dhcp;
pub mod dns;
pub mod journal;
pub mod metrics;
pub mod netif;
pub mod notify;
pub mod owner;
pub mod policy;
pub mod probe;
pub mod ratelimit;
pub mod restconf;
pub mod runtime;
pub mod state_dir;
pub mod status;
pub mod sys;
pub mod sztp;
#[cfg(test)]
mod testutil;
pub mod text;
pub mod udp_bind;

/// Exit code for a configuration error (EX_CONFIG).
pub const EXIT_CONFIG: i32 = 78;
