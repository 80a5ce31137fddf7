//! The real `cm-api` binary: the admin key it generates on first start, and one end-to-end run
//! against the real Docker engine (create, exec, logs, delete over HTTP).

use std::time::Duration;

use cm_testkit::{TestEnv, docker_ok, require_docker, wait_until};
use serde_json::{Value, json};

use crate::helpers::{Server, api, empty_config, http, open_stream};

#[test]
fn a_generated_admin_key_is_printed_once_works_and_is_never_logged() {
    let dir = tempfile_dir();
    let vars = vec![
        ("CM_CONFIG", empty_config(dir.path())),
        ("CM_DB", dir.path().join("cm.db").display().to_string()),
        ("CM_LOG", "debug".to_owned()),
    ];
    let first = Server::start(&vars, &["CONTAINER_ADMIN_KEY"]);
    let stderr = first.stderr();
    // The key goes to a file only its owner may read; the output names the file, not the key.
    let key_file = dir.path().join(cm_api::ADMIN_KEY_FILE);
    assert!(stderr.contains(&key_file.display().to_string()), "{stderr}");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key_file).unwrap().permissions()) & 0o777,
        0o600
    );
    let key = std::fs::read_to_string(&key_file).unwrap().trim().to_owned();
    assert!(key.starts_with("cmk_"), "{key}");
    assert!(
        !stderr.contains(&key),
        "the key never reaches the output: {stderr}"
    );
    assert!(stderr.contains("rotate_admin_key"), "{stderr}");
    let bearer = format!("Bearer {key}");
    let (status, me) = first.request("GET", &api("whoami"), &[("Authorization", &bearer)], None);
    assert_eq!((status, me), (200, json!({"role": "admin"})));
    let (status, _) = first.request("GET", &format!("{}?admin_key={key}", api("whoami")), &[], None);
    assert_eq!(status, 200);
    let (status, _) = first.request("GET", &api("list_containers"), &[], None);
    assert_eq!(status, 401);

    // Another process (here: the same wiring as `cm`, in this test process) works on the same
    // database at the same time: a token it creates is accepted by the running server at once.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let settings = cm_wiring::Settings {
        config: cm_core::Config::from_toml("[nginx]\nenabled = false\n").unwrap(),
        database: dir.path().join("cm.db"),
    };
    let other = runtime.block_on(cm_wiring::build_app(&settings)).unwrap();
    let alice = cm_core::UserId::parse("alice").unwrap();
    let (_, token) = runtime.block_on(other.auth.create_user_token(&alice)).unwrap();
    let token_header = format!("Bearer {}", token.expose());
    let (status, me) = first.request("GET", &api("whoami"), &[("Authorization", &token_header)], None);
    assert_eq!((status, me), (200, json!({"role": "user", "user_id": "alice"})));
    let (status, listed) = first.request(
        "GET",
        &api("list_containers"),
        &[("Authorization", &token_header)],
        None,
    );
    assert_eq!((status, listed), (200, json!({"containers": [], "stale": null})));

    let logged = first.stop();
    assert!(!logged.contains(token.expose()), "{logged}");
    assert_eq!(
        logged.matches(&key).count(),
        0,
        "the key is never logged:\n{logged}"
    );
    assert!(
        logged.contains("path=/api/ContainerManager/whoami status=200"),
        "{logged}"
    );

    // A second start finds the stored hash: no new key, the old one still works.
    let second = Server::start(&vars, &["CONTAINER_ADMIN_KEY"]);
    let (status, _) = second.request("GET", &api("whoami"), &[("Authorization", &bearer)], None);
    assert_eq!(status, 200);
    let logged = second.stop();
    assert!(!logged.contains("cmk_"), "{logged}");
}

