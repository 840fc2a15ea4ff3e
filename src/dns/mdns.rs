//! mDNS responder for the SZTP `.local` names (RFC 6762): pure answers, announcements and goodbyes, and the socket loop
//!
//! hickory has no responder, so this is a small one on hickory-proto messages. It answers
//! `_sztp._tcp.local` SRV (shared: no cache-flush bit), `<serial>._sztp.local` TXT and the
//! appliance's `<hostname>.local` A/AAAA (unique: cache-flush bit), following RFC 6762:
//! multicast answers to QM questions and unicast to QU questions (§5.4), legacy one-shot
//! queriers (source port ≠ 5353) get a unicast answer with the ID copied, the question echoed
//! and TTLs capped at 10 s (§6.7), shared answers wait 20–120 ms (§6), no record is multicast
//! twice within one second on an interface (§6), known answers are suppressed (§7.1), the
//! records are announced at start (§8.3) and withdrawn with TTL 0 at stop (§10.1). Not done:
//! probing for name conflicts (§8.1), multi-packet known-answer lists (§7.2), the
//! "multicast a QU answer not sent for a quarter TTL" refinement of §5.4.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket as StdUdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::records::{RecordSet, MDNS_HOST_TTL, SZTP_LABEL};
use super::server::{DnsStats, Shared};
use crate::journal::{DeviceEvent, DnsEvent, DnsKind, DnsTransport, EventDetail};

/// The mDNS port (RFC 6762 §3).
pub const MDNS_PORT: u16 = 5353;
/// The IPv4 mDNS group.
pub const MDNS_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
/// The IPv6 mDNS group (link-local scope).
pub const MDNS_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xfb);
/// Largest mDNS message: 9000 octets including the IPv6 and UDP headers (RFC 6762 §17).
pub const MAX_MESSAGE: u16 = 9000 - 48;
/// TTL cap of answers to legacy unicast queriers (RFC 6762 §6.7), seconds.
pub const LEGACY_TTL: u32 = 10;
/// A record is not multicast again on an interface within this many ms (RFC 6762 §6).
pub const MULTICAST_INTERVAL_MS: u64 = 1000;
/// Bounds of the random delay of answers holding shared records (RFC 6762 §6), ms.
pub const SHARED_DELAY_MS: (u64, u64) = (20, 120);

/// Where a reply goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// The mDNS group of the interface, port 5353.
    Multicast,
    /// Straight back to the querier.
    Unicast(SocketAddr),
}

/// One message to send.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// The response (ID 0 and no question, or for a legacy querier its ID and question).
    pub message: Message,
    /// Multicast to the group, or unicast back.
    pub to: Destination,
    /// Wait this long first (shared records, RFC 6762 §6), ms.
    pub delay_ms: u64,
}

/// What one query produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MdnsOutcome {
    /// At most one unicast and one multicast reply.
    pub replies: Vec<Reply>,
    /// One per `<serial>._sztp.local` TXT question.
    pub events: Vec<DeviceEvent>,
    /// `_sztp._tcp.local` SRV questions in the query.
    pub srv_questions: u32,
}

/// Where and when a query arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MdnsMeta {
    /// The query's source address and port (5353: a full querier; other: legacy).
    pub src: SocketAddr,
    /// Monotonic milliseconds, for the rate limit.
    pub now_ms: u64,
    /// Unix seconds, for events.
    pub now: u64,
    /// The delay to use if this answer must wait (drawn by the loop in [`SHARED_DELAY_MS`]).
    pub jitter_ms: u64,
    /// The addresses of the interface the query came in on: `<hostname>.local` A/AAAA.
    pub addrs: Vec<IpAddr>,
}

/// Per-interface responder state: when each record was last multicast.
#[derive(Clone, Debug, Default)]
pub struct MdnsState {
    last_multicast: HashMap<(LowerName, RecordType), u64>,
    /// Records multicast so far (their goodbye is due at stop).
    sent: Vec<Record>,
}

