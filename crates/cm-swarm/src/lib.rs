//! The Docker Swarm adapter of cm-core's `ContainerRuntime` port: one service per container,
//! with one replica at most.
//!
//! The local engine is a swarm manager. A container's id is its service's id, which stays the
//! same across the tasks Swarm starts for it:
//!
//! - create makes the service with 0 replicas (created, not started), start scales it to 1,
//!   stop to 0, restart forces an update (a new task), remove removes the service;
//! - inspect and list read the service and its current task (state, container, node, exit code,
//!   the restarts Swarm's task history still holds);
//! - exec, logs, files and stats act on the current task's container through the engine of the
//!   node that runs it (`[runtime.nodes]`; the local engine serves the manager's own node);
//! - networks are attachable overlays with the user's small subnet, ports are published in host
//!   mode (no ingress mesh, no VIP: `dnsrr`), images are the local ones, named by id so nothing
//!   asks a registry.
//!
//! Networks, volumes and the per-engine calls are cm-docker's: this crate builds on its
//! `DockerRuntime` (one per engine) and speaks the swarm part of the API itself. What it cannot
//! apply as strongly as the single-engine runtime is listed in [`WEAKER`] and reported by
//! `engine_info` (so `cm health` prints it).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum, EndpointSpec,
    EndpointSpecModeEnum, Limit, Mount, MountType, NetworkAttachmentConfig, Service, ServiceSpec,
    ServiceSpecMode, ServiceSpecModeReplicated, Task, TaskSpec, TaskSpecContainerSpec, TaskSpecLogDriver,
    TaskSpecPlacement, TaskSpecResources, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
    TaskState,
};
use bollard::query_parameters::{
    EventsOptionsBuilder, ListContainersOptionsBuilder, ListServicesOptionsBuilder, ListTasksOptionsBuilder,
    UpdateServiceOptionsBuilder,
};
use cm_core::{
    ContainerEvent, ContainerPlan, ContainerRuntime, ContainerStats, ContainerStatus, DiskSupport,
    EngineContainer, EngineInfo, Ensured, Error, ErrorKind, EventStream, ExecOutput, ExecRequest,
    ForeignContainer, ImageRef, LogRequest, LogStream, NetworkPlan, NodeInfo, NodeName, NodeState,
    ObservedContainer, ObservedObject, PortRange, RemoveMode, RestartPolicy, Result, Subnet, UploadEntry,
    VolumePlan, labels,
};
use cm_docker::{DockerRuntime, NetworkDriver, engine_error, managed_filter, own_env};
use futures_util::StreamExt;
use tokio::sync::Mutex;

/// The service label holding the image as the plan named it (the spec names it by id).
pub const IMAGE_LABEL: &str = "org.containermanager.swarm.image";
/// The label Swarm puts on a task's container: its service's id.
const SERVICE_ID_LABEL: &str = "com.docker.swarm.service.id";

/// How long a task gets to stop (SIGTERM, then SIGKILL): the same as cm-docker's stop. The engine
/// also waits it when a service is removed, unless a forced remove kills the container first.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// The pause before Swarm starts a new task after one ended (its restart policy).
const RESTART_DELAY: Duration = Duration::from_secs(1);
/// How long start and restart wait for the new task to run.
const START_WAIT: Duration = Duration::from_secs(60);
/// How long remove waits for the service's containers to be gone.
const REMOVE_WAIT: Duration = Duration::from_secs(30);
/// How often an update whose version Swarm changed meanwhile is tried again.
const UPDATE_TRIES: u32 = 20;
/// The pause between looks while waiting on Swarm.
const POLL: Duration = Duration::from_millis(150);
/// The pause between looks while a start waits for its new task: shorter, since a create or a
/// start returns only once the task runs (a task listing of one service is cheap).
const START_POLL: Duration = Duration::from_millis(25);

/// What this runtime applies more weakly than cm-docker's single engine (engine API 1.41), or not
/// at all. `engine_info` reports it; docs/swarm.md explains each.
pub const WEAKER: &[&str] = &[
    "published ports bind 0.0.0.0 on the node, not the configured address (Swarm's host-mode \
     publishing takes no address): firewall the port pool so only the nginx host reaches it",
    "no-new-privileges is not set (services of engine API 1.41 have no such option)",
    "swap is not capped at the memory limit (services of engine API 1.41 have no memory-swap \
     option): on a node with swap a container may swap beyond its limit",
    "every start and restart is a new container: files outside /data are reset (SSH keys are \
     written again by cm's start, by cm-api's status feed when Swarm restarts a task by itself, and \
     by reconcile), and the logs begin anew",
    "restart counts come from Swarm's task history (5 tasks by default), not the engine's counter",
    "cm update replaces the container instead of keeping the old one aside until the new one \
     runs (Swarm cannot rename a service); a failed update re-creates the old one from its record",
    "data volumes cannot be size-capped",
];

/// A Docker Swarm whose manager is the local engine.
pub struct SwarmRuntime {
    /// The local engine, a swarm manager: services, tasks, nodes, networks (overlay), volumes.
    manager: DockerRuntime,
    /// Other nodes' engines, by node hostname (`[runtime.nodes]`).
    nodes: BTreeMap<String, Arc<DockerRuntime>>,
    /// The endpoints of `nodes`, as configured (for health and errors).
    endpoints: BTreeMap<String, String>,
    /// Files uploaded per service (destination and entries), written again into each new task's
    /// container by this process's start and restart: a task starts from the image.
    uploads: Mutex<HashMap<String, Vec<Upload>>>,
}

impl Default for SwarmRuntime {
    fn default() -> Self {
        Self::new(BTreeMap::new())
    }
}

/// One upload: the destination directory and its entries.
type Upload = (String, Vec<UploadEntry>);

/// What a service's tasks say about its one container.
#[derive(Debug, Clone, Default)]
struct Current {
    /// The task Swarm wants up (or the newest when none is), if any task exists.
    task: Option<Task>,
    /// The tasks that ended on their own since the last deliberate stop or update.
    restarts: i64,
}

impl SwarmRuntime {
    /// A runtime whose manager is the local engine (`DOCKER_HOST` or the local socket), reaching
    /// other nodes' engines by hostname through `nodes` (hostname to endpoint).
    pub fn new(nodes: BTreeMap<String, String>) -> Self {
        SwarmRuntime {
            manager: DockerRuntime::new().with_network_driver(NetworkDriver::Overlay),
            nodes: nodes
                .iter()
                .map(|(host, endpoint)| (host.clone(), Arc::new(DockerRuntime::at(endpoint.clone()))))
                .collect(),
            endpoints: nodes,
            uploads: Mutex::new(HashMap::new()),
        }
    }

    async fn docker(&self) -> Result<Docker> {
        self.manager.docker().await
    }

    /// The service of an id, a name or an id prefix; `None` when there is none.
    async fn service(&self, id_or_name: &str) -> Result<Option<Service>> {
        let docker = self.docker().await?;
        match docker
            .inspect_service(
                id_or_name,
                None::<bollard::query_parameters::InspectServiceOptions>,
            )
            .await
        {
            Ok(service) => Ok(Some(service)),
            Err(e) => match self.manager.on_error(e).await {
                e if e.kind() == ErrorKind::NotFound => Ok(None),
                e => Err(e),
            },
        }
    }

