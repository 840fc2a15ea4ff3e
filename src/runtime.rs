//! What every service shares at run time: the published snapshot, the event sink, shutdown
//!
//! Every service (dhcp4, dhcp6, dns, mdns, restconf, status) has the same shape, after
//! hickory-dns's `register_socket` and mini-redis's `run(listener, shutdown)`:
//!
//! - `bind(&Config) -> io::Result<Bound…>`: opens every socket the file enables for that
//!   service (std sockets, already bound, so tests can hand in `127.0.0.1:0`), and logs one
//!   `listening for <service> on <where> <addr>` line per socket. Synchronous: the daemon calls
//!   every service's `bind` before any thread exists, then drops privileges once, then serves.
//!   Durable state (a lease journal) is opened by `serve`, not `bind`: on a reload that rebinds
//!   a service, the new instance starts only after the old one has closed its journal.
//! - `serve(bound, ctx: ServiceContext, token: CancellationToken) -> io::Result<()>`: runs as
//!   one task in the daemon's one `JoinSet` until `token` is cancelled, then drains (in-flight
//!   lease commits finish, replies leave) and returns `Ok`. An `Err` means the service could
//!   not go on (the daemon then stops with exit code 1). It reads configuration only through
//!   [`Published::load`] (never another service's lock), once per request, and reports every
//!   device step through [`Events::emit`].
//!
//! DHCP services also register a read-only view of their leases in the context's
//! [`LeaseRegistry`], through which the redirect server learns what DHCP knows about the
//! source address of a request ([`LeaseFacts`]).
//!
//! Adding a service to the daemon (`src/daemon.rs`) is three edits, each marked there with
//! `ADD A SERVICE`: a field in `daemon::Bound`, a [`ServiceName`] variant with its binding key
//! (what, when changed by a reload, needs new sockets), and one arm that spawns its `serve`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::devices::DeviceTable;
use crate::journal::{DeviceEvent, DeviceJournal};
use crate::metrics::Metrics;
use crate::netif::Interfaces;
use crate::policy::{ClientId, MacAddr, Policy};

/// A validated configuration and everything derived from it, published as one unit: a
/// service that loads it sees a Config and a Policy from the same file.
#[derive(Debug)]
pub struct Snapshot {
    /// The checked configuration.
    pub config: Arc<Config>,
    /// The one Policy built from it.
    pub policy: Arc<Policy>,
    /// 0 for the file read at start, +1 per successful reload.
    pub generation: u64,
    /// Facts (addresses, MAC, index) of every interface the file names, read from the system
    /// when this snapshot was made: at start and on every SIGHUP. Empty in [`Snapshot::new`].
    pub interfaces: Arc<Interfaces>,
    /// `[owner]` material (key, certificates, vouchers, trust anchors) read with this
    /// configuration; `None` without `[owner]` (every answer unsigned).
    pub owner: Option<Arc<crate::owner::OwnerMaterial>>,
}

impl Snapshot {
    /// The snapshot of `config`, with its Policy and no interface facts.
    pub fn new(config: Config, generation: u64) -> Snapshot {
        let policy = Arc::new(config.policy());
        Snapshot {
            config: Arc::new(config),
            policy,
            generation,
            interfaces: Arc::new(Interfaces::new()),
            owner: None,
        }
    }

    /// The same snapshot with `owner` as its signing material.
    pub fn with_owner(mut self, owner: Option<crate::owner::OwnerMaterial>) -> Snapshot {
        self.owner = owner.map(Arc::new);
        self
    }

    /// The same snapshot with `interfaces` as its interface facts.
    pub fn with_interfaces(mut self, interfaces: Interfaces) -> Snapshot {
        self.interfaces = Arc::new(interfaces);
        self
    }

    /// The snapshot of `config` with the current facts of every interface it names
    /// ([`Config::interface_names`]), read from the system now.
    pub fn read(config: Config, generation: u64) -> Snapshot {
        let interfaces = crate::netif::read_interfaces(config.interface_names());
        Snapshot::new(config, generation).with_interfaces(interfaces)
    }
}

/// The currently published [`Snapshot`]; cheap to clone, lock-free to read.
#[derive(Clone, Debug)]
pub struct Published(Arc<ArcSwap<Snapshot>>);

impl Published {
    /// Publishes `first`.
    pub fn new(first: Snapshot) -> Published {
        Published(Arc::new(ArcSwap::from_pointee(first)))
    }

    /// The snapshot in force now. Hold the `Arc` for one request, not longer: a reload
    /// publishes a new one.
    pub fn load(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }

    /// Makes `next` the snapshot every service reads from now on.
    pub fn publish(&self, next: Snapshot) {
        self.0.store(Arc::new(next));
    }
}

