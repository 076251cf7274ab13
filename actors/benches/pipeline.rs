//! The serving pipeline without sockets: queries handed to the rate
//! limiter in batches (as the receive loop does) goes through admission, decoding,
//! dispatch and the answering actor to a sender that counts and drops the
//! answer. All actors sit on one Arbiter, as in a node, wired as a node
//! wires them (the node's own pieces and `Links`), with a routing
//! table as full as on the real network. A slower hot path shows here
//! before the end-to-end benchmark.
//!
//! `cargo bench -p dhtd-actors --bench pipeline`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use dhtd_actors::mailboxes::mailboxes;
use dhtd_actors::socket::DatagramSender;
use dhtd_actors::{ApiSinks, Clock, In, RateLimiterActor, RoutingActor};
use dhtd_protocol::krpc::{Body, Message, Query};
use dhtd_protocol::node::bootstrap::Sources;
use dhtd_protocol::node::{Datagram, NodeConfig, Pieces, RateLimiterInput, RoutingInput};
use dhtd_protocol::rate_limit::Rate;
use dhtd_protocol::telemetry::Telemetry;
use dhtd_protocol::{InfoHash, NodeId, NodeInfo};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Starts the node's actors on an Arbiter of their own System thread, with
/// the node's own wiring and a sender that counts and drops.
fn pipeline() -> (Addr<RateLimiterActor>, Arc<Telemetry>) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let system = actix_rt::System::new();
        system.block_on(async move {
            let telemetry = Arc::new(Telemetry::default());
            let sender = DatagramSender::discarding(telemetry.clone());
            let own = NodeId([1; 20]);
            let mut config = NodeConfig::default();
            config.limits.queries_per_ip = Rate {
                per_second: 1e12,
                burst: 1e12,
            };
            config.limits.queries_per_prefix = config.limits.queries_per_ip;
            let clock = Clock::Real;
            let pieces = Pieces::new(
                clock.now(),
                own,
                &config,
                Sources::default(),
                &mut StdRng::seed_from_u64(1),
                telemetry.clone(),
            );
            let (addresses, mailboxes) = mailboxes(1 << 16);
            let links = addresses.links(ApiSinks::default(), Arc::new(|_| {}), telemetry.clone());
            // Every actor on this one Arbiter, as the serving path is in a node.
            for (_, start) in mailboxes.shells(pieces, &clock, &links, &sender, 1 << 16) {
                start();
            }
            let (limiter, routing) = (addresses.rate_limiter, addresses.routing);
            fill_table(&routing, own).await;
            tx.send((limiter, telemetry)).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

/// Fills the routing table as a node on the real network has it (about
/// 20 buckets), so that answers carry 8 nodes and finding them costs what
/// it costs there; waits for the snapshot the store answers from.
async fn fill_table(routing: &Addr<RoutingActor>, own: NodeId) {
    let mut rng = StdRng::seed_from_u64(4);
    for i in 0..20_000u32 {
        let id = if i % 2 == 0 {
            NodeId::random(&mut rng)
        } else {
            own.random_at_prefix(i % 20, false, &mut rng)
        };
        // Each on its own /24, as honest nodes on the Internet mostly are.
        let addr = SocketAddr::from(((0x0a00_0001u32 + (i << 8)).to_be_bytes(), 6881));
        routing.do_send(In(RoutingInput::Responded {
            info: NodeInfo { id, addr },
            heard: Vec::new(),
            rtt: None,
        }));
    }
    actix_rt::time::sleep(Duration::from_millis(300)).await;
}

/// Queries in flight at most.
const WINDOW: u64 = 256;

fn query(q: Query<'_>) -> Bytes {
    Bytes::from(
        Message {
            transaction_id: b"bnch",
            version: None,
            requester_ip: None,
            read_only: false,
            body: Body::Query {
                sender: NodeId([9; 20]),
                query: q,
            },
        }
        .to_bytes(),
    )
}

fn bench(c: &mut Criterion) {
    let (limiter, telemetry) = pipeline();
    let packets_sent = || telemetry.packets_out.total();
    let from: SocketAddr = "127.0.0.99:6881".parse().unwrap();
    let queries = [
        ("ping", query(Query::Ping)),
        (
            "find_node",
            query(Query::FindNode {
                target: NodeId([3; 20]),
                want: None,
            }),
        ),
        (
            "get_peers",
            query(Query::GetPeers {
                info_hash: InfoHash([4; 20]),
                want: None,
                scrape: false,
                noseed: false,
            }),
        ),
    ];
    let mut group = c.benchmark_group("pipeline");
    group.measurement_time(Duration::from_secs(3));
    // One datagram per wake-up of the receive loop (a quiet node) and 16 (a
    // busy one): the time is per query either way.
    for batch in [1u64, 16] {
        for (name, datagram) in &queries {
            group.bench_function(format!("{name}/batch {batch}"), |b| {
                b.iter_custom(|iters| {
                    let start = packets_sent();
                    let t = Instant::now();
                    let mut sent = 0;
                    while sent < iters {
                        // At most WINDOW queries waiting, as a socket's buffer
                        // would hold: beyond the mailboxes' capacity they would
                        // be dropped.
                        while start + sent - packets_sent().min(start + sent) > WINDOW {
                            std::hint::spin_loop();
                        }
                        let n = batch.min(iters - sent);
                        let datagrams = (0..n)
                            .map(|_| Datagram {
                                from,
                                bytes: datagram.clone(),
                            })
                            .collect();
                        limiter.do_send(In(RateLimiterInput::Datagrams(datagrams)));
                        sent += n;
                    }
                    // Every query answered (a stray ping to the querier at most adds one).
                    while packets_sent() < start + iters {
                        std::hint::spin_loop();
                    }
                    t.elapsed()
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
