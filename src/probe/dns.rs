//! The probe's DNS client: the RFC 8572 §4.2 lookups a device makes (TXT then SRV, mDNS then unicast), decoding the `ci` CMS
//!
//! The query building, answer reading and report are pure; [`unicast`] and [`mdns`] are the
//! only functions here that touch sockets.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use serde_json::{json, Value};

use crate::sztp::conveyed::{decode_unsigned_redirect, RedirectEntry};

/// Where a lookup went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Via {
    /// Unicast DNS to this server (RFC 1035; TCP after a truncated UDP answer, RFC 7766).
    Unicast(SocketAddr),
    /// mDNS on this interface (RFC 6762), as a one-shot legacy querier.
    Mdns(String),
}

/// One lookup of the sequence and what came back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Step {
    /// mDNS or unicast, and where.
    pub via: Via,
    /// The name asked, fully qualified.
    pub name: String,
    /// TXT or SRV.
    pub qtype: RecordType,
    /// What came back.
    pub result: StepResult,
}

/// What one lookup found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StepResult {
    /// No answer in time.
    NoAnswer,
    /// An answer without usable records, with its RCODE (NXDOMAIN, NOERROR/NODATA, REFUSED).
    Empty(ResponseCode),
    /// `ci` redirect-information from a TXT record: who answered and the bootstrap servers.
    Redirect {
        from: SocketAddr,
        entries: Vec<RedirectEntry>,
    },
    /// A TXT record whose `ci` value did not decode.
    BadCi { from: SocketAddr, error: String },
    /// SRV records, preference order (RFC 2782 priority), as `https://target:port` with the
    /// target's addresses when the answer carried them.
    Servers {
        from: SocketAddr,
        uris: Vec<(String, Vec<IpAddr>)>,
    },
    /// A local error (socket, interface).
    Error(String),
}

impl StepResult {
    fn found(&self) -> bool {
        matches!(
            self,
            StepResult::Redirect { .. } | StepResult::Servers { .. }
        )
    }
}

/// A query for `name`/`qtype`, RD clear (a device asks the authoritative data).
pub(crate) fn query(name: &str, qtype: RecordType, id: u16) -> Result<Vec<u8>, String> {
    let n = Name::from_ascii(name).map_err(|e| format!("{name:?}: {e}"))?;
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(n, qtype));
    m.to_vec().map_err(|e| e.to_string())
}

/// The `ci=` value of a TXT answer: the strings of the first record starting `ci=`,
/// concatenated (digest §3.3), without the key.
pub(crate) fn ci_value(m: &Message) -> Option<Vec<u8>> {
    m.answers.iter().find_map(|r| match &r.data {
        RData::TXT(t) => {
            let mut whole: Vec<u8> = t.txt_data.iter().flat_map(|s| s.iter().copied()).collect();
            whole.starts_with(b"ci=").then(|| whole.split_off(3))
        }
        _ => None,
    })
}

/// Reads an answer to a TXT or SRV lookup.
pub(crate) fn read_answer(m: &Message, from: SocketAddr, qtype: RecordType) -> StepResult {
    if qtype == RecordType::TXT {
        return match ci_value(m) {
            Some(der) => match decode_unsigned_redirect(&der) {
                Ok(entries) => StepResult::Redirect { from, entries },
                Err(e) => StepResult::BadCi {
                    from,
                    error: e.to_string(),
                },
            },
            None => StepResult::Empty(m.metadata.response_code),
        };
    }
    let mut srv: Vec<(u16, u16, String, u16)> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(s) => Some((s.priority, s.weight, s.target.to_ascii(), s.port)),
            _ => None,
        })
        .collect();
    if srv.is_empty() {
        return StepResult::Empty(m.metadata.response_code);
    }
    // lowest priority first; RFC 2782 weights pick among equals, a report lists them in order
    srv.sort_by_key(|s| (s.0, std::cmp::Reverse(s.1)));
    let uris = srv
        .into_iter()
        .map(|(_, _, target, port)| {
            let addrs = m
                .additionals
                .iter()
                .filter(|r| r.name.to_ascii().eq_ignore_ascii_case(&target))
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                })
                .collect();
            let host = target.trim_end_matches('.');
            (format!("https://{host}:{port}"), addrs)
        })
        .collect();
    StepResult::Servers { from, uris }
}

fn new_id() -> u16 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.subsec_nanos() as u16) ^ (std::process::id() as u16)
}

