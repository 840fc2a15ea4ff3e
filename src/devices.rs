//! The device table: folds device events into one entry per device, its journey and a verdict
//!
//! Every [`DeviceEvent`] a service emits is turned into an [`Observation`] (the only
//! per-protocol code: one match arm in [`observe`] per [`EventDetail`] variant) and folded into
//! the entry of the device it belongs to. A device is known by its MACs, DUIDs, serial numbers
//! and the addresses the appliance gave it; when a later step links two entries (a lease's
//! address seen again as the source of a RESTCONF request, a serial seen in a DNS query and in
//! a certificate) they are merged into one.
//!
//! The packet path only `try_send`s a copy of the event into a bounded channel
//! ([`DeviceTable::submit`]); a background thread folds. A full channel drops the event and
//! counts it: the table is a diagnostic view, and a slow reader of the status page must never
//! delay an OFFER. The table is bounded: at most [`Limits::max_devices`] entries (the one seen
//! least recently is evicted) and [`Limits::events_per_device`] events per entry (the oldest go).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

use crate::journal::{
    rfc3339, DeviceEvent, Dhcp4Event, Dhcp4Kind, Dhcp4Reason, Dhcp6Event, Dhcp6Kind, Dhcp6Status,
    DnsEvent, DnsKind, DnsTransport, EventDetail, IdentityMethod, RestconfAnswer, RestconfEvent,
    RestconfReason, RestconfRpc, Signing, DEVICE_JOURNAL_FILE, KEEP_ROTATED,
};
use crate::metrics::EventMetrics;
use crate::policy::{MacAddr, UriEncoding};
use crate::sztp::uri::ipv4_text;

/// Events that may wait for the fold thread before new ones are dropped.
pub const DEFAULT_CAPACITY: usize = 4096;

/// The steps of an SZTP device's journey through this appliance, in the order a device
/// normally reaches them (RFC 8572 §5.2 boot sequence, as seen from the network side).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// A DHCPv4 OFFER or DHCPv6 ADVERTISE was sent to it.
    DhcpOffered,
    /// A DHCPv4 ACK or DHCPv6 REPLY gave it a lease (or answered its INFORM /
    /// Information-request).
    DhcpAcked,
    /// A DNS or mDNS query for its SZTP records (`_sztp._tcp` SRV, `<serial>._sztp` TXT) was
    /// answered (RFC 8572 §4.2).
    DnsAnswered,
    /// The redirect server answered its `get-bootstrapping-data` with redirect-information
    /// (RFC 8572 §7.1).
    RedirectServed,
    /// It sent `report-progress` (RFC 8572 §7.3).
    ProgressReported,
}

impl Stage {
    /// Every stage, in journey order.
    pub const ALL: [Stage; 5] = [
        Stage::DhcpOffered,
        Stage::DhcpAcked,
        Stage::DnsAnswered,
        Stage::RedirectServed,
        Stage::ProgressReported,
    ];

    /// The kebab-case name used in the API, the page and `?stage=` filters.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::DhcpOffered => "dhcp-offered",
            Stage::DhcpAcked => "dhcp-acked",
            Stage::DnsAnswered => "dns-answered",
            Stage::RedirectServed => "redirect-served",
            Stage::ProgressReported => "progress-reported",
        }
    }

    /// Parses [`as_str`](Self::as_str) back.
    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a device asked for, as far as the appliance has seen it. Each field is the latest
/// value any step reported; `None` means no step said.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asked {
    /// Whether option 143 was in its DHCPv4 Parameter Request List (RFC 8572 §8.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_143: Option<bool>,
    /// Whether option 136 was in its DHCPv6 Option Request Option (RFC 8572 §8.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_136: Option<bool>,
    /// DHCPv4 option 55 / DHCPv6 option 6 codes, in the order sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_request_list: Option<Vec<u16>>,
    /// DHCPv4 option 60 / DHCPv6 option 16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_class: Option<String>,
    /// DHCPv4 option 77 / DHCPv6 option 15, one string per instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_class: Option<Vec<String>>,
    /// DHCPv4 option 61, lowercase hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The media type it accepts from the redirect server (RFC 8040 §5.2 `Accept`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// `hw-model` it sent in `get-bootstrapping-data` (RFC 8572 §7.1 input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hw_model: Option<String>,
    /// `os-name` it sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_name: Option<String>,
    /// `os-version` it sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// The interface its DHCP messages came in on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// The relay agent (giaddr / link-address) its DHCP messages came through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<String>,
}

impl Asked {
    /// [`Asked::update`] from an `Asked` the caller is done with: its values move, nothing is
    /// copied (once per folded event).
    fn take_from(&mut self, newer: Asked) {
        fn take<T>(mine: &mut Option<T>, theirs: Option<T>) {
            if theirs.is_some() {
                *mine = theirs;
            }
        }
        take(&mut self.requested_143, newer.requested_143);
        take(&mut self.requested_136, newer.requested_136);
        take(
            &mut self.parameter_request_list,
            newer.parameter_request_list,
        );
        take(&mut self.vendor_class, newer.vendor_class);
        take(&mut self.user_class, newer.user_class);
        take(&mut self.client_id, newer.client_id);
        take(&mut self.media_type, newer.media_type);
        take(&mut self.hw_model, newer.hw_model);
        take(&mut self.os_name, newer.os_name);
        take(&mut self.os_version, newer.os_version);
        take(&mut self.interface, newer.interface);
        take(&mut self.relay, newer.relay);
    }

    /// Takes every field `newer` has; keeps ours where it says nothing (a merge of two
    /// devices: rare, so a copy and [`Asked::take_from`]).
    fn update(&mut self, newer: &Asked) {
        self.take_from(newer.clone());
    }
}

/// What a device was told by one step: where to go next.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Told {
    /// The protocol that told it (`"dhcp4"`, `"dhcp6"`, `"dns"`, `"restconf"`).
    pub proto: Cow<'static, str>,
    /// Bootstrap server (or redirect server) URIs, most preferred first.
    pub uris: Vec<String>,
    /// Whether it was redirect-information (RFC 8572 §2.1); `false` for onboarding-information.
    pub redirect: bool,
    /// Whether the conveyed information was signed (RFC 8572 §3.1); `None` where the source
    /// cannot carry a signature (DHCP, §4.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<bool>,
    /// How DHCP encoded the URIs (`"rfc8572"` or `"text"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<Cow<'static, str>>,
    /// URIs left out to fit the DHCP option size limit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uris_dropped: Vec<String>,
}

/// Everything one event says about its device, independent of the protocol: what
/// [`observe`] makes of a [`DeviceEvent`] and the table folds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observation {
    /// The protocol tag (`"dhcp4"`, …), as in the journal.
    pub proto: &'static str,
    /// The kind of step, kebab-case (`"offer"`, `"ack"`, …), as in the journal.
    pub kind: &'static str,
    /// The stage this step shows the device reached.
    pub stage: Option<Stage>,
    /// The step went wrong: the words for the verdict (a device's mistake or a refusal).
    pub problem: Option<String>,
    /// The step ended the journey well (report-progress `bootstrap-complete`): the words.
    pub complete: Option<String>,
    /// An address handed to the device (a lease): later steps from it belong to this device.
    pub assigned: Option<IpAddr>,
    /// An address the device gave back (RELEASE, DECLINE): no longer linked to it.
    pub unassigned: Option<IpAddr>,
    /// The address the device spoke from (RESTCONF client, DNS querier): links this step to
    /// the device holding that lease.
    pub source: Option<IpAddr>,
    /// What it asked for.
    pub asked: Asked,
    /// What it was told, when this step told it where to go.
    pub told: Option<Told>,
    /// One line for the device's timeline.
    pub summary: String,
}

/// What a device event means for its device. Adding a protocol is one match arm here.
pub fn observe(ev: &DeviceEvent) -> Observation {
    match &ev.detail {
        EventDetail::Dhcp4(d) => observe_dhcp4(ev, d),
        EventDetail::Dhcp6(d) => observe_dhcp6(ev, d),
        EventDetail::Restconf(d) => observe_restconf(ev, d),
        EventDetail::Dns(d) => observe_dns(ev, d),
    }
}

/// A `<serial>._sztp` TXT question (RFC 8572 §4.2.3; SRV questions name no device and emit no
/// event). Unicast queries are linked by serial only: their source is often a recursive
/// resolver, not the device. An mDNS query comes from the device itself (link-local
/// multicast), so its source address also links it to the lease holder.
fn observe_dns(ev: &DeviceEvent, d: &DnsEvent) -> Observation {
    let over = match d.transport {
        DnsTransport::Udp => "DNS over UDP",
        DnsTransport::Tcp => "DNS over TCP",
        DnsTransport::Mdns => "mDNS",
    };
    let mut o = Observation {
        proto: "dns",
        kind: d.event.as_str(),
        source: (d.transport == DnsTransport::Mdns).then_some(d.source),
        ..Observation::default()
    };
    let serial = ev.serial.as_deref().unwrap_or("?");
    match d.event {
        DnsKind::Answered => {
            o.stage = Some(Stage::DnsAnswered);
            if !ev.uris.is_empty() {
                o.told = Some(Told {
                    proto: "dns".into(),
                    uris: ev.uris.clone(),
                    redirect: true,
                    // TXT ci= is unsigned redirect-information for now (issue 10 adds oc=/ov=)
                    signed: Some(false),
                    ..Told::default()
                });
            }
            o.summary = format!(
                "{over} {} {} from {}: answered, redirect-information with {} URI{}",
                d.qtype,
                d.qname,
                d.source,
                ev.uris.len(),
                if ev.uris.len() == 1 { "" } else { "s" }
            );
        }
        DnsKind::Nxdomain => {
            let answer = if d.transport == DnsTransport::Mdns {
                "no answer (mDNS has no negative answers)"
            } else {
                "NXDOMAIN"
            };
            o.problem = Some(format!(
                "it looked up its SZTP TXT record ({}) and got {answer}: no device entry or \
                 rule with a bootstrap server matches serial {serial}; check the serial in \
                 the policy",
                d.qname
            ));
            o.summary = format!("{over} {} {} from {}: {answer}", d.qtype, d.qname, d.source);
        }
    }
    if let Some(rule) = &ev.rule {
        let _ = write!(o.summary, " (rule {rule})");
    }
    o
}

