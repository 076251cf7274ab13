//! A node on a hostile network, on loopback: floods from one address and
//! from a whole /24, junk, a transaction id made to be echoed, and Sybils
//! in a swarm. Every flood is paced and bounded, so that what is measured
//! is the node's admission, not the kernel's receive buffer.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use dhtd::{Dht, InfoHash, NodeId, PortChoice};
use dhtd_protocol::krpc::{Body, Message, Query, MAX_REPLY_LEN};
use dhtd_protocol::sim::sybil_reply;
use dhtd_tests::{node_ip, start_swarm, test_config, RawPeer};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

const DROPPED: &str = "dht_packets_dropped_total";

fn ping(tid: &[u8]) -> Vec<u8> {
    RawPeer::query(tid, NodeId([9; 20]), Query::Ping, false)
}

/// Sends `count` pings from `from` to `to`, `per_ms` each millisecond.
fn flood(from: IpAddr, to: SocketAddr, count: usize, per_ms: usize) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let peer = RawPeer::bind(from);
        let datagram = ping(b"fl");
        for i in 0..count {
            let _ = peer.socket.send_to(&datagram, to);
            if i % per_ms == per_ms - 1 {
                thread::sleep(Duration::from_millis(1));
            }
        }
    })
}

/// Pings `to` `count` times, one after another; how many were answered.
fn answered(peer: &RawPeer, to: SocketAddr, count: usize) -> usize {
    (0..count)
        .filter(|_| {
            thread::sleep(Duration::from_millis(20));
            peer.ask(to, &ping(b"ok")).is_some()
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_from_one_address_and_from_one_network_cost_others_no_answers() {
    let node = Dht::builder(test_config(node_ip(1600), &[]))
        .start()
        .unwrap();
    let to = node.local_addr();
    // One address: 8,000 pings at about 8,000/s, 400 times its budget.
    let one = flood(IpAddr::V4(Ipv4Addr::new(127, 201, 1, 1)), to, 8_000, 8);
    // One /24: 40 addresses, 40 pings each, each within its own budget;
    // together four times the network's burst.
    let network: Vec<_> = (1..=40u8)
        .map(|i| flood(IpAddr::V4(Ipv4Addr::new(127, 202, 2, i)), to, 40, 1))
        .collect();
    let ordinary = RawPeer::bind(node_ip(1601));
    let ordinary_answered = tokio::task::spawn_blocking(move || answered(&ordinary, to, 40))
        .await
        .unwrap();
    one.join().unwrap();
    for f in network {
        f.join().unwrap();
    }
    assert_eq!(ordinary_answered, 40, "the ordinary source lost answers");
    let dropped = node.stats().await.unwrap().traffic;
    let by_ip = dropped.get(DROPPED, &[("reason", "rate_limited")]);
    let by_network = dropped.get(DROPPED, &[("reason", "prefix_rate_limited")]);
    println!("dropped: {by_ip} over an address's budget, {by_network} over a network's");
    assert!(by_ip >= 7_000, "{by_ip}");
    assert!(by_network >= 1_000, "{by_network}");
    node.shutdown().await;
}

/// Junk of every kind from one address: random bytes, truncated and
/// mangled messages. Nothing is answered but what the protocol allows (203
/// to a malformed query), everything is counted, and the node still answers
/// others.
#[tokio::test]
async fn junk_is_counted_and_costs_others_nothing() {
    let mut config = test_config(node_ip(1602), &[]);
    config.dht.limits.queries_per_ip = dhtd_protocol::rate_limit::Rate {
        per_second: 1e6,
        burst: 1e6,
    };
    config.dht.limits.responses_per_ip = config.dht.limits.queries_per_ip;
    config.dht.limits.queries_per_prefix = config.dht.limits.queries_per_ip;
    let node = Dht::builder(config).start().unwrap();
    let to = node.local_addr();
    let junk_peer = RawPeer::bind(node_ip(1603));
    let valid = ping(b"jj");
    let mut rng = StdRng::seed_from_u64(5);
    let mut sent = 0u64;
    for i in 0..3_000usize {
        let datagram = match i % 3 {
            0 => {
                let mut bytes = vec![0u8; rng.random_range(1..1400)];
                rng.fill_bytes(&mut bytes);
                bytes
            }
            1 => valid[..rng.random_range(0..valid.len())].to_vec(),
            _ => {
                let mut bytes = valid.clone();
                let at = rng.random_range(0..bytes.len());
                bytes[at] = rng.random();
                bytes
            }
        };
        junk_peer.socket.send_to(&datagram, to).unwrap();
        sent += 1;
        if i % 50 == 49 {
            thread::sleep(Duration::from_millis(1));
        }
    }
    let ordinary = RawPeer::bind(node_ip(1604));
    assert!(ordinary.ask(to, &ping(b"ok")).is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = node.stats().await.unwrap().traffic;
    // Every datagram received is dropped for a reason, answered with an
    // error, or a query (the kernel may drop a few of a burst first).
    let received = t.get("dht_packets_received_total", &[]);
    let accounted = t.get(DROPPED, &[])
        + t.get("dht_errors_sent_total", &[])
        + t.get("dht_queries_received_total", &[]);
    assert!(received * 10 >= sent * 9, "{received} of {sent} received");
    assert!(
        accounted >= received,
        "{accounted} of {received} datagrams accounted for: {t:?}"
    );
    assert!(t.get(DROPPED, &[("reason", "decode_error")]) >= 1_000);
    node.shutdown().await;
}

/// A 60 KB transaction id gets no reply at all (it would be echoed); the
/// longest id answered gets a reply under 1,024 bytes.
#[tokio::test]
async fn a_long_transaction_id_is_not_echoed() {
    let node = Dht::builder(test_config(node_ip(1605), &[]))
        .start()
        .unwrap();
    let to = node.local_addr();
    let peer = RawPeer::bind(node_ip(1606));
    let long = vec![b'x'; 60_000];
    assert_eq!(peer.ask(to, &ping(&long)), None);
    let longest = [b'x'; dhtd_protocol::node::rate_limiter::gate::MAX_TRANSACTION_ID_LEN];
    let find = RawPeer::query(
        &longest,
        NodeId([9; 20]),
        Query::GetPeers {
            info_hash: InfoHash([1; 20]),
            want: None,
            scrape: false,
            noseed: false,
        },
        false,
    );
    let reply = peer.ask(to, &find).expect("an answer");
    assert!(reply.len() <= MAX_REPLY_LEN);
    let t = node.stats().await.unwrap().traffic;
    assert_eq!(t.get(DROPPED, &[("reason", "long_tid")]), 1);
    node.shutdown().await;
}

/// A Sybil on loopback, answering as the simulator's do ([`sybil_reply`]):
/// every find_node and get_peers under its own id with 8 made-up ids next
/// to the target, all at its own address, and a token; pings and announces
/// with a bare answer, so honest nodes keep it in their tables.
struct Sybil {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Sybil {
    fn start(ip: IpAddr, id: NodeId, introduce_to: Vec<SocketAddr>) -> Sybil {
        let peer = RawPeer::bind(ip);
        peer.socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = peer.socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = thread::spawn(move || {
            // Querying honest nodes makes them ping us back and take us in.
            for node in introduce_to {
                let _ = peer
                    .socket
                    .send_to(&RawPeer::query(b"in", id, Query::Ping, false), node);
            }
            let mut rng = StdRng::seed_from_u64(u64::from(id.0[0]));
            let mut buf = [0u8; 2048];
            while !stopped.load(Ordering::Relaxed) {
                let Ok((n, from)) = peer.socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = sybil_reply(&buf[..n], id, addr, from, false, &mut rng) {
                    let _ = peer.socket.send_to(&reply, from);
                }
            }
        });
        Sybil {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Sybil {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether `node` stores `peer` for `info_hash`, asked over the wire.
fn stores(asker: &RawPeer, node: SocketAddr, info_hash: InfoHash, peer: SocketAddr) -> bool {
    let q = RawPeer::query(
        b"gp",
        NodeId([3; 20]),
        Query::GetPeers {
            info_hash,
            want: None,
            scrape: false,
            noseed: false,
        },
        false,
    );
    let Some(reply) = asker.ask(node, &q) else {
        return false;
    };
    match Message::decode(&reply).map(|m| m.body) {
        Ok(Body::Response(r)) => r.values.iter().flat_map(|v| v.iter()).any(|p| p == peer),
        _ => false,
    }
}

/// 48 real nodes and 12 Sybils (20%) among them: announces still reach
/// the true closest honest nodes, as in the simulator (sim_hostile).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announces_reach_the_true_closest_in_a_swarm_with_sybils() {
    const HONEST: usize = 48;
    const ANNOUNCES: usize = 12;
    let swarm = start_swarm(HONEST, 21, |_, _| {}).await;
    let honest: Vec<SocketAddr> = swarm.nodes.iter().map(|n| n.local_addr()).collect();
    let mut rng = StdRng::seed_from_u64(21);
    let sybils: Vec<Sybil> = (0..12u8)
        .map(|i| {
            let ip = IpAddr::V4(Ipv4Addr::new(127, 203, i, 1));
            let introduce: Vec<SocketAddr> = (0..12)
                .map(|_| honest[rng.random_range(0..HONEST)])
                .collect();
            Sybil::start(ip, NodeId::random(&mut rng), introduce)
        })
        .collect();
    // Let the honest nodes ping the Sybils back and take them in.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let probe = RawPeer::bind(node_ip(1610));
    let known = honest
        .iter()
        .flat_map(|&n| probe.find_node(n, NodeId::random(&mut rng)))
        .filter(|a| sybils.iter().any(|s| s.addr == *a))
        .count();
    assert!(
        known > 0,
        "no honest node hands out a Sybil: the test tests nothing"
    );

    let mut reached = Vec::new();
    let started = Instant::now();
    for a in 0..ANNOUNCES {
        let from = rng.random_range(0..HONEST);
        let info_hash = InfoHash::random(&mut rng);
        let port = 20_000 + a as u16;
        let report = swarm.nodes[from]
            .announce(info_hash, PortChoice::Port(port))
            .await
            .unwrap();
        let peer = SocketAddr::new(honest[from].ip(), port);
        let mut truth: Vec<usize> = (0..HONEST).filter(|&i| i != from).collect();
        truth.sort_by_key(|&i| NodeId(info_hash.0).distance(&swarm.nodes[i].id()));
        truth.truncate(8);
        let probe = RawPeer::bind(node_ip(1611 + a));
        let hits = tokio::task::spawn_blocking({
            let truth: Vec<SocketAddr> = truth.iter().map(|&i| honest[i]).collect();
            move || {
                truth
                    .iter()
                    .filter(|&&n| stores(&probe, n, info_hash, peer))
                    .count()
            }
        })
        .await
        .unwrap();
        println!(
            "announce {a}: {} of {} accepted, confidence {}; {hits} of the true 8 store it",
            report.accepted,
            report.tried,
            report.confidence.as_str()
        );
        reached.push(hits);
    }
    println!("{ANNOUNCES} announces in {:?}", started.elapsed());
    // The target is 6 of 8 in 90% of announces; on loopback the
    // defences do better. A busy CI machine can still drop one store now
    // and then, so the stricter bar is on the sum, not on every announce.
    assert!(reached.iter().all(|&r| r >= 6), "reached: {reached:?}");
    let stored: usize = reached.iter().sum();
    assert!(stored * 10 >= ANNOUNCES * 8 * 9, "reached: {reached:?}");
    drop(sybils);
}
