//! cm-core's store contract (`cm_core::contract::store`) over the SQLite store, in a fresh
//! database file per check. A crash drops the store (its process's operation locks go with it)
//! and opens another on the same file, as the next `cm` would.

#![allow(clippy::unwrap_used)]

use cm_core::Store;
use cm_core::contract::store::StoreSubject;
use cm_store::SqliteStore;

struct Sqlite {
    dir: tempfile::TempDir,
    store: SqliteStore,
}

impl Sqlite {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("cm.db")).unwrap();
        Sqlite { dir, store }
    }
}

impl StoreSubject for Sqlite {
    fn store(&self) -> &dyn Store {
        &self.store
    }

    fn crash(&mut self) {
        self.store = SqliteStore::open(&self.dir.path().join("cm.db")).unwrap();
    }
}

cm_core::store_contract!(crate::Sqlite::new());
