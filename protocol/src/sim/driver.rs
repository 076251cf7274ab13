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

use super::network::{Endpoint, Mappings, NetStats, Network, NetworkConfig, Traced};
use super::parallel::{queue_arrivals, run_shards, Threads};
use super::shard::{Event, Shard, World};
use crate::compact::NodeInfo;
use crate::id::{InfoHash, NodeId};
use crate::lookup::LookupKind;
use crate::node::bootstrap::Sources;
use crate::node::{
    AnnounceSpec, Asker, CallerId, Envelope, LogEvent, LookupSummary, LookupsInput, NodeConfig,
    OutQuery, OutboundQuery, Pieces, QueryDone, RateLimiterInput, Requester, StartLookup,
    SupervisorInput,
};
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
    pub(super) wakes_now: (Instant, u32),
}

impl std::fmt::Debug for SimNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNode")
            .field("addr", &self.addr)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A simulated DHT: nodes, the network between them, and virtual time.
pub struct Simulation {
    /// Node `i` lives in shard `i % shards.len()`, or in the band of its
    /// access delay ([`Simulation::place_by_access`]); see [`World::place`].
    shards: Vec<Shard>,
    world: World,
    /// Upper bounds (exclusive) of the access delays of each shard's nodes
    /// but the last's, when nodes are placed by access delay.
    access_bands: Vec<Duration>,
    epoch: Instant,
    now: Instant,
    len: usize,
    next_caller: u64,
    threads: Option<Arc<dyn Threads>>,
}

impl std::fmt::Debug for Simulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation")
            .field("nodes", &self.len)
            .field("shards", &self.shards.len())
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

impl Simulation {
    /// An empty network, run on one thread. `epoch` is the virtual clock's
    /// start; only durations are ever added to it.
    pub fn new(epoch: Instant, network: NetworkConfig, seed: u64) -> Self {
        Self::sharded(epoch, network, seed, 1)
    }

    /// An empty network whose nodes are split in `shards`, each run on a
    /// thread of its own by [`Simulation::run_for`] and
    /// [`Simulation::run_to`] once it is given threads
    /// ([`Simulation::set_threads`]), one after another in time order until
    /// then. A seed replays exactly for a given number of shards, with
    /// threads or without; the same seed in another number of shards is
    /// another run.
    pub fn sharded(epoch: Instant, network: NetworkConfig, seed: u64, shards: usize) -> Self {
        let shards = shards.max(1);
        Simulation {
            shards: (0..shards)
                .map(|s| {
                    // Shard 0 draws as a one-shard simulation always has.
                    let rng = StdRng::seed_from_u64(
                        seed.wrapping_add((s as u64).wrapping_mul(SHARD_SEED_STEP)),
                    );
                    Shard::new(s, shards, epoch, rng)
                })
                .collect(),
            world: World {
                by_addr: HashMap::new(),
                network: Network::new(network),
                places: Vec::new(),
                least_access: vec![None; shards],
                uniform_nodes: false,
            },
            access_bands: Vec::new(),
            epoch,
            now: epoch,
            len: 0,
            next_caller: 1,
            threads: None,
        }
    }

    /// Places the nodes added from now on by access delay: shard `k` takes
    /// those whose access is at least `bands[k - 1]` and under `bands[k]`
    /// (nodes without an [`Endpoint`] go round the shards by index). A
    /// datagram between shards then takes at least the least access
    /// delays of both, so shards run apart as far as that (see
    /// [`World::lookahead`]): 38 ms between the halves of the Internet
    /// model's nodes against 3.6 ms when both hold the fastest. Bands past
    /// the last shard are ignored.
    pub fn place_by_access(&mut self, mut bands: Vec<Duration>) {
        bands.truncate(self.shards.len() - 1);
        self.access_bands = bands;
    }

    /// The shard for node `i`, at `addr`.
    fn shard_for(&self, i: usize, addr: &SocketAddr) -> usize {
        match self.world.network.endpoint(addr) {
            Some(e) if !self.access_bands.is_empty() => {
                self.access_bands.partition_point(|&b| b <= e.access)
            }
            _ => i % self.shards.len(),
        }
    }

