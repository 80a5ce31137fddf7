//! The use cases against the in-memory fakes: every failure point of create leaves nothing behind.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cm_core::testing::{FakeOp, FakeWorld, as_admin, create_request};
use cm_core::{Command, Config, CreateForm, CreateRequest, DeleteOptions, ErrorKind, Manager, Store, UserId};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop";

async fn create(manager: &Manager, user: &str, kind: &str) -> cm_core::Result<cm_core::CreateOutcome> {
    manager.create(create_request(user, kind), &|_| {}).await
}

#[tokio::test]
async fn create_builds_the_container_the_seed_describes() {
    let world = FakeWorld::new();
    let outcome = create(&world.manager, "usr_123", "cli_v4").await.unwrap();
    let spec = &outcome.spec;
    assert_eq!(spec.container_name.as_str(), "usr_123_cli_v4");
    assert_eq!(spec.volume_name.as_str(), "usr_123_cli_v4_data");
    assert_eq!(spec.port, 9000);
    assert_eq!(spec.ssh_port, Some(9001));
    assert_eq!(spec.url_path, "/container/usr_123/cli_v4/");
    for (key, value) in [
        ("USER_ID", "usr_123"),
        ("CONTAINER_TYPE", "cli_v4"),
        ("PORT", "8080"),
        ("BASE_PATH", "/container/usr_123/cli_v4/"),
    ] {
        assert_eq!(spec.env.get(key), Some(value), "{key}");
    }
    let container = &world.runtime.containers()[0];
    assert_eq!(container.plan.labels["managed-by"], "ContainerManager");
    assert_eq!(container.plan.labels["user-id"], "usr_123");
    assert_eq!(container.plan.labels["container-type"], "cli_v4");
    assert_eq!(container.plan.labels["port"], "9000");
    assert_eq!(container.plan.labels["ssh-port"], "9001");
    let http = container.plan.ports[0];
    assert_eq!(http.host_ip.to_string(), "127.0.0.1");
    assert_eq!(world.proxy.routes_now().len(), 1);
    assert_eq!(world.runtime.networks(), ["cm-user-usr_123"]);
}

#[tokio::test]
async fn hostile_input_is_refused_before_anything_is_touched() {
    let world = FakeWorld::new();
    for user in ["../x", "a;b", "a b", "{a}", "a\nb", &"x".repeat(64)] {
        let form = CreateForm {
            user_id: user.into(),
            container_type: "cli_v4".into(),
            ..CreateForm::default()
        };
        let err = CreateRequest::parse(&form, world.manager.config()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(err.field(), Some("user_id"));
    }
    let form = CreateForm {
        user_id: "alice".into(),
        container_type: "nope".into(),
        ..CreateForm::default()
    };
    let err = CreateRequest::parse(&form, world.manager.config()).unwrap_err();
    assert!(err.message().contains("configured types are"), "{err}");
    world.assert_empty().await;
}

#[tokio::test]
async fn reserved_environment_and_ssh_on_a_type_without_ssh_are_refused() {
    let world = FakeWorld::new();
    let mut req = create_request("alice", "project_dev");
    req.ssh_keys = vec![KEY.into()];
    let err = world.manager.create(req, &|_| {}).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let mut req = create_request("alice", "cli_v4");
    req.env = cm_core::EnvVars::parse_assignments(&["USER_ID=bob"]).unwrap();
    assert_eq!(
        world.manager.create(req, &|_| {}).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    world.assert_empty().await;
}

#[tokio::test]
async fn every_failure_point_of_create_leaves_nothing_behind() {
    for op in [
        FakeOp::EngineInfo,
        FakeOp::EnsureNetwork,
        FakeOp::EnsureVolume,
        FakeOp::CreateContainer,
        FakeOp::Upload,
        FakeOp::StartContainer,
    ] {
        let world = FakeWorld::new();
        world.runtime.fail(op, ErrorKind::Internal);
        let err = create(&world.manager, "alice", "cli_v4").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal, "{op:?}");
        world.assert_empty().await;
        // The user is not locked out: the next create works.
        world.runtime.heal();
        create(&world.manager, "alice", "cli_v4").await.unwrap();
    }
}

#[tokio::test]
async fn a_missing_image_is_not_found_and_leaves_nothing() {
    let world = FakeWorld::new();
    let mut req = create_request("alice", "custom");
    req.image = Some(cm_core::ImageRef::parse("nope:missing").unwrap());
    let err = world.manager.create(req, &|_| {}).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    world.assert_empty().await;
}

#[tokio::test]
async fn a_failed_create_of_a_second_type_keeps_the_users_network_and_first_container() {
    let world = FakeWorld::new();
    create(&world.manager, "alice", "cli_v4").await.unwrap();
    world.runtime.fail(FakeOp::StartContainer, ErrorKind::Internal);
    create(&world.manager, "alice", "project_dev").await.unwrap_err();
    assert_eq!(world.runtime.container_names(), ["alice_cli_v4"]);
    assert_eq!(world.runtime.networks(), ["cm-user-alice"]);
    assert_eq!(world.store.port_leases().await.unwrap().len(), 2);
}

#[tokio::test]
async fn existing_data_volume_is_kept_when_a_recreate_fails() {
    let world = FakeWorld::new();
    create(&world.manager, "alice", "preview_server").await.unwrap();
    let force = DeleteOptions {
        force: true,
        purge: false,
    };
    world
        .manager
        .delete(
            &as_admin(&world.manager, "alice_preview_server").await.unwrap(),
            force,
        )
        .await
        .unwrap();
    assert_eq!(world.runtime.volumes(), ["alice_preview_server_data"]);
    world.runtime.fail(FakeOp::StartContainer, ErrorKind::Internal);
    create(&world.manager, "alice", "preview_server")
        .await
        .unwrap_err();
    assert_eq!(
        world.runtime.volumes(),
        ["alice_preview_server_data"],
        "old data survives"
    );
}

#[tokio::test]
async fn a_second_container_of_a_user_and_type_is_a_conflict_naming_the_first() {
    let world = FakeWorld::new();
    let first = create(&world.manager, "alice", "cli_v4").await.unwrap();
    let err = create(&world.manager, "alice", "cli_v4").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.message().contains("alice_cli_v4"), "{err}");
    assert!(err.message().contains(first.spec.short_id()), "{err}");
}

