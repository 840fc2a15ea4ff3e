//! The probe's DHCPv6 client (RFC 8415 §18.2): Solicit with 136 in the ORO (or an
//! Information-request), as a device on a link or as a relay agent; every server that answered
//! and the URIs of option 136
//!
//! The message builders and reply readers are pure; the transports below them are the only
//! code here that touches sockets.

use std::fmt::Write as _;
use std::io::{self, IoSliceMut};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use dhcproto::v6::{DhcpOption, DhcpOptions, IAAddr, MessageType, OptionCode, IANA, ORO};
use serde_json::{json, Value};

use crate::text::Printable;

use super::dhcp4::{decode_redirect, human_duration, SztpRedirect};
use crate::dhcp::v6::wire::{
    self, options, push_option, OPT_CLIENTID, OPT_DNS_SERVERS, OPT_DOMAIN_LIST, OPT_IAADDR,
    OPT_IA_NA, OPT_PREFERENCE, OPT_RAPID_COMMIT, OPT_RELAY_MSG, OPT_SERVERID, OPT_STATUS_CODE,
    OPT_V6_SZTP_REDIRECT, RELAY_HEADER_LEN,
};
use crate::policy::MacAddr;

/// RFC 5612: the enterprise number reserved for documentation, used when the operator gives
/// a vendor class or remote-id without one.
pub(crate) const EXAMPLE_ENTERPRISE: u32 = 32473;

/// What the probe says about itself as a device (and, in relay mode, as its relay agent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Probe6Params {
    /// 3-octet transaction id (the low 24 bits are used).
    pub(crate) xid: u32,
    /// The device's DUID (DUID-LL of its MAC unless given).
    pub(crate) duid: Vec<u8>,
    pub(crate) iaid: u32,
    /// The device's MAC: option 79 in relay mode.
    pub(crate) mac: MacAddr,
    pub(crate) request_136: bool,
    /// Information-request instead of Solicit/Request.
    pub(crate) stateless: bool,
    pub(crate) rapid_commit: bool,
    /// Option 16: enterprise number and vendor-class-data.
    pub(crate) vendor_class: Option<(u32, String)>,
    /// Option 15 entries.
    pub(crate) user_class: Vec<String>,
    pub(crate) relay: Option<Relay6>,
}

/// The relay agent the probe plays with `--relay6` (RFC 8415 §19.1; RFC 8357 Relay Source
/// Port, so the answer comes back to the probe's own port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Relay6 {
    /// Selects the server's subnet; `::` leaves it to the server's interface rules.
    pub(crate) link_address: Ipv6Addr,
    /// The device's link-local address (derived from its MAC).
    pub(crate) peer_address: Ipv6Addr,
    pub(crate) interface_id: Option<Vec<u8>>,
    pub(crate) remote_id: Option<Vec<u8>>,
}

impl Probe6Params {
    /// A device with DUID-LL of `mac`, IAID 1, asking for option 136.
    pub(crate) fn new(xid: u32, mac: MacAddr) -> Probe6Params {
        Probe6Params {
            xid,
            duid: wire::duid_ll(mac),
            iaid: 1,
            mac,
            request_136: true,
            stateless: false,
            rapid_commit: false,
            vendor_class: None,
            user_class: Vec::new(),
            relay: None,
        }
    }

    fn xid3(&self) -> [u8; 3] {
        let b = self.xid.to_be_bytes();
        [b[1], b[2], b[3]]
    }

    /// Option 6: DNS servers and search list, then 136 (RFC 8572 §8.2) unless turned off.
    pub(crate) fn oro(&self) -> Vec<u16> {
        let mut o = vec![wire::OPT_DNS_SERVERS, wire::OPT_DOMAIN_LIST];
        if self.request_136 {
            o.push(OPT_V6_SZTP_REDIRECT);
        }
        o
    }
}

/// The link-local address a device with `mac` forms (modified EUI-64, RFC 4291 App. A).
pub(crate) fn link_local_of(mac: MacAddr) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([m[0] ^ 0x02, m[1]]),
        u16::from_be_bytes([m[2], 0xff]),
        u16::from_be_bytes([0xfe, m[3]]),
        u16::from_be_bytes([m[4], m[5]]),
    )
}

/// `u16 length ‖ data` per entry (RFC 8415 §21.15/§21.16). dhcproto's encoder for these two
/// options writes the number of entries as the option length, so they are built here.
fn opaque_list<S: AsRef<[u8]>>(items: &[S]) -> Vec<u8> {
    let mut out = Vec::new();
    for i in items {
        let b = i.as_ref();
        let b = &b[..b.len().min(usize::from(u16::MAX))];
        out.extend_from_slice(&(b.len() as u16).to_be_bytes());
        out.extend_from_slice(b);
    }
    out
}

