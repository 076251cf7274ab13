//! The iterative lookup (BEP 5, Kademlia §2.3) as a state machine.
//!
//! A lookup starts from the closest nodes we know, keeps α queries in
//! flight to the closest it has not heard from (queries to nodes that
//! closer ones superseded stay out and are taken when answered: libtorrent's
//! aggressive lookups; or, as Kademlia, at most α in all), learns closer
//! nodes from each answer, and finishes when the k closest nodes it knows
//! of have all answered or failed. It sends nothing:
//! [`Lookup::poll`] says whom to query next, and the caller reports back with
//! [`Lookup::on_response`] and [`Lookup::on_failure`]. It never queries a
//! node twice; retransmitting a lost datagram is the transaction layer's job.
//!
//! A node that does not answer within the slot timeout stops counting
//! against α, so one slow or dead node does not stall the lookup; an answer
//! that arrives later is still used. The slot timeout is set by the caller
//! from measured round-trip times ([`crate::rtt::RttEstimate`]), within
//! [`LookupConfig::min_query_timeout`] and [`LookupConfig::query_timeout`].
//! Every lookup is bounded in candidates, queries, peers and time.
//!
//! ## Against Sybils
//!
//! Replies name nodes we cannot check, and a Sybil names made-up ids close
//! to the target that point at itself. So:
//! - a reply is credited to the id its sender proves (the `id` in the
//!   reply, from the address asked), not to the id we asked for; a node
//!   that answers under another id is not who we were told it was
//!   ([`LookupOutcome::id_mismatches`]), and one that answers under an id
//!   closer to the target than the one asked for is taken out of the
//!   lookup: that is how a Sybil would take a place in the result;
//! - at most one candidate per address and [`LookupConfig::max_per_prefix`]
//!   per /24 (/64) take part (libtorrent's `restrict_search_ips`), so one
//!   machine or network holds at most that many places in the result;
//! - an address found lying elsewhere is distrusted ([`Lookup::distrust`]):
//!   its candidates leave the lookup and no new one enters;
//! - among responders, ids valid under BEP 42 for their address go first
//!   into the result, where a choice is left (libtorrent's
//!   `prefer_verified_node_ids`): a Sybil cannot choose an id near the
//!   target without an address that hashes near it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::compact::NodeInfo;
use crate::deadline::CachedDeadline;
use crate::id::{bep42, Distance, NodeId};
use crate::ip_prefix::IpPrefix;
use crate::token::Token;
use crate::transactions::MAX_TIMEOUT;

/// Slot timeouts after which a silent node counts as failed in a lookup,
/// whatever the transaction layer still tries: retransmissions go out
/// after the same measured round trips, so three slots see the first two
/// attempts answered or not. Chosen in `sim_hostile` and `sim_lookups`:
/// with 20% dead contacts, waiting for every attempt took a lookup 2.5
/// times as long as in a clean network; three slots keep at least 99% of
/// lookups exact at 5% loss.
pub const FAIL_AFTER_SLOTS: u32 = 3;

/// Lookup parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupConfig {
    /// Results wanted: the lookup ends when this many closest nodes have
    /// answered. Defaults to [`crate::K`] = 8.
    pub k: usize,
    /// Queries in flight at once. Defaults to [`crate::ALPHA`] = 5.
    pub alpha: usize,
    /// Whether α counts only the queries in flight to nodes closer than
    /// the next one to ask (libtorrent's `aggressive_lookups`): an answer
    /// naming closer nodes then sends up to α queries to them at once,
    /// while queries to the nodes it superseded are still out, instead of
    /// one as their slots free. Each step of the lookup so waits for the
    /// fastest of α answers, not for one node's. Defaults to on: in the
    /// simulated Internet (`dhtd sim`, 10^4 nodes) the first peer came
    /// 14% sooner at α = 3, for 17% more queries per lookup.
    pub aggressive: bool,
    /// Time after which an unanswered node counts as failed (a later
    /// answer is still taken), and the longest it holds one of the α
    /// slots. Defaults to 2 seconds.
    pub query_timeout: Duration,
    /// The shortest time a query holds its slot, whatever measured
    /// round-trip times suggest. Defaults to 250 ms.
    pub min_query_timeout: Duration,
    /// At most one candidate per address, and [`Self::max_per_prefix`] per
    /// /24 (/64). Defaults to on.
    pub restrict_ips: bool,
    /// Candidates of one /24 (IPv4) or /64 (IPv6). Defaults to 1.
    pub max_per_prefix: usize,
    /// Known candidates kept (the farthest are dropped). Defaults to 128.
    pub max_candidates: usize,
    /// Queries sent in all. Defaults to 200.
    pub max_queries: usize,
    /// Peers collected (get_peers). Defaults to 2,000.
    pub max_peers: usize,
    /// Total time. Defaults to 60 seconds.
    pub max_duration: Duration,
    /// Whether a query that outlived its slot still holds the lookup's end
    /// until it is answered or fails. When off, a get_peers lookup that
    /// has found peers passes a slow node over like a failed one (its late
    /// answer is still taken while the lookup runs), and ends once the k
    /// closest of the others answered; a lookup without peers still waits.
    /// Defaults to off: in the simulated Internet (`dhtd sim`, 1,000
    /// nodes) it halves the median get_peers lookup (4.7 s to 2.3 s) and
    /// finds the announced peer as often. Lookups that announce wait all
    /// the same (the node's lookup pool).
    pub wait_for_slow: bool,
    /// A get_peers lookup ends once this many nodes answered with peers,
    /// for an application that wants peers rather than the k closest
    /// nodes; 0 runs it to the k closest. Lookups that announce or scrape
    /// run to the end all the same (the node's lookup pool). Defaults to
    /// 0, as other clients run them: in the simulated Internet (`dhtd
    /// sim`, 10^5 nodes) 2 ends the median lookup after 0.55 s instead of
    /// 1.75 s, finding the peer as often, but each holder answers with a
    /// part of a popular torrent's peers, and 2 of them give 2 parts.
    pub enough_holders: usize,
}

