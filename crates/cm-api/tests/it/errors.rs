//! Malformed requests, wrong types, refused values and credentials: JSON errors with the right
//! status, and compatibility with the original `admin_key` parameter.

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use serde_json::{Value, json};

use crate::helpers::{ADMIN, Cred, TestApp, api, with_cred};

/// Sends `req` and checks the status and the error shape; returns the body for a snapshot.
async fn check(app: &TestApp, req: TestRequest, status: StatusCode, code: &str) -> Value {
    let (got, body) = app.send(req).await;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}

fn post_raw(name: &str, body: &'static str) -> TestRequest {
    with_cred(
        TestRequest::post()
            .uri(&api(name))
            .insert_header(("content-type", "application/json"))
            .set_payload(body),
        &Cred::admin(),
    )
}

fn post_json(name: &str, body: Value) -> TestRequest {
    with_cred(TestRequest::post().uri(&api(name)).set_json(body), &Cred::admin())
}

#[actix_web::test]
async fn malformed_bodies_and_wrong_types_are_400_with_the_field() {
    let app = TestApp::new();
    app.create("alice", "cli_v4").await;
    let body = check(
        &app,
        post_raw("delete_container", "{\"container_id\": "),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    insta::assert_json_snapshot!("malformed_json", body);
    let body = check(
        &app,
        post_raw("list_containers", "[1, 2]"),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    insta::assert_json_snapshot!("body_not_an_object", body);

    let body = check(
        &app,
        post_json(
            "delete_container",
            json!({"container_id": "alice_cli_v4", "force": "maybe"}),
        ),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    insta::assert_json_snapshot!("force_maybe", body);
    let body = check(
        &app,
        post_json(
            "container_logs",
            json!({"container_id": "alice_cli_v4", "tail": "x"}),
        ),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    insta::assert_json_snapshot!("tail_x", body);
    let query = with_cred(
        TestRequest::get().uri(&format!(
            "{}?container_id=alice_cli_v4&tail=-1",
            api("container_logs")
        )),
        &Cred::admin(),
    );
    check(&app, query, StatusCode::BAD_REQUEST, "bad_request").await;
    let body = check(
        &app,
        post_json("get_container", json!({"container_id": 42})),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    assert_eq!(body["error"]["field"], "container_id");
    let body = check(
        &app,
        post_json("get_container", json!({})),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    insta::assert_json_snapshot!("missing_container_id", body);
    let body = check(
        &app,
        post_json(
            "get_container",
            json!({"container_id": "alice_cli_v4", "forse": true}),
        ),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    insta::assert_json_snapshot!("unknown_parameter", body);
    let twice = with_cred(
        TestRequest::post()
            .uri(&format!("{}?container_id=alice_cli_v4", api("get_container")))
            .set_json(json!({"container_id": "alice_cli_v4"})),
        &Cred::admin(),
    );
    check(&app, twice, StatusCode::BAD_REQUEST, "bad_request").await;
    let repeated = with_cred(
        TestRequest::get().uri(&format!("{}?container_id=a&container_id=b", api("get_container"))),
        &Cred::admin(),
    );
    check(&app, repeated, StatusCode::BAD_REQUEST, "bad_request").await;
    let bad_env = post_json(
        "create_container",
        json!({"user_id": "bob", "container_type": "cli_v4", "env": {"A": 1}}),
    );
    check(&app, bad_env, StatusCode::BAD_REQUEST, "bad_request").await;
}

#[actix_web::test]
async fn refused_values_are_422_with_the_field() {
    let app = TestApp::new();
    let body = check(
        &app,
        post_json(
            "create_container",
            json!({"user_id": "alice", "container_type": "no_such_type"}),
        ),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;
    assert_eq!(body["error"]["field"], "container_type");
    insta::assert_json_snapshot!("unknown_container_type", body);

    let hostile = [
        "../../etc/passwd",
        "alice;rm -rf /",
        "<script>alert(1)</script>",
        "a b",
        "alice\nX-Injected: 1",
        "-leading-dash",
        "ümlaut",
        &"a".repeat(64),
    ];
    for user in hostile {
        for (endpoint, body) in [
            (
                "create_container",
                json!({"user_id": user, "container_type": "cli_v4"}),
            ),
            ("create_user_token", json!({"user_id": user})),
            ("list_containers", json!({"user_id": user})),
            ("revoke_user_token", json!({"user_id": user})),
        ] {
            let answer = check(
                &app,
                post_json(endpoint, body),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
            )
            .await;
            assert_eq!(answer["error"]["field"], "user_id", "{endpoint} {user:?}");
        }
    }
    assert!(app.world.runtime.containers().is_empty());
    let body = check(
        &app,
        post_json("create_user_token", json!({"user_id": "../../etc/passwd"})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;
    insta::assert_json_snapshot!("hostile_user_id", body);

    let bad_env = post_json(
        "create_container",
        json!({"user_id": "bob", "container_type": "cli_v4", "env": ["1BAD=x"]}),
    );
    let body = check(&app, bad_env, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
    assert_eq!(body["error"]["field"], "env");
    let reserved = post_json(
        "create_container",
        json!({"user_id": "bob", "container_type": "cli_v4", "env": {"USER_ID": "alice"}}),
    );
    check(&app, reserved, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
    let memory = post_json(
        "create_container",
        json!({"user_id": "bob", "container_type": "cli_v4", "memory": "lots"}),
    );
    check(&app, memory, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
}

#[actix_web::test]
async fn unknown_things_and_wrong_methods_and_large_bodies() {
    let app = TestApp::new();
    let body = check(
        &app,
        post_json("get_container", json!({"container_id": "nobody_cli_v4"})),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    insta::assert_json_snapshot!("unknown_container", body);
    let body = check(
        &app,
        post_json("no_such_function", json!({})),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    insta::assert_json_snapshot!("unknown_endpoint", body);
    check(
        &app,
        TestRequest::get().uri("/nothing/here"),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let get_create = with_cred(TestRequest::get().uri(&api("create_container")), &Cred::admin());
    let body = check(
        &app,
        get_create,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    insta::assert_json_snapshot!("method_not_allowed", body);
    // The health check and the API description too (schemathesis found TRACE /healthz was 404).
    for path in ["/healthz", "/api/openapi.json"] {
        let (status, headers, _) = app
            .send_full(
                TestRequest::default()
                    .method(actix_web::http::Method::TRACE)
                    .uri(path),
            )
            .await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(headers.get("allow").unwrap(), "GET", "{path}");
    }

    let huge = format!("{{\"container_id\": \"{}\"}}", "a".repeat(cm_api::BODY_LIMIT));
    let req = with_cred(
        TestRequest::post()
            .uri(&api("get_container"))
            .insert_header(("content-type", "application/json"))
            .set_payload(huge),
        &Cred::admin(),
    );
    check(&app, req, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
}

#[actix_web::test]
async fn missing_and_wrong_credentials_are_401_with_a_bearer_challenge() {
    let app = TestApp::new();
    let (status, headers, body) = app
        .send_full(TestRequest::get().uri(&api("list_containers")))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        headers.get("www-authenticate").unwrap(),
        "Bearer realm=\"ContainerManager\""
    );
    insta::assert_json_snapshot!("no_credentials", body);

    let (status, headers, body) = app
        .send_full(with_cred(
            TestRequest::get().uri(&api("list_containers")),
            &Cred::Bearer("wrong-key".into()),
        ))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        headers
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    insta::assert_json_snapshot!("wrong_credentials", body);

    for header in [
        format!("Basic {ADMIN}"),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        ADMIN.to_owned(),
    ] {
        let req = TestRequest::get()
            .uri(&api("list_containers"))
            .insert_header(("Authorization", header.clone()));
        let (status, _) = app.send(req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{header:?}");
    }
    // Lower-case scheme is fine.
    let req = TestRequest::get()
        .uri(&api("list_containers"))
        .insert_header(("Authorization", format!("bearer {ADMIN}")));
    assert_eq!(app.send(req).await.0, StatusCode::OK);
}

#[actix_web::test]
async fn the_admin_key_parameter_still_works_in_the_query_and_the_body() {
    let app = TestApp::new();
    app.create("usr_123", "cli_v4").await;
    // The seed's own examples.
    let (status, listed) = app
        .get(
            &format!("{}?user_id=usr_123&admin_key={ADMIN}", api("list_containers")),
            &Cred::Anonymous,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["containers"][0]["container_name"], "usr_123_cli_v4");
    let (status, _) = app
        .get(
            &format!(
                "{}?container_id=usr_123_cli_v4&admin_key={ADMIN}",
                api("get_container")
            ),
            &Cred::Anonymous,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, created) = app
        .post(
            &api("create_container"),
            json!({"container_type": "preview_server", "user_id": "usr_123", "admin_key": ADMIN}),
            &Cred::Anonymous,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, _) = app
        .post(
            &api("delete_container"),
            json!({"container_id": "usr_123_preview_server", "admin_key": ADMIN, "force": true}),
            &Cred::Anonymous,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // A form body too.
    let form = TestRequest::post()
        .uri(&api("get_container"))
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .set_payload(format!("container_id=usr_123_cli_v4&admin_key={ADMIN}"));
    assert_eq!(app.send(form).await.0, StatusCode::OK);

    // A wrong key is refused, and the header wins over the parameter.
    let (status, _) = app
        .get(
            &format!("{}?admin_key=not-the-key", api("list_containers")),
            &Cred::Anonymous,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .get(
            &format!("{}?admin_key={ADMIN}", api("list_containers")),
            &Cred::Bearer("wrong".into()),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A user token in the parameter is that user, nothing more.
    let token = app.token("usr_123").await;
    let (_, me) = app
        .get(&format!("{}?admin_key={token}", api("whoami")), &Cred::Anonymous)
        .await;
    assert_eq!(me, json!({"role": "user", "user_id": "usr_123"}));
    let (status, _) = app
        .post(
            &api("create_user_token"),
            json!({"user_id": "x", "admin_key": token}),
            &Cred::Anonymous,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// The original's request names and defaults: `environment`, `memory_limit`, `cpu_limit`,
/// `container_name`, `pull` and a create without `container_type` (a `cli_v4`).
#[actix_web::test]
async fn the_originals_create_parameters_are_understood() {
    let app = TestApp::new();
    let request = post_json(
        "create_container",
        json!({
            "user_id": "carol",
            "environment": {"GREETING": "hi"},
            "memory_limit": "256m",
            "cpu_limit": "0.5",
            "container_name": "carol_cli_v4",
            "pull": false,
        }),
    );
    let (status, created) = app.send(request).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let container = &created["container"];
    assert_eq!(container["container_type"], "cli_v4", "{created}");
    assert_eq!(container["env"]["GREETING"], "hi");
    assert_eq!(container["memory"], "256m");
    assert_eq!(container["cpus"], 0.5);

    let both = post_json(
        "create_container",
        json!({"user_id": "dave", "env": {"A": "1"}, "environment": {"B": "2"}}),
    );
    let body = check(&app, both, StatusCode::BAD_REQUEST, "bad_request").await;
    assert_eq!(body["error"]["field"], "environment");
    let pull = post_json("create_container", json!({"user_id": "dave", "pull": true}));
    let body = check(&app, pull, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
    assert_eq!(body["error"]["field"], "pull");
    let renamed = post_json(
        "create_container",
        json!({"user_id": "dave", "container_type": "custom", "container_name": "mine"}),
    );
    let body = check(&app, renamed, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
    assert!(
        body["error"]["message"].as_str().unwrap().contains("dave_custom"),
        "{body}"
    );
    let unknown = post_json("create_container", json!({"user_id": "dave", "flavour": "x"}));
    let body = check(&app, unknown, StatusCode::BAD_REQUEST, "bad_request").await;
    assert_eq!(body["error"]["field"], "flavour");
}
