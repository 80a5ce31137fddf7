//! Starting, stopping and restarting a container, and what a start re-applies.

use crate::access::AuthorizedContainer;
use crate::auth::Action;
use crate::error::{Error, Result};

use crate::ports::ObservedContainer;

use crate::spec::{ContainerSpec, ContainerStatus};

use crate::manager::Manager;

/// A lifecycle change of a container, as the frontends offer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Start it.
    Start,
    /// Stop it.
    Stop,
    /// Restart it.
    Restart,
}

impl Lifecycle {
    /// What the caller must be allowed to do.
    pub fn action(self) -> Action {
        match self {
            Lifecycle::Start => Action::StartContainer,
            Lifecycle::Stop => Action::StopContainer,
            Lifecycle::Restart => Action::RestartContainer,
        }
    }

    /// The past tense for messages: `started`, `stopped`, `restarted`.
    pub fn done(self) -> &'static str {
        match self {
            Lifecycle::Start => "started",
            Lifecycle::Stop => "stopped",
            Lifecycle::Restart => "restarted",
        }
    }
}

impl Manager {
    /// Starts, stops or restarts a container.
    pub async fn lifecycle(&self, container: &AuthorizedContainer, what: Lifecycle) -> Result<ContainerSpec> {
        match what {
            Lifecycle::Start => self.start(container).await,
            Lifecycle::Stop => self.stop(container).await,
            Lifecycle::Restart => self.restart(container).await,
        }
    }

    /// Starts a container and re-applies its SSH keys.
    pub async fn start(&self, container: &AuthorizedContainer) -> Result<ContainerSpec> {
        let spec = self.permitted(container, Action::StartContainer)?.clone();
        self.refuse_while_busy(&spec).await?;
        self.require_present(&spec).await?;
        self.prepare_disk(&spec).await?;
        self.adapters.runtime.start_container(&spec.container_id).await?;
        self.started_on_purpose(&spec).await;
        self.after_start(spec).await
    }

    /// Stops a container; its route stays (nginx answers 502 until it starts again).
    pub async fn stop(&self, container: &AuthorizedContainer) -> Result<ContainerSpec> {
        let spec = self.permitted(container, Action::StopContainer)?.clone();
        self.require_present(&spec).await?;
        self.stopping_on_purpose(&spec).await?;
        self.adapters.runtime.stop_container(&spec.container_id).await?;
        self.record_status(spec).await
    }

    /// Restarts a container and re-applies its SSH keys.
    pub async fn restart(&self, container: &AuthorizedContainer) -> Result<ContainerSpec> {
        let spec = self.permitted(container, Action::RestartContainer)?.clone();
        self.refuse_while_busy(&spec).await?;
        self.require_present(&spec).await?;
        self.prepare_disk(&spec).await?;
        self.adapters
            .runtime
            .restart_container(&spec.container_id)
            .await?;
        self.started_on_purpose(&spec).await;
        self.after_start(spec).await
    }

    /// The cap and the use of the container's data volume, when it is size-capped.
    pub async fn disk_usage(&self, spec: &ContainerSpec) -> Result<Option<crate::ports::DiskUsage>> {
        if spec.disk.is_none() {
            return Ok(None);
        }
        self.adapters
            .runtime
            .volume_usage(spec.volume_name.as_str())
            .await
    }

    /// Whether data volumes' size caps are enforced on this host, and if not, why.
    pub fn disk_support(&self) -> crate::ports::DiskSupport {
        self.adapters.runtime.disk_support()
    }

    /// A size-capped volume's disk image is attached before its container starts (after a host
    /// restart it is not, and the engine would refuse to mount it).
    pub(crate) async fn prepare_disk(&self, spec: &ContainerSpec) -> Result<()> {
        if spec.disk.is_some() {
            self.adapters
                .runtime
                .prepare_volume(spec.volume_name.as_str())
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn after_start(&self, spec: ContainerSpec) -> Result<ContainerSpec> {
        if spec.ssh_port.is_some() {
            self.install_keys(&spec).await?;
        }
        self.record_status(spec).await
    }

    pub(crate) async fn record_status(&self, mut spec: ContainerSpec) -> Result<ContainerSpec> {
        let observed = self
            .adapters
            .runtime
            .inspect_container(&spec.container_id)
            .await?;
        spec.status = observed.map_or(ContainerStatus::Missing, |c| c.status);
        self.note_status(&spec.container_id, Some(spec.status));
        self.adapters.store.put(&spec).await?;
        self.announce(&spec);
        Ok(spec)
    }

    /// Tells the live status view what an inspection right after our own change saw, so the
    /// next listing does not show the state before it while the engine's event is on its way.
    /// (Each event is applied by inspecting again, so a late event can not undo this.)
    /// Tells live event streams about a record just written: its container's change may have
    /// come before the record, when they could not yet tell whose it is.
    pub(crate) fn announce(&self, spec: &ContainerSpec) {
        if let Some(view) = &self.status_view {
            view.announce(&spec.container_id, spec.status);
        }
    }

    pub(crate) fn note_status(&self, id: &str, status: Option<ContainerStatus>) {
        if let Some(view) = &self.status_view {
            view.set(id, status);
        }
    }

    pub(crate) async fn require_present(&self, spec: &ContainerSpec) -> Result<ObservedContainer> {
        self.adapters
            .runtime
            .inspect_container(&spec.container_id)
            .await?
            .ok_or_else(|| {
                Error::not_found(format!(
                    "container {} is recorded but missing from the engine; `cm reconcile` re-creates it",
                    spec.container_name
                ))
            })
    }
}
