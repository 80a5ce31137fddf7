//! Dynamic routing and the site file: one static nginx configuration, written once by
//! `cm nginx setup`, in which nginx asks cm-api per request who may reach which container. Creating
//! or deleting a container then touches no nginx file and reloads nothing: [`DynamicProxy`] only
//! reports.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use cm_core::{
    Error, NginxSettings, Proxy, ProxyStatus, Result, Route, RouteState, RouteStatus, RoutingMode, TypeName,
    UserId,
};

use crate::NginxProxy;
use crate::render::{Site, render_site};
use crate::runner::{Action, ProcessRunner, RunError, Runner};

/// The file `cm nginx setup` writes into nginx's `conf.d/`.
pub const SITE_FILE: &str = "containermanager.conf";
/// The first line of every site file we write: a file without it is never overwritten.
const SITE_MARKER: &str = "# Managed by ContainerManager (`cm nginx setup`).";
/// How long the health probe waits for nginx.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The [`Proxy`] of dynamic routing: nothing to write, nothing to reload. It reports the mode
/// and, when probed, whether nginx answers on its address.
pub struct DynamicProxy {
    version: String,
    listen: SocketAddr,
}

impl DynamicProxy {
    /// Checks that nginx is installed (`nginx -v`); without it routing is disabled like in
    /// files mode, and the returned proxy says why.
    pub async fn detect(settings: &NginxSettings) -> Arc<dyn Proxy> {
        match Self::find(settings).await {
            Ok(proxy) => Arc::new(proxy),
            Err(reason) => {
                tracing::info!("{reason}");
                Arc::new(NginxProxy::disabled(reason))
            }
        }
    }

    async fn find(settings: &NginxSettings) -> std::result::Result<DynamicProxy, String> {
        let runner = ProcessRunner::new(settings.binary.clone(), settings.args.clone());
        match runner.run(Action::Version).await {
            Ok(text) => Ok(DynamicProxy {
                version: text
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("nginx version: "))
                    .unwrap_or("nginx")
                    .to_owned(),
                listen: settings.listen,
            }),
            Err(RunError::Spawn(why)) => Err(format!("HTTP exposure disabled: nginx not found ({why})")),
            Err(RunError::Refused(why)) => Err(format!(
                "HTTP exposure disabled: nginx is not usable ({} -v: {why})",
                settings.binary.display()
            )),
        }
    }
}

#[async_trait]
impl Proxy for DynamicProxy {
    fn status(&self) -> ProxyStatus {
        ProxyStatus {
            enabled: true,
            mode: Some(RoutingMode::Dynamic),
            answers: None,
            detail: format!(
                "{}: dynamic routes on http://{}, checked per request by cm-api (no files, no reloads)",
                self.version, self.listen
            ),
            reloads: 0,
            last_reload: None,
        }
    }

    async fn probe(&self) -> ProxyStatus {
        let mut status = self.status();
        match ping(self.listen).await {
            Ok(()) => status.answers = Some(true),
            Err(why) => {
                status.answers = Some(false);
                status.detail.push_str(&format!(
                    "; nginx does not answer there ({why}): run `cm nginx setup`"
                ));
            }
        }
        status
    }

    async fn apply(&self, _route: &Route) -> Result<()> {
        Ok(())
    }

    async fn remove(&self, _user: &UserId, _kind: &TypeName) -> Result<()> {
        Ok(())
    }

    async fn routes(&self) -> Result<Vec<RouteStatus>> {
        Ok(Vec::new())
    }

    async fn sync(&self, routes: &[Route]) -> Result<Vec<RouteStatus>> {
        Ok(routes
            .iter()
            .map(|route| RouteStatus {
                user: route.user.to_string(),
                kind: route.kind.to_string(),
                port: Some(route.port),
                state: RouteState::Active,
            })
            .collect())
    }
}

/// `GET /_cm/ping` on nginx's address: `Ok` when nginx answers 200.
async fn ping(address: SocketAddr) -> std::result::Result<(), String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| e.to_string())?;
        stream
            .write_all(b"GET /_cm/ping HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut head = [0u8; 64];
        let n = stream.read(&mut head).await.map_err(|e| e.to_string())?;
        let line = String::from_utf8_lossy(&head[..n]);
        if line.starts_with("HTTP/1.1 200") || line.starts_with("HTTP/1.0 200") {
            Ok(())
        } else {
            Err(format!(
                "it answers {:?} to /_cm/ping",
                line.lines().next().unwrap_or_default()
            ))
        }
    };
    tokio::time::timeout(PROBE_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}s", PROBE_TIMEOUT.as_secs())))
}

