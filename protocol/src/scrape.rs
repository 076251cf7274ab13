//! BEP 33 scrapes: the 256-byte bloom filters of the IPs of a swarm's
//! seeds (`BFsd`) and peers (`BFpe`) that a `get_peers` answer carries when
//! asked with `scrape = 1`, and the swarm-size estimate of their union
//! over the nodes that answered.

use std::net::IpAddr;

use sha1::{Digest, Sha1};

/// The filter's size in bytes (BEP 33's m = 2,048 bits).
pub const BLOOM_LEN: usize = 256;
const BITS: usize = BLOOM_LEN * 8;

/// A BEP 33 bloom filter of IP addresses (k = 2, m = 2,048).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ScrapeBloom(pub [u8; BLOOM_LEN]);

impl Default for ScrapeBloom {
    fn default() -> Self {
        ScrapeBloom([0; BLOOM_LEN])
    }
}

impl std::fmt::Debug for ScrapeBloom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ScrapeBloom(~{:.0})", self.estimate())
    }
}

impl ScrapeBloom {
    /// A filter from an answer's 256 bytes; `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(ScrapeBloom)
    }

    /// Adds an address (the IP only: BEP 33 counts hosts, not ports).
    pub fn insert(&mut self, ip: IpAddr) {
        let hash = match ip {
            IpAddr::V4(v4) => Sha1::digest(v4.octets()),
            IpAddr::V6(v6) => Sha1::digest(v6.octets()),
        };
        for pair in [[hash[0], hash[1]], [hash[2], hash[3]]] {
            let index = usize::from(u16::from_le_bytes(pair)) % BITS;
            self.0[index / 8] |= 1 << (index % 8);
        }
    }

    /// The union with `other`: the filter of both sets.
    pub fn union(&mut self, other: &ScrapeBloom) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a |= b;
        }
    }

    /// How many addresses the filter holds, estimated from its zero bits
    /// (BEP 33's formula; it breaks down towards 8,000). An empty filter is
    /// 0, not the 0.5 the formula gives it (it caps the zero bits at m − 1).
    pub fn estimate(&self) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        let zeros = self
            .0
            .iter()
            .map(|b| b.count_zeros() as usize)
            .sum::<usize>();
        let c = zeros.min(BITS - 1) as f64;
        let m = BITS as f64;
        (c / m).ln() / (2.0 * (1.0 - 1.0 / m).ln())
    }

    /// Whether nothing was inserted.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|b| *b == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// BEP 33's test vector: 192.0.2.0–255 and 2001:db8::–2001:db8::3e7.
    #[test]
    fn the_beps_test_vector() {
        let mut bloom = ScrapeBloom::default();
        for last in 0..=255u8 {
            bloom.insert(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)));
        }
        for low in 0..=0x3e7u16 {
            bloom.insert(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, low)));
        }
        let expected = "F6C3F5EAA07FFD91BDE89F777F26FB2BFF37BDB8FB2BBAA2FD3DDDE7BACFFF75EE7CCBAE\
            FE5EEDB1FBFAFF67F6ABFF5E43DDBCA3FD9B9FFDF4FFD3E9DFF12D1BDF59DB53DBE9FA5B\
            7FF3B8FDFCDE1AFB8BEDD7BE2F3EE71EBBBFE93BCDEEFE148246C2BC5DBFF7E7EFDCF24F\
            D8DC7ADFFD8FFFDFDDFFF7A4BBEEDF5CB95CE81FC7FCFF1FF4FFFFDFE5F7FDCBB7FD79B3\
            FA1FC77BFE07FFF905B7B7FFC7FEFEFFE0B8370BB0CD3F5B7F2BD93FEB4386CFDD6F7FD5\
            BFAF2E9EBFFFFEECD67ADBF7C67F17EFD5D75EBA6FFEBA7FFF47A91EB1BFBB53E8ABFB57\
            62ABE8FF237279BFEFBFEEF5FFC5FEBFDFE5ADFFADFEE1FB737FFFFBFD9F6AEFFEEE76B6\
            FD8F72EF";
        let hex: String = bloom.0.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(hex, expected);
        assert!(
            (bloom.estimate() - 1224.9308).abs() < 0.0001,
            "{}",
            bloom.estimate()
        );
    }

    #[test]
    fn a_union_counts_each_address_once() {
        let (mut a, mut b) = (ScrapeBloom::default(), ScrapeBloom::default());
        assert!(a.is_empty() && a.estimate() == 0.0);
        for i in 0..50u8 {
            a.insert(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)));
            b.insert(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i + 25)));
        }
        a.union(&b);
        assert!((a.estimate() - 75.0).abs() < 5.0, "{}", a.estimate());
        assert_eq!(ScrapeBloom::from_slice(&[0; 255]), None);
    }
}
