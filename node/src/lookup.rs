//! What a lookup yields: its peers as they are found ([`PeerStream`]) and
//! how it went ([`LookupSummary`]). These types belong to this crate, so
//! that the node's internals can change without breaking an embedder.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use dhtd_protocol::lookup::LookupEnd as CoreEnd;
use dhtd_protocol::node as core;
use tokio::sync::mpsc;

use crate::NodeId;

/// A DHT node: its id and where it answered from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeInfo {
    /// Its id.
    pub id: NodeId,
    /// Its UDP address.
    pub addr: SocketAddr,
}

impl NodeInfo {
    /// The address family it was reached over (BEP 32).
    pub fn family(&self) -> crate::Family {
        crate::Family::of(&self.addr)
    }

    pub(crate) fn from_core(n: dhtd_protocol::NodeInfo) -> Self {
        NodeInfo {
            id: n.id,
            addr: n.addr,
        }
    }

    pub(crate) fn to_core(self) -> dhtd_protocol::NodeInfo {
        dhtd_protocol::NodeInfo {
            id: self.id,
            addr: self.addr,
        }
    }
}

/// Why a lookup ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LookupEnd {
    /// The closest nodes known all answered or failed: the normal end.
    #[default]
    Converged,
    /// It sent as many queries as it may (`lookup.max_queries`).
    QueryLimit,
    /// It ran as long as it may (`lookup.max_duration`).
    TimeLimit,
    /// Enough nodes answered with peers (`lookup.enough_holders`).
    EnoughPeers,
    /// It never started: too many lookups were waiting already
    /// (`lookup_limits.max_waiting`).
    Refused,
}

impl LookupEnd {
    pub(crate) fn from_core(end: CoreEnd) -> Self {
        match end {
            // A summary is only made once the lookup has ended.
            CoreEnd::Converged | CoreEnd::Running => LookupEnd::Converged,
            CoreEnd::EnoughPeers => LookupEnd::EnoughPeers,
            CoreEnd::QueryLimit => LookupEnd::QueryLimit,
            CoreEnd::TimeLimit => LookupEnd::TimeLimit,
            CoreEnd::Refused => LookupEnd::Refused,
        }
    }
}

/// How sure a lookup is that the nodes it ended with are the closest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Confidence {
    /// It ran into a limit, or found fewer than half of k.
    #[default]
    Low,
    /// It converged, but on fewer than k nodes, on shared networks, or
    /// after catching nodes that lied about their ids.
    Medium,
    /// It converged on k nodes of k networks, and caught no one lying.
    High,
}

impl Confidence {
    /// `low`, `medium` or `high`.
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }
}

impl Confidence {
    pub(crate) fn from_core(c: core::Confidence) -> Self {
        match c {
            core::Confidence::Low => Confidence::Low,
            core::Confidence::Medium => Confidence::Medium,
            core::Confidence::High => Confidence::High,
        }
    }
}

/// How an announce went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AnnounceReport {
    /// `announce_peer` queries sent: to the closest nodes that gave a
    /// token, at most k.
    pub tried: usize,
    /// Nodes that accepted it.
    pub accepted: usize,
    /// Distinct /24 (IPv4) or /64 (IPv6) networks among the nodes tried.
    pub networks: usize,
    /// How sure the lookup is that they were the closest.
    pub confidence: Confidence,
}

impl AnnounceReport {
    pub(crate) fn from_core(r: core::AnnounceReport) -> Self {
        AnnounceReport {
            tried: r.tried,
            accepted: r.accepted,
            networks: r.networks,
            confidence: Confidence::from_core(r.confidence),
        }
    }
}

/// How a lookup went.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LookupSummary {
    /// The target: an info hash or a node id.
    pub target: NodeId,
    /// Queries sent.
    pub queries: usize,
    /// Answers received.
    pub responses: usize,
    /// Queries that failed or timed out.
    pub failures: usize,
    /// The closest nodes that answered, closest first.
    pub closest: Vec<NodeInfo>,
    /// Distinct peers found (get_peers), our own store's included.
    pub peers: usize,
    /// Peers in answers that could not be used (port 0), ignored.
    pub ignored_peers: usize,
    /// Hops from the first nodes asked to the closest that answered.
    pub hops: u32,
    /// Why it ended.
    pub end: LookupEnd,
    /// From start to end.
    pub duration: Duration,
    /// The announce, when one was asked for.
    pub announce: Option<AnnounceReport>,
    /// The swarm's size, when a scrape was asked for ([`Dht::scrape`](crate::Dht::scrape)).
    pub scrape: Option<ScrapeEstimate>,
    /// The best item found, for [`Dht::get_item`](crate::Dht::get_item).
    pub item: Option<crate::Item>,
}

/// A swarm's size from a DHT scrape (BEP 33): the number of distinct IPs
/// of seeds and of other peers that the nodes near the info hash store,
/// estimated from the union of their bloom filters (within a few percent
/// up to a few thousand; the filters saturate towards 8,000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScrapeEstimate {
    /// Seeds: peers that announced with `seed = 1`.
    pub seeds: u64,
    /// The other peers (downloaders).
    pub peers: u64,
}

