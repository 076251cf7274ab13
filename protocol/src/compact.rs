//! Compact peer and node formats (BEP 5, BEP 32).
//!
//! A peer is 6 bytes (IPv4 address, port) or 18 bytes (IPv6); a node adds
//! its 20-byte id in front: 26 or 38 bytes. Ports are big-endian.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::bencode::{Decoder, Encoder, Limits};
use crate::id::{NodeId, ID_LEN};

/// Compact peer length for IPv4.
pub const PEER_V4_LEN: usize = 6;
/// Compact peer length for IPv6.
pub const PEER_V6_LEN: usize = 18;
/// Compact node length for IPv4 (`nodes`).
pub const NODE_V4_LEN: usize = ID_LEN + PEER_V4_LEN;
/// Compact node length for IPv6 (`nodes6`).
pub const NODE_V6_LEN: usize = ID_LEN + PEER_V6_LEN;

/// A DHT node: its id and UDP address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeInfo {
    /// The node's id.
    pub id: NodeId,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// Decodes a 6- or 18-byte compact address.
pub fn decode_peer(bytes: &[u8]) -> Option<SocketAddr> {
    match bytes.len() {
        PEER_V4_LEN => {
            let ip = Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]);
            Some(SocketAddr::new(
                IpAddr::V4(ip),
                u16::from_be_bytes([bytes[4], bytes[5]]),
            ))
        }
        PEER_V6_LEN => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&bytes[..16]);
            Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(octets)),
                u16::from_be_bytes([bytes[16], bytes[17]]),
            ))
        }
        _ => None,
    }
}

/// The compact form of `addr` in a stack buffer, and its length (6 or 18).
pub fn peer_bytes(addr: &SocketAddr) -> ([u8; PEER_V6_LEN], usize) {
    let mut buf = [0u8; PEER_V6_LEN];
    let ip_len = match addr.ip() {
        IpAddr::V4(ip) => {
            buf[..4].copy_from_slice(&ip.octets());
            4
        }
        IpAddr::V6(ip) => {
            buf[..16].copy_from_slice(&ip.octets());
            16
        }
    };
    buf[ip_len..ip_len + 2].copy_from_slice(&addr.port().to_be_bytes());
    (buf, ip_len + 2)
}

/// Appends the compact form of `addr` (6 or 18 bytes).
pub fn encode_peer(addr: &SocketAddr, out: &mut Vec<u8>) {
    let (buf, len) = peer_bytes(addr);
    out.extend_from_slice(&buf[..len]);
}

/// Length of the compact form of `addr`.
pub fn peer_len(addr: &SocketAddr) -> usize {
    if addr.is_ipv4() {
        PEER_V4_LEN
    } else {
        PEER_V6_LEN
    }
}

/// Appends the compact node form (26 or 38 bytes).
pub fn encode_node(node: &NodeInfo, out: &mut Vec<u8>) {
    out.extend_from_slice(node.id.as_bytes());
    encode_peer(&node.addr, out);
}

/// A `nodes` (IPv4) or `nodes6` (IPv6) string, checked for length and read lazily.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactNodes<'a> {
    raw: &'a [u8],
    stride: usize,
}

/// A node list whose length is not a whole number of entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("node list of {len} bytes is not a multiple of {stride}")]
pub struct BadNodeListLength {
    /// The list's length.
    pub len: usize,
    /// The entry size it should divide by.
    pub stride: usize,
}

impl<'a> CompactNodes<'a> {
    fn new(raw: &'a [u8], stride: usize) -> Result<Self, BadNodeListLength> {
        if raw.len() % stride == 0 {
            Ok(CompactNodes { raw, stride })
        } else {
            Err(BadNodeListLength {
                len: raw.len(),
                stride,
            })
        }
    }

    /// A `nodes` value: 26-byte entries.
    pub fn v4(raw: &'a [u8]) -> Result<Self, BadNodeListLength> {
        Self::new(raw, NODE_V4_LEN)
    }

    /// A `nodes6` value: 38-byte entries.
    pub fn v6(raw: &'a [u8]) -> Result<Self, BadNodeListLength> {
        Self::new(raw, NODE_V6_LEN)
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.raw.len() / self.stride
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The nodes, in wire order.
    pub fn iter(&self) -> impl Iterator<Item = NodeInfo> + 'a {
        self.raw.chunks_exact(self.stride).filter_map(|chunk| {
            let id = NodeId::from_slice(&chunk[..ID_LEN])?;
            let addr = decode_peer(&chunk[ID_LEN..])?;
            Some(NodeInfo { id, addr })
        })
    }
}

