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
    /// The latest search a caller asked for reached no node.
    SearchUnsuccessful,
    /// The latest announce a caller asked for was accepted by no node.
    AnnounceFailed,
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
            Warning::SearchUnsuccessful => "search unsuccessful (no replies)",
            Warning::AnnounceFailed => "announce failed (no node accepted it)",
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
    /// The cap on stored info hashes (`max_info_hashes`).
    pub store_info_hashes_limit: usize,
    /// Traffic and event counters.
    pub traffic: CountersSnapshot,
    /// Current warnings.
    pub warnings: Vec<Warning>,
}

impl Warning {
    /// Its position in the `dht_warning{warning}` gauge's labels.
    pub(crate) fn gauge_index(self) -> usize {
        match self {
            Warning::NoNodes => 0,
            Warning::SearchUnsuccessful => 1,
            Warning::AnnounceFailed => 2,
            Warning::PortUnreachable => 3,
            Warning::PortFirewalled => 4,
        }
    }
}

impl Stats {
    /// The values this node reports to the process's gauges.
    pub(crate) fn gauge_values(&self) -> dhtd_actors::metrics::GaugeValues {
        let t = &self.routing.total;
        let mut warnings = [0.0; 5];
        for w in &self.warnings {
            warnings[w.gauge_index()] = 1.0;
        }
        dhtd_actors::metrics::GaugeValues {
            nodes: [t.good as f64, t.questionable as f64, t.bad as f64],
            buckets: self.routing.buckets.len() as f64,
            estimated_size: self.estimated_dht_size.unwrap_or(0) as f64,
            info_hashes: self.store.info_hashes as f64,
            peers: self.store.peers as f64,
            info_hashes_limit: self.store_info_hashes_limit as f64,
            bootstrapped: if self.bootstrap_complete { 1.0 } else { 0.0 },
            running: 1.0,
            inbound_backlog: self.traffic.inbound_backlog as f64,
            warnings,
        }
    }

    pub(crate) fn derive_warnings(&self) -> Vec<Warning> {
        let mut w = Vec::new();
        if self.bootstrap_complete && self.nodes() == 0 {
            w.push(Warning::NoNodes);
        }
        if self.traffic.last_search_failed {
            w.push(Warning::SearchUnsuccessful);
        }
        if self.traffic.last_announce_failed {
            w.push(Warning::AnnounceFailed);
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

fn duration_text(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        _ => format!("{}h{}m", s / 3600, s % 3600 / 60),
    }
}

/// rTorrent's `dht_statistics`, as text for operators.
impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = &self.routing.total;
        let addr = self
            .local_addr
            .map_or_else(|| "-".to_owned(), |a| a.to_string());
        writeln!(
            f,
            "node {} on {addr}, up {}{}",
            self.own_id,
            duration_text(self.uptime),
            if self.read_only { ", read-only" } else { "" }
        )?;
        writeln!(
            f,
            "bootstrap {}; external address {}",
            if self.bootstrap_complete {
                "complete"
            } else {
                "in progress"
            },
            self.external_ip
                .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
        )?;
        writeln!(
            f,
            "routing table: {} nodes ({} good, {} questionable, {} bad) in {} buckets, about {} nodes in the DHT",
            self.nodes(),
            t.good,
            t.questionable,
            t.bad,
            self.routing.buckets.len(),
            self.estimated_dht_size.unwrap_or(0)
        )?;
        for (i, b) in self.routing.buckets.iter().enumerate() {
            writeln!(
                f,
                "  bucket {i:>3}: {} good, {} questionable, {} bad, {} cached",
                b.good, b.questionable, b.bad, b.replacements
            )?;
        }
        writeln!(
            f,
            "store: {} info hashes (cap {}), {} peers",
            self.store.info_hashes, self.store_info_hashes_limit, self.store.peers
        )?;
        let tr = &self.traffic;
        writeln!(
            f,
            "traffic: in {} packets / {} bytes, out {} packets / {} bytes",
            tr.packets_in, tr.bytes_in, tr.packets_out, tr.bytes_out
        )?;
        let list = |pairs: Vec<(&str, u64)>| {
            pairs
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(
            f,
            "queries in: {}",
            list(tr.queries_in.iter().map(|(m, n)| (m.label(), *n)).collect())
        )?;
        writeln!(
            f,
            "queries out: {}",
            list(
                tr.queries_out
                    .iter()
                    .map(|(m, n)| (m.label(), *n))
                    .collect()
            )
        )?;
        writeln!(
            f,
            "responses in {}, errors in {}, errors out {}, timeouts {}",
            tr.responses_in, tr.errors_in, tr.errors_out, tr.timeouts
        )?;
        writeln!(
            f,
            "dropped: {}",
            list(tr.dropped.iter().map(|(r, n)| (r.label(), *n)).collect())
        )?;
        writeln!(
            f,
            "not sent: {}",
            list(tr.refused.iter().map(|(r, n)| (r.label(), *n)).collect())
        )?;
        writeln!(
            f,
            "lookups: {} started, {} reached nodes, {} reached none; tokens issued {}; announces stored {}, refused: {}",
            tr.lookups_started,
            tr.lookups_succeeded,
            tr.lookups_failed,
            tr.tokens_issued,
            tr.announces_stored,
            list(tr.announces_rejected.iter().map(|(r, n)| (r.label(), *n)).collect())
        )?;
        writeln!(
            f,
            "actor restarts: {}",
            list(tr.restarts.iter().map(|(a, n)| (a.label(), *n)).collect())
        )?;
        if self.warnings.is_empty() {
            write!(f, "warnings: none")
        } else {
            let w: Vec<String> = self.warnings.iter().map(ToString::to_string).collect();
            write!(f, "warnings: {}", w.join("; "))
        }
    }
}
