//! The device journal: one JSON line per device step (DHCP, DNS, RESTCONF) in state-dir, rotated by size
//!
//! The packet path only serializes the event and `try_send`s the line into a bounded channel;
//! a background thread owns the file. When the channel is full the event is dropped and counted
//! ([`DeviceJournal::dropped`]): a slow disk must never delay an OFFER or an ACK. The journal is
//! a diagnostic record, not state, so it is flushed to the kernel (at least once per second or
//! every [`FLUSH_LINES`] lines) but never fsync'd.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::policy::{MacAddr, UriEncoding};
use crate::state_dir::{Access, StateDir};

/// File name of the current device journal in state-dir.
pub const DEVICE_JOURNAL_FILE: &str = "devices.jsonl";
/// Rotated files kept beside the current one: `devices.jsonl.1` (newest) ..= `.3` (oldest).
pub const KEEP_ROTATED: u32 = 3;
/// Events that may wait for the writer thread before new ones are dropped.
pub const DEFAULT_CAPACITY: usize = 4096;
/// Buffered lines that force a flush before the one-second timer does.
pub const FLUSH_LINES: usize = 256;
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// After writing, the journal thread pauses this long so a burst of events costs it one
/// wake-up, not one per event.
const COALESCE: Duration = Duration::from_millis(10);

/// The last second RFC 3339 can write (9999-12-31T23:59:59Z), in Unix seconds.
pub const MAX_RFC3339_SECS: u64 = 253_402_300_799;

/// `unix_secs` as an RFC 3339 / ISO 8601 UTC timestamp: `2026-11-27T20:15:00Z`. Times past
/// the year 9999 (a damaged or hand-written record) are written as its last second.
pub fn rfc3339(unix_secs: u64) -> String {
    let secs = unix_secs.min(MAX_RFC3339_SECS);
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// The current wall-clock time as [`rfc3339`]; for I/O code only (handlers get `now` passed in).
pub fn now_rfc3339() -> String {
    rfc3339(unix_now())
}

/// Seconds since the Unix epoch by the wall clock (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One step of one device, as the device journal records it (one JSON line, snake_case keys)
/// and the device table folds it. The shared fields identify the device and say where it was
/// sent; [`EventDetail`] is tagged by protocol (`"proto": "dhcp4"`, …).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEvent {
    /// When it happened: Unix seconds, written as RFC 3339 UTC ([`rfc3339`]).
    #[serde(with = "ts_rfc3339")]
    pub ts: u64,
    /// The device's MAC, when the front end knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// The device's DHCPv6 DUID, lowercase hex.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "hex_opt")]
    pub duid: Option<Vec<u8>>,
    /// The device's serial number, when the front end knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Name of the matching rule (or `device:<label>`), when the policy was asked.
    pub rule: Option<String>,
    /// Bootstrap server (or redirect server) URIs the device was told, most preferred first.
    pub uris: Vec<String>,
    /// What happened, per protocol.
    #[serde(flatten)]
    pub detail: EventDetail,
}

/// The protocol-specific part of a [`DeviceEvent`], tagged by `proto`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "proto", rename_all = "lowercase")]
pub enum EventDetail {
    /// A DHCPv4 exchange step (RFC 2131).
    Dhcp4(Dhcp4Event),
    /// A DHCPv6 exchange step (RFC 8415).
    Dhcp6(Dhcp6Event),
    /// A device-specific DNS or mDNS query, `<serial>._sztp.<domain>` TXT (RFC 8572 §4.2.2).
    Dns(DnsEvent),
    /// A RESTCONF request to the redirect server (RFC 8572 §7, RFC 8040).
    Restconf(RestconfEvent),
}

/// How a device-specific DNS query was answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DnsKind {
    /// The `ci=` TXT record was sent.
    #[default]
    Answered,
    /// No record for this serial (unknown, or its rule sends it nowhere): NXDOMAIN over unicast
    /// DNS; silence over mDNS, which has no negative answers (RFC 6762 §6).
    Nxdomain,
}

impl DnsKind {
    /// The kebab-case name used in the journal, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DnsKind::Answered => "answered",
            DnsKind::Nxdomain => "nxdomain",
        }
    }
}

/// The transport a DNS query came over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DnsTransport {
    /// Unicast DNS over UDP (RFC 1035 §4.2.1).
    #[default]
    Udp,
    /// Unicast DNS over TCP (RFC 7766).
    Tcp,
    /// Multicast DNS (RFC 6762).
    Mdns,
}

