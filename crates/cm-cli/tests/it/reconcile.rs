//! Self-healing against the real engine: containers removed or stopped behind our back, foreign
//! objects with our labels, `cm` killed at every step of create, delete and update, and
//! concurrent creates and deletes from two processes.

use std::collections::BTreeSet;

use cm_testkit::{docker, docker_ok};
use serde_json::Value;

use crate::helpers::{World, port_of, stderr};

/// The findings of a `cm --json reconcile` as `(kind, outcome)` pairs.
fn findings(report: &Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_owned(),
                f["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_container_removed_behind_the_back_comes_back_on_its_port_with_its_data() {
    let Some(world) = World::new() else { return };
    let user = world.env.user("rmf");
    let spec = world.create(&user, "preview_server");
    let name = format!("{user}_preview_server");
    world.cm_ok(&["exec", &name, "sh -c 'echo kept > /data/file'"]);
    docker_ok(&["rm", "-f", &name]);
    assert_eq!(world.cm_json(&["get", &name])["status"], "missing");

    let report = world.cm_json(&["reconcile"]);
    assert_eq!(
        findings(&report),
        [("missing_container".to_owned(), "fixed".to_owned())]
    );
    let back = world.cm_json(&["get", &name]);
    assert_eq!(back["status"], "running");
    assert_eq!(port_of(&back), port_of(&spec));
    assert_ne!(back["container_id"], spec["container_id"]);
    assert_eq!(world.cm_ok(&["exec", &name, "cat /data/file"]), "kept\n");
    world.assert_in_agreement();
}

#[test]
fn a_container_stopped_behind_the_back_is_listed_as_exited_and_left_stopped() {
    let Some(world) = World::new() else { return };
    let user = world.env.user("stopped");
    world.create(&user, "preview_server");
    let name = format!("{user}_preview_server");
    docker_ok(&["stop", "-t", "1", &name]);
    assert_eq!(world.cm_json(&["list", &user])[0]["status"], "exited");
    let report = world.cm_json(&["reconcile"]);
    assert!(findings(&report).is_empty(), "{report:#}");
    assert_eq!(world.cm_json(&["get", &name])["status"], "exited");
}

#[test]
fn a_foreign_container_with_our_labels_is_reported_and_left_alone_without_prune() {
    let Some(world) = World::new() else { return };
    let user = world.env.user("real");
    world.create(&user, "preview_server");
    let impostor = format!("{}-impostor", world.env.user("x"));
    let label = world.env.label_filter().trim_start_matches("label=").to_owned();
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &impostor,
        "--label",
        "managed-by=ContainerManager",
        "--label",
        &label,
        "--label",
        &format!("cm.test.owner={}", cm_testkit::owner_id()),
        "toolboxv2:latest",
        "sleep",
        "300",
    ]);
    let report = world.cm_json(&["reconcile"]);
    let orphans: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "orphan_container")
        .collect();
    assert_eq!(orphans.len(), 1, "{report:#}");
    assert_eq!(orphans[0]["name"], impostor.as_str());
    assert_eq!(orphans[0]["outcome"], "reported");
    let id = docker_ok(&["inspect", "-f", "{{.Id}}", &impostor]);
    assert_eq!(orphans[0]["id"], id.as_str());
    assert_eq!(
        docker_ok(&["inspect", "-f", "{{.State.Running}}", &impostor]),
        "true",
        "left alone"
    );

    let table = world.cm_ok(&["reconcile"]);
    assert!(
        table.contains(&impostor) && table.contains("orphan_container"),
        "{table}"
    );

    // Without this installation's label (the Python original's containers look like this), it
    // survives prune too; with it, prune removes it.
    let pruned = world.cm_json(&["reconcile", "--prune"]);
    assert_eq!(
        findings(&pruned),
        [("orphan_container".to_owned(), "reported".to_owned())],
        "{pruned:#}"
    );
    assert!(docker(&["inspect", &impostor]).status.success(), "left alone");
    docker_ok(&["rm", "-f", &impostor]);
    let installation = docker_ok(&[
        "inspect",
        "-f",
        "{{index .Config.Labels \"org.containermanager.installation\"}}",
        &format!("{user}_preview_server"),
    ]);
    assert_eq!(installation.len(), 16, "{installation:?}");
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &impostor,
        "--label",
        "managed-by=ContainerManager",
        "--label",
        &label,
        "--label",
        &format!("org.containermanager.installation={installation}"),
        "--label",
        &format!("cm.test.owner={}", cm_testkit::owner_id()),
        "toolboxv2:latest",
        "sleep",
        "300",
    ]);
    let pruned = world.cm_json(&["reconcile", "--prune"]);
    assert!(findings(&pruned).contains(&("orphan_container".to_owned(), "removed".to_owned())));
    assert!(
        !docker(&["inspect", &impostor]).status.success(),
        "removed with --prune"
    );
    assert_eq!(
        world.cm_json(&["get", &format!("{user}_preview_server")])["status"],
        "running"
    );
}

