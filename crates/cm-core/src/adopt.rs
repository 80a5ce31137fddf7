//! Adoption: containers the Python original made (labelled `managed-by=ContainerManager`,
//! `user-id`, `container-type`, `port`, and `ssh-port` when they have SSH) become records of this
//! installation, so that `cm` lists, routes, stops, updates and deletes them like its own.
//!
//! - **In place** (the default): the very container is kept, running as it is. Its record gets
//!   exactly its ports (leased, wherever they are), its volume at `/data`, its environment (from
//!   the original's records when given, else what the container has beyond its image's), its SSH
//!   key (`SSH_PUBLIC_KEY`, when ed25519) and the user's network and subnet for later re-creates.
//!   The container is renamed to `{user}_{type}`.
//! - **Re-created** (`recreate`): adopted in place first, then updated like any container: a new
//!   container on this installation's profile (type image, limits, user network, ports on
//!   127.0.0.1, labels) with the same ports and volume; if that fails, the old one is restored.
//!
//! Containers that carry an installation label are some installation of this project's, never
//! adopted (reconcile reports those). Where `[labels]` adds labels to everything, only
//! `recreate` can adopt: an existing container's labels can not be changed. Nothing is changed for a container that can not be adopted;
//! the report says why.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::access::AuthorizedContainer;
use crate::config::ContainerType;
use crate::error::{Error, Result};
use crate::manager::Manager;
use crate::names::{ContainerName, NetworkName, TypeName, UserId, VolumeName, quote};
use crate::ports::{ForeignContainer, NetworkPlan, ObservedContainer};
use crate::spec::{ContainerSpec, labels, owner_labels, url_path};
use crate::usecase::create::{RESERVED_ENV, set_manager_env};
use crate::values::{EnvVars, ImageRef};

/// The variable the original passed a user's SSH key in.
const ORIGINAL_KEY_VAR: &str = "SSH_PUBLIC_KEY";

/// How to adopt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdoptOptions {
    /// Only say what would be adopted.
    pub dry_run: bool,
    /// Re-create each adopted container on this installation's profile.
    pub recreate: bool,
    /// Only these users' containers (empty: everyone's), so a host can move user by user.
    pub users: BTreeSet<UserId>,
}

/// What adoption did with one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Adoption {
    /// The container's name on the engine before adoption.
    pub name: String,
    /// Its engine id (the new one when re-created).
    pub id: String,
    /// Its record's name, when it was (or would be) adopted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adopted_as: Option<ContainerName>,
    /// What happened.
    pub outcome: AdoptOutcome,
    /// Why, or what was kept.
    pub detail: String,
}

/// The outcome for one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AdoptOutcome {
    /// Taken over in place.
    Adopted,
    /// Taken over and re-created on this installation's profile.
    Recreated,
    /// Would be adopted (dry run).
    WouldAdopt,
    /// Left as it is; the detail says why.
    Skipped,
    /// Adoption began and failed; the detail says what is left.
    Failed,
}

/// The original's records (`--records FILE`): its TBEF.DB export, a JSON object whose
/// `CONTAINER::<id>` values are the container specs (as objects or as JSON text). The other keys
/// (`CONTAINER_USER::`, the port pools) are read from the containers' labels instead.
#[derive(Debug, Clone, Default)]
pub struct OriginalRecords {
    specs: Vec<OriginalSpec>,
}

/// What adoption reads from one of the original's specs; the rest comes from the engine.
#[derive(Debug, Clone, Deserialize)]
struct OriginalSpec {
    container_id: String,
    #[serde(default)]
    container_name: Option<String>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    volume_name: Option<String>,
    #[serde(default)]
    env: Option<BTreeMap<String, serde_json::Value>>,
    /// Seconds since the epoch.
    #[serde(default)]
    created_at: Option<f64>,
}

impl OriginalRecords {
    /// Parses the original's exported records.
    pub fn parse(json: &str) -> Result<Self> {
        let object: BTreeMap<String, serde_json::Value> = serde_json::from_str(json)
            .map_err(|e| Error::invalid(format!("the records are not a JSON object of TBEF.DB keys: {e}")))?;
        let mut specs = Vec::new();
        for (key, value) in object {
            if !key.starts_with("CONTAINER::") {
                continue;
            }
            // TBEF.DB keeps values as JSON text; an export may also have them as objects.
            let value = match value {
                serde_json::Value::String(text) => serde_json::from_str(&text)
                    .map_err(|e| Error::invalid(format!("the record {key} is not a container spec: {e}")))?,
                other => other,
            };
            let spec: OriginalSpec = serde_json::from_value(value)
                .map_err(|e| Error::invalid(format!("the record {key} is not a container spec: {e}")))?;
            specs.push(spec);
        }
        Ok(OriginalRecords { specs })
    }

