//! Node ids, info hashes and XOR distance (BEP 5), and id rules from BEP 42.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use rand::RngCore;

/// Length in bytes of node ids and info hashes.
pub const ID_LEN: usize = 20;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; ID_LEN]);

        impl $name {
            /// From a slice that must be exactly 20 bytes long.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                <[u8; ID_LEN]>::try_from(bytes).ok().map(Self)
            }

            /// A uniformly random value.
            pub fn random(rng: &mut impl RngCore) -> Self {
                let mut bytes = [0u8; ID_LEN];
                rng.fill_bytes(&mut bytes);
                Self(bytes)
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; ID_LEN] {
                &self.0
            }

            /// XOR distance to another id-space point.
            pub fn distance(&self, other: &impl AsRef<[u8; ID_LEN]>) -> Distance {
                let other = other.as_ref();
                let mut d = [0u8; ID_LEN];
                for (i, byte) in d.iter_mut().enumerate() {
                    *byte = self.0[i] ^ other[i];
                }
                Distance(d)
            }
        }

        impl AsRef<[u8; ID_LEN]> for $name {
            fn as_ref(&self) -> &[u8; ID_LEN] {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for b in &self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            /// Parses 40 hexadecimal digits.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex20(s).map(Self)
            }
        }
    };
}

id_type!(
    /// A node's 160-bit identifier.
    NodeId
);
id_type!(
    /// A torrent's 160-bit info hash (the SHA-1 of its info dictionary).
    InfoHash
);

impl From<InfoHash> for NodeId {
    /// A lookup for an info hash targets the same point in id space.
    fn from(h: InfoHash) -> NodeId {
        NodeId(h.0)
    }
}

/// A malformed hexadecimal id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected 40 hexadecimal digits")]
pub struct ParseIdError;

fn parse_hex20(s: &str) -> Result<[u8; ID_LEN], ParseIdError> {
    let s = s.as_bytes();
    if s.len() != ID_LEN * 2 {
        return Err(ParseIdError);
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(ParseIdError),
    };
    let mut out = [0u8; ID_LEN];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = nibble(s[2 * i])? << 4 | nibble(s[2 * i + 1])?;
    }
    Ok(out)
}

/// The XOR distance between two points of the id space; smaller is closer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Distance(pub [u8; ID_LEN]);

impl Ord for Distance {
    /// Big-endian, as two integer comparisons: sorting candidates by
    /// distance is on the path of every find_node and get_peers answer, and
    /// the derived byte-wise order costs a `memcmp` call per comparison.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let split = |d: &[u8; ID_LEN]| {
            let mut high = [0u8; 16];
            let mut low = [0u8; 4];
            high.copy_from_slice(&d[..16]);
            low.copy_from_slice(&d[16..]);
            (u128::from_be_bytes(high), u32::from_be_bytes(low))
        };
        split(&self.0).cmp(&split(&other.0))
    }
}

impl PartialOrd for Distance {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Distance {
    /// Leading zero bits: 160 for distance zero.
    pub fn leading_zeros(&self) -> u32 {
        let mut n = 0;
        for b in &self.0 {
            if *b == 0 {
                n += 8;
            } else {
                return n + b.leading_zeros();
            }
        }
        n
    }

    /// The distance as a float (for estimates only; low bits are lost).
    pub fn as_f64(&self) -> f64 {
        self.0
            .iter()
            .fold(0.0, |acc, b| acc * 256.0 + f64::from(*b))
    }
}

impl fmt::Debug for Distance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Distance({})", NodeId(self.0))
    }
}

/// The index of a routing-table bucket: the number of leading bits a node id
/// shares with ours, capped by the number of buckets in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BucketIndex(pub u8);

