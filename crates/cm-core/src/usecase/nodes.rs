//! The nodes of a runtime that spreads containers over several (Swarm): what each holds, and
//! where a new container goes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::error::{Error, ErrorKind, Result};
use crate::manager::Manager;
use crate::names::NodeName;
use crate::ports::{NodeInfo, NodeState};
use crate::spec::ContainerStatus;

/// A node with what the manager placed on it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    /// The node as the cluster reports it.
    #[serde(flatten)]
    pub node: NodeInfo,
    /// How many of the manager's containers are pinned to it.
    pub containers: usize,
    /// The sum of their memory limits, in bytes.
    pub reserved_memory_bytes: u64,
    /// The sum of their CPU limits.
    pub reserved_cpus: f64,
}

impl NodeReport {
    /// Memory not yet promised to a container, in bytes.
    pub fn free_memory_bytes(&self) -> u64 {
        self.node.memory_bytes.saturating_sub(self.reserved_memory_bytes)
    }

    /// Whether a new container may go there (ready and not drained).
    pub fn takes_containers(&self) -> bool {
        self.node.state == NodeState::Ready && self.node.schedulable
    }
}

impl Manager {
    /// The nodes with what each holds; empty on a single engine.
    pub async fn nodes(&self) -> Result<Vec<NodeReport>> {
        let nodes = self.adapters().runtime.nodes().await?;
        self.known_nodes.remember(&nodes);
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let mut reports: BTreeMap<NodeName, NodeReport> = nodes
            .into_iter()
            .map(|node| {
                let report = NodeReport {
                    node: node.clone(),
                    containers: 0,
                    reserved_memory_bytes: 0,
                    reserved_cpus: 0.0,
                };
                (node.name, report)
            })
            .collect();
        for spec in self.adapters().store.list_all().await? {
            if let Some(report) = spec.node.as_ref().and_then(|n| reports.get_mut(n)) {
                report.containers += 1;
                report.reserved_memory_bytes += spec.memory.bytes();
                report.reserved_cpus += spec.cpus.cpus();
            }
        }
        Ok(reports.into_values().collect())
    }

    /// Tells the live statuses which containers sit on a node that is down (`node-down`: the
    /// engine sends no event of its own for them) and has those whose node is back inspected
    /// again; gives how many are on nodes that are down. cm-api runs it with the usage sampler.
    pub async fn watch_nodes(&self) -> Result<usize> {
        let nodes = self.adapters().runtime.nodes().await?;
        self.known_nodes.remember(&nodes);
        let Some(view) = self.status_view.as_ref() else {
            return Ok(0);
        };
        if nodes.is_empty() {
            return Ok(0);
        }
        let down: Vec<&NodeName> = nodes
            .iter()
            .filter(|n| n.state == NodeState::Down)
            .map(|n| &n.name)
            .collect();
        let mut on_down_nodes = 0;
        for spec in self.adapters().store.list_all().await? {
            let Some(node) = &spec.node else { continue };
            if down.contains(&node) {
                on_down_nodes += 1;
                view.set(&spec.container_id, Some(ContainerStatus::NodeDown));
            } else if view.snapshot_of(&spec.container_id) == Some(ContainerStatus::NodeDown) {
                // Back: its real status again (one that can not be read now is read next round).
                match self
                    .adapters()
                    .runtime
                    .inspect_container(&spec.container_id)
                    .await
                {
                    Ok(found) => {
                        let status = found.map_or(ContainerStatus::Missing, |c| c.status);
                        view.set(&spec.container_id, Some(status));
                    }
                    Err(e) => {
                        tracing::debug!(container = %spec.container_name, error = %e, "not inspected after its node came back");
                    }
                }
            }
        }
        Ok(on_down_nodes)
    }

    /// The nodes as last listed, without asking the engine (for the metrics).
    pub fn known_nodes(&self) -> Vec<NodeInfo> {
        self.known_nodes.all()
    }

    /// Where a new container goes: `requested` when it is a node that takes containers, else the
    /// one with the most memory not yet reserved (ties by name); `None` on a single engine.
    pub(crate) async fn place(&self, requested: Option<&NodeName>) -> Result<Option<NodeName>> {
        choose_node(&self.nodes().await?, requested)
    }

    /// Where a container's published ports are reached: on a single engine the host itself, else
    /// its node's address, remembered from the last listing of the nodes. A node the listing did
    /// not name is looked up again at most every `placement::RELIST_AFTER`, whatever the requests; `None`
    /// while it is unknown (gone from the cluster): its container can not be reached.
    pub(crate) async fn ports_address(&self, node: Option<&NodeName>) -> Option<IpAddr> {
        let Some(node) = node else {
            return Some(IpAddr::from([127, 0, 0, 1]));
        };
        if let Some(address) = self.known_nodes.address(node) {
            return Some(address);
        }
        if self.known_nodes.fresh() {
            return None;
        }
        match self.adapters().runtime.nodes().await {
            Ok(nodes) => self.known_nodes.remember(&nodes),
            Err(e) => {
                self.known_nodes.tried();
                tracing::warn!(%node, error = %e, "the nodes could not be listed for a route");
            }
        }
        self.known_nodes.address(node)
    }
}

/// Where a new container goes: `requested` when it is a node that takes containers, else the
/// one with the most memory not yet reserved (ties by name); `None` on a single engine (no
/// nodes). The rule of [`Manager::place`], over nodes already listed.
pub(crate) fn choose_node(reports: &[NodeReport], requested: Option<&NodeName>) -> Result<Option<NodeName>> {
    if reports.is_empty() {
        return match requested {
            None => Ok(None),
            Some(node) => Err(Error::invalid(format!(
                "this installation runs one engine: there is no node {node} to choose (nodes are a Swarm runtime's)"
            ))
            .for_field("node")),
        };
    }
    let names = || {
        reports
            .iter()
            .map(|r| format!("{} ({})", r.node.name, r.node.state.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(node) = requested {
        return match reports.iter().find(|r| &r.node.name == node) {
            Some(report) if report.takes_containers() => Ok(Some(node.clone())),
            Some(report) => Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "node {node} takes no containers now (it is {}{})",
                    report.node.state.as_str(),
                    if report.node.schedulable { "" } else { ", drained" }
                ),
            )
            .for_field("node")),
            None => Err(
                Error::invalid(format!("there is no node {node}; the nodes are {}", names()))
                    .for_field("node"),
            ),
        };
    }
    reports
        .iter()
        .filter(|r| r.takes_containers())
        .max_by(|a, b| {
            a.free_memory_bytes()
                .cmp(&b.free_memory_bytes())
                .then_with(|| b.node.name.cmp(&a.node.name))
        })
        .map(|r| Some(r.node.name.clone()))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Unavailable,
                format!("no node takes containers now: {}", names()),
            )
        })
}
