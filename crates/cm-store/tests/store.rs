//! The SQLite store: the TBEF.DB keys, atomic leases, and the pool's invariants under random use.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use cm_core::contract::store::spec;
use cm_core::testing::FakeProbe;
use cm_core::{
    Config, ContainerName, ContainerSpec, CreateReservation, ErrorKind, OperationKind, PortRange, Store,
    TypeName, UserId,
};
use cm_store::SqliteStore;
use proptest::prelude::*;

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("cm.db")).unwrap();
    (dir, store)
}

fn name(user: &str, kind: &str) -> ContainerName {
    ContainerName::of(&UserId::parse(user).unwrap(), &TypeName::parse(kind).unwrap())
}

fn reservation(name: &ContainerName, range: PortRange, ports: usize) -> CreateReservation {
    // The tests use these two types; the name is `{user}_{type}`.
    let kind = ["cli_v4", "preview_server"]
        .into_iter()
        .find(|k| name.as_str().ends_with(&format!("_{k}")))
        .unwrap();
    let user = &name.as_str()[..name.as_str().len() - kind.len() - 1];
    CreateReservation {
        name: name.clone(),
        user: UserId::parse(user).unwrap(),
        kind: TypeName::parse(kind).unwrap(),
        range,
        ports,
        exclude: BTreeSet::new(),
        started: SystemTime::now(),
    }
}

fn probe() -> Arc<FakeProbe> {
    Arc::new(FakeProbe::default())
}

