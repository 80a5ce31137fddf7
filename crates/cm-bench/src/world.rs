//! The bench's private world: a run id, a temp dir, `cm` instances (each its own database, config,
//! port pool and subnet pool), a `cm-api` server, and the cleanup guard.
//!
//! Every Docker object of a run carries `cm.bench=<run id>` (cm's `[labels]` puts it on everything
//! cm creates; the raw side adds it itself) and `cm.bench.instance=<run id>-<instance>`, so an
//! instance can be wiped between rounds and the whole run at the end, without touching anything
//! else on the engine.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bollard::Docker;
use bollard::query_parameters::ListContainersOptionsBuilder;
use tokio::process::{Child, Command};

use crate::Args;
use crate::http::{Endpoint, get_status};
use crate::stats::ms_since;

/// The label on every object of a run.
pub const RUN_LABEL: &str = "cm.bench";
/// The label naming the instance (a cm database, or a raw side) an object belongs to.
pub const INSTANCE_LABEL: &str = "cm.bench.instance";

/// The container type both sides create: the default image's small Python HTTP server.
pub mod kind {
    /// The type name in cm's configuration.
    pub const NAME: &str = "bench";
    /// The image (built by images/build.sh).
    pub const IMAGE: &str = "toolboxv2:latest";
    /// The HTTP port inside the container.
    pub const INTERNAL_PORT: u16 = 8080;
    /// Memory limit, as cm's config writes it and in bytes.
    pub const MEMORY: &str = "256m";
    /// [`MEMORY`] in bytes.
    pub const MEMORY_BYTES: i64 = 256 * 1024 * 1024;
    /// CPU limit.
    pub const CPUS: f64 = 0.5;
    /// Process limit.
    pub const PIDS: i64 = 256;
    /// The capabilities kept (all others dropped), as cm's default list.
    pub const CAPS: [&str; 9] = [
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "SETUID",
        "SETGID",
        "KILL",
        "SYS_CHROOT",
        "AUDIT_WRITE",
        "NET_BIND_SERVICE",
    ];
}

/// Port pools: cm instances lease from `CM_PORTS` (routes from `ROUTES_PORTS`), the raw side
/// takes `RAW_PORTS` in order. Far from cm's default pool 9000-9500 and the tests' 40000+.
pub const CM_PORTS: (u16, u16) = (30000, 30999);
/// The routes scenario's pool.
pub const ROUTES_PORTS: (u16, u16) = (32000, 32499);
/// The raw side's ports.
pub const RAW_PORTS: (u16, u16) = (31000, 31999);

/// One benchmark run.
pub struct Bench {
    /// The run id, the value of `cm.bench` on every object of this run.
    pub run: String,
    /// Trial mode.
    pub quick: bool,
    /// The `cm` binary.
    pub cm_bin: PathBuf,
    /// The `cm-api` binary, when built.
    pub api_bin: Option<PathBuf>,
    /// The engine, for the raw side.
    pub docker: Docker,
    /// The engine's unix socket, for the HTTP load runs against the engine itself.
    pub engine_socket: Option<PathBuf>,
    dir: tempfile::TempDir,
    users: AtomicU32,
    raws: AtomicU32,
}

