//! Bootstrap in private networks, simulated with the node that ships.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use dhtd_protocol::node::bootstrap::Sources;
use dhtd_protocol::node::NodeConfig;
use dhtd_protocol::sim::{sim_addr, NetworkConfig, NodeSpec, Simulation};
use dhtd_protocol::{NodeId, K};

#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

/// Node `i` started with node `i - 1` as its router, 100 ms apart.
fn chain(n: usize, seed: u64) -> Simulation {
    let mut sim = Simulation::new(epoch(), NetworkConfig::default(), seed);
    for i in 0..n {
        start(&mut sim, i, i.checked_sub(1));
        sim.run_for(Duration::from_millis(100));
    }
    sim
}

/// Starts node `i` with the defaults, and node `router` as its router.
fn start(sim: &mut Simulation, i: usize, router: Option<usize>) {
    let mut sources = Sources::default();
    sources
        .routers
        .extend(router.map(|r| sim_addr(r).to_string()));
    sim.add_node(NodeSpec {
        addr: sim_addr(i),
        id: None,
        seed: None,
        config: NodeConfig::default(),
        sources,
    });
}

/// The ids of the k nodes closest to node `i`, others only.
fn closest_others(sim: &Simulation, i: usize) -> Vec<NodeId> {
    let own = sim.node(i).id;
    let mut ids = sim.true_closest(&own, K + 1);
    ids.retain(|id| *id != own);
    ids.truncate(K);
    ids
}

fn knows_its_closest(sim: &Simulation, i: usize) -> bool {
    let table: Vec<NodeId> = sim.table(i).iter().map(|n| n.id).collect();
    closest_others(sim, i).iter().all(|id| table.contains(id))
}

/// The bug: three daemons, each with the one before as its router; the
/// second knew only the third, the third only the first, and both said
/// "bootstrap complete: 0 nodes". In chains of 3, 10 and 50, every node
/// comes to know its k closest (all the others, in the small ones) within
/// seconds, and no node completes bootstrap with an empty table.
#[test]
fn nodes_started_in_a_chain_of_routers_find_each_other() {
    for (n, seed) in [(3, 1), (10, 2), (50, 3)] {
        let mut sim = chain(n, seed);
        let until = sim.now() + Duration::from_secs(20);
        let done = sim.run_until(until, |s| {
            (0..n).all(|i| s.is_bootstrapped(i) && knows_its_closest(s, i))
        });
        let behind: Vec<usize> = (0..n).filter(|&i| !knows_its_closest(&sim, i)).collect();
        assert!(
            done,
            "chain of {n}: nodes {behind:?} do not know their closest"
        );
        for i in 0..n {
            assert!(sim.is_bootstrapped(i), "chain of {n}: node {i}");
            let said_empty = sim.node(i).api.log.iter().any(|e| {
                matches!(e, dhtd_protocol::node::LogEvent::BootstrapComplete(s) if s.nodes == 0)
            });
            assert!(!said_empty, "chain of {n}: node {i} completed with 0 nodes");
        }
        println!(
            "chain of {n}: every node knows its closest after {:?}",
            sim.now().duration_since(until - Duration::from_secs(20))
        );
    }
}

/// A node on a slow link: everything it sends waits 2.5 s (a saturated
/// uplink), so every round trip it measures is longer than the 2 s timeout.
/// It hears its first answers late, lets the measured round trips lengthen
/// its timeouts, bootstraps, and finds what another node announced. (It
/// used to time out on every query, and retried its bootstrap forever.)
#[test]
fn a_node_whose_round_trips_outlast_the_timeout_still_bootstraps() {
    use dhtd_protocol::lookup::LookupKind;
    use dhtd_protocol::node::AnnounceSpec;
    use dhtd_protocol::sim::Endpoint;
    use dhtd_protocol::InfoHash;

    let mut sim = Simulation::new(epoch(), NetworkConfig::default(), 11);
    let n = 30;
    for i in 0..=n {
        let endpoint = Endpoint {
            access: Duration::from_millis(20),
            slow: if i == n {
                Duration::from_millis(2500)
            } else {
                Duration::ZERO
            },
            behind_nat: false,
        };
        sim.attach(sim_addr(i), endpoint);
        start(&mut sim, i, (i > 0).then_some(0));
        sim.run_for(Duration::from_millis(200));
    }
    let slow = n;
    let until = sim.now() + Duration::from_secs(120);
    let done = sim.run_until(until, |s| s.is_bootstrapped(slow));
    let late = sim.node(slow).telemetry.late_responses.total();
    assert!(
        done,
        "not bootstrapped after 2 minutes ({late} late answers)"
    );
    assert!(late > 0, "it learned from late answers");
    assert!(
        sim.table(slow).len() >= K,
        "{} nodes",
        sim.table(slow).len()
    );

    let info_hash = InfoHash([7; 20]);
    let spec = AnnounceSpec {
        port: 4000,
        implied_port: false,
        seed: false,
    };
    let target = NodeId(info_hash.0);
    let limit = Duration::from_secs(60);
    let announced = sim.lookup(3, target, LookupKind::GetPeers, Some(spec), limit);
    assert!(announced.is_some_and(|s| s.announce.is_some_and(|a| a.accepted > 0)));
    let found = sim
        .lookup(slow, target, LookupKind::GetPeers, None, limit)
        .expect("the slow node's lookup ends");
    assert!(found.responses >= K, "{found:?}");
    let peer = std::net::SocketAddr::new(sim_addr(3).ip(), 4000);
    let peers = sim
        .node(slow)
        .api
        .peers
        .values()
        .flatten()
        .collect::<Vec<_>>();
    assert!(peers.contains(&&peer), "found {peers:?}");
}

/// A network's first nodes are added ahead of time, each at its own start
/// (`add_node_at`): a node sends nothing before its start, then
/// bootstraps as one added then would.
#[test]
fn a_node_added_ahead_of_time_starts_at_its_time() {
    let mut sim = Simulation::new(epoch(), NetworkConfig::default(), 3);
    start(&mut sim, 0, None);
    let at = sim.now() + Duration::from_secs(10);
    let mut sources = Sources::default();
    sources.routers.push(sim_addr(0).to_string());
    sim.add_node_at(
        at,
        NodeSpec {
            addr: sim_addr(1),
            id: None,
            seed: None,
            config: NodeConfig::default(),
            sources,
        },
    );
    sim.run_for(Duration::from_secs(9));
    assert_eq!(sim.net_stats().sent, 0, "nothing before its start");
    assert!(!sim.is_bootstrapped(1));
    sim.run_for(Duration::from_secs(20));
    assert!(sim.net_stats().sent > 0, "it bootstrapped from node 0");
    assert!(sim.is_bootstrapped(1));
    let table: Vec<NodeId> = sim.table(1).iter().map(|n| n.id).collect();
    assert_eq!(table, vec![sim.node(0).id], "it knows node 0");
}
