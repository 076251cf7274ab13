//! The node's configuration, with documented defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use dhtd_protocol::{Family, NodeId};

pub use dhtd_protocol::item::ItemStoreConfig;
pub use dhtd_protocol::lookup::LookupConfig;
pub use dhtd_protocol::node::{BootstrapConfig, LookupLimits, NodeConfig, RateLimits};
pub use dhtd_protocol::rate_limit::Rate;
pub use dhtd_protocol::routing::RoutingConfig;
pub use dhtd_protocol::store::PeerStoreConfig;
pub use dhtd_protocol::token::TokenConfig;
pub use dhtd_protocol::transactions::TransactionConfig;

use crate::clock::Clock;
use crate::error::ConfigError;

/// The routers of the real network, the default [`Config::routers`]. Tests and demos always pass their own (numeric, loopback) list.
pub const DEFAULT_ROUTERS: [&str; 4] = [
    "router.bittorrent.com:6881",
    "router.utorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "dht.libtorrent.org:25401",
];

/// The largest [`Config::recv_buffer`]: 1 GiB.
pub const MAX_RECV_BUFFER: usize = dhtd_actors::socket::MAX_RECV_BUFFER;

/// The default [`Config::recv_buffer`]: 2 MiB.
pub const DEFAULT_RECV_BUFFER: usize = 2 << 20;

/// Where the node id comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NodeIdChoice {
    /// Kept in the state dir across runs (rTorrent's choice for long-running
    /// nodes); a fresh random one the first time. The default.
    #[default]
    Persisted,
    /// A fresh random id on every start (bip_dht's advice for escaping a ban).
    Random,
    /// This id.
    Fixed(NodeId),
}

/// Everything a node needs to start. `Config::default()` is a dual-stack
/// node for the real network on `0.0.0.0:6881` and `[::]:6881` with nothing
/// saved.
#[derive(Debug, Clone)]
pub struct Config {
    /// UDP addresses to bind, at most one per address family (BEP 32): the
    /// families listed are the ones the node serves, each with its own
    /// routing table under the one node id. Default `0.0.0.0:6881` and
    /// `[::]:6881`; an IPv6 socket is bound IPv6-only, so both can share
    /// a port.
    pub listen: Vec<SocketAddr>,
    /// Routers as `host:port`: well-known entry points, asked for nodes at
    /// bootstrap and whenever the table holds fewer than k nodes, and kept
    /// out of the routing table (they answer everyone and would crowd out
    /// real nodes) unless our own-id lookup finds one among our k closest
    /// nodes, as in a small private network. Default [`DEFAULT_ROUTERS`].
    pub routers: Vec<String>,
    /// Ordinary nodes to bootstrap from as `host:port` (a private swarm's
    /// members, a known peer): asked at bootstrap and kept in the table
    /// when they answer, like any node. Default none.
    pub bootstrap_nodes: Vec<String>,
    /// Where the node id and the routing-table cache are kept. Default none:
    /// nothing is read or written.
    pub state_dir: Option<PathBuf>,
    /// Node id policy. Default [`NodeIdChoice::Persisted`].
    pub node_id: NodeIdChoice,
    /// How the node behaves: routing, lookups, store, tokens, transactions,
    /// rate limits, bootstrap, read-only, BEP 42. The simulator takes the
    /// same struct.
    pub dht: NodeConfig,
    /// Datagrams waiting for the rate limiter at most (they travel in
    /// batches); beyond it they are dropped and counted. Also the capacity,
    /// in messages, of every actor's mailbox. Default 4,096.
    pub inbound_queue: usize,
    /// How often the routing table is saved, besides once as soon as
    /// bootstrap completes and at shutdown: a node that is killed loses at
    /// most this much of its table. Default 1 minute (a write of a few
    /// kilobytes).
    pub save_interval: Duration,
    /// The UDP socket's receive buffer (SO_RCVBUF) to ask for, in bytes:
    /// where datagrams wait while the node is busy, and beyond which the
    /// kernel drops them from every source alike (counted in
    /// `dht_socket_receive_overflow_total`). `None` keeps the system's
    /// default (`net.core.rmem_default`, usually 208 KiB). Linux grants at
    /// most `net.core.rmem_max` unless the process has CAP_NET_ADMIN (then
    /// SO_RCVBUFFORCE is used); the size granted is logged at start and
    /// exported as `dht_socket_recv_buffer_bytes`. At most
    /// [`MAX_RECV_BUFFER`] (1 GiB). Default 2 MiB, as mldht
    /// advises.
    pub recv_buffer: Option<usize>,
    /// Seed for every random choice (ids, tokens, transaction ids), for
    /// reproducible tests. Default none: the operating system's randomness.
    pub rng_seed: Option<u64>,
    /// The clock the node reads. Default the real one; tests use a manual
    /// one to move time themselves.
    pub clock: Clock,
    /// A copy of every datagram the node sends, for tests that watch the
    /// wire. Default none.
    pub tap: Option<Tap>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![
                SocketAddr::from(([0, 0, 0, 0], 6881)),
                SocketAddr::from(([0u16; 8], 6881)),
            ],
            routers: DEFAULT_ROUTERS.iter().map(|s| (*s).to_owned()).collect(),
            bootstrap_nodes: Vec::new(),
            state_dir: None,
            node_id: NodeIdChoice::Persisted,
            dht: NodeConfig::default(),
            inbound_queue: 4096,
            save_interval: Duration::from_secs(60),
            recv_buffer: Some(DEFAULT_RECV_BUFFER),
            rng_seed: None,
            clock: Clock::Real,
            tap: None,
        }
    }
}

