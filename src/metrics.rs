//! Prometheus metrics: one registry the services share, encoded by the status server
//!
//! Names start with `sztp_`; counters end in `_total` (prometheus-client appends it). The
//! families are declared here, once, so the names stay one list (README "Metrics"):
//!
//! | family | labels | from |
//! |---|---|---|
//! | `sztp_<svc>_requests_total`, `sztp_<svc>_replies_total` | – | each service |
//! | `sztp_<svc>_dropped_total` | `reason` | each service |
//! | `sztp_dhcp_redirect_option_total` | `proto`, `option`, `outcome` | device events |
//! | `sztp_policy_decisions_total` | `proto`, `rule` | device events |
//! | `sztp_device_events_total` | `proto`, `event` | device events |
//! | `sztp_dhcp_pool_size`, `_used`, `_free` | `proto`, `subnet`, `pool` | the lease tables |
//! | `sztp_lease_commits_total`, `sztp_lease_fsync_seconds` | `proto` | the lease writers |
//! | `sztp_dns_answers_total` | `transport`, `rcode` | the DNS and mDNS services |
//! | `sztp_{dns,mdns}_srv_queries_total`, `_txt_queries_total`, `sztp_dns_forwarded_total`, `_truncated_total` | `answer` (TXT) | [`DnsSource`] |
//! | `sztp_restconf_answers_total` | `rpc`, `status` | the redirect server |
//! | `sztp_device_journal_dropped_total`, `sztp_device_table_dropped_total`, `sztp_device_table_devices`, `sztp_device_table_evicted_total` | – | journal and table |
//!
//! How a service adds its counters (a small edit):
//! - counters of its own loop: take `ctx.metrics.service(Service::Dns)` (a [`ServiceCounters`]:
//!   `requests`, `replies`, `dropped` by reason) and increment them; they are registered once,
//!   here, for every service;
//! - answers by code: `ctx.metrics.dns_answers` / `ctx.metrics.restconf_answers`
//!   (`get_or_create(&labels).inc()`);
//! - numbers that already live in the service (atomics, a table): implement [`Source`] over a
//!   `Weak` of the service's shared state and call [`Metrics::set_source`] from `serve` (see
//!   [`Dhcp4Source`], set by `dhcp::v4::server::serve`, and `dhcp::v6::server`'s). A `Weak`, so a service stopped by a
//!   reload reports nothing and its lease writer is not kept alive; a named slot, so a service
//!   turned off and on again replaces its old source instead of adding a second one;
//! - per-device facts (redirect option asked/sent, decisions per rule) need nothing: they are
//!   counted from the device events by [`EventMetrics`], through `devices::observe`.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::config::Dhcp4;
use crate::devices::{DeviceTable, Observation, Stage};
use crate::dhcp::leases::{LeaseState, LeaseTable, Slot};
use crate::dhcp::v4::server::Shared as Dhcp4Shared;
use crate::dns::DnsStats;
use crate::journal::{DeviceEvent, DeviceJournal};
use crate::runtime::Published;

/// The services with request/reply/drop counters registered here (DHCPv4 and DHCPv6 export
/// theirs from their own [`Source`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    /// Unicast DNS (RFC 1035).
    Dns,
    /// mDNS responder (RFC 6762).
    Mdns,
    /// RESTCONF redirect server (RFC 8040, RFC 8572 §7).
    Restconf,
    /// Status server (this page, `/metrics`, `/api`).
    Status,
}

impl Service {
    const ALL: [Service; 4] = [
        Service::Dns,
        Service::Mdns,
        Service::Restconf,
        Service::Status,
    ];

    fn name(self) -> &'static str {
        match self {
            Service::Dns => "dns",
            Service::Mdns => "mdns",
            Service::Restconf => "restconf",
            Service::Status => "status",
        }
    }
}

/// `reason` label of `sztp_<svc>_dropped_total`: a short kebab-case word (`malformed`,
/// `not-for-us`, `rate-limited`, …).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    /// Why the request was dropped.
    pub reason: String,
}

/// Labels of a per-relay-agent DHCP counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RelayLabels {
    /// The relay agent's address (giaddr), `0.0.0.0` for a request that was not relayed.
    relay: String,
}

