//! Scenario 6, Docker Swarm (`[runtime] kind = "swarm"`, docs/swarm.md) on a real 3-node cluster
//! (cm-testkit's `Cluster`: the host engine as manager, two workers running their own `dockerd`
//! in containers), each figure against the raw engine doing the same work in the same run,
//! interleaved in rotating order:
//!
//! 1. `cm create --node` (a fresh process) against the same network, volume and service made
//!    through the engine's API from this process and as `docker` CLI processes, create to the
//!    task running; then the deletes the same way.
//! 2. Create to the first 200: `cm create` with dynamic routing, then GETs through a private nginx
//!    whose route check is a real cm-api, against the service made through the API and GETs on
//!    the node's published port.
//! 3. `cm move` of a container whose volume holds 100 MiB between the two workers, against the
//!    same move done by hand with the `docker` CLI (scale to 0, a tar stream between two helper
//!    containers, the constraint changed, scale to 1, the old volume removed).
//! 4. Placement of many small containers: cm's (no `--node`) against Swarm's own scheduler.
//!
//! Swarm mode is the engine's global state: the scenario holds the machine-wide engine lock
//! exclusively (`cm_testkit::TestEnv::alone`, the lock every Docker test holds shared), makes the
//! cluster itself (`Cluster` leaves swarm mode on drop, and only the swarm it made), and refuses to
//! run when the engine is in a swarm it did not make. Everything it creates carries both the run's
//! labels and the fixture's, and goes at the end, also on an error.

use crate::engine::network_request;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bollard::Docker;
use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum, EndpointSpec,
    EndpointSpecModeEnum, Limit, Mount, MountType, NetworkAttachmentConfig, NetworkCreateRequest,
    ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec,
    TaskSpecLogDriver, TaskSpecPlacement, TaskSpecResources, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum, TaskState, VolumeCreateRequest,
};
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListTasksOptionsBuilder, RemoveContainerOptionsBuilder,
};
use cm_testkit::TestEnv;
use cm_testkit::nginx::find_nginx;
use cm_testkit::swarm::Cluster;
use serde_json::{Value, json};

use crate::http::{Endpoint, wait_for};
use crate::progress;
use crate::report::{Report, Row, fmt};
use crate::scenarios::routes::{route, start_nginx};
use crate::scenarios::{rotate, timed};
use crate::stats::ms_since;
use crate::world::{ApiServer, Bench, Cm, INSTANCE_LABEL, RUN_LABEL, free_addr, kind, random_key};

/// The section's key.
pub const KEY: &str = "swarm";
/// The image of the Swarm types: small, so the workers (which start empty) load it quickly.
pub const IMAGE: &str = "cm-base:bookworm";
/// The app: Python's HTTP server over the data volume (as the 3-node `cm` test runs it).
const COMMAND: [&str; 6] = ["python3", "-m", "http.server", "8080", "--directory", "/data"];
/// The type of the create, route and move measurements. 256 MiB: a worker's volumes live on its
/// engine's tmpfs, whose pages count against the memory limit of the container writing them (the
/// move's 100 MiB).
const TYPE: &str = "web";
const MEMORY: &str = "256m";
const MEMORY_BYTES: i64 = 256 << 20;
/// The type of the placement measurement: a smaller limit, so that many fit.
const TINY: &str = "tiny";
const TINY_MEMORY: &str = "32m";
const TINY_MEMORY_BYTES: i64 = 32 << 20;
/// The stop grace period both sides give a task (cm-swarm's).
const STOP_GRACE: Duration = Duration::from_secs(10);
/// The pause before Swarm restarts a task (cm-swarm's).
const RESTART_DELAY: Duration = Duration::from_secs(1);
/// Log rotation as cm's default (10 MiB, 3 files).
const LOG_MAX_SIZE: &str = "10m";
const LOG_MAX_FILES: &str = "3";

/// cm's port pools (one per installation) and the raw side's ports: away from the other
/// scenarios' (30000 and up) and the tests' (20000-20599), below the ephemeral range.
const CM_PORTS: (u16, u16) = (29000, 29199);
const ROUTE_PORTS: (u16, u16) = (29200, 29299);
const BALANCE_PORTS: (u16, u16) = (29300, 29499);
const RAW_FIRST_PORT: u16 = 29500;
/// cm's subnets per installation; the raw side's /28s are taken from 10.241.160.0/20.
const CM_SUBNETS: &str = "10.240.160.0/22";
const ROUTE_SUBNETS: &str = "10.240.164.0/22";
const BALANCE_SUBNETS: &str = "10.240.168.0/21";

/// How long one engine call or `docker` process may take.
const CALL_LIMIT: Duration = Duration::from_secs(120);
/// How long a `cm` process may take (a move copies 100 MiB and waits out a stop).
const CM_LIMIT: Duration = Duration::from_secs(300);
/// How long the scenario waits for the engine lock (other Docker tests may hold it shared).
const LOCK_WAIT: Duration = Duration::from_secs(30 * 60);
/// How long a task gets to run.
const RUN_WAIT: Duration = Duration::from_secs(90);
/// How long a route or port gets to answer 200.
const FIRST_200_LIMIT: Duration = Duration::from_secs(60);
/// How often the raw side looks (API and HTTP).
const POLL: Duration = Duration::from_millis(20);
/// How often the CLI side looks (each look is a `docker` process).
const CLI_POLL: Duration = Duration::from_millis(20);
/// The data a moved container holds.
const MOVE_MIB: u64 = 100;

/// The label Swarm puts on a task's container: its service's name.
const SERVICE_NAME_LABEL: &str = "com.docker.swarm.service.name";

/// `work` bounded by `limit`.
async fn within<T>(
    limit: Duration,
    what: &str,
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| anyhow!("{what}: no answer within {} s", limit.as_secs()))?
}

