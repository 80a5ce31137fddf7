//! What the `cm-api` binary does: wire, make sure an admin key exists, serve.

use actix_web::HttpServer;
use anyhow::Context;
use clap::Parser;

use std::time::Duration;

use cm_core::StatusView;

use crate::background::{DEFAULT_RECONCILE_INTERVAL, Reconciler};
use crate::state::AppState;

/// Where the API listens unless told otherwise: loopback only (put nginx or a tunnel in front).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8123";

/// The command line of `cm-api`.
#[derive(Debug, Parser)]
#[command(name = "cm-api", version, about = "The HTTP API of ContainerManager")]
pub struct Options {
    /// The address to listen on.
    #[arg(long, env = "CM_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: String,
}

/// Serves the API until the process is stopped (SIGINT or SIGTERM end it gracefully).
///
/// Reads `CM_CONFIG`, `CM_DB` and `CONTAINER_ADMIN_KEY` through the same wiring as `cm`. Without
/// `CONTAINER_ADMIN_KEY` and without a stored key, a key is generated, its hash stored, and the key
/// printed once on stderr (never logged).
pub async fn run(options: Options) -> anyhow::Result<()> {
    let settings = cm_wiring::load_settings()?;
    let wired = cm_wiring::build_app(&settings).await?;
    if let Some(key) = wired
        .auth
        .ensure_admin_key()
        .await
        .context("making sure an admin key exists")?
    {
        announce_generated_key(&settings.database, key.expose())?;
    }
    match wired.manager.engine_info().await {
        Ok(engine) => {
            tracing::info!(version = %engine.version, api = %engine.api_version, "docker engine answers")
        }
        Err(e) => {
            tracing::warn!(error = %e, "docker engine does not answer; serving anyway (docker_health says 503)")
        }
    }
    let interval = reconcile_interval()?;
    let reconciler = Reconciler::new(interval);
    let statuses = StatusView::new();
    // Entries past the retention go at every start and then daily.
    let auditor = wired.auditor.clone();
    tokio::spawn(async move {
        loop {
            match auditor.prune().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "audit entries past their retention removed"),
                Err(e) => tracing::warn!(error = %e, "the audit trail could not be pruned"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(24 * 3600)).await;
        }
    });
    let state = AppState::new(wired.manager, wired.auth)
        .with_background(reconciler.clone(), statuses.clone())
        .with_auditor(wired.auditor);
    // The event feed and the reconciler: a reconcile as soon as the engine answers, every
    // `interval`, and whenever the engine comes back.
    reconciler.spawn(state.manager.clone(), statuses);
    // Idle containers of types with `idle_stop_after` are stopped (a request wakes them).
    crate::background::spawn_idle_sweep(state.manager.clone(), state.auditor.clone());
    let proxy = state.manager.probe_proxy().await;
    if !proxy.enabled {
        tracing::warn!(detail = %proxy.detail, "HTTP exposure is disabled");
    } else if proxy.answers == Some(false) {
        tracing::warn!(detail = %proxy.detail, "nginx does not answer; run `cm nginx setup`");
    }
    if proxy.enabled {
        eprintln!(
            "containers through nginx at http://{}/container/{{user_id}}/{{type}}/ (owner-checked by this server)",
            settings.config.nginx.listen
        );
    }
    let manager = state.manager.clone();
    let server = HttpServer::new(move || crate::app(state.clone()))
        // Lets a long request (a command in a container) notice that its client hung up.
        .on_connect(crate::hangup::remember_socket)
        // Signals are handled below, so that followed logs end before the graceful stop.
        .disable_signals()
        .bind(&options.listen)
        .with_context(|| format!("listening on {}", options.listen))?;
    for address in server.addrs() {
        tracing::info!(%address, database = %settings.database.display(), "cm-api serving");
        eprintln!(
            "cm-api serving on http://{address} (dashboard at /, API under /api/ContainerManager/; database {})",
            settings.database.display()
        );
    }
    let running = server.run();
    let handle = running.handle();
    actix_web::rt::spawn(async move {
        stop_signal().await;
        tracing::info!("stopping: ending followed logs, finishing the requests in progress");
        manager.end_follows();
        handle.stop(true).await;
    });
    running.await.context("serving")?;
    Ok(())
}

/// SIGTERM (systemd, `docker stop`) or SIGINT (Ctrl-C).
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "SIGTERM can not be handled; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// `CM_RECONCILE_INTERVAL` in seconds (at least 10), or the default.
fn reconcile_interval() -> anyhow::Result<Duration> {
    match std::env::var("CM_RECONCILE_INTERVAL") {
        Ok(text) if !text.trim().is_empty() => {
            let seconds: u64 = text
                .trim()
                .parse()
                .with_context(|| format!("CM_RECONCILE_INTERVAL={text:?} is not a number of seconds"))?;
            anyhow::ensure!(seconds >= 10, "CM_RECONCILE_INTERVAL must be at least 10 seconds");
            Ok(Duration::from_secs(seconds))
        }
        _ => Ok(DEFAULT_RECONCILE_INTERVAL),
    }
}

/// The file a generated admin key is written to, beside the database.
pub const ADMIN_KEY_FILE: &str = "admin-key";

/// Hands a newly generated admin key to the operator without putting it into a log: it goes to a
/// file only its owner may read (`admin-key` beside the database), whose path is printed. On a
/// terminal (a person watching, not a journal) the key is shown too.
fn announce_generated_key(database: &std::path::Path, key: &str) -> anyhow::Result<()> {
    use std::io::{IsTerminal, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let path = database
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .join(ADMIN_KEY_FILE);
    let _ = std::fs::remove_file(&path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing the generated admin key to {}", path.display()))?;
    writeln!(file, "{key}").with_context(|| format!("writing {}", path.display()))?;
    let shown = if std::io::stderr().is_terminal() {
        format!(":\n\n    {key}\n\nIt is also")
    } else {
        String::new()
    };
    eprintln!(
        "\nA new admin key was generated{shown} in {} (readable only by you; only its hash is \
         stored in the database). Read it, keep it somewhere safe, then delete the file. Send it as \
         'Authorization: Bearer <key>'. To replace it, POST /api/ContainerManager/rotate_admin_key \
         with the current key, or set CONTAINER_ADMIN_KEY (which then takes precedence).\n",
        path.display()
    );
    Ok(())
}
