//! Everything `cm` prints on stdout: aligned tables for humans, one JSON document with `--json`.

use std::io::Write;

use cm_core::{ContainerSpec, Outcome, ReconcileReport, RouteState, RouteStatus, StoredKey};
use serde::Serialize;

/// Prints one JSON document.
pub fn json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    line(&text);
    Ok(())
}

/// Prints a line.
pub fn line(text: &str) {
    raw(&format!("{text}\n"));
}

/// Where a command's output goes instead of stdout: the writer `crate::execute_with` was given.
pub type Sink = std::sync::Mutex<Box<dyn Write + Send>>;

tokio::task_local! {
    /// The writer of the command running in this task, when one was injected.
    static SINK: Sink;
}

/// Runs `work` with everything it prints going to `out` instead of stdout (within this task;
/// `cm`'s commands print from the task that runs them).
pub async fn to_writer<T>(out: Box<dyn Write + Send>, work: impl Future<Output = T>) -> T {
    SINK.scope(std::sync::Mutex::new(out), work).await
}

/// Writes raw text (log output) without adding a newline. Every write of `cm` to stdout comes
/// here: when the reader has gone (`cm list | head -1`), `cm` ends quietly with success, as the
/// reader asked for no more; any other write error ends it with a message. Inside
/// [`to_writer`], the text goes to that writer instead.
pub fn raw(text: &str) {
    let injected = SINK.try_with(|sink| {
        let mut out = sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        out.write_all(text.as_bytes()).and_then(|()| out.flush())
    });
    let written = match injected {
        Ok(written) => written,
        Err(_) => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).and_then(|()| out.flush())
        }
    };
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("error: writing to stdout: {e}");
            std::process::exit(1);
        }
    }
}

/// An aligned table with a header row.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    // A cell never carries a control character to the terminal (text others chose may be in it).
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|cell| {
                    cell.chars()
                        .map(|c| if c.is_control() { '?' } else { c })
                        .collect()
                })
                .collect()
        })
        .collect();
    let rows = &rows;
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let render = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    line(&render(header.to_vec()));
    for row in rows {
        line(&render(row.iter().map(String::as_str).collect()));
    }
}

/// The container table of `list` and `list-ssh`.
/// The containers as a table; `stale`: the statuses are the stored ones (marked `(stored)`).
pub fn containers(specs: &[ContainerSpec], stale: bool) {
    if specs.is_empty() {
        line("no containers");
        return;
    }
    let rows: Vec<Vec<String>> = specs
        .iter()
        .map(|s| {
            vec![
                s.container_name.to_string(),
                s.short_id().to_owned(),
                s.user_id.to_string(),
                s.container_type.to_string(),
                if stale {
                    format!("{} (stored)", s.status)
                } else {
                    s.status.to_string()
                },
                s.port.to_string(),
                s.ssh_port.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                s.url_path.clone(),
                s.created_at.clone(),
            ]
        })
        .collect();
    table(
        &[
            "NAME", "ID", "USER", "TYPE", "STATUS", "PORT", "SSH", "URL", "CREATED",
        ],
        &rows,
    );
}

