//! Harness for dhtd's end-to-end tests: swarms of real nodes on loopback.
//!
//! Every node binds a distinct 127.0.x.y address (so per-IP rules apply as
//! on a real network) with an OS-chosen port, and bootstraps only from
//! other swarm nodes: no name is resolved and nothing leaves the machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dhtd::Config;

pub use dhtd::swarm::{node_ip, swarm_config as test_config, LocalSwarm as Swarm};

/// Starts a swarm (see [`dhtd::swarm::LocalSwarm::start`]) and waits until
/// every node has bootstrapped.
pub async fn start_swarm(n: usize, seed: u64, tweak: impl Fn(usize, &mut Config)) -> Swarm {
    let swarm = Swarm::start(n, seed, tweak).await.unwrap();
    let behind = swarm.wait_bootstrapped(Duration::from_secs(60)).await;
    assert_eq!(
        behind, 0,
        "{behind} of {n} nodes did not bootstrap within 60 s"
    );
    swarm
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

/// The median and 90th percentile of `values`.
///
/// ```
/// let mut v = [5, 1, 4, 2, 3];
/// assert_eq!(dhtd_tests::median_p90(&mut v), Some((3, 5)));
/// ```
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