/// The DNS part of a [`DeviceEvent`]; the serial is in [`DeviceEvent::serial`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsEvent {
    /// Answered or NXDOMAIN.
    pub event: DnsKind,
    /// Unicast UDP, TCP or mDNS.
    pub transport: DnsTransport,
    /// The query's IP source address.
    pub source: std::net::IpAddr,
    /// The query name as asked, lowercase, without the trailing dot.
    pub qname: String,
    /// The query type (`TXT` or `ANY`).
    pub qtype: String,
    /// For a device TXT answer: whether its `ci=` is signed (with `oc=` and `ov=` beside it,
    /// RFC 8572 §4.2.2) and why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing: Option<Signing>,
}

/// The RESTCONF operation a request was for (RFC 8572 §7.2 `ietf-sztp-bootstrap-server`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestconfRpc {
    /// `get-bootstrapping-data`.
    #[default]
    GetBootstrappingData,
    /// `report-progress`.
    ReportProgress,
}

impl RestconfRpc {
    /// The RPC's YANG name, as in the journal and the metrics' `rpc` label.
    pub fn as_str(self) -> &'static str {
        match self {
            RestconfRpc::GetBootstrappingData => "get-bootstrapping-data",
            RestconfRpc::ReportProgress => "report-progress",
        }
    }
}

/// How a device identified itself to the redirect server (RFC 8572 §5.3, `serial-from`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityMethod {
    /// No serial: no client certificate (or none with the configured attribute), no Basic user.
    #[default]
    None,
    /// The subject serialNumber (2.5.4.5) of its TLS client certificate.
    SubjectSerialNumber,
    /// The subject commonName (2.5.4.3) of its TLS client certificate.
    SubjectCn,
    /// The user name of an HTTP Basic `Authorization` header (RFC 7617).
    BasicUsername,
}

/// What the redirect server answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestconfAnswer {
    /// 200 with unsigned redirect-information naming the device's bootstrap servers.
    #[default]
    Redirect,
    /// 204: a progress report was journaled.
    ProgressAccepted,
    /// An RFC 8040 error (see `status` and `reason`).
    Error,
}

/// Why a RESTCONF request got an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestconfReason {
    /// 405: not a POST.
    WrongMethod,
    /// 415: a Content-Type other than YANG JSON/XML.
    UnsupportedMediaType,
    /// 406: no acceptable response type.
    NotAcceptable,
    /// 400 malformed-message: the body is not JSON/XML of the RPC's input.
    MalformedMessage,
    /// 400 invalid-value: a leaf has a wrong type or value.
    InvalidValue,
    /// 413: the body is larger than the limit.
    TooBig,
    /// 408: the body did not arrive within `client-timeout`.
    Timeout,
    /// 429: the source address exceeded `rate-limit`.
    RateLimited,
    /// 404: no known device or rule matches the device.
    NoRule,
    /// 404: the matching rule has `redirect-to = []`.
    Excluded,
    /// 403: a rule would match if the device's serial were verified (`match.serial-verified`).
    SerialNotVerified,
    /// 500: every bootstrap server of the decision is this redirect server (a loop).
    Loop,
    /// 404: `report-progress = "reject"`.
    ProgressRejected,
    /// 500: our fault (building the answer failed).
    Internal,
}

/// The RESTCONF part of a [`DeviceEvent`]: one per request to an operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestconfEvent {
    /// Which operation.
    pub rpc: RestconfRpc,
    /// The request's TCP source address (the device, unless it is NATed).
    pub source: std::net::IpAddr,
    /// Whether the serial ([`DeviceEvent::serial`]) comes from a client certificate verified
    /// against `client-ca`; false when claimed or absent.
    pub serial_verified: bool,
    /// Where the serial came from.
    pub identity: IdentityMethod,
    /// Whether a TLS client certificate was presented at all.
    pub client_certificate: bool,
    /// The request's Content-Type as sent (none for an empty body).
    pub media_type: Option<String>,
    /// HTTP status code sent.
    pub status: u16,
    /// What was answered.
    pub answer: RestconfAnswer,
    /// Why, for an error.
    pub reason: Option<RestconfReason>,
    /// RFC 8040 error-message, for an error.
    pub error_message: Option<String>,
    /// The input carried `signed-data-preferred`.
    pub signed_data_preferred: bool,
    /// The input carried RFC 9646 `csr-support` or a CSR (ignored: the appliance issues no
    /// certificates).
    pub csr_offered: bool,
    /// `hw-model` input leaf.
    pub hw_model: Option<String>,
    /// `os-name` input leaf.
    pub os_name: Option<String>,
    /// `os-version` input leaf.
    pub os_version: Option<String>,
    /// `progress-type` of a report-progress (RFC 8572 §7.3).
    pub progress_type: Option<String>,
    /// `message` of a report-progress.
    pub message: Option<String>,
    /// Whether the conveyed information was signed, and why not; `None` when no
    /// conveyed information was sent (errors, report-progress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing: Option<Signing>,
    /// The device sent a `nonce` but its voucher has none: it got the nonceless voucher
    /// (RFC 8366 §5.3; a device whose clock it cannot trust may reject it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nonceless_voucher: bool,
}

