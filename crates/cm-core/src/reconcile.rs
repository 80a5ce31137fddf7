//! The reconciler (D2): compares the desired state in the store with what the engine, nginx and
//! the containers' `authorized_keys` actually hold, and converges.
//!
//! - Operations interrupted by a crash (their process is gone) are finished or undone, using the
//!   steps they recorded: a create is undone, a delete finished, an update finished or rolled back.
//! - A recorded container the engine lacks is re-created from its spec with the same name, ports,
//!   volume, keys and route; one re-created under its name behind our back is adopted.
//! - Keys are re-applied where the container's `authorized_keys` differs from the store.
//! - Missing routes are rendered, routes no record explains removed (one nginx reload).
//! - Port and subnet leases no record or operation explains are freed.
//! - Labelled containers, volumes and networks no record explains are reported as orphans, each by
//!   name and id, and removed only with `prune`. "Labelled" means `managed-by=ContainerManager`
//!   and every configured extra label: the extra labels scope an installation, so two managers on
//!   one engine never take each other's objects for orphans. Volumes kept by a delete without purge are
//!   explained, never orphans.
//!
//! Engine work per record runs at most [`CONCURRENCY`] at a time, each under [`RECORD_TIME_LIMIT`],
//! so one hung call can not stall the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::config::ContainerType;
use crate::error::{Error, Result};
use crate::keys::render_authorized_keys;
use crate::manager::Manager;
use crate::names::{ContainerName, NetworkName, VolumeName};
use crate::ports::{ObservedContainer, Operation, OperationKind, RemoveMode, RouteState};
use crate::spec::{ContainerSpec, ContainerStatus, labels};
use crate::usecase::keys::CLI_HOME;
use crate::usecase::steps::{STEP_NETWORK_CREATED, STEP_VOLUME_CREATED, Undo};
use crate::values::ImageRef;

/// How many records are worked on at once.
pub const CONCURRENCY: usize = 8;
/// The time one record's engine work may take before it is reported as failed.
pub const RECORD_TIME_LIMIT: Duration = Duration::from_secs(120);
/// The suffix an update gives the old container while the new one starts (a `.` never appears in
/// our names, so it can not collide with another user's container).
pub const PREVIOUS_SUFFIX: &str = ".previous";

/// What a reconcile may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReconcileOptions {
    /// Only report what would be done.
    pub dry_run: bool,
    /// Also remove orphans.
    pub prune: bool,
}

/// What a reconcile found and did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReconcileReport {
    /// When it started, RFC 3339 UTC.
    pub started_at: String,
    /// How long it took.
    pub duration_ms: u64,
    /// Whether it only reported.
    pub dry_run: bool,
    /// Whether orphans were removed.
    pub prune: bool,
    /// How many records were checked.
    pub records: usize,
    /// Every difference found, with what was done about it.
    pub findings: Vec<Finding>,
}

/// One difference between the store and the world.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What kind of difference.
    pub kind: FindingKind,
    /// The container, volume, network or route it is about.
    pub name: String,
    /// The engine's id, where there is one.
    pub id: Option<String>,
    /// What was done.
    pub outcome: Outcome,
    /// Details for humans.
    pub detail: String,
}

/// The kinds of difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A create whose process died midway.
    InterruptedCreate,
    /// A delete whose process died midway.
    InterruptedDelete,
    /// An update whose process died midway.
    InterruptedUpdate,
    /// A recorded container the engine does not have.
    MissingContainer,
    /// A recorded container found under its name with another id.
    AdoptedContainer,
    /// A container whose `authorized_keys` differs from the store.
    KeysOutOfDate,
    /// A container with a capped volume that the engine could not start because the volume's
    /// disk image was detached (after a host restart); it is attached and the container started.
    DiskDetached,
    /// A route the store expects that nginx lacks, or that nginx refused.
    RouteMissing,
    /// A route no record explains.
    RouteOrphaned,
    /// A port lease no record explains.
    LeakedPort,
    /// A subnet lease no record explains.
    LeakedSubnet,
    /// A container with our labels that no record explains.
    OrphanContainer,
    /// A volume with our labels that no record explains and no delete retained.
    OrphanVolume,
    /// A network with our labels whose user has no record.
    OrphanNetwork,
}

