//! What the pieces of a node tell each other and the drivers. Commands
//! are imperative (`Send`, `Start`), events past tense (`Responded`,
//! `LookupFinished`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Envelope;
use crate::compact::NodeInfo;
use crate::id::{InfoHash, NodeId};
use crate::item::Item;
use crate::krpc::Want;
use crate::lookup::{LookupEnd, LookupKind};
use crate::routing::NodeSnapshot;
use crate::scrape::ScrapeBloom;
use crate::server::Needs;
use crate::telemetry::{LookupLabel, Method, NotSent};
use crate::token::Token;
use crate::Family;

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
    /// One datagram: how the simulator delivers them, without a batch to
    /// allocate for each.
    Datagram(Datagram),
    /// A query to pace and send.
    Send(OutboundQuery),
    /// New settings, from now on (a reload): budgets, read-only.
    Reconfigure(Arc<super::NodeConfig>),
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
    /// BEP 32 `want`: the families of nodes asked for (absent: the
    /// querier's own).
    pub want: Option<Want>,
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
    /// `seed = 1` (BEP 33).
    pub seed: bool,
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
    /// The answer, or the KRPC error.
    pub result: Result<Reply, RemoteError>,
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
    /// `v`, the responder's client and version (sharing the datagram's
    /// buffer).
    pub version: Option<Bytes>,
    /// BEP 51's keys, in a `sample_infohashes` answer.
    pub samples: Option<Sampled>,
    /// BEP 44's item, in a `get` answer (the salt is not sent back: empty).
    pub item: Option<Box<Item>>,
    /// BEP 33's seed and peer filters, in a scrape's answer (boxed: 512
    /// bytes that most replies do not carry).
    pub blooms: Option<Box<(ScrapeBloom, ScrapeBloom)>>,
}

/// An item to put (BEP 44), and the sequence number it replaces (`cas`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutItem {
    /// The item.
    pub item: Item,
    /// `cas`, when the putter read the item it replaces.
    pub cas: Option<i64>,
}

/// What a lookup does with BEP 44 items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemLookup {
    /// Find the item at the target: immutable, or mutable under `salt`
    /// (needed to check the target), newer than `seq` if given.
    Get {
        /// The salt of a mutable item (empty for none, and for immutable).
        salt: Bytes,
        /// Only a mutable item with a higher sequence number.
        seq: Option<i64>,
    },
    /// Put the item to the closest nodes that gave a token.
    Put(Arc<PutItem>),
}

/// What a `sample_infohashes` answer said (BEP 51).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sampled {
    /// Seconds before asking again brings a new sample.
    pub interval: u32,
    /// Info hashes the node stores.
    pub num: u64,
    /// Its sample of them.
    pub hashes: Vec<InfoHash>,
}

/// A query we want to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutQuery {
    /// `ping`.
    Ping,
    /// `find_node`.
    FindNode(NodeId),
    /// `get_peers`.
    GetPeers(InfoHash),
    /// `get_peers` with `scrape = 1` (BEP 33).
    Scrape(InfoHash),
    /// `get` (BEP 44): the item at a target, newer than `seq` if given.
    Get {
        /// The item's target.
        target: NodeId,
        /// Only a newer mutable item.
        seq: Option<i64>,
    },
    /// `put` (BEP 44), with the token the node gave our `get`.
    Put(Arc<PutItem>, Token),
    /// `sample_infohashes` (BEP 51), walking towards a target.
    SampleInfohashes(NodeId),
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
        /// We have the whole torrent (BEP 33 `seed = 1`).
        seed: bool,
    },
}

impl OutQuery {
    /// The method, as counted.
    pub fn method(&self) -> Method {
        match self {
            OutQuery::Ping => Method::Ping,
            OutQuery::FindNode(_) => Method::FindNode,
            OutQuery::GetPeers(_) | OutQuery::Scrape(_) => Method::GetPeers,
            OutQuery::SampleInfohashes(_) => Method::SampleInfohashes,
            OutQuery::Get { .. } => Method::Get,
            OutQuery::Put(..) => Method::Put,
            OutQuery::AnnouncePeer { .. } => Method::AnnouncePeer,
        }
    }

