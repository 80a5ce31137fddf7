//! The web dashboard, served by `cm-api` itself: server-rendered pages (minijinja, auto-escaped),
//! a little plain JavaScript, every asset embedded in the binary.
//!
//! - Sessions ([`crate::sessions`]) are server-side; the cookie holds a random id, never a credential.
//!   Every request re-authenticates through [`cm_core::Auth`], and authorization is
//!   [`cm_core::Principal::authorize`] against the container's real owner, exactly as in the REST
//!   handlers.
//! - Every form that changes something carries the session's CSRF token ([`viewer::Posted`]
//!   refuses a POST without it with 403 before the handler runs).
//! - Every answer carries a strict Content-Security-Policy (self only, no inline script) and the
//!   usual hardening headers ([`render::security_headers`]).
//!
//! Pages: `/login`, `/` (containers: search, sort and pages as query parameters), `/create`,
//! `/users`, `/keys`, `/settings`, `/logs/{name}` and `/containers/{name}` (details, delete
//! confirmation). Every destructive action has a confirmation page (GET) before its form
//! (POST), bulk actions included (`/bulk`, [`confirm`]). Small JSON and text endpoints for the
//! scripts live under `/ui/`; the embedded files under `/assets/`.

mod actions;
mod assets;
mod confirm;
mod health;
mod listing;
mod pages;
mod render;
mod ui;
mod viewer;
mod views;

pub(crate) use assets::url as asset_url;

/// `GET /assets/{file}`: the embedded file, or the not-found page.
pub(crate) async fn serve_asset(
    req: actix_web::HttpRequest,
    file: actix_web::web::Path<String>,
    version: actix_web::web::Query<assets::Version>,
) -> actix_web::HttpResponse {
    assets::serve(&req, &file, &version).unwrap_or_else(render::not_found_page)
}
pub(crate) use render::security_headers;

use actix_web::web;
use actix_web::{HttpRequest, HttpResponse, middleware};

/// Registers the dashboard's pages, endpoints and assets (after the API, whose paths win).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("")
            .wrap(middleware::from_fn(crate::audit::record_dashboard))
            .wrap(middleware::from_fn(render::security_headers))
            .route("/", web::get().to(pages::dashboard))
            .route("/login", web::get().to(actions::login_page))
            .route("/login", web::post().to(actions::login))
            .route("/logout", web::post().to(actions::logout))
            .route("/create", web::get().to(pages::create_page))
            .route("/create", web::post().to(actions::create))
            .route("/bulk", web::get().to(confirm::bulk_page))
            .route("/bulk", web::post().to(confirm::bulk))
            .route("/containers/{name}", web::get().to(pages::container))
            .route("/containers/{name}/start", web::post().to(actions::start))
            .route("/containers/{name}/stop", web::get().to(confirm::stop_page))
            .route("/containers/{name}/stop", web::post().to(actions::stop))
            .route("/containers/{name}/restart", web::get().to(confirm::restart_page))
            .route("/containers/{name}/restart", web::post().to(actions::restart))
            .route("/containers/{name}/delete", web::get().to(pages::delete_page))
            .route("/containers/{name}/delete", web::post().to(actions::delete))
            .route("/users", web::get().to(pages::users))
            .route("/nodes", web::get().to(pages::nodes))
            .route("/containers/{name}/move", web::post().to(actions::move_container))
            .route("/users/tokens", web::post().to(actions::create_token))
            .route("/users/tokens/revoke", web::get().to(confirm::revoke_page))
            .route("/users/tokens/revoke", web::post().to(actions::revoke_tokens))
            .route("/keys", web::get().to(pages::keys))
            .route("/keys/add", web::post().to(actions::add_key))
            .route("/keys/remove", web::get().to(confirm::remove_key_page))
            .route("/keys/remove", web::post().to(actions::remove_key))
            .route("/settings", web::get().to(pages::settings))
            .route("/audit", web::get().to(pages::audit))
            .route("/settings/rotate-key", web::get().to(confirm::rotate_key_page))
            .route("/settings/rotate-key", web::post().to(actions::rotate_key))
            .route("/settings/reconcile", web::post().to(actions::reconcile))
            .route("/logs/{name}", web::get().to(pages::logs))
            .route(viewer::STATUS_POLL_PATH, web::get().to(ui::statuses))
            .route("/ui/events", web::get().to(ui::events))
            .route("/ui/check-key", web::post().to(ui::check_key))
            .route("/ui/logs/{name}", web::get().to(ui::follow_logs))
            .route("/assets/{file}", web::get().to(serve_asset))
            .default_service(web::to(not_found)),
    );
}

/// Unknown paths: a page for browsers (that ask for HTML outside `/api/`), the API's JSON answer
/// for everyone else.
async fn not_found(req: HttpRequest) -> Result<HttpResponse, actix_web::Error> {
    let wants_html = req
        .headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if wants_html && !req.path().starts_with("/api/") {
        return Ok(render::not_found_page());
    }
    crate::routes::unknown_endpoint(req)
        .await
        .map_err(actix_web::Error::from)
}
