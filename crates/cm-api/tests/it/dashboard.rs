//! The dashboard in process, over cm-core's fakes: sessions and their cookies, CSRF, escaping,
//! user-token scoping, security headers and assets. The browser run on the real engine is in
//! `dashboard_browser.rs`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::test::TestRequest;
use serde_json::{Value, json};

use crate::helpers::{ADMIN, ALICE_KEY, ALICE_KEY_FINGERPRINT, TestApp, api};

/// A logged-in browser: its session cookie and the page's CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

/// An answer as text.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

async fn send(app: &TestApp, req: TestRequest) -> Page {
    let (status, headers, body) = app.send_full(req).await;
    // minijinja also escapes `/` (as `&#x2f;`); the tests read it back as `/` (every other
    // escape stays, so `<` in a value still reads `&lt;`).
    let body = match body {
        Value::String(text) => text,
        other => other.to_string(),
    }
    .replace("&#x2f;", "/");
    Page {
        status,
        headers,
        body,
    }
}

/// The value of cookie `name` set by an answer, with its attributes.
fn set_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::SET_COOKIE)
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
}

fn cookie_value(set_cookie: &str) -> String {
    let pair = set_cookie.split(';').next().unwrap();
    pair.split_once('=').unwrap().1.to_owned()
}

/// The text between `before` and the next `"`.
fn attribute_after(html: &str, before: &str) -> String {
    let start = html
        .find(before)
        .unwrap_or_else(|| panic!("no {before} in {html}"))
        + before.len();
    html[start..].split('"').next().unwrap().to_owned()
}

async fn login_form(app: &TestApp) -> (String, String) {
    let page = send(app, TestRequest::get().uri("/login")).await;
    assert_eq!(page.status, StatusCode::OK);
    let cookie = cookie_value(set_cookie(&page.headers, "cm_login").expect("a login cookie"));
    let token = attribute_after(&page.body, "name=\"login_token\" value=\"");
    (cookie, token)
}

async fn try_login(app: &TestApp, key: &str, extra: &[(&str, &str)]) -> Page {
    let (cookie, token) = login_form(app).await;
    let mut req = TestRequest::post()
        .uri("/login")
        .insert_header((header::COOKIE, format!("cm_login={cookie}")))
        .set_form([("login_token", token.as_str()), ("key", key)]);
    for (name, value) in extra {
        req = req.insert_header((*name, *value));
    }
    send(app, req).await
}

async fn login(app: &TestApp, key: &str) -> Browser {
    let page = try_login(app, key, &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), "/");
    let cookie = cookie_value(set_cookie(&page.headers, "cm_session").expect("a session cookie"));
    let mut browser = Browser {
        cookie,
        csrf: String::new(),
    };
    let home = browser.get(app, "/").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    browser.csrf = attribute_after(&home.body, "name=\"csrf-token\" content=\"");
    browser
}

impl Browser {
    fn with_cookie(&self, req: TestRequest) -> TestRequest {
        req.insert_header((header::COOKIE, format!("cm_session={}", self.cookie)))
    }

    async fn get(&self, app: &TestApp, path: &str) -> Page {
        send(app, self.with_cookie(TestRequest::get().uri(path))).await
    }

    /// A form POST carrying the session's CSRF token.
    async fn post(&self, app: &TestApp, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut form: Vec<(&str, &str)> = vec![("csrf", self.csrf.as_str())];
        form.extend_from_slice(fields);
        send(
            app,
            self.with_cookie(TestRequest::post().uri(path).set_form(form)),
        )
        .await
    }

    /// A form POST without the CSRF token.
    async fn post_without_csrf(&self, app: &TestApp, path: &str, fields: &[(&str, &str)]) -> Page {
        send(
            app,
            self.with_cookie(TestRequest::post().uri(path).set_form(fields)),
        )
        .await
    }

    /// POSTs, follows the 303 and returns the page it leads to.
    async fn post_and_follow(&self, app: &TestApp, path: &str, fields: &[(&str, &str)]) -> Page {
        let answer = self.post(app, path, fields).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{path}: {}", answer.body);
        let location = answer.location().to_owned();
        self.get(app, &location).await
    }
}

/// Creates a container through the API, as the admin.
async fn create(app: &TestApp, body: Value) -> Value {
    app.admin_post("create_container", body, StatusCode::CREATED)
        .await["container"]
        .clone()
}

