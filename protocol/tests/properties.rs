//! Property tests: the codec round-trips every message, agrees with an
//! independent bencode implementation, and the routing table and lookup
//! keep their invariants whatever happens to them.

// Test helpers, not only #[test] fns, may panic on a broken fixture.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use dhtd_protocol::bencode::{Limits, Value};
use dhtd_protocol::compact::{encode_node, CompactNodes, CompactPeers};
use dhtd_protocol::krpc::{Body, ErrorCode, KrpcError, Message, Query, Response, Want};
use dhtd_protocol::lookup::{Lookup, LookupConfig, LookupKind, LookupStep};
use dhtd_protocol::routing::{NodeFilter, RoutingConfig, RoutingTable};
use dhtd_protocol::{InfoHash, NodeId, NodeInfo};
use proptest::prelude::*;

// The epoch of each test's virtual clock: the only clock read, taken once.
#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

fn id() -> impl Strategy<Value = [u8; 20]> {
    any::<[u8; 20]>()
}

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, p)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), p)),
        (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(ip, p)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), p)),
    ]
}

fn want() -> impl Strategy<Value = Option<Want>> {
    proptest::option::of((any::<bool>(), any::<bool>()).prop_map(|(v4, v6)| Want { v4, v6 }))
}

/// A compact node as generated: id, address bytes, port.
type NodeSpec<const N: usize> = ([u8; 20], [u8; N], u16);

/// An owned description of a message; the test builds the borrowing
/// [`Message`] from it.
#[derive(Debug, Clone)]
enum Spec {
    Ping,
    FindNode([u8; 20], Option<Want>),
    GetPeers([u8; 20], Option<Want>),
    Announce([u8; 20], u16, bool, Vec<u8>),
    Unknown(Vec<u8>, Option<[u8; 20]>, Option<[u8; 20]>),
    Response {
        nodes: Option<Vec<NodeSpec<4>>>,
        nodes6: Option<Vec<NodeSpec<16>>>,
        values: Option<Vec<SocketAddr>>,
        token: Option<Vec<u8>>,
    },
    Error(i64, Vec<u8>),
}

