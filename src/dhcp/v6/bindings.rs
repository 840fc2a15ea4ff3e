//! DHCPv6 bindings: the `Lease6` record the lease journal stores, the in-memory table keyed by
//! address and by (DUID, IAID), and address choice by a stable hash (no pool walk)
//!
//! A /64 pool holds 2^64 addresses, so an address is never found by walking the pool: the
//! candidates for an IA_NA are `SHA-256(tag ‖ DUID ‖ IAID ‖ probe)` reduced into the pools,
//! probe = 0, 1, …, [`PROBES`] − 1. The first candidate that is free wins, so the same
//! (DUID, IAID) gets the same address after a restart even before the journal is consulted,
//! and the journal keeps the winner when an earlier candidate was taken. Small pools that are
//! nearly full are covered by a bounded scan of [`SCAN_WINDOW`] addresses after the probes.

use std::collections::HashMap;
use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};

use crate::config::{Pool6, Subnet6};
use crate::dhcp::lease_store::JournalRecord;
use crate::dhcp::leases::LeaseState;
use crate::policy::MacAddr;

/// Hashed candidates tried before the bounded scan.
pub const PROBES: u32 = 32;
/// Addresses scanned after the probes, from the first candidate on.
pub const SCAN_WINDOW: u128 = 4096;
/// Domain-separation tag of the address hash; changing it moves every client's address.
const HASH_TAG: &[u8] = b"sztp-redirector/dhcp6/ia-na/v1";

/// One DHCPv6 address binding (one IA_NA address), as stored in the lease journal: one record
/// per change, the latest per address wins on replay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease6 {
    /// The bound address (the journal key: the last record per address wins).
    pub addr: Ipv6Addr,
    /// The client's DUID (option 1), lowercase hex in the journal.
    #[serde(with = "hex::serde")]
    pub duid: Vec<u8>,
    /// IAID of the IA_NA holding the address.
    pub iaid: u32,
    /// The client's MAC when known (DUID-LL/LLT or the relay's option 79).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// Unix time (seconds) the valid lifetime, or the quarantine, ends.
    pub expires: u64,
    /// Bound, released, or declined (quarantined until `expires`, RFC 8415 §18.3.8).
    pub state: LeaseState,
}

/// The DHCPv6 lease journal's file name in state-dir.
pub const JOURNAL_FILE: &str = "leases6.journal";

impl JournalRecord for Lease6 {
    type Key = Ipv6Addr;
    const FILE_NAME: &'static str = JOURNAL_FILE;
    fn key(&self) -> Ipv6Addr {
        self.addr
    }
}

/// An identity association: the client's DUID and the IA's IAID (RFC 8415 §12).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IaKey {
    /// The client's DUID (option 1 contents).
    pub duid: Vec<u8>,
    /// The IA_NA's IAID.
    pub iaid: u32,
}

impl IaKey {
    fn of(l: &Lease6) -> IaKey {
        IaKey {
            duid: l.duid.clone(),
            iaid: l.iaid,
        }
    }
}

/// In-memory state of one address: advertised only (not journaled) or stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Slot6 {
    /// Held for an Advertise until `expires`.
    Offered(Lease6),
    /// Journaled.
    Stored(Lease6),
}

impl Slot6 {
    /// The binding, advertised or stored.
    pub fn lease(&self) -> &Lease6 {
        match self {
            Slot6::Offered(l) | Slot6::Stored(l) => l,
        }
    }
}

/// The DHCPv6 address table the handler allocates from.
#[derive(Debug, Default)]
pub struct Bindings {
    by_addr: HashMap<Ipv6Addr, Slot6>,
    by_ia: HashMap<IaKey, Ipv6Addr>,
}

impl Bindings {
    /// Rebuilds the table from replayed journal records.
    pub fn from_records(records: Vec<Lease6>) -> Bindings {
        let mut t = Bindings::default();
        for l in records {
            t.put(Slot6::Stored(l));
        }
        t
    }

