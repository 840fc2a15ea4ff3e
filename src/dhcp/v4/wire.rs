//! DHCPv4 request decoding: dhcproto for the message, plus a raw option scan that joins split
//! options (RFC 3396) and keeps option 82 verbatim for the echo (RFC 3046)

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use dhcproto::v4::{Message, MessageType, Opcode};
use dhcproto::{Decodable, Decoder};

/// Fixed BOOTP header length, before the magic cookie.
pub const BOOTP_HEADER_LEN: usize = 236;
/// The DHCP magic cookie that starts the options field (RFC 2131 §3).
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];

/// Pad (RFC 2132 §3.1).
pub const OPT_PAD: u8 = 0;
/// Subnet mask (RFC 2132 §3.3).
pub const OPT_SUBNET_MASK: u8 = 1;
/// Router (RFC 2132 §3.5).
pub const OPT_ROUTER: u8 = 3;
/// Domain name server (RFC 2132 §3.8).
pub const OPT_DNS: u8 = 6;
/// Host name (RFC 2132 §3.14).
pub const OPT_HOSTNAME: u8 = 12;
/// Domain name (RFC 2132 §3.17).
pub const OPT_DOMAIN_NAME: u8 = 15;
/// Requested IP address (RFC 2132 §9.1).
pub const OPT_REQUESTED_ADDR: u8 = 50;
/// IP address lease time, seconds (RFC 2132 §9.2).
pub const OPT_LEASE_TIME: u8 = 51;
/// Option overload: 1 `file`, 2 `sname`, 3 both (RFC 2132 §9.3).
pub const OPT_OVERLOAD: u8 = 52;
/// DHCP message type (RFC 2132 §9.6).
pub const OPT_MESSAGE_TYPE: u8 = 53;
/// Server identifier (RFC 2132 §9.7).
pub const OPT_SERVER_ID: u8 = 54;
/// Parameter request list (RFC 2132 §9.8).
pub const OPT_PRL: u8 = 55;
/// Message, text (RFC 2132 §9.9).
pub const OPT_MESSAGE: u8 = 56;
/// Maximum DHCP message size, octets (RFC 2132 §9.10).
pub const OPT_MAX_SIZE: u8 = 57;
/// Renewal (T1) time, seconds (RFC 2132 §9.11).
pub const OPT_RENEWAL: u8 = 58;
/// Rebinding (T2) time, seconds (RFC 2132 §9.12).
pub const OPT_REBINDING: u8 = 59;
/// Vendor class identifier (RFC 2132 §9.13).
pub const OPT_VENDOR_CLASS: u8 = 60;
/// Client identifier (RFC 2132 §9.14).
pub const OPT_CLIENT_ID: u8 = 61;
/// User class (RFC 3004).
pub const OPT_USER_CLASS: u8 = 77;
/// Relay agent information (RFC 3046).
pub const OPT_RELAY_AGENT: u8 = 82;
/// Subnet selection (RFC 3011).
pub const OPT_SUBNET_SELECTION: u8 = 118;
/// Domain search list (RFC 3397).
pub const OPT_DOMAIN_SEARCH: u8 = 119;
/// SZTP redirect: the bootstrap-server list (RFC 8572 §8.1).
pub const OPT_SZTP_REDIRECT: u8 = 143;
/// End (RFC 2132 §3.2).
pub const OPT_END: u8 = 255;

/// Relay agent sub-options we act on.
pub const RAI_CIRCUIT_ID: u8 = 1;
/// Remote-id sub-option of option 82 (RFC 3046 §3.2).
pub const RAI_REMOTE_ID: u8 = 2;
/// Link-selection sub-option of option 82 (RFC 3527).
pub const RAI_LINK_SELECTION: u8 = 5;
/// Relay-port sub-option of option 82 (RFC 8357).
pub const RAI_RELAY_PORT: u8 = 19;

