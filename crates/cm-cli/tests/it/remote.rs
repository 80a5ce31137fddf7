//! `cm --api URL`: the same commands through a real cm-api, with the same output and exit codes,
//! and a user token that reaches only its own containers.
//!
//! The cm-api binary is the workspace's own, beside `cm` in the target directory (`cargo test
//! --workspace` builds it).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{World, stderr};

/// A cm-api process serving a test world's database and engine.
struct Api {
    child: Child,
    url: String,
    admin: String,
}

impl Api {
    fn start(world: &World) -> Api {
        let binary = PathBuf::from(env!("CARGO_BIN_EXE_cm")).with_file_name("cm-api");
        assert!(
            binary.exists(),
            "{} is missing: run the tests with `cargo test --workspace` (or `cargo build -p cm-api` first)",
            binary.display()
        );
        let admin = format!("remote-admin-key-{}", world.env.run);
        let mut child = Command::new(binary)
            .envs(world.env.vars())
            .env("CONTAINER_ADMIN_KEY", &admin)
            // Port 0: the kernel picks a free port, and cm-api says which.
            .env("CM_LISTEN", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pipe = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut api = Api {
            child,
            url: String::new(),
            admin,
        };
        let mut seen = String::new();
        while api.url.is_empty() {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("cm-api did not start: {seen}"));
            if let Some(rest) = line.split("serving on ").nth(1) {
                api.url = rest.split_whitespace().next().unwrap().to_owned();
            }
            seen.push_str(&line);
            seen.push('\n');
        }
        api
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cm --api URL args...` with `token`. The process gets no database and a dead engine
/// address: whatever it shows came through the API.
fn remote(world: &World, api: &Api, token: &str, args: &[&str]) -> Output {
    let mut command = world.command(&[]);
    command
        .env("CM_API", &api.url)
        .env("CM_TOKEN", token)
        .env("CM_DB", world.env.path().join("no-such-dir/remote.db"))
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args(args);
    command.output().unwrap()
}

fn remote_ok(world: &World, api: &Api, token: &str, args: &[&str]) -> String {
    let out = remote(world, api, token, args);
    assert!(
        out.status.success(),
        "cm --api {args:?} failed ({:?}): {}",
        out.status.code(),
        stderr(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn remote_json(world: &World, api: &Api, token: &str, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&remote_ok(world, api, token, &all)).unwrap()
}

#[test]
fn the_cli_through_cm_api_prints_what_it_prints_locally() {
    let Some(world) = World::new() else { return };
    let api = Api::start(&world);
    let admin = api.admin.clone();
    let alice = world.env.user("ralice");
    let name = format!("{alice}_custom");

    // Create remotely; the container is there for the local cm too.
    let created = remote_json(
        &world,
        &api,
        &admin,
        &[
            "create",
            &alice,
            "custom",
            "--env",
            "API_TOKEN=hidden-value",
            "--env",
            "MOTTO=hi",
        ],
    );
    assert_eq!(created["container_name"], name.as_str());
    assert_eq!(
        world.cm_json(&["get", &name])["container_id"],
        created["container_id"]
    );

    // cm-api's statuses come from the engine's event feed: wait until it has seen the start
    // (it usually has at once) before comparing with the local cm, which asks the engine.
    assert!(cm_testkit::wait_until(Duration::from_secs(30), || {
        remote_json(&world, &api, &admin, &["get", &name])["status"] == "running"
    }));
    // The same answers both ways: list, get (secrets hidden both ways), types, stats' shape.
    for args in [
        vec!["list", "--all"],
        vec!["list", alice.as_str()],
        vec!["get", name.as_str()],
        vec!["get", alice.as_str()],
        vec!["ssh-keys", name.as_str()],
        vec!["quota", "show", alice.as_str()],
    ] {
        let mut local_args = vec!["--json"];
        local_args.extend_from_slice(&args);
        let local: Value = serde_json::from_str(&world.cm_ok(&local_args)).unwrap();
        let through = remote_json(&world, &api, &admin, &args);
        assert_eq!(steady(local), steady(through), "cm {args:?}");
        assert_eq!(
            steady_lines(&world.cm_ok(&args)),
            steady_lines(&remote_ok(&world, &api, &admin, &args)),
            "table of cm {args:?}"
        );
    }
    assert_eq!(
        remote_json(&world, &api, &admin, &["get", &name])["env"]["API_TOKEN"],
        "***"
    );
    let refused = remote(&world, &api, &admin, &["get", &name, "--show-secrets"]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("only on the host"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        remote_ok(&world, &api, &admin, &["types"]).lines().next(),
        world.cm_ok(&["types"]).lines().next()
    );
    let stats = remote_json(&world, &api, &admin, &["stats", &name]);
    assert!(stats["memory_bytes"].as_u64().unwrap() > 0, "{stats}");

    // exec: both forms, exit codes, the time limit (exit 4).
    let words = remote(
        &world,
        &api,
        &admin,
        &["exec", &name, "printf", "%s|", "a b", "-n"],
    );
    assert_eq!(
        String::from_utf8_lossy(&words.stdout),
        "a b|-n|",
        "{}",
        stderr(&words)
    );
    let failed = remote(
        &world,
        &api,
        &admin,
        &["exec", &name, "sh -c 'echo oops >&2; exit 3'"],
    );
    assert_eq!(failed.status.code(), Some(3));
    assert!(stderr(&failed).contains("oops"));
    let slow = remote(
        &world,
        &api,
        &admin,
        &["exec", "--timeout", "1", &name, "sleep", "30"],
    );
    assert_eq!(slow.status.code(), Some(4), "{}", stderr(&slow));

    // Logs with time stamps, through the API.
    assert!(crate::helpers::wait_for_http(crate::helpers::port_of(&created)));
    let logs = remote_ok(
        &world,
        &api,
        &admin,
        &["logs", &name, "--tail", "5", "--timestamps"],
    );
    let first = logs.split_whitespace().next().unwrap_or_default();
    assert!(
        humantime::parse_rfc3339_weak(first.get(..19).unwrap_or_default()).is_ok(),
        "{logs}"
    );

    // Lifecycle and quotas.
    let stopped = remote_json(&world, &api, &admin, &["stop", &name]);
    assert_eq!(stopped["status"], "exited");
    assert_eq!(world.cm_json(&["get", &name])["status"], "exited");
    assert_eq!(
        remote_json(&world, &api, &admin, &["start", &name])["status"],
        "running"
    );
    let quota = remote_json(
        &world,
        &api,
        &admin,
        &["quota", "set", &alice, "--containers", "3", "--memory", "3g"],
    );
    assert_eq!(quota["limits"]["containers"], 3);
    assert_eq!(
        world.cm_json(&["quota", "show", &alice])["limits"]["memory"],
        quota["limits"]["memory"]
    );

    // A user token: its own containers only; admin-only commands (such as purging data) refused
    // with exit 1.
    let token_line = remote_ok(&world, &api, &admin, &["token", "create", &alice]);
    let alice_token = token_line.trim().to_owned();
    let bob = world.env.user("rbob");
    world.create(&bob, "preview_server");
    let seen = remote_json(&world, &api, &alice_token, &["list"]);
    let names: Vec<&str> = seen
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["container_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [name.as_str()]);
    let foreign = remote(
        &world,
        &api,
        &alice_token,
        &["get", &format!("{bob}_preview_server")],
    );
    assert_eq!(foreign.status.code(), Some(1), "{}", stderr(&foreign));
    let delete = remote(
        &world,
        &api,
        &alice_token,
        &["delete", &name, "--force", "--purge"],
    );
    assert_eq!(delete.status.code(), Some(1), "{}", stderr(&delete));
    assert!(stderr(&delete).starts_with("error: "), "{}", stderr(&delete));
    let tokens = remote_json(&world, &api, &admin, &["token", "list"]);
    assert_eq!(tokens, world.cm_json(&["token", "list"]));
    assert!(
        !tokens.to_string().contains(&alice_token),
        "no secret in a listing"
    );

    // Host-only commands say so; a wrong credential is 1; an unreachable API is 3, naming it.
    let host_only = remote(&world, &api, &admin, &["volumes"]);
    assert_eq!(host_only.status.code(), Some(2));
    assert!(
        stderr(&host_only).contains("run it there"),
        "{}",
        stderr(&host_only)
    );
    let wrong = remote(&world, &api, "not-the-key", &["list", "--all"]);
    assert_eq!(wrong.status.code(), Some(1), "{}", stderr(&wrong));
    let health = remote_ok(&world, &api, &admin, &["health"]);
    assert!(health.starts_with("engine    ok"), "{health}");

    // Delete through the API; revoke; the token stops working.
    let deleted = remote_json(&world, &api, &admin, &["delete", &name, "--force", "--purge"]);
    assert_eq!(deleted["deleted"], name.as_str());
    assert_eq!(
        remote_json(&world, &api, &admin, &["token", "revoke", &alice])["revoked"],
        1
    );
    let revoked = remote(&world, &api, &alice_token, &["list"]);
    assert_eq!(revoked.status.code(), Some(1));
    drop(api);
    let gone = world
        .command(&["--api", "http://127.0.0.1:9", "--token", "x", "list"])
        .output()
        .unwrap();
    assert_eq!(gone.status.code(), Some(3), "{}", stderr(&gone));
    assert!(stderr(&gone).contains("127.0.0.1:9"), "{}", stderr(&gone));
}

/// The same container created at once by a local `cm` and through cm-api (another process on
/// the same database): one wins, the other is refused, and the store and the engine agree.
#[test]
fn a_local_and_a_remote_create_of_the_same_container_at_once_make_one() {
    let Some(world) = World::new() else { return };
    let api = Api::start(&world);
    let user = world.env.user("both");
    let name = format!("{user}_preview_server");
    for round in 0..3 {
        let remote_create = crate::races::words(&[
            "--api",
            &api.url,
            "--token",
            &api.admin,
            "--json",
            "create",
            &user,
            "preview_server",
        ]);
        let local_create = crate::races::words(&["--json", "create", &user, "preview_server"]);
        let outs = crate::races::at_once(&world, &[remote_create, local_create]);
        let codes: Vec<Option<i32>> = outs.iter().map(|o| o.status.code()).collect();
        assert_eq!(
            codes.iter().filter(|c| **c == Some(0)).count(),
            1,
            "round {round}: one wins: {codes:?} {}",
            outs.iter().map(stderr).collect::<Vec<_>>().join(" | ")
        );
        assert!(
            codes.contains(&Some(1)),
            "round {round}: the other is refused: {codes:?}"
        );
        crate::races::assert_consistent(&world);
        world.cm_ok(&["delete", &name, "--force", "--purge"]);
    }
    assert_eq!(world.objects(), (vec![], vec![], vec![]));
}

/// A `cm get` answer without what changes from one moment to the next (its health's uptime,
/// CPU and memory use, samples); the health's other fields stay compared.
fn steady(mut value: Value) -> Value {
    if let Some(health) = value.get_mut("health").and_then(Value::as_object_mut) {
        for moving in ["uptime_seconds", "cpu_percent", "memory_bytes", "history"] {
            assert!(moving == "history" || health.contains_key(moving), "{moving}");
            health.remove(moving);
        }
    }
    value
}

/// `cm get`'s lines without those that change from one moment to the next.
fn steady_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !["uptime ", "cpu ", "memory "].iter().any(|p| l.starts_with(p)))
        .collect()
}