/// The request/reply/drop counters of one service.
#[derive(Clone, Debug, Default)]
pub struct ServiceCounters {
    /// Requests received (datagrams, queries, HTTP requests).
    pub requests: Counter,
    /// Replies sent.
    pub replies: Counter,
    /// Requests dropped without a reply, by reason.
    pub dropped: Family<DropLabels, Counter>,
}

impl ServiceCounters {
    /// Counts one request dropped for `reason`.
    pub fn drop_for(&self, reason: &str) {
        self.dropped
            .get_or_create(&DropLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }
}

/// Labels of `sztp_dns_answers_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DnsAnswerLabels {
    /// `udp`, `tcp` or `mdns`.
    pub transport: String,
    /// The RCODE mnemonic (RFC 1035 §4.1.1, RFC 6895): `NOERROR`, `NXDOMAIN`, `REFUSED`, …
    pub rcode: String,
}

/// Labels of `sztp_restconf_answers_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RestconfAnswerLabels {
    /// The RPC (`get-bootstrapping-data`, `report-progress`) or `other`.
    pub rpc: String,
    /// The HTTP status code, e.g. `200`, `204`, `400`.
    pub status: String,
}

/// Labels of the lease metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtoLabels {
    /// `dhcp4` or `dhcp6`.
    pub proto: String,
}

/// Lease-writer metrics: one `commits` per record group made durable, its `fdatasync` time.
#[derive(Clone, Debug)]
pub struct LeaseMetrics {
    /// Lease records made durable (one per record).
    pub commits: Family<ProtoLabels, Counter>,
    /// Seconds each group's append + `fdatasync` took.
    pub fsync_seconds: Family<ProtoLabels, Histogram>,
}

impl Default for LeaseMetrics {
    fn default() -> LeaseMetrics {
        LeaseMetrics {
            commits: Family::default(),
            // 50 µs … ~1.6 s: a VM disk syncs in ~0.5-5 ms, a stalled one in seconds
            fsync_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
            }),
        }
    }
}

impl LeaseMetrics {
    /// Records one durable group of `records` records for `proto` that took `seconds`.
    pub fn observe_commit(&self, proto: &str, records: u64, seconds: f64) {
        let l = ProtoLabels {
            proto: proto.to_owned(),
        };
        self.commits.get_or_create(&l).inc_by(records);
        self.fsync_seconds.get_or_create(&l).observe(seconds);
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RedirectLabels {
    proto: &'static str,
    option: &'static str,
    /// `requested-and-sent`, `requested-not-sent`, `sent-unrequested`, `not-requested`.
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    proto: &'static str,
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    proto: &'static str,
    event: &'static str,
}

/// Counters derived from device events (counted on the device table's thread, from the
/// same [`Observation`] the table folds, so a new protocol's variant is counted as soon as
/// `devices::observe` has its arm).
#[derive(Clone, Debug, Default)]
pub struct EventMetrics {
    redirect_option: Family<RedirectLabels, Counter>,
    decisions: Family<DecisionLabels, Counter>,
    events: Family<EventLabels, Counter>,
}

impl EventMetrics {
    /// Counts one event.
    pub fn observe(&self, ev: &DeviceEvent, o: &Observation) {
        self.events
            .get_or_create(&EventLabels {
                proto: o.proto,
                event: o.kind,
            })
            .inc();
        if let Some(rule) = &ev.rule {
            self.decisions
                .get_or_create(&DecisionLabels {
                    proto: o.proto,
                    rule: rule.clone(),
                })
                .inc();
        }
        // replies that could carry the option: OFFER/ACK (ADVERTISE/REPLY)
        if matches!(o.stage, Some(Stage::DhcpOffered | Stage::DhcpAcked)) {
            let (option, requested) = match (o.asked.requested_143, o.asked.requested_136) {
                (Some(r), _) => ("143", r),
                (None, Some(r)) => ("136", r),
                (None, None) => return,
            };
            let sent = o.told.as_ref().is_some_and(|t| !t.uris.is_empty());
            let outcome = match (requested, sent) {
                (true, true) => "requested-and-sent",
                (true, false) => "requested-not-sent",
                (false, true) => "sent-unrequested",
                (false, false) => "not-requested",
            };
            self.redirect_option
                .get_or_create(&RedirectLabels {
                    proto: o.proto,
                    option,
                    outcome,
                })
                .inc();
        }
    }
}

/// Numbers a running service already keeps (atomics, its lease table), read at each scrape.
/// Set with [`Metrics::set_source`]; runs under the registry's lock, so keep it short.
pub trait Source: Send + Sync + 'static {
    /// Writes this source's families to `enc`.
    ///
    /// # Errors
    /// Only the encoder's own `fmt::Error`.
    fn encode(&self, enc: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error>;
}

type SourceSlots = Arc<Mutex<Vec<(&'static str, Box<dyn Source>)>>>;

/// The one collector in the registry that reads every service's [`Source`], in the order
/// they were first set.
struct Sources(SourceSlots);

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources").finish_non_exhaustive()
    }
}

impl Collector for Sources {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let slots = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for (_, s) in slots.iter() {
            s.encode(&mut enc)?;
        }
        Ok(())
    }
}