/// A client message of type `t` with the device's identity and requests; `ia_addr` is the
/// address of the chosen Advertise (Request, Release) and `server_id` the server addressed.
pub(crate) fn build(
    p: &Probe6Params,
    t: MessageType,
    server_id: Option<&[u8]>,
    ia_addr: Option<Ipv6Addr>,
) -> Vec<u8> {
    let mut opts = DhcpOptions::new();
    opts.insert(DhcpOption::ClientId(p.duid.clone()));
    if let Some(s) = server_id {
        opts.insert(DhcpOption::ServerId(s.to_vec()));
    }
    opts.insert(DhcpOption::ElapsedTime(0));
    if t != MessageType::Release {
        opts.insert(DhcpOption::ORO(ORO {
            opts: p.oro().into_iter().map(OptionCode::from).collect(),
        }));
    }
    if t != MessageType::InformationRequest {
        let addrs: DhcpOptions = ia_addr
            .map(|a| {
                DhcpOption::IAAddr(IAAddr {
                    addr: a,
                    preferred_life: 0,
                    valid_life: 0,
                    opts: DhcpOptions::new(),
                })
            })
            .into_iter()
            .collect();
        opts.insert(DhcpOption::IANA(IANA {
            id: p.iaid,
            t1: 0,
            t2: 0,
            opts: addrs,
        }));
    }
    if t == MessageType::Solicit && p.rapid_commit {
        opts.insert(DhcpOption::RapidCommit);
    }
    let mut msg = wire::encode(t, p.xid3(), &opts);
    if t != MessageType::Release {
        if let Some((num, data)) = &p.vendor_class {
            let mut v = num.to_be_bytes().to_vec();
            v.extend_from_slice(&opaque_list(&[data.as_bytes()]));
            push_option(&mut msg, wire::OPT_VENDOR_CLASS, &v);
        }
        if !p.user_class.is_empty() {
            push_option(&mut msg, wire::OPT_USER_CLASS, &opaque_list(&p.user_class));
        }
    }
    match &p.relay {
        Some(r) => relay_forward(r, p.mac, &msg),
        None => msg,
    }
}

/// Relay-forward around `inner` (RFC 8415 §9.1) with interface-id (18), remote-id (37),
/// client link-layer address (79, RFC 6939) and Relay Source Port (135, RFC 8357).
pub(crate) fn relay_forward(r: &Relay6, mac: MacAddr, inner: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(inner.len() + 80);
    m.push(MessageType::RelayForw.into());
    m.push(0);
    m.extend_from_slice(&r.link_address.octets());
    m.extend_from_slice(&r.peer_address.octets());
    if let Some(id) = &r.interface_id {
        push_option(&mut m, wire::OPT_INTERFACE_ID, id);
    }
    if let Some(id) = &r.remote_id {
        let mut v = EXAMPLE_ENTERPRISE.to_be_bytes().to_vec();
        v.extend_from_slice(id);
        push_option(&mut m, wire::OPT_REMOTE_ID, &v);
    }
    let mut ll = wire::HTYPE_ETHERNET.to_be_bytes().to_vec();
    ll.extend_from_slice(&mac.0);
    push_option(&mut m, wire::OPT_CLIENT_LINKLAYER_ADDR, &ll);
    push_option(&mut m, wire::OPT_RELAY_SOURCE_PORT, &[0, 0]);
    push_option(&mut m, OPT_RELAY_MSG, inner);
    m
}

/// A server message, as far as the probe cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply6 {
    pub(crate) msg_type: MessageType,
    pub(crate) server_id: Vec<u8>,
    /// Option 7 (0 when absent).
    pub(crate) preference: u8,
    /// First IA_NA's first address: (address, preferred, valid).
    pub(crate) address: Option<(Ipv6Addr, u32, u32)>,
    /// First IA_NA's status code, if any.
    pub(crate) ia_status: Option<(u16, String)>,
    /// Message-level status code, if any.
    pub(crate) status: Option<(u16, String)>,
    pub(crate) dns: Vec<Ipv6Addr>,
    pub(crate) domains: Vec<String>,
    pub(crate) rapid_commit: bool,
    /// Option 136 value; the number of instances is in `sztp_instances`.
    pub(crate) sztp_redirect: Option<Vec<u8>>,
    pub(crate) sztp_instances: usize,
    /// Option codes in wire order.
    pub(crate) options_seen: Vec<u16>,
}

