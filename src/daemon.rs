//! `run`: bind every socket, drop privileges once, serve every service, reload on SIGHUP, drain
//! on SIGTERM/SIGINT
//!
//! Start-up has three steps (ARCHITECTURE.md, "Runtime"): [`bind`] opens every socket of every
//! enabled service while the process is still privileged and single-threaded; privileges are
//! dropped once (`appliance.user`, keeping [`crate::sys::RUNTIME_CAPABILITIES`]); then a
//! [`Supervisor`] runs every service's `serve` as one task in one `JoinSet`, each under a child
//! of one `CancellationToken`. SIGHUP: validate the file, bind what is new, publish the new
//! [`Snapshot`], then stop what is gone (or rebound) and await it, then start what is new. A bad
//! file or a failed bind keeps the running snapshot and services. SIGTERM/SIGINT cancel the
//! token and wait up to [`DRAIN_TIMEOUT`] for every service to drain.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{self, Appliance, Config, LogFormat};
use crate::devices::{DeviceTable, Fold, Limits};
use crate::dhcp::v4::server as dhcp4;
use crate::dhcp::v6::server as dhcp6;
use crate::dns;
use crate::journal::DeviceJournal;
use crate::metrics::{DeviceCollector, Metrics};
use crate::notify;
use crate::restconf::{self, TlsHandle};
use crate::runtime::{Events, Published, ServiceContext, Snapshot};
use crate::state_dir::{Access, StateDir};
use crate::EXIT_CONFIG;

/// How long SIGTERM/SIGINT waits for the services to drain before giving up (exit code 1).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The lock file in state-dir held (flock, exclusive) while a daemon runs on it.
pub const LOCK_FILE: &str = "lock";

/// The log filter when `RUST_LOG` is not set: our info lines; hickory-server's per-query info
/// lines (`request:… src:…`, `query:…`) only from warn up, since every DNS query would
/// otherwise write two lines.
pub const DEFAULT_LOG_FILTER: &str = "info,hickory_server=warn";

/// Install the tracing subscriber: text or JSON lines on stderr, `RUST_LOG` to filter
/// (default [`DEFAULT_LOG_FILTER`]).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

// ---------------------------------------------------------------------------------------------
// The services. ADD A SERVICE: a field in `Bound`, a line in `bind`, a `ServiceName` variant
// with its binding key, and an arm in `Supervisor::spawn`.

/// Every socket of every enabled service, bound before privileges are dropped. `None`: the
/// service is off in the file.
#[derive(Default)]
pub struct Bound {
    /// `[dhcp4]`: one UDP socket per interface (and raw senders).
    pub dhcp4: Option<dhcp4::Bound4>,
    /// `[dhcp6]`: one UDP socket joined to ff02::1:2 on every interface.
    pub dhcp6: Option<dhcp6::Bound6>,
    /// `[redirect-server]`: one TCP listener per `listen` address, and its TLS material.
    pub restconf: Option<restconf::BoundRestconf>,
    /// `[dns]`: UDP and TCP on each `listen` address.
    pub dns: Option<dns::BoundDns>,
    /// `[dns.mdns]`: port 5353 on each interface, IPv4 and IPv6.
    pub mdns: Option<dns::mdns::BoundMdns>,
    /// `[status]`: one TCP listener per `listen` address, and the token.
    pub status: Option<crate::status::BoundStatus>,
    // ADD A SERVICE (1/4): its bound sockets, e.g.
    //   pub tftp: Option<crate::tftp::BoundTftp>,
}

/// Binds every socket the file enables, in file order of the services; logs one `listening for
/// …` line per socket.
///
/// # Errors
/// The first socket that cannot be bound, prefixed with the service (`dhcp4: cannot listen on
/// interface eth9: no such interface "eth9"`); nothing stays bound then.
pub fn bind(cfg: &Config) -> anyhow::Result<Bound> {
    let mut b = Bound::default();
    for name in ServiceName::ALL {
        b.bind_one(name, cfg, None)?;
    }
    Ok(b)
}

