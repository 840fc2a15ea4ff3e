//! The DHCPv6 server loop: the only DHCPv6 code that touches sockets
//!
//! One UDP socket on `[::]:547` (the `[dhcp6] port`), joined to ff02::1:2 on every served
//! interface. IPV6_RECVPKTINFO tells, per datagram, the interface it arrived on and the address
//! it was sent to; a datagram from an interface the configuration does not name is dropped and
//! counted, so the server never answers elsewhere. Replies go to the client's link-local
//! address with its scope, or to the relay; a reply that hands out or extends a binding leaves
//! only after the lease log has made its records durable.

use std::collections::HashMap;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ipnet::Ipv6Net;
use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned, MsgFlags,
    SockaddrIn6,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio_util::sync::CancellationToken;
use tracing::{debug, debug_span, error, info, warn};

use super::bindings::{Bindings, Lease6};
use super::handler::{self, Context, Event, Outcome, Reply, RequestMeta};
use super::wire::{self, ALL_DHCP_RELAY_AGENTS_AND_SERVERS};
use crate::config::Dhcp6;
use crate::journal::{unix_now, DeviceEvent, Dhcp6Kind, EventDetail};
use crate::policy::MacAddr;
use crate::runtime::{Events, ServiceContext};

/// Receive buffer asked for on the DHCPv6 socket.
pub const RECV_BUFFER: usize = 4 << 20;
/// File in state-dir holding the server DUID (hex), written once.
pub const SERVER_DUID_FILE: &str = "server-duid";
/// Expired bindings are remembered this long, so a returning device gets its old address.
pub const KEEP_EXPIRED_SECS: u64 = 86_400;
/// How often bindings are swept and interface facts re-read.
pub const HOUSEKEEPING: Duration = Duration::from_secs(30);
/// Seconds from the Unix epoch to 2000-01-01T00:00:00Z, the DUID-LLT epoch (RFC 8415 §11.2).
const DUID_EPOCH: u64 = 946_684_800;

/// Counters, logged at shutdown (and exported by the status page).
#[derive(Debug, Default)]
pub struct Stats {
    pub received: AtomicU64,
    pub malformed: AtomicU64,
    /// Datagrams from an interface `[dhcp6] interfaces` does not name.
    pub not_served: AtomicU64,
    pub ignored: AtomicU64,
    pub replies: AtomicU64,
    pub commits_failed: AtomicU64,
    pub send_errors: AtomicU64,
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

/// Called once the records of a commit are durable (or not: then the reply must not leave).
pub type CommitDone = Box<dyn FnOnce(io::Result<()>) + Send>;

/// Where bindings go before their Reply leaves: the durable lease journal. Implementations
/// group-commit and call `done` on their own thread.
pub trait LeaseLog: Send + Sync {
    /// Makes `records` durable, then calls `done` with the outcome.
    fn commit(&self, records: Vec<Lease6>, done: CommitDone);
}

/// A lease log that keeps nothing: records are "durable" at once. For tests, and for as long
/// as the DHCPv6 service runs without the lease journal.
#[derive(Debug, Default)]
pub struct Volatile;

impl LeaseLog for Volatile {
    fn commit(&self, _records: Vec<Lease6>, done: CommitDone) {
        done(Ok(()));
    }
}

/// The bound socket of the DHCPv6 service, made by [`bind`] before privileges drop.
#[derive(Debug)]
pub struct Bound6 {
    /// Non-blocking, `[::]:port`, joined to ff02::1:2 on each served interface.
    pub socket: UdpSocket,
}

/// Binds `[::]:port` and joins ff02::1:2 on each interface of `d` (RFC 8415 §7.1). Fails,
/// naming the interface, when one does not exist.
pub fn bind(d: &Dhcp6) -> io::Result<Bound6> {
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_only_v6(true)?;
    s.set_reuse_address(true)?;
    s.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, d.port)).into())?;
    for name in &d.interfaces {
        let index = nix::net::if_::if_nametoindex(name.as_str()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no such interface {name:?}"),
            )
        })?;
        s.join_multicast_v6(&ALL_DHCP_RELAY_AGENTS_AND_SERVERS, index)
            .map_err(|e| io::Error::new(e.kind(), format!("{name}: joining ff02::1:2: {e}")))?;
    }
    // a deep queue absorbs a rack of devices powering up at once
    if crate::sys::force_recv_buffer(&s, RECV_BUFFER).is_err() {
        let _ = s.set_recv_buffer_size(RECV_BUFFER);
    }
    let socket: UdpSocket = s.into();
    prepare(&socket)?;
    Ok(Bound6 { socket })
}