/// One container, as `key: value` lines.
pub fn container(
    spec: &ContainerSpec,
    disk: Option<cm_core::DiskUsage>,
    health: Option<&cm_core::ContainerHealth>,
) {
    // The caller hides secret-looking values (`EnvVars::redacted`).
    let env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    // On a single engine the HTTP port is the host's loopback; on Swarm, the node's.
    let host = spec
        .node
        .as_ref()
        .map_or_else(|| "127.0.0.1".to_owned(), ToString::to_string);
    let mut fields = vec![
        ("name", spec.container_name.to_string()),
        ("id", spec.container_id.clone()),
        ("user", spec.user_id.to_string()),
        ("type", spec.container_type.to_string()),
        ("status", spec.status.to_string()),
        ("image", spec.image.to_string()),
        ("port", format!("{host}:{} -> {}", spec.port, spec.internal_port)),
        (
            "ssh port",
            spec.ssh_port.map_or_else(|| "-".to_owned(), |p| p.to_string()),
        ),
        ("url", spec.url_path.clone()),
        ("volume", format!("{} at /data", spec.volume_name)),
        (
            "disk",
            match (spec.disk, disk) {
                (_, Some(usage)) => format!(
                    "{} used of {} (on the host)",
                    mebibytes(usage.used_bytes),
                    mebibytes(usage.size_bytes)
                ),
                (Some(cap), None) => format!("capped at {cap}"),
                (None, None) => "no cap (shares the engine's disk)".to_owned(),
            },
        ),
        ("network", format!("{} ({})", spec.network_name, spec.subnet)),
        (
            "command",
            spec.command
                .as_ref()
                .map_or_else(|| "(image default)".to_owned(), ToString::to_string),
        ),
        (
            "limits",
            format!(
                "memory {}, cpus {}, pids {}",
                spec.memory, spec.cpus, spec.pids_limit
            ),
        ),
        ("created", spec.created_at.clone()),
        ("env", env.join(" ")),
    ];
    if let Some(node) = &spec.node {
        fields.insert(5, ("node", node.to_string()));
    }
    for (key, value) in fields {
        line(&format!("{key:<9} {value}"));
    }
    if let Some(health) = health {
        container_health(health);
    }
}

/// The health lines of `cm get`.
fn container_health(health: &cm_core::ContainerHealth) {
    let uptime = health.uptime_seconds.map_or_else(
        || "-".to_owned(),
        |s| humantime::format_duration(std::time::Duration::from_secs(s)).to_string(),
    );
    let last_exit = format!(
        "code {}{}",
        health.exit_code,
        if health.oom_killed {
            ", killed for memory (OOM)"
        } else {
            ""
        }
    );
    let fields = [
        ("uptime", uptime),
        ("restarts", health.restart_count.to_string()),
        ("last exit", last_exit),
        ("cpu", format!("{:.1} % of one CPU", health.cpu_percent)),
        (
            "memory",
            format!(
                "{} of {}",
                mebibytes(health.memory_bytes),
                mebibytes(health.memory_limit_bytes)
            ),
        ),
    ];
    for (key, value) in fields {
        line(&format!("{key:<9} {value}"));
    }
    if !health.last_log_lines.is_empty() {
        line("last lines of its output:");
        for text in &health.last_log_lines {
            line(&format!("  {text}"));
        }
    }
}

/// The types table.
pub fn types(types: &[serde_json::Value]) {
    // From the types' JSON, so a remote cm-api's answer prints the same as the local config.
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    let rows: Vec<Vec<String>> = types
        .iter()
        .map(|t| {
            vec![
                text(&t["name"]),
                text(&t["description"]),
                text(&t["internal_port"]),
                match t["ssh"].as_str() {
                    Some("on") => "2222".to_owned(),
                    Some("optional") => "optional".to_owned(),
                    _ => "-".to_owned(),
                },
                text(&t["image"]),
                format!(
                    "{} / {} cpu / {} pids",
                    text(&t["memory"]),
                    text(&t["cpus"]),
                    text(&t["pids_limit"])
                ),
            ]
        })
        .collect();
    table(&["TYPE", "DESCRIPTION", "PORT", "SSH", "IMAGE", "LIMITS"], &rows);
}

/// The keys table.
pub fn keys(keys: &[StoredKey]) {
    if keys.is_empty() {
        line("no keys");
        return;
    }
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                k.key.fingerprint().to_owned(),
                k.key.comment().to_owned(),
                k.added_at.clone(),
            ]
        })
        .collect();
    table(&["FINGERPRINT", "COMMENT", "ADDED"], &rows);
}

/// The routes table.
pub fn routes(routes: &[RouteStatus]) {
    if routes.is_empty() {
        line("no routes");
        return;
    }
    let rows: Vec<Vec<String>> = routes
        .iter()
        .map(|r| {
            let (state, detail) = match &r.state {
                RouteState::Active => ("active", String::new()),
                RouteState::Failed(message) => ("failed", message.replace('\n', " ")),
                RouteState::Missing => ("missing", "run `cm routes sync`".to_owned()),
                RouteState::Disabled => (
                    "disabled",
                    "file not linked into the enabled directory".to_owned(),
                ),
                RouteState::Orphaned => ("orphaned", "no container; `cm routes sync` removes it".to_owned()),
            };
            vec![
                format!("/container/{}/{}/", r.user, r.kind),
                r.port.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                state.to_owned(),
                detail,
            ]
        })
        .collect();
    table(&["PATH", "PORT", "STATE", "DETAIL"], &rows);
}

