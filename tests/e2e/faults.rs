//! Panics injected into every actor, the supervisor's too, while lookups run.

use std::time::Duration;

use dhtd::{Component, InfoHash, PortChoice};
use dhtd::{Dht, NodeId};
use dhtd_protocol::krpc::Query;
use dhtd_tests::{node_ip, start_swarm, test_config, RawPeer};

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

/// A stuck actor (alive, but not handling messages) misses its heartbeat:
/// the watchdog loop stops feeding systemd while it is stuck, reports it,
/// and feeds again once it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_actor_stops_the_watchdog_and_is_reported() {
    use std::os::unix::net::UnixDatagram;
    use std::sync::Arc;
    use std::time::Instant;
    let node = Dht::builder(test_config(node_ip(1010), &[]))
        .start()
        .unwrap();
    assert_eq!(node.heartbeat(Duration::from_millis(500)).await, Ok(()));

    // A service manager's socket, and the environment it would give.
    let dir = std::env::temp_dir().join(format!("dhtd-notify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notify");
    let manager = UnixDatagram::bind(&path).unwrap();
    manager
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let notifier = Arc::new(dhtd::systemd::Notifier::for_socket(&path).unwrap());
    let watchdog = Duration::from_millis(400);
    let watch = tokio::spawn(dhtd::systemd::watch(
        node.clone(),
        Some(notifier),
        Some(watchdog),
    ));
    let feeds_within = |span: Duration| {
        let until = Instant::now() + span;
        let mut n = 0;
        let mut buf = [0u8; 256];
        while Instant::now() < until {
            if let Ok(len) = manager.recv(&mut buf) {
                n += usize::from(&buf[..len] == b"WATCHDOG=1");
            }
        }
        n
    };
    let fed = tokio::task::block_in_place(|| feeds_within(Duration::from_millis(900)));
    assert!(fed >= 3, "fed {fed} times in 0.9 s at a 0.4 s watchdog");

    node.inject_stall(Component::RoutingTable, Duration::from_millis(1500));
    tokio::time::sleep(Duration::from_millis(150)).await;
    let fed = tokio::task::block_in_place(|| feeds_within(Duration::from_millis(1000)));
    assert_eq!(fed, 0, "the watchdog was fed while an actor was stuck");
    let missed = node.stats().await.unwrap().traffic.get(
        "dht_actor_heartbeats_missed_total",
        &[("actor", "routing_table")],
    );
    assert!(missed >= 1, "the stuck actor is counted");
    let fed = tokio::task::block_in_place(|| feeds_within(Duration::from_millis(1500)));
    assert!(fed >= 2, "fed again once it answers: {fed}");
    watch.abort();
    node.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