/// What was done about a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Repaired.
    Fixed,
    /// Would be repaired (dry run).
    WouldFix,
    /// Reported only (an orphan without prune).
    Reported,
    /// Removed (an orphan with prune).
    Removed,
    /// Would be removed (dry run with prune).
    WouldRemove,
    /// The repair failed; the detail says why.
    Failed,
}

impl ReconcileReport {
    /// True when nothing needed doing.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// The findings of one kind.
    pub fn of_kind(&self, kind: FindingKind) -> Vec<&Finding> {
        self.findings.iter().filter(|f| f.kind == kind).collect()
    }
}

impl Finding {
    fn new(
        kind: FindingKind,
        name: impl Into<String>,
        id: Option<String>,
        outcome: Outcome,
        detail: impl Into<String>,
    ) -> Self {
        Finding {
            kind,
            name: name.into(),
            id,
            outcome,
            detail: detail.into(),
        }
    }
}

/// The outcome of a repair: done, or planned in a dry run.
fn fix_outcome(options: ReconcileOptions) -> Outcome {
    if options.dry_run {
        Outcome::WouldFix
    } else {
        Outcome::Fixed
    }
}

/// The outcome for an orphan.
fn orphan_outcome(options: ReconcileOptions) -> Outcome {
    match (options.prune, options.dry_run) {
        (false, _) => Outcome::Reported,
        (true, true) => Outcome::WouldRemove,
        (true, false) => Outcome::Removed,
    }
}

fn failed(kind: FindingKind, name: impl Into<String>, id: Option<String>, err: &Error) -> Finding {
    Finding::new(kind, name, id, Outcome::Failed, err.message())
}

fn noop(_: &str) {}

impl Manager {
    /// Converges the world toward the store; see the module documentation.
    pub async fn reconcile(&self, options: ReconcileOptions) -> Result<ReconcileReport> {
        let started = std::time::Instant::now();
        let outcome = self.reconcile_measured(options).await;
        self.metrics().observe("reconcile", &outcome, started.elapsed());
        outcome
    }

    async fn reconcile_measured(&self, options: ReconcileOptions) -> Result<ReconcileReport> {
        let clock = &self.adapters().clock;
        let started = clock.now();
        let runtime = &self.adapters().runtime;
        let store = &self.adapters().store;
        runtime.engine_info().await?;

        let mut findings = Vec::new();
        for operation in store.claim_abandoned().await? {
            findings.push(self.recover(operation, options).await);
        }

        let specs = store.list_all().await?;
        // Operations a live process runs right now: their containers are not ours to touch.
        let running = store.operations().await?;
        let busy = Busy {
            names: running.iter().map(|op| op.name.clone()).collect(),
            users: running.iter().map(|op| op.user_id.to_string()).collect(),
        };
        let observed = runtime.list_managed(&self.config().extra_labels).await?;

        // The futures are made here, outside the stream combinators, so the whole reconcile stays
        // a `Send` future that can be spawned.
        let mut checks = Vec::new();
        for spec in &specs {
            if !busy.names.contains(&spec.container_name) {
                checks.push(self.reconcile_record_in_time(spec, &observed, options));
            }
        }
        let checks: Vec<Vec<Finding>> = futures_util::stream::iter(checks)
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        findings.extend(checks.into_iter().flatten());

        findings.extend(self.reconcile_routes(options).await?);
        let specs = store.list_all().await?;
        findings.extend(self.reconcile_leases(&specs, &busy, options).await?);
        // The listing from before the record checks serves here too: what they re-created is
        // recorded, and an orphan is something neither before nor after explains.
        findings.extend(self.find_orphans(&specs, &observed, &busy, options).await?);

        let duration = clock.now().duration_since(started).unwrap_or_default();
        Ok(ReconcileReport {
            started_at: humantime::format_rfc3339_seconds(started).to_string(),
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            dry_run: options.dry_run,
            prune: options.prune,
            records: specs.len(),
            findings,
        })
    }

    // -----------------------------------------------------------------------------------------
    // Interrupted operations.

