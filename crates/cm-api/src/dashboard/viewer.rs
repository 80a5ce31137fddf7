//! [`Viewer`]: a request with a live session, re-authenticated; [`Posted`]: a form POST whose
//! CSRF token was checked before the handler runs.

use std::time::Instant;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::web::{Bytes, Data};
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use cm_core::{Action, AuthorizedContainer, ErrorKind, Principal};
use futures_util::future::LocalBoxFuture;
use minijinja::{Value, context};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::render::{Chrome, May, PageError, html, render, see_other};
use super::views::to_value;
use crate::error::ErrorCode;
use crate::sessions::{Flash, SESSION_COOKIE, cookie, is_https, tokens_match};
use crate::state::AppState;

/// Someone logged in: the principal their credential stands for right now.
pub struct Viewer {
    state: Data<AppState>,
    session: String,
    /// Who is logged in.
    pub principal: Principal,
    /// The session's CSRF token.
    pub csrf: String,
    https: bool,
    /// The request, for what the audit trail learns while it is handled.
    request: HttpRequest,
}

/// A form POST of a logged-in viewer, its CSRF token checked.
pub struct Posted<T> {
    /// Who posted.
    pub viewer: Viewer,
    /// The form's fields.
    pub form: T,
}

/// The answer of a page handler.
pub type PageResult = Result<HttpResponse, PageError>;

/// The path the pages poll for statuses.
pub const STATUS_POLL_PATH: &str = "/ui/statuses";

/// The longest form body accepted.
const FORM_LIMIT: usize = 256 * 1024;

impl Viewer {
    /// The shared state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// True for the admin.
    pub fn is_admin(&self) -> bool {
        self.principal == Principal::Admin
    }

    /// What the viewer may do to the containers it sees.
    pub fn may(&self) -> May {
        let allowed = self.state.user_actions();
        let may = |action| self.is_admin() || allowed.allows(action);
        May {
            start: may(Action::StartContainer),
            stop: may(Action::StopContainer),
            restart: may(Action::RestartContainer),
            logs: may(Action::ReadLogs),
            delete: may(Action::DeleteContainer),
            purge: may(Action::PurgeData),
            add_ssh_key: may(Action::AddSshKey),
            remove_ssh_key: may(Action::RemoveSshKey),
        }
    }

    /// The session id (to update the session).
    pub fn session(&self) -> &str {
        &self.session
    }

    /// True when the request came over https.
    pub fn https(&self) -> bool {
        self.https
    }

    /// The navigation, with `active` marked.
    pub fn chrome(&self, active: &'static str) -> Chrome {
        Chrome {
            who: match &self.principal {
                Principal::Admin => "admin".to_owned(),
                Principal::User(user) => user.to_string(),
            },
            is_admin: self.is_admin(),
            may: self.may(),
            csrf: self.csrf.clone(),
            active,
        }
    }

    /// Renders a page (200) with the navigation and the queued messages.
    pub fn render(&self, active: &'static str, template: &str, page: Value) -> PageResult {
        self.render_status(StatusCode::OK, active, template, page)
    }

    /// Renders a page with a status.
    pub fn render_status(
        &self,
        status: StatusCode,
        active: &'static str,
        template: &str,
        page: Value,
    ) -> PageResult {
        let flashes = self.state.sessions.take_flashes(&self.session);
        let ctx = context! {
            chrome => to_value(self.chrome(active)),
            flashes => to_value(&flashes),
            ..page
        };
        Ok(html(status, render(template, ctx)))
    }

    /// Queues a message for the next page.
    pub fn flash(&self, flash: Flash) {
        self.state.sessions.flash(&self.session, flash);
    }

    /// Queues a message and answers 303 to `location`.
    pub fn redirect_with(&self, location: &str, flash: Flash) -> HttpResponse {
        let failed = flash.kind == "error";
        self.flash(flash);
        let mut response = see_other(location);
        if failed {
            // The audit trail records the action as failed (its answer is a redirect either way).
            response.extensions_mut().insert(crate::audit::Failed);
        }
        response
    }

    /// Refuses unless the viewer may do `action` (on a container of `owner`): a 403 page.
    pub fn require(&self, action: Action, owner: Option<&cm_core::UserId>) -> Result<(), PageError> {
        self.principal
            .authorize(action, owner, self.state().user_actions())
            .map_err(|e| self.fail(e, "containers"))
    }

    /// Finds a container as the viewer may see it (a user only among their own, so another
    /// user's container looks missing) and checks that the viewer may do `action` on it, as in
    /// the REST handlers. The audit trail records it as the form's target without resolving it
    /// again.
    pub async fn container(&self, reference: &str, action: Action) -> Result<AuthorizedContainer, PageError> {
        let container = self
            .state
            .manager
            .authorized(&self.principal, reference, action)
            .await
            .map_err(|e| self.fail(e, "containers"))?;
        actix_web::HttpMessage::extensions_mut(&self.request).insert(crate::audit::Target::of(&container));
        Ok(container)
    }

