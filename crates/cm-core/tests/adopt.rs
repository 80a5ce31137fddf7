//! Adoption over the fakes: what is taken over, what is left and why, and that a refusal changes
//! nothing.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use cm_core::testing::{FakeWorld, as_admin, create_request};
use cm_core::{AdoptOptions, AdoptOutcome, OriginalRecords, Store, labels};

fn original_labels(user: &str, kind: &str, port: u16, ssh: Option<u16>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (labels::MANAGED_BY.to_owned(), labels::MANAGED_BY_VALUE.to_owned()),
        (labels::USER_ID.to_owned(), user.to_owned()),
        (labels::CONTAINER_TYPE.to_owned(), kind.to_owned()),
        (labels::PORT.to_owned(), port.to_string()),
    ]);
    if let Some(ssh) = ssh {
        labels.insert(labels::SSH_PORT.to_owned(), ssh.to_string());
    }
    labels
}

fn adopt() -> AdoptOptions {
    AdoptOptions::default()
}

#[tokio::test]
async fn adoption_takes_over_the_originals_containers_and_says_why_it_leaves_others() {
    let world = FakeWorld::new();
    let alice = world
        .manager
        .create(create_request("alice", "preview_server"), &|_| {})
        .await
        .unwrap()
        .spec;
    let bob = world.runtime.add_original(
        "bob_custom_1a2b3c4d",
        original_labels("bob", "custom", 8001, Some(22001)),
        "container_bob_custom_1a2b3c4d",
        &[
            ("GREETING", "hi"),
            ("USER_ID", "bob"),
            ("SSH_PUBLIC_KEY", "not a key"),
        ],
    );
    // Left: a type not configured here, a user id this project can not use, a second container of
    // a user and type already taken, a port another container holds.
    world.runtime.add_original(
        "carol_isaa_00000000",
        original_labels("carol", "isaa", 8002, None),
        "container_carol_cli_v4_00000000",
        &[],
    );
    world.runtime.add_original(
        "Bad User_cli_v4_00000000",
        original_labels("Bad User", "cli_v4", 8003, None),
        "container_dave_cli_v4_00000000",
        &[],
    );
    world.runtime.add_original(
        "alice_preview_server_11111111",
        original_labels("alice", "preview_server", 8004, None),
        "container_alice_preview_server_11111111",
        &[],
    );
    world.runtime.add_original(
        "erin_custom_22222222",
        original_labels("erin", "custom", alice.port, None),
        "container_erin_custom_22222222",
        &[],
    );

    let planned = world
        .manager
        .adopt(
            &AdoptOptions {
                dry_run: true,
                ..adopt()
            },
            &OriginalRecords::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        world.store.list_all().await.unwrap().len(),
        1,
        "a dry run changes nothing"
    );
    let would: Vec<&str> = planned
        .iter()
        .filter(|a| a.outcome == AdoptOutcome::WouldAdopt)
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(
        would,
        ["bob_custom_1a2b3c4d"],
        "a dry run sees the port conflict too"
    );

    let report = world
        .manager
        .adopt(&adopt(), &OriginalRecords::default())
        .await
        .unwrap();
    let outcome = |name: &str| {
        let a = report.iter().find(|a| a.name == name).unwrap();
        (a.outcome, a.detail.clone())
    };
    assert_eq!(outcome("bob_custom_1a2b3c4d").0, AdoptOutcome::Adopted);
    assert!(
        outcome("bob_custom_1a2b3c4d")
            .1
            .contains("SSH key was not imported")
    );
    assert!(outcome("carol_isaa_00000000").1.contains("not configured"));
    assert!(outcome("Bad User_cli_v4_00000000").1.contains("user-id"));
    assert!(outcome("alice_preview_server_11111111").1.contains("already has"));
    let (erin, why) = outcome("erin_custom_22222222");
    assert_eq!(erin, AdoptOutcome::Skipped, "refused before anything changed");
    assert!(why.contains(&format!("port {} is leased", alice.port)), "{why}");
    assert_eq!(report.len(), 5);

    let spec = as_admin(&world.manager, "bob_custom").await.unwrap().into_spec();
    assert_eq!(spec.container_id, bob);
    assert_eq!((spec.port, spec.ssh_port), (8001, Some(22001)));
    assert_eq!(spec.volume_name.as_str(), "container_bob_custom_1a2b3c4d");
    assert_eq!(spec.env.get("GREETING"), Some("hi"));
    assert_eq!(spec.env.get("BASE_PATH"), Some("/container/bob/custom/"));
    assert!(
        world.runtime.container_names().contains(&"bob_custom".to_owned()),
        "renamed"
    );
    // Routed at once, to its own port, for its owner.
    let bob_user = cm_core::UserId::parse("bob").unwrap();
    let answer = world
        .manager
        .check_route(
            Some(&cm_core::Principal::User(bob_user.clone())),
            &bob_user,
            &cm_core::TypeName::parse("custom").unwrap(),
        )
        .await
        .unwrap();
    assert!(
        matches!(answer, cm_core::RouteAnswer::Allow { upstream, .. } if upstream.port() == 8001),
        "{answer:?}"
    );
    let leases: Vec<u16> = world
        .store
        .port_leases()
        .await
        .unwrap()
        .iter()
        .filter(|l| l.owner == "bob_custom")
        .map(|l| l.port)
        .collect();
    assert_eq!(leases, [8001, 22001]);
    assert!(
        world
            .store
            .get_by_name(&cm_core::ContainerName::parse("erin_custom").unwrap())
            .await
            .unwrap()
            .is_none(),
        "a refused adoption records nothing"
    );

    // Adopted ones are records now: a second run leaves them, and update re-creates one on this
    // profile with the same ports and volume.
    let again = world
        .manager
        .adopt(&adopt(), &OriginalRecords::default())
        .await
        .unwrap();
    assert!(again.iter().all(|a| a.name != "bob_custom"), "{again:?}");
    // One user at a time: others' containers are not even looked at.
    let only_erin = AdoptOptions {
        users: [cm_core::UserId::parse("erin").unwrap()].into(),
        ..adopt()
    };
    let erins = world
        .manager
        .adopt(&only_erin, &OriginalRecords::default())
        .await
        .unwrap();
    assert_eq!(erins.len(), 1, "{erins:?}");
    assert_eq!(erins[0].name, "erin_custom_22222222");
    let updated = world
        .manager
        .update(&as_admin(&world.manager, "bob_custom").await.unwrap(), None)
        .await
        .unwrap();
    assert_ne!(updated.container_id, bob);
    assert_eq!(
        (updated.port, updated.volume_name.as_str()),
        (8001, "container_bob_custom_1a2b3c4d")
    );
}

