//! Idle stop and wake-on-request end to end: the real `cm-api` stops an idle container of a type
//! with a short `idle_stop_after`, and a request through the real nginx starts it again and gets
//! the app's answer (also after a restart of cm-api); an open WebSocket or SSH connection keeps
//! a container running; a container stopped on purpose stays stopped.

use std::time::Duration;

use cm_core::{HostMode, RoutingMode};
use cm_testkit::wait_until;
use serde_json::{Value, json};

use crate::gate::Gate;
use crate::helpers::Server;

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

/// A WebSocket through nginx, open once the app switched protocols.
fn open_websocket(port: u16, path: &str, auth: &str) -> std::net::TcpStream {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Authorization: {auth}\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    stream
}

#[test]
fn an_idle_container_is_stopped_and_its_owners_request_wakes_it() {
    let Some(mut gate) = Gate::start_with(
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

    // The mark outlives a restart of cm-api.
    let port = gate.server.port;
    gate.server.terminate(Duration::from_secs(30));
    let mut vars = gate.env.vars();
    vars.push(("CONTAINER_ADMIN_KEY", gate.admin.clone()));
    gate.server = Server::start_on(port, &vars, &[]);

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

    // A WebSocket open through the route keeps it running for more than twice its idle time (it
    // passed one route check when it opened, none since; nothing to wait for but time here),
    // and once it closes the container is stopped again.
    let socket = open_websocket(gate.nginx.port, &format!("{path}/ws"), &alice_auth);
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(
        status_of(&gate, &name),
        "running",
        "stopped while a WebSocket was open"
    );
    drop(socket);
    assert!(
        wait_until(STOPPED_WITHIN, || status_of(&gate, &name) == "exited"),
        "not stopped after the WebSocket closed"
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

/// Types for the second test: one with SSH, one whose app never answers; a wake waits 2 s.
const IDLE_SSH_TYPES: &str = "[types.idle_ssh]\ndescription = \"SSH, stops when idle\"\n\
                              image = \"toolboxv2:latest\"\ninternal_port = 8080\nssh = \"on\"\n\
                              idle_stop_after = \"3s\"\n\
                              [types.idle_silent]\ndescription = \"never answers, stops when idle\"\n\
                              image = \"toolboxv2:latest\"\ninternal_port = 8080\n\
                              command = [\"sleep\", \"infinity\"]\nidle_stop_after = \"3s\"\n\
                              [idle]\nwake_wait_seconds = 2\n";

/// A TCP connection to sshd, once it sent its banner.
fn ssh_connection(port: u16) -> Option<std::net::TcpStream> {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut banner = [0u8; 8];
    stream.read_exact(&mut banner).ok()?;
    (&banner == b"SSH-2.0-").then_some(stream)
}

#[test]
fn an_open_ssh_connection_keeps_a_container_running_and_a_slow_app_gets_the_starting_page() {
    let Some(gate) = Gate::start_with(
        "idle ssh and starting",
        RoutingMode::Dynamic,
        HostMode::Path,
        IDLE_SSH_TYPES,
    ) else {
        return;
    };
    let alice = gate.env.user("alice");
    let (status, created) = gate.call(
        "create_container",
        json!({"user_id": alice, "container_type": "idle_ssh"}),
    );
    assert_eq!(status, 201, "{created}");
    let ssh_port = u16::try_from(created["container"]["ssh_port"].as_u64().unwrap()).unwrap();
    gate.create(&alice, "idle_silent");
    let with_ssh = format!("{alice}_idle_ssh");
    let silent = format!("{alice}_idle_silent");

    // An open connection to sshd is a session: the container keeps running for more than twice
    // its idle time (nothing to wait for but time here), while the silent one is stopped.
    let mut connection = None;
    assert!(
        wait_until(STOPPED_WITHIN, || {
            connection = ssh_connection(ssh_port);
            connection.is_some()
        }),
        "sshd never answered on {ssh_port}"
    );
    assert!(
        wait_until(STOPPED_WITHIN, || status_of(&gate, &silent) == "exited"),
        "the silent one was not stopped"
    );
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(status_of(&gate, &with_ssh), "running", "stopped during a session");
    // The session ends: the container is stopped (its TCP table is read in the real image).
    drop(connection);
    assert!(
        wait_until(STOPPED_WITHIN, || status_of(&gate, &with_ssh) == "exited"),
        "not stopped after the session ended: {}",
        status_of(&gate, &with_ssh)
    );

    // A woken app that does not answer within the wait: 503 and a page that asks again.
    let auth = format!("Bearer {}", gate.token(&alice));
    let path = format!("/container/{alice}/idle_silent/");
    let page = gate.get(&path, &[("Authorization", &auth), ("Accept", "text/html")]);
    assert_eq!(page.status, 503, "{page:?}");
    assert!(page.body.contains("Starting"), "{}", page.body);
    assert!(
        page.body.contains(r#"<meta http-equiv="refresh" content="5">"#),
        "{}",
        page.body
    );
    assert_eq!(status_of(&gate, &silent), "running", "woken all the same");
    assert!(
        audited(&gate, &silent).contains(&("wake_container".to_owned(), "user".to_owned(), "ok".to_owned())),
        "{:?}",
        audited(&gate, &silent)
    );
}