fn raw_kv(dir: &tempfile::TempDir) -> BTreeMap<String, String> {
    let connection = rusqlite::Connection::open(dir.path().join("cm.db")).unwrap();
    let mut statement = connection.prepare("SELECT key, value FROM kv").unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn records_use_the_original_keys() {
    let (dir, store) = store();
    let range = PortRange::new(9000, 9500).unwrap();
    let n = name("usr_123", "cli_v4");
    let ports = store
        .begin_create(&reservation(&n, range, 2), probe())
        .await
        .unwrap();
    assert_eq!(ports, [9000, 9001]);
    store
        .finish_create(&spec("usr_123", "cli_v4", "abc123def456", 9000))
        .await
        .unwrap();

    let kv = raw_kv(&dir);
    let record: serde_json::Value = serde_json::from_str(&kv["CONTAINER::abc123def456"]).unwrap();
    for field in [
        "container_id",
        "container_name",
        "container_type",
        "user_id",
        "port",
        "internal_port",
        "image",
        "volume_name",
        "status",
        "created_at",
        "env",
        "ssh_port",
    ] {
        assert!(record.get(field).is_some(), "field {field} in {record}");
    }
    assert_eq!(kv["CONTAINER_USER::usr_123"], r#"["abc123def456"]"#);
    assert_eq!(kv["CONTAINER_PORT_POOL"], "[9000,9001]");
    assert!(store.operations().await.unwrap().is_empty());

    store
        .finish_delete(&spec("usr_123", "cli_v4", "abc123def456", 9000))
        .await
        .unwrap();
    let kv = raw_kv(&dir);
    assert_eq!(kv["CONTAINER_PORT_POOL"], "[]");
    assert!(!kv.contains_key("CONTAINER::abc123def456"));
    assert!(!kv.contains_key("CONTAINER_USER::usr_123"));
}

#[tokio::test]
async fn a_name_is_reserved_once_and_released_by_abandon() {
    let (_dir, store) = store();
    let range = PortRange::new(9000, 9500).unwrap();
    let n = name("alice", "cli_v4");
    store
        .begin_create(&reservation(&n, range, 1), probe())
        .await
        .unwrap();
    let err = store
        .begin_create(&reservation(&n, range, 1), probe())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(store.operations().await.unwrap()[0].kind, OperationKind::Create);
    store.abandon_create(&n).await.unwrap();
    assert!(store.port_leases().await.unwrap().is_empty());
    assert_eq!(
        store
            .begin_create(&reservation(&n, range, 1), probe())
            .await
            .unwrap(),
        [9000]
    );
}

#[tokio::test]
async fn a_put_with_a_new_id_replaces_the_old_record() {
    let (dir, store) = store();
    store
        .finish_create(&spec("alice", "cli_v4", "old", 9000))
        .await
        .unwrap();
    store.put(&spec("alice", "cli_v4", "new", 9000)).await.unwrap();
    let kv = raw_kv(&dir);
    assert!(!kv.contains_key("CONTAINER::old"));
    assert_eq!(kv["CONTAINER_USER::alice"], r#"["new"]"#);
    assert_eq!(
        store
            .get_by_name(&name("alice", "cli_v4"))
            .await
            .unwrap()
            .unwrap()
            .container_id,
        "new"
    );
}

#[tokio::test]
async fn listings_kept_between_changes_see_every_commit_of_this_and_other_processes() {
    let (dir, store) = store();
    let other = SqliteStore::open(&dir.path().join("cm.db")).unwrap();
    let ids =
        |specs: Vec<ContainerSpec>| -> Vec<String> { specs.into_iter().map(|s| s.container_id).collect() };
    assert!(store.list_all().await.unwrap().is_empty());
    let before = store.revision().await.unwrap().unwrap();
    assert_eq!(store.revision().await.unwrap(), Some(before), "nothing changed");

    store
        .finish_create(&spec("alice", "cli_v4", "a", 9000))
        .await
        .unwrap();
    let after_own = store.revision().await.unwrap().unwrap();
    assert_ne!(after_own, before, "its own writer's commit");
    assert_eq!(ids(store.list_all().await.unwrap()), ["a"]);

    other
        .finish_create(&spec("bob", "cli_v4", "b", 9001))
        .await
        .unwrap();
    assert_ne!(
        store.revision().await.unwrap().unwrap(),
        after_own,
        "another process's commit"
    );
    assert_eq!(ids(store.list_all().await.unwrap()), ["a", "b"]);
    let unchanged = store.revision().await.unwrap();
    assert_eq!(ids(store.list_all().await.unwrap()), ["a", "b"]);
    assert_eq!(store.revision().await.unwrap(), unchanged, "reads change nothing");

    other.put(&spec("bob", "cli_v4", "b2", 9001)).await.unwrap();
    assert_eq!(ids(store.list_all().await.unwrap()), ["a", "b2"]);
}

#[tokio::test]
async fn two_stores_on_one_file_never_lease_one_port_twice() {
    let (dir, first) = store();
    let second = SqliteStore::open(&dir.path().join("cm.db")).unwrap();
    let range = PortRange::new(9000, 9500).unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = if i % 2 == 0 { first.clone() } else { second.clone() };
        tasks.push(tokio::spawn(async move {
            let n = name(&format!("u{i}"), "preview_server");
            store
                .begin_create(&reservation(&n, range, 1), probe())
                .await
                .unwrap()
        }));
    }
    let mut ports = BTreeSet::new();
    for task in tasks {
        assert!(ports.insert(task.await.unwrap()[0]));
    }
    assert_eq!(ports.len(), 40);
}

#[tokio::test]
async fn subnets_are_per_user_and_distinct() {
    let (_dir, store) = store();
    let pool = Config::defaults().subnet_pool;
    let alice = UserId::parse("alice").unwrap();
    let bob = UserId::parse("bob").unwrap();
    let a = store.lease_subnet(&alice, pool, &BTreeSet::new()).await.unwrap();
    assert_eq!(
        store.lease_subnet(&alice, pool, &BTreeSet::new()).await.unwrap(),
        a
    );
    let b = store.lease_subnet(&bob, pool, &BTreeSet::new()).await.unwrap();
    assert_ne!(a, b);
    store.release_subnet(&alice).await.unwrap();
    let c = store
        .lease_subnet(&UserId::parse("carol").unwrap(), pool, &BTreeSet::new())
        .await
        .unwrap();
    assert_eq!(c, a, "a released subnet is reused");
}

#[derive(Debug, Clone)]
enum Op {
    Lease { user: u8, ports: usize },
    Release { user: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..12, 1usize..=2).prop_map(|(user, ports)| Op::Lease { user, ports }),
        (0u8..12).prop_map(|user| Op::Release { user }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Never a port outside the range, never one port twice, and release makes ports free again.
    #[test]
    fn the_pool_keeps_its_invariants(ops in proptest::collection::vec(op(), 1..40), busy in proptest::collection::btree_set(20000u16..20016, 0..4)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let (_dir, store) = store();
            let range = PortRange::new(20000, 20015).unwrap();
            let probe = Arc::new(FakeProbe::default());
            for port in &busy {
                probe.hold(*port);
            }
            let mut held: BTreeMap<u8, Vec<u16>> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Lease { user, ports } => {
                        let n = name(&format!("u{user}"), "cli_v4");
                        match store.begin_create(&reservation(&n, range, ports), probe.clone()).await {
                            Ok(leased) => {
                                prop_assert!(!held.contains_key(&user));
                                prop_assert_eq!(leased.len(), ports);
                                for port in &leased {
                                    prop_assert!(range.contains(*port));
                                    prop_assert!(!busy.contains(port));
                                    prop_assert!(held.values().all(|p| !p.contains(port)));
                                }
                                held.insert(user, leased);
                            }
                            Err(e) if e.kind() == ErrorKind::Conflict => prop_assert!(held.contains_key(&user)),
                            Err(e) => {
                                prop_assert_eq!(e.kind(), ErrorKind::Exhausted);
                                let used: usize = held.values().map(Vec::len).sum();
                                prop_assert!(used + busy.len() + ports > range.len());
                            }
                        }
                    }
                    Op::Release { user } => {
                        store.abandon_create(&name(&format!("u{user}"), "cli_v4")).await.unwrap();
                        held.remove(&user);
                    }
                }
                let leased: BTreeSet<u16> = store.port_leases().await.unwrap().iter().map(|l| l.port).collect();
                let expected: BTreeSet<u16> = held.values().flatten().copied().collect();
                prop_assert_eq!(leased, expected);
            }
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn an_operation_is_claimable_only_when_its_process_is_gone() {
    let (dir, store) = store();
    let range = PortRange::new(9000, 9500).unwrap();
    let n = name("alice", "cli_v4");
    store
        .begin_create(&reservation(&n, range, 1), probe())
        .await
        .unwrap();
    store.record_step(&n, "network_created").await.unwrap();
    // The same process, and another store on the same file (another process), see it running.
    assert!(store.claim_abandoned().await.unwrap().is_empty());
    let other = SqliteStore::open(&dir.path().join("cm.db")).unwrap();
    assert!(other.claim_abandoned().await.unwrap().is_empty());
    let err = other
        .begin_create(&reservation(&n, range, 1), probe())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    // The first process dies: its lock goes with it, and the intent can be claimed, once.
    drop(store);
    let claimed = other.claim_abandoned().await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].steps, ["network_created"]);
    assert_eq!(claimed[0].user_id.as_str(), "alice");
    let third = SqliteStore::open(&dir.path().join("cm.db")).unwrap();
    assert!(
        third.claim_abandoned().await.unwrap().is_empty(),
        "claimed by the second store"
    );
    other.abandon_create(&n).await.unwrap();
    assert!(other.operations().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_delete_retains_the_volume_and_a_purge_does_not() {
    let (_dir, store) = store();
    let record = spec("alice", "cli_v4", "id1", 9000);
    store.finish_create(&record).await.unwrap();
    store
        .begin_operation(&record, OperationKind::Delete, SystemTime::now())
        .await
        .unwrap();
    store.finish_delete(&record).await.unwrap();
    assert_eq!(
        store.retained_volumes().await.unwrap()[0].as_str(),
        "alice_cli_v4_data"
    );
    store.finish_create(&record).await.unwrap();
    assert!(store.retained_volumes().await.unwrap().is_empty(), "in use again");
    store
        .begin_operation(&record, OperationKind::Purge, SystemTime::now())
        .await
        .unwrap();
    store.finish_delete(&record).await.unwrap();
    assert!(store.retained_volumes().await.unwrap().is_empty());
}

#[test]
fn many_processes_opening_a_fresh_database_at_once_all_succeed() {
    for _ in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fresh.db");
        std::thread::scope(|scope| {
            let opens: Vec<_> = (0..8).map(|_| scope.spawn(|| SqliteStore::open(&path))).collect();
            for open in opens {
                open.join().unwrap().unwrap();
            }
        });
    }
}

fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn only_the_owner_may_read_the_database_fresh_or_inherited() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // A fresh database in a directory the store makes: 0700 directories, a 0600 file, and the
    // journal files SQLite adds beside it inherit the file's mode.
    let fresh = dir.path().join("state/sub/cm.db");
    let store = SqliteStore::open(&fresh).unwrap();
    store.get_by_name(&name("alice", "cli_v4")).await.unwrap();
    assert_eq!(mode_of(&fresh), 0o600);
    assert_eq!(mode_of(&dir.path().join("state")), 0o700);
    assert_eq!(mode_of(&dir.path().join("state/sub")), 0o700);
    assert_eq!(mode_of(&dir.path().join("state/sub/cm.db.locks")), 0o700);
    let wal = dir.path().join("state/sub/cm.db-wal");
    if wal.exists() {
        assert_eq!(mode_of(&wal), 0o600);
    }
    drop(store);

    // A database an earlier version left world-readable is tightened at start.
    let shared_mode = mode_of(dir.path());
    let old = dir.path().join("old.db");
    drop(SqliteStore::open(&old).unwrap());
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
    let locks = dir.path().join("old.db.locks");
    std::fs::set_permissions(&locks, std::fs::Permissions::from_mode(0o755)).unwrap();
    let reopened = SqliteStore::open(&old).unwrap();
    assert_eq!(mode_of(&old), 0o600);
    assert_eq!(mode_of(&locks), 0o700);
    // The shared directory it lives in is left alone.
    assert_eq!(mode_of(dir.path()), shared_mode);
    reopened.get_by_name(&name("alice", "cli_v4")).await.unwrap();
}

#[tokio::test]
async fn a_database_of_schema_version_1_opens_keeps_its_data_and_gains_quotas_and_token_times() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    // A file as the previous version made it: its schema, one container record, one token.
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection.pragma_update(None, "journal_mode", "WAL").unwrap();
        connection
            .execute_batch(include_str!("fixtures/schema_v1.sql"))
            .unwrap();
        let record = spec("alice", "cli_v4", "abc123", 9000);
        connection
            .execute(
                "INSERT INTO kv (key, value) VALUES (?1, ?2)",
                [
                    format!("CONTAINER::{}", record.container_id),
                    serde_json::to_string(&record).unwrap(),
                ],
            )
            .unwrap();
        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 1);
    }
    let store = SqliteStore::open(&path).unwrap();
    let alice = UserId::parse("alice").unwrap();
    let kept = store.get("abc123").await.unwrap();
    assert_eq!(
        kept.map(|s| s.container_name.to_string()),
        Some("alice_cli_v4".to_owned()),
        "the record of version 1 is still there"
    );
    assert_eq!(store.user_quota(&alice).await.unwrap(), None);
    let quota = cm_core::UserQuota {
        containers: Some(3),
        memory: Some(cm_core::MemoryLimit::parse("2g").unwrap()),
        cpus: Some(cm_core::CpuLimit::from_cpus(1.5).unwrap()),
        disk: Some(cm_core::DiskSize::parse("4g").unwrap()),
    };
    store.set_user_quota(&alice, Some(&quota)).await.unwrap();
    assert_eq!(store.user_quota(&alice).await.unwrap(), Some(quota));
    store.set_user_quota(&alice, None).await.unwrap();
    assert_eq!(store.user_quota(&alice).await.unwrap(), None);
    drop(store);
    let connection = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 5);
}