impl Config {
    /// A node on `listen` with no routers that bootstraps from the ordinary
    /// nodes `bootstrap` only (an empty list for the first node of a
    /// private swarm).
    pub fn local(listen: SocketAddr, bootstrap: &[SocketAddr]) -> Self {
        Config {
            listen: vec![listen],
            routers: Vec::new(),
            bootstrap_nodes: bootstrap.iter().map(ToString::to_string).collect(),
            ..Config::default()
        }
    }
}

impl Config {
    /// Checks every setting, naming the first one the node cannot run
    /// with. [`DhtBuilder::start`](crate::DhtBuilder::start) calls it, so
    /// a bad setting is refused before anything is bound.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listen.is_empty() {
            return Err(ConfigError::new("listen", "needs at least one address"));
        }
        for family in Family::ALL {
            let of_family = self.listen.iter().filter(|a| Family::of(a) == family);
            if of_family.count() > 1 {
                return Err(ConfigError::new(
                    "listen",
                    format!("at most one {family} address (one socket per address family)"),
                ));
            }
        }
        if self.inbound_queue == 0 {
            return Err(ConfigError::new("inbound_queue", "must be at least 1"));
        }
        if self.save_interval.is_zero() {
            return Err(ConfigError::new(
                "save_interval",
                "must be longer than zero",
            ));
        }
        if let Some(bytes) = self.recv_buffer {
            if bytes == 0 || bytes > MAX_RECV_BUFFER {
                return Err(ConfigError::new(
                    "recv_buffer",
                    format!("must be between 1 byte and {MAX_RECV_BUFFER} bytes, not {bytes}"),
                ));
            }
        }
        self.dht.validate().map_err(ConfigError::of_core)?;
        Ok(())
    }
}

/// One datagram the node sent: from, to, bytes.
pub type SentDatagram = (std::net::SocketAddr, std::net::SocketAddr, Vec<u8>);

/// A copy of every datagram a node sends ([`Config::tap`]), for tests.
#[derive(Debug, Clone, Default)]
pub struct Tap(dhtd_actors::socket::Tap);

impl Tap {
    /// An empty tap.
    pub fn new() -> Self {
        Tap::default()
    }

    /// Datagrams sent so far.
    pub fn len(&self) -> usize {
        self.0.lock().sent.len()
    }

    /// Whether nothing was sent yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The datagrams sent after the first `skip`, copied.
    pub fn since(&self, skip: usize) -> Vec<SentDatagram> {
        self.0.lock().sent.get(skip..).unwrap_or_default().to_vec()
    }

    /// Holds back what the tapped nodes send from now on, until
    /// [`Tap::release`]: with a manual clock, every node then runs what
    /// fell due before any hears what the others sent meanwhile (as the
    /// simulator orders it), whatever the threads' order.
    pub fn hold(&self) {
        self.0.lock().hold();
    }

    /// Sends what was held, in order, and stops holding.
    pub fn release(&self) {
        self.0.lock().release();
    }

    pub(crate) fn driver(&self) -> dhtd_actors::socket::Tap {
        self.0.clone()
    }
}
