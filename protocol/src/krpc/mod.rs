//! KRPC messages (BEP 5) and their encoding, with the extensions real
//! clients send: `ip` (BEP 42), `ro` (BEP 43), `want` and `nodes6` (BEP 32),
//! and `v`.
//!
//! A [`Message`] borrows every string from the datagram it was decoded from,
//! so decoding allocates nothing. Unknown keys are ignored wherever they
//! appear. A datagram that is not a valid message gives a [`ParseError`]
//! that keeps the transaction id and message type when they were readable,
//! so a malformed *query* can be answered with error 203.
//!
//! [Implementation notes] A KRPC response does not say which query it
//! answers; that is known only from the transaction. So there is one
//! [`Response`] type with every optional field (`nodes`, `nodes6`, `values`,
//! `token`); the caller reads what its query asked for.

mod decode;
mod encode;
mod error;

use std::net::SocketAddr;

pub use error::{ErrorCode, ParseError, ParseErrorKind};

use crate::compact::{CompactNodes, CompactPeers};
use crate::id::{InfoHash, NodeId};

/// BEP 32 recommends keeping replies under this many bytes.
pub const MAX_REPLY_LEN: usize = 1024;

/// Bytes left for a `values` list in a reply whose encoding without
/// `values` is `reply_len` bytes, so that the whole stays within
/// [`MAX_REPLY_LEN`]. Pass it to [`crate::store::PeerStore::sample`].
pub fn values_budget(reply_len: usize) -> usize {
    // "6:values" and the list's "l" and "e".
    MAX_REPLY_LEN.saturating_sub(reply_len + 8 + 2)
}

/// One KRPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// `t`: echoed verbatim in the reply. Real clients use 1, 2, 4 and 8
    /// bytes; empty when the sender left it out.
    pub transaction_id: &'a [u8],
    /// `v`: the sender's client and version (absent from some clients).
    pub version: Option<&'a [u8]>,
    /// `ip` (BEP 42): in replies, the address the replier saw us at.
    pub requester_ip: Option<SocketAddr>,
    /// `ro` (BEP 43): the sender is read-only and must not be added to routing tables.
    pub read_only: bool,
    /// What kind of message this is.
    pub body: Body<'a>,
}

/// The three kinds of KRPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body<'a> {
    /// `y = q`.
    Query {
        /// `a.id`: the querying node.
        sender: NodeId,
        /// The method and its arguments.
        query: Query<'a>,
    },
    /// `y = r`.
    Response(Response<'a>),
    /// `y = e`.
    Error(KrpcError<'a>),
}

/// BEP 32 `want`: which address families the querier wants nodes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Want {
    /// `n4`: IPv4 nodes.
    pub v4: bool,
    /// `n6`: IPv6 nodes.
    pub v6: bool,
}

/// A query's method and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query<'a> {
    /// `ping`.
    Ping,
    /// `find_node`.
    FindNode {
        /// The id sought.
        target: NodeId,
        /// BEP 32 address families wanted, when given.
        want: Option<Want>,
    },
    /// `get_peers`.
    GetPeers {
        /// The torrent.
        info_hash: InfoHash,
        /// BEP 32 address families wanted, when given.
        want: Option<Want>,
        /// `scrape = 1` (BEP 33): add the seed and peer bloom filters.
        scrape: bool,
        /// `noseed = 1` (BEP 33): leave seeds out of `values` if possible.
        noseed: bool,
    },
    /// `announce_peer`.
    AnnouncePeer {
        /// The torrent.
        info_hash: InfoHash,
        /// The port to store; ignored when `implied_port` is set.
        port: u16,
        /// Store the UDP source port instead of `port` (for peers behind NAT).
        implied_port: bool,
        /// The token from an earlier `get_peers` reply.
        token: &'a [u8],
        /// `seed = 1` (BEP 33): the announcer has the whole torrent.
        seed: bool,
    },
    /// `get` (BEP 44): the item stored at `target`, the closest nodes and a
    /// token.
    Get {
        /// The item's target.
        target: NodeId,
        /// Only a mutable item with a higher sequence number is wanted.
        seq: Option<i64>,
        /// BEP 32 address families wanted, when given.
        want: Option<Want>,
    },
    /// `put` (BEP 44): store an item.
    Put(PutArgs<'a>),
    /// `sample_infohashes` (BEP 51): a sample of the info hashes stored,
    /// and the nodes closest to `target`.
    SampleInfohashes {
        /// Where the querier is walking the keyspace.
        target: NodeId,
        /// BEP 32 address families wanted, when given.
        want: Option<Want>,
    },
    /// Any other method (BEP 44 `get`, …). If it
    /// carries `target` or `info_hash`, libtorrent answers it like `find_node`,
    /// for forward compatibility; otherwise it gets error 204.
    Unknown {
        /// `q`.
        method: &'a [u8],
        /// `a.target`, if present and 20 bytes.
        target: Option<NodeId>,
        /// `a.info_hash`, if present and 20 bytes.
        info_hash: Option<InfoHash>,
        /// BEP 32 address families wanted, when given.
        want: Option<Want>,
    },
}

