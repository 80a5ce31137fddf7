//! The [`Store`] contract: reservations and leases, operations and their takeover after a crash,
//! records, subnets, retained volumes, quotas, keys, idle marks and the revision.
//!
//! Run it with [`crate::store_contract!`] and a [`StoreSubject`]. A subject models processes: its
//! [`StoreSubject::store`] is one process's view; [`StoreSubject::crash`] kills that process and
//! hands back the view of another one on the same data, the way a real `cm` dies and the next
//! one finds its unfinished operation.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::testing::FakeProbe;
use crate::{
    Config, ContainerName, ContainerSpec, ContainerStatus, CreateReservation, EnvVars, ErrorKind,
    NetworkName, OperationKind, PortRange, SshPublicKey, Store, Subnet, SubnetPool, TypeName, UserId,
    VolumeName,
};

/// A store under test, as seen by one process.
pub trait StoreSubject: Send {
    /// The store of the living process.
    fn store(&self) -> &dyn Store;
    /// The process that ran this store's operations dies (its claims go with it); afterwards
    /// [`StoreSubject::store`] is another process's store over the same data.
    fn crash(&mut self);
}

/// Turns the store contract into one `#[tokio::test]` per check, in a module `store_contract`,
/// each over a fresh subject made by `$make` (an expression giving a [`StoreSubject`]).
#[macro_export]
macro_rules! store_contract {
    ($make:expr) => {
        mod store_contract {
            #[allow(unused_imports)]
            use super::*;

            $crate::store_contract!(@checks $make;
                a_create_reserves_the_name_and_leases_the_lowest_free_ports,
                a_finished_create_keeps_its_leases_and_is_a_record,
                an_abandoned_create_frees_its_name_ports_and_keys,
                steps_are_recorded_in_order,
                an_operation_conflicts_with_one_running,
                an_operation_is_claimable_only_once_its_process_is_gone,
                a_delete_takes_over_an_interrupted_delete_but_nothing_else_does,
                a_delete_retains_the_volume_and_a_purge_does_not,
                a_put_with_a_new_id_replaces_the_record,
                listings_are_sorted_by_name_and_per_user,
                an_adoption_conflicts_with_records_operations_and_leases,
                subnets_are_kept_per_user_and_distinct,
                quotas_are_set_and_cleared,
                keys_are_kept_once_in_order,
                idle_marks_are_set_cleared_and_dropped_with_the_record,
                a_revision_changes_with_every_commit,
            );
        }
    };
    (@checks $make:expr; $($check:ident),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $check() {
                let mut subject = $make;
                $crate::contract::store::$check(&mut subject).await;
            }
        )*
    };
}

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

fn kind(name: &str) -> TypeName {
    TypeName::parse(name).unwrap()
}

fn name(user_id: &str, kind_name: &str) -> ContainerName {
    ContainerName::of(&user(user_id), &kind(kind_name))
}

fn range() -> PortRange {
    PortRange::new(9000, 9500).unwrap()
}

fn reservation(user_id: &str, kind_name: &str, ports: usize) -> CreateReservation {
    CreateReservation {
        name: name(user_id, kind_name),
        user: user(user_id),
        kind: kind(kind_name),
        range: range(),
        ports,
        exclude: BTreeSet::new(),
        started: SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600),
    }
}

fn probe() -> Arc<FakeProbe> {
    Arc::new(FakeProbe::default())
}

/// A record of `user`'s container of `kind` (a default type) with id `id` on `port` (the store
/// tests of cm-store use it too).
pub fn spec(user_id: &str, kind_name: &str, id: &str, port: u16) -> ContainerSpec {
    let config = Config::defaults();
    let t = config.container_type(kind_name).unwrap();
    let (u, k) = (user(user_id), kind(kind_name));
    ContainerSpec {
        container_id: id.to_owned(),
        container_name: ContainerName::of(&u, &k),
        volume_name: VolumeName::of(&u, &k),
        network_name: NetworkName::of(&u),
        container_type: k,
        user_id: u,
        port,
        internal_port: t.internal_port,
        image: t.image.clone(),
        status: ContainerStatus::Running,
        created_at: "2026-01-01T00:00:00Z".to_owned(),
        env: EnvVars::new(),
        ssh_port: None,
        subnet: Subnet::parse("10.201.0.0/28").unwrap(),
        command: None,
        memory: t.memory,
        cpus: t.cpus,
        pids_limit: t.pids_limit,
        url_path: format!("/container/{user_id}/{kind_name}/"),
        disk: None,
        node: None,
    }
}