/// A service the daemon runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceName {
    /// DHCPv4 server (RFC 2131) with option 143.
    Dhcp4,
    /// DHCPv6 server (RFC 8415) with option 136.
    Dhcp6,
    /// The RESTCONF redirect server over HTTPS (RFC 8572 §7, RFC 8040).
    Restconf,
    /// Unicast DNS server (RFC 1035, RFC 8572 §4.2): `_sztp._tcp` SRV, `<serial>._sztp` TXT.
    Dns,
    /// mDNS responder (RFC 6762) for the same records under `.local`.
    Mdns,
    /// Status server: the page, `/api`, `/metrics`.
    Status,
    // ADD A SERVICE (2/4): a variant, and its lines in ALL, as_str and binding_key.
}

impl ServiceName {
    /// Every service, in start order.
    pub const ALL: [ServiceName; 6] = [
        ServiceName::Dhcp4,
        ServiceName::Dhcp6,
        ServiceName::Dns,
        ServiceName::Mdns,
        ServiceName::Restconf,
        ServiceName::Status,
    ];

    /// The name used in logs (`dhcp4`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceName::Dhcp4 => "dhcp4",
            ServiceName::Dhcp6 => "dhcp6",
            ServiceName::Restconf => "restconf",
            ServiceName::Dns => "dns",
            ServiceName::Mdns => "mdns",
            ServiceName::Status => "status",
        }
    }

    /// What, when a reload changes it, needs new sockets (and so a new instance of the
    /// service); `None` when the service is off. Everything else in the file reaches a running
    /// service through the published snapshot (and, for the redirect server's certificates,
    /// through its [`TlsHandle`], reloaded on every SIGHUP).
    pub fn binding_key(self, cfg: &Config) -> Option<String> {
        match self {
            ServiceName::Dhcp4 => cfg
                .dhcp4
                .as_ref()
                .map(|d| format!("{:?} port {}", d.interfaces, d.port)),
            ServiceName::Dhcp6 => cfg
                .dhcp6
                .as_ref()
                .map(|d| format!("{:?} port {}", d.interfaces, d.port)),
            ServiceName::Restconf => cfg
                .redirect_server
                .as_ref()
                .map(|r| format!("{:?}", r.listen)),
            ServiceName::Dns => cfg.dns.as_ref().map(|d| format!("{:?}", d.listen)),
            ServiceName::Mdns => cfg
                .dns
                .as_ref()
                .and_then(|d| d.mdns.as_ref())
                .map(|m| format!("{:?}", m.interfaces)),
            // not the token: the running server re-reads it after a reload
            ServiceName::Status => cfg.status.as_ref().map(|s| format!("{:?}", s.listen)),
        }
    }
}

impl Bound {
    /// Binds `name`'s sockets; `running` is the instance a reload replaces (a unicast DNS
    /// rebind takes over the addresses it still lists, see [`dns::Listeners`]).
    fn bind_one(
        &mut self,
        name: ServiceName,
        cfg: &Config,
        running: Option<&Running>,
    ) -> anyhow::Result<()> {
        let prefix = |e: io::Error| anyhow::anyhow!("{}: {e}", name.as_str());
        let on = name.binding_key(cfg).is_some();
        match name {
            ServiceName::Dhcp4 => {
                self.dhcp4 = cfg
                    .dhcp4
                    .as_ref()
                    .map(dhcp4::bind)
                    .transpose()
                    .map_err(prefix)?
            }
            ServiceName::Dhcp6 => {
                self.dhcp6 = cfg
                    .dhcp6
                    .as_ref()
                    .map(dhcp6::bind)
                    .transpose()
                    .map_err(prefix)?
            }
            ServiceName::Restconf => {
                let keep = running
                    .and_then(|r| r.restconf.as_ref())
                    .map_or(&[][..], |c| &c.listeners[..]);
                self.restconf = restconf::bind_reusing(cfg, keep).map_err(prefix)?
            }
            ServiceName::Dns if on => {
                let previous = running.and_then(|r| r.dns_listeners.as_ref());
                let b = dns::bind_reusing(cfg, previous.unwrap_or(&dns::Listeners::default()))
                    .map_err(prefix)?;
                self.dns = Some(b);
            }
            ServiceName::Mdns if on => self.mdns = Some(dns::mdns::bind(cfg).map_err(prefix)?),
            // off in the file: nothing to bind
            ServiceName::Dns | ServiceName::Mdns => {}
            ServiceName::Status => {
                self.status = cfg
                    .status
                    .as_ref()
                    .map(crate::status::bind)
                    .transpose()
                    .map_err(prefix)?
            } // ADD A SERVICE (3/4): bind it, e.g.
              //   ServiceName::Dns => self.dns = cfg.dns.as_ref().map(dns::bind).transpose().map_err(prefix)?,
        }
        Ok(())
    }

