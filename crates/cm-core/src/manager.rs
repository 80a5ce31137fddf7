//! The use cases, in one `Manager`: create, list, get, start, stop, restart, logs, exec, delete,
//! types, and SSH keys.
//!
//! Every use case validates before it touches anything, records its intent in the store before
//! its first side effect, and undoes what it did when a later step fails.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::config::{Config, ContainerType, SSH_CONTAINER_PORT, SSH_USER, SshMode};
use crate::error::{Error, ErrorKind, Result};
use crate::keys::{SshPublicKey, StoredKey, render_authorized_keys};
use crate::limits::{Running, Work};
use crate::live::StatusView;
use crate::names::{ContainerName, NetworkName, TypeName, UserId, VolumeName, quote};
use crate::network::PortProbe;
use crate::ports::{
    Clock, ContainerPlan, ContainerRuntime, CreateReservation, EngineInfo, Ensured, ExecOutput, ExecRequest,
    FailPoints, KeyParser, LogRequest, LogStream, NetworkPlan, ObservedContainer, OperationKind, PortBinding,
    Proxy, ProxyStatus, RemoveMode, Route, RouteState, RouteStatus, Store, UploadEntry, VolumePlan,
};
use crate::reconcile::{Outcome, ReconcileOptions};
use crate::spec::{ContainerSpec, ContainerStatus, labels, owner_labels, url_path};
use crate::values::{Command, CpuLimit, EnvVars, ImageRef, MemoryLimit};

/// The adapters a manager drives.
#[derive(Clone)]
pub struct Adapters {
    /// The container engine.
    pub runtime: Arc<dyn ContainerRuntime>,
    /// The desired state.
    pub store: Arc<dyn Store>,
    /// The reverse proxy.
    pub proxy: Arc<dyn Proxy>,
    /// The SSH key parser.
    pub keys: Arc<dyn KeyParser>,
    /// The host port probe.
    pub probe: Arc<dyn PortProbe>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Fail points for crash tests ([`crate::NoFailPoints`] in production).
    pub fail_points: Arc<dyn FailPoints>,
}

/// ContainerManager's use cases over a set of adapters.
#[derive(Clone)]
pub struct Manager {
    config: Arc<Config>,
    adapters: Adapters,
    status_view: Option<Arc<StatusView>>,
    /// The labels every object this manager makes carries: the configured extra labels and
    /// this installation's (see [`Manager::with_installation`]).
    own_labels: Arc<BTreeMap<String, String>>,
    running: Arc<Running>,
    /// What it counted since it started (see [`Manager::metrics_text`]).
    metrics: Arc<crate::metrics::Metrics>,
    /// The last minutes of each running container's use (see [`Manager::sample_usage`]).
    usage: Arc<crate::health::UsageHistory>,
    /// Set when the server stops: followed logs end so that it need not wait for them.
    stopping: Arc<tokio::sync::watch::Sender<bool>>,
    /// Activity and wakes of idle-stopped containers (see `idle.rs`).
    pub(crate) idle: Arc<crate::idle::Idle>,
}

/// A validated create request.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// The owner.
    pub user_id: UserId,
    /// The type; must be configured.
    pub container_type: TypeName,
    /// Replaces the type's image.
    pub image: Option<ImageRef>,
    /// Replaces the type's command.
    pub command: Option<Command>,
    /// Added to the type's environment.
    pub env: EnvVars,
    /// Replaces the type's memory limit.
    pub memory: Option<MemoryLimit>,
    /// Replaces the type's CPU limit.
    pub cpus: Option<CpuLimit>,
    /// Turns SSH on for a type where it is optional.
    pub enable_ssh: bool,
    /// Public keys to authorize from the start (raw text, parsed before anything is touched).
    pub ssh_keys: Vec<String>,
}

/// A create request as text, from a command line, a form or JSON.
#[derive(Debug, Clone, Default)]
pub struct CreateForm {
    /// The user id.
    pub user_id: String,
    /// The type name.
    pub container_type: String,
    /// An image, or empty for the type's.
    pub image: Option<String>,
    /// A command line, or empty for the type's.
    pub command: Option<String>,
    /// `KEY=VALUE` lines.
    pub env: Vec<String>,
    /// A memory limit such as `512m`.
    pub memory: Option<String>,
    /// A CPU limit such as `0.5`.
    pub cpus: Option<String>,
    /// Turn SSH on where it is optional.
    pub enable_ssh: bool,
    /// Public keys.
    pub ssh_keys: Vec<String>,
}

/// What a create produced.
#[derive(Debug, Clone, Serialize)]
pub struct CreateOutcome {
    /// The new record.
    pub spec: ContainerSpec,
    /// The route's fate: `None` when it is live or routing is disabled, else nginx's refusal.
    pub route_error: Option<String>,
}

/// The `ssh` command line that reaches a container's SSH `port` on `host`.
pub fn ssh_command(host: &str, port: u16) -> String {
    format!("ssh -p {port} {SSH_USER}@{host}")
}

/// A lifecycle change of a container, as the frontends offer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Start it.
    Start,
    /// Stop it.
    Stop,
    /// Restart it.
    Restart,
}

impl Lifecycle {
    /// What the caller must be allowed to do.
    pub fn action(self) -> crate::auth::Action {
        match self {
            Lifecycle::Start => crate::auth::Action::StartContainer,
            Lifecycle::Stop => crate::auth::Action::StopContainer,
            Lifecycle::Restart => crate::auth::Action::RestartContainer,
        }
    }

    /// The past tense for messages: `started`, `stopped`, `restarted`.
    pub fn done(self) -> &'static str {
        match self {
            Lifecycle::Start => "started",
            Lifecycle::Stop => "stopped",
            Lifecycle::Restart => "restarted",
        }
    }
}

/// The field an engine error carries when a host port was taken by someone else (adapters mark
/// it; create then tries other ports).
pub const PORT_TAKEN_FIELD: &str = "port";

/// How many sets of ports a create tries when the engine finds one taken.
const PORT_ATTEMPTS: u32 = 3;

/// How to delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteOptions {
    /// Kill a running container instead of refusing.
    pub force: bool,
    /// Also remove the data volume.
    pub purge: bool,
}

/// The state a listing was made from (see [`Manager::listing_revision`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListingRevision {
    /// The store's revision.
    pub store: u64,
    /// The status view's generation.
    pub statuses: u64,
}

/// The containers of a listing and whether their statuses are live.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Listing {
    /// The records, with live statuses when `stale` is `None`.
    pub containers: Vec<ContainerSpec>,
    /// Why the statuses are the stored ones (the engine could not be asked).
    pub stale: Option<String>,
}

