//! The OpenAPI document served at `/api/openapi.json`.
//!
//! The paths are those of the endpoint table (`routes::endpoint_table!`), each described by the
//! `#[utoipa::path]` attribute of its handler (a test checks the document lists exactly the
//! table, with its methods). A modifier adds what is the same everywhere: the bearer security
//! scheme, the discouraged `admin_key` parameter, and the error answers of each endpoint (one
//! shared response whose body is [`ErrorBody`]).

use std::sync::OnceLock;

use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::Response;
use utoipa::openapi::schema::{Object, Ref, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Deprecated, RefOr, Required};
use utoipa::{Modify, OpenApi};

use crate::answers::{
    AdminKeyAnswer, AuditAnswer, AuditEntryDoc, ContainerAnswer, ContainerDoc, CountsDoc, CreatedAnswer,
    DeletedAnswer, EngineContainerDoc, EngineContainersAnswer, EngineDoc, ExecAnswer, HealthAnswer,
    HealthDoc, KeyAddedAnswer, KeyDoc, KeyRemovedAnswer, KeysAnswer, ListingAnswer, LiveAnswer, LogsAnswer,
    MovedAnswer, NodeDoc, NodesAnswer, ProxyDoc, QuotaAnswer, RevokedAnswer, ServiceDoc, ServicesAnswer,
    SshInfoDoc, StatsAnswer, StatsDoc, StoredKeyDoc, TokenCreatedAnswer, TokenDoc, TokensAnswer, TypesAnswer,
    UsagePointDoc, WhoamiAnswer,
};
use crate::error::{ErrorBody, ErrorCode, ErrorDetail};
use crate::routes;

/// The document: the paths of every endpoint of `routes::endpoint_table` (the one table the routes
/// come from too), then `/healthz` and `/metrics`.
macro_rules! api_doc {
    ($($kind:ident $name:ident [$($status:literal),*],)*) => {
/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "ContainerManager API",
        description = "Per-user Docker containers with persistent data, HTTP routes through nginx and SSH access. \
Every endpoint under /api/ContainerManager/ takes its parameters from the query string or a JSON body, \
and needs `Authorization: Bearer <admin key or user token>`. Errors are `{\"error\": {\"code\", \"message\", \"field\"?}}`."
    ),
    paths(
        $(routes::$name,)*
        routes::healthz,
        routes::metrics,
    ),
    components(schemas(
        ErrorBody, ErrorDetail, ContainerDoc, ContainerAnswer, CreatedAnswer, ListingAnswer, DeletedAnswer,
        LogsAnswer, ExecAnswer, KeyDoc, StoredKeyDoc, KeyAddedAnswer, KeyRemovedAnswer, KeysAnswer, SshInfoDoc,
        StatsAnswer, StatsDoc, HealthDoc, UsagePointDoc,
        EngineDoc, ProxyDoc, HealthAnswer, TypesAnswer, TokenCreatedAnswer, TokenDoc, TokensAnswer, RevokedAnswer,
        AdminKeyAnswer, WhoamiAnswer, LiveAnswer, QuotaAnswer, AuditAnswer, AuditEntryDoc, CountsDoc, EngineContainerDoc,
        EngineContainersAnswer, ServiceDoc, ServicesAnswer, NodesAnswer, NodeDoc, MovedAnswer,
    )),
    modifiers(&Conventions),
    tags(
        (name = "containers", description = "Create, list, control, read and delete containers"),
        (name = "ssh", description = "SSH keys and connection details"),
        (name = "tokens", description = "User tokens and the admin key (admin only)"),
        (name = "quotas", description = "Per-user quotas: containers, memory, CPUs"),
        (name = "system", description = "Types, health and identity"),
    )
)]
pub struct ApiDoc;
    };
}

routes::endpoint_table!(api_doc);

/// The document as JSON, built once.
pub fn openapi_json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"the OpenAPI document failed to render: {e}\"}}"))
    })
}

/// The error statuses an endpoint may answer, besides 400, 401, 405, 413 and 500 which any may
/// (from the endpoint table, `routes::endpoint_table`).
pub fn error_statuses(endpoint: &str) -> &'static [u16] {
    routes::ENDPOINTS
        .iter()
        .find(|e| e.name == endpoint)
        .map_or(&[], |e| e.errors)
}

/// The statuses every endpoint under `/api/ContainerManager/` may answer.
pub const COMMON_ERRORS: [u16; 5] = [400, 401, 405, 413, 500];

