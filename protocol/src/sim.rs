//! A whole DHT in one process: many nodes, a simulated network with latency
//! and seeded loss, and virtual time. No sockets and no clock: a run with
//! the same [`SimConfig::seed`] replays exactly.
//!
//! Each simulated node is built from this crate's parts only — a
//! [`RoutingTable`], a [`TransactionTable`] and [`Lookup`]s — and talks to the
//! others in real KRPC datagrams ([`Message`] encoded and decoded), so the
//! simulation exercises the same code a real node runs. It follows quinn's
//! `Pair` (advance to the earliest event), raft-rs's `Network` (drop and
//! isolate) and nearcore's rule that events at equal times run in order of
//! scheduling.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use crate::compact::NodeInfo;
use crate::id::NodeId;
use crate::krpc::{Body, ErrorCode, Message, Query};
use crate::lookup::{Lookup, LookupConfig, LookupKind, LookupOutcome, LookupStep};
use crate::routing::{
    HeardOutcome, InsertOutcome, Maintenance, NodeFilter, RoutingConfig, RoutingTable,
};
use crate::server::{self, Needs};
use crate::transactions::{Expired, TransactionConfig, TransactionTable};

/// Parameters of a simulated network.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Number of nodes.
    pub nodes: usize,
    /// Seed for every random choice (ids, loss, latency, transaction ids).
    pub seed: u64,
    /// Probability that a datagram is lost, 0.0 to 1.0.
    pub loss: f64,
    /// Shortest one-way delay.
    pub min_latency: Duration,
    /// Longest one-way delay.
    pub max_latency: Duration,
    /// Time between two nodes joining.
    pub join_interval: Duration,
    /// Routing policy of every node.
    pub routing: RoutingConfig,
    /// Lookup parameters of every node.
    pub lookup: LookupConfig,
    /// Transaction timeouts and retransmits of every node.
    pub transactions: TransactionConfig,
    /// Rounds of routine upkeep (one per [`RoutingConfig::refresh_after`])
    /// between joining and the lookups of [`run_lookup_experiment`].
    pub maintenance_rounds: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        let transactions = TransactionConfig {
            // At 5% loss a query and its reply both arrive 90% of the time;
            // four tries miss one node in 10,000, so a lookup's 8 closest
            // are all confirmed about 99.9% of the time.
            timeout: Duration::from_millis(600),
            attempts: 4,
            max_pending: 4096,
        };
        SimConfig {
            nodes: 1000,
            seed: 1,
            loss: 0.05,
            min_latency: Duration::from_millis(10),
            max_latency: Duration::from_millis(120),
            join_interval: Duration::from_millis(50),
            routing: RoutingConfig::default(),
            lookup: LookupConfig {
                // Longer than every retransmit of one query.
                query_timeout: transactions.timeout * u32::from(transactions.attempts)
                    + Duration::from_millis(200),
                ..LookupConfig::default()
            },
            transactions,
            maintenance_rounds: 2,
        }
    }
}

/// Traffic counters of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Datagrams handed to the network.
    pub sent: u64,
    /// Datagrams the network lost.
    pub lost: u64,
    /// Datagrams that reached a stopped node.
    pub undeliverable: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Join,
    Refresh,
    Maintenance,
    User,
}

#[derive(Debug, Clone)]
enum Purpose {
    Ping { info: NodeInfo, bootstrap: bool },
    Lookup { lookup: u64, node: NodeId },
}

#[derive(Debug)]
struct Pending {
    purpose: Purpose,
    datagram: Vec<u8>,
}

struct SimNode {
    id: NodeId,
    addr: SocketAddr,
    online: bool,
    table: RoutingTable,
    transactions: TransactionTable<Pending>,
    lookups: BTreeMap<u64, (Lookup, Role)>,
    pinging: BTreeSet<SocketAddr>,
    refreshes_left: usize,
    join_attempts: u32,
    joined: bool,
    wake_at: Option<Instant>,
}

#[derive(Debug)]
enum Event {
    Join(usize),
    Deliver {
        to: usize,
        from: SocketAddr,
        datagram: Vec<u8>,
    },
    Wake(usize),
    Maintain(usize),
}

