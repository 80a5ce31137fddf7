//! Container health against the in-memory fakes: an early exit fails the create (undone), a
//! crash-looping container says so with its last lines, the sampler fills the history.

#![allow(clippy::unwrap_used)]

use cm_core::testing::{FakeWorld, as_admin, create_request};
use cm_core::{ContainerStatus, ErrorKind, ImageRef};

#[tokio::test]
async fn a_container_that_exits_at_once_fails_its_create_and_leaves_nothing() {
    let world = FakeWorld::new();
    world.runtime.add_crashing_image("crash:local");
    let mut request = create_request("alice", "custom");
    request.image = Some(ImageRef::parse("crash:local").unwrap());
    let err = world.manager.create(request, &|_| {}).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.message().contains("exited at once with code 1"),
        "{}",
        err.message()
    );
    assert!(err.message().contains("alice_custom line 5"), "{}", err.message());
    world.assert_empty().await;
}

#[tokio::test]
async fn without_the_exit_check_a_crash_looping_container_is_created_and_reported_as_such() {
    let mut config = cm_core::Config::defaults();
    config.health.exit_check = std::time::Duration::ZERO;
    let world = FakeWorld::with_config(config);
    world.runtime.add_crashing_image("crash:local");
    let mut request = create_request("alice", "custom");
    request.image = Some(ImageRef::parse("crash:local").unwrap());
    let outcome = world.manager.create(request, &|_| {}).await.unwrap();
    assert_eq!(outcome.spec.status, ContainerStatus::CrashLooping);
    assert_eq!(outcome.spec.status.to_string(), "crash-looping");
    assert_eq!(
        serde_json::to_value(outcome.spec.status).unwrap(),
        serde_json::json!("crash-looping")
    );

    let health = world.manager.health(&outcome.spec).await.unwrap();
    assert_eq!(health.status, ContainerStatus::CrashLooping);
    assert!(health.is_failing());
    assert_eq!(health.exit_code, 1);
    assert_eq!(health.restart_count, cm_core::CRASH_LOOP_RESTARTS);
    assert_eq!(health.uptime_seconds, None);
    assert_eq!(health.last_log_lines.last().unwrap(), "alice_custom line 5");

    // Deleting it without force is refused: the engine keeps starting it.
    let err = world
        .manager
        .delete(
            &as_admin(&world.manager, "alice_custom").await.unwrap(),
            cm_core::DeleteOptions {
                force: false,
                purge: false,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
}

#[tokio::test]
async fn a_healthy_container_reports_use_and_no_lines_and_the_sampler_keeps_a_history() {
    let world = FakeWorld::new();
    let outcome = world
        .manager
        .create(create_request("alice", "custom"), &|_| {})
        .await
        .unwrap();
    let health = world.manager.health(&outcome.spec).await.unwrap();
    assert_eq!(health.status, ContainerStatus::Running);
    assert!(!health.is_failing());
    assert!(health.last_log_lines.is_empty());
    assert_eq!(health.memory_bytes, 1 << 24);
    assert!(health.uptime_seconds.is_some());
    assert!(health.history.is_empty());

    assert_eq!(world.manager.sample_usage().await.unwrap(), 1);
    assert_eq!(world.manager.sample_usage().await.unwrap(), 1);
    let health = world.manager.health(&outcome.spec).await.unwrap();
    assert_eq!(health.history.len(), 2);
    assert_eq!(health.history[0].memory_bytes, 1 << 24);

    // A stopped container is not sampled; a deleted one is forgotten.
    world
        .manager
        .stop(&as_admin(&world.manager, "alice_custom").await.unwrap())
        .await
        .unwrap();
    assert_eq!(world.manager.sample_usage().await.unwrap(), 0);
    world
        .manager
        .delete(
            &as_admin(&world.manager, "alice_custom").await.unwrap(),
            cm_core::DeleteOptions {
                force: false,
                purge: false,
            },
        )
        .await
        .unwrap();
    world.manager.sample_usage().await.unwrap();
    assert!(world.manager.health(&outcome.spec).await.is_err());
}
