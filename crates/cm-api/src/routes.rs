//! The endpoints under `/api/ContainerManager/`, with the original's names.
//!
//! Every handler follows the same steps: read its parameters (400), resolve the container (404),
//! authorize the caller against the container's real owner (403), act, answer JSON. Reads take GET
//! and POST, writes POST only. Operations that change things run detached from the request, so a
//! client that hangs up does not cut a create or a delete in half.

use std::future::Future;
use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::web::{self, Bytes, Data};
use actix_web::{FromRequest, Handler, HttpRequest, HttpResponse, Resource, Responder};
use cm_core::{
    Action, Command, CpuLimit, CreateForm, CreateRequest, DeleteOptions, DiskSize, EngineCounts, Lifecycle,
    LogRequest, MemoryLimit, Principal, UserId, UserQuota,
};
use futures_util::StreamExt;
use serde_json::json;

use crate::answers::{
    AdminKeyAnswer, AuditAnswer, ContainerAnswer, CreatedAnswer, DeletedAnswer, EngineContainerDoc,
    EngineContainersAnswer, ExecAnswer, HealthAnswer, KeyAddedAnswer, KeyRemovedAnswer, KeysAnswer,
    ListingAnswer, LogsAnswer, MovedAnswer, NodeDoc, NodesAnswer, QuotaAnswer, RevokedAnswer, ServiceDoc,
    ServicesAnswer, SshInfoDoc, StatsAnswer, TokenCreatedAnswer, TokensAnswer, TypesAnswer, WhoamiAnswer,
    container_json, to_json, type_json,
};
use crate::call::Call;
use crate::error::{ApiError, ErrorCode};
use crate::params::CommandParam;
use crate::params_types::{
    AddKeyParams, AuditParams, ContainerRef, CreateParams, DeleteParams, ExecParams, GetParams, ListParams,
    LogsParams, MoveParams, MySshParams, NoParams, QuotaParams, ReconcileParams, RegisterKeyParams,
    RemoveKeyParams, RevokeParams, TokenParams, UpdateParams, UserParams,
};
use crate::state::AppState;

/// Where the endpoints live.
pub const API_PREFIX: &str = "/api/ContainerManager";

/// The answer of a handler.
pub type Answer = Result<HttpResponse, ApiError>;

/// One endpoint: its name under [`API_PREFIX`] and whether it also takes GET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// The function name, as in the original API.
    pub name: &'static str,
    /// True for reads (GET and POST), false for writes (POST only).
    pub read: bool,
    /// The error statuses it may answer besides those any endpoint may (the OpenAPI document
    /// lists them).
    pub errors: &'static [u16],
}

/// The one table of the endpoints, in the order of the documentation: `read` ones take GET and
/// POST, `write` ones POST only, each name is its handler's, and the statuses are the errors it
/// may answer besides those any endpoint may (400, 401, 405, 413, 500). [`ENDPOINTS`], the routes of
/// [`configure`] and the paths of the OpenAPI document (`openapi.rs`) all come from it: the
/// macro hands the list to the macro `$then`, which writes what it needs of it.
///
/// A new endpoint is one line here, its handler (with its `#[utoipa::path]`), its parameter set
/// in `params_types.rs`, and its row in the authorization matrix (`tests/it/authz.rs`, whose
/// completeness test iterates [`ENDPOINTS`]).
macro_rules! endpoint_table {
    ($then:ident) => {
        $then! {
            write create_container [403, 409, 422, 503, 507],
            read list_containers [403, 422],
            read get_container [403, 404, 409, 503],
            write delete_container [403, 404, 409, 503],
            write start_container [403, 404, 409, 503],
            write stop_container [403, 404, 409, 503],
            write restart_container [403, 404, 409, 503],
            read container_logs [403, 404, 409, 422, 503],
            write container_exec [403, 404, 409, 422, 503, 504],
            write add_ssh_key_to_container [403, 404, 409, 422, 503],
            write remove_ssh_key_from_container [403, 404, 409, 422, 503],
            read list_container_ssh_keys [403, 404, 409, 422],
            read get_container_ssh_info [403, 404, 409, 422],
            write register_ssh_key [403, 404, 409, 422, 503],
            read get_my_ssh_info [403, 422],
            read container_stats [403, 404, 409, 503],
            read list_ssh_containers [403, 422],
            read list_types [],
            read docker_health [503],
            read list_all_docker_containers [403, 503],
            read discover_services [403, 503],
            read list_nodes [403, 503],
            read audit_log [403, 422],
            read container_events [429, 503],
            read whoami [],
            write create_user_token [403, 422],
            write revoke_user_token [403, 404, 422],
            read list_user_tokens [403],
            write rotate_admin_key [403, 409],
            write update_container [403, 404, 409, 422, 503],
            write move_container [403, 404, 409, 422, 503],
            write reconcile [403, 503],
            read reconcile_status [403],
            read get_user_quota [403, 422],
            write set_user_quota [403, 422],
        }
    };
}
pub(crate) use endpoint_table;

/// `true` for `read`, `false` for `write`.
macro_rules! is_read {
    (read) => {
        true
    };
    (write) => {
        false
    };
}

/// [`ENDPOINTS`] and the registration of every handler, from [`endpoint_table`].
macro_rules! endpoints_and_routes {
    ($($kind:ident $name:ident [$($status:literal),*],)*) => {
        /// Every endpoint, in the order of the documentation (from `endpoint_table!`).
        pub const ENDPOINTS: &[Endpoint] = &[$(Endpoint {
            name: stringify!($name),
            read: is_read!($kind),
            errors: &[$($status),*],
        }),*];

        /// Registers every endpoint of the table on `scope`, each under its name.
        fn register(scope: actix_web::Scope) -> actix_web::Scope {
            scope$(.service($kind(stringify!($name), $name)))*
        }
    };
}

endpoint_table!(endpoints_and_routes);

/// The default number of log lines.
pub const DEFAULT_TAIL: u64 = 100;
/// The most log lines one request may ask for.
pub const MAX_TAIL: u64 = 100_000;
/// The default exec time limit, in seconds.
pub const DEFAULT_EXEC_TIMEOUT: u64 = 60;
/// The longest exec time limit, in seconds.
pub const MAX_EXEC_TIMEOUT: u64 = 3600;
/// The most log text one non-streaming answer carries.
const LOGS_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Registers every endpoint.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        register(web::scope(API_PREFIX))
            // The audit trail sees the answer as the handler gave it (the envelope wraps it).
            .wrap(actix_web::middleware::from_fn(audited))
            // The ToolBox answer mode rewrites finished answers; native ones pass untouched.
            .wrap(actix_web::middleware::from_fn(crate::toolbox::envelope)),
    );
}