impl Bench {
    /// Checks the binaries, the engine and the image, and makes the temp dir.
    pub async fn new(args: &Args) -> anyhow::Result<Bench> {
        let cm_bin = args.bin_dir.join("cm");
        if !cm_bin.is_file() {
            bail!(
                "{} is missing: build it first (scripts/bench.sh does: cargo build --release --locked -p cm-cli -p cm-bench)",
                cm_bin.display()
            );
        }
        let api_bin = Some(args.bin_dir.join("cm-api")).filter(|p| p.is_file() && !args.no_api);
        let docker = Docker::connect_with_defaults()
            .context("connecting to the Docker engine")?
            .negotiate_version()
            .await
            .context("connecting to the Docker engine")?;
        docker
            .inspect_image(kind::IMAGE)
            .await
            .with_context(|| format!("image {} is missing: run images/build.sh", kind::IMAGE))?;
        let run = random_hex(4)?;
        let others = other_runs(&docker, &run).await;
        if !others.is_empty() {
            crate::progress!(
                "note: containers of other bench runs exist ({}); they are left alone. Remove them with \
                 `docker rm -f $(docker ps -aq --filter label={RUN_LABEL}=<run>)` if their run is dead.",
                others.join(", ")
            );
        }
        let dir = tempfile::Builder::new().prefix("cm-bench-").tempdir()?;
        Ok(Bench {
            run,
            quick: args.quick,
            cm_bin: std::path::absolute(&cm_bin)?,
            api_bin: api_bin.map(std::path::absolute).transpose()?,
            docker,
            engine_socket: engine_socket(),
            dir,
            users: AtomicU32::new(0),
            raws: AtomicU32::new(0),
        })
    }

    /// A new user id, unique to this run.
    pub fn user(&self) -> String {
        format!("b{}-{:04}", self.run, self.users.fetch_add(1, Ordering::Relaxed))
    }

    /// The next sequence number of a raw box (its port and subnet follow from it).
    pub fn next_raw(&self) -> u32 {
        self.raws.fetch_add(1, Ordering::Relaxed)
    }

    /// The value of `cm.bench.instance` for an instance name.
    pub fn label(&self, name: &str) -> String {
        format!("{}-{name}", self.run)
    }

    /// A new cm instance: its own database and config (labels, pools, the bench type, and
    /// `extra_toml`; routing is off unless `extra_toml` has an `[nginx]` section). Calling it again
    /// with the same name rewrites the config of the same instance.
    pub fn instance(
        &self,
        name: &str,
        ports: (u16, u16),
        subnets: &str,
        extra_toml: &str,
    ) -> anyhow::Result<Cm> {
        self.instance_labelled(name, ports, subnets, &[], extra_toml)
    }

