//! DHCPv6 datagram (relay nesting included) → decode → handler → reply, checked the way a
//! strict client and each relay would read it (the oracle is `../oracle/dhcp6.rs`, shared with `cargo test`). The bindings persist
//! across inputs (cleared every `RESET_EVERY` inputs); the panic hook writes the inputs since
//! the last reset to `target/dhcp6-history-<pid>.hex` for replay with `DHCP6_REPLAY=…`;
//! `DHCP6_TRACE=1` prints one line per handled input.
#![no_main]

use std::cell::RefCell;
use std::sync::Once;

use libfuzzer_sys::fuzz_target;

#[path = "../oracle/dhcp6.rs"]
mod oracle;

use oracle::{hex, State};

/// Inputs between two clears of the bindings (bounds their size and the replay history).
const RESET_EVERY: u64 = 256;

thread_local! {
    static STATE: RefCell<(State, u64)> = RefCell::new((State::new(), 0));
    static HISTORY: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

static INIT: Once = Once::new();

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

fn init() {
    let next = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let lines = HISTORY.with(|h| {
            h.try_borrow()
                .map(|h| h.iter().map(|p| hex(p) + "\n").collect::<String>())
                .unwrap_or_default()
        });
        let dir = if std::path::Path::new("target").is_dir() { "target/" } else { "" };
        let path = format!("{dir}dhcp6-history-{}.hex", std::process::id());
        if !lines.is_empty() && std::fs::write(&path, &lines).is_ok() {
            eprintln!("dhcp6: inputs since the last reset written to {path}");
        }
        next(info);
    }));
    STATE.with(|s| s.borrow_mut().0.trace = std::env::var_os("DHCP6_TRACE").is_some());
    if let Ok(path) = std::env::var("DHCP6_REPLAY") {
        let text = std::fs::read_to_string(&path).expect("DHCP6_REPLAY file");
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let input = unhex(line.trim());
                s.0.step(&input);
                HISTORY.with(|h| h.borrow_mut().push(input));
            }
        });
    }
}

fuzz_target!(|data: &[u8]| {
    INIT.call_once(init);
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.1 += 1;
        if s.1 % RESET_EVERY == 0 {
            s.0.reset();
            HISTORY.with(|h| h.borrow_mut().clear());
        }
        if s.0.step(data) {
            HISTORY.with(|h| h.borrow_mut().push(data.to_vec()));
        }
    });
});
