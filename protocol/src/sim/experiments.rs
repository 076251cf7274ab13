//! Experiments on simulated networks: nodes join one by one through the
//! real bootstrap, then random lookups are checked against the true
//! closest nodes.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use super::driver::{sim_addr, NodeSpec, Simulation};
use super::network::{NetStats, NetworkConfig};
use crate::id::NodeId;
use crate::lookup::{LookupConfig, LookupKind};
use crate::node::bootstrap::Sources;
use crate::node::NodeConfig;
use crate::transactions::TransactionConfig;

/// Parameters of a lookup experiment.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Number of nodes.
    pub nodes: usize,
    /// Seed for every random choice (ids, loss, latency, transaction ids).
    pub seed: u64,
    /// The network's model.
    pub network: NetworkConfig,
    /// Every node's configuration.
    pub node: NodeConfig,
    /// Time between two nodes joining.
    pub join_interval: Duration,
    /// Rounds of routine upkeep (one per `routing.refresh_after`) between
    /// joining and the lookups.
    pub maintenance_rounds: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        let transactions = TransactionConfig {
            // At 5% loss a query and its reply both arrive 90% of the time;
            // three tries miss one node in 1,000, and with retransmissions
            // after measured round trips (about 330 ms here) a dead contact
            // costs 1.3 s. Four tries (the setting before retransmissions
            // followed round trips) made a dead contact cost 1.6 s, over
            // twice a clean lookup (sim_hostile), for no more exact lookups.
            timeout: Duration::from_millis(600),
            attempts: 3,
            max_pending: 4096,
        };
        let node = NodeConfig {
            transactions,
            lookup: LookupConfig {
                // Longer than every attempt of one query.
                query_timeout: transactions.timeout * u32::from(transactions.attempts)
                    + Duration::from_millis(200),
                ..LookupConfig::default()
            },
            ..NodeConfig::default()
        };
        SimConfig {
            nodes: 1000,
            seed: 1,
            network: NetworkConfig {
                loss: 0.05,
                ..NetworkConfig::default()
            },
            node,
            join_interval: Duration::from_millis(50),
            maintenance_rounds: 2,
        }
    }
}

/// Draws `n` distinct indices below `len`.
pub fn sample_indices(rng: &mut impl RngCore, len: usize, n: usize) -> Vec<usize> {
    let mut picked = BTreeSet::new();
    let mut out = Vec::new();
    while out.len() < n.min(len) {
        let i = (rng.next_u64() % len as u64) as usize;
        if picked.insert(i) {
            out.push(i);
        }
    }
    out
}

impl Simulation {
    /// Adds `config.nodes` nodes, one per `join_interval`, each with one
    /// random earlier node as its bootstrap node, and runs until every
    /// node has bootstrapped (or a minute after the last joined).
    pub fn join(config: &SimConfig, epoch: Instant) -> Simulation {
        let mut sim = Simulation::new(epoch, config.network.clone(), config.seed);
        let mut rng = StdRng::seed_from_u64(config.seed ^ 0x6a6f_696e);
        for i in 0..config.nodes {
            let mut sources = Sources::default();
            if i > 0 {
                sources
                    .nodes
                    .push(sim_addr(rng.random_range(0..i)).to_string());
            }
            sim.add_node(NodeSpec {
                addr: sim_addr(i),
                id: None,
                seed: None,
                config: config.node.clone(),
                sources,
            });
            sim.run_for(config.join_interval);
        }
        let until = sim.now() + Duration::from_secs(60);
        sim.run_until(until, |s| (0..s.len()).all(|i| s.is_bootstrapped(i)));
        sim
    }
}

/// The result of [`run_lookup_experiment`].
#[derive(Debug, Clone)]
pub struct LookupReport {
    /// Nodes in the network.
    pub nodes: usize,
    /// Datagram loss rate.
    pub loss: f64,
    /// Nodes that completed bootstrap.
    pub joined: usize,
    /// Traffic of the joining phase.
    pub join_traffic: NetStats,
    /// Lookups run.
    pub lookups: usize,
    /// Lookups whose result was exactly the true k closest nodes.
    pub exact: usize,
    /// Hops to the closest responder, per lookup.
    pub hops: Vec<u32>,
    /// Queries sent, per lookup.
    pub queries: Vec<usize>,
    /// Virtual time per lookup.
    pub durations: Vec<Duration>,
}

