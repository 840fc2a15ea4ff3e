//! The probe's DHCPv4 client, pure: builds DISCOVER/REQUEST/RELEASE, reads replies, renders the report

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use dhcproto::v4::{
    relay::{RelayAgentInformation, RelayCode, RelayInfo, UnknownInfo},
    DhcpOption, Flags, Message, MessageType, Opcode, OptionCode, UnknownOption,
};
use dhcproto::{Decodable, Decoder, Encodable};
use serde_json::{json, Value};

use crate::policy::MacAddr;
use crate::sztp::decode_list;
use crate::text::Printable;

pub(crate) use crate::dhcp::v4::wire::{
    concat_option, raw_options, OPT_SZTP_REDIRECT, RAI_RELAY_PORT,
};

/// What the probe says about itself as a device (and, in relay mode, as its own relay agent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProbeParams {
    pub(crate) xid: u32,
    pub(crate) chaddr: MacAddr,
    pub(crate) request_143: bool,
    pub(crate) vendor_class: Option<String>,
    pub(crate) user_class: Vec<String>,
    pub(crate) client_id: Option<Vec<u8>>,
    pub(crate) hostname: Option<String>,
    pub(crate) max_size: Option<u16>,
    pub(crate) relay: Option<RelayAgent>,
}

/// The relay agent the probe plays in relay mode (RFC 3046, RFC 3527, RFC 8357).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RelayAgent {
    pub(crate) giaddr: Ipv4Addr,
    pub(crate) link_selection: Option<Ipv4Addr>,
    pub(crate) circuit_id: Option<Vec<u8>>,
    pub(crate) remote_id: Option<Vec<u8>>,
}

impl ProbeParams {
    pub(crate) fn new(xid: u32, chaddr: MacAddr) -> ProbeParams {
        ProbeParams {
            xid,
            chaddr,
            request_143: true,
            vendor_class: None,
            user_class: Vec::new(),
            client_id: None,
            hostname: None,
            max_size: None,
            relay: None,
        }
    }

    /// Option 55: the usual network options, then 143 (RFC 8572 §8.1) unless turned off.
    pub(crate) fn parameter_request_list(&self) -> Vec<u8> {
        let mut prl = vec![1, 3, 6, 15, 119];
        if self.request_143 {
            prl.push(OPT_SZTP_REDIRECT);
        }
        prl
    }
}

fn unknown(code: u8, data: Vec<u8>) -> DhcpOption {
    DhcpOption::Unknown(UnknownOption::new(OptionCode::from(code), data))
}

/// RFC 3004 user class: each instance is `len ‖ data`.
pub(crate) fn user_class_data(instances: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for i in instances {
        let b = &i.as_bytes()[..i.len().min(255)];
        out.push(b.len() as u8);
        out.extend_from_slice(b);
    }
    out
}

/// Option 82 as the probe's relay agent sends it. Sub-option 19 has length 0: RFC 8357 §5.1
/// says the server takes the port from the UDP source port of the relayed message.
pub(crate) fn relay_agent_information(r: &RelayAgent) -> RelayAgentInformation {
    let mut info = RelayAgentInformation::default();
    if let Some(c) = &r.circuit_id {
        info.insert(RelayInfo::AgentCircuitId(c.clone()));
    }
    if let Some(c) = &r.remote_id {
        info.insert(RelayInfo::AgentRemoteId(c.clone()));
    }
    if let Some(a) = r.link_selection {
        info.insert(RelayInfo::LinkSelection(a));
    }
    info.insert(RelayInfo::Unknown(UnknownInfo::new(
        RelayCode::from(RAI_RELAY_PORT),
        Vec::new(),
    )));
    info
}

