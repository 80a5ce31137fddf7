//! The in-process test app over cm-core's fakes, and a small HTTP client for the tests against a
//! listening `cm-api`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use cm_api::AppState;
use cm_core::testing::{FakeWorld, fake_auth};
use cm_core::{Secret, UserId};
use serde_json::{Value, json};

/// The admin key of the in-process app, as if from `CONTAINER_ADMIN_KEY`.
pub const ADMIN: &str = "an-admin-key-from-env-0123456789";

/// A key the fake parser accepts.
pub const ALICE_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop";

/// Its fingerprint under the fake parser.
pub const ALICE_KEY_FINGERPRINT: &str = "SHA256:C9okWi0dh2l9GKJl";

/// The API's endpoint path.
pub fn api(name: &str) -> String {
    format!("{}/{name}", cm_api::API_PREFIX)
}

/// Credentials a request carries.
#[derive(Debug, Clone)]
pub enum Cred {
    /// None.
    Anonymous,
    /// `Authorization: Bearer <secret>`.
    Bearer(String),
}

impl Cred {
    pub fn admin() -> Self {
        Cred::Bearer(ADMIN.to_owned())
    }
}

/// The app over fresh fakes.
pub struct TestApp {
    pub state: AppState,
    pub world: FakeWorld,
    /// Its audit trail.
    pub audit: std::sync::Arc<cm_core::testing::MemoryAudit>,
}

impl TestApp {
    /// An app whose admin key is [`ADMIN`].
    pub fn new() -> Self {
        Self::with_auth(fake_auth(Some(ADMIN)))
    }

    /// An app whose admin key is [`ADMIN`], over `config` (TOML).
    pub fn with_config(config: &str) -> Self {
        Self::over(
            FakeWorld::with_config(cm_core::Config::from_toml(config).unwrap()),
            fake_auth(Some(ADMIN)),
        )
    }

    /// An app over `auth`.
    pub fn with_auth(auth: cm_core::Auth) -> Self {
        Self::over(FakeWorld::new(), auth)
    }

    /// An app over `world` and `auth`.
    pub fn over(world: FakeWorld, auth: cm_core::Auth) -> Self {
        init_test_log();
        let audit = std::sync::Arc::new(cm_core::testing::MemoryAudit::default());
        let auditor = cm_core::Auditor::new(audit.clone(), Duration::from_secs(90 * 24 * 3600));
        let state = AppState::new(world.manager.clone(), auth).with_auditor(auditor);
        TestApp { state, world, audit }
    }

    /// Sends a request; the status and the body as JSON (`Value::String` when it is not JSON).
    pub async fn send(&self, req: TestRequest) -> (StatusCode, Value) {
        let (status, _, body) = self.send_full(req).await;
        (status, body)
    }

    /// Sends a request; the status, the headers and the body.
    pub async fn send_full(
        &self,
        req: TestRequest,
    ) -> (StatusCode, actix_web::http::header::HeaderMap, Value) {
        let app = test::init_service(cm_api::app(self.state.clone())).await;
        let resp = test::call_service(&app, req.to_request()).await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = test::read_body(resp).await;
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, headers, body)
    }

    /// GET `path_and_query`.
    pub async fn get(&self, path_and_query: &str, cred: &Cred) -> (StatusCode, Value) {
        self.send(with_cred(TestRequest::get().uri(path_and_query), cred))
            .await
    }

    /// POST a JSON body.
    pub async fn post(&self, path: &str, body: Value, cred: &Cred) -> (StatusCode, Value) {
        self.send(with_cred(TestRequest::post().uri(path).set_json(body), cred))
            .await
    }

    /// POST as the admin; the answer must have `expected` status.
    pub async fn admin_post(&self, name: &str, body: Value, expected: StatusCode) -> Value {
        let (status, answer) = self.post(&api(name), body, &Cred::admin()).await;
        assert_eq!(status, expected, "{name}: {answer}");
        answer
    }

    /// Creates a container as the admin and returns its record.
    pub async fn create(&self, user: &str, kind: &str) -> Value {
        let answer = self
            .admin_post(
                "create_container",
                json!({ "user_id": user, "container_type": kind }),
                StatusCode::CREATED,
            )
            .await;
        answer["container"].clone()
    }

    /// A new token for `user`, straight from the auth.
    pub async fn token(&self, user: &str) -> String {
        let (_, secret) = self
            .state
            .auth
            .create_user_token(&UserId::parse(user).unwrap())
            .await
            .unwrap();
        secret.expose().to_owned()
    }

    /// A token that was created and then revoked.
    pub async fn revoked_token(&self, user: &str) -> String {
        let (record, secret) = self
            .state
            .auth
            .create_user_token(&UserId::parse(user).unwrap())
            .await
            .unwrap();
        self.state.auth.revoke_token(&record.id).await.unwrap();
        assert!(
            self.state
                .auth
                .authenticate(&Secret::new(secret.expose()))
                .await
                .is_err()
        );
        secret.expose().to_owned()
    }
}

