//! Harness for root tests: throwaway network namespaces, process guards, the real binary.
//!
//! Every namespace and interface name carries the test process id and a counter, so tests
//! run in parallel and a namespace left behind by a killed run never collides with the next
//! one (stale ones whose process is gone are swept on first use). All traffic stays inside
//! these namespaces and uses documentation / benchmarking addresses only.
#![allow(dead_code)]

pub(crate) mod dns;
pub(crate) mod relay;
pub(crate) mod v6;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

/// Path of the binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_sztp-redirector");

/// Prefix of every namespace this harness creates: `sztpt-<pid>-<counter>-<tag>-<role>`.
pub(crate) const NS_PREFIX: &str = "sztpt-";

/// Set to 1 (CI does) to turn "skipped, not root" into a failure.
pub(crate) const REQUIRE_ENV: &str = "SZTP_REQUIRE_PRIVILEGED_TESTS";

/// Default upper bound for any one external command.
pub(crate) const CMD_TIMEOUT: Duration = Duration::from_secs(30);

/// The two bootstrap servers of peers-and-crates §7 and their option-143 payload (Kea's bytes).
pub(crate) const URI1: &str = "https://sztp1.example.test:8443";
pub(crate) const URI2: &str = "https://[2001:db8::1]:8443";
pub(crate) const KEA_PAYLOAD_HEX: &str = "001f68747470733a2f2f737a7470312e6578616d706c652e746573743a38343433001a68747470733a2f2f5b323030313a6462383a3a315d3a38343433";

static COUNTER: AtomicU32 = AtomicU32::new(0);
static SWEEP: Once = Once::new();

/// True when the test may run. Not root: prints a SKIP line and returns false, or panics
/// when `SZTP_REQUIRE_PRIVILEGED_TESTS=1` (CI must not pass by skipping).
pub(crate) fn require_root_or_skip(test_name: &str) -> bool {
    if is_root() {
        return true;
    }
    let reason = format!("SKIP {test_name}: needs root (network namespaces)");
    if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") {
        panic!("{reason}, and {REQUIRE_ENV}=1 forbids skipping");
    }
    eprintln!("{reason}");
    false
}

fn is_root() -> bool {
    // /proc/self/status "Uid: real effective saved fs"; the effective uid decides.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Output of a finished command.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Output {
    pub(crate) fn success(&self) -> bool {
        self.status.success()
    }
    /// `timeout(1)` exit code when the bound was hit.
    pub(crate) fn timed_out(&self) -> bool {
        matches!(self.status.code(), Some(124) | Some(137))
    }
}

/// Runs `args` under `timeout`, capturing output. Panics only if it cannot be started.
pub(crate) fn run_cmd(args: &[&str], limit: Duration) -> Output {
    let secs = limit.as_secs().max(1).to_string();
    let out = Command::new("timeout")
        .args(["-k", "3", &secs])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot start {args:?}: {e}"));
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Like [`run_cmd`] but panics with both streams when the command fails.
pub(crate) fn run_ok(args: &[&str]) -> Output {
    let out = run_cmd(args, CMD_TIMEOUT);
    assert!(
        out.success(),
        "{args:?} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    out
}

/// Deletes namespaces left by earlier test processes that no longer exist.
fn sweep_stale_namespaces() {
    SWEEP.call_once(|| {
        let out = run_cmd(&["ip", "netns", "list"], CMD_TIMEOUT);
        for line in out.stdout.lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            let Some(rest) = name.strip_prefix(NS_PREFIX) else {
                continue;
            };
            let pid = rest.split('-').next().unwrap_or("");
            if !pid.is_empty() && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = run_cmd(&["ip", "netns", "del", name], CMD_TIMEOUT);
            }
        }
    });
}

/// One network namespace; deleted on drop (also while unwinding from a failed assertion).
#[derive(Debug)]
pub(crate) struct Netns {
    pub(crate) name: String,
}

