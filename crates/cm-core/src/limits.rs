//! How many execs and log follows may run at once, per container owner and in all, so one user
//! can not take the host's processes, memory or the API's connections from the others. A slot is
//! taken without waiting (over the limit: [`ErrorKind::Busy`]) and given back when its guard is
//! dropped, however the work ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::config::LimitSettings;
use crate::error::{Error, ErrorKind, Result};
use crate::names::UserId;

/// What a slot is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Work {
    /// A command run in a container.
    Exec,
    /// A followed log.
    Follow,
    /// A live event stream (a dashboard tab, an API client).
    Events,
}

/// Live event streams one user may hold open at once (a tab each), and all users together.
const EVENTS_PER_USER: usize = 16;
const EVENTS_TOTAL: usize = 1024;

/// The counts of running execs and follows.
#[derive(Debug, Default)]
pub(crate) struct Running {
    counts: Mutex<HashMap<(Work, Option<UserId>), usize>>,
}

/// A taken slot; dropping it gives the slot back.
#[derive(Debug)]
pub struct Slot {
    running: Arc<Running>,
    work: Work,
    user: UserId,
}

impl Running {
    /// Commands and followed logs running now, in all.
    pub(crate) fn in_flight(&self) -> (usize, usize) {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let all = |work| counts.get(&(work, None)).copied().unwrap_or(0);
        (all(Work::Exec), all(Work::Follow))
    }

    /// Takes a slot of `work` for `user`'s container, or refuses when the user or everyone has
    /// as many running as the limits allow.
    pub(crate) fn take(self: &Arc<Self>, work: Work, user: &UserId, limits: &LimitSettings) -> Result<Slot> {
        let (per_user, total, what) = match work {
            Work::Exec => (limits.exec_per_user, limits.exec_total, "commands"),
            Work::Follow => (limits.follow_per_user, limits.follow_total, "followed logs"),
            Work::Events => (EVENTS_PER_USER, EVENTS_TOTAL, "live event streams"),
        };
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = counts.get(&(work, Some(user.clone()))).copied().unwrap_or(0);
        let all = counts.get(&(work, None)).copied().unwrap_or(0);
        if mine >= per_user {
            return Err(Error::new(
                ErrorKind::Busy,
                format!("{per_user} {what} already run in {user}'s containers: wait for one to end"),
            ));
        }
        if all >= total {
            return Err(Error::new(
                ErrorKind::Busy,
                format!("{total} {what} already run on this server: try again shortly"),
            ));
        }
        *counts.entry((work, Some(user.clone()))).or_default() += 1;
        *counts.entry((work, None)).or_default() += 1;
        Ok(Slot {
            running: self.clone(),
            work,
            user: user.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.running.counts.lock().unwrap_or_else(PoisonError::into_inner);
        for key in [(self.work, Some(self.user.clone())), (self.work, None)] {
            if let Some(count) = counts.get_mut(&key) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    counts.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LimitSettings {
        LimitSettings {
            auth_failures_per_minute: 30,
            exec_per_user: 2,
            exec_total: 3,
            follow_per_user: 1,
            follow_total: 1,
        }
    }

    #[test]
    fn slots_are_bounded_per_user_and_in_all_and_come_back_when_dropped() {
        let running = Arc::new(Running::default());
        let (alice, bob, carol) = (
            UserId::parse("alice").unwrap(),
            UserId::parse("bob").unwrap(),
            UserId::parse("carol").unwrap(),
        );
        let a1 = running.take(Work::Exec, &alice, &limits()).unwrap();
        let _a2 = running.take(Work::Exec, &alice, &limits()).unwrap();
        let refused = running.take(Work::Exec, &alice, &limits()).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::Busy);
        let _b1 = running.take(Work::Exec, &bob, &limits()).unwrap();
        assert!(
            running.take(Work::Exec, &carol, &limits()).is_err(),
            "three in all"
        );
        // Follows are counted apart from execs.
        let _f = running.take(Work::Follow, &carol, &limits()).unwrap();
        drop(a1);
        assert!(running.take(Work::Exec, &carol, &limits()).is_ok());
    }
}