#[tokio::test]
async fn a_database_of_schema_version_2_keeps_its_quotas_and_gains_a_disk_quota() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.db");
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection.pragma_update(None, "journal_mode", "WAL").unwrap();
        connection
            .execute_batch(include_str!("fixtures/schema_v2.sql"))
            .unwrap();
        connection
            .execute(
                "INSERT INTO quotas (user_id, containers, memory_bytes, nano_cpus) VALUES ('bob', 2, NULL, 500000000)",
                [],
            )
            .unwrap();
        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 2);
    }
    let store = SqliteStore::open(&path).unwrap();
    let bob = UserId::parse("bob").unwrap();
    let kept = store.user_quota(&bob).await.unwrap().unwrap();
    assert_eq!(kept.containers, Some(2), "the version-2 override is still there");
    assert_eq!(kept.cpus, Some(cm_core::CpuLimit::from_cpus(0.5).unwrap()));
    assert_eq!(kept.disk, None, "no disk override until one is set");
    let with_disk = cm_core::UserQuota {
        disk: Some(cm_core::DiskSize::parse("1g").unwrap()),
        ..kept
    };
    store.set_user_quota(&bob, Some(&with_disk)).await.unwrap();
    assert_eq!(store.user_quota(&bob).await.unwrap(), Some(with_disk));
}

