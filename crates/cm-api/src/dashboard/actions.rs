//! What changes something: login and logout, create, lifecycle, delete, tokens, SSH keys, admin
//! key rotation and reconcile. Every POST but the login goes through [`Posted`], which checked
//! the session and its CSRF token; authorization is the core's rule, on the container's real
//! owner. Use cases run detached from the request, so a closed tab does not cut them in half.

use std::future::Future;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::web::{Data, Path};
use actix_web::{HttpRequest, HttpResponse};
use cm_core::{Action, DeleteOptions, ErrorKind, Lifecycle, Principal, Secret, UserId};
use minijinja::{Value, context};
use serde::Deserialize;

use super::pages::{CreateFields, FieldErrors, create_form, create_nodes, keys_page};
use super::render::{html, render, see_other};
use super::viewer::{PageResult, Posted};
use crate::sessions::{
    Flash, LOGIN_COOKIE, SESSION_COOKIE, clear_session_cookie, cookie, is_https, login_cookie, random_token,
    session_cookie, tokens_match,
};
use crate::state::AppState;

/// How long a failed login waits before answering (slows down guessing).
const FAILED_LOGIN_DELAY: Duration = Duration::from_millis(750);

#[derive(Deserialize)]
pub struct LoginFields {
    #[serde(default)]
    key: String,
    #[serde(default)]
    login_token: String,
    /// Set by the "Continue with your ToolBox session" button: the credential is the request's
    /// `tb_session` cookie (with `[auth.toolbox] validate_url` only).
    #[serde(default)]
    toolbox_session: Option<String>,
}

#[derive(Deserialize)]
pub struct NoFields {}

#[derive(Deserialize)]
pub struct BackField {
    back: Option<String>,
}

#[derive(Deserialize)]
pub struct DeleteFields {
    force: Option<String>,
    purge: Option<String>,
}

#[derive(Deserialize)]
pub struct MoveFields {
    #[serde(default)]
    node: String,
}

#[derive(Deserialize)]
pub struct UserField {
    #[serde(default)]
    user_id: String,
}

#[derive(Deserialize)]
pub struct RevokeFields {
    token_id: Option<String>,
    user_id: Option<String>,
}

#[derive(Deserialize)]
pub struct AddKeyFields {
    #[serde(default)]
    container: String,
    #[serde(default)]
    key: String,
}

#[derive(Deserialize)]
pub struct RemoveKeyFields {
    #[serde(default)]
    container: String,
    #[serde(default)]
    fingerprint: String,
}

// ---------------------------------------------------------------------------------------------
// Login and logout.

/// `GET /login`: the login form (or the containers, for someone logged in).
pub async fn login_page(req: HttpRequest, state: Data<AppState>) -> HttpResponse {
    let logged_in =
        cookie(&req, SESSION_COOKIE).is_some_and(|id| state.sessions.get(&id, Instant::now()).is_some());
    if logged_in {
        return see_other("/");
    }
    login_form(&req, StatusCode::OK, None)
}