    /// Addresses in the table (advertised and stored, any state).
    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    /// Whether the table holds no address.
    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }

    /// What the table holds for `addr`.
    pub fn get(&self, addr: Ipv6Addr) -> Option<&Slot6> {
        self.by_addr.get(&addr)
    }

    /// The address last given to this IA, whatever its state.
    pub fn ia_addr(&self, key: &IaKey) -> Option<Ipv6Addr> {
        self.by_ia.get(key).copied()
    }

    /// Whether `key` may be given `addr` at `now`: nobody holds it, or this IA does, or the
    /// holder's binding is over; a declined address is nobody's until its quarantine ends.
    pub fn available_to(&self, addr: Ipv6Addr, key: &IaKey, now: u64) -> bool {
        match self.by_addr.get(&addr) {
            None => true,
            Some(slot) => {
                let l = slot.lease();
                let active = l.expires > now;
                match (slot, l.state) {
                    (_, LeaseState::Declined) => !active,
                    (Slot6::Stored(_), LeaseState::Released) => true,
                    _ => !active || (l.iaid == key.iaid && l.duid == key.duid),
                }
            }
        }
    }

    /// Whether `key` holds `addr` in a stored, unexpired binding.
    pub fn bound_to(&self, addr: Ipv6Addr, key: &IaKey, now: u64) -> bool {
        matches!(self.by_addr.get(&addr), Some(Slot6::Stored(l))
            if l.state == LeaseState::Bound && l.expires > now && l.iaid == key.iaid && l.duid == key.duid)
    }

    /// Stores a slot, keeping the IA index right.
    pub fn put(&mut self, slot: Slot6) {
        let l = slot.lease();
        let addr = l.addr;
        let key = IaKey::of(l);
        if let Some(old) = self.by_addr.get(&addr) {
            let old_key = IaKey::of(old.lease());
            if old_key != key && self.by_ia.get(&old_key) == Some(&addr) {
                self.by_ia.remove(&old_key);
            }
        }
        if l.state == LeaseState::Declined {
            if self.by_ia.get(&key) == Some(&addr) {
                self.by_ia.remove(&key);
            }
        } else {
            self.by_ia.insert(key, addr);
        }
        self.by_addr.insert(addr, slot);
    }

    /// Forgets an Advertise that was not taken up.
    pub fn drop_offer(&mut self, addr: Ipv6Addr) {
        if let Some(Slot6::Offered(l)) = self.by_addr.get(&addr) {
            let key = IaKey::of(l);
            self.by_addr.remove(&addr);
            if self.by_ia.get(&key) == Some(&addr) {
                self.by_ia.remove(&key);
            }
        }
    }

    /// Journaled bindings (advertised-only ones excluded), for compaction and listing.
    pub fn records(&self) -> Vec<Lease6> {
        self.by_addr
            .values()
            .filter_map(|s| match s {
                Slot6::Stored(l) => Some(l.clone()),
                Slot6::Offered(_) => None,
            })
            .collect()
    }

    /// Bound, unexpired bindings.
    pub fn active(&self, now: u64) -> usize {
        self.by_addr
            .values()
            .filter(|s| {
                matches!(s, Slot6::Stored(l) if l.state == LeaseState::Bound && l.expires > now)
            })
            .count()
    }

    /// Removes advertisements past their time and records expired more than `keep_secs` ago.
    pub fn sweep(&mut self, now: u64, keep_secs: u64) {
        let dead: Vec<Ipv6Addr> = self
            .by_addr
            .iter()
            .filter(|(_, s)| match s {
                Slot6::Offered(l) => l.expires <= now,
                Slot6::Stored(l) => l.expires.saturating_add(keep_secs) <= now,
            })
            .map(|(a, _)| *a)
            .collect();
        for addr in dead {
            if let Some(s) = self.by_addr.remove(&addr) {
                let key = IaKey::of(s.lease());
                if self.by_ia.get(&key) == Some(&addr) {
                    self.by_ia.remove(&key);
                }
            }
        }
    }

    /// A free pool address of `subnet` for `key`, chosen by the stable hash: the first of the
    /// [`PROBES`] hashed candidates that `usable` accepts and that is available, else the first
    /// such address in the [`SCAN_WINDOW`] addresses from the first candidate on.
    pub fn choose_pool_address(
        &self,
        subnet: &Subnet6,
        key: &IaKey,
        now: u64,
        usable: impl Fn(Ipv6Addr) -> bool,
    ) -> Option<Ipv6Addr> {
        let total = pools_size(&subnet.pools)?;
        let ok =
            |a: Ipv6Addr| not_special(subnet, a) && usable(a) && self.available_to(a, key, now);
        for probe in 0..PROBES {
            let a = nth_address(&subnet.pools, stable_offset(key, probe, total));
            if ok(a) {
                return Some(a);
            }
        }
        let start = stable_offset(key, 0, total);
        (0..total.min(SCAN_WINDOW))
            .map(|i| nth_address(&subnet.pools, (start + i) % total))
            .find(|&a| ok(a))
    }
}

