//! The [`ContainerRuntime`] contract: networks, volumes, a container's life (create, start,
//! inspect, list by labels, published ports, stats, restart, stop, remove), exec exit codes and
//! time limits, uploads and downloads, the tail of the logs, engine events, renames (an update
//! keeps the old container aside under another name), and the whole engine's listing and the
//! full inspection adoption reads.
//!
//! Run it with [`crate::runtime_contract!`] and a [`RuntimeSubject`]. Every object a check
//! creates carries [`RuntimeSubject::labels`] and belongs to users of [`RuntimeSubject::user`],
//! so a real engine's subject can find and remove them by label, and every engine call is bounded
//! by [`RuntimeSubject::limit`].
//!
//! Deliberate differences, not checked: what a container logs (the fake logs five numbered lines
//! whatever its command; the checks' command prints the same five lines for real), resource
//! figures of `stats`, and engine versions.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;

use crate::testing::FakeProbe;
use crate::{
    Command, ContainerName, ContainerPlan, ContainerRuntime, ContainerStatus, CpuLimit, Ensured, EnvVars,
    ErrorKind, ExecRequest, ImageRef, LogRequest, MemoryLimit, NetworkName, NetworkPlan, PortBinding,
    PortRange, RemoveMode, RestartPolicy, SubnetPool, TypeName, UploadEntry, UserId, VolumeName, VolumePlan,
    owner_labels,
};

/// A runtime under test and what it may use.
pub trait RuntimeSubject: Send + Sync {
    /// The runtime.
    fn runtime(&self) -> &dyn ContainerRuntime;
    /// Labels every object of the checks carries besides the ownership labels (a real engine's
    /// subject: its test run's labels, by which it removes them).
    fn labels(&self) -> BTreeMap<String, String>;
    /// A user id of this subject's own (a real engine's subject: unique to the run).
    fn user(&self, name: &str) -> UserId;
    /// An image on the engine with `/bin/sh`, `echo`, `cat`, `false` and `sleep`.
    fn image(&self) -> ImageRef;
    /// Host ports the checks may publish on 127.0.0.1.
    fn ports(&self) -> PortRange;
    /// Subnets the checks' networks may use.
    fn subnets(&self) -> SubnetPool;
    /// The time limit of each engine call.
    fn limit(&self) -> Duration;
}

/// Turns the runtime contract into one `#[tokio::test]` per check, in a module
/// `runtime_contract`. `$make` is an expression giving `Option<impl RuntimeSubject>`: `None`
/// skips the check (a real engine that is missing outside CI).
#[macro_export]
macro_rules! runtime_contract {
    ($make:expr) => {
        mod runtime_contract {
            #[allow(unused_imports)]
            use super::*;

            $crate::runtime_contract!(@checks $make;
                networks_are_ensured_once_listed_and_removed,
                volumes_are_ensured_once_per_owner_listed_and_removed,
                a_size_cap_is_enforced_or_refused,
                a_container_lives_through_create_start_stop_and_remove,
                a_missing_image_or_a_taken_name_is_refused,
                exec_gives_output_exit_codes_and_keeps_its_time_limit,
                uploaded_files_are_read_back,
                logs_keep_their_tail,
                events_tell_starts_and_removals,
                a_container_is_renamed_and_found_by_its_new_name,
                every_container_is_listed_and_one_is_inspected_whole,
            );
        }
    };
    (@checks $make:expr; $($check:ident),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $check() {
                let Some(subject) = $make else { return };
                $crate::contract::runtime::$check(&subject).await;
            }
        )*
    };
}

/// What a check's container is made of.
struct Setup {
    user: UserId,
    network: NetworkPlan,
    volume: VolumePlan,
    plan: ContainerPlan,
}

/// The command of the checks' containers: five numbered lines, then waiting (a TERM ends it).
const COMMAND: &str =
    "sh -c 'for i in 1 2 3 4 5; do echo line $i; done; trap \"exit 0\" TERM; while :; do sleep 1; done'";

async fn bounded<T>(subject: &impl RuntimeSubject, what: &str, call: impl Future<Output = T>) -> T {
    match tokio::time::timeout(subject.limit(), call).await {
        Ok(answer) => answer,
        Err(_) => panic!("{what}: no answer within {:?}", subject.limit()),
    }
}

