//! The Docker adapter of cm-core's `ContainerRuntime` port, built on bollard. Only this crate
//! imports bollard.
//!
//! The client connects lazily and negotiates the API version on first use, and reconnects after a
//! failure, so a manager started while the engine is down works as soon as it comes back. Engine
//! errors become cm-core error kinds here: 404 not found, 409 conflict, 400 invalid input, an
//! unreachable engine `Unavailable`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, HostConfig, HostConfigLogConfig, Ipam, IpamConfig, NetworkCreateRequest,
    PortBinding as DockerPortBinding, RestartPolicy as DockerRestartPolicy, RestartPolicyNameEnum,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder, EventsOptionsBuilder,
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder, RenameContainerOptionsBuilder,
    RestartContainerOptionsBuilder, StatsOptionsBuilder, StopContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use cm_core::{
    ContainerEvent, ContainerPlan, ContainerRuntime, ContainerStats, ContainerStatus, DiskSupport, DiskUsage,
    EngineContainer, EngineInfo, Ensured, Error, ErrorKind, EventStream, ExecOutput, ExecRequest,
    ForeignContainer, LogChunk, LogRequest, LogStream, NetworkPlan, ObservedContainer, ObservedObject,
    OutputStream, PortRange, RemoveMode, RestartPolicy, Result, Subnet, UploadEntry, VolumeName, VolumePlan,
    labels,
};
use futures_util::StreamExt;
use tokio::sync::Mutex;

mod disk;
mod errors;
mod probe;

pub use disk::{DiskImages, FIRST_LOOP};
pub use errors::{engine_error, engine_error_at};
pub use probe::{HttpAppProbe, TcpPortProbe};

/// How long a single engine request may take before it counts as hung.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `stop` waits for SIGTERM before SIGKILL.
const STOP_GRACE_SECONDS: i32 = 10;
/// The most output an exec collects, counted as the bytes it takes in a JSON answer (a control
/// byte escapes to six), over stdout and stderr together; more is cut off with a note.
const EXEC_OUTPUT_MAX: usize = 16 * 1024 * 1024;
/// How often an exec whose command closed its output, but may still run, asks whether it ended.
const EXEC_END_POLL: Duration = Duration::from_millis(100);

/// How often a failed network create looks for the same network made by another process (at
/// most about two seconds in all), and the pause between looks.
const NETWORK_RACE_CHECKS: u32 = 20;
const NETWORK_RACE_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// The Docker engine, reached through `DOCKER_HOST` or the local socket (or an endpoint given).
pub struct DockerRuntime {
    client: Mutex<Option<Docker>>,
    /// Where size-capped volumes keep their images; `None`: caps are not offered.
    disks: Option<DiskImages>,
    /// The engine's endpoint (`unix:///...`, `tcp://...`); `None`: `DOCKER_HOST` or the local socket.
    endpoint: Option<String>,
    /// The driver of user networks: `bridge` on one engine, `overlay` (attachable) on a swarm.
    network_driver: NetworkDriver,
}

/// Which driver user networks get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkDriver {
    /// One engine's bridge.
    Bridge,
    /// A swarm's overlay, attachable (so a plain container can join it too).
    Overlay,
}

