//! What the pieces of a node tell each other and the drivers, and the
//! node's configuration. Commands are imperative (`Send`, `Start`), events
//! past tense (`Responded`, `LookupFinished`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::Envelope;
use crate::compact::NodeInfo;
use crate::id::{InfoHash, NodeId};
use crate::lookup::{LookupConfig, LookupEnd, LookupKind};
use crate::rate_limit::Rate;
use crate::routing::{NodeSnapshot, RoutingConfig};
use crate::server::Needs;
use crate::store::PeerStoreConfig;
use crate::telemetry::{LookupLabel, Method, NotSent};
use crate::token::{Token, TokenConfig};
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
            max_added_nodes: 32,
        }
    }
}

/// A datagram as read from the socket.
#[derive(Debug, Clone)]
pub struct Datagram {
    /// Sender.
    pub from: SocketAddr,
    /// The datagram (often a slice of its batch's one buffer).
    pub bytes: Bytes,
}

/// For the rate limiter.
#[derive(Debug)]
pub enum RateLimiterInput {
    /// Datagrams the socket read in one wake-up.
    Datagrams(Vec<Datagram>),
    /// A query to pace and send.
    Send(OutboundQuery),
}

/// A decoded inbound query, admitted by the rate limiter.
#[derive(Debug, Clone)]
pub struct InboundQuery {
    /// Sender's address (where the answer goes).
    pub from: SocketAddr,
    /// Transaction id, sharing the datagram's buffer.
    pub tid: Bytes,
    /// The querying node's id.
    pub sender: NodeId,
    /// `ro = 1`: never put this node in the table.
    pub read_only: bool,
    /// The method, as counted.
    pub method: Method,
    /// What answering needs.
    pub needs: Needs,
}

/// `announce_peer` arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceArgs {
    /// The torrent.
    pub info_hash: InfoHash,
    /// The port to store, unless `implied_port`.
    pub port: u16,
    /// Store the UDP source port instead.
    pub implied_port: bool,
    /// The token presented.
    pub token: Bytes,
}

/// A decoded response or error, for the transaction table.
#[derive(Debug, Clone)]
pub struct InboundResponse {
    /// Responder's address.
    pub from: SocketAddr,
    /// Transaction id as received.
    pub tid: Bytes,
    /// `ip` (BEP 42): where the responder saw us.
    pub requester_ip: Option<SocketAddr>,
    /// The answer, or the KRPC error code.
    pub result: Result<Reply, i64>,
}

/// The useful content of a response, owned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    /// Responder's id.
    pub id: NodeId,
    /// `nodes` and `nodes6`.
    pub nodes: Vec<NodeInfo>,
    /// `values`.
    pub peers: Vec<SocketAddr>,
    /// `token`.
    pub token: Option<Token>,
    /// `v`, the responder's client and version.
    pub version: Option<Vec<u8>>,
}

/// A query we want to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutQuery {
    /// `ping`.
    Ping,
    /// `find_node`.
    FindNode(NodeId),
    /// `get_peers`.
    GetPeers(InfoHash),
    /// `announce_peer`.
    AnnouncePeer {
        /// The torrent.
        info_hash: InfoHash,
        /// Our port (ignored by the receiver when `implied_port`).
        port: u16,
        /// Ask the receiver to store our UDP source port.
        implied_port: bool,
        /// The token the node gave us.
        token: Token,
    },
}

impl OutQuery {
    /// The method, as counted.
    pub fn method(&self) -> Method {
        match self {
            OutQuery::Ping => Method::Ping,
            OutQuery::FindNode(_) => Method::FindNode,
            OutQuery::GetPeers(_) => Method::GetPeers,
            OutQuery::AnnouncePeer { .. } => Method::AnnouncePeer,
        }
    }

    /// What the query is about, for the spacing rule (zero for `ping`).
    pub fn target(&self) -> [u8; 20] {
        match self {
            OutQuery::Ping => [0; 20],
            OutQuery::FindNode(t) => *t.as_bytes(),
            OutQuery::GetPeers(ih) | OutQuery::AnnouncePeer { info_hash: ih, .. } => *ih.as_bytes(),
        }
    }
}

/// Who wants the outcome of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asker {
    /// Nobody: the routing table learns of the answer anyway (pings).
    Nobody,
    /// A running lookup.
    Lookup(LookupId),
    /// The application (a ping it asked for), by its tag.
    Api(u64),
}

impl Asker {
    /// The message that tells the asker how its query went, if it wants one.
    pub fn told(self, done: QueryDone) -> Option<Envelope> {
        match self {
            Asker::Nobody => None,
            Asker::Lookup(lookup) => {
                Some(Envelope::Lookups(LookupsInput::QueryDone { lookup, done }))
            }
            Asker::Api(tag) => Some(Envelope::Api(ApiEvent::Pong { tag, done })),
        }
    }
}

