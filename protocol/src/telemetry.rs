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

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// One label of a metric: a key and a small fixed set of values.
pub trait Label: Copy + Eq + std::fmt::Debug + 'static {
    /// The label's key (`reason`, `method`, …).
    const KEY: &'static str;
    /// Every value, in declaration order.
    const ALL: &'static [Self];
    /// Position in [`Label::ALL`].
    fn index(self) -> usize;
    /// The label value as exported.
    fn value(self) -> &'static str;
}

/// The label set of a metric: none, one [`Label`], or a pair.
pub trait Labels: Copy + 'static {
    /// Cells (label combinations) of a metric with these labels.
    const COUNT: usize;
    /// This combination's cell.
    fn cell(self) -> usize;
    /// The `(key, value)` pairs of cell `i`.
    fn pairs(i: usize) -> Vec<(&'static str, &'static str)>;
}

impl Labels for () {
    const COUNT: usize = 1;
    fn cell(self) -> usize {
        0
    }
    fn pairs(_: usize) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }
}

impl<L: Label> Labels for L {
    const COUNT: usize = L::ALL.len();
    fn cell(self) -> usize {
        self.index()
    }
    fn pairs(i: usize) -> Vec<(&'static str, &'static str)> {
        vec![(L::KEY, L::ALL[i].value())]
    }
}

impl<A: Label, B: Label> Labels for (A, B) {
    const COUNT: usize = A::ALL.len() * B::ALL.len();
    fn cell(self) -> usize {
        self.0.index() * B::ALL.len() + self.1.index()
    }
    fn pairs(i: usize) -> Vec<(&'static str, &'static str)> {
        let (a, b) = (i / B::ALL.len(), i % B::ALL.len());
        vec![(A::KEY, A::ALL[a].value()), (B::KEY, B::ALL[b].value())]
    }
}

/// Declares a label enum: its values, their exported text, and [`Label`].
macro_rules! label {
    ($(#[$doc:meta])* $name:ident = $key:literal { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum $name { $($(#[$vdoc])* $variant,)+ }

        impl Label for $name {
            const KEY: &'static str = $key;
            const ALL: &'static [$name] = &[$($name::$variant,)+];
            fn index(self) -> usize {
                self as usize
            }
            fn value(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }
        }

        impl $name {
            /// The exported label value.
            pub fn label(self) -> &'static str {
                Label::value(self)
            }
        }
    };
}

label!(
    /// Why an inbound datagram was dropped without an answer.
    DropReason = "reason" {
        /// The source IP was over its budget.
        RateLimited => "rate_limited",
        /// Too many source IPs at once (a spoofed flood).
        TooManySources => "too_many_sources",
        /// The next actor's mailbox was full.
        MailboxFull => "mailbox_full",
        /// Not a KRPC message, and not answerable.
        DecodeError => "decode_error",
        /// A response matching no query we sent.
        UnknownTransaction => "unknown_tid",
        /// A query arrived while we are read-only (BEP 43): not answered.
        ReadOnly => "read_only",
        /// The socket refused an outgoing datagram (buffer full).
        SendFailed => "send_failed",
    }
);

label!(
    /// A KRPC method, as counted.
    Method = "method" {
        /// `ping`.
        Ping => "ping",
        /// `find_node`.
        FindNode => "find_node",
        /// `get_peers`.
        GetPeers => "get_peers",
        /// `announce_peer`.
        AnnouncePeer => "announce_peer",
        /// Anything else.
        Other => "other",
    }
);

label!(
    /// Why an outbound query was held back before it went out.
    Delay = "reason" {
        /// The same target was asked of the same node too recently: it
        /// waits until the spacing has passed.
        Spacing => "spacing",
        /// The outbound query budget was spent: it waits in the queue.
        Budget => "budget",
    }
);

label!(
    /// Why an outbound query was never sent.
    NotSent = "reason" {
        /// The outbound queue is full (the query budget is exhausted).
        QueueFull => "queue_full",
        /// Too many recent (node, target) pairs are remembered to space
        /// another one: sending less is the safe side.
        SpacingFull => "spacing_full",
        /// Too many queries are awaiting answers.
        TooManyPending => "too_many_pending",
        /// The socket did not take the datagram.
        SendFailed => "send_failed",
    }
);

