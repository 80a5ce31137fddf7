//! The dashboard in a real browser: Debian's `chromium`, driven headless through `chromedriver`
//! (WebDriver, with fantoccini), against the real `cm-api` binary on the real Docker engine.
//!
//! One long scenario, because each browser and container start is slow on two cores: log in, see
//! a container made by the CLI's code path, create one through the form, see it running and
//! follow its logs, check and add an SSH key, make a user token, log in with it and see only that
//! user's containers, a POST without the CSRF token refused, delete with purge. Every page is
//! saved as a screenshot under `target/dashboard-screenshots/` for review.
//!
//! Without chromium, chromedriver or Docker the test prints a loud skip line; under CI (`CI` set)
//! it fails instead.

use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cm_testkit::{TestEnv, docker_ok, require, require_docker};
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use serde_json::{Value, json};

use crate::helpers::{Server, free_port};

/// The admin key of the scenario (as if from `CONTAINER_ADMIN_KEY`).
const ADMIN_KEY: &str = "browser-e2e-admin-key-0123456789";
/// The XSS probe: it must show as text, never run.
const PROBE: &str = "<script>alert(1)</script>";
/// How long a page may take to show what the test waits for.
const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_real_browser_on_the_real_engine() {
    if !require_docker() || !require_browser() {
        return;
    }
    let env = TestEnv::new();
    let mut vars = env.vars();
    vars.push(("CONTAINER_ADMIN_KEY", ADMIN_KEY.to_owned()));
    vars.push(("CM_LOG", "info".to_owned()));
    let server = Server::start(&vars, &[]);
    let driver = ChromeDriver::start();
    let client = driver.connect().await;
    let shots = Screenshots::new("dashboard-screenshots");

    let outcome = AssertUnwindSafe(scenario(&env, &server, &client, &shots))
        .catch_unwind()
        .await;
    if outcome.is_err() {
        // What the browser showed when it went wrong.
        let _ = shots.take(&client, "failure").await;
    }
    let _ = client.close().await;
    drop(driver);
    let logged = server.stop();
    if let Err(panic) = outcome {
        eprintln!("cm-api's log:\n{logged}");
        std::panic::resume_unwind(panic);
    }
    assert!(
        !logged.contains(ADMIN_KEY),
        "the admin key reached the log:\n{logged}"
    );
    assert!(logged.contains("dashboard login"), "{logged}");
}

/// A browser in front of a user's container behind nginx's owner-checked route: the engine,
/// cm-api, nginx with the site file of `cm nginx setup`, one container of Alice's and her token.
struct RouteBrowser {
    gate: crate::gate::Gate,
    alice: String,
    token: String,
    /// The container's URL through nginx.
    app: String,
    /// Kept for its drop, which ends chromedriver and its browsers.
    _driver: ChromeDriver,
    client: Client,
    shots: Screenshots,
}

impl RouteBrowser {
    /// `None` (after a loud skip line) without the engine, nginx or the browser outside CI.
    async fn open(test: &str, kind: &str, path: &str, shots: &str) -> Option<RouteBrowser> {
        if !require_docker() || !require_browser() {
            return None;
        }
        let gate = crate::gate::Gate::start(test, cm_core::RoutingMode::Dynamic, cm_core::HostMode::Path)?;
        let alice = gate.env.user("alice");
        gate.create(&alice, kind);
        let token = gate.token(&alice);
        let app = format!(
            "http://127.0.0.1:{}/container/{alice}/{kind}/{path}",
            gate.nginx.port
        );
        let driver = ChromeDriver::start();
        let client = driver.connect().await;
        Some(RouteBrowser {
            gate,
            alice,
            token,
            app,
            _driver: driver,
            client,
            shots: Screenshots::new(shots),
        })
    }