fn observe_dhcp4(ev: &DeviceEvent, d: &Dhcp4Event) -> Observation {
    let addr = d.address.map(IpAddr::V4);
    let addr_text = d.address.map(ipv4_text).unwrap_or_default();
    let mut o = Observation {
        proto: "dhcp4",
        kind: d.event.as_str(),
        asked: Asked {
            requested_143: Some(d.requested_143),
            vendor_class: d.vendor_class.clone(),
            user_class: (!d.user_class.is_empty()).then(|| d.user_class.clone()),
            client_id: d
                .client_id_text
                .clone()
                .or_else(|| d.client_id.as_deref().map(hex::encode)),
            interface: d.interface.clone(),
            relay: d.relay.map(ipv4_text),
            ..Asked::default()
        },
        ..Observation::default()
    };
    if !ev.uris.is_empty() {
        o.told = Some(Told {
            proto: "dhcp4".into(),
            uris: ev.uris.clone(),
            redirect: true,
            signed: None,
            encoding: d.encoding.map(|e| {
                match e {
                    UriEncoding::Rfc8572 => "rfc8572",
                    UriEncoding::Text => "text",
                }
                .into()
            }),
            uris_dropped: d.uris_dropped.clone(),
        });
    }
    let asked = if d.requested_143 {
        "asked for option 143"
    } else {
        "did not ask for option 143"
    };
    let told: Cow<'static, str> = match ev.uris.len() {
        0 => "no option 143".into(),
        1 => "option 143 with 1 URI".into(),
        n => format!("option 143 with {n} URIs").into(),
    };
    // only the refusals say why: not built for every OFFER and ACK
    let why = || match (d.reason, &d.message) {
        (Some(r), _) => reason_words(r),
        (None, Some(m)) => m.as_str(),
        (None, None) => "no reason given",
    };
    match d.event {
        Dhcp4Kind::Offer => {
            o.stage = Some(Stage::DhcpOffered);
            o.summary = format!("DHCPv4 OFFER {addr_text}: {asked}, sent {told}");
        }
        Dhcp4Kind::Ack => {
            o.stage = Some(Stage::DhcpAcked);
            o.assigned = addr;
            o.summary = format!("DHCPv4 ACK {addr_text}: {asked}, sent {told}");
        }
        Dhcp4Kind::Inform => {
            o.stage = Some(Stage::DhcpAcked);
            o.summary = format!("DHCPv4 ACK to INFORM: {asked}, sent {told}");
        }
        Dhcp4Kind::Nak => {
            let why = why();
            o.problem = Some(format!("its DHCPv4 REQUEST was refused (NAK): {why}"));
            o.summary = format!("DHCPv4 NAK: {why}");
        }
        Dhcp4Kind::Decline => {
            o.unassigned = addr;
            o.problem = Some(format!(
                "it DECLINEd {addr_text}: another host answers on that address (address \
                 conflict on the segment, RFC 2131 §4.3.3)"
            ));
            o.summary = format!("DHCPv4 DECLINE of {addr_text}");
        }
        Dhcp4Kind::Release => {
            o.unassigned = addr;
            o.summary = format!("DHCPv4 RELEASE of {addr_text}");
        }
        Dhcp4Kind::NoAddress => {
            o.problem = Some(
                "it asked for an address but none was free in its subnet's pools (pool exhausted)"
                    .to_owned(),
            );
            o.summary =
                "DHCPv4 DISCOVER not answered: no free address in its subnet's pools".to_owned();
        }
        Dhcp4Kind::Dropped => {
            let why = why();
            o.problem = Some(format!("its DHCPv4 request was not answered: {why}"));
            o.summary = format!("DHCPv4 request dropped: {why}");
        }
    }
    if let Some(rule) = &ev.rule {
        let _ = write!(o.summary, " (rule {rule})");
    }
    o
}

fn observe_dhcp6(ev: &DeviceEvent, d: &Dhcp6Event) -> Observation {
    let addr = d.address.map(IpAddr::V6);
    let addr_text = d.address.map(|a| format!(" {a}")).unwrap_or_default();
    let vendor_class = match (&d.vendor_class, d.enterprise_number) {
        (Some(v), Some(e)) => Some(format!("{v} (enterprise {e})")),
        (Some(v), None) => Some(v.clone()),
        (None, Some(e)) => Some(format!("(enterprise {e})")),
        (None, None) => None,
    };
    let mut o = Observation {
        proto: "dhcp6",
        kind: d.event.as_str(),
        asked: Asked {
            requested_136: Some(d.requested_136),
            vendor_class,
            user_class: (!d.user_class.is_empty()).then(|| d.user_class.clone()),
            interface: d.interface.clone(),
            relay: d.relay.clone(),
            ..Asked::default()
        },
        ..Observation::default()
    };
    if !ev.uris.is_empty() {
        o.told = Some(Told {
            proto: "dhcp6".into(),
            uris: ev.uris.clone(),
            redirect: true,
            signed: None,
            encoding: d.encoding.clone().map(Cow::Owned),
            uris_dropped: d.uris_dropped.clone(),
        });
    }
    let asked = if d.requested_136 {
        "asked for option 136"
    } else {
        "did not ask for option 136"
    };
    let told = match ev.uris.len() {
        0 => "no option 136".to_string(),
        1 => "option 136 with 1 URI".to_string(),
        n => format!("option 136 with {n} URIs"),
    };
    // A refusal without an address is the step failing; with an address (one IA_NA bound,
    // another refused) the device still got what it needs to go on.
    let refused = d.status.filter(|_| d.address.is_none());
    let what = match d.event {
        Dhcp6Kind::Advertise => "Advertise",
        Dhcp6Kind::InformationRequest => "Reply to Information-request",
        Dhcp6Kind::Request => "Reply to Request",
        Dhcp6Kind::RapidCommit => "Reply to Solicit (Rapid Commit)",
        Dhcp6Kind::Renew => "Reply to Renew",
        Dhcp6Kind::Rebind => "Reply to Rebind",
        Dhcp6Kind::Release => "Reply to Release",
        Dhcp6Kind::Decline => "Reply to Decline",
        Dhcp6Kind::Confirm => "Reply to Confirm",
    };
    if let Some(st) = refused {
        o.problem = Some(format!(
            "its DHCPv6 {} was refused ({}): {}",
            d.event.as_str(),
            st.as_str(),
            status_words(st)
        ));
        o.summary = format!("DHCPv6 {what}: status {}, {asked}", st.as_str());
    } else {
        match d.event {
            Dhcp6Kind::Advertise => {
                o.stage = Some(Stage::DhcpOffered);
                o.summary = format!("DHCPv6 {what}{addr_text}: {asked}, sent {told}");
            }
            Dhcp6Kind::Request | Dhcp6Kind::RapidCommit | Dhcp6Kind::Renew | Dhcp6Kind::Rebind => {
                o.stage = Some(Stage::DhcpAcked);
                o.assigned = addr;
                o.summary = format!("DHCPv6 {what}{addr_text}: {asked}, sent {told}");
            }
            Dhcp6Kind::InformationRequest | Dhcp6Kind::Confirm => {
                o.stage = Some(Stage::DhcpAcked);
                o.summary = format!("DHCPv6 {what}: {asked}, sent {told}");
            }
            Dhcp6Kind::Release => {
                o.unassigned = addr;
                o.summary = format!("DHCPv6 Release of{addr_text}");
            }
            Dhcp6Kind::Decline => {
                o.unassigned = addr;
                o.problem = Some(format!(
                    "it Declined{addr_text}: another host answers on that address (duplicate \
                     address detection failed, RFC 8415 §18.2.8); the address is quarantined"
                ));
                o.summary = format!("DHCPv6 Decline of{addr_text}");
            }
        }
    }
    if let Some(rule) = &ev.rule {
        let _ = write!(o.summary, " (rule {rule})");
    }
    o
}

/// A DHCPv6 status code the server sent, in words (RFC 8415 §21.13).
fn status_words(s: Dhcp6Status) -> &'static str {
    match s {
        Dhcp6Status::NoAddrsAvail => {
            "no free address for it: its link's pools are exhausted, or no [[dhcp6.subnet]] \
             serves the link it (or its relay) is on"
        }
        Dhcp6Status::NoBinding => {
            "this server has no binding for the address it renews, rebinds or releases (it got \
             it from another server, or the binding expired)"
        }
        Dhcp6Status::NotOnLink => {
            "the address it holds is not on the link it is on now (it moved, or remembers a \
             binding from another segment)"
        }
        Dhcp6Status::UseMulticast => {
            "it sent its message by unicast, which this server does not allow (no [dhcp6] server-unicast address)"
        }
    }
}

fn observe_restconf(ev: &DeviceEvent, d: &RestconfEvent) -> Observation {
    let rpc = d.rpc.as_str();
    let mut o = Observation {
        proto: "restconf",
        kind: rpc,
        source: Some(d.source),
        asked: Asked {
            media_type: d.media_type.clone(),
            hw_model: d.hw_model.clone(),
            os_name: d.os_name.clone(),
            os_version: d.os_version.clone(),
            ..Asked::default()
        },
        ..Observation::default()
    };
    let who = match (&ev.serial, d.identity) {
        (Some(s), IdentityMethod::BasicUsername) => format!("serial {s}, Basic user"),
        (Some(s), _) if d.serial_verified => format!("serial {s}, verified certificate"),
        (Some(s), _) => format!("serial {s}, claimed"),
        (None, _) => "no serial".to_owned(),
    };
    let http = format!("HTTP {}", d.status);
    match (d.rpc, d.answer) {
        (_, RestconfAnswer::Redirect) => {
            o.stage = Some(Stage::RedirectServed);
            o.told = Some(Told {
                proto: "restconf".into(),
                uris: ev.uris.clone(),
                redirect: true,
                signed: Some(d.signing == Some(Signing::Signed)),
                ..Told::default()
            });
            // "signed" or "unsigned" and, when unsigned and signing was possible, why not
            let signing = match d.signing {
                Some(Signing::Signed) => "signed".to_owned(),
                None | Some(Signing::NotRequested | Signing::NoOwner) => "unsigned".to_owned(),
                Some(other) => format!(
                    "unsigned ({})",
                    other.as_str().trim_start_matches("unsigned: ")
                ),
            };
            o.summary = format!(
                "RESTCONF {rpc} from {} ({who}): {http}, {signing} redirect-information naming {}{}",
                d.source,
                match ev.uris.len() {
                    1 => "1 bootstrap server".to_owned(),
                    n => format!("{n} bootstrap servers"),
                },
                if d.nonceless_voucher {
                    ", nonceless voucher for a device that sent a nonce"
                } else {
                    ""
                }
            );
        }
        (_, RestconfAnswer::ProgressAccepted) => {
            let kind = d.progress_type.as_deref().unwrap_or("unknown");
            let msg = d
                .message
                .as_deref()
                .filter(|m| !m.is_empty())
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            if kind.ends_with("-error") {
                // no stage: a later problem than the last stage makes the verdict "failed"
                o.problem = Some(format!("it reported {kind}{msg}"));
            } else {
                o.stage = Some(Stage::ProgressReported);
            }
            if kind == "bootstrap-complete" {
                o.complete = Some(format!("it reported bootstrap-complete{msg}"));
            }
            o.summary = format!(
                "RESTCONF report-progress from {} ({who}): {kind}{msg}",
                d.source
            );
        }
        (rpc_kind, RestconfAnswer::Error) => {
            let why = d.reason.map_or("an error", restconf_reason_words);
            let asked = match rpc_kind {
                RestconfRpc::GetBootstrappingData => "its get-bootstrapping-data",
                RestconfRpc::ReportProgress => "its report-progress",
            };
            o.problem = Some(format!("{asked} to the redirect server got {http}: {why}"));
            o.summary = format!(
                "RESTCONF {rpc} from {} ({who}): {http}, {why}{}",
                d.source,
                d.error_message
                    .as_deref()
                    .filter(|m| !m.is_empty())
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            );
        }
    }
    if let Some(rule) = &ev.rule {
        let _ = write!(o.summary, " (rule {rule})");
    }
    o
}

