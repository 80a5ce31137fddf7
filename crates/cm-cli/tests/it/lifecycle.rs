//! The life of a container on the real engine: create, inspect, reach, exec, logs, restart,
//! crash, delete, re-create.

use std::time::Duration;

use cm_testkit::{docker_ok, wait_until};

use crate::helpers::{World, http_get, port_of, stderr, wait_for_http};

#[test]
fn create_sets_labels_limits_restart_policy_network_and_a_loopback_binding() {
    let Some(world) = World::new() else { return };
    let user = world.env.user("alice");
    let spec = world.create(&user, "cli_v4");
    let name = format!("{user}_cli_v4");
    assert_eq!(spec["container_name"], name);
    assert_eq!(spec["status"], "running");

    let c = world.inspect(&name);
    let labels = &c["Config"]["Labels"];
    assert_eq!(labels["managed-by"], "ContainerManager");
    assert_eq!(labels["user-id"], user.as_str());
    assert_eq!(labels["container-type"], "cli_v4");
    assert_eq!(labels["port"], spec["port"].to_string().as_str());
    assert_eq!(labels["ssh-port"], spec["ssh_port"].to_string().as_str());
    let host = &c["HostConfig"];
    assert_eq!(host["Memory"], 512 * 1024 * 1024);
    assert_eq!(host["NanoCpus"], 1_000_000_000);
    assert_eq!(host["PidsLimit"], 512);
    assert_eq!(host["RestartPolicy"]["Name"], "unless-stopped");
    assert_eq!(host["NetworkMode"], format!("cm-user-{user}").as_str());
    assert_eq!(host["CapDrop"][0], "ALL");
    assert_eq!(host["SecurityOpt"][0], "no-new-privileges:true");
    assert_eq!(host["LogConfig"]["Type"], "json-file");
    assert_eq!(
        host["LogConfig"]["Config"]["max-size"],
        (10 << 20).to_string().as_str()
    );
    assert_eq!(host["LogConfig"]["Config"]["max-file"], "3");
    let http = &host["PortBindings"]["8080/tcp"][0];
    assert_eq!(http["HostIp"], "127.0.0.1");
    assert_eq!(http["HostPort"], spec["port"].to_string().as_str());
    assert_eq!(c["Mounts"][0]["Name"], format!("{user}_cli_v4_data").as_str());
    assert_eq!(c["Mounts"][0]["Destination"], "/data");
    let env: Vec<&str> = c["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for expected in [
        format!("USER_ID={user}"),
        "CONTAINER_TYPE=cli_v4".to_owned(),
        "PORT=8080".to_owned(),
        format!("BASE_PATH=/container/{user}/cli_v4/"),
    ] {
        assert!(env.contains(&expected.as_str()), "{expected} in {env:?}");
    }
    let network = docker_ok(&[
        "network",
        "inspect",
        &format!("cm-user-{user}"),
        "--format",
        "{{json .Labels}}",
    ]);
    assert!(
        network.contains("\"managed-by\":\"ContainerManager\""),
        "{network}"
    );

    // Reachable over its port, on loopback.
    let port = port_of(&spec);
    assert!(
        wait_for_http(port),
        "the container never answered on 127.0.0.1:{port}"
    );
    let (status, body) = http_get(port, "/hello").unwrap();
    assert_eq!(status, 200);
    assert!(body.contains(&user), "{body}");
}

