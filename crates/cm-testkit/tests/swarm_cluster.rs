//! The 3-node cluster fixture on the real engine: the host engine as manager plus two workers
//! running their own engines in containers. Each test holds the engine alone, so they run one
//! after another; each starts one cluster (about 2 to 5 s) and is bounded by its waits.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use cm_testkit::swarm::{Cluster, NODE_IMAGE, label_args};
use cm_testkit::{TestEnv, docker, docker_ok, require, wait_until};

/// The engine answers and has the image the nodes and services start from (under CI, a missing
/// one fails).
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
        &["image", "inspect", "--format", "{{.Id}}", NODE_IMAGE],
        "the base image cm-base:bookworm (images/build.sh)",
    )
}

fn swarm_state() -> String {
    docker_ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"])
}

/// `GET /` from the host to `address:port`; the status line and body, or why not.
fn http_get(address: &str, port: u16) -> Result<String, String> {
    let mut stream = TcpStream::connect_timeout(
        &format!("{address}:{port}").parse().unwrap(),
        Duration::from_secs(3),
    )
    .map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream
        .write_all(format!("GET / HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    stream.read_to_string(&mut text).map_err(|e| e.to_string())?;
    Ok(text)
}

/// Creates a service of the base image from `args` (after the labels), detached.
fn create_service(env: &TestEnv, name: &str, args: &[&str]) {
    let mut all: Vec<String> = [
        "service",
        "create",
        "--detach",
        "--no-resolve-image",
        "--name",
        name,
        "--stop-grace-period",
        "1s",
        "--restart-delay",
        "1s",
    ]
    .map(str::to_owned)
    .to_vec();
    all.extend(label_args(env));
    all.extend(args.iter().map(|a| (*a).to_owned()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    docker_ok(&refs);
}

/// The hostname of the node running the service's task that is `running`, if there is one.
fn running_on(service: &str) -> Option<String> {
    let out = docker(&[
        "service",
        "ps",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.Node}} {{.CurrentState}}",
        service,
    ]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains(" Running "))
        .map(|l| l.split(' ').next().unwrap_or_default().to_owned())
}

fn tasks(service: &str) -> String {
    let out = docker(&["service", "ps", "--no-trunc", service]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn three_nodes_are_ready_and_everything_goes_afterwards() {
    if !have_engine() {
        return;
    }
    let env = TestEnv::alone();
    let filter = env.label_filter();
    {
        let cluster = Cluster::start(&env, 2);
        let nodes = docker_ok(&[
            "node",
            "ls",
            "--format",
            "{{.Hostname}} {{.Status}} {{.ManagerStatus}}",
        ]);
        assert_eq!(nodes.lines().count(), 3, "{nodes}");
        for node in cluster.nodes() {
            assert_eq!(node.state(), "ready", "{} in {nodes}", node.name);
            let label = docker_ok(&[
                "node",
                "inspect",
                "--format",
                "{{index .Spec.Labels \"cm.node\"}}",
                &node.id,
            ]);
            assert_eq!(label, node.name);
            assert!(nodes.contains(&node.hostname), "{nodes}");
        }
        assert!(
            nodes.contains(&format!("{} Ready Leader", cluster.manager().hostname)),
            "{nodes}"
        );
        // Each worker's engine answers on its endpoint and is its own (its own node id); its
        // socket has the group of the host's, so whoever reaches one reaches the other.
        let host_group = std::fs::metadata("/var/run/docker.sock").map(|m| m.gid());
        for worker in cluster.workers() {
            let socket = worker.endpoint.strip_prefix("unix://").unwrap();
            if let Ok(group) = host_group {
                assert_eq!(std::fs::metadata(socket).unwrap().gid(), group);
            }
            let id = worker.docker_ok(&["info", "--format", "{{.Swarm.NodeID}}"]);
            assert_eq!(id, worker.id);
            assert_eq!(
                worker.docker_ok(&["info", "--format", "{{.Swarm.ControlAvailable}}"]),
                "false"
            );
            let addr = docker_ok(&["node", "inspect", "--format", "{{.Status.Addr}}", &id]);
            assert_eq!(addr, worker.address);
        }
        let endpoints = cluster.endpoints();
        assert_eq!(endpoints.len(), 3);
        assert_eq!(
            endpoints.get(&cluster.worker(2).hostname),
            Some(&cluster.worker(2).endpoint)
        );
        assert!(
            !docker_ok(&["ps", "-q", "--filter", &filter]).is_empty(),
            "the workers carry the run's label"
        );
    }
    // A cluster always makes its own swarm, and leaves it.
    assert_eq!(swarm_state(), "inactive");
    assert!(
        docker_ok(&["ps", "-aq", "--filter", &filter]).is_empty(),
        "worker containers are left"
    );
    assert!(
        docker_ok(&["network", "ls", "-q", "--filter", &filter]).is_empty(),
        "the bridge is left"
    );
    assert!(
        docker_ok(&["volume", "ls", "-q", "--filter", &filter]).is_empty(),
        "volumes are left"
    );
}

#[test]
fn a_pinned_service_answers_on_its_worker_takes_exec_and_its_node_goes_down_when_killed() {
    if !have_engine() {
        return;
    }
    let env = TestEnv::alone();
    let mut cluster = Cluster::start(&env, 2);
    cluster.load_image(NODE_IMAGE);
    let w2 = cluster.worker(2).clone();
    let (port, _) = env.slot.port_range();
    let service = format!("cm-t{}-web", env.run);
    let constraint = w2.constraint();
    let publish = format!("mode=host,target=8080,published={port}");
    create_service(
        &env,
        &service,
        &[
            "--constraint",
            &constraint,
            "--publish",
            &publish,
            NODE_IMAGE,
            "sh",
            "-c",
            "mkdir -p /srv/www && echo answered-by-$(hostname) > /srv/www/index.html && \
             exec python3 -m http.server 8080 --directory /srv/www",
        ],
    );
    let running = wait_until(Duration::from_secs(60), || running_on(&service).is_some());
    assert!(running, "the task never ran: {}", tasks(&service));
    assert_eq!(running_on(&service).as_deref(), Some(w2.hostname.as_str()));

    // The task's container is on worker 2's engine, not on the host's nor worker 1's.
    let by_service = format!("label=com.docker.swarm.service.name={service}");
    let container = w2.docker_ok(&["ps", "-q", "--filter", &by_service]);
    assert_eq!(container.lines().count(), 1, "on w2: {container:?}");
    assert!(docker_ok(&["ps", "-q", "--filter", &by_service]).is_empty());
    assert!(
        cluster
            .worker(1)
            .docker_ok(&["ps", "-q", "--filter", &by_service])
            .is_empty()
    );

    // Host-mode port: answered from the host at worker 2's address.
    let mut last = String::new();
    let answered = wait_until(Duration::from_secs(30), || match http_get(&w2.address, port) {
        Ok(text) => {
            last = text;
            last.starts_with("HTTP/1.0 200") || last.starts_with("HTTP/1.1 200")
        }
        Err(e) => {
            last = e;
            false
        }
    });
    assert!(answered, "no answer from {}:{port}: {last}", w2.address);
    assert!(
        last.contains(&format!("answered-by-{}", &container[..12])),
        "{last}"
    );
    // Not on the other worker's address.
    assert!(http_get(&cluster.worker(1).address, port).is_err());

    // Exec through worker 2's engine.
    let exec = w2.docker_ok(&["exec", &container, "sh", "-c", "echo exec-on-$(hostname)"]);
    assert_eq!(exec, format!("exec-on-{}", &container[..12]));
    // The host's engine does not know that container.
    assert!(!docker(&["exec", &container, "true"]).status.success());

    // Node loss: the manager reports worker 2 down, worker 1 stays ready.
    let killed = std::time::Instant::now();
    cluster.kill_worker(2);
    let down = cluster.wait_for_state(&w2, "down", Duration::from_secs(60));
    assert!(down, "worker 2 is {} after being killed", w2.state());
    eprintln!(
        "worker 2 was reported down {:.1} s after it was killed",
        killed.elapsed().as_secs_f64()
    );
    assert_eq!(cluster.worker(1).state(), "ready");
    assert_eq!(cluster.manager().state(), "ready");
}

#[test]
fn a_test_that_panics_inside_a_cluster_leaves_nothing() {
    if !have_engine() {
        return;
    }
    let env = TestEnv::alone();
    let filter = env.label_filter();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let cluster = Cluster::start(&env, 1);
        create_service(
            &env,
            &format!("cm-t{}-idle", env.run),
            &[
                "--constraint",
                &cluster.manager().constraint(),
                NODE_IMAGE,
                "sleep",
                "300",
            ],
        );
        panic!("the test fails with a cluster up");
    }));
    assert!(result.is_err());
    // A cluster always makes its own swarm, and leaves it.
    assert_eq!(swarm_state(), "inactive");
    assert!(docker_ok(&["ps", "-aq", "--filter", &filter]).is_empty());
    assert!(docker_ok(&["network", "ls", "-q", "--filter", &filter]).is_empty());
}
