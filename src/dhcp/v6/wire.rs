//! DHCPv6 wire format (RFC 8415 §7–§9, §21): strict option framing, relay nesting, the client
//! message model (dhcproto types) and the encoding of replies and Relay-reply wrappers
//!
//! dhcproto 0.15 supplies the message model (`Message`, `DhcpOption`, `IANA`, `IAAddr`, …) and
//! encodes our replies. It does not decode requests here, because its v6 decoder
//! - reads option 9 (Relay Message) always as a relay message, so the client message inside the
//!   innermost Relay-forward cannot be read;
//! - stops silently at the first option it cannot decode, dropping every option after it;
//! - reads Preference, Elapsed Time, Server Unicast and Rapid Commit without looking at the
//!   option length (a wrong length desynchronises the rest), and subtracts from the length of
//!   Status Code, Vendor Class, Vendor Options and Authentication without checking it (an
//!   arithmetic overflow, so a panic in debug builds).
//!
//! So requests are framed by [`options`], which rejects any option that overruns its container,
//! and the few options the server acts on are typed here; everything else is kept as
//! `DhcpOption::Unknown` with its octets. Two dhcproto encoders are avoided as well: option 15
//! and 16 lengths count entries instead of octets, and option 24 compresses names (RFC 8415 §10
//! forbids it), so option 24 is emitted from hickory's uncompressed name encoder instead.

use std::net::Ipv6Addr;

use dhcproto::v6::{
    DhcpOption, DhcpOptions, IAAddr, MessageType, OptionCode, Status, StatusCode, UnknownOption,
    IANA, ORO,
};
use dhcproto::Encodable;

use crate::policy::MacAddr;

/// UDP port servers and relay agents listen on (RFC 8415 §7.2).
pub const SERVER_PORT: u16 = 547;
/// UDP port clients listen on (RFC 8415 §7.2).
pub const CLIENT_PORT: u16 = 546;
/// All_DHCP_Relay_Agents_and_Servers (RFC 8415 §7.1).
pub const ALL_DHCP_RELAY_AGENTS_AND_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
/// HOP_COUNT_LIMIT (RFC 8415 §7.6): the deepest relay nesting accepted.
pub const HOP_COUNT_LIMIT: usize = 8;
/// IPv6 minimum link MTU (RFC 8200 §5): what a relayed client's link is assumed to carry.
pub const MIN_LINK_MTU: u32 = 1280;
/// IPv6 (40) plus UDP (8) header octets.
pub const IP_UDP_HEADERS: u32 = 48;
/// msg-type, hop-count, link-address, peer-address (RFC 8415 §9.1).
pub const RELAY_HEADER_LEN: usize = 34;