/// Runs `docker [-H host] args...`, bounded; its wall time in ms and its stdout. An error carries
/// its stderr.
async fn docker(host: Option<&str>, args: &[&str]) -> anyhow::Result<(f64, String)> {
    let mut command = tokio::process::Command::new("docker");
    if let Some(host) = host {
        command.args(["-H", host]);
    }
    command
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let start = Instant::now();
    let out = within(CALL_LIMIT, &format!("docker {}", args.join(" ")), async {
        Ok(command.output().await?)
    })
    .await?;
    let ms = ms_since(start);
    if !out.status.success() {
        bail!(
            "docker {} failed: {}",
            args.iter().take(3).copied().collect::<Vec<_>>().join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok((ms, String::from_utf8_lossy(&out.stdout).trim().to_owned()))
}

/// The non-empty lines of a text.
fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One node of the cluster, as the scenario reaches it.
#[derive(Clone)]
struct Node {
    /// `manager`, `w1`, `w2`.
    name: String,
    /// The hostname Swarm knows it by (what `--node` and the constraints name).
    hostname: String,
    /// Where its host-mode published ports answer.
    address: String,
    /// Its engine's endpoint, for `docker -H`.
    endpoint: String,
    /// Its engine, through its API.
    engine: Docker,
}

/// The cluster as the measurements use it.
struct World<'a> {
    bench: &'a Bench,
    /// The manager's engine (the host's).
    manager: Docker,
    /// The image's id (the same on every node: loaded from the host's).
    image_id: String,
    /// The manager first, then the workers.
    nodes: Vec<Node>,
    /// The fixture's own labels (its cleanup removes what carries them).
    fixture_labels: Vec<(String, String)>,
    /// `[runtime]` and `[runtime.nodes]` of a cm configuration on this cluster.
    runtime_toml: String,
    raws: AtomicU32,
}

/// One raw service with its network and volume, named as cm names them.
#[derive(Clone)]
struct RawService {
    name: String,
    network: String,
    volume: String,
    subnet: String,
    port: u16,
    /// The labels of the network and the volume.
    owner_labels: HashMap<String, String>,
    /// The labels of the service's containers.
    labels: HashMap<String, String>,
    env: Vec<String>,
}

impl World<'_> {
    fn worker(&self, n: usize) -> &Node {
        &self.nodes[n]
    }

    /// The next raw service (of the raw instance).
    fn raw(&self, kind_name: &str) -> RawService {
        let seq = self.raws.fetch_add(1, Ordering::Relaxed);
        let user = format!("s{}-{seq:04}", self.bench.run);
        let block = seq * 16;
        let subnet = format!("10.241.{}.{}/28", 160 + (block / 256) % 16, block % 256);
        let mut owner_labels = HashMap::from([
            ("managed-by".to_owned(), "ContainerManager".to_owned()),
            ("user-id".to_owned(), user.clone()),
            (RUN_LABEL.to_owned(), self.bench.run.clone()),
            (INSTANCE_LABEL.to_owned(), self.bench.label(RAW)),
        ]);
        owner_labels.extend(self.fixture_labels.iter().cloned());
        let port = RAW_FIRST_PORT + u16::try_from(seq).unwrap_or(u16::MAX - RAW_FIRST_PORT);
        let mut labels = owner_labels.clone();
        labels.insert("container-type".to_owned(), kind_name.to_owned());
        labels.insert("port".to_owned(), port.to_string());
        let env = vec![
            format!("BASE_PATH=/container/{user}/{kind_name}/"),
            format!("CONTAINER_TYPE={kind_name}"),
            format!("PORT={}", kind::INTERNAL_PORT),
            format!("USER_ID={user}"),
        ];
        RawService {
            name: format!("{user}_{kind_name}"),
            network: format!("cm-user-{user}"),
            volume: format!("{user}_{kind_name}_data"),
            subnet,
            port,
            owner_labels,
            labels,
            env,
        }
    }

    /// The service of `b` as cm-swarm writes one (`service_spec`), with `replicas`, pinned to
    /// `node` when given; `with_objects` false leaves out the network, the volume and the port
    /// (the placement measurement: Swarm places by the spec, not by those).
    fn spec(
        &self,
        b: &RawService,
        node: Option<&Node>,
        replicas: i64,
        memory: i64,
        with_objects: bool,
    ) -> ServiceSpec {
        let mut service_labels = b.labels.clone();
        service_labels.insert("org.containermanager.swarm.image".to_owned(), IMAGE.to_owned());
        ServiceSpec {
            name: Some(b.name.clone()),
            labels: Some(service_labels),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(self.image_id.clone()),
                    labels: Some(b.labels.clone()),
                    args: Some(COMMAND.iter().map(|s| (*s).to_owned()).collect()),
                    env: Some(b.env.clone()),
                    mounts: with_objects.then(|| {
                        vec![Mount {
                            target: Some("/data".to_owned()),
                            source: Some(b.volume.clone()),
                            typ: Some(MountType::VOLUME),
                            ..Default::default()
                        }]
                    }),
                    stop_grace_period: Some(nanos(STOP_GRACE)),
                    capability_drop: Some(vec!["ALL".to_owned()]),
                    capability_add: Some(kind::CAPS.iter().map(|c| (*c).to_owned()).collect()),
                    ..Default::default()
                }),
                resources: Some(TaskSpecResources {
                    limits: Some(Limit {
                        nano_cpus: Some((kind::CPUS * 1e9) as i64),
                        memory_bytes: Some(memory),
                        pids: Some(kind::PIDS),
                    }),
                    ..Default::default()
                }),
                restart_policy: Some(TaskSpecRestartPolicy {
                    condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                    delay: Some(nanos(RESTART_DELAY)),
                    max_attempts: Some(0),
                    window: None,
                }),
                networks: with_objects.then(|| {
                    vec![NetworkAttachmentConfig {
                        target: Some(b.network.clone()),
                        ..Default::default()
                    }]
                }),
                log_driver: Some(TaskSpecLogDriver {
                    name: Some("json-file".to_owned()),
                    options: Some(HashMap::from([
                        ("max-size".to_owned(), (10u64 << 20).to_string()),
                        ("max-file".to_owned(), LOG_MAX_FILES.to_owned()),
                    ])),
                }),
                placement: node.map(|node| TaskSpecPlacement {
                    constraints: Some(vec![format!("node.hostname=={}", node.hostname)]),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            mode: Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated {
                    replicas: Some(replicas),
                }),
                ..Default::default()
            }),
            endpoint_spec: Some(EndpointSpec {
                mode: Some(EndpointSpecModeEnum::DNSRR),
                ports: with_objects.then(|| {
                    vec![EndpointPortConfig {
                        protocol: Some(EndpointPortConfigProtocolEnum::TCP),
                        target_port: Some(i64::from(kind::INTERNAL_PORT)),
                        published_port: Some(i64::from(b.port)),
                        publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
                        ..Default::default()
                    }]
                }),
            }),
            ..Default::default()
        }
    }

    /// The overlay network (manager) and the volume (on `node`): through the API.
    async fn api_prepare(&self, b: &RawService, node: &Node) -> anyhow::Result<()> {
        within(CALL_LIMIT, "creating an overlay network", async {
            self.manager
                .create_network(NetworkCreateRequest {
                    attachable: Some(true),
                    ..network_request(&b.network, "overlay", &b.subnet, &b.owner_labels)
                })
                .await
                .with_context(|| format!("creating network {}", b.network))
        })
        .await?;
        let mut volume_labels = b.owner_labels.clone();
        volume_labels.insert("container-type".to_owned(), TYPE.to_owned());
        within(CALL_LIMIT, "creating a volume", async {
            node.engine
                .create_volume(VolumeCreateRequest {
                    name: Some(b.volume.clone()),
                    driver: Some("local".to_owned()),
                    labels: Some(volume_labels),
                    ..Default::default()
                })
                .await
                .with_context(|| format!("creating volume {} on {}", b.volume, node.name))
        })
        .await?;
        Ok(())
    }

    /// Creates the service of `spec` through the API (bounded in time); its id.
    async fn create_service(&self, spec: ServiceSpec) -> anyhow::Result<String> {
        let name = spec.name.clone().unwrap_or_default();
        within(CALL_LIMIT, "creating a service", async {
            self.manager
                .create_service(spec, None)
                .await
                .with_context(|| format!("creating service {name}"))?
                .id
                .context("a service without an id")
        })
        .await
    }

    /// Network, volume and a 1-replica service pinned to `node`, through the API; the service's
    /// id. Does not wait for its task.
    async fn api_create_service(&self, b: &RawService, node: &Node) -> anyhow::Result<String> {
        self.api_prepare(b, node).await?;
        let spec = self.spec(b, Some(node), 1, MEMORY_BYTES, true);
        self.create_service(spec).await
    }

    /// [`World::api_create_service`], then waits until its task runs.
    async fn api_create(&self, b: &RawService, node: &Node) -> anyhow::Result<String> {
        let id = self.api_create_service(b, node).await?;
        self.wait_running(&id).await?;
        Ok(id)
    }

    /// cm-swarm's order of the same engine work, from this warm process: network and volume, the
    /// service with 0 replicas (created, not started), its spec read back and updated to 1
    /// replica, then its tasks until one runs (every 20 ms). What Swarm itself makes of cm's
    /// sequence, without cm's process, checks and records.
    async fn api_create_scaled(&self, b: &RawService, node: &Node) -> anyhow::Result<String> {
        self.api_prepare(b, node).await?;
        let spec = self.spec(b, Some(node), 0, MEMORY_BYTES, true);
        let id = self.create_service(spec).await?;
        let deadline = Instant::now() + RUN_WAIT;
        loop {
            let service = within(CALL_LIMIT, "inspecting a service", async {
                Ok(self
                    .manager
                    .inspect_service(&id, None::<bollard::query_parameters::InspectServiceOptions>)
                    .await?)
            })
            .await?;
            let mut spec = service.spec.unwrap_or_default();
            spec.mode = Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
                ..Default::default()
            });
            let version = service.version.and_then(|v| v.index).unwrap_or(0);
            let options = bollard::query_parameters::UpdateServiceOptionsBuilder::new()
                .version(i32::try_from(version).unwrap_or(i32::MAX))
                .build();
            let updated = within(CALL_LIMIT, "updating a service", async {
                Ok(self.manager.update_service(&id, spec, options, None).await?)
            })
            .await;
            match updated {
                Ok(_) => break,
                // Swarm bumped the version meanwhile (the endpoint's allocation): read it again.
                Err(e) if e.to_string().contains("out of sequence") && Instant::now() < deadline => {
                    tokio::time::sleep(POLL).await;
                }
                Err(e) => return Err(e),
            }
        }
        self.wait_running(&id).await?;
        Ok(id)
    }

    /// Polls the service's tasks until one runs.
    async fn wait_running(&self, service: &str) -> anyhow::Result<()> {
        let filters = HashMap::from([("service".to_owned(), vec![service.to_owned()])]);
        let deadline = Instant::now() + RUN_WAIT;
        loop {
            let options = ListTasksOptionsBuilder::new().filters(&filters).build();
            let tasks = within(CALL_LIMIT, "listing tasks", async {
                Ok(self.manager.list_tasks(Some(options)).await?)
            })
            .await?;
            for task in &tasks {
                let status = task.status.clone().unwrap_or_default();
                match status.state {
                    Some(TaskState::RUNNING) => return Ok(()),
                    Some(TaskState::FAILED | TaskState::REJECTED) => bail!(
                        "a task of service {service} failed: {}",
                        status.err.or(status.message).unwrap_or_default()
                    ),
                    _ => {}
                }
            }
            if Instant::now() > deadline {
                bail!("service {service} did not run within {} s", RUN_WAIT.as_secs());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Service, its container (killed now, as cm's forced delete does), volume and network:
    /// through the API.
    async fn api_delete(&self, b: &RawService, service: &str, node: &Node) -> anyhow::Result<()> {
        within(CALL_LIMIT, "removing a service", async {
            Ok(self.manager.delete_service(service).await?)
        })
        .await?;
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("com.docker.swarm.service.id={service}")],
        )]);
        let deadline = Instant::now() + RUN_WAIT;
        loop {
            let options = ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build();
            let left = within(CALL_LIMIT, "listing containers", async {
                Ok(node.engine.list_containers(Some(options)).await?)
            })
            .await?;
            if left.is_empty() {
                break;
            }
            for container in left.into_iter().filter_map(|c| c.id) {
                let options = RemoveContainerOptionsBuilder::new().force(true).build();
                // Swarm may remove it at the same moment: gone either way.
                let _ = within(CALL_LIMIT, "removing a container", async {
                    Ok(node.engine.remove_container(&container, Some(options)).await?)
                })
                .await;
            }
            if Instant::now() > deadline {
                bail!("the containers of service {service} did not go");
            }
            tokio::time::sleep(POLL).await;
        }
        within(CALL_LIMIT, "removing a volume", async {
            node.engine
                .remove_volume(&b.volume, None::<bollard::query_parameters::RemoveVolumeOptions>)
                .await
                .with_context(|| format!("removing volume {}", b.volume))
        })
        .await?;
        self.remove_network(&b.network, |net| async move {
            Ok(self.manager.remove_network(&net).await?)
        })
        .await
    }

    /// Removes a network, again while a task that just went still holds it (bounded).
    async fn remove_network<F, Fut>(&self, network: &str, remove: F) -> anyhow::Result<()>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let deadline = Instant::now() + RUN_WAIT;
        loop {
            match within(CALL_LIMIT, "removing a network", remove(network.to_owned())).await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(e.context(format!("removing network {network}")));
                }
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// `docker network create`, `docker -H node volume create`, `docker service create --detach`,
    /// then `docker service ps` until the task runs: CLI processes.
    async fn cli_create(&self, b: &RawService, node: &Node) -> anyhow::Result<()> {
        let label_args = |labels: &HashMap<String, String>, flag: &str| -> Vec<String> {
            let mut sorted: Vec<_> = labels.iter().collect();
            sorted.sort();
            sorted
                .into_iter()
                .flat_map(|(k, v)| [flag.to_owned(), format!("{k}={v}")])
                .collect()
        };
        let mut network = vec![
            "network".to_owned(),
            "create".to_owned(),
            "--driver".to_owned(),
            "overlay".to_owned(),
            "--attachable".to_owned(),
            "--subnet".to_owned(),
            b.subnet.clone(),
        ];
        network.extend(label_args(&b.owner_labels, "--label"));
        network.push(b.network.clone());
        docker(None, &strs(&network)).await?;

        let mut volume_labels = b.owner_labels.clone();
        volume_labels.insert("container-type".to_owned(), TYPE.to_owned());
        let mut volume = vec!["volume".to_owned(), "create".to_owned()];
        volume.extend(label_args(&volume_labels, "--label"));
        volume.push(b.volume.clone());
        docker(Some(&node.endpoint), &strs(&volume)).await?;

        let mut service_labels = b.labels.clone();
        service_labels.insert("org.containermanager.swarm.image".to_owned(), IMAGE.to_owned());
        let mut create: Vec<String> = [
            "service",
            "create",
            "--detach",
            "--no-resolve-image",
            "--name",
            &b.name,
            "--replicas",
            "1",
            "--constraint",
            &format!("node.hostname=={}", node.hostname),
            "--network",
            &b.network,
            "--mount",
            &format!("type=volume,source={},target=/data", b.volume),
            "--publish",
            &format!(
                "mode=host,target={},published={},protocol=tcp",
                kind::INTERNAL_PORT,
                b.port
            ),
            "--endpoint-mode",
            "dnsrr",
            "--limit-memory",
            MEMORY,
            "--limit-cpu",
            &kind::CPUS.to_string(),
            "--limit-pids",
            &kind::PIDS.to_string(),
            "--cap-drop",
            "ALL",
            "--restart-condition",
            "any",
            "--restart-delay",
            "1s",
            "--restart-max-attempts",
            "0",
            "--stop-grace-period",
            "10s",
            "--log-driver",
            "json-file",
            "--log-opt",
            &format!("max-size={LOG_MAX_SIZE}"),
            "--log-opt",
            &format!("max-file={LOG_MAX_FILES}"),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        for cap in kind::CAPS {
            create.extend(["--cap-add".to_owned(), cap.to_owned()]);
        }
        for var in &b.env {
            create.extend(["--env".to_owned(), var.clone()]);
        }
        create.extend(label_args(&service_labels, "--label"));
        create.extend(label_args(&b.labels, "--container-label"));
        create.push(self.image_id.clone());
        create.extend(COMMAND.iter().map(|s| (*s).to_owned()));
        docker(None, &strs(&create)).await?;
        self.cli_wait_running(&b.name, &node.hostname).await
    }

    /// `docker service ps` until the service's task runs on `hostname`.
    async fn cli_wait_running(&self, name: &str, hostname: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + RUN_WAIT;
        loop {
            let (_, out) = docker(
                None,
                &[
                    "service",
                    "ps",
                    "--filter",
                    "desired-state=running",
                    "--format",
                    "{{.Node}} {{.CurrentState}}",
                    name,
                ],
            )
            .await?;
            if lines(&out)
                .iter()
                .any(|l| l.starts_with(&format!("{hostname} Running")))
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "service {name} did not run on {hostname} within {} s: {out}",
                    RUN_WAIT.as_secs()
                );
            }
            tokio::time::sleep(CLI_POLL).await;
        }
    }

    /// `docker service rm`, the task's container removed by force on its node (as cm's forced
    /// delete does), `docker -H node volume rm`, `docker network rm`: CLI processes.
    async fn cli_delete(&self, b: &RawService, node: &Node) -> anyhow::Result<()> {
        docker(None, &["service", "rm", &b.name]).await?;
        self.cli_remove_containers(b, node).await?;
        docker(Some(&node.endpoint), &["volume", "rm", &b.volume]).await?;
        self.remove_network(&b.network, |net| async move {
            docker(None, &["network", "rm", &net]).await.map(drop)
        })
        .await
    }

    /// Removes the service's containers on `node` by force until none is left.
    async fn cli_remove_containers(&self, b: &RawService, node: &Node) -> anyhow::Result<()> {
        let by_service = format!("label={SERVICE_NAME_LABEL}={}", b.name);
        let deadline = Instant::now() + RUN_WAIT;
        loop {
            let (_, out) = docker(Some(&node.endpoint), &["ps", "-aq", "--filter", &by_service]).await?;
            let left = lines(&out);
            if left.is_empty() {
                return Ok(());
            }
            let mut args = vec!["rm", "--force"];
            args.extend(left.iter().map(String::as_str));
            // Swarm may remove one at the same moment: looked at again.
            let _ = docker(Some(&node.endpoint), &args).await;
            if Instant::now() > deadline {
                bail!("the containers of service {} did not go", b.name);
            }
        }
    }
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

