//! The network an address belongs to, for per-network limits: one party
//! can hold many addresses of one /24 (IPv4) or /64 (IPv6, one subnet by
//! RFC 4291) far more cheaply than addresses of many networks, so the
//! store's quotas, the routing table and lookups count per prefix as well
//! as per address (libtorrent's `restrict_routing_ips` and
//! `restrict_search_ips` use the same prefixes).

use std::net::IpAddr;

/// An address's /24 (IPv4) or /64 (IPv6), in one small hashable key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpPrefix(u64);

impl IpPrefix {
    /// The prefix of `ip`. IPv4-mapped IPv6 addresses count as IPv4.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::v4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::v4(u32::from(v4)),
                // The top bit tells the families apart: a /64 that starts
                // with 0 is reserved space no real node has.
                None => IpPrefix((u128::from(v6) >> 64) as u64 | 1 << 63),
            },
        }
    }

    fn v4(addr: u32) -> Self {
        IpPrefix(u64::from(addr >> 8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(s: &str) -> IpPrefix {
        IpPrefix::of(s.parse().unwrap())
    }

    #[test]
    fn ipv4_groups_by_24_bits_and_ipv6_by_64() {
        assert_eq!(prefix("10.1.2.3"), prefix("10.1.2.200"));
        assert_ne!(prefix("10.1.2.3"), prefix("10.1.3.3"));
        assert_eq!(prefix("2001:db8::1"), prefix("2001:db8::ffff:1"));
        assert_ne!(prefix("2001:db8::1"), prefix("2001:db8:0:1::1"));
        assert_eq!(prefix("::ffff:10.1.2.3"), prefix("10.1.2.9"));
        assert_ne!(prefix("10.1.2.3"), prefix("::a01:203"));
    }
}