/// Client Identifier (RFC 8415 §21.2): the client's DUID.
pub const OPT_CLIENTID: u16 = 1;
/// Server Identifier (RFC 8415 §21.3): the server's DUID.
pub const OPT_SERVERID: u16 = 2;
/// Identity Association for Non-temporary Addresses (RFC 8415 §21.4).
pub const OPT_IA_NA: u16 = 3;
/// Identity Association for Temporary Addresses (RFC 8415 §21.5).
pub const OPT_IA_TA: u16 = 4;
/// IA Address (RFC 8415 §21.6).
pub const OPT_IAADDR: u16 = 5;
/// Option Request (RFC 8415 §21.7).
pub const OPT_ORO: u16 = 6;
/// Preference (RFC 8415 §21.8).
pub const OPT_PREFERENCE: u16 = 7;
/// Elapsed Time (RFC 8415 §21.9), in hundredths of a second.
pub const OPT_ELAPSED_TIME: u16 = 8;
/// Relay Message (RFC 8415 §21.10).
pub const OPT_RELAY_MSG: u16 = 9;
/// Authentication (RFC 8415 §21.11).
pub const OPT_AUTH: u16 = 11;
/// Server Unicast (RFC 8415 §21.12).
pub const OPT_UNICAST: u16 = 12;
/// Status Code (RFC 8415 §21.13).
pub const OPT_STATUS_CODE: u16 = 13;
/// Rapid Commit (RFC 8415 §21.14).
pub const OPT_RAPID_COMMIT: u16 = 14;
/// User Class (RFC 8415 §21.15).
pub const OPT_USER_CLASS: u16 = 15;
/// Vendor Class (RFC 8415 §21.16): enterprise number and class data.
pub const OPT_VENDOR_CLASS: u16 = 16;
/// Vendor-specific Information (RFC 8415 §21.17).
pub const OPT_VENDOR_OPTS: u16 = 17;
/// Interface-Id (RFC 8415 §21.18), echoed in the Relay-reply.
pub const OPT_INTERFACE_ID: u16 = 18;
/// Reconfigure Message (RFC 8415 §21.19).
pub const OPT_RECONF_MSG: u16 = 19;
/// Reconfigure Accept (RFC 8415 §21.20).
pub const OPT_RECONF_ACCEPT: u16 = 20;
/// DNS Recursive Name Server (RFC 3646 §3).
pub const OPT_DNS_SERVERS: u16 = 23;
/// Domain Search List (RFC 3646 §4).
pub const OPT_DOMAIN_LIST: u16 = 24;
/// Identity Association for Prefix Delegation (RFC 8415 §21.21).
pub const OPT_IA_PD: u16 = 25;
/// IA Prefix (RFC 8415 §21.22).
pub const OPT_IAPREFIX: u16 = 26;
/// Information Refresh Time (RFC 8415 §21.23), in seconds.
pub const OPT_INFORMATION_REFRESH_TIME: u16 = 32;
/// RFC 4649 Relay Agent Remote-ID.
pub const OPT_REMOTE_ID: u16 = 37;
/// RFC 6939 Client Link-Layer Address.
pub const OPT_CLIENT_LINKLAYER_ADDR: u16 = 79;
/// RFC 8357 Relay Source Port.
pub const OPT_RELAY_SOURCE_PORT: u16 = 135;
/// RFC 8572 §8.2 OPTION_V6_SZTP_REDIRECT.
pub const OPT_V6_SZTP_REDIRECT: u16 = 136;

/// ARP hardware type of Ethernet (RFC 826), used in DUID-LL/LLT and option 79.
pub const HTYPE_ETHERNET: u16 = 1;

/// Why a datagram was dropped before it reached the handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Malformed {
    /// Shorter than a message header.
    TooShort,
    /// An option header or value runs past the end of its message or container.
    OptionOverrun,
    /// An option's length does not fit its format (e.g. an Elapsed Time that is not 2 octets).
    BadOptionLength,
    /// Relay-forward inside Relay-forward deeper than HOP_COUNT_LIMIT.
    RelayTooDeep,
    /// A Relay-forward without exactly one Relay Message option.
    NoRelayMessage,
    /// A message type a server never receives (Advertise, Reply, Relay-reply, …).
    NotForServer,
}

impl Malformed {
    /// The kebab-case name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Malformed::TooShort => "too-short",
            Malformed::OptionOverrun => "option-overrun",
            Malformed::BadOptionLength => "bad-option-length",
            Malformed::RelayTooDeep => "relay-too-deep",
            Malformed::NoRelayMessage => "no-relay-message",
            Malformed::NotForServer => "not-for-server",
        }
    }
}

/// One option as framed on the wire: code and value octets.
pub type RawOption<'a> = (u16, &'a [u8]);

/// Frames `buf` as a sequence of options (RFC 8415 §21.1), in wire order. Any option whose
/// header or value does not fit in `buf`, including trailing octets too short for a header,
/// makes the whole buffer malformed.
pub fn options(mut buf: &[u8]) -> Result<Vec<RawOption<'_>>, Malformed> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        if buf.len() < 4 {
            return Err(Malformed::OptionOverrun);
        }
        let code = u16::from_be_bytes([buf[0], buf[1]]);
        let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        let value = buf.get(4..4 + len).ok_or(Malformed::OptionOverrun)?;
        out.push((code, value));
        buf = &buf[4 + len..];
    }
    Ok(out)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn ipv6_at(b: &[u8], at: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(a)
}

fn unknown(code: u16, data: &[u8]) -> DhcpOption {
    DhcpOption::Unknown(UnknownOption::new(OptionCode::from(code), data.to_vec()))
}

