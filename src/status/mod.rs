//! The status server: the device table, leases and metrics over HTTP, and the page showing them
//!
//! Routes (all `GET`):
//! - `/`: the HTML page (with `/page.js`, `/page.css`; everything is in the binary);
//! - `/metrics`: Prometheus text 0.0.4, or OpenMetrics 1.0 when the scraper's `Accept` asks
//!   for `application/openmetrics-text`;
//! - `/api/devices[?stage=S][&status=V]`: `{"generation", "total", "counts", "devices": […]}`,
//!   one [`DeviceSummary`] per device, most recently seen first; `stage` keeps devices whose
//!   furthest stage is S (`dhcp-offered` …), `status` those whose verdict is V (`stuck` …).
//!   Carries an `ETag`; `If-None-Match` with it answers 304 while nothing changed (the page
//!   polls this way);
//! - `/api/devices/{key}`: one [`DeviceDetail`] (summary and timeline) by serial, MAC, DUID
//!   (hex), address or `#id`; 404 with `{"error": …}` when unknown;
//! - `/api/leases`: the DHCPv4 and DHCPv6 lease journals, `[{"proto", "address", "mac", "state",
//!   "expires", "expires_unix", "client_id", "hostname"}]`, DHCPv6 rows with `"iaid"` and the
//!   DUID as `client_id`; DHCPv4 first, each by address.
//!
//! Access: listens on loopback unless `[status] listen` names other addresses; with
//! `token-file`, `/api/*` and `/metrics` need `Authorization: Bearer <token>` (401
//! otherwise); the page itself holds no data and asks for the token once. The token file is
//! read at start (before privileges drop) and again after each reload (SIGHUP, as the service
//! user, like the configuration file): a rotated token takes effect without new listeners.

pub mod client;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::Status;
use crate::devices::{
    DeviceDetail, DeviceSummary, DeviceTable, Stage, VerdictContext, VerdictStatus,
};
use crate::metrics::{Metrics, Service, ServiceCounters};
use crate::runtime::{Published, ServiceContext};

const PAGE_HTML: &str = include_str!("page.html");
const PAGE_JS: &str = include_str!("page.js");
const PAGE_CSS: &str = include_str!("page.css");

/// What `bind` opened for the status server: its listeners and the token they require.
#[derive(Debug)]
pub struct BoundStatus {
    /// One listener per `[status] listen` address, already bound.
    pub listeners: Vec<std::net::TcpListener>,
    /// The bearer token from `token-file`, if any.
    pub token: Option<String>,
}

/// The bearer token in `[status] token-file` (surrounding whitespace trimmed); `None` without
/// a token file.
///
/// # Errors
/// The file cannot be read or holds only whitespace: `status.token-file PATH: …`.
pub fn read_token(st: &Status) -> std::io::Result<Option<String>> {
    let Some(p) = &st.token_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(p).map_err(|e| {
        std::io::Error::new(e.kind(), format!("status.token-file {}: {e}", p.display()))
    })?;
    let t = text.trim().to_owned();
    if t.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("status.token-file {}: the file is empty", p.display()),
        ));
    }
    Ok(Some(t))
}

/// Binds every `[status] listen` address and reads `token-file`. Call before privileges are
/// dropped (the token file may be root's at start).
///
/// Errors: an address cannot be bound, or the token file cannot be read or is empty.
pub fn bind(st: &Status) -> std::io::Result<BoundStatus> {
    let token = read_token(st)?;
    let mut listeners = Vec::new();
    for addr in &st.listen {
        let l = std::net::TcpListener::bind(addr).map_err(|e| {
            std::io::Error::new(e.kind(), format!("status: cannot listen on {addr}: {e}"))
        })?;
        l.set_nonblocking(true)?;
        info!("listening for status on {}", l.local_addr()?);
        if !addr.ip().is_loopback() && token.is_none() {
            warn!(%addr, "the status server listens beyond loopback without status.token-file: anyone who reaches it sees every device");
        }
        listeners.push(l);
    }
    Ok(BoundStatus { listeners, token })
}

