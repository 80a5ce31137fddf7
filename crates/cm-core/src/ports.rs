//! The ports: traits that adapters implement for the outside things the manager drives.
//!
//! The manager holds each as `Arc<dyn Trait>`. Every method speaks in validated domain types, and
//! every error is a [`crate::Error`] whose kind the adapter chose at its boundary.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures_core::Stream;
use serde::{Deserialize, Serialize};

use crate::config::RestartPolicy;
use crate::error::Result;
use crate::keys::{SshPublicKey, StoredKey};
use crate::names::{ContainerName, NetworkName, NodeName, TypeName, UserId, VolumeName};
use crate::network::{PortProbe, PortRange, Subnet, SubnetPool};
use crate::spec::{ContainerSpec, ContainerStatus};
use crate::values::{Command, CpuLimit, DiskSize, EnvVars, ImageRef, MemoryLimit};

// ---------------------------------------------------------------------------------------------
// The container runtime (Docker).

/// The container engine.
#[async_trait]
pub trait ContainerRuntime: Send + Sync {
    /// Pings the engine and reports its version; `Unavailable` when it does not answer.
    async fn engine_info(&self) -> Result<EngineInfo>;

    /// Creates the network unless it exists; says which.
    async fn ensure_network(&self, plan: &NetworkPlan) -> Result<Ensured>;
    /// Removes a network (a name the manager made or the engine reported); a missing one is fine,
    /// one with containers attached is a `Conflict`.
    async fn remove_network(&self, name: &str) -> Result<()>;
    /// The IPv4 subnets of every network on the engine, ours or not, so new ones never overlap.
    async fn network_subnets(&self) -> Result<BTreeSet<Subnet>>;

    /// Creates the volume unless it exists; an existing one with another owner's labels is a `Conflict`.
    async fn ensure_volume(&self, plan: &VolumePlan) -> Result<Ensured>;
    /// Removes a volume (a name the manager made or the engine reported) with its disk image, if
    /// size-capped; a missing one is fine.
    async fn remove_volume(&self, name: &str) -> Result<()>;
    /// Whether this runtime can cap data volumes' size on this host, and if not, why.
    fn disk_support(&self) -> DiskSupport {
        DiskSupport {
            enforced: false,
            detail: "this runtime has no disk caps".to_owned(),
        }
    }
    /// Makes a size-capped volume mountable again (after a host restart its disk image is
    /// detached); nothing for other volumes.
    async fn prepare_volume(&self, _name: &str) -> Result<()> {
        Ok(())
    }
    /// A container's resource use (a sample over about a second) and its health.
    async fn stats(&self, id: &str) -> Result<ContainerStats>;
    /// The cap and the use of a size-capped volume; `None` for other volumes.
    async fn volume_usage(&self, _name: &str) -> Result<Option<DiskUsage>> {
        Ok(None)
    }

    /// Creates (does not start) a container and returns its id. A missing image is `NotFound`, a
    /// taken name `Conflict`.
    async fn create_container(&self, plan: &ContainerPlan) -> Result<String>;
    /// Starts a container; starting a running one is fine.
    async fn start_container(&self, id: &str) -> Result<()>;
    /// Stops a container (SIGTERM, then SIGKILL after a grace period); stopping a stopped one is fine.
    async fn stop_container(&self, id: &str) -> Result<()>;
    /// Restarts a container.
    async fn restart_container(&self, id: &str) -> Result<()>;
    /// Removes a container and its anonymous volumes (never the named data volume). A missing one is fine.
    async fn remove_container(&self, id: &str, mode: RemoveMode) -> Result<()>;
    /// Looks a container up by id or name; `None` when the engine has none.
    async fn inspect_container(&self, id_or_name: &str) -> Result<Option<ObservedContainer>>;
    /// Every container (running or not) carrying `managed-by=ContainerManager` and all of `labels`.
    async fn list_managed(&self, labels: &BTreeMap<String, String>) -> Result<Vec<ObservedContainer>>;
    /// The host ports within `range` that containers on the engine publish right now, ours or not.
    async fn published_ports(&self, range: PortRange) -> Result<BTreeSet<u16>>;

