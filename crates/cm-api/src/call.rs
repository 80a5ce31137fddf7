//! [`Call`]: an authenticated request with its parameters.
//!
//! Authentication happens here, once: the credential comes from `Authorization: Bearer` or, for
//! compatibility with the original API, from the discouraged `admin_key` parameter, or, with
//! `[auth.toolbox] validate_url`, from ToolBox's `tb_session` cookie (same-origin requests only),
//! and is checked only through [`cm_core::Auth`] (hashes, constant time; a ToolBox credential by
//! its verifier). Authorization happens in the handlers, after the container is resolved,
//! through [`cm_core::Principal::authorize`].

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::Data;
use actix_web::{FromRequest, HttpRequest};
use cm_core::{Action, AuthorizedContainer, Principal, Secret};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;

use crate::error::{ApiError, ErrorCode};
use crate::params::Params;
use crate::state::AppState;

/// The largest request body accepted (parameters only; nothing is uploaded through the API).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// An authenticated request: who calls, and the parameters they sent.
pub struct Call {
    /// Who is calling.
    pub principal: Principal,
    /// The parameters from the query string and the body (without `admin_key`).
    pub params: Params,
    /// The credential it signed in with, for answers that outlive the request (event streams end
    /// once it stops signing in).
    pub(crate) credential: Secret,
    /// The request, for what the audit trail learns while the call is handled.
    request: HttpRequest,
}

impl Call {
    /// The container `reference` names, resolved as this caller may see it and authorized for
    /// `action`, once per call: a user token resolves only among its own user's containers, so
    /// another user's container answers exactly like a missing one; the rule then sees the real
    /// owner. The audit trail records it as the call's target (by name and owner) without
    /// resolving it again, even when the call deletes it.
    pub async fn container(
        &self,
        state: &AppState,
        reference: &str,
        action: Action,
    ) -> Result<AuthorizedContainer, ApiError> {
        let container = state
            .manager
            .authorized(&self.principal, reference, action)
            .await?;
        Ok(self.target(container))
    }

    /// Records a handle cm-core gave (such as an item of [`cm_core::Manager::ssh_containers_for`])
    /// as the call's audit target, and hands it back.
    pub fn target(&self, container: AuthorizedContainer) -> AuthorizedContainer {
        actix_web::HttpMessage::extensions_mut(&self.request).insert(crate::audit::Target::of(&container));
        container
    }
}

impl FromRequest for Call {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let state = req
                .app_data::<Data<AppState>>()
                .cloned()
                .ok_or_else(|| ApiError::internal("the application state is missing"))?;
            let body = read_body(&req, &mut payload).await?;
            let content_type = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            let mut params = Params::from_parts(req.query_string(), content_type, &body)?;
            // The answer's shape, for the ToolBox mode's middleware (before anything can fail).
            if let Some(text) = params.take_envelope()? {
                let envelope = cm_core::Envelope::parse(&text)
                    .map_err(|e| ApiError::from(e).for_field(crate::toolbox::ENVELOPE_PARAM))?;
                actix_web::HttpMessage::extensions_mut(&req).insert(envelope);
            }
            let param_key = params.take_admin_key().map_err(|_| {
                ApiError::malformed_credentials("the admin_key parameter must be given once, as a string")
            })?;
            let presented = match credential(&req, param_key)? {
                Some(presented) => presented,
                None => session_credential(&state, &req).ok_or_else(ApiError::missing_credentials)??,
            };
            let address = req.peer_addr().map(|a| a.ip());
            let principal = state.authenticate(&presented, address).await?;
            // What the audit trail records of this call once it is answered (see `audit.rs`).
            actix_web::HttpMessage::extensions_mut(&req).insert(crate::audit::Caller {
                principal: principal.clone(),
                params: params.to_json(),
            });
            Ok(Call {
                principal,
                params,
                credential: presented,
                request: req,
            })
        })
    }
}

/// The bearer credential of `Authorization`, `None` without the header.
pub(crate) fn bearer(req: &HttpRequest) -> Result<Option<Secret>, ApiError> {
    credential(req, None)
}

/// The credential: the bearer header, else the `admin_key` parameter; `None` without either.
fn credential(req: &HttpRequest, param_key: Option<String>) -> Result<Option<Secret>, ApiError> {
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let text = value
            .to_str()
            .map_err(|_| ApiError::malformed_credentials("the Authorization header is not readable text"))?;
        let (scheme, token) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(ApiError::malformed_credentials(
                "the Authorization header must be 'Bearer <admin key or user token>'",
            ));
        }
        return Ok(Some(Secret::new(token.trim())));
    }
    Ok(param_key.filter(|key| !key.trim().is_empty()).map(Secret::new))
}

/// ToolBox's session cookie as the credential, for a request without another one: `None`
/// without the cookie (or without `[auth.toolbox] validate_url`); refused (403) when the request
/// came from another site's page, which a browser would send the cookie along with.
fn session_credential(state: &AppState, req: &HttpRequest) -> Option<Result<Secret, ApiError>> {
    // Only where no tenant's app shares the API's origin (`session_cookie_on_api`).
    let on_api = state
        .manager
        .config()
        .toolbox_identity
        .as_ref()
        .is_some_and(|t| t.session_cookie_on_api);
    if !on_api {
        return None;
    }
    let session = state.toolbox_session(req)?;
    if !crate::sessions::same_origin(req) {
        return Some(Err(ApiError::new(
            ErrorCode::Forbidden,
            "the ToolBox session cookie is accepted only from this site's own pages: \
             programs send 'Authorization: Bearer <token>'",
        )));
    }
    Some(Ok(session))
}

async fn read_body(req: &HttpRequest, payload: &mut Payload) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the body is larger than {BODY_LIMIT} bytes"),
        )
    };
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > BODY_LIMIT) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(announced.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading the body failed: {e}")))?;
        if body.len() + chunk.len() > BODY_LIMIT {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
