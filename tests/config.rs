//! Every shipped and fixture configuration loads; every bad fixture fails with its exact message

use std::fs;
use std::path::{Path, PathBuf};

use sztp_redirector::config::{load, load_str};
use toml::{Table, Value};

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

fn toml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(Path::new(MANIFEST).join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .toml files in {dir}");
    files
}

fn good_files() -> Vec<PathBuf> {
    let mut files = toml_files("config");
    files.extend(toml_files("tests/fixtures/config/good"));
    files
}

#[test]
fn good_configs_load() {
    for f in good_files() {
        if let Err(e) = load(&f) {
            panic!("{} should load:\n{e}", f.display());
        }
    }
}

#[test]
fn shared_reference_config_loads_and_matches_the_fixture_copy() {
    let shared = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/design/config-reference.toml"
    ));
    if !shared.exists() {
        return;
    }
    if let Err(e) = load(shared) {
        panic!("{e}");
    }
    let copy = Path::new(MANIFEST).join("tests/fixtures/config/good/reference.toml");
    assert_eq!(
        fs::read_to_string(shared).unwrap(),
        fs::read_to_string(copy).unwrap(),
        "tests/fixtures/config/good/reference.toml is out of date with the shared reference"
    );
}

#[test]
fn reference_config_model() {
    let path = Path::new(MANIFEST).join("tests/fixtures/config/good/reference.toml");
    let c = load(&path).unwrap();
    assert_eq!(c.bootstrap_servers.len(), 2);
    assert_eq!(c.rules.len(), 3);
    assert_eq!(c.rules[0].redirect_to[1].name, "owner-backup");
    assert_eq!(c.rules[0].matches.mac.len(), 1);
    let d4 = c.dhcp4.as_ref().unwrap();
    assert_eq!(d4.interfaces, ["eth1"]);
    assert_eq!((d4.port, d4.client_port), (67, 68));
    assert_eq!(d4.subnets[0].pools[0].size(), 100);
    assert_eq!(d4.subnets[0].domain_search, ["staging.example.com"]);
    assert_eq!(d4.subnets[0].reservations.len(), 1);
    assert_eq!(c.dhcp6.as_ref().unwrap().port, 547);
    let dns = c.dns.as_ref().unwrap();
    assert_eq!(dns.hosts[0].1.len(), 2);
    assert!(dns.mdns.is_some());
    assert_eq!(c.appliance.journal_max_bytes, 16 << 20);
    assert!(c.policy().advertise.is_some());
}

#[test]
fn conformance_model() {
    use sztp_redirector::policy::{UriEncoding, UriForm};
    let path = Path::new(MANIFEST).join("tests/fixtures/config/good/conformance.toml");
    let c = load(&path).unwrap();
    assert!(
        c.rules[0].redirect_to.is_empty(),
        "redirect-to = [] is allowed"
    );
    assert_eq!(
        (c.rules[1].encoding, c.rules[1].form),
        (UriEncoding::Text, UriForm::HostPort)
    );
    let d4 = c.dhcp4.as_ref().unwrap();
    assert!(d4.authoritative);
    assert!(
        d4.subnets[0].authoritative,
        "inherits [dhcp4] authoritative"
    );
    assert!(!d4.subnets[1].authoritative, "the subnet's own value wins");
    assert_eq!(
        d4.subnets[1].reservations[0].hostname.as_deref(),
        Some("switch-1")
    );
    // absent everywhere: not authoritative (RFC 2131 §4.3.2 silence, as Kea and ISC dhcpd)
    let q = load(&Path::new(MANIFEST).join("config/quickstart.toml")).unwrap();
    assert!(!q.dhcp4.unwrap().subnets[0].authoritative);
}

#[test]
fn quickstart_model() {
    let c = load(&Path::new(MANIFEST).join("config/quickstart.toml")).unwrap();
    assert_eq!(c.appliance.state_dir, Path::new("target/quickstart-state"));
    let d4 = c.dhcp4.unwrap();
    assert_eq!(
        (d4.interfaces.as_slice(), d4.port),
        (&["lo".to_string()][..], 6767)
    );
    let d6 = c.dhcp6.unwrap();
    assert_eq!(
        (d6.interfaces.as_slice(), d6.port),
        (&["lo".to_string()][..], 6547)
    );
    assert!(c.redirect_server.is_none());
    let dns = c.dns.unwrap();
    assert_eq!(dns.listen, ["127.0.0.1:8053".parse().unwrap()]);
    assert!(dns.mdns.is_none());
    assert_eq!(c.rules[0].redirect_to.len(), 2);
}

