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
}