/// A query to send, and who wants its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundQuery {
    /// Destination.
    pub to: SocketAddr,
    /// Its id, when known (routers and added nodes have none yet).
    pub node: Option<NodeId>,
    /// What to ask.
    pub query: OutQuery,
    /// Who wants the answer.
    pub asker: Asker,
}

/// Why a query got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryFailure {
    /// No answer in time, after every attempt.
    Timeout,
    /// A KRPC error with this code.
    Remote(i64),
    /// Never sent.
    NotSent(NotSent),
}

/// The outcome of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryDone {
    /// Where it went.
    pub to: SocketAddr,
    /// The node's id as we knew it when sending.
    pub node: Option<NodeId>,
    /// Round-trip time, when answered.
    pub rtt: Option<Duration>,
    /// The answer.
    pub result: Result<Reply, QueryFailure>,
}

/// For the routing table's upkeep.
#[derive(Debug)]
pub enum RoutingInput {
    /// A node answered one of our queries; `heard` are the nodes it named.
    Responded {
        /// Who.
        info: NodeInfo,
        /// Nodes its answer carried.
        heard: Vec<NodeInfo>,
    },
    /// A query to a node timed out or got an error.
    Failed {
        /// Who.
        info: NodeInfo,
    },
    /// A node queried us.
    Queried {
        /// Who.
        info: NodeInfo,
        /// `ro = 1`.
        read_only: bool,
    },
    /// Nodes with known ids (a saved table): each is pinged if the table
    /// has room for it.
    Consider(Vec<NodeInfo>),
    /// Router addresses: asked at bootstrap, kept out of the table.
    SetRouters(Vec<SocketAddr>),
    /// Routers that our own-id lookup found among our k closest nodes:
    /// neighbours, not mere entry points (a private network); they join.
    AdmitRouters(Vec<NodeInfo>),
    /// Start one refresh lookup per bucket for the bootstrap, and say how many.
    RefreshAll,
    /// Publish the table now and report its size to the supervisor.
    Summarize,
}

/// For the transaction table.
#[derive(Debug)]
pub enum TransactionsInput {
    /// Send a query (the pacer let it through).
    Send(OutboundQuery),
    /// Responses and errors read in one batch.
    Responses(Vec<InboundResponse>),
}

/// For the announce store.
#[derive(Debug)]
pub enum StoreInput {
    /// Queries admitted in one batch, to answer.
    Queries(Vec<InboundQuery>),
    /// The routing table's nodes, for the `nodes` of answers.
    Snapshot(Arc<NodeSnapshot>),
    /// A lookup of ours wants the peers we hold ourselves for an info hash.
    LocalPeers {
        /// The lookup.
        lookup: LookupId,
        /// The info hash.
        info_hash: InfoHash,
    },
}

/// A lookup's number in its pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LookupId(pub u64);

/// A caller of the application API, by the number its driver gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallerId(pub u64);

/// Who started a lookup, and so where its events go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requester {
    /// The application: peers, progress and the summary go to the API.
    Caller(CallerId),
    /// A repeated announce the application asked for: nothing goes back,
    /// but its warnings count as a caller's.
    Reannounce,
    /// The bootstrap: the summary goes to the supervisor.
    Bootstrap(BootstrapLookup),
    /// A bucket refresh: nothing goes back.
    Refresh,
}

/// Which bootstrap lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootstrapLookup {
    /// The lookup of our own id, from the sources.
    OwnId,
    /// A refresh of one bucket after it.
    Refresh,
}

/// What to announce after a get_peers lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceSpec {
    /// Our port, unless `implied_port`.
    pub port: u16,
    /// Let the receivers store our UDP source port.
    pub implied_port: bool,
}

/// Start a lookup.
#[derive(Debug, Clone)]
pub struct StartLookup {
    /// The id or info hash sought.
    pub target: NodeId,
    /// find_node or get_peers.
    pub kind: LookupKind,
    /// Announce once the lookup ends.
    pub announce: Option<AnnounceSpec>,
    /// Who asked.
    pub requester: Requester,
    /// Nodes to start from, besides the table's closest.
    pub seeds: Vec<NodeInfo>,
    /// Addresses without a known id (routers, added nodes), asked first.
    pub addr_seeds: Vec<SocketAddr>,
}

impl StartLookup {
    /// A lookup of `target` from the table, for `requester`.
    pub fn new(target: NodeId, kind: LookupKind, requester: Requester) -> Self {
        StartLookup {
            target,
            kind,
            announce: None,
            requester,
            seeds: Vec::new(),
            addr_seeds: Vec::new(),
        }
    }

    /// What it counts as.
    pub fn label(&self) -> LookupLabel {
        match (self.kind, self.announce) {
            (LookupKind::FindNode, _) => LookupLabel::FindNode,
            (LookupKind::GetPeers, None) => LookupLabel::GetPeers,
            (LookupKind::GetPeers, Some(_)) => LookupLabel::Announce,
        }
    }
}