/// A network, a volume and the plan of a container of `name`'s `cli_v4` on the first free port.
async fn setup(subject: &impl RuntimeSubject, name: &str) -> Setup {
    let runtime = subject.runtime();
    let user = subject.user(name);
    let kind = TypeName::parse("cli_v4").unwrap();
    let taken = bounded(subject, "network_subnets", runtime.network_subnets())
        .await
        .unwrap();
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
    let published = bounded(
        subject,
        "published_ports",
        runtime.published_ports(subject.ports()),
    )
    .await
    .unwrap();
    let port = subject
        .ports()
        .pick(1, &published, &FakeProbe::default())
        .unwrap()[0];
    let plan = ContainerPlan {
        name: ContainerName::of(&user, &kind),
        image: subject.image(),
        command: Some(Command::parse(COMMAND).unwrap()),
        env: EnvVars::new(),
        labels: owner_labels(&user, Some(&kind), &subject.labels()),
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
        logs: crate::LogRotation::DEFAULT,
        node: None,
    };
    Setup {
        user,
        network,
        volume,
        plan,
    }
}

/// Ensures `setup`'s network and volume and creates and starts its container; gives its id.
async fn running(subject: &impl RuntimeSubject, setup: &Setup) -> String {
    let runtime = subject.runtime();
    bounded(subject, "ensure_network", runtime.ensure_network(&setup.network))
        .await
        .unwrap();
    bounded(subject, "ensure_volume", runtime.ensure_volume(&setup.volume))
        .await
        .unwrap();
    let id = bounded(subject, "create_container", runtime.create_container(&setup.plan))
        .await
        .unwrap();
    bounded(subject, "start_container", runtime.start_container(&id))
        .await
        .unwrap();
    id
}

/// Removes `setup`'s container, volume and network (what the subject's cleanup would do anyway).
async fn teardown(subject: &impl RuntimeSubject, setup: &Setup, id: &str) {
    let runtime = subject.runtime();
    bounded(
        subject,
        "remove_container",
        runtime.remove_container(id, RemoveMode::Force),
    )
    .await
    .unwrap();
    bounded(
        subject,
        "remove_volume",
        runtime.remove_volume(setup.volume.name.as_str()),
    )
    .await
    .unwrap();
    bounded(
        subject,
        "remove_network",
        runtime.remove_network(setup.network.name.as_str()),
    )
    .await
    .unwrap();
}

async fn exec(
    subject: &impl RuntimeSubject,
    id: &str,
    line: &str,
    timeout: Duration,
) -> crate::Result<crate::ExecOutput> {
    let request = ExecRequest {
        command: Command::parse(line).unwrap(),
        user: None,
        timeout,
    };
    // The call's own limit is the command's plus the engine's.
    let limit = timeout + subject.limit();
    match tokio::time::timeout(limit, subject.runtime().exec(id, &request)).await {
        Ok(answer) => answer,
        Err(_) => panic!("exec {line}: no answer within {limit:?}"),
    }
}

