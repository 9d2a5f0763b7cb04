//! ajar's control plane: the REST API under `/api/v1` (and its Azure Resource
//! Manager-compatible paths at the root), authentication and authorization, and the scheduler
//! that closes access on time.
//!
//! # Layout
//! - [`router`] builds the whole HTTP surface from one [`AppState`]; [`serve`] runs it on a
//!   listener until a shutdown future resolves.
//! - `routes/*`: one module per resource (machines, policies, requests, tokens, RBAC, settings,
//!   OpenAPI), each with its own `router()`; `routes/arm` translates the Azure Resource
//!   Manager paths onto them, calling the API in-process.
//! - [`auth`]: bearer tokens and the [`auth::Caller`] every handler authorizes with.
//! - [`scheduler`]: expiry driven by end times stored in the database.
//! - [`bootstrap`]: the first admin token.
//! - [`metrics`] and [`request_id`]: `/metrics`, request ids, the request span and log line.
//!
//! # Invariants
//! - Every handler authenticates, then checks one named action at the object's scope, before it
//!   reads the body or the object.
//! - Every change is one store transaction; nothing is kept only in memory.
//! - Time comes from the [`Clock`] in [`AppState`], never from the system directly.

pub mod access;
pub mod agent_cache;
pub mod auth;
pub mod body;
pub mod bootstrap;
pub mod clock;
pub mod eligibility;
pub mod engine;
pub mod error;
pub mod journal;
pub mod limits;
pub mod metrics;
pub mod notify;
pub mod presence;
pub mod request_id;
mod routes;
pub mod rules_cache;
pub mod scheduler;
pub mod throttle;
pub mod tls;

pub use routes::openapi::ApiDoc;

use ajar_core::clock::Clock;
use ajar_store::Store;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The store, the source of truth.
    pub store: Store,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Trusted OpenID Connect issuers (empty: only API tokens are accepted).
    pub oidc: Arc<ajar_oidc::Providers>,
    /// Failed-authentication counters (429 after too many).
    pub failed_auth: Arc<throttle::FailedAuth>,
    /// Resolved tokens; invalidated by every change to tokens, roles or assignments.
    pub auth_cache: Arc<auth::AuthCache>,
    /// The index behind `POST /api/v1/authorize`.
    pub access_index: Arc<access::AccessIndex>,
    /// Parsed policy rules by ETag.
    pub rules_cache: Arc<rules_cache::RulesCache>,
    /// Stores access requests in batches.
    pub request_writer: engine::request_writer::RequestWriter,
    /// Delivers queued notifications.
    pub notifier: Arc<notify::Notifier>,
    /// When each agent was last heard from, noted in memory between writes.
    pub presence: Arc<presence::Presence>,
    /// Registered agents by name, so a long poll costs no query.
    pub agents: Arc<agent_cache::AgentCache>,
    /// Refusals recorded one by one or counted, per principal.
    pub refusals: Arc<journal::Refusals>,
    /// Counters and histograms behind `GET /metrics`.
    pub metrics: Arc<metrics::Metrics>,
    /// Whether access may open on machines no live agent guards (their grants are enforced by
    /// something that reads them another way); by default such requests are refused.
    pub accept_unenforced: bool,
    /// Turns true when the server begins shutting down, so long polls answer at once instead of
    /// holding the shutdown up.
    pub stopping: watch::Receiver<bool>,
    stop: Arc<watch::Sender<bool>>,
}

impl AppState {
    /// State over a store and a clock. Starts the request writer, so it must be called inside
    /// a tokio runtime.
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        let (stop, stopping) = watch::channel(false);
        Self {
            request_writer: engine::request_writer::RequestWriter::start(store.clone()),
            store,
            clock,
            oidc: Arc::default(),
            failed_auth: Arc::default(),
            auth_cache: Arc::default(),
            access_index: Arc::default(),
            rules_cache: Arc::default(),
            notifier: Arc::new(notify::Notifier::new()),
            metrics: Arc::default(),
            refusals: Arc::default(),
            presence: Arc::default(),
            agents: Arc::default(),
            accept_unenforced: false,
            stopping,
            stop: Arc::new(stop),
        }
    }
}

