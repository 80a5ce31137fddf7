//! HTTP exposure end to end: `cm` against the real engine and a real nginx of the test's own
//! (`cm_testkit::nginx::TestNginx`: unprivileged, its own prefix, port and box directories). The
//! world's `[nginx]` section points `cm` at that nginx, so routes, reloads and the error log are
//! the test's alone.
//!
//! Readiness is polled (a container's server starting, a reload going live); no assertion is
//! about timing.

use std::fs;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use cm_core::{Route, TypeName, UserId};
use cm_testkit::http::{self, Response};
use cm_testkit::nginx::TestNginx;
use cm_testkit::wait_until;
use serde_json::Value;

use crate::helpers::{World, port_of, stderr, wait_for_http};

/// How long a route may take to give the expected answer (a container's server starting).
const READY: Duration = Duration::from_secs(60);
/// What `cm create` prints when the container runs but nginx refused its route.
const ROUTE_REFUSED: &str = "warning: the container runs but its route was refused by nginx";

/// Starts the test's nginx and points the world's `cm` at it; `None` after a loud skip line when
/// nginx is missing outside CI.
fn nginx_for(world: &World, test: &str) -> Option<TestNginx> {
    let nginx = TestNginx::start(test, &cm_nginx::render_map_snippet())?;
    world.env.set_config_extra(&nginx.config_toml());
    Some(nginx)
}

/// `/container/{user}/{kind}`.
fn prefix(user: &str, kind: &str) -> String {
    format!("/container/{user}/{kind}")
}

/// The route file's name, as in `box-available/` and `box-enabled/`.
fn route_file(user: &str, kind: &str) -> String {
    format!("container-{user}-{kind}.conf")
}

/// `cm create user kind`, which must succeed; returns the output (stderr carries route warnings).
fn create(world: &World, user: &str, kind: &str) -> Output {
    let out = world.cm(&["create", user, kind]);
    assert!(
        out.status.success(),
        "cm create {user} {kind} failed ({:?}): {}",
        out.status.code(),
        stderr(&out)
    );
    out
}

/// `cm create user kind` with its route live (no warning).
fn create_routed(world: &World, user: &str, kind: &str) {
    let out = create(world, user, kind);
    let err = stderr(&out);
    assert!(!err.contains("warning"), "cm create {user} {kind}: {err}");
}

