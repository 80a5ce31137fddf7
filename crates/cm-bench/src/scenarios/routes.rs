//! Scenario 5, routes through a private, unprivileged nginx (cm-testkit's `TestNginx`, error log at info
//! level): from a finished `cm create` to the first 200 through nginx, against a container made
//! through the engine's API and reached on its own port; then the nginx reloads caused by bursts
//! of 20 route changes (counted from nginx's `signal 1 (SIGHUP) received ..., reconfiguring`
//! notices): from 20 `cm` processes, from one `cm routes sync`, and from 20 concurrent API calls.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cm_testkit::nginx::TestNginx;

use crate::engine::{api_create, api_delete};
use crate::http::{Endpoint, once, request, wait_for_200};
use crate::progress;
use crate::report::{Report, Row};
use crate::scenarios::rotate;
use crate::stats::ms_since;
use crate::world::{ApiServer, Bench, Cm, ROUTES_PORTS, container_name, kind};

const BURST: usize = 20;
const FIRST_200_LIMIT: Duration = Duration::from_secs(30);
/// nginx logs a reload within milliseconds of the signal; wait a little longer before counting.
const LOG_SETTLE: Duration = Duration::from_millis(500);

/// Runs the scenario.
pub async fn run(bench: &Bench, report: &mut Report) -> anyhow::Result<()> {
    let Some(nginx) = TestNginx::start("cm-bench routes", &cm_nginx::render_map_snippet()) else {
        report
            .section("routes")
            .note("not measured: nginx is not installed (scripts/install-deps.sh installs nginx-light)");
        return Ok(());
    };
    let cm = bench.instance("routes", ROUTES_PORTS, "10.240.112.0/20", &nginx.config_toml())?;
    let result = measure(bench, report, &nginx, &cm).await;
    bench.remove_instance(&cm.label);
    bench.remove_instance(&bench.label("raw-routes"));
    result
}

async fn measure(bench: &Bench, report: &mut Report, nginx: &TestNginx, cm: &Cm) -> anyhow::Result<()> {
    let pairs = if bench.quick { 3 } else { 10 };
    let docker = &bench.docker;
    let via_nginx = Endpoint::Tcp(SocketAddr::from(([127, 0, 0, 1], nginx.port)));
    let route = |user: &str| format!("/container/{user}/{}/", kind::NAME);

    progress!("routes: nginx on 127.0.0.1:{}; warming up", nginx.port);
    let user = bench.user();
    cm.create(&user).await?;
    wait_for_200(&via_nginx, &route(&user), FIRST_200_LIMIT).await;
    cm.delete(&user).await?;

    let mut create = (vec![], vec![]);
    let mut to_200 = (vec![], vec![]);
    let mut total = (vec![], vec![]);
    let mut never = 0;
    for i in 0..pairs {
        for side in rotate(i, 2) {
            let start = Instant::now();
            if side == 0 {
                let user = bench.user();
                create.0.push(cm.create(&user).await?);
                let first = wait_for_200(&via_nginx, &route(&user), FIRST_200_LIMIT).await;
                total.0.push(ms_since(start));
                match first {
                    Some(ms) => to_200.0.push(ms),
                    None => never += 1,
                }
                cm.delete(&user).await?;
            } else {
                let b = bench.raw_box("raw-routes");
                api_create(docker, &b).await?;
                create.1.push(ms_since(start));
                let direct = Endpoint::Tcp(SocketAddr::from(([127, 0, 0, 1], b.port)));
                let first = wait_for_200(&direct, "/", FIRST_200_LIMIT).await;
                total.1.push(ms_since(start));
                match first {
                    Some(ms) => to_200.1.push(ms),
                    None => never += 1,
                }
                api_delete(docker, &b).await?;
            }
        }
        progress!(
            "routes: {}/{pairs}: create→200 cm via nginx {:.0} ms, engine direct {:.0} ms",
            i + 1,
            total.0.last().copied().unwrap_or(f64::NAN),
            total.1.last().copied().unwrap_or(f64::NAN)
        );
    }
    let section = report.section("routes");
    section.push(Row::new(
        "create returns (cm: route live in nginx; engine: started)",
        "ms",
        create.0,
        create.1,
    ));
    section.push(Row::new(
        "create returned → first 200 (cm through nginx; engine on its port)",
        "ms",
        to_200.0,
        to_200.1,
    ));
    section.push(Row::new(
        "create started → first 200 (the user's wait)",
        "ms",
        total.0,
        total.1,
    ));
    if never > 0 {
        section.note(format!(
            "{never} containers never answered 200 within {} s",
            FIRST_200_LIMIT.as_secs()
        ));
    }

    bursts(bench, report, nginx, cm, &via_nginx).await
}

