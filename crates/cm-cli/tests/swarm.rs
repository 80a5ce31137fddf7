//! `cm` with `[runtime] kind = "swarm"` on the real engine in a single-node swarm: health names
//! the runtime and what is weaker; create, list, get, exec, logs, stop, start, update and delete
//! work on a service; nothing is left behind.
//!
//! Swarm mode is the engine's global state: the test holds the engine alone (`TestEnv::alone`)
//! and `cm_testkit::swarm::SingleNodeSwarm` leaves swarm mode on drop if and only if it entered
//! it, failed test or not. Every `cm` and `docker` call is bounded in time.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cm_core::{HostMode, RoutingMode};
use cm_nginx::{Site, render_site};
use cm_testkit::http::{self, Response};
use cm_testkit::nginx::TestNginx;
use cm_testkit::swarm::SingleNodeSwarm;
use cm_testkit::{TestEnv, docker, docker_ok, require_docker, wait_until};
use serde_json::Value;

/// Runs `cm args...` in `env`'s world, killed after 5 minutes.
fn cm(env: &TestEnv, args: &[&str]) -> Output {
    std::process::Command::new("timeout")
        .args(["--kill-after=10", "300", env!("CARGO_BIN_EXE_cm")])
        .args(args)
        .envs(env.vars())
        .output()
        .unwrap()
}

/// Runs `cm args...`, which must succeed; returns stdout.
fn cm_ok(env: &TestEnv, args: &[&str]) -> String {
    let out = cm(env, args);
    assert!(
        out.status.success(),
        "cm {args:?} failed ({:?}): {}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn cm_json(env: &TestEnv, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&cm_ok(env, &all)).unwrap()
}

/// How long a route may take to give the expected answer (an app starting, a status reaching
/// cm-api's event feed).
const ROUTE_READY: Duration = Duration::from_secs(60);

/// The routes of a test's world: a real nginx with the site file of `cm nginx setup` in dynamic
/// mode, and the workspace's `cm-api` (beside `cm` in the target directory; `cargo test
/// --workspace` builds it) answering its route check. Both stopped on drop.
struct Routes {
    nginx: TestNginx,
    api: Api,
}

impl Routes {
    /// Starts nginx, whose site asks a cm-api on a free port, and returns it with the `[nginx]`
    /// section that points `cm` at it; `None` after a loud skip line when nginx is missing
    /// outside CI. cm-api is started by [`Routes::serve`], once the configuration is complete.
    fn nginx(env: &TestEnv, test: &str) -> Option<(TestNginx, u16)> {
        let api_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let enabled_dir = env.path().join("box-enabled");
        std::fs::create_dir_all(&enabled_dir).unwrap();
        let render = |port: u16| {
            render_site(&Site {
                mode: RoutingMode::Dynamic,
                host: HostMode::Path,
                listen: ([127, 0, 0, 1], port).into(),
                server_name: "_".into(),
                base_domain: None,
                api: ([127, 0, 0, 1], api_port).into(),
                enabled_dir: enabled_dir.clone(),
            })
            .unwrap()
        };
        TestNginx::start_site(test, &render).map(|nginx| (nginx, api_port))
    }

    /// Starts cm-api on `api_port` for nginx's route check.
    fn serve(env: &TestEnv, nginx: TestNginx, api_port: u16) -> Routes {
        Routes {
            nginx,
            api: Api::start(env, api_port),
        }
    }

    /// cm-api's and nginx's logs, for failure messages.
    fn logs(&self) -> String {
        let tail = |text: String| {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(15)..].join("\n")
        };
        format!(
            "cm-api:\n{}\nnginx:\n{}",
            tail(self.api.log_text()),
            tail(self.nginx.error_log_text())
        )
    }

    /// GETs `path` through nginx with `headers` until it answers `status` (or
    /// [`ROUTE_READY`] passes); asserts and returns that answer.
    fn get_until(&self, path: &str, headers: &[(&str, &str)], status: u16) -> Response {
        let mut last = None;
        wait_until(ROUTE_READY, || {
            last = http::get(self.nginx.port, path, headers).ok();
            last.as_ref().is_some_and(|r| r.status == status)
        });
        let last = last.unwrap_or_else(|| panic!("nginx did not answer {path}:\n{}", self.logs()));
        assert_eq!(last.status, status, "{path}: {last:?}\n{}", self.logs());
        last
    }
}

/// A cm-api process (the workspace's own, beside `cm`; `cargo test --workspace` builds it) on
/// `env`'s database and engine, logging to a file; killed on drop.
struct Api {
    child: Child,
    log: PathBuf,
    port: u16,
}

