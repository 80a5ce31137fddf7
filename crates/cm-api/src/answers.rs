//! The JSON answers of the API, and the redaction of secret-looking environment values.
//!
//! Container records are rendered through [`container_json`], which replaces the value of every
//! environment variable whose name looks secret with `***` (the original returned them verbatim).
//! The `*Doc` types only describe shapes for the OpenAPI document; a test checks that
//! [`ContainerDoc`] lists exactly the fields a serialized record has.

use std::collections::BTreeMap;

use cm_core::{ContainerSpec, ContainerType};
pub use cm_core::{REDACTED, SECRET_MARKERS, is_secret_name};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::ApiError;

/// A container record as JSON, with secret-looking environment values replaced by `***`; a
/// record that can not be written is an internal error, never a silent `null`.
pub fn container_json(spec: &ContainerSpec) -> Result<Value, ApiError> {
    let shown = ContainerSpec {
        env: spec.env.redacted(),
        ..spec.clone()
    };
    to_json(shown)
}

/// A container type as JSON, with secret-looking environment values replaced by `***`; a type
/// that can not be written is an internal error.
pub fn type_json(kind: &ContainerType) -> Result<Value, ApiError> {
    let shown = ContainerType {
        env: kind.env.redacted(),
        ..kind.clone()
    };
    to_json(shown)
}

/// A value as JSON for an answer: a failure is an internal error (500 with the standard error
/// body), never a silent `null`.
pub fn to_json(value: impl Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(value)
        .map_err(|e| ApiError::internal(format!("an answer could not be written as JSON: {e}")))
}

/// One container.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContainerAnswer {
    /// The record, with its live status.
    #[schema(value_type = ContainerDoc)]
    pub container: Value,
}

/// A new container.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedAnswer {
    /// The record.
    #[schema(value_type = ContainerDoc)]
    pub container: Value,
    /// `null` when the HTTP route is live or routing is disabled; otherwise nginx's refusal (the
    /// container runs all the same).
    pub route_error: Option<String>,
}

/// A list of containers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListingAnswer {
    /// The records, sorted by name.
    #[schema(value_type = Vec<ContainerDoc>)]
    pub containers: Vec<Value>,
    /// `null` when the statuses are live; otherwise why they are the stored ones (the engine could
    /// not be asked).
    pub stale: Option<String>,
}

/// A deleted container.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedAnswer {
    /// The name of the deleted container.
    pub deleted: String,
    /// Its Docker id.
    pub container_id: String,
    /// True when its data volume was removed too.
    pub purged: bool,
    /// The data volume (kept unless `purged`).
    pub volume_name: String,
}

/// A container's output.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogsAnswer {
    /// Standard output and standard error, interleaved as they came.
    pub logs: String,
}

/// What a command run in a container produced.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExecAnswer {
    /// The command's exit code (the answer is 200 whatever it is).
    pub exit_code: i64,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// An SSH key.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyDoc {
    /// The canonical `ssh-ed25519 AAAA... comment` line.
    pub line: String,
    /// `SHA256:...`, as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
    /// The key's comment.
    pub comment: String,
}

/// The outcome of adding a key.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyAddedAnswer {
    /// The parsed key.
    #[schema(value_type = KeyDoc)]
    pub key: Value,
    /// False when the container had the key already.
    pub added: bool,
    /// True when written into the running container now; false when it is stopped and gets it at
    /// its next start.
    pub applied: bool,
}

/// The outcome of removing a key.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyRemovedAnswer {
    /// The fingerprint removed.
    pub removed: String,
    /// True when the running container's `authorized_keys` was rewritten now.
    pub applied: bool,
}

/// A stored key.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoredKeyDoc {
    /// The key.
    pub key: KeyDoc,
    /// When it was added, RFC 3339 UTC.
    pub added_at: String,
}

/// The keys of a container.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeysAnswer {
    /// The keys, oldest first.
    #[schema(value_type = Vec<StoredKeyDoc>)]
    pub keys: Value,
}

/// A container's use and health (`container_stats`).
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsAnswer {
    /// The container.
    pub container_name: String,
    /// The figures.
    pub stats: StatsDoc,
}

/// The figures of `container_stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsDoc {
    /// CPU use over the sample, in percent of one CPU.
    pub cpu_percent: f64,
    /// Memory in use without the page cache, in bytes.
    pub memory_bytes: u64,
    /// The memory limit, in bytes.
    pub memory_limit_bytes: u64,
    /// Processes and threads.
    pub pids: u64,
    /// Bytes received on its networks.
    pub network_rx_bytes: u64,
    /// Bytes sent on its networks.
    pub network_tx_bytes: u64,
    /// Bytes read from block devices.
    pub block_read_bytes: u64,
    /// Bytes written to block devices.
    pub block_write_bytes: u64,
    /// How often the engine restarted it.
    pub restart_count: i64,
    /// The exit code of its last run once it has stopped (0 while it runs).
    pub exit_code: i64,
    /// Whether the kernel killed it for memory on its last run.
    pub oom_killed: bool,
    /// When it last started (RFC 3339).
    pub started_at: Option<String>,
}

