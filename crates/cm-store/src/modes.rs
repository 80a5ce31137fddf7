//! Who may read the database: only the user running ContainerManager. The file holds token and
//! key hashes, environments and SSH keys, so it is 0600, the directories made for it 0700, and a
//! file an earlier version left readable by others is tightened at start (with a warning).

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use cm_core::{Error, Result};

/// The mode of the database file and of SQLite's files beside it.
pub(crate) const FILE_MODE: u32 = 0o600;
/// The mode of directories the store creates.
pub(crate) const DIR_MODE: u32 = 0o700;

/// Creates `dir` and its missing parents with mode 0700. An existing directory is left as it is:
/// it may be shared (such as `/tmp`) and is not ours to change.
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| {
            Error::unavailable(format!("can not create the directory {}", dir.display())).with_source(e)
        })
}

/// Makes the database file exist with mode 0600 before SQLite opens it (SQLite gives its `-wal`
/// and `-shm` files the database's mode), and tightens an existing database, and the journal
/// files beside it, that others may read.
pub(crate) fn secure_database(path: &Path) -> Result<()> {
    let failed = |e: std::io::Error| {
        Error::unavailable(format!("can not secure the database {}", path.display())).with_source(e)
    };
    if !path.exists() {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(path)
            .map_err(failed)?;
    }
    let mut names = vec![path.as_os_str().to_owned()];
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        names.push(name);
    }
    for name in names {
        let file = Path::new(&name);
        let Ok(meta) = std::fs::metadata(file) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                file = %file.display(),
                mode = format_args!("{mode:o}"),
                "the database was readable by other users; it is now 0600"
            );
            std::fs::set_permissions(file, Permissions::from_mode(FILE_MODE)).map_err(failed)?;
        }
    }
    Ok(())
}

/// Makes our own directory (the lock directory) 0700, whatever it was.
pub(crate) fn secure_own_dir(dir: &Path) -> Result<()> {
    create_private_dir(dir)?;
    std::fs::set_permissions(dir, Permissions::from_mode(DIR_MODE)).map_err(|e| {
        Error::unavailable(format!("can not secure the directory {}", dir.display())).with_source(e)
    })
}
