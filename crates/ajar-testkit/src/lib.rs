//! Test helpers: [`TestApp::spawn`] starts a real ajar server on a random loopback port, with a
//! fresh store (SQLite in a temporary directory, or with `AJAR_TEST_DB=postgres` a fresh
//! database in a throwaway PostgreSQL cluster, see [`postgres`]), a [`ManualClock`], and a typed
//! client holding the bootstrap admin token.
//!
//! Tests move time with [`TestApp::advance`] and run the scheduler with [`TestApp::tick`]; they
//! never sleep through an access window. Set `TEST_LOG=1` to see the server's logs.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

pub mod idp;
pub mod moto;
pub mod netlab;
pub use ajar_pgtest as postgres;

use ajar_api::Client;
use ajar_api::wire::{RoleAssignmentBody, TokenCreate};
use ajar_core::clock::{Clock, ManualClock};
use ajar_core::id::Scope;
use ajar_core::principal::Principal;
use ajar_server::{AppState, bootstrap::bootstrap, scheduler};
use ajar_store::Store;
use jiff::{SignedDuration, Timestamp};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Words about how ajar is made rather than about ajar and its users; user-facing text (help,
/// the OpenAPI document, messages) must not use them.
pub const INTERNAL_WORDS: &[&str] = &[
    "brief",
    "issue #",
    "issues show",
    "helper",
    "the vendor",
    "pull request",
    "todo",
    "fixme",
    "xxx",
    "claude",
    "llm",
];

/// The lines of `text` that use one of [`INTERNAL_WORDS`] (case-insensitive), each with the
/// word found.
pub fn internal_wording(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let lower = line.to_lowercase();
            INTERNAL_WORDS
                .iter()
                .find(|w| lower.contains(*w))
                .map(|w| format!("{w:?} in {line:?}"))
        })
        .collect()
}

/// Where every test's clock starts.
pub const START: &str = "2026-01-01T00:00:00Z";

/// A running server and what a test needs to drive it.
pub struct TestApp {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub base: String,
    /// The clock the server reads.
    pub clock: Arc<ManualClock>,
    /// The server's state (store, clock).
    pub state: AppState,
    /// A client with the bootstrap admin (Owner at `/`) token.
    pub admin: Client,
    /// The bootstrap admin token.
    pub admin_token: String,
    database_url: String,
    db_path: PathBuf,
    dir: Arc<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_test_writer()
            .try_init();
    }
}

