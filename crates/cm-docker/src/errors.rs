//! Translation of bollard's errors into cm-core's kinds, at the adapter boundary.

use bollard::errors::Error as BollardError;
use cm_core::{Error, ErrorKind};

/// Maps an engine error to a kind: 404 not found, 409 (and "in use" 403/500) conflict, 400 invalid
/// input, a missing socket or broken connection unavailable, a request past its time limit timeout.
pub fn engine_error(err: BollardError) -> Error {
    engine_error_at(err, &engine_address())
}

/// Like [`engine_error`], for the engine at `address` (named when it cannot be reached).
pub fn engine_error_at(err: BollardError, address: &str) -> Error {
    let (kind, message) = match &err {
        BollardError::DockerResponseServerError { status_code, message } => {
            let message = first_line(message);
            let kind = match status_code {
                400 => ErrorKind::InvalidInput,
                404 => ErrorKind::NotFound,
                409 => ErrorKind::Conflict,
                // The engine says 403 for "network has active endpoints" and 500 for "port is
                // already allocated": both are collisions with other state.
                403 => ErrorKind::Conflict,
                500 if message.contains("already allocated")
                    || message.contains("address already in use") =>
                {
                    ErrorKind::Conflict
                }
                503 => ErrorKind::Unavailable,
                _ => ErrorKind::Internal,
            };
            (kind, format!("docker engine: {message}"))
        }
        BollardError::SocketNotFoundError(path) => (
            ErrorKind::Unavailable,
            format!("docker engine is not running: no socket at {path}"),
        ),
        BollardError::RequestTimeoutError => (
            ErrorKind::Unavailable,
            format!("docker engine at {address} did not answer in time"),
        ),
        BollardError::HyperResponseError { .. }
        | BollardError::HyperLegacyError { .. }
        | BollardError::HttpClientError { .. }
        | BollardError::IOError { .. } => (
            ErrorKind::Unavailable,
            format!("docker engine is not reachable at {address} (is Docker running?)"),
        ),
        _ => (
            ErrorKind::Internal,
            format!("docker engine: {}", first_line(&err.to_string())),
        ),
    };
    let port_taken = matches!(&err, BollardError::DockerResponseServerError { status_code: 500, message }
        if message.contains("already allocated") || message.contains("address already in use"));
    let error = Error::new(kind, message).with_source(err);
    // A host port taken by someone else since the pool's probe: the core picks other ports.
    if port_taken {
        error.for_field(PORT_FIELD)
    } else {
        error
    }
}

/// The field a port collision is marked with (see [`cm_core::PORT_TAKEN_FIELD`]).
const PORT_FIELD: &str = cm_core::PORT_TAKEN_FIELD;

/// Where the engine is asked: `DOCKER_HOST`, else the local socket (as bollard connects).
pub(crate) fn engine_address() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned())
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status_code: u16, message: &str) -> BollardError {
        BollardError::DockerResponseServerError {
            status_code,
            message: message.to_owned(),
        }
    }

    #[test]
    fn an_unreachable_engine_is_named_by_its_endpoint() {
        let err = engine_error_at(BollardError::RequestTimeoutError, "tcp://10.0.0.2:2375");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.to_string().contains("tcp://10.0.0.2:2375"), "{err}");
    }

    #[test]
    fn statuses_map_to_kinds() {
        assert_eq!(
            engine_error(server(404, "No such image: x")).kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            engine_error(server(409, "name in use")).kind(),
            ErrorKind::Conflict
        );
        assert_eq!(
            engine_error(server(400, "bad memory")).kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            engine_error(server(
                500,
                "Bind for 127.0.0.1:9000 failed: port is already allocated"
            ))
            .kind(),
            ErrorKind::Conflict
        );
        let taken = engine_error(server(
            500,
            "driver failed programming external connectivity: Bind for 127.0.0.1:9000 failed: port is already allocated",
        ));
        assert_eq!(taken.field(), Some(cm_core::PORT_TAKEN_FIELD));
        assert_eq!(engine_error(server(409, "name in use")).field(), None);
        assert_eq!(engine_error(server(500, "boom")).kind(), ErrorKind::Internal);
        assert_eq!(
            engine_error(BollardError::SocketNotFoundError("/var/run/docker.sock".into())).kind(),
            ErrorKind::Unavailable
        );
    }
}