    /// Runs `check`; on a failure keeps a screenshot; always closes the browser (the driver
    /// goes with `self`).
    async fn run(&self, check: impl Future<Output = ()>) {
        let outcome = AssertUnwindSafe(check).catch_unwind().await;
        if outcome.is_err() {
            let _ = self.shots.take(&self.client, "failure").await;
        }
        let _ = self.client.clone().close().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

/// The sign-in of container routes in a real browser: nginx with the site file of
/// `cm nginx setup`, the real `cm-api` and a real container. Opening a container's URL leads to
/// the sign-in page, the user's token leads back to the app, and the route cookie is `HttpOnly`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_sign_in_in_a_real_browser() {
    let Some(browser) = RouteBrowser::open(
        "route sign-in in a browser",
        "custom",
        "hello?from=browser",
        "route-sign-in-screenshots",
    )
    .await
    else {
        return;
    };
    let (client, shots, app) = (browser.client.clone(), &browser.shots, browser.app.clone());
    let (alice, token) = (browser.alice.clone(), browser.token.clone());
    let check = async {
        client.goto(&app).await.unwrap();
        wait_for(&client, "#route-login-form").await;
        let url = client.current_url().await.unwrap();
        assert_eq!(url.path(), "/_cm/login");
        shots.take(&client, "route-sign-in").await;
        fill(&client, "#credential", "cmu_wrong").await;
        click(&client, "#route-login-submit").await;
        wait_text(&client, "#login-error", "not a valid").await;
        fill(&client, "#credential", &token).await;
        click(&client, "#route-login-submit").await;
        // The app answers (cm-http's JSON, shown as text): it is Alice's, at the path she asked for.
        let reached = poll(|| async {
            client
                .source()
                .await
                .is_ok_and(|page| page.contains(&alice) && page.contains("/hello?from=browser"))
        })
        .await;
        assert!(reached, "{}", client.source().await.unwrap_or_default());
        let back = poll(|| async { client.current_url().await.is_ok_and(|url| url.as_str() == app) }).await;
        assert!(back, "{:?}", client.current_url().await);
        shots.take(&client, "route-app").await;
        let readable: Value = client.execute("return document.cookie;", vec![]).await.unwrap();
        assert!(
            !readable.as_str().unwrap_or_default().contains("cm_route"),
            "the route cookie is HttpOnly: {readable}"
        );
    };
    browser.run(check).await;
}

async fn scenario(env: &TestEnv, server: &Server, client: &Client, shots: &Screenshots) {
    let base = format!("http://127.0.0.1:{}", server.port);
    let cli_user = env.user("cli");
    let web_user = env.user("web");
    let cli_name = format!("{cli_user}_cli_v4");
    let web_name = format!("{web_user}_preview_server");

    // A container made outside the dashboard: through `cm_wiring::build_app` on the same database,
    // which is exactly what the `cm` binary runs (cm-api's tests can not run `cm` itself).
    create_like_the_cli(env, &cli_user).await;

    // Without a session every page leads to the login.
    let answer = cm_testkit::http::get(server.port, "/", &[]).unwrap();
    assert_eq!(answer.status, 303);
    assert_eq!(answer.header("location"), Some("/login"));
    client.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(client.current_url().await.unwrap().path(), "/login");
    shots.take(client, "login").await;

    fill(client, "#key", "not-the-admin-key-at-all").await;
    click(client, "#login-submit").await;
    wait_text(client, "#login-error", "neither the admin key").await;
    shots.take(client, "login-refused").await;

    log_in(client, &base, ADMIN_KEY).await;
    assert_no_key_anywhere(client).await;
    let row = format!("tr[data-container=\"{cli_name}\"]");
    wait_for(client, &row).await;
    wait_text(client, &format!("{row} [data-status-for]"), "running").await;
    shots.take(client, "dashboard").await;

    // The probe in the CLI container's environment renders as text.
    client
        .goto(&format!("{base}/containers/{cli_name}"))
        .await
        .unwrap();
    wait_text(client, "#env", "PROBE").await;
    let cells: Value = client
        .execute(
            "return Array.from(document.querySelectorAll('#env tbody tr')).map(r => [r.cells[0].textContent, r.cells[1].textContent]);",
            vec![],
        )
        .await
        .unwrap();
    let cells = cells.as_array().unwrap();
    assert!(cells.contains(&json!(["PROBE", PROBE])), "{cells:?}");
    assert!(cells.contains(&json!(["API_TOKEN", "***"])), "{cells:?}");
    assert_not_injected(client).await;
    shots.take(client, "container-from-cli").await;

    // Create one through the form: first a refusal of the core next to its field, then for real.
    client.goto(&format!("{base}/create")).await.unwrap();
    wait_for(client, "#create-form").await;
    shots.take(client, "create").await;
    fill(client, "#user_id", "Not A Valid Id!").await;
    click(client, "#create-submit").await;
    wait_text(client, ".field.invalid .field-error", "invalid user id").await;
    shots.take(client, "create-invalid").await;
    let user_field = client.find(Locator::Css("#user_id")).await.unwrap();
    user_field.clear().await.unwrap();
    user_field.send_keys(&web_user).await.unwrap();
    client
        .find(Locator::Css("#container_type"))
        .await
        .unwrap()
        .select_by_value("preview_server")
        .await
        .unwrap();
    fill(
        client,
        "#command",
        &format!("sh -c \"echo '{PROBE}'; i=0; while :; do i=$((i+1)); echo tick $i; sleep 1; done\""),
    )
    .await;
    fill(client, "#env", &format!("NOTE={PROBE}\nDB_PASSWORD=hunter2")).await;
    click(client, "#create-submit").await;
    wait_text(
        client,
        ".banner-success",
        &format!("Container {web_name} was created"),
    )
    .await;
    assert_eq!(
        client.current_url().await.unwrap().path(),
        format!("/containers/{web_name}")
    );
    wait_text(client, &format!("[data-status-for=\"{web_name}\"]"), "running").await;
    let command = text(client, "#command").await;
    assert!(command.contains(PROBE), "{command}");
    assert!(!client.source().await.unwrap().contains("hunter2"));
    assert_not_injected(client).await;
    shots.take(client, "created").await;

    // Logs: the tail shows the probe as text; follow appends new lines as they come.
    // The page shows the tail as it was when it loaded: on a busy machine the first tick may come
    // after the first load, so load it again until it is there.
    let logs_page = format!("{base}/logs/{web_name}");
    let ticked = poll(|| async {
        client.goto(&logs_page).await.is_ok() && text(client, "#logs").await.contains("tick")
    })
    .await;
    assert!(ticked, "the logs page never showed a tick");
    let before = text(client, "#logs").await;
    assert!(before.contains(PROBE), "{before}");
    click(client, "#follow").await;
    wait_text(client, "#follow-state", "Following").await;
    let last_tick = before.matches("tick").count();
    wait_until_js(
        client,
        &format!(
            "return document.getElementById('logs').textContent.split('tick').length - 1 > {last_tick} + 1;"
        ),
    )
    .await;
    assert_not_injected(client).await;
    shots.take(client, "logs-following").await;
    click(client, "#follow").await;

    // The dashboard with both, filtered by type on the server.
    client.goto(&format!("{base}/")).await.unwrap();
    wait_for(client, &format!("tr[data-container=\"{web_name}\"]")).await;
    client
        .find(Locator::Css("select[name=type]"))
        .await
        .unwrap()
        .select_by_value("preview_server")
        .await
        .unwrap();
    wait_until_js(client, "return location.search.includes('type=preview_server');").await;
    wait_for(client, &format!("tr[data-container=\"{web_name}\"]")).await;
    assert!(client.find_all(Locator::Css(&row)).await.unwrap().is_empty());
    shots.take(client, "dashboard-filtered").await;

    // SSH keys: the real parser judges as you type; the key is stored and written into the container.
    let (public_key, fingerprint) = ssh_keygen(env.path());
    client
        .goto(&format!("{base}/keys?container={cli_name}"))
        .await
        .unwrap();
    fill(client, "#public-key", "ssh-rsa AAAAB3NzaC1yc2E= someone@else").await;
    wait_text(client, "#key-check", "✗").await;
    shots.take(client, "keys-refused").await;
    let area = client.find(Locator::Css("#public-key")).await.unwrap();
    area.clear().await.unwrap();
    area.send_keys(&public_key).await.unwrap();
    wait_text(client, "#key-check", &fingerprint).await;
    shots.take(client, "keys-checked").await;
    click(client, "#add-key").await;
    wait_text(client, ".banner-success", &format!("Key {fingerprint} was added")).await;
    wait_text(client, ".ssh-panel:not([hidden]) .keys-table", &fingerprint).await;
    let connect = text(client, ".ssh-panel:not([hidden]) .copy-line code").await;
    assert!(
        connect.starts_with("ssh -p ") && connect.ends_with("cli@127.0.0.1"),
        "{connect}"
    );
    shots.take(client, "keys-added").await;
    let installed = docker_ok(&["exec", &cli_name, "cat", "/home/cli/.ssh/authorized_keys"]);
    assert!(
        installed.contains(public_key.split(' ').nth(1).unwrap()),
        "{installed}"
    );

    // Users: a token, shown once.
    client.goto(&format!("{base}/users")).await.unwrap();
    fill(client, "#token-user", &cli_user).await;
    click(client, "#create-token").await;
    wait_for(client, "#secret-value").await;
    let token = text(client, "#secret-value").await;
    assert!(token.starts_with("cmu_"), "{token}");
    shots.take(client, "users-token").await;

    client.goto(&format!("{base}/settings")).await.unwrap();
    wait_text(client, "#engine", "answers").await;
    let rotate = client.find(Locator::Css("#rotate-key")).await.unwrap();
    assert!(
        !rotate.is_enabled().await.unwrap(),
        "the key comes from the environment"
    );
    shots.take(client, "settings").await;

    // The session cookie as the browser holds it: HttpOnly, SameSite=Strict, never the key.
    let cookie = client.get_named_cookie("cm_session").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
    assert_eq!(cookie.value().len(), 64);
    // A POST with that cookie but without the CSRF token is refused, and changes nothing.
    let (status, body) = raw_post(
        server.port,
        &format!("/containers/{web_name}/stop"),
        &format!("cm_session={}", cookie.value()),
        "back=%2F",
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        docker_ok(&["inspect", "-f", "{{.State.Status}}", &web_name]),
        "running"
    );

    // The user token sees only its user's containers, and no admin page.
    click(client, "#logout").await;
    wait_for(client, "#login-form").await;
    log_in(client, &base, &token).await;
    wait_for(client, &row).await;
    assert!(
        client
            .find_all(Locator::Css(&format!("tr[data-container=\"{web_name}\"]")))
            .await
            .unwrap()
            .is_empty(),
        "another user's container is not shown"
    );
    assert_eq!(
        text(client, "#who").await.to_lowercase(),
        format!("user {cli_user}")
    );
    assert!(
        client
            .find_all(Locator::Css("nav a[href=\"/settings\"]"))
            .await
            .unwrap()
            .is_empty()
    );
    shots.take(client, "user-dashboard").await;
    client
        .goto(&format!("{base}/containers/{web_name}"))
        .await
        .unwrap();
    // Another user's container looks like no container at all.
    wait_text(client, "#error-message", &format!("no container \"{web_name}\"")).await;
    shots.take(client, "user-not-found").await;
    click(client, "#logout").await;
    wait_for(client, "#login-form").await;

    // Statuses refresh without a reload: the container stops behind the dashboard's back.
    log_in(client, &base, ADMIN_KEY).await;
    let web_row = format!("tr[data-container=\"{web_name}\"]");
    wait_text(client, &format!("{web_row} [data-status-for]"), "running").await;
    client
        .execute("window.notReloaded = true;", vec![])
        .await
        .unwrap();
    docker_ok(&["stop", "-t", "1", &web_name]);
    wait_text(client, &format!("{web_row} [data-status-for]"), "exited").await;
    wait_until_js(client, "return window.notReloaded === true;").await;
    // Pushed by the server (server-sent events), not polled.
    wait_until_js(
        client,
        "return !performance.getEntriesByType('resource').some(function (e) { return e.name.indexOf('/ui/statuses') >= 0; });",
    )
    .await;
    wait_for(
        client,
        &format!("{web_row} button[data-when=stopped]:not([hidden])"),
    )
    .await;
    shots.take(client, "dashboard-live-status").await;

    // Delete with purge, after the confirmation page.
    client
        .goto(&format!("{base}/containers/{web_name}/delete"))
        .await
        .unwrap();
    wait_for(client, "#delete-form").await;
    click(client, "#purge").await;
    shots.take(client, "delete-confirm").await;
    click(client, "#confirm-delete").await;
    wait_text(client, ".banner-success", "was removed too").await;
    assert!(
        client
            .find_all(Locator::Css(&format!("tr[data-container=\"{web_name}\"]")))
            .await
            .unwrap()
            .is_empty()
    );
    shots.take(client, "deleted").await;
    assert_eq!(
        docker_ok(&["ps", "-aq", "--filter", &format!("name=^{web_name}$")]),
        ""
    );
    assert_eq!(
        docker_ok(&[
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("name=^{web_name}_data$")
        ]),
        ""
    );
    assert_no_key_anywhere(client).await;
}

/// The dashboard at a laptop's width (1366 x 900, light) and a phone's (390 x 844, dark), on the
/// real binary and engine: the row actions inside the card without a horizontal scroll, rows as
/// cards below 1100 px, the top bar and Log out on a phone, identifiers as typed, search, sort,
/// the confirmation before a stop, bulk stop and start (tick all), and the dark scheme when the
/// system prefers it. Screenshots (of the viewport) go to `target/dashboard-scale-screenshots/`
/// for review; they change with every run (generated user ids, ports, times), so the test
/// compares element boxes, not pixels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_scales_from_a_phone_to_a_laptop() {
    if !require_docker() || !require_browser() {
        return;
    }
    let env = TestEnv::new();
    let mut vars = env.vars();
    vars.push(("CONTAINER_ADMIN_KEY", ADMIN_KEY.to_owned()));
    let server = Server::start(&vars, &[]);
    let driver = ChromeDriver::start();
    let shots = Screenshots::new("dashboard-scale-screenshots");
    let outcome = AssertUnwindSafe(scale(&env, &server, &driver, &shots))
        .catch_unwind()
        .await;
    drop(driver);
    let logged = server.stop();
    if let Err(panic) = outcome {
        eprintln!("cm-api's log:\n{logged}");
        std::panic::resume_unwind(panic);
    }
}