fn status_of(v: &[u8]) -> Option<(u16, String)> {
    let code = u16::from_be_bytes([*v.first()?, *v.get(1)?]);
    Some((code, String::from_utf8_lossy(&v[2..]).into_owned()))
}

fn names(mut b: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    while let Some((&n, rest)) = b.split_first() {
        if n == 0 {
            out.push(cur.join("."));
            cur.clear();
            b = rest;
            continue;
        }
        let Some(label) = rest.get(..usize::from(n)) else {
            break;
        };
        cur.push(String::from_utf8_lossy(label).into_owned());
        b = &rest[usize::from(n)..];
    }
    out
}

/// Reads a server's answer to transaction `xid` of the client `duid`; in relay mode, first
/// unwraps the Relay-reply. `Err` says why it is not ours or not valid.
pub(crate) fn parse_reply(
    bytes: &[u8],
    xid: u32,
    duid: &[u8],
    relayed: bool,
) -> Result<Reply6, String> {
    let msg = if relayed {
        if bytes.first() != Some(&u8::from(MessageType::RelayRepl)) {
            return Err("not a Relay-reply".into());
        }
        let inner = bytes
            .get(RELAY_HEADER_LEN..)
            .ok_or("short Relay-reply")
            .and_then(|b| options(b).map_err(|_| "bad Relay-reply options"))?
            .into_iter()
            .find(|(c, _)| *c == OPT_RELAY_MSG)
            .map(|(_, v)| v)
            .ok_or("Relay-reply without a relay message")?;
        inner
    } else {
        bytes
    };
    if msg.len() < 4 {
        return Err("too short".into());
    }
    let t = MessageType::from(msg[0]);
    if !matches!(t, MessageType::Advertise | MessageType::Reply) {
        return Err(format!("{t:?} is not an answer"));
    }
    if u32::from_be_bytes([0, msg[1], msg[2], msg[3]]) != xid & 0x00ff_ffff {
        return Err("transaction id is not ours".into());
    }
    let opts = options(&msg[4..]).map_err(|e| format!("options: {}", e.as_str()))?;
    let mut r = Reply6 {
        msg_type: t,
        server_id: Vec::new(),
        preference: 0,
        address: None,
        ia_status: None,
        status: None,
        dns: Vec::new(),
        domains: Vec::new(),
        rapid_commit: false,
        sztp_redirect: None,
        sztp_instances: 0,
        options_seen: opts.iter().map(|(c, _)| *c).collect(),
    };
    let mut client_ok = false;
    let mut first_ia = true;
    for (code, v) in opts {
        match code {
            OPT_CLIENTID => client_ok = v == duid,
            OPT_SERVERID => r.server_id = v.to_vec(),
            OPT_PREFERENCE => r.preference = v.first().copied().unwrap_or(0),
            OPT_STATUS_CODE => r.status = status_of(v),
            OPT_RAPID_COMMIT => r.rapid_commit = true,
            OPT_DNS_SERVERS => {
                r.dns = v
                    .chunks_exact(16)
                    .map(|c| Ipv6Addr::from(<[u8; 16]>::try_from(c).expect("16 octets")))
                    .collect()
            }
            OPT_DOMAIN_LIST => r.domains = names(v),
            OPT_V6_SZTP_REDIRECT => {
                r.sztp_instances += 1;
                r.sztp_redirect.get_or_insert_with(|| v.to_vec());
            }
            OPT_IA_NA if first_ia && v.len() >= 12 => {
                first_ia = false;
                for (c, x) in options(&v[12..]).map_err(|_| "bad IA_NA options")? {
                    match c {
                        OPT_IAADDR if x.len() >= 24 && r.address.is_none() => {
                            let a = Ipv6Addr::from(<[u8; 16]>::try_from(&x[..16]).expect("16"));
                            let p = u32::from_be_bytes([x[16], x[17], x[18], x[19]]);
                            let l = u32::from_be_bytes([x[20], x[21], x[22], x[23]]);
                            r.address = Some((a, p, l));
                        }
                        OPT_STATUS_CODE => r.ia_status = status_of(x),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if !client_ok {
        return Err("client id is not ours".into());
    }
    if r.server_id.is_empty() {
        return Err("no server id".into());
    }
    Ok(r)
}

/// One server that answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// Source address of its datagram (the server, or its relay path).
    pub(crate) source: SocketAddr,
    pub(crate) reply: Reply6,
}

/// How the exchange ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome6 {
    NoServer,
    /// The chosen server did not answer the Request.
    NoReply,
    /// A Reply whose IA (or message) carries a failure status.
    Refused {
        code: u16,
        message: String,
    },
    /// A Reply: bound (stateful) or configured (stateless).
    Reply(Box<Reply6>),
}

/// Everything the DHCPv6 probe learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Probe6Report {
    pub(crate) heading: String,
    pub(crate) interface: String,
    /// Every server that answered the Solicit (or Information-request), by server DUID.
    pub(crate) answers: Vec<Answer>,
    pub(crate) outcome: Outcome6,
    pub(crate) released: bool,
}

fn add_answer(answers: &mut Vec<Answer>, a: Answer) {
    if !answers
        .iter()
        .any(|x| x.reply.server_id == a.reply.server_id)
    {
        answers.push(a);
    }
}

impl Probe6Report {
    /// 0 a Reply, 2 refused or no Reply, 3 no server answered.
    pub(crate) fn exit_code(&self) -> i32 {
        match self.outcome {
            Outcome6::Reply(_) => 0,
            Outcome6::NoServer => 3,
            Outcome6::NoReply | Outcome6::Refused { .. } => 2,
        }
    }

    pub(crate) fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.answers.len() > 1 {
            w.push(format!(
                "{} DHCPv6 servers answered on {}: a classic staging failure",
                self.answers.len(),
                self.interface
            ));
        }
        for a in &self.answers {
            if a.reply.sztp_instances > 1 {
                w.push(format!(
                    "server {} sent option 136 {} times (RFC 8572 §8.2: one instance)",
                    hex::encode(&a.reply.server_id),
                    a.reply.sztp_instances
                ));
            }
        }
        w
    }

    fn reply(&self) -> Option<&Reply6> {
        match &self.outcome {
            Outcome6::Reply(r) => Some(r),
            _ => None,
        }
    }

    /// Option 136 of the Reply, else of the first answer.
    pub(crate) fn redirect(&self) -> Option<SztpRedirect> {
        self.reply()
            .and_then(|r| r.sztp_redirect.clone())
            .or_else(|| {
                self.answers
                    .first()
                    .and_then(|a| a.reply.sztp_redirect.clone())
            })
            .map(|p| decode_redirect(&p))
    }

    /// Human output; warnings go to stderr through [`Probe6Report::warnings`].
    pub(crate) fn render_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}", self.heading);
        for a in &self.answers {
            let what = match a.reply.address {
                Some((addr, _, _)) => format!("{} {addr}", msg_word(a.reply.msg_type)),
                None => msg_word(a.reply.msg_type).to_string(),
            };
            let _ = writeln!(
                s,
                "server {} (from {}) answered: {what}, option 136 {}",
                hex::encode(&a.reply.server_id),
                a.source.ip(),
                if a.reply.sztp_redirect.is_some() {
                    "present"
                } else {
                    "absent"
                }
            );
        }
        match &self.outcome {
            Outcome6::NoServer => {
                let _ = writeln!(s, "no DHCPv6 server answered");
            }
            Outcome6::NoReply => {
                let _ = writeln!(s, "no reply to the request");
            }
            Outcome6::Refused { code, message } => {
                let _ = writeln!(s, "refused: status {code} ({})", status_name(*code));
                if !message.is_empty() {
                    let _ = writeln!(s, "  {}", Printable(message));
                }
            }
            Outcome6::Reply(r) => {
                let mut line = match r.address {
                    Some((a, p, v)) => format!(
                        "reply {a} preferred {} valid {}",
                        human_duration(p),
                        human_duration(v)
                    ),
                    None => "reply (no address: stateless)".to_string(),
                };
                if r.rapid_commit {
                    line.push_str(" rapid-commit");
                }
                if !r.dns.is_empty() {
                    let d: Vec<String> = r.dns.iter().map(|a| a.to_string()).collect();
                    let _ = write!(line, " dns {}", d.join(","));
                }
                if !r.domains.is_empty() {
                    let _ = write!(line, " domain-search {}", Printable(&r.domains.join(",")));
                }
                let _ = writeln!(s, "{line}");
                if self.released {
                    if let Some((a, _, _)) = r.address {
                        let _ = writeln!(s, "released {a}");
                    }
                }
            }
        }
        match self.redirect() {
            None => {
                if self.reply().is_some() {
                    let _ = writeln!(s, "no sztp redirect (option 136 absent)");
                }
            }
            Some(r) => {
                let n = r.uris.len();
                let _ = writeln!(
                    s,
                    "sztp redirect (option 136, {} encoding, {n} URI{}):",
                    r.encoding.as_str(),
                    if n == 1 { "" } else { "s" }
                );
                for (i, u) in r.uris.iter().enumerate() {
                    let _ = writeln!(s, "  {}. {}", i + 1, Printable(u));
                }
                for u in &r.ignored {
                    let _ = writeln!(s, "  ignored: \"{}\"", Printable(u));
                }
                if r.truncated {
                    let _ = writeln!(s, "  truncated: the list ends inside an entry");
                }
                if r.uris.is_empty() {
                    let _ = writeln!(s, "  no usable URI: a device discards this option");
                }
            }
        }
        s
    }

    pub(crate) fn to_json(&self) -> Value {
        let servers: Vec<Value> = self
            .answers
            .iter()
            .map(|a| {
                json!({
                    "server_duid": hex::encode(&a.reply.server_id),
                    "source": a.source.ip().to_string(),
                    "message": msg_word(a.reply.msg_type),
                    "address": a.reply.address.map(|x| x.0.to_string()),
                    "preference": a.reply.preference,
                    "option_136": a.reply.sztp_redirect.is_some(),
                })
            })
            .collect();
        let (outcome, status) = match &self.outcome {
            Outcome6::NoServer => ("no-server", None),
            Outcome6::NoReply => ("no-reply", None),
            Outcome6::Refused { code, message } => (
                "refused",
                Some(json!({"code": code, "name": status_name(*code), "message": message})),
            ),
            Outcome6::Reply(_) => ("reply", None),
        };
        let r = self.reply();
        let redirect = self.redirect();
        json!({
            "servers": servers,
            "outcome": outcome,
            "status": status,
            "address": r.and_then(|r| r.address).map(|a| a.0.to_string()),
            "preferred_lifetime": r.and_then(|r| r.address).map(|a| a.1),
            "valid_lifetime": r.and_then(|r| r.address).map(|a| a.2),
            "rapid_commit": r.is_some_and(|r| r.rapid_commit),
            "dns": r.map(|r| r.dns.iter().map(|a| a.to_string()).collect::<Vec<_>>()).unwrap_or_default(),
            "domain_search": r.map(|r| r.domains.clone()).unwrap_or_default(),
            "encoding": redirect.as_ref().map(|x| x.encoding.as_str()),
            "uris": redirect.as_ref().map(|x| x.uris.clone()).unwrap_or_default(),
            "ignored": redirect.as_ref().map(|x| x.ignored.clone()).unwrap_or_default(),
            "truncated": redirect.as_ref().is_some_and(|x| x.truncated),
            "options_seen": r.map(|r| r.options_seen.clone()).unwrap_or_default(),
            "released": self.released,
            "warnings": self.warnings(),
            "exit_code": self.exit_code(),
        })
    }
}

