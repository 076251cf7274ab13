//! The simulator's driver: the node's pieces, as the actors run them, on a
//! virtual clock and the simulated network.
//!
//! Each node holds every piece of [`Pieces`]; an envelope a piece emits is
//! queued in the mailbox of the node being run and delivered in order (nearcore's rule:
//! events at equal times run in the order they were scheduled), to the
//! same `handle` an actor would call. Datagrams go through the
//! [`Network`]; a node wakes at the earliest [`Piece::poll_timeout`] of its
//! pieces, as each actor wakes at its own. The clock jumps from event to
//! event (quinn's `Pair::step`), so a run with the same seed replays
//! exactly.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use super::hostile::sybil_reply;
use super::network::{NetStats, Network, NetworkConfig, Traced};
use super::queue::EventQueue;
use crate::compact::NodeInfo;
use crate::id::{InfoHash, NodeId};
use crate::lookup::LookupKind;
use crate::node::bootstrap::Sources;
use crate::node::{
    AnnounceSpec, ApiEvent, Asker, CallerId, Datagram, Deliver, Envelope, IoRequest, LogEvent,
    LookupEvent, LookupSummary, LookupsInput, NodeConfig, OutQuery, OutboundQuery, Piece, Pieces,
    QueryDone, RateLimiterInput, Requester, RoutingInput, StartLookup, StoreInput, SupervisorInput,
    TransactionsInput,
};
use crate::telemetry::AddressFamily;
use crate::telemetry::Telemetry;

/// How one node is made.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Its address.
    pub addr: SocketAddr,
    /// Its id (random from its randomness when `None`).
    pub id: Option<NodeId>,
    /// The seed of its randomness, as a real node's `rng_seed` (drawn from
    /// the simulation's seed when `None`).
    pub seed: Option<u64>,
    /// Its configuration.
    pub config: NodeConfig,
    /// Where it bootstraps from (numeric `ip:port` strings).
    pub sources: Sources,
}

/// What the application of one node has heard back.
#[derive(Debug, Default)]
pub struct NodeApi {
    /// Finished lookups, by caller.
    pub finished: BTreeMap<CallerId, LookupSummary>,
    /// Peers each lookup reported, in order.
    pub peers: BTreeMap<CallerId, Vec<SocketAddr>>,
    /// Pings, by tag.
    pub pongs: BTreeMap<u64, QueryDone>,
    /// The latest bootstrap state reported.
    pub bootstrapped: bool,
    /// Node ids the node asked to keep for its next start.
    pub saved_ids: Vec<NodeId>,
    /// When each lookup reported its first peer.
    pub first_peer_at: BTreeMap<CallerId, Instant>,
    /// What it logged (the newest [`LOG_KEPT`] events).
    pub log: VecDeque<LogEvent>,
}

/// Log events a simulated node keeps: a long run must not grow without
/// bound.
pub const LOG_KEPT: usize = 256;

/// How a simulated node treats the queries of others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Behaviour {
    /// Its pieces answer, as dhtd does.
    #[default]
    Honest,
    /// The Sybil of the hostile-network issue: it answers every
    /// `find_node` and `get_peers` under its own id with k made-up ids
    /// close to the target, all at its own address, and a token; it
    /// answers pings and accepts every announce, so it stays in tables.
    /// Its own queries and their answers still run through its pieces.
    Sybil,
    /// A Sybil that also answers under the id closest to the target it
    /// handed out, as if it were that node: it passes a lookup's check of
    /// the proven id, and is caught only by answering under another id the
    /// next time.
    EchoingSybil,
}

/// One simulated node.
pub struct SimNode {
    /// Its address.
    pub addr: SocketAddr,
    /// Its id.
    pub id: NodeId,
    /// Whether it receives and runs.
    pub online: bool,
    /// How it answers others.
    pub behaviour: Behaviour,
    /// Its pieces.
    pub pieces: Pieces,
    /// Its counters.
    pub telemetry: Arc<Telemetry>,
    /// What its application heard.
    pub api: NodeApi,
    wakes_now: (Instant, u32),
}

impl std::fmt::Debug for SimNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNode")
            .field("addr", &self.addr)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Delivers envelopes to the pieces of one node, as an actor would.
struct Local<'a> {
    now: Instant,
    pieces: &'a mut Pieces,
    api: &'a mut NodeApi,
    io: Vec<IoRequest>,
}

