//! The HTTP API of ContainerManager: the endpoints of the original under `/api/ContainerManager/`,
//! authenticated with the admin key or per-user tokens, answering JSON; and the web dashboard at
//! `/` (server-rendered pages with session login, see `docs/dashboard.md`).
//!
//! [`app`] builds the actix application; `main` and the tests share it. [`run`] is what the
//! `cm-api` binary does: wire the adapters (the same [`cm_wiring`] as `cm`), make sure an admin key
//! exists, and serve.

mod answers;
mod attempts;
mod audit;
mod background;
mod call;
mod dashboard;
mod error;
mod gate;
mod hangup;
mod listings;
mod logging;
mod openapi;
mod params;
mod params_types;
mod routes;
mod server;
mod sessions;
mod sse;
mod state;
mod toolbox;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::web::{self, Data};
use actix_web::{App, HttpResponse, middleware};

pub use answers::{REDACTED, SECRET_MARKERS, container_json, is_secret_name};
pub use background::{DEFAULT_RECONCILE_INTERVAL, ReconcileError, ReconcileStatus, Reconciler};
pub use call::BODY_LIMIT;
pub use error::{ApiError, ErrorBody, ErrorCode};
pub use gate::{GATE_PREFIX, ROUTE_COOKIE};
pub use hangup::remember_socket;
pub use logging::{TARGET as REQUEST_LOG_TARGET, loggable_path};
pub use openapi::{ApiDoc, COMMON_ERRORS, error_statuses, openapi_json};
pub use params::ADMIN_KEY_PARAM;
pub use routes::{
    API_PREFIX, DEFAULT_EXEC_TIMEOUT, DEFAULT_TAIL, ENDPOINTS, Endpoint, MAX_EXEC_TIMEOUT, MAX_TAIL,
};
pub use server::{ADMIN_KEY_FILE, DEFAULT_LISTEN, Options, run};
pub use state::AppState;
pub use toolbox::ENVELOPE_PARAM;

/// The application: every endpoint, `/healthz`, `/api/openapi.json`, JSON errors for unknown paths
/// and wrong methods, and the request log.
pub fn app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(Data::new(state))
        .wrap(middleware::from_fn(logging::log_requests))
        .service(get_only("/healthz").route(web::get().to(routes::healthz)))
        .service(get_only("/metrics").route(web::get().to(routes::metrics)))
        .service(get_only("/api/openapi.json").route(web::get().to(openapi_document)))
        .configure(routes::configure)
        // The gate of container routes under `/_cm/` (nginx's route check and the sign-in page).
        .configure(gate::configure)
        // The web dashboard: `/`, `/login`, ... and `/assets/` (see `dashboard`).
        .configure(dashboard::configure)
        .default_service(web::to(routes::unknown_endpoint))
}

/// A resource that answers other methods than GET (and HEAD) with 405 and `Allow: GET`.
fn get_only(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|| async {
        Err::<HttpResponse, _>(ApiError::method_not_allowed("GET"))
    }))
}

async fn openapi_document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(openapi_json())
}

#[cfg(test)]
mod tests {
    /// The REST side and the dashboard do not import each other in a circle: the dashboard uses
    /// the REST side's state (`call.rs`), and what both need (sessions, cookies) is in
    /// `sessions.rs`.
    #[test]
    fn the_rest_side_does_not_import_the_dashboard() {
        let rest = [
            ("call.rs", include_str!("call.rs")),
            ("routes.rs", include_str!("routes.rs")),
            ("params.rs", include_str!("params.rs")),
            ("params_types.rs", include_str!("params_types.rs")),
            ("answers.rs", include_str!("answers.rs")),
            ("error.rs", include_str!("error.rs")),
            ("openapi.rs", include_str!("openapi.rs")),
            ("sessions.rs", include_str!("sessions.rs")),
        ];
        for (file, text) in rest {
            assert!(
                !text.contains(&["crate::", "dashboard"].concat()),
                "{file} imports the dashboard"
            );
        }
    }
}
