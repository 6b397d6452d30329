//! `oar serve`: the data holder's service. Requesters sign every request (RFC 9421); runs go
//! through a persistent queue in SQLite and a fixed pool of workers (the policy's
//! `concurrent_runs`); every release is signed by the holder; every step is in the audit log.
//!
//! A fresh `oar serve` needs nothing: it creates its data folder with a policy, keys and a
//! synthetic CDR dataset. Real deployments give a config file and environment overrides
//! ([`ServeConfig`]). On restart, queued jobs resume and jobs that were running are marked
//! interrupted (the ledger refunds what never reached the module). On shutdown the server stops
//! taking requests, lets running jobs finish, and leaves queued jobs for the next start.

mod api;
mod guard;
pub mod httpsig;
mod limit;
pub mod listen;
pub mod metrics;
pub mod notify;
pub mod problem;
mod store;
mod tls;
mod web;

pub use api::{OPENAPI, ROUTES};
pub use store::{Job, Store, StoreError};

use crate::audit::{AuditLog, EntryKind};
use crate::dataset::{Catalog, Dataset};
use crate::job::Host;
use crate::keys::KeyPair;
use crate::ledger::{Ledger, SqliteLedger};
use crate::policy::Policy;
use crate::revocation::{Revocations, SignedRevocations};
use crate::sandbox::Runtime;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Server settings: a TOML file, overridden by `OAR_*` environment variables.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Address to listen on (`OAR_LISTEN`).
    pub listen: String,
    /// Folder for the server's databases, releases, audit log and (first start) its policy,
    /// keys and synthetic data (`OAR_DATA_DIR`).
    pub data_dir: PathBuf,
    /// The holder's policy (`OAR_POLICY`); default `DATA_DIR/policy.toml`, created on first start.
    pub policy: Option<PathBuf>,
    /// The holder's secret key (`OAR_HOLDER_KEY`); default `DATA_DIR/keys/holder.key`.
    pub holder_key: Option<PathBuf>,
    /// Dataset descriptors served from the start (more can be registered by the admin API).
    pub datasets: Vec<PathBuf>,
    /// The admin API's bearer token (`OAR_ADMIN_TOKEN`); default: generated into
    /// `DATA_DIR/admin.token` (mode 0600).
    pub admin_token: Option<String>,
    /// Largest request body, in bytes (bundles are the big ones).
    pub max_body_bytes: usize,
    /// How far a request's `created` may be from the server's clock, in seconds.
    pub clock_window_seconds: i64,
    /// Compiled-code cache folder; default `DATA_DIR/cache`.
    pub cache_dir: Option<PathBuf>,
    /// The `host[:port]` names requesters reach this server by (`OAR_AUTHORITIES`, comma
    /// separated). Signatures cover the authority, and a request signed for any other name is
    /// refused, so a request signed for one holder cannot be replayed to another. Default: on
    /// a loopback address, `127.0.0.1:PORT`, `localhost:PORT` and `[::1]:PORT`; required
    /// otherwise.
    pub authorities: Vec<String>,
    /// TLS certificate chain, PEM, leaf first (`OAR_TLS_CERT`). With `tls_key`, the requester
    /// listener speaks HTTPS only.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key, PEM (`OAR_TLS_KEY`).
    pub tls_key: Option<PathBuf>,
    /// Listen beyond loopback without TLS. Only behind a proxy that terminates TLS: requests
    /// and releases otherwise cross the network in clear.
    pub allow_plain_http: bool,
    /// Address of the admin API (`OAR_ADMIN_LISTEN`): loopback only, never the requester
    /// listener, so the admin token never crosses the network.
    pub admin_listen: String,
    /// Open connections at most on the requester listener.
    pub max_connections: usize,
    /// Requests handled at once; more are answered 503 at once (load shedding).
    pub max_concurrent_requests: usize,
    /// Time for a client to send a request's header, in seconds.
    pub header_timeout_seconds: u64,
    /// Time for a whole request, body included, in seconds.
    pub request_timeout_seconds: u64,
    /// Requests a minute from one client address (0: no limit).
    pub requests_per_minute_per_address: u32,
    /// Requests a minute signed by one requester key (0: no limit).
    pub requests_per_minute_per_key: u32,
    /// Folders the admin API may register dataset descriptors from; default
    /// `DATA_DIR/datasets`. A descriptor anywhere else is refused.
    pub dataset_roots: Vec<PathBuf>,
    /// The engine queries run on (`OAR_QUERY_ENGINE`): `polars-streaming` (default; memory
    /// bounded by people and cells, not rows), `polars-in-memory` (holds the columns a query
    /// reads), `datafusion`, or the holder's Ballista cluster as `df://host:port` (those
    /// two need a host built with the `datafusion` feature). The holder's choice; a module
    /// cannot pick it.
    pub query_engine: crate::query::QueryEngine,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: "127.0.0.1:8420".into(),
            data_dir: PathBuf::from("oar-data"),
            policy: None,
            holder_key: None,
            datasets: Vec::new(),
            admin_token: None,
            max_body_bytes: 32 * 1024 * 1024,
            clock_window_seconds: 300,
            cache_dir: None,
            authorities: Vec::new(),
            tls_cert: None,
            tls_key: None,
            allow_plain_http: false,
            admin_listen: "127.0.0.1:8421".into(),
            max_connections: 512,
            max_concurrent_requests: 64,
            header_timeout_seconds: 10,
            request_timeout_seconds: 120,
            requests_per_minute_per_address: 1200,
            requests_per_minute_per_key: 600,
            dataset_roots: Vec::new(),
            query_engine: Default::default(),
        }
    }
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The config file is wrong.
    #[error("server config {path}: {message}")]
    Config {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Setting up failed (files, keys, policy, databases, the listening socket).
    #[error("{0}")]
    Setup(String),
}

