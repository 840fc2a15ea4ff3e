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
//! Adding a service to the daemon (`src/daemon.rs`) is three edits, each marked there with
//! `ADD A SERVICE`: a field in `daemon::Bound`, a [`ServiceName`] variant with its binding key
//! (what, when changed by a reload, needs new sockets), and one arm that spawns its `serve`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::devices::DeviceTable;
use crate::journal::{DeviceEvent, DeviceJournal};
use crate::metrics::Metrics;
use crate::netif::Interfaces;
use crate::policy::Policy;

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
    /// The metrics registry the status server encodes; see `metrics` for how to add counters.
    pub metrics: Metrics,
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