/// The outcome of adding a key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyAdded {
    /// The parsed key.
    pub key: SshPublicKey,
    /// False when the container had it already.
    pub added: bool,
    /// True when written into the running container now; false when it is stopped and gets it at start.
    pub applied: bool,
}

/// How a user reaches a container over SSH.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SshInfo {
    /// The container.
    pub container_name: String,
    /// The host to connect to.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The login user.
    pub user: String,
    /// A ready command line.
    pub command: String,
    /// The docksh command line.
    pub docksh: String,
    /// The fingerprints of the authorized keys.
    pub fingerprints: Vec<String>,
}

/// The default time limit of an exec.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// The operation step noting that a create made the user's network.
pub(crate) const STEP_NETWORK_CREATED: &str = "network_created";
/// The operation step noting that a create made the data volume.
pub(crate) const STEP_VOLUME_CREATED: &str = "volume_created";

/// Something a create did that undo must reverse.
pub(crate) enum Undo {
    Container(String),
    Volume(VolumeName),
    Network(NetworkName, UserId),
}

impl CreateRequest {
    /// Validates a form field by field; the error names the first bad field.
    pub fn parse(form: &CreateForm, config: &Config) -> Result<Self> {
        let user_id = UserId::parse(form.user_id.trim()).map_err(|e| e.for_field("user_id"))?;
        let kind = config
            .container_type(form.container_type.trim())
            .map_err(|e| e.for_field("container_type"))?;
        let image = nonempty(&form.image)
            .map(ImageRef::parse)
            .transpose()
            .map_err(|e| e.for_field("image"))?;
        let command = nonempty(&form.command)
            .map(Command::parse)
            .transpose()
            .map_err(|e| e.for_field("command"))?;
        let env_lines: Vec<&str> = form
            .env
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect();
        let env = EnvVars::parse_assignments(&env_lines).map_err(|e| e.for_field("env"))?;
        let memory = nonempty(&form.memory)
            .map(MemoryLimit::parse)
            .transpose()
            .map_err(|e| e.for_field("memory"))?;
        let cpus = nonempty(&form.cpus)
            .map(CpuLimit::parse)
            .transpose()
            .map_err(|e| e.for_field("cpus"))?;
        Ok(CreateRequest {
            user_id,
            container_type: kind.name.clone(),
            image,
            command,
            env,
            memory,
            cpus,
            enable_ssh: form.enable_ssh,
            ssh_keys: form
                .ssh_keys
                .iter()
                .filter(|k| !k.trim().is_empty())
                .cloned()
                .collect(),
        })
    }
}

/// The trimmed text of an optional form field, `None` when absent or blank.
fn nonempty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The variables the manager sets itself; a request may not override them.
pub(crate) const RESERVED_ENV: [&str; 4] = ["USER_ID", "CONTAINER_TYPE", "PORT", "BASE_PATH"];

impl Manager {
    /// A manager over `adapters` with `config`.
    pub fn new(config: Config, adapters: Adapters) -> Self {
        Manager {
            own_labels: Arc::new(config.extra_labels.clone()),
            config: Arc::new(config),
            adapters,
            status_view: None,
            running: Arc::default(),
            metrics: Arc::default(),
            usage: Arc::default(),
            stopping: Arc::new(tokio::sync::watch::channel(false).0),
            idle: Arc::new(crate::idle::Idle::new(None)),
        }
    }

    /// Labels what it makes with installation `id` (from the database), so that prune tells its
    /// own objects from those of other installations and of the Python original.
    pub fn with_installation(mut self, id: &str) -> Self {
        let mut labels = self.config.extra_labels.clone();
        labels.insert(labels::INSTALLATION.to_owned(), id.to_owned());
        self.own_labels = Arc::new(labels);
        self
    }

    /// What the manager counted since it started.
    pub(crate) fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// The sampled use of running containers.
    pub(crate) fn usage_history(&self) -> &crate::health::UsageHistory {
        &self.usage
    }

    /// The live status view, when this process keeps one.
    pub(crate) fn status_view(&self) -> Option<&Arc<StatusView>> {
        self.status_view.as_ref()
    }

    /// The slots of running execs and follows.
    pub(crate) fn running(&self) -> &Arc<Running> {
        &self.running
    }

    /// Turns true when the server stops.
    pub(crate) fn stopping_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Commands and followed logs running now.
    pub(crate) fn in_flight(&self) -> (usize, usize) {
        self.running.in_flight()
    }

    /// The labels of everything this manager makes (extra labels and installation).
    pub(crate) fn own_labels(&self) -> &BTreeMap<String, String> {
        &self.own_labels
    }

    /// This installation's id, when it has one.
    pub fn installation(&self) -> Option<&str> {
        self.own_labels.get(labels::INSTALLATION).map(String::as_str)
    }

