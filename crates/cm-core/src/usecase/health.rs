//! How a container is doing (`Manager::health`), the sampler of use, and the create's watch
//! for an early exit.

use futures_util::StreamExt;
use std::collections::BTreeSet;

use std::time::{Duration, UNIX_EPOCH};

use crate::error::{Error, ErrorKind, Result};
use crate::manager::Manager;
use crate::ports::{ContainerStats, LogRequest};
use crate::spec::{ContainerSpec, ContainerStatus};

use crate::health::{
    ContainerHealth, EXIT_CHECK_STEP, EXIT_CODE_WAIT, LAST_LOG_LINES, SAMPLES_AT_ONCE, UsagePoint,
    seconds_since,
};

impl Manager {
    /// How a resolved container is doing (one stats sample, about a second of the engine's time;
    /// its last output lines when it is failing).
    pub async fn health(&self, spec: &ContainerSpec) -> Result<ContainerHealth> {
        let spec = self.with_status(spec.clone()).await?;
        if spec.status == ContainerStatus::Missing {
            return Err(Error::not_found(format!(
                "container {} is recorded but missing from the engine; `cm reconcile` re-creates it",
                spec.container_name
            )));
        }
        let stats: ContainerStats = self.adapters().runtime.stats(&spec.container_id).await?;
        let running = spec.status == ContainerStatus::Running;
        let mut health = ContainerHealth {
            status: spec.status,
            uptime_seconds: stats
                .started_at
                .as_deref()
                .filter(|_| running)
                .and_then(|t| seconds_since(t, self.adapters().clock.now())),
            started_at: stats.started_at,
            restart_count: stats.restart_count,
            exit_code: stats.exit_code,
            oom_killed: stats.oom_killed,
            cpu_percent: stats.cpu_percent,
            memory_bytes: stats.memory_bytes,
            memory_limit_bytes: stats.memory_limit_bytes,
            last_log_lines: Vec::new(),
            history: self.usage_history().of(&spec.container_id),
        };
        if health.is_failing() {
            health.last_log_lines = self.last_log_lines(&spec.container_id).await;
        }
        Ok(health)
    }

    /// The last output lines of a container, or none when they can not be read (they only
    /// explain a failure that is reported anyway).
    pub(crate) async fn last_log_lines(&self, id: &str) -> Vec<String> {
        let request = LogRequest {
            tail: Some(LAST_LOG_LINES),
            ..LogRequest::default()
        };
        let read = async {
            let mut stream = self.adapters().runtime.logs(id, &request).await?;
            let mut text = String::new();
            while let Some(chunk) = stream.next().await {
                text.push_str(&chunk?.text);
            }
            Ok::<_, Error>(text)
        };
        match tokio::time::timeout(Duration::from_secs(5), read).await {
            Ok(Ok(text)) => {
                let lines: Vec<String> = text.lines().map(str::to_owned).collect();
                let skip = lines.len().saturating_sub(LAST_LOG_LINES);
                lines.into_iter().skip(skip).collect()
            }
            Ok(Err(e)) => {
                tracing::debug!(container = id, error = ?e, "could not read the last output lines");
                Vec::new()
            }
            Err(_) => Vec::new(),
        }
    }

    /// Watches a container just started for `[health] exit_check`: one that exits (or that the
    /// engine is already restarting) within it is an error naming its exit code and last lines.
    /// The watch ends early once its app answers HTTP (when this process has an app probe): an
    /// app that answers has started.
    pub(crate) async fn watch_for_early_exit(&self, spec: &ContainerSpec) -> Result<ContainerStatus> {
        let runtime = &self.adapters().runtime;
        let deadline = tokio::time::Instant::now() + self.config().health.exit_check;
        let probe = self.idle.probe().cloned();
        loop {
            let observed = runtime.inspect_container(&spec.container_id).await?;
            let Some(observed) = observed else {
                return Ok(ContainerStatus::Missing);
            };
            let restarted = observed.restart_count.unwrap_or(0) > 0;
            let exited = !matches!(
                observed.status,
                ContainerStatus::Running | ContainerStatus::Created
            );
            if restarted || exited {
                // Restarted and running again, its exit code is gone until it exits again (soon,
                // when it exits at once): look a little longer for it.
                let observed = if exited {
                    observed
                } else {
                    self.next_exit(spec, observed).await?
                };
                let lines = self.last_log_lines(&spec.container_id).await;
                let code = observed
                    .exit_code
                    .filter(|c| *c != 0)
                    .map_or_else(String::new, |c| format!(" with code {c}"));
                let output = if lines.is_empty() {
                    " It wrote nothing.".to_owned()
                } else {
                    format!(" Its last lines:\n{}", lines.join("\n"))
                };
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "container {} exited at once{code}: check the type's image and command.{output}",
                        spec.container_name
                    ),
                ));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(observed.status);
            }
            if let Some(probe) = &probe
                && observed.status == ContainerStatus::Running
                && matches!(
                    tokio::time::timeout_at(deadline, probe.answers(spec.port)).await,
                    Ok(true)
                )
            {
                return Ok(ContainerStatus::Running);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                continue;
            }
            tokio::time::sleep(EXIT_CHECK_STEP.min(deadline - now)).await;
        }
    }

    /// The container's state once it is seen not running, within [`EXIT_CODE_WAIT`]; `seen` when
    /// it keeps running that long (or is gone).
    async fn next_exit(
        &self,
        spec: &ContainerSpec,
        seen: crate::ports::ObservedContainer,
    ) -> Result<crate::ports::ObservedContainer> {
        let until = tokio::time::Instant::now() + EXIT_CODE_WAIT;
        while tokio::time::Instant::now() < until {
            tokio::time::sleep(EXIT_CHECK_STEP).await;
            match self
                .adapters()
                .runtime
                .inspect_container(&spec.container_id)
                .await?
            {
                Some(observed) if observed.status != ContainerStatus::Running => return Ok(observed),
                Some(_) => {}
                None => break,
            }
        }
        Ok(seen)
    }

    /// Samples the use of every running container once, a few at a time, into the history the
    /// dashboard's charts read (cm-api calls this every `[health] sample_seconds`). Returns how
    /// many were sampled.
    pub async fn sample_usage(&self) -> Result<usize> {
        let listing = self.list_all().await?;
        if listing.stale.is_some() {
            return Ok(0);
        }
        let ids: BTreeSet<String> = listing
            .containers
            .iter()
            .map(|c| c.container_id.clone())
            .collect();
        self.usage_history().keep_only(&ids);
        let running: Vec<String> = listing
            .containers
            .into_iter()
            .filter(|c| c.status == ContainerStatus::Running)
            .map(|c| c.container_id)
            .collect();
        let runtime = self.adapters().runtime.clone();
        let samples: Vec<(String, Result<ContainerStats>)> = futures_util::stream::iter(running)
            .map(|id| {
                let runtime = runtime.clone();
                async move {
                    let stats = runtime.stats(&id).await;
                    (id, stats)
                }
            })
            .buffer_unordered(SAMPLES_AT_ONCE)
            .collect()
            .await;
        let at = self
            .adapters()
            .clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut sampled = 0;
        for (id, stats) in samples {
            match stats {
                Ok(stats) => {
                    sampled += 1;
                    self.usage_history().record(
                        &id,
                        UsagePoint {
                            at,
                            cpu_percent: stats.cpu_percent,
                            memory_bytes: stats.memory_bytes,
                        },
                    );
                }
                // Gone or stopped between the listing and the sample: the next round tells.
                Err(e) => tracing::debug!(container = %id, error = ?e, "no usage sample"),
            }
        }
        Ok(sampled)
    }
}
