//! The DHCPv4 server loop: the only DHCPv4 code that touches sockets
//!
//! `bind` opens one UDP socket per served interface (SO_BINDTODEVICE) and, with CAP_NET_RAW, a
//! raw sender; `serve` opens the lease journal, then runs one receive task per socket plus the
//! housekeeping timer until its token is cancelled. Each task decodes, calls the handler under
//! the lease-state lock (configuration and Policy come from the published snapshot, read once
//! per packet) and sends. Replies that hand out or extend a lease go through the lease writer,
//! which fsyncs a whole group of records once and only then sends their replies: an ACK never
//! leaves before its lease is on disk. On cancel the tasks stop receiving, the writer writes
//! what is queued and sends those replies, and `serve` returns.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket as StdUdpSocket};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use ipnet::Ipv4Net;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, debug_span, error, info, warn};

use super::handler::{self, Context, Ignored, Outcome, Reply, RequestMeta, Transmission};
use super::sockets::{bind_udp4, iface_info, RawSender};
use super::wire::{Malformed, Request};
use crate::config::Dhcp4;
use crate::dhcp::lease_store::{should_compact, LeaseStore, LeaseWriter};
use crate::dhcp::leases::{ClientKey, LeaseState, LeaseTable, Slot};
use crate::journal::{DeviceEvent, Dhcp4Kind, Dhcp4Reason, EventDetail};
use crate::policy::{ClientId, DeviceFacts};
use crate::ratelimit::{KeyedLogLimiter, LogLimiter};
use crate::runtime::{Clock, Events, LeaseFacts, LeaseLookup, Published, ServiceContext};
use crate::udp_bind::PortClaim;

/// Expired leases are remembered this long (seconds), so a returning device gets its old
/// address.
pub const KEEP_EXPIRED_SECS: u64 = 86_400;
/// How often stale offers are swept and the journal is checked for compaction.
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(30);

/// At most one "pool exhausted" line per subnet per this interval (the suppressed count is
/// in the next line and every DISCOVER is counted in `Stats::pool_exhausted`).
pub const EXHAUSTED_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Counters, exported by the status page and logged at shutdown.
#[derive(Debug, Default)]
pub struct Stats {
    /// Datagrams received.
    pub received: AtomicU64,
    /// Datagrams that did not decode as a BOOTREQUEST (dropped), `oversized` ones apart.
    pub malformed: AtomicU64,
    /// Requests dropped because an option the server keeps or echoes was over its bound
    /// (`wire::max_option_len`: a client identifier over 128 octets, …).
    pub oversized: AtomicU64,
    /// Requests handled without a reply (another server's, unknown lease, no subnet, …),
    /// `pool_exhausted` and `declines_refused` apart.
    pub ignored: AtomicU64,
    /// DISCOVERs that found no free address and no outstanding offer to reuse in their
    /// subnet (logged per subnet, at most once a minute).
    pub pool_exhausted: AtomicU64,
    /// DECLINEs not honoured: the client already had `handler::MAX_ACTIVE_DECLINES` addresses
    /// in quarantine.
    pub declines_refused: AtomicU64,
    /// Replies sent.
    pub replies: AtomicU64,
    /// Lease commits that failed: their ACKs were not sent.
    pub commits_failed: AtomicU64,
    /// 1 while the lease journal cannot be written (the last commit failed: nothing is
    /// acknowledged), 0 once a commit is durable again. A gauge for the status page and the
    /// watchdog.
    pub journal_failing: AtomicU64,
    /// Replies the socket refused.
    pub send_errors: AtomicU64,
    /// Packets whose decoding or handling panicked (dropped; the loop goes on).
    pub handler_panics: AtomicU64,
    /// Requests from a network with no configured subnet, per relay agent (giaddr;
    /// 0.0.0.0 for requests that were not relayed).
    pub no_subnet: Mutex<std::collections::BTreeMap<Ipv4Addr, u64>>,
    /// Requests dropped because chaddr is not Ethernet and there is no client identifier.
    pub unsupported_hardware: AtomicU64,
}

/// At most one log line per [`RateLimit::INTERVAL`] for one kind of trouble that a device or
/// the network can repeat at packet rate; the lines it holds back are counted and reported in
/// the next line. Hand-written: ten lines of atomics, where a crate would bring a token
/// bucket and a clock of its own.
#[derive(Debug, Default)]
pub struct RateLimit {
    /// Unix second of the last line, 0 before the first.
    last: AtomicU64,
    /// Lines held back since then.
    suppressed: AtomicU64,
}