/// Makes any UDP/IPv6 socket servable: non-blocking, with IPV6_RECVPKTINFO on (tests hand in
/// a `[::1]:0` socket of their own).
pub fn prepare(socket: &UdpSocket) -> io::Result<()> {
    socket.set_nonblocking(true)?;
    setsockopt(socket, sockopt::Ipv6RecvPacketInfo, &true).map_err(io::Error::from)
}

/// What the server knows about one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfaceFacts {
    pub name: String,
    /// Ethernet address, if it has one (loopback does not).
    pub mac: Option<MacAddr>,
    pub mtu: u32,
    /// Non-link-local IPv6 prefixes configured on it.
    pub prefixes: Vec<Ipv6Net>,
}

/// Interface facts by index, re-read when an unknown index shows up (at most once a second)
/// and at every housekeeping tick: interfaces come and go while the server runs.
#[derive(Debug, Default)]
pub struct Interfaces {
    by_index: HashMap<u32, IfaceFacts>,
    read_at: Option<Instant>,
}

impl Interfaces {
    /// Re-reads every interface (getifaddrs, /sys/class/net/IF/mtu).
    pub fn refresh(&mut self) {
        self.read_at = Some(Instant::now());
        self.by_index = pnet::datalink::interfaces()
            .into_iter()
            .map(|i| {
                let mtu = std::fs::read_to_string(format!("/sys/class/net/{}/mtu", i.name))
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(wire::MIN_LINK_MTU);
                let prefixes = i
                    .ips
                    .iter()
                    .filter_map(|n| match n {
                        pnet::ipnetwork::IpNetwork::V6(v6) if !v6.ip().is_unicast_link_local() => {
                            Ipv6Net::new(v6.ip(), v6.prefix()).ok()
                        }
                        _ => None,
                    })
                    .collect();
                let facts = IfaceFacts {
                    name: i.name.clone(),
                    mac: i.mac.map(|m| MacAddr(m.octets())).filter(|m| m.0 != [0; 6]),
                    mtu,
                    prefixes,
                };
                (i.index, facts)
            })
            .collect();
    }

    /// Facts of interface `index`, re-reading once if it is unknown.
    pub fn get(&mut self, index: u32) -> Option<&IfaceFacts> {
        if !self.by_index.contains_key(&index)
            && self
                .read_at
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            self.refresh();
        }
        self.by_index.get(&index)
    }

    /// The Ethernet address of the first of `names` that has one.
    pub fn first_mac(&mut self, names: &[String]) -> Option<MacAddr> {
        if self.read_at.is_none() {
            self.refresh();
        }
        names.iter().find_map(|n| {
            self.by_index
                .values()
                .find(|f| &f.name == n)
                .and_then(|f| f.mac)
        })
    }
}

/// Reads the server DUID from `dir/server-duid`, or creates it once: a DUID-LLT (RFC 8415
/// §11.2) from `mac` (a random locally administered address when there is none) and `now`.
/// The file is written to a temporary name, fsync'd and renamed, so it is whole or absent.
pub fn load_or_create_server_duid(
    dir: &Path,
    mac: Option<MacAddr>,
    now: u64,
) -> io::Result<Vec<u8>> {
    let path = dir.join(SERVER_DUID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            return crate::config::validate::parse_duid(text.trim()).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: {e} (remove the file to make a new one)",
                        path.display()
                    ),
                )
            })
        }
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display())))
        }
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
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{SERVER_DUID_FILE}.tmp"));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(format!("{}\n", hex::encode(&duid)).as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()?;
    info!(file = %path.display(), duid = %hex::encode(&duid), "server duid created");
    Ok(duid)
}

/// Shared by the receive loop and the lease log's callbacks.
pub struct Shared {
    bindings: Mutex<Bindings>,
    pub stats: Stats,
    pub server_duid: Vec<u8>,
    log: Arc<dyn LeaseLog>,
    events: Events,
    socket: UdpSocket,
}

