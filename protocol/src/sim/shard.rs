//! One shard of a simulation: a share of the nodes, with their own event
//! queue, randomness and counters, run on one thread.
//!
//! Each node lives in one shard, at its own place there ([`World::place`]);
//! a shard reads the [`World`] (who is where, the network's model) and
//! changes only its own nodes; a datagram for another shard's node waits in
//! [`Shard::away`] until the driver hands it over. With one shard, this is
//! the whole simulation.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;

use super::driver::{Behaviour, NodeApi, SimNode, LOG_KEPT};
use super::hostile::sybil_reply;
use super::network::{Mappings, NetStats, Network, Traced};
use super::queue::EventQueue;
use crate::node::{
    ApiEvent, Datagram, Deliver, Envelope, IoRequest, LogEvent, LookupEvent, LookupsInput, Outputs,
    Piece, Pieces, RateLimiterInput, RoutingInput, StoreInput, SupervisorInput, TransactionsInput,
};
use crate::telemetry::AddressFamily;

/// What every shard reads and none changes while shards run.
#[derive(Debug)]
pub(crate) struct World {
    /// The node at each address, by index in the simulation.
    pub(crate) by_addr: HashMap<SocketAddr, usize>,
    pub(crate) network: Network,
    /// Each node's shard and its place there, by index in the simulation.
    pub(crate) places: Vec<(u32, u32)>,
    /// The smallest access delay among each shard's nodes.
    pub(crate) least_access: Vec<Option<Duration>>,
    /// Some node has no [`super::Endpoint`]: the uniform model's delays
    /// reach it.
    pub(crate) uniform_nodes: bool,
}

impl World {
    /// The shard of node `i`, and its place there.
    pub(crate) fn place(&self, i: usize) -> (usize, usize) {
        let (shard, local) = self.places[i];
        (shard as usize, local as usize)
    }

    /// A time no datagram between nodes of different shards takes less:
    /// how far one shard may run ahead of the others. Only paths that
    /// cross shards count, so shards that each hold nodes of like access
    /// delays (see `Simulation::place_by_access`) may run far apart.
    pub(crate) fn lookahead(&self) -> Duration {
        let mut least = if self.uniform_nodes {
            self.network.uniform_floor()
        } else {
            Duration::MAX
        };
        let accesses = &self.least_access;
        for (a, first) in accesses.iter().enumerate() {
            for second in &accesses[a + 1..] {
                if let (Some(x), Some(y)) = (first, second) {
                    least = least.min(Network::path_floor(*x, *y));
                }
            }
        }
        // A nanosecond or so of rounding in `mul_f64`, with room to spare.
        least.saturating_sub(Duration::from_micros(1))
    }
}

/// A datagram for a node of another shard.
#[derive(Debug)]
pub(crate) struct Away {
    pub(crate) at: Instant,
    /// The sending shard, and its count of events scheduled: the datagram's
    /// place among equal times, whenever it is handed over.
    pub(crate) origin: usize,
    pub(crate) seq: u64,
    /// The node's place in its shard.
    pub(crate) to: usize,
    pub(crate) from: SocketAddr,
    pub(crate) bytes: Bytes,
}

#[derive(Debug)]
pub(crate) enum Event {
    Deliver {
        to: usize,
        from: SocketAddr,
        bytes: Bytes,
    },
    Wake(usize),
    /// A node added ahead of time starts (see `Simulation::add_node_at`).
    Start(usize),
}

/// Far more wake-ups of one node at one virtual instant than any piece
/// needs to drain its due work.
const MAX_WAKES_AT_ONE_INSTANT: u32 = 100_000;

/// How much room a staging buffer for sent datagrams gets at a time: a
/// few dozen datagrams.
const STAGING_ROOM: usize = 16 * 1024;

/// A copy of `datagram` in `staging`'s buffer, which it shares (counted)
/// with the datagrams sent before it until that buffer is full: one
/// allocation per few dozen datagrams instead of one for each, and the
/// receiver's slices of it (a transaction id) are counts, not allocations
/// (a `Bytes` of its own buffer allocates a count at its first slice). A
/// buffer is freed with the last datagram in it (the longest delay among
/// a few dozen), or reused when they are all gone by then.
fn stage(staging: &mut BytesMut, datagram: &[u8]) -> Bytes {
    if staging.capacity() < datagram.len() {
        staging.reserve(STAGING_ROOM.max(datagram.len()));
    }
    staging.extend_from_slice(datagram);
    staging.split().freeze()
}

