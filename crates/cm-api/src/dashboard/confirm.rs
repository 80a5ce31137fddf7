//! Confirmation steps and bulk actions. Every destructive action (stop, restart, delete, revoke
//! tokens, remove an SSH key, rotate the admin key, and start, stop or delete several
//! containers at once) first shows a page (GET, changes nothing) that says exactly what will
//! happen and carries the form (POST, with the session's CSRF token) that does it. It works
//! without JavaScript. Deleting has its own page (`pages::delete_page`, with its choices).

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use actix_web::web::{Path, Query};
use cm_core::{Action, AdminKeySource, DeleteOptions, Lifecycle, UserId};
use serde::{Deserialize, Serialize};

use super::actions::{detached, safe_back};
use super::render::{PageError, see_other};
use super::viewer::{PageResult, Posted, Viewer};
use super::views::{ContainerView, to_value};
use crate::error::ErrorCode;
use crate::sessions::Flash;

/// The most containers one bulk form may name.
pub const BULK_LIMIT: usize = 500;

#[derive(Debug, Deserialize)]
pub struct BackQuery {
    back: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RevokeQuery {
    token_id: Option<String>,
    user_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RemoveKeyQuery {
    #[serde(default)]
    container: String,
    #[serde(default)]
    fingerprint: String,
}

/// What a confirmation page shows.
#[derive(Debug, Serialize)]
struct Confirm {
    title: String,
    lines: Vec<String>,
    /// Where the form posts.
    action: String,
    /// Its hidden fields (the CSRF token is added by the template).
    fields: Vec<(String, String)>,
    /// The button's label; empty when there is nothing to do (no form then).
    button: String,
    danger: bool,
    cancel: String,
    /// For bulk actions: each container and what will happen to it.
    plan: Vec<PlanLine>,
}

/// One container of a bulk action.
#[derive(Debug, Serialize)]
struct PlanLine {
    name: String,
    user: String,
    status: String,
    status_class: String,
    what: String,
    skip: bool,
}

/// The actions a bulk form may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BulkAction {
    Start,
    Stop,
    Delete,
}

/// A bulk form, read.
struct Bulk {
    action: BulkAction,
    names: Vec<String>,
    back: String,
}

impl BulkAction {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "start" => Some(BulkAction::Start),
            "stop" => Some(BulkAction::Stop),
            "delete" => Some(BulkAction::Delete),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            BulkAction::Start => "start",
            BulkAction::Stop => "stop",
            BulkAction::Delete => "delete",
        }
    }

    fn permission(self) -> Action {
        match self {
            BulkAction::Start => Action::StartContainer,
            BulkAction::Stop => Action::StopContainer,
            BulkAction::Delete => Action::DeleteContainer,
        }
    }

    /// The action's name in the audit trail (the same as the single container's form).
    fn audited(self) -> &'static str {
        match self {
            BulkAction::Start => "start_container",
            BulkAction::Stop => "stop_container",
            BulkAction::Delete => "delete_container",
        }
    }

    fn done(self) -> &'static str {
        match self {
            BulkAction::Start => "started",
            BulkAction::Stop => "stopped",
            BulkAction::Delete => "deleted",
        }
    }
}

impl Bulk {
    /// Reads `action`, `c` (repeated: the containers) and `back`; duplicates are dropped.
    fn read(viewer: &Viewer, pairs: &[(String, String)]) -> Result<Bulk, PageError> {
        let mut action = None;
        let mut names: Vec<String> = Vec::new();
        let mut back = "/".to_owned();
        for (name, value) in pairs {
            match name.as_str() {
                "action" => {
                    action = Some(BulkAction::parse(value.trim()).ok_or_else(|| {
                        viewer.refuse(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "unknown bulk action: choose start, stop or delete",
                        )
                    })?);
                }
                "c" => {
                    let value = value.trim();
                    if !value.is_empty() && !names.iter().any(|n| n == value) {
                        names.push(value.to_owned());
                    }
                }
                "back" => back = safe_back(Some(value)).to_owned(),
                _ => {}
            }
        }
        let action = action.ok_or_else(|| {
            viewer.refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                "choose a bulk action: start, stop or delete",
            )
        })?;
        if names.len() > BULK_LIMIT {
            return Err(viewer.refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("at most {BULK_LIMIT} containers at once"),
            ));
        }
        Ok(Bulk { action, names, back })
    }
}

// ---------------------------------------------------------------------------------------------
// Single actions.

