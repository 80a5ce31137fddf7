//! cm-core's runtime contract (`cm_core::contract::runtime`) over cm-swarm's adapter on the real
//! engine in a single-node swarm (`cm_testkit::swarm::SingleNodeSwarm`).
//!
//! Swarm mode is the engine's global state: the test holds the engine alone
//! (`TestEnv::alone`), and the fixture leaves swarm mode on drop if and only if it entered it,
//! failed check or not. Because the fixture borrows its `TestEnv`, the checks run one after
//! another in one test, within one swarm (which also spares seven swarm inits). Every engine call
//! is bounded (`DOCKER_CALL_LIMIT`); without an engine the test skips loudly, under CI it fails.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use cm_core::contract::runtime::{self as contract, RuntimeSubject};
use cm_core::{ContainerRuntime, ImageRef, PortRange, Subnet, SubnetPool, UserId};
use cm_swarm::SwarmRuntime;
use cm_testkit::swarm::SingleNodeSwarm;
use cm_testkit::{DOCKER_CALL_LIMIT, OWNER_LABEL, TEST_LABEL, TestEnv};

/// The base of the default images (images/build.sh): a shell and coreutils, no entrypoint.
const IMAGE: &str = "cm-base:bookworm";

struct Swarm<'env> {
    runtime: SwarmRuntime,
    env: &'env TestEnv,
}

impl RuntimeSubject for Swarm<'_> {
    fn runtime(&self) -> &dyn ContainerRuntime {
        &self.runtime
    }

    fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (TEST_LABEL.to_owned(), self.env.run.clone()),
            (OWNER_LABEL.to_owned(), cm_testkit::owner_id()),
        ])
    }

    fn user(&self, name: &str) -> UserId {
        UserId::parse(&self.env.user(name)).unwrap()
    }

    fn image(&self) -> ImageRef {
        ImageRef::parse(IMAGE).unwrap()
    }

    fn ports(&self) -> PortRange {
        let (first, last) = self.env.slot.port_range();
        PortRange::new(first, last).unwrap()
    }

    fn subnets(&self) -> SubnetPool {
        SubnetPool::new(Subnet::parse(&self.env.slot.subnet_range()).unwrap(), 28).unwrap()
    }

    fn limit(&self) -> Duration {
        DOCKER_CALL_LIMIT
    }
}

/// The engine answers and has the base image (under CI, a missing one fails).
fn have_engine() -> bool {
    cm_testkit::require(
        "docker",
        &["info", "--format", "{{.ServerVersion}}"],
        "a running Docker engine",
    ) && cm_testkit::require(
        "docker",
        &["image", "inspect", "--format", "{{.Id}}", IMAGE],
        "the base image cm-base:bookworm (images/build.sh)",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_runtime_keeps_the_runtime_contract() {
    if !have_engine() {
        return;
    }
    let env = TestEnv::alone();
    let swarm = SingleNodeSwarm::join(&env);
    let subject = Swarm {
        runtime: SwarmRuntime::default(),
        env: &env,
    };
    // Every check of `runtime_contract!`, in its order.
    contract::networks_are_ensured_once_listed_and_removed(&subject).await;
    contract::volumes_are_ensured_once_per_owner_listed_and_removed(&subject).await;
    contract::a_container_lives_through_create_start_stop_and_remove(&subject).await;
    contract::a_missing_image_or_a_taken_name_is_refused(&subject).await;
    contract::exec_gives_output_exit_codes_and_keeps_its_time_limit(&subject).await;
    contract::uploaded_files_are_read_back(&subject).await;
    contract::logs_keep_their_tail(&subject).await;
    contract::events_tell_starts_and_removals(&subject).await;
    drop(swarm);
}