/// A RESTCONF error in words (RFC 8040 §7, RFC 8572 §7.1).
fn restconf_reason_words(r: RestconfReason) -> &'static str {
    match r {
        RestconfReason::WrongMethod => "it did not use POST (RFC 8040 §4.4.2)",
        RestconfReason::UnsupportedMediaType => {
            "its Content-Type is neither application/yang-data+json nor +xml (RFC 8040 §5.2)"
        }
        RestconfReason::NotAcceptable => {
            "its Accept header allows no media type the redirect server answers with"
        }
        RestconfReason::MalformedMessage => "its body is not the RPC's input in JSON or XML",
        RestconfReason::InvalidValue => "an input leaf has a wrong type or value",
        RestconfReason::TooBig => "its body is larger than 64 KiB",
        RestconfReason::Timeout => "its body did not arrive within redirect-server.client-timeout",
        RestconfReason::RateLimited => {
            "its address sent more requests than redirect-server.rate-limit allows"
        }
        RestconfReason::NoRule => {
            "no known device or rule matches its serial, hw-model or lease: add a rule for it"
        }
        RestconfReason::Excluded => "its rule has redirect-to = [] (it is sent nowhere)",
        RestconfReason::SerialNotVerified => {
            "only a rule with match.serial-verified matches, and its serial is not proven by a \
             client certificate signed by redirect-server.client-ca"
        }
        RestconfReason::Loop => {
            "every bootstrap server of its rule is this redirect server (a configuration loop)"
        }
        RestconfReason::ProgressRejected => {
            "progress reports are refused here (redirect-server.report-progress = \"reject\")"
        }
        RestconfReason::Internal => "the redirect server failed to answer (our fault: see the log)",
    }
}

/// A DHCPv4 refusal in words.
fn reason_words(r: Dhcp4Reason) -> &'static str {
    match r {
        Dhcp4Reason::NotOnNetwork => {
            "the address it asked for is not on its network (RFC 2131 §4.3.2: it moved, or \
             remembers a lease from another segment)"
        }
        Dhcp4Reason::ReservedElsewhere => "it has a reservation for another address",
        Dhcp4Reason::NotAvailable => {
            "the address it asked for is held by another client, quarantined or outside the pools"
        }
        Dhcp4Reason::NotOffered => {
            "it requested an address this server did not offer (it took another DHCP server's \
             offer?)"
        }
        Dhcp4Reason::NoRequestedAddress => "its REQUEST named no address",
        Dhcp4Reason::AddressInUse => "the address is in use by another host",
        Dhcp4Reason::PoolExhausted => "no free address in its subnet's pools",
        Dhcp4Reason::NoSubnet => {
            "no subnet is configured for its network (relay address, link selection or \
             receiving interface): add one to [dhcp4]"
        }
        Dhcp4Reason::UnsupportedHardware => {
            "its hardware address cannot be used and it sent no client identifier (RFC 4390 §2)"
        }
        Dhcp4Reason::NoRecord => {
            "it asked to keep an address this server has no record of (RFC 2131 §4.3.2: silent \
             unless the subnet is authoritative)"
        }
        Dhcp4Reason::Excluded => "its rule has redirect-to = []: no option 143 on purpose",
    }
}

/// How far a device got and whether it is stuck: [`Device::verdict`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerdictStatus {
    /// It reported `bootstrap-complete`.
    Complete,
    /// It was sent to the owner's bootstrap server; what follows happens there, out of sight.
    HandedOff,
    /// The next step has not come (yet): the words say which and the likely cause.
    Stuck,
    /// The last step went wrong.
    Failed,
}

/// A verdict in words for the furthest stage that failed or never came.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// In one word.
    pub status: VerdictStatus,
    /// The furthest stage reached.
    pub stage: Option<Stage>,
    /// In words, for an operator.
    pub text: String,
}

/// What the verdict needs to know of the configuration.
#[derive(Clone, Debug, Default)]
pub struct VerdictContext {
    /// The URI DHCP and DNS hand out for this appliance's redirect server
    /// (`redirect-server.advertise`), when it is enabled.
    pub redirect_server: Option<String>,
}

/// When a device reached one stage, and how often.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageSeen {
    /// The stage.
    pub stage: Stage,
    /// First time, Unix seconds (RFC 3339 in JSON).
    #[serde(with = "ts")]
    pub first: u64,
    /// Last time, Unix seconds (RFC 3339 in JSON).
    #[serde(with = "ts")]
    pub last: u64,
    /// How many steps reached it.
    pub count: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Mark {
    seq: u64,
    ts: u64,
    text: String,
}

/// One step in a device's timeline: the journal's event and its one-line summary. Steps
/// whose summary line is the same (a DHCP client renewing, a device retrying the same
/// request) are one entry: the latest event, how many there were and when the first was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TimelineEntry {
    /// The summary line.
    pub summary: String,
    /// How many steps had this summary line (1 or more; written only when more than 1).
    #[serde(skip_serializing_if = "is_one")]
    pub repeats: u64,
    /// When the first of them happened, Unix seconds (RFC 3339 in JSON); written only when
    /// `repeats` is more than 1 (the latest is the event's `ts`).
    #[serde(skip_serializing_if = "Option::is_none", with = "ts_opt")]
    pub first: Option<u64>,
    /// The latest of them, as the journal records it.
    #[serde(flatten)]
    pub event: DeviceEvent,
}

impl TimelineEntry {
    /// When the first of its steps happened, Unix seconds.
    fn first_ts(&self) -> u64 {
        self.first.unwrap_or(self.event.ts)
    }

    /// Counts `repeats` more steps of this line in, the first of them at `first` (Unix seconds).
    fn count_in(&mut self, first: u64, repeats: u64) {
        self.first = Some(self.first_ts().min(first));
        self.repeats += repeats;
    }
}

fn is_one(n: &u64) -> bool {
    *n == 1
}

/// One device: everything its steps said, merged.
#[derive(Clone, Debug)]
pub struct Device {
    id: u64,
    macs: Vec<MacAddr>,
    duids: Vec<String>,
    serials: Vec<String>,
    /// Addresses it holds (assigned, not given back) or, for a device known by nothing else,
    /// spoke from.
    addresses: Vec<IpAddr>,
    first_seq: u64,
    last_seq: u64,
    first_seen: u64,
    last_seen: u64,
    rule: Option<String>,
    asked: Asked,
    told: Option<Told>,
    /// Every stage reached, in journey order (at most one per [`Stage`]: a sorted `Vec` is a
    /// tenth of a `BTreeMap` node).
    stages: Vec<StageSeen>,
    /// Sequence number of the last step that reached a stage.
    progress_seq: u64,
    problem: Option<Mark>,
    complete: Option<Mark>,
    /// The latest steps, oldest first, each with its sequence number.
    /// Boxed: a `VecDeque` keeps room for 4 entries at least, and an entry is ~360 octets.
    events: VecDeque<(u64, Box<TimelineEntry>)>,
    events_total: u64,
}

impl Device {
    fn new(id: u64, seq: u64, ts: u64) -> Device {
        Device {
            id,
            macs: Vec::new(),
            duids: Vec::new(),
            serials: Vec::new(),
            addresses: Vec::new(),
            first_seq: seq,
            last_seq: seq,
            first_seen: ts,
            last_seen: ts,
            rule: None,
            asked: Asked::default(),
            told: None,
            stages: Vec::new(),
            progress_seq: 0,
            problem: None,
            complete: None,
            events: VecDeque::new(),
            events_total: 0,
        }
    }

    /// The identifier shown for this device and accepted by `/api/devices/{key}`: its serial
    /// number, else its MAC, else its DUID (hex), else the address it spoke from.
    pub fn key(&self) -> String {
        if let Some(s) = self.serials.first() {
            return s.clone();
        }
        if let Some(m) = self.macs.first() {
            return m.to_string();
        }
        if let Some(d) = self.duids.first() {
            return d.clone();
        }
        if let Some(a) = self.addresses.first() {
            return a.to_string();
        }
        format!("#{}", self.id)
    }

    /// The furthest stage reached.
    pub fn furthest(&self) -> Option<Stage> {
        self.stages.last().map(|s| s.stage)
    }

    /// Whether it reached `stage`.
    pub fn reached(&self, stage: Stage) -> bool {
        self.stages.iter().any(|s| s.stage == stage)
    }

    /// The verdict in words for the furthest stage that failed or never came.
    pub fn verdict(&self, cx: &VerdictContext) -> Verdict {
        let stage = self.furthest();
        let verdict = |status, text: String| Verdict {
            status,
            stage,
            text,
        };
        if let Some(p) = &self.problem {
            if p.seq > self.progress_seq {
                return verdict(VerdictStatus::Failed, p.text.clone());
            }
        }
        if let Some(c) = &self.complete {
            return verdict(VerdictStatus::Complete, c.text.clone());
        }
        let uris = |t: &Told| t.uris.join(", ");
        let to_us = |t: &Told| match &cx.redirect_server {
            Some(r) => t.uris.iter().any(|u| same_server(u, r)),
            None => false,
        };
        let Some(st) = stage else {
            return verdict(
                VerdictStatus::Stuck,
                "seen, but no step has reached a stage yet".into(),
            );
        };
        match st {
            Stage::DhcpOffered => verdict(
                VerdictStatus::Stuck,
                "got a DHCP offer but never came back for the lease: another DHCP server may \
                 have answered first (run `sztp-redirector probe` on the segment), or the device \
                 rejected the offer"
                    .into(),
            ),
            Stage::DhcpAcked => {
                let requested = self.asked.requested_143.or(self.asked.requested_136);
                match (&self.told, requested) {
                    (None, Some(false)) | (None, None) => verdict(
                        VerdictStatus::Stuck,
                        format!(
                            "got a lease but never asked for option {}: its DHCP client is \
                             not configured for SZTP",
                            self.redirect_option()
                        ),
                    ),
                    (None, Some(true)) => verdict(
                        VerdictStatus::Stuck,
                        format!(
                            "asked for option {} but was told no bootstrap server: its rule{} \
                             redirects it nowhere",
                            self.redirect_option(),
                            self.rule
                                .as_deref()
                                .map(|r| format!(" ({r})"))
                                .unwrap_or_default()
                        ),
                    ),
                    (Some(t), _) if to_us(t) => verdict(
                        VerdictStatus::Stuck,
                        format!(
                            "got a lease and option {} pointing at this appliance's redirect \
                             server ({}), but has not asked it for bootstrapping data: check \
                             that the device can reach it and accepts its TLS certificate",
                            self.redirect_option(),
                            uris(t)
                        ),
                    ),
                    (Some(t), _) => verdict(
                        VerdictStatus::HandedOff,
                        format!(
                            "got a lease and option {} naming the owner's bootstrap server \
                             ({}): the next steps happen there, out of this appliance's sight",
                            self.redirect_option(),
                            uris(t)
                        ),
                    ),
                }
            }
            Stage::DnsAnswered => match &self.told {
                Some(t) if t.proto == "dns" && !to_us(t) => verdict(
                    VerdictStatus::HandedOff,
                    format!(
                        "got its SZTP TXT record naming the owner's bootstrap server ({}): \
                         the next steps happen there, out of this appliance's sight",
                        uris(t)
                    ),
                ),
                _ => verdict(
                    VerdictStatus::Stuck,
                    "got its SZTP DNS records but has not asked the redirect server for \
                     bootstrapping data: check that the device can reach it"
                        .into(),
                ),
            },
            Stage::RedirectServed => verdict(
                VerdictStatus::HandedOff,
                match &self.told {
                    Some(t) => format!(
                        "got redirect-information naming {}: the next steps happen on the \
                         owner's bootstrap server",
                        uris(t)
                    ),
                    None => "got redirect-information: the next steps happen on the owner's \
                             bootstrap server"
                        .into(),
                },
            ),
            Stage::ProgressReported => verdict(
                VerdictStatus::Stuck,
                "reports progress but has not reported bootstrap-complete".into(),
            ),
        }
    }

