//! The axum `Router` of the redirect server: host-meta, the RESTCONF root, the two operations,
//! RFC 8040 errors for everything else, and the per-source rate limit
//!
//! `router(state)` needs no socket: tests drive it with `oneshot`, inserting a [`ConnInfo`]
//! extension as the server loop does for every connection.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::body::Body as AxumBody;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tracing::{debug, error, info};

use super::error::RestconfError;
use super::handler::{self, Body, Reply, RequestMeta, MAX_BODY};
use super::identity::ClientCertificate;
use super::media::{negotiate, wants_jrd, Encoding};
use super::ratelimit::RateLimiter;
use super::server::Stats;
use super::{
    GET_BOOTSTRAPPING_DATA_PATH, HOST_META_JSON_PATH, HOST_META_PATH, REPORT_PROGRESS_PATH,
    RESTCONF_ROOT,
};
use crate::config::validate::DEFAULT_CLIENT_TIMEOUT;
use crate::journal::{unix_now, EventDetail, RestconfAnswer, RestconfReason, RestconfRpc};
use crate::metrics::{Metrics, RestconfAnswerLabels, Service, ServiceCounters};
use crate::runtime::{Events, LeaseLookup, Published};

/// The host-meta XRD document of digest TV9 (107 octets with its trailing newline).
pub const HOST_META_XRD: &str = "<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n    <Link rel='restconf' href='/restconf'/>\n</XRD>\n";
/// The same as a JRD (RFC 6415 §3.2).
pub const HOST_META_JRD: &str = r#"{"links":[{"rel":"restconf","href":"/restconf"}]}"#;
/// `yang-library-version` of the RESTCONF root (RFC 8040 §3.3.3, RFC 8525's revision).
pub const YANG_LIBRARY_VERSION: &str = "2019-01-04";

/// What the server loop knows about the connection a request came on; inserted as a request
/// extension.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// TCP peer.
    pub peer: SocketAddr,
    /// Local address of the connection.
    pub local: SocketAddr,
    /// The client certificate the device presented, read once per connection.
    pub client_certificate: Option<Arc<ClientCertificate>>,
}

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    /// The configuration in force.
    pub published: Published,
    /// Device-event sink.
    pub events: Events,
    /// DHCP leases by address.
    pub leases: Arc<dyn LeaseLookup>,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Per-source rate limit; replaced when a reload changes `rate-limit`.
    pub limiter: Arc<ArcSwap<RateLimiter>>,
    /// Where `sztp_restconf_requests_total`, `_replies_total`, `_dropped_total{reason}` and
    /// `sztp_restconf_answers_total{rpc,status}` are counted (the daemon's registry; a registry
    /// of its own by default).
    pub metrics: Metrics,
}

impl AppState {
    /// State for `published`, with the rate limit it configures.
    pub fn new(published: Published, events: Events, leases: Arc<dyn LeaseLookup>) -> AppState {
        let rate = published
            .load()
            .config
            .redirect_server
            .as_ref()
            .map_or(0, |r| r.rate_limit);
        AppState {
            published,
            events,
            leases,
            stats: Arc::new(Stats::default()),
            limiter: Arc::new(ArcSwap::from_pointee(RateLimiter::per_second(rate))),
            metrics: Metrics::new(),
        }
    }

    /// This state counting into `metrics` (the registry the status server encodes).
    pub fn with_metrics(mut self, metrics: Metrics) -> AppState {
        self.metrics = metrics;
        self
    }

    /// The redirect server's request/reply/drop counters in [`AppState::metrics`].
    pub fn counters(&self) -> ServiceCounters {
        self.metrics.service(Service::Restconf)
    }
}

/// The redirect server's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(HOST_META_PATH, get(host_meta).fallback(not_get))
        .route(HOST_META_JSON_PATH, get(host_meta_json).fallback(not_get))
        .route(RESTCONF_ROOT, get(restconf_root).fallback(not_get))
        .route(
            "/restconf/operations",
            get(operations_resource).fallback(not_get),
        )
        .route(GET_BOOTSTRAPPING_DATA_PATH, any(get_bootstrapping_data))
        .route(REPORT_PROGRESS_PATH, any(report_progress))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), rate_limit))
        // outermost: every request is counted once with the status it got, 429s included
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .with_state(state)
}

/// The `rpc` label of a request path: the operation it names, else `other` (host-meta, the
/// RESTCONF root, unknown resources).
fn rpc_label(path: &str) -> &'static str {
    match path.trim_end_matches('/') {
        GET_BOOTSTRAPPING_DATA_PATH => RestconfRpc::GetBootstrappingData.as_str(),
        REPORT_PROGRESS_PATH => RestconfRpc::ReportProgress.as_str(),
        _ => "other",
    }
}

