//! The redirect server loop, the only RESTCONF code that touches sockets: TCP accept → TLS
//! (tokio-rustls) → HTTP/1.1 or h2 (hyper-util, by ALPN) → the router
//!
//! Slow or hostile clients cannot hold the server: connections over `max-connections` are
//! closed at accept, the TLS handshake, each request's headers (and the wait between requests)
//! and each body must arrive within `client-timeout`, and a connection lives at most
//! [`CONNECTION_MAX_AGE`]. On cancel the listeners stop accepting and open connections finish
//! their requests ([`DRAIN_TIMEOUT`] at most).

use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use rustls::pki_types::UnixTime;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::Layer;
use tracing::{debug, error, info, warn};

use super::identity::{certificate_subject, ClientCertificate};
use super::router::{router, AppState, ConnInfo};
use super::tls::{TlsError, TlsMaterial};
use crate::config::validate::DEFAULT_CLIENT_TIMEOUT;
use crate::config::{Config, RedirectServer};
use crate::metrics::Source;
use crate::runtime::ServiceContext;

/// A connection is asked to close (after its current request) when it is this old.
pub const CONNECTION_MAX_AGE: Duration = Duration::from_secs(300);
/// How long open connections may take to finish after cancel before they are dropped.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// h2 streams per connection (a device makes one or two requests).
const MAX_CONCURRENT_STREAMS: u32 = 16;

/// Counters of the redirect server (logged at shutdown; the status page reads them).
#[derive(Debug, Default)]
pub struct Stats {
    /// TCP connections accepted and served.
    pub connections: AtomicU64,
    /// Connections closed at accept because `max-connections` were open.
    pub connections_refused: AtomicU64,
    /// Connections open now.
    pub active: AtomicUsize,
    /// TLS handshakes that failed (bad ClientHello, no common version or cipher, …).
    pub handshake_failures: AtomicU64,
    /// TLS handshakes not finished within `client-timeout`.
    pub handshake_timeouts: AtomicU64,
    /// get-bootstrapping-data answered with a redirect.
    pub redirects: AtomicU64,
    /// report-progress accepted.
    pub progress_reports: AtomicU64,
    /// Operation requests answered with an RFC 8040 error.
    pub errors: AtomicU64,
    /// Requests refused by the per-source rate limit.
    pub rate_limited: AtomicU64,
    /// Requests for unknown resources.
    pub not_found: AtomicU64,
    /// host-meta requests.
    pub host_meta: AtomicU64,
}

/// The TLS set-up in force: the certificates and the rustls configuration built from them.
struct TlsState {
    material: TlsMaterial,
    config: Arc<ServerConfig>,
}

/// `reason` of `sztp_restconf_dropped_total`: a connection closed at accept because
/// `max-connections` were open.
pub const DROP_MAX_CONNECTIONS: &str = "max-connections";
/// `reason` of `sztp_restconf_dropped_total`: a TLS handshake that failed.
pub const DROP_TLS_HANDSHAKE: &str = "tls-handshake";
/// `reason` of `sztp_restconf_dropped_total`: a TLS handshake not finished in `client-timeout`.
pub const DROP_TLS_TIMEOUT: &str = "tls-timeout";

/// Reads the connection counters of a running redirect server at each scrape:
/// `sztp_restconf_connections_total`, `sztp_restconf_connections_open`. Weak, so a server
/// stopped by a reload reports nothing.
struct RestconfSource(Weak<Stats>);

impl Source for RestconfSource {
    fn encode(&self, enc: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(st) = self.0.upgrade() else {
            return Ok(());
        };
        let total = ConstCounter::new(st.connections.load(Ordering::Relaxed));
        let me = enc.encode_descriptor(
            "restconf_connections",
            "TLS connections accepted by the redirect server",
            None,
            total.metric_type(),
        )?;
        total.encode(me)?;
        let open = ConstGauge::new(st.active.load(Ordering::Relaxed) as i64);
        let me = enc.encode_descriptor(
            "restconf_connections_open",
            "Connections open now on the redirect server",
            None,
            open.metric_type(),
        )?;
        open.encode(me)
    }
}

