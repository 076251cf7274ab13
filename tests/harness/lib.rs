//! Harness for dhtd's end-to-end tests: swarms of real nodes on loopback.
//!
//! Every node binds a distinct 127.0.x.y address (so per-IP rules apply as
//! on a real network) with an OS-chosen port, and bootstraps only from
//! other swarm nodes: no name is resolved and nothing leaves the machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dhtd::{Config, Dht, DhtHandle, Runtime};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The loopback address of swarm node `i` (127.0.0.1 is left to other tests).
///
/// ```
/// use std::net::IpAddr;
/// assert_eq!(dhtd_tests::node_ip(0), "127.0.0.3".parse::<IpAddr>().unwrap());
/// assert_eq!(dhtd_tests::node_ip(248), "127.0.1.1".parse::<IpAddr>().unwrap());
/// ```
pub fn node_ip(i: usize) -> IpAddr {
    let i = i + 2;
    IpAddr::V4(Ipv4Addr::new(127, 0, (i / 250) as u8, (i % 250) as u8 + 1))
}

/// A config for a test node at `ip` bootstrapping from `bootstrap`.
pub fn test_config(ip: IpAddr, bootstrap: &[SocketAddr]) -> Config {
    let mut config = Config::local(SocketAddr::new(ip, 0), bootstrap);
    // Tests should not wait long for a lone first node's retry.
    config.bootstrap_retry = Duration::from_millis(500);
    config.bootstrap_retry_max = Duration::from_secs(2);
    config
}

/// Polls `check` every 50 ms until it returns true or `timeout` passes.
pub async fn wait_until<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fresh, empty state directory under the system's temp dir.
pub fn temp_state_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dhtd-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Running swarm nodes on one shared runtime.
pub struct Swarm {
    /// The shared actor threads.
    pub runtime: Runtime,
    /// The nodes, in start order.
    pub nodes: Vec<DhtHandle>,
}

impl Swarm {
    /// Starts `n` nodes; node 0 starts alone, each later node bootstraps
    /// from node 0 and two random earlier nodes. `tweak` adjusts each
    /// node's config. Waits until every node has bootstrapped.
    pub async fn start(n: usize, seed: u64, tweak: impl Fn(usize, &mut Config)) -> Swarm {
        let runtime = Runtime::new().unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut nodes: Vec<DhtHandle> = Vec::with_capacity(n);
        for i in 0..n {
            let mut bootstrap = Vec::new();
            if i > 0 {
                bootstrap.push(nodes[0].local_addr());
                for _ in 0..2 {
                    bootstrap.push(nodes[rng.random_range(0..i)].local_addr());
                }
                bootstrap.dedup();
            }
            let mut config = test_config(node_ip(i), &bootstrap);
            config.rng_seed = Some(seed.wrapping_mul(1000).wrapping_add(i as u64));
            tweak(i, &mut config);
            let node = Dht::builder(config).runtime(&runtime).start().unwrap();
            nodes.push(node);
            if i % 20 == 19 {
                // Let a batch settle so later nodes find a populated network.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let all_up = wait_until(Duration::from_secs(60), || {
            let done = nodes.iter().all(|n| n.is_bootstrapped());
            async move { done }
        })
        .await;
        let behind = nodes.iter().filter(|n| !n.is_bootstrapped()).count();
        assert!(
            all_up,
            "{behind} of {n} nodes did not bootstrap within 60 s"
        );
        Swarm { runtime, nodes }
    }

    /// Shuts every node down.
    pub async fn shutdown(self) {
        for n in &self.nodes {
            n.shutdown().await;
        }
    }
}

/// The median and 90th percentile of `values`.
pub fn median_p90<T: Copy + Ord>(values: &mut [T]) -> Option<(T, T)> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let at = |p: f64| values[((values.len() - 1) as f64 * p).round() as usize];
    Some((at(0.5), at(0.9)))
}

/// A bare UDP socket speaking KRPC by hand, for wire-level checks.
pub struct RawPeer {
    /// The socket, with a short read timeout.
    pub socket: std::net::UdpSocket,
}

impl RawPeer {
    /// Binds `ip`:0 with a 1 s read timeout.
    pub fn bind(ip: IpAddr) -> RawPeer {
        let socket = std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        RawPeer { socket }
    }

    /// Sends `datagram` to `to` and returns the first response or error from
    /// `to`, if one arrives within the timeout. Queries the node sends us
    /// meanwhile (it pings nodes that query it) are skipped.
    pub fn ask(&self, to: SocketAddr, datagram: &[u8]) -> Option<Vec<u8>> {
        self.socket.send_to(datagram, to).unwrap();
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            let reply = self.receive_from(to)?;
            let is_query = matches!(
                dhtd_protocol::krpc::Message::decode(&reply),
                Ok(dhtd_protocol::krpc::Message {
                    body: dhtd_protocol::krpc::Body::Query { .. },
                    ..
                })
            );
            if !is_query {
                return Some(reply);
            }
        }
        None
    }

    /// The next datagram from `from`, if one arrives within the timeout.
    pub fn receive_from(&self, from: SocketAddr) -> Option<Vec<u8>> {
        let mut buf = [0u8; 2048];
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            match self.socket.recv_from(&mut buf) {
                Ok((n, src)) if src == from => return Some(buf[..n].to_vec()),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    }

    /// A query from this peer (id `sender`), encoded.
    pub fn query(
        tid: &[u8],
        sender: dhtd::NodeId,
        query: dhtd_protocol::krpc::Query<'_>,
        read_only: bool,
    ) -> Vec<u8> {
        dhtd_protocol::krpc::Message {
            transaction_id: tid,
            version: None,
            requester_ip: None,
            read_only,
            body: dhtd_protocol::krpc::Body::Query { sender, query },
        }
        .to_bytes()
    }
}