/// The raw side's instance name.
const RAW: &str = "raw-swarm";

/// The types of the Swarm installations.
fn types() -> String {
    let caps: Vec<String> = kind::CAPS.iter().map(|c| format!("\"{c}\"")).collect();
    let command: Vec<String> = COMMAND.iter().map(|c| format!("\"{c}\"")).collect();
    [(TYPE, MEMORY), (TINY, TINY_MEMORY)]
        .iter()
        .map(|(name, memory)| {
            format!(
                "[types.{name}]\ndescription = \"benchmark on Swarm: Python's HTTP server over /data\"\n\
                 image = \"{IMAGE}\"\ninternal_port = {}\nssh = \"off\"\nmemory = \"{memory}\"\ncpus = {}\n\
                 pids_limit = {}\nrestart_policy = \"unless-stopped\"\ncap_add = [{}]\ncommand = [{}]\n\
                 strip_prefix = true\n",
                kind::INTERNAL_PORT,
                kind::CPUS,
                kind::PIDS,
                caps.join(", "),
                command.join(", "),
            )
        })
        .collect()
}

/// Runs the scenario: takes the engine alone, makes the cluster, measures, and removes everything
/// it made (the cluster leaves swarm mode) whatever happened.
pub async fn run(bench: &Bench, report: &mut Report) -> anyhow::Result<()> {
    // A swarm of a test (its fixture's marker names it) ends with that test: waited for below.
    if let Err(why) = swarm_state_ok(bench).await
        && !test_swarm()
    {
        report.section(KEY).note(format!("not measured: {why}"));
        return Ok(());
    }
    if within(CALL_LIMIT, "inspecting the image", async {
        Ok(bench.docker.inspect_image(IMAGE).await?)
    })
    .await
    .is_err()
    {
        report.section(KEY).note(format!(
            "not measured: image {IMAGE} is missing (images/build.sh builds it)"
        ));
        return Ok(());
    }
    progress!("swarm: waiting for the machine-wide engine lock (exclusive: no Docker test runs meanwhile)");
    let waited = Instant::now();
    let env = tokio::time::timeout(LOCK_WAIT, tokio::task::spawn_blocking(TestEnv::alone))
        .await
        .map_err(|_| {
            anyhow!(
                "the engine lock was not free within {} min",
                LOCK_WAIT.as_secs() / 60
            )
        })?
        .map_err(|e| anyhow!("taking the engine lock: {e}"))?;
    progress!(
        "swarm: holding the engine alone after {:.1} s",
        waited.elapsed().as_secs_f64()
    );
    // Checked again under the lock: no test can be in swarm mode now, so a swarm is someone
    // else's (or one a killed test run left, which the fixture leaves itself).
    if let Err(why) = swarm_state_ok(bench).await
        && !test_swarm()
    {
        report.section(KEY).note(format!("not measured: {why}"));
        return Ok(());
    }
    let started = Instant::now();
    let cluster = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let cluster = Cluster::start(&env, 2);
        cluster.load_image(IMAGE);
        cluster
    }))
    .map_err(|panic| anyhow!("the 3-node cluster did not start: {}", panic_text(&panic)))?;
    let cluster_ms = ms_since(started);
    progress!(
        "swarm: 3-node cluster up with {IMAGE} loaded in {:.1} s",
        cluster_ms / 1000.0
    );

    let result = measure(bench, report, &env, &cluster, cluster_ms).await;
    for name in ["swarm", "swarm-routes", "swarm-balance", RAW] {
        bench.remove_instance(&bench.label(name));
    }
    let torn = Instant::now();
    // Each may panic with what its cleanup could not remove: reported, not propagated.
    let cluster_gone = std::panic::catch_unwind(AssertUnwindSafe(move || drop(cluster)));
    let env_gone = std::panic::catch_unwind(AssertUnwindSafe(move || drop(env)));
    progress!(
        "swarm: cluster gone (swarm mode left, engine lock released) in {:.1} s",
        torn.elapsed().as_secs_f64()
    );
    for panic in [cluster_gone.err(), env_gone.err()].into_iter().flatten() {
        report
            .section(KEY)
            .note(format!("the cluster's cleanup reported: {}", panic_text(&panic)));
    }
    result
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic".to_owned())
}