/// TLS material loaded and checked by [`TlsHandle::prepare`], not yet in force.
pub struct PreparedTls(TlsState);

/// Replaces the TLS set-up of a bound or running redirect server; new connections use the new
/// certificates, open ones keep theirs. The daemon keeps one per running service and reloads
/// it on every SIGHUP (renewed certificate files are read again even when the file did not
/// change). Cloning shares the set-up.
#[derive(Clone)]
pub struct TlsHandle(Arc<ArcSwap<TlsState>>);

impl TlsHandle {
    /// Loads the certificates and `client-ca` that `server` names (or the generated ones in
    /// `state_dir`) and builds the rustls configuration, without putting it in force.
    ///
    /// # Errors
    /// A file cannot be read or parsed, a key does not match its certificate, or no TLS
    /// version is left: the set-up in force is unchanged.
    pub fn prepare(server: &RedirectServer, state_dir: &Path) -> Result<PreparedTls, TlsError> {
        let (material, config) = TlsMaterial::load_with_config(server, state_dir)?;
        Ok(PreparedTls(TlsState { material, config }))
    }

    /// Puts `prepared` in force for the connections accepted from now on.
    pub fn install(&self, prepared: PreparedTls) {
        self.0.store(Arc::new(prepared.0));
    }

    /// [`prepare`](Self::prepare) then [`install`](Self::install).
    ///
    /// # Errors
    /// As `prepare`; the set-up in force is then unchanged.
    pub fn reload(&self, server: &RedirectServer, state_dir: &Path) -> Result<(), TlsError> {
        self.install(Self::prepare(server, state_dir)?);
        Ok(())
    }

    fn current(&self) -> Arc<TlsState> {
        self.0.load_full()
    }
}

/// The redirect server's sockets and TLS material, made before privileges are dropped.
pub struct BoundRestconf {
    listeners: Vec<StdTcpListener>,
    tls: TlsHandle,
}

impl BoundRestconf {
    /// Wraps listeners bound by the caller (tests bind `127.0.0.1:0`) with TLS material.
    ///
    /// # Errors
    /// `min` leaves no TLS version rustls supports, or a listener cannot be made non-blocking.
    pub fn new(
        listeners: Vec<StdTcpListener>,
        material: TlsMaterial,
        min: crate::config::TlsVersion,
    ) -> io::Result<BoundRestconf> {
        let config = material.server_config(min).map_err(io::Error::other)?;
        for l in &listeners {
            l.set_nonblocking(true)?;
        }
        Ok(BoundRestconf {
            listeners,
            tls: TlsHandle(Arc::new(ArcSwap::from_pointee(TlsState {
                material,
                config,
            }))),
        })
    }

    /// The bound addresses (the real ports when the file said port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// The handle that reloads this server's certificates, before or while it serves.
    pub fn tls_handle(&self) -> TlsHandle {
        self.tls.clone()
    }

    /// Duplicates of the listening sockets (same sockets, new descriptors), for
    /// [`bind_reusing`] at the next reload. A socket stays open while a duplicate is held.
    ///
    /// # Errors
    /// `dup` failed (out of descriptors).
    pub fn listener_handles(&self) -> io::Result<Vec<StdTcpListener>> {
        self.listeners
            .iter()
            .map(StdTcpListener::try_clone)
            .collect()
    }
}

/// Binds every `redirect-server.listen` address and loads (or generates) the TLS material;
/// `Ok(None)` when the redirect server is disabled. Logs `listening for restconf on ADDR`.
///
/// # Errors
/// The TLS files cannot be loaded (`tls-certificate FILE: …`, generated ones included) or an
/// address cannot be bound (`cannot listen on ADDR: …`); nothing stays bound then.
pub fn bind(config: &Config) -> io::Result<Option<BoundRestconf>> {
    bind_reusing(config, &[])
}