fn msg_word(t: MessageType) -> &'static str {
    match t {
        MessageType::Advertise => "advertise",
        _ => "reply",
    }
}

/// RFC 8415 §21.13 status names.
pub(crate) fn status_name(code: u16) -> &'static str {
    match code {
        0 => "Success",
        1 => "UnspecFail",
        2 => "NoAddrsAvail",
        3 => "NoBinding",
        4 => "NotOnLink",
        5 => "UseMulticast",
        6 => "NoPrefixAvail",
        _ => "unknown",
    }
}

/// Moves DHCPv6 messages; the exchange knows nothing of sockets.
pub(crate) trait Transport6 {
    /// To all servers (ff02::1:2 on the link, or the relay target).
    fn send(&mut self, msg: &[u8]) -> io::Result<()>;
    /// The next datagram, or `None` once `deadline` passes.
    fn recv(&mut self, deadline: Instant) -> io::Result<Option<(SocketAddr, Vec<u8>)>>;
}

/// A UDP socket: device mode (bound to `[::]:546` on the interface, sending to ff02::1:2) or
/// relay mode (any port, sending to the server).
pub(crate) struct UdpTransport6 {
    socket: UdpSocket,
    to: SocketAddrV6,
}

impl UdpTransport6 {
    /// Device mode on `iface`: needs the right to bind port 546 (root or
    /// CAP_NET_BIND_SERVICE), no address beyond the link-local one.
    pub(crate) fn device(iface: &str) -> io::Result<UdpTransport6> {
        use socket2::{Domain, Protocol, Socket, Type};
        let index = nix::net::if_::if_nametoindex(iface).map_err(|_| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no such interface {iface:?}"),
            )
        })?;
        let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_only_v6(true)?;
        s.set_reuse_address(true)?;
        s.bind_device(Some(iface.as_bytes()))?;
        s.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, wire::CLIENT_PORT)).into())?;
        s.set_multicast_if_v6(index)?;
        Ok(UdpTransport6 {
            socket: s.into(),
            to: SocketAddrV6::new(
                wire::ALL_DHCP_RELAY_AGENTS_AND_SERVERS,
                wire::SERVER_PORT,
                0,
                index,
            ),
        })
    }

    /// Relay mode: bound to `bind`, sending to `server`.
    pub(crate) fn relay(bind: SocketAddr, server: SocketAddrV6) -> io::Result<UdpTransport6> {
        Ok(UdpTransport6 {
            socket: UdpSocket::bind(bind)?,
            to: server,
        })
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

impl Transport6 for UdpTransport6 {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.socket.send_to(msg, self.to).map(|_| ())
    }

    fn recv(&mut self, deadline: Instant) -> io::Result<Option<(SocketAddr, Vec<u8>)>> {
        let mut buf = vec![0u8; 65536];
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        self.socket.set_read_timeout(Some(deadline - now))?;
        let mut iov = [IoSliceMut::new(&mut buf)];
        match nix::sys::socket::recvmsg::<nix::sys::socket::SockaddrIn6>(
            self.socket.as_raw_fd(),
            &mut iov,
            None,
            nix::sys::socket::MsgFlags::empty(),
        ) {
            Ok(m) => {
                let n = m.bytes;
                let from = m.address.map(SocketAddrV6::from);
                let Some(from) = from else { return Ok(None) };
                Ok(Some((SocketAddr::V6(from), buf[..n].to_vec())))
            }
            Err(nix::errno::Errno::EAGAIN) => Ok(None),
            Err(e) => Err(io::Error::from(e)),
        }
    }
}

