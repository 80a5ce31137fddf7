//! The port contracts (`cm_core::contract`) over cm-core's fakes; cm-store and cm-docker run the
//! same contracts over the real adapters.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use cm_core::Store;
use cm_core::contract::store::StoreSubject;
use cm_core::testing::MemoryStore;

/// The in-memory store; a crash drops the claims of the process that ran its operations.
struct Memory(Arc<MemoryStore>);

impl StoreSubject for Memory {
    fn store(&self) -> &dyn Store {
        self.0.as_ref()
    }

    fn crash(&mut self) {
        self.0.crash();
    }
}

cm_core::store_contract!(crate::Memory(std::sync::Arc::new(
    cm_core::testing::MemoryStore::default()
)));

/// The fake engine, with the contract's image.
struct Fake(cm_core::testing::FakeRuntime);

impl Fake {
    fn new() -> Option<Self> {
        let runtime = cm_core::testing::FakeRuntime::new();
        runtime.add_image("cm-base:bookworm");
        Some(Fake(runtime))
    }
}

impl cm_core::contract::runtime::RuntimeSubject for Fake {
    fn runtime(&self) -> &dyn cm_core::ContainerRuntime {
        &self.0
    }

    fn labels(&self) -> std::collections::BTreeMap<String, String> {
        std::collections::BTreeMap::from([("cm.test".to_owned(), "fake".to_owned())])
    }

    fn user(&self, name: &str) -> cm_core::UserId {
        cm_core::UserId::parse(name).unwrap()
    }

    fn image(&self) -> cm_core::ImageRef {
        cm_core::ImageRef::parse("cm-base:bookworm").unwrap()
    }

    fn ports(&self) -> cm_core::PortRange {
        cm_core::PortRange::new(9000, 9100).unwrap()
    }

    fn subnets(&self) -> cm_core::SubnetPool {
        cm_core::SubnetPool::new(cm_core::Subnet::parse("10.201.0.0/16").unwrap(), 28).unwrap()
    }

    fn limit(&self) -> std::time::Duration {
        std::time::Duration::from_secs(5)
    }
}

cm_core::runtime_contract!(crate::Fake::new());
