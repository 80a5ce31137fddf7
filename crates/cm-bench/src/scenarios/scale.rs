//! Scenarios 4, scale, and 2, list and get: one cm instance is filled with `cm create`, one container (and
//! one user network) at a time, to each population (10, 100, 300; 10, 50 with --quick). At each
//! population, interleaved against the engine: create and delete, `cm list --all` against
//! `docker ps`, reconcile (dry run, and a real one re-creating a removed container), the API's
//! list and get under load against the engine's own endpoints, and the memory the containers use.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::engine::{
    api_create, api_create_container, api_delete, api_prepare, containers, create_reads, docker_cli,
    reconcile_calls, reconcile_reads, remove_container,
};
use crate::host;
use crate::http::{Endpoint, LoadStats, load, once, request, unix_proxy, wrk};
use crate::progress;
use crate::report::{Report, Row};
use crate::scenarios::{rotate, timed};
use crate::stats::median;
use crate::world::{ApiServer, Bench, CM_PORTS, Cm, INSTANCE_LABEL, container_name, kind};

/// The names of the route check cases in the rows.
pub const CHECK_ADMIN: &str = "route check `GET /_cm/check` (admin key)";
/// With the owner's user token (one more store read than the admin key).
pub const CHECK_USER: &str = "route check `GET /_cm/check` (owner's user token)";

/// What must stay free beyond the projected need before the next population is started.
const RESERVE_KIB: u64 = 2 * 1024 * 1024;
/// The guess of memory per container before the first population measured it.
const FIRST_GUESS_KIB: u64 = 150 * 1024;

/// Runs the scenario.
pub async fn run(bench: &Bench, report: &mut Report, max: Option<usize>) -> anyhow::Result<()> {
    let default_levels: &[usize] = if bench.quick { &[10, 50] } else { &[10, 100, 300] };
    let max = max.unwrap_or(*default_levels.last().unwrap_or(&300));
    let mut levels: Vec<usize> = default_levels.iter().copied().filter(|l| *l <= max).collect();
    if levels.last() != Some(&max) && levels.len() < default_levels.len() {
        levels.push(max);
    }
    let cm = bench.instance("scale", CM_PORTS, "10.240.0.0/18", "")?;
    let api = match &bench.api_bin {
        Some(bin) => match ApiServer::start(bin, &cm, "scale").await {
            Ok(api) => Some(api),
            Err(e) => {
                report
                    .section("list")
                    .note(format!("API not measured: cm-api did not start: {e:#}"));
                None
            }
        },
        None => {
            report.section("list").note(
                "API not measured: cm-api is not built (scripts/bench.sh builds it once the crate exists)",
            );
            None
        }
    };
    let result = fill_and_measure(bench, report, &cm, api.as_ref(), &levels).await;
    if let Some(api) = api {
        let note = if api.uses_event_view().await {
            "cm-api answered listings from its event-fed status view (`reconcile_status` said `live_statuses: true`)"
        } else {
            "cm-api did not answer from the event-fed status view: its listings asked the engine on every request"
        };
        report.section("list").note(note);
        api.stop().await;
    }
    progress!("scale: removing the population");
    bench.remove_instance(&cm.label);
    bench.remove_instance(&bench.label("raw-scale"));
    result
}

