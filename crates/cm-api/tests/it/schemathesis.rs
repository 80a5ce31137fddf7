//! Schemathesis (from PyPI, in a virtual environment under the test's directory) generates
//! requests from `/api/openapi.json` and sends them to the real `cm-api` binary on the real
//! engine, with the admin key: no answer may be a server error, every status and content type
//! must be the documented ones, every answer must match its documented schema, and methods the
//! document does not list must be 405. Bounded: a few examples per operation, a time limit.

use std::process::Command;

use cm_testkit::{TestEnv, require, require_docker};

use crate::helpers::{Server, python_venv};

#[test]
fn generated_requests_from_the_openapi_document_get_documented_answers() {
    if !require_docker() || !require("python3", &["-m", "venv", "--help"], "schemathesis (PyPI)") {
        return;
    }
    let env = TestEnv::new();
    // Pinned: its checks and their names change between versions.
    let st = python_venv(env.path(), "schemathesis-venv", &["schemathesis==4.32.5"]).join("bin/st");
    let admin = format!("schemathesis-admin-key-{}", env.run);
    let mut vars = env.vars();
    vars.push(("CONTAINER_ADMIN_KEY", admin.clone()));
    let server = Server::start(&vars, &[]);
    let base = format!("http://127.0.0.1:{}", server.port);
    let out = Command::new("timeout")
        .args(["--kill-after=10", "900"])
        .arg(&st)
        .args([
            "run",
            &format!("{base}/api/openapi.json"),
            "--url",
            &base,
            "-H",
            &format!("Authorization: Bearer {admin}"),
            "--max-examples",
            "10",
            "--seed",
            "20261202",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance,unsupported_method",
            // The live event stream never ends by itself: it has its own test (events.rs).
            "--exclude-path",
            "/api/ContainerManager/container_events",
            "--no-color",
        ])
        .current_dir(env.path())
        .env("HOME", env.path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}\n{}\ncm-api said:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.stderr()
    );
    assert!(report.contains("generated"), "{report}");
}
