//! The metrics catalogue: every metric dhtd exports, described once, and the
//! handles the actors keep so that the hot path never looks a metric up.
//!
//! Emission goes through the `metrics` facade: whichever recorder the
//! application installed receives it (the `dhtd` program installs the
//! Prometheus exporter), and with none installed every call is a no-op.
//! Handles are taken when a node starts, so a recorder must be installed
//! before. Labels take values from small fixed enums only; when one process
//! runs many nodes (a swarm), their series add up.

use metrics::{
    describe_counter, describe_gauge, describe_histogram, Counter, Gauge, Histogram, Unit,
};

use crate::counters::{ActorKind, AnnounceRejection, DropReason, Method, Refusal};

/// Metric names, one place.
pub mod names {
    #![allow(missing_docs)]
    pub const PACKETS_RECEIVED: &str = "dht_packets_received_total";
    pub const BYTES_RECEIVED: &str = "dht_received_bytes_total";
    pub const PACKETS_SENT: &str = "dht_packets_sent_total";
    pub const BYTES_SENT: &str = "dht_sent_bytes_total";
    pub const QUERIES_RECEIVED: &str = "dht_queries_received_total";
    pub const QUERIES_SENT: &str = "dht_queries_sent_total";
    pub const RESPONSES_RECEIVED: &str = "dht_responses_received_total";
    pub const ERRORS_RECEIVED: &str = "dht_errors_received_total";
    pub const ERRORS_SENT: &str = "dht_errors_sent_total";
    pub const TIMEOUTS: &str = "dht_transaction_timeouts_total";
    pub const DROPPED: &str = "dht_packets_dropped_total";
    pub const QUERIES_HELD: &str = "dht_queries_held_total";
    pub const ROUTING_NODES: &str = "dht_routing_nodes";
    pub const ROUTING_BUCKETS: &str = "dht_routing_buckets";
    pub const ESTIMATED_SIZE: &str = "dht_estimated_network_nodes";
    pub const STORE_INFO_HASHES: &str = "dht_store_info_hashes";
    pub const STORE_PEERS: &str = "dht_store_peers";
    pub const STORE_INFO_HASHES_LIMIT: &str = "dht_store_info_hashes_limit";
    pub const ANNOUNCES_STORED: &str = "dht_announces_stored_total";
    pub const ANNOUNCES_REFUSED: &str = "dht_announces_refused_total";
    pub const TOKENS_ISSUED: &str = "dht_tokens_issued_total";
    pub const LOOKUPS_STARTED: &str = "dht_lookups_started_total";
    pub const LOOKUPS_FINISHED: &str = "dht_lookups_finished_total";
    pub const LOOKUP_DURATION: &str = "dht_lookup_duration_seconds";
    pub const LOOKUP_QUERIES: &str = "dht_lookup_queries";
    pub const BOOTSTRAPPED: &str = "dht_bootstrapped_nodes";
    pub const WARNINGS: &str = "dht_warning";
    pub const RESTARTS: &str = "dht_actor_restarts_total";
    pub const INBOUND_BACKLOG: &str = "dht_inbound_backlog";
    pub const PEERS_IGNORED: &str = "dht_peers_ignored_total";
    pub const NODES_RUNNING: &str = "dht_nodes_running";
    pub const BUILD_INFO: &str = "dht_build_info";
}

/// Histogram buckets: lookup durations in seconds (loopback lookups take
/// about a millisecond, real ones a few seconds, timeouts up to a minute).
pub const LOOKUP_DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Histogram buckets: queries per lookup (a converged lookup takes 8 to 20).
pub const LOOKUP_QUERY_BUCKETS: &[f64] =
    &[4.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0, 128.0, 200.0];

/// KRPC error codes as labels.
pub const ERROR_CODES: [&str; 5] = ["201", "202", "203", "204", "other"];

/// The label for a KRPC error code.
pub fn error_code_index(code: i64) -> usize {
    match code {
        201 => 0,
        202 => 1,
        203 => 2,
        204 => 3,
        _ => 4,
    }
}

