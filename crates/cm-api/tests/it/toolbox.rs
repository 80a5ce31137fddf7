//! The ToolBox answer mode against the real `cm-api` binary and engine: the seed's calls and every
//! function of the original module, with its parameter names and the admin key in the body or
//! the query string, answer in the ToolBox worker's envelope with the fields ToolBox clients read.

use cm_testkit::{TestEnv, require_docker};
use serde_json::{Value, json};

use crate::helpers::{ALICE_KEY, Server, api, python_venv};

/// The data of a ToolBox answer, after checking the envelope around it.
fn data_of(function: &str, status: u16, answer: &Value) -> Value {
    assert_eq!(status, 200, "{function}: {answer}");
    assert_eq!(answer["error"], "none", "{function}: {answer}");
    assert_eq!(answer["info"]["exec_code"], 0, "{function}: {answer}");
    assert_eq!(answer["info"]["help_text"], "OK");
    assert_eq!(answer["result"]["data_to"], "REMOTE");
    assert_eq!(answer["result"]["data_type"], "json");
    assert_eq!(
        answer["origin"],
        json!(["ContainerManager", function, "tb"]),
        "{answer}"
    );
    answer["result"]["data"].clone()
}

#[test]
fn toolbox_clients_get_the_workers_envelope_and_the_original_fields() {
    if !require_docker() {
        return;
    }
    let env = TestEnv::new();
    env.set_config_extra("[api]\nenvelope = \"toolbox\"\n");
    let admin = format!("toolbox-admin-key-{}", env.run);
    let mut vars = env.vars();
    vars.push(("CONTAINER_ADMIN_KEY", admin.clone()));
    vars.push(("CM_SERVER_HOST", "tb.example".to_owned()));
    let server = Server::start(&vars, &[]);
    let user = env.user("tb");
    let call = |function: &str, body: Value| {
        let (status, answer) = server.request("POST", &api(function), &[], Some(&body));
        data_of(function, status, &answer)
    };
    let get = |function: &str, query: &str| {
        let path = if query.is_empty() {
            format!("{}?admin_key={admin}", api(function))
        } else {
            format!("{}?{query}&admin_key={admin}", api(function))
        };
        let (status, answer) = server.request("GET", &path, &[], None);
        data_of(function, status, &answer)
    };

    // The seed's create: the admin key in the body, the original's names, type defaulting to cli_v4.
    let created = call(
        "create_container",
        json!({
            "user_id": user,
            "admin_key": admin,
            "environment": {"GREETING": "hi"},
            "memory_limit": "512m",
            "cpu_limit": "0.5",
            "ssh_public_key": ALICE_KEY,
        }),
    );
    let short = created["container_id"].as_str().unwrap().to_owned();
    assert_eq!(short.len(), 12, "{created}");
    let name = format!("{user}_cli_v4");
    assert_eq!(created["container_name"], name.as_str());
    assert_eq!(created["url"], format!("/container/{user}/cli_v4"));
    assert_eq!(created["status"], "running");
    assert!(created["port"].is_u64());
    let ssh_port = created["ssh_port"].as_u64().unwrap();
    assert_eq!(
        created["ssh_connection"],
        format!("ssh -p {ssh_port} cli@tb.example")
    );
    // Today's record rides along, its full id as docker_id.
    assert!(
        created["container"]["docker_id"]
            .as_str()
            .unwrap()
            .starts_with(&short)
    );

    // The seed's reads, the admin key in the query string; a short id names the container.
    let listed = get("list_containers", &format!("user_id={user}"));
    assert_eq!(listed["count"], 1);
    let record = &listed["containers"][0];
    assert_eq!(record["container_id"], short.as_str());
    assert_eq!(record["url"], format!("/container/{user}/cli_v4"));
    assert!(record["uptime"].as_f64().is_some(), "{record}");
    let got = get("get_container", &format!("container_id={short}"));
    assert_eq!(got["docker_status"], "running");
    assert_eq!(got["container"]["container_name"], name.as_str());
    assert!(got["stats"]["memory_mb"].as_f64().unwrap() > 0.0, "{got}");
    let logs = get("container_logs", &format!("container_id={short}&tail=5"));
    assert!(logs["logs"].is_string());
    assert_eq!(logs["container_id"], short.as_str());

    // exec: one `output`, the exit code.
    let ran = call(
        "container_exec",
        json!({"container_id": short, "command": "sh -c 'echo out; echo err >&2; exit 2'", "admin_key": admin}),
    );
    assert_eq!(ran["exit_code"], 2);
    assert_eq!(ran["output"], "out\nerr\n");
    assert_eq!(ran["container_id"], short.as_str());

    // Lifecycle answers carry the new status.
    let stopped = call(
        "stop_container",
        json!({"container_id": short, "admin_key": admin}),
    );
    assert_eq!(stopped["status"], "exited");
    let started = call(
        "start_container",
        json!({"container_id": short, "admin_key": admin}),
    );
    assert_eq!(started["status"], "running");
    let restarted = call(
        "restart_container",
        json!({"container_id": short, "admin_key": admin}),
    );
    assert_eq!(restarted["status"], "running");

    // SSH, as the seed shows it.
    let added = call(
        "add_ssh_key_to_container",
        json!({"container_id": short, "ssh_public_key": ALICE_KEY, "admin_key": admin}),
    );
    assert_eq!(added["ssh_port"], ssh_port);
    assert_eq!(added["username"], "cli");
    assert_eq!(added["server_ip"], "tb.example");
    let info = get("get_container_ssh_info", &format!("container_id={short}"));
    assert_eq!(
        info["connection_string"],
        format!("ssh -p {ssh_port} cli@tb.example")
    );
    assert_eq!(info["container_name"], name.as_str());
    let ssh_list = get("list_ssh_containers", &format!("user_id={user}"));
    assert_eq!(ssh_list["count"], 1);
    let health = get("docker_health", "");
    assert_eq!(health["docker_available"], true);
    assert_eq!(health["status"], "online");
    // The engine is shared with other suites: only the relations between the counts are fixed.
    let (total, managed, external) = (
        health["total_containers"].as_u64().unwrap(),
        health["tb_managed"].as_u64().unwrap(),
        health["external"].as_u64().unwrap(),
    );
    assert!(managed >= 1 && managed + external == total, "{health}");
    let all = get("list_all_docker_containers", "");
    assert_eq!(all["docker_available"], true);
    let ours = all["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} is not listed: {all}"));
    assert_eq!(ours["container_id"], short.as_str());
    assert_eq!(ours["is_tb_managed"], true);
    assert_eq!(ours["labels"]["user-id"], user.as_str());
    assert_eq!(ours["ports"]["2222/tcp"], ssh_port);
    let services = get("discover_services", "");
    assert_eq!(services["docker_available"], true);
    assert!(services["services"].is_array(), "{services}");

    // The user's own calls, with a user token.
    let (status, token) = server.request(
        "POST",
        &api("create_user_token"),
        &[],
        Some(&json!({"user_id": user, "admin_key": admin})),
    );
    let token = data_of("create_user_token", status, &token)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bearer = format!("Bearer {token}");
    let (status, mine) = server.request(
        "GET",
        &api("get_my_ssh_info"),
        &[("Authorization", &bearer)],
        None,
    );
    let mine = data_of("get_my_ssh_info", status, &mine);
    assert_eq!(mine["server_ip"], "tb.example");
    assert_eq!(mine["containers"][0]["container_id"], short.as_str());

    // Errors keep their status, flat for tbjs; one request may ask for native answers.
    let (status, refused) = server.request(
        "GET",
        &format!("{}?container_id=nope", api("get_container")),
        &[("Authorization", &bearer)],
        None,
    );
    assert_eq!(status, 404);
    assert_eq!(refused["error"], "not_found", "{refused}");
    assert!(refused["message"].is_string());
    let (status, native) = server.request(
        "GET",
        &format!("{}?user_id={user}&envelope=native", api("list_containers")),
        &[("Authorization", &bearer)],
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(native["containers"][0]["container_name"], name.as_str());
    assert!(native.get("result").is_none());
    let (status, bad) = server.request(
        "GET",
        &format!("{}?envelope=xml", api("whoami")),
        &[("Authorization", &bearer)],
        None,
    );
    assert_eq!(status, 422, "{bad}");

    // The seed's delete: force, the admin key in the body.
    let deleted = call(
        "delete_container",
        json!({"container_id": short, "admin_key": admin, "force": true, "purge": true}),
    );
    assert_eq!(deleted["message"], format!("Container '{name}' deleted"));
    assert_eq!(deleted["container_id"], short.as_str());
}