    /// An error page for a failed use case, with the navigation.
    pub fn fail(&self, err: cm_core::Error, active: &'static str) -> PageError {
        if err.kind() == ErrorKind::Unauthorized {
            return PageError::Login {
                clear_cookie: true,
                https: self.https,
            };
        }
        let status = ErrorCode::of_kind(err.kind()).status();
        if err.kind() == ErrorKind::Internal {
            tracing::error!(error = ?err, "dashboard request failed");
        }
        PageError::page(status, err.message(), Some(self.chrome(active)))
    }

    /// A page refusing the request with `status`.
    pub fn refuse(&self, status: StatusCode, message: impl Into<String>) -> PageError {
        PageError::page(status, message, Some(self.chrome("")))
    }

    async fn extract(req: HttpRequest) -> Result<Viewer, PageError> {
        let state = req
            .app_data::<Data<AppState>>()
            .cloned()
            .ok_or_else(|| PageError::internal("the application state is missing"))?;
        let https = is_https(&req);
        let scripted = req.path().starts_with("/ui/");
        let ended = |had_cookie: bool| {
            if scripted {
                PageError::Json {
                    status: StatusCode::UNAUTHORIZED,
                    message: "your session ended: log in again".to_owned(),
                }
            } else {
                PageError::Login {
                    clear_cookie: had_cookie,
                    https,
                }
            }
        };
        let Some(id) = cookie(&req, SESSION_COOKIE).filter(|id| !id.is_empty()) else {
            return Err(ended(false));
        };
        // The status polling of an open page does not count as activity.
        let snapshot = if req.path() == STATUS_POLL_PATH {
            state.sessions.peek(&id, Instant::now())
        } else {
            state.sessions.get(&id, Instant::now())
        };
        let Some(snapshot) = snapshot else {
            return Err(ended(true));
        };
        match state.auth.authenticate(&snapshot.secret).await {
            Ok(principal) if principal == snapshot.principal => Ok(Viewer {
                state,
                session: id,
                principal,
                csrf: snapshot.csrf,
                https,
                request: req,
            }),
            Ok(_) => {
                state.sessions.destroy(&id);
                Err(ended(true))
            }
            Err(e) if e.kind() == ErrorKind::Unauthorized => {
                // The token was revoked or the admin key rotated: the session ends.
                state.sessions.destroy(&id);
                Err(ended(true))
            }
            Err(e) => {
                tracing::warn!(error = ?e, "dashboard session check failed");
                Err(PageError::page(
                    ErrorCode::of_kind(e.kind()).status(),
                    e.message(),
                    None,
                ))
            }
        }
    }
}

impl FromRequest for Viewer {
    type Error = PageError;
    type Future = LocalBoxFuture<'static, Result<Self, PageError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(Viewer::extract(req.clone()))
    }
}

#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

impl<T: DeserializeOwned + 'static> FromRequest for Posted<T> {
    type Error = PageError;
    type Future = LocalBoxFuture<'static, Result<Self, PageError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let body = Bytes::from_request(&req, payload);
        Box::pin(async move {
            let viewer = Viewer::extract(req.clone()).await?;
            let body = body
                .await
                .map_err(|_| viewer.refuse(StatusCode::BAD_REQUEST, "the form could not be read"))?;
            if body.len() > FORM_LIMIT {
                return Err(viewer.refuse(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large"));
            }
            let presented = serde_urlencoded::from_bytes::<CsrfField>(&body)
                .map(|f| f.csrf)
                .unwrap_or_default();
            if !tokens_match(&viewer.csrf, &presented) {
                tracing::warn!("dashboard form without a valid csrf token refused");
                return Err(viewer.refuse(
                    StatusCode::FORBIDDEN,
                    "this form has no valid security token (it may come from another site or an old page): \
                     reload the page and try again",
                ));
            }
            // What the audit trail records of this form once it is answered.
            let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
            let params = fields
                .into_iter()
                .filter(|(name, _)| name != "csrf")
                .map(|(name, value)| (name, serde_json::Value::String(value)))
                .collect();
            actix_web::HttpMessage::extensions_mut(&req).insert(crate::audit::Caller {
                principal: viewer.principal.clone(),
                params: serde_json::Value::Object(params),
            });
            let form = serde_urlencoded::from_bytes::<T>(&body).map_err(|e| {
                viewer.refuse(
                    StatusCode::BAD_REQUEST,
                    format!("the form could not be read: {e}"),
                )
            })?;
            Ok(Posted { viewer, form })
        })
    }
}