/// Lookup kinds as labels.
pub const LOOKUP_KINDS: [&str; 3] = ["get_peers", "find_node", "announce"];
/// Lookup outcomes as labels: some node answered, or none did.
pub const LOOKUP_OUTCOMES: [&str; 2] = ["answered", "unanswered"];
/// Routing-table node states as labels.
pub const NODE_STATES: [&str; 3] = ["good", "questionable", "bad"];
/// The operator warnings as labels.
pub const WARNING_LABELS: [&str; 5] = [
    "no_nodes",
    "search_unsuccessful",
    "announce_failed",
    "port_unreachable",
    "port_firewalled",
];

/// Describes every metric to the installed recorder (help text and unit).
/// Call once, after installing a recorder.
pub fn describe() {
    use names::*;
    describe_counter!(PACKETS_RECEIVED, Unit::Count, "UDP datagrams received");
    describe_counter!(BYTES_RECEIVED, Unit::Bytes, "UDP payload bytes received");
    describe_counter!(PACKETS_SENT, Unit::Count, "UDP datagrams sent");
    describe_counter!(BYTES_SENT, Unit::Bytes, "UDP payload bytes sent");
    describe_counter!(
        QUERIES_RECEIVED,
        Unit::Count,
        "KRPC queries received, by method"
    );
    describe_counter!(QUERIES_SENT, Unit::Count, "KRPC queries sent, by method");
    describe_counter!(
        RESPONSES_RECEIVED,
        Unit::Count,
        "KRPC responses received that matched a query of ours"
    );
    describe_counter!(
        ERRORS_RECEIVED,
        Unit::Count,
        "KRPC errors received in answer to our queries, by code"
    );
    describe_counter!(ERRORS_SENT, Unit::Count, "KRPC errors sent, by code (203 malformed or bad token, 204 unknown method, 202 store full)");
    describe_counter!(
        PEERS_IGNORED,
        Unit::Count,
        "Peers in get_peers answers that could not be used (port 0), ignored"
    );
    describe_counter!(
        TIMEOUTS,
        Unit::Count,
        "Our queries that got no answer in time"
    );
    describe_counter!(
        DROPPED,
        Unit::Count,
        "Datagrams dropped without an answer, by reason"
    );
    describe_counter!(
        QUERIES_HELD,
        Unit::Count,
        "Outbound queries held back or refused by pacing, by reason"
    );
    describe_gauge!(ROUTING_NODES, Unit::Count, "Routing-table nodes, by state");
    describe_gauge!(ROUTING_BUCKETS, Unit::Count, "Routing-table buckets");
    describe_gauge!(
        ESTIMATED_SIZE,
        Unit::Count,
        "Estimated nodes in the whole DHT, from the distances seen"
    );
    describe_gauge!(
        STORE_INFO_HASHES,
        Unit::Count,
        "Info hashes with stored peers"
    );
    describe_gauge!(
        STORE_PEERS,
        Unit::Count,
        "Stored peers over all info hashes"
    );
    describe_gauge!(
        STORE_INFO_HASHES_LIMIT,
        Unit::Count,
        "The cap on stored info hashes (max_info_hashes)"
    );
    describe_counter!(
        ANNOUNCES_STORED,
        Unit::Count,
        "announce_peer queries stored or refreshed"
    );
    describe_counter!(
        ANNOUNCES_REFUSED,
        Unit::Count,
        "announce_peer queries refused, by reason"
    );
    describe_counter!(
        TOKENS_ISSUED,
        Unit::Count,
        "Write tokens handed out in get_peers replies"
    );
    describe_counter!(LOOKUPS_STARTED, Unit::Count, "Lookups started, by kind");
    describe_counter!(
        LOOKUPS_FINISHED,
        Unit::Count,
        "Lookups finished, by kind and outcome"
    );
    describe_histogram!(LOOKUP_DURATION, Unit::Seconds, "Lookup duration, by kind");
    describe_histogram!(
        LOOKUP_QUERIES,
        Unit::Count,
        "Queries sent per lookup, by kind"
    );
    describe_gauge!(
        BOOTSTRAPPED,
        Unit::Count,
        "Nodes in this process whose bootstrap has completed"
    );
    describe_gauge!(
        WARNINGS,
        Unit::Count,
        "Nodes for which an operator warning is true, by warning"
    );
    describe_counter!(
        RESTARTS,
        Unit::Count,
        "Actor restarts after a caught panic, by actor and reason"
    );
    describe_gauge!(
        INBOUND_BACKLOG,
        Unit::Count,
        "Received datagrams waiting in the rate limiter's mailbox (its capacity is inbound_queue)"
    );
    describe_gauge!(
        NODES_RUNNING,
        Unit::Count,
        "DHT nodes running in this process"
    );
    describe_gauge!(BUILD_INFO, Unit::Count, "Always 1; the version is a label");
}

