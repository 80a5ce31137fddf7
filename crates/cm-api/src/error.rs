//! The one HTTP error table (D9): every failure becomes an [`ApiError`] whose [`ErrorCode`] maps to a
//! status and a stable snake_case code, rendered as `{"error": {"code", "message", "field"?}}`.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use cm_core::ErrorKind;
use serde::Serialize;
use utoipa::ToSchema;

/// Every error code the API answers with. The table in [`ErrorCode::status`] and
/// [`ErrorCode::code`] is the only place that picks a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request can not be read: bad JSON, a parameter of the wrong type, missing or unknown.
    BadRequest,
    /// No credentials, or wrong ones.
    Unauthorized,
    /// Valid credentials that do not reach this container or action.
    Forbidden,
    /// No such container, token or endpoint.
    NotFound,
    /// The endpoint exists but not with this HTTP method.
    MethodNotAllowed,
    /// The request collides with existing state.
    Conflict,
    /// The body is larger than the API accepts.
    PayloadTooLarge,
    /// Well-formed parameters whose values are refused (a bad user id, an unknown type).
    InvalidInput,
    /// A bug or an unexpected answer from a dependency.
    Internal,
    /// The Docker engine (or another dependency) can not be reached.
    Unavailable,
    /// An operation did not finish within its time limit.
    Timeout,
    /// A bounded resource (the port pool, the subnet pool) has nothing left.
    Exhausted,
    /// Too many failed sign-ins from this address, or too many execs or log follows at once;
    /// `Retry-After` says when to try again.
    RateLimited,
}

/// Seconds a caller should wait after "too many at once" (execs, log follows).
const BUSY_RETRY_AFTER: u64 = 5;

/// An error answer. Its message never contains a secret.
pub struct ApiError {
    code: ErrorCode,
    message: String,
    field: Option<String>,
    allow: Option<&'static str>,
    invalid_token: bool,
    retry_after: Option<u64>,
}

/// The JSON body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable snake_case code: `bad_request`, `unauthorized`, `forbidden`, `not_found`,
    /// `method_not_allowed`, `conflict`, `payload_too_large`, `invalid_input`, `internal`,
    /// `unavailable`, `timeout`, `exhausted` or `rate_limited`.
    pub code: &'static str,
    /// One lowercase line for humans.
    pub message: String,
    /// The parameter the error is about, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ErrorCode {
    /// The HTTP status of the code.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::InvalidInput => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::Exhausted => StatusCode::INSUFFICIENT_STORAGE,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The stable code in JSON answers.
    pub fn code(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Exhausted => "exhausted",
            ErrorCode::RateLimited => "rate_limited",
        }
    }

    /// The code of a cm-core error kind.
    pub fn of_kind(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::InvalidInput => ErrorCode::InvalidInput,
            ErrorKind::NotFound => ErrorCode::NotFound,
            ErrorKind::Conflict => ErrorCode::Conflict,
            ErrorKind::Unauthorized => ErrorCode::Unauthorized,
            ErrorKind::Forbidden => ErrorCode::Forbidden,
            ErrorKind::Unavailable => ErrorCode::Unavailable,
            ErrorKind::Exhausted => ErrorCode::Exhausted,
            ErrorKind::Timeout => ErrorCode::Timeout,
            ErrorKind::Busy => ErrorCode::RateLimited,
            ErrorKind::Internal => ErrorCode::Internal,
        }
    }
}

impl ApiError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            field: None,
            allow: None,
            invalid_token: false,
            retry_after: None,
        }
    }

    /// Too many failed sign-ins from the caller's address; try again after `seconds`.
    pub fn rate_limited(seconds: u64) -> Self {
        let mut err = Self::new(
            ErrorCode::RateLimited,
            format!("too many failed sign-ins from this address: try again in {seconds} s"),
        );
        err.retry_after = Some(seconds);
        err
    }

    /// A request that can not be read.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// Missing credentials.
    pub fn missing_credentials() -> Self {
        Self::new(
            ErrorCode::Unauthorized,
            "missing credentials: send the header 'Authorization: Bearer <admin key or user token>'",
        )
    }

    /// Credentials that are not in the expected form.
    pub fn malformed_credentials(message: impl Into<String>) -> Self {
        let mut err = Self::new(ErrorCode::Unauthorized, message);
        err.invalid_token = true;
        err
    }

    /// A method the endpoint does not take.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        let mut err = Self::new(
            ErrorCode::MethodNotAllowed,
            format!("this endpoint takes {}", allow.replace(", ", " or ")),
        );
        err.allow = Some(allow);
        err
    }

    /// A bug.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// Names the parameter the error is about.
    pub fn for_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// The code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The body of the answer.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.code(),
                message: self.message.clone(),
                field: self.field.clone(),
            },
        }
    }
}

impl From<cm_core::Error> for ApiError {
    fn from(err: cm_core::Error) -> Self {
        match err.kind() {
            ErrorKind::Internal => tracing::error!(error = ?err, "internal error"),
            ErrorKind::Unavailable => tracing::warn!(error = ?err, "dependency unavailable"),
            _ => tracing::debug!(error = ?err, "request refused"),
        }
        let mut api = ApiError::new(ErrorCode::of_kind(err.kind()), err.message());
        if let Some(field) = err.field() {
            api.field = Some(field.to_owned());
        }
        if err.kind() == ErrorKind::Unauthorized {
            api.invalid_token = true;
        }
        if err.kind() == ErrorKind::Busy {
            api.retry_after = Some(BUSY_RETRY_AFTER);
        }
        api
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code.code())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut answer = HttpResponse::build(self.status_code());
        answer.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        if self.code == ErrorCode::Unauthorized {
            let challenge = if self.invalid_token {
                "Bearer realm=\"ContainerManager\", error=\"invalid_token\""
            } else {
                "Bearer realm=\"ContainerManager\""
            };
            answer.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge)));
        }
        if let Some(allow) = self.allow {
            answer.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
        }
        if let Some(seconds) = self.retry_after {
            answer.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        answer.json(self.body())
    }
}
