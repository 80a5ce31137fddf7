//! Fixtures for integration tests that drive real Docker, nginx, ssh and chromium.
//!
//! - [`require`] checks that a tool is there: under CI (`CI` set) a missing one fails the test,
//!   locally the test prints a loud skip line and returns early.
//! - [`DockerSlot`] bounds how many container-starting tests run at once across all test binaries
//!   (two slots, file locks), and gives each slot its own port pool and subnet pool so that tests
//!   in different binaries never lease the same host port.
//! - [`TestEnv`] is one test's private world: a temp dir with a SQLite file and a config whose
//!   labels mark every Docker object `cm.test=<run id>`, unique user ids, and a drop guard that
//!   removes every object carrying the label, even when the test panics. It never touches objects
//!   it did not create.
//! - [`nginx::TestNginx`] is a private, unprivileged nginx on a free port with its own prefix and
//!   box directories, stopped and removed on drop; [`http`] is a raw blocking HTTP and WebSocket
//!   client for talking to it.

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

pub mod http;
pub mod nginx;
pub mod swarm;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The label every test object carries; its value is the run id of one [`TestEnv`].
pub const TEST_LABEL: &str = "cm.test";
/// The label naming the test process (`{host}.{boot}.{pid}.{start}`), so objects of crashed runs
/// can be found and removed; see [`owner_id`].
pub const OWNER_LABEL: &str = "cm.test.owner";

/// How many container-starting tests may run at once on this machine (2 cores).
const SLOTS: u16 = 2;
/// Ports per slot.
const SLOT_PORTS: u16 = 200;
/// The first test port: far from the default pool 9000-9500 of a real installation, and below
/// the kernel's ephemeral range (32768 and up), so outgoing connections never hold a pool port.
const FIRST_TEST_PORT: u16 = 20000;

/// True when running under CI, where a missing tool fails instead of skipping.
pub fn under_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Checks that `program` runs (`program args...` exits 0). Under CI a missing tool panics; locally it
/// prints a loud skip line and returns false.
pub fn require(program: &str, args: &[&str], why: &str) -> bool {
    let ok = Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !under_ci(),
            "{program} is required under CI ({why}); the test command installs it"
        );
        eprintln!("\n*** SKIPPING: {program} is not available ({why}); under CI this fails ***\n");
    }
    ok
}

/// Checks that the Docker engine answers and the default images exist.
pub fn require_docker() -> bool {
    if !require(
        "docker",
        &["info", "--format", "{{.ServerVersion}}"],
        "a running Docker engine",
    ) {
        return false;
    }
    for image in ["toolboxv2:latest", "toolboxv2:dev"] {
        let present = docker(&["image", "inspect", "--format", "{{.Id}}", image])
            .status
            .success();
        if !present {
            assert!(
                !under_ci(),
                "image {image} is missing: the test command runs images/build.sh"
            );
            eprintln!("\n*** SKIPPING: image {image} is missing (run images/build.sh) ***\n");
            return false;
        }
    }
    true
}

/// How long one `docker` call of a test may take before it is killed.
pub const DOCKER_CALL_LIMIT: Duration = Duration::from_secs(300);

/// Runs `docker args...` and returns its output. Every call has a time limit
/// ([`DOCKER_CALL_LIMIT`], then `timeout`'s exit code 124): a hung engine fails the test instead
/// of hanging the suite.
pub fn docker(args: &[&str]) -> Output {
    Command::new("timeout")
        .args([
            "--kill-after=10",
            &DOCKER_CALL_LIMIT.as_secs().to_string(),
            "docker",
        ])
        .args(args)
        .output()
        .unwrap()
}

/// Runs `docker args...`, panicking with its stderr when it fails; returns trimmed stdout.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Polls `check` every 200 ms until it is true or `limit` passes; returns whether it became true.
/// For waiting on the engine (a restart, a port opening), never for timing assertions.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if check() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One of the machine-wide slots for container-starting tests, held until dropped.
pub struct DockerSlot {
    index: u16,
    _lock: File,
    _engine: File,
}

