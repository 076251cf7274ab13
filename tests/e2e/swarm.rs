//! A swarm of 200 real nodes: announce, then look up.

use std::time::Instant;

use dhtd::{InfoHash, PortChoice};
use dhtd_tests::{median_p90, start_swarm, Swarm};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const NODES: usize = 200;
const LOOKUPS: usize = 20;

/// Each node announces its own info hash on port 10000 + i; lookups from 20
/// random nodes for 20 random announced info hashes must find the announcer.
async fn announce_all(swarm: &Swarm, rng: &mut StdRng) -> Vec<InfoHash> {
    let hashes: Vec<InfoHash> = (0..swarm.nodes.len())
        .map(|_| InfoHash::random(rng))
        .collect();
    let mut tasks = Vec::new();
    for (i, node) in swarm.nodes.iter().enumerate() {
        let (node, ih) = (node.clone(), hashes[i]);
        tasks.push(tokio::spawn(async move {
            node.announce(ih, PortChoice::Port(10_000 + i as u16)).await
        }));
    }
    let mut accepted = Vec::new();
    for t in tasks {
        let report = t.await.unwrap().unwrap();
        accepted.push(report.accepted);
    }
    let none = accepted.iter().filter(|a| **a == 0).count();
    assert_eq!(none, 0, "{none} announces were accepted by no node");
    hashes
}

async fn look_up_sample(
    swarm: &Swarm,
    hashes: &[InfoHash],
    rng: &mut StdRng,
    live: impl Fn(usize) -> bool,
) {
    let mut times = Vec::new();
    let mut queries = Vec::new();
    let mut missed = Vec::new();
    let mut done = 0;
    while done < LOOKUPS {
        let from = rng.random_range(0..swarm.nodes.len());
        let target = rng.random_range(0..swarm.nodes.len());
        if from == target || !live(from) || !live(target) {
            continue;
        }
        done += 1;
        let announcer = swarm.nodes[target].local_addr();
        let expected = std::net::SocketAddr::new(announcer.ip(), 10_000 + target as u16);
        let started = Instant::now();
        let (peers, summary) = swarm.nodes[from].get_peers(hashes[target]).collect().await;
        times.push(started.elapsed());
        let summary = summary.expect("a summary");
        queries.push(summary.queries);
        if !peers.contains(&expected) {
            missed.push((from, target, peers, summary));
        }
    }
    let (t50, t90) = median_p90(&mut times).unwrap();
    let (q50, q90) = median_p90(&mut queries).unwrap();
    println!("{LOOKUPS} lookups: time median {t50:?} p90 {t90:?}; queries median {q50} p90 {q90}");
    assert!(
        missed.is_empty(),
        "lookups that missed the announcer: {missed:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_nodes_find_every_announcer() {
    let swarm = start_swarm(NODES, 7, |_, _| {}).await;
    let mut rng = StdRng::seed_from_u64(99);
    let hashes = announce_all(&swarm, &mut rng).await;
    look_up_sample(&swarm, &hashes, &mut rng, |_| true).await;
    // Every node learned its address from the `ip` key of the answers (BEP 42).
    for n in &swarm.nodes[..20] {
        let stats = n.stats().await.unwrap();
        assert_eq!(stats.external_ip, Some(n.local_addr().ip()));
        assert!(
            stats.bootstrap_complete && stats.nodes() >= 8,
            "{} nodes",
            stats.nodes()
        );
    }
    swarm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_succeed_with_a_tenth_of_the_nodes_stopped() {
    let swarm = start_swarm(NODES, 8, |_, _| {}).await;
    let mut rng = StdRng::seed_from_u64(100);
    let hashes = announce_all(&swarm, &mut rng).await;
    // Stop every tenth node midway, after the announces.
    let stopped = |i: usize| i % 10 == 5;
    for (i, n) in swarm.nodes.iter().enumerate() {
        if stopped(i) {
            n.shutdown().await;
        }
    }
    look_up_sample(&swarm, &hashes, &mut rng, |i| !stopped(i)).await;
    swarm.shutdown().await;
}
