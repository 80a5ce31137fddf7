//! Docker Swarm fixtures: tests that put the engine into swarm mode.
//!
//! Swarm mode is the engine's global state: every fixture here takes a [`TestEnv`] made by
//! [`TestEnv::alone`], which holds the machine-wide engine lock exclusively, so no other Docker
//! test (of any test binary) runs while the engine is a swarm manager. Creating one from an
//! ordinary [`TestEnv::new`] panics.
//!
//! - [`SingleNodeSwarm`] joins the host engine to a single-node swarm
//!   (`docker swarm init --advertise-addr 127.0.0.1` with its own address pool, [`ADDR_POOL`],
//!   away from the test subnets 10.230.0.0/16). If the engine already was a swarm manager (a
//!   developer's machine) it uses that swarm and leaves it as it was; otherwise it leaves swarm
//!   mode on drop. Either way, on drop it first removes the services and networks carrying the
//!   test's label ([`label_args`] gives the flags that put it on a service and its containers).
//!   A test process killed while the engine was in swarm mode is noticed by the next fixture (a
//!   marker file in the lock directory names the owner), which leaves that swarm first.
//! - [`Cluster`] is a real multi-node swarm on this one machine: the host engine is the manager,
//!   advertising on a bridge network the fixture creates ([`CLUSTER_SUBNET`]); each worker is a
//!   container on that bridge running its own `dockerd` from the host's binaries (`/usr` mounted
//!   read-only, started under `docker-init`, capabilities instead of `--privileged`, `/sys` and
//!   the cgroup hierarchies remounted read-write, the engine's data on a tmpfs). Each [`Node`]
//!   has a node label ([`NODE_LABEL`]) to pin services, an address the host reaches (host-mode
//!   published ports answer there; the ingress mesh and VIPs need IPVS, which this kernel lacks)
//!   and an engine endpoint (a unix socket under the test's temp dir) for `docker -H`, exec and
//!   logs. [`Cluster::load_image`] copies an image onto the workers, [`Cluster::kill_worker`]
//!   kills one abruptly. Everything it made goes on drop, also when the test panics.
//!
//! Every `docker` call is bounded in time ([`SWARM_CALL_LIMIT`], at most
//! [`crate::DOCKER_CALL_LIMIT`]); every wait is bounded too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::{OWNER_LABEL, SLOTS, TEST_LABEL, TestEnv, lock_dir, owner_id, owner_is_gone};

/// The address pool of the swarms the fixtures create (`--default-addr-pool`, /24 per network):
/// away from the test subnets (10.230.0.0/16), a real installation's default pool
/// (10.201.0.0/16) and the benchmarks' (10.240.0.0/15).
pub const ADDR_POOL: &str = "10.250.0.0/16";

/// How long one `docker` call of a swarm fixture may take before it is killed.
pub const SWARM_CALL_LIMIT: Duration = Duration::from_secs(120);

/// How long the fixtures wait for the engine to reach a state (a service's containers gone,
/// swarm mode left).
const STATE_WAIT: Duration = Duration::from_secs(60);

/// The flags that put this test's labels on a service and on its tasks' containers:
/// `--label` and `--container-label` with [`TEST_LABEL`] and [`OWNER_LABEL`], so both the swarm
/// fixtures and [`TestEnv`]'s cleanup find them.
pub fn label_args(env: &TestEnv) -> Vec<String> {
    let mut args = Vec::new();
    for flag in ["--label", "--container-label"] {
        for (key, value) in [(TEST_LABEL, env.run.clone()), (OWNER_LABEL, owner_id())] {
            args.push(flag.to_owned());
            args.push(format!("{key}={value}"));
        }
    }
    args
}

/// Runs `docker args...` (against `host` when given, `-H host`) with a time limit.
pub(crate) fn docker_at(host: Option<&str>, limit: Duration, args: &[&str]) -> Output {
    let mut command = Command::new("timeout");
    command.args(["--kill-after=5", &limit.as_secs().to_string(), "docker"]);
    if let Some(host) = host {
        command.args(["-H", host]);
    }
    command.args(args).output().unwrap()
}

/// Runs `docker args...` against the host engine with [`SWARM_CALL_LIMIT`].
fn sdocker(args: &[&str]) -> Output {
    docker_at(None, SWARM_CALL_LIMIT, args)
}

