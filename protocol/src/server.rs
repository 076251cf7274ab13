//! The serving side of KRPC as pure functions: what an inbound query asks
//! of the node's state, and the encoded reply once that state answered.
//!
//! The actor layer and the simulator both answer queries through these, so
//! the wire format of a reply is decided in one place.

use std::net::SocketAddr;

use bytes::Bytes;

use crate::bencode::Encoder;
use crate::compact::{peer_bytes, NodeInfo, NODE_V4_LEN, NODE_V6_LEN};
use crate::id::{InfoHash, NodeId};
use crate::item::{Item, Signed};
use crate::krpc::{values_budget, Body, ErrorCode, KrpcError, Message, Query, MAX_REPLY_LEN};
use crate::node::AnnounceArgs;
use crate::scrape::ScrapeBloom;

/// The `v` key we send: client "DH", version 0.1.
pub const VERSION: &[u8; 4] = b"DH\x00\x01";

/// What answering a query needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Needs {
    /// Only our id (`ping`).
    Id,
    /// The nodes closest to a target (`find_node`, and unknown methods with a
    /// `target` or `info_hash`, answered like `find_node` as libtorrent does).
    Nodes(NodeId),
    /// Stored peers, the closest nodes and a token (`get_peers`), with BEP
    /// 33's options.
    Peers {
        /// The torrent.
        info_hash: InfoHash,
        /// Add the seed and peer bloom filters, `BFsd` and `BFpe`.
        scrape: bool,
        /// Non-seeds first in `values`.
        noseed: bool,
    },
    /// The item at a target (if stored, and newer than `seq` when given),
    /// the closest nodes and a token (BEP 44 `get`; the mainline crate also
    /// collects its `announce_peer` tokens this way).
    Item {
        /// Where.
        target: NodeId,
        /// Only a mutable item with a higher sequence number.
        seq: Option<i64>,
    },
    /// A token check, the BEP 44 checks and a store (`put`).
    /// Boxed: every inbound query carries a `Needs`, and a put is rare.
    Put(Box<PutRequest>),
    /// A sample of the stored info hashes and the closest nodes (BEP 51
    /// `sample_infohashes`).
    Samples(NodeId),
    /// A token check and a store (`announce_peer`), with its arguments.
    Store(AnnounceArgs),
    /// Nothing: the reply is error 204.
    MethodUnknown,
}

impl Needs {
    /// A plain `get_peers`.
    pub fn peers(info_hash: InfoHash) -> Needs {
        Needs::Peers {
            info_hash,
            scrape: false,
            noseed: false,
        }
    }
}

/// What `query` needs in order to be answered. `datagram` is the buffer
/// `query` was decoded from: the announce token is kept as a slice of it.
pub fn needs(query: &Query<'_>, datagram: &Bytes) -> Needs {
    match query {
        Query::Ping => Needs::Id,
        Query::FindNode { target, .. } => Needs::Nodes(*target),
        Query::GetPeers {
            info_hash,
            scrape,
            noseed,
            ..
        } => Needs::Peers {
            info_hash: *info_hash,
            scrape: *scrape,
            noseed: *noseed,
        },
        Query::SampleInfohashes { target, .. } => Needs::Samples(*target),
        Query::AnnouncePeer {
            info_hash,
            port,
            implied_port,
            token,
            seed,
        } => Needs::Store(AnnounceArgs {
            info_hash: *info_hash,
            port: *port,
            implied_port: *implied_port,
            token: datagram.slice_ref(token),
            seed: *seed,
        }),
        Query::Get { target, seq, .. } => Needs::Item {
            target: *target,
            seq: *seq,
        },
        Query::Put(p) => Needs::Put(Box::new(PutRequest {
            item: Item {
                value: datagram.slice_ref(p.value),
                signed: p.signed.map(|s| Signed {
                    key: *s.key,
                    salt: datagram.slice_ref(s.salt),
                    seq: s.seq,
                    sig: *s.sig,
                }),
            },
            cas: p.cas,
            token: datagram.slice_ref(p.token),
        })),
        Query::Unknown {
            target, info_hash, ..
        } => match (target, info_hash) {
            (Some(t), _) => Needs::Nodes(*t),
            (None, Some(ih)) => Needs::Nodes(NodeId::from(*ih)),
            (None, None) => Needs::MethodUnknown,
        },
    }
}

/// A `put`'s item, its `cas` and token, owned (slices of the datagram).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutRequest {
    /// The item.
    pub item: Item,
    /// The sequence number it expects to replace.
    pub cas: Option<i64>,
    /// The token presented.
    pub token: Bytes,
}