/// A network is created once, then found; another owner's plan of the same name is a conflict;
/// its subnet is the engine's; it is listed with its labels (a network without our `managed-by`
/// label is not); it is removed, and removing it again is no error.
pub async fn networks_are_ensured_once_listed_and_removed(subject: &impl RuntimeSubject) {
    let runtime = subject.runtime();
    let setup = setup(subject, "net").await;
    let plan = &setup.network;
    assert_eq!(
        bounded(subject, "ensure_network", runtime.ensure_network(plan))
            .await
            .unwrap(),
        Ensured::Created
    );
    assert_eq!(
        bounded(subject, "ensure_network", runtime.ensure_network(plan))
            .await
            .unwrap(),
        Ensured::Existing
    );
    let stranger = NetworkPlan {
        labels: owner_labels(&subject.user("stranger"), None, &subject.labels()),
        ..plan.clone()
    };
    let err = bounded(subject, "ensure_network", runtime.ensure_network(&stranger))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Conflict,
        "another owner's network of the name"
    );
    // A network without our `managed-by` label is not listed as ours.
    let taken = bounded(subject, "network_subnets", runtime.network_subnets())
        .await
        .unwrap();
    let foreign = NetworkPlan {
        name: NetworkName::of(&subject.user("foreign")),
        subnet: subject.subnets().pick(&taken).unwrap(),
        labels: subject.labels(),
    };
    bounded(subject, "ensure_network", runtime.ensure_network(&foreign))
        .await
        .unwrap();
    let listed = bounded(subject, "list_managed_networks", runtime.list_managed_networks())
        .await
        .unwrap();
    assert!(
        listed.iter().all(|n| n.name != foreign.name.as_str()),
        "{listed:?}"
    );
    bounded(
        subject,
        "remove_network",
        runtime.remove_network(foreign.name.as_str()),
    )
    .await
    .unwrap();
    let subnets = bounded(subject, "network_subnets", runtime.network_subnets())
        .await
        .unwrap();
    assert!(subnets.contains(&plan.subnet), "{subnets:?}");
    let listed = bounded(subject, "list_managed_networks", runtime.list_managed_networks())
        .await
        .unwrap();
    let ours = listed
        .iter()
        .find(|n| n.name == plan.name.as_str())
        .expect("listed");
    for (key, value) in &plan.labels {
        assert_eq!(ours.labels.get(key), Some(value), "label {key}");
    }
    bounded(
        subject,
        "remove_network",
        runtime.remove_network(plan.name.as_str()),
    )
    .await
    .unwrap();
    let listed = bounded(subject, "list_managed_networks", runtime.list_managed_networks())
        .await
        .unwrap();
    assert!(listed.iter().all(|n| n.name != plan.name.as_str()));
    bounded(
        subject,
        "remove_network",
        runtime.remove_network(plan.name.as_str()),
    )
    .await
    .unwrap();
}

/// A volume is created once, then found; another owner's plan of the same name is a conflict;
/// it is listed with its labels and removed.
pub async fn volumes_are_ensured_once_per_owner_listed_and_removed(subject: &impl RuntimeSubject) {
    let runtime = subject.runtime();
    let setup = setup(subject, "vol").await;
    let plan = &setup.volume;
    assert_eq!(
        bounded(subject, "ensure_volume", runtime.ensure_volume(plan))
            .await
            .unwrap(),
        Ensured::Created
    );
    assert_eq!(
        bounded(subject, "ensure_volume", runtime.ensure_volume(plan))
            .await
            .unwrap(),
        Ensured::Existing
    );
    let stranger = VolumePlan {
        labels: owner_labels(&subject.user("stranger"), None, &subject.labels()),
        ..plan.clone()
    };
    let err = bounded(subject, "ensure_volume", runtime.ensure_volume(&stranger))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let listed = bounded(subject, "list_managed_volumes", runtime.list_managed_volumes())
        .await
        .unwrap();
    let ours = listed
        .iter()
        .find(|v| v.name == plan.name.as_str())
        .expect("listed");
    for (key, value) in &plan.labels {
        assert_eq!(ours.labels.get(key), Some(value), "label {key}");
    }
    bounded(
        subject,
        "remove_volume",
        runtime.remove_volume(plan.name.as_str()),
    )
    .await
    .unwrap();
    let listed = bounded(subject, "list_managed_volumes", runtime.list_managed_volumes())
        .await
        .unwrap();
    assert!(listed.iter().all(|v| v.name != plan.name.as_str()));
}