/// The containers of the scaling test.
struct Three {
    alice_cli: String,
    alice_dev: String,
    bob_cli: String,
}

impl Three {
    fn all(&self) -> [&str; 3] {
        [&self.alice_cli, &self.alice_dev, &self.bob_cli]
    }
}

async fn scale(env: &TestEnv, server: &Server, driver: &ChromeDriver, shots: &Screenshots) {
    let base = format!("http://127.0.0.1:{}", server.port);
    let alice = env.user("alice");
    // A long user id, as real ones are: the widths must hold with it.
    let bob = env.user("bob-with-a-rather-long-user-id");
    let three = Three {
        alice_cli: create_through_the_wiring(env, &alice, "cli_v4").await,
        alice_dev: create_through_the_wiring(env, &alice, "preview_server").await,
        bob_cli: create_through_the_wiring(env, &bob, "cli_v4").await,
    };

    let laptop = driver
        .connect_with(
            Look::Desktop {
                width: 1366,
                height: 900,
            },
            false,
        )
        .await;
    let outcome = AssertUnwindSafe(at_a_laptop(&laptop, &base, &three, shots))
        .catch_unwind()
        .await;
    if outcome.is_err() {
        shots.take_viewport(&laptop, "laptop-failure").await;
    }
    let _ = laptop.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }

    let phone = driver
        .connect_with(
            Look::Phone {
                width: 390,
                height: 844,
            },
            true,
        )
        .await;
    let outcome = AssertUnwindSafe(on_a_phone(&phone, &base, &three, shots))
        .catch_unwind()
        .await;
    if outcome.is_err() {
        shots.take_viewport(&phone, "phone-failure").await;
    }
    let _ = phone.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn at_a_laptop(client: &Client, base: &str, three: &Three, shots: &Screenshots) {
    sign_in(client, base).await;
    assert_eq!(js(client, "return window.innerWidth;").await, json!(1366));
    for name in three.all() {
        wait_for(client, &format!("tr[data-container=\"{name}\"]")).await;
    }
    shots.take_viewport(client, "laptop-list").await;
    // A table, its row actions inside the card and the window, nothing to scroll sideways.
    let layout = list_layout(client).await;
    assert_eq!(layout["thead"], "table-header-group", "{layout}");
    assert_rows_fit(&layout, 5);
    // Identifiers read exactly as they are, whatever the CSS.
    let shown = js(
        client,
        "return Array.from(document.querySelectorAll('#containers tbody tr')).map(function (tr) { return [tr.getAttribute('data-container'), tr.querySelector('.cell-name a').innerText]; });",
    )
    .await;
    for pair in shown.as_array().unwrap() {
        assert_eq!(pair[0], pair[1], "{shown}");
    }
    assert_light_or_dark(client, false).await;

    // Search on the server: a part of Bob's id finds his container only.
    fill(client, "#search", "rather-long").await;
    go(client, "#apply-filters", "#containers", None).await;
    wait_until_js(client, "return location.search.indexOf('q=rather-long') >= 0;").await;
    assert_eq!(listed(client).await, [three.bob_cli.as_str()]);
    assert_eq!(attribute(client, "#search", "value").await, "rather-long");

    // Sort by user, then the other way round.
    visit(client, &format!("{base}/"), "#containers").await;
    go(
        client,
        "a[data-sort=\"user\"]",
        "th[aria-sort=\"ascending\"] a[data-sort=\"user\"]",
        None,
    )
    .await;
    assert_eq!(
        listed(client).await,
        [
            three.alice_cli.as_str(),
            three.alice_dev.as_str(),
            three.bob_cli.as_str()
        ]
    );
    go(
        client,
        "a[data-sort=\"user\"]",
        "th[aria-sort=\"descending\"] a[data-sort=\"user\"]",
        None,
    )
    .await;
    assert_eq!(
        listed(client).await,
        [
            three.bob_cli.as_str(),
            three.alice_dev.as_str(),
            three.alice_cli.as_str()
        ]
    );
    shots.take_viewport(client, "laptop-sorted").await;

    // Pages: two rows a page, sorted by user the other way round, the next page and back.
    visit(client, &format!("{base}/?sort=user&dir=desc&per=2"), "#pager").await;
    assert_eq!(
        listed(client).await,
        [three.bob_cli.as_str(), three.alice_dev.as_str()]
    );
    go(client, "#page-next", "#page-prev", None).await;
    wait_until_js(client, "return location.search.indexOf('page=2') >= 0;").await;
    assert_eq!(listed(client).await, [three.alice_cli.as_str()]);
    assert!(text(client, "#pager").await.contains("Page 2 of 2"));
    shots.take_viewport(client, "laptop-page-2").await;
    go(client, "#page-prev", "#page-next", None).await;
    assert_eq!(listed(client).await.len(), 2);

    // Stop asks first; Cancel changes nothing; the confirmed form stops it.
    visit(client, &format!("{base}/"), "#containers").await;
    let stop = format!(
        "tr[data-container=\"{}\"] button[data-when=\"running\"]",
        three.alice_cli
    );
    go(client, &stop, "#confirm-form", None).await;
    assert_eq!(
        text(client, "#confirm h1").await,
        format!("Stop {}?", three.alice_cli)
    );
    shots.take_viewport(client, "laptop-confirm-stop").await;
    go(client, "#confirm-cancel", "#containers", None).await;
    assert_eq!(engine_status(&three.alice_cli), "running");
    go(client, &stop, "#confirm-form", None).await;
    confirm(
        client,
        base,
        &format!("Container {} was stopped", three.alice_cli),
        || engine_status(&three.alice_cli) == "exited",
    )
    .await;
    assert_eq!(engine_status(&three.alice_cli), "exited");
    // The message names the container exactly (no first letter raised), when it was not lost
    // with a load the network cut (see `visit`).
    let banner = js(
        client,
        "var p = document.querySelector('.banner-success p'); return p ? [p.innerText, getComputedStyle(p, '::first-letter').textTransform] : null;",
    )
    .await;
    if !banner.is_null() {
        assert!(
            banner[0]
                .as_str()
                .unwrap()
                .contains(&format!("Container {} was stopped", three.alice_cli)),
            "{banner}"
        );
        assert_eq!(banner[1], "none", "{banner}");
    }

    // Bulk: stop two ticked containers after a page that lists them.
    for name in [&three.alice_dev, &three.bob_cli] {
        click(client, &format!("tr[data-container=\"{name}\"] td.select input")).await;
    }
    client
        .find(Locator::Css("#bulk-action"))
        .await
        .unwrap()
        .select_by_value("stop")
        .await
        .unwrap();
    go(client, "#bulk-review", "#plan", None).await;
    assert_eq!(
        js(
            client,
            "return document.querySelectorAll('#plan li:not([data-skip])').length;"
        )
        .await,
        json!(2)
    );
    let plan = text(client, "#plan").await;
    assert!(
        plan.contains(&three.alice_dev) && plan.contains(&three.bob_cli),
        "{plan}"
    );
    assert!(!plan.contains(&three.alice_cli), "{plan}");
    shots.take_viewport(client, "laptop-bulk-confirm").await;
    confirm(client, base, "2 container(s) stopped", || {
        engine_status(&three.alice_dev) == "exited" && engine_status(&three.bob_cli) == "exited"
    })
    .await;
    assert_eq!(engine_status(&three.alice_dev), "exited");
    assert_eq!(engine_status(&three.bob_cli), "exited");

    // Tick all on the page (the script's box), start them all.
    click(client, "#select-all").await;
    assert_eq!(
        js(
            client,
            "return document.querySelectorAll('input[form=\"bulk-form\"]:checked').length;"
        )
        .await,
        json!(3)
    );
    client
        .find(Locator::Css("#bulk-action"))
        .await
        .unwrap()
        .select_by_value("start")
        .await
        .unwrap();
    go(client, "#bulk-review", "#plan", None).await;
    wait_text(client, "#confirm h1", "Start 3 container(s)?").await;
    confirm(client, base, "3 container(s) started", || {
        three.all().iter().all(|name| engine_status(name) == "running")
    })
    .await;
    for name in three.all() {
        assert_eq!(engine_status(name), "running", "{name}");
    }

    // Below about 1100 px the rows become cards, the actions still on them.
    client.set_window_size(1000, 900).await.unwrap();
    wait_until_js(client, "return window.innerWidth <= 1000;").await;
    let layout = list_layout(client).await;
    assert_eq!(layout["thead"], "none", "{layout}");
    assert_rows_fit(&layout, 5);
    for row in layout["rows"].as_array().unwrap() {
        assert_eq!(row["display"], "flex", "{layout}");
    }
    shots.take_viewport(client, "narrow-cards").await;
}