fn read<F, Args>(name: &str, handler: F) -> Resource
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    web::resource(format!("/{name}"))
        .route(web::get().to(handler.clone()))
        .route(web::post().to(handler))
        .default_service(web::to(|| async {
            Err::<HttpResponse, _>(ApiError::method_not_allowed("GET, POST"))
        }))
}

fn write<F, Args>(name: &str, handler: F) -> Resource
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    web::resource(format!("/{name}"))
        .route(web::post().to(handler))
        .default_service(web::to(|| async {
            Err::<HttpResponse, _>(ApiError::method_not_allowed("POST"))
        }))
}

/// The audit trail's middleware of the API scope: records each call with whether its endpoint
/// changes anything (from the endpoint table).
async fn audited(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let function = req.path().rsplit('/').next().unwrap_or_default();
    let changes = ENDPOINTS.iter().any(|e| e.name == function && !e.read);
    crate::audit::record(req, next, changes).await
}

/// The answer for paths that are no endpoint.
pub async fn unknown_endpoint(req: HttpRequest) -> Answer {
    let path: String = req.path().chars().take(200).collect();
    Err(ApiError::new(
        ErrorCode::NotFound,
        format!("no endpoint {path}: the endpoints are listed in /api/openapi.json"),
    ))
}

/// Prometheus metrics (admin only): `Authorization: Bearer <admin key>`
///
/// Containers by state and type, operations (count, result, duration histogram), route checks,
/// quota refusals, the engine not answering, the port and subnet pools, execs and log follows in
/// flight; Prometheus' text format 0.0.4.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "system",
    responses((status = 200, description = "The metrics", body = String, content_type = "text/plain"))
)]
pub async fn metrics(state: Data<AppState>, req: HttpRequest) -> Answer {
    let presented = crate::call::bearer(&req)?.ok_or_else(ApiError::missing_credentials)?;
    let address = req.peer_addr().map(|a| a.ip());
    let principal = state.authenticate(&presented, address).await?;
    principal.authorize(Action::Administer, None, state.user_actions())?;
    let text = state.manager.metrics_text().await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}

/// Liveness: answers without credentials and without asking the engine.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "system",
    responses((status = 200, description = "The server runs", body = crate::answers::LiveAnswer))
)]
pub async fn healthz(state: Data<AppState>) -> HttpResponse {
    // No secrets here: anyone may ask whether the API and the routing answer.
    let proxy = state.manager.probe_proxy().await;
    HttpResponse::Ok().json(json!({
        "ok": true,
        "routing": {
            "enabled": proxy.enabled,
            "mode": proxy.mode,
            "nginx_answers": proxy.answers,
        },
        "disk_caps": { "enforced": state.manager.disk_support().enforced },
    }))
}

// ---------------------------------------------------------------------------------------------
// Containers.

/// Create a container (admin only)
///
/// Creates, starts and routes a user's container of a type: one per user and type. On failure
/// nothing is left behind. Answers 201 with the record.
#[utoipa::path(
    post,
    path = "/api/ContainerManager/create_container",
    tag = "containers",
    params(CreateParams),
    request_body(content = CreateParams, description = "The same parameters as a JSON object (or in the query string)"),
    responses((status = 201, description = "Created and started", body = CreatedAnswer))
)]
pub async fn create_container(state: Data<AppState>, call: Call) -> Answer {
    call.principal
        .authorize(Action::CreateContainer, None, state.user_actions())?;
    let p: CreateParams = call.params.parse()?;
    let mut ssh_keys = p.ssh_keys;
    if let Some(key) = p.ssh_public_key {
        ssh_keys.insert(0, key);
    }
    let (line, words) = match p.command {
        Some(CommandParam::Line(line)) => (Some(line), None),
        Some(CommandParam::Words(words)) => (None, Some(words)),
        None => (None, None),
    };
    if p.pull == Some(true) {
        return Err(ApiError::new(
            ErrorCode::InvalidInput,
            "pull is not available: images are local to this host (images/build.sh), never pulled",
        )
        .for_field("pull"));
    }
    let container_type = p.container_type.unwrap_or_else(|| DEFAULT_TYPE.to_owned());
    if let Some(name) = &p.container_name {
        let given = format!("{}_{}", p.user_id.trim(), container_type.trim());
        if name.trim() != given {
            return Err(ApiError::new(
                ErrorCode::InvalidInput,
                format!("container_name must be {given} (one container per user and type, named by both) or left out"),
            )
            .for_field("container_name"));
        }
    }
    let form = CreateForm {
        user_id: p.user_id,
        container_type,
        image: p.image,
        command: line,
        env: p.env,
        memory: p.memory,
        cpus: p.cpus,
        enable_ssh: p.enable_ssh.unwrap_or(false),
        ssh_keys,
        node: p.node,
    };
    let mut request = CreateRequest::parse(&form, state.manager.config())?;
    if let Some(words) = words {
        request.command = Some(Command::from_args(words).map_err(|e| e.for_field("command"))?);
    }
    let manager = state.manager.clone();
    let outcome = detached(async move {
        let progress = |step: &str| tracing::debug!(step, "create");
        manager.create(request, &progress).await
    })
    .await?;
    Ok(HttpResponse::Created().json(CreatedAnswer {
        container: container_json(&outcome.spec)?,
        route_error: outcome.route_error,
    }))
}

/// The type of a create that names none, as in the original.
const DEFAULT_TYPE: &str = "cli_v4";

/// List containers
///
/// The admin sees every container, or one user's with `user_id`. A user token sees only that
/// user's containers: naming another user or asking for `all` is 403.
#[utoipa::path(
    method(get, post),
    path = "/api/ContainerManager/list_containers",
    tag = "containers",
    params(ListParams),
    request_body(content = Option<ListParams>, description = "The same parameters as a JSON object"),
    responses((status = 200, description = "The containers, with live statuses unless `stale` says why not", body = ListingAnswer))
)]
pub async fn list_containers(state: Data<AppState>, call: Call) -> Answer {
    let p: ListParams = call.params.parse()?;
    call.principal
        .authorize(Action::ReadContainer, None, state.user_actions())?;
    let scope = listing_scope(&call.principal, p.user_id.as_deref(), p.all.unwrap_or(false))?;
    // Taken before the listing is read: a change in between only makes the next request build anew.
    let revision = state.manager.listing_revision().await?;
    if let Some(body) = revision.and_then(|at| state.listings.get(&scope, at)) {
        return Ok(json_body(body));
    }
    let listing = match &scope {
        Some(user) => state.manager.list_user(user).await?,
        None => state.manager.list_all().await?,
    };
    let body = Bytes::from(
        serde_json::to_vec(&ListingAnswer {
            containers: listing
                .containers
                .iter()
                .map(container_json)
                .collect::<Result<_, _>>()?,
            stale: listing.stale,
        })
        .map_err(|e| cm_core::Error::internal("the listing could not be written as JSON").with_source(e))?,
    );
    if let Some(at) = revision {
        state.listings.keep(scope, at, body.clone());
    }
    Ok(json_body(body))
}