/// Ok when the engine is out of swarm mode; else why the scenario does not run.
async fn swarm_state_ok(bench: &Bench) -> Result<(), String> {
    let info = within(CALL_LIMIT, "docker info", async {
        Ok(bench.docker.info().await?)
    })
    .await
    .map_err(|e| format!("{e:#}"))?;
    let state = info
        .swarm
        .and_then(|s| s.local_node_state)
        .map(|s| s.to_string())
        .unwrap_or_default();
    if state == "inactive" || state.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the engine is in swarm mode already (state {state}) and the bench did not put it there; it \
             makes its own 3-node swarm and never joins or leaves one it did not make (`docker swarm leave \
             --force` if that swarm is not needed)"
        ))
    }
}

/// Whether the swarm there is a test's (the fixture's marker names its owner): before the lock a
/// running test's, which leaves it when it ends; under the lock one a killed test run left, which
/// the fixture leaves itself.
fn test_swarm() -> bool {
    let marker = std::env::temp_dir()
        .join("cm-test-slots")
        .join("swarm-initiated-by");
    std::fs::read_to_string(marker).is_ok_and(|m| !m.trim().is_empty())
}

async fn measure(
    bench: &Bench,
    report: &mut Report,
    env: &TestEnv,
    cluster: &Cluster<'_>,
    cluster_ms: f64,
) -> anyhow::Result<()> {
    let manager = bench.docker.clone();
    let image_id = within(CALL_LIMIT, "inspecting the image", async {
        Ok(manager.inspect_image(IMAGE).await?)
    })
    .await?
    .id
    .context("an image without an id")?;
    let mut nodes = Vec::new();
    for node in cluster.nodes() {
        let engine = if node.container.is_none() {
            manager.clone()
        } else {
            Docker::connect_with_unix(&node.endpoint, CALL_LIMIT.as_secs(), bollard::API_DEFAULT_VERSION)?
                .negotiate_version()
                .await
                .with_context(|| format!("connecting to the engine of {}", node.name))?
        };
        nodes.push(Node {
            name: node.name.clone(),
            hostname: node.hostname.clone(),
            address: node.address.clone(),
            endpoint: node.endpoint.clone(),
            engine,
        });
    }
    let endpoints: String = cluster
        .endpoints()
        .iter()
        .map(|(host, endpoint)| format!("\"{host}\" = \"{endpoint}\"\n"))
        .collect();
    let world = World {
        bench,
        manager,
        image_id,
        nodes,
        fixture_labels: vec![
            (cm_testkit::TEST_LABEL.to_owned(), env.run.clone()),
            (cm_testkit::OWNER_LABEL.to_owned(), cm_testkit::owner_id()),
        ],
        runtime_toml: format!("[runtime]\nkind = \"swarm\"\n[runtime.nodes]\n{endpoints}"),
        raws: AtomicU32::new(0),
    };
    report.section(KEY).push(Row::new(
        "3-node test cluster up, the image loaded on both workers (cm-testkit's fixture, once)",
        "ms",
        vec![],
        vec![cluster_ms],
    ));
    let cm = bench.instance_labelled(
        "swarm",
        CM_PORTS,
        CM_SUBNETS,
        &world.fixture_labels,
        &format!("{}{}", types(), world.runtime_toml),
    )?;
    create_delete(&world, report, &cm).await?;
    report.save_partial();
    first_200(&world, report).await?;
    report.save_partial();
    moves(&world, report, &cm).await?;
    report.save_partial();
    balance(&world, report).await
}

