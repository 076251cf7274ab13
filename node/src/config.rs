//! The node's configuration, with documented defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use dhtd_actors::lookups::LookupLimits;
use dhtd_actors::rate_limiter::RateLimits;
use dhtd_protocol::lookup::LookupConfig;
use dhtd_protocol::routing::RoutingConfig;
use dhtd_protocol::store::PeerStoreConfig;
use dhtd_protocol::token::TokenConfig;
use dhtd_protocol::transactions::TransactionConfig;
use dhtd_protocol::NodeId;

/// The routers of the real network, the default [`Config::routers`]. Tests and demos always pass their own (numeric, loopback) list.
pub const DEFAULT_ROUTERS: [&str; 4] = [
    "router.bittorrent.com:6881",
    "router.utorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "dht.libtorrent.org:25401",
];

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
    /// Routers as `host:port`: asked at bootstrap and never added to the
    /// routing table (they answer everyone and would crowd out real nodes).
    /// Default [`DEFAULT_ROUTERS`].
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
    /// Once the external IP is known, switch to a BEP 42 id derived from it
    /// (saved for the next start). Default off.
    pub bep42: bool,
    /// BEP 43 read-only: `ro = 1` on every query, no answers. Default off.
    pub read_only: bool,
    /// k-bucket policy (k, timeouts, one node per IP per bucket).
    pub routing: RoutingConfig,
    /// Lookup parameters (α, k, timeouts, bounds).
    pub lookup: LookupConfig,
    /// Lookups running and waiting at once.
    pub lookup_limits: LookupLimits,
    /// Peer store caps and expiry. The caps stop an announce flood from
    /// exhausting memory.
    pub store: PeerStoreConfig,
    /// Token secret rotation.
    pub tokens: TokenConfig,
    /// Outstanding queries: timeout and cap.
    pub transactions: TransactionConfig,
    /// Inbound per-IP budgets, outbound query budget and spacing.
    pub limits: RateLimits,
    /// Datagrams waiting for the rate limiter at most (they travel in
    /// batches); beyond it they are dropped and counted. Also the capacity,
    /// in messages, of every actor's mailbox. Default 4,096.
    pub inbound_queue: usize,
    /// How often the routing table is saved. Default 5 minutes.
    pub save_interval: Duration,
    /// First wait before a bootstrap that reached no node is retried; it
    /// doubles up to `bootstrap_retry_max`. Default 2 s.
    pub bootstrap_retry: Duration,
    /// Longest wait between bootstrap attempts. Default 5 minutes.
    pub bootstrap_retry_max: Duration,
    /// Seed for every random choice (ids, tokens, transaction ids), for
    /// reproducible tests. Default none: the operating system's randomness.
    pub rng_seed: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 6881)),
            routers: DEFAULT_ROUTERS.iter().map(|s| (*s).to_owned()).collect(),
            bootstrap_nodes: Vec::new(),
            state_dir: None,
            node_id: NodeIdChoice::Persisted,
            bep42: false,
            read_only: false,
            routing: RoutingConfig::default(),
            lookup: LookupConfig::default(),
            lookup_limits: LookupLimits::default(),
            store: PeerStoreConfig::default(),
            tokens: TokenConfig::default(),
            transactions: TransactionConfig::default(),
            limits: RateLimits::default(),
            inbound_queue: 4096,
            save_interval: Duration::from_secs(300),
            bootstrap_retry: Duration::from_secs(2),
            bootstrap_retry_max: Duration::from_secs(300),
            rng_seed: None,
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
