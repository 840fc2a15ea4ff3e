//! Lease records: what the journal stores and the in-memory table the handler allocates from

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::policy::MacAddr;

/// Where a stored lease stands (RFC 2131 §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaseState {
    /// ACKed; the client holds it until `expires`.
    Bound,
    /// The client DECLINEd it (address in use): quarantined until `expires`.
    Declined,
    /// The client RELEASEd it, or it expired: free, remembered for the same client.
    Released,
}

/// One DHCPv4 lease, as stored in the journal (one record per change).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease4 {
    /// The leased address (the record's key in the journal).
    pub addr: Ipv4Addr,
    /// The client's hardware address (chaddr).
    pub mac: MacAddr,
    /// Option 61, hex-encoded in the journal.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::journal::hex_opt"
    )]
    pub client_id: Option<Vec<u8>>,
    /// Option 12 as the client sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Unix time (seconds) the lease or quarantine ends.
    pub expires: u64,
    /// Bound, declined or released.
    pub state: LeaseState,
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.text().as_str())
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A client's identity for lease lookups: option 61 when sent, else the MAC (RFC 2131 §4.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// Option 61, octets as sent.
    Id(Vec<u8>),
    /// chaddr, when the client sent no option 61.
    Mac(MacAddr),
}

impl ClientKey {
    /// Option 61 when sent and not empty, else the MAC.
    pub fn new(client_id: Option<&[u8]>, mac: MacAddr) -> ClientKey {
        match client_id {
            Some(id) if !id.is_empty() => ClientKey::Id(id.to_vec()),
            _ => ClientKey::Mac(mac),
        }
    }

    fn of(l: &Lease4) -> ClientKey {
        ClientKey::new(l.client_id.as_deref(), l.mac)
    }
}

/// In-memory state of one address. Offers live only here; everything else is journaled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Slot {
    /// An OFFER's hold on the address (memory only, never journaled).
    Offered(Lease4),
    /// A journaled lease: bound, declined or released.
    Stored(Lease4),
}

impl Slot {
    /// The lease either way.
    pub fn lease(&self) -> &Lease4 {
        match self {
            Slot::Offered(l) | Slot::Stored(l) => l,
        }
    }
}

/// The address table the DHCPv4 handler allocates from.
///
/// Free-address selection never walks a pool: `occupied` keeps the addresses present in the
/// table as maximal runs, so the first never-used address of a pool is one range lookup;
/// `reusable` holds the present addresses anyone may take (released, or expired and
/// reclaimed), so the first of those in a pool is another; `expiring` orders the others by
/// the time they become reusable. Every operation is O(log n) in the table's size (plus, per
/// DISCOVER, one check per reserved address met on the way).
#[derive(Debug, Default)]
pub struct LeaseTable {
    by_addr: HashMap<Ipv4Addr, Slot>,
    by_client: HashMap<ClientKey, Ipv4Addr>,
    /// The journaled, bound lease of each client: released when the client takes another
    /// address (its offer has taken its place in `by_client` by then).
    bound: HashMap<ClientKey, Ipv4Addr>,
    /// Outstanding offers by the time they lapse, `(expires, address)`: the oldest goes to a
    /// new client when nothing else is free.
    offered: BTreeSet<(u64, u32)>,
    /// Quarantined (declined) addresses per client MAC, `(expires, address)`.
    declined: HashMap<MacAddr, BTreeSet<(u64, u32)>>,
    /// Addresses in `by_addr`, as disjoint, non-adjacent runs `start → end` (inclusive).
    occupied: BTreeMap<u32, u32>,
    /// Addresses in `by_addr` available to any client: released, or expired (reclaimed).
    reusable: BTreeSet<u32>,
    /// The other addresses in `by_addr`, by the Unix time they expire: `(expires, address)`.
    expiring: BTreeSet<(u64, u32)>,
}

impl LeaseTable {
    /// Rebuild from replayed journal records.
    pub fn from_records(records: Vec<Lease4>) -> LeaseTable {
        let mut t = LeaseTable::default();
        for l in records {
            t.put(Slot::Stored(l));
        }
        t
    }