#[test]
fn end_to_end_over_http_on_the_real_engine() {
    if !require_docker() {
        return;
    }
    let env = TestEnv::new();
    let admin = "e2e-admin-key-0123456789abcdef";
    let mut vars = env.vars();
    vars.push(("CONTAINER_ADMIN_KEY", admin.to_owned()));
    let server = Server::start(&vars, &[]);
    let auth = format!("Bearer {admin}");
    let headers = [("Authorization", auth.as_str())];
    let user = env.user("api");
    let name = format!("{user}_custom");

    let (status, health) = server.request("GET", &api("docker_health"), &headers, None);
    assert_eq!(status, 200, "{health}");

    let (status, created) = server.request(
        "POST",
        &api("create_container"),
        &headers,
        Some(&json!({"user_id": user, "container_type": "custom", "env": {"SECRET_THING": "hidden"}})),
    );
    assert_eq!(status, 201, "{created}");
    let container = &created["container"];
    assert_eq!(container["container_name"], name.as_str());
    assert_eq!(container["status"], "running");
    assert_eq!(container["env"]["SECRET_THING"], "***");
    let port = u16::try_from(container["port"].as_u64().unwrap()).unwrap();

    let exec = |command: Value| {
        server.request(
            "POST",
            &api("container_exec"),
            &headers,
            Some(&json!({"container_id": name, "command": command, "timeout": 20})),
        )
    };
    let (status, ok) = exec(json!("echo hello from exec"));
    assert_eq!(status, 200, "{ok}");
    assert_eq!(
        ok,
        json!({"exit_code": 0, "stdout": "hello from exec\n", "stderr": ""})
    );
    let (_, three) = exec(json!(["sh", "-c", "echo to-stderr >&2; exit 3"]));
    assert_eq!(three["exit_code"], 3);
    assert_eq!(three["stderr"], "to-stderr\n");
    // The owner's token reaches the container; it can not delete it.
    let (status, token) = server.request(
        "POST",
        &api("create_user_token"),
        &headers,
        Some(&json!({"user_id": user})),
    );
    assert_eq!(status, 201, "{token}");
    let owner = format!("Bearer {}", token["token"].as_str().unwrap());
    let (status, own) = server.request(
        "POST",
        &api("container_exec"),
        &[("Authorization", owner.as_str())],
        Some(&json!({"container_id": name, "command": "id -un"})),
    );
    assert_eq!(status, 200, "{own}");
    let (status, _) = server.request(
        "POST",
        &api("delete_container"),
        &[("Authorization", owner.as_str())],
        Some(&json!({"container_id": name, "force": true, "purge": true})),
    );
    assert_eq!(status, 403, "the data is the admin's to delete");
    let (_, secret) = exec(json!("printenv SECRET_THING"));
    assert_eq!(secret["stdout"], "hidden\n", "the container has the real value");

    // The preview server logs one line per request.
    assert!(wait_until(Duration::from_secs(30), || {
        matches!(http(port, "GET", "/e2e-marker", &[], None), Some((200, _)))
    }));
    let logs_path = format!("{}?container_id={name}&tail=20", api("container_logs"));
    assert!(
        wait_until(Duration::from_secs(10), || {
            let (status, logs) = server.request("GET", &logs_path, &headers, None);
            status == 200 && logs["logs"].as_str().is_some_and(|l| l.contains("/e2e-marker"))
        }),
        "the request never showed in the logs"
    );

    let (status, refused) = server.request(
        "POST",
        &api("delete_container"),
        &headers,
        Some(&json!({"container_id": name})),
    );
    assert_eq!(status, 409, "{refused}");

    // follow streams new output until the container stops. The engine starts following a moment
    // after the answer's head: requests are made until one shows in the stream.
    let follow_path = format!("{}?container_id={name}&tail=0&follow=true", api("container_logs"));
    let mut follow = open_stream(server.port, "GET", &follow_path, &headers).expect("the follow answers");
    assert_eq!(follow.status, 200);
    let seen = wait_until(Duration::from_secs(30), || {
        matches!(http(port, "GET", "/follow-marker", &[], None), Some((200, _)))
            && follow.wait_for("/follow-marker", Duration::from_secs(1))
    });
    assert!(seen, "the follow never showed a new request");
    let (status, stopped) = server.request(
        "POST",
        &api("stop_container"),
        &headers,
        Some(&json!({"container_id": name})),
    );
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(stopped["container"]["status"], "exited");
    let followed = follow
        .finish(Duration::from_secs(30))
        .expect("the follow ends when the container stops");
    assert!(followed.contains("/follow-marker"), "{followed:?}");
    assert!(
        !followed.contains("/e2e-marker"),
        "tail=0 starts at the end: {followed:?}"
    );
    let (status, deleted) = server.request(
        "POST",
        &api("delete_container"),
        &headers,
        Some(&json!({"container_id": name, "force": true, "purge": true})),
    );
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["purged"], true);

    let filter = env.label_filter();
    assert_eq!(docker_ok(&["ps", "-aq", "--filter", &filter]), "");
    assert_eq!(docker_ok(&["volume", "ls", "-q", "--filter", &filter]), "");
    assert_eq!(docker_ok(&["network", "ls", "-q", "--filter", &filter]), "");
    let (status, _) = server.request(
        "GET",
        &format!("{}?container_id={name}", api("get_container")),
        &headers,
        None,
    );
    assert_eq!(status, 404);
    let logged = server.stop();
    assert!(!logged.contains(admin), "{logged}");
}

