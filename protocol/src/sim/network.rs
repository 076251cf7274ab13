//! The simulated network: which datagrams arrive, and after how long.
//!
//! Every node has its own address. A datagram is lost with probability
//! [`NetworkConfig::loss`]; otherwise it arrives after a one-way delay.
//! With the uniform model (the default of the small tests) the delay is
//! drawn between [`NetworkConfig::min_latency`] and
//! [`NetworkConfig::max_latency`]; once an address is [`Network::attach`]ed
//! with an [`Endpoint`], its datagrams take the sum of the two ends' access
//! delays (heavy-tailed across nodes, so across pairs), a jitter, and the
//! sender's extra delay when it is slow. An endpoint behind a NAT receives
//! only from addresses it sent to within [`NAT_MAPPING_LIFETIME`]. A
//! datagram for an address no node holds, or for a node that is offline,
//! is undeliverable. All randomness comes from the RNG passed in, so a seed
//! replays exactly.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::{Rng, RngCore};

use crate::rate_limit::{retain_and_shrink, sweep_due};

/// How long a NAT keeps a mapping open without traffic: common home
/// routers keep UDP mappings 30 s to a few minutes (RFC 4787 asks for at
/// least 2 minutes; many do less).
pub const NAT_MAPPING_LIFETIME: Duration = Duration::from_secs(60);

/// Parameters of the network.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfig {
    /// Probability that a datagram is lost, 0.0 to 1.0. Defaults to 0.
    pub loss: f64,
    /// Shortest one-way delay between addresses without an [`Endpoint`].
    /// Defaults to 10 ms.
    pub min_latency: Duration,
    /// Longest one-way delay between addresses without an [`Endpoint`].
    /// Defaults to 120 ms.
    pub max_latency: Duration,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            loss: 0.0,
            min_latency: Duration::from_millis(10),
            max_latency: Duration::from_millis(120),
        }
    }
}

/// What the network knows of one node's connection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Endpoint {
    /// Its share of every one-way delay.
    pub access: Duration,
    /// Added to every datagram it sends: a node that answers slowly.
    pub slow: Duration,
    /// Whether it is behind a NAT that lets in only answers.
    pub behind_nat: bool,
}

/// Traffic counters of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Datagrams handed to the network.
    pub sent: u64,
    /// Datagrams the network lost.
    pub lost: u64,
    /// Datagrams for no node, or for a node that was offline.
    pub undeliverable: u64,
    /// Datagrams a NAT did not let in.
    pub blocked: u64,
    /// Datagrams from another shard that reached a shard already past
    /// their arrival time: a fault of the threaded scheduler, which must
    /// keep this at zero (they run at the shard's time, not their own).
    pub late: u64,
}

/// One datagram as it crossed the network (when tracing is on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traced {
    /// Sender.
    pub from: SocketAddr,
    /// Destination.
    pub to: SocketAddr,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// A NAT's open mappings: the addresses its node sent to, and when. The
/// driver keeps one beside each node behind a NAT, and checks it when a
/// datagram arrives.
#[derive(Debug, Default)]
pub(crate) struct Mappings {
    open: HashMap<SocketAddr, Instant>,
    next_sweep: Option<Instant>,
}

impl Mappings {
    /// Its node sent to `to` at `now`.
    pub(crate) fn opened(&mut self, now: Instant, to: SocketAddr) {
        if sweep_due(&mut self.next_sweep, now) {
            retain_and_shrink(&mut self.open, |_, at| {
                now.saturating_duration_since(*at) < NAT_MAPPING_LIFETIME
            });
        }
        self.open.insert(to, now);
    }

    /// Whether a datagram from `from` arriving at `now` gets in.
    pub(crate) fn lets_in(&self, now: Instant, from: &SocketAddr) -> bool {
        self.open
            .get(from)
            .is_some_and(|at| now.saturating_duration_since(*at) < NAT_MAPPING_LIFETIME)
    }
}

