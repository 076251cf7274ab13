//! The simulated network: which datagrams arrive, and after how long.
//!
//! Every node has its own address; a datagram is lost with probability
//! [`NetworkConfig::loss`], and otherwise arrives after a one-way delay
//! drawn uniformly between [`NetworkConfig::min_latency`] and
//! [`NetworkConfig::max_latency`]. A datagram for an address no node holds,
//! or for a node that is offline, is undeliverable. All randomness comes
//! from the RNG passed in, so a seed replays exactly.

use std::net::SocketAddr;
use std::time::Duration;

use rand::{Rng, RngCore};

/// Parameters of the network.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfig {
    /// Probability that a datagram is lost, 0.0 to 1.0. Defaults to 0.
    pub loss: f64,
    /// Shortest one-way delay. Defaults to 10 ms.
    pub min_latency: Duration,
    /// Longest one-way delay. Defaults to 120 ms.
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

/// Traffic counters of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Datagrams handed to the network.
    pub sent: u64,
    /// Datagrams the network lost.
    pub lost: u64,
    /// Datagrams for no node, or for a node that was offline.
    pub undeliverable: u64,
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

/// The network's model and its counters.
#[derive(Debug)]
pub struct Network {
    config: NetworkConfig,
    stats: NetStats,
    trace: Option<Vec<Traced>>,
}

impl Network {
    /// A network with this model.
    pub fn new(config: NetworkConfig) -> Self {
        Network {
            config,
            stats: NetStats::default(),
            trace: None,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Starts keeping every datagram sent from now on.
    pub fn start_trace(&mut self) {
        self.trace = Some(Vec::new());
    }

    /// The datagrams kept since the last call.
    pub fn take_trace(&mut self) -> Vec<Traced> {
        self.trace.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// A datagram from `from` to `to`: its delay, or `None` if it is lost.
    pub fn transmit(
        &mut self,
        rng: &mut impl RngCore,
        from: SocketAddr,
        to: SocketAddr,
        bytes: &[u8],
    ) -> Option<Duration> {
        self.stats.sent += 1;
        if let Some(trace) = &mut self.trace {
            trace.push(Traced {
                from,
                to,
                bytes: bytes.to_vec(),
            });
        }
        if self.config.loss > 0.0 && rng.random::<f64>() < self.config.loss {
            self.stats.lost += 1;
            return None;
        }
        let span = self
            .config
            .max_latency
            .saturating_sub(self.config.min_latency);
        Some(self.config.min_latency + span.mul_f64(rng.random::<f64>()))
    }

    /// A datagram reached no node.
    pub fn undeliverable(&mut self) {
        self.stats.undeliverable += 1;
    }
}
