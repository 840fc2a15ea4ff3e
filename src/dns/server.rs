//! The unicast DNS server loops: the only unicast DNS code that touches sockets
//!
//! UDP is our own loop (receive, parse with hickory-server's `Request`, [`handler::handle`],
//! encode, send): no task per query, and every malformed datagram is counted. TCP runs on
//! hickory-server's `Server` (RFC 7766 framing, idle timeouts) with the same handler behind
//! its `RequestHandler` trait. Names outside our zones go to a hickory `Catalog` holding one
//! forwarding zone at the root, built from `[dns] forwarders`.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_proto::op::{Header, HeaderCounts, Metadata, ResponseCode};
use hickory_proto::rr::{LowerName, Name, Record};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use hickory_server::net::runtime::{Time, TokioTime};
use hickory_server::net::xfer::Protocol;
use hickory_server::net::NetError;
use hickory_server::resolver::config::NameServerConfig;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo, Server};
use hickory_server::store::forwarder::{ForwardConfig, ForwardZoneHandler};
use hickory_server::zone_handler::{Catalog, MessageResponse, MessageResponseBuilder, Queries};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::handler::{self, Answer, Outcome, QueryClass, QueryMeta};
use super::records::RecordSet;
use crate::config::Config;
use crate::journal::{DeviceEvent, DnsTransport, EventDetail};
use crate::metrics::{DnsAnswerLabels, Metrics, Service, ServiceCounters};
use crate::runtime::{Events, Published, ServiceContext, Snapshot};

/// A TCP connection that sends no query for this long is closed (RFC 7766 §6.2.3 leaves the
/// value to the server; a few seconds is what BIND and hickory use).
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Forwarded queries in flight at once; past this a query gets SERVFAIL at once instead of
/// queueing (an upstream outage must not exhaust memory).
pub const MAX_FORWARDS: usize = 256;
/// Largest UDP datagram we read; anything longer is truncated by the kernel and then fails
/// to parse (counted as malformed).
const RECV_BUFFER: usize = 65_535;

/// Counters of the DNS service, read by the status page and logged at shutdown.
#[derive(Debug, Default)]
pub struct DnsStats {
    /// Datagrams and TCP messages that reached the handler.
    pub queries: AtomicU64,
    /// `_sztp._tcp` SRV queries (RFC 8572 §4.2.3), answered.
    pub srv_queries: AtomicU64,
    /// `<serial>._sztp` TXT queries answered with a record.
    pub txt_answered: AtomicU64,
    /// `<serial>._sztp` queries for unknown serials (NXDOMAIN, or REFUSED outside our zones).
    pub txt_nxdomain: AtomicU64,
    /// Queries handed to the forwarders.
    pub forwarded: AtomicU64,
    /// Queries answered REFUSED (not ours, no forwarding for this source, AXFR, class).
    pub refused: AtomicU64,
    /// UDP datagrams that did not parse: answered FORMERR when the header was readable,
    /// dropped otherwise.
    pub malformed: AtomicU64,
    /// UDP answers cut to the client's size with TC set (RFC 1035 §4.2.1, RFC 7766).
    pub truncated: AtomicU64,
    /// Responses (QR=1) received and dropped.
    pub dropped: AtomicU64,
    /// Sends that failed.
    pub send_errors: AtomicU64,
}

/// The Prometheus side of a DNS service (`sztp_<dns|mdns>_requests_total`, `_replies_total`,
/// `_dropped_total{reason}`, `sztp_dns_answers_total{transport,rcode}`), taken from the
/// shared [`Metrics`] registry; the [`DnsStats`] extras are exported by
/// [`crate::metrics::DnsSource`].
#[derive(Clone, Debug, Default)]
pub struct DnsMetrics {
    counters: ServiceCounters,
    answers: Family<DnsAnswerLabels, Counter>,
}

impl DnsMetrics {
    /// The counters of `service` (`Service::Dns` or `Service::Mdns`) in `metrics`.
    pub fn new(metrics: &Metrics, service: Service) -> DnsMetrics {
        DnsMetrics {
            counters: metrics.service(service),
            answers: metrics.dns_answers.clone(),
        }
    }

    /// One query (or datagram) received.
    pub(crate) fn request(&self) {
        self.counters.requests.inc();
    }

