//! Configuration (D10): container types, pools, addresses and paths, from a TOML text with built-in
//! defaults equal to the seed. Reading the file and the environment is the frontends' job; this
//! module only parses text.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::names::{TypeName, quote};
use crate::network::{PortRange, Subnet, SubnetPool};
use crate::values::{Command, CpuLimit, DiskSize, EnvVars, ImageRef, LogRotation, MemoryLimit};

/// The whole configuration of a ContainerManager installation.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Host ports leased to containers (default 9000-9500).
    pub port_pool: PortRange,
    /// Where user networks get their subnets.
    pub subnet_pool: SubnetPool,
    /// SSH exposure.
    pub ssh: SshSettings,
    /// nginx integration (used by the nginx adapter).
    pub nginx: NginxSettings,
    /// How HTTP routes identify containers and callers.
    pub routing: RoutingSettings,
    /// Limits that keep one caller from harming others.
    pub limits: LimitSettings,
    /// Every user's quota unless the admin set another (default: unlimited).
    pub quota: crate::quota::UserQuota,
    /// What user tokens may do to their own containers (`[auth] user_actions`; default: all user
    /// actions, as in the original).
    pub user_actions: crate::actions::UserActions,
    /// How the API shapes its answers by default (`[api] envelope`).
    pub envelope: Envelope,
    /// ToolBox users sign in with their CloudM access tokens (`[auth.toolbox]`), when set.
    pub toolbox_identity: Option<ToolboxIdentity>,
    /// The SQLite file, unless `CM_DB` says otherwise.
    pub database: Option<PathBuf>,
    /// Where size-capped data volumes keep their filesystem images (`[disk] image_dir`; default:
    /// `disks/` beside the database).
    pub disk_image_dir: Option<PathBuf>,
    /// How long the audit trail keeps entries (`[audit] retention_days`; default 90 days).
    pub audit_retention: std::time::Duration,
    /// Watching new containers for an early exit, and sampling their use (`[health]`).
    pub health: HealthSettings,
    /// Stopping idle containers and waking them on request (`[idle]`; the per-type switch is
    /// [`ContainerType::idle_stop_after`]).
    pub idle: IdleSettings,
    /// Extra labels put on every Docker object the manager creates (for example to group a deployment).
    pub extra_labels: BTreeMap<String, String>,
    /// The configured container types, by name.
    pub types: BTreeMap<TypeName, ContainerType>,
    /// Which container runtime runs the containers (`[runtime]`).
    pub runtime: RuntimeSettings,
}

/// Which runtime adapter runs the containers (`[runtime]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct RuntimeSettings {
    /// `docker` (one engine, the default) or `swarm` (a Docker Swarm whose manager is the local
    /// engine).
    pub kind: RuntimeKind,
    /// Swarm only (`[runtime.nodes]`): a node's hostname to the endpoint of its engine
    /// (`unix:///path/docker.sock`, `tcp://host:port`), for exec, logs, files and stats of the
    /// containers it runs. The manager's own node is served by the local engine unless listed.
    pub nodes: BTreeMap<String, String>,
}

/// The kinds of container runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeKind {
    /// One Docker engine (cm-docker).
    #[default]
    Docker,
    /// Docker Swarm: one service per container (cm-swarm).
    Swarm,
}

impl RuntimeKind {
    /// The name as the configuration writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Docker => "docker",
            RuntimeKind::Swarm => "swarm",
        }
    }
}

/// Watching containers' health (`[health]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HealthSettings {
    /// How long a create watches the new container for an exit before it reports success
    /// (`exit_check_ms`, default 1000; zero: not at all). A container that exits within it makes
    /// the create fail, undone, with its exit code and last output lines.
    pub exit_check: std::time::Duration,
    /// How often cm-api samples the CPU and memory use of running containers for the
    /// dashboard's charts (`sample_seconds`, default 30; `None`: never).
    pub sample_every: Option<std::time::Duration>,
}

/// Accepting ToolBox's identities (`[auth.toolbox]`): CloudM access tokens verified locally with
/// the worker's secret, and/or any ToolBox credential (also its `tb_session` cookie) checked by
/// asking the worker itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolboxIdentity {
    /// The environment variable holding the ToolBox worker's token secret, for verifying access
    /// tokens locally (default `TB_JWT_SECRET` without `validate_url`; with it, absent: no local
    /// verification); the secret itself is never in a file of ours.
    pub jwt_secret_env: Option<String>,
    /// Tokens whose `level` is at least this act as the admin (absent: none does).
    pub admin_level: Option<i64>,
    /// The ToolBox worker's base URL (`http://` or `https://`, without a trailing slash), asked
    /// `POST /validateSession` and `GET /api_user_data` about credentials (absent: never asked).
    pub validate_url: Option<String>,
    /// How long the worker's answer about a credential is reused (default 30 s).
    pub validate_cache_seconds: u64,
    /// How long the worker may take to answer (default 3000 ms).
    pub validate_timeout_ms: u64,
    /// Whether the REST API accepts the `tb_session` cookie too (default false). Only where
    /// cm-api's origin serves no tenant's app (subdomain routing, or apps on another host or
    /// port): a script of an app on the same origin would otherwise call the API as whoever
    /// visits it. The route check and the dashboard's sign-in accept it regardless.
    pub session_cookie_on_api: bool,
}

impl ToolboxIdentity {
    /// The cookie the ToolBox worker keeps its sessions in; accepted as a credential only when
    /// the worker can be asked about it (`validate_url`).
    pub const SESSION_COOKIE: &str = "tb_session";

    /// Whether a `tb_session` cookie is a credential here (the worker vouches for it).
    pub fn accepts_session_cookie(&self) -> bool {
        self.validate_url.is_some()
    }
}

/// The shape of the API's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Envelope {
    /// This project's answers (the default).
    #[default]
    Native,
    /// The ToolBox worker's envelope (`{"error": "none", "result": {"data": ...}, ...}`) around
    /// answers that also carry the original module's field names, for existing ToolBox clients.
    Toolbox,
}

impl Envelope {
    /// Parses `native` or `toolbox`.
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim() {
            "native" => Ok(Envelope::Native),
            "toolbox" => Ok(Envelope::Toolbox),
            other => Err(Error::invalid(format!(
                "invalid envelope {}: native or toolbox",
                quote(other)
            ))),
        }
    }
}

