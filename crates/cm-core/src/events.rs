//! Live events: a stream of container state changes for one viewer (every container for the
//! admin, a user's own for a user), fed by the status view that the engine's event stream keeps
//! current. It starts with a snapshot of the viewer's containers and sends a new snapshot when it
//! fell too far behind, so a client never has to poll.

use std::collections::HashMap;
use std::pin::Pin;

use futures_util::Stream;
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;

use crate::error::{Error, ErrorKind, Result};
use crate::limits::{Slot, Work};
use crate::manager::Manager;
use crate::names::UserId;
use crate::spec::{ContainerSpec, ContainerStatus};

/// A container's state, as events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerState {
    /// `{user}_{type}`.
    pub container_name: String,
    /// The engine's id.
    pub container_id: String,
    /// The owner.
    pub user_id: String,
    /// The type.
    pub container_type: String,
    /// Its status, or `removed`.
    pub status: String,
}

/// One event of the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LiveEvent {
    /// Every container the viewer may see, as they are now.
    Snapshot {
        /// The containers.
        containers: Vec<ContainerState>,
    },
    /// One container changed.
    Changed(ContainerState),
    /// The engine went away (statuses are old and actions fail until it is back) or came back
    /// (a snapshot follows).
    Engine {
        /// Whether the engine's events arrive again.
        available: bool,
    },
}

/// The events of one viewer.
pub type LiveEvents = Pin<Box<dyn Stream<Item = LiveEvent> + Send>>;

impl ContainerState {
    fn of(spec: &ContainerSpec, status: Option<ContainerStatus>) -> Self {
        ContainerState {
            container_name: spec.container_name.to_string(),
            container_id: spec.container_id.clone(),
            user_id: spec.user_id.to_string(),
            container_type: spec.container_type.to_string(),
            status: status.map_or_else(|| "removed".to_owned(), |s| s.to_string()),
        }
    }
}

/// What one stream keeps between events.
struct Watch {
    manager: Manager,
    user: Option<UserId>,
    changes: tokio::sync::broadcast::Receiver<(String, Option<ContainerStatus>)>,
    stopping: tokio::sync::watch::Receiver<bool>,
    /// Whether the engine's events arrive.
    engine: tokio::sync::watch::Receiver<bool>,
    /// The viewer's containers it has told about, by id.
    known: HashMap<String, ContainerSpec>,
    snapshot_due: bool,
    /// A user may hold a bounded number of streams.
    _slot: Option<Slot>,
}

impl Manager {
    /// The live events of `user`'s containers (`None`: everyone's, for the admin). Only a server
    /// that keeps a live status view (cm-api) has them; a user holds at most 16 streams at once.
    pub async fn live_events(&self, user: Option<&UserId>) -> Result<LiveEvents> {
        let Some(view) = self.status_view() else {
            return Err(Error::new(
                ErrorKind::Unavailable,
                "live events need the server's event feed (cm-api), which this process does not run",
            ));
        };
        let slot = match user {
            Some(user) => Some(self.running().take(Work::Events, user, &self.config().limits)?),
            None => None,
        };
        let watch = Watch {
            manager: self.clone(),
            user: user.cloned(),
            changes: view.subscribe(),
            stopping: self.stopping_signal(),
            engine: {
                let mut engine = view.availability();
                // The first snapshot tells the state of now; only changes after it are events.
                engine.borrow_and_update();
                engine
            },
            known: HashMap::new(),
            snapshot_due: true,
            _slot: slot,
        };
        Ok(Box::pin(futures_util::stream::unfold(
            watch,
            |mut watch| async move {
                let event = watch.next().await?;
                Some((event, watch))
            },
        )))
    }
}

impl Watch {
    /// The next event, `None` when the stream ends (the server stops).
    async fn next(&mut self) -> Option<LiveEvent> {
        loop {
            if *self.stopping.borrow() {
                return None;
            }
            if self.snapshot_due {
                self.snapshot_due = false;
                return Some(self.snapshot().await);
            }
            let received = tokio::select! {
                received = self.changes.recv() => received,
                _ = self.stopping.changed() => return None,
                changed = self.engine.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    let available = *self.engine.borrow_and_update();
                    // Back: what changed meanwhile arrives as a fresh snapshot.
                    self.snapshot_due = available;
                    return Some(LiveEvent::Engine { available });
                }
            };
            match received {
                Ok((id, status)) => {
                    if let Some(event) = self.change(&id, status).await {
                        return Some(event);
                    }
                }
                Err(RecvError::Lagged(_)) => self.snapshot_due = true,
                Err(RecvError::Closed) => return None,
            }
        }
    }

    async fn snapshot(&mut self) -> LiveEvent {
        let listing = match &self.user {
            Some(user) => self.manager.list_user(user).await,
            None => self.manager.list_all().await,
        };
        let specs = listing.map(|l| l.containers).unwrap_or_default();
        self.known = specs
            .iter()
            .map(|s| (s.container_id.clone(), s.clone()))
            .collect();
        LiveEvent::Snapshot {
            containers: specs
                .iter()
                .map(|s| ContainerState::of(s, Some(s.status)))
                .collect(),
        }
    }

    /// The event for a change of container `id`, when it is one the viewer may see.
    async fn change(&mut self, id: &str, status: Option<ContainerStatus>) -> Option<LiveEvent> {
        let spec = match self.manager.adapters().store.get(id).await {
            Ok(Some(spec)) => spec,
            // Gone from the store: tell only those who knew it.
            _ => self.known.get(id)?.clone(),
        };
        if self.user.as_ref().is_some_and(|user| &spec.user_id != user) {
            return None;
        }
        match status {
            Some(_) => self.known.insert(id.to_owned(), spec.clone()),
            None => self.known.remove(id),
        };
        Some(LiveEvent::Changed(ContainerState::of(&spec, status)))
    }
}
