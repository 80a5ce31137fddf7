//! What the manager remembers of the nodes between listings: each node's address, so that the
//! route check (which never asks the engine) knows where a container's ports are reached.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{PoisonError, RwLock};

use crate::names::NodeName;
use crate::ports::NodeInfo;

/// The nodes' addresses, as the last listing reported them.
#[derive(Debug, Default)]
pub(crate) struct NodeAddresses(RwLock<BTreeMap<NodeName, IpAddr>>);

impl NodeAddresses {
    /// Replaces what is remembered with `nodes`' addresses.
    pub(crate) fn remember(&self, nodes: &[NodeInfo]) {
        let addresses = nodes.iter().map(|n| (n.name.clone(), n.address)).collect();
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = addresses;
    }

    /// The address of `node`, when it was listed.
    pub(crate) fn get(&self, node: &NodeName) -> Option<IpAddr> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(node)
            .copied()
    }
}