/// How SSH ports are published and announced.
#[derive(Debug, Clone, Serialize)]
pub struct SshSettings {
    /// The host address SSH ports are published on (default all interfaces: users connect from outside).
    pub bind_address: IpAddr,
    /// The host name or address users connect to, shown in connection strings.
    pub server_host: Option<String>,
}

/// Where nginx route files go and how nginx is driven.
#[derive(Debug, Clone, Serialize)]
pub struct NginxSettings {
    /// False turns HTTP routing off: containers are still reachable on their 127.0.0.1 ports.
    pub enabled: bool,
    /// Route files are written here (default `/etc/nginx/box-available`).
    pub available_dir: PathBuf,
    /// Route files are linked here when live (default `/etc/nginx/box-enabled`).
    pub enabled_dir: PathBuf,
    /// The nginx program (default `nginx` from `PATH`).
    pub binary: PathBuf,
    /// Extra arguments for every nginx call, such as `-p PREFIX -c FILE` for an unprivileged nginx.
    pub args: Vec<String>,
    /// How routes reach nginx: one static configuration asking cm-api per request (the default),
    /// or the seed's file per container.
    pub mode: RoutingMode,
    /// Where `cm nginx setup` writes its configuration (default `/etc/nginx/conf.d`, which
    /// Debian's `nginx.conf` includes at http level).
    pub conf_dir: PathBuf,
    /// The address nginx serves containers on (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// The `server_name` of that server (default `_`, any name).
    pub server_name: String,
}

/// How routes reach nginx.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutingMode {
    /// One static configuration: nginx asks cm-api per request (`auth_request`) whether the caller
    /// may reach the container and where it listens. Creating or deleting never reloads nginx.
    Dynamic,
    /// A file per container in `box-available/`, linked into `box-enabled/`, with a reload per
    /// change (the seed's layout), owner-checked the same way.
    Files,
}

/// Where a container's app lives on the proxy's host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostMode {
    /// `/container/{user_id}/{type}/` on one host name: every container shares one origin.
    Path,
    /// `{type}--{user_id}.{base_domain}`: every container has its own origin (needs wildcard DNS).
    Subdomain,
}

/// How HTTP routes identify containers and callers.
#[derive(Debug, Clone, Serialize)]
pub struct RoutingSettings {
    /// Path (default) or subdomain routing.
    pub host: HostMode,
    /// The domain below which subdomain routes live (required for `host = "subdomain"`).
    pub base_domain: Option<String>,
    /// How long a route sign-in lasts before the browser must sign in again.
    pub session_hours: u32,
}

/// Limits that keep one caller from harming others.
#[derive(Debug, Clone, Serialize)]
pub struct LimitSettings {
    /// Failed (or unfinished) sign-ins per client address and minute before further attempts are
    /// refused with 429 (API, dashboard and the route sign-in).
    pub auth_failures_per_minute: u32,
    /// Commands running at once in one user's containers.
    pub exec_per_user: usize,
    /// Commands running at once in all.
    pub exec_total: usize,
    /// Logs followed at once from one user's containers.
    pub follow_per_user: usize,
    /// Logs followed at once in all.
    pub follow_total: usize,
}

/// How idle-stopped containers are woken (`[idle]`).
#[derive(Debug, Clone, Serialize)]
pub struct IdleSettings {
    /// How long a request that woke a container (or came while it starts) waits for its app to
    /// answer before it gets the "starting" page instead (`wake_wait_seconds`, 1 to 50, default
    /// 20; below nginx's 60 s for the route check).
    #[serde(serialize_with = "seconds")]
    pub wake_wait: std::time::Duration,
}

/// A duration as whole seconds, for JSON answers.
fn seconds<S: serde::Serializer>(
    duration: &std::time::Duration,
    to: S,
) -> std::result::Result<S::Ok, S::Error> {
    to.serialize_u64(duration.as_secs())
}

/// An optional duration as whole seconds (or `null`), for JSON answers.
fn optional_seconds<S: serde::Serializer>(
    duration: &Option<std::time::Duration>,
    to: S,
) -> std::result::Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => to.serialize_some(&duration.as_secs()),
        None => to.serialize_none(),
    }
}

/// Who may reach a type's app through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Only the container's owner (with their user token) and the admin.
    Owner,
    /// Anyone who can reach the proxy.
    Public,
}

/// Whether containers of a type get SSH access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SshMode {
    /// Never.
    Off,
    /// Always: an SSH port is leased at create.
    On,
    /// Only when asked for at create (or when a key is given).
    Optional,
}

/// What Docker does when a container's main process exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Restart unless an admin stopped it (the default: auto-restart that respects `stop`).
    UnlessStopped,
    /// Always restart.
    Always,
    /// Restart only after a non-zero exit.
    OnFailure,
    /// Never restart.
    No,
}

/// One container type: its image, port, limits and SSH mode.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerType {
    /// The type's name, used in container names and URLs.
    pub name: TypeName,
    /// A line for humans.
    pub description: String,
    /// The default image.
    pub image: ImageRef,
    /// The port the image serves HTTP on inside the container.
    pub internal_port: u16,
    /// Whether containers of this type get SSH.
    pub ssh: SshMode,
    /// A command replacing the image's default, if any.
    pub command: Option<Command>,
    /// Environment every container of the type gets.
    pub env: EnvVars,
    /// Memory limit.
    pub memory: MemoryLimit,
    /// CPU limit.
    pub cpus: CpuLimit,
    /// Maximum number of processes.
    pub pids_limit: i64,
    /// Restart policy.
    pub restart_policy: RestartPolicy,
    /// Linux capabilities added back after dropping all (D5).
    pub cap_add: Vec<String>,
    /// True when nginx strips `/container/{user_id}/{type}` before proxying; false for prefix-aware apps.
    pub strip_prefix: bool,
    /// Who may reach the app through the proxy (default: the owner and the admin).
    pub access: Access,
    /// The user a user token's commands run as (`cli` for SSH types, else `1000:1000`); the
    /// admin's run as the image's user unless it names another.
    pub exec_user: String,
    /// How the engine rotates the container's log (default 3 files of 10 MiB).
    pub logs: LogRotation,
    /// The data volume's size cap (`disk = "2g"`); `None`: the volume shares the engine's disk.
    pub disk: Option<DiskSize>,
    /// Containers of this type that saw no activity (route checks that let a request through,
    /// commands, followed logs, SSH sessions) for this long are stopped, their data and leases
    /// kept, and started again by the next request through their route (`idle_stop_after =
    /// "30m"`, or seconds; `None`, the default: never). In JSON as seconds.
    #[serde(serialize_with = "optional_seconds")]
    pub idle_stop_after: Option<std::time::Duration>,
}

