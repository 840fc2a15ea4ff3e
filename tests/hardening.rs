//! Issue 6, faults under which the appliance used to break: each fault is a test with the real
//! binary (and real peers in throwaway namespaces where the fault is about delivery or
//! privileges). Needs root; without it every test prints SKIP (or fails when
//! SZTP_REQUIRE_PRIVILEGED_TESTS=1).
//!
//! `SZTP_HARDEN_BIN=/path/to/sztp-redirector` runs the same tests against another build of the
//! binary, to see them fail on one without the fixes.

mod common;

use std::net::Ipv4Addr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

fn bin() -> String {
    std::env::var("SZTP_HARDEN_BIN").unwrap_or_else(|_| BIN.to_string())
}

/// How long a daemon that must refuse to start may take to exit; hitting it means it did not.
const EXIT_WAIT: Duration = Duration::from_secs(20);

const POOL_SUBNET: &str = r#"[[dhcp4.subnet]]
subnet = "198.51.100.0/24"
pools = ["198.51.100.100-198.51.100.199"]
routers = ["198.51.100.1"]
lease-time = "1h"
"#;

/// A config with state-dir `state`, one rule to URI1, and `[dhcp4]` on `iface` (`extra_dhcp4`
/// appended to the section) with `subnets`.
fn config(state: &Path, iface: &str, extra_dhcp4: &str, subnets: &str) -> String {
    format!(
        "[appliance]\nstate-dir = \"{}\"\n\n[[bootstrap-server]]\nname = \"sztp1\"\nuri = \"{URI1}\"\n\n\
         [[rule]]\nname = \"default\"\nredirect-to = [\"sztp1\"]\nvia = \"direct\"\n\n\
         [dhcp4]\ninterfaces = [\"{iface}\"]\n{extra_dhcp4}\n{subnets}",
        state.display()
    )
}

/// `sztp-redirector run --config FILE` in `ns` (or this namespace), RUST_LOG=debug, output
/// collected.
fn start(ns: Option<&Netns>, config: &Path) -> Child {
    let b = bin();
    let args = [
        "env",
        "RUST_LOG=debug",
        b.as_str(),
        "run",
        "--config",
        config.to_str().unwrap(),
    ];
    match ns {
        Some(ns) => ns.spawn(&args, Duration::from_secs(600)),
        None => Child::spawn(&args, Duration::from_secs(600)),
    }
}

/// [`start`], then waits for `n` `listening for dhcp4` lines.
fn start_serving(ns: Option<&Netns>, config: &Path, n: usize) -> Child {
    let c = start(ns, config);
    assert!(
        c.wait_for_lines("listening for dhcp4", n, Duration::from_secs(20))
            && c.wait_for_lines("lease journal replayed", 1, Duration::from_secs(20)),
        "server did not start:\n{}",
        c.output_text()
    );
    c
}

/// [`start`] of a daemon that must refuse to start: its exit code and output.
fn start_refused(ns: Option<&Netns>, config: &Path) -> (Option<i32>, String) {
    let mut c = start(ns, config);
    let st = c.wait_exit(EXIT_WAIT);
    let out = c.output_text();
    assert!(
        st.is_some(),
        "still running, it should have refused:\n{out}"
    );
    (st.and_then(|s| s.code()), out)
}

/// A temporary directory every user can traverse (the daemon may run as nobody).
fn open_tempdir() -> tempfile::TempDir {
    let d = tempfile::Builder::new().prefix("sztpt-").tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

fn status_line(pid: u32, key: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
        .split_once(':')
        .unwrap()
        .1
        .trim()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Fault 1: state files reached through links, a state-dir others can write, privileges left.

#[test]
fn state_files_reached_through_links_are_refused_and_their_targets_untouched() {
    if !require_root_or_skip(
        "state_files_reached_through_links_are_refused_and_their_targets_untouched",
    ) {
        return;
    }
    let net = NetnsPair::new("links");
    for name in ["lock", "devices.jsonl", "leases4.journal"] {
        let tmp = open_tempdir();
        let victim = write(&tmp.path().join("victim"), "root data\n");
        let planted = tmp.path().join("planted");
        let state = tmp.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
        // a link to an existing root file, and a dangling one root would create
        let target = if name == "lock" { &planted } else { &victim };
        std::os::unix::fs::symlink(target, state.join(name)).unwrap();
        let cfg = write(
            &tmp.path().join("c.toml"),
            &config(&state, &net.server_if, "", POOL_SUBNET),
        );
        let (code, out) = start_refused(Some(&net.server), &cfg);
        assert_eq!(code, Some(1), "{name}:\n{out}");
        assert!(
            out.contains(&format!(
                "{} is a symbolic link: not following it",
                state.join(name).display()
            )),
            "{name}:\n{out}"
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root data\n");
        assert!(!planted.exists(), "{name}: root created the link's target");
    }
}

#[test]
fn a_linked_shared_or_foreign_state_dir_is_refused() {
    if !require_root_or_skip("a_linked_shared_or_foreign_state_dir_is_refused") {
        return;
    }
    let net = NetnsPair::new("statedir");
    let tmp = open_tempdir();
    let real = tmp.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let run = |state: &Path| {
        let cfg = write(
            &tmp.path().join("c.toml"),
            &config(state, &net.server_if, "", POOL_SUBNET),
        );
        start_refused(Some(&net.server), &cfg)
    };

    let (code, out) = run(&link);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("{} is a symbolic link", link.display())),
        "{out}"
    );

    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, out) = run(&real);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("is writable by group and others (mode 0777)"),
        "{out}"
    );

    // root without appliance.user, in a directory another user owns (and could fill with links)
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&real, Some(65534), Some(65534)).unwrap();
    let (code, out) = run(&real);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("belongs to nobody (uid 65534), not to root (uid 0)"),
        "{out}"
    );
    assert!(!real.join("lock").exists(), "refused before touching it");
}

