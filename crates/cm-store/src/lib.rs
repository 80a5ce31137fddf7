//! The SQLite adapter of cm-core's `Store` port: one file, WAL, a busy timeout, and the TBEF.DB keys
//! of the original as JSON values.
//!
//! Layout:
//! - `kv`: `CONTAINER::{container_id}` → the spec JSON, `CONTAINER_USER::{user_id}` → JSON list of
//!   ids, `CONTAINER_PORT_POOL` → JSON list of leased ports (kept for compatibility, rewritten in
//!   the same transaction as the leases), and `CONTAINER_NAME::{name}` → id (an index).
//! - `port_leases`: one row per leased port (the primary key makes a double lease impossible).
//! - `operations`: the intent of an unfinished create, delete or update, with the steps done so far;
//!   the process running it holds a lock file in `{database}.locks/` (see `claims.rs`).
//! - `retained_volumes`: data volumes a delete without purge kept.
//! - `subnets`: each user's network subnet.
//! - `ssh_keys`: the authorized keys of each container.
//! - `tokens` and the kv key `ADMIN_KEY_HASH`: credentials, as SHA-256 hashes only.
//! - `idle_stops`: containers stopped for being idle (a request through their route starts them).
//!
//! Only this crate knows these key strings and tables. Every call runs on tokio's blocking pool, so
//! a busy database never stalls the async runtime.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use cm_core::{
    ContainerName, ContainerSpec, CpuLimit, CreateReservation, DiskSize, Error, ErrorKind, MemoryLimit,
    Operation, OperationKind, PortLease, PortProbe, Result, SshPublicKey, Store, StoredKey, Subnet,
    SubnetPool, TypeName, UserId, UserQuota, VolumeName,
};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

mod audit;
mod claims;
mod credentials;
mod kv;
mod modes;

use claims::Claims;
use kv::Keys;

/// How long a writer waits for another process's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema of version 1, which every file starts from; [`MIGRATIONS`] take it to the
/// current version. `user_version` says which version a file has.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS port_leases (
    port INTEGER PRIMARY KEY CHECK (port BETWEEN 1 AND 65535),
    owner TEXT NOT NULL,
    leased_at INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS port_leases_owner ON port_leases (owner);
CREATE TABLE IF NOT EXISTS operations (
    name TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    container_type TEXT NOT NULL,
    kind TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    steps TEXT NOT NULL DEFAULT '[]'
) STRICT;
CREATE TABLE IF NOT EXISTS retained_volumes (
    name TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    retained_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS subnets (user_id TEXT PRIMARY KEY, subnet TEXT NOT NULL UNIQUE) STRICT;
CREATE TABLE IF NOT EXISTS ssh_keys (
    container_name TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    line TEXT NOT NULL,
    comment TEXT NOT NULL,
    added_at TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (container_name, fingerprint)
) STRICT;
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
) STRICT;
PRAGMA user_version = 1;
";

/// Every record, and the revision it was read at.
type KeptSpecs = (u64, Vec<ContainerSpec>);

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
    /// Read-only connections: WAL lets readers work beside the writer and each other, so
    /// concurrent API requests do not queue behind one connection.
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: Arc<AtomicUsize>,
    /// A read-only connection that only asks `PRAGMA data_version`, which changes whenever any
    /// other connection (this process's writer, another process) commits: the store's revision.
    watcher: Arc<Mutex<Connection>>,
    /// Every record as of a revision: listings at hundreds of containers are answered from it
    /// while nothing changed, without reading and decoding every record again.
    all_specs: Arc<Mutex<Option<KeptSpecs>>>,
    path: PathBuf,
    claims: Claims,
}

impl SqliteStore {
    /// This installation's id: drawn once, when the database is new, and kept in it (the label
    /// [`cm_core::labels::INSTALLATION`] on everything the manager makes).
    pub fn installation_id(&self) -> Result<String> {
        let connection = self.connection.lock().map_err(|_| poisoned())?;
        kv::Keys::installation(&connection)
    }

