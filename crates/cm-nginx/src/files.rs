//! The box directories on disk: route files, their links, failure markers, undo journals and the
//! lock that serialises changes across processes.
//!
//! Everything here is blocking `std::fs` work on small files; the async side calls it through
//! `spawn_blocking`. Names in `box-available/`:
//! - `container-{user}-{type}.conf`: the route file (nginx only ever sees it through the link);
//! - `container-{user}-{type}.conf.failed`: nginx's message when the last change was refused;
//! - `.container-{user}-{type}.conf.undo`: the state before an unfinished batch (crash recovery);
//! - `.container-{user}-{type}.conf.tmp-*`: a file being written;
//! - `.cm-nginx.lock`: the lock file.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, ErrorKind as IoKind, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cm_core::{RouteState, RouteStatus, TypeName, UserId};

use crate::render::{FILE_PREFIX, FILE_SUFFIX, port_of, route_file_name};

const FAILED_SUFFIX: &str = ".failed";
const UNDO_SUFFIX: &str = ".undo";
const TMP_MARK: &str = ".tmp-";
const LOCK_FILE: &str = ".cm-nginx.lock";

/// A route's identity: the validated user and type, and its file name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RouteKey {
    pub(crate) user: UserId,
    pub(crate) kind: TypeName,
}

/// What a route looked like on disk before a change: enough to put it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// The route file's bytes, if it existed.
    pub(crate) conf: Option<Vec<u8>>,
    /// Whether `box-enabled/` had an entry of that name (ours: a link to the file).
    pub(crate) linked: bool,
}

/// The two box directories.
#[derive(Debug)]
pub(crate) struct BoxDirs {
    available: PathBuf,
    enabled: PathBuf,
    /// The absolute form of `available`, used as the link target.
    link_base: PathBuf,
}

/// An exclusive or shared hold on the lock file; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct LockGuard {
    _file: File,
}

/// The reload ledger: how many validated batches every process has written, up to which of them
/// a successful reload has covered, and when that reload ran (ms since the Unix epoch). It lets a
/// process skip its reload when another process reloaded after its change was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Ledger {
    pub(crate) written: u64,
    pub(crate) reloaded: u64,
    pub(crate) reloaded_at_ms: u64,
}

/// The ledger's file in the available directory.
const LEDGER_FILE: &str = ".cm-reload-ledger";

impl RouteKey {
    pub(crate) fn new(user: UserId, kind: TypeName) -> Self {
        RouteKey { user, kind }
    }

    pub(crate) fn file_name(&self) -> String {
        route_file_name(&self.user, &self.kind)
    }

    /// Parses `container-{user}-{type}.conf`; anything else (other files, invalid names) is `None`.
    pub(crate) fn from_file_name(name: &str) -> Option<Self> {
        let stem = name.strip_prefix(FILE_PREFIX)?.strip_suffix(FILE_SUFFIX)?;
        let (user, kind) = stem.rsplit_once('-')?;
        Some(RouteKey {
            user: UserId::parse(user).ok()?,
            kind: TypeName::parse(kind).ok()?,
        })
    }
}

impl BoxDirs {
    pub(crate) fn new(available: PathBuf, enabled: PathBuf) -> Self {
        let link_base = std::path::absolute(&available).unwrap_or_else(|_| available.clone());
        BoxDirs {
            available,
            enabled,
            link_base,
        }
    }

    pub(crate) fn available(&self) -> &Path {
        &self.available
    }

    pub(crate) fn enabled(&self) -> &Path {
        &self.enabled
    }

    fn conf_path(&self, key: &RouteKey) -> PathBuf {
        self.available.join(key.file_name())
    }

    fn link_path(&self, key: &RouteKey) -> PathBuf {
        self.enabled.join(key.file_name())
    }

    fn failed_path(&self, key: &RouteKey) -> PathBuf {
        self.available.join(format!("{}{FAILED_SUFFIX}", key.file_name()))
    }

    fn undo_path(&self, key: &RouteKey) -> PathBuf {
        self.available.join(format!(".{}{UNDO_SUFFIX}", key.file_name()))
    }

    fn tmp_path(&self, dir: &Path, key: &RouteKey) -> PathBuf {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        dir.join(format!(
            ".{}{TMP_MARK}{}-{n}",
            key.file_name(),
            std::process::id()
        ))
    }

    /// Reads the reload ledger shared by every process (zeros when there is none yet).
    pub(crate) fn read_ledger(&self) -> io::Result<Ledger> {
        let text = match fs::read_to_string(self.available.join(LEDGER_FILE)) {
            Ok(text) => text,
            Err(e) if e.kind() == IoKind::NotFound => return Ok(Ledger::default()),
            Err(e) => return Err(e),
        };
        let mut numbers = text.split_whitespace().map(|n| n.parse::<u64>().unwrap_or(0));
        Ok(Ledger {
            written: numbers.next().unwrap_or(0),
            reloaded: numbers.next().unwrap_or(0),
            reloaded_at_ms: numbers.next().unwrap_or(0),
        })
    }

