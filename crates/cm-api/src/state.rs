//! The state every handler shares: the use cases, the credentials, the background reconciler,
//! the dashboard's sessions, the sign-in limiter, the audit trail and the kept listings.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use actix_web::HttpRequest;
use cm_core::{Auth, Manager, Principal, Secret, StatusView};

use crate::attempts::Attempts;
use crate::background::{DEFAULT_RECONCILE_INTERVAL, Reconciler};
use crate::error::ApiError;

/// What the handlers work with: the use cases, the credentials, and the background reconciler.
#[derive(Clone)]
pub struct AppState {
    /// The use cases.
    pub manager: Manager,
    /// Authentication and tokens.
    pub auth: Auth,
    /// The reconciler and its last report.
    pub reconciler: Arc<Reconciler>,
    /// The event-fed status view, when the server runs one.
    pub statuses: Option<Arc<StatusView>>,
    /// The dashboard's sessions (shared by every worker of the server).
    pub(crate) sessions: Arc<crate::sessions::Sessions>,
    /// Failed sign-ins per client address (shared by the API, the dashboard and the gate).
    pub(crate) attempts: Arc<Attempts>,
    /// The audit trail, when the server keeps one.
    pub(crate) auditor: Option<cm_core::Auditor>,
    /// `list_containers` answers kept while nothing changes.
    pub(crate) listings: Arc<crate::listings::ListingAnswers>,
}

impl AppState {
    /// State over a manager and an authentication.
    pub fn new(manager: Manager, auth: Auth) -> Self {
        let attempts = Arc::new(Attempts::new(manager.config().limits.auth_failures_per_minute));
        AppState {
            manager,
            auth,
            reconciler: Reconciler::new(DEFAULT_RECONCILE_INTERVAL),
            statuses: None,
            sessions: Arc::default(),
            attempts,
            auditor: None,
            listings: Arc::default(),
        }
    }

    /// State that records every change and sign-in in `auditor`.
    pub fn with_auditor(mut self, auditor: cm_core::Auditor) -> Self {
        self.auditor = Some(auditor);
        self
    }

    /// Writes an audit entry, when the server keeps a trail.
    pub(crate) async fn audit(&self, entry: cm_core::AuditEntry) {
        if let Some(auditor) = &self.auditor {
            auditor.record(entry).await;
        }
    }

    /// Checks a presented credential for a caller at `address` (`None`: unknown, not limited),
    /// counting failures per address: over the limit, 429 without checking anything.
    pub async fn authenticate(
        &self,
        presented: &Secret,
        address: Option<IpAddr>,
    ) -> Result<Principal, ApiError> {
        let slot = match address {
            Some(address) => Some(
                self.attempts
                    .begin(address, Instant::now())
                    .map_err(ApiError::rate_limited)?,
            ),
            None => None,
        };
        let checked = self.auth.authenticate(presented).await;
        // Only a wrong credential counts: a dependency that could not check it (the ToolBox
        // worker, the store) is not the caller's failure.
        let wrong = matches!(&checked, Err(e) if e.kind() == cm_core::ErrorKind::Unauthorized);
        if let Some(slot) = slot
            && !wrong
        {
            slot.succeeded();
        }
        Ok(checked?)
    }

    /// The ToolBox worker's session cookie (`tb_session`) of the request, when the configuration
    /// lets the worker vouch for it (`[auth.toolbox] validate_url`); otherwise it is nobody's
    /// business here and never read.
    pub(crate) fn toolbox_session(&self, req: &HttpRequest) -> Option<Secret> {
        let toolbox = self.manager.config().toolbox_identity.as_ref()?;
        if !toolbox.accepts_session_cookie() {
            return None;
        }
        crate::sessions::cookie_values(req, cm_core::ToolboxIdentity::SESSION_COOKIE)
            .into_iter()
            .find(|value| !value.is_empty())
            .map(Secret::new)
    }

    /// State whose listings come from `statuses` (fed from the engine's events) and whose
    /// reconciler is `reconciler`; starts neither (see [`Reconciler::spawn`]).
    pub fn with_background(mut self, reconciler: Arc<Reconciler>, statuses: Arc<StatusView>) -> Self {
        self.manager = self.manager.with_status_view(statuses.clone());
        self.reconciler = reconciler;
        self.statuses = Some(statuses);
        self
    }

    /// What user tokens may do to their own containers (`[auth] user_actions`).
    pub fn user_actions(&self) -> &cm_core::UserActions {
        &self.manager.config().user_actions
    }
}