impl RateLimit {
    /// Seconds between two lines.
    pub const INTERVAL: u64 = 10;

    /// `Some(n)` when a line may be logged at `now` (Unix seconds), `n` being how many were
    /// held back before it; `None` when this one is held back.
    pub fn allow(&self, now: u64) -> Option<u64> {
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now < last + Self::INTERVAL {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if self
            .last
            .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

/// The rate limits of one DHCPv4 service's repeatable log lines.
#[derive(Debug, Default)]
struct LogLimits {
    send_error: RateLimit,
    no_subnet: RateLimit,
    unsupported_hardware: RateLimit,
}

/// One served interface: its UDP socket, already bound, and a raw sender for replies straight
/// to a client MAC when CAP_NET_RAW allowed opening one.
pub struct BoundInterface {
    /// The interface name, the key of its facts in [`crate::runtime::Snapshot::interfaces`].
    pub name: String,
    /// Bound (normally `0.0.0.0:67` with SO_BINDTODEVICE), non-blocking.
    pub socket: StdUdpSocket,
    /// `None`: replies to clients without an address are broadcast.
    pub raw: Option<RawSender>,
    /// Send-only socket for replies to a client's own address when `raw` is `None`
    /// ([`Transmission::UdpIsolated`]); `None`: `serve` opens one on `0.0.0.0:0`.
    pub isolated: Option<StdUdpSocket>,
    /// Keeps other processes off this interface and port while the socket serves (`None` for
    /// a socket the caller bound itself).
    pub claim: Option<Arc<PortClaim>>,
}

impl BoundInterface {
    /// An interface served through `socket` alone (no raw frames), e.g. `127.0.0.1:0` on `lo`
    /// in tests. The socket is made non-blocking.
    pub fn new(name: impl Into<String>, socket: StdUdpSocket) -> io::Result<BoundInterface> {
        socket.set_nonblocking(true)?;
        Ok(BoundInterface {
            name: name.into(),
            socket,
            raw: None,
            isolated: None,
            claim: None,
        })
    }
}

/// Everything the DHCPv4 service opened before privileges were dropped.
pub struct Bound4 {
    /// One entry per `[dhcp4] interfaces` name, in file order.
    pub interfaces: Vec<BoundInterface>,
}

/// Binds every interface of `[dhcp4]` on its port and logs `listening for dhcp4 on IF ADDR`
/// for each, once all are bound.
///
/// # Errors
/// The first interface that cannot be bound: `cannot listen on interface eth9: no such
/// interface "eth9"` (or the socket error).
pub fn bind(d: &Dhcp4) -> io::Result<Bound4> {
    let mut interfaces = Vec::new();
    for name in &d.interfaces {
        let b = bind_interface(name, d.port).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot listen on interface {name}: {e}"))
        })?;
        interfaces.push(b);
    }
    for b in &interfaces {
        info!(
            "listening for dhcp4 on {} {}",
            b.name,
            b.socket.local_addr()?
        );
    }
    Ok(Bound4 { interfaces })
}

/// Bind one interface: its UDP socket and, when CAP_NET_RAW allows, a raw sender.
pub fn bind_interface(name: &str, port: u16) -> io::Result<BoundInterface> {
    let info = iface_info(name)?;
    let (socket, claim) = bind_udp4(name, port)?;
    // an ephemeral port: nothing is received on it, and 67 stays the DHCP socket's alone
    let (isolated, _) = bind_udp4(name, 0)?;
    let raw = match RawSender::open(&info) {
        Ok(r) => Some(r),
        Err(e) => {
            if info.mac.is_some() {
                warn!(interface = name, error = %e, "raw frames unavailable: replies to clients without an address are broadcast");
            }
            None
        }
    };
    Ok(BoundInterface {
        name: name.to_owned(),
        socket,
        raw,
        isolated: Some(isolated),
        claim: Some(claim),
    })
}

/// Shared by every task of one running DHCPv4 service.
pub struct Shared {
    /// The lease state, the only thing behind this service's lock.
    table: Mutex<LeaseTable>,
    /// What each bound address's device sent with the request that was ACKed (see
    /// [`Dhcp4Leases`]); never locked together with `table`.
    seen: Mutex<HashMap<Ipv4Addr, Seen>>,
    /// Group commit to the lease journal.
    pub writer: LeaseWriter,
    /// Counters.
    pub stats: Arc<Stats>,
    published: Published,
    events: Events,
    clock: Clock,
    limits: LogLimits,
    /// One error line per interval while lease commits fail.
    commit_errors: LogLimiter,
    /// One line per subnet per interval while its pools are exhausted.
    exhausted_log: KeyedLogLimiter<Ipv4Net>,
}

impl Shared {
    /// The lease table, even after a panic elsewhere poisoned the lock: the handler leaves the
    /// table consistent at every step, and a stalled server is worse than one odd lease.
    pub fn table(&self) -> MutexGuard<'_, LeaseTable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn seen(&self) -> MutexGuard<'_, HashMap<Ipv4Addr, Seen>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The request facts of an ACK, kept per address for [`Dhcp4Leases`].
struct Seen {
    /// Whose ACK it was: a lease now held by another client does not get these facts.
    client: ClientKey,
    facts: LeaseFacts,
}

/// The DHCPv4 service's read-only view of its leases, registered in the daemon's
/// [`LeaseRegistry`](crate::runtime::LeaseRegistry) while the service runs.
///
/// An address has facts while its lease is bound and not expired: MAC and option 61 from the
/// lease table (durable), option 60, option 77, option 82 circuit-id/remote-id and the
/// interface from the request that was last ACKed on it. Those are kept in memory only: after
/// a restart they are empty until the device renews or rebinds. Cost per lookup: one hash
/// lookup under the lease-table lock, then one under the facts lock (never both at once).
pub struct Dhcp4Leases {
    shared: Weak<Shared>,
}

impl LeaseLookup for Dhcp4Leases {
    fn lease_facts(&self, addr: IpAddr) -> Option<LeaseFacts> {
        let IpAddr::V4(addr) = addr else {
            return None;
        };
        let shared = self.shared.upgrade()?;
        let now = shared.clock.now();
        let (mac, client_id) = match shared.table().get(addr) {
            Some(Slot::Stored(l)) if l.state == LeaseState::Bound && l.expires > now => {
                (l.mac, l.client_id.clone())
            }
            _ => return None,
        };
        let client = ClientKey::new(client_id.as_deref(), mac);
        let mut facts = shared
            .seen()
            .get(&addr)
            .filter(|s| s.client == client)
            .map(|s| s.facts.clone())
            .unwrap_or_default();
        facts.mac = Some(mac);
        facts.client_id = client_id.map(ClientId::Dhcp4);
        Some(facts)
    }
}

/// The address `event` ACKed, if it is an ACK.
fn acked_address(event: Option<&DeviceEvent>) -> Option<Ipv4Addr> {
    match event.map(|e| &e.detail) {
        Some(EventDetail::Dhcp4(d)) if d.event == Dhcp4Kind::Ack => d.address,
        _ => None,
    }
}

/// Remembers what the device sent with the request that was ACKed on `addr`.
fn remember_ack(shared: &Shared, addr: Ipv4Addr, facts: DeviceFacts) {
    let Some(mac) = facts.mac else {
        return;
    };
    let client_id = match &facts.client_id {
        Some(ClientId::Dhcp4(id)) => Some(id.as_slice()),
        _ => None,
    };
    let client = ClientKey::new(client_id, mac);
    let facts = LeaseFacts {
        vendor_class: facts.vendor_class,
        enterprise_number: facts.enterprise_number,
        user_class: facts.user_class,
        circuit_id: facts.circuit_id,
        remote_id: facts.remote_id,
        interface: facts.interface,
        ..LeaseFacts::default()
    };
    shared.seen().insert(addr, Seen { client, facts });
}

/// The sending side of one interface; shared with the lease writer's thread.
pub struct Egress {
    /// Interface name.
    pub name: String,
    /// A clone of the receiving socket.
    pub socket: StdUdpSocket,
    /// Raw frames to a client MAC, when available.
    pub raw: Option<Mutex<RawSender>>,
    /// Non-blocking, send-only: replies to a client's own address without raw frames.
    pub isolated: StdUdpSocket,
    /// The local UDP port (the source port of raw frames).
    pub port: u16,
}

impl Egress {
    /// How `reply` leaves this interface.
    pub fn transmission(&self, reply: &Reply) -> Transmission {
        Transmission::of(reply.to, self.raw.is_some())
    }

