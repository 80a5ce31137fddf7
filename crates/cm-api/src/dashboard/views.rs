//! What the templates see: plain data made from the core's types. Secret-looking environment
//! values are replaced here, the same way the API's answers replace them.

use cm_core::{ContainerSpec, ContainerStatus, ContainerType, SshMode, StoredKey};
use minijinja::Value;
use minijinja::value::Serde;
use serde::Serialize;

use crate::answers::{REDACTED, is_secret_name};

/// A container, as rows and detail pages show it.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerView {
    pub name: String,
    pub short_id: String,
    pub user: String,
    pub kind: String,
    pub status: &'static str,
    pub status_class: &'static str,
    pub image: String,
    pub url_path: String,
    pub port: u16,
    pub internal_port: u16,
    pub ssh_port: Option<u16>,
    pub created: String,
    /// The creation time as stored (RFC 3339), for sorting.
    pub created_at: String,
    pub created_date: String,
    pub created_time: String,
    pub command: Option<String>,
    pub env: Vec<EnvView>,
    pub memory: String,
    pub cpus: String,
    pub pids_limit: i64,
    pub network: String,
    pub subnet: String,
    pub volume: String,
    pub running: bool,
    /// The node it is pinned to (Swarm), else `None`.
    pub node: Option<String>,
}

/// A capped data volume's use, for a meter.
#[derive(Debug, Clone, Serialize)]
pub struct DiskView {
    pub used: String,
    pub size: String,
    pub percent: u64,
}

impl DiskView {
    /// Sizes in MiB and the share used, rounded.
    pub fn of(usage: cm_core::DiskUsage) -> Self {
        let mib = |bytes: u64| format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20));
        DiskView {
            used: mib(usage.used_bytes),
            size: mib(usage.size_bytes),
            percent: (usage.used_bytes.saturating_mul(100) / usage.size_bytes.max(1)).min(100),
        }
    }
}

/// One environment variable.
#[derive(Debug, Clone, Serialize)]
pub struct EnvView {
    pub name: String,
    pub value: String,
    pub redacted: bool,
}

/// A container type.
#[derive(Debug, Clone, Serialize)]
pub struct TypeView {
    pub name: String,
    pub description: String,
    pub image: String,
    pub port: u16,
    pub ssh: &'static str,
    pub memory: String,
    pub cpus: String,
    pub pids_limit: i64,
    pub strip_prefix: bool,
    pub access: cm_core::Access,
}

/// A stored SSH key.
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    pub fingerprint: String,
    pub comment: String,
    pub added: String,
}

impl ContainerView {
    /// The view of a record.
    pub fn of(spec: &ContainerSpec) -> Self {
        ContainerView {
            name: spec.container_name.to_string(),
            short_id: spec.short_id().to_owned(),
            user: spec.user_id.to_string(),
            kind: spec.container_type.to_string(),
            status: spec.status.as_str(),
            status_class: status_class(spec.status),
            image: spec.image.to_string(),
            url_path: spec.url_path.clone(),
            port: spec.port,
            internal_port: spec.internal_port,
            ssh_port: spec.ssh_port,
            created: human_time(&spec.created_at),
            created_at: spec.created_at.clone(),
            created_date: human_time(&spec.created_at)
                .split_once(' ')
                .map_or_else(|| spec.created_at.clone(), |(date, _)| date.to_owned()),
            created_time: human_time(&spec.created_at)
                .split_once(' ')
                .map(|(_, time)| time.to_owned())
                .unwrap_or_default(),
            command: spec
                .command
                .as_ref()
                .map(|c| c.to_string().chars().take(2000).collect::<String>()),
            env: spec
                .env
                .iter()
                .map(|(name, value)| {
                    let redacted = is_secret_name(name);
                    EnvView {
                        name: name.to_owned(),
                        value: if redacted {
                            REDACTED.to_owned()
                        } else {
                            value.to_owned()
                        },
                        redacted,
                    }
                })
                .collect(),
            memory: spec.memory.to_string(),
            cpus: spec.cpus.to_string(),
            pids_limit: spec.pids_limit,
            network: spec.network_name.to_string(),
            subnet: spec.subnet.to_string(),
            volume: spec.volume_name.to_string(),
            running: spec.status.is_active(),
            node: spec.node.as_ref().map(ToString::to_string),
        }
    }
}

impl ContainerView {
    /// Says `stopped (idle)` for a stopped container in `idle` (stopped for being idle: a
    /// request through its route starts it again).
    pub fn idle_marked(mut self, idle: &std::collections::BTreeSet<cm_core::ContainerName>) -> Self {
        if !self.running && idle.iter().any(|name| name.as_str() == self.name) {
            self.status = IDLE_STOPPED;
        }
        self
    }
}

/// The status shown for a container stopped for being idle.
pub const IDLE_STOPPED: &str = "stopped (idle)";

impl TypeView {
    /// The view of a configured type.
    pub fn of(kind: &ContainerType) -> Self {
        TypeView {
            name: kind.name.to_string(),
            description: kind.description.clone(),
            image: kind.image.to_string(),
            port: kind.internal_port,
            ssh: ssh_mode(kind.ssh),
            memory: kind.memory.to_string(),
            cpus: kind.cpus.to_string(),
            pids_limit: kind.pids_limit,
            strip_prefix: kind.strip_prefix,
            access: kind.access,
        }
    }
}

impl KeyView {
    /// The view of a stored key.
    pub fn of(stored: &StoredKey) -> Self {
        KeyView {
            fingerprint: stored.key.fingerprint().to_owned(),
            comment: stored.key.comment().to_owned(),
            added: human_time(&stored.added_at),
        }
    }
}

/// Anything serializable as a template value.
pub fn to_value<T: Serialize>(value: T) -> Value {
    Value::from(Serde(value))
}

/// `on`, `off` or `optional`.
pub fn ssh_mode(mode: SshMode) -> &'static str {
    match mode {
        SshMode::On => "on",
        SshMode::Off => "off",
        SshMode::Optional => "optional",
    }
}

/// The colour of a status badge: `ok`, `info`, `warn`, `bad` or `off`.
pub fn status_class(status: ContainerStatus) -> &'static str {
    match status {
        ContainerStatus::Running => "ok",
        ContainerStatus::Created => "info",
        ContainerStatus::Restarting | ContainerStatus::Paused | ContainerStatus::Removing => "warn",
        ContainerStatus::CrashLooping
        | ContainerStatus::Dead
        | ContainerStatus::Missing
        | ContainerStatus::NodeDown => "bad",
        ContainerStatus::Exited | ContainerStatus::Unknown => "off",
    }
}

/// Every status, for the filter.
pub const STATUSES: [ContainerStatus; 11] = [
    ContainerStatus::Running,
    ContainerStatus::Exited,
    ContainerStatus::Created,
    ContainerStatus::Restarting,
    ContainerStatus::CrashLooping,
    ContainerStatus::Paused,
    ContainerStatus::Removing,
    ContainerStatus::Dead,
    ContainerStatus::Missing,
    ContainerStatus::NodeDown,
    ContainerStatus::Unknown,
];

/// `2025-01-02T03:04:05Z` as `2025-01-02 03:04:05 UTC`.
pub fn human_time(rfc3339: &str) -> String {
    match rfc3339.strip_suffix('Z') {
        Some(rest) => format!("{} UTC", rest.replacen('T', " ", 1)),
        None => rfc3339.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_like_times() {
        assert_eq!(human_time("2025-01-02T03:04:05Z"), "2025-01-02 03:04:05 UTC");
        assert_eq!(human_time("soon"), "soon");
    }
}
