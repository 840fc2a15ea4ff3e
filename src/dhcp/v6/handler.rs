//! The DHCPv6 handler (RFC 8415 §18.3): request + bindings + now → outcome. No sockets, clock
//! or randomness here
//!
//! Device facts are built once per request from the client message and what its relays added;
//! the one [`Policy`] decides; option 136 is rendered per the rule (RFC 8572 §8.2: only when
//! the client's Option Request option lists it, unless `dhcp-always-send`; one instance; whole
//! URIs dropped, lowest preference first, to keep the message within the client's link MTU).

use std::net::{IpAddr, Ipv6Addr, SocketAddrV6};

use dhcproto::v6::{DhcpOption, DhcpOptions, IAAddr, MessageType, Status, IANA};
use ipnet::Ipv6Net;

use super::bindings::{Bindings, IaKey, Lease6, Slot6};
use super::wire::{self, in_order, Received};
use crate::config::{Dhcp6, Reservation6Key, Subnet6};
use crate::dhcp::leases::LeaseState;
use crate::journal::{DeviceEvent, Dhcp6Event, Dhcp6Kind, Dhcp6Status, EventDetail};
use crate::policy::{ClientId, Decision, DeviceFacts, MacAddr, Policy, Source, UriEncoding};
use crate::sztp::redirect_list::{encode_list, encode_text};

/// Where and how a datagram arrived.
#[derive(Clone, Debug)]
pub struct RequestMeta {
    /// The interface it arrived on (from IPV6_PKTINFO).
    pub interface: String,
    /// That interface's non-link-local prefixes (a directly attached client's subnet is the
    /// one holding one of them, unless a subnet names the interface).
    pub iface_addrs: Vec<Ipv6Net>,
    /// That interface's MTU in octets.
    pub link_mtu: u32,
    /// The sender (a client's link-local address with its scope, or a relay), and its port.
    pub src: SocketAddrV6,
    /// The destination address: ff02::1:2 for a client on the link, unicast otherwise.
    pub dst: Ipv6Addr,
}

/// A message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Advertise or Reply (of the client message, inside any Relay-reply).
    pub msg_type: MessageType,
    /// The datagram: the client message, wrapped in one Relay-reply per relay.
    pub bytes: Vec<u8>,
    /// The client (its source address and port, with scope), or the relay that sent the
    /// Relay-forward (port 547, or its source port with RFC 8357).
    pub to: SocketAddrV6,
}

/// Why a message gets no reply (counted, logged at debug).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ignored {
    /// The Client Identifier option is shorter than 3 or longer than 130 octets (RFC 8415
    /// §11.1).
    BadClientId,
    /// A message that must carry a Client Identifier option has none (RFC 8415 §16).
    NoClientId,
    /// A Solicit, Confirm or Rebind names a server (RFC 8415 §16.2, §16.5, §16.7).
    ServerIdNotAllowed,
    /// The message names another server's DUID.
    ForOtherServer,
    /// An Information-request carries an IA option (RFC 8415 §16.12).
    InformationRequestWithIa,
    /// A message type a server does not answer (Advertise, Reply, Reconfigure, …).
    UnexpectedMessageType,
    /// A Solicit, Confirm or Rebind sent by unicast (RFC 8415 §18.4 allows unicast only for
    /// Request, Renew, Release and Decline).
    UnicastNotAllowed,
    /// A Rebind from a link this server has no subnet for (RFC 8415 §18.3.5: no reply).
    RebindNoSubnet,
    /// A Confirm listing no address (RFC 8415 §18.3.3: no reply).
    ConfirmWithoutAddresses,
    /// No configured subnet for the client's link.
    NoSubnet,
}

impl Ignored {
    /// The kebab-case name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Ignored::BadClientId => "bad-client-id",
            Ignored::NoClientId => "no-client-id",
            Ignored::ServerIdNotAllowed => "server-id-not-allowed",
            Ignored::ForOtherServer => "for-other-server",
            Ignored::InformationRequestWithIa => "information-request-with-ia",
            Ignored::UnexpectedMessageType => "unexpected-message-type",
            Ignored::UnicastNotAllowed => "unicast-not-allowed",
            Ignored::RebindNoSubnet => "rebind-no-subnet",
            Ignored::ConfirmWithoutAddresses => "confirm-without-addresses",
            Ignored::NoSubnet => "no-subnet",
        }
    }
}

/// What the server loop must do for one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The reply, sent only after `commit` is durable.
    pub reply: Option<Reply>,
    /// Binding records to make durable BEFORE the reply leaves.
    pub commit: Vec<Lease6>,
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

/// Everything the handler reads: the `[dhcp6]` section, the one Policy and the server DUID.
pub struct Context<'a> {
    /// `[dhcp6]`.
    pub dhcp6: &'a Dhcp6,
    /// The Policy.
    pub policy: &'a Policy,
    /// The server's DUID (option 2), generated once and kept in state-dir.
    pub server_duid: &'a [u8],
}

fn secs(d: std::time::Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// The device as the Policy sees it: DUID, MAC (option 79, else DUID-LL/LLT), option 16 and
/// 15, and the innermost relay's interface-id and remote-id. Built once per request.
pub fn facts(req: &Received, meta: &RequestMeta) -> DeviceFacts {
    let vc = req.vendor_class();
    DeviceFacts {
        source: Source::Dhcp6,
        mac: req.mac(),
        client_id: req.client_id().map(|d| ClientId::Duid(d.to_vec())),
        enterprise_number: vc.as_ref().map(|v| v.0),
        vendor_class: vc.map(|v| v.1),
        user_class: req.user_classes(),
        circuit_id: req.relays.iter().rev().find_map(|r| r.interface_id.clone()),
        remote_id: req
            .relays
            .iter()
            .rev()
            .find_map(|r| r.remote_id.as_ref().map(|x| x.1.clone())),
        interface: Some(meta.interface.clone()),
        source_addr: Some(IpAddr::V6(*meta.src.ip())),
        ..DeviceFacts::default()
    }
}

/// Handles one decoded message.
pub fn handle(
    ctx: &Context<'_>,
    bindings: &mut Bindings,
    req: &Received,
    meta: &RequestMeta,
    now: u64,
) -> Outcome {
    let t = req.msg_type;
    let relayed = !req.relays.is_empty();
    let duid = req.client_id();
    if let Some(d) = duid {
        if !(3..=130).contains(&d.len()) {
            return Outcome::ignore(Ignored::BadClientId);
        }
    }
    // RFC 8415 §16: which messages must, may or must not name a server
    let sid = req.server_id();
    let ours = sid == Some(ctx.server_duid);
    match t {
        MessageType::Solicit | MessageType::Confirm | MessageType::Rebind => {
            if duid.is_none() {
                return Outcome::ignore(Ignored::NoClientId);
            }
            if sid.is_some() {
                return Outcome::ignore(Ignored::ServerIdNotAllowed);
            }
        }
        MessageType::Request | MessageType::Renew | MessageType::Release | MessageType::Decline => {
            if duid.is_none() {
                return Outcome::ignore(Ignored::NoClientId);
            }
            if !ours {
                return Outcome::ignore(Ignored::ForOtherServer);
            }
        }
        MessageType::InformationRequest => {
            if sid.is_some() && !ours {
                return Outcome::ignore(Ignored::ForOtherServer);
            }
            if req.has_ia() {
                return Outcome::ignore(Ignored::InformationRequestWithIa);
            }
        }
        _ => return Outcome::ignore(Ignored::UnexpectedMessageType),
    }
    let facts = facts(req, meta);
    let mut ev = DeviceEvent::dhcp6(
        now,
        Dhcp6Kind::default(),
        req.xid_num(),
        duid.map(<[u8]>::to_vec).unwrap_or_default(),
    );
    if duid.is_none() {
        ev.duid = None;
    }
    ev.mac = facts.mac;
    {
        let vc = req.vendor_class();
        let x = detail(&mut ev);
        x.iaid = req.ia_nas().first().map(|ia| ia.id);
        x.enterprise_number = vc.as_ref().map(|v| v.0);
        x.vendor_class = vc.map(|v| v.1);
        x.user_class = facts.user_class.clone();
        x.interface = Some(meta.interface.clone());
        x.relay = relayed.then(|| meta.src.ip().to_string());
        x.requested_136 = req.requests(wire::OPT_V6_SZTP_REDIRECT);
    }
    let x = Exchange {
        ctx,
        req,
        meta,
        subnet: subnet_for(ctx.dhcp6, req, meta),
        decision: ctx.policy.decide(&facts),
        duid: duid.unwrap_or_default(),
        mac: facts.mac,
        now,
    };
    // RFC 8415 §18.4: a client unicasts only when the server said it may (option 12)
    let unicast = !relayed && !meta.dst.is_multicast();
    if unicast {
        match t {
            MessageType::Solicit | MessageType::Confirm | MessageType::Rebind => {
                return Outcome::ignore(Ignored::UnicastNotAllowed);
            }
            MessageType::Request
            | MessageType::Renew
            | MessageType::Release
            | MessageType::Decline
                if ctx.dhcp6.server_unicast.is_none() =>
            {
                return x.use_multicast(&mut ev);
            }
            _ => {}
        }
    }
    match t {
        MessageType::Solicit if req.rapid_commit() && ctx.dhcp6.rapid_commit => {
            x.bind(bindings, Mode::RapidCommit, &mut ev)
        }
        MessageType::Solicit => x.solicit(bindings, &mut ev),
        MessageType::Request => x.bind(bindings, Mode::Request, &mut ev),
        MessageType::Renew => x.bind(bindings, Mode::Renew, &mut ev),
        MessageType::Rebind if x.subnet.is_none() => Outcome::ignore(Ignored::RebindNoSubnet),
        MessageType::Rebind => x.bind(bindings, Mode::Rebind, &mut ev),
        MessageType::Release => x.release(bindings, &mut ev, false),
        MessageType::Decline => x.release(bindings, &mut ev, true),
        MessageType::Confirm => x.confirm(&mut ev),
        _ => x.information(&mut ev),
    }
}

/// The subnet of the client's link: from the innermost relay's link-address that is set (RFC
/// 8415 §19.1.1, a lightweight relay leaves it `::`); for a client on our own link, the subnet
/// naming the interface, else the one holding an address of the interface, else the only
/// subnet when there is one and it names no interface.
pub fn subnet_for<'a>(d: &'a Dhcp6, req: &Received, meta: &RequestMeta) -> Option<&'a Subnet6> {
    let by_addr = |a: &Ipv6Addr| d.subnets.iter().find(|s| s.prefix.contains(a));
    if let Some(link) = req
        .relays
        .iter()
        .rev()
        .map(|r| r.link_address)
        .find(|a| !a.is_unspecified() && !a.is_unicast_link_local())
    {
        return by_addr(&link);
    }
    d.subnets
        .iter()
        .find(|s| s.interface.as_deref() == Some(meta.interface.as_str()))
        .or_else(|| meta.iface_addrs.iter().find_map(|n| by_addr(&n.addr())))
        .or(match d.subnets.as_slice() {
            [only] if only.interface.is_none() => Some(only),
            _ => None,
        })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Request,
    RapidCommit,
    Renew,
    Rebind,
}

