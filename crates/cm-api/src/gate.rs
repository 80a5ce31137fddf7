//! The gate in front of containers' apps, under the reserved prefix `/_cm/` that nginx passes to
//! cm-api on the containers' host (see `docs/nginx.md`):
//!
//! - `GET /_cm/check`: nginx's `auth_request` asks, per request, whether the caller may reach the
//!   container named by `X-CM-User`/`X-CM-Type` (set by nginx from the URL as it routes it) and
//!   where it listens. 200 with `X-CM-Upstream` and `X-CM-Strip`; 401 or 403 with `X-CM-Reason`.
//!   Answered from the store and the status view ([`cm_core::Manager::check_route`]).
//!   An idle-stopped container the caller may reach is started first, and the answer waits for
//!   its app (at most `[idle] wake_wait_seconds`; then 403 with reason `starting`).
//! - `/_cm/denied`: what nginx shows for a refused request: a redirect to the sign-in page for a
//!   browser without credentials, else 401, 403, 404, 502 or 503 with a small page (a starting
//!   container's asks again by itself).
//! - `GET/POST /_cm/login`: the sign-in page. A user token or the admin key becomes a signed,
//!   expiring `cm_route` cookie scoped to `/container/{user_id}/` (`/` on a subdomain), and the
//!   browser goes back where it came from.
//!
//! Programs send `Authorization: Bearer` instead of the cookie. nginx removes both before the
//! request reaches the app. With `[auth.toolbox] validate_url`, ToolBox's own `tb_session` cookie
//! is a credential too (the worker vouches for it), so a browser signed in at ToolBox needs no
//! sign-in here; while the worker can not be asked, such callers get `sign_in_unavailable`
//! (503 at `/_cm/denied`).

use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web::{self, Data, Form, Query};
use actix_web::{HttpRequest, HttpResponse, middleware};
use minijinja::{Environment, UndefinedBehavior, Value, context};
use serde::Deserialize;

use cm_core::{
    Action, Actor, AuditEntry, AuditSource, ErrorKind, Principal, RouteAnswer, RouteDenial, Secret, TypeName,
    UserId, WakeOutcome, Woken,
};

use crate::dashboard::{asset_url, security_headers, serve_asset};
use crate::error::ErrorCode;
use crate::sessions::{cookie_values, is_https};
use crate::state::AppState;

/// The reserved prefix on the containers' host.
pub const GATE_PREFIX: &str = "/_cm";
/// The cookie holding a route sign-in.
pub const ROUTE_COOKIE: &str = "cm_route";
/// The refusal reason when an address made too many failed sign-ins.
const RATE_LIMITED: &str = "rate_limited";
/// The refusal reason when a credential could not be checked (the ToolBox worker does not answer).
const SIGN_IN_UNAVAILABLE: &str = "sign_in_unavailable";

/// Why the route check could not tell who the caller is.
enum Undecided {
    /// The address made too many failed sign-ins.
    RateLimited,
    /// The credential's verifier can not be asked now (the ToolBox worker).
    Unavailable,
}

impl Undecided {
    fn of(e: &crate::error::ApiError) -> Option<Self> {
        match e.code() {
            ErrorCode::RateLimited => Some(Undecided::RateLimited),
            ErrorCode::Unavailable | ErrorCode::Timeout => Some(Undecided::Unavailable),
            _ => None,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Undecided::RateLimited => RATE_LIMITED,
            Undecided::Unavailable => SIGN_IN_UNAVAILABLE,
        }
    }
}

/// Registers the gate's routes (before the dashboard, whose scope takes every other path).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/_cm/check", web::get().to(check)).service(
        web::scope(GATE_PREFIX)
            .wrap(middleware::from_fn(security_headers))
            .route("/denied", web::to(denied))
            .route("/login", web::get().to(login_page))
            .route("/login", web::post().to(login))
            .route("/assets/{file}", web::get().to(serve_asset)),
    );
}