/// Why a packet was dropped before it reached the handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than the BOOTP header and magic cookie.
    TooShort,
    /// The magic cookie is wrong.
    BadCookie,
    /// `op` is not BOOTREQUEST.
    NotBootRequest,
    /// `hlen` is over 16.
    BadHardwareLength,
    /// dhcproto refused the fixed header.
    Undecodable,
    /// No valid option 53.
    NoMessageType,
    /// An option runs past the end of its field.
    BadOptions,
    /// An option the server stores or echoes (client identifier, host name, vendor or user
    /// class, relay agent information, …) is longer than [`max_option_len`] allows.
    OptionTooLong(u8),
}

impl Malformed {
    /// The kebab-case name used in logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Malformed::TooShort => "too-short",
            Malformed::BadCookie => "bad-cookie",
            Malformed::NotBootRequest => "not-bootrequest",
            Malformed::BadHardwareLength => "bad-hlen",
            Malformed::Undecodable => "undecodable",
            Malformed::NoMessageType => "no-message-type",
            Malformed::BadOptions => "bad-options",
            Malformed::OptionTooLong(_) => "option-too-long",
        }
    }
}

/// The longest client identifier accepted, in octets (Kea's bound).
pub const MAX_CLIENT_ID_LEN: usize = 128;
/// The longest value accepted for the other options the server keeps (journal, device events,
/// policy matching) or echoes: what one option instance can carry.
pub const MAX_KEPT_OPTION_LEN: usize = 255;
/// Client FQDN (RFC 4702).
pub const OPT_CLIENT_FQDN: u8 = 81;

/// The longest value, all instances joined (RFC 3396), the server accepts for option `code`,
/// in octets; `None` for options it neither keeps nor echoes (bounded by the datagram only).
/// RFC 3396 lets any option span instances, so a client identifier of 60 KB costs every
/// lease lookup, journal write and listing that touches it; such a request is dropped
/// ([`Malformed::OptionTooLong`]) and counted.
pub fn max_option_len(code: u8) -> Option<usize> {
    match code {
        OPT_CLIENT_ID => Some(MAX_CLIENT_ID_LEN),
        OPT_HOSTNAME | OPT_VENDOR_CLASS | OPT_USER_CLASS | OPT_RELAY_AGENT | OPT_PRL
        | OPT_CLIENT_FQDN => Some(MAX_KEPT_OPTION_LEN),
        _ => None,
    }
}

/// Option instances as `(code, data)` in wire order.
pub type OptionInstances<'a> = Vec<(u8, &'a [u8])>;

/// Every option instance of a BOOTP message in wire order (Pad and End left out): the options
/// field, then `file` and `sname` when option 52 says so (RFC 2131 §4.1; RFC 3396 §5 order).
/// `None` when the message is shorter than the fixed header and magic cookie, or the cookie is
/// wrong. `complete` is false when an option ran past the end of its field: the scan of that
/// field stopped there (a server drops such a request; the probe reads what it can).
///
/// The one DHCPv4 option scanner: the server, the probe, the tests and the fuzz oracle use it.
pub fn option_instances(packet: &[u8]) -> Option<(OptionInstances<'_>, bool)> {
    if packet.len() < BOOTP_HEADER_LEN + 4 || packet[BOOTP_HEADER_LEN..][..4] != MAGIC_COOKIE {
        return None;
    }
    let mut out = Vec::new();
    let mut complete = scan_field(&packet[BOOTP_HEADER_LEN + 4..], &mut out);
    let overload = concat_option(&out, OPT_OVERLOAD)
        .and_then(|v| v.first().copied())
        .unwrap_or(0);
    if overload & 1 != 0 {
        complete &= scan_field(&packet[108..236], &mut out);
    }
    if overload & 2 != 0 {
        complete &= scan_field(&packet[44..108], &mut out);
    }
    Some((out, complete))
}

/// [`option_instances`] without the completeness flag (the probe's tolerant read).
pub fn raw_options(packet: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    option_instances(packet).map(|(v, _)| v)
}

/// RFC 3396: the data of every instance of `code`, concatenated in order; `None` when absent.
pub fn concat_option(opts: &[(u8, &[u8])], code: u8) -> Option<Vec<u8>> {
    let mut found = false;
    let mut out = Vec::new();
    for (c, d) in opts {
        if *c == code {
            found = true;
            out.extend_from_slice(d);
        }
    }
    found.then_some(out)
}

