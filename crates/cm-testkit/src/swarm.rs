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
//!
//! Every `docker` call is bounded in time ([`SWARM_CALL_LIMIT`], at most
//! [`crate::DOCKER_CALL_LIMIT`]); every wait is bounded too.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

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

/// Removes the services and networks matching `filter` (`label=...`) from the swarm the host
/// engine manages, waiting (bounded) until the services' containers are gone.
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
            let by_service = format!("label=com.docker.swarm.service.id={service}");
            let gone = wait_for(STATE_WAIT, || {
                lines(&sdocker(&["ps", "-aq", "--filter", &by_service])).is_empty()
            });
            if !gone {
                problems.push(format!("the containers of service {service} did not go"));
            }
        }
    }
    let networks = lines(&sdocker(&["network", "ls", "-q", "--filter", filter]));
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
        let (mut state, mut manager) = swarm_state();
        if state == "active" || state == "locked" || state == "error" || state == "pending" {
            // Left behind by a test process that was killed before it could leave?
            let marker = std::fs::read_to_string(marker_path()).unwrap_or_default();
            let marker = marker.trim();
            if !marker.is_empty() {
                assert!(
                    owner_is_gone(marker),
                    "the engine is in a swarm initiated by a live test run ({marker}); \
                     swarm fixtures cannot be nested"
                );
                eprintln!("swarm fixture: leaving the swarm a killed test run ({marker}) left");
                leave_swarm().unwrap();
                if network_exists("docker_gwbridge") {
                    remove_gwbridge().unwrap();
                }
                let _ = std::fs::remove_file(marker_path());
                (state, manager) = swarm_state();
            }
        }
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
