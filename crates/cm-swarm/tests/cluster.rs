//! cm-swarm's adapter on a real 3-node swarm (`cm_testkit::swarm::Cluster`): the host engine as
//! manager plus two workers running their own engines in containers, the adapter configured with
//! the nodes' endpoints (hostname to endpoint). The manager and worker 1 are drained, so every
//! task runs on worker 2 and everything that acts on a container (exec, logs, files, stats) must
//! go through worker 2's engine; published ports answer on worker 2's address.
//!
//! Each test holds the engine alone (`TestEnv::alone`) and starts one cluster; the cluster and the
//! world are dropped outside the async runtime. Every engine call is bounded.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use cm_core::contract::runtime::{self as contract, RuntimeSubject};
use cm_core::{
    Command, ContainerName, ContainerPlan, ContainerRuntime, ContainerStatus, CpuLimit, EnvVars, ExecRequest,
    LogRequest, MemoryLimit, NetworkName, NetworkPlan, PortBinding, RemoveMode, RestartPolicy, Subnet,
    TypeName, UserId, VolumeName, VolumePlan, owner_labels,
};
use cm_swarm::SwarmRuntime;
use cm_testkit::swarm::{Cluster, Node};
use cm_testkit::{DOCKER_CALL_LIMIT, TestEnv, docker_ok};
use futures_util::StreamExt;

mod common;

use common::{IMAGE, Swarm as OnCluster, have_engine};

/// A cluster of the manager and two workers with the image on every node, and only worker 2
/// taking tasks.
fn cluster_on_worker_2(env: &TestEnv) -> Cluster<'_> {
    let cluster = Cluster::start(env, 2);
    cluster.load_image(IMAGE);
    for node in [cluster.manager(), cluster.worker(1)] {
        docker_ok(&["node", "update", "--availability", "drain", &node.id]);
    }
    cluster
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn bounded<T>(what: &str, call: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DOCKER_CALL_LIMIT, call).await {
        Ok(answer) => answer,
        Err(_) => panic!("{what}: no answer within {DOCKER_CALL_LIMIT:?}"),
    }
}

/// The hostnames of the nodes running the run's tasks that are `running`.
fn task_nodes(env: &TestEnv) -> Vec<String> {
    let services = docker_ok(&["service", "ls", "-q", "--filter", &env.label_filter()]);
    let mut nodes = Vec::new();
    for service in services.lines() {
        let out = docker_ok(&[
            "service",
            "ps",
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Node}}",
            service,
        ]);
        nodes.extend(out.lines().map(str::to_owned));
    }
    nodes
}

#[test]
fn the_runtime_contract_holds_with_every_container_on_a_worker() {
    if !have_engine() {
        return;
    }
    let env = TestEnv::alone();
    let cluster = cluster_on_worker_2(&env);
    let subject = OnCluster {
        runtime: SwarmRuntime::new(cluster.endpoints()),
        env: &env,
    };
    let since = docker_ok(&["info", "--format", "{{.SystemTime}}"]);
    tokio_runtime().block_on(async {
        // Every check of `runtime_contract!`, in its order.
        contract::networks_are_ensured_once_listed_and_removed(&subject).await;
        contract::volumes_are_ensured_once_per_owner_listed_and_removed(&subject).await;
        contract::a_size_cap_is_enforced_or_refused(&subject).await;
        contract::a_container_lives_through_create_start_stop_and_remove(&subject).await;
        contract::a_missing_image_or_a_taken_name_is_refused(&subject).await;
        contract::exec_gives_output_exit_codes_and_keeps_its_time_limit(&subject).await;
        contract::uploaded_files_are_read_back(&subject).await;
        contract::logs_keep_their_tail(&subject).await;
        contract::events_tell_starts_and_removals(&subject).await;
    });
    // The checks' containers ran on worker 2's engine, and on no other.
    let until = docker_ok(&["info", "--format", "{{.SystemTime}}"]);
    let starts = |node: &Node| {
        node.docker_ok(&[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "type=container",
            "--filter",
            "event=start",
            "--filter",
            &env.label_filter(),
            "--format",
            "{{.ID}}",
        ])
        .lines()
        .count()
    };
    assert!(starts(cluster.worker(2)) >= 5, "starts on worker 2");
    assert_eq!(starts(cluster.worker(1)), 0, "starts on worker 1");
    assert_eq!(starts(cluster.manager()), 0, "starts on the manager");
    drop(subject);
    drop(cluster);
}