/// A simulated DHT.
pub struct Simulation {
    config: SimConfig,
    nodes: Vec<SimNode>,
    by_addr: BTreeMap<SocketAddr, usize>,
    events: BTreeMap<(Instant, u64), Event>,
    seq: u64,
    now: Instant,
    rng: StdRng,
    next_lookup: u64,
    finished: BTreeMap<u64, LookupOutcome>,
    stats: NetStats,
}

/// Bootstraps a node tries before it settles for the table it has.
const MAX_JOIN_ATTEMPTS: u32 = 5;

fn sim_addr(i: usize) -> SocketAddr {
    // A distinct IP per node, so the one-node-per-IP rule applies as on the Internet.
    let n = i as u32 + 1;
    SocketAddr::from((Ipv4Addr::from(0x0a00_0000 | n), 6881))
}

impl Simulation {
    /// Creates the nodes (none has joined yet). `epoch` is the virtual
    /// clock's start; only durations are ever added to it.
    pub fn new(epoch: Instant, config: SimConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let nodes: Vec<SimNode> = (0..config.nodes)
            .map(|i| {
                let id = NodeId::random(&mut rng);
                SimNode {
                    id,
                    addr: sim_addr(i),
                    online: true,
                    table: RoutingTable::new(id, epoch, config.routing),
                    transactions: TransactionTable::new(config.transactions),
                    lookups: BTreeMap::new(),
                    pinging: BTreeSet::new(),
                    refreshes_left: 0,
                    join_attempts: 0,
                    joined: false,
                    wake_at: None,
                }
            })
            .collect();
        let by_addr = nodes.iter().enumerate().map(|(i, n)| (n.addr, i)).collect();
        Simulation {
            config,
            nodes,
            by_addr,
            events: BTreeMap::new(),
            seq: 0,
            now: epoch,
            rng,
            next_lookup: 0,
            finished: BTreeMap::new(),
            stats: NetStats::default(),
        }
    }