    /// One answer sent over `transport` with `rcode` (RFC 1035 §4.1.1 header RCODE).
    pub(crate) fn replied(&self, transport: DnsTransport, rcode: u16) {
        self.counters.replies.inc();
        self.answers
            .get_or_create(&DnsAnswerLabels {
                transport: transport_name(transport).to_owned(),
                rcode: rcode_mnemonic(rcode),
            })
            .inc();
    }

    /// One query left unanswered for `reason` (`malformed`, `not-a-query`, `send-error`,
    /// `no-answer`).
    pub(crate) fn dropped(&self, reason: &str) {
        self.counters.drop_for(reason);
    }
}

fn transport_name(t: DnsTransport) -> &'static str {
    match t {
        DnsTransport::Udp => "udp",
        DnsTransport::Tcp => "tcp",
        DnsTransport::Mdns => "mdns",
    }
}

/// The RCODE mnemonic of the IANA DNS RCODE registry (RFC 6895 §2.3), `RCODE<n>` past the
/// common ones.
pub fn rcode_mnemonic(rcode: u16) -> String {
    match rcode {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        n => format!("RCODE{n}"),
    }
}

/// The RCODE of an encoded DNS message (the header's low four bits; no EDNS extension: we
/// never send extended RCODEs).
fn wire_rcode(bytes: &[u8]) -> u16 {
    bytes.get(3).map_or(0, |b| u16::from(b & 0x0f))
}

