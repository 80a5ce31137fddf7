//! A whole world of fakes around a `Manager` (`FakeWorld`), fail points that panic, and an audit
//! trail in memory.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::Config;
use crate::error::Result;
use crate::manager::{Adapters, Manager};
use crate::ports::{FailPoints, Store};

use super::host::{FakeKeyParser, FakeProbe, FixedClock};
use super::proxy::FakeProxy;
use super::runtime::FakeRuntime;
use super::store::MemoryStore;

/// Fail points that panic at one armed point: the use case stops there as if the process died
/// (no undo runs).
#[derive(Default)]
pub struct PanicAt(Mutex<Option<String>>);

impl PanicAt {
    /// Arms a point; `None` disarms.
    pub fn arm(&self, point: Option<&str>) {
        *self.0.lock().unwrap() = point.map(str::to_owned);
    }
}

impl FailPoints for PanicAt {
    fn reached(&self, point: &str) {
        let armed = self.0.lock().unwrap().clone();
        if armed.as_deref() == Some(point) {
            panic!("fail point {point} reached");
        }
    }
}

/// A manager over fresh fakes, and the fakes to inspect.
pub struct FakeWorld {
    /// The manager.
    pub manager: Manager,
    /// Its engine.
    pub runtime: Arc<FakeRuntime>,
    /// Its store.
    pub store: Arc<MemoryStore>,
    /// Its proxy.
    pub proxy: Arc<FakeProxy>,
    /// Its port probe.
    pub probe: Arc<FakeProbe>,
    /// Its clock.
    pub clock: Arc<FixedClock>,
    /// Its fail points.
    pub fail_points: Arc<PanicAt>,
}

/// The audit trail in memory.
#[derive(Default)]
pub struct MemoryAudit {
    entries: Mutex<Vec<crate::audit::AuditEntry>>,
}

impl MemoryAudit {
    /// Every entry, oldest first.
    pub fn entries(&self) -> Vec<crate::audit::AuditEntry> {
        self.entries.lock().unwrap().clone()
    }
}

#[async_trait]
impl crate::audit::AuditLog for MemoryAudit {
    async fn append(&self, entry: &crate::audit::AuditEntry) -> Result<()> {
        let mut entries = self.entries.lock().unwrap();
        let mut entry = entry.clone();
        entry.id = i64::try_from(entries.len()).unwrap_or(i64::MAX) + 1;
        entries.push(entry);
        Ok(())
    }

    async fn query(&self, query: &crate::audit::AuditQuery) -> Result<Vec<crate::audit::AuditEntry>> {
        let about = |e: &crate::audit::AuditEntry| match &query.user {
            None => true,
            Some(user) => {
                e.subject.as_ref() == Some(user) || e.actor == crate::audit::Actor::User(user.clone())
            }
        };
        Ok(self
            .entries
            .lock()
            .unwrap()
            .iter()
            .rev()
            .filter(|e| about(e) && query.target.as_ref().is_none_or(|t| e.target.as_ref() == Some(t)))
            .filter(|e| {
                query
                    .since
                    .is_none_or(|since| humantime::parse_rfc3339_weak(&e.at).is_ok_and(|at| at >= since))
            })
            .take(query.limit())
            .cloned()
            .collect())
    }

    async fn prune(&self, before: SystemTime) -> Result<usize> {
        let mut entries = self.entries.lock().unwrap();
        let count = entries.len();
        entries.retain(|e| humantime::parse_rfc3339_weak(&e.at).is_ok_and(|at| at >= before));
        Ok(count - entries.len())
    }
}

/// The installation id of a [`FakeWorld`]'s manager.
pub const FAKE_INSTALLATION: &str = "fake-installation";

impl FakeWorld {
    /// A world with the default configuration.
    pub fn new() -> Self {
        Self::with_config(Config::defaults())
    }

    /// A world with `config`; its manager is installation [`FAKE_INSTALLATION`].
    pub fn with_config(mut config: Config) -> Self {
        // The fake engine's containers crash as they start or never: a millisecond's watch for
        // an early exit sees it, and keeps every create of the tests fast.
        config.health.exit_check = config.health.exit_check.min(Duration::from_millis(1));
        let runtime = Arc::new(FakeRuntime::new());
        let store = Arc::new(MemoryStore::default());
        let proxy = Arc::new(FakeProxy::default());
        let probe = Arc::new(FakeProbe::default());
        let clock = Arc::new(FixedClock::default());
        let fail_points = Arc::new(PanicAt::default());
        let adapters = Adapters {
            fail_points: fail_points.clone(),
            runtime: runtime.clone(),
            store: store.clone(),
            proxy: proxy.clone(),
            keys: Arc::new(FakeKeyParser),
            probe: probe.clone(),
            clock: clock.clone(),
        };
        FakeWorld {
            manager: Manager::new(config, adapters).with_installation(FAKE_INSTALLATION),
            runtime,
            store,
            proxy,
            probe,
            clock,
            fail_points,
        }
    }
}

impl FakeWorld {
    /// Asserts the world holds nothing: no container, volume, network, record, lease, intent or
    /// route.
    pub async fn assert_empty(&self) {
        let names = self.runtime.container_names();
        assert!(names.is_empty(), "containers: {names:?}");
        let volumes = self.runtime.volumes();
        assert!(volumes.is_empty(), "volumes: {volumes:?}");
        let networks = self.runtime.networks();
        assert!(networks.is_empty(), "networks: {networks:?}");
        assert!(self.store.list_all().await.unwrap().is_empty(), "records");
        assert!(self.store.port_leases().await.unwrap().is_empty(), "port leases");
        assert!(self.store.operations().await.unwrap().is_empty(), "intents");
        assert!(
            self.store.subnet_leases().await.unwrap().is_empty(),
            "subnet leases"
        );
        assert!(self.proxy.routes_now().is_empty(), "routes");
    }
}

/// A create request for `user` and `kind` with nothing else set (default configuration).
pub fn create_request(user: &str, kind: &str) -> crate::CreateRequest {
    let form = crate::CreateForm {
        user_id: user.into(),
        container_type: kind.into(),
        ..crate::CreateForm::default()
    };
    crate::CreateRequest::parse(&form, &Config::defaults()).unwrap()
}

impl Default for FakeWorld {
    fn default() -> Self {
        Self::new()
    }
}

/// The admin's handle to the container `reference` names: tests act as the admin, who may do
/// everything, so one handle serves every use case.
pub async fn as_admin(
    manager: &crate::Manager,
    reference: &str,
) -> crate::Result<crate::AuthorizedContainer> {
    manager
        .authorized(&crate::Principal::Admin, reference, crate::Action::ReadContainer)
        .await
}