/// `GET /containers/{name}/stop`: what stopping does, and the button that does it.
pub async fn stop_page(viewer: Viewer, name: Path<String>, query: Query<BackQuery>) -> PageResult {
    lifecycle_page(viewer, &name, Lifecycle::Stop, query.back.as_deref()).await
}

/// `GET /containers/{name}/restart`: what restarting does, and the button that does it.
pub async fn restart_page(viewer: Viewer, name: Path<String>, query: Query<BackQuery>) -> PageResult {
    lifecycle_page(viewer, &name, Lifecycle::Restart, query.back.as_deref()).await
}

async fn lifecycle_page(viewer: Viewer, reference: &str, what: Lifecycle, back: Option<&str>) -> PageResult {
    let container = viewer.container(reference, what.action()).await?;
    let spec = match viewer.state().manager.get(&container).await {
        Ok(live) => live,
        Err(_) => container.into_spec(),
    };
    let c = ContainerView::of(&spec);
    let back = safe_back(back).to_owned();
    let (verb, effect) = match what {
        Lifecycle::Restart => (
            "Restart",
            "Restarting ends every process in it and starts it again: open SSH sessions and connections to its web app are cut.",
        ),
        _ => (
            "Stop",
            "Stopping ends every process in it: its web app and SSH stop answering until it is started again. Its data stays.",
        ),
    };
    let confirm = Confirm {
        title: format!("{verb} {}?", c.name),
        lines: vec![
            format!("The {} container of user {} is {} now.", c.kind, c.user, c.status),
            effect.to_owned(),
        ],
        action: format!("/containers/{}/{}", c.name, verb.to_lowercase()),
        fields: vec![("back".to_owned(), back.clone())],
        button: format!("{verb} container"),
        danger: true,
        cancel: back,
        plan: Vec::new(),
    };
    render(&viewer, "containers", confirm)
}

/// `GET /users/tokens/revoke?token_id=` (or `?user_id=`, every token of the user).
pub async fn revoke_page(viewer: Viewer, query: Query<RevokeQuery>) -> PageResult {
    viewer.require(Action::Administer, None)?;
    let tokens = viewer
        .state()
        .auth
        .tokens()
        .await
        .map_err(|e| viewer.fail(e, "users"))?;
    let token_id = query.token_id.as_deref().map(str::trim).filter(|t| !t.is_empty());
    let confirm = match (token_id, query.user_id.as_deref().map(str::trim)) {
        (Some(id), _) => {
            let Some(token) = tokens.iter().find(|t| t.id == id) else {
                return Err(viewer.refuse(StatusCode::NOT_FOUND, format!("no token {id}")));
            };
            Confirm {
                title: format!("Revoke token {id}?"),
                lines: vec![format!(
                    "Token {id} of user {} stops working at once: every script and dashboard session using it is refused from then on. This can not be undone; a new token can be made.",
                    token.user_id
                )],
                action: "/users/tokens/revoke".to_owned(),
                fields: vec![("token_id".to_owned(), id.to_owned())],
                button: "Revoke token".to_owned(),
                danger: true,
                cancel: "/users".to_owned(),
                plan: Vec::new(),
            }
        }
        (None, Some(user)) => {
            let user = UserId::parse(user).map_err(|e| viewer.fail(e, "users"))?;
            let theirs: Vec<&str> = tokens
                .iter()
                .filter(|t| t.user_id == user)
                .map(|t| t.id.as_str())
                .collect();
            if theirs.is_empty() {
                return Err(viewer.refuse(StatusCode::NOT_FOUND, format!("user {user} has no tokens")));
            }
            Confirm {
                title: format!("Revoke every token of {user}?"),
                lines: vec![
                    format!(
                        "{} token(s) of user {user} stop working at once: {}.",
                        theirs.len(),
                        theirs.join(", ")
                    ),
                    "Every script and dashboard session using them is refused from then on. This can not be undone.".to_owned(),
                ],
                action: "/users/tokens/revoke".to_owned(),
                fields: vec![("user_id".to_owned(), user.to_string())],
                button: format!("Revoke {} token(s)", theirs.len()),
                danger: true,
                cancel: "/users".to_owned(),
                plan: Vec::new(),
            }
        }
        (None, None) => {
            return Err(viewer.refuse(StatusCode::UNPROCESSABLE_ENTITY, "choose a token or a user"));
        }
    };
    render(&viewer, "users", confirm)
}

