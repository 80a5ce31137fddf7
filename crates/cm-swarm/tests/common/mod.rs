//! What both Swarm suites share: the runtime contract's subject over a `SwarmRuntime` in a test
//! world, and the check that the engine and the base image are there.

#![allow(clippy::unwrap_used, dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use cm_core::contract::runtime::RuntimeSubject;
use cm_core::{ContainerRuntime, ImageRef, PortRange, Subnet, SubnetPool, UserId};
use cm_swarm::SwarmRuntime;
use cm_testkit::{DOCKER_CALL_LIMIT, OWNER_LABEL, TEST_LABEL, TestEnv};

/// The base of the default images (images/build.sh): a shell and coreutils, no entrypoint.
pub const IMAGE: &str = "cm-base:bookworm";

pub struct Swarm<'env> {
    pub runtime: SwarmRuntime,
    pub env: &'env TestEnv,
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
pub fn have_engine() -> bool {
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
