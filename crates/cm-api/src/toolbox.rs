//! The ToolBox answer mode: existing ToolBox clients (tbjs, ToolBox modules) read what the Python
//! module and its worker sent.
//!
//! With `[api] envelope = "toolbox"`, or `envelope=toolbox` on one request, every success is sent
//! with status 200 inside the ToolBox worker's envelope
//! (`{"error": "none", "result": {"data_to": "REMOTE", "data_info": "JSON response", "data": ...,
//! "data_type": "json"}, "info": {"exec_code": 0, "help_text": "OK"}, "origin": ["ContainerManager",
//! "<function>", "tb"]}`), and its data carries the original's field names alongside today's
//! (where a name means something else, such as `container_id`, the original's meaning wins and
//! today's value moves to `docker_id`). Errors keep their status and become
//! `{"error": "<code>", "message": "..."}`. Native answers are untouched: this is a middleware
//! around the API that rewrites finished JSON answers; streams pass through.

use std::time::SystemTime;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::Next;
use actix_web::web::Data;
use actix_web::{Error, HttpMessage, HttpResponse};
use cm_core::{AuthorizedContainer, ContainerSpec, Envelope, ssh_command};
use serde_json::{Map, Value, json};

use crate::state::AppState;

/// The container a single-container endpoint worked on, attached to its response (an extension,
/// not the body), so the ToolBox mode can add the original's fields without a second lookup.
#[derive(Debug, Clone)]
pub struct Resolved(pub ContainerSpec);

/// The authorized container of a `get_container` answer, attached beside [`Resolved`], so the
/// ToolBox mode can add its resource use without resolving it again.
#[derive(Debug, Clone)]
pub struct Readable(pub AuthorizedContainer);

/// The middleware: wrap the API scope with `middleware::from_fn(toolbox::envelope)`.
pub async fn envelope(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let state = req.app_data::<Data<AppState>>().cloned();
    // The query string decides even when the request fails before its parameters are read.
    let asked = serde_urlencoded::from_str::<Vec<(String, String)>>(req.query_string())
        .ok()
        .and_then(|pairs| {
            pairs
                .into_iter()
                .find(|(name, _)| name == ENVELOPE_PARAM)
                .and_then(|(_, value)| Envelope::parse(&value).ok())
        });
    let function = req.path().rsplit('/').next().unwrap_or_default().to_owned();
    let res = next.call(req).await?.map_into_boxed_body();
    let chosen = res
        .request()
        .extensions()
        .get::<Envelope>()
        .copied()
        .or(asked)
        .or_else(|| state.as_ref().map(|s| s.manager.config().envelope))
        .unwrap_or_default();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if chosen != Envelope::Toolbox || !is_json {
        return Ok(res);
    }
    let resolved = res.response().extensions().get::<Resolved>().cloned();
    let readable = res.response().extensions().get::<Readable>().cloned();
    let (request, response) = res.into_parts();
    let status = response.status();
    let mut headers = response.headers().clone();
    let bytes = actix_web::body::to_bytes(response.into_body())
        .await
        .map_err(|e| actix_web::error::ErrorInternalServerError(e.to_string()))?;
    // Our own JSON answer that does not read back is a bug: a 500, not an envelope around `null`.
    let answer: Value = serde_json::from_slice(&bytes).map_err(|e| {
        crate::error::ApiError::internal(format!("an answer could not be read back as JSON: {e}"))
    })?;
    // The SSH host of the call's container (on a cluster, its node's address), else the host's.
    let server_ip = match (&state, &resolved) {
        (Some(state), Some(resolved)) => state.manager.ssh_host_of(&resolved.0).await,
        (Some(state), None) => state.manager.ssh_host(),
        (None, _) => String::new(),
    };
    let context = Context {
        resolved: resolved.as_ref().map(|r| &r.0),
        server_ip: &server_ip,
        now: SystemTime::now(),
    };
    let (status, mut body) = wrap(&function, status, answer, &context);
    // The original's get_container carried the container's resource use.
    if function == "get_container"
        && let (Some(state), Some(Readable(container))) = (&state, &readable)
        && body["result"]["data"]["docker_status"] == "running"
        && let Ok(stats) = state.manager.stats(container).await
    {
        body["result"]["data"]["stats"] = original_stats(container.spec(), &stats, context.now);
    }
    headers.remove(header::CONTENT_LENGTH);
    let mut rewritten = HttpResponse::build(status);
    for (name, value) in &headers {
        rewritten.insert_header((name.clone(), value.clone()));
    }
    let rewritten = rewritten.content_type("application/json").body(body.to_string());
    Ok(ServiceResponse::new(request, rewritten))
}

