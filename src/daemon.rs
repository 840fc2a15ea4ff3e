//! `run`: bind the sockets the file names, serve, reload on SIGHUP, stop on SIGTERM/SIGINT

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{self, Config, Dhcp4, LogFormat};
use crate::dhcp::lease_store::{should_compact, LeaseStore, LeaseWriter};
use crate::dhcp::leases::LeaseTable;
use crate::dhcp::v4::server::{self, unix_now, Shared};
use crate::dhcp::v6::server as v6server;
use crate::journal::DeviceJournal;
use crate::runtime::{Events, Published, ServiceContext, Snapshot};
use crate::EXIT_CONFIG;

/// Expired leases are remembered this long, so a returning device gets its old address.
const KEEP_EXPIRED_SECS: u64 = 86_400;

/// Install the tracing subscriber: text or JSON lines on stderr, `RUST_LOG` to filter.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// `sztp-redirector run --config FILE`; returns the process exit code.
pub fn run(path: &Path) -> i32 {
    let cfg = match config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_CONFIG;
        }
    };
    init_logging(cfg.appliance.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the runtime");
            return 1;
        }
    };
    match rt.block_on(serve(path.to_path_buf(), cfg)) {
        Ok(()) => 0,
        Err(e) => {
            error!("{e:#}");
            1
        }
    }
}

/// The running DHCPv4 service: its shared state and one task per bound interface.
struct Dhcp4Service {
    shared: Arc<Shared>,
    bound: (Vec<String>, u16),
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

fn bind_all(
    shared: &Arc<Shared>,
    d: &Dhcp4,
) -> anyhow::Result<(Vec<JoinHandle<()>>, watch::Sender<bool>)> {
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let mut sockets = Vec::new();
    for name in &d.interfaces {
        let (egress, sock) = server::bind_interface(name, d.port)
            .map_err(|e| anyhow::anyhow!("dhcp4: cannot listen on interface {name}: {e}"))?;
        sockets.push((egress, sock));
    }
    for (egress, sock) in sockets {
        let local = sock.local_addr()?;
        info!("listening for dhcp4 on {} {local}", egress.info.name);
        tasks.push(tokio::spawn(server::serve(
            Arc::clone(shared),
            egress,
            sock,
            stop_rx.clone(),
        )));
    }
    Ok((tasks, stop))
}

async fn serve(path: PathBuf, cfg: Config) -> anyhow::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let state_dir = cfg.appliance.state_dir.clone();
    std::fs::create_dir_all(&state_dir)
        .map_err(|e| anyhow::anyhow!("state-dir {}: {e}", state_dir.display()))?;
    let journal = Arc::new(
        DeviceJournal::open(&state_dir, cfg.appliance.journal_max_bytes)
            .map_err(|e| anyhow::anyhow!("device journal in {}: {e}", state_dir.display()))?,
    );

    let mut dhcp4: Option<Dhcp4Service> = None;
    if let Some(d) = &cfg.dhcp4 {
        let (store, records) = LeaseStore::open(&state_dir)?;
        let table = LeaseTable::from_records(records);
        info!(
            leases = table.len(),
            active = table.active(unix_now()),
            "lease journal replayed"
        );
        let shared = Shared::new(
            Arc::new(d.clone()),
            Arc::new(cfg.policy()),
            table,
            LeaseWriter::spawn(store),
            Some(Arc::clone(&journal)),
        );
        let (tasks, stop) = bind_all(&shared, d)?;
        dhcp4 = Some(Dhcp4Service {
            shared,
            bound: (d.interfaces.clone(), d.port),
            tasks,
            stop,
        });
    }
    // dhcp6 on the runtime seams (bind before the privilege drop, serve under one token);
    // interim wiring until the daemon's generic bind/serve steps land
    let published = Published::new(Snapshot::new(cfg.clone(), 0));
    let token = CancellationToken::new();
    let mut dhcp6 = None;
    if let Some(d) = &cfg.dhcp6 {
        let bound = v6server::bind(d)
            .map_err(|e| anyhow::anyhow!("dhcp6: cannot listen on {:?}: {e}", d.interfaces))?;
        let ctx = ServiceContext {
            published: published.clone(),
            events: Events::new(Some(Arc::clone(&journal))),
            state_dir: state_dir.clone(),
        };
        let setup = v6server::Setup {
            bindings: Default::default(),
            log: Arc::new(v6server::Volatile),
        };
        let svc = v6server::Service6::start(bound, ctx, setup)
            .map_err(|e| anyhow::anyhow!("dhcp6: {e}"))?;
        dhcp6 = Some(tokio::spawn(svc.run(token.clone())));
    }
    if let Some(user) = &cfg.appliance.user {
        drop_privileges(user, &state_dir)?;
    }
    for (on, what) in [
        (cfg.redirect_server.is_some(), "redirect-server"),
        (cfg.dns.is_some(), "dns"),
        (cfg.status.is_some(), "status"),
    ] {
        if on {
            warn!("[{what}] is enabled but this version does not serve it yet");
        }
    }
    if dhcp4.is_none() && dhcp6.is_none() {
        warn!(
            "no service is enabled in {}: nothing to serve",
            path.display()
        );
    }