/// Addresses in `pools` together; `None` when there are none. Saturates at `u128::MAX` (pools
/// that large only exist inside a /0 and never fill up).
pub fn pools_size(pools: &[Pool6]) -> Option<u128> {
    let n = pools.iter().fold(0u128, |acc, p| {
        acc.saturating_add(p.last_offset().saturating_add(1))
    });
    (n > 0).then_some(n)
}

/// The `offset`-th address of the pools taken one after the other.
pub fn nth_address(pools: &[Pool6], mut offset: u128) -> Ipv6Addr {
    for p in pools {
        let size = p.last_offset().saturating_add(1);
        if offset < size {
            return Ipv6Addr::from(u128::from(p.start) + offset);
        }
        offset -= size;
    }
    pools.last().map_or(Ipv6Addr::UNSPECIFIED, |p| p.end)
}

/// `SHA-256(tag ‖ len(DUID) ‖ DUID ‖ IAID ‖ probe)` reduced modulo `total`. A fixed,
/// documented function (never `DefaultHasher`, whose keys change per process), so an IA's
/// candidates are the same on every start and every machine.
pub fn stable_offset(key: &IaKey, probe: u32, total: u128) -> u128 {
    let mut h = ring::digest::Context::new(&ring::digest::SHA256);
    h.update(HASH_TAG);
    h.update(&(key.duid.len() as u16).to_be_bytes());
    h.update(&key.duid);
    h.update(&key.iaid.to_be_bytes());
    h.update(&probe.to_be_bytes());
    let d = h.finish();
    let mut first = [0u8; 16];
    first.copy_from_slice(&d.as_ref()[..16]);
    u128::from_be_bytes(first) % total
}

