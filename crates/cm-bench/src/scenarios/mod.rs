//! The scenarios, in the order they run (the report orders them as the issue does), and the
//! parts of the report that read across them: the summary, the method and the discussion.

mod concurrency;
mod create;
mod routes;
mod routes_report;
mod scale;
mod swarm;

use std::fmt::Write as _;
use std::future::Future;
use std::time::Instant;

use crate::Args;
use crate::report::{Report, Row, Wording, fmt};
use crate::stats::ms_since;
use crate::world::Bench;

/// Runs the selected scenarios; a failing one is noted in its section and the others still run.
pub async fn run_all(bench: &Bench, report: &mut Report, args: &Args) {
    let wants = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    if wants("create") {
        let result = create::run(bench, report).await;
        settle(bench, report, "create", result);
    }
    if wants("concurrency") {
        let result = concurrency::run(bench, report).await;
        settle(bench, report, "concurrency", result);
    }
    if wants("routes") {
        let result = routes::run(bench, report).await;
        settle(bench, report, "routes", result);
    }
    if wants("scale") {
        let result = scale::run(bench, report, args.max_containers).await;
        settle(bench, report, "scale", result);
    }
    if wants("swarm") {
        let result = swarm::run(bench, report).await;
        settle(bench, report, swarm::KEY, result);
    }
}

/// The scenario that writes a section (by key).
pub fn owner_of(section: &str) -> Option<&'static str> {
    match section {
        "create" => Some("create"),
        "concurrency" => Some("concurrency"),
        "routes" => Some("routes"),
        "list" | "scale" => Some("scale"),
        "swarm" => Some("swarm"),
        _ => None,
    }
}

fn settle(bench: &Bench, report: &mut Report, key: &str, result: anyhow::Result<()>) {
    report.save_partial();
    if let Err(e) = result {
        report
            .section(key)
            .note(format!("the scenario stopped early: {e:#}"));
        // Whatever it left must not weigh on the next scenario.
        bench.cleanup();
        report.save_partial();
    }
}

/// The order of `k` sides in round `i`: rotated, so that no side always goes first.
pub fn rotate(i: usize, k: usize) -> Vec<usize> {
    (0..k).map(|j| (i + j) % k).collect()
}

/// Awaits `work` and returns its wall time in ms.
pub async fn timed<T>(work: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<f64> {
    let start = Instant::now();
    work.await?;
    Ok(ms_since(start))
}

fn rows<'a>(report: &'a Report, key: &str, prefix: &str) -> Vec<&'a Row> {
    report
        .sections
        .iter()
        .filter(|s| s.key == key)
        .flat_map(|s| s.rows.iter())
        .filter(|r| r.what.starts_with(prefix))
        .collect()
}

fn cm_median(row: &Row) -> f64 {
    row.cm_summary.map_or(f64::NAN, |s| s.median)
}

fn engine_median(row: &Row) -> f64 {
    row.engine_summary.map_or(f64::NAN, |s| s.median)
}

/// The N of a row named `..., N=123`.
fn n_of(row: &Row) -> String {
    row.what
        .rsplit_once("N=")
        .map_or_else(String::new, |(_, n)| n.to_owned())
}

fn goal(met: bool) -> &'static str {
    if met { "**met**" } else { "**missed**" }
}

/// What `benchmarks.md` says around the tables.
pub const WORDING: Wording = Wording {
    summary,
    method: METHOD,
    discussion,
};