    /// How many container specs the records hold.
    pub fn len(&self) -> usize {
        self.specs.len()
    }

    /// True when they hold none.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    fn of(&self, container: &ObservedContainer) -> Option<&OriginalSpec> {
        self.specs.iter().find(|s| {
            s.container_id == container.id || s.container_name.as_deref() == Some(container.name.as_str())
        })
    }
}

/// A container that can be adopted, and its record to be.
struct Candidate {
    spec: ContainerSpec,
    kind: ContainerType,
    key: Option<String>,
}

impl Manager {
    /// Takes over the Python original's containers; see the module documentation.
    pub async fn adopt(&self, options: &AdoptOptions, records: &OriginalRecords) -> Result<Vec<Adoption>> {
        let runtime = &self.adapters().runtime;
        runtime.engine_info().await?;
        let specs = self.adapters().store.list_all().await?;
        let known_ids: BTreeSet<&str> = specs.iter().map(|s| s.container_id.as_str()).collect();
        let mut taken: BTreeSet<ContainerName> = specs.iter().map(|s| s.container_name.clone()).collect();
        let mut report = Vec::new();
        for container in runtime.list_managed(&BTreeMap::new()).await? {
            if known_ids.contains(container.id.as_str())
                || taken.iter().any(|name| name.as_str() == container.name)
                || container.labels.contains_key(labels::INSTALLATION)
            {
                // This project's own: records, orphans and busy operations are reconcile's.
                continue;
            }
            let of_chosen_user = options.users.is_empty()
                || container
                    .labels
                    .get(labels::USER_ID)
                    .is_some_and(|u| options.users.iter().any(|chosen| chosen.as_str() == u));
            if !of_chosen_user {
                continue;
            }
            let skipped = |detail: String| Adoption {
                name: container.name.clone(),
                id: container.id.clone(),
                adopted_as: None,
                outcome: AdoptOutcome::Skipped,
                detail,
            };
            let candidate = match self.candidate(&container, records, &taken).await {
                Ok(Some(candidate)) => candidate,
                Ok(None) => continue,
                Err(e) => {
                    report.push(skipped(e.message().to_owned()));
                    continue;
                }
            };
            let missing: Vec<String> = self
                .config()
                .extra_labels
                .iter()
                .filter(|(k, v)| container.labels.get(*k) != Some(*v))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            if !options.recreate && !missing.is_empty() {
                // Labels can not be added to a container, and the reconciler sees only those with
                // the configured ones: in place it would look lost.
                report.push(skipped(format!(
                    "it lacks this installation's labels ({}): adopt it with --recreate",
                    missing.join(", ")
                )));
                continue;
            }
            let name = candidate.spec.container_name.clone();
            taken.insert(name.clone());
            if options.dry_run {
                report.push(Adoption {
                    adopted_as: Some(name),
                    outcome: AdoptOutcome::WouldAdopt,
                    detail: describe(&candidate.spec, options.recreate),
                    ..skipped(String::new())
                });
                continue;
            }
            // Without this installation's labels the reconciler can not see it: it may only stay
            // adopted once re-created.
            let must_recreate = !missing.is_empty();
            report.push(
                self.take_over(&container, candidate, options.recreate, must_recreate)
                    .await,
            );
        }
        Ok(report)
    }