/// The content of a successful reply.
#[derive(Debug, Clone, Copy, Default)]
pub struct Answer<'a> {
    /// Closest nodes, IPv4 and IPv6 mixed: each goes to `nodes` or `nodes6`.
    pub nodes: &'a [NodeInfo],
    /// Stored peers (`values`), omitted when empty.
    pub values: &'a [SocketAddr],
    /// Write token (`get_peers`).
    pub token: Option<&'a [u8]>,
    /// The item stored at a `get`'s target (BEP 44).
    pub item: Option<&'a Item>,
    /// BEP 33's filters (`BFsd`, `BFpe`), for a scrape.
    pub blooms: Option<(&'a ScrapeBloom, &'a ScrapeBloom)>,
    /// BEP 51's keys (`interval`, `num`, `samples`), for `sample_infohashes`.
    pub samples: Option<Samples<'a>>,
    /// Send `nodes` even when there are none: BEP 5 makes it a required key
    /// of `find_node` and `get_peers` replies (a node with an empty table
    /// sends an empty string).
    pub nodes_required: bool,
}

/// A `sample_infohashes` answer's own keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct Samples<'a> {
    /// Seconds before the sample changes.
    pub interval: u32,
    /// Info hashes stored in all.
    pub num: u64,
    /// The sample.
    pub hashes: &'a [InfoHash],
}

/// Encodes our reply to transaction `tid` from `requester` into `out`.
/// `ip` always carries the requester's address (BEP 42).
///
/// Written straight into `out` (keys in sorted order, as
/// [`Message::encode`] writes them) rather than through a [`Response`],
/// which would need the node and peer lists encoded into buffers of their
/// own first; the fixed keys go out as ready-made bencode. This runs once
/// per query answered.
pub fn encode_answer(
    out: &mut Vec<u8>,
    tid: &[u8],
    own_id: NodeId,
    requester: SocketAddr,
    answer: Answer<'_>,
) {
    out.clear();
    out.reserve(MAX_REPLY_LEN);
    let v4 = answer.nodes.iter().filter(|n| n.addr.is_ipv4());
    let v6 = answer.nodes.iter().filter(|n| !n.addr.is_ipv4());
    let n4 = v4.clone().count();
    let n6 = answer.nodes.len() - n4;
    let mut enc = Encoder::new(out);
    enc.raw(b"d2:ip");
    compact_address(&mut enc, &requester);
    enc.raw(b"1:rd");
    if let Some((seeds, peers)) = answer.blooms {
        enc.raw(b"4:BFpe256:").raw(&peers.0);
        enc.raw(b"4:BFsd256:").raw(&seeds.0);
    }
    enc.raw(b"2:id20:").raw(own_id.as_bytes());
    if let Some(s) = answer.samples {
        enc.raw(b"8:interval").int(i64::from(s.interval));
    }
    let signed = answer.item.and_then(|i| i.signed.as_ref());
    if let Some(s) = signed {
        enc.raw(b"1:k32:").raw(&s.key);
    }
    if answer.nodes_required || n4 > 0 {
        enc.raw(b"5:nodes").bytes_header(n4 * NODE_V4_LEN);
        for n in v4 {
            compact_node(&mut enc, n);
        }
    }
    if n6 > 0 {
        enc.raw(b"6:nodes6").bytes_header(n6 * NODE_V6_LEN);
        for n in v6 {
            compact_node(&mut enc, n);
        }
    }
    if let Some(s) = answer.samples {
        enc.raw(b"3:num")
            .int(i64::try_from(s.num).unwrap_or(i64::MAX));
        enc.raw(b"7:samples").bytes_header(s.hashes.len() * 20);
        for h in s.hashes {
            enc.raw(h.as_bytes());
        }
    }
    if let Some(s) = signed {
        enc.raw(b"3:seq").int(s.seq).raw(b"3:sig64:").raw(&s.sig);
    }
    if let Some(token) = answer.token {
        enc.raw(b"5:token").bytes(token);
    }
    if let Some(item) = answer.item {
        enc.raw(b"1:v").raw(&item.value);
    }
    if !answer.values.is_empty() {
        enc.raw(b"6:valuesl");
        for p in answer.values {
            compact_address(&mut enc, p);
        }
        enc.raw(b"e");
    }
    enc.raw(b"e1:t").bytes(tid);
    enc.raw(b"1:v4:").raw(VERSION).raw(b"1:y1:re");
}

fn compact_node(enc: &mut Encoder<'_>, node: &NodeInfo) {
    let (addr, len) = peer_bytes(&node.addr);
    enc.raw(node.id.as_bytes()).raw(&addr[..len]);
}

/// An address as a bencoded compact peer string: `6:` and 6 bytes, or
/// `18:` and 18.
fn compact_address(enc: &mut Encoder<'_>, addr: &SocketAddr) {
    let (bytes, len) = peer_bytes(addr);
    let header: &[u8] = if len == 6 { b"6:" } else { b"18:" };
    enc.raw(header).raw(&bytes[..len]);
}