impl Shared {
    /// The bindings, even after a panic elsewhere poisoned the lock: the handler leaves the
    /// table consistent at every step, and a stalled server is worse than one odd binding.
    pub fn bindings(&self) -> MutexGuard<'_, Bindings> {
        self.bindings.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What [`Service6::start`] needs besides the socket and the context.
pub struct Setup {
    /// Bindings replayed from the lease journal.
    pub bindings: Bindings,
    /// Where committed bindings go.
    pub log: Arc<dyn LeaseLog>,
}

/// Serves with no lease journal (bindings live in memory; addresses stay stable per
/// (DUID, IAID) across restarts through the hash alone) until `token` is cancelled.
pub async fn serve(
    bound: Bound6,
    ctx: ServiceContext,
    token: CancellationToken,
) -> io::Result<Arc<Shared>> {
    let setup = Setup {
        bindings: Bindings::default(),
        log: Arc::new(Volatile),
    };
    let svc = Service6::start(bound, ctx, setup)?;
    let shared = svc.shared();
    svc.run(token).await?;
    Ok(shared)
}

/// The DHCPv6 service between start-up (server DUID read, socket adopted) and its run.
pub struct Service6 {
    shared: Arc<Shared>,
    socket: tokio::net::UdpSocket,
    ctx: ServiceContext,
    ifaces: Interfaces,
}

impl Service6 {
    /// Reads (or creates) the server DUID in `ctx.state_dir` and adopts the socket. Must be
    /// called inside the tokio runtime.
    pub fn start(bound: Bound6, ctx: ServiceContext, setup: Setup) -> io::Result<Service6> {
        prepare(&bound.socket)?;
        let mut ifaces = Interfaces::default();
        let names = ctx
            .published
            .load()
            .config
            .dhcp6
            .as_ref()
            .map(|d| d.interfaces.clone())
            .unwrap_or_default();
        let server_duid =
            load_or_create_server_duid(&ctx.state_dir, ifaces.first_mac(&names), unix_now())?;
        let shared = Arc::new(Shared {
            bindings: Mutex::new(setup.bindings),
            stats: Stats::default(),
            server_duid,
            log: setup.log,
            events: ctx.events.clone(),
            socket: bound.socket.try_clone()?,
        });
        let socket = tokio::net::UdpSocket::from_std(bound.socket)?;
        let local = socket.local_addr()?;
        for n in &names {
            info!("listening for dhcp6 on {n} {local}");
        }
        Ok(Service6 {
            shared,
            socket,
            ctx,
            ifaces,
        })
    }