struct Conventions;

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("admin key (cmk_...) or user token (cmu_...)")
                    .build(),
            ),
        );
        for code in ALL_ERRORS {
            components.responses.insert(
                response_name(code.status().as_u16()),
                RefOr::T(error_response(*code)),
            );
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            let Some(endpoint) = path.strip_prefix(&format!("{}/", routes::API_PREFIX)) else {
                continue;
            };
            let endpoint = endpoint.to_owned();
            for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
                decorate(operation, &endpoint);
            }
        }
    }
}

const ALL_ERRORS: &[ErrorCode] = &ErrorCode::ALL;

fn response_name(status: u16) -> String {
    format!("Error{status}")
}

fn error_response(code: ErrorCode) -> Response {
    let what = match code {
        ErrorCode::BadRequest => {
            "The request can not be read: bad JSON, or a parameter missing, unknown, given twice or of the wrong type"
        }
        ErrorCode::Unauthorized => {
            "No credentials, or wrong ones (a `WWW-Authenticate: Bearer` header says so)"
        }
        ErrorCode::Forbidden => {
            "The credentials do not reach this action (admin only); another user's container is a 404"
        }
        ErrorCode::NotFound => "No such container (or token)",
        ErrorCode::MethodNotAllowed => {
            "Reads take GET and POST, writes POST only (the `Allow` header lists them)"
        }
        ErrorCode::Conflict => {
            "Collides with existing state: the container exists, is running, is not running, or an id prefix is ambiguous"
        }
        ErrorCode::PayloadTooLarge => "The body is larger than 1 MiB",
        ErrorCode::InvalidInput => {
            "A value is refused (a bad user id, an unknown container type, a bad key, a timeout out of range)"
        }
        ErrorCode::Internal => "A bug or an unexpected answer from a dependency",
        ErrorCode::Unavailable => "The Docker engine does not answer",
        ErrorCode::Timeout => "The operation did not finish within its time limit",
        ErrorCode::Exhausted => "The port pool or the subnet pool has nothing left",
        ErrorCode::RateLimited => {
            "Too many failed sign-ins from this address, or too many execs or log follows at once (`Retry-After` says when to try again)"
        }
        // `ErrorCode::ALL` lists every code (a test in `error.rs` checks it).
        _ => "Another error",
    };
    let mut response = Response::new(format!("`{}`: {what}", code.code()));
    response.content.insert(
        "application/json".to_owned(),
        RefOr::T(Content::new(Some(Ref::from_schema_name("ErrorBody")))),
    );
    response
}

fn decorate(operation: &mut Operation, endpoint: &str) {
    operation.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
    let admin_key = ParameterBuilder::new()
        .name(crate::params::ADMIN_KEY_PARAM)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .deprecated(Some(Deprecated::True))
        .description(Some(
            "The admin key or a user token, as the original API took it (also accepted in a JSON body). \
             Discouraged: query strings end up in logs and histories; use `Authorization: Bearer`.",
        ))
        .schema(Some(Object::with_type(Type::String)))
        .build();
    operation
        .parameters
        .get_or_insert_with(Vec::new)
        .push(RefOr::T(admin_key));
    let mut statuses: Vec<u16> = COMMON_ERRORS.to_vec();
    statuses.extend_from_slice(error_statuses(endpoint));
    statuses.sort_unstable();
    statuses.dedup();
    for status in statuses {
        operation.responses.responses.insert(
            status.to_string(),
            RefOr::Ref(Ref::from_response_name(response_name(status))),
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The document's paths are exactly the table's endpoints (plus `/healthz` and `/metrics`),
    /// each with the table's methods.
    #[test]
    fn the_document_lists_exactly_the_endpoint_table() {
        let doc = ApiDoc::openapi();
        let mut documented: Vec<String> = doc.paths.paths.keys().cloned().collect();
        documented.sort();
        let mut expected: Vec<String> = routes::ENDPOINTS
            .iter()
            .map(|e| format!("{}/{}", routes::API_PREFIX, e.name))
            .chain(["/healthz".to_owned(), "/metrics".to_owned()])
            .collect();
        expected.sort();
        assert_eq!(documented, expected);
        for endpoint in routes::ENDPOINTS {
            let item = &doc.paths.paths[&format!("{}/{}", routes::API_PREFIX, endpoint.name)];
            assert_eq!(item.get.is_some(), endpoint.read, "{}", endpoint.name);
            assert!(item.post.is_some(), "{}", endpoint.name);
        }
    }
}
