//! Request logs name the method, the path, the status and the duration, and never a key, a token
//! or the `admin_key` parameter.

use std::io::Write;
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use serde_json::json;
use tracing_subscriber::fmt::MakeWriter;

use crate::helpers::{ADMIN, Cred, TestApp, api, with_cred};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[actix_web::test]
async fn request_logs_never_contain_keys_tokens_or_the_admin_key_parameter() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = TestApp::new();
    let secret_env = "s3cret-env-value-in-a-create";
    let (status, _) = app
        .post(
            &api("create_container"),
            json!({"user_id": "alice", "container_type": "cli_v4", "env": {"API_TOKEN": secret_env}}),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, created) = app
        .post(
            &api("create_user_token"),
            json!({"user_id": "alice"}),
            &Cred::admin(),
        )
        .await;
    let token = created["token"].as_str().unwrap().to_owned();
    let wrong = "cmk_this-wrong-key-must-not-be-logged";

    let requests = [
        with_cred(TestRequest::get().uri(&api("list_containers")), &Cred::admin()),
        TestRequest::get().uri(&format!(
            "{}?admin_key={ADMIN}&user_id=alice",
            api("list_containers")
        )),
        TestRequest::post()
            .uri(&api("get_container"))
            .set_json(json!({"container_id": "alice_cli_v4", "admin_key": ADMIN})),
        with_cred(
            TestRequest::get().uri(&api("whoami")),
            &Cred::Bearer(token.clone()),
        ),
        TestRequest::get().uri(&format!("{}?admin_key={token}", api("whoami"))),
        with_cred(
            TestRequest::get().uri(&api("whoami")),
            &Cred::Bearer(wrong.to_owned()),
        ),
        TestRequest::get().uri(&format!("{}?admin_key={wrong}", api("whoami"))),
        TestRequest::get().uri(&format!("/api/ContainerManager/{token}")),
        with_cred(TestRequest::post().uri(&api("rotate_admin_key")), &Cred::admin()),
    ];
    for req in requests {
        app.send(req).await;
    }

    let logs = captured.text();
    assert!(
        logs.contains("method=GET path=/api/ContainerManager/list_containers status=200 duration_ms="),
        "{logs}"
    );
    assert!(
        logs.contains("path=/api/ContainerManager/whoami status=401"),
        "{logs}"
    );
    assert!(
        logs.contains("path=/api/ContainerManager/[redacted] status=404"),
        "{logs}"
    );
    for secret in [ADMIN, token.as_str(), wrong, secret_env, "admin_key="] {
        assert!(!logs.contains(secret), "{secret:?} appears in the logs:\n{logs}");
    }
}
