//! The reconciler against the fakes: crashes at every step are finished or undone, lost
//! containers come back, orphans are reported and pruned only when asked.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use cm_core::testing::{FAKE_INSTALLATION, FakeWorld, as_admin, create_request};
use cm_core::{
    ContainerStatus, DeleteOptions, FindingKind, ImageRef, Outcome, ReconcileOptions, Store, labels,
};

const FIX: ReconcileOptions = ReconcileOptions {
    dry_run: false,
    prune: false,
};

/// Runs a use case until the armed fail point panics, as if the process died there.
async fn crash_at<F, T>(world: &FakeWorld, point: &str, work: F)
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    world.fail_points.arm(Some(point));
    let died = tokio::spawn(work).await;
    assert!(died.is_err(), "the fail point {point} was not reached");
    world.fail_points.arm(None);
    world.store.crash();
}

#[tokio::test]
async fn a_create_killed_at_any_step_is_undone_and_can_be_redone() {
    for point in [
        "create:network",
        "create:volume",
        "create:container",
        "create:started",
    ] {
        let world = FakeWorld::new();
        let manager = world.manager.clone();
        crash_at(&world, point, async move {
            manager.create(create_request("alice", "cli_v4"), &|_| {}).await
        })
        .await;
        // The user is not locked out even before a reconcile: the intent belongs to a dead process.
        let report = world.manager.reconcile(FIX).await.unwrap();
        assert_eq!(
            report.of_kind(FindingKind::InterruptedCreate).len(),
            1,
            "{point}: {report:#?}"
        );
        world.assert_empty().await;
        world
            .manager
            .create(create_request("alice", "cli_v4"), &|_| {})
            .await
            .unwrap();
        let again = world.manager.reconcile(FIX).await.unwrap();
        assert!(again.is_clean(), "{point}: {again:#?}");
    }
}

#[tokio::test]
async fn a_create_killed_after_recording_keeps_the_container_and_gets_its_route() {
    let world = FakeWorld::new();
    let manager = world.manager.clone();
    crash_at(&world, "create:recorded", async move {
        manager.create(create_request("alice", "cli_v4"), &|_| {}).await
    })
    .await;
    assert!(world.proxy.routes_now().is_empty());
    let report = world.manager.reconcile(FIX).await.unwrap();
    assert_eq!(report.of_kind(FindingKind::RouteMissing).len(), 1);
    assert_eq!(world.proxy.routes_now().len(), 1);
    assert_eq!(world.runtime.container_names(), ["alice_cli_v4"]);
}

#[tokio::test]
async fn a_create_killed_on_a_users_second_type_keeps_the_first_and_old_data() {
    let world = FakeWorld::new();
    world
        .manager
        .create(create_request("alice", "cli_v4"), &|_| {})
        .await
        .unwrap();
    // Old data of project_dev from an earlier delete without purge.
    world
        .manager
        .create(create_request("alice", "project_dev"), &|_| {})
        .await
        .unwrap();
    let keep = DeleteOptions {
        force: true,
        purge: false,
    };
    world
        .manager
        .delete(
            &as_admin(&world.manager, "alice_project_dev").await.unwrap(),
            keep,
        )
        .await
        .unwrap();
    let manager = world.manager.clone();
    crash_at(&world, "create:started", async move {
        manager
            .create(create_request("alice", "project_dev"), &|_| {})
            .await
    })
    .await;
    world.manager.reconcile(FIX).await.unwrap();
    assert_eq!(world.runtime.container_names(), ["alice_cli_v4"]);
    assert_eq!(
        world.runtime.volumes(),
        ["alice_cli_v4_data", "alice_project_dev_data"]
    );
    assert_eq!(world.runtime.networks(), ["cm-user-alice"]);
    let report = world.manager.reconcile(FIX).await.unwrap();
    assert!(report.is_clean(), "the retained volume is explained: {report:#?}");
}

