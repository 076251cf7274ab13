//! The node that ships, in simulated 200-node networks where a share of
//! the nodes is hostile: Sybils that answer every lookup with made-up ids
//! close to the target (pointing at themselves), Sybils that also answer
//! under those ids, and contacts handed out but dead. The targets:
//! with 10% and 20% of them, at least 90% of announces reach at least 6 of
//! the true 8 closest honest nodes, and lookups take at most twice as long
//! as in the clean network.

// Test helpers, not only #[test] fns, may panic on a broken fixture.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use dhtd_protocol::sim::{run_hostile_experiment, Hostile, HostileReport, SimConfig};

#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

const ANNOUNCES: usize = 40;

fn run(hostile: Hostile) -> HostileReport {
    let config = SimConfig {
        nodes: 200,
        seed: 14,
        maintenance_rounds: 0,
        ..SimConfig::default()
    };
    let report = run_hostile_experiment(
        epoch(),
        &config,
        hostile,
        Duration::from_secs(60),
        ANNOUNCES,
    );
    println!("{hostile:?}: {report}");
    report
}

fn holds_against(hostile: Hostile, clean: &HostileReport) {
    let report = run(hostile);
    assert_eq!(report.reached.len(), ANNOUNCES);
    assert!(report.share_reaching(6) >= 0.9, "{hostile:?}: {report}");
    assert!(
        report.median_duration() <= 2 * clean.median_duration(),
        "{hostile:?}: {report}; clean: {clean}"
    );
}

#[test]
fn announces_reach_the_true_closest_despite_sybils_and_dead_contacts() {
    let clean = run(Hostile::None);
    assert!(clean.share_reaching(7) >= 0.95, "{clean}");
    for share in [0.1, 0.2] {
        holds_against(Hostile::Sybils(share), &clean);
        holds_against(Hostile::EchoingSybils(share), &clean);
        holds_against(Hostile::Dead(share), &clean);
    }
}