/// What the handlers read.
#[derive(Clone)]
pub struct StatusState {
    /// The device table (none: the API lists no devices).
    pub table: Option<Arc<DeviceTable>>,
    /// The registry `/metrics` encodes.
    pub metrics: Metrics,
    /// The configuration in force (for the verdicts' view of the redirect server).
    pub published: Published,
    /// Where the lease journal is.
    pub state_dir: PathBuf,
    token: Arc<Token>,
    counters: ServiceCounters,
}

/// The bearer token in force and the snapshot generation it was read for.
struct Token {
    current: arc_swap::ArcSwapOption<String>,
    generation: AtomicU64,
}

impl StatusState {
    /// The state for `ctx` with `token`.
    pub fn new(ctx: &ServiceContext, token: Option<String>) -> StatusState {
        StatusState {
            table: ctx.events.table().cloned(),
            metrics: ctx.metrics.clone(),
            published: ctx.published.clone(),
            state_dir: ctx.state_dir.clone(),
            token: Arc::new(Token {
                current: arc_swap::ArcSwapOption::from(token.map(Arc::new)),
                generation: AtomicU64::new(ctx.published.load().generation),
            }),
            counters: ctx.metrics.service(Service::Status),
        }
    }

    /// The token `/api` and `/metrics` require now: after a reload, `token-file` is read again
    /// once (the daemon refuses a reload whose token file cannot be read, so a failure here
    /// means the file changed since; the old token stays, fail closed).
    fn token(&self) -> Option<Arc<String>> {
        let snap = self.published.load();
        if self
            .token
            .generation
            .swap(snap.generation, Ordering::AcqRel)
            != snap.generation
        {
            if let Some(st) = &snap.config.status {
                match read_token(st) {
                    Ok(t) => self.token.current.store(t.map(Arc::new)),
                    Err(e) => error!(error = %e, "keeping the previous status token"),
                }
            }
        }
        self.token.current.load_full()
    }

    fn verdict_context(&self) -> VerdictContext {
        let snap = self.published.load();
        VerdictContext {
            redirect_server: snap
                .config
                .redirect_server
                .as_ref()
                .map(|r| r.advertise.to_string()),
        }
    }
}

/// Serves until `shutdown` is cancelled, then lets in-flight requests finish.
///
/// Errors: a listener cannot be handed to the runtime.
pub async fn serve(
    bound: BoundStatus,
    ctx: ServiceContext,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = router(StatusState::new(&ctx, bound.token));
    let mut tasks = tokio::task::JoinSet::new();
    for l in bound.listeners {
        let l = tokio::net::TcpListener::from_std(l)?;
        let app = app.clone();
        let stop = shutdown.clone();
        tasks.spawn(async move {
            axum::serve(l, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        });
    }
    let mut result = Ok(());
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(e),
            Err(e) => result = Err(std::io::Error::other(e)),
        }
    }
    result
}

/// The status server's routes over `state` (tests call it with `oneshot`).
pub fn router(state: StatusState) -> Router {
    let api = Router::new()
        .route("/metrics", get(metrics))
        .route("/api/devices", get(devices))
        .route("/api/devices/{key}", get(device))
        .route("/api/leases", get(leases))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/", get(page))
        .route(
            "/page.js",
            get(|| static_file(PAGE_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/page.css",
            get(|| static_file(PAGE_CSS, "text/css; charset=utf-8")),
        )
        .merge(api)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .with_state(state)
}

async fn count(State(st): State<StatusState>, req: Request, next: Next) -> Response {
    st.counters.requests.inc();
    let resp = next.run(req).await;
    st.counters.replies.inc();
    resp
}

async fn require_token(State(st): State<StatusState>, req: Request, next: Next) -> Response {
    if let Some(token) = st.token() {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.split_once(' ')
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                    .map(|(_, t)| t.trim())
            });
        let ok = given
            .is_some_and(|g| subtle::ConstantTimeEq::ct_eq(g.as_bytes(), token.as_bytes()).into());
        if !ok {
            st.counters.drop_for("unauthorized");
            let mut r = error(StatusCode::UNAUTHORIZED, "a bearer token is required");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"sztp-redirector\""),
            );
            return r;
        }
    }
    next.run(req).await
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such page")
}