/// One `cm create --node` with bollard's request log on (`CM_LOG=bollard::docker=debug`, each
/// engine request's path with a timestamp), untimed against anything: where its time goes. A
/// row: cm's wall time, with the requests and the phases in its detail; the engine column is the
/// same work through the API, split the same way (before `service create`, after it).
async fn profile_create(world: &World<'_>, cm: &Cm, node: &Node) -> anyhow::Result<Row> {
    let user = world.bench.user();
    let mut command = tokio::process::Command::new(&world.bench.cm_bin);
    command
        .args(["create", &user, TYPE, "--node", &node.hostname])
        .envs(cm.vars())
        .env("CM_LOG", "warn,bollard::docker=debug")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let spawned = std::time::SystemTime::now();
    let start = Instant::now();
    let out = within(CM_LIMIT, "a profiled cm create", async {
        Ok(command.output().await?)
    })
    .await?;
    let total = ms_since(start);
    if !out.status.success() {
        bail!(
            "the profiled cm create failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let requests = engine_requests(&String::from_utf8_lossy(&out.stderr), spawned);
    cm_run(cm, &["delete", &format!("{user}_{TYPE}"), "--force", "--purge"]).await?;
    let at = |path: &str| {
        requests
            .iter()
            .find(|(_, p)| p.starts_with(path))
            .map(|(ms, _)| *ms)
    };
    let created = at("/services/create").unwrap_or(f64::NAN);
    let scaled = requests
        .iter()
        .find(|(_, p)| p.starts_with("/services/") && p.contains("/update"))
        .map_or(f64::NAN, |(ms, _)| *ms);
    let task_polls = requests
        .iter()
        .filter(|(ms, p)| p.starts_with("/tasks") && *ms >= scaled)
        .count();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (_, path) in &requests {
        *counts.entry(request_kind(path)).or_default() += 1;
    }
    let first = requests.first().map_or(f64::NAN, |(ms, _)| *ms);
    // Seen running: the last task listing before the service is read again for the record.
    let seen = requests
        .iter()
        .skip_while(|(ms, _)| *ms <= scaled)
        .take_while(|(_, p)| !(p.starts_with("/services/") || p.contains("/services/")))
        .filter(|(_, p)| p.contains("/tasks"))
        .last()
        .map_or(f64::NAN, |(ms, _)| *ms);
    // The raw side split the same way: network and volume, then the service until its task runs.
    let b = world.raw(TYPE);
    let start = Instant::now();
    world.api_prepare(&b, node).await?;
    let prepared = ms_since(start);
    let spec = world.spec(&b, Some(node), 1, MEMORY_BYTES, true);
    let id = world.create_service(spec).await?;
    let raw_created = ms_since(start);
    world.wait_running(&id).await?;
    let raw_total = ms_since(start);
    world.api_delete(&b, &id, node).await?;
    progress!(
        "swarm: profiled cm create: {total:.0} ms, {} engine requests; first request at {first:.0} ms, service create at {created:.0} ms, scale to 1 at {scaled:.0} ms, {task_polls} task listings after it",
        requests.len()
    );
    Ok(Row::new(
        "profile of one `cm create --node` (bollard's request log) vs the same through the API: total",
        "ms",
        vec![total],
        vec![raw_total],
    )
    .detail(json!({
        "cm": {
            "requests": requests.len(),
            "first_request_ms": first,
            "service_create_ms": created,
            "scale_to_1_ms": scaled,
            "task_listings_after_scale": task_polls,
            "task_seen_running_ms": seen,
            "by_kind": counts,
            "timeline": requests.iter().map(|(ms, p)| format!("{ms:.1} {p}")).collect::<Vec<_>>(),
        },
        "engine": {
            "network_and_volume_ms": prepared,
            "service_create_answered_ms": raw_created,
            "task_running_ms": raw_total,
        },
    })))
}

/// The engine requests in a `cm` process's log (bollard logs each request's path at debug):
/// (ms after `spawned`, path).
fn engine_requests(log: &str, spawned: std::time::SystemTime) -> Vec<(f64, String)> {
    log.lines()
        .filter_map(|line| {
            let line = without_ansi(line);
            let (stamp, rest) = line.trim().split_once(' ')?;
            let (_, uri) = rest.split_once("bollard::docker: ")?;
            // Requests only (bollard also logs the answers it decoded).
            if !["unix://", "http://", "https://", "tcp://", "/"]
                .iter()
                .any(|scheme| uri.starts_with(scheme))
            {
                return None;
            }
            // `unix://<socket>/v1.41/services/create?...`: the path from the version on.
            let path = match uri.split_once("://") {
                Some((_, after)) => &after[after.find('/')?..],
                None => uri,
            };
            if !path.starts_with('/') {
                return None;
            }
            let at = humantime::parse_rfc3339_weak(stamp.trim_end_matches('Z')).ok()?;
            let ms = at.duration_since(spawned).ok()?.as_secs_f64() * 1000.0;
            Some((ms, path.trim().to_owned()))
        })
        .collect()
}

/// `text` without terminal colour sequences (`ESC [ ... m`).
fn without_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A request's path without ids, names and the query (`/services/{id}/update`).
fn request_kind(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let path = path
        .split_once("/v1.")
        .map_or(path, |(_, rest)| rest.split_once('/').map_or(rest, |(_, p)| p));
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let named = [
        "services",
        "networks",
        "volumes",
        "containers",
        "images",
        "nodes",
        "tasks",
    ];
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        out.push('/');
        let id_slot = i == 1 && named.contains(&parts[0]) && !["create", "json", "prune"].contains(part);
        out.push_str(if id_slot { "{id}" } else { part });
    }
    out
}

/// `cm args...` bounded by [`CM_LIMIT`].
async fn cm_run(cm: &Cm, args: &[&str]) -> anyhow::Result<crate::world::Finished> {
    within(CM_LIMIT, &format!("cm {}", args.join(" ")), cm.run(args)).await
}

/// Part 1: create to running and delete.
async fn create_delete(world: &World<'_>, report: &mut Report, cm: &Cm) -> anyhow::Result<()> {
    let pairs = if world.bench.quick { 3 } else { 10 };
    let node = world.worker(1).clone();
    let create_cm = |user: String| {
        let node = node.hostname.clone();
        async move {
            cm_run(cm, &["create", &user, TYPE, "--node", &node])
                .await
                .map(|f| f.ms)
        }
    };
    let delete_cm = |user: String| async move {
        cm_run(cm, &["delete", &format!("{user}_{TYPE}"), "--force", "--purge"])
            .await
            .map(|f| f.ms)
    };

    progress!(
        "swarm: create: warming up (one of each, untimed) on {}",
        node.hostname
    );
    let user = world.bench.user();
    create_cm(user.clone()).await?;
    delete_cm(user).await?;
    let b = world.raw(TYPE);
    let id = world.api_create(&b, &node).await?;
    world.api_delete(&b, &id, &node).await?;
    let b = world.raw(TYPE);
    world.cli_create(&b, &node).await?;
    world.cli_delete(&b, &node).await?;

    let (mut create, mut delete): ([Vec<f64>; 4], [Vec<f64>; 3]) = Default::default();
    for i in 0..pairs {
        let user = world.bench.user();
        let by_api = world.raw(TYPE);
        let by_cli = world.raw(TYPE);
        let scaled = world.raw(TYPE);
        let (mut service, mut scaled_service) = (String::new(), String::new());
        for side in rotate(i, 4) {
            let ms = match side {
                0 => create_cm(user.clone()).await?,
                1 => {
                    let start = Instant::now();
                    service = world.api_create(&by_api, &node).await?;
                    ms_since(start)
                }
                2 => timed(world.cli_create(&by_cli, &node)).await?,
                _ => {
                    let start = Instant::now();
                    scaled_service = world.api_create_scaled(&scaled, &node).await?;
                    ms_since(start)
                }
            };
            create[side].push(ms);
        }
        for side in rotate(i, 3) {
            let ms = match side {
                0 => delete_cm(user.clone()).await?,
                1 => timed(world.api_delete(&by_api, &service, &node)).await?,
                _ => timed(world.cli_delete(&by_cli, &node)).await?,
            };
            delete[side].push(ms);
        }
        world.api_delete(&scaled, &scaled_service, &node).await?;
        progress!(
            "swarm: create {}/{pairs}: create cm {:.0} ms, API {:.0} ms, CLI {:.0} ms, API in cm's order {:.0} ms; delete cm {:.0} ms, API {:.0} ms, CLI {:.0} ms",
            i + 1,
            create[0][i],
            create[1][i],
            create[2][i],
            create[3][i],
            delete[0][i],
            delete[1][i],
            delete[2][i]
        );
    }
    let profile = profile_create(world, cm, &node).await?;
    let [cm_create, api_create, cli_create, scaled_create] = create;
    let [cm_delete, api_delete, cli_delete] = delete;
    let section = report.section(KEY);
    section.push(Row::new(
        "create to running on a worker: `cm create --node` vs network, volume and `service create` through the engine's API, until the task runs",
        "ms",
        cm_create.clone(),
        api_create.clone(),
    ));
    section.push(Row::new(
        "create to running on a worker: `cm create --node` vs docker CLI (network create, volume create on the node, service create --detach, service ps until running)",
        "ms",
        cm_create,
        cli_create,
    ));
    section.push(Row::new(
        "… the same through the API in cm-swarm's order (service with 0 replicas, read back, updated to 1 replica, tasks until one runs) vs the API's direct create (1 replica)",
        "ms",
        scaled_create,
        api_create.clone(),
    ));
    section.push(profile);
    section.push(Row::new(
        "delete (service, its container by force, volume, network): `cm delete --force --purge` vs the engine's API",
        "ms",
        cm_delete.clone(),
        api_delete,
    ));
    section.push(Row::new(
        "delete: `cm delete --force --purge` vs docker CLI (service rm, rm -f on the node, volume rm, network rm)",
        "ms",
        cm_delete,
        cli_delete,
    ));
    Ok(())
}

/// Part 2: create to the first 200, cm through nginx against the raw service on its node's port.
async fn first_200(world: &World<'_>, report: &mut Report) -> anyhow::Result<()> {
    let Some(api_bin) = world.bench.api_bin.clone() else {
        report
            .section(KEY)
            .note("create to the first 200 not measured: routing needs cm-api (its route check), which is not built");
        return Ok(());
    };
    if find_nginx().is_none() {
        report
            .section(KEY)
            .note("create to the first 200 not measured: nginx is not installed");
        return Ok(());
    }
    let pairs = if world.bench.quick { 3 } else { 10 };
    let node = world.worker(1).clone();
    let api_addr = free_addr()?;
    let cm = world.bench.instance_labelled(
        "swarm-routes",
        ROUTE_PORTS,
        ROUTE_SUBNETS,
        &world.fixture_labels,
        &format!("{}{}", types(), world.runtime_toml),
    )?;
    let enabled = cm.dir().join("box-enabled");
    std::fs::create_dir_all(&enabled)?;
    let nginx = start_nginx("dynamic", api_addr, &enabled)?;
    let cm = world.bench.instance_labelled(
        "swarm-routes",
        ROUTE_PORTS,
        ROUTE_SUBNETS,
        &world.fixture_labels,
        &format!("{}{}{}", nginx.dynamic_config_toml(), types(), world.runtime_toml),
    )?;
    let api = ApiServer::start_on(&api_bin, &cm, "swarm-routes", api_addr, &random_key()?).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let via = Endpoint::Tcp(SocketAddr::from(([127, 0, 0, 1], nginx.port)));
    let auth = [("Authorization", api.authorization.as_str())];
    let result = async {
        let cm_side = |user: String| {
            let (cm, via, node) = (&cm, &via, node.hostname.clone());
            async move {
                let start = Instant::now();
                cm_run(cm, &["create", &user, TYPE, "--node", &node]).await?;
                let returned = ms_since(start);
                let first = wait_for(
                    via,
                    &route(&user, TYPE),
                    &auth,
                    |s| s == 200,
                    FIRST_200_LIMIT,
                    POLL,
                )
                .await
                .with_context(|| {
                    format!(
                        "no 200 through nginx for {user} within {} s",
                        FIRST_200_LIMIT.as_secs()
                    )
                })?;
                let total = ms_since(start);
                cm_run(cm, &["delete", &format!("{user}_{TYPE}"), "--force", "--purge"]).await?;
                anyhow::Ok((returned, first.0, total))
            }
        };
        let raw_side = |b: RawService| {
            let node = &node;
            async move {
                let start = Instant::now();
                let id = world.api_create_service(&b, node).await?;
                let returned = ms_since(start);
                let direct = Endpoint::Tcp(SocketAddr::new(node.address.parse()?, b.port));
                let first = wait_for(&direct, "/", &[], |s| s == 200, FIRST_200_LIMIT, POLL)
                    .await
                    .with_context(|| {
                        format!(
                            "no 200 on {}:{} within {} s",
                            node.address,
                            b.port,
                            FIRST_200_LIMIT.as_secs()
                        )
                    })?;
                let total = ms_since(start);
                world.api_delete(&b, &id, node).await?;
                anyhow::Ok((returned, first.0, total))
            }
        };
        progress!(
            "swarm: first 200: warming up (one of each, untimed); nginx on 127.0.0.1:{}",
            nginx.port
        );
        cm_side(world.bench.user()).await?;
        raw_side(world.raw(TYPE)).await?;
        let mut sides: [Vec<(f64, f64, f64)>; 2] = Default::default();
        for i in 0..pairs {
            for side in rotate(i, 2) {
                let sample = if side == 0 {
                    cm_side(world.bench.user()).await?
                } else {
                    raw_side(world.raw(TYPE)).await?
                };
                sides[side].push(sample);
            }
            progress!(
                "swarm: first 200 {}/{pairs}: cm through nginx {:.0} ms, raw on the node's port {:.0} ms",
                i + 1,
                sides[0][i].2,
                sides[1][i].2
            );
        }
        anyhow::Ok(sides)
    }
    .await;
    let log = api.log_text();
    api.stop().await;
    drop(nginx);
    let [cm_samples, raw_samples] = match result {
        Ok(sides) => sides,
        Err(e) => {
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            progress!("swarm: last lines of cm-api's log: {tail:?}");
            return Err(e);
        }
    };
    let pick = |v: &[(f64, f64, f64)], f: fn(&(f64, f64, f64)) -> f64| v.iter().map(f).collect::<Vec<_>>();
    let section = report.section(KEY);
    section.push(Row::new(
        "create started → first 200: `cm create --node` with dynamic routing, then GET through nginx (cm-api's route check, the node's address and port) vs network, volume and `service create` through the API, then GET on the node's published port",
        "ms",
        pick(&cm_samples, |s| s.2),
        pick(&raw_samples, |s| s.2),
    ));
    section.push(Row::new(
        "… of which until the create returned (cm: `cm create` with the task running; engine: `service create` answered, task not yet started)",
        "ms",
        pick(&cm_samples, |s| s.0),
        pick(&raw_samples, |s| s.0),
    ));
    section.push(Row::new(
        "… of which from the create's return to the first 200",
        "ms",
        pick(&cm_samples, |s| s.1),
        pick(&raw_samples, |s| s.1),
    ));
    Ok(())
}

/// The running container of the raw service on `node`.
async fn raw_container(b: &RawService, node: &Node) -> anyhow::Result<String> {
    let by_service = format!("label={SERVICE_NAME_LABEL}={}", b.name);
    let (_, id) = docker(
        Some(&node.endpoint),
        &["ps", "-q", "--filter", &by_service, "--filter", "status=running"],
    )
    .await?;
    let id = lines(&id)
        .into_iter()
        .next()
        .context("the raw service's container is not running")?;
    Ok(id)
}

/// Writes `MOVE_MIB` MiB of random data into `/data/blob` of the raw service's container on `node`.
async fn raw_fill(b: &RawService, node: &Node) -> anyhow::Result<()> {
    let id = raw_container(b, node).await?;
    let dd = format!("dd if=/dev/urandom of=/data/blob bs=1M count={MOVE_MIB} status=none && sync");
    docker(Some(&node.endpoint), &["exec", &id, "sh", "-c", &dd]).await?;
    Ok(())
}

/// The size of `/data/blob` in the raw service's running container on `node`.
async fn raw_blob_size(b: &RawService, node: &Node) -> anyhow::Result<u64> {
    let id = raw_container(b, node).await?;
    let (_, size) = docker(
        Some(&node.endpoint),
        &["exec", &id, "stat", "-c", "%s", "/data/blob"],
    )
    .await?;
    Ok(size.trim().parse()?)
}

/// The raw move by hand with the docker CLI: total ms and downtime ms (from the scale to 0 until
/// the task runs on the new node).
async fn raw_move(world: &World<'_>, b: &RawService, from: &Node, to: &Node) -> anyhow::Result<(f64, f64)> {
    let start = Instant::now();
    docker(None, &["service", "scale", "--detach", &format!("{}=0", b.name)]).await?;
    // Stopped: no running container of the service left on the old node.
    let by_service = format!("label={SERVICE_NAME_LABEL}={}", b.name);
    let deadline = Instant::now() + RUN_WAIT;
    loop {
        let (_, out) = docker(Some(&from.endpoint), &["ps", "-q", "--filter", &by_service]).await?;
        if lines(&out).is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!("service {} did not stop", b.name);
        }
        tokio::time::sleep(CLI_POLL).await;
    }
    let label_args: Vec<String> = {
        let mut sorted: Vec<_> = b.owner_labels.iter().collect();
        sorted.sort();
        sorted
            .into_iter()
            .flat_map(|(k, v)| ["--label".to_owned(), format!("{k}={v}")])
            .collect()
    };
    let helper = |volume_mode: &str| {
        let mut args = vec!["create".to_owned(), "--network".to_owned(), "none".to_owned()];
        args.extend(label_args.iter().cloned());
        args.extend([
            "--volume".to_owned(),
            format!("{}:/data{volume_mode}", b.volume),
            world.image_id.clone(),
            "true".to_owned(),
        ]);
        args
    };
    let (_, reader) = docker(Some(&from.endpoint), &strs(&helper(":ro"))).await?;
    let mut volume = vec!["volume".to_owned(), "create".to_owned()];
    volume.extend(label_args.iter().cloned());
    volume.push(b.volume.clone());
    docker(Some(&to.endpoint), &strs(&volume)).await?;
    let (_, writer) = docker(Some(&to.endpoint), &strs(&helper(""))).await?;
    let pipe = format!(
        "set -o pipefail; docker -H '{}' cp '{reader}:/data' - | docker -H '{}' cp - '{writer}:/'",
        from.endpoint, to.endpoint
    );
    let copied = within(CALL_LIMIT, "the tar stream between the nodes", async {
        let out = tokio::process::Command::new("bash")
            .args(["-c", &pipe])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await?;
        if !out.status.success() {
            bail!(
                "the tar stream failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    })
    .await;
    docker(Some(&from.endpoint), &["rm", &reader]).await?;
    docker(Some(&to.endpoint), &["rm", &writer]).await?;
    copied?;
    docker(
        None,
        &[
            "service",
            "update",
            "--detach",
            "--constraint-rm",
            &format!("node.hostname=={}", from.hostname),
            "--constraint-add",
            &format!("node.hostname=={}", to.hostname),
            &b.name,
        ],
    )
    .await?;
    docker(None, &["service", "scale", "--detach", &format!("{}=1", b.name)]).await?;
    world.cli_wait_running(&b.name, &to.hostname).await?;
    let downtime = ms_since(start);
    // The old copy: the stopped task's container (if Swarm keeps it) holds it.
    world.cli_remove_containers(b, from).await?;
    docker(Some(&from.endpoint), &["volume", "rm", &b.volume]).await?;
    Ok((ms_since(start), downtime))
}

/// Part 3: `cm move` of a container with 100 MiB of data between the workers, against the same by
/// hand.
async fn moves(world: &World<'_>, report: &mut Report, cm: &Cm) -> anyhow::Result<()> {
    let rounds = if world.bench.quick { 2 } else { 6 };
    let (w1, w2) = (world.worker(1).clone(), world.worker(2).clone());
    let user = world.bench.user();
    let name = format!("{user}_{TYPE}");
    progress!(
        "swarm: move: two containers on {} with {MOVE_MIB} MiB each",
        w1.hostname
    );
    cm_run(cm, &["create", &user, TYPE, "--node", &w1.hostname]).await?;
    let dd = format!("dd if=/dev/urandom of=/data/blob bs=1M count={MOVE_MIB} status=none && sync");
    cm_run(cm, &["exec", &name, "sh", "-c", &dd]).await?;
    let b = world.raw(TYPE);
    let raw_id = world.api_create(&b, &w1).await?;
    raw_fill(&b, &w1).await?;

    let expected = MOVE_MIB << 20;
    let (mut cm_ms, mut cm_down, mut raw_ms, mut raw_down) = (vec![], vec![], vec![], vec![]);
    let mut copied = Vec::new();
    for i in 0..rounds {
        let (from, to) = if i % 2 == 0 { (&w1, &w2) } else { (&w2, &w1) };
        for side in rotate(i / 2, 2) {
            if side == 0 {
                let done = cm_run(cm, &["--json", "move", &name, "--node", &to.hostname]).await?;
                let answer: Value = serde_json::from_str(&done.stdout).context("cm move's JSON")?;
                cm_ms.push(done.ms);
                cm_down.push(answer["downtime_seconds"].as_f64().unwrap_or(f64::NAN) * 1000.0);
                copied.push(answer["copied_bytes"].as_f64().unwrap_or(f64::NAN));
                let size = cm_run(cm, &["exec", &name, "stat", "-c", "%s", "/data/blob"]).await?;
                if size.stdout.trim().parse::<u64>().ok() != Some(expected) {
                    bail!(
                        "after cm's move the blob is {} bytes, not {expected}",
                        size.stdout.trim()
                    );
                }
            } else {
                let (ms, down) = raw_move(world, &b, from, to).await?;
                raw_ms.push(ms);
                raw_down.push(down);
                let size = raw_blob_size(&b, to).await?;
                if size != expected {
                    bail!("after the raw move the blob is {size} bytes, not {expected}");
                }
            }
        }
        progress!(
            "swarm: move {}/{rounds} ({} → {}): cm {:.0} ms (downtime {:.0} ms), by hand {:.0} ms (downtime {:.0} ms)",
            i + 1,
            from.name,
            to.name,
            cm_ms[i],
            cm_down[i],
            raw_ms[i],
            raw_down[i]
        );
    }
    // Gone before the placement, whose Swarm side counts every task on a node.
    cm_run(cm, &["delete", &name, "--force", "--purge"]).await?;
    world
        .api_delete(&b, &raw_id, if rounds % 2 == 0 { &w1 } else { &w2 })
        .await?;
    let section = report.section(KEY);
    section.push(
        Row::new(
            format!(
                "`cm move --node` between the workers, {MOVE_MIB} MiB in the volume, vs by hand with the docker CLI (service scale 0, wait, helper containers, `docker cp` tar stream between the nodes' engines, constraint update, scale 1, wait running, old volume rm)"
            ),
            "ms",
            cm_ms,
            raw_ms,
        )
        .detail(json!({ "copied_bytes": copied })),
    );
    section.push(Row::new(
        "… downtime: cm's own report (`downtime_seconds`: from its stop to the start on the new node) vs by hand (scale 0 until the task runs on the new node)",
        "ms",
        cm_down,
        raw_down,
    ));
    Ok(())
}

/// Part 4: where N small containers go: cm's placement against Swarm's scheduler.
async fn balance(world: &World<'_>, report: &mut Report) -> anyhow::Result<()> {
    let n = if world.bench.quick { 12 } else { 60 };
    let cm = world.bench.instance_labelled(
        "swarm-balance",
        BALANCE_PORTS,
        BALANCE_SUBNETS,
        &world.fixture_labels,
        &format!("{}{}", types(), world.runtime_toml),
    )?;
    progress!("swarm: balance: {n} `cm create` without --node ({TINY_MEMORY} each)");
    let mut cm_create = Vec::new();
    for i in 0..n {
        let user = world.bench.user();
        cm_create.push(cm_run(&cm, &["create", &user, TINY]).await?.ms);
        if (i + 1) % 10 == 0 {
            progress!("swarm: balance: {}/{n} cm containers", i + 1);
        }
    }
    let nodes: Value = serde_json::from_str(&cm_run(&cm, &["--json", "nodes"]).await?.stdout)?;
    let mut cm_counts: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for node in nodes.as_array().cloned().unwrap_or_default() {
        cm_counts.insert(
            node["name"].as_str().unwrap_or_default().to_owned(),
            (
                node["containers"].as_f64().unwrap_or(0.0),
                node["reserved_memory_bytes"].as_f64().unwrap_or(0.0) / 1024.0 / 1024.0,
            ),
        );
    }
    let cm_tasks = running_per_node(world, |labels| {
        labels.get(INSTANCE_LABEL).map(String::as_str) == Some(world.bench.label("swarm-balance").as_str())
    })
    .await?;
    world.bench.remove_instance(&world.bench.label("swarm-balance"));

    progress!("swarm: balance: {n} services through the API without a constraint ({TINY_MEMORY} each)");
    let (mut ids, mut users) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let b = world.raw(TINY);
        users.push(b.labels.get("user-id").cloned().unwrap_or_default());
        let spec = world.spec(&b, None, 1, TINY_MEMORY_BYTES, false);
        let id = world.create_service(spec).await?;
        ids.push(id);
    }
    for id in &ids {
        world.wait_running(id).await?;
    }
    let raw_tasks = running_per_node(world, |labels| {
        labels
            .get("user-id")
            .is_some_and(|user| users.iter().any(|u| u == user))
    })
    .await?;
    for id in &ids {
        let _ = within(CALL_LIMIT, "removing a service", async {
            Ok(world.manager.delete_service(id).await?)
        })
        .await;
    }
    world.bench.remove_instance(&world.bench.label(RAW));

    let section = report.section(KEY);
    let mut cm_all = Vec::new();
    let mut raw_all = Vec::new();
    for node in &world.nodes {
        let (count, reserved) = cm_counts.get(&node.hostname).copied().unwrap_or((0.0, 0.0));
        let seen = cm_tasks.get(&node.hostname).copied().unwrap_or(0.0);
        let raw = raw_tasks.get(&node.hostname).copied().unwrap_or(0.0);
        cm_all.push(count);
        raw_all.push(raw);
        section.push(
            Row::new(
                format!(
                    "placement of {n}: containers on {} (cm's placement vs Swarm's scheduler)",
                    node.name
                ),
                "containers",
                vec![count],
                vec![raw],
            )
            .detail(json!({ "hostname": node.hostname, "cm_tasks_running_there": seen })),
        );
        section.push(Row::new(
            format!("placement of {n}: memory limits on {} (reserved by cm's records; the engine's: its tasks' limits)", node.name),
            "MiB",
            vec![reserved],
            vec![raw * (TINY_MEMORY_BYTES as f64) / 1024.0 / 1024.0],
        ));
    }
    let spread = |v: &[f64]| {
        let max = v.iter().copied().fold(f64::MIN, f64::max);
        let min = v.iter().copied().fold(f64::MAX, f64::min);
        (max / min, stddev(v))
    };
    let (cm_ratio, cm_sd) = spread(&cm_all);
    let (raw_ratio, raw_sd) = spread(&raw_all);
    section.push(Row::new(
        format!("placement of {n}: max/min containers per node"),
        "×",
        vec![cm_ratio],
        vec![raw_ratio],
    ));
    section.push(Row::new(
        format!("placement of {n}: standard deviation of containers per node"),
        "σ",
        vec![cm_sd],
        vec![raw_sd],
    ));
    let cm_placed: f64 = cm_tasks.values().sum();
    if (cm_placed - n as f64).abs() > 0.5 {
        section.note(format!(
            "placement: {cm_placed} of cm's {n} containers had a running task when counted"
        ));
    }
    section.push(Row::new(
        format!("`cm create` without --node while placing {n} ({TINY_MEMORY} each), containers 1-{n}"),
        "ms",
        cm_create,
        vec![],
    ));
    Ok(())
}

fn stddev(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt()
}

/// The running tasks whose container labels pass `ours`, per node hostname.
async fn running_per_node(
    world: &World<'_>,
    ours: impl Fn(&HashMap<String, String>) -> bool,
) -> anyhow::Result<BTreeMap<String, f64>> {
    let filters = HashMap::from([("desired-state".to_owned(), vec!["running".to_owned()])]);
    let options = ListTasksOptionsBuilder::new().filters(&filters).build();
    let tasks = within(CALL_LIMIT, "listing tasks", async {
        Ok(world.manager.list_tasks(Some(options)).await?)
    })
    .await?;
    let node_names: HashMap<String, String> = within(CALL_LIMIT, "listing nodes", async {
        Ok(world
            .manager
            .list_nodes(None::<bollard::query_parameters::ListNodesOptions>)
            .await?)
    })
    .await?
    .into_iter()
    .filter_map(|n| Some((n.id?, n.description?.hostname?)))
    .collect();
    let mut counts = BTreeMap::new();
    for task in tasks {
        let ours = task
            .spec
            .as_ref()
            .and_then(|s| s.container_spec.as_ref())
            .and_then(|c| c.labels.as_ref())
            .is_some_and(&ours);
        let running = task.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING);
        if ours
            && running
            && let Some(host) = task.node_id.as_ref().and_then(|id| node_names.get(id))
        {
            *counts.entry(host.clone()).or_insert(0.0) += 1.0;
        }
    }
    Ok(counts)
}

/// The rows of this section whose name starts with `prefix`.
fn rows_of<'a>(report: &'a Report, prefix: &str) -> Vec<&'a Row> {
    super::rows(report, KEY, prefix)
}

