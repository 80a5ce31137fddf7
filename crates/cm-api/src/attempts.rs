//! Failed sign-ins, counted per client address, so that guessing credentials is slow even with
//! many requests in parallel: an attempt takes a slot before its credential is checked, and only
//! a success gives the slot back. When an address has used its slots for the current window,
//! further attempts are refused (429 with `Retry-After`) without checking anything.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The window failed attempts are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// The most addresses remembered; beyond that, expired windows are dropped first.
const MAX_ADDRESSES: usize = 100_000;

/// Failed and in-flight sign-ins per address.
pub struct Attempts {
    limit: u32,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// A slot taken by one attempt; [`Slot::succeeded`] gives it back.
pub struct Slot<'a> {
    attempts: &'a Attempts,
    address: IpAddr,
    started: Instant,
}

impl Attempts {
    /// At most `limit` failed (or unfinished) attempts per address and minute.
    pub fn new(limit: u32) -> Self {
        Attempts {
            limit,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a slot for an attempt from `address`, or says how many seconds to wait. IPv6
    /// addresses count by their /64 (one host usually holds a whole /64).
    pub fn begin(&self, address: IpAddr, now: Instant) -> Result<Slot<'_>, u64> {
        let address = grouped(address);
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if windows.len() >= MAX_ADDRESSES && !windows.contains_key(&address) {
            windows.retain(|_, (start, _)| now.saturating_duration_since(*start) < WINDOW);
            if windows.len() >= MAX_ADDRESSES {
                // Under a flood of addresses, refuse new ones rather than grow without bound.
                return Err(WINDOW.as_secs());
            }
        }
        let window = windows.entry(address).or_insert((now, 0));
        if now.saturating_duration_since(window.0) >= WINDOW {
            *window = (now, 0);
        }
        if window.1 >= self.limit {
            let left = WINDOW.saturating_sub(now.saturating_duration_since(window.0));
            return Err(left.as_secs().max(1));
        }
        window.1 += 1;
        Ok(Slot {
            attempts: self,
            address,
            started: window.0,
        })
    }
}

/// The key an address counts under: itself (IPv4), or its /64 (IPv6).
fn grouped(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

impl Slot<'_> {
    /// The credential was right: the attempt does not count.
    pub fn succeeded(self) {
        let mut windows = self
            .attempts
            .windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(window) = windows.get_mut(&self.address)
            && window.0 == self.started
        {
            window.1 = window.1.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_fill_the_window_successes_do_not() {
        let attempts = Attempts::new(3);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let now = Instant::now();
        for _ in 0..10 {
            attempts.begin(a, now).unwrap().succeeded();
        }
        // Three in flight at once (none finished yet) use the window up.
        let slots: Vec<_> = (0..3).map(|_| attempts.begin(a, now).unwrap()).collect();
        assert_eq!(attempts.begin(a, now).err(), Some(60));
        // Another address is not affected.
        attempts.begin(b, now).unwrap().succeeded();
        drop(slots);
        assert!(attempts.begin(a, now + Duration::from_secs(30)).is_err());
        assert!(attempts.begin(a, now + WINDOW).is_ok());
        // One IPv6 /64 is one address.
        let one: IpAddr = "2001:db8::1".parse().unwrap();
        let same_net: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        for _ in 0..3 {
            let _failed = attempts.begin(one, now).unwrap();
        }
        assert!(attempts.begin(same_net, now).is_err());
    }
}