/// The admin key of a test's cm-api.
fn admin_key(env: &TestEnv) -> String {
    format!("swarm-api-admin-{}", env.run)
}

impl Api {
    /// Starts cm-api on `port` and waits (30 s at most) until it answers.
    fn start(env: &TestEnv, port: u16) -> Api {
        let binary = PathBuf::from(env!("CARGO_BIN_EXE_cm")).with_file_name("cm-api");
        assert!(
            binary.exists(),
            "{} is missing: run the tests with `cargo test --workspace` (or `cargo build -p cm-api` first)",
            binary.display()
        );
        let log = env.path().join(format!("cm-api-{port}.log"));
        let child = Command::new(binary)
            .envs(env.vars())
            .env("CM_LOG", "info")
            .env("CM_LISTEN", format!("127.0.0.1:{port}"))
            .env("CONTAINER_ADMIN_KEY", admin_key(env))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut api = Api { child, log, port };
        let started = Instant::now();
        while http::get(port, "/healthz", &[]).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30) && api.child.try_wait().unwrap().is_none(),
                "cm-api did not start: {}",
                api.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        api
    }

    /// Waits (30 s at most) until cm-api's status feed follows the engine's events.
    fn wait_for_live_statuses(&self) {
        assert!(
            wait_until(Duration::from_secs(30), || self
                .log_text()
                .contains("live container statuses")),
            "cm-api's status feed did not start: {}",
            self.log_text()
        );
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A container's status in cm-api's live view (`cm --api ... get`), `null` when unreadable.
    fn status(&self, env: &TestEnv, name: &str) -> Value {
        let out = Command::new("timeout")
            .args([
                "--kill-after=5",
                "60",
                env!("CARGO_BIN_EXE_cm"),
                "--json",
                "get",
                name,
            ])
            .envs(env.vars())
            .env("CM_API", format!("http://127.0.0.1:{}", self.port))
            .env("CM_TOKEN", admin_key(env))
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).map_or(Value::Null, |v| v["status"].clone())
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn cm_runs_containers_as_swarm_services() {
    if !require_docker() {
        return;
    }
    let env = TestEnv::alone();
    let swarm = SingleNodeSwarm::join(&env);
    env.set_config_extra("[runtime]\nkind = \"swarm\"\n");

    let health = cm_ok(&env, &["health"]);
    assert!(health.contains("engine    ok"), "{health}");
    assert!(health.contains("runtime   swarm: weaker"), "{health}");
    assert!(health.contains("0.0.0.0"), "{health}");
    let health = cm_json(&env, &["health"]);
    assert_eq!(health["engine"]["Ok"]["runtime"], "swarm", "{health}");

    let user = env.user("sw");
    let name = format!("{user}_cli_v4");
    let spec = cm_json(&env, &["create", &user, "cli_v4"]);
    assert_eq!(spec["container_name"], name.as_str());
    assert_eq!(spec["status"], "running", "{spec}");
    let id = spec["container_id"].as_str().unwrap().to_owned();

    // One service of the name, one replica, its task's container carrying our labels, host-mode
    // ports, the limits.
    let service = docker_ok(&["service", "inspect", &name, "--format", "{{.ID}}"]);
    assert_eq!(service, id);
    let replicas = docker_ok(&[
        "service",
        "inspect",
        &name,
        "--format",
        "{{.Spec.Mode.Replicated.Replicas}} {{(index .Endpoint.Ports 0).PublishMode}}",
    ]);
    assert_eq!(replicas, "1 host");
    let container = docker_ok(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.swarm.service.id={id}"),
    ]);
    assert!(!container.is_empty());
    let labels = docker_ok(&[
        "inspect",
        &container,
        "--format",
        "{{index .Config.Labels \"managed-by\"}} {{index .Config.Labels \"user-id\"}} {{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.CapDrop}}",
    ]);
    assert_eq!(
        labels,
        format!("ContainerManager {user} 536870912 1000000000 512 [ALL]")
    );

    // The store and the swarm agree: reconcile finds nothing to do, also after a stop.
    let report = cm_json(&env, &["reconcile", "--dry-run"]);
    assert_eq!(
        report["findings"].as_array().map(Vec::len),
        Some(0),
        "a dry run finds work: {report:#}"
    );

    let listed = cm_json(&env, &["list", &user]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["container_name"], name.as_str());
    assert_eq!(listed[0]["status"], "running");
    assert_eq!(cm_json(&env, &["get", &name])["status"], "running");

    let said = cm_ok(
        &env,
        &[
            "exec",
            &name,
            "sh",
            "-c",
            "echo swarm > /data/kept; cat /data/kept",
        ],
    );
    assert_eq!(said.trim(), "swarm");
    // The SSH keys of the create were written into the task's container.
    let keys = cm_ok(&env, &["exec", &name, "ls", "-a", "/home/cli/.ssh"]);
    assert!(keys.contains("authorized_keys"), "{keys}");
    assert!(
        wait_until(Duration::from_secs(60), || cm(
            &env,
            &["logs", &name, "--tail", "5"]
        )
        .status
        .success()),
        "cm logs failed"
    );

    cm_ok(&env, &["stop", &name]);
    assert_eq!(cm_json(&env, &["get", &name])["status"], "exited");
    assert!(!cm(&env, &["exec", &name, "true"]).status.success());
    let report = cm_json(&env, &["reconcile", "--dry-run"]);
    assert_eq!(
        report["findings"].as_array().map(Vec::len),
        Some(0),
        "a dry run finds work after a stop: {report:#}"
    );
    cm_ok(&env, &["start", &name]);
    assert_eq!(cm_json(&env, &["get", &name])["status"], "running");
    // A new task: /data is the same volume.
    assert_eq!(cm_ok(&env, &["exec", &name, "cat", "/data/kept"]).trim(), "swarm");

    // An update replaces the service (Swarm cannot rename one to keep it aside); /data stays.
    cm_ok(&env, &["update", &name]);
    let updated = cm_json(&env, &["get", &name]);
    assert_eq!(updated["status"], "running", "{updated}");
    assert_eq!(cm_ok(&env, &["exec", &name, "cat", "/data/kept"]).trim(), "swarm");
    let services = docker_ok(&[
        "service",
        "ls",
        "--filter",
        &env.label_filter(),
        "--format",
        "{{.Name}}",
    ]);
    assert_eq!(services, name, "one service after the update");

    cm_ok(&env, &["delete", &name, "--purge", "--force"]);
    assert!(!docker(&["service", "inspect", &name]).status.success());
    assert_eq!(cm_json(&env, &["list", &user]), serde_json::json!([]));
    assert!(
        cm_testkit::labelled(&env.label_filter())
            .iter()
            .all(|o| !o.starts_with("service ") && !o.starts_with("container ")),
        "{:?}",
        cm_testkit::labelled(&env.label_filter())
    );
    drop(swarm);
}