/// With `TEST_LOG=1`, the app's logs go to the test output (once per test binary).
fn init_test_log() {
    static INIT: std::sync::Once = std::sync::Once::new();
    if std::env::var_os("TEST_LOG").is_some() {
        INIT.call_once(|| {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
                .with_test_writer()
                .init();
        });
    }
}

/// Adds credentials to a request.
pub fn with_cred(req: TestRequest, cred: &Cred) -> TestRequest {
    match cred {
        Cred::Anonymous => req,
        Cred::Bearer(secret) => req.insert_header(("Authorization", format!("Bearer {secret}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// A real `cm-api` process.

/// A `cm-api` child process, killed on drop; its stderr is collected as it comes.
pub struct Server {
    child: Child,
    pub port: u16,
    stderr: Arc<Mutex<String>>,
    lines: Receiver<String>,
}

impl Server {
    /// Starts `cm-api` with `vars` on a free loopback port and waits until `/healthz` answers.
    pub fn start(vars: &[(&str, String)], remove: &[&str]) -> Self {
        Self::start_on(free_port(), vars, remove)
    }

    /// Like [`Server::start`], on a port the caller chose (for an nginx that must know it first).
    pub fn start_on(port: u16, vars: &[(&str, String)], remove: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cm-api"));
        command
            .env("CM_LISTEN", format!("127.0.0.1:{port}"))
            .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for name in remove {
            command.env_remove(name);
        }
        let mut child = command.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
                let _ = tx.send(line);
            }
        });
        let server = Server {
            child,
            port,
            stderr,
            lines,
        };
        let started = Instant::now();
        while http(port, "GET", "/healthz", &[], None).is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "cm-api did not start: {}",
                server.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// The server's resident memory now, in bytes (from `/proc`).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib * 1024
    }

    /// Everything the server wrote on stderr so far.
    pub fn stderr(&self) -> String {
        // Give the reader thread a moment to catch up with lines already written.
        while self.lines.try_recv().is_ok() {}
        std::thread::sleep(Duration::from_millis(200));
        self.stderr.lock().unwrap().clone()
    }

    /// A request to the server.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> (u16, Value) {
        let text = body.map(Value::to_string);
        let (status, body) = http(self.port, method, path, headers, text.as_deref())
            .unwrap_or_else(|| panic!("no answer to {method} {path}"));
        let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
        (status, value)
    }

    /// Stops the server (SIGKILL) and waits for it.
    /// Sends SIGTERM (as systemd and `docker stop` do) and waits up to `limit` for the exit.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        // A single, positive pid: never a process group (see dashboard_browser.rs).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 request with `Connection: close`; the status and the (de-chunked) body, or `None`
/// when nothing answers.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Option<(u16, String)> {
    http_full(port, method, path, headers, body).map(|(status, _, body)| (status, body))
}

/// Like [`http`], with the answer's header block (lowercase names) too.
pub fn http_full(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Option<(u16, String, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(120))).ok()?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    if let Some(body) = body {
        request.push_str(body);
    }
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding: chunked"));
    let body = if chunked { dechunk(rest) } else { rest.to_owned() };
    Some((status, head.to_ascii_lowercase(), body))
}