impl Default for DockerRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl DockerRuntime {
    /// Waits until an exec's command has ended, or its deadline passed (`None`).
    async fn exec_end(
        &self,
        docker: &Docker,
        exec: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Option<bollard::models::ExecInspectResponse>> {
        loop {
            // Each question is bounded by the deadline too: a hung engine does not extend it.
            let Ok(asked) = tokio::time::timeout_at(deadline, docker.inspect_exec(exec)).await else {
                return Ok(None);
            };
            let inspected = self.answer(asked).await?;
            if inspected.running != Some(true) {
                return Ok(Some(inspected));
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            // The last look comes at the deadline itself.
            tokio::time::sleep((deadline - now).min(EXEC_END_POLL)).await;
        }
    }

    /// A runtime that connects on first use.
    pub fn new() -> Self {
        DockerRuntime {
            client: Mutex::new(None),
            disks: None,
            endpoint: None,
            network_driver: NetworkDriver::Bridge,
        }
    }

    /// A runtime that also caps data volumes' size, with their disk images in `dir`.
    pub fn with_disk_images(dir: impl Into<PathBuf>) -> Self {
        DockerRuntime {
            disks: Some(DiskImages::new(dir)),
            ..Self::new()
        }
    }

    /// A runtime of the engine at `endpoint` (`unix:///path/docker.sock`, `tcp://host:port`),
    /// connecting on first use.
    pub fn at(endpoint: impl Into<String>) -> Self {
        DockerRuntime {
            endpoint: Some(endpoint.into()),
            ..Self::new()
        }
    }

    /// The same runtime, making user networks with `driver`.
    #[must_use]
    pub fn with_network_driver(mut self, driver: NetworkDriver) -> Self {
        self.network_driver = driver;
        self
    }

    /// The engine's endpoint as configured (`None`: `DOCKER_HOST` or the local socket).
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// The disk images of `volume` when it is a size-capped volume of ours.
    fn capped(&self, volume: &str) -> Option<&DiskImages> {
        let disks = self.disks.as_ref()?;
        // Only our own volume names become paths (a name from the engine may be anything).
        VolumeName::parse(volume).ok()?;
        disks.is_capped(volume).then_some(disks)
    }

    /// The loop device a volume's options name, if it is a capped one.
    async fn loop_of(&self, docker: &Docker, volume: &str) -> Result<Option<u32>> {
        Ok(self
            .inspect_volume(docker, volume)
            .await?
            .and_then(|v| loop_of_volume(&v)))
    }

    /// The loop device numbers our volumes hold, bound now or not.
    async fn loops_taken(&self, docker: &Docker) -> Result<BTreeSet<u32>> {
        let volumes = self.managed_volumes(docker).await?;
        Ok(volumes.iter().filter_map(loop_of_volume).collect())
    }

    /// Every volume carrying `managed-by=ContainerManager`, as the engine describes it.
    async fn managed_volumes(&self, docker: &Docker) -> Result<Vec<bollard::models::Volume>> {
        let options = ListVolumesOptionsBuilder::new()
            .filters(&managed_filter())
            .build();
        let listed = self.answer(docker.list_volumes(Some(options)).await).await?;
        Ok(listed.volumes.unwrap_or_default())
    }

    /// A volume as the engine describes it; `None` when there is none.
    async fn inspect_volume(&self, docker: &Docker, name: &str) -> Result<Option<bollard::models::Volume>> {
        match docker.inspect_volume(name).await {
            Ok(volume) => Ok(Some(volume)),
            Err(e) => match self.on_error(e).await {
                e if e.kind() == ErrorKind::NotFound => Ok(None),
                e => Err(e),
            },
        }
    }

    /// The connected client; connects and negotiates the API version when there is none. For
    /// adapters built on this one (cm-swarm), which speak more of the engine's API.
    pub async fn docker(&self) -> Result<Docker> {
        let mut client = self.client.lock().await;
        if let Some(docker) = client.as_ref() {
            return Ok(docker.clone());
        }
        let connected = match &self.endpoint {
            Some(endpoint) => Docker::connect_with_host(endpoint),
            None => Docker::connect_with_defaults(),
        };
        let docker = connected
            .map_err(|e| self.translate(e))?
            .with_timeout(REQUEST_TIMEOUT)
            .negotiate_version()
            .await
            .map_err(|e| self.translate(e))?;
        *client = Some(docker.clone());
        Ok(docker)
    }

    /// An engine error in our terms, naming this runtime's endpoint when it has its own.
    fn translate(&self, err: bollard::errors::Error) -> Error {
        match &self.endpoint {
            Some(endpoint) => engine_error_at(err, endpoint),
            None => engine_error(err),
        }
    }

    /// Forgets the client after a connection failure, so the next call reconnects.
    pub async fn on_error(&self, err: bollard::errors::Error) -> Error {
        let err = self.translate(err);
        if err.kind() == ErrorKind::Unavailable {
            *self.client.lock().await = None;
        }
        err
    }

    /// An engine answer in our terms: the value, or the error translated (see [`Self::on_error`]).
    pub async fn answer<T>(&self, result: Result<T, bollard::errors::Error>) -> Result<T> {
        match result {
            Ok(value) => Ok(value),
            Err(e) => Err(self.on_error(e).await),
        }
    }

    async fn network_exists(&self, docker: &Docker, name: &str) -> Result<Option<HashMap<String, String>>> {
        match docker
            .inspect_network(name, None::<bollard::query_parameters::InspectNetworkOptions>)
            .await
        {
            Ok(network) => Ok(Some(network.labels.unwrap_or_default())),
            Err(e) => match self.on_error(e).await {
                e if e.kind() == ErrorKind::NotFound => Ok(None),
                e => Err(e),
            },
        }
    }
}

fn status_of(state: Option<&str>) -> ContainerStatus {
    state.map_or(ContainerStatus::Unknown, ContainerStatus::from_engine)
}

fn to_hash(map: &BTreeMap<String, String>) -> HashMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// A listed container's name, without Docker's leading `/`.
fn name_of(names: Option<Vec<String>>) -> String {
    names
        .and_then(|n| n.into_iter().next())
        .unwrap_or_default()
        .trim_start_matches('/')
        .to_owned()
}

fn owner_of(labels: &HashMap<String, String>) -> (Option<&str>, Option<&str>, Option<&str>) {
    (
        labels.get(labels::MANAGED_BY).map(String::as_str),
        labels.get(labels::USER_ID).map(String::as_str),
        labels.get(labels::CONTAINER_TYPE).map(String::as_str),
    )
}

#[async_trait]
impl ContainerRuntime for DockerRuntime {
    async fn engine_info(&self) -> Result<EngineInfo> {
        let docker = self.docker().await?;
        let version = self.answer(docker.version().await).await?;
        Ok(EngineInfo {
            version: version.version.unwrap_or_default(),
            api_version: docker.client_version().to_string(),
            platform: format!(
                "{}/{}",
                version.os.unwrap_or_default(),
                version.arch.unwrap_or_default()
            ),
            runtime: "docker".to_owned(),
            weaker: Vec::new(),
        })
    }

    async fn ensure_network(&self, plan: &NetworkPlan) -> Result<Ensured> {
        let docker = self.docker().await?;
        let want = to_hash(&plan.labels);
        if let Some(labels) = self.network_exists(&docker, plan.name.as_str()).await? {
            return ours_or_conflict(&labels, &want, "network", plan.name.as_str())
                .map(|()| Ensured::Existing);
        }
        let overlay = self.network_driver == NetworkDriver::Overlay;
        let request = NetworkCreateRequest {
            name: plan.name.to_string(),
            driver: Some(if overlay { "overlay" } else { "bridge" }.to_owned()),
            attachable: overlay.then_some(true),
            ipam: Some(Ipam {
                driver: Some("default".to_owned()),
                config: Some(vec![IpamConfig {
                    subnet: Some(plan.subnet.to_string()),
                    ..Default::default()
                }]),
                options: None,
            }),
            labels: Some(want.clone()),
            ..Default::default()
        };
        match docker.create_network(request).await {
            Ok(_) => Ok(Ensured::Created),
            Err(e) => {
                let err = self.on_error(e).await;
                // Another process may be creating the same user's network (same subnet lease)
                // right now: the engine reserves the subnet ("Pool overlaps") a moment before the
                // network answers to its name, so look for it a few times before giving up.
                for _ in 0..NETWORK_RACE_CHECKS {
                    if let Some(labels) = self.network_exists(&docker, plan.name.as_str()).await? {
                        return ours_or_conflict(&labels, &want, "network", plan.name.as_str())
                            .map(|()| Ensured::Existing);
                    }
                    if err.kind() == ErrorKind::Unavailable {
                        break;
                    }
                    tokio::time::sleep(NETWORK_RACE_PAUSE).await;
                }
                Err(err.context(format_args!("creating network {}", plan.name)))
            }
        }
    }

    async fn remove_network(&self, name: &str) -> Result<()> {
        let docker = self.docker().await?;
        match docker.remove_network(name).await {
            Ok(()) => Ok(()),
            Err(e) => match self.on_error(e).await {
                e if e.kind() == ErrorKind::NotFound => Ok(()),
                e => Err(e.context(format_args!("removing network {name}"))),
            },
        }
    }

    async fn network_subnets(&self) -> Result<BTreeSet<Subnet>> {
        let docker = self.docker().await?;
        let networks = self
            .answer(
                docker
                    .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
                    .await,
            )
            .await?;
        Ok(networks
            .iter()
            .filter_map(|n| n.ipam.as_ref()?.config.as_ref())
            .flatten()
            .filter_map(|c| Subnet::parse(c.subnet.as_deref()?).ok())
            .collect())
    }

    async fn ensure_volume(&self, plan: &VolumePlan) -> Result<Ensured> {
        let docker = self.docker().await?;
        let want = to_hash(&plan.labels);
        let name = plan.name.as_str();
        if let Some(existing) = self.inspect_volume(&docker, name).await? {
            ours_or_conflict(&existing.labels, &want, "volume", name)?;
            // A kept volume comes back with the cap it was made with.
            if let (Some(disks), Some(number)) = (self.capped(name), loop_of_volume(&existing)) {
                disks.attach(name, number).await?;
            }
            return Ok(Ensured::Existing);
        }
        let mut request = VolumeCreateRequest {
            name: Some(plan.name.to_string()),
            driver: Some("local".to_owned()),
            labels: Some(want),
            ..Default::default()
        };
        let mut capped = None;
        if let Some(size) = plan.size {
            let support = self.disk_support();
            let disks = match &self.disks {
                Some(disks) if support.enforced => disks,
                _ => {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        format!("volume {name} needs a {size} cap, but: {}", support.detail),
                    ));
                }
            };
            let number = disks
                .create(name, size, &self.loops_taken(&docker).await?)
                .await?;
            request.driver_opts = Some(disk::volume_options(number).into_iter().collect());
            capped = Some((disks, number));
        }
        match docker.create_volume(request).await {
            Ok(_) => Ok(Ensured::Created),
            Err(e) => {
                if let Some((disks, number)) = capped
                    && let Err(undo) = disks.release(name, Some(number)).await
                {
                    tracing::warn!(volume = name, error = %undo, "a new disk image could not be removed");
                }
                Err(self
                    .on_error(e)
                    .await
                    .context(format_args!("creating volume {name}")))
            }
        }
    }