    /// Counts `access`, an access delay of a node in shard `s`, in that
    /// shard's least.
    fn note_access(&mut self, s: usize, access: Option<Duration>) {
        match access {
            Some(a) => {
                let least = &mut self.world.least_access[s];
                *least = Some(least.map_or(a, |l| l.min(a)));
            }
            None => self.world.uniform_nodes = true,
        }
    }

    /// How far shards may run apart, and how many nodes each holds.
    #[cfg(test)]
    pub(crate) fn shard_layout(&self) -> (Duration, Vec<usize>) {
        let counts = self.shards.iter().map(|s| s.nodes.len()).collect();
        (self.world.lookahead(), counts)
    }

    /// Node `i`'s shard.
    #[cfg(test)]
    pub(crate) fn shard_of(&self, i: usize) -> usize {
        self.world.place(i).0
    }

    /// Node `i`'s connection, if it was given one.
    #[cfg(test)]
    pub(crate) fn endpoint_of(&self, i: usize) -> Option<&Endpoint> {
        self.world.network.endpoint(&self.node(i).addr)
    }

    /// Lets the shards run at once, on these threads.
    pub fn set_threads(&mut self, threads: Arc<dyn Threads>) {
        self.threads = Some(threads);
    }

    /// Virtual now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Runs `f` on node `i`'s shard at the current time, then queues what
    /// it sent to other shards.
    fn on_shard<T>(&mut self, i: usize, f: impl FnOnce(&mut Shard, &World, usize) -> T) -> T {
        let (s, local) = self.world.place(i);
        let shard = &mut self.shards[s];
        shard.now = self.now;
        let out = f(shard, &self.world, local);
        self.hand_over();
        out
    }

    /// Queues in each shard the datagrams others sent to its nodes.
    fn hand_over(&mut self) {
        for from in 0..self.shards.len() {
            for to in 0..self.shards.len() {
                let mut away = std::mem::take(&mut self.shards[from].away[to]);
                if !away.is_empty() {
                    queue_arrivals(&mut self.shards[to], away.drain(..));
                }
                self.shards[from].away[to] = away;
            }
        }
    }

    /// Adds a node now; it starts bootstrapping at once. Returns its index.
    pub fn add_node(&mut self, spec: NodeSpec) -> usize {
        self.add_node_at(self.now, spec)
    }

    /// Adds a node that starts bootstrapping at `at` (now, if that has
    /// passed). Until then it sends nothing, and no one knows its address.
    /// Returns its index. Nodes added ahead of time let a run go on
    /// without a stop for each (a network's first nodes join every few
    /// milliseconds of virtual time).
    pub fn add_node_at(&mut self, at: Instant, spec: NodeSpec) -> usize {
        let now = at.max(self.now);
        let later = now > self.now;
        let seed = spec.seed.unwrap_or_else(|| self.shards[0].rng.next_u64());
        let mut rng = StdRng::seed_from_u64(seed);
        let id = spec.id.unwrap_or_else(|| NodeId::random(&mut rng));
        let telemetry = Arc::new(Telemetry::default());
        telemetry.running.set((), 1);
        let pieces = Pieces::new(
            now,
            id,
            &spec.config,
            spec.sources,
            &mut rng,
            telemetry.clone(),
        );
        let i = self.len;
        self.len += 1;
        self.world.by_addr.insert(spec.addr, i);
        let s = self.shard_for(i, &spec.addr);
        let local = self.shards[s].nodes.len();
        self.world.places.push((s as u32, local as u32));
        let access = self.world.network.endpoint(&spec.addr).map(|e| e.access);
        self.note_access(s, access);
        let nat = self.nat_of(&spec.addr);
        self.on_shard(i, |shard, world, local| {
            debug_assert_eq!(shard.nodes.len(), local);
            shard.nodes.push(SimNode {
                addr: spec.addr,
                id,
                online: true,
                behaviour: Behaviour::Honest,
                pieces,
                telemetry,
                api: NodeApi::default(),
                wakes_now: (now, 0),
            });
            shard.nat.push(nat);
            shard.wake_at.push(None);
            if later {
                shard.events.push(now, Event::Start(local));
            } else {
                shard.settle(world, local);
            }
        });
        i
    }