fn base(p: &ProbeParams, msg_type: MessageType) -> Message {
    let giaddr = p.relay.as_ref().map_or(Ipv4Addr::UNSPECIFIED, |r| r.giaddr);
    let mut m = Message::new_with_id(
        p.xid,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        giaddr,
        &p.chaddr.0,
    );
    m.set_opcode(Opcode::BootRequest);
    m.set_flags(Flags::default());
    if p.relay.is_some() {
        m.set_hops(1);
    }
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(msg_type));
    if let Some(id) = &p.client_id {
        o.insert(DhcpOption::ClientIdentifier(id.clone()));
    }
    if msg_type != MessageType::Release {
        o.insert(DhcpOption::ParameterRequestList(
            p.parameter_request_list()
                .into_iter()
                .map(OptionCode::from)
                .collect(),
        ));
        if let Some(v) = &p.vendor_class {
            o.insert(DhcpOption::ClassIdentifier(v.as_bytes().to_vec()));
        }
        if !p.user_class.is_empty() {
            o.insert(unknown(
                crate::dhcp::v4::wire::OPT_USER_CLASS,
                user_class_data(&p.user_class),
            ));
        }
        if let Some(h) = &p.hostname {
            o.insert(DhcpOption::Hostname(h.clone()));
        }
        if let Some(s) = p.max_size {
            o.insert(DhcpOption::MaxMessageSize(s));
        }
    }
    if let Some(r) = &p.relay {
        o.insert(DhcpOption::RelayAgentInformation(relay_agent_information(
            r,
        )));
    }
    m
}

fn encode(m: &Message) -> Vec<u8> {
    // every field we set fits its wire form, so encoding cannot fail
    let mut out = m.to_vec().expect("a client message always encodes");
    // the BOOTP minimum of 300 octets, which some relays and servers still expect
    if out.len() < 300 {
        out.resize(300, 0);
    }
    out
}

pub(crate) fn build_discover(p: &ProbeParams) -> Vec<u8> {
    encode(&base(p, MessageType::Discover))
}

/// REQUEST in SELECTING state (RFC 2131 §4.3.2): 50 the offered address, 54 the chosen server.
pub(crate) fn build_request(p: &ProbeParams, offer: &Reply) -> Vec<u8> {
    let mut m = base(p, MessageType::Request);
    m.opts_mut()
        .insert(DhcpOption::RequestedIpAddress(offer.yiaddr));
    if let Some(s) = offer.server_id {
        m.opts_mut().insert(DhcpOption::ServerIdentifier(s));
    }
    encode(&m)
}

/// RELEASE of an acknowledged lease (ciaddr = the address, 54 = the server).
pub(crate) fn build_release(p: &ProbeParams, ack: &Reply) -> Vec<u8> {
    let mut m = base(p, MessageType::Release);
    m.set_ciaddr(ack.yiaddr);
    if let Some(s) = ack.server_id {
        m.opts_mut().insert(DhcpOption::ServerIdentifier(s));
    }
    encode(&m)
}

/// A server reply, as far as the probe cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) msg_type: Option<MessageType>,
    pub(crate) xid: u32,
    pub(crate) yiaddr: Ipv4Addr,
    pub(crate) server_id: Option<Ipv4Addr>,
    pub(crate) lease_time: Option<u32>,
    pub(crate) subnet_mask: Option<Ipv4Addr>,
    pub(crate) routers: Vec<Ipv4Addr>,
    pub(crate) dns: Vec<Ipv4Addr>,
    pub(crate) domain: Option<String>,
    pub(crate) message: Option<String>,
    /// Option 143, all instances joined (RFC 3396).
    pub(crate) sztp_redirect: Option<Vec<u8>>,
    /// Option codes in wire order, repeated instances once.
    pub(crate) options_seen: Vec<u8>,
}

fn addrs(d: Option<Vec<u8>>) -> Vec<Ipv4Addr> {
    d.map(|d| {
        d.chunks_exact(4)
            .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
            .collect()
    })
    .unwrap_or_default()
}

