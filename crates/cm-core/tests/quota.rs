//! Per-user quotas against the in-memory fakes: refusals name the quota and the use, and leave
//! nothing behind.

#![allow(clippy::unwrap_used)]

use cm_core::testing::{FakeWorld, create_request};
use cm_core::{Config, CpuLimit, ErrorKind, MemoryLimit, UserId, UserQuota};

fn alice() -> UserId {
    UserId::parse("alice").unwrap()
}

#[tokio::test]
async fn creates_over_the_configured_or_overridden_quota_are_refused_and_leave_nothing() {
    let config = Config::from_toml("[quota]\ncontainers = 2\nmemory = \"1g\"\n").unwrap();
    let world = FakeWorld::with_config(config);
    let m = &world.manager;
    m.create(create_request("alice", "cli_v4"), &|_| {})
        .await
        .unwrap();
    // Memory: 512m used, another 512m fits, a third would pass both quotas.
    m.create(create_request("alice", "preview_server"), &|_| {})
        .await
        .unwrap();
    let containers_before = world.runtime.containers().len();
    let refused = m
        .create(create_request("alice", "project_dev"), &|_| {})
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Exhausted);
    assert!(
        refused.message().contains("may have 2 containers and has 2"),
        "{refused}"
    );
    assert_eq!(
        world.runtime.containers().len(),
        containers_before,
        "nothing was made"
    );
    let report = m.quota(&alice()).await.unwrap();
    assert_eq!(report.used.containers, 2);
    assert_eq!(report.used.memory_bytes, 1 << 30);

    // Another user has their own quota.
    m.create(create_request("bob", "project_dev"), &|_| {})
        .await
        .unwrap();

    // The admin raises Alice's count; memory (1g, all used) still refuses.
    let more = UserQuota {
        containers: Some(5),
        ..UserQuota::default()
    };
    let report = m.set_quota(&alice(), Some(more)).await.unwrap();
    assert_eq!(report.limits.containers, Some(5));
    assert_eq!(report.limits.memory, Some(MemoryLimit::parse("1g").unwrap()));
    let refused = m
        .create(create_request("alice", "project_dev"), &|_| {})
        .await
        .unwrap_err();
    assert!(refused.message().contains("1g of memory"), "{refused}");
    // CPUs: an override of 2.5 with 2 used refuses a third full CPU.
    let roomy = UserQuota {
        containers: Some(5),
        memory: Some(MemoryLimit::parse("8g").unwrap()),
        cpus: Some(CpuLimit::from_cpus(2.5).unwrap()),
        disk: None,
    };
    m.set_quota(&alice(), Some(roomy)).await.unwrap();
    let refused = m
        .create(create_request("alice", "project_dev"), &|_| {})
        .await
        .unwrap_err();
    assert!(refused.message().contains("2.5 CPUs"), "{refused}");
    // Clearing the overrides brings the defaults back.
    let report = m.set_quota(&alice(), None).await.unwrap();
    assert_eq!(report.overrides, None);
    assert_eq!(report.limits.containers, Some(2));
}
