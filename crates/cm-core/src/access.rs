//! A container a caller may act on: resolved once from the caller's reference and authorized.
//!
//! Frontends turn a caller's reference into an [`AuthorizedContainer`] with
//! [`Manager::authorized`](crate::Manager::authorized); every use case on one container takes it
//! instead of a string, so a request resolves its container once, and no use case can act on a
//! container nobody checked. Each use case still checks its own action against the handle (no I/O:
//! the principal and the real owner are in it), so a handle made for reading can not delete.

use crate::actions::{Action, UserActions};
use crate::auth::Principal;
use crate::error::Result;
use crate::names::ContainerName;
use crate::spec::ContainerSpec;

/// A resolved container and the principal it was resolved for. Only cm-core makes one.
#[derive(Debug, Clone)]
pub struct AuthorizedContainer {
    principal: Principal,
    spec: ContainerSpec,
}

impl AuthorizedContainer {
    /// A handle for `principal`, whose authorization the caller has just checked.
    pub(crate) fn new(principal: Principal, spec: ContainerSpec) -> Self {
        AuthorizedContainer { principal, spec }
    }

    /// A handle for cm's own work (waking an idle container, adopting one): acts as the admin.
    pub(crate) fn system(spec: ContainerSpec) -> Self {
        AuthorizedContainer::new(Principal::Admin, spec)
    }

    /// The record as it was when resolved (its status is the stored one).
    pub fn spec(&self) -> &ContainerSpec {
        &self.spec
    }

    /// The container's name.
    pub fn name(&self) -> &ContainerName {
        &self.spec.container_name
    }

    /// Who the handle acts for.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The record, given up.
    pub fn into_spec(self) -> ContainerSpec {
        self.spec
    }

    /// The record, when the principal may do `action` on it (see [`Principal::authorize`]).
    pub(crate) fn permit(&self, action: Action, allowed: &UserActions) -> Result<&ContainerSpec> {
        self.principal
            .authorize(action, Some(&self.spec.user_id), allowed)?;
        Ok(&self.spec)
    }
}
