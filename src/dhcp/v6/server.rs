//! The DHCPv6 server loop: the only DHCPv6 code that touches sockets
//!
//! `bind` opens one UDP socket on `[::]:547` (the `[dhcp6] port`), joined to ff02::1:2 on every
//! served interface; `serve` opens the lease journal (`leases6.journal`) and the server DUID,
//! then receives until its token is cancelled. IPV6_RECVPKTINFO tells, per datagram, the
//! interface it arrived on and the address it was sent to; a datagram from an interface the
//! configuration does not name is dropped and counted, so the server never answers elsewhere.
//! Replies go to the client's link-local address with its scope, or to the relay. A reply that
//! hands out, extends, releases or declines a binding leaves only after the lease writer has
//! fsync'd its records (group commit, shared with DHCPv4's journal code). On cancel the loop
//! stops receiving, the writer writes what is queued and sends those replies, and `serve`
//! returns.

use std::collections::HashMap;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use ipnet::Ipv6Net;
use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned, MsgFlags,
    SockaddrIn6,
};
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio_util::sync::CancellationToken;
use tracing::{debug, debug_span, error, info, warn};

use super::bindings::{Bindings, Lease6};
use super::handler::{self, Context, Outcome, Reply, RequestMeta};
use super::wire::{self, ALL_DHCP_RELAY_AGENTS_AND_SERVERS};
use crate::config::Dhcp6;
use crate::dhcp::lease_store::{should_compact, Journal, JournalWriter};
use crate::journal::{DeviceEvent, Dhcp6Kind, EventDetail};
use crate::metrics::{counter, DropLabels};
use crate::policy::MacAddr;
use crate::runtime::{Clock, Events, Published, ServiceContext};
use crate::state_dir::{Access, StateDir};
use crate::udp_bind::{bind_exclusive, PortClaim};

/// Receive buffer asked for on the DHCPv6 socket, in octets.
pub const RECV_BUFFER: usize = 4 << 20;
/// File in state-dir holding the server DUID (hex), written once.
pub const SERVER_DUID_FILE: &str = "server-duid";
/// Expired bindings are remembered this long (seconds), so a returning device gets its old
/// address.
pub const KEEP_EXPIRED_SECS: u64 = 86_400;
/// How often stale advertisements and long-expired bindings are swept, the journal is checked
/// for compaction and interface MTUs are re-read.
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(30);
/// Seconds from the Unix epoch to 2000-01-01T00:00:00Z, the DUID-LLT epoch (RFC 8415 §11.2).
const DUID_EPOCH: u64 = 946_684_800;

/// Counters, logged at shutdown (and exported by the status page).
#[derive(Debug, Default)]
pub struct Stats {
    /// Datagrams received.
    pub received: AtomicU64,
    /// Datagrams that did not decode as a DHCPv6 client or relay message (dropped).
    pub malformed: AtomicU64,
    /// Datagrams from an interface `[dhcp6] interfaces` does not name (dropped).
    pub not_served: AtomicU64,
    /// Messages handled without a reply (another server's, no client id, unicast, …).
    pub ignored: AtomicU64,
    /// Replies sent.
    pub replies: AtomicU64,
    /// Binding commits that failed: their replies were not sent.
    pub commits_failed: AtomicU64,
    /// Replies the socket refused.
    pub send_errors: AtomicU64,
    /// Datagrams whose decoding or handling panicked (dropped; the loop goes on).
    pub handler_panics: AtomicU64,
}