/// `GET /keys/remove?container=&fingerprint=`: which key goes, from which container.
pub async fn remove_key_page(viewer: Viewer, query: Query<RemoveKeyQuery>) -> PageResult {
    let container = viewer.container(&query.container, Action::RemoveSshKey).await?;
    let name = container.name().to_string();
    let keys = viewer
        .state()
        .manager
        .ssh_keys(&container)
        .await
        .map_err(|e| viewer.fail(e, "keys"))?;
    let fingerprint = query.fingerprint.trim();
    let Some(key) = keys.iter().find(|k| k.key.fingerprint() == fingerprint) else {
        return Err(viewer.refuse(StatusCode::NOT_FOUND, format!("{name} has no key {fingerprint}")));
    };
    let comment = key.key.comment();
    let confirm = Confirm {
        title: format!("Remove this key from {name}?"),
        lines: vec![
            format!(
                "Key {fingerprint}{} of user {}.",
                if comment.is_empty() {
                    String::new()
                } else {
                    format!(" ({comment})")
                },
                container.spec().user_id
            ),
            "Whoever holds its private key can no longer log in to the container over SSH. It can be added again later.".to_owned(),
        ],
        action: "/keys/remove".to_owned(),
        fields: vec![
            ("container".to_owned(), name.clone()),
            ("fingerprint".to_owned(), fingerprint.to_owned()),
        ],
        button: "Remove key".to_owned(),
        danger: true,
        cancel: format!("/keys?container={name}"),
        plan: Vec::new(),
    };
    render(&viewer, "keys", confirm)
}

/// `GET /settings/rotate-key`: what rotating the admin key does.
pub async fn rotate_key_page(viewer: Viewer) -> PageResult {
    viewer.require(Action::Administer, None)?;
    let from_env = viewer.state().auth.admin_key_source() == AdminKeySource::Environment;
    let mut lines = vec![
        "A new admin key is made and shown once. The current key stops working at once: for the API, for scripts and for every other admin session, which ends. This session goes on with the new key.".to_owned(),
    ];
    if from_env {
        lines.push(
            "The admin key comes from the environment variable CONTAINER_ADMIN_KEY, so rotating here is refused: change the variable and restart cm-api instead.".to_owned(),
        );
    }
    let confirm = Confirm {
        title: "Rotate the admin key?".to_owned(),
        lines,
        action: "/settings/rotate-key".to_owned(),
        fields: Vec::new(),
        button: if from_env {
            String::new()
        } else {
            "Rotate admin key".to_owned()
        },
        danger: true,
        cancel: "/settings".to_owned(),
        plan: Vec::new(),
    };
    render(&viewer, "settings", confirm)
}

// ---------------------------------------------------------------------------------------------
// Bulk actions.

/// `GET /bulk?action=start|stop|delete&c=NAME&c=NAME&back=`: each ticked container and what
/// will happen to it (or why it is skipped), and the button that does it.
pub async fn bulk_page(viewer: Viewer, query: Query<Vec<(String, String)>>) -> PageResult {
    let bulk = Bulk::read(&viewer, &query)?;
    if bulk.names.is_empty() {
        return Ok(viewer.redirect_with(
            &bulk.back,
            Flash::warning("Tick at least one container for a bulk action."),
        ));
    }
    let listing = viewer.listing().await?;
    let mut plan = Vec::new();
    let mut fields = vec![
        ("action".to_owned(), bulk.action.as_str().to_owned()),
        ("back".to_owned(), bulk.back.clone()),
    ];
    for name in &bulk.names {
        // Another user's container looks missing, as everywhere else.
        let Some(spec) = listing
            .containers
            .iter()
            .find(|c| c.container_name.as_str() == name.as_str())
        else {
            plan.push(PlanLine {
                name: name.clone(),
                user: String::new(),
                status: "missing".to_owned(),
                status_class: "bad".to_owned(),
                what: "no such container: skipped".to_owned(),
                skip: true,
            });
            continue;
        };
        let c = ContainerView::of(spec);
        let allowed = viewer
            .require(bulk.action.permission(), Some(&spec.user_id))
            .is_ok();
        let (what, skip) = match bulk.action {
            _ if !allowed => ("you may not do this: skipped".to_owned(), true),
            BulkAction::Start if c.running => ("already running: nothing to do".to_owned(), true),
            BulkAction::Stop if !c.running => ("not running: nothing to do".to_owned(), true),
            BulkAction::Start => ("will be started".to_owned(), false),
            BulkAction::Stop => ("will be stopped: every process in it ends".to_owned(), false),
            BulkAction::Delete => (
                format!(
                    "will be deleted{}; its data volume {} is kept",
                    if c.running { " (stopped first)" } else { "" },
                    c.volume
                ),
                false,
            ),
        };
        if !skip {
            fields.push(("c".to_owned(), c.name.clone()));
        }
        plan.push(PlanLine {
            name: c.name,
            user: c.user,
            status: c.status.to_owned(),
            status_class: c.status_class.to_owned(),
            what,
            skip,
        });
    }
    let ready = plan.iter().filter(|p| !p.skip).count();
    let verb = bulk.action.as_str();
    let mut title = verb.to_owned();
    title[..1].make_ascii_uppercase();
    let confirm = Confirm {
        title: format!("{title} {ready} container(s)?"),
        lines: vec![if ready == 0 {
            "None of the ticked containers would change.".to_owned()
        } else {
            format!(
                "Exactly this happens when you confirm, one container after the other; each is checked again, and the result of each is reported.{}",
                if bulk.action == BulkAction::Delete {
                    " Data volumes are kept: to delete a container's data, use its own Delete page."
                } else {
                    ""
                }
            )
        }],
        action: "/bulk".to_owned(),
        fields,
        button: if ready == 0 {
            String::new()
        } else {
            format!("{title} {ready} container(s)")
        },
        danger: bulk.action != BulkAction::Start,
        cancel: bulk.back.clone(),
        plan,
    };
    render(&viewer, "containers", confirm)
}