fn key(tail: &str) -> SshPublicKey {
    let body = format!("AAAAC3NzaC1lZDI1NTE5AAAAI{tail:0>16}");
    SshPublicKey::from_parsed(
        &format!("ssh-ed25519 {body} {tail}@host"),
        &format!("SHA256:{tail}"),
        &format!("{tail}@host"),
    )
    .unwrap()
}

async fn leases_of(store: &dyn Store, owner: &str) -> Vec<u16> {
    store
        .port_leases()
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.owner == owner)
        .map(|l| l.port)
        .collect()
}

async fn names(specs: crate::Result<Vec<ContainerSpec>>) -> Vec<String> {
    specs
        .unwrap()
        .iter()
        .map(|s| s.container_name.to_string())
        .collect()
}

/// `begin_create` leases the lowest ports that are neither leased, excluded nor held on the
/// host, records a create intent, and refuses a name with an intent.
pub async fn a_create_reserves_the_name_and_leases_the_lowest_free_ports(subject: &mut impl StoreSubject) {
    let store = subject.store();
    let ports = store
        .begin_create(&reservation("alice", "cli_v4", 2), probe())
        .await
        .unwrap();
    assert_eq!(ports, [9000, 9001]);
    assert_eq!(leases_of(store, "alice_cli_v4").await, [9000, 9001]);
    let operations = store.operations().await.unwrap();
    assert_eq!(operations.len(), 1);
    let op = &operations[0];
    assert_eq!(op.name.as_str(), "alice_cli_v4");
    assert_eq!(op.user_id.as_str(), "alice");
    assert_eq!(op.container_type.as_str(), "cli_v4");
    assert_eq!(op.kind, OperationKind::Create);
    assert_eq!(op.started_at, 1_767_225_600);
    assert!(op.steps.is_empty());
    let again = store
        .begin_create(&reservation("alice", "cli_v4", 1), probe())
        .await;
    assert_eq!(again.unwrap_err().kind(), ErrorKind::Conflict);
    // Excluded ports and ports held on the host are skipped.
    let mut request = reservation("bob", "cli_v4", 1);
    request.exclude.insert(9002);
    let held = probe();
    held.hold(9003);
    assert_eq!(store.begin_create(&request, held).await.unwrap(), [9004]);
    assert_eq!(store.operations().await.unwrap().len(), 2);
}

/// `finish_create` stores the record, clears the intent and keeps the leases; the name is then
/// taken for another create.
pub async fn a_finished_create_keeps_its_leases_and_is_a_record(subject: &mut impl StoreSubject) {
    let store = subject.store();
    let ports = store
        .begin_create(&reservation("alice", "cli_v4", 1), probe())
        .await
        .unwrap();
    let record = spec("alice", "cli_v4", "id-1", ports[0]);
    store.finish_create(&record).await.unwrap();
    assert!(store.operations().await.unwrap().is_empty());
    assert_eq!(leases_of(store, "alice_cli_v4").await, [9000]);
    assert_eq!(store.get("id-1").await.unwrap(), Some(record.clone()));
    assert_eq!(store.get("id-2").await.unwrap(), None);
    assert_eq!(
        store.get_by_name(&name("alice", "cli_v4")).await.unwrap(),
        Some(record.clone())
    );
    assert_eq!(store.list_all().await.unwrap(), std::slice::from_ref(&record));
    assert_eq!(store.list_user(&user("alice")).await.unwrap(), [record]);
    assert!(store.list_user(&user("bob")).await.unwrap().is_empty());
    let again = store
        .begin_create(&reservation("alice", "cli_v4", 1), probe())
        .await;
    assert_eq!(again.unwrap_err().kind(), ErrorKind::Conflict);
}

/// `abandon_create` releases the leases, drops the keys added meanwhile and clears the intent.
pub async fn an_abandoned_create_frees_its_name_ports_and_keys(subject: &mut impl StoreSubject) {
    let store = subject.store();
    let n = name("alice", "cli_v4");
    store
        .begin_create(&reservation("alice", "cli_v4", 2), probe())
        .await
        .unwrap();
    assert!(
        store
            .add_key(&n, &key("a"), SystemTime::UNIX_EPOCH)
            .await
            .unwrap()
    );
    store.abandon_create(&n).await.unwrap();
    assert!(store.operations().await.unwrap().is_empty());
    assert!(store.port_leases().await.unwrap().is_empty());
    assert!(store.keys(&n).await.unwrap().is_empty());
    let ports = store
        .begin_create(&reservation("alice", "cli_v4", 1), probe())
        .await
        .unwrap();
    assert_eq!(ports, [9000], "the ports are free again");
}