/// The trimmed stdout of an output.
fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The non-empty lines of an output's stdout.
fn lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Panics with the command and its stderr unless it succeeded; returns trimmed stdout.
pub(crate) fn checked(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    stdout(out)
}

/// The host engine's swarm state: `(LocalNodeState, ControlAvailable)`.
fn swarm_state() -> (String, bool) {
    let out = sdocker(&[
        "info",
        "--format",
        "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
    ]);
    let text = checked("docker info", &out);
    let (state, control) = text.split_once(' ').unwrap_or((text.as_str(), "false"));
    (state.to_owned(), control == "true")
}

/// The marker naming the test process that put the engine into swarm mode.
fn marker_path() -> PathBuf {
    lock_dir().join("swarm-initiated-by")
}

fn network_exists(name: &str) -> bool {
    sdocker(&["network", "inspect", "--format", "{{.Id}}", name])
        .status
        .success()
}

fn wait_for(limit: Duration, check: impl FnMut() -> bool) -> bool {
    crate::wait_until(limit, check)
}

/// Leaves swarm mode (`--force`) and waits until the engine says `inactive`.
fn leave_swarm() -> Result<(), String> {
    let out = sdocker(&["swarm", "leave", "--force"]);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if !err.contains("not part of a swarm") {
            return Err(format!("docker swarm leave --force failed: {err}"));
        }
    }
    if wait_for(STATE_WAIT, || swarm_state().0 == "inactive") {
        Ok(())
    } else {
        Err("the engine did not become inactive after leaving the swarm".to_owned())
    }
}

/// Leaves a swarm that a test process killed before it could leave put the engine in (the
/// marker names a run that is over). Panics if a live run's swarm is there.
fn leave_stale_swarm() {
    let marker = std::fs::read_to_string(marker_path()).unwrap_or_default();
    let marker = marker.trim();
    if marker.is_empty() {
        return;
    }
    if swarm_state().0 == "inactive" {
        // The run ended after leaving, or a swarm of someone else's was left since.
        let _ = std::fs::remove_file(marker_path());
        return;
    }
    assert!(
        owner_is_gone(marker),
        "the engine is in a swarm initiated by a live test run ({marker}); swarm fixtures \
         cannot be nested"
    );
    eprintln!("swarm fixture: leaving the swarm a killed test run ({marker}) left");
    leave_swarm().unwrap();
    if network_exists("docker_gwbridge")
        && let Err(e) = remove_gwbridge()
    {
        eprintln!("swarm fixture: {e}");
    }
    let _ = std::fs::remove_file(marker_path());
}

/// Removes `docker_gwbridge`, which the engine creates for swarm mode and keeps after leaving
/// (it appears a moment after the leave: retried within a bounded wait).
fn remove_gwbridge() -> Result<(), String> {
    let mut last = String::new();
    let gone = wait_for(Duration::from_secs(20), || {
        if !network_exists("docker_gwbridge") {
            // It may still appear after the leave: make sure it stays gone a moment.
            std::thread::sleep(Duration::from_millis(500));
            return !network_exists("docker_gwbridge");
        }
        let out = sdocker(&["network", "rm", "docker_gwbridge"]);
        last = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        false
    });
    if gone {
        Ok(())
    } else {
        Err(format!("docker_gwbridge could not be removed: {last}"))
    }
}