    /// The bound services and their local socket addresses, in start order.
    pub fn listening(&self) -> Vec<(ServiceName, Vec<SocketAddr>)> {
        let mut v = Vec::new();
        if let Some(b) = &self.dhcp4 {
            let addrs = b
                .interfaces
                .iter()
                .filter_map(|i| i.socket.local_addr().ok());
            v.push((ServiceName::Dhcp4, addrs.collect()));
        }
        if let Some(b) = &self.dhcp6 {
            v.push((
                ServiceName::Dhcp6,
                b.socket.local_addr().into_iter().collect(),
            ));
        }
        if let Some(b) = &self.restconf {
            v.push((ServiceName::Restconf, b.local_addrs()));
        }
        if let Some(b) = &self.dns {
            let udp = b.udp.iter().filter_map(|s| s.local_addr().ok());
            v.push((ServiceName::Dns, udp.collect()));
        }
        if let Some(b) = &self.mdns {
            let addrs = b.sockets.iter().filter_map(|s| s.socket.local_addr().ok());
            v.push((ServiceName::Mdns, addrs.collect()));
        }
        if let Some(b) = &self.status {
            let addrs = b.listeners.iter().filter_map(|l| l.local_addr().ok());
            v.push((ServiceName::Status, addrs.collect()));
        }
        // ADD A SERVICE: listed here when bound.
        v
    }

    fn names(&self) -> Vec<ServiceName> {
        self.listening().into_iter().map(|(n, _)| n).collect()
    }
}

// ---------------------------------------------------------------------------------------------

/// A service task's result, tagged so the supervisor knows whose it is.
type TaskResult = (ServiceName, io::Result<()>);

struct Running {
    token: CancellationToken,
    id: Id,
    key: String,
    addrs: Vec<SocketAddr>,
    /// Unicast DNS: duplicates of its sockets, for a reload that changes `[dns] listen`.
    dns_listeners: Option<dns::Listeners>,
    /// The redirect server's controls, when this is the redirect server.
    restconf: Option<RestconfControl>,
}

/// What the supervisor keeps of a running redirect server: its TLS handle (the certificates
/// are read again on every SIGHUP, so renewed files take effect without a restart) and
/// duplicates of its listening sockets (a reload that changes `listen` keeps the addresses it
/// still lists, see [`restconf::bind_reusing`]).
struct RestconfControl {
    tls: TlsHandle,
    listeners: Vec<StdTcpListener>,
}

/// Runs the services of a [`Bound`] in one `JoinSet`, each under a child of one token, and
/// swaps them on reload.
pub struct Supervisor {
    ctx: ServiceContext,
    token: CancellationToken,
    tasks: JoinSet<TaskResult>,
    running: BTreeMap<ServiceName, Running>,
    /// Services that ended by themselves while the supervisor was awaiting another one.
    ended: Vec<TaskResult>,
    /// `[appliance]` as it was at start: state-dir, log-format and user take effect only at a
    /// start, so every snapshot published by a reload keeps these values (what is in force).
    at_start: Appliance,
    /// The device table's bounds at start (restart-only, like `at_start`).
    limits_at_start: Limits,
}

impl Supervisor {
    /// Spawns every service of `bound`. Must be called inside a tokio runtime.
    pub fn start(bound: Bound, ctx: ServiceContext, token: CancellationToken) -> Supervisor {
        let at_start = ctx.published.load().config.appliance.clone();
        let limits_at_start = table_limits(&ctx.published.load().config);
        let mut s = Supervisor {
            ctx,
            token,
            tasks: JoinSet::new(),
            running: BTreeMap::new(),
            ended: Vec::new(),
            at_start,
            limits_at_start,
        };
        let cfg = s.ctx.published.load().config.clone();
        s.spawn(bound, &cfg);
        s
    }

    /// The services running now, in start order.
    pub fn running(&self) -> Vec<ServiceName> {
        self.running.keys().copied().collect()
    }

    /// The local addresses of a running service's sockets (empty when it is not running).
    pub fn local_addrs(&self, name: ServiceName) -> Vec<SocketAddr> {
        self.running
            .get(&name)
            .map(|r| r.addrs.clone())
            .unwrap_or_default()
    }