    fn disk_support(&self) -> DiskSupport {
        match &self.disks {
            Some(disks) => disks.support(engine_is_local()),
            None => DiskSupport {
                enforced: false,
                detail: "no directory for disk images is configured".to_owned(),
            },
        }
    }

    async fn prepare_volume(&self, name: &str) -> Result<()> {
        let Some(disks) = self.capped(name) else {
            return Ok(());
        };
        let docker = self.docker().await?;
        match self.loop_of(&docker, name).await? {
            Some(number) => disks.attach(name, number).await,
            None => Ok(()),
        }
    }

    async fn volume_usage(&self, name: &str) -> Result<Option<DiskUsage>> {
        Ok(self.capped(name).and_then(|disks| disks.usage(name)))
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        let docker = self.docker().await?;
        let capped = match self.capped(name) {
            Some(disks) => Some((disks, self.loop_of(&docker, name).await?)),
            None => None,
        };
        let options = RemoveVolumeOptionsBuilder::new().force(false).build();
        match docker.remove_volume(name, Some(options)).await {
            Ok(()) => {}
            Err(e) => match self.on_error(e).await {
                e if e.kind() == ErrorKind::NotFound => {}
                e => return Err(e.context(format_args!("removing volume {name}"))),
            },
        }
        match capped {
            Some((disks, number)) => disks.release(name, number).await,
            None => Ok(()),
        }
    }

