//! systemd's notify protocol (sd_notify(3)): READY=1 after every bind, WATCHDOG=1, STOPPING=1
//!
//! Outside systemd (`NOTIFY_SOCKET` unset) every call does nothing. A message that cannot be
//! sent is logged once and otherwise ignored: systemd then declares the start failed or the
//! watchdog expired, which is the right outcome, and the appliance keeps serving meanwhile.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;

static WARNED: AtomicBool = AtomicBool::new(false);

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        if !WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %e, "cannot notify systemd (NOTIFY_SOCKET)");
        }
    }
}

/// `READY=1` with a one-line `STATUS=`: every socket is bound and every service serves.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// `RELOADING=1` with the monotonic time (systemd ≥ 253 wants it), before a SIGHUP reload;
/// follow with [`ready`] when it is done (or refused).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// `STOPPING=1`: shutdown has begun (services drain, lease commits finish).
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// `WATCHDOG=1`: the serving loop is alive. The daemon sends it from the loop that supervises
/// every service and handles signals, on the runtime the services run on: a stalled runtime or
/// a supervisor stuck in a reload stops the pings, and systemd restarts the service.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// How often to send `WATCHDOG=1`: half of `WatchdogSec=` (`WATCHDOG_USEC` for this pid), as
/// sd_watchdog_enabled(3) advises; `None` when systemd asked for no watchdog.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}