fn spec() -> impl Strategy<Value = Spec> {
    let bytes = |max| proptest::collection::vec(any::<u8>(), 0..max);
    prop_oneof![
        Just(Spec::Ping),
        (id(), want()).prop_map(|(t, w)| Spec::FindNode(t, w)),
        (id(), want()).prop_map(|(t, w)| Spec::GetPeers(t, w)),
        (id(), any::<u16>(), any::<bool>(), bytes(40))
            .prop_map(|(h, p, i, t)| Spec::Announce(h, p, i, t)),
        // Method names that are not one of the four.
        (
            "[a-z_]{1,16}".prop_filter("unknown method", |m| {
                !matches!(
                    m.as_str(),
                    "ping" | "find_node" | "get_peers" | "announce_peer"
                )
            }),
            proptest::option::of(id()),
            proptest::option::of(id())
        )
            .prop_map(|(m, t, h)| Spec::Unknown(m.into_bytes(), t, h)),
        (
            proptest::option::of(proptest::collection::vec(
                (id(), any::<[u8; 4]>(), any::<u16>()),
                0..10
            )),
            proptest::option::of(proptest::collection::vec(
                (id(), any::<[u8; 16]>(), any::<u16>()),
                0..10
            )),
            proptest::option::of(proptest::collection::vec(addr(), 0..20)),
            proptest::option::of(bytes(30)),
        )
            .prop_map(|(nodes, nodes6, values, token)| Spec::Response {
                nodes,
                nodes6,
                values,
                token
            }),
        (any::<i64>(), bytes(60)).prop_map(|(c, m)| Spec::Error(c, m)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// decode(encode(m)) == m for every message type.
    #[test]
    fn every_message_round_trips(
        spec in spec(),
        sender in id(),
        tid in proptest::collection::vec(any::<u8>(), 0..9),
        version in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..6)),
        ip in proptest::option::of(addr()),
        read_only in any::<bool>(),
    ) {
        let (mut nodes_buf, mut nodes6_buf, mut values_buf) = (Vec::new(), Vec::new(), Vec::new());
        let body = match &spec {
            Spec::Ping => Body::Query { sender: NodeId(sender), query: Query::Ping },
            Spec::FindNode(t, w) => Body::Query { sender: NodeId(sender), query: Query::FindNode { target: NodeId(*t), want: *w } },
            Spec::GetPeers(h, w) => Body::Query { sender: NodeId(sender), query: Query::GetPeers { info_hash: InfoHash(*h), want: *w, scrape: false, noseed: false } },
            Spec::Announce(h, port, implied_port, token) => Body::Query {
                sender: NodeId(sender),
                query: Query::AnnouncePeer { info_hash: InfoHash(*h), port: *port, implied_port: *implied_port, token, seed: false },
            },
            Spec::Unknown(m, t, h) => Body::Query {
                sender: NodeId(sender),
                query: Query::Unknown { method: m, target: t.map(NodeId), info_hash: h.map(InfoHash), want: None },
            },
            Spec::Response { nodes, nodes6, values, token } => {
                for (i, ip, port) in nodes.iter().flatten() {
                    encode_node(&NodeInfo { id: NodeId(*i), addr: (Ipv4Addr::from(*ip), *port).into() }, &mut nodes_buf);
                }
                for (i, ip, port) in nodes6.iter().flatten() {
                    encode_node(&NodeInfo { id: NodeId(*i), addr: (Ipv6Addr::from(*ip), *port).into() }, &mut nodes6_buf);
                }
                let values = values.as_ref().map(|v| CompactPeers::encode_list(v.iter().copied(), &mut values_buf));
                Body::Response(Response {
                    nodes: nodes.as_ref().map(|_| CompactNodes::v4(&nodes_buf).unwrap()),
                    nodes6: nodes6.as_ref().map(|_| CompactNodes::v6(&nodes6_buf).unwrap()),
                    values,
                    token: token.as_deref(),
                    ..Response::bare(NodeId(sender))
                })
            }
            Spec::Error(code, message) => Body::Error(KrpcError { code: ErrorCode::from_code(*code), message }),
        };
        let m = Message { transaction_id: &tid, version: version.as_deref(), requester_ip: ip, read_only, body };
        let bytes = m.to_bytes();
        let decoded = Message::decode(&bytes);
        prop_assert_eq!(decoded.as_ref(), Ok(&m));
        if let (Spec::Response { values: Some(v), .. }, Ok(Message { body: Body::Response(r), .. })) = (&spec, &decoded) {
            prop_assert_eq!(&r.values.unwrap().iter().collect::<Vec<_>>(), v);
        }
        // Canonical: encoding the decoded message gives the same bytes.
        prop_assert_eq!(decoded.unwrap().to_bytes(), bytes);
    }
}

/// A bencode value with sorted, unique keys, so that its encoding is canonical.
fn value() -> impl Strategy<Value = serde_bencode::value::Value> {
    use serde_bencode::value::Value as S;
    let leaf = prop_oneof![
        any::<i64>().prop_map(S::Int),
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(S::Bytes),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(S::List),
            proptest::collection::btree_map(
                proptest::collection::vec(any::<u8>(), 0..6),
                inner,
                0..6
            )
            .prop_map(|m| S::Dict(m.into_iter().collect())),
        ]
    })
}

