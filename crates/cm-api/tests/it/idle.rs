//! Idle stop and wake-on-request end to end: the real `cm-api` stops an idle container of a type
//! with a short `idle_stop_after`, and a request through the real nginx starts it again and gets
//! the app's answer; a container stopped on purpose stays stopped.

use std::time::Duration;

use cm_core::{HostMode, RoutingMode};
use cm_testkit::wait_until;
use serde_json::{Value, json};

use crate::gate::Gate;

/// A type whose containers stop after 3 idle seconds; a wake may wait up to 50 s for the app
/// (a loaded machine starts it slowly).
const IDLE_TYPE: &str = "[types.idle_web]\ndescription = \"stops when idle\"\nimage = \"toolboxv2:latest\"\n\
                         internal_port = 8080\nidle_stop_after = \"3s\"\n[idle]\nwake_wait_seconds = 50\n";

/// How long the sweep may take to notice an idle container (3 s idle, a sweep a second).
const STOPPED_WITHIN: Duration = Duration::from_secs(60);

fn status_of(gate: &Gate, name: &str) -> String {
    let (status, answer) = gate.call("get_container", json!({"container_id": name}));
    assert_eq!(status, 200, "{answer}");
    answer["container"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The audit entries about `name`, as (action, actor kind, result).
fn audited(gate: &Gate, name: &str) -> Vec<(String, String, String)> {
    let (status, answer) = gate.call("audit_log", json!({"container_id": name}));
    assert_eq!(status, 200, "{answer}");
    answer["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e: &Value| {
            (
                e["action"].as_str().unwrap_or_default().to_owned(),
                e["actor"]["kind"].as_str().unwrap_or_default().to_owned(),
                e["result"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn an_idle_container_is_stopped_and_its_owners_request_wakes_it() {
    let Some(gate) = Gate::start_with(
        "idle stop and wake",
        RoutingMode::Dynamic,
        HostMode::Path,
        IDLE_TYPE,
    ) else {
        return;
    };
    let alice = gate.env.user("alice");
    let bob = gate.env.user("bob");
    let name = format!("{alice}_idle_web");
    gate.create(&alice, "idle_web");
    let alice_auth = format!("Bearer {}", gate.token(&alice));
    let bob_auth = format!("Bearer {}", gate.token(&bob));
    let path = format!("/container/{alice}/idle_web");
    gate.get_until(&format!("{path}/"), &[("Authorization", &alice_auth)], 200);

    // Nobody uses it: the sweep stops it and says so.
    assert!(
        wait_until(STOPPED_WITHIN, || status_of(&gate, &name) == "exited"),
        "not stopped while idle: {}",
        status_of(&gate, &name)
    );
    assert!(
        audited(&gate, &name).contains(&(
            "idle_stop_container".to_owned(),
            "system".to_owned(),
            "ok".to_owned()
        )),
        "{:?}",
        audited(&gate, &name)
    );

    // Another user's request wakes nothing.
    let foreign = gate.get(&format!("{path}/x"), &[("Authorization", &bob_auth)]);
    assert_eq!(foreign.status, 403, "{foreign:?}");
    assert_eq!(status_of(&gate, &name), "exited");

    // The owner's request starts it and is answered by the app itself.
    let woken = gate.get(&format!("{path}/woken?x=1"), &[("Authorization", &alice_auth)]);
    assert_eq!(woken.status, 200, "{woken:?}");
    let app: Value = serde_json::from_str(&woken.body).unwrap();
    assert_eq!(app["user_id"], alice.as_str());
    assert_eq!(app["path"], "/woken?x=1");
    assert!(
        audited(&gate, &name).contains(&("wake_container".to_owned(), "user".to_owned(), "ok".to_owned())),
        "{:?}",
        audited(&gate, &name)
    );

    // Stopped on purpose, it stays stopped: the owner gets the "stopped" page.
    let (status, stopped) = gate.call("stop_container", json!({"container_id": name}));
    assert_eq!(status, 200, "{stopped}");
    let refused = gate.get_until(
        &format!("{path}/x"),
        &[("Authorization", &alice_auth), ("Accept", "text/html")],
        503,
    );
    assert!(refused.body.contains("Container stopped"), "{}", refused.body);
    assert_eq!(status_of(&gate, &name), "exited");
}
