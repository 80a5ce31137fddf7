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
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".to_owned(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chromium_binary(),
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1400,1000",
                    format!("--user-data-dir={}", self.profile.path().display()),
                ],
            }),
        );
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