    fn spawn(&mut self, mut bound: Bound, cfg: &Config) {
        for (name, addrs) in bound.listening() {
            let token = self.token.child_token();
            let (ctx, t) = (self.ctx.clone(), token.clone());
            let mut restconf = None;
            let mut dns_listeners = None;
            let handle = match name {
                ServiceName::Dhcp4 => {
                    let b = bound.dhcp4.take().expect("listed as bound");
                    self.tasks
                        .spawn(async move { (name, dhcp4::serve(b, ctx, t).await) })
                }
                ServiceName::Dhcp6 => {
                    let b = bound.dhcp6.take().expect("listed as bound");
                    self.tasks
                        .spawn(async move { (name, dhcp6::serve(b, ctx, t).await) })
                }
                ServiceName::Restconf => {
                    let b = bound.restconf.take().expect("listed as bound");
                    let listeners = b.listener_handles().unwrap_or_else(|e| {
                        warn!(error = %e, "restconf: a reload that changes listen will rebind every address");
                        Vec::new()
                    });
                    restconf = Some(RestconfControl {
                        tls: b.tls_handle(),
                        listeners,
                    });
                    self.tasks
                        .spawn(async move { (name, restconf::serve(b, ctx, t).await) })
                }
                ServiceName::Dns => {
                    let b = bound.dns.take().expect("listed as bound");
                    dns_listeners = b
                        .listeners()
                        .inspect_err(|e| {
                            warn!(error = %e, "cannot duplicate the dns sockets: a reload changing [dns] listen will bind every address anew")
                        })
                        .ok();
                    self.tasks
                        .spawn(async move { (name, dns::serve(b, ctx, t).await) })
                }
                ServiceName::Mdns => {
                    let b = bound.mdns.take().expect("listed as bound");
                    self.tasks
                        .spawn(async move { (name, dns::mdns::serve(b, ctx, t).await) })
                }
                ServiceName::Status => {
                    let b = bound.status.take().expect("listed as bound");
                    self.tasks
                        .spawn(async move { (name, crate::status::serve(b, ctx, t).await) })
                } // ADD A SERVICE (4/4): spawn its serve, e.g.
                  //   ServiceName::Dns => { let b = bound.dns.take().expect("listed as bound");
                  //       self.tasks.spawn(async move { (name, dns::serve(b, ctx, t).await) }) }
            };
            let key = name.binding_key(cfg).unwrap_or_default();
            self.running.insert(
                name,
                Running {
                    token,
                    id: handle.id(),
                    key,
                    addrs,
                    restconf,
                    dns_listeners,
                },
            );
        }
    }

