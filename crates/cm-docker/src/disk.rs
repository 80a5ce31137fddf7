//! Size-capped data volumes: each is an ext4 filesystem in a sparse image file under the image
//! directory, attached to a loop device, and a volume of the engine's `local` driver that mounts
//! that device. The engine mounts it whenever a container starts, so the cap holds inside the
//! container with nothing of ours in the data path: writing past it fails with ENOSPC, and the
//! host gives the volume at most its size (the image is sparse, and `discard` hands deleted
//! blocks back).
//!
//! Loop device numbers: a volume's options name `/dev/loopN`, fixed when it is created. N is the
//! first from [`FIRST_LOOP`] that is neither bound nor named by another capped volume, so after a
//! host restart (when no loop device is bound) each image gets its own number back. The image is
//! bound before its volume exists, so two processes creating at once can not take the same
//! number: the second `losetup` finds the device busy and tries the next one.
//!
//! Needs root (loop devices), `/dev/loop-control`, `losetup`, `mkfs.ext4` and `debugfs` on the
//! engine's own host; [`DiskImages::support`] says what is missing.

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cm_core::{DiskSize, DiskSupport, DiskUsage, Error, ErrorKind, Result};

/// The first loop device number capped volumes use; numbers below are left to the host (other
/// programs take the lowest free ones).
pub const FIRST_LOOP: u32 = 1024;
/// How many numbers past [`FIRST_LOOP`] are tried.
const LOOP_SPAN: u32 = 1 << 16;
/// How long one helper program may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);
/// The owner of a new filesystem's root: the images' `cli` user, as `/data` is in the images.
const ROOT_OWNER: &str = "1000:1000";

/// The disk images of capped volumes, in one directory.
#[derive(Debug, Clone)]
pub struct DiskImages {
    dir: PathBuf,
}

impl DiskImages {
    /// Images in `dir` (made 0700 when first needed).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DiskImages { dir: dir.into() }
    }

    /// The image file of a volume (volume names are validated: letters, digits, `_`, `-`, `.`).
    pub fn image_of(&self, volume: &str) -> PathBuf {
        self.dir.join(format!("{volume}.ext4"))
    }

    /// True when the volume has an image here (it is size-capped).
    pub fn is_capped(&self, volume: &str) -> bool {
        self.image_of(volume).is_file()
    }

    /// Whether caps can be enforced here, and if not, what is missing.
    pub fn support(&self, engine_is_local: bool) -> DiskSupport {
        let missing = [
            (!engine_is_local).then(|| "the engine is on another host (DOCKER_HOST)".to_owned()),
            (!is_root()).then(|| "the manager does not run as root (loop devices need it)".to_owned()),
            (!Path::new("/dev/loop-control").exists()).then(|| "there is no /dev/loop-control".to_owned()),
        ]
        .into_iter()
        .flatten()
        .chain(
            ["losetup", "mkfs.ext4", "debugfs"]
                .into_iter()
                .filter(|tool| find_tool(tool).is_none())
                .map(|tool| format!("{tool} is not installed (util-linux, e2fsprogs)")),
        )
        .collect::<Vec<_>>();
        if missing.is_empty() {
            DiskSupport {
                enforced: true,
                detail: format!("ext4 images on loop devices in {}", self.dir.display()),
            }
        } else {
            DiskSupport {
                enforced: false,
                detail: missing.join("; "),
            }
        }
    }

    /// Makes the image of `volume` (`size` bytes, empty ext4) and binds it to a free loop device
    /// whose number is not in `taken`; returns the number. A leftover image of a volume that
    /// does not exist (a crash between the two steps) is replaced.
    pub async fn create(&self, volume: &str, size: DiskSize, taken: &BTreeSet<u32>) -> Result<u32> {
        let path = self.image_of(volume);
        self.release(volume, None).await?;
        std::fs::create_dir_all(&self.dir).map_err(|e| io_error(e, &self.dir))?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io_error(e, &self.dir))?;
        let made = async {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| io_error(e, &path))?;
            file.set_len(size.bytes()).map_err(|e| io_error(e, &path))?;
            drop(file);
            let options = format!("root_owner={ROOT_OWNER},lazy_itable_init=1,lazy_journal_init=1,nodiscard");
            run_tool(
                "mkfs.ext4",
                &["-q", "-F", "-m", "0", "-E", &options, path_str(&path)?],
            )
            .await?;
            // An empty root lets the engine copy the image's /data (owner, mode, skeleton) into
            // the new volume, as it does for ordinary volumes.
            run_tool("debugfs", &["-w", "-R", "rmdir lost+found", path_str(&path)?]).await?;
            self.bind_free(&path, taken).await
        }
        .await;
        if made.is_err() {
            let _ = std::fs::remove_file(&path);
        }
        made
    }

    /// Makes sure loop device `number` holds `volume`'s image (after a host restart none does).
    pub async fn attach(&self, volume: &str, number: u32) -> Result<()> {
        let path = self.image_of(volume);
        match backing_file(number) {
            Some(bound) if bound == path => Ok(()),
            Some(bound) => Err(Error::conflict(format!(
                "loop device /dev/loop{number} of volume {volume} holds {}; detach it (losetup -d) so the volume can be mounted",
                bound.display()
            ))),
            None => {
                tracing::info!(volume, number, "attaching a capped volume's disk image");
                run_tool("losetup", &[&device(number), path_str(&path)?]).await
            }
        }
    }

    /// Detaches `volume`'s image (from `number`, or wherever it is bound) and deletes it; a
    /// missing image is fine.
    pub async fn release(&self, volume: &str, number: Option<u32>) -> Result<()> {
        let path = self.image_of(volume);
        let bound = match number {
            Some(number) => (backing_file(number).as_deref() == Some(path.as_path())).then_some(number),
            None => loops_bound_to(&path).into_iter().next(),
        };
        if let Some(number) = bound {
            run_tool("losetup", &["-d", &device(number)]).await?;
        }
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(e, &path)),
            _ => Ok(()),
        }
    }

    /// The cap and the host blocks of `volume`'s image; `None` when it has none.
    pub fn usage(&self, volume: &str) -> Option<DiskUsage> {
        let meta = std::fs::metadata(self.image_of(volume)).ok()?;
        Some(DiskUsage {
            size_bytes: meta.len(),
            used_bytes: meta.blocks().saturating_mul(512),
        })
    }

    async fn bind_free(&self, path: &Path, taken: &BTreeSet<u32>) -> Result<u32> {
        for number in FIRST_LOOP..FIRST_LOOP + LOOP_SPAN {
            if taken.contains(&number) || backing_file(number).is_some() {
                continue;
            }
            match run_tool("losetup", &[&device(number), path_str(path)?]).await {
                Ok(()) => return Ok(number),
                // Another process bound it between the check and ours: try the next one.
                Err(_) if backing_file(number).is_some() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorKind::Exhausted,
            "no free loop device for a capped volume",
        ))
    }
}

