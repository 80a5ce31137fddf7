//! The admin's view of the whole engine, as the original offered it: every container (managed or
//! not), counts for `docker_health`, and the infrastructure services (Redis, MinIO, SearXNG,
//! OpenTelemetry, OpenObserve) running beside the managed containers.

use serde::Serialize;

use crate::error::Result;
use crate::manager::Manager;
use crate::ports::EngineContainer;

/// How many containers the engine holds, and whose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EngineCounts {
    /// All containers, running or not.
    pub total_containers: usize,
    /// Those a ContainerManager made (`managed-by=ContainerManager`: this one or the original).
    pub tb_managed: usize,
    /// The rest.
    pub external: usize,
}

/// A running infrastructure service, found by its image or port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiscoveredService {
    /// The container's name.
    pub name: String,
    /// `redis`, `minio`, `searxng`, `opentelemetry` or `openobserve`.
    pub service_type: &'static str,
    /// Its URL inside Docker networks (by container name).
    pub internal_url: String,
    /// Its URL from outside, through its first published port.
    pub external_url: String,
    /// The engine's id.
    pub container_id: String,
    /// Whether a ContainerManager made it.
    pub is_tb_managed: bool,
}

impl EngineCounts {
    /// Counts `containers`.
    pub fn of(containers: &[EngineContainer]) -> Self {
        let managed = containers.iter().filter(|c| c.is_managed()).count();
        EngineCounts {
            total_containers: containers.len(),
            tb_managed: managed,
            external: containers.len() - managed,
        }
    }
}

/// The service a container runs, by its image name, else by a well-known port (the original's
/// rules).
fn service_type(container: &EngineContainer) -> Option<&'static str> {
    let image = container.image.to_ascii_lowercase();
    for (needle, kind) in [
        ("redis", "redis"),
        ("minio", "minio"),
        ("searxng", "searxng"),
        ("otel", "opentelemetry"),
        ("opentelemetry", "opentelemetry"),
        ("openobserve", "openobserve"),
    ] {
        if image.contains(needle) {
            return Some(kind);
        }
    }
    container.ports.keys().find_map(|key| {
        match key.split('/').next().and_then(|p| p.parse::<u16>().ok())? {
            6379 => Some("redis"),
            9000 | 9001 => Some("minio"),
            4317 | 4318 => Some("opentelemetry"),
            5080 => Some("openobserve"),
            _ => None,
        }
    })
}

/// The infrastructure services among running `containers`; `host` is how outside clients reach
/// this machine.
pub fn discover(containers: &[EngineContainer], host: &str) -> Vec<DiscoveredService> {
    containers
        .iter()
        .filter(|c| c.status == "running")
        .filter_map(|c| {
            let kind = service_type(c)?;
            let (inside, outside) = c
                .ports
                .iter()
                .next()
                .map(|(key, host_port)| (key.split('/').next().unwrap_or(key).to_owned(), *host_port))
                .unzip();
            let inside = inside.unwrap_or_else(|| "unknown".to_owned());
            let outside = outside.unwrap_or(0);
            let scheme = match kind {
                "minio" | "openobserve" => "http",
                other => other,
            };
            let internal_port = if kind == "redis" { "6379" } else { inside.as_str() };
            Some(DiscoveredService {
                name: c.name.clone(),
                service_type: kind,
                internal_url: format!("{scheme}://{}:{internal_port}", c.name),
                external_url: format!("{scheme}://{host}:{outside}"),
                container_id: c.id.clone(),
                is_tb_managed: c.is_managed(),
            })
        })
        .collect()
}

impl Manager {
    /// Every container on the engine, ours or not, by name.
    pub async fn engine_containers(&self) -> Result<Vec<EngineContainer>> {
        let mut containers = self.adapters().runtime.list_all_containers().await?;
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(containers)
    }

    /// The infrastructure services running on the engine.
    pub async fn discover_services(&self) -> Result<Vec<DiscoveredService>> {
        let containers = self.engine_containers().await?;
        Ok(discover(&containers, &self.ssh_host()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn container(name: &str, image: &str, ports: &[(&str, u16)], managed: bool) -> EngineContainer {
        let mut labels = BTreeMap::new();
        if managed {
            labels.insert("managed-by".to_owned(), "ContainerManager".to_owned());
        }
        EngineContainer {
            id: format!("{name}-id"),
            name: name.to_owned(),
            image: image.to_owned(),
            status: "running".to_owned(),
            labels,
            ports: ports.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            networks: Vec::new(),
        }
    }

    #[test]
    fn services_are_found_by_image_or_port_and_counted() {
        let containers = [
            container("cache", "redis:7", &[("6379/tcp", 16379)], false),
            container("store", "quay.io/minio/minio", &[("9000/tcp", 19000)], false),
            container("mystery", "busybox", &[("4317/tcp", 14317)], false),
            container("alice_cli_v4", "toolboxv2:latest", &[("8080/tcp", 9000)], true),
        ];
        let found = discover(&containers, "example.org");
        let seen: Vec<(&str, &str, &str)> = found
            .iter()
            .map(|s| (s.name.as_str(), s.internal_url.as_str(), s.external_url.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("cache", "redis://cache:6379", "redis://example.org:16379"),
                ("store", "http://store:9000", "http://example.org:19000"),
                (
                    "mystery",
                    "opentelemetry://mystery:4317",
                    "opentelemetry://example.org:14317"
                ),
            ]
        );
        assert_eq!(
            EngineCounts::of(&containers),
            EngineCounts {
                total_containers: 4,
                tb_managed: 1,
                external: 3
            }
        );
    }
}