    fn nat_of(&self, addr: &SocketAddr) -> Option<Mappings> {
        let endpoint = self.world.network.endpoint(addr)?;
        endpoint.behind_nat.then(Mappings::default)
    }

    /// Gives `addr` its own connection in the network's model (replacing
    /// any before), for a node there now or later.
    pub fn attach(&mut self, addr: SocketAddr, endpoint: Endpoint) {
        let access = endpoint.access;
        self.world.network.attach(addr, endpoint);
        if let Some(&i) = self.world.by_addr.get(&addr) {
            let nat = self.nat_of(&addr);
            let (s, local) = self.world.place(i);
            self.shards[s].nat[local] = nat;
            // It stays in its shard, whose least access may now be less.
            self.note_access(s, Some(access));
        }
    }

    /// The node at `addr`, if any (online or not).
    pub fn node_at(&self, addr: &SocketAddr) -> Option<usize> {
        self.world.by_addr.get(addr).copied()
    }

    /// Events run so far (deliveries and wake-ups).
    pub fn events(&self) -> u64 {
        self.shards.iter().map(|s| s.events_run).sum()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no node.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &SimNode {
        let (s, local) = self.world.place(i);
        &self.shards[s].nodes[local]
    }

    /// Node `i`, to change.
    pub fn node_mut(&mut self, i: usize) -> &mut SimNode {
        let (s, local) = self.world.place(i);
        &mut self.shards[s].nodes[local]
    }

    fn nodes(&self) -> impl Iterator<Item = &SimNode> {
        self.shards.iter().flat_map(|s| s.nodes.iter())
    }

    /// The network's counters.
    pub fn net_stats(&self) -> NetStats {
        let mut all = NetStats::default();
        for s in &self.shards {
            all.sent += s.stats.sent;
            all.lost += s.stats.lost;
            all.undeliverable += s.stats.undeliverable;
            all.blocked += s.stats.blocked;
            all.late += s.stats.late;
        }
        all
    }

    /// Starts keeping every datagram sent from now on.
    pub fn start_trace(&mut self) {
        for s in &mut self.shards {
            s.trace = Some(Vec::new());
        }
    }

    /// The datagrams traced since the last call (a shard's after
    /// another's).
    pub fn take_trace(&mut self) -> Vec<Traced> {
        let mut all = Vec::new();
        for s in &mut self.shards {
            all.extend(s.trace.as_mut().map(std::mem::take).unwrap_or_default());
        }
        all
    }

    /// Stops (or restarts) node `i`: a stopped node receives nothing and
    /// its timers do not run.
    pub fn set_online(&mut self, i: usize, online: bool) {
        self.node_mut(i).online = online;
        if online {
            self.on_shard(i, |shard, world, local| shard.settle(world, local));
        }
    }

    /// Node `i` leaves for good: it is stopped, and what it held (table,
    /// store, lookups) is freed; its counters and what its application
    /// heard stay. A network with churn would otherwise keep every node that
    /// ever left.
    pub fn retire(&mut self, i: usize) {
        let now = self.now;
        let (s, local) = self.world.place(i);
        let shard = &mut self.shards[s];
        let node = &mut shard.nodes[local];
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
        shard.wake_at[local] = None;
        shard.nat[local] = None;
    }

    /// Queues `envelope` in node `i`'s mailbox and runs it to quiet.
    pub fn send_to(&mut self, i: usize, envelope: Envelope) {
        self.on_shard(i, |shard, world, local| {
            shard.send_to(world, local, envelope)
        });
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
        self.run_until(until, |sim| sim.node(i).api.finished.contains_key(&caller));
        self.node_mut(i).api.finished.remove(&caller)
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
        self.node(i).pieces.supervisor.is_complete()
    }

    /// The `k` ids closest to `target` among online nodes, by brute force.
    pub fn true_closest(&self, target: &NodeId, k: usize) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self.nodes().filter(|n| n.online).map(|n| n.id).collect();
        ids.sort_by_key(|id| target.distance(id));
        ids.truncate(k);
        ids
    }

