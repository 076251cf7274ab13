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

/// A NAT's open mappings: the addresses its node sent to, and when.
#[derive(Debug, Default)]
struct Mappings {
    open: HashMap<SocketAddr, Instant>,
    next_sweep: Option<Instant>,
}

impl Mappings {
    fn opened(&mut self, now: Instant, to: SocketAddr) {
        if sweep_due(&mut self.next_sweep, now) {
            retain_and_shrink(&mut self.open, |_, at| {
                now.saturating_duration_since(*at) < NAT_MAPPING_LIFETIME
            });
        }
        self.open.insert(to, now);
    }

    fn lets_in(&self, now: Instant, from: &SocketAddr) -> bool {
        self.open
            .get(from)
            .is_some_and(|at| now.saturating_duration_since(*at) < NAT_MAPPING_LIFETIME)
    }
}

#[derive(Debug)]
struct Attached {
    endpoint: Endpoint,
    nat: Option<Mappings>,
}

/// The network's model and its counters.
#[derive(Debug)]
pub struct Network {
    config: NetworkConfig,
    endpoints: HashMap<SocketAddr, Attached>,
    stats: NetStats,
    trace: Option<Vec<Traced>>,
}

impl Network {
    /// A network with this model.
    pub fn new(config: NetworkConfig) -> Self {
        Network {
            config,
            endpoints: HashMap::new(),
            stats: NetStats::default(),
            trace: None,
        }
    }

    /// Gives `addr` its own connection (replacing any before).
    pub fn attach(&mut self, addr: SocketAddr, endpoint: Endpoint) {
        let nat = endpoint.behind_nat.then(Mappings::default);
        self.endpoints.insert(addr, Attached { endpoint, nat });
    }

    /// Forgets `addr`'s connection (its node left for good).
    pub fn detach(&mut self, addr: &SocketAddr) {
        self.endpoints.remove(addr);
    }

    /// `addr`'s connection, if it was given one.
    pub fn endpoint(&self, addr: &SocketAddr) -> Option<&Endpoint> {
        self.endpoints.get(addr).map(|a| &a.endpoint)
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

    /// A datagram from `from` to `to` sent at `now`: its delay, or `None`
    /// if it is lost or a NAT keeps it out.
    pub fn transmit(
        &mut self,
        rng: &mut impl RngCore,
        now: Instant,
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
        let sender = self.endpoints.get_mut(&from).map(|a| {
            if let Some(nat) = &mut a.nat {
                nat.opened(now, to);
            }
            a.endpoint.clone()
        });
        if self.config.loss > 0.0 && rng.random::<f64>() < self.config.loss {
            self.stats.lost += 1;
            return None;
        }
        let receiver = self.endpoints.get(&to);
        if let Some(nat) = receiver.and_then(|a| a.nat.as_ref()) {
            if !nat.lets_in(now, &from) {
                self.stats.blocked += 1;
                return None;
            }
        }
        match (sender, receiver) {
            (Some(s), Some(r)) => {
                // ±10% around the path's delay: queues along the way.
                let jitter = 0.9 + 0.2 * rng.random::<f64>();
                Some((s.access + r.endpoint.access).mul_f64(jitter) + s.slow)
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

    /// A datagram reached no node.
    pub fn undeliverable(&mut self) {
        self.stats.undeliverable += 1;
    }
}