/// A share of the nodes and everything that changes when they run.
pub(crate) struct Shard {
    pub(crate) index: usize,
    pub(crate) nodes: Vec<SimNode>,
    /// The NAT in front of each node, if any.
    pub(crate) nat: Vec<Option<Mappings>>,
    /// When each node wakes next, beside the nodes: a wake-up made stale by
    /// an earlier one is dropped without touching the node's memory.
    pub(crate) wake_at: Vec<Option<Instant>>,
    /// The mailbox of the node being run. One serves all: a node's mailbox
    /// is run to empty before any other node runs.
    mailbox: VecDeque<Envelope>,
    pub(crate) events: EventQueue<Event>,
    pub(crate) now: Instant,
    pub(crate) rng: StdRng,
    pub(crate) stats: NetStats,
    pub(crate) trace: Option<Vec<Traced>>,
    pub(crate) events_run: u64,
    /// Datagrams for the nodes of each other shard.
    pub(crate) away: Vec<Vec<Away>>,
    /// Datagrams being handed to the network, kept for its memory.
    sending: Vec<(SocketAddr, Bytes)>,
    /// Where sent datagrams are copied, many to a buffer (see [`stage`]).
    staging: BytesMut,
    /// Output queues lent to the pieces of the node being run, one per
    /// piece, and whether each is out: grown once for all the shard's
    /// nodes instead of for each event, and given back empty.
    spare: [Outputs; PieceKind::ALL.len()],
    lent: [bool; PieceKind::ALL.len()],
}

impl Shard {
    pub(crate) fn new(index: usize, shards: usize, epoch: Instant, rng: StdRng) -> Self {
        Shard {
            index,
            nodes: Vec::new(),
            nat: Vec::new(),
            wake_at: Vec::new(),
            mailbox: VecDeque::new(),
            events: EventQueue::new(epoch, index),
            now: epoch,
            rng,
            stats: NetStats::default(),
            trace: None,
            events_run: 0,
            away: (0..shards).map(|_| Vec::new()).collect(),
            sending: Vec::new(),
            staging: BytesMut::new(),
            spare: Default::default(),
            lent: [false; PieceKind::ALL.len()],
        }
    }

    /// Runs one event taken from the queue.
    pub(crate) fn run_event(&mut self, world: &World, at: Instant, event: Event) {
        self.events_run += 1;
        self.now = self.now.max(at);
        match event {
            Event::Deliver { to, from, bytes } => {
                if !self.nodes[to].online {
                    self.stats.undeliverable += 1;
                    return;
                }
                if let Some(nat) = &self.nat[to] {
                    if !nat.lets_in(self.now, &from) {
                        self.stats.blocked += 1;
                        return;
                    }
                }
                if self.nodes[to].behaviour != Behaviour::Honest
                    && crate::node::rate_limiter::gate::looks_like_query(&bytes)
                {
                    self.sybil_answer(world, to, from, &bytes);
                    return;
                }
                let t = &self.nodes[to].telemetry;
                let f = AddressFamily::of(&from);
                t.packets_in.incr(f);
                t.bytes_in.add(f, bytes.len() as u64);
                let datagram = Datagram { from, bytes };
                self.lend_outputs(to);
                self.mailbox
                    .push_back(Envelope::RateLimiter(RateLimiterInput::Datagram(datagram)));
                self.settle(world, to);
            }
            Event::Start(i) => {
                if self.nodes[i].online {
                    self.lend_outputs(i);
                    self.settle(world, i);
                }
            }
            Event::Wake(i) => {
                if self.wake_at[i] != Some(at) {
                    return; // superseded
                }
                self.wake_at[i] = None;
                if self.nodes[i].online {
                    self.wake(world, i);
                }
            }
        }
    }

