//! The one error type of ContainerManager (D9).
//!
//! Every failure carries a [`ErrorKind`] that frontends map once: the API to an HTTP status, the CLI
//! to an exit code. Adapters translate their foreign errors into a kind at their boundary, so no
//! bollard or rusqlite error type ever reaches a frontend.

use std::fmt;

/// What went wrong, in terms a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The input was refused before anything was touched; the message says what is allowed.
    InvalidInput,
    /// The named object does not exist.
    NotFound,
    /// The request collides with existing state (a second container of a user and type, a busy name).
    Conflict,
    /// No credentials or wrong credentials.
    Unauthorized,
    /// Valid credentials that do not reach this object or action.
    Forbidden,
    /// A dependency (the Docker engine, nginx) can not be reached.
    Unavailable,
    /// A bounded resource (the port pool, the subnet pool) has nothing left.
    Exhausted,
    /// An operation did not finish within its time limit.
    Timeout,
    /// Too many of these run at once (for this user or in all); try again shortly.
    Busy,
    /// A bug or an unexpected answer from a dependency.
    Internal,
}

impl ErrorKind {
    /// A stable snake_case code for JSON answers and logs.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Exhausted => "exhausted",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Busy => "busy",
            ErrorKind::Internal => "internal",
        }
    }
}

/// An error with a kind, a one-line lowercase message and an optional cause.
pub struct Error {
    kind: ErrorKind,
    message: String,
    field: Option<&'static str>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// The result type of every fallible cm-core function.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds an error of `kind` with a message for humans.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            field: None,
            source: None,
        }
    }

    /// Input refused before anything changed.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    /// The named object does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// The request collides with existing state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    /// A dependency can not be reached.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// Unexpected state: a bug or a surprising answer from a dependency.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Attaches the underlying cause, shown in `Debug` output and logs.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Names the input field the error is about, so forms can show it next to the field.
    pub fn for_field(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }

    /// The input field the error is about, if any.
    pub fn field(&self) -> Option<&'static str> {
        self.field
    }

    /// Prefixes the message with what was being done, keeping the kind.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    /// The kind, for mapping to statuses and exit codes.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The one-line message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Prints the kind, the message and the whole chain of causes, so logs show why.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.kind.code())?;
        let mut cause = self
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static));
        while let Some(err) = cause {
            write!(f, "\n  caused by: {err}")?;
            cause = err.source();
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_the_cause_chain() {
        let io = std::io::Error::other("socket closed");
        let err = Error::unavailable("docker engine unreachable").with_source(io);
        let text = format!("{err:?}");
        assert!(text.contains("docker engine unreachable (unavailable)"));
        assert!(text.contains("caused by: socket closed"));
    }

    #[test]
    fn context_keeps_the_kind() {
        let err = Error::not_found("no such volume").context("purging data");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.to_string(), "purging data: no such volume");
    }
}