    /// Virtual now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Traffic so far.
    pub fn net_stats(&self) -> NetStats {
        self.stats
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s id.
    pub fn node_id(&self, i: usize) -> NodeId {
        self.nodes[i].id
    }

    /// Node `i`'s routing table.
    pub fn table(&self, i: usize) -> &RoutingTable {
        &self.nodes[i].table
    }

    /// Whether node `i` has finished bootstrapping.
    pub fn is_joined(&self, i: usize) -> bool {
        self.nodes[i].joined
    }

    /// Stops (or restarts) node `i`: a stopped node receives nothing.
    pub fn set_online(&mut self, i: usize, online: bool) {
        self.nodes[i].online = online;
    }

    fn schedule(&mut self, at: Instant, event: Event) {
        self.seq += 1;
        self.events.insert((at, self.seq), event);
    }

    /// Joins every node, one per [`SimConfig::join_interval`], each
    /// bootstrapping from a random node that joined before it, and runs
    /// until the network is quiet.
    pub fn join_all(&mut self) {
        self.schedule_joins();
        self.run_until(|_| false);
    }

    /// Schedules the joins as [`Simulation::join_all`] does, without running them.
    pub fn schedule_joins(&mut self) {
        let start = self.now;
        for i in 0..self.nodes.len() {
            let at = start + self.config.join_interval * i as u32;
            self.schedule(at, Event::Join(i));
        }
    }

    /// Runs events up to virtual time `until`.
    pub fn run_until_time(&mut self, until: Instant) {
        self.run_until(|sim| {
            sim.events
                .first_key_value()
                .is_none_or(|((at, _), _)| *at > until)
        });
        self.now = self.now.max(until);
    }

    /// Lets [`RoutingConfig::refresh_after`] pass, so every node does the
    /// upkeep its table asks for (pings of questionable nodes, refreshes of
    /// quiet buckets), as a long-running node would; runs until quiet.
    pub fn run_maintenance_round(&mut self) {
        let start = self.now + self.config.routing.refresh_after;
        for i in 0..self.nodes.len() {
            // Spread the nodes' timers over a few seconds, as real clocks are.
            let at = start + Duration::from_millis(self.rng.random_range(0..5_000));
            self.schedule(at, Event::Maintain(i));
        }
        self.run_until(|_| false);
    }

    fn maintain(&mut self, i: usize) {
        while let Some(work) = self.nodes[i]
            .table
            .poll_maintenance(self.now, &mut self.rng)
        {
            match work {
                Maintenance::Ping(info) => self.ping(i, info, false),
                Maintenance::Refresh { target, .. } => {
                    self.start_lookup(i, target, Role::Maintenance);
                }
            }
        }
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

    /// Runs a `find_node` lookup of `target` from node `from` to its end.
    pub fn lookup(&mut self, from: usize, target: NodeId) -> LookupOutcome {
        let id = self.start_lookup(from, target, Role::User);
        self.run_until(|sim| sim.finished.contains_key(&id));
        // A running lookup always has a wake-up armed at its deadline, so
        // it finishes before the network can go quiet.
        self.finished.remove(&id).unwrap_or_default()
    }

    fn run_until(&mut self, mut done: impl FnMut(&Self) -> bool) {
        while !done(self) {
            let Some(((at, _), event)) = self.events.pop_first() else {
                return;
            };
            self.now = self.now.max(at);
            match event {
                Event::Join(i) => self.join(i),
                Event::Deliver { to, from, datagram } => {
                    if self.nodes[to].online {
                        self.on_datagram(to, from, &datagram);
                    } else {
                        self.stats.undeliverable += 1;
                    }
                }
                Event::Wake(i) => {
                    self.nodes[i].wake_at = None;
                    self.on_wake(i);
                }
                Event::Maintain(i) => {
                    if self.nodes[i].online {
                        self.maintain(i);
                    }
                }
            }
        }
    }

    fn send(&mut self, from: usize, to: SocketAddr, datagram: Vec<u8>) {
        self.stats.sent += 1;
        if self.rng.random::<f64>() < self.config.loss {
            self.stats.lost += 1;
            return;
        }
        let Some(&to) = self.by_addr.get(&to) else {
            self.stats.undeliverable += 1;
            return;
        };
        let span = self
            .config
            .max_latency
            .saturating_sub(self.config.min_latency);
        let delay = self.config.min_latency + span.mul_f64(self.rng.random::<f64>());
        let from = self.nodes[from].addr;
        self.schedule(self.now + delay, Event::Deliver { to, from, datagram });
    }

    fn query(&mut self, i: usize, to: NodeInfo, query: Query<'_>, purpose: Purpose) {
        let node = &mut self.nodes[i];
        let placeholder = Pending {
            purpose,
            datagram: Vec::new(),
        };
        let Ok(tid) = node
            .transactions
            .start(self.now, &mut self.rng, to.addr, placeholder)
        else {
            return;
        };
        let datagram = Message {
            transaction_id: tid.as_bytes(),
            version: Some(b"SM\x00\x01"),
            requester_ip: None,
            read_only: false,
            body: Body::Query {
                sender: node.id,
                query,
            },
        }
        .to_bytes();
        // Keep the bytes for retransmission.
        if let Some(p) = node.transactions.payload_mut(tid) {
            p.datagram.clone_from(&datagram);
        }
        self.send(i, to.addr, datagram);
        self.arm(i);
    }

    fn ping(&mut self, i: usize, info: NodeInfo, bootstrap: bool) {
        if !self.nodes[i].pinging.insert(info.addr) {
            return;
        }
        self.query(i, info, Query::Ping, Purpose::Ping { info, bootstrap });
    }

    fn arm(&mut self, i: usize) {
        let node = &self.nodes[i];
        let next = node
            .lookups
            .values()
            .filter_map(|(l, _)| l.poll_timeout())
            .chain(node.transactions.poll_timeout())
            .min();
        if let Some(at) = next {
            if node.wake_at.is_none_or(|w| at < w) {
                self.nodes[i].wake_at = Some(at);
                self.schedule(at, Event::Wake(i));
            }
        }
    }

    fn join(&mut self, i: usize) {
        if i == 0 {
            self.nodes[0].joined = true;
            return;
        }
        self.nodes[i].join_attempts += 1;
        let seed = self.rng.random_range(0..i);
        let info = NodeInfo {
            id: self.nodes[seed].id,
            addr: self.nodes[seed].addr,
        };
        self.ping(i, info, true);
    }

    fn start_lookup(&mut self, i: usize, target: NodeId, role: Role) -> u64 {
        let id = self.next_lookup;
        self.next_lookup += 1;
        let node = &mut self.nodes[i];
        let seeds = node.table.closest(
            self.now,
            &target,
            self.config.lookup.k * 2,
            NodeFilter::NotBad,
        );
        let lookup = Lookup::new(
            self.now,
            target,
            LookupKind::FindNode,
            Some(node.id),
            seeds,
            self.config.lookup,
        );
        node.lookups.insert(id, (lookup, role));
        self.drive(i, id);
        id
    }

    fn drive(&mut self, i: usize, lookup_id: u64) {
        loop {
            let Some((lookup, role)) = self.nodes[i].lookups.get_mut(&lookup_id) else {
                return;
            };
            let role = *role;
            match lookup.poll(self.now) {
                LookupStep::Query(to) => {
                    let target = lookup.target();
                    let purpose = Purpose::Lookup {
                        lookup: lookup_id,
                        node: to.id,
                    };
                    self.query(i, to, Query::FindNode { target, want: None }, purpose);
                }
                LookupStep::AtCapacity | LookupStep::Waiting => {
                    self.arm(i);
                    return;
                }
                LookupStep::Finished => {
                    if let Some((lookup, _)) = self.nodes[i].lookups.remove(&lookup_id) {
                        if role == Role::User {
                            self.finished.insert(lookup_id, lookup.outcome());
                        }
                    }
                    self.lookup_finished(i, role);
                    return;
                }
            }
        }
    }

    fn lookup_finished(&mut self, i: usize, role: Role) {
        match role {
            Role::User | Role::Maintenance => {}
            Role::Join
                if self.nodes[i].table.len() < self.config.lookup.k
                    && self.nodes[i].join_attempts < MAX_JOIN_ATTEMPTS =>
            {
                // The lookup reached too few nodes (its seed's answers were
                // lost): bootstrap again from another node.
                self.join(i);
            }
            Role::Join => {
                // Bootstrap, as a real node does it: our own id, then every bucket.
                let targets = self.nodes[i].table.refresh_targets(&mut self.rng);
                self.nodes[i].refreshes_left = targets.len();
                for t in targets {
                    self.start_lookup(i, t, Role::Refresh);
                }
            }
            Role::Refresh => {
                let node = &mut self.nodes[i];
                node.refreshes_left = node.refreshes_left.saturating_sub(1);
                if node.refreshes_left == 0 {
                    node.joined = true;
                }
            }
        }
    }

    fn on_datagram(&mut self, i: usize, from: SocketAddr, datagram: &[u8]) {
        let Ok(msg) = Message::decode(datagram) else {
            return;
        };
        match msg.body {
            Body::Query { sender, query } => {
                let info = NodeInfo {
                    id: sender,
                    addr: from,
                };
                if self.nodes[i]
                    .table
                    .node_queried(self.now, &info, msg.read_only)
                    == HeardOutcome::WorthPinging
                {
                    self.ping(i, info, false);
                }
                let reply = self.answer(i, msg.transaction_id, from, &query);
                self.send(i, from, reply);
            }
            Body::Response(r) => {
                let Ok(done) =
                    self.nodes[i]
                        .transactions
                        .on_response(self.now, msg.transaction_id, from)
                else {
                    return;
                };
                let info = NodeInfo {
                    id: r.id,
                    addr: from,
                };
                if let InsertOutcome::PingOldest(old) =
                    self.nodes[i].table.node_responded(self.now, info)
                {
                    self.ping(i, old, false);
                }
                let nodes: Vec<NodeInfo> = r.nodes.iter().flat_map(|n| n.iter()).collect();
                for n in &nodes {
                    if self.nodes[i].table.heard_about(self.now, n) == HeardOutcome::WorthPinging {
                        self.ping(i, *n, false);
                    }
                }
                match done.payload.purpose {
                    Purpose::Ping { info, bootstrap } => {
                        self.nodes[i].pinging.remove(&info.addr);
                        if bootstrap {
                            let own = self.nodes[i].id;
                            self.start_lookup(i, own, Role::Join);
                        }
                    }
                    Purpose::Lookup { lookup, node } => {
                        if let Some((l, _)) = self.nodes[i].lookups.get_mut(&lookup) {
                            l.on_response(&node, nodes, [], r.token);
                            self.drive(i, lookup);
                        }
                    }
                }
            }
            Body::Error(_) => {
                if let Ok(done) =
                    self.nodes[i]
                        .transactions
                        .on_response(self.now, msg.transaction_id, from)
                {
                    self.failed(i, done.payload.purpose, from);
                }
            }
        }
    }

    fn answer(&self, i: usize, tid: &[u8], from: SocketAddr, query: &Query<'_>) -> Vec<u8> {
        let node = &self.nodes[i];
        let target = match server::needs(query) {
            Needs::Id => None,
            Needs::Nodes(target) | Needs::NodesAndToken(target) => Some(target),
            Needs::Peers(info_hash) => Some(NodeId::from(info_hash)),
            // The simulated nodes store nothing.
            Needs::Store | Needs::MethodUnknown => {
                let mut out = Vec::new();
                server::encode_error(
                    &mut out,
                    tid,
                    from,
                    ErrorCode::MethodUnknown,
                    b"method unknown",
                );
                return out;
            }
        };
        let nodes = target.map_or_else(Vec::new, |t| {
            node.table
                .closest(self.now, &t, crate::K, NodeFilter::NotBad)
        });
        let mut out = Vec::new();
        let answer = server::Answer {
            nodes: &nodes,
            nodes_required: true,
            ..server::Answer::default()
        };
        server::encode_answer(&mut out, tid, node.id, from, answer);
        out
    }

    fn failed(&mut self, i: usize, purpose: Purpose, to: SocketAddr) {
        let now = self.now;
        match purpose {
            Purpose::Ping { info, bootstrap } => {
                let node = &mut self.nodes[i];
                node.pinging.remove(&info.addr);
                node.table.node_failed(now, &info.id, to);
                if bootstrap {
                    // Try another seed.
                    self.join(i);
                }
            }
            Purpose::Lookup { lookup, node } => {
                self.nodes[i].table.node_failed(now, &node, to);
                if let Some((l, _)) = self.nodes[i].lookups.get_mut(&lookup) {
                    l.on_failure(&node);
                    self.drive(i, lookup);
                }
            }
        }
    }

    fn on_wake(&mut self, i: usize) {
        let now = self.now;
        for expired in self.nodes[i].transactions.expire(now) {
            match expired {
                Expired::Retransmit { id, to } => {
                    if let Some(p) = self.nodes[i].transactions.payload(id) {
                        let datagram = p.datagram.clone();
                        self.send(i, to, datagram);
                    }
                }
                Expired::TimedOut { to, payload, .. } => self.failed(i, payload.purpose, to),
            }
        }
        let ids: Vec<u64> = self.nodes[i].lookups.keys().copied().collect();
        for id in ids {
            self.drive(i, id);
        }
        self.arm(i);
    }
}

/// Draws `n` distinct indices below `len`.
pub fn sample_indices(rng: &mut impl RngCore, len: usize, n: usize) -> Vec<usize> {
    let mut picked = BTreeSet::new();
    let mut out = Vec::new();
    while out.len() < n.min(len) {
        let i = (rng.next_u64() % len as u64) as usize;
        if picked.insert(i) {
            out.push(i);
        }
    }
    out
}

/// The result of [`run_lookup_experiment`].
#[derive(Debug, Clone)]
pub struct LookupReport {
    /// Nodes in the network.
    pub nodes: usize,
    /// Datagram loss rate.
    pub loss: f64,
    /// Nodes that completed bootstrap.
    pub joined: usize,
    /// Traffic of the joining phase.
    pub join_traffic: NetStats,
    /// Lookups run.
    pub lookups: usize,
    /// Lookups whose result was exactly the true k closest nodes.
    pub exact: usize,
    /// Hops to the closest responder, per lookup.
    pub hops: Vec<u32>,
    /// Queries sent, per lookup.
    pub queries: Vec<usize>,
    /// Virtual time per lookup.
    pub durations: Vec<Duration>,
}

impl LookupReport {
    /// Fraction of lookups that found the true k closest.
    pub fn success_rate(&self) -> f64 {
        self.exact as f64 / self.lookups.max(1) as f64
    }
}

fn percentile<T: Copy + Ord>(values: &[T], p: f64) -> Option<T> {
    let mut v = values.to_vec();
    v.sort_unstable();
    let idx = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(idx).copied()
}

impl std::fmt::Display for LookupReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let hops: Vec<f64> = self.hops.iter().map(|&h| f64::from(h)).collect();
        let queries: Vec<f64> = self.queries.iter().map(|&q| q as f64).collect();
        writeln!(
            f,
            "simulated DHT: {} nodes, {:.0}% loss, {} joined; join traffic {} datagrams ({} lost)",
            self.nodes,
            self.loss * 100.0,
            self.joined,
            self.join_traffic.sent,
            self.join_traffic.lost
        )?;
        writeln!(
            f,
            "lookups: {} of {} found the true {} closest ({:.1}%)",
            self.exact,
            self.lookups,
            crate::K,
            self.success_rate() * 100.0
        )?;
        writeln!(
            f,
            "hops per lookup: mean {:.2}, median {}, max {}",
            mean(&hops),
            percentile(&self.hops, 0.5).unwrap_or(0),
            self.hops.iter().max().copied().unwrap_or(0)
        )?;
        writeln!(
            f,
            "queries per lookup: mean {:.1}, median {}, p90 {}, max {}",
            mean(&queries),
            percentile(&self.queries, 0.5).unwrap_or(0),
            percentile(&self.queries, 0.9).unwrap_or(0),
            self.queries.iter().max().copied().unwrap_or(0)
        )?;
        write!(
            f,
            "virtual time per lookup: median {:?}, p90 {:?}",
            percentile(&self.durations, 0.5).unwrap_or_default(),
            percentile(&self.durations, 0.9).unwrap_or_default()
        )
    }
}

