//! What the manager remembers of the nodes between listings: each node as last listed, so that
//! the route check (which never asks the engine) knows where a container's ports are reached and
//! the metrics can tell the nodes' states without an engine call.

use std::net::IpAddr;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::names::NodeName;
use crate::ports::NodeInfo;

/// How long a listing answers for a node it did not name: the route check asks again only after
/// that, however many requests name the node meanwhile.
pub(crate) const RELIST_AFTER: Duration = Duration::from_secs(10);

/// The nodes as the last listing reported them, and when that was.
#[derive(Debug, Default)]
pub(crate) struct KnownNodes(RwLock<Listed>);

#[derive(Debug, Default)]
struct Listed {
    nodes: Vec<NodeInfo>,
    at: Option<Instant>,
}

impl KnownNodes {
    /// Replaces what is remembered with `nodes`, listed now.
    pub(crate) fn remember(&self, nodes: &[NodeInfo]) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Listed {
            nodes: nodes.to_vec(),
            at: Some(Instant::now()),
        };
    }

    /// Notes a listing that failed, so that it is not tried again at once.
    pub(crate) fn tried(&self) {
        self.0.write().unwrap_or_else(PoisonError::into_inner).at = Some(Instant::now());
    }

    /// Whether the last listing (or try) is younger than [`RELIST_AFTER`].
    pub(crate) fn fresh(&self) -> bool {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .at
            .is_some_and(|at| at.elapsed() < RELIST_AFTER)
    }

    /// The address of `node`, when it was listed.
    pub(crate) fn address(&self, node: &NodeName) -> Option<IpAddr> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .nodes
            .iter()
            .find(|n| &n.name == node)
            .map(|n| n.address)
    }

    /// Every node last listed.
    pub(crate) fn all(&self) -> Vec<NodeInfo> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .nodes
            .clone()
    }
}