#[tokio::test]
async fn ports_skip_busy_and_foreign_ports_and_exhaust_clearly() {
    let config = Config::from_toml("port_pool = { start = 20000, end = 20003 }").unwrap();
    let world = FakeWorld::with_config(config);
    world.probe.hold(20000);
    world.runtime.publish_foreign_port(20001);
    let spec = create(&world.manager, "alice", "preview_server")
        .await
        .unwrap()
        .spec;
    assert_eq!(spec.port, 20002);
    let spec = create(&world.manager, "bob", "preview_server")
        .await
        .unwrap()
        .spec;
    assert_eq!(spec.port, 20003);
    let err = create(&world.manager, "carol", "preview_server")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Exhausted);
    assert!(err.message().contains("20000-20003"), "{err}");
}

#[tokio::test]
async fn delete_keeps_data_unless_purged_and_frees_everything_else() {
    let world = FakeWorld::new();
    create(&world.manager, "alice", "cli_v4").await.unwrap();
    let err = world
        .manager
        .delete(
            &as_admin(&world.manager, "alice_cli_v4").await.unwrap(),
            DeleteOptions {
                force: false,
                purge: false,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "a running container needs force");
    world
        .manager
        .delete(
            &as_admin(&world.manager, "alice_cli_v4").await.unwrap(),
            DeleteOptions {
                force: true,
                purge: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(world.runtime.volumes(), ["alice_cli_v4_data"]);
    assert!(world.runtime.networks().is_empty());
    assert!(world.store.port_leases().await.unwrap().is_empty());
    assert!(world.proxy.routes_now().is_empty());

    create(&world.manager, "alice", "cli_v4").await.unwrap();
    world
        .manager
        .delete(
            &as_admin(&world.manager, "alice_cli_v4").await.unwrap(),
            DeleteOptions {
                force: true,
                purge: true,
            },
        )
        .await
        .unwrap();
    world.assert_empty().await;
}

#[tokio::test]
async fn delete_with_the_engine_down_changes_nothing() {
    let world = FakeWorld::new();
    create(&world.manager, "alice", "cli_v4").await.unwrap();
    world.runtime.set_down(true);
    let err = world
        .manager
        .delete(
            &as_admin(&world.manager, "alice_cli_v4").await.unwrap(),
            DeleteOptions {
                force: true,
                purge: true,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    world.runtime.set_down(false);
    assert_eq!(world.store.list_all().await.unwrap().len(), 1);
    assert!(world.store.operations().await.unwrap().is_empty());
    assert_eq!(world.runtime.container_names(), ["alice_cli_v4"]);
}

#[tokio::test]
async fn containers_are_found_by_name_id_and_unique_prefix() {
    let world = FakeWorld::new();
    let a = create(&world.manager, "alice", "cli_v4").await.unwrap().spec;
    let b = create(&world.manager, "bob", "cli_v4").await.unwrap().spec;
    assert_eq!(
        world
            .manager
            .get(&as_admin(&world.manager, "alice_cli_v4").await.unwrap())
            .await
            .unwrap()
            .container_id,
        a.container_id
    );
    assert_eq!(
        world
            .manager
            .get(&as_admin(&world.manager, &a.container_id).await.unwrap())
            .await
            .unwrap()
            .container_name,
        a.container_name
    );
    // The fake ids are 01c0ffee..., 02c0ffee...
    assert_eq!(
        world
            .manager
            .get(&as_admin(&world.manager, &b.container_id[..3]).await.unwrap())
            .await
            .unwrap()
            .container_name,
        b.container_name
    );
    let err = as_admin(&world.manager, &a.container_id[..1]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "ambiguous prefix");
    let err = as_admin(&world.manager, "nothing").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn list_shows_live_statuses_and_stale_ones_when_the_engine_is_down() {
    let world = FakeWorld::new();
    let spec = create(&world.manager, "alice", "cli_v4").await.unwrap().spec;
    create(&world.manager, "bob", "project_dev").await.unwrap();
    world
        .runtime
        .set_status(&spec.container_id, cm_core::ContainerStatus::Exited);
    let listing = world.manager.list_all().await.unwrap();
    assert_eq!(listing.containers.len(), 2);
    assert_eq!(listing.containers[0].status, cm_core::ContainerStatus::Exited);
    assert!(listing.stale.is_none());
    let alice = world
        .manager
        .list_user(&UserId::parse("alice").unwrap())
        .await
        .unwrap();
    assert_eq!(alice.containers.len(), 1);
    world.runtime.set_down(true);
    let listing = world.manager.list_all().await.unwrap();
    assert!(listing.stale.is_some());
    assert_eq!(listing.containers.len(), 2);
}

#[tokio::test]
async fn exec_reports_exit_codes_and_refuses_stopped_containers() {
    let world = FakeWorld::new();
    create(&world.manager, "alice", "cli_v4").await.unwrap();
    let out = world
        .manager
        .exec(
            &as_admin(&world.manager, "alice_cli_v4").await.unwrap(),
            Command::parse("echo hi").unwrap(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!((out.exit_code, out.stdout.as_str()), (0, "hi\n"));
    let out = world
        .manager
        .exec(
            &as_admin(&world.manager, "alice_cli_v4").await.unwrap(),
            Command::parse("false").unwrap(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 1);
    world
        .manager
        .stop(&as_admin(&world.manager, "alice_cli_v4").await.unwrap())
        .await
        .unwrap();
    let err = world
        .manager
        .exec(
            &as_admin(&world.manager, "alice_cli_v4").await.unwrap(),
            Command::parse("echo hi").unwrap(),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
}

#[tokio::test]
async fn keys_are_stored_rendered_and_reapplied_at_start() {
    let world = FakeWorld::new();
    let mut req = create_request("alice", "cli_v4");
    req.ssh_keys = vec![KEY.into()];
    let spec = world.manager.create(req, &|_| {}).await.unwrap().spec;
    let files = &world.runtime.containers()[0].files;
    let (mode, uid, contents) = &files["/home/cli/.ssh/authorized_keys"];
    assert_eq!((*mode, *uid), (0o600, 1000));
    assert!(String::from_utf8_lossy(contents.as_ref().unwrap()).contains("alice@laptop\n"));
    assert_eq!(files["/home/cli/.ssh"].0, 0o700);

    let again = world
        .manager
        .add_ssh_key(&as_admin(&world.manager, "alice_cli_v4").await.unwrap(), KEY)
        .await
        .unwrap();
    assert!(!again.added, "adding the same key twice is idempotent");
    world
        .manager
        .stop(&as_admin(&world.manager, "alice_cli_v4").await.unwrap())
        .await
        .unwrap();
    let fingerprint = again.key.fingerprint().to_owned();
    world
        .manager
        .remove_ssh_key(
            &as_admin(&world.manager, "alice_cli_v4").await.unwrap(),
            &fingerprint,
        )
        .await
        .unwrap();
    assert!(
        world
            .manager
            .ssh_keys(&as_admin(&world.manager, "alice_cli_v4").await.unwrap())
            .await
            .unwrap()
            .is_empty()
    );
    world
        .manager
        .start(&as_admin(&world.manager, &spec.container_id).await.unwrap())
        .await
        .unwrap();
    let files = &world.runtime.containers()[0].files;
    let text =
        String::from_utf8_lossy(files["/home/cli/.ssh/authorized_keys"].2.as_ref().unwrap()).into_owned();
    assert!(
        !text.contains("ssh-ed25519"),
        "the removed key is gone after start: {text}"
    );
}

#[tokio::test]
async fn a_refused_route_keeps_the_container_and_reports_nginx() {
    let world = FakeWorld::new();
    world.proxy.refuse_with("nginx: [emerg] unexpected \"}\"");
    let outcome = create(&world.manager, "alice", "cli_v4").await.unwrap();
    assert!(outcome.route_error.unwrap().contains("emerg"));
    assert_eq!(world.runtime.container_names(), ["alice_cli_v4"]);
}

/// Someone binds a leased port between the pool's probe and the engine's bind: the create tries
/// other ports (a few times) instead of failing, and leaves nothing of the failed tries.
#[tokio::test]
async fn a_port_taken_at_bind_time_is_retried_with_other_ports() {
    let world = FakeWorld::new();
    let first = Config::defaults().port_pool.start();
    world.runtime.grab_port_at_bind(first);
    world.runtime.grab_port_at_bind(first + 1);
    let outcome = create(&world.manager, "alice", "preview_server").await.unwrap();
    assert!(
        ![first, first + 1].contains(&outcome.spec.port),
        "a grabbed port was used: {}",
        outcome.spec.port
    );
    assert_eq!(world.runtime.container_names(), ["alice_preview_server"]);
    let leases: Vec<u16> = world
        .store
        .port_leases()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.port)
        .collect();
    assert_eq!(leases, [outcome.spec.port], "no lease of a failed try is left");
    assert!(world.store.operations().await.unwrap().is_empty());

    // When every try meets a taken port, the create fails once it has tried a few sets.
    let crowded = FakeWorld::new();
    for port in first..first + 10 {
        crowded.runtime.grab_port_at_bind(port);
    }
    let err = create(&crowded.manager, "bob", "preview_server")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.message().contains("already allocated"), "{}", err.message());
    crowded.assert_empty().await;
}

#[tokio::test]
async fn a_handle_does_only_what_its_principal_may_do() {
    let config =
        Config::from_toml("[auth]\nuser_actions = [\"start\", \"stop\", \"restart\", \"delete\"]\n").unwrap();
    let world = FakeWorld::with_config(config);
    create(&world.manager, "alice", "cli_v4").await.unwrap();
    let alice = cm_core::Principal::User(UserId::parse("alice").unwrap());
    // Made for reading, which a user may always do: the handle carries who it acts for, and every
    // use case checks its own action against it.
    let read = world
        .manager
        .authorized(&alice, "alice_cli_v4", cm_core::Action::ReadContainer)
        .await
        .unwrap();
    let err = world
        .manager
        .exec(&read, Command::parse("true").unwrap(), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Forbidden,
        "exec is left out of user_actions"
    );
    let err = world.manager.update(&read, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden, "update is the admin's");
    let purge = DeleteOptions {
        force: true,
        purge: true,
    };
    let err = world.manager.delete(&read, purge).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden, "purging data is the admin's");
    assert_eq!(err.field(), Some("purge"));
    assert_eq!(world.runtime.containers().len(), 1, "nothing was touched");
    // What the user may do works with the same handle, once resolved.
    world.manager.stop(&read).await.unwrap();
    let keep = DeleteOptions {
        force: false,
        purge: false,
    };
    world.manager.delete(&read, keep).await.unwrap();
    assert!(world.runtime.containers().is_empty());
}