    /// Applies a validated configuration: binds what is new, reads the certificates of a
    /// redirect server that keeps running, publishes the new snapshot (with interface facts read
    /// now) and puts those certificates in force, stops what is gone or rebound and awaits it,
    /// then starts what is new. A service whose binding key is unchanged keeps running and
    /// reads the new snapshot from its next request on. The restart-only keys
    /// (`appliance.state-dir`, `log-format`, `user`) keep their start values in the published
    /// snapshot (a change is logged); `appliance.journal-max-size` applies at once. Whatever
    /// sequence of files is reloaded, the result is what a fresh start on the last one would
    /// serve (`tests/reload_sequences.rs`).
    ///
    /// # Errors
    /// A new socket cannot be bound, or the redirect server's TLS files cannot be loaded:
    /// nothing changed (the old snapshot, services and certificates stay).
    pub async fn reload(&mut self, mut cfg: Config) -> anyhow::Result<()> {
        let old = self.ctx.published.load();
        // compared with what is in force (the start's), not with the last file: restoring the
        // file after an empty one must not warn, and must not publish another state-dir
        let start = &self.at_start;
        for (what, changed) in [
            (
                "appliance.state-dir",
                start.state_dir != cfg.appliance.state_dir,
            ),
            (
                "appliance.log-format",
                start.log_format != cfg.appliance.log_format,
            ),
            ("appliance.user", start.user != cfg.appliance.user),
            (
                "status.max-devices or status.events-per-device",
                self.limits_at_start != table_limits(&cfg),
            ),
        ] {
            if changed {
                warn!("{what} changed: takes effect at the next start");
            }
        }
        cfg.appliance.state_dir = start.state_dir.clone();
        cfg.appliance.log_format = start.log_format;
        cfg.appliance.user = start.user.clone();
        let mut fresh = Bound::default();
        let mut stop = Vec::new();
        let mut tls = None;
        for name in ServiceName::ALL {
            let want = name.binding_key(&cfg);
            let running = self.running.get(&name);
            let have = running.map(|r| r.key.clone());
            if want == have {
                if let (Some(c), Some(rs)) = (
                    running.and_then(|r| r.restconf.as_ref()),
                    cfg.redirect_server.as_ref(),
                ) {
                    let prepared = TlsHandle::prepare(rs, &self.ctx.state_dir)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", name.as_str()))?;
                    tls = Some((c.tls.clone(), prepared));
                }
                continue;
            }
            if want.is_some() {
                fresh.bind_one(name, &cfg, running)?;
            }
            if have.is_some() {
                stop.push(name);
            }
        }
        // refuse now rather than leave a running status server with a token it cannot read
        if let Some(st) = &cfg.status {
            crate::status::read_token(st).map_err(|e| anyhow::anyhow!("status: {e}"))?;
        }
        // vouchers and keys are read again: a bad one refuses the reload, the old stay
        let owner = load_owner(&cfg).map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(j) = self.ctx.events.journal() {
            j.set_max_bytes(cfg.appliance.journal_max_bytes);
        }
        self.ctx
            .published
            .publish(Snapshot::read(cfg, old.generation + 1).with_owner(owner));
        if let Some((handle, prepared)) = tls {
            handle.install(prepared);
            info!("restconf: TLS certificates reloaded");
        }
        for name in stop {
            info!(
                service = name.as_str(),
                "stopping for the new configuration"
            );
            self.stop(name).await;
        }
        let cfg = self.ctx.published.load().config.clone();
        self.spawn(fresh, &cfg);
        Ok(())
    }

    /// Cancels one service and waits until its task has ended.
    async fn stop(&mut self, name: ServiceName) {
        let Some(r) = self.running.remove(&name) else {
            return;
        };
        r.token.cancel();
        while let Some(res) = self.tasks.join_next_with_id().await {
            match res {
                Ok((id, out)) if id == r.id => {
                    log_end(out);
                    return;
                }
                Ok((id, out)) => {
                    self.running.retain(|_, x| x.id != id);
                    self.ended.push(out);
                }
                Err(e) if e.id() == r.id => {
                    error!(service = name.as_str(), error = %e, "service task failed");
                    return;
                }
                Err(e) => {
                    self.running.retain(|_, x| x.id != e.id());
                    self.ended
                        .push((name, Err(io::Error::other(e.to_string()))));
                }
            }
        }
    }

    /// Waits until a service ends without having been asked to (an error, or a bug), and
    /// returns which and why. Pending forever when none does.
    pub async fn next_exit(&mut self) -> TaskResult {
        if let Some(r) = self.ended.pop() {
            return r;
        }
        loop {
            match self.tasks.join_next_with_id().await {
                Some(Ok((id, out))) => {
                    self.running.retain(|_, x| x.id != id);
                    return out;
                }
                Some(Err(e)) => {
                    let name = self
                        .running
                        .iter()
                        .find(|(_, x)| x.id == e.id())
                        .map(|(n, _)| *n);
                    self.running.retain(|_, x| x.id != e.id());
                    if let Some(name) = name {
                        return (name, Err(io::Error::other(e.to_string())));
                    }
                }
                None => std::future::pending::<()>().await,
            }
        }
    }

    /// Cancels every service and waits up to `timeout` for all of them to end.
    ///
    /// # Errors
    /// A service returned an error, or some did not end in time (they are aborted).
    pub async fn drain(mut self, timeout: Duration) -> anyhow::Result<()> {
        self.token.cancel();
        let mut failed = Vec::new();
        for (name, out) in self.ended.drain(..) {
            if let Err(e) = out {
                failed.push(format!("{}: {e}", name.as_str()));
            }
        }
        let all = async {
            while let Some(res) = self.tasks.join_next().await {
                match res {
                    Ok((_, Ok(()))) => {}
                    Ok((name, Err(e))) => failed.push(format!("{}: {e}", name.as_str())),
                    Err(e) => failed.push(e.to_string()),
                }
            }
        };
        if tokio::time::timeout(timeout, all).await.is_err() {
            let left: Vec<&str> = self.running.keys().map(|n| n.as_str()).collect();
            self.tasks.abort_all();
            anyhow::bail!(
                "services did not stop within {}s: {}",
                timeout.as_secs(),
                left.join(", ")
            );
        }
        if failed.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("{}", failed.join("; "))
        }
    }
}

