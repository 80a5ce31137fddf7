//! The nginx routes of containers: what should exist, what does, and bringing them together.

use crate::config::ContainerType;
use crate::error::Result;

use crate::ports::{Route, RouteState, RouteStatus};

use crate::spec::ContainerSpec;

use crate::manager::Manager;

pub(crate) fn route_of(spec: &ContainerSpec, strip_prefix: bool) -> Route {
    Route {
        user: spec.user_id.clone(),
        kind: spec.container_type.clone(),
        port: spec.port,
        strip_prefix,
    }
}

impl Manager {
    /// Activates the route of a container; returns nginx's refusal, if any. Routing problems never
    /// undo a container: it is up and reachable over its port, and the route can be re-synced.
    pub(crate) async fn route(&self, spec: &ContainerSpec, kind: &ContainerType) -> Option<String> {
        if !self.adapters.proxy.status().enabled {
            return None;
        }
        let route = route_of(spec, kind.strip_prefix);
        match self.adapters.proxy.apply(&route).await {
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(container = %spec.container_name, error = ?e, "route refused");
                Some(e.message().to_owned())
            }
        }
    }

    /// The route every record should have.
    pub(crate) fn expected_routes(&self, specs: &[ContainerSpec]) -> Vec<Route> {
        specs
            .iter()
            .map(|spec| {
                // A type removed from the configuration keeps the default (prefix stripped).
                let strip = self
                    .config
                    .types
                    .get(&spec.container_type)
                    .is_none_or(|t| t.strip_prefix);
                route_of(spec, strip)
            })
            .collect()
    }

    /// The routes nginx holds, with the ones the store expects but nginx lacks as `Missing` and
    /// the ones no record explains as `Orphaned`. Empty when routing is disabled.
    pub async fn routes(&self) -> Result<Vec<RouteStatus>> {
        let status = self.adapters.proxy.status();
        if !status.enabled {
            return Ok(Vec::new());
        }
        let expected = self.expected_routes(&self.adapters.store.list_all().await?);
        if status.mode == Some(crate::config::RoutingMode::Dynamic) {
            // Every record is routed by the route check; there is nothing on disk to compare.
            return Ok(expected
                .into_iter()
                .map(|route| RouteStatus {
                    user: route.user.to_string(),
                    kind: route.kind.to_string(),
                    port: Some(route.port),
                    state: RouteState::Active,
                })
                .collect());
        }
        let mut present = self.adapters.proxy.routes().await?;
        for status in &mut present {
            let known = expected
                .iter()
                .any(|r| r.user.as_str() == status.user && r.kind.as_str() == status.kind);
            if !known {
                status.state = RouteState::Orphaned;
            }
        }
        for route in &expected {
            let there = present
                .iter()
                .any(|s| s.user == route.user.as_str() && s.kind == route.kind.as_str());
            if !there {
                present.push(RouteStatus {
                    user: route.user.to_string(),
                    kind: route.kind.to_string(),
                    port: Some(route.port),
                    state: RouteState::Missing,
                });
            }
        }
        present.sort_by(|a, b| (&a.user, &a.kind).cmp(&(&b.user, &b.kind)));
        Ok(present)
    }

    /// Re-renders every route from the store and removes the others, with one reload.
    pub async fn sync_routes(&self) -> Result<Vec<RouteStatus>> {
        let expected = self.expected_routes(&self.adapters.store.list_all().await?);
        self.adapters.proxy.sync(&expected).await
    }
}
