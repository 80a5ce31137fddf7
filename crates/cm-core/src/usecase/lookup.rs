//! Finding containers: by name, id or unique id prefix (scoped to a user for a user), with
//! their live statuses, and listings.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::access::AuthorizedContainer;
use crate::auth::{Action, Principal};

use crate::error::{Error, Result};

use crate::names::{ContainerName, UserId, quote};

use crate::ports::ObservedContainer;

use crate::spec::{ContainerSpec, ContainerStatus};

use crate::manager::Manager;

/// The state a listing was made from (see [`Manager::listing_revision`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListingRevision {
    /// The store's revision.
    pub store: u64,
    /// The status view's generation.
    pub statuses: u64,
}

/// The containers of a listing and whether their statuses are live.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Listing {
    /// The records, with live statuses when `stale` is `None`.
    pub containers: Vec<ContainerSpec>,
    /// Why the statuses are the stored ones (the engine could not be asked).
    pub stale: Option<String>,
}

impl Manager {
    /// Finds a container by full id, unique id prefix, or name, among every user's containers.
    pub(crate) async fn resolve(&self, reference: &str) -> Result<ContainerSpec> {
        self.resolve_among(reference, None).await
    }

    /// Finds a container the way `principal` may see it: the admin among every container, a user
    /// only among their own. Another user's container is then indistinguishable from a missing
    /// one (the same error, word for word), and an ambiguous prefix names only the caller's own.
    pub(crate) async fn resolve_for(&self, principal: &Principal, reference: &str) -> Result<ContainerSpec> {
        self.resolve_among(reference, principal.scope()).await
    }

    /// Resolves a reference as `principal` may see it ([`Manager::resolve_for`]) and checks that
    /// it may do `action` on the container ([`Principal::authorize`], against the real owner):
    /// the one way every frontend turns a caller's reference into a container, and the only way
    /// to the handle that every use case on one container takes.
    pub async fn authorized(
        &self,
        principal: &Principal,
        reference: &str,
        action: Action,
    ) -> Result<AuthorizedContainer> {
        let spec = self
            .resolve_for(principal, reference)
            .await
            .map_err(|e| e.for_field("container_id"))?;
        principal.authorize(action, Some(&spec.user_id), &self.config().user_actions)?;
        Ok(AuthorizedContainer::new(principal.clone(), spec))
    }

    /// A handle to a record the caller already holds (an item of a listing made for `principal`),
    /// when `principal` may do `action` on it: authorized like [`Manager::authorized`], without
    /// resolving again.
    pub fn authorize_record(
        &self,
        principal: &Principal,
        spec: ContainerSpec,
        action: Action,
    ) -> Result<AuthorizedContainer> {
        principal.authorize(action, Some(&spec.user_id), &self.config().user_actions)?;
        Ok(AuthorizedContainer::new(principal.clone(), spec))
    }