    /// The record `container` would get, `None` when it is not the original's at all, or an
    /// error saying why it can not be adopted.
    async fn candidate(
        &self,
        container: &ObservedContainer,
        records: &OriginalRecords,
        taken: &BTreeSet<ContainerName>,
    ) -> Result<Option<Candidate>> {
        let label = |key: &str| container.labels.get(key).map(String::as_str);
        let (Some(user), Some(kind), Some(port)) = (
            label(labels::USER_ID),
            label(labels::CONTAINER_TYPE),
            label(labels::PORT),
        ) else {
            return Ok(None);
        };
        let user = UserId::parse(user).map_err(|e| {
            Error::invalid(format!("its user-id label can not be used here: {}", e.message()))
        })?;
        let kind_name = TypeName::parse(kind).map_err(|e| {
            Error::invalid(format!(
                "its container-type label can not be used here: {}",
                e.message()
            ))
        })?;
        let kind = self.config().types.get(&kind_name).cloned().ok_or_else(|| {
            Error::invalid(format!(
                "its type {kind_name} is not configured here: add it to config.toml first"
            ))
        })?;
        let port = parse_port(port)
            .ok_or_else(|| Error::invalid(format!("its port label {} is not a port", quote(port))))?;
        let ssh_port =
            match label(labels::SSH_PORT) {
                None | Some("0" | "") => None,
                Some(raw) => Some(parse_port(raw).ok_or_else(|| {
                    Error::invalid(format!("its ssh-port label {} is not a port", quote(raw)))
                })?),
            };
        if ssh_port == Some(port) {
            return Err(Error::invalid(format!(
                "its port and ssh-port labels are both {port}"
            )));
        }
        // Leased to another container: refused here, before anything changes (and in a dry run).
        let leases = self.adapters().store.port_leases().await?;
        if let Some(lease) = leases.iter().find(|l| l.port == port || Some(l.port) == ssh_port) {
            return Err(Error::conflict(format!(
                "port {} is leased to {}",
                lease.port, lease.owner
            )));
        }
        let name = ContainerName::of(&user, &kind_name);
        if taken.contains(&name) {
            return Err(Error::conflict(format!(
                "{user} already has a container of type {kind_name} here ({name}): one per user and type"
            )));
        }
        let Some(foreign) = self.adapters().runtime.inspect_foreign(&container.id).await? else {
            return Err(Error::not_found("it is gone"));
        };
        let record = records.of(container);
        let volume = record
            .and_then(|r| r.volume_name.clone())
            .or_else(|| foreign.data_volume.clone())
            .ok_or_else(|| Error::invalid("it has no volume at /data: nothing to keep its data in"))?;
        let volume = VolumeName::parse(&volume)
            .map_err(|e| Error::invalid(format!("its volume can not be used here: {}", e.message())))?;
        let image = record
            .and_then(|r| r.image.clone())
            .unwrap_or_else(|| foreign.observed.image.clone());
        let image = ImageRef::parse(&image)?;
        let (env, key) = adopted_env(record, &foreign, &user, &kind, ssh_port.is_some())?;
        let created_at = record
            .and_then(|r| r.created_at)
            .filter(|t| t.is_finite() && *t > 0.0)
            .map(|t| {
                let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(t);
                humantime::format_rfc3339_seconds(at).to_string()
            })
            .unwrap_or_else(|| foreign.created.clone());
        let spec = ContainerSpec {
            container_id: container.id.clone(),
            container_name: name,
            container_type: kind_name.clone(),
            user_id: user.clone(),
            port,
            internal_port: kind.internal_port,
            image,
            volume_name: volume,
            status: container.status,
            created_at,
            env,
            ssh_port,
            network_name: NetworkName::of(&user),
            // Leased when it is taken over.
            subnet: self.config().subnet_pool.range,
            command: kind.command.clone(),
            memory: kind.memory,
            cpus: kind.cpus,
            pids_limit: kind.pids_limit,
            url_path: url_path(&user, &kind_name),
            disk: None,
            node: None,
        };
        Ok(Some(Candidate { spec, kind, key }))
    }

    /// Records a candidate, names its container like ours, and re-creates it when asked.
    async fn take_over(
        &self,
        container: &ObservedContainer,
        candidate: Candidate,
        recreate: bool,
        must_recreate: bool,
    ) -> Adoption {
        let Candidate { mut spec, kind, key } = candidate;
        let name = spec.container_name.clone();
        let mut adoption = Adoption {
            name: container.name.clone(),
            id: container.id.clone(),
            adopted_as: Some(name.clone()),
            outcome: AdoptOutcome::Failed,
            detail: String::new(),
        };
        if let Err(e) = self.record_adopted(&mut spec).await {
            adoption.detail = format!("nothing was taken over: {}", e.message());
            return adoption;
        }
        let mut notes = vec![describe(&spec, false)];
        if let Some(key) = key {
            notes.push(self.import_key(&spec, &key).await);
        }
        if container.name != name.as_str()
            && let Err(e) = self
                .adapters()
                .runtime
                .rename_container(&container.id, name.as_str())
                .await
        {
            notes.push(format!("it keeps its name {} ({})", container.name, e.message()));
        }
        if let Some(refused) = self.route(&spec, &kind).await {
            notes.push(format!("its route was refused: {refused}"));
        }
        adoption.outcome = AdoptOutcome::Adopted;
        if !recreate {
            notes.push(
                "its ports stay published as the original made them (maybe on every interface, \
                 past the route's owner check) until `cm update` re-creates it"
                    .to_owned(),
            );
        }
        if recreate {
            match self
                .update(&AuthorizedContainer::system(spec.clone()), None)
                .await
            {
                Ok(updated) => {
                    adoption.outcome = AdoptOutcome::Recreated;
                    adoption.id = updated.container_id;
                    notes.push(format!("re-created from {}", updated.image));
                }
                Err(e) if must_recreate => {
                    adoption.outcome = AdoptOutcome::Failed;
                    notes = vec![match self.undo_adoption(&spec, container).await {
                        Ok(()) => format!(
                            "re-creating it failed, so it was not adopted (the original runs as before): {}",
                            e.message()
                        ),
                        Err(undo) => format!(
                            "re-creating it failed ({}) and undoing the adoption failed too: {}",
                            e.message(),
                            undo.message()
                        ),
                    }];
                }
                Err(e) => notes.push(format!(
                    "adopted in place; re-creating it failed and it was kept: {}",
                    e.message()
                )),
            }
        }
        adoption.detail = notes.join("; ");
        adoption
    }