    /// Runs every event of this shard up to `until`.
    pub(crate) fn run_through(&mut self, world: &World, until: Instant) {
        while let Some((at, event)) = self.events.pop_until(until) {
            self.run_event(world, at, event);
        }
    }

    /// Queues `envelope` in node `i`'s mailbox and runs it to quiet.
    pub(crate) fn send_to(&mut self, world: &World, i: usize, envelope: Envelope) {
        self.lend_outputs(i);
        self.mailbox.push_back(envelope);
        self.settle(world, i);
    }

    /// Sybil node `i`'s answer to a query from `from`.
    fn sybil_answer(&mut self, world: &World, i: usize, from: SocketAddr, query: &[u8]) {
        let me = &self.nodes[i];
        let echo = me.behaviour == Behaviour::EchoingSybil;
        let (id, sybil) = (me.id, me.addr);
        if let Some(reply) = sybil_reply(query, id, sybil, from, echo, &mut self.rng) {
            self.transmit(world, i, from, Bytes::from(reply));
        }
    }

    /// Hands a datagram of node `i` to the network, and schedules its
    /// delivery (here, or in another shard's queue).
    fn transmit(&mut self, world: &World, i: usize, to: SocketAddr, bytes: Bytes) {
        let from = self.nodes[i].addr;
        self.stats.sent += 1;
        if let Some(trace) = &mut self.trace {
            trace.push(Traced {
                from,
                to,
                bytes: bytes.to_vec(),
            });
        }
        if let Some(nat) = &mut self.nat[i] {
            nat.opened(self.now, to);
        }
        let Some(delay) = world.network.delay(&mut self.rng, &from, &to) else {
            self.stats.lost += 1;
            return;
        };
        let Some(&j) = world.by_addr.get(&to) else {
            self.stats.undeliverable += 1;
            return;
        };
        let at = self.now + delay;
        let (shard, to) = world.place(j);
        if shard == self.index {
            let event = Event::Deliver { to, from, bytes };
            self.events.push(at, event);
        } else {
            let seq = self.events.next_seq();
            self.away[shard].push(Away {
                at,
                origin: self.index,
                seq,
                to,
                from,
                bytes,
            });
        }
    }

    /// Runs the timeouts of node `i` that are due, then its mailbox.
    fn wake(&mut self, world: &World, i: usize) {
        self.lend_outputs(i);
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
            "node {i} of shard {} woke {MAX_WAKES_AT_ONE_INSTANT} times at one instant: a piece's poll_timeout stays in the past",
            self.index
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
        self.settle(world, i);
    }

    /// Delivers node `i`'s mailbox until it is empty, sends what its pieces
    /// decided to send, and arms its next wake-up.
    pub(crate) fn settle(&mut self, world: &World, i: usize) {
        for piece in PieceKind::ALL {
            self.collect(world, i, piece);
        }
        while let Some(envelope) = self.mailbox.pop_front() {
            let node = &mut self.nodes[i];
            let mut local = Local {
                now: self.now,
                pieces: &mut node.pieces,
                api: &mut node.api,
                io: Vec::new(),
                handled_by: None,
            };
            envelope.deliver(&mut local);
            let (io, handled_by) = (local.io, local.handled_by);
            for request in io {
                self.io(i, request);
            }
            // Only that piece's outputs can have changed: the others were
            // taken before, and a piece touches no other.
            if let Some(piece) = handled_by {
                self.collect(world, i, piece);
            }
        }
        self.take_back_outputs(i);
        self.arm(i);
    }

    /// Swaps the shard's spare output queues for node `i`'s pieces' own,
    /// which are empty between events (a piece whose are not keeps them).
    fn lend_outputs(&mut self, i: usize) {
        for (k, piece) in PieceKind::ALL.into_iter().enumerate() {
            let own = piece.outputs(&mut self.nodes[i].pieces);
            if !self.lent[k] && own.is_drained() {
                std::mem::swap(own, &mut self.spare[k]);
                self.lent[k] = true;
            }
        }
    }

