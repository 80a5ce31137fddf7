//! Owner-checked routes end to end: a real nginx with the site file of `cm nginx setup`, the real
//! `cm-api` answering its route check, and real containers on the real engine.
//!
//! The apps (`cm-http` of the default image) answer with what reached them, so the tests see the
//! owner check, the prefix handling and which credentials got through.

use std::time::Duration;

use cm_core::{HostMode, RoutingMode};
use cm_nginx::{Site, render_site};
use cm_testkit::http::{self, Response};
use cm_testkit::nginx::TestNginx;
use cm_testkit::{TestEnv, require_docker, wait_until};
use serde_json::{Value, json};

use crate::helpers::{Server, api, free_port};

/// How long an app may take to answer after its create returned.
const READY: Duration = Duration::from_secs(60);
/// The base domain of the subdomain test.
const DOMAIN: &str = "apps.example.test";

/// A world: the engine, cm-api on `api_port`, and nginx serving the site of `mode`/`host`.
pub(crate) struct Gate {
    pub env: TestEnv,
    pub nginx: TestNginx,
    pub server: Server,
    pub admin: String,
}

/// Extra types reachable by anyone: one with the echo app, one whose port nothing listens on.
const PUBLIC_TYPE: &str = "[types.open_web]\ndescription = \"public\"\nimage = \"toolboxv2:latest\"\n\
                           internal_port = 8080\naccess = \"public\"\n\
                           [types.silent_web]\ndescription = \"an app that never answers\"\n\
                           image = \"toolboxv2:latest\"\ninternal_port = 9\naccess = \"public\"\n\
                           command = [\"sleep\", \"infinity\"]\n";

impl Gate {
    pub fn start(test: &str, mode: RoutingMode, host: HostMode) -> Option<Gate> {
        Self::start_with(test, mode, host, "")
    }

    /// [`Gate::start`] with `extra` configuration (TOML) after the gate's own.
    pub fn start_with(test: &str, mode: RoutingMode, host: HostMode, extra: &str) -> Option<Gate> {
        if !require_docker() {
            return None;
        }
        let env = TestEnv::new();
        let api_port = free_port();
        let enabled_dir = env.path().join("box-enabled");
        std::fs::create_dir_all(&enabled_dir).unwrap();
        let render = |port: u16| {
            let site = Site {
                mode,
                host,
                listen: ([127, 0, 0, 1], port).into(),
                server_name: "_".into(),
                base_domain: Some(DOMAIN.into()),
                api: ([127, 0, 0, 1], api_port).into(),
                enabled_dir: enabled_dir.clone(),
            };
            render_site(&site).unwrap()
        };
        let nginx = TestNginx::start_site(test, &render)?;
        let nginx_toml = match mode {
            RoutingMode::Dynamic => nginx.dynamic_config_toml(),
            RoutingMode::Files => {
                let args: Vec<String> = nginx.args.iter().map(|a| format!("{a:?}")).collect();
                format!(
                    "[nginx]\nmode = \"files\"\navailable_dir = {:?}\nenabled_dir = {:?}\nbinary = {:?}\nargs = [{}]\n",
                    env.path().join("box-available").display().to_string(),
                    enabled_dir.display().to_string(),
                    nginx.binary.display().to_string(),
                    args.join(", ")
                )
            }
        };
        let routing = match host {
            HostMode::Path => String::new(),
            HostMode::Subdomain => format!("[routing]\nhost = \"subdomain\"\nbase_domain = \"{DOMAIN}\"\n"),
        };
        env.set_config_extra(&format!("{nginx_toml}{routing}{PUBLIC_TYPE}{extra}"));
        let admin = format!("gate-admin-key-{}", env.run);
        let mut vars = env.vars();
        vars.push(("CONTAINER_ADMIN_KEY", admin.clone()));
        let server = Server::start_on(api_port, &vars, &[]);
        Some(Gate {
            env,
            nginx,
            server,
            admin,
        })
    }

    pub fn call(&self, name: &str, body: Value) -> (u16, Value) {
        let auth = format!("Bearer {}", self.admin);
        self.server.request(
            "POST",
            &api(name),
            &[("Authorization", auth.as_str())],
            Some(&body),
        )
    }

    pub fn create(&self, user: &str, kind: &str) {
        let (status, answer) = self.call(
            "create_container",
            json!({"user_id": user, "container_type": kind}),
        );
        assert_eq!(status, 201, "create {user} {kind}: {answer}");
    }