impl Deliver for Local<'_> {
    fn rate_limiter(&mut self, m: RateLimiterInput) {
        self.pieces.rate_limiter.handle(self.now, m);
    }
    fn routing(&mut self, m: RoutingInput) {
        self.pieces.routing.handle(self.now, m);
    }
    fn transactions(&mut self, m: TransactionsInput) {
        self.pieces.transactions.handle(self.now, m);
    }
    fn store(&mut self, m: StoreInput) {
        self.pieces.store.handle(self.now, m);
    }
    fn lookups(&mut self, m: LookupsInput) {
        self.pieces.lookups.handle(self.now, m);
    }
    fn supervisor(&mut self, m: SupervisorInput) {
        self.pieces.supervisor.handle(self.now, m);
    }
    fn api(&mut self, m: ApiEvent) {
        let api = &mut *self.api;
        match m {
            ApiEvent::Lookup { caller, event } => match event {
                LookupEvent::Peer(p) => {
                    api.first_peer_at.entry(caller).or_insert(self.now);
                    api.peers.entry(caller).or_default().push(p)
                }
                LookupEvent::Item(_) => {}
                LookupEvent::Progress { .. } => {}
                LookupEvent::Finished(s) => {
                    api.finished.insert(caller, s);
                }
            },
            ApiEvent::Pong { tag, done } => {
                api.pongs.insert(tag, done);
            }
            ApiEvent::Bootstrapped(b) => api.bootstrapped = b,
            ApiEvent::ExternalAddress(_) => {}
        }
    }
    fn io(&mut self, m: IoRequest) {
        self.io.push(m);
    }
    fn log(&mut self, m: LogEvent) {
        if self.api.log.len() >= LOG_KEPT {
            self.api.log.pop_front();
        }
        self.api.log.push_back(m);
    }
}

#[derive(Debug)]
enum Event {
    Deliver {
        to: usize,
        from: SocketAddr,
        bytes: Bytes,
    },
    Wake(usize),
}

/// Parses numeric `ip:port` sources; the simulator resolves no names.
fn resolve(sources: &[String]) -> Vec<SocketAddr> {
    sources.iter().filter_map(|s| s.parse().ok()).collect()
}

/// Far more wake-ups of one node at one virtual instant than any piece
/// needs to drain its due work.
const MAX_WAKES_AT_ONE_INSTANT: u32 = 100_000;

/// A simulated DHT: nodes, the network between them, and virtual time.
pub struct Simulation {
    nodes: Vec<SimNode>,
    /// When each node wakes next, beside the nodes: a wake-up made stale by
    /// an earlier one is dropped without touching the node's memory.
    wake_at: Vec<Option<Instant>>,
    /// The mailbox of the node being run. One serves all: a node's mailbox
    /// is run to empty before any other node runs.
    mailbox: VecDeque<Envelope>,
    by_addr: HashMap<SocketAddr, usize>,
    network: Network,
    events: EventQueue<Event>,
    now: Instant,
    rng: StdRng,
    next_caller: u64,
    events_run: u64,
}

impl std::fmt::Debug for Simulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation")
            .field("nodes", &self.nodes.len())
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

impl Simulation {
    /// An empty network. `epoch` is the virtual clock's start; only
    /// durations are ever added to it.
    pub fn new(epoch: Instant, network: NetworkConfig, seed: u64) -> Self {
        Simulation {
            nodes: Vec::new(),
            wake_at: Vec::new(),
            mailbox: VecDeque::new(),
            by_addr: HashMap::new(),
            network: Network::new(network),
            events: EventQueue::new(epoch),
            now: epoch,
            rng: StdRng::seed_from_u64(seed),
            next_caller: 1,
            events_run: 0,
        }
    }

    /// Virtual now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Adds a node now; it starts bootstrapping at once. Returns its index.
    pub fn add_node(&mut self, spec: NodeSpec) -> usize {
        let seed = spec.seed.unwrap_or_else(|| self.rng.next_u64());
        let mut rng = StdRng::seed_from_u64(seed);
        let id = spec.id.unwrap_or_else(|| NodeId::random(&mut rng));
        let telemetry = Arc::new(Telemetry::default());
        telemetry.running.set((), 1);
        let pieces = Pieces::new(
            self.now,
            id,
            &spec.config,
            spec.sources,
            &mut rng,
            telemetry.clone(),
        );
        let i = self.nodes.len();
        self.nodes.push(SimNode {
            addr: spec.addr,
            id,
            online: true,
            behaviour: Behaviour::Honest,
            pieces,
            telemetry,
            api: NodeApi::default(),
            wakes_now: (self.now, 0),
        });
        self.wake_at.push(None);
        self.by_addr.insert(spec.addr, i);
        self.settle(i);
        i
    }