    /// Encodes `reply` and sends it as [`Egress::transmission`] says; `source` is the IPv4
    /// source of raw frames (the served interface's address). Every socket is non-blocking:
    /// a full send buffer is an error for this reply, never a wait for the others.
    pub fn send(&self, reply: &Reply, source: Ipv4Addr) -> io::Result<()> {
        let bytes = reply.encode();
        match self.transmission(reply) {
            Transmission::Udp(to) => self.socket.send_to(&bytes, to).map(|_| ()),
            Transmission::UdpIsolated(to) => self.isolated.send_to(&bytes, to).map(|_| ()),
            Transmission::Frame { mac, to } => {
                let Some(raw) = &self.raw else {
                    return Err(io::Error::other("no raw sender"));
                };
                let src = SocketAddrV4::new(source, self.port);
                raw.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .send_udp(mac, src, to, &bytes)
            }
        }
    }
}

/// Lease commits and their `fdatasync` time into `sztp_lease_commits_total` and
/// `sztp_lease_fsync_seconds` (`proto="dhcp4"`).
fn lease_observer(ctx: &ServiceContext) -> crate::dhcp::lease_store::CommitObserver {
    let leases = ctx.metrics.leases.clone();
    Box::new(move |records, took| leases.observe_commit("dhcp4", records, took.as_secs_f64()))
}

/// Runs the DHCPv4 service on `bound` until `token` is cancelled (see the module doc), with the
/// wall clock.
///
/// # Errors
/// The lease journal in `ctx.state_dir` cannot be opened or replayed (a corrupt record other
/// than the last names `FILE:LINE`), or a socket cannot be handed to tokio.
pub async fn serve(bound: Bound4, ctx: ServiceContext, token: CancellationToken) -> io::Result<()> {
    serve_with_clock(bound, ctx, token, Clock::System).await
}

/// [`serve`] with `now` read from `clock` (tests pass [`Clock::tokio_at`]).
pub async fn serve_with_clock(
    bound: Bound4,
    ctx: ServiceContext,
    token: CancellationToken,
    clock: Clock,
) -> io::Result<()> {
    let state_dir = ctx.state_dir.clone();
    let (store, records) = tokio::task::spawn_blocking(move || LeaseStore::open(&state_dir))
        .await
        .map_err(io::Error::other)?
        .map_err(io::Error::other)?;
    let table = LeaseTable::from_records(records);
    info!(
        leases = table.len(),
        active = table.active(clock.now()),
        "lease journal replayed"
    );
    let shared = Arc::new(Shared {
        table: Mutex::new(table),
        seen: Mutex::new(HashMap::new()),
        writer: LeaseWriter::spawn_observed(store, Some(lease_observer(&ctx))),
        stats: Arc::new(Stats::default()),
        published: ctx.published.clone(),
        events: ctx.events.clone(),
        clock,
        limits: LogLimits::default(),
        commit_errors: LogLimiter::default(),
        exhausted_log: KeyedLogLimiter::new(EXHAUSTED_LOG_INTERVAL),
    });
    // before the first request can bind a lease; dropped once every task has stopped
    let registration = ctx.leases.register(
        "dhcp4",
        Arc::new(Dhcp4Leases {
            shared: Arc::downgrade(&shared),
        }),
    );
    ctx.metrics.set_source(
        "dhcp4",
        Box::new(crate::metrics::Dhcp4Source::new(
            &shared,
            ctx.published.clone(),
        )),
    );
    let mut tasks = JoinSet::new();
    for b in bound.interfaces {
        let port = b.socket.local_addr()?.port();
        let isolated = match b.isolated {
            Some(s) => s,
            None => {
                let s = StdUdpSocket::bind("0.0.0.0:0")?;
                s.set_nonblocking(true)?;
                s
            }
        };
        let egress = Arc::new(Egress {
            name: b.name,
            socket: b.socket.try_clone()?,
            raw: b.raw.map(Mutex::new),
            isolated,
            port,
        });
        let socket = tokio::net::UdpSocket::from_std(b.socket)?;
        let (sh, t, claim) = (Arc::clone(&shared), token.clone(), b.claim);
        tasks.spawn(async move {
            receive(sh, egress, socket, t).await;
            // the interface and port stay ours until this instance stops receiving on them
            drop(claim);
        });
    }
    tasks.spawn(housekeeping_loop(Arc::clone(&shared), token.clone()));
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r {
            error!(error = %e, "dhcp4 task failed");
        }
    }
    drop(registration);
    // Every task has stopped receiving: write what is queued, send those replies, stop.
    let writer = shared.writer.clone();
    let syncs = writer.syncs();
    tokio::task::spawn_blocking(move || writer.shutdown())
        .await
        .map_err(io::Error::other)?;
    let st = &shared.stats;
    let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let no_subnet = format!(
        "{:?}",
        st.no_subnet.lock().unwrap_or_else(|e| e.into_inner())
    );
    info!(
        received = n(&st.received),
        malformed = n(&st.malformed),
        oversized = n(&st.oversized),
        ignored = n(&st.ignored),
        pool_exhausted = n(&st.pool_exhausted),
        declines_refused = n(&st.declines_refused),
        replies = n(&st.replies),
        send_errors = n(&st.send_errors),
        commits_failed = n(&st.commits_failed),
        unsupported_hardware = n(&st.unsupported_hardware),
        no_subnet_by_relay = %no_subnet,
        journal_failing = n(&st.journal_failing),
        lease_syncs = syncs,
        "dhcp4 stopped"
    );
    Ok(())
}

/// Receive on one interface until `token` is cancelled.
async fn receive(
    shared: Arc<Shared>,
    egress: Arc<Egress>,
    socket: tokio::net::UdpSocket,
    token: CancellationToken,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        tokio::select! {
            biased;
            _ = token.cancelled() => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, src)) => process(&shared, &egress, &buf[..n], src),
                Err(e) => {
                    // ICMP errors from earlier sends surface here; never stop the loop for them
                    debug!(interface = %egress.name, error = %e, "recv error");
                }
            },
        }
    }
}