/// A 200 answer of JSON already written.
fn json_body(body: Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(header::ContentType::json())
        .body(body)
}

/// Get a container
///
/// One container with its live status; with `health=true` also how it is doing.
#[utoipa::path(
    method(get, post),
    path = "/api/ContainerManager/get_container",
    tag = "containers",
    params(GetParams),
    request_body(content = Option<GetParams>, description = "The same parameters as a JSON object"),
    responses((status = 200, description = "The container", body = ContainerAnswer))
)]
pub async fn get_container(state: Data<AppState>, call: Call) -> Answer {
    let p: GetParams = call.params.parse()?;
    let authorized = call
        .container(&state, &p.container_id, Action::ReadContainer)
        .await?;
    let spec = state.manager.get(&authorized).await?;
    let mut container = container_json(&spec)?;
    if let Some(usage) = state.manager.disk_usage(&spec).await? {
        container["disk_usage"] = to_json(usage)?;
    }
    if p.health == Some(true) {
        container["health"] = to_json(state.manager.health(&spec).await?)?;
    }
    let mut response = about(HttpResponse::Ok().json(ContainerAnswer { container }), &spec);
    response
        .extensions_mut()
        .insert(crate::toolbox::Readable(authorized));
    Ok(response)
}

/// Delete a container
///
/// Removes the container, its route, its keys and its port leases. A running container is
/// refused (409) unless `force`. The data volume is kept unless `purge` (admin only). The owner
/// may delete when `[auth] user_actions` has `delete` (the default). With the engine down nothing
/// changes (503).
#[utoipa::path(
    post,
    path = "/api/ContainerManager/delete_container",
    tag = "containers",
    params(DeleteParams),
    request_body(content = Option<DeleteParams>, description = "The same parameters as a JSON object"),
    responses((status = 200, description = "Deleted", body = DeletedAnswer))
)]
pub async fn delete_container(state: Data<AppState>, call: Call) -> Answer {
    let p: DeleteParams = call.params.parse()?;
    let container = call
        .container(&state, &p.container_id, Action::DeleteContainer)
        .await?;
    let options = DeleteOptions {
        force: p.force.unwrap_or(false),
        purge: p.purge.unwrap_or(false),
    };
    let manager = state.manager.clone();
    let deleted = detached(async move { manager.delete(&container, options).await }).await?;
    Ok(HttpResponse::Ok().json(DeletedAnswer {
        deleted: deleted.container_name.to_string(),
        container_id: deleted.container_id,
        purged: options.purge,
        volume_name: deleted.volume_name.to_string(),
    }))
}

/// Start a container
///
/// Starting a running container is fine. SSH keys are re-applied.
#[utoipa::path(
    post,
    path = "/api/ContainerManager/start_container",
    tag = "containers",
    params(ContainerRef),
    request_body(content = Option<ContainerRef>, description = "The same parameters as a JSON object"),
    responses((status = 200, description = "Started", body = ContainerAnswer))
)]
pub async fn start_container(state: Data<AppState>, call: Call) -> Answer {
    lifecycle(state, call, Lifecycle::Start).await
}

/// Stop a container
///
/// Stopping a stopped container is fine. Its route stays (nginx answers 502 until it starts).
#[utoipa::path(
    post,
    path = "/api/ContainerManager/stop_container",
    tag = "containers",
    params(ContainerRef),
    request_body(content = Option<ContainerRef>, description = "The same parameters as a JSON object"),
    responses((status = 200, description = "Stopped", body = ContainerAnswer))
)]
pub async fn stop_container(state: Data<AppState>, call: Call) -> Answer {
    lifecycle(state, call, Lifecycle::Stop).await
}

/// Restart a container
///
/// SSH keys are re-applied.
#[utoipa::path(
    post,
    path = "/api/ContainerManager/restart_container",
    tag = "containers",
    params(ContainerRef),
    request_body(content = Option<ContainerRef>, description = "The same parameters as a JSON object"),
    responses((status = 200, description = "Restarted", body = ContainerAnswer))
)]
pub async fn restart_container(state: Data<AppState>, call: Call) -> Answer {
    lifecycle(state, call, Lifecycle::Restart).await
}

async fn lifecycle(state: Data<AppState>, call: Call, what: Lifecycle) -> Answer {
    let p: ContainerRef = call.params.parse()?;
    let container = call.container(&state, &p.container_id, what.action()).await?;
    let manager = state.manager.clone();
    let spec = detached(async move { manager.lifecycle(&container, what).await }).await?;
    container_answer(&spec)
}

/// Read a container's logs
///
/// The last `tail` lines of standard output and standard error, interleaved as they came. With
/// `follow` the answer is `text/plain`, streamed (chunked) as new output comes.
#[utoipa::path(
    method(get, post),
    path = "/api/ContainerManager/container_logs",
    tag = "containers",
    params(LogsParams),
    request_body(content = Option<LogsParams>, description = "The same parameters as a JSON object"),
    responses(
        (status = 200, description = "The logs (JSON), or with `follow` a text/plain stream",
            content((LogsAnswer = "application/json"), (String = "text/plain")))
    )
)]
pub async fn container_logs(state: Data<AppState>, call: Call) -> Answer {
    let p: LogsParams = call.params.parse()?;
    let tail = p.tail.unwrap_or(DEFAULT_TAIL);
    if tail > MAX_TAIL {
        return Err(ApiError::new(
            ErrorCode::InvalidInput,
            format!("tail is at most {MAX_TAIL} lines"),
        )
        .for_field("tail"));
    }
    let container = call.container(&state, &p.container_id, Action::ReadLogs).await?;
    let follow = p.follow.unwrap_or(false);
    let since = p
        .since
        .as_deref()
        .map(LogRequest::parse_since)
        .transpose()
        .map_err(|e| e.for_field("since"))?;
    let request = LogRequest {
        tail: Some(usize::try_from(tail).unwrap_or(usize::MAX)),
        follow,
        timestamps: p.timestamps.unwrap_or(false),
        since,
    };
    let mut stream = state.manager.logs(&container, &request).await?;
    if follow {
        let body = stream.map(|chunk| match chunk {
            Ok(chunk) => Ok(Bytes::from(chunk.text)),
            Err(e) => Err(std::io::Error::other(e.message().to_owned())),
        });
        return Ok(HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
            .streaming(body));
    }
    let mut logs = String::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if logs.len() + chunk.text.len() > LOGS_MAX_BYTES {
            break;
        }
        logs.push_str(&chunk.text);
    }
    Ok(about(
        HttpResponse::Ok().json(LogsAnswer { logs }),
        container.spec(),
    ))
}