fn log_end((name, out): TaskResult) {
    match out {
        Ok(()) => info!(service = name.as_str(), "service stopped"),
        Err(e) => error!(service = name.as_str(), error = %e, "service stopped with an error"),
    }
}

/// Runs every service of `bound` until `token` is cancelled, then drains them (at most
/// [`DRAIN_TIMEOUT`]). No signals, no reload: the in-process form of `run` for tests.
///
/// # Errors
/// A service ended by itself (then the others are drained too), or the drain failed.
pub async fn serve(
    bound: Bound,
    ctx: ServiceContext,
    token: CancellationToken,
) -> anyhow::Result<()> {
    let mut sup = Supervisor::start(bound, ctx, token.clone());
    let early = tokio::select! {
        _ = token.cancelled() => None,
        (name, out) = sup.next_exit() => Some((name, out)),
    };
    let drained = sup.drain(DRAIN_TIMEOUT).await;
    if let Some((name, out)) = early {
        out.map_err(|e| anyhow::anyhow!("{}: {e}", name.as_str()))?;
        anyhow::bail!("{} stopped by itself", name.as_str());
    }
    drained
}

/// Takes the lock of an open state directory, so a second daemon on the same state-dir refuses
/// to start (two servers would hand one address to two clients and lose each other's leases
/// when one compacts the journal). The lock file is opened under the directory's descriptor
/// without following links. The lock lasts as long as the returned file is open.
///
/// # Errors
/// The lock file cannot be made (or is a link, or not a regular file), or another process
/// holds the lock: `state-dir DIR is in use by another sztp-redirector (lock DIR/lock held)`.
pub fn lock_state_dir(dir: &StateDir) -> anyhow::Result<nix::fcntl::Flock<File>> {
    let path = dir.join(LOCK_FILE);
    let file = dir
        .open_file(LOCK_FILE, Access::ReadWriteCreate)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(
        |(_, errno)| match errno {
            nix::errno::Errno::EWOULDBLOCK => anyhow::anyhow!(
                "state-dir {} is in use by another sztp-redirector (lock {} held)",
                dir.path().display(),
                path.display()
            ),
            e => anyhow::anyhow!("{}: {e}", path.display()),
        },
    )
}

/// Reads `[owner]` and the trust anchors of `cfg`: an error refuses the configuration; an
/// expired voucher is only logged (those devices get unsigned redirects, journaled as such).
fn load_owner(cfg: &Config) -> Result<Option<crate::owner::OwnerMaterial>, config::ConfigErrors> {
    let loaded = crate::owner::load(cfg, crate::journal::unix_now());
    if !loaded.errors.is_empty() {
        return Err(config::ConfigErrors(loaded.errors));
    }
    for e in &loaded.expired {
        warn!("{e}");
    }
    if let Some(m) = &loaded.material {
        info!(
            vouchers = m.vouchers.len(),
            owner = %m.chain[0].tbs_certificate().subject(),
            "owner material loaded: devices with a voucher get signed redirects"
        );
    }
    Ok(loaded.material)
}

/// The signals `run` handles; blocked from the start until their handlers are installed.
const HANDLED: [nix::sys::signal::Signal; 3] = [
    nix::sys::signal::Signal::SIGHUP,
    nix::sys::signal::Signal::SIGTERM,
    nix::sys::signal::Signal::SIGINT,
];

fn handled_set() -> nix::sys::signal::SigSet {
    let mut set = nix::sys::signal::SigSet::empty();
    for s in HANDLED {
        set.add(s);
    }
    set
}