async fn fill_and_measure(
    bench: &Bench,
    report: &mut Report,
    cm: &Cm,
    api: Option<&ApiServer>,
    levels: &[usize],
) -> anyhow::Result<()> {
    let baseline_kib = host::meminfo_kib("MemAvailable").unwrap_or(0);
    let mut users: Vec<String> = Vec::new();
    let mut fill: Vec<f64> = Vec::new();
    for &level in levels {
        let available = host::meminfo_kib("MemAvailable").unwrap_or(0);
        let per = if users.is_empty() {
            FIRST_GUESS_KIB
        } else {
            (baseline_kib.saturating_sub(available) / users.len() as u64).max(1)
        };
        let need = per * (level - users.len()) as u64 + RESERVE_KIB;
        if need > available {
            report.section("scale").note(format!(
                "stopped before {level} containers: they would need about {} MiB ({} MiB each plus {} MiB reserve), \
                 {} MiB are available",
                need / 1024,
                per / 1024,
                RESERVE_KIB / 1024,
                available / 1024
            ));
            break;
        }
        progress!("scale: filling to {level} containers (one `cm create` each)");
        while users.len() < level {
            let user = bench.user();
            match cm.create(&user).await {
                Ok(ms) => {
                    users.push(user);
                    fill.push(ms);
                }
                Err(e) => {
                    report.section("scale").note(format!(
                        "stopped filling: create number {} failed: {e:#}",
                        users.len() + 1
                    ));
                    break;
                }
            }
            if users.len().is_multiple_of(25) {
                progress!(
                    "scale: {} containers (last create {:.0} ms)",
                    users.len(),
                    fill.last().copied().unwrap_or(f64::NAN)
                );
            }
        }
        if users.len() < level {
            break;
        }
        fill_row(report, &fill, level);
        // Let the last containers finish starting before measuring memory and listings.
        tokio::time::sleep(Duration::from_secs(3)).await;
        memory(bench, report, cm, baseline_kib, level).await?;
        create_delete(bench, report, cm, level).await?;
        list(bench, report, cm, level).await?;
        reconcile(bench, report, cm, &users, level).await?;
        if let Some(api) = api {
            api_load(bench, report, cm, api, &users, level).await?;
        }
        report.save_partial();
    }
    Ok(())
}

fn fill_row(report: &mut Report, fill: &[f64], level: usize) {
    let from = level.saturating_sub(10).min(fill.len());
    report.section("scale").push(Row::new(
        format!("`cm create` while filling, containers {}-{level}", from + 1),
        "ms",
        fill[from..].to_vec(),
        vec![],
    ));
}

async fn memory(
    bench: &Bench,
    report: &mut Report,
    cm: &Cm,
    baseline_kib: u64,
    n: usize,
) -> anyhow::Result<()> {
    let available = host::meminfo_kib("MemAvailable").unwrap_or(0);
    let ids = containers(&bench.docker, &[format!("{INSTANCE_LABEL}={}", cm.label)]).await?;
    let anon_kib: Vec<u64> = ids
        .iter()
        .filter_map(|(id, _, _)| host::cgroup_anon_kib(id))
        .collect();
    let procs = host::processes(&["containerd-shim", "fuse-overlayfs", "dockerd", "containerd"]);
    let mib = |kib: u64, count: usize| kib as f64 / 1024.0 / count.max(1) as f64;
    // Each container has exactly one shim and (with fuse-overlayfs) one fuse-overlayfs process;
    // per process is per container, also when other containers run on the host.
    let per_process = |name: &str| {
        procs
            .get(name)
            .filter(|g| g.count > 0)
            .map(|g| (mib(g.pss_kib, g.count), *g))
    };
    let own = (anon_kib.len() == ids.len() && !ids.is_empty()).then(|| mib(anon_kib.iter().sum(), ids.len()));
    let shim = per_process("containerd-shim");
    let fuse = per_process("fuse-overlayfs");
    let section = report.section("scale");
    let parts = [own, shim.map(|s| s.0), fuse.map(|f| f.0)];
    if parts.iter().any(Option::is_some) {
        section.push(Row::new(
            format!("engine-side memory per running container: the sum of the next rows, N={n}"),
            "MiB",
            vec![],
            vec![parts.iter().flatten().sum()],
        ));
    }
    if let Some(own) = own {
        section.push(Row::new(
            format!("… the container's own processes (cgroup anonymous memory), N={n}"),
            "MiB",
            vec![],
            vec![own],
        ));
    }
    for (name, part) in [("containerd-shim", shim), ("fuse-overlayfs", fuse)] {
        if let Some((value, group)) = part {
            section.push(
                Row::new(
                    format!("… its {name} process (PSS; {} on the host), N={n}", group.count),
                    "MiB",
                    vec![],
                    vec![value],
                )
                .detail(json!(group)),
            );
        }
    }
    section.push(
        Row::new(
            format!(
                "host MemAvailable drop since before the fill / N (noisy: page cache, other processes), N={n}"
            ),
            "MiB",
            vec![],
            vec![mib(baseline_kib.saturating_sub(available), n)],
        )
        .detail(json!({ "mem_available_kib": available, "mem_available_before_fill_kib": baseline_kib })),
    );
    let engine: u64 = ["dockerd", "containerd"]
        .iter()
        .filter_map(|p| procs.get(*p))
        .map(|g| g.pss_kib)
        .sum();
    section.push(Row::new(
        format!("dockerd + containerd (PSS), N={n}"),
        "MiB",
        vec![],
        vec![engine as f64 / 1024.0],
    ));
    progress!(
        "scale: N={n}: MemAvailable {:.1} GiB ({:.1} MiB per container)",
        available as f64 / 1024.0 / 1024.0,
        baseline_kib.saturating_sub(available) as f64 / 1024.0 / n as f64
    );
    Ok(())
}

