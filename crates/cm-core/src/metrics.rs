//! Counters and histograms of what the manager does, rendered in Prometheus' text format (0.0.4)
//! by [`Manager::metrics_text`]: operations (count, failures, duration), route checks, quota
//! refusals, the engine not answering, and, read when asked, containers by state and type, the
//! port and subnet pools, and execs and log follows in flight.

use std::collections::BTreeMap;
use std::fmt::Write;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::error::{ErrorKind, Result};

/// The upper bounds of the duration histograms, in seconds.
pub(crate) const BUCKETS: [f64; 11] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// One operation's histogram.
#[derive(Debug, Default, Clone)]
pub(crate) struct Histogram {
    /// Counts per bucket (not cumulative), then above the last bound.
    buckets: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    pub(crate) fn observe(&mut self, seconds: f64) {
        let at = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[at] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

/// One operation's outcomes (`ok` or the error kind's code) and durations.
#[derive(Debug, Default, Clone)]
pub(crate) struct OperationStats {
    results: BTreeMap<&'static str, u64>,
    durations: Histogram,
}

/// What the manager counted since it started.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Per operation.
    operations: Mutex<BTreeMap<&'static str, OperationStats>>,
    /// Route checks by answer (`allow` or the denial's code).
    route_checks: Mutex<BTreeMap<&'static str, u64>>,
    quota_refusals: AtomicU64,
    engine_unavailable: AtomicU64,
    /// Containers the idle sweep stopped.
    idle_stops: AtomicU64,
    /// Wakes of idle-stopped containers by outcome (`ready`, `starting`, `failed`).
    wakes: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    /// Counts one run of `operation` that took `elapsed` and ended with `outcome`.
    pub(crate) fn observe<T>(&self, operation: &'static str, outcome: &Result<T>, elapsed: Duration) {
        let result = match outcome {
            Ok(_) => "ok",
            Err(e) => {
                match e.kind() {
                    ErrorKind::Unavailable => {
                        self.engine_unavailable.fetch_add(1, Ordering::Relaxed);
                    }
                    ErrorKind::Exhausted if e.message().contains("quota") => {
                        self.quota_refusals.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
                e.kind().code()
            }
        };
        let mut operations = self.operations.lock().unwrap_or_else(PoisonError::into_inner);
        let stats = operations.entry(operation).or_default();
        *stats.results.entry(result).or_default() += 1;
        stats.durations.observe(elapsed.as_secs_f64());
    }

    /// Counts one route check that answered `answer`.
    pub(crate) fn route_check(&self, answer: &'static str) {
        *self
            .route_checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(answer)
            .or_default() += 1;
    }

    /// Counts one container the idle sweep stopped.
    pub(crate) fn idle_stop(&self) {
        self.idle_stops.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one wake that ended `outcome` (`ready`, `starting` or `failed`).
    pub(crate) fn wake(&self, outcome: &'static str) {
        *self
            .wakes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(outcome)
            .or_default() += 1;
    }

    /// The counters and histograms in the text format.
    pub(crate) fn render(&self, out: &mut String) {
        let operations = self
            .operations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        family(
            out,
            "cm_operations_total",
            "counter",
            "Operations run, by operation and result (ok or the error code).",
        );
        for (operation, stats) in &operations {
            for (result, count) in &stats.results {
                let _ = writeln!(
                    out,
                    "cm_operations_total{{operation=\"{operation}\",result=\"{result}\"}} {count}"
                );
            }
        }
        family(
            out,
            "cm_operation_duration_seconds",
            "histogram",
            "How long operations took, by operation.",
        );
        for (
            operation,
            OperationStats {
                durations: histogram, ..
            },
        ) in &operations
        {
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(histogram.buckets) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "cm_operation_duration_seconds_bucket{{operation=\"{operation}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "cm_operation_duration_seconds_bucket{{operation=\"{operation}\",le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(
                out,
                "cm_operation_duration_seconds_sum{{operation=\"{operation}\"}} {}",
                histogram.sum
            );
            let _ = writeln!(
                out,
                "cm_operation_duration_seconds_count{{operation=\"{operation}\"}} {}",
                histogram.count
            );
        }
        let checks = self
            .route_checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        family(
            out,
            "cm_route_checks_total",
            "counter",
            "HTTP route checks, by answer (allow or the denial).",
        );
        for (answer, count) in checks {
            let _ = writeln!(out, "cm_route_checks_total{{answer=\"{answer}\"}} {count}");
        }
        family(
            out,
            "cm_quota_refusals_total",
            "counter",
            "Creates refused because a user's quota was reached.",
        );
        let _ = writeln!(
            out,
            "cm_quota_refusals_total {}",
            self.quota_refusals.load(Ordering::Relaxed)
        );
        family(
            out,
            "cm_engine_unavailable_total",
            "counter",
            "Operations that failed because the Docker engine did not answer.",
        );
        let _ = writeln!(
            out,
            "cm_engine_unavailable_total {}",
            self.engine_unavailable.load(Ordering::Relaxed)
        );
        family(
            out,
            "cm_idle_stops_total",
            "counter",
            "Containers stopped for being idle.",
        );
        let _ = writeln!(
            out,
            "cm_idle_stops_total {}",
            self.idle_stops.load(Ordering::Relaxed)
        );
        family(
            out,
            "cm_idle_wakes_total",
            "counter",
            "Requests that started an idle-stopped container, by outcome (ready, starting, failed).",
        );
        let wakes = self.wakes.lock().unwrap_or_else(PoisonError::into_inner).clone();
        for (outcome, count) in wakes {
            let _ = writeln!(out, "cm_idle_wakes_total{{outcome=\"{outcome}\"}} {count}");
        }
    }
}

/// The `# HELP` and `# TYPE` lines of a metric family.
pub(crate) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value with `\`, `"` and line breaks escaped, as the text format wants.
pub(crate) fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    pub(crate) fn histograms_are_cumulative_and_failures_counted_by_kind() {
        let metrics = Metrics::default();
        metrics.observe("create", &Ok::<(), Error>(()), Duration::from_millis(300));
        metrics.observe("create", &Ok::<(), Error>(()), Duration::from_secs(3));
        metrics.observe::<()>(
            "create",
            &Err(Error::unavailable("down")),
            Duration::from_millis(10),
        );
        metrics.observe::<()>(
            "create",
            &Err(Error::new(
                ErrorKind::Exhausted,
                "over quota: alice may have 2 containers",
            )),
            Duration::from_millis(10),
        );
        metrics.route_check("allow");
        metrics.idle_stop();
        metrics.wake("ready");
        let mut out = String::new();
        metrics.render(&mut out);
        for line in [
            "cm_operations_total{operation=\"create\",result=\"ok\"} 2",
            "cm_operations_total{operation=\"create\",result=\"unavailable\"} 1",
            "cm_operation_duration_seconds_bucket{operation=\"create\",le=\"0.05\"} 2",
            "cm_operation_duration_seconds_bucket{operation=\"create\",le=\"0.5\"} 3",
            "cm_operation_duration_seconds_bucket{operation=\"create\",le=\"5\"} 4",
            "cm_operation_duration_seconds_bucket{operation=\"create\",le=\"+Inf\"} 4",
            "cm_operation_duration_seconds_count{operation=\"create\"} 4",
            "cm_route_checks_total{answer=\"allow\"} 1",
            "cm_quota_refusals_total 1",
            "cm_engine_unavailable_total 1",
            "cm_idle_stops_total 1",
            "cm_idle_wakes_total{outcome=\"ready\"} 1",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} not in:\n{out}");
        }
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
