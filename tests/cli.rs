//! The command line itself: usage errors exit 2 with a message (never a panic), and the
//! committed man page is what the clap definitions generate.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sztp-redirector");

#[test]
fn a_client_id_that_is_not_hex_is_a_usage_error_not_a_panic() {
    for bad in ["0xaéb", "0xabc", "0xzz"] {
        let out = Command::new(BIN)
            .args(["probe", "--relay", "127.0.0.1:9", "--client-id", bad])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(
            err.contains(&format!(
                "invalid value '{bad}' for '--client-id <CLIENT_ID>': \"{bad}\": after 0x give hex digits, two per octet"
            )),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// The man page as the clap definitions give it: the main page (name, synopsis, description,
/// options, subcommands, the exit status, signals and files of the long help), then each
/// subcommand's synopsis and options.
fn man_page() -> Vec<u8> {
    use clap::CommandFactory;
    let cmd = sztp_redirector::cli::Cli::command();
    let mut out = Vec::new();
    let man = clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("System Administration");
    // one page: the subcommands are sections here, not references to pages that do not exist
    man.render_title(&mut out).unwrap();
    man.render_name_section(&mut out).unwrap();
    man.render_synopsis_section(&mut out).unwrap();
    man.render_description_section(&mut out).unwrap();
    man.render_options_section(&mut out).unwrap();
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("sztp-redirector {}", sub.get_name());
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        out.extend_from_slice(
            format!(
                ".SH \"{}\"\n{}\n",
                name.to_uppercase().replace('-', "\\-"),
                about.replace('-', "\\-")
            )
            .as_bytes(),
        );
        let m = clap_mangen::Man::new(sub.clone().bin_name(name));
        m.render_synopsis_section(&mut out).unwrap();
        m.render_options_section(&mut out).unwrap();
    }
    man.render_extra_section(&mut out).unwrap();
    man.render_version_section(&mut out).unwrap();
    out
}

#[test]
fn the_committed_man_page_is_generated_from_the_cli() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/man/sztp-redirector.8");
    let want = man_page();
    if std::env::var("SZTP_UPDATE_MAN").as_deref() == Ok("1") {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read(&path).unwrap();
    assert!(
        have == want,
        "{} is stale: regenerate with SZTP_UPDATE_MAN=1 cargo test --test cli",
        path.display()
    );
    let text = String::from_utf8(want).unwrap();
    for sub in ["run", "check-config", "leases", "probe"] {
        let heading = format!(
            ".SH \"SZTP\\-REDIRECTOR {}\"",
            sub.to_uppercase().replace('-', "\\-")
        );
        assert!(text.contains(&heading), "{sub} missing");
    }
    // it says what is served and does not promise the rest
    assert!(text.contains("option 143"));
    assert!(text.contains("RESTCONF redirect server over HTTPS"));
    assert!(text.contains("[status] serves the operator\\*(Aqs status page"));
    assert!(text.contains("option 136 (DHCPv6)"));
    assert!(!text.contains("not served yet"));
    assert!(text.contains("SZTP DNS records"));
}