fn each<const N: usize>(
    labels: [&'static str; N],
    make: impl Fn(&'static str) -> Counter,
) -> [Counter; N] {
    labels.map(make)
}

/// Metric handles for one node, taken at start.
#[derive(Debug)]
pub struct NodeMetrics {
    pub(crate) packets_in: Counter,
    pub(crate) bytes_in: Counter,
    pub(crate) packets_out: Counter,
    pub(crate) bytes_out: Counter,
    pub(crate) dropped: Vec<Counter>,
    pub(crate) queries_in: Vec<Counter>,
    pub(crate) queries_out: Vec<Counter>,
    pub(crate) held: Vec<Counter>,
    pub(crate) restarts: Vec<Counter>,
    pub(crate) announces_refused: Vec<Counter>,
    pub(crate) responses_in: Counter,
    pub(crate) errors_in: [Counter; 5],
    pub(crate) errors_out: [Counter; 5],
    pub(crate) timeouts: Counter,
    pub(crate) peers_ignored: Counter,
    pub(crate) tokens_issued: Counter,
    pub(crate) announces_stored: Counter,
    pub(crate) lookups_started: [Counter; 3],
    pub(crate) lookups_finished: [[Counter; 2]; 3],
    pub(crate) lookup_duration: [Histogram; 3],
    pub(crate) lookup_queries: [Histogram; 3],
}

impl Default for NodeMetrics {
    fn default() -> Self {
        use metrics::{counter, histogram};
        use names::*;
        let labelled = |name: &'static str, key: &'static str, values: Vec<&'static str>| {
            values
                .into_iter()
                .map(|v| counter!(name, key => v))
                .collect::<Vec<_>>()
        };
        NodeMetrics {
            packets_in: counter!(PACKETS_RECEIVED),
            bytes_in: counter!(BYTES_RECEIVED),
            packets_out: counter!(PACKETS_SENT),
            bytes_out: counter!(BYTES_SENT),
            dropped: labelled(
                DROPPED,
                "reason",
                DropReason::ALL.iter().map(|r| r.label()).collect(),
            ),
            queries_in: labelled(
                QUERIES_RECEIVED,
                "method",
                Method::ALL.iter().map(|m| m.label()).collect(),
            ),
            queries_out: labelled(
                QUERIES_SENT,
                "method",
                Method::ALL.iter().map(|m| m.label()).collect(),
            ),
            held: labelled(
                QUERIES_HELD,
                "reason",
                Refusal::ALL.iter().map(|r| r.label()).collect(),
            ),
            restarts: ActorKind::ALL
                .iter()
                .map(|a| counter!(RESTARTS, "actor" => a.label(), "reason" => "panicked"))
                .collect(),
            announces_refused: labelled(
                ANNOUNCES_REFUSED,
                "reason",
                AnnounceRejection::ALL.iter().map(|r| r.label()).collect(),
            ),
            responses_in: counter!(RESPONSES_RECEIVED),
            errors_in: each(ERROR_CODES, |c| counter!(ERRORS_RECEIVED, "code" => c)),
            errors_out: each(ERROR_CODES, |c| counter!(ERRORS_SENT, "code" => c)),
            timeouts: counter!(TIMEOUTS),
            peers_ignored: counter!(PEERS_IGNORED),
            tokens_issued: counter!(TOKENS_ISSUED),
            announces_stored: counter!(ANNOUNCES_STORED),
            lookups_started: each(LOOKUP_KINDS, |k| counter!(LOOKUPS_STARTED, "kind" => k)),
            lookups_finished: LOOKUP_KINDS.map(|k| {
                LOOKUP_OUTCOMES.map(|o| counter!(LOOKUPS_FINISHED, "kind" => k, "outcome" => o))
            }),
            lookup_duration: LOOKUP_KINDS.map(|k| histogram!(LOOKUP_DURATION, "kind" => k)),
            lookup_queries: LOOKUP_KINDS.map(|k| histogram!(LOOKUP_QUERIES, "kind" => k)),
        }
    }
}

/// The gauges one node contributes to. Gauges add up over the nodes of a
/// process: each node applies the change from what it last reported.
#[derive(Debug)]
pub struct NodeGauges {
    gauges: Vec<(Gauge, f64)>,
}

/// The values a node reports to its gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GaugeValues {
    /// Good, questionable, bad.
    pub nodes: [f64; 3],
    /// Buckets.
    pub buckets: f64,
    /// Estimated DHT size.
    pub estimated_size: f64,
    /// Stored info hashes.
    pub info_hashes: f64,
    /// Stored peers.
    pub peers: f64,
    /// The cap on stored info hashes.
    pub info_hashes_limit: f64,
    /// 1 once bootstrapped.
    pub bootstrapped: f64,
    /// 1 while running.
    pub running: f64,
    /// Datagrams waiting in the rate limiter's mailbox.
    pub inbound_backlog: f64,
    /// Each warning, 1 when true.
    pub warnings: [f64; 5],
}