/// How to reach a container over SSH.
#[derive(Debug, Serialize, ToSchema)]
pub struct SshInfoDoc {
    /// The container.
    pub container_name: String,
    /// The host to connect to (`<server>` until `CM_SERVER_HOST` is set).
    pub host: String,
    /// The port.
    pub port: u16,
    /// The login user (`cli`).
    pub user: String,
    /// A ready `ssh` command line.
    pub command: String,
    /// The `docksh connect` command line.
    pub docksh: String,
    /// The fingerprints of the authorized keys.
    pub fingerprints: Vec<String>,
}

/// The engine's version, as the health check reports it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EngineDoc {
    /// The engine's version.
    pub version: String,
    /// The API version in use.
    pub api_version: String,
    /// Operating system and architecture.
    pub platform: String,
}

/// Whether HTTP routing through nginx works.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProxyDoc {
    /// False when nginx is absent, unusable or turned off.
    pub enabled: bool,
    /// Why it is disabled, or where routes live.
    pub detail: String,
}

/// The health of the engine and the proxy.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthAnswer {
    /// Always true in a 200 answer (an engine that does not answer is a 503).
    pub ok: bool,
    /// The engine.
    #[schema(value_type = EngineDoc)]
    pub engine: Value,
    /// The proxy.
    #[schema(value_type = ProxyDoc)]
    pub proxy: Value,
    /// How many containers the engine holds, and whose (the admin's answer only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<CountsDoc>)]
    pub containers: Option<Value>,
}

/// How many containers the engine holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountsDoc {
    /// All of them.
    pub total_containers: usize,
    /// Made by a ContainerManager (this one or the Python original).
    pub tb_managed: usize,
    /// The host's own.
    pub external: usize,
}

/// One container on the engine.
#[derive(Debug, Serialize, ToSchema)]
pub struct EngineContainerDoc {
    /// The 12-character short id.
    pub container_id: String,
    /// The full id.
    pub container_id_full: String,
    /// The name.
    pub name: String,
    /// The image.
    pub image: String,
    /// Docker's state.
    pub status: String,
    /// Published ports: `"8080/tcp"` to the host port.
    pub ports: std::collections::BTreeMap<String, u16>,
    /// Its networks.
    pub networks: Vec<String>,
    /// Made by a ContainerManager.
    pub is_tb_managed: bool,
    /// Its labels.
    pub labels: std::collections::BTreeMap<String, String>,
}

impl From<&cm_core::EngineContainer> for EngineContainerDoc {
    fn from(c: &cm_core::EngineContainer) -> Self {
        EngineContainerDoc {
            container_id: c.id[..12.min(c.id.len())].to_owned(),
            container_id_full: c.id.clone(),
            name: c.name.clone(),
            image: c.image.clone(),
            status: c.status.clone(),
            ports: c.ports.clone(),
            networks: c.networks.clone(),
            is_tb_managed: c.is_managed(),
            labels: c.labels.clone(),
        }
    }
}

/// Every container on the engine.
#[derive(Debug, Serialize, ToSchema)]
pub struct EngineContainersAnswer {
    /// The containers, by name.
    pub containers: Vec<EngineContainerDoc>,
    /// Always true in a 200 answer.
    pub docker_available: bool,
}

/// A container moved to another node.
#[derive(Debug, Serialize, ToSchema)]
pub struct MovedAnswer {
    /// The container on its new node.
    #[schema(value_type = ContainerDoc)]
    pub container: Value,
    /// The node it was on.
    pub from: String,
    /// The bytes of data copied.
    pub copied_bytes: u64,
    /// How long it was not running (0 when it was not running before).
    pub downtime_seconds: f64,
}

/// The nodes of a Swarm runtime.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodesAnswer {
    /// The nodes, by name; empty on a single engine.
    pub nodes: Vec<NodeDoc>,
}

/// A node and what the manager placed on it.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeDoc {
    /// Its host name (what `node` of `create_container` names).
    pub name: String,
    /// `ready`, `down` or `unknown`.
    pub state: String,
    /// Whether new containers may go there.
    pub schedulable: bool,
    /// Whether it manages the cluster.
    pub manager: bool,
    /// The address its published ports are reached at.
    pub address: String,
    /// Its memory, in bytes.
    pub memory_bytes: u64,
    /// Its CPUs.
    pub cpus: f64,
    /// How many of the manager's containers are pinned to it.
    pub containers: usize,
    /// The sum of their memory limits, in bytes.
    pub reserved_memory_bytes: u64,
    /// The sum of their CPU limits.
    pub reserved_cpus: f64,
}