struct Exchange<'a> {
    ctx: &'a Context<'a>,
    req: &'a Received,
    meta: &'a RequestMeta,
    subnet: Option<&'a Subnet6>,
    decision: Option<Decision>,
    duid: &'a [u8],
    mac: Option<MacAddr>,
    now: u64,
}

/// The addresses a client listed in an IA_NA.
fn listed(ia: &IANA) -> Vec<Ipv6Addr> {
    ia.opts
        .iter()
        .filter_map(|o| match o {
            DhcpOption::IAAddr(a) => Some(a.addr),
            _ => None,
        })
        .collect()
}

fn ia_addr(addr: Ipv6Addr, preferred: u32, valid: u32) -> DhcpOption {
    DhcpOption::IAAddr(IAAddr {
        addr,
        preferred_life: preferred,
        valid_life: valid,
        opts: DhcpOptions::new(),
    })
}

fn status_of(s: Dhcp6Status) -> Status {
    Status::from(s.code())
}

fn ia_status(id: u32, s: Dhcp6Status, text: &str, mut addrs: Vec<DhcpOption>) -> DhcpOption {
    addrs.push(wire::status(status_of(s), text));
    DhcpOption::IANA(IANA {
        id,
        t1: 0,
        t2: 0,
        opts: in_order(addrs),
    })
}