/// A `values` list of compact peers, checked to be a list of strings and
/// read lazily. Entries that are not 6 or 18 bytes are skipped by
/// [`CompactPeers::iter`] and counted by [`CompactPeers::malformed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactPeers<'a> {
    /// The bencoded list, `l…e`.
    raw_list: &'a [u8],
}

impl<'a> CompactPeers<'a> {
    /// Wraps an encoded list already known to be a list of byte strings.
    pub(crate) fn from_checked_list(raw_list: &'a [u8]) -> Self {
        CompactPeers { raw_list }
    }

    /// Encodes `peers` as a bencoded list into `out` and returns a view of it.
    pub fn encode_list<'o>(
        peers: impl IntoIterator<Item = SocketAddr>,
        out: &'o mut Vec<u8>,
    ) -> CompactPeers<'o> {
        out.clear();
        out.push(b'l');
        for p in peers {
            let (buf, len) = peer_bytes(&p);
            Encoder::new(out).bytes(&buf[..len]);
        }
        out.push(b'e');
        CompactPeers { raw_list: out }
    }

    /// The bencoded list.
    pub fn as_encoded(&self) -> &'a [u8] {
        self.raw_list
    }

    fn strings(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut d = Decoder::new(self.raw_list, Limits::KRPC);
        let mut started = false;
        std::iter::from_fn(move || {
            if !started {
                started = true;
                d.begin_list().ok()?;
            }
            if d.next_item().ok()? {
                d.bytes().ok()
            } else {
                None
            }
        })
    }

    /// The well-formed peers, in wire order.
    pub fn iter(&self) -> impl Iterator<Item = SocketAddr> + 'a {
        self.strings().filter_map(decode_peer)
    }

    /// How many entries had a length other than 6 or 18.
    pub fn malformed(&self) -> usize {
        self.strings().filter(|s| decode_peer(s).is_none()).count()
    }

    /// Number of entries, well-formed or not.
    pub fn len(&self) -> usize {
        self.strings().count()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.raw_list.len() <= 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_round_trip_v4_and_v6() {
        for addr in ["1.2.3.4:6881", "[2001:db8::1]:51413", "127.0.0.1:0"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let mut out = Vec::new();
            encode_peer(&addr, &mut out);
            assert_eq!(out.len(), peer_len(&addr));
            assert_eq!(decode_peer(&out), Some(addr));
        }
        assert_eq!(decode_peer(&[1, 2, 3, 4, 5]), None);
        // BEP 5: port in network byte order.
        assert_eq!(
            decode_peer(&[10, 0, 0, 1, 0x1a, 0xe1]),
            Some("10.0.0.1:6881".parse().unwrap())
        );
    }

    #[test]
    fn node_lists_must_be_whole_entries() {
        assert!(CompactNodes::v4(&[0u8; 52]).is_ok());
        assert_eq!(
            CompactNodes::v4(&[0u8; 27]),
            Err(BadNodeListLength {
                len: 27,
                stride: 26
            })
        );
        assert!(CompactNodes::v6(&[0u8; 38]).is_ok());
        assert!(CompactNodes::v6(&[0u8; 26]).is_err());
        let node = NodeInfo {
            id: NodeId([7; 20]),
            addr: "[::1]:9".parse().unwrap(),
        };
        let mut raw = Vec::new();
        encode_node(&node, &mut raw);
        let list = CompactNodes::v6(&raw).unwrap();
        assert_eq!(list.iter().collect::<Vec<_>>(), vec![node]);
    }

    #[test]
    fn peer_lists_skip_and_count_malformed_entries() {
        let raw = b"l6:\x01\x02\x03\x04\x00\x505:short6:\x05\x06\x07\x08\x00\x51e";
        let peers = CompactPeers::from_checked_list(raw);
        assert_eq!(peers.len(), 3);
        assert_eq!(peers.malformed(), 1);
        assert_eq!(
            peers.iter().collect::<Vec<_>>(),
            vec![
                "1.2.3.4:80".parse::<SocketAddr>().unwrap(),
                "5.6.7.8:81".parse().unwrap()
            ]
        );
    }
}
