//! The authorization matrix: every endpoint, called with no credentials, a wrong key, the admin
//! key, the owner's token, another user's token and a revoked token.
//!
//! Each cell runs in a fresh world (alice owns `alice_cli_v4` with one SSH key; bob has a token),
//! so a delete in one cell can not change another.

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use serde_json::{Value, json};

use crate::helpers::{ALICE_KEY, ALICE_KEY_FINGERPRINT, Cred, TestApp, api, with_cred};

pub(crate) const CONTAINER: &str = "alice_cli_v4";
const BOB_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBobBobBobBobBobBobBobBobBobBobBobBobBobBobBo bob@home";

/// Who calls, in the order of the expectation columns.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Who {
    Nobody,
    WrongKey,
    Admin,
    Owner,
    OtherUser,
    Revoked,
}

pub(crate) const WHO: [Who; 6] = [
    Who::Nobody,
    Who::WrongKey,
    Who::Admin,
    Who::Owner,
    Who::OtherUser,
    Who::Revoked,
];

pub(crate) struct Row {
    pub(crate) endpoint: &'static str,
    pub(crate) body: fn(&Context) -> Value,
    /// Statuses for: nobody, wrong key, admin, owner, other user, revoked token. Another user's
    /// container is missing to a token (404, as if it did not exist).
    pub(crate) expect: [u16; 6],
}

pub(crate) struct Context {
    pub(crate) spare_token_id: String,
}

pub(crate) const ROWS: &[Row] = &[
    Row {
        endpoint: "create_container",
        body: |_| json!({"user_id": "alice", "container_type": "preview_server"}),
        expect: [401, 401, 201, 403, 403, 401],
    },
    Row {
        endpoint: "list_containers",
        body: |_| json!({}),
        expect: [401, 401, 200, 200, 200, 401],
    },
    Row {
        endpoint: "get_container",
        body: |_| json!({"container_id": CONTAINER}),
        expect: [401, 401, 200, 200, 404, 401],
    },
    Row {
        endpoint: "delete_container",
        body: |_| json!({"container_id": CONTAINER, "force": true}),
        // Users may delete their own (the default user actions); purging data is the admin's.
        expect: [401, 401, 200, 200, 404, 401],
    },
    Row {
        endpoint: "delete_container",
        body: |_| json!({"container_id": CONTAINER, "force": true, "purge": true}),
        expect: [401, 401, 200, 403, 404, 401],
    },
    Row {
        endpoint: "start_container",
        body: |_| json!({"container_id": CONTAINER}),
        expect: [401, 401, 200, 200, 404, 401],
    },
    Row {
        endpoint: "stop_container",
        body: |_| json!({"container_id": CONTAINER}),
        expect: [401, 401, 200, 200, 404, 401],
    },
    Row {
        endpoint: "restart_container",
        body: |_| json!({"container_id": CONTAINER}),
        expect: [401, 401, 200, 200, 404, 401],
    },
    Row {
        endpoint: "container_logs",
        body: |_| json!({"container_id": CONTAINER, "tail": 2}),
        expect: [401, 401, 200, 200, 404, 401],
    },
    Row {
        endpoint: "container_exec",
        body: |_| json!({"container_id": CONTAINER, "command": "echo hi"}),
        expect: [401, 401, 200, 200, 404, 401],
    },
    Row {
        endpoint: "add_ssh_key_to_container",
        body: |_| json!({"container_id": CONTAINER, "ssh_public_key": BOB_KEY}),
        expect: [401, 401, 200, 200, 404, 401],
    },
    Row {
        endpoint: "remove_ssh_key_from_container",
        body: |_| json!({"container_id": CONTAINER, "fingerprint": ALICE_KEY_FINGERPRINT}),
        expect: [401, 401, 200, 200, 404, 401],
    },
    Row {
        endpoint: "list_container_ssh_keys",
        body: |_| json!({"container_id": CONTAINER}),
        expect: [401, 401, 200, 200, 404, 401],
    },
    Row {
        endpoint: "get_container_ssh_info",
        body: |_| json!({"container_id": CONTAINER}),
        expect: [401, 401, 200, 200, 404, 401],
    },
    Row {
        endpoint: "register_ssh_key",
        body: |_| json!({"container_id": CONTAINER, "ssh_public_key": BOB_KEY}),
        expect: [401, 401, 200, 200, 404, 401],
    },
    Row {
        endpoint: "get_my_ssh_info",
        body: |_| json!({"user_id": "alice"}),
        expect: [401, 401, 200, 200, 403, 401],
    },
    Row {
        endpoint: "container_stats",
        body: |_| json!({"container_id": CONTAINER}),
        expect: [401, 401, 200, 200, 404, 401],
    },
    Row {
        endpoint: "list_ssh_containers",
        body: |_| json!({}),
        expect: [401, 401, 200, 200, 200, 401],
    },
    Row {
        endpoint: "list_types",
        body: |_| json!({}),
        expect: [401, 401, 200, 200, 200, 401],
    },
    Row {
        endpoint: "docker_health",
        body: |_| json!({}),
        expect: [401, 401, 200, 200, 200, 401],
    },
    Row {
        endpoint: "list_all_docker_containers",
        body: |_| json!({}),
        expect: [401, 401, 200, 403, 403, 401],
    },
    Row {
        endpoint: "discover_services",
        body: |_| json!({}),
        expect: [401, 401, 200, 403, 403, 401],
    },
    Row {
        endpoint: "list_nodes",
        body: |_| json!({}),
        expect: [401, 401, 200, 403, 403, 401],
    },
    Row {
        endpoint: "audit_log",
        body: |_| json!({"user_id": "alice"}),
        expect: [401, 401, 200, 403, 403, 401],
    },
    Row {
        endpoint: "container_events",
        body: |_| json!({}),
        expect: [401, 401, 503, 503, 503, 401],
    },
    Row {
        endpoint: "whoami",
        body: |_| json!({}),
        expect: [401, 401, 200, 200, 200, 401],
    },
    Row {
        endpoint: "create_user_token",
        body: |_| json!({"user_id": "carol"}),
        expect: [401, 401, 201, 403, 403, 401],
    },
    Row {
        endpoint: "revoke_user_token",
        body: |c| json!({"token_id": c.spare_token_id}),
        expect: [401, 401, 200, 403, 403, 401],
    },
    Row {
        endpoint: "list_user_tokens",
        body: |_| json!({}),
        expect: [401, 401, 200, 403, 403, 401],
    },
    // The admin key of this app comes from the environment: rotating it is a conflict.
    Row {
        endpoint: "rotate_admin_key",
        body: |_| json!({}),
        expect: [401, 401, 409, 403, 403, 401],
    },
    Row {
        endpoint: "update_container",
        body: |_| json!({"container_id": CONTAINER}),
        expect: [401, 401, 200, 403, 404, 401],
    },
    Row {
        endpoint: "move_container",
        body: |_| json!({"container_id": CONTAINER, "node": "n2"}),
        expect: [401, 401, 422, 403, 404, 401],
    },
    Row {
        endpoint: "reconcile",
        body: |_| json!({"dry_run": true}),
        expect: [401, 401, 200, 403, 403, 401],
    },
    Row {
        endpoint: "reconcile_status",
        body: |_| json!({}),
        expect: [401, 401, 200, 403, 403, 401],
    },
    Row {
        endpoint: "get_user_quota",
        body: |_| json!({"user_id": "alice"}),
        expect: [401, 401, 200, 200, 403, 401],
    },
    Row {
        endpoint: "set_user_quota",
        body: |_| json!({"user_id": "alice", "containers": 3, "memory": "4g", "cpus": 2.5}),
        expect: [401, 401, 200, 403, 403, 401],
    },
];

