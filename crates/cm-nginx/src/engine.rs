//! The single-flight change engine: it collects route changes for a short window, writes them,
//! validates them with `nginx -t`, rolls back what nginx refuses and reloads once per batch.
//!
//! How validation and coalescing interact:
//! 1. Callers queue a request and wait for its answer. The first request of an idle engine spawns
//!    one worker task, which sleeps for the debounce window and then takes everything queued.
//! 2. The worker takes the cross-process lock (`box-available/.cm-nginx.lock`), undoes whatever a
//!    crashed process left half-done, and turns the requests into changes, one per route (the last
//!    request for a route in a window wins). Changes that would not change anything are dropped.
//! 3. It journals the state of every touched route (`.…conf.undo`), writes all changes and runs
//!    `nginx -t` once. When nginx accepts, the whole batch is kept.
//! 4. When nginx refuses, the batch is rolled back and `nginx -t` runs on the restored tree. If
//!    that fails too, nginx's configuration is broken elsewhere: every change is refused (removals
//!    still happen on disk, as they can only make things better) and nothing is reloaded.
//!    Otherwise the batch is bisected: each half is written and tested on top of what was kept so
//!    far, refused halves are rolled back and split again, until every single refused change is
//!    found. With k bad changes among n this costs about k·log2(n) extra tests; the common case
//!    (no bad change) costs one.
//! 5. Refused routes get a `.failed` marker with nginx's message; accepted ones lose theirs. The
//!    journal is cleared, then `nginx -s reload` runs once for the whole batch, and the worker
//!    waits briefly so the new workers are up before anyone is told "done".
//! 6. Every step that touches files or nginx runs while holding the lock, so two processes never
//!    test or reload each other's unchecked files.
//! 7. Reloads are shared across processes through a ledger file: a batch is noted as written, the
//!    lock is released for one debounce window, and the first process to come back reloads for
//!    every batch written so far; the others only wait for that reload to settle. A burst of
//!    `cm` commands thus causes about one reload per window, not one per command.

use std::collections::{BTreeMap, VecDeque};
use std::mem;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::oneshot;

use cm_core::{Error, ErrorKind, Result, Route};

use crate::files::{BoxDirs, Ledger, LockGuard, RouteKey, Snapshot};
use crate::render::render_route;
use crate::runner::{Action, RunError, Runner};

/// How long the worker collects requests before acting on them.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(100);
/// The shortest time between two reloads in production: a burst of changes spread over seconds
/// (creates finish one after another) goes live in about one reload per second, not one each.
pub(crate) const MIN_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// The engine's waits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// How long the worker collects requests of this process before acting on them.
    pub(crate) debounce: Duration,
    /// How long a written batch waits for other processes' batches before reloading.
    pub(crate) share_window: Duration,
    /// The shortest time between two reloads of any process.
    pub(crate) min_interval: Duration,
}

impl Timing {
    /// A long-running server (cm-api): batches its own requests too.
    pub(crate) const SERVER: Timing = Timing {
        debounce: DEBOUNCE,
        share_window: DEBOUNCE,
        min_interval: MIN_RELOAD_INTERVAL,
    };
    /// A process that makes one change and exits (`cm`): nothing of its own to batch.
    pub(crate) const ONE_CHANGE: Timing = Timing {
        debounce: Duration::ZERO,
        share_window: DEBOUNCE,
        min_interval: MIN_RELOAD_INTERVAL,
    };
}
/// How long to wait for another process's hold on the lock.
const LOCK_WAIT: Duration = Duration::from_secs(60);
const LOCK_POLL: Duration = Duration::from_millis(20);
/// After a reload, callers wait this long plus the duration of the last `nginx -t` before they
/// hear "done", with the lock held. On SIGHUP the master re-reads the configuration (about one
/// `nginx -t`), starts new workers, then sleeps 100 ms before it tells the old workers to stop
/// accepting (`ngx_master_process_cycle`); until then old workers still answer with the old
/// routes. Measured here: live 20-100 ms after `nginx -s reload` returned.
const SETTLE_MIN: Duration = Duration::from_millis(140);
const SETTLE_MAX: Duration = Duration::from_secs(2);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Reload counters of one `NginxProxy` (this process only), for tests, benchmarks and the
/// dashboard's settings page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadStats {
    /// `nginx -s reload` calls made.
    pub reloads: u64,
    /// Of those, the ones nginx refused.
    pub failed_reloads: u64,
    /// `nginx -t` calls made.
    pub validations: u64,
    /// Batches whose reload another process's reload covered (no reload of their own).
    pub shared_reloads: u64,
    /// The last reload, if any.
    pub last_reload: Option<LastReload>,
}