    async fn create_container(&self, plan: &ContainerPlan) -> Result<String> {
        let docker = self.docker().await?;
        let options = CreateContainerOptionsBuilder::new()
            .name(plan.name.as_str())
            .build();
        match docker.create_container(Some(options), create_body(plan)).await {
            Ok(created) => {
                for warning in created.warnings {
                    tracing::warn!(container = %plan.name, %warning, "engine warning at create");
                }
                Ok(created.id)
            }
            Err(e) => match self.on_error(e).await {
                e if e.kind() == ErrorKind::NotFound => Err(Error::not_found(format!(
                    "image {} not found on the engine: build it (images/build.sh) or load it first",
                    plan.image
                ))
                .with_source(e)),
                e => Err(e.context(format_args!("creating container {}", plan.name))),
            },
        }
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let docker = self.docker().await?;
        match docker
            .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => Err(self.on_error(e).await.context("starting the container")),
        }
    }

    async fn stop_container(&self, id: &str) -> Result<()> {
        let docker = self.docker().await?;
        let options = StopContainerOptionsBuilder::new().t(STOP_GRACE_SECONDS).build();
        match docker.stop_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.on_error(e).await.context("stopping the container")),
        }
    }

    async fn restart_container(&self, id: &str) -> Result<()> {
        let docker = self.docker().await?;
        let options = RestartContainerOptionsBuilder::new()
            .t(STOP_GRACE_SECONDS)
            .build();
        match docker.restart_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.on_error(e).await.context("restarting the container")),
        }
    }

    async fn remove_container(&self, id: &str, mode: RemoveMode) -> Result<()> {
        let docker = self.docker().await?;
        let options = RemoveContainerOptionsBuilder::new()
            .force(mode == RemoveMode::Force)
            .v(true)
            .build();
        match docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) => match self.on_error(e).await {
                e if e.kind() == ErrorKind::NotFound => Ok(()),
                e => Err(e.context("removing the container")),
            },
        }
    }

    async fn inspect_container(&self, id_or_name: &str) -> Result<Option<ObservedContainer>> {
        let docker = self.docker().await?;
        match docker
            .inspect_container(
                id_or_name,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        {
            Ok(c) => {
                let config = c.config.unwrap_or_default();
                let start_error = c
                    .state
                    .as_ref()
                    .and_then(|s| s.error.clone())
                    .filter(|e| !e.is_empty());
                Ok(Some(ObservedContainer {
                    id: c.id.unwrap_or_default(),
                    name: c.name.unwrap_or_default().trim_start_matches('/').to_owned(),
                    status: c
                        .state
                        .as_ref()
                        .and_then(|s| s.status.as_ref())
                        .map_or(ContainerStatus::Unknown, |state| {
                            ContainerStatus::observed(state.as_ref(), c.restart_count.unwrap_or(0))
                        }),
                    image: config.image.unwrap_or_default(),
                    labels: config.labels.unwrap_or_default().into_iter().collect(),
                    start_error,
                    restart_count: c.restart_count,
                    exit_code: c.state.as_ref().and_then(|s| s.exit_code),
                }))
            }
            Err(e) => match self.on_error(e).await {
                e if e.kind() == ErrorKind::NotFound => Ok(None),
                e => Err(e),
            },
        }
    }

    async fn list_all_containers(&self) -> Result<Vec<EngineContainer>> {
        let docker = self.docker().await?;
        let options = ListContainersOptionsBuilder::new().all(true).build();
        let summaries = self.answer(docker.list_containers(Some(options)).await).await?;
        Ok(summaries
            .into_iter()
            .map(|s| EngineContainer {
                id: s.id.unwrap_or_default(),
                name: name_of(s.names),
                image: s.image.unwrap_or_default(),
                status: s.state.map(|state| state.to_string()).unwrap_or_default(),
                labels: s.labels.unwrap_or_default().into_iter().collect(),
                ports: s
                    .ports
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|p| {
                        let kind = p.typ.map_or_else(|| "tcp".to_owned(), |t| t.to_string());
                        Some((format!("{}/{kind}", p.private_port), p.public_port?))
                    })
                    .collect(),
                networks: s
                    .network_settings
                    .and_then(|n| n.networks)
                    .map(|n| n.into_keys().collect())
                    .unwrap_or_default(),
            })
            .collect())
    }

    async fn inspect_foreign(&self, id: &str) -> Result<Option<ForeignContainer>> {
        let Some(observed) = self.inspect_container(id).await? else {
            return Ok(None);
        };
        let docker = self.docker().await?;
        let inspected = self
            .answer(
                docker
                    .inspect_container(id, None::<bollard::query_parameters::InspectContainerOptions>)
                    .await,
            )
            .await?;
        let data_volume = inspected
            .mounts
            .unwrap_or_default()
            .into_iter()
            .find(|m| m.destination.as_deref() == Some("/data"))
            .and_then(|m| m.name);
        let env = own_env(
            &docker,
            inspected.image.as_deref(),
            inspected.config.and_then(|c| c.env).unwrap_or_default(),
        )
        .await;
        Ok(Some(ForeignContainer {
            observed,
            env,
            data_volume,
            created: inspected.created.unwrap_or_default(),
        }))
    }

    async fn stats(&self, id: &str) -> Result<ContainerStats> {
        let docker = self.docker().await?;
        // Not one-shot: the engine samples twice, a second apart, so the CPU share is known.
        let options = StatsOptionsBuilder::new().stream(false).one_shot(false).build();
        let sample = docker.stats(id, Some(options)).next().await;
        let sample = match sample {
            Some(result) => self.answer(result).await?,
            None => return Err(Error::internal("the engine sent no stats")),
        };
        let inspected = self
            .answer(
                docker
                    .inspect_container(id, None::<bollard::query_parameters::InspectContainerOptions>)
                    .await,
            )
            .await?;
        let state = inspected.state.unwrap_or_default();
        let mut stats = stats_of(&sample);
        stats.restart_count = inspected.restart_count.unwrap_or(0);
        stats.exit_code = state.exit_code.unwrap_or(0);
        stats.oom_killed = state.oom_killed.unwrap_or(false);
        stats.started_at = state.started_at.filter(|t| !t.starts_with("0001-01-01"));
        Ok(stats)
    }

    async fn list_managed(&self, filter: &BTreeMap<String, String>) -> Result<Vec<ObservedContainer>> {
        let docker = self.docker().await?;
        let mut wanted = vec![format!("{}={}", labels::MANAGED_BY, labels::MANAGED_BY_VALUE)];
        wanted.extend(filter.iter().map(|(k, v)| format!("{k}={v}")));
        let filters = HashMap::from([("label".to_owned(), wanted)]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let summaries = self.answer(docker.list_containers(Some(options)).await).await?;
        let mut observed: Vec<ObservedContainer> = summaries
            .into_iter()
            .map(|s| ObservedContainer {
                id: s.id.unwrap_or_default(),
                name: name_of(s.names),
                status: status_of(s.state.as_ref().map(|s| s.as_ref())),
                image: s.image.unwrap_or_default(),
                labels: s.labels.unwrap_or_default().into_iter().collect(),
                start_error: None,
                restart_count: None,
                exit_code: None,
            })
            .collect();
        // A listing carries no restart count: whether a restarting container is crash-looping
        // takes one inspection (only of those, which are few).
        for container in &mut observed {
            if container.status == ContainerStatus::Restarting
                && let Some(inspected) = self.inspect_container(&container.id).await?
            {
                container.status = inspected.status;
            }
        }
        Ok(observed)
    }

    async fn published_ports(&self, range: PortRange) -> Result<BTreeSet<u16>> {
        let docker = self.docker().await?;
        // The engine filters by published host port: only containers in our pool's range come back.
        let filters = HashMap::from([("publish".to_owned(), vec![format!("{range}")])]);
        let options = ListContainersOptionsBuilder::new()
            .all(false)
            .filters(&filters)
            .build();
        let summaries = self.answer(docker.list_containers(Some(options)).await).await?;
        Ok(summaries
            .iter()
            .filter_map(|s| s.ports.as_ref())
            .flatten()
            .filter_map(|p| p.public_port)
            .filter(|p| range.contains(*p))
            .collect())
    }

    async fn logs(&self, id: &str, request: &LogRequest) -> Result<LogStream> {
        let docker = self.docker().await?;
        // Ask once up front, so a missing container is a clear NotFound rather than a stream error.
        if self.inspect_container(id).await?.is_none() {
            return Err(Error::not_found(format!("no container {id} on the engine")));
        }
        let tail = request.tail.map_or_else(|| "all".to_owned(), |n| n.to_string());
        let since = request
            .since
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX));
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(request.follow)
            .tail(&tail)
            .timestamps(request.timestamps)
            .since(since)
            .build();
        let stream = docker.logs(id, Some(options)).filter_map(|item| async move {
            match item {
                Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                    Some(Ok(LogChunk {
                        stream: OutputStream::Stdout,
                        text: String::from_utf8_lossy(&message).into_owned(),
                    }))
                }
                Ok(LogOutput::StdErr { message }) => Some(Ok(LogChunk {
                    stream: OutputStream::Stderr,
                    text: String::from_utf8_lossy(&message).into_owned(),
                })),
                Ok(LogOutput::StdIn { .. }) => None,
                Err(e) => Some(Err(engine_error(e))),
            }
        });
        Ok(Box::pin(stream))
    }

    async fn exec(&self, id: &str, request: &ExecRequest) -> Result<ExecOutput> {
        let docker = self.docker().await?;
        // `sh` prints its pid, then becomes the command (`exec "$@"`): the arguments are never
        // parsed by the shell, and on timeout we know which process to kill.
        let mut cmd = vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            "echo $$; exec \"$@\"".to_owned(),
            "sh".to_owned(),
        ];
        cmd.extend(request.command.args().iter().cloned());
        let options = CreateExecOptions {
            cmd: Some(cmd),
            user: request.user.clone(),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let exec = match docker.create_exec(id, options).await {
            Ok(e) => e,
            Err(e) => return Err(self.on_error(e).await.context("starting the command")),
        };
        let mut output = match docker.start_exec(&exec.id, None).await {
            Ok(StartExecResults::Attached { output, .. }) => output,
            Ok(StartExecResults::Detached) => {
                return Err(Error::internal("the engine detached an attached exec"));
            }
            Err(e) => return Err(self.on_error(e).await.context("starting the command")),
        };
        // Until the command has ended, dropping this call (a client that hung up) kills it.
        let mut guard = KillOnDrop {
            docker: docker.clone(),
            container: id.to_owned(),
            pid: None,
        };
        let mut collected = Collected::default();
        let deadline = tokio::time::Instant::now() + request.timeout;
        // The deadline is checked between chunks too: a command flooding its output keeps the
        // stream always ready, and a timer alone would never get its turn.
        let ended = loop {
            let next = tokio::time::timeout_at(deadline, output.next()).await;
            match next {
                Err(_elapsed) => break Ended::TimedOut,
                Ok(None) => break Ended::Finished,
                Ok(Some(item)) => {
                    collected.push(item.map_err(engine_error)?);
                    guard.pid = collected.pid;
                    if tokio::time::Instant::now() >= deadline {
                        break Ended::TimedOut;
                    }
                    if collected.truncated {
                        break Ended::Capped;
                    }
                }
            }
        };
        let inspected = match ended {
            Ended::Finished => {
                // The output closes when the command exits, or when it closes its output and
                // goes on (`exec >&- 2>&-; sleep 60`): then it still has its time limit. (What
                // it started and left behind when it exited is not followed.)
                match self.exec_end(&docker, &exec.id, deadline).await? {
                    Some(inspected) => {
                        guard.pid = None;
                        inspected
                    }
                    None => return Err(timed_out(&mut guard, request).await),
                }
            }
            Ended::TimedOut => return Err(timed_out(&mut guard, request).await),
            Ended::Capped => {
                // No more output is read: the command is stopped rather than left blocked.
                guard.kill_now().await;
                return Ok(ExecOutput {
                    exit_code: -1,
                    stdout: collected.stdout(),
                    stderr: collected.stderr(),
                });
            }
        };
        Ok(ExecOutput {
            exit_code: inspected.exit_code.unwrap_or(-1),
            stdout: collected.stdout(),
            stderr: collected.stderr(),
        })
    }

    async fn download(&self, id: &str, path: &str) -> Result<Option<Vec<u8>>> {
        let docker = self.docker().await?;
        let options = DownloadFromContainerOptionsBuilder::new().path(path).build();
        let mut archive = Vec::new();
        let mut stream = docker.download_from_container(id, Some(options));
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => archive.extend_from_slice(&bytes),
                Err(e) => {
                    return match self.on_error(e).await {
                        e if e.kind() == ErrorKind::NotFound => Ok(None),
                        e => Err(e.context(format_args!("reading {path}"))),
                    };
                }
            }
        }
        first_file_of(&archive)
            .map_err(|e| Error::internal(format!("reading the archive of {path}")).with_source(e))
    }

    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()> {
        let docker = self.docker().await?;
        let options = RenameContainerOptionsBuilder::new().name(new_name).build();
        match docker.rename_container(id, options).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self
                .on_error(e)
                .await
                .context(format_args!("renaming to {new_name}"))),
        }
    }

    async fn list_managed_volumes(&self) -> Result<Vec<ObservedObject>> {
        let docker = self.docker().await?;
        Ok(self
            .managed_volumes(&docker)
            .await?
            .into_iter()
            .map(|v| ObservedObject {
                id: v.name.clone(),
                name: v.name,
                labels: v.labels.into_iter().collect(),
            })
            .collect())
    }

    async fn list_managed_networks(&self) -> Result<Vec<ObservedObject>> {
        let docker = self.docker().await?;
        let options = ListNetworksOptionsBuilder::new()
            .filters(&managed_filter())
            .build();
        let networks = self.answer(docker.list_networks(Some(options)).await).await?;
        Ok(networks
            .into_iter()
            .map(|n| ObservedObject {
                id: n.id.unwrap_or_default(),
                name: n.name.unwrap_or_default(),
                labels: n.labels.unwrap_or_default().into_iter().collect(),
            })
            .collect())
    }

    async fn container_events(&self) -> Result<EventStream> {
        let docker = self.docker().await?;
        let mut filters = managed_filter();
        filters.insert("type".to_owned(), vec!["container".to_owned()]);
        let options = EventsOptionsBuilder::new().filters(&filters).build();
        let stream = docker.events(Some(options)).filter_map(|item| async move {
            match item {
                Ok(event) => {
                    let id = event.actor.and_then(|a| a.id)?;
                    Some(Ok(ContainerEvent {
                        id,
                        action: event.action.unwrap_or_default(),
                    }))
                }
                Err(e) => Some(Err(engine_error(e))),
            }
        });
        Ok(Box::pin(stream))
    }

    async fn upload(&self, id: &str, destination: &str, entries: &[UploadEntry]) -> Result<()> {
        let docker = self.docker().await?;
        let archive =
            tar_of(entries).map_err(|e| Error::internal("building the upload archive").with_source(e))?;
        let options = UploadToContainerOptionsBuilder::new().path(destination).build();
        match docker
            .upload_to_container(id, Some(options), bollard::body_full(archive.into()))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => Err(self
                .on_error(e)
                .await
                .context(format_args!("writing files into {destination}"))),
        }
    }
}