/// The registry and the families every service shares. Cloning shares them.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    sources: SourceSlots,
    services: Arc<[(Service, ServiceCounters)]>,
    /// Counted from device events (give it to the device table).
    pub events: EventMetrics,
    /// `sztp_dns_answers_total{transport, rcode}`.
    pub dns_answers: Family<DnsAnswerLabels, Counter>,
    /// `sztp_restconf_answers_total{rpc, status}`.
    pub restconf_answers: Family<RestconfAnswerLabels, Counter>,
    /// `sztp_lease_commits_total{proto}`, `sztp_lease_fsync_seconds{proto}`.
    pub leases: LeaseMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every declared family (all zero) and `sztp_build_info{version}`.
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("sztp");
        r.register(
            "build",
            "Version of this sztp-redirector",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        let services: Vec<(Service, ServiceCounters)> = Service::ALL
            .iter()
            .map(|&s| (s, ServiceCounters::default()))
            .collect();
        for (s, c) in &services {
            let n = s.name();
            r.register(
                format!("{n}_requests"),
                format!("Requests received by the {n} service"),
                c.requests.clone(),
            );
            r.register(
                format!("{n}_replies"),
                format!("Replies sent by the {n} service"),
                c.replies.clone(),
            );
            r.register(
                format!("{n}_dropped"),
                format!("Requests the {n} service dropped without a reply, by reason"),
                c.dropped.clone(),
            );
        }
        let events = EventMetrics::default();
        r.register(
            "dhcp_redirect_option",
            "DHCP replies by whether the client asked for the SZTP redirect option (143/136) \
             and whether it was sent",
            events.redirect_option.clone(),
        );
        r.register(
            "policy_decisions",
            "Policy decisions per matching rule (or device:<label>)",
            events.decisions.clone(),
        );
        r.register(
            "device_events",
            "Device events by protocol and kind",
            events.events.clone(),
        );
        let dns_answers = Family::<DnsAnswerLabels, Counter>::default();
        r.register(
            "dns_answers",
            "DNS answers by transport and RCODE",
            dns_answers.clone(),
        );
        let restconf_answers = Family::<RestconfAnswerLabels, Counter>::default();
        r.register(
            "restconf_answers",
            "RESTCONF answers by RPC and HTTP status",
            restconf_answers.clone(),
        );
        let leases = LeaseMetrics::default();
        r.register(
            "lease_commits",
            "Lease records made durable (fsync'd) by the lease writer",
            leases.commits.clone(),
        );
        r.register_with_unit(
            "lease_fsync",
            "Time the lease writer took to append and fdatasync one group of records",
            prometheus_client::registry::Unit::Seconds,
            leases.fsync_seconds.clone(),
        );
        let sources = SourceSlots::default();
        r.register_collector(Box::new(Sources(Arc::clone(&sources))));
        Metrics {
            registry: Arc::new(Mutex::new(r)),
            sources,
            services: services.into(),
            events,
            dns_answers,
            restconf_answers,
            leases,
        }
    }

    /// The request/reply/drop counters of `service`.
    pub fn service(&self, service: Service) -> ServiceCounters {
        self.services
            .iter()
            .find(|(s, _)| *s == service)
            .map(|(_, c)| c.clone())
            .unwrap_or_default()
    }

    /// Adds a collector for the life of the process (the registry cannot remove one): for a
    /// service instance, which a reload may stop and start again, use [`set_source`](Self::set_source).
    pub fn register_collector(&self, c: Box<dyn Collector>) {
        self.registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .register_collector(c);
    }

    /// Makes `source` the one read at each scrape under `name` (`dhcp4`, …), replacing the
    /// source an earlier instance of that service set.
    pub fn set_source(&self, name: &'static str, source: Box<dyn Source>) {
        let mut slots = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        match slots.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = source,
            None => slots.push((name, source)),
        }
    }

    /// The OpenMetrics text (`application/openmetrics-text; version=1.0.0`).
    pub fn encode_openmetrics(&self) -> String {
        let mut out = String::new();
        let r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &r) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }

    /// The Prometheus text format 0.0.4 (`text/plain; version=0.0.4`).
    pub fn encode_prometheus(&self) -> String {
        let mut out = String::new();
        let r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &r) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// Encodes one unlabelled counter `name` (prometheus-client appends `_total`).
