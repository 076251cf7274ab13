//! Address families (BEP 32): a dual-stack node keeps one routing table
//! per family under one node id, and every per-address rule treats an
//! IPv6 /64 as one host.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Family {
    /// IPv4 (`nodes`, 6-byte peers).
    #[default]
    V4,
    /// IPv6 (`nodes6`, 18-byte peers).
    V6,
}

impl Family {
    /// Both, IPv4 first.
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    /// The family of `ip`; an IPv4-mapped IPv6 address is IPv4.
    pub fn of_ip(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The family of `addr`.
    pub fn of(addr: &SocketAddr) -> Family {
        Family::of_ip(addr.ip())
    }

    /// As a metric label and in logs: `ipv4`, `ipv6`.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }

    /// Position in per-family arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which families a node serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Families {
    v4: bool,
    v6: bool,
}

impl Default for Families {
    /// IPv4 alone: what a node bound to one IPv4 address serves.
    fn default() -> Self {
        Families::only(Family::V4)
    }
}

impl Families {
    /// IPv4 and IPv6.
    pub const BOTH: Families = Families { v4: true, v6: true };

    /// One family.
    pub fn only(family: Family) -> Self {
        Families {
            v4: family == Family::V4,
            v6: family == Family::V6,
        }
    }

    /// The families of `addrs` (none for an empty list).
    pub fn of<'a>(addrs: impl IntoIterator<Item = &'a SocketAddr>) -> Self {
        let mut on = Families {
            v4: false,
            v6: false,
        };
        for a in addrs {
            on.insert(Family::of(a));
        }
        on
    }

    /// Turns `family` on.
    pub fn insert(&mut self, family: Family) {
        match family {
            Family::V4 => self.v4 = true,
            Family::V6 => self.v6 = true,
        }
    }

    /// Whether `family` is on.
    pub fn contains(self, family: Family) -> bool {
        match family {
            Family::V4 => self.v4,
            Family::V6 => self.v6,
        }
    }

    /// The families that are on, IPv4 first.
    pub fn iter(self) -> impl Iterator<Item = Family> {
        Family::ALL.into_iter().filter(move |f| self.contains(*f))
    }

    /// How many are on.
    pub fn len(self) -> usize {
        usize::from(self.v4) + usize::from(self.v6)
    }

    /// Whether none is on.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// The key every per-address rule counts by: the address itself for IPv4,
/// its /64 for IPv6. A host is routinely given a whole /64 (RFC 4291) and
/// picks addresses from it at will (RFC 8981 privacy addresses), so a rule
/// per IPv6 address would bind nobody; libtorrent counts IPv6 by /64 too.
/// IPv4-mapped addresses count as the IPv4 address they carry.
pub fn host_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let high = u128::from(v6) & !(u128::from(u64::MAX));
                IpAddr::V6(Ipv6Addr::from(high))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_v6_host_is_its_64_and_a_v4_host_its_address() {
        assert_eq!(
            host_key(ip("2001:db8::1")),
            host_key(ip("2001:db8::ffff:1"))
        );
        assert_ne!(host_key(ip("2001:db8::1")), host_key(ip("2001:db8:0:1::1")));
        assert_eq!(host_key(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_ne!(host_key(ip("10.0.0.1")), host_key(ip("10.0.0.2")));
        assert_eq!(host_key(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
    }

    #[test]
    fn families_of_addresses() {
        let v4: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let v6: SocketAddr = "[::1]:1".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:1".parse().unwrap();
        assert_eq!(Family::of(&mapped), Family::V4);
        assert_eq!(Families::of(&[v4]), Families::only(Family::V4));
        assert_eq!(Families::of(&[v6, v4]), Families::BOTH);
        assert!(Families::of(&[]).is_empty());
        assert_eq!(
            Families::BOTH.iter().collect::<Vec<_>>(),
            [Family::V4, Family::V6]
        );
        assert_eq!(
            Families::only(Family::V6).iter().collect::<Vec<_>>(),
            [Family::V6]
        );
    }
}