/// RFC 8415 §21.15/§21.16 `opaque-data` list: `u16 length ‖ data`, repeated.
fn opaque_list(mut b: &[u8]) -> Result<Vec<Vec<u8>>, Malformed> {
    let mut out = Vec::new();
    while !b.is_empty() {
        if b.len() < 2 {
            return Err(Malformed::OptionOverrun);
        }
        let n = usize::from(u16::from_be_bytes([b[0], b[1]]));
        let d = b.get(2..2 + n).ok_or(Malformed::OptionOverrun)?;
        out.push(d.to_vec());
        b = &b[2 + n..];
    }
    Ok(out)
}

/// Types one option of a client message. Options the server does not act on stay
/// `Unknown` with their octets; the ones it acts on are length-checked first.
fn client_option(code: u16, v: &[u8]) -> Result<DhcpOption, Malformed> {
    let bad = Malformed::BadOptionLength;
    Ok(match code {
        OPT_CLIENTID => DhcpOption::ClientId(v.to_vec()),
        OPT_SERVERID => DhcpOption::ServerId(v.to_vec()),
        OPT_IA_NA => {
            if v.len() < 12 {
                return Err(bad);
            }
            DhcpOption::IANA(IANA {
                id: u32_at(v, 0),
                t1: u32_at(v, 4),
                t2: u32_at(v, 8),
                opts: ia_options(&v[12..])?,
            })
        }
        OPT_ORO => {
            if !v.len().is_multiple_of(2) {
                return Err(bad);
            }
            DhcpOption::ORO(ORO {
                opts: v
                    .chunks_exact(2)
                    .map(|c| OptionCode::from(u16::from_be_bytes([c[0], c[1]])))
                    .collect(),
            })
        }
        OPT_ELAPSED_TIME => match v {
            [a, b] => DhcpOption::ElapsedTime(u16::from_be_bytes([*a, *b])),
            _ => return Err(bad),
        },
        OPT_RAPID_COMMIT if v.is_empty() => DhcpOption::RapidCommit,
        OPT_RAPID_COMMIT => return Err(bad),
        OPT_USER_CLASS => DhcpOption::UserClass(dhcproto::v6::UserClass {
            data: opaque_list(v)?,
        }),
        OPT_VENDOR_CLASS => {
            if v.len() < 4 {
                return Err(bad);
            }
            DhcpOption::VendorClass(dhcproto::v6::VendorClass {
                num: u32_at(v, 0),
                data: opaque_list(&v[4..])?,
            })
        }
        OPT_INTERFACE_ID => DhcpOption::InterfaceId(v.to_vec()),
        // containers whose insides the server never reads are still checked for framing, so
        // a structurally broken message is dropped whole
        OPT_IA_TA if v.len() >= 4 => {
            options(&v[4..])?;
            unknown(code, v)
        }
        OPT_IA_PD if v.len() >= 12 => {
            options(&v[12..])?;
            unknown(code, v)
        }
        OPT_IA_TA | OPT_IA_PD => return Err(bad),
        _ => unknown(code, v),
    })
}

/// The options inside an IA_NA: IA Address options typed, the rest kept raw.
fn ia_options(b: &[u8]) -> Result<DhcpOptions, Malformed> {
    let mut opts = Vec::new();
    for (code, v) in options(b)? {
        opts.push(match code {
            OPT_IAADDR => {
                if v.len() < 24 {
                    return Err(Malformed::BadOptionLength);
                }
                options(&v[24..])?;
                DhcpOption::IAAddr(IAAddr {
                    addr: ipv6_at(v, 0),
                    preferred_life: u32_at(v, 16),
                    valid_life: u32_at(v, 20),
                    // an address hint's own options (a status code) are not used
                    opts: DhcpOptions::new(),
                })
            }
            _ => unknown(code, v),
        });
    }
    Ok(in_order(opts))
}

/// `list` as dhcproto's option list (sorted by code) with the options of one code in the
/// order given. `DhcpOptions::insert` puts an option before the others of its code and
/// collecting sorts unstably, so the list is inserted back to front.
pub fn in_order(list: Vec<DhcpOption>) -> DhcpOptions {
    let mut opts = DhcpOptions::new();
    for o in list.into_iter().rev() {
        opts.insert(o);
    }
    opts
}

