//! What `Dht::stats` reports: rTorrent's `dht_statistics`, with more.
//! The counters are the node's telemetry cells, the same values its
//! metrics export, read by their Prometheus names.

use std::net::SocketAddr;
use std::time::Duration;

use dhtd_actors::Inspect;
use dhtd_protocol::node::{families::PerFamily, responder::Responder, upkeep::Upkeep};
use dhtd_protocol::routing::BucketStats as CoreBucket;
use dhtd_protocol::telemetry::{
    derive_warnings, Component, Kind, Label, Labels, RestartReason, TelemetrySnapshot, Values,
};
use dhtd_protocol::{Family, NodeId};

pub use dhtd_protocol::telemetry::Warning;

use crate::wiring::Node;
use crate::Error;

/// A node's statistics.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Our node id.
    pub own_id: NodeId,
    /// The first bound UDP address (the IPv4 one when there are two).
    pub local_addr: Option<SocketAddr>,
    /// Time since start.
    pub uptime: Duration,
    /// Whether bootstrap has completed in at least one address family.
    pub bootstrap_complete: bool,
    /// BEP 43 read-only.
    pub read_only: bool,
    /// Our IP as other nodes see it, once a majority of responders agree
    /// (the `ip` key of their responses, BEP 42): the first family's that
    /// is known, IPv4 first.
    pub external_ip: Option<std::net::IpAddr>,
    /// Nodes per bucket and state, over the first family's table (IPv4
    /// when it is on); [`Stats::families`] has each.
    pub routing: TableStats,
    /// Estimated nodes in the whole DHT, from the first family's table.
    pub estimated_dht_size: Option<u64>,
    /// Each address family the node serves (BEP 32), IPv4 first.
    pub families: Vec<FamilyStats>,
    /// Stored info hashes and peers.
    pub store: StoreStats,
    /// The cap on stored info hashes (`dht.store.max_info_hashes`).
    pub store_info_hashes_limit: usize,
    /// Every counter and gauge of the node (what `/metrics` exports).
    pub traffic: Counters,
    /// Current warnings.
    pub warnings: Vec<Warning>,
}

/// One address family's part of a node (BEP 32).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FamilyStats {
    /// Which.
    pub family: Family,
    /// Its socket's address.
    pub local_addr: SocketAddr,
    /// Whether its bootstrap has completed.
    pub bootstrap_complete: bool,
    /// Our address in it as other nodes see it, once they agree.
    pub external_ip: Option<std::net::IpAddr>,
    /// Its routing table.
    pub routing: TableStats,
    /// Estimated nodes of the DHT in this family.
    pub estimated_dht_size: Option<u64>,
}

impl FamilyStats {
    /// Nodes in its routing table.
    pub fn nodes(&self) -> usize {
        let t = &self.routing.total;
        t.good + t.questionable + t.bad
    }
}

/// Nodes of one bucket, or of the whole table, by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BucketStats {
    /// Good nodes: answered or queried us recently.
    pub good: usize,
    /// Questionable nodes: silent for a while.
    pub questionable: usize,
    /// Bad nodes: failed repeatedly; replaced first.
    pub bad: usize,
    /// Nodes waiting in the bucket's replacement cache.
    pub replacements: usize,
}

impl BucketStats {
    fn from_core(b: CoreBucket) -> Self {
        BucketStats {
            good: b.good,
            questionable: b.questionable,
            bad: b.bad,
            replacements: b.replacements,
        }
    }
}

/// The routing table by bucket.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableStats {
    /// Per bucket, the farthest (bucket 0) first.
    pub buckets: Vec<BucketStats>,
    /// Over all buckets.
    pub total: BucketStats,
}

/// The announce store's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Info hashes with at least one peer.
    pub info_hashes: usize,
    /// Peers over all info hashes.
    pub peers: usize,
}

/// Whether a [`Counter`] only grows or goes up and down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterKind {
    /// Only grows (a Prometheus counter, `…_total`).
    Counter,
    /// A level now (a Prometheus gauge).
    Gauge,
}