/// Whether an answer's conveyed information was signed with the owner key (RFC 8572 §3.5
/// signed data: conveyed information, owner certificate, ownership voucher), and why not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signing {
    /// Signed data was sent.
    Signed,
    /// Unsigned: the device did not ask for signed data (`signed-data-preferred`).
    NotRequested,
    /// Unsigned: no `[owner]` is configured.
    NoOwner,
    /// Unsigned: the device's serial number is unknown.
    NoSerial,
    /// Unsigned: no voucher for this serial number.
    NoVoucher,
    /// Unsigned: the device's voucher has expired.
    VoucherExpired,
    /// Unsigned: signing failed (our fault, logged as an error).
    SigningFailed,
}

impl Signing {
    /// In words, for the status page and the `devices` command.
    pub fn as_str(self) -> &'static str {
        match self {
            Signing::Signed => "signed",
            Signing::NotRequested => "unsigned: not requested",
            Signing::NoOwner => "unsigned: no owner key configured",
            Signing::NoSerial => "unsigned: serial number unknown",
            Signing::NoVoucher => "unsigned: no voucher",
            Signing::VoucherExpired => "unsigned: voucher expired",
            Signing::SigningFailed => "unsigned: signing failed",
        }
    }
}

impl From<crate::owner::UnsignedReason> for Signing {
    fn from(r: crate::owner::UnsignedReason) -> Signing {
        use crate::owner::UnsignedReason as U;
        match r {
            U::NotRequested => Signing::NotRequested,
            U::NoOwner => Signing::NoOwner,
            U::NoSerial => Signing::NoSerial,
            U::NoVoucher => Signing::NoVoucher,
            U::VoucherExpired => Signing::VoucherExpired,
            U::SigningFailed => Signing::SigningFailed,
        }
    }
}

/// What a DHCPv4 step was.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dhcp4Kind {
    /// An OFFER was sent in answer to a DISCOVER.
    #[default]
    Offer,
    /// An ACK was sent: the lease is durable.
    Ack,
    /// A NAK was sent.
    Nak,
    /// The client DECLINEd its address (RFC 2131 §4.3.3).
    Decline,
    /// The client RELEASEd its address.
    Release,
    /// An ACK to an INFORM (no address).
    Inform,
    /// A DISCOVER found no free address in the subnet's pools.
    NoAddress,
    /// A request dropped without an answer; `reason` says why (no subnet for its network,
    /// a hardware type that cannot be served, no record of a rebooting client).
    Dropped,
}

impl Dhcp4Kind {
    /// The kebab-case name used in the journal and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Dhcp4Kind::Offer => "offer",
            Dhcp4Kind::Ack => "ack",
            Dhcp4Kind::Nak => "nak",
            Dhcp4Kind::Decline => "decline",
            Dhcp4Kind::Release => "release",
            Dhcp4Kind::Inform => "inform",
            Dhcp4Kind::NoAddress => "no-address",
            Dhcp4Kind::Dropped => "dropped",
        }
    }
}

