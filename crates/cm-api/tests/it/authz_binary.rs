//! The authorization matrix against the real binary, with its SQLite credential store: tokens made,
//! revoked and checked by `cm-api` itself. The endpoints come from the route table
//! (`cm_api::ENDPOINTS`), which is checked against the routes the binary really serves and the
//! OpenAPI document it publishes.
//!
//! Every endpoint is called with no credential, a wrong key, another user's token and a revoked
//! token (all refused, so nothing changes); the admin and the owner call every read that does not
//! need a container. The statuses are the in-process matrix's (`authz.rs`).

use std::collections::BTreeSet;

use cm_testkit::{TestEnv, require_docker};
use serde_json::{Value, json};

use crate::authz::{CONTAINER, Context, ROWS, WHO, Who};
use crate::helpers::{Server, api, http_full};

const WRONG_KEY: &str = "cmk_0000000000000000000000000000000000000000000000000000000000000000";

fn token(server: &Server, admin: &str, user: &str) -> (String, String) {
    let (status, answer) = server.request(
        "POST",
        &api("create_user_token"),
        &[("Authorization", admin)],
        Some(&json!({"user_id": user})),
    );
    assert_eq!(status, 201, "{answer}");
    (
        format!("Bearer {}", answer["token"].as_str().unwrap()),
        answer["id"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn every_endpoint_of_the_binary_with_every_kind_of_caller() {
    if !require_docker() {
        return;
    }
    let env = TestEnv::new();
    // The matrix makes far more failed sign-ins from one address than a person would.
    env.set_config_extra("[limits]\nauth_failures_per_minute = 10000\n");
    let admin_key = format!("matrix-admin-key-{}", env.run);
    let mut vars = env.vars();
    vars.push(("CONTAINER_ADMIN_KEY", admin_key.clone()));
    let server = Server::start(&vars, &[]);
    let admin = format!("Bearer {admin_key}");

    // The route table is what the binary serves: every entry is routed (a method it does not take
    // answers 405, where an unknown name answers 404), and its OpenAPI document lists exactly it.
    let table: BTreeSet<&str> = cm_api::ENDPOINTS.iter().map(|e| e.name).collect();
    for name in &table {
        let (status, _) = server.request("PUT", &api(name), &[("Authorization", &admin)], None);
        assert_eq!(status, 405, "{name} is not routed");
    }
    let (status, _) = server.request(
        "PUT",
        &api("no_such_endpoint"),
        &[("Authorization", &admin)],
        None,
    );
    assert_eq!(status, 404);
    let (status, document) = server.request("GET", "/api/openapi.json", &[], None);
    assert_eq!(status, 200);
    let documented: BTreeSet<String> = document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .filter_map(|path| path.strip_prefix("/api/ContainerManager/").map(str::to_owned))
        .collect();
    assert_eq!(
        documented,
        table.iter().map(|n| (*n).to_owned()).collect::<BTreeSet<_>>()
    );
    let covered: BTreeSet<&str> = ROWS.iter().map(|r| r.endpoint).collect();
    assert_eq!(covered, table, "the matrix covers the route table");

    // Credentials in the binary's own store.
    let (owner, _) = token(&server, &admin, "alice");
    let (other, _) = token(&server, &admin, "bob");
    let (revoked, revoked_id) = token(&server, &admin, "alice");
    let (status, _) = server.request(
        "POST",
        &api("revoke_user_token"),
        &[("Authorization", &admin)],
        Some(&json!({"token_id": revoked_id})),
    );
    assert_eq!(status, 200);
    let (_, spare_token_id) = token(&server, &admin, "carol");
    let context = Context { spare_token_id };

    let reads: BTreeSet<&str> = cm_api::ENDPOINTS
        .iter()
        .filter(|e| e.read)
        .map(|e| e.name)
        .collect();
    let mut failures = Vec::new();
    let mut calls = 0;
    for row in ROWS {
        let body = (row.body)(&context);
        let needs_container = body.to_string().contains(CONTAINER);
        for (who, expected) in WHO.iter().zip(row.expect) {
            let credential = match who {
                Who::Nobody => None,
                Who::WrongKey => Some(format!("Bearer {WRONG_KEY}")),
                Who::OtherUser => Some(other.clone()),
                Who::Revoked => Some(revoked.clone()),
                // Allowed calls change things or need alice's container: only reads without one.
                Who::Admin | Who::Owner if !reads.contains(row.endpoint) || needs_container => continue,
                Who::Admin => Some(admin.clone()),
                Who::Owner => Some(owner.clone()),
            };
            calls += 1;
            let headers: Vec<(&str, &str)> = credential
                .as_deref()
                .map(|c| vec![("Authorization", c)])
                .unwrap_or_default();
            let text = body.to_string();
            let Some((status, head, answer)) =
                http_full(server.port, "POST", &api(row.endpoint), &headers, Some(&text))
            else {
                failures.push(format!("{} as {who:?}: no answer", row.endpoint));
                continue;
            };
            if status != expected {
                failures.push(format!(
                    "{} as {who:?}: expected {expected}, got {status} {answer}",
                    row.endpoint
                ));
                continue;
            }
            if status >= 400 {
                let error: Value = serde_json::from_str(&answer).unwrap_or_default();
                if error["error"]["code"].as_str().is_none() {
                    failures.push(format!(
                        "{} as {who:?}: not the error shape: {answer}",
                        row.endpoint
                    ));
                }
            }
            if status == 401 && !head.contains("www-authenticate:") {
                failures.push(format!(
                    "{} as {who:?}: 401 without WWW-Authenticate",
                    row.endpoint
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "authorization matrix of the binary ({calls} calls):\n{}",
        failures.join("\n")
    );
    assert!(calls > 4 * table.len(), "{calls} calls");
}