    pub(crate) async fn recover(&self, operation: Operation, options: ReconcileOptions) -> Finding {
        let name = operation.name.clone();
        let kind = match operation.kind {
            OperationKind::Create => FindingKind::InterruptedCreate,
            OperationKind::Delete | OperationKind::Purge => FindingKind::InterruptedDelete,
            OperationKind::Update => FindingKind::InterruptedUpdate,
        };
        if options.dry_run {
            let plan = match operation.kind {
                OperationKind::Create => "would undo it",
                OperationKind::Delete | OperationKind::Purge => "would finish it",
                OperationKind::Update => "would finish or roll it back",
            };
            if let Err(e) = self.adapters().store.unclaim(&name).await {
                return failed(kind, name.as_str(), None, &e);
            }
            return Finding::new(kind, name.as_str(), None, Outcome::WouldFix, plan);
        }
        let result = match operation.kind {
            OperationKind::Create => self.undo_interrupted_create(&operation).await,
            OperationKind::Delete => self.finish_interrupted_delete(&name, false).await,
            OperationKind::Purge => self.finish_interrupted_delete(&name, true).await,
            OperationKind::Update => self.settle_interrupted_update(&name).await,
        };
        match result {
            Ok(detail) => Finding::new(kind, name.as_str(), None, Outcome::Fixed, detail),
            Err(e) => {
                // Leave the intent for the next reconcile.
                let _ = self.adapters().store.unclaim(&name).await;
                failed(kind, name.as_str(), None, &e)
            }
        }
    }

    async fn undo_interrupted_create(&self, operation: &Operation) -> Result<String> {
        let runtime = &self.adapters().runtime;
        let name = &operation.name;
        let mut undone = Vec::new();
        if let Some(container) = runtime.inspect_container(name.as_str()).await? {
            runtime.remove_container(&container.id, RemoveMode::Force).await?;
            undone.push(format!(
                "removed container {}",
                &container.id[..12.min(container.id.len())]
            ));
        }
        self.fail_point("recover-create:container");
        let user = &operation.user_id;
        if operation.steps.iter().any(|s| s == STEP_VOLUME_CREATED) {
            let volume = VolumeName::of(user, &operation.container_type);
            runtime.remove_volume(volume.as_str()).await?;
            undone.push(format!("removed new volume {volume}"));
        }
        self.fail_point("recover-create:volume");
        self.adapters().store.abandon_create(name).await?;
        if operation.steps.iter().any(|s| s == STEP_NETWORK_CREATED) {
            self.remove_network_if_unused(user, &NetworkName::of(user))
                .await?;
            undone.push("removed the new user network".to_owned());
        }
        undone.push("released its ports".to_owned());
        Ok(format!("undid the create: {}", undone.join(", ")))
    }

    async fn finish_interrupted_delete(&self, name: &ContainerName, purge: bool) -> Result<String> {
        let store = &self.adapters().store;
        let Some(spec) = store.get_by_name(name).await? else {
            store.end_operation(name).await?;
            return Ok("nothing was left to delete".to_owned());
        };
        self.remove_by_id_and_name(&spec).await?;
        self.fail_point("recover-delete:container");
        self.finish_deleting(&spec, purge).await?;
        Ok(if purge {
            "finished the delete and removed the data volume".to_owned()
        } else {
            "finished the delete; the data volume is kept".to_owned()
        })
    }

    async fn settle_interrupted_update(&self, name: &ContainerName) -> Result<String> {
        let runtime = &self.adapters().runtime;
        let store = &self.adapters().store;
        let previous_name = format!("{name}{PREVIOUS_SUFFIX}");
        let previous = runtime.inspect_container(&previous_name).await?;
        let current = runtime.inspect_container(name.as_str()).await?;
        let Some(mut spec) = store.get_by_name(name).await? else {
            store.end_operation(name).await?;
            return Ok("the record is gone; nothing to settle".to_owned());
        };
        let detail = match (previous, current) {
            (Some(previous), Some(current)) if current.status == ContainerStatus::Running => {
                runtime.remove_container(&previous.id, RemoveMode::Force).await?;
                adopt(&mut spec, &current);
                "the new container runs: finished the update".to_owned()
            }
            (Some(previous), current) => {
                if let Some(current) = current {
                    runtime.remove_container(&current.id, RemoveMode::Force).await?;
                }
                self.fail_point("recover-update:removed");
                runtime.rename_container(&previous.id, name.as_str()).await?;
                runtime.start_container(&previous.id).await?;
                adopt(&mut spec, &previous);
                "the new container never ran: rolled back to the previous one".to_owned()
            }
            // Without renames there is no previous container to go back to: a new one that does
            // not run is removed, and the record check re-creates the old one from its record.
            (None, Some(current))
                if !runtime.renames()
                    && current.id != spec.container_id
                    && current.status != ContainerStatus::Running =>
            {
                runtime.remove_container(&current.id, RemoveMode::Force).await?;
                "the new container never ran: removed; the record check re-creates the previous one"
                    .to_owned()
            }
            (None, Some(current)) => {
                adopt(&mut spec, &current);
                "the update had finished; recorded the new container".to_owned()
            }
            (None, None) => "no container left; the record check re-creates it".to_owned(),
        };
        store.put(&spec).await?;
        self.announce(&spec);
        store.end_operation(name).await?;
        Ok(detail)
    }