    /// The container's output: the last `tail` lines, then (with `follow`) new lines as they come.
    async fn logs(&self, id: &str, request: &LogRequest) -> Result<LogStream>;
    /// Runs a command in a running container and collects its output and exit code. Past
    /// `request.timeout` the command is killed and the answer is a `Timeout` error.
    async fn exec(&self, id: &str, request: &ExecRequest) -> Result<ExecOutput>;
    /// Writes files into a container (running or not) without a shell, as a tar through the engine API.
    async fn upload(&self, id: &str, destination: &str, entries: &[UploadEntry]) -> Result<()>;
    /// Reads one file from a container; `None` when it does not exist.
    async fn download(&self, id: &str, path: &str) -> Result<Option<Vec<u8>>>;
    /// Renames a container (an update keeps the old one aside until the new one runs).
    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()>;
    /// Every container on the engine, ours or not (the admin's `list_all_docker_containers`).
    async fn list_all_containers(&self) -> Result<Vec<EngineContainer>>;
    /// What adoption needs to know of a container another manager made: `None` when it is gone.
    async fn inspect_foreign(&self, id: &str) -> Result<Option<ForeignContainer>>;

    /// Every volume carrying `managed-by=ContainerManager`.
    async fn list_managed_volumes(&self) -> Result<Vec<ObservedObject>>;
    /// Every network carrying `managed-by=ContainerManager`.
    async fn list_managed_networks(&self) -> Result<Vec<ObservedObject>>;
    /// The engine's container events as they happen, from now on. The stream ends or fails when
    /// the engine goes away.
    async fn container_events(&self) -> Result<EventStream>;

    /// The nodes containers can be placed on, for a runtime that spreads them over several
    /// (Swarm); empty for a single engine, where there is nothing to choose.
    async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        Ok(Vec::new())
    }

    /// Whether [`ContainerRuntime::rename_container`] works. Swarm can not rename a service: an
    /// update then replaces the container instead of keeping the old one aside under another
    /// name, and re-creates it from its record when the new one fails.
    fn renames(&self) -> bool {
        true
    }

    /// Whether every start is a new container made from the image (Swarm starts a new task), so
    /// that files outside the data volume, such as the SSH keys cm writes, are gone after the
    /// runtime restarts a container by itself. The status feed then writes the keys again.
    fn starts_afresh(&self) -> bool {
        false
    }

    /// Copies a data volume's contents from one node to another (a move), into the target's
    /// volume of the same name (made when missing); gives the bytes copied. `via` is an image both
    /// nodes hold (the container's own) for whatever the copy needs to run. Only a runtime with
    /// nodes can.
    async fn copy_volume(
        &self,
        plan: &VolumePlan,
        from: &NodeName,
        to: &NodeName,
        via: &ImageRef,
    ) -> Result<u64> {
        let _ = (plan, from, to, via);
        Err(crate::Error::new(
            crate::ErrorKind::Unavailable,
            "this runtime has one engine: there are no nodes to move data between",
        ))
    }

    /// Removes a volume from one node (the copy a move left behind). Only a runtime with nodes
    /// can: removing by name alone could take the volume a moved container uses.
    async fn remove_volume_on(&self, name: &str, node: &NodeName) -> Result<()> {
        Err(crate::Error::new(
            crate::ErrorKind::Unavailable,
            format!("this runtime has one engine: no volume {name} on a node {node} to remove"),
        ))
    }
}

/// One node of a cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Its host name: what containers are pinned to and `--node` names.
    pub name: NodeName,
    /// The cluster's id of it.
    pub id: String,
    /// The address its published ports are reached at.
    pub address: IpAddr,
    /// Whether it is up.
    pub state: NodeState,
    /// Whether new containers may be placed on it (Swarm's availability `active`).
    pub schedulable: bool,
    /// Whether it manages the cluster.
    pub manager: bool,
    /// Its memory, in bytes.
    pub memory_bytes: u64,
    /// Its CPUs.
    pub cpus: f64,
}

/// Whether a node is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Up and answering.
    Ready,
    /// Gone: its containers are shown as `node-down`.
    Down,
    /// Neither (joining, or a state the cluster does not name).
    Unknown,
}

impl NodeState {
    /// The state as the CLI and the API show it.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Ready => "ready",
            NodeState::Down => "down",
            NodeState::Unknown => "unknown",
        }
    }
}