/// The per-request parameter that picks the answer shape.
pub const ENVELOPE_PARAM: &str = "envelope";

/// What the rewriting may use besides the answer.
pub struct Context<'a> {
    /// The container the endpoint worked on, when it worked on one.
    pub resolved: Option<&'a ContainerSpec>,
    /// The SSH host shown to users.
    pub server_ip: &'a str,
    /// Now (for uptimes).
    pub now: SystemTime,
}

/// The ToolBox answer for endpoint `function`'s native `answer` with `status`.
pub fn wrap(function: &str, status: StatusCode, answer: Value, context: &Context<'_>) -> (StatusCode, Value) {
    if !status.is_success() {
        let mut error = json!({
            "error": answer["error"]["code"].as_str().unwrap_or("internal"),
            "message": answer["error"]["message"].as_str().unwrap_or("the request failed"),
        });
        if let Some(field) = answer["error"]["field"].as_str() {
            error["field"] = json!(field);
        }
        return (status, error);
    }
    let data = original_fields(function, answer, context);
    let envelope = json!({
        "error": "none",
        "result": {
            "data_to": "REMOTE",
            "data_info": "JSON response",
            "data": data,
            "data_type": "json",
        },
        "info": {"exec_code": 0, "help_text": "OK"},
        "origin": ["ContainerManager", function, "tb"],
    });
    (StatusCode::OK, envelope)
}

