//! The fake reverse proxy: routes in memory.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::names::{TypeName, UserId};
use crate::ports::{Proxy, ProxyStatus, Route, RouteState, RouteStatus};

/// A proxy that remembers its routes.
#[derive(Default)]
pub struct FakeProxy {
    routes: Mutex<BTreeMap<(String, String), Route>>,
    refuse: Mutex<Option<String>>,
}

impl FakeProxy {
    /// The live routes.
    pub fn routes_now(&self) -> Vec<Route> {
        self.routes.lock().unwrap().values().cloned().collect()
    }

    /// Makes `apply` fail with this nginx-like message.
    pub fn refuse_with(&self, message: &str) {
        *self.refuse.lock().unwrap() = Some(message.to_owned());
    }
}

#[async_trait]
impl Proxy for FakeProxy {
    fn status(&self) -> ProxyStatus {
        ProxyStatus {
            enabled: true,
            mode: Some(crate::config::RoutingMode::Files),
            answers: None,
            detail: "fake proxy".into(),
            reloads: 0,
            last_reload: None,
        }
    }

    async fn apply(&self, route: &Route) -> Result<()> {
        if let Some(message) = self.refuse.lock().unwrap().clone() {
            // Like nginx: a refused route is a conflict with the rest of the configuration.
            return Err(Error::conflict(message));
        }
        self.routes
            .lock()
            .unwrap()
            .insert((route.user.to_string(), route.kind.to_string()), route.clone());
        Ok(())
    }

    async fn remove(&self, user: &UserId, kind: &TypeName) -> Result<()> {
        self.routes
            .lock()
            .unwrap()
            .remove(&(user.to_string(), kind.to_string()));
        Ok(())
    }

    async fn routes(&self) -> Result<Vec<RouteStatus>> {
        Ok(self
            .routes_now()
            .into_iter()
            .map(|r| RouteStatus {
                user: r.user.to_string(),
                kind: r.kind.to_string(),
                port: Some(r.port),
                state: RouteState::Active,
            })
            .collect())
    }

    async fn sync(&self, routes: &[Route]) -> Result<Vec<RouteStatus>> {
        {
            let mut live = self.routes.lock().unwrap();
            live.clear();
            for route in routes {
                live.insert((route.user.to_string(), route.kind.to_string()), route.clone());
            }
        }
        self.routes().await
    }
}