    fn redirect_option(&self) -> &'static str {
        if self.asked.requested_143.is_none() && self.asked.requested_136.is_some() {
            "136"
        } else {
            "143"
        }
    }

    fn apply(&mut self, seq: u64, ev: DeviceEvent, o: Observation, max_events: usize) {
        self.last_seq = self.last_seq.max(seq);
        self.last_seen = self.last_seen.max(ev.ts);
        self.first_seen = self.first_seen.min(ev.ts);
        if let Some(m) = ev.mac {
            push_unique(&mut self.macs, m);
        }
        if let Some(d) = &ev.duid {
            push_unique(&mut self.duids, hex::encode(d));
        }
        if let Some(s) = &ev.serial {
            if !self.serials.contains(s) {
                self.serials.push(s.clone());
            }
        }
        if ev.rule.is_some() && self.rule != ev.rule {
            self.rule.clone_from(&ev.rule);
        }
        self.asked.take_from(o.asked);
        // the verdict speaks of the furthest stage, with what that step told: an answer of an
        // earlier stage seen later (a DNS lookup after the redirect) does not replace it
        let furthest_or_beyond = match (o.stage, self.furthest()) {
            (Some(st), Some(f)) => st >= f,
            _ => true,
        };
        if o.told.is_some() && (furthest_or_beyond || self.told.is_none()) {
            self.told = o.told;
        }
        if let Some(st) = o.stage {
            let e = stage_entry(
                &mut self.stages,
                StageSeen {
                    stage: st,
                    first: ev.ts,
                    last: ev.ts,
                    count: 0,
                },
            );
            e.first = e.first.min(ev.ts);
            e.last = e.last.max(ev.ts);
            e.count += 1;
            self.progress_seq = self.progress_seq.max(seq);
        }
        let mark = |text: String| Mark {
            seq,
            ts: ev.ts,
            text,
        };
        if let Some(p) = o.problem {
            self.problem = Some(mark(p));
        }
        if let Some(c) = o.complete {
            self.complete = Some(mark(c));
        }
        self.events_total += 1;
        // the same line again (a renewal, a retry): one entry, moved to the end with its count
        if let Some(i) = self
            .events
            .iter()
            .rposition(|(_, e)| e.summary == o.summary)
        {
            if let Some((_, mut e)) = self.events.remove(i) {
                e.count_in(ev.ts, 1);
                e.event = ev;
                self.events.push_back((seq, e));
                return;
            }
        }
        self.events.push_back((
            seq,
            Box::new(TimelineEntry {
                summary: o.summary,
                repeats: 1,
                first: None,
                event: ev,
            }),
        ));
        while self.events.len() > max_events {
            self.events.pop_front();
        }
    }

    /// Steps the timeline still holds, counting each entry's repeats.
    fn events_kept(&self) -> u64 {
        self.events.iter().map(|(_, e)| e.repeats).sum()
    }

    /// Folds `other` (a device found to be the same) into this one.
    fn absorb(&mut self, other: Device, max_events: usize) {
        let newer_is_other = other.last_seq > self.last_seq;
        // what the furthest stage told wins, as in `apply`; between equals, the newer
        let other_told_wins = match other.furthest().cmp(&self.furthest()) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => newer_is_other,
        };
        if other.told.is_some() && (other_told_wins || self.told.is_none()) {
            self.told = other.told.clone();
        }
        for m in other.macs {
            push_unique(&mut self.macs, m);
        }
        for d in other.duids {
            push_unique(&mut self.duids, d);
        }
        for s in other.serials {
            push_unique(&mut self.serials, s);
        }
        for a in other.addresses {
            push_unique(&mut self.addresses, a);
        }
        self.first_seq = self.first_seq.min(other.first_seq);
        self.last_seq = self.last_seq.max(other.last_seq);
        self.first_seen = self.first_seen.min(other.first_seen);
        self.last_seen = self.last_seen.max(other.last_seen);
        if newer_is_other {
            let mut asked = self.asked.clone();
            asked.update(&other.asked);
            self.asked = asked;
            if other.rule.is_some() {
                self.rule = other.rule;
            }
        } else {
            let mut asked = other.asked;
            asked.update(&self.asked);
            self.asked = asked;
            if self.rule.is_none() {
                self.rule = other.rule;
            }
        }
        for seen in other.stages {
            let e = stage_entry(&mut self.stages, StageSeen { count: 0, ..seen });
            e.first = e.first.min(seen.first);
            e.last = e.last.max(seen.last);
            e.count += seen.count;
        }
        self.progress_seq = self.progress_seq.max(other.progress_seq);
        let later = |a: Option<Mark>, b: Option<Mark>| match (a, b) {
            (Some(a), Some(b)) => Some(if b.seq > a.seq { b } else { a }),
            (a, b) => a.or(b),
        };
        self.problem = later(self.problem.take(), other.problem);
        self.complete = later(self.complete.take(), other.complete);
        let mut all: Vec<(u64, Box<TimelineEntry>)> = self.events.drain(..).collect();
        all.extend(other.events);
        all.sort_by_key(|(seq, _)| *seq);
        // a step both had (the same line on two ports, say) stays one entry: at its later
        // place, with both counts and the earlier first time. Newest first, the first entry
        // of a summary is the one kept (indexed: up to 2 x 10,000 entries; merges are rare)
        let mut one_each: Vec<(u64, Box<TimelineEntry>)> = Vec::with_capacity(all.len());
        let mut at: HashMap<String, usize> = HashMap::with_capacity(all.len());
        for (seq, e) in all.into_iter().rev() {
            match at.get(&e.summary) {
                Some(&i) => one_each[i].1.count_in(e.first_ts(), e.repeats),
                None => {
                    at.insert(e.summary.clone(), one_each.len());
                    one_each.push((seq, e));
                }
            }
        }
        one_each.reverse();
        let skip = one_each.len().saturating_sub(max_events);
        self.events = one_each.into_iter().skip(skip).collect();
        self.events_total += other.events_total;
    }

    /// The summary the API and the page show.
    pub fn summary(&self, cx: &VerdictContext) -> DeviceSummary {
        DeviceSummary {
            key: self.key(),
            id: self.id,
            macs: self.macs.iter().map(ToString::to_string).collect(),
            duids: self.duids.clone(),
            serials: self.serials.clone(),
            addresses: self.addresses.clone(),
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            rule: self.rule.clone(),
            asked: self.asked.clone(),
            told: self.told.clone(),
            stage: self.furthest(),
            stages: self.stages.clone(),
            verdict: self.verdict(cx),
            events: self.events_total,
        }
    }

    /// The summary with the timeline (the latest events, oldest first).
    pub fn detail(&self, cx: &VerdictContext) -> DeviceDetail {
        DeviceDetail {
            device: self.summary(cx),
            timeline: self.events.iter().map(|(_, e)| (**e).clone()).collect(),
            timeline_truncated: self.events_total > self.events_kept(),
        }
    }
}

/// The entry of `seen.stage` in `stages` (sorted by stage), inserted as `seen` if absent.
fn stage_entry(stages: &mut Vec<StageSeen>, seen: StageSeen) -> &mut StageSeen {
    let i = match stages.binary_search_by_key(&seen.stage, |s| s.stage) {
        Ok(i) => i,
        Err(i) => {
            stages.insert(i, seen);
            i
        }
    };
    &mut stages[i]
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

/// Whether two `https://host[:port]` URIs name the same server (the port defaults to 443).
fn same_server(a: &str, b: &str) -> bool {
    fn norm(u: &str) -> String {
        let rest = u.trim_end_matches('/');
        let rest = rest.strip_prefix("https://").unwrap_or(rest);
        let authority = rest.split('/').next().unwrap_or(rest).to_ascii_lowercase();
        let has_port = match authority.rfind(']') {
            Some(i) => authority[i..].contains(':'),
            None => authority.contains(':'),
        };
        if has_port {
            authority
        } else {
            format!("{authority}:443")
        }
    }
    norm(a) == norm(b)
}

/// One device as `/api/devices` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSummary {
    /// Its identifier (see [`Device::key`]).
    pub key: String,
    /// The table's number for it (stable while it is in the table).
    pub id: u64,
    /// Its MAC addresses, `aa:bb:cc:dd:ee:ff`.
    pub macs: Vec<String>,
    /// Its DHCPv6 DUIDs, lowercase hex.
    pub duids: Vec<String>,
    /// Its serial numbers.
    pub serials: Vec<String>,
    /// Addresses it holds.
    pub addresses: Vec<IpAddr>,
    /// First step, Unix seconds (RFC 3339 in JSON).
    #[serde(with = "ts")]
    pub first_seen: u64,
    /// Latest step, Unix seconds (RFC 3339 in JSON).
    #[serde(with = "ts")]
    pub last_seen: u64,
    /// The rule (or `device:<label>`) that decided for it last.
    pub rule: Option<String>,
    /// What it asked for.
    pub asked: Asked,
    /// What it was told last.
    pub told: Option<Told>,
    /// The furthest stage reached.
    pub stage: Option<Stage>,
    /// Every stage reached, in journey order.
    pub stages: Vec<StageSeen>,
    /// Where it is stuck, in words.
    pub verdict: Verdict,
    /// How many events it produced in all (the timeline keeps the latest).
    pub events: u64,
}

/// One device with its timeline, as `/api/devices/{key}` returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceDetail {
    /// The summary.
    #[serde(flatten)]
    pub device: DeviceSummary,
    /// The latest events, oldest first.
    pub timeline: Vec<TimelineEntry>,
    /// Whether older events were left out (the per-device bound).
    pub timeline_truncated: bool,
}

mod ts_opt {
    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(ts: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match ts {
            Some(t) => s.collect_str(&crate::journal::rfc3339(*t)),
            None => s.serialize_none(),
        }
    }
}

mod ts {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(ts: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&crate::journal::rfc3339(*ts))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        crate::journal::parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom("bad RFC 3339 time"))
    }
}

/// Size bounds of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Devices kept; past it, the one seen least recently is evicted.
    pub max_devices: usize,
    /// Events kept per device; past it, its oldest event is dropped.
    pub events_per_device: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_devices: 4096,
            events_per_device: 32,
        }
    }
}

/// The fold itself, without threads: what [`DeviceTable`] runs on its thread and what
/// `sztp-redirector devices` runs over the journal files.
#[derive(Debug, Default)]
pub struct Fold {
    limits: Limits,
    /// Boxed: a device is ~660 octets, and the map's spare slots and rehashes then cost a
    /// pointer each, not a device.
    devices: HashMap<u64, Box<Device>>,
    by_mac: HashMap<MacAddr, u64>,
    by_duid: HashMap<String, u64>,
    by_serial: HashMap<String, u64>,
    by_addr: HashMap<IpAddr, u64>,
    /// last_seq → device id: the eviction order.
    recency: BTreeMap<u64, u64>,
    next_id: u64,
    seq: u64,
    evicted: u64,
    folded: u64,
}

impl Fold {
    /// An empty table with these bounds.
    pub fn new(limits: Limits) -> Fold {
        Fold {
            limits: Limits {
                max_devices: limits.max_devices.max(1),
                events_per_device: limits.events_per_device.max(1),
            },
            ..Fold::default()
        }
    }

    /// Folds one event.
    pub fn fold(&mut self, ev: DeviceEvent) {
        let o = observe(&ev);
        self.fold_observed(ev, o);
    }