/// The last lines of nginx's error log, for failure messages.
fn log_tail(nginx: &TestNginx) -> String {
    let text = nginx.error_log_text();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// GETs `path` through nginx until it answers `status` (or `READY` passes); asserts and returns
/// that answer.
fn get_until(nginx: &TestNginx, path: &str, status: u16) -> Response {
    let mut last: Option<Response> = None;
    wait_until(READY, || {
        last = http::get(nginx.port, path, &[]).ok();
        last.as_ref().is_some_and(|r| r.status == status)
    });
    let last = last.unwrap_or_else(|| panic!("nginx did not answer {path}:\n{}", log_tail(nginx)));
    assert_eq!(
        last.status,
        status,
        "{path}: {last:?}\nnginx error log:\n{}",
        log_tail(nginx)
    );
    last
}

/// GETs `{prefix}/something` through nginx until it answers 200, and checks that the container of
/// `user` and `kind` answered, with the prefix stripped and announced.
fn assert_routed(nginx: &TestNginx, user: &str, kind: &str) {
    let prefix = prefix(user, kind);
    let answer = get_until(nginx, &format!("{prefix}/something"), 200);
    let info: Value =
        serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{prefix}: not JSON ({e}): {answer:?}"));
    assert_eq!(info["user_id"], user, "{prefix}: {info}");
    assert_eq!(info["container_type"], kind, "{prefix}: {info}");
    assert_eq!(info["path"], "/something", "{prefix}: the prefix is stripped");
    assert_eq!(info["x_forwarded_prefix"], prefix.as_str(), "{prefix}: {info}");
}

/// One row of `cm --json routes`: `(user, kind, state, detail)`.
type RouteRow = (String, String, String, String);

/// The routes of a `cm --json routes` (or `routes sync`) document, which must say routing is on.
fn route_rows(doc: &Value) -> Vec<RouteRow> {
    assert_eq!(doc["enabled"], true, "{doc}");
    doc["routes"]
        .as_array()
        .unwrap_or_else(|| panic!("no routes array: {doc}"))
        .iter()
        .map(|r| {
            // A row is flat: {"user", "kind", "port", "state", "detail"?}.
            let state = r["state"].as_str().unwrap_or_default().to_owned();
            let detail = r["detail"].as_str().unwrap_or_default().to_owned();
            (
                r["user"].as_str().unwrap_or_default().to_owned(),
                r["kind"].as_str().unwrap_or_default().to_owned(),
                state,
                detail,
            )
        })
        .collect()
}

/// `cm --json routes`.
fn routes(world: &World) -> Vec<RouteRow> {
    route_rows(&world.cm_json(&["routes"]))
}

/// `(user, kind, state)` of the rows, for comparing when the details do not matter.
fn states(rows: &[RouteRow]) -> Vec<(String, String, String)> {
    rows.iter()
        .map(|(u, k, s, _)| (u.clone(), k.clone(), s.clone()))
        .collect()
}

fn row(user: &str, kind: &str, state: &str) -> (String, String, String) {
    (user.to_owned(), kind.to_owned(), state.to_owned())
}

#[test]
fn get_through_nginx_reaches_the_right_container_for_two_users_and_two_types() {
    let Some(world) = World::new() else { return };
    let Some(nginx) = nginx_for(
        &world,
        "get_through_nginx_reaches_the_right_container_for_two_users_and_two_types",
    ) else {
        return;
    };
    // Two types of the echo app (the seed's `custom`, and one more of the same image).
    world.env.set_config_extra(&format!(
        "{}[types.web]\nimage = \"toolboxv2:latest\"\n",
        nginx.config_toml()
    ));
    let users = [world.env.user("alice"), world.env.user("bob")];
    let kinds = ["custom", "web"];
    for user in &users {
        for kind in kinds {
            create_routed(&world, user, kind);
        }
    }

    for user in &users {
        for kind in kinds {
            assert_routed(&nginx, user, kind);
            // The bare prefix redirects to the slash form.
            let prefix = prefix(user, kind);
            let bare = http::get(nginx.port, &prefix, &[]).unwrap();
            assert_eq!(bare.status, 301, "{prefix}: {bare:?}");
            let location = bare.header("location").unwrap_or_default();
            assert!(location.ends_with(&format!("{prefix}/")), "{prefix}: {location}");
        }
    }
    let stranger = prefix(&world.env.user("carol"), "custom");
    assert_eq!(http::status(nginx.port, &format!("{stranger}/")), 404);

    let expected: Vec<_> = users
        .iter()
        .flat_map(|u| kinds.map(|k| row(u, k, "active")))
        .collect();
    assert_eq!(states(&routes(&world)), expected);
}

#[test]
fn a_websocket_echo_works_through_nginx() {
    let Some(world) = World::new() else { return };
    let Some(nginx) = nginx_for(&world, "a_websocket_echo_works_through_nginx") else {
        return;
    };
    let user = world.env.user("ws");
    create_routed(&world, &user, "custom");
    assert_routed(&nginx, &user, "custom");

    let path = format!("{}/ws", prefix(&user, "custom"));
    let echoed = http::websocket_echo(nginx.port, &path, "hello through nginx");
    assert_eq!(
        echoed.as_deref(),
        Ok("hello through nginx"),
        "nginx error log:\n{}",
        log_tail(&nginx)
    );
}

#[test]
fn delete_answers_404_through_nginx_and_leaves_the_other_routes() {
    let Some(world) = World::new() else { return };
    let Some(nginx) = nginx_for(
        &world,
        "delete_answers_404_through_nginx_and_leaves_the_other_routes",
    ) else {
        return;
    };
    let (a, b) = (world.env.user("alice"), world.env.user("bob"));
    let kind = "custom";
    create_routed(&world, &a, kind);
    create_routed(&world, &b, kind);
    assert_routed(&nginx, &a, kind);
    assert_routed(&nginx, &b, kind);
    assert_eq!(
        states(&routes(&world)),
        [row(&a, kind, "active"), row(&b, kind, "active")]
    );

    world.cm_ok(&["delete", &format!("{a}_{kind}"), "--force"]);
    get_until(&nginx, &format!("{}/something", prefix(&a, kind)), 404);
    assert_eq!(
        http::status(nginx.port, &prefix(&a, kind)),
        404,
        "the redirect is gone too"
    );
    assert!(!nginx.available_dir.join(route_file(&a, kind)).exists());
    assert!(fs::symlink_metadata(nginx.enabled_dir.join(route_file(&a, kind))).is_err());
    assert_routed(&nginx, &b, kind);

    // `cm routes` knows only b's route now, in the table and in JSON.
    let table = world.cm_ok(&["routes"]);
    assert!(table.starts_with("PATH"), "{table}");
    let b_line = table
        .lines()
        .find(|l| l.contains(&format!("{}/", prefix(&b, kind))))
        .unwrap_or_else(|| panic!("no route of {b}: {table}"));
    assert!(b_line.contains("active"), "{table}");
    assert!(!table.contains(&prefix(&a, kind)), "{table}");
    let doc = world.cm_json(&["routes"]);
    assert_eq!(states(&route_rows(&doc)), [row(&b, kind, "active")]);
    let port = world.cm_json(&["get", &format!("{b}_{kind}")])["port"].clone();
    assert_eq!(doc["routes"][0]["port"], port, "{doc}");
}

#[test]
fn a_stopped_container_answers_502_through_nginx_until_it_starts() {
    let Some(world) = World::new() else { return };
    let Some(nginx) = nginx_for(
        &world,
        "a_stopped_container_answers_502_through_nginx_until_it_starts",
    ) else {
        return;
    };
    let (a, b) = (world.env.user("alice"), world.env.user("bob"));
    let kind = "custom";
    create_routed(&world, &a, kind);
    create_routed(&world, &b, kind);
    assert_routed(&nginx, &a, kind);

    let name = format!("{a}_{kind}");
    world.cm_ok(&["stop", &name]);
    get_until(&nginx, &format!("{}/something", prefix(&a, kind)), 502);
    assert_routed(&nginx, &b, kind);
    // The route stays while the container is stopped.
    assert!(nginx.available_dir.join(route_file(&a, kind)).exists());
    assert_eq!(
        states(&routes(&world)),
        [row(&a, kind, "active"), row(&b, kind, "active")]
    );

    world.cm_ok(&["start", &name]);
    assert_routed(&nginx, &a, kind);
}

#[test]
fn a_route_nginx_refuses_is_rolled_back_and_the_others_keep_serving() {
    let Some(world) = World::new() else { return };
    let Some(nginx) = nginx_for(
        &world,
        "a_route_nginx_refuses_is_rolled_back_and_the_others_keep_serving",
    ) else {
        return;
    };
    let (a, b) = (world.env.user("alice"), world.env.user("bob"));
    let kind = "custom";
    create_routed(&world, &a, kind);
    assert_routed(&nginx, &a, kind);

    // The operator claimed b's path by hand, in a file of their own that nginx includes.
    let operator = nginx.enabled_dir.join("legacy-operator.conf");
    fs::write(
        &operator,
        format!("location {}/ {{ return 418; }}\n", prefix(&b, kind)),
    )
    .unwrap();
    let reloads = nginx.reloads();
    let out = create(&world, &b, kind);
    let err = stderr(&out);
    assert!(err.contains(ROUTE_REFUSED), "{err}");
    assert!(
        err.contains(&format!("duplicate location \"{}/\"", prefix(&b, kind))),
        "nginx's own message: {err}"
    );
    assert_eq!(
        nginx.reloads(),
        reloads,
        "nginx is never reloaded with a refused file"
    );
    assert!(!nginx.available_dir.join(route_file(&b, kind)).exists());
    assert!(fs::symlink_metadata(nginx.enabled_dir.join(route_file(&b, kind))).is_err());

    // The container runs and answers on its own port.
    let spec = world.cm_json(&["get", &format!("{b}_{kind}")]);
    assert_eq!(spec["status"], "running");
    assert!(wait_for_http(port_of(&spec)));
    // The last good configuration keeps serving: a's route works, b has none (not even the
    // operator's 418, which was never loaded).
    assert_routed(&nginx, &a, kind);
    assert_eq!(
        http::status(nginx.port, &format!("{}/something", prefix(&b, kind))),
        404
    );
    let rows = routes(&world);
    assert_eq!(states(&rows), [row(&a, kind, "active"), row(&b, kind, "failed")]);
    assert!(rows[1].3.contains("duplicate location"), "{rows:?}");
    let table = world.cm_ok(&["routes"]);
    assert!(
        table
            .lines()
            .any(|l| l.contains(&prefix(&b, kind)) && l.contains("failed") && l.contains("duplicate")),
        "{table}"
    );

    // Once the operator's file is gone, a sync routes b.
    fs::remove_file(&operator).unwrap();
    let synced = route_rows(&world.cm_json(&["routes", "sync"]));
    assert_eq!(
        states(&synced),
        [row(&a, kind, "active"), row(&b, kind, "active")]
    );
    assert_routed(&nginx, &b, kind);
    assert_routed(&nginx, &a, kind);
}

#[test]
fn a_hand_broken_route_file_blocks_nothing_live_and_sync_re_renders_it() {
    let Some(world) = World::new() else { return };
    let Some(nginx) = nginx_for(
        &world,
        "a_hand_broken_route_file_blocks_nothing_live_and_sync_re_renders_it",
    ) else {
        return;
    };
    let (a, b, c) = (
        world.env.user("alice"),
        world.env.user("bob"),
        world.env.user("carol"),
    );
    let kind = "custom";
    create_routed(&world, &a, kind);
    create_routed(&world, &b, kind);
    assert_routed(&nginx, &a, kind);

    // Someone edits a's route file by hand and breaks it (the link stays).
    let file = nginx.available_dir.join(route_file(&a, kind));
    let good = fs::read_to_string(&file).unwrap();
    fs::write(
        &file,
        format!(
            "location {}/ {{ proxy_pass http://127.0.0.1:1/ \n",
            prefix(&a, kind)
        ),
    )
    .unwrap();
    assert!(nginx.test_config().is_err(), "the file is really broken");

    // A change now is not applied, and says which file breaks nginx's configuration; nothing is
    // reloaded, so the live configuration keeps serving a and b.
    let reloads = nginx.reloads();
    let out = create(&world, &c, kind);
    let err = stderr(&out);
    assert!(err.contains(ROUTE_REFUSED), "{err}");
    assert!(
        err.contains(&route_file(&a, kind)),
        "names the broken file: {err}"
    );
    assert_eq!(nginx.reloads(), reloads);
    assert_routed(&nginx, &a, kind);
    assert_routed(&nginx, &b, kind);
    assert_eq!(
        http::status(nginx.port, &format!("{}/something", prefix(&c, kind))),
        404
    );

    // `cm routes sync` re-renders a's file from the store and applies c's route: one reload.
    let synced = route_rows(&world.cm_json(&["routes", "sync"]));
    assert_eq!(
        states(&synced),
        [
            row(&a, kind, "active"),
            row(&b, kind, "active"),
            row(&c, kind, "active")
        ]
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), good, "the file is fixed");
    assert_eq!(nginx.reloads(), reloads + 1);
    assert!(nginx.test_config().is_ok());
    for user in [&a, &b, &c] {
        assert_routed(&nginx, user, kind);
    }
}