/// A container's resource use and health, as the engine reports them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ContainerStats {
    /// CPU use over the sample, in percent of one CPU (200 is two CPUs' worth).
    pub cpu_percent: f64,
    /// Memory in use (without the page cache), in bytes.
    pub memory_bytes: u64,
    /// The memory limit, in bytes.
    pub memory_limit_bytes: u64,
    /// Processes and threads.
    pub pids: u64,
    /// Bytes received and sent on its networks.
    pub network_rx_bytes: u64,
    /// Bytes sent on its networks.
    pub network_tx_bytes: u64,
    /// Bytes read from block devices.
    pub block_read_bytes: u64,
    /// Bytes written to block devices.
    pub block_write_bytes: u64,
    /// How often the engine restarted it.
    pub restart_count: i64,
    /// The exit code of its last run once it has stopped (the engine resets it to 0 when it
    /// starts the container again).
    pub exit_code: i64,
    /// Whether the kernel killed it for memory on its last run.
    pub oom_killed: bool,
    /// When it last started, RFC 3339 (`None` before the first start).
    pub started_at: Option<String>,
}

/// Whether data volumes can be size-capped on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskSupport {
    /// True when a `disk` cap is enforced.
    pub enforced: bool,
    /// How, or why not.
    pub detail: String,
}

/// A size-capped volume's cap and use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskUsage {
    /// The cap, in bytes.
    pub size_bytes: u64,
    /// The bytes the volume takes on the host now (at most the cap plus its filesystem's
    /// own overhead).
    pub used_bytes: u64,
}

/// A volume or network as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedObject {
    /// Its name.
    pub name: String,
    /// Its id (volumes have none: the name).
    pub id: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// A change of a container's state, reported by the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    /// The container's id.
    pub id: String,
    /// The engine's action: `start`, `die`, `stop`, `destroy`, ...
    pub action: String,
}

/// The engine's container events.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<ContainerEvent>> + Send>>;

/// What the engine says about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineInfo {
    /// The engine's version, such as `20.10.24`.
    pub version: String,
    /// The API version in use after negotiation.
    pub api_version: String,
    /// Operating system and architecture of the engine.
    pub platform: String,
    /// The runtime adapter: `docker` (one engine) or `swarm`.
    #[serde(default)]
    pub runtime: String,
    /// What this runtime applies more weakly than the single-engine Docker runtime (a limit or
    /// protection the engine's API lacks here), one sentence each; empty when nothing is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weaker: Vec<String>,
}

/// Whether an `ensure_*` call made something new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// It was created now; undo removes it.
    Created,
    /// It was there already; undo leaves it.
    Existing,
}

/// How to remove a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveMode {
    /// Refuse (`Conflict`) when it is running.
    IfStopped,
    /// Kill it first when it is running.
    Force,
}

/// A user's bridge network.
#[derive(Debug, Clone)]
pub struct NetworkPlan {
    /// Its name.
    pub name: NetworkName,
    /// Its IPv4 subnet, from the subnet pool.
    pub subnet: Subnet,
    /// Ownership labels.
    pub labels: BTreeMap<String, String>,
}

/// A data volume.
#[derive(Debug, Clone)]
pub struct VolumePlan {
    /// Its name.
    pub name: VolumeName,
    /// Ownership labels; an existing volume must carry the same `user-id` and `container-type`.
    pub labels: BTreeMap<String, String>,
    /// Its size cap; `None` shares the engine's disk.
    pub size: Option<DiskSize>,
    /// The node it lives on (a runtime with nodes keeps volumes node-local); `None` on a single
    /// engine.
    pub node: Option<NodeName>,
}

/// Everything the engine needs to create one container.
#[derive(Debug, Clone)]
pub struct ContainerPlan {
    /// The container name.
    pub name: ContainerName,
    /// The image.
    pub image: ImageRef,
    /// A command replacing the image's default.
    pub command: Option<Command>,
    /// The environment.
    pub env: EnvVars,
    /// The labels.
    pub labels: BTreeMap<String, String>,
    /// The network to attach to.
    pub network: NetworkName,
    /// The data volume, mounted at `/data`.
    pub volume: VolumeName,
    /// Published ports: host address and port to container port.
    pub ports: Vec<PortBinding>,
    /// Memory limit.
    pub memory: MemoryLimit,
    /// CPU limit.
    pub cpus: CpuLimit,
    /// Process limit.
    pub pids_limit: i64,
    /// Restart policy.
    pub restart_policy: RestartPolicy,
    /// Capabilities added back after dropping all; `no-new-privileges` is always on.
    pub cap_add: Vec<String>,
    /// How the engine rotates the log.
    pub logs: crate::values::LogRotation,
    /// The node to run it on (a runtime with nodes pins it there); `None` on a single engine.
    pub node: Option<NodeName>,
}