pub(crate) fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    let me = enc.encode_descriptor(name, help, None, c.metric_type())?;
    c.encode(me)
}

/// Reads the DHCPv4 server's own counters ([`crate::dhcp::v4::server::Stats`]) and its lease
/// table at each scrape, the pools from the snapshot in force. Holds the server weakly: a
/// server gone (disabled by a reload) reports nothing.
pub struct Dhcp4Source {
    shared: Weak<Dhcp4Shared>,
    published: Published,
}

impl Dhcp4Source {
    /// A collector over `shared`, its pools read from `published` at each scrape.
    pub fn new(shared: &Arc<Dhcp4Shared>, published: Published) -> Dhcp4Source {
        Dhcp4Source {
            shared: Arc::downgrade(shared),
            published,
        }
    }
}

impl std::fmt::Debug for Dhcp4Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dhcp4Source").finish_non_exhaustive()
    }
}

/// One pool's numbers at a scrape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolUsage {
    /// The subnet, `192.0.2.0/24`.
    pub subnet: String,
    /// The pool, `192.0.2.100-192.0.2.199`.
    pub pool: String,
    /// Addresses in the pool.
    pub size: u64,
    /// Addresses not available to a new client now: offered, bound or declined, unexpired.
    pub used: u64,
}

/// Per-pool usage of the `[dhcp4]` pools in `table` at `now` (Unix seconds). One pass over
/// the table: O(leases + pools · log pools); the caller holds the table's lock meanwhile.
pub fn dhcp4_pool_usage(dhcp4: &Dhcp4, table: &LeaseTable, now: u64) -> Vec<PoolUsage> {
    // (start, end, index into out), sorted by start: pools never overlap (validate.rs)
    let mut out = Vec::new();
    let mut ranges: Vec<(Ipv4Addr, Ipv4Addr, usize)> = Vec::new();
    for s in &dhcp4.subnets {
        for p in &s.pools {
            ranges.push((p.start, p.end, out.len()));
            out.push(PoolUsage {
                subnet: s.subnet.to_string(),
                pool: format!("{}-{}", p.start, p.end),
                size: p.size(),
                used: 0,
            });
        }
    }
    ranges.sort_by_key(|r| r.0);
    for slot in table.slots() {
        let (l, in_use) = match slot {
            Slot::Offered(l) => (l, l.expires > now),
            Slot::Stored(l) => (
                l,
                l.expires > now && matches!(l.state, LeaseState::Bound | LeaseState::Declined),
            ),
        };
        if !in_use {
            continue;
        }
        let i = ranges.partition_point(|r| r.0 <= l.addr);
        if let Some(&(_, end, idx)) = i.checked_sub(1).and_then(|i| ranges.get(i)) {
            if l.addr <= end {
                out[idx].used += 1;
            }
        }
    }
    out
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    proto: &'static str,
    subnet: String,
    pool: String,
}

/// Encodes pool gauges (`sztp_dhcp_pool_size/used/free{proto, subnet, pool}`).
pub fn encode_pools(
    enc: &mut DescriptorEncoder,
    proto: &'static str,
    pools: &[PoolUsage],
) -> Result<(), std::fmt::Error> {
    let labels = |p: &PoolUsage| PoolLabels {
        proto,
        subnet: p.subnet.clone(),
        pool: p.pool.clone(),
    };
    type Pick = fn(&PoolUsage) -> u64;
    let families: [(&str, &str, Pick); 3] = [
        ("dhcp_pool_size", "Addresses in the pool", |p| p.size),
        (
            "dhcp_pool_used",
            "Pool addresses offered, bound or declined (quarantined) now",
            |p| p.used,
        ),
        (
            "dhcp_pool_free",
            "Pool addresses a new client could get now (0: the pool is exhausted)",
            |p| p.size.saturating_sub(p.used),
        ),
    ];
    for (name, help, pick) in families {
        let mut me = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for p in pools {
            let l = labels(p);
            let fam = me.encode_family(&l)?;
            ConstGauge::new(pick(p) as i64).encode(fam)?;
        }
    }
    Ok(())
}