/// The loop device number a volume's `device` option names, if it is one.
pub fn loop_number(device: &str) -> Option<u32> {
    device.strip_prefix("/dev/loop")?.parse().ok()
}

/// The `local` driver options that mount loop device `number` as the capped volume.
pub fn volume_options(number: u32) -> [(String, String); 3] {
    [
        ("type".to_owned(), "ext4".to_owned()),
        ("device".to_owned(), device(number)),
        ("o".to_owned(), "discard,nodev,nosuid".to_owned()),
    ]
}

fn device(number: u32) -> String {
    format!("/dev/loop{number}")
}

/// The file loop device `number` is bound to, if any (a deleted file keeps its old path).
fn backing_file(number: u32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/sys/block/loop{number}/loop/backing_file")).ok()?;
    let text = text.trim_end_matches('\n');
    let text = text.strip_suffix(" (deleted)").unwrap_or(text);
    Some(PathBuf::from(text))
}

/// Every loop device bound to `path`.
fn loops_bound_to(path: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let name = entry.ok()?.file_name();
            let number = name.to_str()?.strip_prefix("loop")?.parse().ok()?;
            (backing_file(number)? == path).then_some(number)
        })
        .collect()
}

fn is_root() -> bool {
    // /proc/self belongs to the process's effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A system tool by name: from `PATH`, or from the sbin directories a non-login `PATH` may lack.
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Runs a helper without a shell, with a clean environment and a time limit.
async fn run_tool(name: &str, args: &[&str]) -> Result<()> {
    let program = find_tool(name)
        .ok_or_else(|| Error::new(ErrorKind::Unavailable, format!("{name} is not installed")))?;
    let run = tokio::process::Command::new(&program)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(TOOL_TIMEOUT, run)
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::Timeout,
                format!("{name} took longer than {TOOL_TIMEOUT:?}"),
            )
        })?
        .map_err(|e| Error::internal(format!("running {name}")).with_source(e))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::internal(format!(
            "{name} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .ok_or_else(|| Error::invalid(format!("the disk image path {} is not UTF-8", path.display())))
}

fn io_error(err: std::io::Error, path: &Path) -> Error {
    Error::internal(format!("disk image {}", path.display())).with_source(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_numbers_come_only_from_loop_devices() {
        assert_eq!(loop_number("/dev/loop1024"), Some(1024));
        for other in ["/dev/sda", "/dev/loop", "/dev/loopx", "tmpfs", ""] {
            assert_eq!(loop_number(other), None, "{other}");
        }
    }

    #[test]
    fn images_are_named_after_their_volume_inside_the_directory() {
        let images = DiskImages::new("/var/lib/cm/disks");
        assert_eq!(
            images.image_of("cm-data-u_cli_v4"),
            PathBuf::from("/var/lib/cm/disks/cm-data-u_cli_v4.ext4")
        );
    }
}
