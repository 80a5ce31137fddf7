//! Idle stop and wake-on-request: the sweep (`Manager::idle_sweep`), activity, and the route
//! check that wakes (`Manager::check_route_waking`).

use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use crate::access::AuthorizedContainer;
use crate::auth::Principal;
use crate::config::SSH_CONTAINER_PORT;
use crate::error::{Error, Result};
use crate::manager::Manager;
use crate::names::{ContainerName, TypeName, UserId};
use crate::ports::{AppProbe, ExecRequest};
use crate::routing::{RouteAnswer, RouteDenial};
use crate::spec::{ContainerSpec, ContainerStatus};
use crate::values::Command;

use crate::idle::{
    Activity, Idle, IdleStop, IdleSweep, InUse, PROBE_EVERY, TABLE_TIMEOUT, WakeOutcome, Woken,
    established_on,
};

impl Manager {
    /// Asks `probe` whether a container's app answers: a wake is answered once it does (without
    /// a probe, once the container runs), and a create's watch for an early exit ends as soon as
    /// it does (without one, it watches for all of `[health] exit_check_ms`).
    pub fn with_app_probe(mut self, probe: Arc<dyn AppProbe>) -> Self {
        self.idle = Arc::new(Idle::new(Some(probe)));
        self
    }

    /// Notes activity on a container of `kind` now (only types with `idle_stop_after` are
    /// tracked).
    pub fn note_activity(&self, name: &ContainerName, kind: &TypeName) {
        if self.idle_after(kind).is_some() {
            self.idle.touch(name, self.adapters().clock.now());
        }
    }

    /// A guard that keeps `name` active while it lives (a command, a followed log).
    pub(crate) fn in_use(&self, name: &ContainerName) -> InUse {
        let now = self.adapters().clock.now();
        let mut activity = self.idle.activity.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = activity
            .entry(name.clone())
            .or_insert(Activity { last: now, busy: 0 });
        entry.busy += 1;
        entry.last = entry.last.max(now);
        InUse {
            idle: self.idle.clone(),
            clock: self.adapters().clock.clone(),
            name: name.clone(),
        }
    }

    pub(crate) fn idle_after(&self, kind: &TypeName) -> Option<Duration> {
        self.config().types.get(kind).and_then(|t| t.idle_stop_after)
    }

    /// The containers stopped for being idle (a request through their route starts them).
    pub async fn idle_stopped(&self) -> Result<BTreeSet<ContainerName>> {
        Ok(self.adapters().store.idle_stopped().await?.into_keys().collect())
    }

    /// Before a stop on purpose: it counts as activity, and the container's idle mark goes
    /// first (a container stopped on purpose is never woken; when the mark can not be dropped,
    /// nothing is stopped).
    pub(crate) async fn stopping_on_purpose(&self, spec: &ContainerSpec) -> Result<()> {
        self.note_activity(&spec.container_name, &spec.container_type);
        self.forget_idle_stop(spec).await
    }

    /// After a start or restart on purpose: it counts as activity, and the idle mark goes (a
    /// mark that can not be dropped now is dropped by the next sweep, which finds it running).
    pub(crate) async fn started_on_purpose(&self, spec: &ContainerSpec) {
        self.note_activity(&spec.container_name, &spec.container_type);
        if let Err(e) = self.forget_idle_stop(spec).await {
            tracing::warn!(container = %spec.container_name, error = ?e, "the idle mark of a started container was not dropped");
        }
    }

    /// Drops a container's idle mark, if it has one.
    pub(crate) async fn forget_idle_stop(&self, spec: &ContainerSpec) -> Result<()> {
        if self
            .adapters()
            .store
            .clear_idle_stopped(&spec.container_name)
            .await?
        {
            tracing::info!(container = %spec.container_name, "no longer idle-stopped");
        }
        Ok(())
    }