async fn on_a_phone(client: &Client, base: &str, three: &Three, shots: &Screenshots) {
    sign_in(client, base).await;
    assert_eq!(js(client, "return window.innerWidth;").await, json!(390));
    wait_for(client, &format!("tr[data-container=\"{}\"]", three.bob_cli)).await;
    shots.take_viewport(client, "phone-list").await;
    // The top bar fits, Log out on screen.
    let bar = js(
        client,
        "var b = document.getElementById('logout').getBoundingClientRect(); var t = document.querySelector('.topbar-inner'); return { left: b.left, right: b.right, top: b.top, bottom: b.bottom, width: b.width, inner: innerWidth, height: innerHeight, barScroll: t.scrollWidth, barClient: t.clientWidth };",
    )
    .await;
    let number = |key: &str| bar[key].as_f64().unwrap();
    assert!(number("width") > 0.0, "{bar}");
    assert!(
        number("left") >= 0.0 && number("right") <= number("inner"),
        "{bar}"
    );
    assert!(
        number("top") >= 0.0 && number("bottom") <= number("height"),
        "{bar}"
    );
    assert!(number("barScroll") <= number("barClient"), "{bar}");
    // Cards, the actions on each, nothing to scroll sideways.
    let layout = list_layout(client).await;
    assert_eq!(layout["thead"], "none", "{layout}");
    assert_rows_fit(&layout, 5);
    assert_light_or_dark(client, true).await;
    // Every other page fits too.
    for path in [
        "/?per=1&page=2".to_owned(),
        format!("/containers/{}", three.alice_cli),
        format!("/containers/{}/stop", three.alice_cli),
        format!("/containers/{}/delete", three.bob_cli),
        format!("/logs/{}", three.alice_cli),
        format!("/keys?container={}", three.alice_cli),
        "/create".to_owned(),
        "/users".to_owned(),
        "/audit".to_owned(),
        "/settings".to_owned(),
    ] {
        visit(client, &format!("{base}{path}"), "#logout").await;
        let fits = js(
            client,
            "return [document.scrollingElement.scrollWidth, window.innerWidth];",
        )
        .await;
        assert!(
            fits[0].as_u64().unwrap() <= fits[1].as_u64().unwrap(),
            "{path} scrolls sideways: {fits}"
        );
        let name = path.trim_start_matches('/').replace(['/', '?', '='], "-");
        shots.take_viewport(client, &format!("phone-{name}")).await;
    }
}