    /// Folds one event with what [`observe`] made of it (the caller may have counted it).
    pub fn fold_observed(&mut self, ev: DeviceEvent, o: Observation) {
        self.seq += 1;
        self.folded += 1;
        let seq = self.seq;
        let duid = ev.duid.as_deref().map(hex::encode);
        // every entry this event names; a lease's address links a step that carries no other key
        let mut ids: Vec<u64> = Vec::new();
        let mut add = |id: Option<&u64>| {
            if let Some(&id) = id {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        };
        if let Some(m) = &ev.mac {
            add(self.by_mac.get(m));
        }
        if let Some(d) = &duid {
            add(self.by_duid.get(d));
        }
        if let Some(s) = &ev.serial {
            add(self.by_serial.get(s));
        }
        if let Some(a) = &o.source {
            add(self.by_addr.get(a));
        }
        let has_identity = ev.mac.is_some() || duid.is_some() || ev.serial.is_some();
        let id = match ids.split_first() {
            None => {
                if !has_identity && o.source.is_none() {
                    // nothing to know the device by: the step still counts in the metrics
                    return;
                }
                self.insert_new(seq, ev.ts)
            }
            Some((&first, rest)) => {
                // the oldest entry survives a merge
                let keep = ids
                    .iter()
                    .copied()
                    .min_by_key(|id| self.devices[id].first_seq)
                    .unwrap_or(first);
                for &other in std::iter::once(&first).chain(rest) {
                    if other != keep {
                        self.merge(keep, other);
                    }
                }
                keep
            }
        };
        // index the keys this event brings
        if let Some(m) = ev.mac {
            self.by_mac.insert(m, id);
        }
        if let Some(d) = duid {
            self.by_duid.insert(d, id);
        }
        if let Some(s) = &ev.serial {
            self.by_serial.insert(s.clone(), id);
        }
        if let Some(a) = o.assigned {
            self.link_addr(a, id);
        }
        if let Some(a) = o.unassigned {
            if self.by_addr.get(&a) == Some(&id) {
                self.by_addr.remove(&a);
            }
            if let Some(d) = self.devices.get_mut(&id) {
                d.addresses.retain(|x| *x != a);
            }
        }
        if let (Some(a), false) = (o.source, has_identity) {
            if !self.by_addr.contains_key(&a) {
                self.link_addr(a, id);
            }
        }
        let max_events = self.limits.events_per_device;
        let dev = self.devices.get_mut(&id).expect("indexed device exists");
        let old_seq = dev.last_seq;
        dev.apply(seq, ev, o, max_events);
        self.recency.remove(&old_seq);
        self.recency.insert(seq, id);
    }

    fn link_addr(&mut self, a: IpAddr, id: u64) {
        if let Some(prev) = self.by_addr.insert(a, id) {
            if prev != id {
                if let Some(d) = self.devices.get_mut(&prev) {
                    d.addresses.retain(|x| *x != a);
                }
            }
        }
        if let Some(d) = self.devices.get_mut(&id) {
            push_unique(&mut d.addresses, a);
        }
    }

    fn insert_new(&mut self, seq: u64, ts: u64) -> u64 {
        while self.devices.len() >= self.limits.max_devices {
            let Some((_, oldest)) = self.recency.pop_first() else {
                break;
            };
            self.remove(oldest);
            self.evicted += 1;
        }
        self.next_id += 1;
        let id = self.next_id;
        self.devices.insert(id, Box::new(Device::new(id, seq, ts)));
        self.recency.insert(seq, id);
        id
    }

    fn remove(&mut self, id: u64) -> Option<Box<Device>> {
        let d = self.devices.remove(&id)?;
        self.recency.remove(&d.last_seq);
        for m in &d.macs {
            if self.by_mac.get(m) == Some(&id) {
                self.by_mac.remove(m);
            }
        }
        for k in &d.duids {
            if self.by_duid.get(k) == Some(&id) {
                self.by_duid.remove(k);
            }
        }
        for s in &d.serials {
            if self.by_serial.get(s) == Some(&id) {
                self.by_serial.remove(s);
            }
        }
        for a in &d.addresses {
            if self.by_addr.get(a) == Some(&id) {
                self.by_addr.remove(a);
            }
        }
        Some(d)
    }

    fn merge(&mut self, keep: u64, other: u64) {
        let Some(o) = self.remove(other) else { return };
        for m in &o.macs {
            self.by_mac.insert(*m, keep);
        }
        for k in &o.duids {
            self.by_duid.insert(k.clone(), keep);
        }
        for s in &o.serials {
            self.by_serial.insert(s.clone(), keep);
        }
        for a in &o.addresses {
            self.by_addr.insert(*a, keep);
        }
        let max_events = self.limits.events_per_device;
        if let Some(k) = self.devices.get_mut(&keep) {
            let old_seq = k.last_seq;
            k.absorb(*o, max_events);
            let new_seq = k.last_seq;
            self.recency.remove(&old_seq);
            self.recency.insert(new_seq, keep);
        }
    }

    /// Devices in the table.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// Devices evicted to stay within [`Limits::max_devices`].
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Events folded so far.
    pub fn folded(&self) -> u64 {
        self.folded
    }

    /// Every device, the one seen most recently first.
    pub fn devices(&self) -> impl Iterator<Item = &Device> {
        self.recency
            .values()
            .rev()
            .filter_map(|id| self.devices.get(id).map(|d| &**d))
    }

    /// The device known by `key`: a serial number, a MAC, a DUID (hex), an address it holds,
    /// or `#<id>`.
    pub fn find(&self, key: &str) -> Option<&Device> {
        let key = key.trim();
        let id = if let Some(n) = key.strip_prefix('#') {
            n.parse::<u64>().ok()
        } else {
            None
        }
        .or_else(|| self.by_serial.get(key).copied())
        .or_else(|| {
            key.parse::<MacAddr>()
                .ok()
                .and_then(|m| self.by_mac.get(&m).copied())
        })
        .or_else(|| {
            let k = key.to_ascii_lowercase().replace(':', "");
            self.by_duid.get(&k).copied()
        })
        .or_else(|| {
            key.parse::<IpAddr>()
                .ok()
                .and_then(|a| self.by_addr.get(&a).copied())
        })?;
        self.devices.get(&id).map(|d| &**d)
    }

    /// Folds the journal files in `dir` (rotated ones first, oldest first), skipping lines
    /// that do not parse. Returns (events folded, lines skipped).
    ///
    /// Errors: reading a file that exists fails.
    pub fn replay_journal(&mut self, dir: &Path) -> io::Result<(u64, u64)> {
        let mut files: Vec<std::path::PathBuf> = (1..=KEEP_ROTATED)
            .rev()
            .map(|n| dir.join(format!("{DEVICE_JOURNAL_FILE}.{n}")))
            .collect();
        files.push(dir.join(DEVICE_JOURNAL_FILE));
        let (mut ok, mut bad) = (0, 0);
        for f in files {
            let text = match std::fs::read_to_string(&f) {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", f.display()))),
            };
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                match serde_json::from_str::<DeviceEvent>(line) {
                    Ok(ev) => {
                        self.fold(ev);
                        ok += 1;
                    }
                    Err(_) => bad += 1,
                }
            }
        }
        Ok((ok, bad))
    }
}

enum Msg {
    Event(Box<DeviceEvent>),
    Flush(mpsc::Sender<()>),
    /// Test hook: report "stalled", then block until released.
    #[cfg(test)]
    Stall(mpsc::Sender<()>, mpsc::Receiver<()>),
}

/// The live device table: a [`Fold`] owned by a background thread, fed without blocking.
/// Share it behind an `Arc`; dropping the last handle stops the thread.
pub struct DeviceTable {
    tx: Option<SyncSender<Msg>>,
    fold: Arc<Mutex<Fold>>,
    dropped: Arc<AtomicU64>,
    changed: tokio::sync::watch::Sender<u64>,
    thread: Option<JoinHandle<()>>,
}

impl DeviceTable {
    /// Starts the fold thread over `fold` (empty, or replayed from the journal), counting
    /// event kinds into `metrics`.
    ///
    /// Errors: the thread cannot be spawned.
    pub fn spawn(fold: Fold, metrics: Option<EventMetrics>) -> io::Result<DeviceTable> {
        Self::spawn_with_capacity(fold, metrics, DEFAULT_CAPACITY)
    }

    /// [`spawn`](Self::spawn) with `capacity` events allowed to queue before events are dropped.
    pub fn spawn_with_capacity(
        fold: Fold,
        metrics: Option<EventMetrics>,
        capacity: usize,
    ) -> io::Result<DeviceTable> {
        let (tx, rx) = mpsc::sync_channel(capacity);
        let fold = Arc::new(Mutex::new(fold));
        let (changed, _) = tokio::sync::watch::channel(0u64);
        let thread_fold = Arc::clone(&fold);
        let thread_changed = changed.clone();
        let thread = std::thread::Builder::new()
            .name("device-table".into())
            .spawn(move || fold_thread(rx, &thread_fold, &thread_changed, metrics.as_ref()))?;
        Ok(DeviceTable {
            tx: Some(tx),
            fold,
            dropped: Arc::new(AtomicU64::new(0)),
            changed,
            thread: Some(thread),
        })
    }

    /// Queues a copy of `ev` for folding; never blocks. A full queue drops it and counts it.
    pub fn submit(&self, ev: &DeviceEvent) {
        self.submit_owned(ev.clone());
    }

    /// [`DeviceTable::submit`] without copying the event.
    pub fn submit_owned(&self, ev: DeviceEvent) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(Msg::Event(Box::new(ev))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Events dropped because the fold thread was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every event submitted before this call is folded. Blocks; not for the
    /// packet path.
    pub fn flush(&self) {
        let Some(tx) = &self.tx else { return };
        let (ack_tx, ack_rx) = mpsc::channel();
        if tx.send(Msg::Flush(ack_tx)).is_ok() {
            let _ = ack_rx.recv();
        }
    }

    /// The table, locked for reading. Hold it briefly: the fold thread waits meanwhile.
    pub fn read(&self) -> MutexGuard<'_, Fold> {
        self.fold.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiver whose value changes (the number of events folded) after each batch.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

impl std::fmt::Debug for DeviceTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceTable").finish_non_exhaustive()
    }
}

