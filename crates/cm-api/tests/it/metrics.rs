//! `/metrics` of the real binary on the real engine, read by Prometheus' own text-format parser
//! (`prometheus_client` from PyPI, in a virtual environment): only the admin may read it, and it
//! counts what happened.

use std::collections::BTreeMap;
use std::process::Command;

use cm_testkit::{TestEnv, require, require_docker};
use serde_json::{Value, json};

use crate::helpers::{Server, api, http_full, python_venv};

/// Parses the text with `prometheus_client.parser`: every sample as `name{labels}` to its value.
fn parse(python: &std::path::Path, text: &str) -> BTreeMap<String, f64> {
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
samples = {}
types = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    types[family.name] = family.type
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        samples[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps({"samples": samples, "types": types}))
"#;
    let mut child = Command::new("timeout")
        .args(["--kill-after=5", "60"])
        .arg(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser refused the text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        parsed["types"]["cm_operation_duration_seconds"], "histogram",
        "{parsed}"
    );
    assert_eq!(parsed["types"]["cm_operations"], "counter", "{parsed}");
    assert_eq!(parsed["types"]["cm_containers"], "gauge", "{parsed}");
    parsed["samples"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
        .collect()
}

#[test]
fn the_admin_reads_metrics_that_prometheus_parses_and_that_count_what_happened() {
    if !require_docker() || !require("python3", &["-m", "venv", "--help"], "prometheus_client (PyPI)") {
        return;
    }
    let env = TestEnv::new();
    let python =
        python_venv(env.path(), "prometheus-venv", &["prometheus_client==0.21.1"]).join("bin/python");
    let admin_key = format!("metrics-admin-key-{}", env.run);
    let mut vars = env.vars();
    vars.push(("CONTAINER_ADMIN_KEY", admin_key.clone()));
    let server = Server::start(&vars, &[]);
    let admin = format!("Bearer {admin_key}");
    let user = env.user("metrics");
    let (status, created) = server.request(
        "POST",
        &api("create_container"),
        &[("Authorization", &admin)],
        Some(&json!({"user_id": user, "container_type": "preview_server"})),
    );
    assert_eq!(status, 201, "{created}");
    // A refused create is counted by its result.
    let (status, _) = server.request(
        "POST",
        &api("create_container"),
        &[("Authorization", &admin)],
        Some(&json!({"user_id": user, "container_type": "preview_server"})),
    );
    assert_eq!(status, 409);
    let (status, token) = server.request(
        "POST",
        &api("create_user_token"),
        &[("Authorization", &admin)],
        Some(&json!({"user_id": user})),
    );
    assert_eq!(status, 201);
    let owner = format!("Bearer {}", token["token"].as_str().unwrap());

    // Only the admin.
    let (status, head, _) = http_full(server.port, "GET", "/metrics", &[], None).unwrap();
    assert_eq!(status, 401);
    assert!(head.contains("www-authenticate:"), "{head}");
    let (status, _, _) =
        http_full(server.port, "GET", "/metrics", &[("Authorization", &owner)], None).unwrap();
    assert_eq!(status, 403);
    let (status, head, text) =
        http_full(server.port, "GET", "/metrics", &[("Authorization", &admin)], None).unwrap();
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/plain; version=0.0.4"), "{head}");

    let samples = parse(&python, &text);
    let value = |key: &str| {
        *samples
            .get(key)
            .unwrap_or_else(|| panic!("no sample {key} in:\n{text}"))
    };
    assert_eq!(
        value(r#"cm_containers{state="running",type="preview_server"}"#),
        1.0
    );
    assert_eq!(
        value(r#"cm_operations_total{operation="create",result="ok"}"#),
        1.0
    );
    assert_eq!(
        value(r#"cm_operations_total{operation="create",result="conflict"}"#),
        1.0
    );
    assert_eq!(
        value(r#"cm_operation_duration_seconds_count{operation="create"}"#),
        2.0
    );
    assert_eq!(
        value(r#"cm_operation_duration_seconds_bucket{le="+Inf",operation="create"}"#),
        2.0
    );
    assert!(value(r#"cm_operation_duration_seconds_sum{operation="create"}"#) > 0.0);
    let (first, last) = env.slot.port_range();
    assert_eq!(value("cm_port_pool_size{}"), f64::from(last - first + 1));
    assert_eq!(value("cm_port_pool_leased{}"), 1.0);
    assert_eq!(value("cm_subnet_pool_leased{}"), 1.0);
    assert_eq!(value("cm_exec_in_flight{}"), 0.0);
    assert_eq!(value("cm_log_follows_in_flight{}"), 0.0);
    assert_eq!(value("cm_quota_refusals_total{}"), 0.0);
    let (status, _) = server.request(
        "POST",
        &api("delete_container"),
        &[("Authorization", &admin)],
        Some(&json!({"container_id": format!("{user}_preview_server"), "force": true, "purge": true})),
    );
    assert_eq!(status, 200);
    let (_, _, text) = http_full(server.port, "GET", "/metrics", &[("Authorization", &admin)], None).unwrap();
    let samples = parse(&python, &text);
    assert_eq!(
        samples.get(r#"cm_operations_total{operation="delete",result="ok"}"#),
        Some(&1.0)
    );
    assert!(!samples.keys().any(|k| k.starts_with("cm_containers{")), "{text}");
}