impl Default for LookupConfig {
    fn default() -> Self {
        LookupConfig {
            k: crate::K,
            alpha: crate::ALPHA,
            aggressive: true,
            query_timeout: Duration::from_secs(2),
            min_query_timeout: Duration::from_millis(250),
            restrict_ips: true,
            max_per_prefix: 1,
            max_candidates: 128,
            max_queries: 200,
            max_peers: 2000,
            max_duration: Duration::from_secs(60),
            wait_for_slow: false,
            enough_holders: 0,
        }
    }
}

/// What the lookup asks of each node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LookupKind {
    /// `find_node`: nodes close to the target.
    FindNode,
    /// `get_peers`: peers of an info hash, and tokens for announcing.
    GetPeers,
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupStep {
    /// Send a query to this node now.
    Query(NodeInfo),
    /// α queries are in flight: wait for answers or timeouts.
    AtCapacity,
    /// Nothing to send now, but the lookup is not done: wait.
    Waiting,
    /// Done: take the outcome.
    Finished,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    NotContacted,
    /// Asked; failed at `deadline`; holds one of the α slots until `slot`
    /// (`None` once released: slow, but its answer is still awaited).
    Waiting {
        deadline: Instant,
        slot: Option<Instant>,
    },
    Succeeded,
    Failed,
}

#[derive(Debug, Clone)]
struct Candidate {
    info: NodeInfo,
    state: State,
    hop: u32,
    token: Option<Token>,
}

/// The result of a lookup.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LookupOutcome {
    /// Up to k closest nodes that answered, closest first, each with the
    /// token it gave (get_peers).
    pub closest: Vec<(NodeInfo, Option<Token>)>,
    /// Peers found (get_peers), in the order found.
    pub peers: Vec<SocketAddr>,
    /// Queries sent.
    pub queries: usize,
    /// Answers received.
    pub responses: usize,
    /// Nodes that failed or timed out.
    pub failures: usize,
    /// Hops from the seeds to the closest responder (seeds are hop 1).
    pub hops: u32,
    /// Peers ignored as unusable (port 0).
    pub ignored_peers: usize,
    /// Replies whose sender proved another id than the one we asked for.
    pub id_mismatches: usize,
    /// Addresses taken out of the lookup for lying.
    pub distrusted: usize,
    /// Nodes named in replies but kept out: their address or network held
    /// its share already, or was distrusted.
    pub refused: usize,
    /// Why it ended.
    pub end: LookupEnd,
}

/// Why a lookup ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LookupEnd {
    /// The k closest known nodes all answered or failed.
    Converged,
    /// [`LookupConfig::max_queries`] was reached.
    QueryLimit,
    /// [`LookupConfig::max_duration`] passed.
    TimeLimit,
    /// [`LookupConfig::enough_holders`] nodes answered with peers.
    EnoughPeers,
    /// Never started: too many lookups were waiting already.
    Refused,
    /// Not finished yet.
    #[default]
    Running,
}

/// One lookup in progress.
#[derive(Debug, Clone)]
pub struct Lookup {
    target: NodeId,
    kind: LookupKind,
    exclude: Option<NodeId>,
    config: LookupConfig,
    candidates: BTreeMap<Distance, Candidate>,
    in_flight: usize,
    queries: usize,
    responses: usize,
    failures: usize,
    peers: Vec<SocketAddr>,
    peer_set: BTreeSet<SocketAddr>,
    /// Nodes that answered with peers.
    holders: usize,
    ignored_peers: usize,
    id_mismatches: usize,
    distrusted: Vec<IpAddr>,
    refused: usize,
    slot_timeout: Duration,
    fail_timeout: Duration,
    deadline: Instant,
    end: LookupEnd,
    /// [`Self::poll_timeout`], until the lookup next changes.
    next_due: CachedDeadline,
}

impl Lookup {
    /// A lookup of `target`, seeded with nodes we know. `exclude` (our own
    /// id) is never queried.
    pub fn new(
        now: Instant,
        target: NodeId,
        kind: LookupKind,
        exclude: Option<NodeId>,
        seeds: impl IntoIterator<Item = NodeInfo>,
        config: LookupConfig,
    ) -> Self {
        let mut lookup = Lookup {
            target,
            kind,
            exclude,
            config,
            candidates: BTreeMap::new(),
            in_flight: 0,
            queries: 0,
            responses: 0,
            failures: 0,
            peers: Vec::new(),
            peer_set: BTreeSet::new(),
            holders: 0,
            ignored_peers: 0,
            id_mismatches: 0,
            distrusted: Vec::new(),
            refused: 0,
            slot_timeout: config.query_timeout,
            fail_timeout: config.query_timeout,
            deadline: now + config.max_duration,
            end: LookupEnd::Running,
            next_due: CachedDeadline::default(),
        };
        lookup.add_candidates(seeds, 1);
        lookup
    }

    /// The id sought.
    pub fn target(&self) -> NodeId {
        self.target
    }

    /// What is asked of each node.
    pub fn kind(&self) -> LookupKind {
        self.kind
    }

    /// Queries currently holding a slot (never more than α, unless
    /// [`LookupConfig::aggressive`]).
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Whether the lookup has ended.
    pub fn is_finished(&self) -> bool {
        self.end != LookupEnd::Running
    }

