//! The node's configuration: everything that decides how it behaves,
//! shared by the daemon and the simulator. Each part documents its defaults.

use std::time::Duration;

use crate::lookup::LookupConfig;
use crate::rate_limit::Rate;
use crate::routing::RoutingConfig;
use crate::store::PeerStoreConfig;
use crate::token::TokenConfig;
use crate::transactions::TransactionConfig;

/// Everything that decides how a node behaves, shared by the daemon and
/// the simulator. Each part documents its defaults.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeConfig {
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
    /// Outstanding queries: timeout, attempts, cap.
    pub transactions: TransactionConfig,
    /// Inbound per-IP budgets, outbound query budget and spacing.
    pub limits: RateLimits,
    /// Bootstrap retries and the nodes added at run time.
    pub bootstrap: BootstrapConfig,
    /// BEP 43 read-only: `ro = 1` on every query, no answers. Default off.
    pub read_only: bool,
    /// Once the external IP is known, choose a BEP 42 id derived from it
    /// (the driver saves it for the next start). Default off.
    pub bep42: bool,
}

/// Rate limits, each with the reason it exists.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// Queries accepted per source IP. Defends the node's CPU and upload
    /// against one abusive or broken peer. Default 20/s, burst 40.
    pub queries_per_ip: Rate,
    /// Queries accepted per source /24 (IPv4) or /64 (IPv6), over all its
    /// addresses: one party holds many addresses of one network cheaply.
    /// Default 200/s, burst 400 (ten addresses at their full budget).
    pub queries_per_prefix: Rate,
    /// Responses and errors accepted per source IP; they are matched against
    /// our own queries, so this only bounds floods. Default 200/s, burst 400.
    pub responses_per_ip: Rate,
    /// Source IPs tracked at once; bounds the limiter's memory under a
    /// spoofed flood. Default 65,536.
    pub max_tracked_ips: usize,
    /// Queries we send per second, so that no node bans us as a spammer.
    /// Default 250/s, burst 100.
    pub outbound_queries: Rate,
    /// Queries waiting for the budget or their spacing; beyond this they
    /// are not sent. Default 4,096.
    pub max_queued_queries: usize,
    /// Minimum time between two queries of the same method for the same
    /// target to the same node; a repeat waits until then. Default 1 s.
    pub query_spacing: Duration,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            queries_per_ip: Rate {
                per_second: 20.0,
                burst: 40.0,
            },
            queries_per_prefix: Rate {
                per_second: 200.0,
                burst: 400.0,
            },
            responses_per_ip: Rate {
                per_second: 200.0,
                burst: 400.0,
            },
            max_tracked_ips: 65_536,
            outbound_queries: Rate {
                per_second: 250.0,
                burst: 100.0,
            },
            max_queued_queries: 4096,
            query_spacing: Duration::from_secs(1),
        }
    }
}

/// Limits of the lookup pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupLimits {
    /// Lookups running at once; more wait their turn. Default 64.
    pub max_running: usize,
    /// Lookups waiting (for a slot, or for bootstrap); beyond this a new one
    /// ends at once with [`LookupEnd::Refused`]. Default 1,024.
    pub max_waiting: usize,
}

impl Default for LookupLimits {
    fn default() -> Self {
        LookupLimits {
            max_running: 64,
            max_waiting: 1024,
        }
    }
}

/// Bootstrap timing and bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootstrapConfig {
    /// First wait before a bootstrap that reached no node is retried, and
    /// before a node with fewer than k nodes looks again; it doubles up to
    /// `retry_max`. Default 2 s.
    pub retry: Duration,
    /// Longest wait between attempts. Default 5 minutes.
    pub retry_max: Duration,
    /// Longest wait between two lookups of our own id once bootstrapped
    /// (the wait doubles from `retry`): how soon a node finds the nodes
    /// that joined near it, against a lookup's dozen queries. Default 5
    /// minutes.
    pub look_again_max: Duration,
    /// Nodes added at run time (by hand, a .torrent's `nodes`, PORT
    /// messages) kept as bootstrap sources; the oldest are forgotten, so a
    /// stream of PORT messages cannot grow the list or the queries each
    /// attempt sends. Default 32.
    pub max_added_nodes: usize,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        BootstrapConfig {
            retry: Duration::from_secs(2),
            retry_max: Duration::from_secs(300),
            look_again_max: Duration::from_secs(300),
            max_added_nodes: 32,
        }
    }
}