fn host_records(set: &RecordSet, addrs: &[IpAddr], qtype: RecordType) -> Vec<Record> {
    addrs
        .iter()
        .filter(|ip| match qtype {
            RecordType::A => ip.is_ipv4(),
            RecordType::AAAA => ip.is_ipv6(),
            _ => true,
        })
        .map(|ip| {
            let data = match ip {
                IpAddr::V4(a) => RData::A(A(*a)),
                IpAddr::V6(a) => RData::AAAA(AAAA(*a)),
            };
            let mut r = Record::from_rdata(set.local.host.clone(), MDNS_HOST_TTL, data);
            r.mdns_cache_flush = true;
            r
        })
        .collect()
}

fn type_matches(r: &Record, qtype: RecordType) -> bool {
    qtype == RecordType::ANY || r.record_type() == qtype
}

/// Our answers to one question, and whether it is a device TXT question (and for whom).
fn answers_for<'s>(
    set: &'s RecordSet,
    name: &LowerName,
    qtype: RecordType,
    addrs: &[IpAddr],
) -> (
    Vec<Record>,
    Option<(String, Option<&'s super::records::DeviceTxt>)>,
) {
    let local = &set.local;
    if *name == LowerName::new(&local.host) {
        return match qtype {
            RecordType::A | RecordType::AAAA | RecordType::ANY => {
                (host_records(set, addrs, qtype), None)
            }
            _ => (Vec::new(), None),
        };
    }
    if let Some(recs) = local.names.get(name) {
        return (
            recs.iter()
                .filter(|r| type_matches(r, qtype))
                .cloned()
                .collect(),
            None,
        );
    }
    if local
        .srv
        .first()
        .is_some_and(|r| LowerName::new(&r.name) == *name)
    {
        return (
            local
                .srv
                .iter()
                .filter(|r| type_matches(r, qtype))
                .cloned()
                .collect(),
            None,
        );
    }
    let txt = matches!(qtype, RecordType::TXT | RecordType::ANY);
    if let Some((recs, who)) = local.devices.get(name) {
        let r = recs
            .iter()
            .filter(|r| type_matches(r, qtype))
            .cloned()
            .collect();
        return (r, txt.then(|| (who.serial.clone(), Some(who))));
    }
    // `<serial>._sztp.local` for a serial we do not know: silence, but journaled
    let n = Name::from(name.clone());
    let labels: Vec<&[u8]> = n.iter().collect();
    if txt
        && labels.len() == 3
        && labels[1].eq_ignore_ascii_case(SZTP_LABEL.as_bytes())
        && labels[2].eq_ignore_ascii_case(b"local")
    {
        return (
            Vec::new(),
            Some((String::from_utf8_lossy(labels[0]).into_owned(), None)),
        );
    }
    (Vec::new(), None)
}

/// A/AAAA for SRV targets and the other address family of answered host names (RFC 6762
/// §6.2, RFC 6763 §12.2), minus what is already in `answers`.
fn additionals_for(set: &RecordSet, answers: &[Record], addrs: &[IpAddr]) -> Vec<Record> {
    let host = LowerName::new(&set.local.host);
    let mut names: Vec<LowerName> = Vec::new();
    for r in answers {
        let n = match &r.data {
            RData::SRV(s) => LowerName::new(&s.target),
            RData::A(_) | RData::AAAA(_) => LowerName::new(&r.name),
            _ => continue,
        };
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let mut out = Vec::new();
    for n in names {
        let recs = if n == host {
            host_records(set, addrs, RecordType::ANY)
        } else {
            set.local.names.get(&n).cloned().unwrap_or_default()
        };
        out.extend(recs.into_iter().filter(|r| !answers.contains(r)));
    }
    out
}

fn is_known(query: &Message, r: &Record) -> bool {
    // RFC 6762 §7.1: suppress when the querier already holds it with at least half our TTL
    query.answers.iter().any(|k| {
        k.name.eq_ignore_root(&r.name)
            && k.record_type() == r.record_type()
            && k.data == r.data
            && u64::from(k.ttl) * 2 >= u64::from(r.ttl)
    })
}

fn response(id: u16) -> Message {
    let mut m = Message::new(id, MessageType::Response, OpCode::Query);
    // RFC 6762 §18.4: AA is set in every mDNS response
    m.metadata.authoritative = true;
    m
}

fn event(
    meta: &MdnsMeta,
    name: &LowerName,
    qtype: RecordType,
    serial: String,
    who: Option<&super::records::DeviceTxt>,
) -> DeviceEvent {
    let q = name.to_string();
    DeviceEvent {
        ts: meta.now,
        mac: None,
        duid: None,
        serial: Some(who.map_or(serial, |w| w.serial.clone())),
        rule: who.map(|w| w.rule.clone()),
        uris: who.map(|w| w.uris.clone()).unwrap_or_default(),
        detail: EventDetail::Dns(DnsEvent {
            event: if who.is_some() {
                DnsKind::Answered
            } else {
                DnsKind::Nxdomain
            },
            transport: DnsTransport::Mdns,
            source: meta.src.ip(),
            qname: q.strip_suffix('.').unwrap_or(&q).to_string(),
            qtype: qtype.to_string(),
            signing: who.map(|w| w.signing),
        }),
    }
}

/// Answers one received mDNS message (RFC 6762 §5, §6, §7.1).
pub fn handle(
    set: &RecordSet,
    state: &mut MdnsState,
    query: &Message,
    meta: &MdnsMeta,
) -> MdnsOutcome {
    let mut out = MdnsOutcome::default();
    let md = &query.metadata;
    // §18: responses (our own looped back, or other responders') and non-queries are not ours
    // to answer; a query with a non-zero rcode is ignored (§18.11)
    if md.message_type != MessageType::Query
        || md.op_code != OpCode::Query
        || md.response_code != ResponseCode::NoError
    {
        return out;
    }
    let legacy = meta.src.port() != MDNS_PORT;
    let mut unicast: Vec<Record> = Vec::new();
    let mut multicast: Vec<Record> = Vec::new();
    for q in &query.queries {
        if !matches!(q.query_class(), DNSClass::IN | DNSClass::ANY) {
            continue;
        }
        let name = LowerName::new(q.name());
        let qtype = q.query_type();
        let (answers, device) = answers_for(set, &name, qtype, &meta.addrs);
        if set
            .local
            .srv
            .first()
            .is_some_and(|r| LowerName::new(&r.name) == name)
            && matches!(qtype, RecordType::SRV | RecordType::ANY)
        {
            out.srv_questions += 1;
        }
        if let Some((serial, who)) = device {
            out.events.push(event(meta, &name, qtype, serial, who));
        }
        let to = if legacy || q.mdns_unicast_response() {
            &mut unicast
        } else {
            &mut multicast
        };
        for r in answers {
            if !is_known(query, &r) && !to.contains(&r) {
                to.push(r);
            }
        }
    }

    if legacy {
        if !unicast.is_empty() {
            let mut m = response(md.id);
            for q in &query.queries {
                let mut q = q.clone();
                q.set_mdns_unicast_response(false);
                m.add_query(q);
            }
            let cap = |mut r: Record| {
                r.ttl = r.ttl.min(LEGACY_TTL);
                r.mdns_cache_flush = false;
                r
            };
            let adds = additionals_for(set, &unicast, &meta.addrs);
            m.insert_answers(unicast.into_iter().map(cap).collect());
            m.insert_additionals(adds.into_iter().map(cap).collect());
            out.replies.push(Reply {
                message: m,
                to: Destination::Unicast(meta.src),
                delay_ms: 0,
            });
        }
        return out;
    }
    if !unicast.is_empty() {
        let mut m = response(0);
        let adds = additionals_for(set, &unicast, &meta.addrs);
        m.insert_answers(unicast);
        m.insert_additionals(adds);
        out.replies.push(Reply {
            message: m,
            to: Destination::Unicast(meta.src),
            delay_ms: 0,
        });
    }
    multicast.retain(|r| {
        let key = (LowerName::new(&r.name), r.record_type());
        state
            .last_multicast
            .get(&key)
            .is_none_or(|&t| meta.now_ms >= t + MULTICAST_INTERVAL_MS)
    });
    if !multicast.is_empty() {
        // answers holding a shared record wait, so several responders' answers do not collide
        let shared = multicast.iter().any(|r| !r.mdns_cache_flush);
        let delay_ms = if shared { meta.jitter_ms } else { 0 };
        let at = meta.now_ms + delay_ms;
        for r in &multicast {
            state
                .last_multicast
                .insert((LowerName::new(&r.name), r.record_type()), at);
            if !state.sent.contains(r) {
                state.sent.push(r.clone());
            }
        }
        let mut m = response(0);
        let adds = additionals_for(set, &multicast, &meta.addrs);
        m.insert_answers(multicast);
        m.insert_additionals(adds);
        out.replies.push(Reply {
            message: m,
            to: Destination::Multicast,
            delay_ms,
        });
    }
    out
}

/// The records announced unprompted (RFC 6762 §8.3): the SRV set, `<hostname>.local` and the
/// synthesized target names. Device TXT records are not announced: that would broadcast every
/// known serial number to the link; they are answered when asked for.
pub fn announced(set: &RecordSet, addrs: &[IpAddr]) -> Vec<Record> {
    let mut out: Vec<Record> = set.local.srv.clone();
    out.extend(host_records(set, addrs, RecordType::ANY));
    for recs in set.local.names.values() {
        out.extend(recs.iter().cloned());
    }
    out
}

/// An unsolicited response carrying `records` (announcement), with `ttl_zero` the goodbye
/// form (RFC 6762 §10.1).
pub fn unsolicited(records: &[Record], ttl_zero: bool) -> Option<Message> {
    if records.is_empty() {
        return None;
    }
    let mut m = response(0);
    m.insert_answers(
        records
            .iter()
            .cloned()
            .map(|mut r| {
                if ttl_zero {
                    r.ttl = 0;
                }
                r
            })
            .collect(),
    );
    Some(m)
}

impl MdnsState {
    /// Notes that `records` were multicast at `now_ms` (announcements).
    pub fn multicast(&mut self, records: &[Record], now_ms: u64) {
        for r in records {
            self.last_multicast
                .insert((LowerName::new(&r.name), r.record_type()), now_ms);
            if !self.sent.contains(r) {
                self.sent.push(r.clone());
            }
        }
    }

    /// Everything multicast so far that `keep` no longer holds: due for a goodbye. `None` for
    /// `keep` means all of it (at stop).
    pub fn withdraw(&mut self, keep: Option<&[Record]>) -> Vec<Record> {
        let (gone, stay): (Vec<Record>, Vec<Record>) = std::mem::take(&mut self.sent)
            .into_iter()
            .partition(|r| keep.is_none_or(|k| !k.contains(r)));
        self.sent = stay;
        gone
    }
}

/// Encodes an mDNS message within [`MAX_MESSAGE`].
pub fn encode(m: &Message) -> Vec<u8> {
    let mut buf = Vec::with_capacity(512);
    let mut enc = BinEncoder::new(&mut buf);
    enc.set_max_size(MAX_MESSAGE);
    if m.emit(&mut enc).is_err() {
        buf.clear();
    }
    buf
}

/// One mDNS socket: bound to port 5353 on one interface, joined to its group.
#[derive(Debug)]
pub struct MdnsSocket {
    /// Bound to port 5353 (non-blocking), `SO_BINDTODEVICE` to the interface.
    pub socket: StdUdpSocket,
    /// The interface name (whose addresses `<hostname>.local` resolves to).
    pub interface: String,
    /// Where multicast replies go: `224.0.0.251:5353` or `[ff02::fb%ifindex]:5353`.
    pub group: SocketAddr,
}

/// Every mDNS socket, bound before privileges drop.
#[derive(Debug, Default)]
pub struct BoundMdns {
    /// An IPv4 and (when available) an IPv6 socket per interface.
    pub sockets: Vec<MdnsSocket>,
    /// The responder's counters (queries, SRV questions, device TXT answered or not,
    /// malformed messages, send errors); shared with whoever exports them.
    pub stats: Arc<DnsStats>,
}

impl BoundMdns {
    /// True when `[dns.mdns]` is off.
    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }
}

fn ifindex(name: &str) -> io::Result<u32> {
    nix::net::if_::if_nametoindex(name).map_err(|e| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("no such interface {name:?} ({e})"),
        )
    })
}

