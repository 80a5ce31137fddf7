//! `cm`'s commands in the audit trail, with the operating-system user who ran them; `cm audit`
//! reads it back by user, container and time.

use serde_json::Value;

use crate::helpers::World;

fn actions(entries: &Value) -> Vec<(String, String, String)> {
    entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["target"].as_str().unwrap_or("-").to_owned(),
                e["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn every_change_by_cm_is_recorded_with_who_ran_it() {
    let Some(world) = World::new() else { return };
    let user = world.env.user("audit");
    let name = format!("{user}_preview_server");
    let spec = world.cm_json(&["create", &user, "preview_server", "-e", "API_TOKEN=s3cret"]);
    let id = spec["container_id"].as_str().unwrap().to_owned();
    world.cm_ok(&["stop", &id[..12]]);
    world.cm_ok(&["start", &name]);
    // Refused: it runs. Recorded as failed.
    assert!(!world.cm(&["delete", &name]).status.success());
    world.cm_ok(&["list", &user]);
    world.cm_ok(&["delete", &name, "--force", "--purge"]);

    let entries = world.cm_json(&["audit", "--user", &user]);
    let ok = |action: &str| (action.to_owned(), name.clone(), "ok".to_owned());
    assert_eq!(
        actions(&entries),
        [
            ok("delete_container"),
            ("delete_container".to_owned(), name.clone(), "conflict".to_owned()),
            ok("start_container"),
            ok("stop_container"),
            ok("create_container"),
        ],
        "reads are not recorded; a container named by id is recorded by name: {entries:#}"
    );
    let create = &entries[4];
    assert_eq!(create["actor"]["kind"], "local");
    assert_eq!(create["source"], "cli");
    assert_eq!(create["subject"], user.as_str());
    assert_eq!(create["params"]["env"]["API_TOKEN"], "***");
    assert!(!entries.to_string().contains("s3cret"));

    assert_eq!(
        world
            .cm_json(&["audit", "--container", &name])
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        world.cm_json(&["audit", "--since", "2999-01-01T00:00:00Z"]),
        Value::Array(vec![])
    );
    assert_eq!(
        world
            .cm_json(&["audit", "--limit", "2"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let table = world.cm_ok(&["audit", "--user", &user]);
    assert!(
        table.contains("ACTION") && table.contains("delete_container") && table.contains("local"),
        "{table}"
    );
}
