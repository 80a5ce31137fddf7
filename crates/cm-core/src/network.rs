//! Host ports and user subnets: the two pools the manager leases from (D3, D5).

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::names::quote;

/// An inclusive range of host ports, such as the default 9000-9500.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawPortRange")]
pub struct PortRange {
    start: u16,
    end: u16,
}

/// An IPv4 network in CIDR form, such as `10.201.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    base: Ipv4Addr,
    prefix: u8,
}

/// The address range that user networks get their small subnets from.
///
/// Docker's default address pools hold only about 30 bridge networks, so the manager hands each
/// user network a slice of this range itself (D5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetPool {
    /// The whole range.
    pub range: Subnet,
    /// The prefix length of each user's network (28 gives 16 addresses, 13 containers).
    pub prefix_length: u8,
}

/// Answers whether a host port is free right now (nothing else on the host has bound it).
///
/// Implemented by binding a socket; the fake answers from a set.
pub trait PortProbe: Send + Sync {
    /// True when nothing holds `port` on the host.
    fn is_free(&self, port: u16) -> bool;
}

#[derive(Deserialize)]
struct RawPortRange {
    start: u16,
    end: u16,
}

impl TryFrom<RawPortRange> for PortRange {
    type Error = Error;
    fn try_from(raw: RawPortRange) -> Result<Self> {
        PortRange::new(raw.start, raw.end)
    }
}

impl PortRange {
    /// A range from `start` to `end` inclusive; both above 1023 and `start <= end`.
    pub fn new(start: u16, end: u16) -> Result<Self> {
        if start < 1024 || start > end {
            return Err(Error::invalid(format!(
                "invalid port range {start}-{end}: use two ports from 1024 to 65535, the first not above the second"
            )));
        }
        Ok(PortRange { start, end })
    }

    /// The first port.
    pub fn start(self) -> u16 {
        self.start
    }

    /// The last port.
    pub fn end(self) -> u16 {
        self.end
    }

    /// True when `port` lies inside the range.
    pub fn contains(self, port: u16) -> bool {
        (self.start..=self.end).contains(&port)
    }

    /// The number of ports in the range.
    pub fn len(self) -> usize {
        usize::from(self.end - self.start) + 1
    }

    /// Never true: a range holds at least one port. Present for clippy's `len_without_is_empty`.
    pub fn is_empty(self) -> bool {
        false
    }

