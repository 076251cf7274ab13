//! The iterative lookup (BEP 5, Kademlia §2.3) as a state machine.
//!
//! A lookup starts from the closest nodes we know, keeps at most α queries
//! in flight, learns closer nodes from each answer, and finishes when the k
//! closest nodes it knows of have all answered or failed. It sends nothing:
//! [`Lookup::poll`] says whom to query next, and the caller reports back with
//! [`Lookup::on_response`] and [`Lookup::on_failure`]. It never queries a
//! node twice; retransmitting a lost datagram is the transaction layer's job.
//!
//! A node that does not answer within [`LookupConfig::query_timeout`] stops
//! counting against α, so one slow node does not stall the lookup; an answer
//! that arrives later is still used. Every lookup is bounded in candidates,
//! queries, peers and time.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::compact::NodeInfo;
use crate::id::{Distance, NodeId};
use crate::token::Token;

/// Lookup parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupConfig {
    /// Results wanted: the lookup ends when this many closest nodes have
    /// answered. Defaults to [`crate::K`] = 8.
    pub k: usize,
    /// Queries in flight at once. Defaults to [`crate::ALPHA`] = 3.
    pub alpha: usize,
    /// Time after which an unanswered query no longer holds a slot and its
    /// node counts as failed. Defaults to 2 seconds.
    pub query_timeout: Duration,
    /// Known candidates kept (the farthest are dropped). Defaults to 128.
    pub max_candidates: usize,
    /// Queries sent in all. Defaults to 200.
    pub max_queries: usize,
    /// Peers collected (get_peers). Defaults to 2,000.
    pub max_peers: usize,
    /// Total time. Defaults to 60 seconds.
    pub max_duration: Duration,
}

