//! What the create and its recovery share: the steps a create records and undoes.

use crate::names::{NetworkName, UserId, VolumeName};

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

impl crate::manager::Manager {
    /// Begins an operation of `kind` on a handle's record and checks that the record is still the
    /// one the handle was made from: another operation may have replaced the container (a new id)
    /// or moved it (another node) meanwhile. Then the operation ends again and the call is refused,
    /// so a stale handle never acts on a container that is gone or elsewhere.
    pub(crate) async fn begin_on(
        &self,
        spec: &crate::spec::ContainerSpec,
        kind: crate::ports::OperationKind,
    ) -> crate::error::Result<()> {
        let store = &self.adapters().store;
        store
            .begin_operation(spec, kind, self.adapters().clock.now())
            .await?;
        let current = store.get_by_name(&spec.container_name).await;
        match current {
            Ok(Some(current)) if current.container_id == spec.container_id && current.node == spec.node => {
                Ok(())
            }
            other => {
                store.end_operation(&spec.container_name).await?;
                other?;
                Err(crate::error::Error::conflict(format!(
                    "{} changed while this request was on its way (another operation replaced, moved or deleted it): try again",
                    spec.container_name
                )))
            }
        }
    }

    /// Refuses to start a container while an operation replaces, moves or removes it: a start in
    /// the middle of a move's copy would run the container on its old node with the data half
    /// copied, and one during an update would start the container being replaced. A start whose
    /// check passed just before the operation began is stopped by the operation's own stop, unless
    /// its engine call lands after that stop: a window of one engine call, which a lock shared by
    /// starts and operations would close at the price of a store write per start.
    pub(crate) async fn refuse_while_busy(
        &self,
        spec: &crate::spec::ContainerSpec,
    ) -> crate::error::Result<()> {
        let operations = self.adapters().store.operations().await?;
        let Some(busy) = operations.iter().find(|op| op.name == spec.container_name) else {
            return Ok(());
        };
        let doing = match busy.kind {
            crate::ports::OperationKind::Create => "being created",
            crate::ports::OperationKind::Delete | crate::ports::OperationKind::Purge => "being deleted",
            crate::ports::OperationKind::Update => "being updated or moved",
        };
        Err(crate::error::Error::conflict(format!(
            "{} is {doing}: try again when that is done (an operation whose process died is settled by `cm reconcile`)",
            spec.container_name
        )))
    }
}
