//! A live view of container statuses, fed by the engine's event stream, so that a long-running
//! frontend (cm-api) answers listings without asking the engine per request.
//!
//! The feed subscribes to events first, then seeds the view with one listing, then applies each
//! event by inspecting the one container it names. While the engine is away the view is marked
//! stale and listings fall back to asking the engine (which then says it is unavailable).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::StreamExt;

use crate::error::Result;
use crate::manager::Manager;
use crate::spec::ContainerStatus;

/// The statuses of our containers by id, as the event feed last saw them.
#[derive(Debug)]
pub struct StatusView {
    statuses: RwLock<BTreeMap<String, ContainerStatus>>,
    live: AtomicBool,
    /// Counts the changes of `statuses` (see [`StatusView::generation`]).
    generation: AtomicU64,
    /// Every change of a status (`None`: the container is gone), for live event streams.
    changes: tokio::sync::broadcast::Sender<(String, Option<ContainerStatus>)>,
    /// Whether the engine's event stream is connected, for live event streams (they tell their
    /// viewers when the engine goes away and comes back).
    availability: tokio::sync::watch::Sender<bool>,
}

impl Default for StatusView {
    fn default() -> Self {
        StatusView {
            statuses: RwLock::default(),
            live: AtomicBool::default(),
            generation: AtomicU64::default(),
            changes: tokio::sync::broadcast::channel(CHANGES_BUFFERED).0,
            availability: tokio::sync::watch::channel(false).0,
        }
    }
}

/// How many changes a slow event stream may fall behind before it starts over with a snapshot.
const CHANGES_BUFFERED: usize = 1024;

/// The longest wait between reconnection attempts of the feed.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl StatusView {
    /// An empty view, not yet live.
    pub fn new() -> Arc<Self> {
        Arc::new(StatusView::default())
    }

    /// Whether the feed is connected and the view current.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// A number that changes whenever a status changes (or the view is seeded again): equal
    /// generations of a live view mean equal statuses.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The statuses, when live.
    pub fn snapshot(&self) -> Option<BTreeMap<String, ContainerStatus>> {
        if !self.is_live() {
            return None;
        }
        self.statuses.read().ok().map(|s| s.clone())
    }

    /// One container's status, when live (`Missing` for an id the engine does not have).
    pub fn snapshot_of(&self, id: &str) -> Option<ContainerStatus> {
        if !self.is_live() {
            return None;
        }
        let statuses = self.statuses.read().ok()?;
        Some(statuses.get(id).copied().unwrap_or(ContainerStatus::Missing))
    }

    fn replace(&self, statuses: BTreeMap<String, ContainerStatus>) {
        if let Ok(mut current) = self.statuses.write() {
            // What changed while the feed was away reaches the event streams too.
            for (id, status) in &statuses {
                if current.get(id) != Some(status) {
                    let _ = self.changes.send((id.clone(), Some(*status)));
                }
            }
            for id in current.keys().filter(|id| !statuses.contains_key(*id)) {
                let _ = self.changes.send((id.clone(), None));
            }
            *current = statuses;
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        self.live.store(true, Ordering::Release);
        self.availability
            .send_if_modified(|live| !std::mem::replace(live, true));
    }

    /// Records what an inspection just saw (the feed's events, and the manager's own changes, so
    /// a listing right after a create or a stop does not wait for the event).
    pub(crate) fn set(&self, id: &str, status: Option<ContainerStatus>) {
        if let Ok(mut current) = self.statuses.write() {
            let before = match status {
                Some(status) => current.insert(id.to_owned(), status),
                None => current.remove(id),
            };
            if before != status {
                self.generation.fetch_add(1, Ordering::AcqRel);
                let _ = self.changes.send((id.to_owned(), status));
            }
        }
    }

    /// Tells the event streams a container's status again, changed or not (its record was just
    /// written, and a stream may have skipped its change for not knowing whose it was).
    pub(crate) fn announce(&self, id: &str, status: ContainerStatus) {
        let _ = self.changes.send((id.to_owned(), Some(status)));
    }

    /// Whether the engine's events arrive, from now on.
    pub(crate) fn availability(&self) -> tokio::sync::watch::Receiver<bool> {
        self.availability.subscribe()
    }

    /// The changes from now on.
    pub(crate) fn subscribe(&self) -> tokio::sync::broadcast::Receiver<(String, Option<ContainerStatus>)> {
        self.changes.subscribe()
    }

    fn mark_stale(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.live.store(false, Ordering::Release);
        self.availability
            .send_if_modified(|live| std::mem::replace(live, false));
    }
}

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

    async fn follow_events(&self, view: &StatusView, on_connected: &(dyn Fn() + Send + Sync)) -> Result<()> {
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

    async fn apply_event(&self, view: &StatusView, id: &str) -> Result<()> {
        let observed = self.adapters().runtime.inspect_container(id).await?;
        view.set(id, observed.map(|c| c.status));
        Ok(())
    }
}