impl Stats {
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// A counter's value.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// The DHCPv6 lease journal: [`Lease6`] records in `leases6.journal`.
pub type Lease6Store = Journal<Lease6>;
/// Group commit of the DHCPv6 lease journal.
pub type Lease6Writer = JournalWriter<Lease6>;

/// The bound socket of the DHCPv6 service, made by [`bind`] before privileges drop.
#[derive(Debug)]
pub struct Bound6 {
    /// The `[dhcp6] interfaces` names, in file order.
    pub interfaces: Vec<String>,
    /// Non-blocking, IPV6_RECVPKTINFO on; normally `[::]:port` joined to ff02::1:2 on each
    /// interface.
    pub socket: UdpSocket,
    /// The counters of the service that will serve this socket: keep a clone to read them
    /// while it runs.
    pub stats: Arc<Stats>,
    /// Keeps other processes off this port while the socket serves (`None` for a socket the
    /// caller bound itself).
    pub claim: Option<Arc<PortClaim>>,
}

impl Bound6 {
    /// Serves `socket` for `interfaces` (tests hand in a `[::1]:0` socket and `["lo"]`): makes
    /// it non-blocking and turns IPV6_RECVPKTINFO on.
    ///
    /// # Errors
    /// The socket options cannot be set.
    pub fn new(interfaces: Vec<String>, socket: UdpSocket) -> io::Result<Bound6> {
        socket.set_nonblocking(true)?;
        setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true).map_err(io::Error::from)?;
        Ok(Bound6 {
            interfaces,
            socket,
            stats: Arc::new(Stats::default()),
            claim: None,
        })
    }
}

/// Binds `[::]:port`, joins ff02::1:2 on each interface of `d` (RFC 8415 §7.1) and logs
/// `listening for dhcp6 on IF [::]:PORT` for each.
///
/// # Errors
/// `cannot listen on interface eth9: no such interface "eth9"`, or the socket error.
pub fn bind(d: &Dhcp6) -> io::Result<Bound6> {
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_only_v6(true)?;
    // no SO_REUSEADDR: a second DHCPv6 server on this port fails here instead of silently
    // taking the relayed (unicast) traffic; a reload's rebind shares it only with our own
    let claim = bind_exclusive(&s, SocketAddr::from((Ipv6Addr::UNSPECIFIED, d.port)), None)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on [::]:{}: {e}", d.port)))?;
    for name in &d.interfaces {
        let index = nix::net::if_::if_nametoindex(name.as_str()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("cannot listen on interface {name}: no such interface {name:?}"),
            )
        })?;
        s.join_multicast_v6(&ALL_DHCP_RELAY_AGENTS_AND_SERVERS, index)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot listen on interface {name}: joining ff02::1:2: {e}"),
                )
            })?;
    }
    // a deep queue absorbs a rack of devices powering up at once
    if crate::sys::force_recv_buffer(&s, RECV_BUFFER).is_err() {
        let _ = s.set_recv_buffer_size(RECV_BUFFER);
    }
    let mut b = Bound6::new(d.interfaces.clone(), s.into())?;
    b.claim = Some(claim);
    let local = b.socket.local_addr()?;
    for name in &b.interfaces {
        info!("listening for dhcp6 on {name} {local}");
    }
    Ok(b)
}

/// Reads the server DUID from `dir/server-duid`, or creates it once: a DUID-LLT (RFC 8415
/// §11.2) from `mac` (a random locally administered address when there is none) and `now`.
/// The file is written to a temporary name, fsync'd and renamed, so it is whole or absent.
/// Like every state file it is reached through the state directory's descriptor, never
/// through a symbolic link ([`StateDir`]).
///
/// # Errors
/// The directory or the file cannot be opened (a link planted in its place is refused), read
/// or written, or the file does not hold a DUID in hex.
pub fn load_or_create_server_duid(
    dir: &Path,
    mac: Option<MacAddr>,
    now: u64,
) -> io::Result<Vec<u8>> {
    use std::io::{Read, Write};
    let sd = StateDir::create(dir)?;
    let path = sd.join(SERVER_DUID_FILE);
    match sd.open_file(SERVER_DUID_FILE, Access::Read) {
        Ok(mut f) => {
            let mut text = String::new();
            f.read_to_string(&mut text)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            return crate::config::validate::parse_duid(text.trim()).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: {e} (remove the file to make a new one)",
                        path.display()
                    ),
                )
            });
        }
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    let mac = match mac {
        Some(m) => m,
        None => {
            let mut m = [0u8; 6];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut m)
                .map_err(|_| io::Error::other("no randomness for a server DUID"))?;
            // locally administered, unicast
            m[0] = (m[0] & 0xfc) | 0x02;
            MacAddr(m)
        }
    };
    let duid = wire::duid_llt(mac, (now.saturating_sub(DUID_EPOCH) & 0xffff_ffff) as u32);
    let tmp = format!("{SERVER_DUID_FILE}.tmp");
    // a leftover of a crash between create and rename
    sd.remove(&tmp)?;
    {
        let mut f = sd.open_file(&tmp, Access::CreateNew)?;
        f.write_all(format!("{}\n", hex::encode(&duid)).as_bytes())?;
        f.sync_all()?;
    }
    sd.rename(&tmp, SERVER_DUID_FILE)?;
    sd.sync()?;
    info!(file = %path.display(), duid = %hex::encode(&duid), "server duid created");
    Ok(duid)
}