/// The user and type nginx took from the URL, when they are valid names.
fn target(req: &HttpRequest) -> Option<(UserId, TypeName)> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let user = UserId::parse(header("x-cm-user")?).ok()?;
    let kind = TypeName::parse(header("x-cm-type")?).ok()?;
    Some((user, kind))
}

/// The caller's address: the peer, or, when the peer is nginx on loopback, the address nginx
/// names in `X-Real-IP` (the site file sets it, replacing whatever a client sent).
fn client_address(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    if peer.is_loopback()
        && let Some(real) = req
            .headers()
            .get("x-real-ip")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    {
        return Some(real);
    }
    Some(peer)
}

/// Who the request's credential says it is at `target`'s containers: a bearer header (failures
/// counted per address; `Err` when the address is over the limit), else a `cm_route`
/// cookie valid for `target` (a signed cookie can not be guessed, and a stale one must still
/// lead to the sign-in; a cookie for another user's containers, planted by an app, is passed
/// over), else, with `[auth.toolbox] validate_url`, ToolBox's `tb_session` cookie. An
/// `Authorization` of another scheme (an app's own) is not ours and is ignored. `Ok(None)` when
/// nothing proves anything; `Err` when the address is over the limit or the credential could not
/// be checked.
async fn caller(
    state: &AppState,
    req: &HttpRequest,
    target: &UserId,
) -> Result<Option<Principal>, Undecided> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    if let Some(token) = bearer {
        return checked(state.authenticate(&Secret::new(token), client_address(req)).await);
    }
    for ticket in cookie_values(req, ROUTE_COOKIE) {
        if let Ok(principal) = state.auth.redeem_ticket(&ticket, target).await {
            return Ok(Some(principal));
        }
    }
    if let Some(session) = state.toolbox_session(req) {
        return checked(state.authenticate(&session, client_address(req)).await);
    }
    Ok(None)
}

/// A checked credential: who it is, nobody (refused), or undecided.
fn checked(result: Result<Principal, crate::error::ApiError>) -> Result<Option<Principal>, Undecided> {
    match result {
        Ok(principal) => Ok(Some(principal)),
        Err(e) => match Undecided::of(&e) {
            Some(undecided) => Err(undecided),
            None => Ok(None),
        },
    }
}