/// A container's environment without the assignments its image sets with the same values: what
/// the image sets is not the container's own, only the rest moves with it (adoption).
pub async fn own_env(docker: &Docker, image: Option<&str>, env: Vec<String>) -> BTreeMap<String, String> {
    let image_env: BTreeSet<String> = match image {
        Some(image) => match docker.inspect_image(image).await {
            Ok(i) => i
                .config
                .and_then(|c| c.env)
                .unwrap_or_default()
                .into_iter()
                .collect(),
            Err(_) => BTreeSet::new(),
        },
        None => BTreeSet::new(),
    };
    env.into_iter()
        .filter(|assignment| !image_env.contains(assignment))
        .filter_map(|assignment| {
            let (key, value) = assignment.split_once('=')?;
            Some((key.to_owned(), value.to_owned()))
        })
        .collect()
}

/// The label filter `managed-by=ContainerManager`.
pub fn managed_filter() -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_owned(),
        vec![format!("{}={}", labels::MANAGED_BY, labels::MANAGED_BY_VALUE)],
    )])
}

/// The contents of the first regular file in a tar archive (the engine's archive of one path).
fn first_file_of(archive: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let mut reader = tar::Archive::new(archive);
    for entry in reader.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type().is_file() {
            let mut contents = Vec::new();
            entry.read_to_end(&mut contents)?;
            return Ok(Some(contents));
        }
    }
    Ok(None)
}