impl Drop for DeviceTable {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn fold_thread(
    rx: mpsc::Receiver<Msg>,
    fold: &Mutex<Fold>,
    changed: &tokio::sync::watch::Sender<u64>,
    metrics: Option<&EventMetrics>,
) {
    while let Ok(first) = rx.recv() {
        // take what is queued as one batch: one lock and one change notification per batch
        let mut batch = vec![first];
        while let Ok(m) = rx.try_recv() {
            batch.push(m);
            if batch.len() >= 512 {
                break;
            }
        }
        let mut acks = Vec::new();
        let folded = {
            let mut f = fold.lock().unwrap_or_else(|e| e.into_inner());
            for m in batch {
                match m {
                    Msg::Event(ev) => {
                        let o = observe(&ev);
                        if let Some(m) = metrics {
                            m.observe(&ev, &o);
                        }
                        f.fold_observed(*ev, o);
                    }
                    Msg::Flush(ack) => acks.push(ack),
                    #[cfg(test)]
                    Msg::Stall(stalled, release) => {
                        let _ = stalled.send(());
                        let _ = release.recv();
                    }
                }
            }
            f.folded()
        };
        changed.send_replace(folded);
        let flushed = !acks.is_empty();
        for a in acks {
            let _ = a.send(());
        }
        if !flushed {
            // let the next events queue up: at a few thousand events per second, waking this
            // thread per event cost the packet path a futex wake and two context switches
            // each (`tests/bench/dhcp4.sh --perfstat`); the table lags by at most this
            std::thread::sleep(COALESCE);
        }
    }
}

/// How long the fold thread lets events queue after a batch (as the device journal's writer).
const COALESCE: std::time::Duration = std::time::Duration::from_millis(10);

/// The time of `ts` for tables: RFC 3339 UTC.
pub fn show_time(ts: u64) -> String {
    rfc3339(ts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const T0: u64 = 1_795_810_500;

    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }

    fn dhcp4(ts: u64, kind: Dhcp4Kind, m: u8, addr: Option<[u8; 4]>, req: bool) -> DeviceEvent {
        let mut ev = DeviceEvent::dhcp4(ts, kind, 0x42, mac(m));
        ev.rule = Some("default".into());
        let EventDetail::Dhcp4(d) = &mut ev.detail else {
            unreachable!("built as a DHCPv4 event")
        };
        d.address = addr.map(Ipv4Addr::from);
        d.requested_143 = req;
        d.interface = Some("eth1".into());
        if req && matches!(kind, Dhcp4Kind::Offer | Dhcp4Kind::Ack) {
            ev.uris = vec!["https://sztp.owner.example.com:8443".into()];
            d.encoding = Some(crate::policy::UriEncoding::Rfc8572);
        }
        ev
    }

    fn cx() -> VerdictContext {
        VerdictContext::default()
    }

    #[test]
    fn a_full_dhcp4_exchange_is_one_device_handed_off() {
        let mut f = Fold::new(Limits::default());
        f.fold(dhcp4(T0, Dhcp4Kind::Offer, 1, Some([192, 0, 2, 100]), true));
        f.fold(dhcp4(
            T0 + 1,
            Dhcp4Kind::Ack,
            1,
            Some([192, 0, 2, 100]),
            true,
        ));
        assert_eq!(f.len(), 1);
        let d = f.find("02:00:00:00:00:01").unwrap();
        assert_eq!(f.find("192.0.2.100").unwrap().id, d.id);
        let s = d.summary(&cx());
        assert_eq!(s.stage, Some(Stage::DhcpAcked));
        assert_eq!(
            s.stages.iter().map(|x| x.stage).collect::<Vec<_>>(),
            [Stage::DhcpOffered, Stage::DhcpAcked]
        );
        assert_eq!(s.first_seen, T0);
        assert_eq!(s.last_seen, T0 + 1);
        assert_eq!(s.asked.requested_143, Some(true));
        assert_eq!(s.addresses, [IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100))]);
        assert_eq!(s.verdict.status, VerdictStatus::HandedOff);
        assert!(
            s.verdict.text.contains(
                "naming the owner's bootstrap server (https://sztp.owner.example.com:8443)"
            ),
            "{}",
            s.verdict.text
        );
        let detail = d.detail(&cx());
        assert_eq!(detail.timeline.len(), 2);
        assert!(detail.timeline[1].summary.starts_with("DHCPv4 ACK 192.0.2.100: asked for option 143, sent option 143 with 1 URI (rule default)"), "{}", detail.timeline[1].summary);
    }

    #[test]
    fn never_asking_for_143_is_named() {
        let mut f = Fold::new(Limits::default());
        f.fold(dhcp4(
            T0,
            Dhcp4Kind::Offer,
            2,
            Some([192, 0, 2, 101]),
            false,
        ));
        f.fold(dhcp4(T0, Dhcp4Kind::Ack, 2, Some([192, 0, 2, 101]), false));
        let v = f.find("02:00:00:00:00:02").unwrap().verdict(&cx());
        assert_eq!(v.status, VerdictStatus::Stuck);
        assert_eq!(
            v.text,
            "got a lease but never asked for option 143: its DHCP client is not configured for SZTP"
        );
    }

    #[test]
    fn offered_only_and_redirect_server_verdicts() {
        let mut f = Fold::new(Limits::default());
        f.fold(dhcp4(T0, Dhcp4Kind::Offer, 3, Some([192, 0, 2, 102]), true));
        let v = f.find("02:00:00:00:00:03").unwrap().verdict(&cx());
        assert_eq!(v.stage, Some(Stage::DhcpOffered));
        assert!(
            v.text.starts_with("got a DHCP offer but never came back"),
            "{}",
            v.text
        );

        f.fold(dhcp4(T0, Dhcp4Kind::Ack, 3, Some([192, 0, 2, 102]), true));
        let ours = VerdictContext {
            redirect_server: Some("https://SZTP.owner.example.com:8443/".into()),
        };
        let v = f.find("02:00:00:00:00:03").unwrap().verdict(&ours);
        assert_eq!(v.status, VerdictStatus::Stuck);
        assert!(
            v.text
                .contains("pointing at this appliance's redirect server"),
            "{}",
            v.text
        );
    }

    #[test]
    fn a_problem_is_the_verdict_until_a_later_step_progresses() {
        let mut f = Fold::new(Limits::default());
        f.fold(dhcp4(T0, Dhcp4Kind::Nak, 4, None, true));
        let v = f.find("02:00:00:00:00:04").unwrap().verdict(&cx());
        assert_eq!(v.status, VerdictStatus::Failed);
        assert_eq!(v.stage, None);
        assert!(v.text.contains("NAK"), "{}", v.text);
        // same second: order, not the clock, decides
        f.fold(dhcp4(T0, Dhcp4Kind::Offer, 4, Some([192, 0, 2, 103]), true));
        f.fold(dhcp4(T0, Dhcp4Kind::Ack, 4, Some([192, 0, 2, 103]), true));
        let v = f.find("02:00:00:00:00:04").unwrap().verdict(&cx());
        assert_eq!(v.status, VerdictStatus::HandedOff);
        f.fold(dhcp4(T0, Dhcp4Kind::NoAddress, 5, None, true));
        let v = f.find("02:00:00:00:00:05").unwrap().verdict(&cx());
        assert_eq!(v.status, VerdictStatus::Failed);
        assert!(v.text.contains("none was free"), "{}", v.text);
    }

    #[test]
    fn decline_and_release_unlink_the_address() {
        let mut f = Fold::new(Limits::default());
        f.fold(dhcp4(T0, Dhcp4Kind::Ack, 6, Some([192, 0, 2, 110]), true));
        assert!(f.find("192.0.2.110").is_some());
        f.fold(dhcp4(
            T0 + 5,
            Dhcp4Kind::Release,
            6,
            Some([192, 0, 2, 110]),
            false,
        ));
        assert!(f.find("192.0.2.110").is_none());
        assert!(f.find("02:00:00:00:00:06").unwrap().addresses.is_empty());
        // a reused address moves to its new holder
        f.fold(dhcp4(T0, Dhcp4Kind::Ack, 7, Some([192, 0, 2, 111]), true));
        f.fold(dhcp4(T0, Dhcp4Kind::Ack, 8, Some([192, 0, 2, 111]), true));
        assert_eq!(f.find("192.0.2.111").unwrap().key(), "02:00:00:00:00:08");
        assert!(f.find("02:00:00:00:00:07").unwrap().addresses.is_empty());
    }

    fn dhcp6(ts: u64, kind: Dhcp6Kind, n: u8, addr: Option<&str>, req: bool) -> DeviceEvent {
        let duid = vec![0, 3, 0, 1, 2, 0, 0, 0, 0x66, n];
        let mut ev = DeviceEvent::dhcp6(ts, kind, 0x42, duid);
        ev.rule = Some("default".into());
        let EventDetail::Dhcp6(d) = &mut ev.detail else {
            unreachable!("built as a DHCPv6 event")
        };
        d.iaid = Some(9);
        d.address = addr.map(|a| a.parse().unwrap());
        d.requested_136 = req;
        d.relay = Some("2001:db8:1::1".into());
        if req && kind != Dhcp6Kind::Decline {
            ev.uris = vec!["https://sztp.owner.example.com:8443".into()];
            d.encoding = Some("rfc8572".into());
        }
        ev
    }

    #[test]
    fn dhcp6_steps_fold_by_duid_with_their_verdicts() {
        let mut f = Fold::new(Limits::default());
        f.fold(dhcp6(
            T0,
            Dhcp6Kind::Advertise,
            1,
            Some("2001:db8:1::10"),
            true,
        ));
        let key = "00030001020000006601";
        let v = f.find(key).unwrap().verdict(&cx());
        assert_eq!(v.stage, Some(Stage::DhcpOffered));
        f.fold(dhcp6(
            T0,
            Dhcp6Kind::Request,
            1,
            Some("2001:db8:1::10"),
            true,
        ));
        let d = f.find(key).unwrap();
        assert_eq!(f.find("2001:db8:1::10").unwrap().id, d.id);
        let s = d.summary(&cx());
        assert_eq!(
            s.verdict.status,
            VerdictStatus::HandedOff,
            "{}",
            s.verdict.text
        );
        assert!(
            s.verdict.text.contains("option 136 naming"),
            "{}",
            s.verdict.text
        );
        assert_eq!(s.asked.requested_136, Some(true));
        assert_eq!(s.asked.relay.as_deref(), Some("2001:db8:1::1"));
        assert_eq!(
            d.detail(&cx()).timeline[1].summary,
            "DHCPv6 Reply to Request 2001:db8:1::10: asked for option 136, sent option 136 \
             with 1 URI (rule default)"
        );

        // stateless: an answered Information-request is the furthest a device gets
        f.fold(dhcp6(T0, Dhcp6Kind::InformationRequest, 2, None, false));
        let key2 = "00030001020000006602";
        let v = f.find(key2).unwrap().verdict(&cx());
        assert_eq!(v.stage, Some(Stage::DhcpAcked));
        assert_eq!(
            v.text,
            "got a lease but never asked for option 136: its DHCP client is not configured \
             for SZTP"
        );

        // a refusal without an address is the verdict, in words
        let mut ev = dhcp6(T0, Dhcp6Kind::Advertise, 3, None, true);
        let EventDetail::Dhcp6(d) = &mut ev.detail else {
            unreachable!()
        };
        d.status = Some(Dhcp6Status::NoAddrsAvail);
        f.fold(ev);
        let v = f.find("00030001020000006603").unwrap().verdict(&cx());
        assert_eq!(v.status, VerdictStatus::Failed);
        assert!(v.text.contains("(no-addrs-avail)"), "{}", v.text);
        assert!(v.text.contains("pools are exhausted"), "{}", v.text);

        // a Decline fails the device and unlinks the address
        f.fold(dhcp6(
            T0 + 1,
            Dhcp6Kind::Decline,
            1,
            Some("2001:db8:1::10"),
            true,
        ));
        assert!(f.find("2001:db8:1::10").is_none());
        let v = f.find(key).unwrap().verdict(&cx());
        assert_eq!(v.status, VerdictStatus::Failed);
        assert!(
            v.text.starts_with("it Declined 2001:db8:1::10"),
            "{}",
            v.text
        );
    }

    /// A later protocol's step that carries only a serial and a source address links the
    /// lease holder and the serial into one device (RESTCONF after DHCP), through the same
    /// fold the real variants use.
    #[test]
    fn a_source_address_and_a_serial_merge_entries() {
        let mut f = Fold::new(Limits::default());
        f.fold(dhcp4(T0, Dhcp4Kind::Ack, 9, Some([192, 0, 2, 120]), true));
        // a serial seen first somewhere else (e.g. a DNS TXT query), as its own entry
        let mut dns = DeviceEvent::dhcp4(T0 + 1, Dhcp4Kind::Inform, 0, mac(0));
        dns.mac = None;
        dns.serial = Some("SN123".into());
        let o = Observation {
            proto: "dns",
            kind: "answer",
            stage: Some(Stage::DnsAnswered),
            summary: "DNS TXT SN123._sztp answered".into(),
            ..Observation::default()
        };
        f.fold_observed(dns.clone(), o);
        assert_eq!(f.len(), 2);
        // the RESTCONF request: from the leased address, with that serial
        let mut rc = dns.clone();
        rc.ts = T0 + 2;
        rc.uris = vec!["https://sztp.owner.example.com:8443".into()];
        let o = Observation {
            proto: "restconf",
            kind: "get-bootstrapping-data",
            stage: Some(Stage::RedirectServed),
            source: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 120))),
            told: Some(Told {
                proto: "restconf".into(),
                uris: rc.uris.clone(),
                redirect: true,
                signed: Some(false),
                ..Told::default()
            }),
            summary: "redirect served".into(),
            ..Observation::default()
        };
        f.fold_observed(rc, o);
        assert_eq!(f.len(), 1, "merged");
        let d = f.find("SN123").unwrap();
        assert_eq!(f.find("02:00:00:00:00:09").unwrap().id, d.id);
        assert_eq!(d.key(), "SN123");
        let s = d.summary(&cx());
        assert_eq!(
            s.stages.iter().map(|x| x.stage).collect::<Vec<_>>(),
            [Stage::DhcpAcked, Stage::DnsAnswered, Stage::RedirectServed]
        );
        assert_eq!(s.verdict.status, VerdictStatus::HandedOff);
        assert!(s
            .verdict
            .text
            .starts_with("got redirect-information naming"));
        let tl = d.detail(&cx()).timeline;
        assert_eq!(
            tl.iter().map(|e| e.summary.as_str()).collect::<Vec<_>>()[1..],
            ["DNS TXT SN123._sztp answered", "redirect served"]
        );
    }

    fn dns(
        ts: u64,
        serial: &str,
        kind: DnsKind,
        transport: DnsTransport,
        src: [u8; 4],
    ) -> DeviceEvent {
        DeviceEvent {
            ts,
            mac: None,
            duid: None,
            serial: Some(serial.into()),
            rule: (kind == DnsKind::Answered).then(|| "default".to_owned()),
            uris: if kind == DnsKind::Answered {
                vec!["https://sztp.owner.example.com:8443".into()]
            } else {
                Vec::new()
            },
            detail: EventDetail::Dns(DnsEvent {
                event: kind,
                transport,
                source: IpAddr::V4(Ipv4Addr::from(src)),
                qname: format!("{}._sztp.example.com", serial.to_lowercase()),
                qtype: "TXT".into(),
                signing: None,
            }),
        }
    }

    /// Unicast DNS is keyed by serial only (its source may be a resolver); mDNS comes from the
    /// device itself, so its source links it to the lease holder.
    #[test]
    fn dns_events_key_by_serial_and_mdns_links_the_lease() {
        let mut f = Fold::new(Limits::default());
        f.fold(dhcp4(T0, Dhcp4Kind::Ack, 9, Some([192, 0, 2, 120]), false));
        f.fold(dns(
            T0 + 1,
            "SN1",
            DnsKind::Answered,
            DnsTransport::Udp,
            [192, 0, 2, 120],
        ));
        assert_eq!(f.len(), 2, "unicast: not linked by source");
        let d = f.find("SN1").unwrap();
        let v = d.verdict(&cx());
        assert_eq!(v.stage, Some(Stage::DnsAnswered));
        assert_eq!(v.status, VerdictStatus::HandedOff);
        assert!(v.text.starts_with("got its SZTP TXT record naming the owner's bootstrap server (https://sztp.owner.example.com:8443)"), "{}", v.text);
        assert!(d.detail(&cx()).timeline[0]
            .summary
            .starts_with("DNS over UDP TXT sn1._sztp.example.com from 192.0.2.120: answered, redirect-information with 1 URI (rule default)"));

        f.fold(dns(
            T0 + 2,
            "SN2",
            DnsKind::Answered,
            DnsTransport::Mdns,
            [192, 0, 2, 120],
        ));
        assert_eq!(f.len(), 2, "mDNS: merged with the lease holder");
        assert_eq!(
            f.find("SN2").unwrap().id,
            f.find("02:00:00:00:00:09").unwrap().id
        );

        f.fold(dns(
            T0 + 3,
            "sn3",
            DnsKind::Nxdomain,
            DnsTransport::Tcp,
            [198, 51, 100, 7],
        ));
        let v = f.find("sn3").unwrap().verdict(&cx());
        assert_eq!(v.status, VerdictStatus::Failed);
        assert!(
            v.text.contains("got NXDOMAIN: no device entry or rule"),
            "{}",
            v.text
        );
        // an answer pointing at this appliance's own redirect server is not a hand-off
        let ours = VerdictContext {
            redirect_server: Some("https://sztp.owner.example.com:8443".into()),
        };
        assert_eq!(
            f.find("SN1").unwrap().verdict(&ours).status,
            VerdictStatus::Stuck
        );
    }

    #[test]
    fn bounded_in_devices_and_events() {
        let mut f = Fold::new(Limits {
            max_devices: 3,
            events_per_device: 2,
        });
        for n in 1..=4u8 {
            f.fold(dhcp4(T0, Dhcp4Kind::Offer, n, Some([192, 0, 2, n]), true));
        }
        assert_eq!(f.len(), 3);
        assert_eq!(f.evicted(), 1);
        assert!(
            f.find("02:00:00:00:00:01").is_none(),
            "least recently seen goes"
        );
        assert!(f.find("192.0.2.1").is_none(), "its indexes too");
        // touching 2 makes 3 the oldest (two different steps: a repeated one would be one entry)
        f.fold(dhcp4(T0, Dhcp4Kind::Ack, 2, Some([192, 0, 2, 2]), true));
        f.fold(dhcp4(T0, Dhcp4Kind::Ack, 2, Some([192, 0, 2, 22]), true));
        f.fold(dhcp4(T0, Dhcp4Kind::Offer, 5, Some([192, 0, 2, 5]), true));
        assert!(f.find("02:00:00:00:00:03").is_none());
        let d = f.find("02:00:00:00:00:02").unwrap();
        let det = d.detail(&cx());
        assert_eq!(det.timeline.len(), 2);
        assert!(det.timeline_truncated);
        assert_eq!(det.device.events, 3);
        assert_eq!(
            f.devices().map(|d| d.key()).collect::<Vec<_>>(),
            [
                "02:00:00:00:00:05",
                "02:00:00:00:00:02",
                "02:00:00:00:00:04"
            ]
        );
    }

    #[test]
    fn a_repeated_step_is_one_entry_with_its_count() {
        let mut f = Fold::new(Limits {
            max_devices: 8,
            events_per_device: 3,
        });
        let addr = Some([192, 0, 2, 7]);
        // a client renewing: OFFER, ACK, then ACK after ACK
        f.fold(dhcp4(T0, Dhcp4Kind::Offer, 7, addr, true));
        for i in 0..5 {
            f.fold(dhcp4(T0 + 10 + i, Dhcp4Kind::Ack, 7, addr, true));
        }
        f.fold(dhcp4(T0 + 20, Dhcp4Kind::Offer, 7, addr, true));
        let det = f.find("192.0.2.7").unwrap().detail(&cx());
        assert_eq!(det.device.events, 7);
        let tl = &det.timeline;
        assert_eq!(tl.len(), 2, "{tl:#?}");
        // ordered by their latest occurrence: the ACKs, then the OFFER seen again last
        assert_eq!(tl[0].repeats, 5);
        assert_eq!(tl[0].first, Some(T0 + 10));
        assert_eq!(tl[0].event.ts, T0 + 14);
        assert_eq!(tl[1].repeats, 2);
        assert_eq!(tl[1].first, Some(T0));
        assert_eq!(tl[1].event.ts, T0 + 20);
        assert!(!det.timeline_truncated, "every step is still counted");
        let json = serde_json::to_value(tl).unwrap();
        assert_eq!(json[0]["repeats"], 5);
        assert_eq!(json[0]["first"], crate::journal::rfc3339(T0 + 10));
        // a single step writes neither
        f.fold(dhcp4(T0 + 30, Dhcp4Kind::Release, 7, addr, false));
        let det = f.find("02:00:00:00:00:07").unwrap().detail(&cx());
        let json = serde_json::to_value(&det.timeline).unwrap();
        assert!(json[2].get("repeats").is_none() && json[2].get("first").is_none());
        // a fourth distinct step pushes the oldest entry (and its 5 steps) out
        f.fold(dhcp4(T0 + 40, Dhcp4Kind::Nak, 7, None, false));
        let det = f.find("02:00:00:00:00:07").unwrap().detail(&cx());
        assert_eq!(det.timeline.len(), 3);
        assert!(det.timeline_truncated);
    }

    /// Two entries merged (one device's two ports, linked by its serial afterwards), each
    /// with the same step repeated: still one entry for that step, with every repeat counted.
    #[test]
    fn a_merge_keeps_one_entry_per_repeated_step() {
        let mut f = Fold::new(Limits {
            max_devices: 8,
            events_per_device: 8,
        });
        let rpc = RestconfRpc::GetBootstrappingData;
        // port 1 (MAC 7): refused twice, then a lease and a redirect naming serial SN9
        f.fold(dhcp4(T0, Dhcp4Kind::Nak, 7, None, false));
        f.fold(dhcp4(T0 + 1, Dhcp4Kind::Nak, 7, None, false));
        f.fold(dhcp4(
            T0 + 2,
            Dhcp4Kind::Ack,
            7,
            Some([192, 0, 2, 107]),
            true,
        ));
        f.fold(restconf(T0 + 3, rpc, [192, 0, 2, 107], "SN9", Some(7), 200));
        // port 2 (MAC 8): refused three times the same way, then a lease
        for i in 0..3 {
            f.fold(dhcp4(T0 + 10 + i, Dhcp4Kind::Nak, 8, None, false));
        }
        f.fold(dhcp4(
            T0 + 20,
            Dhcp4Kind::Ack,
            8,
            Some([192, 0, 2, 108]),
            true,
        ));
        assert_eq!(f.len(), 2);
        // the same serial from port 2's address: one device
        f.fold(restconf(
            T0 + 30,
            rpc,
            [192, 0, 2, 108],
            "SN9",
            Some(8),
            200,
        ));
        assert_eq!(f.len(), 1);
        let det = f.find("SN9").unwrap().detail(&cx());
        let naks: Vec<_> = det
            .timeline
            .iter()
            .filter(|e| e.summary.starts_with("DHCPv4 NAK"))
            .collect();
        assert_eq!(naks.len(), 1, "{:#?}", det.timeline);
        assert_eq!(naks[0].repeats, 5);
        assert_eq!(naks[0].first, Some(T0));
        assert_eq!(naks[0].event.ts, T0 + 12);
        let kept: u64 = det.timeline.iter().map(|e| e.repeats).sum();
        assert_eq!(kept, det.device.events);
        assert!(!det.timeline_truncated);
        // one more NAK: the same one entry, at the end
        f.fold(dhcp4(T0 + 40, Dhcp4Kind::Nak, 8, None, false));
        let det = f.find("SN9").unwrap().detail(&cx());
        let last = det.timeline.last().unwrap();
        assert!(last.summary.starts_with("DHCPv4 NAK") && last.repeats == 6);
        assert_eq!(
            det.timeline
                .iter()
                .filter(|e| e.summary.starts_with("DHCPv4 NAK"))
                .count(),
            1,
            "{:#?}",
            det.timeline
        );
    }

    #[test]
    fn the_thread_folds_and_a_full_queue_drops() {
        let t = DeviceTable::spawn_with_capacity(Fold::new(Limits::default()), None, 2).unwrap();
        let mut rx = t.subscribe();
        t.submit(&dhcp4(T0, Dhcp4Kind::Offer, 1, Some([192, 0, 2, 1]), true));
        t.flush();
        assert_eq!(t.read().len(), 1);
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 1);
        let (stalled_tx, stalled_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        t.tx.as_ref()
            .unwrap()
            .send(Msg::Stall(stalled_tx, release_rx))
            .unwrap();
        stalled_rx.recv().unwrap();
        for n in 2..7 {
            t.submit(&dhcp4(T0, Dhcp4Kind::Offer, n, Some([192, 0, 2, n]), true));
        }
        assert_eq!(t.dropped(), 3);
        drop(release_tx);
        t.flush();
        assert_eq!(t.read().len(), 3);
    }

    #[test]
    fn replay_reads_rotated_files_first() {
        let dir = tempfile::tempdir().unwrap();
        let line = |ev: &DeviceEvent| serde_json::to_string(ev).unwrap() + "\n";
        std::fs::write(
            dir.path().join("devices.jsonl.1"),
            line(&dhcp4(T0, Dhcp4Kind::Offer, 1, Some([192, 0, 2, 1]), false)),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("devices.jsonl"),
            line(&dhcp4(
                T0 + 1,
                Dhcp4Kind::Ack,
                1,
                Some([192, 0, 2, 1]),
                false,
            )) + "not json\n",
        )
        .unwrap();
        let mut f = Fold::new(Limits::default());
        assert_eq!(f.replay_journal(dir.path()).unwrap(), (2, 1));
        let d = f.find("02:00:00:00:00:01").unwrap();
        assert_eq!(d.furthest(), Some(Stage::DhcpAcked));
        assert_eq!(d.first_seen, T0);
    }

    #[test]
    fn same_server_compares_authorities() {
        assert!(same_server("https://a.example:443", "https://A.example"));
        assert!(same_server(
            "https://[2001:db8::1]",
            "https://[2001:db8::1]:443/"
        ));
        assert!(!same_server(
            "https://[2001:db8::1]:8443",
            "https://[2001:db8::1]"
        ));
        assert!(!same_server(
            "https://a.example:8443",
            "https://b.example:8443"
        ));
    }

    #[test]
    fn summary_json_shape() {
        let mut f = Fold::new(Limits::default());
        f.fold(dhcp4(T0, Dhcp4Kind::Ack, 1, Some([192, 0, 2, 1]), true));
        let v = serde_json::to_value(f.find("192.0.2.1").unwrap().summary(&cx())).unwrap();
        assert_eq!(v["key"], "02:00:00:00:00:01");
        assert_eq!(v["stage"], "dhcp-acked");
        assert_eq!(v["stages"][0]["first"], "2026-11-27T20:15:00Z");
        assert_eq!(v["verdict"]["status"], "handed-off");
        assert_eq!(v["told"]["uris"][0], "https://sztp.owner.example.com:8443");
        assert_eq!(v["asked"]["requested_143"], true);
        let back: DeviceSummary = serde_json::from_value(v).unwrap();
        assert_eq!(back.key, "02:00:00:00:00:01");
    }

    /// A RESTCONF event as the handler makes it: from `source`, with `serial` (claimed) and
    /// the MAC of the lease on `source` when the registry knew it.
    fn restconf(
        ts: u64,
        rpc: RestconfRpc,
        source: [u8; 4],
        serial: &str,
        lease_mac: Option<u8>,
        status: u16,
    ) -> DeviceEvent {
        let answer = match (rpc, status) {
            (RestconfRpc::GetBootstrappingData, 200) => RestconfAnswer::Redirect,
            (RestconfRpc::ReportProgress, 204) => RestconfAnswer::ProgressAccepted,
            _ => RestconfAnswer::Error,
        };
        DeviceEvent {
            ts,
            mac: lease_mac.map(mac),
            duid: None,
            serial: Some(serial.into()),
            rule: (answer == RestconfAnswer::Redirect).then(|| "lab".into()),
            uris: if answer == RestconfAnswer::Redirect {
                vec!["https://sztp.owner.example.com:8443".into()]
            } else {
                Vec::new()
            },
            detail: EventDetail::Restconf(RestconfEvent {
                rpc,
                source: IpAddr::V4(Ipv4Addr::from(source)),
                serial_verified: false,
                identity: IdentityMethod::BasicUsername,
                client_certificate: false,
                media_type: Some("application/yang-data+json".into()),
                status,
                answer,
                reason: (answer == RestconfAnswer::Error).then_some(RestconfReason::NoRule),
                error_message: None,
                signed_data_preferred: true,
                csr_offered: false,
                hw_model: Some("model-x".into()),
                os_name: None,
                os_version: None,
                progress_type: None,
                message: None,
                signing: None,
                nonceless_voucher: false,
            }),
        }
    }

    #[test]
    fn a_redirect_from_a_leased_address_joins_the_dhcp_device() {
        let mut f = Fold::new(Limits::default());
        let redirect_server = VerdictContext {
            redirect_server: Some("https://192.0.2.1".into()),
        };
        let mut ack = dhcp4(T0, Dhcp4Kind::Ack, 5, Some([192, 0, 2, 105]), true);
        ack.uris = vec!["https://192.0.2.1".into()];
        f.fold(ack);
        let d = f.find("02:00:00:00:00:05").unwrap();
        assert_eq!(d.verdict(&redirect_server).status, VerdictStatus::Stuck);
        // first ask: no rule for it (404), the lease's MAC known through the registry
        let rpc = RestconfRpc::GetBootstrappingData;
        f.fold(restconf(T0 + 1, rpc, [192, 0, 2, 105], "SN9", Some(5), 404));
        let d = f.find("SN9").unwrap();
        let v = d.verdict(&redirect_server);
        assert_eq!(v.status, VerdictStatus::Failed);
        assert_eq!(v.stage, Some(Stage::DhcpAcked));
        assert!(
            v.text.starts_with(
                "its get-bootstrapping-data to the redirect server got HTTP 404: no known device \
                 or rule"
            ),
            "{}",
            v.text
        );
        // the operator adds a rule: redirected
        f.fold(restconf(T0 + 2, rpc, [192, 0, 2, 105], "SN9", Some(5), 200));
        assert_eq!(f.len(), 1, "one device: MAC, serial and address");
        let d = f.find("192.0.2.105").unwrap();
        assert_eq!(d.key(), "SN9");
        let s = d.summary(&redirect_server);
        assert_eq!(s.macs, ["02:00:00:00:00:05"]);
        assert_eq!(s.stage, Some(Stage::RedirectServed));
        assert_eq!(s.verdict.status, VerdictStatus::HandedOff);
        assert_eq!(
            s.verdict.text,
            "got redirect-information naming https://sztp.owner.example.com:8443: the next steps \
             happen on the owner's bootstrap server"
        );
        let told = s.told.unwrap();
        assert_eq!(
            (told.proto.as_ref(), told.signed),
            ("restconf", Some(false))
        );
        assert_eq!(s.asked.hw_model.as_deref(), Some("model-x"));
        assert_eq!(
            s.asked.media_type.as_deref(),
            Some("application/yang-data+json")
        );
        let tl = d.detail(&redirect_server).timeline;
        assert_eq!(
            tl[2].summary,
            "RESTCONF get-bootstrapping-data from 192.0.2.105 (serial SN9, Basic user): HTTP \
             200, unsigned redirect-information naming 1 bootstrap server (rule lab)"
        );
    }

    /// The quick start's order: DHCP, the redirect, then DNS and DHCPv6 answers naming the
    /// redirect server again. The verdict of the furthest stage keeps naming what the redirect
    /// told (the owner's server), not the later, earlier-stage answers.
    #[test]
    fn a_later_lesser_answer_does_not_replace_what_the_redirect_told() {
        let rs = VerdictContext {
            redirect_server: Some("https://192.0.2.1".into()),
        };
        let told_owner = "got redirect-information naming https://sztp.owner.example.com:8443: \
                          the next steps happen on the owner's bootstrap server";
        // in one device's steps
        let mut f = Fold::new(Limits::default());
        let mut ack = dhcp4(T0, Dhcp4Kind::Ack, 7, Some([192, 0, 2, 107]), true);
        ack.uris = vec!["https://192.0.2.1".into()];
        f.fold(ack);
        let rpc = RestconfRpc::GetBootstrappingData;
        f.fold(restconf(T0 + 1, rpc, [192, 0, 2, 107], "SN7", Some(7), 200));
        let mut txt = dns(
            T0 + 2,
            "SN7",
            DnsKind::Answered,
            DnsTransport::Udp,
            [127, 0, 0, 1],
        );
        txt.uris = vec!["https://192.0.2.1".into()];
        f.fold(txt.clone());
        assert_eq!(f.len(), 1);
        let s = f.find("SN7").unwrap().summary(&rs);
        assert_eq!(s.stage, Some(Stage::RedirectServed));
        assert_eq!(s.verdict.text, told_owner);
        assert_eq!(s.told.unwrap().proto, "restconf");
        // and when the entries merge afterwards: the DNS step first (its own entry, by
        // serial), then the DHCP device's redirect links them
        let mut f = Fold::new(Limits::default());
        let mut ack = dhcp4(T0, Dhcp4Kind::Ack, 7, Some([192, 0, 2, 107]), true);
        ack.uris = vec!["https://192.0.2.1".into()];
        f.fold(ack);
        f.fold(restconf(T0 + 1, rpc, [192, 0, 2, 107], "SN8", Some(7), 200));
        let mut txt8 = txt;
        txt8.serial = Some("SN9".into());
        f.fold(txt8);
        assert_eq!(f.len(), 2);
        let mut merge = restconf(T0 + 3, rpc, [192, 0, 2, 107], "SN9", Some(7), 404);
        merge.uris.clear();
        f.fold(merge);
        assert_eq!(f.len(), 1, "serial SN9 and the lease holder merged");
        let s = f.find("SN9").unwrap().summary(&rs);
        assert_eq!(s.told.unwrap().proto, "restconf");
    }

    #[test]
    fn progress_reports_complete_or_fail_the_journey() {
        let mut f = Fold::new(Limits::default());
        let gbd = RestconfRpc::GetBootstrappingData;
        let progress = |ts, serial: &str, kind: &str| {
            let mut ev = restconf(
                ts,
                RestconfRpc::ReportProgress,
                [198, 51, 100, 7],
                serial,
                None,
                204,
            );
            let EventDetail::Restconf(d) = &mut ev.detail else {
                unreachable!()
            };
            d.progress_type = Some(kind.into());
            d.message = Some("step".into());
            ev
        };
        f.fold(restconf(T0, gbd, [198, 51, 100, 7], "SN-A", None, 200));
        f.fold(progress(T0 + 1, "SN-A", "bootstrap-initiated"));
        let v = f.find("SN-A").unwrap().verdict(&cx());
        assert_eq!(
            (v.status, v.stage),
            (VerdictStatus::Stuck, Some(Stage::ProgressReported))
        );
        f.fold(progress(T0 + 2, "SN-A", "bootstrap-complete"));
        let v = f.find("SN-A").unwrap().verdict(&cx());
        assert_eq!(v.status, VerdictStatus::Complete);
        assert_eq!(v.text, "it reported bootstrap-complete: step");
        f.fold(restconf(T0, gbd, [198, 51, 100, 8], "SN-B", None, 200));
        let mut err = progress(T0 + 1, "SN-B", "bootstrap-error");
        if let EventDetail::Restconf(d) = &mut err.detail {
            d.source = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 8));
        }
        f.fold(err);
        let v = f.find("SN-B").unwrap().verdict(&cx());
        assert_eq!(v.status, VerdictStatus::Failed);
        assert_eq!(v.text, "it reported bootstrap-error: step");
        assert_eq!(v.stage, Some(Stage::RedirectServed));
    }
}