/// Interface MTUs in octets by name, read from `/sys/class/net/IF/mtu` on first use and
/// forgotten at every housekeeping round (the rest of an interface's facts come from the
/// published snapshot).
#[derive(Debug, Default)]
struct Mtus(HashMap<String, u32>);

impl Mtus {
    fn get(&mut self, name: &str) -> u32 {
        *self.0.entry(name.to_owned()).or_insert_with(|| {
            std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(wire::MIN_LINK_MTU)
        })
    }
}

/// Shared by the receive loop and the lease writer's callbacks.
struct Shared {
    /// The bindings, the only thing behind this service's lock.
    bindings: Mutex<Bindings>,
    writer: Lease6Writer,
    stats: Arc<Stats>,
    server_duid: Vec<u8>,
    published: Published,
    events: Events,
    clock: Clock,
    /// A clone of the receiving socket, for replies sent from the writer thread.
    socket: UdpSocket,
}

impl Shared {
    /// The bindings, even after a panic elsewhere poisoned the lock: the handler leaves the
    /// table consistent at every step, and a stalled server is worse than one odd binding.
    fn bindings(&self) -> MutexGuard<'_, Bindings> {
        self.bindings.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Lease commits and their `fdatasync` time into `sztp_lease_commits_total` and
/// `sztp_lease_fsync_seconds` (`proto="dhcp6"`).
fn lease_observer(ctx: &ServiceContext) -> crate::dhcp::lease_store::CommitObserver {
    let leases = ctx.metrics.leases.clone();
    Box::new(move |records, took| leases.observe_commit("dhcp6", records, took.as_secs_f64()))
}

/// Reads the DHCPv6 server's [`Stats`] and its bindings at each scrape (`sztp_dhcp6_*`). Holds
/// the server weakly: a server a reload stopped reports nothing.
struct Dhcp6Source(Weak<Shared>);

impl crate::metrics::Source for Dhcp6Source {
    fn encode(&self, enc: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(shared) = self.0.upgrade() else {
            return Ok(());
        };
        let st = &shared.stats;
        counter(
            enc,
            "dhcp6_requests",
            "Datagrams received by the dhcp6 service",
            Stats::get(&st.received),
        )?;
        counter(
            enc,
            "dhcp6_replies",
            "Replies sent by the dhcp6 service (Advertise, Reply, Relay-reply)",
            Stats::get(&st.replies),
        )?;
        {
            let mut me = enc.encode_descriptor(
                "dhcp6_dropped",
                "Datagrams the dhcp6 service dropped without a reply, by reason",
                None,
                MetricType::Counter,
            )?;
            for (reason, c) in [
                ("malformed", &st.malformed),
                ("not-served-interface", &st.not_served),
                ("ignored", &st.ignored),
                ("send-error", &st.send_errors),
                ("commit-failed", &st.commits_failed),
                ("handler-panic", &st.handler_panics),
            ] {
                let l = DropLabels {
                    reason: reason.into(),
                };
                ConstCounter::new(Stats::get(c)).encode(me.encode_family(&l)?)?;
            }
        }
        counter(
            enc,
            "dhcp6_lease_syncs",
            "fdatasync calls of the DHCPv6 lease writer (each covers one group of commits)",
            shared.writer.syncs(),
        )?;
        let (total, active) = {
            let b = shared.bindings();
            (b.len(), b.active(shared.clock.now()))
        };
        for (name, help, v) in [
            (
                "dhcp6_bindings",
                "DHCPv6 bindings remembered (active, expired kept for returning clients, \
                 quarantined)",
                total,
            ),
            (
                "dhcp6_bindings_active",
                "DHCPv6 bindings whose valid lifetime has not ended",
                active,
            ),
        ] {
            let g = ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
            g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}

/// Runs the DHCPv6 service on `bound` until `token` is cancelled (see the module doc), with
/// the wall clock.
///
/// # Errors
/// The lease journal in `ctx.state_dir` cannot be opened or replayed (a corrupt record other
/// than the last names `FILE:LINE`), the server DUID file is unreadable, or the socket cannot
/// be handed to tokio.
pub async fn serve(bound: Bound6, ctx: ServiceContext, token: CancellationToken) -> io::Result<()> {
    serve_with_clock(bound, ctx, token, Clock::System).await
}

/// [`serve`] with `now` read from `clock` (tests pass [`Clock::tokio_at`]).
pub async fn serve_with_clock(
    bound: Bound6,
    ctx: ServiceContext,
    token: CancellationToken,
    clock: Clock,
) -> io::Result<()> {
    let snap = ctx.published.load();
    // the server DUID from the first served interface with a MAC, as Kea and ISC dhcpd do
    let mac = bound
        .interfaces
        .iter()
        .find_map(|n| snap.interfaces.get(n).and_then(|i| i.mac));
    let state_dir = ctx.state_dir.clone();
    let now = clock.now();
    let (store, records, server_duid) = tokio::task::spawn_blocking(move || {
        let duid = load_or_create_server_duid(&state_dir, mac, now)?;
        let (store, records) = Lease6Store::open(&state_dir).map_err(io::Error::other)?;
        Ok::<_, io::Error>((store, records, duid))
    })
    .await
    .map_err(io::Error::other)??;
    let bindings = Bindings::from_records(records);
    info!(
        bindings = bindings.len(),
        active = bindings.active(now),
        server_duid = %hex::encode(&server_duid),
        "dhcp6 lease journal replayed"
    );
    let shared = Arc::new(Shared {
        bindings: Mutex::new(bindings),
        writer: Lease6Writer::spawn_observed(store, Some(lease_observer(&ctx))),
        stats: bound.stats,
        server_duid,
        published: ctx.published.clone(),
        events: ctx.events.clone(),
        clock,
        socket: bound.socket.try_clone()?,
    });
    ctx.metrics
        .set_source("dhcp6", Box::new(Dhcp6Source(Arc::downgrade(&shared))));
    // the port stays ours until this instance has sent its last reply
    let claim = bound.claim;
    let socket = tokio::net::UdpSocket::from_std(bound.socket)?;
    let mut mtus = Mtus::default();
    let mut buf = vec![0u8; 65536];
    let mut tick = tokio::time::interval(HOUSEKEEPING_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            biased;
            _ = token.cancelled() => break,
            _ = tick.tick() => {
                mtus = Mtus::default();
                housekeeping(&shared, shared.clock.now());
            }
            r = socket.readable() => {
                if let Err(e) = r {
                    error!(error = %e, "dhcp6 socket failed");
                    break;
                }
                // drain what is queued before going back to the reactor
                loop {
                    match socket.try_io(Interest::READABLE, || recv(&socket, &mut buf)) {
                        Ok(d) => process(&shared, &mut mtus, &buf[..d.len], &d),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            // ICMP errors from earlier sends surface here; never stop for them
                            debug!(error = %e, "dhcp6 recv error");
                            break;
                        }
                    }
                }
            }
        }
    }
    // Nothing is received any more: write what is queued, send those replies, stop.
    let writer = shared.writer.clone();
    let syncs = writer.syncs();
    tokio::task::spawn_blocking(move || writer.shutdown())
        .await
        .map_err(io::Error::other)?;
    drop(claim);
    let st = &shared.stats;
    info!(
        received = Stats::get(&st.received),
        malformed = Stats::get(&st.malformed),
        not_served = Stats::get(&st.not_served),
        ignored = Stats::get(&st.ignored),
        replies = Stats::get(&st.replies),
        send_errors = Stats::get(&st.send_errors),
        commits_failed = Stats::get(&st.commits_failed),
        lease_syncs = syncs,
        "dhcp6 stopped"
    );
    Ok(())
}

/// Sweeps stale advertisements and long-expired bindings; compacts the journal when it has
/// grown (the live set includes declined addresses still in quarantine).
fn housekeeping(shared: &Shared, now: u64) {
    let live = {
        let mut b = shared.bindings();
        b.sweep(now, KEEP_EXPIRED_SECS);
        let live = b.records();
        if should_compact(shared.writer.records_since_compact(), live.len()) {
            Some(live)
        } else {
            None
        }
    };
    if let Some(live) = live {
        info!(records = live.len(), "compacting the dhcp6 lease journal");
        shared.writer.compact(live);
    }
}

/// One received datagram's envelope.
#[derive(Debug, Clone, Copy)]
struct Datagram {
    len: usize,
    src: SocketAddrV6,
    /// Destination address and arrival interface index (IPV6_PKTINFO).
    dst: Ipv6Addr,
    ifindex: u32,
}

fn recv(socket: &tokio::net::UdpSocket, buf: &mut [u8]) -> io::Result<Datagram> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo);
    let msg = recvmsg::<SockaddrIn6>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    let mut dst = Ipv6Addr::UNSPECIFIED;
    let mut ifindex = 0;
    for c in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::Ipv6PacketInfo(pi) = c {
            dst = Ipv6Addr::from(pi.ipi6_addr.s6_addr);
            ifindex = pi.ipi6_ifindex;
        }
    }
    let src = msg
        .address
        .map(SocketAddrV6::from)
        .ok_or_else(|| io::Error::other("datagram without a source address"))?;
    Ok(Datagram {
        len: msg.bytes,
        src,
        dst,
        ifindex,
    })
}

