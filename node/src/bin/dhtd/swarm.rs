//! `dhtd swarm`: a local DHT of dhtd nodes on loopback in one process:
//! bootstrap, announce, look up, report; metrics and stats served meanwhile.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dhtd::swarm::LocalSwarm;
use dhtd::{InfoHash, PortChoice};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{control, run, Failure};

/// Lookups in one round (at most one per node).
const LOOKUPS: usize = 50;
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(120);

fn percentile<T: Copy + Ord>(values: &mut [T], p: f64) -> Option<T> {
    values.sort_unstable();
    values
        .get(((values.len().max(1) - 1) as f64 * p).round() as usize)
        .copied()
}

pub(crate) async fn swarm(
    n: usize,
    duration: Option<Duration>,
    metrics_listen: &str,
    seed: u64,
) -> Result<(), Failure> {
    let signals = run::Signals::install();
    if n < 2 {
        return Err(Failure::Usage(
            "--nodes: a swarm needs at least 2 nodes".into(),
        ));
    }
    let listener = if metrics_listen.eq_ignore_ascii_case("off") {
        None
    } else {
        let addr: SocketAddr = metrics_listen.parse().map_err(|_| {
            Failure::Usage(format!(
                "--metrics-listen: `{metrics_listen}` is not IP:PORT or `off`"
            ))
        })?;
        Some((addr, control::bind(addr).await?, control::exporter()?))
    };
    let started = Instant::now();
    let swarm = LocalSwarm::start(n, seed, |_, _| {}).await?;
    println!(
        "started {n} dhtd nodes on {} … {}",
        swarm.nodes[0].local_addr(),
        swarm.nodes[n - 1].local_addr()
    );
    if let Some((addr, listener, exporter)) = listener {
        // A local swarm's listener is for the operator's own machine.
        control::spawn(listener, swarm.nodes.clone(), exporter, false, None);
        println!("metrics of the swarm on http://{addr}/metrics, statistics of node 0 on http://{addr}/stats");
    }

    // Bootstrap, with progress.
    loop {
        let behind = swarm.wait_bootstrapped(Duration::from_secs(1)).await;
        println!("bootstrap: {} of {n} nodes complete", n - behind);
        if behind == 0 {
            break;
        }
        if started.elapsed() > BOOTSTRAP_TIMEOUT {
            swarm.shutdown().await;
            return Err(Failure::Failed(format!(
                "{behind} nodes did not bootstrap within {BOOTSTRAP_TIMEOUT:?}"
            )));
        }
    }
    if let Ok(s) = swarm.nodes[n - 1].stats().await {
        println!(
            "bootstrap complete in {:.1?}: the last node knows {} nodes in {} buckets, about {} in the DHT",
            started.elapsed(),
            s.nodes(),
            s.routing.buckets.len(),
            s.estimated_dht_size.unwrap_or(0)
        );
    }

    // Every node announces an info hash of its own.
    let mut rng = StdRng::seed_from_u64(seed);
    let hashes: Vec<InfoHash> = (0..n).map(|_| InfoHash::random(&mut rng)).collect();
    let announcing = Instant::now();
    let mut tasks = Vec::new();
    for (i, node) in swarm.nodes.iter().enumerate() {
        let (node, ih) = (node.clone(), hashes[i]);
        tasks.push(tokio::spawn(async move {
            node.announce(ih, PortChoice::Port(10_000 + i as u16)).await
        }));
    }
    let mut unaccepted = 0;
    for t in tasks {
        if !matches!(t.await, Ok(Ok(r)) if r.accepted > 0) {
            unaccepted += 1;
        }
    }
    println!(
        "announce: {} of {n} info hashes accepted by at least one node, in {:.1?}",
        n - unaccepted,
        announcing.elapsed()
    );

    // Lookups from random nodes for other nodes' info hashes.
    let lookups = LOOKUPS.min(n);
    let (mut times, mut queries, mut missed) = (Vec::new(), Vec::new(), 0);
    for l in 0..lookups {
        let from = rng.random_range(0..n);
        let target = (from + rng.random_range(1..n)) % n;
        let expected = SocketAddr::new(
            swarm.nodes[target].local_addr().ip(),
            10_000 + target as u16,
        );
        let (peers, summary) = swarm.nodes[from].get_peers(hashes[target]).collect().await;
        let summary = summary.unwrap_or_default();
        let found = peers.contains(&expected);
        missed += usize::from(!found);
        times.push(summary.duration);
        queries.push(summary.queries);
        println!(
            "lookup {:>2}: node {from} for node {target}'s info hash: {} in {:.1?}, {} queries, {} peers",
            l + 1,
            if found { "found" } else { "MISSED" },
            summary.duration,
            summary.queries,
            peers.len()
        );
    }
    let t50 = percentile(&mut times, 0.5).unwrap_or_default();
    let t90 = percentile(&mut times, 0.9).unwrap_or_default();
    let q50 = percentile(&mut queries, 0.5).unwrap_or_default();
    let q90 = percentile(&mut queries, 0.9).unwrap_or_default();
    println!(
        "summary: {n} nodes; {} of {lookups} lookups found the announcer; lookup time median {t50:.1?}, p90 {t90:.1?}; queries per lookup median {q50}, p90 {q90}",
        lookups - missed
    );

    if let Some(d) = duration {
        println!("serving for {d:?} (Ctrl-C to stop)");
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = signals.wait() => {}
        }
    }
    swarm.shutdown().await;
    if missed > 0 || unaccepted > 0 {
        return Err(Failure::Failed(format!(
            "{missed} lookups missed their announcer; {unaccepted} announces accepted by no node"
        )));
    }
    Ok(())
}