/// Every option's instances joined in order (RFC 3396), by code. `None` when the packet has no
/// magic cookie or an option runs past the end of its field.
pub fn scan_options(packet: &[u8]) -> Option<BTreeMap<u8, Vec<u8>>> {
    let (instances, complete) = option_instances(packet)?;
    if !complete {
        return None;
    }
    let mut out: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
    for (code, data) in instances {
        out.entry(code).or_default().extend_from_slice(data);
    }
    Some(out)
}

/// Appends the instances of one field to `out`; false when an option overruns the field. A
/// missing End option is tolerated, as most servers do.
fn scan_field<'a>(mut b: &'a [u8], out: &mut Vec<(u8, &'a [u8])>) -> bool {
    while let Some((&code, rest)) = b.split_first() {
        match code {
            OPT_PAD => b = rest,
            OPT_END => return true,
            _ => {
                let Some((&len, rest)) = rest.split_first() else {
                    return false;
                };
                let Some(data) = rest.get(..usize::from(len)) else {
                    return false;
                };
                out.push((code, data));
                b = &rest[usize::from(len)..];
            }
        }
    }
    true
}

/// Sub-options of a relay agent information option; the first instance of each code counts.
pub fn relay_suboptions(rai: &[u8]) -> BTreeMap<u8, Vec<u8>> {
    let mut out: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
    let mut b = rai;
    while b.len() >= 2 {
        let (code, len) = (b[0], b[1] as usize);
        let Some(data) = b.get(2..2 + len) else { break };
        out.entry(code).or_insert_with(|| data.to_vec());
        b = &b[2 + len..];
    }
    out
}

/// A decoded DHCPv4 request with the option values the server acts on.
#[derive(Clone, Debug)]
pub struct Request {
    /// The fixed header as dhcproto decodes it (its options are not used).
    pub msg: Message,
    /// Option 53.
    pub msg_type: MessageType,
    /// All options, instances joined (RFC 3396).
    pub options: BTreeMap<u8, Vec<u8>>,
}

fn ipv4(v: Option<&Vec<u8>>) -> Option<Ipv4Addr> {
    let b: [u8; 4] = v?.as_slice().try_into().ok()?;
    Some(Ipv4Addr::from(b))
}

impl Request {
    /// Decodes a BOOTREQUEST; `Err` says why it is dropped.
    pub fn decode(packet: &[u8]) -> Result<Request, Malformed> {
        if packet.len() < BOOTP_HEADER_LEN + 4 {
            return Err(Malformed::TooShort);
        }
        if packet[BOOTP_HEADER_LEN..BOOTP_HEADER_LEN + 4] != MAGIC_COOKIE {
            return Err(Malformed::BadCookie);
        }
        if packet[0] != 1 {
            return Err(Malformed::NotBootRequest);
        }
        if packet[2] > 16 {
            return Err(Malformed::BadHardwareLength);
        }
        let options = scan_options(packet).ok_or(Malformed::BadOptions)?;
        if let Some((&code, _)) = options
            .iter()
            .find(|(&c, v)| max_option_len(c).is_some_and(|max| v.len() > max))
        {
            return Err(Malformed::OptionTooLong(code));
        }
        // dhcproto decodes the fixed header only: the options are ours (scan_options joins
        // split options, which dhcproto does not, and dhcproto 0.15 debug-asserts on some
        // option lengths a device can send — found by fuzzing)
        let mut header = [0u8; BOOTP_HEADER_LEN + 5];
        header[..BOOTP_HEADER_LEN + 4].copy_from_slice(&packet[..BOOTP_HEADER_LEN + 4]);
        header[BOOTP_HEADER_LEN + 4] = OPT_END;
        let msg =
            Message::decode(&mut Decoder::new(&header)).map_err(|_| Malformed::Undecodable)?;
        if msg.opcode() != Opcode::BootRequest {
            return Err(Malformed::NotBootRequest);
        }
        let msg_type = match options.get(&OPT_MESSAGE_TYPE).map(|v| v.as_slice()) {
            Some([t]) => MessageType::from(*t),
            _ => return Err(Malformed::NoMessageType),
        };
        Ok(Request {
            msg,
            msg_type,
            options,
        })
    }