#[test]
fn the_originals_records_are_read_from_its_export() {
    let spec = serde_json::json!({"container_id": "abc", "container_name": "bob_custom_1a2b3c4d",
        "image": "toolboxv2:latest", "env": {"A": "1", "N": 2}, "created_at": 1.5});
    let export = serde_json::json!({
        "CONTAINER::abc": spec.to_string(),
        "CONTAINER::def": {"container_id": "def"},
        "CONTAINER_USER::bob": "[\"abc\"]",
        "CONTAINER_PORT_POOL": "[8001]",
    });
    assert_eq!(OriginalRecords::parse(&export.to_string()).unwrap().len(), 2);
    for bad in ["[]", "{\"CONTAINER::x\": \"not json\"}", "{\"CONTAINER::x\": {}}"] {
        assert!(OriginalRecords::parse(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn without_the_installations_labels_only_a_successful_re_create_adopts() {
    let config = cm_core::Config::from_toml("[labels]\nteam = \"blue\"\n").unwrap();
    let world = FakeWorld::with_config(config);
    world
        .manager
        .create(create_request("alice", "preview_server"), &|_| {})
        .await
        .unwrap();
    let id = world.runtime.add_original(
        "bob_custom_1a2b3c4d",
        original_labels("bob", "custom", 8001, None),
        "container_bob_custom_1a2b3c4d",
        &[],
    );
    // In place it would be invisible to the reconciler: refused.
    let report = world
        .manager
        .adopt(&adopt(), &OriginalRecords::default())
        .await
        .unwrap();
    assert_eq!(report[0].outcome, AdoptOutcome::Skipped);
    assert!(report[0].detail.contains("--recreate"), "{}", report[0].detail);

    // A re-create that fails leaves nothing adopted: no record, no lease, the old name.
    world.runtime.fail(
        cm_core::testing::FakeOp::EnsureVolume,
        cm_core::ErrorKind::Unavailable,
    );
    let recreate = AdoptOptions {
        recreate: true,
        ..adopt()
    };
    let report = world
        .manager
        .adopt(&recreate, &OriginalRecords::default())
        .await
        .unwrap();
    assert_eq!(report[0].outcome, AdoptOutcome::Failed, "{report:?}");
    assert!(report[0].detail.contains("not adopted"), "{}", report[0].detail);
    assert!(
        world
            .store
            .get_by_name(&cm_core::ContainerName::parse("bob_custom").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        world
            .store
            .port_leases()
            .await
            .unwrap()
            .iter()
            .all(|l| l.port != 8001)
    );
    assert!(
        world
            .runtime
            .container_names()
            .contains(&"bob_custom_1a2b3c4d".to_owned())
    );
    assert!(
        world
            .store
            .subnet_of(&cm_core::UserId::parse("bob").unwrap())
            .await
            .unwrap()
            .is_none()
    );

    // Once the engine works, the re-create adopts it.
    world.runtime.heal();
    let report = world
        .manager
        .adopt(&recreate, &OriginalRecords::default())
        .await
        .unwrap();
    assert_eq!(report[0].outcome, AdoptOutcome::Recreated, "{report:?}");
    assert_ne!(report[0].id, id);
}
