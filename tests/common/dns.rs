//! DNS services for tests. [`DnsServer`]: in process, `dns::bind` on the config's addresses
//! (`127.0.0.1:0`) and `dns::mdns::bind` when `[dns.mdns]` is on, both served on their own
//! thread and runtime, optionally inside a test namespace (setns on that thread only), with a
//! device journal in a temporary state directory. [`Daemon`]: the real `run`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sztp_redirector::config::load_str;
use sztp_redirector::dns::{self, DnsStats};
use sztp_redirector::journal::DeviceJournal;
use sztp_redirector::runtime::{Events, Published, ServiceContext, Snapshot};
use tokio_util::sync::CancellationToken;

pub(crate) struct DnsServer {
    /// The first UDP listen address (its TCP listener has the same port).
    pub addr: SocketAddr,
    pub stats: Arc<DnsStats>,
    pub published: Published,
    pub token: CancellationToken,
    generation: std::cell::Cell<u64>,
    journal: Arc<DeviceJournal>,
    done: mpsc::Receiver<std::io::Result<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub state: tempfile::TempDir,
}

impl DnsServer {
    /// Serves `config` on this machine's loopback.
    pub(crate) fn start(config: &str) -> DnsServer {
        Self::start_in(None, config)
    }

    /// Serves `config` inside network namespace `netns` (its sockets, the forwarder's and
    /// the mDNS sockets live there).
    pub(crate) fn start_in(netns: Option<&str>, config: &str) -> DnsServer {
        let cfg = load_str(Path::new("test.toml"), config)
            .unwrap_or_else(|e| panic!("test config is invalid:\n{e}"));
        let state = tempfile::tempdir().unwrap();
        let journal = Arc::new(DeviceJournal::open(state.path(), 1 << 20).unwrap());
        let published = Published::new(Snapshot::new(cfg, 0));
        let token = CancellationToken::new();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let ctx = ServiceContext::new(
            published.clone(),
            Events::new(Some(Arc::clone(&journal))),
            state.path().to_path_buf(),
            sztp_redirector::metrics::Metrics::new(),
        );
        let t = token.clone();
        let netns = netns.map(str::to_string);
        let thread = std::thread::spawn(move || {
            if let Some(ns) = netns {
                let f = std::fs::File::open(format!("/var/run/netns/{ns}")).unwrap();
                nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            }
            let cfg = ctx.published.load();
            let bound =
                match dns::bind(&cfg.config).and_then(|b| Ok((b, dns::mdns::bind(&cfg.config)?))) {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
            let (bound, mdns) = bound;
            let addr = bound.udp.first().map(|s| s.local_addr().unwrap());
            let _ = ready_tx.send(Ok((addr, Arc::clone(&bound.stats))));
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let r = rt.block_on(async {
                let (a, b) = tokio::join!(
                    dns::serve(bound, ctx.clone(), t.clone()),
                    dns::mdns::serve(mdns, ctx, t)
                );
                a.and(b)
            });
            let _ = done_tx.send(r);
        });
        let (addr, stats) = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("dns service did not bind")
            .unwrap_or_else(|e| panic!("dns bind: {e}"));
        DnsServer {
            addr: addr.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap()),
            stats,
            published,
            token,
            generation: std::cell::Cell::new(0),
            journal,
            done: done_rx,
            thread: Some(thread),
            state,
        }
    }

    pub(crate) fn port(&self) -> String {
        self.addr.port().to_string()
    }

    /// Publishes `config` as a reload would.
    pub(crate) fn reload(&self, config: &str) {
        let cfg = load_str(Path::new("test.toml"), config).unwrap();
        self.generation.set(self.generation.get() + 1);
        self.published
            .publish(Snapshot::new(cfg, self.generation.get()));
    }