/// `sztp-redirector run --config FILE`; returns the process exit code.
///
/// SIGHUP, SIGTERM and SIGINT are blocked from the first instruction until their handlers are
/// in place: one that arrives while the daemon starts (binding, dropping privileges, replaying
/// journals) waits and is then acted on, instead of killing it with the default action (a
/// reload sent by `systemctl reload` or logrotate at the wrong moment used to stop the
/// appliance).
pub fn run(path: &Path) -> i32 {
    if let Err(e) = nix::sys::signal::pthread_sigmask(
        nix::sys::signal::SigmaskHow::SIG_BLOCK,
        Some(&handled_set()),
        None,
    ) {
        eprintln!("cannot block signals during start-up: {e}");
        return 1;
    }
    let cfg = match config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_CONFIG;
        }
    };
    init_logging(cfg.appliance.log_format);
    // read before the privilege drop, like the sockets
    let owner = match load_owner(&cfg) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_CONFIG;
        }
    };
    match start(path, cfg, owner) {
        Ok(()) => 0,
        Err(e) => {
            error!("{e:#}");
            1
        }
    }
}

fn start(
    path: &Path,
    cfg: Config,
    owner: Option<crate::owner::OwnerMaterial>,
) -> anyhow::Result<()> {
    let state_dir = cfg.appliance.state_dir.clone();
    // who the process will be: the state-dir must belong to it (or to root, before the drop)
    let target = match &cfg.appliance.user {
        Some(user) if crate::sys::is_root() => Some((
            user.as_str(),
            crate::sys::lookup(user).map_err(|e| anyhow::anyhow!("appliance.user: {e}"))?,
        )),
        Some(user) => {
            warn!(
                "appliance.user = {user:?} ignored: already running as {}",
                crate::sys::current_user()
            );
            None
        }
        None => None,
    };
    let dir = StateDir::create(&state_dir).map_err(|e| anyhow::anyhow!("state-dir: {e}"))?;
    dir.check_private(target.map(|(_, (uid, _))| uid))
        .map_err(anyhow::Error::msg)?;
    // before binding: a second daemon on this state-dir must not even bind
    let _lock = lock_state_dir(&dir)?;
    // still one thread: every socket, then the privilege drop, then threads inherit it
    let bound = bind(&cfg)?;
    match target {
        Some((user, (uid, gid))) => drop_privileges(user, uid, gid, &dir)?,
        None => {
            crate::sys::restrict().map_err(|e| anyhow::anyhow!("cannot set no-new-privs: {e}"))?
        }
    }
    let journal = Arc::new(
        DeviceJournal::open(&state_dir, cfg.appliance.journal_max_bytes)
            .map_err(|e| anyhow::anyhow!("device journal in {}: {e}", state_dir.display()))?,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the runtime: {e}"))?;
    let (events, metrics) = device_table(&cfg, &state_dir, &journal)?;
    let ctx = ServiceContext::new(
        Published::new(Snapshot::read(cfg, 0).with_owner(owner)),
        events,
        state_dir,
        metrics,
    );
    let res = rt.block_on(supervise(path.to_path_buf(), bound, ctx));
    journal.flush();
    res
}

/// The metrics registry and the event sink: the device journal and the device table (replayed
/// from the journal, so a restart keeps the status page), both counted in the metrics. The
/// table runs whether or not `[status]` is on, so a reload can turn the page on.
fn device_table(
    cfg: &Config,
    state_dir: &Path,
    journal: &Arc<DeviceJournal>,
) -> anyhow::Result<(Events, Metrics)> {
    let metrics = Metrics::new();
    let mut fold = Fold::new(table_limits(cfg));
    match fold.replay_journal(state_dir) {
        Ok((events, skipped)) => info!(
            events,
            skipped,
            devices = fold.len(),
            "device journal replayed into the device table"
        ),
        Err(e) => warn!(error = %e, "device journal not replayed: the device table starts empty"),
    }
    let table = Arc::new(
        DeviceTable::spawn(fold, Some(metrics.events.clone()))
            .map_err(|e| anyhow::anyhow!("cannot start the device table: {e}"))?,
    );
    metrics.register_collector(Box::new(DeviceCollector::new(Some(journal), Some(&table))));
    Ok((
        Events::new(Some(Arc::clone(journal))).with_table(table),
        metrics,
    ))
}

/// The device table's bounds: `[status]`'s, or the defaults when the page is off (the table
/// still runs, for a reload that turns it on).
fn table_limits(cfg: &Config) -> Limits {
    cfg.status
        .as_ref()
        .map_or_else(Limits::default, |s| Limits {
            max_devices: s.max_devices,
            events_per_device: s.events_per_device,
        })
}

/// `STATUS=` for systemd: what is served.
fn serving(names: &[ServiceName]) -> String {
    if names.is_empty() {
        "serving nothing (no service enabled)".to_owned()
    } else {
        let n: Vec<&str> = names.iter().map(|n| n.as_str()).collect();
        format!("serving {}", n.join(", "))
    }
}

async fn supervise(path: PathBuf, bound: Bound, ctx: ServiceContext) -> anyhow::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    // With a handler, a write past RLIMIT_FSIZE fails with EFBIG (and the journal recovers
    // once the limit allows it again) instead of SIGXFSZ killing the process. Tokio keeps the
    // handler installed after the stream is dropped.
    drop(signal(SignalKind::from_raw(libc::SIGXFSZ))?);
    // this future runs on the thread that blocked them in `run`: signals that came during
    // start-up are delivered now, to the handlers above
    nix::sys::signal::pthread_sigmask(
        nix::sys::signal::SigmaskHow::SIG_UNBLOCK,
        Some(&handled_set()),
        None,
    )?;
    let names: Vec<&str> = bound.names().iter().map(|n| n.as_str()).collect();
    if names.is_empty() {
        warn!(
            "no service is enabled in {}: nothing to serve",
            path.display()
        );
    }
    let token = CancellationToken::new();
    let mut sup = Supervisor::start(bound, ctx, token);
    info!(services = %names.join(","), "ready");
    notify::ready(&serving(&sup.running()));
    // WATCHDOG=1 from this loop: a stalled runtime or supervisor stops it and systemd restarts
    let mut watchdog = notify::watchdog_interval().map(tokio::time::interval);
    let mut early = None;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                notify::reloading();
                match config::load(&path) {
                    Err(e) => {
                        for line in e.to_string().lines() {
                            error!("reload refused, keeping the running configuration: {line}");
                        }
                    }
                    Ok(new) => match sup.reload(new).await {
                        Ok(()) => info!("configuration reloaded from {}", path.display()),
                        Err(e) => error!("reload refused, keeping the running configuration: {e:#}"),
                    },
                }
                notify::ready(&serving(&sup.running()));
            }
            _ = async { watchdog.as_mut().expect("guarded").tick().await }, if watchdog.is_some() => {
                notify::watchdog();
            }
            _ = term.recv() => { info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { info!("SIGINT: stopping"); break; }
            (name, out) = sup.next_exit() => {
                early = Some(match out {
                    Ok(()) => anyhow::anyhow!("{} stopped by itself", name.as_str()),
                    Err(e) => anyhow::anyhow!("{}: {e}", name.as_str()),
                });
                break;
            }
        }
    }
    notify::stopping();
    let drained = sup.drain(DRAIN_TIMEOUT).await;
    match early {
        Some(e) => Err(e),
        None => drained,
    }
}