/// The directory of the machine-wide test locks.
fn lock_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("cm-test-slots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The lock on the engine's global state (swarm mode): every slot holds it shared, a test that
/// changes that state holds it exclusive, so such a test runs alone across all test binaries.
fn engine_state_lock() -> File {
    File::create(lock_dir().join("engine-global.lock")).unwrap()
}

impl DockerSlot {
    /// Waits for a free slot (blocking on a file lock) while no test changes the engine's global
    /// state.
    pub fn acquire() -> Self {
        let dir = lock_dir();
        let engine = engine_state_lock();
        engine.lock_shared().unwrap();
        loop {
            for index in 0..SLOTS {
                let file = File::create(dir.join(format!("slot-{index}.lock"))).unwrap();
                if file.try_lock().is_ok() {
                    return DockerSlot {
                        index,
                        _lock: file,
                        _engine: engine,
                    };
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until no other test uses the engine, then holds it alone: for tests that change the
    /// engine's global state (swarm mode), which must restore it before they drop the slot. Its
    /// ports and subnets are those of a slot of its own, beyond the shared ones. Never take it while
    /// holding another slot in the same process: it would wait for itself.
    pub fn acquire_alone() -> Self {
        let engine = engine_state_lock();
        engine.lock().unwrap();
        let file = File::create(lock_dir().join(format!("slot-{SLOTS}.lock"))).unwrap();
        file.lock().unwrap();
        DockerSlot {
            index: SLOTS,
            _lock: file,
            _engine: engine,
        }
    }

    /// The slot's port range, `(first, last)`.
    pub fn port_range(&self) -> (u16, u16) {
        let first = FIRST_TEST_PORT + self.index * SLOT_PORTS;
        (first, first + SLOT_PORTS - 1)
    }

    /// The slot's subnet pool: a /20 of 10.230.0.0/16 (256 user networks of /28).
    pub fn subnet_range(&self) -> String {
        format!("10.230.{}.0/20", self.index * 16)
    }

    /// The slot number.
    pub fn index(&self) -> u16 {
        self.index
    }
}

/// One test's private ContainerManager world.
pub struct TestEnv {
    /// The run id: the value of the `cm.test` label on every object this test creates.
    pub run: String,
    /// A temp dir holding the database and the configuration.
    pub dir: tempfile::TempDir,
    /// The slot (ports, subnets).
    pub slot: DockerSlot,
}

impl TestEnv {
    /// A new world with its own database, config, labels and slot. Removes leftovers of crashed
    /// earlier test processes first (objects whose owner process is gone).
    pub fn new() -> Self {
        Self::with_slot(DockerSlot::acquire())
    }

    /// A world that holds the engine alone ([`DockerSlot::acquire_alone`]), for tests that change
    /// the engine's global state.
    pub fn alone() -> Self {
        Self::with_slot(DockerSlot::acquire_alone())
    }

    fn with_slot(slot: DockerSlot) -> Self {
        remove_orphans_of_dead_runs();
        let run = run_id();
        let dir = tempfile::tempdir().unwrap();
        let env = TestEnv { run, dir, slot };
        std::fs::write(env.config_path(), env.config_toml("")).unwrap();
        env
    }

    /// The config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("cm.db")
    }

    /// The TOML config of this world, with `extra` appended (for `[nginx]`, `[types.x]`, ...).
    ///
    /// A world never touches the host's nginx: unless `extra` has an `[nginx]` section (such as
    /// [`nginx::TestNginx::config_toml`]), routing is off (`[nginx] enabled = false`), so `cm`
    /// does not write into `/etc/nginx/box-*` or signal the host's nginx.
    pub fn config_toml(&self, extra: &str) -> String {
        let (first, last) = self.slot.port_range();
        let has_nginx = extra.lines().any(|line| line.trim() == "[nginx]");
        let nginx = if has_nginx {
            ""
        } else {
            "[nginx]\nenabled = false\n"
        };
        format!(
            "port_pool = {{ start = {first}, end = {last} }}\n\
             subnet_pool = {{ range = \"{}\", prefix_length = 28 }}\n\
             [ssh]\nbind_address = \"127.0.0.1\"\nserver_host = \"127.0.0.1\"\n\
             [labels]\n\"{TEST_LABEL}\" = \"{}\"\n\"{OWNER_LABEL}\" = \"{}\"\n{nginx}{extra}",
            self.slot.subnet_range(),
            self.run,
            owner_id()
        )
    }

    /// Rewrites the config with `extra` appended.
    pub fn set_config_extra(&self, extra: &str) {
        std::fs::write(self.config_path(), self.config_toml(extra)).unwrap();
    }

    /// The environment variables that point a `cm` or `cm-api` process at this world.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CM_CONFIG", self.config_path().display().to_string()),
            ("CM_DB", self.db_path().display().to_string()),
            ("CM_LOG", "warn".to_owned()),
        ]
    }

    /// A user id unique to this run: `t{run}-{name}`.
    pub fn user(&self, name: &str) -> String {
        format!("t{}-{name}", self.run)
    }

    /// The label filter of this run's objects.
    pub fn label_filter(&self) -> String {
        format!("label={TEST_LABEL}={}", self.run)
    }

    /// The temp dir.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let filter = self.label_filter();
        remove_labelled(&filter);
        // Capped volumes' disk images live in this world's directory: free their loop devices
        // before the directory goes.
        detach_loops(|backing| backing.starts_with(self.dir.path()));
        // Nothing of the run may outlive it; a failing test already says what went wrong.
        let left = labelled(&filter);
        if !left.is_empty() && !std::thread::panicking() {
            panic!(
                "objects of run {} were left behind after cleanup: {left:?}",
                self.run
            );
        }
    }
}

/// The services, containers, volumes and networks matching a `label=...` filter, as `kind name`
/// lines (services only when the engine is a swarm manager).
pub fn labelled(filter: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (kind, args) in [
        (
            "service",
            vec!["service", "ls", "--format", "{{.Name}}", "--filter", filter],
        ),
        (
            "container",
            vec!["ps", "-a", "--format", "{{.Names}}", "--filter", filter],
        ),
        ("volume", vec!["volume", "ls", "-q", "--filter", filter]),
        (
            "network",
            vec!["network", "ls", "--format", "{{.Name}}", "--filter", filter],
        ),
    ] {
        found.extend(
            docker_lines(&args)
                .into_iter()
                .map(|name| format!("{kind} {name}")),
        );
    }
    found
}

/// The non-empty lines `docker args...` prints.
fn docker_lines(args: &[&str]) -> Vec<String> {
    let out = docker(args);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// Detaches every loop device whose backing file `matches` (a path, without the kernel's
/// " (deleted)" mark).
pub fn detach_loops(matches: impl Fn(&Path) -> bool) {
    let Ok(entries) = std::fs::read_dir("/sys/block") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(entry.path().join("loop/backing_file")) else {
            continue;
        };
        let text = text.trim_end_matches('\n');
        let backing = Path::new(text.strip_suffix(" (deleted)").unwrap_or(text));
        if matches(backing) {
            let _ = Command::new("timeout")
                .args(["30", "losetup", "-d", &format!("/dev/{name}")])
                .output();
        }
    }
}

/// Removes every service, container, volume and network matching a `label=...` filter.
/// Services go first (Swarm would start their containers again), and their containers are waited
/// for; an engine out of swarm mode lists no services.
pub fn remove_labelled(filter: &str) {
    let ids = docker_lines;
    let services = ids(&["service", "ls", "-q", "--filter", filter]);
    if !services.is_empty() {
        let mut args = vec!["service", "inspect", "--format", "{{.ID}}"];
        args.extend(services.iter().map(String::as_str));
        // Full ids: the tasks' containers carry those in their labels.
        let full = ids(&args);
        let mut args = vec!["service", "rm"];
        args.extend(full.iter().map(String::as_str));
        docker(&args);
        for service in &full {
            let by_service = format!("label=com.docker.swarm.service.id={service}");
            wait_until(Duration::from_secs(60), || {
                let left = ids(&["ps", "-aq", "--filter", &by_service]);
                if !left.is_empty() {
                    // Killed now rather than after their stop grace period.
                    let mut args = vec!["rm", "-f", "-v"];
                    args.extend(left.iter().map(String::as_str));
                    docker(&args);
                }
                left.is_empty()
            });
        }
    }
    let containers = ids(&["ps", "-aq", "--filter", filter]);
    if !containers.is_empty() {
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(containers.iter().map(String::as_str));
        docker(&args);
    }
    let volumes = ids(&["volume", "ls", "-q", "--filter", filter]);
    if !volumes.is_empty() {
        let mut args = vec!["volume", "rm", "-f"];
        args.extend(volumes.iter().map(String::as_str));
        docker(&args);
    }
    let networks = ids(&["network", "ls", "-q", "--filter", filter]);
    if !networks.is_empty() {
        let mut args = vec!["network", "rm"];
        args.extend(networks.iter().map(String::as_str));
        docker(&args);
        // A removed service's task leaves its overlay network a moment later: retried.
        if !services.is_empty() {
            wait_until(Duration::from_secs(30), || {
                let left = ids(&["network", "ls", "-q", "--filter", filter]);
                for network in &left {
                    docker(&["network", "rm", network]);
                }
                left.is_empty()
            });
        }
    }
}

/// Removes test objects whose owner process no longer exists (a test binary killed mid-run).
fn remove_orphans_of_dead_runs() {
    let out = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label={OWNER_LABEL}"),
        "--format",
        &format!("{{{{.Label \"{OWNER_LABEL}\"}}}}"),
    ]);
    let mut owners: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    for kind in ["volume", "network"] {
        let out = docker(&[
            kind,
            "ls",
            "--filter",
            &format!("label={OWNER_LABEL}"),
            "--format",
            "{{.Labels}}",
        ]);
        for labels in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(owner) = labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{OWNER_LABEL}=")))
            {
                owners.push(owner.to_owned());
            }
        }
    }
    // Disk images of capped volumes in a test directory that is gone: their run is over.
    let temp = std::env::temp_dir();
    detach_loops(|backing| {
        backing.starts_with(&temp)
            && backing.extension().is_some_and(|e| e == "ext4")
            && !backing.parent().is_some_and(Path::exists)
    });
    owners.sort();
    owners.dedup();
    for owner in owners {
        if !owner.is_empty() && owner_is_gone(&owner) {
            remove_labelled(&format!("label={OWNER_LABEL}={owner}"));
        }
    }
}

