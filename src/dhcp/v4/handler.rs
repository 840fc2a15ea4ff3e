//! The DHCPv4 handler: request + state + now → outcome. No sockets, clock or randomness here
//!
//! [`handle`] builds the device's [`DeviceFacts`] once, then answers per RFC 2131 §4.3 and
//! returns a typed [`Outcome`]: the reply as a value with its destination (the server loop
//! encodes and sends it once the lease change is durable), the lease records to commit, the
//! [`DeviceEvent`] for the journal and device table, or why nothing is sent. Where a reply goes
//! is decided in one place, [`route`].

use std::net::{Ipv4Addr, SocketAddrV4};

use dhcproto::v4::MessageType;
use ipnet::Ipv4Net;

use super::reply::{self, ReplyHeader, ReplyOptions};
use super::wire::*;
use crate::config::{Dhcp4, Subnet4};
use crate::dhcp::leases::{ClientKey, Lease4, LeaseState, LeaseTable, Slot};
use crate::journal::{DeviceEvent, Dhcp4Event, Dhcp4Kind, Dhcp4Reason, EventDetail};
use crate::policy::{client_id_text, ClientId, DeviceFacts, MacAddr, Policy, Source, UriEncoding};
use crate::sztp::redirect_list::{encode_list, encode_text, rfc3396_wire_len};

/// Where a request came from.
#[derive(Clone, Debug)]
pub struct RequestMeta {
    /// The interface it arrived on.
    pub interface: String,
    /// The receiving interface's IPv4 networks (from the published snapshot).
    pub iface_addrs: Vec<Ipv4Net>,
    /// IP source address and UDP port.
    pub src: SocketAddrV4,
}

/// Where a reply goes (RFC 2131 §4.1), as decided by [`route`]. How it leaves (a frame or a
/// UDP datagram, on which socket) is [`Transmission::of`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// To the relay agent: giaddr, port 67 or the RFC 8357 relay port.
    Relay(SocketAddrV4),
    /// Routed UDP unicast to a client address that is not on the receiving link (a client
    /// behind a router that unicast its RENEW or INFORM): the next hop is a router, which
    /// answers ARP.
    Unicast(SocketAddrV4),
    /// To a client's own address on the receiving link (RENEWING, REBINDING, INFORM):
    /// a frame to its MAC, never an ARP for an address that may not answer (fault 10 of
    /// issue 6); a UDP datagram on a socket of its own when frames are not available.
    Client {
        /// chaddr, when it is an Ethernet address.
        mac: Option<MacAddr>,
        /// ciaddr (or the request's source) and the client port.
        to: SocketAddrV4,
    },
    /// Limited broadcast on the receiving interface, to this UDP port.
    Broadcast(u16),
    /// Straight to the client's MAC and offered address, without ARP (raw frame); broadcast
    /// when raw frames are not available.
    Link {
        /// The client's hardware address (chaddr).
        mac: MacAddr,
        /// yiaddr and the client port.
        to: SocketAddrV4,
    },
}

/// How a reply leaves the server: the send path's decision for a [`Destination`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transmission {
    /// An Ethernet frame to `mac` carrying IPv4/UDP to `to` (AF_PACKET, CAP_NET_RAW).
    Frame {
        /// Ethernet destination.
        mac: MacAddr,
        /// IP destination and UDP port.
        to: SocketAddrV4,
    },
    /// A datagram on the interface's DHCP socket (source port 67): relays, routed unicast and
    /// broadcast.
    Udp(SocketAddrV4),
    /// A datagram on the interface's client-unicast socket (an ephemeral source port): only a
    /// client that does not answer ARP can fill its send buffer, and it holds up nothing else.
    UdpIsolated(SocketAddrV4),
}

impl Transmission {
    /// The transmission of `to` when raw frames are (`raw`) or are not available.
    pub fn of(to: Destination, raw: bool) -> Transmission {
        let bcast = |port| Transmission::Udp(SocketAddrV4::new(Ipv4Addr::BROADCAST, port));
        match to {
            Destination::Relay(a) | Destination::Unicast(a) => Transmission::Udp(a),
            Destination::Broadcast(port) => bcast(port),
            Destination::Link { mac, to } if raw => Transmission::Frame { mac, to },
            Destination::Link { to, .. } => bcast(to.port()),
            Destination::Client { mac: Some(mac), to } if raw => Transmission::Frame { mac, to },
            Destination::Client { to, .. } => Transmission::UdpIsolated(to),
        }
    }
}

/// The client's state as a REQUEST shows it (RFC 2131 §4.3.2 and Table 5): option 54 present
/// is SELECTING; option 50 without 54 is INIT-REBOOT; neither, with ciaddr, is RENEWING or
/// REBINDING (the two differ only in whether the client unicast or broadcast the request,
/// which does not change the reply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestState {
    /// Answering an OFFER: 54 and 50 set, ciaddr 0.
    Selecting,
    /// Rebooting with a remembered address: 50 set, no 54, ciaddr 0.
    InitReboot,
    /// Extending a lease it holds and uses: ciaddr set, no 50, no 54.
    RenewingOrRebinding,
}

impl RequestState {
    /// The state of `req` (a REQUEST), `None` when it fits no row of Table 5.
    pub fn of(req: &Request) -> Option<RequestState> {
        match (req.server_id(), req.requested_addr()) {
            (Some(_), _) => Some(RequestState::Selecting),
            (None, Some(_)) => Some(RequestState::InitReboot),
            (None, None) if !req.msg.ciaddr().is_unspecified() => {
                Some(RequestState::RenewingOrRebinding)
            }
            (None, None) => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            RequestState::Selecting => "selecting",
            RequestState::InitReboot => "init-reboot",
            RequestState::RenewingOrRebinding => "renewing",
        }
    }
}

/// Everything [`route`] decides from: the request's fields and state, and the reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteFacts {
    /// The request's option 53.
    pub request: MessageType,
    /// For a REQUEST, the client state its options show.
    pub state: Option<RequestState>,
    /// OFFER, ACK or NAK.
    pub reply: MessageType,
    /// The request's giaddr (0.0.0.0: not relayed).
    pub giaddr: Ipv4Addr,
    /// Where relay replies go: 67, or the request's source port when the relay sent the
    /// RFC 8357 relay-port sub-option.
    pub relay_port: u16,
    /// The request's ciaddr.
    pub ciaddr: Ipv4Addr,
    /// The request's IP source address.
    pub source: Ipv4Addr,
    /// Whether the client's own address (ciaddr, or for an INFORM without it the source) is
    /// on one of the receiving interface's networks.
    pub client_on_link: bool,
    /// The broadcast bit of the request's flags.
    pub broadcast: bool,
    /// The reply's yiaddr.
    pub yiaddr: Ipv4Addr,
    /// chaddr, when it is an Ethernet address.
    pub mac: Option<MacAddr>,
    /// `[dhcp4] client-port` (68).
    pub client_port: u16,
}

/// A routing decision: where the reply goes, and whether its broadcast bit is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// The destination.
    pub to: Destination,
    /// The reply's broadcast flag: the request's, or set to ask a relay to broadcast.
    pub broadcast: bool,
}

/// RFC 2131 §4.1 reply routing, by the client's state rather than by whichever field happens
/// to be non-zero. `None` for DECLINE and RELEASE (no reply) and other requests. Each arm
/// names the RFC sentence it implements; the README's DHCPv4 section tabulates it next to ISC
/// dhcpd (`dhcp_reply`, `dhcpinform`) and Kea (`Dhcpv4Srv::adjustRemoteAddr`).
pub fn route(f: &RouteFacts) -> Option<Route> {
    let relayed = !f.giaddr.is_unspecified();
    let relay = Destination::Relay(SocketAddrV4::new(f.giaddr, f.relay_port));
    let at_client = |addr: Ipv4Addr| {
        let to = SocketAddrV4::new(addr, f.client_port);
        if f.client_on_link {
            Destination::Client { mac: f.mac, to }
        } else {
            Destination::Unicast(to)
        }
    };
    let keep = |to| {
        Some(Route {
            to,
            broadcast: f.broadcast,
        })
    };
    match f.request {
        MessageType::Decline | MessageType::Release => None,
        // §4.3.5: "The server responds to a DHCPINFORM message by sending a DHCPACK message
        // directly to the address given in the 'ciaddr' field" (relayed or not, as ISC dhcpd
        // and Kea do). Without ciaddr, as ISC dhcpd and Kea: through the relay with the
        // broadcast bit set, else to the source address, else broadcast.
        MessageType::Inform => {
            if !f.ciaddr.is_unspecified() {
                keep(at_client(f.ciaddr))
            } else if relayed {
                Some(Route {
                    to: relay,
                    broadcast: true,
                })
            } else if !f.source.is_unspecified() {
                keep(at_client(f.source))
            } else {
                keep(Destination::Broadcast(f.client_port))
            }
        }
        MessageType::Discover | MessageType::Request => {
            // §4.1: "If the 'giaddr' field in a DHCP message from a client is non-zero, the
            // server sends any return messages to the 'DHCP server' port on the BOOTP relay
            // agent whose address appears in 'giaddr'." §4.3.2: a relayed DHCPNAK "SHOULD"
            // carry the broadcast bit, "because the client may not have a correct network
            // address or subnet mask".
            if relayed {
                return Some(Route {
                    to: relay,
                    broadcast: f.broadcast || f.reply == MessageType::Nak,
                });
            }
            // §4.1: "In all cases, when 'giaddr' is zero, the server broadcasts any DHCPNAK
            // messages to 0xffffffff."
            if f.reply == MessageType::Nak {
                return keep(Destination::Broadcast(f.client_port));
            }
            // §4.1: "If the 'giaddr' field is zero and the 'ciaddr' field is nonzero, then
            // the server unicasts DHCPOFFER and DHCPACK messages to the address in 'ciaddr'."
            // Only a client in RENEWING or REBINDING has an address to unicast to: Table 5
            // says ciaddr is 0 in DISCOVER and in SELECTING and INIT-REBOOT REQUESTs, so a
            // non-zero ciaddr there is stale and the client answers no ARP for it.
            if f.state == Some(RequestState::RenewingOrRebinding) {
                return keep(at_client(f.ciaddr));
            }
            // §4.1: "If 'giaddr' is zero and 'ciaddr' is zero, and the broadcast bit is set,
            // then the server broadcasts DHCPOFFER and DHCPACK messages to 0xffffffff. If the
            // broadcast bit is not set [...], then the server unicasts DHCPOFFER and DHCPACK
            // messages to the client's hardware address and 'yiaddr' address." A client
            // without an Ethernet chaddr can only be reached by broadcast (RFC 4390 §2.2:
            // an IPoIB link address does not fit chaddr, so such clients set the BROADCAST
            // flag).
            match f.mac {
                Some(mac) if !f.broadcast && !f.yiaddr.is_unspecified() => {
                    keep(Destination::Link {
                        mac,
                        to: SocketAddrV4::new(f.yiaddr, f.client_port),
                    })
                }
                _ => keep(Destination::Broadcast(f.client_port)),
            }
        }
        _ => None,
    }
}

/// A DHCPv4 reply as a value: [`Reply::encode`] gives the UDP payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// OFFER, ACK or NAK (option 53).
    pub msg_type: MessageType,
    /// The fixed BOOTP fields.
    pub header: ReplyHeader,
    /// Options after 53, in wire order.
    pub options: ReplyOptions,
    /// The request's option 82, echoed last (RFC 3046 §2.2).
    pub relay_agent_info: Option<Vec<u8>>,
    /// Where it goes.
    pub to: Destination,
}

impl Reply {
    /// The UDP payload: a BOOTREPLY of at least 300 octets, long options split (RFC 3396).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// [`Reply::encode`] into `out` (cleared first), so a sender can reuse one buffer.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        reply::encode_into(
            out,
            self.msg_type,
            &self.header,
            &self.options,
            self.relay_agent_info.as_deref(),
        )
    }

    /// The whole value of option `code` (53 excepted), if the reply carries it.
    pub fn option(&self, code: u8) -> Option<&[u8]> {
        if code == OPT_RELAY_AGENT {
            return self.relay_agent_info.as_deref();
        }
        self.options.get(code)
    }
}

/// How many addresses one client (by MAC) may have in quarantine at a time: its further
/// DECLINEs are ignored ([`Ignored::DeclineLimit`]) until one lapses (`decline-time`).
pub const MAX_ACTIVE_DECLINES: usize = 4;

