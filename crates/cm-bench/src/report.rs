//! The report: sections of rows (what, cm, engine, ratio, runs, spread) with their raw samples,
//! the machine and the method, written as `benchmarks.md` and `benchmarks.json`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Args;
use crate::host;
use crate::stats::{Summary, summarize};
use crate::world::Bench;

/// Which direction is good for a row's values.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// Times, memory.
    Lower,
    /// Throughput.
    Higher,
}

/// One measured quantity, for cm and for the engine doing the same work.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// What was measured.
    pub what: String,
    /// The unit of the samples (`ms`, `req/s`, `MiB`, `reloads`, ...).
    pub unit: String,
    /// Which direction is good.
    pub better: Better,
    /// cm's samples.
    pub cm: Vec<f64>,
    /// The engine's samples (empty when the engine has no equivalent).
    pub engine: Vec<f64>,
    /// Summary of `cm`.
    pub cm_summary: Option<Summary>,
    /// Summary of `engine`.
    pub engine_summary: Option<Summary>,
    /// cm's median over the engine's (for `Higher` rows, above 1 means cm is faster).
    pub ratio: Option<f64>,
    /// Anything else worth keeping (load-run details).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

impl Row {
    /// A row; the summaries and the ratio are computed here.
    pub fn new(what: impl Into<String>, unit: &str, cm: Vec<f64>, engine: Vec<f64>) -> Row {
        let cm_summary = summarize(&cm);
        let engine_summary = summarize(&engine);
        let ratio = match (cm_summary, engine_summary) {
            (Some(c), Some(e)) if e.median > 0.0 => Some(c.median / e.median),
            _ => None,
        };
        Row {
            what: what.into(),
            unit: unit.to_owned(),
            better: Better::Lower,
            cm,
            engine,
            cm_summary,
            engine_summary,
            ratio,
            detail: Value::Null,
        }
    }

    /// Marks higher values as better.
    pub fn higher_is_better(mut self) -> Row {
        self.better = Better::Higher;
        self
    }

    /// Attaches details.
    pub fn detail(mut self, detail: Value) -> Row {
        self.detail = detail;
        self
    }
}

/// A scenario's rows and notes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Section {
    /// Its key (`create`, `list`, `concurrency`, `scale`, `routes`).
    pub key: String,
    /// Its heading.
    pub title: String,
    /// What the engine column means in this section.
    pub engine_column: String,
    /// The rows.
    pub rows: Vec<Row>,
    /// Observations and things that could not be measured.
    pub notes: Vec<String>,
}

impl Section {
    /// Adds a row.
    pub fn push(&mut self, row: Row) {
        self.rows.push(row);
    }

    /// Adds a note.
    pub fn note(&mut self, text: impl Into<String>) {
        let text = text.into();
        crate::progress!("note: {text}");
        self.notes.push(text);
    }
}

/// The machine the run happened on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// CPUs the bench may use.
    pub cpus: usize,
    /// The CPU model.
    pub cpu_model: String,
    /// Total memory, GiB.
    pub memory_gib: f64,
    /// Kernel release.
    pub kernel: String,
    /// Docker engine version.
    pub docker_version: String,
    /// Storage driver.
    pub storage_driver: String,
    /// cgroup driver and version.
    pub cgroup: String,
    /// Load averages when the run started.
    pub load_at_start: String,
    /// Load averages when it ended.
    pub load_at_end: String,
    /// Whether cargo or rustc ran when the run started.
    pub compiler_running_at_start: bool,
    /// The git commit of the workspace, with `-dirty` when it has changes.
    pub commit: String,
}

/// The whole report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The run id.
    pub run_id: String,
    /// `quick` or `full`.
    pub mode: String,
    /// When it started, RFC 3339.
    pub started_at: String,
    /// When it ended.
    pub finished_at: String,
    /// Seconds it took.
    pub duration_s: f64,
    /// The machine.
    pub machine: Machine,
    /// The sections, in the order of the issue.
    pub sections: Vec<Section>,
    /// Sections copied from an earlier run because `--only` left them out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub carried: Vec<Carried>,
}

/// Where a section not re-run in this run comes from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Carried {
    /// The section's key.
    pub section: String,
    /// The run that measured it.
    pub run_id: String,
    /// That run's mode.
    pub mode: String,
    /// When that run started.
    pub started_at: String,
    /// That run's workspace commit.
    pub commit: String,
}