    /// Opens (creating if needed) the database at `path`, with WAL and a busy timeout.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            modes::create_private_dir(parent)?;
        }
        modes::secure_database(path)?;
        let connection = Connection::open(path).map_err(|e| {
            Error::unavailable(format!("can not open the database {}", path.display())).with_source(e)
        })?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(sql_error)?;
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql_error)?;
        prepare(&connection)?;
        let readers = (0..READERS)
            .map(|_| open_reader(path).map(Mutex::new))
            .collect::<Result<Vec<_>>>()?;
        Ok(SqliteStore {
            connection: Arc::new(Mutex::new(connection)),
            readers: Arc::new(readers),
            next_reader: Arc::new(AtomicUsize::new(0)),
            watcher: Arc::new(Mutex::new(open_reader(path)?)),
            all_specs: Arc::default(),
            path: path.to_owned(),
            claims: Claims::beside(path)?,
        })
    }

    /// `PRAGMA data_version` of the watcher: it changes with every commit of any other
    /// connection, and the watcher never writes.
    ///
    /// Asked on the calling thread, not the blocking pool: it reads a counter from the WAL index
    /// and takes no lock a writer holds, so it takes microseconds, less than the hop to another
    /// thread would (every listing asks it).
    async fn data_version(&self) -> Result<u64> {
        let connection = self.watcher.lock().map_err(|_| poisoned())?;
        let version: i64 = connection
            .pragma_query_value(None, "data_version", |row| row.get(0))
            .map_err(sql_error)?;
        Ok(version.cast_unsigned())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs a read on the blocking pool with a free read-only connection.
    async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        blocking(move || {
            let count = readers.len();
            // A free reader if there is one; else wait for the one whose turn it is.
            let free = (0..count).find_map(|i| readers[(start + i) % count].try_lock().ok());
            let mut guard = match free {
                Some(guard) => guard,
                None => readers[start % count].lock().map_err(|_| poisoned())?,
            };
            work(&mut guard)
        })
        .await
    }

    /// Runs `work` on the blocking pool with the writing connection.
    async fn run_on_writer<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let connection = self.connection.clone();
        blocking(move || work(&mut *connection.lock().map_err(|_| poisoned())?)).await
    }

    /// Runs `work` in one immediate (write-locked) transaction and commits it.
    async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        self.run_on_writer(move |connection| {
            let tx = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            let value = work(&tx)?;
            tx.commit().map_err(sql_error)?;
            Ok(value)
        })
        .await
    }
}

/// Runs database work on tokio's blocking pool, so a busy database never stalls the async runtime.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::internal("a database task failed").with_source(e))?
}

fn poisoned() -> Error {
    Error::internal("a database connection was poisoned by a panic")
}

/// The schema version this code writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 5;

/// The steps that bring a file of an earlier version to the next: `MIGRATIONS[v - 1]` takes
/// version `v` to `v + 1`. A new file gets [`SCHEMA`], then every step.
const MIGRATIONS: &[&str] = &[
    "
-- Version 2: tokens expire and note their last use; the admin's quota overrides per user
-- (NULL: the configured default).
ALTER TABLE tokens ADD COLUMN expires_at TEXT;
ALTER TABLE tokens ADD COLUMN last_used_at TEXT;
CREATE TABLE IF NOT EXISTS quotas (
    user_id TEXT PRIMARY KEY,
    containers INTEGER,
    memory_bytes INTEGER,
    nano_cpus INTEGER
) STRICT;
PRAGMA user_version = 2;
",
    "
-- Version 3: a disk quota beside the others (NULL: the configured default).
ALTER TABLE quotas ADD COLUMN disk_bytes INTEGER;
PRAGMA user_version = 3;
",
    "
-- Version 4: the audit trail, appended to, pruned by age.
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    at_unix INTEGER NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_name TEXT,
    source TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    subject TEXT,
    params TEXT NOT NULL,
    result TEXT NOT NULL,
    address TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS audit_at ON audit (at_unix);
CREATE INDEX IF NOT EXISTS audit_subject ON audit (subject, at_unix);
CREATE INDEX IF NOT EXISTS audit_target ON audit (target, id);
PRAGMA user_version = 4;
",
    "
-- Version 5: containers stopped for being idle, which a request through their route may start.
CREATE TABLE IF NOT EXISTS idle_stops (
    container_name TEXT PRIMARY KEY,
    stopped_at INTEGER NOT NULL
) STRICT;
PRAGMA user_version = 5;
",
];

// Every version after the first has its step.
const _: () = assert!(MIGRATIONS.len() as i64 + 1 == SCHEMA_VERSION);