/// Read a BOOTREPLY addressed to our transaction; `Err` says why it is not ours or not valid.
pub(crate) fn parse_reply(bytes: &[u8], xid: u32, chaddr: MacAddr) -> Result<Reply, String> {
    // dhcproto checks the fixed header; options are read from the raw TLVs because dhcproto
    // keeps only the last of non-adjacent instances (143 must be joined across all of them)
    let m = Message::decode(&mut Decoder::new(bytes)).map_err(|e| format!("undecodable: {e}"))?;
    if m.opcode() != Opcode::BootReply {
        return Err("not a BOOTREPLY".into());
    }
    if m.xid() != xid {
        return Err(format!("xid {:#010x} is not ours", m.xid()));
    }
    if MacAddr::from_slice(m.chaddr()) != Some(chaddr) {
        return Err("chaddr is not ours".into());
    }
    let opts = raw_options(bytes).ok_or("no magic cookie")?;
    use crate::dhcp::v4::wire::{
        OPT_DNS, OPT_DOMAIN_NAME, OPT_LEASE_TIME, OPT_MESSAGE, OPT_MESSAGE_TYPE, OPT_ROUTER,
        OPT_SERVER_ID, OPT_SUBNET_MASK,
    };
    let get = |code| concat_option(&opts, code);
    let one = |code| get(code).and_then(|d| addrs(Some(d)).first().copied());
    let mut seen: Vec<u8> = Vec::new();
    for (c, _) in &opts {
        if !seen.contains(c) {
            seen.push(*c);
        }
    }
    Ok(Reply {
        msg_type: get(OPT_MESSAGE_TYPE).and_then(|d| d.first().map(|&t| MessageType::from(t))),
        xid,
        yiaddr: m.yiaddr(),
        server_id: one(OPT_SERVER_ID),
        lease_time: get(OPT_LEASE_TIME)
            .and_then(|d| <[u8; 4]>::try_from(d.as_slice()).ok())
            .map(u32::from_be_bytes),
        subnet_mask: one(OPT_SUBNET_MASK),
        routers: addrs(get(OPT_ROUTER)),
        dns: addrs(get(OPT_DNS)),
        domain: get(OPT_DOMAIN_NAME).map(|d| {
            String::from_utf8_lossy(&d)
                .trim_end_matches('\0')
                .to_string()
        }),
        message: get(OPT_MESSAGE).map(|d| String::from_utf8_lossy(&d).into_owned()),
        sztp_redirect: get(OPT_SZTP_REDIRECT),
        options_seen: seen,
    })
}

/// How option 143 was encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// `(u16 len, URI)*` (RFC 8572 §8.3).
    Rfc8572,
    /// The bare URI string of ISC `code 143 = text` configurations.
    Text,
}

impl Encoding {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Encoding::Rfc8572 => "rfc8572",
            Encoding::Text => "text",
        }
    }
}

/// Option 143 as a device reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SztpRedirect {
    pub(crate) encoding: Encoding,
    pub(crate) uris: Vec<String>,
    pub(crate) ignored: Vec<String>,
    pub(crate) truncated: bool,
    pub(crate) len: usize,
}

pub(crate) fn decode_redirect(payload: &[u8]) -> SztpRedirect {
    let d = decode_list(payload);
    if !d.is_usable() && payload.starts_with(b"https://") {
        return SztpRedirect {
            encoding: Encoding::Text,
            uris: vec![String::from_utf8_lossy(payload).into_owned()],
            ignored: Vec::new(),
            truncated: false,
            len: payload.len(),
        };
    }
    SztpRedirect {
        encoding: Encoding::Rfc8572,
        uris: d.uris,
        ignored: d.ignored,
        truncated: d.truncated,
        len: payload.len(),
    }
}

/// Where a reply came from on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Source {
    pub(crate) ip: Ipv4Addr,
    /// Known in device mode (raw frames), not through a relay socket.
    pub(crate) mac: Option<MacAddr>,
}

/// One server that answered the DISCOVER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Offer {
    pub(crate) source: Source,
    pub(crate) reply: Reply,
}

impl Offer {
    /// The server's identity: option 54, else the source address.
    pub(crate) fn server(&self) -> Ipv4Addr {
        self.reply.server_id.unwrap_or(self.source.ip)
    }
}

/// Record an OFFER unless the same server already offered (a retransmission).
pub(crate) fn add_offer(offers: &mut Vec<Offer>, offer: Offer) {
    if !offers.iter().any(|o| o.server() == offer.server()) {
        offers.push(offer);
    }
}

/// The offer to take: the one from `server` if asked, else the first.
pub(crate) fn choose(offers: &[Offer], server: Option<Ipv4Addr>) -> Option<&Offer> {
    match server {
        Some(s) => offers.iter().find(|o| o.server() == s || o.source.ip == s),
        None => offers.first(),
    }
}

/// How the exchange ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    NoServer,
    /// Offers came but not from the server asked for with `--server`.
    ServerNotAnswering(Ipv4Addr),
    NoAck,
    Nak {
        server: Ipv4Addr,
        message: Option<String>,
    },
    Ack(Box<Reply>),
}