/// Decodes, handles and answers one datagram.
fn process(shared: &Arc<Shared>, mtus: &mut Mtus, packet: &[u8], d: &Datagram) {
    let stats = &shared.stats;
    Stats::bump(&stats.received);
    let snap = shared.published.load();
    let Some(dhcp6) = snap.config.dhcp6.as_ref() else {
        // disabled by a reload; this instance is being stopped
        Stats::bump(&stats.ignored);
        return;
    };
    // the snapshot knows every interface the file names, read at start and on SIGHUP
    let Some(iface) = snap
        .interfaces
        .values()
        .find(|i| i.index == d.ifindex && dhcp6.interfaces.contains(&i.name))
    else {
        Stats::bump(&stats.not_served);
        debug!(ifindex = d.ifindex, src = %d.src, "datagram on an interface not in [dhcp6] interfaces; dropped");
        return;
    };
    let req = match catch_unwind(|| wire::decode(packet)) {
        Ok(Ok(r)) => r,
        Ok(Err(why)) => {
            Stats::bump(&stats.malformed);
            debug!(interface = %iface.name, src = %d.src, reason = why.as_str(), len = packet.len(), "dropped malformed packet");
            return;
        }
        Err(_) => {
            Stats::bump(&stats.handler_panics);
            error!(interface = %iface.name, src = %d.src, "decoder panicked on a packet; dropped");
            return;
        }
    };
    let span = debug_span!("dhcp6", xid = format_args!("{:#08x}", req.xid_num()));
    let _enter = span.enter();
    // a link-local peer is only reachable through the interface it came from
    let mut src = d.src;
    if src.ip().is_unicast_link_local() && src.scope_id() == 0 {
        src.set_scope_id(d.ifindex);
    }
    let meta = RequestMeta {
        interface: iface.name.clone(),
        iface_addrs: iface
            .ipv6
            .iter()
            .filter(|n| !n.addr().is_unicast_link_local())
            .copied()
            .collect::<Vec<Ipv6Net>>(),
        link_mtu: mtus.get(&iface.name),
        src,
        dst: d.dst,
    };
    let now = shared.clock.now();
    let outcome = {
        let mut b = shared.bindings();
        let hctx = Context {
            dhcp6,
            policy: &snap.policy,
            server_duid: &shared.server_duid,
        };
        catch_unwind(AssertUnwindSafe(|| {
            handler::handle(&hctx, &mut b, &req, &meta, now)
        }))
    };
    match outcome {
        Ok(o) => finish(shared, o, d.dst),
        Err(_) => {
            Stats::bump(&stats.handler_panics);
            error!(msg_type = ?req.msg_type, "handler panicked on a request; dropped");
        }
    }
}

