//! The engine down and back, with the real `cm-api` and the real engine behind a socket proxy the
//! test can cut: reads answer from the store marked stale, writes fail with "unavailable", and
//! when the engine returns the server reconnects by itself and reconciles.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cm_testkit::{TestEnv, docker_ok, require_docker, wait_until};
use serde_json::{Value, json};

use crate::helpers::{Server, api};

/// A unix socket that forwards to the engine's socket until it is cut.
struct EngineProxy {
    path: PathBuf,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<UnixStream>>>,
}

impl EngineProxy {
    fn start(dir: &Path) -> Self {
        let path = dir.join("engine.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let open: Arc<Mutex<Vec<UnixStream>>> = Arc::default();
        let (flag, streams) = (up.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                if !flag.load(Ordering::SeqCst) {
                    continue; // dropped: the engine "does not answer"
                }
                let Ok(engine) = UnixStream::connect("/var/run/docker.sock") else {
                    continue;
                };
                streams
                    .lock()
                    .unwrap()
                    .extend([client.try_clone().unwrap(), engine.try_clone().unwrap()]);
                pipe(client.try_clone().unwrap(), engine.try_clone().unwrap());
                pipe(engine, client);
            }
        });
        EngineProxy { path, up, open }
    }

    fn host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// The engine goes away: new connections are dropped, open ones cut (the event stream too).
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn pipe(mut from: UnixStream, mut to: UnixStream) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buffer) {
            if n == 0 || to.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

#[test]
fn with_the_engine_away_reads_are_stale_writes_fail_and_its_return_is_reconciled() {
    if !require_docker() {
        return;
    }
    let env = TestEnv::new();
    let proxy = EngineProxy::start(env.path());
    let admin = "engine-away-admin-key-0123456789";
    let mut vars = env.vars();
    vars.push(("CONTAINER_ADMIN_KEY", admin.to_owned()));
    vars.push(("DOCKER_HOST", proxy.host()));
    let server = Server::start(&vars, &[]);
    let auth = format!("Bearer {admin}");
    let headers = [("Authorization", auth.as_str())];
    let call = |name: &str, body: Value| server.request("POST", &api(name), &headers, Some(&body));
    let user = env.user("away");
    let name = format!("{user}_preview_server");

    let (status, created) = call(
        "create_container",
        json!({"user_id": user, "container_type": "preview_server"}),
    );
    assert_eq!(status, 201, "{created}");
    let first_id = created["container"]["container_id"].clone();
    let live = wait_until(Duration::from_secs(30), || {
        call("reconcile_status", json!({})).1["live_statuses"] == true
    });
    assert!(live, "the event feed never connected");

    proxy.cut();
    // Reads answer from the store, marked stale.
    let stale = wait_until(Duration::from_secs(30), || {
        let (status, listed) = call("list_containers", json!({}));
        status == 200
            && listed["stale"].is_string()
            && listed["containers"][0]["container_name"] == name.as_str()
    });
    assert!(stale, "{}", call("list_containers", json!({})).1);
    // Writes fail with "unavailable" and change nothing.
    let (status, refused) = call(
        "create_container",
        json!({"user_id": user, "container_type": "project_dev"}),
    );
    assert_eq!(status, 503, "{refused}");
    assert_eq!(refused["error"]["code"], "unavailable");

    // Behind the manager's back, the container disappears while the engine is "away".
    docker_ok(&["rm", "-f", &name]);

    proxy.restore();
    // The server reconnects by itself and reconciles: the container is back, on a new id.
    let back = wait_until(Duration::from_secs(90), || {
        let (status, got) = call("get_container", json!({"container_id": name}));
        status == 200
            && got["container"]["status"] == "running"
            && got["container"]["container_id"] != first_id
    });
    assert!(back, "{}", call("get_container", json!({"container_id": name})).1);
    // The report is stored when the whole reconcile ends, a little after the container is back.
    let reported = wait_until(Duration::from_secs(30), || {
        let status = call("reconcile_status", json!({})).1;
        let findings = status["last_report"]["findings"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        findings
            .iter()
            .any(|f| f["kind"] == "missing_container" && f["outcome"] == "fixed")
    });
    assert!(reported, "{:#}", call("reconcile_status", json!({})).1);
    let (_, listed) = call("list_containers", json!({}));
    assert!(listed["stale"].is_null(), "{listed}");
}