    /// The node at `addr`, if any (online or not).
    pub fn node_at(&self, addr: &SocketAddr) -> Option<usize> {
        self.by_addr.get(addr).copied()
    }

    /// Events run so far (deliveries and wake-ups).
    pub fn events(&self) -> u64 {
        self.events_run
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there is no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &SimNode {
        &self.nodes[i]
    }

    /// Node `i`, to change.
    pub fn node_mut(&mut self, i: usize) -> &mut SimNode {
        &mut self.nodes[i]
    }

    /// The network's counters.
    pub fn net_stats(&self) -> NetStats {
        self.network.stats()
    }

    /// The network, to trace it.
    pub fn network_mut(&mut self) -> &mut Network {
        &mut self.network
    }

    /// The datagrams traced since the last call.
    pub fn take_trace(&mut self) -> Vec<Traced> {
        self.network.take_trace()
    }

    /// Stops (or restarts) node `i`: a stopped node receives nothing and
    /// its timers do not run.
    pub fn set_online(&mut self, i: usize, online: bool) {
        self.nodes[i].online = online;
        if online {
            self.settle(i);
        }
    }

    /// Node `i` leaves for good: it is stopped, and what it held (table,
    /// store, lookups) is freed; its counters and what its application
    /// heard stay. A network with churn would otherwise keep every node that
    /// ever left.
    pub fn retire(&mut self, i: usize) {
        let now = self.now;
        let node = &mut self.nodes[i];
        node.online = false;
        let mut rng = StdRng::seed_from_u64(0);
        let quiet = NodeConfig::default();
        node.pieces = Pieces::new(
            now,
            node.id,
            &quiet,
            Sources::default(),
            &mut rng,
            node.telemetry.clone(),
        );
        self.wake_at[i] = None;
    }

    fn schedule(&mut self, at: Instant, event: Event) {
        self.events.push(at, event);
    }

    /// Queues `envelope` in node `i`'s mailbox and runs it to quiet.
    pub fn send_to(&mut self, i: usize, envelope: Envelope) {
        self.mailbox.push_back(envelope);
        self.settle(i);
    }

    /// Starts a lookup from node `i` for its application; the summary
    /// lands in [`NodeApi::finished`] under the returned caller.
    pub fn start_lookup(
        &mut self,
        i: usize,
        target: NodeId,
        kind: LookupKind,
        announce: Option<AnnounceSpec>,
    ) -> CallerId {
        let caller = CallerId(self.next_caller);
        self.next_caller += 1;
        let mut start = StartLookup::new(target, kind, Requester::Caller(caller));
        start.announce = announce;
        self.send_to(i, Envelope::Lookups(LookupsInput::Start(start)));
        caller
    }

    /// Runs a lookup from node `i` to its end (or until `limit` of virtual
    /// time passes).
    pub fn lookup(
        &mut self,
        i: usize,
        target: NodeId,
        kind: LookupKind,
        announce: Option<AnnounceSpec>,
        limit: Duration,
    ) -> Option<LookupSummary> {
        let caller = self.start_lookup(i, target, kind, announce);
        let until = self.now + limit;
        self.run_until(until, |sim| sim.nodes[i].api.finished.contains_key(&caller));
        self.nodes[i].api.finished.remove(&caller)
    }

    /// Pings `to` from node `i`; the outcome lands in [`NodeApi::pongs`].
    pub fn ping(&mut self, i: usize, to: SocketAddr, tag: u64) {
        let query = OutboundQuery {
            to,
            node: None,
            query: OutQuery::Ping,
            asker: Asker::Api(tag),
        };
        self.send_to(i, Envelope::RateLimiter(RateLimiterInput::Send(query)));
    }

    /// Hands nodes to node `i` (as `add_node` on the API would).
    pub fn add_nodes(&mut self, i: usize, addrs: Vec<SocketAddr>) {
        self.send_to(i, Envelope::Supervisor(SupervisorInput::AddNodes(addrs)));
    }

    /// Repeats announces of `info_hash` from node `i` (`None`: stop).
    pub fn announce_every(
        &mut self,
        i: usize,
        info_hash: InfoHash,
        spec: AnnounceSpec,
        every: Option<Duration>,
    ) {
        let m = LookupsInput::AnnounceEvery {
            info_hash,
            spec,
            every,
        };
        self.send_to(i, Envelope::Lookups(m));
    }

    /// Whether node `i` has bootstrapped.
    pub fn is_bootstrapped(&self, i: usize) -> bool {
        self.nodes[i].pieces.supervisor.is_complete()
    }

    /// The `k` ids closest to `target` among online nodes, by brute force.
    pub fn true_closest(&self, target: &NodeId, k: usize) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|n| n.online)
            .map(|n| n.id)
            .collect();
        ids.sort_by_key(|id| target.distance(id));
        ids.truncate(k);
        ids
    }

    /// The nodes in node `i`'s routing table.
    pub fn table(&self, i: usize) -> Vec<NodeInfo> {
        let routing = &self.nodes[i].pieces.routing;
        routing
            .iter()
            .flat_map(|(_, u)| u.table().nodes())
            .collect()
    }

    /// Runs every event up to `until`, or until `done` holds; returns
    /// whether `done` held.
    pub fn run_until(&mut self, until: Instant, mut done: impl FnMut(&Self) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            let Some((at, event)) = self.events.pop_until(until) else {
                self.now = self.now.max(until);
                return false;
            };
            self.events_run += 1;
            self.now = self.now.max(at);
            match event {
                Event::Deliver { to, from, bytes } => {
                    if !self.nodes[to].online {
                        self.network.undeliverable();
                        continue;
                    }
                    if self.nodes[to].behaviour != Behaviour::Honest
                        && crate::node::rate_limiter::gate::looks_like_query(&bytes)
                    {
                        self.sybil_answer(to, from, &bytes);
                        continue;
                    }
                    let t = &self.nodes[to].telemetry;
                    let f = AddressFamily::of(&from);
                    t.packets_in.incr(f);
                    t.bytes_in.add(f, bytes.len() as u64);
                    let batch = vec![Datagram { from, bytes }];
                    self.mailbox
                        .push_back(Envelope::RateLimiter(RateLimiterInput::Datagrams(batch)));
                    self.settle(to);
                }
                Event::Wake(i) => {
                    if self.wake_at[i] != Some(at) {
                        continue; // superseded
                    }
                    self.wake_at[i] = None;
                    if self.nodes[i].online {
                        self.wake(i);
                    }
                }
            }
        }
    }

    /// Moves the clock on by `d` at once, and runs what is due then, as a
    /// manual clock's `advance` does to actors: every deadline passed fires
    /// at the new time.
    pub fn jump(&mut self, d: Duration) {
        self.now += d;
        let now = self.now;
        self.run_until(now, |_| false);
    }

    /// A datagram from `from`, an address no node holds (a test's own
    /// peer), to node `to`, delivered now. Answers to it are traced (see
    /// [`Network::start_trace`]) and otherwise undeliverable.
    pub fn inject(&mut self, from: SocketAddr, to: usize, bytes: &[u8]) {
        let at = self.now;
        let bytes = Bytes::copy_from_slice(bytes);
        self.schedule(at, Event::Deliver { to, from, bytes });
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until, |_| false);
    }

    /// Sybil node `i`'s answer to a query from `from`.
    fn sybil_answer(&mut self, i: usize, from: SocketAddr, query: &[u8]) {
        let me = &self.nodes[i];
        let echo = me.behaviour == Behaviour::EchoingSybil;
        let (id, sybil) = (me.id, me.addr);
        if let Some(reply) = sybil_reply(query, id, sybil, from, echo, &mut self.rng) {
            self.transmit(sybil, from, Bytes::from(reply));
        }
    }

    /// Hands a datagram to the network, and schedules its delivery.
    fn transmit(&mut self, from: SocketAddr, to: SocketAddr, bytes: Bytes) {
        let Some(delay) = self
            .network
            .transmit(&mut self.rng, self.now, from, to, &bytes)
        else {
            return;
        };
        match self.by_addr.get(&to) {
            Some(&j) => {
                let at = self.now + delay;
                self.schedule(at, Event::Deliver { to: j, from, bytes });
            }
            None => self.network.undeliverable(),
        }
    }

    /// Runs the timeouts of node `i` that are due, then its mailbox.
    fn wake(&mut self, i: usize) {
        let now = self.now;
        let node = &mut self.nodes[i];
        // A piece whose deadline stays in the past after it ran would spin
        // an actor as it spins this loop; say so instead of hanging.
        node.wakes_now = match node.wakes_now {
            (at, n) if at == now => (at, n + 1),
            _ => (now, 1),
        };
        assert!(
            node.wakes_now.1 < MAX_WAKES_AT_ONE_INSTANT,
            "node {i} woke {MAX_WAKES_AT_ONE_INSTANT} times at one instant: a piece's poll_timeout stays in the past"
        );
        let p = &mut node.pieces;
        fn due<P: Piece>(piece: &mut P, now: Instant) {
            if piece.poll_timeout().is_some_and(|t| t <= now) {
                piece.handle_timeout(now);
            }
        }
        due(&mut p.rate_limiter, now);
        due(&mut p.routing, now);
        due(&mut p.transactions, now);
        due(&mut p.store, now);
        due(&mut p.lookups, now);
        due(&mut p.supervisor, now);
        self.settle(i);
    }

    /// Delivers node `i`'s mailbox until it is empty, sends what its pieces
    /// decided to send, and arms its next wake-up.
    fn settle(&mut self, i: usize) {
        loop {
            self.collect(i);
            let Some(envelope) = self.mailbox.pop_front() else {
                break;
            };
            let node = &mut self.nodes[i];
            let mut local = Local {
                now: self.now,
                pieces: &mut node.pieces,
                api: &mut node.api,
                io: Vec::new(),
            };
            envelope.deliver(&mut local);
            let io = local.io;
            for request in io {
                self.io(i, request);
            }
        }
        self.arm(i);
    }

    /// Takes every piece's outputs: envelopes to the mailbox, datagrams to
    /// the network.
    fn collect(&mut self, i: usize) {
        let mut datagrams = Vec::new();
        {
            let node = &mut self.nodes[i];
            let p = &mut node.pieces;
            let outputs = [
                p.rate_limiter.outputs(),
                p.routing.outputs(),
                p.transactions.outputs(),
                p.store.outputs(),
                p.lookups.outputs(),
                p.supervisor.outputs(),
            ];
            for out in outputs {
                while let Some(e) = out.pop() {
                    self.mailbox.push_back(e);
                }
                for (to, bytes) in out.outbox.iter() {
                    datagrams.push((to, Bytes::copy_from_slice(bytes)));
                }
                out.outbox.clear();
                out.release_peak();
            }
        }
        let from = self.nodes[i].addr;
        for (to, bytes) in datagrams {
            let f = AddressFamily::of(&to);
            self.nodes[i].telemetry.packets_out.incr(f);
            self.nodes[i].telemetry.bytes_out.add(f, bytes.len() as u64);
            self.transmit(from, to, bytes);
        }
    }

    fn io(&mut self, i: usize, request: IoRequest) {
        match request {
            IoRequest::Resolve { routers, nodes } => {
                let m = SupervisorInput::SourcesResolved {
                    routers: resolve(&routers),
                    nodes: resolve(&nodes),
                };
                self.mailbox.push_back(Envelope::Supervisor(m));
            }
            IoRequest::SaveNodeId(id) => self.nodes[i].api.saved_ids.push(id),
        }
    }

    fn arm(&mut self, i: usize) {
        let p = &self.nodes[i].pieces;
        let next = [
            p.rate_limiter.poll_timeout(),
            p.routing.poll_timeout(),
            p.transactions.poll_timeout(),
            p.store.poll_timeout(),
            p.lookups.poll_timeout(),
            p.supervisor.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
        // Never in the past: a deadline already due runs at once.
        .map(|t| t.max(self.now));
        if next != self.wake_at[i] {
            self.wake_at[i] = next;
            if let Some(at) = next {
                self.schedule(at, Event::Wake(i));
            }
        }
    }
}

/// The address of simulated node `i`: one IP per node, each of the first
/// 65,535 on its own /24, so that per-address and per-network rules apply
/// as on the Internet (10.x.y.1, then 10.x.y.2, …).
pub fn sim_addr(i: usize) -> SocketAddr {
    let n = i as u32 + 1;
    let host = 1 + (n >> 16);
    SocketAddr::new(
        IpAddr::V4((0x0a00_0000 | (n & 0xffff) << 8 | host).into()),
        6881,
    )
}
