//! Who runs an operation: a lock file per container name, held (flock) by the process running the
//! operation. The kernel releases it when that process dies, however it dies, so a lock that can
//! be taken means the operation's process is gone: its intent is abandoned and may be taken over.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cm_core::{ContainerName, Error, Result};

/// The operation locks this process holds.
#[derive(Clone)]
pub(crate) struct Claims {
    dir: PathBuf,
    held: Arc<Mutex<HashMap<String, File>>>,
}

impl Claims {
    /// Claims live in `{database}.locks/`.
    pub(crate) fn beside(database: &Path) -> Result<Self> {
        let mut dir = database.as_os_str().to_owned();
        dir.push(".locks");
        let dir = PathBuf::from(dir);
        crate::modes::secure_own_dir(&dir)?;
        Ok(Claims {
            dir,
            held: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// Takes the lock of `name` without waiting; `false` when a live process (maybe this one)
    /// holds it.
    pub(crate) fn try_take(&self, name: &ContainerName) -> Result<bool> {
        let mut held = self
            .held
            .lock()
            .map_err(|_| Error::internal("the claims were poisoned by a panic"))?;
        if held.contains_key(name.as_str()) {
            return Ok(false);
        }
        let path = self.dir.join(format!("{name}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::unavailable(format!("can not open {}", path.display())).with_source(e))?;
        match file.try_lock() {
            Ok(()) => {
                held.insert(name.to_string(), file);
                Ok(true)
            }
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(e)) => {
                Err(Error::unavailable(format!("can not lock {}", path.display())).with_source(e))
            }
        }
    }

    /// Whether this process holds the lock of `name`.
    pub(crate) fn holds(&self, name: &str) -> bool {
        self.held.lock().is_ok_and(|held| held.contains_key(name))
    }

    /// Releases the lock of `name`, if held (closing the file unlocks it).
    pub(crate) fn release(&self, name: &ContainerName) {
        if let Ok(mut held) = self.held.lock() {
            held.remove(name.as_str());
        }
    }
}