    /// Once node `i` is quiet, takes back what [`Shard::lend_outputs`] lent
    /// (drained: its mailbox ran to empty and every output was taken).
    fn take_back_outputs(&mut self, i: usize) {
        for (k, piece) in PieceKind::ALL.into_iter().enumerate() {
            let own = piece.outputs(&mut self.nodes[i].pieces);
            if std::mem::take(&mut self.lent[k]) && own.is_drained() {
                std::mem::swap(own, &mut self.spare[k]);
            }
            // A hundred thousand idle nodes keep no queue of their own.
            own.release_peak();
        }
    }

    /// Takes one piece's outputs: envelopes to the mailbox, datagrams to
    /// the network.
    fn collect(&mut self, world: &World, i: usize, piece: PieceKind) {
        let mut datagrams = std::mem::take(&mut self.sending);
        {
            let out = piece.outputs(&mut self.nodes[i].pieces);
            while let Some(e) = out.pop() {
                self.mailbox.push_back(e);
            }
            for (to, bytes) in out.outbox.iter() {
                datagrams.push((to, stage(&mut self.staging, bytes)));
            }
            out.outbox.clear();
        }
        for (to, bytes) in datagrams.drain(..) {
            let f = AddressFamily::of(&to);
            self.nodes[i].telemetry.packets_out.incr(f);
            self.nodes[i].telemetry.bytes_out.add(f, bytes.len() as u64);
            self.transmit(world, i, to, bytes);
        }
        self.sending = datagrams;
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

    pub(crate) fn arm(&mut self, i: usize) {
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
                self.events.push(at, Event::Wake(i));
            }
        }
    }
}

/// The pieces of a node, in the order their outputs are taken.
#[derive(Clone, Copy)]
enum PieceKind {
    RateLimiter,
    Routing,
    Transactions,
    Store,
    Lookups,
    Supervisor,
}

impl PieceKind {
    const ALL: [PieceKind; 6] = [
        PieceKind::RateLimiter,
        PieceKind::Routing,
        PieceKind::Transactions,
        PieceKind::Store,
        PieceKind::Lookups,
        PieceKind::Supervisor,
    ];

    fn outputs(self, p: &mut Pieces) -> &mut Outputs {
        match self {
            PieceKind::RateLimiter => p.rate_limiter.outputs(),
            PieceKind::Routing => p.routing.outputs(),
            PieceKind::Transactions => p.transactions.outputs(),
            PieceKind::Store => p.store.outputs(),
            PieceKind::Lookups => p.lookups.outputs(),
            PieceKind::Supervisor => p.supervisor.outputs(),
        }
    }
}

/// Parses numeric `ip:port` sources; the simulator resolves no names.
fn resolve(sources: &[String]) -> Vec<SocketAddr> {
    sources.iter().filter_map(|s| s.parse().ok()).collect()
}

/// Delivers envelopes to the pieces of one node, as an actor would.
struct Local<'a> {
    now: Instant,
    pieces: &'a mut Pieces,
    api: &'a mut NodeApi,
    io: Vec<IoRequest>,
    /// The piece the envelope went to; `None` for the driver's services.
    handled_by: Option<PieceKind>,
}

impl Deliver for Local<'_> {
    fn rate_limiter(&mut self, m: RateLimiterInput) {
        self.pieces.rate_limiter.handle(self.now, m);
        self.handled_by = Some(PieceKind::RateLimiter);
    }
    fn routing(&mut self, m: RoutingInput) {
        self.pieces.routing.handle(self.now, m);
        self.handled_by = Some(PieceKind::Routing);
    }
    fn transactions(&mut self, m: TransactionsInput) {
        self.pieces.transactions.handle(self.now, m);
        self.handled_by = Some(PieceKind::Transactions);
    }
    fn store(&mut self, m: StoreInput) {
        self.pieces.store.handle(self.now, m);
        self.handled_by = Some(PieceKind::Store);
    }
    fn lookups(&mut self, m: LookupsInput) {
        self.pieces.lookups.handle(self.now, m);
        self.handled_by = Some(PieceKind::Lookups);
    }
    fn supervisor(&mut self, m: SupervisorInput) {
        self.pieces.supervisor.handle(self.now, m);
        self.handled_by = Some(PieceKind::Supervisor);
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
                api.pongs.insert(tag, *done);
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