    /// Sets how long the next queries hold their slot, within the
    /// configured bounds. Their nodes count as failed when the transaction
    /// layer gives up on them ([`Lookup::on_failure`]), or after
    /// [`FAIL_AFTER_SLOTS`] slot timeouts (at most
    /// [`LookupConfig::query_timeout`]): time for the retransmissions,
    /// which follow the same round trips, to be answered.
    ///
    /// Round trips longer than [`LookupConfig::query_timeout`] (our own
    /// link is slow: every answer takes that long) raise that bound to
    /// them, up to [`MAX_TIMEOUT`]: a lookup that gave up on every node
    /// before its answer came would never end with one.
    pub fn set_query_timeout(&mut self, timeout: Duration) {
        let most = self.config.query_timeout;
        let most = timeout.clamp(most, MAX_TIMEOUT.max(most));
        // Only queries sent later use it: no deadline moves.
        self.slot_timeout = timeout.clamp(self.config.min_query_timeout, most);
        self.fail_timeout = (self.slot_timeout * FAIL_AFTER_SLOTS).min(most);
    }

    /// Whether `info` may join: not distrusted, and within the per-address
    /// and per-network shares (failed candidates hold no share).
    fn admissible(&self, info: &NodeInfo) -> bool {
        let ip = info.addr.ip();
        if self.distrusted.contains(&ip) {
            return false;
        }
        if !self.config.restrict_ips {
            return true;
        }
        let prefix = IpPrefix::of(ip);
        let mut in_prefix = 0;
        for c in self.candidates.values() {
            if c.state == State::Failed {
                continue;
            }
            let other = c.info.addr.ip();
            if other == ip {
                return false;
            }
            in_prefix += usize::from(IpPrefix::of(other) == prefix);
        }
        in_prefix < self.config.max_per_prefix
    }

    fn add_candidates(&mut self, nodes: impl IntoIterator<Item = NodeInfo>, hop: u32) {
        for info in nodes {
            if Some(info.id) == self.exclude {
                continue;
            }
            let d = self.target.distance(&info.id);
            if self.candidates.contains_key(&d) {
                continue;
            }
            if !self.admissible(&info) {
                self.refused += 1;
                continue;
            }
            self.candidates.insert(
                d,
                Candidate {
                    info,
                    state: State::NotContacted,
                    hop,
                    token: None,
                },
            );
        }
        // Drop the farthest candidates not in flight or answered.
        while self.candidates.len() > self.config.max_candidates {
            let victim = self
                .candidates
                .iter()
                .rev()
                .find(|(_, c)| matches!(c.state, State::NotContacted | State::Failed))
                .map(|(d, _)| *d);
            match victim {
                Some(d) => {
                    self.candidates.remove(&d);
                }
                None => break,
            }
        }
    }

    /// Takes every candidate at `ip` out of the lookup, answered or not, and
    /// keeps new ones out: the address was caught lying.
    pub fn distrust(&mut self, ip: IpAddr) {
        self.next_due.forget();
        if self.distrusted.contains(&ip) {
            return;
        }
        self.distrusted.push(ip);
        for c in self.candidates.values_mut() {
            if c.info.addr.ip() != ip {
                continue;
            }
            match c.state {
                State::Waiting { slot, .. } => {
                    self.in_flight -= usize::from(slot.is_some());
                    self.failures += 1;
                }
                State::Succeeded | State::NotContacted => self.failures += 1,
                State::Failed => {}
            }
            c.state = State::Failed;
        }
    }

    /// Marks the candidate at `d` failed, if it was waiting.
    fn fail(&mut self, d: &Distance) {
        if let Some(c) = self.candidates.get_mut(d) {
            if let State::Waiting { slot, .. } = c.state {
                c.state = State::Failed;
                self.in_flight -= usize::from(slot.is_some());
                self.failures += 1;
            }
        }
    }

    /// The node we asked as `asked` answered as `replied`. `nodes` are the
    /// closer nodes it returned, `peers` the `values` (get_peers), `token`
    /// its write token. The answer is credited to `replied`, the id the
    /// sender proves: when it differs, the candidate we asked for fails and
    /// the sender takes part under its own id. Returns the peers not seen
    /// before in this lookup.
    pub fn on_response(
        &mut self,
        asked: &NodeId,
        replied: &NodeId,
        nodes: impl IntoIterator<Item = NodeInfo>,
        peers: impl IntoIterator<Item = SocketAddr>,
        token: Option<&[u8]>,
    ) -> Vec<SocketAddr> {
        self.next_due.forget();
        let asked_at = self.target.distance(asked);
        let Some(c) = self.candidates.get(&asked_at) else {
            return Vec::new();
        };
        if replied != asked {
            let info = NodeInfo {
                id: *replied,
                addr: c.info.addr,
            };
            let hop = c.hop;
            if matches!(c.state, State::NotContacted | State::Succeeded) {
                return Vec::new();
            }
            self.id_mismatches += 1;
            self.fail(&asked_at);
            if self.target.distance(replied) < asked_at {
                // It claims to be closer than it was said to be: the lie a
                // Sybil tells to take a place in the result. Nothing it
                // says is used, and it leaves the lookup.
                self.distrust(info.addr.ip());
                return Vec::new();
            }
            // Not who it was said to be (a restart under a new id); as
            // itself, it joins like a node asked by address.
            return match self.join_answered(info, hop) {
                Some(at) => self.credit(&at, nodes, peers, token),
                None => Vec::new(),
            };
        }
        self.credit(&asked_at, nodes, peers, token)
    }