/// Our tree and serde_bencode's tree describe the same value.
fn same(ours: &Value<'_>, theirs: &serde_bencode::value::Value) -> bool {
    use serde_bencode::value::Value as S;
    match (ours, theirs) {
        (Value::Int(a), S::Int(b)) => a == b,
        (Value::Bytes(a), S::Bytes(b)) => a == b,
        (Value::List(a), S::List(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        (Value::Dict(a), S::Dict(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(*k).is_some_and(|w| same(v, w)))
        }
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Differential: whatever serde_bencode encodes, we decode to the same
    /// value and re-encode to the same bytes.
    #[test]
    fn bencode_agrees_with_serde_bencode(v in value()) {
        let bytes = serde_bencode::to_bytes(&v).unwrap();
        let ours = Value::decode(&bytes, Limits::FILE).unwrap();
        prop_assert!(same(&ours, &v));
        let mut again = Vec::new();
        ours.encode(&mut again);
        prop_assert_eq!(again, bytes);
    }

    /// Differential on arbitrary bytes: whatever we accept, serde_bencode
    /// reads as the same value. (We are stricter: non-canonical integers
    /// and lengths are refused here, so the converse does not hold.)
    #[test]
    fn whatever_we_accept_serde_bencode_reads_alike(bytes in proptest::collection::vec(
        prop_oneof![Just(b'd'), Just(b'l'), Just(b'e'), Just(b'i'), Just(b':'), Just(b'-'), (b'0'..=b'9'), any::<u8>()], 0..40)) {
        if let Ok(ours) = Value::decode(&bytes, Limits::KRPC) {
            let theirs: serde_bencode::value::Value = serde_bencode::from_bytes(&bytes).unwrap();
            prop_assert!(same(&ours, &theirs));
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Responded(u16),
    Queried(u16),
    Failed(u16),
    Advance(u16),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(
        prop_oneof![
            4 => (0..400u16).prop_map(Op::Responded),
            1 => (0..400u16).prop_map(Op::Queried),
            2 => (0..400u16).prop_map(Op::Failed),
            1 => (0..1200u16).prop_map(Op::Advance),
        ],
        1..600,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Routing-table invariants (BEP 5): no bucket over k, but for nodes
    /// kept as among our k closest (Kademlia §4.2), and never over 2k;
    /// buckets tile the
    /// id space (each node sits in the bucket its distance names, the last
    /// bucket holding everything closer); `closest` equals a brute-force
    /// sort; our own id never appears; one node per IP per bucket.
    #[test]
    fn routing_table_invariants(own in id(), ids in proptest::collection::vec(id(), 400), ops in ops(), restrict in any::<bool>()) {
        let t0 = epoch();
        let mut now = t0;
        let own = NodeId(own);
        let cfg = RoutingConfig { restrict_ips: restrict, ..RoutingConfig::default() };
        let mut table = RoutingTable::new(own, t0, cfg);
        // 400 nodes on 100 addresses, so the per-IP rule has work to do.
        let info = |i: u16| NodeInfo { id: NodeId(ids[usize::from(i)]), addr: ([10, 0, 0, (i % 100) as u8], 6000 + i).into() };
        for op in ops {
            match op {
                Op::Responded(i) => { table.node_responded(now, info(i)); }
                Op::Queried(i) => { table.node_queried(now, &info(i), false); }
                Op::Failed(i) => { table.node_failed(now, &info(i).id, info(i).addr); }
                Op::Advance(s) => now += Duration::from_secs(u64::from(s)),
            }
        }
        let buckets = table.bucket_count();
        let mut all = Vec::new();
        for b in 0..buckets {
            let nodes = table.bucket_nodes(dhtd_protocol::id::BucketIndex(b as u8));
            prop_assert!(nodes.len() <= 2 * cfg.k);
            if nodes.len() > cfg.k {
                // Beyond k, a bucket holds nodes among our closest: the
                // bucket cannot split, so it is not the last one.
                prop_assert!(b + 1 < buckets);
            }
            let mut ips = BTreeSet::new();
            for n in &nodes {
                prop_assert_ne!(n.id, own);
                let shared = own.distance(&n.id).leading_zeros() as usize;
                if b + 1 < buckets { prop_assert_eq!(shared, b); } else { prop_assert!(shared >= b); }
                prop_assert!(!restrict || ips.insert(n.addr.ip()), "two nodes at one IP in bucket {}", b);
            }
            all.extend(nodes);
        }
        prop_assert_eq!(all.len(), table.len());
        for filter in [NodeFilter::Good, NodeFilter::NotBad, NodeFilter::Reached] {
            let target = NodeId(ids[0]);
            let got = table.closest(now, &target, 8, filter);
            let mut expected: Vec<NodeInfo> = all.iter().copied().filter(|n| {
                let status = table.status(now, &n.id).unwrap();
                match filter {
                    NodeFilter::Good => status == dhtd_protocol::routing::NodeStatus::Good,
                    NodeFilter::NotBad => status != dhtd_protocol::routing::NodeStatus::Bad,
                    // Every node here answered without having queried us.
                    NodeFilter::Reached => status != dhtd_protocol::routing::NodeStatus::Bad,
                }
            }).collect();
            expected.sort_by_key(|n| target.distance(&n.id));
            expected.truncate(8);
            prop_assert_eq!(got, expected);
        }
    }
}

/// A static network in which every node knows every other: each answers
/// `find_node` with its true k closest to the target.
struct StaticNet {
    nodes: Vec<NodeInfo>,
}

impl StaticNet {
    fn closest(&self, target: &NodeId, k: usize) -> Vec<NodeInfo> {
        let mut v = self.nodes.clone();
        v.sort_by_key(|n| target.distance(&n.id));
        v.truncate(k);
        v
    }

    /// What a node with a partial view answers: the k closest among the
    /// nodes it knows (every `stride`-th node, plus its neighbours).
    fn partial_closest(
        &self,
        who: usize,
        stride: usize,
        target: &NodeId,
        k: usize,
    ) -> Vec<NodeInfo> {
        let mut v: Vec<NodeInfo> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| (i + who) % stride == 0 || i.abs_diff(who) < 3)
            .map(|(_, n)| *n)
            .collect();
        v.sort_by_key(|n| target.distance(&n.id));
        v.truncate(k);
        v
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// A lookup always finishes, never has more than α queries in flight
    /// (unless aggressive), never sends more than its budget,
    /// never queries a node twice, returns its results sorted by distance,
    /// and in a static network with no failures returns the true k closest.
    #[test]
    fn lookup_termination_parallelism_and_correctness(
        ids in proptest::collection::vec(id(), 20..200),
        target in id(),
        seed_count in 1usize..10,
        drop_every in prop_oneof![Just(0usize), 2usize..9],
        stride in 1usize..6,
        aggressive in any::<bool>(),
    ) {
        let t0 = epoch();
        let ids: BTreeSet<[u8; 20]> = ids.into_iter().collect();
        let net = StaticNet {
            nodes: ids.iter().enumerate().map(|(i, id)| NodeInfo { id: NodeId(*id), addr: ([10, (i >> 8) as u8, i as u8, 1], 1).into() }).collect(),
        };
        let index = |id: &NodeId| net.nodes.iter().position(|n| n.id == *id).unwrap();
        let target = NodeId(target);
        let seeds: Vec<NodeInfo> = net.nodes.iter().take(seed_count).copied().collect();
        let cfg = LookupConfig { aggressive, ..LookupConfig::default() };
        // Aggressive lookups keep α in flight among the closest, and more
        // to the nodes those superseded.
        let most_in_flight = if aggressive { cfg.max_queries } else { cfg.alpha };
        let mut lookup = Lookup::new(t0, target, LookupKind::FindNode, None, seeds, cfg);
        let mut queried = BTreeSet::new();
        let mut in_flight: Vec<NodeInfo> = Vec::new();
        let mut now = t0;
        let mut sent = 0usize;
        let mut steps = 0;
        loop {
            steps += 1;
            prop_assert!(steps < 10_000, "lookup did not finish");
            match lookup.poll(now) {
                LookupStep::Query(n) => {
                    prop_assert!(queried.insert(n.id), "queried {:?} twice", n.id);
                    in_flight.push(n);
                    sent += 1;
                    prop_assert!(lookup.in_flight() <= most_in_flight);
                    prop_assert!(sent <= cfg.max_queries);
                }
                LookupStep::Finished => break,
                LookupStep::AtCapacity | LookupStep::Waiting => {
                    prop_assert!(lookup.in_flight() <= most_in_flight);
                    // Answer the oldest query in flight, or drop it.
                    if in_flight.is_empty() {
                        now = lookup.poll_timeout().unwrap();
                        continue;
                    }
                    let n = in_flight.remove(0);
                    if drop_every > 0 && sent % drop_every == 0 {
                        // Silent: let the query time out.
                        now += cfg.query_timeout;
                    } else {
                        let answer = if drop_every == 0 {
                            net.closest(&target, 8)
                        } else {
                            net.partial_closest(index(&n.id), stride, &target, 8)
                        };
                        lookup.on_response(&n.id, &n.id, answer, [], None);
                    }
                }
            }
        }
        let outcome = lookup.outcome();
        let found: Vec<NodeId> = outcome.closest.iter().map(|(n, _)| n.id).collect();
        let mut sorted = found.clone();
        sorted.sort_by_key(|id| target.distance(id));
        prop_assert_eq!(&found, &sorted);
        prop_assert!(outcome.queries <= cfg.max_queries);
        if drop_every == 0 {
            let truth: Vec<NodeId> = net.closest(&target, 8).iter().map(|n| n.id).collect();
            prop_assert_eq!(found, truth);
        }
    }
}