impl NodeDoc {
    /// The document of a node's report.
    pub fn of(report: &cm_core::NodeReport) -> Self {
        let node = &report.node;
        NodeDoc {
            name: node.name.to_string(),
            state: node.state.as_str().to_owned(),
            schedulable: node.schedulable,
            manager: node.manager,
            address: node.address.to_string(),
            memory_bytes: node.memory_bytes,
            cpus: node.cpus,
            containers: report.containers,
            reserved_memory_bytes: report.reserved_memory_bytes,
            reserved_cpus: report.reserved_cpus,
        }
    }
}

/// An infrastructure service found on the engine.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceDoc {
    /// The container's name.
    pub name: String,
    /// `redis`, `minio`, `searxng`, `opentelemetry` or `openobserve`.
    pub service_type: String,
    /// Its URL inside Docker networks.
    pub internal_url: String,
    /// Its URL from outside.
    pub external_url: String,
    /// The 12-character short id.
    pub container_id: String,
    /// The container's name (the original's field).
    pub container_name: String,
    /// Made by a ContainerManager.
    pub is_tb_managed: bool,
}

impl From<&cm_core::DiscoveredService> for ServiceDoc {
    fn from(s: &cm_core::DiscoveredService) -> Self {
        ServiceDoc {
            name: s.name.clone(),
            service_type: s.service_type.to_owned(),
            internal_url: s.internal_url.clone(),
            external_url: s.external_url.clone(),
            container_id: s.container_id[..12.min(s.container_id.len())].to_owned(),
            container_name: s.name.clone(),
            is_tb_managed: s.is_tb_managed,
        }
    }
}

/// The infrastructure services found.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServicesAnswer {
    /// The services.
    pub services: Vec<ServiceDoc>,
    /// Always true in a 200 answer.
    pub docker_available: bool,
}

/// The configured container types.
#[derive(Debug, Serialize, ToSchema)]
pub struct TypesAnswer {
    /// The types, by name: image, internal port, SSH mode (`on`, `off`, `optional`), limits,
    /// environment (secret-looking values redacted).
    #[schema(value_type = Vec<Object>)]
    pub types: Vec<Value>,
}

/// A new user token, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenCreatedAnswer {
    /// The token: send it as `Authorization: Bearer <token>`. It is shown only now.
    pub token: String,
    /// Its public id (safe to show and log; used to revoke it).
    pub id: String,
    /// The user it acts for.
    pub user_id: String,
    /// When it was created, RFC 3339 UTC.
    pub created_at: String,
    /// When it stops working, RFC 3339 UTC; `null`: never.
    pub expires_at: Option<String>,
}

/// A token without its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenDoc {
    /// Its public id.
    pub id: String,
    /// The user it acts for.
    pub user_id: String,
    /// When it was created, RFC 3339 UTC.
    pub created_at: String,
    /// When it stops working, RFC 3339 UTC; `null`: never.
    pub expires_at: Option<String>,
    /// When it last authenticated a request (to the minute), RFC 3339 UTC.
    pub last_used_at: Option<String>,
}

/// The tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokensAnswer {
    /// Every token, oldest first.
    #[schema(value_type = Vec<TokenDoc>)]
    pub tokens: Value,
}

/// How many tokens were revoked.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedAnswer {
    /// The number of tokens revoked.
    pub revoked: usize,
}

/// A new admin key, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminKeyAnswer {
    /// The new admin key; the old one stops working now.
    pub admin_key: String,
}

/// One entry of the audit trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryDoc {
    /// Its number; newer entries have larger ones.
    pub id: i64,
    /// When, RFC 3339 UTC.
    pub at: String,
    /// Who: `{"kind": "admin"}`, `{"kind": "user", "name": "alice"}`, `{"kind": "local", "name":
    /// "root"}` (`cm` on the host), `{"kind": "anonymous"}` or `{"kind": "system"}` (the idle
    /// sweep).
    #[schema(value_type = Object)]
    pub actor: Value,
    /// `api`, `dashboard`, `route`, `cli` or `system`.
    pub source: String,
    /// The function or command (`create_container`, `sign_in`, ...).
    pub action: String,
    /// The container, user or token acted on.
    pub target: Option<String>,
    /// Whose that is.
    pub subject: Option<String>,
    /// The parameters, secrets replaced by `***`.
    #[schema(value_type = Object)]
    pub params: Value,
    /// `ok`, or the error code.
    pub result: String,
    /// The client's address.
    pub address: Option<String>,
}