/// How long a test run's objects are its own at most: past this, any suite on the engine may
/// remove them, whichever machine made them (a run is bounded far below it).
const RUN_LEASE: Duration = Duration::from_secs(6 * 3600);

/// This test process, as other suites on the same engine can tell it apart:
/// `{host}.{boot}.{pid}.{start}.{expires}` (host name, the kernel's boot id, the pid and the
/// process's start time in clock ticks since boot, so a reused pid is not taken for the same
/// process, and when its lease on its objects ends, in seconds since the epoch).
pub fn owner_id() -> String {
    static EXPIRES: OnceLock<u64> = OnceLock::new();
    let expires = *EXPIRES.get_or_init(|| unix_now() + RUN_LEASE.as_secs());
    let pid = std::process::id();
    format!(
        "{}.{}.{pid}.{}.{expires}",
        host_name(),
        boot_id(),
        start_time(pid).unwrap_or_default()
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether the process behind an owner label has certainly ended. A lease past its expiry has
/// ended, whichever machine holds it. Otherwise only owners of this machine (same host name) are
/// judged: those of an earlier boot are gone, those of this boot are gone when their pid no
/// longer runs with the same start time. Live owners of other machines or containers that share
/// the engine are left alone.
fn owner_is_gone(owner: &str) -> bool {
    // Labels of the earlier format held the pid alone.
    if let Ok(pid) = owner.parse::<u32>() {
        return !Path::new(&format!("/proc/{pid}")).exists();
    }
    let mut parts: Vec<&str> = owner.split('.').collect();
    // Labels of the earlier format had no expiry.
    if parts.len() == 5 {
        let expires = parts.pop().and_then(|e| e.parse::<u64>().ok());
        if expires.is_some_and(|e| e < unix_now()) {
            return true;
        }
    }
    let [host, boot, pid, start] = parts.as_slice() else {
        return false;
    };
    if *host != host_name() {
        return false;
    }
    if *boot != boot_id() {
        return true;
    }
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    start_time(pid).is_none_or(|running| running.to_string() != *start)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().replace('.', "-"))
        .unwrap_or_default()
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|b| {
            b.trim()
                .chars()
                .filter(char::is_ascii_hexdigit)
                .take(12)
                .collect()
        })
        .unwrap_or_default()
}

