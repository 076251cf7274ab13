//! Traffic and event counters shared by one node's actors.
//!
//! Plain atomics: every actor increments them without a message hop, and
//! the supervisor reads them for `stats()`. Each event also goes to the
//! metrics recorder through handles kept in [`NodeMetrics`].
//! Each index is a small enum, so a label never takes an unbounded value.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::metrics::{error_code_index, NodeMetrics};

macro_rules! labelled {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $label:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name { $($(#[$vdoc])* $variant,)+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];
            /// How many values there are.
            pub const COUNT: usize = Self::ALL.len();
            /// The metric label for this value.
            pub fn label(self) -> &'static str {
                match self { $($name::$variant => $label,)+ }
            }
        }
    };
}

labelled!(
    /// Why an inbound datagram was dropped without an answer.
    DropReason {
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

labelled!(
    /// A KRPC method, as counted.
    Method {
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

labelled!(
    /// Why an outbound query was not sent.
    Refusal {
        /// The same target was asked of the same node too recently: the
        /// query was held back until the spacing passed (or refused when too
        /// many recent queries are remembered).
        Spacing => "spacing",
        /// The outbound queue is full (the query budget is exhausted).
        QueueFull => "queue_full",
        /// Too many queries are awaiting answers.
        TooManyPending => "too_many_pending",
        /// The socket did not take the datagram.
        SendFailed => "send_failed",
    }
);

labelled!(
    /// One of a node's actors.
    ActorKind {
        /// Owns the UDP socket and its receive loop.
        Socket => "socket",
        /// Inbound admission and outbound query budget.
        RateLimiter => "rate_limiter",
        /// The k-buckets.
        RoutingTable => "routing_table",
        /// Outstanding outbound queries.
        Transactions => "transactions",
        /// Stored peers and token secrets.
        AnnounceStore => "announce_store",
        /// Running lookups.
        Lookups => "lookups",
        /// The node's supervisor and API front.
        Supervisor => "supervisor",
    }
);

labelled!(
    /// Why an announce_peer we received was refused.
    AnnounceRejection {
        /// The token was missing, forged or expired.
        BadToken => "bad_token",
        /// The store is at its cap on info hashes or peers per info hash.
        Full => "full",
        /// Port 0.
        BadPort => "bad_port",
    }
);

/// Counters for one node.
#[derive(Debug, Default)]
pub struct Counters {
    /// Datagrams received.
    packets_in: AtomicU64,
    /// Bytes received.
    bytes_in: AtomicU64,
    /// Datagrams sent.
    packets_out: AtomicU64,
    /// Bytes sent.
    bytes_out: AtomicU64,
    dropped: [AtomicU64; DropReason::COUNT],
    queries_in: [AtomicU64; Method::COUNT],
    queries_out: [AtomicU64; Method::COUNT],
    refused: [AtomicU64; Refusal::COUNT],
    restarts: [AtomicU64; ActorKind::COUNT],
    announces_rejected: [AtomicU64; AnnounceRejection::COUNT],
    /// Datagrams handed to the rate limiter and not yet handled: its
    /// mailbox backlog, which actix does not expose.
    inbound_backlog: AtomicI64,
    peers_ignored: AtomicU64,
    search_failed: AtomicBool,
    announce_failed: AtomicBool,
    /// The same events, for the installed metrics recorder.
    metrics: NodeMetrics,
    /// Responses received that matched a query.
    responses_in: AtomicU64,
    /// KRPC errors received in answer to our queries.
    errors_in: AtomicU64,
    /// KRPC errors we sent (203 for malformed queries and bad tokens, 204, 202).
    errors_out: AtomicU64,
    /// Our queries that timed out.
    timeouts: AtomicU64,
    /// Tokens handed out in get_peers replies.
    tokens_issued: AtomicU64,
    /// Announces stored or refreshed.
    announces_stored: AtomicU64,
    /// Lookups started.
    lookups_started: AtomicU64,
    /// Lookups that found at least one responding node.
    lookups_succeeded: AtomicU64,
    /// Lookups that reached no node at all.
    lookups_failed: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

/// What a lookup was for, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupLabel {
    /// get_peers without an announce.
    GetPeers = 0,
    /// find_node (refreshes, bootstrap, callers).
    FindNode = 1,
    /// get_peers followed by announce_peer.
    Announce = 2,
}

impl Counters {
    /// Counts a dropped datagram.
    pub fn dropped(&self, reason: DropReason) {
        self.dropped_many(reason, 1);
    }
    /// Counts `n` inbound datagrams (or messages) dropped for one reason.
    pub fn dropped_many(&self, reason: DropReason, n: usize) {
        self.dropped[reason as usize].fetch_add(n as u64, Relaxed);
        self.metrics.dropped[reason as usize].increment(n as u64);
    }
    /// Counts a query received.
    pub fn query_in(&self, method: Method) {
        bump(&self.queries_in[method as usize]);
        self.metrics.queries_in[method as usize].increment(1);
    }
    /// Counts a query sent.
    pub fn query_out(&self, method: Method) {
        bump(&self.queries_out[method as usize]);
        self.metrics.queries_out[method as usize].increment(1);
    }
    /// Counts an outbound query not sent.
    pub fn refused(&self, why: Refusal) {
        bump(&self.refused[why as usize]);
        self.metrics.held[why as usize].increment(1);
    }
    /// Counts an actor restart.
    pub fn restarted(&self, actor: ActorKind) {
        bump(&self.restarts[actor as usize]);
        self.metrics.restarts[actor as usize].increment(1);
    }
    /// Counts an announce_peer refused.
    pub fn announce_rejected(&self, why: AnnounceRejection) {
        bump(&self.announces_rejected[why as usize]);
        self.metrics.announces_refused[why as usize].increment(1);
    }
    /// Counts a datagram sent.
    pub fn sent(&self, bytes: usize) {
        bump(&self.packets_out);
        self.bytes_out.fetch_add(bytes as u64, Relaxed);
        self.metrics.packets_out.increment(1);
        self.metrics.bytes_out.increment(bytes as u64);
    }
    /// Counts a datagram received.
    pub fn received(&self, bytes: usize) {
        bump(&self.packets_in);
        self.bytes_in.fetch_add(bytes as u64, Relaxed);
        self.metrics.packets_in.increment(1);
        self.metrics.bytes_in.increment(bytes as u64);
    }
    /// Counts a response that matched one of our queries.
    pub fn response_in(&self) {
        bump(&self.responses_in);
        self.metrics.responses_in.increment(1);
    }
    /// Counts a KRPC error received, by code.
    pub fn error_in(&self, code: i64) {
        bump(&self.errors_in);
        self.metrics.errors_in[error_code_index(code)].increment(1);
    }
    /// Counts a KRPC error sent, by code.
    pub fn error_out(&self, code: i64) {
        bump(&self.errors_out);
        self.metrics.errors_out[error_code_index(code)].increment(1);
    }
    /// Counts a query of ours that timed out.
    pub fn timeout(&self) {
        bump(&self.timeouts);
        self.metrics.timeouts.increment(1);
    }
    /// Counts a token issued.
    pub fn token_issued(&self) {
        bump(&self.tokens_issued);
        self.metrics.tokens_issued.increment(1);
    }
    /// Counts an announce stored or refreshed.
    pub fn announce_stored(&self) {
        bump(&self.announces_stored);
        self.metrics.announces_stored.increment(1);
    }
    /// Datagrams entered the rate limiter's mailbox.
    pub fn queued_inbound(&self, datagrams: usize) {
        self.inbound_backlog.fetch_add(datagrams as i64, Relaxed);
    }
    /// The rate limiter took datagrams from its mailbox.
    pub fn dequeued_inbound(&self, datagrams: usize) {
        self.inbound_backlog.fetch_sub(datagrams as i64, Relaxed);
    }
    /// Datagrams waiting for the rate limiter now.
    pub fn inbound_backlog(&self) -> usize {
        self.inbound_backlog.load(Relaxed).max(0) as usize
    }
    /// Remembers whether a caller's latest search reached any node.
    pub fn search_result(&self, answered: bool) {
        self.search_failed.store(!answered, Relaxed);
    }
    /// Remembers whether a caller's latest announce was accepted anywhere.
    pub fn announce_result(&self, accepted: bool) {
        self.announce_failed.store(!accepted, Relaxed);
    }
    /// Counts peers in answers that could not be used (port 0).
    pub fn peers_ignored(&self, n: usize) {
        if n > 0 {
            self.peers_ignored.fetch_add(n as u64, Relaxed);
            self.metrics.peers_ignored.increment(n as u64);
        }
    }
    /// Counts a lookup started.
    pub fn lookup_started(&self, kind: LookupLabel) {
        bump(&self.lookups_started);
        self.metrics.lookups_started[kind as usize].increment(1);
    }
    /// Counts a finished lookup: whether any node answered, how long it
    /// took and how many queries it sent.
    pub fn lookup_finished(
        &self,
        kind: LookupLabel,
        answered: bool,
        duration: Duration,
        queries: usize,
    ) {
        bump(if answered {
            &self.lookups_succeeded
        } else {
            &self.lookups_failed
        });
        let m = &self.metrics;
        m.lookups_finished[kind as usize][usize::from(!answered)].increment(1);
        m.lookup_duration[kind as usize].record(duration.as_secs_f64());
        m.lookup_queries[kind as usize].record(queries as f64);
    }

    /// Datagrams sent so far (one atomic read, for tight loops).
    pub fn packets_sent(&self) -> u64 {
        self.packets_out.load(Relaxed)
    }

    /// A consistent-enough copy for reporting.
    pub fn snapshot(&self) -> CountersSnapshot {
        let read = |c: &AtomicU64| c.load(Relaxed);
        CountersSnapshot {
            packets_in: read(&self.packets_in),
            bytes_in: read(&self.bytes_in),
            packets_out: read(&self.packets_out),
            bytes_out: read(&self.bytes_out),
            dropped: DropReason::ALL
                .iter()
                .map(|r| (*r, read(&self.dropped[*r as usize])))
                .collect(),
            queries_in: Method::ALL
                .iter()
                .map(|m| (*m, read(&self.queries_in[*m as usize])))
                .collect(),
            queries_out: Method::ALL
                .iter()
                .map(|m| (*m, read(&self.queries_out[*m as usize])))
                .collect(),
            refused: Refusal::ALL
                .iter()
                .map(|r| (*r, read(&self.refused[*r as usize])))
                .collect(),
            restarts: ActorKind::ALL
                .iter()
                .map(|a| (*a, read(&self.restarts[*a as usize])))
                .collect(),
            announces_rejected: AnnounceRejection::ALL
                .iter()
                .map(|r| (*r, read(&self.announces_rejected[*r as usize])))
                .collect(),
            responses_in: read(&self.responses_in),
            errors_in: read(&self.errors_in),
            errors_out: read(&self.errors_out),
            timeouts: read(&self.timeouts),
            tokens_issued: read(&self.tokens_issued),
            announces_stored: read(&self.announces_stored),
            lookups_started: read(&self.lookups_started),
            lookups_succeeded: read(&self.lookups_succeeded),
            lookups_failed: read(&self.lookups_failed),
            inbound_backlog: self.inbound_backlog.load(Relaxed).max(0) as u64,
            peers_ignored: read(&self.peers_ignored),
            last_search_failed: self.search_failed.load(Relaxed),
            last_announce_failed: self.announce_failed.load(Relaxed),
        }
    }
}

/// A copy of [`Counters`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct CountersSnapshot {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub dropped: Vec<(DropReason, u64)>,
    pub queries_in: Vec<(Method, u64)>,
    pub queries_out: Vec<(Method, u64)>,
    pub refused: Vec<(Refusal, u64)>,
    pub restarts: Vec<(ActorKind, u64)>,
    pub announces_rejected: Vec<(AnnounceRejection, u64)>,
    pub responses_in: u64,
    pub errors_in: u64,
    pub errors_out: u64,
    pub timeouts: u64,
    pub tokens_issued: u64,
    pub announces_stored: u64,
    pub lookups_started: u64,
    pub lookups_succeeded: u64,
    pub lookups_failed: u64,
    pub inbound_backlog: u64,
    pub peers_ignored: u64,
    pub last_search_failed: bool,
    pub last_announce_failed: bool,
}

impl CountersSnapshot {
    /// Restarts of one actor.
    pub fn restarts_of(&self, actor: ActorKind) -> u64 {
        self.restarts
            .iter()
            .find(|(a, _)| *a == actor)
            .map_or(0, |(_, n)| *n)
    }
    /// Datagrams dropped for one reason.
    pub fn dropped_for(&self, reason: DropReason) -> u64 {
        self.dropped
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }
    /// Queries received of one method.
    pub fn queries_in_of(&self, method: Method) -> u64 {
        self.queries_in
            .iter()
            .find(|(m, _)| *m == method)
            .map_or(0, |(_, n)| *n)
    }
    /// Announces refused for one reason.
    pub fn announces_rejected_for(&self, why: AnnounceRejection) -> u64 {
        self.announces_rejected
            .iter()
            .find(|(r, _)| *r == why)
            .map_or(0, |(_, n)| *n)
    }
}
