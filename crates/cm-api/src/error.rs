//! The one HTTP error table (D9): every failure becomes an [`ApiError`] whose [`ErrorCode`] maps to a
//! status and a stable snake_case code, rendered as `{"error": {"code", "message", "field"?}}`.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use cm_core::ErrorKind;
use serde::Serialize;
use utoipa::ToSchema;

/// Every error code the API answers with: cm-core's error kinds (whose codes are
/// [`ErrorKind::code`], defined once there) and the few the API adds about HTTP itself. The
/// table in [`ErrorCode::status`] is the only place that picks a status.
///
/// The associated constants name every code, so `ErrorCode::NotFound` reads like an enum variant
/// (and matches like one); cm-core's `Busy` is always answered as [`ErrorCode::RateLimited`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(Code);

/// What an [`ErrorCode`] is made of (private, so `Busy` can not be built around
/// [`ErrorCode::of_kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    /// One of cm-core's kinds (never `Busy`).
    Kind(ErrorKind),
    /// The request can not be read.
    BadRequest,
    /// The endpoint exists but not with this HTTP method.
    MethodNotAllowed,
    /// The body is larger than the API accepts.
    PayloadTooLarge,
    /// Too many failed sign-ins, or cm-core's `Busy`.
    RateLimited,
}

#[allow(
    non_upper_case_globals,
    reason = "the codes read like the enum variants they were, and match like them"
)]
impl ErrorCode {
    /// The request can not be read: bad JSON, a parameter of the wrong type, missing or unknown.
    pub const BadRequest: ErrorCode = ErrorCode(Code::BadRequest);
    /// No credentials, or wrong ones.
    pub const Unauthorized: ErrorCode = ErrorCode(Code::Kind(ErrorKind::Unauthorized));
    /// Valid credentials that do not reach this container or action.
    pub const Forbidden: ErrorCode = ErrorCode(Code::Kind(ErrorKind::Forbidden));
    /// No such container, token or endpoint.
    pub const NotFound: ErrorCode = ErrorCode(Code::Kind(ErrorKind::NotFound));
    /// The endpoint exists but not with this HTTP method.
    pub const MethodNotAllowed: ErrorCode = ErrorCode(Code::MethodNotAllowed);
    /// The request collides with existing state.
    pub const Conflict: ErrorCode = ErrorCode(Code::Kind(ErrorKind::Conflict));
    /// The body is larger than the API accepts.
    pub const PayloadTooLarge: ErrorCode = ErrorCode(Code::PayloadTooLarge);
    /// Well-formed parameters whose values are refused (a bad user id, an unknown type).
    pub const InvalidInput: ErrorCode = ErrorCode(Code::Kind(ErrorKind::InvalidInput));
    /// A bug or an unexpected answer from a dependency.
    pub const Internal: ErrorCode = ErrorCode(Code::Kind(ErrorKind::Internal));
    /// The Docker engine (or another dependency) can not be reached.
    pub const Unavailable: ErrorCode = ErrorCode(Code::Kind(ErrorKind::Unavailable));
    /// An operation did not finish within its time limit.
    pub const Timeout: ErrorCode = ErrorCode(Code::Kind(ErrorKind::Timeout));
    /// A bounded resource (the port pool, the subnet pool) has nothing left.
    pub const Exhausted: ErrorCode = ErrorCode(Code::Kind(ErrorKind::Exhausted));
    /// Too many failed sign-ins from this address, or too many execs or log follows at once;
    /// `Retry-After` says when to try again.
    pub const RateLimited: ErrorCode = ErrorCode(Code::RateLimited);
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
    /// Every code, in the order of the documentation.
    pub const ALL: [ErrorCode; 13] = [
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Conflict,
        ErrorCode::PayloadTooLarge,
        ErrorCode::InvalidInput,
        ErrorCode::Internal,
        ErrorCode::Unavailable,
        ErrorCode::Timeout,
        ErrorCode::Exhausted,
        ErrorCode::RateLimited,
    ];

    /// The HTTP status of the code.
    pub fn status(self) -> StatusCode {
        match self.0 {
            Code::BadRequest => StatusCode::BAD_REQUEST,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::RateLimited | Code::Kind(ErrorKind::Busy) => StatusCode::TOO_MANY_REQUESTS,
            Code::Kind(kind) => match kind {
                ErrorKind::InvalidInput => StatusCode::UNPROCESSABLE_ENTITY,
                ErrorKind::NotFound => StatusCode::NOT_FOUND,
                ErrorKind::Conflict => StatusCode::CONFLICT,
                ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
                ErrorKind::Forbidden => StatusCode::FORBIDDEN,
                ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::Exhausted => StatusCode::INSUFFICIENT_STORAGE,
                ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
                ErrorKind::Busy => StatusCode::TOO_MANY_REQUESTS,
                ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// The stable code in JSON answers: a kind's own code ([`ErrorKind::code`]), or one of the
    /// API's.
    pub fn code(self) -> &'static str {
        match self.0 {
            Code::BadRequest => "bad_request",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::PayloadTooLarge => "payload_too_large",
            Code::RateLimited | Code::Kind(ErrorKind::Busy) => "rate_limited",
            Code::Kind(kind) => kind.code(),
        }
    }

    /// The code of a cm-core error kind (`Busy` is [`ErrorCode::RateLimited`]).
    pub fn of_kind(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::Busy => ErrorCode::RateLimited,
            kind => ErrorCode(Code::Kind(kind)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_answers_with_its_own_code_and_all_lists_every_code() {
        let kinds = [
            ErrorKind::InvalidInput,
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Unauthorized,
            ErrorKind::Forbidden,
            ErrorKind::Unavailable,
            ErrorKind::Exhausted,
            ErrorKind::Timeout,
            ErrorKind::Busy,
            ErrorKind::Internal,
        ];
        for kind in kinds {
            let code = ErrorCode::of_kind(kind);
            assert!(ErrorCode::ALL.contains(&code), "{kind:?}");
            if kind == ErrorKind::Busy {
                assert_eq!(code, ErrorCode::RateLimited);
            } else {
                assert_eq!(code.code(), kind.code());
            }
        }
        let mut codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ErrorCode::ALL.len());
        assert_eq!(ErrorCode::RateLimited.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}
