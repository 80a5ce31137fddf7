//! `cm-bench`: what ContainerManager costs on top of the raw Docker engine, measured side by side
//! in one run on one machine, interleaved (A B A B ...) so that noise hits both sides.
//!
//! It drives the release binaries as an operator would (`cm` as a fresh process per command,
//! `cm-api` as a server) and does the equivalent raw work itself: through the engine's API
//! (bollard, in this process: the physical limit) and through the `docker` CLI. Every object it
//! creates carries the label `cm.bench=<run id>` and is removed at the end, on Ctrl-C or SIGTERM
//! and on a panic. It writes `benchmarks.md` (tables, method, discussion) and `benchmarks.json`
//! (raw samples). `scripts/bench.sh` builds and runs it; see `docs/benchmarks.md`.
//!
//! It is not a test: nothing here runs under `cargo test`.

mod engine;
mod host;
mod http;
mod report;
mod scenarios;
mod stats;
mod world;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Instant;

use clap::Parser;

/// Measure ContainerManager against the raw Docker engine and write docs/benchmarks.{md,json}.
#[derive(Debug, Parser)]
#[command(name = "cm-bench", version, about)]
pub struct Args {
    /// A trial run: few pairs, populations of 10 and 50, short load runs.
    #[arg(long)]
    pub quick: bool,
    /// Where benchmarks.md and benchmarks.json are written.
    #[arg(long, default_value = "docs")]
    pub out: PathBuf,
    /// The directory with the release binaries `cm` and (optionally) `cm-api`.
    #[arg(long, default_value = "target/release")]
    pub bin_dir: PathBuf,
    /// Run only these scenarios: create, concurrency, routes, scale, swarm (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Do not measure cm-api even when its binary is there (scripts/bench.sh passes this when
    /// cm-api does not build, so that a stale binary is never measured).
    #[arg(long)]
    pub no_api: bool,
    /// Only write benchmarks.md again from this benchmarks.json (nothing is measured).
    #[arg(long, value_name = "JSON")]
    pub render: Option<PathBuf>,
    /// The largest population of the scale scenario (default 300, or 50 with --quick).
    #[arg(long)]
    pub max_containers: Option<usize>,
}

static START: OnceLock<Instant> = OnceLock::new();

/// Seconds since the bench started, for progress lines.
pub fn elapsed_s() -> f64 {
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// Prints a progress line on stderr.
#[macro_export]
macro_rules! progress {
    ($($arg:tt)*) => {
        eprintln!("[{:>7.1}s] {}", $crate::elapsed_s(), format!($($arg)*))
    };
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    START.get_or_init(Instant::now);
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cm-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(json) = &args.render {
        let md = report::Report::render(json, &scenarios::WORDING)?;
        progress!("wrote {}", md.display());
        return Ok(());
    }
    // Dropping `bench` removes everything labelled with its run id, also on an error or a panic.
    let bench = world::Bench::new(&args).await?;
    let mut report = report::Report::new(&bench, &args).await;
    progress!(
        "run {} ({}); cm {}{}",
        bench.run,
        if args.quick { "quick" } else { "full" },
        bench.cm_bin.display(),
        bench.api_bin.as_ref().map_or_else(
            || ", no cm-api".to_owned(),
            |p| format!(", cm-api {}", p.display())
        )
    );
    progress!(
        "figures so far are saved after each scenario to {} (`cm-bench --render` makes markdown of them)",
        report.partial_path().display()
    );
    if report.machine.compiler_running_at_start || host::load1() > 1.0 {
        progress!(
            "warning: the machine is busy (load {}{}); the figures will be noisier than on an idle machine",
            host::loadavg(),
            if report.machine.compiler_running_at_start {
                ", a compiler runs"
            } else {
                ""
            }
        );
    }
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        () = scenarios::run_all(&bench, &mut report, &args) => {}
        _ = terminate.recv() => {
            progress!("terminated: removing everything labelled cm.bench={}", bench.run);
            bench.cleanup();
            anyhow::bail!("terminated; nothing was written");
        }
        _ = tokio::signal::ctrl_c() => {
            progress!("interrupted: removing everything labelled cm.bench={}", bench.run);
            bench.cleanup();
            anyhow::bail!("interrupted; nothing was written");
        }
    }
    if !args.only.is_empty() {
        let previous = args.out.join("benchmarks.json");
        let ran = |key: &str| scenarios::owner_of(key).is_some_and(|s| args.only.iter().any(|o| o == s));
        match report.carry_over(&previous, &ran) {
            Ok(0) => {}
            Ok(n) => progress!(
                "--only: {n} sections not re-run are carried over from {}",
                previous.display()
            ),
            Err(e) => progress!(
                "--only: the sections not re-run stay empty ({} could not be read: {e:#})",
                previous.display()
            ),
        }
    }
    report.finish().await;
    let (md, json) = report.write(&args.out, &scenarios::WORDING)?;
    progress!("wrote {} and {}", md.display(), json.display());
    bench.cleanup();
    let left = bench.leftovers();
    if left > 0 {
        anyhow::bail!(
            "{left} objects labelled cm.bench={} are still there after cleanup",
            bench.run
        );
    }
    progress!("cleaned up: no object labelled cm.bench={} is left", bench.run);
    Ok(())
}
