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
pub(crate) const CHANGES_BUFFERED: usize = 1024;

/// The longest wait between reconnection attempts of the feed.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);

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

    pub(crate) fn replace(&self, statuses: BTreeMap<String, ContainerStatus>) {
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

    pub(crate) fn mark_stale(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.live.store(false, Ordering::Release);
        self.availability
            .send_if_modified(|live| std::mem::replace(live, false));
    }
}
