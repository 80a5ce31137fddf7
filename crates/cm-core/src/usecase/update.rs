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
        let name = spec.container_name.clone();
        self.fail_point("update:begun");

        let mut next = spec.clone();
        next.image = image.unwrap_or_else(|| kind.image.clone());
        let outcome = self.replace(&spec, next, kind, || async { Ok(()) }).await;
        outcome.map(|(next, ())| next).map_err(|(e, next)| {
            e.context(format_args!(
                "update of {name} to {} failed and the previous container was restored",
                next.image
            ))
        })
    }

    /// Replaces `spec`'s container by `next`'s (a new image, another node), under an operation
    /// already begun, and ends it. The old container is stopped and kept aside under another name
    /// where the runtime can rename, else removed (its data volume stays); `between` runs once it
    /// is stopped (a move copies the data then). If `next` fails, the old one comes back (renamed
    /// back, or re-created from `spec`), running if it ran, and the error comes with `next`.
    pub(crate) async fn replace<T, Between, Done>(
        &self,
        spec: &ContainerSpec,
        mut next: ContainerSpec,
        kind: &crate::config::ContainerType,
        between: Between,
    ) -> std::result::Result<(ContainerSpec, T), (Error, ContainerSpec)>
    where
        Between: FnOnce() -> Done,
        Done: Future<Output = Result<T>>,
    {
        let runtime = &self.adapters().runtime;
        let store = &self.adapters().store;
        let name = spec.container_name.clone();
        let aside = runtime.renames();
        let old = match runtime.inspect_container(&spec.container_id).await {
            Ok(old) => old,
            Err(e) => return Err((e, next)),
        };
        let was_active = old.as_ref().is_some_and(|o| o.status.is_active());
        if let Some(old) = &old {
            let put_away = async {
                runtime.stop_container(&old.id).await?;
                if aside {
                    let previous_name = format!("{name}{PREVIOUS_SUFFIX}");
                    runtime.rename_container(&old.id, &previous_name).await
                } else {
                    runtime.remove_container(&old.id, RemoveMode::Force).await
                }
            };
            if let Err(e) = put_away.await {
                return Err((e, next));
            }
        }
        self.fail_point("update:renamed");

        let mut undo = Vec::new();
        let made = async {
            let between = between().await?;
            self.materialize(&mut next, kind, &mut undo, &noop, "update")
                .await?;
            if aside && let Some(old) = &old {
                runtime.remove_container(&old.id, RemoveMode::Force).await?;
            }
            Ok::<T, Error>(between)
        };
        match made.await {
            Ok(between) => {
                let ended = async {
                    store.put(&next).await?;
                    self.announce(&next);
                    store.end_operation(&name).await
                };
                match ended.await {
                    Ok(()) => Ok((next, between)),
                    Err(e) => Err((e, next)),
                }
            }
            Err(e) => match self.restore(spec, kind, old.as_ref(), was_active, undo).await {
                Ok(()) => Err((e, next)),
                // The old one could not come back: the intent stays for the reconciler, which
                // re-creates the container from its record.
                Err(restore) => Err((
                    restore.context(format_args!("{name} could not be restored after: {e}")),
                    next,
                )),
            },
        }
    }

    /// Brings `spec`'s container back after its replacement failed: removes what the attempt
    /// made, then renames the old one back or (where it was removed) re-creates it from its
    /// record, started if it ran; ends the operation.
    async fn restore(
        &self,
        spec: &ContainerSpec,
        kind: &crate::config::ContainerType,
        old: Option<&crate::ports::ObservedContainer>,
        was_active: bool,
        undo: Vec<Undo>,
    ) -> Result<()> {
        let runtime = &self.adapters().runtime;
        let store = &self.adapters().store;
        let name = &spec.container_name;
        for step in undo.into_iter().rev() {
            if let Undo::Container(id) = step {
                runtime.remove_container(&id, RemoveMode::Force).await?;
            }
        }
        if let Some(old) = old {
            if runtime.renames() {
                runtime.rename_container(&old.id, name.as_str()).await?;
                if was_active {
                    runtime.start_container(&old.id).await?;
                    if spec.ssh_port.is_some() {
                        self.install_keys(spec).await?;
                    }
                }
            } else {
                let mut again = spec.clone();
                self.materialize(&mut again, kind, &mut Vec::new(), &noop, "update")
                    .await?;
                if !was_active {
                    runtime.stop_container(&again.container_id).await?;
                }
                store.put(&again).await?;
                self.announce(&again);
            }
        }
        store.end_operation(name).await
    }
}
