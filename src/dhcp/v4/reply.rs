//! DHCPv4 reply encoding: message type first, relay agent information last (RFC 3046 §2.2),
//! long options split per RFC 3396, padded to the 300-octet BOOTP minimum, sized to fit
//!
//! dhcproto's encoder orders options by code, which puts 82 before 119 and 143; the reply is
//! therefore written here, from a [`ReplyHeader`] value (the request's fields it echoes and
//! the ones the server sets) and [`ReplyOptions`] in wire order.

use std::net::Ipv4Addr;

use dhcproto::v4::MessageType;

use super::wire::{
    Request, BOOTP_HEADER_LEN, MAGIC_COOKIE, OPT_END, OPT_MESSAGE_TYPE, OPT_RELAY_AGENT,
};
use crate::sztp::redirect_list::{rfc3396_wire_len, split_rfc3396};

/// Smallest datagram every client must accept (RFC 2131 §2), IP and UDP headers included.
pub const MIN_DATAGRAM: usize = 576;
/// IPv4 (20) and UDP (8) header octets around a DHCP message.
pub const IP_UDP_HEADERS: usize = 28;
/// The largest datagram we send whatever option 57 says: one Ethernet frame, no fragments.
pub const MAX_DATAGRAM: usize = 1500;
/// Old BOOTP relays and clients expect at least this many octets.
pub const BOOTP_MIN_LEN: usize = 300;

/// The fixed BOOTP fields of a reply (RFC 2131 §2, table 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyHeader {
    /// Hardware type, echoed (1: Ethernet).
    pub htype: u8,
    /// Hardware address length, echoed.
    pub hlen: u8,
    /// Transaction id, echoed.
    pub xid: u32,
    /// The broadcast flag (bit 15 of `flags`).
    pub broadcast: bool,
    /// Client address: the request's in an ACK, else 0.0.0.0.
    pub ciaddr: Ipv4Addr,
    /// "Your" address: the address offered or acknowledged.
    pub yiaddr: Ipv4Addr,
    /// Next server address (always 0.0.0.0 here: no boot file service).
    pub siaddr: Ipv4Addr,
    /// Relay agent address, echoed.
    pub giaddr: Ipv4Addr,
    /// Client hardware address, echoed (16 octets).
    pub chaddr: [u8; 16],
}

impl ReplyHeader {
    /// The header of a `msg_type` reply to `req` handing out `yiaddr`.
    pub fn to(req: &Request, msg_type: MessageType, yiaddr: Ipv4Addr, broadcast: bool) -> Self {
        let m = &req.msg;
        let mut chaddr = [0u8; 16];
        let c = m.chaddr();
        chaddr[..c.len().min(16)].copy_from_slice(&c[..c.len().min(16)]);
        ReplyHeader {
            htype: m.htype().into(),
            hlen: m.hlen(),
            xid: m.xid(),
            broadcast,
            // RFC 2131 table 3: ciaddr is echoed in an ACK only
            ciaddr: if msg_type == MessageType::Ack {
                m.ciaddr()
            } else {
                Ipv4Addr::UNSPECIFIED
            },
            yiaddr,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: m.giaddr(),
            chaddr,
        }
    }
}

/// Options in the order they go on the wire, each value whole (split on encoding when longer
/// than 255 octets, RFC 3396).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplyOptions {
    opts: Vec<(u8, Vec<u8>)>,
}

impl ReplyOptions {
    /// Appends option `code` with `value`.
    pub fn push(&mut self, code: u8, value: Vec<u8>) {
        self.opts.push((code, value));
    }

    /// Octets these options take on the wire (with RFC 3396 splits), End not counted.
    pub fn wire_len(&self) -> usize {
        self.opts
            .iter()
            .map(|(_, v)| rfc3396_wire_len(v.len()))
            .sum()
    }

    /// The options in wire order, as `(code, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &[u8])> {
        self.opts.iter().map(|(c, v)| (*c, v.as_slice()))
    }

    /// The value of option `code`, if present.
    pub fn get(&self, code: u8) -> Option<&[u8]> {
        self.opts
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_slice())
    }
}

/// Budget for a reply's DHCP message (UDP payload) given the client's option 57.
pub fn message_budget(max_size: Option<u16>) -> usize {
    let datagram = max_size
        .map(usize::from)
        .unwrap_or(MIN_DATAGRAM)
        .clamp(MIN_DATAGRAM, MAX_DATAGRAM);
    datagram - IP_UDP_HEADERS
}

/// Octets a reply takes with these options and an echoed option 82, before padding.
pub fn reply_len(opts: &ReplyOptions, relay_agent_info: Option<&[u8]>) -> usize {
    BOOTP_HEADER_LEN
        + MAGIC_COOKIE.len()
        + 3 // message type
        + opts.wire_len()
        + relay_agent_info.map_or(0, |r| rfc3396_wire_len(r.len()))
        + 1 // End
}

/// Encode a BOOTREPLY: header, magic cookie, option 53, `opts` in order, `relay_agent_info`
/// (option 82, echoed last), End, padded to [`BOOTP_MIN_LEN`].
pub fn encode(
    msg_type: MessageType,
    hdr: &ReplyHeader,
    opts: &ReplyOptions,
    relay_agent_info: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(&mut out, msg_type, hdr, opts, relay_agent_info);
    out
}

/// [`encode`] into `out`, which is cleared first (a sender reuses one buffer).
pub fn encode_into(
    out: &mut Vec<u8>,
    msg_type: MessageType,
    hdr: &ReplyHeader,
    opts: &ReplyOptions,
    relay_agent_info: Option<&[u8]>,
) {
    out.clear();
    out.reserve(reply_len(opts, relay_agent_info).max(BOOTP_MIN_LEN));
    out.push(2); // BOOTREPLY
    out.push(hdr.htype);
    out.push(hdr.hlen);
    out.push(0); // hops
    out.extend_from_slice(&hdr.xid.to_be_bytes());
    out.extend_from_slice(&[0, 0]); // secs
    let flags: u16 = if hdr.broadcast { 0x8000 } else { 0 };
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&hdr.ciaddr.octets());
    out.extend_from_slice(&hdr.yiaddr.octets());
    out.extend_from_slice(&hdr.siaddr.octets());
    out.extend_from_slice(&hdr.giaddr.octets());
    out.extend_from_slice(&hdr.chaddr);
    out.extend_from_slice(&[0u8; 64 + 128]); // sname, file
    out.extend_from_slice(&MAGIC_COOKIE);
    out.extend_from_slice(&[OPT_MESSAGE_TYPE, 1, u8::from(msg_type)]);
    for (code, value) in &opts.opts {
        push_option(out, *code, value);
    }
    if let Some(rai) = relay_agent_info {
        push_option(out, OPT_RELAY_AGENT, rai);
    }
    out.push(OPT_END);
    if out.len() < BOOTP_MIN_LEN {
        out.resize(BOOTP_MIN_LEN, 0);
    }
}

/// One option as `code len value` instances of at most 255 octets each (RFC 3396); an empty
/// value is one instance of length 0.
fn push_option(out: &mut Vec<u8>, code: u8, value: &[u8]) {
    if value.len() <= 255 {
        out.extend_from_slice(&[code, value.len() as u8]);
        out.extend_from_slice(value);
    } else {
        out.extend_from_slice(&split_rfc3396(code, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_follows_option_57_within_limits() {
        assert_eq!(message_budget(None), 548);
        assert_eq!(message_budget(Some(1000)), 972);
        assert_eq!(message_budget(Some(9000)), 1472);
        assert_eq!(message_budget(Some(100)), 548);
    }
}