/// An answer read as it arrives, such as a log follow: the test waits for what it expects in
/// the stream instead of sleeping.
pub struct Streaming {
    stream: TcpStream,
    raw: Vec<u8>,
    /// Where the body starts in `raw`.
    body_at: usize,
    /// The status.
    pub status: u16,
}

/// Sends a request and reads until its status line and headers have come.
pub fn open_stream(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> Option<Streaming> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_millis(200))).ok()?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = Streaming {
        stream,
        raw: Vec::new(),
        body_at: 0,
        status: 0,
    };
    let head_came = answer.read_until(Duration::from_secs(60), |raw| {
        raw.windows(4).any(|w| w == b"\r\n\r\n")
    });
    if !head_came {
        return None;
    }
    let text = String::from_utf8_lossy(&answer.raw).into_owned();
    let (head, _) = text.split_once("\r\n\r\n")?;
    answer.body_at = head.len() + 4;
    answer.status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some(answer)
}

impl Streaming {
    /// Reads until `done` holds for what came so far, the peer closes, or `limit` passes.
    fn read_until(&mut self, limit: Duration, done: impl Fn(&[u8]) -> bool) -> bool {
        let started = std::time::Instant::now();
        let mut buffer = [0u8; 8192];
        while !done(&self.raw) {
            if started.elapsed() > limit {
                return false;
            }
            match self.stream.read(&mut buffer) {
                Ok(0) => return done(&self.raw),
                Ok(n) => self.raw.extend_from_slice(&buffer[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return done(&self.raw),
            }
        }
        true
    }

    /// The body received so far (as it came, chunk framing included).
    pub fn received(&self) -> String {
        String::from_utf8_lossy(&self.raw[self.body_at..]).into_owned()
    }

    /// Waits until the body holds `needle`; false when `limit` passed first.
    pub fn wait_for(&mut self, needle: &str, limit: Duration) -> bool {
        let at = self.body_at;
        self.read_until(limit, |raw| {
            String::from_utf8_lossy(&raw[at.min(raw.len())..]).contains(needle)
        })
    }

    /// Reads to the end of the answer (the server closes it); the de-chunked body, or `None` when
    /// it did not end within `limit`.
    pub fn finish(mut self, limit: Duration) -> Option<String> {
        let started = std::time::Instant::now();
        let mut buffer = [0u8; 8192];
        loop {
            if started.elapsed() > limit {
                return None;
            }
            match self.stream.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => self.raw.extend_from_slice(&buffer[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return None,
            }
        }
        // A chunked answer is complete only with its last, empty chunk.
        let head = String::from_utf8_lossy(&self.raw[..self.body_at]).to_ascii_lowercase();
        if head.contains("transfer-encoding: chunked") && !self.raw.ends_with(b"0\r\n\r\n") {
            return None;
        }
        let text = String::from_utf8_lossy(&self.raw[self.body_at..]).into_owned();
        Some(dechunk(&text))
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        body.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    body
}

/// Writes a default configuration without nginx routing (so a test never reads the host's
/// configuration nor touches the host's nginx).
pub fn empty_config(dir: &Path) -> String {
    let path = dir.join("config.toml");
    std::fs::write(&path, "[nginx]\nenabled = false\n").unwrap();
    path.display().to_string()
}

/// A Python virtual environment under `dir` with `packages` installed from PyPI (pinned by the
/// caller), each step with a time limit.
pub fn python_venv(dir: &std::path::Path, name: &str, packages: &[&str]) -> std::path::PathBuf {
    let venv = dir.join(name);
    let pip = venv.join("bin/pip");
    let mut install = vec!["install", "--quiet", "--disable-pip-version-check"];
    install.extend_from_slice(packages);
    for (program, args) in [
        ("python3", vec!["-m", "venv", venv.to_str().unwrap()]),
        (pip.to_str().unwrap(), install),
    ] {
        let out = Command::new("timeout")
            .args(["--kill-after=10", "600", program])
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    venv
}
