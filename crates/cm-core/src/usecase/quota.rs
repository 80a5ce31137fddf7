//! The use cases of quotas: the admin reads and sets a user's, and a create is checked against it.

use crate::error::{Error, ErrorKind, Result};
use crate::manager::Manager;
use crate::names::UserId;
use crate::values::{CpuLimit, DiskSize, MemoryLimit};

use crate::quota::{QuotaReport, QuotaUse, UserQuota, human_bytes};

impl Manager {
    /// The quota of `user`: limits in force, the admin's overrides, and the use.
    pub async fn quota(&self, user: &UserId) -> Result<QuotaReport> {
        let store = &self.adapters().store;
        let overrides = store.user_quota(user).await?;
        let limits = overrides.unwrap_or_default().over(self.config().quota);
        let mut used = QuotaUse {
            containers: 0,
            memory_bytes: 0,
            cpus: 0.0,
            disk_bytes: 0,
            uncapped_disks: 0,
        };
        for spec in store.list_user(user).await? {
            used.containers += 1;
            used.memory_bytes = used.memory_bytes.saturating_add(spec.memory.bytes());
            used.cpus += spec.cpus.cpus();
            match spec.disk {
                Some(disk) => used.disk_bytes = used.disk_bytes.saturating_add(disk.bytes()),
                None => used.uncapped_disks += 1,
            }
        }
        Ok(QuotaReport {
            user_id: user.clone(),
            limits,
            overrides,
            used,
        })
    }

    /// Sets the admin's overrides of `user`'s quota (`None` or an empty quota: the defaults
    /// again). Containers over the new quota keep running; only new ones are refused.
    pub async fn set_quota(&self, user: &UserId, overrides: Option<UserQuota>) -> Result<QuotaReport> {
        let overrides = overrides.filter(|q| !q.is_empty());
        self.adapters()
            .store
            .set_user_quota(user, overrides.as_ref())
            .await?;
        self.quota(user).await
    }

    /// Changes the admin's overrides of `user`'s quota: limits set in `changes` replace the
    /// override, absent ones keep it; `clear` drops every override first. The one rule behind
    /// `cm quota set` and `set_user_quota`.
    pub async fn change_quota(&self, user: &UserId, changes: UserQuota, clear: bool) -> Result<QuotaReport> {
        let current = if clear {
            UserQuota::default()
        } else {
            self.quota(user).await?.overrides.unwrap_or_default()
        };
        self.set_quota(user, Some(changes.over(current))).await
    }

    /// Refuses a new container of `memory`, `cpus` and `disk` for `user` when it would pass a quota.
    pub(crate) async fn check_quota(
        &self,
        user: &UserId,
        memory: MemoryLimit,
        cpus: CpuLimit,
        disk: Option<DiskSize>,
    ) -> Result<()> {
        let report = self.quota(user).await?;
        let (limits, used) = (report.limits, report.used);
        let refuse = |what: String| {
            Err(Error::new(ErrorKind::Exhausted, format!("over quota: {what}")).for_field("user_id"))
        };
        if let Some(max) = limits.containers
            && used.containers + 1 > max
        {
            return refuse(format!(
                "user {user} may have {max} containers and has {}",
                used.containers
            ));
        }
        if let Some(max) = limits.memory
            && used.memory_bytes.saturating_add(memory.bytes()) > max.bytes()
        {
            return refuse(format!(
                "user {user} may have {max} of memory in all; {} is used and this container asks for {memory}",
                human_bytes(used.memory_bytes)
            ));
        }
        if let Some(max) = limits.cpus
            && used.cpus + cpus.cpus() > max.cpus() + 1e-9
        {
            return refuse(format!(
                "user {user} may have {max} CPUs in all; {} are used and this container asks for {cpus}",
                used.cpus
            ));
        }
        if let Some(max) = limits.disk {
            let Some(disk) = disk else {
                return refuse(format!(
                    "user {user} may have {max} of disk in all, and this container type has no disk cap \
                     (set disk in its [types] entry)"
                ));
            };
            if used.disk_bytes.saturating_add(disk.bytes()) > max.bytes() {
                return refuse(format!(
                    "user {user} may have {max} of disk in all; {} is used and this container asks for {disk}",
                    human_bytes(used.disk_bytes)
                ));
            }
        }
        Ok(())
    }
}