/// What one relay agent added on the way (RFC 8415 §9.1, §21.18; RFC 4649; RFC 6939; RFC 8357).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayHop {
    /// The Relay-forward's hop-count (0 for the relay next to the client).
    pub hop_count: u8,
    /// Address of the link the client is on, or `::` (e.g. a lightweight relay, RFC 6221).
    pub link_address: Ipv6Addr,
    /// The address of the client or relay the message came from.
    pub peer_address: Ipv6Addr,
    /// Option 18, echoed in the Relay-reply.
    pub interface_id: Option<Vec<u8>>,
    /// Option 37: (enterprise number, remote-id).
    pub remote_id: Option<(u32, Vec<u8>)>,
    /// Option 79: (link-layer type, address).
    pub client_link_layer: Option<(u16, Vec<u8>)>,
    /// Option 135 present: this relay listens on the UDP port it sent from (RFC 8357).
    pub relay_source_port: bool,
}

/// A decoded client message with the relays it came through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// Solicit, Request, Confirm, Renew, Rebind, Release, Decline or Information-request.
    pub msg_type: MessageType,
    /// The 3-octet transaction id.
    pub xid: [u8; 3],
    /// The client's options, typed with dhcproto's model (sorted by code).
    pub opts: DhcpOptions,
    /// Relays, outermost (the one that sent the datagram) first; empty when not relayed.
    pub relays: Vec<RelayHop>,
}

fn is_client_message(t: MessageType) -> bool {
    matches!(
        t,
        MessageType::Solicit
            | MessageType::Request
            | MessageType::Confirm
            | MessageType::Renew
            | MessageType::Rebind
            | MessageType::Release
            | MessageType::Decline
            | MessageType::InformationRequest
    )
}

/// Decodes a datagram received on the server port: a client message, or Relay-forwards
/// around one (at most [`HOP_COUNT_LIMIT`] deep).
pub fn decode(packet: &[u8]) -> Result<Received, Malformed> {
    let mut relays = Vec::new();
    let mut buf = packet;
    loop {
        let t = MessageType::from(*buf.first().ok_or(Malformed::TooShort)?);
        if t == MessageType::RelayForw {
            if relays.len() == HOP_COUNT_LIMIT {
                return Err(Malformed::RelayTooDeep);
            }
            if buf.len() < RELAY_HEADER_LEN {
                return Err(Malformed::TooShort);
            }
            let mut hop = RelayHop {
                hop_count: buf[1],
                link_address: ipv6_at(buf, 2),
                peer_address: ipv6_at(buf, 18),
                interface_id: None,
                remote_id: None,
                client_link_layer: None,
                relay_source_port: false,
            };
            let mut inner = None;
            for (code, v) in options(&buf[RELAY_HEADER_LEN..])? {
                match code {
                    OPT_RELAY_MSG if inner.is_none() => inner = Some(v),
                    OPT_RELAY_MSG => return Err(Malformed::NoRelayMessage),
                    OPT_INTERFACE_ID => hop.interface_id = Some(v.to_vec()),
                    OPT_REMOTE_ID if v.len() >= 4 => {
                        hop.remote_id = Some((u32_at(v, 0), v[4..].to_vec()))
                    }
                    OPT_CLIENT_LINKLAYER_ADDR if v.len() >= 2 => {
                        hop.client_link_layer =
                            Some((u16::from_be_bytes([v[0], v[1]]), v[2..].to_vec()))
                    }
                    OPT_REMOTE_ID | OPT_CLIENT_LINKLAYER_ADDR => {
                        return Err(Malformed::BadOptionLength)
                    }
                    OPT_RELAY_SOURCE_PORT if v.len() == 2 => hop.relay_source_port = true,
                    OPT_RELAY_SOURCE_PORT => return Err(Malformed::BadOptionLength),
                    _ => {}
                }
            }
            relays.push(hop);
            buf = inner.ok_or(Malformed::NoRelayMessage)?;
            continue;
        }
        if !is_client_message(t) {
            return Err(Malformed::NotForServer);
        }
        if buf.len() < 4 {
            return Err(Malformed::TooShort);
        }
        let mut opts = Vec::new();
        for (code, v) in options(&buf[4..])? {
            opts.push(client_option(code, v)?);
        }
        return Ok(Received {
            msg_type: t,
            xid: [buf[1], buf[2], buf[3]],
            opts: in_order(opts),
            relays,
        });
    }
}

impl Received {
    /// The transaction id as a number.
    pub fn xid_num(&self) -> u32 {
        u32::from_be_bytes([0, self.xid[0], self.xid[1], self.xid[2]])
    }

