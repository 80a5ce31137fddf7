//! The single-node swarm fixture on the real engine: it joins, its test's services and networks
//! are removed, and the engine leaves swarm mode exactly when the fixture entered it.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::time::Duration;

use cm_testkit::swarm::{ADDR_POOL, Cluster, SingleNodeSwarm, label_args};
use cm_testkit::{TestEnv, docker, docker_ok, require, wait_until};

/// The Debian base every image is built on (images/build.sh); it has a shell and `sleep`.
const BASE_IMAGE: &str = "cm-base:bookworm";

fn swarm_state() -> String {
    docker_ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"])
}

/// The engine answers and has the base image (under CI, a missing one fails).
fn have_engine() -> bool {
    if !require(
        "docker",
        &["info", "--format", "{{.ServerVersion}}"],
        "a running Docker engine",
    ) {
        return false;
    }
    require(
        "docker",
        &["image", "inspect", "--format", "{{.Id}}", BASE_IMAGE],
        "the base image cm-base:bookworm (images/build.sh)",
    )
}

#[test]
fn joins_and_leaves_swarm_mode_cleanly() {
    if !have_engine() {
        return;
    }
    let env = TestEnv::alone();
    let before = swarm_state();
    let networks_before = docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
    let filter = env.label_filter();
    let initiated;
    {
        let swarm = SingleNodeSwarm::join(&env);
        initiated = swarm.initiated();
        // An engine out of swarm mode is joined by the fixture; one in a swarm is used, unless a
        // killed test run left that swarm (then the fixture leaves it and makes its own).
        if before == "inactive" {
            assert!(initiated, "state before: {before}");
        }
        assert_eq!(swarm_state(), "active");
        assert_eq!(
            docker_ok(&["info", "--format", "{{.Swarm.ControlAvailable}}"]),
            "true"
        );
        assert!(!swarm.node_id().is_empty());
        let nodes = docker_ok(&["node", "ls", "--format", "{{.ID}} {{.Status}}"]);
        assert!(nodes.contains(&format!("{} Ready", swarm.node_id())), "{nodes}");

        // An overlay network of the address pool and a labelled service on it, with a task that
        // runs: both must go with the fixture.
        let network = format!("cm-t{}-overlay", env.run);
        let mut args = vec![
            "network".to_owned(),
            "create".to_owned(),
            "--driver".to_owned(),
            "overlay".to_owned(),
            "--label".to_owned(),
            format!("cm.test={}", env.run),
            network.clone(),
        ];
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        docker_ok(&refs);
        let subnet = docker_ok(&[
            "network",
            "inspect",
            "--format",
            "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
            &network,
        ]);
        assert!(subnet.starts_with("10.250."), "overlay subnet {subnet}");

        let image = BASE_IMAGE.to_owned();
        args = vec![
            "service".to_owned(),
            "create".to_owned(),
            "--detach".to_owned(),
            "--no-resolve-image".to_owned(),
            "--name".to_owned(),
            format!("cm-t{}-svc", env.run),
            "--network".to_owned(),
            network.clone(),
            "--stop-grace-period".to_owned(),
            "1s".to_owned(),
            "--restart-delay".to_owned(),
            "1s".to_owned(),
            "--entrypoint".to_owned(),
            "sleep".to_owned(),
        ];
        args.extend(label_args(&env));
        args.extend([image, "300".to_owned()]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        docker_ok(&refs);
        let running = wait_until(Duration::from_secs(60), || {
            !docker_ok(&["ps", "-q", "--filter", &filter]).is_empty()
        });
        let tasks = docker(&["service", "ps", "--no-trunc", &format!("cm-t{}-svc", env.run)]);
        assert!(
            running,
            "the service's task never ran: {}",
            String::from_utf8_lossy(&tasks.stdout)
        );
        assert_eq!(
            docker_ok(&["service", "ls", "-q", "--filter", &filter])
                .lines()
                .count(),
            1
        );
    }
    // Dropped: nothing of the run in the swarm or the engine, and the engine as it was.
    let networks_after = docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
    if initiated {
        assert_eq!(swarm_state(), "inactive");
        if before == "inactive" {
            assert_eq!(networks_after, networks_before, "networks differ after leaving");
        }
        for swarms in ["ingress", "docker_gwbridge"] {
            assert!(!networks_after.lines().any(|n| n == swarms), "{networks_after}");
        }
    } else {
        assert_eq!(swarm_state(), "active");
        assert!(docker_ok(&["service", "ls", "-q", "--filter", &filter]).is_empty());
    }
    assert!(
        docker_ok(&["ps", "-aq", "--filter", &filter]).is_empty(),
        "containers of the run are left"
    );
    assert!(
        docker_ok(&["network", "ls", "-q", "--filter", &filter]).is_empty(),
        "networks of the run are left"
    );
}

#[test]
fn a_test_that_panics_still_leaves_swarm_mode() {
    if !have_engine() {
        return;
    }
    let env = TestEnv::alone();
    let initiated = std::cell::Cell::new(false);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let swarm = SingleNodeSwarm::join(&env);
        initiated.set(swarm.initiated());
        assert_eq!(swarm_state(), "active");
        panic!("the test fails while in swarm mode");
    }));
    assert!(result.is_err());
    let expected = if initiated.get() { "inactive" } else { "active" };
    assert_eq!(swarm_state(), expected);
}