    /// The value of option `code`, instances joined.
    pub fn opt(&self, code: u8) -> Option<&[u8]> {
        self.options.get(&code).map(|v| v.as_slice())
    }

    /// Option 50.
    pub fn requested_addr(&self) -> Option<Ipv4Addr> {
        ipv4(self.options.get(&OPT_REQUESTED_ADDR))
    }

    /// Option 54.
    pub fn server_id(&self) -> Option<Ipv4Addr> {
        ipv4(self.options.get(&OPT_SERVER_ID))
    }

    /// Whether `code` is in the parameter request list (option 55).
    pub fn requests(&self, code: u8) -> bool {
        self.opt(OPT_PRL).is_some_and(|p| p.contains(&code))
    }

    /// The client's option 57, when it is a legal value (≥ 576).
    pub fn max_message_size(&self) -> Option<u16> {
        let v: [u8; 2] = self.opt(OPT_MAX_SIZE)?.try_into().ok()?;
        Some(u16::from_be_bytes(v)).filter(|&n| n >= 576)
    }

    /// Option 82, verbatim (for the echo).
    pub fn relay_agent_info(&self) -> Option<&[u8]> {
        self.opt(OPT_RELAY_AGENT)
    }

    /// The first sub-option `code` of option 82.
    pub fn relay_suboption(&self, code: u8) -> Option<Vec<u8>> {
        relay_suboptions(self.relay_agent_info()?).remove(&code)
    }

    /// RFC 8357: the relay asks for replies on the UDP source port of this packet instead of
    /// 67. The sub-option is a flag (length 0, as ISC dhcrelay and Kea use it).
    pub fn wants_relay_port(&self) -> bool {
        self.relay_suboption(RAI_RELAY_PORT).is_some()
    }

    /// RFC 3527 link-selection sub-option, else RFC 3011 subnet-selection option.
    pub fn link_selection(&self) -> Option<Ipv4Addr> {
        self.relay_suboption(RAI_LINK_SELECTION)
            .and_then(|v| ipv4(Some(&v)))
            .or_else(|| ipv4(self.options.get(&OPT_SUBNET_SELECTION)))
    }

    /// Option 61, when not empty.
    pub fn client_id(&self) -> Option<&[u8]> {
        self.opt(OPT_CLIENT_ID).filter(|v| !v.is_empty())
    }