/// The byte budget left for `values` in a `get_peers` reply carrying
/// `nodes` and `token`, so that the whole stays within BEP 32's 1,024 bytes.
/// Counted, not encoded: it is the length [`encode_answer`] would write
/// without values, key by key.
pub fn values_budget_for(
    tid: &[u8],
    requester: SocketAddr,
    nodes: &[NodeInfo],
    token: &[u8],
) -> usize {
    values_budget_with(tid, requester, nodes, token, false)
}

/// [`values_budget_for`], with BEP 33's two 256-byte filters or not.
pub fn values_budget_with(
    tid: &[u8],
    requester: SocketAddr,
    nodes: &[NodeInfo],
    token: &[u8],
    blooms: bool,
) -> usize {
    /// `N:` and the N bytes.
    fn string(len: usize) -> usize {
        let digits = len.checked_ilog10().unwrap_or(0) as usize + 1;
        digits + 1 + len
    }
    let n4 = nodes.iter().filter(|n| n.addr.is_ipv4()).count();
    let n6 = nodes.len() - n4;
    let ip_len = if requester.is_ipv4() { 6 } else { 18 };
    let mut len = 1 + string(2) + string(ip_len); // d, ip
    len += string(1) + 1 + string(2) + string(20); // r, d, id
    if blooms {
        len += 2 * (string(4) + string(crate::scrape::BLOOM_LEN));
    }
    len += string(5) + string(n4 * NODE_V4_LEN); // nodes: required here
    if n6 > 0 {
        len += string(6) + string(n6 * NODE_V6_LEN);
    }
    len += string(5) + string(token.len()) + 1; // token, the end of r
    len += string(1) + string(tid.len()) + string(1) + string(VERSION.len());
    len += string(1) + string(1) + 1; // y, r, the end
    values_budget(len)
}