/// Emits the event, then commits the binding changes and only once they are durable sends the
/// reply.
fn finish(shared: &Arc<Shared>, outcome: Outcome, received_at: Ipv6Addr) {
    let Outcome {
        reply,
        commit,
        event,
        ignored,
    } = outcome;
    if let Some(why) = ignored {
        Stats::bump(&shared.stats.ignored);
        debug!(reason = why.as_str(), "no reply");
    }
    if let Some(ev) = &event {
        log_event(ev);
        shared.events.emit(ev);
    }
    let Some(reply) = reply else {
        if !commit.is_empty() {
            shared.writer.commit(commit, Box::new(|_| {}));
        }
        return;
    };
    // answer a unicast from the address it was sent to (a relay may check)
    let from =
        (!received_at.is_multicast() && !received_at.is_unspecified()).then_some(received_at);
    if commit.is_empty() {
        send(shared, &reply, from);
        return;
    }
    let sh = Arc::clone(shared);
    shared.writer.commit(
        commit,
        Box::new(move |res| match res {
            Ok(()) => send(&sh, &reply, from),
            Err(e) => {
                Stats::bump(&sh.stats.commits_failed);
                error!(error = %e, "dhcp6 lease journal write failed: reply not sent");
            }
        }),
    );
}

fn send(shared: &Shared, reply: &Reply, from: Option<Ipv6Addr>) {
    match send_to(&shared.socket, &reply.bytes, reply.to, from) {
        Ok(_) => Stats::bump(&shared.stats.replies),
        Err(e) => {
            Stats::bump(&shared.stats.send_errors);
            warn!(to = %reply.to, error = %e, "dhcp6 send failed");
        }
    }
}