impl NodeId {
    /// A random id whose distance to `self` has exactly `prefix` leading
    /// zero bits (or at least `prefix` when `at_least` is set): a random
    /// point in the range of bucket `prefix`, used to refresh it.
    pub fn random_at_prefix(&self, prefix: u32, at_least: bool, rng: &mut impl RngCore) -> NodeId {
        let prefix = prefix.min(159) as usize;
        let mut d = [0u8; ID_LEN];
        rng.fill_bytes(&mut d);
        for (i, byte) in d.iter_mut().enumerate() {
            let bit_start = i * 8;
            if bit_start + 8 <= prefix {
                *byte = 0;
            } else if bit_start < prefix {
                *byte &= 0xff >> (prefix - bit_start);
            }
        }
        if !at_least {
            // Set the first bit after the shared prefix so the bucket is exact.
            d[prefix / 8] |= 0x80 >> (prefix % 8);
        }
        let mut id = [0u8; ID_LEN];
        for i in 0..ID_LEN {
            id[i] = self.0[i] ^ d[i];
        }
        NodeId(id)
    }
}

/// BEP 42: node ids derived from the node's external IP address.
///
/// According to [BEP 42](https://www.bittorrent.org/beps/bep_0042.html) the
/// first 21 bits of the id come from `crc32c((ip & mask) | (r << 29))` and the
/// last byte is `r`. The BEP's prose speaks of 8 bytes for IPv4, but its
/// example code and libtorrent hash 4 bytes; we follow the code, which is what
/// the test vectors were made with.
pub mod bep42 {
    use super::*;

    const V4_MASK: [u8; 4] = [0x03, 0x0f, 0x3f, 0xff];
    const V6_MASK: [u8; 8] = [0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff];