impl LookupReport {
    /// Fraction of lookups that found the true k closest.
    pub fn success_rate(&self) -> f64 {
        self.exact as f64 / self.lookups.max(1) as f64
    }
}

pub(crate) fn percentile<T: Copy + Ord>(values: &[T], p: f64) -> Option<T> {
    let mut v = values.to_vec();
    v.sort_unstable();
    let idx = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(idx).copied()
}

impl std::fmt::Display for LookupReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let hops: Vec<f64> = self.hops.iter().map(|&h| f64::from(h)).collect();
        let queries: Vec<f64> = self.queries.iter().map(|&q| q as f64).collect();
        writeln!(
            f,
            "simulated DHT: {} nodes, {:.0}% loss, {} joined; join traffic {} datagrams ({} lost)",
            self.nodes,
            self.loss * 100.0,
            self.joined,
            self.join_traffic.sent,
            self.join_traffic.lost
        )?;
        writeln!(
            f,
            "lookups: {} of {} found the true {} closest ({:.1}%)",
            self.exact,
            self.lookups,
            crate::K,
            self.success_rate() * 100.0
        )?;
        writeln!(
            f,
            "hops per lookup: mean {:.2}, median {}, max {}",
            mean(&hops),
            percentile(&self.hops, 0.5).unwrap_or(0),
            self.hops.iter().max().copied().unwrap_or(0)
        )?;
        writeln!(
            f,
            "queries per lookup: mean {:.1}, median {}, p90 {}, max {}",
            mean(&queries),
            percentile(&self.queries, 0.5).unwrap_or(0),
            percentile(&self.queries, 0.9).unwrap_or(0),
            self.queries.iter().max().copied().unwrap_or(0)
        )?;
        write!(
            f,
            "virtual time per lookup: median {:?}, p90 {:?}",
            percentile(&self.durations, 0.5).unwrap_or_default(),
            percentile(&self.durations, 0.9).unwrap_or_default()
        )
    }
}

/// Joins `config.nodes` nodes, lets `maintenance_rounds` rounds of routine
/// upkeep run, then runs `lookups` lookups of random targets from random
/// nodes and compares each result with the true k closest (the querying
/// node itself excluded, as a lookup never returns it).
pub fn run_lookup_experiment(epoch: Instant, config: SimConfig, lookups: usize) -> LookupReport {
    let mut sim = Simulation::join(&config, epoch);
    let join_traffic = sim.net_stats();
    for _ in 0..config.maintenance_rounds {
        sim.run_for(config.node.routing.refresh_after + Duration::from_secs(5));
    }
    let joined = (0..sim.len()).filter(|&i| sim.is_bootstrapped(i)).count();
    let mut rng = StdRng::seed_from_u64(config.seed ^ 0x5eed_5eed);
    let mut report = LookupReport {
        nodes: sim.len(),
        loss: config.network.loss,
        joined,
        join_traffic,
        lookups,
        exact: 0,
        hops: Vec::new(),
        queries: Vec::new(),
        durations: Vec::new(),
    };
    let k = config.node.lookup.k;
    for _ in 0..lookups {
        let from = rng.random_range(0..sim.len());
        let target = NodeId::random(&mut rng);
        let started = sim.now();
        let limit = config.node.lookup.max_duration + Duration::from_secs(1);
        let Some(outcome) = sim.lookup(from, target, LookupKind::FindNode, None, limit) else {
            continue;
        };
        report.durations.push(sim.now() - started);
        let own = sim.node(from).id;
        let mut expected = sim.true_closest(&target, k + 1);
        expected.retain(|id| *id != own);
        expected.truncate(k);
        let found: Vec<NodeId> = outcome.closest.iter().map(|n| n.id).collect();
        if found == expected {
            report.exact += 1;
        }
        report.hops.push(outcome.hops);
        report.queries.push(outcome.queries);
    }
    report
}