    /// The nodes in node `i`'s routing table.
    pub fn table(&self, i: usize) -> Vec<NodeInfo> {
        let routing = &self.node(i).pieces.routing;
        routing
            .iter()
            .flat_map(|(_, u)| u.table().nodes())
            .collect()
    }

    /// Runs every event up to `until`, or until `done` holds; returns
    /// whether `done` held. It checks `done` after every event, so it runs
    /// the shards' events one at a time, in order of time (of shard at equal
    /// times), on this thread.
    pub fn run_until(&mut self, until: Instant, mut done: impl FnMut(&Self) -> bool) -> bool {
        if self.shards.len() == 1 {
            return self.run_one_shard_until(until, done);
        }
        loop {
            if done(self) {
                return true;
            }
            let next = self
                .shards
                .iter_mut()
                .enumerate()
                .filter_map(|(s, shard)| shard.events.peek().map(|at| (at, s)))
                .min();
            let Some((at, s)) = next.filter(|&(at, _)| at <= until) else {
                self.set_now(self.now.max(until));
                return false;
            };
            self.now = self.now.max(at);
            let shard = &mut self.shards[s];
            if let Some((at, event)) = shard.events.pop_until(at) {
                shard.run_event(&self.world, at, event);
            }
            self.hand_over();
        }
    }

    fn run_one_shard_until(&mut self, until: Instant, mut done: impl FnMut(&Self) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            let Some((at, event)) = self.shards[0].events.pop_until(until) else {
                self.set_now(self.now.max(until));
                return false;
            };
            self.now = self.now.max(at);
            self.shards[0].run_event(&self.world, at, event);
        }
    }

    /// Runs every event up to `until`: each shard on its own thread when
    /// there are several, threads to run them on, and a network whose
    /// lookahead allows.
    pub fn run_to(&mut self, until: Instant) {
        let lookahead = self.world.lookahead();
        let threads = match &self.threads {
            Some(t) if self.shards.len() > 1 && lookahead >= MIN_LOOKAHEAD => t.clone(),
            _ => {
                self.run_until(until, |_| false);
                return;
            }
        };
        let until = until.max(self.now);
        for shard in &mut self.shards {
            shard.now = self.now;
        }
        run_shards(
            threads.as_ref(),
            &mut self.shards,
            &self.world,
            self.epoch,
            until,
            lookahead,
        );
        self.set_now(until);
    }

    fn set_now(&mut self, now: Instant) {
        self.now = now;
        for shard in &mut self.shards {
            shard.now = now;
        }
    }

    /// Moves the clock on by `d` at once, and runs what is due then, as a
    /// manual clock's `advance` does to actors: every deadline passed fires
    /// at the new time.
    pub fn jump(&mut self, d: Duration) {
        let now = self.now + d;
        self.set_now(now);
        self.run_until(now, |_| false);
    }

    /// A datagram from `from`, an address no node holds (a test's own
    /// peer), to node `to`, delivered now. Answers to it are traced (see
    /// [`Simulation::start_trace`]) and otherwise undeliverable.
    pub fn inject(&mut self, from: SocketAddr, to: usize, bytes: &[u8]) {
        let at = self.now;
        let bytes = Bytes::copy_from_slice(bytes);
        let (s, local) = self.world.place(to);
        let event = Event::Deliver {
            to: local,
            from,
            bytes,
        };
        self.shards[s].events.push(at, event);
    }

    /// Runs for `d` of virtual time (see [`Simulation::run_to`]).
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_to(until);
    }
}

/// Shards' seeds step by this from the simulation's (an odd constant, so
/// that no two shards of nearby seeds share a stream).
const SHARD_SEED_STEP: u64 = 0x9e37_79b9_7f4a_7c15;

/// With a lookahead shorter than this, shards on threads would spend more
/// on waiting for each other than on their events: they then run one at a
/// time.
const MIN_LOOKAHEAD: Duration = Duration::from_micros(100);

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
