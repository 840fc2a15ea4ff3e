//! The DHCPv4 server loop: the only DHCPv4 code that touches sockets
//!
//! One UDP socket per served interface (SO_BINDTODEVICE), a task per socket that decodes,
//! calls the handler under the state lock and sends. Replies that hand out or extend a lease
//! go through the lease writer, which fsyncs a whole group of records once and only then
//! sends their replies: an ACK never leaves before its lease is on disk.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket as StdUdpSocket};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tracing::{debug, debug_span, error, info, warn};

use super::handler::{self, Context, Destination, Event, Outcome, Reply, RequestMeta};
use super::sockets::{bind_udp4, iface_info, IfaceInfo, RawSender};
use super::wire::Request;
use crate::config::Dhcp4;
use crate::dhcp::lease_store::LeaseWriter;
use crate::dhcp::leases::LeaseTable;
use crate::journal::{DeviceEvent, DeviceJournal, Dhcp4Kind, EventDetail};
use crate::policy::Policy;

/// Counters, exported by the status page and logged at shutdown.
#[derive(Debug, Default)]
pub struct Stats {
    pub received: AtomicU64,
    pub malformed: AtomicU64,
    pub ignored: AtomicU64,
    pub replies: AtomicU64,
    pub commits_failed: AtomicU64,
    pub send_errors: AtomicU64,
    pub handler_panics: AtomicU64,
}

/// What the handler reads and writes, behind one lock.
pub struct State {
    pub dhcp4: Arc<Dhcp4>,
    pub policy: Arc<Policy>,
    pub table: LeaseTable,
}

/// Shared by every socket task of the DHCPv4 service.
pub struct Shared {
    state: Mutex<State>,
    pub writer: LeaseWriter,
    pub journal: Option<Arc<DeviceJournal>>,
    pub stats: Stats,
}