fn static_file(
    body: &'static str,
    content_type: &'static str,
) -> impl std::future::Future<Output = Response> {
    std::future::ready(
        (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body,
        )
            .into_response(),
    )
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            // everything comes from this server; no inline script
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        PAGE_HTML,
    )
        .into_response()
}

async fn metrics(State(st): State<StatusState>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    let m = st.metrics.clone();
    let encoded = tokio::task::spawn_blocking(move || {
        if openmetrics {
            m.encode_openmetrics()
        } else {
            m.encode_prometheus()
        }
    })
    .await;
    let Ok(body) = encoded else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics");
    };
    let ct = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        prometheus_client::encoding::prometheus_text::CONTENT_TYPE
    };
    ([(header::CONTENT_TYPE, ct)], body).into_response()
}

/// `?stage=` and `?status=` of `/api/devices`.
#[derive(Debug, Default, Deserialize)]
pub struct DeviceFilter {
    /// Furthest stage, kebab-case.
    pub stage: Option<String>,
    /// Verdict status, kebab-case.
    pub status: Option<String>,
}

/// The body of `/api/devices`.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceList {
    /// Changes whenever the table does (events folded so far).
    pub generation: u64,
    /// Devices in the table, before filtering.
    pub total: usize,
    /// How many devices are at each furthest stage (`none` for no stage) and each verdict
    /// status.
    pub counts: std::collections::BTreeMap<String, usize>,
    /// The devices that pass the filter, most recently seen first.
    pub devices: Vec<DeviceSummary>,
}

fn status_word(s: VerdictStatus) -> &'static str {
    match s {
        VerdictStatus::Complete => "complete",
        VerdictStatus::HandedOff => "handed-off",
        VerdictStatus::Stuck => "stuck",
        VerdictStatus::Failed => "failed",
    }
}

async fn devices(
    State(st): State<StatusState>,
    Query(filter): Query<DeviceFilter>,
    headers: HeaderMap,
) -> Response {
    let stage = match filter.stage.as_deref() {
        None | Some("") => None,
        Some(s) => match Stage::parse(s) {
            Some(x) => Some(x),
            None => {
                st.counters.drop_for("bad-request");
                return error(StatusCode::BAD_REQUEST, &format!("unknown stage {s:?}"));
            }
        },
    };
    let status = filter.status.filter(|s| !s.is_empty());
    if let Some(s) = &status {
        if !["complete", "handed-off", "stuck", "failed"].contains(&s.as_str()) {
            st.counters.drop_for("bad-request");
            return error(StatusCode::BAD_REQUEST, &format!("unknown status {s:?}"));
        }
    }
    let cx = st.verdict_context();
    let generation = st.table.as_ref().map_or(0, |t| *t.subscribe().borrow());
    let config_gen = st.published.load().generation;
    // the verdicts depend on the configuration too
    let etag = format!(
        "\"{generation}-{config_gen}-{}-{}\"",
        filter.stage.as_deref().unwrap_or(""),
        status.as_deref().unwrap_or("")
    );
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag)
    {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let list = match &st.table {
        None => DeviceList {
            generation,
            total: 0,
            counts: Default::default(),
            devices: Vec::new(),
        },
        Some(t) => {
            let t = Arc::clone(t);
            let built = tokio::task::spawn_blocking(move || {
                let f = t.read();
                let mut counts = std::collections::BTreeMap::new();
                let mut out = Vec::new();
                for d in f.devices() {
                    let s = d.summary(&cx);
                    let st_word = s.stage.map_or("none", Stage::as_str);
                    *counts.entry(st_word.to_owned()).or_insert(0) += 1;
                    *counts
                        .entry(status_word(s.verdict.status).to_owned())
                        .or_insert(0) += 1;
                    if stage.is_some_and(|x| s.stage != Some(x)) {
                        continue;
                    }
                    if status
                        .as_deref()
                        .is_some_and(|x| x != status_word(s.verdict.status))
                    {
                        continue;
                    }
                    out.push(s);
                }
                DeviceList {
                    generation,
                    total: f.len(),
                    counts,
                    devices: out,
                }
            })
            .await;
            match built {
                Ok(l) => l,
                Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "device table failed"),
            }
        }
    };
    ([(header::ETAG, etag)], Json(list)).into_response()
}

