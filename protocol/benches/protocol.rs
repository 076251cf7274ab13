//! `cargo bench -p dhtd-protocol`: the codec on the two messages a node
//! handles most, `closest()` on a full table, the peer store, tokens, and
//! the inbound path from many sources.
//! Targets on a 2-core machine: decode and encode ≤ 250 ns for both messages.

// A benchmark, not protocol logic: it reads the clock for its epoch.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use dhtd_protocol::compact::{encode_node, CompactNodes};
use dhtd_protocol::krpc::{Body, Message, Query, Response};
use dhtd_protocol::routing::{closest_among, NodeFilter, RoutingConfig, RoutingTable};
use dhtd_protocol::store::{PeerStore, PeerStoreConfig};
use dhtd_protocol::token::{TokenConfig, TokenSecrets};
use dhtd_protocol::{InfoHash, NodeId, NodeInfo};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn find_node() -> Vec<u8> {
    Message {
        transaction_id: b"aa\x01\x02",
        version: Some(b"LT\x02\x08"),
        requester_ip: None,
        read_only: false,
        body: Body::Query {
            sender: NodeId([1; 20]),
            query: Query::FindNode {
                target: NodeId([2; 20]),
                want: None,
            },
        },
    }
    .to_bytes()
}

fn codec(c: &mut Criterion) {
    let query = find_node();
    let mut nodes = Vec::new();
    for i in 0..8u8 {
        let n = NodeInfo {
            id: NodeId([i; 20]),
            addr: ([10, 0, 0, i], 6881).into(),
        };
        encode_node(&n, &mut nodes);
    }
    let response = Message {
        transaction_id: b"tx12",
        version: Some(b"DH\x00\x01"),
        requester_ip: Some("192.0.2.7:6881".parse().unwrap()),
        read_only: false,
        body: Body::Response(Response {
            nodes: Some(CompactNodes::v4(&nodes).unwrap()),
            token: Some(b"01234567"),
            ..Response::bare(NodeId([3; 20]))
        }),
    }
    .to_bytes();

    c.bench_function("decode find_node query", |b| {
        b.iter(|| Message::decode(black_box(&query)).is_ok())
    });
    c.bench_function("decode get_peers response (8 nodes, token)", |b| {
        b.iter(|| Message::decode(black_box(&response)).is_ok())
    });
    let q = Message::decode(&query).unwrap();
    let r = Message::decode(&response).unwrap();
    let mut out = Vec::with_capacity(512);
    c.bench_function("encode find_node query", |b| {
        b.iter(|| {
            out.clear();
            black_box(&q).encode(&mut out);
            out.len()
        })
    });
    c.bench_function("encode get_peers response (8 nodes, token)", |b| {
        b.iter(|| {
            out.clear();
            black_box(&r).encode(&mut out);
            out.len()
        })
    });
}

/// The gate's classifier, which picks a datagram's budget before decoding:
/// against the byte scan for `1:y1:` it replaced (which a value holding
/// `1:y1:r` could fool), on the two messages a node handles most.
fn classify(c: &mut Criterion) {
    use dhtd_protocol::node::rate_limiter::gate::looks_like_query;
    fn byte_scan(datagram: &[u8]) -> bool {
        datagram
            .windows(6)
            .rev()
            .find(|w| w.starts_with(b"1:y1:"))
            .is_some_and(|w| w[5] == b'q')
    }
    let query = find_node();
    let mut nodes = Vec::new();
    for i in 0..8u8 {
        let info = NodeInfo {
            id: NodeId([i; 20]),
            addr: SocketAddr::from(([10, 0, i, 1], 6881)),
        };
        encode_node(&info, &mut nodes);
    }
    let response = Message {
        transaction_id: b"aa",
        version: Some(b"LT\x01\x02"),
        requester_ip: Some("192.0.2.1:6881".parse().unwrap()),
        read_only: false,
        body: Body::Response(Response {
            nodes: Some(CompactNodes::v4(&nodes).unwrap()),
            token: Some(b"0123456789abcdef0123"),
            ..Response::bare(NodeId([1; 20]))
        }),
    }
    .to_bytes();
    for (name, datagram) in [
        ("find_node query", &query),
        ("get_peers response", &response),
    ] {
        c.bench_function(&format!("classify {name}: top-level y"), |b| {
            b.iter(|| looks_like_query(black_box(datagram)))
        });
        c.bench_function(&format!("classify {name}: byte scan (before)"), |b| {
            b.iter(|| byte_scan(black_box(datagram)))
        });
    }
}

fn routing(c: &mut Criterion) {
    let now = Instant::now();
    let mut rng = StdRng::seed_from_u64(1);
    let own = NodeId::random(&mut rng);
    let mut table = RoutingTable::new(own, now, RoutingConfig::default());
    // Feed nodes until the table stops growing: a full table for a
    // network of a million nodes has about 17 buckets.
    for i in 0..200_000u32 {
        let id = if i % 2 == 0 {
            NodeId::random(&mut rng)
        } else {
            own.random_at_prefix(i % 20, false, &mut rng)
        };
        let addr = SocketAddr::from(((0x0a00_0000u32 + i).to_be_bytes(), 6881));
        table.node_responded(now, NodeInfo { id, addr });
    }
    // Random targets, as other nodes' find_node and get_peers ask.
    let targets: Vec<NodeId> = (0..64).map(|_| NodeId::random(&mut rng)).collect();
    let shape = format!("{} nodes, {} buckets", table.len(), table.bucket_count());
    let mut i = 0;
    c.bench_function(&format!("closest(8) on a full table ({shape})"), |b| {
        b.iter(|| {
            i = (i + 1) % targets.len();
            table.closest(now, &targets[i], 8, NodeFilter::NotBad).len()
        })
    });
    let snapshot = table.snapshot(now, NodeFilter::NotBad);
    c.bench_function(&format!("closest(8) from a snapshot ({shape})"), |b| {
        b.iter(|| {
            i = (i + 1) % targets.len();
            snapshot.closest(&targets[i], 8).len()
        })
    });
    // The full scan that bucket order replaced, for comparison.
    let nodes = table.nodes();
    c.bench_function(&format!("closest(8) by a full scan ({shape})"), |b| {
        b.iter(|| {
            i = (i + 1) % targets.len();
            closest_among(nodes.iter().copied(), &targets[i], 8).len()
        })
    });
}