#[test]
fn a_burst_of_20_route_changes_reloads_nginx_a_bounded_number_of_times() {
    let Some(world) = World::new() else { return };
    let Some(nginx) = nginx_for(
        &world,
        "a_burst_of_20_route_changes_reloads_nginx_a_bounded_number_of_times",
    ) else {
        return;
    };
    let kind = "custom";
    let users: Vec<String> = (0..10).map(|i| world.env.user(&format!("burst{i}"))).collect();
    let world = &world;

    // 10 creates from 2 concurrent workers: 10 `cm` processes, at most 2 at a time. Each process
    // batches its own changes, and processes share reloads through the ledger in box-available
    // (a process whose change a later reload covered skips its own), so the bound is one reload
    // per process at most; how many are shared depends on how the creates overlap in time.
    let before = nginx.reloads();
    std::thread::scope(|s| {
        for half in users.chunks(5) {
            s.spawn(move || {
                for user in half {
                    create_routed(world, user, kind);
                }
            });
        }
    });
    let create_reloads = nginx.reloads() - before;
    eprintln!("reloads for 10 creates from 2 concurrent `cm` workers: {create_reloads}");
    assert!(
        (1..=users.len()).contains(&create_reloads),
        "{create_reloads} reloads for {} creates",
        users.len()
    );
    for user in &users {
        assert_routed(&nginx, user, kind);
    }

    // 20 changes in one `cm` process: the box directories lost the 10 routes (a restore from an
    // old backup, say) and hold 10 routes of containers that no longer exist. `cm routes sync`
    // writes 10 and removes 10 in one batch, validated by one `nginx -t` and live after one
    // reload. A sync is one request, so one batch and one reload (measured: 1); the assertion
    // uses the "at most a few" (6) rather than pinning the engine's exact batching.
    for user in &users {
        fs::remove_file(nginx.available_dir.join(route_file(user, kind))).unwrap();
        fs::remove_file(nginx.enabled_dir.join(route_file(user, kind))).unwrap();
    }
    let ghosts: Vec<String> = (0..10).map(|i| world.env.user(&format!("ghost{i}"))).collect();
    for ghost in &ghosts {
        plant_route(&nginx, ghost, kind);
    }
    let rows = routes(world);
    assert_eq!(rows.iter().filter(|r| r.2 == "missing").count(), 10, "{rows:?}");
    assert_eq!(rows.iter().filter(|r| r.2 == "orphaned").count(), 10, "{rows:?}");
    let before = nginx.reloads();
    let synced = route_rows(&world.cm_json(&["routes", "sync"]));
    let sync_reloads = nginx.reloads() - before;
    eprintln!("reloads for 20 route changes in one `cm routes sync`: {sync_reloads}");
    assert!((1..=6).contains(&sync_reloads), "{sync_reloads} reloads");
    let expected: Vec<_> = users.iter().map(|u| row(u, kind, "active")).collect();
    assert_eq!(states(&synced), expected);
    for user in &users {
        assert_routed(&nginx, user, kind);
    }

    // 10 deletes at once: 10 `cm` processes in one burst. Their route removals land within a
    // few debounce windows of each other, so they share reloads through the ledger.
    let before = nginx.reloads();
    std::thread::scope(|s| {
        for user in &users {
            s.spawn(move || world.cm_ok(&["delete", &format!("{user}_{kind}"), "--force"]));
        }
    });
    let delete_reloads = nginx.reloads() - before;
    eprintln!("reloads for 10 deletes from 10 concurrent `cm` processes: {delete_reloads}");
    assert!(
        (1..users.len()).contains(&delete_reloads),
        "{delete_reloads} reloads for {} concurrent deletes: fewer than one each",
        users.len()
    );
    for user in &users {
        get_until(&nginx, &format!("{}/something", prefix(user, kind)), 404);
    }
    assert_eq!(routes(world), []);
}