impl LookupSummary {
    pub(crate) fn from_core(s: core::LookupSummary) -> Self {
        LookupSummary {
            target: s.target,
            queries: s.queries,
            responses: s.responses,
            failures: s.failures,
            closest: s.closest.into_iter().map(NodeInfo::from_core).collect(),
            peers: s.peers,
            ignored_peers: s.ignored_peers,
            hops: s.hops,
            end: LookupEnd::from_core(s.end),
            duration: s.duration,
            announce: s.announce.map(AnnounceReport::from_core),
            item: s.item.as_deref().map(crate::Item::from_core),
            scrape: s.scrape.map(|blooms| ScrapeEstimate {
                seeds: blooms.0.estimate().round() as u64,
                peers: blooms.1.estimate().round() as u64,
            }),
        }
    }
}

/// What a lookup reports as it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LookupEvent {
    /// A peer not reported before.
    Peer(SocketAddr),
    /// A BEP 44 item, checked, newer than any reported before
    /// ([`Dht::get_item`](crate::Dht::get_item)).
    Item(crate::Item),
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
    /// The end, with the summary; the last event.
    Finished(LookupSummary),
}

impl LookupEvent {
    pub(crate) fn from_core(e: core::LookupEvent) -> Self {
        match e {
            core::LookupEvent::Peer(p) => LookupEvent::Peer(p),
            core::LookupEvent::Item(item) => LookupEvent::Item(crate::Item::from_core(&item)),
            core::LookupEvent::Progress {
                queries,
                responses,
                common_bits,
            } => LookupEvent::Progress {
                queries,
                responses,
                common_bits,
            },
            core::LookupEvent::Finished(s) => LookupEvent::Finished(LookupSummary::from_core(s)),
        }
    }
}

/// The peers of a lookup as they are found, then its summary.
///
/// Read it with [`PeerStream::next_peer`] or [`PeerStream::next_event`],
/// or as a [`futures_core::Stream`] of [`LookupEvent`]s; whichever way it
/// is read, the summary is kept for [`PeerStream::summary`] once the
/// stream ends. Dropping it does not stop the lookup; the node bounds how
/// many run.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let swarm = dhtd::swarm::LocalSwarm::start(4, 6, |_, _| {}).await?;
/// # swarm.wait_bootstrapped(std::time::Duration::from_secs(20)).await;
/// # let dht = &swarm.nodes[3];
/// use dhtd::LookupEvent;
///
/// let mut lookup = dht.get_peers(dhtd::InfoHash([7; 20]));
/// while let Some(event) = lookup.next_event().await {
///     match event {
///         LookupEvent::Peer(peer) => println!("peer {peer}"),
///         LookupEvent::Progress { responses, common_bits, .. } => {
///             println!("{responses} answers, {common_bits} bits from the target")
///         }
///         LookupEvent::Finished(summary) => println!("done in {:?}", summary.duration),
///         _ => {}
///     }
/// }
/// assert!(lookup.summary().is_some());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PeerStream {
    rx: mpsc::UnboundedReceiver<core::LookupEvent>,
    summary: Option<LookupSummary>,
}

impl PeerStream {
    pub(crate) fn new(rx: mpsc::UnboundedReceiver<core::LookupEvent>) -> Self {
        PeerStream { rx, summary: None }
    }

    /// Keeps the summary as it passes.
    fn seen(&mut self, event: core::LookupEvent) -> LookupEvent {
        let event = LookupEvent::from_core(event);
        if let LookupEvent::Finished(s) = &event {
            self.summary = Some(s.clone());
        }
        event
    }

    /// The next peer; `None` once the lookup has ended (see
    /// [`PeerStream::summary`]).
    pub async fn next_peer(&mut self) -> Option<SocketAddr> {
        loop {
            if let LookupEvent::Peer(p) = self.next_event().await? {
                return Some(p);
            }
        }
    }

    /// The next event: a peer, progress, or the summary (then `None`).
    pub async fn next_event(&mut self) -> Option<LookupEvent> {
        let event = self.rx.recv().await?;
        Some(self.seen(event))
    }

    /// The summary, once the stream has ended.
    pub fn summary(&self) -> Option<&LookupSummary> {
        self.summary.as_ref()
    }

    /// Runs the lookup to its end, dropping peers, and returns the summary
    /// (`None` if the node shut down first).
    pub async fn finish(&mut self) -> Option<LookupSummary> {
        while self.next_event().await.is_some() {}
        self.summary.clone()
    }

    /// Collects every peer and the summary.
    pub async fn collect(mut self) -> (Vec<SocketAddr>, Option<LookupSummary>) {
        let mut peers = Vec::new();
        while let Some(p) = self.next_peer().await {
            peers.push(p);
        }
        (peers, self.summary)
    }
}

impl futures_core::Stream for PeerStream {
    type Item = LookupEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<LookupEvent>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(event)) => Poll::Ready(Some(self.seen(event))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}
