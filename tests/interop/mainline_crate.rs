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
