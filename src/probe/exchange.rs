//! The probe's I/O: raw frames on an interface (device mode) or a UDP socket (relay mode), and
//! the DISCOVER → OFFER(s) → REQUEST → ACK exchange with retransmissions

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use dhcproto::v4::MessageType;
use pnet::datalink::{DataLinkReceiver, DataLinkSender};

use super::dhcp4::{
    add_offer, build_discover, build_release, build_request, choose, parse_reply, Offer, Outcome,
    ProbeParams, ProbeReport, Reply, Source,
};
use crate::dhcp::v4::frame::{build_udp_frame, parse_udp_frame};
use crate::dhcp::v4::sockets::ethernet_channel;
use crate::policy::MacAddr;

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dest {
    /// DISCOVER and REQUEST: to all servers on the link (or the relay target).
    Servers,
    /// RELEASE: to the server that granted the lease.
    Server(Source),
}

/// Moves DHCP messages; the exchange above it knows nothing of sockets.
pub(crate) trait Transport {
    fn send(&mut self, msg: &[u8], dest: Dest) -> io::Result<()>;
    /// The next datagram for the client port, or `None` once `deadline` passes.
    fn recv(&mut self, deadline: Instant) -> io::Result<Option<(Source, Vec<u8>)>>;
}

/// Device mode: raw Ethernet frames, so the probe needs no address and sees every reply
/// whether broadcast or unicast to its MAC.
pub(crate) struct RawTransport {
    mac: MacAddr,
    tx: Box<dyn DataLinkSender>,
    rx: Box<dyn DataLinkReceiver>,
    /// Our address once acknowledged, the source of a RELEASE.
    pub(crate) ciaddr: Ipv4Addr,
}

impl RawTransport {
    pub(crate) fn open(iface: &str, mac: MacAddr) -> io::Result<RawTransport> {
        // promiscuous: replies to a --mac other than the interface's must still be seen
        let (tx, rx) = ethernet_channel(iface, Some(Duration::from_millis(100)), true)?;
        Ok(RawTransport {
            mac,
            tx,
            rx,
            ciaddr: Ipv4Addr::UNSPECIFIED,
        })
    }
}

impl Transport for RawTransport {
    fn send(&mut self, msg: &[u8], dest: Dest) -> io::Result<()> {
        let (dst_mac, src, dst) = match dest {
            Dest::Servers => (
                MacAddr([0xff; 6]),
                SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
                SocketAddrV4::new(Ipv4Addr::BROADCAST, 67),
            ),
            Dest::Server(s) => (
                s.mac.unwrap_or(MacAddr([0xff; 6])),
                SocketAddrV4::new(self.ciaddr, 68),
                SocketAddrV4::new(s.ip, 67),
            ),
        };
        let frame = build_udp_frame(self.mac, dst_mac, src, dst, msg);
        self.tx
            .send_to(&frame, None)
            .unwrap_or_else(|| Err(io::Error::other("raw send: no buffer")))
    }

