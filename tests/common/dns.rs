//! In-process DNS services for tests: `dns::bind` on the config's addresses (`127.0.0.1:0`)
//! and `dns::mdns::bind` when `[dns.mdns]` is on, both served on their own thread and runtime, optionally inside a test namespace (setns on
//! that thread only), with a device journal in a temporary state directory.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

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
        let ctx = ServiceContext {
            published: published.clone(),
            events: Events::new(Some(Arc::clone(&journal))),
            state_dir: state.path().to_path_buf(),
        };
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
