//! What real clients send, from a hand-made node: transaction ids of 2, 4
//! and 8 bytes, no `v`, long tokens, `values` without `nodes`, oversized node
//! lists, peers with port 0. Nothing may crash or stall; what is unusable is
//! ignored and counted.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dhtd::{Dht, InfoHash, NodeId};
use dhtd_protocol::compact::{encode_node, CompactNodes, CompactPeers, NodeInfo};
use dhtd_protocol::krpc::{Body, Message, Query, Response};
use dhtd_tests::{node_ip, test_config, RawPeer};

const QUIRKY_ID: NodeId = NodeId([0x42; 20]);

/// Answers every query the way a sloppy client might.
fn quirky_node(peer: RawPeer, stop: Arc<AtomicBool>, real_peer: SocketAddr) {
    let mut buf = [0u8; 2048];
    peer.socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = peer.socket.recv_from(&mut buf) else {
            continue;
        };
        let Ok(m) = Message::decode(&buf[..n]) else {
            continue;
        };
        let Body::Query { query, .. } = m.body else {
            continue;
        };
        // 150 made-up nodes (3,900 bytes, far over the usual 8), on loopback.
        let mut many = Vec::new();
        for i in 0..150u32 {
            let mut id = [0u8; 20];
            id[..4].copy_from_slice(&i.to_be_bytes());
            let addr = SocketAddr::from(([127, 0, 9, (i % 200) as u8 + 1], 9));
            encode_node(
                &NodeInfo {
                    id: NodeId(id),
                    addr,
                },
                &mut many,
            );
        }
        let mut values_buf = Vec::new();
        let response = match query {
            Query::GetPeers { .. } => {
                // values without nodes, one peer with port 0, a 20-byte token.
                let peers = [SocketAddr::from(([127, 0, 9, 1], 0)), real_peer];
                Response {
                    values: Some(CompactPeers::encode_list(peers, &mut values_buf)),
                    token: Some(&[7u8; 20]),
                    ..Response::bare(QUIRKY_ID)
                }
            }
            Query::FindNode { .. } => Response {
                nodes: Some(CompactNodes::v4(&many).unwrap()),
                ..Response::bare(QUIRKY_ID)
            },
            _ => Response::bare(QUIRKY_ID),
        };
        let reply = Message {
            transaction_id: m.transaction_id,
            version: None,
            requester_ip: None,
            read_only: false,
            body: Body::Response(response),
        }
        .to_bytes();
        let _ = peer.socket.send_to(&reply, from);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_answers_are_tolerated_ignored_where_unusable_and_counted() {
    let quirky = RawPeer::bind(node_ip(730));
    let quirky_addr = quirky.socket.local_addr().unwrap();
    let real_peer: SocketAddr = "127.0.9.77:6881".parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let responder = std::thread::spawn({
        let stop = stop.clone();
        move || quirky_node(quirky, stop, real_peer)
    });

    let mut config = test_config(node_ip(731), &[quirky_addr]);
    // Most nodes the quirky node names do not exist: time them out quickly.
    config.dht.lookup.query_timeout = Duration::from_millis(300);
    config.dht.transactions.timeout = Duration::from_millis(300);
    let node = Dht::builder(config).start().unwrap();
    tokio::time::timeout(Duration::from_secs(20), node.wait_bootstrapped())
        .await
        .expect("bootstrapped");
    let (peers, summary) = tokio::time::timeout(
        Duration::from_secs(30),
        node.get_peers(InfoHash([9; 20])).collect(),
    )
    .await
    .expect("the lookup ends although most nodes it hears of do not exist");
    let summary = summary.unwrap();
    assert_eq!(
        peers,
        vec![real_peer],
        "the port-0 peer is ignored, the other kept"
    );
    assert!(summary.ignored_peers >= 1, "{summary:?}");
    let stats = node.stats().await.unwrap();
    assert!(stats.traffic.get("dht_peers_ignored_total", &[]) >= 1);
    assert!(
        stats.traffic.get("dht_transaction_timeouts_total", &[]) > 0,
        "the made-up nodes time out"
    );

    // As a server: transaction ids of 2, 4 and 8 bytes, queries without `v`.
    let probe = RawPeer::bind(node_ip(732));
    for tid in [&b"ab"[..], b"abcd", b"abcdefgh"] {
        let q = RawPeer::query(tid, NodeId([1; 20]), Query::Ping, false);
        let reply = probe.ask(node.local_addr(), &q).expect("answered");
        assert_eq!(Message::decode(&reply).unwrap().transaction_id, tid);
    }
    // A 20-byte token that is not ours is refused with 203, not trusted.
    let q = Query::AnnouncePeer {
        info_hash: InfoHash([9; 20]),
        port: 1,
        implied_port: false,
        token: &[7; 20],
        seed: false,
    };
    let reply = probe
        .ask(
            node.local_addr(),
            &RawPeer::query(b"tk", NodeId([1; 20]), q, false),
        )
        .unwrap();
    assert!(
        matches!(Message::decode(&reply).unwrap().body, Body::Error(e) if e.code.code() == 203)
    );

    stop.store(true, Ordering::Relaxed);
    responder.join().unwrap();
    node.shutdown().await;
}
