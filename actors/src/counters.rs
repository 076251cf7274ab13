//! Traffic and event counters shared by one node's actors.
//!
//! Plain atomics: every actor increments them without a message hop, and
//! the supervisor reads them for `stats()` and for the metrics exporter.
//! Each index is a small enum, so a label never takes an unbounded value.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
    pub packets_in: AtomicU64,
    /// Bytes received.
    pub bytes_in: AtomicU64,
    /// Datagrams sent.
    pub packets_out: AtomicU64,
    /// Bytes sent.
    pub bytes_out: AtomicU64,
    dropped: [AtomicU64; DropReason::COUNT],
    queries_in: [AtomicU64; Method::COUNT],
    queries_out: [AtomicU64; Method::COUNT],
    refused: [AtomicU64; Refusal::COUNT],
    restarts: [AtomicU64; ActorKind::COUNT],
    announces_rejected: [AtomicU64; AnnounceRejection::COUNT],
    /// Responses received that matched a query.
    pub responses_in: AtomicU64,
    /// KRPC errors received in answer to our queries.
    pub errors_in: AtomicU64,
    /// KRPC errors we sent (203 for malformed queries and bad tokens, 204, 202).
    pub errors_out: AtomicU64,
    /// Our queries that timed out.
    pub timeouts: AtomicU64,
    /// Tokens handed out in get_peers replies.
    pub tokens_issued: AtomicU64,
    /// Announces stored or refreshed.
    pub announces_stored: AtomicU64,
    /// Lookups started.
    pub lookups_started: AtomicU64,
    /// Lookups that found at least one responding node.
    pub lookups_succeeded: AtomicU64,
    /// Lookups that reached no node at all.
    pub lookups_failed: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

impl Counters {
    /// Counts a dropped datagram.
    pub fn dropped(&self, reason: DropReason) {
        bump(&self.dropped[reason as usize]);
    }
    /// Counts a query received.
    pub fn query_in(&self, method: Method) {
        bump(&self.queries_in[method as usize]);
    }
    /// Counts a query sent.
    pub fn query_out(&self, method: Method) {
        bump(&self.queries_out[method as usize]);
    }
    /// Counts an outbound query not sent.
    pub fn refused(&self, why: Refusal) {
        bump(&self.refused[why as usize]);
    }
    /// Counts an actor restart.
    pub fn restarted(&self, actor: ActorKind) {
        bump(&self.restarts[actor as usize]);
    }
    /// Counts an announce_peer refused.
    pub fn announce_rejected(&self, why: AnnounceRejection) {
        bump(&self.announces_rejected[why as usize]);
    }
    /// Counts one event on a plain counter.
    pub fn add(&self, counter: &AtomicU64) {
        bump(counter);
    }
    /// Counts a datagram sent.
    pub fn sent(&self, bytes: usize) {
        bump(&self.packets_out);
        self.bytes_out.fetch_add(bytes as u64, Relaxed);
    }
    /// Counts a datagram received.
    pub fn received(&self, bytes: usize) {
        bump(&self.packets_in);
        self.bytes_in.fetch_add(bytes as u64, Relaxed);
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