    pub fn token(&self, user: &str) -> String {
        let (status, answer) = self.call("create_user_token", json!({"user_id": user}));
        assert_eq!(status, 201, "{answer}");
        answer["token"].as_str().unwrap().to_owned()
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        http::get(self.nginx.port, path, headers).unwrap_or_else(|e| {
            panic!(
                "nginx did not answer {path}: {e}\n{}",
                self.nginx.error_log_text()
            )
        })
    }

    /// GETs until the answer has `status` (an app starting answers 502 first).
    pub fn get_until(&self, path: &str, headers: &[(&str, &str)], status: u16) -> Response {
        let mut last = None;
        wait_until(READY, || {
            let answer = self.get(path, headers);
            let done = answer.status == status;
            last = Some(answer);
            done
        });
        let last = last.unwrap();
        assert_eq!(last.status, status, "{path}: {last:?}");
        last
    }
}

/// Alice with a container of `kind`, and the bearer credentials of Alice and of Bob (who has none).
struct Tenants {
    alice: String,
    alice_auth: String,
    bob_auth: String,
}

impl Gate {
    fn tenants(&self, kind: &str) -> Tenants {
        let alice = self.env.user("alice");
        let bob = self.env.user("bob");
        self.create(&alice, kind);
        let alice_auth = bearer(&self.token(&alice));
        let bob_auth = bearer(&self.token(&bob));
        Tenants {
            alice,
            alice_auth,
            bob_auth,
        }
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn json_of(answer: &Response) -> Value {
    serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("not JSON ({e}): {answer:?}"))
}

/// The route cookie a sign-in sets, as `name=value`.
fn sign_in(gate: &Gate, credential: &str, next: &str) -> Response {
    let body = serde_urlencoded::to_string([("credential", credential), ("next", next)]).unwrap();
    http::request(
        gate.nginx.port,
        "POST",
        "/_cm/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(&body),
    )
    .unwrap()
}

#[test]
fn dynamic_routes_let_only_the_owner_and_the_admin_through() {
    let Some(gate) = Gate::start("dynamic routes", RoutingMode::Dynamic, HostMode::Path) else {
        return;
    };
    let alice = gate.env.user("alice");
    let bob = gate.env.user("bob");
    let kind = "custom";
    let reloads_before = gate.nginx.reloads();
    gate.create(&alice, kind);
    // Right after the create returned, the route check already lets the owner through: the
    // answer is the app (200) or nginx's "not answering yet" (502), never a refusal.
    let alice_token = gate.token(&alice);
    let alice_auth = bearer(&alice_token);
    let at_once = gate.get(
        &format!("/container/{alice}/{kind}/"),
        &[("Authorization", &alice_auth)],
    );
    assert!(matches!(at_once.status, 200 | 502), "{at_once:?}");
    gate.create(&bob, kind);
    gate.create(&alice, "open_web");
    let bob_token = gate.token(&bob);
    let bob_auth = bearer(&bob_token);
    let admin_auth = bearer(&gate.admin);
    let alice_path = format!("/container/{alice}/{kind}");

    // The owner reaches the app, prefix stripped; no credential reaches the app.
    let answer = gate.get_until(
        &format!("{alice_path}/something?x=1"),
        &[("Authorization", &alice_auth)],
        200,
    );
    let info = json_of(&answer);
    assert_eq!(info["user_id"], alice.as_str());
    assert_eq!(info["path"], "/something?x=1");
    assert_eq!(info["x_forwarded_prefix"], alice_path.as_str());
    assert_eq!(info["authorization"], "");
    // Bob's own app is up too (for the path tricks below).
    gate.get_until(
        &format!("/container/{bob}/{kind}/"),
        &[("Authorization", &bob_auth)],
        200,
    );

    // Anonymous: 401 for programs, the sign-in page for browsers.
    let anonymous = gate.get(&format!("{alice_path}/x"), &[]);
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    assert_eq!(anonymous.header("www-authenticate"), Some("Bearer"));
    let browser = gate.get(&format!("{alice_path}/x?y=1"), &[("Accept", "text/html")]);
    assert_eq!(browser.status, 302, "{browser:?}");
    let location = browser.header("location").unwrap();
    let next = serde_urlencoded::to_string([("next", format!("{alice_path}/x?y=1"))]).unwrap();
    assert_eq!(location, format!("/_cm/login?{next}"));
    let page = gate.get(location, &[("Accept", "text/html")]);
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains("route-login-form"), "{}", page.body);