    /// What the query is about, for the spacing rule (zero for `ping`).
    pub fn target(&self) -> [u8; 20] {
        match self {
            OutQuery::Ping => [0; 20],
            OutQuery::FindNode(t)
            | OutQuery::SampleInfohashes(t)
            | OutQuery::Get { target: t, .. } => *t.as_bytes(),
            OutQuery::Put(p, _) => *p.item.target().as_bytes(),
            OutQuery::GetPeers(ih)
            | OutQuery::Scrape(ih)
            | OutQuery::AnnouncePeer { info_hash: ih, .. } => *ih.as_bytes(),
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
                let done = Box::new(done);
                Some(Envelope::Lookups(LookupsInput::QueryDone { lookup, done }))
            }
            Asker::Api(tag) => Some(Envelope::Api(ApiEvent::Pong {
                tag,
                done: Box::new(done),
            })),
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryFailure {
    /// No answer in time, after every attempt.
    Timeout,
    /// A KRPC error.
    Remote(RemoteError),
    /// Never sent.
    NotSent(NotSent),
}

/// A KRPC error a node answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteError {
    /// Its code (201 generic, 202 server, 203 protocol, 204 method unknown).
    pub code: i64,
    /// Its text, lossily decoded and cut to [`RemoteError::MAX_MESSAGE`]
    /// bytes: a peer's text must not grow our memory.
    pub message: String,
}

impl RemoteError {
    /// The longest message kept, in bytes.
    pub const MAX_MESSAGE: usize = 256;

    /// From a decoded error.
    pub fn new(code: i64, message: &[u8]) -> Self {
        let cut = &message[..message.len().min(Self::MAX_MESSAGE)];
        RemoteError {
            code,
            message: String::from_utf8_lossy(cut).into_owned(),
        }
    }
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
        /// The answer's round trip.
        rtt: Option<Duration>,
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
        /// It is part of a search (find_node, get_peers, announce_peer,
        /// get, put), not a ping: the querier's own work, where a ping
        /// may answer one of ours (a node we queried pings us to add us).
        searching: bool,
    },
    /// Nodes with known ids (a saved table): each is pinged if the table
    /// has room for it.
    Consider(Vec<NodeInfo>),
    /// Router addresses: asked at bootstrap, kept out of the table.
    SetRouters(Vec<SocketAddr>),
    /// Routers that our own-id lookup found among our k closest nodes:
    /// neighbours, not mere entry points (a private network); they join.
    AdmitRouters(Vec<NodeInfo>),
    /// Start one refresh lookup per bucket of this family's table for the
    /// bootstrap, and say how many.
    RefreshAll(Family),
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
    /// New settings, from now on (a reload): read-only, pending queries.
    Reconfigure(Arc<super::NodeConfig>),
}

/// For the announce store.
#[derive(Debug)]
pub enum StoreInput {
    /// Queries admitted in one batch, to answer.
    Queries(Vec<InboundQuery>),
    /// A family's routing table, for the `nodes` or `nodes6` of answers.
    Snapshot(Family, Arc<NodeSnapshot>),
    /// New settings, from now on (a reload): the store's caps and peer
    /// lifetime, the item store's caps.
    Reconfigure(Arc<super::NodeConfig>),
    /// A lookup of ours wants the peers we hold ourselves for an info hash.
    LocalPeers {
        /// The lookup.
        lookup: LookupId,
        /// The info hash.
        info_hash: InfoHash,
    },
}

/// A lookup's number: even in the IPv4 pool, odd in the IPv6 pool, so
/// that its family is known from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LookupId(pub u64);

impl LookupId {
    /// The `n`th lookup of `family`'s pool.
    pub fn nth(family: Family, n: u64) -> Self {
        LookupId(2 * n + family.index() as u64)
    }