/// `POST /bulk` (`action`, `c` repeated, `back`): each container authorized and done on its own,
/// one audit entry each; the results, grouped, on the next page.
pub async fn bulk(posted: Posted<Vec<(String, String)>>, req: HttpRequest) -> PageResult {
    let Posted { viewer, form } = posted;
    let bulk = Bulk::read(&viewer, &form)?;
    let address = req.peer_addr().map(|a| a.ip());
    let mut done: Vec<String> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    for name in &bulk.names {
        let mut resolved = None;
        let outcome = match viewer.container(name, bulk.action.permission()).await {
            Err(refused) => Err((refusal(&refused), refused_code(&refused))),
            Ok(target) => {
                resolved = Some(crate::audit::Target::of(&target));
                let manager = viewer.state().manager.clone();
                let action = bulk.action;
                let result = detached(async move {
                    match action {
                        BulkAction::Start => manager.lifecycle(&target, Lifecycle::Start).await.map(|_| ()),
                        BulkAction::Stop => manager.lifecycle(&target, Lifecycle::Stop).await.map(|_| ()),
                        BulkAction::Delete => manager
                            .delete(
                                &target,
                                DeleteOptions {
                                    force: true,
                                    purge: false,
                                },
                            )
                            .await
                            .map(|_| ()),
                    }
                })
                .await;
                result.map_err(|e| (e.message().to_owned(), ErrorCode::of_kind(e.kind()).code()))
            }
        };
        let failure = outcome.as_ref().err().map(|(_, code)| *code);
        crate::audit::record_dashboard_each(
            viewer.state(),
            &viewer.principal,
            bulk.action.audited(),
            name,
            resolved,
            failure,
            address,
        )
        .await;
        match outcome {
            Ok(()) => done.push(name.clone()),
            Err((message, _)) => failed.push(format!("{name} ({message})")),
        }
    }
    let verb = bulk.action.done();
    if !done.is_empty() {
        tracing::info!(
            action = verb,
            count = done.len(),
            "bulk action through the dashboard"
        );
        viewer.flash(Flash::success(format!(
            "{} container(s) {verb}: {}.",
            done.len(),
            done.join(", ")
        )));
    }
    if !failed.is_empty() {
        viewer.flash(Flash::error(format!(
            "{} container(s) not {verb}: {}.",
            failed.len(),
            failed.join("; ")
        )));
    }
    if bulk.names.is_empty() {
        viewer.flash(Flash::warning("Tick at least one container for a bulk action."));
    }
    Ok(see_other(&bulk.back))
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn render(viewer: &Viewer, active: &'static str, confirm: Confirm) -> PageResult {
    viewer.render(
        active,
        "confirm.html",
        minijinja::context! { confirm => to_value(&confirm) },
    )
}

/// A refusal's message, for the results.
fn refusal(err: &PageError) -> String {
    match err {
        PageError::Page { message, .. } | PageError::Json { message, .. } => message.clone(),
        PageError::Login { .. } => "your session ended".to_owned(),
    }
}

/// A refusal's stable code, for the audit trail.
fn refused_code(err: &PageError) -> &'static str {
    use actix_web::ResponseError;
    crate::audit::code_of(err.status_code())
}