/// True while the browser shows its own error page (a navigation that failed).
async fn on_error_page(client: &Client) -> bool {
    client
        .execute(
            "return location.href.indexOf('chrome-error:') === 0 || !!document.querySelector('#main-frame-error');",
            vec![],
        )
        .await
        .is_ok_and(|v| v == Value::Bool(true))
}

/// Opens `url` until it shows `expect`. Chromium aborts every load while the host's addresses
/// change (`ERR_NETWORK_CHANGED`: the engine adds and removes a bridge with an address for each
/// network that tests on the same machine make), so a failed load is tried again.
async fn visit(client: &Client, url: &str, expect: &str) {
    // While other tests on the machine make and remove networks, every load fails: wait for a
    // quiet moment, up to a minute and a half.
    for attempt in 0..30 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        let _ = client.goto(url).await;
        let shown =
            poll(|| async { client.find(Locator::Css(expect)).await.is_ok() || on_error_page(client).await })
                .await;
        if shown && !on_error_page(client).await {
            return;
        }
    }
    panic!("{url} never showed {expect}");
}

/// Clicks `css` (a link or a GET form's button), which leads to a page showing `expect`. When
/// the navigation fails (see [`visit`]), the page it went for is opened again: the same URL, or
/// `recover`.
async fn go(client: &Client, css: &str, expect: &str, recover: Option<&str>) {
    click(client, css).await;
    let shown =
        poll(|| async { client.find(Locator::Css(expect)).await.is_ok() || on_error_page(client).await })
            .await;
    if shown && !on_error_page(client).await {
        return;
    }
    let again = match recover {
        Some(url) => url.to_owned(),
        None => client.current_url().await.unwrap().to_string(),
    };
    eprintln!("the browser's navigation after clicking {css} failed; opening {again} again");
    visit(client, &again, expect).await;
}