fn setup<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> ServeError + '_ {
    move |e| ServeError::Setup(format!("{what}: {e}"))
}

impl ServeConfig {
    /// The time a whole request may take.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_seconds.max(1))
    }

    fn connection_limits(&self) -> listen::ConnectionLimits {
        listen::ConnectionLimits {
            max_connections: self.max_connections.max(1),
            header_timeout: Duration::from_secs(self.header_timeout_seconds.max(1)),
            handshake_timeout: Duration::from_secs(self.header_timeout_seconds.max(1)),
            shutdown_grace: self.request_timeout(),
        }
    }

    /// Reads `path` (if given), then applies `OAR_*` environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Self, ServeError> {
        let mut config = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| ServeError::Config {
                    path: p.display().to_string(),
                    message: e.to_string(),
                })?;
                toml::from_str(&text).map_err(|e| ServeError::Config {
                    path: p.display().to_string(),
                    message: e.to_string(),
                })?
            }
            None => ServeConfig::default(),
        };
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let Some(v) = var("OAR_LISTEN") {
            config.listen = v;
        }
        if let Some(v) = var("OAR_DATA_DIR") {
            config.data_dir = v.into();
        }
        if let Some(v) = var("OAR_POLICY") {
            config.policy = Some(v.into());
        }
        if let Some(v) = var("OAR_HOLDER_KEY") {
            config.holder_key = Some(v.into());
        }
        if let Some(v) = var("OAR_ADMIN_TOKEN") {
            config.admin_token = Some(v);
        }
        if let Some(v) = var("OAR_TLS_CERT") {
            config.tls_cert = Some(v.into());
        }
        if let Some(v) = var("OAR_TLS_KEY") {
            config.tls_key = Some(v.into());
        }
        if let Some(v) = var("OAR_ADMIN_LISTEN") {
            config.admin_listen = v;
        }
        if let Some(v) = var("OAR_QUERY_ENGINE") {
            config.query_engine =
                crate::query::QueryEngine::from_name(&v).map_err(|message| ServeError::Config {
                    path: "OAR_QUERY_ENGINE".into(),
                    message,
                })?;
        }
        if let Some(v) = var("OAR_AUTHORITIES") {
            config.authorities = v
                .split(',')
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect();
        }
        Ok(config)
    }
}

/// Shared state of a running server.
pub(crate) struct State {
    pub host: Host,
    pub policy: Arc<Policy>,
    pub store: Store,
    pub audit: Arc<AuditLog>,
    pub holder: KeyPair,
    pub admin_token: String,
    pub data_dir: PathBuf,
    pub config: ServeConfig,
    pub stopping: AtomicBool,
    pub wake: (Mutex<()>, Condvar),
    pub metrics: Arc<metrics::Metrics>,
    /// Modules being compiled ahead of their runs (see [`precompile`]).
    pub precompiling: Mutex<std::collections::HashSet<String>>,
    /// The names this server answers to (lowercase `host[:port]`).
    pub authorities: Vec<String>,
    /// How requesters reach it: `http` or `https`.
    pub scheme: &'static str,
    /// Requests per client address.
    pub address_limit: limit::RateLimiter<std::net::IpAddr>,
    /// Requests per requester key.
    pub key_limit: limit::RateLimiter<[u8; 32]>,
    /// Requests being handled (load shedding past the limit).
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// Held while a submission is counted against the hourly limit and queued.
    pub submissions: Mutex<()>,
    /// The pages' sessions and dry runs.
    pub web: web::Web,
}