    /// Stops the running containers of types with `idle_stop_after` that saw no activity for
    /// that long, marking them as idle-stopped. `cm-api` runs it periodically. Fails only when
    /// the store or the engine can not be asked at all; a container that can not be stopped is
    /// reported and the others go on.
    pub async fn idle_sweep(&self) -> Result<IdleSweep> {
        let mut sweep = IdleSweep::default();
        if !self.config().types.values().any(|t| t.idle_stop_after.is_some()) {
            return Ok(sweep);
        }
        let listing = self.list_all().await?;
        if let Some(stale) = listing.stale {
            return Err(Error::unavailable(stale));
        }
        let marks = self.adapters().store.idle_stopped().await?;
        let names: BTreeSet<&ContainerName> = listing.containers.iter().map(|s| &s.container_name).collect();
        self.idle.forget_all_but(&names);
        for spec in &listing.containers {
            let Some(after) = self.idle_after(&spec.container_type) else {
                continue;
            };
            if spec.status != ContainerStatus::Running {
                continue;
            }
            if marks.contains_key(&spec.container_name) {
                // Started behind the manager's back (`docker start`): no longer idle-stopped.
                self.forget_idle_stop(spec).await?;
            }
            let Some(idle_for) = self.idle_for(spec, after) else {
                continue;
            };
            match self.open_connections(spec).await {
                Ok(0) => {}
                Ok(connections) => {
                    tracing::debug!(container = %spec.container_name, connections, "idle but for open connections");
                    self.idle.touch(&spec.container_name, self.adapters().clock.now());
                    continue;
                }
                Err(e) => {
                    // Asked again after another idle period, not at every sweep.
                    tracing::warn!(container = %spec.container_name, error = ?e, "idle, but its open connections can not be counted: not stopped");
                    self.idle.touch(&spec.container_name, self.adapters().clock.now());
                    continue;
                }
            }
            let stop = IdleStop {
                container_name: spec.container_name.clone(),
                user_id: spec.user_id.clone(),
                idle_seconds: idle_for.as_secs(),
            };
            match self.stop_idle(spec, after).await {
                Ok(true) => {
                    tracing::info!(container = %spec.container_name, idle_seconds = stop.idle_seconds, "stopped for being idle");
                    sweep.stopped.push(stop);
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(container = %spec.container_name, error = ?e, "idle, but could not be stopped");
                    sweep.failed.push((stop, e));
                }
            }
        }
        Ok(sweep)
    }

    /// How long `spec` has been idle when that is at least `after` and nothing runs in it.
    pub(crate) fn idle_for(&self, spec: &ContainerSpec, after: Duration) -> Option<Duration> {
        let now = self.adapters().clock.now();
        let activity = self.idle.seen(&spec.container_name, now);
        let idle_for = now.duration_since(activity.last).unwrap_or_default();
        (activity.busy == 0 && idle_for >= after).then_some(idle_for)
    }

    /// Marks and stops one idle container, under its lock and after checking again that it is
    /// idle (a request may have come meanwhile); `false` when it was not idle any more.
    pub(crate) async fn stop_idle(&self, spec: &ContainerSpec, after: Duration) -> Result<bool> {
        let lock = self.idle.lock_of(&spec.container_name);
        let _one_at_a_time = lock.lock().await;
        if self.idle_for(spec, after).is_none() {
            return Ok(false);
        }
        let store = &self.adapters().store;
        // The mark comes first: a request that finds the container stopped may wake it.
        store
            .mark_idle_stopped(&spec.container_name, self.adapters().clock.now())
            .await?;
        if let Err(e) = self.adapters().runtime.stop_container(&spec.container_id).await {
            if let Err(unmarked) = store.clear_idle_stopped(&spec.container_name).await {
                tracing::warn!(container = %spec.container_name, error = ?unmarked, "idle mark of a container that still runs not dropped");
            }
            return Err(e);
        }
        self.record_status(spec.clone()).await?;
        self.metrics().idle_stop();
        Ok(true)
    }

    /// Established connections to the app's port and to sshd's in the container, from its TCP
    /// tables.
    pub(crate) async fn open_connections(&self, spec: &ContainerSpec) -> Result<usize> {
        let request = ExecRequest {
            command: Command::from_args(vec![
                "cat".to_owned(),
                "/proc/net/tcp".to_owned(),
                "/proc/net/tcp6".to_owned(),
            ])?,
            user: None,
            timeout: TABLE_TIMEOUT,
        };
        // Without IPv6 there is no tcp6 table and cat fails, having shown the other.
        let output = self.adapters().runtime.exec(&spec.container_id, &request).await?;
        if !output.stdout.contains("local_address") {
            return Err(Error::unavailable(format!(
                "the TCP table of {} can not be read (is there a cat?): {}",
                spec.container_name,
                output.stderr.trim()
            )));
        }
        let ssh = match spec.ssh_port {
            Some(_) => established_on(&output.stdout, SSH_CONTAINER_PORT),
            None => 0,
        };
        Ok(established_on(&output.stdout, spec.internal_port) + ssh)
    }