/// Binds the mDNS sockets of `[dns.mdns]` (port 5353 on each of its interfaces); empty when
/// `[dns]` or `[dns.mdns]` is off. Several responders may share the port (avahi): the
/// sockets use SO_REUSEADDR, so a reload that rebinds the responder binds the new sockets
/// while the old ones still serve.
///
/// # Errors
/// As [`bind_interfaces`].
pub fn bind(config: &crate::config::Config) -> io::Result<BoundMdns> {
    match config.dns.as_ref().and_then(|d| d.mdns.as_ref()) {
        Some(m) => bind_interfaces(&m.interfaces, MDNS_PORT),
        None => Ok(BoundMdns::default()),
    }
}

fn bind_v4(iface: &str, index: u32, port: u16) -> io::Result<StdUdpSocket> {
    use socket2::{Domain, InterfaceIndexOrAddress, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    // other responders (avahi) may hold the port too; multicast reaches every socket
    s.set_reuse_address(true)?;
    s.bind_device(Some(iface.as_bytes()))?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
    s.join_multicast_v4_n(&MDNS_V4, &InterfaceIndexOrAddress::Index(index))?;
    // RFC 6762 §11: every mDNS packet leaves with IP TTL 255
    s.set_multicast_ttl_v4(255)?;
    s.set_ttl_v4(255)?;
    s.set_multicast_loop_v4(true)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

fn bind_v6(iface: &str, index: u32, port: u16) -> io::Result<StdUdpSocket> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV6, Type::DGRAM, None)?;
    s.set_only_v6(true)?;
    s.set_reuse_address(true)?;
    s.bind_device(Some(iface.as_bytes()))?;
    s.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)).into())?;
    s.join_multicast_v6(&MDNS_V6, index)?;
    s.set_multicast_if_v6(index)?;
    s.set_multicast_hops_v6(255)?;
    s.set_unicast_hops_v6(255)?;
    s.set_multicast_loop_v6(true)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Binds port `port` on every interface in `interfaces`, IPv4 and (when the interface has
/// IPv6) IPv6, and joins the mDNS groups there. Logs one `listening for mdns on IFACE ADDR`
/// line per socket.
///
/// # Errors
/// An interface is missing or its IPv4 socket cannot be bound or join 224.0.0.251: `cannot
/// listen on interface IFACE: …`. IPv6 is optional (a warning when unavailable).
pub fn bind_interfaces(interfaces: &[String], port: u16) -> io::Result<BoundMdns> {
    let mut out = BoundMdns::default();
    for iface in interfaces {
        let wrap = |e: io::Error| {
            io::Error::new(e.kind(), format!("cannot listen on interface {iface}: {e}"))
        };
        let index = ifindex(iface).map_err(wrap)?;
        let v4 = bind_v4(iface, index, port).map_err(wrap)?;
        info!("listening for mdns on {iface} {}", v4.local_addr()?);
        out.sockets.push(MdnsSocket {
            socket: v4,
            interface: iface.clone(),
            group: SocketAddr::from((MDNS_V4, MDNS_PORT)),
        });
        match bind_v6(iface, index, port) {
            Ok(v6) => {
                info!("listening for mdns on {iface} {}", v6.local_addr()?);
                out.sockets.push(MdnsSocket {
                    socket: v6,
                    interface: iface.clone(),
                    group: SocketAddr::V6(SocketAddrV6::new(MDNS_V6, MDNS_PORT, 0, index)),
                });
            }
            Err(e) => warn!(interface = %iface, error = %e, "mdns over ipv6 unavailable"),
        }
    }
    Ok(out)
}

/// The addresses of `iface` of the socket's family (all of them for a loopback test socket).
fn interface_addrs(iface: &str, v6: bool) -> Vec<IpAddr> {
    pnet::datalink::interfaces()
        .into_iter()
        .filter(|i| i.name == iface)
        .flat_map(|i| i.ips.into_iter().map(|n| n.ip()))
        .filter(|ip| ip.is_ipv6() == v6)
        .collect()
}

fn jitter() -> u64 {
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    SHARED_DELAY_MS.0 + r % (SHARED_DELAY_MS.1 - SHARED_DELAY_MS.0 + 1)
}

/// Sends `m` to `to`; `false` when nothing went out (empty encoding or a send error).
async fn send(sock: &UdpSocket, m: &Message, to: SocketAddr, stats: &DnsStats) -> bool {
    let bytes = encode(m);
    if bytes.is_empty() {
        return false;
    }
    if let Err(e) = sock.send_to(&bytes, to).await {
        stats
            .send_errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        debug!(%to, error = %e, "mdns send failed");
        return false;
    }
    true
}

/// Serves every mDNS socket until `token` is cancelled, then sends the goodbyes (RFC 6762
/// §10.1) and returns. The records follow the published snapshot: after a reload each socket
/// withdraws (TTL 0) what the new configuration no longer holds and announces the rest again
/// (§8.4), at its next one-second tick.
///
/// # Errors
/// None so far (a socket the runtime cannot register is logged and left out); `io::Result`
/// for the service shape.
pub async fn serve(
    bound: BoundMdns,
    ctx: crate::runtime::ServiceContext,
    token: CancellationToken,
) -> io::Result<()> {
    let shared = Shared::for_service(
        "mdns",
        false,
        ctx.published.clone(),
        ctx.events.clone(),
        Arc::clone(&bound.stats),
        super::server::DnsMetrics::new(&ctx.metrics, crate::metrics::Service::Mdns),
    );
    ctx.metrics.set_source(
        "mdns",
        Box::new(crate::metrics::DnsSource::new("mdns", &bound.stats)),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for s in bound.sockets {
        tasks.spawn(serve_socket(s, Arc::clone(&shared), token.clone()));
    }
    if tasks.is_empty() {
        token.cancelled().await;
    }
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r {
            tracing::error!(error = %e, "an mdns task failed");
        }
    }
    let s = &shared.stats;
    info!(
        queries = DnsStats::get(&s.queries),
        srv = DnsStats::get(&s.srv_queries),
        txt_answered = DnsStats::get(&s.txt_answered),
        txt_nxdomain = DnsStats::get(&s.txt_nxdomain),
        malformed = DnsStats::get(&s.malformed),
        "mdns stopped"
    );
    Ok(())
}

async fn serve_socket(s: MdnsSocket, shared: Arc<Shared>, token: CancellationToken) {
    let sock = match UdpSocket::from_std(s.socket) {
        Ok(x) => Arc::new(x),
        Err(e) => {
            warn!(interface = %s.interface, error = %e, "mdns socket unusable");
            return;
        }
    };
    let v6 = s.group.is_ipv6();
    let start = Instant::now();
    let ms = move || u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut state = MdnsState::default();
    let mut addrs = interface_addrs(&s.interface, v6);
    let mut announce = announced(&shared.current().records, &addrs);
    // RFC 6762 §8.3: at least two announcements, one second apart
    let mut announcements_left = 2u8;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut buf = vec![0u8; 9000];
    // answers waiting out their delay; ended before the goodbye so none follows it
    let mut delayed = tokio::task::JoinSet::new();
    loop {
        while delayed.try_join_next().is_some() {}
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tick.tick() => {
                addrs = interface_addrs(&s.interface, v6);
                let now = shared.current();
                let fresh = announced(&now.records, &addrs);
                if fresh != announce {
                    // a reload or an address change (RFC 6762 §8.4): goodbye for what is gone,
                    // announce the rest again
                    let gone = state.withdraw(Some(&fresh));
                    if let Some(m) = unsolicited(&gone, true) {
                        send(&sock, &m, s.group, &shared.stats).await;
                    }
                    info!(
                        interface = %s.interface,
                        ipv6 = v6,
                        generation = now.generation(),
                        withdrawn = gone.len(),
                        announced = fresh.len(),
                        "mdns records changed: goodbye sent, announcing"
                    );
                    announce = fresh;
                    announcements_left = 2;
                }
                if announcements_left > 0 {
                    announcements_left -= 1;
                    if let Some(m) = unsolicited(&announce, false) {
                        send(&sock, &m, s.group, &shared.stats).await;
                        state.multicast(&announce, ms());
                    }
                }
            }
            r = sock.recv_from(&mut buf) => {
                let (n, src) = match r {
                    Ok(x) => x,
                    Err(e) => { debug!(error = %e, "mdns receive error"); continue; }
                };
                let query = match Message::from_vec(&buf[..n]) {
                    Ok(m) => m,
                    Err(e) => {
                        shared.stats.malformed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        shared.metrics.request();
                        shared.metrics.dropped("malformed");
                        debug!(%src, error = %e, "malformed mdns message");
                        continue;
                    }
                };
                let meta = MdnsMeta {
                    src,
                    now_ms: ms(),
                    now: crate::journal::unix_now(),
                    jitter_ms: jitter(),
                    addrs: addrs.clone(),
                };
                let current = shared.current();
                let out = handle(&current.records, &mut state, &query, &meta);
                if query.metadata.message_type == MessageType::Query {
                    shared.stats.queries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    shared.metrics.request();
                    if out.replies.is_empty() {
                        // not ours, or every answer already known (RFC 6762 §7.1): silence
                        shared.metrics.dropped("no-answer");
                    }
                }
                shared.stats.srv_queries.fetch_add(u64::from(out.srv_questions), std::sync::atomic::Ordering::Relaxed);
                for ev in &out.events {
                    shared.count_device_event(ev);
                }
                for reply in out.replies {
                    let to = match reply.to {
                        Destination::Multicast => s.group,
                        Destination::Unicast(a) => a,
                    };
                    if reply.delay_ms == 0 {
                        if send(&sock, &reply.message, to, &shared.stats).await {
                            shared.metrics.replied(DnsTransport::Mdns, 0);
                        }
                    } else {
                        let sock = Arc::clone(&sock);
                        let shared = Arc::clone(&shared);
                        delayed.spawn(async move {
                            tokio::time::sleep(Duration::from_millis(reply.delay_ms)).await;
                            if send(&sock, &reply.message, to, &shared.stats).await {
                                shared.metrics.replied(DnsTransport::Mdns, 0);
                            }
                        });
                    }
                }
            }
        }
    }
    delayed.shutdown().await;
    let gone = state.withdraw(None);
    if let Some(m) = unsolicited(&gone, true) {
        send(&sock, &m, s.group, &shared.stats).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use hickory_proto::op::Query;
    use std::path::Path;

    const CONFIG: &str = r#"
[[bootstrap-server]]
name = "owner-primary"
uri = "https://sztp.owner.example.com"

[redirect-server]
listen = ["127.0.0.1:8443"]
advertise = "https://192.0.2.1:8443"

[[rule]]
name = "default"
redirect-to = ["owner-primary"]

[[device]]
serial = "SN123"

[dns]
listen = ["127.0.0.1:5300"]
zones = ["example.com"]
"#;

    fn set() -> RecordSet {
        let c = load_str(Path::new("t.toml"), CONFIG).unwrap();
        RecordSet::build(&c, &c.policy(), 1, "appliance")
    }

    fn meta(port: u16, now_ms: u64) -> MdnsMeta {
        MdnsMeta {
            src: SocketAddr::from(([198, 51, 100, 2], port)),
            now_ms,
            now: 1_795_810_500,
            jitter_ms: 57,
            addrs: vec!["198.51.100.1".parse().unwrap(), "fe80::1".parse().unwrap()],
        }
    }

    fn query(id: u16, qs: &[(&str, RecordType, bool)]) -> Message {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        for (n, t, qu) in qs {
            let mut q = Query::query(Name::from_ascii(n).unwrap(), *t);
            q.set_mdns_unicast_response(*qu);
            m.add_query(q);
        }
        // round trip through the wire, as the loop sees it
        Message::from_vec(&m.to_vec().unwrap()).unwrap()
    }

    #[test]
    fn qm_srv_is_multicast_after_a_delay_with_host_addresses() {
        let s = set();
        let mut st = MdnsState::default();
        let q = query(0, &[("_sztp._tcp.local.", RecordType::SRV, false)]);
        let out = handle(&s, &mut st, &q, &meta(5353, 10_000));
        assert_eq!(out.srv_questions, 1);
        assert_eq!(out.replies.len(), 1);
        let r = &out.replies[0];
        assert_eq!(r.to, Destination::Multicast);
        assert_eq!(r.delay_ms, 57, "shared record: random delay");
        assert_eq!(r.message.metadata.id, 0);
        assert!(r.message.metadata.authoritative);
        assert!(r.message.queries.is_empty());
        assert_eq!(
            r.message.answers[0].data.to_string(),
            "0 0 8443 appliance.local."
        );
        assert!(!r.message.answers[0].mdns_cache_flush);
        let adds: Vec<String> = r
            .message
            .additionals
            .iter()
            .map(|a| a.data.to_string())
            .collect();
        assert_eq!(adds, ["198.51.100.1", "fe80::1"]);
        assert!(r
            .message
            .additionals
            .iter()
            .all(|a| a.mdns_cache_flush && a.ttl == 120));
        // the same record again within a second: rate-limited (RFC 6762 §6)
        let again = handle(&s, &mut st, &q, &meta(5353, 10_500));
        assert!(again.replies.is_empty());
        let later = handle(&s, &mut st, &q, &meta(5353, 11_100));
        assert_eq!(later.replies.len(), 1);
    }

    #[test]
    fn qu_and_legacy_are_unicast() {
        let s = set();
        let mut st = MdnsState::default();
        let q = query(0, &[("SN123._sztp.local.", RecordType::TXT, true)]);
        let out = handle(&s, &mut st, &q, &meta(5353, 0));
        assert_eq!(out.replies.len(), 1);
        assert_eq!(out.replies[0].to, Destination::Unicast(meta(5353, 0).src));
        assert_eq!(out.replies[0].delay_ms, 0);
        let txt = &out.replies[0].message.answers[0];
        assert!(txt.mdns_cache_flush);
        assert_eq!(txt.ttl, 4500);
        assert_eq!(out.events.len(), 1);
        assert_eq!(out.events[0].serial.as_deref(), Some("SN123"));

        let legacy = query(0xbeef, &[("_sztp._tcp.local.", RecordType::SRV, false)]);
        let out = handle(&s, &mut st, &legacy, &meta(40000, 0));
        let m = &out.replies[0].message;
        assert_eq!(out.replies[0].to, Destination::Unicast(meta(40000, 0).src));
        assert_eq!(m.metadata.id, 0xbeef);
        assert_eq!(m.queries.len(), 1, "question echoed");
        assert!(m
            .all_sections()
            .all(|r| r.ttl <= LEGACY_TTL && !r.mdns_cache_flush));
        assert_eq!(m.additionals.len(), 2);
    }

    #[test]
    fn known_answers_unknown_serials_and_responses() {
        let s = set();
        let mut st = MdnsState::default();
        let mut q = query(0, &[("_sztp._tcp.local.", RecordType::SRV, false)]);
        q.add_answer(s.local.srv[0].clone());
        assert!(handle(&s, &mut st, &q, &meta(5353, 0)).replies.is_empty());
        let mut stale = s.local.srv[0].clone();
        stale.ttl = 30; // less than half of 120: answer again
        let mut q = query(0, &[("_sztp._tcp.local.", RecordType::SRV, false)]);
        q.add_answer(stale);
        assert_eq!(handle(&s, &mut st, &q, &meta(5353, 0)).replies.len(), 1);

        let unknown = query(0, &[("SN999._sztp.local.", RecordType::TXT, false)]);
        let out = handle(&s, &mut st, &unknown, &meta(5353, 0));
        assert!(out.replies.is_empty(), "mDNS has no negative answers");
        assert!(matches!(
            out.events[0].detail,
            EventDetail::Dns(DnsEvent {
                event: DnsKind::Nxdomain,
                transport: DnsTransport::Mdns,
                ..
            })
        ));

        let host = query(0, &[("Appliance.local.", RecordType::A, false)]);
        let out = handle(&s, &mut st, &host, &meta(5353, 0));
        let m = &out.replies[0].message;
        assert_eq!(out.replies[0].delay_ms, 0, "unique records answer at once");
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.additionals[0].record_type(), RecordType::AAAA);

        let mut resp = query(0, &[("_sztp._tcp.local.", RecordType::SRV, false)]);
        resp.metadata.message_type = MessageType::Response;
        assert_eq!(
            handle(&s, &mut st, &resp, &meta(5353, 0)),
            MdnsOutcome::default()
        );
        let other = query(0, &[("printer.local.", RecordType::A, false)]);
        assert!(handle(&s, &mut st, &other, &meta(5353, 0))
            .replies
            .is_empty());
    }

    #[test]
    fn announcement_and_goodbye() {
        let s = set();
        let addrs = meta(5353, 0).addrs;
        let a = announced(&s, &addrs);
        assert_eq!(a.len(), 3, "SRV + A + AAAA, no device TXT");
        let mut st = MdnsState::default();
        st.multicast(&a, 0);
        let bye = unsolicited(&st.withdraw(None), true).unwrap();
        assert_eq!(bye.answers.len(), 3);
        assert!(bye.answers.iter().all(|r| r.ttl == 0));
        assert!(st.withdraw(None).is_empty());
        let wire = encode(&bye);
        assert_eq!(&wire[..4], &[0, 0, 0x84, 0], "ID 0, QR and AA");
    }
}