/// A fresh world and the credential of `who` in it.
async fn world(who: Who) -> (TestApp, Cred, Context) {
    let app = TestApp::new();
    app.create("alice", "cli_v4").await;
    app.admin_post(
        "add_ssh_key_to_container",
        json!({"container_id": CONTAINER, "ssh_public_key": ALICE_KEY}),
        StatusCode::OK,
    )
    .await;
    let owner = app.token("alice").await;
    let other = app.token("bob").await;
    let revoked = app.revoked_token("alice").await;
    let (spare, _) = app
        .state
        .auth
        .create_user_token(&cm_core::UserId::parse("carol").unwrap())
        .await
        .unwrap();
    let cred = match who {
        Who::Nobody => Cred::Anonymous,
        Who::WrongKey => {
            Cred::Bearer("cmk_0000000000000000000000000000000000000000000000000000000000000000".into())
        }
        Who::Admin => Cred::admin(),
        Who::Owner => Cred::Bearer(owner),
        Who::OtherUser => Cred::Bearer(other),
        Who::Revoked => Cred::Bearer(revoked),
    };
    (
        app,
        cred,
        Context {
            spare_token_id: spare.id,
        },
    )
}

/// Calls `row` as `who` and returns a line describing a mismatch, if any.
async fn check(row: &Row, who: Who, expected: u16) -> Option<String> {
    let (app, cred, context) = world(who).await;
    let body = (row.body)(&context);
    let req = with_cred(TestRequest::post().uri(&api(row.endpoint)).set_json(&body), &cred);
    let (status, headers, answer) = app.send_full(req).await;
    if status.as_u16() != expected {
        return Some(format!(
            "{} as {who:?}: expected {expected}, got {} {answer}",
            row.endpoint,
            status.as_u16()
        ));
    }
    if !status.is_success() {
        let code = answer["error"]["code"].as_str().unwrap_or_default();
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        if code.is_empty() || message.is_empty() {
            return Some(format!(
                "{} as {who:?}: not the error shape: {answer}",
                row.endpoint
            ));
        }
    }
    if status == StatusCode::UNAUTHORIZED && !headers.contains_key("www-authenticate") {
        return Some(format!(
            "{} as {who:?}: 401 without WWW-Authenticate",
            row.endpoint
        ));
    }
    None
}