/// The answer of `audit_log`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditAnswer {
    /// Newest first.
    #[schema(value_type = Vec<AuditEntryDoc>)]
    pub entries: Vec<Value>,
}

/// Who the credentials belong to.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoamiAnswer {
    /// `admin` or `user`.
    pub role: String,
    /// The user, for a user token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// The answer of `get_user_quota` and `set_user_quota`.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaAnswer {
    /// The quota: `user_id`, `limits` (`containers`, `memory` such as `"4g"`, `cpus`; `null` is
    /// unlimited), `overrides` (the admin's, or `null`), and `used` (`containers`,
    /// `memory_bytes`, `cpus`).
    #[schema(value_type = Object)]
    pub quota: serde_json::Value,
}

/// The liveness answer of `/healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveAnswer {
    /// Always true.
    pub ok: bool,
}

/// A container record (the original's field names first, then additions).
#[derive(Debug, Serialize, ToSchema)]
pub struct ContainerDoc {
    /// Docker's id of the current container.
    pub container_id: String,
    /// `{user_id}_{container_type}`.
    pub container_name: String,
    /// The type.
    pub container_type: String,
    /// The owner.
    pub user_id: String,
    /// The leased HTTP host port, published on 127.0.0.1 only.
    pub port: u16,
    /// The HTTP port inside the container.
    pub internal_port: u16,
    /// The image.
    pub image: String,
    /// The data volume mounted at `/data`.
    pub volume_name: String,
    /// `created`, `running`, `restarting`, `crash-looping` (the engine is restarting it for the
    /// third time in a row), `paused`, `exited`, `removing`, `dead`, `missing` (recorded but gone
    /// from the engine), `node-down` (its Swarm node is down) or `unknown`.
    pub status: String,
    /// When it was created, RFC 3339 UTC.
    pub created_at: String,
    /// The environment; values of names containing KEY, SECRET, TOKEN, PASSWORD, PASSWD,
    /// CREDENTIAL or PRIVATE are shown as `***`.
    pub env: BTreeMap<String, String>,
    /// The leased SSH host port, when SSH is enabled.
    pub ssh_port: Option<u16>,
    /// The user's bridge network.
    pub network_name: String,
    /// The subnet of that network.
    pub subnet: String,
    /// The command, when it replaces the image's default.
    pub command: Option<Vec<String>>,
    /// The memory limit, such as `512m`.
    pub memory: String,
    /// The CPU limit in CPUs.
    pub cpus: f64,
    /// The process limit.
    pub pids_limit: i64,
    /// The URL path nginx serves it under: `/container/{user_id}/{type}/`.
    pub url_path: String,
    /// The data volume's size cap, such as `2g`, when its type has one.
    pub disk: Option<String>,
    /// The node it is pinned to, on a Swarm runtime (see `list_nodes`).
    pub node: Option<String>,
    /// The cap and the bytes the volume takes on the host now (`get_container` only, capped
    /// volumes only).
    pub disk_usage: Option<DiskUsageDoc>,
    /// How it is doing (`get_container` with `health=true` only).
    pub health: Option<HealthDoc>,
}

/// How a container is doing.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthDoc {
    /// Its status now (as `status`).
    pub status: String,
    /// Seconds since it last started, while it runs.
    pub uptime_seconds: Option<u64>,
    /// When it last started, RFC 3339.
    pub started_at: Option<String>,
    /// How often the engine restarted it since it was last started on purpose.
    pub restart_count: i64,
    /// The exit code of its last run.
    pub exit_code: i64,
    /// Whether the kernel killed it for memory on its last run.
    pub oom_killed: bool,
    /// CPU use over about a second, in percent of one CPU.
    pub cpu_percent: f64,
    /// Memory in use (without the page cache), in bytes.
    pub memory_bytes: u64,
    /// Its memory limit, in bytes.
    pub memory_limit_bytes: u64,
    /// Its last output lines (at most 20), only when it is crash-looping, was killed for memory
    /// or its last run failed.
    pub last_log_lines: Option<Vec<String>>,
    /// The last minutes of use, oldest first, as cm-api samples them (`[health]
    /// sample_seconds`); absent before the first sample.
    pub history: Option<Vec<UsagePointDoc>>,
}

/// One sample of a container's use.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsagePointDoc {
    /// When, in seconds since the Unix epoch.
    pub at: u64,
    /// CPU use, in percent of one CPU.
    pub cpu_percent: f64,
    /// Memory in use, in bytes.
    pub memory_bytes: u64,
}

/// A capped data volume's use.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiskUsageDoc {
    /// The cap, in bytes.
    pub size_bytes: u64,
    /// The bytes the volume takes on the host now.
    pub used_bytes: u64,
}