/// Confirms on a confirmation page, then waits for the list and the banner saying `said`. When
/// the network changed under the browser (see [`visit`]): if `done` says it happened, the list
/// is opened again (its message may be lost with the failed load); else the confirmation page
/// is opened again and confirmed once more (stop, start and delete of the same containers may
/// be asked twice).
async fn confirm(client: &Client, base: &str, said: &str, done: impl Fn() -> bool) {
    let page = client.current_url().await.unwrap().to_string();
    for _ in 0..3 {
        click(client, "#confirm-submit").await;
        let shown = poll(|| async {
            client.find(Locator::Css("#containers")).await.is_ok() || on_error_page(client).await
        })
        .await;
        if shown && !on_error_page(client).await {
            wait_text(client, ".banner-success", said).await;
            return;
        }
        if done() {
            eprintln!("the load after confirming failed, but the action happened: {said}");
            visit(client, &format!("{base}/"), "#containers").await;
            return;
        }
        eprintln!("the load after confirming failed; confirming again on {page}");
        visit(client, &page, "#confirm-form").await;
    }
    panic!("confirming never got through: {said}");
}

/// Signs in as the admin, again if the network changed under the browser (see [`visit`]).
async fn sign_in(client: &Client, base: &str) {
    for _ in 0..3 {
        visit(client, &format!("{base}/login"), "#key").await;
        fill(client, "#key", ADMIN_KEY).await;
        click(client, "#login-submit").await;
        let shown = poll(|| async {
            client.find(Locator::Css("#logout")).await.is_ok() || on_error_page(client).await
        })
        .await;
        if shown && !on_error_page(client).await {
            visit(client, &format!("{base}/"), "#containers").await;
            return;
        }
    }
    panic!("the sign-in never got through");
}

/// The containers list's boxes: the header's display, the card, the window and, per row, the
/// leftmost and rightmost of its controls (tick box, lifecycle buttons, links).
async fn list_layout(client: &Client) -> Value {
    js(
        client,
        "var card = document.getElementById('containers-card'); var box = card.getBoundingClientRect();\
         var out = { thead: getComputedStyle(document.querySelector('#containers thead')).display,\
           cardScroll: card.scrollWidth, cardClient: card.clientWidth, cardLeft: box.left, cardRight: box.right,\
           inner: window.innerWidth, scroll: document.scrollingElement.scrollWidth, rows: [] };\
         document.querySelectorAll('#containers tbody tr').forEach(function (tr) {\
           var boxes = Array.from(tr.querySelectorAll('td.select input, .actions button:not([hidden]), .actions a'))\
             .map(function (c) { return c.getBoundingClientRect(); }).filter(function (r) { return r.width > 0; });\
           out.rows.push({ name: tr.getAttribute('data-container'), display: getComputedStyle(tr).display, count: boxes.length,\
             left: Math.min.apply(null, boxes.map(function (r) { return r.left; })),\
             right: Math.max.apply(null, boxes.map(function (r) { return r.right; })) });\
         });\
         return out;",
    )
    .await
}

/// Every row shows at least `controls` controls, all inside the card and the window, and
/// neither the card nor the page scrolls sideways.
fn assert_rows_fit(layout: &Value, controls: u64) {
    let number = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    assert!(
        number(&layout["scroll"]) <= number(&layout["inner"]),
        "the page scrolls sideways: {layout}"
    );
    assert!(
        number(&layout["cardScroll"]) <= number(&layout["cardClient"]),
        "the list scrolls sideways in its card: {layout}"
    );
    let rows = layout["rows"].as_array().unwrap();
    assert!(!rows.is_empty(), "{layout}");
    for row in rows {
        assert!(row["count"].as_u64().unwrap() >= controls, "{row}");
        assert!(
            number(&row["left"]) >= number(&layout["cardLeft"]),
            "{row} in {layout}"
        );
        assert!(
            number(&row["right"]) <= number(&layout["cardRight"]),
            "{row} in {layout}"
        );
        assert!(
            number(&row["right"]) <= number(&layout["inner"]),
            "{row} in {layout}"
        );
    }
}

/// The page's background is light, or dark when the system prefers dark (`prefers-color-scheme`).
async fn assert_light_or_dark(client: &Client, dark: bool) {
    let seen = js(
        client,
        "return [matchMedia('(prefers-color-scheme: dark)').matches, getComputedStyle(document.body).backgroundColor, getComputedStyle(document.querySelector('.card')).color];",
    )
    .await;
    assert_eq!(seen[0], dark, "{seen}");
    let channels: Vec<f64> = seen[1]
        .as_str()
        .unwrap()
        .trim_start_matches("rgba(")
        .trim_start_matches("rgb(")
        .trim_end_matches(')')
        .split(',')
        .take(3)
        .map(|c| c.trim().parse().unwrap())
        .collect();
    let lightness = channels.iter().sum::<f64>() / (3.0 * 255.0);
    if dark {
        assert!(lightness < 0.2, "a dark background: {seen}");
    } else {
        assert!(lightness > 0.8, "a light background: {seen}");
    }
}

/// The containers listed, in order.
async fn listed(client: &Client) -> Vec<String> {
    let names = js(
        client,
        "return Array.from(document.querySelectorAll('#containers tbody tr')).map(function (tr) { return tr.getAttribute('data-container'); });",
    )
    .await;
    names
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect()
}

async fn attribute(client: &Client, css: &str, name: &str) -> String {
    wait_for(client, css)
        .await
        .prop(name)
        .await
        .unwrap()
        .unwrap_or_default()
}

async fn js(client: &Client, script: &str) -> Value {
    client
        .execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("{script}: {e}"))
}

/// The engine's word for a container's state (`running`, `exited`).
fn engine_status(name: &str) -> String {
    docker_ok(&["inspect", "-f", "{{.State.Status}}", name])
}