    /// The innermost relay (closest to the client), if relayed.
    pub fn innermost(&self) -> Option<&RelayHop> {
        self.relays.last()
    }

    /// Option 1: the client's DUID.
    pub fn client_id(&self) -> Option<&[u8]> {
        match self.opts.get(OptionCode::ClientId) {
            Some(DhcpOption::ClientId(d)) => Some(d),
            _ => None,
        }
    }

    /// Option 2: the server DUID the client addressed.
    pub fn server_id(&self) -> Option<&[u8]> {
        match self.opts.get(OptionCode::ServerId) {
            Some(DhcpOption::ServerId(d)) => Some(d),
            _ => None,
        }
    }

    /// Whether the Option Request option lists `code` (RFC 8415 §21.7).
    pub fn requests(&self, code: u16) -> bool {
        self.opts
            .get_all(OptionCode::ORO)
            .unwrap_or(&[])
            .iter()
            .any(|o| matches!(o, DhcpOption::ORO(oro) if oro.opts.iter().any(|c| u16::from(*c) == code)))
    }

    /// The IA_NA options, in order.
    pub fn ia_nas(&self) -> Vec<&IANA> {
        self.opts
            .get_all(OptionCode::IANA)
            .unwrap_or(&[])
            .iter()
            .filter_map(|o| match o {
                DhcpOption::IANA(ia) => Some(ia),
                _ => None,
            })
            .collect()
    }

    /// Whether the message carries any IA option (IA_NA, IA_TA, IA_PD).
    pub fn has_ia(&self) -> bool {
        self.opts.iter().any(|o| {
            matches!(o, DhcpOption::IANA(_))
                || matches!(o, DhcpOption::Unknown(u) if matches!(u16::from(u.code()), OPT_IA_TA | OPT_IA_PD))
        })
    }

    /// Option 14.
    pub fn rapid_commit(&self) -> bool {
        self.opts.get(OptionCode::RapidCommit).is_some()
    }

    /// Option 16: enterprise number and the first vendor-class-data as text.
    pub fn vendor_class(&self) -> Option<(u32, String)> {
        match self.opts.get(OptionCode::VendorClass) {
            Some(DhcpOption::VendorClass(v)) => Some((
                v.num,
                v.data
                    .first()
                    .map(|d| String::from_utf8_lossy(d).into_owned())
                    .unwrap_or_default(),
            )),
            _ => None,
        }
    }