impl std::fmt::Display for Dhcp4Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a DHCPv4 step was refused or an address given back (RFC 2131 §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dhcp4Reason {
    /// NAK: the requested address is not on the client's network (§4.3.2).
    NotOnNetwork,
    /// NAK: the client has a reservation for another address.
    ReservedElsewhere,
    /// NAK: the address is held by another client, quarantined or outside the pools.
    NotAvailable,
    /// NAK: a REQUEST in SELECTING state for an address this server did not offer.
    NotOffered,
    /// NAK: a REQUEST in SELECTING state without a requested address.
    NoRequestedAddress,
    /// DECLINE: the client found the address in use (quarantined for `decline-time`).
    AddressInUse,
    /// No address: every pool of the subnet is in use.
    PoolExhausted,
    /// Dropped: no configured subnet for the request's network (relay giaddr, link selection
    /// or receiving interface).
    NoSubnet,
    /// Dropped: chaddr is not an Ethernet address and there is no client identifier to key
    /// the client by (RFC 4390 §2 makes option 61 mandatory where chaddr cannot be used).
    UnsupportedHardware,
    /// An INIT-REBOOT, RENEWING or REBINDING client this server has no record of: dropped
    /// where the subnet is not `authoritative` (RFC 2131 §4.3.2), NAKed where it is.
    NoRecord,
    /// An OFFER or ACK without option 143: the device's rule has `redirect-to = []`.
    Excluded,
}

impl Dhcp4Reason {
    /// The kebab-case name used in the journal and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Dhcp4Reason::NotOnNetwork => "not-on-network",
            Dhcp4Reason::ReservedElsewhere => "reserved-elsewhere",
            Dhcp4Reason::NotAvailable => "not-available",
            Dhcp4Reason::NotOffered => "not-offered",
            Dhcp4Reason::NoRequestedAddress => "no-requested-address",
            Dhcp4Reason::AddressInUse => "address-in-use",
            Dhcp4Reason::PoolExhausted => "pool-exhausted",
            Dhcp4Reason::NoSubnet => "no-subnet",
            Dhcp4Reason::UnsupportedHardware => "unsupported-hardware",
            Dhcp4Reason::NoRecord => "no-record",
            Dhcp4Reason::Excluded => "excluded",
        }
    }
}

/// The DHCPv4 part of a [`DeviceEvent`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dhcp4Event {
    /// What happened.
    pub event: Dhcp4Kind,
    /// Transaction id, written as `"0x1234abcd"`.
    #[serde(with = "xid_hex")]
    pub xid: u32,
    /// Option 61, written as lowercase hex.
    #[serde(default, with = "hex_opt")]
    pub client_id: Option<Vec<u8>>,
    /// Option 61 as text, when it is one (type 0 followed by printable text, RFC 2132 §9.14:
    /// `cisco-0200.0000.0041-Vl1`); what `match.client-id` patterns are matched against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id_text: Option<String>,
    /// Option 60.
    pub vendor_class: Option<String>,
    /// Option 77, one string per instance.
    pub user_class: Vec<String>,
    /// Interface the request came in on.
    pub interface: Option<String>,
    /// The relay agent (giaddr), if relayed.
    pub relay: Option<Ipv4Addr>,
    /// Address offered, acknowledged, declined or released.
    pub address: Option<Ipv4Addr>,
    /// Whether the device asked for option 143 (SZTP redirect) in its parameter request list.
    pub requested_143: bool,
    /// URIs left out to fit the option size limit (or the one-URI `text` encoding).
    pub uris_dropped: Vec<String>,
    /// How the URIs were encoded (`"rfc8572"` or `"text"`), when the rule was rendered.
    pub encoding: Option<UriEncoding>,
    /// Why, for a NAK, a DECLINE or no address.
    pub reason: Option<Dhcp4Reason>,
    /// The text sent in option 56 of a NAK (RFC 2132 §9.9), e.g. `selecting: 192.0.2.7 was
    /// not offered to this client`.
    #[serde(default)]
    pub message: Option<String>,
}

/// Which DHCPv6 client message was answered, and how (RFC 8415 §18.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dhcp6Kind {
    /// An Advertise answered a Solicit (nothing committed).
    #[default]
    Advertise,
    /// A Reply to a Request: the addresses are bound and durable.
    Request,
    /// A Reply to a Solicit with Rapid Commit (RFC 8415 §18.3.1): bound and durable.
    RapidCommit,
    /// A Reply to a Renew.
    Renew,
    /// A Reply to a Rebind.
    Rebind,
    /// A Reply to a Release.
    Release,
    /// A Reply to a Decline: the addresses are quarantined (RFC 8415 §18.3.8).
    Decline,
    /// A Reply to a Confirm.
    Confirm,
    /// A Reply to an Information-request (stateless, RFC 8415 §18.3.6).
    InformationRequest,
}