async fn housekeeping_loop(shared: Arc<Shared>, token: CancellationToken) {
    let mut tick = tokio::time::interval(HOUSEKEEPING_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tick.tick() => housekeeping(&shared, shared.clock.now()),
        }
    }
}

/// Sweep stale offers and long-expired leases; compact the journal when it has grown.
fn housekeeping(shared: &Shared, now: u64) {
    let live = {
        let mut t = shared.table();
        t.sweep(now, KEEP_EXPIRED_SECS);
        // facts of addresses no longer leased to the client they were seen with
        shared.seen().retain(|addr, s| {
            t.get(*addr).is_some_and(|slot| {
                ClientKey::new(slot.lease().client_id.as_deref(), slot.lease().mac) == s.client
            })
        });
        // a journal that keeps failing is rewritten whole: the way out when the failed write
        // cannot be cut off in place (the old file turned append-only, say)
        let failing = shared.writer.failing();
        if failing || should_compact(shared.writer.records_since_compact(), t.stored_len()) {
            Some(t.records())
        } else {
            None
        }
    };
    if let Some(live) = live {
        info!(records = live.len(), "compacting the lease journal");
        shared.writer.compact(live);
    }
}

/// Decode, handle and answer one datagram.
fn process(shared: &Arc<Shared>, egress: &Arc<Egress>, packet: &[u8], src: SocketAddr) {
    let stats = &shared.stats;
    stats.received.fetch_add(1, Ordering::Relaxed);
    let req = match catch_unwind(|| Request::decode(packet)) {
        Ok(Ok(r)) => r,
        Err(_) => {
            stats.handler_panics.fetch_add(1, Ordering::Relaxed);
            error!(interface = %egress.name, %src, "decoder panicked on a packet; dropped");
            return;
        }
        Ok(Err(why)) => {
            if let Malformed::OptionTooLong(_) = why {
                stats.oversized.fetch_add(1, Ordering::Relaxed);
            } else {
                stats.malformed.fetch_add(1, Ordering::Relaxed);
            }
            debug!(interface = %egress.name, %src, reason = why.as_str(), len = packet.len(), "dropped malformed packet");
            return;
        }
    };
    let span = debug_span!("dhcp4", xid = format_args!("{:#010x}", req.msg.xid()), chaddr = %req.chaddr_mac().unwrap_or_default());
    let _enter = span.enter();
    let SocketAddr::V4(src) = src else { return };
    let snap = shared.published.load();
    let Some(dhcp4) = snap.config.dhcp4.as_ref() else {
        // disabled by a reload; this instance is being stopped
        stats.ignored.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let iface_addrs = snap
        .interfaces
        .get(&egress.name)
        .map(|i| i.ipv4.clone())
        .unwrap_or_default();
    let source = iface_addrs
        .first()
        .map_or(Ipv4Addr::UNSPECIFIED, |n| n.addr());
    let meta = RequestMeta {
        interface: egress.name.clone(),
        iface_addrs,
        src,
    };
    let now = shared.clock.now();
    let ctx = Context {
        dhcp4,
        policy: &snap.policy,
    };
    let outcome = {
        let mut table = shared.table();
        catch_unwind(AssertUnwindSafe(|| {
            handler::handle(&ctx, &mut table, &req, &meta, now)
        }))
    };
    let outcome = match outcome {
        Ok(o) => o,
        Err(_) => {
            stats.handler_panics.fetch_add(1, Ordering::Relaxed);
            error!(?req.msg_type, "handler panicked on a request; dropped");
            return;
        }
    };
    if let Some(addr) = acked_address(outcome.event.as_ref()) {
        remember_ack(shared, addr, handler::device_facts(&req, &meta));
    }
    finish(shared, egress, outcome, source);
}

/// Emits the event, then commits the lease change and only once it is durable encodes and
/// sends the reply.
fn finish(shared: &Arc<Shared>, egress: &Arc<Egress>, outcome: Outcome, source: Ipv4Addr) {
    let Outcome {
        reply,
        commit,
        event,
        ignored,
    } = outcome;
    match ignored {
        Some(Ignored::PoolExhausted(subnet)) => {
            shared.stats.pool_exhausted.fetch_add(1, Ordering::Relaxed);
            // the operator's to fix (a pool too small, or leases too long), not the device's;
            // keyed by configured subnets only, so the limiter stays small
            if let Some(suppressed) = shared.exhausted_log.check(subnet) {
                warn!(%subnet, interface = %egress.name, suppressed, "pool exhausted: no free address and no outstanding offer to reuse");
            }
        }
        Some(why @ Ignored::DeclineLimit) => {
            shared
                .stats
                .declines_refused
                .fetch_add(1, Ordering::Relaxed);
            debug!(reason = why.as_str(), "no reply");
        }
        Some(why) => {
            shared.stats.ignored.fetch_add(1, Ordering::Relaxed);
            debug!(reason = why.as_str(), "no reply");
        }
        None => {}
    }
    // an ACK is reported only once its lease is durable and it was sent
    let acked_after_commit = reply.is_some() && !commit.is_empty();
    let event = if acked_after_commit {
        event
    } else {
        if let Some(ev) = event {
            log_event(shared, &ev);
            shared.events.emit_owned(ev);
        }
        None
    };
    let Some(reply) = reply else {
        if !commit.is_empty() {
            let sh = Arc::clone(shared);
            shared.writer.commit(
                commit,
                Box::new(move |res| {
                    committed(&sh, &res, false);
                }),
            );
        }
        return;
    };
    if commit.is_empty() {
        send(shared, egress, &reply, source);
        return;
    }
    let (sh, eg) = (Arc::clone(shared), Arc::clone(egress));
    shared.writer.commit(
        commit,
        Box::new(move |res| {
            if committed(&sh, &res, true) {
                if let Some(ev) = event {
                    log_event(&sh, &ev);
                    sh.events.emit_owned(ev);
                }
                send(&sh, &eg, &reply, source);
            }
        }),
    );
}

/// Counts a commit's outcome; whether it is durable. Failures are logged at most once per
/// interval: while the journal cannot be written every REQUEST fails the same way.
fn committed(shared: &Shared, res: &io::Result<()>, with_reply: bool) -> bool {
    let st = &shared.stats;
    match res {
        Ok(()) => {
            st.journal_failing.store(0, Ordering::Relaxed);
            true
        }
        Err(e) => {
            st.commits_failed.fetch_add(1, Ordering::Relaxed);
            st.journal_failing.store(1, Ordering::Relaxed);
            if let Some(suppressed) = shared.commit_errors.check() {
                let what = if with_reply {
                    "ACK not sent"
                } else {
                    "DECLINE or RELEASE not recorded"
                };
                error!(error = %e, suppressed, "lease journal write failed: {what}");
            }
            false
        }
    }
}

fn send(shared: &Shared, egress: &Egress, reply: &Reply, source: Ipv4Addr) {
    match egress.send(reply, source) {
        Ok(()) => {
            shared.stats.replies.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            shared.stats.send_errors.fetch_add(1, Ordering::Relaxed);
            // a client that does not answer ARP can make this repeat at packet rate
            if let Some(held_back) = shared.limits.send_error.allow(shared.clock.now()) {
                warn!(interface = %egress.name, to = ?egress.transmission(reply), error = %e, held_back, "send failed");
            }
        }
    }
}

/// An optional address for log fields, formatted only when the line is enabled.
struct OptAddr(Option<Ipv4Addr>);

impl std::fmt::Display for OptAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(a) => write!(f, "{a}"),
            None => Ok(()),
        }
    }
}