    /// Option 15 entries as text.
    pub fn user_classes(&self) -> Vec<String> {
        match self.opts.get(OptionCode::UserClass) {
            Some(DhcpOption::UserClass(u)) => u
                .data
                .iter()
                .map(|d| String::from_utf8_lossy(d).into_owned())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The client's MAC: the innermost relay's RFC 6939 option 79 (what the relay saw on the
    /// wire), else the link-layer address of a DUID-LLT or DUID-LL with hardware type 1.
    pub fn mac(&self) -> Option<MacAddr> {
        let from_relay = self.relays.iter().rev().find_map(|r| {
            r.client_link_layer
                .as_ref()
                .filter(|(t, a)| *t == HTYPE_ETHERNET && a.len() == 6)
                .and_then(|(_, a)| MacAddr::from_slice(a))
        });
        from_relay.or_else(|| self.client_id().and_then(duid_mac))
    }
}

/// The Ethernet address inside a DUID-LLT (type 1) or DUID-LL (type 3) with hardware type 1
/// (RFC 8415 §11.2, §11.4).
pub fn duid_mac(duid: &[u8]) -> Option<MacAddr> {
    let t = u16::from_be_bytes([*duid.first()?, *duid.get(1)?]);
    let htype = u16::from_be_bytes([*duid.get(2)?, *duid.get(3)?]);
    if htype != HTYPE_ETHERNET {
        return None;
    }
    match (t, duid.len()) {
        (1, 14) => MacAddr::from_slice(&duid[8..]),
        (3, 10) => MacAddr::from_slice(&duid[4..]),
        _ => None,
    }
}

/// DUID-LLT (RFC 8415 §11.2) for an Ethernet address; `time` is seconds since
/// 2000-01-01 00:00:00 UTC, modulo 2^32.
pub fn duid_llt(mac: MacAddr, time: u32) -> Vec<u8> {
    let mut d = Vec::with_capacity(14);
    d.extend_from_slice(&1u16.to_be_bytes());
    d.extend_from_slice(&HTYPE_ETHERNET.to_be_bytes());
    d.extend_from_slice(&time.to_be_bytes());
    d.extend_from_slice(&mac.0);
    d
}

/// DUID-LL (RFC 8415 §11.4) for an Ethernet address.
pub fn duid_ll(mac: MacAddr) -> Vec<u8> {
    let mut d = Vec::with_capacity(10);
    d.extend_from_slice(&3u16.to_be_bytes());
    d.extend_from_slice(&HTYPE_ETHERNET.to_be_bytes());
    d.extend_from_slice(&mac.0);
    d
}

/// Option 24 value (RFC 3646 §4, RFC 8415 §10): the names in DNS wire format, uncompressed.
/// Names were validated at configuration load; one that hickory still refuses is left out.
pub fn domain_list(names: &[String]) -> Vec<u8> {
    use hickory_proto::rr::Name;
    use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};
    let mut out = Vec::new();
    for n in names {
        let Ok(name) = Name::from_ascii(n).map(|mut x| {
            x.set_fqdn(true);
            x
        }) else {
            continue;
        };
        let mut buf = Vec::new();
        let mut e = BinEncoder::new(&mut buf);
        e.set_name_encoding(NameEncoding::Uncompressed);
        if name.emit(&mut e).is_ok() {
            out.extend_from_slice(&buf);
        }
    }
    out
}

/// A Status Code option (RFC 8415 §21.13).
pub fn status(code: Status, message: &str) -> DhcpOption {
    DhcpOption::StatusCode(StatusCode {
        status: code,
        msg: message.to_string(),
    })
}

/// An option the dhcproto model has no type for, as raw octets.
pub fn raw_option(code: u16, data: Vec<u8>) -> DhcpOption {
    DhcpOption::Unknown(UnknownOption::new(OptionCode::from(code), data))
}

/// Encodes a server message: msg-type, transaction id, then `opts` (dhcproto's encoder, in
/// option-code order). Every option the server builds fits its 16-bit length, so encoding
/// cannot fail.
pub fn encode(msg_type: MessageType, xid: [u8; 3], opts: &DhcpOptions) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256);
    // dhcproto's encoder writes from the start of the buffer: the header goes through it too
    let mut e = dhcproto::Encoder::new(&mut buf);
    e.write_u8(msg_type.into())
        .and_then(|()| e.write(xid))
        .and_then(|()| opts.encode(&mut e))
        .expect("server-built DHCPv6 options encode");
    buf
}

/// Wraps a client reply in one Relay-reply per relay, innermost first (RFC 8415 §19.3): same
/// hop-count, link-address and peer-address as the Relay-forward, its Interface-ID echoed.
pub fn wrap_relay_reply(client_reply: Vec<u8>, relays: &[RelayHop]) -> Vec<u8> {
    let mut msg = client_reply;
    for hop in relays.iter().rev() {
        let mut out = Vec::with_capacity(RELAY_HEADER_LEN + msg.len() + 8 + 64);
        out.push(MessageType::RelayRepl.into());
        out.push(hop.hop_count);
        out.extend_from_slice(&hop.link_address.octets());
        out.extend_from_slice(&hop.peer_address.octets());
        if let Some(id) = &hop.interface_id {
            push_option(&mut out, OPT_INTERFACE_ID, id);
        }
        push_option(&mut out, OPT_RELAY_MSG, &msg);
        msg = out;
    }
    msg
}