    /// Every device event written so far.
    pub(crate) fn events(&self) -> Vec<serde_json::Value> {
        self.journal.flush();
        std::fs::read_to_string(self.state.path().join("devices.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Cancels and waits (bounded) for `serve` to return: every task must end.
    pub(crate) fn stop(mut self) {
        self.token.cancel();
        let r = self
            .done
            .recv_timeout(Duration::from_secs(10))
            .expect("dns::serve or dns::mdns::serve did not return within 10 s of cancel");
        r.expect("dns::serve or dns::mdns::serve returned an error");
        self.thread.take().unwrap().join().unwrap();
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// Bytes of DNS presentation-format character-strings (`"ci=0\129\136…" "more"`), as dig
/// and kdig print TXT data: `\DDD` decimal and `\X` escapes, strings concatenated.
pub(crate) fn unescape_txt(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let b = s.trim().as_bytes();
    let mut i = 0;
    let mut quoted = false;
    while i < b.len() {
        match b[i] {
            b'"' => {
                quoted = !quoted;
                i += 1;
            }
            b'\\' if i + 3 < b.len() && b[i + 1].is_ascii_digit() => {
                let d = std::str::from_utf8(&b[i + 1..i + 4]).unwrap();
                out.push(d.parse::<u8>().unwrap());
                i += 4;
            }
            b'\\' => {
                out.push(b[i + 1]);
                i += 2;
            }
            c if !quoted && c.is_ascii_whitespace() => i += 1,
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// `sztp-redirector run` (the real binary) on this host or inside a test namespace, with its
/// config file and state directory in a temporary directory. The default log filter is in
/// force (`RUST_LOG` is removed from its environment).
pub(crate) struct Daemon {
    pub(crate) child: super::Child,
    dir: tempfile::TempDir,
}

const CONFIG_FILE: &str = "sztp-redirector.toml";

/// Writes `config` into `dir` with [`super::STATE_DIR`] replaced by `dir/state`.
fn write_config(dir: &Path, config: &str) {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let text = config.replace(super::STATE_DIR, state.to_str().unwrap());
    std::fs::write(dir.join(CONFIG_FILE), text).unwrap();
}

impl Daemon {
    /// Writes `config` ([`super::STATE_DIR`] replaced) and starts `run`; returns once it has
    /// logged `ready` (every socket bound, every service started).
    pub(crate) fn start(netns: Option<&super::Netns>, config: &str) -> Daemon {
        let dir = tempfile::Builder::new().prefix("sztpt-").tempdir().unwrap();
        let path = dir.path().join(CONFIG_FILE);
        write_config(dir.path(), config);
        let mut argv = Vec::new();
        if let Some(ns) = netns {
            argv.extend(["ip", "netns", "exec", ns.name.as_str()]);
        }
        argv.extend([
            "env",
            "-u",
            "RUST_LOG",
            super::BIN,
            "run",
            "--config",
            path.to_str().unwrap(),
        ]);
        let child = super::Child::spawn(&argv, Duration::from_secs(600));
        // a readiness wait, not a timing assertion
        assert!(
            child.wait_for_lines(" ready", 1, Duration::from_secs(20)),
            "run did not become ready; config:\n{config}\nlog:\n{}",
            child.output_text()
        );
        Daemon { child, dir }
    }

    pub(crate) fn state_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }

    /// Log lines so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.child.lines()
    }

    /// The addresses of the `listening for <what> ADDR` lines from line `since` on, e.g.
    /// `what` = `dns on udp`.
    pub(crate) fn listening(&self, what: &str, since: usize) -> Vec<SocketAddr> {
        let needle = format!("listening for {what} ");
        self.lines()
            .iter()
            .skip(since)
            .filter_map(|l| l.split(&needle).nth(1))
            .map(|a| {
                a.split_whitespace()
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap_or_else(|e| panic!("{a}: {e}"))
            })
            .collect()
    }

    /// Rewrites the file and sends SIGHUP; waits for the daemon's verdict. `Ok` with the log
    /// lines of the reload, or `Err` with the `reload refused` lines.
    pub(crate) fn reload(&self, config: &str) -> Result<Vec<String>, String> {
        let count = |needle: &str| self.lines().iter().filter(|l| l.contains(needle)).count();
        let (ok, refused) = (
            count("configuration reloaded from"),
            count("reload refused"),
        );
        let since = self.lines().len();
        write_config(self.dir.path(), config);
        self.child.signal("HUP");
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if count("configuration reloaded from") > ok {
                return Ok(self.lines().split_off(since));
            }
            if count("reload refused") > refused {
                let lines = self.lines().split_off(since);
                let why: Vec<String> = lines
                    .into_iter()
                    .filter(|l| l.contains("reload refused"))
                    .collect();
                return Err(why.join("\n"));
            }
            assert!(
                Instant::now() < until && self.child.is_running(),
                "no verdict on the reload:\n{}",
                self.child.output_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) until a log line contains every one of `needles`.
    pub(crate) fn wait_for_all(&self, needles: &[&str]) {
        let until = Instant::now() + Duration::from_secs(20);
        while !self
            .lines()
            .iter()
            .any(|l| needles.iter().all(|n| l.contains(n)))
        {
            assert!(
                Instant::now() < until && self.child.is_running(),
                "no line with {needles:?}:\n{}",
                self.child.output_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) until `count` log lines contain `needle`.
    pub(crate) fn wait_for(&self, needle: &str, count: usize) {
        assert!(
            self.child
                .wait_for_lines(needle, count, Duration::from_secs(20)),
            "no {count} line(s) with {needle:?}:\n{}",
            self.child.output_text()
        );
    }

    /// Every device event in the journal (the daemon writes it in batches: call after the
    /// daemon stopped, or poll).
    pub(crate) fn events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.state_dir().join("devices.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// SIGTERM; the exit status (bounded wait, then SIGKILL and a panic).
    pub(crate) fn terminate(&mut self) -> std::process::ExitStatus {
        let st = self.child.stop("TERM", Duration::from_secs(15));
        st.unwrap_or_else(|| {
            panic!(
                "run did not stop within 15 s of SIGTERM:\n{}",
                self.child.output_text()
            )
        })
    }
}
