//! dhtd against independent DHT implementations, each started by the test on
//! its own 127.x address, bootstrapping only from numeric loopback nodes,
//! with its built-in routers, LSD, UPnP, NAT-PMP and peer exchange off.
//! the test command (`cargo run -p dhtd-suite`) installs them; outside CI a missing one is reported and its
//! test passes, under CI (`CI` set) it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bittorrent_dht;
mod libtorrent;
mod mainline_crate;
mod quirks;

use std::net::SocketAddr;
use std::time::Duration;

use dhtd::{Dht, InfoHash, PortChoice};
use dhtd_tests::{node_ip, poll_until, start_swarm, test_config, Client, Swarm};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Whether a client's test can run; panics under CI when it cannot.
pub fn available(client: &str, present: bool) -> bool {
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "{client} is not installed; the test command (`cargo run -p dhtd-suite`) installs it"
        );
        eprintln!("skipped: {client} is not installed (the test command installs it)");
    }
    present
}

/// Looks `info_hash` up from `node` until `peer` is among the peers found
/// (a third party's announce reaches the closest nodes when it gets to
/// it), at most 30 times, half a second apart; the last peers found.
pub async fn look_up_until_found(
    node: &Dht,
    info_hash: InfoHash,
    peer: SocketAddr,
) -> Vec<SocketAddr> {
    let mut found = Vec::new();
    for _ in 0..30 {
        found = node.get_peers(info_hash).collect().await.0;
        if found.contains(&peer) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    found
}

/// Which nodes that query it a client puts in its routing table.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Queriers {
    /// Writable ones, never those whose queries carry `ro = 1` (BEP 43).
    Writable,
    /// All of them: it does not read `ro`.
    All,
    /// None: only nodes that answer its own queries (a strict reading of BEP 5).
    None,
}

/// Everything that must hold between dhtd and one client, in both
/// directions. `start` starts the client at an address, bootstrapping from
/// the given node.
pub async fn check_client(
    name: &str,
    seed: u64,
    ip_base: usize,
    queriers: Queriers,
    start: impl Fn(std::net::IpAddr, SocketAddr) -> Box<dyn Client>,
) {
    let swarm: Swarm = start_swarm(12, seed, |_, _| {}).await;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut client = start(node_ip(ip_base), swarm.nodes[0].local_addr());
    eprintln!("{name}: {} at {}", client.version(), client.addr());

    // It bootstraps from dhtd and keeps dhtd nodes in its table (they
    // answered its find_node and ping).
    let swarm_addrs: Vec<SocketAddr> = swarm.nodes.iter().map(|n| n.local_addr()).collect();
    let kept = poll_until(Duration::from_secs(30), || {
        client
            .table()
            .iter()
            .filter(|a| swarm_addrs.contains(a))
            .count()
            >= 4
    });
    assert!(
        kept,
        "{name} keeps fewer than 4 dhtd nodes: {:?}",
        client.table()
    );

    // Its announce is stored by dhtd with its port and handed to others.
    let theirs = InfoHash::random(&mut rng);
    let their_port = client.announce(&theirs);
    let their_peer = SocketAddr::new(client.addr().ip(), their_port);
    let found = look_up_until_found(&swarm.nodes[5], theirs, their_peer).await;
    assert!(
        found.contains(&their_peer),
        "dhtd did not find {name}'s announce {their_peer}: {found:?}"
    );

    // It finds a peer announced through dhtd.
    let ours = InfoHash::random(&mut rng);
    let report = swarm.nodes[7]
        .announce(ours, PortChoice::Port(4444))
        .await
        .unwrap();
    assert!(report.accepted > 0);
    let our_peer = SocketAddr::new(swarm.nodes[7].local_addr().ip(), 4444);
    let found = poll_until(Duration::from_secs(30), || {
        client.get_peers(&ours).contains(&our_peer)
    });
    assert!(found, "{name} did not find the peer announced through dhtd");

    // dhtd bootstraps from it alone.
    let mut config = test_config(node_ip(ip_base + 1), &[client.addr()]);
    config.dht.bootstrap.retry_max = Duration::from_secs(1);
    let alone = Dht::builder(config)
        .runtime(&swarm.runtime)
        .start()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), alone.wait_bootstrapped())
        .await
        .expect("bootstrapped from it");
    let stats = alone.stats().await.unwrap();
    assert!(
        stats.nodes() >= 4,
        "bootstrapped from {name} alone with {} nodes",
        stats.nodes()
    );
    let (peers, _) = alone.get_peers(theirs).collect().await;
    assert!(
        peers.contains(&their_peer),
        "the node bootstrapped from {name} finds its peer"
    );

    // A read-only dhtd node finds its peers and stays out of its table.
    let mut config = test_config(node_ip(ip_base + 2), &[client.addr()]);
    config.dht.read_only = true;
    let reader = Dht::builder(config)
        .runtime(&swarm.runtime)
        .start()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), reader.wait_bootstrapped())
        .await
        .expect("read-only bootstrapped");
    let (peers, _) = reader.get_peers(theirs).collect().await;
    assert!(
        peers.contains(&their_peer),
        "read-only dhtd finds {name}'s peer"
    );
    // Compared with the writable node that bootstrapped from it.
    let keeps = |client: &mut Box<dyn Client>, node: &dhtd::Dht| {
        client.table().contains(&node.local_addr())
    };
    match queriers {
        Queriers::Writable => {
            let kept = poll_until(Duration::from_secs(20), || keeps(&mut client, &alone));
            assert!(
                kept,
                "{name} did not keep the writable dhtd node that queried it"
            );
            assert!(
                !keeps(&mut client, &reader),
                "{name} keeps a read-only node"
            );
        }
        // Pinned, so that a change in the client is noticed.
        Queriers::All => {
            let kept = poll_until(Duration::from_secs(20), || keeps(&mut client, &reader));
            assert!(kept, "{name} now leaves read-only nodes out");
        }
        Queriers::None => {
            assert!(
                !keeps(&mut client, &reader),
                "{name} keeps a read-only node"
            );
            assert!(
                !keeps(&mut client, &alone),
                "{name} now adds nodes that query it"
            );
        }
    }

    alone.shutdown().await;
    reader.shutdown().await;
    drop(client);
    swarm.shutdown().await;
}