/// Run a command in a container
///
/// Runs the command in the running container and answers its exit code and output (200 whatever
/// the exit code). Past `timeout` seconds the command is killed and the answer is 504.
#[utoipa::path(
    post,
    path = "/api/ContainerManager/container_exec",
    tag = "containers",
    params(ExecParams),
    request_body(content = Option<ExecParams>, description = "The same parameters as a JSON object"),
    responses((status = 200, description = "The command ran", body = ExecAnswer))
)]
pub async fn container_exec(state: Data<AppState>, req: HttpRequest, call: Call) -> Answer {
    let p: ExecParams = call.params.parse()?;
    let seconds = p.timeout.unwrap_or(DEFAULT_EXEC_TIMEOUT);
    if !(1..=MAX_EXEC_TIMEOUT).contains(&seconds) {
        return Err(ApiError::new(
            ErrorCode::InvalidInput,
            format!("timeout is 1 to {MAX_EXEC_TIMEOUT} seconds"),
        )
        .for_field("timeout"));
    }
    let container = call.container(&state, &p.container_id, Action::Exec).await?;
    let spec = container.spec();
    let command = match p.command {
        CommandParam::Words(words) => Command::from_args(words),
        CommandParam::Line(line) => Command::parse(&line),
    }
    .map_err(|e| e.for_field("command"))?;
    let timeout = Duration::from_secs(seconds);
    // A user token's command runs as the type's exec user; the admin's as the image's user, or
    // as the user it names.
    let user = match (&call.principal, p.user) {
        (Principal::Admin, user) => user,
        (Principal::User(_), None) => Some(state.manager.exec_user_of(&spec.container_type)),
        (Principal::User(_), Some(_)) => {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "only the admin may choose the user a command runs as",
            )
            .for_field("user"));
        }
    };
    // Not detached: when the client hangs up, this call is dropped and the adapter kills the
    // command in the container.
    let run = state.manager.exec_as(&container, command, timeout, user);
    // The adapter enforces the limit; this guard only bounds a request whose engine hangs.
    let bounded = tokio::time::timeout(timeout + Duration::from_secs(15), run);
    let output = tokio::select! {
        finished = bounded => match finished {
            Ok(result) => result?,
            Err(_) => {
                return Err(ApiError::new(
                    ErrorCode::Timeout,
                    format!("the command did not finish within {seconds} seconds"),
                ));
            }
        },
        // Dropping the command's future kills it in the container.
        () = crate::hangup::hung_up(&req) => {
            tracing::info!(container = %spec.container_name, "the client hung up; its command was stopped");
            return Err(ApiError::new(ErrorCode::Timeout, "the client hung up"));
        }
    };
    Ok(about(
        HttpResponse::Ok().json(ExecAnswer {
            exit_code: output.exit_code,
            stdout: output.stdout,
            stderr: output.stderr,
        }),
        spec,
    ))
}

// ---------------------------------------------------------------------------------------------
// SSH.

/// Authorize an SSH key on a container
///
/// Parses and stores one ed25519 key; it is written into the running container now, or at its
/// next start.
#[utoipa::path(
    post,
    path = "/api/ContainerManager/add_ssh_key_to_container",
    tag = "ssh",
    params(AddKeyParams),
    request_body(content = Option<AddKeyParams>, description = "The same parameters as a JSON object"),
    responses((status = 200, description = "Added (or already present)", body = KeyAddedAnswer))
)]
pub async fn add_ssh_key_to_container(state: Data<AppState>, call: Call) -> Answer {
    let p: AddKeyParams = call.params.parse()?;
    let container = call.container(&state, &p.container_id, Action::AddSshKey).await?;
    let spec = container.spec().clone();
    let manager = state.manager.clone();
    let added = detached(async move { manager.add_ssh_key(&container, &p.ssh_public_key).await }).await?;
    Ok(about(
        HttpResponse::Ok().json(KeyAddedAnswer {
            key: to_json(&added.key)?,
            added: added.added,
            applied: added.applied,
        }),
        &spec,
    ))
}

/// Remove an SSH key from a container
#[utoipa::path(
    post,
    path = "/api/ContainerManager/remove_ssh_key_from_container",
    tag = "ssh",
    params(RemoveKeyParams),
    request_body(content = Option<RemoveKeyParams>, description = "The same parameters as a JSON object"),
    responses((status = 200, description = "Removed", body = KeyRemovedAnswer))
)]
pub async fn remove_ssh_key_from_container(state: Data<AppState>, call: Call) -> Answer {
    let p: RemoveKeyParams = call.params.parse()?;
    let container = call
        .container(&state, &p.container_id, Action::RemoveSshKey)
        .await?;
    let manager = state.manager.clone();
    let fingerprint = p.fingerprint.clone();
    let applied = detached(async move { manager.remove_ssh_key(&container, &fingerprint).await }).await?;
    Ok(HttpResponse::Ok().json(KeyRemovedAnswer {
        removed: p.fingerprint,
        applied,
    }))
}

/// List the SSH keys of a container
#[utoipa::path(
    method(get, post),
    path = "/api/ContainerManager/list_container_ssh_keys",
    tag = "ssh",
    params(ContainerRef),
    request_body(content = Option<ContainerRef>, description = "The same parameters as a JSON object"),
    responses((status = 200, description = "The keys", body = KeysAnswer))
)]
pub async fn list_container_ssh_keys(state: Data<AppState>, call: Call) -> Answer {
    let p: ContainerRef = call.params.parse()?;
    let container = call
        .container(&state, &p.container_id, Action::ReadSshInfo)
        .await?;
    let keys = state.manager.ssh_keys(&container).await?;
    Ok(HttpResponse::Ok().json(KeysAnswer {
        keys: to_json(&keys)?,
    }))
}

/// How to connect to a container over SSH
#[utoipa::path(
    method(get, post),
    path = "/api/ContainerManager/get_container_ssh_info",
    tag = "ssh",
    params(ContainerRef),
    request_body(content = Option<ContainerRef>, description = "The same parameters as a JSON object"),
    responses((status = 200, description = "Connection details", body = SshInfoDoc))
)]
pub async fn get_container_ssh_info(state: Data<AppState>, call: Call) -> Answer {
    let p: ContainerRef = call.params.parse()?;
    let container = call
        .container(&state, &p.container_id, Action::ReadSshInfo)
        .await?;
    let info = state.manager.ssh_info(&container).await?;
    Ok(about(HttpResponse::Ok().json(info), container.spec()))
}