impl DnsStats {
    fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads one counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// Every unicast socket of the DNS service, bound before privileges drop.
#[derive(Debug)]
pub struct BoundDns {
    /// The `[dns] listen` address each UDP/TCP pair was bound for, in file order (port 0
    /// stays 0 here; the sockets hold the port the kernel picked).
    pub listen: Vec<SocketAddr>,
    /// One UDP socket per `[dns] listen` address (non-blocking).
    pub udp: Vec<StdUdpSocket>,
    /// One TCP listener per `[dns] listen` address, on the same port as its UDP socket.
    pub tcp: Vec<StdTcpListener>,
    /// The service's counters; shared with whoever exports them.
    pub stats: Arc<DnsStats>,
}

/// Duplicates (`dup(2)`) of a bound or running DNS service's sockets, by the `[dns] listen`
/// address each pair was bound for. The daemon keeps them while the service runs so that a
/// reload changing `[dns] listen` can hand the addresses it still lists to the new instance
/// ([`bind_reusing`]) instead of binding them a second time while the old instance still
/// holds them: a second TCP listener on one address fails with EADDRINUSE (SO_REUSEADDR does
/// not allow it), which would refuse the reload.
#[derive(Debug, Default)]
pub struct Listeners(Vec<(SocketAddr, StdUdpSocket, StdTcpListener)>);

impl Listeners {
    /// Another duplicate of the pair bound for `addr`, or bound at `addr` (a listen address
    /// with port 0 the kernel gave a port, now written with that port), if there is one.
    fn take_over(&self, addr: SocketAddr) -> Option<io::Result<(StdUdpSocket, StdTcpListener)>> {
        let (_, udp, tcp) = self
            .0
            .iter()
            .find(|(a, udp, _)| *a == addr || udp.local_addr().ok() == Some(addr))?;
        Some(udp.try_clone().and_then(|u| Ok((u, tcp.try_clone()?))))
    }
}

impl BoundDns {
    /// Duplicates of every socket, by listen address, for a later [`bind_reusing`].
    ///
    /// # Errors
    /// `dup(2)` failed (out of file descriptors).
    pub fn listeners(&self) -> io::Result<Listeners> {
        let mut v = Vec::with_capacity(self.listen.len());
        for ((addr, udp), tcp) in self.listen.iter().zip(&self.udp).zip(&self.tcp) {
            v.push((*addr, udp.try_clone()?, tcp.try_clone()?));
        }
        Ok(Listeners(v))
    }
}

fn udp_socket(addr: SocketAddr) -> io::Result<StdUdpSocket> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

fn tcp_listener(addr: SocketAddr) -> io::Result<StdTcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(128)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Binds UDP and TCP on `addr`. Port 0 picks one free port for both: UDP first, then TCP on
/// the port UDP got (retried with a new UDP port when TCP finds it taken).
pub fn bind_pair(addr: SocketAddr) -> io::Result<(StdUdpSocket, StdTcpListener)> {
    let mut last = None;
    for _ in 0..if addr.port() == 0 { 16 } else { 1 } {
        let udp = udp_socket(addr)?;
        let bound = udp.local_addr()?;
        match tcp_listener(bound) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no port")))
}

/// Opens UDP and TCP on each `[dns] listen` address; logs one `listening for dns on udp|tcp
/// ADDR` line per socket. Empty when `[dns]` is off. The mDNS responder binds its own sockets
/// ([`super::mdns::bind`]): it is a separate service in the daemon.
///
/// # Errors
/// An address cannot be bound: `cannot listen on ADDR: …`; nothing stays bound then.
pub fn bind(config: &Config) -> io::Result<BoundDns> {
    bind_reusing(config, &Listeners::default())
}

/// [`bind`], taking every address `previous` holds from there (a duplicate of the running
/// socket) instead of binding it again.
///
/// # Errors
/// As [`bind`].
pub fn bind_reusing(config: &Config, previous: &Listeners) -> io::Result<BoundDns> {
    let mut bound = BoundDns {
        listen: Vec::new(),
        udp: Vec::new(),
        tcp: Vec::new(),
        stats: Arc::new(DnsStats::default()),
    };
    let Some(dns) = &config.dns else {
        return Ok(bound);
    };
    for addr in &dns.listen {
        let (udp, tcp) = previous
            .take_over(*addr)
            .unwrap_or_else(|| bind_pair(*addr))
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        info!("listening for dns on udp {}", udp.local_addr()?);
        info!("listening for dns on tcp {}", tcp.local_addr()?);
        bound.listen.push(*addr);
        bound.udp.push(udp);
        bound.tcp.push(tcp);
    }
    Ok(bound)
}

/// The records (and forwarder) of one snapshot.
pub struct Built {
    snapshot: Arc<Snapshot>,
    /// The record set the handlers answer from.
    pub records: Arc<RecordSet>,
    forwarder: Option<Arc<Catalog>>,
    /// Encoded authoritative UDP answers by [`answer_key`]; dropped with the snapshot.
    answers: Mutex<HashMap<Vec<u8>, Arc<CachedAnswer>>>,
}

/// Answers kept per snapshot; past this, new ones are not kept (query names are chosen by
/// clients, so the cache must not grow with them).
pub const ANSWER_CACHE_MAX: usize = 4096;

/// An encoded authoritative answer, ready to send once its ID and question are the query's.
#[derive(Debug)]
pub struct CachedAnswer {
    bytes: Vec<u8>,
    class: QueryClass,
    refused: bool,
    truncated: bool,
    /// The device event, sent again with the query's time and source.
    event: Option<DeviceEvent>,
}

/// The cache key of a UDP query: the datagram less its ID, with the question name's ASCII
/// letters lowered, for a query of the simplest shape only (one question, name without
/// compression, nothing but an optional OPT record after it). Two such queries that share a
/// key get the same answer bytes except the ID and the question's letter case (RFC 4343), so
/// a hit needs no parsing, lookup or encoding. `None` for any other datagram.
pub fn answer_key(packet: &[u8]) -> Option<Vec<u8>> {
    if packet.len() < 17 || packet[2] & 0x80 != 0 {
        return None;
    }
    let counts = [
        u16::from_be_bytes([packet[4], packet[5]]),
        u16::from_be_bytes([packet[6], packet[7]]),
        u16::from_be_bytes([packet[8], packet[9]]),
        u16::from_be_bytes([packet[10], packet[11]]),
    ];
    if counts[0] != 1 || counts[1] != 0 || counts[2] != 0 || counts[3] > 1 {
        return None;
    }
    let mut key = packet[2..].to_vec();
    let mut i = 12;
    loop {
        let len = usize::from(*packet.get(i)?);
        if len == 0 {
            break;
        }
        if len > 63 {
            return None; // a compression pointer or a reserved label type
        }
        for b in key.get_mut(i - 2 + 1..i - 2 + 1 + len)? {
            b.make_ascii_lowercase();
        }
        i += 1 + len;
    }
    // the name ends at i; type and class follow
    packet.get(i + 4)?;
    Some(key)
}

/// Where the question of a query of [`answer_key`] shape ends.
fn question_end(packet: &[u8]) -> Option<usize> {
    let mut i = 12;
    while *packet.get(i)? != 0 {
        i += 1 + usize::from(packet[i]);
    }
    Some(i + 5)
}

/// The appliance's mDNS host label: `[dns.mdns] hostname`, else the first label of the
/// system host name when it is a valid label, else `sztp-redirector`.
pub fn local_host(config: &Config) -> String {
    if let Some(h) = config
        .dns
        .as_ref()
        .and_then(|d| d.mdns.as_ref()?.hostname.clone())
    {
        return h;
    }
    let sys = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let first = sys.split('.').next().unwrap_or("").to_ascii_lowercase();
    match crate::config::validate::parse_dns_name(&first) {
        Ok(l) if !l.is_empty() => l,
        _ => "sztp-redirector".to_string(),
    }
}

fn forwarder(records: &RecordSet) -> Option<Arc<Catalog>> {
    if records.forwarders.is_empty() {
        return None;
    }
    let name_servers = records
        .forwarders
        .iter()
        .map(|a| {
            let mut ns = NameServerConfig::udp_and_tcp(a.ip());
            for c in &mut ns.connections {
                c.port = a.port();
            }
            ns
        })
        .collect();
    let config = ForwardConfig {
        name_servers,
        options: None,
    };
    match ForwardZoneHandler::builder_tokio(config).build() {
        Ok(f) => {
            let mut catalog = Catalog::new();
            catalog.upsert(LowerName::new(&Name::root()), vec![Arc::new(f)]);
            Some(Arc::new(catalog))
        }
        Err(e) => {
            error!(error = %e, "cannot build the dns forwarder: names outside the zones get SERVFAIL");
            None
        }
    }
}

/// What the loops share: the published snapshot, the records built from it, the event sink
/// and the counters.
pub struct Shared {
    /// `dns` or `mdns`, for logs.
    service: &'static str,
    /// Whether names outside the zones are forwarded (unicast) or ignored (mDNS).
    forwarding: bool,
    published: Published,
    events: Events,
    /// The service's counters.
    pub stats: Arc<DnsStats>,
    /// The service's Prometheus counters.
    pub(crate) metrics: DnsMetrics,
    current: ArcSwap<Built>,
    rebuild: Mutex<u32>,
    forwards: Arc<tokio::sync::Semaphore>,
    /// Cancelled when the service stops (ends forwarded queries still waiting).
    stop: CancellationToken,
}

impl Shared {
    /// Builds the records of the snapshot `published` holds now, for the unicast server.
    pub fn new(
        published: Published,
        events: Events,
        stats: Arc<DnsStats>,
        metrics: DnsMetrics,
    ) -> Arc<Shared> {
        Shared::for_service("dns", true, published, events, stats, metrics)
    }

    /// [`Shared::new`] for `service` (`dns`, `mdns`), with a forwarder built from
    /// `[dns] forwarders` only when `forwarding`.
    pub(crate) fn for_service(
        service: &'static str,
        forwarding: bool,
        published: Published,
        events: Events,
        stats: Arc<DnsStats>,
        metrics: DnsMetrics,
    ) -> Arc<Shared> {
        let snapshot = published.load();
        let serial = soa_serial(0, crate::journal::unix_now());
        let built = build(snapshot, serial, forwarding);
        Arc::new(Shared {
            service,
            forwarding,
            published,
            events,
            stats,
            metrics,
            current: ArcSwap::from_pointee(built),
            rebuild: Mutex::new(serial),
            forwards: Arc::new(tokio::sync::Semaphore::new(MAX_FORWARDS)),
            stop: CancellationToken::new(),
        })
    }

    /// The records of the snapshot in force, rebuilt once when a reload published a new one.
    pub fn current(&self) -> Arc<Built> {
        let snapshot = self.published.load();
        let built = self.current.load_full();
        if Arc::ptr_eq(&built.snapshot, &snapshot) {
            return built;
        }
        let mut serial = self.rebuild.lock().unwrap_or_else(|e| e.into_inner());
        let again = self.current.load_full();
        if Arc::ptr_eq(&again.snapshot, &snapshot) {
            return again;
        }
        *serial = soa_serial(*serial, crate::journal::unix_now());
        let fresh = Arc::new(build(snapshot, *serial, self.forwarding));
        info!(
            service = self.service,
            generation = fresh.snapshot.generation,
            zones = fresh.records.zones.len(),
            "dns records rebuilt"
        );
        self.current.store(Arc::clone(&fresh));
        fresh
    }

    fn count(&self, a: &Answer) {
        self.count_parts(
            a.class,
            a.metadata.response_code == ResponseCode::Refused,
            a.event.as_ref(),
        );
    }

    fn count_parts(&self, class: QueryClass, refused: bool, event: Option<&DeviceEvent>) {
        let s = &self.stats;
        match class {
            QueryClass::Srv => DnsStats::add(&s.srv_queries),
            QueryClass::DeviceTxt => DnsStats::add(&s.txt_answered),
            QueryClass::UnknownSerial => DnsStats::add(&s.txt_nxdomain),
            QueryClass::Other | QueryClass::Bad => {}
        }
        if refused {
            DnsStats::add(&s.refused);
        }
        if let Some(ev) = event {
            debug!(serial = ?ev.serial, rule = ?ev.rule, "device txt query");
            self.events.emit(ev);
        }
    }
}

/// SOA serial for a rebuild at `now`: the Unix time, or one more than the last serial when
/// the clock has not moved past it (RFC 1982 arithmetic is not needed below 2106).
fn soa_serial(previous: u32, now: u64) -> u32 {
    let t = u32::try_from(now).unwrap_or(u32::MAX);
    t.max(previous.wrapping_add(1))
}

fn build(snapshot: Arc<Snapshot>, serial: u32, forwarding: bool) -> Built {
    let host = local_host(&snapshot.config);
    // vouchers are judged at each rebuild (start, SIGHUP): one that expires later keeps being
    // served until the next reload
    let records = Arc::new(RecordSet::build_signed(
        &snapshot.config,
        &snapshot.policy,
        snapshot.owner.as_deref(),
        crate::journal::unix_now(),
        serial,
        &host,
    ));
    let forwarder = if forwarding {
        forwarder(&records)
    } else {
        None
    };
    Built {
        snapshot,
        records,
        forwarder,
        answers: Mutex::new(HashMap::new()),
    }
}

impl Built {
    /// The generation of the snapshot these records were built from (0 at start, +1 per
    /// reload).
    pub fn generation(&self) -> u64 {
        self.snapshot.generation
    }

    /// The cached answer to `packet`, made this query's: its ID and question bytes.
    fn cached(&self, key: &[u8], packet: &[u8]) -> Option<(Vec<u8>, Arc<CachedAnswer>)> {
        let hit = Arc::clone(
            self.answers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(key)?,
        );
        let end = question_end(packet)?;
        let mut bytes = hit.bytes.clone();
        bytes.get_mut(..2)?.copy_from_slice(&packet[..2]);
        bytes.get_mut(12..end)?.copy_from_slice(&packet[12..end]);
        Some((bytes, hit))
    }

    fn keep(&self, key: Vec<u8>, answer: CachedAnswer) {
        let mut m = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() < ANSWER_CACHE_MAX {
            m.insert(key, Arc::new(answer));
        }
    }
}

/// The FORMERR answer for a datagram whose header was readable but whose body was not
/// (RFC 1035 §4.1.1: the header alone, ID and opcode copied); `None` for a response or a
/// datagram shorter than a header, which get no answer.
pub fn formerr(packet: &[u8]) -> Option<Vec<u8>> {
    let mut d = hickory_proto::serialize::binary::BinDecoder::new(packet);
    let header = <Header as hickory_proto::serialize::binary::BinDecodable>::read(&mut d).ok()?;
    if header.metadata.message_type == hickory_proto::op::MessageType::Response {
        return None;
    }
    let mut metadata = Metadata::response_from_request(&header.metadata);
    metadata.response_code = ResponseCode::FormErr;
    let h = Header {
        metadata,
        counts: HeaderCounts::default(),
    };
    h.to_bytes().ok()
}

/// The question section an answer may echo: the request's, or none when its octets point
/// into the header (`handler::question_points_into_header`; the handler answers FORMERR).
fn echo_queries(q: &Queries) -> &Queries {
    static NO_QUESTIONS: std::sync::LazyLock<Queries> = std::sync::LazyLock::new(|| {
        Queries::read(
            &mut hickory_proto::serialize::binary::BinDecoder::new(&[]),
            0,
        )
        .expect("zero questions read from nothing")
    });
    if handler::question_points_into_header(q.as_bytes()) {
        &NO_QUESTIONS
    } else {
        q
    }
}

/// Encodes `a` as the answer to `req`, bounded to `max` octets (TC set past it).
pub fn encode_answer(req: &Request, a: &Answer, max: u16) -> Vec<u8> {
    let mut buf = Vec::with_capacity(512);
    let mut enc = BinEncoder::new(&mut buf);
    enc.set_max_size(max);
    let resp = MessageResponseBuilder::new(echo_queries(&req.queries), a.edns.as_ref()).build(
        a.metadata,
        a.answers.iter(),
        a.authorities.iter(),
        std::iter::empty::<&Record>(),
        a.additionals.iter(),
    );
    match resp.destructive_emit(&mut enc) {
        Ok(_) => buf,
        Err(e) => {
            error!(error = %e, "cannot encode a dns answer");
            let mut metadata = Metadata::response_from_request(&req.metadata);
            metadata.response_code = ResponseCode::ServFail;
            Header {
                metadata,
                counts: HeaderCounts::default(),
            }
            .to_bytes()
            .unwrap_or_default()
        }
    }
}

/// The UDP size bound of an answer: the client's EDNS size (at least 512), or 512 (RFC 1035
/// §4.2.1).
fn udp_limit(a: &Answer) -> u16 {
    a.edns.as_ref().map_or(512, |e| e.max_payload().max(512))
}

/// Sends a forwarder's answer back over our UDP socket.
#[derive(Clone)]
struct UdpReply {
    socket: Arc<UdpSocket>,
    dst: SocketAddr,
    max: u16,
    stats: Arc<DnsStats>,
    metrics: DnsMetrics,
}

#[async_trait::async_trait]
impl ResponseHandler for UdpReply {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let mut buf = Vec::with_capacity(512);
        let mut enc = BinEncoder::new(&mut buf);
        enc.set_max_size(self.max);
        let info = response.destructive_emit(&mut enc)?;
        if let Err(e) = self.socket.send_to(&buf, self.dst).await {
            DnsStats::add(&self.stats.send_errors);
            self.metrics.dropped("send-error");
            return Err(NetError::from(e));
        }
        self.metrics
            .replied(DnsTransport::Udp, u16::from(info.response_code));
        Ok(info)
    }
}

fn servfail_info(req: &Request) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(&req.metadata);
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

/// Serves one UDP socket until `token` is cancelled.
pub async fn serve_udp(socket: UdpSocket, shared: Arc<Shared>, token: CancellationToken) {
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; RECV_BUFFER];
    loop {
        let (n, src) = tokio::select! {
            _ = token.cancelled() => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    // ICMP errors from earlier sends surface here; the socket stays usable
                    debug!(error = %e, "dns udp receive error");
                    continue;
                }
            },
        };
        let packet = &buf[..n];
        let stats = &shared.stats;
        let built = shared.current();
        let key = answer_key(packet);
        let m = &shared.metrics;
        m.request();
        if let Some((bytes, hit)) = key.as_deref().and_then(|k| built.cached(k, packet)) {
            DnsStats::add(&stats.queries);
            let event = hit.event.clone().map(|mut ev| {
                ev.ts = crate::journal::unix_now();
                if let EventDetail::Dns(d) = &mut ev.detail {
                    d.source = src.ip();
                }
                ev
            });
            shared.count_parts(hit.class, hit.refused, event.as_ref());
            if hit.truncated {
                DnsStats::add(&stats.truncated);
            }
            if socket.send_to(&bytes, src).await.is_err() {
                DnsStats::add(&stats.send_errors);
                m.dropped("send-error");
            } else {
                m.replied(DnsTransport::Udp, wire_rcode(&bytes));
            }
            continue;
        }
        let req = match Request::from_bytes(packet.to_vec(), src, Protocol::Udp) {
            Ok(r) => r,
            Err(e) => {
                DnsStats::add(&stats.malformed);
                debug!(%src, error = %e, len = n, "malformed dns query");
                match formerr(packet) {
                    Some(reply) => {
                        if socket.send_to(&reply, src).await.is_err() {
                            DnsStats::add(&stats.send_errors);
                            m.dropped("send-error");
                        } else {
                            m.replied(DnsTransport::Udp, wire_rcode(&reply));
                        }
                    }
                    None => m.dropped("malformed"),
                }
                continue;
            }
        };
        DnsStats::add(&stats.queries);
        let meta = QueryMeta {
            src,
            transport: DnsTransport::Udp,
            now: crate::journal::unix_now(),
        };
        match handler::handle(&built.records, &req, &meta) {
            Outcome::Drop => {
                DnsStats::add(&stats.dropped);
                m.dropped("not-a-query");
            }
            Outcome::Answer(a) => {
                shared.count(&a);
                let bytes = encode_answer(&req, &a, udp_limit(&a));
                let truncated = bytes.len() > 3 && bytes[2] & 0x02 != 0;
                if truncated {
                    DnsStats::add(&stats.truncated);
                }
                // authoritative answers depend on the query alone, never on its source
                if let (Some(k), true) = (key, a.metadata.authoritative) {
                    built.keep(
                        k,
                        CachedAnswer {
                            bytes: bytes.clone(),
                            class: a.class,
                            refused: a.metadata.response_code == ResponseCode::Refused,
                            truncated,
                            event: a.event.clone(),
                        },
                    );
                }
                if let Err(e) = socket.send_to(&bytes, src).await {
                    DnsStats::add(&stats.send_errors);
                    m.dropped("send-error");
                    debug!(%src, error = %e, "dns send failed");
                } else {
                    m.replied(DnsTransport::Udp, wire_rcode(&bytes));
                }
            }
            Outcome::Forward => {
                DnsStats::add(&stats.forwarded);
                let reply = UdpReply {
                    socket: Arc::clone(&socket),
                    dst: src,
                    max: req.max_payload(),
                    stats: Arc::clone(&shared.stats),
                    metrics: shared.metrics.clone(),
                };
                forward(&shared, &built, req, reply).await;
            }
        }
    }
}