/// Joins `config.nodes` nodes, lets one round of routine upkeep run (see
/// [`Simulation::run_maintenance_round`]), then runs `lookups` lookups of random
/// targets from random nodes and compares each result with the true k
/// closest (the querying node itself excluded, as a lookup never returns it).
pub fn run_lookup_experiment(epoch: Instant, config: SimConfig, lookups: usize) -> LookupReport {
    let mut sim = Simulation::new(epoch, config.clone());
    sim.join_all();
    let join_traffic = sim.net_stats();
    for _ in 0..config.maintenance_rounds {
        sim.run_maintenance_round();
    }
    let joined = (0..sim.len()).filter(|&i| sim.is_joined(i)).count();
    let mut rng = StdRng::seed_from_u64(config.seed ^ 0x5eed_5eed);
    let mut report = LookupReport {
        nodes: sim.len(),
        loss: config.loss,
        joined,
        join_traffic,
        lookups,
        exact: 0,
        hops: Vec::new(),
        queries: Vec::new(),
        durations: Vec::new(),
    };
    let k = config.lookup.k;
    for _ in 0..lookups {
        let from = rng.random_range(0..sim.len());
        let target = NodeId::random(&mut rng);
        let started = sim.now();
        let outcome = sim.lookup(from, target);
        report.durations.push(sim.now() - started);
        let own = sim.node_id(from);
        let mut expected = sim.true_closest(&target, k + 1);
        expected.retain(|id| *id != own);
        expected.truncate(k);
        let found: Vec<NodeId> = outcome.closest.iter().map(|(n, _)| n.id).collect();
        if found == expected {
            report.exact += 1;
        }
        report.hops.push(outcome.hops);
        report.queries.push(outcome.queries);
    }
    report
}
