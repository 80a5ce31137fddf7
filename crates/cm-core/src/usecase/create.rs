//! Creating a container: validate, reserve (intent and port leases in one transaction), then
//! network, volume, container, keys, start and route, each undone in reverse when a later one fails.

use std::collections::BTreeMap;

use std::time::SystemTime;

use serde::Serialize;

use crate::config::{Config, ContainerType, SSH_CONTAINER_PORT, SshMode};
use crate::error::{Error, ErrorKind, Result};
use crate::keys::SshPublicKey;

use crate::names::{ContainerName, NetworkName, NodeName, TypeName, UserId, VolumeName};

use crate::ports::{
    ContainerPlan, CreateReservation, Ensured, NetworkPlan, PortBinding, RemoveMode, VolumePlan,
};
use crate::reconcile::{Outcome, ReconcileOptions};
use crate::spec::{ContainerSpec, ContainerStatus, owner_labels, url_path};
use crate::values::{Command, CpuLimit, EnvVars, ImageRef, MemoryLimit};

use super::steps::{STEP_NETWORK_CREATED, STEP_VOLUME_CREATED, Undo};
use crate::manager::Manager;

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
    /// The node to place it on, where the runtime has nodes; else the one with the most memory
    /// free.
    pub node: Option<NodeName>,
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
    /// A node's host name, or empty to let the manager choose (Swarm only).
    pub node: Option<String>,
}

/// What a create produced.
#[derive(Debug, Clone, Serialize)]
pub struct CreateOutcome {
    /// The new record.
    pub spec: ContainerSpec,
    /// The route's fate: `None` when it is live or routing is disabled, else nginx's refusal.
    pub route_error: Option<String>,
}

/// The field an engine error carries when a host port was taken by someone else (adapters mark
/// it; create then tries other ports).
pub const PORT_TAKEN_FIELD: &str = "port";

/// How many sets of ports a create tries when the engine finds one taken.
pub(crate) const PORT_ATTEMPTS: u32 = 3;

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
        let node = nonempty(&form.node)
            .map(NodeName::parse)
            .transpose()
            .map_err(|e| e.for_field("node"))?;
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
            node,
        })
    }
}

/// The trimmed text of an optional form field, `None` when absent or blank.
pub(crate) fn nonempty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The variables the manager sets itself; a request may not override them.
pub(crate) const RESERVED_ENV: [&str; 4] = ["USER_ID", "CONTAINER_TYPE", "PORT", "BASE_PATH"];

/// The record of a new container; its subnet is filled in when the network is prepared.
pub(crate) fn new_spec(
    request: &CreateRequest,
    kind: &ContainerType,
    leased: &[u16],
    started: SystemTime,
    placeholder_subnet: crate::network::Subnet,
    node: Option<NodeName>,
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
        node,
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

pub(crate) fn already_exists(existing: &ContainerSpec) -> Error {
    Error::conflict(format!(
        "user {} already has a {} container: {} ({}); delete it first",
        existing.user_id,
        existing.container_type,
        existing.container_name,
        existing.short_id()
    ))
}

pub(crate) fn join_ports(ports: &[u16]) -> String {
    ports.iter().map(u16::to_string).collect::<Vec<_>>().join(" and ")
}

/// What a create makes, once validated and reserved.
pub(crate) struct CreatePlan<'a> {
    /// The validated request.
    pub(crate) request: &'a CreateRequest,
    /// Its type's configuration.
    pub(crate) kind: &'a ContainerType,
    /// The SSH keys to install.
    pub(crate) keys: &'a [SshPublicKey],
    /// The leased host ports: HTTP, then SSH when enabled.
    pub(crate) leased: &'a [u16],
    /// When the create began (its record's creation time).
    pub(crate) started: SystemTime,
    /// The node it goes to (a runtime with nodes).
    pub(crate) node: Option<NodeName>,
}

impl Manager {
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

    pub(crate) async fn create_measured(
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
        let node = self.place(request.node.as_ref()).await?;
        if let Some(node) = &node {
            progress(&format!("placed on node {node}"));
        }
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
            let plan = CreatePlan {
                request: &request,
                kind: &kind,
                keys: &keys,
                leased: &leased,
                started,
                node: node.clone(),
            };
            let result = self.create_steps(&plan, &mut undo, progress).await;
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
    pub(crate) async fn reserve(&self, reservation: &CreateReservation) -> Result<Vec<u16>> {
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
    pub(crate) async fn recover_interrupted(
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

    /// The steps of a create after its reservation: record the keys, make the container real,
    /// record it. What it made goes on `undo`.
    pub(crate) async fn create_steps(
        &self,
        plan: &CreatePlan<'_>,
        undo: &mut Vec<Undo>,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<ContainerSpec> {
        let mut spec = new_spec(
            plan.request,
            plan.kind,
            plan.leased,
            plan.started,
            self.config.subnet_pool.range,
            plan.node.clone(),
        );
        for key in plan.keys {
            self.adapters
                .store
                .add_key(&spec.container_name, key, plan.started)
                .await?;
        }
        self.materialize(&mut spec, plan.kind, undo, progress, "create")
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
            node: spec.node.clone(),
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

    /// The engine's view of a spec: the plan create and re-create use.
    pub(crate) fn plan(&self, spec: &ContainerSpec, kind: &ContainerType) -> ContainerPlan {
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
            node: spec.node.clone(),
        }
    }

    /// Reverses a failed create, newest step first. Only when every step was undone is the intent
    /// cleared and the lease released; otherwise both stay, handed over to the reconciler (which
    /// finishes intents no process runs) to finish.
    pub(crate) async fn undo_create(&self, name: &ContainerName, undo: Vec<Undo>) -> bool {
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
}