const SECTIONS: [(&str, &str, &str); 6] = [
    (
        "create",
        "1. Create to running, and delete",
        "the same engine work without cm: through the engine's API from a warm process (bollard), \
         and as `docker` CLI processes",
    ),
    (
        "list",
        "2. List, get and the route check",
        "the engine answering the same question: `docker ps` as a process, or `GET /containers/json` \
         and `GET /containers/{name}/json` on its unix socket (for the route check too: where the \
         container listens and whether it runs is what the engine's inspect answers)",
    ),
    (
        "concurrency",
        "3. Concurrency: creates from 4 workers",
        "the same containers made by the engine's API from 4 tasks, or by `docker` CLI processes from 4 workers",
    ),
    (
        "scale",
        "4. Scale: create, delete, reconcile and memory as the host fills",
        "the engine doing the same work at the same population",
    ),
    (
        "routes",
        "5. Routes through nginx",
        "a container made by the engine (its API, or the three `docker` commands, as the row says) and \
         reached on its own port without a proxy. In the per-request rows the cm column is the dynamic \
         route and the engine column the same app reached the way the row names after \"vs\"",
    ),
    (
        "swarm",
        "6. Docker Swarm: create, first 200, move and placement on 3 nodes",
        "the same Swarm work without cm, on the same 3-node cluster: through the engine's API from a warm \
         process (bollard; the manager's engine for services and networks, the node's for volumes), or as \
         `docker` CLI processes, as each row names after \"vs\"",
    ),
];

impl Report {
    /// An empty report with the machine described.
    pub async fn new(bench: &Bench, args: &Args) -> Report {
        let info = bench.docker.info().await.ok();
        let docker_version = info
            .as_ref()
            .and_then(|i| i.server_version.clone())
            .unwrap_or_default();
        let storage_driver = info.as_ref().and_then(|i| i.driver.clone()).unwrap_or_default();
        let cgroup = info
            .as_ref()
            .map(|i| {
                format!(
                    "{} (v{})",
                    i.cgroup_driver.map(|d| d.to_string()).unwrap_or_default(),
                    i.cgroup_version.map(|v| v.to_string()).unwrap_or_default()
                )
            })
            .unwrap_or_default();
        Report {
            run_id: bench.run.clone(),
            mode: if args.quick { "quick" } else { "full" }.to_owned(),
            started_at: now(),
            finished_at: String::new(),
            duration_s: 0.0,
            machine: Machine {
                cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
                cpu_model: host::cpu_model(),
                memory_gib: host::meminfo_kib("MemTotal").unwrap_or(0) as f64 / 1024.0 / 1024.0,
                kernel: host::kernel(),
                docker_version,
                storage_driver,
                cgroup,
                load_at_start: host::loadavg(),
                load_at_end: String::new(),
                compiler_running_at_start: host::compiler_running(),
                commit: git_commit(),
            },
            sections: SECTIONS
                .iter()
                .map(|(key, title, engine)| Section {
                    key: (*key).to_owned(),
                    title: (*title).to_owned(),
                    engine_column: (*engine).to_owned(),
                    rows: Vec::new(),
                    notes: Vec::new(),
                })
                .collect(),
            carried: Vec::new(),
        }
    }

    /// Copies the sections of `previous` (an earlier `benchmarks.json`) that no scenario of this
    /// run wrote (`ran` says which section keys this run's scenarios own), so that `--only` does
    /// not drop the other figures. Each copied section says where it comes from.
    pub fn carry_over(&mut self, previous: &Path, ran: &dyn Fn(&str) -> bool) -> anyhow::Result<usize> {
        let old: Report = serde_json::from_str(&std::fs::read_to_string(previous)?)?;
        let mut copied = 0;
        for section in &mut self.sections {
            if ran(&section.key) || !section.rows.is_empty() || !section.notes.is_empty() {
                continue;
            }
            let Some(earlier) = old.sections.iter().find(|s| s.key == section.key) else {
                continue;
            };
            if earlier.rows.is_empty() && earlier.notes.is_empty() {
                continue;
            }
            section.rows = earlier.rows.clone();
            section.notes = earlier.notes.clone();
            let origin = old
                .carried
                .iter()
                .find(|c| c.section == section.key)
                .cloned()
                .unwrap_or_else(|| Carried {
                    section: section.key.clone(),
                    run_id: old.run_id.clone(),
                    mode: old.mode.clone(),
                    started_at: old.started_at.clone(),
                    commit: old.machine.commit.clone(),
                });
            self.carried.push(origin);
            copied += 1;
        }
        Ok(copied)
    }