/// Root drops to `nobody`: afterwards nothing it could execute regains a privilege (bounding
/// set empty, no-new-privs), and links that `nobody` plants in its state-dir are not followed
/// by root at the next start.
#[test]
fn after_dropping_to_the_service_user_no_privilege_comes_back() {
    if !require_root_or_skip("after_dropping_to_the_service_user_no_privilege_comes_back") {
        return;
    }
    let net = NetnsPair::new("dropped");
    let tmp = open_tempdir();
    let state = tmp.path().join("state");
    let rootdir = tmp.path().join("root-only");
    std::fs::create_dir(&rootdir).unwrap();
    let victim = write(&rootdir.join("victim"), "root data\n");
    let cfg = write(
        &tmp.path().join("c.toml"),
        &config(&state, &net.server_if, "", POOL_SUBNET)
            .replace("[appliance]\n", "[appliance]\nuser = \"nobody\"\n"),
    );
    let srv = start_serving(Some(&net.server), &cfg, 1);
    assert!(
        srv.wait_for_lines("running as nobody", 1, Duration::from_secs(10)),
        "{}",
        srv.output_text()
    );
    let pid = srv.pid().expect("daemon pid");
    assert!(
        status_line(pid, "Uid:")
            .split_whitespace()
            .all(|u| u == "65534"),
        "{}",
        status_line(pid, "Uid:")
    );
    assert_eq!(status_line(pid, "CapBnd:"), "0000000000000000");
    assert_eq!(status_line(pid, "NoNewPrivs:"), "1");
    assert_eq!(status_line(pid, "CapInh:"), "0000000000000000");
    assert_eq!(status_line(pid, "CapAmb:"), "0000000000000000");
    // CAP_NET_BIND_SERVICE (10) and CAP_NET_RAW (13), for a reload, and nothing else
    assert_eq!(status_line(pid, "CapEff:"), "0000000000002400");
    // and it still serves a real client
    let r = run_udhcpc(&net.client, &net.client_if, &[]);
    assert!(in_pool(r.ip()), "{}", r.ip());
    drop(srv);
    for f in ["", "lock", "leases4.journal", "devices.jsonl"] {
        assert_eq!(
            std::fs::metadata(state.join(f)).unwrap().uid(),
            65534,
            "{f} not given to nobody"
        );
    }

    // nobody replaces its files with links to root's files
    let planted = rootdir.join("planted");
    for (name, target) in [("lock", &planted), ("devices.jsonl", &victim)] {
        run_ok(&[
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "ln",
            "-sfn",
            target.to_str().unwrap(),
            state.join(name).to_str().unwrap(),
        ]);
    }
    let (code, out) = start_refused(Some(&net.server), &cfg);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("lock is a symbolic link"), "{out}");
    assert!(!planted.exists(), "root followed nobody's link");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root data\n");
    assert_eq!(std::fs::metadata(&victim).unwrap().uid(), 0);
}

fn in_pool(ip: Ipv4Addr) -> bool {
    (u32::from(Ipv4Addr::new(198, 51, 100, 100))..=u32::from(Ipv4Addr::new(198, 51, 100, 199)))
        .contains(&u32::from(ip))
}

// ---------------------------------------------------------------------------------------------
// Fault 2: a second daemon on the same interface and port.