    /// The state and counters, shared with the running loop.
    pub fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// Receives and answers until `token` is cancelled, then logs the counters.
    pub async fn run(self, token: CancellationToken) -> io::Result<()> {
        let Service6 {
            shared,
            socket,
            ctx,
            mut ifaces,
        } = self;
        let mut buf = vec![0u8; 65536];
        let mut tick = tokio::time::interval(HOUSEKEEPING);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                _ = tick.tick() => {
                    ifaces.refresh();
                    shared.bindings().sweep(unix_now(), KEEP_EXPIRED_SECS);
                }
                r = socket.readable() => {
                    if let Err(e) = r {
                        error!(error = %e, "dhcp6 socket failed");
                        break;
                    }
                    // drain what is queued before going back to the reactor
                    loop {
                        match socket.try_io(Interest::READABLE, || recv(&socket, &mut buf)) {
                            Ok(d) => process(&shared, &ctx, &mut ifaces, &buf[..d.len], &d, unix_now()),
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
        let st = &shared.stats;
        info!(
            received = Stats::get(&st.received),
            malformed = Stats::get(&st.malformed),
            not_served = Stats::get(&st.not_served),
            ignored = Stats::get(&st.ignored),
            replies = Stats::get(&st.replies),
            send_errors = Stats::get(&st.send_errors),
            commits_failed = Stats::get(&st.commits_failed),
            "dhcp6 stopped"
        );
        Ok(())
    }
}

/// One received datagram's envelope.
#[derive(Debug, Clone, Copy)]
pub struct Datagram {
    pub len: usize,
    pub src: SocketAddrV6,
    /// Destination address and arrival interface index (IPV6_PKTINFO).
    pub dst: Ipv6Addr,
    pub ifindex: u32,
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
pub fn process(
    shared: &Arc<Shared>,
    ctx: &ServiceContext,
    ifaces: &mut Interfaces,
    packet: &[u8],
    d: &Datagram,
    now: u64,
) {
    let stats = &shared.stats;
    Stats::bump(&stats.received);
    let Some(iface) = ifaces.get(d.ifindex).cloned() else {
        Stats::bump(&stats.not_served);
        debug!(ifindex = d.ifindex, src = %d.src, "datagram from an unknown interface; dropped");
        return;
    };
    let snap = ctx.published.load();
    let Some(dhcp6) = snap.config.dhcp6.as_ref() else {
        Stats::bump(&stats.ignored);
        return;
    };
    if !dhcp6.interfaces.contains(&iface.name) {
        Stats::bump(&stats.not_served);
        debug!(interface = %iface.name, src = %d.src, "datagram on an interface not in [dhcp6] interfaces; dropped");
        return;
    }
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
        iface_addrs: iface.prefixes.clone(),
        link_mtu: iface.mtu,
        src,
        dst: d.dst,
    };
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
        Ok(o) => finish(shared, o, d.dst, now),
        Err(_) => {
            Stats::bump(&stats.handler_panics);
            error!(msg_type = ?req.msg_type, "handler panicked on a request; dropped");
        }
    }
}

fn finish(shared: &Arc<Shared>, outcome: Outcome, received_at: Ipv6Addr, now: u64) {
    let Outcome {
        reply,
        commit,
        event,
        ignored,
    } = outcome;
    if let Some(why) = ignored {
        Stats::bump(&shared.stats.ignored);
        debug!(reason = why, "no reply");
    }
    if let Some(ev) = &event {
        log_event(ev);
        shared.events.emit(&device_event(ev, now));
    }
    let Some(reply) = reply else {
        if !commit.is_empty() {
            shared.log.commit(commit, Box::new(|_| {}));
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
    shared.log.commit(
        commit,
        Box::new(move |res| match res {
            Ok(()) => send(&sh, &reply, from),
            Err(e) => {
                Stats::bump(&sh.stats.commits_failed);
                error!(error = %e, "lease journal write failed: reply not sent");
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
pub fn send_to(
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

fn log_event(ev: &Event) {
    let duid = ev.duid.as_deref().map(hex::encode).unwrap_or_default();
    let addr = OptAddr(ev.address);
    let rule = ev.rule.as_deref().unwrap_or("-");
    // one info line per binding made, declined or refused; the rest is in the device journal
    match (ev.kind, ev.status) {
        (_, Some(status)) => {
            info!(%duid, address = %addr, requested_136 = ev.requested_136, rule, status = status.as_str(), "{}", ev.kind)
        }
        (Dhcp6Kind::Request | Dhcp6Kind::RapidCommit | Dhcp6Kind::Decline, None) => {
            info!(%duid, address = %addr, requested_136 = ev.requested_136, rule, uris = ?ev.uris, "{}", ev.kind)
        }
        _ => {
            debug!(%duid, address = %addr, requested_136 = ev.requested_136, rule, uris = ?ev.uris, "{}", ev.kind)
        }
    }
    if !ev.uris_dropped.is_empty() {
        warn!(%duid, dropped = ?ev.uris_dropped, "option 136 trimmed to fit the client's link: lowest-preference URIs dropped");
    }
}

/// The device-journal form of a handler event.
pub fn device_event(ev: &Event, now: u64) -> DeviceEvent {
    let mut d = DeviceEvent::dhcp6(now, ev.kind, ev.xid, ev.duid.clone().unwrap_or_default());
    if ev.duid.is_none() {
        d.duid = None;
    }
    d.mac = ev.mac;
    d.rule = ev.rule.clone();
    d.uris = ev.uris.clone();
    if let EventDetail::Dhcp6(x) = &mut d.detail {
        x.iaid = ev.iaid;
        x.address = ev.address;
        x.vendor_class = ev.vendor_class.clone();
        x.enterprise_number = ev.enterprise_number;
        x.user_class = ev.user_class.clone();
        x.interface = Some(ev.interface.clone());
        x.relay = ev.relay.map(|r| r.to_string());
        x.requested_136 = ev.requested_136;
        x.uris_dropped = ev.uris_dropped.clone();
        x.encoding = ev.encoding.map(str::to_string);
        x.status = ev.status;
    }
    d
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
    fn loopback_facts_and_a_join_on_lo() {
        let mut ifaces = Interfaces::default();
        let index = nix::net::if_::if_nametoindex("lo").unwrap();
        let lo = ifaces.get(index).unwrap().clone();
        assert_eq!(lo.name, "lo");
        assert_eq!(lo.mac, None);
        assert!(lo.mtu >= 1280);
        assert!(lo.prefixes.iter().any(|p| p.addr() == Ipv6Addr::LOCALHOST));
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
        let missing = Dhcp6 {
            interfaces: vec!["eth9-nope".into()],
            ..d
        };
        assert_eq!(
            bind(&missing).unwrap_err().to_string(),
            "no such interface \"eth9-nope\""
        );
    }
}