async fn count(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let counters = st.counters();
    counters.requests.inc();
    let rpc = rpc_label(req.uri().path());
    let resp = next.run(req).await;
    counters.replies.inc();
    st.metrics
        .restconf_answers
        .get_or_create(&RestconfAnswerLabels {
            rpc: rpc.to_owned(),
            status: resp.status().as_u16().to_string(),
        })
        .inc();
    resp
}

fn accept(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok())
}

fn content(status: StatusCode, media_type: &'static str, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(media_type))],
        body,
    )
        .into_response()
}

/// An RFC 8040 error as an HTTP response.
pub fn error_response(e: &RestconfError, encoding: Encoding) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = content(status, encoding.media_type(), e.render(encoding));
    if let Some(allow) = e.allow {
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    if let Some(s) = e.retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

/// A handler's [`Reply`] as an HTTP response.
pub fn reply_response(reply: &Reply) -> Response {
    match reply {
        Reply::Output(out, enc) => content(StatusCode::OK, enc.media_type(), out.render(*enc)),
        Reply::NoContent => StatusCode::NO_CONTENT.into_response(),
        Reply::Error(e, enc) => error_response(e, *enc),
    }
}

fn error_for(headers: &HeaderMap, e: &RestconfError) -> Response {
    let enc = negotiate(accept(headers), Encoding::Json).unwrap_or(Encoding::Json);
    error_response(e, enc)
}

async fn rate_limit(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(conn) = req.extensions().get::<ConnInfo>() {
        let rate = st
            .published
            .load()
            .config
            .redirect_server
            .as_ref()
            .map_or(0, |r| r.rate_limit);
        let mut limiter = st.limiter.load_full();
        if !limiter.is_per_second(rate) {
            limiter = Arc::new(RateLimiter::per_second(rate));
            st.limiter.store(Arc::clone(&limiter));
        }
        let source = conn.peer.ip().to_canonical();
        if !limiter.allow(source, Instant::now()) {
            st.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            debug!(%source, "rate limited");
            return error_for(req.headers(), &RestconfError::rate_limited());
        }
    }
    next.run(req).await
}

async fn not_get(headers: HeaderMap) -> Response {
    let mut e = RestconfError::method_not_allowed("GET, HEAD");
    e.message = String::new();
    error_for(&headers, &e)
}

async fn not_found(State(st): State<AppState>, headers: HeaderMap) -> Response {
    st.stats.not_found.fetch_add(1, Ordering::Relaxed);
    error_for(
        &headers,
        &RestconfError::not_found(RestconfReason::NoRule, "no such resource"),
    )
}

async fn host_meta(State(st): State<AppState>, headers: HeaderMap) -> Response {
    st.stats.host_meta.fetch_add(1, Ordering::Relaxed);
    if wants_jrd(accept(&headers)) {
        return host_meta_jrd();
    }
    content(
        StatusCode::OK,
        "application/xrd+xml",
        HOST_META_XRD.as_bytes().to_vec(),
    )
}

async fn host_meta_json(State(st): State<AppState>) -> Response {
    st.stats.host_meta.fetch_add(1, Ordering::Relaxed);
    host_meta_jrd()
}

fn host_meta_jrd() -> Response {
    content(
        StatusCode::OK,
        "application/json",
        HOST_META_JRD.as_bytes().to_vec(),
    )
}

async fn restconf_root(headers: HeaderMap) -> Response {
    let Ok(enc) = negotiate(accept(&headers), Encoding::Json) else {
        return error_response(&RestconfError::not_acceptable(), Encoding::Json);
    };
    let body = match enc {
        Encoding::Json => format!(
            r#"{{"ietf-restconf:restconf":{{"data":{{}},"operations":{{}},"yang-library-version":"{YANG_LIBRARY_VERSION}"}}}}"#
        ),
        Encoding::Xml => format!(
            "<restconf xmlns=\"{}\"><data/><operations/><yang-library-version>{YANG_LIBRARY_VERSION}</yang-library-version></restconf>",
            super::error::RESTCONF_NS
        ),
    };
    content(StatusCode::OK, enc.media_type(), body.into_bytes())
}

async fn operations_resource(headers: HeaderMap) -> Response {
    let Ok(enc) = negotiate(accept(&headers), Encoding::Json) else {
        return error_response(&RestconfError::not_acceptable(), Encoding::Json);
    };
    let body = match enc {
        Encoding::Json => r#"{"ietf-restconf:operations":{"ietf-sztp-bootstrap-server:get-bootstrapping-data":[null],"ietf-sztp-bootstrap-server:report-progress":[null]}}"#.to_string(),
        Encoding::Xml => format!(
            "<operations xmlns=\"{}\"><get-bootstrapping-data xmlns=\"{ns}\"/><report-progress xmlns=\"{ns}\"/></operations>",
            super::error::RESTCONF_NS,
            ns = super::rpc::BOOTSTRAP_SERVER_NS
        ),
    };
    content(StatusCode::OK, enc.media_type(), body.into_bytes())
}

async fn get_bootstrapping_data(State(st): State<AppState>, req: Request) -> Response {
    operation(st, RestconfRpc::GetBootstrappingData, req).await
}

async fn report_progress(State(st): State<AppState>, req: Request) -> Response {
    operation(st, RestconfRpc::ReportProgress, req).await
}

/// Reads at most [`MAX_BODY`] octets within `limit`.
async fn read_body(body: AxumBody, limit: Duration) -> Result<Vec<u8>, Body<'static>> {
    let collect = Limited::new(body, MAX_BODY).collect();
    match tokio::time::timeout(limit, collect).await {
        Err(_) => Err(Body::TimedOut),
        Ok(Ok(c)) => Ok(c.to_bytes().to_vec()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(Body::TooBig),
        // the client went away or sent a broken chunked body: as good as a slow one
        Ok(Err(_)) => Err(Body::TimedOut),
    }
}

async fn operation(st: AppState, rpc: RestconfRpc, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Some(conn) = parts.extensions.get::<ConnInfo>().cloned() else {
        error!("request without connection information");
        return error_response(
            &RestconfError::operation_failed(RestconfReason::Internal, "internal error"),
            Encoding::Json,
        );
    };
    let snapshot = st.published.load();
    let limit = snapshot
        .config
        .redirect_server
        .as_ref()
        .map_or(DEFAULT_CLIENT_TIMEOUT, |r| r.client_timeout);
    // a wrong method is answered without waiting for a body
    let received = if parts.method == Method::POST {
        read_body(body, limit).await
    } else {
        Ok(Vec::new())
    };
    let header = |h| {
        parts
            .headers
            .get(h)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let request = handler::Request {
        rpc,
        method: parts.method.as_str(),
        content_type: header(header::CONTENT_TYPE),
        accept: header(header::ACCEPT),
        authorization: header(header::AUTHORIZATION),
        body: match &received {
            Ok(b) => Body::Received(b),
            Err(e) => *e,
        },
    };
    let lease = st.leases.lease_facts(conn.peer.ip().to_canonical());
    let meta = RequestMeta {
        peer: conn.peer,
        local: conn.local,
        client_certificate: conn.client_certificate.as_deref(),
        lease: lease.as_ref(),
    };
    let outcome = handler::handle(&snapshot, &request, &meta, unix_now());
    let stats = &st.stats;
    let EventDetail::Restconf(d) = &outcome.event.detail else {
        unreachable!("the handler emits RESTCONF events")
    };
    let serial = outcome.event.serial.as_deref().unwrap_or("-");
    let rule = outcome.event.rule.as_deref().unwrap_or("-");
    for uri in &outcome.loops {
        error!(
            serial,
            rule,
            uri = uri.as_str(),
            "bootstrap server is this redirect server: left out of the redirect (fix the rule)"
        );
    }
    match d.answer {
        RestconfAnswer::Redirect => {
            stats.redirects.fetch_add(1, Ordering::Relaxed);
            debug!(source = %d.source, serial, rule, uris = ?outcome.event.uris, "redirect sent");
        }
        RestconfAnswer::ProgressAccepted => {
            stats.progress_reports.fetch_add(1, Ordering::Relaxed);
            info!(source = %d.source, serial, progress_type = d.progress_type.as_deref().unwrap_or("-"), message = d.message.as_deref().unwrap_or(""), "progress report");
        }
        RestconfAnswer::Error => {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            match d.reason {
                Some(RestconfReason::Loop | RestconfReason::Internal) => error!(
                    source = %d.source, serial, rule, status = d.status,
                    "{}", d.error_message.as_deref().unwrap_or("error")
                ),
                _ => debug!(
                    source = %d.source, serial, status = d.status, reason = ?d.reason,
                    "{}", d.error_message.as_deref().unwrap_or("error")
                ),
            }
        }
    }
    st.events.emit(&outcome.event);
    reply_response(&outcome.reply)
}