    /// Answers listings from `view` while it is live (see [`Manager::feed_status_view`]).
    pub fn with_status_view(mut self, view: Arc<StatusView>) -> Self {
        self.status_view = Some(view);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The adapters, for frontends that report on them (proxy status, engine health).
    pub fn adapters(&self) -> &Adapters {
        &self.adapters
    }

    /// The configured container types.
    pub fn types(&self) -> Vec<&ContainerType> {
        self.config.types.values().collect()
    }

    /// The engine's health and version.
    pub async fn engine_info(&self) -> Result<EngineInfo> {
        self.adapters.runtime.engine_info().await
    }

    /// Whether HTTP routing works.
    pub fn proxy_status(&self) -> ProxyStatus {
        self.adapters.proxy.status()
    }

    /// Whether HTTP routing works, asking nginx whether it answers.
    pub async fn probe_proxy(&self) -> ProxyStatus {
        self.adapters.proxy.probe().await
    }

    // -----------------------------------------------------------------------------------------
    // Create.

    /// Creates, starts and routes a user's container of a type.
    ///
    /// `progress` hears a short line at each step. On failure everything this call made is undone:
    /// no container, no new volume, no new network, no record and no lease is left behind.
    pub async fn create(
        &self,
        request: CreateRequest,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<CreateOutcome> {
        let started = std::time::Instant::now();
        let outcome = self.create_measured(request, progress).await;
        self.metrics.observe("create", &outcome, started.elapsed());
        outcome
    }

    async fn create_measured(
        &self,
        request: CreateRequest,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<CreateOutcome> {
        let kind = self
            .config
            .container_type(request.container_type.as_str())
            .map_err(|e| e.for_field("container_type"))?
            .clone();
        let ssh = match (kind.ssh, request.enable_ssh || !request.ssh_keys.is_empty()) {
            (SshMode::On, _) | (SshMode::Optional, true) => true,
            (SshMode::Optional, false) => false,
            (SshMode::Off, false) => false,
            (SshMode::Off, true) => {
                return Err(
                    Error::invalid(format!("container type {} has no SSH access", kind.name))
                        .for_field("ssh_key"),
                );
            }
        };
        let keys = request
            .ssh_keys
            .iter()
            .map(|raw| self.adapters.keys.parse(raw))
            .collect::<Result<Vec<_>>>()
            .map_err(|e| e.for_field("ssh_key"))?;
        for reserved in RESERVED_ENV {
            if request.env.get(reserved).is_some() {
                return Err(Error::invalid(format!(
                    "environment variable {reserved} is set by the manager and can not be overridden"
                ))
                .for_field("env"));
            }
        }

        let name = ContainerName::of(&request.user_id, &kind.name);
        if let Some(existing) = self.adapters.store.get_by_name(&name).await? {
            return Err(already_exists(&existing));
        }
        self.check_quota(
            &request.user_id,
            request.memory.unwrap_or(kind.memory),
            request.cpus.unwrap_or(kind.cpus),
            kind.disk,
        )
        .await?;
        if kind.disk.is_some() {
            let support = self.adapters.runtime.disk_support();
            if !support.enforced {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "container type {} caps its disk at {}, but this host can not enforce disk caps: {}",
                        kind.name,
                        kind.disk.map(|d| d.to_string()).unwrap_or_default(),
                        support.detail
                    ),
                )
                .for_field("container_type"));
            }
        }
        progress("checking the engine");
        self.adapters.runtime.engine_info().await?;
        let exclude = self
            .adapters
            .runtime
            .published_ports(self.config.port_pool)
            .await?;

        let started = self.adapters.clock.now();
        let reservation = CreateReservation {
            name: name.clone(),
            user: request.user_id.clone(),
            kind: kind.name.clone(),
            range: self.config.port_pool,
            ports: if ssh { 2 } else { 1 },
            exclude,
            started,
        };
        let mut reservation = reservation;
        let mut attempts = 0;
        loop {
            let leased = match self.reserve(&reservation).await {
                Err(e)
                    if e.kind() == ErrorKind::Conflict
                        && self.recover_interrupted(&name, progress).await? =>
                {
                    self.reserve(&reservation).await?
                }
                other => other?,
            };
            progress(&format!("leased port {}", join_ports(&leased)));

            let mut undo = Vec::new();
            let result = self
                .create_steps(&request, &kind, &keys, &leased, started, &mut undo, progress)
                .await;
            match result {
                Ok(spec) => {
                    let route_error = self.route(&spec, &kind).await;
                    progress("done");
                    return Ok(CreateOutcome { spec, route_error });
                }
                Err(err) => {
                    progress("failed, undoing");
                    let clean = self.undo_create(&name, undo).await;
                    // Someone took a leased port between the pool's probe and the engine's bind
                    // (a foreign listener, a container not ours): try other ports, a few times.
                    attempts += 1;
                    if clean && err.field() == Some(PORT_TAKEN_FIELD) && attempts < PORT_ATTEMPTS {
                        tracing::info!(container = %name, ports = ?leased, "a leased port was taken meanwhile; trying others");
                        reservation.exclude.extend(leased);
                        continue;
                    }
                    return Err(err);
                }
            }
        }
    }

    /// Records the intent of a create and leases its ports; a conflict names the existing container.
    async fn reserve(&self, reservation: &CreateReservation) -> Result<Vec<u16>> {
        let store = &self.adapters.store;
        match store.begin_create(reservation, self.adapters.probe.clone()).await {
            Err(e) if e.kind() == ErrorKind::Conflict => match store.get_by_name(&reservation.name).await? {
                // A record may have appeared between the first check and the transaction.
                Some(existing) => Err(already_exists(&existing)),
                None => Err(e),
            },
            other => other,
        }
    }