    // Another user's token: 403; the admin: 200; a public type: open to anyone.
    let foreign = gate.get(&format!("{alice_path}/x"), &[("Authorization", &bob_auth)]);
    assert_eq!(foreign.status, 403, "{foreign:?}");
    let admin = gate.get(&format!("{alice_path}/x"), &[("Authorization", &admin_auth)]);
    assert_eq!(admin.status, 200, "{admin:?}");
    let public = gate.get_until(&format!("/container/{alice}/open_web/"), &[], 200);
    assert_eq!(json_of(&public)["container_type"], "open_web");
    // A running container whose app does not answer: 502 with Retry-After; for a browser a page
    // that asks again by itself, so whoever opened it lands in the app once it is up.
    gate.create(&alice, "silent_web");
    let silent = format!("/container/{alice}/silent_web/");
    let program = gate.get(&silent, &[]);
    assert_eq!(program.status, 502, "{program:?}");
    assert_eq!(program.header("retry-after"), Some("5"));
    assert!(program.body.contains("Not answering yet"), "{program:?}");
    let page = gate.get(&silent, &[("Accept", "text/html")]);
    assert_eq!(page.status, 502, "{page:?}");
    assert!(
        page.body.contains(r#"<meta http-equiv="refresh" content="5">"#),
        "{}",
        page.body
    );
    // An unknown container of one's own: 404 (a stranger's: 403, whether it exists or not).
    let unknown = gate.get(
        &format!("/container/{alice}/project_dev/"),
        &[("Authorization", &alice_auth)],
    );
    assert_eq!(unknown.status, 404, "{unknown:?}");
    let stranger = gate.get(
        &format!("/container/{alice}/project_dev/"),
        &[("Authorization", &bob_auth)],
    );
    assert_eq!(stranger.status, 403, "{stranger:?}");

    // Redirects and cookies of the app stay below the prefix.
    let redirect = gate.get(
        &format!("{alice_path}/redirect"),
        &[("Authorization", &alice_auth)],
    );
    assert_eq!(redirect.status, 302);
    assert_eq!(
        redirect.header("location"),
        Some(format!("{alice_path}/landed").as_str())
    );
    let set = gate.get(
        &format!("{alice_path}/set-cookie"),
        &[("Authorization", &alice_auth)],
    );
    let cookie = set.header("set-cookie").unwrap();
    assert_eq!(cookie, format!("app_cookie=app-value; Path={alice_path}/"));

    // A WebSocket through the route, with the credential.
    let echo = http::websocket_echo_with(
        gate.nginx.port,
        &format!("{alice_path}/ws"),
        &[("Authorization", &alice_auth)],
        "hello through the gate",
    );
    assert_eq!(echo.as_deref(), Ok("hello through the gate"));

    // The browser's way: sign in, get a cookie for this user's containers, come back.
    let refused = sign_in(&gate, &bob_token, &format!("{alice_path}/"));
    assert_eq!(refused.status, 403, "{refused:?}");
    let wrong = sign_in(&gate, "cmu_not-a-token", &format!("{alice_path}/"));
    assert_eq!(wrong.status, 401);
    let open_redirect = sign_in(&gate, &alice_token, "https://evil.example/");
    assert_eq!(open_redirect.status, 400);
    let body = serde_urlencoded::to_string([
        ("credential", alice_token.as_str()),
        ("next", &format!("{alice_path}/")),
    ])
    .unwrap();
    let cross_site = http::request(
        gate.nginx.port,
        "POST",
        "/_cm/login",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
        Some(&body),
    )
    .unwrap();
    assert_eq!(
        cross_site.status, 403,
        "a sign-in posted from another site is refused"
    );
    assert!(cross_site.header("set-cookie").is_none());
    let signed_in = sign_in(&gate, &alice_token, &format!("{alice_path}/after"));
    assert_eq!(signed_in.status, 303, "{signed_in:?}");
    assert_eq!(
        signed_in.header("location"),
        Some(format!("{alice_path}/after").as_str())
    );
    let set_cookie = signed_in.header("set-cookie").unwrap();
    assert!(
        set_cookie.contains(&format!("Path=/container/{alice}/;")),
        "{set_cookie}"
    );
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"),
        "{set_cookie}"
    );
    assert!(
        !set_cookie.contains(&alice_token),
        "the cookie never carries the token"
    );
    let route_cookie = set_cookie.split(';').next().unwrap();
    // The app sees its own cookies only: no route sign-in, no dashboard session, no ToolBox
    // session of the host.
    for cookies in [
        format!("{route_cookie}; app=1; cm_session=dashboard-secret"),
        format!("cm_session=dashboard-secret; app=1; {route_cookie}"),
        format!("app=1; {route_cookie}; cm_session=dashboard-secret; cm_route=stale"),
        format!("tb_session=host-toolbox; {route_cookie}; app=1; tb_session=other-path"),
    ] {
        let answer = gate.get(&format!("{alice_path}/cookies"), &[("Cookie", &cookies)]);
        assert_eq!(answer.status, 200, "{cookies}: {answer:?}");
        assert_eq!(json_of(&answer)["cookie"], "app=1", "{cookies}");
    }
    // An app that planted more sign-in cookies than nginx strips one by one (browsers send the
    // longest paths first) gets no cookies at all, never the real one.
    for planted in [
        format!("cm_route=x; cm_route=y; {route_cookie}; app=1"),
        format!("tb_session=x; tb_session=y; {route_cookie}; tb_session=host; app=1"),
    ] {
        let answer = gate.get(&format!("{alice_path}/cookies"), &[("Cookie", &planted)]);
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(json_of(&answer)["cookie"], "", "{planted}");
    }
    // No service worker may be registered on a tenant's origin.
    let worker = gate.get(
        &format!("{alice_path}/sw.js"),
        &[("Authorization", &alice_auth), ("Service-Worker", "script")],
    );
    assert_ne!(worker.status, 200, "{worker:?}");
    // Only the sign-in page and its assets of cm-api are reachable under /_cm/.
    assert_eq!(gate.get("/_cm/denied", &[]).status, 404);

