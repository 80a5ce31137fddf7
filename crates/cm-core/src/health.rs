//! How a container is doing: the engine's facts (uptime, restarts, last exit code, OOM kill), its
//! CPU and memory use, the last minutes of use as cm-api's sampler saw them, and, when it keeps
//! failing, the last lines it wrote. Also the create's watch for a container that exits at once.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::manager::Manager;
use crate::ports::{ContainerStats, LogRequest};
use crate::spec::{ContainerSpec, ContainerStatus};

/// How many output lines a failing container's health (and a failed create) shows.
pub const LAST_LOG_LINES: usize = 20;

/// How many samples the history keeps per container (with the default 30 s, 20 minutes).
pub const HISTORY_POINTS: usize = 40;

/// How many containers the sampler asks about at once (each sample takes the engine about a
/// second: it reads the CPU counters twice).
const SAMPLES_AT_ONCE: usize = 8;

/// How often the create's watch looks at a new container.
const EXIT_CHECK_STEP: Duration = Duration::from_millis(100);

/// One sample of a container's use.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UsagePoint {
    /// When, in seconds since the Unix epoch.
    pub at: u64,
    /// CPU use over the sample, in percent of one CPU.
    pub cpu_percent: f64,
    /// Memory in use, in bytes.
    pub memory_bytes: u64,
}

/// The recent use of each running container, as the sampler saw it. In memory only: a restarted
/// cm-api starts with empty charts.
#[derive(Debug, Default)]
pub struct UsageHistory {
    points: Mutex<BTreeMap<String, VecDeque<UsagePoint>>>,
}

impl UsageHistory {
    fn record(&self, id: &str, point: UsagePoint) {
        if let Ok(mut points) = self.points.lock() {
            let series = points.entry(id.to_owned()).or_default();
            if series.len() == HISTORY_POINTS {
                series.pop_front();
            }
            series.push_back(point);
        }
    }

    /// A container's samples, oldest first.
    pub fn of(&self, id: &str) -> Vec<UsagePoint> {
        self.points
            .lock()
            .ok()
            .and_then(|p| p.get(id).map(|s| s.iter().copied().collect()))
            .unwrap_or_default()
    }

    /// Forgets the containers not in `ids` (deleted or re-created ones).
    fn keep_only(&self, ids: &BTreeSet<String>) {
        if let Ok(mut points) = self.points.lock() {
            points.retain(|id, _| ids.contains(id));
        }
    }
}

/// How a container is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerHealth {
    /// Its status now.
    pub status: ContainerStatus,
    /// Seconds since it last started, while it runs.
    pub uptime_seconds: Option<u64>,
    /// When it last started, RFC 3339 (`None` before the first start).
    pub started_at: Option<String>,
    /// How often the engine restarted it since it was last started on purpose.
    pub restart_count: i64,
    /// The exit code of its last run (0 while it runs after a clean start).
    pub exit_code: i64,
    /// Whether the kernel killed it for memory on its last run.
    pub oom_killed: bool,
    /// CPU use over about a second, in percent of one CPU.
    pub cpu_percent: f64,
    /// Memory in use (without the page cache), in bytes.
    pub memory_bytes: u64,
    /// Its memory limit, in bytes.
    pub memory_limit_bytes: u64,
    /// Its last output lines (at most [`LAST_LOG_LINES`]), when it is crash-looping, was killed
    /// for memory or its last run failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_log_lines: Vec<String>,
    /// The last minutes of use, oldest first, when cm-api samples (`[health] sample_seconds`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<UsagePoint>,
}

impl ContainerHealth {
    /// Whether it is failing: crash-looping (also in the moments a crash-looping container runs
    /// between two exits: restarted again and again, and up for less than the engine's 10 s after
    /// which it counts a run as good), killed for memory, or its last run ended badly.
    pub fn is_failing(&self) -> bool {
        let between_crashes = self.restart_count >= crate::spec::CRASH_LOOP_RESTARTS
            && self.uptime_seconds.is_some_and(|up| up < 10);
        self.status == ContainerStatus::CrashLooping
            || between_crashes
            || self.oom_killed
            || (self.exit_code != 0 && !self.status.is_active())
    }
}

/// Seconds from an RFC 3339 time (the engine's, with nanoseconds) to `now`.
fn seconds_since(rfc3339: &str, now: SystemTime) -> Option<u64> {
    let then = humantime::parse_rfc3339_weak(rfc3339).ok()?;
    now.duration_since(then).ok().map(|d| d.as_secs())
}

impl Manager {
    /// How a resolved container is doing (one stats sample, about a second of the engine's time;
    /// its last output lines when it is failing).
    pub async fn health(&self, spec: &ContainerSpec) -> Result<ContainerHealth> {
        let spec = self.with_status(spec.clone()).await?;
        if spec.status == ContainerStatus::Missing {
            return Err(Error::not_found(format!(
                "container {} is recorded but missing from the engine; `cm reconcile` re-creates it",
                spec.container_name
            )));
        }
        let stats: ContainerStats = self.adapters().runtime.stats(&spec.container_id).await?;
        let running = spec.status == ContainerStatus::Running;
        let mut health = ContainerHealth {
            status: spec.status,
            uptime_seconds: stats
                .started_at
                .as_deref()
                .filter(|_| running)
                .and_then(|t| seconds_since(t, self.adapters().clock.now())),
            started_at: stats.started_at,
            restart_count: stats.restart_count,
            exit_code: stats.exit_code,
            oom_killed: stats.oom_killed,
            cpu_percent: stats.cpu_percent,
            memory_bytes: stats.memory_bytes,
            memory_limit_bytes: stats.memory_limit_bytes,
            last_log_lines: Vec::new(),
            history: self.usage_history().of(&spec.container_id),
        };
        if health.is_failing() {
            health.last_log_lines = self.last_log_lines(&spec.container_id).await;
        }
        Ok(health)
    }