/// [`bind`], taking for each listen address already bound in `keep` (a running instance's
/// listeners, see [`BoundRestconf::listener_handles`]) a duplicate of that socket instead of a
/// new one: a reload that changes `listen` keeps serving the addresses it still lists (no new
/// bind would succeed while the running instance holds them), and connections waiting in their
/// backlog are accepted by the new instance.
///
/// # Errors
/// As [`bind`].
pub fn bind_reusing(config: &Config, keep: &[StdTcpListener]) -> io::Result<Option<BoundRestconf>> {
    let Some(rs) = &config.redirect_server else {
        return Ok(None);
    };
    let material = TlsMaterial::load(rs, &config.appliance.state_dir).map_err(io::Error::other)?;
    let mut listeners = Vec::with_capacity(rs.listen.len());
    for a in &rs.listen {
        let kept = keep.iter().find(|l| l.local_addr().ok() == Some(*a));
        match kept {
            Some(l) => {
                listeners.push(l.try_clone()?);
                debug!("still listening for restconf on {a}");
            }
            None => {
                let l = bind_listener(*a)?;
                if let Ok(b) = l.local_addr() {
                    info!("listening for restconf on {b}");
                }
                listeners.push(l);
            }
        }
    }
    Ok(Some(BoundRestconf::new(
        listeners,
        material,
        rs.min_tls_version,
    )?))
}

/// One listening TCP socket per address (IPv6 ones v6-only, so `0.0.0.0:443` and `[::]:443`
/// can both be bound), non-blocking, backlog 1024.
///
/// # Errors
/// The first address that cannot be bound: `cannot listen on ADDR: …`.
pub fn bind_listeners(addrs: &[SocketAddr]) -> io::Result<Vec<StdTcpListener>> {
    addrs.iter().map(|a| bind_listener(*a)).collect()
}

fn bind_listener(a: SocketAddr) -> io::Result<StdTcpListener> {
    use socket2::{Domain, Socket, Type};
    let with_addr = |e: io::Error| io::Error::new(e.kind(), format!("cannot listen on {a}: {e}"));
    let s = Socket::new(Domain::for_address(a), Type::STREAM, None).map_err(with_addr)?;
    s.set_reuse_address(true).map_err(with_addr)?;
    if a.is_ipv6() {
        s.set_only_v6(true).map_err(with_addr)?;
    }
    s.bind(&a.into()).map_err(with_addr)?;
    s.listen(1024).map_err(with_addr)?;
    s.set_nonblocking(true).map_err(with_addr)?;
    Ok(s.into())
}

/// Serves until `token` is cancelled, then drains. Configuration is read per request from
/// `ctx.published`, what DHCP learnt about a source address from `ctx.leases`; certificates
/// change only through the [`TlsHandle`] (the daemon reloads it on SIGHUP).
///
/// # Errors
/// None so far: a listener that fails is logged and the others keep serving; the `Result`
/// is the service shape the daemon's supervisor expects.
pub async fn serve(
    bound: BoundRestconf,
    ctx: ServiceContext,
    token: CancellationToken,
) -> io::Result<()> {
    let state = AppState::new(
        ctx.published.clone(),
        ctx.events.clone(),
        Arc::new(ctx.leases.clone()),
    )
    .with_metrics(ctx.metrics.clone());
    ctx.metrics.set_source(
        "restconf",
        Box::new(RestconfSource(Arc::downgrade(&state.stats))),
    );
    serve_state(bound, state, token).await;
    Ok(())
}

/// [`serve`] with a caller-made [`AppState`] (tests read its counters).
pub async fn serve_state(bound: BoundRestconf, state: AppState, token: CancellationToken) {
    let shared = Arc::new(Shared {
        app: router(state.clone()),
        state,
        tls: bound.tls,
    });
    let mut loops = JoinSet::new();
    for l in bound.listeners {
        match TcpListener::from_std(l) {
            Ok(l) => {
                loops.spawn(accept_loop(l, Arc::clone(&shared), token.clone()));
            }
            Err(e) => error!(error = %e, "restconf: cannot register a listener"),
        }
    }
    while loops.join_next().await.is_some() {}
    let st = &shared.state.stats;
    let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
    info!(
        connections = n(&st.connections),
        refused = n(&st.connections_refused),
        handshake_failures = n(&st.handshake_failures),
        handshake_timeouts = n(&st.handshake_timeouts),
        redirects = n(&st.redirects),
        progress_reports = n(&st.progress_reports),
        errors = n(&st.errors),
        rate_limited = n(&st.rate_limited),
        not_found = n(&st.not_found),
        "restconf stopped"
    );
}