impl State {
    /// Whether `descriptor` lies inside one of the folders datasets may be registered from.
    pub fn in_dataset_roots(&self, descriptor: &Path) -> bool {
        let Ok(path) = std::fs::canonicalize(descriptor) else {
            return false;
        };
        let default = [self.data_dir.join("datasets")];
        let roots = if self.config.dataset_roots.is_empty() {
            &default[..]
        } else {
            &self.config.dataset_roots[..]
        };
        roots
            .iter()
            .filter_map(|r| std::fs::canonicalize(r).ok())
            .any(|root| path.starts_with(root))
    }

    /// Wakes an idle worker (a job was queued).
    pub fn notify(&self) {
        self.wake.1.notify_all();
    }

    pub fn releases_dir(&self, job: &str) -> PathBuf {
        self.data_dir.join("releases").join(job)
    }
}

/// A running server.
pub struct RunningServer {
    addr: SocketAddr,
    state: Arc<State>,
    admin_addr: SocketAddr,
    shutdown: Option<tokio::sync::watch::Sender<bool>>,
    http: Option<std::thread::JoinHandle<()>>,
    workers: Vec<std::thread::JoinHandle<()>>,
    /// What the first start created, for the operator (empty on later starts).
    pub bootstrap_notes: Vec<String>,
}