/// Timing of the exchange.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing6 {
    /// How long each Solicit collects Advertises, and each Request waits.
    pub(crate) wait: Duration,
    /// Sends of each message before giving up.
    pub(crate) attempts: u32,
}

fn collect<T: Transport6>(
    t: &mut T,
    p: &Probe6Params,
    msg: &[u8],
    timing: Timing6,
    stop_at_first: bool,
    mut keep: impl FnMut(Answer),
) -> io::Result<bool> {
    let relayed = p.relay.is_some();
    let mut any = false;
    for _ in 0..timing.attempts.max(1) {
        t.send(msg)?;
        let deadline = Instant::now() + timing.wait;
        while let Some((source, bytes)) = t.recv(deadline)? {
            match parse_reply(&bytes, p.xid, &p.duid, relayed) {
                Ok(reply) => {
                    any = true;
                    keep(Answer { source, reply });
                    if stop_at_first {
                        return Ok(true);
                    }
                }
                Err(why) => tracing::debug!(%why, "answer ignored"),
            }
        }
        if any {
            break;
        }
    }
    Ok(any)
}

fn failure(r: &Reply6) -> Option<(u16, String)> {
    r.status
        .clone()
        .filter(|s| s.0 != 0)
        .or_else(|| r.ia_status.clone().filter(|s| s.0 != 0))
}

