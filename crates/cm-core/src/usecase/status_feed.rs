//! Feeding the status view from the engine's events (`Manager::feed_status_view`).

use futures_util::StreamExt;
use std::collections::BTreeMap;

use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::manager::Manager;

use crate::live::{MAX_BACKOFF, StatusView};

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
            self.apply_event(view, &event?.id).await?;
        }
        while let Some(event) = events.next().await {
            self.apply_event(view, &event?.id).await?;
        }
        Ok(())
    }

    pub(crate) async fn apply_event(&self, view: &StatusView, id: &str) -> Result<()> {
        let observed = self.adapters().runtime.inspect_container(id).await?;
        view.set(id, observed.map(|c| c.status));
        Ok(())
    }
}
