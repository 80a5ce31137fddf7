//! `Manager`, the facade other services embed: its adapters, configuration and shared state;
//! the use cases are its methods, one module each under `usecase/`.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{Config, ContainerType};
use crate::error::Result;

use crate::limits::Running;
use crate::live::StatusView;

use crate::network::PortProbe;
use crate::ports::{Clock, ContainerRuntime, EngineInfo, FailPoints, KeyParser, Proxy, ProxyStatus, Store};

use crate::spec::labels;

/// The adapters a manager drives.
#[derive(Clone)]
pub struct Adapters {
    /// The container engine.
    pub runtime: Arc<dyn ContainerRuntime>,
    /// The desired state.
    pub store: Arc<dyn Store>,
    /// The reverse proxy.
    pub proxy: Arc<dyn Proxy>,
    /// The SSH key parser.
    pub keys: Arc<dyn KeyParser>,
    /// The host port probe.
    pub probe: Arc<dyn PortProbe>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Fail points for crash tests ([`crate::NoFailPoints`] in production).
    pub fail_points: Arc<dyn FailPoints>,
}

/// ContainerManager's use cases over a set of adapters.
#[derive(Clone)]
pub struct Manager {
    pub(crate) config: Arc<Config>,
    pub(crate) adapters: Adapters,
    pub(crate) status_view: Option<Arc<StatusView>>,
    /// The labels every object this manager makes carries: the configured extra labels and
    /// this installation's (see [`Manager::with_installation`]).
    pub(crate) own_labels: Arc<BTreeMap<String, String>>,
    pub(crate) running: Arc<Running>,
    /// What it counted since it started (see [`Manager::metrics_text`]).
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// The last minutes of each running container's use (see [`Manager::sample_usage`]).
    pub(crate) usage: Arc<crate::health::UsageHistory>,
    /// Set when the server stops: followed logs end so that it need not wait for them.
    pub(crate) stopping: Arc<tokio::sync::watch::Sender<bool>>,
    /// Activity and wakes of idle-stopped containers (see `idle.rs`).
    pub(crate) idle: Arc<crate::idle::Idle>,
    /// The nodes as last listed (a runtime with nodes).
    pub(crate) known_nodes: Arc<crate::placement::KnownNodes>,
}

impl Manager {
    /// A manager over `adapters` with `config`.
    pub fn new(config: Config, adapters: Adapters) -> Self {
        Manager {
            own_labels: Arc::new(config.extra_labels.clone()),
            config: Arc::new(config),
            adapters,
            status_view: None,
            running: Arc::default(),
            metrics: Arc::default(),
            usage: Arc::default(),
            stopping: Arc::new(tokio::sync::watch::channel(false).0),
            idle: Arc::new(crate::idle::Idle::new(None)),
            known_nodes: Arc::default(),
        }
    }

    /// Labels what it makes with installation `id` (from the database), so that prune tells its
    /// own objects from those of other installations and of the Python original.
    pub fn with_installation(mut self, id: &str) -> Self {
        let mut labels = self.config.extra_labels.clone();
        labels.insert(labels::INSTALLATION.to_owned(), id.to_owned());
        self.own_labels = Arc::new(labels);
        self
    }

    /// What the manager counted since it started.
    pub(crate) fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// The sampled use of running containers.
    pub(crate) fn usage_history(&self) -> &crate::health::UsageHistory {
        &self.usage
    }

    /// The live status view, when this process keeps one.
    pub(crate) fn status_view(&self) -> Option<&Arc<StatusView>> {
        self.status_view.as_ref()
    }

    /// The slots of running execs and follows.
    pub(crate) fn running(&self) -> &Arc<Running> {
        &self.running
    }

    /// Turns true when the server stops.
    pub(crate) fn stopping_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Commands and followed logs running now.
    pub(crate) fn in_flight(&self) -> (usize, usize) {
        self.running.in_flight()
    }

    /// The labels of everything this manager makes (extra labels and installation).
    pub(crate) fn own_labels(&self) -> &BTreeMap<String, String> {
        &self.own_labels
    }

    /// This installation's id, when it has one.
    pub fn installation(&self) -> Option<&str> {
        self.own_labels.get(labels::INSTALLATION).map(String::as_str)
    }

    /// Answers listings from `view` while it is live (see [`Manager::feed_status_view`]).
    pub fn with_status_view(mut self, view: Arc<StatusView>) -> Self {
        self.status_view = Some(view);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The adapters, for frontends that report on them (proxy status, engine health).
    pub fn adapters(&self) -> &Adapters {
        &self.adapters
    }

    /// The configured container types.
    pub fn types(&self) -> Vec<&ContainerType> {
        self.config.types.values().collect()
    }

    /// The engine's health and version.
    pub async fn engine_info(&self) -> Result<EngineInfo> {
        self.adapters.runtime.engine_info().await
    }

    /// Whether HTTP routing works.
    pub fn proxy_status(&self) -> ProxyStatus {
        self.adapters.proxy.status()
    }

    /// Whether HTTP routing works, asking nginx whether it answers.
    pub async fn probe_proxy(&self) -> ProxyStatus {
        self.adapters.proxy.probe().await
    }

    /// Lets tests stop the process at a named point (see [`crate::FailPoints`]).
    pub(crate) fn fail_point(&self, point: &str) {
        self.adapters.fail_points.reached(point);
    }
}
