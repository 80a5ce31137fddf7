//! cm-core's runtime contract (`cm_core::contract::runtime`) over cm-swarm's adapter on the real
//! engine in a single-node swarm (`cm_testkit::swarm::SingleNodeSwarm`).
//!
//! Swarm mode is the engine's global state: the test holds the engine alone
//! (`TestEnv::alone`), and the fixture leaves swarm mode on drop if and only if it entered it,
//! failed check or not. Because the fixture borrows its `TestEnv`, the checks run one after
//! another in one test, within one swarm (which also spares seven swarm inits). Every engine call
//! is bounded (`DOCKER_CALL_LIMIT`); without an engine the test skips loudly, under CI it fails.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cm_core::ContainerRuntime;
use cm_core::contract::runtime::{self as contract, RuntimeSubject};
use cm_swarm::SwarmRuntime;
use cm_testkit::TestEnv;
use cm_testkit::swarm::SingleNodeSwarm;

mod common;

use common::{IMAGE, Swarm, have_engine};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_runtime_keeps_the_runtime_contract() {
    if !have_engine() {
        return;
    }
    let env = TestEnv::alone();
    let swarm = SingleNodeSwarm::join(&env);
    let subject = Swarm {
        runtime: SwarmRuntime::default(),
        env: &env,
    };
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
    contract::every_container_is_listed_and_one_is_inspected_whole(&subject).await;
    // Swarm cannot rename a service: the check accepts a refusal from a runtime that says so.
    assert!(!subject.runtime.renames());
    contract::a_container_is_renamed_and_found_by_its_new_name(&subject).await;
    what_swarm_adds(&subject).await;
    drop(swarm);
}

/// `docker args...` must succeed; its trimmed output.
fn docker_ok(args: &[&str]) -> String {
    cm_testkit::docker_ok(args)
}