/// `GET /_cm/check`: nginx's per-request question.
async fn check(state: Data<AppState>, req: HttpRequest) -> HttpResponse {
    let refuse = |status: StatusCode, denial: RouteDenial| {
        HttpResponse::build(status)
            .insert_header(("X-CM-Reason", denial.code()))
            .finish()
    };
    let Some((user, kind)) = target(&req) else {
        return refuse(StatusCode::FORBIDDEN, RouteDenial::Unknown);
    };
    // nginx's auth_request passes on 401 and 403 only: other refusals are a 403 whose reason
    // `/_cm/denied` turns into their own status (429, 503).
    let undecided_refusal = |undecided: Undecided| {
        HttpResponse::Forbidden()
            .insert_header(("X-CM-Reason", undecided.reason()))
            .finish()
    };
    // A credential that can not be checked now still opens a public app.
    let (principal, unchecked) = match caller(&state, &req, &user).await {
        Ok(principal) => (principal, false),
        Err(Undecided::Unavailable) => (None, true),
        Err(undecided) => return undecided_refusal(undecided),
    };
    // An idle-stopped container the caller may reach is started here, and the answer waits
    // (bounded) for its app.
    let checked = state
        .manager
        .check_route_waking(principal.as_ref(), &user, &kind)
        .await;
    if let Ok((_, Some(woken))) = &checked {
        audit_wake(&state, &req, principal.as_ref(), &user, woken).await;
    }
    match checked.map(|(answer, _)| answer) {
        Ok(RouteAnswer::Allow {
            upstream,
            strip_prefix,
        }) => HttpResponse::Ok()
            .insert_header(("X-CM-Upstream", upstream.to_string()))
            .insert_header(("X-CM-Strip", if strip_prefix { "1" } else { "0" }))
            .finish(),
        Ok(RouteAnswer::Deny {
            denial: RouteDenial::SignIn,
        }) if unchecked => undecided_refusal(Undecided::Unavailable),
        Ok(RouteAnswer::Deny {
            denial: RouteDenial::SignIn,
        }) => refuse(StatusCode::UNAUTHORIZED, RouteDenial::SignIn),
        Ok(RouteAnswer::Deny { denial }) => refuse(StatusCode::FORBIDDEN, denial),
        Err(e) => {
            tracing::warn!(error = ?e, %user, %kind, "route check failed");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// Records the wake a request caused (once, by the request that started the container).
async fn audit_wake(
    state: &AppState,
    req: &HttpRequest,
    principal: Option<&Principal>,
    user: &UserId,
    woken: &Woken,
) {
    if !woken.started_here {
        return;
    }
    let actor = principal.map_or(Actor::Anonymous, crate::audit::actor_of);
    let entry = AuditEntry::new(actor, AuditSource::Route, "wake_container")
        .on(woken.container_name.as_str(), Some(user))
        .from(client_address(req));
    let entry = match &woken.outcome {
        WakeOutcome::Ready => entry.with_params(serde_json::json!({"app": "answers"})),
        WakeOutcome::Starting => entry.with_params(serde_json::json!({"app": "starting"})),
        WakeOutcome::Failed(e) => entry.failed(ErrorCode::of_kind(e.kind()).code()),
    };
    state.audit(entry).await;
}

/// `/_cm/denied`: the answer to a refused request, for people and programs.
async fn denied(req: HttpRequest) -> HttpResponse {
    let reason = req
        .headers()
        .get("x-cm-reason")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let original = req
        .headers()
        .get("x-cm-original-uri")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("/");
    let browser = wants_html(&req);
    let (status, title, message) = match reason {
        "sign_in" if browser => {
            let next = serde_urlencoded::to_string([("next", original)]).unwrap_or_default();
            return HttpResponse::Found()
                .insert_header((header::LOCATION, format!("{GATE_PREFIX}/login?{next}")))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish();
        }
        "sign_in" => (
            StatusCode::UNAUTHORIZED,
            "Sign-in required",
            "Send 'Authorization: Bearer <user token>', or sign in with a browser.",
        ),
        "forbidden" => (
            StatusCode::FORBIDDEN,
            "Not yours",
            "This container belongs to another user: your credential can not reach it.",
        ),
        "not_running" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Container stopped",
            "This container is not running. Its owner or the admin can start it again.",
        ),
        "starting" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Starting",
            "This container was stopped while nobody used it and is starting again now. It is ready in a few seconds.",
        ),
        SIGN_IN_UNAVAILABLE => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in unavailable",
            "Your ToolBox sign-in can not be checked right now (ToolBox does not answer). Try again in a few seconds.",
        ),
        RATE_LIMITED => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed sign-ins",
            "Too many wrong credentials came from your address. Wait a minute, then try again.",
        ),
        "unreachable" => (
            StatusCode::BAD_GATEWAY,
            "Not answering yet",
            "The container runs, but its app does not answer (yet). Try again in a few seconds.",
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "No such container",
            "There is no container at this address.",
        ),
    };
    let mut answer = HttpResponse::build(status);
    answer.insert_header((header::CACHE_CONTROL, "no-store"));
    if status == StatusCode::UNAUTHORIZED {
        answer.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
    }
    if matches!(status, StatusCode::SERVICE_UNAVAILABLE | StatusCode::BAD_GATEWAY) {
        answer.insert_header((header::RETRY_AFTER, "5"));
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        answer.insert_header((header::RETRY_AFTER, "60"));
    }
    if browser {
        let retry =
            (status == StatusCode::BAD_GATEWAY || reason == SIGN_IN_UNAVAILABLE || reason == "starting")
                .then_some(5);
        let page = render(
            "message.html",
            context! { status => status.as_u16(), title => title, message => message, retry => retry },
        );
        answer.content_type("text/html; charset=utf-8").body(page)
    } else {
        answer
            .content_type("text/plain; charset=utf-8")
            .body(format!("{} {title}: {message}\n", status.as_u16()))
    }
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
struct LoginForm {
    credential: String,
    next: String,
}

