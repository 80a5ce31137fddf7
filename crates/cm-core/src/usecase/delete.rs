//! Deleting a container (its data only with `purge`) and the data volumes kept by deletes.

use crate::access::AuthorizedContainer;
use crate::auth::Action;
use crate::error::{Error, ErrorKind, Result};

use crate::names::{NetworkName, UserId, VolumeName};

use crate::ports::{OperationKind, RemoveMode};

use crate::spec::ContainerSpec;

use crate::manager::Manager;

/// How to delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteOptions {
    /// Kill a running container instead of refusing.
    pub force: bool,
    /// Also remove the data volume.
    pub purge: bool,
}

impl Manager {
    /// Deletes a container, its route, its keys and its leases; the data volume only with `purge`.
    ///
    /// Records are dropped only after the engine removed the container: with the engine down,
    /// nothing changes.
    pub async fn delete(
        &self,
        container: &AuthorizedContainer,
        options: DeleteOptions,
    ) -> Result<ContainerSpec> {
        let started = std::time::Instant::now();
        let outcome = self.delete_measured(container, options).await;
        self.metrics.observe("delete", &outcome, started.elapsed());
        outcome
    }

    pub(crate) async fn delete_measured(
        &self,
        container: &AuthorizedContainer,
        options: DeleteOptions,
    ) -> Result<ContainerSpec> {
        if options.purge {
            self.permitted(container, Action::PurgeData)
                .map_err(|e| e.for_field("purge"))?;
        }
        let spec = self.permitted(container, Action::DeleteContainer)?.clone();
        let runtime = &self.adapters.runtime;
        let store = &self.adapters.store;
        let observed = runtime.inspect_container(&spec.container_id).await?;
        let running = observed.as_ref().is_some_and(|c| c.status.is_active());
        if running && !options.force {
            return Err(Error::conflict(format!(
                "container {} is running: stop it first or delete with force",
                spec.container_name
            )));
        }
        let kind = if options.purge {
            OperationKind::Purge
        } else {
            OperationKind::Delete
        };
        store
            .begin_operation(&spec, kind, self.adapters.clock.now())
            .await?;
        self.fail_point("delete:begun");

        if let Err(e) = runtime
            .remove_container(&spec.container_id, RemoveMode::Force)
            .await
        {
            store.end_operation(&spec.container_name).await?;
            return Err(e.context(format_args!("deleting {}", spec.container_name)));
        }
        self.fail_point("delete:container");
        // The container is gone: from here on the delete finishes, and a failing step leaves the
        // intent recorded, handed to the reconciler (which finishes intents no process runs).
        if let Err(e) = self.finish_deleting(&spec, options.purge).await {
            if let Err(unclaimed) = store.unclaim(&spec.container_name).await {
                tracing::warn!(container = %spec.container_name, error = ?unclaimed, "could not hand the unfinished delete to the reconciler");
            }
            return Err(e);
        }
        Ok(spec)
    }

    /// The steps of a delete after the container is gone: the route, the volume (with purge),
    /// the records, and the user's network when it was their last container.
    pub(crate) async fn finish_deleting(&self, spec: &ContainerSpec, purge: bool) -> Result<()> {
        let runtime = &self.adapters.runtime;
        let store = &self.adapters.store;
        if self.adapters.proxy.status().enabled
            && let Err(e) = self
                .adapters
                .proxy
                .remove(&spec.user_id, &spec.container_type)
                .await
        {
            tracing::warn!(container = %spec.container_name, error = ?e, "route removal failed");
        }
        if purge {
            runtime.remove_volume(spec.volume_name.as_str()).await?;
            self.fail_point("delete:volume");
        }
        store.finish_delete(spec).await?;
        self.fail_point("delete:recorded");
        // The delete is done; a network that can not go now is left to the reconciler.
        if let Err(e) = self
            .remove_network_if_unused(&spec.user_id, &spec.network_name)
            .await
        {
            tracing::warn!(network = %spec.network_name, error = ?e, "user network not removed");
        }
        Ok(())
    }

    /// Removes a user's network and frees its subnet when the user has no container left.
    pub(crate) async fn remove_network_if_unused(&self, user: &UserId, network: &NetworkName) -> Result<()> {
        let store = &self.adapters.store;
        if !store.list_user(user).await?.is_empty() {
            return Ok(());
        }
        match self.adapters.runtime.remove_network(network.as_str()).await {
            Ok(()) => store.release_subnet(user).await,
            Err(e) if e.kind() == ErrorKind::Conflict => {
                tracing::info!(network = %network, error = ?e, "user network kept: containers attached");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The data volumes that deletes without purge kept, to be found again by a create of the same
    /// user and type.
    pub async fn retained_volumes(&self) -> Result<Vec<VolumeName>> {
        self.adapters.store.retained_volumes().await
    }

    /// Removes a retained data volume for good. Refused for a volume that is not retained (in use
    /// by a container, or not ours).
    pub async fn purge_retained(&self, raw_name: &str) -> Result<VolumeName> {
        let name = VolumeName::parse(raw_name.trim()).map_err(|e| e.for_field("volume"))?;
        let retained = self.adapters.store.retained_volumes().await?;
        if !retained.contains(&name) {
            return Err(Error::not_found(format!(
                "{name} is not a retained data volume (see `cm volumes`); a volume in use goes with `cm delete --purge`"
            )));
        }
        self.adapters.runtime.remove_volume(name.as_str()).await?;
        self.adapters.store.forget_retained(&name).await?;
        Ok(name)
    }
}