/// Solicit (collecting every Advertise), Request to the most preferred, optionally Release;
/// or, stateless, one Information-request collecting every Reply.
pub(crate) fn run<T: Transport6>(
    t: &mut T,
    p: &Probe6Params,
    timing: Timing6,
    release: bool,
    heading: String,
    interface: String,
) -> io::Result<Probe6Report> {
    let mut report = Probe6Report {
        heading,
        interface,
        answers: Vec::new(),
        outcome: Outcome6::NoServer,
        released: false,
    };
    let first = if p.stateless {
        MessageType::InformationRequest
    } else {
        MessageType::Solicit
    };
    let msg = build(p, first, None, None);
    collect(t, p, &msg, timing, false, |a| {
        add_answer(&mut report.answers, a)
    })?;
    // RFC 8415 §18.2.9: the highest preference wins; among equals, the first to answer
    let Some(chosen) = report
        .answers
        .iter()
        .enumerate()
        .max_by_key(|(i, a)| (a.reply.preference, std::cmp::Reverse(*i)))
        .map(|(_, a)| a.clone())
    else {
        return Ok(report);
    };
    let done = |r: Reply6| match failure(&r) {
        Some((code, message)) => Outcome6::Refused { code, message },
        None => Outcome6::Reply(Box::new(r)),
    };
    if p.stateless || chosen.reply.msg_type == MessageType::Reply {
        // an Information-request's Reply, or a Reply to a Solicit with Rapid Commit
        report.outcome = done(chosen.reply);
        return Ok(report);
    }
    if let Some((code, message)) = failure(&chosen.reply) {
        report.outcome = Outcome6::Refused { code, message };
        return Ok(report);
    }
    report.outcome = Outcome6::NoReply;
    let addr = chosen.reply.address.map(|a| a.0);
    let req = build(p, MessageType::Request, Some(&chosen.reply.server_id), addr);
    let mut got = None;
    collect(t, p, &req, timing, true, |a| {
        if a.reply.server_id == chosen.reply.server_id && a.reply.msg_type == MessageType::Reply {
            got = Some(a.reply);
        }
    })?;
    if let Some(r) = got {
        report.outcome = done(r);
    }
    if release {
        if let Outcome6::Reply(r) = &report.outcome {
            if let Some((a, _, _)) = r.address {
                t.send(&build(p, MessageType::Release, Some(&r.server_id), Some(a)))?;
                report.released = true;
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::v4::handler::tests::{policy, KEA_URIS};
    use crate::dhcp::v6::bindings::Bindings;
    use crate::dhcp::v6::handler::{self, tests as h};
    use std::collections::VecDeque;

    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 7]);

    #[test]
    fn link_local_from_mac() {
        assert_eq!(
            link_local_of(MacAddr([0x02, 0, 0, 0, 0, 0x02])),
            "fe80::ff:fe00:2".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            link_local_of(MacAddr([0x00, 0x1c, 0x73, 0xaa, 0xbb, 0xcc])),
            "fe80::21c:73ff:feaa:bbcc".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn solicit_wire_lists_136_and_classes() {
        let mut p = Probe6Params::new(0x00ab_cdef, MAC);
        p.vendor_class = Some((30065, "Arista;DCS".into()));
        p.user_class = vec!["sztp".into(), "x".into()];
        let b = build(&p, MessageType::Solicit, None, None);
        assert_eq!(&b[..4], &[1, 0xab, 0xcd, 0xef]);
        let o = options(&b[4..]).unwrap();
        let get = |c| o.iter().find(|(x, _)| *x == c).map(|(_, v)| *v).unwrap();
        assert_eq!(get(OPT_CLIENTID), &wire::duid_ll(MAC)[..]);
        assert_eq!(get(wire::OPT_ORO), &[0, 23, 0, 24, 0, 136]);
        assert_eq!(get(OPT_IA_NA), &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            get(wire::OPT_VENDOR_CLASS),
            b"\x00\x00\x75\x71\x00\x0aArista;DCS"
        );
        assert_eq!(get(wire::OPT_USER_CLASS), b"\x00\x04sztp\x00\x01x");
        // and our own server reads them back as the device meant them
        let r = wire::decode(&b).unwrap();
        assert_eq!(r.vendor_class(), Some((30065, "Arista;DCS".into())));
        assert_eq!(r.user_classes(), ["sztp", "x"]);
        p.request_136 = false;
        p.stateless = true;
        let b = build(&p, MessageType::InformationRequest, None, None);
        let o = options(&b[4..]).unwrap();
        assert!(o.iter().all(|(c, _)| *c != OPT_IA_NA));
        assert_eq!(
            o.iter().find(|(c, _)| *c == wire::OPT_ORO).unwrap().1,
            &[0, 23, 0, 24]
        );
    }

    /// A network of servers that run our handler, one answer per send.
    struct Servers {
        sent: Vec<Vec<u8>>,
        pending: VecDeque<(SocketAddr, Vec<u8>)>,
        bindings: Vec<Bindings>,
        duids: Vec<Vec<u8>>,
        drop_first: bool,
    }

    impl Transport6 for Servers {
        fn send(&mut self, msg: &[u8]) -> io::Result<()> {
            self.sent.push(msg.to_vec());
            if std::mem::take(&mut self.drop_first) {
                return Ok(());
            }
            let req = wire::decode(msg).unwrap();
            let d = h::dhcp6();
            let p = policy(&KEA_URIS);
            for (i, duid) in self.duids.iter().enumerate() {
                let ctx = handler::Context {
                    dhcp6: &d,
                    policy: &p,
                    server_duid: duid,
                };
                let o = handler::handle(&ctx, &mut self.bindings[i], &req, &h::meta(), 1000);
                if let Some(r) = o.reply {
                    let from = SocketAddr::from(([0xfe80, 0, 0, 0, 0, 0, 0, i as u16 + 1], 547));
                    self.pending.push_back((from, r.bytes));
                }
            }
            Ok(())
        }
        fn recv(&mut self, _deadline: Instant) -> io::Result<Option<(SocketAddr, Vec<u8>)>> {
            Ok(self.pending.pop_front())
        }
    }

    fn servers(n: usize) -> Servers {
        Servers {
            sent: Vec::new(),
            pending: VecDeque::new(),
            bindings: (0..n).map(|_| Bindings::default()).collect(),
            duids: (0..n).map(|i| vec![0, 2, 0, 0, 0, 9, i as u8]).collect(),
            drop_first: false,
        }
    }

    fn timing() -> Timing6 {
        Timing6 {
            wait: Duration::from_millis(1),
            attempts: 3,
        }
    }

    #[test]
    fn solicit_request_release_against_two_servers() {
        let mut net = servers(2);
        net.drop_first = true;
        let p = Probe6Params::new(0x0012_3456, MAC);
        let r = run(&mut net, &p, timing(), true, "h".into(), "eth1".into()).unwrap();
        assert_eq!(r.answers.len(), 2);
        assert_eq!(r.exit_code(), 0);
        assert_eq!(r.redirect().unwrap().uris, KEA_URIS);
        assert!(r.released);
        assert_eq!(r.warnings().len(), 1, "{:?}", r.warnings());
        // Solicit (lost), Solicit, Request, Release
        assert_eq!(net.sent.len(), 4);
        assert_eq!(net.sent[0], net.sent[1], "retransmitted unchanged");
        assert_eq!(net.sent[2][0], 3);
        assert_eq!(net.sent[3][0], 8);
        let text = r.render_text();
        assert!(
            text.contains("sztp redirect (option 136, rfc8572 encoding, 2 URIs)"),
            "{text}"
        );
        assert!(
            text.contains("  1. https://sztp1.example.test:8443"),
            "{text}"
        );
        let j = r.to_json();
        assert_eq!(j["outcome"], "reply");
        assert_eq!(j["servers"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_servers_status_message_is_printed_escaped() {
        let r = Probe6Report {
            heading: "h".into(),
            interface: "eth1".into(),
            answers: Vec::new(),
            outcome: Outcome6::Refused {
                code: 2,
                message: "none\u{1b}[2J\u{202e}left".into(),
            },
            released: false,
        };
        let text = r.render_text();
        assert!(text.contains("  none\\u{1b}[2J\\u{202e}left\n"), "{text:?}");
        assert!(!text.contains('\u{1b}') && !text.contains('\u{202e}'));
    }

    #[test]
    fn stateless_and_relayed() {
        let mut net = servers(1);
        let mut p = Probe6Params::new(7, MAC);
        p.stateless = true;
        p.relay = Some(Relay6 {
            link_address: "2001:db8:2::1".parse().unwrap(),
            peer_address: link_local_of(MAC),
            interface_id: Some(b"port7".to_vec()),
            remote_id: Some(b"sw1".to_vec()),
        });
        let r = run(&mut net, &p, timing(), false, "h".into(), "lo".into()).unwrap();
        assert_eq!(r.exit_code(), 0);
        assert_eq!(r.redirect().unwrap().uris, KEA_URIS);
        let sent = wire::decode(&net.sent[0]).unwrap();
        assert_eq!(sent.msg_type, MessageType::InformationRequest);
        let hop = &sent.relays[0];
        assert!(hop.relay_source_port);
        assert_eq!(hop.interface_id.as_deref(), Some(&b"port7"[..]));
        assert_eq!(hop.remote_id, Some((EXAMPLE_ENTERPRISE, b"sw1".to_vec())));
        assert_eq!(sent.mac(), Some(MAC));
        assert!(r.warnings().is_empty());
    }

    #[test]
    fn silence_and_refusal() {
        let mut quiet = servers(0);
        let p = Probe6Params::new(7, MAC);
        let r = run(&mut quiet, &p, timing(), false, "h".into(), "x".into()).unwrap();
        assert_eq!(r.exit_code(), 3);
        assert_eq!(quiet.sent.len(), 3);
        // an answer for another client or transaction is not ours
        let mut net = servers(1);
        net.send(&build(&p, MessageType::Solicit, None, None))
            .unwrap();
        let (_, adv) = net.pending.pop_front().unwrap();
        assert!(parse_reply(&adv, 8, &p.duid, false).is_err());
        assert!(parse_reply(&adv, 7, &[0, 3, 0, 1, 9, 9, 9, 9, 9, 9], false).is_err());
        assert!(parse_reply(&adv, 7, &p.duid, true).is_err());
        let ok = parse_reply(&adv, 7, &p.duid, false).unwrap();
        assert_eq!(ok.sztp_instances, 1);
        assert_eq!(ok.dns, ["2001:db8:1::1".parse::<Ipv6Addr>().unwrap()]);
        assert_eq!(ok.domains, ["staging.example.com"]);
    }
}
