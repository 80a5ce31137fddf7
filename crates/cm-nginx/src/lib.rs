//! ContainerManager's nginx adapter: the [`cm_core::Proxy`] port on a host's real nginx (D6).
//!
//! Each route is one file `box-available/container-{user_id}-{type}.conf` holding the
//! `location /container/{user_id}/{type}/` block, linked into `box-enabled/`, which the operator
//! includes inside a `server` block. A change goes live only after `nginx -t` accepted it; a
//! refused change is rolled back (the last good file keeps serving) and recorded as failed with
//! nginx's own message. Changes arriving close together share one `nginx -t` and one reload (see
//! the `engine` module for how validation and coalescing interact). When nginx is missing, the
//! proxy reports routing as disabled and refuses to pretend otherwise.
//!
//! See `docs/nginx.md` for wiring nginx on a host.

mod engine;
mod files;
mod render;
mod runner;
mod site;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;

use cm_core::{
    Error, ErrorKind, NginxSettings, Proxy, ProxyStatus, ReloadOutcome, Result, Route, RouteStatus,
    RoutingMode, TypeName, UserId,
};

pub use engine::{LastReload, ReloadStats};
pub use render::{Site, render_map_snippet, render_route, render_site, route_file_name};
pub use site::{DynamicProxy, SITE_FILE, SetupReport, setup};

use engine::{Engine, Request, Timing};
use files::{BoxDirs, RouteKey};
use runner::{Action, ProcessRunner, RunError, Runner};

/// The nginx-backed [`Proxy`]. Cheap to share behind an `Arc<dyn Proxy>`.
pub struct NginxProxy {
    state: State,
}

/// The file name of the http-level snippet that defines `$cm_connection_upgrade` and the cookie maps.
pub const MAP_SNIPPET_FILE: &str = "cm-map.conf";