#[test]
fn cm_killed_at_every_step_of_create_and_delete_leaves_nothing_after_a_reconcile() {
    let Some(world) = World::new() else { return };
    let user = world.env.user("crash");
    let name = format!("{user}_cli_v4");
    for point in [
        "create:network",
        "create:volume",
        "create:container",
        "create:started",
        "create:recorded",
    ] {
        let out = world
            .command(&["create", &user, "cli_v4"])
            .env("CM_FAILPOINT", point)
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{point}: cm should have died: {}",
            stderr(&out)
        );
        world.cm_ok(&["reconcile"]);
        world.assert_in_agreement();
        if point != "create:recorded" {
            assert_eq!(world.objects(), (vec![], vec![], vec![]), "{point}: leaked");
            assert_eq!(
                world.cm_json(&["list", "--all"]),
                serde_json::json!([]),
                "{point}"
            );
            world.create(&user, "cli_v4");
        }
        world.cm_ok(&["delete", &name, "--force", "--purge"]);
        assert_eq!(world.objects(), (vec![], vec![], vec![]), "{point}: after delete");
    }
    for (point, purge) in [
        ("delete:begun", false),
        ("delete:container", false),
        ("delete:container", true),
        ("delete:volume", true),
        ("delete:recorded", false),
    ] {
        world.create(&user, "cli_v4");
        let mut args = vec!["delete", name.as_str(), "--force"];
        if purge {
            args.push("--purge");
        }
        let out = world.command(&args).env("CM_FAILPOINT", point).output().unwrap();
        assert!(!out.status.success(), "{point}: cm should have died");
        world.cm_ok(&["reconcile"]);
        world.assert_in_agreement();
        let (containers, volumes, networks) = world.objects();
        assert!(
            containers.is_empty() && networks.is_empty(),
            "{point}: {containers:?} {networks:?}"
        );
        assert_eq!(volumes.is_empty(), purge, "{point} purge {purge}: {volumes:?}");
        assert_eq!(
            world.cm_json(&["list", "--all"]),
            serde_json::json!([]),
            "{point}"
        );
    }
    // And a new create works, without a reconcile after a crash too.
    let out = world
        .command(&["create", &user, "cli_v4"])
        .env("CM_FAILPOINT", "create:container")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let spec = world.create(&user, "cli_v4");
    assert_eq!(spec["status"], "running");
    world.assert_in_agreement();
}

#[test]
fn update_keeps_port_and_data_and_rolls_back_on_a_bad_image() {
    let Some(world) = World::new() else { return };
    let user = world.env.user("upd");
    let spec = world.create(&user, "preview_server");
    let name = format!("{user}_preview_server");
    world.cm_ok(&["exec", &name, "sh -c 'echo kept > /data/file'"]);

    let updated = world.cm_json(&["update", &name, "--image", "toolboxv2:dev"]);
    assert_eq!(updated["image"], "toolboxv2:dev");
    assert_eq!(port_of(&updated), port_of(&spec));
    assert_ne!(updated["container_id"], spec["container_id"]);
    assert_eq!(world.cm_ok(&["exec", &name, "cat /data/file"]), "kept\n");
    assert_eq!(
        docker_ok(&["inspect", "-f", "{{.Config.Image}}", &name]),
        "toolboxv2:dev"
    );

    let out = world.cm(&["update", &name, "--image", "cm-test/no-such-image:1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("previous container was restored"),
        "{}",
        stderr(&out)
    );
    let after = world.cm_json(&["get", &name]);
    assert_eq!(after["container_id"], updated["container_id"]);
    assert_eq!(after["status"], "running");
    assert_eq!(world.cm_ok(&["exec", &name, "cat /data/file"]), "kept\n");

    // Killed midway, the next reconcile finishes or rolls back.
    for point in ["update:renamed", "update:container", "update:started"] {
        let out = world
            .command(&["update", &name])
            .env("CM_FAILPOINT", point)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{point}");
        world.cm_ok(&["reconcile"]);
        assert_eq!(world.cm_json(&["get", &name])["status"], "running", "{point}");
        world.assert_in_agreement();
    }
}

#[test]
fn fifty_concurrent_creates_and_deletes_from_two_processes_end_in_agreement() {
    let Some(world) = World::new() else { return };
    let users: Vec<String> = (0..30).map(|i| world.env.user(&format!("m{i}"))).collect();
    // Two workers, each running `cm` processes: 15 creates then 10 deletes each, 50 operations.
    std::thread::scope(|scope| {
        let workers: Vec<_> = users
            .chunks(15)
            .map(|batch| {
                let world = &world;
                scope.spawn(move || {
                    for user in batch {
                        world.create(user, "preview_server");
                    }
                    for user in batch.iter().take(10) {
                        world.cm_ok(&["delete", &format!("{user}_preview_server"), "--force", "--purge"]);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
    });
    let records = world.cm_json(&["list", "--all"]);
    let ports: Vec<u64> = records
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["port"].as_u64().unwrap())
        .collect();
    let distinct: BTreeSet<u64> = ports.iter().copied().collect();
    assert_eq!(ports.len(), distinct.len(), "no port twice");
    assert_eq!(records.as_array().unwrap().len(), 10);
    world.assert_in_agreement();
}