/// A process's start time (clock ticks after boot, field 22 of `/proc/<pid>/stat`).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(19)?.parse().ok()
}

fn run_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mixed = std::process::id()
        .wrapping_mul(2_654_435_761)
        .wrapping_add(nanos)
        .wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed).wrapping_mul(97));
    format!("{:07x}", mixed & 0x0fff_ffff)
}

#[cfg(test)]
mod owner_tests {
    use super::*;

    #[test]
    fn only_runs_of_this_machine_that_ended_are_taken_for_gone() {
        let me = owner_id();
        assert!(!owner_is_gone(&me), "this very process: {me}");
        let parts: Vec<&str> = me.split('.').collect();
        let (host, boot, pid) = (parts[0], parts[1], parts[2]);
        // The same pid with another start time: a reused pid, the run is over.
        assert!(owner_is_gone(&format!("{host}.{boot}.{pid}.1")));
        // An earlier boot of this machine: over.
        assert!(owner_is_gone(&format!("{host}.000000000000.{pid}.1")));
        // Another machine or container sharing the engine: not judged from here while its lease
        // runs, gone once it expired.
        assert!(!owner_is_gone(&format!("another-host.{boot}.999999.1")));
        let later = unix_now() + 60;
        assert!(!owner_is_gone(&format!("another-host.{boot}.999999.1.{later}")));
        assert!(owner_is_gone(&format!("another-host.{boot}.999999.1.1000")));
        // This very process, with an expired lease: its objects are fair game too.
        assert!(owner_is_gone(&format!("{host}.{boot}.{pid}.{}.1000", parts[3])));
        assert!(!owner_is_gone("something unexpected"));
        // The earlier format, the pid alone.
        assert!(!owner_is_gone(&std::process::id().to_string()));
    }
}
