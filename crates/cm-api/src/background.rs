//! What `cm-api` does besides answering requests: it keeps a live view of container statuses from
//! the engine's event stream (so listings do not ask the engine per request), it runs the
//! reconciler at start, periodically, and whenever the engine comes back after being away, it
//! stops idle containers of types with `idle_stop_after`, and it samples running containers' CPU
//! and memory use for the dashboard's charts.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use cm_core::{
    Actor, AuditEntry, AuditSource, Auditor, Manager, ReconcileOptions, ReconcileReport, StatusView,
};
use serde::Serialize;
use tokio::sync::Notify;

/// How often the reconciler runs when nothing else wakes it, unless `CM_RECONCILE_INTERVAL`
/// (seconds) says otherwise.
pub const DEFAULT_RECONCILE_INTERVAL: Duration = Duration::from_secs(300);

/// The reconciler of this process: one run at a time, and the last report.
pub struct Reconciler {
    interval: Duration,
    wake: Notify,
    running: tokio::sync::Mutex<()>,
    last: Mutex<Option<ReconcileReport>>,
    last_error: Mutex<Option<ReconcileError>>,
}

/// A reconcile that could not run (the engine was away).
#[derive(Debug, Clone, Serialize)]
pub struct ReconcileError {
    /// When it was tried, RFC 3339 UTC.
    pub at: String,
    /// Why it failed.
    pub message: String,
}

/// What `reconcile_status` answers.
#[derive(Debug, Clone, Serialize)]
pub struct ReconcileStatus {
    /// The last completed run (a dry run included), if any.
    pub last_report: Option<ReconcileReport>,
    /// The last run that could not happen, if it came after the last report.
    pub last_error: Option<ReconcileError>,
    /// Seconds between periodic runs.
    pub interval_seconds: u64,
    /// Whether listings come from the engine's event stream right now.
    pub live_statuses: bool,
}

impl Reconciler {
    /// A reconciler that runs every `interval` once spawned.
    pub fn new(interval: Duration) -> Arc<Self> {
        Arc::new(Reconciler {
            interval,
            wake: Notify::new(),
            running: tokio::sync::Mutex::new(()),
            last: Mutex::new(None),
            last_error: Mutex::new(None),
        })
    }

    /// Runs one reconcile now (after any running one) and remembers its report.
    pub async fn run(
        &self,
        manager: &Manager,
        options: ReconcileOptions,
    ) -> cm_core::Result<ReconcileReport> {
        let _one_at_a_time = self.running.lock().await;
        match manager.reconcile(options).await {
            Ok(report) => {
                if !report.findings.is_empty() {
                    tracing::info!(
                        findings = report.findings.len(),
                        dry_run = report.dry_run,
                        "reconciled"
                    );
                }
                *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(report.clone());
                *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = None;
                Ok(report)
            }
            Err(e) => {
                tracing::warn!(error = ?e, "reconcile could not run");
                *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(ReconcileError {
                    at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
                    message: e.message().to_owned(),
                });
                Err(e)
            }
        }
    }

    /// The last report and error.
    pub fn status(&self, view: Option<&StatusView>) -> ReconcileStatus {
        ReconcileStatus {
            last_report: self.last.lock().unwrap_or_else(PoisonError::into_inner).clone(),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            interval_seconds: self.interval.as_secs(),
            live_statuses: view.is_some_and(StatusView::is_live),
        }
    }

    /// Starts the event feed and the reconcile loop on the current runtime. The feed wakes the
    /// loop on every (re)connection, so the first reconcile runs as soon as the engine answers and
    /// again whenever it comes back.
    pub fn spawn(self: &Arc<Self>, manager: Manager, view: Arc<StatusView>) {
        let feeder = manager.clone();
        let reconciler = self.clone();
        tokio::spawn(async move {
            let wake = || reconciler.wake.notify_one();
            feeder.feed_status_view(view, &wake).await;
        });
        if let Some(every) = manager.config().health.sample_every {
            let sampler = manager.clone();
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(every);
                // A round that takes longer than the interval (hundreds of containers) is
                // followed by the next one at once, not by a burst of missed ones.
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    if let Err(e) = sampler.sample_usage().await {
                        tracing::debug!(error = ?e, "no usage samples this round");
                    }
                    match sampler.watch_nodes().await {
                        Ok(0) => {}
                        Ok(n) => tracing::warn!(containers = n, "containers sit on nodes that are down"),
                        Err(e) => tracing::debug!(error = ?e, "the nodes could not be listed this round"),
                    }
                }
            });
        }
        let reconciler = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = reconciler.wake.notified() => {}
                    () = tokio::time::sleep(reconciler.interval) => {}
                }
                // Errors are recorded for reconcile_status; the loop goes on.
                let _ = reconciler.run(&manager, ReconcileOptions::default()).await;
            }
        });
    }
}

/// How often the idle sweep runs: a quarter of the shortest `idle_stop_after`, between 1 and 60
/// seconds (a container stops at most that much later than its idle time says); `None` when no
/// type stops idle containers.
pub fn idle_sweep_interval(manager: &Manager) -> Option<Duration> {
    manager
        .types()
        .iter()
        .filter_map(|t| t.idle_stop_after)
        .min()
        .map(|shortest| (shortest / 4).clamp(Duration::from_secs(1), Duration::from_secs(60)))
}

/// Runs the idle sweep on the current runtime every [`idle_sweep_interval`] (nothing when no
/// type stops idle containers), recording each stop in the audit trail as the system's.
pub fn spawn_idle_sweep(manager: Manager, auditor: Option<Auditor>) {
    let Some(interval) = idle_sweep_interval(&manager) else {
        return;
    };
    tracing::info!(interval_ms = interval.as_millis(), "idle containers are stopped");
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let sweep = match manager.idle_sweep().await {
                Ok(sweep) => sweep,
                Err(e) => {
                    tracing::debug!(error = ?e, "idle sweep could not run");
                    continue;
                }
            };
            let Some(auditor) = &auditor else {
                continue;
            };
            let entry = |stop: &cm_core::IdleStop| {
                AuditEntry::new(Actor::System, AuditSource::System, "idle_stop_container")
                    .on(stop.container_name.as_str(), Some(&stop.user_id))
                    .with_params(serde_json::json!({"idle_seconds": stop.idle_seconds}))
            };
            for stop in &sweep.stopped {
                auditor.record(entry(stop)).await;
            }
            for (stop, e) in &sweep.failed {
                auditor
                    .record(entry(stop).failed(crate::error::ErrorCode::of_kind(e.kind()).code()))
                    .await;
            }
        }
    });
}