/// Beyond the contract: the runtime says it is Swarm and what is weaker; a missing image names
/// the nodes and the load command; the spec carries the limits, capabilities, restart policy and
/// log rotation; files uploaded while stopped reach the next task; the test cleanup finds and
/// removes a running service.
async fn what_swarm_adds(subject: &Swarm<'_>) {
    use cm_core::{
        Command, ContainerName, ContainerPlan, CpuLimit, EnvVars, MemoryLimit, NetworkName, NetworkPlan,
        PortBinding, RemoveMode, RestartPolicy, TypeName, UploadEntry, VolumeName, VolumePlan, owner_labels,
    };
    let runtime = subject.runtime();
    let info = within(subject, runtime.engine_info()).await.unwrap();
    assert_eq!(info.runtime, "swarm");
    assert!(
        info.weaker.iter().any(|w| w.contains("0.0.0.0")),
        "{:?}",
        info.weaker
    );

    let user = subject.user("extra");
    let kind = TypeName::parse("cli_v4").unwrap();
    let taken = within(subject, runtime.network_subnets()).await.unwrap();
    let network = NetworkPlan {
        name: NetworkName::of(&user),
        subnet: subject.subnets().pick(&taken).unwrap(),
        labels: owner_labels(&user, None, &subject.labels()),
    };
    let volume = VolumePlan {
        name: VolumeName::of(&user, &kind),
        labels: owner_labels(&user, Some(&kind), &subject.labels()),
        size: None,
        node: None,
    };
    within(subject, runtime.ensure_network(&network)).await.unwrap();
    let driver = docker_ok(&[
        "network",
        "inspect",
        network.name.as_str(),
        "--format",
        "{{.Driver}} {{.Attachable}}",
    ]);
    assert_eq!(driver, "overlay true");
    within(subject, runtime.ensure_volume(&volume)).await.unwrap();
    let published = within(subject, runtime.published_ports(subject.ports()))
        .await
        .unwrap();
    let port = subject
        .ports()
        .pick(1, &published, &cm_core::testing::FakeProbe::default())
        .unwrap()[0];
    let plan = ContainerPlan {
        name: ContainerName::of(&user, &kind),
        image: subject.image(),
        command: Some(Command::parse("sh -c 'trap \"exit 0\" TERM; while :; do sleep 1; done'").unwrap()),
        env: EnvVars::new(),
        labels: owner_labels(&user, Some(&kind), &subject.labels()),
        network: network.name.clone(),
        volume: volume.name.clone(),
        ports: vec![PortBinding {
            host_ip: [127, 0, 0, 1].into(),
            host_port: port,
            container_port: 8080,
        }],
        memory: MemoryLimit::parse("96m").unwrap(),
        cpus: CpuLimit::from_cpus(0.25).unwrap(),
        pids_limit: 48,
        restart_policy: RestartPolicy::UnlessStopped,
        cap_add: vec!["CHOWN".to_owned()],
        logs: cm_core::LogRotation::DEFAULT,
        node: None,
    };

    let missing = ContainerPlan {
        image: cm_core::ImageRef::parse("cm-swarm-no-such-image:never").unwrap(),
        ..plan.clone()
    };
    let err = within(subject, runtime.create_container(&missing))
        .await
        .unwrap_err();
    let host = docker_ok(&["info", "--format", "{{.Name}}"]);
    let said = err.to_string();
    assert_eq!(err.kind(), cm_core::ErrorKind::NotFound, "{said}");
    assert!(said.contains(&format!("on node(s) {host}")), "{said}");
    assert!(
        said.contains("docker save cm-swarm-no-such-image:never | docker -H"),
        "{said}"
    );

    let id = within(subject, runtime.create_container(&plan)).await.unwrap();
    let service = docker_ok(&[
        "service",
        "inspect",
        &id,
        "--format",
        "{{.Spec.TaskTemplate.RestartPolicy.Condition}} {{.Spec.TaskTemplate.RestartPolicy.Delay}} \
         {{.Spec.TaskTemplate.ContainerSpec.StopGracePeriod}} {{.Spec.EndpointSpec.Mode}} \
         {{.Spec.TaskTemplate.ContainerSpec.Image}}",
    ]);
    let image_id = docker_ok(&["image", "inspect", "--format", "{{.Id}}", IMAGE]);
    assert_eq!(service, format!("any 1s 10s dnsrr {image_id}"));

    // Files uploaded before the first start reach its container.
    let note = UploadEntry {
        path: "note".into(),
        mode: 0o600,
        uid: 0,
        gid: 0,
        contents: Some(b"before the start\n".to_vec()),
    };
    within(subject, runtime.upload(&id, "/tmp", &[note]))
        .await
        .unwrap();
    within(subject, runtime.start_container(&id)).await.unwrap();
    let read = within(subject, runtime.download(&id, "/tmp/note")).await.unwrap();
    assert_eq!(read.as_deref(), Some(&b"before the start\n"[..]));

    let container = docker_ok(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.swarm.service.id={id}"),
    ]);
    let host_config = docker_ok(&[
        "inspect",
        &container,
        "--format",
        "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.CapDrop}} \
         {{.HostConfig.CapAdd}} {{.HostConfig.LogConfig.Type}} {{index .HostConfig.LogConfig.Config \"max-file\"}} \
         {{index .Config.Labels \"user-id\"}} {{(index (index .NetworkSettings.Ports \"8080/tcp\") 0).HostPort}}",
    ]);
    assert_eq!(
        host_config,
        format!(
            "{} 250000000 48 [ALL] [CHOWN] json-file 3 {user} {port}",
            96 * 1024 * 1024
        )
    );

    // A crash is restarted by Swarm and counted.
    let before = within(subject, runtime.inspect_container(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before.restart_count, Some(0));
    docker(&["kill", &container]);
    let mut restarted = None;
    for _ in 0..100 {
        let now = within(subject, runtime.inspect_container(&id))
            .await
            .unwrap()
            .unwrap();
        if now.status == cm_core::ContainerStatus::Running && now.restart_count == Some(1) {
            restarted = Some(now);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        restarted.is_some(),
        "no restart after a crash: {:?}",
        within(subject, runtime.inspect_container(&id)).await
    );

    // Left running: the run's cleanup finds the service and removes it with its container.
    let filter = subject.env.label_filter();
    let found = cm_testkit::labelled(&filter);
    assert!(found.contains(&format!("service {}", plan.name)), "{found:?}");
    cm_testkit::remove_labelled(&filter);
    assert_eq!(cm_testkit::labelled(&filter), Vec::<String>::new());
    assert_eq!(
        within(subject, runtime.inspect_container(&id)).await.unwrap(),
        None
    );
    within(subject, runtime.remove_container(&id, RemoveMode::Force))
        .await
        .unwrap();
}

/// A runtime call, bounded by the subject's limit.
async fn within<T>(subject: &Swarm<'_>, call: impl Future<Output = T>) -> T {
    tokio::time::timeout(subject.limit(), call)
        .await
        .unwrap_or_else(|_| panic!("no answer within {:?}", subject.limit()))
}

fn docker(args: &[&str]) {
    let _ = cm_testkit::docker(args);
}
