//! The route check (`Manager::check_route`): may this caller reach this app, and where does it
//! listen.

use std::net::SocketAddr;

use crate::auth::{Action, Principal};
use crate::config::Access;
use crate::error::Result;
use crate::manager::Manager;
use crate::names::{ContainerName, TypeName, UserId};
use crate::spec::ContainerStatus;

use crate::routing::{RouteAnswer, RouteDenial};

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

    pub(crate) async fn check_route_unmeasured(
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
            upstream: SocketAddr::from((self.ports_address(spec.node.as_ref()).await, spec.port)),
            strip_prefix,
        })
    }
}