    fn credit(
        &mut self,
        at: &Distance,
        nodes: impl IntoIterator<Item = NodeInfo>,
        peers: impl IntoIterator<Item = SocketAddr>,
        token: Option<&[u8]>,
    ) -> Vec<SocketAddr> {
        let Some(c) = self.candidates.get_mut(at) else {
            return Vec::new();
        };
        match c.state {
            State::Succeeded | State::NotContacted => return Vec::new(),
            State::Waiting { slot, .. } => self.in_flight -= usize::from(slot.is_some()),
            // A late answer after a timeout still counts.
            State::Failed => {
                if self.distrusted.contains(&c.info.addr.ip()) {
                    return Vec::new();
                }
                self.failures -= 1
            }
        }
        c.state = State::Succeeded;
        c.token = token.and_then(Token::new);
        let sender = c.info;
        let hop = c.hop + 1;
        self.responses += 1;
        let nodes: Vec<NodeInfo> = nodes.into_iter().collect();
        // (Only where one node per address is the rule: nodes sharing one
        // address, as on IPv6 loopback, name each other honestly.)
        if self.config.restrict_ips
            && nodes
                .iter()
                .any(|n| n.addr.ip() == sender.addr.ip() && n.id != sender.id)
        {
            // A node names others at its own address: made-up ids pointing
            // at itself, a Sybil's way into the result. An honest node
            // never names itself, let alone under other ids.
            self.distrust(sender.addr.ip());
            return Vec::new();
        }
        if !self.is_finished() {
            // A reply should carry the k closest nodes it knows; some clients
            // send their whole table. Only the k closest of it are taken, so
            // that one reply cannot fill the lookup with nodes to time out on.
            let target = self.target;
            let mut nodes = nodes;
            if nodes.len() > self.config.k {
                nodes.select_nth_unstable_by_key(self.config.k - 1, |n| target.distance(&n.id));
                nodes.truncate(self.config.k);
            }
            self.add_candidates(nodes, hop);
        }
        let (fresh, usable) = self.take_peers(peers);
        self.holders += usize::from(usable);
        fresh
    }

    /// Peers learned outside a node's answer (our own store's): returns
    /// those not seen before in this lookup. Port 0 is ignored and counted.
    pub fn add_peers(&mut self, peers: impl IntoIterator<Item = SocketAddr>) -> Vec<SocketAddr> {
        self.take_peers(peers).0
    }

    /// [`Self::add_peers`], and whether any of `peers` was usable (a node
    /// that answered with one holds the info hash).
    fn take_peers(
        &mut self,
        peers: impl IntoIterator<Item = SocketAddr>,
    ) -> (Vec<SocketAddr>, bool) {
        self.next_due.forget();
        let mut fresh = Vec::new();
        let mut usable = false;
        for p in peers {
            if p.port() == 0 {
                self.ignored_peers += 1;
                continue;
            }
            usable = true;
            if self.peer_set.len() < self.config.max_peers && self.peer_set.insert(p) {
                self.peers.push(p);
                fresh.push(p);
            }
        }
        (fresh, usable)
    }

    /// A node we asked before the lookup knew its id (a router, a node
    /// added by address) answered: it joins the lookup as a responder, and
    /// the nodes it returned become candidates. Call before the first
    /// [`Lookup::poll`].
    pub fn add_responder(
        &mut self,
        info: NodeInfo,
        nodes: impl IntoIterator<Item = NodeInfo>,
        peers: impl IntoIterator<Item = SocketAddr>,
        token: Option<&[u8]>,
    ) -> Vec<SocketAddr> {
        self.next_due.forget();
        if Some(info.id) == self.exclude {
            return Vec::new();
        }
        self.add_candidates([info], 1);
        let d = self.target.distance(&info.id);
        if let Some(c) = self.candidates.get_mut(&d) {
            if c.state == State::NotContacted {
                c.state = State::Waiting {
                    deadline: self.deadline,
                    slot: Some(self.deadline),
                };
                self.in_flight += 1;
                self.queries += 1;
            }
        }
        self.on_response(&info.id, &info.id, nodes, peers, token)
    }

    /// A node that answered under another id than the one it was asked as
    /// joins under its own, as if asked; returns where, unless it may not
    /// join (our own id, its address's or network's share taken) or its id
    /// is known already.
    fn join_answered(&mut self, info: NodeInfo, hop: u32) -> Option<Distance> {
        self.add_candidates([info], hop);
        let at = self.target.distance(&info.id);
        let c = self.candidates.get_mut(&at)?;
        if c.info.addr != info.addr || c.state != State::NotContacted {
            return None;
        }
        c.state = State::Waiting {
            deadline: self.deadline,
            slot: Some(self.deadline),
        };
        self.in_flight += 1;
        Some(at)
    }

    /// A query failed: an error reply, a timeout reported by the caller, or
    /// a send that could not be made.
    pub fn on_failure(&mut self, from: &NodeId) {
        self.next_due.forget();
        let d = self.target.distance(from);
        self.fail(&d);
    }

    /// The query to `node` goes out only at `until` (the pacer's spacing
    /// rule): its failure and slot times count from then.
    pub fn delayed(&mut self, node: &NodeId, until: Instant) {
        self.next_due.forget();
        let d = self.target.distance(node);
        if let Some(c) = self.candidates.get_mut(&d) {
            if let State::Waiting { deadline, slot } = &mut c.state {
                *deadline = until + self.fail_timeout;
                if slot.is_some() {
                    *slot = Some(until + self.slot_timeout);
                }
            }
        }
    }