#[tokio::test]
async fn the_installation_id_is_drawn_once_and_kept_in_the_database() {
    let (dir, store) = store();
    let id = store.installation_id().unwrap();
    assert_eq!(id.len(), 16, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    assert_eq!(store.installation_id().unwrap(), id);
    let reopened = SqliteStore::open(&dir.path().join("cm.db")).unwrap();
    assert_eq!(reopened.installation_id().unwrap(), id);
    // Another database is another installation.
    let (_other_dir, other) = self::store();
    assert_ne!(other.installation_id().unwrap(), id);
    // The id sits beside the original's keys without being one of them.
    assert!(store.list_all().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_database_of_schema_version_3_keeps_its_data_and_gains_the_audit_trail() {
    use cm_core::{Actor, AuditEntry, AuditLog, AuditQuery, AuditSource};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v3.db");
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection.pragma_update(None, "journal_mode", "WAL").unwrap();
        connection
            .execute_batch(include_str!("fixtures/schema_v3.sql"))
            .unwrap();
        connection
            .execute(
                "INSERT INTO quotas (user_id, containers, memory_bytes, nano_cpus, disk_bytes) VALUES ('bob', 2, NULL, NULL, 1073741824)",
                [],
            )
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let bob = UserId::parse("bob").unwrap();
    let kept = store.user_quota(&bob).await.unwrap().unwrap();
    assert_eq!(kept.containers, Some(2));
    assert_eq!(kept.disk, Some(cm_core::DiskSize::parse("1g").unwrap()));

    // The trail: appended, read newest first, by user, target and time, pruned by age.
    let alice = UserId::parse("alice").unwrap();
    let entries = [
        AuditEntry::new(Actor::Admin, AuditSource::Api, "create_container")
            .on("alice_cli_v4", Some(&alice))
            .with_params(serde_json::json!({"user_id": "alice"})),
        AuditEntry::new(
            Actor::User(alice.clone()),
            AuditSource::Dashboard,
            "stop_container",
        )
        .on("alice_cli_v4", None)
        .from(Some("192.0.2.7".parse().unwrap())),
        AuditEntry::new(Actor::Local("root".into()), AuditSource::Cli, "delete_container")
            .on("bob_custom", Some(&bob))
            .failed("conflict"),
        AuditEntry::new(Actor::Anonymous, AuditSource::Route, "sign_in").failed("unauthorized"),
    ];
    for entry in &entries {
        store.append(entry).await.unwrap();
    }
    let all = store.query(&AuditQuery::default()).await.unwrap();
    let actions: Vec<&str> = all.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "sign_in",
            "delete_container",
            "stop_container",
            "create_container"
        ]
    );
    assert_eq!(all[1].result, "conflict");
    assert_eq!(all[1].actor, Actor::Local("root".into()));
    assert_eq!(all[2].address, Some("192.0.2.7".parse().unwrap()));
    assert_eq!(all[3].params["user_id"], "alice");
    let alices = store
        .query(&AuditQuery {
            user: Some(alice.clone()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(alices.len(), 2, "{alices:?}");
    let on_bobs = store
        .query(&AuditQuery {
            target: Some("bob_custom".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(on_bobs.len(), 1);
    let later = SystemTime::now() + std::time::Duration::from_secs(3600);
    let none = store
        .query(&AuditQuery {
            since: Some(later),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
    assert_eq!(store.prune(later).await.unwrap(), 4);
    assert!(store.query(&AuditQuery::default()).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_database_of_schema_version_4_keeps_its_trail_and_gains_idle_marks_that_outlive_a_restart() {
    use cm_core::{AuditLog, AuditQuery, OperationKind};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v4.db");
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection.pragma_update(None, "journal_mode", "WAL").unwrap();
        connection
            .execute_batch(include_str!("fixtures/schema_v4.sql"))
            .unwrap();
        connection
            .execute(
                "INSERT INTO audit (at, at_unix, actor_kind, actor_name, source, action, target, subject, params, result, address)
                 VALUES ('2026-12-01T10:00:00Z', 1796119200, 'admin', NULL, 'api', 'stop_container', 'alice_custom', 'alice', '{}', 'ok', NULL)",
                [],
            )
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let kept = store.query(&AuditQuery::default()).await.unwrap();
    assert_eq!(kept.len(), 1, "the version-4 trail is still there");
    assert_eq!(kept[0].action, "stop_container");
    assert!(store.idle_stopped().await.unwrap().is_empty());

    // Marks: set (again is fine), listed with their time, kept across a reopen (a restart of
    // cm-api), dropped on purpose or with the record.
    let alice = name("alice", "custom");
    let bob = name("bob", "custom");
    let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
    store.mark_idle_stopped(&alice, at).await.unwrap();
    store.mark_idle_stopped(&alice, at).await.unwrap();
    store.mark_idle_stopped(&bob, at).await.unwrap();
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    let marks = store.idle_stopped().await.unwrap();
    assert_eq!(marks.keys().collect::<Vec<_>>(), [&alice, &bob]);
    assert_eq!(marks[&alice], at);
    assert!(store.clear_idle_stopped(&alice).await.unwrap());
    assert!(!store.clear_idle_stopped(&alice).await.unwrap(), "gone already");
    let record = spec("bob", "custom", "b0b", 20001);
    store.put(&record).await.unwrap();
    store
        .begin_operation(&record, OperationKind::Delete, SystemTime::now())
        .await
        .unwrap();
    store.finish_delete(&record).await.unwrap();
    assert!(
        store.idle_stopped().await.unwrap().is_empty(),
        "deleted with its record"
    );
    drop(store);
    let connection = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 5);
}