    /// Finishes or undoes an interrupted operation on `name` whose process is gone, so that the
    /// user is never locked out of re-creating; `false` when there is none (a live one runs).
    async fn recover_interrupted(
        &self,
        name: &ContainerName,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<bool> {
        let store = &self.adapters.store;
        let mut recovered = false;
        for operation in store.claim_abandoned().await? {
            if &operation.name != name {
                store.unclaim(&operation.name).await?;
                continue;
            }
            progress("finishing an interrupted operation first");
            let finding = self.recover(operation, ReconcileOptions::default()).await;
            tracing::info!(container = %name, ?finding, "interrupted operation settled before create");
            recovered = finding.outcome == Outcome::Fixed;
        }
        Ok(recovered)
    }

    #[allow(clippy::too_many_arguments)]
    async fn create_steps(
        &self,
        request: &CreateRequest,
        kind: &ContainerType,
        keys: &[SshPublicKey],
        leased: &[u16],
        started: SystemTime,
        undo: &mut Vec<Undo>,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<ContainerSpec> {
        let mut spec = new_spec(request, kind, leased, started, self.config.subnet_pool.range);
        for key in keys {
            self.adapters
                .store
                .add_key(&spec.container_name, key, started)
                .await?;
        }
        self.materialize(&mut spec, kind, undo, progress, "create")
            .await?;
        self.adapters.store.finish_create(&spec).await?;
        self.announce(&spec);
        self.fail_point("create:recorded");
        Ok(spec)
    }

    /// Makes a spec real on the engine: the user's network (with its subnet lease), the data
    /// volume, and the container with its keys, started. Objects made new here go on `undo` and
    /// are noted as steps of the running operation, so a crash can be undone precisely.
    pub(crate) async fn materialize(
        &self,
        spec: &mut ContainerSpec,
        kind: &ContainerType,
        undo: &mut Vec<Undo>,
        progress: &(dyn Fn(&str) + Send + Sync),
        context: &str,
    ) -> Result<()> {
        let runtime = &self.adapters.runtime;
        let store = &self.adapters.store;
        let name = spec.container_name.clone();
        let user = spec.user_id.clone();
        let extra = &self.own_labels;

        progress("preparing the user network");
        spec.subnet = match store.subnet_of(&user).await? {
            Some(subnet) => subnet,
            // A new lease must avoid every network on the engine: ask it only then.
            None => {
                let engine_subnets = runtime.network_subnets().await?;
                store
                    .lease_subnet(&user, self.config.subnet_pool, &engine_subnets)
                    .await?
            }
        };
        let network_plan = NetworkPlan {
            name: spec.network_name.clone(),
            subnet: spec.subnet,
            labels: owner_labels(&user, None, extra),
        };
        if runtime.ensure_network(&network_plan).await? == Ensured::Created {
            undo.push(Undo::Network(spec.network_name.clone(), user.clone()));
            store.record_step(&name, STEP_NETWORK_CREATED).await?;
        }
        self.fail_point(&format!("{context}:network"));

        progress("preparing the data volume");
        // The original's volumes carry no labels: an adopted container's is taken as it is.
        let volume_labels = if spec.volume_name.is_original() {
            BTreeMap::new()
        } else {
            owner_labels(&user, Some(&spec.container_type), extra)
        };
        let volume_plan = VolumePlan {
            name: spec.volume_name.clone(),
            labels: volume_labels,
            size: spec.disk,
        };
        if runtime.ensure_volume(&volume_plan).await? == Ensured::Created {
            undo.push(Undo::Volume(spec.volume_name.clone()));
            store.record_step(&name, STEP_VOLUME_CREATED).await?;
        }
        self.fail_point(&format!("{context}:volume"));

        progress(&format!("creating container {name} from {}", spec.image));
        let id = runtime.create_container(&self.plan(spec, kind)).await?;
        undo.push(Undo::Container(id.clone()));
        spec.container_id = id.clone();
        self.fail_point(&format!("{context}:container"));

        if spec.ssh_port.is_some() {
            self.install_keys(spec).await?;
        }
        progress("starting");
        runtime.start_container(&id).await?;
        spec.status = if self.config.health.exit_check.is_zero() {
            runtime
                .inspect_container(&id)
                .await?
                .map_or(ContainerStatus::Missing, |c| c.status)
        } else {
            progress("watching it start");
            self.watch_for_early_exit(spec).await?
        };
        self.note_status(&id, Some(spec.status));
        self.fail_point(&format!("{context}:started"));
        Ok(())
    }

    /// Lets tests stop the process at a named point (see [`crate::FailPoints`]).
    pub(crate) fn fail_point(&self, point: &str) {
        self.adapters.fail_points.reached(point);
    }

    /// The engine's view of a spec: the plan create and re-create use.
    fn plan(&self, spec: &ContainerSpec, kind: &ContainerType) -> ContainerPlan {
        let mut ports = vec![PortBinding {
            host_ip: [127, 0, 0, 1].into(),
            host_port: spec.port,
            container_port: spec.internal_port,
        }];
        if let Some(ssh_port) = spec.ssh_port {
            ports.push(PortBinding {
                host_ip: self.config.ssh.bind_address,
                host_port: ssh_port,
                container_port: SSH_CONTAINER_PORT,
            });
        }
        ContainerPlan {
            name: spec.container_name.clone(),
            image: spec.image.clone(),
            command: spec.command.clone(),
            env: spec.env.clone(),
            labels: spec.labels(&self.own_labels),
            network: spec.network_name.clone(),
            volume: spec.volume_name.clone(),
            ports,
            memory: spec.memory,
            cpus: spec.cpus,
            pids_limit: spec.pids_limit,
            restart_policy: kind.restart_policy,
            cap_add: kind.cap_add.clone(),
            logs: kind.logs,
        }
    }

    /// Reverses a failed create, newest step first. Only when every step was undone is the intent
    /// cleared and the lease released; otherwise both stay, handed over to the reconciler (which
    /// finishes intents no process runs) to finish.
    async fn undo_create(&self, name: &ContainerName, undo: Vec<Undo>) -> bool {
        let runtime = &self.adapters.runtime;
        let mut clean = true;
        for step in undo.into_iter().rev() {
            let result = match &step {
                Undo::Container(id) => runtime.remove_container(id, RemoveMode::Force).await,
                Undo::Volume(volume) => runtime.remove_volume(volume.as_str()).await,
                Undo::Network(network, user) => match runtime.remove_network(network.as_str()).await {
                    Ok(()) => self.release_subnet_if_unused(user).await,
                    // Another container of the user joined the network meanwhile; it stays.
                    Err(e) if e.kind() == ErrorKind::Conflict => Ok(()),
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = result {
                clean = false;
                tracing::warn!(container = %name, error = ?e, "undo of a failed create did not finish");
            }
        }
        if clean {
            if let Err(e) = self.adapters.store.abandon_create(name).await {
                tracing::warn!(container = %name, error = ?e, "could not release the leases of a failed create");
                return false;
            }
        } else if let Err(e) = self.adapters.store.unclaim(name).await {
            // Left claimed, a long-running process (cm-api) would hold the unfinished intent
            // forever: the reconciler only finishes intents nobody runs.
            tracing::warn!(container = %name, error = ?e, "could not hand the unfinished undo to the reconciler");
        }
        clean
    }

    pub(crate) async fn release_subnet_if_unused(&self, user: &UserId) -> Result<()> {
        if self.adapters.store.list_user(user).await?.is_empty() {
            self.adapters.store.release_subnet(user).await?;
        }
        Ok(())
    }

    /// Activates the route of a container; returns nginx's refusal, if any. Routing problems never
    /// undo a container: it is up and reachable over its port, and the route can be re-synced.
    pub(crate) async fn route(&self, spec: &ContainerSpec, kind: &ContainerType) -> Option<String> {
        if !self.adapters.proxy.status().enabled {
            return None;
        }
        let route = route_of(spec, kind.strip_prefix);
        match self.adapters.proxy.apply(&route).await {
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(container = %spec.container_name, error = ?e, "route refused");
                Some(e.message().to_owned())
            }
        }
    }

    /// The route every record should have.
    fn expected_routes(&self, specs: &[ContainerSpec]) -> Vec<Route> {
        specs
            .iter()
            .map(|spec| {
                // A type removed from the configuration keeps the default (prefix stripped).
                let strip = self
                    .config
                    .types
                    .get(&spec.container_type)
                    .is_none_or(|t| t.strip_prefix);
                route_of(spec, strip)
            })
            .collect()
    }

    /// The routes nginx holds, with the ones the store expects but nginx lacks as `Missing` and
    /// the ones no record explains as `Orphaned`. Empty when routing is disabled.
    pub async fn routes(&self) -> Result<Vec<RouteStatus>> {
        let status = self.adapters.proxy.status();
        if !status.enabled {
            return Ok(Vec::new());
        }
        let expected = self.expected_routes(&self.adapters.store.list_all().await?);
        if status.mode == Some(crate::config::RoutingMode::Dynamic) {
            // Every record is routed by the route check; there is nothing on disk to compare.
            return Ok(expected
                .into_iter()
                .map(|route| RouteStatus {
                    user: route.user.to_string(),
                    kind: route.kind.to_string(),
                    port: Some(route.port),
                    state: RouteState::Active,
                })
                .collect());
        }
        let mut present = self.adapters.proxy.routes().await?;
        for status in &mut present {
            let known = expected
                .iter()
                .any(|r| r.user.as_str() == status.user && r.kind.as_str() == status.kind);
            if !known {
                status.state = RouteState::Orphaned;
            }
        }
        for route in &expected {
            let there = present
                .iter()
                .any(|s| s.user == route.user.as_str() && s.kind == route.kind.as_str());
            if !there {
                present.push(RouteStatus {
                    user: route.user.to_string(),
                    kind: route.kind.to_string(),
                    port: Some(route.port),
                    state: RouteState::Missing,
                });
            }
        }
        present.sort_by(|a, b| (&a.user, &a.kind).cmp(&(&b.user, &b.kind)));
        Ok(present)
    }

    /// Re-renders every route from the store and removes the others, with one reload.
    pub async fn sync_routes(&self) -> Result<Vec<RouteStatus>> {
        let expected = self.expected_routes(&self.adapters.store.list_all().await?);
        self.adapters.proxy.sync(&expected).await
    }

    // -----------------------------------------------------------------------------------------
    // Reading.

    /// Finds a container by full id, unique id prefix, or name, among every user's containers.
    pub async fn resolve(&self, reference: &str) -> Result<ContainerSpec> {
        self.resolve_among(reference, None).await
    }

    /// Finds a container the way `principal` may see it: the admin among every container, a user
    /// only among their own. Another user's container is then indistinguishable from a missing
    /// one (the same error, word for word), and an ambiguous prefix names only the caller's own.
    pub async fn resolve_for(&self, principal: &Principal, reference: &str) -> Result<ContainerSpec> {
        self.resolve_among(reference, principal.scope()).await
    }

    /// Resolves a reference as `principal` may see it ([`Manager::resolve_for`]) and checks that
    /// it may do `action` on the container ([`Principal::authorize`], against the real owner):
    /// the one way every frontend turns a caller's reference into a container.
    pub async fn authorized(
        &self,
        principal: &Principal,
        reference: &str,
        action: crate::auth::Action,
    ) -> Result<ContainerSpec> {
        let spec = self
            .resolve_for(principal, reference)
            .await
            .map_err(|e| e.for_field("container_id"))?;
        principal.authorize(action, Some(&spec.user_id), &self.config().user_actions)?;
        Ok(spec)
    }

    async fn resolve_among(&self, reference: &str, scope: Option<&UserId>) -> Result<ContainerSpec> {
        let store = &self.adapters.store;
        let reference = reference.trim();
        let visible = |spec: &ContainerSpec| scope.is_none_or(|user| &spec.user_id == user);
        if let Ok(name) = ContainerName::parse(reference)
            && let Some(spec) = store.get_by_name(&name).await?
            && visible(&spec)
        {
            return Ok(spec);
        }
        if let Some(spec) = store.get(reference).await?
            && visible(&spec)
        {
            return Ok(spec);
        }
        let is_prefix = !reference.is_empty() && reference.chars().all(|c| c.is_ascii_hexdigit());
        if is_prefix {
            let candidates = match scope {
                Some(user) => store.list_user(user).await?,
                None => store.list_all().await?,
            };
            let matches: Vec<ContainerSpec> = candidates
                .into_iter()
                .filter(|s| s.container_id.starts_with(reference))
                .collect();
            match matches.len() {
                1 => return Ok(matches.into_iter().next().unwrap_or_else(|| unreachable!())),
                0 => {}
                _ => {
                    let names: Vec<&str> = matches.iter().map(|s| s.container_name.as_str()).collect();
                    return Err(Error::conflict(format!(
                        "id prefix {} is ambiguous: it matches {}",
                        quote(reference),
                        names.join(", ")
                    )));
                }
            }
        }
        Err(Error::not_found(format!(
            "no container {}: give a full id, a unique id prefix or a name such as usr_123_cli_v4",
            quote(reference)
        )))
    }

    /// One container with its live status.
    pub async fn get(&self, reference: &str) -> Result<ContainerSpec> {
        let spec = self.resolve(reference).await?;
        self.with_status(spec).await
    }

    /// A container's status from the event-fed view, when there is a live one (no engine call).
    pub(crate) fn live_status(&self, container_id: &str) -> Option<ContainerStatus> {
        self.status_view
            .as_ref()
            .and_then(|v| v.snapshot_of(container_id))
    }

    /// A resolved record with its live status: from the event-fed view when it is live (no engine
    /// call), else from one inspect.
    pub async fn with_status(&self, mut spec: ContainerSpec) -> Result<ContainerSpec> {
        if let Some(statuses) = self
            .status_view
            .as_ref()
            .and_then(|v| v.snapshot_of(&spec.container_id))
        {
            spec.status = statuses;
            return Ok(spec);
        }
        spec.status = self
            .adapters
            .runtime
            .inspect_container(&spec.container_id)
            .await?
            .map_or(ContainerStatus::Missing, |c| c.status);
        Ok(spec)
    }

    /// What listings are made of right now, while the status view is live and the store can
    /// tell its revision: an equal revision means an equal listing, so a server may answer again
    /// what it answered before (cm-api keeps its listing answers by it). Taken before the listing
    /// it keys, so a change in between only makes the next request build anew.
    pub async fn listing_revision(&self) -> Result<Option<ListingRevision>> {
        let Some(view) = self.status_view.as_ref().filter(|v| v.is_live()) else {
            return Ok(None);
        };
        let statuses = view.generation();
        Ok(self
            .adapters
            .store
            .revision()
            .await?
            .map(|store| ListingRevision { store, statuses }))
    }

    /// Every container, with live statuses from one engine call.
    pub async fn list_all(&self) -> Result<Listing> {
        let specs = self.adapters.store.list_all().await?;
        Ok(self.with_live_status(specs, &BTreeMap::new()).await)
    }

    /// One user's containers, with live statuses.
    pub async fn list_user(&self, user: &UserId) -> Result<Listing> {
        let specs = self.adapters.store.list_user(user).await?;
        let filter = BTreeMap::from([(crate::spec::labels::USER_ID.to_owned(), user.to_string())]);
        Ok(self.with_live_status(specs, &filter).await)
    }

    async fn with_live_status(
        &self,
        mut specs: Vec<ContainerSpec>,
        filter: &BTreeMap<String, String>,
    ) -> Listing {
        if let Some(statuses) = self.status_view.as_ref().and_then(|v| v.snapshot()) {
            for spec in &mut specs {
                spec.status = statuses
                    .get(&spec.container_id)
                    .copied()
                    .unwrap_or(ContainerStatus::Missing);
            }
            return Listing {
                containers: specs,
                stale: None,
            };
        }
        match self.adapters.runtime.list_managed(filter).await {
            Ok(observed) => {
                let by_id: BTreeMap<&str, &ObservedContainer> =
                    observed.iter().map(|c| (c.id.as_str(), c)).collect();
                for spec in &mut specs {
                    spec.status = by_id
                        .get(spec.container_id.as_str())
                        .map_or(ContainerStatus::Missing, |c| c.status);
                }
                Listing {
                    containers: specs,
                    stale: None,
                }
            }
            Err(e) => Listing {
                containers: specs,
                stale: Some(e.message().to_owned()),
            },
        }
    }

    // -----------------------------------------------------------------------------------------
    // Lifecycle.

    /// Starts, stops or restarts a container.
    pub async fn lifecycle(&self, reference: &str, what: Lifecycle) -> Result<ContainerSpec> {
        match what {
            Lifecycle::Start => self.start(reference).await,
            Lifecycle::Stop => self.stop(reference).await,
            Lifecycle::Restart => self.restart(reference).await,
        }
    }

    /// Starts a container and re-applies its SSH keys.
    pub async fn start(&self, reference: &str) -> Result<ContainerSpec> {
        let spec = self.resolve(reference).await?;
        self.require_present(&spec).await?;
        self.prepare_disk(&spec).await?;
        self.adapters.runtime.start_container(&spec.container_id).await?;
        self.started_on_purpose(&spec).await;
        self.after_start(spec).await
    }

    /// Stops a container; its route stays (nginx answers 502 until it starts again).
    pub async fn stop(&self, reference: &str) -> Result<ContainerSpec> {
        let spec = self.resolve(reference).await?;
        self.require_present(&spec).await?;
        self.stopping_on_purpose(&spec).await?;
        self.adapters.runtime.stop_container(&spec.container_id).await?;
        self.record_status(spec).await
    }

    /// Restarts a container and re-applies its SSH keys.
    pub async fn restart(&self, reference: &str) -> Result<ContainerSpec> {
        let spec = self.resolve(reference).await?;
        self.require_present(&spec).await?;
        self.prepare_disk(&spec).await?;
        self.adapters
            .runtime
            .restart_container(&spec.container_id)
            .await?;
        self.started_on_purpose(&spec).await;
        self.after_start(spec).await
    }

    /// The cap and the use of the container's data volume, when it is size-capped.
    pub async fn disk_usage(&self, spec: &ContainerSpec) -> Result<Option<crate::ports::DiskUsage>> {
        if spec.disk.is_none() {
            return Ok(None);
        }
        self.adapters
            .runtime
            .volume_usage(spec.volume_name.as_str())
            .await
    }

    /// Whether data volumes' size caps are enforced on this host, and if not, why.
    pub fn disk_support(&self) -> crate::ports::DiskSupport {
        self.adapters.runtime.disk_support()
    }

    /// A size-capped volume's disk image is attached before its container starts (after a host
    /// restart it is not, and the engine would refuse to mount it).
    async fn prepare_disk(&self, spec: &ContainerSpec) -> Result<()> {
        if spec.disk.is_some() {
            self.adapters
                .runtime
                .prepare_volume(spec.volume_name.as_str())
                .await?;
        }
        Ok(())
    }

    async fn after_start(&self, spec: ContainerSpec) -> Result<ContainerSpec> {
        if spec.ssh_port.is_some() {
            self.install_keys(&spec).await?;
        }
        self.record_status(spec).await
    }

    pub(crate) async fn record_status(&self, mut spec: ContainerSpec) -> Result<ContainerSpec> {
        let observed = self
            .adapters
            .runtime
            .inspect_container(&spec.container_id)
            .await?;
        spec.status = observed.map_or(ContainerStatus::Missing, |c| c.status);
        self.note_status(&spec.container_id, Some(spec.status));
        self.adapters.store.put(&spec).await?;
        self.announce(&spec);
        Ok(spec)
    }

    /// Tells the live status view what an inspection right after our own change saw, so the
    /// next listing does not show the state before it while the engine's event is on its way.
    /// (Each event is applied by inspecting again, so a late event can not undo this.)
    /// Tells live event streams about a record just written: its container's change may have
    /// come before the record, when they could not yet tell whose it is.
    pub(crate) fn announce(&self, spec: &ContainerSpec) {
        if let Some(view) = &self.status_view {
            view.announce(&spec.container_id, spec.status);
        }
    }

    fn note_status(&self, id: &str, status: Option<ContainerStatus>) {
        if let Some(view) = &self.status_view {
            view.set(id, status);
        }
    }

    async fn require_present(&self, spec: &ContainerSpec) -> Result<ObservedContainer> {
        self.adapters
            .runtime
            .inspect_container(&spec.container_id)
            .await?
            .ok_or_else(|| {
                Error::not_found(format!(
                    "container {} is recorded but missing from the engine; `cm reconcile` re-creates it",
                    spec.container_name
                ))
            })
    }

    /// The container's output.
    pub async fn logs(&self, reference: &str, request: &LogRequest) -> Result<LogStream> {
        let spec = self.resolve(reference).await?;
        if !request.follow {
            return self.adapters.runtime.logs(&spec.container_id, request).await;
        }
        if *self.stopping.borrow() {
            return Err(Error::new(ErrorKind::Unavailable, "the server is stopping"));
        }
        // A follow holds its slot for as long as the stream lives.
        let slot = self
            .running
            .take(Work::Follow, &spec.user_id, &self.config.limits)?;
        let stream = self.adapters.runtime.logs(&spec.container_id, request).await?;
        let mut stopping = self.stopping.subscribe();
        let stopped = async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        let in_use = self.in_use(&spec.container_name);
        let held = futures_util::StreamExt::map(stream, move |chunk| {
            let _held = (&slot, &in_use);
            chunk
        });
        Ok(Box::pin(futures_util::StreamExt::take_until(held, stopped)))
    }

    /// Ends every followed log (their streams finish cleanly) and refuses new follows: a server
    /// that stops calls this first, so that open follows do not hold its shutdown.
    pub fn end_follows(&self) {
        self.stopping.send_replace(true);
    }

    /// A container's resource use (sampled over about a second) and health: restarts, last exit
    /// code, OOM kill, start time.
    pub async fn stats(&self, reference: &str) -> Result<crate::ports::ContainerStats> {
        let spec = self.resolve(reference).await?;
        self.require_present(&spec).await?;
        self.adapters.runtime.stats(&spec.container_id).await
    }

    /// Runs a command in a running container as the image's user (the admin's way, and `cm`'s).
    pub async fn exec(&self, reference: &str, command: Command, timeout: Duration) -> Result<ExecOutput> {
        self.exec_as(reference, command, timeout, None).await
    }

    /// Runs a command in a running container as `user` (`None`: the image's user). At most
    /// `[limits] exec_per_user` commands run at once in one user's containers, and `exec_total`
    /// in all; over that the call is refused ([`ErrorKind::Busy`]) without running anything.
    pub async fn exec_as(
        &self,
        reference: &str,
        command: Command,
        timeout: Duration,
        user: Option<String>,
    ) -> Result<ExecOutput> {
        if timeout.is_zero() || timeout > Duration::from_secs(24 * 3600) {
            return Err(Error::invalid("invalid timeout: 1 second to 24 hours").for_field("timeout"));
        }
        let spec = self.resolve(reference).await?;
        let _slot = self
            .running
            .take(Work::Exec, &spec.user_id, &self.config.limits)?;
        let _in_use = self.in_use(&spec.container_name);
        let observed = self.require_present(&spec).await?;
        if observed.status != ContainerStatus::Running {
            return Err(Error::conflict(format!(
                "container {} is {}: start it first",
                spec.container_name, observed.status
            )));
        }
        let request = ExecRequest {
            command,
            user,
            timeout,
        };
        self.adapters.runtime.exec(&spec.container_id, &request).await
    }

    /// The user a user token's commands run as in containers of `kind`: the type's `exec_user`.
    pub fn exec_user_of(&self, kind: &TypeName) -> String {
        self.config.types.get(kind).map_or_else(
            || crate::config::FALLBACK_EXEC_USER.to_owned(),
            |t| t.exec_user.clone(),
        )
    }

    /// Deletes a container, its route, its keys and its leases; the data volume only with `purge`.
    ///
    /// Records are dropped only after the engine removed the container: with the engine down,
    /// nothing changes.
    pub async fn delete(&self, reference: &str, options: DeleteOptions) -> Result<ContainerSpec> {
        let started = std::time::Instant::now();
        let outcome = self.delete_measured(reference, options).await;
        self.metrics.observe("delete", &outcome, started.elapsed());
        outcome
    }

    async fn delete_measured(&self, reference: &str, options: DeleteOptions) -> Result<ContainerSpec> {
        let spec = self.resolve(reference).await?;
        let runtime = &self.adapters.runtime;
        let store = &self.adapters.store;
        let observed = runtime.inspect_container(&spec.container_id).await?;
        let running = observed.as_ref().is_some_and(|c| c.status.is_active());
        if running && !options.force {
            return Err(Error::conflict(format!(
                "container {} is running: stop it first or delete with force",
                spec.container_name
            )));
        }
        let kind = if options.purge {
            OperationKind::Purge
        } else {
            OperationKind::Delete
        };
        store
            .begin_operation(&spec, kind, self.adapters.clock.now())
            .await?;
        self.fail_point("delete:begun");

        if let Err(e) = runtime
            .remove_container(&spec.container_id, RemoveMode::Force)
            .await
        {
            store.end_operation(&spec.container_name).await?;
            return Err(e.context(format_args!("deleting {}", spec.container_name)));
        }
        self.fail_point("delete:container");
        // The container is gone: from here on the delete finishes, and a failing step leaves the
        // intent recorded, handed to the reconciler (which finishes intents no process runs).
        if let Err(e) = self.finish_deleting(&spec, options.purge).await {
            if let Err(unclaimed) = store.unclaim(&spec.container_name).await {
                tracing::warn!(container = %spec.container_name, error = ?unclaimed, "could not hand the unfinished delete to the reconciler");
            }
            return Err(e);
        }
        Ok(spec)
    }

    /// The steps of a delete after the container is gone: the route, the volume (with purge),
    /// the records, and the user's network when it was their last container.
    pub(crate) async fn finish_deleting(&self, spec: &ContainerSpec, purge: bool) -> Result<()> {
        let runtime = &self.adapters.runtime;
        let store = &self.adapters.store;
        if self.adapters.proxy.status().enabled
            && let Err(e) = self
                .adapters
                .proxy
                .remove(&spec.user_id, &spec.container_type)
                .await
        {
            tracing::warn!(container = %spec.container_name, error = ?e, "route removal failed");
        }
        if purge {
            runtime.remove_volume(spec.volume_name.as_str()).await?;
            self.fail_point("delete:volume");
        }
        store.finish_delete(spec).await?;
        self.fail_point("delete:recorded");
        // The delete is done; a network that can not go now is left to the reconciler.
        if let Err(e) = self
            .remove_network_if_unused(&spec.user_id, &spec.network_name)
            .await
        {
            tracing::warn!(network = %spec.network_name, error = ?e, "user network not removed");
        }
        Ok(())
    }

    /// Removes a user's network and frees its subnet when the user has no container left.
    pub(crate) async fn remove_network_if_unused(&self, user: &UserId, network: &NetworkName) -> Result<()> {
        let store = &self.adapters.store;
        if !store.list_user(user).await?.is_empty() {
            return Ok(());
        }
        match self.adapters.runtime.remove_network(network.as_str()).await {
            Ok(()) => store.release_subnet(user).await,
            Err(e) if e.kind() == ErrorKind::Conflict => {
                tracing::info!(network = %network, error = ?e, "user network kept: containers attached");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    // -----------------------------------------------------------------------------------------
    // SSH keys.

    /// Parses and validates a public key without storing it (for forms that check as you type).
    pub fn parse_ssh_key(&self, raw: &str) -> Result<SshPublicKey> {
        self.adapters.keys.parse(raw)
    }

    /// Parses a key and authorizes it on a container; applied now when it runs, else at its next start.
    pub async fn add_ssh_key(&self, reference: &str, raw_key: &str) -> Result<KeyAdded> {
        let key = self
            .adapters
            .keys
            .parse(raw_key)
            .map_err(|e| e.for_field("ssh_public_key"))?;
        let spec = self.resolve(reference).await?;
        require_ssh(&spec)?;
        let added = self
            .adapters
            .store
            .add_key(&spec.container_name, &key, self.adapters.clock.now())
            .await?;
        let applied = self.apply_keys_if_running(&spec).await?;
        Ok(KeyAdded { key, added, applied })
    }

    /// Removes a key by fingerprint; `NotFound` when the container has no such key.
    pub async fn remove_ssh_key(&self, reference: &str, fingerprint: &str) -> Result<bool> {
        let spec = self.resolve(reference).await?;
        require_ssh(&spec)?;
        if !self
            .adapters
            .store
            .remove_key(&spec.container_name, fingerprint.trim())
            .await?
        {
            return Err(Error::not_found(format!(
                "container {} has no key with fingerprint {}",
                spec.container_name,
                quote(fingerprint)
            )));
        }
        self.apply_keys_if_running(&spec).await
    }

    /// The keys of a container.
    pub async fn ssh_keys(&self, reference: &str) -> Result<Vec<StoredKey>> {
        let spec = self.resolve(reference).await?;
        self.adapters.store.keys(&spec.container_name).await
    }

    /// The host users connect to over SSH, as connection strings show it (`[ssh] server_host`,
    /// else a `<server>` placeholder).
    pub fn ssh_host(&self) -> String {
        self.config
            .ssh
            .server_host
            .clone()
            .unwrap_or_else(|| "<server>".to_owned())
    }

    /// How to connect to a container over SSH.
    pub async fn ssh_info(&self, reference: &str) -> Result<SshInfo> {
        let spec = self.resolve(reference).await?;
        let port = require_ssh(&spec)?;
        let host = self.ssh_host();
        let keys = self.adapters.store.keys(&spec.container_name).await?;
        Ok(SshInfo {
            container_name: spec.container_name.to_string(),
            command: ssh_command(&host, port),
            docksh: format!("docksh connect {host} {port}"),
            host,
            port,
            user: SSH_USER.to_owned(),
            fingerprints: keys.iter().map(|k| k.key.fingerprint().to_owned()).collect(),
        })
    }

    /// The SSH-enabled containers, of one user or all.
    pub async fn list_ssh(&self, user: Option<&UserId>) -> Result<Listing> {
        let mut listing = match user {
            Some(user) => self.list_user(user).await?,
            None => self.list_all().await?,
        };
        listing.containers.retain(|s| s.ssh_port.is_some());
        Ok(listing)
    }

    pub(crate) async fn apply_keys_if_running(&self, spec: &ContainerSpec) -> Result<bool> {
        let running = self
            .adapters
            .runtime
            .inspect_container(&spec.container_id)
            .await?
            .is_some_and(|c| c.status == ContainerStatus::Running);
        if running {
            self.install_keys(spec).await?;
        }
        Ok(running)
    }

    /// Writes the whole `authorized_keys`, rendered from the store, into the container without a shell.
    pub(crate) async fn install_keys(&self, spec: &ContainerSpec) -> Result<()> {
        let keys = self.adapters.store.keys(&spec.container_name).await?;
        let text = render_authorized_keys(&keys);
        let entries = [
            UploadEntry {
                path: ".ssh".to_owned(),
                mode: 0o700,
                uid: CLI_UID,
                gid: CLI_UID,
                contents: None,
            },
            UploadEntry {
                path: ".ssh/authorized_keys".to_owned(),
                mode: 0o600,
                uid: CLI_UID,
                gid: CLI_UID,
                contents: Some(text.into_bytes()),
            },
        ];
        self.adapters
            .runtime
            .upload(&spec.container_id, CLI_HOME, &entries)
            .await
            .map_err(|e| e.context("installing ssh keys"))
    }

    /// The data volumes that deletes without purge kept, to be found again by a create of the same
    /// user and type.
    pub async fn retained_volumes(&self) -> Result<Vec<VolumeName>> {
        self.adapters.store.retained_volumes().await
    }

    /// Removes a retained data volume for good. Refused for a volume that is not retained (in use
    /// by a container, or not ours).
    pub async fn purge_retained(&self, raw_name: &str) -> Result<VolumeName> {
        let name = VolumeName::parse(raw_name.trim()).map_err(|e| e.for_field("volume"))?;
        let retained = self.adapters.store.retained_volumes().await?;
        if !retained.contains(&name) {
            return Err(Error::not_found(format!(
                "{name} is not a retained data volume (see `cm volumes`); a volume in use goes with `cm delete --purge`"
            )));
        }
        self.adapters.runtime.remove_volume(name.as_str()).await?;
        self.adapters.store.forget_retained(&name).await?;
        Ok(name)
    }

    /// Ports that are leased in the store, for reports.
    pub async fn leased_ports(&self) -> Result<BTreeSet<u16>> {
        Ok(self
            .adapters
            .store
            .port_leases()
            .await?
            .into_iter()
            .map(|l| l.port)
            .collect())
    }
}

/// The uid and gid of the `cli` user in SSH-enabled images.
pub(crate) const CLI_UID: u64 = 1000;
/// The home directory of `cli`.
pub(crate) const CLI_HOME: &str = "/home/cli";

/// The record of a new container; its subnet is filled in when the network is prepared.
fn new_spec(
    request: &CreateRequest,
    kind: &ContainerType,
    leased: &[u16],
    started: SystemTime,
    placeholder_subnet: crate::network::Subnet,
) -> ContainerSpec {
    let user = &request.user_id;
    let mut env = kind.env.clone();
    env.merge(&request.env);
    let ssh_port = leased.get(1).copied();
    set_manager_env(&mut env, user, kind, ssh_port.is_some());
    ContainerSpec {
        container_id: String::new(),
        container_name: ContainerName::of(user, &kind.name),
        container_type: kind.name.clone(),
        user_id: user.clone(),
        port: leased[0],
        internal_port: kind.internal_port,
        image: request.image.clone().unwrap_or_else(|| kind.image.clone()),
        volume_name: VolumeName::of(user, &kind.name),
        status: ContainerStatus::Created,
        created_at: humantime::format_rfc3339_seconds(started).to_string(),
        env,
        ssh_port,
        network_name: NetworkName::of(user),
        subnet: placeholder_subnet,
        command: request.command.clone().or_else(|| kind.command.clone()),
        memory: request.memory.unwrap_or(kind.memory),
        cpus: request.cpus.unwrap_or(kind.cpus),
        pids_limit: kind.pids_limit,
        url_path: url_path(user, &kind.name),
        disk: kind.disk,
    }
}

/// Sets the variables the manager gives every container (the [`RESERVED_ENV`] and `CM_SSH`).
pub(crate) fn set_manager_env(env: &mut EnvVars, user: &UserId, kind: &ContainerType, ssh: bool) {
    env.set("USER_ID", user.as_str());
    env.set("CONTAINER_TYPE", kind.name.as_str());
    env.set("PORT", kind.internal_port.to_string());
    env.set("BASE_PATH", url_path(user, &kind.name));
    if ssh {
        env.set("CM_SSH", "1");
    }
}

fn route_of(spec: &ContainerSpec, strip_prefix: bool) -> Route {
    Route {
        user: spec.user_id.clone(),
        kind: spec.container_type.clone(),
        port: spec.port,
        strip_prefix,
    }
}

fn require_ssh(spec: &ContainerSpec) -> Result<u16> {
    spec.ssh_port.ok_or_else(|| {
        Error::invalid(format!(
            "container {} has no SSH access (type {})",
            spec.container_name, spec.container_type
        ))
    })
}

fn already_exists(existing: &ContainerSpec) -> Error {
    Error::conflict(format!(
        "user {} already has a {} container: {} ({}); delete it first",
        existing.user_id,
        existing.container_type,
        existing.container_name,
        existing.short_id()
    ))
}

fn join_ports(ports: &[u16]) -> String {
    ports.iter().map(u16::to_string).collect::<Vec<_>>().join(" and ")
}