fn log_event(shared: &Shared, ev: &DeviceEvent) {
    #[allow(irrefutable_let_patterns)] // more protocols will share the event type
    let EventDetail::Dhcp4(d) = &ev.detail
    else {
        return;
    };
    if d.event == Dhcp4Kind::Dropped {
        log_dropped(shared, ev, d);
        return;
    }
    // formatted lazily: offers are logged at debug and must cost nothing on the packet path
    let mac = ev.mac.unwrap_or_default();
    let addr = OptAddr(d.address);
    let rule = ev.rule.as_deref().unwrap_or("-");
    // one info line per lease granted or refused; offers and the rest of the exchange are in
    // the device journal and at debug level
    match d.event {
        Dhcp4Kind::Nak => {
            info!(%mac, reason = d.reason.map_or("", |r| r.as_str()), message = d.message.as_deref().unwrap_or(""), "nak")
        }
        Dhcp4Kind::Ack | Dhcp4Kind::Decline | Dhcp4Kind::NoAddress => {
            info!(%mac, address = %addr, requested_143 = d.requested_143, rule, uris = ?ev.uris, "{}", d.event)
        }
        _ => {
            debug!(%mac, address = %addr, requested_143 = d.requested_143, rule, uris = ?ev.uris, "{}", d.event)
        }
    }
    if !d.uris_dropped.is_empty() {
        warn!(%mac, dropped = ?d.uris_dropped, "option 143 trimmed to fit the reply size: lowest-preference URIs dropped");
    }
}