/// Removes the services and swarm-scoped networks matching `filter` (`label=...`) from the swarm
/// the host engine manages, waiting (bounded) until the services' containers are gone.
fn remove_swarm_objects(filter: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let short = lines(&sdocker(&["service", "ls", "-q", "--filter", filter]));
    if !short.is_empty() {
        // Full ids: the tasks' containers carry those in their labels.
        let mut args = vec!["service", "inspect", "--format", "{{.ID}}"];
        args.extend(short.iter().map(String::as_str));
        let services = lines(&sdocker(&args));
        let mut args = vec!["service", "rm"];
        args.extend(services.iter().map(String::as_str));
        let out = sdocker(&args);
        if !out.status.success() {
            problems.push(format!(
                "docker service rm: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        for service in &services {
            // A task's container may still be on its way when the service goes (the agent
            // removes it after): gone means none on two looks a second apart. Those left are
            // removed now rather than after their stop grace period.
            let by_service = format!("label=com.docker.swarm.service.id={service}");
            let gone = wait_for(STATE_WAIT, || {
                let left = lines(&sdocker(&["ps", "-aq", "--filter", &by_service]));
                if left.is_empty() {
                    std::thread::sleep(Duration::from_secs(1));
                    return lines(&sdocker(&["ps", "-aq", "--filter", &by_service])).is_empty();
                }
                let mut args = vec!["rm", "--force", "--volumes"];
                args.extend(left.iter().map(String::as_str));
                let _ = sdocker(&args);
                false
            });
            if !gone {
                problems.push(format!("the containers of service {service} did not go"));
            }
        }
    }
    // Swarm-scoped networks only: local ones (a cluster's bridge) are their owner's to remove.
    let networks = lines(&sdocker(&[
        "network",
        "ls",
        "-q",
        "--filter",
        filter,
        "--filter",
        "scope=swarm",
    ]));
    for network in networks {
        // A network still held by a task that is shutting down is retried; a removed overlay
        // network lingers on the node a moment after the swarm dropped it: waited for.
        let removed = wait_for(Duration::from_secs(30), || {
            if !network_exists(&network) {
                return true;
            }
            let _ = sdocker(&["network", "rm", &network]);
            false
        });
        if !removed {
            problems.push(format!("network {network} could not be removed"));
        }
    }
    problems
}

/// The host engine as a single-node swarm manager, for one test; see the module docs.
///
/// ```no_run
/// let env = cm_testkit::TestEnv::alone();
/// let swarm = cm_testkit::swarm::SingleNodeSwarm::join(&env);
/// // ... docker service create ... (with cm_testkit::swarm::label_args(&env))
/// drop(swarm); // the test's services and networks removed; swarm mode left if we entered it
/// ```
pub struct SingleNodeSwarm<'env> {
    env: &'env TestEnv,
    initiated: bool,
    gwbridge_existed: bool,
    node_id: String,
    torn_down: bool,
}

impl<'env> SingleNodeSwarm<'env> {
    /// Makes the host engine a swarm manager advertising on 127.0.0.1 (or uses the swarm it
    /// already manages). `env` must come from [`TestEnv::alone`].
    pub fn join(env: &'env TestEnv) -> Self {
        Self::join_advertising_with(env, "127.0.0.1", true)
    }

    /// Like [`SingleNodeSwarm::join`], advertising on `addr` (an address of the host that other
    /// nodes can reach). An existing swarm is used only when `reuse` allows it.
    pub(crate) fn join_advertising_with(env: &'env TestEnv, addr: &str, reuse: bool) -> Self {
        assert_eq!(
            env.slot.index(),
            SLOTS,
            "swarm fixtures change the engine's global state: take the TestEnv from TestEnv::alone()"
        );
        leave_stale_swarm();
        let (state, manager) = swarm_state();
        let gwbridge_existed = network_exists("docker_gwbridge");
        let initiated = match state.as_str() {
            "inactive" => {
                // The marker first: a process killed right after the init still names its owner.
                std::fs::write(marker_path(), owner_id()).unwrap();
                let out = sdocker(&[
                    "swarm",
                    "init",
                    "--advertise-addr",
                    addr,
                    "--listen-addr",
                    &format!("{addr}:2377"),
                    "--default-addr-pool",
                    ADDR_POOL,
                    "--default-addr-pool-mask-length",
                    "24",
                ]);
                if !out.status.success() {
                    // It may have half-happened: leave whatever there is.
                    let _ = leave_swarm();
                    let _ = std::fs::remove_file(marker_path());
                }
                checked("docker swarm init", &out);
                true
            }
            "active" if manager => {
                assert!(
                    reuse,
                    "the engine already manages a swarm (not made by a test): this fixture needs \
                     its own (run `docker swarm leave --force` if that swarm is not needed)"
                );
                false
            }
            other => panic!(
                "the engine's swarm state is {other} (manager: {manager}): a swarm fixture needs \
                 an engine out of swarm mode or a swarm manager"
            ),
        };
        let mut swarm = SingleNodeSwarm {
            env,
            initiated,
            gwbridge_existed,
            node_id: String::new(),
            torn_down: false,
        };
        swarm.node_id = checked(
            "docker info",
            &sdocker(&["info", "--format", "{{.Swarm.NodeID}}"]),
        );
        swarm
    }

    /// Whether this fixture put the engine into swarm mode (and so leaves it on drop).
    pub fn initiated(&self) -> bool {
        self.initiated
    }

    /// The host engine's node id in the swarm.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The test world this swarm belongs to.
    pub fn env(&self) -> &'env TestEnv {
        self.env
    }

    /// Removes the test's services and networks, then leaves swarm mode if this fixture entered
    /// it. Returns what went wrong. Runs once.
    pub(crate) fn teardown(&mut self) -> Vec<String> {
        if self.torn_down {
            return Vec::new();
        }
        self.torn_down = true;
        let mut problems = remove_swarm_objects(&self.env.label_filter());
        if self.initiated {
            if let Err(e) = leave_swarm() {
                problems.push(e);
            }
            if !self.gwbridge_existed
                && let Err(e) = remove_gwbridge()
            {
                problems.push(e);
            }
            let _ = std::fs::remove_file(marker_path());
        }
        problems
    }
}