    let mut tick = tokio::time::interval(Duration::from_secs(30));
    let mut cfg = cfg;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                match config::load(&path) {
                    Err(e) => {
                        for line in e.to_string().lines() {
                            error!("reload refused, keeping the running configuration: {line}");
                        }
                    }
                    Ok(new) => match apply_reload(&mut dhcp4, &cfg, &new) {
                        Ok(()) => {
                            published.publish(Snapshot::new(new.clone(), 0));
                            cfg = new;
                            info!("configuration reloaded from {}", path.display());
                        }
                        Err(e) => error!("{e:#}"),
                    },
                }
            }
            _ = term.recv() => { info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { info!("SIGINT: stopping"); break; }
            _ = tick.tick() => {
                if let Some(s) = &dhcp4 {
                    housekeeping(&s.shared);
                }
            }
        }
    }
    token.cancel();
    if let Some(t) = dhcp6 {
        match t.await {
            Ok(Err(e)) => error!("dhcp6: {e}"),
            Err(e) => error!("dhcp6 task: {e}"),
            Ok(Ok(())) => {}
        }
    }
    if let Some(s) = dhcp4 {
        let _ = s.stop.send(true);
        for t in s.tasks {
            let _ = t.await;
        }
        let syncs = s.shared.writer.syncs();
        s.shared.writer.clone().shutdown();
        let st = &s.shared.stats;
        let n = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        info!(
            received = n(&st.received),
            malformed = n(&st.malformed),
            ignored = n(&st.ignored),
            replies = n(&st.replies),
            send_errors = n(&st.send_errors),
            commits_failed = n(&st.commits_failed),
            lease_syncs = syncs,
            "dhcp4 stopped"
        );
    }
    journal.flush();
    Ok(())
}

/// Sweep stale offers and long-expired leases; compact the journal when it has grown.
fn housekeeping(shared: &Arc<Shared>) {
    let now = unix_now();
    let live = {
        let mut st = shared.state();
        st.table.sweep(now, KEEP_EXPIRED_SECS);
        let live = st.table.records();
        if should_compact(shared.writer.records_since_compact(), live.len()) {
            Some(live)
        } else {
            None
        }
    };
    if let Some(live) = live {
        info!(records = live.len(), "compacting the lease journal");
        shared.writer.compact(live);
    }
}

fn apply_reload(
    dhcp4: &mut Option<Dhcp4Service>,
    old: &Config,
    new: &Config,
) -> anyhow::Result<()> {
    if old.appliance.state_dir != new.appliance.state_dir {
        warn!("appliance.state-dir changed: takes effect at the next start");
    }
    if old.appliance.log_format != new.appliance.log_format {
        warn!("appliance.log-format changed: takes effect at the next start");
    }
    match (dhcp4.as_mut(), &new.dhcp4) {
        (Some(s), Some(d)) => {
            if s.bound != (d.interfaces.clone(), d.port) {
                // bind the new sockets first: if that fails, the old ones keep serving
                let (tasks, stop) = bind_all(&s.shared, d).map_err(|e| {
                    anyhow::anyhow!("reload refused, keeping the running configuration: {e:#}")
                })?;
                let _ = s.stop.send(true);
                s.tasks = tasks;
                s.stop = stop;
                s.bound = (d.interfaces.clone(), d.port);
            }
            s.shared.reload(Arc::new(d.clone()), Arc::new(new.policy()));
        }
        (Some(s), None) => {
            info!("dhcp4 disabled by reload");
            let _ = s.stop.send(true);
            *dhcp4 = None;
        }
        (None, Some(_)) => {
            warn!("dhcp4 enabled by reload: takes effect at the next start");
        }
        (None, None) => {}
    }
    Ok(())
}

/// After binding: become `user`, giving it the state directory.
fn drop_privileges(user: &str, state_dir: &Path) -> anyhow::Result<()> {
    use crate::sys;
    if !sys::is_root() {
        warn!(
            "appliance.user = {user:?} ignored: already running as {}",
            sys::current_user()
        );
        return Ok(());
    }
    let (uid, gid) = sys::lookup(user).map_err(|e| anyhow::anyhow!("appliance.user: {e}"))?;
    sys::chown_state_dir(state_dir, uid, gid)
        .map_err(|e| anyhow::anyhow!("state-dir {}: chown to {user}: {e}", state_dir.display()))?;
    sys::drop_to(uid, gid).map_err(|e| anyhow::anyhow!("cannot drop privileges to {user}: {e}"))?;
    info!("running as {user} (uid {uid}, gid {gid})");
    Ok(())
}
