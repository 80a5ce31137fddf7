//! Idle stop and wake-on-request: containers of types with `idle_stop_after` that saw no
//! activity for that long are stopped (their data volume, leases, keys and route kept), and the
//! next request through their owner-checked route starts them again and is answered once their
//! app answers.
//!
//! Activity is what this process sees, kept in memory: route checks that let a request through,
//! commands run through the manager (while they run), followed logs (while they are open), and
//! open connections. sshd runs inside the container on a published port, so the manager sees no
//! SSH traffic itself, and a WebSocket through nginx passes one route check when it opens and
//! none while it stays open: before it stops a container, the sweep reads the container's
//! `/proc/net/tcp` and `/proc/net/tcp6` (with `cat`, through the engine) and counts established
//! connections to the app's port and to sshd's; any open one (an SSH session, a WebSocket, a
//! request in progress) counts as activity. A container whose table can not be read is not
//! stopped. After the process starts, every running container gets a full idle period before it
//! can be stopped.
//!
//! A container stopped for being idle carries a mark in the store, so the wake survives restarts
//! of the process; an explicit stop, start or restart drops the mark, so a container someone
//! stopped on purpose is never woken by a request.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::error::Error;

use crate::names::{ContainerName, UserId};
use crate::ports::{AppProbe, Clock};

/// How often a wake asks whether the app answers yet.
pub(crate) const PROBE_EVERY: Duration = Duration::from_millis(200);
/// How long reading a container's TCP table may take.
pub(crate) const TABLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The activity this process saw, and the wakes in progress.
pub(crate) struct Idle {
    pub(crate) activity: Mutex<HashMap<ContainerName, Activity>>,
    /// One lock per container: a wake and an idle stop of one container never overlap, and
    /// concurrent wakes start it once.
    pub(crate) locks: Mutex<HashMap<ContainerName, Arc<tokio::sync::Mutex<()>>>>,
    pub(crate) probe: Option<Arc<dyn AppProbe>>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Activity {
    pub(crate) last: SystemTime,
    /// Commands and followed logs running now.
    pub(crate) busy: usize,
}

impl Idle {
    /// No activity seen yet; wakes ask `probe` whether the app answers (without one, a wake is
    /// ready as soon as the container runs).
    pub(crate) fn new(probe: Option<Arc<dyn AppProbe>>) -> Self {
        Idle {
            activity: Mutex::default(),
            locks: Mutex::default(),
            probe,
        }
    }

    /// The probe of apps' answers, when this process has one.
    pub(crate) fn probe(&self) -> Option<&Arc<dyn AppProbe>> {
        self.probe.as_ref()
    }

    pub(crate) fn touch(&self, name: &ContainerName, now: SystemTime) {
        let mut activity = self.activity.lock().unwrap_or_else(PoisonError::into_inner);
        activity
            .entry(name.clone())
            .and_modify(|a| a.last = a.last.max(now))
            .or_insert(Activity { last: now, busy: 0 });
    }

    /// The last activity and whether something runs now; a container not seen before counts as
    /// active now.
    pub(crate) fn seen(&self, name: &ContainerName, now: SystemTime) -> Activity {
        *self
            .activity
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.clone())
            .or_insert(Activity { last: now, busy: 0 })
    }

    pub(crate) fn forget_all_but(&self, names: &BTreeSet<&ContainerName>) {
        self.activity
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|name, a| a.busy > 0 || names.contains(name));
        self.locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|name, lock| Arc::strong_count(lock) > 1 || names.contains(name));
    }

    /// Whether a wake (or an idle stop) of `name` is under way.
    pub(crate) fn waking(&self, name: &ContainerName) -> bool {
        self.locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .is_some_and(|lock| lock.try_lock().is_err())
    }

    pub(crate) fn lock_of(&self, name: &ContainerName) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.clone())
            .or_default()
            .clone()
    }
}

/// Held while something uses a container (a command, a followed log): it is active until the
/// guard is dropped, and its idle time starts then.
pub(crate) struct InUse {
    pub(crate) idle: Arc<Idle>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) name: ContainerName,
}

impl Drop for InUse {
    fn drop(&mut self) {
        let now = self.clock.now();
        let mut activity = self.idle.activity.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = activity
            .entry(self.name.clone())
            .or_insert(Activity { last: now, busy: 1 });
        entry.busy = entry.busy.saturating_sub(1);
        entry.last = entry.last.max(now);
    }
}

/// A container the idle sweep stopped.
#[derive(Debug, Clone, Serialize)]
pub struct IdleStop {
    /// The container.
    pub container_name: ContainerName,
    /// Its owner.
    pub user_id: UserId,
    /// How long it had been idle, in whole seconds.
    pub idle_seconds: u64,
}

/// What one idle sweep did.
#[derive(Debug, Default)]
pub struct IdleSweep {
    /// The containers it stopped.
    pub stopped: Vec<IdleStop>,
    /// The containers it tried to stop and could not, with why.
    pub failed: Vec<(IdleStop, Error)>,
}

/// How a wake of an idle-stopped container ended.
#[derive(Debug)]
pub enum WakeOutcome {
    /// It runs and its app answers: the request goes through.
    Ready,
    /// It runs, but its app did not answer within `[idle] wake_wait_seconds`.
    Starting,
    /// It could not be started.
    Failed(Error),
}

/// A wake that a route check did.
#[derive(Debug)]
pub struct Woken {
    /// The container.
    pub container_name: ContainerName,
    /// True for the one request that started it (concurrent requests wait for that start).
    pub started_here: bool,
    /// How it ended.
    pub outcome: WakeOutcome,
}

/// How many established TCP connections have local port `port` in `/proc/net/tcp`-style tables
/// (`sl local_address rem_address st ...`, addresses as `HEX:PORT`, state `01` established).
pub(crate) fn established_on(table: &str, port: u16) -> usize {
    table
        .lines()
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields
                .get(1)
                .and_then(|address| address.rsplit_once(':'))
                .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok());
            local_port == Some(port) && fields.get(3) == Some(&"01")
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(crate) fn established_connections_are_counted_on_the_port_only() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:08AE 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0B00A8C0:08AE 0100A8C0:D2F4 01 00000000:00000000 02:000A7B1C 00000000     0        0 2 2 0 20 4 30 10 -1
   2: 0B00A8C0:1F90 0100A8C0:D2F6 01 00000000:00000000 00:00000000 00000000  1000        0 3 1 0 20 4 30 10 -1
   3: 0B00A8C0:08AE 0100A8C0:D300 06 00000000:00000000 03:00000A3E 00000000     0        0 0 3 0
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0000000000000000FFFF00000B00A8C0:08AE 0000000000000000FFFF00000100A8C0:C001 01 00000000:00000000 02:00000000 00000000     0        0 4 1 0 20 4 30 10 -1
";
        assert_eq!(
            established_on(table, 2222),
            2,
            "one IPv4, one IPv6; not the listener nor TIME_WAIT"
        );
        assert_eq!(established_on(table, 8080), 1);
        assert_eq!(established_on(table, 22), 0);
        assert_eq!(established_on("garbage\n\n: : :", 2222), 0);
    }
}