    /// The service, or `NotFound` saying so.
    async fn existing(&self, id: &str) -> Result<Service> {
        self.service(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("no service {id} in the swarm")))
    }

    /// Every task of one service (`Some`) or of all (`None`), history included.
    async fn tasks(&self, service: Option<&str>) -> Result<Vec<Task>> {
        let docker = self.docker().await?;
        let mut builder = ListTasksOptionsBuilder::new();
        let filters;
        if let Some(id) = service {
            filters = HashMap::from([("service".to_owned(), vec![id.to_owned()])]);
            builder = builder.filters(&filters);
        }
        let tasks = self
            .manager
            .answer(docker.list_tasks(Some(builder.build())).await)
            .await?;
        Ok(match service {
            Some(id) => tasks
                .into_iter()
                .filter(|t| t.service_id.as_deref() == Some(id))
                .collect(),
            None => tasks,
        })
    }

    /// Writes a new spec of `service`, changed by `change`, at its current version. Swarm bumps
    /// a service's version by itself (such as right after a create, when it allocates the
    /// endpoint): an update "out of sequence" reads the service again and tries again.
    async fn update(&self, service: &Service, change: impl Fn(&mut ServiceSpec)) -> Result<()> {
        let docker = self.docker().await?;
        let id = service.id.clone().unwrap_or_default();
        let mut current = service.clone();
        let mut tries = 0;
        loop {
            let mut spec = current.spec.clone().unwrap_or_default();
            change(&mut spec);
            let version = current.version.as_ref().and_then(|v| v.index).unwrap_or(0);
            let options = UpdateServiceOptionsBuilder::new()
                .version(i32::try_from(version).unwrap_or(i32::MAX))
                .build();
            match docker.update_service(&id, spec, options, None).await {
                Ok(answer) => {
                    for warning in answer.warnings.unwrap_or_default() {
                        tracing::warn!(service = %id, %warning, "engine warning at update");
                    }
                    return Ok(());
                }
                Err(e) => {
                    let stale = e.to_string().contains("out of sequence");
                    let err = self.manager.on_error(e).await;
                    if !stale || tries >= UPDATE_TRIES {
                        return Err(err.context(format_args!("updating service {id}")));
                    }
                    tries += 1;
                    // Swarm's own change is usually done at once (a create's endpoint): look
                    // again soon, then back off (about 3 s over all tries).
                    let pause = Duration::from_millis(10 << tries.min(4)).min(POLL);
                    tokio::time::sleep(pause).await;
                    current = self.existing(&id).await?;
                }
            }
        }
    }

    /// The engine of the node that runs (or ran) a task.
    async fn engine_of(&self, task: &Task) -> Result<&DockerRuntime> {
        let Some(node) = task.node_id.as_deref().filter(|n| !n.is_empty()) else {
            return Ok(&self.manager);
        };
        let docker = self.docker().await?;
        let info = self.manager.answer(docker.info().await).await?;
        let local = info.swarm.and_then(|s| s.node_id).unwrap_or_default();
        if self.nodes.is_empty() && node == local {
            return Ok(&self.manager);
        }
        let inspected = self.manager.answer(docker.inspect_node(node).await).await?;
        let host = inspected.description.and_then(|d| d.hostname).unwrap_or_default();
        if let Some(engine) = self.nodes.get(&host) {
            return Ok(engine);
        }
        if node == local {
            return Ok(&self.manager);
        }
        Err(Error::unavailable(format!(
            "node {host} runs the container, but [runtime.nodes] names no engine endpoint for it"
        )))
    }

    /// Every engine this runtime reaches: the local one and the configured nodes'.
    fn engines(&self) -> impl Iterator<Item = &DockerRuntime> {
        std::iter::once(&self.manager).chain(self.nodes.values().map(AsRef::as_ref))
    }

    /// The current task of a service and the engine of its node, when it has a container.
    async fn container_of(&self, service: &str) -> Result<Option<(String, &DockerRuntime, Task)>> {
        let current = current_of(self.tasks(Some(service)).await?);
        let Some(task) = current.task else {
            return Ok(None);
        };
        let Some(container) = container_id(&task) else {
            return Ok(None);
        };
        let engine = self.engine_of(&task).await?;
        Ok(Some((container, engine, task)))
    }

    /// The running container of a service, or a `Conflict` saying it does not run.
    async fn running_container(&self, id: &str) -> Result<(String, &DockerRuntime)> {
        let service = self.existing(id).await?;
        let service_id = service.id.unwrap_or_default();
        match self.container_of(&service_id).await? {
            Some((container, engine, task)) if task_state(&task) == Some(TaskState::RUNNING) => {
                Ok((container, engine))
            }
            _ => Err(Error::conflict(format!("container {id} is not running"))),
        }
    }

    /// Waits until a task not in `before` runs, or ended (`Ok`), or failed to start (the error
    /// says why); bounded by [`START_WAIT`].
    async fn wait_started(&self, id: &str, before: &BTreeSet<String>) -> Result<()> {
        let deadline = tokio::time::Instant::now() + START_WAIT;
        loop {
            let tasks = self.tasks(Some(id)).await?;
            for task in tasks
                .iter()
                .filter(|t| !before.contains(t.id.as_deref().unwrap_or_default()))
            {
                match task_state(task) {
                    Some(TaskState::RUNNING | TaskState::COMPLETE) => return Ok(()),
                    Some(TaskState::FAILED) if exit_code(task).is_some_and(|c| c != 0) => return Ok(()),
                    Some(TaskState::FAILED | TaskState::REJECTED) => {
                        let status = task.status.clone().unwrap_or_default();
                        let why = status
                            .err
                            .or(status.message)
                            .unwrap_or_else(|| "no reason given".to_owned());
                        return Err(Error::internal(format!(
                            "Swarm could not start the container: {why}"
                        )));
                    }
                    _ => {}
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "Swarm did not start the container within {} seconds",
                        START_WAIT.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(START_POLL).await;
        }
    }

    /// Waits until no task of the service is up or about to be.
    async fn wait_stopped(&self, id: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + STOP_GRACE + START_WAIT;
        loop {
            let tasks = self.tasks(Some(id)).await?;
            if tasks.iter().all(|t| !is_up(t)) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    "Swarm did not stop the container in time",
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The ids of the service's tasks now.
    async fn task_ids(&self, id: &str) -> Result<BTreeSet<String>> {
        Ok(self
            .tasks(Some(id))
            .await?
            .into_iter()
            .filter_map(|t| t.id)
            .collect())
    }

    /// Writes the service's remembered uploads into its running container.
    async fn replay_uploads(&self, id: &str) -> Result<()> {
        let remembered = self.uploads.lock().await.get(id).cloned().unwrap_or_default();
        if remembered.is_empty() {
            return Ok(());
        }
        let Some((container, engine, task)) = self.container_of(id).await? else {
            return Ok(());
        };
        if task_state(&task) != Some(TaskState::RUNNING) {
            return Ok(());
        }
        for (destination, entries) in &remembered {
            engine.upload(&container, destination, entries).await?;
        }
        Ok(())
    }

    /// The containers of a service on every engine reached (running or not).
    async fn containers_of_service(&self, id: &str) -> Result<Vec<(String, &DockerRuntime)>> {
        let mut found = Vec::new();
        for (at, engine) in self.engines().enumerate() {
            let listed = async {
                let docker = engine.docker().await?;
                let filters = HashMap::from([("label".to_owned(), vec![format!("{SERVICE_ID_LABEL}={id}")])]);
                let options = ListContainersOptionsBuilder::new()
                    .all(true)
                    .filters(&filters)
                    .build();
                engine.answer(docker.list_containers(Some(options)).await).await
            }
            .await;
            if let Some(listed) = unless_node_down(at, engine, listed)? {
                found.extend(listed.into_iter().filter_map(|c| c.id).map(|c| (c, engine)));
            }
        }
        Ok(found)
    }

    /// Our services that mount the volume or attach to the network `name`.
    /// The engine of node `node`: its `[runtime.nodes]` endpoint, or the manager's own engine
    /// when `node` is the manager.
    async fn engine_of_node(&self, node: &NodeName) -> Result<&DockerRuntime> {
        if let Some(engine) = self.nodes.get(node.as_str()) {
            return Ok(engine);
        }
        let docker = self.docker().await?;
        let info = self.manager.answer(docker.info().await).await?;
        if info.name.as_deref() == Some(node.as_str()) {
            Ok(&self.manager)
        } else {
            Err(Error::unavailable(format!(
                "node {node} has no engine endpoint in [runtime.nodes]: its containers' data can not be reached"
            )))
        }
    }

    /// The host names of the nodes that are down.
    async fn down_nodes(&self) -> Result<BTreeSet<String>> {
        Ok(self
            .nodes()
            .await?
            .into_iter()
            .filter(|n| n.state == NodeState::Down)
            .map(|n| n.name.to_string())
            .collect())
    }

    /// Every service this installation's labels mark as managed.
    async fn managed_services(&self) -> Result<Vec<Service>> {
        let docker = self.docker().await?;
        let options = ListServicesOptionsBuilder::new()
            .filters(&managed_filter())
            .build();
        self.manager
            .answer(docker.list_services(Some(options)).await)
            .await
    }

    /// The services pinned to `node` (by their placement constraint) that mount volume `name`.
    async fn services_using_on(&self, name: &str, node: &NodeName) -> Result<Vec<String>> {
        let pinned_here = format!("node.hostname=={node}");
        Ok(self
            .managed_services()
            .await?
            .into_iter()
            .filter(|s| {
                let constraints = template_of(s)
                    .and_then(|t| t.placement.as_ref())
                    .and_then(|p| p.constraints.as_ref());
                let here = constraints.is_none_or(|c| c.iter().any(|c| c.replace(' ', "") == pinned_here));
                here && mounts_volume(s, name)
            })
            .filter_map(|s| s.spec.and_then(|s| s.name))
            .collect())
    }

    /// The services that mount volume `name` or attach to network `name`.
    async fn services_using(&self, name: &str) -> Result<Vec<String>> {
        let docker = self.docker().await?;
        // A service's spec names its networks by id.
        let network_id = match docker
            .inspect_network(name, None::<bollard::query_parameters::InspectNetworkOptions>)
            .await
        {
            Ok(network) => network.id,
            Err(e) => match self.manager.on_error(e).await {
                e if e.kind() == ErrorKind::NotFound => None,
                e => return Err(e),
            },
        };
        let is_network = |target: Option<&str>| {
            target == Some(name) || (target.is_some() && target == network_id.as_deref())
        };
        Ok(self
            .managed_services()
            .await?
            .into_iter()
            .filter(|s| {
                let networks = template_of(s).and_then(|t| t.networks.as_ref());
                mounts_volume(s, name)
                    || networks.is_some_and(|n| n.iter().any(|n| is_network(n.target.as_deref())))
            })
            .filter_map(|s| s.spec.and_then(|s| s.name))
            .collect())
    }

    /// The image's id on the local engine, after checking every node that could run it has the
    /// same; a missing image names the nodes lacking it and how to load it.
    async fn image_everywhere(&self, image: &str) -> Result<String> {
        let docker = self.docker().await?;
        let nodes = self
            .manager
            .answer(
                docker
                    .list_nodes(None::<bollard::query_parameters::ListNodesOptions>)
                    .await,
            )
            .await?;
        let info = self.manager.answer(docker.info().await).await?;
        let local = info.swarm.and_then(|s| s.node_id).unwrap_or_default();
        let mut ids: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut unreachable = Vec::new();
        for node in &nodes {
            let available = node
                .spec
                .as_ref()
                .and_then(|s| s.availability.as_ref())
                .map(ToString::to_string);
            let ready = node
                .status
                .as_ref()
                .and_then(|s| s.state.as_ref())
                .map(ToString::to_string);
            // Only a ready node that takes tasks could run it.
            if available.as_deref() == Some("drain") || ready.as_deref() != Some("ready") {
                continue;
            }
            let host = node
                .description
                .as_ref()
                .and_then(|d| d.hostname.clone())
                .unwrap_or_default();
            let engine = match self.nodes.get(&host) {
                Some(engine) => engine.as_ref(),
                None if node.id.as_deref() == Some(local.as_str()) => &self.manager,
                None => {
                    unreachable.push(host);
                    continue;
                }
            };
            let client = engine.docker().await?;
            let id = match client.inspect_image(image).await {
                Ok(inspected) => inspected.id,
                Err(e) => match engine.on_error(e).await {
                    e if e.kind() == ErrorKind::NotFound => None,
                    e => return Err(e.context(format_args!("looking for image {image} on node {host}"))),
                },
            };
            ids.insert(host, id);
        }
        if !unreachable.is_empty() {
            return Err(Error::unavailable(format!(
                "cannot check image {image} on node(s) {}: [runtime.nodes] names no engine endpoint for them",
                unreachable.join(", ")
            )));
        }
        let wanted = match nodes
            .iter()
            .find(|n| n.id.as_deref() == Some(local.as_str()))
            .and_then(|n| n.description.as_ref()?.hostname.clone())
            .and_then(|host| ids.get(&host).cloned().flatten())
        {
            Some(id) => Some(id),
            None => ids.values().flatten().next().cloned(),
        };
        let lacking: Vec<&str> = ids
            .iter()
            .filter(|(_, id)| wanted.is_none() || **id != wanted)
            .map(|(host, _)| host.as_str())
            .collect();
        match wanted {
            Some(id) if lacking.is_empty() => Ok(id),
            _ => {
                let how: Vec<String> = lacking
                    .iter()
                    .map(|host| {
                        let endpoint = self
                            .endpoints
                            .get(*host)
                            .cloned()
                            .unwrap_or_else(|| "<its engine>".to_owned());
                        format!("docker save {image} | docker -H {endpoint} load")
                    })
                    .collect();
                Err(Error::not_found(format!(
                    "image {image} is missing (or another build) on node(s) {}: build it (images/build.sh) \
                     or load it there: {}",
                    lacking.join(", "),
                    how.join("; ")
                )))
            }
        }
    }
}

/// A call's answer from engine number `at` of [`SwarmRuntime::engines`]: a node's engine that
/// cannot be reached is skipped (`None`, with a warning), so one node down does not stop what the
/// others can answer; the manager's errors are errors.
fn unless_node_down<T>(at: usize, engine: &DockerRuntime, answer: Result<T>) -> Result<Option<T>> {
    match answer {
        Ok(value) => Ok(Some(value)),
        Err(e) if at > 0 && e.kind() == ErrorKind::Unavailable => {
            tracing::warn!(
                engine = engine.endpoint().unwrap_or_default(),
                error = %e,
                "a node's engine cannot be reached; skipped"
            );
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Docker's state text of a status, as `docker ps` shows it.
fn engine_state(status: ContainerStatus) -> &'static str {
    match status {
        ContainerStatus::CrashLooping => "restarting",
        other => other.as_str(),
    }
}

/// The label of the created-only containers a volume copy reads and writes through (removed
/// when it ends; a crash leaves them to the test cleanup or `cm reconcile --prune`).
const COPY_HELPER_LABEL: &str = "org.containermanager.copy";

/// A container created (never started) on `engine` with `plan`'s volume at `/data`.
async fn copy_helper(
    engine: &DockerRuntime,
    plan: &VolumePlan,
    via: &ImageRef,
    read_only: bool,
) -> Result<String> {
    let docker = engine.docker().await?;
    let mut labels = plan.labels.clone();
    labels.insert(COPY_HELPER_LABEL.to_owned(), plan.name.to_string());
    let mode = if read_only { ":ro" } else { "" };
    let body = bollard::models::ContainerCreateBody {
        image: Some(via.to_string()),
        cmd: Some(vec!["true".to_owned()]),
        labels: Some(labels.into_iter().collect()),
        host_config: Some(bollard::models::HostConfig {
            binds: Some(vec![format!("{}:{}{mode}", plan.name, cm_core::DATA_PATH)]),
            network_mode: Some("none".to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let created = engine
        .answer(
            docker
                .create_container(None::<bollard::query_parameters::CreateContainerOptions>, body)
                .await,
        )
        .await?;
    Ok(created.id)
}

/// Streams `/data` of `reader` (as a tar archive) into `writer`'s `/`, so its `/data` (the
/// target volume) gets the same tree, owners and modes; gives the bytes of the archive.
async fn stream_volume(
    source: &DockerRuntime,
    reader: &str,
    target: &DockerRuntime,
    writer: &str,
) -> Result<u64> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let from = source.docker().await?;
    let to = target.docker().await?;
    let copied = Arc::new(AtomicU64::new(0));
    let counted = copied.clone();
    let options = bollard::query_parameters::DownloadFromContainerOptionsBuilder::new()
        .path(cm_core::DATA_PATH)
        .build();
    let archive = from
        .download_from_container(reader, Some(options))
        .map(move |chunk| {
            chunk
                .inspect(|bytes| {
                    counted.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                })
                .map_err(std::io::Error::other)
        });
    let options = bollard::query_parameters::UploadToContainerOptionsBuilder::new()
        .path("/")
        .build();
    target
        .answer(
            to.upload_to_container(writer, Some(options), bollard::body_try_stream(archive))
                .await,
        )
        .await?;
    Ok(copied.load(Ordering::Relaxed))
}

/// Removes a copy's helper container; one left behind is only logged (it holds no process).
async fn remove_helper(engine: &DockerRuntime, id: &str) {
    if let Err(e) = engine.remove_container(id, RemoveMode::Force).await {
        tracing::warn!(container = id, error = %e, "a volume copy's helper container was not removed");
    }
}

/// A swarm node as the port describes it; `None` for a node without a usable hostname.
fn node_info(node: bollard::models::Node) -> Option<NodeInfo> {
    let description = node.description.unwrap_or_default();
    let name = NodeName::parse(description.hostname.as_deref()?).ok()?;
    let status = node.status.unwrap_or_default();
    let state = match status.state.map(|s| s.to_string()).as_deref() {
        Some("ready") => NodeState::Ready,
        Some("down" | "disconnected") => NodeState::Down,
        _ => NodeState::Unknown,
    };
    let spec = node.spec.unwrap_or_default();
    let resources = description.resources.unwrap_or_default();
    // Some engines report a manager's address as 0.0.0.0; its manager status has the address it
    // advertises (`ip:port`).
    let advertised = node
        .manager_status
        .as_ref()
        .and_then(|m| m.addr.as_deref())
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .map(|a| a.ip());
    let address = status
        .addr
        .as_deref()
        .and_then(|a| a.parse::<std::net::IpAddr>().ok())
        .filter(|a| !a.is_unspecified())
        .or(advertised)
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    Some(NodeInfo {
        name,
        id: node.id.unwrap_or_default(),
        address,
        state,
        schedulable: spec.availability.map(|a| a.to_string()).as_deref() == Some("active"),
        manager: node.manager_status.is_some(),
        memory_bytes: resources
            .memory_bytes
            .and_then(|m| u64::try_from(m).ok())
            .unwrap_or(0),
        cpus: resources.nano_cpus.unwrap_or(0) as f64 / 1e9,
    })
}

/// The state of a task.
fn task_state(task: &Task) -> Option<TaskState> {
    task.status.as_ref()?.state
}

/// A task's container, once it has one.
fn container_id(task: &Task) -> Option<String> {
    task.status
        .as_ref()?
        .container_status
        .as_ref()?
        .container_id
        .clone()
        .filter(|c| !c.is_empty())
}

/// A task's exit code, once its container ended.
fn exit_code(task: &Task) -> Option<i64> {
    task.status.as_ref()?.container_status.as_ref()?.exit_code
}

/// Whether a task's container is up or about to be.
fn is_up(task: &Task) -> bool {
    let desired_running = task.desired_state == Some(TaskState::RUNNING);
    match task_state(task) {
        Some(TaskState::RUNNING | TaskState::STARTING) => true,
        Some(
            TaskState::NEW
            | TaskState::ALLOCATED
            | TaskState::PENDING
            | TaskState::ASSIGNED
            | TaskState::ACCEPTED
            | TaskState::PREPARING
            | TaskState::READY,
        ) => desired_running,
        _ => false,
    }
}

/// Whether a task ended by itself (not stopped on purpose).
fn ended_by_itself(task: &Task) -> bool {
    matches!(
        task_state(task),
        Some(TaskState::COMPLETE | TaskState::FAILED | TaskState::REJECTED)
    )
}

/// The current task of a service's tasks: the newest one Swarm wants running, else the newest;
/// and the restarts since the last deliberate stop.
fn current_of(mut tasks: Vec<Task>) -> Current {
    tasks.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    let mut restarts = 0;
    // Newest first: the tasks that ended by themselves before the current one, back to the first
    // one stopped on purpose (shut down by a scale or an update).
    let mut seen_current = false;
    let wanted = tasks
        .iter()
        .rposition(|t| t.desired_state == Some(TaskState::RUNNING))
        .or_else(|| tasks.len().checked_sub(1));
    for (at, task) in tasks.iter().enumerate().rev() {
        if Some(at) == wanted {
            seen_current = true;
            continue;
        }
        if !seen_current {
            continue;
        }
        if ended_by_itself(task) {
            restarts += 1;
        } else {
            break;
        }
    }
    Current {
        task: wanted.map(|at| tasks.swap_remove(at)),
        restarts,
    }
}

/// The replicas a service asks for.
fn replicas(service: &Service) -> i64 {
    service
        .spec
        .as_ref()
        .and_then(|s| s.mode.as_ref())
        .and_then(|m| m.replicated.as_ref())
        .and_then(|r| r.replicas)
        .unwrap_or(0)
}

/// A service and its tasks, as the port describes a container.
fn observed(service: Service, tasks: Vec<Task>) -> ObservedContainer {
    let spec = service.spec.clone().unwrap_or_default();
    let wanted = replicas(&service);
    let condition = spec
        .task_template
        .as_ref()
        .and_then(|t| t.restart_policy.as_ref())
        .and_then(|r| r.condition);
    let current = current_of(tasks);
    let state = match &current.task {
        None if wanted == 0 => "created",
        None => "restarting",
        Some(task) => match task_state(task) {
            // Scaled to 0 (a stop), a task still running is on its way out. The node's engine
            // tells its container's end (the event the status view inspects on) before the
            // manager's task shows it, so `running` here would stick until some next event.
            Some(TaskState::RUNNING) if wanted > 0 => "running",
            Some(TaskState::COMPLETE | TaskState::FAILED | TaskState::REJECTED) if wanted > 0 => {
                let failed = exit_code(task).is_none_or(|c| c != 0);
                match condition {
                    Some(TaskSpecRestartPolicyConditionEnum::NONE) => "exited",
                    Some(TaskSpecRestartPolicyConditionEnum::ON_FAILURE) if !failed => "exited",
                    _ => "restarting",
                }
            }
            Some(TaskState::SHUTDOWN | TaskState::COMPLETE | TaskState::FAILED | TaskState::REJECTED)
            | Some(TaskState::REMOVE | TaskState::ORPHANED) => "exited",
            _ if wanted == 0 => "exited",
            _ if current.restarts > 0 => "restarting",
            _ => "created",
        },
    };
    let start_error = current
        .task
        .as_ref()
        .filter(|t| matches!(task_state(t), Some(TaskState::FAILED | TaskState::REJECTED)))
        .and_then(|t| t.status.as_ref()?.err.clone())
        .filter(|e| !e.is_empty());
    let labels: BTreeMap<String, String> = spec.labels.clone().unwrap_or_default().into_iter().collect();
    let image = labels.get(IMAGE_LABEL).cloned().unwrap_or_else(|| {
        spec.task_template
            .as_ref()
            .and_then(|t| t.container_spec.as_ref())
            .and_then(|c| c.image.clone())
            .unwrap_or_default()
    });
    ObservedContainer {
        id: service.id.unwrap_or_default(),
        name: spec.name.unwrap_or_default(),
        status: ContainerStatus::observed(state, current.restarts),
        image,
        labels,
        start_error,
        restart_count: Some(current.restarts),
        exit_code: Some(
            current
                .task
                .as_ref()
                .filter(|t| task_state(t) != Some(TaskState::RUNNING))
                .and_then(exit_code)
                .unwrap_or(0),
        ),
    }
}

/// A service's task template.
fn template_of(service: &Service) -> Option<&TaskSpec> {
    service.spec.as_ref()?.task_template.as_ref()
}

/// Whether a service mounts volume `name`.
fn mounts_volume(service: &Service, name: &str) -> bool {
    template_of(service)
        .and_then(|t| t.container_spec.as_ref())
        .and_then(|c| c.mounts.as_ref())
        .is_some_and(|m| m.iter().any(|m| m.source.as_deref() == Some(name)))
}

/// A container pinned to a node that is down is `node-down`, whatever its last task said: Swarm
/// can not run it elsewhere (its data is on that node) and reports the old task until the node
/// comes back.
fn on_live_node(mut container: ObservedContainer, down: &BTreeSet<String>) -> ObservedContainer {
    if container
        .labels
        .get(labels::NODE)
        .is_some_and(|node| down.contains(node))
    {
        container.status = ContainerStatus::NodeDown;
    }
    container
}

fn to_hash(map: &BTreeMap<String, String>) -> HashMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

/// The service of a plan, with 0 replicas, its image named by `image_id`.
fn service_spec(plan: &ContainerPlan, image_id: &str) -> ServiceSpec {
    let condition = match plan.restart_policy {
        RestartPolicy::UnlessStopped | RestartPolicy::Always => TaskSpecRestartPolicyConditionEnum::ANY,
        RestartPolicy::OnFailure => TaskSpecRestartPolicyConditionEnum::ON_FAILURE,
        RestartPolicy::No => TaskSpecRestartPolicyConditionEnum::NONE,
    };
    let mut service_labels = plan.labels.clone();
    service_labels.insert(IMAGE_LABEL.to_owned(), plan.image.to_string());
    let ports = plan
        .ports
        .iter()
        .map(|binding| EndpointPortConfig {
            protocol: Some(EndpointPortConfigProtocolEnum::TCP),
            target_port: Some(i64::from(binding.container_port)),
            published_port: Some(i64::from(binding.host_port)),
            // Host mode: the ingress mesh needs IPVS; the address can not be chosen (0.0.0.0).
            publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
            ..Default::default()
        })
        .collect();
    ServiceSpec {
        name: Some(plan.name.to_string()),
        labels: Some(to_hash(&service_labels)),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(image_id.to_owned()),
                labels: Some(to_hash(&plan.labels)),
                args: plan.command.as_ref().map(|c| c.args().to_vec()),
                env: Some(plan.env.to_assignments()),
                mounts: Some(vec![Mount {
                    target: Some(cm_core::DATA_PATH.to_owned()),
                    source: Some(plan.volume.to_string()),
                    typ: Some(MountType::VOLUME),
                    ..Default::default()
                }]),
                stop_grace_period: Some(nanos(STOP_GRACE)),
                capability_drop: Some(vec!["ALL".to_owned()]),
                capability_add: Some(plan.cap_add.clone()),
                ..Default::default()
            }),
            resources: Some(TaskSpecResources {
                limits: Some(Limit {
                    nano_cpus: Some(i64::try_from(plan.cpus.nano_cpus()).unwrap_or(i64::MAX)),
                    memory_bytes: Some(i64::try_from(plan.memory.bytes()).unwrap_or(i64::MAX)),
                    pids: Some(plan.pids_limit),
                }),
                ..Default::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(condition),
                delay: Some(nanos(RESTART_DELAY)),
                max_attempts: Some(0),
                window: None,
            }),
            networks: Some(vec![NetworkAttachmentConfig {
                target: Some(plan.network.to_string()),
                ..Default::default()
            }]),
            log_driver: Some(TaskSpecLogDriver {
                name: Some("json-file".to_owned()),
                options: Some(HashMap::from([
                    ("max-size".to_owned(), plan.logs.max_size().to_string()),
                    ("max-file".to_owned(), plan.logs.max_files().to_string()),
                ])),
            }),
            // Pinned to its node: its data volume lives there.
            placement: plan.node.as_ref().map(|node| TaskSpecPlacement {
                constraints: Some(vec![format!("node.hostname=={node}")]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(0) }),
            ..Default::default()
        }),
        endpoint_spec: Some(EndpointSpec {
            // No virtual IP: it needs IPVS, which this kind of kernel may lack.
            mode: Some(EndpointSpecModeEnum::DNSRR),
            ports: Some(ports),
        }),
        ..Default::default()
    }
}

/// The replicated mode with `n` replicas.
fn scaled(spec: &mut ServiceSpec, n: i64) {
    spec.mode = Some(ServiceSpecMode {
        replicated: Some(ServiceSpecModeReplicated { replicas: Some(n) }),
        ..Default::default()
    });
}

/// A new task for the same spec.
fn forced(spec: &mut ServiceSpec) {
    if let Some(template) = spec.task_template.as_mut() {
        template.force_update = Some(template.force_update.unwrap_or(0).wrapping_add(1));
    }
}

#[async_trait]
impl ContainerRuntime for SwarmRuntime {
    async fn engine_info(&self) -> Result<EngineInfo> {
        let mut info = self.manager.engine_info().await?;
        let docker = self.docker().await?;
        let system = self.manager.answer(docker.info().await).await?;
        let swarm = system.swarm.unwrap_or_default();
        if swarm.control_available != Some(true) {
            return Err(Error::unavailable(
                "the local engine is not a swarm manager ([runtime] kind = \"swarm\"; see docs/swarm.md: \
                 docker swarm init)",
            ));
        }
        info.platform = format!("{}, swarm of {} node(s)", info.platform, swarm.nodes.unwrap_or(0));
        info.runtime = "swarm".to_owned();
        info.weaker = WEAKER.iter().map(|w| (*w).to_owned()).collect();
        Ok(info)
    }

    async fn ensure_network(&self, plan: &NetworkPlan) -> Result<Ensured> {
        self.manager.ensure_network(plan).await
    }

    async fn remove_network(&self, name: &str) -> Result<()> {
        let users = self.services_using(name).await?;
        if !users.is_empty() {
            return Err(Error::conflict(format!(
                "network {name} is in use by service(s) {}",
                users.join(", ")
            )));
        }
        // A removed service's tasks leave the network a moment later.
        let mut tries = 0;
        loop {
            match self.manager.remove_network(name).await {
                Err(e) if e.kind() == ErrorKind::Conflict && tries < 40 => {
                    tries += 1;
                    tokio::time::sleep(POLL).await;
                }
                other => return other,
            }
        }
    }

    async fn network_subnets(&self) -> Result<BTreeSet<Subnet>> {
        self.manager.network_subnets().await
    }

    async fn ensure_volume(&self, plan: &VolumePlan) -> Result<Ensured> {
        if let Some(size) = plan.size {
            return Err(Error::unavailable(format!(
                "volume {} needs a {size} cap, but: {}",
                plan.name,
                self.disk_support().detail
            )));
        }
        match plan.node.as_ref().and_then(|node| self.nodes.get(node.as_str())) {
            Some(engine) => engine.ensure_volume(plan).await,
            None => self.manager.ensure_volume(plan).await,
        }
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        let users = self.services_using(name).await?;
        if !users.is_empty() {
            return Err(Error::conflict(format!(
                "volume {name} is in use by service(s) {}",
                users.join(", ")
            )));
        }
        // Volumes are node-local: removed wherever one of the name is (a node down keeps its).
        for (at, engine) in self.engines().enumerate() {
            let removed = engine.remove_volume(name).await;
            unless_node_down(at, engine, removed)?;
        }
        Ok(())
    }

    fn disk_support(&self) -> DiskSupport {
        DiskSupport {
            enforced: false,
            detail: "the Swarm runtime does not size-cap volumes yet".to_owned(),
        }
    }

    async fn stats(&self, id: &str) -> Result<ContainerStats> {
        let service = self.existing(id).await?;
        let service_id = service.id.clone().unwrap_or_default();
        let tasks = self.tasks(Some(&service_id)).await?;
        let seen = observed(service.clone(), tasks);
        let mut stats = match self.container_of(&service_id).await? {
            Some((container, engine, task)) if task_state(&task) == Some(TaskState::RUNNING) => {
                engine.stats(&container).await?
            }
            _ => ContainerStats {
                memory_limit_bytes: service
                    .spec
                    .as_ref()
                    .and_then(|s| {
                        s.task_template
                            .as_ref()?
                            .resources
                            .as_ref()?
                            .limits
                            .as_ref()?
                            .memory_bytes
                    })
                    .and_then(|m| u64::try_from(m).ok())
                    .unwrap_or(0),
                ..ContainerStats::default()
            },
        };
        stats.restart_count = seen.restart_count.unwrap_or(0);
        stats.exit_code = seen.exit_code.unwrap_or(0);
        Ok(stats)
    }

    async fn create_container(&self, plan: &ContainerPlan) -> Result<String> {
        let image = self.image_everywhere(plan.image.as_str()).await?;
        let docker = self.docker().await?;
        match docker.create_service(service_spec(plan, &image), None).await {
            Ok(created) => {
                for warning in created.warnings.unwrap_or_default() {
                    tracing::warn!(service = %plan.name, %warning, "engine warning at create");
                }
                created
                    .id
                    .ok_or_else(|| Error::internal("the engine created a service without an id"))
            }
            Err(e) => Err(self
                .manager
                .on_error(e)
                .await
                .context(format_args!("creating service {}", plan.name))),
        }
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let service = self.existing(id).await?;
        let service_id = service.id.clone().unwrap_or_default();
        let mut before = self.task_ids(&service_id).await?;
        if replicas(&service) == 0 {
            self.update(&service, |spec| scaled(spec, 1)).await?;
        } else {
            let current = current_of(self.tasks(Some(&service_id)).await?);
            match current.task {
                // Running, or on its way: starting it again is fine, once it runs.
                Some(task) if is_up(&task) => {
                    before.remove(task.id.as_deref().unwrap_or_default());
                }
                _ => self.update(&service, forced).await?,
            }
        }
        self.wait_started(&service_id, &before).await?;
        self.replay_uploads(&service_id).await
    }

    async fn stop_container(&self, id: &str) -> Result<()> {
        let service = self.existing(id).await?;
        let service_id = service.id.clone().unwrap_or_default();
        if replicas(&service) != 0 {
            self.update(&service, |spec| scaled(spec, 0)).await?;
        }
        self.wait_stopped(&service_id).await
    }

    async fn restart_container(&self, id: &str) -> Result<()> {
        let service = self.existing(id).await?;
        let service_id = service.id.clone().unwrap_or_default();
        let before = self.task_ids(&service_id).await?;
        if replicas(&service) == 0 {
            self.update(&service, |spec| scaled(spec, 1)).await?;
        } else {
            self.update(&service, forced).await?;
        }
        self.wait_started(&service_id, &before).await?;
        self.replay_uploads(&service_id).await
    }

    async fn remove_container(&self, id: &str, mode: RemoveMode) -> Result<()> {
        let Some(service) = self.service(id).await? else {
            return Ok(());
        };
        let service_id = service.id.clone().unwrap_or_default();
        let tasks = self.tasks(Some(&service_id)).await?;
        if mode == RemoveMode::IfStopped && tasks.iter().any(is_up) {
            return Err(Error::conflict(format!(
                "container {id} is running: stop it first or remove it by force"
            )));
        }
        let docker = self.docker().await?;
        match docker.delete_service(&service_id).await {
            Ok(()) => {}
            Err(e) => match self.manager.on_error(e).await {
                e if e.kind() == ErrorKind::NotFound => {}
                e => return Err(e.context(format_args!("removing service {id}"))),
            },
        }
        self.uploads.lock().await.remove(&service_id);
        // Swarm stops the tasks with their grace period and removes their containers after;
        // forced, they are killed now, as cm-docker's forced remove does.
        let deadline = tokio::time::Instant::now() + STOP_GRACE + REMOVE_WAIT;
        loop {
            let left = self.containers_of_service(&service_id).await?;
            if left.is_empty() {
                return Ok(());
            }
            if mode == RemoveMode::Force {
                for (container, engine) in &left {
                    if let Err(e) = engine.remove_container(container, RemoveMode::Force).await {
                        tracing::debug!(container, error = %e, "a removed service's container is going anyway");
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!("the containers of service {id} were not removed in time"),
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn inspect_container(&self, id_or_name: &str) -> Result<Option<ObservedContainer>> {
        let Some(service) = self.service(id_or_name).await? else {
            return Ok(None);
        };
        let id = service.id.clone().unwrap_or_default();
        let tasks = self.tasks(Some(&id)).await?;
        let down = self.down_nodes().await?;
        Ok(Some(on_live_node(observed(service, tasks), &down)))
    }

    async fn list_managed(&self, filter: &BTreeMap<String, String>) -> Result<Vec<ObservedContainer>> {
        let docker = self.docker().await?;
        let mut wanted = vec![format!("{}={}", labels::MANAGED_BY, labels::MANAGED_BY_VALUE)];
        wanted.extend(filter.iter().map(|(k, v)| format!("{k}={v}")));
        let filters = HashMap::from([("label".to_owned(), wanted)]);
        let options = ListServicesOptionsBuilder::new().filters(&filters).build();
        let services = self
            .manager
            .answer(docker.list_services(Some(options)).await)
            .await?;
        if services.is_empty() {
            return Ok(Vec::new());
        }
        let mut tasks: HashMap<String, Vec<Task>> = HashMap::new();
        for task in self.tasks(None).await? {
            tasks
                .entry(task.service_id.clone().unwrap_or_default())
                .or_default()
                .push(task);
        }
        let down = self.down_nodes().await?;
        Ok(services
            .into_iter()
            .map(|service| {
                let id = service.id.clone().unwrap_or_default();
                on_live_node(observed(service, tasks.remove(&id).unwrap_or_default()), &down)
            })
            .collect())
    }

    async fn published_ports(&self, range: PortRange) -> Result<BTreeSet<u16>> {
        // Every engine at once: a create waits for the slowest node (each one's first call also
        // negotiates its API version), not for the sum of them.
        let answers =
            futures_util::future::join_all(self.engines().map(|engine| engine.published_ports(range))).await;
        let mut ports = BTreeSet::new();
        for ((at, engine), published) in self.engines().enumerate().zip(answers) {
            ports.extend(unless_node_down(at, engine, published)?.unwrap_or_default());
        }
        Ok(ports)
    }

    async fn logs(&self, id: &str, request: &LogRequest) -> Result<LogStream> {
        let service = self.existing(id).await?;
        match self.container_of(&service.id.unwrap_or_default()).await? {
            Some((container, engine, _)) => engine.logs(&container, request).await,
            // Never started: no output yet.
            None => Ok(Box::pin(futures_util::stream::empty())),
        }
    }

    async fn exec(&self, id: &str, request: &ExecRequest) -> Result<ExecOutput> {
        let (container, engine) = self.running_container(id).await?;
        engine.exec(&container, request).await
    }

    async fn upload(&self, id: &str, destination: &str, entries: &[UploadEntry]) -> Result<()> {
        let service = self.existing(id).await?;
        let service_id = service.id.unwrap_or_default();
        {
            let mut uploads = self.uploads.lock().await;
            let kept = uploads.entry(service_id.clone()).or_default();
            let paths: BTreeSet<&str> = entries.iter().map(|e| e.path.as_str()).collect();
            kept.retain(|(d, e)| !(d == destination && e.iter().all(|e| paths.contains(e.path.as_str()))));
            kept.push((destination.to_owned(), entries.to_vec()));
        }
        // A service that runs gets the files now; one that does not, when this process starts it.
        match self.container_of(&service_id).await? {
            Some((container, engine, task)) if task_state(&task) == Some(TaskState::RUNNING) => {
                engine.upload(&container, destination, entries).await
            }
            _ => Ok(()),
        }
    }

    async fn download(&self, id: &str, path: &str) -> Result<Option<Vec<u8>>> {
        let service = self.existing(id).await?;
        match self.container_of(&service.id.unwrap_or_default()).await? {
            Some((container, engine, _)) => engine.download(&container, path).await,
            None => Ok(None),
        }
    }

    fn renames(&self) -> bool {
        false
    }

    fn starts_afresh(&self) -> bool {
        // Every start is a new task, whose container starts from the image.
        true
    }

    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()> {
        Err(Error::new(
            ErrorKind::Unavailable,
            format!("cannot rename {id} to {new_name}: Swarm cannot rename a service"),
        ))
    }

    async fn copy_volume(
        &self,
        plan: &VolumePlan,
        from: &NodeName,
        to: &NodeName,
        via: &ImageRef,
    ) -> Result<u64> {
        let source = self.engine_of_node(from).await?;
        let target = self.engine_of_node(to).await?;
        let on_target = VolumePlan {
            node: None,
            ..plan.clone()
        };
        target.ensure_volume(&on_target).await?;
        // Containers that are created, never started: the engine reads and writes a created
        // container's volumes through its archive API, so nothing runs on either node.
        let reader = copy_helper(source, plan, via, true).await?;
        let copied = async {
            let writer = copy_helper(target, plan, via, false).await?;
            let copied = stream_volume(source, &reader, target, &writer).await;
            remove_helper(target, &writer).await;
            copied
        }
        .await;
        remove_helper(source, &reader).await;
        copied.map_err(|e| {
            e.context(format_args!(
                "copying volume {} from node {from} to node {to}",
                plan.name
            ))
        })
    }

    async fn remove_volume_on(&self, name: &str, node: &NodeName) -> Result<()> {
        // A service elsewhere may use the same name (a moved container's new copy): only one
        // pinned to this node holds this copy.
        let users = self.services_using_on(name, node).await?;
        if !users.is_empty() {
            return Err(Error::conflict(format!(
                "volume {name} on node {node} is in use by service(s) {}",
                users.join(", ")
            )));
        }
        self.engine_of_node(node).await?.remove_volume(name).await
    }

    async fn list_all_containers(&self) -> Result<Vec<EngineContainer>> {
        // Services as containers (their tasks' containers are theirs), plain containers as they are.
        let docker = self.docker().await?;
        let services = self
            .manager
            .answer(
                docker
                    .list_services(None::<bollard::query_parameters::ListServicesOptions>)
                    .await,
            )
            .await?;
        let networks = self
            .manager
            .answer(
                docker
                    .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
                    .await,
            )
            .await?;
        let network_names: HashMap<String, String> = networks
            .into_iter()
            .filter_map(|n| Some((n.id?, n.name?)))
            .collect();
        let mut tasks: HashMap<String, Vec<Task>> = HashMap::new();
        for task in self.tasks(None).await? {
            tasks
                .entry(task.service_id.clone().unwrap_or_default())
                .or_default()
                .push(task);
        }
        let mut all: Vec<EngineContainer> = services
            .into_iter()
            .map(|service| {
                let id = service.id.clone().unwrap_or_default();
                let spec = service.spec.clone().unwrap_or_default();
                let ports = spec
                    .endpoint_spec
                    .as_ref()
                    .and_then(|e| e.ports.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|p| {
                        let kind = p.protocol.map_or_else(|| "tcp".to_owned(), |k| k.to_string());
                        let published = u16::try_from(p.published_port?).ok()?;
                        Some((format!("{}/{kind}", p.target_port?), published))
                    })
                    .collect();
                let attached = spec
                    .task_template
                    .as_ref()
                    .and_then(|t| t.networks.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|n| n.target)
                    .map(|target| network_names.get(&target).cloned().unwrap_or(target))
                    .collect();
                let seen = observed(service, tasks.remove(&id).unwrap_or_default());
                EngineContainer {
                    id,
                    name: seen.name,
                    image: seen.image,
                    status: engine_state(seen.status).to_owned(),
                    labels: seen.labels,
                    ports,
                    networks: attached,
                }
            })
            .collect();
        for (at, engine) in self.engines().enumerate() {
            let listed = engine.list_all_containers().await;
            all.extend(
                unless_node_down(at, engine, listed)?
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|c| !c.labels.contains_key(SERVICE_ID_LABEL)),
            );
        }
        Ok(all)
    }

    async fn inspect_foreign(&self, id: &str) -> Result<Option<ForeignContainer>> {
        let Some(service) = self.service(id).await? else {
            // The Python original's containers are plain containers on the local engine.
            return self.manager.inspect_foreign(id).await;
        };
        let service_id = service.id.clone().unwrap_or_default();
        let container = service
            .spec
            .as_ref()
            .and_then(|s| s.task_template.as_ref())
            .and_then(|t| t.container_spec.clone())
            .unwrap_or_default();
        let created = service.created_at.clone().unwrap_or_default();
        let data_volume = container
            .mounts
            .unwrap_or_default()
            .into_iter()
            .find(|m| m.target.as_deref() == Some(cm_core::DATA_PATH))
            .and_then(|m| m.source);
        let docker = self.docker().await?;
        let env = own_env(
            &docker,
            container.image.as_deref(),
            container.env.unwrap_or_default(),
        )
        .await;
        let tasks = self.tasks(Some(&service_id)).await?;
        Ok(Some(ForeignContainer {
            observed: observed(service, tasks),
            env,
            data_volume,
            created,
        }))
    }

    async fn list_managed_volumes(&self) -> Result<Vec<ObservedObject>> {
        let mut all: Vec<ObservedObject> = Vec::new();
        for (at, engine) in self.engines().enumerate() {
            let listed = engine.list_managed_volumes().await;
            for volume in unless_node_down(at, engine, listed)?.unwrap_or_default() {
                if !all.iter().any(|v| v.name == volume.name) {
                    all.push(volume);
                }
            }
        }
        Ok(all)
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        let docker = self.docker().await?;
        let nodes = self
            .manager
            .answer(
                docker
                    .list_nodes(None::<bollard::query_parameters::ListNodesOptions>)
                    .await,
            )
            .await?;
        Ok(nodes.into_iter().filter_map(node_info).collect())
    }

    async fn list_managed_networks(&self) -> Result<Vec<ObservedObject>> {
        self.manager.list_managed_networks().await
    }

    async fn container_events(&self) -> Result<EventStream> {
        let mut streams: Vec<futures_util::stream::BoxStream<'static, Result<ContainerEvent>>> = Vec::new();
        let filters = |types: &[&str]| {
            let filters = HashMap::from([(
                "type".to_owned(),
                types.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>(),
            )]);
            EventsOptionsBuilder::new().filters(&filters).build()
        };
        // Services live in the manager's store: their removal is told here. The manager's events
        // ending or failing ends the whole stream (the status feed then reconnects).
        let manager = self.manager.docker().await?;
        streams.push(
            manager
                .events(Some(filters(&["container", "service"])))
                .filter_map(|item| async move {
                    match item {
                        Ok(event) => event_of(event).map(Ok),
                        Err(e) => Some(Err(engine_error(e))),
                    }
                })
                .boxed(),
        );
        for engine in self.nodes.values() {
            let endpoint = engine.endpoint().unwrap_or_default().to_owned();
            let back = until_back(Arc::clone(engine));
            match unless_node_down(1, engine, engine.docker().await)? {
                // A node's engine going away ends its events, not everyone's (its containers are
                // then the manager's to report, as tasks); once it answers again, the stream
                // fails, so that the feed resubscribes and sees what changed meanwhile.
                Some(docker) => streams.push(
                    docker
                        .events(Some(filters(&["container"])))
                        .take_while(move |item| {
                            if let Err(e) = item {
                                tracing::warn!(engine = %endpoint, error = %e, "a node's engine events ended");
                            }
                            std::future::ready(item.is_ok())
                        })
                        .filter_map(|item| async move { item.ok().and_then(event_of).map(Ok) })
                        .chain(back)
                        .boxed(),
                ),
                None => streams.push(back),
            }
        }
        Ok(Box::pin(looking_again(futures_util::stream::select_all(streams))))
    }
}

/// How often the engine of a node whose events ended is asked whether it is back.
const NODE_BACK_POLL: Duration = Duration::from_secs(2);

/// A stream that waits until `engine` answers a ping, then fails once: the status feed
/// resubscribes to every engine and seeds its statuses again, so a node's events resume after the
/// node comes back, with nothing that changed meanwhile missed.
fn until_back(
    engine: Arc<DockerRuntime>,
) -> futures_util::stream::BoxStream<'static, Result<ContainerEvent>> {
    futures_util::stream::once(async move {
        loop {
            tokio::time::sleep(NODE_BACK_POLL).await;
            if let Ok(docker) = engine.docker().await
                && docker.ping().await.is_ok()
            {
                break;
            }
        }
        Err(Error::new(
            ErrorKind::Unavailable,
            format!(
                "the engine of a node ({}) answers again: resubscribing to the events",
                engine.endpoint().unwrap_or_default()
            ),
        ))
    })
    .boxed()
}

/// When the status of a service is looked at again after a node's engine told its container's
/// start or end: Swarm's manager, whose task states make the status, learns of the change a moment
/// after the node's engine, so the look the event itself causes may still see the old state.
const LOOK_AGAIN: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(3)];

/// `events`, and after each start or end of a container a `recheck` of its service at each of
/// [`LOOK_AGAIN`], so that a status read too early is corrected. Ends when `events` ends.
fn looking_again(
    events: futures_util::stream::SelectAll<futures_util::stream::BoxStream<'static, Result<ContainerEvent>>>,
) -> impl futures_util::Stream<Item = Result<ContainerEvent>> + Send + 'static {
    let (again, later) = tokio::sync::mpsc::unbounded_channel::<ContainerEvent>();
    let told = events
        .inspect(move |item| {
            if let Ok(event) = item
                && matches!(event.action.as_str(), "start" | "die")
            {
                let (again, id) = (again.clone(), event.id.clone());
                tokio::spawn(async move {
                    let mut waited = Duration::ZERO;
                    for at in LOOK_AGAIN {
                        tokio::time::sleep(at - waited).await;
                        waited = at;
                        let recheck = ContainerEvent {
                            id: id.clone(),
                            action: "recheck".to_owned(),
                        };
                        if again.send(recheck).is_err() {
                            return;
                        }
                    }
                });
            }
        })
        .map(Some)
        .chain(futures_util::stream::once(async { None }));
    let rechecks = futures_util::stream::unfold(later, |mut later| async move {
        later.recv().await.map(|event| (Some(Ok(event)), later))
    });
    // `None` marks the end of the engines' events: the rechecks end with them.
    futures_util::stream::select(told, rechecks)
        .take_while(|item| std::future::ready(item.is_some()))
        .filter_map(std::future::ready)
}

/// The event of one of our services in an engine's event: a service removed (its container is
/// gone with it), or a change of a container that belongs to a service of ours (by the service's
/// id, which is the container id cm knows).
fn event_of(event: bollard::models::EventMessage) -> Option<ContainerEvent> {
    let kind = event.typ.map(|t| t.to_string()).unwrap_or_default();
    let action = event.action.unwrap_or_default();
    let actor = event.actor?;
    if kind == "service" {
        return (action == "remove").then(|| ContainerEvent {
            id: actor.id.unwrap_or_default(),
            action: "destroy".to_owned(),
        });
    }
    let attributes = actor.attributes.unwrap_or_default();
    let ours = attributes.get(labels::MANAGED_BY).map(String::as_str) == Some(labels::MANAGED_BY_VALUE);
    let service = attributes.get(SERVICE_ID_LABEL)?;
    ours.then(|| ContainerEvent {
        id: service.clone(),
        action,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerStatus as TaskContainer, TaskStatus};

    fn task(id: &str, created: &str, state: TaskState, desired: TaskState, exit: Option<i64>) -> Task {
        serde_json::from_value::<Task>(serde_json::json!({ "ID": id, "CreatedAt": created }))
            .map(|mut t| {
                t.status = Some(TaskStatus {
                    state: Some(state),
                    container_status: Some(TaskContainer {
                        container_id: Some(format!("c-{id}")),
                        exit_code: exit,
                        ..Default::default()
                    }),
                    ..Default::default()
                });
                t.desired_state = Some(desired);
                t
            })
            .unwrap_or_default()
    }

    #[test]
    fn the_current_task_is_the_one_wanted_running_and_restarts_count_back_to_a_deliberate_stop() {
        let tasks = vec![
            task(
                "a",
                "2026-01-01T00:00:01Z",
                TaskState::SHUTDOWN,
                TaskState::SHUTDOWN,
                Some(0),
            ),
            task(
                "b",
                "2026-01-01T00:00:02Z",
                TaskState::FAILED,
                TaskState::SHUTDOWN,
                Some(1),
            ),
            task(
                "c",
                "2026-01-01T00:00:03Z",
                TaskState::FAILED,
                TaskState::SHUTDOWN,
                Some(1),
            ),
            task(
                "d",
                "2026-01-01T00:00:04Z",
                TaskState::RUNNING,
                TaskState::RUNNING,
                None,
            ),
        ];
        let current = current_of(tasks);
        assert_eq!(current.task.and_then(|t| t.id).as_deref(), Some("d"));
        assert_eq!(current.restarts, 2);
        assert_eq!(current_of(Vec::new()).restarts, 0);
    }

    #[test]
    fn a_task_still_running_after_a_scale_to_zero_is_stopped() {
        let service = |replicas: i64| {
            serde_json::from_value::<Service>(serde_json::json!({
                "ID": "s",
                "Spec": { "Name": "u_web", "Mode": { "Replicated": { "Replicas": replicas } } }
            }))
            .unwrap_or_default()
        };
        let running = |desired| {
            vec![task(
                "a",
                "2026-01-01T00:00:01Z",
                TaskState::RUNNING,
                desired,
                None,
            )]
        };
        let stopping = observed(service(0), running(TaskState::SHUTDOWN));
        assert_eq!(stopping.status, ContainerStatus::observed("exited", 0));
        let up = observed(service(1), running(TaskState::RUNNING));
        assert_eq!(up.status, ContainerStatus::observed("running", 0));
    }

    #[test]
    fn a_managers_unspecified_address_is_taken_from_what_it_advertises() {
        let node = |addr: &str, manager: Option<&str>| {
            let mut value = serde_json::json!({
                "ID": "n",
                "Description": { "Hostname": "m1" },
                "Status": { "State": "ready", "Addr": addr },
                "Spec": { "Availability": "active" }
            });
            if let Some(advertised) = manager {
                value["ManagerStatus"] = serde_json::json!({ "Addr": advertised, "Leader": true });
            }
            node_info(serde_json::from_value(value).unwrap_or_default()).map(|n| n.address.to_string())
        };
        assert_eq!(
            node("0.0.0.0", Some("10.1.2.3:2377")).as_deref(),
            Some("10.1.2.3")
        );
        assert_eq!(
            node("10.9.9.9", Some("10.1.2.3:2377")).as_deref(),
            Some("10.9.9.9")
        );
        assert_eq!(node("10.4.4.4", None).as_deref(), Some("10.4.4.4"));
    }

    #[test]
    fn only_tasks_on_their_way_up_count_as_up() {
        let up = task(
            "a",
            "2026-01-01T00:00:01Z",
            TaskState::PREPARING,
            TaskState::RUNNING,
            None,
        );
        let going = task(
            "b",
            "2026-01-01T00:00:01Z",
            TaskState::PREPARING,
            TaskState::SHUTDOWN,
            None,
        );
        let done = task(
            "c",
            "2026-01-01T00:00:01Z",
            TaskState::COMPLETE,
            TaskState::SHUTDOWN,
            Some(0),
        );
        assert!(is_up(&up));
        assert!(!is_up(&going));
        assert!(!is_up(&done));
    }
}