/// One cell of a metric: a name, its labels, its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    /// The Prometheus name, as `/metrics` exports it.
    pub metric: &'static str,
    /// Counter or gauge.
    pub kind: CounterKind,
    /// The label pairs of this cell (none for an unlabelled metric).
    pub labels: Vec<(&'static str, &'static str)>,
    /// Its value.
    pub value: u64,
}

/// Every counter and gauge of a node, by the names `/metrics` gives them
/// (the README's metrics table lists them).
///
/// ```
/// # let counters = dhtd::Counters::default();
/// let dropped = counters.get("dht_packets_dropped_total", &[("reason", "rate_limited")]);
/// let all_dropped = counters.get("dht_packets_dropped_total", &[]);
/// assert!(dropped <= all_dropped);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Counters {
    snapshot: TelemetrySnapshot,
}

impl Counters {
    /// The sum of the cells of `metric` that carry every pair of `labels`:
    /// one cell's value, or with fewer labels a total. 0 for a name that
    /// does not exist.
    pub fn get(&self, metric: &str, labels: &[(&str, &str)]) -> u64 {
        self.iter()
            .filter(|c| c.metric == metric && labels.iter().all(|l| c.labels.contains(l)))
            .map(|c| c.value)
            .sum()
    }

    /// Every cell of every counter and gauge, in the catalogue's order.
    pub fn iter(&self) -> impl Iterator<Item = Counter> + '_ {
        let mut cells = Vec::new();
        self.snapshot.for_each_metric(|def, values| {
            let kind = match def.kind {
                Kind::Counter => CounterKind::Counter,
                Kind::Gauge => CounterKind::Gauge,
                _ => return,
            };
            for (cell, value) in values.iter().enumerate() {
                cells.push(Counter {
                    metric: def.name,
                    kind,
                    labels: (def.labels)(cell),
                    value: *value,
                });
            }
        });
        cells.into_iter()
    }
}

/// Reads the node's pieces and telemetry.
pub(crate) async fn gather(node: &Node) -> Result<Stats, Error> {
    if node.is_stopping() {
        return Err(Error::Shutdown);
    }
    let tables = Inspect(Box::new(|p: &PerFamily<Upkeep>, now| {
        p.iter()
            .map(|(f, u)| (f, u.stats(now), u.estimated_dht_size(now)))
            .collect::<Vec<_>>()
    }));
    let tables = node
        .actors
        .shells
        .routing
        .send(tables)
        .await
        .ok()
        .flatten()
        .ok_or(Error::Shutdown)?;
    let store = node
        .actors
        .shells
        .store
        .send(Inspect(Box::new(|p: &Responder, _| p.stats())))
        .await
        .ok()
        .flatten()
        .ok_or(Error::Shutdown)?;
    let traffic = node.telemetry.snapshot();
    let bootstrap_complete = traffic.bootstrapped.value() > 0;
    let uptime = node.uptime();
    let live = node.live.lock().clone();
    let read_only = live.read_only;
    let families: Vec<FamilyStats> = tables
        .into_iter()
        .zip(&node.local_addrs)
        .map(
            |((family, routing, estimated_dht_size), addr)| FamilyStats {
                family,
                local_addr: *addr,
                bootstrap_complete: traffic.family_bootstrapped.get(family.into()) > 0,
                external_ip: node.api.external_ip_of(family),
                routing: TableStats {
                    buckets: routing
                        .buckets
                        .into_iter()
                        .map(BucketStats::from_core)
                        .collect(),
                    total: BucketStats::from_core(routing.total),
                },
                estimated_dht_size,
            },
        )
        .collect();
    let nodes = families.iter().map(FamilyStats::nodes).sum();
    let first = families.first();
    Ok(Stats {
        own_id: node.own_id,
        local_addr: node.local_addrs.first().copied(),
        uptime,
        bootstrap_complete,
        read_only,
        external_ip: node.api.external_ip(),
        warnings: derive_warnings(&traffic, nodes, bootstrap_complete, uptime, read_only),
        routing: first.map(|f| f.routing.clone()).unwrap_or_default(),
        estimated_dht_size: first.and_then(|f| f.estimated_dht_size),
        families,
        store: StoreStats {
            info_hashes: store.info_hashes,
            peers: store.peers,
        },
        store_info_hashes_limit: live.store.max_info_hashes,
        traffic: Counters { snapshot: traffic },
    })
}