/// After binding: become `user` (uid:gid), giving it the state directory through its
/// descriptor.
fn drop_privileges(user: &str, uid: u32, gid: u32, dir: &StateDir) -> anyhow::Result<()> {
    use crate::sys;
    let give = |d: &StateDir| {
        d.give_to(uid, gid).map_err(|e| {
            anyhow::anyhow!("state-dir {}: giving it to {user}: {e}", d.path().display())
        })
    };
    let mut skipped = give(dir)?;
    // the redirect server's generated TLS keys (0600), read again on every SIGHUP
    let tls = restconf::tls::GENERATED_DIR;
    let sub = dir
        .open_dir(tls)
        .map_err(|e| anyhow::anyhow!("state-dir: {e}"))?;
    if let Some(sub) = sub {
        skipped.retain(|s| !s.starts_with(&format!("{tls}: ")));
        skipped.extend(give(&sub)?.into_iter().map(|s| format!("{tls}/{s}")));
    }
    for entry in skipped {
        warn!(state_dir = %dir.path().display(), %entry, "left as it is when giving state-dir to {user}");
    }
    let kept = sys::drop_to(uid, gid, &sys::RUNTIME_CAPABILITIES)
        .map_err(|e| anyhow::anyhow!("cannot drop privileges to {user}: {e}"))?;
    let mut kept: Vec<String> = kept.iter().map(|c| c.to_string()).collect();
    kept.sort();
    info!(
        capabilities = %kept.join(","),
        bounding_set = "empty",
        no_new_privs = true,
        "running as {user} (uid {uid}, gid {gid})"
    );
    Ok(())
}
