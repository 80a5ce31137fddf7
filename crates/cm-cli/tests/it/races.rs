//! Races on one user, between real `cm` processes against the real engine: the same container
//! created twice at once, two types of one user at once (one network, one subnet lease), and a
//! user's last container deleted while another of theirs is being created. Whatever order the
//! processes run in, the end must be consistent: the store and the engine agree, nothing leaks.

use std::process::Output;

use serde_json::Value;

use crate::helpers::{World, stderr};

/// Runs `cm args...` for each argument list at the same moment, one process each.
pub fn at_once(world: &World, runs: &[Vec<String>]) -> Vec<Output> {
    let barrier = std::sync::Barrier::new(runs.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = runs
            .iter()
            .map(|args| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    let mut command = world.command(&args);
                    barrier.wait();
                    command.output().unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

pub fn words(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

/// The store and the engine agree, and every container runs.
pub fn assert_consistent(world: &World) {
    world.assert_in_agreement();
    for record in world.cm_json(&["list", "--all"]).as_array().unwrap() {
        assert_eq!(record["status"], "running", "{record}");
    }
}

#[test]
fn the_same_container_created_twice_at_once_exists_once() {
    let Some(world) = World::new() else { return };
    let user = world.env.user("twice");
    for round in 0..3 {
        let outs = at_once(
            &world,
            &[
                words(&["--json", "create", &user, "preview_server"]),
                words(&["--json", "create", &user, "preview_server"]),
            ],
        );
        let codes: Vec<Option<i32>> = outs.iter().map(|o| o.status.code()).collect();
        let won = codes.iter().filter(|c| **c == Some(0)).count();
        assert_eq!(
            won,
            1,
            "round {round}: exactly one create wins: {codes:?} {}",
            outs.iter().map(stderr).collect::<Vec<_>>().join(" | ")
        );
        let lost = outs.iter().find(|o| !o.status.success()).unwrap();
        assert_eq!(
            lost.status.code(),
            Some(1),
            "a refusal, not a failure: {}",
            stderr(lost)
        );
        assert!(
            stderr(lost).contains("already")
                || stderr(lost).contains("busy")
                || stderr(lost).contains("in progress"),
            "{}",
            stderr(lost)
        );
        assert_consistent(&world);
        world.cm_ok(&["delete", &format!("{user}_preview_server"), "--force", "--purge"]);
    }
    assert_eq!(world.objects(), (vec![], vec![], vec![]));
}

#[test]
fn two_types_of_one_user_created_at_once_share_one_network() {
    let Some(world) = World::new() else { return };
    let user = world.env.user("pair");
    // Each round races for the user's network and subnet lease again (it goes with the last
    // container).
    for round in 0..3 {
        let outs = at_once(
            &world,
            &[
                words(&["--json", "create", &user, "preview_server"]),
                words(&["--json", "create", &user, "custom"]),
            ],
        );
        for out in &outs {
            assert!(out.status.success(), "round {round}: {}", stderr(out));
        }
        let specs: Vec<Value> = outs
            .iter()
            .map(|o| serde_json::from_slice(&o.stdout).unwrap())
            .collect();
        assert_eq!(specs[0]["network_name"], specs[1]["network_name"]);
        assert_eq!(
            specs[0]["subnet"], specs[1]["subnet"],
            "one subnet lease per user"
        );
        let (_, _, networks) = world.objects();
        assert_eq!(networks.len(), 1, "round {round}: {networks:?}");
        assert_consistent(&world);
        // Both deleted at once: the network goes with the last.
        let outs = at_once(
            &world,
            &[
                words(&["delete", &format!("{user}_preview_server"), "--force", "--purge"]),
                words(&["delete", &format!("{user}_custom"), "--force", "--purge"]),
            ],
        );
        for out in &outs {
            assert!(out.status.success(), "round {round}: {}", stderr(out));
        }
        assert_eq!(world.objects(), (vec![], vec![], vec![]), "round {round}");
        assert_consistent(&world);
    }
}

#[test]
fn deleting_a_users_last_container_while_another_is_created_leaves_a_working_one() {
    let Some(world) = World::new() else { return };
    let user = world.env.user("swap");
    for round in 0..3 {
        world.create(&user, "preview_server");
        let outs = at_once(
            &world,
            &[
                words(&["delete", &format!("{user}_preview_server"), "--force", "--purge"]),
                words(&["--json", "create", &user, "custom"]),
            ],
        );
        assert!(
            outs[0].status.success(),
            "round {round}: delete: {}",
            stderr(&outs[0])
        );
        assert!(
            outs[1].status.success(),
            "round {round}: create: {}",
            stderr(&outs[1])
        );
        // The new container runs on its user's network, which the delete did not take away.
        let name = format!("{user}_custom");
        let spec = world.cm_json(&["get", &name]);
        assert_eq!(spec["status"], "running", "round {round}: {spec}");
        let (containers, _, networks) = world.objects();
        assert_eq!(containers, std::slice::from_ref(&name), "round {round}");
        assert_eq!(networks.len(), 1, "round {round}: {networks:?}");
        assert_consistent(&world);
        world.cm_ok(&["delete", &name, "--force", "--purge"]);
    }
    assert_eq!(world.objects(), (vec![], vec![], vec![]));
}

/// Pool ports taken by someone else, a listener on the host and a container that is not ours,
/// are skipped: the create gets the next free port.
#[test]
fn pool_ports_taken_by_a_foreign_listener_or_container_are_skipped() {
    let Some(world) = World::new() else { return };
    let (first, _) = world.env.slot.port_range();
    let _listener = std::net::TcpListener::bind(("127.0.0.1", first)).unwrap();
    let foreign = format!("cm-test-foreign-{}", world.env.run);
    cm_testkit::docker_ok(&[
        "run",
        "-d",
        "--name",
        &foreign,
        "--label",
        &format!("{}={}", cm_testkit::TEST_LABEL, world.env.run),
        "-p",
        &format!("127.0.0.1:{}:8080", first + 1),
        "toolboxv2:latest",
        "sleep",
        "600",
    ]);
    let user = world.env.user("ports");
    let spec = world.create(&user, "preview_server");
    let port = u16::try_from(spec["port"].as_u64().unwrap()).unwrap();
    assert!(port > first + 1, "got a taken port: {port} (first {first})");
    world.cm_ok(&["delete", &format!("{user}_preview_server"), "--force", "--purge"]);
    cm_testkit::docker_ok(&["rm", "-f", &foreign]);
}