impl Source for Dhcp4Source {
    fn encode(&self, enc: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(shared) = self.shared.upgrade() else {
            return Ok(());
        };
        let st = &shared.stats;
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        counter(
            enc,
            "dhcp4_requests",
            "Datagrams received by the dhcp4 service",
            n(&st.received),
        )?;
        counter(
            enc,
            "dhcp4_replies",
            "Replies sent by the dhcp4 service",
            n(&st.replies),
        )?;
        {
            let mut me = enc.encode_descriptor(
                "dhcp4_dropped",
                "Requests the dhcp4 service dropped without a reply, by reason",
                None,
                MetricType::Counter,
            )?;
            for (reason, v) in [
                ("malformed", n(&st.malformed)),
                ("oversized", n(&st.oversized)),
                ("ignored", n(&st.ignored)),
                ("pool-exhausted", n(&st.pool_exhausted)),
                ("decline-limit", n(&st.declines_refused)),
                ("send-error", n(&st.send_errors)),
                ("commit-failed", n(&st.commits_failed)),
                ("handler-panic", n(&st.handler_panics)),
            ] {
                let l = DropLabels {
                    reason: reason.into(),
                };
                let fam = me.encode_family(&l)?;
                ConstCounter::new(v).encode(fam)?;
            }
        }
        {
            // Already inside dhcp4_dropped{reason="ignored"}: their own families, so a sum over
            // the reasons stays the number of dropped requests.
            let mut me = enc.encode_descriptor(
                "dhcp4_no_subnet",
                "Requests from a network with no configured subnet, per relay agent (0.0.0.0: \
                 not relayed); also counted as dropped, reason ignored",
                None,
                MetricType::Counter,
            )?;
            let by_relay = st
                .no_subnet
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            for (relay, v) in by_relay {
                let l = RelayLabels {
                    relay: relay.to_string(),
                };
                let fam = me.encode_family(&l)?;
                ConstCounter::new(v).encode(fam)?;
            }
        }
        counter(
            enc,
            "dhcp4_unsupported_hardware",
            "Requests whose chaddr is not Ethernet and that carry no client identifier (RFC 4390 \
             §2); also counted as dropped, reason ignored",
            n(&st.unsupported_hardware),
        )?;
        {
            let g = ConstGauge::new(n(&st.journal_failing) as i64);
            let me = enc.encode_descriptor(
                "dhcp4_lease_journal_failing",
                "1 while the DHCPv4 lease journal cannot be written (nothing is acknowledged), else 0",
                None,
                g.metric_type(),
            )?;
            g.encode(me)?;
        }
        counter(
            enc,
            "dhcp4_lease_syncs",
            "fdatasync calls of the DHCPv4 lease writer (each covers one group of commits)",
            shared.writer.syncs(),
        )?;
        let snap = self.published.load();
        let pools = match &snap.config.dhcp4 {
            Some(d4) => dhcp4_pool_usage(d4, &shared.table(), crate::journal::unix_now()),
            None => Vec::new(),
        };
        encode_pools(enc, "dhcp4", &pools)
    }
}

/// The DNS-specific numbers of a running unicast DNS or mDNS service, over a `Weak` of its
/// [`DnsStats`] (set by `dns::serve` and `dns::mdns::serve` in the `dns` / `mdns` slot):
/// `sztp_<svc>_srv_queries_total` (`_sztp._tcp` SRV questions, RFC 8572 §4.2.3),
/// `sztp_<svc>_txt_queries_total{answer="record"|"nxdomain"}` (`<serial>._sztp` TXT
/// questions), and for unicast `sztp_dns_forwarded_total` and `sztp_dns_truncated_total` (UDP
/// answers sent with TC, RFC 7766). Requests, replies, drops and answers by RCODE are the
/// shared [`ServiceCounters`] and `sztp_dns_answers_total`.
pub struct DnsSource {
    service: &'static str,
    stats: Weak<DnsStats>,
}