    /// Removes a record's container by its id, and whatever holds its name.
    async fn remove_by_id_and_name(&self, spec: &ContainerSpec) -> Result<()> {
        let runtime = &self.adapters().runtime;
        runtime
            .remove_container(&spec.container_id, RemoveMode::Force)
            .await?;
        if let Some(other) = runtime.inspect_container(spec.container_name.as_str()).await? {
            runtime.remove_container(&other.id, RemoveMode::Force).await?;
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Records.

    /// [`Manager::reconcile_record`] within [`RECORD_TIME_LIMIT`].
    async fn reconcile_record_in_time(
        &self,
        spec: &ContainerSpec,
        observed: &[ObservedContainer],
        options: ReconcileOptions,
    ) -> Vec<Finding> {
        match tokio::time::timeout(RECORD_TIME_LIMIT, self.reconcile_record(spec, observed, options)).await {
            Ok(found) => found,
            Err(_) => vec![Finding::new(
                FindingKind::MissingContainer,
                spec.container_name.as_str(),
                Some(spec.container_id.clone()),
                Outcome::Failed,
                format!(
                    "the engine did not answer within {} s",
                    RECORD_TIME_LIMIT.as_secs()
                ),
            )],
        }
    }

    /// A capped container that is not running because the engine could not mount its volume:
    /// the disk image is attached again and the container started, as the engine would have at
    /// boot. A container stopped on purpose has no start error and stays stopped.
    async fn reconcile_disk(
        &self,
        spec: &ContainerSpec,
        container: &ObservedContainer,
        options: ReconcileOptions,
    ) -> Option<Finding> {
        let stopped = matches!(
            container.status,
            ContainerStatus::Exited | ContainerStatus::Created
        );
        if spec.disk.is_none() || !stopped {
            return None;
        }
        let runtime = &self.adapters().runtime;
        let inspected = runtime.inspect_container(&container.id).await.ok()??;
        let error = inspected.start_error?;
        let finding = |outcome, detail: String| {
            Some(Finding::new(
                FindingKind::DiskDetached,
                spec.container_name.as_str(),
                Some(container.id.clone()),
                outcome,
                detail,
            ))
        };
        if options.dry_run {
            return finding(
                Outcome::WouldFix,
                format!("the engine could not start it: {error}"),
            );
        }
        let repaired = async {
            runtime.prepare_volume(spec.volume_name.as_str()).await?;
            runtime.start_container(&container.id).await
        };
        match repaired.await {
            Ok(()) => finding(
                Outcome::Fixed,
                format!("attached its disk image and started it (the engine said: {error})"),
            ),
            Err(e) => finding(Outcome::Failed, e.to_string()),
        }
    }

    async fn reconcile_record(
        &self,
        spec: &ContainerSpec,
        observed: &[ObservedContainer],
        options: ReconcileOptions,
    ) -> Vec<Finding> {
        let name = spec.container_name.as_str();
        if let Some(container) = observed.iter().find(|c| c.id == spec.container_id) {
            let disk = self.reconcile_disk(spec, container, options).await;
            return self
                .reconcile_keys(spec, container, options)
                .await
                .into_iter()
                .chain(disk)
                .collect();
        }
        let same_name = observed.iter().find(|c| {
            c.name == name && c.labels.get(labels::USER_ID).map(String::as_str) == Some(spec.user_id.as_str())
        });
        if let Some(container) = same_name {
            let mut adopted = spec.clone();
            adopt(&mut adopted, container);
            let detail = format!("found under its name with id {}", short(&container.id));
            if options.dry_run {
                return vec![Finding::new(
                    FindingKind::AdoptedContainer,
                    name,
                    Some(container.id.clone()),
                    Outcome::WouldFix,
                    detail,
                )];
            }
            return match self.adapters().store.put(&adopted).await {
                Ok(()) => {
                    self.announce(&adopted);
                    vec![Finding::new(
                        FindingKind::AdoptedContainer,
                        name,
                        Some(container.id.clone()),
                        Outcome::Fixed,
                        detail,
                    )]
                }
                Err(e) => vec![failed(
                    FindingKind::AdoptedContainer,
                    name,
                    Some(container.id.clone()),
                    &e,
                )],
            };
        }
        let Some(kind) = self.config().types.get(&spec.container_type).cloned() else {
            return vec![Finding::new(
                FindingKind::MissingContainer,
                name,
                None,
                Outcome::Failed,
                format!(
                    "its type {} is no longer configured, so it can not be re-created",
                    spec.container_type
                ),
            )];
        };
        let detail = format!(
            "re-created from its record on port {} with volume {}",
            spec.port, spec.volume_name
        );
        if options.dry_run {
            return vec![Finding::new(
                FindingKind::MissingContainer,
                name,
                None,
                Outcome::WouldFix,
                detail,
            )];
        }
        match self.recreate(spec, &kind).await {
            Ok(id) => vec![Finding::new(
                FindingKind::MissingContainer,
                name,
                Some(id),
                Outcome::Fixed,
                detail,
            )],
            Err(e) => vec![failed(FindingKind::MissingContainer, name, None, &e)],
        }
    }

    /// Re-creates a recorded container that the engine lost, and records its new id.
    async fn recreate(&self, spec: &ContainerSpec, kind: &ContainerType) -> Result<String> {
        let mut next = spec.clone();
        let mut undo = Vec::new();
        if let Err(e) = self
            .materialize(&mut next, kind, &mut undo, &noop, "recreate")
            .await
        {
            for step in undo.into_iter().rev() {
                if let Undo::Container(id) = step {
                    let _ = self
                        .adapters()
                        .runtime
                        .remove_container(&id, RemoveMode::Force)
                        .await;
                }
            }
            return Err(e);
        }
        self.adapters().store.put(&next).await?;
        self.announce(&next);
        Ok(next.container_id)
    }

    async fn reconcile_keys(
        &self,
        spec: &ContainerSpec,
        container: &ObservedContainer,
        options: ReconcileOptions,
    ) -> Option<Finding> {
        if spec.ssh_port.is_none() || container.status != ContainerStatus::Running {
            return None;
        }
        let name = spec.container_name.as_str();
        let id = Some(container.id.clone());
        let wanted = match self.adapters().store.keys(&spec.container_name).await {
            Ok(keys) => render_authorized_keys(&keys).into_bytes(),
            Err(e) => return Some(failed(FindingKind::KeysOutOfDate, name, id, &e)),
        };
        let path = format!("{CLI_HOME}/.ssh/authorized_keys");
        match self.adapters().runtime.download(&container.id, &path).await {
            Ok(Some(actual)) if actual == wanted => None,
            Ok(_) if options.dry_run => Some(Finding::new(
                FindingKind::KeysOutOfDate,
                name,
                id,
                Outcome::WouldFix,
                "authorized_keys differs from the store",
            )),
            Ok(_) => Some(match self.install_keys(spec).await {
                Ok(()) => Finding::new(
                    FindingKind::KeysOutOfDate,
                    name,
                    id,
                    Outcome::Fixed,
                    "re-applied the keys from the store",
                ),
                Err(e) => failed(FindingKind::KeysOutOfDate, name, id, &e),
            }),
            Err(e) => Some(failed(FindingKind::KeysOutOfDate, name, id, &e)),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Routes, leases, orphans.

    async fn reconcile_routes(&self, options: ReconcileOptions) -> Result<Vec<Finding>> {
        let routes = self.routes().await?;
        let findings: Vec<Finding> = routes
            .iter()
            .filter_map(|route| {
                let path = format!("/container/{}/{}/", route.user, route.kind);
                let (kind, detail) = match &route.state {
                    RouteState::Active => return None,
                    RouteState::Orphaned => (
                        FindingKind::RouteOrphaned,
                        "no container; removing the route".to_owned(),
                    ),
                    RouteState::Failed(message) => (
                        FindingKind::RouteMissing,
                        format!("nginx refused it before: {message}"),
                    ),
                    RouteState::Missing | RouteState::Disabled => (
                        FindingKind::RouteMissing,
                        "rendering it from the store".to_owned(),
                    ),
                };
                Some(Finding::new(kind, path, None, fix_outcome(options), detail))
            })
            .collect();
        if findings.is_empty() || options.dry_run {
            return Ok(findings);
        }
        // One sync renders the missing routes and removes the orphans, with one reload.
        let after = match self.sync_routes().await {
            Ok(after) => after,
            Err(e) => {
                return Ok(findings
                    .into_iter()
                    .map(|f| Finding {
                        outcome: Outcome::Failed,
                        detail: e.message().to_owned(),
                        ..f
                    })
                    .collect());
            }
        };
        Ok(findings
            .into_iter()
            .map(|f| {
                let still_failed = after.iter().find_map(|r| match &r.state {
                    RouteState::Failed(message) if f.name == format!("/container/{}/{}/", r.user, r.kind) => {
                        Some(message.clone())
                    }
                    _ => None,
                });
                match still_failed {
                    Some(message) => Finding {
                        outcome: Outcome::Failed,
                        detail: message,
                        ..f
                    },
                    None => f,
                }
            })
            .collect())
    }

    async fn reconcile_leases(
        &self,
        specs: &[ContainerSpec],
        busy: &Busy,
        options: ReconcileOptions,
    ) -> Result<Vec<Finding>> {
        let store = &self.adapters().store;
        let owners: BTreeSet<&str> = specs
            .iter()
            .map(|s| s.container_name.as_str())
            .chain(busy.names.iter().map(ContainerName::as_str))
            .collect();
        let mut leaked: BTreeMap<String, Vec<u16>> = BTreeMap::new();
        for lease in store.port_leases().await? {
            if !owners.contains(lease.owner.as_str()) {
                leaked.entry(lease.owner).or_default().push(lease.port);
            }
        }
        let mut findings = Vec::new();
        for (owner, ports) in leaked {
            let detail = format!("ports {ports:?} leased to a container that does not exist");
            let outcome = if options.dry_run {
                Outcome::WouldFix
            } else {
                match store.release_ports(&owner).await {
                    Ok(()) => Outcome::Fixed,
                    Err(e) => {
                        findings.push(failed(FindingKind::LeakedPort, owner, None, &e));
                        continue;
                    }
                }
            };
            findings.push(Finding::new(
                FindingKind::LeakedPort,
                owner,
                None,
                outcome,
                detail,
            ));
        }

        let users: BTreeSet<String> = specs
            .iter()
            .map(|s| s.user_id.to_string())
            .chain(busy.users.iter().cloned())
            .collect();
        for (user, subnet) in store.subnet_leases().await? {
            if users.contains(user.as_str()) {
                continue;
            }
            let detail = format!("subnet {subnet} and its network leased to a user without containers");
            let outcome = if options.dry_run {
                Outcome::WouldFix
            } else {
                // Our lease says we made this network: remove it with the lease (it holds no data;
                // with containers attached the engine refuses and the lease stays).
                match self
                    .remove_network_if_unused(&user, &NetworkName::of(&user))
                    .await
                {
                    Ok(()) => Outcome::Fixed,
                    Err(e) => {
                        findings.push(failed(FindingKind::LeakedSubnet, user.as_str(), None, &e));
                        continue;
                    }
                }
            };
            findings.push(Finding::new(
                FindingKind::LeakedSubnet,
                user.as_str(),
                None,
                outcome,
                detail,
            ));
        }
        Ok(findings)
    }

    async fn find_orphans(
        &self,
        specs: &[ContainerSpec],
        observed: &[ObservedContainer],
        busy: &Busy,
        options: ReconcileOptions,
    ) -> Result<Vec<Finding>> {
        let runtime = &self.adapters().runtime;
        let remove = options.prune && !options.dry_run;
        let outcome = orphan_outcome(options);
        let mut findings = Vec::new();

        let known_names: BTreeSet<&str> = specs.iter().map(|s| s.container_name.as_str()).collect();
        let known_ids: BTreeSet<&str> = specs.iter().map(|s| s.container_id.as_str()).collect();
        let busy_name = |name: &str| {
            let base = name.strip_suffix(PREVIOUS_SUFFIX).unwrap_or(name);
            busy.names.iter().any(|b| b.as_str() == base)
        };
        let ours = |labels: &BTreeMap<String, String>| {
            self.config()
                .extra_labels
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
        };
        for container in observed.iter().cloned() {
            if known_ids.contains(container.id.as_str())
                || known_names.contains(container.name.as_str())
                || busy_name(&container.name)
            {
                continue;
            }
            if !self.made_here(&container.labels) {
                findings.push(self.left_alone(FindingKind::OrphanContainer, container.name, container.id));
                continue;
            }
            let mut finding = Finding::new(
                FindingKind::OrphanContainer,
                container.name.clone(),
                Some(container.id.clone()),
                outcome,
                format!(
                    "labelled managed-by=ContainerManager but no record explains it ({})",
                    container.status
                ),
            );
            if remove && let Err(e) = runtime.remove_container(&container.id, RemoveMode::Force).await {
                finding = failed(
                    FindingKind::OrphanContainer,
                    container.name,
                    Some(container.id),
                    &e,
                );
            }
            findings.push(finding);
        }

        let retained: BTreeSet<VolumeName> = self
            .adapters()
            .store
            .retained_volumes()
            .await?
            .into_iter()
            .collect();
        let known_volumes: BTreeSet<&str> = specs.iter().map(|s| s.volume_name.as_str()).collect();
        for volume in runtime.list_managed_volumes().await? {
            if !ours(&volume.labels) {
                continue;
            }
            let explained = known_volumes.contains(volume.name.as_str())
                || retained.iter().any(|r| r.as_str() == volume.name)
                || volume.name.strip_suffix("_data").is_some_and(busy_name);
            if explained {
                continue;
            }
            if !self.made_here(&volume.labels) {
                findings.push(self.left_alone(FindingKind::OrphanVolume, volume.name, volume.id));
                continue;
            }
            let mut finding = Finding::new(
                FindingKind::OrphanVolume,
                volume.name.clone(),
                Some(volume.id.clone()),
                outcome,
                "labelled managed-by=ContainerManager but no record or retained delete explains it",
            );
            if remove && let Err(e) = runtime.remove_volume(&volume.name).await {
                finding = failed(FindingKind::OrphanVolume, volume.name, Some(volume.id), &e);
            }
            findings.push(finding);
        }

        let users: BTreeSet<&str> = specs.iter().map(|s| s.user_id.as_str()).collect();
        for network in runtime.list_managed_networks().await? {
            if !ours(&network.labels) {
                continue;
            }
            let user = network
                .labels
                .get(labels::USER_ID)
                .map(String::as_str)
                .unwrap_or_default();
            if users.contains(user) || busy.users.contains(user) {
                continue;
            }
            if !self.made_here(&network.labels) {
                findings.push(self.left_alone(FindingKind::OrphanNetwork, network.name, network.id));
                continue;
            }
            let mut finding = Finding::new(
                FindingKind::OrphanNetwork,
                network.name.clone(),
                Some(network.id.clone()),
                outcome,
                "its user has no container record (pruning removes it once nothing is attached)",
            );
            if remove && let Err(e) = runtime.remove_network(&network.name).await {
                finding = failed(FindingKind::OrphanNetwork, network.name, Some(network.id), &e);
            }
            findings.push(finding);
        }
        Ok(findings)
    }

    /// Whether this installation made an object with `labels` (any labelled object, when the
    /// manager has no installation id).
    fn made_here(&self, object_labels: &BTreeMap<String, String>) -> bool {
        self.installation()
            .is_none_or(|id| object_labels.get(labels::INSTALLATION).map(String::as_str) == Some(id))
    }

    /// The finding for an orphan another installation or the Python original made: reported,
    /// never removed, whatever the options.
    fn left_alone(&self, kind: FindingKind, name: String, id: String) -> Finding {
        Finding::new(
            kind,
            name,
            Some(id),
            Outcome::Reported,
            format!(
                "labelled managed-by=ContainerManager but made by another installation or by the \
                 Python original (not {}={}): left alone, also by prune; `cm adopt` takes over \
                 the original's containers",
                labels::INSTALLATION,
                self.installation().unwrap_or_default()
            ),
        )
    }
}

/// The names and users of operations that live processes run right now.
struct Busy {
    names: BTreeSet<ContainerName>,
    users: BTreeSet<String>,
}

fn adopt(spec: &mut ContainerSpec, container: &ObservedContainer) {
    spec.container_id = container.id.clone();
    spec.status = container.status;
    if let Ok(image) = ImageRef::parse(&container.image) {
        spec.image = image;
    }
    // Where it was placed (a move interrupted before its record was written).
    if let Some(node) = container
        .labels
        .get(crate::spec::labels::NODE)
        .and_then(|n| crate::names::NodeName::parse(n).ok())
    {
        spec.node = Some(node);
    }
}

fn short(id: &str) -> &str {
    &id[..12.min(id.len())]
}