/// Creates `{user}_{kind}` through the same wiring as `cm`; its name.
async fn create_through_the_wiring(env: &TestEnv, user: &str, kind: &str) -> String {
    let settings = cm_wiring::Settings {
        config: cm_core::Config::from_toml(&std::fs::read_to_string(env.config_path()).unwrap()).unwrap(),
        database: env.db_path(),
    };
    let app = cm_wiring::build_app(&settings).await.unwrap();
    let form = cm_core::CreateForm {
        user_id: user.to_owned(),
        container_type: kind.to_owned(),
        ..cm_core::CreateForm::default()
    };
    let request = cm_core::CreateRequest::parse(&form, app.manager.config()).unwrap();
    let progress = |_: &str| {};
    let outcome = app.manager.create(request, &progress).await.unwrap();
    outcome.spec.container_name.to_string()
}

/// The seed's Streamlit dev UI for real: `project_dev` serves the user's `/data/app.py` through
/// the owner-checked route; the page renders in the browser (which needs Streamlit's WebSocket
/// through nginx), and saving the file changes the open page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_streamlit_dev_ui_in_a_real_browser() {
    let Some(browser) = RouteBrowser::open(
        "streamlit in a browser",
        "project_dev",
        "",
        "streamlit-screenshots",
    )
    .await
    else {
        return;
    };
    let (client, shots, app) = (browser.client.clone(), &browser.shots, browser.app.clone());
    let (gate, alice, token) = (&browser.gate, browser.alice.clone(), browser.token.clone());
    let page_says = |text: &'static str| {
        let client = client.clone();
        async move {
            let polls = std::sync::atomic::AtomicU32::new(0);
            poll_long(|| async {
                // On a loaded machine Streamlit's front end sometimes never renders into the
                // first page it got: load it again every 15 s, as a person would.
                if polls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 30 == 29 {
                    let _ = client.refresh().await;
                }
                client
                    .execute("return document.body ? document.body.innerText : '';", vec![])
                    .await
                    .is_ok_and(|v| v.as_str().unwrap_or_default().contains(text))
            })
            .await
        }
    };
    let check = async {
        client.goto(&app).await.unwrap();
        wait_for(&client, "#route-login-form").await;
        fill(&client, "#credential", &token).await;
        click(&client, "#route-login-submit").await;
        // The starter app, rendered by Streamlit's front end from what its WebSocket carried.
        assert!(
            page_says("Your Streamlit app").await,
            "{}",
            client.source().await.unwrap_or_default()
        );
        shots.take(&client, "streamlit-starter").await;
        let (status, out) = gate.call(
            "container_exec",
            json!({
                "container_id": format!("{alice}_project_dev"),
                "user": "1000:1000",
                "command": ["sh", "-c", "sed -i 's/Your Streamlit app/Edited by its owner/' /data/app.py"],
            }),
        );
        assert_eq!(status, 200, "{out}");
        assert!(
            page_says("Edited by its owner").await,
            "{}",
            client.source().await.unwrap_or_default()
        );
        shots.take(&client, "streamlit-edited").await;
    };
    browser.run(check).await;
}

/// Polls for up to 90 s: Streamlit's first start in a fresh container takes a while.
async fn poll_long<F: Future<Output = bool>>(mut check: impl FnMut() -> F) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(90) {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

// ---------------------------------------------------------------------------------------------
// The browser.

/// Checks that chromium and chromedriver are installed (a failure under CI).
fn require_browser() -> bool {
    require(
        "chromium",
        &["--version"],
        "the dashboard's browser test (Debian package chromium)",
    ) && require(
        "chromedriver",
        &["--version"],
        "the dashboard's browser test (Debian package chromium-driver)",
    )
}

/// How a browser window looks: a desktop window of a size, or a phone's emulated viewport.
#[derive(Debug, Clone, Copy)]
enum Look {
    Desktop { width: u32, height: u32 },
    Phone { width: u32, height: u32 },
}

/// A `chromedriver` on a free port in its own process group; on drop it is asked to quit (which
/// ends its browsers), then killed, and any browser process still using our profile is killed.
struct ChromeDriver {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl ChromeDriver {
    fn start() -> Self {
        use std::os::unix::process::CommandExt;
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let driver = ChromeDriver {
            child,
            port,
            profile: tempfile::tempdir().unwrap(),
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        driver
    }

    async fn connect(&self) -> Client {
        self.connect_with(
            Look::Desktop {
                width: 1400,
                height: 1000,
            },
            false,
        )
        .await
    }

    /// A browser of the given look; `dark` makes the system prefer a dark colour scheme
    /// (`--force-dark-mode`: `prefers-color-scheme: dark` matches).
    async fn connect_with(&self, look: Look, dark: bool) -> Client {
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--hide-scrollbars".to_owned(),
            format!("--user-data-dir={}", self.profile.path().display()),
        ];
        if dark {
            args.push("--force-dark-mode".to_owned());
        }
        let mut options = json!({ "binary": chromium_binary() });
        match look {
            Look::Desktop { width, height } => args.push(format!("--window-size={width},{height}")),
            // Headless windows are at least 500 px wide: a phone's viewport is emulated.
            Look::Phone { width, height } => {
                options["mobileEmulation"] = json!({
                    "deviceMetrics": { "width": width, "height": height, "pixelRatio": 1.0, "touch": true },
                });
            }
        }
        options["args"] = json!(args);
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".to_owned(), json!("chrome"));
        capabilities.insert("goog:chromeOptions".to_owned(), options);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap_or_else(|e| panic!("chromedriver did not open a browser: {e}"))
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // Never signal a process group through the `kill` program: procps-ng 4.0.2 takes
        // `kill -KILL -PGID` for "every process" and takes the whole machine down. Signal single,
        // positive pids only.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while matches!(self.child.try_wait(), Ok(None)) && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in processes_using(self.profile.path()) {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}

/// The pids whose command line names `path` (our browsers: their `--user-data-dir`).
fn processes_using(path: &std::path::Path) -> Vec<u32> {
    let needle = path.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid > 1 && *pid != std::process::id())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains(&needle))
        })
        .collect()
}

/// The chromium program: Debian's launcher script, or another name on `PATH`.
fn chromium_binary() -> String {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        let path = std::env::var_os("PATH").unwrap_or_default();
        for dir in std::env::split_paths(&path) {
            if dir.join(name).is_file() {
                return dir.join(name).display().to_string();
            }
        }
    }
    "chromium".to_owned()
}

