//! The composition root of `cm` and `cm-api`: reads the configuration and the environment, builds
//! the adapters, hands them to a `Manager` and an `Auth`. The only place that knows which adapter
//! implements which port; both binaries call these functions, so they always agree.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use cm_core::{
    Adapters, Auditor, Auth, Config, ContainerRuntime, Entropy, FailPoints, IdentityVerifier, Manager,
    PortRange, Proxy, RoutingMode, RuntimeKind, Secret, SystemClock, ToolboxIdentity,
};
use cm_docker::{DockerRuntime, TcpPortProbe};
use cm_nginx::{DynamicProxy, NginxProxy};
use cm_ssh::Ed25519KeyParser;
use cm_store::SqliteStore;
use cm_swarm::SwarmRuntime;

/// Where the configuration is read from when `CM_CONFIG` is not set (if the file exists).
pub const DEFAULT_CONFIG_PATH: &str = "/etc/containermanager/config.toml";

/// The environment variables the frontends read.
pub mod env {
    /// Path of the TOML configuration.
    pub const CONFIG: &str = "CM_CONFIG";
    /// Path of the SQLite database.
    pub const DB: &str = "CM_DB";
    /// The host name users connect to over SSH.
    pub const SERVER_HOST: &str = "CM_SERVER_HOST";
    /// The port pool, as `START-END`.
    pub const PORT_POOL: &str = "CM_PORT_POOL";
    /// The admin key (at least 16 characters); without it a key is generated and stored hashed.
    pub const ADMIN_KEY: &str = "CONTAINER_ADMIN_KEY";
}

/// The loaded configuration and the database path it resolves to.
pub struct Settings {
    /// The configuration, with environment overrides applied.
    pub config: Config,
    /// The SQLite file.
    pub database: PathBuf,
}

/// Reads `CM_CONFIG` (or the default path when it exists) and applies environment overrides.
pub fn load_settings() -> anyhow::Result<Settings> {
    let explicit = std::env::var_os(env::CONFIG).map(PathBuf::from);
    let path = explicit
        .clone()
        .or_else(|| Some(PathBuf::from(DEFAULT_CONFIG_PATH)).filter(|p| p.exists()));
    let text = match &path {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the configuration {}", path.display()))?,
        None => String::new(),
    };
    let mut config = Config::from_toml(&text).map_err(|e| match &path {
        Some(path) => anyhow::anyhow!("{}: {e}", path.display()),
        None => anyhow::anyhow!("{e}"),
    })?;

    if let Some(host) = non_empty_var(env::SERVER_HOST) {
        config.set_server_host(host.trim())?;
    }
    if let Some(pool) = non_empty_var(env::PORT_POOL) {
        config.port_pool = parse_pool(&pool)?;
    }
    let database = non_empty_var(env::DB)
        .map(PathBuf::from)
        .or_else(|| config.database.clone())
        .unwrap_or_else(default_database);
    Ok(Settings { config, database })
}

fn non_empty_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parse_pool(text: &str) -> anyhow::Result<PortRange> {
    let Some((start, end)) = text.split_once('-') else {
        bail!("invalid {}: write START-END, such as 9000-9500", env::PORT_POOL);
    };
    let parse = |p: &str| {
        p.trim()
            .parse::<u16>()
            .with_context(|| format!("invalid {}: {p:?} is not a port", env::PORT_POOL))
    };
    Ok(PortRange::new(parse(start)?, parse(end)?)?)
}