impl DnsSource {
    /// A source named `service` (`dns` or `mdns`, the metric prefix) over `stats`.
    pub fn new(service: &'static str, stats: &Arc<DnsStats>) -> DnsSource {
        DnsSource {
            service,
            stats: Arc::downgrade(stats),
        }
    }
}

impl std::fmt::Debug for DnsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsSource")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TxtLabels {
    answer: &'static str,
}

impl Source for DnsSource {
    fn encode(&self, enc: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(st) = self.stats.upgrade() else {
            return Ok(());
        };
        let svc = self.service;
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        counter(
            enc,
            &format!("{svc}_srv_queries"),
            "_sztp._tcp SRV questions answered (RFC 8572 section 4.2.3)",
            n(&st.srv_queries),
        )?;
        {
            let name = format!("{svc}_txt_queries");
            let mut me = enc.encode_descriptor(
                &name,
                "<serial>._sztp TXT questions, by whether a record answered them",
                None,
                MetricType::Counter,
            )?;
            for (answer, v) in [
                ("record", n(&st.txt_answered)),
                ("nxdomain", n(&st.txt_nxdomain)),
            ] {
                let l = TxtLabels { answer };
                let fam = me.encode_family(&l)?;
                ConstCounter::new(v).encode(fam)?;
            }
        }
        if svc == "dns" {
            counter(
                enc,
                "dns_forwarded",
                "Queries outside the SZTP zones handed to [dns] forwarders",
                n(&st.forwarded),
            )?;
            counter(
                enc,
                "dns_truncated",
                "UDP answers cut to the client's size with TC set (RFC 7766)",
                n(&st.truncated),
            )?;
        }
        Ok(())
    }
}

/// Device journal and device table counters.
pub struct DeviceCollector {
    journal: Option<Weak<DeviceJournal>>,
    table: Option<Weak<DeviceTable>>,
}

impl DeviceCollector {
    /// A collector over the journal and the table (either may be absent).
    pub fn new(journal: Option<&Arc<DeviceJournal>>, table: Option<&Arc<DeviceTable>>) -> Self {
        DeviceCollector {
            journal: journal.map(Arc::downgrade),
            table: table.map(Arc::downgrade),
        }
    }
}

impl std::fmt::Debug for DeviceCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCollector").finish_non_exhaustive()
    }
}

