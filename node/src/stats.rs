//! What `DhtHandle::stats` reports: rTorrent's `dht_statistics`, with more.

use std::net::SocketAddr;
use std::time::Duration;

use dhtd_actors::counters::{CountersSnapshot, Method};
use dhtd_actors::messages::StoreSummary;
use dhtd_protocol::routing::RoutingStats;
use dhtd_protocol::NodeId;

/// How long a node may hear replies but no queries before its port is
/// called unreachable (rTorrent's wording and interval).
pub(crate) const UNREACHABLE_AFTER: Duration = Duration::from_secs(15 * 60);
/// How long a node may send queries with no reply at all before its port is
/// called firewalled.
pub(crate) const FIREWALLED_AFTER: Duration = Duration::from_secs(60);

/// A condition an operator should know about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// The routing table is empty: no DHT nodes available for a search.
    NoNodes,
    /// Replies arrive but nobody queries us: the port appears unreachable
    /// (forward the UDP port).
    PortUnreachable,
    /// Neither replies nor queries arrive: the port appears firewalled.
    PortFirewalled,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Warning::NoNodes => "no DHT nodes available",
            Warning::PortUnreachable => "port appears unreachable (replies arrive but no queries)",
            Warning::PortFirewalled => "port appears firewalled (no replies and no queries)",
        })
    }
}

/// A node's statistics.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Our node id.
    pub own_id: NodeId,
    /// The bound UDP address.
    pub local_addr: Option<SocketAddr>,
    /// Time since start.
    pub uptime: Duration,
    /// Whether bootstrap has completed.
    pub bootstrap_complete: bool,
    /// BEP 43 read-only.
    pub read_only: bool,
    /// Our IP as other nodes see it, once a majority of responders agree
    /// (the `ip` key of their responses, BEP 42).
    pub external_ip: Option<std::net::IpAddr>,
    /// Nodes per bucket and state.
    pub routing: RoutingStats,
    /// Estimated nodes in the whole DHT.
    pub estimated_dht_size: Option<u64>,
    /// Stored info hashes and peers.
    pub store: StoreSummary,
    /// Traffic and event counters.
    pub traffic: CountersSnapshot,
    /// Current warnings.
    pub warnings: Vec<Warning>,
}

impl Stats {
    pub(crate) fn derive_warnings(&self) -> Vec<Warning> {
        let mut w = Vec::new();
        if self.bootstrap_complete && self.nodes() == 0 {
            w.push(Warning::NoNodes);
        }
        let queries_in: u64 = Method::ALL
            .iter()
            .map(|m| self.traffic.queries_in_of(*m))
            .sum();
        let queries_out: u64 = self.traffic.queries_out.iter().map(|(_, n)| n).sum();
        if self.traffic.responses_in > 0
            && queries_in == 0
            && self.uptime >= UNREACHABLE_AFTER
            && !self.read_only
        {
            w.push(Warning::PortUnreachable);
        }
        if queries_out > 0
            && self.traffic.responses_in == 0
            && queries_in == 0
            && self.uptime >= FIREWALLED_AFTER
        {
            w.push(Warning::PortFirewalled);
        }
        w
    }

    /// Nodes in the routing table.
    pub fn nodes(&self) -> usize {
        let t = &self.routing.total;
        t.good + t.questionable + t.bad
    }
}