impl Exchange<'_> {
    fn key(&self, ia: &IANA) -> IaKey {
        IaKey {
            duid: self.duid.to_vec(),
            iaid: ia.id,
        }
    }

    /// The reservation for this client in its subnet: by DUID first, then by MAC.
    fn reservation(&self) -> Option<Ipv6Addr> {
        let s = self.subnet?;
        let by = |want: &dyn Fn(&Reservation6Key) -> bool| {
            s.reservations
                .iter()
                .find(|r| want(&r.key))
                .map(|r| r.address)
        };
        by(&|k| matches!(k, Reservation6Key::Duid(d) if d == self.duid)).or_else(|| {
            self.mac
                .and_then(|m| by(&|k| matches!(k, Reservation6Key::Mac(x) if *x == m)))
        })
    }

    fn reserved(&self, a: Ipv6Addr) -> bool {
        self.subnet
            .is_some_and(|s| s.reservations.iter().any(|r| r.address == a))
    }

    /// The address for one IA_NA: its reservation, else the address it had (if still in the
    /// pools and free), else the stable-hash choice.
    fn choose(&self, b: &Bindings, key: &IaKey) -> Option<Ipv6Addr> {
        let s = self.subnet?;
        let reserved = self.reservation();
        if let Some(r) = reserved {
            if b.available_to(r, key, self.now) {
                return Some(r);
            }
        }
        if reserved.is_none() {
            if let Some(a) = b.ia_addr(key) {
                if s.pools.iter().any(|p| p.contains(a))
                    && !self.reserved(a)
                    && b.available_to(a, key, self.now)
                {
                    return Some(a);
                }
            }
        }
        b.choose_pool_address(s, key, self.now, |a| !self.reserved(a))
    }

    fn lifetimes(&self) -> (u32, u32, u32, u32) {
        let s = self.subnet.expect("lifetimes are read with a subnet");
        (
            secs(s.t1()),
            secs(s.t2()),
            secs(s.preferred_lifetime),
            secs(s.valid_lifetime),
        )
    }

    fn lease(&self, key: &IaKey, addr: Ipv6Addr, state: LeaseState, expires: u64) -> Lease6 {
        Lease6 {
            addr,
            duid: key.duid.clone(),
            iaid: key.iaid,
            mac: self.mac,
            expires,
            state,
        }
    }

    fn note_first(ev: &mut DeviceEvent, first: &mut bool, addr: Option<Ipv6Addr>) {
        if *first {
            detail(ev).address = addr;
            *first = false;
        }
    }

    /// Solicit → Advertise: addresses held for `offer-time`, nothing journaled.
    fn solicit(&self, b: &mut Bindings, ev: &mut DeviceEvent) -> Outcome {
        detail(ev).event = Dhcp6Kind::Advertise;
        let mut body = Vec::new();
        let mut first = true;
        for ia in self.req.ia_nas() {
            let key = self.key(ia);
            let Some(addr) = self.choose(b, &key) else {
                detail(ev).status = Some(Dhcp6Status::NoAddrsAvail);
                Self::note_first(ev, &mut first, None);
                body.push(ia_status(
                    ia.id,
                    Dhcp6Status::NoAddrsAvail,
                    "no addresses available",
                    Vec::new(),
                ));
                continue;
            };
            Self::note_first(ev, &mut first, Some(addr));
            // a bound client that solicits again keeps its stored binding: an Advertise must
            // never shorten or hide a binding that is on disk
            if !b.bound_to(addr, &key, self.now) {
                let until = self.now + self.ctx.dhcp6.offer_time.as_secs();
                b.put(Slot6::Offered(self.lease(
                    &key,
                    addr,
                    LeaseState::Bound,
                    until,
                )));
            }
            let (t1, t2, pref, valid) = self.lifetimes();
            body.push(DhcpOption::IANA(IANA {
                id: ia.id,
                t1,
                t2,
                opts: in_order(vec![ia_addr(addr, pref, valid)]),
            }));
        }
        let reply = self.reply(MessageType::Advertise, body, true, ev);
        Outcome {
            reply: Some(reply),
            event: Some(ev.clone()),
            ..Outcome::default()
        }
    }

    /// Request, Solicit with Rapid Commit, Renew, Rebind → Reply with bound, journaled
    /// addresses (RFC 8415 §18.3.2, §18.3.4, §18.3.5).
    fn bind(&self, b: &mut Bindings, mode: Mode, ev: &mut DeviceEvent) -> Outcome {
        detail(ev).event = match mode {
            Mode::Request => Dhcp6Kind::Request,
            Mode::RapidCommit => Dhcp6Kind::RapidCommit,
            Mode::Renew => Dhcp6Kind::Renew,
            Mode::Rebind => Dhcp6Kind::Rebind,
        };
        let mut body = Vec::new();
        let mut commit = Vec::new();
        let mut first = true;
        for ia in self.req.ia_nas() {
            let key = self.key(ia);
            let asked = listed(ia);
            let Some(subnet) = self.subnet else {
                // Renew from a link we have no subnet for (a Rebind is dropped earlier)
                let (s, text) = match mode {
                    Mode::Renew => (Dhcp6Status::NoBinding, "no binding on this link"),
                    _ => (Dhcp6Status::NoAddrsAvail, "no subnet for this link"),
                };
                detail(ev).status = Some(s);
                Self::note_first(ev, &mut first, None);
                body.push(ia_status(ia.id, s, text, Vec::new()));
                continue;
            };
            let off_link: Vec<Ipv6Addr> = asked
                .iter()
                .copied()
                .filter(|a| !subnet.prefix.contains(a))
                .collect();
            if mode == Mode::Request && !off_link.is_empty() {
                detail(ev).status = Some(Dhcp6Status::NotOnLink);
                Self::note_first(ev, &mut first, None);
                body.push(ia_status(
                    ia.id,
                    Dhcp6Status::NotOnLink,
                    "address not on this link",
                    Vec::new(),
                ));
                continue;
            }
            let chosen = self.choose(b, &key);
            // addresses the client asked about and does not get keep lifetimes of 0, so it
            // stops using them (RFC 8415 §18.3.4, §18.3.5)
            let zeroed: Vec<DhcpOption> = asked
                .iter()
                .filter(|a| Some(**a) != chosen)
                .map(|a| ia_addr(*a, 0, 0))
                .collect();
            let Some(addr) = chosen else {
                let (s, text) = match mode {
                    Mode::Renew | Mode::Rebind => (Dhcp6Status::NoBinding, "cannot extend"),
                    _ => (Dhcp6Status::NoAddrsAvail, "no addresses available"),
                };
                detail(ev).status = Some(s);
                Self::note_first(ev, &mut first, None);
                let zeroed = if matches!(mode, Mode::Renew | Mode::Rebind) {
                    zeroed
                } else {
                    Vec::new()
                };
                body.push(ia_status(ia.id, s, text, zeroed));
                continue;
            };
            Self::note_first(ev, &mut first, Some(addr));
            // the IA held another address before (a reservation was added, or its old one
            // was taken while it was away): that binding ends now
            if let Some(old) = b.ia_addr(&key).filter(|&o| o != addr) {
                match b.get(old) {
                    Some(Slot6::Stored(l)) if l.state == LeaseState::Bound => {
                        let mut r = l.clone();
                        r.state = LeaseState::Released;
                        r.expires = self.now;
                        commit.push(r.clone());
                        b.put(Slot6::Stored(r));
                    }
                    _ => b.drop_offer(old),
                }
            }
            let (t1, t2, pref, valid) = self.lifetimes();
            let l = self.lease(&key, addr, LeaseState::Bound, self.now + u64::from(valid));
            b.put(Slot6::Stored(l.clone()));
            commit.push(l);
            let mut opts = vec![ia_addr(addr, pref, valid)];
            opts.extend(zeroed);
            body.push(DhcpOption::IANA(IANA {
                id: ia.id,
                t1,
                t2,
                opts: in_order(opts),
            }));
        }
        if mode == Mode::RapidCommit {
            body.push(DhcpOption::RapidCommit);
        }
        let reply = self.reply(MessageType::Reply, body, true, ev);
        Outcome {
            reply: Some(reply),
            commit,
            event: Some(ev.clone()),
            ignored: None,
        }
    }

    /// Release (RFC 8415 §18.3.7) or Decline (§18.3.8): the client's listed addresses that it
    /// holds are freed or quarantined; IAs it holds nothing in get NoBinding.
    fn release(&self, b: &mut Bindings, ev: &mut DeviceEvent, decline: bool) -> Outcome {
        detail(ev).event = if decline {
            Dhcp6Kind::Decline
        } else {
            Dhcp6Kind::Release
        };
        let mut body = Vec::new();
        let mut commit = Vec::new();
        let mut first = true;
        for ia in self.req.ia_nas() {
            let key = self.key(ia);
            let mut any = false;
            for a in listed(ia) {
                let held = matches!(b.get(a), Some(Slot6::Stored(l))
                    if l.state == LeaseState::Bound && l.iaid == key.iaid && l.duid == key.duid);
                if !held {
                    continue;
                }
                any = true;
                Self::note_first(ev, &mut first, Some(a));
                let l = if decline {
                    let until = self.now + self.ctx.dhcp6.decline_time.as_secs();
                    self.lease(&key, a, LeaseState::Declined, until)
                } else {
                    self.lease(&key, a, LeaseState::Released, self.now)
                };
                b.put(Slot6::Stored(l.clone()));
                commit.push(l);
            }
            if !any {
                Self::note_first(ev, &mut first, None);
                detail(ev).status = Some(Dhcp6Status::NoBinding);
                body.push(ia_status(
                    ia.id,
                    Dhcp6Status::NoBinding,
                    "no binding for this IA",
                    Vec::new(),
                ));
            }
        }
        body.push(wire::status(
            Status::Success,
            if decline {
                "addresses declined"
            } else {
                "addresses released"
            },
        ));
        let reply = self.reply(MessageType::Reply, body, false, ev);
        Outcome {
            reply: Some(reply),
            commit,
            event: Some(ev.clone()),
            ignored: None,
        }
    }

    /// Confirm (RFC 8415 §18.3.3): Success when every listed address is on the client's
    /// link, NotOnLink otherwise; no reply when there is nothing to judge.
    fn confirm(&self, ev: &mut DeviceEvent) -> Outcome {
        detail(ev).event = Dhcp6Kind::Confirm;
        let addrs: Vec<Ipv6Addr> = self.req.ia_nas().into_iter().flat_map(listed).collect();
        if addrs.is_empty() {
            return Outcome::ignore(Ignored::ConfirmWithoutAddresses);
        }
        let Some(s) = self.subnet else {
            return Outcome::ignore(Ignored::NoSubnet);
        };
        detail(ev).address = addrs.first().copied();
        let status = if addrs.iter().all(|a| s.prefix.contains(a)) {
            wire::status(Status::Success, "addresses on link")
        } else {
            detail(ev).status = Some(Dhcp6Status::NotOnLink);
            wire::status(Status::NotOnLink, "addresses not on link")
        };
        let reply = self.reply(MessageType::Reply, vec![status], false, ev);
        Outcome {
            reply: Some(reply),
            event: Some(ev.clone()),
            ..Outcome::default()
        }
    }

    /// Information-request (RFC 8415 §18.3.6): configuration options and option 136 only.
    fn information(&self, ev: &mut DeviceEvent) -> Outcome {
        detail(ev).event = Dhcp6Kind::InformationRequest;
        let reply = self.reply(MessageType::Reply, Vec::new(), true, ev);
        Outcome {
            reply: Some(reply),
            event: Some(ev.clone()),
            ..Outcome::default()
        }
    }

    /// RFC 8415 §18.4: Reply with UseMulticast, the two identifiers and nothing else.
    fn use_multicast(&self, ev: &mut DeviceEvent) -> Outcome {
        detail(ev).event = match self.req.msg_type {
            MessageType::Request => Dhcp6Kind::Request,
            MessageType::Renew => Dhcp6Kind::Renew,
            MessageType::Release => Dhcp6Kind::Release,
            _ => Dhcp6Kind::Decline,
        };
        detail(ev).status = Some(Dhcp6Status::UseMulticast);
        let body = vec![wire::status(
            Status::UseMulticast,
            "use multicast: this server does not accept unicast",
        )];
        let reply = self.reply(MessageType::Reply, body, false, ev);
        Outcome {
            reply: Some(reply),
            event: Some(ev.clone()),
            ..Outcome::default()
        }
    }

    /// Where the reply goes: back to the client, or to the relay that sent the Relay-forward
    /// (port 547, or its source port when it sent RFC 8357 Relay Source Port).
    fn destination(&self) -> SocketAddrV6 {
        let src = self.meta.src;
        match self.req.relays.first() {
            None => src,
            Some(outer) => {
                let port = if outer.relay_source_port {
                    src.port()
                } else {
                    wire::SERVER_PORT
                };
                SocketAddrV6::new(*src.ip(), port, 0, src.scope_id())
            }
        }
    }

    /// The client's link MTU: the arrival interface's for a client on our link; for a relayed
    /// one we cannot know it, so the IPv6 minimum (RFC 8200 §5).
    fn message_budget(&self) -> usize {
        let mtu = if self.req.relays.is_empty() {
            self.meta.link_mtu.max(wire::MIN_LINK_MTU)
        } else {
            wire::MIN_LINK_MTU
        };
        (mtu - wire::IP_UDP_HEADERS) as usize
    }

    /// Builds the client message: server and client identifiers, `body`, and with
    /// `config` the subnet's options 23/24 (when requested), Server Unicast, and option 136 per
    /// the Decision; then wraps it for the relays.
    fn reply(
        &self,
        t: MessageType,
        body: Vec<DhcpOption>,
        config: bool,
        ev: &mut DeviceEvent,
    ) -> Reply {
        let mut opts = in_order(body);
        opts.insert(DhcpOption::ServerId(self.ctx.server_duid.to_vec()));
        if let Some(d) = self.req.client_id() {
            opts.insert(DhcpOption::ClientId(d.to_vec()));
        }
        if config {
            if let Some(s) = self.subnet {
                if !s.dns_servers.is_empty() && self.req.requests(wire::OPT_DNS_SERVERS) {
                    opts.insert(DhcpOption::DomainNameServers(s.dns_servers.clone()));
                }
                if !s.domain_search.is_empty() && self.req.requests(wire::OPT_DOMAIN_LIST) {
                    opts.insert(wire::raw_option(
                        wire::OPT_DOMAIN_LIST,
                        wire::domain_list(&s.domain_search),
                    ));
                }
            }
            if let (Some(a), true) = (self.ctx.dhcp6.server_unicast, self.req.relays.is_empty()) {
                opts.insert(DhcpOption::ServerUnicast(a));
            }
            self.add_sztp(&mut opts, ev);
        }
        let msg = wire::encode(t, self.req.xid, &opts);
        Reply {
            msg_type: t,
            bytes: wire::wrap_relay_reply(msg, &self.req.relays),
            to: self.destination(),
        }
    }

    /// Option 136 per the device's Decision (RFC 8572 §8.2): one instance, only when
    /// requested unless the rule says always-send, sized so the client message fits the link.
    fn add_sztp(&self, opts: &mut DhcpOptions, ev: &mut DeviceEvent) {
        let Some(decision) = &self.decision else {
            return;
        };
        ev.rule = Some(decision.rule.clone());
        let render = self.ctx.policy.rendering(decision);
        if !detail(ev).requested_136 && !render.always_send {
            return;
        }
        let mut uris = decision.uris(render.form);
        let encode = |u: &[String]| match render.encoding {
            UriEncoding::Rfc8572 => encode_list(u),
            UriEncoding::Text => encode_text(u),
        };
        detail(ev).encoding = Some(
            match render.encoding {
                UriEncoding::Rfc8572 => "rfc8572",
                UriEncoding::Text => "text",
            }
            .to_owned(),
        );
        if render.encoding == UriEncoding::Text && uris.len() > 1 {
            detail(ev).uris_dropped.extend(uris.drain(1..));
        }
        let used = 4 + options_len(opts);
        let budget = self.message_budget();
        while !uris.is_empty() && used + 4 + encode(&uris).len() > budget {
            detail(ev)
                .uris_dropped
                .insert(0, uris.pop().expect("not empty"));
        }
        if uris.is_empty() {
            return;
        }
        opts.insert(wire::raw_option(wire::OPT_V6_SZTP_REDIRECT, encode(&uris)));
        ev.uris = uris;
    }
}