    // The route cookie of Alice is worth nothing at Bob's (a browser would not even send it there).
    let at_bob = gate.get(&format!("/container/{bob}/{kind}/"), &[("Cookie", route_cookie)]);
    assert_eq!(
        at_bob.status, 401,
        "a ticket is for its user's containers only: {at_bob:?}"
    );
    let forged = format!(
        "{}0",
        route_cookie.trim_end_matches(|c: char| c.is_ascii_hexdigit())
    );
    assert_eq!(
        gate.get(&format!("{alice_path}/x"), &[("Cookie", &forged)])
            .status,
        401
    );

    // Path tricks with Alice's token never reach Bob's app.
    let tricks = [
        format!("{alice_path}/../../{bob}/{kind}/x"),
        format!("{alice_path}/%2e%2e/%2e%2e/{bob}/{kind}/x"),
        format!("{alice_path}%2F..%2F..%2F{bob}%2F{kind}/x"),
        format!("/container/{alice}%2F{kind}/../../{bob}/{kind}/x"),
        format!("//container/{bob}/{kind}/x"),
        format!("/container//{bob}/{kind}/x"),
        format!("/container/{bob}/{kind}%2F/x"),
        format!("/container/{bob}%00/{kind}/x"),
        format!("/container/{}/{kind}/x", "a".repeat(200)),
        format!("/./container/{bob}/{kind}/x"),
        format!("/container/{alice}/{kind}/..%2F..%2F{bob}%2F{kind}%2Fx"),
    ];
    for trick in &tricks {
        let answer = gate.get(trick, &[("Authorization", &alice_auth)]);
        assert!(
            !answer.body.contains(&format!("\"user_id\": \"{bob}\"")),
            "{trick} reached Bob's app: {answer:?}"
        );
    }
    // A client can never choose the upstream.
    let chosen = gate.get(
        &format!("{alice_path}/x"),
        &[
            ("Authorization", &alice_auth),
            ("X-CM-Upstream", "127.0.0.1:1"),
            ("X-CM-User", &bob),
        ],
    );
    assert_eq!(json_of(&chosen)["user_id"], alice.as_str());

    // Revoking a token ends it on the very next request, cookies included.
    let (status, _) = gate.call("revoke_user_token", json!({"user_id": alice}));
    assert_eq!(status, 200);
    assert_eq!(
        gate.get(&format!("{alice_path}/x"), &[("Authorization", &alice_auth)])
            .status,
        401
    );
    assert_eq!(
        gate.get(&format!("{alice_path}/x"), &[("Cookie", route_cookie)])
            .status,
        401
    );

    // A stopped container answers 503 with a page that says so.
    let (status, stopped) = gate.call(
        "stop_container",
        json!({"container_id": format!("{alice}_{kind}")}),
    );
    assert_eq!(status, 200, "{stopped}");
    let page = gate.get_until(
        &format!("{alice_path}/x"),
        &[("Authorization", &admin_auth), ("Accept", "text/html")],
        503,
    );
    assert!(page.body.contains("Container stopped"), "{}", page.body);