/// Why a request got no reply (counted, logged at debug).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ignored {
    /// chaddr is not a 6-octet Ethernet address and there is no option 61 to key the client
    /// by (RFC 4390 §2 makes option 61 mandatory for such hardware).
    NoEthernetChaddr,
    /// No configured subnet for the link (link selection, giaddr or interface address).
    NoSubnet,
    /// The receiving interface has no address to use as server identifier.
    NoServerAddress,
    /// A DISCOVER found every pool of this subnet in use: no free address and no outstanding
    /// offer to reuse.
    PoolExhausted(Ipv4Net),
    /// A REQUEST, DECLINE or RELEASE naming another server (option 54).
    ForOtherServer,
    /// A REQUEST with neither server id, requested address nor ciaddr.
    RequestWithoutAddress,
    /// A DECLINE without option 50.
    DeclineWithoutAddress,
    /// A DECLINE for an address this client does not hold.
    DeclineForUnknownLease,
    /// A DECLINE from a client that already has [`MAX_ACTIVE_DECLINES`] addresses in
    /// quarantine: not quarantined, so one client cannot take a pool out of service.
    DeclineLimit,
    /// A RELEASE for an address this client does not hold.
    ReleaseForUnknownLease,
    /// A BOOTREQUEST whose option 53 is not one a server answers.
    UnexpectedMessageType,
    /// An INIT-REBOOT, RENEWING or REBINDING REQUEST from a client this server has no record
    /// of, on a subnet where it is not authoritative: RFC 2131 §4.3.2 "MUST remain silent".
    NoRecordOfClient,
}

impl Ignored {
    /// The kebab-case name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Ignored::NoEthernetChaddr => "no-ethernet-chaddr",
            Ignored::NoSubnet => "no-subnet",
            Ignored::NoServerAddress => "no-server-address",
            Ignored::PoolExhausted(_) => "pool-exhausted",
            Ignored::ForOtherServer => "for-other-server",
            Ignored::RequestWithoutAddress => "request-without-address",
            Ignored::DeclineWithoutAddress => "decline-without-address",
            Ignored::DeclineForUnknownLease => "decline-for-unknown-lease",
            Ignored::DeclineLimit => "decline-limit",
            Ignored::ReleaseForUnknownLease => "release-for-unknown-lease",
            Ignored::UnexpectedMessageType => "unexpected-message-type",
            Ignored::NoRecordOfClient => "no-record-of-client",
        }
    }
}

/// What the server loop must do for one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The reply, sent only after `commit` is durable.
    pub reply: Option<Reply>,
    /// Lease records to make durable BEFORE the reply leaves.
    pub commit: Vec<Lease4>,
    /// The device event of this step.
    pub event: Option<DeviceEvent>,
    /// Why nothing is sent.
    pub ignored: Option<Ignored>,
}

impl Outcome {
    fn ignore(why: Ignored) -> Outcome {
        Outcome {
            ignored: Some(why),
            ..Outcome::default()
        }
    }
}

/// Everything the handler reads: the `[dhcp4]` section and the one Policy (both from the
/// published snapshot).
pub struct Context<'a> {
    /// `[dhcp4]`.
    pub dhcp4: &'a Dhcp4,
    /// The Policy.
    pub policy: &'a Policy,
}

fn secs(d: std::time::Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

impl Context<'_> {
    /// RFC 3527/3011 link selection, then giaddr, then the receiving interface's addresses.
    fn subnet_for(&self, req: &Request, meta: &RequestMeta) -> Option<&Subnet4> {
        let by_addr = |a: Ipv4Addr| self.dhcp4.subnets.iter().find(|s| s.subnet.contains(&a));
        if let Some(a) = req.link_selection() {
            return by_addr(a);
        }
        let giaddr = req.msg.giaddr();
        if !giaddr.is_unspecified() {
            return by_addr(giaddr);
        }
        meta.iface_addrs.iter().find_map(|n| by_addr(n.addr()))
    }

    fn server_id(&self, subnet: &Subnet4, meta: &RequestMeta) -> Option<Ipv4Addr> {
        self.dhcp4.server_id.or_else(|| {
            meta.iface_addrs
                .iter()
                .find(|n| subnet.subnet.contains(&n.addr()))
                .or(meta.iface_addrs.first())
                .map(|n| n.addr())
        })
    }
}

/// What a DHCPv4 request says about the device, built once per request.
pub fn device_facts(req: &Request, meta: &RequestMeta) -> DeviceFacts {
    DeviceFacts {
        source: Source::Dhcp4,
        mac: req.chaddr_mac(),
        client_id: req.client_id().map(|c| ClientId::Dhcp4(c.to_vec())),
        vendor_class: req.vendor_class(),
        user_class: req.user_classes(),
        circuit_id: req.relay_suboption(RAI_CIRCUIT_ID),
        remote_id: req.relay_suboption(RAI_REMOTE_ID),
        interface: Some(meta.interface.clone()),
        source_addr: Some(std::net::IpAddr::V4(*meta.src.ip())),
        ..DeviceFacts::default()
    }
}

/// The event being built for one request: the DHCPv4 detail plus the shared fields.
struct EventDraft {
    detail: Dhcp4Event,
    rule: Option<String>,
    uris: Vec<String>,
}

impl EventDraft {
    fn new(req: &Request, facts: &DeviceFacts) -> EventDraft {
        let client_id = facts.client_id.as_ref().map(|c| c.as_bytes().to_vec());
        EventDraft {
            detail: Dhcp4Event {
                event: Dhcp4Kind::Offer,
                xid: req.msg.xid(),
                client_id_text: client_id.as_deref().and_then(client_id_text),
                client_id,
                vendor_class: facts.vendor_class.clone(),
                user_class: facts.user_class.clone(),
                interface: facts.interface.clone(),
                relay: Some(req.msg.giaddr()).filter(|g| !g.is_unspecified()),
                address: None,
                requested_143: req.requests(OPT_SZTP_REDIRECT),
                uris_dropped: Vec::new(),
                encoding: None,
                reason: None,
                message: None,
            },
            rule: None,
            uris: Vec::new(),
        }
    }

    fn done(&mut self, kind: Dhcp4Kind, address: Option<Ipv4Addr>) -> &mut Self {
        self.detail.event = kind;
        self.detail.address = address;
        self
    }

    fn event(&self, now: u64, mac: Option<MacAddr>) -> DeviceEvent {
        DeviceEvent {
            ts: now,
            mac,
            duid: None,
            serial: None,
            rule: self.rule.clone(),
            uris: self.uris.clone(),
            detail: EventDetail::Dhcp4(self.detail.clone()),
        }
    }
}

/// A request dropped before any exchange: journaled (kind `dropped` with `reason`) so the
/// operator sees it, and counted as `why`.
fn dropped(
    req: &Request,
    facts: &DeviceFacts,
    now: u64,
    reason: Dhcp4Reason,
    why: Ignored,
) -> Outcome {
    let mut ev = EventDraft::new(req, facts);
    ev.done(Dhcp4Kind::Dropped, None).detail.reason = Some(reason);
    Outcome {
        event: Some(ev.event(now, facts.mac)),
        ignored: Some(why),
        ..Outcome::default()
    }
}

/// Handle one decoded request at `now` (Unix seconds): RFC 2131 §4.3 server behaviour.
pub fn handle(
    ctx: &Context<'_>,
    leases: &mut LeaseTable,
    req: &Request,
    meta: &RequestMeta,
    now: u64,
) -> Outcome {
    let facts = device_facts(req, meta);
    // A client keyed by option 61 needs no Ethernet chaddr (RFC 4390 §2: IPoIB clients send
    // htype 32, hlen 0, chaddr zero and a mandatory client identifier); its lease records an
    // all-zero MAC. Without either there is nothing to key a lease by.
    let hw = match (facts.mac, req.client_id()) {
        (Some(mac), _) => mac,
        (None, Some(_)) => MacAddr::default(),
        (None, None) => {
            return dropped(
                req,
                &facts,
                now,
                Dhcp4Reason::UnsupportedHardware,
                Ignored::NoEthernetChaddr,
            )
        }
    };
    let Some(subnet) = ctx.subnet_for(req, meta) else {
        return dropped(req, &facts, now, Dhcp4Reason::NoSubnet, Ignored::NoSubnet);
    };
    let Some(server_id) = ctx.server_id(subnet, meta) else {
        return Outcome::ignore(Ignored::NoServerAddress);
    };
    let key = ClientKey::new(req.client_id(), hw);
    let mut ev = EventDraft::new(req, &facts);
    let x = Exchange {
        ctx,
        req,
        meta,
        facts: &facts,
        subnet,
        server_id,
        hw,
        key,
        now,
    };
    match req.msg_type {
        MessageType::Discover => x.discover(leases, &mut ev),
        MessageType::Request => x.request(leases, &mut ev),
        MessageType::Decline => x.decline(leases, &mut ev),
        MessageType::Release => x.release(leases, &mut ev),
        MessageType::Inform => x.inform(&mut ev),
        _ => Outcome::ignore(Ignored::UnexpectedMessageType),
    }
}

struct Exchange<'a> {
    ctx: &'a Context<'a>,
    req: &'a Request,
    meta: &'a RequestMeta,
    facts: &'a DeviceFacts,
    subnet: &'a Subnet4,
    server_id: Ipv4Addr,
    /// chaddr, or all zeros for a client keyed by option 61 alone.
    hw: MacAddr,
    key: ClientKey,
    now: u64,
}