#[tokio::test]
async fn a_delete_killed_at_any_step_is_finished() {
    for (point, purge) in [
        ("delete:begun", false),
        ("delete:container", false),
        ("delete:container", true),
        ("delete:volume", true),
        ("delete:recorded", false),
    ] {
        let world = FakeWorld::new();
        world
            .manager
            .create(create_request("alice", "cli_v4"), &|_| {})
            .await
            .unwrap();
        let manager = world.manager.clone();
        crash_at(&world, point, async move {
            manager
                .delete(
                    &as_admin(&manager, "alice_cli_v4").await.unwrap(),
                    DeleteOptions { force: true, purge },
                )
                .await
        })
        .await;
        world.manager.reconcile(FIX).await.unwrap();
        assert!(world.runtime.container_names().is_empty(), "{point}");
        assert!(world.store.list_all().await.unwrap().is_empty(), "{point}");
        assert!(world.store.port_leases().await.unwrap().is_empty(), "{point}");
        assert!(
            world.runtime.networks().is_empty(),
            "{point}: {:?}",
            world.runtime.networks()
        );
        let volumes = world.runtime.volumes();
        assert_eq!(volumes.is_empty(), purge, "{point}, purge {purge}: {volumes:?}");
        let clean = world.manager.reconcile(FIX).await.unwrap();
        assert!(clean.is_clean(), "{point}: {clean:#?}");
        world
            .manager
            .create(create_request("alice", "cli_v4"), &|_| {})
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_container_removed_behind_the_back_comes_back_on_the_same_port_with_its_keys() {
    let world = FakeWorld::new();
    let mut req = create_request("alice", "cli_v4");
    req.ssh_keys =
        vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl a@b".into()];
    let spec = world.manager.create(req, &|_| {}).await.unwrap().spec;
    world.runtime.remove_behind_back(&spec.container_id);
    let report = world.manager.reconcile(FIX).await.unwrap();
    let found = report.of_kind(FindingKind::MissingContainer);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].outcome, Outcome::Fixed);
    let back = world
        .manager
        .get(&as_admin(&world.manager, "alice_cli_v4").await.unwrap())
        .await
        .unwrap();
    assert_ne!(back.container_id, spec.container_id);
    assert_eq!((back.port, back.ssh_port), (spec.port, spec.ssh_port));
    assert_eq!(back.status, ContainerStatus::Running);
    let files = &world.runtime.containers()[0].files;
    let keys = files["/home/cli/.ssh/authorized_keys"].2.clone().unwrap();
    assert!(String::from_utf8(keys).unwrap().contains("a@b"));
    assert!(world.manager.reconcile(FIX).await.unwrap().is_clean());
}

#[tokio::test]
async fn a_stopped_container_keeps_its_status_and_a_dry_run_changes_nothing() {
    let world = FakeWorld::new();
    let spec = world
        .manager
        .create(create_request("alice", "preview_server"), &|_| {})
        .await
        .unwrap()
        .spec;
    world
        .runtime
        .set_status(&spec.container_id, ContainerStatus::Exited);
    assert!(world.manager.reconcile(FIX).await.unwrap().is_clean());
    assert_eq!(
        world
            .manager
            .get(&as_admin(&world.manager, "alice_preview_server").await.unwrap())
            .await
            .unwrap()
            .status,
        ContainerStatus::Exited
    );

    world.runtime.remove_behind_back(&spec.container_id);
    let dry = ReconcileOptions {
        dry_run: true,
        prune: false,
    };
    let report = world.manager.reconcile(dry).await.unwrap();
    assert_eq!(
        report.of_kind(FindingKind::MissingContainer)[0].outcome,
        Outcome::WouldFix
    );
    assert!(
        world.runtime.container_names().is_empty(),
        "a dry run does nothing"
    );
}