#[test]
fn safe_default_serves_nothing() {
    let c = load(&Path::new(MANIFEST).join("config/sztp-redirector.toml")).unwrap();
    assert!(c.redirect_server.is_none());
    assert!(c.dhcp4.is_none() && c.dhcp6.is_none() && c.dns.is_none() && c.status.is_none());
}

/// Set `BLESS=1` to rewrite the `.expected` files; review the diff before committing.
#[test]
fn bad_configs_fail_with_their_expected_messages() {
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    for f in toml_files("tests/fixtures/config/bad") {
        let name = f.file_name().unwrap().to_str().unwrap();
        let shown = PathBuf::from("tests/fixtures/config/bad").join(name);
        let text = fs::read_to_string(&f).unwrap();
        let got = match load_str(&shown, &text) {
            Ok(_) => format!("{name}: loaded, but should fail\n"),
            Err(e) => format!("{e}\n"),
        };
        let expected_path = f.with_extension("expected");
        if bless {
            fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        if got != expected {
            failures.push(format!("{name}:\n--- expected\n{expected}--- got\n{got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_expected_file_has_its_fixture() {
    let dir = Path::new(MANIFEST).join("tests/fixtures/config/bad");
    for e in fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "expected") {
            assert!(
                p.with_extension("toml").exists(),
                "{} has no .toml",
                p.display()
            );
        }
    }
}

#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

/// Paths to every table of `t`: sections, array-of-tables elements, dotted tables like `match`.
/// Free-form maps (`dns.hosts`) are not part of the schema and are skipped.
fn table_paths(t: &Table, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(here.clone());
    for (k, v) in t {
        if k == "hosts" && matches!(here.as_slice(), [Step::Key(s)] if s == "dns") {
            continue;
        }
        here.push(Step::Key(k.clone()));
        value_paths(v, here, out);
        here.pop();
    }
}

fn value_paths(v: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match v {
        Value::Table(t) => table_paths(t, here, out),
        Value::Array(a) => {
            for (i, e) in a.iter().enumerate() {
                here.push(Step::Index(i));
                value_paths(e, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn table_at<'a>(root: &'a mut Table, path: &[Step]) -> &'a mut Table {
    let mut v: &mut Value = match path.first() {
        None => return root,
        Some(Step::Key(k)) => root.get_mut(k).unwrap(),
        Some(Step::Index(_)) => unreachable!("a document is a table"),
    };
    for s in &path[1..] {
        v = match s {
            Step::Key(k) => v.as_table_mut().unwrap().get_mut(k).unwrap(),
            Step::Index(i) => v.as_array_mut().unwrap().get_mut(*i).unwrap(),
        };
    }
    v.as_table_mut().unwrap()
}

#[test]
fn an_unknown_key_is_refused_in_every_table_of_every_good_config() {
    let mut checked = 0;
    for f in good_files() {
        let text = fs::read_to_string(&f).unwrap();
        let root: Table = text.parse().unwrap();
        let mut paths = Vec::new();
        table_paths(&root, &mut Vec::new(), &mut paths);
        for p in paths {
            let mut doc = root.clone();
            table_at(&mut doc, &p).insert("bogus-key".into(), Value::Integer(1));
            let mutated = toml::to_string(&doc).unwrap();
            match load_str(&f, &mutated) {
                Ok(_) => panic!("{}: bogus-key accepted at {p:?}:\n{mutated}", f.display()),
                Err(e) => assert!(
                    e.to_string().contains("bogus-key"),
                    "{}: error at {p:?} does not name bogus-key: {e}",
                    f.display()
                ),
            }
            checked += 1;
        }
    }
    assert!(checked > 30, "only {checked} tables checked");
}

/// A file over 16 MiB is refused before it is read (a 50 MB file took 1.3 GB of memory to be
/// rejected), and so is a stream that goes past the limit.
#[test]
fn files_over_16_mib_are_refused_without_reading_them() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.toml");
    // comments only: a valid, empty configuration, were it read
    let line = format!("#{}\n", "x".repeat(1022));
    let mut text = line.repeat(16 * 1024);
    text.push('\n');
    fs::write(&big, &text).unwrap();
    let e = load(&big).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: 16777217 bytes: a configuration file may have at most 16777216 (16 MiB)",
            big.display()
        )
    );
    let e = load(Path::new("/dev/zero")).unwrap_err().to_string();
    assert_eq!(
        e,
        "/dev/zero: 16777217 bytes or more: a configuration file may have at most 16777216 (16 MiB)"
    );
    // at the limit it is read
    text.pop();
    fs::write(&big, &text).unwrap();
    load(&big).unwrap();
}
