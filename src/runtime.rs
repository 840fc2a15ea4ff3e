//! What every service shares at run time: the published snapshot, the event sink, shutdown
//!
//! Every service (dhcp4, dhcp6, dns, mdns, restconf, status) has the same shape, after
//! hickory-dns's `register_socket` and mini-redis's `run(listener, shutdown)`:
//!
//! - `bind(&Config) -> io::Result<Bound…>`: opens every socket the file enables for that
//!   service (std sockets, already bound, so tests can hand in `127.0.0.1:0`). The daemon calls
//!   every service's `bind` first, then drops privileges once, then serves.
//! - `serve(bound, ctx: ServiceContext, token: CancellationToken)`: runs in the daemon's one
//!   `JoinSet` until `token` is cancelled, then drains (in-flight lease commits finish) and
//!   returns. It reads configuration only through [`Published::load`] (never another
//!   service's lock) and reports every device step through [`Events::emit`].

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::devices::DeviceTable;
use crate::journal::{DeviceEvent, DeviceJournal};
use crate::metrics::Metrics;
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
}

impl Snapshot {
    /// The snapshot of `config`, with its Policy.
    pub fn new(config: Config, generation: u64) -> Snapshot {
        let policy = Arc::new(config.policy());
        Snapshot {
            config: Arc::new(config),
            policy,
            generation,
        }
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