async fn create_delete(bench: &Bench, report: &mut Report, cm: &Cm, n: usize) -> anyhow::Result<()> {
    let pairs = if bench.quick { 2 } else { 5 };
    let docker = &bench.docker;
    let (mut create, mut delete) = ((vec![], vec![]), (vec![], vec![]));
    let (mut reads_containers, mut reads_networks) = (vec![], vec![]);
    for i in 0..pairs {
        for side in rotate(i, 2) {
            if side == 0 {
                let user = bench.user();
                create.0.push(cm.create(&user).await?);
                delete.0.push(cm.delete(&user).await?);
            } else {
                let b = bench.raw_box("raw-scale");
                create.1.push(timed(api_create(docker, &b)).await?);
                delete.1.push(timed(api_delete(docker, &b)).await?);
            }
        }
        let (c, w) = create_reads(docker, &format!("{}-{}", CM_PORTS.0, CM_PORTS.1)).await?;
        reads_containers.push(c);
        reads_networks.push(w);
    }
    progress!(
        "scale: N={n}: create cm {:.0} ms vs API {:.0} ms",
        median(&create.0),
        median(&create.1)
    );
    let section = report.section("scale");
    section.push(Row::new(
        format!("create to running, engine via its API, N={n}"),
        "ms",
        create.0,
        create.1,
    ));
    section.push(Row::new(
        format!("delete with volume and network, engine via its API, N={n}"),
        "ms",
        delete.0,
        delete.1,
    ));
    section.push(Row::new(
        format!("engine time of a listing every `cm create` makes: running containers publishing a pool port, N={n}"),
        "ms",
        vec![],
        reads_containers,
    ));
    section.push(Row::new(
        format!("engine time of a listing a new user's `cm create` makes: all networks, N={n}"),
        "ms",
        vec![],
        reads_networks,
    ));
    Ok(())
}

async fn list(bench: &Bench, report: &mut Report, cm: &Cm, n: usize) -> anyhow::Result<()> {
    let runs = if bench.quick { 3 } else { 10 };
    let ps: Vec<String> = [
        "ps",
        "-a",
        "--filter",
        "label=managed-by=ContainerManager",
        "--filter",
        &format!("label={INSTANCE_LABEL}={}", cm.label),
    ]
    .map(str::to_owned)
    .to_vec();
    let (mut cm_ms, mut docker_ms) = (vec![], vec![]);
    for i in 0..runs {
        for side in rotate(i, 2) {
            if side == 0 {
                cm_ms.push(cm.run(&["list", "--all"]).await?.ms);
            } else {
                docker_ms.push(docker_cli(&ps).await?);
            }
        }
    }
    report.section("list").push(Row::new(
        format!("`cm list --all` vs `docker ps -a` with the label filter (processes), N={n}"),
        "ms",
        cm_ms,
        docker_ms,
    ));
    Ok(())
}

