//! Telemetry, declared once: every metric a node reports, with its name,
//! unit, help text and label set, in one table ([`CATALOGUE`]), and the
//! per-node cells that the node's pieces count into ([`Telemetry`]).
//!
//! The cells are plain atomics: a piece counts with one relaxed add, and
//! nothing here knows about Prometheus. A driver reads the cells: `stats()`
//! through [`Telemetry::snapshot`], an exporter by walking
//! [`Telemetry::for_each`] over the catalogue, so that a metric's name,
//! its labels and the value `stats()` shows can never drift apart.
//! Labels take their values from small enums only ([`Label`]).

mod cells;
mod labels;
mod warnings;

use std::sync::atomic::Ordering::Relaxed;

use cells::Visit;
pub use cells::{CellValue, Cells, Samples, Values, MAX_PENDING_SAMPLES};
pub use labels::*;
pub use warnings::{derive_warnings, FIREWALLED_AFTER, UNREACHABLE_AFTER};

/// What kind of metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// A level; a process's nodes add up.
    Gauge,
    /// A distribution of samples.
    Histogram,
}

/// The unit of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count.
    Count,
    /// Bytes.
    Bytes,
    /// Seconds.
    Seconds,
}

/// One metric of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    /// The exported name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// Its unit.
    pub unit: Unit,
    /// The help text.
    pub help: &'static str,
    /// Cells: one per label combination.
    pub cells: usize,
    /// The label pairs of a cell.
    pub labels: fn(usize) -> Vec<(&'static str, &'static str)>,
    /// Histogram bucket bounds (empty for the others).
    pub buckets: &'static [f64],
}

/// Histogram buckets: lookup durations in seconds (loopback lookups take
/// about a millisecond, real ones a few seconds, timeouts up to a minute).
pub const LOOKUP_DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Histogram buckets: queries per lookup (a converged lookup takes 8 to 20).
pub const LOOKUP_QUERY_BUCKETS: &[f64] =
    &[4.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0, 128.0, 200.0];

/// `dht_build_info{version}`: one per process, set by the exporter.
pub const BUILD_INFO: MetricDef = MetricDef {
    name: "dht_build_info",
    kind: Kind::Gauge,
    unit: Unit::Count,
    help: "Always 1; the version is a label",
    cells: 1,
    labels: <() as Labels>::pairs,
    buckets: &[],
};