    /// [`Bench::instance`] whose `[labels]` also hold `labels` (the swarm scenario adds its
    /// cluster fixture's own, so that the fixture's cleanup finds what cm made too).
    pub fn instance_labelled(
        &self,
        name: &str,
        ports: (u16, u16),
        subnets: &str,
        labels: &[(String, String)],
        extra_toml: &str,
    ) -> anyhow::Result<Cm> {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir)?;
        let cm = Cm {
            label: self.label(name),
            db: dir.join("cm.db"),
            dir,
            bin: self.cm_bin.clone(),
            ports,
            subnets: subnets.to_owned(),
            labels: labels.to_vec(),
        };
        self.write_config(&cm, extra_toml)?;
        Ok(cm)
    }

    /// A second configuration of the installation `of`: the same database, labels and pools, its
    /// own config file (`extra_toml`, such as another routing mode) in its own directory.
    pub fn front(&self, of: &Cm, name: &str, extra_toml: &str) -> anyhow::Result<Cm> {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir)?;
        let cm = Cm {
            label: of.label.clone(),
            db: of.db.clone(),
            dir,
            bin: self.cm_bin.clone(),
            ports: of.ports,
            subnets: of.subnets.clone(),
            labels: of.labels.clone(),
        };
        self.write_config(&cm, extra_toml)?;
        Ok(cm)
    }

    fn write_config(&self, cm: &Cm, extra_toml: &str) -> anyhow::Result<()> {
        let caps: Vec<String> = kind::CAPS.iter().map(|c| format!("\"{c}\"")).collect();
        let nginx = if extra_toml.lines().any(|l| l.trim() == "[nginx]") {
            ""
        } else {
            "[nginx]\nenabled = false\n"
        };
        // The engine side does not watch a new container for an early exit: neither does cm here,
        // so both do the same work (docs/benchmarks.md says what the watch adds by default).
        let health = "[health]\nexit_check_ms = 0\n";
        let labels: String = cm
            .labels
            .iter()
            .map(|(k, v)| format!("{} = {}\n", toml_string(k), toml_string(v)))
            .collect();
        let config = format!(
            "port_pool = {{ start = {}, end = {} }}\n\
             subnet_pool = {{ range = \"{}\", prefix_length = 28 }}\n\
             [ssh]\nbind_address = \"127.0.0.1\"\nserver_host = \"127.0.0.1\"\n\
             [labels]\n\"{RUN_LABEL}\" = \"{}\"\n\"{INSTANCE_LABEL}\" = \"{}\"\n{labels}\
             [types.{}]\ndescription = \"benchmark: the image's HTTP server\"\nimage = \"{}\"\n\
             internal_port = {}\nssh = \"off\"\nmemory = \"{}\"\ncpus = {}\npids_limit = {}\n\
             restart_policy = \"unless-stopped\"\ncap_add = [{}]\n{health}{nginx}{extra_toml}",
            cm.ports.0,
            cm.ports.1,
            cm.subnets,
            self.run,
            cm.label,
            kind::NAME,
            kind::IMAGE,
            kind::INTERNAL_PORT,
            kind::MEMORY,
            kind::CPUS,
            kind::PIDS,
            caps.join(", "),
        );
        std::fs::write(cm.config_path(), config)?;
        Ok(())
    }

    /// Removes every object of one instance (a cm instance or a raw side), by its label.
    pub fn remove_instance(&self, label: &str) {
        cm_testkit::remove_labelled(&format!("label={INSTANCE_LABEL}={label}"));
    }

    /// Removes every object of this run.
    pub fn cleanup(&self) {
        cm_testkit::remove_labelled(&format!("label={RUN_LABEL}={}", self.run));
    }

    /// How many containers, volumes and networks of this run still exist.
    pub fn leftovers(&self) -> usize {
        let filter = format!("label={RUN_LABEL}={}", self.run);
        [
            vec!["ps", "-aq", "--filter", &filter],
            vec!["volume", "ls", "-q", "--filter", &filter],
            vec!["network", "ls", "-q", "--filter", &filter],
        ]
        .iter()
        .map(|args| {
            String::from_utf8_lossy(&cm_testkit::docker(args).stdout)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .count()
        })
        .sum()
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        // Also after an error or a panic: nothing of this run stays on the engine.
        self.cleanup();
    }
}

/// One cm installation of the bench: a database and a config in their own directory.
pub struct Cm {
    /// Its `cm.bench.instance` label value.
    pub label: String,
    db: PathBuf,
    dir: PathBuf,
    bin: PathBuf,
    ports: (u16, u16),
    subnets: String,
    labels: Vec<(String, String)>,
}

/// A TOML basic string of `text` (a JSON string is one).
fn toml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

/// A finished `cm` process.
pub struct Finished {
    /// Wall time from spawn to exit, in ms.
    pub ms: f64,
    /// Its standard output.
    pub stdout: String,
}

impl Cm {
    /// The configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    /// The database file (shared by the configurations of one installation, see [`Bench::front`]).
    pub fn db_path(&self) -> PathBuf {
        self.db.clone()
    }

    /// The directory of this instance (for logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The environment that points a `cm` or `cm-api` process at this instance.
    pub fn vars(&self) -> [(&'static str, String); 3] {
        [
            ("CM_CONFIG", self.config_path().display().to_string()),
            ("CM_DB", self.db_path().display().to_string()),
            ("CM_LOG", "warn".to_owned()),
        ]
    }

    /// Runs `cm args...` as a fresh process and times it; an error carries its stderr.
    pub async fn run(&self, args: &[&str]) -> anyhow::Result<Finished> {
        let mut command = Command::new(&self.bin);
        command
            .args(args)
            .envs(self.vars())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let start = Instant::now();
        let out = command.output().await.context("running cm")?;
        let ms = ms_since(start);
        if !out.status.success() {
            bail!(
                "cm {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(Finished {
            ms,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        })
    }

    /// `cm create USER bench`; its wall time in ms.
    pub async fn create(&self, user: &str) -> anyhow::Result<f64> {
        Ok(self.run(&["create", user, kind::NAME]).await?.ms)
    }

    /// `cm delete USER_bench --force --purge`; its wall time in ms.
    pub async fn delete(&self, user: &str) -> anyhow::Result<f64> {
        Ok(self
            .run(&["delete", &container_name(user), "--force", "--purge"])
            .await?
            .ms)
    }
}

/// The container cm names `{user}_{type}`.
pub fn container_name(user: &str) -> String {
    format!("{user}_{}", kind::NAME)
}

/// A running `cm-api` over one instance, killed on drop.
pub struct ApiServer {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// `Bearer <admin key>`.
    pub authorization: String,
    log: PathBuf,
}

impl ApiServer {
    /// Starts `cm-api` on a free loopback port with a fresh admin key and waits for `/healthz`.
    pub async fn start(bin: &Path, cm: &Cm, tag: &str) -> anyhow::Result<ApiServer> {
        Self::start_on(bin, cm, tag, free_addr()?, &random_key()?).await
    }