/// The native answer with the original's fields added (see the module documentation).
fn original_fields(function: &str, answer: Value, context: &Context<'_>) -> Value {
    let Value::Object(mut data) = answer else {
        return answer;
    };
    let resolved = context.resolved;
    let short_of = |spec: &ContainerSpec| spec.short_id().to_owned();
    match function {
        "create_container" => {
            let record = as_original_record(data.remove("container").unwrap_or(Value::Null), context);
            for name in [
                "container_id",
                "container_name",
                "port",
                "url",
                "status",
                "image",
                "ssh_port",
            ] {
                if let Some(value) = record.get(name).filter(|v| !v.is_null()) {
                    data.insert(name.to_owned(), value.clone());
                }
            }
            if let Some(port) = record
                .get("ssh_port")
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok())
            {
                data.insert(
                    "ssh_connection".to_owned(),
                    json!(ssh_command(context.server_ip, port)),
                );
            }
            data.insert("container".to_owned(), record);
        }
        "list_containers" | "list_ssh_containers" => {
            let records: Vec<Value> = match data.remove("containers") {
                Some(Value::Array(records)) => records
                    .into_iter()
                    .map(|r| as_original_record(r, context))
                    .collect(),
                _ => Vec::new(),
            };
            data.insert("count".to_owned(), json!(records.len()));
            data.insert("containers".to_owned(), Value::Array(records));
        }
        "get_container" => {
            let record = as_original_record(data.remove("container").unwrap_or(Value::Null), context);
            data.insert("docker_status".to_owned(), record["status"].clone());
            data.insert("stats".to_owned(), Value::Null);
            data.insert("container".to_owned(), record);
        }
        "start_container" | "stop_container" | "restart_container" | "update_container" => {
            let record = as_original_record(data.remove("container").unwrap_or(Value::Null), context);
            data.insert("status".to_owned(), record["status"].clone());
            data.insert("container".to_owned(), record);
        }
        "delete_container" => {
            let name = data
                .get("deleted")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            move_docker_id(&mut data);
            data.insert("message".to_owned(), json!(format!("Container '{name}' deleted")));
        }
        "container_logs" | "container_stats" => {
            if let Some(spec) = resolved {
                data.insert("container_id".to_owned(), json!(short_of(spec)));
            }
        }
        "container_exec" => {
            // The original sent one `output`: standard output, then standard error.
            let stdout = data.get("stdout").and_then(Value::as_str).unwrap_or_default();
            let stderr = data.get("stderr").and_then(Value::as_str).unwrap_or_default();
            data.insert("output".to_owned(), json!(format!("{stdout}{stderr}")));
            if let Some(spec) = resolved {
                data.insert("container_id".to_owned(), json!(short_of(spec)));
            }
        }
        "add_ssh_key_to_container" | "get_container_ssh_info" => {
            if let Some(spec) = resolved {
                data.insert("container_id".to_owned(), json!(short_of(spec)));
                data.insert("container_name".to_owned(), json!(spec.container_name));
                data.insert("user_id".to_owned(), json!(spec.user_id));
                data.insert("container_type".to_owned(), json!(spec.container_type));
                if let Some(port) = spec.ssh_port {
                    let line = ssh_command(context.server_ip, port);
                    data.insert("ssh_enabled".to_owned(), json!(true));
                    data.insert("ssh_port".to_owned(), json!(port));
                    data.insert("ssh_connection".to_owned(), json!(line));
                    data.insert("connection_string".to_owned(), json!(line));
                }
            }
            data.insert("server_ip".to_owned(), json!(context.server_ip));
            data.insert("username".to_owned(), json!("cli"));
            if function == "add_ssh_key_to_container" {
                data.insert("message".to_owned(), json!("SSH key added"));
            }
        }
        "docker_health" => {
            data.insert("docker_available".to_owned(), json!(true));
            data.insert("status".to_owned(), json!("online"));
            // The original's counts sit beside the rest (the admin's answer has them).
            if let Some(Value::Object(counts)) = data.remove("containers") {
                data.extend(counts);
            }
        }
        _ => {}
    }
    Value::Object(data)
}

/// A container record with the original's meaning of its fields: `container_id` the 12-character
/// short id (today's full id as `docker_id`), `url` without the trailing slash, `uptime` in
/// seconds since it was created.
fn as_original_record(record: Value, context: &Context<'_>) -> Value {
    let Value::Object(mut record) = record else {
        return record;
    };
    move_docker_id(&mut record);
    if let Some(url) = record.get("url_path").and_then(Value::as_str) {
        let url = url.trim_end_matches('/').to_owned();
        record.insert("url".to_owned(), json!(url));
    }
    let created = record
        .get("created_at")
        .and_then(Value::as_str)
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok());
    let uptime = created
        .and_then(|c| context.now.duration_since(c).ok())
        .map_or(0.0, |d| d.as_secs_f64());
    record.insert("uptime".to_owned(), json!(uptime));
    Value::Object(record)
}

/// `container_id` becomes the 12-character short id the original sent; the full id stays as
/// `docker_id`.
fn move_docker_id(record: &mut Map<String, Value>) {
    if let Some(Value::String(full)) = record.remove("container_id") {
        let short: String = full.chars().take(12).collect();
        record.insert("docker_id".to_owned(), json!(full));
        record.insert("container_id".to_owned(), json!(short));
    }
}

