//! cm-core's runtime contract (`cm_core::contract::runtime`) over cm-docker's adapter on the real
//! engine. Each check runs in its own `TestEnv`: a Docker slot (its ports and subnets), the run's
//! labels on every object, users unique to the run, and removal of everything labelled when the
//! check ends, failed or not. Every engine call is bounded (`DOCKER_CALL_LIMIT`). Without an
//! engine the checks skip loudly, under CI they fail.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use cm_core::contract::runtime::RuntimeSubject;
use cm_core::{ContainerRuntime, ImageRef, PortRange, Subnet, SubnetPool, UserId};
use cm_docker::DockerRuntime;
use cm_testkit::{DOCKER_CALL_LIMIT, OWNER_LABEL, TEST_LABEL, TestEnv};

struct Engine {
    runtime: DockerRuntime,
    env: TestEnv,
}

impl Engine {
    fn new() -> Option<Self> {
        if !cm_testkit::require_docker() {
            return None;
        }
        Some(Engine {
            runtime: DockerRuntime::new(),
            env: TestEnv::new(),
        })
    }
}

impl RuntimeSubject for Engine {
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
        // The base of the default images (images/build.sh): a shell and coreutils, no entrypoint.
        ImageRef::parse("cm-base:bookworm").unwrap()
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

cm_core::runtime_contract!(crate::Engine::new());
