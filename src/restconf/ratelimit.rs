//! Per-source request rate limit: one token bucket per IP address, time handed in by the caller

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Buckets kept before idle (full) ones are forgotten.
const PRUNE_AT: usize = 4096;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets per source address: `rate` requests per second on average, bursts of
/// `burst`. A rate of 0 allows everything.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimiter {
    /// `rate` requests per second per address, at most `burst` at once.
    pub fn new(rate: f64, burst: u32) -> RateLimiter {
        RateLimiter {
            rate,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The limiter `redirect-server.rate-limit = per_second` describes: bursts of twice that.
    pub fn per_second(per_second: u32) -> RateLimiter {
        RateLimiter::new(f64::from(per_second), per_second.saturating_mul(2))
    }

    /// Whether this limiter is the one `rate-limit = per_second` describes (a reload may have
    /// changed the key).
    pub fn is_per_second(&self, per_second: u32) -> bool {
        self.rate == f64::from(per_second)
            && self.burst == f64::from(per_second.saturating_mul(2).max(1))
    }

    /// Takes one token for `source` at `now`; false when its bucket is empty.
    pub fn allow(&self, source: IpAddr, now: Instant) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= PRUNE_AT && !buckets.contains_key(&source) {
            let (rate, burst) = (self.rate, self.burst);
            // a bucket that has refilled completely carries no information
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < burst
            });
        }
        let b = buckets.entry(source).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.last = now.max(b.last);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Addresses currently tracked.
    pub fn tracked(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_refills() {
        let l = RateLimiter::new(2.0, 3);
        let a: IpAddr = "192.0.2.10".parse().unwrap();
        let b: IpAddr = "192.0.2.11".parse().unwrap();
        let t0 = Instant::now();
        assert!(l.allow(a, t0));
        assert!(l.allow(a, t0));
        assert!(l.allow(a, t0));
        assert!(!l.allow(a, t0));
        // another source has its own bucket
        assert!(l.allow(b, t0));
        // 2/s: one token after half a second
        assert!(l.allow(a, t0 + Duration::from_millis(500)));
        assert!(!l.allow(a, t0 + Duration::from_millis(500)));
        // never more than the burst
        let later = t0 + Duration::from_secs(100);
        assert!((0..3).all(|_| l.allow(a, later)));
        assert!(!l.allow(a, later));
    }

    #[test]
    fn knows_its_configuration() {
        assert!(RateLimiter::per_second(20).is_per_second(20));
        assert!(!RateLimiter::per_second(20).is_per_second(10));
        assert!(RateLimiter::per_second(0).is_per_second(0));
    }

    #[test]
    fn zero_rate_is_off() {
        let l = RateLimiter::per_second(0);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let t = Instant::now();
        assert!((0..1000).all(|_| l.allow(a, t)));
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn idle_buckets_are_pruned() {
        let l = RateLimiter::new(1.0, 1);
        let t0 = Instant::now();
        for i in 0..PRUNE_AT as u32 {
            assert!(l.allow(IpAddr::from(std::net::Ipv4Addr::from(0xc612_0000 + i)), t0));
        }
        assert_eq!(l.tracked(), PRUNE_AT);
        let later = t0 + Duration::from_secs(10);
        assert!(l.allow("198.51.100.1".parse().unwrap(), later));
        assert_eq!(l.tracked(), 1);
    }
}