fn tcp_exchange(server: SocketAddr, q: &[u8], wait: Duration) -> io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&server, wait)?;
    s.set_read_timeout(Some(wait))?;
    let len = u16::try_from(q.len()).map_err(|_| io::Error::other("query too long"))?;
    s.write_all(&len.to_be_bytes())?;
    s.write_all(q)?;
    let mut l = [0u8; 2];
    s.read_exact(&mut l)?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(l))];
    s.read_exact(&mut buf)?;
    Ok(buf)
}

/// Asks `server` over UDP, then over TCP when the answer is truncated.
pub(crate) fn unicast(
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
    wait: Duration,
) -> StepResult {
    let via = |r| r;
    let id = new_id();
    let q = match query(name, qtype, id) {
        Ok(q) => q,
        Err(e) => return StepResult::Error(e),
    };
    let bind: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        "[::]:0"
            .parse()
            .unwrap_or_else(|_| (Ipv4Addr::UNSPECIFIED, 0).into())
    };
    let run = || -> io::Result<Option<Message>> {
        let s = UdpSocket::bind(bind)?;
        s.connect(server)?;
        s.set_read_timeout(Some(wait))?;
        s.send(&q)?;
        let mut buf = vec![0u8; 65_535];
        let until = Instant::now() + wait;
        while Instant::now() < until {
            let n = match s.recv(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            };
            let Ok(m) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            if m.metadata.id != id {
                continue;
            }
            if m.metadata.truncation {
                let bytes = tcp_exchange(server, &q, wait)?;
                return Ok(Message::from_vec(&bytes).ok());
            }
            return Ok(Some(m));
        }
        Ok(None)
    };
    match run() {
        Ok(Some(m)) => via(read_answer(&m, server, qtype)),
        Ok(None) => StepResult::NoAnswer,
        Err(e) => StepResult::Error(e.to_string()),
    }
}

/// Asks the mDNS group on `iface` as a one-shot legacy querier (RFC 6762 §5.1, §6.7) and reads
/// the first usable answer within `wait`.
pub(crate) fn mdns(iface: &str, name: &str, qtype: RecordType, wait: Duration) -> StepResult {
    let v4 = pnet::datalink::interfaces()
        .into_iter()
        .find(|i| i.name == iface)
        .and_then(|i| {
            i.ips.iter().find_map(|n| match n.ip() {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(_) => None,
            })
        });
    let Some(local) = v4 else {
        return StepResult::Error(format!("{iface}: no such interface or no IPv4 address"));
    };
    let id = new_id();
    let q = match query(name, qtype, id) {
        Ok(q) => q,
        Err(e) => return StepResult::Error(e),
    };
    let run = || -> io::Result<StepResult> {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
        s.bind(&SocketAddr::from((local, 0)).into())?;
        s.set_multicast_if_v4(&local)?;
        s.set_multicast_ttl_v4(255)?;
        let s: UdpSocket = s.into();
        s.send_to(&q, (crate::dns::mdns::MDNS_V4, crate::dns::mdns::MDNS_PORT))?;
        let until = Instant::now() + wait;
        let mut buf = vec![0u8; 9000];
        let mut last = StepResult::NoAnswer;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(last);
            }
            s.set_read_timeout(Some(left))?;
            let (n, from) = match s.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(last)
                }
                Err(e) => return Err(e),
            };
            let Ok(m) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            if m.metadata.message_type != MessageType::Response || m.metadata.id != id {
                continue;
            }
            last = read_answer(&m, from, qtype);
            if last.found() {
                return Ok(last);
            }
        }
    };
    run().unwrap_or_else(|e| StepResult::Error(e.to_string()))
}

/// The whole RFC 8572 §4.2 sequence: TXT then SRV, each over mDNS (when `mdns_iface`) then
/// unicast (when `server` and `domain`). A device stops at the first usable answer; the probe
/// asks everything and reports it all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DnsReport {
    /// The serial the TXT lookups used.
    pub serial: Option<String>,
    /// Every lookup, in the order made.
    pub steps: Vec<Step>,
}

