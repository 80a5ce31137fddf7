//! Feeding the status view from the engine's events (`Manager::feed_status_view`).

use futures_util::StreamExt;
use std::collections::BTreeMap;

use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::manager::Manager;
use crate::ports::ContainerEvent;

use crate::live::{MAX_BACKOFF, StatusView};

/// How often the keys of a freshly started container are tried while it is not yet running, and
/// the pause between tries (10 s in all).
const FRESH_START_LOOKS: u32 = 20;
const FRESH_START_PAUSE: Duration = Duration::from_millis(500);

impl Manager {
    /// Feeds `view` from the engine's events forever, reconnecting with a back-off when the engine
    /// goes away. `on_connected` runs after each (re)connection, once the view is seeded: cm-api
    /// reconciles there, so a returning engine is converged at once.
    pub async fn feed_status_view(&self, view: Arc<StatusView>, on_connected: &(dyn Fn() + Send + Sync)) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let outcome = self.follow_events(&view, on_connected).await;
            let was_live = view.is_live();
            view.mark_stale();
            match outcome {
                Ok(()) => tracing::warn!("the engine's event stream ended; reconnecting"),
                Err(e) => tracing::warn!(error = ?e, "the engine's event stream failed; reconnecting"),
            }
            backoff = if was_live {
                Duration::from_secs(1)
            } else {
                (backoff * 2).min(MAX_BACKOFF)
            };
            tokio::time::sleep(backoff).await;
        }
    }

    pub(crate) async fn follow_events(
        &self,
        view: &StatusView,
        on_connected: &(dyn Fn() + Send + Sync),
    ) -> Result<()> {
        let runtime = &self.adapters().runtime;
        let mut events = runtime.container_events().await?;
        // The request behind the stream is sent on its first poll: poll once before seeding, so
        // no change between the listing and the subscription is lost.
        let first = tokio::time::timeout(Duration::ZERO, events.next()).await;
        let seeded = runtime.list_managed(&BTreeMap::new()).await?;
        view.replace(seeded.into_iter().map(|c| (c.id, c.status)).collect());
        tracing::info!("live container statuses from the engine's event stream");
        on_connected();
        if let Ok(Some(event)) = first {
            self.apply_event(view, &event?).await?;
        }
        while let Some(event) = events.next().await {
            self.apply_event(view, &event?).await?;
        }
        Ok(())
    }

    pub(crate) async fn apply_event(&self, view: &StatusView, event: &ContainerEvent) -> Result<()> {
        self.apply_status(view, &event.id).await?;
        if event.action == "start" && self.adapters().runtime.starts_afresh() {
            // A new container from the image: the SSH keys cm wrote are gone. Written again
            // aside, so the feed goes on meanwhile.
            let manager = self.clone();
            let id = event.id.clone();
            tokio::spawn(async move { manager.rewrite_keys_after_fresh_start(&id).await });
        }
        Ok(())
    }

    async fn rewrite_keys_after_fresh_start(&self, id: &str) {
        let spec = match self.adapters().store.get(id).await {
            Ok(Some(spec)) if spec.ssh_port.is_some() => spec,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(container = %id, error = ?e, "a fresh start's SSH keys: the record could not be read");
                return;
            }
        };
        // The engine tells the start before the runtime may call the container running (Swarm
        // moves the task's state a moment later): look again for a while.
        let mut outcome = Ok(false);
        for _ in 0..FRESH_START_LOOKS {
            outcome = self.apply_keys_if_running(&spec).await;
            if !matches!(outcome, Ok(false)) {
                break;
            }
            tokio::time::sleep(FRESH_START_PAUSE).await;
        }
        match outcome {
            Ok(true) => {
                tracing::info!(container = %spec.container_name, "SSH keys written again after a fresh start")
            }
            Ok(false) => tracing::info!(
                container = %spec.container_name,
                "a freshly started container is not running: its SSH keys are written at its next start"
            ),
            Err(e) => tracing::warn!(
                container = %spec.container_name,
                error = ?e,
                "SSH keys could not be written again after a fresh start (reconcile will)"
            ),
        }
    }

    pub(crate) async fn apply_status(&self, view: &StatusView, id: &str) -> Result<()> {
        let observed = self.adapters().runtime.inspect_container(id).await?;
        view.set(id, observed.map(|c| c.status));
        Ok(())
    }
}