    /// Advances the lookup: returns at most one node to query now.
    pub fn poll(&mut self, now: Instant) -> LookupStep {
        self.next_due.forget();
        if self.is_finished() {
            return LookupStep::Finished;
        }
        if now >= self.deadline {
            return self.finish(LookupEnd::TimeLimit);
        }
        let enough = self.config.enough_holders;
        if enough > 0 && self.holders >= enough {
            return self.finish(LookupEnd::EnoughPeers);
        }
        let mut awaited = false;
        for c in self.candidates.values_mut() {
            if let State::Waiting { deadline, slot } = &mut c.state {
                if *deadline <= now {
                    self.in_flight -= usize::from(slot.is_some());
                    self.failures += 1;
                    c.state = State::Failed;
                } else {
                    awaited = true;
                    if slot.is_some_and(|until| until <= now) {
                        // Slow: its slot goes to the next candidate.
                        *slot = None;
                        self.in_flight -= 1;
                    }
                }
            }
        }
        let budget_left = self.queries < self.config.max_queries;
        // The slots taken, given those held by queries to nodes closer than
        // the candidate at hand.
        let (aggressive, in_flight) = (self.config.aggressive, self.in_flight);
        let holding = |ahead: usize| if aggressive { ahead } else { in_flight };
        let mut ahead = 0;
        let mut counted = 0;
        let mut pending = false;
        for c in self.candidates.values_mut() {
            match c.state {
                State::Failed => continue,
                State::Succeeded => {}
                // Passed over only once peers are in hand: a lookup that has
                // none yet may be waiting on the very nodes that hold them.
                State::Waiting { slot: None, .. }
                    if !self.config.wait_for_slow && !self.peers.is_empty() =>
                {
                    continue
                }
                State::Waiting { slot, .. } => {
                    pending = true;
                    ahead += usize::from(slot.is_some());
                }
                State::NotContacted if budget_left && holding(ahead) < self.config.alpha => {
                    c.state = State::Waiting {
                        deadline: now + self.fail_timeout,
                        slot: Some(now + self.slot_timeout),
                    };
                    self.in_flight += 1;
                    self.queries += 1;
                    return LookupStep::Query(c.info);
                }
                State::NotContacted => pending = true,
            }
            counted += 1;
            if counted >= self.config.k {
                break;
            }
        }
        if !pending {
            return self.finish(LookupEnd::Converged);
        }
        if !awaited {
            // Work remains but no query may be sent: the query budget is spent.
            return self.finish(LookupEnd::QueryLimit);
        }
        if holding(ahead) >= self.config.alpha {
            LookupStep::AtCapacity
        } else {
            LookupStep::Waiting
        }
    }

    fn finish(&mut self, end: LookupEnd) -> LookupStep {
        self.end = end;
        LookupStep::Finished
    }

