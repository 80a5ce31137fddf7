//! `cm --api URL`: a client of cm-api's REST API, for running `cm` away from the host.
//!
//! Every answer is turned back into cm-core's types, and every error answer into a
//! [`cm_core::Error`] of the matching kind, so the commands print the same output and exit with
//! the same codes whether they ran locally or through the API. The credential travels only in the
//! `Authorization` header, never in a URL.

use std::io::Read;
use std::time::Duration;

use cm_core::{Error, ErrorKind};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Where cm-api serves its endpoints (the original's path, which ToolBox clients use).
const API_PREFIX: &str = "/api/ContainerManager";
/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an ordinary call may take (a create or an update pulls nothing, but re-creates).
const CALL_TIMEOUT: Duration = Duration::from_secs(600);
/// The largest answer read (log answers are at most 16 MiB).
const ANSWER_LIMIT: u64 = 64 * 1024 * 1024;

/// A cm-api installation and the credential to use there.
pub struct Remote {
    agent: ureq::Agent,
    /// The API root, such as `https://cm.example.org/api/ContainerManager`.
    endpoints: String,
    /// `Bearer <admin key or user token>`.
    authorization: String,
}

impl Remote {
    /// Checks the address and the credential; nothing is sent yet.
    pub fn new(url: &str, token: &str) -> anyhow::Result<Remote> {
        let url = url.trim().trim_end_matches('/');
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| {
                anyhow::anyhow!("invalid --api {url:?}: give an http:// or https:// URL of cm-api")
            })?;
        if rest.is_empty() || rest.contains(['?', '#', ' ']) {
            anyhow::bail!("invalid --api {url:?}: give the URL of cm-api, such as https://cm.example.org");
        }
        let token = token.trim();
        if token.is_empty() {
            anyhow::bail!("cm --api needs a credential: --token or CM_TOKEN (the admin key or a user token)");
        }
        if token.chars().any(|c| c.is_control() || c == ' ') {
            anyhow::bail!("invalid token: it contains spaces or control characters");
        }
        if url.starts_with("http://") && !is_loopback(rest) {
            eprintln!(
                "warning: {url} is plain HTTP: the credential crosses the network unencrypted (use https://)"
            );
        }
        let endpoints = if url.ends_with(API_PREFIX) {
            url.to_owned()
        } else {
            format!("{url}{API_PREFIX}")
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .user_agent(concat!("cm/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Remote {
            agent,
            endpoints,
            authorization: format!("Bearer {token}"),
        })
    }

    /// Calls endpoint `name` with a JSON body and returns the answer's JSON.
    pub fn call(&self, name: &str, body: &Value) -> cm_core::Result<Value> {
        self.call_within(name, body, CALL_TIMEOUT)
    }

    /// [`Remote::call`] with its own time limit (an exec may run up to an hour).
    pub fn call_within(&self, name: &str, body: &Value, limit: Duration) -> cm_core::Result<Value> {
        blocking(|| self.call_blocking(name, body, limit))
    }

    fn call_blocking(&self, name: &str, body: &Value, limit: Duration) -> cm_core::Result<Value> {
        let mut answer = self.send(name, body, Some(limit))?;
        let text = answer
            .body_mut()
            .with_config()
            .limit(ANSWER_LIMIT)
            .read_to_string()
            .map_err(|e| self.transport_error(e))?;
        serde_json::from_str(&text).map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("cm-api at {} answered {name} with no JSON: {e}", self.endpoints),
            )
        })
    }

    /// Calls `name` and reads the answer's field `field` (or the whole answer) as `T`.
    pub fn fetch<T: DeserializeOwned>(
        &self,
        name: &str,
        body: &Value,
        field: Option<&str>,
    ) -> cm_core::Result<T> {
        let answer = self.call(name, body)?;
        let part = match field {
            Some(field) => answer.get(field).cloned().unwrap_or(Value::Null),
            None => answer,
        };
        serde_json::from_value(part).map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("cm-api's answer to {name} has an unexpected shape (another version?): {e}"),
            )
        })
    }

    /// Calls a streaming endpoint (a log follow) and hands each piece of text to `each` until the
    /// server ends the answer.
    pub fn stream(&self, name: &str, body: &Value, each: impl FnMut(&str)) -> cm_core::Result<()> {
        blocking(|| self.stream_blocking(name, body, each))
    }

    fn stream_blocking(&self, name: &str, body: &Value, mut each: impl FnMut(&str)) -> cm_core::Result<()> {
        let mut answer = self.send(name, body, None)?;
        let mut reader = answer.body_mut().with_config().limit(u64::MAX).reader();
        let mut buffer = [0u8; 8192];
        let mut pending = Vec::new();
        loop {
            let read = reader
                .read(&mut buffer)
                .map_err(|e| Error::new(ErrorKind::Unavailable, format!("the log stream broke: {e}")))?;
            if read == 0 {
                break;
            }
            pending.extend_from_slice(&buffer[..read]);
            // Hand on whole UTF-8 characters only; a split one waits for its rest.
            let valid = match std::str::from_utf8(&pending) {
                Ok(text) => text.len(),
                Err(e) => e.valid_up_to(),
            };
            if valid > 0 {
                each(&String::from_utf8_lossy(&pending[..valid]));
                pending.drain(..valid);
            }
        }
        if !pending.is_empty() {
            each(&String::from_utf8_lossy(&pending));
        }
        Ok(())
    }

    /// Sends the request; a non-2xx answer becomes the error it describes.
    fn send(
        &self,
        name: &str,
        body: &Value,
        limit: Option<Duration>,
    ) -> cm_core::Result<ureq::http::Response<ureq::Body>> {
        let url = format!("{}/{name}", self.endpoints);
        let mut answer = self
            .agent
            .post(&url)
            .config()
            .timeout_global(limit)
            .build()
            .header("Authorization", &self.authorization)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .send(body.to_string())
            .map_err(|e| self.transport_error(e))?;
        let status = answer.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(answer);
        }
        let text = answer
            .body_mut()
            .with_config()
            .limit(1024 * 1024)
            .read_to_string()
            .unwrap_or_default();
        Err(api_error(status, &text))
    }

    fn transport_error(&self, error: ureq::Error) -> Error {
        match error {
            ureq::Error::Timeout(_) => Error::new(
                ErrorKind::Timeout,
                format!("cm-api at {} did not answer in time", self.endpoints),
            ),
            other => Error::new(
                ErrorKind::Unavailable,
                format!("cm-api is not reachable at {}: {other}", self.endpoints),
            ),
        }
    }
}