    /// The CRC32-C that fixes the top 21 bits of an id for `ip` and `r`.
    pub fn crc(ip: IpAddr, r: u8) -> u32 {
        let r = r & 0x07;
        match ip {
            IpAddr::V4(v4) => {
                let mut b = v4.octets();
                for (x, m) in b.iter_mut().zip(V4_MASK) {
                    *x &= m;
                }
                b[0] |= r << 5;
                crc32c::crc32c(&b)
            }
            IpAddr::V6(v6) => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&v6.octets()[..8]);
                for (x, m) in b.iter_mut().zip(V6_MASK) {
                    *x &= m;
                }
                b[0] |= r << 5;
                crc32c::crc32c(&b)
            }
        }
    }

    /// Builds an id for `ip` from a random byte `rand` (whose low 3 bits are `r`)
    /// and 16 further random bytes.
    pub fn node_id_from(ip: IpAddr, rand: u8, tail: [u8; 17]) -> NodeId {
        let c = crc(ip, rand);
        let mut id = [0u8; ID_LEN];
        id[0] = (c >> 24) as u8;
        id[1] = (c >> 16) as u8;
        id[2] = ((c >> 8) as u8 & 0xf8) | (tail[0] & 0x07);
        id[3..19].copy_from_slice(&tail[1..17]);
        id[19] = rand;
        NodeId(id)
    }

    /// A random id that is valid for `ip`.
    pub fn generate(ip: IpAddr, rng: &mut impl RngCore) -> NodeId {
        let mut tail = [0u8; 17];
        rng.fill_bytes(&mut tail);
        let rand = (rng.next_u32() & 0xff) as u8;
        node_id_from(ip, rand, tail)
    }

    /// Addresses BEP 42 exempts: local networks, where ids cannot be checked.
    pub fn is_exempt(ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local(),
            IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
        }
    }

    /// Whether `id` is valid for `ip` (always true for exempt addresses).
    pub fn is_valid(id: &NodeId, ip: IpAddr) -> bool {
        if is_exempt(ip) {
            return true;
        }
        let c = crc(ip, id.0[19]);
        id.0[0] == (c >> 24) as u8
            && id.0[1] == (c >> 16) as u8
            && (id.0[2] & 0xf8) == ((c >> 8) as u8 & 0xf8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// BEP 42, "test vectors": the first 21 bits and the last byte match.
    #[test]
    fn bep42_test_vectors() {
        let vectors = [
            (
                "124.31.75.21",
                1u8,
                "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401",
            ),
            (
                "21.75.31.124",
                86,
                "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256",
            ),
            (
                "65.23.51.170",
                22,
                "a5d43220bc8f112a3d426c84764f8c2a1150e616",
            ),
            (
                "84.124.73.14",
                65,
                "1b0321dd1bb1fe518101ceef99462b947a01ff41",
            ),
            (
                "43.213.53.83",
                90,
                "e56f6cbf5b7c4be0237986d5243b87aa6d51305a",
            ),
        ];
        for (ip, rand, expected) in vectors {
            let ip: IpAddr = ip.parse().unwrap();
            let expected: NodeId = expected.parse().unwrap();
            assert!(bep42::is_valid(&expected, ip), "{ip}");
            let mut tail = [0u8; 17];
            tail[0] = expected.0[2];
            tail[1..].copy_from_slice(&expected.0[3..19]);
            let built = bep42::node_id_from(ip, rand, tail);
            assert_eq!(built, expected, "{ip}");
            // One wrong bit in the prefix makes it invalid.
            let mut broken = expected;
            broken.0[1] ^= 0x01;
            assert!(!bep42::is_valid(&broken, ip));
        }
    }

    /// BEP 42 for IPv6: the vector from the bittorrent.org repository's
    /// discussion #76 (the BEP itself gives IPv4 vectors only).
    #[test]
    fn bep42_ipv6_vector() {
        let ip: IpAddr = "2001:b829:2123:be84:e16c:d6ae:5290:49f1".parse().unwrap();
        let expected: NodeId = "0a8ad123be84e16cd6ae529049f1f1bbe9ebb304".parse().unwrap();
        assert!(bep42::is_valid(&expected, ip));
        let mut tail = [0u8; 17];
        tail[0] = expected.0[2];
        tail[1..].copy_from_slice(&expected.0[3..19]);
        assert_eq!(bep42::node_id_from(ip, expected.0[19], tail), expected);
        // Another /64's address does not match it.
        let other: IpAddr = "2001:b829:2123:be85::1".parse().unwrap();
        assert!(!bep42::is_valid(&expected, other));
    }

    #[test]
    fn bep42_generated_ids_are_valid_and_local_addresses_exempt() {
        let mut rng = StdRng::seed_from_u64(7);
        for ip in ["8.8.4.4", "2001:4860::8844", "203.0.113.9"] {
            let ip: IpAddr = ip.parse().unwrap();
            for _ in 0..50 {
                assert!(bep42::is_valid(&bep42::generate(ip, &mut rng), ip));
            }
        }
        assert!(bep42::is_exempt("127.0.0.5".parse().unwrap()));
        assert!(bep42::is_exempt("192.168.1.1".parse().unwrap()));
        assert!(!bep42::is_exempt("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn distance_and_prefixes() {
        let mut rng = StdRng::seed_from_u64(1);
        let own = NodeId::random(&mut rng);
        assert_eq!(own.distance(&own).leading_zeros(), 160);
        for prefix in [0u32, 1, 7, 8, 9, 100, 159] {
            for _ in 0..20 {
                let exact = own.random_at_prefix(prefix, false, &mut rng);
                assert_eq!(own.distance(&exact).leading_zeros(), prefix);
                let at_least = own.random_at_prefix(prefix, true, &mut rng);
                assert!(own.distance(&at_least).leading_zeros() >= prefix);
            }
        }
        let a = NodeId([0; 20]);
        let mut b = [0; 20];
        b[19] = 1;
        let mut c = [0; 20];
        c[0] = 0x80;
        assert!(a.distance(&NodeId(b)) < a.distance(&NodeId(c)));
    }

    /// The integer comparison orders distances exactly as their bytes do,
    /// including differences only in the last four bytes or only at the
    /// boundary between the two halves.
    #[test]
    fn distance_order_is_the_byte_order() {
        let mut rng = StdRng::seed_from_u64(9);
        let mut values: Vec<[u8; ID_LEN]> = (0..200)
            .map(|_| *NodeId::random(&mut rng).as_bytes())
            .collect();
        for i in [0, 15, 16, 19] {
            for v in [0x00, 0x01, 0x80, 0xff] {
                let mut d = [0x42; ID_LEN];
                d[i] = v;
                values.push(d);
            }
        }
        for a in &values {
            for b in &values {
                assert_eq!(Distance(*a).cmp(&Distance(*b)), a.cmp(b), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let id: NodeId = "00112233445566778899aabbccddeeff00112233".parse().unwrap();
        assert_eq!(id.to_string(), "00112233445566778899aabbccddeeff00112233");
        assert!("0011".parse::<NodeId>().is_err());
        assert!("zz112233445566778899aabbccddeeff00112233"
            .parse::<NodeId>()
            .is_err());
    }
}