/// Switches a new file to WAL and creates the schema, once. Several processes may open a fresh
/// file at the same moment: SQLite answers "locked" at once (without the busy handler) to a
/// journal-mode change that races another, so this retries until the busy timeout. On a prepared
/// file it only reads, so concurrent opens never contend.
fn prepare(connection: &Connection) -> Result<()> {
    let started = std::time::Instant::now();
    loop {
        match prepare_once(connection) {
            Err(e) if is_busy(&e) && started.elapsed() < BUSY_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other.map_err(sql_error),
        }
    }
}

fn prepare_once(connection: &Connection) -> rusqlite::Result<()> {
    let mode: String = connection.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        connection.pragma_update(None, "journal_mode", "WAL")?;
    }
    let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version >= SCHEMA_VERSION {
        return Ok(());
    }
    // One process migrates; the others wait for its transaction and then find the new version.
    connection.execute_batch("BEGIN IMMEDIATE")?;
    let migrated = (|| {
        let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        let mut version = version;
        if version == 0 {
            connection.execute_batch(SCHEMA)?;
            version = 1;
        }
        for step in MIGRATIONS
            .iter()
            .skip(usize::try_from(version - 1).unwrap_or(usize::MAX))
        {
            connection.execute_batch(step)?;
        }
        Ok(())
    })();
    match migrated {
        Ok(()) => connection.execute_batch("COMMIT"),
        Err(e) => {
            let _ = connection.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(
        err,
        rusqlite::Error::SqliteFailure(e, _)
            if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// How many read-only connections a store keeps.
const READERS: usize = 4;

/// A read-only connection to the database (the writer made the schema).
fn open_reader(path: &Path) -> Result<Connection> {
    let connection = Connection::open(path).map_err(|e| {
        Error::unavailable(format!("can not open the database {}", path.display())).with_source(e)
    })?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(sql_error)?;
    connection
        .pragma_update(None, "query_only", "ON")
        .map_err(sql_error)?;
    Ok(connection)
}

/// Maps SQLite failures: a lock held past the busy timeout is `Unavailable`, the rest `Internal`.
fn sql_error(err: rusqlite::Error) -> Error {
    if is_busy(&err) {
        Error::unavailable("the database is busy: another process holds it too long").with_source(err)
    } else {
        Error::internal("database error").with_source(err)
    }
}

fn unix_seconds(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn operation_kind_text(kind: OperationKind) -> &'static str {
    match kind {
        OperationKind::Create => "create",
        OperationKind::Delete => "delete",
        OperationKind::Purge => "purge",
        OperationKind::Update => "update",
    }
}

fn operation_kind_from(text: &str) -> Result<OperationKind> {
    Ok(match text {
        "create" => OperationKind::Create,
        "delete" => OperationKind::Delete,
        "purge" => OperationKind::Purge,
        "update" => OperationKind::Update,
        other => {
            return Err(Error::internal(format!(
                "unknown operation kind {other:?} in the database"
            )));
        }
    })
}

fn current_operation(tx: &Transaction<'_>, name: &ContainerName) -> Result<Option<OperationKind>> {
    tx.query_row(
        "SELECT kind FROM operations WHERE name = ?1",
        [name.as_str()],
        |row| row.get::<_, String>(0),
    )
    .optional()
    .map_err(sql_error)?
    .map(|k| operation_kind_from(&k))
    .transpose()
}

fn set_operation(
    tx: &Transaction<'_>,
    name: &ContainerName,
    owner: (&UserId, &TypeName),
    kind: OperationKind,
    started: i64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO operations (name, user_id, container_type, kind, started_at, steps)
         VALUES (?1, ?2, ?3, ?4, ?5, '[]')
         ON CONFLICT(name) DO UPDATE SET kind = excluded.kind, started_at = excluded.started_at,
             steps = '[]'",
        params![
            name.as_str(),
            owner.0.as_str(),
            owner.1.as_str(),
            operation_kind_text(kind),
            started
        ],
    )
    .map_err(sql_error)?;
    Ok(())
}

fn clear_operation(tx: &Transaction<'_>, name: &ContainerName) -> Result<()> {
    tx.execute("DELETE FROM operations WHERE name = ?1", [name.as_str()])
        .map_err(sql_error)?;
    Ok(())
}

fn release_ports(tx: &Transaction<'_>, owner: &ContainerName) -> Result<()> {
    tx.execute("DELETE FROM port_leases WHERE owner = ?1", [owner.as_str()])
        .map_err(sql_error)?;
    Keys::write_port_pool(tx)
}

#[async_trait]
impl Store for SqliteStore {
    async fn begin_create(&self, request: &CreateReservation, probe: Arc<dyn PortProbe>) -> Result<Vec<u16>> {
        if !self.claims.try_take(&request.name)? {
            return Err(Error::conflict(format!(
                "another operation on {} is in progress",
                request.name
            )));
        }
        let request = request.clone();
        let name = request.name.clone();
        let result = self
            .write(move |tx| {
                if Keys::id_of_name(tx, &request.name)?.is_some() {
                    return Err(Error::conflict(format!("container {} exists", request.name)));
                }
                if current_operation(tx, &request.name)?.is_some() {
                    return Err(Error::conflict(format!(
                        "an interrupted operation on {} is waiting for `cm reconcile`",
                        request.name
                    )));
                }
                let mut taken: BTreeSet<u16> = leased_ports(tx)?;
                taken.extend(&request.exclude);
                let ports = request.range.pick(request.ports, &taken, probe.as_ref())?;
                let now = unix_seconds(request.started);
                for port in &ports {
                    tx.execute(
                        "INSERT INTO port_leases (port, owner, leased_at) VALUES (?1, ?2, ?3)",
                        params![port, request.name.as_str(), now],
                    )
                    .map_err(sql_error)?;
                }
                Keys::write_port_pool(tx)?;
                set_operation(
                    tx,
                    &request.name,
                    (&request.user, &request.kind),
                    OperationKind::Create,
                    now,
                )?;
                Ok(ports)
            })
            .await;
        if result.is_err() {
            self.claims.release(&name);
        }
        result
    }

    async fn finish_create(&self, spec: &ContainerSpec) -> Result<()> {
        let spec = spec.clone();
        let name = spec.container_name.clone();
        self.write(move |tx| {
            Keys::put_spec(tx, &spec)?;
            tx.execute(
                "DELETE FROM retained_volumes WHERE name = ?1",
                [spec.volume_name.as_str()],
            )
            .map_err(sql_error)?;
            clear_operation(tx, &spec.container_name)
        })
        .await?;
        self.claims.release(&name);
        Ok(())
    }

    async fn abandon_create(&self, name: &ContainerName) -> Result<()> {
        let owned = name.clone();
        self.write(move |tx| {
            release_ports(tx, &owned)?;
            tx.execute("DELETE FROM ssh_keys WHERE container_name = ?1", [owned.as_str()])
                .map_err(sql_error)?;
            clear_operation(tx, &owned)
        })
        .await?;
        self.claims.release(name);
        Ok(())
    }

    async fn begin_operation(
        &self,
        spec: &ContainerSpec,
        kind: OperationKind,
        started: SystemTime,
    ) -> Result<()> {
        let name = spec.container_name.clone();
        if !self.claims.try_take(&name)? {
            return Err(Error::conflict(format!(
                "another operation on {name} is in progress"
            )));
        }
        let owner = (spec.user_id.clone(), spec.container_type.clone());
        let target = name.clone();
        let result = self
            .write(move |tx| {
                if let Some(current) = current_operation(tx, &target)? {
                    // Its process is gone (we hold the lock): a delete may take over an
                    // interrupted delete; anything else waits for the reconciler.
                    let deleting = |k| matches!(k, OperationKind::Delete | OperationKind::Purge);
                    if !(deleting(current) && deleting(kind)) {
                        return Err(Error::conflict(format!(
                            "an interrupted {} of {target} is waiting for `cm reconcile`",
                            operation_kind_text(current)
                        )));
                    }
                }
                set_operation(tx, &target, (&owner.0, &owner.1), kind, unix_seconds(started))
            })
            .await;
        if result.is_err() {
            self.claims.release(&name);
        }
        result
    }

    async fn end_operation(&self, name: &ContainerName) -> Result<()> {
        let owned = name.clone();
        self.write(move |tx| clear_operation(tx, &owned)).await?;
        self.claims.release(name);
        Ok(())
    }

    async fn finish_delete(&self, spec: &ContainerSpec) -> Result<()> {
        let spec = spec.clone();
        let name = spec.container_name.clone();
        self.write(move |tx| {
            let name = &spec.container_name;
            if let Some(id) = Keys::id_of_name(tx, name)? {
                Keys::delete_spec(tx, &id, name, &spec.user_id)?;
            }
            release_ports(tx, name)?;
            tx.execute("DELETE FROM ssh_keys WHERE container_name = ?1", [name.as_str()])
                .map_err(sql_error)?;
            tx.execute(
                "DELETE FROM idle_stops WHERE container_name = ?1",
                [name.as_str()],
            )
            .map_err(sql_error)?;
            if current_operation(tx, name)? == Some(OperationKind::Purge) {
                tx.execute(
                    "DELETE FROM retained_volumes WHERE name = ?1",
                    [spec.volume_name.as_str()],
                )
                .map_err(sql_error)?;
            } else {
                tx.execute(
                    "INSERT INTO retained_volumes (name, user_id, retained_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT(name) DO UPDATE SET retained_at = excluded.retained_at",
                    params![
                        spec.volume_name.as_str(),
                        spec.user_id.as_str(),
                        unix_seconds(SystemTime::now())
                    ],
                )
                .map_err(sql_error)?;
            }
            clear_operation(tx, name)
        })
        .await?;
        self.claims.release(&name);
        Ok(())
    }

    async fn operations(&self) -> Result<Vec<Operation>> {
        self.run(|connection| all_operations(connection)).await
    }

    async fn record_step(&self, name: &ContainerName, step: &str) -> Result<()> {
        let name = name.clone();
        let step = step.to_owned();
        self.write(move |tx| {
            tx.execute(
                "UPDATE operations SET steps = json_insert(steps, '$[#]', ?2) WHERE name = ?1",
                params![name.as_str(), step],
            )
            .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn claim_abandoned(&self) -> Result<Vec<Operation>> {
        let operations = self.operations().await?;
        let mut abandoned = Vec::new();
        for operation in operations {
            if !self.claims.holds(operation.name.as_str()) && self.claims.try_take(&operation.name)? {
                abandoned.push(operation);
            }
        }
        Ok(abandoned)
    }

    async fn unclaim(&self, name: &ContainerName) -> Result<()> {
        self.claims.release(name);
        Ok(())
    }

    async fn adopt(&self, spec: &ContainerSpec) -> Result<()> {
        let spec = spec.clone();
        self.write(move |tx| {
            let name = &spec.container_name;
            if Keys::id_of_name(tx, name)?.is_some() {
                return Err(Error::conflict(format!("container {name} exists")));
            }
            if current_operation(tx, name)?.is_some() {
                return Err(Error::conflict(format!(
                    "another operation on {name} is in progress"
                )));
            }
            let now = unix_seconds(SystemTime::now());
            for port in std::iter::once(spec.port).chain(spec.ssh_port) {
                let owner: Option<String> = tx
                    .query_row("SELECT owner FROM port_leases WHERE port = ?1", [port], |row| {
                        row.get(0)
                    })
                    .optional()
                    .map_err(sql_error)?;
                if let Some(owner) = owner {
                    return Err(Error::conflict(format!("port {port} is leased to {owner}")));
                }
                tx.execute(
                    "INSERT INTO port_leases (port, owner, leased_at) VALUES (?1, ?2, ?3)",
                    params![port, name.as_str(), now],
                )
                .map_err(sql_error)?;
            }
            Keys::write_port_pool(tx)?;
            Keys::put_spec(tx, &spec)
        })
        .await
    }

    async fn put(&self, spec: &ContainerSpec) -> Result<()> {
        let spec = spec.clone();
        self.write(move |tx| {
            if let Some(old_id) = Keys::id_of_name(tx, &spec.container_name)?
                && old_id != spec.container_id
            {
                Keys::delete_spec(tx, &old_id, &spec.container_name, &spec.user_id)?;
            }
            Keys::put_spec(tx, &spec)
        })
        .await
    }

    async fn get(&self, container_id: &str) -> Result<Option<ContainerSpec>> {
        let id = container_id.to_owned();
        self.run(move |connection| Keys::get_spec(connection, &id)).await
    }

    async fn get_by_name(&self, name: &ContainerName) -> Result<Option<ContainerSpec>> {
        let name = name.clone();
        self.run(move |connection| match Keys::id_of_name(connection, &name)? {
            Some(id) => Keys::get_spec(connection, &id),
            None => Ok(None),
        })
        .await
    }

    async fn list_all(&self) -> Result<Vec<ContainerSpec>> {
        // The revision is taken before the read: a commit in between only makes the next
        // listing read again.
        let revision = self.data_version().await?;
        if let Ok(cached) = self.all_specs.lock()
            && let Some((at, specs)) = cached.as_ref()
            && *at == revision
        {
            return Ok(specs.clone());
        }
        let specs = self.run(|connection| Keys::all_specs(connection)).await?;
        if let Ok(mut cached) = self.all_specs.lock() {
            *cached = Some((revision, specs.clone()));
        }
        Ok(specs)
    }

    async fn revision(&self) -> Result<Option<u64>> {
        self.data_version().await.map(Some)
    }

    async fn list_user(&self, user: &UserId) -> Result<Vec<ContainerSpec>> {
        let user = user.clone();
        self.run(move |connection| {
            let mut specs = Vec::new();
            for id in Keys::user_ids(connection, &user)? {
                if let Some(spec) = Keys::get_spec(connection, &id)? {
                    specs.push(spec);
                }
            }
            specs.sort_by(|a, b| a.container_name.cmp(&b.container_name));
            Ok(specs)
        })
        .await
    }

    async fn port_leases(&self) -> Result<Vec<PortLease>> {
        self.run(|connection| {
            let mut statement = connection
                .prepare("SELECT port, owner FROM port_leases ORDER BY port")
                .map_err(sql_error)?;
            let rows = statement
                .query_map([], |row| {
                    Ok(PortLease {
                        port: row.get(0)?,
                        owner: row.get(1)?,
                    })
                })
                .map_err(sql_error)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql_error)
        })
        .await
    }

    async fn release_ports(&self, owner: &str) -> Result<()> {
        let owner = owner.to_owned();
        self.write(move |tx| {
            tx.execute("DELETE FROM port_leases WHERE owner = ?1", [owner])
                .map_err(sql_error)?;
            Keys::write_port_pool(tx)
        })
        .await
    }

    async fn subnet_leases(&self) -> Result<Vec<(UserId, Subnet)>> {
        self.run(|connection| {
            let mut statement = connection
                .prepare("SELECT user_id, subnet FROM subnets ORDER BY user_id")
                .map_err(sql_error)?;
            let rows = statement
                .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))
                .map_err(sql_error)?;
            let mut leases = Vec::new();
            for row in rows {
                let (user, subnet) = row.map_err(sql_error)?;
                leases.push((UserId::parse(&user)?, Subnet::parse(&subnet)?));
            }
            Ok(leases)
        })
        .await
    }

    async fn subnet_of(&self, user: &UserId) -> Result<Option<Subnet>> {
        let user = user.clone();
        self.run(move |connection| user_subnet(connection, &user)).await
    }

    async fn forget_retained(&self, name: &VolumeName) -> Result<bool> {
        let name = name.clone();
        self.write(move |tx| {
            let removed = tx
                .execute("DELETE FROM retained_volumes WHERE name = ?1", [name.as_str()])
                .map_err(sql_error)?;
            Ok(removed > 0)
        })
        .await
    }

    async fn retained_volumes(&self) -> Result<Vec<VolumeName>> {
        self.run(|connection| {
            let mut statement = connection
                .prepare("SELECT name FROM retained_volumes ORDER BY name")
                .map_err(sql_error)?;
            let rows = statement
                .query_map([], |row| row.get::<_, String>(0))
                .map_err(sql_error)?;
            let mut volumes = Vec::new();
            for row in rows {
                volumes.push(VolumeName::parse(&row.map_err(sql_error)?)?);
            }
            Ok(volumes)
        })
        .await
    }

    async fn lease_subnet(
        &self,
        user: &UserId,
        pool: SubnetPool,
        exclude: &BTreeSet<Subnet>,
    ) -> Result<Subnet> {
        let user = user.clone();
        let exclude = exclude.clone();
        self.write(move |tx| {
            if let Some(subnet) = user_subnet(tx, &user)? {
                return Ok(subnet);
            }
            let mut taken = exclude;
            let mut statement = tx.prepare("SELECT subnet FROM subnets").map_err(sql_error)?;
            let rows = statement
                .query_map([], |row| row.get::<_, String>(0))
                .map_err(sql_error)?;
            for row in rows {
                taken.insert(Subnet::parse(&row.map_err(sql_error)?)?);
            }
            let subnet = pool.pick(&taken)?;
            tx.execute(
                "INSERT INTO subnets (user_id, subnet) VALUES (?1, ?2)",
                params![user.as_str(), subnet.to_string()],
            )
            .map_err(sql_error)?;
            Ok(subnet)
        })
        .await
    }

    async fn release_subnet(&self, user: &UserId) -> Result<()> {
        let user = user.clone();
        self.write(move |tx| {
            tx.execute("DELETE FROM subnets WHERE user_id = ?1", [user.as_str()])
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn user_quota(&self, user: &UserId) -> Result<Option<UserQuota>> {
        let user = user.clone();
        let row = self
            .run(move |connection| {
                connection
                    .query_row(
                        "SELECT containers, memory_bytes, nano_cpus, disk_bytes FROM quotas WHERE user_id = ?1",
                        [user.as_str()],
                        |row| {
                            Ok((
                                row.get::<_, Option<i64>>(0)?,
                                row.get::<_, Option<i64>>(1)?,
                                row.get::<_, Option<i64>>(2)?,
                                row.get::<_, Option<i64>>(3)?,
                            ))
                        },
                    )
                    .optional()
                    .map_err(sql_error)
            })
            .await?;
        let Some((containers, memory, nano_cpus, disk)) = row else {
            return Ok(None);
        };
        let corrupt = || Error::internal("a stored quota is malformed");
        Ok(Some(UserQuota {
            containers: containers
                .map(|n| u32::try_from(n).map_err(|_| corrupt()))
                .transpose()?,
            memory: memory
                .map(|b| MemoryLimit::parse(&b.to_string()).map_err(|_| corrupt()))
                .transpose()?,
            cpus: nano_cpus
                .map(|n| CpuLimit::from_cpus(n as f64 / 1e9).map_err(|_| corrupt()))
                .transpose()?,
            disk: disk
                .map(|b| DiskSize::parse(&b.to_string()).map_err(|_| corrupt()))
                .transpose()?,
        }))
    }

    async fn set_user_quota(&self, user: &UserId, quota: Option<&UserQuota>) -> Result<()> {
        let user = user.clone();
        let quota = quota.copied();
        self.write(move |tx| {
            match quota {
                None => tx
                    .execute("DELETE FROM quotas WHERE user_id = ?1", [user.as_str()])
                    .map_err(sql_error)?,
                Some(quota) => tx
                    .execute(
                        "INSERT INTO quotas (user_id, containers, memory_bytes, nano_cpus, disk_bytes)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (user_id) DO UPDATE
                         SET containers = ?2, memory_bytes = ?3, nano_cpus = ?4, disk_bytes = ?5",
                        params![
                            user.as_str(),
                            quota.containers.map(i64::from),
                            quota.memory.map(|m| i64::try_from(m.bytes()).unwrap_or(i64::MAX)),
                            quota
                                .cpus
                                .map(|c| i64::try_from(c.nano_cpus()).unwrap_or(i64::MAX)),
                            quota.disk.map(|d| i64::try_from(d.bytes()).unwrap_or(i64::MAX)),
                        ],
                    )
                    .map_err(sql_error)?,
            };
            Ok(())
        })
        .await
    }

    async fn add_key(&self, name: &ContainerName, key: &SshPublicKey, added: SystemTime) -> Result<bool> {
        let name = name.clone();
        let key = key.clone();
        self.write(move |tx| {
            let seq: i64 = tx
                .query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM ssh_keys", [], |row| {
                    row.get(0)
                })
                .map_err(sql_error)?;
            let inserted = tx
                .execute(
                    "INSERT INTO ssh_keys (container_name, fingerprint, line, comment, added_at, seq)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT(container_name, fingerprint) DO NOTHING",
                    params![
                        name.as_str(),
                        key.fingerprint(),
                        key.line(),
                        key.comment(),
                        humantime::format_rfc3339_seconds(added).to_string(),
                        seq
                    ],
                )
                .map_err(sql_error)?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn remove_key(&self, name: &ContainerName, fingerprint: &str) -> Result<bool> {
        let name = name.clone();
        let fingerprint = fingerprint.to_owned();
        self.write(move |tx| {
            let removed = tx
                .execute(
                    "DELETE FROM ssh_keys WHERE container_name = ?1 AND fingerprint = ?2",
                    params![name.as_str(), fingerprint],
                )
                .map_err(sql_error)?;
            Ok(removed > 0)
        })
        .await
    }

    async fn keys(&self, name: &ContainerName) -> Result<Vec<StoredKey>> {
        let name = name.clone();
        self.run(move |connection| {
            let mut statement = connection
                .prepare(
                    "SELECT line, fingerprint, comment, added_at FROM ssh_keys
                     WHERE container_name = ?1 ORDER BY seq",
                )
                .map_err(sql_error)?;
            let rows = statement
                .query_map([name.as_str()], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                    ))
                })
                .map_err(sql_error)?;
            let mut keys = Vec::new();
            for row in rows {
                let (line, fingerprint, comment, added_at) = row.map_err(sql_error)?;
                keys.push(StoredKey {
                    key: SshPublicKey::from_parsed(&line, &fingerprint, &comment).map_err(|e| {
                        Error::new(ErrorKind::Internal, format!("stored key is corrupt: {e}"))
                    })?,
                    added_at,
                });
            }
            Ok(keys)
        })
        .await
    }

    async fn mark_idle_stopped(&self, name: &ContainerName, at: SystemTime) -> Result<()> {
        let name = name.clone();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO idle_stops (container_name, stopped_at) VALUES (?1, ?2)
                 ON CONFLICT(container_name) DO UPDATE SET stopped_at = excluded.stopped_at",
                params![name.as_str(), unix_seconds(at)],
            )
            .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn clear_idle_stopped(&self, name: &ContainerName) -> Result<bool> {
        let name = name.clone();
        self.write(move |tx| {
            let removed = tx
                .execute(
                    "DELETE FROM idle_stops WHERE container_name = ?1",
                    [name.as_str()],
                )
                .map_err(sql_error)?;
            Ok(removed > 0)
        })
        .await
    }

    async fn idle_stopped(&self) -> Result<BTreeMap<ContainerName, SystemTime>> {
        self.run(move |connection| {
            let mut statement = connection
                .prepare("SELECT container_name, stopped_at FROM idle_stops")
                .map_err(sql_error)?;
            let rows = statement
                .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))
                .map_err(sql_error)?;
            let mut marks = BTreeMap::new();
            for row in rows {
                let (name, at) = row.map_err(sql_error)?;
                let at = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(at).unwrap_or(0));
                marks.insert(ContainerName::parse(&name)?, at);
            }
            Ok(marks)
        })
        .await
    }
}