impl Stats {
    /// Nodes in the routing tables, over every family.
    pub fn nodes(&self) -> usize {
        self.families.iter().map(FamilyStats::nodes).sum()
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

/// `label n, label n, …` for a labelled counter.
fn by_label<L: Label + Labels>(values: &Values<L>) -> String {
    values
        .by_label()
        .map(|(l, n)| format!("{} {n}", l.value()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// rTorrent's `dht_statistics`, as text for operators.
impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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
        for fam in &self.families {
            let t = &fam.routing.total;
            writeln!(
                f,
                "{} on {}: bootstrap {}, external address {}",
                fam.family,
                fam.local_addr,
                if fam.bootstrap_complete {
                    "complete"
                } else {
                    "in progress"
                },
                fam.external_ip
                    .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
            )?;
            writeln!(
                f,
                "{} routing table: {} nodes ({} good, {} questionable, {} bad) in {} buckets, about {} nodes in the DHT",
                fam.family,
                fam.nodes(),
                t.good,
                t.questionable,
                t.bad,
                fam.routing.buckets.len(),
                fam.estimated_dht_size.unwrap_or(0)
            )?;
            for (i, b) in fam.routing.buckets.iter().enumerate() {
                writeln!(
                    f,
                    "  bucket {i:>3}: {} good, {} questionable, {} bad, {} cached",
                    b.good, b.questionable, b.bad, b.replacements
                )?;
            }
        }
        writeln!(
            f,
            "store: {} info hashes (cap {}), {} peers",
            self.store.info_hashes, self.store_info_hashes_limit, self.store.peers
        )?;
        let tr = &self.traffic.snapshot;
        writeln!(
            f,
            "traffic: in {} packets / {} bytes, out {} packets / {} bytes",
            tr.packets_in.total(),
            tr.bytes_in.total(),
            tr.packets_out.total(),
            tr.bytes_out.total()
        )?;
        if self.families.len() > 1 {
            for fam in &self.families {
                let l = fam.family.into();
                writeln!(
                    f,
                    "  {}: in {} packets, out {} packets",
                    fam.family,
                    tr.packets_in.get(l),
                    tr.packets_out.get(l)
                )?;
            }
        }
        writeln!(f, "queries in: {}", by_label(&tr.queries_in))?;
        writeln!(
            f,
            "queries out: {}; retransmitted {}",
            by_label(&tr.queries_out),
            tr.retransmits.value()
        )?;
        writeln!(
            f,
            "responses in {}, errors in {}, errors out {}, timeouts {}",
            tr.responses_in.value(),
            tr.errors_in.total(),
            tr.errors_out.total(),
            tr.timeouts.value()
        )?;
        writeln!(f, "dropped: {}", by_label(&tr.dropped))?;
        writeln!(f, "delayed: {}", by_label(&tr.delayed))?;
        writeln!(f, "not sent: {}", by_label(&tr.not_sent))?;
        writeln!(
            f,
            "lookups: {} started, {} finished; tokens issued {}; announces stored {}, refused: {}",
            tr.lookups_started.total(),
            tr.lookups_finished.total(),
            tr.tokens_issued.value(),
            tr.announces_stored.value(),
            by_label(&tr.announces_refused)
        )?;
        let restarts: Vec<String> = Component::ALL
            .iter()
            .map(|c| {
                let n: u64 = RestartReason::ALL
                    .iter()
                    .map(|r| tr.restarts.get((*c, *r)))
                    .sum();
                format!("{} {n}", c.value())
            })
            .collect();
        writeln!(f, "actor restarts: {}", restarts.join(", "))?;
        if self.warnings.is_empty() {
            write!(f, "warnings: none")
        } else {
            let w: Vec<String> = self.warnings.iter().map(ToString::to_string).collect();
            write!(f, "warnings: {}", w.join("; "))
        }
    }
}
