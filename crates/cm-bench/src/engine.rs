//! The raw side: the same objects cm makes for a container (a bridge network with a subnet, a
//! labelled volume, a container with the same image, environment, labels, limits, capabilities,
//! `no-new-privileges`, restart policy and 127.0.0.1 port binding, then start), made either
//! through the engine's API in this process (bollard: the physical limit) or through the `docker`
//! CLI (what an operator would type).

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Context, bail};
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, HostConfig, Ipam, IpamConfig, NetworkCreateRequest, PortBinding, RestartPolicy,
    RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder,
};

use crate::stats::ms_since;
use crate::world::{Bench, INSTANCE_LABEL, RAW_PORTS, RUN_LABEL, kind};

/// One raw container with its network and volume, named like cm names them.
#[derive(Debug, Clone)]
pub struct RawBox {
    /// `{user}_bench`.
    pub name: String,
    /// `cm-user-{user}`.
    pub network: String,
    /// `{user}_bench_data`.
    pub volume: String,
    /// A /28 of 10.241.0.0/16.
    pub subnet: String,
    /// The host port on 127.0.0.1.
    pub port: u16,
    /// The labels of the network and the volume.
    pub owner_labels: HashMap<String, String>,
    /// The labels of the container.
    pub labels: HashMap<String, String>,
    /// The environment.
    pub env: Vec<String>,
}

impl Bench {
    /// The next raw box, labelled as belonging to the raw instance `instance`.
    pub fn raw_box(&self, instance: &str) -> RawBox {
        let seq = self.next_raw();
        let user = format!("r{}-{seq:04}", self.run);
        let port = RAW_PORTS.0 + u16::try_from(seq).unwrap_or(u16::MAX - RAW_PORTS.0);
        let block = seq * 16;
        let subnet = format!("10.241.{}.{}/28", (block / 256) % 256, block % 256);
        let owner_labels = HashMap::from([
            ("managed-by".to_owned(), "ContainerManager".to_owned()),
            ("user-id".to_owned(), user.clone()),
            (RUN_LABEL.to_owned(), self.run.clone()),
            (INSTANCE_LABEL.to_owned(), self.label(instance)),
        ]);
        let mut labels = owner_labels.clone();
        labels.insert("container-type".to_owned(), kind::NAME.to_owned());
        labels.insert("port".to_owned(), port.to_string());
        let env = vec![
            format!("BASE_PATH=/container/{user}/{}/", kind::NAME),
            format!("CONTAINER_TYPE={}", kind::NAME),
            format!("PORT={}", kind::INTERNAL_PORT),
            format!("USER_ID={user}"),
        ];
        RawBox {
            name: format!("{user}_{}", kind::NAME),
            network: format!("cm-user-{user}"),
            volume: format!("{user}_{}_data", kind::NAME),
            subnet,
            port,
            owner_labels,
            labels,
            env,
        }
    }
}

/// Network, volume, container, start: through the API.
pub async fn api_create(docker: &Docker, b: &RawBox) -> anyhow::Result<()> {
    api_prepare(docker, b).await?;
    api_create_container(docker, b).await
}

/// The network and the volume only.
/// The request for a network of cm's shape: `driver`, one `subnet`, the owner's labels.
pub fn network_request(
    name: &str,
    driver: &str,
    subnet: &str,
    labels: &HashMap<String, String>,
) -> NetworkCreateRequest {
    NetworkCreateRequest {
        name: name.to_owned(),
        driver: Some(driver.to_owned()),
        ipam: Some(Ipam {
            driver: Some("default".to_owned()),
            config: Some(vec![IpamConfig {
                subnet: Some(subnet.to_owned()),
                ..Default::default()
            }]),
            options: None,
        }),
        labels: Some(labels.clone()),
        ..Default::default()
    }
}

pub async fn api_prepare(docker: &Docker, b: &RawBox) -> anyhow::Result<()> {
    docker
        .create_network(network_request(&b.network, "bridge", &b.subnet, &b.owner_labels))
        .await
        .with_context(|| format!("creating network {}", b.network))?;
    let mut volume_labels = b.owner_labels.clone();
    volume_labels.insert("container-type".to_owned(), kind::NAME.to_owned());
    docker
        .create_volume(VolumeCreateRequest {
            name: Some(b.volume.clone()),
            driver: Some("local".to_owned()),
            labels: Some(volume_labels),
            ..Default::default()
        })
        .await
        .with_context(|| format!("creating volume {}", b.volume))?;
    Ok(())
}