/// Where a sign-in may send the browser back to, and the cookie path it needs.
struct Destination {
    next: String,
    cookie_path: String,
    /// The user whose containers the browser opens (the sign-in is checked against it, and the
    /// ticket is for those containers only).
    user: UserId,
}

/// The user of a subdomain route's host, `{type}--{user}.{base_domain}` (as nginx matches it).
fn subdomain_user(req: &HttpRequest, base_domain: &str) -> Option<UserId> {
    let host = req.headers().get(header::HOST)?.to_str().ok()?;
    let host = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            name
        } else {
            host
        }
    });
    let label = host
        .to_ascii_lowercase()
        .strip_suffix(&format!(".{base_domain}"))?
        .to_owned();
    let (kind, user) = label.split_once("--")?;
    TypeName::parse(kind).ok()?;
    UserId::parse(user).ok()
}

/// Checks `next`: on path routing a container URL `/container/{user}/{type}/...`; on a subdomain
/// any local path. Anything else (another host, `//`, backslashes) is refused: no open redirect.
fn destination(req: &HttpRequest, next: &str, base_domain: Option<&str>) -> Option<Destination> {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control)
        && next.len() <= 2048;
    if !local {
        return None;
    }
    let subdomain = req
        .headers()
        .get("x-cm-route-host")
        .is_some_and(|v| v.as_bytes() == b"subdomain");
    if subdomain {
        return Some(Destination {
            next: next.to_owned(),
            cookie_path: "/".to_owned(),
            user: subdomain_user(req, base_domain?)?,
        });
    }
    let rest = next.strip_prefix("/container/")?;
    let mut parts = rest.splitn(3, '/');
    let user = UserId::parse(parts.next()?).ok()?;
    TypeName::parse(parts.next()?).ok()?;
    Some(Destination {
        next: next.to_owned(),
        cookie_path: format!("/container/{user}/"),
        user,
    })
}

/// `GET /_cm/login?next=...`.
async fn login_page(state: Data<AppState>, req: HttpRequest, query: Query<LoginQuery>) -> HttpResponse {
    let next = query.next.clone().unwrap_or_default();
    let base_domain = state.manager.config().routing.base_domain.clone();
    match destination(&req, &next, base_domain.as_deref()) {
        Some(to) => login_form(StatusCode::OK, &to.next, None),
        None => bad_destination(),
    }
}

/// `POST /_cm/login`: checks the credential, sets the route cookie, goes back.
async fn login(state: Data<AppState>, req: HttpRequest, form: Form<LoginForm>) -> HttpResponse {
    let base_domain = state.manager.config().routing.base_domain.clone();
    let Some(to) = destination(&req, &form.next, base_domain.as_deref()) else {
        return bad_destination();
    };
    if !crate::sessions::same_origin(&req) {
        return login_form(
            StatusCode::FORBIDDEN,
            &to.next,
            Some("This sign-in did not come from this page."),
        );
    }
    let hours = state.manager.config().routing.session_hours;
    let lifetime = Duration::from_secs(u64::from(hours) * 3600);
    let presented = Secret::new(form.credential.trim());
    let slot = match client_address(&req).map(|a| state.attempts.begin(a, Instant::now())) {
        Some(Err(seconds)) => {
            let message = format!("Too many failed sign-ins from your address: try again in {seconds} s.");
            let mut answer = login_form(StatusCode::TOO_MANY_REQUESTS, &to.next, Some(&message));
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                answer.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return answer;
        }
        Some(Ok(slot)) => Some(slot),
        None => None,
    };
    let issued = state.auth.issue_ticket(&presented, &to.user, lifetime).await;
    let attempt = match &issued {
        Ok((principal, _)) => {
            AuditEntry::new(crate::audit::actor_of(principal), AuditSource::Route, "sign_in")
        }
        Err(e) => AuditEntry::new(Actor::Anonymous, AuditSource::Route, "sign_in")
            .failed(crate::error::ErrorCode::of_kind(e.kind()).code()),
    };
    state
        .audit(
            attempt
                .on(format!("/container/{}/", to.user), Some(&to.user))
                .from(client_address(&req)),
        )
        .await;
    let (principal, ticket) = match issued {
        Ok(signed_in) => {
            if let Some(slot) = slot {
                slot.succeeded();
            }
            signed_in
        }
        Err(e) if matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout) => {
            // Not the caller's failure: the slot is given back.
            if let Some(slot) = slot {
                slot.succeeded();
            }
            tracing::warn!(error = ?e, "route sign-in could not be checked");
            return login_form(StatusCode::SERVICE_UNAVAILABLE, &to.next, Some(e.message()));
        }
        Err(_) => {
            return login_form(
                StatusCode::UNAUTHORIZED,
                &to.next,
                Some("That is not a valid user token or admin key."),
            );
        }
    };
    if principal
        .authorize(Action::ReachApp, Some(&to.user), state.user_actions())
        .is_err()
    {
        return login_form(
            StatusCode::FORBIDDEN,
            &to.next,
            Some("This token belongs to another user: it can not reach this container."),
        );
    }
    tracing::info!(who = ?principal, "signed in for container routes");
    let cookie = format!(
        "{ROUTE_COOKIE}={}; Path={}; Max-Age={}; HttpOnly; SameSite=Lax{}",
        ticket.expose(),
        to.cookie_path,
        lifetime.as_secs(),
        if is_https(&req) { "; Secure" } else { "" }
    );
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.next))
        .insert_header((header::SET_COOKIE, cookie))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