#[test]
fn exec_passes_exit_codes_and_enforces_its_timeout_and_logs_tail() {
    let Some(world) = World::new() else { return };
    let user = world.env.user("exec");
    world.create(&user, "custom");
    let name = format!("{user}_custom");

    let ok = world.cm(&["exec", &name, "echo hello"]);
    assert_eq!(ok.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "hello\n");
    let three = world.cm(&["exec", &name, "sh -c 'echo to-stderr >&2; exit 3'"]);
    assert_eq!(three.status.code(), Some(3));
    assert!(stderr(&three).contains("to-stderr"));
    // The words as given, as with `docker exec` (with or without `--`): no splitting, no shell.
    let words = world.cm(&["exec", &name, "printf", "%s|", "a b", "-n"]);
    assert_eq!(
        String::from_utf8_lossy(&words.stdout),
        "a b|-n|",
        "{}",
        stderr(&words)
    );
    let dashed = world.cm_ok(&["exec", &name, "--", "sh", "-c", "echo $((6*7))"]);
    assert_eq!(dashed, "42\n");
    let missing = world.cm(&["exec", &name, "no-such-program"]);
    assert_eq!(missing.status.code(), Some(127), "{}", stderr(&missing));

    let slow = world.cm(&["exec", "--timeout", "2", &name, "sleep 60"]);
    assert_eq!(
        slow.status.code(),
        Some(4),
        "timeout exit code: {}",
        stderr(&slow)
    );
    assert!(stderr(&slow).contains("did not finish within 2 seconds"));
    let still_sleeping = world.cm_ok(&[
        "exec",
        &name,
        "sh -c 'ps -eo args | grep -c \"^sleep 60\" || true'",
    ]);
    assert_eq!(still_sleeping.trim(), "0", "the timed-out command was killed");

    // The server logs one line per request; tail 1 gives exactly the last one.
    let port = world.cm_json(&["get", &name])["port"].as_u64().unwrap();
    let port = u16::try_from(port).unwrap();
    assert!(wait_for_http(port));
    http_get(port, "/first").unwrap();
    http_get(port, "/last-request").unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        world
            .cm_ok(&["logs", &name, "--tail", "1"])
            .contains("/last-request")
    }));
    let tail = world.cm_ok(&["logs", &name, "--tail", "1"]);
    assert_eq!(tail.lines().count(), 1, "{tail}");
    // With the engine's time of each line, and only since a time.
    let stamped = world.cm_ok(&["logs", &name, "--tail", "1", "--timestamps"]);
    let time = stamped.split_whitespace().next().unwrap_or_default();
    assert!(
        humantime::parse_rfc3339_weak(time.get(..19).unwrap_or_default()).is_ok(),
        "{stamped}"
    );
    assert!(stamped.contains("/last-request"), "{stamped}");
    let recent = world.cm_ok(&["logs", &name, "--since", "1h"]);
    assert!(recent.contains("/last-request"), "{recent}");
    let future = world.cm_ok(&["logs", &name, "--since", "2037-01-01T00:00:00Z"]);
    assert_eq!(future, "", "nothing was logged after 2037");
    let bad = world.cm(&["logs", &name, "--since", "a while ago"]);
    assert_eq!(bad.status.code(), Some(2), "a usage error");
    assert!(stderr(&bad).contains("invalid --since"), "{}", stderr(&bad));
}

#[test]
fn data_survives_restart_delete_and_recreate_and_purge_removes_it() {
    let Some(world) = World::new() else { return };
    let user = world.env.user("data");
    world.create(&user, "project_dev");
    let name = format!("{user}_project_dev");
    world.cm_ok(&["exec", &name, "sh -c 'echo precious > /data/file'"]);

    world.cm_ok(&["restart", &name]);
    assert_eq!(world.cm_ok(&["exec", &name, "cat /data/file"]), "precious\n");

    world.cm_ok(&["stop", &name]);
    assert_eq!(world.cm_json(&["get", &name])["status"], "exited");
    world.cm_ok(&["start", &name]);
    assert_eq!(world.cm_json(&["get", &name])["status"], "running");

    let refused = world.cm(&["delete", &name]);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "a running container needs --force"
    );
    world.cm_ok(&["delete", &name, "--force"]);
    let (containers, volumes, networks) = world.objects();
    assert!(
        containers.is_empty() && networks.is_empty(),
        "{containers:?} {networks:?}"
    );
    assert_eq!(volumes, [format!("{user}_project_dev_data")]);

    world.create(&user, "project_dev");
    assert_eq!(world.cm_ok(&["exec", &name, "cat /data/file"]), "precious\n");

    world.cm_ok(&["delete", &name, "--force", "--purge"]);
    assert_eq!(world.objects(), (vec![], vec![], vec![]));
}