/// Encodes a KRPC error reply into `out`.
pub fn encode_error(
    out: &mut Vec<u8>,
    tid: &[u8],
    requester: SocketAddr,
    code: ErrorCode,
    message: &[u8],
) {
    out.clear();
    Message {
        transaction_id: tid,
        version: Some(VERSION),
        requester_ip: Some(requester),
        read_only: false,
        body: Body::Error(KrpcError { code, message }),
    }
    .encode(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(i: u8, addr: &str) -> NodeInfo {
        NodeInfo {
            id: NodeId([i; 20]),
            addr: addr.parse().unwrap(),
        }
    }

    /// Every inbound query carries its `Needs` through the serving path's
    /// queues: the rare, large ones are boxed to keep it small.
    #[test]
    fn needs_stays_small() {
        assert!(
            std::mem::size_of::<Needs>() <= 64,
            "{}",
            std::mem::size_of::<Needs>()
        );
    }

    #[test]
    fn unknown_methods_with_a_target_are_answered_as_find_node() {
        let q = Query::Unknown {
            method: b"find_value",
            target: Some(NodeId([3; 20])),
            info_hash: None,
            want: None,
        };
        assert_eq!(needs(&q, &Bytes::new()), Needs::Nodes(NodeId([3; 20])));
        let q = Query::Unknown {
            method: b"vote",
            target: None,
            info_hash: None,
            want: None,
        };
        assert_eq!(needs(&q, &Bytes::new()), Needs::MethodUnknown);
    }

    #[test]
    fn answer_splits_families_and_echoes_the_requester() {
        let nodes = [node(1, "10.0.0.1:1"), node(2, "[2001:db8::1]:2")];
        let peers: [SocketAddr; 1] = ["10.0.0.9:6881".parse().unwrap()];
        let requester: SocketAddr = "192.0.2.7:4000".parse().unwrap();
        let mut out = Vec::new();
        let answer = Answer {
            nodes: &nodes,
            values: &peers,
            token: Some(b"tok"),
            nodes_required: true,
            samples: None,
            blooms: None,
            item: None,
        };
        encode_answer(&mut out, b"xy", NodeId([9; 20]), requester, answer);
        let m = Message::decode(&out).unwrap();
        assert_eq!(m.transaction_id, b"xy");
        assert_eq!(m.requester_ip, Some(requester));
        let Body::Response(r) = m.body else { panic!() };
        assert_eq!(r.nodes.unwrap().iter().collect::<Vec<_>>(), [nodes[0]]);
        assert_eq!(r.nodes6.unwrap().iter().collect::<Vec<_>>(), [nodes[1]]);
        assert_eq!(r.values.unwrap().iter().collect::<Vec<_>>(), peers);
        assert_eq!(r.token, Some(&b"tok"[..]));
    }

    #[test]
    fn a_node_with_no_nodes_still_sends_the_required_nodes_key() {
        let requester: SocketAddr = "192.0.2.7:4000".parse().unwrap();
        let mut out = Vec::new();
        let answer = Answer {
            nodes_required: true,
            ..Answer::default()
        };
        encode_answer(&mut out, b"e1", NodeId([9; 20]), requester, answer);
        let Body::Response(r) = Message::decode(&out).unwrap().body else {
            panic!()
        };
        assert_eq!(r.nodes.map(|n| n.len()), Some(0));
        // A ping reply carries no nodes at all.
        encode_answer(
            &mut out,
            b"e2",
            NodeId([9; 20]),
            requester,
            Answer::default(),
        );
        let Body::Response(r) = Message::decode(&out).unwrap().body else {
            panic!()
        };
        assert!(r.nodes.is_none());
    }

    #[test]
    fn values_budget_keeps_a_full_reply_under_the_limit() {
        let nodes: Vec<NodeInfo> = (0..8).map(|i| node(i, "10.0.0.1:1")).collect();
        let requester: SocketAddr = "192.0.2.7:4000".parse().unwrap();
        let budget = values_budget_for(b"abcd", requester, &nodes, &[7; 8]);
        let peers: Vec<SocketAddr> = (0..budget / 8)
            .map(|i| SocketAddr::from(([10, 1, (i / 256) as u8, i as u8], 80)))
            .collect();
        let mut out = Vec::new();
        let answer = Answer {
            nodes: &nodes,
            values: &peers,
            token: Some(&[7; 8]),
            nodes_required: true,
            samples: None,
            blooms: None,
            item: None,
        };
        encode_answer(&mut out, b"abcd", NodeId([9; 20]), requester, answer);
        assert!(out.len() <= crate::krpc::MAX_REPLY_LEN, "{}", out.len());
        assert!(out.len() > crate::krpc::MAX_REPLY_LEN - 8);
    }

    /// The direct writer and the budget count agree with the general
    /// encoder, for every shape a reply takes.
    #[test]
    fn answers_match_the_message_encoder_and_the_budget_counts_right() {
        use crate::compact::{encode_node, CompactNodes, CompactPeers};
        use crate::krpc::Response;
        let v4 = |i: u8| node(i, "10.0.0.1:6881");
        let v6 = |i: u8| node(i, "[2001:db8::1]:6881");
        let peers: Vec<SocketAddr> = vec![
            "10.0.0.9:6881".parse().unwrap(),
            "[2001:db8::9]:1".parse().unwrap(),
        ];
        for requester in ["192.0.2.7:4000", "[2001:db8::7]:4000"] {
            let requester: SocketAddr = requester.parse().unwrap();
            for tid in [&b""[..], b"a", b"abcd", &[0xff; 12]] {
                for (n4, n6) in [(0, 0), (1, 0), (8, 0), (0, 3), (4, 4)] {
                    let nodes: Vec<NodeInfo> = (0..n4).map(v4).chain((0..n6).map(v6)).collect();
                    for token in [None, Some(&b"tok"[..]), Some(&[7; 20][..])] {
                        for values in [&peers[..0], &peers[..1], &peers[..]] {
                            for nodes_required in [false, true] {
                                let answer = Answer {
                                    nodes: &nodes,
                                    values,
                                    token,
                                    nodes_required,
                                    samples: None,
                                    blooms: None,
                                    item: None,
                                };
                                let mut fast = Vec::new();
                                encode_answer(&mut fast, tid, NodeId([9; 20]), requester, answer);
                                let (mut b4, mut b6, mut bv) = (Vec::new(), Vec::new(), Vec::new());
                                for n in &nodes {
                                    encode_node(
                                        n,
                                        if n.addr.is_ipv4() { &mut b4 } else { &mut b6 },
                                    );
                                }
                                let response = Response {
                                    nodes: (nodes_required || n4 > 0)
                                        .then(|| CompactNodes::v4(&b4).unwrap()),
                                    nodes6: (n6 > 0).then(|| CompactNodes::v6(&b6).unwrap()),
                                    values: (!values.is_empty()).then(|| {
                                        CompactPeers::encode_list(values.iter().copied(), &mut bv)
                                    }),
                                    token,
                                    ..Response::bare(NodeId([9; 20]))
                                };
                                let mut general = Vec::new();
                                Message {
                                    transaction_id: tid,
                                    version: Some(VERSION),
                                    requester_ip: Some(requester),
                                    read_only: false,
                                    body: Body::Response(response),
                                }
                                .encode(&mut general);
                                assert_eq!(fast, general);
                                if let (Some(token), true, true) =
                                    (token, values.is_empty(), nodes_required)
                                {
                                    let budget = values_budget_for(tid, requester, &nodes, token);
                                    assert_eq!(budget, values_budget(fast.len()));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