impl Drop for SingleNodeSwarm<'_> {
    fn drop(&mut self) {
        let problems = self.teardown();
        report(&problems);
    }
}

/// Prints how long a fixture's step took (shown with a failing test's output).
fn trace(since: Instant, what: &str) {
    eprintln!(
        "swarm fixture: {what} after {:.1} s",
        since.elapsed().as_secs_f64()
    );
}

/// Panics with the cleanup's problems (unless the test already panics: then it prints them).
pub(crate) fn report(problems: &[String]) {
    if problems.is_empty() {
        return;
    }
    if std::thread::panicking() {
        eprintln!("swarm fixture cleanup: {problems:?}");
    } else {
        panic!("swarm fixture cleanup failed: {problems:?}");
    }
}

/// The bridge network a [`Cluster`] creates for its nodes; the host is its gateway.
pub const CLUSTER_SUBNET: &str = "10.251.0.0/24";
/// The host's address on the cluster bridge: the manager advertises and listens on it.
pub const MANAGER_ADDR: &str = "10.251.0.1";
/// The image the worker containers start from: a shell and `/etc`; their binaries (`dockerd`,
/// `containerd`, `runc`, `docker-init`) are the host's, mounted with `/usr`.
pub const NODE_IMAGE: &str = "cm-base:bookworm";
/// The node label every node of a [`Cluster`] carries (`cm.node=manager`, `cm.node=w1`, ...),
/// for placement constraints: `node.labels.cm.node==w2` (see [`Node::constraint`]).
pub const NODE_LABEL: &str = "cm.node";