/// Hands `req` to the forwarder in its own task (it waits for upstream), or answers SERVFAIL
/// when there is none or too many are in flight.
async fn forward<R: ResponseHandler>(
    shared: &Arc<Shared>,
    built: &Arc<Built>,
    req: Request,
    mut reply: R,
) {
    let permit = Arc::clone(&shared.forwards).try_acquire_owned().ok();
    match (&built.forwarder, permit) {
        (Some(f), Some(permit)) => {
            let f = Arc::clone(f);
            let token = shared.stop.clone();
            tokio::spawn(async move {
                // ends with the service: an upstream that never answers must not outlive it
                tokio::select! {
                    _ = f.handle_request::<_, TokioTime>(&req, reply) => {}
                    _ = token.cancelled() => {}
                }
                drop(permit);
            });
        }
        _ => {
            let resp = MessageResponseBuilder::new(echo_queries(&req.queries), None)
                .error_msg(&req.metadata, ResponseCode::ServFail);
            let _ = reply.send_response(resp).await;
        }
    }
}

/// The TCP side: hickory's server calls this for every framed query.
#[derive(Clone)]
pub struct TcpHandler {
    shared: Arc<Shared>,
}

#[async_trait::async_trait]
impl RequestHandler for TcpHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let shared = &self.shared;
        DnsStats::add(&shared.stats.queries);
        shared.metrics.request();
        let built = shared.current();
        let meta = QueryMeta {
            src: request.src(),
            transport: DnsTransport::Tcp,
            now: crate::journal::unix_now(),
        };
        match handler::handle(&built.records, request, &meta) {
            Outcome::Drop => {
                DnsStats::add(&shared.stats.dropped);
                shared.metrics.dropped("not-a-query");
                servfail_info(request)
            }
            Outcome::Answer(a) => {
                shared.count(&a);
                let resp =
                    MessageResponseBuilder::new(echo_queries(&request.queries), a.edns.as_ref())
                        .build(
                            a.metadata,
                            a.answers.iter(),
                            a.authorities.iter(),
                            std::iter::empty::<&Record>(),
                            a.additionals.iter(),
                        );
                match response_handle.send_response(resp).await {
                    Ok(info) => {
                        shared
                            .metrics
                            .replied(DnsTransport::Tcp, u16::from(info.response_code));
                        info
                    }
                    Err(e) => {
                        DnsStats::add(&shared.stats.send_errors);
                        shared.metrics.dropped("send-error");
                        debug!(error = %e, "dns tcp send failed");
                        servfail_info(request)
                    }
                }
            }
            Outcome::Forward => {
                DnsStats::add(&shared.stats.forwarded);
                let info = match &built.forwarder {
                    Some(f) => f.handle_request::<R, T>(request, response_handle).await,
                    None => {
                        let resp =
                            MessageResponseBuilder::new(echo_queries(&request.queries), None)
                                .error_msg(&request.metadata, ResponseCode::ServFail);
                        let _ = response_handle.send_response(resp).await;
                        servfail_info(request)
                    }
                };
                shared
                    .metrics
                    .replied(DnsTransport::Tcp, u16::from(info.response_code));
                info
            }
        }
    }
}