#[test]
fn a_killed_main_process_is_restarted_by_the_engine() {
    let Some(world) = World::new() else { return };
    let user = world.env.user("crash");
    let spec = world.create(&user, "custom");
    let name = format!("{user}_custom");
    let port = port_of(&spec);
    assert!(wait_for_http(port));
    let pid = docker_ok(&["inspect", "-f", "{{.State.Pid}}", &name]);
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap();
    assert!(killed.success(), "kill -9 {pid} from the host");
    let restarted = wait_until(Duration::from_secs(60), || {
        docker_ok(&["inspect", "-f", "{{.RestartCount}} {{.State.Running}}", &name]) == "1 true"
    });
    assert!(restarted, "the engine did not restart the container");
    assert!(wait_for_http(port), "it serves again after the crash");
    assert_eq!(world.cm_json(&["get", &name])["status"], "running");
    // Its health says so: one restart, no OOM kill, the use of the new run (the engine resets the
    // exit code when it starts a container again: 0 while it runs).
    let stats = world.cm_json(&["stats", &name]);
    assert_eq!(stats["restart_count"], 1, "{stats}");
    assert_eq!(stats["exit_code"], 0, "{stats}");
    assert_eq!(stats["oom_killed"], false, "{stats}");
    assert_eq!(stats["memory_limit_bytes"], 512 << 20, "{stats}");
    assert!(stats["memory_bytes"].as_u64().unwrap() > 0, "{stats}");
    assert!(stats["pids"].as_u64().unwrap() >= 1, "{stats}");
    assert!(stats["cpu_percent"].as_f64().unwrap() >= 0.0, "{stats}");
    assert!(
        stats["started_at"].as_str().is_some_and(|t| t.starts_with("20")),
        "{stats}"
    );
    let shown = world.cm_ok(&["stats", &name]);
    assert!(
        shown.contains("restarts  1") && shown.contains("of 512.0 MiB"),
        "{shown}"
    );
}

#[test]
fn list_shows_live_status_by_user_and_all() {
    let Some(world) = World::new() else { return };
    let a = world.env.user("lista");
    let b = world.env.user("listb");
    world.create(&a, "preview_server");
    world.create(&b, "preview_server");
    docker_ok(&["stop", "-t", "1", &format!("{b}_preview_server")]);
    let all = world.cm_json(&["list", "--all"]);
    let statuses: Vec<(String, String)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["user_id"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (a.clone(), "running".to_owned()),
            (b.clone(), "exited".to_owned())
        ]
    );
    let only_a = world.cm_json(&["list", &a]);
    assert_eq!(only_a.as_array().unwrap().len(), 1);
    let table = world.cm_ok(&["list"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains(&format!("{b}_preview_server")));
    // `cm get USER` lists the user's containers; a user without any is still "no container".
    let by_user = world.cm_json(&["get", &a]);
    assert_eq!(
        by_user[0]["container_name"],
        format!("{a}_preview_server"),
        "{by_user}"
    );
    let nobody = world.cm(&["get", &world.env.user("nobody")]);
    assert_eq!(nobody.status.code(), Some(1), "{}", stderr(&nobody));
}

#[test]
fn get_hides_secret_looking_values_and_a_typo_gets_a_suggestion() {
    let Some(world) = World::new() else { return };
    let user = world.env.user("secret");
    world.cm_ok(&[
        "create",
        &user,
        "preview_server",
        "--env",
        "API_TOKEN=s3cr3t-value",
        "--env",
        "GREETING=hi",
    ]);
    let name = format!("{user}_preview_server");
    let shown = world.cm_ok(&["get", &name]);
    assert!(
        !shown.contains("s3cr3t-value") && shown.contains("API_TOKEN=***"),
        "{shown}"
    );
    assert!(shown.contains("GREETING=hi"), "{shown}");
    let json = world.cm_json(&["get", &name]);
    assert_eq!(json["env"]["API_TOKEN"], "***");
    let revealed = world.cm_json(&["get", &name, "--show-secrets"]);
    assert_eq!(revealed["env"]["API_TOKEN"], "s3cr3t-value");
    // The container itself has the value.
    let inside = world.cm_ok(&["exec", &name, "printenv API_TOKEN"]);
    assert_eq!(inside.trim(), "s3cr3t-value");
    let typo = world.cm(&["create", &user, "preview_sever"]);
    assert_eq!(typo.status.code(), Some(1));
    assert!(
        stderr(&typo).contains("did you mean preview_server?"),
        "{}",
        stderr(&typo)
    );
}