    fn recv(&mut self, deadline: Instant) -> io::Result<Option<(Source, Vec<u8>)>> {
        while Instant::now() < deadline {
            match self.rx.next() {
                Ok(frame) => {
                    if let Some(u) = parse_udp_frame(frame) {
                        // our own broadcasts come back on the same socket (port 67): skip them
                        if u.dst.port() == 68 && u.src_mac != self.mac {
                            let src = Source {
                                ip: *u.src.ip(),
                                mac: Some(u.src_mac),
                            };
                            return Ok(Some((src, u.payload.to_vec())));
                        }
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}

/// Relay mode: one UDP socket that sends to the server and gets the replies (RFC 8357 makes
/// the server answer our source port instead of 67).
pub(crate) struct RelayTransport {
    socket: UdpSocket,
    server: SocketAddr,
}

impl RelayTransport {
    pub(crate) fn open(bind: SocketAddr, server: SocketAddr) -> io::Result<RelayTransport> {
        let socket = UdpSocket::bind(bind)?;
        Ok(RelayTransport { socket, server })
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

impl Transport for RelayTransport {
    fn send(&mut self, msg: &[u8], _dest: Dest) -> io::Result<()> {
        self.socket.send_to(msg, self.server).map(|_| ())
    }

    fn recv(&mut self, deadline: Instant) -> io::Result<Option<(Source, Vec<u8>)>> {
        let mut buf = vec![0u8; 65536];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            self.socket.set_read_timeout(Some(deadline - now))?;
            match self.socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let ip = match from {
                        SocketAddr::V4(a) => *a.ip(),
                        SocketAddr::V6(_) => continue,
                    };
                    return Ok(Some((Source { ip, mac: None }, buf[..n].to_vec())));
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Timing of the exchange.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// How long each DISCOVER collects OFFERs, and each REQUEST waits.
    pub(crate) wait: Duration,
    /// Sends of each message before giving up.
    pub(crate) attempts: u32,
}

fn ours(p: &ProbeParams, bytes: &[u8]) -> Option<Reply> {
    match parse_reply(bytes, p.xid, p.chaddr) {
        Ok(r) => Some(r),
        Err(why) => {
            tracing::debug!(%why, "reply ignored");
            None
        }
    }
}

/// DISCOVER until someone offers, REQUEST the chosen offer until ACK or NAK, optionally RELEASE.
pub(crate) fn run<T: Transport>(
    t: &mut T,
    p: &ProbeParams,
    timing: Timing,
    server: Option<Ipv4Addr>,
    release: bool,
    heading: String,
    interface: String,
) -> io::Result<ProbeReport> {
    let mut report = ProbeReport {
        heading,
        interface,
        offers: Vec::new(),
        chosen: None,
        outcome: Outcome::NoServer,
        released: false,
    };
    let discover = build_discover(p);
    for _ in 0..timing.attempts.max(1) {
        t.send(&discover, Dest::Servers)?;
        let deadline = Instant::now() + timing.wait;
        while let Some((src, bytes)) = t.recv(deadline)? {
            if let Some(r) = ours(p, &bytes) {
                if r.msg_type == Some(MessageType::Offer) {
                    add_offer(
                        &mut report.offers,
                        Offer {
                            source: src,
                            reply: r,
                        },
                    );
                }
            }
        }
        if !report.offers.is_empty() {
            break;
        }
    }
    let Some(chosen) = choose(&report.offers, server).cloned() else {
        report.outcome = match server {
            Some(s) if !report.offers.is_empty() => Outcome::ServerNotAnswering(s),
            _ => Outcome::NoServer,
        };
        return Ok(report);
    };
    report.chosen = Some(chosen.server());
    report.outcome = Outcome::NoAck;
    let request = build_request(p, &chosen.reply);
    'attempts: for _ in 0..timing.attempts.max(1) {
        t.send(&request, Dest::Servers)?;
        let deadline = Instant::now() + timing.wait;
        while let Some((src, bytes)) = t.recv(deadline)? {
            let Some(r) = ours(p, &bytes) else { continue };
            let from = r.server_id.unwrap_or(src.ip);
            if from != chosen.server() {
                continue;
            }
            match r.msg_type {
                Some(MessageType::Ack) => {
                    report.outcome = Outcome::Ack(Box::new(r));
                    break 'attempts;
                }
                Some(MessageType::Nak) => {
                    report.outcome = Outcome::Nak {
                        server: from,
                        message: r.message,
                    };
                    break 'attempts;
                }
                _ => {}
            }
        }
    }
    if release {
        if let Outcome::Ack(ack) = &report.outcome {
            let msg = build_release(p, ack);
            t.send(&msg, Dest::Server(chosen.source))?;
            report.released = true;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sztp::{encode_list, split_rfc3396};
    use std::collections::VecDeque;

    /// A scripted network: each send releases the replies queued for it.
    struct Script {
        sent: Vec<(Vec<u8>, Dest)>,
        per_send: VecDeque<Vec<(Source, Vec<u8>)>>,
        pending: VecDeque<(Source, Vec<u8>)>,
    }

    impl Transport for Script {
        fn send(&mut self, msg: &[u8], dest: Dest) -> io::Result<()> {
            self.sent.push((msg.to_vec(), dest));
            if let Some(r) = self.per_send.pop_front() {
                self.pending.extend(r);
            }
            Ok(())
        }
        fn recv(&mut self, _deadline: Instant) -> io::Result<Option<(Source, Vec<u8>)>> {
            Ok(self.pending.pop_front())
        }
    }

    const XID: u32 = 0x1234_5678;
    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 7]);

    fn server_reply(t: u8, server: [u8; 4], yiaddr: [u8; 4], with_143: bool) -> Vec<u8> {
        let mut b = vec![0u8; 240];
        b[..3].copy_from_slice(&[2, 1, 6]);
        b[4..8].copy_from_slice(&XID.to_be_bytes());
        b[16..20].copy_from_slice(&yiaddr);
        b[28..34].copy_from_slice(&MAC.0);
        b[236..240].copy_from_slice(&[0x63, 0x82, 0x53, 0x63]);
        b.extend_from_slice(&[53, 1, t, 54, 4]);
        b.extend_from_slice(&server);
        if with_143 {
            b.extend_from_slice(&split_rfc3396(
                143,
                &encode_list(&["https://sztp1.example.test:8443"]),
            ));
        }
        b.push(255);
        b
    }

    fn src(ip: [u8; 4]) -> Source {
        Source {
            ip: ip.into(),
            mac: Some(MacAddr([2, 0, 0, 0, 0, ip[3]])),
        }
    }

    fn timing() -> Timing {
        Timing {
            wait: Duration::from_millis(1),
            attempts: 3,
        }
    }

    #[test]
    fn discover_retransmitted_then_two_offers_ack_release() {
        let s1 = [198, 51, 100, 1];
        let s2 = [198, 51, 100, 2];
        let y = [198, 51, 100, 100];
        let mut t = Script {
            sent: Vec::new(),
            per_send: VecDeque::from([
                vec![], // first DISCOVER lost
                vec![
                    (src(s1), server_reply(2, s1, y, true)),
                    (src(s2), server_reply(2, s2, [198, 51, 100, 160], false)),
                    (src(s1), server_reply(2, s1, y, true)),
                ],
                // REQUEST: the other server's ACK (for a different xid flow) is ignored
                vec![
                    (src(s2), server_reply(5, s2, [198, 51, 100, 160], false)),
                    (src(s1), server_reply(5, s1, y, true)),
                ],
            ]),
            pending: VecDeque::new(),
        };
        let p = ProbeParams::new(XID, MAC);
        let r = run(&mut t, &p, timing(), None, true, "h".into(), "eth1".into()).unwrap();
        assert_eq!(r.offers.len(), 2);
        assert_eq!(r.chosen, Some(Ipv4Addr::from(s1)));
        assert_eq!(r.exit_code(), 0);
        assert!(r.released);
        assert_eq!(
            r.redirect().unwrap().uris,
            ["https://sztp1.example.test:8443"]
        );
        assert_eq!(t.sent.len(), 4);
        assert_eq!(t.sent[0].0, t.sent[1].0, "DISCOVER retransmitted unchanged");
        assert_eq!(t.sent[3].1, Dest::Server(src(s1)));
        assert_eq!(r.warnings().len(), 1);
    }

    #[test]
    fn nak_and_silence() {
        let s1 = [198, 51, 100, 1];
        let y = [198, 51, 100, 100];
        let mut t = Script {
            sent: Vec::new(),
            per_send: VecDeque::from([
                vec![(src(s1), server_reply(2, s1, y, false))],
                vec![(src(s1), server_reply(6, s1, [0; 4], false))],
            ]),
            pending: VecDeque::new(),
        };
        let p = ProbeParams::new(XID, MAC);
        let r = run(&mut t, &p, timing(), None, true, "h".into(), "eth1".into()).unwrap();
        assert!(matches!(r.outcome, Outcome::Nak { .. }));
        assert_eq!(r.exit_code(), 2);
        assert!(!r.released);

        let mut quiet = Script {
            sent: Vec::new(),
            per_send: VecDeque::new(),
            pending: VecDeque::new(),
        };
        let r = run(
            &mut quiet,
            &p,
            timing(),
            None,
            false,
            "h".into(),
            "x".into(),
        )
        .unwrap();
        assert_eq!(quiet.sent.len(), 3, "three DISCOVERs");
        assert_eq!(r.exit_code(), 3);
    }
}