impl Netns {
    pub(crate) fn new(name: String) -> Netns {
        run_ok(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NS ARGS…`, must succeed.
    pub(crate) fn ip(&self, args: &[&str]) -> Output {
        let mut v = vec!["ip", "-n", self.name.as_str()];
        v.extend_from_slice(args);
        run_ok(&v)
    }

    fn exec_args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec!["ip", "netns", "exec", self.name.as_str()];
        v.extend_from_slice(args);
        v
    }

    /// Runs a command inside the namespace, bounded by `limit`.
    pub(crate) fn run(&self, args: &[&str], limit: Duration) -> Output {
        run_cmd(&self.exec_args(args), limit)
    }

    /// Starts a command inside the namespace in the background, bounded by `limit`.
    /// Its stdout and stderr are collected line by line (see [`Child::lines`]).
    pub(crate) fn spawn(&self, args: &[&str], limit: Duration) -> Child {
        Child::spawn(&self.exec_args(args), limit)
    }

    /// Sets an interface's MAC address.
    pub(crate) fn set_mac(&self, iface: &str, mac: &str) {
        self.ip(&["link", "set", "dev", iface, "address", mac]);
    }

    /// Waits (bounded) until `iface` is operationally up with its queueing discipline attached:
    /// until the kernel's link watcher has run, the device has the `noop` qdisc, which drops
    /// every frame sent (the first DISCOVERs of a test could vanish when many namespaces are
    /// being made at once).
    pub(crate) fn wait_link_up(&self, iface: &str) {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.ip(&["-o", "link", "show", "dev", iface]).stdout;
            if out.contains("LOWER_UP") && out.contains("state UP") && !out.contains("qdisc noop") {
                return;
            }
            assert!(Instant::now() < until, "{iface} not up after 10 s: {out}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn add_addr(&self, iface: &str, cidr: &str) {
        self.ip(&["addr", "add", cidr, "dev", iface]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let out = run_cmd(&["ip", "netns", "del", &self.name], CMD_TIMEOUT);
        if !out.success() {
            eprintln!("warning: ip netns del {} failed: {}", self.name, out.stderr);
        }
    }
}

fn unique(tag: &str) -> (String, String) {
    sweep_stale_namespaces();
    let pid = std::process::id();
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let tag: String = tag
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(24)
        .collect();
    // Interface names: "z" + pid (hex, ≤ 6 digits for pid_max 4194304) + counter (hex) + role
    // (≤ 2 chars): at most 1 + 6 + 4 + 2 = 13 ≤ 15 (IFNAMSIZ - 1).
    let ifbase = format!("z{pid:x}{:x}", n & 0xffff);
    (format!("{NS_PREFIX}{pid}-{n}-{tag}"), ifbase)
}

/// Creates a veth pair with one end in each namespace, both ends up.
fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    run_ok(&[
        "ip", "link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns",
        &b.name,
    ]);
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
    a.wait_link_up(a_if);
    b.wait_link_up(b_if);
}

/// Server and client namespaces joined by a veth pair. The server end has
/// [`NetnsPair::SERVER_ADDR`]; the client end has no address unless given one.
pub(crate) struct NetnsPair {
    pub(crate) server: Netns,
    pub(crate) client: Netns,
    pub(crate) server_if: String,
    pub(crate) client_if: String,
}

impl NetnsPair {
    pub(crate) const SERVER_ADDR: &'static str = "198.51.100.1";
    pub(crate) const SERVER_CIDR: &'static str = "198.51.100.1/24";

    pub(crate) fn new(tag: &str) -> NetnsPair {
        Self::with_client_addr(tag, None)
    }

    /// `client_cidr`: e.g. `Some("198.51.100.2/24")` for perfdhcp, which acts as a relay.
    pub(crate) fn with_client_addr(tag: &str, client_cidr: Option<&str>) -> NetnsPair {
        let (ns, ifbase) = unique(tag);
        let server = Netns::new(format!("{ns}-s"));
        let client = Netns::new(format!("{ns}-c"));
        let server_if = format!("{ifbase}s");
        let client_if = format!("{ifbase}c");
        veth(&server, &server_if, &client, &client_if);
        server.add_addr(&server_if, Self::SERVER_CIDR);
        if let Some(c) = client_cidr {
            client.add_addr(&client_if, c);
        }
        NetnsPair {
            server,
            client,
            server_if,
            client_if,
        }
    }
}

/// client — relay — server. The relay has 192.0.2.1/24 toward the client and
/// 198.51.100.2/24 toward the server; the server (198.51.100.1/24) routes 192.0.2.0/24
/// back through the relay.
pub(crate) struct RelayTopology {
    pub(crate) server: Netns,
    pub(crate) relay: Netns,
    pub(crate) client: Netns,
    pub(crate) server_if: String,
    pub(crate) relay_up_if: String,
    pub(crate) relay_down_if: String,
    pub(crate) client_if: String,
}

impl RelayTopology {
    pub(crate) const RELAY_DOWN_ADDR: &'static str = "192.0.2.1";

    pub(crate) fn new(tag: &str) -> RelayTopology {
        let (ns, ifbase) = unique(tag);
        let server = Netns::new(format!("{ns}-s"));
        let relay = Netns::new(format!("{ns}-r"));
        let client = Netns::new(format!("{ns}-c"));
        let server_if = format!("{ifbase}s");
        let relay_up_if = format!("{ifbase}ru");
        let relay_down_if = format!("{ifbase}rd");
        let client_if = format!("{ifbase}c");
        veth(&server, &server_if, &relay, &relay_up_if);
        veth(&relay, &relay_down_if, &client, &client_if);
        server.add_addr(&server_if, NetnsPair::SERVER_CIDR);
        relay.add_addr(&relay_up_if, "198.51.100.2/24");
        relay.add_addr(&relay_down_if, "192.0.2.1/24");
        server.ip(&["route", "add", "192.0.2.0/24", "via", "198.51.100.2"]);
        RelayTopology {
            server,
            relay,
            client,
            server_if,
            relay_up_if,
            relay_down_if,
            client_if,
        }
    }
}

/// A background process. Dropping it kills its whole process group (SIGKILL) and reaps it.
pub(crate) struct Child {
    child: Option<std::process::Child>,
    lines: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    what: String,
}

impl Child {
    /// Spawns `args` under `timeout` in a new process group (timeout makes one), collecting
    /// stdout and stderr lines.
    pub(crate) fn spawn(args: &[&str], limit: Duration) -> Child {
        let secs = limit.as_secs().max(1).to_string();
        let mut child = Command::new("timeout")
            .args(["-k", "3", &secs])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {args:?}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let what = args.join(" ");
        let mut readers = Vec::new();
        let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        for (stream, name) in [(out, "out"), (err, "err")] {
            let lines = Arc::clone(&lines);
            let label = args
                .iter()
                .find(|a| !["ip", "netns", "exec"].contains(a) && !a.starts_with(NS_PREFIX))
                .map(|s| s.rsplit('/').next().unwrap_or(s).to_string())
                .unwrap_or_default();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    eprintln!("[{label} {name}] {line}");
                    lines.lock().unwrap().push(line);
                }
            }));
        }
        Child {
            child: Some(child),
            lines,
            readers,
            what,
        }
    }

    /// Pid of the `timeout` wrapper (also the process group id).
    pub(crate) fn wrapper_pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Pid of the real program: the child of the `timeout` wrapper (`ip netns exec` execs).
    pub(crate) fn pid(&self) -> Option<u32> {
        let parent = self.wrapper_pid();
        // Bounded poll: the fork inside timeout may not have happened yet.
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(p) = children_of(parent).into_iter().next() {
                return Some(p);
            }
            if Instant::now() > until || !self.is_running() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal (name as in kill(1): TERM, HUP, KILL, INT) to the real program.
    pub(crate) fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            let _ = run_cmd(&["kill", "-s", sig, &pid.to_string()], CMD_TIMEOUT);
        }
    }

    pub(crate) fn is_running(&self) -> bool {
        // try_wait needs &mut; peek through /proc instead (a zombie counts as gone).
        let pid = self.wrapper_pid();
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                let state = s.rsplit(')').next().unwrap_or("").split_whitespace().next();
                !matches!(state, Some("Z") | Some("X") | None)
            })
            .unwrap_or(false)
    }

    /// Snapshot of every stdout/stderr line so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub(crate) fn output_text(&self) -> String {
        self.lines().join("\n")
    }

    /// Polls (bounded by `max`) until `count` lines contain `needle`. Returns false if the
    /// process ended or the bound passed first; the caller decides what that means.
    pub(crate) fn wait_for_lines(&self, needle: &str, count: usize, max: Duration) -> bool {
        let until = Instant::now() + max;
        loop {
            let n = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(needle))
                .count();
            if n >= count {
                return true;
            }
            if Instant::now() > until || !self.is_running() {
                // One last look: the exit may have raced the final line.
                std::thread::sleep(Duration::from_millis(100));
                let n = self
                    .lines
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|l| l.contains(needle))
                    .count();
                return n >= count;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (bounded) for the process to exit by itself; None if still running after `max`.
    pub(crate) fn wait_exit(&mut self, max: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + max;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                self.join_readers();
                return Some(st);
            }
            if Instant::now() > until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Graceful stop: `sig` to the real program, then up to `max` to exit, then SIGKILL.
    pub(crate) fn stop(&mut self, sig: &str, max: Duration) -> Option<ExitStatus> {
        self.signal(sig);
        let st = self.wait_exit(max);
        if st.is_none() {
            self.kill();
        }
        st
    }

    /// SIGKILL to the whole process group, then reap.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pgid = child.id();
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{pgid}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
        self.join_readers();
    }

    fn join_readers(&mut self) {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }

    pub(crate) fn describe(&self) -> &str {
        &self.what
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Pids whose parent is `parent` (from /proc/*/stat).
pub(crate) fn children_of(parent: u32) -> Vec<u32> {
    let mut v = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return v;
    };
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid …"; comm may contain spaces, so split after the last ')'.
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            v.push(pid);
        }
    }
    v
}

/// Placeholder in config texts handed to [`spawn_server`]: replaced by the state directory.
pub(crate) const STATE_DIR: &str = "{STATE_DIR}";

/// The running `sztp-redirector run`, its config and state directory.
pub(crate) struct ServerGuard {
    pub(crate) child: Child,
    dir: Option<tempfile::TempDir>,
    pub(crate) config_path: PathBuf,
}

impl ServerGuard {
    pub(crate) fn dir(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }
    pub(crate) fn state_dir(&self) -> PathBuf {
        self.dir().join("state")
    }
    pub(crate) fn leases_journal(&self) -> PathBuf {
        self.state_dir().join("leases4.journal")
    }
    pub(crate) fn devices_journal(&self) -> PathBuf {
        self.state_dir().join("devices.jsonl")
    }

    /// SIGTERM, wait (bounded) for a clean exit, and hand back the directory for a restart.
    pub(crate) fn terminate(mut self) -> tempfile::TempDir {
        let st = self.child.stop("TERM", Duration::from_secs(10));
        assert!(
            st.is_some(),
            "server did not stop within 10 s of SIGTERM\n{}",
            self.child.output_text()
        );
        self.dir.take().unwrap()
    }

    /// `kill -9` of the server process itself (not the wrapper), then reap.
    pub(crate) fn kill9(mut self) -> tempfile::TempDir {
        self.child.signal("KILL");
        let _ = self.child.wait_exit(Duration::from_secs(10));
        self.child.kill();
        self.dir.take().unwrap()
    }

    pub(crate) fn sighup(&self) {
        self.child.signal("HUP");
    }
}

/// Writes `config` (with [`STATE_DIR`] replaced) into a new temporary directory and starts
/// the server in `ns`; returns once it has logged one `listening for dhcp4` line.
pub(crate) fn spawn_server(ns: &Netns, config: &str) -> ServerGuard {
    let dir = tempfile::Builder::new()
        .prefix("sztpt-")
        .tempdir()
        .expect("tempdir");
    spawn_server_in(ns, config, dir, 1)
}

/// Same as [`spawn_server`] in an existing directory (restart with the same state-dir),
/// waiting for `sockets` listening lines.
pub(crate) fn spawn_server_in(
    ns: &Netns,
    config: &str,
    dir: tempfile::TempDir,
    sockets: usize,
) -> ServerGuard {
    spawn_server_wrapped(ns, config, dir, sockets, &[])
}

/// [`spawn_server_in`] with the server started through `wrapper` (e.g. `setpriv …`).
pub(crate) fn spawn_server_wrapped(
    ns: &Netns,
    config: &str,
    dir: tempfile::TempDir,
    sockets: usize,
    wrapper: &[&str],
) -> ServerGuard {
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    let text = config.replace(STATE_DIR, state.to_str().unwrap());
    let config_path = dir.path().join("sztp-redirector.toml");
    std::fs::write(&config_path, &text).expect("write config");
    let mut argv: Vec<&str> = wrapper.to_vec();
    argv.extend([BIN, "run", "--config", config_path.to_str().unwrap()]);
    let child = ns.spawn(&argv, Duration::from_secs(600));
    // Poll the log; this is a readiness wait, not a timing assertion.
    if !child.wait_for_lines("listening for dhcp4", sockets, Duration::from_secs(10)) {
        panic!(
            "server did not log `listening for dhcp4` ({} socket(s)); config:\n{text}\nlog:\n{}",
            sockets,
            child.output_text()
        );
    }
    ServerGuard {
        child,
        dir: Some(dir),
        config_path,
    }
}

/// `sztp-redirector leases --state-dir DIR --json`, parsed.
pub(crate) fn leases_json(state_dir: &Path) -> Vec<serde_json::Value> {
    let out = run_ok(&[
        BIN,
        "leases",
        "--state-dir",
        state_dir.to_str().unwrap(),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("leases --json is not JSON ({e}):\n{}", out.stdout));
    v.as_array()
        .unwrap_or_else(|| panic!("leases --json is not an array:\n{}", out.stdout))
        .clone()
}

/// A lease's address in `leases --json` (the field is `address`, as in the table header).
pub(crate) fn lease_addr(lease: &serde_json::Value) -> Option<&str> {
    lease["address"].as_str()
}

/// Lowercase hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of a plain hex string (udhcpc's `opt143=` form).
pub(crate) fn unhex(s: &str) -> Vec<u8> {
    let s = s.trim();
    assert!(s.len().is_multiple_of(2), "odd-length hex: {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|_| panic!("bad hex {s:?}")))
        .collect()
}

/// Bytes of dhclient's colon hex for a `string` option: `0:1f:68:…`, no zero padding.
/// Returns None when the value is not colon hex (dhclient prints printable strings as is).
pub(crate) fn dhclient_colon_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim().trim_matches('\'').trim_matches('"');
    if !s.contains(':') {
        return None;
    }
    s.split(':')
        .map(|p| {
            if (1..=2).contains(&p.len()) {
                u8::from_str_radix(p, 16).ok()
            } else {
                None
            }
        })
        .collect()
}

/// The RFC 8572 bootstrap-server list: (u16 length, URI)*.
pub(crate) fn rfc8572_list(uris: &[&str]) -> Vec<u8> {
    let mut v = Vec::new();
    for u in uris {
        v.extend_from_slice(&(u.len() as u16).to_be_bytes());
        v.extend_from_slice(u.as_bytes());
    }
    v
}

/// Env dumps written by our client scripts: blocks starting with `### <event>` followed by
/// `KEY=VALUE` lines. Returns (event, env) in order.
pub(crate) fn parse_env_dump(text: &str) -> Vec<(String, HashMap<String, String>)> {
    parse_env_blocks(text, false)
}

/// [`parse_env_dump`] of a log that may still be being written: a block counts only once its
/// `### end` line is there (our dump scripts end every block with it), so a reader polling
/// the file never sees half an event.
pub(crate) fn parse_complete_env_dump(text: &str) -> Vec<(String, HashMap<String, String>)> {
    parse_env_blocks(text, true)
}

fn parse_env_blocks(text: &str, complete_only: bool) -> Vec<(String, HashMap<String, String>)> {
    let mut out: Vec<(String, HashMap<String, String>)> = Vec::new();
    let mut open = false;
    for line in text.lines() {
        if line == "### end" {
            open = false;
        } else if let Some(ev) = line.strip_prefix("### ") {
            if open && complete_only {
                out.pop();
            }
            open = true;
            out.push((ev.trim().to_string(), HashMap::new()));
        } else if let (Some((k, v)), Some(last)) = (line.split_once('='), out.last_mut()) {
            last.1.insert(k.to_string(), v.to_string());
        }
    }
    if open && complete_only {
        out.pop();
    }
    out
}

/// The last block whose event is one of `events` (udhcpc: "bound"; dhclient: "BOUND").
pub(crate) fn last_event(
    dump: &[(String, HashMap<String, String>)],
    events: &[&str],
) -> Option<HashMap<String, String>> {
    dump.iter()
        .rev()
        .find(|(e, _)| events.contains(&e.as_str()))
        .map(|(_, m)| m.clone())
}

/// Writes an executable script that appends `### $1` (udhcpc) or `### $reason` (dhclient)
/// plus the environment to `log`. It configures nothing.
pub(crate) fn write_dump_script(dir: &Path, log: &Path) -> PathBuf {
    let path = dir.join("dump.sh");
    let body = format!(
        "#!/bin/sh\n{{ echo \"### ${{1:-$reason}}\"; env; echo \"### end\"; }} >> '{}'\nexit 0\n",
        log.display()
    );
    std::fs::write(&path, body).unwrap();
    set_exec(&path);
    path
}

pub(crate) fn set_exec(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Result of one udhcpc run.
pub(crate) struct Udhcpc {
    pub(crate) out: Output,
    pub(crate) events: Vec<(String, HashMap<String, String>)>,
}

impl Udhcpc {
    pub(crate) fn bound(&self) -> HashMap<String, String> {
        last_event(&self.events, &["bound", "renew"]).unwrap_or_else(|| {
            panic!(
                "udhcpc got no lease\nstdout:\n{}\nstderr:\n{}",
                self.out.stdout, self.out.stderr
            )
        })
    }
    pub(crate) fn ip(&self) -> std::net::Ipv4Addr {
        self.bound()["ip"].parse().expect("ip= is an IPv4 address")
    }
    pub(crate) fn opt143(&self) -> Option<Vec<u8>> {
        self.bound().get("opt143").map(|h| unhex(h))
    }
}

/// `udhcpc -i IF -f -q -n -t 3 -T 2 [extra…] -s dump.sh` in `ns` (peers-and-crates §6.2).
pub(crate) fn run_udhcpc(ns: &Netns, iface: &str, extra: &[&str]) -> Udhcpc {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("env.log");
    let script = write_dump_script(dir.path(), &log);
    let mut args = vec![
        "udhcpc", "-i", iface, "-f", "-q", "-n", "-t", "3", "-T", "2",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-s", script.to_str().unwrap()]);
    let out = ns.run(&args, Duration::from_secs(30));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    Udhcpc {
        out,
        events: parse_env_dump(&text),
    }
}

/// dhclient.conf text: the SZTP option as `string`, requested with mask and routers.
pub(crate) const DHCLIENT_CONF: &str = "option sztp-redirect code 143 = string;\n\
send dhcp-max-message-size 1500;\n\
request subnet-mask, routers, sztp-redirect;\n";

/// dhclient run artefacts: its directory (lease file `lease4`, env log `env.log`).
pub(crate) struct Dhclient {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) child: Child,
}

impl Dhclient {
    pub(crate) fn lease_file(&self) -> PathBuf {
        self.dir.path().join("lease4")
    }
    pub(crate) fn events(&self) -> Vec<(String, HashMap<String, String>)> {
        parse_complete_env_dump(
            &std::fs::read_to_string(self.dir.path().join("env.log")).unwrap_or_default(),
        )
    }
    /// Polls (bounded) for a BOUND/REBOOT event; dhclient -d stays in the foreground after it.
    pub(crate) fn wait_bound(&self, max: Duration) -> HashMap<String, String> {
        let until = Instant::now() + max;
        loop {
            if let Some(m) = last_event(&self.events(), &["BOUND", "REBOOT"]) {
                return m;
            }
            if Instant::now() > until || !self.child.is_running() {
                if let Some(m) = last_event(&self.events(), &["BOUND", "REBOOT"]) {
                    return m;
                }
                panic!(
                    "dhclient got no lease; events: {:?}\n{}",
                    self.events(),
                    self.child.output_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Starts `dhclient -d -v -1 -cf … -sf dump.sh -lf lease4 -pf pid IF` (peers-and-crates §6.1).
/// `lease_file_text`: an optional lease file to start from (INIT-REBOOT).
pub(crate) fn start_dhclient(ns: &Netns, iface: &str, lease_file_text: Option<&str>) -> Dhclient {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("dhclient.conf");
    std::fs::write(&conf, DHCLIENT_CONF).unwrap();
    let log = dir.path().join("env.log");
    let script = write_dump_script(dir.path(), &log);
    let lease = dir.path().join("lease4");
    std::fs::write(&lease, lease_file_text.unwrap_or("")).unwrap();
    let pidf = dir.path().join("dhclient.pid");
    let child = ns.spawn(
        &[
            "dhclient",
            "-d",
            "-v",
            "-1",
            "-cf",
            conf.to_str().unwrap(),
            "-sf",
            script.to_str().unwrap(),
            "-lf",
            lease.to_str().unwrap(),
            "-pf",
            pidf.to_str().unwrap(),
            iface,
        ],
        Duration::from_secs(60),
    );
    Dhclient { dir, child }
}

/// tcpdump writing a pcap in `ns`; ready once tcpdump says it is listening.
pub(crate) struct Capture {
    pub(crate) child: Child,
    pub(crate) file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Capture {
    pub(crate) fn start(ns: &Netns, iface: &str, filter: &str) -> Capture {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cap.pcap");
        let child = ns.spawn(
            &[
                "tcpdump",
                // Without immediate mode packets wait in the kernel ring buffer and are lost
                // when tcpdump is stopped ("received by filter" but not "captured").
                "--immediate-mode",
                "-U",
                "-n",
                "-i",
                iface,
                "-w",
                file.to_str().unwrap(),
                filter,
            ],
            Duration::from_secs(300),
        );
        let ready = child.wait_for_lines("listening on", 1, Duration::from_secs(10));
        assert!(ready, "tcpdump did not start:\n{}", child.output_text());
        // tcpdump prints before the capture is fully armed (peers-and-crates §6.9).
        std::thread::sleep(Duration::from_millis(1000));
        Capture {
            child,
            file,
            _dir: dir,
        }
    }

    /// Stops tcpdump (SIGINT flushes the file) and returns the pcap path.
    pub(crate) fn finish(&mut self) -> PathBuf {
        std::thread::sleep(Duration::from_millis(500));
        self.child.stop("INT", Duration::from_secs(10));
        self.file.clone()
    }

    /// `tshark -r FILE [-Y filter] -T fields -e …`: one Vec per packet, one String per field.
    pub(crate) fn fields(&self, display_filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
        tshark_fields(&self.file, display_filter, fields)
    }
}

pub(crate) fn tshark_fields(
    file: &Path,
    display_filter: &str,
    fields: &[&str],
) -> Vec<Vec<String>> {
    let mut args = vec!["tshark", "-n", "-r", file.to_str().unwrap()];
    if !display_filter.is_empty() {
        args.extend_from_slice(&["-Y", display_filter]);
    }
    args.extend_from_slice(&["-T", "fields", "-E", "separator=/t"]);
    for f in fields {
        args.extend_from_slice(&["-e", f]);
    }
    let out = run_cmd(&args, Duration::from_secs(120));
    assert!(out.success(), "tshark failed: {}", out.stderr);
    out.stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').map(|s| s.to_string()).collect())
        .collect()
}

/// perfdhcp's per-exchange counters, e.g. "DISCOVER-OFFER" → (sent, received, drops).
pub(crate) fn parse_perfdhcp(text: &str) -> HashMap<String, (u64, u64, u64)> {
    let mut out = HashMap::new();
    let mut current: Option<String> = None;
    let mut cur = (0, 0, 0);
    for line in text.lines() {
        let l = line.trim();
        // "***Statistics for: DISCOVER-OFFER***" (perfdhcp 2.2; spacing varies by version)
        if let Some(rest) = l.split("Statistics for:").nth(1) {
            if let Some(name) = current.take() {
                out.insert(name, cur);
            }
            cur = (0, 0, 0);
            current = Some(rest.trim_matches(|c| c == '*' || c == ' ').to_string());
            continue;
        }
        let num = |s: &str| {
            s.split(':')
                .nth(1)
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        if l.starts_with("sent packets:") {
            cur.0 = num(l);
        } else if l.starts_with("received packets:") {
            cur.1 = num(l);
        } else if l.starts_with("drops:") {
            cur.2 = num(l);
        }
    }
    if let Some(name) = current {
        out.insert(name, cur);
    }
    out
}