    /// The handle's record, when its principal may do `action` (each use case asks for its own).
    pub(crate) fn permitted<'a>(
        &self,
        container: &'a AuthorizedContainer,
        action: Action,
    ) -> Result<&'a ContainerSpec> {
        container.permit(action, &self.config().user_actions)
    }

    pub(crate) async fn resolve_among(
        &self,
        reference: &str,
        scope: Option<&UserId>,
    ) -> Result<ContainerSpec> {
        let store = &self.adapters.store;
        let reference = reference.trim();
        let visible = |spec: &ContainerSpec| scope.is_none_or(|user| &spec.user_id == user);
        if let Ok(name) = ContainerName::parse(reference)
            && let Some(spec) = store.get_by_name(&name).await?
            && visible(&spec)
        {
            return Ok(spec);
        }
        if let Some(spec) = store.get(reference).await?
            && visible(&spec)
        {
            return Ok(spec);
        }
        let is_prefix = !reference.is_empty() && reference.chars().all(|c| c.is_ascii_hexdigit());
        if is_prefix {
            let candidates = match scope {
                Some(user) => store.list_user(user).await?,
                None => store.list_all().await?,
            };
            let matches: Vec<ContainerSpec> = candidates
                .into_iter()
                .filter(|s| s.container_id.starts_with(reference))
                .collect();
            match matches.len() {
                1 => return Ok(matches.into_iter().next().unwrap_or_else(|| unreachable!())),
                0 => {}
                _ => {
                    let names: Vec<&str> = matches.iter().map(|s| s.container_name.as_str()).collect();
                    return Err(Error::conflict(format!(
                        "id prefix {} is ambiguous: it matches {}",
                        quote(reference),
                        names.join(", ")
                    )));
                }
            }
        }
        Err(Error::not_found(format!(
            "no container {}: give a full id, a unique id prefix or a name such as usr_123_cli_v4",
            quote(reference)
        )))
    }

    /// One container with its live status.
    pub async fn get(&self, container: &AuthorizedContainer) -> Result<ContainerSpec> {
        let spec = self.permitted(container, Action::ReadContainer)?;
        self.with_status(spec.clone()).await
    }

    /// A container's status from the event-fed view, when there is a live one (no engine call).
    pub(crate) fn live_status(&self, container_id: &str) -> Option<ContainerStatus> {
        self.status_view
            .as_ref()
            .and_then(|v| v.snapshot_of(container_id))
    }

    /// A resolved record with its live status: from the event-fed view when it is live (no engine
    /// call), else from one inspect.
    pub async fn with_status(&self, mut spec: ContainerSpec) -> Result<ContainerSpec> {
        if let Some(statuses) = self
            .status_view
            .as_ref()
            .and_then(|v| v.snapshot_of(&spec.container_id))
        {
            spec.status = statuses;
            return Ok(spec);
        }
        spec.status = self
            .adapters
            .runtime
            .inspect_container(&spec.container_id)
            .await?
            .map_or(ContainerStatus::Missing, |c| c.status);
        Ok(spec)
    }

    /// What listings are made of right now, while the status view is live and the store can
    /// tell its revision: an equal revision means an equal listing, so a server may answer again
    /// what it answered before (cm-api keeps its listing answers by it). Taken before the listing
    /// it keys, so a change in between only makes the next request build anew.
    pub async fn listing_revision(&self) -> Result<Option<ListingRevision>> {
        let Some(view) = self.status_view.as_ref().filter(|v| v.is_live()) else {
            return Ok(None);
        };
        let statuses = view.generation();
        Ok(self
            .adapters
            .store
            .revision()
            .await?
            .map(|store| ListingRevision { store, statuses }))
    }

    /// Every container, with live statuses from one engine call.
    pub async fn list_all(&self) -> Result<Listing> {
        let specs = self.adapters.store.list_all().await?;
        Ok(self.with_live_status(specs, &BTreeMap::new()).await)
    }

    /// One user's containers, with live statuses.
    pub async fn list_user(&self, user: &UserId) -> Result<Listing> {
        let specs = self.adapters.store.list_user(user).await?;
        let filter = BTreeMap::from([(crate::spec::labels::USER_ID.to_owned(), user.to_string())]);
        Ok(self.with_live_status(specs, &filter).await)
    }

    pub(crate) async fn with_live_status(
        &self,
        mut specs: Vec<ContainerSpec>,
        filter: &BTreeMap<String, String>,
    ) -> Listing {
        if let Some(statuses) = self.status_view.as_ref().and_then(|v| v.snapshot()) {
            for spec in &mut specs {
                spec.status = statuses
                    .get(&spec.container_id)
                    .copied()
                    .unwrap_or(ContainerStatus::Missing);
            }
            return Listing {
                containers: specs,
                stale: None,
            };
        }
        match self.adapters.runtime.list_managed(filter).await {
            Ok(observed) => {
                let by_id: BTreeMap<&str, &ObservedContainer> =
                    observed.iter().map(|c| (c.id.as_str(), c)).collect();
                for spec in &mut specs {
                    spec.status = by_id
                        .get(spec.container_id.as_str())
                        .map_or(ContainerStatus::Missing, |c| c.status);
                }
                Listing {
                    containers: specs,
                    stale: None,
                }
            }
            Err(e) => Listing {
                containers: specs,
                stale: Some(e.message().to_owned()),
            },
        }
    }

    /// Ports that are leased in the store, for reports.
    pub async fn leased_ports(&self) -> Result<BTreeSet<u16>> {
        Ok(self
            .adapters
            .store
            .port_leases()
            .await?
            .into_iter()
            .map(|l| l.port)
            .collect())
    }
}
