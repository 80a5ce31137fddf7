//! The stored record of a container and the labels that tie Docker objects to it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::names::{ContainerName, NetworkName, NodeName, TypeName, UserId, VolumeName};
use crate::network::Subnet;
use crate::values::{Command, CpuLimit, DiskSize, EnvVars, ImageRef, MemoryLimit};

/// The labels every Docker object of ours carries (names kept from the original).
pub mod labels {
    /// Marks objects the manager owns.
    pub const MANAGED_BY: &str = "managed-by";
    /// The value of [`MANAGED_BY`].
    pub const MANAGED_BY_VALUE: &str = "ContainerManager";
    /// The owning user.
    pub const USER_ID: &str = "user-id";
    /// The container type.
    pub const CONTAINER_TYPE: &str = "container-type";
    /// The leased HTTP host port.
    pub const PORT: &str = "port";
    /// The leased SSH host port, on SSH-enabled containers.
    pub const SSH_PORT: &str = "ssh-port";
    /// The installation that made the object (its id in the database). `reconcile --prune`
    /// removes only objects of its own installation: the Python original's containers carry
    /// `managed-by=ContainerManager` too, and are left for `cm adopt`.
    pub const INSTALLATION: &str = "org.containermanager.installation";
}

/// A container as the store records it: what should exist (D2).
///
/// Field names are the original's (`container_id` ... `ssh_port`), so existing ToolBox clients and
/// TBEF.DB readers keep working; the fields after `ssh_port` are additions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Docker's id of the current container; it changes when the container is re-created.
    pub container_id: String,
    /// `{user_id}_{type}`, stable for the life of the record.
    pub container_name: ContainerName,
    /// The type.
    pub container_type: TypeName,
    /// The owner.
    pub user_id: UserId,
    /// The leased HTTP host port, published on 127.0.0.1 only.
    pub port: u16,
    /// The HTTP port inside the container.
    pub internal_port: u16,
    /// The image it runs.
    pub image: ImageRef,
    /// The data volume mounted at `/data`.
    pub volume_name: VolumeName,
    /// The last status seen; list and get replace it with the engine's live status.
    pub status: ContainerStatus,
    /// When it was created, RFC 3339 UTC.
    pub created_at: String,
    /// The environment, including the manager's own variables.
    pub env: EnvVars,
    /// The leased SSH host port, when SSH is enabled.
    pub ssh_port: Option<u16>,
    /// The user's bridge network.
    pub network_name: NetworkName,
    /// The subnet of that network.
    pub subnet: Subnet,
    /// The command, when it replaces the image's default.
    pub command: Option<Command>,
    /// Memory limit.
    pub memory: MemoryLimit,
    /// CPU limit.
    pub cpus: CpuLimit,
    /// Process limit.
    pub pids_limit: i64,
    /// The URL path nginx serves it under: `/container/{user_id}/{type}/`.
    pub url_path: String,
    /// The data volume's size cap, when its type has one (records made before caps have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskSize>,
    /// The node it is pinned to, on a runtime that spreads containers over nodes (Swarm); `None`
    /// on a single engine (and in records made before nodes existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeName>,
}

/// The state of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerStatus {
    /// Created, never started.
    Created,
    /// Running.
    Running,
    /// Being restarted by the engine (for example after a crash).
    Restarting,
    /// Exiting again and again: the engine is restarting it for at least the
    /// [`CRASH_LOOP_RESTARTS`]th time in a row since it was last started on purpose.
    #[serde(rename = "crash-looping")]
    CrashLooping,
    /// Paused.
    Paused,
    /// Stopped or exited.
    Exited,
    /// Being removed.
    Removing,
    /// Dead (the engine could not remove it).
    Dead,
    /// The record exists but the engine has no such container.
    Missing,
    /// The engine could not be asked; the stored status is shown as stale.
    Unknown,
    /// The node it is pinned to is down: its data is there, so it is never re-created elsewhere
    /// on its own; it runs again when the node comes back, or `cm move` takes it elsewhere.
    #[serde(rename = "node-down")]
    NodeDown,
}