/// One published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortBinding {
    /// The host address it is published on.
    pub host_ip: IpAddr,
    /// The host port.
    pub host_port: u16,
    /// The port inside the container.
    pub container_port: u16,
}

/// A container as the engine reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObservedContainer {
    /// The engine's id.
    pub id: String,
    /// The name, without Docker's leading `/`.
    pub name: String,
    /// Its state.
    pub status: ContainerStatus,
    /// The image it was created from.
    pub image: String,
    /// All its labels.
    pub labels: BTreeMap<String, String>,
    /// Why the engine's last attempt to start it failed (such as a volume it could not mount);
    /// only a single container's inspection reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_error: Option<String>,
    /// How often the engine restarted it since it was last started on purpose; only a single
    /// container's inspection reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_count: Option<i64>,
    /// The exit code of its last run (0 while it runs); only a single container's inspection
    /// reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
}

/// Any container on the engine, as `docker ps -a` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineContainer {
    /// The engine's id.
    pub id: String,
    /// The name, without Docker's leading `/`.
    pub name: String,
    /// The image it was created from.
    pub image: String,
    /// Docker's state (`running`, `exited`, ...).
    pub status: String,
    /// All its labels.
    pub labels: BTreeMap<String, String>,
    /// Published ports: `"8080/tcp"` to the host port.
    pub ports: BTreeMap<String, u16>,
    /// The networks it is attached to.
    pub networks: Vec<String>,
}

impl EngineContainer {
    /// Whether a ContainerManager (this one or the Python original) made it.
    pub fn is_managed(&self) -> bool {
        self.labels
            .get(crate::spec::labels::MANAGED_BY)
            .map(String::as_str)
            == Some(crate::spec::labels::MANAGED_BY_VALUE)
    }
}

/// A container another manager made (the Python original), as adoption sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignContainer {
    /// Its id, name, state, image and labels.
    pub observed: ObservedContainer,
    /// Its environment, without the variables its image sets with the same values.
    pub env: BTreeMap<String, String>,
    /// The volume mounted at `/data`, when one is.
    pub data_volume: Option<String>,
    /// When the engine created it, RFC 3339.
    pub created: String,
}

/// Which logs to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogRequest {
    /// The number of last lines; `None` for all.
    pub tail: Option<usize>,
    /// Keep the stream open and yield new lines.
    pub follow: bool,
    /// Start each line with the engine's RFC 3339 time of it.
    pub timestamps: bool,
    /// Only lines written at or after this time.
    pub since: Option<SystemTime>,
}

impl LogRequest {
    /// Parses a `since` as people write it: a duration ago (`10m`, `2h`, `1d`) or an RFC 3339
    /// time (`2026-12-02T10:00:00Z`).
    pub fn parse_since(text: &str) -> crate::Result<SystemTime> {
        let text = text.trim();
        if let Ok(ago) = humantime::parse_duration(text) {
            return SystemTime::now()
                .checked_sub(ago)
                .ok_or_else(|| crate::Error::invalid(format!("since {text:?} is too long ago")));
        }
        humantime::parse_rfc3339_weak(text).map_err(|_| {
            crate::Error::invalid(format!(
                "invalid since {text:?}: a duration such as 10m or 2h, or a time such as 2026-12-02T10:00:00Z"
            ))
        })
    }
}

/// Which output stream a log chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A piece of a container's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogChunk {
    /// Where it came from.
    pub stream: OutputStream,
    /// The bytes, decoded lossily as UTF-8.
    pub text: String,
}

/// A stream of log chunks; it ends when the container's output ends (or never, with `follow`).
pub type LogStream = Pin<Box<dyn Stream<Item = Result<LogChunk>> + Send>>;

/// A command to run in a container.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    /// The program and its arguments (no shell unless the command names one).
    pub command: Command,
    /// The user to run as; `None` for the image's user.
    pub user: Option<String>,
    /// The time limit.
    pub timeout: Duration,
}