impl Default for LookupConfig {
    fn default() -> Self {
        LookupConfig {
            k: crate::K,
            alpha: crate::ALPHA,
            query_timeout: Duration::from_secs(2),
            max_candidates: 128,
            max_queries: 200,
            max_peers: 2000,
            max_duration: Duration::from_secs(60),
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
    Waiting { deadline: Instant },
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
    ignored_peers: usize,
    deadline: Instant,
    end: LookupEnd,
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
            ignored_peers: 0,
            deadline: now + config.max_duration,
            end: LookupEnd::Running,
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

    /// Queries currently in flight (never more than α).
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Whether the lookup has ended.
    pub fn is_finished(&self) -> bool {
        self.end != LookupEnd::Running
    }

    fn add_candidates(&mut self, nodes: impl IntoIterator<Item = NodeInfo>, hop: u32) {
        for info in nodes {
            if Some(info.id) == self.exclude {
                continue;
            }
            let d = self.target.distance(&info.id);
            self.candidates.entry(d).or_insert(Candidate {
                info,
                state: State::NotContacted,
                hop,
                token: None,
            });
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

    /// A node answered. `nodes` are the closer nodes it returned, `peers`
    /// the `values` (get_peers), `token` its write token. Returns the peers
    /// not seen before in this lookup.
    pub fn on_response(
        &mut self,
        from: &NodeId,
        nodes: impl IntoIterator<Item = NodeInfo>,
        peers: impl IntoIterator<Item = SocketAddr>,
        token: Option<&[u8]>,
    ) -> Vec<SocketAddr> {
        let d = self.target.distance(from);
        let Some(c) = self.candidates.get_mut(&d) else {
            return Vec::new();
        };
        match c.state {
            State::Succeeded | State::NotContacted => return Vec::new(),
            State::Waiting { .. } => self.in_flight -= 1,
            // A late answer after a timeout still counts.
            State::Failed => self.failures -= 1,
        }
        c.state = State::Succeeded;
        c.token = token.and_then(Token::new);
        let hop = c.hop + 1;
        self.responses += 1;
        if !self.is_finished() {
            // A reply should carry the k closest nodes it knows; some clients
            // send their whole table. Only the k closest of it are taken, so
            // that one reply cannot fill the lookup with nodes to time out on.
            let target = self.target;
            let mut nodes: Vec<NodeInfo> = nodes.into_iter().collect();
            if nodes.len() > self.config.k {
                nodes.select_nth_unstable_by_key(self.config.k - 1, |n| target.distance(&n.id));
                nodes.truncate(self.config.k);
            }
            self.add_candidates(nodes, hop);
        }
        self.add_peers(peers)
    }

    /// Peers learned outside a node's answer (our own store's): returns
    /// those not seen before in this lookup. Port 0 is ignored and counted.
    pub fn add_peers(&mut self, peers: impl IntoIterator<Item = SocketAddr>) -> Vec<SocketAddr> {
        let mut fresh = Vec::new();
        for p in peers {
            if p.port() == 0 {
                self.ignored_peers += 1;
            } else if self.peer_set.len() < self.config.max_peers && self.peer_set.insert(p) {
                self.peers.push(p);
                fresh.push(p);
            }
        }
        fresh
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
        if Some(info.id) == self.exclude {
            return Vec::new();
        }
        self.add_candidates([info], 1);
        let d = self.target.distance(&info.id);
        if let Some(c) = self.candidates.get_mut(&d) {
            if c.state == State::NotContacted {
                c.state = State::Waiting {
                    deadline: self.deadline,
                };
                self.in_flight += 1;
                self.queries += 1;
            }
        }
        self.on_response(&info.id, nodes, peers, token)
    }

    /// A query failed: an error reply, a timeout reported by the caller, or
    /// a send that could not be made.
    pub fn on_failure(&mut self, from: &NodeId) {
        let d = self.target.distance(from);
        if let Some(c) = self.candidates.get_mut(&d) {
            if let State::Waiting { .. } = c.state {
                c.state = State::Failed;
                self.in_flight -= 1;
                self.failures += 1;
            }
        }
    }

    /// Advances the lookup: returns at most one node to query now.
    pub fn poll(&mut self, now: Instant) -> LookupStep {
        if self.is_finished() {
            return LookupStep::Finished;
        }
        if now >= self.deadline {
            return self.finish(LookupEnd::TimeLimit);
        }
        for c in self.candidates.values_mut() {
            if let State::Waiting { deadline } = c.state {
                if deadline <= now {
                    c.state = State::Failed;
                    self.in_flight -= 1;
                    self.failures += 1;
                }
            }
        }
        let may_send = self.in_flight < self.config.alpha && self.queries < self.config.max_queries;
        let mut counted = 0;
        let mut pending = false;
        for c in self.candidates.values_mut() {
            match c.state {
                State::Failed => continue,
                State::Succeeded => {}
                State::Waiting { .. } => pending = true,
                State::NotContacted if may_send => {
                    c.state = State::Waiting {
                        deadline: now + self.config.query_timeout,
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
        if self.in_flight == 0 {
            // Work remains but no query may be sent: the query budget is spent.
            return self.finish(LookupEnd::QueryLimit);
        }
        if self.in_flight >= self.config.alpha {
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
        if self.is_finished() {
            return None;
        }
        self.candidates
            .values()
            .filter_map(|c| match c.state {
                State::Waiting { deadline } => Some(deadline),
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
        let closest: Vec<&Candidate> = self
            .candidates
            .values()
            .filter(|c| c.state == State::Succeeded)
            .take(self.config.k)
            .collect();
        LookupOutcome {
            hops: closest.first().map_or(0, |c| c.hop),
            closest: closest.iter().map(|c| (c.info, c.token)).collect(),
            peers: self.peers.clone(),
            queries: self.queries,
            responses: self.responses,
            failures: self.failures,
            ignored_peers: self.ignored_peers,
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

    fn node(id: NodeId, n: u16) -> NodeInfo {
        NodeInfo {
            id,
            addr: SocketAddr::from(([127, 0, 0, 1], n)),
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
        l.on_response(&seed.id, many, [], None);
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

    #[test]
    fn keeps_alpha_in_flight_and_times_out_slow_nodes() {
        let t0 = crate::test_epoch();
        let mut rng = StdRng::seed_from_u64(1);
        let seeds: Vec<_> = (0..5).map(|n| node(NodeId::random(&mut rng), n)).collect();
        let mut l = lookup(t0, &mut rng, seeds, LookupConfig::default());
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
        l.on_response(&sent[0].id, [], [], Some(b"tok"));
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
        let fresh = l.on_response(&a.id, [], [p1, p1, p0], None);
        assert_eq!(fresh, vec![p1]);
        // A duplicate answer is ignored.
        assert!(l.on_response(&a.id, [], [p1], None).is_empty());
        assert_eq!(l.poll(t0), LookupStep::Finished);
        assert_eq!(l.outcome().peers, vec![p1]);
        assert_eq!(l.outcome().ignored_peers, 1);
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
}
