//! The audit trail of the API, in process over the fakes: every change and every refused
//! credential, with who, what, on what, the result and no secrets; read back by the admin only.

use actix_web::http::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ADMIN, Cred, TestApp, api};

async fn trail(app: &TestApp, query: &str) -> Vec<Value> {
    let (status, answer) = app
        .get(&format!("{}?{query}", api("audit_log")), &Cred::admin())
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["entries"].as_array().unwrap().clone()
}

#[actix_web::test]
async fn changes_and_refused_credentials_are_recorded_without_secrets() {
    let app = TestApp::new();
    let (status, created) = app
        .post(
            &api("create_container"),
            json!({"user_id": "alice", "container_type": "cli_v4", "env": {"API_TOKEN": "s3cret", "GREETING": "hi"}}),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["container"]["container_id"].as_str().unwrap().to_owned();
    let alice = Cred::Bearer(app.token("alice").await);
    let bob = Cred::Bearer(app.token("bob").await);
    // Alice stops her container by its id; Bob can not delete it; a wrong key is refused; reads
    // leave no entry.
    let (status, _) = app
        .post(&api("stop_container"), json!({"container_id": &id[..12]}), &alice)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .post(
            &api("delete_container"),
            json!({"container_id": "alice_cli_v4"}),
            &bob,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .get(&api("list_containers"), &Cred::Bearer("cmk_wrong".into()))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app.get(&api("list_containers"), &alice).await;
    assert_eq!(status, StatusCode::OK);

    let entries = trail(&app, "").await;
    let seen: Vec<(&str, &str, Option<&str>, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["actor"]["kind"].as_str().unwrap(),
                e["target"].as_str(),
                e["result"].as_str().unwrap(),
            )
        })
        .collect();
    // Newest first; tokens made for the test are changes too.
    assert_eq!(
        seen[..4],
        [
            ("sign_in", "anonymous", Some("list_containers"), "unauthorized"),
            ("delete_container", "user", Some("alice_cli_v4"), "not_found"),
            ("stop_container", "user", Some("alice_cli_v4"), "ok"),
            ("create_container", "admin", Some("alice_cli_v4"), "ok"),
        ],
        "{entries:#?}"
    );
    let create = &entries[3];
    assert_eq!(create["source"], "api");
    assert_eq!(create["subject"], "alice");
    assert_eq!(
        create["params"]["env"],
        json!({"API_TOKEN": "***", "GREETING": "hi"})
    );
    let text = Value::Array(entries.clone()).to_string();
    assert!(!text.contains("s3cret") && !text.contains(ADMIN), "{text}");

    // By user (what they did and what was done to theirs), by container (by name or id), since.
    let alices = trail(&app, "user_id=alice").await;
    assert!(alices.iter().all(|e| e["subject"] == "alice"), "{alices:#?}");
    assert!(
        alices.iter().any(|e| e["action"] == "delete_container"),
        "Bob's try is about Alice's"
    );
    let history = trail(&app, &format!("container_id={}", &id[..12])).await;
    let actions: Vec<&str> = history.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        ["delete_container", "stop_container", "create_container"]
    );
    assert!(trail(&app, "since=2999-01-01T00:00:00Z").await.is_empty());
    assert_eq!(trail(&app, "limit=1").await.len(), 1);
    let (status, refused) = app.get(&api("audit_log"), &alice).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    let (status, _) = app
        .get(
            &format!("{}?since=yesterday-ish", api("audit_log")),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.audit.entries().len(), entries.len());
}

#[actix_web::test]
async fn a_delete_is_recorded_by_the_name_and_owner_its_handler_resolved() {
    let app = TestApp::new();
    let (status, created) = app
        .post(
            &api("create_container"),
            json!({"user_id": "alice", "container_type": "cli_v4"}),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["container"]["container_id"].as_str().unwrap().to_owned();
    let alice = Cred::Bearer(app.token("alice").await);
    // By an id prefix, and the container is gone by the time the entry is written: the entry
    // still names it and its owner, as the handler resolved them.
    let (status, answer) = app
        .post(
            &api("delete_container"),
            json!({"container_id": &id[..10], "force": true}),
            &alice,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let alices = trail(&app, "user_id=alice").await;
    let delete = alices
        .iter()
        .find(|e| e["action"] == "delete_container")
        .unwrap_or_else(|| panic!("Alice's delete is in her trail: {alices:#?}"));
    assert_eq!(delete["target"], "alice_cli_v4");
    assert_eq!(delete["subject"], "alice");
    assert_eq!(delete["result"], "ok");
}

#[actix_web::test]
async fn a_key_registered_without_naming_the_container_is_recorded_on_the_one_it_went_to() {
    let app = TestApp::new();
    app.create("alice", "cli_v4").await;
    let alice = Cred::Bearer(app.token("alice").await);
    let (status, answer) = app
        .post(
            &api("register_ssh_key"),
            json!({"ssh_public_key": crate::helpers::ALICE_KEY}),
            &alice,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let alices = trail(&app, "user_id=alice").await;
    let registered = alices
        .iter()
        .find(|e| e["action"] == "register_ssh_key")
        .unwrap_or_else(|| panic!("the registration is in her trail: {alices:#?}"));
    assert_eq!(registered["target"], "alice_cli_v4");
    assert_eq!(registered["result"], "ok");
}