#[tokio::test]
async fn foreign_containers_and_volumes_with_our_labels_are_reported_and_pruned_only_when_asked() {
    let world = FakeWorld::new();
    world
        .manager
        .create(create_request("alice", "preview_server"), &|_| {})
        .await
        .unwrap();
    // Made by this installation (its label), and by the Python original or another installation
    // (the same managed-by label, no installation label of ours).
    let original = BTreeMap::from([
        ("managed-by".to_owned(), "ContainerManager".to_owned()),
        ("user-id".to_owned(), "mallory".to_owned()),
    ]);
    let mut ours = original.clone();
    ours.insert(labels::INSTALLATION.to_owned(), FAKE_INSTALLATION.to_owned());
    let id = world.runtime.add_foreign("impostor", ours.clone());
    world.runtime.add_volume("stray_volume", ours);
    world
        .runtime
        .add_foreign("mallory_cli_v4_1a2b3c4d", original.clone());
    world
        .runtime
        .add_volume("container_mallory_cli_v4_1a2b3c4d", original);
    let report = world.manager.reconcile(FIX).await.unwrap();
    let containers = report.of_kind(FindingKind::OrphanContainer);
    assert_eq!(containers.len(), 2);
    assert_eq!(
        (containers[0].name.as_str(), containers[0].id.as_deref()),
        ("impostor", Some(id.as_str()))
    );
    assert!(containers.iter().all(|f| f.outcome == Outcome::Reported));
    assert_eq!(report.of_kind(FindingKind::OrphanVolume).len(), 2);
    assert_eq!(world.runtime.container_names().len(), 3, "left alone");

    let prune = ReconcileOptions {
        dry_run: false,
        prune: true,
    };
    let report = world.manager.reconcile(prune).await.unwrap();
    let outcomes = |kind| {
        report
            .of_kind(kind)
            .iter()
            .map(|f| (f.name.clone(), f.outcome))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        outcomes(FindingKind::OrphanContainer),
        [
            ("impostor".to_owned(), Outcome::Removed),
            ("mallory_cli_v4_1a2b3c4d".to_owned(), Outcome::Reported)
        ]
    );
    let left = &report.of_kind(FindingKind::OrphanContainer)[1].detail;
    assert!(left.contains("left alone") && left.contains("cm adopt"), "{left}");
    assert_eq!(
        outcomes(FindingKind::OrphanVolume),
        [
            ("container_mallory_cli_v4_1a2b3c4d".to_owned(), Outcome::Reported),
            ("stray_volume".to_owned(), Outcome::Removed)
        ]
    );
    assert_eq!(
        world.runtime.container_names(),
        ["alice_preview_server", "mallory_cli_v4_1a2b3c4d"]
    );
    assert_eq!(
        world.runtime.volumes(),
        ["alice_preview_server_data", "container_mallory_cli_v4_1a2b3c4d"]
    );
}