#[test]
fn kept_data_volumes_are_listed_and_purged_on_request() {
    let Some(world) = World::new() else { return };
    let user = world.env.user("kept");
    world.create(&user, "preview_server");
    let name = format!("{user}_preview_server");
    let volume = format!("{name}_data");
    let refused = world.cm(&["volumes", "purge", &volume]);
    assert_eq!(refused.status.code(), Some(1), "a volume in use is not purged");
    world.cm_ok(&["delete", &name, "--force"]);
    assert_eq!(world.cm_json(&["volumes"]), serde_json::json!([volume]));
    world.cm_ok(&["volumes", "purge", &volume]);
    assert_eq!(world.cm_json(&["volumes"]), serde_json::json!([]));
    assert_eq!(world.objects(), (vec![], vec![], vec![]));
    let again = world.cm(&["volumes", "purge", "../etc"]);
    assert_eq!(again.status.code(), Some(1));
}

#[test]
fn a_chatty_container_keeps_at_most_its_rotated_logs_on_disk() {
    let Some(world) = World::new() else { return };
    world.env.set_config_extra(
        "[types.chatty]\nimage = \"toolboxv2:latest\"\n\
         command = [\"sh\", \"-c\", \"yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 24000000; echo; echo done-writing; sleep 600\"]\n\
         log_max_size = \"1m\"\nlog_max_files = 2\n",
    );
    let user = world.env.user("chatty");
    world.create(&user, "chatty");
    let name = format!("{user}_chatty");
    let log_path = world.inspect(&name)["LogPath"].as_str().unwrap().to_owned();
    let dir = std::path::Path::new(&log_path).parent().unwrap().to_owned();
    let on_disk = || -> u64 {
        std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().contains("-json.log"))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    };
    // 24 MB of output, of which the engine keeps two files of at most 1 MiB (each JSON line a
    // little over the cap at most).
    let logged = cm_testkit::wait_until(std::time::Duration::from_secs(60), || {
        world
            .cm_ok(&["logs", &name, "--tail", "1"])
            .contains("done-writing")
    });
    assert!(logged, "the container never finished writing");
    let bytes = on_disk();
    assert!(bytes > 0, "no log files in {}", dir.display());
    assert!(
        bytes <= 2 * (1 << 20) + 64 * 1024,
        "{bytes} bytes of logs on disk"
    );
}