    /// Forgets an adoption: the record, its leases and keys go, the container gets its old name
    /// back, the user's subnet goes when nothing else of theirs holds it.
    async fn undo_adoption(&self, spec: &ContainerSpec, container: &ObservedContainer) -> Result<()> {
        let store = &self.adapters().store;
        store.finish_delete(spec).await?;
        store.forget_retained(&spec.volume_name).await?;
        if container.name != spec.container_name.as_str() {
            self.adapters()
                .runtime
                .rename_container(&container.id, &container.name)
                .await?;
        }
        self.release_subnet_if_unused(&spec.user_id).await
    }

    /// Leases the user's subnet, prepares the user network for later re-creates and writes the
    /// record with exactly the container's ports.
    async fn record_adopted(&self, spec: &mut ContainerSpec) -> Result<()> {
        let store = &self.adapters().store;
        let runtime = &self.adapters().runtime;
        let user = spec.user_id.clone();
        spec.subnet = match store.subnet_of(&user).await? {
            Some(subnet) => subnet,
            None => {
                let engine_subnets = runtime.network_subnets().await?;
                store
                    .lease_subnet(&user, self.config().subnet_pool, &engine_subnets)
                    .await?
            }
        };
        let plan = NetworkPlan {
            name: spec.network_name.clone(),
            subnet: spec.subnet,
            labels: owner_labels(&user, None, self.own_labels()),
        };
        runtime.ensure_network(&plan).await?;
        store.adopt(spec).await?;
        self.announce(spec);
        Ok(())
    }

    /// Stores the original's SSH key of an adopted container; says what became of it.
    async fn import_key(&self, spec: &ContainerSpec, raw: &str) -> String {
        let key = match self.adapters().keys.parse(raw) {
            Ok(key) => key,
            Err(e) => {
                return format!(
                    "its SSH key was not imported ({}); add an ed25519 key",
                    e.message()
                );
            }
        };
        if let Err(e) = self
            .adapters()
            .store
            .add_key(&spec.container_name, &key, self.adapters().clock.now())
            .await
        {
            return format!("its SSH key was not imported: {}", e.message());
        }
        match self.apply_keys_if_running(spec).await {
            Ok(_) => format!("its SSH key {} was imported", key.fingerprint()),
            Err(e) => format!(
                "its SSH key {} was imported, and is applied at its next start ({})",
                key.fingerprint(),
                e.message()
            ),
        }
    }
}

/// The environment of an adopted container: the original's record's, else what the container
/// has beyond its image; the manager's own variables set as for a new container; the original's
/// key variable taken out (the key goes to the key store).
fn adopted_env(
    record: Option<&OriginalSpec>,
    foreign: &ForeignContainer,
    user: &UserId,
    kind: &ContainerType,
    ssh: bool,
) -> Result<(EnvVars, Option<String>)> {
    let mut vars: BTreeMap<String, String> = match record.and_then(|r| r.env.as_ref()) {
        Some(env) => env
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect(),
        None => foreign.env.clone(),
    };
    let key = vars.remove(ORIGINAL_KEY_VAR).filter(|k| !k.trim().is_empty());
    for reserved in RESERVED_ENV.iter().chain(&["CM_SSH"]) {
        vars.remove(*reserved);
    }
    let mut env = EnvVars::try_from(vars)
        .map_err(|e| Error::invalid(format!("its environment can not be kept: {}", e.message())))?;
    set_manager_env(&mut env, user, kind, ssh);
    Ok((env, key))
}

fn parse_port(raw: &str) -> Option<u16> {
    raw.trim().parse().ok().filter(|p| *p > 0)
}

/// What a record keeps, in a few words.
fn describe(spec: &ContainerSpec, recreate: bool) -> String {
    let ssh = spec
        .ssh_port
        .map(|p| format!(", SSH port {p}"))
        .unwrap_or_default();
    let how = if recreate {
        "re-created on this profile"
    } else {
        "in place"
    };
    format!(
        "as {} {how}: port {}{ssh}, volume {}",
        spec.container_name, spec.port, spec.volume_name
    )
}