    /// Where a carried section comes from.
    pub fn carried_from(&self, key: &str) -> Option<&Carried> {
        self.carried.iter().find(|c| c.section == key)
    }

    /// The section with this key.
    pub fn section(&mut self, key: &str) -> &mut Section {
        let index = self
            .sections
            .iter()
            .position(|s| s.key == key)
            .unwrap_or_else(|| panic!("unknown section {key}"));
        &mut self.sections[index]
    }

    /// Records the end.
    pub async fn finish(&mut self) {
        self.finished_at = now();
        self.duration_s = crate::elapsed_s();
        self.machine.load_at_end = host::loadavg();
    }

    /// Where the figures so far are kept while the run goes on (outside the temp dir, so that a
    /// killed run leaves them behind; `--render` turns them into markdown).
    pub fn partial_path(&self) -> PathBuf {
        std::env::temp_dir().join(format!("cm-bench-{}.json", self.run_id))
    }

    /// Saves the figures so far to [`Report::partial_path`].
    pub fn save_partial(&self) {
        if let Ok(text) = serde_json::to_string_pretty(self) {
            let _ = std::fs::write(self.partial_path(), text);
        }
    }

    /// Writes `benchmarks.md` again from a `benchmarks.json` (after a change of the wording).
    pub fn render(json: &Path, wording: &Wording) -> anyhow::Result<PathBuf> {
        let report: Report = serde_json::from_str(&std::fs::read_to_string(json)?)?;
        let md = json.with_extension("md");
        std::fs::write(&md, report.markdown(wording))?;
        Ok(md)
    }

    /// Writes `benchmarks.md` and `benchmarks.json` into `dir`.
    pub fn write(&self, dir: &Path, wording: &Wording) -> anyhow::Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir)?;
        let md = dir.join("benchmarks.md");
        let json = dir.join("benchmarks.json");
        std::fs::write(&md, self.markdown(wording))?;
        std::fs::write(&json, serde_json::to_string_pretty(self)? + "\n")?;
        let _ = std::fs::remove_file(self.partial_path());
        Ok((md, json))
    }

    fn markdown(&self, wording: &Wording) -> String {
        let m = &self.machine;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# Benchmarks: ContainerManager against the raw Docker engine\n\n\
             Written by `scripts/bench.sh` (the `cm-bench` program, `crates/cm-bench`); do not edit by hand, \
             run it again. Raw samples: [benchmarks.json](benchmarks.json).\n\n\
             **Run** `{}` ({} mode), {}, {:.0} s. **Machine:** {} CPUs ({}), {:.1} GiB memory, kernel {}, \
             Docker engine {} with the {} storage driver, cgroup {}. Load average at start {}, at end {}{}. \
             Workspace commit {}.\n",
            self.run_id,
            self.mode,
            self.started_at,
            self.duration_s,
            m.cpus,
            m.cpu_model,
            m.memory_gib,
            m.kernel,
            m.docker_version,
            m.storage_driver,
            m.cgroup,
            m.load_at_start,
            m.load_at_end,
            if m.compiler_running_at_start {
                " (a compiler was running when the run started: figures are noisier)"
            } else {
                ""
            },
            m.commit,
        );
        if !self.carried.is_empty() {
            let titles: Vec<String> = self
                .carried
                .iter()
                .map(|c| {
                    let title = self
                        .sections
                        .iter()
                        .find(|s| s.key == c.section)
                        .map_or(c.section.as_str(), |s| s.title.as_str());
                    format!(
                        "\"{title}\" from run `{}` ({} mode, {}, workspace commit {})",
                        c.run_id, c.mode, c.started_at, c.commit
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "**Not re-run here** (`--only`): their figures are carried over from earlier runs, on the same \
                 machine type but under their own load: {}.\n",
                titles.join("; ")
            );
        }
        if self.mode == "quick" {
            let _ = writeln!(
                out,
                "> **These are figures of a quick trial run** (few pairs, small populations, short load runs). \
                 The full run (`scripts/bench.sh` without `--quick`) is what this page should report.\n"
            );
        }
        out.push_str(
            "Every ratio is cm's median over the engine's median for the same work in the same run, the two \
             interleaved (A B A B ...), so that noise hits both. Below 1.00 cm is faster; for req/s rows, \
             above 1.00 cm is faster. Spread is p10-p90 from 10 samples on, min-max below that.\n\n",
        );
        out.push_str(&(wording.summary)(self));
        for section in &self.sections {
            let _ = writeln!(out, "## {}\n", section.title);
            if let Some(c) = self.carried_from(&section.key) {
                let _ = writeln!(
                    out,
                    "*Carried over from run `{}` ({}, workspace commit {}): not re-run in this run.*\n",
                    c.run_id, c.started_at, c.commit
                );
            }
            let _ = writeln!(out, "Engine column: {}.\n", section.engine_column);
            if !section.rows.is_empty() {
                out.push_str(
                    "| What | cm | engine | ratio | runs | spread |\n|---|---:|---:|---:|---:|---|\n",
                );
                for row in &section.rows {
                    let _ = writeln!(out, "{}", table_row(row));
                }
                out.push('\n');
            }
            if section.rows.is_empty() && section.notes.is_empty() {
                out.push_str("Not run in this run (`--only`).\n\n");
            }
            for note in &section.notes {
                let _ = writeln!(out, "- {note}");
            }
            if !section.notes.is_empty() {
                out.push('\n');
            }
        }
        out.push_str(wording.method);
        out.push_str(&(wording.discussion)(self));
        out
    }
}