/// What the real ToolBox mints, from a virtual environment with `toolboxv2==0.1.28` from PyPI:
/// CloudM access tokens for `alice`, `bob` and `boss` (level 10), alice's refresh token, and an
/// access token of alice's that expired (made with PyJWT, ToolBox's own JWT library).
const MINT: &str = r#"
import json, os, sys, time
import jwt
from toolboxv2.mods.CloudM.auth.jwt_tokens import _generate_access_token, _generate_refresh_token
alice, bob, boss = sys.argv[1:4]
secret = os.environ["TB_JWT_SECRET"]
tokens = {
    "alice": _generate_access_token(alice, "alice", 1),
    "bob": _generate_access_token(bob, "bob", 1),
    "boss": _generate_access_token(boss, "boss", 10),
    "refresh": _generate_refresh_token(alice),
    "expired": jwt.encode({"sub": alice, "user_id": alice, "level": 1, "type": "access",
                           "iat": time.time() - 1000, "exp": time.time() - 100}, secret, algorithm="HS256"),
}
print("TOKENS " + json.dumps(tokens))
"#;

/// The real ToolBox in a virtual environment under `dir` (a few tens of seconds from PyPI);
/// `None` (after a loud skip line) outside CI when Python is missing.
fn toolbox_venv(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    if !cm_testkit::require(
        "python3",
        &["-m", "venv", "--help"],
        "the real ToolBox (toolboxv2 from PyPI)",
    ) {
        return None;
    }
    Some(python_venv(dir, "toolbox-venv", &["toolboxv2==0.1.28"]))
}