/// The original's `ContainerStats`.
fn original_stats(spec: &ContainerSpec, stats: &cm_core::ContainerStats, now: SystemTime) -> Value {
    let mib = 1024.0 * 1024.0;
    #[allow(clippy::cast_precision_loss, reason = "a percentage and MiB for display")]
    let (memory_mb, memory_percent) = (
        stats.memory_bytes as f64 / mib,
        if stats.memory_limit_bytes == 0 {
            0.0
        } else {
            stats.memory_bytes as f64 * 100.0 / stats.memory_limit_bytes as f64
        },
    );
    json!({
        "container_id": spec.short_id(),
        "cpu_percent": stats.cpu_percent,
        "memory_mb": memory_mb,
        "memory_percent": memory_percent,
        "network_rx_bytes": stats.network_rx_bytes,
        "network_tx_bytes": stats.network_tx_bytes,
        "last_update": now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> Context<'static> {
        Context {
            resolved: None,
            server_ip: "host.example",
            now: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000),
        }
    }

    #[test]
    fn successes_are_wrapped_in_the_workers_envelope_with_the_original_names() {
        let native = json!({"containers": [{
            "container_id": "0123456789abcdef0123",
            "container_name": "alice_cli_v4",
            "url_path": "/container/alice/cli_v4/",
            "created_at": "2027-01-15T07:00:00Z",
            "status": "running",
        }], "stale": null});
        let (status, answer) = wrap("list_containers", StatusCode::OK, native, &context());
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer["error"], "none");
        assert_eq!(answer["info"], json!({"exec_code": 0, "help_text": "OK"}));
        assert_eq!(
            answer["origin"],
            json!(["ContainerManager", "list_containers", "tb"])
        );
        assert_eq!(answer["result"]["data_to"], "REMOTE");
        let data = &answer["result"]["data"];
        assert_eq!(data["count"], 1);
        let record = &data["containers"][0];
        assert_eq!(record["container_id"], "0123456789ab");
        assert_eq!(record["docker_id"], "0123456789abcdef0123");
        assert_eq!(record["url"], "/container/alice/cli_v4");
        assert_eq!(record["url_path"], "/container/alice/cli_v4/");
        assert_eq!(record["uptime"], 3600.0, "seconds since it was created");
    }

    #[test]
    fn created_answers_are_200_and_errors_keep_their_status_in_a_flat_shape() {
        let created = json!({"container": {
            "container_id": "0123456789abcdef", "container_name": "bob_cli_v4", "port": 9001,
            "url_path": "/container/bob/cli_v4/", "status": "running", "image": "toolboxv2:latest",
            "ssh_port": 2201, "created_at": "2027-01-15T08:00:00Z",
        }, "route_error": null});
        let (status, answer) = wrap("create_container", StatusCode::CREATED, created, &context());
        assert_eq!(status, StatusCode::OK);
        let data = &answer["result"]["data"];
        assert_eq!(data["container_id"], "0123456789ab");
        assert_eq!(data["url"], "/container/bob/cli_v4");
        assert_eq!(data["ssh_connection"], "ssh -p 2201 cli@host.example");
        assert_eq!(data["container"]["container_name"], "bob_cli_v4");

        let refused =
            json!({"error": {"code": "forbidden", "message": "not yours", "field": "container_id"}});
        let (status, answer) = wrap("get_container", StatusCode::FORBIDDEN, refused, &context());
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(
            answer,
            json!({"error": "forbidden", "message": "not yours", "field": "container_id"})
        );
    }

    #[test]
    fn exec_gets_one_output_and_delete_a_message() {
        let (_, exec) = wrap(
            "container_exec",
            StatusCode::OK,
            json!({"exit_code": 1, "stdout": "out\n", "stderr": "err\n"}),
            &context(),
        );
        assert_eq!(exec["result"]["data"]["output"], "out\nerr\n");
        assert_eq!(exec["result"]["data"]["exit_code"], 1);
        let (_, deleted) = wrap(
            "delete_container",
            StatusCode::OK,
            json!({"deleted": "alice_cli_v4", "container_id": "0123456789abcdef", "purged": false}),
            &context(),
        );
        let data = &deleted["result"]["data"];
        assert_eq!(data["message"], "Container 'alice_cli_v4' deleted");
        assert_eq!(data["container_id"], "0123456789ab");
    }
}
