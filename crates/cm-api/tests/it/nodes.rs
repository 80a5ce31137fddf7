//! Nodes over the API, in process over cm-core's fakes as a cluster: `list_nodes`, a create's
//! `node`, and the container's record naming its node.

use std::net::IpAddr;

use actix_web::http::StatusCode;
use cm_core::{NodeInfo, NodeName, NodeState};
use serde_json::json;

use crate::helpers::{Cred, TestApp, api};

fn node(name: &str, octet: u8) -> NodeInfo {
    NodeInfo {
        name: NodeName::parse(name).unwrap(),
        id: format!("id-{name}"),
        address: IpAddr::from([10, 99, 0, octet]),
        state: NodeState::Ready,
        schedulable: true,
        manager: octet == 1,
        memory_bytes: 4 << 30,
        cpus: 2.0,
    }
}

#[actix_web::test]
async fn a_create_names_its_node_and_list_nodes_counts_it() {
    let app = TestApp::new();
    let (status, answer) = app.get(&api("list_nodes"), &Cred::admin()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({"nodes": []}), "a single engine has no nodes");

    app.world
        .runtime
        .set_nodes(vec![node("manager-1", 1), node("worker-1", 2)]);
    let (status, created) = app
        .post(
            &api("create_container"),
            json!({"user_id": "alice", "container_type": "cli_v4", "node": "worker-1"}),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["container"]["node"], "worker-1");

    let (status, refused) = app
        .post(
            &api("create_container"),
            json!({"user_id": "bob", "container_type": "cli_v4", "node": "worker-1;x"}),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["field"], "node");

    let (status, answer) = app.get(&api("list_nodes"), &Cred::admin()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let nodes = answer["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[1]["name"], "worker-1");
    assert_eq!(nodes[1]["containers"], 1);
    assert_eq!(nodes[1]["reserved_memory_bytes"], 512 << 20);
    assert_eq!(nodes[0]["containers"], 0);
    assert_eq!(nodes[1]["address"], "10.99.0.2");

    let (status, moved) = app
        .post(
            &api("move_container"),
            json!({"container_id": "alice_cli_v4", "node": "manager-1"}),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["from"], "worker-1");
    assert_eq!(moved["container"]["node"], "manager-1");
    let (status, back) = app
        .post(
            &api("move_container"),
            json!({"container_id": "alice_cli_v4", "node": "worker-1"}),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{back}");

    app.world.runtime.set_node_state("worker-1", NodeState::Down);
    let (status, got) = app
        .get(
            &format!("{}?container_id=alice_cli_v4", api("get_container")),
            &Cred::admin(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["container"]["status"], "node-down");
}