impl Dhcp6Kind {
    /// The kebab-case name used in the journal and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Dhcp6Kind::Advertise => "advertise",
            Dhcp6Kind::Request => "request",
            Dhcp6Kind::RapidCommit => "rapid-commit",
            Dhcp6Kind::Renew => "renew",
            Dhcp6Kind::Rebind => "rebind",
            Dhcp6Kind::Release => "release",
            Dhcp6Kind::Decline => "decline",
            Dhcp6Kind::Confirm => "confirm",
            Dhcp6Kind::InformationRequest => "information-request",
        }
    }
}

impl std::fmt::Display for Dhcp6Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A DHCPv6 status code the server sent (RFC 8415 §21.13), when it was not Success.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dhcp6Status {
    /// No address could be assigned to an IA (pool exhausted, or no subnet for the link).
    NoAddrsAvail,
    /// The client has no binding for an IA it renews, releases or declines.
    NoBinding,
    /// The client's addresses are not appropriate for its link (Confirm).
    NotOnLink,
    /// The client unicast a message without being allowed to (RFC 8415 §18.4).
    UseMulticast,
}

impl Dhcp6Status {
    /// The RFC 8415 status code value.
    pub fn code(self) -> u16 {
        match self {
            Dhcp6Status::NoAddrsAvail => 2,
            Dhcp6Status::NoBinding => 3,
            Dhcp6Status::NotOnLink => 4,
            Dhcp6Status::UseMulticast => 5,
        }
    }

    /// The kebab-case name used in the journal and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Dhcp6Status::NoAddrsAvail => "no-addrs-avail",
            Dhcp6Status::NoBinding => "no-binding",
            Dhcp6Status::NotOnLink => "not-on-link",
            Dhcp6Status::UseMulticast => "use-multicast",
        }
    }
}

/// The DHCPv6 part of a [`DeviceEvent`] (the DUID and MAC are the shared fields).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dhcp6Event {
    /// What happened.
    pub event: Dhcp6Kind,
    /// Transaction id (3 octets), written as `"0x00abcdef"`.
    #[serde(with = "xid_hex")]
    pub xid: u32,
    /// IAID of the first IA_NA of the message, if any.
    pub iaid: Option<u32>,
    /// Address assigned, renewed, released or declined in that IA_NA.
    pub address: Option<std::net::Ipv6Addr>,
    /// First vendor-class-data of option 16.
    pub vendor_class: Option<String>,
    /// Enterprise number of option 16.
    pub enterprise_number: Option<u32>,
    /// Option 15 entries.
    pub user_class: Vec<String>,
    /// Interface the message came in on.
    pub interface: Option<String>,
    /// The relay agent that sent the outermost Relay-forward (its source address), if relayed.
    pub relay: Option<String>,
    /// Whether the device listed option 136 (SZTP redirect) in its Option Request option.
    pub requested_136: bool,
    /// URIs left out to keep the message within the client's link MTU.
    pub uris_dropped: Vec<String>,
    /// How the URIs were encoded: `"rfc8572"` or `"text"`.
    pub encoding: Option<String>,
    /// The status code sent, when not Success.
    pub status: Option<Dhcp6Status>,
}

impl DeviceEvent {
    /// A DHCPv6 event for the client `duid`, everything optional left empty.
    pub fn dhcp6(unix_secs: u64, event: Dhcp6Kind, xid: u32, duid: Vec<u8>) -> DeviceEvent {
        DeviceEvent {
            ts: unix_secs,
            mac: None,
            duid: Some(duid),
            serial: None,
            rule: None,
            uris: Vec::new(),
            detail: EventDetail::Dhcp6(Dhcp6Event {
                event,
                xid,
                iaid: None,
                address: None,
                vendor_class: None,
                enterprise_number: None,
                user_class: Vec::new(),
                interface: None,
                relay: None,
                requested_136: false,
                uris_dropped: Vec::new(),
                encoding: None,
                status: None,
            }),
        }
    }

    /// A DHCPv4 event with everything optional left empty.
    pub fn dhcp4(unix_secs: u64, event: Dhcp4Kind, xid: u32, mac: MacAddr) -> DeviceEvent {
        DeviceEvent {
            ts: unix_secs,
            mac: Some(mac),
            duid: None,
            serial: None,
            rule: None,
            uris: Vec::new(),
            detail: EventDetail::Dhcp4(Dhcp4Event {
                event,
                xid,
                client_id: None,
                client_id_text: None,
                vendor_class: None,
                user_class: Vec::new(),
                interface: None,
                relay: None,
                address: None,
                requested_143: false,
                uris_dropped: Vec::new(),
                encoding: None,
                reason: None,
                message: None,
            }),
        }
    }

