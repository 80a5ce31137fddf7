//! Request logs: method, path without the query string, status and duration, one line per request.
//!
//! The query string is never logged (the discouraged `admin_key` parameter travels there), nor are
//! headers or bodies; path segments that look like our secrets (`cmk_...`, `cmu_...`) are
//! replaced, in case a client puts one where it does not belong.

use std::time::Instant;

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

/// The tracing target of request lines.
pub const TARGET: &str = "cm_api::request";

/// The middleware: wrap the app with `middleware::from_fn(log_requests)`.
pub async fn log_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    // nginx asks the route check once per proxied request: nginx's own access log has those.
    if req.path() == "/_cm/check" {
        return next.call(req).await;
    }
    let started = Instant::now();
    let method = req.method().to_string();
    let path = loggable_path(req.path());
    let result = next.call(req).await;
    let status = match &result {
        Ok(res) => res.status().as_u16(),
        Err(err) => err.as_response_error().status_code().as_u16(),
    };
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        target: TARGET,
        method = %method,
        path = %path,
        status,
        duration_ms = format_args!("{duration_ms:.1}"),
        "request"
    );
    result
}

/// The path as logged: at most 200 characters, secret-looking segments replaced.
pub fn loggable_path(path: &str) -> String {
    let cleaned: Vec<&str> = path
        .split('/')
        .map(|segment| {
            let lower = segment.to_ascii_lowercase();
            if lower.contains("cmk_") || lower.contains("cmu_") {
                "[redacted]"
            } else {
                segment
            }
        })
        .collect();
    cleaned.join("/").chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_segments_are_replaced() {
        assert_eq!(
            loggable_path("/api/ContainerManager/cmk_0123/x"),
            "/api/ContainerManager/[redacted]/x"
        );
        assert_eq!(loggable_path("/healthz"), "/healthz");
    }
}
