//! A local DHT of dhtd nodes on loopback, in one process: for `dhtd swarm`,
//! load tests and end-to-end tests.
//!
//! Node `i` binds its own 127.x.y.1 address, on its own /24 (so per-IP rules apply as on
//! the real network) with an OS-chosen port, and bootstraps only from
//! earlier swarm nodes, given by number: no name is resolved and nothing
//! leaves the machine. All nodes share one [`Runtime`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{Config, Dht, Runtime, StartError};

/// Nodes started before the swarm pauses for them to settle, so later
/// nodes join a network that already knows itself.
const BATCH: usize = 20;

/// The loopback address of swarm node `i`: 127.0.3.1, 127.0.4.1, …, each
/// on its own /24, as honest nodes on the Internet mostly are, so that the
/// per-network rules (one node of a /24 per bucket) apply as they would
/// there. 127.0.0.x and 127.0.1.x are left to whatever else runs on the
/// machine; 62,000 nodes fit.
///
/// ```
/// use std::net::IpAddr;
/// assert_eq!(dhtd::swarm::node_ip(0), "127.0.3.1".parse::<IpAddr>().unwrap());
/// assert_eq!(dhtd::swarm::node_ip(247), "127.1.0.1".parse::<IpAddr>().unwrap());
/// ```
pub fn node_ip(i: usize) -> IpAddr {
    let i = i + 3;
    IpAddr::V4(Ipv4Addr::new(127, (i / 250) as u8, (i % 250) as u8, 1))
}

/// A config for a swarm node at `ip` bootstrapping from `bootstrap`, with
/// short bootstrap retries (a lone first node retries quickly).
pub fn swarm_config(ip: IpAddr, bootstrap: &[SocketAddr]) -> Config {
    let mut config = Config::local(SocketAddr::new(ip, 0), bootstrap);
    config.dht.bootstrap.retry = Duration::from_millis(500);
    config.dht.bootstrap.retry_max = Duration::from_secs(2);
    config
}

/// Turns off the rules that count per address (per IPv6 /64), for swarm
/// nodes that share one: IPv6 loopback has a single address, `::1`, so an
/// IPv6 swarm on one machine is many nodes on one host. The routing
/// table's one-node-per-address rule, the lookups' per-address rules (and
/// their suspicion of a node that names others at its own address), the
/// inbound budgets and the store's per-address quotas would each stop it.
pub fn one_host(config: &mut Config) {
    let dht = &mut config.dht;
    dht.routing.restrict_ips = false;
    dht.lookup.restrict_ips = false;
    let unlimited = dhtd_protocol::rate_limit::Rate {
        per_second: 1e9,
        burst: 1e9,
    };
    dht.limits.queries_per_ip = unlimited;
    dht.limits.queries_per_prefix = unlimited;
    dht.limits.responses_per_ip = unlimited;
    dht.store.max_announces_per_ip = usize::MAX;
    dht.store.max_announces_per_prefix = usize::MAX;
    dht.store.max_ports_per_ip = usize::MAX;
}

/// The IPv6 loopback address with an OS-chosen port.
pub fn ipv6_loopback() -> SocketAddr {
    SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), 0)
}

/// Running swarm nodes.
pub struct LocalSwarm {
    /// The shared actor threads.
    pub runtime: Runtime,
    /// The nodes, in start order.
    pub nodes: Vec<Dht>,
}

impl LocalSwarm {
    /// Starts `n` nodes: node 0 alone, each later one from node 0 and two
    /// random earlier nodes. `tweak` adjusts each node's config. Does not
    /// wait for bootstrap; see [`LocalSwarm::wait_bootstrapped`].
    pub async fn start(
        n: usize,
        seed: u64,
        tweak: impl Fn(usize, &mut Config),
    ) -> Result<LocalSwarm, StartError> {
        let runtime = Runtime::new().map_err(StartError::Runtime)?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut nodes: Vec<Dht> = Vec::with_capacity(n);
        for i in 0..n {
            let mut bootstrap = Vec::new();
            if i > 0 {
                // Every family of each: a dual-stack node bootstraps both.
                bootstrap.extend(nodes[0].local_addrs());
                for _ in 0..2 {
                    bootstrap.extend(nodes[rng.random_range(0..i)].local_addrs());
                }
                bootstrap.sort();
                bootstrap.dedup();
            }
            let mut config = swarm_config(node_ip(i), &bootstrap);
            config.rng_seed = Some(seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
            tweak(i, &mut config);
            nodes.push(Dht::builder(config).runtime(&runtime).start()?);
            if i % BATCH == BATCH - 1 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(LocalSwarm { runtime, nodes })
    }

    /// Waits until every node has bootstrapped or `timeout` passes; returns
    /// how many have not.
    pub async fn wait_bootstrapped(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let behind = self.nodes.iter().filter(|n| !n.is_bootstrapped()).count();
            if behind == 0 || Instant::now() >= deadline {
                return behind;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Shuts every node down.
    pub async fn shutdown(&self) {
        for n in &self.nodes {
            n.shutdown().await;
        }
    }
}