/// The headline figures and the goals of the issue, computed from the rows.
pub fn summary(report: &Report) -> String {
    let mut out = String::from("## Summary\n\n");
    let mut line = |text: String| {
        let _ = writeln!(out, "- {text}");
    };
    if let Some(row) = rows(report, "create", "create to running, engine via its API").first() {
        let ratio = row.ratio.unwrap_or(f64::NAN);
        let cli = rows(report, "create", "create to running, engine via docker CLI")
            .first()
            .and_then(|r| r.ratio)
            .unwrap_or(f64::NAN);
        line(format!(
            "Create to running: `cm create` {} against {} for the same engine calls made from a warm process: \
             ratio {ratio:.2} (goal ≤ 1.10: {}). Against an operator typing the three `docker` commands: ratio {cli:.2}.",
            fmt(cm_median(row), "ms"),
            fmt(engine_median(row), "ms"),
            goal(ratio <= 1.10)
        ));
    }
    if let Some(row) = rows(
        report,
        "create",
        "delete with volume and network, engine via its API",
    )
    .first()
    {
        line(format!(
            "Delete (container, volume, network): {} against {}: ratio {:.2}.",
            fmt(cm_median(row), "ms"),
            fmt(engine_median(row), "ms"),
            row.ratio.unwrap_or(f64::NAN)
        ));
    }
    let api_list = rows(report, "list", "API list_containers, 16 connections: latency p50");
    if api_list.is_empty() {
        line("API list and get under load: not measured (see section 2).".to_owned());
    } else {
        let ratios: Vec<String> = api_list
            .iter()
            .map(|r| format!("{:.2} at N={}", r.ratio.unwrap_or(f64::NAN), n_of(r)))
            .collect();
        let met = api_list.iter().all(|r| r.ratio.is_some_and(|x| x <= 1.0));
        line(format!(
            "API `list_containers` under load (16 connections), p50 latency against the engine's own \
             `GET /containers/json`: ratio {} (goal: no slower than the engine: {}).",
            ratios.join(", "),
            goal(met)
        ));
        // The absolute goal at the largest population (#15): p50 under 2 ms, p99 under 10 ms.
        let at_300 = |prefix: &str| {
            rows(report, "list", prefix)
                .into_iter()
                .find(|r| n_of(r) == "300")
                .map(cm_median)
        };
        if let (Some(p50), Some(p99)) = (
            at_300("API list_containers, 16 connections: latency p50"),
            at_300("API list_containers, 16 connections: latency p99"),
        ) {
            line(format!(
                "API `list_containers` at 300 containers under 16 connections: p50 {p50:.2} ms, p99 \
                 {p99:.2} ms (goal: under 2 ms and 10 ms: {}).",
                goal(p50 < 2.0 && p99 < 10.0)
            ));
        }
    }
    let api_get = rows(report, "list", "API get_container, 16 connections: latency p50");
    if !api_get.is_empty() {
        let ratios: Vec<String> = api_get
            .iter()
            .map(|r| format!("{:.2} at N={}", r.ratio.unwrap_or(f64::NAN), n_of(r)))
            .collect();
        line(format!(
            "API `get_container` under load, p50 latency against the engine's own inspect: ratio {}.",
            ratios.join(", ")
        ));
    }
    let cli_list = rows(report, "list", "`cm list --all`");
    if !cli_list.is_empty() {
        let ratios: Vec<String> = cli_list
            .iter()
            .map(|r| format!("{:.2} at N={}", r.ratio.unwrap_or(f64::NAN), n_of(r)))
            .collect();
        line(format!(
            "`cm list --all` against `docker ps -a`: ratio {}.",
            ratios.join(", ")
        ));
    }
    if let Some(row) = rows(report, "concurrency", "").first() {
        let collisions = rows(report, "concurrency", "host port collisions")
            .first()
            .map_or(f64::NAN, |r| r.cm.iter().sum());
        line(format!(
            "Concurrency: {} took {} against {} through the engine's API: ratio {:.2}; {collisions:.0} port \
             collisions.",
            row.what.split(", total").next().unwrap_or(""),
            fmt(cm_median(row), "ms"),
            fmt(engine_median(row), "ms"),
            row.ratio.unwrap_or(f64::NAN)
        ));
    }
    let scale_create = rows(report, "scale", "create to running, engine via its API, N=");
    if !scale_create.is_empty() {
        let points: Vec<String> = scale_create
            .iter()
            .map(|r| {
                format!(
                    "N={}: {} vs {} ({:.2})",
                    n_of(r),
                    fmt(cm_median(r), "ms"),
                    fmt(engine_median(r), "ms"),
                    r.ratio.unwrap_or(f64::NAN)
                )
            })
            .collect();
        line(format!("Create as the host fills: {}.", points.join("; ")));
    }
    let reconcile = rows(report, "scale", "`cm reconcile --dry-run` vs");
    if !reconcile.is_empty() {
        let points: Vec<String> = reconcile
            .iter()
            .map(|r| format!("{} at N={}", fmt(cm_median(r), "ms"), n_of(r)))
            .collect();
        let real: Vec<String> = rows(report, "scale", "`cm reconcile` re-creating")
            .iter()
            .map(|r| format!("{} at N={}", fmt(cm_median(r), "ms"), n_of(r)))
            .collect();
        line(format!(
            "Reconcile: dry run {}; re-creating one removed container {}.",
            points.join(", "),
            real.join(", ")
        ));
    }
    if let Some(row) = rows(report, "scale", "engine-side memory per running container").last() {
        let drop = rows(report, "scale", "host MemAvailable drop")
            .last()
            .map_or(f64::NAN, |r| engine_median(r));
        line(format!(
            "Memory: {} per running container at N={} (its own processes, its containerd-shim and its \
             fuse-overlayfs process); the host's MemAvailable dropped by {} per container. cm itself keeps \
             nothing resident per container (cm-api: see section 2).",
            fmt(engine_median(row), "MiB"),
            n_of(row),
            fmt(drop, "MiB")
        ));
    }
    for text in routes_report::summary_lines(report) {
        line(text);
    }
    for text in swarm::summary_lines(report) {
        line(text);
    }
    out.push('\n');
    out
}