/// Steps are kept in the order they were recorded; a step of no operation changes nothing.
pub async fn steps_are_recorded_in_order(subject: &mut impl StoreSubject) {
    let store = subject.store();
    let n = name("alice", "cli_v4");
    store
        .begin_create(&reservation("alice", "cli_v4", 1), probe())
        .await
        .unwrap();
    for step in ["network_created", "volume_created", "container_created"] {
        store.record_step(&n, step).await.unwrap();
    }
    store
        .record_step(&name("bob", "cli_v4"), "network_created")
        .await
        .unwrap();
    let operations = store.operations().await.unwrap();
    assert_eq!(operations.len(), 1);
    assert_eq!(
        operations[0].steps,
        ["network_created", "volume_created", "container_created"]
    );
}

/// While a living process runs an operation on a name, another operation on it is a conflict;
/// ending it frees the name.
pub async fn an_operation_conflicts_with_one_running(subject: &mut impl StoreSubject) {
    let store = subject.store();
    let record = spec("alice", "cli_v4", "id-1", 9000);
    store.finish_create(&record).await.unwrap();
    let now = SystemTime::now();
    store
        .begin_operation(&record, OperationKind::Update, now)
        .await
        .unwrap();
    for kind in [OperationKind::Update, OperationKind::Delete, OperationKind::Purge] {
        let err = store.begin_operation(&record, kind, now).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{kind:?} during an update");
    }
    let op = store.operations().await.unwrap();
    assert_eq!(op.len(), 1);
    assert_eq!(op[0].kind, OperationKind::Update);
    store.end_operation(&record.container_name).await.unwrap();
    assert!(store.operations().await.unwrap().is_empty());
    assert_eq!(
        store.get("id-1").await.unwrap(),
        Some(record.clone()),
        "unchanged"
    );
    store
        .begin_operation(&record, OperationKind::Delete, now)
        .await
        .unwrap();
    let err = store
        .begin_operation(&record, OperationKind::Delete, now)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Conflict,
        "a delete during a running delete"
    );
}

/// Nobody may claim an operation while its process lives; once it died, one claim gets it
/// (with its steps) and later ones do not, until the claimer gives it up.
pub async fn an_operation_is_claimable_only_once_its_process_is_gone(subject: &mut impl StoreSubject) {
    let n = name("alice", "cli_v4");
    {
        let store = subject.store();
        store
            .begin_create(&reservation("alice", "cli_v4", 1), probe())
            .await
            .unwrap();
        store.record_step(&n, "network_created").await.unwrap();
        assert!(store.claim_abandoned().await.unwrap().is_empty());
    }
    subject.crash();
    let store = subject.store();
    assert_eq!(
        store.operations().await.unwrap().len(),
        1,
        "the intent outlives its process"
    );
    let claimed = store.claim_abandoned().await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].name, n);
    assert_eq!(claimed[0].steps, ["network_created"]);
    assert!(store.claim_abandoned().await.unwrap().is_empty(), "claimed once");
    let err = store
        .begin_create(&reservation("alice", "cli_v4", 1), probe())
        .await;
    assert_eq!(err.unwrap_err().kind(), ErrorKind::Conflict);
    store.unclaim(&n).await.unwrap();
    assert_eq!(
        store.operations().await.unwrap().len(),
        1,
        "unclaim changes nothing else"
    );
    assert_eq!(store.claim_abandoned().await.unwrap().len(), 1, "claimable again");
    store.abandon_create(&n).await.unwrap();
    assert!(store.operations().await.unwrap().is_empty());
    assert!(store.claim_abandoned().await.unwrap().is_empty());
}