/// For the lookup pool.
#[derive(Debug)]
pub enum LookupsInput {
    /// Start (or queue) a lookup.
    Start(StartLookup),
    /// A query of a lookup ended.
    QueryDone {
        /// The lookup.
        lookup: LookupId,
        /// How it went.
        done: QueryDone,
    },
    /// The routing table's nodes, for seeding lookups.
    Snapshot(Arc<NodeSnapshot>),
    /// The peers our own store holds for a lookup's info hash.
    LocalPeers {
        /// The lookup.
        lookup: LookupId,
        /// The peers.
        peers: Vec<SocketAddr>,
    },
    /// Bootstrap completed (true) or was lost (false): the application's
    /// lookups run, or wait.
    Bootstrapped(bool),
    /// The caller stopped listening: its lookups end.
    Cancel(CallerId),
    /// Announce `info_hash` every `every` from now on (`None`: stop).
    AnnounceEvery {
        /// The torrent.
        info_hash: InfoHash,
        /// Which port.
        spec: AnnounceSpec,
        /// How often.
        every: Option<Duration>,
    },
}

/// What a running lookup reports to its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupEvent {
    /// A peer not reported before.
    Peer(SocketAddr),
    /// A node answered: how far the lookup has come.
    Progress {
        /// Queries sent so far.
        queries: usize,
        /// Answers so far.
        responses: usize,
        /// Leading bits shared by the target and the closest node that
        /// answered (160 would be the target itself).
        common_bits: u32,
    },
    /// The end, with its summary.
    Finished(LookupSummary),
}

/// How a lookup went.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LookupSummary {
    /// The target.
    pub target: NodeId,
    /// Queries sent (including the first queries to seed addresses).
    pub queries: usize,
    /// Answers received.
    pub responses: usize,
    /// Failed or timed out.
    pub failures: usize,
    /// The closest nodes that answered, closest first.
    pub closest: Vec<NodeInfo>,
    /// Peers found (get_peers), our own store's included.
    pub peers: usize,
    /// Peers in answers that could not be used (port 0), ignored.
    pub ignored_peers: usize,
    /// Hops from the seeds to the closest responder.
    pub hops: u32,
    /// Why it ended.
    pub end: LookupEnd,
    /// From start to end, on the driver's clock.
    pub duration: Duration,
    /// The announce, when one was asked for.
    pub announce: Option<AnnounceReport>,
}

/// How an announce went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AnnounceReport {
    /// announce_peer queries sent (closest nodes that gave a token, at most k).
    pub tried: usize,
    /// Answered without error.
    pub accepted: usize,
}

/// The routing table's size, as the supervisor needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableSummary {
    /// Nodes in buckets that are not bad.
    pub nodes: usize,
    /// Buckets.
    pub buckets: usize,
    /// Estimated nodes in the whole DHT.
    pub estimated_dht_size: Option<u64>,
}

/// For the supervisor's bootstrap.
#[derive(Debug)]
pub enum SupervisorInput {
    /// The driver resolved the bootstrap sources.
    SourcesResolved {
        /// Routers.
        routers: Vec<SocketAddr>,
        /// Ordinary nodes.
        nodes: Vec<SocketAddr>,
    },
    /// Nodes handed to us at run time (by hand, a .torrent, PORT messages).
    AddNodes(Vec<SocketAddr>),
    /// A bootstrap lookup ended.
    LookupFinished {
        /// Which.
        purpose: BootstrapLookup,
        /// How it went.
        summary: LookupSummary,
    },
    /// This many bucket refreshes were started for the bootstrap.
    RefreshStarted(usize),
    /// The routing table's size now.
    TableSummary(TableSummary),
    /// Other nodes agree that they see us at this address (BEP 42).
    ExternalAddress(IpAddr),
}

/// For the application that asked.
#[derive(Debug)]
pub enum ApiEvent {
    /// An event of a caller's lookup.
    Lookup {
        /// Whose.
        caller: CallerId,
        /// What.
        event: LookupEvent,
    },
    /// The outcome of a ping the application asked for.
    Pong {
        /// Its tag.
        tag: u64,
        /// How it went.
        done: QueryDone,
    },
    /// Bootstrap completed (true) or was lost (false).
    Bootstrapped(bool),
    /// Our address as other nodes see it changed.
    ExternalAddress(IpAddr),
}

/// Work for the driver's I/O, which the pieces cannot do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoRequest {
    /// Resolve `host:port` sources (numeric ones need no lookup) and
    /// answer with [`SupervisorInput::SourcesResolved`].
    Resolve {
        /// Routers.
        routers: Vec<String>,
        /// Ordinary nodes.
        nodes: Vec<String>,
    },
    /// Keep this node id for the next start (a BEP 42 id).
    SaveNodeId(NodeId),
}

