//! What the manager remembers of the nodes between listings: each node as last listed, so that
//! the route check (which never asks the engine) knows where a container's ports are reached and
//! the metrics can tell the nodes' states without an engine call.

use std::net::IpAddr;
use std::sync::{PoisonError, RwLock};

use crate::names::NodeName;
use crate::ports::NodeInfo;

/// The nodes as the last listing reported them.
#[derive(Debug, Default)]
pub(crate) struct KnownNodes(RwLock<Vec<NodeInfo>>);

impl KnownNodes {
    /// Replaces what is remembered with `nodes`.
    pub(crate) fn remember(&self, nodes: &[NodeInfo]) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = nodes.to_vec();
    }

    /// The address of `node`, when it was listed.
    pub(crate) fn address(&self, node: &NodeName) -> Option<IpAddr> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|n| &n.name == node)
            .map(|n| n.address)
    }

    /// Every node last listed.
    pub(crate) fn all(&self) -> Vec<NodeInfo> {
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}