/// The DHCPv6 part of an event this handler made.
fn detail(ev: &mut DeviceEvent) -> &mut Dhcp6Event {
    match &mut ev.detail {
        EventDetail::Dhcp6(x) => x,
        _ => unreachable!("the DHCPv6 handler makes DHCPv6 events only"),
    }
}

/// Octets of `opts` on the wire.
fn options_len(opts: &DhcpOptions) -> usize {
    wire::encode(MessageType::Reply, [0; 3], opts).len() - 4
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;

    /// The DHCPv6 part of a handler event.
    pub(crate) fn d6(ev: &DeviceEvent) -> &Dhcp6Event {
        match &ev.detail {
            EventDetail::Dhcp6(x) => x,
            _ => panic!("not a DHCPv6 event: {ev:?}"),
        }
    }
    use crate::config::{Pool6, Reservation6};
    use crate::dhcp::v4::handler::tests::{policy, KEA_URIS};
    use crate::dhcp::v6::wire::{options, push_option, RawOption};
    use crate::sztp::decode_list;

    const NOW: u64 = 1_000_000;
    pub(crate) const SERVER_DUID: [u8; 14] = [0, 1, 0, 1, 0x2a, 0, 0, 0, 2, 0, 0, 0, 0, 1];
    const CLIENT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

    pub(crate) fn dhcp6() -> Dhcp6 {
        Dhcp6 {
            interfaces: vec!["eth1".into()],
            port: 547,
            rapid_commit: true,
            server_unicast: None,
            offer_time: Duration::from_secs(60),
            decline_time: Duration::from_secs(3600),
            subnets: vec![
                Subnet6 {
                    prefix: "2001:db8:1::/64".parse().unwrap(),
                    pools: vec![Pool6 {
                        start: "2001:db8:1::".parse().unwrap(),
                        end: "2001:db8:1::ffff:ffff:ffff:ffff".parse().unwrap(),
                    }],
                    dns_servers: vec!["2001:db8:1::1".parse().unwrap()],
                    domain_search: vec!["staging.example.com".into()],
                    preferred_lifetime: Duration::from_secs(1800),
                    valid_lifetime: Duration::from_secs(3600),
                    renewal_time: None,
                    rebinding_time: None,
                    interface: Some("eth1".into()),
                    reservations: vec![
                        Reservation6 {
                            key: Reservation6Key::Mac(MacAddr([2, 0, 0, 0, 0, 0x42])),
                            address: "2001:db8:1::42".parse().unwrap(),
                        },
                        Reservation6 {
                            key: Reservation6Key::Duid(vec![0, 2, 0, 0, 0, 9, b'x']),
                            address: "2001:db8:1::99".parse().unwrap(),
                        },
                    ],
                },
                Subnet6 {
                    prefix: "2001:db8:2::/64".parse().unwrap(),
                    pools: vec![Pool6 {
                        start: "2001:db8:2::100".parse().unwrap(),
                        end: "2001:db8:2::101".parse().unwrap(),
                    }],
                    dns_servers: vec![],
                    domain_search: vec![],
                    preferred_lifetime: Duration::from_secs(600),
                    valid_lifetime: Duration::from_secs(900),
                    renewal_time: Some(Duration::from_secs(100)),
                    rebinding_time: Some(Duration::from_secs(200)),
                    interface: None,
                    reservations: vec![],
                },
            ],
        }
    }

    pub(crate) fn meta() -> RequestMeta {
        RequestMeta {
            interface: "eth1".into(),
            iface_addrs: vec![],
            link_mtu: 1500,
            src: "[fe80::ff:fe00:2]:546".parse().unwrap(),
            dst: wire::ALL_DHCP_RELAY_AGENTS_AND_SERVERS,
        }
    }

    pub(crate) fn duid_of(mac: MacAddr) -> Vec<u8> {
        wire::duid_ll(mac)
    }

    /// A client message: type, DUID-LL of `mac`, ORO, one IA_NA (IAID 1) listing `addrs`.
    pub(crate) fn client_msg(t: u8, mac: MacAddr, oro: &[u16], ia: Option<&[Ipv6Addr]>) -> Vec<u8> {
        let mut m = vec![t, 0xab, 0xcd, 0xef];
        push_option(&mut m, wire::OPT_CLIENTID, &duid_of(mac));
        if !oro.is_empty() {
            let v: Vec<u8> = oro.iter().flat_map(|c| c.to_be_bytes()).collect();
            push_option(&mut m, wire::OPT_ORO, &v);
        }
        push_option(&mut m, wire::OPT_ELAPSED_TIME, &[0, 0]);
        if let Some(addrs) = ia {
            let mut v = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
            for a in addrs {
                let mut x = a.octets().to_vec();
                x.extend_from_slice(&[0; 8]);
                push_option(&mut v, wire::OPT_IAADDR, &x);
            }
            push_option(&mut m, wire::OPT_IA_NA, &v);
        }
        m
    }

    fn with_server_id(mut m: Vec<u8>) -> Vec<u8> {
        push_option(&mut m, wire::OPT_SERVERID, &SERVER_DUID);
        m
    }

    fn with_option(mut m: Vec<u8>, code: u16, v: &[u8]) -> Vec<u8> {
        push_option(&mut m, code, v);
        m
    }

    fn run_at(
        d: &Dhcp6,
        p: &Policy,
        b: &mut Bindings,
        pkt: &[u8],
        m: &RequestMeta,
        now: u64,
    ) -> Outcome {
        let req = wire::decode(pkt).unwrap();
        let ctx = Context {
            dhcp6: d,
            policy: p,
            server_duid: &SERVER_DUID,
        };
        handle(&ctx, b, &req, m, now)
    }

    fn run(d: &Dhcp6, p: &Policy, b: &mut Bindings, pkt: &[u8]) -> Outcome {
        run_at(d, p, b, pkt, &meta(), NOW)
    }

    fn opts(msg: &[u8]) -> Vec<RawOption<'_>> {
        options(&msg[4..]).unwrap()
    }

    fn opt(msg: &[u8], code: u16) -> Option<&[u8]> {
        opts(msg)
            .into_iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v)
    }

    fn count(msg: &[u8], code: u16) -> usize {
        opts(msg).iter().filter(|(c, _)| *c == code).count()
    }

    /// (IAID, T1, T2, [(addr, preferred, valid)], status code) of every IA_NA.
    #[allow(clippy::type_complexity)]
    fn ias(msg: &[u8]) -> Vec<(u32, u32, u32, Vec<(Ipv6Addr, u32, u32)>, Option<u16>)> {
        opts(msg)
            .into_iter()
            .filter(|(c, _)| *c == wire::OPT_IA_NA)
            .map(|(_, v)| {
                let u = |i: usize| u32::from_be_bytes(v[i..i + 4].try_into().unwrap());
                let mut addrs = Vec::new();
                let mut st = None;
                for (c, x) in options(&v[12..]).unwrap() {
                    if c == wire::OPT_IAADDR {
                        let a = Ipv6Addr::from(<[u8; 16]>::try_from(&x[..16]).unwrap());
                        let p = u32::from_be_bytes(x[16..20].try_into().unwrap());
                        let l = u32::from_be_bytes(x[20..24].try_into().unwrap());
                        addrs.push((a, p, l));
                    } else if c == wire::OPT_STATUS_CODE {
                        st = Some(u16::from_be_bytes([x[0], x[1]]));
                    }
                }
                (u(0), u(4), u(8), addrs, st)
            })
            .collect()
    }

    fn status(msg: &[u8]) -> Option<u16> {
        opt(msg, wire::OPT_STATUS_CODE).map(|v| u16::from_be_bytes([v[0], v[1]]))
    }

    fn kea_payload() -> Vec<u8> {
        encode_list(&KEA_URIS)
    }

    #[test]
    fn solicit_gets_advertise_with_136_exactly_kea_bytes() {
        let (d, p) = (dhcp6(), policy(&KEA_URIS));
        let mut b = Bindings::default();
        let o = run(
            &d,
            &p,
            &mut b,
            &client_msg(1, CLIENT_MAC, &[23, 24, 136], Some(&[])),
        );
        let r = o.reply.unwrap();
        assert_eq!(r.msg_type, MessageType::Advertise);
        assert_eq!(r.bytes[0], 2);
        assert_eq!(&r.bytes[1..4], &[0xab, 0xcd, 0xef]);
        assert_eq!(r.to, meta().src);
        assert_eq!(
            opt(&r.bytes, wire::OPT_V6_SZTP_REDIRECT),
            Some(&kea_payload()[..])
        );
        assert_eq!(count(&r.bytes, wire::OPT_V6_SZTP_REDIRECT), 1);
        assert_eq!(opt(&r.bytes, wire::OPT_SERVERID), Some(&SERVER_DUID[..]));
        assert_eq!(
            opt(&r.bytes, wire::OPT_CLIENTID),
            Some(&duid_of(CLIENT_MAC)[..])
        );
        assert_eq!(
            opt(&r.bytes, wire::OPT_DNS_SERVERS),
            Some(&"2001:db8:1::1".parse::<Ipv6Addr>().unwrap().octets()[..])
        );
        assert_eq!(
            opt(&r.bytes, wire::OPT_DOMAIN_LIST),
            Some(&b"\x07staging\x07example\x03com\x00"[..])
        );
        let ia = ias(&r.bytes);
        assert_eq!(ia.len(), 1);
        assert_eq!((ia[0].0, ia[0].1, ia[0].2), (1, 900, 1440));
        let (addr, pref, valid) = ia[0].3[0];
        assert_eq!((pref, valid), (1800, 3600));
        assert!(d.subnets[0].prefix.contains(&addr));
        assert!(o.commit.is_empty(), "an Advertise commits nothing");
        let ev = o.event.unwrap();
        assert_eq!(d6(&ev).event, Dhcp6Kind::Advertise);
        assert!(d6(&ev).requested_136);
        assert_eq!(ev.uris, KEA_URIS);
        assert_eq!(ev.mac, Some(CLIENT_MAC));
        assert_eq!(d6(&ev).address, Some(addr));
        assert_eq!(d6(&ev).iaid, Some(1));
        assert_eq!(ev.rule.as_deref(), Some("default"));
    }

    #[test]
    fn no_136_unless_in_the_oro_or_always_send() {
        let d = dhcp6();
        let mut p = policy(&KEA_URIS);
        let mut b = Bindings::default();
        let o = run(
            &d,
            &p,
            &mut b,
            &client_msg(1, CLIENT_MAC, &[23, 24], Some(&[])),
        );
        let r = o.reply.unwrap();
        assert_eq!(opt(&r.bytes, wire::OPT_V6_SZTP_REDIRECT), None);
        assert!(!d6(o.event.as_ref().unwrap()).requested_136);
        assert!(o.event.unwrap().uris.is_empty());
        // no ORO at all: no 23/24 either
        let o = run(&d, &p, &mut b, &client_msg(1, CLIENT_MAC, &[], Some(&[])));
        let r = o.reply.unwrap();
        assert_eq!(opt(&r.bytes, wire::OPT_DNS_SERVERS), None);
        assert_eq!(opt(&r.bytes, wire::OPT_DOMAIN_LIST), None);
        p.rules[0].always_send = true;
        let o = run(&d, &p, &mut b, &client_msg(1, CLIENT_MAC, &[], Some(&[])));
        assert_eq!(
            opt(&o.reply.unwrap().bytes, wire::OPT_V6_SZTP_REDIRECT),
            Some(&kea_payload()[..])
        );
    }

    #[test]
    fn text_rule_gives_the_bare_first_uri() {
        let d = dhcp6();
        let mut p = policy(&KEA_URIS);
        p.rules[0].encoding = UriEncoding::Text;
        let mut b = Bindings::default();
        let o = run(&d, &p, &mut b, &client_msg(11, CLIENT_MAC, &[136], None));
        assert_eq!(
            opt(&o.reply.unwrap().bytes, wire::OPT_V6_SZTP_REDIRECT),
            Some(KEA_URIS[0].as_bytes())
        );
        let ev = o.event.unwrap();
        assert_eq!(d6(&ev).uris_dropped, [KEA_URIS[1]]);
        assert_eq!(d6(&ev).encoding.as_deref(), Some("text"));
    }

    fn many_uris(n: usize) -> Vec<String> {
        (1..=n)
            .map(|i| format!("https://sztp-{i:03}.bootstrap.site-a.example.com:8443"))
            .collect()
    }

    #[test]
    fn the_list_is_cut_to_whole_uris_to_fit_the_link_mtu() {
        let d = dhcp6();
        let uris = many_uris(40); // 40 × 52 = 2080 octets: more than any 1500 link carries
        let refs: Vec<&str> = uris.iter().map(String::as_str).collect();
        let p = policy(&refs);
        let mut b = Bindings::default();
        let o = run(
            &d,
            &p,
            &mut b,
            &client_msg(1, CLIENT_MAC, &[23, 24, 136], Some(&[])),
        );
        let r = o.reply.unwrap();
        assert!(r.bytes.len() <= 1500 - 48, "{} octets", r.bytes.len());
        let got = decode_list(opt(&r.bytes, wire::OPT_V6_SZTP_REDIRECT).unwrap());
        assert!(!got.truncated);
        let ev = o.event.unwrap();
        assert_eq!(got.uris.len() + d6(&ev).uris_dropped.len(), 40);
        assert_eq!(got.uris, uris[..got.uris.len()]);
        assert_eq!(d6(&ev).uris_dropped, uris[got.uris.len()..]);
        assert!(
            got.uris.len() > 20,
            "the budget is used: {}",
            got.uris.len()
        );

        // relayed: the client's link is assumed to be 1280
        let relayed = relay(
            &client_msg(11, CLIENT_MAC, &[136], None),
            "2001:db8:1::1",
            &[],
        );
        let o = run_at(&d, &p, &mut b, &relayed, &relay_meta(), NOW);
        let r = o.reply.unwrap();
        let inner = relay_inner(&r.bytes);
        assert!(inner.len() <= 1280 - 48, "{}", inner.len());
        assert!(inner.len() > 1280 - 48 - 60, "{}", inner.len());
    }

    pub(crate) fn relay(inner: &[u8], link: &str, extra: &[(u16, &[u8])]) -> Vec<u8> {
        let mut m = vec![12, 0];
        m.extend_from_slice(&link.parse::<Ipv6Addr>().unwrap().octets());
        m.extend_from_slice(&"fe80::ff:fe00:2".parse::<Ipv6Addr>().unwrap().octets());
        for (c, v) in extra {
            push_option(&mut m, *c, v);
        }
        push_option(&mut m, wire::OPT_RELAY_MSG, inner);
        m
    }

    fn relay_meta() -> RequestMeta {
        RequestMeta {
            src: "[2001:db8:9::2]:547".parse().unwrap(),
            dst: "2001:db8:9::1".parse().unwrap(),
            ..meta()
        }
    }

    fn relay_inner(b: &[u8]) -> Vec<u8> {
        assert_eq!(b[0], 13);
        opts_of_relay(b)
            .into_iter()
            .find(|(c, _)| *c == wire::OPT_RELAY_MSG)
            .unwrap()
            .1
            .to_vec()
    }

    fn opts_of_relay(b: &[u8]) -> Vec<RawOption<'_>> {
        options(&b[wire::RELAY_HEADER_LEN..]).unwrap()
    }

    #[test]
    fn relayed_solicit_gets_the_relay_link_subnet_and_a_relay_reply() {
        let (d, p) = (dhcp6(), policy(&KEA_URIS));
        let mut b = Bindings::default();
        let pkt = relay(
            &client_msg(1, CLIENT_MAC, &[136], Some(&[])),
            "2001:db8:2::1",
            &[
                (wire::OPT_INTERFACE_ID, b"port7"),
                (wire::OPT_REMOTE_ID, &[0, 0, 0, 9, b'r']),
            ],
        );
        let o = run_at(&d, &p, &mut b, &pkt, &relay_meta(), NOW);
        let r = o.reply.unwrap();
        assert_eq!(r.to, "[2001:db8:9::2]:547".parse().unwrap());
        let outer = opts_of_relay(&r.bytes);
        assert_eq!(outer[0], (wire::OPT_INTERFACE_ID, &b"port7"[..]));
        assert_eq!(
            &r.bytes[2..18],
            &"2001:db8:2::1".parse::<Ipv6Addr>().unwrap().octets()
        );
        let inner = relay_inner(&r.bytes);
        assert_eq!(inner[0], 2);
        let ia = ias(&inner);
        assert_eq!((ia[0].1, ia[0].2), (100, 200), "the second subnet's T1/T2");
        let a = ia[0].3[0].0;
        assert!(["2001:db8:2::100", "2001:db8:2::101"].contains(&a.to_string().as_str()));
        assert_eq!(
            opt(&inner, wire::OPT_V6_SZTP_REDIRECT),
            Some(&kea_payload()[..])
        );
        assert_eq!(
            d6(&o.event.unwrap()).relay,
            Some("2001:db8:9::2".parse().unwrap())
        );
        // RFC 8357: with Relay Source Port the reply goes to the relay's source port
        let pkt = relay(
            &client_msg(11, CLIENT_MAC, &[136], None),
            "2001:db8:2::1",
            &[(wire::OPT_RELAY_SOURCE_PORT, &[0, 0])],
        );
        let m = RequestMeta {
            src: "[2001:db8:9::2]:40000".parse().unwrap(),
            ..relay_meta()
        };
        let o = run_at(&d, &p, &mut b, &pkt, &m, NOW);
        assert_eq!(
            o.reply.unwrap().to,
            "[2001:db8:9::2]:40000".parse().unwrap()
        );
        // a relay link in no subnet: stateless still works, no address is given
        let pkt = relay(
            &client_msg(1, CLIENT_MAC, &[136], Some(&[])),
            "2001:db8:77::1",
            &[],
        );
        let o = run_at(&d, &p, &mut b, &pkt, &relay_meta(), NOW);
        let inner = relay_inner(&o.reply.unwrap().bytes);
        assert_eq!(ias(&inner)[0].4, Some(2), "NoAddrsAvail");
        assert!(opt(&inner, wire::OPT_V6_SZTP_REDIRECT).is_some());
    }

    #[test]
    fn the_decision_uses_what_the_relays_add() {
        let d = dhcp6();
        let mut p = policy(&KEA_URIS);
        let mut r = p.rules[0].clone();
        r.name = "port7".into();
        r.matches.circuit_id = vec![crate::policy::Glob("port7".into())];
        r.matches.mac = vec!["02:00:00:00:00:77".parse().unwrap()];
        r.redirect_to.truncate(1);
        p.rules.insert(0, r);
        let mut b = Bindings::default();
        let inner = client_msg(11, CLIENT_MAC, &[136], None);
        let pkt = relay(
            &inner,
            "2001:db8:2::1",
            &[
                (wire::OPT_INTERFACE_ID, b"port7"),
                (
                    wire::OPT_CLIENT_LINKLAYER_ADDR,
                    &[0, 1, 2, 0, 0, 0, 0, 0x77],
                ),
            ],
        );
        let o = run_at(&d, &p, &mut b, &pkt, &relay_meta(), NOW);
        let ev = o.event.unwrap();
        assert_eq!(ev.rule.as_deref(), Some("port7"));
        assert_eq!(ev.mac, Some(MacAddr([2, 0, 0, 0, 0, 0x77])));
        assert_eq!(ev.uris, [KEA_URIS[0]]);
        // without option 79 the DUID's MAC does not match: the default rule
        let pkt = relay(
            &inner,
            "2001:db8:2::1",
            &[(wire::OPT_INTERFACE_ID, b"port7")],
        );
        let o = run_at(&d, &p, &mut b, &pkt, &relay_meta(), NOW);
        assert_eq!(o.event.unwrap().rule.as_deref(), Some("default"));
    }

    #[test]
    fn vendor_and_user_class_feed_the_policy() {
        let d = dhcp6();
        let mut p = policy(&KEA_URIS);
        let mut r = p.rules[0].clone();
        r.name = "arista".into();
        r.matches.vendor_class = vec![crate::policy::Glob("Arista*".into())];
        r.matches.user_class = vec![crate::policy::Glob("sztp".into())];
        r.redirect_to.truncate(1);
        p.rules.insert(0, r);
        let mut b = Bindings::default();
        let mut vc = 30065u32.to_be_bytes().to_vec();
        vc.extend_from_slice(&[0, 10]);
        vc.extend_from_slice(b"Arista;DCS");
        let uc = [&[0u8, 4][..], b"sztp"].concat();
        let m = with_option(
            with_option(
                client_msg(11, CLIENT_MAC, &[136], None),
                wire::OPT_VENDOR_CLASS,
                &vc,
            ),
            wire::OPT_USER_CLASS,
            &uc,
        );
        let ev = run(&d, &p, &mut b, &m).event.unwrap();
        assert_eq!(ev.rule.as_deref(), Some("arista"));
        assert_eq!(d6(&ev).vendor_class.as_deref(), Some("Arista;DCS"));
        assert_eq!(d6(&ev).enterprise_number, Some(30065));
        assert_eq!(d6(&ev).user_class, ["sztp"]);
    }

    #[test]
    fn request_binds_and_commits_the_advertised_address() {
        let (d, p) = (dhcp6(), policy(&KEA_URIS));
        let mut b = Bindings::default();
        let adv = run(
            &d,
            &p,
            &mut b,
            &client_msg(1, CLIENT_MAC, &[136], Some(&[])),
        );
        let a = ias(&adv.reply.unwrap().bytes)[0].3[0].0;
        let req = with_server_id(client_msg(3, CLIENT_MAC, &[136], Some(&[a])));
        let o = run(&d, &p, &mut b, &req);
        let r = o.reply.unwrap();
        assert_eq!(r.msg_type, MessageType::Reply);
        assert_eq!(ias(&r.bytes)[0].3, [(a, 1800, 3600)]);
        assert_eq!(o.commit.len(), 1);
        assert_eq!(o.commit[0].addr, a);
        assert_eq!(o.commit[0].expires, NOW + 3600);
        assert_eq!(o.commit[0].mac, Some(CLIENT_MAC));
        assert_eq!(d6(&o.event.unwrap()).event, Dhcp6Kind::Request);
        assert_eq!(b.active(NOW), 1);
        // for another server: dropped
        let mut other = client_msg(3, CLIENT_MAC, &[136], Some(&[a]));
        push_option(&mut other, wire::OPT_SERVERID, &[0, 2, 0, 0, 0, 1, 1]);
        assert_eq!(
            run(&d, &p, &mut b, &other).ignored,
            Some(Ignored::ForOtherServer)
        );
    }

    #[test]
    fn the_same_duid_and_iaid_get_the_same_address_from_an_empty_table() {
        // what a restart without any journal still guarantees: the hash is stable
        let (d, p) = (dhcp6(), policy(&KEA_URIS));
        let solicit = client_msg(1, CLIENT_MAC, &[], Some(&[]));
        let a1 = ias(&run(&d, &p, &mut Bindings::default(), &solicit)
            .reply
            .unwrap()
            .bytes)[0]
            .3[0]
            .0;
        let a2 = ias(&run(&d, &p, &mut Bindings::default(), &solicit)
            .reply
            .unwrap()
            .bytes)[0]
            .3[0]
            .0;
        assert_eq!(a1, a2);
        let other = client_msg(1, MacAddr([2, 0, 0, 0, 0, 3]), &[], Some(&[]));
        let a3 = ias(&run(&d, &p, &mut Bindings::default(), &other)
            .reply
            .unwrap()
            .bytes)[0]
            .3[0]
            .0;
        assert_ne!(a1, a3);
    }

    #[test]
    fn replayed_bindings_keep_an_address_the_hash_alone_would_not() {
        // pool of two; two clients whose first hashed candidate is the same address: the
        // second gets the other one, and only the journal can give it back after a restart
        let (d, p) = (dhcp6(), policy(&KEA_URIS));
        let key = |mac| IaKey {
            duid: duid_of(mac),
            iaid: 1,
        };
        let mac = |n: u8| MacAddr([2, 0, 0, 0, 0, n]);
        let pools = &d.subnets[1].pools;
        let first = |n| super::super::bindings::stable_offset(&key(mac(n)), 0, 2);
        let other = (4..=255u8).find(|&n| first(n) == first(3)).unwrap();
        let _ = pools;
        let rapid = |m: MacAddr| {
            let c = with_option(
                client_msg(1, m, &[], Some(&[])),
                wire::OPT_RAPID_COMMIT,
                &[],
            );
            relay(&c, "2001:db8:2::1", &[])
        };
        let mut b = Bindings::default();
        let mut got = Vec::new();
        for n in [3, other] {
            let o = run_at(&d, &p, &mut b, &rapid(mac(n)), &relay_meta(), NOW);
            got.push((mac(n), o.commit[0].addr));
        }
        assert_ne!(got[0].1, got[1].1);
        // restart: in the opposite order of arrival, each client still gets its address
        let mut b2 = Bindings::from_records(b.records());
        for (m, addr) in got.iter().rev() {
            let o = run_at(&d, &p, &mut b2, &rapid(*m), &relay_meta(), NOW + 10);
            assert_eq!(o.commit[0].addr, *addr);
        }
        // without the records, the later client would have taken the first one's address
        let mut empty = Bindings::default();
        let o = run_at(&d, &p, &mut empty, &rapid(got[1].0), &relay_meta(), NOW);
        assert_eq!(o.commit[0].addr, got[0].1);
    }

    #[test]
    fn rapid_commit_replies_at_once_only_when_enabled() {
        let mut d = dhcp6();
        let p = policy(&KEA_URIS);
        let mut b = Bindings::default();
        let m = with_option(
            client_msg(1, CLIENT_MAC, &[136], Some(&[])),
            wire::OPT_RAPID_COMMIT,
            &[],
        );
        let o = run(&d, &p, &mut b, &m);
        let r = o.reply.unwrap();
        assert_eq!(r.bytes[0], 7);
        assert_eq!(opt(&r.bytes, wire::OPT_RAPID_COMMIT), Some(&[][..]));
        assert_eq!(o.commit.len(), 1);
        assert_eq!(d6(&o.event.unwrap()).event, Dhcp6Kind::RapidCommit);
        d.rapid_commit = false;
        let o = run(&d, &p, &mut b, &m);
        let r = o.reply.unwrap();
        assert_eq!(r.bytes[0], 2, "Advertise");
        assert_eq!(opt(&r.bytes, wire::OPT_RAPID_COMMIT), None);
        assert!(o.commit.is_empty());
    }

    #[test]
    fn renew_extends_and_zeroes_what_it_does_not_hold() {
        let (d, p) = (dhcp6(), policy(&KEA_URIS));
        let mut b = Bindings::default();
        let m = with_option(
            client_msg(1, CLIENT_MAC, &[], Some(&[])),
            wire::OPT_RAPID_COMMIT,
            &[],
        );
        let a = run(&d, &p, &mut b, &m).commit[0].addr;
        let stray: Ipv6Addr = "2001:db8:1::dead".parse().unwrap();
        let renew = with_server_id(client_msg(5, CLIENT_MAC, &[136], Some(&[a, stray])));
        let o = run_at(&d, &p, &mut b, &renew, &meta(), NOW + 900);
        let r = o.reply.unwrap();
        assert_eq!(ias(&r.bytes)[0].3, [(a, 1800, 3600), (stray, 0, 0)]);
        assert_eq!(o.commit[0].expires, NOW + 900 + 3600);
        assert!(opt(&r.bytes, wire::OPT_V6_SZTP_REDIRECT).is_some());
        assert_eq!(d6(&o.event.unwrap()).event, Dhcp6Kind::Renew);
        // Rebind (no server id) does the same
        let rebind = client_msg(6, CLIENT_MAC, &[], Some(&[a]));
        let o = run_at(&d, &p, &mut b, &rebind, &meta(), NOW + 1500);
        assert_eq!(ias(&o.reply.unwrap().bytes)[0].3, [(a, 1800, 3600)]);
        // a Renew for a link we have no subnet for gets NoBinding
        let pkt = relay(&renew, "2001:db8:77::1", &[]);
        let o = run_at(&d, &p, &mut b, &pkt, &relay_meta(), NOW);
        assert_eq!(ias(&relay_inner(&o.reply.unwrap().bytes))[0].4, Some(3));
        // a Rebind from there is dropped: we cannot tell whether its addresses are on link
        let pkt = relay(&rebind, "2001:db8:77::1", &[]);
        assert_eq!(
            run_at(&d, &p, &mut b, &pkt, &relay_meta(), NOW).ignored,
            Some(Ignored::RebindNoSubnet)
        );
    }

    #[test]
    fn request_for_an_off_link_address_is_not_on_link() {
        let (d, p) = (dhcp6(), policy(&KEA_URIS));
        let mut b = Bindings::default();
        let req = with_server_id(client_msg(
            3,
            CLIENT_MAC,
            &[],
            Some(&["2001:db8:2::100".parse().unwrap()]),
        ));
        let o = run(&d, &p, &mut b, &req);
        assert_eq!(ias(&o.reply.unwrap().bytes)[0].4, Some(4));
        assert!(o.commit.is_empty());
        assert_eq!(d6(&o.event.unwrap()).status, Some(Dhcp6Status::NotOnLink));
    }

    #[test]
    fn decline_quarantines_and_the_next_solicit_gets_another_address() {
        let (d, p) = (dhcp6(), policy(&KEA_URIS));
        let mut b = Bindings::default();
        let m = with_option(
            client_msg(1, CLIENT_MAC, &[], Some(&[])),
            wire::OPT_RAPID_COMMIT,
            &[],
        );
        let a = run(&d, &p, &mut b, &m).commit[0].addr;
        let decline = with_server_id(client_msg(9, CLIENT_MAC, &[], Some(&[a])));
        let o = run(&d, &p, &mut b, &decline);
        let r = o.reply.unwrap();
        assert_eq!(status(&r.bytes), Some(0));
        assert_eq!(o.commit[0].state, LeaseState::Declined);
        assert_eq!(o.commit[0].expires, NOW + 3600);
        assert_eq!(d6(&o.event.unwrap()).event, Dhcp6Kind::Decline);
        let o = run(&d, &p, &mut b, &client_msg(1, CLIENT_MAC, &[], Some(&[])));
        let next = ias(&o.reply.unwrap().bytes)[0].3[0].0;
        assert_ne!(next, a);
        // nobody else gets it during the quarantine either, even when its hash says so
        assert!(!b.available_to(
            a,
            &IaKey {
                duid: vec![9; 5],
                iaid: 1
            },
            NOW + 3599
        ));
        // a second Decline of the same address: NoBinding
        let o = run(&d, &p, &mut b, &decline);
        assert_eq!(ias(&o.reply.unwrap().bytes)[0].4, Some(3));
    }

    #[test]
    fn release_frees_and_unknown_ias_get_no_binding() {
        let (d, p) = (dhcp6(), policy(&KEA_URIS));
        let mut b = Bindings::default();
        let m = with_option(
            client_msg(1, CLIENT_MAC, &[], Some(&[])),
            wire::OPT_RAPID_COMMIT,
            &[],
        );
        let a = run(&d, &p, &mut b, &m).commit[0].addr;
        let release = with_server_id(client_msg(8, CLIENT_MAC, &[], Some(&[a])));
        let o = run(&d, &p, &mut b, &release);
        assert_eq!(status(&o.reply.as_ref().unwrap().bytes), Some(0));
        assert!(ias(&o.reply.unwrap().bytes).is_empty());
        assert_eq!(o.commit[0].state, LeaseState::Released);
        assert_eq!(b.active(NOW), 0);
        let o = run(&d, &p, &mut b, &release);
        assert_eq!(ias(&o.reply.unwrap().bytes)[0].4, Some(3));
        // the released address comes back to the same IA
        let o = run(&d, &p, &mut b, &m);
        assert_eq!(o.commit[0].addr, a);
    }

    #[test]
    fn confirm_says_on_link_or_not() {
        let (d, p) = (dhcp6(), policy(&KEA_URIS));
        let mut b = Bindings::default();
        let on: Ipv6Addr = "2001:db8:1::77".parse().unwrap();
        let off: Ipv6Addr = "2001:db8:2::77".parse().unwrap();
        let o = run(&d, &p, &mut b, &client_msg(4, CLIENT_MAC, &[], Some(&[on])));
        assert_eq!(status(&o.reply.unwrap().bytes), Some(0));
        let o = run(
            &d,
            &p,
            &mut b,
            &client_msg(4, CLIENT_MAC, &[], Some(&[on, off])),
        );
        assert_eq!(status(&o.reply.unwrap().bytes), Some(4));
        assert_eq!(d6(&o.event.unwrap()).status, Some(Dhcp6Status::NotOnLink));
        let o = run(&d, &p, &mut b, &client_msg(4, CLIENT_MAC, &[], Some(&[])));
        assert_eq!(o.ignored, Some(Ignored::ConfirmWithoutAddresses));
    }

    #[test]
    fn information_request_gets_options_and_136_only() {
        let (d, p) = (dhcp6(), policy(&KEA_URIS));
        let mut b = Bindings::default();
        let o = run(
            &d,
            &p,
            &mut b,
            &client_msg(11, CLIENT_MAC, &[23, 24, 136], None),
        );
        let r = o.reply.unwrap();
        assert_eq!(r.bytes[0], 7);
        let codes: Vec<u16> = opts(&r.bytes).iter().map(|(c, _)| *c).collect();
        assert_eq!(codes, [1, 2, 23, 24, 136]);
        assert!(o.commit.is_empty());
        assert_eq!(d6(&o.event.unwrap()).event, Dhcp6Kind::InformationRequest);
        // without a client id it is still answered; with an IA it is dropped (RFC 8415 §16.12)
        let mut anon = vec![11, 1, 2, 3];
        push_option(&mut anon, wire::OPT_ORO, &[0, 136]);
        let r = run(&d, &p, &mut b, &anon).reply.unwrap();
        assert_eq!(opt(&r.bytes, wire::OPT_CLIENTID), None);
        assert!(opt(&r.bytes, wire::OPT_V6_SZTP_REDIRECT).is_some());
        let o = run(
            &d,
            &p,
            &mut b,
            &client_msg(11, CLIENT_MAC, &[136], Some(&[])),
        );
        assert_eq!(o.ignored, Some(Ignored::InformationRequestWithIa));
    }

    #[test]
    fn unicast_without_permission_gets_use_multicast() {
        let mut d = dhcp6();
        let p = policy(&KEA_URIS);
        let mut b = Bindings::default();
        let uni = RequestMeta {
            dst: "2001:db8:1::1".parse().unwrap(),
            ..meta()
        };
        let req = with_server_id(client_msg(3, CLIENT_MAC, &[136], Some(&[])));
        let o = run_at(&d, &p, &mut b, &req, &uni, NOW);
        let r = o.reply.unwrap();
        assert_eq!(status(&r.bytes), Some(5));
        let codes: Vec<u16> = opts(&r.bytes).iter().map(|(c, _)| *c).collect();
        assert_eq!(codes, [1, 2, 13], "only the identifiers and the status");
        assert!(o.commit.is_empty());
        let solicit = client_msg(1, CLIENT_MAC, &[136], Some(&[]));
        assert_eq!(
            run_at(&d, &p, &mut b, &solicit, &uni, NOW).ignored,
            Some(Ignored::UnicastNotAllowed)
        );
        // with server-unicast set, unicast is served and option 12 is offered
        d.server_unicast = Some("2001:db8:1::1".parse().unwrap());
        let o = run_at(&d, &p, &mut b, &req, &uni, NOW);
        let r = o.reply.unwrap();
        assert_eq!(ias(&r.bytes)[0].3.len(), 1);
        assert_eq!(
            opt(&r.bytes, wire::OPT_UNICAST),
            Some(&"2001:db8:1::1".parse::<Ipv6Addr>().unwrap().octets()[..])
        );
    }

    #[test]
    fn reservations_by_mac_and_by_duid() {
        let (d, p) = (dhcp6(), policy(&KEA_URIS));
        let mut b = Bindings::default();
        let o = run(
            &d,
            &p,
            &mut b,
            &client_msg(1, MacAddr([2, 0, 0, 0, 0, 0x42]), &[], Some(&[])),
        );
        assert_eq!(
            ias(&o.reply.unwrap().bytes)[0].3[0].0,
            "2001:db8:1::42".parse::<Ipv6Addr>().unwrap()
        );
        let mut m = vec![1, 0, 0, 1];
        push_option(&mut m, wire::OPT_CLIENTID, &[0, 2, 0, 0, 0, 9, b'x']);
        push_option(
            &mut m,
            wire::OPT_IA_NA,
            &[0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0],
        );
        let o = run(&d, &p, &mut b, &m);
        assert_eq!(
            ias(&o.reply.unwrap().bytes)[0].3[0].0,
            "2001:db8:1::99".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn pool_exhaustion_gives_no_addrs_avail_and_keeps_136() {
        let (d, p) = (dhcp6(), policy(&KEA_URIS));
        let mut b = Bindings::default();
        for n in 0..2u8 {
            let m = with_option(
                client_msg(1, MacAddr([2, 0, 0, 0, 1, n]), &[], Some(&[])),
                wire::OPT_RAPID_COMMIT,
                &[],
            );
            let o = run_at(
                &d,
                &p,
                &mut b,
                &relay(&m, "2001:db8:2::1", &[]),
                &relay_meta(),
                NOW,
            );
            assert_eq!(o.commit.len(), 1);
        }
        let m = client_msg(1, MacAddr([2, 0, 0, 0, 1, 9]), &[136], Some(&[]));
        let o = run_at(
            &d,
            &p,
            &mut b,
            &relay(&m, "2001:db8:2::1", &[]),
            &relay_meta(),
            NOW,
        );
        let inner = relay_inner(&o.reply.unwrap().bytes);
        assert_eq!(ias(&inner)[0].4, Some(2));
        assert!(opt(&inner, wire::OPT_V6_SZTP_REDIRECT).is_some());
        assert_eq!(
            d6(&o.event.unwrap()).status,
            Some(Dhcp6Status::NoAddrsAvail)
        );
    }

    #[test]
    fn messages_that_break_the_rules_are_dropped() {
        let (d, p) = (dhcp6(), policy(&KEA_URIS));
        let mut b = Bindings::default();
        let mut no_id = vec![1, 0, 0, 1];
        push_option(&mut no_id, wire::OPT_ORO, &[0, 136]);
        assert_eq!(
            run(&d, &p, &mut b, &no_id).ignored,
            Some(Ignored::NoClientId)
        );
        let sol_sid = with_server_id(client_msg(1, CLIENT_MAC, &[], Some(&[])));
        assert_eq!(
            run(&d, &p, &mut b, &sol_sid).ignored,
            Some(Ignored::ServerIdNotAllowed)
        );
        let req_no_sid = client_msg(3, CLIENT_MAC, &[], Some(&[]));
        assert_eq!(
            run(&d, &p, &mut b, &req_no_sid).ignored,
            Some(Ignored::ForOtherServer)
        );
        let mut short_duid = vec![1, 0, 0, 1];
        push_option(&mut short_duid, wire::OPT_CLIENTID, &[0, 1]);
        assert_eq!(
            run(&d, &p, &mut b, &short_duid).ignored,
            Some(Ignored::BadClientId)
        );
    }
}