/// `/var/lib/containermanager/cm.db` for root, else under the user's data directory.
fn default_database() -> PathBuf {
    let is_root =
        std::env::var("USER").is_ok_and(|u| u == "root") || std::env::var("HOME").is_ok_and(|h| h == "/root");
    if is_root {
        return PathBuf::from("/var/lib/containermanager/cm.db");
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data.join("containermanager/cm.db")
}

/// The manager and the authentication of one process, over one store.
pub struct App {
    /// The use cases.
    pub manager: Manager,
    /// Credentials.
    pub auth: Auth,
    /// The audit trail.
    pub auditor: Auditor,
}

/// Random bytes from the operating system.
struct OsEntropy;

impl Entropy for OsEntropy {
    fn secret_bytes(&self) -> [u8; 32] {
        rand::random()
    }
}

/// A new random admin key, for `cm generate-key`.
pub fn new_admin_key() -> Secret {
    Secret::new_admin_key(&OsEntropy)
}

/// Builds the manager and the authentication over the real adapters, for a long-running server
/// (`cm-api`): nginx changes arriving together are batched into one reload.
pub async fn build_app(settings: &Settings) -> anyhow::Result<App> {
    let store = Arc::new(SqliteStore::open(&settings.database)?);
    let mut auth = credentials_over(store.clone())?;
    if let Some(toolbox) = &settings.config.toolbox_identity {
        auth = auth.with_external(toolbox_verifier(toolbox)?);
    }
    Ok(App {
        auditor: Auditor::new(store.clone(), settings.config.audit_retention),
        // Woken containers are answered once their app answers, and a create's watch for an
        // early exit ends then.
        manager: manager_over(settings, store, proxy_for(settings, false).await)?
            .with_app_probe(Arc::new(cm_docker::HttpAppProbe::default())),
        auth,
    })
}

/// The verifier of `[auth.toolbox]`: CloudM access tokens checked locally with the worker's
/// secret (when `jwt_secret_env` names it), then whatever that does not recognise (the
/// `tb_session` cookie, or every token without a local secret) asked of the worker (when
/// `validate_url` names it).
fn toolbox_verifier(toolbox: &ToolboxIdentity) -> anyhow::Result<Arc<dyn IdentityVerifier>> {
    let mut chain: Vec<Arc<dyn IdentityVerifier>> = Vec::new();
    if let Some(variable) = &toolbox.jwt_secret_env {
        // The worker's secret comes from the environment only (like the admin key).
        let secret = std::env::var(variable)
            .ok()
            .filter(|s| !s.trim().is_empty())
            .with_context(|| {
                format!(
                    "[auth.toolbox] jwt_secret_env names {variable}, but it is empty: set it to the ToolBox worker's token secret{}",
                    if toolbox.validate_url.is_some() {
                        ", or leave jwt_secret_env out to have the worker check every token"
                    } else {
                        ""
                    }
                )
            })?;
        chain.push(Arc::new(cm_toolbox::CloudmTokens::new(
            secret.trim().as_bytes(),
            toolbox.admin_level,
        )?));
    }
    if let Some(worker) = cm_toolbox::WorkerSessions::from_config(toolbox) {
        chain.push(Arc::new(worker));
    }
    Ok(Arc::new(cm_toolbox::VerifierChain::new(chain)))
}

/// The audit trail of the database, for `cm`.
pub fn build_auditor(settings: &Settings) -> anyhow::Result<Auditor> {
    let store = Arc::new(SqliteStore::open(&settings.database)?);
    Ok(Auditor::new(store, settings.config.audit_retention))
}

/// The admin key and user tokens of the database, for `cm token` (which authenticates no one, so
/// it needs no other identity system).
pub fn build_credentials(settings: &Settings) -> anyhow::Result<Auth> {
    credentials_over(Arc::new(SqliteStore::open(&settings.database)?))
}

fn credentials_over(store: Arc<SqliteStore>) -> anyhow::Result<Auth> {
    let env_key = std::env::var(env::ADMIN_KEY)
        .ok()
        .filter(|k| !k.trim().is_empty())
        .map(Secret::new);
    Ok(Auth::new(
        store,
        Arc::new(OsEntropy),
        Arc::new(SystemClock),
        env_key,
    )?)
}

/// Builds a manager over the real adapters, for one command (`cm`): a route change goes to nginx
/// at once (nothing else will come to batch it with) and still shares reloads with other commands.
pub async fn build_manager(settings: &Settings) -> anyhow::Result<Manager> {
    let store = Arc::new(SqliteStore::open(&settings.database)?);
    // `cm create` stops watching for an early exit once the app answers.
    Ok(manager_over(settings, store, proxy_for(settings, true).await)?
        .with_app_probe(Arc::new(cm_docker::HttpAppProbe::default())))
}

/// nginx when configured and present; otherwise routing is reported as disabled, never faked.
/// The proxy adapter of the configured routing mode: dynamic routing needs no files and no
/// reloads; files mode writes a route per container (`one_change`: a process that makes one change
/// and exits, such as `cm`, skips the in-process batching window).
async fn proxy_for(settings: &Settings, one_change: bool) -> Arc<dyn Proxy> {
    let nginx = &settings.config.nginx;
    if nginx.enabled && nginx.mode == RoutingMode::Dynamic {
        return DynamicProxy::detect(nginx).await;
    }
    if one_change {
        Arc::new(NginxProxy::detect_for_one_change(nginx).await)
    } else {
        Arc::new(NginxProxy::detect(nginx).await)
    }
}

fn manager_over(
    settings: &Settings,
    store: Arc<SqliteStore>,
    proxy: Arc<dyn Proxy>,
) -> anyhow::Result<Manager> {
    let installation = store.installation_id()?;
    let adapters = Adapters {
        runtime: runtime_for(settings),
        store,
        proxy,
        keys: Arc::new(Ed25519KeyParser),
        probe: Arc::new(TcpPortProbe),
        clock: Arc::new(SystemClock),
        fail_points: fail_points(),
    };
    Ok(Manager::new(settings.config.clone(), adapters).with_installation(&installation))
}

/// The runtime adapter `[runtime] kind` names: one Docker engine (with disk caps), or a Docker
/// Swarm managed by the local engine, reaching other nodes' engines through `[runtime.nodes]`.
pub fn runtime_for(settings: &Settings) -> Arc<dyn ContainerRuntime> {
    match settings.config.runtime.kind {
        RuntimeKind::Docker => Arc::new(DockerRuntime::with_disk_images(disk_image_dir(settings))),
        RuntimeKind::Swarm => Arc::new(SwarmRuntime::new(settings.config.runtime.nodes.clone())),
    }
}

/// Where capped volumes' disk images live: `[disk] image_dir`, else `disks/` beside the database.
pub fn disk_image_dir(settings: &Settings) -> PathBuf {
    settings.config.disk_image_dir.clone().unwrap_or_else(|| {
        settings
            .database
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("disks")
    })
}

/// Production builds have no fail points.
#[cfg(not(feature = "failpoints"))]
fn fail_points() -> Arc<dyn FailPoints> {
    Arc::new(cm_core::NoFailPoints)
}

/// With the `failpoints` feature (enabled only by the test builds of cm-cli), `CM_FAILPOINT=name`
/// makes the process abort at that point of a use case, exactly like a `kill -9` there: no undo,
/// no destructors. The crash tests use it to prove that the next reconcile cleans up.
#[cfg(feature = "failpoints")]
fn fail_points() -> Arc<dyn FailPoints> {
    struct AbortAt(Option<String>);
    impl FailPoints for AbortAt {
        fn reached(&self, point: &str) {
            if self.0.as_deref() == Some(point) {
                eprintln!("fail point {point}: aborting");
                std::process::abort();
            }
        }
    }
    Arc::new(AbortAt(std::env::var("CM_FAILPOINT").ok()))
}

/// The nginx site file for the configured routing mode (`cm nginx setup --print`), with cm-api at
/// `api`.
pub fn nginx_site(settings: &Settings, api: std::net::SocketAddr) -> anyhow::Result<String> {
    Ok(cm_nginx::render_site(&site_of(settings, api))?)
}

/// Installs the nginx site file, checks it and reloads or starts nginx (`cm nginx setup`).
pub async fn nginx_setup(
    settings: &Settings,
    api: std::net::SocketAddr,
) -> anyhow::Result<cm_nginx::SetupReport> {
    Ok(cm_nginx::setup(&settings.config.nginx, &site_of(settings, api)).await?)
}

fn site_of(settings: &Settings, api: std::net::SocketAddr) -> cm_nginx::Site {
    let config = &settings.config;
    cm_nginx::Site {
        mode: config.nginx.mode,
        host: config.routing.host,
        listen: config.nginx.listen,
        server_name: config.nginx.server_name.clone(),
        base_domain: config.routing.base_domain.clone(),
        api,
        enabled_dir: config.nginx.enabled_dir.clone(),
    }
}