#[actix_web::test]
async fn pages_without_a_session_send_you_to_the_login() {
    let app = TestApp::new();
    app.create("alice", "cli_v4").await;
    for path in [
        "/",
        "/create",
        "/users",
        "/keys",
        "/settings",
        "/logs/alice_cli_v4",
        "/containers/alice_cli_v4",
        "/containers/alice_cli_v4/delete",
    ] {
        let page = send(&app, TestRequest::get().uri(path)).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(page.location(), "/login", "{path}");
        let stale = send(
            &app,
            TestRequest::get()
                .uri(path)
                .insert_header((header::COOKIE, "cm_session=0123456789abcdef")),
        )
        .await;
        assert_eq!(stale.location(), "/login", "{path}");
        assert!(
            set_cookie(&stale.headers, "cm_session").is_some_and(|c| c.contains("Max-Age=0")),
            "an unknown session cookie is removed"
        );
    }
    for path in ["/containers/alice_cli_v4/stop", "/create", "/logout"] {
        let page = send(&app, TestRequest::post().uri(path).set_form([("csrf", "x")])).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(page.location(), "/login");
    }
    // The scripts' endpoints answer 401 instead of a redirect.
    let page = send(&app, TestRequest::get().uri("/ui/statuses")).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn login_makes_a_strict_http_only_session_cookie_that_is_never_the_key() {
    let app = TestApp::new();
    let page = try_login(&app, ADMIN, &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let cookie = set_cookie(&page.headers, "cm_session").unwrap();
    let id = cookie_value(cookie);
    assert_eq!(id.len(), 64);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        cookie.replace(&id, "[id]"),
        "cm_session=[id]; Path=/; HttpOnly; SameSite=Strict"
    );
    for answer in page.headers.iter() {
        let value = answer.1.to_str().unwrap_or_default();
        assert!(!value.contains(ADMIN), "{answer:?}");
    }

    // Over https (here: as a proxy says), the cookie is Secure too.
    let https = try_login(&app, ADMIN, &[("X-Forwarded-Proto", "https")]).await;
    assert!(
        set_cookie(&https.headers, "cm_session")
            .unwrap()
            .ends_with("; Secure")
    );

    // No page shows the key; a wrong key is refused without echoing it.
    let browser = login(&app, ADMIN).await;
    for path in ["/", "/create", "/users", "/keys", "/settings"] {
        let page = browser.get(&app, path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(!page.body.contains(ADMIN), "{path}");
    }
    let wrong = try_login(&app, "not-the-key-but-close", &[]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(
        wrong
            .body
            .contains("neither the admin key nor a valid user token")
    );
    assert!(!wrong.body.contains("not-the-key-but-close"));
    assert!(set_cookie(&wrong.headers, "cm_session").is_none());

    // A login form without its token (posted from elsewhere) is refused.
    let forged = send(&app, TestRequest::post().uri("/login").set_form([("key", ADMIN)])).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(set_cookie(&forged.headers, "cm_session").is_none());

    // Logout ends the session at once.
    let out = browser.post(&app, "/logout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/login");
    assert!(
        set_cookie(&out.headers, "cm_session")
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(browser.get(&app, "/").await.location(), "/login");
}

#[actix_web::test]
async fn a_post_without_the_csrf_token_is_refused() {
    let app = TestApp::new();
    app.create("alice", "cli_v4").await;
    let browser = login(&app, ADMIN).await;
    // Every form the dashboard takes (the POST routes of `dashboard::configure`).
    for (path, fields) in [
        ("/containers/alice_cli_v4/start", vec![]),
        ("/containers/alice_cli_v4/stop", vec![]),
        ("/containers/alice_cli_v4/restart", vec![]),
        ("/containers/alice_cli_v4/delete", vec![("force", "on")]),
        ("/create", vec![("user_id", "bob"), ("container_type", "cli_v4")]),
        ("/users/tokens", vec![("user_id", "alice")]),
        ("/users/tokens/revoke", vec![("user_id", "alice")]),
        (
            "/keys/add",
            vec![("container", "alice_cli_v4"), ("key", ALICE_KEY)],
        ),
        (
            "/keys/remove",
            vec![
                ("container", "alice_cli_v4"),
                ("fingerprint", ALICE_KEY_FINGERPRINT),
            ],
        ),
        ("/settings/rotate-key", vec![]),
        ("/settings/reconcile", vec![]),
        ("/bulk", vec![("action", "stop"), ("c", "alice_cli_v4")]),
        ("/logout", vec![]),
    ] {
        let page = browser.post_without_csrf(&app, path, &fields).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
        assert!(page.body.contains("no valid security token"), "{path}");
        let mut forged = fields.clone();
        forged.push((
            "csrf",
            "0000000000000000000000000000000000000000000000000000000000000000",
        ));
        let page = browser.post_without_csrf(&app, path, &forged).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
    }
    // Nothing happened.
    assert_eq!(
        app.world.runtime.containers()[0].status,
        cm_core::ContainerStatus::Running
    );
    assert_eq!(app.world.runtime.containers().len(), 1);
    assert!(app.state.auth.tokens().await.unwrap().is_empty());
    // The same form with the token works.
    let page = browser.post(&app, "/containers/alice_cli_v4/stop", &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.world.runtime.containers()[0].status,
        cm_core::ContainerStatus::Exited
    );
    // The key check of the scripts needs the token in its header.
    let check = send(
        &app,
        browser.with_cookie(TestRequest::post().uri("/ui/check-key").set_payload(ALICE_KEY)),
    )
    .await;
    assert_eq!(check.status, StatusCode::FORBIDDEN);
}

#[actix_web::test]
async fn values_from_users_and_containers_are_escaped_and_secrets_hidden() {
    let app = TestApp::new();
    let probe = "<script>alert(1)</script>";
    create(
        &app,
        json!({
            "user_id": "alice",
            "container_type": "custom",
            "command": ["sh", "-c", format!("echo '{probe}'; sleep 60")],
            "env": {"PROBE": probe, "API_TOKEN": "very-secret-value", "QUOTE": "\"' onmouseover=alert(1) x='"},
        }),
    )
    .await;
    let browser = login(&app, ADMIN).await;
    for path in ["/", "/containers/alice_custom", "/users"] {
        let page = browser.get(&app, path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(!page.body.contains(probe), "{path}");
        assert!(!page.body.contains("very-secret-value"), "{path}");
    }
    let detail = browser.get(&app, "/containers/alice_custom").await;
    assert!(detail.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    insta::assert_snapshot!(
        "escaped_environment",
        fragment(
            &detail.body,
            "<table class=\"table compact\" id=\"env\">",
            "</table>"
        )
    );
    insta::assert_snapshot!(
        "escaped_command",
        fragment(&detail.body, "<code class=\"wrap\" id=\"command\">", "</code>")
    );

    // A hostile value typed into the create form comes back escaped next to its field.
    let page = browser
        .post(
            &app,
            "/create",
            &[
                ("user_id", "<img src=x onerror=alert(1)>"),
                ("container_type", "cli_v4"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!page.body.contains("<img src=x"));
    assert!(page.body.contains("value=\"&lt;img src=x onerror=alert(1)&gt;\""));
}

/// The secret a page shows once.
fn shown_secret(html: &str) -> String {
    let after = html
        .split("id=\"secret-value\">")
        .nth(1)
        .unwrap_or_else(|| panic!("no secret in {html}"));
    after.split('<').next().unwrap().to_owned()
}

/// The text from `start` to the next `end`, both included.
fn fragment(html: &str, start: &str, end: &str) -> String {
    let from = html.find(start).unwrap_or_else(|| panic!("no {start} in {html}"));
    let to = html[from..].find(end).unwrap() + from + end.len();
    html[from..to].to_owned()
}

#[actix_web::test]
async fn a_user_token_sees_and_does_only_what_its_user_may() {
    let app = TestApp::new();
    app.create("alice", "cli_v4").await;
    app.create("bob", "cli_v4").await;
    let token = app.token("alice").await;
    let browser = login(&app, &token).await;

    let home = browser.get(&app, "/").await;
    assert!(home.body.contains("alice_cli_v4"));
    assert!(!home.body.contains("bob_cli_v4"));
    assert!(home.body.contains("<strong>alice</strong>"), "who is logged in");
    assert!(
        !home.body.contains("href=\"/settings\""),
        "no admin pages in the nav"
    );
    // Naming another user in the filter does not widen anything.
    let filtered = browser.get(&app, "/?user=bob").await;
    assert!(!filtered.body.contains("bob_cli_v4"));
    let statuses = browser.get(&app, "/ui/statuses").await;
    let statuses: Value = serde_json::from_str(&statuses.body).unwrap();
    assert_eq!(
        statuses["containers"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["alice_cli_v4"]
    );
    let keys = browser.get(&app, "/keys").await;
    assert!(keys.body.contains("alice_cli_v4") && !keys.body.contains("bob_cli_v4"));

    // Another user's container looks missing.
    for path in ["/containers/bob_cli_v4", "/logs/bob_cli_v4"] {
        let page = browser.get(&app, path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!page.body.contains("another user"), "{path}");
    }
    for path in ["/create", "/users", "/settings"] {
        let page = browser.get(&app, path).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
        assert!(page.body.contains("Not allowed"), "{path}");
    }
    // Deleting their own container is a user action; deleting the data stays the admin's.
    let delete_page = browser.get(&app, "/containers/alice_cli_v4/delete").await;
    assert_eq!(delete_page.status, StatusCode::OK);
    assert!(!delete_page.body.contains("id=\"purge\""), "{}", delete_page.body);
    assert!(delete_page.body.contains("Only the admin can delete the data"));
    for (path, fields) in [
        ("/containers/bob_cli_v4/start", vec![]),
        ("/containers/bob_cli_v4/stop", vec![]),
        ("/containers/bob_cli_v4/restart", vec![]),
        ("/containers/bob_cli_v4/delete", vec![("force", "on")]),
        ("/keys/add", vec![("container", "bob_cli_v4"), ("key", ALICE_KEY)]),
        (
            "/keys/remove",
            vec![
                ("container", "bob_cli_v4"),
                ("fingerprint", ALICE_KEY_FINGERPRINT),
            ],
        ),
    ] {
        let page = browser.post(&app, path, &fields).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
    }
    // Bob's live logs look missing too; the admin's reconcile is refused.
    assert_eq!(
        browser.get(&app, "/ui/logs/bob_cli_v4").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        browser.post(&app, "/settings/reconcile", &[]).await.status,
        StatusCode::FORBIDDEN
    );
    for (path, fields) in [
        (
            "/containers/alice_cli_v4/delete",
            vec![("force", "on"), ("purge", "on")],
        ),
        (
            "/create",
            vec![("user_id", "alice"), ("container_type", "custom")],
        ),
        ("/users/tokens", vec![("user_id", "alice")]),
        ("/settings/rotate-key", vec![]),
    ] {
        let page = browser.post(&app, path, &fields).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
    }
    assert!(
        app.world
            .runtime
            .containers()
            .iter()
            .all(|c| c.status == cm_core::ContainerStatus::Running)
    );

    // Their own container: stop, logs and keys work.
    let page = browser
        .post_and_follow(&app, "/containers/alice_cli_v4/stop", &[("back", "/")])
        .await;
    assert!(
        page.body.contains("Container alice_cli_v4 was stopped"),
        "{}",
        page.body
    );
    let page = browser
        .post_and_follow(
            &app,
            "/keys/add",
            &[("container", "alice_cli_v4"), ("key", ALICE_KEY)],
        )
        .await;
    assert!(page.body.contains(ALICE_KEY_FINGERPRINT), "{}", page.body);
    assert_eq!(
        browser.get(&app, "/logs/alice_cli_v4").await.status,
        StatusCode::OK
    );
    let page = browser
        .post_and_follow(
            &app,
            "/keys/remove",
            &[
                ("container", "alice_cli_v4"),
                ("fingerprint", ALICE_KEY_FINGERPRINT),
            ],
        )
        .await;
    assert!(
        page.body.contains("was removed from alice_cli_v4"),
        "{}",
        page.body
    );
    assert_eq!(
        page.body.matches(ALICE_KEY_FINGERPRINT).count(),
        1,
        "only in the message"
    );
    let page = browser
        .post_and_follow(&app, "/containers/alice_cli_v4/delete", &[("force", "on")])
        .await;
    assert!(
        page.body.contains("its data volume alice_cli_v4_data was kept"),
        "{}",
        page.body
    );

    // Revoking the token ends the session at its next request.
    app.admin_post("revoke_user_token", json!({"user_id": "alice"}), StatusCode::OK)
        .await;
    assert_eq!(browser.get(&app, "/").await.location(), "/login");
}

#[actix_web::test]
async fn every_answer_carries_the_security_headers_and_assets_are_embedded() {
    let app = TestApp::new();
    let browser = login(&app, ADMIN).await;
    let pages = [
        send(&app, TestRequest::get().uri("/login")).await,
        browser.get(&app, "/").await,
        browser.get(&app, "/containers/nobody_cli_v4").await,
        send(&app, TestRequest::get().uri("/")).await,
    ];
    for page in &pages {
        let csp = page.header("content-security-policy");
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(page.header("x-content-type-options"), "nosniff");
        assert_eq!(page.header("referrer-policy"), "no-referrer");
        assert_eq!(page.header("x-frame-options"), "DENY");
    }
    assert_eq!(pages[2].status, StatusCode::NOT_FOUND);
    assert_eq!(pages[1].header("cache-control"), "no-store");
    let home = &pages[1].body;
    assert!(!home.contains("<script>"), "no inline script");
    assert!(!home.contains(" style=\""), "no inline style");
    assert!(
        !home.contains("http://") && !home.contains("https://"),
        "nothing from elsewhere"
    );

    for (name, content_type) in [
        ("app.css", "text/css; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("logo.svg", "image/svg+xml"),
    ] {
        let url = attribute_after(home, &format!("/assets/{name}?v="));
        let versioned = format!("/assets/{name}?v={url}");
        let page = send(&app, TestRequest::get().uri(&versioned)).await;
        assert_eq!(page.status, StatusCode::OK, "{name}");
        assert_eq!(page.header("content-type"), content_type);
        assert_eq!(
            page.header("cache-control"),
            "public, max-age=31536000, immutable"
        );
        assert!(
            !page.body.contains("http://") || name == "logo.svg",
            "{name} loads nothing from elsewhere"
        );
        let etag = page.header("etag").to_owned();
        let plain = send(&app, TestRequest::get().uri(&format!("/assets/{name}"))).await;
        assert_eq!(plain.header("cache-control"), "no-cache");
        let again = send(
            &app,
            TestRequest::get()
                .uri(&format!("/assets/{name}"))
                .insert_header((header::IF_NONE_MATCH, etag)),
        )
        .await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    }
    let missing = send(&app, TestRequest::get().uri("/assets/nothing.js")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    // The API's unknown paths still answer JSON.
    let (status, body) = app.get("/nothing/here", &crate::helpers::Cred::Anonymous).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}

#[actix_web::test]
async fn create_shows_the_core_validation_next_to_the_field_then_the_new_container() {
    let app = TestApp::new();
    let browser = login(&app, ADMIN).await;
    let form = browser.get(&app, "/create").await;
    assert!(form.body.contains("cli_v4 — port 8080, SSH on"));
    assert!(form.body.contains("preview_server — port 8600, SSH off"));

    for (fields, field, message) in [
        (
            vec![("user_id", "../etc"), ("container_type", "cli_v4")],
            "user_id",
            "invalid user id",
        ),
        (
            vec![("user_id", "alice"), ("container_type", "nope")],
            "container_type",
            "unknown container type",
        ),
        (
            vec![
                ("user_id", "alice"),
                ("container_type", "cli_v4"),
                ("memory", "lots"),
            ],
            "memory",
            "invalid memory limit",
        ),
        (
            vec![
                ("user_id", "alice"),
                ("container_type", "cli_v4"),
                ("env", "NOEQUALS"),
            ],
            "env",
            "invalid environment assignment",
        ),
        (
            vec![
                ("user_id", "alice"),
                ("container_type", "cli_v4"),
                ("ssh_key", "ssh-rsa AAAA"),
            ],
            "ssh_key",
            "invalid ssh key",
        ),
    ] {
        let page = browser.post(&app, "/create", &fields).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        // The message sits in the field's own label block.
        let block = fragment(&page.body, &format!("name=\"{field}\""), "</label>");
        assert!(block.contains("class=\"field-error\""), "{field}: {block}");
        assert!(block.to_lowercase().contains(message), "{field}: {block}");
    }
    assert!(app.world.runtime.containers().is_empty());

    let page = browser
        .post_and_follow(
            &app,
            "/create",
            &[
                ("user_id", "alice"),
                ("container_type", "cli_v4"),
                ("env", "GREETING=hello\nDB_PASSWORD=hunter2"),
                ("ssh_key", ALICE_KEY),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("Container alice_cli_v4 was created"),
        "{}",
        page.body
    );
    assert!(page.body.contains("/container/alice/cli_v4/"));
    assert!(page.body.contains("ssh -p "));
    assert!(page.body.contains("docksh connect &lt;server&gt; "));
    assert!(page.body.contains(ALICE_KEY_FINGERPRINT));
    assert!(page.body.contains("hello") && !page.body.contains("hunter2"));
    // The message shows once.
    let again = browser.get(&app, "/containers/alice_cli_v4").await;
    assert!(!again.body.contains("was created"));

    // A second one of the same user and type: the core's conflict, above the form.
    let page = browser
        .post(
            &app,
            "/create",
            &[("user_id", "alice"), ("container_type", "cli_v4")],
        )
        .await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    assert!(page.body.contains("id=\"create-error\""));
    assert!(page.body.contains("already has a cli_v4 container"));
}

#[actix_web::test]
async fn delete_asks_first_and_purges_only_when_asked() {
    let app = TestApp::new();
    app.create("alice", "cli_v4").await;
    app.create("bob", "custom").await;
    let browser = login(&app, ADMIN).await;
    let confirm = browser.get(&app, "/containers/alice_cli_v4/delete").await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("Delete alice_cli_v4?"));
    assert!(confirm.body.contains("name=\"purge\""));

    // Without force a running container stays, with the core's reason.
    let page = browser
        .post_and_follow(&app, "/containers/alice_cli_v4/delete", &[])
        .await;
    assert!(page.body.contains("is running: stop it first"), "{}", page.body);
    assert_eq!(app.world.runtime.containers().len(), 2);

    let page = browser
        .post_and_follow(&app, "/containers/alice_cli_v4/delete", &[("force", "on")])
        .await;
    assert!(
        page.body.contains("its data volume alice_cli_v4_data was kept"),
        "{}",
        page.body
    );
    assert!(
        app.world
            .runtime
            .volumes()
            .contains(&"alice_cli_v4_data".to_owned())
    );
    let page = browser
        .post_and_follow(
            &app,
            "/containers/bob_custom/delete",
            &[("force", "on"), ("purge", "on")],
        )
        .await;
    assert!(page.body.contains("was removed too"), "{}", page.body);
    assert!(
        !app.world
            .runtime
            .volumes()
            .contains(&"bob_custom_data".to_owned())
    );
    assert!(page.body.contains("No containers yet"), "the empty state");
}

#[actix_web::test]
async fn tokens_keys_and_the_admin_key_from_the_pages() {
    let app = TestApp::with_auth(cm_core::testing::fake_auth(None));
    let first = app.state.auth.ensure_admin_key().await.unwrap().unwrap();
    let (status, _) = app
        .post(
            &api("create_container"),
            json!({"user_id": "alice", "container_type": "cli_v4"}),
            &crate::helpers::Cred::Bearer(first.expose().to_owned()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let browser = login(&app, first.expose()).await;

    // A token is shown once, then only its id.
    let page = browser
        .post_and_follow(&app, "/users/tokens", &[("user_id", "alice")])
        .await;
    let token = shown_secret(&page.body);
    assert!(token.starts_with("cmu_"), "{token}");
    let users = browser.get(&app, "/users").await;
    assert!(!users.body.contains(&token));
    let record = &app.state.auth.tokens().await.unwrap()[0];
    assert!(users.body.contains(&record.id));
    let page = browser
        .post_and_follow(&app, "/users/tokens/revoke", &[("token_id", &record.id)])
        .await;
    assert!(page.body.contains("was revoked"));
    assert!(app.state.auth.tokens().await.unwrap().is_empty());

    // Keys: checked as you type, added, listed with the fingerprint, removed.
    let check = send(
        &app,
        browser.with_cookie(
            TestRequest::post()
                .uri("/ui/check-key")
                .insert_header(("X-CSRF-Token", browser.csrf.as_str()))
                .set_payload(ALICE_KEY),
        ),
    )
    .await;
    let verdict: Value = serde_json::from_str(&check.body).unwrap();
    assert_eq!(verdict["ok"], true, "{verdict}");
    assert_eq!(verdict["fingerprint"], ALICE_KEY_FINGERPRINT);
    let check = send(
        &app,
        browser.with_cookie(
            TestRequest::post()
                .uri("/ui/check-key")
                .insert_header(("X-CSRF-Token", browser.csrf.as_str()))
                .set_payload("ssh-rsa AAAAB3Nza"),
        ),
    )
    .await;
    let verdict: Value = serde_json::from_str(&check.body).unwrap();
    assert_eq!(verdict["ok"], false);
    assert!(verdict["error"].as_str().unwrap().contains("ssh-ed25519"));
    let page = browser
        .post_and_follow(
            &app,
            "/keys/add",
            &[("container", "alice_cli_v4"), ("key", ALICE_KEY)],
        )
        .await;
    assert!(
        page.body
            .contains(&format!("Key {ALICE_KEY_FINGERPRINT} was added"))
    );
    assert!(page.body.contains("ssh -p "));
    let page = browser
        .post_and_follow(
            &app,
            "/keys/remove",
            &[
                ("container", "alice_cli_v4"),
                ("fingerprint", ALICE_KEY_FINGERPRINT),
            ],
        )
        .await;
    assert!(page.body.contains("was removed from alice_cli_v4"));

    // Rotation: the new key is shown once, this session goes on, the old key stops working.
    let other = login(&app, first.expose()).await;
    let page = browser.post_and_follow(&app, "/settings/rotate-key", &[]).await;
    let new_key = shown_secret(&page.body);
    assert!(new_key.starts_with("cmk_") && new_key != first.expose());
    assert_eq!(browser.get(&app, "/settings").await.status, StatusCode::OK);
    assert!(!browser.get(&app, "/settings").await.body.contains(&new_key));
    assert_eq!(
        other.get(&app, "/").await.location(),
        "/login",
        "other admin sessions end"
    );
    assert_eq!(
        try_login(&app, first.expose(), &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    login(&app, &new_key).await;
}

#[actix_web::test]
async fn rotating_a_key_from_the_environment_is_refused_with_the_reason() {
    let app = TestApp::new();
    let browser = login(&app, ADMIN).await;
    let settings = browser.get(&app, "/settings").await;
    assert!(settings.body.contains("comes from the environment variable"));
    let page = browser.post_and_follow(&app, "/settings/rotate-key", &[]).await;
    assert!(page.body.contains("banner-error"), "{}", page.body);
    assert!(
        page.body
            .contains("rotate it by changing the variable and restarting")
    );
    login(&app, ADMIN).await;
}

/// A type with a disk cap: its container's page shows the use against the cap, and
/// `get_container` carries `disk` and `disk_usage`; an uncapped one says it has no cap.
#[actix_web::test]
async fn the_container_page_and_get_container_show_disk_use_against_the_cap() {
    let config =
        cm_core::Config::from_toml("[types.capped]\nimage = \"toolboxv2:latest\"\ndisk = \"64m\"\n").unwrap();
    let world = cm_core::testing::FakeWorld::with_config(config);
    let app = TestApp::over(world, cm_core::testing::fake_auth(Some(ADMIN)));
    create(&app, json!({"user_id": "alice", "container_type": "capped"})).await;
    create(&app, json!({"user_id": "alice", "container_type": "custom"})).await;
    let browser = login(&app, ADMIN).await;
    let capped = browser.get(&app, "/containers/alice_capped").await;
    assert_eq!(capped.status, StatusCode::OK);
    assert!(capped.body.contains("id=\"disk-meter\""), "{}", capped.body);
    assert!(capped.body.contains("16.0 MiB of 64.0 MiB"), "{}", capped.body);
    let plain = browser.get(&app, "/containers/alice_custom").await;
    assert!(plain.body.contains("no cap"), "{}", plain.body);
    let (status, got) = app
        .get(
            &format!("{}?container_id=alice_capped", api("get_container")),
            &crate::helpers::Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["container"]["disk"], "64m");
    assert_eq!(got["container"]["disk_usage"]["size_bytes"], 64 << 20);
}

#[actix_web::test]
async fn sign_ins_and_forms_go_into_the_audit_trail() {
    let app = TestApp::new();
    app.create("alice", "cli_v4").await;
    let refused = try_login(&app, "not-the-key", &[]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let browser = login(&app, ADMIN).await;
    let page = browser.post(&app, "/containers/alice_cli_v4/stop", &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    // Refused for a missing container: recorded as failed.
    let page = browser
        .post(
            &app,
            "/keys/add",
            &[("container", "alice_cli_v4"), ("key", "ssh-rsa AAAA")],
        )
        .await;
    // Refused by the parser: the page again, with the key as typed, recorded as failed.
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains(">ssh-rsa AAAA</textarea>"), "{}", page.body);
    // A form without its token did nothing and is not an action.
    let forged = browser.post_without_csrf(&app, "/settings/reconcile", &[]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    let seen: Vec<(String, String, String, Option<String>, String)> = app
        .audit
        .entries()
        .iter()
        .map(|e| {
            (
                e.source.as_str().to_owned(),
                e.action.clone(),
                serde_json::to_value(&e.actor).unwrap()["kind"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                e.target.clone(),
                e.result.clone(),
            )
        })
        .collect();
    let row = |source: &str, action: &str, actor: &str, target: Option<&str>, result: &str| {
        (
            source.to_owned(),
            action.to_owned(),
            actor.to_owned(),
            target.map(str::to_owned),
            result.to_owned(),
        )
    };
    assert_eq!(
        seen,
        [
            row("api", "create_container", "admin", Some("alice_cli_v4"), "ok"),
            row("dashboard", "sign_in", "anonymous", None, "unauthorized"),
            row("dashboard", "sign_in", "admin", None, "ok"),
            row("dashboard", "stop_container", "admin", Some("alice_cli_v4"), "ok"),
            row(
                "dashboard",
                "add_ssh_key_to_container",
                "admin",
                Some("alice_cli_v4"),
                "invalid_input"
            ),
        ]
    );
    let text = serde_json::to_string(&app.audit.entries()).unwrap();
    assert!(!text.contains(ADMIN) && !text.contains(&browser.csrf), "{text}");
}

#[actix_web::test]
async fn the_audit_page_and_a_containers_history_show_the_trail_to_whom_they_may() {
    let app = TestApp::new();
    app.create("alice", "cli_v4").await;
    app.create("bob", "cli_v4").await;
    let admin = login(&app, ADMIN).await;
    admin.post(&app, "/containers/alice_cli_v4/stop", &[]).await;

    let page = admin.get(&app, "/audit").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("stop_container") && page.body.contains("bob_cli_v4"),
        "{}",
        page.body
    );
    let page = admin.get(&app, "/audit?user=alice").await;
    assert!(
        page.body.contains("stop_container") && !page.body.contains("bob_cli_v4"),
        "{}",
        page.body
    );
    let page = admin.get(&app, "/audit?user=Not%20A%20User").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("invalid user id"), "{}", page.body);

    // A container's history: on its page, for its owner too, without addresses.
    let page = admin.get(&app, "/containers/alice_cli_v4").await;
    assert!(
        page.body.contains("id=\"history\"") && page.body.contains("stop_container"),
        "{}",
        page.body
    );
    let token = app.token("alice").await;
    let alice = login(&app, &token).await;
    let page = alice.get(&app, "/containers/alice_cli_v4").await;
    assert!(
        page.body.contains("stop_container") && !page.body.contains("<th>From</th>"),
        "{}",
        page.body
    );
    assert_eq!(alice.get(&app, "/audit").await.status, StatusCode::FORBIDDEN);
}

#[actix_web::test]
async fn live_events_without_a_live_view_answer_503_so_the_page_polls() {
    let app = TestApp::new();
    app.create("alice", "cli_v4").await;
    let browser = login(&app, ADMIN).await;
    let page = browser.get(&app, "/ui/events").await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE, "{}", page.body);
    assert!(page.body.contains("event feed"), "{}", page.body);
    let home = browser.get(&app, "/").await;
    assert!(
        home.body.contains("data-poll-statuses"),
        "the page still knows how to poll"
    );
}

#[actix_web::test]
async fn while_the_engine_is_away_statuses_are_marked_old_and_actions_wait() {
    let app = TestApp::new();
    app.create("alice", "cli_v4").await;
    let browser = login(&app, ADMIN).await;
    let page = browser.get(&app, "/").await;
    assert!(!page.body.contains("data-stale"), "{}", page.body);
    app.world.runtime.set_down(true);
    for path in ["/", "/containers/alice_cli_v4"] {
        let page = browser.get(&app, path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(
            page.body.contains("data-stale")
                && page.body.contains("class=\"")
                && page.body.contains(" stale"),
            "{path}: {}",
            page.body
        );
    }
    let script = browser
        .get(&app, &attribute_after(&page.body, "<script src=\""))
        .await;
    assert!(
        script.body.contains("b.disabled = stale"),
        "the script disables actions while stale"
    );
}

/// The rows of the containers table, in order.
fn rows(html: &str) -> Vec<String> {
    html.split("<tr data-container=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn the_list_searches_sorts_and_pages_on_the_server() {
    let app = TestApp::new();
    for n in 0..55 {
        app.create(&format!("u{n:02}"), "custom").await;
    }
    app.create("zed", "cli_v4").await;
    let browser = login(&app, ADMIN).await;

    // 56 containers: 50 on the first page, by name, and links to the next one.
    let first = browser.get(&app, "/").await;
    let listed = rows(&first.body);
    assert_eq!(listed.len(), 50);
    assert_eq!(listed[0], "u00_custom");
    assert!(first.body.contains("Page 1 of 2"), "{}", first.body);
    assert!(first.body.contains("href=\"/?page=2\""));
    let second = browser.get(&app, "/?page=2").await;
    assert_eq!(rows(&second.body).len(), 6);
    assert_eq!(rows(&second.body).last().unwrap(), "zed_cli_v4");
    // Past the last page: the last one, and the page says so.
    let past = browser.get(&app, "/?page=99").await;
    assert_eq!(past.status, StatusCode::OK);
    assert_eq!(rows(&past.body), rows(&second.body));
    assert!(past.body.contains("That page does not exist"));

    // Sorted by type, descending: zed's cli_v4 after every custom; the link turns the order.
    let sorted = browser.get(&app, "/?sort=type&dir=desc").await;
    assert_eq!(rows(&sorted.body)[0], "u54_custom");
    assert!(sorted.body.contains("aria-sort=\"descending\""));
    assert!(
        sorted.body.contains("href=\"/?sort=type\""),
        "toggles to ascending"
    );
    let sorted = browser.get(&app, "/?sort=type").await;
    assert_eq!(rows(&sorted.body)[0], "zed_cli_v4");
    // An unknown key or direction is ignored, said so, and never put back into the page.
    let odd = browser
        .get(&app, "/?sort=%3Cscript%3Ealert(1)%3C%2Fscript%3E&dir=%22sideways")
        .await;
    assert_eq!(odd.status, StatusCode::OK);
    assert_eq!(rows(&odd.body)[0], "u00_custom");
    assert!(odd.body.contains("That sort key is unknown: sorted by name."));
    assert!(odd.body.contains("That order is unknown"));
    assert!(!odd.body.contains("alert(1)") && !odd.body.contains("sideways"));

    // The search: any part of the name, user, type, status or port, kept in the box, escaped.
    let found = browser.get(&app, "/?q=U1").await;
    assert_eq!(
        rows(&found.body),
        (10..20).map(|n| format!("u{n}_custom")).collect::<Vec<_>>()
    );
    assert!(found.body.contains("name=\"q\" id=\"search\" value=\"U1\""));
    assert!(found.body.contains("10 matching"));
    let found = browser.get(&app, "/?q=cli_v4&type=cli_v4").await;
    assert_eq!(rows(&found.body), ["zed_cli_v4"]);
    let none = browser.get(&app, "/?q=%3Cb%3Ex%22").await;
    assert!(rows(&none.body).is_empty());
    assert!(none.body.contains("value=\"&lt;b&gt;x&quot;\""), "{}", none.body);
    assert!(none.body.contains("No container matches"));
    // The page size: any from 1 to 500, carried by the links; others ignored, and said so.
    let small = browser.get(&app, "/?per=20&page=3").await;
    assert_eq!(rows(&small.body).len(), 16);
    assert!(small.body.contains("Page 3 of 3"));
    assert!(
        small.body.contains("href=\"/?per=20&amp;page=2\""),
        "{}",
        small.body
    );
    let huge = browser.get(&app, "/?per=100000").await;
    assert_eq!(rows(&huge.body).len(), 50);
    assert!(huge.body.contains("Rows per page go from 1 to 500: showing 50."));
    let all = browser.get(&app, "/?per=100").await;
    assert_eq!(rows(&all.body).len(), 56);
    assert!(!all.body.contains("id=\"pager\""));
    // The sort and the search travel together in the page links.
    let page = browser.get(&app, "/?q=custom&sort=created&dir=desc").await;
    assert!(
        page.body
            .contains("href=\"/?q=custom&amp;sort=created&amp;dir=desc&amp;page=2\""),
        "{}",
        page.body
    );
}

#[actix_web::test]
async fn every_destructive_action_asks_first_without_javascript() {
    let app = TestApp::new();
    app.create("alice", "cli_v4").await;
    let token = app.token("alice").await;
    let browser = login(&app, ADMIN).await;
    browser
        .post_and_follow(
            &app,
            "/keys/add",
            &[("container", "alice_cli_v4"), ("key", ALICE_KEY)],
        )
        .await;

    // The list offers Stop and Restart as links to a confirmation, not as forms that act.
    let home = browser.get(&app, "/").await;
    assert!(
        home.body
            .contains("method=\"get\" action=\"/containers/alice_cli_v4/stop\"")
    );
    assert!(
        !home
            .body
            .contains("method=\"post\" action=\"/containers/alice_cli_v4/stop\"")
    );
    assert!(
        !home
            .body
            .contains("method=\"post\" action=\"/containers/alice_cli_v4/restart\"")
    );

    let record = app.state.auth.tokens().await.unwrap()[0].id.clone();
    for (path, title, action) in [
        (
            "/containers/alice_cli_v4/stop?back=/",
            "Stop alice_cli_v4?",
            "/containers/alice_cli_v4/stop",
        ),
        (
            "/containers/alice_cli_v4/restart",
            "Restart alice_cli_v4?",
            "/containers/alice_cli_v4/restart",
        ),
        (
            &format!("/users/tokens/revoke?token_id={record}"),
            &format!("Revoke token {record}?"),
            "/users/tokens/revoke",
        ),
        (
            "/users/tokens/revoke?user_id=alice",
            "Revoke every token of alice?",
            "/users/tokens/revoke",
        ),
        (
            &format!("/keys/remove?container=alice_cli_v4&fingerprint={ALICE_KEY_FINGERPRINT}"),
            "Remove this key from alice_cli_v4?",
            "/keys/remove",
        ),
        (
            "/containers/alice_cli_v4/delete",
            "Delete alice_cli_v4?",
            "/containers/alice_cli_v4/delete",
        ),
    ] {
        let page = browser.get(&app, path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        assert!(page.body.contains(title), "{path}: {}", page.body);
        let form = fragment(
            &page.body,
            &format!("<form method=\"post\" action=\"{action}\""),
            "</form>",
        );
        assert!(
            form.contains(&format!("name=\"csrf\" value=\"{}\"", browser.csrf)),
            "{path}"
        );
    }
    // Asking changed nothing.
    assert_eq!(
        app.world.runtime.containers()[0].status,
        cm_core::ContainerStatus::Running
    );
    assert_eq!(app.state.auth.tokens().await.unwrap().len(), 1);
    let keys = browser.get(&app, "/keys?container=alice_cli_v4").await;
    assert!(keys.body.contains(ALICE_KEY_FINGERPRINT));
    assert!(keys.body.contains("method=\"get\" action=\"/keys/remove\""));
    let users = browser.get(&app, "/users").await;
    assert!(
        users
            .body
            .contains("method=\"get\" action=\"/users/tokens/revoke\"")
    );
    assert!(
        !users
            .body
            .contains("method=\"post\" action=\"/users/tokens/revoke\"")
    );
    // The admin key from the environment: the page says why, and offers no button.
    let rotate = browser.get(&app, "/settings/rotate-key").await;
    assert!(rotate.body.contains("Rotate the admin key?"));
    assert!(rotate.body.contains("CONTAINER_ADMIN_KEY"));
    assert!(!rotate.body.contains("id=\"confirm-form\""));
    // The confirmed form does it.
    let page = browser
        .post_and_follow(&app, "/containers/alice_cli_v4/stop", &[("back", "/")])
        .await;
    assert!(
        page.body.contains("Container alice_cli_v4 was stopped"),
        "{}",
        page.body
    );
    // Unknown things are said to be missing; a user sees no admin confirmation.
    assert_eq!(
        browser
            .get(&app, "/users/tokens/revoke?token_id=nope")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        browser
            .get(
                &app,
                "/keys/remove?container=alice_cli_v4&fingerprint=SHA256:nope"
            )
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let user = login(&app, &token).await;
    assert_eq!(
        user.get(&app, "/users/tokens/revoke?user_id=alice").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        user.get(&app, "/settings/rotate-key").await.status,
        StatusCode::FORBIDDEN
    );
}

#[actix_web::test]
async fn bulk_actions_list_what_will_happen_then_act_on_each_as_the_viewer_may() {
    let app = TestApp::new();
    app.create("alice", "cli_v4").await;
    app.create("alice", "custom").await;
    app.create("bob", "cli_v4").await;
    let token = app.token("alice").await;
    let status_of = |name: &str| {
        app.world
            .runtime
            .containers()
            .into_iter()
            .find(|c| c.name == name)
            .map(|c| c.status)
    };

    // A user: the confirmation lists each ticked container, another user's as missing.
    let alice = login(&app, &token).await;
    let home = alice.get(&app, "/").await;
    assert!(home.body.contains("id=\"bulk-form\""));
    assert!(
        home.body
            .contains("name=\"c\" value=\"alice_cli_v4\" form=\"bulk-form\"")
    );
    let plan = alice
        .get(
            &app,
            "/bulk?action=stop&c=alice_cli_v4&c=alice_custom&c=bob_cli_v4&c=alice_cli_v4&back=/",
        )
        .await;
    assert_eq!(plan.status, StatusCode::OK, "{}", plan.body);
    assert!(plan.body.contains("Stop 2 container(s)?"), "{}", plan.body);
    let bob = fragment(&plan.body, "data-plan-for=\"bob_cli_v4\"", "</li>");
    assert!(bob.contains("no such container: skipped"), "{bob}");
    let form = fragment(&plan.body, "<form method=\"post\" action=\"/bulk\"", "</form>");
    assert!(form.contains("value=\"alice_cli_v4\"") && form.contains("value=\"alice_custom\""));
    assert!(!form.contains("bob_cli_v4"), "{form}");
    assert_eq!(status_of("alice_cli_v4"), Some(cm_core::ContainerStatus::Running));

    // Posting another user's container anyway: refused for that one only, each recorded.
    let page = alice
        .post_and_follow(
            &app,
            "/bulk",
            &[
                ("action", "stop"),
                ("c", "alice_cli_v4"),
                ("c", "bob_cli_v4"),
                ("c", "alice_custom"),
                ("back", "/"),
            ],
        )
        .await;
    assert!(
        page.body
            .contains("2 container(s) stopped: alice_cli_v4, alice_custom."),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("1 container(s) not stopped: bob_cli_v4 ("),
        "{}",
        page.body
    );
    assert_eq!(status_of("alice_cli_v4"), Some(cm_core::ContainerStatus::Exited));
    assert_eq!(status_of("bob_cli_v4"), Some(cm_core::ContainerStatus::Running));
    let bulk: Vec<(String, Option<String>, String)> = app
        .audit
        .entries()
        .iter()
        .filter(|e| e.source.as_str() == "dashboard" && e.action == "stop_container")
        .map(|e| (e.action.clone(), e.target.clone(), e.result.clone()))
        .collect();
    assert_eq!(
        bulk,
        [
            (
                "stop_container".to_owned(),
                Some("alice_cli_v4".to_owned()),
                "ok".to_owned()
            ),
            (
                "stop_container".to_owned(),
                Some("bob_cli_v4".to_owned()),
                "not_found".to_owned()
            ),
            (
                "stop_container".to_owned(),
                Some("alice_custom".to_owned()),
                "ok".to_owned()
            ),
        ]
    );

    // Without the token nothing happens.
    let forged = alice
        .post_without_csrf(&app, "/bulk", &[("action", "start"), ("c", "alice_cli_v4")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(status_of("alice_cli_v4"), Some(cm_core::ContainerStatus::Exited));

    // The admin: start what is stopped (the running one has nothing to do), then delete all.
    let admin = login(&app, ADMIN).await;
    let plan = admin
        .get(&app, "/bulk?action=start&c=alice_cli_v4&c=bob_cli_v4")
        .await;
    assert!(plan.body.contains("Start 1 container(s)?"), "{}", plan.body);
    assert!(fragment(&plan.body, "data-plan-for=\"bob_cli_v4\"", "</li>").contains("already running"));
    let plan = admin
        .get(
            &app,
            "/bulk?action=delete&c=alice_cli_v4&c=bob_cli_v4&c=alice_custom",
        )
        .await;
    assert!(plan.body.contains("Delete 3 container(s)?"));
    assert!(plan.body.contains("its data volume bob_cli_v4_data is kept"));
    let page = admin
        .post_and_follow(
            &app,
            "/bulk",
            &[
                ("action", "delete"),
                ("c", "alice_cli_v4"),
                ("c", "bob_cli_v4"),
                ("c", "alice_custom"),
            ],
        )
        .await;
    assert!(page.body.contains("3 container(s) deleted"), "{}", page.body);
    assert!(app.world.runtime.containers().is_empty());
    assert!(
        app.world
            .runtime
            .volumes()
            .contains(&"bob_cli_v4_data".to_owned())
    );

    // Nothing ticked, or an unknown action: said so, nothing done.
    let page = admin.get(&app, "/bulk?action=stop&back=/").await;
    assert_eq!(page.location(), "/");
    assert_eq!(
        admin.get(&app, "/bulk?action=explode&c=x").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

#[actix_web::test]
async fn create_shows_every_error_at_once_and_keeps_what_was_typed() {
    let app = TestApp::new();
    let browser = login(&app, ADMIN).await;
    let page = browser
        .post(
            &app,
            "/create",
            &[
                ("user_id", "Not A Valid Id!"),
                ("container_type", "cli_v4"),
                ("memory", "lots"),
                ("env", "NOEQUALS"),
                ("cpus", "many"),
                ("ssh_key", "ssh-rsa AAAA kept@laptop"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    for field in ["user_id", "memory", "env", "cpus", "ssh_key"] {
        let block = fragment(&page.body, &format!("name=\"{field}\""), "</label>");
        assert!(
            block.contains("class=\"field-error\""),
            "{field}: {block}\n{}",
            page.body
        );
    }
    assert!(
        page.body
            .contains("Nothing was created: 5 field(s) need a change"),
        "{}",
        page.body
    );
    assert!(page.body.contains("value=\"Not A Valid Id!\""));
    assert!(page.body.contains("value=\"lots\"") && page.body.contains("value=\"many\""));
    assert!(page.body.contains(">NOEQUALS</textarea>"));
    assert!(page.body.contains(">ssh-rsa AAAA kept@laptop</textarea>"));
    assert!(app.world.runtime.containers().is_empty());
}

#[actix_web::test]
async fn the_container_page_shows_health_charts_and_a_crash_loops_last_lines() {
    let app = TestApp::new();
    app.create("alice", "custom").await;
    let browser = login(&app, ADMIN).await;
    let page = browser.get(&app, "/containers/alice_custom").await;
    assert_eq!(page.status, StatusCode::OK);
    let card = fragment(&page.body, "<section class=\"card\" id=\"health\">", "</section>");
    assert!(card.contains("id=\"health-restarts\">0<"), "{card}");
    assert!(card.contains("16.0 MiB of 512.0 MiB"), "{card}");
    assert!(card.contains("Charts appear once"), "{card}");
    assert!(!card.contains("<svg"), "{card}");

    // Two samples make the charts.
    app.world.manager.sample_usage().await.unwrap();
    app.world.manager.sample_usage().await.unwrap();
    let page = browser.get(&app, "/containers/alice_custom").await;
    let card = fragment(&page.body, "<section class=\"card\" id=\"health\">", "</section>");
    assert_eq!(card.matches("<polyline").count(), 2, "{card}");
    assert!(card.contains("(2 samples)"), "{card}");

    // A crash-looping container says so, offers Stop rather than Start, and shows its last lines.
    app.world.runtime.crash_loop("alice_custom");
    let page = browser.get(&app, "/containers/alice_custom").await;
    assert!(page.body.contains(">crash-looping<"), "{}", page.body);
    let card = fragment(&page.body, "<section class=\"card\" id=\"health\">", "</section>");
    assert!(card.contains("id=\"health-exit\">code 1<"), "{card}");
    assert!(card.contains("alice_custom line 5"), "{card}");
    let actions = fragment(&page.body, "data-poll-statuses", "</div>");
    assert!(
        actions.contains(">Start</button>") && actions.contains("data-when=\"stopped\" hidden"),
        "{actions}"
    );
}

#[actix_web::test]
async fn a_container_stopped_for_being_idle_says_so_and_one_stopped_on_purpose_does_not() {
    let app = TestApp::with_config("[types.custom]\nidle_stop_after = \"10m\"\n");
    create(&app, json!({"user_id": "alice", "container_type": "custom"})).await;
    create(&app, json!({"user_id": "bob", "container_type": "custom"})).await;
    let manager = &app.world.manager;
    assert!(manager.idle_sweep().await.unwrap().stopped.is_empty());
    app.world.clock.advance(std::time::Duration::from_secs(11 * 60));
    let sweep = manager.idle_sweep().await.unwrap();
    assert_eq!(sweep.stopped.len(), 2, "{sweep:?}");
    let bob = cm_core::testing::as_admin(manager, "bob_custom").await.unwrap();
    manager.stop(&bob).await.unwrap();
    let browser = login(&app, ADMIN).await;
    let list = browser.get(&app, "/").await;
    assert_eq!(list.status, StatusCode::OK);
    let row = |name: &str| {
        fragment(
            &list.body,
            &format!("data-status-for=\"{name}\""),
            "</span></span>",
        )
    };
    assert!(
        row("alice_custom").contains("stopped (idle)"),
        "{}",
        row("alice_custom")
    );
    assert!(row("bob_custom").contains("exited"), "{}", row("bob_custom"));
    let page = browser.get(&app, "/containers/alice_custom").await;
    assert!(page.body.contains("stopped (idle)"), "{}", page.body);
}

#[actix_web::test]
async fn the_admin_sees_the_nodes_and_moves_a_container_with_its_data() {
    let app = TestApp::new();
    let admin = login(&app, ADMIN).await;
    let single = admin.get(&app, "/nodes").await;
    assert_eq!(single.status, StatusCode::OK);
    assert!(single.body.contains("runs one engine"), "{}", single.body);

    let node = |name: &str, octet: u8| cm_core::NodeInfo {
        name: cm_core::NodeName::parse(name).unwrap(),
        id: format!("id-{name}"),
        address: std::net::IpAddr::from([10, 99, 0, octet]),
        state: cm_core::NodeState::Ready,
        schedulable: true,
        manager: octet == 1,
        memory_bytes: 4 << 30,
        cpus: 2.0,
    };
    app.world
        .runtime
        .set_nodes(vec![node("manager-1", 1), node("worker-1", 2)]);
    create(
        &app,
        json!({"user_id": "alice", "container_type": "cli_v4", "node": "worker-1"}),
    )
    .await;
    let nodes = admin.get(&app, "/nodes").await;
    assert!(nodes.body.contains("data-node=\"worker-1\""), "{}", nodes.body);
    assert!(nodes.body.contains("0.5 GiB of 4.0 GiB"), "{}", nodes.body);

    let page = admin.get(&app, "/containers/alice_cli_v4").await;
    assert!(page.body.contains("id=\"node\">worker-1<"), "{}", page.body);
    assert!(
        page.body.contains("<option value=\"manager-1\">"),
        "only the other node is offered"
    );
    assert!(!page.body.contains("<option value=\"worker-1\">"));
    let moved = admin
        .post_and_follow(&app, "/containers/alice_cli_v4/move", &[("node", "manager-1")])
        .await;
    assert!(
        moved.body.contains("moved from node worker-1 to node manager-1"),
        "{}",
        moved.body
    );
    assert!(moved.body.contains("id=\"node\">manager-1<"), "{}", moved.body);
    let trail = app.audit.entries();
    assert!(
        trail
            .iter()
            .any(|e| e.action == "move_container" && e.target.as_deref() == Some("alice_cli_v4")),
        "{trail:#?}"
    );

    // A user sees neither the nodes nor the move.
    let token = app.token("alice").await;
    let alice = login(&app, &token).await;
    assert_eq!(alice.get(&app, "/nodes").await.status, StatusCode::FORBIDDEN);
    let own = alice.get(&app, "/containers/alice_cli_v4").await;
    assert!(!own.body.contains("move-form"), "{}", own.body);
    let refused = alice
        .post(&app, "/containers/alice_cli_v4/move", &[("node", "worker-1")])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[actix_web::test]
async fn the_create_form_offers_the_nodes_that_take_containers_and_refuses_others() {
    let app = TestApp::new();
    let admin = login(&app, ADMIN).await;
    // One engine: no node field; a node posted anyway is refused next to it.
    let single = admin.get(&app, "/create").await;
    assert!(!single.body.contains("name=\"node\""), "{}", single.body);
    let page = admin
        .post(
            &app,
            "/create",
            &[
                ("user_id", "alice"),
                ("container_type", "cli_v4"),
                ("node", "worker-1"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    let block = fragment(&page.body, "name=\"node\"", "</label>");
    assert!(block.contains("runs one engine"), "{block}");
    assert!(app.world.runtime.containers().is_empty());

    let node = |name: &str, octet: u8, state: cm_core::NodeState, schedulable: bool| cm_core::NodeInfo {
        name: cm_core::NodeName::parse(name).unwrap(),
        id: format!("id-{name}"),
        address: std::net::IpAddr::from([10, 99, 0, octet]),
        state,
        schedulable,
        manager: octet == 1,
        memory_bytes: 4 << 30,
        cpus: 2.0,
    };
    use cm_core::NodeState::{Down, Ready};
    app.world.runtime.set_nodes(vec![
        node("manager-1", 1, Ready, true),
        node("worker-1", 2, Ready, true),
        node("worker-2", 3, Down, true),
        node("worker-3", 4, Ready, false),
    ]);
    let form = admin.get(&app, "/create").await;
    let select = fragment(&form.body, "<select name=\"node\"", "</select>");
    assert!(
        select.contains("<option value=\"\" selected>automatic (most free memory)</option>"),
        "{select}"
    );
    assert!(
        select.contains("<option value=\"manager-1\">manager-1 (manager, 4.0 GiB free)</option>"),
        "{select}"
    );
    assert!(select.contains("<option value=\"worker-1\">"), "{select}");
    assert!(
        !select.contains("worker-2") && !select.contains("worker-3"),
        "a down or drained node is not offered: {select}"
    );

    // A node that takes no containers, that does not exist or whose name is no name: refused
    // next to the field with the other fields' errors, the choice kept, nothing created.
    for (chosen, message) in [
        ("worker-2", "node worker-2 takes no containers now (it is down)"),
        (
            "worker-3",
            "node worker-3 takes no containers now (it is ready, drained)",
        ),
        (
            "nowhere",
            "there is no node nowhere: choose manager-1, worker-1 or leave it automatic",
        ),
        ("a;b", "invalid node &quot;a;b&quot;"),
    ] {
        let page = admin
            .post(
                &app,
                "/create",
                &[
                    ("user_id", "alice"),
                    ("container_type", "cli_v4"),
                    ("memory", "lots"),
                    ("node", chosen),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{chosen}");
        let block = fragment(&page.body, "name=\"node\"", "</label>");
        assert!(block.contains("class=\"field-error\""), "{chosen}: {block}");
        assert!(block.contains(message), "{chosen}: {block}");
        assert!(
            block.contains(&format!(
                "<option value=\"{chosen}\" selected>{chosen} (not available)</option>"
            )),
            "{chosen} kept: {block}"
        );
        let memory = fragment(&page.body, "name=\"memory\"", "</label>");
        assert!(memory.contains("class=\"field-error\""), "{memory}");
        assert!(
            page.body
                .contains("Nothing was created: 2 field(s) need a change"),
            "{}",
            page.body
        );
    }
    assert!(app.world.runtime.containers().is_empty());

    // Placed where chosen; left automatic, on the node with the most memory free.
    let page = admin
        .post_and_follow(
            &app,
            "/create",
            &[
                ("user_id", "alice"),
                ("container_type", "cli_v4"),
                ("node", "worker-1"),
            ],
        )
        .await;
    assert!(
        page.body.contains("Container alice_cli_v4 was created"),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"node\">worker-1<"), "{}", page.body);
    let page = admin
        .post_and_follow(
            &app,
            "/create",
            &[("user_id", "bob"), ("container_type", "cli_v4"), ("node", "")],
        )
        .await;
    assert!(
        page.body.contains("Container bob_cli_v4 was created"),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"node\">manager-1<"), "{}", page.body);
    let form = admin.get(&app, "/create").await;
    assert!(
        form.body.contains("worker-1 (worker, 3.5 GiB free)"),
        "the free memory counts alice's container: {}",
        form.body
    );
}
