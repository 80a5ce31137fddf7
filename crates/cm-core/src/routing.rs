//! The route check: may this caller reach this container's app through the proxy, and where does
//! it listen? nginx asks it per request (`auth_request`), so it answers from the store and the
//! event-fed status view, never from the engine.
//!
//! Who is asking is decided before anything is looked up: a user token may reach only the URL's
//! own user, so a caller learns nothing about other users' containers (not even whether they
//! exist). Only the answer's upstream decides where nginx proxies; nothing a client sends can.

use std::net::SocketAddr;

use serde::Serialize;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(crate) fn denial_codes_read_back() {
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
