//! Updating a container: re-created with a new image (or its type's current one), keeping its
//! name, ports, volume, environment, limits, keys and route; the old one comes back if the new
//! one fails.

use crate::access::AuthorizedContainer;
use crate::auth::Action;
use crate::error::{Error, Result};
use crate::manager::Manager;
use crate::ports::{OperationKind, RemoveMode};
use crate::reconcile::PREVIOUS_SUFFIX;
use crate::spec::ContainerSpec;
use crate::values::ImageRef;

use super::steps::Undo;

/// A progress report nobody hears (an update has no progress lines).
fn noop(_: &str) {}

impl Manager {
    /// Re-creates a container with a new image (or its type's current one), keeping its name,
    /// ports, volume, environment, limits, keys and route. The old container is kept aside until
    /// the new one runs; if the new one fails, the old one comes back and the error is reported.
    pub async fn update(
        &self,
        container: &AuthorizedContainer,
        image: Option<ImageRef>,
    ) -> Result<ContainerSpec> {
        let started = std::time::Instant::now();
        let outcome = self.update_measured(container, image).await;
        self.metrics().observe("update", &outcome, started.elapsed());
        outcome
    }

    pub(crate) async fn update_measured(
        &self,
        container: &AuthorizedContainer,
        image: Option<ImageRef>,
    ) -> Result<ContainerSpec> {
        let spec = self.permitted(container, Action::UpdateContainer)?.clone();
        let kind = self
            .config()
            .types
            .get(&spec.container_type)
            .cloned()
            .ok_or_else(|| {
                Error::conflict(format!(
                    "type {} of {} is no longer configured: it can not be updated",
                    spec.container_type, spec.container_name
                ))
            })?;
        let runtime = &self.adapters().runtime;
        let store = &self.adapters().store;
        runtime.engine_info().await?;
        let name = spec.container_name.clone();
        store
            .begin_operation(&spec, OperationKind::Update, self.adapters().clock.now())
            .await?;
        let outcome = self.update_begun(spec, &kind, image).await;
        if outcome.is_err() {
            // A step that failed midway left the intent: hand it to the reconciler, which finishes
            // intents no process runs (a long-running cm-api would otherwise hold it forever). A
            // failure that restored the old container has ended it already: nothing to hand over.
            if let Err(e) = store.unclaim(&name).await {
                tracing::warn!(container = %name, error = ?e, "could not hand the unfinished update to the reconciler");
            }
        }
        outcome
    }

    /// The steps of an update after its intent is recorded.
    pub(crate) async fn update_begun(
        &self,
        spec: ContainerSpec,
        kind: &crate::config::ContainerType,
        image: Option<ImageRef>,
    ) -> Result<ContainerSpec> {
        let runtime = &self.adapters().runtime;
        let store = &self.adapters().store;
        let name = spec.container_name.clone();
        self.fail_point("update:begun");

        let old = runtime.inspect_container(&spec.container_id).await?;
        let previous_name = format!("{name}{PREVIOUS_SUFFIX}");
        if let Some(old) = &old {
            runtime.stop_container(&old.id).await?;
            runtime.rename_container(&old.id, &previous_name).await?;
        }
        self.fail_point("update:renamed");

        let mut next = spec.clone();
        next.image = image.unwrap_or_else(|| kind.image.clone());
        let mut undo = Vec::new();
        match self
            .materialize(&mut next, kind, &mut undo, &noop, "update")
            .await
        {
            Ok(()) => {
                if let Some(old) = &old {
                    runtime.remove_container(&old.id, RemoveMode::Force).await?;
                }
                store.put(&next).await?;
                self.announce(&next);
                store.end_operation(&name).await?;
                Ok(next)
            }
            Err(e) => {
                for step in undo.into_iter().rev() {
                    if let Undo::Container(id) = step {
                        runtime.remove_container(&id, RemoveMode::Force).await?;
                    }
                }
                if let Some(old) = &old {
                    runtime.rename_container(&old.id, name.as_str()).await?;
                    if old.status.is_active() {
                        runtime.start_container(&old.id).await?;
                        if spec.ssh_port.is_some() {
                            self.install_keys(&spec).await?;
                        }
                    }
                }
                store.end_operation(&name).await?;
                Err(e.context(format_args!(
                    "update of {name} to {} failed and the previous container was restored",
                    next.image
                )))
            }
        }
    }
}