/// Writes the http-level snippet ([`render_map_snippet`]) to `path` atomically, creating the
/// parent directory when missing. The operator includes it once inside `http { ... }`.
pub fn install_map_snippet(path: &Path) -> Result<()> {
    let failed = |e: std::io::Error| {
        Error::unavailable(format!(
            "writing the nginx map snippet {} failed: {e}",
            path.display()
        ))
        .with_source(e)
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(failed)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(MAP_SNIPPET_FILE);
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, render_map_snippet())
        .and_then(|()| std::fs::rename(&tmp, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .map_err(failed)
}

enum State {
    Disabled { reason: String },
    Enabled { engine: Arc<Engine>, version: String },
}

impl NginxProxy {
    /// Builds the proxy from the settings, checking that nginx runs (`nginx -v` with the
    /// configured arguments). Without a usable nginx, or with `enabled = false` in the settings,
    /// the proxy is disabled: its status says why,
    /// `apply`/`remove`/`sync` answer `Unavailable`, and `routes` is empty. That is logged once,
    /// here.
    pub async fn detect(settings: &NginxSettings) -> NginxProxy {
        let runner = ProcessRunner::new(settings.binary.clone(), settings.args.clone());
        Self::detect_timed(settings, Arc::new(runner), Timing::SERVER).await
    }

    /// Like [`NginxProxy::detect`], for a process that makes one change and exits (the `cm`
    /// CLI): no in-process batching window, since no second request will come, while reloads are
    /// still shared with other processes' changes.
    pub async fn detect_for_one_change(settings: &NginxSettings) -> NginxProxy {
        let runner = ProcessRunner::new(settings.binary.clone(), settings.args.clone());
        Self::detect_timed(settings, Arc::new(runner), Timing::ONE_CHANGE).await
    }

    /// For tests: one short `debounce` for both windows and no reload interval.
    #[cfg(test)]
    async fn detect_with(
        settings: &NginxSettings,
        runner: Arc<dyn Runner>,
        debounce: Duration,
    ) -> NginxProxy {
        let timing = Timing {
            debounce,
            share_window: debounce,
            min_interval: Duration::ZERO,
        };
        Self::detect_timed(settings, runner, timing).await
    }

    async fn detect_timed(settings: &NginxSettings, runner: Arc<dyn Runner>, timing: Timing) -> NginxProxy {
        if !settings.enabled {
            let reason = "HTTP exposure disabled by configuration ([nginx] enabled = false)".to_owned();
            tracing::info!("{reason}");
            return NginxProxy {
                state: State::Disabled { reason },
            };
        }
        let binary = settings.binary.display();
        let state = match runner.run(Action::Version).await {
            Ok(text) => {
                let version = text
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("nginx version: "))
                    .unwrap_or("nginx")
                    .to_owned();
                let dirs = BoxDirs::new(settings.available_dir.clone(), settings.enabled_dir.clone());
                tracing::info!(
                    %version,
                    available = %dirs.available().display(),
                    enabled = %dirs.enabled().display(),
                    "nginx routing enabled"
                );
                State::Enabled {
                    engine: Engine::new(dirs, runner, timing),
                    version,
                }
            }
            Err(RunError::Spawn(why)) => {
                let reason = format!("HTTP exposure disabled: nginx not found ({why})");
                tracing::info!("{reason}");
                State::Disabled { reason }
            }
            Err(RunError::Refused(why)) => {
                let reason = format!("HTTP exposure disabled: nginx is not usable ({binary} -v: {why})");
                tracing::info!("{reason}");
                State::Disabled { reason }
            }
        };
        NginxProxy { state }
    }

    /// A proxy that routes nothing, for `reason`.
    pub fn disabled(reason: String) -> NginxProxy {
        NginxProxy {
            state: State::Disabled { reason },
        }
    }

    /// Whether routes are written at all.
    pub fn is_enabled(&self) -> bool {
        matches!(self.state, State::Enabled { .. })
    }

    /// Reload counters and the last reload's result, for this process (zeros when disabled).
    pub fn stats(&self) -> ReloadStats {
        match &self.state {
            State::Enabled { engine, .. } => engine.stats(),
            State::Disabled { .. } => ReloadStats::default(),
        }
    }

    /// How many times this proxy ran `nginx -s reload`.
    pub fn reload_count(&self) -> u64 {
        self.stats().reloads
    }

    /// When the last reload ran and whether nginx accepted it.
    pub fn last_reload(&self) -> Option<LastReload> {
        self.stats().last_reload
    }

    /// Reloads nginx now (coalesced with pending changes). nginx parses its whole configuration
    /// before it signals the running master, so a broken configuration is refused, not loaded.
    pub async fn reload(&self) -> Result<()> {
        self.engine()?.submit(Request::Reload).await
    }

    fn engine(&self) -> Result<&Arc<Engine>> {
        match &self.state {
            State::Enabled { engine, .. } => Ok(engine),
            State::Disabled { reason } => Err(Error::unavailable(reason.clone())),
        }
    }
}

#[async_trait]
impl Proxy for NginxProxy {
    fn status(&self) -> ProxyStatus {
        match &self.state {
            State::Disabled { reason } => ProxyStatus::disabled(reason.clone()),
            State::Enabled { engine, version } => {
                let dirs = engine.dirs();
                let mut detail = format!(
                    "{version}: routes in {}, live through {}",
                    dirs.available().display(),
                    dirs.enabled().display()
                );
                let stats = engine.stats();
                if let Some(LastReload {
                    at,
                    error: Some(error),
                }) = &stats.last_reload
                {
                    let ago = SystemTime::now()
                        .duration_since(*at)
                        .unwrap_or_default()
                        .as_secs();
                    detail.push_str(&format!("; the last reload ({ago}s ago) failed: {error}"));
                }
                ProxyStatus {
                    enabled: true,
                    mode: Some(RoutingMode::Files),
                    answers: None,
                    detail,
                    reloads: stats.reloads,
                    last_reload: stats.last_reload.map(|r| ReloadOutcome {
                        at: humantime::format_rfc3339_seconds(r.at).to_string(),
                        error: r.error,
                    }),
                }
            }
        }
    }

    async fn apply(&self, route: &Route) -> Result<()> {
        self.engine()?.submit(Request::Apply(route.clone())).await
    }

    async fn remove(&self, user: &UserId, kind: &TypeName) -> Result<()> {
        let key = RouteKey::new(user.clone(), kind.clone());
        self.engine()?.submit(Request::Remove(key)).await
    }

    async fn routes(&self) -> Result<Vec<RouteStatus>> {
        let State::Enabled { engine, .. } = &self.state else {
            return Ok(Vec::new());
        };
        // A shared hold on the lock: no half-applied batch is ever listed.
        let started = Instant::now();
        loop {
            let listed = engine
                .fs(|dirs| match dirs.try_lock_shared()? {
                    Some(guard) => {
                        let list = dirs.list();
                        drop(guard);
                        list.map(Some)
                    }
                    None => Ok(None),
                })
                .await?;
            if let Some(list) = listed {
                return Ok(list);
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    "another process has held the nginx route lock for over 60s",
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn sync(&self, routes: &[Route]) -> Result<Vec<RouteStatus>> {
        self.engine()?.submit(Request::Sync(routes.to_vec())).await?;
        self.routes().await
    }
}

#[cfg(test)]
mod tests;