impl TestApp {
    /// A fresh server with an empty store.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|s| s).await
    }

    /// A fresh server whose state `configure` adjusts first (e.g. a notifier with SMTP).
    pub async fn spawn_with(configure: impl FnOnce(AppState) -> AppState) -> TestApp {
        Self::spawn_on(postgres::enabled(), configure).await
    }

    /// A fresh server on a fresh database in the throwaway PostgreSQL cluster, whatever
    /// `AJAR_TEST_DB` says: for tests about PostgreSQL itself (replicas).
    pub async fn spawn_on_postgres(configure: impl FnOnce(AppState) -> AppState) -> TestApp {
        Self::spawn_on(true, configure).await
    }

    async fn spawn_on(on_postgres: bool, configure: impl FnOnce(AppState) -> AppState) -> TestApp {
        init_logs();
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let db_path = dir.path().join("ajar.db");
        let database_url = if on_postgres {
            tokio::task::spawn_blocking(postgres::fresh_database)
                .await
                .expect("test database")
        } else {
            format!("sqlite://{}", db_path.display())
        };
        let clock = Arc::new(ManualClock::new(START.parse().expect("start instant")));
        let (state, admin_token) = Self::open(&database_url, clock.clone()).await;
        let state = configure(state);
        let admin_token = admin_token.expect("a fresh store prints a bootstrap token");
        Self::start(state, clock, admin_token, database_url, db_path, dir).await
    }

    async fn open(database_url: &str, clock: Arc<ManualClock>) -> (AppState, Option<String>) {
        let store = Store::open(database_url).await.expect("open store");
        // Most tests exercise requests without a live agent; those about that refusal turn
        // it back on with `with_accept_unenforced(false)`.
        let state = AppState::new(store, clock).with_accept_unenforced(true);
        let token = bootstrap(&state).await.expect("bootstrap");
        (state, token)
    }

    async fn start(
        state: AppState,
        clock: Arc<ManualClock>,
        admin_token: String,
        database_url: String,
        db_path: PathBuf,
        dir: Arc<tempfile::TempDir>,
    ) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let server_state = state.clone();
        let server = tokio::spawn(async move {
            ajar_server::serve(listener, server_state, async move {
                let _ = stopped.await;
            })
            .await
            .expect("server");
        });
        let base = format!("http://{addr}");
        let admin = Client::new(base.clone(), Some(admin_token.clone()));
        TestApp {
            base,
            clock,
            state,
            admin,
            admin_token,
            database_url,
            db_path,
            dir,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Stops the server gracefully (as on SIGTERM) and closes the store.
    pub async fn stop(mut self) {
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task");
        }
        self.state.store.close().await;
    }

    /// Stops the server and starts a new one on the same database file and clock, as a
    /// restart of `ajar serve` would. No new bootstrap token is made.
    pub async fn restart(mut self) -> TestApp {
        self.shutdown().await;
        let (state, token) = Self::open(&self.database_url, self.clock.clone()).await;
        assert!(token.is_none(), "a restart must not bootstrap again");
        let db_path = self.db_path.clone();
        let dir = self.dir.clone();
        let admin_token = self.admin_token.clone();
        let url = self.database_url.clone();
        Self::start(state, self.clock.clone(), admin_token, url, db_path, dir).await
    }

    /// A path in the test's temporary directory (the SQLite file when on SQLite); tests keep
    /// their own files beside it.
    pub fn db_path(&self) -> &std::path::Path {
        &self.db_path
    }

    /// The store's URL (`sqlite://…` or `postgres://…`).
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// The clock's current instant.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: SignedDuration) {
        self.clock.advance(by);
    }

    /// Runs one scheduler pass at the clock's current instant; returns ports closed.
    pub async fn tick(&self) -> u64 {
        scheduler::run_due(&self.state)
            .await
            .expect("scheduler pass")
    }

    /// A client with `token`, or with none.
    pub fn client(&self, token: Option<&str>) -> Client {
        self.admin.with_token(token.map(str::to_owned))
    }

    /// Creates a principal with a token and, if `role` is given, an assignment of that role at
    /// `scope`; returns a client authenticated as them.
    pub async fn user(&self, principal: &str, role: Option<(&str, &str)>) -> Client {
        let token = self
            .admin
            .create_token(&TokenCreate {
                principal: Principal::parse(principal).expect("principal"),
                description: None,
            })
            .await
            .expect("create token")
            .token
            .expect("secret");
        if let Some((role, scope)) = role {
            let n = SEQ.fetch_add(1, Ordering::Relaxed);
            self.admin
                .put_role_assignment(
                    &format!("a{n}-{principal}").replace(['@', ':', '+'], "-"),
                    &RoleAssignmentBody {
                        principal: Principal::parse(principal).expect("principal"),
                        role_definition: role.to_owned(),
                        scope: Scope::parse(scope).expect("scope"),
                    },
                )
                .await
                .expect("assign role");
        }
        self.client(Some(&token))
    }
}

impl TestApp {
    /// Registers an agent guarding `machines` (host mode, or gateway when `gateway` gives its
    /// public address and mapped-port range), lets it poll once so it counts as live, and
    /// returns a client with its token and its id.
    pub async fn agent(
        &self,
        name: &str,
        machines: &[&str],
        gateway: Option<(&str, &str)>,
    ) -> (Client, String) {
        let mut body = serde_json::json!({"name": name, "mode": "host", "machines": machines});
        if let Some((address, range)) = gateway {
            body["mode"] = "gateway".into();
            body["publicAddress"] = address.into();
            body["mappedPortRange"] = range.into();
        }
        let created: serde_json::Value = self
            .admin
            .post("/api/v1/agents", &body)
            .await
            .expect("register agent");
        let client = self.client(created["token"].as_str());
        let _: serde_json::Value = client
            .get("/api/v1/agent/desiredState")
            .await
            .expect("first poll");
        (client, created["id"].as_str().expect("id").to_owned())
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