/// Register one's own SSH key (self-service)
///
/// The original's user-facing call: a user token adds a key to its own SSH-enabled container (the
/// one named by `container_id`, else its first by name) and gets the connection details back, in
/// the original's field names. The admin names the container.
#[utoipa::path(
    post,
    path = "/api/ContainerManager/register_ssh_key",
    tag = "ssh",
    params(RegisterKeyParams),
    request_body(content = Option<RegisterKeyParams>, description = "The same parameters as a JSON object"),
    responses((status = 200, description = "Registered (or already there)", body = Object))
)]
pub async fn register_ssh_key(state: Data<AppState>, call: Call) -> Answer {
    let p: RegisterKeyParams = call.params.parse()?;
    let container = match (&p.container_id, &call.principal) {
        (Some(reference), _) => call.container(&state, reference, Action::AddSshKey).await?,
        (None, Principal::Admin) => {
            return Err(ApiError::bad_request(
                "the admin has no containers of its own: name one with container_id",
            )
            .for_field("container_id"));
        }
        (None, Principal::User(_)) => {
            // The user's own SSH containers, as handles: the first is used without resolving again.
            let (own, _) = state
                .manager
                .ssh_containers_for(&call.principal, Action::AddSshKey)
                .await?;
            let first = own.into_iter().next().ok_or_else(|| {
                ApiError::new(
                    ErrorCode::NotFound,
                    "you have no SSH-enabled container: ask the admin for one (such as cli_v4)",
                )
            })?;
            call.target(first)
        }
    };
    let manager = state.manager.clone();
    let key = p.ssh_public_key;
    let adding = container.clone();
    let added = detached(async move { manager.add_ssh_key(&adding, &key).await }).await?;
    let info = state.manager.ssh_info(&container).await?;
    let spec = container.spec();
    Ok(HttpResponse::Ok().json(json!({
        "message": if added.added { "SSH key registered" } else { "SSH key already registered" },
        "container_name": spec.container_name,
        "ssh_port": info.port,
        "server_ip": info.host,
        "username": info.user,
        "connection_string": info.command,
        "docksh": info.docksh,
        "key": to_json(&added.key)?,
        "added": added.added,
        "applied": added.applied,
    })))
}

/// One's own containers and how to reach them over SSH (self-service)
///
/// The original's user-facing call, in its field names: every container of the user with its
/// HTTP path and, where SSH is on, its port and connection string.
#[utoipa::path(
    method(get, post),
    path = "/api/ContainerManager/get_my_ssh_info",
    tag = "ssh",
    params(MySshParams),
    request_body(content = Option<MySshParams>, description = "The same parameters as a JSON object"),
    responses((status = 200, description = "The user's containers", body = Object))
)]
pub async fn get_my_ssh_info(state: Data<AppState>, call: Call) -> Answer {
    let p: MySshParams = call.params.parse()?;
    call.principal
        .authorize(Action::ReadSshInfo, None, state.user_actions())?;
    let scope = listing_scope(&call.principal, p.user_id.as_deref(), false)?;
    let Some(user) = scope else {
        return Err(ApiError::bad_request(
            "the admin has no containers of its own: name a user with user_id",
        )
        .for_field("user_id"));
    };
    let listing = state.manager.list_user(&user).await?;
    let server_ip = state.manager.ssh_host();
    let mut containers = Vec::with_capacity(listing.containers.len());
    for spec in &listing.containers {
        // A container on another node of a cluster is reached at that node's address.
        let host = state.manager.ssh_host_of(spec).await;
        containers.push({
            let mut entry = json!({
                "container_id": spec.short_id(),
                "container_name": spec.container_name,
                "container_type": spec.container_type,
                "status": spec.status,
                "http_url": spec.url_path.trim_end_matches('/'),
                "ssh_enabled": spec.ssh_port.is_some(),
            });
            if let Some(port) = spec.ssh_port {
                entry["ssh_port"] = json!(port);
                entry["connection_string"] = json!(cm_core::ssh_command(&host, port));
            }
            entry
        });
    }
    Ok(HttpResponse::Ok().json(json!({
        "containers": containers,
        "server_ip": server_ip,
        "stale": listing.stale,
    })))
}

/// A container's resource use and health
///
/// CPU (percent of one CPU, sampled over about a second), memory without the page cache and its
/// limit, processes, network and block I/O, and from the engine's record: restarts, the last exit
/// code, whether the kernel killed it for memory, when it last started.
#[utoipa::path(
    method(get, post),
    path = "/api/ContainerManager/container_stats",
    tag = "containers",
    params(ContainerRef),
    request_body(content = Option<ContainerRef>, description = "The same parameters as a JSON object"),
    responses((status = 200, description = "Use and health", body = StatsAnswer))
)]
pub async fn container_stats(state: Data<AppState>, call: Call) -> Answer {
    let p: ContainerRef = call.params.parse()?;
    let container = call
        .container(&state, &p.container_id, Action::ReadContainer)
        .await?;
    let stats = state.manager.stats(&container).await?;
    let spec = container.spec();
    Ok(about(
        HttpResponse::Ok().json(json!({ "container_name": spec.container_name, "stats": to_json(stats)? })),
        spec,
    ))
}

/// List the SSH-enabled containers
///
/// Same scoping as `list_containers`.
#[utoipa::path(
    method(get, post),
    path = "/api/ContainerManager/list_ssh_containers",
    tag = "ssh",
    params(ListParams),
    request_body(content = Option<ListParams>, description = "The same parameters as a JSON object"),
    responses((status = 200, description = "The SSH-enabled containers", body = ListingAnswer))
)]
pub async fn list_ssh_containers(state: Data<AppState>, call: Call) -> Answer {
    let p: ListParams = call.params.parse()?;
    call.principal
        .authorize(Action::ReadSshInfo, None, state.user_actions())?;
    let scope = listing_scope(&call.principal, p.user_id.as_deref(), p.all.unwrap_or(false))?;
    let listing = state.manager.list_ssh(scope.as_ref()).await?;
    Ok(HttpResponse::Ok().json(ListingAnswer {
        containers: listing
            .containers
            .iter()
            .map(container_json)
            .collect::<Result<_, _>>()?,
        stale: listing.stale,
    }))
}

// ---------------------------------------------------------------------------------------------
// System.

/// The configured container types
#[utoipa::path(
    method(get, post),
    path = "/api/ContainerManager/list_types",
    tag = "system",
    responses((status = 200, description = "The types", body = TypesAnswer))
)]
pub async fn list_types(state: Data<AppState>, call: Call) -> Answer {
    let NoParams = call.params.parse()?;
    call.principal
        .authorize(Action::ReadContainer, None, state.user_actions())?;
    Ok(HttpResponse::Ok().json(TypesAnswer {
        types: state
            .manager
            .types()
            .into_iter()
            .map(type_json)
            .collect::<Result<_, _>>()?,
    }))
}

/// The health of the Docker engine and of HTTP routing
///
/// 200 when the engine answers; 503 (`unavailable`) when it does not.
#[utoipa::path(
    method(get, post),
    path = "/api/ContainerManager/docker_health",
    tag = "system",
    responses((status = 200, description = "The engine answers", body = HealthAnswer))
)]
pub async fn docker_health(state: Data<AppState>, call: Call) -> Answer {
    let NoParams = call.params.parse()?;
    call.principal
        .authorize(Action::ReadHealth, None, state.user_actions())?;
    let engine = state.manager.engine_info().await?;
    // How many containers the host holds, and whose, is the admin's to know.
    let counts = match call.principal {
        Principal::Admin => Some(EngineCounts::of(&state.manager.engine_containers().await?)),
        Principal::User(_) => None,
    };
    Ok(HttpResponse::Ok().json(HealthAnswer {
        ok: true,
        engine: to_json(&engine)?,
        proxy: to_json(state.manager.probe_proxy().await)?,
        containers: counts.as_ref().map(to_json).transpose()?,
    }))
}

