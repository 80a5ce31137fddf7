//! The API's part of the audit trail. After every call to an endpoint that changes something,
//! one entry: who (from the credential the call was authenticated with), what (the function and
//! its parameters, without secrets), on what (the container, user or token it names, and whose
//! that is), the result and the client's address. A refused credential is recorded as a failed
//! sign-in. Reads are not recorded.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web::Data;
use actix_web::{Error, HttpMessage};
use cm_core::{Actor, AuditEntry, AuditSource, Principal, UserId};
use serde_json::Value;

use crate::call::AppState;
use crate::routes::ENDPOINTS;

/// Who an authenticated call came from and what it sent; the `Call` extractor leaves it in the
/// request for [`record`].
#[derive(Clone)]
pub(crate) struct Caller {
    pub(crate) principal: Principal,
    pub(crate) params: Value,
}

/// The actor of a principal.
pub(crate) fn actor_of(principal: &Principal) -> Actor {
    match principal {
        Principal::Admin => Actor::Admin,
        Principal::User(user) => Actor::User(user.clone()),
    }
}

/// The stable error code of an HTTP status (the `error.code` the answer carried).
pub(crate) fn code_of(status: actix_web::http::StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        413 => "payload_too_large",
        422 => "invalid_input",
        429 => "rate_limited",
        503 => "unavailable",
        504 => "timeout",
        507 => "exhausted",
        _ => "internal",
    }
}

/// Records the call once it is answered (a middleware of the API's scope).
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let state = req.app_data::<Data<AppState>>().cloned();
    let function = req.path().rsplit('/').next().unwrap_or_default().to_owned();
    let changes = ENDPOINTS.iter().any(|e| e.name == function && !e.read);
    let address = req.peer_addr().map(|a| a.ip());
    let res = next.call(req).await?.map_into_boxed_body();
    let Some(state) = state.filter(|s| s.auditor.is_some()) else {
        return Ok(res);
    };
    let status = res.status();
    let caller = res.request().extensions().get::<Caller>().cloned();
    let entry = match caller {
        Some(caller) if changes => {
            let mut entry =
                AuditEntry::new(actor_of(&caller.principal), AuditSource::Api, &function).from(address);
            if let Some((target, subject)) = target_of(&state, &function, &caller.params).await {
                entry = entry.on(target, subject.as_ref());
            }
            entry = entry.with_params(caller.params);
            if status.is_success() {
                entry
            } else {
                entry.failed(code_of(status))
            }
        }
        None if status == actix_web::http::StatusCode::UNAUTHORIZED => {
            AuditEntry::new(Actor::Anonymous, AuditSource::Api, "sign_in")
                .on(function, None)
                .failed("unauthorized")
                .from(address)
        }
        _ => return Ok(res),
    };
    state.audit(entry).await;
    Ok(res)
}

/// What a call acts on: the container it names or creates (by its name, and its owner), else
/// the user or token it names.
async fn target_of(state: &AppState, function: &str, params: &Value) -> Option<(String, Option<UserId>)> {
    let text = |name: &str| params.get(name).and_then(Value::as_str).map(str::trim);
    if function == "create_container"
        && let Some(user) = text("user_id").and_then(|u| UserId::parse(u).ok())
    {
        // The type defaults as in the original.
        let kind = text("container_type").unwrap_or("cli_v4");
        if let Ok(kind) = cm_core::TypeName::parse(kind) {
            return Some((cm_core::ContainerName::of(&user, &kind).to_string(), Some(user)));
        }
    }
    if let Some(reference) = text("container_id").or_else(|| text("container_name")) {
        return Some(match state.manager.resolve(reference).await {
            Ok(spec) => (spec.container_name.to_string(), Some(spec.user_id)),
            // Gone (a delete), or never there: as the caller named it.
            Err(_) => (reference.to_owned(), None),
        });
    }
    if let Some(user) = text("user_id") {
        return Some((user.to_owned(), UserId::parse(user).ok()));
    }
    text("token_id").map(|token| (token.to_owned(), None))
}
