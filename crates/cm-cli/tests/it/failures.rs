//! Bad input and failures against the real engine: refused before anything is touched, undone
//! when they happen midway, and ports leased exactly once under concurrency.

use std::collections::BTreeSet;

use crate::helpers::{World, stderr};

#[test]
fn hostile_user_ids_and_unknown_types_change_nothing() {
    let Some(world) = World::new() else { return };
    for user in ["../x", "a;b", "a b", "{a}", "a\nb", &"x".repeat(64), "-rf"] {
        let out = world.cm(&["create", "--", user, "cli_v4"]);
        assert_eq!(out.status.code(), Some(1), "{user:?}: {}", stderr(&out));
        let message = stderr(&out);
        assert!(message.contains("letters, digits"), "{message}");
        assert_eq!(message.trim_end().lines().count(), 1, "one line: {message}");
    }
    let out = world.cm(&["create", &world.env.user("x"), "no_such_type"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("configured types are cli_v4, custom, preview_server, project_dev"));
    for bad in ["--memory=lots", "--cpus=-1", "--image=a b", "--env=1X=y"] {
        let out = world.cm(&["create", &world.env.user("x"), "custom", bad]);
        assert_eq!(out.status.code(), Some(1), "{bad:?}");
    }
    assert_eq!(world.objects(), (vec![], vec![], vec![]));
    assert_eq!(world.cm_json(&["list", "--all"]), serde_json::json!([]));
}

#[test]
fn a_missing_image_leaves_no_container_volume_network_record_or_lease() {
    let Some(world) = World::new() else { return };
    let user = world.env.user("noimg");
    let out = world.cm(&["create", &user, "custom", "--image", "cm-test/does-not-exist:1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("image cm-test/does-not-exist:1 not found"),
        "{}",
        stderr(&out)
    );
    assert_eq!(world.objects(), (vec![], vec![], vec![]));
    assert_eq!(world.cm_json(&["list", "--all"]), serde_json::json!([]));
    // The lease was released: the next create gets the first port of the pool again, or the
    // first the host does not use (other tests' connections take ephemeral ports, which this
    // range overlaps, for a while).
    let spec = world.create(&user, "custom");
    let first = world.env.slot.port_range().0;
    let port = u16::try_from(spec["port"].as_u64().unwrap()).unwrap();
    let busy = |p: u16| std::net::TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, p)).is_err();
    assert!(
        port >= first && (first..port).all(busy),
        "got port {port}, though a port from {first} was free"
    );
}

#[test]
fn a_second_container_of_the_same_user_and_type_is_a_conflict() {
    let Some(world) = World::new() else { return };
    let user = world.env.user("twice");
    let first = world.create(&user, "preview_server");
    let out = world.cm(&["create", &user, "preview_server"]);
    assert_eq!(out.status.code(), Some(1));
    let message = stderr(&out);
    assert!(
        message.contains("already has a preview_server container"),
        "{message}"
    );
    assert!(
        message.contains(&first["container_id"].as_str().unwrap()[..12]),
        "{message}"
    );
}

#[test]
fn with_the_engine_unreachable_every_command_says_so_in_one_line_and_changes_nothing() {
    let Some(world) = World::new() else { return };
    let user = world.env.user("down");
    world.create(&user, "preview_server");
    let name = format!("{user}_preview_server");
    for args in [
        vec!["create", user.as_str(), "cli_v4"],
        vec!["delete", name.as_str(), "--force", "--purge"],
        vec!["stop", name.as_str()],
        vec!["get", name.as_str()],
    ] {
        let out = world
            .command(&args)
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        let message = stderr(&out);
        assert!(message.contains("docker engine is not running"), "{message}");
        assert_eq!(message.trim_end().lines().count(), 1, "{message}");
    }
    // An engine address that refuses: the message names the address tried.
    let out = world
        .command(&["stop", name.as_str()])
        .env("DOCKER_HOST", "tcp://127.0.0.1:9")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not reachable at tcp://127.0.0.1:9"),
        "{}",
        stderr(&out)
    );
    // list still answers from the store, says the statuses are stale, marks them and exits 3.
    let out = world
        .command(&["--json", "list"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("statuses are the stored ones"));
    let stored: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stored[0]["container_name"], name.as_str());
    let table = world
        .command(&["list"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert_eq!(table.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&table.stdout).contains("running (stored)"),
        "{}",
        String::from_utf8_lossy(&table.stdout)
    );
    // Nothing changed: the container still runs and its record is there.
    assert_eq!(world.cm_json(&["get", &name])["status"], "running");
    assert_eq!(world.objects().0, [name]);
}

