//! The serving pipeline without sockets: queries handed to the rate
//! limiter in batches (as the receive loop does) goes through admission, decoding,
//! dispatch and the answering actor to a sender that counts and drops the
//! answer. All actors sit on one Arbiter, as in a node, with a routing
//! table as full as on the real network. A slower hot path shows here
//! before the end-to-end benchmark.
//!
//! `cargo bench -p dhtd-actors --bench pipeline`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::dev::channel::channel;
use actix::{Actor, Addr, Context};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use dhtd_actors::announce::AnnounceActor;
use dhtd_actors::counters::Counters;
use dhtd_actors::lookups::{LookupLimits, LookupsActor};
use dhtd_actors::messages::{DatagramReceived, DatagramsReceived, NodeResponded};
use dhtd_actors::rate_limiter::{RateLimiterActor, RateLimiterLinks, RateLimits};
use dhtd_actors::routing::{RoutingActor, RoutingLinks};
use dhtd_actors::socket::DatagramSender;
use dhtd_actors::transactions::{TransactionLinks, TransactionsActor};
use dhtd_protocol::krpc::{Body, Message, Query};
use dhtd_protocol::rate_limit::Rate;
use dhtd_protocol::{InfoHash, NodeId, NodeInfo};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn mailbox<A: Actor<Context = Context<A>>>() -> (Addr<A>, actix::dev::channel::AddressReceiver<A>) {
    let (tx, rx) = channel::<A>(1 << 16);
    (Addr::new(tx), rx)
}

/// Starts the serving actors on an Arbiter of their own System thread.
fn pipeline() -> (Addr<RateLimiterActor>, Arc<Counters>) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let system = actix_rt::System::new();
        system.block_on(async move {
            let counters = Arc::new(Counters::default());
            let sender = DatagramSender::discarding(counters.clone());
            let own = NodeId([1; 20]);
            let (limiter, limiter_rx) = mailbox::<RateLimiterActor>();
            let (routing, routing_rx) = mailbox::<RoutingActor>();
            let (announce, announce_rx) = mailbox::<AnnounceActor>();
            let (transactions, tx_rx) = mailbox::<TransactionsActor>();
            let (lookups, lookups_rx) = mailbox::<LookupsActor>();
            let limits = RateLimits {
                queries_per_ip: Rate {
                    per_second: 1e12,
                    burst: 1e12,
                },
                ..RateLimits::default()
            };
            let links = RateLimiterLinks {
                routing: routing.clone(),
                announce: announce.clone(),
                responses: transactions.clone().recipient(),
                transactions: transactions.clone().recipient(),
            };
            let rl = RateLimiterActor::new(
                limits,
                false,
                links,
                sender.clone(),
                counters.clone(),
                1 << 16,
            );
            let rt = RoutingActor::new(
                own,
                Default::default(),
                StdRng::seed_from_u64(1),
                RoutingLinks {
                    outbound: limiter.clone().recipient(),
                    lookups: lookups.clone(),
                    snapshot: announce.clone().recipient(),
                },
                sender.clone(),
                counters.clone(),
            );
            let an = AnnounceActor::new(
                own,
                Default::default(),
                Default::default(),
                StdRng::seed_from_u64(2),
                sender.clone(),
                routing.clone().recipient(),
                counters.clone(),
            );
            let tr = TransactionsActor::new(
                Default::default(),
                own,
                false,
                StdRng::seed_from_u64(3),
                sender.clone(),
                TransactionLinks {
                    responded: routing.clone().recipient(),
                    failed: routing.clone().recipient(),
                    external_address: None,
                },
                counters.clone(),
            );
            let lk = LookupsActor::new(
                own,
                Default::default(),
                LookupLimits::default(),
                limiter.clone().recipient(),
                counters.clone(),
            );
            Context::with_receiver(limiter_rx).run(rl);
            Context::with_receiver(routing_rx).run(rt);
            Context::with_receiver(announce_rx).run(an);
            Context::with_receiver(tx_rx).run(tr);
            Context::with_receiver(lookups_rx).run(lk);
            fill_table(&routing, own).await;
            tx.send((limiter, counters)).unwrap();
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
        let addr = SocketAddr::from(((0x0a00_0000u32 + i).to_be_bytes(), 6881));
        routing.do_send(NodeResponded {
            info: NodeInfo { id, addr },
            heard: Vec::new(),
        });
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
    let (limiter, counters) = pipeline();
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
                    let start = counters.packets_sent();
                    let t = Instant::now();
                    let mut sent = 0;
                    while sent < iters {
                        // At most WINDOW queries waiting, as a socket's buffer
                        // would hold: beyond the mailboxes' capacity they would
                        // be dropped.
                        while start + sent - counters.packets_sent().min(start + sent) > WINDOW {
                            std::hint::spin_loop();
                        }
                        let n = batch.min(iters - sent);
                        let datagrams = (0..n)
                            .map(|_| DatagramReceived {
                                from,
                                bytes: datagram.clone(),
                            })
                            .collect();
                        limiter.do_send(DatagramsReceived(datagrams));
                        sent += n;
                    }
                    // Every query answered (a stray ping to the querier at most adds one).
                    while counters.packets_sent() < start + iters {
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