    /// Addresses in the table (offers included).
    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    /// Whether the table holds no address.
    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }

    /// The slot of `addr`, if any.
    pub fn get(&self, addr: Ipv4Addr) -> Option<&Slot> {
        self.by_addr.get(&addr)
    }

    /// The address last given to this client, whatever its state.
    pub fn client_addr(&self, key: &ClientKey) -> Option<Ipv4Addr> {
        self.by_client.get(key).copied()
    }

    /// The address this client holds a journaled, bound lease on (expired or not).
    pub fn bound_addr(&self, key: &ClientKey) -> Option<Ipv4Addr> {
        self.bound.get(key).copied()
    }

    /// How many addresses `mac` has declined that are still quarantined at `now`.
    pub fn active_declines(&self, mac: MacAddr, now: u64) -> usize {
        self.declined
            .get(&mac)
            .map_or(0, |d| d.range((now.saturating_add(1), 0)..).count())
    }

    /// The address of `start..=end` whose outstanding offer is the oldest (lapses first), for
    /// which `usable` holds: when nothing else is free it goes to the client asking now, so a
    /// flood of DISCOVERs that are never followed up cannot starve real clients.
    pub fn oldest_offer(
        &self,
        start: Ipv4Addr,
        end: Ipv4Addr,
        usable: impl Fn(Ipv4Addr) -> bool,
    ) -> Option<Ipv4Addr> {
        let (s, e) = (u32::from(start), u32::from(end));
        self.offered
            .iter()
            .map(|&(_, a)| a)
            .filter(|a| (s..=e).contains(a))
            .map(Ipv4Addr::from)
            .find(|&a| usable(a))
    }

    /// Adds `slot` to the per-client indexes (bound lease, offers, quarantines).
    fn index_client(&mut self, slot: &Slot) {
        let l = slot.lease();
        let a = u32::from(l.addr);
        match slot {
            Slot::Offered(_) => {
                self.offered.insert((l.expires, a));
            }
            Slot::Stored(_) if l.state == LeaseState::Bound => {
                self.bound.insert(ClientKey::of(l), l.addr);
            }
            Slot::Stored(_) if l.state == LeaseState::Declined => {
                self.declined
                    .entry(l.mac)
                    .or_default()
                    .insert((l.expires, a));
            }
            Slot::Stored(_) => {}
        }
    }

    /// Removes `slot` from the per-client indexes.
    fn unindex_client(&mut self, slot: &Slot) {
        let l = slot.lease();
        let a = u32::from(l.addr);
        match slot {
            Slot::Offered(_) => {
                self.offered.remove(&(l.expires, a));
            }
            Slot::Stored(_) if l.state == LeaseState::Bound => {
                let key = ClientKey::of(l);
                if self.bound.get(&key) == Some(&l.addr) {
                    self.bound.remove(&key);
                }
            }
            Slot::Stored(_) if l.state == LeaseState::Declined => {
                if let Some(d) = self.declined.get_mut(&l.mac) {
                    d.remove(&(l.expires, a));
                    if d.is_empty() {
                        self.declined.remove(&l.mac);
                    }
                }
            }
            Slot::Stored(_) => {}
        }
    }

    /// Whether `key` may be given `addr` now.
    pub fn available_to(&self, addr: Ipv4Addr, key: &ClientKey, now: u64) -> bool {
        match self.by_addr.get(&addr) {
            None => true,
            Some(slot) => {
                let l = slot.lease();
                let active = l.expires > now;
                match (slot, l.state) {
                    (_, LeaseState::Declined) => !active,
                    (Slot::Stored(_), LeaseState::Released) => true,
                    _ => !active || ClientKey::of(l) == *key,
                }
            }
        }
    }

    /// Store a slot, keeping the client index and the free-address indexes right.
    ///
    /// The client index names the address a client holds: a released address never takes
    /// that place from another address the client holds or was offered. Replay puts records in
    /// address order, and a client that moved from a higher address kept it released in the
    /// journal: a restart gave it a new address while its real lease stayed bound (a fresh
    /// start then answered unlike the running server).
    pub fn put(&mut self, slot: Slot) {
        let l = slot.lease();
        let addr = l.addr;
        if l.state != LeaseState::Declined {
            let key = ClientKey::of(l);
            let holds = |s: &Slot| !matches!(s, Slot::Stored(l) if l.state != LeaseState::Bound);
            let keep_other = self
                .by_client
                .get(&key)
                .filter(|&&a| a != addr)
                .and_then(|a| self.by_addr.get(a))
                .is_some_and(|cur| holds(cur) && !holds(&slot));
            if !keep_other {
                self.by_client.insert(key, addr);
            }
        }
        if let Some(old) = self.by_addr.get(&addr).cloned() {
            let old_key = ClientKey::of(old.lease());
            if old_key != ClientKey::of(slot.lease()) && self.by_client.get(&old_key) == Some(&addr)
            {
                self.by_client.remove(&old_key);
            }
            self.unindex(addr, old.lease().expires);
            self.unindex_client(&old);
        } else {
            self.occupy(u32::from(addr));
        }
        self.index_client(&slot);
        match &slot {
            Slot::Stored(l) if l.state == LeaseState::Released => {
                self.reusable.insert(u32::from(addr));
            }
            s => {
                self.expiring.insert((s.lease().expires, u32::from(addr)));
            }
        }
        self.by_addr.insert(addr, slot);
    }

    fn unindex(&mut self, addr: Ipv4Addr, expires: u64) {
        let a = u32::from(addr);
        if !self.reusable.remove(&a) {
            self.expiring.remove(&(expires, a));
        }
    }

    /// Removes `addr` from the table entirely: it becomes never-used again.
    fn remove(&mut self, addr: Ipv4Addr) -> Option<Slot> {
        let slot = self.by_addr.remove(&addr)?;
        self.unindex(addr, slot.lease().expires);
        self.unindex_client(&slot);
        self.vacate(u32::from(addr));
        let key = ClientKey::of(slot.lease());
        if self.by_client.get(&key) == Some(&addr) {
            self.by_client.remove(&key);
        }
        Some(slot)
    }

    /// Forget an offer that was not taken up.
    pub fn drop_offer(&mut self, addr: Ipv4Addr) {
        if let Some(Slot::Offered(_)) = self.by_addr.get(&addr) {
            self.remove(addr);
        }
    }

    /// Moves every address whose slot expired at or before `now` to the reusable set.
    fn reclaim(&mut self, now: u64) {
        while let Some(&(expires, a)) = self.expiring.first() {
            if expires > now {
                break;
            }
            self.expiring.pop_first();
            self.reusable.insert(a);
        }
    }

    fn occupy(&mut self, a: u32) {
        if let Some((_, &e)) = self.occupied.range(..=a).next_back() {
            if e >= a {
                return;
            }
        }
        let left = self
            .occupied
            .range(..a)
            .next_back()
            .filter(|(_, &e)| e.checked_add(1) == Some(a))
            .map(|(&s, _)| s);
        let right = a
            .checked_add(1)
            .and_then(|n| self.occupied.remove(&n).map(|e| (n, e)));
        match (left, right) {
            (Some(s), Some((_, e))) => {
                self.occupied.insert(s, e);
            }
            (Some(s), None) => {
                self.occupied.insert(s, a);
            }
            (None, Some((_, e))) => {
                self.occupied.insert(a, e);
            }
            (None, None) => {
                self.occupied.insert(a, a);
            }
        }
    }

    fn vacate(&mut self, a: u32) {
        let Some((&s, &e)) = self.occupied.range(..=a).next_back() else {
            return;
        };
        if e < a {
            return;
        }
        self.occupied.remove(&s);
        if s < a {
            self.occupied.insert(s, a - 1);
        }
        if a < e {
            self.occupied.insert(a + 1, e);
        }
    }

    /// The first address `>= from` and `<= end` not in the table.
    fn first_never_used(&self, from: u32, end: u32) -> Option<u32> {
        let mut x = from;
        if let Some((_, &e)) = self.occupied.range(..=x).next_back() {
            if e >= x {
                x = e.checked_add(1)?;
            }
        }
        (x <= end).then_some(x)
    }

    /// An address of `start..=end` anyone may take now, for which `usable` holds (the caller
    /// excludes reserved addresses): never-used addresses first, lowest first, then released
    /// or expired ones, lowest first. Never walks the range: each step is a lookup in the
    /// indexes, and only addresses `usable` refuses are stepped over.
    pub fn find_free(
        &mut self,
        start: Ipv4Addr,
        end: Ipv4Addr,
        now: u64,
        usable: impl Fn(Ipv4Addr) -> bool,
    ) -> Option<Ipv4Addr> {
        let (s, e) = (u32::from(start), u32::from(end));
        if s > e {
            return None;
        }
        self.reclaim(now);
        let mut from = s;
        while let Some(a) = self.first_never_used(from, e) {
            if usable(Ipv4Addr::from(a)) {
                return Some(Ipv4Addr::from(a));
            }
            from = a.checked_add(1)?;
        }
        // the check of the slot only matters when the clock stepped back since the reclaim
        self.reusable
            .range(s..=e)
            .map(|&a| Ipv4Addr::from(a))
            .find(|&a| usable(a) && self.free_for_anyone(a, now))
    }

    fn free_for_anyone(&self, addr: Ipv4Addr, now: u64) -> bool {
        self.by_addr.get(&addr).is_none_or(|slot| match slot {
            Slot::Stored(l) if l.state == LeaseState::Released => true,
            s => s.lease().expires <= now,
        })
    }

    /// Every slot (offers and stored leases), in no particular order; for metrics.
    pub fn slots(&self) -> impl Iterator<Item = &Slot> {
        self.by_addr.values()
    }

    /// Journaled leases (offers excluded), for compaction and listing.
    pub fn records(&self) -> Vec<Lease4> {
        self.by_addr
            .values()
            .filter_map(|s| match s {
                Slot::Stored(l) => Some(l.clone()),
                Slot::Offered(_) => None,
            })
            .collect()
    }

    /// How many journaled leases (offers excluded) the table holds: [`records`](Self::records)
    /// without the copies.
    pub fn stored_len(&self) -> usize {
        self.by_addr
            .values()
            .filter(|s| matches!(s, Slot::Stored(_)))
            .count()
    }

    /// Bound, unexpired leases.
    pub fn active(&self, now: u64) -> usize {
        self.by_addr
            .values()
            .filter(
                |s| matches!(s, Slot::Stored(l) if l.state == LeaseState::Bound && l.expires > now),
            )
            .count()
    }

    /// Remove offers past their time and records long expired (kept `keep_secs` after expiry
    /// so a returning client still gets its old address).
    pub fn sweep(&mut self, now: u64, keep_secs: u64) {
        // reclaim here too, so a DISCOVER rarely pays for a mass expiry
        self.reclaim(now);
        let dead: Vec<Ipv4Addr> = self
            .by_addr
            .iter()
            .filter(|(_, s)| match s {
                Slot::Offered(l) => l.expires <= now,
                Slot::Stored(l) => l.expires.saturating_add(keep_secs) <= now,
            })
            .map(|(a, _)| *a)
            .collect();
        for addr in dead {
            self.remove(addr);
        }
    }
}