    // Deleting touches no nginx file either.
    let (status, deleted) = gate.call(
        "delete_container",
        json!({"container_id": format!("{bob}_{kind}"), "force": true}),
    );
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(
        gate.get(
            &format!("/container/{bob}/{kind}/"),
            &[("Authorization", &admin_auth)]
        )
        .status,
        404
    );
    assert_eq!(
        gate.nginx.reloads(),
        reloads_before,
        "no reload for creates, stops or deletes"
    );
    let (status, health) = gate.server.request("GET", "/healthz", &[], None);
    assert_eq!(status, 200);
    assert_eq!(
        health["routing"],
        json!({"enabled": true, "mode": "dynamic", "nginx_answers": true})
    );
}

#[test]
fn fifty_creates_and_deletes_reload_nginx_not_once_and_route_at_once() {
    let Some(gate) = Gate::start("fifty routes", RoutingMode::Dynamic, HostMode::Path) else {
        return;
    };
    let admin = bearer(&gate.admin);
    let reloads = gate.nginx.reloads();
    for i in 0..50 {
        let user = gate.env.user(&format!("u{i}"));
        gate.create(&user, "custom");
        // The moment the create returned, the route check lets the admin through: the app
        // (200) or "not answering yet" (502), never a refusal or an unknown container.
        let first = gate.get(
            &format!("/container/{user}/custom/"),
            &[("Authorization", &admin)],
        );
        assert!(matches!(first.status, 200 | 502), "{user}: {first:?}");
        let (status, deleted) = gate.call(
            "delete_container",
            json!({"container_id": format!("{user}_custom"), "force": true, "purge": true}),
        );
        assert_eq!(status, 200, "{deleted}");
        let gone = gate.get(
            &format!("/container/{user}/custom/"),
            &[("Authorization", &admin)],
        );
        assert_eq!(gone.status, 404, "{user}: {gone:?}");
    }
    assert_eq!(
        gate.nginx.reloads(),
        reloads,
        "50 creates and 50 deletes, no reload"
    );
}

