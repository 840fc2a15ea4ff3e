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
