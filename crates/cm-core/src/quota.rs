//! Per-user quotas: how many containers a user may have, and how much memory, CPU and disk their
//! containers may be promised in all. `[quota]` in the configuration sets the defaults; the admin
//! overrides them per user (`cm quota set`, `set_user_quota`), and the overrides live in the
//! store. A create over quota is refused before anything is touched, naming the quota and the use.

use serde::{Deserialize, Serialize};

use crate::names::UserId;
use crate::values::{CpuLimit, DiskSize, MemoryLimit};

/// Limits of one user; `None` is unlimited (or, in an override, "the default").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserQuota {
    /// How many containers.
    pub containers: Option<u32>,
    /// The sum of the containers' memory limits.
    pub memory: Option<MemoryLimit>,
    /// The sum of the containers' CPU limits.
    pub cpus: Option<CpuLimit>,
    /// The sum of the containers' disk caps; with it set, only types with a `disk` cap fit.
    #[serde(default)]
    pub disk: Option<DiskSize>,
}

/// What a user may have and has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaReport {
    /// The user.
    pub user_id: UserId,
    /// The limits in force: the overrides over the defaults.
    pub limits: UserQuota,
    /// The overrides the admin set, if any.
    pub overrides: Option<UserQuota>,
    /// What the user's containers hold now.
    pub used: QuotaUse,
}

/// What a user's containers hold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QuotaUse {
    /// How many containers.
    pub containers: u32,
    /// The sum of their memory limits, in bytes.
    pub memory_bytes: u64,
    /// The sum of their CPU limits.
    pub cpus: f64,
    /// The sum of their disk caps, in bytes.
    pub disk_bytes: u64,
    /// How many have no disk cap (their data shares the engine's disk).
    pub uncapped_disks: u32,
}

impl UserQuota {
    /// `self`'s limits where set, else `defaults`'.
    pub fn over(self, defaults: UserQuota) -> UserQuota {
        UserQuota {
            containers: self.containers.or(defaults.containers),
            memory: self.memory.or(defaults.memory),
            cpus: self.cpus.or(defaults.cpus),
            disk: self.disk.or(defaults.disk),
        }
    }

    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.containers.is_none() && self.memory.is_none() && self.cpus.is_none() && self.disk.is_none()
    }
}

pub(crate) fn human_bytes(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 30) && bytes > 0 {
        format!("{}g", bytes >> 30)
    } else {
        format!("{}m", bytes >> 20)
    }
}