/// Sends `bytes` to `to`, from the source address `from` when given (IPV6_PKTINFO).
fn send_to(
    socket: &UdpSocket,
    bytes: &[u8],
    to: SocketAddrV6,
    from: Option<Ipv6Addr>,
) -> io::Result<usize> {
    let Some(from) = from else {
        return socket.send_to(bytes, to);
    };
    let info = libc::in6_pktinfo {
        ipi6_addr: libc::in6_addr {
            s6_addr: from.octets(),
        },
        ipi6_ifindex: 0,
    };
    let iov = [IoSlice::new(bytes)];
    sendmsg(
        socket.as_raw_fd(),
        &iov,
        &[ControlMessage::Ipv6PacketInfo(&info)],
        MsgFlags::empty(),
        Some(&SockaddrIn6::from(to)),
    )
    .map_err(io::Error::from)
}

/// An optional address for log fields, formatted only when the line is enabled.
struct OptAddr(Option<Ipv6Addr>);

impl std::fmt::Display for OptAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(a) => write!(f, "{a}"),
            None => Ok(()),
        }
    }
}

/// A DUID in hex, formatted only when the line is enabled.
struct Hex<'a>(&'a [u8]);

impl std::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

fn log_event(ev: &DeviceEvent) {
    let EventDetail::Dhcp6(d) = &ev.detail else {
        return;
    };
    let duid = Hex(ev.duid.as_deref().unwrap_or_default());
    let addr = OptAddr(d.address);
    let rule = ev.rule.as_deref().unwrap_or("-");
    // one info line per binding made, declined or refused; the rest is in the device journal
    match (d.event, d.status) {
        (_, Some(status)) => {
            info!(%duid, address = %addr, requested_136 = d.requested_136, rule, status = status.as_str(), "{}", d.event)
        }
        (Dhcp6Kind::Request | Dhcp6Kind::RapidCommit | Dhcp6Kind::Decline, None) => {
            info!(%duid, address = %addr, requested_136 = d.requested_136, rule, uris = ?ev.uris, "{}", d.event)
        }
        _ => {
            debug!(%duid, address = %addr, requested_136 = d.requested_136, rule, uris = ?ev.uris, "{}", d.event)
        }
    }
    if !d.uris_dropped.is_empty() {
        warn!(%duid, dropped = ?d.uris_dropped, "option 136 trimmed to fit the client's link: lowest-preference URIs dropped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_duid_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let now = DUID_EPOCH + 0x0102_0304;
        let d = load_or_create_server_duid(dir.path(), Some(mac), now).unwrap();
        assert_eq!(hex::encode(&d), "0001000101020304020000000001");
        assert_eq!(
            std::fs::read_to_string(dir.path().join(SERVER_DUID_FILE)).unwrap(),
            "0001000101020304020000000001\n"
        );
        // later starts read it, whatever the interfaces and the time are now
        let again = load_or_create_server_duid(dir.path(), None, now + 999).unwrap();
        assert_eq!(again, d);
        assert!(!dir.path().join("server-duid.tmp").exists());
    }

    #[test]
    fn a_link_planted_as_the_server_duid_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "0001000101020304020000000001\n").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join(SERVER_DUID_FILE)).unwrap();
        let e = load_or_create_server_duid(dir.path(), None, DUID_EPOCH).unwrap_err();
        assert!(e.to_string().contains("is a symbolic link"), "{e}");
        // and a link at the temporary name is removed, never written through
        std::fs::remove_file(dir.path().join(SERVER_DUID_FILE)).unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("server-duid.tmp")).unwrap();
        load_or_create_server_duid(dir.path(), None, DUID_EPOCH).unwrap();
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            "0001000101020304020000000001\n"
        );
    }

    #[test]
    fn without_a_mac_the_duid_gets_a_random_local_one() {
        let dir = tempfile::tempdir().unwrap();
        let d = load_or_create_server_duid(dir.path(), None, DUID_EPOCH).unwrap();
        assert_eq!(&d[..8], &[0, 1, 0, 1, 0, 0, 0, 0]);
        assert_eq!(d[8] & 0x03, 0x02, "locally administered unicast");
        let other = tempfile::tempdir().unwrap();
        assert_ne!(
            load_or_create_server_duid(other.path(), None, DUID_EPOCH).unwrap(),
            d
        );
    }

    #[test]
    fn a_damaged_duid_file_stops_the_start_and_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SERVER_DUID_FILE), "not hex\n").unwrap();
        let e = load_or_create_server_duid(dir.path(), None, DUID_EPOCH).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let msg = e.to_string();
        assert!(msg.contains("server-duid"), "{msg}");
        assert!(msg.contains("remove the file"), "{msg}");
    }

    #[test]
    fn a_join_on_lo_and_a_missing_interface() {
        let d = Dhcp6 {
            interfaces: vec!["lo".into()],
            port: 0,
            rapid_commit: false,
            server_unicast: None,
            offer_time: Duration::from_secs(60),
            decline_time: Duration::from_secs(60),
            subnets: vec![],
        };
        let b = bind(&d).unwrap();
        assert!(b.socket.local_addr().unwrap().is_ipv6());
        assert_eq!(b.interfaces, ["lo"]);
        let missing = Dhcp6 {
            interfaces: vec!["eth9-nope".into()],
            ..d
        };
        assert_eq!(
            bind(&missing).unwrap_err().to_string(),
            "cannot listen on interface eth9-nope: no such interface \"eth9-nope\""
        );
    }

    #[test]
    fn mtus_are_read_from_sysfs_and_default_to_the_ipv6_minimum() {
        let mut m = Mtus::default();
        assert!(m.get("lo") >= 1280);
        assert_eq!(m.get("eth9-nope"), wire::MIN_LINK_MTU);
    }
}
