//! Generated sequences against the fakes (#16): creates, deletes, stops, starts and updates of a
//! few users' containers, each possibly killed at one of its steps (as if the process died) or
//! met by a failing engine call (its undo may fail too), with reconciles in between. A model
//! says which containers must exist; after every reconcile the world must agree with it and
//! with itself: every record has its container, every lease, network and route has its record,
//! and a second reconcile finds nothing.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use cm_core::testing::{FakeOp, FakeWorld, as_admin, create_request};
use cm_core::{DeleteOptions, ErrorKind, ReconcileOptions, Store};
use proptest::prelude::*;

const USERS: [&str; 2] = ["alice", "bob"];
const TYPES: [&str; 2] = ["cli_v4", "preview_server"];
const FIX: ReconcileOptions = ReconcileOptions {
    dry_run: false,
    prune: false,
};

/// Something that happens to one use case.
#[derive(Debug, Clone)]
enum Trouble {
    None,
    /// The process dies at this named step.
    Crash(&'static str),
    /// These engine calls fail (several: an undo that fails too).
    Engine(Vec<FakeOp>),
}

#[derive(Debug, Clone)]
enum Step {
    Create(usize, usize, Trouble),
    Delete(usize, usize, bool, Trouble),
    Stop(usize, usize),
    Start(usize, usize),
    Update(usize, usize, Trouble),
    /// The container disappears behind our back (removed with docker).
    Lose(usize, usize),
    /// A reconcile, itself possibly killed or met by failing engine calls.
    Reconcile(Trouble),
}

fn trouble(points: &'static [&'static str]) -> impl Strategy<Value = Trouble> {
    let ops = prop::sample::subsequence(
        vec![
            FakeOp::EnsureNetwork,
            FakeOp::EnsureVolume,
            FakeOp::CreateContainer,
            FakeOp::StartContainer,
            FakeOp::StopContainer,
            FakeOp::RemoveContainer,
            FakeOp::RemoveVolume,
            FakeOp::RemoveNetwork,
            FakeOp::Upload,
        ],
        1..=2,
    );
    prop_oneof![
        4 => Just(Trouble::None),
        1 => prop::sample::select(points).prop_map(Trouble::Crash),
        1 => ops.prop_map(Trouble::Engine),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let who = (0..USERS.len(), 0..TYPES.len());
    prop_oneof![
        3 => (who.clone(), trouble(&["create:network", "create:volume", "create:container", "create:started", "create:recorded"]))
            .prop_map(|((u, t), x)| Step::Create(u, t, x)),
        2 => (who.clone(), any::<bool>(), trouble(&["delete:begun", "delete:container", "delete:volume", "delete:recorded"]))
            .prop_map(|((u, t), purge, x)| Step::Delete(u, t, purge, x)),
        1 => who.clone().prop_map(|(u, t)| Step::Stop(u, t)),
        1 => who.clone().prop_map(|(u, t)| Step::Start(u, t)),
        1 => (who.clone(), trouble(&["update:begun", "update:renamed", "update:container", "update:started"]))
            .prop_map(|((u, t), x)| Step::Update(u, t, x)),
        1 => who.clone().prop_map(|(u, t)| Step::Lose(u, t)),
        2 => trouble(&[
                "recreate:network",
                "recreate:volume",
                "recreate:container",
                "recreate:started",
                "recover-create:container",
                "recover-create:volume",
                "recover-delete:container",
                "recover-update:removed",
            ])
            .prop_map(Step::Reconcile),
    ]
}

fn name(u: usize, t: usize) -> String {
    format!("{}_{}", USERS[u], TYPES[t])
}

/// Runs `work` with `trouble`: `Ok(true)` when it succeeded, `Ok(false)` when it failed or died
/// (a death is followed by the store forgetting who ran the operation, as after a real crash).
async fn with_trouble<F, T>(world: &FakeWorld, trouble: &Trouble, work: F) -> bool
where
    F: std::future::Future<Output = cm_core::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    match trouble {
        Trouble::None => tokio::spawn(work).await.unwrap().is_ok(),
        Trouble::Crash(point) => {
            world.fail_points.arm(Some(point));
            let outcome = tokio::spawn(work).await;
            world.fail_points.arm(None);
            match outcome {
                Ok(result) => result.is_ok(),
                Err(_) => {
                    world.store.crash();
                    false
                }
            }
        }
        Trouble::Engine(ops) => {
            for op in ops {
                world.runtime.fail(*op, ErrorKind::Unavailable);
            }
            let ok = tokio::spawn(work).await.unwrap().is_ok();
            world.runtime.heal();
            ok
        }
    }
}