impl Exchange<'_> {
    fn reserved(&self) -> Option<&crate::config::Reservation4> {
        let mac = self.facts.mac?;
        self.subnet.reservations.iter().find(|r| r.mac == mac)
    }

    fn reservation(&self) -> Option<Ipv4Addr> {
        self.reserved().map(|r| r.address)
    }

    fn reserved_for_other(&self, a: Ipv4Addr) -> bool {
        self.subnet
            .reservations
            .iter()
            .any(|r| r.address == a && Some(r.mac) != self.facts.mac)
    }

    /// May this client hold `a` in this subnet?
    fn assignable(&self, leases: &LeaseTable, a: Ipv4Addr) -> bool {
        if self.reservation() == Some(a) {
            return leases.available_to(a, &self.key, self.now);
        }
        self.subnet.pools.iter().any(|p| p.contains(a))
            && !self.reserved_for_other(a)
            && leases.available_to(a, &self.key, self.now)
    }

    fn choose(&self, leases: &mut LeaseTable) -> Option<Ipv4Addr> {
        if let Some(r) = self.reservation() {
            if leases.available_to(r, &self.key, self.now) {
                return Some(r);
            }
        }
        if let Some(a) = leases.client_addr(&self.key) {
            if self.assignable(leases, a) && self.reservation().is_none() {
                return Some(a);
            }
        }
        if let Some(a) = self.req.requested_addr() {
            if self.assignable(leases, a) && self.reservation().is_none() {
                return Some(a);
            }
        }
        let subnet = self.subnet;
        let reserved = |a: Ipv4Addr| subnet.reservations.iter().any(|r| r.address == a);
        for p in &self.subnet.pools {
            if let Some(a) = leases.find_free(p.start, p.end, self.now, |a| !reserved(a)) {
                return Some(a);
            }
        }
        // Nothing free: the oldest outstanding offer goes to the client asking now. Offers
        // that are never taken up (a DISCOVER flood, clients that went away) would otherwise
        // hold every address for offer-time and starve real clients; a client whose offer is
        // taken and that still REQUESTs it gets a NAK and starts over.
        self.subnet
            .pools
            .iter()
            .find_map(|p| leases.oldest_offer(p.start, p.end, |a| !reserved(a)))
    }

    /// The host name a lease records: the reservation's `hostname`, else the client's option
    /// 12 (RFC 2132 §3.14).
    fn hostname(&self) -> Option<String> {
        self.reserved()
            .and_then(|r| r.hostname.clone())
            .or_else(|| self.req.hostname())
    }

    fn lease(&self, addr: Ipv4Addr, state: LeaseState, expires: u64) -> Lease4 {
        Lease4 {
            addr,
            mac: self.hw,
            client_id: self.req.client_id().map(<[u8]>::to_vec),
            hostname: self.hostname(),
            expires,
            state,
        }
    }

    /// The journaled lease this client holds or held (bound, or released/expired), if any:
    /// what RFC 2131 §4.3.2 calls the server's "record of this client". Offers do not count.
    fn record<'t>(&self, leases: &'t LeaseTable) -> Option<&'t Lease4> {
        let a = leases.client_addr(&self.key)?;
        match leases.get(a) {
            Some(Slot::Stored(l)) if ClientKey::new(l.client_id.as_deref(), l.mac) == self.key => {
                Some(l)
            }
            _ => None,
        }
    }

    fn lease_secs(&self) -> u32 {
        secs(self.subnet.lease_time)
    }

    fn outcome(
        &self,
        ev: &EventDraft,
        reply: Option<Reply>,
        commit: Vec<Lease4>,
        ignored: Option<Ignored>,
    ) -> Outcome {
        Outcome {
            reply,
            commit,
            event: Some(ev.event(self.now, self.facts.mac)),
            ignored,
        }
    }

    fn discover(&self, leases: &mut LeaseTable, ev: &mut EventDraft) -> Outcome {
        let Some(addr) = self.choose(leases) else {
            ev.done(Dhcp4Kind::NoAddress, None).detail.reason = Some(Dhcp4Reason::PoolExhausted);
            let subnet = self.subnet.subnet;
            return self.outcome(ev, None, Vec::new(), Some(Ignored::PoolExhausted(subnet)));
        };
        // a bound client that discovers again keeps its stored lease: an offer must never
        // shorten or hide a binding that is on disk
        let holds_binding = matches!(leases.get(addr), Some(Slot::Stored(l))
            if l.state == LeaseState::Bound
                && l.expires > self.now
                && ClientKey::new(l.client_id.as_deref(), l.mac) == self.key);
        if !holds_binding {
            let offer_until = self.now.saturating_add(self.ctx.dhcp4.offer_time.as_secs());
            leases.put(Slot::Offered(self.lease(
                addr,
                LeaseState::Bound,
                offer_until,
            )));
        }
        ev.done(Dhcp4Kind::Offer, Some(addr));
        let reply = self.reply(MessageType::Offer, addr, true, ev);
        self.outcome(ev, Some(reply), Vec::new(), None)
    }

    /// RFC 2131 §4.3.2 for a client this server has no record of, or whose record names
    /// another address: an authoritative server NAKs; otherwise it "MUST remain silent"
    /// (INIT-REBOOT) and, as Kea and ISC dhcpd do, leaves RENEWING and REBINDING clients to
    /// the server that knows them. A known client whose notion of its address is wrong is
    /// NAKed either way.
    fn unknown_or_wrong(
        &self,
        leases: &LeaseTable,
        ev: &mut EventDraft,
        state: RequestState,
        addr: Ipv4Addr,
    ) -> Option<Outcome> {
        let st = state.as_str();
        let on_network = self.subnet.subnet.contains(&addr);
        match self.record(leases) {
            Some(l) if l.addr == addr => None,
            Some(l) => Some(self.nak(
                ev,
                if on_network {
                    Dhcp4Reason::NotAvailable
                } else {
                    Dhcp4Reason::NotOnNetwork
                },
                format!("{st}: this client's lease is {}, not {addr}", l.addr),
            )),
            None if self.subnet.authoritative => Some(if on_network {
                self.nak(
                    ev,
                    Dhcp4Reason::NoRecord,
                    format!("{st}: no record of this client for {addr}"),
                )
            } else {
                self.nak(
                    ev,
                    Dhcp4Reason::NotOnNetwork,
                    format!("{st}: {addr} is not on this network"),
                )
            }),
            None => {
                ev.done(Dhcp4Kind::Dropped, Some(addr)).detail.reason = Some(Dhcp4Reason::NoRecord);
                Some(self.outcome(ev, None, Vec::new(), Some(Ignored::NoRecordOfClient)))
            }
        }
    }

    fn request(&self, leases: &mut LeaseTable, ev: &mut EventDraft) -> Outcome {
        use RequestState::*;
        let ciaddr = self.req.msg.ciaddr();
        let Some(state) = RequestState::of(self.req) else {
            return Outcome::ignore(Ignored::RequestWithoutAddress);
        };
        let addr = match state {
            Selecting => {
                if self.req.server_id() != Some(self.server_id) {
                    // the client took another server's offer: free ours
                    if let Some(a) = leases.client_addr(&self.key) {
                        leases.drop_offer(a);
                    }
                    return Outcome::ignore(Ignored::ForOtherServer);
                }
                match self
                    .req
                    .requested_addr()
                    .or(Some(ciaddr).filter(|a| !a.is_unspecified()))
                {
                    Some(a) => a,
                    None => {
                        return self.nak(
                            ev,
                            Dhcp4Reason::NoRequestedAddress,
                            "request without requested address".into(),
                        )
                    }
                }
            }
            InitReboot => self.req.requested_addr().expect("state says option 50"),
            RenewingOrRebinding => ciaddr,
        };
        if state != Selecting {
            if let Some(o) = self.unknown_or_wrong(leases, ev, state, addr) {
                return o;
            }
        }
        let st = state.as_str();
        if !self.subnet.subnet.contains(&addr) {
            return self.nak(
                ev,
                Dhcp4Reason::NotOnNetwork,
                format!("{st}: {addr} is not on this network"),
            );
        }
        if let Some(r) = self.reservation() {
            if r != addr {
                return self.nak(
                    ev,
                    Dhcp4Reason::ReservedElsewhere,
                    format!("{st}: reserved address is {r}, not {addr}"),
                );
            }
        }
        if !self.assignable(leases, addr) {
            return self.nak(
                ev,
                Dhcp4Reason::NotAvailable,
                format!("{st}: {addr} is not available to this client"),
            );
        }
        if state == Selecting {
            // only what we offered (or what the client already holds) is ACKed
            let held = leases.get(addr).is_some_and(|s| {
                ClientKey::new(s.lease().client_id.as_deref(), s.lease().mac) == self.key
            });
            if !held {
                return self.nak(
                    ev,
                    Dhcp4Reason::NotOffered,
                    format!("selecting: {addr} was not offered to this client"),
                );
            }
        }
        let expires = self.now.saturating_add(u64::from(self.lease_secs()));
        let mut commit = Vec::with_capacity(2);
        // the client's other offer, and the lease it held before moving here (its offer for
        // this address took the old lease's place in the client index): one client, one lease
        let last = leases.client_addr(&self.key);
        let held = leases.bound_addr(&self.key).filter(|&b| Some(b) != last);
        for old in [last, held].into_iter().flatten().filter(|&o| o != addr) {
            match leases.get(old) {
                Some(Slot::Stored(l))
                    if l.state == LeaseState::Bound
                        && ClientKey::new(l.client_id.as_deref(), l.mac) == self.key =>
                {
                    let mut released = l.clone();
                    released.state = LeaseState::Released;
                    released.expires = self.now;
                    commit.push(released.clone());
                    leases.put(Slot::Stored(released));
                }
                Some(Slot::Offered(_)) => leases.drop_offer(old),
                _ => {}
            }
        }
        let lease = self.lease(addr, LeaseState::Bound, expires);
        leases.put(Slot::Stored(lease.clone()));
        commit.push(lease);
        ev.done(Dhcp4Kind::Ack, Some(addr));
        let reply = self.reply(MessageType::Ack, addr, true, ev);
        self.outcome(ev, Some(reply), commit, None)
    }

    fn decline(&self, leases: &mut LeaseTable, ev: &mut EventDraft) -> Outcome {
        if self.req.server_id().is_some_and(|s| s != self.server_id) {
            return Outcome::ignore(Ignored::ForOtherServer);
        }
        let Some(addr) = self.req.requested_addr() else {
            return Outcome::ignore(Ignored::DeclineWithoutAddress);
        };
        let holder = leases
            .get(addr)
            .map(|s| ClientKey::new(s.lease().client_id.as_deref(), s.lease().mac));
        if holder.as_ref() != Some(&self.key) {
            return Outcome::ignore(Ignored::DeclineForUnknownLease);
        }
        // Each DECLINE takes an address out of service for decline-time: without a bound, one
        // client declining every offer empties the pool (a MAC changing each time is bounded by
        // the pool itself, and the exhaustion is logged per subnet).
        if leases.active_declines(self.hw, self.now) >= MAX_ACTIVE_DECLINES {
            return Outcome::ignore(Ignored::DeclineLimit);
        }
        let until = self
            .now
            .saturating_add(self.ctx.dhcp4.decline_time.as_secs());
        let l = self.lease(addr, LeaseState::Declined, until);
        leases.put(Slot::Stored(l.clone()));
        ev.done(Dhcp4Kind::Decline, Some(addr)).detail.reason = Some(Dhcp4Reason::AddressInUse);
        self.outcome(ev, None, vec![l], None)
    }

    fn release(&self, leases: &mut LeaseTable, ev: &mut EventDraft) -> Outcome {
        if self.req.server_id().is_some_and(|s| s != self.server_id) {
            return Outcome::ignore(Ignored::ForOtherServer);
        }
        let addr = self.req.msg.ciaddr();
        match leases.get(addr) {
            Some(Slot::Stored(l))
                if l.state == LeaseState::Bound
                    && ClientKey::new(l.client_id.as_deref(), l.mac) == self.key =>
            {
                let mut r = l.clone();
                r.state = LeaseState::Released;
                r.expires = self.now;
                leases.put(Slot::Stored(r.clone()));
                ev.done(Dhcp4Kind::Release, Some(addr));
                self.outcome(ev, None, vec![r], None)
            }
            _ => Outcome::ignore(Ignored::ReleaseForUnknownLease),
        }
    }

    fn inform(&self, ev: &mut EventDraft) -> Outcome {
        let ciaddr = Some(self.req.msg.ciaddr()).filter(|a| !a.is_unspecified());
        ev.done(Dhcp4Kind::Inform, ciaddr);
        let reply = self.reply(MessageType::Ack, Ipv4Addr::UNSPECIFIED, false, ev);
        self.outcome(ev, Some(reply), Vec::new(), None)
    }

    fn nak(&self, ev: &mut EventDraft, reason: Dhcp4Reason, message: String) -> Outcome {
        let mut options = ReplyOptions::default();
        options.push(OPT_SERVER_ID, self.server_id.octets().to_vec());
        self.echo_client_id(&mut options);
        options.push(OPT_MESSAGE, message.as_bytes().to_vec());
        ev.done(Dhcp4Kind::Nak, None);
        ev.detail.reason = Some(reason);
        ev.detail.message = Some(message);
        let route = self.route(MessageType::Nak, Ipv4Addr::UNSPECIFIED);
        let reply = Reply {
            msg_type: MessageType::Nak,
            header: ReplyHeader::to(
                self.req,
                MessageType::Nak,
                Ipv4Addr::UNSPECIFIED,
                route.broadcast,
            ),
            options,
            relay_agent_info: self.req.relay_agent_info().map(<[u8]>::to_vec),
            to: route.to,
        };
        self.outcome(ev, Some(reply), Vec::new(), None)
    }

    /// RFC 6842 §3: "If the 'client identifier' option is present in a message received from
    /// a client, the server MUST return the 'client identifier' option, unaltered, in its
    /// response message."
    fn echo_client_id(&self, opts: &mut ReplyOptions) {
        if let Some(id) = self.req.opt(OPT_CLIENT_ID) {
            opts.push(OPT_CLIENT_ID, id.to_vec());
        }
    }

    /// The [`route`] of this request's `reply` handing out `yiaddr`.
    fn route(&self, reply: MessageType, yiaddr: Ipv4Addr) -> Route {
        let m = &self.req.msg;
        let ciaddr = m.ciaddr();
        let client_addr = if ciaddr.is_unspecified() {
            *self.meta.src.ip()
        } else {
            ciaddr
        };
        let facts = RouteFacts {
            request: self.req.msg_type,
            state: RequestState::of(self.req).filter(|_| self.req.msg_type == MessageType::Request),
            reply,
            giaddr: m.giaddr(),
            relay_port: if self.req.wants_relay_port() {
                self.meta.src.port()
            } else {
                67
            },
            ciaddr,
            source: *self.meta.src.ip(),
            client_on_link: self
                .meta
                .iface_addrs
                .iter()
                .any(|n| n.contains(&client_addr)),
            broadcast: m.flags().broadcast(),
            yiaddr,
            mac: self.facts.mac,
            client_port: self.ctx.dhcp4.client_port,
        };
        // OFFER, ACK and NAK always have a route: DECLINE and RELEASE never get here
        route(&facts).unwrap_or(Route {
            to: Destination::Broadcast(self.ctx.dhcp4.client_port),
            broadcast: facts.broadcast,
        })
    }

    /// OFFER or ACK with the configured options and, per the Policy, option 143.
    fn reply(
        &self,
        t: MessageType,
        yiaddr: Ipv4Addr,
        with_lease: bool,
        ev: &mut EventDraft,
    ) -> Reply {
        let s = self.subnet;
        let mut opts = ReplyOptions::default();
        opts.push(OPT_SERVER_ID, self.server_id.octets().to_vec());
        self.echo_client_id(&mut opts);
        if with_lease {
            let (lease, t1, t2) = s.lease_times();
            opts.push(OPT_LEASE_TIME, lease.to_be_bytes().to_vec());
            opts.push(OPT_RENEWAL, t1.to_be_bytes().to_vec());
            opts.push(OPT_REBINDING, t2.to_be_bytes().to_vec());
        }
        opts.push(OPT_SUBNET_MASK, s.subnet.netmask().octets().to_vec());
        if !s.routers.is_empty() {
            opts.push(
                OPT_ROUTER,
                s.routers.iter().flat_map(|a| a.octets()).collect(),
            );
        }
        if !s.dns_servers.is_empty() {
            opts.push(
                OPT_DNS,
                s.dns_servers.iter().flat_map(|a| a.octets()).collect(),
            );
        }
        // RFC 2131 §4.3.1: parameters configured for this client; as Kea, the reserved host
        // name goes to a client that asks for option 12 or sends its own
        if let Some(name) = self.reserved().and_then(|r| r.hostname.as_deref()) {
            if self.req.requests(OPT_HOSTNAME) || self.req.opt(OPT_HOSTNAME).is_some() {
                opts.push(OPT_HOSTNAME, name.as_bytes().to_vec());
            }
        }
        if let Some(d) = &s.domain_name {
            opts.push(OPT_DOMAIN_NAME, d.as_bytes().to_vec());
        }
        if !s.domain_search.is_empty() && self.req.requests(OPT_DOMAIN_SEARCH) {
            opts.push(OPT_DOMAIN_SEARCH, encode_domain_search(&s.domain_search));
        }
        self.add_sztp(&mut opts, ev);
        let route = self.route(t, yiaddr);
        Reply {
            msg_type: t,
            header: ReplyHeader::to(self.req, t, yiaddr, route.broadcast),
            options: opts,
            relay_agent_info: self.req.relay_agent_info().map(<[u8]>::to_vec),
            to: route.to,
        }
    }

    /// Option 143 per the device's Decision, sized so the reply fits option 57 or 576 octets:
    /// lowest-preference URIs are dropped whole. A Decision that excludes the device (its
    /// rule has `redirect-to = []`) sends nothing, even to a client that asked.
    fn add_sztp(&self, opts: &mut ReplyOptions, ev: &mut EventDraft) {
        let Some(decision) = self.ctx.policy.decide(self.facts) else {
            return;
        };
        ev.rule = Some(decision.rule.clone());
        if decision.excluded() {
            ev.detail.reason = Some(Dhcp4Reason::Excluded);
            return;
        }
        let render = self.ctx.policy.rendering(&decision);
        if !ev.detail.requested_143 && !render.always_send {
            return;
        }
        let mut uris = decision.uris(render.form);
        let budget = reply::message_budget(self.req.max_message_size());
        // the agent that added option 82 (a relay, or a snooping switch with giaddr 0) strips
        // it before the reply reaches the client (RFC 3046 §2.2): it does not count
        let used = reply::reply_len(opts, None);
        let encode = |u: &[String]| match render.encoding {
            UriEncoding::Rfc8572 => encode_list(u),
            UriEncoding::Text => encode_text(u),
        };
        let dropped = &mut ev.detail.uris_dropped;
        if render.encoding == UriEncoding::Text && uris.len() > 1 {
            dropped.extend(uris.drain(1..));
        }
        while !uris.is_empty() && used + rfc3396_wire_len(encode(&uris).len()) > budget {
            dropped.insert(0, uris.pop().expect("not empty"));
        }
        ev.detail.encoding = Some(render.encoding);
        if uris.is_empty() {
            return;
        }
        opts.push(OPT_SZTP_REDIRECT, encode(&uris));
        ev.uris = uris;
    }
}