/// Where services report device steps: the device journal and the device table the status
/// server reads. Cloning shares the sink. Emitting never blocks the packet path: both only
/// queue (and drop and count when their thread is behind).
#[derive(Clone, Default)]
pub struct Events {
    journal: Option<Arc<DeviceJournal>>,
    table: Option<Arc<DeviceTable>>,
}

impl Events {
    /// A sink writing to `journal` (none: events are only counted by the services).
    pub fn new(journal: Option<Arc<DeviceJournal>>) -> Events {
        Events {
            journal,
            table: None,
        }
    }

    /// This sink also folding every event into `table` (when the status server is on).
    pub fn with_table(mut self, table: Arc<DeviceTable>) -> Events {
        self.table = Some(table);
        self
    }

    /// Records one device step.
    pub fn emit(&self, ev: &DeviceEvent) {
        if let Some(j) = &self.journal {
            j.record(ev);
        }
        if let Some(t) = &self.table {
            t.submit(ev);
        }
    }

    /// [`Events::emit`] for a caller done with `ev`: the device table takes it without a copy.
    pub fn emit_owned(&self, ev: DeviceEvent) {
        if let Some(j) = &self.journal {
            j.record(&ev);
        }
        if let Some(t) = &self.table {
            t.submit_owned(ev);
        }
    }

    /// The device table behind this sink, if any.
    pub fn table(&self) -> Option<&Arc<DeviceTable>> {
        self.table.as_ref()
    }

    /// The device journal behind this sink, if any.
    pub fn journal(&self) -> Option<&Arc<DeviceJournal>> {
        self.journal.as_ref()
    }
}

/// What the daemon hands every service's `serve`.
#[derive(Clone)]
pub struct ServiceContext {
    /// The configuration in force (reloaded on SIGHUP).
    pub published: Published,
    /// The device-event sink.
    pub events: Events,
    /// `appliance.state-dir` as it was at start (a change needs a restart).
    pub state_dir: PathBuf,
    /// The DHCP services' lease views, one registry shared by every service of the daemon.
    pub leases: LeaseRegistry,
    /// The metrics registry the status server encodes; see `metrics` for how to add counters.
    pub metrics: Metrics,
}

impl ServiceContext {
    /// A context with an empty [`LeaseRegistry`]; `metrics` is the registry the status
    /// server encodes (share one [`Metrics`] between the daemon's contexts).
    pub fn new(
        published: Published,
        events: Events,
        state_dir: PathBuf,
        metrics: Metrics,
    ) -> ServiceContext {
        ServiceContext {
            published,
            events,
            state_dir,
            leases: LeaseRegistry::default(),
            metrics,
        }
    }
}

/// What a DHCP service learnt about the device holding an address, so that rules written for
/// DHCP (`match.mac`, `match.vendor-class`, …) apply to that device's RESTCONF requests too
/// (which carry only a TCP source address).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseFacts {
    /// The lease's hardware address (DHCPv4 chaddr, or the MAC behind a DHCPv6 DUID).
    pub mac: Option<MacAddr>,
    /// DHCPv4 option 61 or the DHCPv6 DUID of the lease.
    pub client_id: Option<ClientId>,
    /// DHCPv4 option 60 / the first DHCPv6 option 16 vendor-class-data the device last sent.
    pub vendor_class: Option<String>,
    /// The IANA enterprise number of DHCPv6 option 16.
    pub enterprise_number: Option<u32>,
    /// DHCPv4 option 77 / DHCPv6 option 15 entries the device last sent.
    pub user_class: Vec<String>,
    /// Relay circuit-id (DHCPv4 option 82.1) / DHCPv6 interface-id seen with its last request.
    pub circuit_id: Option<Vec<u8>>,
    /// Relay remote-id (DHCPv4 option 82.2 / DHCPv6 option 37) seen with its last request.
    pub remote_id: Option<Vec<u8>>,
    /// The appliance interface the lease was served on.
    pub interface: Option<String>,
}

/// A read-only view of one DHCP service's lease state: the active lease (bound, not expired)
/// on an address.
///
/// Called once per RESTCONF request, from any thread: it must be cheap (a hash lookup under
/// the service's own lock, no I/O, no await) and must not hold that lock after returning.
pub trait LeaseLookup: Send + Sync + 'static {
    /// The facts of the active lease on `addr`, `None` when no lease is active there.
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

/// A fixed table (tests).
impl LeaseLookup for std::collections::HashMap<IpAddr, LeaseFacts> {
    fn lease_facts(&self, addr: IpAddr) -> Option<LeaseFacts> {
        self.get(&addr).cloned()
    }
}