/// A user's subnet lease, if any.
fn user_subnet(connection: &Connection, user: &UserId) -> Result<Option<Subnet>> {
    let text: Option<String> = connection
        .query_row(
            "SELECT subnet FROM subnets WHERE user_id = ?1",
            [user.as_str()],
            |row| row.get(0),
        )
        .optional()
        .map_err(sql_error)?;
    text.map(|t| Subnet::parse(&t)).transpose()
}

fn all_operations(connection: &Connection) -> Result<Vec<Operation>> {
    let mut statement = connection
        .prepare(
            "SELECT name, user_id, container_type, kind, started_at, steps FROM operations ORDER BY name",
        )
        .map_err(sql_error)?;
    let rows = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, i64>(4)?,
                row.get::<_, String>(5)?,
            ))
        })
        .map_err(sql_error)?;
    let mut operations = Vec::new();
    for row in rows {
        let (name, user, kind_of_container, kind, started_at, steps) = row.map_err(sql_error)?;
        operations.push(Operation {
            name: ContainerName::parse(&name)?,
            user_id: UserId::parse(&user)?,
            container_type: TypeName::parse(&kind_of_container)?,
            kind: operation_kind_from(&kind)?,
            started_at,
            steps: serde_json::from_str(&steps)
                .map_err(|e| Error::internal(format!("corrupt steps of {name}")).with_source(e))?,
        });
    }
    Ok(operations)
}

fn leased_ports(connection: &Connection) -> Result<BTreeSet<u16>> {
    let mut statement = connection
        .prepare("SELECT port FROM port_leases")
        .map_err(sql_error)?;
    let rows = statement
        .query_map([], |row| row.get::<_, u16>(0))
        .map_err(sql_error)?;
    rows.collect::<rusqlite::Result<BTreeSet<_>>>().map_err(sql_error)
}