/// Every container on the engine, managed or not (admin only)
///
/// Each is marked `is_tb_managed` when a ContainerManager (this one or the Python original) made
/// it; the rest are the host's own.
#[utoipa::path(
    method(get, post),
    path = "/api/ContainerManager/list_all_docker_containers",
    tag = "system",
    responses((status = 200, description = "The engine's containers", body = EngineContainersAnswer))
)]
pub async fn list_all_docker_containers(state: Data<AppState>, call: Call) -> Answer {
    let NoParams = call.params.parse()?;
    call.principal
        .authorize(Action::Administer, None, state.user_actions())?;
    let containers = state
        .manager
        .engine_containers()
        .await?
        .into_iter()
        .map(|c| EngineContainerDoc::from(&c))
        .collect();
    Ok(HttpResponse::Ok().json(EngineContainersAnswer {
        containers,
        docker_available: true,
    }))
}

/// The nodes containers are placed on (admin only)
///
/// On a Swarm runtime, each node with its state, capacity and what the manager placed on it
/// (containers, the memory and CPUs they reserve); on a single engine, no nodes.
#[utoipa::path(
    method(get, post),
    path = "/api/ContainerManager/list_nodes",
    tag = "system",
    responses((status = 200, description = "The nodes", body = NodesAnswer))
)]
pub async fn list_nodes(state: Data<AppState>, call: Call) -> Answer {
    let NoParams = call.params.parse()?;
    call.principal
        .authorize(Action::Administer, None, state.user_actions())?;
    let nodes = state.manager.nodes().await?.iter().map(NodeDoc::of).collect();
    Ok(HttpResponse::Ok().json(NodesAnswer { nodes }))
}

/// Infrastructure services running on the engine (admin only)
///
/// Redis, MinIO, SearXNG, OpenTelemetry and OpenObserve containers, found by image name or
/// well-known port, with their URLs inside Docker networks and from outside.
#[utoipa::path(
    method(get, post),
    path = "/api/ContainerManager/discover_services",
    tag = "system",
    responses((status = 200, description = "The services found", body = ServicesAnswer))
)]
pub async fn discover_services(state: Data<AppState>, call: Call) -> Answer {
    let NoParams = call.params.parse()?;
    call.principal
        .authorize(Action::Administer, None, state.user_actions())?;
    let services = state.manager.discover_services().await?;
    Ok(HttpResponse::Ok().json(ServicesAnswer {
        services: services.iter().map(ServiceDoc::from).collect(),
        docker_available: true,
    }))
}

/// The audit trail (admin only)
///
/// Every change through the API, the dashboard and `cm`, and every sign-in (failed ones too):
/// who, what, on what, with which parameters (secrets replaced by `***`), the result, when and
/// from where. Newest first.
#[utoipa::path(
    method(get, post),
    path = "/api/ContainerManager/audit_log",
    tag = "system",
    params(AuditParams),
    responses((status = 200, description = "The entries", body = AuditAnswer))
)]
pub async fn audit_log(state: Data<AppState>, call: Call) -> Answer {
    let p: AuditParams = call.params.parse()?;
    call.principal
        .authorize(Action::Administer, None, state.user_actions())?;
    let Some(auditor) = &state.auditor else {
        return Ok(HttpResponse::Ok().json(AuditAnswer { entries: Vec::new() }));
    };
    let user = p
        .user_id
        .as_deref()
        .map(|u| UserId::parse(u.trim()).map_err(|e| e.for_field("user_id")))
        .transpose()?;
    let target = match p.container_id.as_deref() {
        Some(reference) => Some(state.manager.audit_target(reference).await.0),
        None => None,
    };
    let since = p
        .since
        .as_deref()
        .map(|s| LogRequest::parse_since(s).map_err(|e| e.for_field("since")))
        .transpose()?;
    let query = cm_core::AuditQuery {
        user,
        target,
        since,
        limit: p.limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
    };
    let entries = auditor
        .query(&query)
        .await?
        .iter()
        .map(to_json)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(AuditAnswer { entries }))
}

/// Live container events (server-sent events)
///
/// A `text/event-stream`: first `event: snapshot` with every container the caller may see (the
/// admin all, a user their own), then `event: changed` for each state change
/// (`{"container_name", "container_id", "user_id", "container_type", "status"}`, `status`
/// `removed` when it is gone; key by `container_id`: an update removes the old id and starts a
/// new one), a new snapshot when the client fell behind, and a comment every 20 s. A user's stream
/// counts as one of their followed logs (429 over the limit).
#[utoipa::path(
    method(get, post),
    path = "/api/ContainerManager/container_events",
    tag = "containers",
    responses((status = 200, description = "The event stream", body = String, content_type = "text/event-stream"))
)]
pub async fn container_events(state: Data<AppState>, call: Call) -> Answer {
    let NoParams = call.params.parse()?;
    call.principal
        .authorize(Action::ReadContainer, None, state.user_actions())?;
    let user = match &call.principal {
        Principal::Admin => None,
        Principal::User(user) => Some(user.clone()),
    };
    let events = state.manager.live_events(user.as_ref()).await?;
    let events = while_signed_in(state.clone(), call.credential, events);
    Ok(crate::sse::response(events, |event| {
        let name = match event {
            cm_core::LiveEvent::Snapshot { .. } => "snapshot",
            cm_core::LiveEvent::Changed(_) => "changed",
            cm_core::LiveEvent::Engine { .. } => "engine",
        };
        serde_json::to_string(event).ok().map(|data| (name, data))
    }))
}

/// How often an event stream checks that its credential still signs in.
const STREAM_CREDENTIAL_CHECK: Duration = Duration::from_secs(5);

/// Ends `events` once the credential that opened them no longer signs in (a revoked or expired
/// token, a rotated admin key), checked every [`STREAM_CREDENTIAL_CHECK`]: a stream must not
/// outlive the right to read it.
fn while_signed_in(
    state: Data<AppState>,
    credential: cm_core::Secret,
    events: cm_core::LiveEvents,
) -> cm_core::LiveEvents {
    let signed_out = async move {
        let mut ticks = tokio::time::interval(STREAM_CREDENTIAL_CHECK);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            // Only a refusal ends it: a dependency that can not check now (the ToolBox worker)
            // is asked again at the next tick.
            if let Err(e) = state.auth.authenticate(&credential).await
                && e.kind() == cm_core::ErrorKind::Unauthorized
            {
                return;
            }
        }
    };
    Box::pin(events.take_until(signed_out))
}