/// An existing network or volume is ours when its owner labels match the ones we would give it.
/// A stats sample in our terms: CPU the way `docker stats` computes it, memory without the page
/// cache (`inactive_file`), network and block I/O summed over interfaces and devices.
fn stats_of(sample: &bollard::models::ContainerStatsResponse) -> ContainerStats {
    let cpu = sample.cpu_stats.clone().unwrap_or_default();
    let previous = sample.precpu_stats.clone().unwrap_or_default();
    let total = |c: &bollard::models::ContainerCpuStats| {
        c.cpu_usage.as_ref().and_then(|u| u.total_usage).unwrap_or(0)
    };
    let cpu_delta = total(&cpu).saturating_sub(total(&previous));
    let system_delta = cpu
        .system_cpu_usage
        .unwrap_or(0)
        .saturating_sub(previous.system_cpu_usage.unwrap_or(0));
    let cpus = f64::from(cpu.online_cpus.unwrap_or(1).max(1));
    let cpu_percent = if system_delta > 0 {
        cpu_delta as f64 / system_delta as f64 * cpus * 100.0
    } else {
        0.0
    };
    let memory = sample.memory_stats.clone().unwrap_or_default();
    let cache = memory
        .stats
        .as_ref()
        .and_then(|s| {
            s.get("inactive_file")
                .or_else(|| s.get("total_inactive_file"))
                .copied()
        })
        .unwrap_or(0);
    let networks = sample.networks.clone().unwrap_or_default();
    let io = sample
        .blkio_stats
        .as_ref()
        .and_then(|b| b.io_service_bytes_recursive.clone())
        .unwrap_or_default();
    let io_sum = |op: &str| {
        io.iter()
            .filter(|e| e.op.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(op)))
            .filter_map(|e| e.value)
            .sum()
    };
    ContainerStats {
        cpu_percent: (cpu_percent * 100.0).round() / 100.0,
        memory_bytes: memory.usage.unwrap_or(0).saturating_sub(cache),
        memory_limit_bytes: memory.limit.unwrap_or(0),
        pids: sample.pids_stats.as_ref().and_then(|p| p.current).unwrap_or(0),
        network_rx_bytes: networks.values().filter_map(|n| n.rx_bytes).sum(),
        network_tx_bytes: networks.values().filter_map(|n| n.tx_bytes).sum(),
        block_read_bytes: io_sum("read"),
        block_write_bytes: io_sum("write"),
        ..ContainerStats::default()
    }
}

