//! Every endpoint, in process, over cm-core's fakes.

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use cm_core::testing::{FakeWorld, fake_auth};
use cm_core::{Config, ContainerStatus, Secret};
use serde_json::json;

use crate::helpers::{ADMIN, ALICE_KEY, ALICE_KEY_FINGERPRINT, Cred, TestApp, api, with_cred};

#[actix_web::test]
async fn create_answers_201_with_the_record_routes_it_and_redacts_secret_env() {
    let app = TestApp::new();
    let answer = app
        .admin_post(
            "create_container",
            json!({
                "user_id": "usr_123",
                "container_type": "cli_v4",
                "env": {"API_KEY": "s3cret", "db_password": "hunter2", "GREETING": "hello"},
                "memory": "256m",
                "cpus": 0.5,
            }),
            StatusCode::CREATED,
        )
        .await;
    let c = &answer["container"];
    assert_eq!(c["container_name"], "usr_123_cli_v4");
    assert_eq!(c["user_id"], "usr_123");
    assert_eq!(c["status"], "running");
    assert_eq!(c["url_path"], "/container/usr_123/cli_v4/");
    assert_eq!(c["memory"], "256m");
    assert!(c["ssh_port"].is_u64());
    assert!(answer["route_error"].is_null());
    assert_eq!(c["env"]["API_KEY"], "***");
    assert_eq!(c["env"]["db_password"], "***");
    assert_eq!(c["env"]["GREETING"], "hello");
    assert_eq!(c["env"]["USER_ID"], "usr_123");
    // Only the answer is redacted: the container got the real value.
    let plan = &app.world.runtime.containers()[0].plan;
    assert_eq!(plan.env.get("API_KEY"), Some("s3cret"));
    assert_eq!(app.world.proxy.routes_now().len(), 1);

    // get and list redact too.
    let (_, got) = app
        .get(
            &format!("{}?container_id=usr_123_cli_v4", api("get_container")),
            &Cred::admin(),
        )
        .await;
    assert_eq!(got["container"]["env"]["API_KEY"], "***");
    let (_, listed) = app.get(&api("list_containers"), &Cred::admin()).await;
    assert_eq!(listed["containers"][0]["env"]["db_password"], "***");

    // One container per user and type.
    let (status, again) = app
        .post(
            &api("create_container"),
            json!({"user_id": "usr_123", "container_type": "cli_v4"}),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert_eq!(again["error"]["code"], "conflict");
}

#[actix_web::test]
async fn create_takes_query_parameters_commands_as_words_and_keys() {
    let app = TestApp::new();
    let uri = format!(
        "{}?user_id=bob&container_type=custom&enable_ssh=true",
        api("create_container")
    );
    let (status, answer) = app
        .send(with_cred(
            TestRequest::post().uri(&uri).set_json(json!({
                "command": ["sh", "-c", "echo 'a b'; sleep infinity"],
                "ssh_public_key": ALICE_KEY,
            })),
            &Cred::admin(),
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(
        answer["container"]["command"],
        json!(["sh", "-c", "echo 'a b'; sleep infinity"])
    );
    assert!(answer["container"]["ssh_port"].is_u64());
    let (_, keys) = app
        .get(
            &format!("{}?container_id=bob_custom", api("list_container_ssh_keys")),
            &Cred::admin(),
        )
        .await;
    assert_eq!(keys["keys"][0]["key"]["fingerprint"], ALICE_KEY_FINGERPRINT);
}

#[actix_web::test]
async fn create_reports_engine_down_as_503_and_an_empty_pool_as_507() {
    let app = TestApp::new();
    app.world.runtime.set_down(true);
    let (status, down) = app
        .post(
            &api("create_container"),
            json!({"user_id": "alice", "container_type": "cli_v4"}),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{down}");
    assert_eq!(down["error"]["code"], "unavailable");

    let config = Config::from_toml("port_pool = { start = 9000, end = 9000 }").unwrap();
    let world = FakeWorld::with_config(config);
    let small = TestApp::over(world, fake_auth(Some(ADMIN)));
    let (status, full) = small
        .post(
            &api("create_container"),
            json!({"user_id": "alice", "container_type": "cli_v4"}),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{full}");
    assert_eq!(full["error"]["code"], "exhausted");
}

#[actix_web::test]
async fn list_and_get_by_name_id_and_prefix() {
    let app = TestApp::new();
    let alice = app.create("alice", "cli_v4").await;
    app.create("bob", "preview_server").await;
    let (status, all) = app.get(&api("list_containers"), &Cred::admin()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["containers"].as_array().unwrap().len(), 2);
    assert!(all["stale"].is_null());
    let (_, bobs) = app
        .get(&format!("{}?user_id=bob", api("list_containers")), &Cred::admin())
        .await;
    assert_eq!(bobs["containers"].as_array().unwrap().len(), 1);
    let (_, everything) = app
        .get(
            &format!("{}?user_id=bob&all=1", api("list_containers")),
            &Cred::admin(),
        )
        .await;
    assert_eq!(everything["containers"].as_array().unwrap().len(), 2);

    let id = alice["container_id"].as_str().unwrap();
    for reference in ["alice_cli_v4", id, &id[..8]] {
        let (status, got) = app
            .get(
                &format!("{}?container_id={reference}", api("get_container")),
                &Cred::admin(),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{reference}: {got}");
        assert_eq!(got["container"]["container_name"], "alice_cli_v4");
    }
    let (status, missing) = app
        .get(
            &format!("{}?container_id=nobody_cli_v4", api("get_container")),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["error"]["field"], "container_id");

    // With the engine down the listing still answers, with stored statuses and the reason.
    app.world.runtime.set_down(true);
    let (status, stale) = app.get(&api("list_containers"), &Cred::admin()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(stale["stale"].is_string(), "{stale}");
}

#[actix_web::test]
async fn stop_start_restart() {
    let app = TestApp::new();
    app.create("alice", "preview_server").await;
    let owner = Cred::Bearer(app.token("alice").await);
    let body = json!({"container_id": "alice_preview_server"});
    let (status, stopped) = app.post(&api("stop_container"), body.clone(), &owner).await;
    assert_eq!(status, StatusCode::OK, "{stopped}");
    assert_eq!(stopped["container"]["status"], "exited");
    let (_, started) = app.post(&api("start_container"), body.clone(), &owner).await;
    assert_eq!(started["container"]["status"], "running");
    let (status, restarted) = app.post(&api("restart_container"), body, &owner).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(restarted["container"]["status"], "running");
}

#[actix_web::test]
async fn logs_tail_and_follow() {
    let app = TestApp::new();
    app.create("alice", "preview_server").await;
    let (status, all) = app
        .get(
            &format!("{}?container_id=alice_preview_server", api("container_logs")),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["logs"].as_str().unwrap().lines().count(), 5);
    let (_, two) = app
        .get(
            &format!(
                "{}?container_id=alice_preview_server&tail=2",
                api("container_logs")
            ),
            &Cred::admin(),
        )
        .await;
    assert_eq!(
        two["logs"],
        "alice_preview_server line 4\nalice_preview_server line 5\n"
    );
    let (status, headers, streamed) = app
        .send_full(with_cred(
            TestRequest::get().uri(&format!(
                "{}?container_id=alice_preview_server&tail=1&follow=true",
                api("container_logs")
            )),
            &Cred::admin(),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(streamed, "alice_preview_server line 5\n");
    let (status, too_many) = app
        .get(
            &format!(
                "{}?container_id=alice_preview_server&tail=100001",
                api("container_logs")
            ),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(too_many["error"]["field"], "tail");
}

#[actix_web::test]
async fn exec_answers_exit_code_and_output_and_enforces_the_timeout() {
    let app = TestApp::new();
    app.create("alice", "preview_server").await;
    let exec = |body: serde_json::Value| {
        let app = &app;
        async move { app.post(&api("container_exec"), body, &Cred::admin()).await }
    };
    let (status, ok) =
        exec(json!({"container_id": "alice_preview_server", "command": "echo hello world"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        ok,
        json!({"exit_code": 0, "stdout": "hello world\n", "stderr": ""})
    );
    let (_, words) = exec(json!({"container_id": "alice_preview_server", "command": ["echo", "a b"]})).await;
    assert_eq!(words["stdout"], "a b\n");
    let (status, failed) = exec(json!({"container_id": "alice_preview_server", "command": "false"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(failed["exit_code"], 1);
    let (status, slow) =
        exec(json!({"container_id": "alice_preview_server", "command": "sleep 100", "timeout": 2})).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{slow}");
    assert_eq!(slow["error"]["code"], "timeout");
    for timeout in [0, 3601] {
        let (status, refused) =
            exec(json!({"container_id": "alice_preview_server", "command": "true", "timeout": timeout}))
                .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{timeout}");
        assert_eq!(refused["error"]["field"], "timeout");
    }
    let (status, unbalanced) =
        exec(json!({"container_id": "alice_preview_server", "command": "echo 'open"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unbalanced["error"]["field"], "command");
    let (status, _) = exec(json!({"container_id": "alice_preview_server"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    app.post(
        &api("stop_container"),
        json!({"container_id": "alice_preview_server"}),
        &Cred::admin(),
    )
    .await;
    let (status, stopped) = exec(json!({"container_id": "alice_preview_server", "command": "true"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{stopped}");
}

#[actix_web::test]
async fn delete_refuses_running_without_force_and_keeps_data_unless_purge() {
    let app = TestApp::new();
    app.create("alice", "preview_server").await;
    app.create("alice", "project_dev").await;
    let (status, refused) = app
        .post(
            &api("delete_container"),
            json!({"container_id": "alice_preview_server"}),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    let (status, deleted) = app
        .post(
            &api("delete_container"),
            json!({"container_id": "alice_preview_server", "force": "true"}),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["deleted"], "alice_preview_server");
    assert_eq!(deleted["purged"], false);
    assert!(
        app.world
            .runtime
            .volumes()
            .contains(&"alice_preview_server_data".to_owned())
    );
    let (status, _) = app
        .post(
            &api("delete_container"),
            json!({"container_id": "alice_project_dev", "force": true, "purge": true}),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !app.world
            .runtime
            .volumes()
            .contains(&"alice_project_dev_data".to_owned())
    );
    let (status, _) = app
        .get(
            &format!("{}?container_id=alice_preview_server", api("get_container")),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The original's self-service calls: a user registers a key on its own SSH container without
/// naming it, and reads its containers in the original's field names.
#[actix_web::test]
async fn users_register_their_own_keys_and_read_their_own_ssh_info() {
    let app = TestApp::new();
    let owner = Cred::Bearer(app.token("alice").await);
    let (status, none) = app
        .post(
            &api("register_ssh_key"),
            json!({"ssh_public_key": ALICE_KEY}),
            &owner,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{none}");
    assert!(
        none["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no SSH-enabled container")
    );
    app.create("alice", "preview_server").await;
    app.create("alice", "cli_v4").await;
    let (status, registered) = app
        .post(
            &api("register_ssh_key"),
            json!({"ssh_public_key": ALICE_KEY}),
            &owner,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{registered}");
    assert_eq!(registered["container_name"], "alice_cli_v4");
    assert_eq!(registered["username"], "cli");
    assert_eq!(registered["added"], true);
    assert!(registered["ssh_port"].is_u64());
    assert!(
        registered["connection_string"]
            .as_str()
            .unwrap()
            .starts_with("ssh -p "),
        "{registered}"
    );
    // The admin has no containers of its own: it names one.
    let (status, refused) = app
        .post(
            &api("register_ssh_key"),
            json!({"ssh_public_key": ALICE_KEY}),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["error"]["field"], "container_id");

    let (status, mine) = app.get(&api("get_my_ssh_info"), &owner).await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    let containers = mine["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 2);
    let cli = containers
        .iter()
        .find(|c| c["container_type"] == "cli_v4")
        .unwrap();
    assert_eq!(cli["container_id"].as_str().unwrap().len(), 12);
    assert_eq!(cli["http_url"], "/container/alice/cli_v4");
    assert_eq!(cli["ssh_enabled"], true);
    assert_eq!(cli["ssh_port"], registered["ssh_port"]);
    let web = containers
        .iter()
        .find(|c| c["container_type"] == "preview_server")
        .unwrap();
    assert_eq!(web["ssh_enabled"], false);
    assert!(web.get("ssh_port").is_none());
    let (status, _) = app
        .get(&format!("{}?user_id=bob", api("get_my_ssh_info")), &owner)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// `[auth] user_actions` narrows what user tokens may do; reading stays allowed and the dashboard
/// and API refuse the rest with a message that says why.
#[actix_web::test]
async fn configured_user_actions_decide_what_tokens_may_do() {
    let app = TestApp::with_config("[auth]\nuser_actions = [\"logs\", \"start\"]\n");
    app.create("alice", "cli_v4").await;
    let owner = Cred::Bearer(app.token("alice").await);
    let body = json!({"container_id": "alice_cli_v4"});
    let (status, stop) = app.post(&api("stop_container"), body.clone(), &owner).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{stop}");
    assert!(
        stop["error"]["message"]
            .as_str()
            .unwrap()
            .contains("user_actions"),
        "{stop}"
    );
    for allowed in ["start_container", "get_container", "container_logs"] {
        let (status, answer) = app.post(&api(allowed), body.clone(), &owner).await;
        assert_eq!(status, StatusCode::OK, "{allowed}: {answer}");
    }
    let (status, _) = app
        .post(
            &api("delete_container"),
            json!({"container_id": "alice_cli_v4", "force": true}),
            &owner,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The admin is not bound by it.
    let (status, _) = app.post(&api("stop_container"), body, &Cred::admin()).await;
    assert_eq!(status, StatusCode::OK);
    let bad = cm_core::Config::from_toml("[auth]\nuser_actions = [\"purge\"]\n").unwrap_err();
    assert!(bad.message().contains("unknown user action"), "{}", bad.message());
}

#[actix_web::test]
async fn ssh_keys_info_and_listing() {
    let app = TestApp::new();
    app.create("alice", "cli_v4").await;
    app.create("alice", "preview_server").await;
    let owner = Cred::Bearer(app.token("alice").await);
    let add = json!({"container_id": "alice_cli_v4", "ssh_public_key": ALICE_KEY});
    let (status, added) = app
        .post(&api("add_ssh_key_to_container"), add.clone(), &owner)
        .await;
    assert_eq!(status, StatusCode::OK, "{added}");
    assert_eq!(added["added"], true);
    assert_eq!(added["applied"], true);
    assert_eq!(added["key"]["fingerprint"], ALICE_KEY_FINGERPRINT);
    let (_, again) = app.post(&api("add_ssh_key_to_container"), add, &owner).await;
    assert_eq!(again["added"], false);
    let container = app
        .world
        .runtime
        .containers()
        .into_iter()
        .find(|c| c.plan.name.as_str() == "alice_cli_v4")
        .unwrap();
    let (_, _, contents) = &container.files["/home/cli/.ssh/authorized_keys"];
    assert!(String::from_utf8_lossy(contents.as_ref().unwrap()).contains("alice@laptop"));

    let (status, bad) = app
        .post(
            &api("add_ssh_key_to_container"),
            json!({"container_id": "alice_cli_v4", "ssh_public_key": "ssh-rsa AAAA"}),
            &owner,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad["error"]["field"], "ssh_public_key");
    let (status, no_ssh) = app
        .post(
            &api("add_ssh_key_to_container"),
            json!({"container_id": "alice_preview_server", "ssh_public_key": ALICE_KEY}),
            &owner,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{no_ssh}");

    let (status, info) = app
        .get(
            &format!("{}?container_id=alice_cli_v4", api("get_container_ssh_info")),
            &owner,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["user"], "cli");
    assert!(info["port"].is_u64());
    assert_eq!(info["fingerprints"], json!([ALICE_KEY_FINGERPRINT]));
    let (_, keys) = app
        .get(
            &format!("{}?container_id=alice_cli_v4", api("list_container_ssh_keys")),
            &owner,
        )
        .await;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1);
    let (_, ssh) = app.get(&api("list_ssh_containers"), &owner).await;
    let names: Vec<&str> = ssh["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["container_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice_cli_v4"]);

    let remove = json!({"container_id": "alice_cli_v4", "fingerprint": ALICE_KEY_FINGERPRINT});
    let (status, removed) = app
        .post(
            &api("remove_ssh_key_from_container"),
            remove.clone(),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert_eq!(removed["removed"], ALICE_KEY_FINGERPRINT);
    let (status, _) = app
        .post(&api("remove_ssh_key_from_container"), remove, &Cred::admin())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn types_health_and_whoami() {
    let app = TestApp::new();
    let (status, types) = app.get(&api("list_types"), &Cred::admin()).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = types["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for expected in ["cli_v4", "project_dev", "preview_server", "custom"] {
        assert!(names.contains(&expected), "{names:?}");
    }
    let (status, health) = app.get(&api("docker_health"), &Cred::admin()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["ok"], true);
    assert_eq!(health["engine"]["version"], "fake");
    assert_eq!(health["proxy"]["enabled"], true);
    assert_eq!(
        health["containers"],
        json!({"total_containers": 0, "tb_managed": 0, "external": 0})
    );
    let alice = Cred::Bearer(app.token("alice").await);
    let (_, seen_by_alice) = app.get(&api("docker_health"), &alice).await;
    assert!(seen_by_alice.get("containers").is_none(), "{seen_by_alice}");
    app.world.runtime.set_down(true);
    let (status, down) = app.get(&api("docker_health"), &Cred::admin()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(down["error"]["code"], "unavailable");

    let (_, admin) = app.get(&api("whoami"), &Cred::admin()).await;
    assert_eq!(admin, json!({"role": "admin"}));
    let (_, user) = app.get(&api("whoami"), &alice).await;
    assert_eq!(user, json!({"role": "user", "user_id": "alice"}));

    let (status, live) = app.get("/healthz", &Cred::Anonymous).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        live,
        json!({
            "ok": true,
            "routing": {"enabled": true, "mode": "files", "nginx_answers": null},
            // The fake runtime records caps (the real one's are tested in cm-cli's tests).
            "disk_caps": {"enforced": true},
        })
    );
}

#[actix_web::test]
async fn tokens_are_created_listed_and_revoked_by_user_or_id() {
    let app = TestApp::new();
    let (status, headers, created) = app
        .send_full(with_cred(
            TestRequest::post()
                .uri(&api("create_user_token"))
                .set_json(json!({"user_id": "alice"})),
            &Cred::admin(),
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(headers.get("cache-control").unwrap(), "no-store");
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("cmu_"), "{token}");
    assert_eq!(created["user_id"], "alice");
    let id = created["id"].as_str().unwrap().to_owned();

    let (_, me) = app.get(&api("whoami"), &Cred::Bearer(token.clone())).await;
    assert_eq!(me["user_id"], "alice");
    let (_, listed) = app.get(&api("list_user_tokens"), &Cred::admin()).await;
    assert_eq!(listed["tokens"][0]["id"], id.as_str());
    assert!(
        !listed.to_string().contains(&token),
        "a listing never shows a token"
    );

    let second = app.token("alice").await;
    let (status, revoked) = app
        .post(&api("revoke_user_token"), json!({"token_id": id}), &Cred::admin())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(revoked["revoked"], 1);
    let (status, _) = app.get(&api("whoami"), &Cred::Bearer(token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, still) = app.get(&api("whoami"), &Cred::Bearer(second.clone())).await;
    assert_eq!(still["user_id"], "alice");
    let (_, all) = app
        .post(
            &api("revoke_user_token"),
            json!({"user_id": "alice"}),
            &Cred::admin(),
        )
        .await;
    assert_eq!(all["revoked"], 1);
    let (status, _) = app.get(&api("whoami"), &Cred::Bearer(second)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, none) = app
        .post(
            &api("revoke_user_token"),
            json!({"token_id": "000000000000"}),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{none}");
    let (status, _) = app
        .post(
            &api("revoke_user_token"),
            json!({"user_id": "alice"}),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "alice has no tokens left");
    for ambiguous in [json!({}), json!({"user_id": "alice", "token_id": "x"})] {
        let (status, _) = app
            .post(&api("revoke_user_token"), ambiguous, &Cred::admin())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}

#[actix_web::test]
async fn a_stored_admin_key_rotates_and_the_old_one_stops_working() {
    let auth = fake_auth(None);
    let first = auth.ensure_admin_key().await.unwrap().unwrap();
    assert!(auth.ensure_admin_key().await.unwrap().is_none(), "generated once");
    let app = TestApp::with_auth(auth);
    let old = Cred::Bearer(first.expose().to_owned());
    let (status, rotated) = app.post(&api("rotate_admin_key"), json!({}), &old).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_key = rotated["admin_key"].as_str().unwrap().to_owned();
    assert!(new_key.starts_with("cmk_"));
    assert_ne!(new_key, first.expose());
    let (status, _) = app.get(&api("whoami"), &old).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, me) = app.get(&api("whoami"), &Cred::Bearer(new_key.clone())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["role"], "admin");
    assert!(app.state.auth.authenticate(&Secret::new(new_key)).await.is_ok());
}

#[actix_web::test]
async fn a_container_missing_from_the_engine_is_reported() {
    let app = TestApp::new();
    let spec = app.create("alice", "preview_server").await;
    app.world
        .runtime
        .remove_behind_back(spec["container_id"].as_str().unwrap());
    let (status, got) = app
        .get(
            &format!("{}?container_id=alice_preview_server", api("get_container")),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["container"]["status"], ContainerStatus::Missing.as_str());
    let (status, start) = app
        .post(
            &api("start_container"),
            json!({"container_id": "alice_preview_server"}),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{start}");
}

#[actix_web::test]
async fn update_keeps_the_port_and_reconcile_reports_and_remembers() {
    let app = TestApp::new();
    let created = app.create("alice", "preview_server").await;
    let updated = app
        .admin_post(
            "update_container",
            json!({"container_id": "alice_preview_server", "image": "toolboxv2:dev"}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(updated["container"]["image"], "toolboxv2:dev");
    assert_eq!(updated["container"]["port"], created["port"]);
    let (status, body) = app
        .post(
            &api("update_container"),
            json!({"container_id": "alice_preview_server", "image": "bad image"}),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "image");

    let status_before = app
        .admin_post("reconcile_status", json!({}), StatusCode::OK)
        .await;
    assert!(status_before["last_report"].is_null());
    let report = app
        .admin_post("reconcile", json!({"dry_run": true}), StatusCode::OK)
        .await;
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["records"], 1);
    assert_eq!(report["findings"], json!([]));
    let status_after = app
        .admin_post("reconcile_status", json!({}), StatusCode::OK)
        .await;
    assert_eq!(status_after["last_report"]["records"], 1);
    assert_eq!(
        status_after["live_statuses"], false,
        "no event feed in process tests"
    );
}

#[actix_web::test]
async fn quotas_are_read_set_and_enforced_over_the_api() {
    let app = TestApp::new();
    let (status, set) = app
        .post(
            &api("set_user_quota"),
            json!({"user_id": "alice", "containers": 1, "cpus": "1.5"}),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    assert_eq!(set["quota"]["limits"]["containers"], 1);
    assert_eq!(set["quota"]["limits"]["cpus"], 1.5);
    assert!(set["quota"]["limits"]["memory"].is_null());
    app.create("alice", "cli_v4").await;
    let (status, refused) = app
        .post(
            &api("create_container"),
            json!({"user_id": "alice", "container_type": "preview_server"}),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{refused}");
    assert_eq!(refused["error"]["code"], "exhausted");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("over quota")
    );
    let alice = Cred::Bearer(app.token("alice").await);
    let (status, own) = app
        .get(&format!("{}?user_id=alice", api("get_user_quota")), &alice)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(own["quota"]["used"]["containers"], 1);
    let (status, bad) = app
        .post(
            &api("set_user_quota"),
            json!({"user_id": "alice", "memory": "lots"}),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    assert_eq!(bad["error"]["field"], "memory");
}

#[actix_web::test]
async fn tokens_may_expire_and_show_when_they_were_last_used() {
    let app = TestApp::new();
    let (status, made) = app
        .post(
            &api("create_user_token"),
            json!({"user_id": "alice", "expires_in": "30d"}),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert!(made["expires_at"].is_string(), "{made}");
    let alice = Cred::Bearer(made["token"].as_str().unwrap().to_owned());
    let (status, _) = app.get(&api("whoami"), &alice).await;
    assert_eq!(status, StatusCode::OK);
    let (_, listed) = app.get(&api("list_user_tokens"), &Cred::admin()).await;
    assert!(listed["tokens"][0]["last_used_at"].is_string(), "{listed}");
    assert_eq!(listed["tokens"][0]["expires_at"], made["expires_at"]);
    for bad in [json!("5s"), json!("soon"), json!(1)] {
        let (status, refused) = app
            .post(
                &api("create_user_token"),
                json!({"user_id": "alice", "expires_in": bad}),
                &Cred::admin(),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {refused}");
        assert_eq!(refused["error"]["field"], "expires_in");
    }
}