async fn reconcile(
    bench: &Bench,
    report: &mut Report,
    cm: &Cm,
    users: &[String],
    n: usize,
) -> anyhow::Result<()> {
    let runs = if bench.quick { 1 } else { 3 };
    let docker = &bench.docker;
    let labels = [
        "managed-by=ContainerManager".to_owned(),
        format!("{INSTANCE_LABEL}={}", cm.label),
    ];
    let (mut dry, mut reads, mut internal, mut calls) = (vec![], vec![], vec![], vec![]);
    for i in 0..runs {
        for side in rotate(i, 2) {
            if side == 0 {
                let out = cm.run(&["reconcile", "--dry-run", "--json"]).await?;
                let report_json: Value = serde_json::from_str(&out.stdout)?;
                internal.push(report_json["duration_ms"].as_f64().unwrap_or(f64::NAN));
                dry.push(out.ms);
            } else {
                reads.push(timed(reconcile_reads(docker, &labels)).await?);
                calls.push(timed(reconcile_calls(docker, &labels)).await?);
            }
        }
    }
    let (mut real, mut recreate, mut missed) = (vec![], vec![], 0);
    for (i, user) in users.iter().take(runs).enumerate() {
        for side in rotate(i, 2) {
            if side == 0 {
                remove_container(docker, &container_name(user)).await?;
                let out = cm.run(&["reconcile", "--json"]).await?;
                let found: Value = serde_json::from_str(&out.stdout)?;
                let fixed = found["findings"].as_array().is_some_and(|f| {
                    f.iter()
                        .any(|x| x["kind"] == "missing_container" && x["outcome"] == "fixed")
                });
                if !fixed {
                    missed += 1;
                }
                real.push(out.ms);
            } else {
                let b = bench.raw_box("raw-scale");
                api_prepare(docker, &b).await?;
                recreate.push(timed(api_create_container(docker, &b)).await?);
                api_delete(docker, &b).await?;
            }
        }
    }
    progress!(
        "scale: N={n}: reconcile --dry-run {:.0} ms, real {:.0} ms",
        median(&dry),
        median(&real)
    );
    let section = report.section("scale");
    section.push(
        Row::new(
            format!("`cm reconcile --dry-run` vs the engine's 3 labelled listings, N={n}"),
            "ms",
            dry,
            reads,
        )
        .detail(json!({ "cm_internal_duration_ms": internal.clone() })),
    );
    section.push(Row::new(
        format!("`cm reconcile --dry-run`: its own reported duration (no process start), N={n}"),
        "ms",
        internal.clone(),
        vec![],
    ));
    section.push(Row::new(
        format!("… of which the engine calls it makes (3 listings), N={n}"),
        "ms",
        vec![],
        calls,
    ));
    section.push(Row::new(
        format!("`cm reconcile` re-creating 1 removed container vs creating 1 container via the API, N={n}"),
        "ms",
        real,
        recreate,
    ));
    if missed > 0 {
        section.note(format!(
            "N={n}: {missed} real reconciles did not report the removed container as re-created (something else, \
             such as cm-api, re-created it first)"
        ));
    }
    Ok(())
}

