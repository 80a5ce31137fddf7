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
            // A stream that never ends by itself (events.rs tests it) only with refused credentials.
            let endless = row.endpoint == "container_events";
            let credential = match who {
                Who::Nobody => None,
                Who::WrongKey => Some(format!("Bearer {WRONG_KEY}")),
                Who::OtherUser | Who::Admin | Who::Owner if endless => continue,
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

/// A form POST or a GET with cookies, over a plain connection; the status, the header block
/// (lowercase names) and the body.
fn browse(
    port: u16,
    method: &str,
    path: &str,
    cookies: &str,
    form: &[(&str, &str)],
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let body: String = form
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if !cookies.is_empty() {
        request.push_str(&format!("Cookie: {cookies}\r\n"));
    }
    if method == "POST" {
        request.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), rest.to_owned())
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of cookie `name` set by an answer's header block.
fn cookie_set(head: &str, name: &str) -> String {
    head.lines()
        .filter_map(|l| l.strip_prefix("set-cookie: "))
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie in {head}"))
        .to_owned()
}

/// The text between `before` and the next `"`.
fn after(html: &str, before: &str) -> String {
    let start = html.find(before).unwrap_or_else(|| panic!("no {before}")) + before.len();
    html[start..].split('"').next().unwrap().to_owned()
}

#[test]
fn every_dashboard_form_of_the_binary_refuses_a_missing_or_forged_csrf_token() {
    if !require_docker() {
        return;
    }
    let env = TestEnv::new();
    let admin_key = format!("csrf-admin-key-{}", env.run);
    let mut vars = env.vars();
    vars.push(("CONTAINER_ADMIN_KEY", admin_key.clone()));
    let server = Server::start(&vars, &[]);
    let port = server.port;

    // Sign in as a browser does: the sign-in form's token and cookie, then the session.
    let (status, head, page) = browse(port, "GET", "/login", "", &[]);
    assert_eq!(status, 200);
    let login_cookie = format!("cm_login={}", cookie_set(&head, "cm_login"));
    let login_token = after(&page, "name=\"login_token\" value=\"");
    let (status, head, _) = browse(
        port,
        "POST",
        "/login",
        &login_cookie,
        &[("login_token", &login_token), ("key", &admin_key)],
    );
    assert_eq!(status, 303, "{head}");
    let session = format!("cm_session={}", cookie_set(&head, "cm_session"));
    let (status, _, home) = browse(port, "GET", "/", &session, &[]);
    assert_eq!(status, 200);
    let csrf = after(&home, "name=\"csrf-token\" content=\"");
    assert_eq!(csrf.len(), 64, "{csrf}");

    let container = format!("{}_cli_v4", env.user("alice"));
    let user = env.user("alice");
    // Every state-changing form of the dashboard (the POST routes of `dashboard::configure`).
    let forms: Vec<(String, Vec<(&str, &str)>)> = vec![
        (format!("/containers/{container}/start"), vec![]),
        (format!("/containers/{container}/stop"), vec![]),
        (format!("/containers/{container}/restart"), vec![]),
        (format!("/containers/{container}/delete"), vec![("force", "on")]),
        (
            "/create".into(),
            vec![("user_id", &user), ("container_type", "cli_v4")],
        ),
        ("/users/tokens".into(), vec![("user_id", &user)]),
        ("/users/tokens/revoke".into(), vec![("user_id", &user)]),
        (
            "/keys/add".into(),
            vec![("container", &container), ("key", "ssh-ed25519 AAAA")],
        ),
        (
            "/keys/remove".into(),
            vec![("container", &container), ("fingerprint", "SHA256:x")],
        ),
        ("/settings/rotate-key".into(), vec![]),
        ("/settings/reconcile".into(), vec![]),
        ("/bulk".into(), vec![("action", "delete"), ("c", &container)]),
        ("/logout".into(), vec![]),
    ];
    let forged = "0".repeat(64);
    for (path, fields) in &forms {
        let (status, _, page) = browse(port, "POST", path, &session, fields);
        assert_eq!(status, 403, "{path} without a token: {page}");
        assert!(page.contains("no valid security token"), "{path}");
        let mut with_forged = fields.clone();
        with_forged.push(("csrf", &forged));
        let (status, _, page) = browse(port, "POST", path, &session, &with_forged);
        assert_eq!(status, 403, "{path} with a forged token: {page}");
    }

    // Nothing happened: no token, no container, the admin key and the session still work.
    let admin = format!("Bearer {admin_key}");
    let (status, tokens) = server.request(
        "GET",
        &api("list_user_tokens"),
        &[("Authorization", &admin)],
        None,
    );
    assert_eq!((status, &tokens["tokens"]), (200, &json!([])), "{tokens}");
    let (_, listed) = server.request(
        "GET",
        &format!("{}?user_id={user}", api("list_containers")),
        &[("Authorization", &admin)],
        None,
    );
    assert_eq!(listed["containers"], json!([]), "{listed}");
    let (status, _, _) = browse(port, "GET", "/", &session, &[]);
    assert_eq!(status, 200, "the session outlived the forged sign-out");
    // The same form with the session's token does what it says.
    let (status, _, _) = browse(port, "POST", "/logout", &session, &[("csrf", &csrf)]);
    assert!(matches!(status, 200 | 303), "{status}");
    let (status, _, _) = browse(port, "GET", "/", &session, &[]);
    assert_ne!(status, 200, "signed out");
}