/// The user a user token's commands run as when the type names none and has no SSH login.
pub const FALLBACK_EXEC_USER: &str = "1000:1000";

/// The container port sshd listens on in SSH-enabled images.
pub const SSH_CONTAINER_PORT: u16 = 2222;
/// The user SSH logins use.
pub const SSH_USER: &str = "cli";
/// Where the data volume is mounted.
pub const DATA_PATH: &str = "/data";

/// The capabilities added back after dropping all: sshd's privilege separation and terminal
/// handover (CHOWN, SETUID, SETGID, SYS_CHROOT, AUDIT_WRITE), root in the container reaching the
/// user's files (DAC_OVERRIDE, FOWNER: `cm exec` runs as root and writes into the user's `/data`;
/// without them the tests' exec and key checks fail), signalling the user's processes (KILL), and
/// apps listening below port 1024 (NET_BIND_SERVICE). Docker's default adds MKNOD, NET_RAW,
/// SETPCAP, SETFCAP and FSETID; we do not.
const DEFAULT_CAPS: [&str; 9] = [
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

impl Config {
    /// The built-in configuration: the seed's four types and pool 9000-9500.
    pub fn defaults() -> Self {
        Self::from_toml("").unwrap_or_else(|e| unreachable!("built-in defaults are valid: {e}"))
    }

    /// Parses a TOML text; every key is optional and falls back to the built-in default.
    pub fn from_toml(text: &str) -> Result<Self> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| Error::invalid(format!("invalid configuration: {}", one_line(&e.to_string()))))?;
        raw.resolve()
    }

    /// Sets the SSH host shown to users (from `CM_SERVER_HOST`), after checking it.
    pub fn set_server_host(&mut self, host: &str) -> Result<()> {
        check_host(host)?;
        self.ssh.server_host = Some(host.to_owned());
        Ok(())
    }

    /// Sets nginx's `server_name` (from `cm nginx setup --server-name`), after checking it.
    pub fn set_server_name(&mut self, name: &str) -> Result<()> {
        check_server_name(name)?;
        self.nginx.server_name = name.to_owned();
        Ok(())
    }

    /// The configured type named `raw`, or an error listing the configured ones.
    pub fn container_type(&self, raw: &str) -> Result<&ContainerType> {
        let name = TypeName::parse(raw)?;
        self.types.get(&name).ok_or_else(|| {
            let known: Vec<&str> = self.types.keys().map(TypeName::as_str).collect();
            let guess = known
                .iter()
                .map(|k| (edit_distance(raw, k), *k))
                .filter(|(distance, k)| *distance <= 2.max(k.len() / 3))
                .min()
                .map(|(_, k)| format!(" (did you mean {k}?)"))
                .unwrap_or_default();
            Error::invalid(format!(
                "unknown container type {}{guess}: configured types are {}",
                quote(raw),
                known.join(", ")
            ))
        })
    }
}

