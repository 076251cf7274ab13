//! The node's configuration, with documented defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use dhtd_actors::socket::Tap;
use dhtd_actors::Clock;
use dhtd_protocol::node::NodeConfig;
use dhtd_protocol::NodeId;

/// The routers of the real network, the default [`Config::routers`]. Tests and demos always pass their own (numeric, loopback) list.
pub const DEFAULT_ROUTERS: [&str; 4] = [
    "router.bittorrent.com:6881",
    "router.utorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "dht.libtorrent.org:25401",
];

pub use dhtd_actors::socket::MAX_RECV_BUFFER;

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

/// Everything a node needs to start. `Config::default()` is a node for the
/// real network on 0.0.0.0:6881 with nothing saved.
#[derive(Debug, Clone)]
pub struct Config {
    /// UDP address to bind. Default `0.0.0.0:6881`.
    pub listen: SocketAddr,
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
    /// Test hook: a copy of every datagram the node sends. Default none.
    pub tap: Option<Tap>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 6881)),
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
            listen,
            routers: Vec::new(),
            bootstrap_nodes: bootstrap.iter().map(ToString::to_string).collect(),
            ..Config::default()
        }
    }
}