/// After its process died, an interrupted delete or purge may be taken over by a new delete or
/// purge; an interrupted update or create is left to the reconciler.
pub async fn a_delete_takes_over_an_interrupted_delete_but_nothing_else_does(
    subject: &mut impl StoreSubject,
) {
    let now = SystemTime::now();
    let deleted = spec("alice", "cli_v4", "id-1", 9000);
    let updated = spec("bob", "cli_v4", "id-2", 9001);
    {
        let store = subject.store();
        for record in [&deleted, &updated] {
            store.finish_create(record).await.unwrap();
        }
        store
            .begin_operation(&deleted, OperationKind::Delete, now)
            .await
            .unwrap();
        store
            .begin_operation(&updated, OperationKind::Update, now)
            .await
            .unwrap();
    }
    subject.crash();
    let store = subject.store();
    store
        .begin_operation(&deleted, OperationKind::Purge, now)
        .await
        .unwrap();
    let ops = store.operations().await.unwrap();
    let op = ops.iter().find(|o| o.name == deleted.container_name).unwrap();
    assert_eq!(op.kind, OperationKind::Purge, "taken over");
    for kind in [OperationKind::Delete, OperationKind::Update] {
        let err = store.begin_operation(&updated, kind, now).await.unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::Conflict,
            "{kind:?} over an interrupted update"
        );
    }
    // The refused attempts claimed nothing: the update is still the reconciler's.
    let claimed = store.claim_abandoned().await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].name, updated.container_name);
}

/// `finish_delete` drops the record, leases, keys and intent; a delete keeps the data volume on
/// the retained list, a purge does not, and a create of the same name takes it back.
pub async fn a_delete_retains_the_volume_and_a_purge_does_not(subject: &mut impl StoreSubject) {
    let store = subject.store();
    let n = name("alice", "cli_v4");
    let ports = store
        .begin_create(&reservation("alice", "cli_v4", 1), probe())
        .await
        .unwrap();
    let record = spec("alice", "cli_v4", "id-1", ports[0]);
    store.finish_create(&record).await.unwrap();
    store
        .add_key(&n, &key("a"), SystemTime::UNIX_EPOCH)
        .await
        .unwrap();
    store
        .begin_operation(&record, OperationKind::Delete, SystemTime::now())
        .await
        .unwrap();
    store.finish_delete(&record).await.unwrap();
    assert!(store.list_all().await.unwrap().is_empty());
    assert!(store.get("id-1").await.unwrap().is_none());
    assert!(store.port_leases().await.unwrap().is_empty());
    assert!(store.keys(&n).await.unwrap().is_empty());
    assert!(store.operations().await.unwrap().is_empty());
    let volume = VolumeName::of(&user("alice"), &kind("cli_v4"));
    assert_eq!(
        store.retained_volumes().await.unwrap(),
        std::slice::from_ref(&volume)
    );
    store.finish_create(&record).await.unwrap();
    assert!(store.retained_volumes().await.unwrap().is_empty(), "in use again");
    store
        .begin_operation(&record, OperationKind::Purge, SystemTime::now())
        .await
        .unwrap();
    store.finish_delete(&record).await.unwrap();
    assert!(store.retained_volumes().await.unwrap().is_empty());
    // Forgetting: true once, for a retained volume only.
    let other = spec("bob", "cli_v4", "id-2", 9001);
    store.finish_create(&other).await.unwrap();
    store
        .begin_operation(&other, OperationKind::Delete, SystemTime::now())
        .await
        .unwrap();
    store.finish_delete(&other).await.unwrap();
    assert!(store.forget_retained(&other.volume_name).await.unwrap());
    assert!(!store.forget_retained(&other.volume_name).await.unwrap());
    assert!(!store.forget_retained(&volume).await.unwrap());
    assert!(store.retained_volumes().await.unwrap().is_empty());
}

/// `put` replaces the record of a name; a new id makes the old one unknown.
pub async fn a_put_with_a_new_id_replaces_the_record(subject: &mut impl StoreSubject) {
    let store = subject.store();
    let record = spec("alice", "cli_v4", "id-1", 9000);
    store.finish_create(&record).await.unwrap();
    let stopped = ContainerSpec {
        status: ContainerStatus::Exited,
        ..record.clone()
    };
    store.put(&stopped).await.unwrap();
    assert_eq!(store.get("id-1").await.unwrap(), Some(stopped.clone()));
    // Re-created on another node (a move): the record keeps where it went.
    let recreated = ContainerSpec {
        container_id: "id-2".to_owned(),
        node: Some(crate::NodeName::parse("worker-2").unwrap()),
        ..stopped
    };
    store.put(&recreated).await.unwrap();
    assert_eq!(store.get("id-1").await.unwrap(), None);
    assert_eq!(store.get("id-2").await.unwrap(), Some(recreated.clone()));
    assert_eq!(store.list_all().await.unwrap(), [recreated]);
}