    /// When [`Lookup::poll`] should next be called if nothing arrives.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_due.get_or(|| self.scan_deadlines())
    }

    fn scan_deadlines(&self) -> Option<Instant> {
        if self.is_finished() {
            return None;
        }
        self.candidates
            .values()
            .filter_map(|c| match c.state {
                State::Waiting { deadline, slot } => {
                    Some(slot.map_or(deadline, |s| s.min(deadline)))
                }
                _ => None,
            })
            .chain(std::iter::once(self.deadline))
            .min()
    }

    /// Progress so far: queries sent, answers received, and the distance of
    /// the closest node that answered (for a progress display).
    pub fn progress(&self) -> (usize, usize, Option<Distance>) {
        let closest = self
            .candidates
            .iter()
            .find(|(_, c)| c.state == State::Succeeded)
            .map(|(d, _)| *d);
        (self.queries, self.responses, closest)
    }

    /// The result so far (final once [`Lookup::poll`] returned `Finished`).
    pub fn outcome(&self) -> LookupOutcome {
        // The 2k closest responders, those with BEP 42-valid ids first,
        // then the k closest of that order, closest first.
        let k = self.config.k;
        let mut closest: Vec<&Candidate> = self
            .candidates
            .values()
            .filter(|c| c.state == State::Succeeded)
            .take(2 * k)
            .collect();
        closest.sort_by_key(|c| !bep42::is_valid(&c.info.id, c.info.addr.ip()));
        closest.truncate(k);
        closest.sort_by_key(|c| self.target.distance(&c.info.id));
        LookupOutcome {
            hops: closest.first().map_or(0, |c| c.hop),
            closest: closest.iter().map(|c| (c.info, c.token)).collect(),
            peers: self.peers.clone(),
            queries: self.queries,
            responses: self.responses,
            failures: self.failures,
            ignored_peers: self.ignored_peers,
            id_mismatches: self.id_mismatches,
            distrusted: self.distrusted.len(),
            refused: self.refused,
            end: self.end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn lookup(t0: Instant, rng: &mut StdRng, seeds: Vec<NodeInfo>, config: LookupConfig) -> Lookup {
        Lookup::new(
            t0,
            NodeId::random(rng),
            LookupKind::FindNode,
            None,
            seeds,
            config,
        )
    }

    /// Kademlia's three slots, each query holding one wherever its node
    /// stands: the slot rules, seen one at a time.
    fn three_slots() -> LookupConfig {
        LookupConfig {
            alpha: 3,
            aggressive: false,
            ..LookupConfig::default()
        }
    }

    /// Each node on its own address and /24.
    fn node(id: NodeId, n: u16) -> NodeInfo {
        NodeInfo {
            id,
            addr: SocketAddr::from(([127, (n >> 8) as u8, n as u8, 1], n)),
        }
    }

    #[test]
    fn an_oversized_reply_adds_only_its_k_closest_nodes() {
        let t0 = crate::test_epoch();
        let mut rng = StdRng::seed_from_u64(9);
        let seed = node(NodeId::random(&mut rng), 1);
        let mut l = lookup(t0, &mut rng, vec![seed], LookupConfig::default());
        assert_eq!(l.poll(t0), LookupStep::Query(seed));
        let many: Vec<NodeInfo> = (0..150)
            .map(|i| node(NodeId::random(&mut rng), 100 + i))
            .collect();
        let mut closest = many.clone();
        closest.sort_by_key(|n| l.target().distance(&n.id));
        l.on_response(&seed.id, &seed.id, many, [], None);
        let mut asked = Vec::new();
        while let LookupStep::Query(n) = l.poll(t0) {
            asked.push(n);
            l.on_failure(&n.id);
        }
        assert_eq!(
            asked.len(),
            crate::K,
            "only the k closest of the 150 were taken"
        );
        assert!(asked.iter().all(|n| closest[..crate::K].contains(n)));
    }

    /// A query the pacer holds back (the spacing rule) times out from when
    /// it goes out: a lookup right after another of the same target does
    /// not end at once with every node counted failed.
    #[test]
    fn a_delayed_query_times_out_from_when_it_is_sent() {
        let t0 = crate::test_epoch();
        let mut rng = StdRng::seed_from_u64(3);
        let seed = node(NodeId::random(&mut rng), 1);
        let mut l = lookup(t0, &mut rng, vec![seed], LookupConfig::default());
        assert_eq!(l.poll(t0), LookupStep::Query(seed));
        let sent_at = t0 + Duration::from_millis(900);
        l.delayed(&seed.id, sent_at);
        // Past the timeout counted from the ask, within the one counted
        // from the send: still waiting on it.
        let check = t0 + Duration::from_millis(2500);
        assert_ne!(l.poll(check), LookupStep::Finished);
        l.on_response(&seed.id, &seed.id, [], [], None);
        assert_eq!(l.poll(check), LookupStep::Finished);
        assert_eq!(l.outcome().responses, 1);
        // Without the delay the same lookup fails the node at that time.
        let mut rng = StdRng::seed_from_u64(3);
        let mut plain = lookup(t0, &mut rng, vec![seed], LookupConfig::default());
        assert_eq!(plain.poll(t0), LookupStep::Query(seed));
        assert_eq!(plain.poll(check), LookupStep::Finished);
        assert_eq!(plain.outcome().responses, 0);
    }

    #[test]
    fn keeps_alpha_in_flight_and_times_out_slow_nodes() {
        let t0 = crate::test_epoch();
        let mut rng = StdRng::seed_from_u64(1);
        let seeds: Vec<_> = (0..5).map(|n| node(NodeId::random(&mut rng), n)).collect();
        let mut l = lookup(t0, &mut rng, seeds, three_slots());
        let mut sent = Vec::new();
        while let LookupStep::Query(n) = l.poll(t0) {
            sent.push(n);
        }
        assert_eq!(sent.len(), 3);
        assert_eq!(l.poll(t0), LookupStep::AtCapacity);
        // Nobody answers: after the timeout the slots free up for the rest.
        let later = t0 + Duration::from_secs(2);
        let mut more = Vec::new();
        while let LookupStep::Query(n) = l.poll(later) {
            more.push(n);
        }
        assert_eq!(more.len(), 2);
        assert!(more.iter().all(|n| !sent.contains(n)));
        // A late answer from a timed-out node is still taken.
        l.on_response(&sent[0].id, &sent[0].id, [], [], Some(b"tok"));
        l.on_failure(&more[0].id);
        l.on_failure(&more[1].id);
        assert_eq!(l.poll(later), LookupStep::Finished);
        let out = l.outcome();
        assert_eq!(out.end, LookupEnd::Converged);
        assert_eq!(out.closest.len(), 1);
        assert_eq!(out.closest[0].1.unwrap().as_bytes(), b"tok");
        assert_eq!(out.queries, 5);
        assert_eq!(out.failures, 4);
    }

    /// An answer naming nodes closer than every query in flight: the strict
    /// rule sends one query (the answered slot), the aggressive one keeps α
    /// in flight ahead of the superseded queries, and neither sends more
    /// once α of the closest are out.
    #[test]
    fn aggressive_lookups_keep_alpha_in_flight_at_the_top() {
        let t0 = crate::test_epoch();
        for aggressive in [false, true] {
            let mut rng = StdRng::seed_from_u64(4);
            let target = NodeId::random(&mut rng);
            let far: Vec<_> = (0..3)
                .map(|n| node(target.random_at_prefix(2, false, &mut rng), n))
                .collect();
            let near: Vec<_> = (0..4)
                .map(|n| node(target.random_at_prefix(20, false, &mut rng), 10 + n))
                .collect();
            let config = LookupConfig {
                aggressive,
                ..three_slots()
            };
            let mut l = Lookup::new(t0, target, LookupKind::FindNode, None, far.clone(), config);
            let mut sent = Vec::new();
            while let LookupStep::Query(n) = l.poll(t0) {
                sent.push(n);
            }
            assert_eq!(sent.len(), 3);
            l.on_response(&far[0].id, &far[0].id, near.clone(), [], None);
            let mut next = Vec::new();
            while let LookupStep::Query(n) = l.poll(t0) {
                next.push(n);
            }
            assert_eq!(l.poll(t0), LookupStep::AtCapacity);
            assert!(next.iter().all(|n| near.contains(n)));
            if aggressive {
                assert_eq!(next.len(), 3, "α queries to the closer nodes");
                assert_eq!(l.in_flight(), 5, "the superseded two still out");
            } else {
                assert_eq!(next.len(), 1, "one slot freed, one query");
                assert_eq!(l.in_flight(), 3);
            }
        }
    }

    #[test]
    fn collects_new_peers_once_and_ignores_port_zero() {
        let t0 = crate::test_epoch();
        let mut rng = StdRng::seed_from_u64(2);
        let a = node(NodeId::random(&mut rng), 1);
        let mut l = Lookup::new(
            t0,
            NodeId::random(&mut rng),
            LookupKind::GetPeers,
            None,
            [a],
            LookupConfig::default(),
        );
        assert_eq!(l.poll(t0), LookupStep::Query(a));
        let p1: SocketAddr = "10.0.0.1:6881".parse().unwrap();
        let p0: SocketAddr = "10.0.0.2:0".parse().unwrap();
        let fresh = l.on_response(&a.id, &a.id, [], [p1, p1, p0], None);
        assert_eq!(fresh, vec![p1]);
        // A duplicate answer is ignored.
        assert!(l.on_response(&a.id, &a.id, [], [p1], None).is_empty());
        assert_eq!(l.poll(t0), LookupStep::Finished);
        assert_eq!(l.outcome().peers, vec![p1]);
        assert_eq!(l.outcome().ignored_peers, 1);
    }

    /// With `enough_holders`, a get_peers lookup ends once that many nodes
    /// answered with peers (port 0 alone does not count), though closer
    /// nodes are still to be asked; without it, it runs on to the k
    /// closest.
    #[test]
    fn enough_holders_end_a_get_peers_lookup_early() {
        let t0 = crate::test_epoch();
        let peer: SocketAddr = "10.0.0.1:6881".parse().unwrap();
        let unusable: SocketAddr = "10.0.0.2:0".parse().unwrap();
        for enough_holders in [0, 2] {
            let mut rng = StdRng::seed_from_u64(4);
            let seeds: Vec<NodeInfo> = (0..12).map(|n| node(NodeId::random(&mut rng), n)).collect();
            let config = LookupConfig {
                enough_holders,
                ..LookupConfig::default()
            };
            let target = NodeId::random(&mut rng);
            let mut l = Lookup::new(t0, target, LookupKind::GetPeers, None, seeds, config);
            let asked: Vec<NodeInfo> = std::iter::from_fn(|| match l.poll(t0) {
                LookupStep::Query(n) => Some(n),
                _ => None,
            })
            .collect();
            assert_eq!(asked.len(), config.alpha);
            l.on_response(&asked[0].id, &asked[0].id, [], [unusable], None);
            l.on_response(&asked[1].id, &asked[1].id, [], [peer], None);
            assert!(matches!(l.poll(t0), LookupStep::Query(_)), "one holder");
            l.on_response(&asked[2].id, &asked[2].id, [], [peer], None);
            let step = l.poll(t0);
            if enough_holders == 0 {
                assert!(matches!(step, LookupStep::Query(_)), "on to the k closest");
            } else {
                assert_eq!(step, LookupStep::Finished);
                assert_eq!(l.outcome().end, LookupEnd::EnoughPeers);
                assert_eq!(l.outcome().peers, vec![peer]);
            }
        }
    }

    #[test]
    fn never_queries_the_excluded_id_and_ends_without_seeds() {
        let t0 = crate::test_epoch();
        let own = NodeId([1; 20]);
        let mut l = Lookup::new(
            t0,
            NodeId([2; 20]),
            LookupKind::FindNode,
            Some(own),
            [node(own, 1)],
            LookupConfig::default(),
        );
        assert_eq!(l.poll(t0), LookupStep::Finished);
        assert_eq!(l.outcome().queries, 0);
    }

    #[test]
    fn bounded_in_time_and_queries() {
        let t0 = crate::test_epoch();
        let mut rng = StdRng::seed_from_u64(3);
        let cfg = LookupConfig {
            max_queries: 2,
            ..Default::default()
        };
        let seeds: Vec<_> = (0..5).map(|n| node(NodeId::random(&mut rng), n)).collect();
        let mut l = lookup(t0, &mut rng, seeds.clone(), cfg);
        let (LookupStep::Query(a), LookupStep::Query(b)) = (l.poll(t0), l.poll(t0)) else {
            panic!("expected two queries")
        };
        assert_eq!(l.poll(t0), LookupStep::Waiting);
        l.on_failure(&a.id);
        l.on_failure(&b.id);
        assert_eq!(l.poll(t0), LookupStep::Finished);
        assert_eq!(l.outcome().end, LookupEnd::QueryLimit);

        let mut l = lookup(t0, &mut rng, seeds, LookupConfig::default());
        assert!(matches!(l.poll(t0), LookupStep::Query(_)));
        assert_eq!(l.poll(t0 + Duration::from_secs(61)), LookupStep::Finished);
        assert_eq!(l.outcome().end, LookupEnd::TimeLimit);
        assert_eq!(l.poll_timeout(), None);
    }

    fn at(id: NodeId, ip: [u8; 4]) -> NodeInfo {
        NodeInfo {
            id,
            addr: SocketAddr::from((ip, 6881)),
        }
    }

    /// One place per address, and one per /24 by default.
    #[test]
    fn one_candidate_per_address_and_per_network() {
        let t0 = crate::test_epoch();
        let target = NodeId([0; 20]);
        let near = |b: u8| NodeId([b; 20]);
        let seeds = [
            at(near(1), [192, 0, 2, 1]),
            at(near(2), [192, 0, 2, 1]),
            at(near(3), [192, 0, 2, 9]),
            at(near(4), [198, 51, 100, 1]),
        ];
        let mut l = Lookup::new(
            t0,
            target,
            LookupKind::FindNode,
            None,
            seeds,
            LookupConfig::default(),
        );
        let mut asked = Vec::new();
        while let LookupStep::Query(n) = l.poll(t0) {
            asked.push(n);
        }
        assert_eq!(asked, [seeds[0], seeds[3]]);
        let loose = LookupConfig {
            max_per_prefix: 2,
            ..LookupConfig::default()
        };
        let mut l = Lookup::new(t0, target, LookupKind::FindNode, None, seeds, loose);
        let mut asked = Vec::new();
        while let LookupStep::Query(n) = l.poll(t0) {
            asked.push(n);
        }
        assert_eq!(asked, [seeds[0], seeds[2], seeds[3]]);
    }

    /// A reply counts for the id its sender proves. Under a farther id it
    /// joins as itself (a restart); under a closer one (a Sybil's claim)
    /// it is taken out of the lookup.
    #[test]
    fn replies_are_credited_to_the_proven_id_and_closer_claims_are_refused() {
        let t0 = crate::test_epoch();
        let target = NodeId([0; 20]);
        let a = at(NodeId([0x10; 20]), [192, 0, 2, 1]);
        let b = at(NodeId([0x20; 20]), [198, 51, 100, 1]);
        let mut l = Lookup::new(
            t0,
            target,
            LookupKind::FindNode,
            None,
            [a, b],
            LookupConfig::default(),
        );
        assert_eq!(l.poll(t0), LookupStep::Query(a));
        assert_eq!(l.poll(t0), LookupStep::Query(b));
        // `a` answers as a farther id: credited as that id.
        let restarted = NodeId([0x30; 20]);
        l.on_response(&a.id, &restarted, [], [], None);
        // `b` answers as a much closer id, naming a made-up node.
        let claimed = NodeId([0x01; 20]);
        let bait = at(NodeId([0x02; 20]), [203, 0, 113, 1]);
        l.on_response(&b.id, &claimed, [bait], [], None);
        assert_eq!(l.poll(t0), LookupStep::Finished);
        let out = l.outcome();
        let ids: Vec<NodeId> = out.closest.iter().map(|(n, _)| n.id).collect();
        assert_eq!(ids, [restarted]);
        assert_eq!(out.id_mismatches, 2);
        assert_eq!(out.distrusted, 1);
    }

    /// A node that names others at its own address is lying about them.
    #[test]
    fn a_reply_naming_made_up_nodes_at_its_own_address_is_dropped() {
        let t0 = crate::test_epoch();
        let target = NodeId([0; 20]);
        let sybil = at(NodeId([0x40; 20]), [192, 0, 2, 1]);
        let honest = at(NodeId([0x50; 20]), [198, 51, 100, 1]);
        let mut l = Lookup::new(
            t0,
            target,
            LookupKind::FindNode,
            None,
            [sybil, honest],
            LookupConfig::default(),
        );
        l.poll(t0);
        l.poll(t0);
        let fakes: Vec<NodeInfo> = (1..=8u8)
            .map(|i| at(NodeId([i; 20]), [192, 0, 2, 1]))
            .collect();
        l.on_response(&sybil.id, &sybil.id, fakes, [], Some(b"t"));
        l.on_response(&honest.id, &honest.id, [], [], Some(b"t"));
        assert_eq!(l.poll(t0), LookupStep::Finished);
        let out = l.outcome();
        assert_eq!(out.closest.len(), 1);
        assert_eq!(out.closest[0].0, honest);
        assert_eq!(out.distrusted, 1);
    }

    /// With measured round trips, a silent node gives up its slot after the
    /// slot timeout, and counts as failed when the transaction layer gives
    /// up on it or after three slot timeouts; a late answer is still taken.
    #[test]
    fn slow_nodes_give_up_their_slot_early_and_dead_ones_fail_soon() {
        let t0 = crate::test_epoch();
        let mut rng = StdRng::seed_from_u64(11);
        let seeds: Vec<_> = (0..5).map(|n| node(NodeId::random(&mut rng), n)).collect();
        let waiting = LookupConfig {
            wait_for_slow: true,
            ..three_slots()
        };
        let mut l = lookup(t0, &mut rng, seeds, waiting);
        l.set_query_timeout(Duration::from_millis(300));
        let mut first = Vec::new();
        while let LookupStep::Query(n) = l.poll(t0) {
            first.push(n);
        }
        assert_eq!(first.len(), 3);
        let slot_freed = t0 + Duration::from_millis(300);
        let mut second = Vec::new();
        while let LookupStep::Query(n) = l.poll(slot_freed) {
            second.push(n);
        }
        assert_eq!(second.len(), 2, "the slow ones' slots went to the rest");
        assert_eq!(l.in_flight(), 2);
        l.on_response(&first[0].id, &first[0].id, [], [], None);
        assert_eq!(l.poll(slot_freed), LookupStep::Waiting);
        for n in &second {
            l.on_response(&n.id, &n.id, [], [], None);
        }
        // Still waiting for the two silent ones: one the transaction layer
        // gives up on, the other until three slot timeouts have passed.
        assert_eq!(l.poll(t0 + Duration::from_millis(800)), LookupStep::Waiting);
        l.on_failure(&first[1].id);
        assert_eq!(l.poll(t0 + Duration::from_millis(800)), LookupStep::Waiting);
        assert_eq!(
            l.poll(t0 + Duration::from_millis(900)),
            LookupStep::Finished
        );
        let out = l.outcome();
        assert_eq!(out.end, LookupEnd::Converged);
        assert_eq!(out.responses, 3);
        assert_eq!(out.failures, 2);
    }

    /// The default: once the others answered and peers are in hand, two
    /// silent nodes past their slot do not hold the end; without peers
    /// they do.
    #[test]
    fn by_default_slow_nodes_do_not_hold_the_end() {
        let t0 = crate::test_epoch();
        let slot_freed = t0 + Duration::from_millis(300);
        let run = |peer: Option<SocketAddr>| {
            let mut rng = StdRng::seed_from_u64(11);
            let seeds: Vec<_> = (0..5).map(|n| node(NodeId::random(&mut rng), n)).collect();
            let mut l = lookup(t0, &mut rng, seeds, three_slots());
            l.set_query_timeout(Duration::from_millis(300));
            let mut first = Vec::new();
            while let LookupStep::Query(n) = l.poll(t0) {
                first.push(n);
            }
            l.on_response(&first[0].id, &first[0].id, [], [], None);
            let mut second = Vec::new();
            while let LookupStep::Query(n) = l.poll(slot_freed) {
                second.push(n);
            }
            assert_eq!(second.len(), 2);
            // A slow node answering while the lookup runs still counts.
            l.on_response(&first[1].id, &first[1].id, [], [], None);
            assert_eq!(
                l.poll(slot_freed),
                LookupStep::Waiting,
                "the second round is out"
            );
            for n in &second {
                l.on_response(&n.id, &n.id, [], peer, None);
            }
            (l.poll(slot_freed), l.outcome())
        };
        let peer: SocketAddr = "192.0.2.9:6881".parse().unwrap();
        let (step, out) = run(Some(peer));
        assert_eq!(
            step,
            LookupStep::Finished,
            "peers in hand: first[2] is passed over"
        );
        assert_eq!(out.end, LookupEnd::Converged);
        assert_eq!(out.responses, 4);
        let (step, _) = run(None);
        assert_eq!(
            step,
            LookupStep::Waiting,
            "no peers yet: first[2] may hold them"
        );
    }
}
