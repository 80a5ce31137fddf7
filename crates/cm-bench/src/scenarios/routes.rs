//! Scenario 5, routes through nginx. One installation (one database, one port pool, one set of
//! labels) with two configurations, each in front of its own private, unprivileged nginx
//! (cm-testkit's `TestNginx`, one worker, error log at info level) and its own real `cm-api`:
//!
//! - dynamic (the default mode): nginx runs the site file `cm nginx setup` installs
//!   (`cm_nginx::render_site`) and asks cm-api's `/_cm/check` on every request who may reach which
//!   container and where it listens; creates and deletes touch no nginx file.
//! - files: the site file of files mode, a route file per container (owner-checked by the same
//!   route check of cm-api) and a reload per change.
//!
//! Measured, interleaved: from the start of a create to the first 200 through nginx (bearer: the
//! admin key), in both modes, against a container made by the engine's API and by the three
//! `docker` commands an operator types, reached on its own port; in dynamic mode the nginx reloads
//! of many creates and deletes and how soon a route answers after its create returned; in files
//! mode the reloads of bursts of 20 changes (from 20 `cm` processes, one `cm routes sync`, 20 API
//! calls); and with `wrk`, the cost per request of a dynamic route against a files route and the
//! app's own port, on a small and on a 1 MiB answer. Reloads are counted from nginx's
//! `signal 1 (SIGHUP) received ..., reconfiguring` notices.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use cm_testkit::nginx::{TestNginx, find_nginx};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};

use crate::engine::{api_create, api_delete, cli_create, cli_delete, host_port};
use crate::http::{Endpoint, WrkStats, once, request, wait_for, wrk_with};
use crate::report::{Report, Row};
use crate::scenarios::rotate;
use crate::stats::{median, ms_since};
use crate::world::{ApiServer, Bench, Cm, ROUTES_PORTS, container_name, free_addr, kind, random_key};
use crate::{host, progress};

/// The subnets of the routes installation.
const SUBNETS: &str = "10.240.112.0/20";
/// Route changes per burst in files mode.
const BURST: usize = 20;
/// Creates (and then deletes) whose reloads are counted in dynamic mode.
const CHANGES: usize = 50;
/// How many of those run at once.
const WORKERS: usize = 4;
const FIRST_200_LIMIT: Duration = Duration::from_secs(30);
/// nginx logs a reload within milliseconds of the signal; wait a little longer before counting.
const LOG_SETTLE: Duration = Duration::from_millis(500);
/// How often a route is polled for its first answer.
const POLL: Duration = Duration::from_millis(5);
/// How often a route is polled right after its create returned (for the first non-refusal).
const QUICK_POLL: Duration = Duration::from_millis(1);

/// The app of the per-request measurement: Python's threaded HTTP server (HTTP/1.1 keep-alive,
/// Nagle off, a listen backlog of 128 instead of socketserver's 5, which drops the SYNs of a burst
/// of new connections and makes their clients retry after 1 s) answering every GET with
/// `BODY_BYTES` bytes from memory, logging nothing. The
/// image's `cm-http` is not used for it: it leaves Nagle on and writes its headers and body
/// separately, so a keep-alive client waits for the delayed ACK (about 40 ms) on every request
/// (the `cm-http` rows show this).
const APP: &str = r#"import http.server as h
import os

N = int(os.environ.get("BODY_BYTES", "512"))
B = b"x" * N


class H(h.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(N))
        self.end_headers()
        self.wfile.write(B)

    def log_message(self, *args):
        pass


