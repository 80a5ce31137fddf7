//! Commands in a container, its logs and its resource use.

use std::time::Duration;

use crate::access::AuthorizedContainer;
use crate::auth::Action;
use crate::error::{Error, ErrorKind, Result};

use crate::limits::Work;

use crate::names::TypeName;

use crate::ports::{ExecOutput, ExecRequest, LogRequest, LogStream};

use crate::spec::ContainerStatus;
use crate::values::Command;

use crate::manager::Manager;

/// The default time limit of an exec.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(60);

impl Manager {
    /// The container's output.
    pub async fn logs(&self, container: &AuthorizedContainer, request: &LogRequest) -> Result<LogStream> {
        let spec = self.permitted(container, Action::ReadLogs)?;
        if !request.follow {
            return self.adapters.runtime.logs(&spec.container_id, request).await;
        }
        if *self.stopping.borrow() {
            return Err(Error::new(ErrorKind::Unavailable, "the server is stopping"));
        }
        // A follow holds its slot for as long as the stream lives.
        let slot = self
            .running
            .take(Work::Follow, &spec.user_id, &self.config.limits)?;
        let stream = self.adapters.runtime.logs(&spec.container_id, request).await?;
        let mut stopping = self.stopping.subscribe();
        let stopped = async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        let in_use = self.in_use(&spec.container_name);
        let held = futures_util::StreamExt::map(stream, move |chunk| {
            let _held = (&slot, &in_use);
            chunk
        });
        Ok(Box::pin(futures_util::StreamExt::take_until(held, stopped)))
    }

    /// Ends every followed log (their streams finish cleanly) and refuses new follows: a server
    /// that stops calls this first, so that open follows do not hold its shutdown.
    pub fn end_follows(&self) {
        self.stopping.send_replace(true);
    }

    /// A container's resource use (sampled over about a second) and health: restarts, last exit
    /// code, OOM kill, start time.
    pub async fn stats(&self, container: &AuthorizedContainer) -> Result<crate::ports::ContainerStats> {
        let spec = self.permitted(container, Action::ReadContainer)?;
        self.require_present(spec).await?;
        self.adapters.runtime.stats(&spec.container_id).await
    }

    /// Runs a command in a running container as the image's user (the admin's way, and `cm`'s).
    pub async fn exec(
        &self,
        container: &AuthorizedContainer,
        command: Command,
        timeout: Duration,
    ) -> Result<ExecOutput> {
        self.exec_as(container, command, timeout, None).await
    }

    /// Runs a command in a running container as `user` (`None`: the image's user). At most
    /// `[limits] exec_per_user` commands run at once in one user's containers, and `exec_total`
    /// in all; over that the call is refused ([`ErrorKind::Busy`]) without running anything.
    pub async fn exec_as(
        &self,
        container: &AuthorizedContainer,
        command: Command,
        timeout: Duration,
        user: Option<String>,
    ) -> Result<ExecOutput> {
        if timeout.is_zero() || timeout > Duration::from_secs(24 * 3600) {
            return Err(Error::invalid("invalid timeout: 1 second to 24 hours").for_field("timeout"));
        }
        let spec = self.permitted(container, Action::Exec)?;
        let _slot = self
            .running
            .take(Work::Exec, &spec.user_id, &self.config.limits)?;
        let _in_use = self.in_use(&spec.container_name);
        let observed = self.require_present(spec).await?;
        if observed.status != ContainerStatus::Running {
            return Err(Error::conflict(format!(
                "container {} is {}: start it first",
                spec.container_name, observed.status
            )));
        }
        let request = ExecRequest {
            command,
            user,
            timeout,
        };
        self.adapters.runtime.exec(&spec.container_id, &request).await
    }

    /// The user a user token's commands run as in containers of `kind`: the type's `exec_user`.
    pub fn exec_user_of(&self, kind: &TypeName) -> String {
        self.config.types.get(kind).map_or_else(
            || crate::config::FALLBACK_EXEC_USER.to_owned(),
            |t| t.exec_user.clone(),
        )
    }
}
