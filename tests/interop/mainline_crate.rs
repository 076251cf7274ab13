//! The pubky `mainline` crate (8.x), in process, in server mode.

#![allow(deprecated)] // its blocking API is deprecated in favour of async; a test may block

use std::net::{IpAddr, SocketAddr};

use dhtd::InfoHash;
use dhtd_tests::Client;
use mainline::{Dht, Id};

struct MainlineNode {
    dht: Dht,
    addr: SocketAddr,
}

impl MainlineNode {
    fn start(ip: IpAddr, bootstrap: SocketAddr) -> MainlineNode {
        let IpAddr::V4(v4) = ip else {
            unreachable!("loopback IPv4 only")
        };
        // `bootstrap` replaces its built-in routers, so no name is resolved.
        let dht = Dht::builder()
            .server_mode()
            .bind_address(v4)
            .bootstrap(&[bootstrap.to_string()])
            .build()
            .unwrap();
        let addr = SocketAddr::V4(dht.info().local_addr());
        MainlineNode { dht, addr }
    }
}

impl Client for MainlineNode {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn version(&self) -> String {
        "mainline 8.0.1".into()
    }

    fn table(&mut self) -> Vec<SocketAddr> {
        self.dht
            .to_bootstrap()
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect()
    }

    fn get_peers(&mut self, info_hash: &InfoHash) -> Vec<SocketAddr> {
        let id = Id::from_bytes(info_hash.as_bytes()).unwrap();
        self.dht
            .get_peers(id)
            .flatten()
            .map(SocketAddr::V4)
            .collect()
    }

    fn announce(&mut self, info_hash: &InfoHash) -> u16 {
        let id = Id::from_bytes(info_hash.as_bytes()).unwrap();
        // No port: implied_port, so dhtd must store its UDP source port.
        self.dht.announce_peer(id, None).unwrap();
        self.addr.port()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mainline_and_dhtd_serve_each_other() {
    super::check_client(
        "mainline",
        73,
        720,
        super::Queriers::None,
        |ip, bootstrap| Box::new(MainlineNode::start(ip, bootstrap)),
    )
    .await;
}

/// BEP 44 both ways with the mainline crate: immutable and mutable items
/// put by one are got by the other, and dhtd updates the crate's mutable
/// item with its key (compare and swap on the sequence number).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mainline_and_dhtd_put_and_get_each_others_items() {
    use mainline::MutableItem;
    let swarm = dhtd_tests::start_swarm(8, 74, |_, _| {}).await;
    let mut node = MainlineNode::start(dhtd_tests::node_ip(730), swarm.nodes[0].local_addr());
    let dhtd_addrs: Vec<SocketAddr> = swarm.nodes.iter().map(|n| n.local_addr()).collect();
    let joined = dhtd_tests::poll_until(std::time::Duration::from_secs(30), || {
        node.table()
            .iter()
            .filter(|a| dhtd_addrs.contains(a))
            .count()
            >= 4
    });
    assert!(joined, "the mainline node knows the swarm");
    let blocking = |f: &mut dyn FnMut()| tokio::task::block_in_place(f);
    let dhtd = &swarm.nodes[5];

    // Immutable, mainline to dhtd and back.
    let mut theirs = None;
    blocking(&mut || theirs = Some(node.dht.put_immutable(b"from mainline").unwrap()));
    let target = dhtd::NodeId(*theirs.unwrap().as_bytes());
    let got = dhtd.get_immutable(target).await.unwrap();
    assert_eq!(got.as_deref(), Some(&b"from mainline"[..]));
    let ours = dhtd.put_immutable(b"from dhtd").await.unwrap();
    assert!(ours.accepted > 0);
    let mut got = None;
    let id = mainline::Id::from_bytes(ours.target.as_bytes()).unwrap();
    blocking(&mut || got = node.dht.get_immutable(id));
    assert_eq!(got.as_deref(), Some(&b"from dhtd"[..]));

    // Mutable with a salt, mainline to dhtd; then dhtd updates it.
    let seed = [5u8; 32];
    let item = MutableItem::new(
        ed25519_dalek::SigningKey::from_bytes(&seed),
        b"v1",
        1,
        Some(b"salt"),
    );
    blocking(&mut || {
        node.dht.put_mutable(item.clone(), None).unwrap();
    });
    let key = dhtd::SigningKey::from_seed(seed);
    let got = dhtd
        .get_mutable(&key.public_key(), b"salt", None)
        .await
        .unwrap()
        .expect("dhtd finds the crate's item");
    assert_eq!(
        (got.value(), got.mutable.as_ref().map(|m| m.seq)),
        (&b"v1"[..], Some(1))
    );
    let update = dhtd
        .put_mutable(&key, b"v2", 2, b"salt", Some(1))
        .await
        .unwrap();
    assert!(update.accepted > 0, "{update:?}");
    let mut latest = None;
    blocking(&mut || {
        latest = node
            .dht
            .get_mutable_most_recent(&key.public_key(), Some(b"salt"))
    });
    let latest = latest.expect("the crate finds dhtd's update");
    assert_eq!((latest.value(), latest.seq()), (&b"v2"[..], 2));
}