fn first_row<'a>(report: &'a Report, prefix: &str) -> Option<&'a Row> {
    rows_of(report, prefix).into_iter().next()
}

/// The summary's lines about Swarm.
pub fn summary_lines(report: &Report) -> Vec<String> {
    let mut lines = Vec::new();
    let ratio = |r: &Row| r.ratio.unwrap_or(f64::NAN);
    let (cm, engine) = (super::cm_median, super::engine_median);
    if let Some(api) = first_row(
        report,
        "create to running on a worker: `cm create --node` vs network",
    ) {
        let cli = first_row(
            report,
            "create to running on a worker: `cm create --node` vs docker CLI",
        );
        lines.push(format!(
            "Swarm (3 nodes), create to running on a worker: `cm create --node` {} against {} for the network, \
             volume and service made through the engine's API: ratio {:.2} (goal ≤ 1.10: {}); against the \
             `docker` commands (until `docker service ps` says running): ratio {:.2}.",
            fmt(cm(api), "ms"),
            fmt(engine(api), "ms"),
            ratio(api),
            super::goal(ratio(api) <= 1.10),
            cli.map_or(f64::NAN, ratio),
        ));
    }
    if let Some(api) = first_row(report, "delete (service, its container by force") {
        let cli = first_row(report, "delete: `cm delete --force --purge` vs docker CLI");
        lines.push(format!(
            "Swarm, delete (service, volume, network): {} against {} through the API (ratio {:.2}), {} for the \
             `docker` commands (ratio {:.2}).",
            fmt(cm(api), "ms"),
            fmt(engine(api), "ms"),
            ratio(api),
            fmt(cli.map_or(f64::NAN, engine), "ms"),
            cli.map_or(f64::NAN, ratio),
        ));
    }
    if let Some(row) = first_row(report, "create started → first 200") {
        lines.push(format!(
            "Swarm, create to the first 200: through nginx (cm-api's route check) {} against {} for the service \
             made through the API and its node's published port: ratio {:.2}.",
            fmt(cm(row), "ms"),
            fmt(engine(row), "ms"),
            ratio(row),
        ));
    }
    if let Some(row) = first_row(report, "`cm move --node`") {
        let down = first_row(report, "… downtime");
        lines.push(format!(
            "Swarm, `cm move` of a container with 100 MiB between two workers: {} against {} by hand with the \
             `docker` CLI (ratio {:.2}); downtime {} (cm's own report) against {}.",
            fmt(cm(row), "ms"),
            fmt(engine(row), "ms"),
            ratio(row),
            fmt(down.map_or(f64::NAN, cm), "ms"),
            fmt(down.map_or(f64::NAN, engine), "ms"),
        ));
    }
    let placed = rows_of(report, "placement of ");
    let counts: Vec<&&Row> = placed
        .iter()
        .filter(|r| r.what.contains(": containers on "))
        .collect();
    if !counts.is_empty() {
        let n = counts
            .first()
            .and_then(|r| r.what.split(':').next())
            .unwrap_or("placement");
        let per = |f: fn(&Row) -> f64| {
            counts
                .iter()
                .map(|r| format!("{:.0}", f(r)))
                .collect::<Vec<_>>()
                .join("/")
        };
        let spread = first_row(report, &format!("{n}: max/min"));
        lines.push(format!(
            "Swarm, {n} over 3 nodes (manager/w1/w2): cm's placement {} (max/min {:.2}), Swarm's own scheduler {} \
             (max/min {:.2}).",
            per(super::cm_median),
            spread.map_or(f64::NAN, cm),
            per(super::engine_median),
            spread.map_or(f64::NAN, engine),
        ));
    }
    lines
}