    /// Replaces the reload ledger (call with the exclusive lock held).
    pub(crate) fn write_ledger(&self, ledger: &Ledger) -> io::Result<()> {
        let text = format!(
            "{} {} {}\n",
            ledger.written, ledger.reloaded, ledger.reloaded_at_ms
        );
        let tmp = self
            .available
            .join(format!(".{LEDGER_FILE}{TMP_MARK}{}", std::process::id()));
        write_atomically(&tmp, &self.available.join(LEDGER_FILE), text.as_bytes())
    }

    /// Creates both directories when missing.
    pub(crate) fn ensure_dirs(&self) -> io::Result<()> {
        fs::create_dir_all(&self.available)?;
        fs::create_dir_all(&self.enabled)
    }

    /// Takes the exclusive lock without waiting; `None` when another holder has it.
    pub(crate) fn try_lock_exclusive(&self) -> io::Result<Option<LockGuard>> {
        self.ensure_dirs()?;
        let file = self.open_lock()?;
        match file.try_lock() {
            Ok(()) => Ok(Some(LockGuard { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    /// Takes a shared lock (readers) without waiting; `None` when a writer holds it. A missing
    /// directory means there is nothing to read yet: a guard over nothing.
    pub(crate) fn try_lock_shared(&self) -> io::Result<Option<Option<LockGuard>>> {
        if !self.available.is_dir() {
            return Ok(Some(None));
        }
        let file = match self.open_lock() {
            Ok(file) => file,
            // A reader without write access still reads; it just can not coordinate.
            Err(e) if e.kind() == IoKind::PermissionDenied => return Ok(Some(None)),
            Err(e) => return Err(e),
        };
        match file.try_lock_shared() {
            Ok(()) => Ok(Some(Some(LockGuard { _file: file }))),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    fn open_lock(&self) -> io::Result<File> {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.available.join(LOCK_FILE))
    }

    /// The route's current state on disk.
    pub(crate) fn snapshot(&self, key: &RouteKey) -> io::Result<Snapshot> {
        let conf = match fs::read(self.conf_path(key)) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == IoKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let linked = fs::symlink_metadata(self.link_path(key)).is_ok();
        Ok(Snapshot { conf, linked })
    }

    /// Whether the route is exactly `content`, linked to our file.
    pub(crate) fn is_current(&self, key: &RouteKey, content: &str) -> io::Result<bool> {
        let snap = self.snapshot(key)?;
        Ok(snap.conf.as_deref() == Some(content.as_bytes()) && self.links_to_ours(key))
    }

    fn links_to_ours(&self, key: &RouteKey) -> bool {
        fs::read_link(self.link_path(key)).is_ok_and(|target| target == self.link_base.join(key.file_name()))
    }

    /// Puts a route back the way `snap` describes.
    pub(crate) fn restore(&self, key: &RouteKey, snap: &Snapshot) -> io::Result<()> {
        match &snap.conf {
            Some(bytes) => self.write_conf(key, bytes)?,
            None => remove_if_present(&self.conf_path(key))?,
        }
        if snap.linked {
            // The entry may have been something other than our link; what we restore is our
            // link, which is what every route file is meant to have.
            if !self.links_to_ours(key) {
                self.link(key)?;
            }
        } else {
            remove_if_present(&self.link_path(key))?;
        }
        Ok(())
    }

    /// Writes the route file atomically (temporary file, then rename) and links it.
    pub(crate) fn put(&self, key: &RouteKey, content: &str) -> io::Result<()> {
        self.ensure_dirs()?;
        self.write_conf(key, content.as_bytes())?;
        if !self.links_to_ours(key) {
            self.link(key)?;
        }
        Ok(())
    }

    /// Removes the link, then the route file.
    pub(crate) fn delete(&self, key: &RouteKey) -> io::Result<()> {
        remove_if_present(&self.link_path(key))?;
        remove_if_present(&self.conf_path(key))
    }

    fn write_conf(&self, key: &RouteKey, bytes: &[u8]) -> io::Result<()> {
        write_atomically(&self.tmp_path(&self.available, key), &self.conf_path(key), bytes)
    }

    fn link(&self, key: &RouteKey) -> io::Result<()> {
        let tmp = self.tmp_path(&self.enabled, key);
        symlink(self.link_base.join(key.file_name()), &tmp)?;
        fs::rename(&tmp, self.link_path(key)).inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
    }

    /// Records nginx's refusal of the route's last change.
    pub(crate) fn mark_failed(&self, key: &RouteKey, message: &str) -> io::Result<()> {
        let path = self.failed_path(key);
        write_atomically(&self.tmp_path(&self.available, key), &path, message.as_bytes())
    }

    pub(crate) fn clear_failed(&self, key: &RouteKey) -> io::Result<()> {
        remove_if_present(&self.failed_path(key))
    }

    /// Writes the undo journal of a route before a batch touches it.
    pub(crate) fn journal(&self, key: &RouteKey, snap: &Snapshot) -> io::Result<()> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(if snap.linked { b"linked\n" } else { b"unlinked\n" });
        match &snap.conf {
            Some(conf) => {
                bytes.extend_from_slice(b"present\n");
                bytes.extend_from_slice(conf);
            }
            None => bytes.extend_from_slice(b"absent\n"),
        }
        let path = self.undo_path(key);
        write_atomically(&self.tmp_path(&self.available, key), &path, &bytes)
    }

    pub(crate) fn clear_journal(&self, key: &RouteKey) -> io::Result<()> {
        remove_if_present(&self.undo_path(key))
    }

    /// Undoes batches that a crashed process left unfinished and removes stray temporary files.
    /// Returns how many routes were put back. Call it only while holding the exclusive lock.
    pub(crate) fn recover(&self) -> io::Result<usize> {
        let mut restored = 0;
        for dir in [&self.available, &self.enabled] {
            for entry in read_dir_or_empty(dir)? {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.starts_with('.') && name.contains(TMP_MARK) {
                    remove_if_present(&entry.path())?;
                }
            }
        }
        for entry in read_dir_or_empty(&self.available)? {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(conf_name) = name.strip_prefix('.').and_then(|n| n.strip_suffix(UNDO_SUFFIX)) else {
                continue;
            };
            let Some(key) = RouteKey::from_file_name(conf_name) else {
                continue;
            };
            let bytes = fs::read(entry.path())?;
            if let Some(snap) = parse_journal(&bytes) {
                tracing::warn!(
                    route = conf_name,
                    "restoring a route left half-changed by an interrupted process"
                );
                self.restore(&key, &snap)?;
                restored += 1;
            }
            remove_if_present(&entry.path())?;
        }
        Ok(restored)
    }

    /// The routes on disk: files in `box-available/`, failure markers, and links in `box-enabled/`.
    pub(crate) fn list(&self) -> io::Result<Vec<RouteStatus>> {
        #[derive(Default)]
        struct Seen {
            conf: Option<String>,
            failed: Option<String>,
            linked: bool,
        }
        let mut seen: BTreeMap<RouteKey, Seen> = BTreeMap::new();
        for entry in read_dir_or_empty(&self.available)? {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(conf_name) = name.strip_suffix(FAILED_SUFFIX) {
                if let Some(key) = RouteKey::from_file_name(conf_name) {
                    let message = fs::read_to_string(entry.path()).unwrap_or_default();
                    seen.entry(key).or_default().failed = Some(message.trim().to_owned());
                }
            } else if let Some(key) = RouteKey::from_file_name(name) {
                let content = fs::read_to_string(entry.path()).unwrap_or_default();
                seen.entry(key).or_default().conf = Some(content);
            }
        }
        for entry in read_dir_or_empty(&self.enabled)? {
            let name = entry.file_name();
            if let Some(key) = name.to_str().and_then(RouteKey::from_file_name) {
                seen.entry(key).or_default().linked = true;
            }
        }
        Ok(seen
            .into_iter()
            .map(|(key, seen)| {
                let port = seen.conf.as_deref().and_then(port_of);
                let state = match (seen.failed, seen.conf.is_some(), seen.linked) {
                    (Some(message), _, _) => RouteState::Failed(message),
                    (None, true, true) => RouteState::Active,
                    // A file that is not linked is not served.
                    (None, true, false) => RouteState::Disabled,
                    // A link without a file serves nothing.
                    (None, false, _) => RouteState::Missing,
                };
                RouteStatus {
                    user: key.user.to_string(),
                    kind: key.kind.to_string(),
                    port,
                    state,
                }
            })
            .collect())
    }

    /// The keys of every route present in any form (file, link or marker).
    pub(crate) fn keys(&self) -> io::Result<Vec<RouteKey>> {
        Ok(self
            .list()?
            .into_iter()
            .filter_map(|status| {
                Some(RouteKey::new(
                    UserId::parse(&status.user).ok()?,
                    TypeName::parse(&status.kind).ok()?,
                ))
            })
            .collect())
    }
}

fn parse_journal(bytes: &[u8]) -> Option<Snapshot> {
    let (link_line, rest) = split_line(bytes)?;
    let (conf_line, rest) = split_line(rest)?;
    let linked = match link_line {
        b"linked" => true,
        b"unlinked" => false,
        _ => return None,
    };
    let conf = match conf_line {
        b"present" => Some(rest.to_vec()),
        b"absent" => None,
        _ => return None,
    };
    Some(Snapshot { conf, linked })
}

fn split_line(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes.iter().position(|b| *b == b'\n')?;
    Some((&bytes[..end], &bytes[end + 1..]))
}

fn write_atomically(tmp: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let result = (|| {
        let mut file = File::create(tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != IoKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn read_dir_or_empty(dir: &Path) -> io::Result<Vec<fs::DirEntry>> {
    match fs::read_dir(dir) {
        Ok(entries) => entries.collect(),
        Err(e) if e.kind() == IoKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(user: &str, kind: &str) -> RouteKey {
        RouteKey::new(UserId::parse(user).unwrap(), TypeName::parse(kind).unwrap())
    }

    fn dirs() -> (tempfile::TempDir, BoxDirs) {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = BoxDirs::new(tmp.path().join("box-available"), tmp.path().join("box-enabled"));
        (tmp, dirs)
    }

    #[test]
    fn file_names_round_trip_and_strangers_are_ignored() {
        let k = key("a-b-c", "cli_v4");
        assert_eq!(RouteKey::from_file_name(&k.file_name()), Some(k));
        for other in [
            "default",
            "container-.conf",
            "container-a-B.conf",
            "container-a.conf",
            "x-a-b.conf",
        ] {
            assert_eq!(RouteKey::from_file_name(other), None, "{other}");
        }
    }

    #[test]
    fn put_links_and_restore_puts_back() {
        let (_tmp, dirs) = dirs();
        let k = key("alice", "web");
        let before = dirs.snapshot(&k).unwrap();
        assert_eq!(
            before,
            Snapshot {
                conf: None,
                linked: false
            }
        );
        dirs.put(&k, "one").unwrap();
        assert!(dirs.is_current(&k, "one").unwrap());
        let one = dirs.snapshot(&k).unwrap();
        dirs.put(&k, "two").unwrap();
        dirs.restore(&k, &one).unwrap();
        assert!(dirs.is_current(&k, "one").unwrap());
        dirs.restore(&k, &before).unwrap();
        assert_eq!(dirs.snapshot(&k).unwrap(), before);
        assert!(dirs.list().unwrap().is_empty());
    }

    #[test]
    fn recover_undoes_an_interrupted_batch() {
        let (_tmp, dirs) = dirs();
        let (old, new) = (key("alice", "web"), key("bob", "web"));
        dirs.put(&old, "good").unwrap();
        // A batch journals both routes, writes both, then "crashes".
        for k in [&old, &new] {
            dirs.journal(k, &dirs.snapshot(k).unwrap()).unwrap();
        }
        dirs.put(&old, "unchecked").unwrap();
        dirs.put(&new, "unchecked").unwrap();
        fs::write(dirs.available().join(".container-bob-web.conf.tmp-1-1"), "x").unwrap();

        assert_eq!(dirs.recover().unwrap(), 2);
        assert!(dirs.is_current(&old, "good").unwrap());
        assert_eq!(
            dirs.snapshot(&new).unwrap(),
            Snapshot {
                conf: None,
                linked: false
            }
        );
        let names: Vec<_> = fs::read_dir(dirs.available())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["container-alice-web.conf".to_owned()]);
    }

    #[test]
    fn list_reports_states() {
        let (_tmp, dirs) = dirs();
        dirs.put(
            &key("a", "live"),
            "# cm-route user=a type=live port=9001 strip_prefix=true\n",
        )
        .unwrap();
        dirs.put(
            &key("a", "bad"),
            "# cm-route user=a type=bad port=9002 strip_prefix=true\n",
        )
        .unwrap();
        dirs.mark_failed(&key("a", "bad"), "nginx said no\n").unwrap();
        dirs.mark_failed(&key("a", "new"), "refused").unwrap();
        dirs.put(&key("a", "gone"), "x").unwrap();
        fs::remove_file(dirs.available().join("container-a-gone.conf")).unwrap();
        fs::write(dirs.available().join("container-a-off.conf"), "x").unwrap();
        fs::write(dirs.available().join("README"), "x").unwrap();

        let got: Vec<_> = dirs
            .list()
            .unwrap()
            .into_iter()
            .map(|s| (s.kind, s.port, s.state))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "bad".into(),
                    Some(9002),
                    RouteState::Failed("nginx said no".into())
                ),
                ("gone".into(), None, RouteState::Missing),
                ("live".into(), Some(9001), RouteState::Active),
                ("new".into(), None, RouteState::Failed("refused".into())),
                ("off".into(), None, RouteState::Disabled),
            ]
        );
    }
}
