//! Caps that defend the node: the announce store and the per-IP budget.

use dhtd::{AnnounceRefusal, Dht, DropReason, InfoHash, NodeId};
use dhtd_protocol::krpc::{Body, Message, Query};
use dhtd_protocol::rate_limit::Rate;
use dhtd_tests::{node_ip, test_config, RawPeer};

#[tokio::test]
async fn an_announce_flood_beyond_the_caps_is_refused_and_the_store_stays_bounded() {
    let mut config = test_config(node_ip(910), &[]);
    config.dht.store.max_info_hashes = 50;
    config.dht.store.max_peers_per_info_hash = 5;
    // This test is about the store: lift the per-IP query budget.
    config.dht.limits.queries_per_ip = Rate {
        per_second: 1e6,
        burst: 1e6,
    };
    let node = Dht::builder(config).start().unwrap();
    let to = node.local_addr();

    // 200 info hashes from one peer: 50 fit.
    let peer = RawPeer::bind(node_ip(911));
    let mut refused = 0;
    for i in 0..200u32 {
        let mut ih = [0u8; 20];
        ih[..4].copy_from_slice(&i.to_be_bytes());
        let info_hash = InfoHash(ih);
        let token = peer.token_for(to, info_hash);
        let q = Query::AnnouncePeer {
            info_hash,
            port: 7000,
            implied_port: false,
            token: &token,
        };
        let reply = peer
            .ask(to, &RawPeer::query(b"an", NodeId([1; 20]), q, false))
            .unwrap();
        if let Body::Error(e) = Message::decode(&reply).unwrap().body {
            assert_eq!(e.code.code(), 202);
            refused += 1;
        }
    }
    assert_eq!(refused, 150);
    // 20 more peers (distinct IPs) on the first info hash, which already
    // holds one: 4 more fit.
    let info_hash = InfoHash([0; 20]);
    for p in 0..20 {
        let peer = RawPeer::bind(node_ip(920 + p));
        let token = peer.token_for(to, info_hash);
        let q = Query::AnnouncePeer {
            info_hash,
            port: 7000,
            implied_port: false,
            token: &token,
        };
        peer.ask(to, &RawPeer::query(b"an", NodeId([1; 20]), q, false))
            .unwrap();
    }
    let stats = node.stats().await.unwrap();
    assert_eq!(stats.store.info_hashes, 50);
    assert_eq!(
        stats.store.peers,
        50 + 4,
        "the first info hash holds 5 peers, the others 1"
    );
    assert_eq!(
        stats.traffic.announces_refused.get(AnnounceRefusal::Full),
        150 + 16
    );
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
    assert!(stats.traffic.dropped.get(DropReason::RateLimited) >= 88);
    node.shutdown().await;
}
