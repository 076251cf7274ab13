//! BEP 32 end to end: an IPv6-only swarm on ::1, a dual-stack swarm on
//! 127.x and ::1, and the wire keys a client of each family sees.
//!
//! IPv6 loopback has one address, so the IPv6 nodes share it: the rules
//! that count per address (per /64) are turned off for them
//! (`dhtd::swarm::one_host`), as a swarm sharing one IPv4 address would
//! need. The per-/64 rules themselves are tested in `dhtd-protocol`.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use dhtd::swarm::{ipv6_loopback, one_host};
use dhtd::{Family, InfoHash, PortChoice};
use dhtd_protocol::krpc::{Body, Message, Query, Want};
use dhtd_protocol::NodeId;
use dhtd_tests::{node_ip, start_swarm};

const NODES: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_only_swarm_bootstraps_announces_and_finds() {
    let swarm = start_swarm(NODES, 32, |_, c| {
        c.listen = vec![ipv6_loopback()];
        one_host(c);
    })
    .await;
    for n in &swarm.nodes {
        assert!(n.local_addr().is_ipv6());
        let stats = n.stats().await.unwrap();
        assert_eq!(stats.families.len(), 1);
        assert_eq!(stats.families[0].family, Family::V6);
        assert!(stats.families[0].nodes() > 0, "{stats}");
    }
    let ih = InfoHash([0x32; 20]);
    let report = swarm.nodes[3]
        .announce(ih, PortChoice::Port(6_032))
        .await
        .unwrap();
    assert!(report.accepted > 0, "{report:?}");
    let (peers, summary) = swarm.nodes[9].get_peers(ih).collect().await;
    let expected: SocketAddr = "[::1]:6032".parse().unwrap();
    assert!(peers.contains(&expected), "{peers:?} {summary:?}");
    let summary = summary.unwrap();
    assert!(summary.closest.iter().all(|n| n.addr.is_ipv6()));
    swarm.shutdown().await;
}