struct Shared {
    app: axum::Router,
    state: AppState,
    tls: TlsHandle,
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, token: CancellationToken) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let stats = &shared.state.stats;
                    let snap = shared.state.published.load();
                    let max = snap
                        .config
                        .redirect_server
                        .as_ref()
                        .map_or(usize::MAX, |r| r.max_connections);
                    if stats.active.load(Ordering::Relaxed) >= max {
                        stats.connections_refused.fetch_add(1, Ordering::Relaxed);
                        shared.state.counters().drop_for(DROP_MAX_CONNECTIONS);
                        debug!(%peer, max, "connection limit reached: closed at accept");
                        drop(stream);
                        continue;
                    }
                    stats.active.fetch_add(1, Ordering::Relaxed);
                    stats.connections.fetch_add(1, Ordering::Relaxed);
                    let guard = Active(Arc::clone(&shared));
                    conns.spawn(connection(stream, peer, guard, token.clone()));
                }
                Err(e) => {
                    // EMFILE and friends: the kernel keeps the backlog, retry shortly
                    warn!(error = %e, "restconf: accept failed");
                    tokio::select! {
                        _ = token.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            },
        }
    }
    drop(listener);
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        conns.abort_all();
        while conns.join_next().await.is_some() {}
    }
}

/// Counts an open connection until dropped.
struct Active(Arc<Shared>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.state.stats.active.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn connection(stream: TcpStream, peer: SocketAddr, guard: Active, token: CancellationToken) {
    let shared = &guard.0;
    let _ = stream.set_nodelay(true);
    let local = match stream.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    let timeout = shared
        .state
        .published
        .load()
        .config
        .redirect_server
        .as_ref()
        .map_or(DEFAULT_CLIENT_TIMEOUT, |r| r.client_timeout);
    let tls = shared.tls.current();
    let acceptor = TlsAcceptor::from(Arc::clone(&tls.config));
    let stats = &shared.state.stats;
    let stream = tokio::select! {
        _ = token.cancelled() => return,
        r = tokio::time::timeout(timeout, acceptor.accept(stream)) => match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
                shared.state.counters().drop_for(DROP_TLS_HANDSHAKE);
                debug!(%peer, error = %e, "tls handshake failed");
                return;
            }
            Err(_) => {
                stats.handshake_timeouts.fetch_add(1, Ordering::Relaxed);
                shared.state.counters().drop_for(DROP_TLS_TIMEOUT);
                debug!(%peer, "tls handshake timed out");
                return;
            }
        },
    };
    // the protocol comes from ALPN, not from sniffing the first bytes: a client that sends
    // nothing then meets the h1 header timeout instead of waiting in version detection
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let client_certificate = {
        let (_, conn) = stream.get_ref();
        conn.peer_certificates()
            .and_then(|chain| chain.first().map(|ee| (ee, chain)))
            .map(|(ee, chain)| {
                Arc::new(ClientCertificate {
                    subject: certificate_subject(ee).ok(),
                    verified: tls.material.verify_client_chain(chain, UnixTime::now()),
                })
            })
    };
    let info = ConnInfo {
        peer,
        local,
        client_certificate,
    };
    let service = TowerToHyperService::new(axum::Extension(info).layer(shared.app.clone()));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .keep_alive_interval(Some(timeout))
        .keep_alive_timeout(timeout);
    let builder = if h2 {
        builder.http2_only()
    } else {
        builder.http1_only()
    };
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let age = tokio::time::sleep(CONNECTION_MAX_AGE);
    tokio::pin!(age);
    let mut closing = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    debug!(%peer, error = %e, "connection ended with an error");
                }
                break;
            }
            _ = token.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = &mut age, if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