impl Query<'_> {
    /// The method name as sent on the wire.
    pub fn method(&self) -> &[u8] {
        match self {
            Query::Ping => b"ping",
            Query::FindNode { .. } => b"find_node",
            Query::GetPeers { .. } => b"get_peers",
            Query::AnnouncePeer { .. } => b"announce_peer",
            Query::SampleInfohashes { .. } => b"sample_infohashes",
            Query::Get { .. } => b"get",
            Query::Put(_) => b"put",
            Query::Unknown { method, .. } => method,
        }
    }

    /// The BEP 32 `want` it carries, if any.
    pub fn want(&self) -> Option<Want> {
        match self {
            Query::FindNode { want, .. }
            | Query::GetPeers { want, .. }
            | Query::Get { want, .. }
            | Query::SampleInfohashes { want, .. }
            | Query::Unknown { want, .. } => *want,
            Query::Ping | Query::AnnouncePeer { .. } | Query::Put(_) => None,
        }
    }
}

impl Want {
    /// Both families.
    pub const BOTH: Want = Want { v4: true, v6: true };

    /// Whether `family` is wanted.
    pub fn contains(self, family: crate::Family) -> bool {
        match family {
            crate::Family::V4 => self.v4,
            crate::Family::V6 => self.v6,
        }
    }
}

/// The arguments of a BEP 44 `put`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutArgs<'a> {
    /// The token from an earlier `get`.
    pub token: &'a [u8],
    /// `v`: the value, bencoded, verbatim.
    pub value: &'a [u8],
    /// For a mutable item: the key, salt, sequence number and signature.
    pub signed: Option<SignedArgs<'a>>,
    /// `cas`: the sequence number the put expects to replace.
    pub cas: Option<i64>,
}

/// The signed part of a mutable `put` or `get` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedArgs<'a> {
    /// `k`: the ed25519 public key.
    pub key: &'a [u8; 32],
    /// `salt`, empty when absent.
    pub salt: &'a [u8],
    /// `seq`.
    pub seq: i64,
    /// `sig`.
    pub sig: &'a [u8; 64],
}

/// A response (`r`). Which fields are present depends on the query answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response<'a> {
    /// `id`: the responding node.
    pub id: NodeId,
    /// `nodes`: compact IPv4 nodes.
    pub nodes: Option<CompactNodes<'a>>,
    /// `nodes6` (BEP 32): compact IPv6 nodes.
    pub nodes6: Option<CompactNodes<'a>>,
    /// `values`: compact peers (get_peers).
    pub values: Option<CompactPeers<'a>>,
    /// `token` (get_peers), to be returned in announce_peer.
    pub token: Option<&'a [u8]>,
    /// `interval` (BEP 51): seconds before the sample changes.
    pub interval: Option<i64>,
    /// `num` (BEP 51): info hashes the responder stores.
    pub num: Option<i64>,
    /// `samples` (BEP 51): 20-byte info hashes, concatenated.
    pub samples: Option<&'a [u8]>,
    /// `v` (BEP 44 `get`): the item's value, bencoded, verbatim.
    pub value: Option<&'a [u8]>,
    /// `k`, `seq`, `sig` (BEP 44 `get`, a mutable item); the salt is not
    /// sent back, so it is empty here.
    pub signed: Option<SignedArgs<'a>>,
    /// `BFsd` (BEP 33): the bloom filter of the stored seeds' IPs.
    pub seeds_bloom: Option<&'a [u8]>,
    /// `BFpe` (BEP 33): the bloom filter of the stored peers' IPs.
    pub peers_bloom: Option<&'a [u8]>,
}

impl<'a> Response<'a> {
    /// A response carrying only the responder's id (ping, announce_peer).
    pub fn bare(id: NodeId) -> Self {
        Response {
            id,
            nodes: None,
            nodes6: None,
            values: None,
            token: None,
            interval: None,
            num: None,
            samples: None,
            seeds_bloom: None,
            peers_bloom: None,
            value: None,
            signed: None,
        }
    }

    /// The info hashes of `samples`.
    pub fn sample_hashes(&self) -> impl Iterator<Item = InfoHash> + 'a {
        self.samples
            .unwrap_or_default()
            .chunks_exact(20)
            .filter_map(InfoHash::from_slice)
    }
}

/// An error reply (`e = [code, message]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KrpcError<'a> {
    /// The error code.
    pub code: ErrorCode,
    /// Human-readable text.
    pub message: &'a [u8],
}

impl<'a> Message<'a> {
    /// Decodes one datagram.
    pub fn decode(datagram: &'a [u8]) -> Result<Message<'a>, ParseError<'a>> {
        decode::decode(datagram)
    }

    /// Appends the encoding of this message to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode::encode(self, out)
    }

    /// Encodes into a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.encode(&mut out);
        out
    }
}