/// Each node listens on its own 127.x address and on ::1. Both tables
/// fill, both families bootstrap, an announce is stored in each family,
/// and one lookup finds the announcer at both addresses and names the
/// closest nodes of both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dual_stack_swarm_serves_and_searches_both_families() {
    let swarm = start_swarm(NODES, 46, |i, c| {
        c.listen = vec![SocketAddr::new(node_ip(600 + i), 0), ipv6_loopback()];
        one_host(c);
    })
    .await;
    let both = |stats: &dhtd::Stats| {
        stats.families.len() == 2
            && stats
                .families
                .iter()
                .all(|f| f.bootstrap_complete && f.nodes() > 0)
    };
    let mut all_full = false;
    for _ in 0..100 {
        let mut ok = true;
        for n in &swarm.nodes {
            ok &= both(&n.stats().await.unwrap());
        }
        if ok {
            all_full = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        all_full,
        "{}",
        swarm.nodes[NODES - 1].stats().await.unwrap()
    );
    let stats = swarm.nodes[0].stats().await.unwrap();
    assert_eq!(
        stats.families.iter().map(|f| f.family).collect::<Vec<_>>(),
        [Family::V4, Family::V6]
    );
    let received = |family: &str| {
        stats
            .traffic
            .get("dht_packets_received_total", &[("family", family)])
    };
    assert!(received("ipv4") > 0 && received("ipv6") > 0);

    let ih = InfoHash([0x46; 20]);
    let report = swarm.nodes[2]
        .announce(ih, PortChoice::Port(6_046))
        .await
        .unwrap();
    assert!(report.tried > 8, "announced in both families: {report:?}");
    let (peers, summary) = swarm.nodes[7].get_peers(ih).collect().await;
    let v4 = SocketAddr::new(node_ip(602), 6_046);
    let v6: SocketAddr = "[::1]:6046".parse().unwrap();
    assert!(peers.contains(&v4) && peers.contains(&v6), "{peers:?}");
    let closest = summary.unwrap().closest;
    assert!(closest.iter().any(|n| n.addr.is_ipv4()));
    assert!(closest.iter().any(|n| n.addr.is_ipv6()));

    // The wire: a client sends `want n6` to the IPv4 socket, and gets
    // IPv6 nodes; without `want`, nodes of the family it asked over.
    let node = &swarm.nodes[4];
    let v4_addr = node.local_addr_of(Family::V4).unwrap();
    let v6_addr = node.local_addr_of(Family::V6).unwrap();
    let client4 = UdpSocket::bind(SocketAddr::new(node_ip(640), 0)).unwrap();
    let (n4, n6, _) = find_node(
        &client4,
        v4_addr,
        Some(Want {
            v4: false,
            v6: true,
        }),
    );
    assert_eq!(n4, 0);
    assert!(n6 > 0, "want n6 over IPv4 gets nodes6");
    let (n4, n6, _) = find_node(&client4, v4_addr, None);
    assert!(n4 > 0 && n6 == 0);
    let client6 = UdpSocket::bind(ipv6_loopback()).unwrap();
    let (n4, n6, ip) = find_node(&client6, v6_addr, Some(Want::BOTH));
    assert!(n4 > 0 && n6 > 0, "want n4 and n6");
    assert_eq!(
        ip,
        Some(client6.local_addr().unwrap()),
        "the ip key of an IPv6 client"
    );

    // The saved table holds both families, and a node started from it
    // alone (no router, no bootstrap node) bootstraps both.
    let saved = node.export_table().await.unwrap();
    let saved_v6 = saved
        .nodes
        .iter()
        .filter(|n| n.family() == Family::V6)
        .count();
    assert!(saved_v6 > 0 && saved_v6 < saved.nodes.len(), "{saved:?}");
    let mut config = dhtd_tests::test_config(node_ip(612), &[]);
    config.listen.push(ipv6_loopback());
    one_host(&mut config);
    let restarted = dhtd::Dht::builder(config)
        .runtime(&swarm.runtime)
        .import_table(saved)
        .start()
        .unwrap();
    let mut both_back = false;
    for _ in 0..100 {
        if both(&restarted.stats().await.unwrap()) {
            both_back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(both_back, "{}", restarted.stats().await.unwrap());
    restarted.shutdown().await;
    swarm.shutdown().await;
}

/// A node that serves IPv4 alone answers `want n6` with what it has: no
/// `nodes6`, and no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv4_node_answers_want_n6_without_nodes6() {
    let swarm = start_swarm(3, 47, |i, c| {
        c.listen = vec![SocketAddr::new(node_ip(650 + i), 0)];
    })
    .await;
    let client = UdpSocket::bind(SocketAddr::new(node_ip(641), 0)).unwrap();
    let (n4, n6, _) = find_node(&client, swarm.nodes[0].local_addr(), Some(Want::BOTH));
    assert!(n4 > 0);
    assert_eq!(n6, 0);
    swarm.shutdown().await;
}

/// Sends a `find_node` and counts the IPv4 and IPv6 nodes of the answer.
fn find_node(
    client: &UdpSocket,
    to: SocketAddr,
    want: Option<Want>,
) -> (usize, usize, Option<SocketAddr>) {
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let query = Message {
        transaction_id: b"w6",
        version: None,
        requester_ip: None,
        read_only: true,
        body: Body::Query {
            sender: NodeId([0x66; 20]),
            query: Query::FindNode {
                target: NodeId([0x67; 20]),
                want,
            },
        },
    }
    .to_bytes();
    client.send_to(&query, to).unwrap();
    let mut buf = [0u8; 1500];
    let (len, _) = client.recv_from(&mut buf).expect("an answer");
    let answer = Message::decode(&buf[..len]).unwrap();
    let Body::Response(r) = answer.body else {
        panic!("{answer:?}")
    };
    (
        r.nodes.map_or(0, |n| n.iter().count()),
        r.nodes6.map_or(0, |n| n.iter().count()),
        answer.requester_ip,
    )
}