/// How the figures were made.
pub const METHOD: &str = "\
## Method

- **One run, both sides, interleaved.** Every figure of a row comes from the same run on the same
  machine. Pairs alternate in rotating order (cm, engine; engine, cm; ...), triples likewise, so
  that a slow moment of the machine hits both sides. Nothing else of the project ran on purpose
  during the run; the load averages above say how idle the machine was.
- **cm as an operator runs it.** The release `cm` binary, a fresh process for every command, with
  its own SQLite database and TOML configuration in a temporary directory: `[labels]` puts
  `cm.bench=<run id>` on every object, ports come from 30000-30999 (routes: 32000-32499), subnets
  are /28s of 10.240.0.0/16, routing is off except in section 5. cm-api, where measured, is the
  release `cm-api` over the same database, with a fresh admin key.
- **The container.** A configured type `bench`: the default image `toolboxv2:latest` running its
  small Python HTTP server on 8080, 256 MiB (no swap), 0.5 CPU, 256 processes, all capabilities
  dropped but cm's nine, `no-new-privileges`, `unless-stopped`, HTTP published on 127.0.0.1 only,
  a data volume and the user's own bridge network with a /28 subnet. Every create is a new user,
  so every container has its own network (cm's worst case, and the common one).
- **The engine side does the same work.** The same network (bridge, subnet, labels), volume
  (labels), container (image, environment, labels, limits, capabilities, security option, restart
  policy, port binding) and start, with the same label keys plus the run label: once through the
  engine's API from the bench's own warm process (bollard over the unix socket; no process start,
  no version negotiation: the physical limit), once as the three `docker` CLI processes an
  operator would type (`network create`, `volume create`, `run -d`). Delete: `rm -f`, `volume rm`,
  `network rm`. A create counts until the command returns with the container running (cm returns
  after start and an inspect; the engine's start returns when the process runs).
- **Times** are wall-clock, from spawning a process to its exit, or from a call to its answer.
- **List and get under load.** One closed-loop client, the same code for both sides, so only the
  server differs: C keep-alive connections each send the next request as soon as the answer is
  read; D seconds a run; rounds interleaved. cm-api is reached on loopback TCP, the engine on its
  unix socket with the same label filter (`managed-by=ContainerManager` and the instance label, so
  both return the same N containers; checked before each level). The client reads every body to
  its end and parses none. `get_container` is compared with `GET /containers/{name}/json`. wrk
  (`-t2 -c16`) runs as well: against cm-api directly, and against the engine through a loopback
  TCP proxy to its socket inside the bench (wrk speaks TCP only), which adds a hop to the engine's
  side. The load generator shares the two cores with the server and the engine, so absolute
  req/s are lower than on a bigger host; the ratios are what carries over. cm-api's VmRSS is read
  from /proc before the load (at rest) and every 100 ms during it (peak).
- **Memory per container**: the drop of MemAvailable since before the fill, divided by N; the
  containers' own memory cgroups; the resident memory of the containerd-shim and fuse-overlayfs
  processes; dockerd and containerd. Before each population the bench checks that the projected
  need plus 2 GiB fits in MemAvailable, and stops early with a note otherwise.
- **Routes.** One cm installation (one database, port pool and label set) with two
  configurations, `mode = \"dynamic\"` and `mode = \"files\"`, each in front of its own private,
  unprivileged nginx (cm-testkit's `TestNginx`: one worker, its own prefix, error log at info
  level) running the site file `cm nginx setup` installs for that mode (`cm_nginx::render_site`),
  and its own release `cm-api` (both with the same admin key) answering that nginx's route check.
  Requests through nginx carry `Authorization: Bearer <admin key>`. A create counts from spawning
  `cm create` (or the first engine call) until the first 200 through nginx (cm) or on the
  container's own port (engine), polled every 5 ms on fresh connections; four sides rotate: cm
  dynamic, cm files, the engine's API, the three `docker` commands. After each of 50 dynamic
  creates (4 at a time) the route is polled every 1 ms from the moment the create returned until
  an answer that is not a refusal (401, 403, 404).
- **Reloads** are counted from the private nginx's error log: one
  `signal 1 (SIGHUP) received ..., reconfiguring` notice per reload, counted 0.5 s after the
  changes returned.
- **Per request.** `wrk --latency` (1 connection and 1 thread; 16 connections and 2 threads;
  5 s a run, 3 rounds, the four targets in rotating order) against one container: its dynamic
  route, its files route (the files configuration's `cm routes sync` writes the routes of the
  containers the dynamic one made), the same route in a third nginx whose
  `/_cm_internal/check` answers 204 itself (cm-testkit's stand-in: the route as it was before
  the owner check), and its own port. The app is Python's threaded HTTP server (HTTP/1.1
  keep-alive, Nagle off, a listen backlog of 128, no logging) answering 512 bytes or 1 MiB from
  memory: the default image with a custom command and a 2-CPU limit, so that the app does not
  cap the proxy. The image's own app, cm-http, gets one round with 1 connection (see the
  discussion). CPU per request: the user and system time (/proc/PID/stat) the nginx workers
  and the cm-api behind a route spent during a run, over the requests wrk completed.