/// The world agrees with itself and with `model` (the containers that must exist; `None` in
/// `maybe` marks those whose fate a crash or failure left open until this reconcile).
async fn assert_agreement(world: &FakeWorld, model: &BTreeSet<String>, maybe: &BTreeSet<String>) {
    let report = world.manager.reconcile(FIX).await.unwrap();
    let again = world.manager.reconcile(FIX).await.unwrap();
    assert!(
        again.is_clean(),
        "a second reconcile still works: {again:#?} (first: {report:#?})"
    );
    let records: BTreeMap<String, cm_core::ContainerSpec> = world
        .store
        .list_all()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.container_name.to_string(), s))
        .collect();
    let names: BTreeSet<String> = records.keys().cloned().collect();
    for must in model {
        assert!(names.contains(must), "{must} must exist: {names:?}");
    }
    for extra in names.difference(model) {
        assert!(maybe.contains(extra), "{extra} must not exist: model {model:?}");
    }
    let containers: BTreeSet<String> = world.runtime.container_names().into_iter().collect();
    assert_eq!(containers, names, "containers and records");
    let users: BTreeSet<String> = records.values().map(|s| s.user_id.to_string()).collect();
    let networks: BTreeSet<String> = world.runtime.networks().into_iter().collect();
    let expected: BTreeSet<String> = records.values().map(|s| s.network_name.to_string()).collect();
    assert_eq!(networks, expected, "networks of users with containers");
    let subnet_users: BTreeSet<String> = world
        .store
        .subnet_leases()
        .await
        .unwrap()
        .into_iter()
        .map(|(u, _)| u.to_string())
        .collect();
    assert_eq!(subnet_users, users, "subnet leases");
    let lease_owners: BTreeSet<String> = world
        .store
        .port_leases()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.owner)
        .collect();
    assert_eq!(lease_owners, names, "port leases");
    let routes: BTreeSet<String> = world
        .proxy
        .routes_now()
        .into_iter()
        .map(|r| format!("{}_{}", r.user, r.kind))
        .collect();
    assert_eq!(routes, names, "routes");
    assert!(
        world.store.operations().await.unwrap().is_empty(),
        "unfinished intents"
    );
    let volumes: BTreeSet<String> = world.runtime.volumes().into_iter().collect();
    let retained: BTreeSet<String> = world
        .manager
        .retained_volumes()
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.to_string())
        .collect();
    for spec in records.values() {
        assert!(
            volumes.contains(spec.volume_name.as_str()),
            "{} has its volume",
            spec.container_name
        );
    }
    for volume in &volumes {
        let owned = records.values().any(|s| s.volume_name.as_str() == volume);
        assert!(
            owned || retained.contains(volume),
            "volume {volume} is neither used nor kept"
        );
    }
}

async fn run(steps: Vec<Step>) {
    let world = FakeWorld::new();
    let mut model: BTreeSet<String> = BTreeSet::new();
    let mut maybe: BTreeSet<String> = BTreeSet::new();
    for step in steps {
        let manager = world.manager.clone();
        match step {
            Step::Create(u, t, trouble) => {
                let n = name(u, t);
                let existed = model.contains(&n) || maybe.contains(&n);
                let request = create_request(USERS[u], TYPES[t]);
                let ok = with_trouble(
                    &world,
                    &trouble,
                    async move { manager.create(request, &|_| {}).await },
                )
                .await;
                if ok {
                    assert!(!model.contains(&n), "a second {n} was created");
                    model.insert(n);
                } else if !existed && !matches!(trouble, Trouble::None) {
                    // Killed or failed midway: a reconcile decides whether it stays.
                    maybe.insert(n);
                }
            }
            Step::Delete(u, t, purge, trouble) => {
                let n = name(u, t);
                let target = n.clone();
                let ok = with_trouble(&world, &trouble, async move {
                    let container = as_admin(&manager, &target).await?;
                    manager
                        .delete(&container, DeleteOptions { force: true, purge })
                        .await
                })
                .await;
                if ok {
                    assert!(
                        model.contains(&n) || maybe.contains(&n),
                        "deleted {n}, which did not exist"
                    );
                    model.remove(&n);
                    maybe.remove(&n);
                } else if model.remove(&n) {
                    maybe.insert(n);
                }
            }
            Step::Stop(u, t) => {
                let ok = match as_admin(&manager, &name(u, t)).await {
                    Ok(container) => manager.stop(&container).await.is_ok(),
                    Err(_) => false,
                };
                assert!(!ok || model.contains(&name(u, t)) || maybe.contains(&name(u, t)));
            }
            Step::Start(u, t) => {
                let ok = match as_admin(&manager, &name(u, t)).await {
                    Ok(container) => manager.start(&container).await.is_ok(),
                    Err(_) => false,
                };
                assert!(!ok || model.contains(&name(u, t)) || maybe.contains(&name(u, t)));
            }
            Step::Update(u, t, trouble) => {
                let target = name(u, t);
                with_trouble(&world, &trouble, async move {
                    manager.update(&as_admin(&manager, &target).await?, None).await
                })
                .await;
            }
            Step::Lose(u, t) => {
                let n = name(u, t);
                if let Some(lost) = world.runtime.containers().into_iter().find(|c| c.name == n) {
                    cm_core::ContainerRuntime::remove_container(
                        world.runtime.as_ref(),
                        &lost.id,
                        cm_core::RemoveMode::Force,
                    )
                    .await
                    .unwrap();
                }
            }
            Step::Reconcile(trouble) => {
                // A reconcile that dies or fails must leave what the next one finishes.
                with_trouble(&world, &trouble, async move { manager.reconcile(FIX).await }).await;
                assert_agreement(&world, &model, &maybe).await;
                // What the reconcile kept is now certain.
                let names: BTreeSet<String> = world
                    .store
                    .list_all()
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|s| s.container_name.to_string())
                    .collect();
                model = names;
                maybe.clear();
            }
        }
    }
    assert_agreement(&world, &model, &maybe).await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn generated_sequences_with_crashes_and_failures_converge(steps in prop::collection::vec(step(), 1..14)) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(run(steps));
    }
}