/// Full-page screenshots under `target/dashboard-screenshots/`, numbered in order.
struct Screenshots {
    dir: PathBuf,
    count: std::sync::atomic::AtomicUsize,
}

impl Screenshots {
    /// Screenshots under `target/{folder}/`, emptied first.
    fn new(folder: &str) -> Self {
        // The test binary is target/<profile>/deps/it-<hash>.
        let exe = std::env::current_exe().unwrap();
        let target = exe
            .ancestors()
            .nth(3)
            .map_or_else(|| PathBuf::from("target"), Path::to_path_buf);
        let dir = target.join(folder);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Screenshots {
            dir,
            count: Default::default(),
        }
    }

    async fn take(&self, client: &Client, name: &str) {
        let n = self.count.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let height = client
            .execute("return document.documentElement.scrollHeight;", vec![])
            .await
            .ok()
            .and_then(|v| v.as_u64())
            .unwrap_or(1000);
        let height = u32::try_from(height.clamp(800, 4000)).unwrap_or(1000);
        let _ = client.set_window_size(1400, height + 100).await;
        if let Ok(png) = client.screenshot().await {
            std::fs::write(self.dir.join(format!("{n:02}-{name}.png")), png).unwrap();
        }
        let _ = client.set_window_size(1400, 1000).await;
    }

    /// The viewport as it is (for layouts at a given width: nothing is resized).
    async fn take_viewport(&self, client: &Client, name: &str) {
        let n = self.count.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if let Ok(png) = client.screenshot().await {
            std::fs::write(self.dir.join(format!("{n:02}-{name}.png")), png).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Steps.

async fn log_in(client: &Client, base: &str, key: &str) {
    client.goto(&format!("{base}/login")).await.unwrap();
    fill(client, "#key", key).await;
    click(client, "#login-submit").await;
    wait_for(client, "#logout").await;
    assert_eq!(client.current_url().await.unwrap().path(), "/");
}

async fn fill(client: &Client, css: &str, value: &str) {
    wait_for(client, css)
        .await
        .send_keys(value)
        .await
        .unwrap_or_else(|e| panic!("typing into {css}: {e}"));
}

async fn click(client: &Client, css: &str) {
    wait_for(client, css)
        .await
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
}

async fn text(client: &Client, css: &str) -> String {
    wait_for(client, css).await.text().await.unwrap()
}

async fn wait_for(client: &Client, css: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} never showed: {e}"))
}

/// Waits until the element's text contains `expected` (ignoring case: the rendered text follows
/// the CSS, which capitalizes some of it).
async fn wait_text(client: &Client, css: &str, expected: &str) {
    let expected_lower = expected.to_lowercase();
    let started = Instant::now();
    let (done, last) = loop {
        let now = match client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if now.to_lowercase().contains(&expected_lower) {
            break (true, now);
        }
        if started.elapsed() > PATIENCE {
            break (false, now);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(done, "{css} never said {expected:?}; it says {last:?}");
}

/// Waits until a script returns true.
async fn wait_until_js(client: &Client, script: &str) {
    let done = poll(|| async {
        client
            .execute(script, vec![])
            .await
            .is_ok_and(|v| v == Value::Bool(true))
    })
    .await;
    assert!(done, "never true: {script}");
}

async fn poll<F: Future<Output = bool>>(mut check: impl FnMut() -> F) -> bool {
    let started = Instant::now();
    loop {
        if check().await {
            return true;
        }
        if started.elapsed() > PATIENCE {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// No alert is open and the probe added no element: the only scripts are our own file.
async fn assert_not_injected(client: &Client) {
    assert!(
        client.get_alert_text().await.is_err(),
        "an alert is open: the probe ran"
    );
    let scripts: Value = client
        .execute(
            "return Array.from(document.scripts).map(s => s.getAttribute('src') || 'inline: ' + s.textContent);",
            vec![],
        )
        .await
        .unwrap();
    let scripts = scripts.as_array().unwrap();
    assert_eq!(scripts.len(), 1, "{scripts:?}");
    assert!(
        scripts[0].as_str().unwrap().starts_with("/assets/app.js?v="),
        "{scripts:?}"
    );
}

/// The admin key is in no cookie, no URL and no page source.
async fn assert_no_key_anywhere(client: &Client) {
    for cookie in client.get_all_cookies().await.unwrap() {
        assert!(!cookie.value().contains(ADMIN_KEY), "{}", cookie.name());
    }
    assert!(!client.current_url().await.unwrap().as_str().contains(ADMIN_KEY));
    assert!(!client.source().await.unwrap().contains(ADMIN_KEY));
}

/// Creates `{user}_cli_v4` with the probe in its environment, through the same wiring as `cm`.
async fn create_like_the_cli(env: &TestEnv, user: &str) {
    let settings = cm_wiring::Settings {
        config: cm_core::Config::from_toml(&std::fs::read_to_string(env.config_path()).unwrap()).unwrap(),
        database: env.db_path(),
    };
    let app = cm_wiring::build_app(&settings).await.unwrap();
    let form = cm_core::CreateForm {
        user_id: user.to_owned(),
        container_type: "cli_v4".to_owned(),
        env: vec![format!("PROBE={PROBE}"), "API_TOKEN=not-for-your-eyes".to_owned()],
        ..cm_core::CreateForm::default()
    };
    let request = cm_core::CreateRequest::parse(&form, app.manager.config()).unwrap();
    let progress = |_: &str| {};
    let outcome = app.manager.create(request, &progress).await.unwrap();
    assert_eq!(outcome.spec.status, cm_core::ContainerStatus::Running);
}

/// A fresh ed25519 key from `ssh-keygen`: the public line and the fingerprint it prints.
fn ssh_keygen(dir: &Path) -> (String, String) {
    let key = dir.join("browser_ed25519");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "e2e@browser", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let listed = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(key.with_extension("pub"))
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let fingerprint = listed.split_whitespace().nth(1).unwrap().to_owned();
    assert!(fingerprint.starts_with("SHA256:"), "{listed}");
    (public.trim().to_owned(), fingerprint)
}

/// One form POST with a cookie, over a plain socket; the status and the body.
fn raw_post(port: u16, path: &str, cookie: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nCookie: {cookie}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    (status, rest)
}