/// What the scenarios write around the tables: the summary and the discussion (made from the
/// figures) and the method. The scenarios give it, so the report knows none of them.
pub struct Wording {
    /// The summary at the top.
    pub summary: fn(&Report) -> String,
    /// How it was measured.
    pub method: &'static str,
    /// What the figures mean.
    pub discussion: fn(&Report) -> String,
}

fn table_row(row: &Row) -> String {
    let value = |s: &Option<Summary>| s.map_or_else(|| "—".to_owned(), |s| fmt(s.median, &row.unit));
    let what = &row.what;
    let ratio = row.ratio.map_or_else(|| "—".to_owned(), |r| format!("{r:.2}"));
    let runs = match (row.cm_summary, row.engine_summary) {
        (Some(c), Some(e)) if c.n == e.n => c.n.to_string(),
        (Some(c), Some(e)) => format!("{} / {}", c.n, e.n),
        (Some(c), None) => c.n.to_string(),
        (None, Some(e)) => e.n.to_string(),
        (None, None) => "0".to_owned(),
    };
    let spread_of = |s: &Option<Summary>| {
        s.filter(|s| s.n > 1).map(|s| {
            let (low, high) = if s.n >= 10 { (s.p10, s.p90) } else { (s.min, s.max) };
            format!("{}–{}", fmt_bare(low, &row.unit), fmt_bare(high, &row.unit))
        })
    };
    let spread = match (spread_of(&row.cm_summary), spread_of(&row.engine_summary)) {
        (Some(c), Some(e)) => format!("cm {c}; engine {e}"),
        (Some(c), None) => format!("cm {c}"),
        (None, Some(e)) => format!("engine {e}"),
        (None, None) => "—".to_owned(),
    };
    format!(
        "| {what} | {} | {} | {ratio} | {runs} | {spread} |",
        value(&row.cm_summary),
        value(&row.engine_summary)
    )
}

/// A value with its unit.
pub fn fmt(value: f64, unit: &str) -> String {
    format!("{} {unit}", fmt_bare(value, unit))
}

fn fmt_bare(value: f64, unit: &str) -> String {
    if !value.is_finite() {
        return "—".to_owned();
    }
    match unit {
        "reloads" | "containers" | "collisions" => format!("{value:.0}"),
        _ if value.abs() >= 100.0 => format!("{value:.0}"),
        _ if value.abs() >= 10.0 => format!("{value:.1}"),
        _ => format!("{value:.2}"),
    }
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn git_commit() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = run(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    let dirty = run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty { format!("{commit}-dirty") } else { commit }
}
