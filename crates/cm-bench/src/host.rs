//! What /proc and /sys say about the host: memory, processes, cgroups, the machine.

use std::collections::BTreeMap;
use std::path::Path;

/// A field of /proc/meminfo in KiB (`MemAvailable`, `MemTotal`).
pub fn meminfo_kib(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// A process's resident memory (VmRSS) in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// A process's proportional set size (shared pages divided among their users) in KiB.
pub fn pss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Processes of one name: how many, and their memory together.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Group {
    /// How many processes.
    pub count: usize,
    /// Their proportional set sizes summed, KiB.
    pub pss_kib: u64,
    /// Their VmRSS summed (shared pages counted in each), KiB.
    pub rss_kib: u64,
}

/// The processes whose name (`/proc/PID/comm`, 15 characters at most) is one of `names`.
pub fn processes(names: &[&str]) -> BTreeMap<String, Group> {
    let mut groups: BTreeMap<String, Group> = names
        .iter()
        .map(|n| ((*n).to_owned(), Group::default()))
        .collect();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return groups;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else {
            continue;
        };
        if let Some(group) = groups.get_mut(comm.trim()) {
            group.count += 1;
            group.pss_kib += pss_kib(pid).unwrap_or(0);
            group.rss_kib += rss_kib(pid).unwrap_or(0);
        }
    }
    groups
}

/// A container's anonymous memory as its memory cgroup counts it (v1 `total_rss`, v2 `anon`),
/// KiB: its processes' own memory, without the page cache.
pub fn cgroup_anon_kib(id: &str) -> Option<u64> {
    let candidates = [
        (
            format!("/sys/fs/cgroup/memory/docker/{id}/memory.stat"),
            "total_rss ",
        ),
        (
            format!("/sys/fs/cgroup/system.slice/docker-{id}.scope/memory.stat"),
            "anon ",
        ),
        (format!("/sys/fs/cgroup/docker/{id}/memory.stat"), "anon "),
    ];
    candidates.iter().find_map(|(path, key)| {
        let text = std::fs::read_to_string(Path::new(path)).ok()?;
        let bytes: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .trim()
            .parse()
            .ok()?;
        Some(bytes / 1024)
    })
}

/// The load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The 1-minute load average.
pub fn load1() -> f64 {
    loadavg()
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The kernel release.
pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// The CPU model.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v.trim().to_owned())
            })
        })
        .unwrap_or_default()
}

/// Whether cargo or rustc runs right now (the machine is then not idle).
pub fn compiler_running() -> bool {
    let found = processes(&["cargo", "rustc"]);
    found.values().any(|g| g.count > 0)
}

/// The fields of /proc/PID/stat after the command name (the first is the state, field 3).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = text.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// A process's CPU time so far (user + system), in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let fields = stat_fields(pid)?;
    // utime and stime are fields 14 and 15 of the file.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The processes whose parent is `ppid`.
pub fn children(ppid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            stat_fields(*pid)
                .and_then(|f| f.get(1)?.parse::<u32>().ok())
                .is_some_and(|parent| parent == ppid)
        })
        .collect()
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 when that does not answer).
pub fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}