/// How many single-character insertions, deletions or substitutions turn `a` into `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    port_pool: Option<PortRange>,
    subnet_pool: Option<RawSubnetPool>,
    ssh: Option<RawSsh>,
    nginx: Option<RawNginx>,
    routing: Option<RawRouting>,
    limits: Option<RawLimits>,
    quota: Option<RawQuota>,
    database: Option<PathBuf>,
    disk: Option<RawDisk>,
    audit: Option<RawAudit>,
    health: Option<RawHealth>,
    idle: Option<RawIdle>,
    auth: Option<RawAuth>,
    api: Option<RawApi>,
    runtime: Option<RawRuntime>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    types: BTreeMap<String, RawType>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubnetPool {
    range: Subnet,
    prefix_length: u8,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSsh {
    bind_address: Option<IpAddr>,
    server_host: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNginx {
    enabled: Option<bool>,
    available_dir: Option<PathBuf>,
    enabled_dir: Option<PathBuf>,
    binary: Option<PathBuf>,
    #[serde(default)]
    args: Vec<String>,
    mode: Option<RoutingMode>,
    conf_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    server_name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawQuota {
    containers: Option<u32>,
    memory: Option<String>,
    cpus: Option<f64>,
    disk: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawApi {
    envelope: Option<Envelope>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    user_actions: Option<Vec<String>>,
    toolbox: Option<RawToolbox>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawToolbox {
    jwt_secret_env: Option<String>,
    admin_level: Option<i64>,
    validate_url: Option<String>,
    validate_cache_seconds: Option<u64>,
    validate_timeout_ms: Option<u64>,
    session_cookie_on_api: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRuntime {
    kind: Option<RuntimeKind>,
    #[serde(default)]
    nodes: BTreeMap<String, String>,
}

impl RawRuntime {
    fn build(self) -> Result<RuntimeSettings> {
        let kind = self.kind.unwrap_or_default();
        if kind == RuntimeKind::Docker && !self.nodes.is_empty() {
            return Err(Error::invalid(
                "invalid configuration: [runtime.nodes] needs [runtime] kind = \"swarm\"",
            ));
        }
        for (node, endpoint) in &self.nodes {
            let name_ok = !node.is_empty()
                && node.len() <= 253
                && node
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
            if !name_ok {
                return Err(Error::invalid(format!(
                    "invalid configuration: [runtime.nodes] {} is not a node hostname",
                    quote(node)
                )));
            }
            let scheme_ok = ["unix:///", "tcp://", "http://"]
                .iter()
                .any(|scheme| endpoint.starts_with(scheme) && endpoint.len() > scheme.len());
            if !scheme_ok || endpoint.chars().any(char::is_whitespace) {
                return Err(Error::invalid(format!(
                    "invalid configuration: [runtime.nodes] {node} = {}: an engine endpoint such as \
                     \"unix:///var/run/docker.sock\" or \"tcp://10.0.0.2:2375\"",
                    quote(endpoint)
                )));
            }
        }
        Ok(RuntimeSettings {
            kind,
            nodes: self.nodes,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDisk {
    image_dir: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    retention_days: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    exit_check_ms: Option<u64>,
    sample_seconds: Option<u64>,
}

impl RawHealth {
    fn build(self) -> Result<HealthSettings> {
        let invalid = |what: &str| Error::invalid(format!("invalid configuration: [health] {what}"));
        let exit_check_ms = self.exit_check_ms.unwrap_or(1000);
        if exit_check_ms > 60_000 {
            return Err(invalid(
                "exit_check_ms must be at most 60000 (0 turns the check off)",
            ));
        }
        let sample_every = match self.sample_seconds.unwrap_or(30) {
            0 => None,
            seconds @ 5..=3600 => Some(std::time::Duration::from_secs(seconds)),
            _ => return Err(invalid("sample_seconds must be 0 (off) or 5 to 3600")),
        };
        Ok(HealthSettings {
            exit_check: std::time::Duration::from_millis(exit_check_ms),
            sample_every,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIdle {
    wake_wait_seconds: Option<u64>,
}

/// A duration as TOML writes it: whole seconds, or text such as `"30m"`, `"2h 30m"` or `"off"`.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum RawDuration {
    Seconds(u64),
    Text(String),
}

impl RawDuration {
    /// The duration, `None` for `"off"`; at least a second and at most a year.
    fn resolve(&self, key: &str) -> Result<Option<std::time::Duration>> {
        let duration = match self {
            RawDuration::Seconds(seconds) => std::time::Duration::from_secs(*seconds),
            RawDuration::Text(text) if text.trim() == "off" => return Ok(None),
            RawDuration::Text(text) => humantime::parse_duration(text.trim()).map_err(|_| {
                Error::invalid(format!(
                    "invalid {key} {}: a duration such as \"30m\" or \"2h\", seconds, or \"off\"",
                    quote(text)
                ))
            })?,
        };
        let year = std::time::Duration::from_secs(365 * 24 * 3600);
        if duration < std::time::Duration::from_secs(1) || duration > year {
            return Err(Error::invalid(format!("{key} must be 1 second to 365 days")));
        }
        Ok(Some(duration))
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    auth_failures_per_minute: Option<u32>,
    exec_per_user: Option<usize>,
    exec_total: Option<usize>,
    follow_per_user: Option<usize>,
    follow_total: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRouting {
    host: Option<HostMode>,
    base_domain: Option<String>,
    session_hours: Option<u32>,
}

/// A type as written in TOML: every field optional, filled from the built-in type of the same name.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawType {
    enabled: Option<bool>,
    description: Option<String>,
    image: Option<String>,
    internal_port: Option<u16>,
    ssh: Option<SshMode>,
    command: Option<Vec<String>>,
    env: Option<BTreeMap<String, String>>,
    memory: Option<String>,
    cpus: Option<f64>,
    pids_limit: Option<i64>,
    restart_policy: Option<RestartPolicy>,
    cap_add: Option<Vec<String>>,
    strip_prefix: Option<bool>,
    access: Option<Access>,
    exec_user: Option<String>,
    log_max_size: Option<String>,
    log_max_files: Option<u32>,
    disk: Option<String>,
    idle_stop_after: Option<RawDuration>,
}

/// The seed's types. `MODE` is what the original set; the default images start the type's app
/// by it (`cm-app`): the ToolBox CLI's status service, Streamlit, the preview server.
fn builtin_types() -> Vec<(&'static str, RawType)> {
    let seed = |description: &str, image: &str, port: u16, ssh: SshMode, mode: Option<&str>| RawType {
        description: Some(description.to_owned()),
        image: Some(image.to_owned()),
        internal_port: Some(port),
        ssh: Some(ssh),
        env: mode.map(|m| BTreeMap::from([("MODE".to_owned(), m.to_owned())])),
        ..RawType::default()
    };
    vec![
        (
            "cli_v4",
            seed(
                "Persistent CLI v4",
                "toolboxv2:latest",
                8080,
                SshMode::On,
                Some("cli_v4"),
            ),
        ),
        (
            "project_dev",
            RawType {
                // Streamlit serves under its BASE_PATH itself (its WebSocket and assets too).
                strip_prefix: Some(false),
                ..seed(
                    "Streamlit dev UI",
                    "toolboxv2:dev",
                    8501,
                    SshMode::Off,
                    Some("project_dev"),
                )
            },
        ),
        (
            "preview_server",
            seed(
                "HTTP preview server",
                "toolboxv2:latest",
                8600,
                SshMode::Off,
                Some("preview"),
            ),
        ),
        (
            "custom",
            seed("Custom", "toolboxv2:latest", 8080, SshMode::Optional, None),
        ),
    ]
}

impl RawConfig {
    fn resolve(self) -> Result<Config> {
        let port_pool = match self.port_pool {
            Some(range) => range,
            None => PortRange::new(9000, 9500)?,
        };
        let subnet_pool = match self.subnet_pool {
            Some(raw) => SubnetPool::new(raw.range, raw.prefix_length)?,
            None => SubnetPool::new(Subnet::parse("10.201.0.0/16")?, 28)?,
        };
        let ssh = self.ssh.unwrap_or_default();
        if let Some(host) = &ssh.server_host {
            check_host(host)?;
        }
        let nginx = self.nginx.unwrap_or_default();
        let server_name = nginx.server_name.unwrap_or_else(|| "_".to_owned());
        check_server_name(&server_name)?;
        let routing = self.routing.unwrap_or_default();
        let host = routing.host.unwrap_or(HostMode::Path);
        if let Some(domain) = &routing.base_domain {
            check_base_domain(domain)?;
        }
        if host == HostMode::Subdomain && nginx.mode == Some(RoutingMode::Files) {
            return Err(Error::invalid(
                "invalid configuration: [routing] host = \"subdomain\" needs [nginx] mode = \"dynamic\" \
                 (route files are paths on one host, which would put every app on every subdomain)",
            ));
        }
        if host == HostMode::Subdomain && routing.base_domain.is_none() {
            return Err(Error::invalid(
                "invalid configuration: [routing] host = \"subdomain\" needs base_domain (such as \"apps.example.org\")",
            ));
        }
        let limits = self.limits.unwrap_or_default();
        let auth_failures_per_minute = limits.auth_failures_per_minute.unwrap_or(30);
        if auth_failures_per_minute == 0 {
            return Err(Error::invalid(
                "invalid configuration: [limits] auth_failures_per_minute must be at least 1",
            ));
        }
        let raw_quota = self.quota.unwrap_or_default();
        let in_quota = |e: Error| e.context(format_args!("[quota]"));
        let quota = crate::quota::UserQuota {
            containers: raw_quota.containers,
            memory: raw_quota
                .memory
                .as_deref()
                .map(MemoryLimit::parse)
                .transpose()
                .map_err(in_quota)?,
            cpus: raw_quota
                .cpus
                .map(CpuLimit::from_cpus)
                .transpose()
                .map_err(in_quota)?,
            disk: raw_quota
                .disk
                .as_deref()
                .map(DiskSize::parse)
                .transpose()
                .map_err(in_quota)?,
        };
        let session_hours = routing.session_hours.unwrap_or(12);
        if !(1..=24 * 30).contains(&session_hours) {
            return Err(Error::invalid(
                "invalid configuration: [routing] session_hours must be 1 to 720",
            ));
        }
        for (key, value) in &self.labels {
            check_label(key, value)?;
        }
        let raw_auth = self.auth.unwrap_or_default();
        let toolbox_identity = raw_auth.toolbox.map(RawToolbox::build).transpose()?;
        let user_actions = match raw_auth.user_actions {
            None => crate::actions::UserActions::default(),
            Some(names) => crate::actions::UserActions::only(
                names
                    .iter()
                    .map(|name| crate::actions::UserAction::parse(name))
                    .collect::<Result<Vec<_>>>()
                    .map_err(|e| e.context(format_args!("invalid configuration: [auth] user_actions")))?,
            ),
        };

        let mut merged: BTreeMap<String, RawType> = builtin_types()
            .into_iter()
            .map(|(name, raw)| (name.to_owned(), raw))
            .collect();
        for (name, over) in self.types {
            let base = merged.remove(&name).unwrap_or_default();
            merged.insert(name, over.over(base));
        }
        let mut types = BTreeMap::new();
        for (name, raw) in merged {
            if raw.enabled == Some(false) {
                continue;
            }
            let kind = raw.build(&name)?;
            types.insert(kind.name.clone(), kind);
        }
        if types.is_empty() {
            return Err(Error::invalid(
                "invalid configuration: no container type is enabled",
            ));
        }

        Ok(Config {
            port_pool,
            subnet_pool,
            ssh: SshSettings {
                bind_address: ssh.bind_address.unwrap_or(IpAddr::from([0, 0, 0, 0])),
                server_host: ssh.server_host,
            },
            nginx: NginxSettings {
                enabled: nginx.enabled.unwrap_or(true),
                available_dir: nginx
                    .available_dir
                    .unwrap_or_else(|| PathBuf::from("/etc/nginx/box-available")),
                enabled_dir: nginx
                    .enabled_dir
                    .unwrap_or_else(|| PathBuf::from("/etc/nginx/box-enabled")),
                binary: nginx.binary.unwrap_or_else(|| PathBuf::from("nginx")),
                args: nginx.args,
                mode: nginx.mode.unwrap_or(RoutingMode::Dynamic),
                conf_dir: nginx
                    .conf_dir
                    .unwrap_or_else(|| PathBuf::from("/etc/nginx/conf.d")),
                listen: nginx
                    .listen
                    .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
                server_name,
            },
            quota,
            user_actions,
            envelope: self.api.and_then(|a| a.envelope).unwrap_or_default(),
            toolbox_identity,
            limits: LimitSettings {
                auth_failures_per_minute,
                exec_per_user: at_least_one(limits.exec_per_user, 4, "exec_per_user")?,
                exec_total: at_least_one(limits.exec_total, 16, "exec_total")?,
                follow_per_user: at_least_one(limits.follow_per_user, 4, "follow_per_user")?,
                follow_total: at_least_one(limits.follow_total, 32, "follow_total")?,
            },
            routing: RoutingSettings {
                host,
                base_domain: routing.base_domain.map(|d| d.to_ascii_lowercase()),
                session_hours,
            },
            database: self.database,
            disk_image_dir: self.disk.unwrap_or_default().image_dir,
            audit_retention: match self.audit.unwrap_or_default().retention_days.unwrap_or(90) {
                0 => {
                    return Err(Error::invalid(
                        "invalid configuration: [audit] retention_days must be at least 1",
                    ));
                }
                days => std::time::Duration::from_secs(u64::from(days) * 24 * 3600),
            },
            health: self.health.unwrap_or_default().build()?,
            runtime: self.runtime.unwrap_or_default().build()?,
            idle: IdleSettings {
                wake_wait: match self.idle.unwrap_or_default().wake_wait_seconds.unwrap_or(20) {
                    seconds @ 1..=50 => std::time::Duration::from_secs(seconds),
                    _ => {
                        return Err(Error::invalid(
                            "invalid configuration: [idle] wake_wait_seconds must be 1 to 50",
                        ));
                    }
                },
            },
            extra_labels: self.labels,
            types,
        })
    }
}

impl RawToolbox {
    fn build(self) -> Result<ToolboxIdentity> {
        let invalid = |what: String| Error::invalid(format!("invalid configuration: [auth.toolbox] {what}"));
        let validate_url = self
            .validate_url
            .as_deref()
            .map(|url| check_worker_url(url).map_err(invalid))
            .transpose()?;
        if validate_url.is_none()
            && (self.validate_cache_seconds.is_some() || self.validate_timeout_ms.is_some())
        {
            return Err(invalid(
                "validate_cache_seconds and validate_timeout_ms need validate_url (the ToolBox worker to ask)"
                    .to_owned(),
            ));
        }
        // Without a worker to ask, tokens can only be verified locally: the secret's variable
        // keeps its old default.
        let jwt_secret_env = match (self.jwt_secret_env, &validate_url) {
            (Some(name), _) => Some(name),
            (None, None) => Some("TB_JWT_SECRET".to_owned()),
            (None, Some(_)) => None,
        };
        if let Some(name) = &jwt_secret_env {
            let valid_name = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid_name {
                return Err(invalid(format!(
                    "jwt_secret_env must name an environment variable, not {}",
                    quote(name)
                )));
            }
        }
        let validate_cache_seconds = self.validate_cache_seconds.unwrap_or(30);
        if !(1..=3600).contains(&validate_cache_seconds) {
            return Err(invalid("validate_cache_seconds must be 1 to 3600".to_owned()));
        }
        let validate_timeout_ms = self.validate_timeout_ms.unwrap_or(3000);
        if !(100..=60_000).contains(&validate_timeout_ms) {
            return Err(invalid("validate_timeout_ms must be 100 to 60000".to_owned()));
        }
        let session_cookie_on_api = self.session_cookie_on_api.unwrap_or(false);
        if session_cookie_on_api && validate_url.is_none() {
            return Err(invalid("session_cookie_on_api needs validate_url".to_owned()));
        }
        Ok(ToolboxIdentity {
            jwt_secret_env,
            admin_level: self.admin_level,
            validate_url,
            validate_cache_seconds,
            validate_timeout_ms,
            session_cookie_on_api,
        })
    }
}

/// Checks the ToolBox worker's base URL: `http://` or `https://`, a host (with an optional port),
/// an optional path; no credentials, query or fragment (credentials travel in headers only).
/// Returns it without a trailing slash.
fn check_worker_url(text: &str) -> std::result::Result<String, String> {
    let trimmed = text.trim();
    let refuse = |why: &str| {
        format!(
            "validate_url {} {why}: give the ToolBox worker's base URL, such as \"http://127.0.0.1:5000\"",
            quote(text)
        )
    };
    let (scheme, rest) = ["http://", "https://"]
        .into_iter()
        .find_map(|scheme| Some((scheme, trimmed.strip_prefix(scheme)?)))
        .ok_or_else(|| refuse("is not an http:// or https:// URL"))?;
    let rest = rest.trim_end_matches('/');
    let url = format!("{scheme}{rest}");
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse("contains spaces or control characters"));
    }
    if rest.contains(['?', '#']) {
        return Err(refuse("has a query or fragment"));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(refuse("carries credentials"));
    }
    // An IPv6 address is bracketed: `[::1]:5000`.
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') || host.ends_with(']') => (host, Some(port)),
        _ => (authority, None),
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '[' | ']' | ':'))
    {
        return Err(refuse("has no valid host"));
    }
    if port.is_some_and(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
        return Err(refuse("has an invalid port"));
    }
    Ok(url)
}

impl RawType {
    /// Fields set here win over `base`.
    fn over(self, base: RawType) -> RawType {
        RawType {
            enabled: self.enabled.or(base.enabled),
            description: self.description.or(base.description),
            image: self.image.or(base.image),
            internal_port: self.internal_port.or(base.internal_port),
            ssh: self.ssh.or(base.ssh),
            command: self.command.or(base.command),
            env: self.env.or(base.env),
            memory: self.memory.or(base.memory),
            cpus: self.cpus.or(base.cpus),
            pids_limit: self.pids_limit.or(base.pids_limit),
            restart_policy: self.restart_policy.or(base.restart_policy),
            cap_add: self.cap_add.or(base.cap_add),
            strip_prefix: self.strip_prefix.or(base.strip_prefix),
            access: self.access.or(base.access),
            exec_user: self.exec_user.or(base.exec_user),
            log_max_size: self.log_max_size.or(base.log_max_size),
            log_max_files: self.log_max_files.or(base.log_max_files),
            disk: self.disk.or(base.disk),
            idle_stop_after: self.idle_stop_after.or(base.idle_stop_after),
        }
    }

    fn build(self, name: &str) -> Result<ContainerType> {
        let in_type = |e: Error| e.context(format_args!("container type {name}"));
        let name = TypeName::parse(name).map_err(in_type)?;
        let image = self
            .image
            .ok_or_else(|| Error::invalid("an image is required"))
            .and_then(|i| ImageRef::parse(&i))
            .map_err(in_type)?;
        let internal_port = self.internal_port.unwrap_or(8080);
        if internal_port == 0 || internal_port == SSH_CONTAINER_PORT {
            return Err(in_type(Error::invalid(format!(
                "internal_port must be 1-65535 and not {SSH_CONTAINER_PORT} (sshd)"
            ))));
        }
        let command = self
            .command
            .map(Command::from_args)
            .transpose()
            .map_err(in_type)?;
        let env = EnvVars::try_from(self.env.unwrap_or_default()).map_err(in_type)?;
        let memory = MemoryLimit::parse(self.memory.as_deref().unwrap_or("512m")).map_err(in_type)?;
        let cpus = CpuLimit::from_cpus(self.cpus.unwrap_or(1.0)).map_err(in_type)?;
        let pids_limit = self.pids_limit.unwrap_or(512);
        if !(16..=1_000_000).contains(&pids_limit) {
            return Err(in_type(Error::invalid("pids_limit must be 16 to 1000000")));
        }
        let cap_add = self
            .cap_add
            .unwrap_or_else(|| DEFAULT_CAPS.iter().map(|c| (*c).to_owned()).collect());
        for cap in &cap_add {
            let ok = !cap.is_empty() && cap.chars().all(|c| c.is_ascii_uppercase() || c == '_');
            if !ok {
                return Err(in_type(Error::invalid(format!(
                    "invalid capability {}: write names such as CHOWN",
                    quote(cap)
                ))));
            }
        }
        let ssh = self.ssh.unwrap_or(SshMode::Off);
        let exec_user = match self.exec_user {
            Some(user) => {
                check_exec_user(&user).map_err(in_type)?;
                user
            }
            None if ssh == SshMode::Off => FALLBACK_EXEC_USER.to_owned(),
            None => SSH_USER.to_owned(),
        };
        let logs = match (&self.log_max_size, self.log_max_files) {
            (None, None) => LogRotation::DEFAULT,
            (size, files) => LogRotation::parse(
                size.as_deref().unwrap_or("10m"),
                files.unwrap_or(LogRotation::DEFAULT.max_files()),
            )
            .map_err(in_type)?,
        };
        let disk = self
            .disk
            .as_deref()
            .map(DiskSize::parse)
            .transpose()
            .map_err(in_type)?;
        let idle_stop_after = self
            .idle_stop_after
            .as_ref()
            .map(|raw| raw.resolve("idle_stop_after"))
            .transpose()
            .map_err(in_type)?
            .flatten();
        Ok(ContainerType {
            name,
            description: self.description.unwrap_or_default(),
            image,
            internal_port,
            ssh,
            command,
            env,
            memory,
            cpus,
            pids_limit,
            restart_policy: self.restart_policy.unwrap_or(RestartPolicy::UnlessStopped),
            cap_add,
            strip_prefix: self.strip_prefix.unwrap_or(true),
            access: self.access.unwrap_or(Access::Owner),
            exec_user,
            logs,
            disk,
            idle_stop_after,
        })
    }
}

/// A host name or address shown to users; it ends up in connection strings and HTML.
fn check_host(host: &str) -> Result<()> {
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid SSH server host {}: a host name or IP address",
            quote(host)
        )))
    }
}

/// A user for `docker exec --user`: a name (`cli`), `uid`, or `uid:gid`; never root for user
/// tokens unless the admin configured it so.
pub fn check_exec_user(user: &str) -> Result<()> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 32
            && n.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    };
    let id_ok = |n: &str| !n.is_empty() && n.len() <= 10 && n.chars().all(|c| c.is_ascii_digit());
    let ok = match user.split_once(':') {
        Some((u, g)) => (name_ok(u) || id_ok(u)) && (name_ok(g) || id_ok(g)),
        None => name_ok(user) || id_ok(user),
    };
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid exec user {}: a user name, uid or uid:gid",
            quote(user)
        )))
    }
}