#[test]
fn two_processes_creating_ten_containers_at_once_get_ten_distinct_ports() {
    let Some(world) = World::new() else { return };
    let users: Vec<String> = (0..10).map(|i| world.env.user(&format!("c{i}"))).collect();
    // Two workers, each running five `cm create` processes one after another: two `cm`
    // processes lease ports from the same database at any moment.
    std::thread::scope(|scope| {
        let workers: Vec<_> = users
            .chunks(5)
            .map(|batch| {
                let world = &world;
                scope.spawn(move || {
                    for user in batch {
                        world.create(user, "preview_server");
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
    });
    let all = world.cm_json(&["list", "--all"]);
    let specs = all.as_array().unwrap();
    assert_eq!(specs.len(), 10);
    let ports: BTreeSet<u64> = specs.iter().map(|s| s["port"].as_u64().unwrap()).collect();
    assert_eq!(ports.len(), 10, "ten distinct ports: {ports:?}");
    assert!(specs.iter().all(|s| s["status"] == "running"));
}

#[test]
fn without_nginx_containers_work_and_routing_says_it_is_disabled() {
    let Some(world) = World::new() else { return };
    world
        .env
        .set_config_extra("[nginx]\nbinary = \"/nonexistent/nginx\"\n");
    let user = world.env.user("nonginx");
    let out = world.cm(&["create", &user, "preview_server"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no HTTP route (HTTP exposure disabled: nginx not found"),
        "{}",
        stderr(&out)
    );
    let routes = world.cm(&["routes"]);
    assert!(routes.status.success());
    assert!(String::from_utf8_lossy(&routes.stdout).contains("routing disabled"));
    let doc = world.cm_json(&["routes"]);
    assert_eq!(doc["enabled"], false);
    assert_eq!(doc["routes"], serde_json::json!([]));
    let sync = world.cm(&["routes", "sync"]);
    assert_eq!(sync.status.code(), Some(3), "nothing pretends to succeed");
    let health = world.cm_ok(&["health"]);
    assert!(health.contains("routing   disabled"), "{health}");
    world.cm_ok(&["delete", &format!("{user}_preview_server"), "--force", "--purge"]);
}

/// `cm list | head -1` and the like: when the reader goes away, `cm` ends quietly with success
/// instead of panicking on the broken pipe (it did in 5 of 30 runs).
#[test]
fn a_reader_that_goes_away_ends_cm_quietly() {
    let Some(world) = World::new() else { return };
    for _ in 0..30 {
        let mut child = world
            .command(&["--json", "types"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Close the read end before (or while) cm writes.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let said = stderr(&out);
        assert!(!said.contains("panicked"), "{said}");
        assert_eq!(out.status.code(), Some(0), "{said}");
    }
}

/// `cm man --out DIR` writes a page per command, from the same definitions as `--help`.
#[test]
fn man_pages_cover_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("timeout")
        .args(["60", env!("CARGO_BIN_EXE_cm"), "man", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    for page in [
        "cm.1",
        "cm-create.1",
        "cm-exec.1",
        "cm-token-create.1",
        "cm-quota-set.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
        assert!(text.contains(".TH"), "{page}: {text}");
    }
    let exec = std::fs::read_to_string(dir.path().join("cm-exec.1")).unwrap();
    assert!(exec.contains("timeout"), "{exec}");
    let main = std::fs::read_to_string(dir.path().join("cm.1")).unwrap();
    assert!(main.contains("CM_API"), "the environment is documented: {main}");
}

/// `cm completions SHELL` prints a script the shell accepts (no store, no engine needed).
#[test]
fn completions_load_into_bash() {
    let script = std::process::Command::new(env!("CARGO_BIN_EXE_cm"))
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(script.status.success());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cm.bash");
    std::fs::write(&file, &script.stdout).unwrap();
    let loaded = std::process::Command::new("timeout")
        .args([
            "20",
            "bash",
            "-c",
            &format!("source {} && complete -p cm", file.display()),
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&loaded.stdout);
    assert!(
        loaded.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    assert!(said.contains("_cm") && said.trim_end().ends_with(" cm"), "{said}");
    for shell in ["zsh", "fish"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cm"))
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }
}