/// `cm` on a real 3-node swarm (`cm_testkit::swarm::Cluster`: the host engine as manager, two
/// workers in containers): placement by `--node` and by free memory, `cm nodes`, `cm move` with
/// the data, and a killed worker's container shown `node-down` while another keeps running.
///
/// Through a real nginx whose route check is the real cm-api (dynamic routing): the container on
/// a worker answers its owner with the file written into its `/data` and refuses another user;
/// after `cm move` to the other worker the route follows it; stopped, and on a killed worker,
/// nginx answers 503.
#[test]
fn cm_places_moves_and_reports_nodes_on_three_nodes() {
    if !require_docker() {
        return;
    }
    let env = TestEnv::alone();
    let mut cluster = cm_testkit::swarm::Cluster::start(&env, 2);
    cluster.load_image("cm-base:bookworm");
    let endpoints: String = cluster
        .endpoints()
        .iter()
        .map(|(host, endpoint)| format!("\"{host}\" = \"{endpoint}\"\n"))
        .collect();
    let nginx = Routes::nginx(&env, "cm_places_moves_and_reports_nodes_on_three_nodes");
    let nginx_toml = nginx
        .as_ref()
        .map(|(nginx, _)| nginx.dynamic_config_toml())
        .unwrap_or_default();
    env.set_config_extra(&format!(
        "{nginx_toml}[types.web]\nimage = \"cm-base:bookworm\"\ninternal_port = 8080\nmemory = \"64m\"\n\
         command = [\"python3\", \"-m\", \"http.server\", \"8080\", \"--directory\", \"/data\"]\n\
         [health]\nsample_seconds = 5\n\
         [runtime]\nkind = \"swarm\"\n[runtime.nodes]\n{endpoints}"
    ));
    let routes = nginx.map(|(nginx, api_port)| Routes::serve(&env, nginx, api_port));
    let (w1, w2) = (
        cluster.worker(1).hostname.clone(),
        cluster.worker(2).hostname.clone(),
    );

    let nodes = cm_json(&env, &["nodes"]);
    let nodes = nodes.as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    assert!(nodes.iter().all(|n| n["state"] == "ready"), "{nodes:?}");

    // Placed where asked, and the data written there.
    let user = env.user("mv");
    let name = format!("{user}_web");
    let spec = cm_json(&env, &["create", &user, "web", "--node", &w1]);
    assert_eq!(spec["node"], w1.as_str(), "{spec}");
    cm_ok(
        &env,
        &["exec", &name, "sh", "-c", "echo moved-with-me > /data/marker"],
    );
    let on_w1 = cluster
        .worker(1)
        .docker_ok(&["ps", "-q", "--filter", &env.label_filter()]);
    assert!(!on_w1.is_empty(), "its task runs on {w1}");

    // Through nginx: the owner gets the file from the worker's published port, another user is
    // refused.
    let owner = bearer(cm_ok(&env, &["token", "create", &user]).trim());
    let stranger = bearer(cm_ok(&env, &["token", "create", &env.user("stranger")]).trim());
    let marker = format!("/container/{user}/web/marker");
    if let Some(routes) = &routes {
        let got = routes.get_until(&marker, &[("Authorization", &owner)], 200);
        assert_eq!(got.body, "moved-with-me\n", "{got:?}");
        let refused = http::get(routes.nginx.port, &marker, &[("Authorization", &stranger)]).unwrap();
        assert_eq!(refused.status, 403, "{refused:?}");
        assert!(!refused.body.contains("moved-with-me"), "{refused:?}");
    }

    // Moved with its data: the file is there on the other worker, served on its address.
    let moved = cm_json(&env, &["move", &name, "--node", &w2]);
    assert_eq!(moved["from"], w1.as_str(), "{moved}");
    assert_eq!(moved["container"]["node"], w2.as_str(), "{moved}");
    assert!(moved["copied_bytes"].as_u64().unwrap() > 0, "{moved}");
    assert_eq!(
        cm_ok(&env, &["exec", &name, "cat", "/data/marker"]).trim(),
        "moved-with-me"
    );
    let on_w2 = cluster
        .worker(2)
        .docker_ok(&["ps", "-q", "--filter", &env.label_filter()]);
    assert!(!on_w2.is_empty(), "its task runs on {w2}");
    let volumes_w1 = cluster
        .worker(1)
        .docker_ok(&["volume", "ls", "-q", "--filter", &env.label_filter()]);
    assert!(
        !volumes_w1.contains(&format!("{name}_data")),
        "the old copy is gone: {volumes_w1}"
    );

    // The route follows the move; stopped, nginx says so (503); started again, it answers.
    if let Some(routes) = &routes {
        let got = routes.get_until(&marker, &[("Authorization", &owner)], 200);
        assert_eq!(got.body, "moved-with-me\n", "{got:?}");
        cm_ok(&env, &["stop", &name]);
        let stopped = routes.get_until(&marker, &[("Authorization", &owner)], 503);
        assert!(stopped.body.contains("stopped"), "{stopped:?}");
        cm_ok(&env, &["start", &name]);
        let got = routes.get_until(&marker, &[("Authorization", &owner)], 200);
        assert_eq!(got.body, "moved-with-me\n", "{got:?}");
        // cm-api's live view follows the worker's new task to running (the manager's task state
        // lags the worker's event; the view looks again).
        assert!(
            wait_until(Duration::from_secs(10), || routes.api.status(&env, &name)
                == "running"),
            "cm-api's view says {}",
            routes.api.status(&env, &name)
        );
    }

    // Left to choose, a second container avoids the node that holds the first one's memory.
    let other = env.user("other");
    let second = cm_json(&env, &["create", &other, "web"]);
    assert_ne!(second["node"], w2.as_str(), "{second}");

    // A worker killed: its container shows node-down, nothing is re-created empty elsewhere.
    cluster.kill_worker(2);
    assert!(cluster.wait_for_state(cluster.worker(2), "down", Duration::from_secs(60)));
    let got = cm_json(&env, &["get", &name]);
    assert_eq!(got["status"], "node-down", "{got}");
    // cm-api's sampler (every 5 s here) tells its route check: 503, not a wait on a dead address.
    if let Some(routes) = &routes {
        routes.get_until(&marker, &[("Authorization", &owner)], 503);
    }
    let nodes = cm_json(&env, &["nodes"]);
    assert!(
        nodes
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["name"] == w2.as_str() && n["state"] == "down"),
        "{nodes}"
    );
    let refused = cm(&env, &["move", &name, "--node", &w1]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("bring the node back"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let second_name = format!("{other}_web");
    assert_eq!(cm_json(&env, &["get", &second_name])["status"], "running");
    cm_ok(&env, &["delete", &second_name, "--purge", "--force"]);
    drop(cluster);
}

/// A service removed behind cm's back on a single-node swarm: `cm reconcile` finds the record's
/// container missing and re-creates it on its node, with the data it had.
#[test]
fn reconcile_re_creates_a_service_removed_behind_its_back() {
    if !require_docker() {
        return;
    }
    let env = TestEnv::alone();
    let _swarm = SingleNodeSwarm::join(&env);
    env.set_config_extra("[runtime]\nkind = \"swarm\"\n");
    let user = env.user("rc");
    let name = format!("{user}_cli_v4");
    cm_ok(&env, &["create", &user, "cli_v4"]);
    cm_ok(&env, &["exec", &name, "sh", "-c", "echo kept > /data/kept"]);
    docker_ok(&["service", "rm", &name]);
    assert!(wait_until(Duration::from_secs(60), || {
        docker(&["service", "inspect", &name]).status.code() == Some(1)
    }));

    let dry = cm_json(&env, &["reconcile", "--dry-run"]);
    assert!(dry.to_string().contains("\"missing_container\""), "{dry}");
    let report = cm_json(&env, &["reconcile"]);
    assert!(report.to_string().contains("\"fixed\""), "{report}");
    let got = cm_json(&env, &["get", &name]);
    assert_eq!(got["status"], "running", "{got}");
    assert_eq!(cm_ok(&env, &["exec", &name, "cat", "/data/kept"]).trim(), "kept");
    cm_ok(&env, &["delete", &name, "--purge", "--force"]);
}

/// cm-api running beside a single-node swarm: when Swarm restarts a task by itself (its process
/// was killed), the new container starts from the image without the SSH keys, and cm-api's status
/// feed writes them again, without a `cm start` or a reconcile: OpenSSH's real client logs in
/// before and after.
#[test]
fn cm_api_writes_the_keys_again_into_a_task_swarm_restarted() {
    if !require_docker() || !cm_testkit::require("ssh", &["-V"], "OpenSSH's client") {
        return;
    }
    let env = TestEnv::alone();
    let _swarm = SingleNodeSwarm::join(&env);
    env.set_config_extra("[runtime]\nkind = \"swarm\"\n");
    let user = env.user("fk");
    let name = format!("{user}_cli_v4");
    let spec = cm_json(&env, &["create", &user, "cli_v4"]);
    let service = spec["container_id"].as_str().unwrap().to_owned();
    let port = spec["ssh_port"].as_u64().unwrap().to_string();

    let key = env.path().join("id_ed25519");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "alice@laptop", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    cm_ok(&env, &["add-ssh-key", &name, public.trim()]);
    let known_hosts = env.path().join("known_hosts");
    // Bounded: a login that hangs is killed after 30 s.
    let login = || {
        std::process::Command::new("timeout")
            .args(["--kill-after=5", "30", "ssh", "-i"])
            .arg(&key)
            .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
            .args(["-o", "StrictHostKeyChecking=no", "-o", "ConnectTimeout=10"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .args(["-p", &port, "cli@127.0.0.1", "echo logged-in"])
            .stdin(std::process::Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("logged-in"))
    };
    assert!(wait_until(Duration::from_secs(30), login), "the key logs in");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let api = Api::start(&env, port);
    api.wait_for_live_statuses();
    let status_through_api = || api.status(&env, &name);
    let task = || {
        docker_ok(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.swarm.service.id={service}"),
        ])
    };
    let killed = task();
    assert!(!killed.is_empty(), "the task runs");
    docker_ok(&["kill", &killed]);
    assert!(
        wait_until(Duration::from_secs(60), || {
            let now = task();
            !now.is_empty() && now != killed
        }),
        "Swarm started a new task"
    );
    assert!(
        wait_until(Duration::from_secs(30), login),
        "the key logs in to the new task's container: {}",
        String::from_utf8_lossy(&cm(&env, &["exec", &name, "cat", "/home/cli/.ssh/authorized_keys"]).stderr)
    );
    // cm-api's live view follows Swarm's new task to running (the manager learns of it after
    // the node's engine tells it: the view looks again).
    assert!(
        wait_until(Duration::from_secs(15), || status_through_api() == "running"),
        "cm-api's view says {}",
        status_through_api()
    );
    cm_ok(&env, &["stop", &name]);
    assert!(
        wait_until(Duration::from_secs(15), || status_through_api() == "exited"),
        "after a stop cm-api's view says {}",
        status_through_api()
    );
    cm_ok(&env, &["start", &name]);
    assert!(
        wait_until(Duration::from_secs(15), || status_through_api() == "running"),
        "after a start cm-api's view says {}",
        status_through_api()
    );
    cm_ok(&env, &["delete", &name, "--purge", "--force"]);
}