/// Serves every socket of `bound` until `token` is cancelled, then closes them and returns
/// once every task (forwarded queries included) has ended.
///
/// # Errors
/// A socket cannot be registered with the runtime (no reactor).
pub async fn serve(
    bound: BoundDns,
    ctx: ServiceContext,
    token: CancellationToken,
) -> io::Result<()> {
    let shared = Shared::new(
        ctx.published.clone(),
        ctx.events.clone(),
        Arc::clone(&bound.stats),
        DnsMetrics::new(&ctx.metrics, Service::Dns),
    );
    ctx.metrics.set_source(
        "dns",
        Box::new(crate::metrics::DnsSource::new("dns", &bound.stats)),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for s in bound.udp {
        let s = UdpSocket::from_std(s)?;
        tasks.spawn(serve_udp(s, Arc::clone(&shared), token.clone()));
    }
    let mut tcp = Server::new(TcpHandler {
        shared: Arc::clone(&shared),
    });
    let has_tcp = !bound.tcp.is_empty();
    for l in bound.tcp {
        tcp.register_listener(tokio::net::TcpListener::from_std(l)?, TCP_IDLE_TIMEOUT, 32);
    }
    if has_tcp {
        let stop = tcp.shutdown_token().clone();
        let t = token.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = t.cancelled() => {}
                _ = stop.cancelled() => {}
            }
            stop.cancel();
            if let Err(e) = tcp.block_until_done().await {
                warn!(error = %e, "dns tcp server ended with an error");
            }
        });
    }
    if tasks.is_empty() {
        // nothing to listen on: still a service that ends when asked, not by itself
        token.cancelled().await;
    }
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r {
            error!(error = %e, "a dns task failed");
        }
    }
    shared.stop.cancel();
    // forwarded queries in flight hold permits: wait until they are all given back
    let _ = shared.forwards.acquire_many(MAX_FORWARDS as u32).await;
    let s = &shared.stats;
    info!(
        queries = DnsStats::get(&s.queries),
        srv = DnsStats::get(&s.srv_queries),
        txt_answered = DnsStats::get(&s.txt_answered),
        txt_nxdomain = DnsStats::get(&s.txt_nxdomain),
        forwarded = DnsStats::get(&s.forwarded),
        refused = DnsStats::get(&s.refused),
        malformed = DnsStats::get(&s.malformed),
        truncated = DnsStats::get(&s.truncated),
        "dns stopped"
    );
    Ok(())
}

impl Shared {
    /// The event sink (the mDNS responder reports through it too).
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Counts one mDNS device TXT question (answered or not), as the unicast paths count
    /// theirs.
    pub(crate) fn count_device_event(&self, ev: &DeviceEvent) {
        if let EventDetail::Dns(d) = &ev.detail {
            match d.event {
                crate::journal::DnsKind::Answered => DnsStats::add(&self.stats.txt_answered),
                crate::journal::DnsKind::Nxdomain => DnsStats::add(&self.stats.txt_nxdomain),
            }
        }
        self.events.emit(ev);
    }
}
