//! Running `cm` against a test world and reading Docker's view of it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output};
use std::time::Duration;

use cm_testkit::{TestEnv, docker_ok, require_docker, wait_until};
use serde_json::Value;

/// A test world with a `cm` pointed at it.
pub struct World {
    pub env: TestEnv,
}

impl World {
    /// A new world, or `None` (after a loud skip line) when Docker is missing outside CI.
    pub fn new() -> Option<Self> {
        if !require_docker() {
            return None;
        }
        Some(World { env: TestEnv::new() })
    }

    /// A `cm` command with this world's environment, killed after 5 minutes (a hung engine fails
    /// the test instead of hanging the suite).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("timeout");
        command
            .args(["--kill-after=10", "300", env!("CARGO_BIN_EXE_cm")])
            .args(args)
            .envs(self.env.vars());
        command
    }

    /// Runs `cm args...`.
    pub fn cm(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs `cm args...`, which must succeed; returns stdout.
    pub fn cm_ok(&self, args: &[&str]) -> String {
        let out = self.cm(args);
        assert!(
            out.status.success(),
            "cm {args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `cm --json args...`, which must succeed; returns the JSON document.
    pub fn cm_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.cm_ok(&all)).unwrap()
    }

    /// Creates a container and returns its spec.
    pub fn create(&self, user: &str, kind: &str) -> Value {
        self.cm_json(&["create", user, kind])
    }

    /// Asserts that the store and the engine agree: every record has its container, every
    /// labelled container has a record, every lease an owner, and a further reconcile finds
    /// nothing.
    pub fn assert_in_agreement(&self) {
        let report = self.cm_json(&["reconcile", "--dry-run"]);
        assert_eq!(
            report["findings"].as_array().map(Vec::len),
            Some(0),
            "a dry run still finds work: {report:#}"
        );
        let records = self.cm_json(&["list", "--all"]);
        let names: std::collections::BTreeSet<String> = records
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["container_name"].as_str().unwrap().to_owned())
            .collect();
        let (containers, _, _) = self.objects();
        assert_eq!(names, containers.into_iter().collect());
    }

    /// Docker's view of a container (`docker inspect`).
    pub fn inspect(&self, name: &str) -> Value {
        let text = docker_ok(&["inspect", name]);
        let mut all: Vec<Value> = serde_json::from_str(&text).unwrap();
        all.remove(0)
    }

    /// The names of this run's containers, volumes and networks on the engine.
    pub fn objects(&self) -> (Vec<String>, Vec<String>, Vec<String>) {
        let filter = self.env.label_filter();
        let lines = |text: String| -> Vec<String> {
            let mut v: Vec<String> = text
                .lines()
                .map(str::to_owned)
                .filter(|l| !l.is_empty())
                .collect();
            v.sort();
            v
        };
        (
            lines(docker_ok(&[
                "ps",
                "-a",
                "--filter",
                &filter,
                "--format",
                "{{.Names}}",
            ])),
            lines(docker_ok(&[
                "volume",
                "ls",
                "--filter",
                &filter,
                "--format",
                "{{.Name}}",
            ])),
            lines(docker_ok(&[
                "network",
                "ls",
                "--filter",
                &filter,
                "--format",
                "{{.Name}}",
            ])),
        )
    }
}

/// GET `path` from 127.0.0.1:`port`; the status line and body, or `None` when nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// Waits until the container's HTTP port answers 200 on `/healthz`.
pub fn wait_for_http(port: u16) -> bool {
    wait_until(Duration::from_secs(30), || {
        matches!(http_get(port, "/healthz"), Some((200, _)))
    })
}

/// The port of a spec.
pub fn port_of(spec: &Value) -> u16 {
    u16::try_from(spec["port"].as_u64().unwrap()).unwrap()
}

/// The stderr of an output, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