/// `GET /` from the host to `address:port`: the whole answer, or why not.
fn http_get(address: &str, port: u16) -> Result<String, String> {
    let target = format!("{address}:{port}").parse().unwrap();
    let mut stream =
        TcpStream::connect_timeout(&target, Duration::from_secs(3)).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream
        .write_all(format!("GET / HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    stream.read_to_string(&mut text).map_err(|e| e.to_string())?;
    Ok(text)
}

/// The id of the one running container of `service` on `node`'s engine.
fn container_on(node: &Node, service_id: &str) -> String {
    node.docker_ok(&[
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("label=com.docker.swarm.service.id={service_id}"),
    ])
}

#[test]
fn exec_logs_and_the_published_port_of_a_container_on_a_worker_go_through_that_worker() {
    if !have_engine() {
        return;
    }
    let env = TestEnv::alone();
    let cluster = cluster_on_worker_2(&env);
    let w2 = cluster.worker(2).clone();
    let subject = OnCluster {
        runtime: SwarmRuntime::new(cluster.endpoints()),
        env: &env,
    };
    let user = subject.user("web");
    let kind = TypeName::parse("cli_v4").unwrap();
    let labels = subject.labels();
    let (port, _) = env.slot.port_range();
    let network = NetworkPlan {
        name: NetworkName::of(&user),
        subnet: Subnet::parse(&format!(
            "{}/28",
            env.slot.subnet_range().split('/').next().unwrap()
        ))
        .unwrap(),
        labels: owner_labels(&user, None, &labels),
    };
    let volume = VolumePlan {
        name: VolumeName::of(&user, &kind),
        labels: owner_labels(&user, Some(&kind), &labels),
        size: None,
        node: None,
    };
    let plan = ContainerPlan {
        name: ContainerName::of(&user, &kind),
        image: subject.image(),
        command: Some(
            Command::parse(
                "sh -c 'mkdir -p /srv && echo answered-by-$(hostname) > /srv/index.html && \
                 exec python3 -u -m http.server 8080 --directory /srv'",
            )
            .unwrap(),
        ),
        env: EnvVars::new(),
        labels: owner_labels(&user, Some(&kind), &labels),
        network: network.name.clone(),
        volume: volume.name.clone(),
        ports: vec![PortBinding {
            host_ip: [127, 0, 0, 1].into(),
            host_port: port,
            container_port: 8080,
        }],
        memory: MemoryLimit::parse("128m").unwrap(),
        cpus: CpuLimit::from_cpus(0.5).unwrap(),
        pids_limit: 64,
        restart_policy: RestartPolicy::No,
        cap_add: Vec::new(),
        logs: cm_core::LogRotation::DEFAULT,
        node: None,
    };
    let rt = tokio_runtime();
    let runtime = &subject.runtime;
    let id = rt.block_on(async {
        bounded("ensure_network", runtime.ensure_network(&network))
            .await
            .unwrap();
        bounded("ensure_volume", runtime.ensure_volume(&volume))
            .await
            .unwrap();
        let id = bounded("create_container", runtime.create_container(&plan))
            .await
            .unwrap();
        bounded("start_container", runtime.start_container(&id))
            .await
            .unwrap();
        let observed = bounded("inspect_container", runtime.inspect_container(&id))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(observed.status, ContainerStatus::Running);
        id
    });
    assert_eq!(task_nodes(&env), [w2.hostname.as_str()]);
    let container = container_on(&w2, &id);
    assert_eq!(container.lines().count(), 1, "on worker 2: {container:?}");
    let short = &container[..12];

    // The published port answers from the host at worker 2's address (host mode: 0.0.0.0 on
    // the node), and nowhere else.
    let mut last = String::new();
    let answered = cm_testkit::wait_until(Duration::from_secs(30), || match http_get(&w2.address, port) {
        Ok(text) => {
            last = text;
            last.contains(" 200 ")
        }
        Err(e) => {
            last = e;
            false
        }
    });
    assert!(answered, "no answer on {}:{port}: {last}", w2.address);
    assert!(last.contains(&format!("answered-by-{short}")), "{last}");
    assert!(http_get(&cluster.worker(1).address, port).is_err());

    rt.block_on(async {
        // Exec runs in the container on worker 2.
        let request = ExecRequest {
            command: Command::parse("sh -c 'echo exec-on-$(hostname); cat /srv/index.html'").unwrap(),
            user: None,
            timeout: Duration::from_secs(20),
        };
        let out = bounded("exec", runtime.exec(&id, &request)).await.unwrap();
        assert_eq!(
            (out.exit_code, out.stdout.as_str()),
            (0, format!("exec-on-{short}\nanswered-by-{short}\n").as_str()),
            "{out:?}"
        );
        // The logs come from worker 2's engine: the server logged the host's request.
        let request = LogRequest {
            tail: None,
            follow: false,
            timestamps: false,
            since: None,
        };
        let mut text = String::new();
        for _ in 0..100 {
            let stream = bounded("logs", runtime.logs(&id, &request)).await.unwrap();
            text = bounded("logs", stream.collect::<Vec<_>>())
                .await
                .into_iter()
                .map(|chunk| chunk.unwrap().text)
                .collect();
            if text.contains("\"GET / HTTP/1.0\" 200") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(text.contains("\"GET / HTTP/1.0\" 200"), "{text:?}");
        let stats = bounded("stats", runtime.stats(&id)).await.unwrap();
        assert_eq!(stats.memory_limit_bytes, plan.memory.bytes());

        bounded(
            "remove_container",
            runtime.remove_container(&id, RemoveMode::Force),
        )
        .await
        .unwrap();
        assert_eq!(
            bounded("inspect_container", runtime.inspect_container(&id))
                .await
                .unwrap(),
            None
        );
        bounded("remove_volume", runtime.remove_volume(volume.name.as_str()))
            .await
            .unwrap();
        bounded("remove_network", runtime.remove_network(network.name.as_str()))
            .await
            .unwrap();
    });
    assert!(container_on(&w2, &id).is_empty());
    drop(rt);
    drop(subject);
    drop(cluster);
}

/// A plan of the base image running `sleep` for `user`'s `cli_v4`, on the slot's first port and
/// first /28.
fn plan_of(subject: &OnCluster<'_>, user: &UserId) -> (NetworkPlan, VolumePlan, ContainerPlan) {
    let kind = TypeName::parse("cli_v4").unwrap();
    let labels = subject.labels();
    let range = subject.env.slot.subnet_range();
    let network = NetworkPlan {
        name: NetworkName::of(user),
        subnet: Subnet::parse(&format!("{}/28", range.split('/').next().unwrap())).unwrap(),
        labels: owner_labels(user, None, &labels),
    };
    let volume = VolumePlan {
        name: VolumeName::of(user, &kind),
        labels: owner_labels(user, Some(&kind), &labels),
        size: None,
        node: None,
    };
    let plan = ContainerPlan {
        name: ContainerName::of(user, &kind),
        image: subject.image(),
        command: Some(Command::parse("sleep 300").unwrap()),
        env: EnvVars::new(),
        labels: owner_labels(user, Some(&kind), &labels),
        network: network.name.clone(),
        volume: volume.name.clone(),
        ports: vec![PortBinding {
            host_ip: [127, 0, 0, 1].into(),
            host_port: subject.env.slot.port_range().0,
            container_port: 8080,
        }],
        memory: MemoryLimit::parse("64m").unwrap(),
        cpus: CpuLimit::from_cpus(0.5).unwrap(),
        pids_limit: 64,
        restart_policy: RestartPolicy::No,
        cap_add: Vec::new(),
        logs: cm_core::LogRotation::DEFAULT,
        node: None,
    };
    (network, volume, plan)
}

#[test]
fn a_create_names_the_workers_that_lack_the_image_and_how_to_load_it() {
    if !have_engine() {
        return;
    }
    let env = TestEnv::alone();
    // Workers start without images: only the manager has it.
    let cluster = Cluster::start(&env, 2);
    let subject = OnCluster {
        runtime: SwarmRuntime::new(cluster.endpoints()),
        env: &env,
    };
    let runtime = &subject.runtime;
    let user = subject.user("img");
    let (network, volume, plan) = plan_of(&subject, &user);
    let rt = tokio_runtime();
    rt.block_on(async {
        bounded("ensure_network", runtime.ensure_network(&network))
            .await
            .unwrap();
        bounded("ensure_volume", runtime.ensure_volume(&volume))
            .await
            .unwrap();
        let err = bounded("create_container", runtime.create_container(&plan))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), cm_core::ErrorKind::NotFound, "{err}");
        let text = err.to_string();
        for worker in cluster.workers() {
            assert!(text.contains(&worker.hostname), "{text}");
            assert!(
                text.contains(&format!("docker -H {} load", worker.endpoint)),
                "{text}"
            );
        }
        assert!(!text.contains(&cluster.manager().hostname), "{text}");
    });
    // Loaded on worker 1 only: worker 2 alone is named.
    let file = env.path().join("base.tar");
    let file = file.display().to_string();
    docker_ok(&["save", "--output", &file, IMAGE]);
    cluster
        .worker(1)
        .docker_ok(&["load", "--quiet", "--input", &file]);
    rt.block_on(async {
        let err = bounded("create_container", runtime.create_container(&plan))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&cluster.worker(2).hostname), "{text}");
        assert!(!text.contains(&cluster.worker(1).hostname), "{text}");
    });
    cluster.load_image(IMAGE);
    rt.block_on(async {
        let id = bounded("create_container", runtime.create_container(&plan))
            .await
            .unwrap();
        bounded("start_container", runtime.start_container(&id))
            .await
            .unwrap();
        bounded(
            "remove_container",
            runtime.remove_container(&id, RemoveMode::Force),
        )
        .await
        .unwrap();
        bounded("remove_volume", runtime.remove_volume(volume.name.as_str()))
            .await
            .unwrap();
        bounded("remove_network", runtime.remove_network(network.name.as_str()))
            .await
            .unwrap();
    });
    drop(rt);
    drop(subject);
    drop(cluster);
}