/// dhcrelay in the relay namespace of `topo`, forwarding to the server; killed on drop.
fn start_dhcrelay(topo: &RelayTopology) -> (Child, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let pidf = tmp.path().join("dhcrelay.pid");
    let relay = topo.relay.spawn(
        &[
            "dhcrelay",
            "-4",
            "-d",
            "-pf",
            pidf.to_str().unwrap(),
            "-id",
            &topo.relay_down_if,
            "-iu",
            &topo.relay_up_if,
            NetnsPair::SERVER_ADDR,
        ],
        Duration::from_secs(300),
    );
    let ready = relay.wait_for_lines("Sending on", 1, Duration::from_secs(10));
    assert!(ready, "dhcrelay did not start:\n{}", relay.output_text());
    (relay, tmp)
}

const RELAYED_SUBNET: &str = r#"[[dhcp4.subnet]]
subnet = "192.0.2.0/24"
pools = ["192.0.2.100-192.0.2.199"]
routers = ["192.0.2.1"]
lease-time = "1h"
"#;

#[test]
fn a_second_daemon_on_the_same_interface_and_port_fails_and_the_first_keeps_serving() {
    if !require_root_or_skip(
        "a_second_daemon_on_the_same_interface_and_port_fails_and_the_first_keeps_serving",
    ) {
        return;
    }
    let topo = RelayTopology::new("twodaemons");
    let tmp = open_tempdir();
    let cfg_a = write(
        &tmp.path().join("a.toml"),
        &config(&tmp.path().join("a"), &topo.server_if, "", RELAYED_SUBNET),
    );
    let a = start_serving(Some(&topo.server), &cfg_a, 1);
    let cfg_b = write(
        &tmp.path().join("b.toml"),
        &config(&tmp.path().join("b"), &topo.server_if, "", RELAYED_SUBNET),
    );
    let (code, out) = start_refused(Some(&topo.server), &cfg_b);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "dhcp4: cannot listen on interface {0}: UDP port 67 on {0} is in use by another \
             process",
            topo.server_if
        )),
        "{out}"
    );

    // relayed (unicast) traffic still reaches the first daemon
    let (_relay, _rt) = start_dhcrelay(&topo);
    let ip = run_udhcpc(&topo.client, &topo.client_if, &[]).ip();
    let leases = leases_json(&tmp.path().join("a"));
    assert!(
        leases
            .iter()
            .any(|l| lease_addr(l) == Some(&ip.to_string())),
        "{ip} not in the first daemon's journal: {leases:?}"
    );

    // a reload that binds the interface anew (another interface joins) still works: only this
    // process may share the port, for the instant of the rebind
    let (extra, peer) = (
        format!("{}x", topo.server_if),
        format!("{}y", topo.server_if),
    );
    topo.server
        .ip(&["link", "add", &extra, "type", "veth", "peer", "name", &peer]);
    topo.server.ip(&["link", "set", &peer, "up"]);
    topo.server.ip(&["link", "set", &extra, "up"]);
    topo.server.wait_link_up(&extra);
    topo.server.add_addr(&extra, "198.18.0.1/24");
    write(
        &cfg_a,
        &config(&tmp.path().join("a"), &topo.server_if, "", RELAYED_SUBNET).replace(
            &format!("interfaces = [\"{}\"]", topo.server_if),
            &format!("interfaces = [\"{}\", \"{extra}\"]", topo.server_if),
        ),
    );
    a.signal("HUP");
    assert!(
        a.wait_for_lines("configuration reloaded", 1, Duration::from_secs(20)),
        "{}",
        a.output_text()
    );
    assert!(
        a.wait_for_lines("listening for dhcp4", 3, Duration::from_secs(5)),
        "{}",
        a.output_text()
    );
    let again = run_udhcpc(
        &topo.client,
        &topo.client_if,
        &["-x", "0x3d:01020000000077"],
    )
    .ip();
    assert_ne!(again, ip, "a second client, a second lease");
    // and the port is still the first daemon's alone
    let (code, out) = start_refused(Some(&topo.server), &cfg_b);
    assert_eq!(code, Some(1), "{out}");
}

// ---------------------------------------------------------------------------------------------
// Fault 3: a lease journal that cannot be written stops ACKs; they must resume by themselves.