/// Runs the client's blocking I/O without stalling the async runtime: on a multi-threaded runtime
/// (`cm`'s) the worker first hands its other tasks (the spinner's, Ctrl-C) to another thread.
fn blocking<R>(work: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// The error an API error answer describes: `{"error": {"code": ..., "message": ...}}`.
fn api_error(status: u16, text: &str) -> Error {
    let detail: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let code = detail["error"]["code"].as_str().unwrap_or_default();
    let message = detail["error"]["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let start: String = text.chars().take(200).collect();
            format!("cm-api answered {status}: {}", start.trim())
        });
    let kind = match code {
        "bad_request" | "invalid_input" | "payload_too_large" => ErrorKind::InvalidInput,
        "unauthorized" => ErrorKind::Unauthorized,
        "forbidden" => ErrorKind::Forbidden,
        "not_found" => ErrorKind::NotFound,
        "conflict" => ErrorKind::Conflict,
        "exhausted" => ErrorKind::Exhausted,
        "unavailable" => ErrorKind::Unavailable,
        "timeout" => ErrorKind::Timeout,
        "rate_limited" | "busy" => ErrorKind::Busy,
        _ => match status {
            401 => ErrorKind::Unauthorized,
            403 => ErrorKind::Forbidden,
            404 => ErrorKind::NotFound,
            409 => ErrorKind::Conflict,
            400 | 422 => ErrorKind::InvalidInput,
            429 => ErrorKind::Busy,
            502..=504 => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        },
    };
    Error::new(kind, message)
}

/// Whether the host part of `rest` (after the scheme) is a loopback address or `localhost`.
fn is_loopback(rest: &str) -> bool {
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(host, _)| host),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_keep_their_kind_and_message() {
        let e = api_error(
            404,
            r#"{"error":{"code":"not_found","message":"no container x"}}"#,
        );
        assert_eq!((e.kind(), e.message()), (ErrorKind::NotFound, "no container x"));
        let e = api_error(429, r#"{"error":{"code":"rate_limited","message":"slow down"}}"#);
        assert_eq!(e.kind(), ErrorKind::Busy);
        // Not cm-api (a proxy's page): the status decides, and the text is shown.
        let e = api_error(502, "<html>Bad Gateway</html>");
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.message().contains("502"), "{}", e.message());
    }

    #[test]
    fn addresses_and_credentials_are_checked_before_anything_is_sent() {
        assert!(Remote::new("ftp://x", "t").is_err());
        assert!(Remote::new("http://", "t").is_err());
        assert!(Remote::new("http://127.0.0.1:1", " ").is_err());
        assert!(Remote::new("http://127.0.0.1:1", "a b").is_err());
        let remote = Remote::new("http://127.0.0.1:1/", "t").unwrap();
        assert_eq!(remote.endpoints, "http://127.0.0.1:1/api/ContainerManager");
        let remote = Remote::new("https://h/api/ContainerManager", "t").unwrap();
        assert_eq!(remote.endpoints, "https://h/api/ContainerManager");
        assert!(is_loopback("127.0.0.2:80/x") && is_loopback("[::1]:8") && is_loopback("localhost"));
        assert!(!is_loopback("cm.example.org:443"));
    }

    #[test]
    fn an_address_nobody_listens_on_is_unavailable() {
        let remote = Remote::new("http://127.0.0.1:9", "t").unwrap();
        let e = remote.call("whoami", &Value::Null).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.message().contains("127.0.0.1:9"), "{}", e.message());
    }
}
