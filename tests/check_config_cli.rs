//! `sztp-redirector check-config FILE`: exit 0 and `FILE: ok`, or exit 78 and every error

use std::process::Command;

fn check_config(file: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sztp-redirector"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["check-config", file])
        .output()
        .expect("run sztp-redirector")
}

#[test]
fn good_file_exits_0() {
    let out = check_config("config/quickstart.toml");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "config/quickstart.toml: ok\n"
    );
    assert!(out.stderr.is_empty(), "{out:?}");
}

#[test]
fn bad_file_exits_78_with_every_error() {
    let file = "tests/fixtures/config/bad/several-errors.toml";
    let out = check_config(file);
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let expected = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/config/bad/several-errors.expected"),
    )
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), expected);
    assert!(out.stdout.is_empty(), "{out:?}");
}

#[test]
fn missing_file_exits_78() {
    let out = check_config("tests/fixtures/config/no-such-file.toml");
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("tests/fixtures/config/no-such-file.toml: cannot read:"),
        "{err}"
    );
}
