//! The subnet pool against the real engine: the engine's default address pools hold only about 30
//! bridge networks, ours holds many more.

use std::collections::BTreeMap;

use cm_core::{ContainerRuntime, Ensured, NetworkName, NetworkPlan, Store, SubnetPool, UserId, owner_labels};
use cm_docker::DockerRuntime;
use cm_store::SqliteStore;
use cm_testkit::{OWNER_LABEL, TEST_LABEL, docker_ok};

use crate::helpers::World;

#[test]
fn sixty_user_networks_fit() {
    let Some(world) = World::new() else { return };
    let store = SqliteStore::open(&world.env.db_path()).unwrap();
    let runtime = DockerRuntime::new();
    let pool = SubnetPool::new(
        cm_core::Subnet::parse(&world.env.slot.subnet_range()).unwrap(),
        28,
    )
    .unwrap();
    let labels = BTreeMap::from([
        (TEST_LABEL.to_owned(), world.env.run.clone()),
        (OWNER_LABEL.to_owned(), cm_testkit::owner_id()),
    ]);
    let runtime_handle = tokio::runtime::Runtime::new().unwrap();
    runtime_handle.block_on(async {
        let engine = runtime.network_subnets().await.unwrap();
        for i in 0..60 {
            let user = UserId::parse(&world.env.user(&format!("n{i}"))).unwrap();
            let subnet = store.lease_subnet(&user, pool, &engine).await.unwrap();
            let plan = NetworkPlan {
                name: NetworkName::of(&user),
                subnet,
                labels: owner_labels(&user, None, &labels),
            };
            assert_eq!(
                runtime.ensure_network(&plan).await.unwrap(),
                Ensured::Created,
                "network {i}"
            );
            // Ensuring it again finds the existing one.
            assert_eq!(runtime.ensure_network(&plan).await.unwrap(), Ensured::Existing);
        }
    });
    let listed = docker_ok(&[
        "network",
        "ls",
        "--filter",
        &world.env.label_filter(),
        "--format",
        "{{.Name}}",
    ]);
    assert_eq!(listed.lines().count(), 60);
}