/// What `cm nginx setup` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupReport {
    /// The file written.
    pub path: PathBuf,
    /// True when the file changed.
    pub changed: bool,
    /// How nginx took it: `reloaded` or `started`.
    pub nginx: &'static str,
    /// Route files of files mode that dynamic routing retired (they carried no owner check
    /// before this version, and must not keep serving beside the dynamic routes).
    pub retired_routes: usize,
}

/// The first line of every route file files mode writes.
const ROUTE_MARKER: &str = "# Managed by ContainerManager (cm-nginx).";

/// Removes the route files (and their links and failure markers) that files mode wrote, leaving
/// anything else in the box directories alone; returns how many routes went.
fn retire_route_files(settings: &NginxSettings) -> Result<usize> {
    let ours = |name: &str| name.starts_with("container-") && name.ends_with(".conf");
    let mut retired = 0;
    if let Ok(entries) = std::fs::read_dir(&settings.enabled_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let is_ours = ours(&name)
                && std::fs::read_to_string(&path).map_or(
                    // A dangling link into box-available is ours too.
                    entry.file_type().is_ok_and(|t| t.is_symlink()),
                    |text| text.starts_with(ROUTE_MARKER),
                );
            if is_ours {
                std::fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
                retired += 1;
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(&settings.available_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let route = ours(&name)
                && std::fs::read_to_string(&path).is_ok_and(|text| text.starts_with(ROUTE_MARKER));
            let marker = name.starts_with("container-") && name.ends_with(".conf.failed");
            if route || marker {
                std::fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
            }
        }
    }
    Ok(retired)
}

/// Writes the site file into `settings.conf_dir`, checks the whole configuration with
/// `nginx -t` (restoring the previous file when nginx refuses), then reloads nginx, or starts it
/// when it is not running. Never overwrites a file it did not write.
pub async fn setup(settings: &NginxSettings, site: &Site) -> Result<SetupReport> {
    let text = render_site(site)?;
    let path = settings.conf_dir.join(SITE_FILE);
    let previous = read_ours(&path)?;
    let changed = previous.as_deref() != Some(text.as_str());
    if site.mode == RoutingMode::Files {
        for dir in [&settings.available_dir, &settings.enabled_dir] {
            std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        }
    }
    if changed {
        write_atomically(&path, &text)?;
    }
    let retired_routes = if site.mode == RoutingMode::Dynamic {
        retire_route_files(settings)?
    } else {
        0
    };
    let runner = ProcessRunner::new(settings.binary.clone(), settings.args.clone());
    if let Err(refused) = runner.run(Action::Test).await {
        if changed {
            let restored = match &previous {
                Some(old) => write_atomically(&path, old),
                None => std::fs::remove_file(&path).map_err(|e| io_error(&path, e)),
            };
            if let Err(e) = restored {
                tracing::warn!(error = ?e, "could not restore the previous nginx site file");
            }
        }
        let message = match refused {
            RunError::Spawn(why) | RunError::Refused(why) => why,
        };
        return Err(Error::conflict(format!(
            "nginx refused the configuration, so {} was left as it was: {message}",
            path.display()
        )));
    }
    let nginx = match runner.run(Action::Reload).await {
        Ok(_) => "reloaded",
        Err(reload) => match runner.run(Action::Start).await {
            Ok(_) => "started",
            Err(start) => {
                let why = |e: RunError| match e {
                    RunError::Spawn(w) | RunError::Refused(w) => w,
                };
                return Err(Error::unavailable(format!(
                    "{} is written and valid, but nginx could neither reload ({}) nor start ({})",
                    path.display(),
                    why(reload),
                    why(start)
                )));
            }
        },
    };
    Ok(SetupReport {
        path,
        changed,
        nginx,
        retired_routes,
    })
}

/// The current site file, `None` when there is none; an error when a file is there that we did
/// not write.
fn read_ours(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.starts_with(SITE_MARKER) => Ok(Some(text)),
        Ok(_) => Err(Error::conflict(format!(
            "{} exists and was not written by ContainerManager: move it away, or use \
             `cm nginx setup --print` and merge by hand",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path, e)),
    }
}

fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let tmp = dir.join(format!(".{SITE_FILE}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .map_err(|e| io_error(path, e))
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::unavailable(format!("writing {} failed: {e}", path.display())).with_source(e)
}