label!(
    /// A KRPC error code, as counted.
    ErrorLabel = "code" {
        /// 201.
        Generic => "201",
        /// 202.
        Server => "202",
        /// 203.
        Protocol => "203",
        /// 204.
        MethodUnknown => "204",
        /// Any other code.
        Other => "other",
    }
);

impl ErrorLabel {
    /// The label of a numeric code.
    pub fn of(code: i64) -> Self {
        match code {
            201 => ErrorLabel::Generic,
            202 => ErrorLabel::Server,
            203 => ErrorLabel::Protocol,
            204 => ErrorLabel::MethodUnknown,
            _ => ErrorLabel::Other,
        }
    }
}

label!(
    /// One of a node's components: the actors of the actor driver.
    Component = "actor" {
        /// The UDP socket and its receive loop.
        Socket => "socket",
        /// Inbound admission and the outbound pacer.
        RateLimiter => "rate_limiter",
        /// The k-buckets and their upkeep.
        RoutingTable => "routing_table",
        /// Outstanding outbound queries.
        Transactions => "transactions",
        /// Stored peers, token secrets, and the answers to queries.
        AnnounceStore => "announce_store",
        /// Running lookups.
        Lookups => "lookups",
        /// Bootstrap and the public API's front.
        Supervisor => "supervisor",
    }
);

label!(
    /// Why an actor was restarted.
    RestartReason = "reason" {
        /// A handler panicked; the panic was caught at its boundary.
        Panicked => "panicked",
    }
);

label!(
    /// Why an `announce_peer` we received was refused.
    AnnounceRefusal = "reason" {
        /// The token was missing, forged or expired.
        BadToken => "bad_token",
        /// The store is at its cap on info hashes or peers per info hash.
        Full => "full",
        /// Port 0.
        BadPort => "bad_port",
    }
);

label!(
    /// What a lookup was for, as counted.
    LookupLabel = "kind" {
        /// get_peers without an announce.
        GetPeers => "get_peers",
        /// find_node (refreshes, bootstrap, callers).
        FindNode => "find_node",
        /// get_peers followed by announce_peer.
        Announce => "announce",
    }
);

label!(
    /// How a lookup ended, as counted.
    LookupOutcome = "outcome" {
        /// Some node answered.
        Answered => "answered",
        /// No node answered.
        Unanswered => "unanswered",
        /// Never started: too many lookups were waiting.
        Refused => "refused",
    }
);

label!(
    /// A routing-table node state, as counted.
    NodeState = "state" {
        /// Answered recently.
        Good => "good",
        /// Silent for a while.
        Questionable => "questionable",
        /// Failed repeatedly.
        Bad => "bad",
    }
);

label!(
    /// A condition an operator should know about (rTorrent's warnings).
    Warning = "warning" {
        /// The routing table is empty: no DHT nodes available for a search.
        NoNodes => "no_nodes",
        /// The latest search a caller asked for reached no node.
        SearchUnsuccessful => "search_unsuccessful",
        /// The latest announce a caller asked for was accepted by no node.
        AnnounceFailed => "announce_failed",
        /// Replies arrive but nobody queries us: the port appears
        /// unreachable (forward the UDP port).
        PortUnreachable => "port_unreachable",
        /// Neither replies nor queries arrive: the port appears firewalled.
        PortFirewalled => "port_firewalled",
    }
);

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

/// Counts for one metric, one atomic per label combination.
#[derive(Debug)]
pub struct Cells<L> {
    cells: Box<[AtomicU64]>,
    _labels: PhantomData<L>,
}

impl<L: Labels> Default for Cells<L> {
    fn default() -> Self {
        Cells {
            cells: (0..L::COUNT).map(|_| AtomicU64::new(0)).collect(),
            _labels: PhantomData,
        }
    }
}

