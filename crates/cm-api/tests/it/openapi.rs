//! The OpenAPI document: served without credentials, titled, every endpoint with its methods and
//! errors, and the container schema equal to what the API answers.

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use serde_json::Value;

use crate::helpers::{Cred, TestApp};

#[actix_web::test]
async fn the_document_describes_every_endpoint_its_methods_and_errors() {
    let app = TestApp::new();
    let (status, doc) = app.get("/api/openapi.json", &Cred::Anonymous).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["info"]["title"], "ContainerManager API");
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    for endpoint in cm_api::ENDPOINTS {
        let path = format!("{}/{}", cm_api::API_PREFIX, endpoint.name);
        let item = &doc["paths"][&path];
        assert!(item["post"].is_object(), "{path} POST");
        assert_eq!(item["get"].is_object(), endpoint.read, "{path} GET");
        let operation = &item["post"];
        assert!(operation["summary"].is_string(), "{path} summary");
        let statuses: BTreeSet<String> = operation["responses"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        for status in cm_api::COMMON_ERRORS
            .iter()
            .chain(cm_api::error_statuses(endpoint.name))
        {
            assert!(
                statuses.contains(&status.to_string()),
                "{path} documents {status}"
            );
        }
        assert!(statuses.iter().any(|s| s.starts_with('2')), "{path} success");
        let params: Vec<&str> = operation["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(params.contains(&cm_api::ADMIN_KEY_PARAM), "{path}");
        assert_eq!(operation["security"][0]["bearer"], Value::Array(vec![]));
    }
    assert!(doc["paths"]["/healthz"]["get"].is_object());
    assert!(doc["components"]["responses"]["Error422"].is_object());
}

#[actix_web::test]
async fn the_container_schema_lists_exactly_the_fields_of_an_answer() {
    let app = TestApp::new();
    let container = app.create("alice", "cli_v4").await;
    let (_, doc) = app.get("/api/openapi.json", &Cred::Anonymous).await;
    let documented: BTreeSet<&String> = doc["components"]["schemas"]["ContainerDoc"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    let mut answered: BTreeSet<&String> = container.as_object().unwrap().keys().collect();
    // Only a capped volume's answers carry these (cm-cli's capped-volume test shows them), and
    // only a Swarm runtime's the node (tests/it/nodes.rs).
    let sometimes_there = ["disk".to_owned(), "disk_usage".to_owned(), "node".to_owned()];
    answered.extend(sometimes_there.iter());
    // `get_container` with `health=true` adds its health, documented field by field.
    let name = container["container_name"].as_str().unwrap();
    let (_, got) = app
        .get(
            &format!("/api/ContainerManager/get_container?container_id={name}&health=true"),
            &Cred::admin(),
        )
        .await;
    let health = &got["container"]["health"];
    assert!(health.is_object(), "{got}");
    let health_field = "health".to_owned();
    answered.insert(&health_field);
    let health_documented: BTreeSet<&String> = doc["components"]["schemas"]["HealthDoc"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    let mut health_answered: BTreeSet<&String> = health.as_object().unwrap().keys().collect();
    // Only a failing container's health has its last lines; history comes with the sampler.
    let sometimes = ["last_log_lines".to_owned(), "history".to_owned()];
    health_answered.extend(sometimes.iter());
    assert_eq!(health_documented, health_answered);
    assert_eq!(documented, answered);
}