    /// The route check of [`Manager::check_route`], which also wakes an idle-stopped container
    /// the caller may reach: it starts it (once, however many requests come at once) and waits
    /// until its app answers, at most `[idle] wake_wait_seconds`; then the answer lets the
    /// request through, or is [`RouteDenial::Starting`]. A container stopped on purpose stays
    /// [`RouteDenial::NotRunning`].
    pub async fn check_route_waking(
        &self,
        caller: Option<&Principal>,
        user: &UserId,
        kind: &TypeName,
    ) -> Result<(RouteAnswer, Option<Woken>)> {
        let answer = self.check_route(caller, user, kind).await?;
        // Only a caller the check let as far as the container's status is answered NotRunning;
        // one let through while another request wakes the container waits for its app too.
        let wait = match &answer {
            RouteAnswer::Deny {
                denial: RouteDenial::NotRunning(_),
            } => true,
            RouteAnswer::Allow { .. } => {
                self.idle_after(kind).is_some() && self.idle.waking(&ContainerName::of(user, kind))
            }
            RouteAnswer::Deny { .. } => false,
        };
        if !wait {
            return Ok((answer, None));
        }
        let woken = match self.wake(user, kind).await {
            Ok(Some(woken)) => woken,
            Ok(None) => return Ok((answer, None)),
            // The store or the engine could not be asked: the answer stays what it was.
            Err(e) => {
                tracing::warn!(%user, %kind, error = ?e, "a wake could not be tried");
                self.metrics().wake("failed");
                Woken {
                    container_name: ContainerName::of(user, kind),
                    started_here: false,
                    outcome: WakeOutcome::Failed(e),
                }
            }
        };
        let answer = match woken.outcome {
            WakeOutcome::Ready => self.check_route(caller, user, kind).await?,
            WakeOutcome::Starting => RouteAnswer::Deny {
                denial: RouteDenial::Starting,
            },
            WakeOutcome::Failed(_) => answer,
        };
        Ok((answer, Some(woken)))
    }

    /// Starts an idle-stopped container of `user` and `kind` and waits for its app, holding its
    /// lock so that the requests that come meanwhile wait for the same start; `None` when it is
    /// neither idle-stopped nor running.
    pub(crate) async fn wake(&self, user: &UserId, kind: &TypeName) -> Result<Option<Woken>> {
        let deadline = tokio::time::Instant::now() + self.config().idle.wake_wait;
        let name = ContainerName::of(user, kind);
        let spec = match self.adapters().store.get_by_name(&name).await? {
            Some(spec) if &spec.user_id == user && &spec.container_type == kind => spec,
            _ => return Ok(None),
        };
        let lock = self.idle.lock_of(&name);
        let Ok(guard) = tokio::time::timeout_at(deadline, lock.lock()).await else {
            // Another request has been starting it for the whole wait.
            self.metrics().wake("starting");
            return Ok(Some(Woken {
                container_name: name,
                started_here: false,
                outcome: WakeOutcome::Starting,
            }));
        };
        let running = self
            .adapters()
            .runtime
            .inspect_container(&spec.container_id)
            .await?
            .is_some_and(|c| c.status == ContainerStatus::Running);
        let started_here = !running;
        if running {
            drop(guard);
        } else {
            if !self.adapters().store.idle_stopped().await?.contains_key(&name) {
                return Ok(None);
            }
            tracing::info!(container = %name, "waking an idle-stopped container");
            if let Err(e) = self.start(&AuthorizedContainer::system(spec.clone())).await {
                tracing::warn!(container = %name, error = ?e, "an idle-stopped container could not be started");
                self.metrics().wake("failed");
                return Ok(Some(Woken {
                    container_name: name,
                    started_here,
                    outcome: WakeOutcome::Failed(e),
                }));
            }
        }
        self.idle.touch(&name, self.adapters().clock.now());
        let ready = match &self.idle.probe {
            None => true,
            Some(probe) => tokio::time::timeout_at(deadline, async {
                while !probe.answers(spec.port).await {
                    tokio::time::sleep(PROBE_EVERY).await;
                }
            })
            .await
            .is_ok(),
        };
        self.metrics().wake(if ready { "ready" } else { "starting" });
        Ok(Some(Woken {
            container_name: name,
            started_here,
            outcome: if ready {
                WakeOutcome::Ready
            } else {
                WakeOutcome::Starting
            },
        }))
    }
}
