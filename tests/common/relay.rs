//! A DHCPv4 relay agent on 127.0.0.1 built with dhcproto (not our encoder): drives exchanges
//! against a server on loopback, no privileges needed.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};

/// A relay agent on 127.0.0.1 that asks for subnet 192.0.2.0/24 by link selection (RFC 3527)
/// and gets replies on its own port (RFC 8357).
pub(crate) struct Relay {
    pub(crate) sock: UdpSocket,
    pub(crate) server: SocketAddr,
}

pub(crate) struct Exchange {
    pub(crate) offer: Message,
    pub(crate) ack: Message,
}

pub(crate) fn mac(n: u32) -> [u8; 6] {
    let b = n.to_be_bytes();
    [2, 0, b[0], b[1], b[2], b[3]]
}

impl Relay {
    pub(crate) fn new(port: u16) -> Relay {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        Relay {
            sock,
            server: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    pub(crate) fn message(
        &self,
        t: MessageType,
        chaddr: [u8; 6],
        xid: u32,
        ask_143: bool,
    ) -> Vec<u8> {
        let mut m = Message::new_with_id(
            xid,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::LOCALHOST,
            &chaddr,
        );
        m.set_hops(1);
        m.opts_mut().insert(DhcpOption::MessageType(t));
        let mut prl = vec![OptionCode::SubnetMask, OptionCode::Router];
        if ask_143 {
            prl.push(OptionCode::from(143u8));
        }
        m.opts_mut().insert(DhcpOption::ParameterRequestList(prl));
        let mut bytes = m.to_vec().unwrap();
        // option 82 by hand: link-selection 192.0.2.1 and relay-port
        let rai = [5, 4, 192, 0, 2, 1, 19, 0];
        let end = bytes.len() - 1;
        bytes.splice(end..end, [&[82u8, rai.len() as u8][..], &rai[..]].concat());
        bytes
    }

    pub(crate) fn recv(&self, xid: u32) -> Option<Message> {
        let mut buf = [0u8; 1500];
        loop {
            let (n, _) = self.sock.recv_from(&mut buf).ok()?;
            let m = Message::decode(&mut Decoder::new(&buf[..n])).expect("reply decodes");
            assert_eq!(m.opcode(), Opcode::BootReply);
            if m.xid() == xid {
                return Some(m);
            }
        }
    }

    pub(crate) fn exchange(&self, chaddr: [u8; 6], xid: u32, ask_143: bool) -> Option<Exchange> {
        self.sock
            .send_to(
                &self.message(MessageType::Discover, chaddr, xid, ask_143),
                self.server,
            )
            .unwrap();
        let offer = self.recv(xid)?;
        assert_eq!(offer.opts().msg_type(), Some(MessageType::Offer));
        let sid = match offer.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(s)) => *s,
            o => panic!("no server id: {o:?}"),
        };
        let mut req = Message::decode(&mut Decoder::new(&self.message(
            MessageType::Request,
            chaddr,
            xid + 1,
            ask_143,
        )))
        .unwrap();
        req.opts_mut()
            .insert(DhcpOption::RequestedIpAddress(offer.yiaddr()));
        req.opts_mut().insert(DhcpOption::ServerIdentifier(sid));
        // re-add 82 (dhcproto re-encodes decoded options; append ours by hand again)
        req.opts_mut().remove(OptionCode::RelayAgentInformation);
        let mut bytes = req.to_vec().unwrap();
        let rai = [5, 4, 192, 0, 2, 1, 19, 0];
        let end = bytes.len() - 1;
        bytes.splice(end..end, [&[82u8, rai.len() as u8][..], &rai[..]].concat());
        self.sock.send_to(&bytes, self.server).unwrap();
        let ack = self.recv(xid + 1)?;
        Some(Exchange { offer, ack })
    }
}

pub(crate) fn uris_143(m: &Message) -> Option<Vec<String>> {
    match m.opts().get(OptionCode::from(143u8)) {
        Some(DhcpOption::Unknown(u)) => {
            let mut d = u.data();
            let mut out = vec![];
            while d.len() >= 2 {
                let l = u16::from_be_bytes([d[0], d[1]]) as usize;
                out.push(String::from_utf8(d[2..2 + l].to_vec()).unwrap());
                d = &d[2 + l..];
            }
            Some(out)
        }
        _ => None,
    }
}