/// A `[limits]` count: `default` when absent, at least 1.
fn at_least_one(value: Option<usize>, default: usize, key: &str) -> Result<usize> {
    match value.unwrap_or(default) {
        0 => Err(Error::invalid(format!(
            "invalid configuration: [limits] {key} must be at least 1"
        ))),
        n => Ok(n),
    }
}

/// An nginx `server_name`: `_`, or host names (a leading `*.` allowed), space-separated. It is
/// written into nginx's configuration, so nothing but these characters may pass.
fn check_server_name(name: &str) -> Result<()> {
    let one = |n: &str| {
        let n = n.strip_prefix("*.").unwrap_or(n);
        !n.is_empty() && n.len() <= 253 && n.chars().all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
    };
    if name.len() <= 1024 && name.split(' ').all(one) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid [nginx] server_name {}: host names separated by spaces, or _",
            quote(name)
        )))
    }
}

/// The base domain of subdomain routes: DNS labels of letters, digits and `-`, at least two.
fn check_base_domain(domain: &str) -> Result<()> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    let labels: Vec<&str> = domain.split('.').collect();
    if domain.len() <= 200 && labels.len() >= 2 && labels.iter().all(|l| label_ok(l)) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid [routing] base_domain {}: a domain such as apps.example.org",
            quote(domain)
        )))
    }
}