type Views = Vec<(u64, &'static str, Arc<dyn LeaseLookup>)>;

/// The lease views of the DHCP services running now (address → [`LeaseFacts`]).
///
/// A DHCP service registers one view when it starts serving and keeps the returned
/// [`LeaseRegistration`] for as long as it serves: dropping it (the service stopped, or was
/// stopped by a reload) removes the view, so a service turned off and on again registers its
/// new instance. Lookups are lock-free (the list is behind an `ArcSwap`) and ask each view in
/// registration order; the first that knows the address answers (DHCPv4 and DHCPv6 leases
/// never share an address). Cloning shares the registry.
#[derive(Clone, Default)]
pub struct LeaseRegistry {
    views: Arc<ArcSwap<Views>>,
    next_id: Arc<AtomicU64>,
}

impl std::fmt::Debug for LeaseRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.views.load().iter().map(|(_, n, _)| *n).collect();
        f.debug_struct("LeaseRegistry")
            .field("views", &names)
            .finish()
    }
}

impl LeaseRegistry {
    /// Adds `view` under `service` (`"dhcp4"`, `"dhcp6"`, for logs); it stays until the
    /// returned registration is dropped.
    pub fn register(&self, service: &'static str, view: Arc<dyn LeaseLookup>) -> LeaseRegistration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.views.rcu(|v| {
            let mut v = Views::clone(v);
            v.push((id, service, Arc::clone(&view)));
            v
        });
        LeaseRegistration {
            registry: self.clone(),
            id,
        }
    }

    /// The services with a view registered now, in registration order.
    pub fn services(&self) -> Vec<&'static str> {
        self.views.load().iter().map(|(_, n, _)| *n).collect()
    }
}

impl LeaseLookup for LeaseRegistry {
    fn lease_facts(&self, addr: IpAddr) -> Option<LeaseFacts> {
        self.views
            .load()
            .iter()
            .find_map(|(_, _, view)| view.lease_facts(addr))
    }
}

/// Keeps a view in its [`LeaseRegistry`]; dropping it removes the view.
#[must_use = "the view is removed when the registration is dropped"]
pub struct LeaseRegistration {
    registry: LeaseRegistry,
    id: u64,
}

impl Drop for LeaseRegistration {
    fn drop(&mut self) {
        let id = self.id;
        self.registry.views.rcu(|v| {
            v.iter()
                .filter(|(i, _, _)| *i != id)
                .cloned()
                .collect::<Views>()
        });
    }
}

/// Where a service's `now` (Unix seconds) comes from: the wall clock, or tokio's clock so a
/// test with `tokio::time::pause` can make leases expire and timers fire without waiting.
#[derive(Clone, Copy, Debug, Default)]
pub enum Clock {
    /// `SystemTime::now()`.
    #[default]
    System,
    /// `unix` at tokio instant `at`, moving with tokio's (pausable) clock.
    Tokio {
        /// Unix seconds at `at`.
        unix: u64,
        /// The tokio instant the clock was anchored.
        at: tokio::time::Instant,
    },
}

impl Clock {
    /// A clock that reads `unix` now and then moves with tokio's clock. Needs a runtime.
    pub fn tokio_at(unix: u64) -> Clock {
        Clock::Tokio {
            unix,
            at: tokio::time::Instant::now(),
        }
    }

    /// Unix seconds now (0 if the wall clock is before 1970).
    pub fn now(&self) -> u64 {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            Clock::Tokio { unix, at } => unix + at.elapsed().as_secs(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn view(addr: &str, vendor: &str) -> Arc<dyn LeaseLookup> {
        let facts = LeaseFacts {
            vendor_class: Some(vendor.into()),
            ..LeaseFacts::default()
        };
        Arc::new(HashMap::from([(addr.parse::<IpAddr>().unwrap(), facts)]))
    }

    fn vendor(r: &LeaseRegistry, addr: &str) -> Option<String> {
        r.lease_facts(addr.parse().unwrap())
            .and_then(|f| f.vendor_class)
    }

    #[test]
    fn views_answer_in_registration_order_until_their_registration_drops() {
        let registry = LeaseRegistry::default();
        assert_eq!(vendor(&registry, "192.0.2.7"), None);
        let v4 = registry.register("dhcp4", view("192.0.2.7", "first"));
        // a clone shares the registry (what every service's context holds)
        let shared = registry.clone();
        let v6 = shared.register("dhcp6", view("2001:db8::7", "v6"));
        let shadowed = shared.register("late", view("192.0.2.7", "second"));
        assert_eq!(registry.services(), ["dhcp4", "dhcp6", "late"]);
        assert_eq!(vendor(&registry, "192.0.2.7").as_deref(), Some("first"));
        assert_eq!(vendor(&registry, "2001:db8::7").as_deref(), Some("v6"));
        assert_eq!(vendor(&registry, "192.0.2.8"), None);
        // a stopped service's view goes; the next one answers
        drop(v4);
        assert_eq!(registry.services(), ["dhcp6", "late"]);
        assert_eq!(vendor(&registry, "192.0.2.7").as_deref(), Some("second"));
        drop(shadowed);
        drop(v6);
        assert!(registry.services().is_empty());
        assert_eq!(vendor(&shared, "2001:db8::7"), None);
    }
}