async fn device(State(st): State<StatusState>, Path(key): Path<String>) -> Response {
    let cx = st.verdict_context();
    let found: Option<DeviceDetail> = st
        .table
        .as_ref()
        .and_then(|t| t.read().find(&key).map(|d| d.detail(&cx)));
    match found {
        Some(d) => Json(d).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            &format!("no device known by {key:?} (serial, MAC, DUID, address or #id)"),
        ),
    }
}

/// One lease as `/api/leases` lists it: a DHCPv4 lease or a DHCPv6 binding.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaseEntry {
    /// `dhcp4` or `dhcp6`.
    pub proto: String,
    /// The leased address.
    pub address: String,
    /// The client's MAC (for DHCPv6 when its DUID or the relay's option 79 gave one).
    pub mac: Option<String>,
    /// `bound`, `declined` or `released`.
    pub state: String,
    /// When it ends, RFC 3339 UTC.
    pub expires: String,
    /// When it ends, Unix seconds.
    pub expires_unix: u64,
    /// Option 61 (DHCPv4) or the DUID (DHCPv6, RFC 8415 §21.2), lowercase hex.
    pub client_id: Option<String>,
    /// DHCPv6: the IAID of the IA_NA holding the address (absent for DHCPv4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iaid: Option<u32>,
    /// Option 12.
    pub hostname: Option<String>,
}

async fn leases(State(st): State<StatusState>) -> Response {
    let dir = st.state_dir.clone();
    let read = tokio::task::spawn_blocking(move || {
        use crate::dhcp::lease_store::{read_leases, read_records};
        Ok::<_, crate::dhcp::lease_store::StoreError>((
            read_leases(&dir)?,
            read_records::<crate::dhcp::v6::bindings::Lease6>(&dir)?,
        ))
    })
    .await;
    let word = |s| {
        serde_json::to_value(s)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    match read {
        Ok(Ok((v4, v6))) => {
            let mut out: Vec<(std::net::IpAddr, LeaseEntry)> = v4
                .into_iter()
                .map(|l| {
                    let e = LeaseEntry {
                        proto: "dhcp4".into(),
                        address: l.addr.to_string(),
                        mac: Some(l.mac.to_string()),
                        state: word(l.state),
                        expires: crate::journal::rfc3339(l.expires),
                        expires_unix: l.expires,
                        client_id: l.client_id.as_deref().map(hex::encode),
                        iaid: None,
                        hostname: l.hostname,
                    };
                    (l.addr.into(), e)
                })
                .chain(v6.into_iter().map(|l| {
                    let e = LeaseEntry {
                        proto: "dhcp6".into(),
                        address: l.addr.to_string(),
                        mac: l.mac.map(|m| m.to_string()),
                        state: word(l.state),
                        expires: crate::journal::rfc3339(l.expires),
                        expires_unix: l.expires,
                        client_id: Some(hex::encode(&l.duid)),
                        iaid: Some(l.iaid),
                        hostname: None,
                    };
                    (l.addr.into(), e)
                }))
                .collect();
            // DHCPv4 first (IpAddr orders V4 before V6), each by address
            out.sort_by_key(|(a, _)| *a);
            Json(out.into_iter().map(|(_, e)| e).collect::<Vec<_>>()).into_response()
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot read the lease journal");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the lease journal",
            )
        }
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the lease journal",
        ),
    }
}

#[cfg(test)]
mod tests;