/// Addresses never handed out: the Subnet-Router anycast address (RFC 4291 §2.6.1) and, in a
/// /64, the reserved subnet anycast addresses (RFC 2526: the top 128 interface identifiers).
fn not_special(subnet: &Subnet6, a: Ipv6Addr) -> bool {
    let net = subnet.prefix;
    if a == net.network() {
        return false;
    }
    if net.prefix_len() == 64 {
        let iid = u128::from(a) & u64::MAX as u128;
        if iid >= 0xfdff_ffff_ffff_ff80 {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn subnet(pools: &[(&str, &str)]) -> Subnet6 {
        Subnet6 {
            prefix: "2001:db8:1::/64".parse().unwrap(),
            pools: pools
                .iter()
                .map(|(s, e)| Pool6 {
                    start: s.parse().unwrap(),
                    end: e.parse().unwrap(),
                })
                .collect(),
            dns_servers: vec![],
            domain_search: vec![],
            preferred_lifetime: Duration::from_secs(1800),
            valid_lifetime: Duration::from_secs(3600),
            renewal_time: None,
            rebinding_time: None,
            interface: None,
            reservations: vec![],
        }
    }

    fn key(n: u8) -> IaKey {
        IaKey {
            duid: vec![0, 3, 0, 1, 2, 0, 0, 0, 0, n],
            iaid: 1,
        }
    }

    fn lease(addr: Ipv6Addr, k: &IaKey, state: LeaseState, expires: u64) -> Lease6 {
        Lease6 {
            addr,
            duid: k.duid.clone(),
            iaid: k.iaid,
            mac: None,
            expires,
            state,
        }
    }

    #[test]
    fn the_hash_is_a_fixed_function() {
        // pinned (and computed independently with Python's hashlib): a change here moves
        // every client's address after an upgrade
        let k = IaKey {
            duid: vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 1],
            iaid: 0x0000_0001,
        };
        assert_eq!(stable_offset(&k, 0, 1 << 64), 0x1220_5f7c_c3ea_044c);
        assert_ne!(stable_offset(&k, 0, 1 << 64), stable_offset(&k, 1, 1 << 64));
    }

    #[test]
    fn a_slash_64_pool_is_never_walked_and_addresses_are_stable() {
        let s = subnet(&[("2001:db8:1::", "2001:db8:1::ffff:ffff:ffff:ffff")]);
        let t = Bindings::default();
        let a = t.choose_pool_address(&s, &key(1), 0, |_| true).unwrap();
        assert_eq!(a, t.choose_pool_address(&s, &key(1), 0, |_| true).unwrap());
        assert_ne!(a, t.choose_pool_address(&s, &key(2), 0, |_| true).unwrap());
        let other_iaid = IaKey { iaid: 2, ..key(1) };
        assert_ne!(
            a,
            t.choose_pool_address(&s, &other_iaid, 0, |_| true).unwrap()
        );
        assert!(s.prefix.contains(&a));
    }

    #[test]
    fn a_taken_candidate_moves_to_the_next_probe() {
        let s = subnet(&[("2001:db8:1::", "2001:db8:1::ffff:ffff:ffff:ffff")]);
        let mut t = Bindings::default();
        let first = t.choose_pool_address(&s, &key(1), 0, |_| true).unwrap();
        t.put(Slot6::Stored(lease(first, &key(9), LeaseState::Bound, 100)));
        let second = t.choose_pool_address(&s, &key(1), 0, |_| true).unwrap();
        assert_ne!(first, second);
        assert_eq!(
            second,
            nth_address(&s.pools, stable_offset(&key(1), 1, 1 << 64))
        );
        // once the other binding expires, the first candidate is free again
        assert_eq!(
            t.choose_pool_address(&s, &key(1), 100, |_| true),
            Some(first)
        );
    }

    #[test]
    fn small_pools_fill_up_completely_then_report_exhaustion() {
        let s = subnet(&[
            ("2001:db8:1::10", "2001:db8:1::12"),
            ("2001:db8:1::20", "2001:db8:1::20"),
        ]);
        let mut t = Bindings::default();
        let mut got = Vec::new();
        for n in 0..4 {
            let a = t.choose_pool_address(&s, &key(n), 0, |_| true).unwrap();
            t.put(Slot6::Stored(lease(a, &key(n), LeaseState::Bound, 100)));
            got.push(a);
        }
        got.sort();
        let want: Vec<Ipv6Addr> = [
            "2001:db8:1::10",
            "2001:db8:1::11",
            "2001:db8:1::12",
            "2001:db8:1::20",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        assert_eq!(got, want);
        assert_eq!(t.choose_pool_address(&s, &key(9), 0, |_| true), None);
    }

    #[test]
    fn anycast_addresses_are_skipped() {
        let s = subnet(&[("2001:db8:1::", "2001:db8:1::")]);
        assert_eq!(
            Bindings::default().choose_pool_address(&s, &key(1), 0, |_| true),
            None
        );
        let s = subnet(&[(
            "2001:db8:1::fdff:ffff:ffff:ff80",
            "2001:db8:1::ffff:ffff:ffff:ffff",
        )]);
        assert_eq!(
            Bindings::default().choose_pool_address(&s, &key(1), 0, |_| true),
            None
        );
    }

    #[test]
    fn declined_is_quarantined_and_released_is_free() {
        let a: Ipv6Addr = "2001:db8:1::10".parse().unwrap();
        let mut t = Bindings::from_records(vec![lease(a, &key(1), LeaseState::Declined, 100)]);
        assert!(!t.available_to(a, &key(1), 50));
        assert!(t.available_to(a, &key(2), 100));
        assert_eq!(t.ia_addr(&key(1)), None);
        t.put(Slot6::Stored(lease(a, &key(1), LeaseState::Released, 10)));
        assert!(t.available_to(a, &key(2), 50));
        assert_eq!(t.ia_addr(&key(1)), Some(a));
        t.put(Slot6::Stored(lease(a, &key(2), LeaseState::Bound, 500)));
        assert_eq!(t.ia_addr(&key(1)), None, "the index follows the new holder");
        assert!(t.bound_to(a, &key(2), 50));
        assert!(!t.available_to(a, &key(1), 50));
    }

    #[test]
    fn sweep_forgets_offers_and_old_records() {
        let mut t = Bindings::default();
        let a: Ipv6Addr = "2001:db8:1::10".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1::11".parse().unwrap();
        t.put(Slot6::Offered(lease(a, &key(1), LeaseState::Bound, 60)));
        t.put(Slot6::Stored(lease(b, &key(2), LeaseState::Bound, 60)));
        assert_eq!(t.records().len(), 1);
        t.sweep(61, 1000);
        assert_eq!(t.len(), 1);
        assert_eq!(t.ia_addr(&key(1)), None);
        t.sweep(2000, 1000);
        assert!(t.is_empty());
    }

    #[test]
    fn lease6_journal_form() {
        let l = Lease6 {
            addr: "2001:db8:1::10".parse().unwrap(),
            duid: vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 1],
            iaid: 7,
            mac: Some(MacAddr([2, 0, 0, 0, 0, 1])),
            expires: 1_795_810_500,
            state: LeaseState::Bound,
        };
        let j = serde_json::to_string(&l).unwrap();
        assert_eq!(
            j,
            r#"{"addr":"2001:db8:1::10","duid":"00030001020000000001","iaid":7,"mac":"02:00:00:00:00:01","expires":1795810500,"state":"bound"}"#
        );
        assert_eq!(serde_json::from_str::<Lease6>(&j).unwrap(), l);
    }
}