/// Appends one option TLV. The value must be shorter than 64 KiB.
pub fn push_option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    let len = u16::try_from(value.len()).expect("an option value is shorter than 64 KiB");
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::hex;

    /// dhcproto's own Solicit fixture: DUID-LLT, ORO 23/24, elapsed time, IA_PD.
    fn solicit() -> Vec<u8> {
        hex(
            "01 10 08 74 00 01 00 0e 00 01 00 01 1c 39 cf 88 08 00 27 fe 8f 95 00 06 00 04 00 17
             00 18 00 08 00 02 00 00 00 19 00 0c 27 fe 8f 95 00 00 0e 10 00 00 15 18",
        )
    }

    #[test]
    fn decodes_a_captured_solicit() {
        let r = decode(&solicit()).unwrap();
        assert_eq!(r.msg_type, MessageType::Solicit);
        assert_eq!(r.xid, [0x10, 0x08, 0x74]);
        assert!(r.relays.is_empty());
        assert_eq!(r.client_id().unwrap().len(), 14);
        assert_eq!(r.mac(), Some(MacAddr([0x08, 0, 0x27, 0xfe, 0x8f, 0x95])));
        assert!(r.requests(23) && r.requests(24) && !r.requests(136));
        assert!(r.ia_nas().is_empty());
        assert!(r.has_ia(), "an IA_PD is an IA");
        let mut with_na = solicit();
        push_option(
            &mut with_na,
            OPT_IA_NA,
            &hex("27 fe 8f 95 00 00 0e 10 00 00 15 18"),
        );
        let r = decode(&with_na).unwrap();
        let ias = r.ia_nas();
        assert_eq!(ias.len(), 1);
        assert_eq!((ias[0].id, ias[0].t1, ias[0].t2), (0x27fe_8f95, 3600, 5400));
        // several IA_NAs keep their wire order
        for id in [9u32, 2, 5] {
            let mut v = id.to_be_bytes().to_vec();
            v.extend_from_slice(&[0; 8]);
            push_option(&mut with_na, OPT_IA_NA, &v);
        }
        let r = decode(&with_na).unwrap();
        let ids: Vec<u32> = r.ia_nas().iter().map(|ia| ia.id).collect();
        assert_eq!(ids, [0x27fe_8f95, 9, 2, 5]);
    }

    #[test]
    fn every_overrun_is_malformed() {
        let s = solicit();
        for cut in 1..s.len() {
            let r = decode(&s[..cut]);
            // cutting at an option boundary leaves a shorter, valid message
            let boundaries = [4, 22, 30, 36];
            if boundaries.contains(&cut) {
                assert!(r.is_ok(), "cut {cut}");
            } else {
                assert!(r.is_err(), "cut {cut}: {r:?}");
            }
        }
        let mut long = s.clone();
        long[5] = 0x00;
        long[7] = 0x30; // client-id length 48: past the end
        assert_eq!(decode(&long).unwrap_err(), Malformed::OptionOverrun);
    }

    #[test]
    fn fixed_lengths_are_checked() {
        let mut m = vec![1, 0, 0, 1];
        push_option(&mut m, OPT_ELAPSED_TIME, &[0, 0, 0]);
        assert_eq!(decode(&m).unwrap_err(), Malformed::BadOptionLength);
        let mut m = vec![1, 0, 0, 1];
        push_option(&mut m, OPT_VENDOR_CLASS, &[0, 0, 9]);
        assert_eq!(decode(&m).unwrap_err(), Malformed::BadOptionLength);
        let mut m = vec![1, 0, 0, 1];
        push_option(&mut m, OPT_IA_NA, &[0; 11]);
        assert_eq!(decode(&m).unwrap_err(), Malformed::BadOptionLength);
        // a status code of length 0 is not an option the server reads: kept raw, no panic
        let mut m = vec![1, 0, 0, 1];
        push_option(&mut m, OPT_STATUS_CODE, &[]);
        push_option(&mut m, OPT_VENDOR_OPTS, &[0, 0, 0, 9, 0, 13, 0, 0]);
        assert!(decode(&m).is_ok());
    }

    #[test]
    fn server_messages_are_not_for_the_server() {
        for t in [2u8, 7, 10, 13, 99] {
            assert_eq!(
                decode(&[t, 1, 2, 3]).unwrap_err(),
                Malformed::NotForServer,
                "{t}"
            );
        }
        assert_eq!(decode(&[]).unwrap_err(), Malformed::TooShort);
        assert_eq!(decode(&[1, 2]).unwrap_err(), Malformed::TooShort);
    }

    fn relay_forw(hop: u8, link: Ipv6Addr, inner: &[u8], extra: &[(u16, &[u8])]) -> Vec<u8> {
        let mut m = vec![12, hop];
        m.extend_from_slice(&link.octets());
        m.extend_from_slice(&"fe80::2".parse::<Ipv6Addr>().unwrap().octets());
        for (c, v) in extra {
            push_option(&mut m, *c, v);
        }
        push_option(&mut m, OPT_RELAY_MSG, inner);
        m
    }

    #[test]
    fn nested_relays_are_unwrapped_and_rewrapped() {
        let inner = solicit();
        let l1: Ipv6Addr = "2001:db8:2::1".parse().unwrap();
        let r1 = relay_forw(
            0,
            l1,
            &inner,
            &[
                (OPT_INTERFACE_ID, b"ge-0/0/1"),
                (OPT_CLIENT_LINKLAYER_ADDR, &[0, 1, 2, 0, 0, 0, 0, 7]),
                (OPT_REMOTE_ID, &[0, 0, 0x0d, 0xe9, b'r', b'1']),
            ],
        );
        let r2 = relay_forw(
            1,
            Ipv6Addr::UNSPECIFIED,
            &r1,
            &[(OPT_RELAY_SOURCE_PORT, &[0, 0])],
        );
        let got = decode(&r2).unwrap();
        assert_eq!(got.relays.len(), 2);
        assert!(got.relays[0].relay_source_port);
        assert_eq!(got.relays[0].link_address, Ipv6Addr::UNSPECIFIED);
        let inn = got.innermost().unwrap();
        assert_eq!(inn.link_address, l1);
        assert_eq!(inn.interface_id.as_deref(), Some(&b"ge-0/0/1"[..]));
        assert_eq!(inn.remote_id, Some((3561, b"r1".to_vec())));
        // option 79 wins over the DUID's MAC
        assert_eq!(got.mac(), Some(MacAddr([2, 0, 0, 0, 0, 7])));
        assert_eq!(got.msg_type, MessageType::Solicit);

        let wrapped = wrap_relay_reply(vec![7, 0x10, 0x08, 0x74], &got.relays);
        assert_eq!(wrapped[0], 13);
        assert_eq!(wrapped[1], 1);
        let outer = options(&wrapped[RELAY_HEADER_LEN..]).unwrap();
        assert_eq!(outer.len(), 1, "no interface-id at the outer hop");
        let (c, mid) = outer[0];
        assert_eq!(c, OPT_RELAY_MSG);
        assert_eq!(mid[0], 13);
        assert_eq!(&mid[2..18], &l1.octets());
        let in_opts = options(&mid[RELAY_HEADER_LEN..]).unwrap();
        assert_eq!(in_opts[0], (OPT_INTERFACE_ID, &b"ge-0/0/1"[..]));
        assert_eq!(in_opts[1], (OPT_RELAY_MSG, &[7, 0x10, 0x08, 0x74][..]));
    }

    #[test]
    fn relay_nesting_is_bounded() {
        let mut m = solicit();
        for i in 0..HOP_COUNT_LIMIT {
            m = relay_forw(i as u8, Ipv6Addr::UNSPECIFIED, &m, &[]);
        }
        assert_eq!(decode(&m).unwrap().relays.len(), HOP_COUNT_LIMIT);
        let m = relay_forw(9, Ipv6Addr::UNSPECIFIED, &m, &[]);
        assert_eq!(decode(&m).unwrap_err(), Malformed::RelayTooDeep);
        let mut no_msg = vec![12, 0];
        no_msg.extend_from_slice(&[0; 32]);
        assert_eq!(decode(&no_msg).unwrap_err(), Malformed::NoRelayMessage);
    }

    #[test]
    fn duids() {
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let llt = duid_llt(mac, 0x1234_5678);
        assert_eq!(hex::encode(&llt), "0001000112345678020000000001");
        assert_eq!(duid_mac(&llt), Some(mac));
        assert_eq!(duid_mac(&duid_ll(mac)), Some(mac));
        assert_eq!(
            duid_mac(&[0, 2, 0, 0, 0, 9, 1, 2, 3]),
            None,
            "DUID-EN has no MAC"
        );
        assert_eq!(
            duid_mac(&[0, 3, 0, 6, 2, 0, 0, 0, 0, 1]),
            None,
            "not Ethernet"
        );
        assert_eq!(duid_mac(&[0]), None);
    }

    #[test]
    fn domain_list_is_uncompressed() {
        let v = domain_list(&["staging.example.com".into(), "example.com".into()]);
        assert_eq!(
            v,
            [
                &b"\x07staging\x07example\x03com\x00"[..],
                &b"\x07example\x03com\x00"[..]
            ]
            .concat()
        );
    }
}
