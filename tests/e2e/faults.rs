//! Panics injected into every actor, the supervisor's too, while lookups run.

use std::time::Duration;

use dhtd::NodeId;
use dhtd::{Component, InfoHash, PortChoice};
use dhtd_protocol::krpc::Query;
use dhtd_tests::{node_ip, start_swarm, RawPeer};

const ACTORS: [Component; 7] = [
    Component::Socket,
    Component::RateLimiter,
    Component::RoutingTable,
    Component::Transactions,
    Component::AnnounceStore,
    Component::Lookups,
    Component::Supervisor,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_actor_is_restarted_with_its_state() {
    // The same lookups repeat every round: shorten the per-node spacing rule
    // so that they are not refused as repeats.
    let swarm = start_swarm(40, 21, |_, c| {
        c.dht.limits.query_spacing = Duration::from_millis(100)
    })
    .await;
    let hashes: Vec<InfoHash> = (0..10u8).map(|i| InfoHash([i + 1; 20])).collect();
    for (i, ih) in hashes.iter().enumerate() {
        swarm.nodes[10 + i]
            .announce(*ih, PortChoice::Port(6000 + i as u16))
            .await
            .unwrap();
    }
    // The victim is the node storing the most announces, so the store's survival shows.
    let mut victim = swarm.nodes[0].clone();
    let mut most = 0;
    for n in &swarm.nodes {
        let peers = n.stats().await.unwrap().store.peers;
        if peers > most {
            (victim, most) = (n.clone(), peers);
        }
    }
    let before = victim.stats().await.unwrap();
    assert!(before.nodes() > 0 && before.store.peers > 0, "{before:?}");

    for (round, actor) in ACTORS.iter().enumerate() {
        // Lookups in flight from the victim while the actor panics.
        let mut lookups = Vec::new();
        for ih in &hashes[..3] {
            lookups.push(tokio::spawn({
                let v = victim.clone();
                let ih = *ih;
                async move { v.get_peers(ih).collect().await }
            }));
        }
        victim.inject_panic(*actor);
        for l in lookups {
            let _ = tokio::time::timeout(Duration::from_secs(10), l)
                .await
                .unwrap()
                .unwrap();
        }
        let stats = victim.stats().await.unwrap();
        assert_eq!(
            stats.traffic.get(
                "dht_actor_restarts_total",
                &[("actor", actor.label()), ("reason", "panicked")]
            ),
            1,
            "round {round}: {actor:?}"
        );
    }

    let after = victim.stats().await.unwrap();
    assert!(
        after.nodes() >= before.nodes() * 3 / 4,
        "table kept: {} -> {}",
        before.nodes(),
        after.nodes()
    );
    assert_eq!(after.store.peers, before.store.peers, "store kept");
    // Still answering, and still finding peers.
    let probe = RawPeer::bind(node_ip(980));
    let ping = RawPeer::query(b"p1", NodeId([1; 20]), Query::Ping, false);
    assert!(
        probe.ask(victim.local_addr(), &ping).is_some(),
        "the victim still answers"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    for (i, ih) in hashes.iter().enumerate() {
        let (peers, summary) = victim.get_peers(*ih).collect().await;
        assert!(
            peers.iter().any(|p| p.port() == 6000 + i as u16),
            "lookup {i} after the faults: {summary:?}"
        );
    }
    swarm.shutdown().await;
}