/// Who the credentials belong to
#[utoipa::path(
    method(get, post),
    path = "/api/ContainerManager/whoami",
    tag = "system",
    responses((status = 200, description = "The caller", body = WhoamiAnswer))
)]
pub async fn whoami(call: Call) -> Answer {
    let NoParams = call.params.parse()?;
    let answer = match &call.principal {
        Principal::Admin => WhoamiAnswer {
            role: "admin".to_owned(),
            user_id: None,
        },
        Principal::User(user) => WhoamiAnswer {
            role: "user".to_owned(),
            user_id: Some(user.to_string()),
        },
    };
    Ok(HttpResponse::Ok().json(answer))
}

// ---------------------------------------------------------------------------------------------
// Quotas.

/// A user's quota
///
/// The limits in force (the admin's overrides over the configured defaults; `null` is
/// unlimited), the overrides, and what the user's containers hold. A user token reads its own.
#[utoipa::path(
    method(get, post),
    path = "/api/ContainerManager/get_user_quota",
    tag = "quotas",
    params(UserParams),
    responses((status = 200, description = "The quota and its use", body = QuotaAnswer))
)]
pub async fn get_user_quota(state: Data<AppState>, call: Call) -> Answer {
    let p: UserParams = call.params.parse()?;
    let user = UserId::parse(p.user_id.trim()).map_err(|e| e.for_field("user_id"))?;
    call.principal
        .listing_scope(Some(&user), false)
        .map_err(ApiError::from)?;
    let report = state.manager.quota(&user).await?;
    Ok(HttpResponse::Ok().json(json!({ "quota": to_json(report)? })))
}

/// Override a user's quota (admin only)
///
/// Limits given replace the user's override; absent ones keep it; `clear` drops every override
/// first. Containers over the new quota keep running; only new ones are refused (507).
#[utoipa::path(
    post,
    path = "/api/ContainerManager/set_user_quota",
    tag = "quotas",
    params(QuotaParams),
    request_body(content = Option<QuotaParams>, description = "The same parameters as a JSON object"),
    responses((status = 200, description = "The quota in force now", body = QuotaAnswer))
)]
pub async fn set_user_quota(state: Data<AppState>, call: Call) -> Answer {
    call.principal
        .authorize(Action::Administer, None, state.user_actions())?;
    let p: QuotaParams = call.params.parse()?;
    let user = UserId::parse(p.user_id.trim()).map_err(|e| e.for_field("user_id"))?;
    let containers = p
        .containers
        .map(|n| {
            u32::try_from(n).map_err(|_| {
                ApiError::new(ErrorCode::InvalidInput, "containers is too large").for_field("containers")
            })
        })
        .transpose()?;
    let memory = p
        .memory
        .as_deref()
        .map(MemoryLimit::parse)
        .transpose()
        .map_err(|e| e.for_field("memory"))?;
    let cpus = p
        .cpus
        .as_deref()
        .map(|text| {
            text.trim()
                .parse::<f64>()
                .map_err(|_| cm_core::Error::invalid("cpus must be a number such as 2.5"))
                .and_then(CpuLimit::from_cpus)
        })
        .transpose()
        .map_err(|e| e.for_field("cpus"))?;
    let disk = p
        .disk
        .as_deref()
        .map(DiskSize::parse)
        .transpose()
        .map_err(|e| e.for_field("disk"))?;
    let changes = UserQuota {
        containers,
        memory,
        cpus,
        disk,
    };
    let report = state
        .manager
        .change_quota(&user, changes, p.clear == Some(true))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "quota": to_json(report)? })))
}

// ---------------------------------------------------------------------------------------------
// Credentials (admin only).

/// Create a user token (admin only)
///
/// The token reaches only that user's containers (list, get, start, stop, restart, logs, exec,
/// add SSH keys, SSH info). It is shown once; only its hash is stored.
#[utoipa::path(
    post,
    path = "/api/ContainerManager/create_user_token",
    tag = "tokens",
    params(TokenParams),
    request_body(content = Option<TokenParams>, description = "The same parameters as a JSON object"),
    responses((status = 201, description = "The new token, shown once", body = TokenCreatedAnswer))
)]
pub async fn create_user_token(state: Data<AppState>, call: Call) -> Answer {
    call.principal
        .authorize(Action::Administer, None, state.user_actions())?;
    let p: TokenParams = call.params.parse()?;
    let user = UserId::parse(p.user_id.trim()).map_err(|e| e.for_field("user_id"))?;
    let lifetime = p
        .expires_in
        .as_deref()
        .map(|text| {
            let text = text.trim();
            text.parse::<u64>()
                .map(Duration::from_secs)
                .or_else(|_| humantime::parse_duration(text))
                .map_err(|_| {
                    ApiError::new(
                        ErrorCode::InvalidInput,
                        "expires_in is seconds or a duration such as 30d or 12h",
                    )
                    .for_field("expires_in")
                })
        })
        .transpose()?;
    let (record, token) = state.auth.create_expiring_token(&user, lifetime).await?;
    Ok(secret_answer(HttpResponse::Created()).json(TokenCreatedAnswer {
        token: token.expose().to_owned(),
        id: record.id,
        user_id: record.user_id.to_string(),
        created_at: record.created_at,
        expires_at: record.expires_at,
    }))
}

/// Revoke user tokens (admin only)
///
/// Every token of `user_id`, or the one token `token_id`.
#[utoipa::path(
    post,
    path = "/api/ContainerManager/revoke_user_token",
    tag = "tokens",
    params(RevokeParams),
    request_body(content = Option<RevokeParams>, description = "The same parameters as a JSON object"),
    responses((status = 200, description = "Revoked", body = RevokedAnswer))
)]
pub async fn revoke_user_token(state: Data<AppState>, call: Call) -> Answer {
    call.principal
        .authorize(Action::Administer, None, state.user_actions())?;
    let p: RevokeParams = call.params.parse()?;
    let revoked = match (p.user_id, p.token_id) {
        (Some(user), _) => {
            let user = UserId::parse(user.trim()).map_err(|e| e.for_field("user_id"))?;
            state.auth.revoke_user_tokens(&user).await?
        }
        (None, Some(id)) => {
            state
                .auth
                .revoke_token(&id)
                .await
                .map_err(|e| ApiError::from(e).for_field("token_id"))?;
            1
        }
        (None, None) => return Err(ApiError::bad_request("give user_id or token_id")),
    };
    Ok(HttpResponse::Ok().json(RevokedAnswer { revoked }))
}