#[cfg(test)]
impl LeaseTable {
    /// The per-client indexes hold exactly what `by_addr` says.
    fn check_client_indexes(&self) {
        let mut offered = BTreeSet::new();
        let mut declined: HashMap<MacAddr, BTreeSet<(u64, u32)>> = HashMap::new();
        for (a, slot) in &self.by_addr {
            let l = slot.lease();
            match slot {
                Slot::Offered(_) => {
                    offered.insert((l.expires, u32::from(*a)));
                }
                Slot::Stored(_) if l.state == LeaseState::Declined => {
                    declined
                        .entry(l.mac)
                        .or_default()
                        .insert((l.expires, u32::from(*a)));
                }
                Slot::Stored(_) => {}
            }
        }
        assert_eq!(self.offered, offered);
        assert_eq!(self.declined, declined);
        for (k, a) in &self.bound {
            let l = self.by_addr[a].lease();
            assert!(matches!(self.by_addr[a], Slot::Stored(_)) && l.state == LeaseState::Bound);
            assert_eq!(ClientKey::of(l), *k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(a: [u8; 4], m: u8, state: LeaseState, expires: u64) -> Lease4 {
        Lease4 {
            addr: Ipv4Addr::from(a),
            mac: MacAddr([2, 0, 0, 0, 0, m]),
            client_id: None,
            hostname: None,
            expires,
            state,
        }
    }

    #[test]
    fn allocation_prefers_unused_then_expired() {
        let mut t = LeaseTable::from_records(vec![
            lease([192, 0, 2, 10], 1, LeaseState::Bound, 100),
            lease([192, 0, 2, 11], 2, LeaseState::Bound, 10),
        ]);
        let s = Ipv4Addr::new(192, 0, 2, 10);
        let e = Ipv4Addr::new(192, 0, 2, 11);
        // both used; .11 expired at 10
        assert_eq!(t.find_free(s, e, 50, |_| true), Some(e));
        // nothing expired yet
        assert_eq!(t.find_free(s, e, 5, |_| true), None);
        let e2 = Ipv4Addr::new(192, 0, 2, 12);
        assert_eq!(t.find_free(s, e2, 5, |_| true), Some(e2));
        assert_eq!(
            t.client_addr(&ClientKey::Mac(MacAddr([2, 0, 0, 0, 0, 1]))),
            Some(s)
        );
    }

    /// The indexes give what walking the pool would: the lowest never-used address, else the
    /// lowest one available to anybody; checked after every step of a pseudo-random mix of
    /// offers, bindings, releases, declines, dropped offers and sweeps.
    #[test]
    fn find_free_matches_a_walk_of_the_pool() {
        let (s, e) = (
            u32::from(Ipv4Addr::new(192, 0, 2, 0)),
            u32::from(Ipv4Addr::new(192, 0, 2, 63)),
        );
        let walk = |t: &LeaseTable, now: u64, usable: &dyn Fn(u32) -> bool| {
            let stranger = ClientKey::Mac(MacAddr([0xfe; 6]));
            (s..=e)
                .filter(|&a| usable(a))
                .find(|&a| t.get(Ipv4Addr::from(a)).is_none())
                .or_else(|| {
                    (s..=e)
                        .filter(|&a| usable(a))
                        .find(|&a| t.available_to(Ipv4Addr::from(a), &stranger, now))
                })
                .map(Ipv4Addr::from)
        };
        let mut t = LeaseTable::default();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut now = 1000;
        for step in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let a = Ipv4Addr::from(s + (x % 64) as u32);
            let m = ((x >> 8) % 200) as u8;
            now += (x >> 16) % 3;
            let exp = now + (x >> 20) % 40;
            match (x >> 32) % 9 {
                0 | 1 => t.put(Slot::Offered(lease(a.octets(), m, LeaseState::Bound, exp))),
                2 | 3 => t.put(Slot::Stored(lease(a.octets(), m, LeaseState::Bound, exp))),
                4 => t.put(Slot::Stored(lease(
                    a.octets(),
                    m,
                    LeaseState::Released,
                    now,
                ))),
                5 => t.put(Slot::Stored(lease(
                    a.octets(),
                    m,
                    LeaseState::Declined,
                    exp,
                ))),
                6 => t.drop_offer(a),
                7 => t.sweep(now, 5),
                _ => {}
            }
            t.check_client_indexes();
            let reserved = |a: u32| a % 7 == 3;
            let want = walk(&t, now, &|a| !reserved(a));
            let got = t.find_free(Ipv4Addr::from(s), Ipv4Addr::from(e), now, |a| {
                !reserved(u32::from(a))
            });
            assert_eq!(got, want, "step {step}");
            let sub = (Ipv4Addr::from(s + 10), Ipv4Addr::from(s + 20));
            let want_sub = walk(&t, now, &|a| (s + 10..=s + 20).contains(&a));
            assert_eq!(
                t.find_free(sub.0, sub.1, now, |_| true),
                want_sub,
                "step {step}"
            );
        }
    }

    /// Replay goes in address order: a client's released old address (higher) must not hide
    /// the address it holds now (lower).
    #[test]
    fn replay_keeps_the_address_a_client_holds_over_one_it_released() {
        let mut old = lease([192, 0, 2, 150], 1, LeaseState::Released, 50);
        old.client_id = Some(vec![1, 2, 3]);
        let mut now = lease([192, 0, 2, 100], 1, LeaseState::Bound, 5000);
        now.client_id = Some(vec![1, 2, 3]);
        let key = ClientKey::Id(vec![1, 2, 3]);
        for records in [
            vec![now.clone(), old.clone()],
            vec![old.clone(), now.clone()],
        ] {
            let t = LeaseTable::from_records(records);
            assert_eq!(t.client_addr(&key), Some(now.addr));
        }
        // the running table: moving to a new address, releasing the old one
        let mut t = LeaseTable::from_records(vec![old.clone()]);
        assert_eq!(t.client_addr(&key), Some(old.addr));
        t.put(Slot::Offered(now.clone()));
        assert_eq!(
            t.client_addr(&key),
            Some(now.addr),
            "an offer takes the place"
        );
        t.put(Slot::Stored(now.clone()));
        assert_eq!(t.client_addr(&key), Some(now.addr));
        // releasing the address it holds keeps it as the client's address
        let mut rel = now.clone();
        rel.state = LeaseState::Released;
        t.put(Slot::Stored(rel));
        assert_eq!(t.client_addr(&key), Some(now.addr));
    }

    #[test]
    fn declined_is_quarantined_for_everyone() {
        let t =
            LeaseTable::from_records(vec![lease([192, 0, 2, 10], 1, LeaseState::Declined, 100)]);
        let k1 = ClientKey::Mac(MacAddr([2, 0, 0, 0, 0, 1]));
        assert!(!t.available_to(Ipv4Addr::new(192, 0, 2, 10), &k1, 50));
        assert!(t.available_to(Ipv4Addr::new(192, 0, 2, 10), &k1, 100));
        assert_eq!(t.client_addr(&k1), None);
    }

    #[test]
    fn sweep_forgets_offers_and_old_records() {
        let mut t = LeaseTable::default();
        t.put(Slot::Offered(lease(
            [192, 0, 2, 10],
            1,
            LeaseState::Bound,
            60,
        )));
        t.put(Slot::Stored(lease(
            [192, 0, 2, 11],
            2,
            LeaseState::Bound,
            60,
        )));
        t.sweep(61, 1000);
        assert_eq!(t.len(), 1);
        t.sweep(2000, 1000);
        assert!(t.is_empty());
    }
}
