//! The deterministic simulation (virtual time, seeded loss) of whole
//! networks of the node that ships: its pieces, driven as the actors drive
//! them, on a simulated network.

// Test helpers, not only #[test] fns, may panic on a broken fixture.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use dhtd_protocol::lookup::LookupKind;
use dhtd_protocol::sim::{run_lookup_experiment, sample_indices, SimConfig, Simulation};
use dhtd_protocol::NodeId;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

/// 1,000 nodes join; 400 random lookups with 5% datagram loss find the true
/// 8 closest nodes in at least 99% of cases (Kademlia §2.3: a lookup
/// returns the k closest nodes to the target). The misses are a true
/// closest node whose answers were lost (it is in every other closest
/// node's table). One seed's 400 lookups measure that rate to within a
/// point and a half (98.2 to 99.8% over eight seeds; 99.2% pooled, with
/// Kademlia's α = 3 as with libtorrent's five at the top), so eight seeds
/// are pooled: two seeds' 800 lookups put the bar within two misses of
/// the mean, and any change to the join's timing moved them across it.
#[test]
fn a_thousand_nodes_with_five_percent_loss() {
    let (mut exact, mut lookups) = (0, 0);
    for seed in 1..=8 {
        let config = SimConfig {
            nodes: 1000,
            seed,
            ..SimConfig::default()
        };
        let report = run_lookup_experiment(epoch(), config, 400);
        println!("{report}");
        assert_eq!(report.joined, 1000);
        // Kademlia lookups take O(log n) hops: log2(1000/8) is about 7.
        assert!(
            report.hops.iter().all(|&h| (1..=7).contains(&h)),
            "{report}"
        );
        assert!(report.queries.iter().all(|&q| q <= 60), "{report}");
        exact += report.exact;
        lookups += report.lookups;
    }
    assert!(
        exact as f64 >= 0.99 * lookups as f64,
        "{exact} of {lookups} lookups found the true 8 closest"
    );
}

/// The same seed replays exactly: same traffic, same results.
#[test]
fn a_seed_replays_exactly() {
    let config = SimConfig {
        nodes: 200,
        seed: 42,
        ..SimConfig::default()
    };
    let a = run_lookup_experiment(epoch(), config.clone(), 20);
    let b = run_lookup_experiment(epoch(), config, 20);
    assert_eq!(a.join_traffic, b.join_traffic);
    assert_eq!(a.queries, b.queries);
    assert_eq!(a.hops, b.hops);
    assert_eq!(a.durations, b.durations);
}

/// Churn: a tenth of the nodes stop; after one round of upkeep the others
/// still find the true closest live nodes.
#[test]
fn lookups_survive_a_tenth_of_the_nodes_stopping() {
    let mut config = SimConfig {
        nodes: 400,
        seed: 7,
        maintenance_rounds: 0,
        ..SimConfig::default()
    };
    config.network.loss = 0.02;
    let mut sim = Simulation::join(&config, epoch());
    let mut rng = StdRng::seed_from_u64(3);
    let stopped = sample_indices(&mut rng, sim.len(), sim.len() / 10);
    for &i in &stopped {
        sim.set_online(i, false);
    }
    sim.run_for(config.node.routing.refresh_after + Duration::from_secs(5));
    let mut exact = 0;
    let lookups = 50;
    for _ in 0..lookups {
        let from = loop {
            let i = rng.random_range(0..sim.len());
            if !stopped.contains(&i) {
                break i;
            }
        };
        let target = NodeId::random(&mut rng);
        let outcome = sim
            .lookup(
                from,
                target,
                LookupKind::FindNode,
                None,
                Duration::from_secs(90),
            )
            .unwrap();
        let own = sim.node(from).id;
        let mut expected = sim.true_closest(&target, 9);
        expected.retain(|id| *id != own);
        expected.truncate(8);
        let found: Vec<NodeId> = outcome.closest.iter().map(|n| n.id).collect();
        exact += usize::from(found == expected);
        assert!(found
            .iter()
            .all(|id| !stopped.iter().any(|&s| sim.node(s).id == *id)));
    }
    println!("churn: {exact} of {lookups} lookups exact with 10% of nodes stopped");
    assert!(exact * 100 >= lookups * 96, "{exact}/{lookups}");
}
