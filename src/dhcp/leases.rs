//! Lease records: what the journal stores and the in-memory table the handler allocates from

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::policy::MacAddr;

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
    pub addr: Ipv4Addr,
    pub mac: MacAddr,
    /// Option 61, hex-encoded in the journal.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "hex_opt")]
    pub client_id: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Unix time (seconds) the lease or quarantine ends.
    pub expires: u64,
    pub state: LeaseState,
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

mod hex_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.collect_str(&b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        match s {
            None => Ok(None),
            Some(s) => {
                if s.len() % 2 != 0 {
                    return Err(serde::de::Error::custom("odd hex length"));
                }
                (0..s.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&s[i..i + 2], 16))
                    .collect::<Result<Vec<u8>, _>>()
                    .map(Some)
                    .map_err(serde::de::Error::custom)
            }
        }
    }
}

/// A client's identity for lease lookups: option 61 when sent, else the MAC (RFC 2131 §4.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey {
    Id(Vec<u8>),
    Mac(MacAddr),
}

impl ClientKey {
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
    Offered(Lease4),
    Stored(Lease4),
}

impl Slot {
    pub fn lease(&self) -> &Lease4 {
        match self {
            Slot::Offered(l) | Slot::Stored(l) => l,
        }
    }
}

/// The address table the DHCPv4 handler allocates from.
#[derive(Debug, Default)]
pub struct LeaseTable {
    by_addr: std::collections::HashMap<Ipv4Addr, Slot>,
    by_client: std::collections::HashMap<ClientKey, Ipv4Addr>,
    /// Next address to try per pool (keyed by pool start), so allocation is amortised O(1).
    cursors: std::collections::HashMap<Ipv4Addr, u32>,
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

    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }

    pub fn get(&self, addr: Ipv4Addr) -> Option<&Slot> {
        self.by_addr.get(&addr)
    }

    /// The address last given to this client, whatever its state.
    pub fn client_addr(&self, key: &ClientKey) -> Option<Ipv4Addr> {
        self.by_client.get(key).copied()
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

    /// Store a slot, keeping the client index right.
    pub fn put(&mut self, slot: Slot) {
        let l = slot.lease();
        let addr = l.addr;
        if l.state != LeaseState::Declined {
            self.by_client.insert(ClientKey::of(l), addr);
        }
        if let Some(old) = self.by_addr.get(&addr) {
            let old_key = ClientKey::of(old.lease());
            if old_key != ClientKey::of(slot.lease()) && self.by_client.get(&old_key) == Some(&addr)
            {
                self.by_client.remove(&old_key);
            }
        }
        self.by_addr.insert(addr, slot);
    }

    /// Forget an offer that was not taken up.
    pub fn drop_offer(&mut self, addr: Ipv4Addr) {
        if let Some(Slot::Offered(l)) = self.by_addr.get(&addr) {
            let key = ClientKey::of(l);
            self.by_addr.remove(&addr);
            if self.by_client.get(&key) == Some(&addr) {
                self.by_client.remove(&key);
            }
        }
    }

    /// First address of `start..=end` available to `key`: never-used addresses first (from a
    /// moving cursor), then expired or released ones.
    pub fn find_free(
        &mut self,
        start: Ipv4Addr,
        end: Ipv4Addr,
        key: &ClientKey,
        now: u64,
        usable: impl Fn(Ipv4Addr) -> bool,
    ) -> Option<Ipv4Addr> {
        let (s, e) = (u32::from(start), u32::from(end));
        if s > e {
            return None;
        }
        let size = u64::from(e - s) + 1;
        let cursor = self.cursors.get(&start).copied().unwrap_or(s).clamp(s, e);
        let mut fallback = None;
        let mut a = cursor;
        for _ in 0..size {
            let addr = Ipv4Addr::from(a);
            if usable(addr) {
                match self.by_addr.get(&addr) {
                    None => {
                        self.cursors.insert(start, if a == e { s } else { a + 1 });
                        return Some(addr);
                    }
                    Some(_) if fallback.is_none() && self.available_to(addr, key, now) => {
                        fallback = Some(addr)
                    }
                    _ => {}
                }
            }
            a = if a == e { s } else { a + 1 };
        }
        fallback
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
        let dead: Vec<(Ipv4Addr, ClientKey)> = self
            .by_addr
            .iter()
            .filter(|(_, s)| match s {
                Slot::Offered(l) => l.expires <= now,
                Slot::Stored(l) => l.expires.saturating_add(keep_secs) <= now,
            })
            .map(|(a, s)| (*a, ClientKey::of(s.lease())))
            .collect();
        for (addr, key) in dead {
            self.by_addr.remove(&addr);
            if self.by_client.get(&key) == Some(&addr) {
                self.by_client.remove(&key);
            }
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
        let k3 = ClientKey::Mac(MacAddr([2, 0, 0, 0, 0, 3]));
        let s = Ipv4Addr::new(192, 0, 2, 10);
        let e = Ipv4Addr::new(192, 0, 2, 11);
        // both used; .11 expired at 10
        assert_eq!(t.find_free(s, e, &k3, 50, |_| true), Some(e));
        // nothing expired yet
        assert_eq!(t.find_free(s, e, &k3, 5, |_| true), None);
        let e2 = Ipv4Addr::new(192, 0, 2, 12);
        assert_eq!(t.find_free(s, e2, &k3, 5, |_| true), Some(e2));
        assert_eq!(
            t.client_addr(&ClientKey::Mac(MacAddr([2, 0, 0, 0, 0, 1]))),
            Some(s)
        );
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