/// Docker label keys and values we add ourselves: a conservative character set.
pub fn check_label(key: &str, value: &str) -> Result<()> {
    let key_ok = !key.is_empty()
        && key.len() <= 128
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
    let value_ok = value.len() <= 256 && !value.chars().any(char::is_control);
    if key_ok && value_ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid label {}={}: keys use letters, digits and . _ - /; values have no control characters",
            quote(key),
            quote(value)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_in_a_type_gets_a_suggestion() {
        let config = Config::defaults();
        let said = |raw: &str| config.container_type(raw).unwrap_err().message().to_owned();
        assert!(
            said("cli_v3").contains("(did you mean cli_v4?)"),
            "{}",
            said("cli_v3")
        );
        assert!(said("preview_sever").contains("(did you mean preview_server?)"));
        assert!(said("projectdev").contains("(did you mean project_dev?)"));
        assert!(!said("jupyter").contains("did you mean"), "{}", said("jupyter"));
        assert!(said("jupyter").contains("configured types are cli_v4, custom, preview_server, project_dev"));
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn the_runtime_is_docker_unless_swarm_is_asked_for() {
        // Old files have no [runtime]: they keep the single engine.
        assert_eq!(Config::defaults().runtime, RuntimeSettings::default());
        assert_eq!(Config::defaults().runtime.kind, RuntimeKind::Docker);
        let swarm = Config::from_toml(
            "[runtime]\nkind = \"swarm\"\n[runtime.nodes]\n\"node-2\" = \"tcp://10.0.0.2:2375\"\nm1 = \"unix:///run/m1.sock\"\n",
        )
        .unwrap();
        assert_eq!(swarm.runtime.kind, RuntimeKind::Swarm);
        assert_eq!(swarm.runtime.kind.as_str(), "swarm");
        assert_eq!(
            swarm.runtime.nodes.get("node-2").map(String::as_str),
            Some("tcp://10.0.0.2:2375")
        );
        assert_eq!(swarm.runtime.nodes.len(), 2);
        let refused = |text: &str| Config::from_toml(text).unwrap_err().to_string();
        assert!(refused("[runtime]\nkind = \"kubernetes\"\n").contains("invalid configuration"));
        assert!(refused("[runtime]\nkind = \"swarm\"\nnode = 1\n").contains("invalid configuration"));
        assert!(
            refused("[runtime.nodes]\nn1 = \"unix:///x.sock\"\n")
                .contains("needs [runtime] kind = \"swarm\""),
            "nodes without swarm"
        );
        assert!(
            refused("[runtime]\nkind = \"swarm\"\n[runtime.nodes]\nn1 = \"ssh://host\"\n")
                .contains("an engine endpoint")
        );
        assert!(
            refused("[runtime]\nkind = \"swarm\"\n[runtime.nodes]\n\"n 1\" = \"unix:///x.sock\"\n")
                .contains("not a node hostname")
        );
    }

    #[test]
    fn defaults_equal_the_seed_table() {
        let config = Config::defaults();
        let row = |name: &str| {
            let t = config.container_type(name).unwrap();
            (t.internal_port, t.ssh, t.image.to_string())
        };
        assert_eq!(row("cli_v4"), (8080, SshMode::On, "toolboxv2:latest".into()));
        assert_eq!(row("project_dev"), (8501, SshMode::Off, "toolboxv2:dev".into()));
        assert_eq!(
            row("preview_server"),
            (8600, SshMode::Off, "toolboxv2:latest".into())
        );
        assert_eq!(
            row("custom"),
            (8080, SshMode::Optional, "toolboxv2:latest".into())
        );
        assert_eq!(config.port_pool.to_string(), "9000-9500");
        let cli = config.container_type("cli_v4").unwrap();
        assert_eq!(cli.restart_policy, RestartPolicy::UnlessStopped);
    }

    #[test]
    fn toml_overrides_and_adds_types() {
        let config = Config::from_toml(
            r#"
            port_pool = { start = 20000, end = 20010 }
            [types.cli_v4]
            memory = "1g"
            [types.jupyter]
            image = "jupyter:local"
            internal_port = 8888
            [types.custom]
            enabled = false
            "#,
        )
        .unwrap();
        assert_eq!(config.port_pool.to_string(), "20000-20010");
        let cli = config.container_type("cli_v4").unwrap();
        assert_eq!(cli.memory.to_string(), "1g");
        assert_eq!(cli.internal_port, 8080, "unset fields keep the built-in value");
        assert_eq!(config.container_type("jupyter").unwrap().internal_port, 8888);
        assert!(config.container_type("custom").is_err());
    }

    #[test]
    fn unknown_types_list_the_configured_ones() {
        let err = Config::defaults().container_type("nope").unwrap_err();
        assert!(
            err.message()
                .contains("cli_v4, custom, preview_server, project_dev"),
            "{err}"
        );
    }

    #[test]
    fn toolbox_identities_are_local_tokens_or_the_worker_or_both() {
        let toolbox = |text: &str| Config::from_toml(text).unwrap().toolbox_identity.unwrap();
        // Old files keep working: the secret's variable has its default, no worker is asked.
        let old = toolbox("[auth.toolbox]\nadmin_level = 10\n");
        assert_eq!(old.jwt_secret_env.as_deref(), Some("TB_JWT_SECRET"));
        assert_eq!(old.admin_level, Some(10));
        assert_eq!(old.validate_url, None);
        assert!(!old.accepts_session_cookie());
        // The worker alone: no local secret needed; the defaults of the new keys.
        let worker = toolbox("[auth.toolbox]\nvalidate_url = \"http://127.0.0.1:5000/\"\n");
        assert_eq!(worker.jwt_secret_env, None);
        assert_eq!(worker.validate_url.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(
            (worker.validate_cache_seconds, worker.validate_timeout_ms),
            (30, 3000)
        );
        assert!(worker.accepts_session_cookie());
        // Both, with everything set.
        let both = toolbox(
            "[auth.toolbox]\njwt_secret_env = \"TB_SECRET\"\nvalidate_url = \"https://tb.example.org/worker\"\n\
             validate_cache_seconds = 5\nvalidate_timeout_ms = 800\n",
        );
        assert_eq!(both.jwt_secret_env.as_deref(), Some("TB_SECRET"));
        assert_eq!(
            both.validate_url.as_deref(),
            Some("https://tb.example.org/worker")
        );
        assert_eq!((both.validate_cache_seconds, both.validate_timeout_ms), (5, 800));
        assert_eq!(
            toolbox("[auth.toolbox]\nvalidate_url = \"http://[::1]:5000\"\n")
                .validate_url
                .as_deref(),
            Some("http://[::1]:5000")
        );
        for (bad, says) in [
            ("validate_url = \"ftp://tb.example\"", "http:// or https://"),
            ("validate_url = \"127.0.0.1:5000\"", "http:// or https://"),
            ("validate_url = \"http://\"", "no valid host"),
            ("validate_url = \"http://user:pw@tb.example\"", "credentials"),
            ("validate_url = \"http://tb.example/?x=1\"", "query"),
            ("validate_url = \"http://tb.example:99999\"", "invalid port"),
            ("validate_url = \"http://tb example\"", "spaces"),
            ("validate_cache_seconds = 10", "need validate_url"),
            (
                "validate_url = \"http://tb\"\nvalidate_cache_seconds = 0",
                "1 to 3600",
            ),
            (
                "validate_url = \"http://tb\"\nvalidate_timeout_ms = 10",
                "100 to 60000",
            ),
            ("jwt_secret_env = \"A B\"", "environment variable"),
            ("validate_link = \"http://tb\"", "unknown field"),
        ] {
            let err = Config::from_toml(&format!("[auth.toolbox]\n{bad}\n")).unwrap_err();
            assert!(err.message().contains(says), "{bad}: {err}");
            assert!(
                err.message().contains("auth") || says == "unknown field",
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn idle_stop_is_off_by_default_and_takes_durations_or_seconds() {
        let defaults = Config::defaults();
        assert!(defaults.types.values().all(|t| t.idle_stop_after.is_none()));
        assert_eq!(defaults.idle.wake_wait, std::time::Duration::from_secs(20));
        let config = Config::from_toml(
            "[idle]\nwake_wait_seconds = 5\n[types.custom]\nidle_stop_after = \"1h 30m\"\n\
             [types.cli_v4]\nidle_stop_after = 90\n[types.project_dev]\nidle_stop_after = \"off\"\n",
        )
        .unwrap();
        let after = |name: &str| config.container_type(name).unwrap().idle_stop_after;
        assert_eq!(after("custom"), Some(std::time::Duration::from_secs(5400)));
        assert_eq!(after("cli_v4"), Some(std::time::Duration::from_secs(90)));
        assert_eq!(after("project_dev"), None);
        assert_eq!(after("preview_server"), None);
        assert_eq!(config.idle.wake_wait, std::time::Duration::from_secs(5));
        let json = serde_json::to_value(config.container_type("custom").unwrap()).unwrap();
        assert_eq!(json["idle_stop_after"], 5400, "seconds in JSON");
        for (bad, says) in [
            ("[types.custom]\nidle_stop_after = \"soon\"", "a duration such as"),
            ("[types.custom]\nidle_stop_after = 0", "1 second to 365 days"),
            (
                "[types.custom]\nidle_stop_after = \"400days\"",
                "1 second to 365 days",
            ),
            ("[idle]\nwake_wait_seconds = 0", "1 to 50"),
            ("[idle]\nwake_wait_seconds = 61", "1 to 50"),
            ("[idle]\nwake_wait = 5", "unknown field"),
        ] {
            let err = Config::from_toml(bad).unwrap_err();
            assert!(err.message().contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn bad_configuration_is_refused() {
        for bad in [
            "port_pool = { start = 9500, end = 9000 }",
            "unknown_key = 1",
            "[types.x]\nimage = 'a b'",
            "[types.y]\ninternal_port = 80",
            "[labels]\n'a b' = 'x'",
            "[ssh]\nserver_host = 'a;b'",
        ] {
            assert!(Config::from_toml(bad).is_err(), "{bad}");
        }
    }
}