/// The lookups of the sequence, in order.
pub(crate) fn plan(
    serial: Option<&str>,
    domain: Option<&str>,
    server: Option<SocketAddr>,
    mdns_iface: Option<&str>,
) -> Vec<(Via, String, RecordType)> {
    let mut out = Vec::new();
    let names = |suffix: &str| -> Vec<(String, RecordType)> {
        let mut v = Vec::new();
        if let Some(s) = serial {
            v.push((format!("{s}._sztp.{suffix}"), RecordType::TXT));
        }
        v.push((format!("_sztp._tcp.{suffix}"), RecordType::SRV));
        v
    };
    let mdns_names = names("local.");
    let uni_names = domain.map(|d| names(&format!("{}.", d.trim_end_matches('.'))));
    for (i, (name, t)) in mdns_names.iter().enumerate() {
        if let Some(iface) = mdns_iface {
            out.push((Via::Mdns(iface.to_string()), name.clone(), *t));
        }
        if let (Some(srv), Some(u)) = (server, &uni_names) {
            let (n, t) = &u[i];
            out.push((Via::Unicast(srv), n.clone(), *t));
        }
    }
    out
}

impl DnsReport {
    /// 0 when some lookup found a redirect or servers, 2 when servers answered without one, 3
    /// when nothing answered, 1 when every lookup failed locally.
    pub(crate) fn exit_code(&self) -> i32 {
        if self.steps.iter().any(|s| s.result.found()) {
            0
        } else if self
            .steps
            .iter()
            .any(|s| matches!(s.result, StepResult::Empty(_) | StepResult::BadCi { .. }))
        {
            2
        } else if self
            .steps
            .iter()
            .all(|s| matches!(s.result, StepResult::Error(_)))
            && !self.steps.is_empty()
        {
            1
        } else {
            3
        }
    }

    /// The report as the operator reads it: one numbered line per lookup.
    pub(crate) fn render_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "DNS lookups of RFC 8572 §4.2{}:",
            self.serial
                .as_deref()
                .map(|s| format!(" for serial {s}"))
                .unwrap_or_default()
        );
        for (i, s) in self.steps.iter().enumerate() {
            let via = match &s.via {
                Via::Unicast(a) => format!("dns @{a}"),
                Via::Mdns(i) => format!("mdns on {i}"),
            };
            let _ = write!(
                o,
                "{}. {} {} {via}: ",
                i + 1,
                s.qtype,
                s.name.trim_end_matches('.')
            );
            match &s.result {
                StepResult::NoAnswer => o.push_str("no answer\n"),
                StepResult::Empty(rc) => {
                    let _ = writeln!(o, "{} (no record)", rc.to_str());
                }
                StepResult::Error(e) => {
                    let _ = writeln!(o, "error: {e}");
                }
                StepResult::BadCi { from, error } => {
                    let _ = writeln!(o, "{} answered, ci does not decode: {error}", from.ip());
                }
                StepResult::Redirect { from, entries } => {
                    let _ = writeln!(o, "{} answered: ci redirect-information", from.ip());
                    for (k, e) in entries.iter().enumerate() {
                        let host = if e.address.contains(':') {
                            format!("[{}]", e.address)
                        } else {
                            e.address.clone()
                        };
                        let _ = writeln!(o, "   {}. https://{host}:{}", k + 1, e.port);
                    }
                }
                StepResult::Servers { from, uris } => {
                    let _ = writeln!(o, "{} answered: {} SRV target(s)", from.ip(), uris.len());
                    for (k, (u, addrs)) in uris.iter().enumerate() {
                        let a: Vec<String> = addrs.iter().map(IpAddr::to_string).collect();
                        let at = if a.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", a.join(", "))
                        };
                        let _ = writeln!(o, "   {}. {u}{at}", k + 1);
                    }
                }
            }
        }
        o
    }

    /// The report as one JSON object (`--json`).
    pub(crate) fn to_json(&self) -> Value {
        let steps: Vec<Value> = self
            .steps
            .iter()
            .map(|s| {
                let (via, target) = match &s.via {
                    Via::Unicast(a) => ("dns", a.to_string()),
                    Via::Mdns(i) => ("mdns", i.clone()),
                };
                let mut v = json!({
                    "via": via, "target": target, "name": s.name, "type": s.qtype.to_string(),
                });
                let r = match &s.result {
                    StepResult::NoAnswer => json!({"result": "no-answer"}),
                    StepResult::Empty(rc) => json!({"result": "empty", "rcode": rc.to_str()}),
                    StepResult::Error(e) => json!({"result": "error", "error": e}),
                    StepResult::BadCi { from, error } => {
                        json!({"result": "bad-ci", "from": from.ip().to_string(), "error": error})
                    }
                    StepResult::Redirect { from, entries } => json!({
                        "result": "redirect", "from": from.ip().to_string(),
                        "bootstrap_servers": entries.iter().map(|e| json!({"address": e.address, "port": e.port})).collect::<Vec<_>>(),
                    }),
                    StepResult::Servers { from, uris } => json!({
                        "result": "srv", "from": from.ip().to_string(),
                        "uris": uris.iter().map(|(u, a)| json!({"uri": u, "addresses": a.iter().map(IpAddr::to_string).collect::<Vec<_>>()})).collect::<Vec<_>>(),
                    }),
                };
                if let (Some(o), Some(r)) = (v.as_object_mut(), r.as_object()) {
                    o.extend(r.clone());
                }
                v
            })
            .collect();
        json!({"serial": self.serial, "steps": steps})
    }
}

