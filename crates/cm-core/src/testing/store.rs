//! The fake store: records, intents, leases, subnets, keys, quotas and idle marks in memory,
//! with SQLite's rules of who may take over an operation.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::keys::{SshPublicKey, StoredKey};
use crate::names::{ContainerName, UserId, VolumeName};
use crate::network::{PortProbe, Subnet, SubnetPool};
use crate::ports::{CreateReservation, Operation, OperationKind, PortLease, Store};
use crate::spec::ContainerSpec;

#[derive(Default)]
struct Records {
    specs: BTreeMap<String, ContainerSpec>,
    operations: BTreeMap<ContainerName, Operation>,
    /// Operations whose process is alive (or that a reconcile claimed).
    owned: BTreeSet<ContainerName>,
    retained: BTreeSet<VolumeName>,
    leases: BTreeMap<u16, String>,
    subnets: BTreeMap<UserId, Subnet>,
    keys: BTreeMap<ContainerName, Vec<StoredKey>>,
    quotas: BTreeMap<UserId, crate::quota::UserQuota>,
    idle_stopped: BTreeMap<ContainerName, SystemTime>,
}

/// An in-memory store with the same semantics as the SQLite one.
#[derive(Default)]
pub struct MemoryStore {
    records: Mutex<Records>,
}

impl MemoryStore {
    fn records(&self) -> MutexGuard<'_, Records> {
        self.records.lock().unwrap()
    }

    /// Simulates the death of the process that runs the unfinished operations.
    pub fn crash(&self) {
        self.records().owned.clear();
    }
}

impl Records {
    fn end(&mut self, name: &ContainerName) {
        self.operations.remove(name);
        self.owned.remove(name);
    }
}