#[test]
fn a_create_over_quota_is_refused_and_leaves_nothing() {
    let Some(world) = World::new() else { return };
    let user = world.env.user("quota");
    let shown = world.cm_ok(&["quota", "set", &user, "--containers", "1", "--memory", "2g"]);
    assert!(shown.contains("0 of 1 (set for this user)"), "{shown}");
    world.create(&user, "preview_server");
    let before = world.objects();
    let out = world.cm(&["create", &user, "project_dev"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let message = stderr(&out);
    assert!(
        message.contains("over quota") && message.contains("may have 1 containers and has 1"),
        "{message}"
    );
    assert_eq!(world.objects(), before, "nothing was made");
    let report = world.cm_json(&["quota", "show", &user]);
    assert_eq!(report["used"]["containers"], 1);
    assert_eq!(report["limits"]["memory"], "2g");
    // Memory: 512m in use, another 512m would pass 768m.
    world.cm_ok(&["quota", "set", &user, "--clear", "--memory", "768m"]);
    let out = world.cm(&["create", &user, "project_dev"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let message = stderr(&out);
    assert!(
        message.contains("may have 768m of memory in all; 512m is used and this container asks for 512m"),
        "{message}"
    );
    assert_eq!(world.objects(), before, "nothing was made");
    // Cleared, the defaults (unlimited) apply again.
    world.cm_ok(&["quota", "set", &user, "--clear"]);
    world.create(&user, "project_dev");
}

/// The disk image files of this world's capped volumes and their allocated bytes.
fn disk_images(world: &World) -> Vec<(String, u64)> {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(world.env.path().join("disks")) else {
        return Vec::new();
    };
    let mut images: Vec<(String, u64)> = entries
        .flatten()
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((e.file_name().to_string_lossy().into_owned(), meta.blocks() * 512))
        })
        .collect();
    images.sort();
    images
}

/// Loop devices bound to files in this world's directory.
fn loops_of(world: &World) -> Vec<String> {
    let out = std::process::Command::new("losetup")
        .args(["--list", "--noheadings", "--output", "NAME,BACK-FILE"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| line.contains(&*world.env.path().to_string_lossy()))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_capped_data_volume_fills_up_inside_its_container_and_never_past_its_cap_on_the_host() {
    let Some(world) = World::new() else { return };
    world.env.set_config_extra(
        "[types.capped]\nimage = \"toolboxv2:latest\"\ndisk = \"32m\"\n\
         [types.capped_more]\nimage = \"toolboxv2:latest\"\ndisk = \"16m\"\n",
    );
    let health = world.cm_json(&["health"]);
    if health["disk_caps"]["enforced"] != true {
        // Without root or loop devices the host can not enforce caps: it must say so and refuse.
        assert!(
            !cm_testkit::under_ci(),
            "CI runs as root with loop devices: {health}"
        );
        eprintln!("SKIP disk caps: {}", health["disk_caps"]["detail"]);
        let user = world.env.user("nocap");
        let out = world.cm(&["create", &user, "capped"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("can not enforce disk caps"),
            "{}",
            stderr(&out)
        );
        return;
    }
    let user = world.env.user("capped");
    let spec = world.create(&user, "capped");
    assert_eq!(spec["disk"], "32m");
    let name = format!("{user}_capped");

    // The volume is a 32 MiB filesystem, owned by the image's user like an ordinary volume.
    let df = world.cm_ok(&["exec", &name, "sh -c 'df -k /data | tail -1; stat -c %u /data'"]);
    let total_kib: u64 = df.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(total_kib <= 32 * 1024, "{df}");
    assert!(df.trim_end().ends_with("1000"), "/data belongs to cli: {df}");

    // Writing past the cap fails inside the container...
    let out = world.cm(&[
        "exec",
        &name,
        "sh -c 'dd if=/dev/urandom of=/data/fill bs=1M count=64 2>&1; sync'",
    ]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out);
    assert!(said.contains("No space left on device"), "{said}");
    // ...and the host gave the volume no more than its cap.
    let images = disk_images(&world);
    assert_eq!(images.len(), 1, "{images:?}");
    assert!(images[0].1 <= 32 << 20, "{images:?}");

    // Usage against the cap, in `cm get` and its JSON.
    let shown = world.cm_ok(&["get", &name]);
    assert!(shown.contains("of 32.0 MiB (on the host)"), "{shown}");
    let got = world.cm_json(&["get", &name]);
    assert_eq!(got["disk_usage"]["size_bytes"], 32 << 20);
    assert!(
        got["disk_usage"]["used_bytes"].as_u64().unwrap() > 20 << 20,
        "{got}"
    );

    // After a host restart the image is detached and the engine can not start the container at
    // boot; reconcile (cm-api runs it as it starts) attaches the image and starts it.
    world.cm_ok(&["stop", &name]);
    cm_testkit::detach_loops(|backing| backing.starts_with(world.env.path()));
    assert!(loops_of(&world).is_empty());
    let boot = cm_testkit::docker(&["start", &name]);
    assert!(!boot.status.success(), "the engine mounted a detached image");
    let report = world.cm_json(&["reconcile"]);
    let fixed = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["kind"] == "disk_detached" && f["outcome"] == "fixed");
    assert!(fixed, "{report}");
    assert_eq!(world.inspect(&name)["State"]["Running"], true);
    // A container stopped on purpose stays stopped; `cm start` attaches the image itself.
    world.cm_ok(&["stop", &name]);
    cm_testkit::detach_loops(|backing| backing.starts_with(world.env.path()));
    let report = world.cm_json(&["reconcile"]);
    assert_eq!(report["findings"], serde_json::json!([]), "{report}");
    world.cm_ok(&["start", &name]);
    let back = world.cm_ok(&["exec", &name, "sh -c 'df -k /data | tail -1'"]);
    assert!(back.contains("/data"), "{back}");

    // A disk quota counts the caps: 32m used, 16m more would pass 40m; nothing is left behind.
    world.cm_ok(&["quota", "set", &user, "--disk", "40m"]);
    let before = world.objects();
    let out = world.cm(&["create", &user, "capped_more"]);
    assert_eq!(out.status.code(), Some(1));
    let message = stderr(&out);
    assert!(
        message.contains("over quota") && message.contains("may have 40m of disk in all; 32m is used"),
        "{message}"
    );
    assert_eq!(world.objects(), before, "nothing was made");
    assert_eq!(disk_images(&world).len(), 1, "no new image");
    // A type without a cap does not fit a disk quota either.
    let out = world.cm(&["create", &user, "preview_server"]);
    assert!(stderr(&out).contains("has no disk cap"), "{}", stderr(&out));

    // A purge removes the image and frees its loop device.
    world.cm_ok(&["delete", &name, "--force", "--purge"]);
    assert_eq!(disk_images(&world), vec![]);
    assert!(loops_of(&world).is_empty(), "{:?}", loops_of(&world));
}

#[test]
fn an_early_exit_fails_the_create_and_a_crash_loop_is_named_with_its_last_lines() {
    let Some(world) = World::new() else { return };
    let user = world.env.user("early");
    let name = format!("{user}_custom");
    let failing = "python3 -c \"print('no config found'); raise SystemExit(3)\"";
    let out = world.cm(&["create", &user, "custom", "--command", failing]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("exited at once with code 3"), "{err}");
    assert!(err.contains("no config found"), "{err}");
    // Undone: nothing of it is left.
    assert_eq!(world.objects(), (vec![], vec![], vec![]));
    assert_eq!(world.cm_json(&["list", "--all"]), serde_json::json!([]));

    // Without the watch the create succeeds, and the container is soon seen crash-looping.
    world.env.set_config_extra("[health]\nexit_check_ms = 0\n");
    world.cm_ok(&["create", &user, "custom", "--command", failing]);
    // Between two exits it runs for a moment: the answer looked at is one that says crash-looping.
    let mut found = serde_json::Value::Null;
    let looping = wait_until(Duration::from_secs(60), || {
        found = world.cm_json(&["get", &name]);
        found["status"] == "crash-looping"
    });
    assert!(looping, "{found}");
    let health = &found["health"];
    assert_eq!(health["exit_code"], 3, "{found}");
    assert!(health["restart_count"].as_i64().unwrap() >= 3, "{found}");
    let lines = health["last_log_lines"].as_array().unwrap();
    assert!(lines.iter().any(|l| l == "no config found"), "{found}");
    let mut shown = String::new();
    let told = wait_until(Duration::from_secs(60), || {
        shown = world.cm_ok(&["get", &name]);
        shown.contains("crash-looping")
    });
    assert!(told, "{shown}");
    assert!(
        shown.contains("last lines of its output:\n  no config found"),
        "{shown}"
    );
    // The engine keeps starting it: a delete without force is refused.
    assert!(!world.cm(&["delete", &name]).status.success());
    world.cm_ok(&["delete", &name, "--force", "--purge"]);
    assert_eq!(world.objects(), (vec![], vec![], vec![]));
}

#[test]
fn the_exit_watch_ends_once_the_app_answers() {
    let Some(world) = World::new() else { return };
    // A watch of a minute: only the app's answer ends it before then.
    world.env.set_config_extra("[health]\nexit_check_ms = 60000\n");
    let user = world.env.user("ready");
    let started = std::time::Instant::now();
    let spec = world.create(&user, "custom");
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "cm create waited out the whole watch: {:?}",
        started.elapsed()
    );
    assert_eq!(spec["status"], "running");
    assert!(http_get(port_of(&spec), "/").is_some_and(|(status, _)| status == 200));
    world.cm_ok(&["delete", &format!("{user}_custom"), "--force", "--purge"]);
}