fn store(c: &mut Criterion) {
    let now = Instant::now();
    let mut rng = StdRng::seed_from_u64(2);
    let mut store = PeerStore::new(
        now,
        NodeId([0; 20]),
        PeerStoreConfig {
            max_info_hashes: 1_000_000,
            // Lifted: these measure the map, not the quotas.
            max_announces_per_ip: usize::MAX,
            max_announces_per_prefix: usize::MAX,
            ..Default::default()
        },
    );
    let hashes: Vec<InfoHash> = (0..10_000).map(|_| InfoHash::random(&mut rng)).collect();
    let mut n = 0u32;
    c.bench_function("peer store announce (10k info hashes)", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            let peer = SocketAddr::from(((0x0a00_0000u32 + n % 200).to_be_bytes(), 6881));
            store.announce(now, &mut rng, hashes[(n as usize) % hashes.len()], peer)
        })
    });
    let hot = hashes[0];
    for p in 0..300u32 {
        store.announce(
            now,
            &mut rng,
            hot,
            SocketAddr::from(((0x0b00_0000u32 + p).to_be_bytes(), 6881)),
        );
    }
    c.bench_function("peer store sample (300 peers, 1 KiB budget)", |b| {
        b.iter(|| store.sample(now, &mut rng, &hot, 800).len())
    });

    // A node under load holds many info hashes of a peer or two each; a
    // get_peers for one of them is a lookup in a large map.
    let mut big = PeerStore::new(
        now,
        NodeId([0; 20]),
        PeerStoreConfig {
            max_info_hashes: 1_000_000,
            // Lifted: these measure the map, not the quotas.
            max_announces_per_ip: usize::MAX,
            max_announces_per_prefix: usize::MAX,
            ..Default::default()
        },
    );
    let many: Vec<InfoHash> = (0..250_000).map(|_| InfoHash::random(&mut rng)).collect();
    for (i, h) in many.iter().enumerate() {
        big.announce(
            now,
            &mut rng,
            *h,
            SocketAddr::from(((i as u32).to_be_bytes(), 6881)),
        );
    }
    let mut i = 0usize;
    c.bench_function("peer store sample (250k info hashes, 1 peer each)", |b| {
        b.iter(|| {
            i = (i + 7919) % many.len();
            big.sample(now, &mut rng, &many[i], 800).len()
        })
    });
}

fn tokens(c: &mut Criterion) {
    let now = Instant::now();
    let mut rng = StdRng::seed_from_u64(3);
    let mut secrets = TokenSecrets::new(now, &mut rng, TokenConfig::default());
    let ip = "198.51.100.4".parse().unwrap();
    let token = secrets.issue(now, ip);
    let later = now + Duration::from_secs(1);
    c.bench_function("token issue", |b| {
        b.iter(|| secrets.issue(later, black_box(ip)))
    });
    c.bench_function("token check", |b| {
        b.iter(|| secrets.check(later, black_box(ip), black_box(&token)))
    });
}

/// The inbound path of a ping (admission, decode, answer, the querier's
/// report) from 10^3, 10^4 and 10^5 distinct sources in turn, at 10,000
/// queries per second of virtual time: the per-source memories must cost
/// the same per query however many sources there are.
fn sources(c: &mut Criterion) {
    use dhtd_protocol::node::rate_limiter::gate::Gate;
    use dhtd_protocol::node::responder::Responder;
    use dhtd_protocol::node::{Datagram, Envelope, NodeConfig, Outputs, Piece, StoreInput};
    use dhtd_protocol::telemetry::Telemetry;
    use std::sync::Arc;

    let ping =
        bytes::Bytes::from_static(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe");
    for n in [1_000u32, 10_000, 100_000] {
        let t0 = Instant::now();
        let config = NodeConfig::default();
        let telemetry = Arc::new(Telemetry::default());
        let mut gate = Gate::new(&config);
        let mut responder = Responder::new(
            t0,
            NodeId([1; 20]),
            &config,
            StdRng::seed_from_u64(4),
            telemetry.clone(),
        );
        let mut out = Outputs::default();
        let mut i = 0u32;
        c.bench_function(&format!("ping in, {n} sources"), |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                let now = t0 + Duration::from_micros(100 * u64::from(i));
                let from = SocketAddr::from(((0x0a00_0000 + i % n).to_be_bytes(), 6881));
                let batch = vec![Datagram {
                    from,
                    bytes: ping.clone(),
                }];
                gate.handle_datagrams(now, batch, &telemetry, &mut out);
                while let Some(e) = out.pop() {
                    if let Envelope::Store(StoreInput::Queries(q)) = e {
                        responder.handle(now, StoreInput::Queries(q));
                    }
                }
                out.outbox.clear();
                let replies = responder.outputs();
                replies.outbox.clear();
                while replies.pop().is_some() {}
            })
        });
    }
}

criterion_group!(benches, codec, classify, routing, store, tokens, sources);
criterion_main!(benches);
