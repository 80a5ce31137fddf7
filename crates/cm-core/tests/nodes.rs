//! Placement over the nodes of a cluster (a runtime with nodes, such as Swarm), against the
//! in-memory fakes: where creates go, what `nodes` reports, a node that is down, and where the
//! route check sends requests.

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};

use cm_core::testing::{FakeOp, FakeWorld, as_admin, create_request};
use cm_core::{
    ContainerStatus, CreateForm, CreateRequest, ErrorKind, ImageRef, NodeInfo, NodeName, NodeState,
    Principal, RouteAnswer, Store, TypeName, UserId,
};

const GIB: u64 = 1 << 30;

fn node(name: &str, last_octet: u8, memory_gib: u64) -> NodeInfo {
    NodeInfo {
        name: NodeName::parse(name).unwrap(),
        id: format!("id-{name}"),
        address: IpAddr::from([10, 99, 0, last_octet]),
        state: NodeState::Ready,
        schedulable: true,
        manager: last_octet == 1,
        memory_bytes: memory_gib * GIB,
        cpus: 2.0,
    }
}

/// Three nodes, and renames refused as Swarm refuses them.
fn cluster() -> FakeWorld {
    let world = FakeWorld::new();
    world.runtime.refuse_renames();
    world
        .runtime
        .set_nodes(vec![node("n1", 1, 4), node("n2", 2, 4), node("n3", 3, 2)]);
    world
}

fn on(world: &FakeWorld, user: &str, kind: &str, node: Option<&str>) -> CreateRequest {
    let form = CreateForm {
        user_id: user.into(),
        container_type: kind.into(),
        node: node.map(str::to_owned),
        ..CreateForm::default()
    };
    CreateRequest::parse(&form, world.manager.config()).unwrap()
}

/// Creates `user`'s `kind` on `node`, which must succeed: the record.
async fn create_on(world: &FakeWorld, user: &str, kind: &str, node: Option<&str>) -> cm_core::ContainerSpec {
    world
        .manager
        .create(on(world, user, kind, node), &|_| {})
        .await
        .unwrap()
        .spec
}

#[tokio::test]
async fn a_single_engine_places_nothing_and_refuses_a_node() {
    let world = FakeWorld::new();
    let spec = world
        .manager
        .create(create_request("alice", "cli_v4"), &|_| {})
        .await
        .unwrap()
        .spec;
    assert_eq!(spec.node, None);
    assert!(world.manager.nodes().await.unwrap().is_empty());
    let err = world
        .manager
        .create(on(&world, "bob", "cli_v4", Some("n1")), &|_| {})
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.field(), Some("node"));
    assert_eq!(world.runtime.containers().len(), 1, "nothing was made for bob");
    // A record of a single engine says nothing of nodes on the wire.
    assert!(!serde_json::to_string(&spec).unwrap().contains("node"));
}

#[tokio::test]
async fn creates_go_where_the_most_memory_is_free_and_stay_pinned() {
    let world = cluster();
    let mut placed = Vec::new();
    for user in ["a", "b", "c", "d"] {
        let spec = world
            .manager
            .create(create_request(user, "project_dev"), &|_| {})
            .await
            .unwrap()
            .spec;
        placed.push(spec.node.unwrap().to_string());
    }
    // 4, 4 and 2 GiB free at first, 512 MiB each: n1 (a tie goes by name), n2 (more free), n1
    // (a tie again), n2.
    assert_eq!(placed, ["n1", "n2", "n1", "n2"]);
    // The engine was told, and the record keeps it.
    let pinned: Vec<Option<String>> = world
        .runtime
        .containers()
        .iter()
        .map(|c| c.plan.node.as_ref().map(ToString::to_string))
        .collect();
    assert!(pinned.iter().all(Option::is_some), "{pinned:?}");
    let a = as_admin(&world.manager, "a_project_dev").await.unwrap();
    assert_eq!(a.spec().node.as_ref().unwrap().as_str(), "n1");

    let reports = world.manager.nodes().await.unwrap();
    let seen: Vec<(&str, usize, u64)> = reports
        .iter()
        .map(|r| (r.node.name.as_str(), r.containers, r.reserved_memory_bytes))
        .collect();
    assert_eq!(seen, [("n1", 2, GIB), ("n2", 2, GIB), ("n3", 0, 0)]);
    assert_eq!(reports[0].free_memory_bytes(), 3 * GIB);
}