    /// The last output lines of a container, or none when they can not be read (they only
    /// explain a failure that is reported anyway).
    pub(crate) async fn last_log_lines(&self, id: &str) -> Vec<String> {
        let request = LogRequest {
            tail: Some(LAST_LOG_LINES),
            ..LogRequest::default()
        };
        let read = async {
            let mut stream = self.adapters().runtime.logs(id, &request).await?;
            let mut text = String::new();
            while let Some(chunk) = stream.next().await {
                text.push_str(&chunk?.text);
            }
            Ok::<_, Error>(text)
        };
        match tokio::time::timeout(Duration::from_secs(5), read).await {
            Ok(Ok(text)) => {
                let lines: Vec<String> = text.lines().map(str::to_owned).collect();
                let skip = lines.len().saturating_sub(LAST_LOG_LINES);
                lines.into_iter().skip(skip).collect()
            }
            Ok(Err(e)) => {
                tracing::debug!(container = id, error = ?e, "could not read the last output lines");
                Vec::new()
            }
            Err(_) => Vec::new(),
        }
    }

    /// Watches a container just started for `[health] exit_check`: one that exits (or that the
    /// engine is already restarting) within it is an error naming its exit code and last lines.
    /// The watch ends early once its app answers HTTP (when this process has an app probe): an
    /// app that answers has started.
    pub(crate) async fn watch_for_early_exit(&self, spec: &ContainerSpec) -> Result<ContainerStatus> {
        let runtime = &self.adapters().runtime;
        let deadline = tokio::time::Instant::now() + self.config().health.exit_check;
        let probe = self.idle.probe().cloned();
        loop {
            let observed = runtime.inspect_container(&spec.container_id).await?;
            let Some(observed) = observed else {
                return Ok(ContainerStatus::Missing);
            };
            let restarted = observed.restart_count.unwrap_or(0) > 0;
            let exited = !matches!(
                observed.status,
                ContainerStatus::Running | ContainerStatus::Created
            );
            if restarted || exited {
                let lines = self.last_log_lines(&spec.container_id).await;
                let code = observed
                    .exit_code
                    .filter(|c| *c != 0)
                    .map_or_else(String::new, |c| format!(" with code {c}"));
                let output = if lines.is_empty() {
                    " It wrote nothing.".to_owned()
                } else {
                    format!(" Its last lines:\n{}", lines.join("\n"))
                };
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "container {} exited at once{code}: check the type's image and command.{output}",
                        spec.container_name
                    ),
                ));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(observed.status);
            }
            if let Some(probe) = &probe
                && observed.status == ContainerStatus::Running
                && matches!(
                    tokio::time::timeout_at(deadline, probe.answers(spec.port)).await,
                    Ok(true)
                )
            {
                return Ok(ContainerStatus::Running);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                continue;
            }
            tokio::time::sleep(EXIT_CHECK_STEP.min(deadline - now)).await;
        }
    }

    /// Samples the use of every running container once, a few at a time, into the history the
    /// dashboard's charts read (cm-api calls this every `[health] sample_seconds`). Returns how
    /// many were sampled.
    pub async fn sample_usage(&self) -> Result<usize> {
        let listing = self.list_all().await?;
        if listing.stale.is_some() {
            return Ok(0);
        }
        let ids: BTreeSet<String> = listing
            .containers
            .iter()
            .map(|c| c.container_id.clone())
            .collect();
        self.usage_history().keep_only(&ids);
        let running: Vec<String> = listing
            .containers
            .into_iter()
            .filter(|c| c.status == ContainerStatus::Running)
            .map(|c| c.container_id)
            .collect();
        let runtime = self.adapters().runtime.clone();
        let samples: Vec<(String, Result<ContainerStats>)> = futures_util::stream::iter(running)
            .map(|id| {
                let runtime = runtime.clone();
                async move {
                    let stats = runtime.stats(&id).await;
                    (id, stats)
                }
            })
            .buffer_unordered(SAMPLES_AT_ONCE)
            .collect()
            .await;
        let at = self
            .adapters()
            .clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut sampled = 0;
        for (id, stats) in samples {
            match stats {
                Ok(stats) => {
                    sampled += 1;
                    self.usage_history().record(
                        &id,
                        UsagePoint {
                            at,
                            cpu_percent: stats.cpu_percent,
                            memory_bytes: stats.memory_bytes,
                        },
                    );
                }
                // Gone or stopped between the listing and the sample: the next round tells.
                Err(e) => tracing::debug!(container = %id, error = ?e, "no usage sample"),
            }
        }
        Ok(sampled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_keeps_the_newest_points() {
        let history = UsageHistory::default();
        for at in 0..(HISTORY_POINTS as u64 + 5) {
            history.record(
                "a",
                UsagePoint {
                    at,
                    cpu_percent: 0.0,
                    memory_bytes: at,
                },
            );
        }
        let points = history.of("a");
        assert_eq!(points.len(), HISTORY_POINTS);
        assert_eq!(points[0].at, 5);
        history.keep_only(&BTreeSet::from(["b".to_owned()]));
        assert!(history.of("a").is_empty());
    }

    #[test]
    fn uptime_counts_from_the_engines_start_time() {
        let now = humantime::parse_rfc3339("2026-12-03T10:00:00Z").unwrap();
        assert_eq!(seconds_since("2026-12-03T09:58:00.123456789Z", now), Some(119));
        assert_eq!(seconds_since("not a time", now), None);
    }
}