#[tokio::test]
async fn update_keeps_port_data_and_keys_and_rolls_back_on_a_bad_image() {
    let world = FakeWorld::new();
    let spec = world
        .manager
        .create(create_request("alice", "cli_v4"), &|_| {})
        .await
        .unwrap()
        .spec;
    world.runtime.add_image("toolboxv2:next");
    let updated = world
        .manager
        .update(
            &as_admin(&world.manager, "alice_cli_v4").await.unwrap(),
            Some(ImageRef::parse("toolboxv2:next").unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(updated.image.as_str(), "toolboxv2:next");
    assert_ne!(updated.container_id, spec.container_id);
    assert_eq!(
        (updated.port, updated.ssh_port, &updated.volume_name),
        (spec.port, spec.ssh_port, &spec.volume_name)
    );
    assert_eq!(world.runtime.container_names(), ["alice_cli_v4"]);

    let err = world
        .manager
        .update(
            &as_admin(&world.manager, "alice_cli_v4").await.unwrap(),
            Some(ImageRef::parse("nope:missing").unwrap()),
        )
        .await
        .unwrap_err();
    assert!(err.message().contains("previous container was restored"), "{err}");
    let after = world
        .manager
        .get(&as_admin(&world.manager, "alice_cli_v4").await.unwrap())
        .await
        .unwrap();
    assert_eq!(after.container_id, updated.container_id);
    assert_eq!(after.status, ContainerStatus::Running);
    assert_eq!(world.runtime.container_names(), ["alice_cli_v4"]);
    assert!(world.store.operations().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_update_killed_midway_is_settled() {
    for point in [
        "update:begun",
        "update:renamed",
        "update:container",
        "update:started",
    ] {
        let world = FakeWorld::new();
        world
            .manager
            .create(create_request("alice", "preview_server"), &|_| {})
            .await
            .unwrap();
        let manager = world.manager.clone();
        crash_at(&world, point, async move {
            manager
                .update(&as_admin(&manager, "alice_preview_server").await.unwrap(), None)
                .await
        })
        .await;
        let report = world.manager.reconcile(FIX).await.unwrap();
        assert_eq!(report.of_kind(FindingKind::InterruptedUpdate).len(), 1, "{point}");
        assert_eq!(
            world.runtime.container_names(),
            ["alice_preview_server"],
            "{point}"
        );
        let spec = world
            .manager
            .get(&as_admin(&world.manager, "alice_preview_server").await.unwrap())
            .await
            .unwrap();
        assert_eq!(spec.status, ContainerStatus::Running, "{point}");
        assert!(world.manager.reconcile(FIX).await.unwrap().is_clean(), "{point}");
    }
}

#[tokio::test]
async fn out_of_date_keys_are_reapplied() {
    let world = FakeWorld::new();
    let spec = world
        .manager
        .create(create_request("alice", "cli_v4"), &|_| {})
        .await
        .unwrap()
        .spec;
    // Someone edits authorized_keys inside the container.
    let rogue = cm_core::UploadEntry {
        path: ".ssh/authorized_keys".into(),
        mode: 0o600,
        uid: 1000,
        gid: 1000,
        contents: Some(b"ssh-ed25519 AAAArogue\n".to_vec()),
    };
    cm_core::ContainerRuntime::upload(world.runtime.as_ref(), &spec.container_id, "/home/cli", &[rogue])
        .await
        .unwrap();
    let report = world.manager.reconcile(FIX).await.unwrap();
    assert_eq!(report.of_kind(FindingKind::KeysOutOfDate).len(), 1);
    assert!(world.manager.reconcile(FIX).await.unwrap().is_clean());
}

#[tokio::test]
async fn listings_follow_the_event_fed_view() {
    let world = FakeWorld::new();
    let view = cm_core::StatusView::new();
    let manager = world.manager.clone().with_status_view(view.clone());
    let feeder = manager.clone();
    let feed_view = view.clone();
    let feed = tokio::spawn(async move { feeder.feed_status_view(feed_view, &|| {}).await });
    let spec = manager
        .create(create_request("alice", "preview_server"), &|_| {})
        .await
        .unwrap()
        .spec;
    for _ in 0..100 {
        if view
            .snapshot()
            .is_some_and(|s| s.get(&spec.container_id) == Some(&ContainerStatus::Running))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(view.is_live());
    world
        .runtime
        .set_status(&spec.container_id, ContainerStatus::Exited);
    let mut seen = ContainerStatus::Running;
    for _ in 0..100 {
        seen = manager.list_all().await.unwrap().containers[0].status;
        if seen == ContainerStatus::Exited {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(seen, ContainerStatus::Exited);
    feed.abort();
}

#[tokio::test]
async fn the_next_create_finishes_an_interrupted_one_without_a_reconcile() {
    let world = FakeWorld::new();
    let manager = world.manager.clone();
    crash_at(&world, "create:container", async move {
        manager.create(create_request("alice", "cli_v4"), &|_| {}).await
    })
    .await;
    let spec = world
        .manager
        .create(create_request("alice", "cli_v4"), &|_| {})
        .await
        .unwrap()
        .spec;
    assert_eq!(world.runtime.container_names(), ["alice_cli_v4"]);
    assert_eq!(
        spec.port, 9000,
        "the interrupted create's ports were released and reused"
    );
    assert!(world.manager.reconcile(FIX).await.unwrap().is_clean());
}

/// A reconcile killed while it finishes another killed operation: the next one converges.
#[tokio::test]
async fn a_crash_inside_recovery_is_finished_by_the_next_reconcile() {
    for (work, recovery) in [
        ("create:container", "recover-create:container"),
        ("create:container", "recover-create:volume"),
        ("delete:begun", "recover-delete:container"),
        ("update:renamed", "recover-update:removed"),
    ] {
        let world = FakeWorld::new();
        let manager = world.manager.clone();
        let kind = "preview_server";
        let name = format!("alice_{kind}");
        let target = name.clone();
        match work.split(':').next() {
            Some("create") => {
                crash_at(&world, work, async move {
                    manager.create(create_request("alice", kind), &|_| {}).await
                })
                .await;
            }
            Some("delete") => {
                manager
                    .create(create_request("alice", kind), &|_| {})
                    .await
                    .unwrap();
                let options = DeleteOptions {
                    force: true,
                    purge: true,
                };
                crash_at(&world, work, async move {
                    manager.delete(&as_admin(&manager, &target).await?, options).await
                })
                .await;
            }
            _ => {
                manager
                    .create(create_request("alice", kind), &|_| {})
                    .await
                    .unwrap();
                crash_at(&world, work, async move {
                    manager.update(&as_admin(&manager, &target).await?, None).await
                })
                .await;
            }
        }
        let manager = world.manager.clone();
        crash_at(&world, recovery, async move { manager.reconcile(FIX).await }).await;
        let report = world.manager.reconcile(FIX).await.unwrap();
        assert!(
            report.findings.iter().all(|f| f.outcome == Outcome::Fixed),
            "{work} then {recovery}: {report:#?}"
        );
        assert!(
            world.manager.reconcile(FIX).await.unwrap().is_clean(),
            "{work} then {recovery}"
        );
        if work.starts_with("update") {
            // The update is rolled back: the container runs under its name again.
            assert_eq!(world.runtime.container_names(), std::slice::from_ref(&name));
            let spec = world
                .manager
                .get(&as_admin(&world.manager, &name).await.unwrap())
                .await
                .unwrap();
            assert_eq!(spec.status, ContainerStatus::Running);
        } else {
            world.assert_empty().await;
        }
    }
}