/// A reconcile report: one line per finding, then a summary.
pub fn reconcile(report: &ReconcileReport) {
    let rows: Vec<Vec<String>> = report
        .findings
        .iter()
        .map(|f| {
            vec![
                serde_json::to_value(f.outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                serde_json::to_value(f.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                f.name.clone(),
                f.id.as_deref()
                    .map_or_else(|| "-".to_owned(), |id| id[..12.min(id.len())].to_owned()),
                f.detail.clone(),
            ]
        })
        .collect();
    if !rows.is_empty() {
        table(&["OUTCOME", "FINDING", "NAME", "ID", "DETAIL"], &rows);
    }
    let count = |outcome: Outcome| report.findings.iter().filter(|f| f.outcome == outcome).count();
    let mode = if report.dry_run {
        " (dry run: nothing changed)"
    } else {
        ""
    };
    line(&format!(
        "checked {} containers in {} ms{mode}: {} fixed, {} would fix, {} orphans reported, {} removed, {} failed",
        report.records,
        report.duration_ms,
        count(Outcome::Fixed),
        count(Outcome::WouldFix),
        count(Outcome::Reported),
        count(Outcome::Removed) + count(Outcome::WouldRemove),
        count(Outcome::Failed)
    ));
}

/// `cm audit`: one line per entry, newest first.
pub fn audit(entries: &[cm_core::AuditEntry]) {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let actor = match &e.actor {
                cm_core::Actor::Admin => "admin".to_owned(),
                cm_core::Actor::User(user) => format!("user {user}"),
                cm_core::Actor::Local(name) => format!("local {name}"),
                cm_core::Actor::Anonymous => "anonymous".to_owned(),
                cm_core::Actor::System => "system".to_owned(),
            };
            vec![
                e.at.clone(),
                actor,
                e.source.as_str().to_owned(),
                e.action.clone(),
                e.target.clone().unwrap_or_else(|| "-".to_owned()),
                e.result.clone(),
                e.address.map_or_else(|| "-".to_owned(), |a| a.to_string()),
            ]
        })
        .collect();
    if rows.is_empty() {
        line("no entries");
    } else {
        table(
            &["WHEN", "WHO", "VIA", "ACTION", "TARGET", "RESULT", "FROM"],
            &rows,
        );
    }
}

/// `cm adopt`.
pub fn adoptions(adoptions: &[cm_core::Adoption], dry_run: bool) {
    let rows: Vec<Vec<String>> = adoptions
        .iter()
        .map(|a| {
            vec![
                serde_json::to_value(a.outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                a.name.clone(),
                a.id[..12.min(a.id.len())].to_owned(),
                a.adopted_as
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), ToString::to_string),
                a.detail.clone(),
            ]
        })
        .collect();
    if !rows.is_empty() {
        table(&["OUTCOME", "CONTAINER", "ID", "ADOPTED AS", "DETAIL"], &rows);
    }
    let count = |outcome: cm_core::AdoptOutcome| adoptions.iter().filter(|a| a.outcome == outcome).count();
    let mode = if dry_run {
        " (dry run: nothing changed)"
    } else {
        ""
    };
    line(&format!(
        "{} of the original's containers found{mode}: {} adopted, {} re-created, {} would be adopted, {} skipped, {} failed",
        adoptions.len(),
        count(cm_core::AdoptOutcome::Adopted),
        count(cm_core::AdoptOutcome::Recreated),
        count(cm_core::AdoptOutcome::WouldAdopt),
        count(cm_core::AdoptOutcome::Skipped),
        count(cm_core::AdoptOutcome::Failed)
    ));
}

