//! DHCPv4 request → handler → reply, with the reply checked the way a strict client and relay
//! would read it (the oracle is `../oracle/dhcp4.rs`, shared with `cargo test`). The lease table
//! persists across inputs (cleared every `RESET_EVERY` inputs), so DISCOVER/REQUEST/DECLINE/
//! RELEASE sequences build real state; `now` moves forward by each request's `secs` field, so
//! offers and leases expire.
//!
//! Any violated invariant panics. Because a finding can depend on the inputs before it, the panic
//! hook also writes the packets handled since the last reset to
//! `target/dhcp4-history-<pid>.hex` (one hex packet a line, oldest first, the crashing
//! input excluded); replay with
//! `DHCP4_REPLAY=target/dhcp4-history-<pid>.hex cargo fuzz run dhcp4 <crash-file>`;
//! `DHCP4_TRACE=1` prints one line per handled request.
#![no_main]

#[path = "../oracle/dhcp4.rs"]
mod oracle;

use std::cell::RefCell;
use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use oracle::{hex, unhex, State, RESET_EVERY};

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::new());
    /// Decodable packets handled since the last reset, for the panic hook's replay file.
    static HISTORY: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

static INIT: Once = Once::new();

/// Chain a hook in front of libFuzzer's (which aborts), and replay `DHCP4_REPLAY` if set.
fn init() {
    let next = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let lines = HISTORY.with(|h| {
            h.try_borrow()
                .map(|h| h.iter().map(|p| hex(p) + "\n").collect::<String>())
                .unwrap_or_default()
        });
        // not in artifacts/: `cargo fuzz tmin` takes the newest file there for its result
        let dir = if std::path::Path::new("target").is_dir() {
            "target/"
        } else {
            ""
        };
        let path = format!("{dir}dhcp4-history-{}.hex", std::process::id());
        if !lines.is_empty() && std::fs::write(&path, &lines).is_ok() {
            eprintln!(
                "dhcp4: {} packet(s) since the last lease-table reset written to {path}",
                lines.lines().count()
            );
        }
        next(info);
    }));
    if let Ok(path) = std::env::var("DHCP4_REPLAY") {
        let text = std::fs::read_to_string(&path).expect("DHCP4_REPLAY file");
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let packet = unhex(line.trim());
                s.step(&packet);
                HISTORY.with(|h| h.borrow_mut().push(packet));
            }
        });
    }
}

fuzz_target!(|data: &[u8]| {
    INIT.call_once(init);
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.inputs += 1;
        if s.inputs % RESET_EVERY == 0 {
            s.reset();
            HISTORY.with(|h| h.borrow_mut().clear());
        }
        if s.step(data) {
            HISTORY.with(|h| h.borrow_mut().push(data.to_vec()));
        }
    });
});