/// A dropped request: counted, and logged at info at most once per [`RateLimit::INTERVAL`]
/// per kind (a misconfigured relay or a foreign segment repeats at packet rate).
fn log_dropped(shared: &Shared, ev: &DeviceEvent, d: &crate::journal::Dhcp4Event) {
    let now = shared.clock.now();
    let client_id = d.client_id.as_deref().map(hex::encode).unwrap_or_default();
    match d.reason {
        Some(Dhcp4Reason::NoSubnet) => {
            let relay = d.relay.unwrap_or(Ipv4Addr::UNSPECIFIED);
            *shared
                .stats
                .no_subnet
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(relay)
                .or_default() += 1;
            if let Some(held_back) = shared.limits.no_subnet.allow(now) {
                info!(relay = %relay, interface = d.interface.as_deref().unwrap_or(""), mac = %OptMac(ev.mac), held_back, "request from a network with no configured subnet dropped");
            }
        }
        Some(Dhcp4Reason::UnsupportedHardware) => {
            shared
                .stats
                .unsupported_hardware
                .fetch_add(1, Ordering::Relaxed);
            if let Some(held_back) = shared.limits.unsupported_hardware.allow(now) {
                info!(relay = %OptAddr(d.relay), client_id, held_back, "request dropped: chaddr is not an ethernet address and there is no client identifier (option 61)");
            }
        }
        reason => {
            debug!(mac = %OptMac(ev.mac), address = %OptAddr(d.address), client_id, reason = reason.map_or("", |r| r.as_str()), "dropped");
        }
    }
}

/// An optional MAC for log fields.
struct OptMac(Option<crate::policy::MacAddr>);

impl std::fmt::Display for OptMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(m) => write!(f, "{m}"),
            None => Ok(()),
        }
    }
}