#[test]
fn subdomain_routes_check_the_same_way() {
    let Some(gate) = Gate::start("subdomain routes", RoutingMode::Dynamic, HostMode::Subdomain) else {
        return;
    };
    let kind = "custom";
    let Tenants {
        alice,
        alice_auth,
        bob_auth,
    } = gate.tenants(kind);
    let host = format!("{kind}--{alice}.{DOMAIN}");
    let answer = gate.get_until(
        "/some/path",
        &[("Host", &host), ("Authorization", &alice_auth)],
        200,
    );
    let info = json_of(&answer);
    assert_eq!(info["user_id"], alice.as_str());
    assert_eq!(info["path"], "/some/path", "a subdomain app lives at /");
    assert_eq!(info["authorization"], "");
    assert_eq!(
        gate.get("/x", &[("Host", &host), ("Authorization", &bob_auth)])
            .status,
        403
    );
    assert_eq!(gate.get("/x", &[("Host", &host)]).status, 401);
    let browser = gate.get("/x", &[("Host", &host), ("Accept", "text/html")]);
    assert_eq!(browser.status, 302);
    assert_eq!(browser.header("location"), Some("/_cm/login?next=%2Fx"));
    // The sign-in cookie is for this host only, at `/`.
    let body = serde_urlencoded::to_string([("credential", &gate.token(&alice)), ("next", &"/x".to_owned())])
        .unwrap();
    let signed_in = http::request(
        gate.nginx.port,
        "POST",
        "/_cm/login",
        &[
            ("Host", &host),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(&body),
    )
    .unwrap();
    assert_eq!(signed_in.status, 303, "{signed_in:?}");
    let cookie = signed_in.header("set-cookie").unwrap();
    assert!(
        cookie.contains("Path=/;") && !cookie.contains("Domain"),
        "{cookie}"
    );
    // An unknown host name routes nowhere.
    assert_ne!(
        gate.get(
            "/",
            &[("Host", "elsewhere.example.test"), ("Authorization", &alice_auth)]
        )
        .status,
        200
    );
}

#[test]
fn files_mode_routes_get_the_same_owner_check() {
    let Some(gate) = Gate::start("files routes", RoutingMode::Files, HostMode::Path) else {
        return;
    };
    let kind = "custom";
    let Tenants {
        alice,
        alice_auth,
        bob_auth,
    } = gate.tenants(kind);
    let path = format!("/container/{alice}/{kind}/x");
    let answer = gate.get_until(&path, &[("Authorization", &alice_auth)], 200);
    assert_eq!(json_of(&answer)["user_id"], alice.as_str());
    assert_eq!(json_of(&answer)["authorization"], "");
    assert_eq!(gate.get(&path, &[("Authorization", &bob_auth)]).status, 403);
    assert_eq!(gate.get(&path, &[]).status, 401);
    assert_eq!(gate.get(&path, &[("Accept", "text/html")]).status, 302);
    let cookies = gate.get(
        &path,
        &[("Authorization", &alice_auth), ("Cookie", "cm_session=s; app=2")],
    );
    assert_eq!(json_of(&cookies)["cookie"], "app=2");
    assert!(gate.nginx.reloads() > 0, "files mode reloads for its route");
}

/// The seed's preview server for real: `preview_server` serves `/data/www` (made with an index page
/// on first start) through the owner-checked route, with each file's content type, without
/// listings, and nothing outside `/data/www` (not through `..`, encoded or not, nor a symlink).
#[test]
fn the_preview_server_serves_data_www_through_the_route_and_nothing_else() {
    let Some(gate) = Gate::start("the preview server", RoutingMode::Dynamic, HostMode::Path) else {
        return;
    };
    let alice = gate.env.user("alice");
    let name = format!("{alice}_preview_server");
    let (status, created) = gate.call(
        "create_container",
        json!({"user_id": alice, "container_type": "preview_server"}),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["container"]["internal_port"], 8600);
    let app_port = u16::try_from(created["container"]["port"].as_u64().unwrap()).unwrap();
    let auth = bearer(&gate.token(&alice));
    let owner = [("Authorization", auth.as_str())];
    let base = format!("/container/{alice}/preview_server");

    let index = gate.get_until(&format!("{base}/"), &owner, 200);
    assert_eq!(
        index.header("content-type"),
        Some("text/html; charset=utf-8"),
        "{index:?}"
    );
    assert!(index.body.contains("Your preview server"), "{index:?}");

    let (status, out) = gate.call(
        "container_exec",
        json!({
            "container_id": name,
            "user": "1000:1000",
            "command": ["sh", "-c", "mkdir -p /data/www/css /data/www/empty && printf 'body{}' > /data/www/css/site.css \
                && printf '{\"a\":1}' > /data/www/data.json && echo secret > /data/secret.txt \
                && echo hidden > /data/www/.env && ln -s /data/secret.txt /data/www/link.txt"],
        }),
    );
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["exit_code"], 0, "{out}");

    let css = gate.get(&format!("{base}/css/site.css"), &owner);
    assert_eq!(
        (css.status, css.header("content-type")),
        (200, Some("text/css; charset=utf-8"))
    );
    assert_eq!(css.body, "body{}");
    assert_eq!(css.header("x-content-type-options"), Some("nosniff"));
    let data = gate.get(&format!("{base}/data.json"), &owner);
    assert_eq!(
        data.header("content-type"),
        Some("application/json; charset=utf-8"),
        "{data:?}"
    );
    // A directory without the slash is redirected to it, through the route's prefix; without an
    // index.html it is not listed.
    let bare = gate.get(&format!("{base}/css"), &owner);
    assert_eq!(bare.status, 301, "{bare:?}");
    assert!(
        bare.header("location")
            .unwrap_or_default()
            .ends_with(&format!("{base}/css/")),
        "{bare:?}"
    );
    assert_eq!(gate.get(&format!("{base}/empty/"), &owner).status, 404);
    // The route stays owner-checked.
    assert_eq!(gate.get(&format!("{base}/css/site.css"), &[]).status, 401);

    // Straight at the app (no nginx to normalise the path): nothing outside /data/www.
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/css/..%2f..%2fsecret.txt",
        "/link.txt",
        "/.env",
        "/%2fdata%2fsecret.txt",
    ] {
        let answer = http::get(app_port, path, &[]).unwrap();
        assert_eq!(answer.status, 404, "{path}: {answer:?}");
        assert!(!answer.body.contains("secret"), "{path}: {answer:?}");
    }
    let (status, head) = gate.call(
        "container_exec",
        json!({"container_id": name, "command": ["sh", "-c", "ps -o user= -C cm-preview | sort -u"]}),
    );
    assert_eq!(status, 200, "{head}");
    assert_eq!(
        head["stdout"].as_str().unwrap().trim(),
        "cli",
        "the server runs as cli: {head}"
    );
}