impl Collector for DeviceCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(j) = self.journal.as_ref().and_then(Weak::upgrade) {
            counter(
                &mut enc,
                "device_journal_dropped",
                "Device events not written to the device journal because its writer was behind",
                j.dropped(),
            )?;
        }
        if let Some(t) = self.table.as_ref().and_then(Weak::upgrade) {
            counter(
                &mut enc,
                "device_table_dropped",
                "Device events not folded into the device table because its thread was behind",
                t.dropped(),
            )?;
            let (devices, evicted) = {
                let f = t.read();
                (f.len(), f.evicted())
            };
            let g = ConstGauge::new(devices as i64);
            let me = enc.encode_descriptor(
                "device_table_devices",
                "Devices in the device table",
                None,
                g.metric_type(),
            )?;
            g.encode(me)?;
            counter(
                &mut enc,
                "device_table_evicted",
                "Devices evicted from the device table to stay within status.max-devices",
                evicted,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::observe;
    use crate::journal::Dhcp4Kind;
    use crate::policy::MacAddr;

    #[test]
    fn families_are_declared_and_counted() {
        let m = Metrics::new();
        let mut ev = DeviceEvent::dhcp4(0, Dhcp4Kind::Ack, 1, MacAddr([2, 0, 0, 0, 0, 1]));
        ev.rule = Some("default".into());
        let o = observe(&ev);
        m.events.observe(&ev, &o);
        ev.uris = vec!["https://a.example".into()];
        let crate::journal::EventDetail::Dhcp4(d) = &mut ev.detail else {
            unreachable!("built as a DHCPv4 event")
        };
        d.requested_143 = true;
        let o = observe(&ev);
        m.events.observe(&ev, &o);
        m.service(Service::Dns).drop_for("malformed");
        m.leases.observe_commit("dhcp4", 3, 0.002);
        let text = m.encode_openmetrics();
        for line in [
            "sztp_build_info{version=\"",
            "sztp_dhcp_redirect_option_total{proto=\"dhcp4\",option=\"143\",outcome=\"not-requested\"} 1",
            "sztp_dhcp_redirect_option_total{proto=\"dhcp4\",option=\"143\",outcome=\"requested-and-sent\"} 1",
            "sztp_policy_decisions_total{proto=\"dhcp4\",rule=\"default\"} 2",
            "sztp_device_events_total{proto=\"dhcp4\",event=\"ack\"} 2",
            "sztp_dns_dropped_total{reason=\"malformed\"} 1",
            "sztp_restconf_requests_total 0",
            "sztp_lease_commits_total{proto=\"dhcp4\"} 3",
            "sztp_lease_fsync_seconds_count{proto=\"dhcp4\"} 1",
            "# EOF",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        let prom = m.encode_prometheus();
        assert!(
            prom.contains("# TYPE sztp_dns_requests_total counter"),
            "{prom}"
        );
        assert!(!prom.contains("# EOF"));
    }

    #[test]
    fn a_source_set_again_replaces_the_old_one() {
        // a service restarted by a reload sets its source again: one family, the new numbers
        struct Requests(u64);
        impl Source for Requests {
            fn encode(&self, enc: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
                counter(enc, "dhcp4_requests", "Datagrams received", self.0)
            }
        }
        let m = Metrics::new();
        m.set_source("dhcp4", Box::new(Requests(1)));
        m.set_source("dhcp4", Box::new(Requests(7)));
        let text = m.encode_openmetrics();
        assert_eq!(
            text.matches("# TYPE sztp_dhcp4_requests counter").count(),
            1,
            "{text}"
        );
        assert!(text.contains("sztp_dhcp4_requests_total 7\n"), "{text}");
    }

    #[test]
    fn pool_usage_counts_what_a_new_client_cannot_get() {
        use crate::dhcp::leases::Lease4;
        let cfg = crate::config::load_str(
            std::path::Path::new("pools.toml"),
            "[dhcp4]\ninterfaces = [\"eth1\"]\n\n[[dhcp4.subnet]]\nsubnet = \"192.0.2.0/24\"\n\
             pools = [\"192.0.2.10-192.0.2.19\", \"192.0.2.100-192.0.2.103\"]\nlease-time = \"1h\"\n",
        )
        .unwrap();
        let d4 = cfg.dhcp4.unwrap();
        let now = 1_000;
        let lease = |last: u8, state, expires| Lease4 {
            addr: Ipv4Addr::new(192, 0, 2, last),
            mac: MacAddr([2, 0, 0, 0, 0, last]),
            client_id: None,
            hostname: None,
            expires,
            state,
        };
        let mut t = LeaseTable::default();
        t.put(Slot::Stored(lease(10, LeaseState::Bound, now + 1))); // used
        t.put(Slot::Stored(lease(11, LeaseState::Bound, now))); // expired: free
        t.put(Slot::Stored(lease(12, LeaseState::Declined, now + 60))); // quarantined: used
        t.put(Slot::Stored(lease(13, LeaseState::Released, now + 60))); // free
        t.put(Slot::Offered(lease(100, LeaseState::Bound, now + 60))); // offered: used
        t.put(Slot::Stored(lease(50, LeaseState::Bound, now + 60))); // outside the pools
        let u = dhcp4_pool_usage(&d4, &t, now);
        assert_eq!(
            u,
            [
                PoolUsage {
                    subnet: "192.0.2.0/24".into(),
                    pool: "192.0.2.10-192.0.2.19".into(),
                    size: 10,
                    used: 2
                },
                PoolUsage {
                    subnet: "192.0.2.0/24".into(),
                    pool: "192.0.2.100-192.0.2.103".into(),
                    size: 4,
                    used: 1
                },
            ]
        );
        let m = Metrics::new();
        #[derive(Debug)]
        struct Pools(Vec<PoolUsage>);
        impl Collector for Pools {
            fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
                encode_pools(&mut enc, "dhcp4", &self.0)
            }
        }
        m.register_collector(Box::new(Pools(u)));
        let text = m.encode_prometheus();
        assert!(
            text.contains("sztp_dhcp_pool_free{proto=\"dhcp4\",subnet=\"192.0.2.0/24\",pool=\"192.0.2.100-192.0.2.103\"} 3"),
            "{text}"
        );
    }
}
