//! Every committed fuzz seed through the fuzz oracles, as `cargo test` runs them: the DHCPv4
//! and DHCPv6 seeds in name order through one oracle state each (as a fuzzing run replays
//! them), each config seed through `config::load_str`. A seed that once crashed the target (`f1-…`, `f2-…`) fails
//! here if the bug comes back.

#[path = "fuzz/oracle/cms.rs"]
mod cms_oracle;
#[path = "fuzz/oracle/dhcp4.rs"]
mod oracle;
#[path = "fuzz/oracle/dhcp6.rs"]
mod oracle6;

use std::path::{Path, PathBuf};

fn seeds(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/seeds")
        .join(kind);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn every_dhcp4_seed_passes_the_oracle() {
    let files = seeds("dhcp4");
    assert!(files.len() >= 20, "seeds missing: {files:?}");
    let mut state = oracle::State::new();
    let mut handled = 0;
    for f in &files {
        let data = std::fs::read(f).unwrap();
        // a panic names the seed through the test's output
        eprintln!("seed {}", f.display());
        handled += usize::from(state.step(&data));
    }
    // a seed that no longer decodes would silently stop testing anything
    assert!(
        handled * 10 >= files.len() * 9,
        "{handled} of {} seeds decoded",
        files.len()
    );
}

#[test]
fn every_config_seed_loads_or_is_refused_without_panic() {
    let files = seeds("config");
    assert!(!files.is_empty());
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let r = sztp_redirector::config::load_str(Path::new("fuzz.toml"), &text);
        assert!(r.is_ok(), "{}: {}", f.display(), r.unwrap_err());
    }
}

#[test]
fn every_cms_seed_passes_the_oracle() {
    let files = seeds("cms");
    assert!(files.len() >= 8, "seeds missing: {files:?}");
    let mut opened = 0;
    for f in &files {
        let data = std::fs::read(f).unwrap();
        eprintln!("seed {}", f.display());
        opened += usize::from(cms_oracle::check(&data));
    }
    // the signed seeds (voucher, conveyed information, certs-only) must keep opening
    assert!(
        opened >= 5,
        "{opened} of {} seeds opened as SignedData",
        files.len()
    );
}

#[test]
fn every_dhcp6_seed_passes_the_oracle() {
    let files = seeds("dhcp6");
    assert!(files.len() >= 20, "seeds missing: {files:?}");
    let mut state = oracle6::State::new();
    state.trace = std::env::var_os("DHCP6_TRACE").is_some();
    let mut handled = 0;
    for f in &files {
        eprintln!("seed {}", f.display());
        handled += usize::from(state.step(&std::fs::read(f).unwrap()));
    }
    // all but the malformed seed decode and reach the handler
    assert_eq!(handled, files.len() - 1);
    // and again from a clean state in reverse order: no seed depends on another to be safe
    let mut state = oracle6::State::new();
    for f in files.iter().rev() {
        state.step(&std::fs::read(f).unwrap());
    }
}

#[test]
fn every_lease_journal_seed_replays_or_is_refused_and_lists_escaped() {
    use sztp_redirector::dhcp::lease_store::{records_from_bytes, render_leases};
    use sztp_redirector::dhcp::leases::Lease4;
    let files = seeds("lease_journal");
    assert!(files.len() >= 4, "seeds missing: {files:?}");
    let mut replayed = 0;
    for f in files {
        let data = std::fs::read(&f).unwrap();
        eprintln!("seed {}", f.display());
        let Ok(leases) = records_from_bytes::<Lease4>(Path::new("leases4.journal"), &data) else {
            continue;
        };
        replayed += 1;
        for json in [false, true] {
            let mut out = Vec::new();
            render_leases(&leases, json, 1_800_000_000, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(
                text.chars()
                    .all(|c| c == '\n' || !sztp_redirector::text::needs_escape(c)),
                "{}: unescaped text in {text:?}",
                f.display()
            );
        }
    }
    // the valid, torn-tail and long-client-id seeds replay; the bad checksum is refused
    assert!(replayed >= 3, "only {replayed} seeds replayed");
}