/// Runs the plan.
pub(crate) fn run(
    serial: Option<&str>,
    domain: Option<&str>,
    server: Option<SocketAddr>,
    mdns_iface: Option<&str>,
    wait: Duration,
) -> DnsReport {
    let steps = plan(serial, domain, server, mdns_iface)
        .into_iter()
        .map(|(via, name, qtype)| {
            let result = match &via {
                Via::Unicast(a) => unicast(*a, &name, qtype, wait),
                Via::Mdns(i) => mdns(i, &name, qtype, wait),
            };
            Step {
                via,
                name,
                qtype,
                result,
            }
        })
        .collect();
    DnsReport {
        serial: serial.map(str::to_string),
        steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{SRV, TXT};
    use hickory_proto::rr::Record;

    #[test]
    fn plan_follows_the_rfc_order() {
        let p = plan(
            Some("SN1"),
            Some("example.com"),
            Some("127.0.0.1:53".parse().unwrap()),
            Some("eth1"),
        );
        let names: Vec<String> = p
            .iter()
            .map(|(v, n, t)| format!("{} {t} {n}", matches!(v, Via::Mdns(_))))
            .collect();
        assert_eq!(
            names,
            [
                "true TXT SN1._sztp.local.",
                "false TXT SN1._sztp.example.com.",
                "true SRV _sztp._tcp.local.",
                "false SRV _sztp._tcp.example.com."
            ]
        );
        assert_eq!(plan(None, None, None, Some("eth1")).len(), 1);
    }

    #[test]
    fn ci_is_decoded_across_strings_and_srv_sorted() {
        let der = crate::sztp::conveyed::unsigned_redirect(
            crate::sztp::conveyed::ContentFormat::Json,
            &[RedirectEntry {
                address: "a.example".into(),
                port: 8443,
                trust_anchor: None,
            }],
        )
        .unwrap();
        let mut whole = b"ci=".to_vec();
        whole.extend_from_slice(&der);
        let (a, b) = whole.split_at(50);
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.add_answer(Record::from_rdata(
            Name::root(),
            1,
            RData::TXT(TXT::from_bytes(vec![b"x=1", a, b])),
        ));
        assert_eq!(ci_value(&m), None, "the first string must start with ci=");
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.add_answer(Record::from_rdata(
            Name::root(),
            1,
            RData::TXT(TXT::from_bytes(vec![a, b])),
        ));
        let from: SocketAddr = "192.0.2.1:53".parse().unwrap();
        let StepResult::Redirect { entries, .. } = read_answer(&m, from, RecordType::TXT) else {
            panic!()
        };
        assert_eq!(entries[0].port, 8443);

        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        for (p, t) in [(1, "b.example."), (0, "a.example.")] {
            m.add_answer(Record::from_rdata(
                Name::root(),
                1,
                RData::SRV(SRV::new(p, 0, 443, Name::from_ascii(t).unwrap())),
            ));
        }
        let r = read_answer(&m, from, RecordType::SRV);
        let StepResult::Servers { uris, .. } = &r else {
            panic!()
        };
        assert_eq!(uris[0].0, "https://a.example:443");
        let report = DnsReport {
            serial: None,
            steps: vec![Step {
                via: Via::Unicast(from),
                name: "_sztp._tcp.example.".into(),
                qtype: RecordType::SRV,
                result: r,
            }],
        };
        assert_eq!(report.exit_code(), 0);
        assert!(report.render_text().contains("1. https://a.example:443"));
    }
}