- **Swarm.** A real 3-node swarm on this machine, made for the scenario by cm-testkit's `Cluster`:
  the host engine is the manager (it runs tasks too), two workers are containers running their
  own `dockerd` (the host's binaries, data on a tmpfs) on a private bridge; the image
  `cm-base:bookworm` is loaded onto them (there is no registry). The types run Python's HTTP
  server over `/data` (256 MiB, 0.5 CPU, 256 processes, cm's nine capabilities, `unless-stopped`;
  32 MiB for the placement). cm runs with `[runtime] kind = \"swarm\"` and every node's engine in
  `[runtime.nodes]`. The engine side makes the same objects: an attachable overlay network with a
  /28, the volume on the node's engine, and a service with the same image (by its local id, no
  registry lookup), labels, environment, limits, capabilities, restart policy, stop grace period,
  log rotation, `/data` mount, host-mode published port, `dnsrr` endpoint and the constraint to
  the node, through the API (1 replica, then its tasks listed every 20 ms until one runs) and as
  `docker` commands (`service create --detach --no-resolve-image`, then `docker service ps` until
  running). Deletes remove the service, kill its container on the node at once (as cm's forced
  delete does), then the volume and the network. The scenario holds the machine-wide engine lock
  exclusively while the engine is in swarm mode (no Docker test runs meanwhile), refuses to run
  when the engine is in a swarm it did not make, and leaves swarm mode at the end.
- **Cleanup.** Every object carries `cm.bench=<run id>`; each scenario removes its objects by label,
  the run removes all of them at the end, on Ctrl-C, SIGTERM and a panic, and checks that none is
  left. Objects without the run's label are never touched.

