//! The container page's health card: uptime, restarts, last exit, CPU and memory now, the last
//! lines of a failing container, and small charts of the last minutes drawn as inline SVG on the
//! server (no script needed).

use cm_core::{ContainerHealth, UsagePoint};
use serde::Serialize;

/// The chart's drawing box, in SVG units.
const WIDTH: f64 = 300.0;
const HEIGHT: f64 = 60.0;

/// A container's health as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct HealthView {
    pub uptime: Option<String>,
    pub restarts: i64,
    pub last_exit: String,
    pub failing: bool,
    pub cpu: String,
    pub memory: String,
    pub memory_percent: u64,
    pub last_lines: Vec<String>,
    pub cpu_chart: Option<Chart>,
    pub memory_chart: Option<Chart>,
    /// What the charts cover, such as `the last 12 minutes (25 samples)`.
    pub window: Option<String>,
}

/// One sparkline: the polyline's points and the value at its top.
#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    pub points: String,
    pub top: String,
    pub last: String,
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

impl HealthView {
    /// The view of a container's health.
    pub fn of(health: &ContainerHealth) -> Self {
        let history = &health.history;
        let window = match (history.first(), history.last()) {
            (Some(first), Some(last)) if history.len() >= 2 => Some(format!(
                "the last {} minutes ({} samples)",
                (last.at.saturating_sub(first.at) / 60).max(1),
                history.len()
            )),
            _ => None,
        };
        HealthView {
            uptime: health
                .uptime_seconds
                .map(|s| humantime::format_duration(std::time::Duration::from_secs(s)).to_string()),
            restarts: health.restart_count,
            last_exit: format!(
                "code {}{}",
                health.exit_code,
                if health.oom_killed {
                    ", killed for memory (OOM)"
                } else {
                    ""
                }
            ),
            failing: health.is_failing(),
            cpu: format!("{:.1} % of one CPU", health.cpu_percent),
            memory: format!(
                "{} of {}",
                mib(health.memory_bytes),
                mib(health.memory_limit_bytes)
            ),
            memory_percent: (health.memory_bytes.saturating_mul(100) / health.memory_limit_bytes.max(1))
                .min(100),
            last_lines: health.last_log_lines.clone(),
            cpu_chart: chart(history, |p| p.cpu_percent, |v| format!("{v:.1} %")),
            memory_chart: chart(history, |p| p.memory_bytes as f64, |v| mib(v as u64)),
            window,
        }
    }
}

/// A sparkline of `value` over the samples (at least two), scaled to its own maximum.
fn chart(
    history: &[UsagePoint],
    value: impl Fn(&UsagePoint) -> f64,
    label: impl Fn(f64) -> String,
) -> Option<Chart> {
    if history.len() < 2 {
        return None;
    }
    let first = history.first()?.at as f64;
    let span = (history.last()?.at as f64 - first).max(1.0);
    let top = history.iter().map(&value).fold(0.0_f64, f64::max);
    let scale = if top > 0.0 { top } else { 1.0 };
    let points: Vec<String> = history
        .iter()
        .map(|p| {
            let x = (p.at as f64 - first) / span * WIDTH;
            let y = HEIGHT - value(p) / scale * HEIGHT;
            format!("{x:.1},{y:.1}")
        })
        .collect();
    Some(Chart {
        points: points.join(" "),
        top: label(top),
        last: label(history.last().map(&value).unwrap_or_default()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at: u64, cpu_percent: f64, memory_bytes: u64) -> UsagePoint {
        UsagePoint {
            at,
            cpu_percent,
            memory_bytes,
        }
    }

    #[test]
    fn a_chart_spans_the_box_and_scales_to_its_maximum() {
        let history = [point(100, 0.0, 10), point(130, 50.0, 20), point(160, 25.0, 40)];
        let cpu = chart(&history, |p| p.cpu_percent, |v| format!("{v:.1} %")).unwrap();
        assert_eq!(cpu.points, "0.0,60.0 150.0,0.0 300.0,30.0");
        assert_eq!(cpu.top, "50.0 %");
        assert_eq!(cpu.last, "25.0 %");
        assert!(chart(&history[..1], |p| p.cpu_percent, |v| v.to_string()).is_none());
        // All zero: a flat line at the bottom, not a division by zero.
        let idle = [point(0, 0.0, 0), point(30, 0.0, 0)];
        let flat = chart(&idle, |p| p.cpu_percent, |v| v.to_string()).unwrap();
        assert_eq!(flat.points, "0.0,60.0 300.0,60.0");
    }
}