/// The loop device a capped volume's options name.
fn loop_of_volume(volume: &bollard::models::Volume) -> Option<u32> {
    volume.options.get("device").and_then(|d| disk::loop_number(d))
}

/// True when the engine is reached over the local socket (loop devices are then the engine's).
fn engine_is_local() -> bool {
    errors::engine_address().starts_with("unix://")
}

fn ours_or_conflict(
    existing: &HashMap<String, String>,
    want: &HashMap<String, String>,
    what: &str,
    name: &str,
) -> Result<()> {
    if owner_of(existing) == owner_of(want) {
        Ok(())
    } else {
        Err(Error::conflict(format!(
            "{what} {name} exists but belongs to someone else (its labels differ); remove or rename it"
        )))
    }
}

fn create_body(plan: &ContainerPlan) -> ContainerCreateBody {
    let mut port_bindings = HashMap::new();
    let mut exposed = Vec::new();
    for binding in &plan.ports {
        let key = format!("{}/tcp", binding.container_port);
        exposed.push(key.clone());
        port_bindings.insert(
            key,
            Some(vec![DockerPortBinding {
                host_ip: Some(binding.host_ip.to_string()),
                host_port: Some(binding.host_port.to_string()),
            }]),
        );
    }
    let memory = i64::try_from(plan.memory.bytes()).unwrap_or(i64::MAX);
    let restart = match plan.restart_policy {
        RestartPolicy::UnlessStopped => RestartPolicyNameEnum::UNLESS_STOPPED,
        RestartPolicy::Always => RestartPolicyNameEnum::ALWAYS,
        RestartPolicy::OnFailure => RestartPolicyNameEnum::ON_FAILURE,
        RestartPolicy::No => RestartPolicyNameEnum::NO,
    };
    ContainerCreateBody {
        image: Some(plan.image.to_string()),
        cmd: plan.command.as_ref().map(|c| c.args().to_vec()),
        env: Some(plan.env.to_assignments()),
        labels: Some(to_hash(&plan.labels)),
        exposed_ports: Some(exposed),
        host_config: Some(HostConfig {
            binds: Some(vec![format!("{}:{}", plan.volume, cm_core::DATA_PATH)]),
            network_mode: Some(plan.network.to_string()),
            port_bindings: Some(port_bindings),
            memory: Some(memory),
            // No swap beyond the memory limit: the limit means what it says.
            memory_swap: Some(memory),
            nano_cpus: Some(i64::try_from(plan.cpus.nano_cpus()).unwrap_or(i64::MAX)),
            pids_limit: Some(plan.pids_limit),
            restart_policy: Some(DockerRestartPolicy {
                name: Some(restart),
                maximum_retry_count: None,
            }),
            cap_drop: Some(vec!["ALL".to_owned()]),
            cap_add: Some(plan.cap_add.clone()),
            security_opt: Some(vec!["no-new-privileges:true".to_owned()]),
            // Rotated logs whatever the engine's default driver: a chatty container can not
            // fill the host's disk, and `docker logs` keeps working.
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".to_owned()),
                config: Some(HashMap::from([
                    ("max-size".to_owned(), plan.logs.max_size().to_string()),
                    ("max-file".to_owned(), plan.logs.max_files().to_string()),
                ])),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Output of an exec, with the pid line of our wrapper taken off the front of stdout.
#[derive(Default)]
struct Collected {
    pid: Option<u32>,
    pid_line: Vec<u8>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// What stdout and stderr take in a JSON answer so far.
    answer_size: usize,
    truncated: bool,
}

impl Collected {
    fn push(&mut self, chunk: LogOutput) {
        match chunk {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                let mut bytes: &[u8] = &message;
                if self.pid.is_none() {
                    match bytes.iter().position(|b| *b == b'\n') {
                        Some(end) => {
                            self.pid_line.extend_from_slice(&bytes[..end]);
                            self.pid = Some(
                                String::from_utf8_lossy(&self.pid_line)
                                    .trim()
                                    .parse()
                                    .unwrap_or(0),
                            );
                            bytes = &bytes[end + 1..];
                        }
                        None => {
                            self.pid_line.extend_from_slice(bytes);
                            return;
                        }
                    }
                }
                self.append(Stream::Out, bytes);
            }
            LogOutput::StdErr { message } => self.append(Stream::Err, &message),
            LogOutput::StdIn { .. } => {}
        }
    }

    /// Keeps as much of `bytes` as the answer has room for.
    fn append(&mut self, stream: Stream, bytes: &[u8]) {
        let mut kept = 0;
        for &byte in bytes {
            let size = json_size(byte);
            if self.answer_size + size > EXEC_OUTPUT_MAX {
                self.truncated = true;
                break;
            }
            self.answer_size += size;
            kept += 1;
        }
        let buffer = match stream {
            Stream::Out => &mut self.stdout,
            Stream::Err => &mut self.stderr,
        };
        buffer.extend_from_slice(&bytes[..kept]);
    }

    fn stdout(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.stdout).into_owned();
        if self.truncated {
            text.push_str("\n[output cut off at 16 MiB; the command was stopped]\n");
        }
        text
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

enum Stream {
    Out,
    Err,
}

/// The most bytes one output byte can take in a JSON answer: a control character is escaped as
/// `\u00XX`, and a byte that is not valid UTF-8 becomes U+FFFD (three bytes).
fn json_size(byte: u8) -> usize {
    match byte {
        b'"' | b'\\' | b'\n' | b'\t' | b'\r' | 0x08 | 0x0c => 2,
        0x00..=0x1f => 6,
        0x80..=0xff => 3,
        _ => 1,
    }
}

/// Kills a command past its time limit and says so.
async fn timed_out(guard: &mut KillOnDrop, request: &ExecRequest) -> Error {
    guard.kill_now().await;
    Error::new(
        ErrorKind::Timeout,
        format!(
            "the command did not finish within {} seconds and was killed",
            request.timeout.as_secs()
        ),
    )
}

/// How an exec's output stream ended.
enum Ended {
    /// The command exited.
    Finished,
    /// Its time limit passed.
    TimedOut,
    /// It wrote more than the output cap.
    Capped,
}

/// Kills an exec's command inside the container when dropped while it may still run: the call
/// was abandoned (its client hung up) before the command ended.
struct KillOnDrop {
    docker: Docker,
    container: String,
    pid: Option<u32>,
}

impl KillOnDrop {
    /// Kills the command now (and not again on drop).
    async fn kill_now(&mut self) {
        if let Some(pid) = self.pid.take() {
            kill_in_container(&self.docker, &self.container, pid).await;
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let docker = self.docker.clone();
            let container = std::mem::take(&mut self.container);
            tracing::info!(container = %container, pid, "the caller left; killing its command");
            runtime.spawn(async move { kill_in_container(&docker, &container, pid).await });
        }
    }
}

/// Kills a timed-out exec's process inside the container (best effort: the command is abandoned anyway).
async fn kill_in_container(docker: &Docker, id: &str, pid: u32) {
    if pid <= 1 {
        return;
    }
    let options = CreateExecOptions {
        // Its process group too when it leads one (a pipeline, a shell's children), then itself.
        cmd: Some(vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            "kill -KILL -- \"-$1\" 2>/dev/null; kill -KILL \"$1\"".to_owned(),
            "sh".to_owned(),
            pid.to_string(),
        ]),
        user: Some("root".to_owned()),
        ..Default::default()
    };
    let killed = async {
        let exec = docker.create_exec(id, options).await?;
        docker.start_exec(&exec.id, None).await?;
        Ok::<(), bollard::errors::Error>(())
    }
    .await;
    if let Err(e) = killed {
        tracing::warn!(container = id, pid, error = %e, "could not kill a timed-out command");
    }
}

/// A tar archive of the entries, with their modes and owners.
fn tar_of(entries: &[UploadEntry]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(entry.mode);
        header.set_uid(entry.uid);
        header.set_gid(entry.gid);
        header.set_mtime(mtime);
        match &entry.contents {
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder.append_data(&mut header, &entry.path, std::io::empty())?;
            }
            Some(bytes) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(bytes.len() as u64);
                builder.append_data(&mut header, &entry.path, bytes.as_slice())?;
            }
        }
    }
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_output_strips_the_pid_line_even_when_split() {
        let mut collected = Collected::default();
        collected.push(LogOutput::StdOut { message: "12".into() });
        collected.push(LogOutput::StdOut {
            message: "3\nhello\n".into(),
        });
        collected.push(LogOutput::StdErr {
            message: "oops\n".into(),
        });
        assert_eq!(collected.pid, Some(123));
        assert_eq!(collected.stdout(), "hello\n");
        assert_eq!(collected.stderr(), "oops\n");
    }

    #[test]
    fn tar_keeps_modes_and_owners() {
        let archive = tar_of(&[
            UploadEntry {
                path: ".ssh".into(),
                mode: 0o700,
                uid: 1000,
                gid: 1000,
                contents: None,
            },
            UploadEntry {
                path: ".ssh/authorized_keys".into(),
                mode: 0o600,
                uid: 1000,
                gid: 1000,
                contents: Some(b"key\n".to_vec()),
            },
        ])
        .unwrap();
        let mut reader = tar::Archive::new(archive.as_slice());
        let headers: Vec<(String, u32, u64)> = reader
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            headers,
            [
                (".ssh".to_owned(), 0o700, 1000),
                (".ssh/authorized_keys".to_owned(), 0o600, 1000)
            ]
        );
    }
}