";

/// What the figures say, computed where the figures decide it, with the causes the code shows.
pub fn discussion(report: &Report) -> String {
    let mut out = String::from("## Discussion\n\n");
    create_paragraph(report, &mut out);
    scale_paragraph(report, &mut out);
    api_paragraph(report, &mut out);
    routes_report::paragraph(report, &mut out);
    swarm::paragraph(report, &mut out);
    out.push_str(
        "**Not measured.** On Swarm: `cm update`, restart, exec, logs and stats through a node's engine, \
         cm-api's creates, a node going down, and a cluster of separate machines (the workers here share the \
         host's kernel, cores and memory, and reach each other over a local bridge). SSH-enabled types (`cli_v4`: a second port and an `authorized_keys` upload per \
         create), `cm update`, `logs` and `exec`; pulling images (they are built locally, there is no \
         registry); the engine or the host restarting; more than the populations above; cm-api's create \
         latency against the engine (only its nginx reloads); CPU use at rest; a TLS or remote engine; \
         subdomain routing, the route check with a sign-in cookie instead of a bearer, TLS in front of \
         nginx, more than one nginx worker, WebSockets through a route. The \
         figures come from a 2-core machine whose load generator, engine, nginx and cm share the same cores.\n",
    );
    let notes: usize = report.sections.iter().map(|s| s.notes.len()).sum();
    if notes > 0 {
        out.push_str("\nThe notes under the tables record what this run observed besides the figures.\n");
    }
    out
}

fn create_paragraph(report: &Report, out: &mut String) {
    let create = rows(report, "create", "create to running, engine via its API");
    let floor = rows(report, "create", "process floor");
    let cli = rows(report, "create", "create to running, engine via docker CLI");
    let (Some(c), Some(f)) = (create.first(), floor.first()) else {
        return;
    };
    let extra = cm_median(c) - engine_median(c);
    let spread = |r: &Row| r.engine_summary.map_or(f64::NAN, |s| s.max - s.min);
    let _ = writeln!(
        out,
        "**Create: where cm is slower, and why.** A `cm create` took {} against {} for the same engine calls \
         from a warm process: {} more{}. The engine's own work (network, volume, container, start, on \
         fuse-overlayfs) dominates. What cm adds is the floor of any `cm` command, {} (starting the process, \
         opening SQLite, connecting and negotiating the API version; `docker version` pays {} for the same), \
         plus work the raw calls skip: six extra engine requests (the version; the running containers that \
         publish a port of the pool's range, to avoid their ports; for a user's first container, all \
         networks, to avoid their subnets; an inspect of the network and of the volume before creating \
         them; an inspect of the container after the start) and a few committed \
         SQLite transactions (the intent with the port lease, the subnet lease, a step per object, the \
         record), which make every step undoable after a crash. The `docker` CLI, as an operator would do \
         it by hand, took {}: three process starts cost more than cm's one.\n",
        fmt(cm_median(c), "ms"),
        fmt(engine_median(c), "ms"),
        fmt(extra, "ms"),
        if extra.abs() < spread(c) {
            format!(
                ", less than the spread of the engine's own samples ({})",
                fmt(spread(c), "ms")
            )
        } else {
            String::new()
        },
        fmt(cm_median(f), "ms"),
        fmt(engine_median(f), "ms"),
        fmt(cli.first().map_or(f64::NAN, |r| engine_median(r)), "ms"),
    );
}