/// RFC 3397 domain search list, uncompressed.
fn encode_domain_search(domains: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for d in domains {
        for label in d.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
            out.push(label.len().min(63) as u8);
            out.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
        }
        out.push(0);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use dhcproto::v4::{DhcpOption, Flags, Message, OptionCode};
    use dhcproto::Encodable;

    use super::*;
    use crate::config::{Pool4, Reservation4};
    use crate::policy::{BootstrapServer, Match, Rule, UriForm};
    use crate::sztp::{decode_list, SztpUri};

    pub(crate) const KEA_URIS: [&str; 2] = [
        "https://sztp1.example.test:8443",
        "https://[2001:db8::1]:8443",
    ];
    const CLIENT: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const NOW: u64 = 1_000_000;

    pub(crate) fn dhcp4() -> Dhcp4 {
        Dhcp4 {
            interfaces: vec!["eth1".into()],
            port: 67,
            client_port: 68,
            server_id: None,
            offer_time: Duration::from_secs(60),
            decline_time: Duration::from_secs(3600),
            authoritative: false,
            subnets: vec![Subnet4 {
                subnet: "198.51.100.0/24".parse().unwrap(),
                pools: vec![Pool4 {
                    start: "198.51.100.100".parse().unwrap(),
                    end: "198.51.100.102".parse().unwrap(),
                }],
                routers: vec!["198.51.100.1".parse().unwrap()],
                dns_servers: vec!["198.51.100.1".parse().unwrap()],
                domain_name: Some("staging.example.com".into()),
                domain_search: vec!["staging.example.com".into()],
                lease_time: Duration::from_secs(3600),
                renewal_time: None,
                rebinding_time: None,
                authoritative: false,
                reservations: vec![Reservation4 {
                    mac: MacAddr([2, 0, 0, 0, 0, 0x42]),
                    address: "198.51.100.50".parse().unwrap(),
                    hostname: None,
                }],
            }],
        }
    }

    pub(crate) fn rule(name: &str, uris: &[&str]) -> Rule {
        Rule {
            name: name.into(),
            matches: Match::default(),
            redirect_to: uris
                .iter()
                .enumerate()
                .map(|(i, u)| BootstrapServer {
                    name: format!("bs{i}"),
                    uri: SztpUri::parse(u).unwrap(),
                })
                .collect(),
            via: None,
            encoding: UriEncoding::Rfc8572,
            form: UriForm::Authority,
            always_send: false,
        }
    }

    pub(crate) fn policy(uris: &[&str]) -> Policy {
        Policy {
            rules: vec![rule("default", uris)],
            devices: vec![],
            advertise: None,
        }
    }

    fn meta() -> RequestMeta {
        RequestMeta {
            interface: "eth1".into(),
            iface_addrs: vec!["198.51.100.1/24".parse().unwrap()],
            src: "0.0.0.0:68".parse().unwrap(),
        }
    }

    fn msg(t: MessageType, chaddr: [u8; 6], prl: &[u8]) -> Message {
        let mut m = Message::new_with_id(
            0x1234,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &chaddr,
        );
        m.opts_mut().insert(DhcpOption::MessageType(t));
        if !prl.is_empty() {
            m.opts_mut().insert(DhcpOption::ParameterRequestList(
                prl.iter().map(|&c| OptionCode::from(c)).collect(),
            ));
        }
        m
    }

    fn req(m: &Message) -> Request {
        Request::decode(&m.to_vec().unwrap()).unwrap()
    }

    fn run(dhcp4: &Dhcp4, policy: &Policy, leases: &mut LeaseTable, m: &Message) -> Outcome {
        run_at(dhcp4, policy, leases, &req(m), &meta(), NOW)
    }

    fn run_at(
        dhcp4: &Dhcp4,
        policy: &Policy,
        leases: &mut LeaseTable,
        r: &Request,
        meta: &RequestMeta,
        now: u64,
    ) -> Outcome {
        handle(&Context { dhcp4, policy }, leases, r, meta, now)
    }

    /// `m` with a relay agent information option appended on the wire (dhcproto 0.15 emits
    /// an inserted option 82 twice).
    fn with_rai(m: &Message, rai: &[u8]) -> Request {
        let mut bytes = m.to_vec().unwrap();
        let end = bytes.len() - 1;
        bytes.splice(end..end, [&[82, rai.len() as u8][..], rai].concat());
        Request::decode(&bytes).unwrap()
    }

    /// Options of the encoded reply as (code, data) in wire order, instances not joined.
    fn tlvs(r: &Reply) -> Vec<(u8, Vec<u8>)> {
        raw_options(&r.encode())
            .unwrap()
            .into_iter()
            .map(|(c, d)| (c, d.to_vec()))
            .collect()
    }

    fn opt143(r: &Reply) -> Option<Vec<u8>> {
        r.option(OPT_SZTP_REDIRECT).map(<[u8]>::to_vec)
    }

    fn d4(ev: &DeviceEvent) -> &Dhcp4Event {
        match &ev.detail {
            EventDetail::Dhcp4(d) => d,
            #[allow(unreachable_patterns)]
            _ => panic!("not a DHCPv4 event: {ev:?}"),
        }
    }

    #[test]
    fn discover_gets_offer_with_kea_identical_143() {
        let (d, p) = (dhcp4(), policy(&KEA_URIS));
        let mut t = LeaseTable::default();
        let o = run(
            &d,
            &p,
            &mut t,
            &msg(MessageType::Discover, CLIENT, &[1, 3, 6, 143]),
        );
        let r = o.reply.unwrap();
        assert_eq!(r.msg_type, MessageType::Offer);
        assert!(o.commit.is_empty(), "an offer is not journaled");
        let kea = "001f68747470733a2f2f737a7470312e6578616d706c652e746573743a38343433001a68747470733a2f2f5b323030313a6462383a3a315d3a38343433";
        let got = hex::encode(opt143(&r).unwrap());
        assert_eq!(got, kea);
        let codes: Vec<u8> = tlvs(&r).iter().map(|(c, _)| *c).collect();
        assert_eq!(codes, [53, 54, 51, 58, 59, 1, 3, 6, 15, 143]);
        assert_eq!(r.header.yiaddr, Ipv4Addr::new(198, 51, 100, 100));
        assert!(r.encode().len() >= 300);
        assert_eq!(
            r.to,
            Destination::Link {
                mac: MacAddr(CLIENT),
                to: "198.51.100.100:68".parse().unwrap()
            }
        );
        let ev = o.event.unwrap();
        assert!(d4(&ev).requested_143);
        assert_eq!(ev.uris, KEA_URIS);
        assert_eq!(ev.rule.as_deref(), Some("default"));
    }

    /// The whole outcome of a SELECTING REQUEST, as one value: reply header, options,
    /// destination, the record to commit and the device event.
    #[test]
    fn ack_outcome_as_a_value() {
        let (d, p) = (dhcp4(), policy(&KEA_URIS));
        let mut t = LeaseTable::default();
        run(&d, &p, &mut t, &msg(MessageType::Discover, CLIENT, &[143]));
        let a = Ipv4Addr::new(198, 51, 100, 100);
        let sid = Ipv4Addr::new(198, 51, 100, 1);
        let o = run(&d, &p, &mut t, &request_selecting(a, sid));
        let lease = Lease4 {
            addr: a,
            mac: MacAddr(CLIENT),
            client_id: None,
            hostname: None,
            expires: NOW + 3600,
            state: LeaseState::Bound,
        };
        let mut options = ReplyOptions::default();
        options.push(OPT_SERVER_ID, sid.octets().to_vec());
        options.push(OPT_LEASE_TIME, 3600u32.to_be_bytes().to_vec());
        options.push(OPT_RENEWAL, 1800u32.to_be_bytes().to_vec());
        options.push(OPT_REBINDING, 3150u32.to_be_bytes().to_vec());
        options.push(OPT_SUBNET_MASK, vec![255, 255, 255, 0]);
        options.push(OPT_ROUTER, sid.octets().to_vec());
        options.push(OPT_DNS, sid.octets().to_vec());
        options.push(OPT_DOMAIN_NAME, b"staging.example.com".to_vec());
        options.push(OPT_SZTP_REDIRECT, encode_list(&KEA_URIS));
        let mut chaddr = [0; 16];
        chaddr[..6].copy_from_slice(&CLIENT);
        let want = Outcome {
            reply: Some(Reply {
                msg_type: MessageType::Ack,
                header: ReplyHeader {
                    htype: 1,
                    hlen: 6,
                    xid: 0x1234,
                    broadcast: false,
                    ciaddr: Ipv4Addr::UNSPECIFIED,
                    yiaddr: a,
                    siaddr: Ipv4Addr::UNSPECIFIED,
                    giaddr: Ipv4Addr::UNSPECIFIED,
                    chaddr,
                },
                options,
                relay_agent_info: None,
                to: Destination::Link {
                    mac: MacAddr(CLIENT),
                    to: SocketAddrV4::new(a, 68),
                },
            }),
            commit: vec![lease],
            event: Some(DeviceEvent {
                ts: NOW,
                mac: Some(MacAddr(CLIENT)),
                duid: None,
                serial: None,
                rule: Some("default".into()),
                uris: KEA_URIS.map(String::from).to_vec(),
                detail: EventDetail::Dhcp4(Dhcp4Event {
                    event: Dhcp4Kind::Ack,
                    xid: 0x1234,
                    client_id: None,
                    client_id_text: None,
                    vendor_class: None,
                    user_class: vec![],
                    interface: Some("eth1".into()),
                    relay: None,
                    address: Some(a),
                    requested_143: true,
                    uris_dropped: vec![],
                    encoding: Some(UriEncoding::Rfc8572),
                    reason: None,
                    message: None,
                }),
            }),
            ignored: None,
        };
        assert_eq!(o, want);
    }

    #[test]
    fn no_143_unless_requested_or_always_send() {
        let d = dhcp4();
        let mut p = policy(&KEA_URIS);
        let mut t = LeaseTable::default();
        let o = run(&d, &p, &mut t, &msg(MessageType::Discover, CLIENT, &[1, 3]));
        assert_eq!(opt143(&o.reply.unwrap()), None);
        p.rules[0].always_send = true;
        let o = run(&d, &p, &mut t, &msg(MessageType::Discover, CLIENT, &[1, 3]));
        assert!(opt143(&o.reply.unwrap()).is_some());
        assert!(!d4(&o.event.unwrap()).requested_143);
    }

    #[test]
    fn text_rule_gives_the_bare_string() {
        let d = dhcp4();
        let mut p = policy(&KEA_URIS);
        p.rules[0].encoding = UriEncoding::Text;
        let mut t = LeaseTable::default();
        let o = run(&d, &p, &mut t, &msg(MessageType::Discover, CLIENT, &[143]));
        assert_eq!(
            opt143(&o.reply.unwrap()).unwrap(),
            b"https://sztp1.example.test:8443"
        );
        assert_eq!(
            d4(&o.event.unwrap()).uris_dropped,
            ["https://[2001:db8::1]:8443"]
        );
    }

    fn six() -> Vec<String> {
        (1..=6)
            .map(|n| format!("https://sztp-{n}.bootstrap.site-a.example.com:8443"))
            .collect()
    }

    #[test]
    fn long_list_is_split_when_option_57_allows() {
        let d = dhcp4();
        let uris = six();
        let refs: Vec<&str> = uris.iter().map(String::as_str).collect();
        let p = policy(&refs);
        let mut t = LeaseTable::default();
        let mut m = msg(MessageType::Discover, CLIENT, &[143]);
        m.opts_mut().insert(DhcpOption::MaxMessageSize(1500));
        let r = run(&d, &p, &mut t, &m).reply.unwrap();
        let parts: Vec<usize> = tlvs(&r)
            .iter()
            .filter(|(c, _)| *c == 143)
            .map(|(_, v)| v.len())
            .collect();
        assert_eq!(parts, [255, 45]);
        assert_eq!(decode_list(&opt143(&r).unwrap()).uris, uris);
    }

    #[test]
    fn reply_fits_576_by_dropping_lowest_preference_uris_whole() {
        let d = dhcp4();
        let uris = six();
        let refs: Vec<&str> = uris.iter().map(String::as_str).collect();
        let p = policy(&refs);
        let mut t = LeaseTable::default();
        let o = run(&d, &p, &mut t, &msg(MessageType::Discover, CLIENT, &[143]));
        let r = o.reply.unwrap();
        let len = r.encode().len();
        assert!(len <= 548, "reply is {len} octets");
        let got = decode_list(&opt143(&r).unwrap());
        assert!(!got.truncated && got.ignored.is_empty());
        let ev = o.event.unwrap();
        assert!(!d4(&ev).uris_dropped.is_empty());
        assert_eq!(got.uris.len() + d4(&ev).uris_dropped.len(), 6);
        assert_eq!(got.uris, uris[..got.uris.len()]);
        assert_eq!(d4(&ev).uris_dropped, uris[got.uris.len()..]);
    }

    fn request_selecting(addr: Ipv4Addr, sid: Ipv4Addr) -> Message {
        let mut m = msg(MessageType::Request, CLIENT, &[1, 143]);
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(addr));
        m.opts_mut().insert(DhcpOption::ServerIdentifier(sid));
        m
    }

    #[test]
    fn offer_then_request_is_acked_and_committed() {
        let (d, p) = (dhcp4(), policy(&KEA_URIS));
        let mut t = LeaseTable::default();
        run(&d, &p, &mut t, &msg(MessageType::Discover, CLIENT, &[143]));
        let a: Ipv4Addr = "198.51.100.100".parse().unwrap();
        let o = run(
            &d,
            &p,
            &mut t,
            &request_selecting(a, "198.51.100.1".parse().unwrap()),
        );
        let r = o.reply.unwrap();
        assert_eq!(r.msg_type, MessageType::Ack);
        assert_eq!(o.commit.len(), 1);
        assert_eq!(o.commit[0].addr, a);
        assert_eq!(o.commit[0].state, LeaseState::Bound);
        assert_eq!(o.commit[0].expires, NOW + 3600);
        assert!(opt143(&r).is_some());
        // the same client asks again: same address
        let o = run(&d, &p, &mut t, &msg(MessageType::Discover, CLIENT, &[]));
        assert_eq!(o.reply.unwrap().header.yiaddr, a);
    }

    #[test]
    fn rediscovering_keeps_the_stored_binding() {
        let (d, p) = (dhcp4(), policy(&KEA_URIS));
        let mut t = LeaseTable::default();
        run(&d, &p, &mut t, &msg(MessageType::Discover, CLIENT, &[]));
        let a: Ipv4Addr = "198.51.100.100".parse().unwrap();
        run(
            &d,
            &p,
            &mut t,
            &request_selecting(a, "198.51.100.1".parse().unwrap()),
        );
        let o = run(&d, &p, &mut t, &msg(MessageType::Discover, CLIENT, &[]));
        assert_eq!(o.reply.unwrap().header.yiaddr, a);
        let stored = t.records();
        assert_eq!(stored.len(), 1, "the binding is still a journaled record");
        assert_eq!(stored[0].expires, NOW + 3600);
        t.sweep(NOW + 120, 0);
        assert_eq!(t.active(NOW + 120), 1, "not swept like an unanswered offer");
    }

    #[test]
    fn request_for_another_server_frees_the_offer() {
        let (d, p) = (dhcp4(), policy(&KEA_URIS));
        let mut t = LeaseTable::default();
        run(&d, &p, &mut t, &msg(MessageType::Discover, CLIENT, &[]));
        assert_eq!(t.len(), 1);
        let o = run(
            &d,
            &p,
            &mut t,
            &request_selecting(
                "198.51.100.100".parse().unwrap(),
                "192.0.2.99".parse().unwrap(),
            ),
        );
        assert!(o.reply.is_none());
        assert_eq!(o.ignored, Some(Ignored::ForOtherServer));
        assert!(t.is_empty());
    }

    #[test]
    fn wrong_addresses_are_naked_where_authoritative() {
        let (mut d, p) = (dhcp4(), policy(&KEA_URIS));
        d.subnets[0].authoritative = true;
        let mut t = LeaseTable::default();
        // INIT-REBOOT off the network
        let mut m = msg(MessageType::Request, CLIENT, &[]);
        m.opts_mut()
            .insert(DhcpOption::RequestedIpAddress("192.0.2.7".parse().unwrap()));
        let o = run(&d, &p, &mut t, &m);
        let r = o.reply.unwrap();
        assert_eq!(r.msg_type, MessageType::Nak);
        assert_eq!(r.to, Destination::Broadcast(68));
        assert!(o.commit.is_empty());
        let ev = o.event.unwrap();
        assert_eq!(d4(&ev).reason, Some(Dhcp4Reason::NotOnNetwork));
        assert_eq!(
            d4(&ev).message.as_deref(),
            Some("init-reboot: 192.0.2.7 is not on this network")
        );
        assert_eq!(
            r.option(OPT_MESSAGE),
            d4(&ev).message.as_deref().map(str::as_bytes)
        );
        // INIT-REBOOT outside the pools
        let mut m = msg(MessageType::Request, CLIENT, &[]);
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(
            "198.51.100.250".parse().unwrap(),
        ));
        assert_eq!(
            run(&d, &p, &mut t, &m).reply.unwrap().msg_type,
            MessageType::Nak
        );
        // SELECTING an address never offered
        let o = run(
            &d,
            &p,
            &mut t,
            &request_selecting(
                "198.51.100.101".parse().unwrap(),
                "198.51.100.1".parse().unwrap(),
            ),
        );
        assert_eq!(o.reply.unwrap().msg_type, MessageType::Nak);
        // INIT-REBOOT for a free pool address from a client with no record: NAK, so it
        // starts over with a DISCOVER (as Kea with `authoritative`)
        let mut m = msg(MessageType::Request, CLIENT, &[]);
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(
            "198.51.100.101".parse().unwrap(),
        ));
        let o = run(&d, &p, &mut t, &m);
        assert_eq!(o.reply.unwrap().msg_type, MessageType::Nak);
        assert!(o.commit.is_empty(), "no lease without an OFFER before it");
        assert_eq!(d4(&o.event.unwrap()).reason, Some(Dhcp4Reason::NoRecord));
    }

    #[test]
    fn renewing_extends_and_unicasts_to_ciaddr() {
        let (d, p) = (dhcp4(), policy(&KEA_URIS));
        let mut t = LeaseTable::default();
        run(&d, &p, &mut t, &msg(MessageType::Discover, CLIENT, &[]));
        let a: Ipv4Addr = "198.51.100.100".parse().unwrap();
        run(
            &d,
            &p,
            &mut t,
            &request_selecting(a, "198.51.100.1".parse().unwrap()),
        );
        let mut m = msg(MessageType::Request, CLIENT, &[]);
        m.set_ciaddr(a);
        let o = run_at(&d, &p, &mut t, &req(&m), &meta(), NOW + 1800);
        let r = o.reply.unwrap();
        assert_eq!(r.msg_type, MessageType::Ack);
        assert_eq!(
            r.to,
            Destination::Client {
                mac: Some(MacAddr(CLIENT)),
                to: SocketAddrV4::new(a, 68)
            }
        );
        assert_eq!(o.commit[0].expires, NOW + 1800 + 3600);
        assert_eq!(r.header.ciaddr, a, "ciaddr echoed in ACK");
    }

    #[test]
    fn relayed_requests_go_back_to_the_relay_with_82_echoed_last() {
        let (d, p) = (dhcp4(), policy(&KEA_URIS));
        let mut t = LeaseTable::default();
        let mut m = msg(MessageType::Discover, CLIENT, &[143]);
        m.set_giaddr(Ipv4Addr::new(192, 0, 2, 1));
        let rai = vec![
            1, 3, b'g', b'0', b'1', 5, 4, 198, 51, 100, 1, 19, 2, 0x1a, 0x6f,
        ];
        let relay = RequestMeta {
            src: "192.0.2.1:6767".parse().unwrap(),
            ..meta()
        };
        let o = run_at(&d, &p, &mut t, &with_rai(&m, &rai), &relay, NOW);
        let r = o
            .reply
            .unwrap_or_else(|| panic!("ignored: {:?}", o.ignored));
        assert_eq!(r.to, Destination::Relay("192.0.2.1:6767".parse().unwrap()));
        let opts = tlvs(&r);
        assert_eq!(opts.last().unwrap(), &(82u8, rai));
        // link selection picked the subnet: the address is from 198.51.100.0/24
        assert_eq!(r.header.yiaddr.octets()[..3], [198, 51, 100]);
        assert_eq!(r.header.giaddr, Ipv4Addr::new(192, 0, 2, 1), "giaddr kept");
        // without relay-port: port 67
        let mut m = msg(MessageType::Discover, CLIENT, &[]);
        m.set_giaddr(Ipv4Addr::new(198, 51, 100, 2));
        assert_eq!(
            run(&d, &p, &mut t, &m).reply.unwrap().to,
            Destination::Relay("198.51.100.2:67".parse().unwrap())
        );
        // a giaddr in no subnet: ignored
        let mut m = msg(MessageType::Discover, CLIENT, &[]);
        m.set_giaddr(Ipv4Addr::new(203, 0, 113, 1));
        assert_eq!(run(&d, &p, &mut t, &m).ignored, Some(Ignored::NoSubnet));
    }

    // fuzz finding F1: a long option 82 must not push the client's reply over its budget
    #[test]
    fn long_option_82_does_not_cost_the_client_its_redirect() {
        let (d, p) = (dhcp4(), policy(&KEA_URIS));
        let mut t = LeaseTable::default();
        let mut m = msg(MessageType::Discover, CLIENT, &[143]);
        m.set_giaddr(Ipv4Addr::new(198, 51, 100, 2));
        let rai = [vec![1, 253], vec![0x63; 253]].concat();
        let o = run_at(&d, &p, &mut t, &with_rai(&m, &rai), &meta(), NOW);
        let r = o.reply.unwrap();
        assert_eq!(decode_list(&opt143(&r).unwrap()).uris, KEA_URIS);
        // what the client gets once the relay has removed option 82 fits 576 octets
        assert!(r.encode().len() - (rai.len() + 2) <= 548);
        assert_eq!(tlvs(&r).last().unwrap(), &(82u8, rai));
    }

    #[test]
    fn broadcast_flag_means_broadcast() {
        let (d, p) = (dhcp4(), policy(&KEA_URIS));
        let mut t = LeaseTable::default();
        let mut m = msg(MessageType::Discover, CLIENT, &[]);
        m.set_flags(Flags::default().set_broadcast());
        let r = run(&d, &p, &mut t, &m).reply.unwrap();
        assert_eq!(r.to, Destination::Broadcast(68));
        assert!(r.header.broadcast);
    }

    #[test]
    fn reservation_wins() {
        let (d, p) = (dhcp4(), policy(&KEA_URIS));
        let mut t = LeaseTable::default();
        let o = run(
            &d,
            &p,
            &mut t,
            &msg(MessageType::Discover, [2, 0, 0, 0, 0, 0x42], &[]),
        );
        assert_eq!(
            o.reply.unwrap().header.yiaddr,
            Ipv4Addr::new(198, 51, 100, 50)
        );
        // nobody else gets it, even by asking
        let mut m = msg(MessageType::Discover, CLIENT, &[]);
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(
            "198.51.100.50".parse().unwrap(),
        ));
        assert_eq!(
            run(&d, &p, &mut t, &m).reply.unwrap().header.yiaddr,
            Ipv4Addr::new(198, 51, 100, 100)
        );
    }

    #[test]
    fn decline_quarantines_and_release_frees() {
        let (d, p) = (dhcp4(), policy(&KEA_URIS));
        let mut t = LeaseTable::default();
        let sid: Ipv4Addr = "198.51.100.1".parse().unwrap();
        run(&d, &p, &mut t, &msg(MessageType::Discover, CLIENT, &[]));
        let a: Ipv4Addr = "198.51.100.100".parse().unwrap();
        run(&d, &p, &mut t, &request_selecting(a, sid));
        let mut m = msg(MessageType::Decline, CLIENT, &[]);
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
        m.opts_mut().insert(DhcpOption::ServerIdentifier(sid));
        let o = run(&d, &p, &mut t, &m);
        assert!(o.reply.is_none());
        assert_eq!(o.commit[0].state, LeaseState::Declined);
        assert_eq!(o.commit[0].expires, NOW + 3600);
        // the next DISCOVER gets another address
        let o = run(&d, &p, &mut t, &msg(MessageType::Discover, CLIENT, &[]));
        let b = o.reply.unwrap().header.yiaddr;
        assert_ne!(b, a);
        run(&d, &p, &mut t, &request_selecting(b, sid));
        let mut m = msg(MessageType::Release, CLIENT, &[]);
        m.set_ciaddr(b);
        m.opts_mut().insert(DhcpOption::ServerIdentifier(sid));
        let o = run(&d, &p, &mut t, &m);
        assert_eq!(o.commit[0].state, LeaseState::Released);
        assert_eq!(t.active(NOW), 0);
    }

    #[test]
    fn inform_gets_options_without_a_lease() {
        let (d, p) = (dhcp4(), policy(&KEA_URIS));
        let mut t = LeaseTable::default();
        let mut m = msg(MessageType::Inform, CLIENT, &[143]);
        m.set_ciaddr(Ipv4Addr::new(198, 51, 100, 77));
        let o = run(&d, &p, &mut t, &m);
        let r = o.reply.unwrap();
        assert_eq!(r.msg_type, MessageType::Ack);
        assert_eq!(r.header.yiaddr, Ipv4Addr::UNSPECIFIED);
        assert!(tlvs(&r).iter().all(|(c, _)| *c != 51));
        assert!(opt143(&r).is_some());
        assert!(o.commit.is_empty());
        assert_eq!(
            r.to,
            Destination::Client {
                mac: Some(MacAddr(CLIENT)),
                to: "198.51.100.77:68".parse().unwrap()
            }
        );
    }

    fn at(d: &Dhcp4, t: &mut LeaseTable, m: &Message, now: u64) -> Outcome {
        run_at(d, &policy(&KEA_URIS), t, &req(m), &meta(), now)
    }

    fn offered(o: &Outcome) -> Option<Ipv4Addr> {
        o.reply.as_ref().map(|r| r.header.yiaddr)
    }

    fn selecting(mac: [u8; 6], addr: Ipv4Addr) -> Message {
        let mut m = msg(MessageType::Request, mac, &[]);
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(addr));
        m.opts_mut()
            .insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(198, 51, 100, 1)));
        m
    }

    /// Offers that are never taken up cannot starve a real client: with the pool full of
    /// them, the next DISCOVER gets the oldest one's address, and that client is ACKed; the
    /// client whose offer was taken gets a NAK when it asks for it.
    #[test]
    fn offers_never_starve_real_clients() {
        let d = dhcp4();
        let mut t = LeaseTable::default();
        let flood: Vec<Ipv4Addr> = (0..3u8)
            .map(|i| {
                let m = msg(MessageType::Discover, [2, 0, 0, 0, 1, i], &[]);
                offered(&at(&d, &mut t, &m, NOW + u64::from(i))).unwrap()
            })
            .collect();
        let real = [2, 0, 0, 0, 2, 1];
        let o = at(&d, &mut t, &msg(MessageType::Discover, real, &[]), NOW + 5);
        assert_eq!(offered(&o), Some(flood[0]), "the oldest offer is reused");
        let o = at(&d, &mut t, &selecting(real, flood[0]), NOW + 6);
        let r = o.reply.unwrap();
        assert_eq!((r.msg_type, r.header.yiaddr), (MessageType::Ack, flood[0]));
        let o = at(
            &d,
            &mut t,
            &selecting([2, 0, 0, 0, 1, 0], flood[0]),
            NOW + 7,
        );
        assert_eq!(o.reply.unwrap().msg_type, MessageType::Nak);
        // the next newcomer takes the next-oldest offer, never the bound lease
        let o = at(
            &d,
            &mut t,
            &msg(MessageType::Discover, [2, 0, 0, 0, 2, 2], &[]),
            NOW + 8,
        );
        assert_eq!(offered(&o), Some(flood[1]));
    }

    /// Only bound leases (and quarantined addresses) exhaust a pool; the outcome names the
    /// subnet, which the server logs.
    #[test]
    fn pool_exhaustion_is_reported_not_crashed() {
        let d = dhcp4();
        let mut t = LeaseTable::default();
        for i in 0..3u8 {
            let mac = [2, 0, 0, 0, 1, i];
            let a = offered(&at(&d, &mut t, &msg(MessageType::Discover, mac, &[]), NOW)).unwrap();
            let o = at(&d, &mut t, &selecting(mac, a), NOW);
            assert_eq!(o.reply.unwrap().msg_type, MessageType::Ack);
        }
        let o = at(
            &d,
            &mut t,
            &msg(MessageType::Discover, [2, 0, 0, 0, 1, 9], &[]),
            NOW,
        );
        assert!(o.reply.is_none());
        assert_eq!(o.ignored, Some(Ignored::PoolExhausted(d.subnets[0].subnet)));
        assert_eq!(o.ignored.unwrap().as_str(), "pool-exhausted");
    }

    /// One client declining every address it is offered quarantines at most
    /// MAX_ACTIVE_DECLINES of them; once one lapses it may decline again.
    #[test]
    fn declines_are_bounded_per_client() {
        let mut d = dhcp4();
        d.subnets[0].pools[0].end = Ipv4Addr::new(198, 51, 100, 120);
        let mut t = LeaseTable::default();
        let mac = [2, 0, 0, 0, 3, 1];
        let decline = |a: Ipv4Addr| {
            let mut m = msg(MessageType::Decline, mac, &[]);
            m.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
            m
        };
        let mut quarantined = 0;
        for _ in 0..10 {
            let a = offered(&at(&d, &mut t, &msg(MessageType::Discover, mac, &[]), NOW)).unwrap();
            let o = at(&d, &mut t, &decline(a), NOW);
            if o.commit
                .first()
                .is_some_and(|l| l.state == LeaseState::Declined)
            {
                quarantined += 1;
            } else {
                assert_eq!(o.ignored, Some(Ignored::DeclineLimit));
                assert!(o.commit.is_empty());
            }
        }
        assert_eq!(quarantined, MAX_ACTIVE_DECLINES);
        assert_eq!(t.active_declines(MacAddr(mac), NOW), MAX_ACTIVE_DECLINES);
        // after decline-time the quarantines lapse and a new DECLINE counts again
        let later = NOW + 3601;
        let a = offered(&at(
            &d,
            &mut t,
            &msg(MessageType::Discover, mac, &[]),
            later,
        ))
        .unwrap();
        let o = at(&d, &mut t, &decline(a), later);
        assert_eq!(o.commit[0].state, LeaseState::Declined);
    }

    // ---------------------------------------------------------------------------------
    // Reply routing: every row of RFC 2131 §4.1 and Table 5, with and without raw frames.

    mod routing {
        use super::*;
        use MessageType::{Ack, Decline, Discover, Inform, Nak, Offer, Release, Request};
        use RequestState::{InitReboot, RenewingOrRebinding as Renewing, Selecting};

        const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
        const GIADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
        const CIADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 77);
        const YIADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);

        fn sa(a: Ipv4Addr, port: u16) -> SocketAddrV4 {
            SocketAddrV4::new(a, port)
        }
        /// The DHCP socket, to the relay's server port.
        fn relay() -> Transmission {
            Transmission::Udp(sa(GIADDR, 67))
        }
        fn bcast() -> Transmission {
            Transmission::Udp(sa(Ipv4Addr::BROADCAST, 68))
        }
        fn frame(to: Ipv4Addr) -> Transmission {
            Transmission::Frame {
                mac: MAC,
                to: sa(to, 68),
            }
        }
        fn isolated(to: Ipv4Addr) -> Transmission {
            Transmission::UdpIsolated(sa(to, 68))
        }
        fn routed(to: Ipv4Addr) -> Transmission {
            Transmission::Udp(sa(to, 68))
        }

        /// One row: the request, how it arrived, and where the reply goes with raw frames
        /// (`raw`) and without (`udp`), with the reply's broadcast bit.
        struct Row {
            why: &'static str,
            req: MessageType,
            state: Option<RequestState>,
            reply: MessageType,
            relayed: bool,
            ciaddr: bool,
            on_link: bool,
            flag: bool,
            raw: Transmission,
            udp: Transmission,
            bit: bool,
        }

        #[allow(clippy::too_many_arguments)]
        fn row(
            why: &'static str,
            req: MessageType,
            state: Option<RequestState>,
            reply: MessageType,
            (relayed, ciaddr, flag): (bool, bool, bool),
            raw: Transmission,
            udp: Transmission,
            bit: bool,
        ) -> Row {
            Row {
                why,
                req,
                state,
                reply,
                relayed,
                ciaddr,
                on_link: true,
                flag,
                raw,
                udp,
                bit,
            }
        }

        const RELAY: &str = "§4.1: giaddr set: to the relay's server port";
        const RELAY_NAK: &str = "§4.3.2: NAK through the relay, broadcast bit set";
        const LINK: &str = "§4.1: giaddr 0, ciaddr 0, no broadcast bit: to chaddr and yiaddr";
        const STALE: &str = "Table 5: ciaddr is 0 in this state: a stale ciaddr is ignored";
        const BCAST: &str = "§4.1: giaddr 0, ciaddr 0, broadcast bit: broadcast";
        const NAK_BCAST: &str = "§4.1: giaddr 0: NAK is broadcast";
        const CIADDR_ROW: &str = "§4.1: giaddr 0, ciaddr set (RENEWING/REBINDING): to ciaddr";
        const INFORM_ROW: &str = "§4.3.5: INFORM: ACK straight to ciaddr, relayed or not";

        fn table() -> Vec<Row> {
            let mut rows = Vec::new();
            // DISCOVER and the two REQUEST states without an address: ciaddr never counts
            for (req, state, reply) in [
                (Discover, None, Offer),
                (Request, Some(Selecting), Ack),
                (Request, Some(InitReboot), Ack),
            ] {
                for ciaddr in [false, true] {
                    let why = if ciaddr { STALE } else { LINK };
                    rows.push(row(
                        why,
                        req,
                        state,
                        reply,
                        (false, ciaddr, false),
                        frame(YIADDR),
                        bcast(),
                        false,
                    ));
                    rows.push(row(
                        BCAST,
                        req,
                        state,
                        reply,
                        (false, ciaddr, true),
                        bcast(),
                        bcast(),
                        true,
                    ));
                    rows.push(row(
                        RELAY,
                        req,
                        state,
                        reply,
                        (true, ciaddr, false),
                        relay(),
                        relay(),
                        false,
                    ));
                    rows.push(row(
                        RELAY,
                        req,
                        state,
                        reply,
                        (true, ciaddr, true),
                        relay(),
                        relay(),
                        true,
                    ));
                }
            }
            // RENEWING (unicast) and REBINDING (broadcast): the client has ciaddr and answers
            // ARP for it, but a frame needs none; without frames, the isolated socket
            for _renewing_or_rebinding in 0..2 {
                for flag in [false, true] {
                    rows.push(row(
                        CIADDR_ROW,
                        Request,
                        Some(Renewing),
                        Ack,
                        (false, true, flag),
                        frame(CIADDR),
                        isolated(CIADDR),
                        flag,
                    ));
                    rows.push(row(
                        RELAY,
                        Request,
                        Some(Renewing),
                        Ack,
                        (true, true, flag),
                        relay(),
                        relay(),
                        flag,
                    ));
                    let mut off = row(
                        "§4.1: ciaddr behind a router: routed UDP",
                        Request,
                        Some(Renewing),
                        Ack,
                        (false, true, flag),
                        routed(CIADDR),
                        routed(CIADDR),
                        flag,
                    );
                    off.on_link = false;
                    rows.push(off);
                }
            }
            // NAK in every REQUEST state
            for (state, ciaddr) in [
                (Selecting, false),
                (InitReboot, false),
                (InitReboot, true),
                (Renewing, true),
            ] {
                for flag in [false, true] {
                    rows.push(row(
                        NAK_BCAST,
                        Request,
                        Some(state),
                        Nak,
                        (false, ciaddr, flag),
                        bcast(),
                        bcast(),
                        flag,
                    ));
                    rows.push(row(
                        RELAY_NAK,
                        Request,
                        Some(state),
                        Nak,
                        (true, ciaddr, flag),
                        relay(),
                        relay(),
                        true,
                    ));
                }
            }
            // INFORM
            for flag in [false, true] {
                rows.push(row(
                    INFORM_ROW,
                    Inform,
                    None,
                    Ack,
                    (false, true, flag),
                    frame(CIADDR),
                    isolated(CIADDR),
                    flag,
                ));
                let mut off = row(
                    INFORM_ROW,
                    Inform,
                    None,
                    Ack,
                    (true, true, flag),
                    routed(CIADDR),
                    routed(CIADDR),
                    flag,
                );
                off.on_link = false;
                rows.push(off);
                rows.push(row(
                    "§4.3.5 (ISC, Kea): INFORM without ciaddr, relayed: relay, broadcast bit",
                    Inform,
                    None,
                    Ack,
                    (true, false, flag),
                    relay(),
                    relay(),
                    true,
                ));
                rows.push(row(
                    "§4.3.5 (Kea): INFORM without ciaddr or source: broadcast",
                    Inform,
                    None,
                    Ack,
                    (false, false, flag),
                    bcast(),
                    bcast(),
                    flag,
                ));
            }
            rows
        }

        fn facts(r: &Row) -> RouteFacts {
            RouteFacts {
                request: r.req,
                state: r.state,
                reply: r.reply,
                giaddr: if r.relayed {
                    GIADDR
                } else {
                    Ipv4Addr::UNSPECIFIED
                },
                relay_port: 67,
                ciaddr: if r.ciaddr {
                    CIADDR
                } else {
                    Ipv4Addr::UNSPECIFIED
                },
                source: Ipv4Addr::UNSPECIFIED,
                client_on_link: r.on_link,
                broadcast: r.flag,
                yiaddr: if r.reply == Nak || r.req == Inform {
                    Ipv4Addr::UNSPECIFIED
                } else {
                    YIADDR
                },
                mac: Some(MAC),
                client_port: 68,
            }
        }

        #[test]
        fn every_row_of_rfc2131_table() {
            let rows = table();
            assert_eq!(rows.len(), 24 + 12 + 16 + 8);
            for r in &rows {
                let f = facts(r);
                let got = route(&f).unwrap_or_else(|| panic!("no route: {}", r.why));
                let ctx = format!(
                    "{:?}/{:?} -> {:?}, relayed {}, ciaddr {}, flag {}: {}",
                    r.req, r.state, r.reply, r.relayed, r.ciaddr, r.flag, r.why
                );
                assert_eq!(Transmission::of(got.to, true), r.raw, "raw frames: {ctx}");
                assert_eq!(
                    Transmission::of(got.to, false),
                    r.udp,
                    "no raw frames: {ctx}"
                );
                assert_eq!(got.broadcast, r.bit, "broadcast bit: {ctx}");
            }
        }

        #[test]
        fn decline_and_release_get_no_reply() {
            for req in [Decline, Release] {
                for (relayed, ciaddr, flag) in [(false, false, false), (true, true, true)] {
                    let r = row(
                        "no reply",
                        req,
                        None,
                        Ack,
                        (relayed, ciaddr, flag),
                        bcast(),
                        bcast(),
                        false,
                    );
                    assert_eq!(route(&facts(&r)), None, "{req:?}");
                }
            }
        }

        #[test]
        fn relay_port_and_clients_without_ethernet_chaddr() {
            let r = row(
                RELAY,
                Discover,
                None,
                Offer,
                (true, false, false),
                relay(),
                relay(),
                false,
            );
            let mut f = facts(&r);
            f.relay_port = 6767;
            assert_eq!(route(&f).unwrap().to, Destination::Relay(sa(GIADDR, 6767)));
            // RFC 4390 (IPoIB): no MAC to frame to, so broadcast even without the flag
            let r = row(
                LINK,
                Discover,
                None,
                Offer,
                (false, false, false),
                bcast(),
                bcast(),
                false,
            );
            let mut f = facts(&r);
            f.mac = None;
            let got = route(&f).unwrap();
            assert_eq!(Transmission::of(got.to, true), bcast());
            let r = row(
                CIADDR_ROW,
                Request,
                Some(Renewing),
                Ack,
                (false, true, false),
                bcast(),
                bcast(),
                false,
            );
            let mut f = facts(&r);
            f.mac = None;
            assert_eq!(
                Transmission::of(route(&f).unwrap().to, true),
                isolated(CIADDR)
            );
            // an INFORM without ciaddr from an address: back to that address
            let r = row(
                INFORM_ROW,
                Inform,
                None,
                Ack,
                (false, false, false),
                bcast(),
                bcast(),
                false,
            );
            let mut f = facts(&r);
            f.source = CIADDR;
            assert_eq!(Transmission::of(route(&f).unwrap().to, true), frame(CIADDR));
        }

        /// Through the handler: a DISCOVER with a stale ciaddr (case 4 of issue 12).
        #[test]
        fn discover_with_stale_ciaddr_goes_to_the_mac() {
            let (d, p) = (dhcp4(), policy(&KEA_URIS));
            let mut t = LeaseTable::default();
            let mut m = msg(MessageType::Discover, CLIENT, &[143]);
            m.set_ciaddr(Ipv4Addr::new(198, 51, 100, 77));
            let r = run(&d, &p, &mut t, &m).reply.unwrap();
            assert_eq!(
                r.to,
                Destination::Link {
                    mac: MacAddr(CLIENT),
                    to: "198.51.100.100:68".parse().unwrap()
                }
            );
            assert_eq!(
                r.header.ciaddr,
                Ipv4Addr::UNSPECIFIED,
                "Table 3: ciaddr 0 in OFFER"
            );
        }
    }

    // ---------------------------------------------------------------------------------
    // Case 1: host names; case 2: client identifier echo; case 3: text client identifiers.

    #[test]
    fn reserved_hostname_is_sent_when_asked_and_recorded() {
        let (mut d, p) = (dhcp4(), policy(&KEA_URIS));
        d.subnets[0].reservations[0].hostname = Some("switch-1".into());
        let reserved = [2, 0, 0, 0, 0, 0x42];
        let sid = Ipv4Addr::new(198, 51, 100, 1);
        let a = Ipv4Addr::new(198, 51, 100, 50);
        let mut t = LeaseTable::default();
        let o = run(
            &d,
            &p,
            &mut t,
            &msg(MessageType::Discover, reserved, &[1, 3, 12]),
        );
        assert_eq!(
            o.reply.unwrap().option(OPT_HOSTNAME),
            Some(&b"switch-1"[..])
        );
        let mut m = msg(MessageType::Request, reserved, &[1, 3, 12]);
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
        m.opts_mut().insert(DhcpOption::ServerIdentifier(sid));
        let o = run(&d, &p, &mut t, &m);
        assert_eq!(
            o.reply.unwrap().option(OPT_HOSTNAME),
            Some(&b"switch-1"[..])
        );
        assert_eq!(o.commit[0].hostname.as_deref(), Some("switch-1"));
        // not asked for, not sent its own: not sent (as Kea)
        let o = run(
            &d,
            &p,
            &mut t,
            &msg(MessageType::Discover, reserved, &[1, 3]),
        );
        assert_eq!(o.reply.unwrap().option(OPT_HOSTNAME), None);
        // a client that sends its own option 12 gets the reserved name back
        let mut m = msg(MessageType::Discover, reserved, &[1]);
        m.opts_mut().insert(DhcpOption::Hostname("mine".into()));
        let o = run(&d, &p, &mut t, &m);
        assert_eq!(
            o.reply.unwrap().option(OPT_HOSTNAME),
            Some(&b"switch-1"[..])
        );
        // no reservation: option 12 is never invented
        let o = run(&d, &p, &mut t, &msg(MessageType::Discover, CLIENT, &[12]));
        assert_eq!(o.reply.unwrap().option(OPT_HOSTNAME), None);
    }

    #[test]
    fn client_hostname_loses_trailing_nuls() {
        let (d, p) = (dhcp4(), policy(&KEA_URIS));
        let mut t = LeaseTable::default();
        run(&d, &p, &mut t, &msg(MessageType::Discover, CLIENT, &[]));
        let mut bytes = request_selecting(
            Ipv4Addr::new(198, 51, 100, 100),
            Ipv4Addr::new(198, 51, 100, 1),
        )
        .to_vec()
        .unwrap();
        let end = bytes.len() - 1;
        bytes.splice(end..end, [12, 6, b'h', b'o', b's', b't', 0, 0]);
        let o = run_at(
            &d,
            &p,
            &mut t,
            &Request::decode(&bytes).unwrap(),
            &meta(),
            NOW,
        );
        assert_eq!(o.commit[0].hostname.as_deref(), Some("host"));
    }

    #[test]
    fn client_identifier_is_echoed_in_offer_ack_and_nak() {
        let (mut d, p) = (dhcp4(), policy(&KEA_URIS));
        d.subnets[0].authoritative = true;
        let id = [1u8, 2, 0, 0, 0, 0, 0x21];
        let with_id = |mut m: Message| {
            m.opts_mut()
                .insert(DhcpOption::ClientIdentifier(id.to_vec()));
            m
        };
        let mut t = LeaseTable::default();
        let o = run(
            &d,
            &p,
            &mut t,
            &with_id(msg(MessageType::Discover, CLIENT, &[143])),
        );
        let offer = o.reply.unwrap();
        assert_eq!(offer.option(OPT_CLIENT_ID), Some(&id[..]));
        let a = offer.header.yiaddr;
        let sid = Ipv4Addr::new(198, 51, 100, 1);
        let o = run(&d, &p, &mut t, &with_id(request_selecting(a, sid)));
        assert_eq!(o.reply.unwrap().option(OPT_CLIENT_ID), Some(&id[..]));
        let o = run(
            &d,
            &p,
            &mut t,
            &with_id(request_selecting("198.51.100.102".parse().unwrap(), sid)),
        );
        let nak = o.reply.unwrap();
        assert_eq!(nak.msg_type, MessageType::Nak);
        assert_eq!(nak.option(OPT_CLIENT_ID), Some(&id[..]));
        // on the wire too, and absent when the client sent none
        let wire = scan_options(&nak.encode()).unwrap();
        assert_eq!(wire.get(&OPT_CLIENT_ID).map(Vec::as_slice), Some(&id[..]));
        let o = run(
            &d,
            &p,
            &mut t,
            &msg(MessageType::Discover, [2, 0, 0, 0, 0, 7], &[]),
        );
        assert_eq!(o.reply.unwrap().option(OPT_CLIENT_ID), None);
    }

    #[test]
    fn cisco_text_client_id_matches_text_rules_and_is_journaled_as_text() {
        let d = dhcp4();
        let mut p = policy(&KEA_URIS);
        let mut cisco = rule("cisco", &["https://cisco.example.test"]);
        cisco.matches.client_id = vec![crate::policy::Glob("cisco-*".into())];
        p.rules.insert(0, cisco);
        let mut id = vec![0u8];
        id.extend_from_slice(b"cisco-0200.0000.0041-Vl1");
        let mut m = msg(MessageType::Discover, [2, 0, 0, 0, 0, 0x41], &[143]);
        m.opts_mut()
            .insert(DhcpOption::ClientIdentifier(id.clone()));
        let mut t = LeaseTable::default();
        let o = run(&d, &p, &mut t, &m);
        let ev = o.event.unwrap();
        assert_eq!(ev.rule.as_deref(), Some("cisco"));
        assert_eq!(ev.uris, ["https://cisco.example.test"]);
        assert_eq!(d4(&ev).client_id.as_deref(), Some(&id[..]));
        assert_eq!(
            d4(&ev).client_id_text.as_deref(),
            Some("cisco-0200.0000.0041-Vl1")
        );
        let line = serde_json::to_value(&ev).unwrap();
        assert_eq!(line["client_id_text"], "cisco-0200.0000.0041-Vl1");
        // a hardware-type identifier is not text and does not match
        let mut m = msg(MessageType::Discover, [2, 0, 0, 0, 0, 0x41], &[143]);
        m.opts_mut()
            .insert(DhcpOption::ClientIdentifier(vec![1, 2, 0, 0, 0, 0, 0x41]));
        let ev = run(&d, &p, &mut t, &m).event.unwrap();
        assert_eq!(ev.rule.as_deref(), Some("default"));
        assert_eq!(d4(&ev).client_id_text, None);
    }

    // ---------------------------------------------------------------------------------
    // Case 5: clients the server has no record of (RFC 2131 §4.3.2), `authoritative`.

    fn init_reboot(chaddr: [u8; 6], addr: &str) -> Message {
        let mut m = msg(MessageType::Request, chaddr, &[]);
        m.opts_mut()
            .insert(DhcpOption::RequestedIpAddress(addr.parse().unwrap()));
        m
    }

    fn renewing(chaddr: [u8; 6], addr: &str, broadcast: bool) -> Message {
        let mut m = msg(MessageType::Request, chaddr, &[]);
        m.set_ciaddr(addr.parse::<Ipv4Addr>().unwrap());
        if broadcast {
            m.set_flags(Flags::default().set_broadcast());
        }
        m
    }

    #[test]
    fn unknown_clients_get_silence_unless_authoritative() {
        let p = policy(&KEA_URIS);
        let cases = [
            (
                "init-reboot, free pool address",
                init_reboot(CLIENT, "198.51.100.101"),
            ),
            (
                "init-reboot, other network",
                init_reboot(CLIENT, "192.0.2.7"),
            ),
            ("renewing", renewing(CLIENT, "198.51.100.101", false)),
            ("rebinding", renewing(CLIENT, "198.51.100.101", true)),
            (
                "renewing, other network",
                renewing(CLIENT, "203.0.113.9", false),
            ),
        ];
        for (what, m) in &cases {
            let mut d = dhcp4();
            let mut t = LeaseTable::default();
            let o = run(&d, &p, &mut t, m);
            assert!(o.reply.is_none(), "{what}: not authoritative, but answered");
            assert!(o.commit.is_empty(), "{what}");
            assert_eq!(o.ignored, Some(Ignored::NoRecordOfClient), "{what}");
            let ev = o.event.unwrap();
            assert_eq!(d4(&ev).event, Dhcp4Kind::Dropped, "{what}");
            assert_eq!(d4(&ev).reason, Some(Dhcp4Reason::NoRecord), "{what}");
            assert!(t.is_empty(), "{what}: a lease no OFFER preceded");
            d.subnets[0].authoritative = true;
            let o = run(&d, &p, &mut t, m);
            let r = o
                .reply
                .unwrap_or_else(|| panic!("{what}: authoritative, but silent"));
            assert_eq!(r.msg_type, MessageType::Nak, "{what}");
            assert!(o.commit.is_empty() && t.is_empty(), "{what}");
        }
    }

    #[test]
    fn known_clients_are_acked_or_naked_either_way() {
        let p = policy(&KEA_URIS);
        for authoritative in [false, true] {
            let mut d = dhcp4();
            d.subnets[0].authoritative = authoritative;
            let mut t = LeaseTable::default();
            run(&d, &p, &mut t, &msg(MessageType::Discover, CLIENT, &[]));
            let a = Ipv4Addr::new(198, 51, 100, 100);
            let sid = Ipv4Addr::new(198, 51, 100, 1);
            run(&d, &p, &mut t, &request_selecting(a, sid));
            for m in [
                init_reboot(CLIENT, "198.51.100.100"),
                renewing(CLIENT, "198.51.100.100", false),
                renewing(CLIENT, "198.51.100.100", true),
            ] {
                let r = run(&d, &p, &mut t, &m).reply.unwrap();
                assert_eq!(
                    r.msg_type,
                    MessageType::Ack,
                    "authoritative {authoritative}"
                );
            }
            for m in [
                init_reboot(CLIENT, "198.51.100.101"),
                init_reboot(CLIENT, "192.0.2.7"),
                renewing(CLIENT, "198.51.100.101", false),
            ] {
                let o = run(&d, &p, &mut t, &m);
                assert_eq!(
                    o.reply.map(|r| r.msg_type),
                    Some(MessageType::Nak),
                    "authoritative {authoritative}: a known client's wrong address"
                );
            }
        }
    }

    // ---------------------------------------------------------------------------------
    // Case 6: fl-sztp's host:port; case 7: rules that exclude devices.

    /// What fl-sztp does with option 143 (interop.md §1): the whole value is one ASCII
    /// `host:port` string, the port after the last colon.
    fn fl_sztp_decode(v: &[u8]) -> (String, u16) {
        let s = std::str::from_utf8(v).expect("ASCII");
        let (host, port) = s.rsplit_once(':').expect("host:port");
        assert!(!host.contains("://"), "a scheme in {s:?}");
        (host.to_string(), port.parse().expect("a port"))
    }

    #[test]
    fn fl_sztp_gets_a_bare_host_and_port() {
        let d = dhcp4();
        let mut p = policy(&["https://sztp1.example.test:8443", "https://[2001:db8::1]"]);
        p.rules[0].encoding = UriEncoding::Text;
        p.rules[0].form = crate::policy::UriForm::HostPort;
        let mut m = msg(MessageType::Discover, CLIENT, &[1, 3, 15, 6, 143]);
        m.opts_mut().insert(DhcpOption::MaxMessageSize(1500));
        let mut t = LeaseTable::default();
        let o = run(&d, &p, &mut t, &m);
        let r = o.reply.unwrap();
        assert_eq!(
            fl_sztp_decode(r.option(OPT_SZTP_REDIRECT).unwrap()),
            ("sztp1.example.test".into(), 8443)
        );
        assert_eq!(
            d4(&o.event.unwrap()).uris_dropped,
            ["[2001:db8::1]:443"],
            "one host:port only; the IPv6 literal keeps its brackets and port 443"
        );
    }

    #[test]
    fn excluded_rule_sends_no_143_and_journals_why() {
        let d = dhcp4();
        let mut p = policy(&KEA_URIS);
        let mut bootz = rule("bootz", &[]);
        bootz.matches.vendor_class = vec![crate::policy::Glob("bootz*".into())];
        bootz.always_send = true;
        p.rules.insert(0, bootz);
        let mut m = msg(MessageType::Discover, CLIENT, &[143]);
        m.opts_mut()
            .insert(DhcpOption::ClassIdentifier(b"bootz-device".to_vec()));
        let mut t = LeaseTable::default();
        let o = run(&d, &p, &mut t, &m);
        let r = o.reply.unwrap();
        assert_eq!(r.msg_type, MessageType::Offer, "still gets an address");
        assert_eq!(r.option(OPT_SZTP_REDIRECT), None);
        let ev = o.event.unwrap();
        assert_eq!(ev.rule.as_deref(), Some("bootz"));
        assert!(ev.uris.is_empty());
        assert_eq!(d4(&ev).reason, Some(Dhcp4Reason::Excluded));
        assert!(d4(&ev).requested_143);
    }

    // ---------------------------------------------------------------------------------
    // Case 8: clients that are not Ethernet, networks without a subnet.

    fn infiniband(t: MessageType, client_id: Option<&[u8]>) -> Request {
        let mut m = msg(t, [0; 6], &[143]);
        m.set_giaddr(Ipv4Addr::new(198, 51, 100, 2));
        if let Some(id) = client_id {
            m.opts_mut()
                .insert(DhcpOption::ClientIdentifier(id.to_vec()));
        }
        let mut b = m.to_vec().unwrap();
        b[1] = 32; // htype: InfiniBand
        b[2] = 0; // hlen 0, chaddr all zero (RFC 4390 §2.1)
        Request::decode(&b).unwrap()
    }

    #[test]
    fn infiniband_clients_are_served_by_client_identifier() {
        let (d, p) = (dhcp4(), policy(&KEA_URIS));
        let mut t = LeaseTable::default();
        let id = [0xff, 0, 0, 0, 1, 0, 2, 0xc9, 0, 0, 0, 0, 0, 0, 0x12];
        let o = run_at(
            &d,
            &p,
            &mut t,
            &infiniband(MessageType::Discover, Some(&id)),
            &meta(),
            NOW,
        );
        let offer = o
            .reply
            .unwrap_or_else(|| panic!("ignored: {:?}", o.ignored));
        assert_eq!(offer.header.htype, 32);
        assert_eq!(offer.header.hlen, 0);
        assert_eq!(offer.option(OPT_CLIENT_ID), Some(&id[..]));
        assert_eq!(o.event.as_ref().unwrap().mac, None);
        let mut req = infiniband(MessageType::Request, Some(&id));
        req.options
            .insert(OPT_REQUESTED_ADDR, offer.header.yiaddr.octets().to_vec());
        req.options.insert(OPT_SERVER_ID, vec![198, 51, 100, 1]);
        let o = run_at(&d, &p, &mut t, &req, &meta(), NOW);
        assert_eq!(o.reply.unwrap().msg_type, MessageType::Ack);
        assert_eq!(o.commit[0].client_id.as_deref(), Some(&id[..]));
        // a second IPoIB client is another client
        let other = [0xff, 0, 0, 0, 1, 0, 2, 0xc9, 0, 0, 0, 0, 0, 0, 0x13];
        let o = run_at(
            &d,
            &p,
            &mut t,
            &infiniband(MessageType::Discover, Some(&other)),
            &meta(),
            NOW,
        );
        assert_ne!(o.reply.unwrap().header.yiaddr, offer.header.yiaddr);
        // without option 61 there is nothing to key it by: dropped, journaled with the reason
        let o = run_at(
            &d,
            &p,
            &mut t,
            &infiniband(MessageType::Discover, None),
            &meta(),
            NOW,
        );
        assert!(o.reply.is_none());
        assert_eq!(o.ignored, Some(Ignored::NoEthernetChaddr));
        let ev = o.event.unwrap();
        assert_eq!(d4(&ev).event, Dhcp4Kind::Dropped);
        assert_eq!(d4(&ev).reason, Some(Dhcp4Reason::UnsupportedHardware));
        assert_eq!(d4(&ev).relay, Some(Ipv4Addr::new(198, 51, 100, 2)));
    }

    #[test]
    fn relayed_request_from_an_unknown_network_is_journaled() {
        let (d, p) = (dhcp4(), policy(&KEA_URIS));
        let mut t = LeaseTable::default();
        let mut m = msg(MessageType::Discover, CLIENT, &[143]);
        m.set_giaddr(Ipv4Addr::new(203, 0, 113, 1));
        let o = run(&d, &p, &mut t, &m);
        assert!(o.reply.is_none());
        assert_eq!(o.ignored, Some(Ignored::NoSubnet));
        let ev = o.event.unwrap();
        assert_eq!(ev.mac, Some(MacAddr(CLIENT)));
        assert_eq!(d4(&ev).event, Dhcp4Kind::Dropped);
        assert_eq!(d4(&ev).reason, Some(Dhcp4Reason::NoSubnet));
        assert_eq!(d4(&ev).relay, Some(Ipv4Addr::new(203, 0, 113, 1)));
    }
}
