//! How a container is doing: the engine's facts (uptime, restarts, last exit code, OOM kill), its
//! CPU and memory use, the last minutes of use as cm-api's sampler saw them, and, when it keeps
//! failing, the last lines it wrote. Also the create's watch for a container that exits at once.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::spec::ContainerStatus;

/// How many output lines a failing container's health (and a failed create) shows.
pub const LAST_LOG_LINES: usize = 20;

/// How many samples the history keeps per container (with the default 30 s, 20 minutes).
pub const HISTORY_POINTS: usize = 40;

/// How many containers the sampler asks about at once (each sample takes the engine about a
/// second: it reads the CPU counters twice).
pub(crate) const SAMPLES_AT_ONCE: usize = 8;

/// How often the create's watch looks at a new container.
pub(crate) const EXIT_CHECK_STEP: Duration = Duration::from_millis(100);

/// How long the create's watch waits to see the exit code of a container it caught running again
/// after a restart (the engine clears the code while it runs).
pub(crate) const EXIT_CODE_WAIT: Duration = Duration::from_secs(2);

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
    pub(crate) fn record(&self, id: &str, point: UsagePoint) {
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
    pub(crate) fn keep_only(&self, ids: &BTreeSet<String>) {
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
pub(crate) fn seconds_since(rfc3339: &str, now: SystemTime) -> Option<u64> {
    let then = humantime::parse_rfc3339_weak(rfc3339).ok()?;
    now.duration_since(then).ok().map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(crate) fn the_history_keeps_the_newest_points() {
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
    pub(crate) fn uptime_counts_from_the_engines_start_time() {
        let now = humantime::parse_rfc3339("2026-12-03T10:00:00Z").unwrap();
        assert_eq!(seconds_since("2026-12-03T09:58:00.123456789Z", now), Some(119));
        assert_eq!(seconds_since("not a time", now), None);
    }
}