    /// Option 60 as text (lossy UTF-8).
    pub fn vendor_class(&self) -> Option<String> {
        self.opt(OPT_VENDOR_CLASS)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Option 77: RFC 3004 length-prefixed instances; a value that does not parse that way
    /// (many clients send one bare string) is taken whole.
    pub fn user_classes(&self) -> Vec<String> {
        let Some(v) = self.opt(OPT_USER_CLASS) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut b = v;
        while let Some((&len, rest)) = b.split_first() {
            match rest.get(..len as usize) {
                Some(data) if len > 0 => {
                    out.push(String::from_utf8_lossy(data).into_owned());
                    b = &rest[len as usize..];
                }
                _ => return vec![String::from_utf8_lossy(v).into_owned()],
            }
        }
        out
    }

    /// Option 12, when not empty (lossy UTF-8), without trailing NUL octets: some clients
    /// send the C string's terminator (RFC 2132 §3.14 says not to; ISC dhcpd strips it too).
    pub fn hostname(&self) -> Option<String> {
        let v = self.opt(OPT_HOSTNAME)?;
        let end = v.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        Some(String::from_utf8_lossy(&v[..end]).into_owned()).filter(|s| !s.is_empty())
    }

    /// chaddr, when `hlen` is 6 (Ethernet).
    pub fn chaddr_mac(&self) -> Option<crate::policy::MacAddr> {
        if self.msg.hlen() == 6 {
            crate::policy::MacAddr::from_slice(self.msg.chaddr())
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(opts: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; BOOTP_HEADER_LEN];
        p[0] = 1;
        p[1] = 1;
        p[2] = 6;
        p[28..34].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        p.extend_from_slice(&MAGIC_COOKIE);
        p.extend_from_slice(opts);
        p
    }

    #[test]
    fn joins_non_adjacent_instances() {
        let p = packet(&[53, 1, 1, 77, 2, b'a', b'b', 12, 1, b'h', 77, 1, b'c', 255]);
        let r = Request::decode(&p).unwrap();
        assert_eq!(r.msg_type, MessageType::Discover);
        assert_eq!(r.opt(77), Some(&b"abc"[..]));
    }

    // fuzz finding F2: dhcproto 0.15 debug-asserts on option 154 of length 0
    #[test]
    fn odd_option_lengths_do_not_reach_dhcproto() {
        let r = Request::decode(&packet(&[
            53, 1, 1, 154, 0, 80, 1, 0, 94, 1, 0, 81, 1, 0, 255,
        ]))
        .unwrap();
        assert_eq!(r.msg_type, MessageType::Discover);
        assert_eq!(r.opt(154), Some(&[][..]));
    }

    #[test]
    fn drops_malformed() {
        assert_eq!(Request::decode(&[1; 10]).unwrap_err(), Malformed::TooShort);
        let mut p = packet(&[53, 1, 1, 255]);
        p[236] = 0;
        assert_eq!(Request::decode(&p).unwrap_err(), Malformed::BadCookie);
        let mut p = packet(&[53, 1, 1, 255]);
        p[0] = 2;
        assert_eq!(Request::decode(&p).unwrap_err(), Malformed::NotBootRequest);
        let p = packet(&[53, 5, 1]);
        assert_eq!(Request::decode(&p).unwrap_err(), Malformed::BadOptions);
        let p = packet(&[12, 1, b'h', 255]);
        assert_eq!(Request::decode(&p).unwrap_err(), Malformed::NoMessageType);
    }

    /// RFC 3396 lets a client identifier span instances: past 128 octets (Kea's bound) the
    /// request is dropped, however it is split; at 128 it is served.
    #[test]
    fn stored_options_are_bounded_however_they_are_split() {
        let split = |code: u8, len: usize| {
            let mut opts = vec![53, 1, 1];
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            for chunk in data.chunks(255) {
                opts.extend_from_slice(&[code, chunk.len() as u8]);
                opts.extend_from_slice(chunk);
            }
            opts.push(255);
            packet(&opts)
        };
        let r = Request::decode(&split(OPT_CLIENT_ID, 128)).unwrap();
        assert_eq!(r.client_id().unwrap().len(), 128);
        for len in [129, 255, 256, 32_768, 60_000] {
            let mut p = split(OPT_CLIENT_ID, len);
            // a datagram: at most 65,507 octets of UDP payload
            p.truncate(65_507);
            if p.last() != Some(&255) {
                continue;
            }
            assert_eq!(
                Request::decode(&p).unwrap_err(),
                Malformed::OptionTooLong(OPT_CLIENT_ID),
                "{len}"
            );
        }
        for code in [
            OPT_HOSTNAME,
            OPT_VENDOR_CLASS,
            OPT_USER_CLASS,
            OPT_RELAY_AGENT,
        ] {
            Request::decode(&split(code, 255)).unwrap();
            assert_eq!(
                Request::decode(&split(code, 256)).unwrap_err(),
                Malformed::OptionTooLong(code)
            );
        }
        // an option nobody keeps may be long
        Request::decode(&split(200, 4000)).unwrap();
    }

    #[test]
    fn relay_suboptions_and_user_class() {
        let p = packet(&[
            53, 1, 1, 77, 7, 3, b'o', b'p', b'i', 2, b'x', b'y', 82, 14, 1, 2, b'g', b'1', 5, 4,
            192, 0, 2, 1, 19, 2, 0x1a, 0x6f, 255,
        ]);
        let r = Request::decode(&p).unwrap();
        assert_eq!(r.user_classes(), ["opi", "xy"]);
        assert!(r.wants_relay_port());
        assert_eq!(r.link_selection(), Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(r.relay_suboption(RAI_CIRCUIT_ID).unwrap(), b"g1");
        let bare = packet(&[
            53, 1, 1, 77, 8, b'o', b'p', b'i', b'-', b's', b'z', b't', b'p', 255,
        ]);
        assert_eq!(Request::decode(&bare).unwrap().user_classes(), ["opi-sztp"]);
    }
}