/// A small ext4 file system mounted on a fresh directory (a loop device; ext4 enforces `chattr
/// +i` on descriptors already open, which tmpfs does not); unmounted on drop.
struct Ext4 {
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Ext4 {
    fn new() -> Ext4 {
        let tmp = open_tempdir();
        let img = tmp.path().join("fs.img");
        let dir = tmp.path().join("mnt");
        std::fs::create_dir(&dir).unwrap();
        run_ok(&["truncate", "-s", "8M", img.to_str().unwrap()]);
        run_ok(&["mkfs.ext4", "-q", "-F", img.to_str().unwrap()]);
        run_ok(&[
            "mount",
            "-o",
            "loop",
            img.to_str().unwrap(),
            dir.to_str().unwrap(),
        ]);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        Ext4 { dir, _tmp: tmp }
    }
}

impl Ext4 {
    /// Fills the file system up with `file`: big blocks first, then the last 1 KiB blocks.
    fn fill(&self, file: &Path) {
        for bs in ["bs=64k", "bs=1k"] {
            let _ = run_cmd(
                &[
                    "dd",
                    "if=/dev/zero",
                    &format!("of={}", file.display()),
                    "oflag=append",
                    "conv=notrunc",
                    bs,
                ],
                CMD_TIMEOUT,
            );
        }
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = run_cmd(&["umount", "-l", self.dir.to_str().unwrap()], CMD_TIMEOUT);
    }
}

/// udhcpc with client-id `01:..:n`: the address it got, or None.
fn udhcpc_lease(net: &NetnsPair, n: u8) -> Option<Ipv4Addr> {
    let r = run_udhcpc(
        &net.client,
        &net.client_if,
        &["-x", &format!("0x3d:010200000000{n:02x}")],
    );
    last_event(&r.events, &["bound"]).map(|m| m["ip"].parse().unwrap())
}

fn journal_has(state: &Path, ip: Ipv4Addr) -> bool {
    leases_json(state)
        .iter()
        .any(|l| lease_addr(l) == Some(&ip.to_string()))
}

fn count_lines(c: &Child, needle: &str) -> usize {
    c.lines().iter().filter(|l| l.contains(needle)).count()
}

/// The journal cannot be written and cannot be cut back either (immutable), then the disk is
/// full: no ACK leaves meanwhile, the error is logged rate-limited, and ACKs resume by
/// themselves once writing works again.
#[test]
fn acks_stop_while_the_lease_journal_cannot_be_written_and_resume_by_themselves() {
    if !require_root_or_skip(
        "acks_stop_while_the_lease_journal_cannot_be_written_and_resume_by_themselves",
    ) {
        return;
    }
    let net = NetnsPair::new("unwritable");
    let fs = Ext4::new();
    let state = fs.dir.join("state");
    let tmp = open_tempdir();
    let cfg = write(
        &tmp.path().join("c.toml"),
        &config(&state, &net.server_if, "", POOL_SUBNET),
    );
    let srv = start_serving(Some(&net.server), &cfg, 1);
    let journal = state.join("leases4.journal");

    // a full disk (the journal is still empty: its first record needs a block): the append
    // fails, cutting it back works
    let filler = fs.dir.join("filler");
    fs.fill(&filler);
    assert_eq!(
        udhcpc_lease(&net, 1),
        None,
        "ACKed a lease that is not on disk"
    );
    assert!(
        count_lines(&srv, "lease journal write failed") >= 1,
        "{}",
        srv.output_text()
    );
    std::fs::remove_file(&filler).unwrap();
    let first = udhcpc_lease(&net, 1).expect("ACKs resume once there is room");
    assert!(journal_has(&state, first));

    // immutable: the append fails, and so does cutting it back
    run_ok(&["chattr", "+i", journal.to_str().unwrap()]);
    assert_eq!(
        udhcpc_lease(&net, 2),
        None,
        "ACKed a lease that is not on disk"
    );
    run_ok(&["chattr", "-i", journal.to_str().unwrap()]);
    let second = udhcpc_lease(&net, 2).expect("ACKs resume once the journal is writable");
    assert!(journal_has(&state, second));
    assert!(
        srv.wait_for_lines("lease journal written again", 2, Duration::from_secs(5)),
        "{}",
        srv.output_text()
    );
    // every failed REQUEST was refused, but the log was not flooded: each of the two episodes
    // logs its first failure once on the writer's side and once on the server's side
    assert!(
        count_lines(&srv, "lease journal write failed") <= 4,
        "{}",
        srv.output_text()
    );
    let mut srv = srv;
    srv.stop("TERM", Duration::from_secs(10));
    let summary = srv
        .lines()
        .into_iter()
        .find(|l| l.contains("dhcp4 stopped"))
        .expect("shutdown summary");
    assert!(summary.contains("journal_failing=0"), "{summary}");
    assert!(!summary.contains("commits_failed=0"), "{summary}");
}

/// A file-size limit (RLIMIT_FSIZE) makes appends fail with EFBIG instead of SIGXFSZ killing
/// the daemon, and ACKs resume when the limit is lifted.
#[test]
fn a_file_size_limit_stops_acks_without_killing_the_daemon() {
    if !require_root_or_skip("a_file_size_limit_stops_acks_without_killing_the_daemon") {
        return;
    }
    let net = NetnsPair::new("fsize");
    let tmp = open_tempdir();
    let state = tmp.path().join("state");
    let cfg = write(
        &tmp.path().join("c.toml"),
        &config(&state, &net.server_if, "", POOL_SUBNET),
    );
    let srv = start_serving(Some(&net.server), &cfg, 1);
    let first = udhcpc_lease(&net, 1).expect("a lease before the limit");
    assert!(journal_has(&state, first));
    let pid = srv.pid().unwrap().to_string();
    let size = std::fs::metadata(state.join("leases4.journal"))
        .unwrap()
        .len();
    run_ok(&[
        "prlimit",
        "--pid",
        &pid,
        &format!("--fsize={size}:unlimited"),
    ]);
    assert_eq!(
        udhcpc_lease(&net, 2),
        None,
        "ACKed a lease that is not on disk"
    );
    assert!(
        srv.is_running(),
        "killed by SIGXFSZ:\n{}",
        srv.output_text()
    );
    run_ok(&["prlimit", "--pid", &pid, "--fsize=unlimited:unlimited"]);
    let second = udhcpc_lease(&net, 2).expect("ACKs resume once the limit is lifted");
    assert!(journal_has(&state, second));
}

// ---------------------------------------------------------------------------------------------
// Fault 5: durations that overflow, numbers out of range.

/// The loopback config of the unprivileged tests: `[dhcp4]` on lo, port 0, relayed exchanges
/// for 192.0.2.0/24 (common::relay).
fn loopback_config(state: &Path, lease_time: &str) -> String {
    config(
        state,
        "lo",
        "port = 0",
        &format!(
            "[[dhcp4.subnet]]\nsubnet = \"192.0.2.0/24\"\npools = [\"192.0.2.100-192.0.2.199\"]\n\
             lease-time = \"{lease_time}\"\n"
        ),
    )
}

fn loopback_port(c: &Child) -> u16 {
    c.lines()
        .iter()
        .rev()
        .find_map(|l| l.split("listening for dhcp4 on lo 0.0.0.0:").nth(1))
        .and_then(|p| p.trim().parse().ok())
        .expect("a listening line")
}

#[test]
fn an_overflowing_duration_is_a_config_error_not_a_crash_at_check_or_reload() {
    let tmp = open_tempdir();
    let state = tmp.path().join("state");
    let bad = write(
        &tmp.path().join("bad.toml"),
        &loopback_config(&state, "100000000000000d"),
    );
    let out = run_cmd(
        &[&bin(), "check-config", bad.to_str().unwrap()],
        CMD_TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(78), "{}", out.stderr);
    assert_eq!(
        out.stderr.trim(),
        format!(
            "{}:19:14: dhcp4.subnet[0].lease-time: \"100000000000000d\" is too long: at most \
             4294967294s (about 136 years: option 51 is 32 bits; \"infinite\" for a lease \
             without end)",
            bad.display()
        )
    );

    let cfg = write(&tmp.path().join("c.toml"), &loopback_config(&state, "1h"));
    let srv = start_serving(None, &cfg, 1);
    std::fs::copy(&bad, &cfg).unwrap();
    srv.signal("HUP");
    assert!(
        srv.wait_for_lines("reload refused", 1, Duration::from_secs(20)),
        "{}",
        srv.output_text()
    );
    assert!(
        srv.is_running(),
        "a SIGHUP killed it:\n{}",
        srv.output_text()
    );
    assert!(srv
        .output_text()
        .contains(":19:14: dhcp4.subnet[0].lease-time:"));
    let r = common::relay::Relay::new(loopback_port(&srv));
    let x = r
        .exchange(common::relay::mac(5), 0x500, true)
        .expect("still serving");
    assert_eq!(x.ack.yiaddr(), Ipv4Addr::new(192, 0, 2, 100));
}

// ---------------------------------------------------------------------------------------------
// Fault 4: a reload sequence must end where a fresh start on the final file is (in process:
// tests/reload_sequences.rs). Here: a SIGHUP that arrives while the daemon starts.

/// Opens the FIFO `path` for writing once a reader has it open (polling, bounded), writes
/// `text` and closes it.
fn feed_fifo(path: &Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let until = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        // O_NONBLOCK: ENXIO until the daemon has opened its end
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            Ok(mut f) => {
                f.write_all(text.as_bytes()).unwrap();
                return;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                assert!(std::time::Instant::now() < until, "nobody reads {path:?}");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("{path:?}: {e}"),
        }
    }
}

