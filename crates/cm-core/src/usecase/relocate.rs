//! Moving a container to another node with its data (`cm move`): stopped, its volume copied node
//! to node, re-created on the target with the same name, ports (leases are the installation's, so
//! they are free on every node), keys and route (the route check answers the new node's address),
//! then its data on the old node removed. If anything fails, the old container comes back where
//! it was.

use std::time::Duration;

use super::nodes::choose_node;
use crate::access::AuthorizedContainer;
use crate::auth::Action;
use crate::error::{Error, ErrorKind, Result};
use crate::manager::Manager;
use crate::names::NodeName;
use crate::ports::{NodeState, OperationKind, VolumePlan};
use crate::spec::{ContainerSpec, owner_labels};

/// What a move did.
#[derive(Debug, Clone)]
pub struct Moved {
    /// The record on its new node.
    pub spec: ContainerSpec,
    /// Where it was.
    pub from: NodeName,
    /// The bytes of data copied.
    pub copied_bytes: u64,
    /// How long it was not running: from its stop to its start on the new node (zero when it was
    /// not running before).
    pub downtime: Duration,
}

impl Manager {
    /// Moves a container to node `to` with its data. Refused on a single engine, to the node it is
    /// on, to a node that takes no containers, and from a node that is down (its data can not be
    /// read there: nothing is ever re-created empty).
    pub async fn move_container(&self, container: &AuthorizedContainer, to: &NodeName) -> Result<Moved> {
        let spec = self.permitted(container, Action::UpdateContainer)?.clone();
        let from = spec.node.clone().ok_or_else(|| {
            Error::invalid(format!(
                "{} runs on this installation's one engine: there is no other node to move it to",
                spec.container_name
            ))
        })?;
        if &from == to {
            return Err(
                Error::conflict(format!("{} is on node {to} already", spec.container_name)).for_field("node"),
            );
        }
        let kind = self
            .config()
            .types
            .get(&spec.container_type)
            .cloned()
            .ok_or_else(|| {
                Error::conflict(format!(
                    "type {} of {} is no longer configured: it can not be moved",
                    spec.container_type, spec.container_name
                ))
            })?;
        let nodes = self.nodes().await?;
        choose_node(&nodes, Some(to))?;
        match nodes.iter().find(|n| n.node.name == from) {
            Some(source) if source.node.state == NodeState::Ready => {}
            Some(source) => {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "node {from} is {}: the data of {} can not be copied from it; bring the node back first",
                        source.node.state.as_str(),
                        spec.container_name
                    ),
                ));
            }
            None => {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "node {from} of {} is no longer in the cluster",
                        spec.container_name
                    ),
                ));
            }
        }

        let store = &self.adapters().store;
        let name = spec.container_name.clone();
        let was_running = self
            .adapters()
            .runtime
            .inspect_container(&spec.container_id)
            .await?
            .is_some_and(|c| c.status.is_active());
        self.begin_on(&spec, OperationKind::Update).await?;
        let volume = VolumePlan {
            name: spec.volume_name.clone(),
            labels: if spec.volume_name.is_original() {
                Default::default()
            } else {
                owner_labels(&spec.user_id, Some(&spec.container_type), &self.own_labels)
            },
            size: spec.disk,
            node: Some(to.clone()),
        };
        let mut next = spec.clone();
        next.node = Some(to.clone());
        // By the manager's clock, so that tests with a fixed clock see the same figures.
        let stopped_at = self.adapters().clock.now();
        let runtime = self.adapters().runtime.clone();
        let (source, target, via) = (from.clone(), to.clone(), spec.image.clone());
        let copy = || async move { runtime.copy_volume(&volume, &source, &target, &via).await };
        let what = super::update::Replacing {
            describe: format!("move of {name} to node {to}"),
            restored: format!("it is back on node {from}"),
        };
        let outcome = self.replace(&spec, next, &kind, copy, &what).await;
        let (mut moved, copied_bytes) = match outcome {
            Ok(done) => done,
            Err(failed) => {
                if failed.restored {
                    // Back on its node with its data there: a copy on the target would only mislead.
                    if let Err(e) = self
                        .adapters()
                        .runtime
                        .remove_volume_on(spec.volume_name.as_str(), to)
                        .await
                    {
                        tracing::warn!(container = %name, node = %to, error = %e, "the failed move's copy could not be removed");
                    }
                } else if let Err(e) = store.unclaim(&name).await {
                    tracing::warn!(container = %name, error = ?e, "could not hand the unfinished move to the reconciler");
                }
                return Err(failed.error);
            }
        };
        // It moves as it was: a stopped container stays stopped on its new node.
        if !was_running {
            self.adapters()
                .runtime
                .stop_container(&moved.container_id)
                .await?;
            moved = self.record_status(moved).await?;
        }
        let downtime = if was_running {
            self.adapters()
                .clock
                .now()
                .duration_since(stopped_at)
                .unwrap_or_default()
        } else {
            Duration::ZERO
        };
        // The data now lives on the new node; the old copy would only mislead.
        if let Err(e) = self
            .adapters()
            .runtime
            .remove_volume_on(spec.volume_name.as_str(), &from)
            .await
        {
            tracing::warn!(container = %name, node = %from, error = %e, "the moved volume's old copy could not be removed");
        }
        tracing::info!(container = %name, %from, %to, copied_bytes, ?downtime, "moved");
        Ok(Moved {
            spec: moved,
            from,
            copied_bytes,
            downtime,
        })
    }
}
