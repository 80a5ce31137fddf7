//! ToolBox credentials checked by the real ToolBox worker (`[auth.toolbox] validate_url`, no
//! local secret): `toolboxv2[web]==0.1.28` from PyPI in a virtual environment, its users seeded
//! into its database, its `tb http_worker` on a free loopback port, and the real `cm-api` asking
//! it about access tokens (`POST /validateSession`) and its `tb_session` cookie
//! (`GET /api_user_data`) on the API, the route check and the dashboard's login. No Docker: the
//! user's own (empty) listing, the scoped refusals and the route check's answers show who the
//! caller is.
//!
//! The worker also binds fixed ZMQ ports (127.0.0.1:5555-5558), so one runs per machine at a
//! time: the test holds a file lock in the temp dir of the OS while its worker runs.
//!
//! In process, over cm-core's fakes and a stand-in verifier: the `tb_session` cookie counts only
//! with `validate_url`, and a worker that does not answer is 503 (a 403 with its reason at the
//! route check) without counting as a failed sign-in.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cm_testkit::http::{self, Response};
use serde_json::{Value, json};

use crate::helpers::{ADMIN, Server, TestApp, api, free_port, python_venv};

/// Seeds CloudM users (`USER_ID:USERNAME:LEVEL` arguments) into the database the worker loads
/// at its start (encrypted with the device key under `DEVICE_KEY_DIR`), as CloudM stores them.
const SEED: &str = r#"
import json, os, sys, time, platform
from toolboxv2.utils.security.cryp import Code, DEVICE_KEY
d = os.path.join(os.environ["TB_DATA_DIR"], ".data", os.environ.get("TB_APP_DIR_NAME", f"main-{platform.node()}"))
os.makedirs(d, exist_ok=True)
path = os.path.join(d, "MiniDictDB.json")
key = DEVICE_KEY()
data = {}
if os.path.exists(path):
    data = eval(Code.decrypt_symmetric(json.load(open(path))["data"], key))
for arg in sys.argv[1:]:
    uid, uname, level = arg.split(":")
    user = {"user_id": uid, "username": uname, "email": f"{uname}@example.test", "level": int(level),
            "created_at": time.time(), "last_login": 0.0, "settings": {}, "mod_data": {},
            "oauth_providers": {}, "passkeys": []}
    data[f"AUTH_USER::{uid}"] = json.dumps(user)
json.dump({"data": Code().encode_code(str(data), key)}, open(path, "w"), indent=4)
print("SEEDED", len(sys.argv) - 1)
"#;

/// Mints CloudM access tokens with CloudM's own function (alice, bob, boss, and two more of
/// alice's used only once the worker is gone), an expired one of alice's and one of a user the
/// worker does not know (PyJWT, ToolBox's JWT library).
const MINT: &str = r#"
import json, os, sys, time, uuid
import jwt
from toolboxv2.mods.CloudM.auth.jwt_tokens import _generate_access_token
alice, bob, boss = sys.argv[1:4]
secret = os.environ["TB_JWT_SECRET"]
def minted(sub, exp):
    return jwt.encode({"sub": sub, "user_id": sub, "username": sub, "level": 1, "type": "access",
                       "iat": time.time() - 1000, "exp": exp, "jti": str(uuid.uuid4())},
                      secret, algorithm="HS256")
tokens = {
    "alice": _generate_access_token(alice, "alice", 1),
    "bob": _generate_access_token(bob, "bob", 1),
    "boss": _generate_access_token(boss, "boss", 10),
    "later": _generate_access_token(alice, "alice", 1),
    "later_route": _generate_access_token(alice, "alice", 1),
    "expired": minted(alice, time.time() - 60),
    "stranger": minted("tbw_nobody", time.time() + 900),
}
print("TOKENS " + json.dumps(tokens))
"#;

/// The machine-wide lock of the worker's fixed ports, held while a worker runs.
fn worker_lock() -> File {
    let file = File::create(std::env::temp_dir().join("cm-test-toolbox-worker.lock")).unwrap();
    file.lock().unwrap();
    file
}