/// When the last reload ran and how it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastReload {
    /// When it finished.
    pub at: SystemTime,
    /// nginx's message when it failed; `None` when it worked.
    pub error: Option<String>,
}

/// What callers ask of the engine.
#[derive(Debug, Clone)]
pub(crate) enum Request {
    Apply(Route),
    Remove(RouteKey),
    Sync(Vec<Route>),
    Reload,
}

pub(crate) struct Engine {
    dirs: Arc<BoxDirs>,
    runner: Arc<dyn Runner>,
    debounce: Duration,
    /// How long a written batch waits for other processes' batches before reloading.
    share_window: Duration,
    /// The shortest time between two reloads (of any process): during a burst spread over
    /// seconds, changes queue behind the last reload and go live together with the next.
    min_interval: Duration,
    queue: Mutex<Queue>,
    stats: Mutex<ReloadStats>,
    /// How long the last `nginx -t` took; the settle time after a reload grows with it.
    last_test: Mutex<Duration>,
}

#[derive(Default)]
struct Queue {
    pending: Vec<Pending>,
    worker: bool,
}

struct Pending {
    request: Request,
    reply: oneshot::Sender<Result<()>>,
}

#[derive(Debug, Clone)]
enum Edit {
    Put(String),
    Delete,
}

#[derive(Debug, Clone)]
struct Change {
    key: RouteKey,
    action: Edit,
    /// The requests this change answers (several when a route was asked for more than once).
    owners: Vec<usize>,
}

/// A step of the bisection. Every group is a run of changes in request order.
enum Task {
    /// Test this group on top of what was kept so far.
    Try(Vec<usize>),
    /// This group fails on top of what was kept so far, with this message: find the culprits.
    Bisect(Vec<usize>, String),
    /// Test the left half of a failing group; if it passes, the right half is the failing part.
    TryLeft(Vec<usize>, Vec<usize>, String),
}

/// What became of one change.
#[derive(Debug, Clone)]
enum Verdict {
    /// Nothing to do: the route was already like that.
    Unchanged,
    /// Written, validated, kept.
    Kept,
    /// nginx refused this change; it was rolled back.
    Refused(String),
    /// nginx refuses its configuration even without this change; a put was rolled back.
    BrokenElsewhere(String),
    /// A removal done on disk while nginx's configuration is broken elsewhere (not live).
    RemovedNotLive(String),
    /// Files could not be written; the route was put back as it was.
    Io(String),
    /// nginx could not be run to check the change; it was rolled back.
    NoNginx(String),
    /// Kept on disk, but the reload failed.
    ReloadFailed(String),
}

/// Resets the worker flag when the worker task ends abnormally (a panic, or its runtime shutting
/// down), and drops whatever is still queued so no caller waits forever (they hear an error).
struct WorkerGuard {
    engine: Arc<Engine>,
    finished: bool,
}

impl WorkerGuard {
    fn disarm(mut self) {
        self.finished = true;
    }
}

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        if !self.finished {
            let mut queue = self.engine.queue();
            queue.worker = false;
            queue.pending.clear();
        }
    }
}

impl Engine {
    /// An engine with these waits (see [`Timing`]).
    pub(crate) fn new(dirs: BoxDirs, runner: Arc<dyn Runner>, timing: Timing) -> Arc<Self> {
        let Timing {
            debounce,
            share_window,
            min_interval,
        } = timing;
        Arc::new(Engine {
            dirs: Arc::new(dirs),
            runner,
            debounce,
            share_window,
            min_interval,
            queue: Mutex::new(Queue::default()),
            stats: Mutex::new(ReloadStats::default()),
            last_test: Mutex::new(Duration::ZERO),
        })
    }