/// What a finished exec produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOutput {
    /// The command's exit code.
    pub exit_code: i64,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// One file or directory to upload, with its owner and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadEntry {
    /// The path relative to the destination directory.
    pub path: String,
    /// Permission bits, such as `0o600`.
    pub mode: u32,
    /// Owner uid.
    pub uid: u64,
    /// Owner gid.
    pub gid: u64,
    /// A directory, or a file with these bytes.
    pub contents: Option<Vec<u8>>,
}

// ---------------------------------------------------------------------------------------------
// The store (SQLite).

/// The desired state (D2): container records, port and subnet leases, operation intents, SSH keys.
///
/// Every method is atomic. Implementations must be safe across threads and across processes
/// sharing the same database.
#[async_trait]
pub trait Store: Send + Sync {
    /// Records the intent to create `name` and leases its ports, in one write transaction.
    ///
    /// `Conflict` when a record or an unfinished operation exists for the name. Ports are the
    /// lowest of `range` that are neither leased, in `exclude`, nor taken on the host per `probe`.
    async fn begin_create(&self, request: &CreateReservation, probe: Arc<dyn PortProbe>) -> Result<Vec<u16>>;
    /// Stores the finished record and clears the intent, in one transaction.
    async fn finish_create(&self, spec: &ContainerSpec) -> Result<()>;
    /// Releases the leases of `name` and clears its intent (after a create was fully undone).
    async fn abandon_create(&self, name: &ContainerName) -> Result<()>;

    /// Records the intent of another operation (delete, update) on a recorded container;
    /// `Conflict` when one is running.
    async fn begin_operation(
        &self,
        spec: &ContainerSpec,
        kind: OperationKind,
        started: SystemTime,
    ) -> Result<()>;
    /// Clears an intent without other changes (the operation was undone or finished elsewhere).
    async fn end_operation(&self, name: &ContainerName) -> Result<()>;
    /// Removes the record, its ports, its keys and its intent, in one transaction. A delete intent
    /// keeps the data volume on the list of retained volumes; a purge intent drops it.
    async fn finish_delete(&self, spec: &ContainerSpec) -> Result<()>;
    /// The unfinished operations.
    async fn operations(&self) -> Result<Vec<Operation>>;
    /// Notes a side effect of an unfinished operation, so a crash can be undone precisely.
    async fn record_step(&self, name: &ContainerName, step: &str) -> Result<()>;
    /// The unfinished operations whose process is gone (crashed or killed), now claimed by the
    /// caller; finishing, ending or [`Store::unclaim`] releases the claim.
    async fn claim_abandoned(&self) -> Result<Vec<Operation>>;
    /// Gives up a claim without changing the operation.
    async fn unclaim(&self, name: &ContainerName) -> Result<()>;

    /// Replaces a record (a new container id after re-create, a new status).
    async fn put(&self, spec: &ContainerSpec) -> Result<()>;
    /// Records a container adopted from another manager, leasing exactly its ports, in one step:
    /// a conflict (and nothing changed) when the name is recorded, an operation on it runs, or a
    /// port is leased to another.
    async fn adopt(&self, spec: &ContainerSpec) -> Result<()>;
    /// The record of a container by its Docker id.
    async fn get(&self, container_id: &str) -> Result<Option<ContainerSpec>>;
    /// The record of a container by name.
    async fn get_by_name(&self, name: &ContainerName) -> Result<Option<ContainerSpec>>;
    /// Every record.
    async fn list_all(&self) -> Result<Vec<ContainerSpec>>;
    /// A number that changes whenever anyone (this process or another) commits a change, when
    /// the store can tell: equal revisions mean equal contents, so answers made from them may be
    /// reused. `None`: it can not tell, nothing is reused.
    async fn revision(&self) -> Result<Option<u64>> {
        Ok(None)
    }
    /// The records of one user.
    async fn list_user(&self, user: &UserId) -> Result<Vec<ContainerSpec>>;

    /// Every port lease.
    async fn port_leases(&self) -> Result<Vec<PortLease>>;
    /// Releases every port leased to `owner` (a container name).
    async fn release_ports(&self, owner: &str) -> Result<()>;
    /// Every user's subnet lease.
    async fn subnet_leases(&self) -> Result<Vec<(UserId, Subnet)>>;
    /// One user's subnet lease, if any.
    async fn subnet_of(&self, user: &UserId) -> Result<Option<Subnet>>;
    /// Data volumes kept by a delete without purge (explained, not orphans).
    async fn retained_volumes(&self) -> Result<Vec<VolumeName>>;
    /// Forgets a retained volume (it was purged); `false` when it was not retained.
    async fn forget_retained(&self, name: &VolumeName) -> Result<bool>;
    /// The user's subnet: the existing lease, or a new one from `pool` avoiding `exclude`.
    async fn lease_subnet(
        &self,
        user: &UserId,
        pool: SubnetPool,
        exclude: &BTreeSet<Subnet>,
    ) -> Result<Subnet>;
    /// Frees the user's subnet.
    async fn release_subnet(&self, user: &UserId) -> Result<()>;