impl AppState {
    /// Trusts the identity providers in `providers` for bearer JWTs and console sign-in.
    pub fn with_oidc(mut self, providers: ajar_oidc::Providers) -> Self {
        self.oidc = Arc::new(providers);
        self
    }

    /// Lets one principal hold at most `limit` grants (open ports) at once; 0 for no limit.
    pub fn with_live_grant_limit(mut self, limit: usize) -> Self {
        self.request_writer.live_grant_limit = limit;
        self
    }

    /// Accepts requests on machines no live agent guards (`true`), or refuses them (the default).
    pub fn with_accept_unenforced(mut self, accept: bool) -> Self {
        self.accept_unenforced = accept;
        self
    }

    /// The presence to check machines' agents against before access opens; `None` when the
    /// server accepts machines no live agent guards.
    pub(crate) fn enforcement_check(&self) -> Option<&presence::Presence> {
        (!self.accept_unenforced).then_some(&*self.presence)
    }

    /// Uses `notifier` to deliver notifications (e.g. with SMTP configured).
    pub fn with_notifier(mut self, notifier: notify::Notifier) -> Self {
        self.notifier = Arc::new(notifier);
        self
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let api = api_router(state.clone());
    // The console calls the API in-process as the signed-in user (so every check applies);
    // both sit behind the same request-id, metrics and refusal-recording layers.
    ajar_console::router(api.clone(), state.oidc.clone())
        .merge(routes::arm::router(api.clone()))
        .merge(api)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            journal::record_denials,
        ))
        .layer(axum::middleware::from_fn(limits::limit_headers))
        .layer(axum::middleware::from_fn_with_state(
            state,
            request_id::layer,
        ))
}

/// The REST API alone.
fn api_router(state: AppState) -> Router {
    routes::openapi::router()
        .merge(routes::health::router())
        .merge(routes::metrics::router())
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(body::MAX_BODY))
        .with_state(state)
}

/// Serves the API on `listener` and runs the scheduler until `shutdown` resolves; then stops
/// accepting, finishes requests in flight and stops the scheduler.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    serve_on(listener, app, state, shutdown).await
}

/// [`serve`] over TLS with `tls`'s certificate, which is read again whenever its files change
/// (checked every [`tls::WATCH_INTERVAL`]) or [`tls::Tls::reload`] is called; every answer
/// carries HSTS.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<tls::Tls>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let config = tls.server_config().map_err(std::io::Error::other)?;
    let listener = tls::TlsListener::new(listener, config)?.tap_io(|_| {});
    let watcher = tokio::spawn(tls::watch(tls, state.stopping.clone()));
    let app = router(state.clone()).layer(axum::middleware::from_fn(tls::over_tls));
    let result = serve_on(listener, app, state, shutdown).await;
    watcher.abort();
    result
}

async fn serve_on<L>(
    listener: L,
    app: Router,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener<Addr = SocketAddr>,
    for<'a> SocketAddr: axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, L>>,
{
    let (stop_tx, stop_rx) = watch::channel(false);
    let scheduler = tokio::spawn(scheduler::run(state.clone(), stop_rx.clone()));
    let checkpoints = tokio::spawn(scheduler::run_checkpoints(state.clone(), stop_rx.clone()));
    let notifications = tokio::spawn(notify::run(state.clone(), stop_rx));
    let stop = state.stop.clone();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop.send(true);
        })
        .await;
    let _ = stop_tx.send(true);
    if let Err(e) = journal::record_all_counted_refusals(&state).await {
        tracing::error!(error = %e, "counted refusals were not recorded at shutdown");
    }
    if let Err(e) = state.presence.flush(&state.store).await {
        tracing::warn!(error = %e, "agents' last-seen times were not written at shutdown");
    }
    let _ = scheduler.await;
    let _ = checkpoints.await;
    let _ = notifications.await;
    result
}