    /// Starts `cm-api` on `addr` (chosen before, for a site file that must name it) with the admin
    /// key `key` and waits for `/healthz`.
    pub async fn start_on(
        bin: &Path,
        cm: &Cm,
        tag: &str,
        addr: SocketAddr,
        key: &str,
    ) -> anyhow::Result<ApiServer> {
        let log = cm.dir().join(format!("cm-api-{tag}.log"));
        let child = Command::new(bin)
            .envs(cm.vars())
            .env("CM_LOG", "info")
            .env("CM_LISTEN", addr.to_string())
            .env("CONTAINER_ADMIN_KEY", key)
            // The bench measures reconciles itself; a periodic one in the middle would only add noise.
            .env("CM_RECONCILE_INTERVAL", "86400")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .context("starting cm-api")?;
        let mut server = ApiServer {
            child,
            addr,
            authorization: format!("Bearer {key}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                bail!("cm-api exited with {status}: {}", server.log_text());
            }
            if get_status(&Endpoint::Tcp(addr), "/healthz").await == Some(200) {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!(
                    "cm-api did not answer /healthz within 30 s: {}",
                    server.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Its resident memory (VmRSS) in MiB.
    pub fn rss_mib(&self) -> Option<f64> {
        crate::host::rss_kib(self.pid()?).map(|k| k as f64 / 1024.0)
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it answers listings from the event-fed status view: its `reconcile_status` says so,
    /// or (older builds) its log has cm-core's line about the live view.
    pub async fn uses_event_view(&self) -> bool {
        let auth = [("Authorization", self.authorization.as_str())];
        let req = crate::http::request("GET", "/api/ContainerManager/reconcile_status", &auth, None);
        let live = crate::http::once(&Endpoint::Tcp(self.addr), &req)
            .await
            .filter(|r| r.status == 200)
            .and_then(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
            .and_then(|v| v["live_statuses"].as_bool());
        live.unwrap_or_else(|| {
            self.log_text()
                .contains("live container statuses from the engine's event stream")
        })
    }

    /// Stops it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A free port on 127.0.0.1 (released again; cm-api binds it right after).
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// A fresh admin key for a cm-api of the bench.
pub fn random_key() -> anyhow::Result<String> {
    Ok(format!("cmbench-{}", random_hex(16)?))
}

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The engine's unix socket (`DOCKER_HOST=unix://...` or the default), `None` for a TCP engine.
fn engine_socket() -> Option<PathBuf> {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.is_empty() => host.strip_prefix("unix://").map(PathBuf::from),
        _ => Some(PathBuf::from("/var/run/docker.sock")),
    }
}

/// The run ids of other bench runs that left containers behind.
async fn other_runs(docker: &Docker, run: &str) -> Vec<String> {
    let filters = std::collections::HashMap::from([("label".to_owned(), vec![RUN_LABEL.to_owned()])]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let mut runs: Vec<String> = docker
        .list_containers(Some(options))
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| c.labels?.get(RUN_LABEL).cloned())
        .filter(|r| r != run)
        .collect();
    runs.sort();
    runs.dedup();
    runs
}