#[test]
fn sync_brings_back_a_deleted_route_file_and_removes_orphans() {
    let Some(world) = World::new() else { return };
    let Some(nginx) = nginx_for(
        &world,
        "sync_brings_back_a_deleted_route_file_and_removes_orphans",
    ) else {
        return;
    };
    let (a, b) = (world.env.user("alice"), world.env.user("bob"));
    let kind = "custom";
    create_routed(&world, &a, kind);
    create_routed(&world, &b, kind);
    assert_routed(&nginx, &a, kind);
    let file = nginx.available_dir.join(route_file(&a, kind));
    let good = fs::read_to_string(&file).unwrap();

    // a's route file is deleted by hand (its link dangles), and a route of a user without a
    // container appears.
    fs::remove_file(&file).unwrap();
    let ghost = world.env.user("ghost");
    let (ghost_file, ghost_link) = plant_route(&nginx, &ghost, kind);
    let rows = routes(&world);
    assert_eq!(
        states(&rows),
        [
            row(&a, kind, "missing"),
            row(&b, kind, "active"),
            row(&ghost, kind, "orphaned")
        ]
    );
    let table = world.cm_ok(&["routes"]);
    for (user, state) in [(&a, "missing"), (&b, "active"), (&ghost, "orphaned")] {
        assert!(
            table
                .lines()
                .any(|l| l.contains(&prefix(user, kind)) && l.contains(state)),
            "{user} {state}: {table}"
        );
    }

    let reloads = nginx.reloads();
    let synced = route_rows(&world.cm_json(&["routes", "sync"]));
    assert_eq!(
        states(&synced),
        [row(&a, kind, "active"), row(&b, kind, "active")]
    );
    assert_eq!(nginx.reloads(), reloads + 1, "one reload for the sync");
    assert_eq!(fs::read_to_string(&file).unwrap(), good, "a's file is back");
    assert_eq!(
        fs::read_link(nginx.enabled_dir.join(route_file(&a, kind)))
            .ok()
            .and_then(|target| fs::read_to_string(nginx.enabled_dir.join(target)).ok()),
        Some(good),
        "its link resolves to it"
    );
    assert!(!ghost_file.exists());
    assert!(fs::symlink_metadata(&ghost_link).is_err());
    assert_eq!(states(&routes(&world)), states(&synced));
    assert_routed(&nginx, &a, kind);
    assert_routed(&nginx, &b, kind);
    assert_eq!(
        http::status(nginx.port, &format!("{}/something", prefix(&ghost, kind))),
        404
    );
}

/// Writes a valid route file for `user` (who has no container) and links it, as a leftover would
/// be; returns the file and the link.
fn plant_route(nginx: &TestNginx, user: &str, kind: &str) -> (PathBuf, PathBuf) {
    let route = Route {
        user: UserId::parse(user).unwrap(),
        kind: TypeName::parse(kind).unwrap(),
        port: 1,
        strip_prefix: true,
    };
    let name = cm_nginx::route_file_name(&route.user, &route.kind);
    let file = nginx.available_dir.join(&name);
    let link = nginx.enabled_dir.join(&name);
    fs::write(&file, cm_nginx::render_route(&route).unwrap()).unwrap();
    std::os::unix::fs::symlink(&file, &link).unwrap();
    (file, link)
}