class S(h.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


S(("", int(os.environ.get("PORT", "8080"))), H).serve_forever()
"#;
/// The CPU limit of the per-request apps: the machine's, so that the app is not what limits the
/// routes (the bench type's 0.5 CPU would hide the proxy behind CFS throttling).
const APP_CPUS: f64 = 2.0;

/// One answer size of the per-request measurement: its type name, its body size, its label.
struct Answer {
    kind: &'static str,
    bytes: usize,
    label: &'static str,
}

const ANSWERS: [Answer; 2] = [
    Answer {
        kind: "small",
        bytes: 512,
        label: "512-byte answer",
    },
    Answer {
        kind: "mib",
        bytes: 1 << 20,
        label: "1 MiB answer",
    },
];

/// The types of the per-request apps, for both configurations.
fn app_types() -> String {
    let caps: Vec<String> = kind::CAPS.iter().map(|c| format!("\"{c}\"")).collect();
    // A JSON string of this text (quotes, backslashes and newlines escaped) is a TOML basic string.
    let code = serde_json::to_string(APP).unwrap_or_default();
    ANSWERS
        .iter()
        .map(|a| {
            format!(
                "[types.{}]\ndescription = \"benchmark: answers {} bytes\"\nimage = \"{}\"\ninternal_port = {}\n\
                 ssh = \"off\"\nmemory = \"{}\"\ncpus = {APP_CPUS}\npids_limit = {}\n\
                 restart_policy = \"unless-stopped\"\ncap_add = [{}]\ncommand = [\"python3\", \"-c\", {code}]\n\
                 env = {{ BODY_BYTES = \"{}\" }}\n",
                a.kind,
                a.bytes,
                kind::IMAGE,
                kind::INTERNAL_PORT,
                kind::MEMORY,
                kind::PIDS,
                caps.join(", "),
                a.bytes,
            )
        })
        .collect()
}

/// A configuration of the installation with its nginx and its cm-api.
struct Front {
    nginx: TestNginx,
    cm: Cm,
    api: ApiServer,
}

impl Front {
    fn via(&self) -> Endpoint {
        Endpoint::Tcp(SocketAddr::from(([127, 0, 0, 1], self.nginx.port)))
    }

    fn auth(&self) -> [(&'static str, &str); 1] {
        [("Authorization", self.api.authorization.as_str())]
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.nginx.port)
    }
}

/// The path of a container's route.
pub(crate) fn route(user: &str, kind: &str) -> String {
    format!("/container/{user}/{kind}/")
}

/// The site file of `cm nginx setup` for `mode` ("dynamic" or "files"), path routing.
fn site(mode: &str, listen: SocketAddr, api: SocketAddr, enabled_dir: &Path) -> anyhow::Result<String> {
    let site = cm_nginx::Site {
        // The configuration's own names of the modes (cm-bench does not depend on cm-core).
        mode: serde_json::from_value(json!(mode))?,
        host: serde_json::from_value(json!("path"))?,
        listen,
        server_name: "_".to_owned(),
        base_domain: None,
        api,
        enabled_dir: enabled_dir.to_path_buf(),
    };
    cm_nginx::render_site(&site).map_err(|e| anyhow!("rendering the {mode} site file: {e:?}"))
}

/// Starts a private nginx serving `site(mode, ...)`.
pub(crate) fn start_nginx(mode: &str, api: SocketAddr, enabled_dir: &Path) -> anyhow::Result<TestNginx> {
    // Rendered once first, so that an error is reported rather than an nginx without a server.
    site(mode, SocketAddr::from(([127, 0, 0, 1], 1)), api, enabled_dir)?;
    let render = |port: u16| {
        site(mode, SocketAddr::from(([127, 0, 0, 1], port)), api, enabled_dir).unwrap_or_default()
    };
    TestNginx::start_site(&format!("cm-bench routes ({mode})"), &render)
        .with_context(|| "nginx is not installed".to_owned())
}

fn toml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

/// The `[nginx]` section of files mode with the route directories `available` and `enabled`.
fn files_toml(nginx: &TestNginx, available: &Path, enabled: &Path) -> String {
    let args: Vec<String> = nginx.args.iter().map(|a| toml_string(a)).collect();
    format!(
        "[nginx]\nenabled = true\nmode = \"files\"\navailable_dir = {}\nenabled_dir = {}\nbinary = {}\nargs = [{}]\n",
        toml_string(&available.display().to_string()),
        toml_string(&enabled.display().to_string()),
        toml_string(&nginx.binary.display().to_string()),
        args.join(", ")
    )
}

/// Runs the scenario.
pub async fn run(bench: &Bench, report: &mut Report) -> anyhow::Result<()> {
    let Some(api_bin) = bench.api_bin.clone() else {
        report
            .section("routes")
            .note("not measured: routing needs cm-api (its route check), which is not built");
        return Ok(());
    };
    if find_nginx().is_none() {
        report
            .section("routes")
            .note("not measured: nginx is not installed (scripts/install-deps.sh installs nginx-light)");
        return Ok(());
    }
    let types = app_types();
    let (dynamic_api, files_api) = (free_addr()?, free_addr()?);
    // The installation first (its directories), routing off until the nginx instances run.
    let cm = bench.instance("routes", ROUTES_PORTS, SUBNETS, &types)?;
    let files_cm = bench.front(&cm, "routes-files", &types)?;
    let available = files_cm.dir().join("box-available");
    let enabled = files_cm.dir().join("box-enabled");
    for dir in [&available, &enabled] {
        std::fs::create_dir_all(dir)?;
    }
    let dynamic_nginx = start_nginx("dynamic", dynamic_api, &enabled)?;
    let files_nginx = start_nginx("files", files_api, &enabled)?;
    let cm = bench.instance(
        "routes",
        ROUTES_PORTS,
        SUBNETS,
        &format!("{}{types}", dynamic_nginx.dynamic_config_toml()),
    )?;
    let files_cm = bench.front(
        &cm,
        "routes-files",
        &format!("{}{types}", files_toml(&files_nginx, &available, &enabled)),
    )?;
    // One admin key for both cm-apis: the same request passes either route's check.
    let key = random_key()?;
    let result = async {
        let dynamic = Front {
            api: ApiServer::start_on(&api_bin, &cm, "routes-dynamic", dynamic_api, &key).await?,
            nginx: dynamic_nginx,
            cm,
        };
        let files = Front {
            api: ApiServer::start_on(&api_bin, &files_cm, "routes-files", files_api, &key).await?,
            nginx: files_nginx,
            cm: files_cm,
        };
        // Let both settle (each reconciles once at start).
        tokio::time::sleep(Duration::from_secs(2)).await;
        let result = measure(bench, report, &dynamic, &files, &available, &enabled).await;
        if result.is_err() {
            for front in [&dynamic, &files] {
                let log = front.api.log_text();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                progress!("routes: last lines of {}'s cm-api log: {tail:?}", front.cm.label);
            }
        }
        dynamic.api.stop().await;
        files.api.stop().await;
        result
    }
    .await;
    bench.remove_instance(&bench.label("routes"));
    bench.remove_instance(&bench.label("raw-routes"));
    result
}

async fn measure(
    bench: &Bench,
    report: &mut Report,
    dynamic: &Front,
    files: &Front,
    available: &Path,
    enabled: &Path,
) -> anyhow::Result<()> {
    progress!(
        "routes: dynamic nginx on 127.0.0.1:{} (cm-api {}), files nginx on 127.0.0.1:{} (cm-api {})",
        dynamic.nginx.port,
        dynamic.api.addr,
        files.nginx.port,
        files.api.addr
    );
    create_to_200(bench, report, dynamic, files).await?;
    report.save_partial();
    dynamic_changes(bench, report, dynamic).await?;
    report.save_partial();
    bursts(bench, report, files, available, enabled).await?;
    report.save_partial();
    per_request(bench, report, dynamic, files).await
}

/// The first 200 of `user`'s bench container through `front`'s nginx: (ms, status), `None` after
/// `limit`.
async fn first_200(front: &Front, user: &str, limit: Duration) -> Option<f64> {
    wait_for(
        &front.via(),
        &route(user, kind::NAME),
        &front.auth(),
        |s| s == 200,
        limit,
        POLL,
    )
    .await
    .map(|(ms, _)| ms)
}

async fn direct_200(port: u16) -> Option<f64> {
    let direct = Endpoint::Tcp(SocketAddr::from(([127, 0, 0, 1], port)));
    wait_for(&direct, "/", &[], |s| s == 200, FIRST_200_LIMIT, POLL)
        .await
        .map(|(ms, _)| ms)
}

/// Sides of the create loop.
const DYNAMIC: usize = 0;
const FILES: usize = 1;
const ENGINE_API: usize = 2;
const ENGINE_CLI: usize = 3;

async fn create_to_200(
    bench: &Bench,
    report: &mut Report,
    dynamic: &Front,
    files: &Front,
) -> anyhow::Result<()> {
    let pairs = if bench.quick { 3 } else { 10 };
    let docker = &bench.docker;
    let raw = "raw-routes";

    progress!("routes: warming up (one create of each kind, untimed)");
    for front in [dynamic, files] {
        let user = bench.user();
        front.cm.create(&user).await?;
        first_200(front, &user, FIRST_200_LIMIT).await;
        front.cm.delete(&user).await?;
    }
    let b = bench.raw_box(raw);
    api_create(docker, &b).await?;
    direct_200(b.port).await;
    api_delete(docker, &b).await?;
    let b = bench.raw_box(raw);
    cli_create(&b).await?;
    cli_delete(&b).await?;

    let mut create: [Vec<f64>; 4] = Default::default();
    let mut to_200: [Vec<f64>; 4] = Default::default();
    let mut total: [Vec<f64>; 4] = Default::default();
    let mut never = 0;
    for i in 0..pairs {
        for side in rotate(i, 4) {
            let start = Instant::now();
            let first = match side {
                DYNAMIC | FILES => {
                    let front = if side == DYNAMIC { dynamic } else { files };
                    let user = bench.user();
                    create[side].push(front.cm.create(&user).await?);
                    let first = first_200(front, &user, FIRST_200_LIMIT).await;
                    total[side].push(ms_since(start));
                    front.cm.delete(&user).await?;
                    first
                }
                ENGINE_API => {
                    let b = bench.raw_box(raw);
                    api_create(docker, &b).await?;
                    create[side].push(ms_since(start));
                    let first = direct_200(b.port).await;
                    total[side].push(ms_since(start));
                    api_delete(docker, &b).await?;
                    first
                }
                _ => {
                    let b = bench.raw_box(raw);
                    cli_create(&b).await?;
                    create[side].push(ms_since(start));
                    let first = direct_200(b.port).await;
                    total[side].push(ms_since(start));
                    cli_delete(&b).await?;
                    first
                }
            };
            match first {
                Some(ms) => to_200[side].push(ms),
                None => never += 1,
            }
        }
        let last = |v: &[f64]| v.last().copied().unwrap_or(f64::NAN);
        progress!(
            "routes: {}/{pairs}: create→200 dynamic {:.0} ms, files {:.0} ms, engine API {:.0} ms, docker CLI {:.0} ms",
            i + 1,
            last(&total[DYNAMIC]),
            last(&total[FILES]),
            last(&total[ENGINE_API]),
            last(&total[ENGINE_CLI]),
        );
    }
    let section = report.section("routes");
    let pair = |what: &str, a: &[f64], b: &[f64]| Row::new(what, "ms", a.to_vec(), b.to_vec());
    section.push(pair(
        "dynamic: create returns, `cm create` vs the engine's API",
        &create[DYNAMIC],
        &create[ENGINE_API],
    ));
    section.push(pair(
        "dynamic: create returns, `cm create` vs docker CLI (network, volume, run)",
        &create[DYNAMIC],
        &create[ENGINE_CLI],
    ));
    section.push(pair(
        "dynamic: create started → first 200, through nginx vs the engine's API and the app's own port",
        &total[DYNAMIC],
        &total[ENGINE_API],
    ));
    section.push(pair(
        "dynamic: create started → first 200, through nginx vs docker CLI and the app's own port",
        &total[DYNAMIC],
        &total[ENGINE_CLI],
    ));
    section.push(pair(
        "dynamic: create returned → first 200 (cm through nginx; engine on the app's own port)",
        &to_200[DYNAMIC],
        &to_200[ENGINE_API],
    ));
    section.push(pair(
        "files: create returns (route live in nginx), `cm create` vs the engine's API",
        &create[FILES],
        &create[ENGINE_API],
    ));
    section.push(pair(
        "files: create started → first 200, through nginx vs the engine's API and the app's own port",
        &total[FILES],
        &total[ENGINE_API],
    ));
    section.push(pair(
        "files: create returned → first 200 (cm through nginx; engine on the app's own port)",
        &to_200[FILES],
        &to_200[ENGINE_API],
    ));
    if never > 0 {
        section.note(format!(
            "{never} containers never answered 200 within {} s",
            FIRST_200_LIMIT.as_secs()
        ));
    }
    Ok(())
}

/// Whether a status is a refusal of the route check (sign-in, forbidden, no such container).
fn refused(status: u16) -> bool {
    matches!(status, 401 | 403 | 404)
}

/// Dynamic mode: many creates and then deletes (`cm` processes, [`WORKERS`] at a time); the nginx
/// reloads they cause, and how soon after each create returned its route answered.
async fn dynamic_changes(bench: &Bench, report: &mut Report, dynamic: &Front) -> anyhow::Result<()> {
    let n = if bench.quick { 20 } else { CHANGES };
    let users: Vec<String> = (0..n).map(|_| bench.user()).collect();
    let via = dynamic.via();
    let auth = dynamic.auth();

    let before = dynamic.nginx.reloads();
    let start = Instant::now();
    let created: Vec<anyhow::Result<Option<(f64, u16)>>> = futures_util::stream::iter(&users)
        .map(|user| {
            let (via, auth) = (&via, &auth);
            async move {
                dynamic.cm.create(user).await?;
                // From the moment the create returned: the first answer that is not a refusal
                // (the app's 200, or 502 while it starts).
                Ok(wait_for(
                    via,
                    &route(user, kind::NAME),
                    auth,
                    |s| !refused(s),
                    Duration::from_secs(10),
                    QUICK_POLL,
                )
                .await)
            }
        })
        .buffer_unordered(WORKERS)
        .collect()
        .await;
    let create_wall = ms_since(start);
    tokio::time::sleep(LOG_SETTLE).await;
    let create_reloads = dynamic.nginx.reloads() - before;
    let failed = created.iter().filter(|r| r.is_err()).count();
    let answered: Vec<(f64, u16)> = created.iter().filter_map(|r| *r.as_ref().ok()?).collect();
    let never = n - failed - answered.len();
    let first_status = |code: u16| answered.iter().filter(|(_, s)| *s == code).count();
    progress!(
        "routes: dynamic: {n} creates: {create_reloads} reloads, routes answered after {:.1} ms (median), {failed} failed",
        median(&answered.iter().map(|(ms, _)| *ms).collect::<Vec<_>>())
    );

    let before = dynamic.nginx.reloads();
    let start = Instant::now();
    let deleted: Vec<anyhow::Result<Option<u16>>> = futures_util::stream::iter(&users)
        .map(|user| {
            let (via, auth) = (&via, &auth);
            async move {
                dynamic.cm.delete(user).await?;
                let req = request(
                    "GET",
                    &route(user, kind::NAME),
                    &[("Connection", "close"), auth[0]],
                    None,
                );
                Ok(once(via, &req).await.map(|r| r.status))
            }
        })
        .buffer_unordered(WORKERS)
        .collect()
        .await;
    let delete_wall = ms_since(start);
    tokio::time::sleep(LOG_SETTLE).await;
    let delete_reloads = dynamic.nginx.reloads() - before;
    let delete_failed = deleted.iter().filter(|r| r.is_err()).count();
    let gone_at_once = deleted.iter().filter(|r| matches!(r, Ok(Some(404)))).count();
    progress!(
        "routes: dynamic: {n} deletes: {delete_reloads} reloads, {gone_at_once} routes answered 404 right after"
    );

    let section = report.section("routes");
    section.push(Row::new(
        format!("nginx reloads (dynamic): {n} `cm create` processes, {WORKERS} at a time"),
        "reloads",
        vec![create_reloads as f64],
        vec![],
    ));
    section.push(Row::new(
        format!("nginx reloads (dynamic): {n} `cm delete` processes, {WORKERS} at a time"),
        "reloads",
        vec![delete_reloads as f64],
        vec![],
    ));
    section.push(
        Row::new(
            format!(
                "dynamic: create returned → its route answers (not a refusal), {n} creates, {WORKERS} at a time"
            ),
            "ms",
            answered.iter().map(|(ms, _)| *ms).collect(),
            vec![],
        )
        .detail(json!({
            "first_status_200": first_status(200),
            "first_status_502": first_status(502),
            "first_status_other": answered.len() - first_status(200) - first_status(502),
            "never_within_10s": never,
            "poll_interval_ms": QUICK_POLL.as_secs_f64() * 1000.0,
            "creates_wall_ms": create_wall,
            "deletes_wall_ms": delete_wall,
        })),
    );
    section.note(format!(
        "dynamic: of {n} routes, {} answered first with the app's 200 and {} with 502 (app still starting) \
         right after their create returned; {never} only refused within 10 s; {gone_at_once} of {n} answered \
         404 on the first request after their delete returned",
        first_status(200),
        first_status(502),
    ));
    if failed + delete_failed > 0 {
        section.note(format!(
            "dynamic: {failed} creates and {delete_failed} deletes failed: {:?}",
            created
                .iter()
                .filter_map(|r| r.as_ref().err().map(|e| format!("{e:#}")))
                .chain(
                    deleted
                        .iter()
                        .filter_map(|r| r.as_ref().err().map(|e| format!("{e:#}")))
                )
                .take(3)
                .collect::<Vec<_>>()
        ));
    }
    Ok(())
}

/// Files mode: bursts of 20 route changes and the reloads they cause.
async fn bursts(
    bench: &Bench,
    report: &mut Report,
    files: &Front,
    available: &Path,
    enabled: &Path,
) -> anyhow::Result<()> {
    let users: Vec<String> = (0..BURST).map(|_| bench.user()).collect();
    let cm = &files.cm;

    // 20 `cm create` processes at once.
    let before = files.nginx.reloads();
    let start = Instant::now();
    let results = futures_util::future::join_all(users.iter().map(|u| cm.create(u))).await;
    let burst_ms = ms_since(start);
    let failed = results.iter().filter(|r| r.is_err()).count();
    tokio::time::sleep(LOG_SETTLE).await;
    let create_reloads = files.nginx.reloads() - before;
    let live = count_live(files, &users).await;
    progress!(
        "routes: files: {BURST} `cm create` processes: {create_reloads} reloads, {live} routes live, {failed} failed"
    );

    // One `cm routes sync` rewriting the 20 routes (their files removed behind its back).
    for dir in [enabled, available] {
        for entry in std::fs::read_dir(dir)?.flatten() {
            if entry.file_name().to_string_lossy().starts_with("container-") {
                std::fs::remove_file(entry.path())?;
            }
        }
    }
    let before = files.nginx.reloads();
    let sync_ms = cm.run(&["routes", "sync"]).await?.ms;
    tokio::time::sleep(LOG_SETTLE).await;
    let sync_reloads = files.nginx.reloads() - before;
    let live_after_sync = count_live(files, &users).await;
    progress!("routes: files: `cm routes sync`: {sync_reloads} reloads, {live_after_sync} routes live again");

    // 20 `cm delete` processes at once.
    let before = files.nginx.reloads();
    let deletes = futures_util::future::join_all(users.iter().map(|u| cm.delete(u))).await;
    let delete_failed = deletes.iter().filter(|r| r.is_err()).count();
    tokio::time::sleep(LOG_SETTLE).await;
    let delete_reloads = files.nginx.reloads() - before;
    progress!("routes: files: {BURST} `cm delete` processes: {delete_reloads} reloads");

    let section = report.section("routes");
    let one = |v: usize| vec![v as f64];
    section.push(Row::new(
        format!("nginx reloads (files): {BURST} concurrent `cm create` processes"),
        "reloads",
        one(create_reloads),
        vec![],
    ));
    section.push(Row::new(
        format!("nginx reloads (files): one `cm routes sync` rewriting {BURST} routes"),
        "reloads",
        one(sync_reloads),
        vec![],
    ));
    section.push(Row::new(
        format!("nginx reloads (files): {BURST} concurrent `cm delete` processes"),
        "reloads",
        one(delete_reloads),
        vec![],
    ));
    section.push(Row::new(
        format!("files: {BURST} concurrent `cm create` processes, wall time"),
        "ms",
        vec![burst_ms],
        vec![],
    ));
    section.push(Row::new(
        format!("files: `cm routes sync` of {BURST} routes, wall time"),
        "ms",
        vec![sync_ms],
        vec![],
    ));
    if failed + delete_failed > 0 || live < BURST || live_after_sync < BURST {
        section.note(format!(
            "files burst: {failed} creates and {delete_failed} deletes failed; {live} of {BURST} routes answered 200 \
             after the creates, {live_after_sync} after the sync"
        ));
    }
    api_burst(bench, report, files).await
}

async fn api_burst(bench: &Bench, report: &mut Report, files: &Front) -> anyhow::Result<()> {
    let endpoint = Endpoint::Tcp(files.api.addr);
    let auth = files.auth();
    let users: Vec<String> = (0..BURST).map(|_| bench.user()).collect();

    let before = files.nginx.reloads();
    let start = Instant::now();
    let created = futures_util::future::join_all(users.iter().map(|u| {
        let body = format!(r#"{{"user_id": "{u}", "container_type": "{}"}}"#, kind::NAME);
        let req = request(
            "POST",
            "/api/ContainerManager/create_container",
            &auth,
            Some(&body),
        );
        let endpoint = endpoint.clone();
        async move { once(&endpoint, &req).await.map(|r| r.status) }
    }))
    .await;
    let create_ms = ms_since(start);
    tokio::time::sleep(LOG_SETTLE).await;
    let create_reloads = files.nginx.reloads() - before;
    let ok = created.iter().filter(|s| **s == Some(201)).count();
    let live = count_live(files, &users).await;
    progress!(
        "routes: files: {BURST} API creates: {create_reloads} reloads, {ok} answered 201, {live} routes live"
    );

    let before = files.nginx.reloads();
    let deleted = futures_util::future::join_all(users.iter().map(|u| {
        let body = format!(
            r#"{{"container_id": "{}", "force": true, "purge": true}}"#,
            container_name(u)
        );
        let req = request(
            "POST",
            "/api/ContainerManager/delete_container",
            &auth,
            Some(&body),
        );
        let endpoint = endpoint.clone();
        async move { once(&endpoint, &req).await.map(|r| r.status) }
    }))
    .await;
    tokio::time::sleep(LOG_SETTLE).await;
    let delete_reloads = files.nginx.reloads() - before;
    let deleted_ok = deleted.iter().filter(|s| **s == Some(200)).count();
    progress!("routes: files: {BURST} API deletes: {delete_reloads} reloads, {deleted_ok} answered 200");

    let section = report.section("routes");
    section.push(Row::new(
        format!("nginx reloads (files): {BURST} concurrent API creates (one cm-api)"),
        "reloads",
        vec![create_reloads as f64],
        vec![],
    ));
    section.push(Row::new(
        format!("nginx reloads (files): {BURST} concurrent API deletes (one cm-api)"),
        "reloads",
        vec![delete_reloads as f64],
        vec![],
    ));
    section.push(Row::new(
        format!("files: {BURST} concurrent API creates, wall time"),
        "ms",
        vec![create_ms],
        vec![],
    ));
    if ok < BURST || deleted_ok < BURST || live < BURST {
        section.note(format!(
            "files API burst: {ok} of {BURST} creates answered 201 ({created:?}), {live} routes live, {deleted_ok} \
             deletes answered 200"
        ));
    }
    Ok(())
}

/// How many of the users' bench routes answer 200 through `front`'s nginx (each polled for up to 10 s).
async fn count_live(front: &Front, users: &[String]) -> usize {
    let mut live = 0;
    for user in users {
        if first_200(front, user, Duration::from_secs(10)).await.is_some() {
            live += 1;
        }
    }
    live
}

/// The ways to one app in the per-request measurement, in the order of the samples.
pub const TARGETS: [&str; 4] = [
    "dynamic route",
    "files route",
    "files route whose check nginx answers itself",
    "the app's own port",
];
const T_DYNAMIC: usize = 0;
const T_FILES: usize = 1;
const T_OPEN: usize = 2;
const T_DIRECT: usize = 3;

/// One `wrk` run and the CPU time the route's processes spent on it.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// What wrk reported.
    #[serde(flatten)]
    pub wrk: WrkStats,
    /// The nginx workers' CPU time (user + system) per request, µs.
    pub nginx_cpu_us: Option<f64>,
    /// cm-api's CPU time per request (the route check), µs.
    pub api_cpu_us: Option<f64>,
}

/// The processes whose CPU time a target's requests cost: the nginx (its master's pid file) and
/// the cm-api answering its check.
#[derive(Clone, Copy)]
struct Costs<'a> {
    nginx: Option<&'a TestNginx>,
    api: Option<u32>,
}