#[tokio::test]
async fn a_chosen_node_must_exist_and_take_containers() {
    let world = cluster();
    let spec = create_on(&world, "alice", "cli_v4", Some("n3")).await;
    assert_eq!(spec.node.unwrap().as_str(), "n3");

    let err = world
        .manager
        .create(on(&world, "bob", "cli_v4", Some("n9")), &|_| {})
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.message().contains("n1 (ready), n2 (ready), n3 (ready)"),
        "{err}"
    );

    world.runtime.set_node_state("n2", NodeState::Down);
    let err = world
        .manager
        .create(on(&world, "bob", "cli_v4", Some("n2")), &|_| {})
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(err.field(), Some("node"));
    // Left to choose, it never picks a node that is down.
    let spec = world
        .manager
        .create(create_request("carol", "cli_v4"), &|_| {})
        .await
        .unwrap()
        .spec;
    assert_eq!(spec.node.unwrap().as_str(), "n1");

    let bad = CreateForm {
        user_id: "dave".into(),
        container_type: "cli_v4".into(),
        node: Some("n1; rm -rf /".into()),
        ..CreateForm::default()
    };
    let err = CreateRequest::parse(&bad, world.manager.config()).unwrap_err();
    assert_eq!(err.field(), Some("node"));
    assert_eq!(world.runtime.containers().len(), 2);
}

#[tokio::test]
async fn a_node_going_down_shows_its_containers_as_node_down_and_routes_go_to_the_node() {
    let world = cluster();
    create_on(&world, "alice", "preview_server", Some("n2")).await;
    create_on(&world, "bob", "preview_server", Some("n3")).await;
    let alice = UserId::parse("alice").unwrap();
    let kind = TypeName::parse("preview_server").unwrap();
    let answer = world
        .manager
        .check_route(Some(&Principal::User(alice.clone())), &alice, &kind)
        .await
        .unwrap();
    let spec = as_admin(&world.manager, "alice_preview_server")
        .await
        .unwrap()
        .into_spec();
    match answer {
        RouteAnswer::Allow { upstream, .. } => {
            assert_eq!(upstream, SocketAddr::from(([10, 99, 0, 2], spec.port)));
        }
        denied => panic!("the owner is let through: {denied:?}"),
    }

    world.runtime.set_node_state("n2", NodeState::Down);
    let handle = as_admin(&world.manager, "alice_preview_server").await.unwrap();
    assert_eq!(
        world.manager.get(&handle).await.unwrap().status,
        ContainerStatus::NodeDown
    );
    let bob = as_admin(&world.manager, "bob_preview_server").await.unwrap();
    assert_eq!(
        world.manager.get(&bob).await.unwrap().status,
        ContainerStatus::Running,
        "another node's containers are unaffected"
    );
    assert_eq!(ContainerStatus::NodeDown.as_str(), "node-down");
}

fn name(node: &str) -> NodeName {
    NodeName::parse(node).unwrap()
}

#[tokio::test]
async fn a_move_copies_the_data_re_creates_on_the_target_and_routes_there() {
    let world = cluster();
    let created = create_on(&world, "alice", "preview_server", Some("n1")).await;
    let alice = as_admin(&world.manager, "alice_preview_server").await.unwrap();
    let moved = world.manager.move_container(&alice, &name("n2")).await.unwrap();
    assert_eq!(moved.from.as_str(), "n1");
    assert_eq!(moved.copied_bytes, 4096);
    assert_eq!(moved.spec.node.as_ref().unwrap().as_str(), "n2");
    assert_ne!(moved.spec.container_id, created.container_id, "re-created");
    assert_eq!(moved.spec.port, created.port, "the same ports");
    let volume = created.volume_name.to_string();
    assert_eq!(
        world.runtime.copies(),
        [(volume.clone(), "n1".to_owned(), "n2".to_owned())]
    );
    assert_eq!(world.runtime.removed_on(), [(volume, "n1".to_owned())]);
    let containers = world.runtime.containers();
    assert_eq!(containers.len(), 1, "the old container is gone");
    assert_eq!(containers[0].plan.node.as_ref().unwrap().as_str(), "n2");
    assert_eq!(containers[0].status, ContainerStatus::Running);
    assert!(world.store.operations().await.unwrap().is_empty());

    let owner = UserId::parse("alice").unwrap();
    let answer = world
        .manager
        .check_route(
            Some(&Principal::User(owner.clone())),
            &owner,
            &TypeName::parse("preview_server").unwrap(),
        )
        .await
        .unwrap();
    assert!(
        matches!(answer, RouteAnswer::Allow { upstream, .. } if upstream.ip() == IpAddr::from([10, 99, 0, 2])),
        "{answer:?}"
    );
}

