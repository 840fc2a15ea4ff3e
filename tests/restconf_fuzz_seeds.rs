//! Every committed seed of the `restconf` fuzz target (tests/fuzz/seeds/restconf) through the
//! same check the fuzzer runs, so `cargo test` replays them (and any finding kept there).

#![allow(dead_code)]

include!("fuzz/fuzz_targets/restconf_check.rs");

#[test]
fn restconf_fuzz_seeds_pass_the_check() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz/seeds/restconf");
    let snapshot = fuzz_snapshot();
    let mut n = 0;
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let data = std::fs::read(&f).unwrap();
        let r = std::panic::catch_unwind(|| check(&snapshot, &data));
        assert!(r.is_ok(), "seed {} fails the check", f.display());
        n += 1;
    }
    assert!(n >= 20, "only {n} seeds in {dir}");
}