    /// The protocol tag (`"dhcp4"`, …).
    pub fn proto(&self) -> &'static str {
        match self.detail {
            EventDetail::Dhcp4(_) => "dhcp4",
            EventDetail::Dhcp6(_) => "dhcp6",
            EventDetail::Dns(_) => "dns",
            EventDetail::Restconf(_) => "restconf",
        }
    }
}

mod ts_rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(ts: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&super::rfc3339(*ts))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_rfc3339(&s).ok_or_else(|| serde::de::Error::custom("bad RFC 3339 time"))
    }
}

mod xid_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(xid: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{xid:#010x}"))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let s = String::deserialize(d)?;
        u32::from_str_radix(s.trim_start_matches("0x"), 16).map_err(serde::de::Error::custom)
    }
}

/// Serde for `Option<Vec<u8>>` as lowercase hex without separators (`"01aabb"`).
pub(crate) mod hex_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&hex::encode(b)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| hex::decode(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ` (what [`rfc3339`] writes) back to Unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    humantime::parse_rfc3339(s)
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

enum Msg {
    Line(String),
    Flush(mpsc::Sender<()>),
    /// Test hook: report "stalled" on the first sender, then block until the second is dropped
    /// or sends, so a test can fill the queue deterministically.
    #[cfg(test)]
    Stall(mpsc::Sender<()>, mpsc::Receiver<()>),
}

/// Handle to the device journal; share it behind an `Arc`. Dropping it flushes and stops the
/// writer thread.
pub struct DeviceJournal {
    tx: Option<SyncSender<Msg>>,
    dropped: Arc<AtomicU64>,
    max_bytes: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl DeviceJournal {
    /// Opens (appends to) `dir/devices.jsonl`, creating `dir` if needed; rotates once the file
    /// grows past `max_bytes`.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<DeviceJournal> {
        Self::open_with_capacity(dir, max_bytes, DEFAULT_CAPACITY)
    }

    /// [`open`](Self::open) with `capacity` events allowed to queue before events are dropped.
    pub fn open_with_capacity(
        dir: &Path,
        max_bytes: u64,
        capacity: usize,
    ) -> io::Result<DeviceJournal> {
        let dir = StateDir::create(dir)?;
        let path = dir.join(DEVICE_JOURNAL_FILE);
        let file = dir.open_file(DEVICE_JOURNAL_FILE, Access::AppendCreate)?;
        let size = file.metadata()?.len();
        let max = Arc::new(AtomicU64::new(max_bytes));
        let writer = Writer {
            dir,
            path,
            max_bytes: Arc::clone(&max),
            out: BufWriter::new(file),
            size,
            failing: false,
        };
        let (tx, rx) = mpsc::sync_channel(capacity);
        let thread = std::thread::Builder::new()
            .name("device-journal".into())
            .spawn(move || writer.run(rx))?;
        Ok(DeviceJournal {
            tx: Some(tx),
            dropped: Arc::new(AtomicU64::new(0)),
            max_bytes: max,
            thread: Some(thread),
        })
    }

    /// Rotates once the file grows past `max_bytes` from now on (`appliance.journal-max-size`
    /// changed by a reload).
    pub fn set_max_bytes(&self, max_bytes: u64) {
        self.max_bytes.store(max_bytes, Ordering::Relaxed);
    }

    /// The size past which the file is rotated.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes.load(Ordering::Relaxed)
    }

    /// Queues one event; never blocks. If the writer is behind, the event is dropped and counted.
    /// Text from devices is written with terminal-unsafe characters escaped
    /// ([`crate::text::to_json_string`]): operators `tail` this file.
    pub fn record(&self, ev: &DeviceEvent) {
        let line = match crate::text::to_json_string(ev) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize device event");
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let Some(tx) = &self.tx else { return };
        match tx.try_send(Msg::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Events dropped so far because the writer was behind (or gone).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until everything queued before this call is written to the file (not fsync'd).
    /// Blocks; not for the packet path.
    pub fn flush(&self) {
        let Some(tx) = &self.tx else { return };
        let (ack_tx, ack_rx) = mpsc::channel();
        if tx.send(Msg::Flush(ack_tx)).is_ok() {
            let _ = ack_rx.recv();
        }
    }
}

impl Drop for DeviceJournal {
    fn drop(&mut self) {
        // Closing the channel makes the writer drain what is queued, flush and exit.
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `devices.jsonl.N`.
fn rotated(n: u32) -> String {
    format!("{DEVICE_JOURNAL_FILE}.{n}")
}

struct Writer {
    dir: StateDir,
    path: PathBuf,
    max_bytes: Arc<AtomicU64>,
    out: BufWriter<File>,
    size: u64,
    /// Set after a write error so a full disk logs once, not once per event.
    failing: bool,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        let mut pending = 0usize;
        let mut last_flush = Instant::now();
        loop {
            let timeout = if pending == 0 {
                // Nothing buffered: sleep until the next message.
                Duration::from_secs(3600)
            } else {
                FLUSH_INTERVAL.saturating_sub(last_flush.elapsed())
            };
            let first = match rx.recv_timeout(timeout) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    self.flush();
                    return;
                }
            };
            // take everything already queued, then pause: events that arrive meanwhile queue
            // up without waking this thread once per event (the packet path never waits)
            let mut lines = 0usize;
            let mut next = first;
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Line(line) => {
                        self.write_line(&line);
                        pending += 1;
                        lines += 1;
                    }
                    Msg::Flush(ack) => {
                        self.flush();
                        pending = 0;
                        last_flush = Instant::now();
                        let _ = ack.send(());
                    }
                    #[cfg(test)]
                    Msg::Stall(stalled, release) => {
                        let _ = stalled.send(());
                        let _ = release.recv();
                    }
                }
                next = match rx.try_recv() {
                    Ok(m) => Some(m),
                    Err(mpsc::TryRecvError::Empty) => None,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        self.flush();
                        return;
                    }
                };
            }
            if pending > 0 && (pending >= FLUSH_LINES || last_flush.elapsed() >= FLUSH_INTERVAL) {
                self.flush();
                pending = 0;
                last_flush = Instant::now();
            }
            if lines > 0 {
                std::thread::sleep(COALESCE);
            }
        }
    }

    fn write_line(&mut self, line: &str) {
        let res = self
            .out
            .write_all(line.as_bytes())
            .and_then(|()| self.out.write_all(b"\n"));
        self.note(res, "cannot write device journal");
        self.size += line.len() as u64 + 1;
        if self.size > self.max_bytes.load(Ordering::Relaxed) {
            let res = self.rotate();
            self.note(res, "cannot rotate device journal");
        }
    }

    fn flush(&mut self) {
        let res = self.out.flush();
        self.note(res, "cannot write device journal");
    }

    /// `devices.jsonl.2` → `.3`, `.1` → `.2`, current → `.1`, then a fresh current file.
    fn rotate(&mut self) -> io::Result<()> {
        self.out.flush()?;
        for n in (1..KEEP_ROTATED).rev() {
            if self.dir.exists(&rotated(n))? {
                self.dir.rename(&rotated(n), &rotated(n + 1))?;
            }
        }
        self.dir.rename(DEVICE_JOURNAL_FILE, &rotated(1))?;
        self.out = BufWriter::new(
            self.dir
                .open_file(DEVICE_JOURNAL_FILE, Access::AppendCreate)?,
        );
        self.size = 0;
        Ok(())
    }

    fn note(&mut self, res: io::Result<()>, what: &str) {
        match res {
            Ok(()) => self.failing = false,
            Err(e) => {
                if !self.failing {
                    tracing::error!(file = %self.path.display(), error = %e, "{what}");
                }
                self.failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339(1_798_402_500), "2026-12-27T20:15:00Z");
        assert_eq!(rfc3339(1_795_810_500), "2026-11-27T20:15:00Z");
        assert_eq!(rfc3339(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(rfc3339(253_402_300_799), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
    }

    fn sample(i: u32) -> DeviceEvent {
        let mut ev = DeviceEvent::dhcp4(
            1_795_810_500,
            Dhcp4Kind::Ack,
            0x1234_abcd,
            MacAddr([0, 0x11, 0x22, 0x33, 0x44, i as u8]),
        );
        ev.uris = vec![format!("https://bs{i}.example.net:8443")];
        let EventDetail::Dhcp4(d) = &mut ev.detail else {
            unreachable!("a dhcp4 event")
        };
        d.client_id = Some(vec![1, 0xaa, 0xbb]);
        d.vendor_class = Some("Juniper-ex4300".into());
        d.user_class = vec!["sztp".into()];
        d.address = Some(Ipv4Addr::new(192, 0, 2, 10));
        d.requested_143 = true;
        ev
    }

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn events_land_as_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let j = DeviceJournal::open(dir.path(), 1 << 20).unwrap();
        j.record(&sample(1));
        j.record(&DeviceEvent::dhcp4(
            0,
            Dhcp4Kind::Nak,
            7,
            MacAddr::default(),
        ));
        j.flush();
        let got = lines(&dir.path().join(DEVICE_JOURNAL_FILE));
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0],
            serde_json::json!({
                "ts": "2026-11-27T20:15:00Z",
                "proto": "dhcp4",
                "event": "ack",
                "xid": "0x1234abcd",
                "mac": "00:11:22:33:44:01",
                "client_id": "01aabb",
                "vendor_class": "Juniper-ex4300",
                "user_class": ["sztp"],
                "interface": null,
                "relay": null,
                "address": "192.0.2.10",
                "requested_143": true,
                "rule": null,
                "uris": ["https://bs1.example.net:8443"],
                "uris_dropped": [],
                "encoding": null,
                "reason": null,
                "message": null,
            })
        );
        assert_eq!(got[1]["xid"], "0x00000007");
        let back: DeviceEvent = serde_json::from_value(got[0].clone()).unwrap();
        assert_eq!(back, sample(1));
        assert_eq!(got[1]["client_id"], serde_json::Value::Null);
        drop(j);

        // Reopening appends.
        let j = DeviceJournal::open(dir.path(), 1 << 20).unwrap();
        j.record(&sample(3));
        drop(j); // drop flushes
        assert_eq!(lines(&dir.path().join(DEVICE_JOURNAL_FILE)).len(), 3);
    }

    #[test]
    fn rotation_keeps_three_old_files() {
        let dir = tempfile::tempdir().unwrap();
        let line_len = serde_json::to_string(&sample(0)).unwrap().len() as u64 + 1;
        // Rotate after every 5th line.
        let j = DeviceJournal::open(dir.path(), line_len * 5 - 1).unwrap();
        for i in 0..23 {
            j.record(&sample(i));
            // Keep the queue short so nothing is dropped in this test.
            j.flush();
        }
        drop(j);
        assert_eq!(dir.path().read_dir().unwrap().count(), 4);
        let cur = dir.path().join(DEVICE_JOURNAL_FILE);
        let macs = |p: &Path| -> Vec<String> {
            lines(p)
                .iter()
                .map(|v| v["mac"].as_str().unwrap()[15..].to_owned())
                .collect()
        };
        // 23 events: files of 5, 5, 5, 5 (the first one rotated away for good), then 3.
        assert_eq!(macs(&cur), ["14", "15", "16"]);
        let rot = |n: u32| dir.path().join(format!("{DEVICE_JOURNAL_FILE}.{n}"));
        assert_eq!(macs(&rot(1)), ["0f", "10", "11", "12", "13"]);
        assert_eq!(macs(&rot(2)), ["0a", "0b", "0c", "0d", "0e"]);
        assert_eq!(macs(&rot(3)), ["05", "06", "07", "08", "09"]);
        assert!(!rot(4).exists());
    }

    #[test]
    fn full_channel_drops_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let j = DeviceJournal::open_with_capacity(dir.path(), 1 << 20, 4).unwrap();
        let (stalled_tx, stalled_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        j.tx.as_ref()
            .unwrap()
            .send(Msg::Stall(stalled_tx, release_rx))
            .unwrap();
        stalled_rx.recv().unwrap();
        // The writer is stuck and the queue empty: 4 events fit, the other 6 are dropped.
        for i in 0..10 {
            j.record(&sample(i));
        }
        assert_eq!(j.dropped(), 6);
        drop(release_tx);
        j.flush();
        let got = lines(&dir.path().join(DEVICE_JOURNAL_FILE));
        let macs: Vec<&str> = got.iter().map(|v| v["mac"].as_str().unwrap()).collect();
        assert_eq!(
            macs,
            [
                "00:11:22:33:44:00",
                "00:11:22:33:44:01",
                "00:11:22:33:44:02",
                "00:11:22:33:44:03"
            ]
        );
    }
}
