//! The API's part of the audit trail. After every call to an endpoint that changes something,
//! one entry: who (from the credential the call was authenticated with), what (the function and
//! its parameters, without secrets), on what (the container, user or token it names, and whose
//! that is), the result and the client's address. A refused credential is recorded as a failed
//! sign-in. Reads are not recorded. The dashboard's forms are recorded the same way
//! ([`record_dashboard`]), its sign-ins and the route sign-ins where they happen.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web::Data;
use actix_web::{Error, HttpMessage};
use cm_core::{Actor, AuditEntry, AuditSource, AuthorizedContainer, Principal, UserId, name_like};
use serde_json::Value;

use crate::state::AppState;

/// Who an authenticated call came from and what it sent; the `Call` extractor leaves it in the
/// request for [`record`].
#[derive(Clone)]
pub(crate) struct Caller {
    pub(crate) principal: Principal,
    pub(crate) params: Value,
}

/// The container a call acted on, as its handler resolved it (left in the request by
/// `Call::container`), so the entry names it and its owner without resolving it again.
#[derive(Clone)]
pub(crate) struct Target {
    name: String,
    owner: UserId,
}

impl Target {
    pub(crate) fn of(container: &AuthorizedContainer) -> Self {
        Target {
            name: container.name().to_string(),
            owner: container.spec().user_id.clone(),
        }
    }

    /// How the entry names it: its name and its owner.
    fn named(self) -> (String, Option<UserId>) {
        (self.name, Some(self.owner))
    }
}

/// Marks an answer whose action failed although its status does not say so (a dashboard form
/// answers with a redirect and a message either way).
pub(crate) struct Failed;

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

/// Records the call once it is answered (the API scope's middleware, `routes::audited`, which
/// says whether the endpoint `changes` anything: only those, and refusals, are recorded).
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    changes: bool,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let state = req.app_data::<Data<AppState>>().cloned();
    let function = req.path().rsplit('/').next().unwrap_or_default().to_owned();
    let address = req.peer_addr().map(|a| a.ip());
    let res = next.call(req).await?.map_into_boxed_body();
    let Some(state) = state.filter(|s| s.auditor.is_some()) else {
        return Ok(res);
    };
    let status = res.status();
    let caller = res.request().extensions().get::<Caller>().cloned();
    let resolved = res.request().extensions().get::<Target>().cloned();
    let entry = match caller {
        Some(caller) if changes => {
            let mut entry =
                AuditEntry::new(actor_of(&caller.principal), AuditSource::Api, &function).from(address);
            let target = match resolved {
                Some(target) => Some(target.named()),
                None => target_of(&state, &function, &caller.params).await,
            };
            if let Some((target, subject)) = target {
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

/// The action of a dashboard form, by its route.
fn dashboard_action(pattern: &str) -> Option<&'static str> {
    Some(match pattern {
        "/create" => "create_container",
        "/containers/{name}/start" => "start_container",
        "/containers/{name}/stop" => "stop_container",
        "/containers/{name}/restart" => "restart_container",
        "/containers/{name}/delete" => "delete_container",
        "/containers/{name}/move" => "move_container",
        "/users/tokens" => "create_user_token",
        "/users/tokens/revoke" => "revoke_user_token",
        "/keys/add" => "add_ssh_key_to_container",
        "/keys/remove" => "remove_ssh_key_from_container",
        "/settings/rotate-key" => "rotate_admin_key",
        "/settings/reconcile" => "reconcile",
        "/logout" => "sign_out",
        _ => return None,
    })
}

/// Records a dashboard form once it is answered (a middleware of the dashboard's scope).
pub async fn record_dashboard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let state = req.app_data::<Data<AppState>>().cloned();
    let action = (req.method() == actix_web::http::Method::POST)
        .then(|| req.match_pattern())
        .flatten()
        .and_then(|pattern| dashboard_action(&pattern));
    let address = req.peer_addr().map(|a| a.ip());
    let res = next.call(req).await?.map_into_boxed_body();
    // The path's parameters are known once the route inside the scope has matched.
    let name = res.request().match_info().get("name").map(str::to_owned);
    let (Some(state), Some(action)) = (state.filter(|s| s.auditor.is_some()), action) else {
        return Ok(res);
    };
    // A form refused before it was read (no session, no valid token) did nothing.
    let Some(caller) = res.request().extensions().get::<Caller>().cloned() else {
        return Ok(res);
    };
    let status = res.status();
    let resolved = res.request().extensions().get::<Target>().cloned();
    let mut entry =
        AuditEntry::new(actor_of(&caller.principal), AuditSource::Dashboard, action).from(address);
    let mut params = caller.params;
    if let (Some(name), Value::Object(map)) = (&name, &mut params) {
        map.insert("container_id".to_owned(), Value::String(name.clone()));
    }
    if let Some(container) = params.get("container").cloned()
        && let Value::Object(map) = &mut params
    {
        map.insert("container_id".to_owned(), container);
    }
    let target = match resolved {
        Some(target) => Some(target.named()),
        None => target_of(&state, action, &params).await,
    };
    if let Some((target, subject)) = target {
        entry = entry.on(target, subject.as_ref());
    }
    entry = entry.with_params(params);
    if res.response().extensions().get::<Failed>().is_some() {
        entry = entry.failed("failed");
    } else if status.is_client_error() || status.is_server_error() {
        entry = entry.failed(code_of(status));
    }
    state.audit(entry).await;
    Ok(res)
}

/// Records one container's part of a dashboard bulk form (`/bulk`): the middleware records one
/// entry per form, but a bulk form is one action per container, each authorized on its own, so
/// each is recorded as if it had been that container's own form (`params` says it came in bulk).
pub(crate) async fn record_dashboard_each(
    state: &AppState,
    principal: &Principal,
    action: &str,
    container: &str,
    resolved: Option<Target>,
    failure: Option<&str>,
    address: Option<std::net::IpAddr>,
) {
    if state.auditor.is_none() {
        return;
    }
    let (target, subject) = match resolved {
        Some(target) => target.named(),
        None => state.manager.audit_target(container).await,
    };
    let mut entry = AuditEntry::new(actor_of(principal), AuditSource::Dashboard, action)
        .from(address)
        .on(target, subject.as_ref())
        .with_params(serde_json::json!({ "container_id": container, "bulk": "on" }));
    if let Some(code) = failure {
        entry = entry.failed(code);
    }
    state.audit(entry).await;
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
        return Some(state.manager.audit_target(reference).await);
    }
    if let Some(user) = text("user_id") {
        return Some((name_like(user), UserId::parse(user).ok()));
    }
    text("token_id").map(|token| (name_like(token), None))
}