impl<L: Labels> Cells<L> {
    /// Adds `n` to the cell of `labels`.
    pub fn add(&self, labels: L, n: u64) {
        self.cells[labels.cell()].fetch_add(n, Relaxed);
    }
    /// Adds one.
    pub fn incr(&self, labels: L) {
        self.add(labels, 1);
    }
    /// Takes `n` away (gauges that go down).
    pub fn sub(&self, labels: L, n: u64) {
        let cell = &self.cells[labels.cell()];
        let _ = cell.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(n)));
    }
    /// Sets the cell (gauges).
    pub fn set(&self, labels: L, v: u64) {
        self.cells[labels.cell()].store(v, Relaxed);
    }
    /// The cell's value.
    pub fn get(&self, labels: L) -> u64 {
        self.cells[labels.cell()].load(Relaxed)
    }
    fn values(&self) -> Values<L> {
        Values {
            values: self.cells.iter().map(|c| c.load(Relaxed)).collect(),
            _labels: PhantomData,
        }
    }
}

impl Cells<()> {
    /// The value of a metric without labels.
    pub fn value(&self) -> u64 {
        self.get(())
    }
}

/// Samples for one histogram, per label, waiting to be exported.
#[derive(Debug)]
pub struct Samples<L> {
    cells: Box<[Mutex<Vec<f64>>]>,
    _labels: PhantomData<L>,
}

/// Samples kept per histogram cell between two exports: an exporter that
/// never runs cannot make them grow without bound.
pub const MAX_PENDING_SAMPLES: usize = 4096;

impl<L: Labels> Default for Samples<L> {
    fn default() -> Self {
        Samples {
            cells: (0..L::COUNT).map(|_| Mutex::new(Vec::new())).collect(),
            _labels: PhantomData,
        }
    }
}

impl<L: Labels> Samples<L> {
    /// Records one sample (dropped when [`MAX_PENDING_SAMPLES`] wait).
    pub fn record(&self, labels: L, value: f64) {
        if let Ok(mut pending) = self.cells[labels.cell()].lock() {
            if pending.len() < MAX_PENDING_SAMPLES {
                pending.push(value);
            }
        }
    }
    fn drain(&self, cell: usize) -> Vec<f64> {
        self.cells[cell]
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
    }
}

/// A copy of one metric's cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Values<L> {
    values: Vec<u64>,
    _labels: PhantomData<L>,
}

impl<L: Labels> Default for Values<L> {
    fn default() -> Self {
        Values {
            values: vec![0; L::COUNT],
            _labels: PhantomData,
        }
    }
}

impl<L: Labels> Values<L> {
    /// The value for `labels`.
    pub fn get(&self, labels: L) -> u64 {
        self.values[labels.cell()]
    }
    /// The sum over every label.
    pub fn total(&self) -> u64 {
        self.values.iter().sum()
    }
}

impl Values<()> {
    /// The value of a metric without labels.
    pub fn value(&self) -> u64 {
        self.values[0]
    }
}

impl<L: Label> Values<L> {
    /// Each label value with its count, in declaration order.
    pub fn by_label(&self) -> impl Iterator<Item = (L, u64)> + '_ {
        L::ALL.iter().copied().zip(self.values.iter().copied())
    }
}