    /// The admin's quota overrides of `user`, if any.
    async fn user_quota(&self, user: &UserId) -> Result<Option<crate::quota::UserQuota>>;
    /// Sets (`Some`) or clears (`None`) the quota overrides of `user`.
    async fn set_user_quota(&self, user: &UserId, quota: Option<&crate::quota::UserQuota>) -> Result<()>;

    /// Adds a key to a container; `false` when it was there already.
    async fn add_key(&self, name: &ContainerName, key: &SshPublicKey, added: SystemTime) -> Result<bool>;
    /// Removes a key by fingerprint; `false` when there was none.
    async fn remove_key(&self, name: &ContainerName, fingerprint: &str) -> Result<bool>;
    /// The keys of a container, oldest first.
    async fn keys(&self, name: &ContainerName) -> Result<Vec<StoredKey>>;

    /// Marks a container as stopped for being idle at `at`: a request through its route may start
    /// it again (an explicitly stopped container has no mark). Deleting the record drops it.
    async fn mark_idle_stopped(&self, name: &ContainerName, at: SystemTime) -> Result<()>;
    /// Drops the mark; `false` when there was none.
    async fn clear_idle_stopped(&self, name: &ContainerName) -> Result<bool>;
    /// Every container marked as stopped for being idle, with when it was stopped.
    async fn idle_stopped(&self) -> Result<BTreeMap<ContainerName, SystemTime>>;
}

/// What `begin_create` needs.
#[derive(Debug, Clone)]
pub struct CreateReservation {
    /// The container to be.
    pub name: ContainerName,
    /// Its user.
    pub user: UserId,
    /// Its type.
    pub kind: TypeName,
    /// The pool to lease from.
    pub range: PortRange,
    /// How many ports (1 for HTTP, 2 with SSH).
    pub ports: usize,
    /// Ports to skip besides leased ones (published by other containers on the engine).
    pub exclude: BTreeSet<u16>,
    /// When the operation began.
    pub started: SystemTime,
}

/// The kinds of operation whose intent is recorded before the first side effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// Creating a container.
    Create,
    /// Deleting a container, keeping its data volume.
    Delete,
    /// Deleting a container and its data volume.
    Purge,
    /// Re-creating a container with a new image.
    Update,
}

/// An unfinished operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Operation {
    /// The container it is about.
    pub name: ContainerName,
    /// The container's user.
    pub user_id: UserId,
    /// The container's type.
    pub container_type: TypeName,
    /// What it does.
    pub kind: OperationKind,
    /// When it began, seconds since the Unix epoch.
    pub started_at: i64,
    /// The side effects done so far (`network_created`, `volume_created`, ...).
    pub steps: Vec<String>,
}

/// One leased host port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortLease {
    /// The port.
    pub port: u16,
    /// The container name it is leased to.
    pub owner: String,
}

// ---------------------------------------------------------------------------------------------
// The HTTP proxy (nginx).

/// A route: `/container/{user_id}/{type}/` to `127.0.0.1:{port}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// The owner.
    pub user: UserId,
    /// The type.
    pub kind: TypeName,
    /// The host port on 127.0.0.1.
    pub port: u16,
    /// Strip the prefix before proxying.
    pub strip_prefix: bool,
}

/// The state of one route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum RouteState {
    /// Live in nginx.
    Active,
    /// Written but refused by `nginx -t`; the message is nginx's own.
    Failed(String),
    /// Expected from the store but not present (or a link without a file).
    Missing,
    /// Written but not linked into the enabled directory, so not served.
    Disabled,
    /// Present in nginx but no container record explains it.
    Orphaned,
}

/// A route and its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteStatus {
    /// The user.
    pub user: String,
    /// The type.
    pub kind: String,
    /// The upstream port, when known.
    pub port: Option<u16>,
    /// The state (flattened into `state` and `detail` in JSON).
    #[serde(flatten)]
    pub state: RouteState,
}