#[test]
fn toolbox_users_sign_in_with_the_tokens_the_real_toolbox_mints() {
    if !require_docker() {
        return;
    }
    let env = TestEnv::new();
    let Some(venv) = toolbox_venv(env.path()) else {
        return;
    };
    let secret = format!("tb-worker-secret-{}-0123456789abcdef", env.run);
    let (alice, bob, boss) = (env.user("tba"), env.user("tbb"), env.user("boss"));
    let minted = std::process::Command::new("timeout")
        .args(["--kill-after=10", "120"])
        .arg(venv.join("bin/python"))
        .args(["-c", MINT, &alice, &bob, &boss])
        .current_dir(env.path())
        .env("HOME", env.path())
        .env("TB_JWT_SECRET", &secret)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&minted.stdout);
    let tokens: Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("TOKENS "))
        .map(|json| serde_json::from_str(json).unwrap())
        .unwrap_or_else(|| {
            panic!(
                "the ToolBox minted nothing: {stdout}{}",
                String::from_utf8_lossy(&minted.stderr)
            )
        });
    let token = |name: &str| tokens[name].as_str().unwrap().to_owned();

    env.set_config_extra("[auth.toolbox]\nadmin_level = 10\n");
    let admin = format!("toolbox-id-admin-key-{}", env.run);
    let mut vars = env.vars();
    vars.push(("CONTAINER_ADMIN_KEY", admin.clone()));
    vars.push(("TB_JWT_SECRET", secret.clone()));
    let server = Server::start(&vars, &[]);
    let call = |credential: &str, function: &str, body: Value| {
        let bearer = format!("Bearer {credential}");
        server.request("POST", &api(function), &[("Authorization", &bearer)], Some(&body))
    };
    for user in [&alice, &bob] {
        let (status, created) = call(
            &admin,
            "create_container",
            json!({"user_id": user, "container_type": "preview_server"}),
        );
        assert_eq!(status, 201, "{created}");
    }

    // Alice's CloudM token: her containers, not Bob's (which looks missing).
    let (status, me) = call(&token("alice"), "whoami", json!({}));
    assert_eq!((status, me), (200, json!({"role": "user", "user_id": alice})));
    let (status, listed) = call(&token("alice"), "list_containers", json!({}));
    assert_eq!(status, 200, "{listed}");
    let names: Vec<&str> = listed["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["container_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [format!("{alice}_preview_server")]);
    let (status, _) = call(
        &token("alice"),
        "get_container",
        json!({"container_id": format!("{bob}_preview_server")}),
    );
    assert_eq!(status, 404);
    let (status, _) = call(
        &token("alice"),
        "stop_container",
        json!({"container_id": format!("{alice}_preview_server")}),
    );
    assert_eq!(status, 200);
    // A level at or above admin_level acts as the admin.
    let (status, me) = call(&token("boss"), "whoami", json!({}));
    assert_eq!((status, me), (200, json!({"role": "admin"})));

    // Expired, refresh and tampered tokens: 401.
    let alice_parts: Vec<String> = token("alice").split('.').map(str::to_owned).collect();
    let bob_parts: Vec<String> = token("bob").split('.').map(str::to_owned).collect();
    let tampered = format!("{}.{}.{}", alice_parts[0], bob_parts[1], alice_parts[2]);
    for (what, refused) in [
        ("expired", token("expired")),
        ("refresh", token("refresh")),
        ("tampered", tampered),
    ] {
        let (status, answer) = call(&refused, "list_containers", json!({}));
        assert_eq!(status, 401, "{what}: {answer}");
    }
    // Without [auth.toolbox], the same token is nobody.
    drop(server);
    env.set_config_extra("");
    let plain = Server::start(&vars, &[]);
    let bearer = format!("Bearer {}", token("alice"));
    let (status, _) = plain.request("POST", &api("whoami"), &[("Authorization", &bearer)], None);
    assert_eq!(status, 401);
    // Clean up through the API.
    for user in [&alice, &bob] {
        let auth = format!("Bearer {admin}");
        let (status, _) = plain.request(
            "POST",
            &api("delete_container"),
            &[("Authorization", &auth)],
            Some(&json!({"container_id": format!("{user}_preview_server"), "force": true, "purge": true})),
        );
        assert_eq!(status, 200);
    }
}