/// The network's model: what it does to a datagram. It holds no state that
/// sending changes (NAT mappings and counters are the driver's, beside each
/// node), so every shard of a simulation reads it at once.
#[derive(Debug)]
pub struct Network {
    config: NetworkConfig,
    endpoints: HashMap<SocketAddr, Endpoint>,
}

impl Network {
    /// A network with this model.
    pub fn new(config: NetworkConfig) -> Self {
        Network {
            config,
            endpoints: HashMap::new(),
        }
    }

    /// Gives `addr` its own connection (replacing any before).
    pub fn attach(&mut self, addr: SocketAddr, endpoint: Endpoint) {
        self.endpoints.insert(addr, endpoint);
    }

    /// Forgets `addr`'s connection (its node left for good).
    pub fn detach(&mut self, addr: &SocketAddr) {
        self.endpoints.remove(addr);
    }

    /// `addr`'s connection, if it was given one.
    pub fn endpoint(&self, addr: &SocketAddr) -> Option<&Endpoint> {
        self.endpoints.get(addr)
    }

    /// A datagram from `from` to `to`: its delay, or `None` if it is lost.
    /// (A NAT in front of `to` is the driver's to check, on arrival.)
    pub fn delay(
        &self,
        rng: &mut impl RngCore,
        from: &SocketAddr,
        to: &SocketAddr,
    ) -> Option<Duration> {
        if self.config.loss > 0.0 && rng.random::<f64>() < self.config.loss {
            return None;
        }
        match (self.endpoints.get(from), self.endpoints.get(to)) {
            (Some(s), Some(r)) => {
                // ±10% around the path's delay: queues along the way.
                let jitter = JITTER_FLOOR + 0.2 * rng.random::<f64>();
                Some((s.access + r.access).mul_f64(jitter) + s.slow)
            }
            _ => {
                let span = self
                    .config
                    .max_latency
                    .saturating_sub(self.config.min_latency);
                Some(self.config.min_latency + span.mul_f64(rng.random::<f64>()))
            }
        }
    }

    /// No datagram between endpoints with these access delays takes less
    /// (the sender's slowness only adds).
    pub(crate) fn path_floor(a: Duration, b: Duration) -> Duration {
        (a + b).mul_f64(JITTER_FLOOR)
    }

    /// No datagram to or from an address without an [`Endpoint`] takes
    /// less.
    pub(crate) fn uniform_floor(&self) -> Duration {
        self.config.min_latency
    }
}

/// The smallest factor jitter puts on a path's delay.
const JITTER_FLOOR: f64 = 0.9;

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn no_datagram_is_faster_than_its_paths_floor() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut net = Network::new(NetworkConfig::default());
        let addr = |i: u16| SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 6881));
        // Endpoints with small access delays, one slow, and addresses
        // without one (the uniform model's minimum applies to them).
        for i in 0..50u16 {
            let endpoint = Endpoint {
                access: Duration::from_micros(300 + 97 * u64::from(i)),
                slow: if i == 7 {
                    Duration::from_millis(500)
                } else {
                    Duration::ZERO
                },
                behind_nat: false,
            };
            net.attach(addr(i), endpoint);
        }
        let access = |i: u16| net.endpoint(&addr(i)).map(|e| e.access);
        let floor = |a: u16, b: u16| match (access(a), access(b)) {
            (Some(x), Some(y)) => Network::path_floor(x, y),
            _ => net.uniform_floor(),
        };
        let mut closest = f64::MAX;
        for _ in 0..20_000 {
            let (a, b) = (rng.random_range(0..60), rng.random_range(0..60));
            if let Some(d) = net.delay(&mut rng, &addr(a), &addr(b)) {
                let (d, least) = (d.as_secs_f64(), floor(a, b).as_secs_f64());
                assert!(d >= least, "{d} < {least} from {a} to {b}");
                closest = closest.min(d / least);
            }
        }
        // Close to it: a loose bound would hold shards back for nothing.
        assert!(
            closest < 1.02,
            "the fastest path took {closest} of its floor"
        );
    }
}
