//! Caps that defend the node: the announce store and the per-IP budget.

use dhtd::{Dht, InfoHash, NodeId};
use dhtd_protocol::krpc::{Body, Message, Query};
use dhtd_protocol::rate_limit::Rate;
use dhtd_tests::{node_ip, test_config, RawPeer};

/// Announces one info hash from `peer` on `port`; the KRPC error code, if any.
fn announce(
    peer: &RawPeer,
    to: std::net::SocketAddr,
    info_hash: InfoHash,
    port: u16,
) -> Option<i64> {
    let token = peer.token_for(to, info_hash);
    let q = Query::AnnouncePeer {
        info_hash,
        port,
        implied_port: false,
        token: &token,
        seed: false,
    };
    let reply = peer
        .ask(to, &RawPeer::query(b"an", NodeId([1; 20]), q, false))
        .unwrap();
    match Message::decode(&reply).unwrap().body {
        Body::Error(e) => Some(e.code.code()),
        _ => None,
    }
}

fn numbered(i: u32) -> InfoHash {
    let mut ih = [0xff; 20];
    ih[..4].copy_from_slice(&i.to_be_bytes());
    InfoHash(ih)
}

#[tokio::test]
async fn announce_floods_meet_quotas_and_evictions_and_a_newcomer_still_gets_in() {
    let mut config = test_config(node_ip(910), &[]);
    config.dht.store.max_info_hashes = 50;
    config.dht.store.max_peers_per_info_hash = 5;
    config.dht.store.max_announces_per_ip = 30;
    config.dht.store.max_ports_per_ip = 2;
    // This test is about the store: lift the query budgets.
    config.dht.limits.queries_per_ip = Rate {
        per_second: 1e6,
        burst: 1e6,
    };
    config.dht.limits.queries_per_prefix = config.dht.limits.queries_per_ip;
    let node = Dht::builder(config).start().unwrap();
    let to = node.local_addr();

    // 200 info hashes from one address: its quota of 30 is stored.
    let flooder = RawPeer::bind(node_ip(911));
    let refused = (0..200)
        .filter(|&i| announce(&flooder, to, numbered(i), 7000).is_some())
        .count();
    assert_eq!(refused, 170);
    // 500 ports of one address on one info hash: it keeps 2 of them.
    let ports = RawPeer::bind(node_ip(912));
    let crowded = numbered(0);
    for port in 1..=500 {
        assert_eq!(announce(&ports, to, crowded, port), None);
    }
    // Newcomers on the crowded info hash and on a new one get in.
    let newcomer = RawPeer::bind(node_ip(913));
    assert_eq!(announce(&newcomer, to, crowded, 6881), None);
    for i in 0..3 {
        let other = RawPeer::bind(node_ip(914 + i));
        assert_eq!(announce(&other, to, numbered(1000 + i as u32), 6881), None);
    }
    let stats = node.stats().await.unwrap();
    let t = &stats.traffic;
    assert_eq!(
        t.get("dht_announces_refused_total", &[("reason", "ip_quota")]),
        170
    );
    assert_eq!(
        t.get("dht_store_evictions_total", &[("cap", "ports_per_ip")]),
        498
    );
    assert_eq!(stats.store.peers, 30 + 2 + 1 + 3);
    assert_eq!(t.get("dht_store_limit", &[("cap", "announces_per_ip")]), 30);
    node.shutdown().await;
}

#[tokio::test]
async fn queries_beyond_the_per_ip_budget_are_dropped_and_counted() {
    let mut config = test_config(node_ip(912), &[]);
    config.dht.limits.queries_per_ip = Rate {
        per_second: 1.0,
        burst: 10.0,
    };
    let node = Dht::builder(config).start().unwrap();
    let to = node.local_addr();
    let flooder = RawPeer::bind(node_ip(913));
    let ping = RawPeer::query(b"pp", NodeId([1; 20]), Query::Ping, false);
    for _ in 0..100 {
        flooder.socket.send_to(&ping, to).unwrap();
    }
    // Count the answers (the node also pings the flooder back once).
    let mut answered = 0;
    while let Some(reply) = flooder.receive_from(to) {
        if matches!(Message::decode(&reply).unwrap().body, Body::Response(_)) {
            answered += 1;
        }
    }
    assert!((10..=12).contains(&answered), "answered {answered} of 100");
    // Another IP still gets answers.
    let other = RawPeer::bind(node_ip(914));
    assert!(other.ask(to, &ping).is_some());
    let stats = node.stats().await.unwrap();
    assert!(
        stats
            .traffic
            .get("dht_packets_dropped_total", &[("reason", "rate_limited")])
            >= 88
    );
    node.shutdown().await;
}

/// The upload throttle holds what a node sends to its rate, answers
/// included, however many queries arrive: what does not fit is dropped and
/// counted.
#[tokio::test]
async fn the_upload_throttle_bounds_what_the_node_sends() {
    let mut config = test_config(node_ip(915), &[]);
    let unlimited = Rate {
        per_second: 1e9,
        burst: 1e9,
    };
    config.dht.limits.queries_per_ip = unlimited;
    config.dht.limits.queries_per_prefix = unlimited;
    config.dht.limits.upload = Some(Rate {
        per_second: 4096.0,
        burst: 4096.0,
    });
    let node = Dht::builder(config).start().unwrap();
    let to = node.local_addr();
    let peer = RawPeer::bind(node_ip(916));
    let started = std::time::Instant::now();
    let ping = RawPeer::query(b"pp", NodeId([2; 20]), Query::Ping, false);
    for _ in 0..2000 {
        peer.socket.send_to(&ping, to).unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let stats = node.stats().await.unwrap();
    let sent = stats.traffic.get("dht_sent_bytes_total", &[]) as f64;
    let throttled = stats.traffic.get(
        "dht_packets_dropped_total",
        &[("reason", "upload_throttled")],
    );
    assert!(
        sent <= 4096.0 + 4096.0 * elapsed + 200.0,
        "{sent} bytes in {elapsed:.2} s"
    );
    assert!(throttled > 1000, "{throttled} answers throttled");
    assert_eq!(
        stats.traffic.get("dht_upload_limit_bytes_per_second", &[]),
        4096
    );
    node.shutdown().await;
}