impl Default for NodeGauges {
    fn default() -> Self {
        use metrics::gauge;
        use names::*;
        let mut gauges: Vec<Gauge> = NODE_STATES
            .iter()
            .map(|s| gauge!(ROUTING_NODES, "state" => *s))
            .collect();
        gauges.extend([
            gauge!(ROUTING_BUCKETS),
            gauge!(ESTIMATED_SIZE),
            gauge!(STORE_INFO_HASHES),
            gauge!(STORE_PEERS),
            gauge!(STORE_INFO_HASHES_LIMIT),
            gauge!(BOOTSTRAPPED),
            gauge!(NODES_RUNNING),
            gauge!(INBOUND_BACKLOG),
        ]);
        gauges.extend(
            WARNING_LABELS
                .iter()
                .map(|w| gauge!(names::WARNINGS, "warning" => *w)),
        );
        NodeGauges {
            gauges: gauges.into_iter().map(|g| (g, 0.0)).collect(),
        }
    }
}

impl NodeGauges {
    /// Reports `v`, replacing this node's previous contribution.
    pub fn report(&mut self, v: &GaugeValues) {
        let values = v
            .nodes
            .iter()
            .copied()
            .chain([
                v.buckets,
                v.estimated_size,
                v.info_hashes,
                v.peers,
                v.info_hashes_limit,
                v.bootstrapped,
                v.running,
                v.inbound_backlog,
            ])
            .chain(v.warnings.iter().copied());
        for ((gauge, last), value) in self.gauges.iter_mut().zip(values) {
            if value != *last {
                gauge.increment(value - *last);
                *last = value;
            }
        }
    }

    /// Withdraws this node's contribution (it stopped).
    pub fn withdraw(&mut self) {
        self.report(&GaugeValues::default());
    }
}

/// Sets `dht_build_info{version}` to 1.
pub fn build_info(version: &'static str) {
    metrics::gauge!(names::BUILD_INFO, "version" => version).set(1.0);
}