fn bad_destination() -> HttpResponse {
    HttpResponse::BadRequest()
        .content_type("text/html; charset=utf-8")
        .body(render(
            "message.html",
            context! {
                status => 400,
                title => "Nothing to sign in for",
                message => "Open a container's address; it brings you here when it needs a sign-in.",
            },
        ))
}

fn login_form(status: StatusCode, next: &str, error: Option<&str>) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .body(render("login.html", context! { next => next, error => error }))
}

/// True when the client prefers HTML (a browser navigating).
fn wants_html(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    for (name, source) in [
        ("gate.html", include_str!("../templates/gate/gate.html")),
        ("login.html", include_str!("../templates/gate/login.html")),
        ("message.html", include_str!("../templates/gate/message.html")),
    ] {
        if let Err(e) = env.add_template(name, source) {
            panic!("gate template {name} does not parse: {e:#}");
        }
    }
    // Our own URLs (no user input), so marked safe rather than escaped.
    env.add_function("asset", |name: &str| {
        Value::from_safe_string(format!("{GATE_PREFIX}{}", asset_url(name)))
    });
    env
});

fn render(name: &str, ctx: Value) -> String {
    TEMPLATES
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, template = name, "gate template failed");
            "<!doctype html><title>Error</title><p>Something went wrong.</p>".to_owned()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn destinations_are_container_urls_only() {
        let req = TestRequest::default().to_http_request();
        let ok = destination(&req, "/container/alice/cli_v4/x?y=1", None).unwrap();
        assert_eq!(ok.cookie_path, "/container/alice/");
        assert_eq!(ok.user.as_str(), "alice");
        for bad in [
            "https://evil.example/",
            "//evil.example/x",
            "/\\evil.example",
            "/container/../x",
            "/container/Bad User/t/",
            "/other",
            "",
            "/container/alice/cli_v4\r\nSet-Cookie: x=1",
        ] {
            assert!(destination(&req, bad, None).is_none(), "{bad:?}");
        }
        let sub = TestRequest::default()
            .insert_header(("x-cm-route-host", "subdomain"))
            .insert_header(("host", "cli_v4--bob.apps.example.org:8080"))
            .to_http_request();
        let to = destination(&sub, "/any/path", Some("apps.example.org")).unwrap();
        assert_eq!((to.cookie_path.as_str(), to.user.as_str()), ("/", "bob"));
        assert!(destination(&sub, "//evil.example", Some("apps.example.org")).is_none());
        assert!(
            destination(&sub, "/x", Some("other.example.org")).is_none(),
            "not a route host"
        );
    }
}
