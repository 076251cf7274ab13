//! Read-only nodes (BEP 43) and implied ports.

use dhtd::{InfoHash, NodeId, PortChoice};
use dhtd_protocol::krpc::Query;
use dhtd_tests::{node_ip, start_swarm, RawPeer};
use rand::rngs::StdRng;
use rand::SeedableRng;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_nodes_stay_out_of_tables_and_implied_port_stores_the_source_port() {
    // Nodes 30..40 are read-only.
    let swarm = start_swarm(40, 3, |i, c| c.dht.read_only = i >= 30).await;
    let readers: Vec<_> = swarm.nodes[30..].to_vec();
    // Read-only nodes look up like anyone else, and announce with implied_port.
    let info_hash = InfoHash([0x42; 20]);
    let report = swarm.nodes[5]
        .announce(info_hash, PortChoice::Implied)
        .await
        .unwrap();
    assert!(report.accepted > 0);
    let (peers, _) = readers[0].get_peers(info_hash).collect().await;
    assert_eq!(
        peers,
        vec![swarm.nodes[5].local_addr()],
        "the announcer's UDP source port was stored"
    );
    let mut rng = StdRng::seed_from_u64(5);
    for r in &readers {
        r.find_node(NodeId::random(&mut rng)).await.unwrap();
    }

    let probe = RawPeer::bind(node_ip(990));
    // A read-only node answers nothing.
    let ping = RawPeer::query(b"p0", NodeId([1; 20]), Query::Ping, false);
    assert!(probe.ask(readers[0].local_addr(), &ping).is_none());
    // No writable node hands out a read-only node, even when asked for its id.
    let reader_addrs: Vec<_> = readers.iter().map(|r| r.local_addr()).collect();
    for node in &swarm.nodes[..30] {
        for r in &readers {
            for addr in probe.find_node(node.local_addr(), r.id()) {
                assert!(
                    !reader_addrs.contains(&addr),
                    "{} handed out read-only {addr}",
                    node.local_addr()
                );
            }
        }
    }
    swarm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routers_are_asked_but_never_added() {
    let swarm = start_swarm(20, 4, |_, _| {}).await;
    let router = &swarm.nodes[0];
    let mut config = dhtd_tests::test_config(node_ip(991), &[]);
    config.routers = vec![router.local_addr().to_string()];
    // An id as far from the router's as there is: the router is no
    // neighbour of ours (one among our k closest would join the table, as
    // in a private network; see the chain tests).
    let mut id = router.id();
    id.0[0] ^= 0x80;
    config.node_id = dhtd::NodeIdChoice::Fixed(id);
    let node = dhtd::Dht::builder(config)
        .runtime(&swarm.runtime)
        .start()
        .unwrap();
    node.wait_bootstrapped().await;
    assert!(
        node.stats().await.unwrap().nodes() >= 8,
        "bootstrapped through the router"
    );
    // Asked for the router's own id, the node does not hand the router out.
    let probe = RawPeer::bind(node_ip(992));
    let handed_out = probe.find_node(node.local_addr(), router.id());
    assert!(!handed_out.contains(&router.local_addr()), "{handed_out:?}");
    node.shutdown().await;
    swarm.shutdown().await;
}