/// `list_all` and `list_user` are sorted by name; `list_user` holds one user's records only.
pub async fn listings_are_sorted_by_name_and_per_user(subject: &mut impl StoreSubject) {
    let store = subject.store();
    let records = [
        spec("carol", "cli_v4", "id-c", 9004),
        spec("alice", "project_dev", "id-b", 9001),
        spec("bob", "cli_v4", "id-a", 9002),
        spec("alice", "cli_v4", "id-d", 9003),
    ];
    for record in &records {
        store.finish_create(record).await.unwrap();
    }
    assert_eq!(
        names(store.list_all().await).await,
        ["alice_cli_v4", "alice_project_dev", "bob_cli_v4", "carol_cli_v4"]
    );
    assert_eq!(
        names(store.list_user(&user("alice")).await).await,
        ["alice_cli_v4", "alice_project_dev"]
    );
    assert!(store.list_user(&user("dave")).await.unwrap().is_empty());
}

/// `adopt` records a container with exactly its ports, unless the name is recorded, an
/// operation on it runs or a port is leased to another; a refusal changes nothing.
pub async fn an_adoption_conflicts_with_records_operations_and_leases(subject: &mut impl StoreSubject) {
    let store = subject.store();
    let adopted = ContainerSpec {
        ssh_port: Some(9201),
        ..spec("alice", "cli_v4", "id-1", 9200)
    };
    store.adopt(&adopted).await.unwrap();
    assert_eq!(leases_of(store, "alice_cli_v4").await, [9200, 9201]);
    assert_eq!(store.get("id-1").await.unwrap(), Some(adopted.clone()));
    assert!(store.operations().await.unwrap().is_empty());
    let err = store.adopt(&adopted).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "recorded");
    let ports = store
        .begin_create(&reservation("bob", "cli_v4", 1), probe())
        .await
        .unwrap();
    let err = store
        .adopt(&spec("bob", "cli_v4", "id-2", 9300))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "an operation runs");
    let err = store
        .adopt(&spec("carol", "cli_v4", "id-3", ports[0]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "a leased port");
    let err = store
        .adopt(&spec("dave", "cli_v4", "id-4", 9201))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "an adopted port");
    assert_eq!(store.list_all().await.unwrap().len(), 1);
    assert_eq!(store.port_leases().await.unwrap().len(), 3);
}

/// A user keeps one subnet until it is released; users never share one; excluded subnets are
/// skipped.
pub async fn subnets_are_kept_per_user_and_distinct(subject: &mut impl StoreSubject) {
    let store = subject.store();
    let pool = SubnetPool::new(Subnet::parse("10.201.0.0/16").unwrap(), 28).unwrap();
    let none = BTreeSet::new();
    let alice = store.lease_subnet(&user("alice"), pool, &none).await.unwrap();
    assert_eq!(alice, Subnet::parse("10.201.0.0/28").unwrap());
    assert_eq!(
        store.lease_subnet(&user("alice"), pool, &none).await.unwrap(),
        alice
    );
    let exclude: BTreeSet<Subnet> = [Subnet::parse("10.201.0.16/28").unwrap()].into();
    let bob = store.lease_subnet(&user("bob"), pool, &exclude).await.unwrap();
    assert_eq!(bob, Subnet::parse("10.201.0.32/28").unwrap());
    assert_eq!(store.subnet_of(&user("bob")).await.unwrap(), Some(bob));
    assert_eq!(store.subnet_of(&user("carol")).await.unwrap(), None);
    assert_eq!(
        store.subnet_leases().await.unwrap(),
        [(user("alice"), alice), (user("bob"), bob)]
    );
    store.release_subnet(&user("alice")).await.unwrap();
    assert_eq!(store.subnet_of(&user("alice")).await.unwrap(), None);
    let carol = store.lease_subnet(&user("carol"), pool, &none).await.unwrap();
    assert_eq!(carol, alice, "a released subnet is free again");
}