/// Something to tell the operator, with the numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    /// The node has a working table.
    BootstrapComplete(TableSummary),
    /// An attempt reached no node; the next one is in `retry_in`.
    BootstrapUnanswered {
        /// Attempts so far.
        attempt: u32,
        /// Wait before the next.
        retry_in: Duration,
    },
    /// Nodes answered but none could be kept; the next attempt is in `retry_in`.
    BootstrapEmpty {
        /// Attempts so far.
        attempt: u32,
        /// Wait before the next.
        retry_in: Duration,
    },
    /// The table emptied after bootstrap: bootstrapping again.
    Rejoining,
    /// A search found no node to ask.
    NoNodesForSearch(NodeId),
    /// A search got no reply at all.
    SearchUnsuccessful {
        /// Its target.
        target: NodeId,
        /// Queries sent.
        queries: usize,
    },
    /// No node accepted an announce.
    AnnounceFailed {
        /// Its info hash.
        target: NodeId,
        /// Nodes tried.
        tried: usize,
    },
    /// Too many lookups were waiting: one ended unstarted.
    LookupRefused(NodeId),
    /// Other nodes agree on our external address.
    ExternalAddress(IpAddr),
    /// A BEP 42 id was chosen for the next start.
    Bep42Id(NodeId),
}

/// How loud a log event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Routine progress.
    Info,
    /// Something an operator should look at.
    Warn,
}

impl LogEvent {
    /// How loud it is.
    pub fn level(&self) -> LogLevel {
        match self {
            LogEvent::BootstrapComplete(_)
            | LogEvent::ExternalAddress(_)
            | LogEvent::Bep42Id(_) => LogLevel::Info,
            _ => LogLevel::Warn,
        }
    }

    /// The part of the node it concerns, as a log target.
    pub fn target(&self) -> &'static str {
        match self {
            LogEvent::BootstrapComplete(_)
            | LogEvent::BootstrapUnanswered { .. }
            | LogEvent::BootstrapEmpty { .. }
            | LogEvent::Rejoining => "dht::bootstrap",
            LogEvent::NoNodesForSearch(_)
            | LogEvent::SearchUnsuccessful { .. }
            | LogEvent::AnnounceFailed { .. }
            | LogEvent::LookupRefused(_) => "dht::lookup",
            LogEvent::ExternalAddress(_) | LogEvent::Bep42Id(_) => "dht::node",
        }
    }
}

impl std::fmt::Display for LogEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogEvent::BootstrapComplete(s) => write!(
                f,
                "bootstrap complete: {} nodes in {} buckets, about {} nodes in the DHT",
                s.nodes,
                s.buckets,
                s.estimated_dht_size.unwrap_or(0)
            ),
            LogEvent::BootstrapUnanswered { attempt, retry_in } => write!(
                f,
                "bootstrap reached no DHT node (attempt {attempt}); retrying in {retry_in:?}"
            ),
            LogEvent::BootstrapEmpty { attempt, retry_in } => write!(
                f,
                "bootstrap found no node to keep (attempt {attempt}); retrying in {retry_in:?}"
            ),
            LogEvent::Rejoining => f.write_str("no DHT nodes available; bootstrapping again"),
            LogEvent::NoNodesForSearch(t) => {
                write!(f, "no DHT nodes available for a search of {t}")
            }
            LogEvent::SearchUnsuccessful { target, queries } => write!(
                f,
                "search unsuccessful (no replies to {queries} queries) for {target}"
            ),
            LogEvent::AnnounceFailed { target, tried } => write!(
                f,
                "announce failed: none of {tried} nodes accepted it for {target}"
            ),
            LogEvent::LookupRefused(t) => {
                write!(
                    f,
                    "too many lookups waiting; the lookup of {t} ends unstarted"
                )
            }
            LogEvent::ExternalAddress(ip) => {
                write!(f, "external address learned from other nodes: {ip}")
            }
            LogEvent::Bep42Id(id) => write!(f, "BEP 42 node id {id} saved for the next start"),
        }
    }
}

impl StoreInput {
    /// Inbound datagrams this message carries that may be shed when the
    /// store is overloaded (UDP may lose them anyway); 0 for the messages
    /// between pieces, which must arrive.
    pub fn sheddable(&self) -> usize {
        match self {
            StoreInput::Queries(q) => q.len(),
            _ => 0,
        }
    }
}

impl TransactionsInput {
    /// Inbound datagrams this message carries that may be shed under load;
    /// 0 for our own queries, which must be sent or refused.
    pub fn sheddable(&self) -> usize {
        match self {
            TransactionsInput::Responses(r) => r.len(),
            TransactionsInput::Send(_) => 0,
        }
    }
}