fn scale_paragraph(report: &Report, out: &mut String) {
    let reads = rows(
        report,
        "scale",
        "engine time of a listing every `cm create` makes: running containers",
    );
    let nets = rows(
        report,
        "scale",
        "engine time of a listing a new user's `cm create` makes: all networks",
    );
    let creates = rows(report, "scale", "create to running, engine via its API, N=");
    let lists = rows(report, "list", "`cm list --all`");
    let dry = rows(report, "scale", "`cm reconcile --dry-run` vs");
    let (Some(first), Some(last)) = (creates.first(), creates.last()) else {
        return;
    };
    let grew = |a: f64, b: f64| {
        if b > a * 1.2 {
            format!("grew from {} to {}", fmt(a, "ms"), fmt(b, "ms"))
        } else {
            format!("stayed about flat ({} to {})", fmt(a, "ms"), fmt(b, "ms"))
        }
    };
    let _ = write!(
        out,
        "**Scale: what grows with the host.** From N={} to N={}, cm's create {} and the engine's {}. ",
        n_of(first),
        n_of(last),
        grew(cm_median(first), cm_median(last)),
        grew(engine_median(first), engine_median(last)),
    );
    if let (Some(r0), Some(r1), Some(w1)) = (reads.first(), reads.last(), nets.last()) {
        let _ = write!(
            out,
            "The parts of a create that grow with N are the two listings it makes before leasing (every \
             create here is a new user's first): the running containers publishing a port of the pool took \
             {} at N={} and {} at N={}, all networks {} at N={}; the engine walks everything it holds to \
             answer them, not only cm's containers. ",
            fmt(engine_median(r0), "ms"),
            n_of(r0),
            fmt(engine_median(r1), "ms"),
            n_of(r1),
            fmt(engine_median(w1), "ms"),
            n_of(w1),
        );
    }
    if let (Some(l0), Some(l1)) = (lists.first(), lists.last()) {
        let _ = write!(
            out,
            "`cm list --all` asks the engine once per command (not per container): {} at N={}, {} at N={}, \
             against `docker ps` {} and {}. ",
            fmt(cm_median(l0), "ms"),
            n_of(l0),
            fmt(cm_median(l1), "ms"),
            n_of(l1),
            fmt(engine_median(l0), "ms"),
            fmt(engine_median(l1), "ms"),
        );
    }
    let calls = rows(report, "scale", "… of which the engine calls it makes");
    if let (Some(d0), Some(d1)) = (dry.first(), dry.last()) {
        let _ = write!(
            out,
            "A reconcile dry run took {} at N={} and {} at N={}; it asks the engine per record only for \
             SSH keys (none here), so it grows with the engine's listings.",
            fmt(cm_median(d0), "ms"),
            n_of(d0),
            fmt(cm_median(d1), "ms"),
            n_of(d1),
        );
        if let Some(c) = calls.last() {
            let _ = write!(
                out,
                " At N={} {} of it are its three engine listings (the labelled containers, volumes and \
                 networks; {} when made directly with the instance's label filter). A real reconcile that \
                 re-creates one container pays these reads plus a create.",
                n_of(c),
                fmt(engine_median(c), "ms"),
                fmt(engine_median(d1), "ms"),
            );
        }
        out.push(' ');
    }
    if let (Some(c), Some(r), Some(w)) = (creates.last(), reads.last(), nets.last()) {
        let _ = write!(
            out,
            "At N={} cm's create is {} slower than the engine's; its two listings account for {} of it.",
            n_of(c),
            fmt(cm_median(c) - engine_median(c), "ms"),
            fmt(engine_median(r) + engine_median(w), "ms"),
        );
    }
    out.push_str("\n\n");
    let memory = rows(report, "scale", "engine-side memory per running container");
    let drop = rows(report, "scale", "host MemAvailable drop");
    if let (Some(m), Some(d)) = (memory.last(), drop.last()) {
        let per = engine_median(m).max(engine_median(d));
        let available_gib = d.detail["mem_available_kib"].as_f64().unwrap_or(f64::NAN) / 1024.0 / 1024.0;
        let more = available_gib * 1024.0 / per;
        let room = if more.is_finite() {
            format!(
                ", and {available_gib:.1} GiB were still available: memory alone would allow roughly {more:.0} more \
                 such idle containers"
            )
        } else {
            String::new()
        };
        let growth = engine_median(last) / engine_median(first);
        let stopped = report
            .sections
            .iter()
            .flat_map(|s| &s.notes)
            .find(|n| n.starts_with("stopped"));
        let _ = writeln!(
            out,
            "**Scale: where the limit is.** {} At N={} each running container cost {} (its processes, its \
             containerd-shim, its fuse-overlayfs process; the MemAvailable drop says {}){room}. So the first \
             limit an operator of such a host meets is cm's configuration, not memory: the default port pool \
             (9000-9500) holds 501 containers (this run: 1000 ports), the default subnet pool 4096 user \
             networks (this run: 1024). Before either, every create gets slower as the engine fills: the \
             engine's own create at N={} took {:.2}× its time at N={}, because every create adds a bridge \
             network (a Linux bridge, a veth pair, iptables rules) and a container (a containerd-shim and, \
             with the fuse-overlayfs storage driver, a user-space fuse-overlayfs process that every file \
             access of the container goes through), all on 2 cores. cm keeps nothing resident per \
             container; cm-api's memory is in section 2.\n",
            stopped.map_or_else(
                || format!("The run reached N={} without running short.", n_of(m)),
                |n| format!("The run stopped early: {n}.")
            ),
            n_of(m),
            fmt(engine_median(m), "MiB"),
            fmt(engine_median(d), "MiB"),
            n_of(last),
            growth,
            n_of(first),
        );
    }
}

