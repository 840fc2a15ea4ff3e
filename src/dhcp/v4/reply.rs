//! DHCPv4 reply encoding: message type first, relay agent information last (RFC 3046 §2.2),
//! long options split per RFC 3396, padded to the 300-octet BOOTP minimum, sized to fit
//!
//! dhcproto's encoder orders options by code, which puts 82 before 119 and 143; the reply is
//! therefore written here, over the request's dhcproto header fields.

use std::net::Ipv4Addr;

use dhcproto::v4::MessageType;

use super::wire::{
    Request, BOOTP_HEADER_LEN, MAGIC_COOKIE, OPT_END, OPT_MESSAGE_TYPE, OPT_RELAY_AGENT,
};
use crate::sztp::redirect_list::{rfc3396_wire_len, split_rfc3396};

/// Smallest datagram every client must accept (RFC 2131 §2), IP and UDP headers included.
pub const MIN_DATAGRAM: usize = 576;
pub const IP_UDP_HEADERS: usize = 28;
/// The largest datagram we send whatever option 57 says: one Ethernet frame, no fragments.
pub const MAX_DATAGRAM: usize = 1500;
/// Old BOOTP relays and clients expect at least this many octets.
pub const BOOTP_MIN_LEN: usize = 300;

/// The fields of a reply header that differ from the request.
#[derive(Clone, Copy, Debug)]
pub struct ReplyHeader {
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub broadcast: bool,
}

/// Options in the order they go on the wire.
#[derive(Clone, Debug, Default)]
pub struct ReplyOptions {
    opts: Vec<(u8, Vec<u8>)>,
}

impl ReplyOptions {
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

/// Encode a BOOTREPLY to `req`.
pub fn encode(
    req: &Request,
    msg_type: MessageType,
    hdr: ReplyHeader,
    opts: &ReplyOptions,
    relay_agent_info: Option<&[u8]>,
) -> Vec<u8> {
    let m = &req.msg;
    let mut out = Vec::with_capacity(reply_len(opts, relay_agent_info).max(BOOTP_MIN_LEN));
    out.push(2); // BOOTREPLY
    out.push(m.htype().into());
    out.push(m.hlen());
    out.push(0); // hops
    out.extend_from_slice(&m.xid().to_be_bytes());
    out.extend_from_slice(&[0, 0]); // secs
    let flags: u16 = if hdr.broadcast { 0x8000 } else { 0 };
    out.extend_from_slice(&flags.to_be_bytes());
    // RFC 2131 table 3: ciaddr is echoed in an ACK only
    let ciaddr = if msg_type == MessageType::Ack {
        m.ciaddr()
    } else {
        Ipv4Addr::UNSPECIFIED
    };
    out.extend_from_slice(&ciaddr.octets());
    out.extend_from_slice(&hdr.yiaddr.octets());
    out.extend_from_slice(&hdr.siaddr.octets());
    out.extend_from_slice(&m.giaddr().octets());
    let mut chaddr = [0u8; 16];
    let c = m.chaddr();
    chaddr[..c.len().min(16)].copy_from_slice(&c[..c.len().min(16)]);
    out.extend_from_slice(&chaddr);
    out.extend_from_slice(&[0u8; 64 + 128]); // sname, file
    out.extend_from_slice(&MAGIC_COOKIE);
    out.extend_from_slice(&[OPT_MESSAGE_TYPE, 1, u8::from(msg_type)]);
    for (code, value) in &opts.opts {
        out.extend_from_slice(&split_rfc3396(*code, value));
    }
    if let Some(rai) = relay_agent_info {
        out.extend_from_slice(&split_rfc3396(OPT_RELAY_AGENT, rai));
    }
    out.push(OPT_END);
    if out.len() < BOOTP_MIN_LEN {
        out.resize(BOOTP_MIN_LEN, 0);
    }
    out
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