/// List user tokens (admin only)
///
/// Public ids and users, never the tokens themselves.
#[utoipa::path(
    method(get, post),
    path = "/api/ContainerManager/list_user_tokens",
    tag = "tokens",
    responses((status = 200, description = "The tokens", body = TokensAnswer))
)]
pub async fn list_user_tokens(state: Data<AppState>, call: Call) -> Answer {
    call.principal
        .authorize(Action::Administer, None, state.user_actions())?;
    let NoParams = call.params.parse()?;
    let tokens = state.auth.tokens().await?;
    Ok(HttpResponse::Ok().json(TokensAnswer {
        tokens: to_json(&tokens)?,
    }))
}

/// Replace the admin key (admin only)
///
/// Generates a new admin key, stores its hash and answers it once; the old key stops working at
/// once. Refused (409) when the key comes from `CONTAINER_ADMIN_KEY`: change the variable instead.
#[utoipa::path(
    post,
    path = "/api/ContainerManager/rotate_admin_key",
    tag = "tokens",
    responses((status = 200, description = "The new admin key, shown once", body = AdminKeyAnswer))
)]
pub async fn rotate_admin_key(state: Data<AppState>, call: Call) -> Answer {
    call.principal
        .authorize(Action::Administer, None, state.user_actions())?;
    let NoParams = call.params.parse()?;
    let key = state.auth.rotate_admin_key().await?;
    tracing::warn!("the admin key was rotated through the API");
    Ok(secret_answer(HttpResponse::Ok()).json(AdminKeyAnswer {
        admin_key: key.expose().to_owned(),
    }))
}

/// Move a container to another node with its data (admin only, Swarm)
///
/// Stops it, copies its data volume to the node, re-creates it there with the same name, ports,
/// keys and route, and removes the data from the old node; if anything fails it comes back where
/// it was. Refused on a single engine (422), to the node it is on (409), from a node that is down
/// and to one that takes no containers (503).
#[utoipa::path(
    post,
    path = "/api/ContainerManager/move_container",
    tag = "containers",
    params(MoveParams),
    request_body(content = Option<MoveParams>, description = "The same parameters as a JSON object"),
    responses((status = 200, description = "The container on its new node", body = MovedAnswer))
)]
pub async fn move_container(state: Data<AppState>, call: Call) -> Answer {
    let p: MoveParams = call.params.parse()?;
    let container = call
        .container(&state, &p.container_id, Action::UpdateContainer)
        .await?;
    let node = cm_core::NodeName::parse(p.node.trim()).map_err(|e| e.for_field("node"))?;
    let manager = state.manager.clone();
    let moved = detached(async move { manager.move_container(&container, &node).await }).await?;
    Ok(HttpResponse::Ok().json(MovedAnswer {
        container: container_json(&moved.spec)?,
        from: moved.from.to_string(),
        copied_bytes: moved.copied_bytes,
        downtime_seconds: moved.downtime.as_secs_f64(),
    }))
}

/// Re-create a container with a new image (admin only)
///
/// Keeps its name, ports, volume, environment, limits, keys and route. The old container is kept
/// aside until the new one runs; if the new one fails, the old one comes back and the error says
/// so (e.g. 404 for a missing image).
#[utoipa::path(
    post,
    path = "/api/ContainerManager/update_container",
    tag = "containers",
    params(UpdateParams),
    request_body(content = Option<UpdateParams>, description = "The same parameters as a JSON object"),
    responses((status = 200, description = "The updated container", body = ContainerAnswer))
)]
pub async fn update_container(state: Data<AppState>, call: Call) -> Answer {
    let p: UpdateParams = call.params.parse()?;
    let container = call
        .container(&state, &p.container_id, Action::UpdateContainer)
        .await?;
    let image = p
        .image
        .as_deref()
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(|i| cm_core::ImageRef::parse(i).map_err(|e| e.for_field("image")))
        .transpose()?;
    let manager = state.manager.clone();
    let updated = detached(async move { manager.update(&container, image).await }).await?;
    container_answer(&updated)
}

/// Reconcile now (admin only)
///
/// Compares the store with the engine, nginx and the keys, and converges (see docs/operations.md).
/// The report lists every finding with its outcome. `cm-api` also reconciles at start, every
/// `CM_RECONCILE_INTERVAL` seconds, and when the engine comes back.
#[utoipa::path(
    post,
    path = "/api/ContainerManager/reconcile",
    tag = "system",
    params(ReconcileParams),
    request_body(content = Option<ReconcileParams>, description = "The same parameters as a JSON object"),
    responses((status = 200, description = "The report", body = Object))
)]
pub async fn reconcile(state: Data<AppState>, call: Call) -> Answer {
    call.principal
        .authorize(Action::Administer, None, state.user_actions())?;
    let p: ReconcileParams = call.params.parse()?;
    let options = cm_core::ReconcileOptions {
        dry_run: p.dry_run.unwrap_or(false),
        prune: p.prune.unwrap_or(false),
    };
    let background = state.reconciler.clone();
    let manager = state.manager.clone();
    let report = detached(async move { background.run(&manager, options).await }).await?;
    Ok(HttpResponse::Ok().json(report))
}

/// The reconciler's last report (admin only)
///
/// The last reconcile's report, the last failure to run one (the engine away), the interval, and
/// whether listings come from the engine's event stream.
#[utoipa::path(
    method(get, post),
    path = "/api/ContainerManager/reconcile_status",
    tag = "system",
    responses((status = 200, description = "The status", body = Object))
)]
pub async fn reconcile_status(state: Data<AppState>, call: Call) -> Answer {
    call.principal
        .authorize(Action::Administer, None, state.user_actions())?;
    let NoParams = call.params.parse()?;
    Ok(HttpResponse::Ok().json(state.reconciler.status(state.statuses.as_deref())))
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Whose containers a listing shows (the rule is cm-core's `Principal::listing_scope`).
fn listing_scope(
    principal: &Principal,
    user_id: Option<&str>,
    all: bool,
) -> Result<Option<UserId>, ApiError> {
    let named = user_id
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| UserId::parse(u).map_err(|e| e.for_field("user_id")))
        .transpose()?;
    Ok(principal.listing_scope(named.as_ref(), all)?)
}

fn container_answer(spec: &cm_core::ContainerSpec) -> Answer {
    Ok(about(
        HttpResponse::Ok().json(ContainerAnswer {
            container: container_json(spec)?,
        }),
        spec,
    ))
}

/// Marks an answer as being about `spec` (for the ToolBox answer mode's original fields).
fn about(mut response: HttpResponse, spec: &cm_core::ContainerSpec) -> HttpResponse {
    response
        .extensions_mut()
        .insert(crate::toolbox::Resolved(spec.clone()));
    response
}

/// An answer carrying a secret: never cached.
fn secret_answer(mut builder: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    builder.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    builder
}

/// Runs a use case on its own task, so it finishes even when the client hangs up.
async fn detached<T: 'static>(
    work: impl Future<Output = cm_core::Result<T>> + 'static,
) -> Result<T, ApiError> {
    match actix_web::rt::spawn(work).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(ApiError::internal("the operation failed unexpectedly")),
    }
}