fn api_paragraph(report: &Report, out: &mut String) {
    let list = rows(report, "list", "API list_containers, 16 connections: latency p50");
    let get = rows(report, "list", "API get_container, 16 connections: latency p50");
    let (Some(first), Some(last)) = (list.first(), list.last()) else {
        return;
    };
    let view = !report
        .sections
        .iter()
        .flat_map(|s| &s.notes)
        .any(|n| n.contains("did not answer from the event-fed status view"));
    let _ = writeln!(
        out,
        "**The API against the engine.** Under 16 connections cm-api's `list_containers` had a median latency \
         of {} against the engine's {} at N={} ({:.2}), and {} against {} at N={} ({:.2}). {}",
        fmt(cm_median(first), "ms"),
        fmt(engine_median(first), "ms"),
        n_of(first),
        first.ratio.unwrap_or(f64::NAN),
        fmt(cm_median(last), "ms"),
        fmt(engine_median(last), "ms"),
        n_of(last),
        last.ratio.unwrap_or(f64::NAN),
        if view {
            "It answered from the event-fed status view, so the engine's O(N) listing is not on its path; \
             what remains is the store read and the JSON of N records."
        } else {
            "This cm-api did not answer from the event-fed status view: every `list_containers` read all \
             records from SQLite and then asked the engine for the same O(N) listing the engine column \
             measures, so it can not be faster than the engine and is slower by the store read, the JSON \
             and the extra hop. Wiring `Manager::with_status_view` and `feed_status_view` into cm-api takes \
             the engine off this path."
        }
    );
    if let Some(g) = get.last() {
        let rps = rows(report, "list", "API get_container, 16 connections: throughput")
            .last()
            .and_then(|r| r.ratio)
            .unwrap_or(f64::NAN);
        if g.ratio.is_some_and(|r| r <= 1.5) {
            let _ = writeln!(
                out,
                "`get_container` answered in {} against the engine's own inspect in {} at N={}, and served \
                 {rps:.2}× the engine's requests per second: the reference is resolved in the store and the \
                 status comes from the view, without an engine call.",
                fmt(cm_median(g), "ms"),
                fmt(engine_median(g), "ms"),
                n_of(g)
            );
        } else {
            let _ = writeln!(
                out,
                "`get_container` took {} against the engine's own inspect, {}, at N={} ({rps:.2}× its \
                 requests per second): it reads the store and then asks the engine, so it can not beat the \
                 inspect it makes. All store calls of a process share one SQLite connection behind a mutex.",
                fmt(cm_median(g), "ms"),
                fmt(engine_median(g), "ms"),
                n_of(g)
            );
        }
    }
    let rss = rows(report, "list", "cm-api resident memory (VmRSS) under load");
    let rest = rows(report, "list", "cm-api resident memory (VmRSS) at rest");
    if let (Some(r), Some(l)) = (rest.last(), rss.last()) {
        let _ = writeln!(
            out,
            "cm-api's resident memory was {} at rest and at most {} under load at N={}.",
            fmt(cm_median(r), "MiB"),
            fmt(cm_median(l), "MiB"),
            n_of(l)
        );
    }
    out.push('\n');
}