/// How many restarts in a row (the engine's restart count, which a deliberate start resets) make
/// a container the engine is restarting again [`ContainerStatus::CrashLooping`].
pub const CRASH_LOOP_RESTARTS: i64 = 3;

impl ContainerStatus {
    /// Maps the engine's state text and restart count: a container the engine is restarting for
    /// the [`CRASH_LOOP_RESTARTS`]th time in a row is crash-looping.
    pub fn observed(state: &str, restart_count: i64) -> Self {
        match Self::from_engine(state) {
            ContainerStatus::Restarting if restart_count >= CRASH_LOOP_RESTARTS => {
                ContainerStatus::CrashLooping
            }
            status => status,
        }
    }

    /// Whether a process of it is up or about to be (delete refuses it without `force`).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            ContainerStatus::Running | ContainerStatus::Restarting | ContainerStatus::CrashLooping
        )
    }

    /// Maps Docker's state text (`running`, `exited`, ...).
    pub fn from_engine(state: &str) -> Self {
        match state {
            "created" => ContainerStatus::Created,
            "running" => ContainerStatus::Running,
            "restarting" => ContainerStatus::Restarting,
            "paused" => ContainerStatus::Paused,
            "exited" => ContainerStatus::Exited,
            "removing" => ContainerStatus::Removing,
            "dead" => ContainerStatus::Dead,
            _ => ContainerStatus::Unknown,
        }
    }

    /// The status named `name` as [`ContainerStatus::as_str`] writes it (`Unknown` for any
    /// other text).
    pub fn from_name(name: &str) -> Self {
        const ALL: [ContainerStatus; 10] = [
            ContainerStatus::Created,
            ContainerStatus::Running,
            ContainerStatus::Restarting,
            ContainerStatus::CrashLooping,
            ContainerStatus::Paused,
            ContainerStatus::Exited,
            ContainerStatus::Removing,
            ContainerStatus::Dead,
            ContainerStatus::Missing,
            ContainerStatus::Unknown,
        ];
        ALL.into_iter()
            .find(|s| s.as_str() == name)
            .unwrap_or(ContainerStatus::Unknown)
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Restarting => "restarting",
            ContainerStatus::CrashLooping => "crash-looping",
            ContainerStatus::Paused => "paused",
            ContainerStatus::Exited => "exited",
            ContainerStatus::Removing => "removing",
            ContainerStatus::Dead => "dead",
            ContainerStatus::Missing => "missing",
            ContainerStatus::Unknown => "unknown",
            ContainerStatus::NodeDown => "node-down",
        }
    }
}

impl fmt::Display for ContainerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ContainerSpec {
    /// The labels of the container (and, without the ports, of its volume).
    pub fn labels(&self, extra: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut labels = owner_labels(&self.user_id, Some(&self.container_type), extra);
        labels.insert(labels::PORT.to_owned(), self.port.to_string());
        if let Some(ssh_port) = self.ssh_port {
            labels.insert(labels::SSH_PORT.to_owned(), ssh_port.to_string());
        }
        labels
    }

    /// The first 12 characters of the Docker id, as `docker ps` shows it.
    pub fn short_id(&self) -> &str {
        let end = self.container_id.len().min(12);
        &self.container_id[..end]
    }
}

/// The labels that say who owns a Docker object: ours, the user's, and the type's when it has one.
pub fn owner_labels(
    user: &UserId,
    kind: Option<&TypeName>,
    extra: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut labels = extra.clone();
    labels.insert(labels::MANAGED_BY.to_owned(), labels::MANAGED_BY_VALUE.to_owned());
    labels.insert(labels::USER_ID.to_owned(), user.to_string());
    if let Some(kind) = kind {
        labels.insert(labels::CONTAINER_TYPE.to_owned(), kind.to_string());
    }
    labels
}

/// The URL path of a user's container of a type.
pub fn url_path(user: &UserId, kind: &TypeName) -> String {
    format!("/container/{user}/{kind}/")
}