/// `cm stats`.
pub fn stats(stats: &cm_core::ContainerStats) {
    let fields = [
        ("cpu", format!("{:.1} % of one CPU", stats.cpu_percent)),
        (
            "memory",
            format!(
                "{} of {}",
                mebibytes(stats.memory_bytes),
                mebibytes(stats.memory_limit_bytes)
            ),
        ),
        ("pids", stats.pids.to_string()),
        (
            "network",
            format!(
                "{} in, {} out",
                mebibytes(stats.network_rx_bytes),
                mebibytes(stats.network_tx_bytes)
            ),
        ),
        (
            "disk i/o",
            format!(
                "{} read, {} written",
                mebibytes(stats.block_read_bytes),
                mebibytes(stats.block_write_bytes)
            ),
        ),
        ("restarts", stats.restart_count.to_string()),
        (
            "last exit",
            format!(
                "{}{}",
                stats.exit_code,
                if stats.oom_killed {
                    " (killed: out of memory)"
                } else {
                    ""
                }
            ),
        ),
        (
            "started",
            stats.started_at.clone().unwrap_or_else(|| "-".to_owned()),
        ),
    ];
    for (key, value) in fields {
        line(&format!("{key:<9} {value}"));
    }
}

/// A node as `cm nodes` shows it, read alike from cm-core's report and from the API's answer.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct NodeRow {
    pub name: String,
    pub state: String,
    pub schedulable: bool,
    pub manager: bool,
    pub address: String,
    pub memory_bytes: u64,
    pub cpus: f64,
    pub containers: usize,
    pub reserved_memory_bytes: u64,
    pub reserved_cpus: f64,
}

/// The nodes of a Swarm runtime, or why there are none.
pub fn nodes(nodes: &[NodeRow]) {
    if nodes.is_empty() {
        line("no nodes: this installation runs one engine ([runtime] kind = \"docker\"; see docs/swarm.md)");
        return;
    }
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            let state = if n.schedulable {
                n.state.clone()
            } else {
                format!("{} (drained)", n.state)
            };
            vec![
                n.name.clone(),
                state,
                if n.manager { "manager" } else { "worker" }.to_owned(),
                n.address.clone(),
                n.containers.to_string(),
                format!(
                    "{} of {}",
                    mebibytes(n.reserved_memory_bytes),
                    mebibytes(n.memory_bytes)
                ),
                format!("{} of {}", n.reserved_cpus, n.cpus),
            ]
        })
        .collect();
    table(
        &[
            "NODE",
            "STATE",
            "ROLE",
            "ADDRESS",
            "CONTAINERS",
            "MEMORY RESERVED",
            "CPUS RESERVED",
        ],
        &rows,
    );
}

/// A byte count as people read it: `512 B`, `4.0 KiB`, `100.0 MiB`, `1.5 GiB`.
pub fn size(bytes: u64) -> String {
    let units = [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    units.iter().find(|(_, unit)| bytes >= *unit).map_or_else(
        || format!("{bytes} B"),
        |(name, unit)| format!("{:.1} {name}", bytes as f64 / *unit as f64),
    )
}

fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// A user's quota: each limit, whether it is the user's own, and the use.
pub fn quota(report: &cm_core::QuotaReport) {
    let own = report.overrides.unwrap_or_default();
    let mark = |set: bool| if set { " (set for this user)" } else { "" };
    let or_unlimited = |limit: Option<String>| limit.unwrap_or_else(|| "unlimited".to_owned());
    line(&format!("quota of {}", report.user_id));
    line(&format!(
        "  containers  {} of {}{}",
        report.used.containers,
        or_unlimited(report.limits.containers.map(|n| n.to_string())),
        mark(own.containers.is_some())
    ));
    line(&format!(
        "  memory      {}m of {}{}",
        report.used.memory_bytes >> 20,
        or_unlimited(report.limits.memory.map(|m| m.to_string())),
        mark(own.memory.is_some())
    ));
    line(&format!(
        "  cpus        {} of {}{}",
        report.used.cpus,
        or_unlimited(report.limits.cpus.map(|c| c.to_string())),
        mark(own.cpus.is_some())
    ));
    let uncapped = match report.used.uncapped_disks {
        0 => String::new(),
        n => format!(" (+{n} without a cap)"),
    };
    line(&format!(
        "  disk        {}m{uncapped} of {}{}",
        report.used.disk_bytes >> 20,
        or_unlimited(report.limits.disk.map(|d| d.to_string())),
        mark(own.disk.is_some())
    ));
}