fn unix_seconds(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

#[async_trait]
impl Store for MemoryStore {
    async fn begin_create(&self, request: &CreateReservation, probe: Arc<dyn PortProbe>) -> Result<Vec<u16>> {
        let mut records = self.records();
        if records.specs.values().any(|s| s.container_name == request.name) {
            return Err(Error::conflict(format!("container {} exists", request.name)));
        }
        if records.operations.contains_key(&request.name) {
            return Err(Error::conflict(format!(
                "another operation on {} is in progress",
                request.name
            )));
        }
        let mut taken: BTreeSet<u16> = records.leases.keys().copied().collect();
        taken.extend(&request.exclude);
        let ports = request.range.pick(request.ports, &taken, probe.as_ref())?;
        for port in &ports {
            records.leases.insert(*port, request.name.to_string());
        }
        records.operations.insert(
            request.name.clone(),
            Operation {
                name: request.name.clone(),
                user_id: request.user.clone(),
                container_type: request.kind.clone(),
                kind: OperationKind::Create,
                started_at: unix_seconds(request.started),
                steps: Vec::new(),
            },
        );
        records.owned.insert(request.name.clone());
        Ok(ports)
    }

    async fn finish_create(&self, spec: &ContainerSpec) -> Result<()> {
        let mut records = self.records();
        records.specs.insert(spec.container_id.clone(), spec.clone());
        records.retained.remove(&spec.volume_name);
        records.end(&spec.container_name);
        Ok(())
    }

    async fn abandon_create(&self, name: &ContainerName) -> Result<()> {
        let mut records = self.records();
        records.leases.retain(|_, owner| owner != name.as_str());
        records.keys.remove(name);
        records.end(name);
        Ok(())
    }

    async fn begin_operation(
        &self,
        spec: &ContainerSpec,
        kind: OperationKind,
        started: SystemTime,
    ) -> Result<()> {
        let name = &spec.container_name;
        let mut records = self.records();
        if let Some(op) = records.operations.get(name) {
            let takes_over = matches!(op.kind, OperationKind::Delete | OperationKind::Purge)
                && matches!(kind, OperationKind::Delete | OperationKind::Purge)
                && !records.owned.contains(name);
            if !takes_over {
                return Err(Error::conflict(format!(
                    "another operation on {name} is in progress"
                )));
            }
        }
        records.operations.insert(
            name.clone(),
            Operation {
                name: name.clone(),
                user_id: spec.user_id.clone(),
                container_type: spec.container_type.clone(),
                kind,
                started_at: unix_seconds(started),
                steps: Vec::new(),
            },
        );
        records.owned.insert(name.clone());
        Ok(())
    }

    async fn end_operation(&self, name: &ContainerName) -> Result<()> {
        self.records().end(name);
        Ok(())
    }

    async fn finish_delete(&self, spec: &ContainerSpec) -> Result<()> {
        let mut records = self.records();
        let name = &spec.container_name;
        records.specs.retain(|_, s| &s.container_name != name);
        records.leases.retain(|_, owner| owner != name.as_str());
        records.keys.remove(name);
        records.idle_stopped.remove(name);
        match records.operations.get(name).map(|op| op.kind) {
            Some(OperationKind::Purge) => {
                records.retained.remove(&spec.volume_name);
            }
            _ => {
                records.retained.insert(spec.volume_name.clone());
            }
        }
        records.end(name);
        Ok(())
    }

    async fn operations(&self) -> Result<Vec<Operation>> {
        Ok(self.records().operations.values().cloned().collect())
    }

    async fn record_step(&self, name: &ContainerName, step: &str) -> Result<()> {
        if let Some(op) = self.records().operations.get_mut(name) {
            op.steps.push(step.to_owned());
        }
        Ok(())
    }

    async fn claim_abandoned(&self) -> Result<Vec<Operation>> {
        let mut records = self.records();
        let abandoned: Vec<Operation> = records
            .operations
            .values()
            .filter(|op| !records.owned.contains(&op.name))
            .cloned()
            .collect();
        for op in &abandoned {
            records.owned.insert(op.name.clone());
        }
        Ok(abandoned)
    }

    async fn unclaim(&self, name: &ContainerName) -> Result<()> {
        self.records().owned.remove(name);
        Ok(())
    }

    async fn release_ports(&self, owner: &str) -> Result<()> {
        self.records().leases.retain(|_, o| o != owner);
        Ok(())
    }

    async fn subnet_leases(&self) -> Result<Vec<(UserId, Subnet)>> {
        Ok(self
            .records()
            .subnets
            .iter()
            .map(|(u, s)| (u.clone(), *s))
            .collect())
    }

    async fn subnet_of(&self, user: &UserId) -> Result<Option<Subnet>> {
        Ok(self.records().subnets.get(user).copied())
    }

    async fn forget_retained(&self, name: &VolumeName) -> Result<bool> {
        Ok(self.records().retained.remove(name))
    }

    async fn retained_volumes(&self) -> Result<Vec<VolumeName>> {
        Ok(self.records().retained.iter().cloned().collect())
    }

    async fn adopt(&self, spec: &ContainerSpec) -> Result<()> {
        let mut records = self.records();
        let name = &spec.container_name;
        if records.specs.values().any(|s| &s.container_name == name) {
            return Err(Error::conflict(format!("container {name} exists")));
        }
        if records.operations.contains_key(name) {
            return Err(Error::conflict(format!(
                "another operation on {name} is in progress"
            )));
        }
        let ports: Vec<u16> = std::iter::once(spec.port).chain(spec.ssh_port).collect();
        if let Some((port, owner)) = ports
            .iter()
            .find_map(|p| records.leases.get(p).map(|owner| (p, owner)))
        {
            return Err(Error::conflict(format!("port {port} is leased to {owner}")));
        }
        for port in ports {
            records.leases.insert(port, name.to_string());
        }
        records.specs.insert(spec.container_id.clone(), spec.clone());
        Ok(())
    }

    async fn put(&self, spec: &ContainerSpec) -> Result<()> {
        let mut records = self.records();
        records
            .specs
            .retain(|_, s| s.container_name != spec.container_name);
        records.specs.insert(spec.container_id.clone(), spec.clone());
        Ok(())
    }

    async fn get(&self, container_id: &str) -> Result<Option<ContainerSpec>> {
        Ok(self.records().specs.get(container_id).cloned())
    }

    async fn get_by_name(&self, name: &ContainerName) -> Result<Option<ContainerSpec>> {
        Ok(self
            .records()
            .specs
            .values()
            .find(|s| &s.container_name == name)
            .cloned())
    }

    async fn list_all(&self) -> Result<Vec<ContainerSpec>> {
        let mut specs: Vec<ContainerSpec> = self.records().specs.values().cloned().collect();
        specs.sort_by(|a, b| a.container_name.cmp(&b.container_name));
        Ok(specs)
    }

    async fn list_user(&self, user: &UserId) -> Result<Vec<ContainerSpec>> {
        let mut specs = self.list_all().await?;
        specs.retain(|s| &s.user_id == user);
        Ok(specs)
    }

    async fn port_leases(&self) -> Result<Vec<PortLease>> {
        Ok(self
            .records()
            .leases
            .iter()
            .map(|(port, owner)| PortLease {
                port: *port,
                owner: owner.clone(),
            })
            .collect())
    }

    async fn lease_subnet(
        &self,
        user: &UserId,
        pool: SubnetPool,
        exclude: &BTreeSet<Subnet>,
    ) -> Result<Subnet> {
        let mut records = self.records();
        if let Some(subnet) = records.subnets.get(user) {
            return Ok(*subnet);
        }
        let mut taken: BTreeSet<Subnet> = records.subnets.values().copied().collect();
        taken.extend(exclude);
        let subnet = pool.pick(&taken)?;
        records.subnets.insert(user.clone(), subnet);
        Ok(subnet)
    }

    async fn release_subnet(&self, user: &UserId) -> Result<()> {
        self.records().subnets.remove(user);
        Ok(())
    }

    async fn user_quota(&self, user: &UserId) -> Result<Option<crate::quota::UserQuota>> {
        Ok(self.records().quotas.get(user).copied())
    }

    async fn set_user_quota(&self, user: &UserId, quota: Option<&crate::quota::UserQuota>) -> Result<()> {
        let mut records = self.records();
        match quota {
            Some(quota) => records.quotas.insert(user.clone(), *quota),
            None => records.quotas.remove(user),
        };
        Ok(())
    }

    async fn add_key(&self, name: &ContainerName, key: &SshPublicKey, added: SystemTime) -> Result<bool> {
        let mut records = self.records();
        let keys = records.keys.entry(name.clone()).or_default();
        if keys.iter().any(|k| k.key.fingerprint() == key.fingerprint()) {
            return Ok(false);
        }
        keys.push(StoredKey {
            key: key.clone(),
            added_at: rfc3339(added),
        });
        Ok(true)
    }

    async fn remove_key(&self, name: &ContainerName, fingerprint: &str) -> Result<bool> {
        let mut records = self.records();
        let Some(keys) = records.keys.get_mut(name) else {
            return Ok(false);
        };
        let before = keys.len();
        keys.retain(|k| k.key.fingerprint() != fingerprint);
        Ok(keys.len() != before)
    }

    async fn keys(&self, name: &ContainerName) -> Result<Vec<StoredKey>> {
        Ok(self.records().keys.get(name).cloned().unwrap_or_default())
    }

    async fn mark_idle_stopped(&self, name: &ContainerName, at: SystemTime) -> Result<()> {
        self.records().idle_stopped.insert(name.clone(), at);
        Ok(())
    }

    async fn clear_idle_stopped(&self, name: &ContainerName) -> Result<bool> {
        Ok(self.records().idle_stopped.remove(name).is_some())
    }

    async fn idle_stopped(&self) -> Result<BTreeMap<ContainerName, SystemTime>> {
        Ok(self.records().idle_stopped.clone())
    }
}