async fn bursts(
    bench: &Bench,
    report: &mut Report,
    nginx: &TestNginx,
    cm: &Cm,
    via_nginx: &Endpoint,
) -> anyhow::Result<()> {
    let route = |user: &str| format!("/container/{user}/{}/", kind::NAME);
    let users: Vec<String> = (0..BURST).map(|_| bench.user()).collect();

    // 20 `cm create` processes at once.
    let before = nginx.reloads();
    let start = Instant::now();
    let results = futures_util::future::join_all(users.iter().map(|u| cm.create(u))).await;
    let burst_ms = ms_since(start);
    let failed = results.iter().filter(|r| r.is_err()).count();
    tokio::time::sleep(LOG_SETTLE).await;
    let create_reloads = nginx.reloads() - before;
    let live = count_live(via_nginx, &users, &route).await;
    progress!(
        "routes: {BURST} `cm create` processes: {create_reloads} reloads, {live} routes live, {failed} failed"
    );

    // One `cm routes sync` rewriting the 20 routes (their files removed behind its back).
    for dir in [&nginx.enabled_dir, &nginx.available_dir] {
        for entry in std::fs::read_dir(dir)?.flatten() {
            if entry.file_name().to_string_lossy().starts_with("container-") {
                std::fs::remove_file(entry.path())?;
            }
        }
    }
    let before = nginx.reloads();
    let sync_ms = cm.run(&["routes", "sync"]).await?.ms;
    tokio::time::sleep(LOG_SETTLE).await;
    let sync_reloads = nginx.reloads() - before;
    let live_after_sync = count_live(via_nginx, &users, &route).await;
    progress!("routes: `cm routes sync`: {sync_reloads} reloads, {live_after_sync} routes live again");

    // 20 `cm delete` processes at once.
    let before = nginx.reloads();
    let deletes = futures_util::future::join_all(users.iter().map(|u| cm.delete(u))).await;
    let delete_failed = deletes.iter().filter(|r| r.is_err()).count();
    tokio::time::sleep(LOG_SETTLE).await;
    let delete_reloads = nginx.reloads() - before;
    progress!("routes: {BURST} `cm delete` processes: {delete_reloads} reloads");

    let section = report.section("routes");
    let one = |v: usize| vec![v as f64];
    section.push(Row::new(
        format!("nginx reloads: {BURST} concurrent `cm create` processes"),
        "reloads",
        one(create_reloads),
        vec![],
    ));
    section.push(Row::new(
        format!("nginx reloads: one `cm routes sync` rewriting {BURST} routes"),
        "reloads",
        one(sync_reloads),
        vec![],
    ));
    section.push(Row::new(
        format!("nginx reloads: {BURST} concurrent `cm delete` processes"),
        "reloads",
        one(delete_reloads),
        vec![],
    ));
    section.push(Row::new(
        format!("{BURST} concurrent `cm create` processes, wall time"),
        "ms",
        vec![burst_ms],
        vec![],
    ));
    section.push(Row::new(
        format!("`cm routes sync` of {BURST} routes, wall time"),
        "ms",
        vec![sync_ms],
        vec![],
    ));
    if failed + delete_failed > 0 || live < BURST || live_after_sync < BURST {
        section.note(format!(
            "burst: {failed} creates and {delete_failed} deletes failed; {live} of {BURST} routes answered 200 after \
             the creates, {live_after_sync} after the sync"
        ));
    }

    match &bench.api_bin {
        Some(bin) => api_burst(bin, report, nginx, cm, bench, via_nginx).await,
        None => {
            report
                .section("routes")
                .note("API burst not measured: cm-api is not built");
            Ok(())
        }
    }
}

async fn api_burst(
    bin: &std::path::Path,
    report: &mut Report,
    nginx: &TestNginx,
    cm: &Cm,
    bench: &Bench,
    via_nginx: &Endpoint,
) -> anyhow::Result<()> {
    let route = |user: &str| format!("/container/{user}/{}/", kind::NAME);
    let api = ApiServer::start(bin, cm, "routes").await?;
    // Let it settle (a reconcile on start may reload nginx once).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let endpoint = Endpoint::Tcp(api.addr);
    let auth = [("Authorization", api.authorization.as_str())];
    let users: Vec<String> = (0..BURST).map(|_| bench.user()).collect();

    let before = nginx.reloads();
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
    let create_reloads = nginx.reloads() - before;
    let ok = created.iter().filter(|s| **s == Some(201)).count();
    let live = count_live(via_nginx, &users, &route).await;
    progress!("routes: {BURST} API creates: {create_reloads} reloads, {ok} answered 201, {live} routes live");

    let before = nginx.reloads();
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
    let delete_reloads = nginx.reloads() - before;
    let deleted_ok = deleted.iter().filter(|s| **s == Some(200)).count();
    progress!("routes: {BURST} API deletes: {delete_reloads} reloads, {deleted_ok} answered 200");
    api.stop().await;

    let section = report.section("routes");
    section.push(Row::new(
        format!("nginx reloads: {BURST} concurrent API creates (one cm-api)"),
        "reloads",
        vec![create_reloads as f64],
        vec![],
    ));
    section.push(Row::new(
        format!("nginx reloads: {BURST} concurrent API deletes (one cm-api)"),
        "reloads",
        vec![delete_reloads as f64],
        vec![],
    ));
    section.push(Row::new(
        format!("{BURST} concurrent API creates, wall time"),
        "ms",
        vec![create_ms],
        vec![],
    ));
    if ok < BURST || deleted_ok < BURST || live < BURST {
        section.note(format!(
            "API burst: {ok} of {BURST} creates answered 201 ({:?}), {live} routes live, {deleted_ok} deletes answered 200",
            created
        ));
    }
    Ok(())
}

/// How many of the users' routes answer 200 through nginx (each polled for up to 10 s).
async fn count_live(via_nginx: &Endpoint, users: &[String], route: &impl Fn(&str) -> String) -> usize {
    let mut live = 0;
    for user in users {
        if wait_for_200(via_nginx, &route(user), Duration::from_secs(10))
            .await
            .is_some()
        {
            live += 1;
        }
    }
    live
}