/// A size cap is honoured as the runtime says: where [`ContainerRuntime::disk_support`] says caps
/// are enforced, a capped volume is made and reports its cap and use; where it says they are not,
/// it is refused as `Unavailable` with the reason it gives, and nothing is made. A volume without
/// a cap reports no use either way.
pub async fn a_size_cap_is_enforced_or_refused(subject: &impl RuntimeSubject) {
    let runtime = subject.runtime();
    let setup = setup(subject, "cap").await;
    let plain = &setup.volume;
    bounded(subject, "ensure_volume", runtime.ensure_volume(plain))
        .await
        .unwrap();
    let usage = bounded(subject, "volume_usage", runtime.volume_usage(plain.name.as_str()))
        .await
        .unwrap();
    assert_eq!(usage, None, "a volume without a cap reports no use");
    bounded(
        subject,
        "remove_volume",
        runtime.remove_volume(plain.name.as_str()),
    )
    .await
    .unwrap();

    let cap = crate::DiskSize::parse("64m").unwrap();
    let capped = VolumePlan {
        size: Some(cap),
        ..plain.clone()
    };
    let support = runtime.disk_support();
    let made = bounded(subject, "ensure_volume", runtime.ensure_volume(&capped)).await;
    if support.enforced {
        assert_eq!(made.unwrap(), Ensured::Created);
        let usage = bounded(
            subject,
            "volume_usage",
            runtime.volume_usage(capped.name.as_str()),
        )
        .await
        .unwrap()
        .expect("a capped volume reports its use");
        assert_eq!(usage.size_bytes, cap.bytes());
        bounded(
            subject,
            "remove_volume",
            runtime.remove_volume(capped.name.as_str()),
        )
        .await
        .unwrap();
    } else {
        let err = made.expect_err("a cap this runtime can not enforce is refused");
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(
            err.to_string().contains(&support.detail),
            "the refusal gives the reason disk_support gives ({}): {err}",
            support.detail
        );
        let listed = bounded(subject, "list_managed_volumes", runtime.list_managed_volumes())
            .await
            .unwrap();
        assert!(
            listed.iter().all(|v| v.name != capped.name.as_str()),
            "a refused capped volume is not made"
        );
    }
}