impl Costs<'_> {
    /// The nginx workers now (a reload replaces them).
    fn workers(&self) -> Vec<u32> {
        self.nginx
            .and_then(|n| std::fs::read_to_string(n.prefix.join("nginx.pid")).ok())
            .and_then(|text| text.trim().parse::<u32>().ok())
            .map(host::children)
            .unwrap_or_default()
    }
}

fn ticks(pids: &[u32]) -> Option<u64> {
    let all: Vec<u64> = pids.iter().filter_map(|p| host::cpu_ticks(*p)).collect();
    (!all.is_empty() && all.len() == pids.len()).then(|| all.iter().sum())
}

/// `wrk` against one container every way of [`TARGETS`], rotating the order; the samples of each,
/// with the CPU time the target's nginx workers and cm-api spent per request.
async fn wrk_all(
    bench: &Bench,
    urls: &[String; 4],
    costs: &[Costs<'_>; 4],
    header: &str,
    connections: usize,
    rounds: usize,
) -> anyhow::Result<[Vec<Run>; 4]> {
    let rounds = if bench.quick { 1 } else { rounds };
    let seconds = if bench.quick { 2 } else { 5 };
    let threads = if connections > 1 { 2 } else { 1 };
    let tick_us = 1e6 / host::ticks_per_second();
    let mut runs: [Vec<Run>; 4] = Default::default();
    for round in 0..rounds {
        for side in rotate(round, 4) {
            let workers = costs[side].workers();
            let api: Vec<u32> = costs[side].api.into_iter().collect();
            let before = (ticks(&workers), ticks(&api));
            let stats = wrk_with(&urls[side], Some(header), threads, connections, seconds)
                .await
                .with_context(|| format!("wrk did not run against the {} ({})", TARGETS[side], urls[side]))?;
            let after = (ticks(&workers), ticks(&api));
            let per_request = |b: Option<u64>, a: Option<u64>| match (b, a) {
                (Some(b), Some(a)) if stats.requests > 0 => {
                    Some(a.saturating_sub(b) as f64 * tick_us / stats.requests as f64)
                }
                _ => None,
            };
            runs[side].push(Run {
                nginx_cpu_us: per_request(before.0, after.0),
                api_cpu_us: per_request(before.1, after.1),
                wrk: stats,
            });
        }
    }
    Ok(runs)
}

/// The cost per request: `wrk` against one container's dynamic route, its files route (owner
/// checked by cm-api), its route in an nginx that answers the check itself (the route as it was
/// before the owner check), and its own port; with 1 and with 16 connections.
async fn per_request(
    bench: &Bench,
    report: &mut Report,
    dynamic: &Front,
    files: &Front,
) -> anyhow::Result<()> {
    let Some(open) = TestNginx::start(
        "cm-bench routes (files, check answered by nginx)",
        &cm_nginx::render_map_snippet(),
    ) else {
        anyhow::bail!("nginx did not start");
    };
    let types = app_types();
    let open_cm = bench.front(
        &dynamic.cm,
        "routes-open",
        &format!("{}{types}", open.config_toml()),
    )?;
    // (user, type, label): the two apps of `ANSWERS`, and a bench container running cm-http.
    let mut apps: Vec<(String, &str, &str)> =
        ANSWERS.iter().map(|a| (bench.user(), a.kind, a.label)).collect();
    apps.push((bench.user(), kind::NAME, CM_HTTP_LABEL));
    for (user, kind_name, _) in &apps {
        dynamic.cm.run(&["create", user, kind_name]).await?;
    }
    // The files configurations write the routes of the same containers (one reload each).
    files.cm.run(&["routes", "sync"]).await?;
    open_cm.run(&["routes", "sync"]).await?;
    let open_via = Endpoint::Tcp(SocketAddr::from(([127, 0, 0, 1], open.port)));
    // Every request carries the same header (both cm-apis have the same admin key); nginx clears
    // it before the app, the app ignores it.
    let header = format!("Authorization: {}", dynamic.api.authorization);
    let result = async {
        for (user, kind_name, label) in &apps {
            let name = format!("{user}_{kind_name}");
            let port = host_port(&bench.docker, &name, kind::INTERNAL_PORT).await?;
            let path = route(user, kind_name);
            let urls = [
                dynamic.url(&path),
                files.url(&path),
                format!("http://127.0.0.1:{}{path}", open.port),
                format!("http://127.0.0.1:{port}/"),
            ];
            let costs = [
                Costs {
                    nginx: Some(&dynamic.nginx),
                    api: dynamic.api.pid(),
                },
                Costs {
                    nginx: Some(&files.nginx),
                    api: files.api.pid(),
                },
                Costs {
                    nginx: Some(&open),
                    api: None,
                },
                Costs {
                    nginx: None,
                    api: None,
                },
            ];
            for via in [dynamic.via(), files.via(), open_via.clone()] {
                let auth = [("Authorization", dynamic.api.authorization.as_str())];
                wait_for(&via, &path, &auth, |s| s == 200, FIRST_200_LIMIT, POLL)
                    .await
                    .with_context(|| format!("{path} never answered 200 through nginx"))?;
            }
            let direct = Endpoint::Tcp(SocketAddr::from(([127, 0, 0, 1], port)));
            let body = once(&direct, &request("GET", "/", &[("Connection", "close")], None))
                .await
                .map_or(0, |r| r.body.len());
            // An untimed warm-up of every path.
            for url in &urls {
                wrk_with(url, Some(&header), 1, 1, 1).await;
            }
            // cm-http only shows its keep-alive stall; one connection says it.
            let connection_counts: &[usize] = if *kind_name == kind::NAME { &[1] } else { &[1, 16] };
            for &connections in connection_counts {
                // cm-http's rows only show its stall: one round says it.
                let rounds = if *kind_name == kind::NAME { 1 } else { 3 };
                let runs = wrk_all(bench, &urls, &costs, &header, connections, rounds).await?;
                push_wrk_rows(report, label, body, connections, &runs);
            }
        }
        anyhow::Ok(())
    }
    .await;
    // Through a files configuration: its route files go too.
    for (user, kind_name, _) in &apps {
        let name = format!("{user}_{kind_name}");
        if let Err(e) = files.cm.run(&["delete", &name, "--force", "--purge"]).await {
            progress!("routes: deleting {name}: {e:#}");
        }
    }
    result
}

/// The label of the cm-http rows.
pub const CM_HTTP_LABEL: &str = "the image's cm-http";

fn push_wrk_rows(report: &mut Report, label: &str, body: usize, connections: usize, runs: &[Vec<Run>; 4]) {
    let pick =
        |side: usize, f: fn(&WrkStats) -> f64| runs[side].iter().map(|r| f(&r.wrk)).collect::<Vec<f64>>();
    let p50 = |r: &WrkStats| r.p50_ms;
    let p99 = |r: &WrkStats| r.p99_ms;
    let rps = |r: &WrkStats| r.rps;
    let conns = format!(
        "{connections} connection{}",
        if connections == 1 { "" } else { "s" }
    );
    let errors: u64 = runs.iter().flatten().map(|r| r.wrk.errors).sum();
    progress!(
        "routes: per request, {label}, {conns}: p50 dynamic {:.2} ms, files {:.2} ms, unchecked {:.2} ms, direct {:.2} ms; \
         req/s {:.0}, {:.0}, {:.0}, {:.0}",
        median(&pick(T_DYNAMIC, p50)),
        median(&pick(T_FILES, p50)),
        median(&pick(T_OPEN, p50)),
        median(&pick(T_DIRECT, p50)),
        median(&pick(T_DYNAMIC, rps)),
        median(&pick(T_FILES, rps)),
        median(&pick(T_OPEN, rps)),
        median(&pick(T_DIRECT, rps)),
    );
    let cpu = |side: usize, f: fn(&Run) -> Option<f64>| {
        median(&runs[side].iter().filter_map(f).collect::<Vec<f64>>())
    };
    progress!(
        "routes: per request, {label}, {conns}: CPU per request: nginx {:.0} µs, {:.0} µs, {:.0} µs; cm-api {:.0} µs, {:.0} µs",
        cpu(T_DYNAMIC, |r| r.nginx_cpu_us),
        cpu(T_FILES, |r| r.nginx_cpu_us),
        cpu(T_OPEN, |r| r.nginx_cpu_us),
        cpu(T_DYNAMIC, |r| r.api_cpu_us),
        cpu(T_FILES, |r| r.api_cpu_us),
    );
    let section = report.section("routes");
    let detail: Value = json!({
        "label": label,
        "body_bytes": body,
        "connections": connections,
        "targets": TARGETS,
        "runs": runs,
    });
    let what = |metric: &str, against: usize| {
        format!(
            "per request, {label}, {conns}: {metric}, dynamic route vs {}",
            TARGETS[against]
        )
    };
    let cm_http = label == CM_HTTP_LABEL;
    section.push(
        Row::new(
            what("latency p50", T_FILES),
            "ms",
            pick(T_DYNAMIC, p50),
            pick(T_FILES, p50),
        )
        .detail(detail),
    );
    section.push(Row::new(
        what("latency p50", T_DIRECT),
        "ms",
        pick(T_DYNAMIC, p50),
        pick(T_DIRECT, p50),
    ));
    if !cm_http {
        section.push(Row::new(
            what("latency p99", T_FILES),
            "ms",
            pick(T_DYNAMIC, p99),
            pick(T_FILES, p99),
        ));
        section.push(
            Row::new(
                what("throughput", T_FILES),
                "req/s",
                pick(T_DYNAMIC, rps),
                pick(T_FILES, rps),
            )
            .higher_is_better(),
        );
        section.push(
            Row::new(
                what("throughput", T_DIRECT),
                "req/s",
                pick(T_DYNAMIC, rps),
                pick(T_DIRECT, rps),
            )
            .higher_is_better(),
        );
    }
    if !cm_http {
        let cpu_of =
            |side: usize, f: fn(&Run) -> Option<f64>| runs[side].iter().filter_map(f).collect::<Vec<f64>>();
        section.push(Row::new(
            what("nginx worker CPU per request", T_FILES),
            "µs",
            cpu_of(T_DYNAMIC, |r| r.nginx_cpu_us),
            cpu_of(T_FILES, |r| r.nginx_cpu_us),
        ));
        section.push(Row::new(
            what("cm-api CPU per request (the check)", T_FILES),
            "µs",
            cpu_of(T_DYNAMIC, |r| r.api_cpu_us),
            cpu_of(T_FILES, |r| r.api_cpu_us),
        ));
    }
    if errors > 0 {
        section.note(format!(
            "per request, {label}, {conns}: wrk counted {errors} non-2xx answers or socket errors"
        ));
    }
}