/// `POST /login`: the admin key or a user token starts a session.
pub async fn login(req: HttpRequest, state: Data<AppState>, body: actix_web::web::Bytes) -> HttpResponse {
    let Ok(fields) = serde_urlencoded::from_bytes::<LoginFields>(&body) else {
        return login_form(&req, StatusCode::BAD_REQUEST, Some("the form could not be read"));
    };
    let expected = cookie(&req, LOGIN_COOKIE).unwrap_or_default();
    if !tokens_match(&expected, &fields.login_token) {
        return login_form(
            &req,
            StatusCode::FORBIDDEN,
            Some("the login form expired or came from another site: please try again"),
        );
    }
    let secret = if fields.key.trim().is_empty() && fields.toolbox_session.is_some() {
        match state.toolbox_session(&req) {
            Some(session) => session,
            None => {
                return login_form(
                    &req,
                    StatusCode::UNAUTHORIZED,
                    Some(
                        "no ToolBox session came with this request: sign in at ToolBox first, or use a token",
                    ),
                );
            }
        }
    } else {
        Secret::new(fields.key.trim())
    };
    let slot = match req
        .peer_addr()
        .map(|a| state.attempts.begin(a.ip(), Instant::now()))
    {
        Some(Err(seconds)) => {
            let message = format!("too many failed logins from your address: try again in {seconds} s");
            let mut answer = login_form(&req, StatusCode::TOO_MANY_REQUESTS, Some(&message));
            if let Ok(value) = header::HeaderValue::from_str(&seconds.to_string()) {
                answer.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return answer;
        }
        Some(Ok(slot)) => Some(slot),
        None => None,
    };
    let checked = state.auth.authenticate(&secret).await;
    // Only a wrong credential counts against the address, not a dependency that could not check it.
    if let Some(slot) = slot
        && !matches!(&checked, Err(e) if e.kind() == ErrorKind::Unauthorized)
    {
        slot.succeeded();
    }
    let address = req.peer_addr().map(|a| a.ip());
    let attempt = match &checked {
        Ok(principal) => cm_core::AuditEntry::new(
            crate::audit::actor_of(principal),
            cm_core::AuditSource::Dashboard,
            "sign_in",
        ),
        Err(e) => cm_core::AuditEntry::new(
            cm_core::Actor::Anonymous,
            cm_core::AuditSource::Dashboard,
            "sign_in",
        )
        .failed(crate::error::ErrorCode::of_kind(e.kind()).code()),
    };
    state.audit(attempt.from(address)).await;
    match checked {
        Ok(principal) => {
            tracing::info!(who = %who(&principal), "dashboard login");
            let https = is_https(&req);
            let Some(id) = state.sessions.create(principal, secret, Instant::now()) else {
                return login_form(
                    &req,
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some("too many open sessions on this server: try again later"),
                );
            };
            let mut answer = HttpResponse::SeeOther();
            answer
                .insert_header((header::LOCATION, "/"))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .append_header((header::SET_COOKIE, session_cookie(&id, https)))
                .append_header((
                    header::SET_COOKIE,
                    format!("{LOGIN_COOKIE}=; Path=/login; HttpOnly; SameSite=Strict; Max-Age=0"),
                ));
            answer.finish()
        }
        Err(e) if e.kind() == ErrorKind::Unauthorized => {
            tracing::info!("dashboard login refused");
            tokio::time::sleep(FAILED_LOGIN_DELAY).await;
            login_form(
                &req,
                StatusCode::UNAUTHORIZED,
                Some("that is neither the admin key nor a valid user token"),
            )
        }
        Err(e) => {
            tracing::warn!(error = ?e, "dashboard login could not be checked");
            login_form(&req, StatusCode::SERVICE_UNAVAILABLE, Some(e.message()))
        }
    }
}

/// The login form with a fresh login token (in a cookie and a hidden field).
fn login_form(req: &HttpRequest, status: StatusCode, error: Option<&str>) -> HttpResponse {
    let token = random_token();
    // Someone signed in at ToolBox may use that session instead of a token.
    let toolbox_session = req
        .app_data::<Data<AppState>>()
        .is_some_and(|state| state.toolbox_session(req).is_some());
    let ctx = context! {
        chrome => Value::from(()),
        flashes => Vec::<Value>::new(),
        error => error,
        login_token => token.clone(),
        toolbox_session => toolbox_session,
    };
    let mut answer = html(status, render("login.html", ctx));
    if let Ok(value) = header::HeaderValue::from_str(&login_cookie(&token, is_https(req))) {
        answer.headers_mut().append(header::SET_COOKIE, value);
    }
    answer
}

/// `POST /logout`: ends the session.
pub async fn logout(posted: Posted<NoFields>) -> HttpResponse {
    let viewer = posted.viewer;
    viewer.state().sessions.destroy(viewer.session());
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/login"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::SET_COOKIE, clear_session_cookie(viewer.https())))
        .finish()
}

// ---------------------------------------------------------------------------------------------
// Containers.

/// `POST /create` (admin only): validates with the core, creates, shows the new container.
pub async fn create(posted: Posted<CreateFields>) -> PageResult {
    let Posted { viewer, form: fields } = posted;
    viewer.require(Action::CreateContainer, None)?;
    let manager = viewer.state().manager.clone();
    let nodes = create_nodes(&viewer).await;
    let request = match fields.parse_all(&manager, nodes.as_deref()) {
        Ok(request) => request,
        Err(errors) => {
            return create_form(
                &viewer,
                StatusCode::UNPROCESSABLE_ENTITY,
                &fields,
                &errors,
                nodes.as_deref(),
            );
        }
    };
    let outcome = detached(async move {
        let progress = |step: &str| tracing::debug!(step, "create");
        manager.create(request, &progress).await
    })
    .await;
    match outcome {
        Ok(outcome) => {
            let name = outcome.spec.container_name.to_string();
            tracing::info!(container = %name, "created through the dashboard");
            viewer.flash(Flash::success(format!(
                "Container {name} was created and is {}.",
                outcome.spec.status
            )));
            if let Some(refused) = outcome.route_error {
                viewer.flash(Flash::warning(format!(
                    "nginx refused the route, so the URL does not answer yet: {refused}"
                )));
            }
            Ok(see_other(&format!("/containers/{name}")))
        }
        Err(e) => {
            let status = crate::error::ErrorCode::of_kind(e.kind()).status();
            create_form(&viewer, status, &fields, &FieldErrors::of(&e), nodes.as_deref())
        }
    }
}

/// `POST /containers/{name}/start`.
pub async fn start(posted: Posted<BackField>, name: Path<String>) -> PageResult {
    lifecycle(posted, &name, Lifecycle::Start).await
}

/// `POST /containers/{name}/stop`.
pub async fn stop(posted: Posted<BackField>, name: Path<String>) -> PageResult {
    lifecycle(posted, &name, Lifecycle::Stop).await
}

/// `POST /containers/{name}/restart`.
pub async fn restart(posted: Posted<BackField>, name: Path<String>) -> PageResult {
    lifecycle(posted, &name, Lifecycle::Restart).await
}

async fn lifecycle(posted: Posted<BackField>, reference: &str, what: Lifecycle) -> PageResult {
    let Posted { viewer, form } = posted;
    let container = viewer.container(reference, what.action()).await?;
    let manager = viewer.state().manager.clone();
    let name = container.name().to_string();
    let result = detached(async move { manager.lifecycle(&container, what).await }).await;
    let verb = what.done();
    let flash = match result {
        Ok(spec) => Flash::success(format!("Container {name} was {verb}; it is {}.", spec.status)),
        Err(e) => Flash::error(format!("Container {name} was not {verb}: {}", e.message())),
    };
    Ok(viewer.redirect_with(safe_back(form.back.as_deref()), flash))
}

/// `POST /containers/{name}/move` (admin only): moves the container to another node with its
/// data; back on the container's page with what happened.
pub async fn move_container(posted: Posted<MoveFields>, name: Path<String>) -> PageResult {
    let Posted { viewer, form } = posted;
    let container = viewer.container(&name, Action::UpdateContainer).await?;
    let name = container.name().to_string();
    let page = format!("/containers/{name}");
    let node = match cm_core::NodeName::parse(form.node.trim()) {
        Ok(node) => node,
        Err(e) => return Ok(viewer.redirect_with(&page, Flash::error(e.message()))),
    };
    let manager = viewer.state().manager.clone();
    let target = node.clone();
    let flash = match detached(async move { manager.move_container(&container, &target).await }).await {
        Ok(moved) => Flash::success(format!(
            "Container {name} moved from node {} to node {node}: {} KiB of data copied, down for {:.1} s.",
            moved.from,
            moved.copied_bytes / 1024,
            moved.downtime.as_secs_f64()
        )),
        Err(e) => Flash::error(format!("Container {name} was not moved: {}", e.message())),
    };
    Ok(viewer.redirect_with(&page, flash))
}

/// `POST /containers/{name}/delete` (the admin, or the owner when users may delete): `force`
/// stops a running one, `purge` (admin only) also removes the data volume.
pub async fn delete(posted: Posted<DeleteFields>, name: Path<String>) -> PageResult {
    let Posted { viewer, form } = posted;
    let container = viewer.container(&name, Action::DeleteContainer).await?;
    if form.purge.is_some() {
        // Refused as a page of its own (the use case would refuse it too, as a message).
        viewer.require(Action::PurgeData, Some(&container.spec().user_id))?;
    }
    let options = DeleteOptions {
        force: form.force.is_some(),
        purge: form.purge.is_some(),
    };
    let manager = viewer.state().manager.clone();
    let name = container.name().to_string();
    match detached(async move { manager.delete(&container, options).await }).await {
        Ok(deleted) => {
            tracing::info!(container = %name, purge = options.purge, "deleted through the dashboard");
            let data = if options.purge {
                format!("its data volume {} was removed too", deleted.volume_name)
            } else {
                format!("its data volume {} was kept", deleted.volume_name)
            };
            Ok(viewer.redirect_with(
                "/",
                Flash::success(format!("Container {name} was deleted; {data}.")),
            ))
        }
        Err(e) => Ok(viewer.redirect_with(
            &format!("/containers/{name}/delete"),
            Flash::error(format!("Container {name} was not deleted: {}", e.message())),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Users and tokens (admin only).

/// `POST /users/tokens`: a new token, shown once.
pub async fn create_token(posted: Posted<UserField>) -> PageResult {
    let Posted { viewer, form } = posted;
    viewer.require(Action::Administer, None)?;
    let user = match UserId::parse(form.user_id.trim()) {
        Ok(user) => user,
        Err(e) => return Ok(viewer.redirect_with("/users", Flash::error(e.message()))),
    };
    let flash = match viewer.state().auth.create_user_token(&user).await {
        Ok((record, token)) => Flash::secret(
            format!(
                "New token {} for user {user}. Copy it now: it is shown only once, only its hash is kept.",
                record.id
            ),
            &token,
        ),
        Err(e) => Flash::error(e.message()),
    };
    Ok(viewer.redirect_with("/users", flash))
}

/// `POST /users/tokens/revoke`: one token (`token_id`) or every token of a user (`user_id`).
pub async fn revoke_tokens(posted: Posted<RevokeFields>) -> PageResult {
    let Posted { viewer, form } = posted;
    viewer.require(Action::Administer, None)?;
    let auth = &viewer.state().auth;
    let flash = match (form.token_id.filter(|t| !t.trim().is_empty()), form.user_id) {
        (Some(id), _) => match auth.revoke_token(&id).await {
            Ok(()) => Flash::success(format!("Token {} was revoked.", id.trim())),
            Err(e) => Flash::error(e.message()),
        },
        (None, Some(user)) => match UserId::parse(user.trim()) {
            Ok(user) => match auth.revoke_user_tokens(&user).await {
                Ok(n) => Flash::success(format!("{n} token(s) of user {user} were revoked.")),
                Err(e) => Flash::error(e.message()),
            },
            Err(e) => Flash::error(e.message()),
        },
        (None, None) => Flash::error("choose a token or a user"),
    };
    Ok(viewer.redirect_with("/users", flash))
}

// ---------------------------------------------------------------------------------------------
// SSH keys.

/// `POST /keys/add`: parses and authorizes a key on a container.
pub async fn add_key(posted: Posted<AddKeyFields>) -> PageResult {
    let Posted { viewer, form } = posted;
    let container = viewer.container(&form.container, Action::AddSshKey).await?;
    let manager = viewer.state().manager.clone();
    let name = container.name().to_string();
    let key = form.key.clone();
    let flash = match detached(async move { manager.add_ssh_key(&container, &key).await }).await {
        Ok(added) if !added.added => Flash::warning(format!(
            "Container {name} already has the key {}.",
            added.key.fingerprint()
        )),
        Ok(added) => Flash::success(format!(
            "Key {} was added to {name}; {}.",
            added.key.fingerprint(),
            if added.applied {
                "it works now"
            } else {
                "it is written into the container at its next start"
            }
        )),
        Err(e) => {
            // The page again, the key as typed and the reason next to it.
            let status = crate::error::ErrorCode::of_kind(e.kind()).status();
            let reason = format!("The key was not added: {}", e.message());
            return keys_page(&viewer, status, Some(&name), &form.key, Some(&reason)).await;
        }
    };
    Ok(viewer.redirect_with(&format!("/keys?container={name}"), flash))
}

/// `POST /keys/remove` (admin only): removes a key by fingerprint.
pub async fn remove_key(posted: Posted<RemoveKeyFields>) -> PageResult {
    let Posted { viewer, form } = posted;
    let container = viewer.container(&form.container, Action::RemoveSshKey).await?;
    let manager = viewer.state().manager.clone();
    let name = container.name().to_string();
    let fingerprint = form.fingerprint.trim().to_owned();
    let shown = fingerprint.clone();
    let flash = match detached(async move { manager.remove_ssh_key(&container, &fingerprint).await }).await {
        Ok(_) => Flash::success(format!("Key {shown} was removed from {name}.")),
        Err(e) => Flash::error(format!("The key was not removed: {}", e.message())),
    };
    Ok(viewer.redirect_with(&format!("/keys?container={name}"), flash))
}

// ---------------------------------------------------------------------------------------------
// Settings (admin only).

/// `POST /settings/rotate-key`: a new admin key, shown once; this session goes on with it, every
/// other admin session ends.
pub async fn rotate_key(posted: Posted<NoFields>) -> PageResult {
    let Posted { viewer, .. } = posted;
    viewer.require(Action::Administer, None)?;
    let state = viewer.state();
    let flash = match state.auth.rotate_admin_key().await {
        Ok(key) => {
            tracing::warn!("the admin key was rotated through the dashboard");
            state.sessions.replace_secret(viewer.session(), key.clone());
            Flash::secret(
                "The admin key was replaced; the old one no longer works. Copy the new key now: it is shown only once.",
                &key,
            )
        }
        Err(e) => Flash::error(format!("The admin key was not rotated: {}", e.message())),
    };
    Ok(viewer.redirect_with("/settings", flash))
}

/// `POST /settings/reconcile`: runs the reconciler now.
pub async fn reconcile(posted: Posted<NoFields>) -> PageResult {
    let Posted { viewer, .. } = posted;
    viewer.require(Action::Administer, None)?;
    let state = viewer.state();
    let reconciler = state.reconciler.clone();
    let manager = state.manager.clone();
    let flash = match detached(async move {
        reconciler
            .run(&manager, cm_core::ReconcileOptions::default())
            .await
    })
    .await
    {
        Ok(report) => Flash::success(format!(
            "Reconciled: {} record(s) checked, {} finding(s).",
            report.records,
            report.findings.len()
        )),
        Err(e) => Flash::error(format!("The reconcile could not run: {}", e.message())),
    };
    Ok(viewer.redirect_with("/settings", flash))
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Runs a use case on its own task, so it finishes even when the browser goes away.
pub async fn detached<T: 'static>(
    work: impl Future<Output = cm_core::Result<T>> + 'static,
) -> cm_core::Result<T> {
    actix_web::rt::spawn(work)
        .await
        .unwrap_or_else(|_| Err(cm_core::Error::internal("the operation failed unexpectedly")))
}

/// A page of ours to go back to; anything else (another site, `//host`) becomes `/`.
pub fn safe_back(back: Option<&str>) -> &str {
    match back {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && path.len() <= 300
                && path
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/_-.?=&%+*".contains(c)) =>
        {
            path
        }
        _ => "/",
    }
}

/// The principal, for logs.
fn who(principal: &Principal) -> String {
    match principal {
        Principal::Admin => "admin".to_owned(),
        Principal::User(user) => format!("user {user}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_back() {
        assert_eq!(safe_back(Some("/?status=running")), "/?status=running");
        assert_eq!(
            safe_back(Some("/containers/alice_cli_v4")),
            "/containers/alice_cli_v4"
        );
        for bad in ["//evil.example", "https://evil.example", "/\\evil", "", "/a b"] {
            assert_eq!(safe_back(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_back(None), "/");
    }
}