/// Waits (bounded) until a reader has `path` (a FIFO) open, without writing to it.
fn wait_fifo_reader(path: &Path) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    let until = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            Ok(f) => return f,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                assert!(std::time::Instant::now() < until, "nobody reads {path:?}");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("{path:?}: {e}"),
        }
    }
}

/// A SIGHUP that arrives while the daemon is still starting (here: reading its file) waits and
/// is then a reload, instead of killing the daemon; what it serves afterwards is what a fresh
/// start on the reloaded file serves.
#[test]
fn a_sighup_during_start_up_is_a_reload_not_a_kill() {
    let tmp = open_tempdir();
    let state = tmp.path().join("state");
    let fifo = tmp.path().join("c.toml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let first = loopback_config(&state, "1h");
    let last = first
        .replace(URI1, "https://final.example.com:8443")
        .replace("lease-time = \"1h\"", "lease-time = \"2h\"");
    let srv = start(None, &fifo);
    // the daemon has the file open and waits for its text: it is past its first instruction
    let writer = wait_fifo_reader(&fifo);
    srv.signal("HUP");
    {
        use std::io::Write;
        let mut w = writer;
        if let Err(e) = w.write_all(first.as_bytes()) {
            panic!(
                "the SIGHUP killed the starting daemon ({e}):\n{}",
                srv.output_text()
            );
        }
    }
    assert!(
        srv.wait_for_lines("listening for dhcp4", 1, Duration::from_secs(20)),
        "did not start:\n{}",
        srv.output_text()
    );
    // the pending SIGHUP reads the file again: the final text
    feed_fifo(&fifo, &last);
    assert!(
        srv.wait_for_lines("configuration reloaded", 1, Duration::from_secs(20)),
        "{}",
        srv.output_text()
    );
    let port = loopback_port(&srv);
    let got = common::relay::Relay::new(port)
        .exchange(common::relay::mac(9), 0x900, true)
        .expect("served after the reload");

    let fresh_dir = open_tempdir();
    let fresh_cfg = write(
        &fresh_dir.path().join("c.toml"),
        &last.replace(
            &state.display().to_string(),
            &fresh_dir.path().join("state").display().to_string(),
        ),
    );
    let fresh = start_serving(None, &fresh_cfg, 1);
    let want = common::relay::Relay::new(loopback_port(&fresh))
        .exchange(common::relay::mac(9), 0x900, true)
        .expect("a fresh start serves");
    assert_eq!(
        common::relay::uris_143(&got.ack),
        Some(vec!["https://final.example.com:8443".to_string()])
    );
    assert_eq!(
        common::relay::uris_143(&got.ack),
        common::relay::uris_143(&want.ack)
    );
    assert_eq!(got.ack.yiaddr(), want.ack.yiaddr());
    assert_eq!(
        got.ack
            .opts()
            .get(dhcproto::v4::OptionCode::AddressLeaseTime),
        want.ack
            .opts()
            .get(dhcproto::v4::OptionCode::AddressLeaseTime)
    );
}

// ---------------------------------------------------------------------------------------------
// Fault 7: a complete last record that fails its checksum is corruption, not a torn write.

#[test]
fn a_damaged_last_record_stops_the_start_and_salvage_is_the_way_out() {
    let tmp = open_tempdir();
    let state = tmp.path().join("state");
    let cfg = write(&tmp.path().join("c.toml"), &loopback_config(&state, "1h"));
    let mut srv = start_serving(None, &cfg, 1);
    let relay = common::relay::Relay::new(loopback_port(&srv));
    let a = relay
        .exchange(common::relay::mac(1), 0x100, true)
        .unwrap()
        .ack
        .yiaddr();
    let b = relay
        .exchange(common::relay::mac(2), 0x200, true)
        .unwrap()
        .ack
        .yiaddr();
    assert!(srv.stop("TERM", Duration::from_secs(10)).is_some());

    // the last record, whole (newline and all), one digit of its JSON changed
    let journal = state.join("leases4.journal");
    let text = std::fs::read_to_string(&journal).unwrap();
    let lines = text.lines().count();
    let damaged = {
        let (head, last) = text.trim_end().rsplit_once('\n').unwrap();
        format!(
            "{head}\n{}\n",
            last.replacen("\"expires\":1", "\"expires\":2", 1)
        )
    };
    assert_ne!(damaged, text);
    std::fs::write(&journal, &damaged).unwrap();

    let (code, out) = start_refused(None, &cfg);
    assert_eq!(code, Some(1), "{out}");
    let want = format!(
        "{}:{lines}: corrupt lease record (checksum mismatch); the journal is left as it is: \
         `sztp-redirector leases --salvage --state-dir {}` keeps every valid record and moves \
         the damaged file aside",
        journal.display(),
        state.display()
    );
    assert!(out.contains(&want), "{out}");
    assert_eq!(
        std::fs::read_to_string(&journal).unwrap(),
        damaged,
        "left as it is"
    );
    let listed = run_cmd(
        &[&bin(), "leases", "--state-dir", state.to_str().unwrap()],
        CMD_TIMEOUT,
    );
    assert_eq!(listed.status.code(), Some(1));
    assert!(listed.stderr.contains(&want), "{}", listed.stderr);

    // the way out the message names
    let out = run_cmd(
        &[
            &bin(),
            "leases",
            "--salvage",
            "--state-dir",
            state.to_str().unwrap(),
        ],
        CMD_TIMEOUT,
    );
    assert!(out.status.success(), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(&format!(
            "{}:{lines}: dropped (checksum mismatch)",
            journal.display()
        )),
        "{}",
        out.stdout
    );
    let aside: Vec<PathBuf> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("leases4.journal.damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read_to_string(&aside[0]).unwrap(), damaged);
    assert!(
        out.stdout.contains(&aside[0].display().to_string()),
        "{}",
        out.stdout
    );

    // it starts again; every valid record is there
    let srv = start_serving(None, &cfg, 1);
    let leases = leases_json(&state);
    assert!(
        leases.iter().any(|l| lease_addr(l) == Some(&a.to_string())),
        "{leases:?}"
    );
    // while a daemon runs, salvage refuses (the state-dir lock)
    let out = run_cmd(
        &[
            &bin(),
            "leases",
            "--salvage",
            "--state-dir",
            state.to_str().unwrap(),
        ],
        CMD_TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr.contains("is in use by another sztp-redirector"),
        "{}",
        out.stderr
    );
    drop(srv);
    assert_ne!(a, b);
}

// ---------------------------------------------------------------------------------------------
// Fault 9: offers that are never taken up starve real clients; pool exhaustion is silent.

/// perfdhcp floods DISCOVERs that are never followed up (`-i`, ~10 clients) into a 3-address
/// pool whose offers last 10 minutes: every DISCOVER is still offered an address (the oldest
/// offer is reused) and a real client (udhcpc) then gets a lease; once every address is bound,
/// the next client is not answered and the exhaustion is logged once with the subnet while
/// every DISCOVER is counted.
#[test]
fn offers_never_starve_real_clients_and_exhaustion_is_logged_by_subnet() {
    if !require_root_or_skip("offers_never_starve_real_clients_and_exhaustion_is_logged_by_subnet")
    {
        return;
    }
    let net = NetnsPair::with_client_addr("starve", Some("198.51.100.2/24"));
    let tmp = open_tempdir();
    let state = tmp.path().join("state");
    let subnet = r#"[[dhcp4.subnet]]
subnet = "198.51.100.0/24"
pools = ["198.51.100.100-198.51.100.102"]
routers = ["198.51.100.1"]
lease-time = "1h"
"#;
    let cfg = write(
        &tmp.path().join("c.toml"),
        &config(&state, &net.server_if, "offer-time = \"10m\"", subnet),
    );
    let mut srv = start_serving(Some(&net.server), &cfg, 1);

    let out = net.client.run(
        &[
            // -i before -4 and a period instead of -n: perfdhcp 2.2 refuses "-4 -i" and
            // "-i -n" ("Packets exchange not specified")
            "perfdhcp",
            "-i",
            "-4",
            "-l",
            &net.client_if,
            "-r",
            "10",
            "-p",
            "1",
            "-R",
            "1000",
            "-W",
            "2000000",
        ],
        Duration::from_secs(60),
    );
    let p = parse_perfdhcp(&out.stdout);
    let ctx = format!(
        "stdout:\n{}\nstderr:\n{}\nserver:\n{}",
        out.stdout,
        out.stderr,
        srv.output_text()
    );
    let (sent, received, drops) = p["DISCOVER-OFFER"];
    assert!(sent >= 6, "a flood of at least twice the pool: {ctx}");
    assert_eq!(
        (received, drops),
        (sent, 0),
        "every DISCOVER of the flood is offered an address: {ctx}"
    );

    let mut bound = Vec::new();
    for n in 1..=3 {
        let ip = udhcpc_lease(&net, n).unwrap_or_else(|| {
            panic!(
                "udhcpc {n} got no lease while the pool is held by offers:\n{}",
                srv.output_text()
            )
        });
        assert!((100..=102).contains(&ip.octets()[3]), "{ip}");
        bound.push(ip);
    }
    bound.sort();
    bound.dedup();
    assert_eq!(bound.len(), 3, "{bound:?}");
    assert_eq!(count_lines(&srv, "pool exhausted"), 0);

    // every address bound: nothing to give, logged once (udhcpc tries three times)
    assert_eq!(udhcpc_lease(&net, 4), None);
    let lines: Vec<String> = srv
        .lines()
        .into_iter()
        .filter(|l| l.contains("pool exhausted"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", srv.output_text());
    assert!(
        lines[0].contains("subnet=198.51.100.0/24") && lines[0].contains("WARN"),
        "{}",
        lines[0]
    );
    srv.stop("TERM", Duration::from_secs(10));
    let summary = srv
        .lines()
        .into_iter()
        .find(|l| l.contains("dhcp4 stopped"))
        .expect("shutdown summary");
    let exhausted: u64 = summary
        .split_whitespace()
        .find_map(|w| w.strip_prefix("pool_exhausted="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no pool_exhausted in {summary}"));
    assert!(exhausted >= 2, "{summary}");
}

// ---------------------------------------------------------------------------------------------
// Fault 6: variable-length fields the server stores are bounded.

/// udhcpc with a client identifier of 129 octets (one over Kea's bound) is not answered and
/// the drop is counted; the same client with 128 octets gets its lease, stored whole.
#[test]
fn a_client_identifier_over_128_octets_is_dropped_and_counted() {
    if !require_root_or_skip("a_client_identifier_over_128_octets_is_dropped_and_counted") {
        return;
    }
    let net = NetnsPair::new("oversize");
    let tmp = open_tempdir();
    let state = tmp.path().join("state");
    let status = "[status]\nlisten = [\"127.0.0.1:0\"]\n";
    let cfg = write(
        &tmp.path().join("c.toml"),
        &config(
            &state,
            &net.server_if,
            "",
            &format!("{POOL_SUBNET}\n{status}"),
        ),
    );
    let mut srv = start_serving(Some(&net.server), &cfg, 1);
    assert!(srv.wait_for_lines("listening for status on 127.0.0.1:", 1, EXIT_WAIT));
    let status_port: u16 = srv
        .lines()
        .iter()
        .find(|l| l.contains("listening for status on 127.0.0.1:"))
        .and_then(|l| l.rsplit(':').next()?.trim().parse().ok())
        .expect("status port");
    // sztp_dhcp4_dropped_total{reason} from /metrics, through the Python client's parser
    let dropped = |reason: &str| -> f64 {
        let url = format!("http://127.0.0.1:{status_port}/metrics");
        let m = net.server.run(
            &["curl", "-sS", "--fail", "--max-time", "20", &url],
            EXIT_WAIT,
        );
        assert!(m.success(), "{}", m.stderr);
        let metrics = tmp.path().join("metrics.txt");
        std::fs::write(&metrics, &m.stdout).unwrap();
        let py = format!(
            "from prometheus_client.parser import text_string_to_metric_families as f\n\
             print(sum(s.value for m in f(open({:?}).read()) for s in m.samples \
             if s.name == 'sztp_dhcp4_dropped_total' and s.labels.get('reason') == {reason:?}))",
            metrics.to_str().unwrap()
        );
        let out = run_cmd(&["/usr/bin/python3", "-c", &py], EXIT_WAIT);
        assert!(out.success(), "{}\n{}", out.stderr, m.stdout);
        out.stdout.trim().parse().unwrap()
    };
    assert_eq!(dropped("oversized"), 0.0);
    let id = |len: usize| -> String {
        // type 0 (RFC 2132 §9.14: not a hardware address), then len-1 octets
        let mut h = String::from("00");
        for i in 1..len {
            h.push_str(&format!("{:02x}", i as u8));
        }
        h
    };
    let lease = |len: usize| {
        let r = run_udhcpc(
            &net.client,
            &net.client_if,
            &["-x", &format!("0x3d:{}", id(len))],
        );
        last_event(&r.events, &["bound"]).map(|m| m["ip"].parse::<Ipv4Addr>().unwrap())
    };
    assert_eq!(lease(129), None, "{}", srv.output_text());
    assert!(
        srv.lines()
            .iter()
            .any(|l| l.contains("dropped malformed packet") && l.contains("option-too-long")),
        "{}",
        srv.output_text()
    );
    assert!(dropped("oversized") >= 1.0);
    assert_eq!(dropped("malformed"), 0.0);
    let ip = lease(128).expect("128 octets are served");
    let leases = leases_json(&state);
    let stored = leases
        .iter()
        .find(|l| lease_addr(l) == Some(&ip.to_string()))
        .expect("the lease is journaled");
    assert_eq!(stored["client_id"].as_str(), Some(id(128).as_str()));
    srv.stop("TERM", Duration::from_secs(10));
    let summary = srv
        .lines()
        .into_iter()
        .find(|l| l.contains("dhcp4 stopped"))
        .expect("shutdown summary");
    assert!(!summary.contains("oversized=0"), "{summary}");
    assert!(summary.contains("malformed=0"), "{summary}");
}
