//! Rate-limited logging for faults that repeat once per packet (a journal that cannot be
//! written, an exhausted pool): the first occurrence is logged at once, then at most one line
//! per interval saying how many were left out
//!
//! Hand-written because it is a dozen lines: the rate-limiting crates (governor, …) meter
//! requests, and what a log line needs here is "first at once, then a count per interval".

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Default interval between two lines about the same fault.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// One fault's log budget. Cheap when nothing is logged; locks a mutex only on the fault path.
#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last: Option<Instant>,
    suppressed: u64,
}

impl State {
    fn check(&mut self, interval: Duration, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

impl LogLimiter {
    /// At most one line per `interval`.
    pub fn new(interval: Duration) -> LogLimiter {
        LogLimiter {
            interval,
            state: Mutex::new(State::default()),
        }
    }

    /// Called once per occurrence: `Some(n)` when this one should be logged, `n` being how many
    /// occurrences were left out since the last line; `None` when it should not.
    pub fn check(&self) -> Option<u64> {
        self.check_at(Instant::now())
    }

    /// [`check`](Self::check) at `now`.
    pub fn check_at(&self, now: Instant) -> Option<u64> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .check(self.interval, now)
    }

    /// Forgets the fault: its next occurrence is logged at once (call it when the fault is
    /// over, so a new episode is not hidden behind the old one's interval).
    pub fn reset(&self) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = State::default();
    }
}

impl Default for LogLimiter {
    fn default() -> LogLimiter {
        LogLimiter::new(LOG_INTERVAL)
    }
}

/// A [`LogLimiter`] per key (one per subnet, per interface, …). Keys are never forgotten: use
/// it for keys from the configuration, not from the network.
#[derive(Debug)]
pub struct KeyedLogLimiter<K> {
    interval: Duration,
    state: Mutex<HashMap<K, State>>,
}

impl<K: Eq + Hash> KeyedLogLimiter<K> {
    /// At most one line per key per `interval`.
    pub fn new(interval: Duration) -> KeyedLogLimiter<K> {
        KeyedLogLimiter {
            interval,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// As [`LogLimiter::check`], for `key`.
    pub fn check(&self, key: K) -> Option<u64> {
        self.check_at(key, Instant::now())
    }

    /// As [`LogLimiter::check_at`], for `key`.
    pub fn check_at(&self, key: K, now: Instant) -> Option<u64> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .check(self.interval, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_at_once_then_one_per_interval_with_the_count() {
        let l = LogLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(l.check_at(t0), Some(0));
        for s in 1..10 {
            assert_eq!(l.check_at(t0 + Duration::from_secs(s)), None);
        }
        assert_eq!(l.check_at(t0 + Duration::from_secs(10)), Some(9));
        assert_eq!(l.check_at(t0 + Duration::from_secs(11)), None);
        l.reset();
        assert_eq!(l.check_at(t0 + Duration::from_secs(12)), Some(0));
    }

    #[test]
    fn keys_have_their_own_budget() {
        let l = KeyedLogLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(l.check_at("a", t0), Some(0));
        assert_eq!(l.check_at("b", t0), Some(0));
        assert_eq!(l.check_at("a", t0), None);
        assert_eq!(l.check_at("a", t0 + Duration::from_secs(10)), Some(1));
    }
}