#[test]
#[should_panic(expected = "TestEnv::alone")]
fn refuses_an_env_that_does_not_hold_the_engine_alone() {
    if !have_engine() {
        // Under CI `require` already failed; locally the expected panic stands in for the skip.
        panic!("no engine: TestEnv::alone");
    }
    let env = TestEnv::new();
    let _swarm = SingleNodeSwarm::join(&env);
}

/// Leaves the swarm this test made by hand when dropped, even if the test panics.
struct LeaveOnDrop;

impl Drop for LeaveOnDrop {
    fn drop(&mut self) {
        let _ = docker(&["swarm", "leave", "--force"]);
        wait_until(Duration::from_secs(30), || swarm_state() == "inactive");
        // The engine keeps docker_gwbridge after leaving; it made it for this test's swarm.
        wait_until(Duration::from_secs(20), || {
            let _ = docker(&["network", "rm", "docker_gwbridge"]);
            !docker(&["network", "inspect", "docker_gwbridge"])
                .status
                .success()
        });
    }
}

#[test]
fn a_swarm_that_was_there_is_used_and_left_as_it_was() {
    if !have_engine() {
        return;
    }
    let env = TestEnv::alone();
    if swarm_state() != "inactive" {
        // Someone's own swarm: the first test already checks that it is used and kept.
        eprintln!("the engine is in swarm mode already: nothing to simulate");
        return;
    }
    let had_gwbridge = docker(&["network", "inspect", "docker_gwbridge"])
        .status
        .success();
    assert!(!had_gwbridge, "docker_gwbridge outside swarm mode");
    // A swarm that no test made (no marker names an owner).
    docker_ok(&[
        "swarm",
        "init",
        "--advertise-addr",
        "127.0.0.1",
        "--default-addr-pool",
        ADDR_POOL,
    ]);
    let _leave = LeaveOnDrop;
    let node = docker_ok(&["info", "--format", "{{.Swarm.NodeID}}"]);
    let filter = env.label_filter();
    {
        let swarm = SingleNodeSwarm::join(&env);
        assert!(!swarm.initiated());
        assert_eq!(swarm.node_id(), node);
        let mut args: Vec<String> = [
            "service",
            "create",
            "--detach",
            "--no-resolve-image",
            "--name",
            &format!("cm-t{}-kept", env.run),
            "--stop-grace-period",
            "1s",
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend(label_args(&env));
        args.extend([BASE_IMAGE.to_owned(), "sleep".to_owned(), "300".to_owned()]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        docker_ok(&refs);
    }
    // The test's service went; the swarm stayed, the same one.
    assert_eq!(swarm_state(), "active");
    assert_eq!(docker_ok(&["info", "--format", "{{.Swarm.NodeID}}"]), node);
    assert!(docker_ok(&["service", "ls", "-q", "--filter", &filter]).is_empty());
    assert!(docker_ok(&["ps", "-aq", "--filter", &filter]).is_empty());

    // A cluster needs a swarm of its own: refused, and nothing of it is made.
    let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _cluster = Cluster::start(&env, 1);
    }));
    let message = refused.err().map(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default()
    });
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("already is in a swarm")),
        "{message:?}"
    );
    assert!(docker_ok(&["network", "ls", "-q", "--filter", &filter]).is_empty());
    assert_eq!(docker_ok(&["info", "--format", "{{.Swarm.NodeID}}"]), node);
}