/// Whether HTTP exposure works at all, and how the last reload went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProxyStatus {
    /// False when nginx is absent or unusable; routes are then not written.
    pub enabled: bool,
    /// How routes reach nginx (`None` when disabled).
    pub mode: Option<crate::config::RoutingMode>,
    /// Whether nginx answered on its configured address when last probed (`None`: not probed).
    pub answers: Option<bool>,
    /// Why it is disabled, or where routes live.
    pub detail: String,
    /// Reloads this process made.
    pub reloads: u64,
    /// The last reload of this process, if any.
    pub last_reload: Option<ReloadOutcome>,
}

/// When a reload ran and whether nginx accepted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadOutcome {
    /// When it finished, RFC 3339 UTC.
    pub at: String,
    /// nginx's message when it failed.
    pub error: Option<String>,
}

impl ProxyStatus {
    /// The status of a proxy that routes nothing, with the reason.
    pub fn disabled(reason: impl Into<String>) -> Self {
        ProxyStatus {
            enabled: false,
            mode: None,
            answers: None,
            detail: reason.into(),
            reloads: 0,
            last_reload: None,
        }
    }
}

/// The reverse proxy in front of the containers.
#[async_trait]
pub trait Proxy: Send + Sync {
    /// Whether routing is enabled, and why not.
    fn status(&self) -> ProxyStatus;
    /// Like [`Proxy::status`], and also asks nginx whether it answers (for health checks).
    async fn probe(&self) -> ProxyStatus {
        self.status()
    }
    /// Writes, validates and activates a route; on refusal the previous state keeps serving and the
    /// error carries nginx's message.
    async fn apply(&self, route: &Route) -> Result<()>;
    /// Removes a route; a missing one is fine.
    async fn remove(&self, user: &UserId, kind: &TypeName) -> Result<()>;
    /// The routes present, with their states.
    async fn routes(&self) -> Result<Vec<RouteStatus>>;
    /// Makes the routes exactly `routes`: renders missing or changed ones, removes the others.
    async fn sync(&self, routes: &[Route]) -> Result<Vec<RouteStatus>>;
}

/// The proxy used when routing is turned off in the configuration: it routes nothing and says so.
#[derive(Debug, Clone, Default)]
pub struct NoProxy;

#[async_trait]
impl Proxy for NoProxy {
    fn status(&self) -> ProxyStatus {
        ProxyStatus::disabled("HTTP exposure disabled in the configuration ([nginx] enabled = false)")
    }

    async fn apply(&self, _route: &Route) -> Result<()> {
        Err(crate::Error::unavailable(self.status().detail))
    }

    async fn remove(&self, _user: &UserId, _kind: &TypeName) -> Result<()> {
        Ok(())
    }

    async fn routes(&self) -> Result<Vec<RouteStatus>> {
        Ok(Vec::new())
    }

    async fn sync(&self, _routes: &[Route]) -> Result<Vec<RouteStatus>> {
        Err(crate::Error::unavailable(self.status().detail))
    }
}

// ---------------------------------------------------------------------------------------------
// Whether an app answers.

/// Asks whether a container's app answers on its published HTTP port, the way nginx reaches it.
#[async_trait]
pub trait AppProbe: Send + Sync {
    /// True when something answers HTTP on `127.0.0.1:{port}` within a short time.
    async fn answers(&self, port: u16) -> bool;
}

// ---------------------------------------------------------------------------------------------
// SSH keys and time.

/// Named points in the use cases where tests can make the process die, to prove that the next
/// reconcile finishes or undoes whatever was interrupted there.
pub trait FailPoints: Send + Sync {
    /// Called when the use case reaches `point` (such as `create:volume`).
    fn reached(&self, point: &str);
}

/// No fail points: production.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFailPoints;

impl FailPoints for NoFailPoints {
    fn reached(&self, _point: &str) {}
}

/// Parses and validates SSH public keys (implemented with the `ssh-key` crate in cm-ssh).
pub trait KeyParser: Send + Sync {
    /// Parses one public key line; refuses anything but a single plain ed25519 key with a message saying why.
    fn parse(&self, raw: &str) -> Result<SshPublicKey>;
}

/// The current time, behind a trait so tests can fix it.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> SystemTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}