#[tokio::test]
async fn a_move_is_refused_where_it_can_not_keep_the_data() {
    let single = FakeWorld::new();
    single
        .manager
        .create(create_request("alice", "cli_v4"), &|_| {})
        .await
        .unwrap();
    let alice = as_admin(&single.manager, "alice_cli_v4").await.unwrap();
    let err = single
        .manager
        .move_container(&alice, &name("n2"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");

    let world = cluster();
    create_on(&world, "alice", "cli_v4", Some("n1")).await;
    let alice = as_admin(&world.manager, "alice_cli_v4").await.unwrap();
    let err = world
        .manager
        .move_container(&alice, &name("n1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    let err = world
        .manager
        .move_container(&alice, &name("n7"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    world.runtime.set_node_state("n3", NodeState::Down);
    let err = world
        .manager
        .move_container(&alice, &name("n3"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    // From a node that is down, its data can not be read: never re-created empty elsewhere.
    world.runtime.set_node_state("n1", NodeState::Down);
    let err = world
        .manager
        .move_container(&alice, &name("n2"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.message().contains("bring the node back"), "{err}");
    assert!(world.runtime.copies().is_empty());
    assert_eq!(world.runtime.containers().len(), 1);
    let unchanged = as_admin(&world.manager, "alice_cli_v4").await.unwrap();
    assert_eq!(unchanged.spec().node.as_ref().unwrap().as_str(), "n1");
}

#[tokio::test]
async fn a_failed_copy_brings_the_container_back_on_its_node() {
    let world = cluster();
    create_on(&world, "alice", "cli_v4", Some("n1")).await;
    world.runtime.fail(FakeOp::CopyVolume, ErrorKind::Unavailable);
    let alice = as_admin(&world.manager, "alice_cli_v4").await.unwrap();
    let err = world
        .manager
        .move_container(&alice, &name("n2"))
        .await
        .unwrap_err();
    assert!(
        err.message()
            .starts_with("move of alice_cli_v4 to node n2 failed and it is back on node n1"),
        "{err}"
    );
    world.runtime.heal();
    assert_eq!(
        world.runtime.removed_on(),
        [("alice_cli_v4_data".to_owned(), "n2".to_owned())],
        "whatever reached the target is removed"
    );
    let containers = world.runtime.containers();
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].plan.node.as_ref().unwrap().as_str(), "n1");
    assert_eq!(
        containers[0].status,
        ContainerStatus::Running,
        "it ran, so it runs again"
    );
    let record = as_admin(&world.manager, "alice_cli_v4").await.unwrap();
    assert_eq!(
        record.spec().container_id,
        containers[0].id,
        "the record follows the re-created one"
    );
    assert_eq!(record.spec().node.as_ref().unwrap().as_str(), "n1");
    assert!(world.store.operations().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_update_without_renames_replaces_the_container_and_restores_it_on_failure() {
    let world = cluster();
    create_on(&world, "alice", "cli_v4", Some("n2")).await;
    let alice = as_admin(&world.manager, "alice_cli_v4").await.unwrap();
    let updated = world
        .manager
        .update(&alice, Some(ImageRef::parse("toolboxv2:dev").unwrap()))
        .await
        .unwrap();
    assert_eq!(updated.image.as_str(), "toolboxv2:dev");
    assert_eq!(
        updated.node.as_ref().unwrap().as_str(),
        "n2",
        "it stays on its node"
    );
    assert_eq!(world.runtime.containers().len(), 1);

    let alice = as_admin(&world.manager, "alice_cli_v4").await.unwrap();
    let err = world
        .manager
        .update(&alice, Some(ImageRef::parse("nope:missing").unwrap()))
        .await
        .unwrap_err();
    assert!(
        err.message().starts_with(
            "update of alice_cli_v4 to nope:missing failed and the previous container was restored"
        ),
        "{err}"
    );
    let containers = world.runtime.containers();
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].plan.image.as_str(), "toolboxv2:dev");
    assert_eq!(containers[0].status, ContainerStatus::Running);
    let record = as_admin(&world.manager, "alice_cli_v4").await.unwrap();
    assert_eq!(record.spec().container_id, containers[0].id);
    assert!(world.store.operations().await.unwrap().is_empty());
}

#[tokio::test]
async fn watching_the_nodes_marks_containers_on_a_down_node_in_listings_and_metrics() {
    let world = cluster();
    let view = cm_core::StatusView::new();
    let manager = world.manager.clone().with_status_view(view.clone());
    let feeder = manager.clone();
    let fed = view.clone();
    let feed = tokio::spawn(async move { feeder.feed_status_view(fed, &|| {}).await });
    let alice = manager
        .create(on(&world, "alice", "cli_v4", Some("n2")), &|_| {})
        .await
        .unwrap()
        .spec;
    let bob = manager
        .create(on(&world, "bob", "cli_v4", Some("n3")), &|_| {})
        .await
        .unwrap()
        .spec;
    let says = |id: String, status: ContainerStatus| {
        let view = view.clone();
        async move {
            let said = tokio::time::timeout(std::time::Duration::from_secs(10), async {
                while view.snapshot_of(&id) != Some(status) {
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
            })
            .await;
            assert!(said.is_ok(), "the view never said {status} of {id}");
        }
    };
    says(alice.container_id.clone(), ContainerStatus::Running).await;
    assert_eq!(manager.watch_nodes().await.unwrap(), 0);

    world.runtime.set_node_state("n2", NodeState::Down);
    assert_eq!(manager.watch_nodes().await.unwrap(), 1);
    let listing = manager.list_all().await.unwrap();
    let status_of = |name: &str| {
        listing
            .containers
            .iter()
            .find(|c| c.container_name.as_str() == name)
            .map(|c| c.status)
    };
    assert_eq!(status_of("alice_cli_v4"), Some(ContainerStatus::NodeDown));
    assert_eq!(status_of("bob_cli_v4"), Some(ContainerStatus::Running));
    let metrics = manager.metrics_text().await.unwrap();
    assert!(metrics.contains("cm_nodes{state=\"down\"} 1"), "{metrics}");
    assert!(metrics.contains("cm_nodes{state=\"ready\"} 2"), "{metrics}");
    assert!(
        metrics.contains("cm_containers{state=\"node-down\",type=\"cli_v4\"} 1"),
        "{metrics}"
    );

    world.runtime.set_node_state("n2", NodeState::Ready);
    assert_eq!(manager.watch_nodes().await.unwrap(), 0);
    says(alice.container_id.clone(), ContainerStatus::Running).await;
    says(bob.container_id.clone(), ContainerStatus::Running).await;
    feed.abort();
}

#[tokio::test]
async fn a_stopped_container_moves_stopped_and_a_stale_handle_is_refused() {
    let world = cluster();
    create_on(&world, "alice", "cli_v4", Some("n1")).await;
    let alice = as_admin(&world.manager, "alice_cli_v4").await.unwrap();
    world.manager.stop(&alice).await.unwrap();
    let moved = world.manager.move_container(&alice, &name("n2")).await.unwrap();
    assert_eq!(moved.spec.status, ContainerStatus::Exited, "it moves as it was");
    assert_eq!(moved.downtime, std::time::Duration::ZERO);
    assert_eq!(world.runtime.containers()[0].status, ContainerStatus::Exited);

    // `alice` was made before the move: its container is gone, and nothing acts on it.
    let err = world
        .manager
        .delete(
            &alice,
            cm_core::DeleteOptions {
                force: true,
                purge: false,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    let err = world
        .manager
        .move_container(&alice, &name("n3"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert_eq!(
        world.runtime.containers().len(),
        1,
        "the moved container is untouched"
    );
    assert!(world.store.operations().await.unwrap().is_empty());
    let fresh = as_admin(&world.manager, "alice_cli_v4").await.unwrap();
    assert_eq!(fresh.spec().node.as_ref().unwrap().as_str(), "n2");
}

#[tokio::test]
async fn a_route_to_a_node_gone_from_the_cluster_is_refused_not_sent_to_localhost() {
    let world = cluster();
    create_on(&world, "alice", "preview_server", Some("n3")).await;
    // n3 leaves the cluster, and the next listing (the sampler's, every round) says so.
    world.runtime.set_nodes(vec![node("n1", 1, 4), node("n2", 2, 4)]);
    assert_eq!(world.manager.nodes().await.unwrap().len(), 2);
    let alice = UserId::parse("alice").unwrap();
    let kind = TypeName::parse("preview_server").unwrap();
    let answer = world
        .manager
        .check_route(Some(&Principal::User(alice.clone())), &alice, &kind)
        .await
        .unwrap();
    assert!(
        matches!(
            answer,
            RouteAnswer::Deny {
                denial: cm_core::RouteDenial::NotRunning(ContainerStatus::NodeDown)
            }
        ),
        "{answer:?}"
    );
}

#[tokio::test]
async fn a_start_during_a_moves_copy_is_refused_and_the_move_finishes() {
    let world = cluster();
    create_on(&world, "alice", "cli_v4", Some("n1")).await;
    let alice = as_admin(&world.manager, "alice_cli_v4").await.unwrap();
    let gate = world.runtime.hold_copies();
    let target = name("n2");
    let moving = world.manager.move_container(&alice, &target);
    let meanwhile = async {
        gate.entered.notified().await;
        let handle = as_admin(&world.manager, "alice_cli_v4").await.unwrap();
        let start = world.manager.start(&handle).await.unwrap_err();
        let restart = world.manager.restart(&handle).await.unwrap_err();
        gate.release.notify_one();
        (start, restart)
    };
    let (moved, (start, restart)) = tokio::join!(moving, meanwhile);
    for refused in [start, restart] {
        assert_eq!(refused.kind(), ErrorKind::Conflict, "{refused}");
        assert!(
            refused.to_string().contains("being updated or moved"),
            "{refused}"
        );
    }
    let moved = moved.unwrap();
    assert_eq!(moved.spec.node.as_ref().unwrap().as_str(), "n2");
    assert_eq!(moved.spec.status, ContainerStatus::Running);
    assert!(world.store.operations().await.unwrap().is_empty());
    let fresh = as_admin(&world.manager, "alice_cli_v4").await.unwrap();
    world.manager.restart(&fresh).await.unwrap();
}

#[tokio::test]
async fn keys_are_written_again_when_the_runtime_restarts_a_container_afresh() {
    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop";
    let world = cluster();
    world.runtime.start_afresh();
    let view = cm_core::StatusView::new();
    let manager = world.manager.clone().with_status_view(view.clone());
    let (feeder, fed) = (manager.clone(), view.clone());
    let feed = tokio::spawn(async move { feeder.feed_status_view(fed, &|| {}).await });
    let spec = create_on(&world, "alice", "cli_v4", None).await;
    let alice = as_admin(&manager, "alice_cli_v4").await.unwrap();
    manager.add_ssh_key(&alice, KEY).await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while !view.is_live() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();

    let keys = |world: &cm_core::testing::FakeWorld| {
        world.runtime.containers()[0]
            .files
            .get("/home/cli/.ssh/authorized_keys")
            .and_then(|(_, _, contents)| contents.clone())
            .map(|c| String::from_utf8_lossy(&c).into_owned())
    };
    assert!(keys(&world).unwrap().contains("alice@laptop"));
    world.runtime.restart_behind_back(&spec.container_id);
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while !keys(&world).is_some_and(|k| k.contains("alice@laptop")) {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the feed writes the keys into the fresh container");
    feed.abort();
}

#[tokio::test]
async fn ssh_lines_name_the_node_a_container_runs_on() {
    let config = cm_core::Config::from_toml(
        "[ssh]\nserver_host = \"cm.example.org\"\n\
         [runtime]\nkind = \"swarm\"\n[runtime.nodes]\nn2 = \"tcp://10.99.0.2:2375\"\n",
    )
    .unwrap();
    let world = cm_core::testing::FakeWorld::with_config(config);
    world.runtime.refuse_renames();
    world.runtime.set_nodes(vec![node("n1", 1, 4), node("n2", 2, 4)]);
    create_on(&world, "alice", "cli_v4", Some("n2")).await;
    create_on(&world, "bob", "cli_v4", Some("n1")).await;
    let on_worker = as_admin(&world.manager, "alice_cli_v4").await.unwrap();
    let info = world.manager.ssh_info(&on_worker).await.unwrap();
    assert_eq!(
        info.host, "10.99.0.2",
        "a worker's container is reached at the worker"
    );
    assert!(info.command.contains("10.99.0.2"), "{}", info.command);
    let on_this_host = as_admin(&world.manager, "bob_cli_v4").await.unwrap();
    let info = world.manager.ssh_info(&on_this_host).await.unwrap();
    assert_eq!(
        info.host, "cm.example.org",
        "the local engine's node is this host"
    );
}