#[test]
fn a_killed_worker_is_down_and_containers_on_the_others_are_unaffected() {
    if !have_engine() {
        return;
    }
    let env = TestEnv::alone();
    let mut cluster = Cluster::start(&env, 2);
    cluster.load_image(IMAGE);
    let subject = OnCluster {
        runtime: SwarmRuntime::new(cluster.endpoints()),
        env: &env,
    };
    let user = subject.user("stay");
    let (network, volume, plan) = plan_of(&subject, &user);
    // The container runs on worker 1 (the manager and worker 2 drained while it is placed).
    for node in [cluster.manager(), cluster.worker(2)] {
        docker_ok(&["node", "update", "--availability", "drain", &node.id]);
    }
    let rt = tokio_runtime();
    let id = rt.block_on(async {
        let runtime = &subject.runtime;
        bounded("ensure_network", runtime.ensure_network(&network))
            .await
            .unwrap();
        bounded("ensure_volume", runtime.ensure_volume(&volume))
            .await
            .unwrap();
        let id = bounded("create_container", runtime.create_container(&plan))
            .await
            .unwrap();
        bounded("start_container", runtime.start_container(&id))
            .await
            .unwrap();
        id
    });
    assert_eq!(task_nodes(&env), [cluster.worker(1).hostname.as_str()]);
    for node in [cluster.manager(), cluster.worker(2)] {
        docker_ok(&["node", "update", "--availability", "active", &node.id]);
    }
    cluster.kill_worker(2);
    let w2 = cluster.worker(2).clone();
    assert!(
        cluster.wait_for_state(&w2, "down", Duration::from_secs(60)),
        "worker 2 is {} after being killed",
        w2.state()
    );
    rt.block_on(async {
        let runtime = &subject.runtime;
        let observed = bounded("inspect_container", runtime.inspect_container(&id))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(observed.status, ContainerStatus::Running);
        let request = ExecRequest {
            command: Command::parse("echo still-here").unwrap(),
            user: None,
            timeout: Duration::from_secs(20),
        };
        let out = bounded("exec", runtime.exec(&id, &request)).await.unwrap();
        assert_eq!((out.exit_code, out.stdout.as_str()), (0, "still-here\n"));
        // A new container is still created and started while worker 2 is down (the manager
        // takes tasks again), and both are removed.
        let other = subject.user("new");
        let (network, volume, mut plan) = plan_of(&subject, &other);
        plan.ports[0].host_port += 1;
        let range = subject.env.slot.subnet_range();
        let (prefix, _) = range.split('/').next().unwrap().rsplit_once('.').unwrap();
        let network = NetworkPlan {
            subnet: Subnet::parse(&format!("{prefix}.16/28")).unwrap(),
            ..network
        };
        bounded("ensure_network", runtime.ensure_network(&network))
            .await
            .unwrap();
        bounded("ensure_volume", runtime.ensure_volume(&volume))
            .await
            .unwrap();
        let new = bounded("create_container", runtime.create_container(&plan))
            .await
            .unwrap();
        bounded("start_container", runtime.start_container(&new))
            .await
            .unwrap();
        for id in [&new, &id] {
            bounded(
                "remove_container",
                runtime.remove_container(id, RemoveMode::Force),
            )
            .await
            .unwrap();
            assert_eq!(
                bounded("inspect_container", runtime.inspect_container(id))
                    .await
                    .unwrap(),
                None
            );
        }
    });
    drop(rt);
    drop(subject);
    drop(cluster);
}