macro_rules! catalogue {
    (
        $( $(#[$doc:meta])* $field:ident : $cells:ident < $labels:ty >
            = $kind:ident $name:literal, $unit:ident, $buckets:expr, $help:literal; )*
    ) => {
        /// Every metric of one node, each a set of cells.
        #[derive(Debug, Default)]
        pub struct Telemetry {
            $( $(#[$doc])* pub $field: $cells<$labels, { <$labels as Labels>::COUNT }>, )*
        }

        /// The per-node metrics, in [`Telemetry`]'s order, then
        /// [`BUILD_INFO`], which is per process.
        pub const CATALOGUE: &[MetricDef] = &[
            $( MetricDef {
                name: $name,
                kind: Kind::$kind,
                unit: Unit::$unit,
                help: $help,
                cells: <$labels as Labels>::COUNT,
                labels: <$labels as Labels>::pairs,
                buckets: $buckets,
            }, )*
            BUILD_INFO,
        ];

        /// The counters and gauges of a node at one moment.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        #[allow(missing_docs)]
        pub struct TelemetrySnapshot {
            $( pub $field: Values<$labels>, )*
        }

        impl TelemetrySnapshot {
            /// Each metric of [`CATALOGUE`] (but [`BUILD_INFO`]) with its
            /// cells' values, in catalogue order.
            pub fn for_each_metric(&self, mut f: impl FnMut(&MetricDef, &[u64])) {
                let mut metric = 0;
                $( f(&CATALOGUE[metric], &self.$field.values); metric += 1; )*
                let _ = metric;
            }
        }

        impl Telemetry {
            /// Walks every cell: metric `i` of [`CATALOGUE`], cell `j`, and
            /// its value (histogram samples are taken out).
            pub fn for_each(&self, mut f: impl FnMut(usize, usize, CellValue<'_>)) {
                let mut metric = 0;
                $( self.$field.visit(metric, &mut f); metric += 1; )*
                let _ = metric;
            }

            /// Sets every gauge to zero: a stopped node withdraws its share
            /// of the process's gauges.
            pub fn zero_gauges(&self) {
                self.for_each(|metric, _, value| {
                    if let (Kind::Gauge, CellValue::Level(v)) = (CATALOGUE[metric].kind, value) {
                        v.store(0, Relaxed);
                    }
                });
            }

            /// The counters and gauges now (histograms are left out).
            pub fn snapshot(&self) -> TelemetrySnapshot {
                TelemetrySnapshot {
                    $( $field: self.$field.snapshot_values(), )*
                }
            }
        }
    };
}

catalogue! {
    /// UDP datagrams received.
    packets_in: Cells<AddressFamily> = Counter "dht_packets_received_total", Count, &[],
        "UDP datagrams received, by address family";
    /// UDP payload bytes received.
    bytes_in: Cells<AddressFamily> = Counter "dht_received_bytes_total", Bytes, &[],
        "UDP payload bytes received, by address family";
    /// UDP datagrams sent.
    packets_out: Cells<AddressFamily> = Counter "dht_packets_sent_total", Count, &[],
        "UDP datagrams sent, by address family";
    /// UDP payload bytes sent.
    bytes_out: Cells<AddressFamily> = Counter "dht_sent_bytes_total", Bytes, &[],
        "UDP payload bytes sent, by address family";
    /// KRPC queries received, by method.
    queries_in: Cells<Method> = Counter "dht_queries_received_total", Count, &[],
        "KRPC queries received, by method";
    /// KRPC queries sent, by method (retransmissions not included).
    queries_out: Cells<Method> = Counter "dht_queries_sent_total", Count, &[],
        "KRPC queries sent, by method (retransmissions not included)";
    /// Queries sent again after a timeout (`transactions.attempts` > 1).
    retransmits: Cells<()> = Counter "dht_queries_retransmitted_total", Count, &[],
        "Queries sent again with the same transaction id after a timeout";
    /// Responses that matched a query of ours.
    responses_in: Cells<()> = Counter "dht_responses_received_total", Count, &[],
        "KRPC responses received that matched a query of ours";
    /// KRPC errors received in answer to our queries, by code.
    errors_in: Cells<ErrorLabel> = Counter "dht_errors_received_total", Count, &[],
        "KRPC errors received in answer to our queries, by code";
    /// KRPC errors sent, by code.
    errors_out: Cells<ErrorLabel> = Counter "dht_errors_sent_total", Count, &[],
        "KRPC errors sent, by code (203 malformed or bad token, 204 unknown method, 202 store full)";
    /// Our queries that got no answer after every attempt.
    timeouts: Cells<()> = Counter "dht_transaction_timeouts_total", Count, &[],
        "Our queries that got no answer in time, after every attempt";
    /// Answers to our queries that came after the query timed out.
    late_responses: Cells<()> = Counter "dht_late_responses_total", Count, &[],
        "Answers to our queries that came after they timed out (they lengthen the timeout, up to 10 s)";
    /// Datagrams dropped without an answer, by reason.
    dropped: Cells<DropReason> = Counter "dht_packets_dropped_total", Count, &[],
        "Datagrams dropped without an answer, by reason";
    /// Outbound queries held back before they went out, by reason.
    delayed: Cells<Delay> = Counter "dht_queries_delayed_total", Count, &[],
        "Outbound queries held back by pacing before they went out, by reason";
    /// Outbound queries never sent, by reason.
    not_sent: Cells<NotSent> = Counter "dht_queries_not_sent_total", Count, &[],
        "Outbound queries never sent, by reason";
    /// Peers in answers that could not be used (port 0).
    peers_ignored: Cells<()> = Counter "dht_peers_ignored_total", Count, &[],
        "Peers in get_peers answers that could not be used (port 0), ignored";
    /// announce_peer queries stored or refreshed.
    announces_stored: Cells<()> = Counter "dht_announces_stored_total", Count, &[],
        "announce_peer queries stored or refreshed";
    /// announce_peer queries refused, by reason.
    announces_refused: Cells<AnnounceRefusal> = Counter "dht_announces_refused_total", Count, &[],
        "announce_peer queries refused, by reason";
    /// Write tokens handed out.
    tokens_issued: Cells<()> = Counter "dht_tokens_issued_total", Count, &[],
        "Write tokens handed out in get_peers and get replies";
    /// Lookup replies whose sender proved another id than the one asked for.
    lookup_id_mismatches: Cells<()> = Counter "dht_lookup_id_mismatches_total", Count, &[],
        "Lookup replies whose sender answered under another id than the one we were given for it (credited to the id it proved)";
    /// Nodes named to lookups but kept out by the per-address, per-network
    /// or distrust rules.
    lookup_candidates_refused: Cells<()> = Counter "dht_lookup_candidates_refused_total", Count, &[],
        "Nodes named in lookup replies but kept out: their address or /24 (/64) held its share of the lookup already, or was distrusted";
    /// Addresses caught answering under a new id, and distrusted.
    addresses_distrusted: Cells<()> = Counter "dht_addresses_distrusted_total", Count, &[],
        "Addresses caught answering under a new id soon after another, kept out of lookups for an hour";
    /// Lookups started, by kind.
    lookups_started: Cells<LookupLabel> = Counter "dht_lookups_started_total", Count, &[],
        "Lookups started, by kind";
    /// Lookups finished, by kind and outcome.
    lookups_finished: Cells<(LookupLabel, LookupOutcome)> = Counter "dht_lookups_finished_total", Count, &[],
        "Lookups finished, by kind and outcome (refused: too many were waiting)";
    /// Bootstrap attempts (own-id lookups from the sources).
    bootstrap_attempts: Cells<()> = Counter "dht_bootstrap_attempts_total", Count, &[],
        "Bootstrap attempts, and lookups of our own id while the table holds fewer than k nodes";
    /// Actor restarts, by actor and reason.
    restarts: Cells<(Component, RestartReason)> = Counter "dht_actor_restarts_total", Count, &[],
        "Actor restarts after a caught panic, by actor and reason";
    /// Heartbeats an actor did not answer in time (the watchdog's).
    heartbeats_missed: Cells<Component> = Counter "dht_actor_heartbeats_missed_total", Count, &[],
        "Watchdog heartbeats an actor did not answer within the deadline, by actor: a stuck actor (the systemd watchdog is then not fed)";
    /// Routing-table nodes, by state.
    routing_nodes: Cells<(AddressFamily, NodeState)> = Gauge "dht_routing_nodes", Count, &[],
        "Routing-table nodes, by address family and state";
    /// Nodes that answered us but were kept out of the table, by reason.
    routing_refused: Cells<RoutingRefusal> = Counter "dht_routing_refused_total", Count, &[],
        "Nodes that answered us but were kept out of the routing table by a per-address or per-network rule, by reason";
    /// Routing-table buckets.
    routing_buckets: Cells<AddressFamily> = Gauge "dht_routing_buckets", Count, &[],
        "Routing-table buckets, by address family";
    /// Estimated nodes in the whole DHT.
    estimated_size: Cells<AddressFamily> = Gauge "dht_estimated_network_nodes", Count, &[],
        "Estimated nodes in the whole DHT, by address family: the reachable ones, and as many more as the share of queriers we cannot reach says";
    /// Estimated reachable nodes in the whole DHT.
    estimated_reachable: Cells<AddressFamily> = Gauge "dht_estimated_reachable_nodes", Count, &[],
        "Estimated nodes in the whole DHT that answer queries (those routing tables hold), from the distances of our closest, by address family";
    /// Info hashes with stored peers.
    store_info_hashes: Cells<()> = Gauge "dht_store_info_hashes", Count, &[],
        "Info hashes with stored peers";
    /// Stored peers over all info hashes.
    store_peers: Cells<()> = Gauge "dht_store_peers", Count, &[],
        "Stored peers over all info hashes";
    /// The cap on stored info hashes.
    store_info_hashes_limit: Cells<()> = Gauge "dht_store_info_hashes_limit", Count, &[],
        "The cap on stored info hashes (max_info_hashes)";
    /// Each cap of the store.
    store_limits: Cells<StoreCap> = Gauge "dht_store_limit", Count, &[],
        "The announce store's caps, by cap (set at start)";
    /// BEP 44 `put`s by outcome.
    item_puts: Cells<ItemPut> = Counter "dht_item_puts_total", Count, &[],
        "BEP 44 put queries by outcome: stored, updated, refreshed, or refused and why";
    /// BEP 44 `get`s answered with an item.
    items_served: Cells<()> = Counter "dht_items_served_total", Count, &[],
        "BEP 44 get queries answered with the item";
    /// Items held for others (BEP 44).
    items_stored: Cells<()> = Gauge "dht_items_stored", Count, &[],
        "BEP 44 items held for other nodes";
    /// Bytes of the values held (BEP 44).
    item_bytes: Cells<()> = Gauge "dht_item_bytes", Bytes, &[],
        "Bytes of the BEP 44 values held";
    /// Items dropped: expired, or evicted for a new one (BEP 44).
    items_dropped: Cells<ItemDrop> = Counter "dht_items_dropped_total", Count, &[],
        "BEP 44 items dropped: expired, or evicted to make room (the store's caps)";
    /// `get_peers` scrapes answered with bloom filters (BEP 33).
    scrapes_answered: Cells<()> = Counter "dht_scrapes_answered_total", Count, &[],
        "get_peers queries with scrape=1 answered with seed and peer bloom filters (BEP 33)";
    /// Info hashes sent in `sample_infohashes` answers (BEP 51).
    info_hashes_sampled: Cells<()> = Counter "dht_info_hashes_sampled_total", Count, &[],
        "Stored info hashes sent in sample_infohashes answers (BEP 51)";
    /// Stored entries evicted to make room, by the cap that was reached.
    store_evictions: Cells<StoreCap> = Counter "dht_store_evictions_total", Count, &[],
        "Stored announces evicted to make room for a new one, by the cap that was reached";
    /// get_peers answers whose `values` the upload budget trimmed.
    upload_trimmed: Cells<()> = Counter "dht_upload_trimmed_total", Count, &[],
        "get_peers answers sent with fewer values than stored, to fit the upload budget (upload_rate)";
    /// The upload budget in force, bytes per second (0: unlimited).
    upload_limit: Cells<()> = Gauge "dht_upload_limit_bytes_per_second", Bytes, &[],
        "The upload budget in force, bytes per second (0: unlimited)";
    /// 1 once bootstrapped.
    bootstrapped: Cells<()> = Gauge "dht_bootstrapped_nodes", Count, &[],
        "Nodes in this process whose bootstrap has completed (in any address family)";
    /// 1 once a family has bootstrapped.
    family_bootstrapped: Cells<AddressFamily> = Gauge "dht_family_bootstrapped_nodes", Count, &[],
        "Nodes in this process whose bootstrap has completed, by address family";
    /// 1 for each warning that is true.
    warnings: Cells<Warning> = Gauge "dht_warning", Count, &[],
        "Nodes for which an operator warning is true, by warning";
    /// 1 while the node runs.
    running: Cells<()> = Gauge "dht_nodes_running", Count, &[],
        "DHT nodes running in this process";
    /// Failed writes of the state dir (routing-table cache or node id).
    state_save_failures: Cells<()> = Counter "dht_state_save_failures_total", Count, &[],
        "Failed writes of the state dir (routing-table cache or node id): a read-only or full disk";
    /// The socket's receive buffer as the kernel reports it.
    socket_recv_buffer: Cells<()> = Gauge "dht_socket_recv_buffer_bytes", Bytes, &[],
        "The UDP socket's receive buffer as the kernel reports it (Linux: twice the size set, for its bookkeeping)";
    /// Datagrams the kernel dropped because the socket's buffer was full.
    socket_overflows: Cells<()> = Counter "dht_socket_receive_overflow_total", Count, &[],
        "Datagrams the kernel dropped before the node read them, its receive buffer full (Linux: /proc/net/udp drops)";
    /// Datagrams waiting in the rate limiter's mailbox.
    inbound_backlog: Cells<()> = Gauge "dht_inbound_backlog", Count, &[],
        "Received datagrams waiting in the rate limiter's mailbox (its capacity is inbound_queue)";
    /// Lookup durations, by kind.
    lookup_duration: Samples<LookupLabel> = Histogram "dht_lookup_duration_seconds", Seconds,
        LOOKUP_DURATION_BUCKETS, "Lookup duration, by kind";
    /// Queries sent per lookup, by kind.
    lookup_queries: Samples<LookupLabel> = Histogram "dht_lookup_queries", Count,
        LOOKUP_QUERY_BUCKETS, "Queries sent per lookup, by kind";
}

impl TelemetrySnapshot {
    /// Queries received, all methods.
    pub fn queries_received(&self) -> u64 {
        self.queries_in.total()
    }
    /// Queries sent, all methods.
    pub fn queries_sent(&self) -> u64 {
        self.queries_out.total()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_matches_the_cells_and_names_are_unique() {
        let t = Telemetry::default();
        let mut cells = vec![0usize; CATALOGUE.len()];
        t.for_each(|m, _, _| cells[m] += 1);
        for (def, n) in CATALOGUE.iter().zip(&cells) {
            if def.name != BUILD_INFO.name {
                assert_eq!(def.cells, *n, "{}", def.name);
            }
            assert!(def.name.starts_with("dht_"), "{}", def.name);
            assert_eq!(
                def.kind == Kind::Counter,
                def.name.ends_with("_total"),
                "{}",
                def.name
            );
        }
        let mut names: Vec<_> = CATALOGUE.iter().map(|d| d.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOGUE.len());
    }

    #[test]
    fn two_labels_address_distinct_cells_with_their_pairs() {
        let t = Telemetry::default();
        t.lookups_finished
            .incr((LookupLabel::Announce, LookupOutcome::Refused));
        let mut seen = Vec::new();
        let index = CATALOGUE
            .iter()
            .position(|d| d.name == "dht_lookups_finished_total")
            .unwrap();
        t.for_each(|m, j, v| {
            if let (true, CellValue::Level(v)) = (m == index, v) {
                if v.load(Relaxed) > 0 {
                    seen.push((CATALOGUE[m].labels)(j));
                }
            }
        });
        assert_eq!(
            seen,
            vec![vec![("kind", "announce"), ("outcome", "refused")]]
        );
        let s = t.snapshot();
        assert_eq!(
            s.lookups_finished
                .get((LookupLabel::Announce, LookupOutcome::Refused)),
            1
        );
        assert_eq!(s.lookups_finished.total(), 1);
    }

    #[test]
    fn histogram_samples_are_taken_once_and_bounded() {
        let t = Telemetry::default();
        for i in 0..MAX_PENDING_SAMPLES + 10 {
            t.lookup_queries.record(LookupLabel::FindNode, i as f64);
        }
        let mut taken = 0;
        t.for_each(|_, _, v| {
            if let CellValue::Samples(s) = v {
                taken += s.len();
            }
        });
        assert_eq!(taken, MAX_PENDING_SAMPLES);
        t.for_each(|_, _, v| {
            if let CellValue::Samples(s) = v {
                assert!(s.is_empty());
            }
        });
    }
}
