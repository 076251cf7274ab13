//! The typed messages between a node's actors. Commands are imperative
//! (`SendQuery`, `StartLookup`), events past tense (`DatagramReceived`,
//! `NodeResponded`), questions nouns (`ClosestNodes`, `RoutingSummary`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::{Message, Recipient};
use bytes::Bytes;
use dhtd_protocol::lookup::{LookupEnd, LookupKind};
use dhtd_protocol::routing::{NodeSnapshot, RoutingStats};
use dhtd_protocol::server::Needs;
use dhtd_protocol::token::Token;
use dhtd_protocol::{InfoHash, NodeId, NodeInfo};
use tokio::sync::mpsc::UnboundedSender;

use crate::counters::Method;

/// A datagram as read from the socket.
#[derive(Debug)]
pub struct DatagramReceived {
    /// Sender.
    pub from: SocketAddr,
    /// The datagram: a slice of its batch's one exact-size buffer.
    pub bytes: Bytes,
}

/// The datagrams one wake-up of the receive loop found waiting: one message
/// (and one allocation for their bytes) for all of them, so that under load
/// the cost of a hop is shared by many datagrams.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct DatagramsReceived(pub Vec<DatagramReceived>);

/// The queries admitted from one batch for one answering actor.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct InboundQueries(pub Vec<InboundQuery>);

/// The responses and errors from one batch, for the transaction table.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct InboundResponses(pub Vec<InboundResponse>);

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
    /// What answering needs.
    pub needs: Needs,
    /// The arguments of an `announce_peer`.
    pub announce: Option<AnnounceArgs>,
}

/// `announce_peer` arguments.
#[derive(Debug, Clone)]
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
#[derive(Debug)]
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

/// Send a query; the outcome goes to `reply_to`, tagged with `tag`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct SendQuery {
    /// Destination.
    pub to: SocketAddr,
    /// Its id, when known (routers and added nodes have none yet).
    pub node: Option<NodeId>,
    /// What to ask.
    pub query: OutQuery,
    /// Who wants the answer (none: the routing table learns of it anyway).
    pub reply_to: Option<Recipient<QueryDone>>,
    /// Echoed in [`QueryDone`].
    pub tag: u64,
}

/// Why a query got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryFailure {
    /// No answer in time.
    Timeout,
    /// A KRPC error with this code.
    Remote(i64),
    /// Not sent.
    Refused(crate::counters::Refusal),
}

/// The outcome of a [`SendQuery`].
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct QueryDone {
    /// From [`SendQuery::tag`].
    pub tag: u64,
    /// Where it went.
    pub to: SocketAddr,
    /// The node's id as we knew it when sending.
    pub node: Option<NodeId>,
    /// Round-trip time, when answered.
    pub rtt: Option<Duration>,
    /// The answer.
    pub result: Result<Reply, QueryFailure>,
}

/// A node answered one of our queries.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct NodeResponded {
    /// Who.
    pub info: NodeInfo,
    /// The nodes it told us about.
    pub heard: Vec<NodeInfo>,
}

/// A query to a node timed out or got an error.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct NodeFailed {
    /// Who.
    pub info: NodeInfo,
}

/// A node queried us (get_peers or announce_peer; the routing table sees
/// ping and find_node itself).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct NodeQueried {
    /// Who.
    pub info: NodeInfo,
    /// `ro = 1`.
    pub read_only: bool,
}

/// The routing table's nodes that are not bad, grouped by bucket, for
/// answering get_peers without a hop.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct RoutingSnapshot(pub Arc<NodeSnapshot>);

/// The `n` closest nodes to a target (good or questionable).
#[derive(Message, Debug)]
#[rtype(result = "Vec<NodeInfo>")]
pub struct ClosestNodes {
    /// Target.
    pub target: NodeId,
    /// How many.
    pub n: usize,
}

/// Every node in the table, for saving.
#[derive(Message, Debug)]
#[rtype(result = "Vec<NodeInfo>")]
pub struct TableSnapshot;

/// The routing table's statistics.
#[derive(Message, Debug)]
#[rtype(result = "RoutingSummary")]
pub struct RoutingSummaryQuery;

/// Routing-table statistics.
#[derive(Debug, Clone, Default)]
pub struct RoutingSummary {
    /// Per bucket and state.
    pub stats: RoutingStats,
    /// Estimated nodes in the whole DHT.
    pub estimated_dht_size: Option<u64>,
    /// Our id.
    pub own_id: NodeId,
}

/// Router addresses: queried at bootstrap, never added to the table.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SetRouters(pub Vec<SocketAddr>);

/// Nodes with known ids (a saved table, a .torrent's `nodes` once resolved):
/// each is pinged if the table has room for it.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ConsiderNodes(pub Vec<NodeInfo>);

/// Starts a lookup seeded from the routing table's closest nodes (the
/// routing actor forwards it to the lookup workers with seeds filled in).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct LookupFromTable(pub StartLookup);

/// Starts one refresh lookup per bucket; answers how many were started.
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub struct RefreshAllBuckets {
    /// Where each refresh reports.
    pub sink: LookupSink,
}

/// Start a lookup.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct StartLookup {
    /// Echoed in [`LookupFinished`].
    pub id: u64,
    /// The id or info hash sought.
    pub target: NodeId,
    /// find_node or get_peers.
    pub kind: LookupKind,
    /// Nodes to start from.
    pub seeds: Vec<NodeInfo>,
    /// Addresses without a known id (routers, added nodes), asked first.
    pub addr_seeds: Vec<SocketAddr>,
    /// Announce once the lookup ends.
    pub announce: Option<AnnounceSpec>,
    /// Where results go.
    pub sink: LookupSink,
}

/// What to announce after a get_peers lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceSpec {
    /// Our port, unless `implied_port`.
    pub port: u16,
    /// Let the receivers store our UDP source port.
    pub implied_port: bool,
}

/// Where a lookup's events go.
#[derive(Debug, Clone)]
pub enum LookupSink {
    /// Nowhere (a refresh).
    Discard,
    /// A caller of the public API: peers as found, then the summary.
    Caller(UnboundedSender<LookupEvent>),
    /// An actor (the supervisor's bootstrap): the summary only.
    Actor(Recipient<LookupFinished>),
}

/// What a running lookup reports to a caller.
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

/// A finished lookup.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct LookupFinished {
    /// From [`StartLookup::id`].
    pub id: u64,
    /// The summary.
    pub summary: LookupSummary,
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
    /// Peers found (get_peers).
    pub peers: usize,
    /// Peers in answers that could not be used (port 0), ignored.
    pub ignored_peers: usize,
    /// Why it ended.
    pub end: LookupEnd,
    /// Wall time.
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

/// Store statistics.
#[derive(Message, Debug)]
#[rtype(result = "StoreSummary")]
pub struct StoreSummaryQuery;

/// The announce store's size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreSummary {
    /// Info hashes with at least one peer.
    pub info_hashes: usize,
    /// Peers over all info hashes.
    pub peers: usize,
}

/// Our external address changed (voted from responses' `ip`).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct ExternalAddressLearned(pub std::net::IpAddr);