impl Shared {
    pub fn new(
        dhcp4: Arc<Dhcp4>,
        policy: Arc<Policy>,
        table: LeaseTable,
        writer: LeaseWriter,
        journal: Option<Arc<DeviceJournal>>,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(State {
                dhcp4,
                policy,
                table,
            }),
            writer,
            journal,
            stats: Stats::default(),
        })
    }

    /// The state, even after a panic elsewhere poisoned the lock: the handler leaves the
    /// table consistent at every step, and a stalled server is worse than one odd lease.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Swap in a reloaded configuration; leases stay.
    pub fn reload(&self, dhcp4: Arc<Dhcp4>, policy: Arc<Policy>) {
        let mut st = self.state();
        st.dhcp4 = dhcp4;
        st.policy = policy;
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The sending side of one interface; shared with the lease writer's thread.
pub struct Egress {
    pub info: IfaceInfo,
    pub socket: StdUdpSocket,
    pub raw: Option<Mutex<RawSender>>,
    pub port: u16,
}

impl Egress {
    fn source_addr(&self) -> Ipv4Addr {
        self.info
            .ipv4
            .first()
            .map(|n| n.addr())
            .unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    pub fn send(&self, reply: &Reply) -> std::io::Result<()> {
        let broadcast = |port| {
            self.socket
                .send_to(&reply.bytes, SocketAddrV4::new(Ipv4Addr::BROADCAST, port))
                .map(|_| ())
        };
        match reply.to {
            Destination::Relay(to) | Destination::Unicast(to) => {
                self.socket.send_to(&reply.bytes, to).map(|_| ())
            }
            Destination::Broadcast(port) => broadcast(port),
            Destination::Link { mac, to } => match &self.raw {
                Some(raw) => {
                    let src = SocketAddrV4::new(self.source_addr(), self.port);
                    raw.lock().unwrap_or_else(|e| e.into_inner()).send_udp(
                        mac,
                        src,
                        to,
                        &reply.bytes,
                    )
                }
                None => broadcast(to.port()),
            },
        }
    }
}

/// Bind one interface: its UDP socket and, when CAP_NET_RAW allows, a raw sender.
pub fn bind_interface(
    name: &str,
    port: u16,
) -> std::io::Result<(Arc<Egress>, tokio::net::UdpSocket)> {
    let info = iface_info(name)?;
    let std_sock = bind_udp4(name, port)?;
    let send_sock = std_sock.try_clone()?;
    let raw = match RawSender::open(&info) {
        Ok(r) => Some(Mutex::new(r)),
        Err(e) => {
            if info.mac.is_some() {
                warn!(interface = name, error = %e, "raw frames unavailable: replies to clients without an address are broadcast");
            }
            None
        }
    };
    let recv = tokio::net::UdpSocket::from_std(std_sock)?;
    Ok((
        Arc::new(Egress {
            info,
            socket: send_sock,
            raw,
            port,
        }),
        recv,
    ))
}

/// Receive on one interface until `shutdown` turns true.
pub async fn serve(
    shared: Arc<Shared>,
    egress: Arc<Egress>,
    socket: tokio::net::UdpSocket,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, src)) => process(&shared, &egress, &buf[..n], src, unix_now()),
                Err(e) => {
                    // ICMP errors from earlier sends surface here; never stop the loop for them
                    debug!(interface = %egress.info.name, error = %e, "recv error");
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}

/// Decode, handle and answer one datagram.
pub fn process(
    shared: &Arc<Shared>,
    egress: &Arc<Egress>,
    packet: &[u8],
    src: SocketAddr,
    now: u64,
) {
    let stats = &shared.stats;
    stats.received.fetch_add(1, Ordering::Relaxed);
    let req = match catch_unwind(|| Request::decode(packet)) {
        Ok(Ok(r)) => r,
        Err(_) => {
            stats.handler_panics.fetch_add(1, Ordering::Relaxed);
            error!(interface = %egress.info.name, %src, "decoder panicked on a packet; dropped");
            return;
        }
        Ok(Err(why)) => {
            stats.malformed.fetch_add(1, Ordering::Relaxed);
            debug!(interface = %egress.info.name, %src, reason = why.as_str(), len = packet.len(), "dropped malformed packet");
            return;
        }
    };
    let span = debug_span!("dhcp4", xid = format_args!("{:#010x}", req.msg.xid()), chaddr = %req.chaddr_mac().unwrap_or_default());
    let _enter = span.enter();
    let SocketAddr::V4(src) = src else { return };
    let meta = RequestMeta {
        interface: egress.info.name.clone(),
        iface_addrs: egress.info.ipv4.clone(),
        src,
    };
    let outcome = {
        let mut st = shared.state();
        let st = &mut *st;
        let ctx = Context {
            dhcp4: &st.dhcp4,
            policy: &st.policy,
        };
        let table = &mut st.table;
        catch_unwind(AssertUnwindSafe(|| {
            handler::handle(&ctx, table, &req, &meta, now)
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
    finish(shared, egress, outcome, now);
}

fn finish(shared: &Arc<Shared>, egress: &Arc<Egress>, outcome: Outcome, now: u64) {
    let Outcome {
        reply,
        commit,
        event,
        ignored,
    } = outcome;
    if let Some(why) = ignored {
        shared.stats.ignored.fetch_add(1, Ordering::Relaxed);
        debug!(reason = why, "no reply");
    }
    if let Some(ev) = &event {
        log_event(ev);
        if let Some(j) = &shared.journal {
            j.record(&device_event(ev, now));
        }
    }
    let Some(reply) = reply else {
        if !commit.is_empty() {
            shared.writer.commit(commit, Box::new(|_| {}));
        }
        return;
    };
    if commit.is_empty() {
        send(shared, egress, &reply);
        return;
    }
    let (sh, eg) = (Arc::clone(shared), Arc::clone(egress));
    shared.writer.commit(
        commit,
        Box::new(move |res| match res {
            Ok(()) => send(&sh, &eg, &reply),
            Err(e) => {
                sh.stats.commits_failed.fetch_add(1, Ordering::Relaxed);
                error!(error = %e, "lease journal write failed: ACK not sent");
            }
        }),
    );
}

fn send(shared: &Shared, egress: &Egress, reply: &Reply) {
    match egress.send(reply) {
        Ok(()) => {
            shared.stats.replies.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            shared.stats.send_errors.fetch_add(1, Ordering::Relaxed);
            warn!(interface = %egress.info.name, to = ?reply.to, error = %e, "send failed");
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

fn log_event(ev: &Event) {
    // formatted lazily: offers are logged at debug and must cost nothing on the packet path
    let mac = ev.mac.unwrap_or_default();
    let addr = OptAddr(ev.address);
    let rule = ev.rule.as_deref().unwrap_or("-");
    // one info line per lease granted or refused; offers and the rest of the exchange are in
    // the device journal and at debug level
    match ev.kind {
        Dhcp4Kind::Nak => info!(%mac, reason = ev.reason.as_deref().unwrap_or(""), "nak"),
        Dhcp4Kind::Ack | Dhcp4Kind::Decline | Dhcp4Kind::NoAddress => {
            info!(%mac, address = %addr, requested_143 = ev.requested_143, rule, uris = ?ev.uris, "{}", ev.kind)
        }
        _ => {
            debug!(%mac, address = %addr, requested_143 = ev.requested_143, rule, uris = ?ev.uris, "{}", ev.kind)
        }
    }
    if !ev.uris_dropped.is_empty() {
        warn!(%mac, dropped = ?ev.uris_dropped, "option 143 trimmed to fit the reply size: lowest-preference URIs dropped");
    }
}

fn device_event(ev: &Event, now: u64) -> DeviceEvent {
    let mut d = DeviceEvent::dhcp4(now, ev.kind, ev.xid, ev.mac.unwrap_or_default());
    d.rule = ev.rule.clone();
    d.uris = ev.uris.clone();
    let EventDetail::Dhcp4(x) = &mut d.detail else {
        return d;
    };
    x.client_id = ev.client_id.clone();
    x.vendor_class = ev.vendor_class.clone();
    x.user_class = ev.user_class.clone();
    x.interface = Some(ev.interface.clone());
    x.relay = ev.relay.map(|r| r.to_string());
    x.address = ev.address;
    x.requested_143 = ev.requested_143;
    x.uris_dropped = ev.uris_dropped.clone();
    x.encoding = ev.encoding.map(str::to_string);
    x.reason = ev.reason.clone();
    d
}