/// One cell as an exporter sees it.
#[derive(Debug)]
pub enum CellValue<'a> {
    /// A counter's or gauge's value now.
    Level(&'a AtomicU64),
    /// A histogram's samples since the last call.
    Samples(Vec<f64>),
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
            $( $(#[$doc])* pub $field: $cells<$labels>, )*
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

/// How a set of cells shows itself to [`Telemetry::for_each`] and snapshots.
trait Visit<L: Labels> {
    fn visit(&self, metric: usize, f: &mut dyn FnMut(usize, usize, CellValue<'_>));
    fn snapshot_values(&self) -> Values<L>;
}

impl<L: Labels> Visit<L> for Cells<L> {
    fn visit(&self, metric: usize, f: &mut dyn FnMut(usize, usize, CellValue<'_>)) {
        for (j, c) in self.cells.iter().enumerate() {
            f(metric, j, CellValue::Level(c));
        }
    }
    fn snapshot_values(&self) -> Values<L> {
        self.values()
    }
}

impl<L: Labels> Visit<L> for Samples<L> {
    fn visit(&self, metric: usize, f: &mut dyn FnMut(usize, usize, CellValue<'_>)) {
        for j in 0..self.cells.len() {
            f(metric, j, CellValue::Samples(self.drain(j)));
        }
    }
    fn snapshot_values(&self) -> Values<L> {
        Values::default()
    }
}

catalogue! {
    /// UDP datagrams received.
    packets_in: Cells<()> = Counter "dht_packets_received_total", Count, &[],
        "UDP datagrams received";
    /// UDP payload bytes received.
    bytes_in: Cells<()> = Counter "dht_received_bytes_total", Bytes, &[],
        "UDP payload bytes received";
    /// UDP datagrams sent.
    packets_out: Cells<()> = Counter "dht_packets_sent_total", Count, &[],
        "UDP datagrams sent";
    /// UDP payload bytes sent.
    bytes_out: Cells<()> = Counter "dht_sent_bytes_total", Bytes, &[],
        "UDP payload bytes sent";
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
    /// Routing-table nodes, by state.
    routing_nodes: Cells<NodeState> = Gauge "dht_routing_nodes", Count, &[],
        "Routing-table nodes, by state";
    /// Routing-table buckets.
    routing_buckets: Cells<()> = Gauge "dht_routing_buckets", Count, &[],
        "Routing-table buckets";
    /// Estimated nodes in the whole DHT.
    estimated_size: Cells<()> = Gauge "dht_estimated_network_nodes", Count, &[],
        "Estimated nodes in the whole DHT, from the distances seen";
    /// Info hashes with stored peers.
    store_info_hashes: Cells<()> = Gauge "dht_store_info_hashes", Count, &[],
        "Info hashes with stored peers";
    /// Stored peers over all info hashes.
    store_peers: Cells<()> = Gauge "dht_store_peers", Count, &[],
        "Stored peers over all info hashes";
    /// The cap on stored info hashes.
    store_info_hashes_limit: Cells<()> = Gauge "dht_store_info_hashes_limit", Count, &[],
        "The cap on stored info hashes (max_info_hashes)";
    /// 1 once bootstrapped.
    bootstrapped: Cells<()> = Gauge "dht_bootstrapped_nodes", Count, &[],
        "Nodes in this process whose bootstrap has completed";
    /// 1 for each warning that is true.
    warnings: Cells<Warning> = Gauge "dht_warning", Count, &[],
        "Nodes for which an operator warning is true, by warning";
    /// 1 while the node runs.
    running: Cells<()> = Gauge "dht_nodes_running", Count, &[],
        "DHT nodes running in this process";
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

/// The warnings that are true of a node, from its counters and state.
/// `searches` is the fate of the latest search and announce a caller asked
/// for (`None` before the first).
pub fn derive_warnings(
    t: &TelemetrySnapshot,
    nodes: usize,
    bootstrap_complete: bool,
    uptime: std::time::Duration,
    read_only: bool,
) -> Vec<Warning> {
    let mut w = Vec::new();
    if bootstrap_complete && nodes == 0 {
        w.push(Warning::NoNodes);
    }
    for warning in [Warning::SearchUnsuccessful, Warning::AnnounceFailed] {
        // The lookup pool keeps these two up to date.
        if t.warnings.get(warning) > 0 {
            w.push(warning);
        }
    }
    let (queries_in, queries_out, responses) = (
        t.queries_received(),
        t.queries_sent(),
        t.responses_in.value(),
    );
    if responses > 0 && queries_in == 0 && uptime >= UNREACHABLE_AFTER && !read_only {
        w.push(Warning::PortUnreachable);
    }
    if queries_out > 0 && responses == 0 && queries_in == 0 && uptime >= FIREWALLED_AFTER {
        w.push(Warning::PortFirewalled);
    }
    w
}

/// How long a node may hear replies but no queries before its port is
/// called unreachable (rTorrent's wording and interval).
pub const UNREACHABLE_AFTER: std::time::Duration = std::time::Duration::from_secs(15 * 60);
/// How long a node may send queries with no reply at all before its port
/// is called firewalled.
pub const FIREWALLED_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

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