/// Everything the probe learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProbeReport {
    /// First line: interface and transport.
    pub(crate) heading: String,
    /// The interface, for the two-servers warning.
    pub(crate) interface: String,
    pub(crate) offers: Vec<Offer>,
    pub(crate) chosen: Option<Ipv4Addr>,
    pub(crate) outcome: Outcome,
    pub(crate) released: bool,
}

impl ProbeReport {
    /// 0 ACK, 2 NAK or no ACK, 3 no server answered.
    pub(crate) fn exit_code(&self) -> i32 {
        match self.outcome {
            Outcome::Ack(_) => 0,
            Outcome::NoServer => 3,
            Outcome::ServerNotAnswering(_) | Outcome::NoAck | Outcome::Nak { .. } => 2,
        }
    }

    pub(crate) fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.offers.len() > 1 {
            w.push(format!(
                "{} DHCP servers answered on {}: a classic staging failure",
                self.offers.len(),
                self.interface
            ));
        }
        w
    }

    fn ack(&self) -> Option<&Reply> {
        match &self.outcome {
            Outcome::Ack(r) => Some(r),
            _ => None,
        }
    }

    /// Option 143 of the ACK, else of the chosen offer.
    pub(crate) fn redirect(&self) -> Option<SztpRedirect> {
        let from_offer = || {
            self.offers
                .iter()
                .find(|o| Some(o.server()) == self.chosen)
                .and_then(|o| o.reply.sztp_redirect.clone())
        };
        self.ack()
            .and_then(|a| a.sztp_redirect.clone())
            .or_else(from_offer)
            .map(|p| decode_redirect(&p))
    }

    /// Human output; warnings are returned by [`ProbeReport::warnings`] for stderr.
    pub(crate) fn render_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}", self.heading);
        for o in &self.offers {
            let mut from = String::new();
            if o.source.ip != o.server() || o.source.mac.is_some() {
                from.push_str(" (from ");
                from.push_str(&o.source.ip.to_string());
                if let Some(m) = o.source.mac {
                    let _ = write!(from, " {m}");
                }
                from.push(')');
            }
            let _ = writeln!(
                s,
                "server {}{} answered: offer {}, option 143 {}",
                o.server(),
                from,
                o.reply.yiaddr,
                if o.reply.sztp_redirect.is_some() {
                    "present"
                } else {
                    "absent"
                }
            );
        }
        match &self.outcome {
            Outcome::NoServer => {
                let _ = writeln!(s, "no DHCP server answered");
            }
            Outcome::ServerNotAnswering(a) => {
                let _ = writeln!(s, "server {a} did not answer");
            }
            Outcome::NoAck => {
                let _ = writeln!(
                    s,
                    "no ack from {}",
                    self.chosen.map_or("?".to_string(), |c| c.to_string())
                );
            }
            Outcome::Nak { server, message } => {
                let _ = write!(s, "nak from {server}");
                if let Some(m) = message {
                    let _ = write!(s, ": {}", Printable(m));
                }
                s.push('\n');
            }
            Outcome::Ack(a) => {
                let _ = write!(s, "ack {}", a.yiaddr);
                if let Some(l) = a.lease_time {
                    let _ = write!(s, " lease {}", human_duration(l));
                }
                if !a.routers.is_empty() {
                    let _ = write!(s, " routers {}", join(&a.routers));
                }
                if !a.dns.is_empty() {
                    let _ = write!(s, " dns {}", join(&a.dns));
                }
                if let Some(d) = &a.domain {
                    let _ = write!(s, " domain {}", Printable(d));
                }
                s.push('\n');
                if self.released {
                    let _ = writeln!(s, "released {}", a.yiaddr);
                }
            }
        }
        match self.redirect() {
            None => {
                if self.ack().is_some() {
                    let _ = writeln!(s, "no sztp redirect (option 143 absent)");
                }
            }
            Some(r) => {
                let n = r.uris.len();
                let _ = writeln!(
                    s,
                    "sztp redirect (option 143, {} encoding, {} URI{}):",
                    r.encoding.as_str(),
                    n,
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
            .offers
            .iter()
            .map(|o| {
                json!({
                    "server_id": o.reply.server_id.map(|a| a.to_string()),
                    "source_ip": o.source.ip.to_string(),
                    "source_mac": o.source.mac.map(|m| m.to_string()),
                    "offer": o.reply.yiaddr.to_string(),
                    "option_143": o.reply.sztp_redirect.is_some(),
                })
            })
            .collect();
        let (outcome, nak_message) = match &self.outcome {
            Outcome::NoServer => ("no-server", None),
            Outcome::ServerNotAnswering(_) => ("server-not-answering", None),
            Outcome::NoAck => ("no-ack", None),
            Outcome::Nak { message, .. } => ("nak", message.clone()),
            Outcome::Ack(_) => ("ack", None),
        };
        let ack = self.ack();
        let redirect = self.redirect();
        let options_seen = ack
            .map(|a| a.options_seen.clone())
            .or_else(|| self.offers.first().map(|o| o.reply.options_seen.clone()))
            .unwrap_or_default();
        json!({
            "servers": servers,
            "chosen": self.chosen.map(|a| a.to_string()),
            "outcome": outcome,
            "nak_message": nak_message,
            "address": ack.map(|a| a.yiaddr.to_string()),
            "lease_time": ack.and_then(|a| a.lease_time),
            "subnet_mask": ack.and_then(|a| a.subnet_mask).map(|a| a.to_string()),
            "routers": ack.map(|a| a.routers.iter().map(|r| r.to_string()).collect::<Vec<_>>()).unwrap_or_default(),
            "dns": ack.map(|a| a.dns.iter().map(|r| r.to_string()).collect::<Vec<_>>()).unwrap_or_default(),
            "domain": ack.and_then(|a| a.domain.clone()),
            "encoding": redirect.as_ref().map(|r| r.encoding.as_str()),
            "uris": redirect.as_ref().map(|r| r.uris.clone()).unwrap_or_default(),
            "ignored": redirect.as_ref().map(|r| r.ignored.clone()).unwrap_or_default(),
            "truncated": redirect.as_ref().is_some_and(|r| r.truncated),
            "options_seen": options_seen,
            "released": self.released,
            "warnings": self.warnings(),
            "exit_code": self.exit_code(),
        })
    }
}

fn join(a: &[Ipv4Addr]) -> String {
    a.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// 3600 → "1h", 600 → "10m", 90 → "90s".
pub(crate) fn human_duration(secs: u32) -> String {
    match secs {
        0 => "0s".into(),
        u32::MAX => "infinite".into(),
        s if s % 86400 == 0 => format!("{}d", s / 86400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sztp::{encode_list, split_rfc3396};
    use crate::testutil::hex;

    const CHADDR: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
    const XID: u32 = 0x0640_2808;

    fn params() -> ProbeParams {
        ProbeParams::new(XID, CHADDR)
    }

    /// A server reply built by hand; `options` is the raw area after the cookie (End added).
    fn reply(msg: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 240];
        b[0] = 2;
        b[1] = 1;
        b[2] = 6;
        b[4..8].copy_from_slice(&XID.to_be_bytes());
        b[16..20].copy_from_slice(&[198, 51, 100, 100]);
        b[28..34].copy_from_slice(&CHADDR.0);
        b[236..240].copy_from_slice(&crate::dhcp::v4::wire::MAGIC_COOKIE);
        b.extend_from_slice(msg);
        b.push(255);
        b
    }

    fn tv3_uris() -> Vec<String> {
        (1..=6)
            .map(|n| format!("https://sztp-{n}.bootstrap.site-a.example.com:8443"))
            .collect()
    }

    #[test]
    fn discover_wire() {
        let mut p = params();
        p.vendor_class = Some("acme-sztp".into());
        p.user_class = vec!["sztp".into(), "x".into()];
        p.hostname = Some("dev1".into());
        p.max_size = Some(1500);
        p.client_id = Some(vec![1, 2, 0, 0, 0, 0, 2]);
        let b = build_discover(&p);
        assert_eq!(b.len(), 300);
        assert_eq!(&b[..4], &[1, 1, 6, 0]);
        assert_eq!(&b[4..8], &XID.to_be_bytes());
        assert_eq!(&b[24..28], &[0; 4], "giaddr");
        assert_eq!(&b[28..34], &CHADDR.0);
        let opts = raw_options(&b).unwrap();
        let find = |c| concat_option(&opts, c).unwrap();
        assert_eq!(find(53), [1]);
        assert_eq!(find(55), [1, 3, 6, 15, 119, 143]);
        assert_eq!(find(60), b"acme-sztp");
        assert_eq!(find(77), b"\x04sztp\x01x");
        assert_eq!(find(12), b"dev1");
        assert_eq!(find(57), [0x05, 0xdc]);
        assert_eq!(find(61), [1, 2, 0, 0, 0, 0, 2]);
        assert!(concat_option(&opts, 82).is_none());

        p.request_143 = false;
        let b = build_discover(&p);
        let opts = raw_options(&b).unwrap();
        assert_eq!(concat_option(&opts, 55).unwrap(), [1, 3, 6, 15, 119]);
    }

    #[test]
    fn relayed_discover_option_82_byte_for_byte() {
        let mut p = params();
        p.relay = Some(RelayAgent {
            giaddr: Ipv4Addr::new(198, 51, 100, 3),
            link_selection: Some(Ipv4Addr::new(192, 0, 2, 0)),
            circuit_id: Some(b"ge-0/0/1".to_vec()),
            remote_id: Some(b"sw1".to_vec()),
        });
        let b = build_discover(&p);
        assert_eq!(b[3], 1, "hops");
        assert_eq!(&b[24..28], &[198, 51, 100, 3]);
        let opts = raw_options(&b).unwrap();
        // 82 is the last option before End (RFC 3046 §2.1)
        assert_eq!(opts.last().unwrap().0, 82);
        assert_eq!(
            concat_option(&opts, 82).unwrap(),
            hex("01 08 67652d302f302f31  02 03 737731  05 04 c0000200  13 00")
        );
        // the full TLV as it sits in the packet
        let needle = hex("52 17 0108");
        assert!(b.windows(needle.len()).any(|w| w == needle));

        // only the relay-port sub-option when nothing else is asked for
        p.relay = Some(RelayAgent {
            giaddr: Ipv4Addr::LOCALHOST,
            link_selection: None,
            circuit_id: None,
            remote_id: None,
        });
        let opts_b = build_discover(&p);
        let opts = raw_options(&opts_b).unwrap();
        assert_eq!(concat_option(&opts, 82).unwrap(), [19, 0]);
    }

    #[test]
    fn request_and_release() {
        let p = params();
        let offer = parse_reply(
            &reply(&hex("350102 3604c6336401 330400000258")),
            XID,
            CHADDR,
        )
        .unwrap();
        let b = build_request(&p, &offer);
        let opts = raw_options(&b).unwrap();
        assert_eq!(concat_option(&opts, 53).unwrap(), [3]);
        assert_eq!(concat_option(&opts, 50).unwrap(), [198, 51, 100, 100]);
        assert_eq!(concat_option(&opts, 54).unwrap(), [198, 51, 100, 1]);
        assert_eq!(&b[12..16], &[0; 4], "ciaddr stays 0 in SELECTING");

        let r = build_release(&p, &offer);
        let opts = raw_options(&r).unwrap();
        assert_eq!(concat_option(&opts, 53).unwrap(), [7]);
        assert_eq!(&r[12..16], &[198, 51, 100, 100]);
        assert!(concat_option(&opts, 55).is_none());
    }

    // digest §16 TV3 split 255 + 45, with option 53 in between the two instances: dhcproto
    // alone would keep only the second piece
    #[test]
    fn split_143_not_adjacent_decodes_tv3() {
        let list = encode_list(&tv3_uris());
        let wire = split_rfc3396(143, &list);
        let (first, second) = wire.split_at(257);
        let mut opts = first.to_vec();
        opts.extend_from_slice(&hex(
            "350105 3604c6336401 330400000e10 0304c6336401 0604c6336401",
        ));
        opts.push(0); // a pad for good measure
        opts.extend_from_slice(second);
        opts.extend_from_slice(&hex("0f 1373 7461 6769 6e67 2e65 7861 6d70 6c65 2e63 6f6d"));
        let r = parse_reply(&reply(&opts), XID, CHADDR).unwrap();
        assert_eq!(r.msg_type, Some(MessageType::Ack));
        assert_eq!(r.sztp_redirect.as_deref(), Some(&list[..]));
        let d = decode_redirect(r.sztp_redirect.as_ref().unwrap());
        assert_eq!(d.encoding, Encoding::Rfc8572);
        assert_eq!(d.uris, tv3_uris());
        assert_eq!(r.options_seen, [143, 53, 54, 51, 3, 6, 15]);
        assert_eq!(r.domain.as_deref(), Some("staging.example.com"));
        assert_eq!(r.lease_time, Some(3600));

        // what dhcproto makes of the same message: the silent loss this module works around
        let m = Message::decode(&mut Decoder::new(&reply(&opts))).unwrap();
        if let Some(DhcpOption::Unknown(u)) = m.opts().get(OptionCode::from(143u8)) {
            assert_eq!(u.data(), &second[2..]);
        }
    }

    #[test]
    fn kea_offer_from_peers_and_crates_7() {
        let b = hex("02010600064028080000000000000000c633646400000000000000000200000000020000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000063825363
        3501020104ffffff003304000002583604c63364018f3d001f68747470733a2f2f737a7470312e6578616d706c652e74
        6573743a38343433001a68747470733a2f2f5b323030313a6462383a3a315d3a38343433ff");
        let r = parse_reply(&b, XID, CHADDR).unwrap();
        assert_eq!(r.msg_type, Some(MessageType::Offer));
        assert_eq!(r.yiaddr, Ipv4Addr::new(198, 51, 100, 100));
        assert_eq!(r.server_id, Some(Ipv4Addr::new(198, 51, 100, 1)));
        assert_eq!(r.options_seen, [53, 1, 51, 54, 143]);
        assert_eq!(
            decode_redirect(r.sztp_redirect.as_ref().unwrap()).uris,
            [
                "https://sztp1.example.test:8443",
                "https://[2001:db8::1]:8443"
            ]
        );
        assert!(parse_reply(&b, XID + 1, CHADDR).is_err());
        assert!(parse_reply(&b, XID, MacAddr([2, 0, 0, 0, 0, 9])).is_err());
    }

    #[test]
    fn overload_into_file_and_sname() {
        // option 52 = 3: main area, then file, then sname
        let mut b = reply(&hex("350102 340103 8f 04 0005 6874"));
        b[108..116].copy_from_slice(&hex("8f 04 7470 7370 ff 00"));
        b[44..52].copy_from_slice(&hex("8f 05 3a2f 2f61 61 ff"));
        let opts = raw_options(&b).unwrap();
        let joined = concat_option(&opts, 143).unwrap();
        assert_eq!(joined, hex("0005 6874 7470 7370 3a2f 2f61 61"));
        // `0005 "https"` then junk: not a usable list
        assert_eq!(decode_redirect(&joined).encoding, Encoding::Rfc8572);
    }

    #[test]
    fn text_encoding_detected() {
        let d = decode_redirect(b"https://192.0.2.1:8443");
        assert_eq!(d.encoding, Encoding::Text);
        assert_eq!(d.uris, ["https://192.0.2.1:8443"]);
        let d = decode_redirect(&hex(
            "0010 687474703a2f2f3139322e302e322e31 0011 68747470733a2f2f3139322e302e322e32",
        ));
        assert_eq!(d.encoding, Encoding::Rfc8572);
        assert_eq!(d.uris, ["https://192.0.2.2"]);
        assert_eq!(d.ignored, ["http://192.0.2.1"]);
    }

    #[test]
    fn truncated_and_garbage_options_do_not_panic() {
        assert!(raw_options(&[0u8; 100]).is_none());
        let mut b = reply(&hex("350102 8f 30 0001"));
        b.pop(); // no End, TLV longer than the buffer
        let opts = raw_options(&b).unwrap();
        assert_eq!(opts, vec![(53, &[2u8][..])]);
    }

    fn offer(server: [u8; 4], yiaddr: [u8; 4], with_143: bool) -> Offer {
        let mut o = Vec::new();
        o.extend_from_slice(&hex("350102 3604"));
        o.extend_from_slice(&server);
        if with_143 {
            o.extend_from_slice(&split_rfc3396(
                143,
                &encode_list(&[
                    "https://sztp.owner.example.com:8443",
                    "https://[2001:db8::10]:8443",
                ]),
            ));
        }
        let mut b = reply(&o);
        b[16..20].copy_from_slice(&yiaddr);
        Offer {
            source: Source {
                ip: server.into(),
                mac: None,
            },
            reply: parse_reply(&b, XID, CHADDR).unwrap(),
        }
    }

    #[test]
    fn report_text_like_the_readme() {
        let o = offer([192, 0, 2, 1], [192, 0, 2, 100], true);
        let mut ack_bytes = hex("350105 3604c0000201 330400000e10 0304c0000201 0604c0000201 0f 13");
        ack_bytes.extend_from_slice(b"staging.example.com");
        ack_bytes.extend_from_slice(&split_rfc3396(
            143,
            &encode_list(&[
                "https://sztp.owner.example.com:8443",
                "https://[2001:db8::10]:8443",
            ]),
        ));
        let mut b = reply(&ack_bytes);
        b[16..20].copy_from_slice(&[192, 0, 2, 100]);
        let ack = parse_reply(&b, XID, CHADDR).unwrap();
        let r = ProbeReport {
            heading: "DHCPv4 on lo via relay 127.0.0.1:6767 (giaddr 127.0.0.1)".into(),
            interface: "lo".into(),
            chosen: Some(o.server()),
            offers: vec![o],
            outcome: Outcome::Ack(Box::new(ack)),
            released: false,
        };
        assert_eq!(
            r.render_text(),
            "DHCPv4 on lo via relay 127.0.0.1:6767 (giaddr 127.0.0.1)
server 192.0.2.1 answered: offer 192.0.2.100, option 143 present
ack 192.0.2.100 lease 1h routers 192.0.2.1 dns 192.0.2.1 domain staging.example.com
sztp redirect (option 143, rfc8572 encoding, 2 URIs):
  1. https://sztp.owner.example.com:8443
  2. https://[2001:db8::10]:8443
"
        );
        assert_eq!(r.exit_code(), 0);
        assert!(r.warnings().is_empty());
        let j = r.to_json();
        assert_eq!(j["encoding"], "rfc8572");
        assert_eq!(j["address"], "192.0.2.100");
        assert_eq!(j["uris"][1], "https://[2001:db8::10]:8443");
        assert_eq!(j["servers"][0]["option_143"], true);
        assert_eq!(j["options_seen"], json!([53, 54, 51, 3, 6, 15, 143]));
    }

    #[test]
    fn two_servers_warn_and_choose() {
        let mut offers = Vec::new();
        add_offer(
            &mut offers,
            offer([198, 51, 100, 1], [198, 51, 100, 100], true),
        );
        add_offer(
            &mut offers,
            offer([198, 51, 100, 2], [198, 51, 100, 160], false),
        );
        add_offer(
            &mut offers,
            offer([198, 51, 100, 1], [198, 51, 100, 100], true),
        );
        assert_eq!(offers.len(), 2);
        assert_eq!(
            choose(&offers, None).unwrap().server(),
            Ipv4Addr::new(198, 51, 100, 1)
        );
        let second = Some(Ipv4Addr::new(198, 51, 100, 2));
        assert_eq!(
            choose(&offers, second).unwrap().reply.yiaddr,
            Ipv4Addr::new(198, 51, 100, 160)
        );
        assert!(choose(&offers, Some(Ipv4Addr::new(198, 51, 100, 9))).is_none());
        let r = ProbeReport {
            heading: "DHCPv4 on eth1".into(),
            interface: "eth1".into(),
            chosen: None,
            offers,
            outcome: Outcome::NoAck,
            released: false,
        };
        assert_eq!(
            r.warnings(),
            ["2 DHCP servers answered on eth1: a classic staging failure"]
        );
        assert_eq!(r.exit_code(), 2);
        assert!(r
            .render_text()
            .contains("server 198.51.100.2 answered: offer 198.51.100.160, option 143 absent"));
        let nak = ProbeReport {
            outcome: Outcome::Nak {
                server: Ipv4Addr::new(198, 51, 100, 1),
                message: Some("address not available".into()),
            },
            ..r.clone()
        };
        assert_eq!(nak.exit_code(), 2);
        assert!(nak
            .render_text()
            .contains("nak from 198.51.100.1: address not available"));
        let none = ProbeReport {
            offers: Vec::new(),
            outcome: Outcome::NoServer,
            ..r
        };
        assert_eq!(none.exit_code(), 3);
        assert_eq!(none.to_json()["encoding"], Value::Null);
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(3600), "1h");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(86400), "1d");
        assert_eq!(human_duration(90), "90s");
    }
}
