//! The route check: may this caller reach this container's app through the proxy, and where does
//! it listen? nginx asks it per request (`auth_request`), so it answers from the store and the
//! event-fed status view, never from the engine.
//!
//! Who is asking is decided before anything is looked up: a user token may reach only the URL's
//! own user, so a caller learns nothing about other users' containers (not even whether they
//! exist). Only the answer's upstream decides where nginx proxies; nothing a client sends can.

use std::net::{Ipv4Addr, SocketAddr};

use serde::Serialize;

use crate::auth::{Action, Principal};
use crate::config::Access;
use crate::error::Result;
use crate::manager::Manager;
use crate::names::{ContainerName, TypeName, UserId};
use crate::spec::ContainerStatus;

/// What the route check decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum RouteAnswer {
    /// Proxy to `upstream` (the container's HTTP port on loopback).
    Allow {
        /// `127.0.0.1:{port}`.
        upstream: SocketAddr,
        /// Strip `/container/{user}/{type}` before proxying.
        strip_prefix: bool,
    },
    /// Refuse, and why.
    Deny {
        /// The reason.
        denial: RouteDenial,
    },
}

/// Why a route check refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteDenial {
    /// No credential, or an expired or revoked one: sign in (401).
    SignIn,
    /// The credential belongs to another user (403).
    Forbidden,
    /// No such container (404).
    Unknown,
    /// The container exists but does not run (503).
    NotRunning(ContainerStatus),
    /// The container was idle-stopped and is starting: its app did not answer within the wake's
    /// wait (503, a page that asks again).
    Starting,
}

impl RouteDenial {
    /// A short machine-readable word for the reason (`sign_in`, `forbidden`, `unknown`,
    /// `not_running`, `starting`), as nginx passes it on.
    pub fn code(&self) -> &'static str {
        match self {
            RouteDenial::SignIn => "sign_in",
            RouteDenial::Forbidden => "forbidden",
            RouteDenial::Unknown => "unknown",
            RouteDenial::NotRunning(_) => "not_running",
            RouteDenial::Starting => "starting",
        }
    }

    /// Reads [`RouteDenial::code`] back (`not_running` with an unknown status).
    pub fn from_code(code: &str) -> Option<RouteDenial> {
        Some(match code {
            "sign_in" => RouteDenial::SignIn,
            "forbidden" => RouteDenial::Forbidden,
            "unknown" => RouteDenial::Unknown,
            "not_running" => RouteDenial::NotRunning(ContainerStatus::Unknown),
            "starting" => RouteDenial::Starting,
            _ => return None,
        })
    }
}

impl Manager {
    /// Decides whether `caller` (`None`: no valid credential) may reach the app of `user`'s
    /// container of type `kind`, and where it listens.
    ///
    /// Order matters: the caller is checked against the URL's user before the store is asked, so
    /// the answer never tells a stranger whether a container exists. Public types skip the caller
    /// check. A container the status view does not know yet (just created) or that is being
    /// created is let through: nginx then answers 502 until the app listens.
    pub async fn check_route(
        &self,
        caller: Option<&Principal>,
        user: &UserId,
        kind: &TypeName,
    ) -> Result<RouteAnswer> {
        let answer = self.check_route_unmeasured(caller, user, kind).await;
        self.metrics().route_check(match &answer {
            Ok(RouteAnswer::Allow { .. }) => "allow",
            Ok(RouteAnswer::Deny { denial }) => denial.code(),
            Err(_) => "error",
        });
        answer
    }

    async fn check_route_unmeasured(
        &self,
        caller: Option<&Principal>,
        user: &UserId,
        kind: &TypeName,
    ) -> Result<RouteAnswer> {
        let deny = |denial| Ok(RouteAnswer::Deny { denial });
        // A type removed from the configuration keeps the safe default: owner only.
        let access = self.config().types.get(kind).map_or(Access::Owner, |t| t.access);
        if access == Access::Owner {
            match caller {
                None => return deny(RouteDenial::SignIn),
                Some(principal) => {
                    if principal
                        .authorize(Action::ReachApp, Some(user), &self.config().user_actions)
                        .is_err()
                    {
                        return deny(RouteDenial::Forbidden);
                    }
                }
            }
        }
        let name = ContainerName::of(user, kind);
        // `{user}_{type}` can be read more than one way (both may hold `_`): the record must be
        // of exactly this user and type, or `alice_cli/v4` would reach `alice`'s `cli_v4`.
        let spec = match self.adapters().store.get_by_name(&name).await? {
            Some(spec) if &spec.user_id == user && &spec.container_type == kind => spec,
            _ => return deny(RouteDenial::Unknown),
        };
        let status = self.live_status(&spec.container_id);
        match status {
            // Unknown to the view (just created, or the view is not live) or created but not yet
            // started: let nginx try; it answers 502 while nothing listens.
            None | Some(ContainerStatus::Running | ContainerStatus::Created | ContainerStatus::Missing) => {}
            Some(other) => return deny(RouteDenial::NotRunning(other)),
        }
        let strip_prefix = self.config().types.get(kind).is_none_or(|t| t.strip_prefix);
        self.note_activity(&name, kind);
        Ok(RouteAnswer::Allow {
            upstream: SocketAddr::from((Ipv4Addr::LOCALHOST, spec.port)),
            strip_prefix,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denial_codes_read_back() {
        for denial in [
            RouteDenial::SignIn,
            RouteDenial::Forbidden,
            RouteDenial::Unknown,
            RouteDenial::NotRunning(ContainerStatus::Unknown),
            RouteDenial::Starting,
        ] {
            assert_eq!(RouteDenial::from_code(denial.code()), Some(denial));
        }
        assert_eq!(RouteDenial::from_code("allow"), None);
    }
}