/// Quota overrides are kept per user and cleared with `None`.
pub async fn quotas_are_set_and_cleared(subject: &mut impl StoreSubject) {
    let store = subject.store();
    assert_eq!(store.user_quota(&user("alice")).await.unwrap(), None);
    let quota = crate::UserQuota {
        containers: Some(2),
        memory: Some(crate::MemoryLimit::parse("1g").unwrap()),
        cpus: Some(crate::CpuLimit::from_cpus(1.5).unwrap()),
        disk: Some(crate::DiskSize::parse("2g").unwrap()),
    };
    store.set_user_quota(&user("alice"), Some(&quota)).await.unwrap();
    assert_eq!(store.user_quota(&user("alice")).await.unwrap(), Some(quota));
    assert_eq!(store.user_quota(&user("bob")).await.unwrap(), None);
    let fewer = crate::UserQuota {
        containers: Some(1),
        memory: None,
        cpus: None,
        disk: None,
    };
    store.set_user_quota(&user("alice"), Some(&fewer)).await.unwrap();
    assert_eq!(store.user_quota(&user("alice")).await.unwrap(), Some(fewer));
    store.set_user_quota(&user("alice"), None).await.unwrap();
    assert_eq!(store.user_quota(&user("alice")).await.unwrap(), None);
}

/// A key is added once per container (by fingerprint), listed oldest first with when it was
/// added, and removed by fingerprint.
pub async fn keys_are_kept_once_in_order(subject: &mut impl StoreSubject) {
    let store = subject.store();
    let n = name("alice", "cli_v4");
    let at = |secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    assert!(store.add_key(&n, &key("b"), at(1_767_225_600)).await.unwrap());
    assert!(store.add_key(&n, &key("a"), at(1_767_225_660)).await.unwrap());
    assert!(!store.add_key(&n, &key("b"), at(1_767_225_720)).await.unwrap());
    let keys = store.keys(&n).await.unwrap();
    let shown: Vec<(&str, &str)> = keys
        .iter()
        .map(|k| (k.key.fingerprint(), k.added_at.as_str()))
        .collect();
    assert_eq!(
        shown,
        [
            ("SHA256:b", "2026-01-01T00:00:00Z"),
            ("SHA256:a", "2026-01-01T00:01:00Z")
        ]
    );
    assert_eq!(keys[0].key, key("b"));
    assert!(store.keys(&name("bob", "cli_v4")).await.unwrap().is_empty());
    assert!(store.remove_key(&n, "SHA256:b").await.unwrap());
    assert!(!store.remove_key(&n, "SHA256:b").await.unwrap());
    assert!(
        !store
            .remove_key(&name("bob", "cli_v4"), "SHA256:a")
            .await
            .unwrap()
    );
    assert_eq!(store.keys(&n).await.unwrap().len(), 1);
}

/// Idle marks are set, cleared once, and dropped with the container's record.
pub async fn idle_marks_are_set_cleared_and_dropped_with_the_record(subject: &mut impl StoreSubject) {
    let store = subject.store();
    let record = spec("alice", "cli_v4", "id-1", 9000);
    store.finish_create(&record).await.unwrap();
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    store.mark_idle_stopped(&record.container_name, at).await.unwrap();
    let marks = store.idle_stopped().await.unwrap();
    assert_eq!(
        marks.into_iter().collect::<Vec<_>>(),
        [(record.container_name.clone(), at)]
    );
    assert!(store.clear_idle_stopped(&record.container_name).await.unwrap());
    assert!(!store.clear_idle_stopped(&record.container_name).await.unwrap());
    store.mark_idle_stopped(&record.container_name, at).await.unwrap();
    store
        .begin_operation(&record, OperationKind::Delete, SystemTime::now())
        .await
        .unwrap();
    store.finish_delete(&record).await.unwrap();
    assert!(store.idle_stopped().await.unwrap().is_empty());
}

/// When a store tells its revision (`Some`), equal revisions mean equal contents: it stays while
/// nothing is committed and changes with every commit. `None` is allowed (nothing is reused).
pub async fn a_revision_changes_with_every_commit(subject: &mut impl StoreSubject) {
    let store = subject.store();
    let Some(first) = store.revision().await.unwrap() else {
        assert_eq!(
            store.revision().await.unwrap(),
            None,
            "a store tells always or never"
        );
        return;
    };
    store.list_all().await.unwrap();
    assert_eq!(
        store.revision().await.unwrap(),
        Some(first),
        "a read changes nothing"
    );
    let record = spec("alice", "cli_v4", "id-1", 9000);
    store.finish_create(&record).await.unwrap();
    let second = store.revision().await.unwrap().unwrap();
    assert_ne!(second, first);
    store
        .put(&ContainerSpec {
            status: ContainerStatus::Exited,
            ..record
        })
        .await
        .unwrap();
    let third = store.revision().await.unwrap().unwrap();
    assert_ne!(third, second);
    assert_eq!(store.list_all().await.unwrap()[0].status, ContainerStatus::Exited);
}