/// The container and its start, with the network and volume already there.
pub async fn api_create_container(docker: &Docker, b: &RawBox) -> anyhow::Result<()> {
    let port_key = format!("{}/tcp", kind::INTERNAL_PORT);
    let body = ContainerCreateBody {
        image: Some(kind::IMAGE.to_owned()),
        env: Some(b.env.clone()),
        labels: Some(b.labels.clone()),
        exposed_ports: Some(vec![port_key.clone()]),
        host_config: Some(HostConfig {
            binds: Some(vec![format!("{}:/data", b.volume)]),
            network_mode: Some(b.network.clone()),
            port_bindings: Some(HashMap::from([(
                port_key,
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".to_owned()),
                    host_port: Some(b.port.to_string()),
                }]),
            )])),
            memory: Some(kind::MEMORY_BYTES),
            memory_swap: Some(kind::MEMORY_BYTES),
            nano_cpus: Some((kind::CPUS * 1e9) as i64),
            pids_limit: Some(kind::PIDS),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            cap_drop: Some(vec!["ALL".to_owned()]),
            cap_add: Some(kind::CAPS.iter().map(|c| (*c).to_owned()).collect()),
            security_opt: Some(vec!["no-new-privileges:true".to_owned()]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::new().name(&b.name).build();
    let created = docker
        .create_container(Some(options), body)
        .await
        .with_context(|| format!("creating container {}", b.name))?;
    docker
        .start_container(
            &created.id,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .with_context(|| format!("starting container {}", b.name))?;
    Ok(())
}

/// Container (forced), volume, network: through the API.
pub async fn api_delete(docker: &Docker, b: &RawBox) -> anyhow::Result<()> {
    remove_container(docker, &b.name).await?;
    docker
        .remove_volume(&b.volume, None::<bollard::query_parameters::RemoveVolumeOptions>)
        .await
        .with_context(|| format!("removing volume {}", b.volume))?;
    docker
        .remove_network(&b.network)
        .await
        .with_context(|| format!("removing network {}", b.network))?;
    Ok(())
}

/// Removes a container by name or id, forced, with its anonymous volumes.
pub async fn remove_container(docker: &Docker, name: &str) -> anyhow::Result<()> {
    let options = RemoveContainerOptionsBuilder::new().force(true).v(true).build();
    docker
        .remove_container(name, Some(options))
        .await
        .with_context(|| format!("removing container {name}"))
}

/// `docker network create`, `docker volume create`, `docker run -d`: three CLI processes.
pub async fn cli_create(b: &RawBox) -> anyhow::Result<()> {
    let label_args = |labels: &HashMap<String, String>| -> Vec<String> {
        let mut sorted: Vec<_> = labels.iter().collect();
        sorted.sort();
        sorted
            .into_iter()
            .flat_map(|(k, v)| ["--label".to_owned(), format!("{k}={v}")])
            .collect()
    };
    let mut network = vec![
        "network".to_owned(),
        "create".to_owned(),
        "--driver".to_owned(),
        "bridge".to_owned(),
        "--subnet".to_owned(),
        b.subnet.clone(),
    ];
    network.extend(label_args(&b.owner_labels));
    network.push(b.network.clone());
    docker_cli(&network).await?;

    let mut volume_labels = b.owner_labels.clone();
    volume_labels.insert("container-type".to_owned(), kind::NAME.to_owned());
    let mut volume = vec!["volume".to_owned(), "create".to_owned()];
    volume.extend(label_args(&volume_labels));
    volume.push(b.volume.clone());
    docker_cli(&volume).await?;

    let mut run: Vec<String> = [
        "run",
        "-d",
        "--name",
        &b.name,
        "--network",
        &b.network,
        "-v",
        &format!("{}:/data", b.volume),
        "-p",
        &format!("127.0.0.1:{}:{}", b.port, kind::INTERNAL_PORT),
        "--memory",
        kind::MEMORY,
        "--memory-swap",
        kind::MEMORY,
        "--cpus",
        &kind::CPUS.to_string(),
        "--pids-limit",
        &kind::PIDS.to_string(),
        "--restart",
        "unless-stopped",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges:true",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for cap in kind::CAPS {
        run.extend(["--cap-add".to_owned(), cap.to_owned()]);
    }
    for var in &b.env {
        run.extend(["-e".to_owned(), var.clone()]);
    }
    run.extend(label_args(&b.labels));
    run.push(kind::IMAGE.to_owned());
    docker_cli(&run).await.map(drop)
}

/// `docker rm -f`, `docker volume rm`, `docker network rm`: three CLI processes.
pub async fn cli_delete(b: &RawBox) -> anyhow::Result<()> {
    docker_cli(&["rm".to_owned(), "-f".to_owned(), b.name.clone()]).await?;
    docker_cli(&["volume".to_owned(), "rm".to_owned(), b.volume.clone()]).await?;
    docker_cli(&["network".to_owned(), "rm".to_owned(), b.network.clone()])
        .await
        .map(drop)
}

/// Runs `docker args...`; its wall time in ms. An error carries its stderr.
pub async fn docker_cli(args: &[String]) -> anyhow::Result<f64> {
    let start = Instant::now();
    let out = tokio::process::Command::new("docker")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .context("running docker")?;
    let ms = ms_since(start);
    if !out.status.success() {
        bail!(
            "docker {} failed: {}",
            args.first().map_or("", String::as_str),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(ms)
}

fn label_filters(labels: &[String]) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), labels.to_vec())])
}