/// A container is created (inspectable by id and name, not running), started (running, its
/// port published, listed by its labels and not by others), restarted, stopped, refused removal
/// while running unless forced (its network and volume are refused removal while it exists), and
/// gone after removal (starting it is `NotFound`); removing it again is no error.
pub async fn a_container_lives_through_create_start_stop_and_remove(subject: &impl RuntimeSubject) {
    let runtime = subject.runtime();
    let setup = setup(subject, "life").await;
    bounded(subject, "ensure_network", runtime.ensure_network(&setup.network))
        .await
        .unwrap();
    bounded(subject, "ensure_volume", runtime.ensure_volume(&setup.volume))
        .await
        .unwrap();
    let id = bounded(subject, "create_container", runtime.create_container(&setup.plan))
        .await
        .unwrap();
    let name = setup.plan.name.as_str();
    let created = bounded(subject, "inspect_container", runtime.inspect_container(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(created.id, id);
    assert_eq!(created.name, name);
    assert_eq!(created.status, ContainerStatus::Created);
    assert_eq!(created.image, setup.plan.image.as_str());
    for (key, value) in &setup.plan.labels {
        assert_eq!(created.labels.get(key), Some(value), "label {key}");
    }
    let by_name = bounded(subject, "inspect_container", runtime.inspect_container(name))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_name.id, id);

    bounded(subject, "start_container", runtime.start_container(&id))
        .await
        .unwrap();
    let started = bounded(subject, "inspect_container", runtime.inspect_container(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(started.status, ContainerStatus::Running);
    let port = setup.plan.ports[0].host_port;
    let published = bounded(
        subject,
        "published_ports",
        runtime.published_ports(subject.ports()),
    )
    .await
    .unwrap();
    assert!(published.contains(&port), "{published:?}");
    let mine = BTreeMap::from([(crate::labels::USER_ID.to_owned(), setup.user.to_string())]);
    let listed = bounded(subject, "list_managed", runtime.list_managed(&mine))
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [id.as_str()]
    );
    let nobody = BTreeMap::from([(
        crate::labels::USER_ID.to_owned(),
        subject.user("nobody").to_string(),
    )]);
    assert!(
        bounded(subject, "list_managed", runtime.list_managed(&nobody))
            .await
            .unwrap()
            .is_empty()
    );
    let stats = bounded(subject, "stats", runtime.stats(&id)).await.unwrap();
    assert_eq!(stats.memory_limit_bytes, setup.plan.memory.bytes());
    bounded(subject, "restart_container", runtime.restart_container(&id))
        .await
        .unwrap();
    let restarted = bounded(subject, "inspect_container", runtime.inspect_container(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(restarted.status, ContainerStatus::Running);

    let err = bounded(
        subject,
        "remove_container",
        runtime.remove_container(&id, RemoveMode::IfStopped),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "removing a running container");
    let err = bounded(
        subject,
        "remove_network",
        runtime.remove_network(setup.network.name.as_str()),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "removing a network in use");
    bounded(subject, "stop_container", runtime.stop_container(&id))
        .await
        .unwrap();
    let stopped = bounded(subject, "inspect_container", runtime.inspect_container(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stopped.status, ContainerStatus::Exited);
    let published = bounded(
        subject,
        "published_ports",
        runtime.published_ports(subject.ports()),
    )
    .await
    .unwrap();
    assert!(
        !published.contains(&port),
        "a stopped container publishes nothing"
    );
    let err = bounded(
        subject,
        "remove_volume",
        runtime.remove_volume(setup.volume.name.as_str()),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Conflict,
        "removing a volume a container holds"
    );
    bounded(
        subject,
        "remove_container",
        runtime.remove_container(&id, RemoveMode::IfStopped),
    )
    .await
    .unwrap();
    let err = bounded(subject, "start_container", runtime.start_container(&id))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "starting a removed container");
    assert_eq!(
        bounded(subject, "inspect_container", runtime.inspect_container(&id))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        bounded(subject, "inspect_container", runtime.inspect_container(name))
            .await
            .unwrap(),
        None
    );
    assert!(
        bounded(subject, "list_managed", runtime.list_managed(&mine))
            .await
            .unwrap()
            .is_empty()
    );
    bounded(
        subject,
        "remove_container",
        runtime.remove_container(&id, RemoveMode::Force),
    )
    .await
    .unwrap();
    bounded(
        subject,
        "remove_volume",
        runtime.remove_volume(setup.volume.name.as_str()),
    )
    .await
    .unwrap();
    bounded(
        subject,
        "remove_network",
        runtime.remove_network(setup.network.name.as_str()),
    )
    .await
    .unwrap();
}

/// A plan of an image the engine does not have is `NotFound` (nothing is pulled); a second
/// container of a taken name is a `Conflict`.
pub async fn a_missing_image_or_a_taken_name_is_refused(subject: &impl RuntimeSubject) {
    let runtime = subject.runtime();
    let setup = setup(subject, "refused").await;
    bounded(subject, "ensure_network", runtime.ensure_network(&setup.network))
        .await
        .unwrap();
    bounded(subject, "ensure_volume", runtime.ensure_volume(&setup.volume))
        .await
        .unwrap();
    let missing = ContainerPlan {
        image: ImageRef::parse("cm-contract-no-such-image:never").unwrap(),
        ..setup.plan.clone()
    };
    let err = bounded(subject, "create_container", runtime.create_container(&missing))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let id = bounded(subject, "create_container", runtime.create_container(&setup.plan))
        .await
        .unwrap();
    let err = bounded(subject, "create_container", runtime.create_container(&setup.plan))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    teardown(subject, &setup, &id).await;
}

/// A command's output and exit code come back: 0 with its output, 1 from `false`, 127 with a
/// "not found" for a missing program; one that outlives its limit is a `Timeout`.
pub async fn exec_gives_output_exit_codes_and_keeps_its_time_limit(subject: &impl RuntimeSubject) {
    let setup = setup(subject, "exec").await;
    let id = running(subject, &setup).await;
    let limit = Duration::from_secs(20);
    let echoed = exec(subject, &id, "echo hello  there", limit).await.unwrap();
    assert_eq!(
        (echoed.exit_code, echoed.stdout.as_str(), echoed.stderr.as_str()),
        (0, "hello there\n", "")
    );
    assert_eq!(exec(subject, &id, "false", limit).await.unwrap().exit_code, 1);
    let missing = exec(subject, &id, "cm-contract-no-such-program", limit)
        .await
        .unwrap();
    assert_eq!(missing.exit_code, 127);
    assert!(missing.stderr.contains("not found"), "{missing:?}");
    let err = exec(subject, &id, "sleep 30", Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    teardown(subject, &setup, &id).await;
}

/// Uploaded files can be downloaded and read by a command; a missing file downloads as `None`.
pub async fn uploaded_files_are_read_back(subject: &impl RuntimeSubject) {
    let runtime = subject.runtime();
    let setup = setup(subject, "files").await;
    let id = running(subject, &setup).await;
    let entries = [
        UploadEntry {
            path: "contract".into(),
            mode: 0o755,
            uid: 0,
            gid: 0,
            contents: None,
        },
        UploadEntry {
            path: "contract/note".into(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            contents: Some(b"written by the contract\n".to_vec()),
        },
    ];
    bounded(subject, "upload", runtime.upload(&id, "/tmp", &entries))
        .await
        .unwrap();
    let read = bounded(subject, "download", runtime.download(&id, "/tmp/contract/note"))
        .await
        .unwrap();
    assert_eq!(read.as_deref(), Some(&b"written by the contract\n"[..]));
    let cat = exec(subject, &id, "cat /tmp/contract/note", Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(
        (cat.exit_code, cat.stdout.as_str()),
        (0, "written by the contract\n")
    );
    let none = bounded(subject, "download", runtime.download(&id, "/tmp/contract/none"))
        .await
        .unwrap();
    assert_eq!(none, None);
    teardown(subject, &setup, &id).await;
}

/// The logs' tail holds the last lines, in order, on stdout.
pub async fn logs_keep_their_tail(subject: &impl RuntimeSubject) {
    let runtime = subject.runtime();
    let setup = setup(subject, "logs").await;
    let id = running(subject, &setup).await;
    let request = LogRequest {
        tail: Some(2),
        follow: false,
        timestamps: false,
        since: None,
    };
    // A real container prints its lines a moment after it starts.
    let mut text = String::new();
    for _ in 0..100 {
        let stream = bounded(subject, "logs", runtime.logs(&id, &request))
            .await
            .unwrap();
        let chunks: Vec<crate::LogChunk> = bounded(subject, "logs", stream.collect::<Vec<_>>())
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert!(chunks.iter().all(|c| c.stream == crate::OutputStream::Stdout));
        text = chunks.iter().map(|c| c.text.as_str()).collect();
        if text.ends_with("line 5\n") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text:?}");
    assert!(
        lines[0].ends_with("line 4") && lines[1].ends_with("line 5"),
        "{text:?}"
    );
    teardown(subject, &setup, &id).await;
}

/// A subscriber to the engine's events hears a container start, start again on a restart, then
/// its removal, by id. A
/// real engine's stream asks the engine when it is first polled, the fake's at once: so the
/// check polls it from the start and starts the container again until a start is heard.
pub async fn events_tell_starts_and_removals(subject: &impl RuntimeSubject) {
    let runtime = subject.runtime();
    let setup = setup(subject, "events").await;
    bounded(subject, "ensure_network", runtime.ensure_network(&setup.network))
        .await
        .unwrap();
    bounded(subject, "ensure_volume", runtime.ensure_volume(&setup.volume))
        .await
        .unwrap();
    let id = bounded(subject, "create_container", runtime.create_container(&setup.plan))
        .await
        .unwrap();
    let mut events = bounded(subject, "container_events", runtime.container_events())
        .await
        .unwrap();
    let (sender, mut heard) = tokio::sync::mpsc::unbounded_channel();
    let collector = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if sender.send(event).is_err() {
                break;
            }
        }
    });
    // Waits up to `wait` for `action` on our container; false when it was not heard.
    let mut hear = async |action: &str, wait: Duration| {
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Some(event)) = tokio::time::timeout_at(deadline, heard.recv()).await {
            let event = event.unwrap();
            if event.id == id && event.action == action {
                return true;
            }
        }
        false
    };
    let mut started = false;
    for _ in 0..30 {
        bounded(subject, "start_container", runtime.start_container(&id))
            .await
            .unwrap();
        if hear("start", Duration::from_secs(2)).await {
            started = true;
            break;
        }
        bounded(subject, "stop_container", runtime.stop_container(&id))
            .await
            .unwrap();
    }
    assert!(started, "no start event was heard");
    bounded(subject, "restart_container", runtime.restart_container(&id))
        .await
        .unwrap();
    assert!(
        hear("start", subject.limit()).await,
        "no start event was heard after a restart"
    );
    bounded(
        subject,
        "remove_container",
        runtime.remove_container(&id, RemoveMode::Force),
    )
    .await
    .unwrap();
    assert!(
        hear("destroy", subject.limit()).await,
        "no destroy event was heard"
    );
    collector.abort();
    bounded(
        subject,
        "remove_volume",
        runtime.remove_volume(setup.volume.name.as_str()),
    )
    .await
    .unwrap();
    bounded(
        subject,
        "remove_network",
        runtime.remove_network(setup.network.name.as_str()),
    )
    .await
    .unwrap();
}

/// A container renamed (as an update puts the old one aside) keeps its id and is found by its new
/// name only; a name in use or a missing container is refused. A runtime that can not rename
/// (Swarm) says so, and refuses as `Unavailable`.
pub async fn a_container_is_renamed_and_found_by_its_new_name(subject: &impl RuntimeSubject) {
    let runtime = subject.runtime();
    let setup = setup(subject, "rename").await;
    let id = running(subject, &setup).await;
    let name = setup.plan.name.as_str();
    let aside = format!("{name}{}", crate::PREVIOUS_SUFFIX);
    if !runtime.renames() {
        let refused = bounded(subject, "rename_container", runtime.rename_container(&id, &aside))
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::Unavailable, "{refused}");
        teardown(subject, &setup, &id).await;
        return;
    }
    bounded(subject, "rename_container", runtime.rename_container(&id, &aside))
        .await
        .unwrap();
    let renamed = bounded(subject, "inspect_container", runtime.inspect_container(&aside))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renamed.id, id);
    assert_eq!(renamed.name, aside);
    assert!(
        bounded(subject, "inspect_container", runtime.inspect_container(name))
            .await
            .unwrap()
            .is_none(),
        "the old name is free"
    );
    // A second container under the old name, then the first may not take it back.
    let second = bounded(subject, "create_container", runtime.create_container(&setup.plan))
        .await
        .unwrap();
    let taken = bounded(subject, "rename_container", runtime.rename_container(&id, name))
        .await
        .unwrap_err();
    assert_eq!(taken.kind(), ErrorKind::Conflict, "{taken}");
    bounded(
        subject,
        "remove_container",
        runtime.remove_container(&second, RemoveMode::Force),
    )
    .await
    .unwrap();
    let missing = bounded(
        subject,
        "rename_container",
        runtime.rename_container("0123456789ab0123456789ab", "nobody-here"),
    )
    .await
    .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");
    teardown(subject, &setup, &id).await;
}

/// The whole engine's listing (what the admin's engine view and adoption read) holds a container
/// with its name, image, state, labels, published ports and network; the full inspection gives
/// its environment, the volume at `/data` and when it was created; an unknown id is `None`.
pub async fn every_container_is_listed_and_one_is_inspected_whole(subject: &impl RuntimeSubject) {
    let runtime = subject.runtime();
    let mut setup = setup(subject, "whole").await;
    setup.plan.env = EnvVars::parse_assignments(&["GREETING=hello"]).unwrap();
    let id = running(subject, &setup).await;
    let all = bounded(subject, "list_all_containers", runtime.list_all_containers())
        .await
        .unwrap();
    let listed = all
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("{id} is not in the listing"));
    assert_eq!(listed.name, setup.plan.name.as_str());
    assert_eq!(listed.image, setup.plan.image.as_str());
    assert_eq!(listed.status, "running");
    assert!(listed.is_managed());
    for (key, value) in &setup.plan.labels {
        assert_eq!(listed.labels.get(key), Some(value), "label {key}");
    }
    let port = setup.plan.ports[0];
    assert_eq!(
        listed.ports.get(&format!("{}/tcp", port.container_port)),
        Some(&port.host_port)
    );
    assert!(
        listed.networks.iter().any(|n| n == setup.network.name.as_str()),
        "{:?}",
        listed.networks
    );

    let whole = bounded(subject, "inspect_foreign", runtime.inspect_foreign(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(whole.observed.id, id);
    assert_eq!(whole.observed.name, setup.plan.name.as_str());
    assert_eq!(whole.env.get("GREETING").map(String::as_str), Some("hello"));
    assert_eq!(whole.data_volume.as_deref(), Some(setup.volume.name.as_str()));
    assert!(
        humantime::parse_rfc3339_weak(&whole.created).is_ok(),
        "created {:?} is an RFC 3339 time",
        whole.created
    );
    assert!(
        bounded(
            subject,
            "inspect_foreign",
            runtime.inspect_foreign("0123456789ab0123456789ab")
        )
        .await
        .unwrap()
        .is_none()
    );
    teardown(subject, &setup, &id).await;
}
