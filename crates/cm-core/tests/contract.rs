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
