//! Bootstrap in private networks of real nodes on loopback.

use std::net::SocketAddr;
use std::time::Duration;

use dhtd::{Config, Dht, Runtime};
use dhtd_tests::{node_ip, wait_until, RawPeer};

/// The addresses of the (at most) k nodes closest to node `i`, others only.
fn closest_others(nodes: &[Dht], i: usize) -> Vec<SocketAddr> {
    let own = nodes[i].id();
    let mut others: Vec<&Dht> = nodes.iter().filter(|n| n.id() != own).collect();
    others.sort_by_key(|n| own.distance(&n.id()));
    others.iter().take(8).map(|n| n.local_addr()).collect()
}

/// The bug: three daemons on loopback, each started with `--bootstrap` set
/// to the one before; after 30 s the second knew only the third, the third
/// only the first, and both had logged "bootstrap complete: 0 nodes". Now,
/// in chains of 3, 10 and 50 nodes, each with the one before as its router,
/// every node knows its k closest (all the others, in the small ones)
/// within seconds: asked for the nodes closest to its own id, it names them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_started_in_a_chain_of_routers_know_each_other() {
    let runtime = Runtime::new().unwrap();
    let probe = RawPeer::bind(node_ip(1399));
    let mut base = 1000;
    for n in [3usize, 10, 50] {
        let mut nodes: Vec<Dht> = Vec::new();
        for i in 0..n {
            let mut config = Config::local(SocketAddr::new(node_ip(base + i), 0), &[]);
            if let Some(before) = nodes.last() {
                config.routers = vec![before.local_addr().to_string()];
            }
            config.rng_seed = Some(base as u64 + i as u64);
            nodes.push(Dht::builder(config).runtime(&runtime).start().unwrap());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        base += n;
        let knows = |i: usize| {
            let named = probe.find_node(nodes[i].local_addr(), nodes[i].id());
            closest_others(&nodes, i).iter().all(|a| named.contains(a))
        };
        let all_know = wait_until(Duration::from_secs(30), || {
            let ok = (0..n).all(|i| nodes[i].is_bootstrapped() && knows(i));
            async move { ok }
        })
        .await;
        let behind: Vec<usize> = (0..n).filter(|&i| !knows(i)).collect();
        for &i in &behind {
            let named = probe.find_node(nodes[i].local_addr(), nodes[i].id());
            let idx = |a: &SocketAddr| nodes.iter().position(|n| n.local_addr() == *a).unwrap();
            let want: Vec<usize> = closest_others(&nodes, i).iter().map(idx).collect();
            let got: Vec<usize> = named.iter().map(idx).collect();
            eprintln!("node {i}: wants {want:?}, names {got:?}");
            for m in want.iter().filter(|m| !got.contains(m)) {
                let theirs: Vec<usize> = probe
                    .find_node(nodes[*m].local_addr(), nodes[i].id())
                    .iter()
                    .map(idx)
                    .collect();
                let st = nodes[*m].stats().await.unwrap();
                eprintln!(
                    "  missing {m}: asked for {i}'s id it names {theirs:?}; {} nodes, boot {}",
                    st.nodes(),
                    st.bootstrap_complete
                );
            }
            let st = nodes[i].stats().await.unwrap();
            eprintln!("  {st}");
        }
        assert!(
            all_know,
            "chain of {n}: nodes {behind:?} do not know their closest"
        );
        for node in &nodes {
            let stats = node.stats().await.unwrap();
            assert!(stats.bootstrap_complete && stats.nodes() > 0, "{stats}");
            node.shutdown().await;
        }
    }
}

/// A node holding peers for an info hash finds them with its own lookup,
/// even when no other node holds them (it used to ignore its own store).
#[tokio::test]
async fn a_lookup_finds_the_peers_the_node_holds_itself() {
    use dhtd::{InfoHash, NodeId, PortChoice};
    use dhtd_protocol::krpc::Query;
    let a = Dht::builder(dhtd_tests::test_config(node_ip(1380), &[]))
        .start()
        .unwrap();
    let b = Dht::builder(dhtd_tests::test_config(node_ip(1381), &[a.local_addr()]))
        .start()
        .unwrap();
    b.wait_bootstrapped().await;
    // A peer announces to `a` by hand; `b` never hears of it.
    let info_hash = InfoHash([0x61; 20]);
    let peer = RawPeer::bind(node_ip(1382));
    let token = peer.token_for(a.local_addr(), info_hash);
    let announce = Query::AnnouncePeer {
        info_hash,
        port: 4444,
        implied_port: false,
        token: &token,
        seed: false,
    };
    peer.ask(
        a.local_addr(),
        &RawPeer::query(b"a1", NodeId([3; 20]), announce, false),
    )
    .unwrap();
    let expected = SocketAddr::new(node_ip(1382), 4444);
    let (peers, summary) = a.get_peers(info_hash).collect().await;
    assert_eq!(peers, vec![expected], "{summary:?}");
    // And an announce of its own is found the same way.
    a.announce(info_hash, PortChoice::Port(5555)).await.unwrap();
    a.shutdown().await;
    b.shutdown().await;
}