    pub(crate) fn dirs(&self) -> &Arc<BoxDirs> {
        &self.dirs
    }

    pub(crate) fn stats(&self) -> ReloadStats {
        self.stats.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Queues a request and waits for the batch that carries it.
    pub(crate) async fn submit(self: &Arc<Self>, request: Request) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        {
            let mut queue = self.queue();
            queue.pending.push(Pending { request, reply });
            if !queue.worker {
                queue.worker = true;
                let guard = WorkerGuard {
                    engine: self.clone(),
                    finished: false,
                };
                tokio::spawn(async move {
                    guard.engine.clone().work().await;
                    // `work` cleared the flag itself, under the queue lock.
                    guard.disarm();
                });
            }
        }
        answer
            .await
            .unwrap_or_else(|_| Err(Error::internal("the nginx route worker stopped before answering")))
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn work(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.debounce).await;
            let batch = {
                let mut queue = self.queue();
                if queue.pending.is_empty() {
                    queue.worker = false;
                    return;
                }
                mem::take(&mut queue.pending)
            };
            for round in rounds(batch) {
                let requests: Vec<Request> = round.iter().map(|p| p.request.clone()).collect();
                let answers = self.run_round(&requests).await;
                for (pending, answer) in round.into_iter().zip(answers) {
                    // A caller that went away does not care about its answer.
                    let _ = pending.reply.send(answer);
                }
            }
        }
    }

    /// Processes one round under the lock; one answer per request.
    async fn run_round(&self, requests: &[Request]) -> Vec<Result<()>> {
        let mut answers: Vec<Result<()>> = requests.iter().map(|_| Ok(())).collect();
        let lock = match self.lock().await {
            Ok(lock) => lock,
            Err(e) => return requests.iter().map(|_| Err(copy_error(&e))).collect(),
        };
        let recovered = match self.fs(|dirs| dirs.recover()).await {
            Ok(n) => n,
            Err(e) => return requests.iter().map(|_| Err(copy_error(&e))).collect(),
        };
        let mut reload = recovered > 0 || requests.iter().any(|r| matches!(r, Request::Reload));

        // Requests to changes, one per route.
        let changes = match self.expand(requests, &mut answers).await {
            Ok(changes) => changes,
            Err(e) => return requests.iter().map(|_| Err(copy_error(&e))).collect(),
        };
        let mut verdicts = match self.classify(&changes).await {
            Ok(v) => v,
            Err(e) => return requests.iter().map(|_| Err(copy_error(&e))).collect(),
        };
        let effective: Vec<usize> = (0..changes.len())
            .filter(|i| !matches!(verdicts[*i], Verdict::Unchanged))
            .collect();

        if !effective.is_empty() {
            self.settle_changes(&changes, &effective, &mut verdicts).await;
        }
        if effective.iter().any(|i| matches!(verdicts[*i], Verdict::Kept)) {
            reload = true;
        }

        // Markers and journal: the state on disk is final now.
        self.finish_files(&changes, &verdicts).await;

        let reload_error = if reload {
            self.reload_shared(lock).await.err()
        } else {
            drop(lock);
            None
        };

        for (change, verdict) in changes.iter().zip(&verdicts) {
            let verdict = match (&reload_error, verdict) {
                (Some(message), Verdict::Kept) => Verdict::ReloadFailed(message.clone()),
                _ => verdict.clone(),
            };
            for owner in &change.owners {
                let is_sync = matches!(requests[*owner], Request::Sync(_));
                if answers[*owner].is_ok()
                    && let Some(err) = verdict_error(&change.key, &verdict, is_sync)
                {
                    answers[*owner] = Err(err);
                }
            }
        }
        if let Some(message) = reload_error {
            // An explicit reload hears about it even when it came with no change of its own.
            for (request, answer) in requests.iter().zip(answers.iter_mut()) {
                if matches!(request, Request::Reload) && answer.is_ok() {
                    *answer = Err(Error::unavailable(format!("reloading nginx failed: {message}")));
                }
            }
        }
        answers
    }

    /// Turns requests into one change per route; render errors answer their request directly.
    async fn expand(&self, requests: &[Request], answers: &mut [Result<()>]) -> Result<Vec<Change>> {
        let mut by_key: BTreeMap<RouteKey, Change> = BTreeMap::new();
        let mut order: Vec<RouteKey> = Vec::new();
        let mut push = |key: RouteKey, action: Edit, owner: usize| {
            let change = by_key.entry(key.clone()).or_insert_with(|| {
                order.push(key.clone());
                Change {
                    key,
                    action: action.clone(),
                    owners: Vec::new(),
                }
            });
            change.action = action;
            change.owners.push(owner);
        };
        for (owner, request) in requests.iter().enumerate() {
            match request {
                Request::Apply(route) => match render_route(route) {
                    Ok(content) => push(key_of(route), Edit::Put(content), owner),
                    Err(e) => answers[owner] = Err(e),
                },
                Request::Remove(key) => push(key.clone(), Edit::Delete, owner),
                Request::Sync(routes) => {
                    let present = self.fs(|dirs| dirs.keys()).await?;
                    let mut wanted = BTreeMap::new();
                    for route in routes {
                        wanted.insert(key_of(route), render_route(route)?);
                    }
                    for key in present {
                        if !wanted.contains_key(&key) {
                            push(key, Edit::Delete, owner);
                        }
                    }
                    for (key, content) in wanted {
                        push(key, Edit::Put(content), owner);
                    }
                }
                Request::Reload => {}
            }
        }
        Ok(order.into_iter().filter_map(|key| by_key.remove(&key)).collect())
    }

    /// Marks changes that would change nothing; the rest start as `Kept` (to be settled).
    async fn classify(&self, changes: &[Change]) -> Result<Vec<Verdict>> {
        let changes = changes.to_vec();
        self.fs(move |dirs| {
            changes
                .iter()
                .map(|change| {
                    let unchanged = match &change.action {
                        Edit::Put(content) => dirs.is_current(&change.key, content)?,
                        Edit::Delete => {
                            dirs.snapshot(&change.key)?
                                == Snapshot {
                                    conf: None,
                                    linked: false,
                                }
                        }
                    };
                    Ok(if unchanged {
                        Verdict::Unchanged
                    } else {
                        Verdict::Kept
                    })
                })
                .collect()
        })
        .await
    }

    /// Journals, writes and validates the effective changes, bisecting on refusal.
    async fn settle_changes(&self, changes: &[Change], effective: &[usize], verdicts: &mut [Verdict]) {
        // Journal the state before the batch, for crash recovery.
        let keys: Vec<RouteKey> = effective.iter().map(|i| changes[*i].key.clone()).collect();
        if let Err(e) = self
            .fs(move |dirs| {
                keys.iter()
                    .try_for_each(|key| dirs.journal(key, &dirs.snapshot(key)?))
            })
            .await
        {
            for i in effective {
                verdicts[*i] = Verdict::Io(e.message().to_owned());
            }
            return;
        }

        let group: Vec<usize> = effective.to_vec();
        let (snaps, written) = self.write_group(changes, &group, verdicts).await;
        if written.is_empty() {
            return;
        }
        let first = match self.test().await {
            Ok(()) => return,
            Err(e) => e,
        };
        self.restore_group(changes, &written, &snaps).await;
        if let RunError::Spawn(message) = first {
            for i in &written {
                verdicts[*i] = Verdict::NoNginx(message.clone());
            }
            return;
        }

        // Is the tree broken without our changes?
        if let Err(baseline) = self.test().await {
            let message = match baseline {
                RunError::Spawn(m) | RunError::Refused(m) => m,
            };
            let removals: Vec<usize> = written
                .iter()
                .copied()
                .filter(|i| matches!(changes[*i].action, Edit::Delete))
                .collect();
            let keys: Vec<RouteKey> = removals.iter().map(|i| changes[*i].key.clone()).collect();
            let removed = self
                .fs(move |dirs| keys.iter().try_for_each(|key| dirs.delete(key)))
                .await;
            for i in &written {
                verdicts[*i] = match (&changes[*i].action, &removed) {
                    (Edit::Delete, Ok(())) => Verdict::RemovedNotLive(message.clone()),
                    (Edit::Delete, Err(e)) => Verdict::Io(e.message().to_owned()),
                    (Edit::Put(_), _) => Verdict::BrokenElsewhere(message.clone()),
                };
            }
            return;
        }

        // Bisect, in order, each group tested on top of what was kept before it.
        let first_message = match first {
            RunError::Spawn(m) | RunError::Refused(m) => m,
        };
        let mut tasks: VecDeque<Task> = VecDeque::from([Task::Bisect(written, first_message)]);
        while let Some(task) = tasks.pop_front() {
            match task {
                Task::Bisect(group, message) if group.len() == 1 => {
                    verdicts[group[0]] = Verdict::Refused(message);
                }
                Task::Bisect(group, message) => {
                    let (left, right) = group.split_at(group.len() / 2);
                    tasks.push_front(Task::TryLeft(left.to_vec(), right.to_vec(), message));
                }
                Task::Try(group) => {
                    if let Some(message) = self.try_group(changes, &group, verdicts).await {
                        tasks.push_front(Task::Bisect(group, message));
                    }
                }
                Task::TryLeft(left, right, message) => match self.try_group(changes, &left, verdicts).await {
                    // The whole group failed and its left half passes: the right half fails.
                    None => tasks.push_front(Task::Bisect(right, message)),
                    Some(left_message) => {
                        tasks.push_front(Task::Try(right));
                        tasks.push_front(Task::Bisect(left, left_message));
                    }
                },
            }
        }
    }

    /// Writes a group on top of the current tree and tests it. Kept when nginx accepts (`None`);
    /// otherwise rolled back, and nginx's message returned. When nginx can not be run at all, the
    /// group is rolled back and marked as such (also `None`: there is nothing left to bisect).
    async fn try_group(
        &self,
        changes: &[Change],
        group: &[usize],
        verdicts: &mut [Verdict],
    ) -> Option<String> {
        let (snaps, written) = self.write_group(changes, group, verdicts).await;
        if written.is_empty() {
            return None;
        }
        let refusal = self.test().await.err()?;
        self.restore_group(changes, &written, &snaps).await;
        match refusal {
            RunError::Refused(message) => Some(message),
            RunError::Spawn(message) => {
                for i in &written {
                    verdicts[*i] = Verdict::NoNginx(message.clone());
                }
                None
            }
        }
    }

    /// Writes a group; returns the snapshots taken just before and the indices actually written.
    /// A change that fails to write is put back at once and gets an `Io` verdict.
    async fn write_group(
        &self,
        changes: &[Change],
        group: &[usize],
        verdicts: &mut [Verdict],
    ) -> (Vec<Snapshot>, Vec<usize>) {
        let work: Vec<(usize, Change)> = group.iter().map(|i| (*i, changes[*i].clone())).collect();
        let outcome = self
            .fs(move |dirs| {
                let mut snaps = Vec::new();
                let mut written = Vec::new();
                let mut failed = Vec::new();
                for (i, change) in &work {
                    let snap = dirs.snapshot(&change.key)?;
                    let result = match &change.action {
                        Edit::Put(content) => dirs.put(&change.key, content),
                        Edit::Delete => dirs.delete(&change.key),
                    };
                    match result {
                        Ok(()) => {
                            snaps.push(snap);
                            written.push(*i);
                        }
                        Err(e) => {
                            let _ = dirs.restore(&change.key, &snap);
                            failed.push((*i, e.to_string()));
                        }
                    }
                }
                Ok((snaps, written, failed))
            })
            .await;
        match outcome {
            Ok((snaps, written, failed)) => {
                for (i, message) in failed {
                    verdicts[i] = Verdict::Io(message);
                }
                (snaps, written)
            }
            Err(e) => {
                for i in group {
                    verdicts[*i] = Verdict::Io(e.message().to_owned());
                }
                (Vec::new(), Vec::new())
            }
        }
    }

    async fn restore_group(&self, changes: &[Change], written: &[usize], snaps: &[Snapshot]) {
        let work: Vec<(RouteKey, Snapshot)> = written
            .iter()
            .zip(snaps)
            .map(|(i, snap)| (changes[*i].key.clone(), snap.clone()))
            .rev()
            .collect();
        let restored = self
            .fs(move |dirs| work.iter().try_for_each(|(key, snap)| dirs.restore(key, snap)))
            .await;
        if let Err(e) = restored {
            // The journal still holds the state before the batch; the next batch restores it.
            tracing::error!(error = ?e, "rolling back refused nginx routes failed");
        }
    }

    /// Writes or clears failure markers and clears the journal of every changed route.
    async fn finish_files(&self, changes: &[Change], verdicts: &[Verdict]) {
        let work: Vec<(RouteKey, Verdict)> = changes
            .iter()
            .zip(verdicts)
            .map(|(c, v)| (c.key.clone(), v.clone()))
            .collect();
        let done = self
            .fs(move |dirs| {
                for (key, verdict) in &work {
                    match verdict {
                        Verdict::Unchanged | Verdict::Kept | Verdict::RemovedNotLive(_) => dirs.clear_failed(key)?,
                        Verdict::Refused(message) => dirs.mark_failed(key, message)?,
                        Verdict::BrokenElsewhere(message) => dirs.mark_failed(
                            key,
                            &format!("not applied: nginx refuses its configuration without this route too: {message}"),
                        )?,
                        Verdict::Io(_) | Verdict::NoNginx(_) | Verdict::ReloadFailed(_) => {}
                    }
                    dirs.clear_journal(key)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = done {
            tracing::error!(error = ?e, "updating nginx route markers failed");
        }
    }

    async fn test(&self) -> std::result::Result<(), RunError> {
        let started = Instant::now();
        let result = self.runner.run(Action::Test).await.map(drop);
        self.stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .validations += 1;
        *self.last_test.lock().unwrap_or_else(PoisonError::into_inner) = started.elapsed();
        result
    }

    /// Reloads for a batch just written, sharing reloads across processes: the batch is noted in
    /// the ledger, the lock is given up for one debounce window so other processes (other `cm`
    /// commands) can write theirs, and then whoever comes first reloads once for all of them; a
    /// process whose batch a later reload already covered only waits for that reload to settle.
    async fn reload_shared(&self, lock: LockGuard) -> std::result::Result<(), String> {
        let noted = self
            .fs(|dirs| {
                let mut ledger = dirs.read_ledger()?;
                ledger.written += 1;
                dirs.write_ledger(&ledger)?;
                Ok(ledger.written)
            })
            .await;
        let Ok(generation) = noted else {
            // Without a ledger, reload as a single process would.
            let result = self.reload().await;
            drop(lock);
            return result;
        };
        drop(lock);
        tokio::time::sleep(self.share_window).await;
        let (lock, ledger) = loop {
            let lock = self.lock().await.map_err(|e| e.message().to_owned())?;
            let ledger = self
                .fs(|dirs| dirs.read_ledger())
                .await
                .map_err(|e| e.message().to_owned())?;
            let since = Duration::from_millis(now_ms().saturating_sub(ledger.reloaded_at_ms));
            if ledger.reloaded >= generation || since >= self.min_interval {
                break (lock, ledger);
            }
            // The last reload was moments ago: wait for the interval to pass, so that whatever else
            // comes meanwhile goes live with one reload (another process may reload for us).
            drop(lock);
            tokio::time::sleep(self.min_interval - since).await;
        };
        if ledger.reloaded >= generation {
            drop(lock);
            self.stats
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .shared_reloads += 1;
            let elapsed = Duration::from_millis(now_ms().saturating_sub(ledger.reloaded_at_ms));
            let settle = self.settle_time();
            if elapsed < settle {
                tokio::time::sleep(settle - elapsed).await;
            }
            return Ok(());
        }
        let result = self.reload().await;
        if result.is_ok() {
            let covered = Ledger {
                written: ledger.written,
                reloaded: ledger.written,
                reloaded_at_ms: now_ms(),
            };
            if let Err(e) = self.fs(move |dirs| dirs.write_ledger(&covered)).await {
                tracing::warn!(error = ?e, "could not record the reload in the ledger");
            }
        }
        drop(lock);
        result
    }

    /// How long the new workers need after a reload.
    fn settle_time(&self) -> Duration {
        let last_test = *self.last_test.lock().unwrap_or_else(PoisonError::into_inner);
        (SETTLE_MIN + last_test).min(SETTLE_MAX)
    }

    /// Runs `nginx -s reload`, records it, and waits for the new workers.
    async fn reload(&self) -> std::result::Result<(), String> {
        let result = self
            .runner
            .run(Action::Reload)
            .await
            .map(drop)
            .map_err(|e| match e {
                RunError::Spawn(m) | RunError::Refused(m) => m,
            });
        {
            let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
            stats.reloads += 1;
            if result.is_err() {
                stats.failed_reloads += 1;
            }
            stats.last_reload = Some(LastReload {
                at: SystemTime::now(),
                error: result.clone().err(),
            });
        }
        match &result {
            Ok(()) => tokio::time::sleep(self.settle_time()).await,
            Err(message) => tracing::warn!(error = %message, "nginx reload failed"),
        }
        result
    }

    async fn lock(&self) -> Result<LockGuard> {
        let started = Instant::now();
        loop {
            if let Some(guard) = self.fs(|dirs| dirs.try_lock_exclusive()).await? {
                return Ok(guard);
            }
            if started.elapsed() > LOCK_WAIT {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "another process has held the nginx route lock in {} for over {}s",
                        self.dirs.available().display(),
                        LOCK_WAIT.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(LOCK_POLL).await;
        }
    }

    /// Runs blocking file work off the async threads; IO errors become `Unavailable`.
    pub(crate) async fn fs<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&BoxDirs) -> std::io::Result<T> + Send + 'static,
    {
        let dirs = self.dirs.clone();
        match tokio::task::spawn_blocking(move || work(&dirs)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(Error::unavailable(format!(
                "nginx route files in {}: {e}",
                self.dirs.available().display()
            ))
            .with_source(e)),
            Err(e) => Err(Error::internal(format!("nginx route file task failed: {e}"))),
        }
    }
}

/// Splits a batch into rounds: runs of applies/removes/reloads, and each sync alone (a sync's
/// "exactly these routes" is computed against the disk as the round starts).
fn rounds(batch: Vec<Pending>) -> Vec<Vec<Pending>> {
    let mut rounds: Vec<Vec<Pending>> = Vec::new();
    let mut current = Vec::new();
    for pending in batch {
        if matches!(pending.request, Request::Sync(_)) {
            if !current.is_empty() {
                rounds.push(mem::take(&mut current));
            }
            rounds.push(vec![pending]);
        } else {
            current.push(pending);
        }
    }
    if !current.is_empty() {
        rounds.push(current);
    }
    rounds
}

/// The same error for another caller (the cause chain stays with the first).
fn copy_error(e: &Error) -> Error {
    Error::new(e.kind(), e.message())
}

fn key_of(route: &Route) -> RouteKey {
    RouteKey::new(route.user.clone(), route.kind.clone())
}

/// The error a caller hears for a verdict; a sync hears about refusals through the route states.
fn verdict_error(key: &RouteKey, verdict: &Verdict, is_sync: bool) -> Option<Error> {
    let file = key.file_name();
    match verdict {
        Verdict::Unchanged | Verdict::Kept => None,
        Verdict::Refused(_) if is_sync => None,
        Verdict::Refused(message) => Some(Error::conflict(format!(
            "nginx refused route {file}; the previous configuration keeps serving: {message}"
        ))),
        Verdict::BrokenElsewhere(message) => Some(Error::unavailable(format!(
            "route {file} not applied: nginx refuses its configuration even without it: {message}"
        ))),
        Verdict::RemovedNotLive(message) => Some(Error::unavailable(format!(
            "route {file} removed from disk, but nginx refuses its configuration for another reason and keeps serving the old routes: {message}"
        ))),
        Verdict::Io(message) => Some(Error::unavailable(format!(
            "writing route {file} failed: {message}"
        ))),
        Verdict::NoNginx(message) => Some(Error::unavailable(format!(
            "route {file} not applied: nginx could not be run to check it: {message}"
        ))),
        Verdict::ReloadFailed(message) => Some(Error::unavailable(format!(
            "route {file} is written and valid, but reloading nginx failed: {message}"
        ))),
    }
}
