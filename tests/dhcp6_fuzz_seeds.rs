//! Every DHCPv6 fuzz seed (`tests/fuzz/seeds/dhcp6/`) through the fuzz target's own checks
//! (`tests/fuzz/fuzz_targets/dhcp6_check.rs`), in order, with the bindings kept between them, so
//! `cargo test` replays the corpus and every past finding.

#[path = "fuzz/fuzz_targets/dhcp6_check.rs"]
mod dhcp6_check;

use std::path::Path;

#[test]
fn every_seed_passes_the_fuzz_checks() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/seeds/dhcp6");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 20, "seeds missing in {}", dir.display());
    let mut state = dhcp6_check::State::new();
    state.trace = std::env::var_os("DHCP6_TRACE").is_some();
    let mut handled = 0;
    for f in &files {
        let data = std::fs::read(f).unwrap();
        if state.step(&data) {
            handled += 1;
        }
    }
    // all but the malformed seed decode and reach the handler
    assert_eq!(handled, files.len() - 1);
    // and again from a clean state in reverse order: no seed depends on another to be safe
    let mut state = dhcp6_check::State::new();
    for f in files.iter().rev() {
        state.step(&std::fs::read(f).unwrap());
    }
}