/// The environment of everything ToolBox runs here: its home, data and keys under `dir`.
fn toolbox_env(dir: &Path, jwt_secret: &str) -> Vec<(&'static str, String)> {
    let path = |p: &str| dir.join(p).display().to_string();
    vec![
        ("HOME", path("home")),
        ("XDG_CONFIG_HOME", path("home/.config")),
        ("TB_DATA_DIR", path("data")),
        ("DEVICE_KEY_DIR", path("data/keys")),
        ("TB_JWT_SECRET", jwt_secret.to_owned()),
        (
            "TB_COOKIE_SECRET",
            "cm-test-cookie-secret-0123456789abcdef0123456789".to_owned(),
        ),
        ("TB_ENV", "development".to_owned()),
    ]
}

/// Runs a Python snippet of the venv with a time limit; its standard output.
fn python(venv: &Path, dir: &Path, env: &[(&str, String)], script: &str, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .args(["--kill-after=10", "120"])
        .arg(venv.join("bin/python"))
        .arg("-c")
        .arg(script)
        .args(args)
        .current_dir(dir.join("work"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The real ToolBox worker (`tb http_worker`) under `timeout`, stopped on drop.
struct Worker {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl Worker {
    /// Starts the worker on a free port and waits until `GET /health` answers 200.
    fn start(venv: &Path, dir: &Path, env: &[(&str, String)]) -> Worker {
        let port = free_port();
        let log = dir.join("worker.log");
        let out = File::create(&log).unwrap();
        let child = Command::new("timeout")
            .args(["--kill-after=5", "300"])
            .arg(venv.join("bin/tb"))
            .args(["http_worker", "-H", "127.0.0.1", "-p", &port.to_string()])
            // Not "test": a worker id with it changes the data directory.
            .args(["-w", "cmw"])
            .current_dir(dir.join("work"))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut worker = Worker {
            child: Some(child),
            port,
            log,
        };
        let started = Instant::now();
        loop {
            if http::get(port, "/health", &[]).is_ok_and(|r| r.status == 200) {
                break;
            }
            let exited = worker.child.as_mut().unwrap().try_wait().unwrap();
            assert!(
                exited.is_none() && started.elapsed() < Duration::from_secs(60),
                "the ToolBox worker did not start ({exited:?}): {}",
                worker.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        worker
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// SIGTERM to `timeout`, which passes it on (then SIGKILL after 5 s); waits for the end.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // A single, positive pid: never a process group.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A request to cm-api with its headers in the answer.
fn send(server: &Server, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Response {
    http::request(server.port, method, path, headers, body).unwrap()
}

/// The value of cookie `name` in a `Set-Cookie` header of `answer`.
fn set_cookie(answer: &Response, name: &str) -> Option<String> {
    answer
        .headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .filter_map(|(_, v)| v.split(';').next()?.trim().strip_prefix(&format!("{name}=")))
        .map(str::to_owned)
        .next()
}

#[test]
fn the_toolbox_worker_vouches_for_its_tokens_and_sessions() {
    if !cm_testkit::require(
        "python3",
        &["-m", "venv", "--help"],
        "the real ToolBox worker (toolboxv2[web] from PyPI)",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let venv = python_venv(dir.path(), "toolbox-venv", &["toolboxv2[web]==0.1.28"]);
    eprintln!("toolbox venv installed in {:?}", started.elapsed());
    let started = Instant::now();
    for sub in ["home/.config", "data/keys", "work"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let run = format!("{}-{nanos}", std::process::id());
    let jwt_secret = format!("cm-test-worker-jwt-secret-{run}-0123456789abcdef");
    let env = toolbox_env(dir.path(), &jwt_secret);
    let (alice, bob, boss) = ("tbw_alice", "tbw_bob", "tbw_boss");

    let _lock = worker_lock();
    let seeded = python(
        &venv,
        dir.path(),
        &env,
        SEED,
        &[
            &format!("{alice}:alice:1"),
            &format!("{bob}:bob:1"),
            &format!("{boss}:boss:10"),
        ],
    );
    assert!(seeded.contains("SEEDED 3"), "{seeded}");
    let minted = python(&venv, dir.path(), &env, MINT, &[alice, bob, boss]);
    let tokens: Value = minted
        .lines()
        .find_map(|l| l.strip_prefix("TOKENS "))
        .map(|json| serde_json::from_str(json).unwrap())
        .unwrap_or_else(|| panic!("the ToolBox minted nothing: {minted}"));
    let token = |name: &str| tokens[name].as_str().unwrap().to_owned();
    let mut worker = Worker::start(&venv, dir.path(), &env);

    // cm-api asks the worker, with no local secret at all.
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[nginx]\nenabled = false\n[labels]\n\"cm.test\" = \"tbw-{run}\"\n\
             [auth.toolbox]\nvalidate_url = \"{}/\"\nadmin_level = 10\nvalidate_timeout_ms = 2000\nsession_cookie_on_api = true\n",
            worker.url()
        ),
    )
    .unwrap();
    let admin = format!("toolbox-worker-admin-key-{run}");
    let vars = [
        ("CM_CONFIG", config.display().to_string()),
        ("CM_DB", dir.path().join("cm.db").display().to_string()),
        ("CM_LOG", "warn".to_owned()),
        ("CONTAINER_ADMIN_KEY", admin),
    ];
    let server = Server::start(&vars, &["TB_JWT_SECRET"]);
    let call = |credential: &str, function: &str, body: Value| {
        let bearer = format!("Bearer {credential}");
        server.request("POST", &api(function), &[("Authorization", &bearer)], Some(&body))
    };

    // Alice's token, checked by the worker: she is herself, sees her own (empty) listing and
    // not Bob's; a level at admin_level is the admin.
    let (status, me) = call(&token("alice"), "whoami", json!({}));
    assert_eq!((status, me), (200, json!({"role": "user", "user_id": alice})));
    let (status, listed) = call(&token("alice"), "list_containers", json!({}));
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["containers"], json!([]));
    let (status, refused) = call(&token("alice"), "list_containers", json!({"user_id": bob}));
    assert_eq!(status, 403, "{refused}");
    let (status, refused) = call(&token("alice"), "create_user_token", json!({"user_id": alice}));
    assert_eq!(status, 403, "{refused}");
    let (status, me) = call(&token("boss"), "whoami", json!({}));
    assert_eq!((status, me), (200, json!({"role": "admin"})));

    // Expired, tampered and unknown users' tokens: 401, the worker's verdict in the message.
    let alice_parts: Vec<String> = token("alice").split('.').map(str::to_owned).collect();
    let bob_parts: Vec<String> = token("bob").split('.').map(str::to_owned).collect();
    let tampered = format!("{}.{}.{}", alice_parts[0], bob_parts[1], alice_parts[2]);
    for (what, refused) in [
        ("expired", token("expired")),
        ("tampered", tampered),
        ("unknown user", token("stranger")),
    ] {
        let (status, answer) = call(&refused, "whoami", json!({}));
        assert_eq!(status, 401, "{what}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Invalid or expired session"),
            "{what}: {answer}"
        );
    }

    // The route check: alice's token reaches her containers' URL (nothing is there), not Bob's.
    let check = |user: &str, headers: &[(&str, &str)]| {
        let mut all = vec![("X-CM-User", user), ("X-CM-Type", "cli_v4")];
        all.extend_from_slice(headers);
        let answer = send(&server, "GET", "/_cm/check", &all, None);
        (
            answer.status,
            answer.header("x-cm-reason").unwrap_or_default().to_owned(),
        )
    };
    let bearer = format!("Bearer {}", token("alice"));
    assert_eq!(check(alice, &[]), (401, "sign_in".to_owned()));
    assert_eq!(
        check(alice, &[("Authorization", &bearer)]),
        (403, "unknown".to_owned())
    );
    assert_eq!(
        check(bob, &[("Authorization", &bearer)]),
        (403, "forbidden".to_owned())
    );

    // The worker's own session cookie, as /validateSession sets it, is a credential too.
    let validated = http::request(
        worker.port,
        "POST",
        "/validateSession",
        &[("Authorization", &bearer), ("Content-Type", "application/json")],
        Some("{}"),
    )
    .unwrap();
    assert_eq!(validated.status, 200, "{}", validated.body);
    let session = set_cookie(&validated, "tb_session").expect("the worker set tb_session");
    let cookie = format!("tb_session={session}");
    let with_cookie = |path: &str, extra: &[(&str, &str)]| {
        let mut headers = vec![("Cookie", cookie.as_str())];
        headers.extend_from_slice(extra);
        send(&server, "GET", path, &headers, None)
    };
    let me = with_cookie(&api("whoami"), &[]);
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(
        serde_json::from_str::<Value>(&me.body).unwrap(),
        json!({"role": "user", "user_id": alice})
    );
    let mine = with_cookie(&format!("{}?user_id={bob}", api("list_containers")), &[]);
    assert_eq!(mine.status, 403, "{}", mine.body);
    // Sent along by another site's page: refused before anything is checked.
    let cross = with_cookie(&api("whoami"), &[("Sec-Fetch-Site", "cross-site")]);
    assert_eq!(cross.status, 403, "{}", cross.body);
    let forged = send(
        &server,
        "GET",
        &api("whoami"),
        &[("Cookie", &format!("tb_session={session}x"))],
        None,
    );
    assert_eq!(forged.status, 401, "{}", forged.body);
    // At the route check: the browser signed in at ToolBox needs no sign-in here.
    assert_eq!(check(alice, &[("Cookie", &cookie)]), (403, "unknown".to_owned()));
    assert_eq!(check(bob, &[("Cookie", &cookie)]), (403, "forbidden".to_owned()));

    // The dashboard's login offers the session, and it starts a dashboard session.
    let page = with_cookie("/login", &[]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("toolbox-login-form"), "{}", page.body);
    let login_token = set_cookie(&page, "cm_login").unwrap();
    let both = format!("{cookie}; cm_login={login_token}");
    let form = format!("login_token={login_token}&toolbox_session=1");
    let logged_in = send(
        &server,
        "POST",
        "/login",
        &[
            ("Cookie", &both),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(&form),
    );
    assert_eq!(logged_in.status, 303, "{}", logged_in.body);
    assert_eq!(logged_in.header("location"), Some("/"));
    let dashboard_session = set_cookie(&logged_in, "cm_session").expect("a dashboard session");
    let home = send(
        &server,
        "GET",
        "/",
        &[("Cookie", &format!("cm_session={dashboard_session}"))],
        None,
    );
    assert_eq!(home.status, 200);
    assert!(home.body.contains(alice), "the dashboard shows alice's page");

    // The worker stops: what it vouched for a moment ago is still known (the cache), a
    // credential it was never asked about is 503, naming the worker.
    worker.stop();
    let (status, me) = call(&token("alice"), "whoami", json!({}));
    assert_eq!(status, 200, "cached: {me}");
    let (status, down) = call(&token("later"), "whoami", json!({}));
    assert_eq!(status, 503, "{down}");
    let message = down["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("ToolBox worker at {}", worker.url())),
        "{message}"
    );
    // The route check says so (nginx passes only 401 and 403 on), and the refusal page is 503.
    std::thread::sleep(Duration::from_millis(1100));
    let later = format!("Bearer {}", token("later_route"));
    assert_eq!(
        check(alice, &[("Authorization", &later)]),
        (403, "sign_in_unavailable".to_owned())
    );
    let denied = send(
        &server,
        "GET",
        "/_cm/denied",
        &[("X-CM-Reason", "sign_in_unavailable")],
        None,
    );
    assert_eq!(denied.status, 503, "{}", denied.body);
    // Nothing of the credentials reached cm-api's log.
    let log = server.stop();
    for secret in [token("alice"), token("later"), session] {
        assert!(!log.contains(&secret), "a credential in the log: {log}");
    }
    eprintln!(
        "toolbox worker test ran in {:?} after the install",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// In process: where the cookie is read, and what a silent worker looks like.

/// A session cookie the stand-in vouches for (alice's), one it refuses, one it can not check.
const GOOD: &str = "eyJhbGljZSI6MX0.c2lnbmF0dXJl";
const FORGED: &str = "eyJib2IiOjF9.Zm9yZ2Vk";
const SILENT: &str = "eyJkb3duIjoxfQ.c2lnbmF0dXJl";

/// Stands in for the worker's verifier (cm-toolbox's `WorkerSessions`).
struct StandIn;

type Verified<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = cm_core::Result<Option<cm_core::ExternalIdentity>>> + Send + 'a>,
>;

impl cm_core::IdentityVerifier for StandIn {
    fn verify<'a, 'b, 'c>(&'a self, presented: &'b cm_core::Secret) -> Verified<'c>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        Box::pin(async move {
            match presented.expose() {
                GOOD => Ok(Some(cm_core::ExternalIdentity {
                    user: cm_core::UserId::parse("alice").unwrap(),
                    admin: false,
                    expires: std::time::SystemTime::now() + Duration::from_secs(30),
                })),
                SILENT => Err(cm_core::Error::new(
                    cm_core::ErrorKind::Unavailable,
                    "the ToolBox worker at http://127.0.0.1:9 can not be reached",
                )),
                other if other.starts_with("eyJ") => Err(cm_core::Error::new(
                    cm_core::ErrorKind::Unauthorized,
                    "the ToolBox session was refused",
                )),
                _ => Ok(None),
            }
        })
    }
}

fn app_with(toolbox: &str) -> TestApp {
    let config = cm_core::Config::from_toml(&format!("[auth.toolbox]\n{toolbox}\n")).unwrap();
    let world = cm_core::testing::FakeWorld::with_config(config);
    let auth = cm_core::testing::fake_auth(Some(ADMIN)).with_external(std::sync::Arc::new(StandIn));
    TestApp::over(world, auth)
}

fn from(address: [u8; 4], req: actix_web::test::TestRequest) -> actix_web::test::TestRequest {
    req.peer_addr(std::net::SocketAddr::from((address, 40000)))
}

fn whoami_with_cookie(value: &str) -> actix_web::test::TestRequest {
    actix_web::test::TestRequest::get()
        .uri(&api("whoami"))
        .insert_header(("Cookie", format!("other=1; tb_session={value}")))
}

fn check_with(headers: &[(&str, &str)]) -> actix_web::test::TestRequest {
    let mut req = actix_web::test::TestRequest::get()
        .uri("/_cm/check")
        .insert_header(("X-CM-User", "alice"))
        .insert_header(("X-CM-Type", "cli_v4"));
    for (name, value) in headers {
        req = req.insert_header((*name, *value));
    }
    req
}

async fn reason(app: &TestApp, req: actix_web::test::TestRequest) -> (u16, String) {
    let (status, headers, _) = app.send_full(req).await;
    let reason = headers
        .get("x-cm-reason")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status.as_u16(), reason)
}

#[actix_web::test]
async fn the_session_cookie_counts_only_with_validate_url_and_a_silent_worker_is_503() {
    // The API reads the cookie only when told no tenant app shares its origin.
    let shared = app_with("validate_url = \"http://127.0.0.1:9\"");
    let (status, _) = shared.send(whoami_with_cookie(GOOD)).await;
    assert_eq!(
        status.as_u16(),
        401,
        "the cookie is not a credential on a shared origin"
    );
    let app = app_with(
        "validate_url = \"http://127.0.0.1:9\"\nsession_cookie_on_api = true\n[types.preview_server]\naccess = \"public\"",
    );
    app.create("alice", "preview_server").await;
    // The API: the cookie stands for its user; refused is 401; unchecked is 503, naming the worker.
    let (status, me) = app.send(whoami_with_cookie(GOOD)).await;
    assert_eq!(
        (status.as_u16(), me),
        (200, json!({"role": "user", "user_id": "alice"}))
    );
    let (status, refused) = app.send(whoami_with_cookie(FORGED)).await;
    assert_eq!(status.as_u16(), 401, "{refused}");
    let (status, silent) = app.send(whoami_with_cookie(SILENT)).await;
    assert_eq!(status.as_u16(), 503, "{silent}");
    assert!(
        silent["error"]["message"]
            .as_str()
            .unwrap()
            .contains("http://127.0.0.1:9"),
        "{silent}"
    );
    // A bearer header wins over the cookie; a cookie sent by another site's page is refused.
    let (status, _) = app
        .send(whoami_with_cookie(GOOD).insert_header(("Authorization", format!("Bearer {FORGED}"))))
        .await;
    assert_eq!(status.as_u16(), 401);
    let (status, cross) = app
        .send(whoami_with_cookie(GOOD).insert_header(("Sec-Fetch-Site", "cross-site")))
        .await;
    assert_eq!(status.as_u16(), 403, "{cross}");

    // The route check: the cookie signs in; a silent worker is a 403 whose reason /_cm/denied
    // turns into 503 (nginx passes only 401 and 403 on), for the cookie and for a bearer header.
    let cookie = |value: &str| format!("tb_session={value}");
    assert_eq!(reason(&app, check_with(&[])).await, (401, "sign_in".into()));
    assert_eq!(
        reason(&app, check_with(&[("Cookie", &cookie(GOOD))])).await,
        (403, "unknown".into())
    );
    assert_eq!(
        reason(&app, check_with(&[("Cookie", &cookie(FORGED))])).await,
        (401, "sign_in".into())
    );
    assert_eq!(
        reason(&app, check_with(&[("Cookie", &cookie(SILENT))])).await,
        (403, "sign_in_unavailable".into())
    );
    let silent_bearer = format!("Bearer {SILENT}");
    assert_eq!(
        reason(&app, check_with(&[("Authorization", &silent_bearer)])).await,
        (403, "sign_in_unavailable".into())
    );
    // A public app opens all the same.
    let public = check_with(&[("Cookie", &cookie(SILENT))]).insert_header(("X-CM-Type", "preview_server"));
    assert_eq!(reason(&app, public).await, (200, String::new()));
    let (status, page) = app
        .send(
            actix_web::test::TestRequest::get()
                .uri("/_cm/denied")
                .insert_header(("X-CM-Reason", "sign_in_unavailable")),
        )
        .await;
    assert_eq!(status.as_u16(), 503);
    assert!(page.as_str().unwrap().contains("ToolBox"), "{page}");

    // A silent worker is not the caller's failed sign-in: more than the limit (30 a minute) of
    // them leave the address free; wrong credentials do count.
    for _ in 0..40 {
        let (status, _) = app.send(from([10, 0, 0, 1], whoami_with_cookie(SILENT))).await;
        assert_eq!(status.as_u16(), 503);
    }
    let (status, _) = app.send(from([10, 0, 0, 1], whoami_with_cookie(GOOD))).await;
    assert_eq!(status.as_u16(), 200);
    for _ in 0..30 {
        app.send(from([10, 0, 0, 2], whoami_with_cookie(FORGED))).await;
    }
    let (status, _) = app.send(from([10, 0, 0, 2], whoami_with_cookie(GOOD))).await;
    assert_eq!(status.as_u16(), 429);

    // The dashboard's login offers the session only when one came along.
    let login = |cookie: Option<&str>| {
        let req = actix_web::test::TestRequest::get().uri("/login");
        match cookie {
            Some(value) => req.insert_header(("Cookie", format!("tb_session={value}"))),
            None => req,
        }
    };
    let (_, page) = app.send(login(Some(GOOD))).await;
    assert!(page.as_str().unwrap().contains("toolbox-login-form"));
    let (_, page) = app.send(login(None)).await;
    assert!(!page.as_str().unwrap().contains("toolbox-login-form"));

    // Without validate_url, the cookie is nobody's business: never read, never sent anywhere.
    let local_only = app_with("jwt_secret_env = \"TB_JWT_SECRET\"");
    let (status, answer) = local_only.send(whoami_with_cookie(GOOD)).await;
    assert_eq!(status.as_u16(), 401, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing credentials")
    );
    assert_eq!(
        reason(&local_only, check_with(&[("Cookie", &cookie(GOOD))])).await,
        (401, "sign_in".into())
    );
    let (_, page) = local_only.send(login(Some(GOOD))).await;
    assert!(!page.as_str().unwrap().contains("toolbox-login-form"));
}