fn tempfile_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn failed_sign_ins_are_limited_per_address_even_in_parallel() {
    let dir = tempfile_dir();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[nginx]\nenabled = false\n[limits]\nauth_failures_per_minute = 5\n",
    )
    .unwrap();
    let admin = "limits-admin-key-0123456789abcdef";
    let vars = vec![
        ("CM_CONFIG", config.display().to_string()),
        ("CM_DB", dir.path().join("cm.db").display().to_string()),
        ("CONTAINER_ADMIN_KEY", admin.to_owned()),
    ];
    let server = Server::start(&vars, &[]);
    let good = format!("Bearer {admin}");
    // Right credentials do not count, however many.
    for _ in 0..20 {
        let (status, _) = server.request("GET", &api("whoami"), &[("Authorization", &good)], None);
        assert_eq!(status, 200);
    }
    // 16 wrong ones at once: at most 5 are even checked, the rest are refused unchecked.
    let port = server.port;
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                scope.spawn(move || {
                    let bad = format!("Bearer cmk_wrong_{i:02}_0000000000000000000000000000000000000000");
                    http(port, "GET", &api("whoami"), &[("Authorization", &bad)], None)
                        .unwrap()
                        .0
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let refused = statuses.iter().filter(|&&s| s == 429).count();
    let checked = statuses.iter().filter(|&&s| s == 401).count();
    assert_eq!(refused + checked, 16, "{statuses:?}");
    assert!(checked <= 5 && refused >= 11, "{statuses:?}");
    // The window is full: the address waits, whatever it sends, with Retry-After.
    let answer = cm_testkit::http::get(port, &api("whoami"), &[("Authorization", &good)]).unwrap();
    assert_eq!(answer.status, 429, "{answer:?}");
    assert!(
        answer
            .header("retry-after")
            .is_some_and(|s| s.parse::<u64>().is_ok_and(|s| s <= 60))
    );
    assert!(answer.body.contains("rate_limited"), "{}", answer.body);
    // The dashboard's login shares the count.
    let page = cm_testkit::http::get(port, "/login", &[]).unwrap();
    let cookie = page
        .headers
        .iter()
        .find(|(k, v)| k == "set-cookie" && v.starts_with("cm_login="))
        .map(|(_, v)| v.split(';').next().unwrap().to_owned())
        .unwrap();
    let token = page.body.split("name=\"login_token\" value=\"").nth(1).unwrap();
    let token = &token[..token.find('"').unwrap()];
    let form = serde_urlencoded::to_string([("login_token", token), ("key", admin)]).unwrap();
    let login = cm_testkit::http::request(
        port,
        "POST",
        "/login",
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(&form),
    )
    .unwrap();
    assert_eq!(login.status, 429, "{login:?}");
    assert!(login.body.contains("too many failed logins"), "{}", login.body);
}

/// SIGTERM (systemd's stop, `docker stop`) ends open log follows cleanly and stops cm-api at once,
/// instead of waiting out the follows (30 s before).
#[test]
fn sigterm_ends_followed_logs_and_stops_the_server_promptly() {
    if !require_docker() {
        return;
    }
    let env = TestEnv::new();
    let admin = "sigterm-admin-key-0123456789";
    let mut vars = env.vars();
    vars.push(("CONTAINER_ADMIN_KEY", admin.to_owned()));
    let mut server = Server::start(&vars, &[]);
    let auth = format!("Bearer {admin}");
    let headers = [("Authorization", auth.as_str())];
    let user = env.user("sigterm");
    let (status, created) = server.request(
        "POST",
        &api("create_container"),
        &headers,
        Some(&json!({"user_id": user, "container_type": "custom"})),
    );
    assert_eq!(status, 201, "{created}");
    let follow_path = format!(
        // A few lines: after the start line may come the create's probe of the app (`HEAD /`).
        "{}?container_id={user}_custom&tail=5&follow=true",
        api("container_logs")
    );
    let mut follow = open_stream(server.port, "GET", &follow_path, &headers).expect("the follow answers");
    assert_eq!(follow.status, 200);
    // The follow is open once the app's start line came through it.
    assert!(
        follow.wait_for("listening", Duration::from_secs(30)),
        "the follow never showed the app's start line"
    );
    let exited = server.terminate(Duration::from_secs(15));
    let status =
        exited.unwrap_or_else(|| panic!("cm-api still runs 15 s after SIGTERM:\n{}", server.stderr()));
    assert!(status.success(), "{status:?}\n{}", server.stderr());
    let followed = follow
        .finish(Duration::from_secs(5))
        .expect("the follow ended with a complete answer");
    assert!(followed.contains("listening"), "{followed:?}");
}