/// The entry of a worker container: `/sys` and the cgroup hierarchies read-write (the engine
/// mounts them read-only), a tmpfs for the engine's data, then `dockerd` on a unix socket in the
/// bind-mounted directory `/run/cm-node` (its log beside it), owned by the group of the host's
/// socket so a test that reaches the host's engine by its group reaches the worker's too.
const WORKER_ENTRY: &str = r#"set -e
mount -o remount,rw /sys
mount -o remount,rw /sys/fs/cgroup
for d in /sys/fs/cgroup/*; do [ -L "$d" ] || mount -o remount,bind,rw "$d"; done
mkdir -p /var/lib/docker
mount -t tmpfs -o size=8g tmpfs /var/lib/docker
exec dockerd --host unix:///run/cm-node/docker.sock --data-root /var/lib/docker \
  --storage-driver overlay2 --mtu "$CM_MTU" --label "cm.node=$CM_NODE" \
  ${CM_SOCKET_GROUP:+--group "$CM_SOCKET_GROUP"} >/run/cm-node/dockerd.log 2>&1
"#;

/// One node of a [`Cluster`].
#[derive(Debug, Clone)]
pub struct Node {
    /// The short name, also the value of its [`NODE_LABEL`]: `manager`, `w1`, `w2`, ...
    pub name: String,
    /// The node's hostname as the swarm reports it (`docker node ls`, a task's `.Node`).
    pub hostname: String,
    /// The node's swarm id.
    pub id: String,
    /// Its address on the cluster bridge, which the host reaches: host-mode published ports of
    /// its tasks answer there.
    pub address: String,
    /// Its engine's endpoint for `docker -H` or a client: the host's own for the manager,
    /// `unix://<test dir>/nodes/<name>/docker.sock` for a worker.
    pub endpoint: String,
    /// The container running a worker's engine (`None` for the manager).
    pub container: Option<String>,
}

impl Node {
    /// The placement constraint that pins a service to this node.
    pub fn constraint(&self) -> String {
        format!("node.labels.{NODE_LABEL}=={}", self.name)
    }

    /// Runs `docker args...` against this node's engine, bounded by [`SWARM_CALL_LIMIT`].
    pub fn docker(&self, args: &[&str]) -> Output {
        docker_at(Some(&self.endpoint), SWARM_CALL_LIMIT, args)
    }

    /// Like [`Node::docker`], panicking with stderr when it fails; returns trimmed stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        checked(
            &format!("docker -H {} {args:?}", self.endpoint),
            &self.docker(args),
        )
    }

    /// The node's state as the manager reports it (`ready`, `down`, `unknown`, ...).
    pub fn state(&self) -> String {
        stdout(&sdocker(&[
            "node",
            "inspect",
            "--format",
            "{{.Status.State}}",
            &self.id,
        ]))
    }
}

/// The host engine's endpoint (`DOCKER_HOST`, else the default socket).
fn host_endpoint() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned())
}

/// The group id of the host engine's unix socket, if it is one.
fn host_socket_group() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let endpoint = host_endpoint();
    let path = endpoint.strip_prefix("unix://")?;
    std::fs::metadata(path).ok().map(|m| m.gid())
}

/// Where the host's `docker-init` is (under `/usr`, which the workers mount).
fn docker_init_path() -> String {
    for path in [
        "/usr/bin/docker-init",
        "/usr/libexec/docker/docker-init",
        "/usr/local/bin/docker-init",
        "/usr/sbin/docker-init",
    ] {
        if Path::new(path).exists() {
            return path.to_owned();
        }
    }
    panic!("docker-init was not found under /usr: the cluster's workers start under it");
}

/// A real swarm on this machine, for one test: the host engine is the manager, advertising on a
/// bridge network the fixture creates ([`CLUSTER_SUBNET`], the host at [`MANAGER_ADDR`]); each
/// worker is a container on that bridge running its own `dockerd` from the host's binaries,
/// with its data on a tmpfs and its engine on a unix socket under the test's temp dir.
///
/// Every node carries the node label [`NODE_LABEL`] (`manager`, `w1`, `w2`, ...) to pin services
/// with [`Node::constraint`]. Workers start with no images: [`Cluster::load_image`] copies one
/// onto them. [`Cluster::kill_worker`] kills one abruptly (node loss). The swarm's dispatcher
/// heartbeat is 2 s, so a lost node is reported `down` within about 10 s.
///
/// On drop (also when the test panics): the test's services and networks are removed, the
/// workers leave and their containers go (their data with them), the host leaves swarm mode and
/// the bridge is removed. The engine must not be in a swarm that a test did not make: this
/// fixture needs its own (it advertises on its bridge).
///
/// ```no_run
/// let env = cm_testkit::TestEnv::alone();
/// let cluster = cm_testkit::swarm::Cluster::start(&env, 2);
/// cluster.load_image("cm-base:bookworm");
/// let w2 = cluster.worker(2);
/// // docker service create --constraint {w2.constraint()} --publish mode=host,...
/// // then reach it at w2.address, exec through w2.endpoint
/// ```
pub struct Cluster<'env> {
    swarm: SingleNodeSwarm<'env>,
    bridge: String,
    manager: Node,
    workers: Vec<Node>,
    killed: Vec<bool>,
    torn_down: bool,
}

impl<'env> Cluster<'env> {
    /// Starts a swarm of the host engine and `workers` worker containers (at most 200) and waits
    /// until every node is `ready`. `env` must come from [`TestEnv::alone`].
    pub fn start(env: &'env TestEnv, workers: usize) -> Self {
        assert!(workers <= 200, "at most 200 workers on the cluster bridge");
        let since = Instant::now();
        assert_eq!(
            env.slot.index(),
            SLOTS,
            "swarm fixtures change the engine's global state: take the TestEnv from TestEnv::alone()"
        );
        let init = docker_init_path();
        checked(
            &format!("the node image {NODE_IMAGE}"),
            &sdocker(&["image", "inspect", "--format", "{{.Id}}", NODE_IMAGE]),
        );
        let mtu = {
            let out = sdocker(&[
                "network",
                "inspect",
                "--format",
                "{{index .Options \"com.docker.network.driver.mtu\"}}",
                "bridge",
            ]);
            let mtu = stdout(&out);
            if mtu.parse::<u32>().is_ok() {
                mtu
            } else {
                "1500".to_owned()
            }
        };
        // A swarm left by a killed test run goes before its bridge could be needed again.
        leave_stale_swarm();
        let (state, _) = swarm_state();
        assert_eq!(
            state, "inactive",
            "the engine already is in a swarm (not made by a test): a Cluster needs its own \
             (run `docker swarm leave --force` if that swarm is not needed)"
        );

        let labels = [
            format!("{TEST_LABEL}={}", env.run),
            format!("{OWNER_LABEL}={}", owner_id()),
        ];
        let bridge = format!("cm-t{}-cluster", env.run);
        let mut args = vec![
            "network",
            "create",
            "--driver",
            "bridge",
            "--subnet",
            CLUSTER_SUBNET,
            "--gateway",
            MANAGER_ADDR,
        ];
        for label in &labels {
            args.extend(["--label", label]);
        }
        args.push(&bridge);
        let created = sdocker(&args);
        if !created.status.success() {
            let _ = sdocker(&["network", "rm", &bridge]);
        }
        checked("creating the cluster bridge", &created);

        // From here on the value exists, so its drop cleans up whatever the start did.
        let swarm = SingleNodeSwarm::join_advertising_with(env, MANAGER_ADDR, false);
        trace(since, "the manager is up");
        let manager_id = swarm.node_id().to_owned();
        let mut cluster = Cluster {
            swarm,
            bridge,
            manager: Node {
                name: "manager".to_owned(),
                hostname: String::new(),
                id: manager_id,
                address: MANAGER_ADDR.to_owned(),
                endpoint: host_endpoint(),
                container: None,
            },
            workers: Vec::new(),
            killed: Vec::new(),
            torn_down: false,
        };
        cluster.manager.hostname = checked(
            "docker node inspect",
            &sdocker(&[
                "node",
                "inspect",
                "--format",
                "{{.Description.Hostname}}",
                &cluster.manager.id,
            ]),
        );
        checked(
            "docker swarm update",
            &sdocker(&["swarm", "update", "--dispatcher-heartbeat", "2s"]),
        );
        checked(
            "labelling the manager",
            &sdocker(&[
                "node",
                "update",
                "--label-add",
                &format!("{NODE_LABEL}=manager"),
                &cluster.manager.id,
            ]),
        );
        let token = checked(
            "docker swarm join-token",
            &sdocker(&["swarm", "join-token", "-q", "worker"]),
        );

        // Start every worker's engine first (they come up in parallel), then join them.
        for n in 1..=workers {
            let name = format!("w{n}");
            let dir = env.path().join("nodes").join(&name);
            std::fs::create_dir_all(&dir).unwrap();
            let container = format!("cm-t{}-{name}", env.run);
            let address = format!("10.251.0.{}", 10 + n);
            let node = Node {
                name: name.clone(),
                hostname: container.clone(),
                id: String::new(),
                address: address.clone(),
                endpoint: format!("unix://{}", dir.join("docker.sock").display()),
                container: Some(container.clone()),
            };
            cluster.workers.push(node);
            cluster.killed.push(false);
            let volume = format!("{}:/run/cm-node", dir.display());
            let node_env = format!("CM_NODE={name}");
            let mtu_env = format!("CM_MTU={mtu}");
            let group_env = format!(
                "CM_SOCKET_GROUP={}",
                host_socket_group().map(|g| g.to_string()).unwrap_or_default()
            );
            let mut args = vec![
                "run",
                "--detach",
                "--name",
                &container,
                "--hostname",
                &container,
                "--network",
                &cluster.bridge,
                "--ip",
                &address,
                "--volume",
                "/usr:/usr:ro",
                "--volume",
                "/etc/alternatives:/etc/alternatives:ro",
                "--volume",
                &volume,
                "--env",
                &node_env,
                "--env",
                &mtu_env,
                "--env",
                &group_env,
                "--entrypoint",
                &init,
                "--cap-add",
                "ALL",
                "--cap-drop",
                "SYS_RESOURCE",
                "--security-opt",
                "seccomp=unconfined",
                "--security-opt",
                "apparmor=unconfined",
                "--security-opt",
                "systempaths=unconfined",
                "--device-cgroup-rule",
                "a *:* rwm",
                "--cgroupns",
                "private",
            ];
            for label in &labels {
                args.extend(["--label", label]);
            }
            args.extend([NODE_IMAGE, "--", "sh", "-c", WORKER_ENTRY]);
            checked(&format!("starting worker {name}"), &sdocker(&args));
        }
        trace(since, "the workers are started");
        for i in 0..cluster.workers.len() {
            let node = cluster.workers[i].clone();
            let log = Path::new(node.endpoint.trim_start_matches("unix://")).with_file_name("dockerd.log");
            let up = wait_for(STATE_WAIT, || {
                docker_at(Some(&node.endpoint), Duration::from_secs(10), &["version"])
                    .status
                    .success()
            });
            assert!(
                up,
                "the engine of worker {} did not answer on {}: {}",
                node.name,
                node.endpoint,
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            checked(
                &format!("worker {} joining the swarm", node.name),
                &node.docker(&[
                    "swarm",
                    "join",
                    "--token",
                    &token,
                    &format!("{MANAGER_ADDR}:2377"),
                ]),
            );
            cluster.workers[i].id = checked(
                "docker info on a worker",
                &node.docker(&["info", "--format", "{{.Swarm.NodeID}}"]),
            );
            checked(
                &format!("labelling worker {}", node.name),
                &sdocker(&[
                    "node",
                    "update",
                    "--label-add",
                    &format!("{NODE_LABEL}={}", node.name),
                    &cluster.workers[i].id,
                ]),
            );
        }
        trace(since, "the workers joined");
        let ready = wait_for(STATE_WAIT, || {
            cluster.nodes().iter().all(|node| node.state() == "ready")
        });
        assert!(
            ready,
            "not every node became ready: {}",
            stdout(&sdocker(&["node", "ls"]))
        );
        trace(since, "every node is ready");
        cluster
    }

    /// The manager (the host engine).
    pub fn manager(&self) -> &Node {
        &self.manager
    }

    /// Worker `n`, counted from 1 (`w1`, `w2`, ...).
    pub fn worker(&self, n: usize) -> &Node {
        assert!(
            (1..=self.workers.len()).contains(&n),
            "workers are counted from 1 to {}",
            self.workers.len()
        );
        &self.workers[n - 1]
    }

    /// The workers, `w1` first.
    pub fn workers(&self) -> &[Node] {
        &self.workers
    }

    /// Every node, the manager first.
    pub fn nodes(&self) -> Vec<&Node> {
        std::iter::once(&self.manager)
            .chain(self.workers.iter())
            .collect()
    }

    /// Each node's engine endpoint by its hostname (as the swarm names nodes), for configuring a
    /// runtime that reaches tasks through their node's engine.
    pub fn endpoints(&self) -> BTreeMap<String, String> {
        self.nodes()
            .into_iter()
            .map(|node| (node.hostname.clone(), node.endpoint.clone()))
            .collect()
    }

    /// The node of that hostname, if it is one of this cluster's.
    pub fn node_by_hostname(&self, hostname: &str) -> Option<&Node> {
        self.nodes().into_iter().find(|node| node.hostname == hostname)
    }

    /// The single-node swarm underneath (the manager's side).
    pub fn swarm(&self) -> &SingleNodeSwarm<'env> {
        &self.swarm
    }

    /// Copies `image` from the host engine onto every worker that still runs
    /// (`docker save` once into the test's temp dir, then `docker -H <worker> load`).
    pub fn load_image(&self, image: &str) {
        let since = Instant::now();
        let dir = self.swarm.env().path().join("images");
        std::fs::create_dir_all(&dir).unwrap();
        let file: String = image
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let file = dir.join(format!("{file}.tar"));
        let file = file.display().to_string();
        checked(
            &format!("docker save {image}"),
            &sdocker(&["save", "--output", &file, image]),
        );
        for (node, killed) in self.workers.iter().zip(&self.killed) {
            if !killed {
                checked(
                    &format!("loading {image} on {}", node.name),
                    &node.docker(&["load", "--quiet", "--input", &file]),
                );
            }
        }
        let _ = std::fs::remove_file(&file);
        trace(since, &format!("{image} is loaded on the workers"));
    }

    /// Kills worker `n` (counted from 1) abruptly, its engine and tasks with it, as a machine
    /// that fails: the manager later reports it `down` (see [`Cluster::wait_for_state`]).
    pub fn kill_worker(&mut self, n: usize) {
        let node = self.worker(n).clone();
        let container = node.container.unwrap();
        checked(
            &format!("killing worker {}", node.name),
            &sdocker(&["kill", "--signal", "KILL", &container]),
        );
        self.killed[n - 1] = true;
    }

    /// Waits (at most `limit`) until the manager reports `node` in `state` (`ready`, `down`);
    /// returns whether it did.
    pub fn wait_for_state(&self, node: &Node, state: &str, limit: Duration) -> bool {
        wait_for(limit, || node.state() == state)
    }

    /// Removes the test's services and networks, makes the workers leave and removes their
    /// containers, leaves swarm mode and removes the bridge. Returns what went wrong.
    fn teardown(&mut self) -> Vec<String> {
        if self.torn_down {
            return Vec::new();
        }
        self.torn_down = true;
        let since = Instant::now();
        let mut problems = remove_swarm_objects(&self.swarm.env().label_filter());
        trace(since, "the services are removed");
        for (node, killed) in self.workers.iter().zip(&self.killed) {
            let Some(container) = &node.container else {
                continue;
            };
            if !killed && !node.id.is_empty() {
                // Bounded short: the container goes next whatever the engine says.
                let _ = docker_at(
                    Some(&node.endpoint),
                    Duration::from_secs(20),
                    &["swarm", "leave", "--force"],
                );
            }
            let out = sdocker(&["rm", "--force", "--volumes", container]);
            if !out.status.success() {
                let err = String::from_utf8_lossy(&out.stderr);
                if !err.contains("No such container") {
                    problems.push(format!("removing worker {}: {}", node.name, err.trim()));
                }
            }
        }
        trace(since, "the workers are removed");
        problems.extend(self.swarm.teardown());
        trace(since, "the manager left");
        let removed = wait_for(Duration::from_secs(30), || {
            if !network_exists(&self.bridge) {
                return true;
            }
            let _ = sdocker(&["network", "rm", &self.bridge]);
            false
        });
        if !removed {
            problems.push(format!("the cluster bridge {} could not be removed", self.bridge));
        }
        trace(since, "the bridge is removed");
        problems
    }
}

impl Drop for Cluster<'_> {
    fn drop(&mut self) {
        let problems = self.teardown();
        report(&problems);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Leaves swarm mode when dropped: what a test made by hand goes even if the test panics.
    struct LeaveOnDrop;

    impl Drop for LeaveOnDrop {
        fn drop(&mut self) {
            if swarm_state().0 != "inactive" {
                let _ = leave_swarm();
                let _ = remove_gwbridge();
            }
        }
    }

    #[test]
    fn a_swarm_left_by_a_killed_test_run_is_left_before_joining() {
        if !crate::require(
            "docker",
            &["info", "--format", "{{.ServerVersion}}"],
            "a running Docker engine",
        ) {
            return;
        }
        let env = TestEnv::alone();
        // A real swarm of a killed run goes first (what this test simulates below).
        leave_stale_swarm();
        if swarm_state().0 != "inactive" {
            // Someone's own swarm: not ours to leave; the integration tests cover its reuse.
            eprintln!("the engine is in swarm mode already: nothing to simulate");
            return;
        }
        let _leave = LeaveOnDrop;
        // A run that put the engine into swarm mode and was killed: this process's pid with
        // another start time, as a reused pid would look.
        let me = owner_id();
        let parts: Vec<&str> = me.split('.').collect();
        let dead = format!("{}.{}.{}.1.{}", parts[0], parts[1], parts[2], parts[4]);
        assert!(owner_is_gone(&dead));
        std::fs::write(marker_path(), &dead).unwrap();
        checked(
            "docker swarm init",
            &sdocker(&[
                "swarm",
                "init",
                "--advertise-addr",
                "127.0.0.1",
                "--default-addr-pool",
                ADDR_POOL,
            ]),
        );
        let old = stdout(&sdocker(&["info", "--format", "{{.Swarm.NodeID}}"]));
        {
            let swarm = SingleNodeSwarm::join(&env);
            assert!(swarm.initiated(), "the stale swarm is this fixture's to leave");
            assert_ne!(swarm.node_id(), old, "a new swarm, not the stale one");
            assert_eq!(std::fs::read_to_string(marker_path()).unwrap().trim(), owner_id());
        }
        assert_eq!(swarm_state().0, "inactive");
        assert!(!marker_path().exists());
    }
}