/// Percent-encodes a query value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn api_load(
    bench: &Bench,
    report: &mut Report,
    cm: &Cm,
    api: &ApiServer,
    users: &[String],
    n: usize,
) -> anyhow::Result<()> {
    let Some(socket) = bench.engine_socket.clone() else {
        report
            .section("list")
            .note("API against the engine not measured: the engine is not on a unix socket");
        return Ok(());
    };
    let seconds = if bench.quick { 2 } else { 5 };
    let rounds = if bench.quick { 1 } else { 2 };
    let cm_ep = Endpoint::Tcp(api.addr);
    let engine_ep = Endpoint::Unix(socket.clone());
    let auth = [("Authorization", api.authorization.as_str())];
    let filters =
        json!({ "label": ["managed-by=ContainerManager", format!("{INSTANCE_LABEL}={}", cm.label)] });
    let list_path = "/api/ContainerManager/list_containers?all=true";
    let engine_list_path = format!("/containers/json?all=1&filters={}", encode(&filters.to_string()));
    let name = container_name(&users[0]);
    let cm_list = request("GET", list_path, &auth, None);
    let engine_list = request("GET", &engine_list_path, &[], None);
    let cm_get = request(
        "GET",
        &format!("/api/ContainerManager/get_container?container_id={name}"),
        &auth,
        None,
    );
    let engine_get = request("GET", &format!("/containers/{name}/json"), &[], None);

    // Both sides must answer the same question with the same N containers.
    let count = |body: &[u8], key: Option<&str>| -> Option<usize> {
        let v: Value = serde_json::from_slice(body).ok()?;
        match key {
            Some(k) => v[k].as_array().map(Vec::len),
            None => v.as_array().map(Vec::len),
        }
    };
    let cm_answer = once(&cm_ep, &cm_list).await;
    let engine_answer = once(&engine_ep, &engine_list).await;
    let cm_count = cm_answer
        .as_ref()
        .and_then(|r| count(&r.body, Some("containers")));
    let engine_count = engine_answer.as_ref().and_then(|r| count(&r.body, None));
    if cm_answer.as_ref().map(|r| r.status) != Some(200) || cm_count != Some(n) || engine_count != Some(n) {
        report.section("list").note(format!(
            "N={n}: API load not measured: list_containers answered {:?} with {cm_count:?} containers, the engine {engine_count:?} \
             (expected {n}); body: {}",
            cm_answer.as_ref().map(|r| r.status),
            cm_answer
                .as_ref()
                .map(|r| String::from_utf8_lossy(&r.body[..r.body.len().min(300)]).into_owned())
                .unwrap_or_default()
        ));
        return Ok(());
    }

    let rest = api.rss_mib().unwrap_or(f64::NAN);
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = api.pid().map(|pid| {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                if let Some(kib) = host::rss_kib(pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });

    // nginx's per-request question (`auth_request`), asked of cm-api directly: may this caller
    // reach this container, and where does it listen. The engine's equivalent is the inspect.
    let check = |credential: &str| {
        request(
            "GET",
            "/_cm/check",
            &[
                ("X-CM-User", users[0].as_str()),
                ("X-CM-Type", kind::NAME),
                ("Authorization", credential),
            ],
            None,
        )
    };
    let check_admin = check(&api.authorization);
    let token_req = request(
        "POST",
        "/api/ContainerManager/create_user_token",
        &auth,
        Some(&json!({ "user_id": users[0] }).to_string()),
    );
    let token = once(&cm_ep, &token_req)
        .await
        .filter(|r| r.status == 201)
        .and_then(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .and_then(|v| v["token"].as_str().map(str::to_owned));
    let check_user = token.as_ref().map(|t| check(&format!("Bearer {t}")));
    let upstream = |answer: Option<crate::http::Response>| answer.map(|r| r.status);
    let admin_answer = upstream(once(&cm_ep, &check_admin).await);
    let user_answer = match &check_user {
        Some(req) => upstream(once(&cm_ep, req).await),
        None => None,
    };

    let duration = Duration::from_secs(seconds);
    let mut cases = vec![
        ("list_containers", &cm_list, &engine_list, 16),
        ("list_containers", &cm_list, &engine_list, 1),
        ("get_container", &cm_get, &engine_get, 16),
    ];
    if admin_answer == Some(200) {
        cases.push((CHECK_ADMIN, &check_admin, &engine_get, 16));
    }
    if let Some(req) = check_user.as_ref().filter(|_| user_answer == Some(200)) {
        cases.push((CHECK_USER, req, &engine_get, 16));
    }
    let section = report.section("list");
    if admin_answer != Some(200) || user_answer != Some(200) {
        section.note(format!(
            "N={n}: route check not (fully) measured: `/_cm/check` answered {admin_answer:?} to the admin key and \
             {user_answer:?} to the owner's token (token created: {})",
            token.is_some()
        ));
    }
    for (what, cm_req, engine_req, connections) in cases {
        let (mut cm_runs, mut engine_runs): (Vec<LoadStats>, Vec<LoadStats>) = (vec![], vec![]);
        for round in 0..rounds {
            for side in rotate(round, 2) {
                if side == 0 {
                    cm_runs.push(load(&cm_ep, cm_req, connections, duration).await);
                } else {
                    engine_runs.push(load(&engine_ep, engine_req, connections, duration).await);
                }
            }
        }
        progress!(
            "list: N={n} {what} c={connections}: cm-api p50 {:.2} ms {:.0} req/s; engine p50 {:.2} ms {:.0} req/s",
            cm_runs[0].p50_ms,
            cm_runs[0].rps,
            engine_runs[0].p50_ms,
            engine_runs[0].rps
        );
        let errors: usize = cm_runs.iter().chain(&engine_runs).map(|r| r.errors).sum();
        if errors > 0 {
            section.note(format!("N={n} {what} c={connections}: {errors} failed requests"));
        }
        let pick = |runs: &[LoadStats], f: fn(&LoadStats) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
        let detail = json!({ "cm_api": cm_runs, "engine": engine_runs, "seconds_per_run": seconds });
        let label = format!(
            "{what}, {connections} connection{}",
            if connections == 1 { "" } else { "s" }
        );
        section.push(
            Row::new(
                format!("API {label}: latency p50, N={n}"),
                "ms",
                pick(&cm_runs, |r| r.p50_ms),
                pick(&engine_runs, |r| r.p50_ms),
            )
            .detail(detail),
        );
        if connections > 1 {
            section.push(Row::new(
                format!("API {label}: latency p99, N={n}"),
                "ms",
                pick(&cm_runs, |r| r.p99_ms),
                pick(&engine_runs, |r| r.p99_ms),
            ));
        }
        section.push(
            Row::new(
                format!("API {label}: throughput, N={n}"),
                "req/s",
                pick(&cm_runs, |r| r.rps),
                pick(&engine_runs, |r| r.rps),
            )
            .higher_is_better(),
        );
    }

    // wrk, as the issue asks: cm-api directly, the engine through a loopback proxy to its socket.
    let wrk_seconds = if bench.quick { 2 } else { 10 };
    let (proxy_addr, proxy) = unix_proxy(socket).await?;
    let header = api.authorization.clone();
    let cm_wrk = wrk(
        &format!("http://{}{list_path}", api.addr),
        Some(&format!("Authorization: {header}")),
        16,
        wrk_seconds,
    )
    .await;
    let engine_wrk = wrk(
        &format!("http://{proxy_addr}{engine_list_path}"),
        None,
        16,
        wrk_seconds,
    )
    .await;
    proxy.abort();
    if let Some(task) = sampler {
        task.abort();
    }
    let under_load = peak.load(Ordering::Relaxed) as f64 / 1024.0;
    match (cm_wrk, engine_wrk) {
        (Some(c), Some(e)) => {
            progress!(
                "list: N={n} wrk: cm-api p50 {:.2} ms {:.0} req/s; engine (proxied) p50 {:.2} ms {:.0} req/s",
                c.p50_ms,
                c.rps,
                e.p50_ms,
                e.rps
            );
            let detail = json!({ "cm_api": c, "engine_via_proxy": e, "threads": 2, "connections": 16, "seconds": wrk_seconds });
            section.push(
                Row::new(
                    format!(
                        "wrk -t2 -c16 list_containers: latency p50 (engine through a loopback proxy), N={n}"
                    ),
                    "ms",
                    vec![c.p50_ms],
                    vec![e.p50_ms],
                )
                .detail(detail),
            );
            section.push(Row::new(
                format!("wrk -t2 -c16 list_containers: latency p99, N={n}"),
                "ms",
                vec![c.p99_ms],
                vec![e.p99_ms],
            ));
            section.push(
                Row::new(
                    format!("wrk -t2 -c16 list_containers: throughput, N={n}"),
                    "req/s",
                    vec![c.rps],
                    vec![e.rps],
                )
                .higher_is_better(),
            );
            if c.errors + e.errors > 0 {
                section.note(format!(
                    "N={n} wrk: {} failed requests on cm-api, {} on the engine",
                    c.errors, e.errors
                ));
            }
        }
        _ => section.note(format!(
            "N={n}: wrk did not run (install wrk: scripts/install-deps.sh)"
        )),
    }
    section.push(Row::new(
        format!("cm-api resident memory (VmRSS) at rest, N={n}"),
        "MiB",
        vec![rest],
        vec![],
    ));
    section.push(Row::new(
        format!("cm-api resident memory (VmRSS) under load, peak, N={n}"),
        "MiB",
        vec![under_load],
        vec![],
    ));
    Ok(())
}