/// The containers carrying every one of `labels` (`key=value`): (id, name, state).
pub async fn containers(docker: &Docker, labels: &[String]) -> anyhow::Result<Vec<(String, String, String)>> {
    let filters = label_filters(labels);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    Ok(docker
        .list_containers(Some(options))
        .await?
        .into_iter()
        .map(|c| {
            (
                c.id.unwrap_or_default(),
                c.names
                    .and_then(|n| n.into_iter().next())
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_owned(),
                c.state.map(|s| s.to_string()).unwrap_or_default(),
            )
        })
        .collect())
}

/// What a reconcile has to read from the engine, done directly: the labelled containers,
/// volumes and networks, one list call each.
pub async fn reconcile_reads(docker: &Docker, labels: &[String]) -> anyhow::Result<()> {
    let filters = label_filters(labels);
    containers(docker, labels).await?;
    docker
        .list_volumes(Some(ListVolumesOptionsBuilder::new().filters(&filters).build()))
        .await?;
    docker
        .list_networks(Some(ListNetworksOptionsBuilder::new().filters(&filters).build()))
        .await?;
    Ok(())
}

/// The engine calls a `cm reconcile` makes as cm-docker makes them: the containers with the
/// instance's labels once, and the volumes and networks labelled `managed-by` (cm-core keeps those
/// with the instance's labels).
pub async fn reconcile_calls(docker: &Docker, labels: &[String]) -> anyhow::Result<()> {
    let managed = label_filters(&["managed-by=ContainerManager".to_owned()]);
    containers(docker, labels).await?;
    docker
        .list_volumes(Some(ListVolumesOptionsBuilder::new().filters(&managed).build()))
        .await?;
    docker
        .list_networks(Some(ListNetworksOptionsBuilder::new().filters(&managed).build()))
        .await?;
    Ok(())
}

/// Times the two engine listings a `cm create` makes before it leases, as cm-docker makes them: the
/// running containers publishing a host port of the pool's `range` (`START-END`), and, for a
/// user's first container, all networks (for their subnets): ms each.
pub async fn create_reads(docker: &Docker, range: &str) -> anyhow::Result<(f64, f64)> {
    let start = Instant::now();
    let publish = std::collections::HashMap::from([("publish".to_owned(), vec![range.to_owned()])]);
    docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(false)
                .filters(&publish)
                .build(),
        ))
        .await?;
    let containers_ms = ms_since(start);
    let start = Instant::now();
    docker
        .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
        .await?;
    Ok((containers_ms, ms_since(start)))
}

/// The host port a container publishes for `internal_port`/tcp.
pub async fn host_port(docker: &Docker, name: &str, internal_port: u16) -> anyhow::Result<u16> {
    let inspect = docker
        .inspect_container(name, None::<bollard::query_parameters::InspectContainerOptions>)
        .await
        .with_context(|| format!("inspecting container {name}"))?;
    inspect
        .network_settings
        .and_then(|n| n.ports)
        .and_then(|ports| ports.get(&format!("{internal_port}/tcp")).cloned().flatten())
        .and_then(|bindings| bindings.into_iter().find_map(|b| b.host_port?.parse().ok()))
        .with_context(|| format!("container {name} publishes no host port for {internal_port}/tcp"))
}