/// The discussion of the Swarm figures.
pub fn paragraph(report: &Report, out: &mut String) {
    let (cm, engine) = (super::cm_median, super::engine_median);
    let Some(api) = first_row(
        report,
        "create to running on a worker: `cm create --node` vs network",
    ) else {
        return;
    };
    let ratio = api.ratio.unwrap_or(f64::NAN);
    let cli = first_row(
        report,
        "create to running on a worker: `cm create --node` vs docker CLI",
    );
    let _ = write!(
        out,
        "**Swarm: what cm adds, and why.** On the 3-node cluster a `cm create --node` took {} against {} for the \
         network, volume and service made through the engine's API from a warm process ({ratio:.2}, goal ≤ 1.10: \
         {}) and {} for the `docker` commands. ",
        fmt(cm(api), "ms"),
        fmt(engine(api), "ms"),
        super::goal(ratio <= 1.10),
        fmt(cli.map_or(f64::NAN, engine), "ms"),
    );
    if let Some(profile) = first_row(report, "profile of one `cm create --node`") {
        let d = &profile.detail;
        let num = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
        let raw_created = num(&d["engine"]["service_create_answered_ms"]);
        let raw_running = num(&d["engine"]["task_running_ms"]);
        let kinds: Vec<String> = d["cm"]["by_kind"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{} {k}", v.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        let created = num(&d["cm"]["service_create_ms"]);
        let scaled = num(&d["cm"]["scale_to_1_ms"]);
        // Seen running: the last task listing before the service was read again (from the timeline,
        // so that runs which did not store it are read the same way).
        let timeline: Vec<(f64, String)> = d["cm"]["timeline"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| {
                        let (ms, path) = e.as_str()?.split_once(' ')?;
                        Some((ms.parse().ok()?, path.to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        // After the last update: a scale answered "out of sequence" reads the service and updates again.
        let updated = timeline
            .iter()
            .filter(|(_, p)| p.contains("/update"))
            .map(|(ms, _)| *ms)
            .fold(scaled, f64::max);
        let seen = timeline
            .iter()
            .skip_while(|(ms, _)| *ms <= updated)
            .take_while(|(_, p)| !p.contains("/services/"))
            .filter(|(_, p)| p.contains("/tasks"))
            .last()
            .map_or(f64::NAN, |(ms, _)| *ms);
        let total = cm(profile);
        let _ = write!(
            out,
            "Most of either is Swarm's own scheduling: the raw service's task ran {} after its create was answered \
             (the manager allocates and schedules it, the worker's agent learns of it through the dispatcher and \
             starts the container on its engine); the API side's network and volume took {}. A profiled `cm create` \
             ({} in all; bollard's request log) made {} engine requests ({}): its first went out {} after the process \
             started; its service create at {} (the raw side's, with its network and volume, was answered at {}); \
             the scale to 1 replica at {}; it saw the task running at {} ({} task listings after the scale; the raw \
             side lists every 20 ms), and it exited {} after that, having read the service, its tasks and the nodes \
             again for the record. ",
            fmt(raw_running - raw_created, "ms"),
            fmt(num(&d["engine"]["network_and_volume_ms"]), "ms"),
            fmt(total, "ms"),
            d["cm"]["requests"].as_u64().unwrap_or(0),
            kinds.join(", "),
            fmt(num(&d["cm"]["first_request_ms"]), "ms"),
            fmt(created, "ms"),
            fmt(raw_created, "ms"),
            fmt(scaled, "ms"),
            fmt(seen, "ms"),
            d["cm"]["task_listings_after_scale"].as_u64().unwrap_or(0),
            fmt(total - seen, "ms"),
        );
    }
    out.push_str(SWARM_CAUSES);
    if let Some(order) = first_row(report, "… the same through the API in cm-swarm's order") {
        let extra = cm(api) - engine(api);
        let swarm_part = cm(order) - engine(order);
        let _ = write!(
            out,
            " How much of the difference is Swarm's and how much cm's: the same engine calls in cm-swarm's order \
             from the warm process (the service created with 0 replicas, read back and updated to 1 replica, then \
             its tasks listed every 20 ms) took {} against {} for the direct create with 1 replica ({:.2}). ",
            fmt(cm(order), "ms"),
            fmt(engine(order), "ms"),
            order.ratio.unwrap_or(f64::NAN),
        );
        if swarm_part > 0.05 * engine(api) {
            let _ = write!(
                out,
                "So of cm's {} over the direct create, about {} is Swarm starting a task later when a service is \
                 scaled up right after its create, and the remaining {} is cm's own process, checks, polling and \
                 records. ",
                fmt(extra, "ms"),
                fmt(swarm_part, "ms"),
                fmt(extra - swarm_part, "ms"),
            );
        } else {
            let _ = write!(
                out,
                "So the two-step create costs nothing measurable on Swarm's side: cm's {} over the direct create are \
                 cm's own process, checks, polling and records, and the creates that took about 2 s longer (the spread \
                 of cm's samples) point at ports. ",
                fmt(extra, "ms"),
            );
        }
        out.push_str(PORT_REUSE);
    }
    if let Some(row) = first_row(report, "create started → first 200") {
        let returned = first_row(report, "… of which until the create returned");
        let after = first_row(report, "… of which from the create's return");
        let _ = write!(
            out,
            " From the start of a create to the first 200 cm took {} through nginx against {} for the raw service on \
             its node's port ({:.2}): `cm create` returns once the task runs ({}), and the route answered {} later \
             (cm-api's route check answers the node's address and the published port from the store); the raw \
             `service create` is answered at once ({}) and its port answered {} later.",
            fmt(cm(row), "ms"),
            fmt(engine(row), "ms"),
            row.ratio.unwrap_or(f64::NAN),
            fmt(returned.map_or(f64::NAN, cm), "ms"),
            fmt(after.map_or(f64::NAN, cm), "ms"),
            fmt(returned.map_or(f64::NAN, engine), "ms"),
            fmt(after.map_or(f64::NAN, engine), "ms"),
        );
    }
    if let Some(row) = first_row(report, "`cm move --node`") {
        let down = first_row(report, "… downtime");
        let _ = write!(
            out,
            " A `cm move` of 100 MiB between the workers took {} against {} by hand ({:.2}), with {} of downtime \
             (cm's report) against {}. {}",
            fmt(cm(row), "ms"),
            fmt(engine(row), "ms"),
            row.ratio.unwrap_or(f64::NAN),
            fmt(down.map_or(f64::NAN, cm), "ms"),
            fmt(down.map_or(f64::NAN, engine), "ms"),
            MOVE_CAUSES,
        );
    }
    let counts: Vec<&Row> = rows_of(report, "placement of ")
        .into_iter()
        .filter(|r| r.what.contains(": containers on "))
        .collect();
    if !counts.is_empty() {
        let per = |f: fn(&Row) -> f64| {
            counts
                .iter()
                .map(|r| format!("{:.0}", f(r)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = write!(
            out,
            " Placement: left to choose, cm put the containers on the manager and the two workers as {} and Swarm's \
             scheduler as {}. {}",
            per(super::cm_median),
            per(super::engine_median),
            PLACEMENT_CAUSES,
        );
    }
    out.push_str("\n\n");
}

/// What cm's create does on Swarm beyond the raw calls (cm-swarm's create and start path).
const SWARM_CAUSES: &str = "What cm adds on Swarm beyond the raw calls, from cm-swarm's create and start: the \
     process start and the version negotiation with each engine on its first use; the published ports of the \
     pool on every engine (the manager's, and each configured node's, the manager's own entry included: four \
     listings here, made at once) and all networks (for the subnets); the nodes with their memory (for \
     placement); an inspect of the network and of the volume before creating them; before the service, the \
     image checked on every ready node (a node listing, the manager's info and an image inspect per node, so \
     that a node lacking the image is named with the command that loads it instead of a task left pending); the \
     service created with 0 replicas (created, not started, as on one engine) and then scaled to 1 by an update \
     of its spec, read again and retried (after 20 ms, backing off to 150 ms) when Swarm bumped the service's version meanwhile (it does \
     right after a create, when it allocates the endpoint: \"update out of sequence\"); the tasks listed until \
     the new one runs (every 25 ms); then the service, its tasks and the nodes read \
     again for the record; and the SQLite transactions that make each step undoable.";

/// Why some of cm's creates wait about 2 s longer for their task (measured by hand, see the text).
const PORT_REUSE: &str = "cm leases the lowest free port of its pool, so each create here published the port the \
     previous delete had just freed, while the raw sides took a new port each time. Swarm starts a task whose \
     host-mode port a just-removed service published later: by hand on a single-node swarm of this engine (5 \
     rounds, `docker service create` with a host-mode port until `docker service ps` says running, 2026-12-03), a \
     fresh port took 0.70–0.83 s and the same port right after its previous service and container were removed \
     1.71–1.84 s; on this cluster, whose dispatcher heartbeat is 2 s, cm's slow creates took about 2 s more. The \
     likely reason is Swarm's scheduler, which keeps a task pending while the node still counts the removed task's \
     port as taken and looks again later. Not changed here: leasing ports round the pool instead of lowest-first \
     (cm-core's pick rule) would avoid it on Swarm.";

/// Why a move costs what it costs.
const MOVE_CAUSES: &str = "Both sides stop the task first and wait out its stop: Python's HTTP server runs as \
     the container's process 1 and installs no SIGTERM handler, so the kernel ignores the signal and Swarm kills \
     it after the 10 s stop grace period; that wait is most of either side's downtime. Both copy the volume as a \
     tar stream between the two nodes' engines through created (never started) helper containers.";

/// How the two placements decide.
const PLACEMENT_CAUSES: &str = "cm picks the ready node with the most memory free after the limits of the \
     containers it placed there (its own records; every node here reports the same host memory), so equal \
     limits go round the nodes; Swarm's scheduler, given no reservations, spreads the tasks by their count per \
     node.";
