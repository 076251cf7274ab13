//! What a node answers on the wire, checked with a hand-made KRPC peer.

use dhtd::{Dht, InfoHash, NodeId};
use dhtd_protocol::krpc::{Body, ErrorCode, Message, Query};
use dhtd_tests::{error_code, node_ip, test_config, RawPeer};

fn start_lone(ip_index: usize, tweak: impl FnOnce(&mut dhtd::Config)) -> dhtd::Dht {
    let mut config = test_config(node_ip(ip_index), &[]);
    tweak(&mut config);
    Dht::builder(config).start().unwrap()
}

#[tokio::test]
async fn answers_every_method_and_tells_the_requester_its_address() {
    let node = start_lone(900, |_| {});
    let peer = RawPeer::bind(node_ip(901));
    let me = NodeId([1; 20]);
    let to = node.local_addr();

    let reply = peer
        .ask(to, &RawPeer::query(b"p1", me, Query::Ping, false))
        .expect("ping answered");
    let m = Message::decode(&reply).unwrap();
    assert_eq!(m.transaction_id, b"p1");
    assert_eq!(
        m.requester_ip,
        Some(peer.socket.local_addr().unwrap()),
        "BEP 42 ip key"
    );
    let Body::Response(r) = m.body else {
        panic!("{m:?}")
    };
    assert_eq!(r.id, node.id());

    let find = Query::FindNode {
        target: NodeId([2; 20]),
        want: None,
    };
    let reply = peer
        .ask(to, &RawPeer::query(b"f1", me, find, false))
        .expect("find_node answered");
    assert!(matches!(
        Message::decode(&reply).unwrap().body,
        Body::Response(_)
    ));

    let get = Query::GetPeers {
        info_hash: InfoHash([3; 20]),
        want: None,
        scrape: false,
        noseed: false,
    };
    let reply = peer
        .ask(to, &RawPeer::query(b"g1", me, get, false))
        .expect("get_peers answered");
    let Body::Response(r) = Message::decode(&reply).unwrap().body else {
        panic!()
    };
    assert!(r.token.is_some(), "get_peers always carries a token");

    // An unknown method with a target is answered like find_node (libtorrent's
    // forward compatibility); without one it gets 204.
    let with_target = Query::Unknown {
        method: b"sample_infohashes",
        target: Some(NodeId([4; 20])),
        info_hash: None,
        want: None,
    };
    let reply = peer
        .ask(to, &RawPeer::query(b"u1", me, with_target, false))
        .unwrap();
    assert!(matches!(
        Message::decode(&reply).unwrap().body,
        Body::Response(_)
    ));
    let bare = Query::Unknown {
        method: b"frobnicate",
        target: None,
        info_hash: None,
        want: None,
    };
    let reply = peer
        .ask(to, &RawPeer::query(b"u2", me, bare, false))
        .unwrap();
    assert_eq!(error_code(&reply), Some(204));

    // A malformed query whose transaction id is readable gets 203.
    let malformed = b"d1:ad2:id3:abce1:q4:ping1:t2:m11:y1:qe";
    let reply = peer.ask(to, malformed).expect("203 for a malformed query");
    assert_eq!(Message::decode(&reply).unwrap().transaction_id, b"m1");
    assert_eq!(error_code(&reply), Some(ErrorCode::Protocol.code()));
    // Garbage is counted, not answered.
    assert!(peer.ask(to, b"\x00garbage").is_none());
    let stats = node.stats().await.unwrap();
    assert_eq!(
        stats
            .traffic
            .get("dht_packets_dropped_total", &[("reason", "decode_error")]),
        1
    );
    node.shutdown().await;
}

#[tokio::test]
async fn bad_and_expired_tokens_are_refused_with_203() {
    let clock = dhtd::ManualClock::new();
    let node = start_lone(902, |c| c.clock = dhtd::Clock::Manual(clock.clone()));
    let peer = RawPeer::bind(node_ip(903));
    let me = NodeId([1; 20]);
    let to = node.local_addr();
    let info_hash = InfoHash([5; 20]);
    let announce = |tid: &'static [u8], token: &[u8]| {
        let q = Query::AnnouncePeer {
            info_hash,
            port: 6881,
            implied_port: false,
            token,
            seed: false,
        };
        peer.ask(to, &RawPeer::query(tid, me, q, false)).unwrap()
    };
    assert_eq!(error_code(&announce(b"a1", b"forged!!")), Some(203));

    let token = peer.token_for(to, info_hash);
    // Valid now: stored.
    assert_eq!(error_code(&announce(b"a2", &token)), None);
    // BEP 5: a token is good for 5 to 10 minutes. Two rotations later it
    // is too old; one rotation earlier it was still good.
    let rotation = dhtd::NodeConfig::default().tokens.rotation;
    clock.advance(rotation);
    let q = Query::AnnouncePeer {
        info_hash,
        port: 6882,
        implied_port: false,
        token: &token,
        seed: false,
    };
    let reply = peer.ask(to, &RawPeer::query(b"a5", me, q, false)).unwrap();
    assert_eq!(error_code(&reply), None, "one rotation old: still good");
    clock.advance(rotation);
    assert_eq!(error_code(&announce(b"a3", &token)), Some(203));
    // A token issued to another IP is refused too.
    let other = RawPeer::bind(node_ip(904));
    let q = Query::AnnouncePeer {
        info_hash,
        port: 6881,
        implied_port: false,
        token: &token,
        seed: false,
    };
    assert_eq!(
        error_code(&other.ask(to, &RawPeer::query(b"a4", me, q, false)).unwrap()),
        Some(203)
    );

    let stats = node.stats().await.unwrap();
    assert_eq!(
        stats
            .traffic
            .get("dht_announces_refused_total", &[("reason", "bad_token")]),
        3
    );
    assert_eq!(stats.store.peers, 2);
    node.shutdown().await;
}
