//! Live container events from the real binary on the real engine: a snapshot first, then each
//! change as the engine reports it (also changes made behind cm-api's back), only the caller's
//! own containers for a user.

use std::time::Duration;

use cm_testkit::{TestEnv, docker_ok, require_docker};
use serde_json::json;

use crate::helpers::{Server, api, open_stream};

#[test]
fn containers_changes_stream_to_the_admin_and_to_their_owner_only() {
    if !require_docker() {
        return;
    }
    let env = TestEnv::new();
    let admin_key = format!("events-admin-key-{}", env.run);
    let mut vars = env.vars();
    vars.push(("CONTAINER_ADMIN_KEY", admin_key.clone()));
    let server = Server::start(&vars, &[]);
    let admin = format!("Bearer {admin_key}");
    let (alice, bob) = (env.user("alice"), env.user("bob"));
    let call = |name: &str, body: serde_json::Value| {
        let (status, answer) = server.request("POST", &api(name), &[("Authorization", &admin)], Some(&body));
        assert!(status < 300, "{name}: {status} {answer}");
        answer
    };
    call(
        "create_container",
        json!({"user_id": alice, "container_type": "preview_server"}),
    );
    let token = call("create_user_token", json!({"user_id": alice}));
    let alice_auth = format!("Bearer {}", token["token"].as_str().unwrap());
    let events = api("container_events");
    let mut admins = open_stream(server.port, "GET", &events, &[("Authorization", &admin)]).unwrap();
    let mut alices = open_stream(server.port, "GET", &events, &[("Authorization", &alice_auth)]).unwrap();
    assert_eq!((admins.status, alices.status), (200, 200));
    let alice_box = format!("{alice}_preview_server");
    let limit = Duration::from_secs(60);
    assert!(admins.wait_for("event: snapshot", limit) && admins.wait_for(&alice_box, limit));
    assert!(alices.wait_for("event: snapshot", limit) && alices.wait_for(&alice_box, limit));

    // Bob's new container reaches the admin, not Alice; Alice's stop reaches both, also when it
    // happens behind cm-api's back.
    call(
        "create_container",
        json!({"user_id": bob, "container_type": "preview_server"}),
    );
    let bob_box = format!("{bob}_preview_server");
    assert!(admins.wait_for(&format!(r#""container_name":"{bob_box}","#), limit));
    docker_ok(&["stop", "-t", "1", &alice_box]);
    // Her container's own event (the fields come in this order).
    let stopped = format!(r#""user_id":"{alice}","container_type":"preview_server","status":"exited""#);
    assert!(alices.wait_for(&stopped, limit), "Alice sees her container stop");
    assert!(admins.wait_for(&stopped, limit));
    call(
        "delete_container",
        json!({"container_id": bob_box, "force": true, "purge": true}),
    );
    assert!(
        admins.wait_for("\"status\":\"removed\"", limit),
        "the admin sees Bob's removal"
    );
    call(
        "delete_container",
        json!({"container_id": alice_box, "force": true, "purge": true}),
    );
    assert!(alices.wait_for("\"status\":\"removed\"", limit));
    let alice_saw = alices.received();
    assert!(
        !alice_saw.contains(&bob_box),
        "Alice saw Bob's container:\n{alice_saw}"
    );
    let order = [
        "retry: 3000",
        "event: snapshot",
        "\"status\":\"exited\"",
        "\"status\":\"removed\"",
    ]
    .map(|needle| alice_saw.find(needle).unwrap_or(usize::MAX));
    assert!(order.is_sorted() && order[3] != usize::MAX, "{alice_saw}");

    // A stream ends once its token is revoked.
    let token = call("create_user_token", json!({"user_id": alice}));
    let alice_auth = format!("Bearer {}", token["token"].as_str().unwrap());
    let mut revoked = open_stream(server.port, "GET", &events, &[("Authorization", &alice_auth)]).unwrap();
    assert_eq!(revoked.status, 200);
    assert!(revoked.wait_for("event: snapshot", limit));
    call("revoke_user_token", json!({"token_id": token["id"]}));
    assert!(
        revoked.finish(Duration::from_secs(30)).is_some(),
        "the stream of a revoked token ended"
    );
}