impl RunningServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https` when the requester listener speaks TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        self.state.scheme
    }

    /// The address of the admin API (loopback).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The admin API's bearer token.
    pub fn admin_token(&self) -> &str {
        &self.state.admin_token
    }

    /// Stops taking requests and new jobs, waits for running jobs to finish, and returns.
    /// Queued jobs stay queued for the next start.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.state.stopping.store(true, Ordering::SeqCst);
        self.state.notify();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        if let Some(h) = self.http.take() {
            let _ = h.join();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        let _ = self.state.audit.append(
            EntryKind::Admin,
            "holder",
            serde_json::json!({"act": "server stopped"}),
        );
    }

    /// Blocks until Ctrl-C or SIGTERM, then shuts down gracefully.
    pub fn wait_for_signal(mut self) -> Result<(), ServeError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(setup("signal runtime"))?;
        rt.block_on(async {
            #[cfg(unix)]
            {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .expect("SIGTERM handler");
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
            }
            #[cfg(not(unix))]
            let _ = tokio::signal::ctrl_c().await;
        });
        eprintln!("oar serve: stopping; running jobs finish, queued jobs wait for the next start");
        notify::stopping();
        self.stop();
        Ok(())
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if self.shutdown.is_some() {
            self.stop();
        }
    }
}

/// Creates, on first start, a policy, keys and a synthetic CDR dataset in `data_dir`.
fn bootstrap(data_dir: &Path) -> Result<Vec<String>, ServeError> {
    let policy_path = data_dir.join("policy.toml");
    if policy_path.exists() {
        return Ok(Vec::new());
    }
    let keys = data_dir.join("keys");
    let parties = crate::policy::StarterParties::generate();
    parties.write_keys(&keys).map_err(setup("writing keys"))?;
    std::fs::write(&policy_path, parties.policy("oar serve"))
        .map_err(setup("writing the policy"))?;
    let cdr = crate::synth::cdr::CdrSpec {
        rows: 200_000,
        ..Default::default()
    }
    .write(&data_dir.join("datasets/cdr"))
    .map_err(setup("writing the synthetic dataset"))?;
    register_path(data_dir, &cdr)?;
    Ok(vec![
        format!("created {} with a starter policy", policy_path.display()),
        format!(
            "created keys in {} (author, committee-1..3, stats-office, holder)",
            keys.display()
        ),
        format!("registered synthetic call records {}", cdr.display()),
    ])
}

/// Remembers a registered dataset's descriptor for the next start.
fn register_path(data_dir: &Path, descriptor: &Path) -> Result<(), ServeError> {
    use std::io::Write;
    let list = data_dir.join("datasets.list");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&list)
        .map_err(setup("recording the dataset"))?;
    let absolute = std::fs::canonicalize(descriptor).map_err(setup("locating the dataset"))?;
    writeln!(f, "{}", absolute.display()).map_err(setup("recording the dataset"))
}

fn registered_paths(data_dir: &Path) -> Vec<PathBuf> {
    std::fs::read_to_string(data_dir.join("datasets.list"))
        .map(|t| {
            t.lines()
                .filter(|l| !l.is_empty())
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Shortest admin token accepted.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

fn check_admin_token(token: String, origin: &str) -> Result<String, ServeError> {
    if token.trim().chars().count() < MIN_ADMIN_TOKEN_CHARS {
        return Err(ServeError::Setup(format!(
            "the admin token from {origin} is shorter than {MIN_ADMIN_TOKEN_CHARS} characters; set a long random token, or leave it unset and the server generates one"
        )));
    }
    Ok(token.trim().to_string())
}

fn admin_token(config: &ServeConfig) -> Result<String, ServeError> {
    if let Some(t) = &config.admin_token {
        return check_admin_token(t.clone(), "the config (admin_token or OAR_ADMIN_TOKEN)");
    }
    let path = config.data_dir.join("admin.token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        return check_admin_token(t, &path.display().to_string());
    }
    let token = format!("{}{}", crate::job::new_job_id(), crate::job::new_job_id());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    options
        .open(&path)
        .and_then(|mut f| f.write_all(token.as_bytes()))
        .map_err(setup("writing the admin token"))?;
    Ok(token)
}

/// The names the server answers to: the configured ones, or the loopback names of `addr`.
fn authorities(config: &ServeConfig, addr: SocketAddr) -> Result<Vec<String>, ServeError> {
    if !config.authorities.is_empty() {
        return Ok(config
            .authorities
            .iter()
            .map(|a| a.to_ascii_lowercase())
            .collect());
    }
    if !addr.ip().is_loopback() {
        return Err(ServeError::Setup(format!(
            "listening on {addr}, beyond loopback: set `authorities` (or OAR_AUTHORITIES) to the host[:port] names requesters use to reach this server"
        )));
    }
    let port = addr.port();
    Ok(vec![
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ])
}

/// Starts the server: recovers from any crash, then serves HTTP and runs queued jobs.
pub fn start(config: ServeConfig) -> Result<RunningServer, ServeError> {
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(data_dir.join("releases"))
        .map_err(setup("creating the data folder"))?;
    let bootstrap_notes = if config.policy.is_none() {
        bootstrap(&data_dir)?
    } else {
        Vec::new()
    };
    let policy_path = config
        .policy
        .clone()
        .unwrap_or_else(|| data_dir.join("policy.toml"));
    let policy = Policy::load(&policy_path).map_err(setup("loading the policy"))?;
    let holder_path = config
        .holder_key
        .clone()
        .unwrap_or_else(|| data_dir.join("keys/holder.key"));
    let holder = KeyPair::read(&holder_path).map_err(setup("reading the holder's key"))?;
    if let Some(h) = &policy.holder {
        if h.key != holder.public() {
            return Err(ServeError::Setup(format!(
                "the holder key {} does not match the policy's [holder] key {}",
                holder.public(),
                h.key
            )));
        }
    }
    let ledger = Arc::new(
        SqliteLedger::open(&data_dir.join("ledger.db")).map_err(setup("opening the ledger"))?,
    );
    let recovery = ledger.recover().map_err(setup("recovering the ledger"))?;
    let store = Store::open(&data_dir.join("server.db")).map_err(setup("opening the job store"))?;
    let interrupted = store
        .interrupt_running()
        .map_err(setup("recovering the job queue"))?;
    let audit = Arc::new(
        AuditLog::open(&data_dir.join("audit.log"), holder.clone())
            .map_err(setup("opening the audit log"))?,
    );
    audit
        .append(
            EntryKind::Admin,
            "holder",
            serde_json::json!({
                "act": "server started",
                "interrupted_jobs": interrupted,
                "refunded_reservations": recovery.refunded,
            }),
        )
        .map_err(setup("writing the audit log"))?;
    audit
        .close_interrupted(&interrupted)
        .map_err(setup("writing the audit log"))?;

    let mut catalog = Catalog::new();
    for d in config
        .datasets
        .iter()
        .chain(registered_paths(&data_dir).iter())
    {
        catalog.register(Dataset::open(d).map_err(setup("opening a dataset"))?);
    }
    let revocations = Arc::new(Revocations::new());
    let rev_path = data_dir.join("revocations.json");
    // The highest serial ever installed is kept in the job store too: a list deleted or
    // replaced by an older one does not un-revoke anything at the next start.
    let high_water = store
        .revocation_serial()
        .map_err(setup("reading the revocation serial"))?;
    if rev_path.exists() {
        let list = SignedRevocations::read(&rev_path).map_err(setup("reading revocations"))?;
        revocations
            .install(&list, &policy)
            .map_err(setup("installing revocations"))?;
        if list.list.serial < high_water {
            return Err(ServeError::Setup(format!(
                "{} has serial {} but serial {high_water} was installed here before; restore the newer list (a list cannot be rolled back)",
                rev_path.display(),
                list.list.serial
            )));
        }
        store
            .record_revocation_serial(list.list.serial)
            .map_err(setup("recording the revocation serial"))?;
    } else if high_water > 0 {
        return Err(ServeError::Setup(format!(
            "{} is missing but a revocation list with serial {high_water} was installed here before; restore it from a backup, or install a newer signed list, before starting",
            rev_path.display()
        )));
    }
    let cache = config
        .cache_dir
        .clone()
        .unwrap_or_else(|| data_dir.join("cache"));
    let runtime = Runtime::new(Some(cache)).map_err(setup("starting the sandbox runtime"))?;
    let workers_n = policy.limits.concurrent_runs;
    let admin_token = admin_token(&config)?;
    let host = Host::new(runtime, catalog, policy.clone(), ledger)
        .with_revocations(revocations)
        .with_audit(audit.clone())
        .with_backend(
            crate::engine::backend(&config.query_engine).map_err(|message| ServeError::Config {
                path: "query_engine".into(),
                message,
            })?,
        );
    tracing::info!(
        engine = config.query_engine.name(),
        "queries run on this engine"
    );

    let listener = std::net::TcpListener::bind(&config.listen)
        .map_err(setup(&format!("listening on {}", config.listen)))?;
    listener
        .set_nonblocking(true)
        .map_err(setup("configuring the socket"))?;
    let addr = listener
        .local_addr()
        .map_err(setup("reading the address"))?;
    let authorities = authorities(&config, addr)?;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key).map_err(ServeError::Setup)?),
        (None, None) => None,
        _ => {
            return Err(ServeError::Setup(
                "set both tls_cert and tls_key (OAR_TLS_CERT, OAR_TLS_KEY), or neither".into(),
            ))
        }
    };
    if tls.is_none() && !addr.ip().is_loopback() && !config.allow_plain_http {
        return Err(ServeError::Setup(format!(
            "refusing to listen on {addr}, beyond loopback, without TLS: set tls_cert and tls_key (OAR_TLS_CERT, OAR_TLS_KEY), or allow_plain_http = true if a proxy in front terminates TLS"
        )));
    }
    let admin_listener = std::net::TcpListener::bind(&config.admin_listen).map_err(setup(
        &format!("listening on {} (admin)", config.admin_listen),
    ))?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(setup("reading the admin address"))?;
    if !admin_addr.ip().is_loopback() {
        return Err(ServeError::Setup(format!(
            "the admin API must listen on loopback, not {admin_addr}: set admin_listen (OAR_ADMIN_LISTEN) to 127.0.0.1:PORT"
        )));
    }
    admin_listener
        .set_nonblocking(true)
        .map_err(setup("configuring the admin socket"))?;
    let state = Arc::new(State {
        host,
        policy: Arc::new(policy),
        store,
        audit,
        holder,
        admin_token,
        data_dir,
        stopping: AtomicBool::new(false),
        precompiling: Default::default(),
        wake: (Mutex::new(()), Condvar::new()),
        metrics: Arc::new(metrics::Metrics::default()),
        authorities,
        scheme: if tls.is_some() { "https" } else { "http" },
        address_limit: limit::RateLimiter::new(config.requests_per_minute_per_address),
        key_limit: limit::RateLimiter::new(config.requests_per_minute_per_key),
        in_flight: Arc::new(tokio::sync::Semaphore::new(
            config.max_concurrent_requests.max(1),
        )),
        submissions: Mutex::new(()),
        web: web::Web::default(),
        config,
    });

    let workers = (0..workers_n)
        .map(|i| {
            let state = state.clone();
            std::thread::Builder::new()
                .name(format!("oar-worker-{i}"))
                .spawn(move || worker(&state))
                .map_err(setup("starting a worker"))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let (tx, rx) = tokio::sync::watch::channel(false);
    let public = api::router(state.clone()).merge(web::router(state.clone()));
    let admin = api::admin_router(state.clone()).merge(web::admin_router(state.clone()));
    let limits = state.config.connection_limits();
    let metrics = state.metrics.clone();
    let http = std::thread::Builder::new()
        .name("oar-http".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("the HTTP runtime starts");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)
                    .expect("the listening socket is usable");
                let admin_listener = tokio::net::TcpListener::from_std(admin_listener)
                    .expect("the admin socket is usable");
                let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                };
                let admin_limits = listen::ConnectionLimits {
                    max_connections: 16,
                    ..limits
                };
                tokio::join!(
                    listen::serve(
                        listener,
                        public,
                        tls,
                        limits,
                        metrics.clone(),
                        stopped(rx.clone())
                    ),
                    listen::serve(
                        admin_listener,
                        admin,
                        None,
                        admin_limits,
                        metrics,
                        stopped(rx)
                    ),
                );
            });
        })
        .map_err(setup("starting the HTTP thread"))?;

    Ok(RunningServer {
        addr,
        admin_addr,
        state,
        shutdown: Some(tx),
        http: Some(http),
        workers,
        bootstrap_notes,
    })
}

/// Takes queued jobs one at a time until the server stops.
fn worker(state: &State) {
    while !state.stopping.load(Ordering::SeqCst) {
        match state.store.claim() {
            Ok(Some(job)) => {
                // A worker survives any module and any bug in a run: the job fails, the worker
                // takes the next one.
                let id = job.id.clone();
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run_queued(state, job)
                }));
                if ran.is_err() {
                    tracing::error!(job = %id, "the run stopped unexpectedly; the job is marked failed");
                    let reason = "the run stopped unexpectedly; nothing was released";
                    if let Err(e) = state.store.finish(&id, "failed", Some(reason)) {
                        tracing::error!(error = %e, "cannot record the job's end");
                    }
                }
            }
            Ok(None) => {
                let guard = state.wake.0.lock().unwrap_or_else(|p| p.into_inner());
                let _ = state.wake.1.wait_timeout(guard, Duration::from_millis(500));
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the job queue");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// Verifies and runs one queued job, writes its signed release, and re-queues it if recurring.
fn run_queued(state: &State, job: Job) {
    let span = tracing::info_span!("queued_job", job = %job.id, module = %job.module_hash);
    let _entered = span.enter();
    let started = std::time::Instant::now();
    let (status, error) = match verified_module(state, &job.module_hash) {
        Err(reason) => {
            let _ = state.audit.append(
                EntryKind::Refusal,
                &job.requester,
                serde_json::json!({"job_id": job.id, "module_hash": job.module_hash, "reason": reason}),
            );
            ("failed", Some(reason))
        }
        Ok(module) => {
            let dir = state.releases_dir(&job.id);
            let target = crate::job::ReleaseTarget {
                dir: &dir,
                signer: Some(&state.holder),
            };
            let outcome = state.host.run_job_into(
                &job.id,
                Arc::new(module),
                &job.requester,
                &job.params,
                Some(&target),
            );
            for refusal in &outcome.record.refusals {
                state.metrics.refused(refusal.kind());
            }
            match outcome.result {
                Ok(_) => ("succeeded", None),
                Err(e) => ("failed", Some(e.to_string())),
            }
        }
    };
    state.metrics.run_seconds.observe(started.elapsed());
    metrics::bump(if status == "succeeded" {
        &state.metrics.jobs_succeeded
    } else {
        &state.metrics.jobs_failed
    });
    if let Err(e) = state.store.finish(&job.id, status, error.as_deref()) {
        tracing::error!(error = %e, "cannot record the job's end");
    }
    // A recurring job queues its next run (it survives restarts like any queued job) only
    // after a success, and only if it was not cancelled meanwhile: a module that lost its
    // approval, was revoked or failed stops recurring.
    let every = match state.store.job(&job.id) {
        Ok(Some(now)) => now.every_seconds,
        _ => None,
    };
    if let (Some(every), "succeeded") = (every, status) {
        let next = crate::job::new_job_id();
        let Some(at) = chrono::Utc::now().timestamp().checked_add(every) else {
            tracing::error!("the next run's time overflows; the job stops recurring");
            return;
        };
        let queued = state.store.enqueue(
            &next,
            &job.requester,
            &job.module_hash,
            &job.params,
            at,
            Some(every),
        );
        if let Err(e) = queued {
            tracing::error!(error = %e, "cannot schedule the next run");
        }
    }
}

/// What is stored for one component: its bundles (one per manifest) and its approvals.
pub(crate) struct StoredModule {
    /// The uploaded bundles, oldest first.
    pub bundles: Vec<crate::bundle::Bundle>,
    approvals: Vec<crate::approval::Approval>,
}

impl StoredModule {
    /// Reads what is stored for `module_hash` (rows that no longer parse are skipped).
    pub fn load(state: &State, module_hash: &str) -> Result<Self, StoreError> {
        Ok(StoredModule {
            bundles: state
                .store
                .bundles(module_hash)?
                .iter()
                .filter_map(|j| crate::bundle::Bundle::from_json(j.as_bytes()).ok())
                .collect(),
            approvals: state
                .store
                .approvals(module_hash)?
                .iter()
                .filter_map(|j| serde_json::from_str(j).ok())
                .collect(),
        })
    }

    /// Every stored approval of the component, whatever its manifest.
    pub fn approvals(&self) -> &[crate::approval::Approval] {
        &self.approvals
    }

    /// The bundles that have a stored approval of their manifest, with those approvals.
    pub fn approved(&self) -> Vec<(&crate::bundle::Bundle, Vec<&crate::approval::Approval>)> {
        self.bundles
            .iter()
            .filter_map(|b| {
                let manifest = hex::encode(b.manifest.hash());
                let mine: Vec<_> = self
                    .approvals
                    .iter()
                    .filter(|a| a.record.manifest_hash == manifest)
                    .collect();
                (!mine.is_empty()).then_some((b, mine))
            })
            .collect()
    }
}

/// A stored bundle of `module_hash` verified under one of its stored approvals, now.
/// Compiles a module that now verifies into the compiled-code cache, in the background, so that
/// no run pays for compiling it: a Python component takes seconds, and compiling counts against
/// a run's deadline. A module already being compiled, or that does not verify yet (an approval
/// short of its quorum), is left alone; a failure is only logged (the run will report it).
pub(crate) fn precompile(state: Arc<State>, module_hash: String) {
    {
        let mut busy = state.precompiling.lock().unwrap_or_else(|p| p.into_inner());
        if !busy.insert(module_hash.clone()) {
            return;
        }
    }
    std::thread::spawn(move || {
        if let Ok(module) = verified_module(&state, &module_hash) {
            let started = std::time::Instant::now();
            match state.host.runtime().prepare(&module) {
                Ok((_, cached)) => tracing::info!(
                    module = %module_hash,
                    cached,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "module compiled ahead of its runs"
                ),
                Err(e) => {
                    tracing::warn!(module = %module_hash, error = %e, "module does not compile")
                }
            }
        }
        state
            .precompiling
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&module_hash);
    });
}

fn verified_module(
    state: &State,
    module_hash: &str,
) -> Result<crate::verify::VerifiedModule, String> {
    let stored = StoredModule::load(state, module_hash).map_err(|e| e.to_string())?;
    if stored.bundles.is_empty() {
        return Err(format!("module {module_hash} was never uploaded"));
    }
    let mut last = format!("module {module_hash} has no approval");
    for (bundle, approvals) in stored.approved() {
        for approval in approvals {
            let verified = state.host.revocations().with(|list| {
                crate::verify::verify(bundle, approval, &state.policy, list, chrono::Utc::now())
            });
            match verified {
                Ok(v) => {
                    let _ = state.audit.append(
                        EntryKind::Verification,
                        "holder",
                        serde_json::json!({
                            "module_hash": module_hash,
                            "approval_digest": v.approval_digest(),
                            "signers": v.signers().len(),
                        }),
                    );
                    return Ok(v);
                }
                Err(e) => last = e.to_string(),
            }
        }
    }
    Err(last)
}