    /// The family whose pool runs it.
    pub fn family(self) -> Family {
        if self.0 % 2 == 0 {
            Family::V4
        } else {
            Family::V6
        }
    }
}

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
    /// We have the whole torrent (BEP 33).
    pub seed: bool,
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
    /// Ask with `scrape = 1` and sum up the seed and peer filters (BEP 33).
    pub scrape: bool,
    /// Get or put a BEP 44 item (the lookup then sends `get`).
    pub item: Option<ItemLookup>,
    /// The family to look in; `None`: every family the node serves, the
    /// outcomes merged (the application's lookups).
    pub family: Option<Family>,
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
            scrape: false,
            item: None,
            family: None,
        }
    }

    /// The same lookup, in `family` alone.
    pub fn in_family(mut self, family: Family) -> Self {
        self.family = Some(family);
        self
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
        /// How it went (boxed: the largest message by far, and the rarest
        /// of those every envelope would otherwise be sized for).
        done: Box<QueryDone>,
    },
    /// A family's routing table, for seeding its lookups.
    Snapshot(Family, Arc<NodeSnapshot>),
    /// The peers our own store holds for a lookup's info hash.
    LocalPeers {
        /// The lookup.
        lookup: LookupId,
        /// The peers.
        peers: Vec<SocketAddr>,
    },
    /// A query of a lookup waits for the spacing rule until `until`: its
    /// timeouts count from then, not from when the lookup asked.
    Delayed {
        /// The lookup.
        lookup: LookupId,
        /// The node asked.
        node: NodeId,
        /// When the query goes out.
        until: Instant,
    },
    /// A family's bootstrap completed (true) or was lost (false): the
    /// application's lookups in it run, or wait.
    Bootstrapped(Family, bool),
    /// The caller stopped listening: its lookups end.
    Cancel(CallerId),
    /// New settings, from now on (a reload): lookup limits, read-only.
    Reconfigure(Arc<super::NodeConfig>),
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
    /// A BEP 44 item, checked, newer than any reported before.
    Item(Box<Item>),
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
    /// The union of the seed and peer filters of every answer, when a
    /// scrape was asked for (BEP 33; boxed: 512 bytes most lookups do
    /// not carry).
    pub scrape: Option<Box<(ScrapeBloom, ScrapeBloom)>>,
    /// The item found (BEP 44 `get`): the immutable one, or the mutable
    /// one with the highest sequence number; checked against the target.
    pub item: Option<Box<Item>>,
}

/// How an announce went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AnnounceReport {
    /// announce_peer queries sent (closest nodes that gave a token, at most k).
    pub tried: usize,
    /// Answered without error.
    pub accepted: usize,
    /// /24 (/64) networks the nodes announced to are on.
    pub networks: usize,
    /// How sure the node is that they were the closest.
    pub confidence: Confidence,
}

/// How sure a lookup is that the nodes it ended with are the closest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Confidence {
    /// It ran into a limit, or found fewer than half of k.
    #[default]
    Low,
    /// It converged, but on fewer than k nodes, on shared networks, or
    /// after catching nodes that lied (under other ids, or naming made-up
    /// nodes at their own address).
    Medium,
    /// It converged on k nodes of k networks, and caught no one lying.
    High,
}

impl Confidence {
    /// Judges a finished search that found `targets` nodes with tokens on
    /// `networks` networks.
    pub fn judge(outcome: &crate::lookup::LookupOutcome, targets: usize, networks: usize) -> Self {
        let k = crate::K;
        if outcome.end != crate::lookup::LookupEnd::Converged || 2 * targets < k {
            Confidence::Low
        } else if targets == k
            && networks == targets
            && outcome.id_mismatches == 0
            && outcome.distrusted == 0
        {
            Confidence::High
        } else {
            Confidence::Medium
        }
    }

    /// As shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }
}

/// A routing table's size, as the supervisor needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableSummary {
    /// Whose table.
    pub family: Family,
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
        /// In which family.
        family: Family,
        /// Which.
        purpose: BootstrapLookup,
        /// How it went.
        summary: LookupSummary,
    },
    /// This many bucket refreshes were started for a family's bootstrap.
    RefreshStarted(Family, usize),
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
        /// How it went (boxed, as in [`LookupsInput::QueryDone`]).
        done: Box<QueryDone>,
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
            TransactionsInput::Send(_) | TransactionsInput::Reconfigure(_) => 0,
        }
    }
}