    /// Picks the `count` lowest ports that are neither `taken` nor held by anything else on the host.
    ///
    /// The caller holds the store's write lock while calling this, so the answer can be leased atomically.
    pub fn pick(self, count: usize, taken: &BTreeSet<u16>, probe: &dyn PortProbe) -> Result<Vec<u16>> {
        let picked: Vec<u16> = (self.start..=self.end)
            .filter(|port| !taken.contains(port) && probe.is_free(*port))
            .take(count)
            .collect();
        if picked.len() < count {
            let leased = taken.iter().filter(|p| self.contains(**p)).count();
            return Err(Error::new(
                ErrorKind::Exhausted,
                format!(
                    "port pool {self} is exhausted: {leased} of {} ports leased, the rest held by other processes",
                    self.len()
                ),
            ));
        }
        Ok(picked)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

impl Subnet {
    /// Parses `a.b.c.d/n`; the address must be the network's first address.
    pub fn parse(raw: &str) -> Result<Self> {
        let err = || {
            Error::invalid(format!(
                "invalid subnet {}: write an IPv4 network such as 10.201.0.0/16",
                quote(raw)
            ))
        };
        let (addr, prefix) = raw.split_once('/').ok_or_else(err)?;
        let base = Ipv4Addr::from_str(addr).map_err(|_| err())?;
        let prefix: u8 = prefix.parse().map_err(|_| err())?;
        if prefix > 30 || u32::from(base) & !mask(prefix) != 0 {
            return Err(err());
        }
        Ok(Subnet { base, prefix })
    }

    /// The first address.
    pub fn base(self) -> Ipv4Addr {
        self.base
    }

    /// The prefix length.
    pub fn prefix(self) -> u8 {
        self.prefix
    }

    /// True when the two networks share any address.
    pub fn overlaps(self, other: Subnet) -> bool {
        let shorter = self.prefix.min(other.prefix);
        u32::from(self.base) & mask(shorter) == u32::from(other.base) & mask(shorter)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

impl TryFrom<String> for Subnet {
    type Error = Error;
    fn try_from(raw: String) -> Result<Self> {
        Self::parse(&raw)
    }
}

impl From<Subnet> for String {
    fn from(value: Subnet) -> String {
        value.to_string()
    }
}

impl SubnetPool {
    /// Checks that the per-user prefix fits inside the range.
    pub fn new(range: Subnet, prefix_length: u8) -> Result<Self> {
        if prefix_length < range.prefix || prefix_length > 29 {
            return Err(Error::invalid(format!(
                "invalid subnet pool: user networks of /{prefix_length} do not fit in {range} (use a prefix from /{} to /29)",
                range.prefix
            )));
        }
        Ok(SubnetPool { range, prefix_length })
    }

    /// How many user networks the pool holds.
    pub fn capacity(self) -> u64 {
        1u64 << (self.prefix_length - self.range.prefix)
    }

    /// The lowest subnet of the pool that overlaps none of `taken` (our leases and the engine's networks).
    pub fn pick(self, taken: &BTreeSet<Subnet>) -> Result<Subnet> {
        let step = 1u64 << (32 - self.prefix_length);
        (0..self.capacity())
            .map(|i| Subnet {
                base: Ipv4Addr::from((u64::from(u32::from(self.range.base)) + i * step) as u32),
                prefix: self.prefix_length,
            })
            .find(|candidate| !taken.iter().any(|t| t.overlaps(*candidate)))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Exhausted,
                    format!(
                        "subnet pool {} is exhausted: all {} user networks of /{} are in use",
                        self.range,
                        self.capacity(),
                        self.prefix_length
                    ),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Busy(BTreeSet<u16>);
    impl PortProbe for Busy {
        fn is_free(&self, port: u16) -> bool {
            !self.0.contains(&port)
        }
    }

    #[test]
    fn pick_skips_leased_and_busy_ports() {
        let range = PortRange::new(9000, 9005).unwrap();
        let taken = BTreeSet::from([9000]);
        let busy = Busy(BTreeSet::from([9001]));
        assert_eq!(range.pick(2, &taken, &busy).unwrap(), [9002, 9003]);
    }

    #[test]
    fn exhaustion_is_a_clear_error() {
        let range = PortRange::new(9000, 9001).unwrap();
        let err = range
            .pick(1, &BTreeSet::from([9000, 9001]), &Busy(BTreeSet::new()))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Exhausted);
        assert!(err.message().contains("9000-9001 is exhausted"), "{err}");
    }

    #[test]
    fn bad_ranges() {
        assert!(PortRange::new(9500, 9000).is_err());
        assert!(PortRange::new(80, 90).is_err());
    }

    #[test]
    fn subnets() {
        let pool = SubnetPool::new(Subnet::parse("10.201.0.0/16").unwrap(), 28).unwrap();
        assert_eq!(pool.capacity(), 4096);
        let first = pool.pick(&BTreeSet::new()).unwrap();
        assert_eq!(first.to_string(), "10.201.0.0/28");
        let engine = Subnet::parse("10.201.0.0/27").unwrap();
        assert_eq!(
            pool.pick(&BTreeSet::from([engine])).unwrap().to_string(),
            "10.201.0.32/28"
        );
        assert!(Subnet::parse("10.201.0.1/16").is_err());
        assert!(Subnet::parse("10.201.0.0").is_err());
        assert!(SubnetPool::new(Subnet::parse("10.0.0.0/24").unwrap(), 16).is_err());
    }
}