#[actix_web::test]
async fn every_endpoint_with_every_kind_of_caller() {
    let mut failures = Vec::new();
    for row in ROWS {
        for (who, expected) in WHO.iter().zip(row.expect) {
            if let Some(failure) = check(row, *who, expected).await {
                failures.push(failure);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "authorization matrix:\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_matrix_covers_every_endpoint() {
    let mut covered: Vec<&str> = ROWS.iter().map(|r| r.endpoint).collect();
    // An endpoint may have several rows (delete with and without purge).
    covered.dedup();
    let all: Vec<&str> = cm_api::ENDPOINTS.iter().map(|e| e.name).collect();
    assert_eq!(covered, all);
}

#[actix_web::test]
async fn a_user_token_never_reaches_another_users_containers_whatever_user_id_says() {
    let app = TestApp::new();
    app.create("alice", "cli_v4").await;
    app.create("bob", "preview_server").await;
    let alice = Cred::Bearer(app.token("alice").await);

    // Listing: the own containers only; naming another user or asking for all is refused.
    let (status, own) = app
        .get(&format!("{}?user_id=alice", api("list_containers")), &alice)
        .await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = own["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["container_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice_cli_v4"]);
    let (status, _) = app.get(&api("list_containers"), &alice).await;
    assert_eq!(status, StatusCode::OK);
    let (status, refused) = app
        .get(&format!("{}?user_id=bob", api("list_containers")), &alice)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["error"]["field"], "user_id");
    let (status, _) = app
        .get(&format!("{}?all=true", api("list_containers")), &alice)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .get(&format!("{}?user_id=bob", api("list_ssh_containers")), &alice)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A container of bob's, however it is named (name, full id, every id prefix of one to four
    // characters), and whatever user_id rides along, answers exactly like one that does not exist.
    let (_, got) = app
        .get(
            &format!("{}?container_id=bob_preview_server", api("get_container")),
            &Cred::admin(),
        )
        .await;
    let bob_id = got["container"]["container_id"].as_str().unwrap().to_owned();
    let (_, own) = app
        .get(
            &format!("{}?container_id=alice_cli_v4", api("get_container")),
            &Cred::admin(),
        )
        .await;
    let alice_id = own["container"]["container_id"].as_str().unwrap().to_owned();
    let mut references = vec!["bob_preview_server".to_owned(), bob_id.clone()];
    // Prefixes shared with Alice's own id rightly find hers.
    references.extend(
        (1..=4)
            .map(|n| bob_id[..n].to_owned())
            .filter(|prefix| !alice_id.starts_with(prefix.as_str())),
    );
    assert!(references.len() >= 4, "{references:?}");
    for (endpoint, extra) in [
        ("get_container", json!({"user_id": "alice"})),
        ("container_exec", json!({"command": "echo x", "user_id": "alice"})),
        ("stop_container", json!({})),
        ("container_logs", json!({})),
    ] {
        let path = api(endpoint);
        let ask = |reference: &str| {
            let mut body = extra.clone();
            body["container_id"] = json!(reference);
            app.post(&path, body, &alice)
        };
        let (missing_status, missing) = ask("zz_nothing_here").await;
        assert_eq!(missing_status, StatusCode::NOT_FOUND, "{missing}");
        for reference in &references {
            let (status, answer) = ask(reference).await;
            assert_eq!(status, missing_status, "{endpoint} {reference}: {answer}");
            let expected = missing.to_string().replace("zz_nothing_here", reference);
            assert_eq!(answer.to_string(), expected, "{endpoint} {reference}");
        }
    }
    // Nothing ran in bob's container, and it still runs.
    let (_, bob) = app
        .get(
            &format!("{}?container_id=bob_preview_server", api("get_container")),
            &Cred::admin(),
        )
        .await;
    assert_eq!(bob["container"]["status"], "running");
}

#[actix_web::test]
async fn reads_take_get_and_post_and_writes_only_post() {
    let app = TestApp::new();
    app.create("alice", "cli_v4").await;
    for endpoint in cm_api::ENDPOINTS {
        let query = format!("{}?container_id={CONTAINER}", api(endpoint.name));
        let (status, headers, body) = app
            .send_full(with_cred(TestRequest::get().uri(&query), &Cred::admin()))
            .await;
        if endpoint.read {
            assert_ne!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{}: {body}",
                endpoint.name
            );
        } else {
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{}", endpoint.name);
            assert_eq!(headers.get("allow").unwrap(), "POST");
            assert_eq!(body["error"]["code"], "method_not_allowed");
        }
        let (status, _, _) = app
            .send_full(with_cred(TestRequest::delete().uri(&query), &Cred::admin()))
            .await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{}", endpoint.name);
    }
}
