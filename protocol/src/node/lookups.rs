//! The lookup pool: every running lookup, its phases, and what it tells.
//!
//! A lookup goes through up to three phases:
//!
//! 1. **Probing**: addresses without a known id (routers, nodes added by
//!    hand) are asked first, and our own store is asked for the peers it
//!    holds (a node among the closest to an info hash holds the peers that
//!    announced to it). The search does not start until they have all
//!    answered or failed: their answers seed it.
//! 2. **Searching**: a [`Lookup`] state machine, seeded with the table's
//!    closest nodes, α queries in flight, until the k closest have answered.
//! 3. **Announcing** (when asked): `announce_peer` to the k closest nodes
//!    that gave a token.
//!
//! The application's lookups wait until bootstrap completes (the bip_dht
//! notes: bootstrap can take 30 s); the bootstrap's own lookups and bucket
//! refreshes never wait. At most [`LookupLimits::max_running`] run; the
//! rest wait in order, up to [`LookupLimits::max_waiting`], beyond which a
//! lookup ends at once, [`LookupEnd::Refused`]. The pool also keeps the
//! application's repeated announces, and says when a search or an announce
//! the application asked for failed (rTorrent's warnings).

mod id_watch;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{
    AnnounceReport, AnnounceSpec, ApiEvent, Asker, Confidence, Envelope, ItemLookup, LogEvent,
    LookupEvent, LookupId, LookupLimits, LookupSummary, LookupsInput, NodeConfig, OutQuery,
    OutboundQuery, Outputs, Piece, PutItem, QueryDone, RateLimiterInput, Reply, Requester,
    StartLookup, StoreInput, SupervisorInput,
};
use crate::compact::NodeInfo;
use crate::family::Family;
use crate::id::{InfoHash, NodeId};
use crate::ip_prefix::IpPrefix;
use crate::item::Item;
use crate::lookup::{Lookup, LookupConfig, LookupEnd, LookupKind, LookupStep};
use crate::routing::NodeSnapshot;
use crate::rtt::RttEstimate;
use crate::scrape::ScrapeBloom;
use crate::telemetry::{Component, LookupOutcome, Telemetry, Warning};
use crate::K;
pub use id_watch::{IdWatch, DISTRUST_FOR, ID_CHANGE_WINDOW};

/// Seeds a lookup takes from the table.
const SEEDS: usize = 2 * K;

#[derive(Debug)]
enum Phase {
    /// Waiting for the seed addresses and our own store.
    Probing {
        pending: usize,
    },
    Searching,
    Announcing {
        pending: usize,
        report: AnnounceReport,
    },
}

/// What a lookup stores at the closest nodes once it has found them.
enum Store {
    Announce(AnnounceSpec),
    Put(Arc<PutItem>),
}

#[derive(Debug)]
struct Running {
    /// A BEP 44 get's best item so far.
    item: Option<Box<Item>>,
    request: StartLookup,
    /// A scrape's union of filters so far.
    scrape: Option<(ScrapeBloom, ScrapeBloom)>,
    lookup: Lookup,
    phase: Phase,
    started: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Repeat {
    spec: AnnounceSpec,
    every: Duration,
    next: Instant,
}

/// The lookup pool's piece.
#[derive(Debug)]
pub struct LookupPool {
    family: Family,
    own_id: NodeId,
    config: LookupConfig,
    limits: LookupLimits,
    /// Whether our own store can be asked (a read-only node stores nothing).
    ask_store: bool,
    bootstrapped: bool,
    nodes: Arc<NodeSnapshot>,
    /// Boxed: a map's node holds room for eleven values and an empty map
    /// keeps it, so a node that once looked up would keep 12 KiB of room for
    /// lookups inline (a tenth of a simulated node's memory).
    running: BTreeMap<LookupId, Box<Running>>,
    waiting: VecDeque<StartLookup>,
    repeats: BTreeMap<InfoHash, Repeat>,
    next_id: u64,
    rtt: RttEstimate,
    watch: IdWatch,
    telemetry: Arc<Telemetry>,
    outputs: Outputs,
}

fn query_for(request: &StartLookup, target: NodeId) -> OutQuery {
    if let Some(item) = &request.item {
        let seq = match item {
            ItemLookup::Get { seq, .. } => *seq,
            ItemLookup::Put(_) => None,
        };
        return OutQuery::Get { target, seq };
    }
    match request.kind {
        LookupKind::FindNode => OutQuery::FindNode(target),
        LookupKind::GetPeers if request.scrape => OutQuery::Scrape(InfoHash(target.0)),
        LookupKind::GetPeers => OutQuery::GetPeers(InfoHash(target.0)),
    }
}

/// A `get` answer's item, if it answers the lookup (its target matches
/// under the lookup's salt, a mutable one's signature holds) and beats the
/// best so far (a higher sequence number; the first immutable one).
fn better_item(
    request: &StartLookup,
    target: &NodeId,
    best: &Option<Box<Item>>,
    reply: &Reply,
) -> Option<Box<Item>> {
    let Some(ItemLookup::Get { salt, .. }) = &request.item else {
        return None;
    };
    let mut item = reply.item.clone()?;
    if let Some(s) = &mut item.signed {
        s.salt = salt.clone();
    }
    if !item.answers(target) {
        return None;
    }
    let seq = |i: &Item| i.signed.as_ref().map(|s| s.seq);
    match best {
        Some(b) if seq(b) >= seq(&item) => None,
        _ => Some(item),
    }
}

/// Adds an answer's BEP 33 filters to a scrape's union. An answer with
/// peers but no filters (a node without BEP 33) counts its peers' IPs as
/// peers, as the BEP suggests.
fn merge_scrape(into: &mut Option<(ScrapeBloom, ScrapeBloom)>, reply: &Reply) {
    let Some((seeds, peers)) = into else { return };
    match &reply.blooms {
        Some(b) => {
            seeds.union(&b.0);
            peers.union(&b.1);
        }
        None => {
            for p in &reply.peers {
                peers.insert(p.ip());
            }
        }
    }
}

impl LookupPool {
    /// An empty pool; the application's lookups wait for bootstrap.
    pub fn new(
        family: Family,
        own_id: NodeId,
        config: &NodeConfig,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        LookupPool {
            family,
            own_id,
            config: config.lookup,
            limits: config.lookup_limits,
            ask_store: !config.read_only,
            bootstrapped: false,
            nodes: Arc::new(NodeSnapshot::empty(own_id)),
            running: BTreeMap::new(),
            waiting: VecDeque::new(),
            repeats: BTreeMap::new(),
            next_id: 0,
            rtt: RttEstimate::default(),
            watch: IdWatch::default(),
            telemetry,
            outputs: Outputs::default(),
        }
    }

    /// Lookups running now.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Lookups waiting for a slot or for bootstrap.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    fn may_run(&self, request: &StartLookup) -> bool {
        let needs_bootstrap = matches!(
            request.requester,
            Requester::Caller(_) | Requester::Reannounce
        );
        self.running.len() < self.limits.max_running && (self.bootstrapped || !needs_bootstrap)
    }

    fn submit(&mut self, now: Instant, request: StartLookup) {
        if self.may_run(&request) {
            self.start(now, request);
        } else if self.waiting.len() < self.limits.max_waiting {
            self.waiting.push_back(request);
        } else {
            self.refuse(request);
        }
    }

    fn refuse(&mut self, request: StartLookup) {
        let t = &self.telemetry;
        t.lookups_finished
            .incr((request.label(), LookupOutcome::Refused));
        self.outputs
            .push(Envelope::Log(LogEvent::LookupRefused(request.target)));
        let summary = LookupSummary {
            target: request.target,
            end: LookupEnd::Refused,
            ..LookupSummary::default()
        };
        self.report(&request, summary);
    }

    fn send(&mut self, id: LookupId, to: SocketAddr, node: Option<NodeId>, query: OutQuery) {
        self.outputs
            .push(Envelope::RateLimiter(RateLimiterInput::Send(
                OutboundQuery {
                    to,
                    node,
                    query,
                    asker: Asker::Lookup(id),
                },
            )));
    }

    fn start(&mut self, now: Instant, request: StartLookup) {
        self.telemetry.lookups_started.incr(request.label());
        let id = LookupId::nth(self.family, self.next_id);
        self.next_id += 1;
        let watch = &self.watch;
        let family = self.family;
        let seeds = self
            .nodes
            .closest(&request.target, SEEDS)
            .into_iter()
            .chain(request.seeds.iter().copied())
            .filter(|n| Family::of(&n.addr) == family && !watch.is_distrusted(now, n.addr.ip()));
        // An announce must reach the true k closest: a slow one among
        // them is waited for (sim_hostile: 62% of clean announces reached
        // all 8 without waiting, 95% with).
        let config = LookupConfig {
            wait_for_slow: self.config.wait_for_slow || request.announce.is_some(),
            enough_holders: if request.announce.is_some() || request.scrape {
                0
            } else {
                self.config.enough_holders
            },
            ..self.config
        };
        let lookup = Lookup::new(
            now,
            request.target,
            request.kind,
            Some(self.own_id),
            seeds,
            config,
        );
        let addr_seeds: Vec<SocketAddr> = request
            .addr_seeds
            .iter()
            .filter(|a| Family::of(a) == family)
            .copied()
            .collect();
        let mut pending = addr_seeds.len();
        for addr in addr_seeds {
            self.send(id, addr, None, query_for(&request, request.target));
        }
        if request.kind == LookupKind::GetPeers && self.ask_store {
            pending += 1;
            self.outputs.push(Envelope::Store(StoreInput::LocalPeers {
                lookup: id,
                info_hash: InfoHash(request.target.0),
            }));
        }
        let phase = if pending > 0 {
            Phase::Probing { pending }
        } else {
            Phase::Searching
        };
        self.running.insert(
            id,
            Box::new(Running {
                item: None,
                scrape: request.scrape.then(Default::default),
                request,
                lookup,
                phase,
                started: now,
            }),
        );
        self.drive(now, id);
    }

    fn query_done(&mut self, now: Instant, id: LookupId, done: QueryDone) {
        if let (Some(rtt), Ok(_)) = (done.rtt, &done.result) {
            self.rtt.record(rtt);
        }
        let mut newly_distrusted = None;
        if let Ok(reply) = &done.result {
            if self.watch.observe(now, done.to, reply.id) {
                self.telemetry.addresses_distrusted.incr(());
                newly_distrusted = Some(done.to.ip());
            }
        }
        if let Some(ip) = newly_distrusted {
            for r in self.running.values_mut() {
                r.lookup.distrust(ip);
            }
        }
        let Some(r) = self.running.get_mut(&id) else {
            return; // a late answer for a lookup that ended
        };
        let watch = &self.watch;
        let family = self.family;
        // A lookup follows the nodes of its own family; the others (a
        // `want` for both) go to their own table through the routing piece.
        let trusted =
            |n: &&NodeInfo| Family::of(&n.addr) == family && !watch.is_distrusted(now, n.addr.ip());
        let mut fresh = Vec::new();
        let mut found = None;
        match &mut r.phase {
            Phase::Probing { pending } => {
                *pending = pending.saturating_sub(1);
                if let Ok(reply) = done.result {
                    merge_scrape(&mut r.scrape, &reply);
                    found = better_item(&r.request, &r.lookup.target(), &r.item, &reply);
                    let info = NodeInfo {
                        id: reply.id,
                        addr: done.to,
                    };
                    let token = reply.token.as_ref().map(|t| t.as_bytes());
                    if !watch.is_distrusted(now, done.to.ip()) {
                        fresh = r.lookup.add_responder(
                            info,
                            reply.nodes.iter().filter(trusted).copied(),
                            reply.peers.iter().copied(),
                            token,
                        );
                    }
                }
                if *pending == 0 {
                    r.phase = Phase::Searching;
                }
            }
            Phase::Searching => {
                let Some(node) = done.node else { return };
                match done.result {
                    Ok(reply) if !watch.is_distrusted(now, done.to.ip()) => {
                        merge_scrape(&mut r.scrape, &reply);
                        found = better_item(&r.request, &r.lookup.target(), &r.item, &reply);
                        if reply.id != node {
                            self.telemetry.lookup_id_mismatches.incr(());
                        }
                        let token = reply.token.as_ref().map(|t| t.as_bytes());
                        fresh = r.lookup.on_response(
                            &node,
                            &reply.id,
                            reply.nodes.iter().filter(trusted).copied(),
                            reply.peers.iter().copied(),
                            token,
                        );
                    }
                    _ => r.lookup.on_failure(&node),
                }
            }
            Phase::Announcing { pending, report } => {
                *pending = pending.saturating_sub(1);
                if done.result.is_ok() {
                    report.accepted += 1;
                }
            }
        }
        if let Some(item) = found {
            self.found_item(id, item);
        }
        self.progress(id, fresh);
        self.drive(now, id);
    }

    /// Keeps a better item and tells the caller.
    fn found_item(&mut self, id: LookupId, item: Box<Item>) {
        let Some(r) = self.running.get_mut(&id) else {
            return;
        };
        r.item = Some(item.clone());
        if let Requester::Caller(caller) = r.request.requester {
            self.outputs.push(Envelope::Api(ApiEvent::Lookup {
                caller,
                event: LookupEvent::Item(item),
            }));
        }
    }

    fn local_peers(&mut self, now: Instant, id: LookupId, peers: Vec<SocketAddr>) {
        let Some(r) = self.running.get_mut(&id) else {
            return;
        };
        let Phase::Probing { pending } = &mut r.phase else {
            return;
        };
        *pending = pending.saturating_sub(1);
        if *pending == 0 {
            r.phase = Phase::Searching;
        }
        let fresh = r.lookup.add_peers(peers);
        self.progress(id, fresh);
        self.drive(now, id);
    }

    /// New peers and the progress, for a caller.
    fn progress(&mut self, id: LookupId, fresh: Vec<SocketAddr>) {
        let Some(r) = self.running.get(&id) else {
            return;
        };
        let Requester::Caller(caller) = r.request.requester else {
            return;
        };
        let (queries, responses, closest) = r.lookup.progress();
        let progress = LookupEvent::Progress {
            queries,
            responses,
            common_bits: closest.map_or(0, |d| d.leading_zeros()),
        };
        for event in fresh.into_iter().map(LookupEvent::Peer).chain([progress]) {
            self.outputs
                .push(Envelope::Api(ApiEvent::Lookup { caller, event }));
        }
    }

    fn drive(&mut self, now: Instant, id: LookupId) {
        let Some(r) = self.running.get_mut(&id) else {
            return;
        };
        if let Some(timeout) = self.rtt.timeout() {
            r.lookup.set_query_timeout(timeout);
        }
        let mut queries = Vec::new();
        let finished = match r.phase {
            Phase::Probing { .. } => false,
            Phase::Announcing { pending, .. } => pending == 0,
            Phase::Searching => loop {
                match r.lookup.poll(now) {
                    LookupStep::Query(n) => queries.push(n),
                    LookupStep::Finished => break true,
                    LookupStep::AtCapacity | LookupStep::Waiting => break false,
                }
            },
        };
        let query = query_for(&r.request, r.lookup.target());
        for n in queries {
            self.send(id, n.addr, Some(n.id), query.clone());
        }
        if finished {
            self.search_finished(now, id);
        }
    }

    fn search_finished(&mut self, now: Instant, id: LookupId) {
        let Some(r) = self.running.get_mut(&id) else {
            return;
        };
        // What goes to each of the closest nodes that gave a token: an
        // announce, or a BEP 44 put.
        let store = match (&r.request.announce, &r.request.item) {
            (Some(spec), _) => Some(Store::Announce(*spec)),
            (None, Some(ItemLookup::Put(item))) => Some(Store::Put(item.clone())),
            _ => None,
        };
        if let (Phase::Searching, Some(store)) = (&r.phase, store) {
            let info_hash = InfoHash(r.lookup.target().0);
            let outcome = r.lookup.outcome();
            let targets: Vec<_> = outcome
                .closest
                .iter()
                .filter_map(|(n, t)| t.map(|t| (*n, t)))
                .take(K)
                .collect();
            let mut networks: Vec<IpPrefix> = targets
                .iter()
                .map(|(n, _)| IpPrefix::of(n.addr.ip()))
                .collect();
            networks.sort();
            networks.dedup();
            r.phase = Phase::Announcing {
                pending: targets.len(),
                report: AnnounceReport {
                    tried: targets.len(),
                    accepted: 0,
                    networks: networks.len(),
                    confidence: Confidence::judge(&outcome, targets.len(), networks.len()),
                },
            };
            if !targets.is_empty() {
                for (n, token) in targets {
                    let q = match &store {
                        Store::Announce(spec) => OutQuery::AnnouncePeer {
                            info_hash,
                            port: spec.port,
                            implied_port: spec.implied_port,
                            token,
                            seed: spec.seed,
                        },
                        Store::Put(item) => OutQuery::Put(item.clone(), token),
                    };
                    self.send(id, n.addr, Some(n.id), q);
                }
                return;
            }
        }
        let Some(r) = self.running.remove(&id) else {
            return;
        };
        self.finish(now, *r);
        self.start_waiting(now);
    }

    fn finish(&mut self, now: Instant, r: Running) {
        let outcome = r.lookup.outcome();
        let summary = LookupSummary {
            target: r.lookup.target(),
            queries: outcome.queries,
            responses: outcome.responses,
            failures: outcome.failures,
            closest: outcome.closest.iter().map(|(n, _)| *n).collect(),
            peers: outcome.peers.len(),
            ignored_peers: outcome.ignored_peers,
            hops: outcome.hops,
            end: outcome.end,
            duration: now.saturating_duration_since(r.started),
            announce: match r.phase {
                Phase::Announcing { report, .. } => Some(report),
                _ => None,
            },
            scrape: r.scrape.map(Box::new),
            item: r.item,
        };
        let t = &self.telemetry;
        let label = r.request.label();
        let answered = summary.responses > 0;
        t.peers_ignored.add((), summary.ignored_peers as u64);
        t.lookup_candidates_refused.add((), outcome.refused as u64);
        t.lookups_finished.incr((
            label,
            if answered {
                LookupOutcome::Answered
            } else {
                LookupOutcome::Unanswered
            },
        ));
        t.lookup_duration
            .record(label, summary.duration.as_secs_f64());
        t.lookup_queries.record(label, summary.queries as f64);
        if matches!(
            r.request.requester,
            Requester::Caller(_) | Requester::Reannounce
        ) {
            self.warn(&summary);
        }
        self.report(&r.request, summary);
    }

    /// rTorrent's warnings, for the searches the application asked for.
    fn warn(&mut self, s: &LookupSummary) {
        let t = &self.telemetry;
        t.warnings
            .set(Warning::SearchUnsuccessful, u64::from(s.responses == 0));
        if s.queries == 0 {
            self.outputs
                .push(Envelope::Log(LogEvent::NoNodesForSearch(s.target)));
        } else if s.responses == 0 {
            self.outputs
                .push(Envelope::Log(LogEvent::SearchUnsuccessful {
                    target: s.target,
                    queries: s.queries,
                }));
        }
        if let Some(a) = s.announce {
            t.warnings
                .set(Warning::AnnounceFailed, u64::from(a.accepted == 0));
            if a.accepted == 0 {
                self.outputs.push(Envelope::Log(LogEvent::AnnounceFailed {
                    target: s.target,
                    tried: a.tried,
                }));
            }
        }
    }

    fn report(&mut self, request: &StartLookup, summary: LookupSummary) {
        match request.requester {
            Requester::Caller(caller) => self.outputs.push(Envelope::Api(ApiEvent::Lookup {
                caller,
                event: LookupEvent::Finished(summary),
            })),
            Requester::Bootstrap(purpose) => {
                self.outputs
                    .push(Envelope::Supervisor(SupervisorInput::LookupFinished {
                        family: self.family,
                        purpose,
                        summary,
                    }))
            }
            Requester::Refresh | Requester::Reannounce => {}
        }
    }

    fn start_waiting(&mut self, now: Instant) {
        // In order, but a lookup that still waits for bootstrap does not
        // hold up the bootstrap's own lookups behind it.
        let mut still = VecDeque::new();
        while let Some(next) = self.waiting.pop_front() {
            if self.may_run(&next) {
                self.start(now, next);
            } else {
                still.push_back(next);
            }
        }
        self.waiting = still;
    }

    fn cancel(&mut self, caller: super::CallerId) {
        let mine = |r: &Requester| *r == Requester::Caller(caller);
        self.running.retain(|_, r| !mine(&r.request.requester));
        self.waiting.retain(|r| !mine(&r.requester));
    }

    fn repeat_due(&mut self, now: Instant) {
        let due: Vec<(InfoHash, AnnounceSpec)> = self
            .repeats
            .iter_mut()
            .filter(|(_, r)| r.next <= now)
            .map(|(ih, r)| {
                r.next = now + r.every;
                (*ih, r.spec)
            })
            .collect();
        for (info_hash, spec) in due {
            let mut start = StartLookup::new(
                NodeId::from(info_hash),
                LookupKind::GetPeers,
                Requester::Reannounce,
            );
            start.announce = Some(spec);
            self.submit(now, start);
        }
    }
}

impl Piece for LookupPool {
    type Input = LookupsInput;
    const COMPONENT: Component = Component::Lookups;

    fn handle(&mut self, now: Instant, input: LookupsInput) {
        match input {
            LookupsInput::Start(request) => self.submit(now, request),
            LookupsInput::QueryDone { lookup, done } => self.query_done(now, lookup, *done),
            LookupsInput::Snapshot(_, nodes) => self.nodes = nodes,
            LookupsInput::LocalPeers { lookup, peers } => self.local_peers(now, lookup, peers),
            LookupsInput::Delayed {
                lookup,
                node,
                until,
            } => {
                if let Some(r) = self.running.get_mut(&lookup) {
                    r.lookup.delayed(&node, until);
                }
            }
            LookupsInput::Bootstrapped(_, done) => {
                self.bootstrapped = done;
                self.start_waiting(now);
            }
            LookupsInput::Cancel(caller) => {
                self.cancel(caller);
                self.start_waiting(now);
            }
            LookupsInput::Reconfigure(config) => {
                self.config = config.lookup;
                self.limits = config.lookup_limits;
                self.ask_store = !config.read_only;
                self.start_waiting(now);
            }
            LookupsInput::AnnounceEvery {
                info_hash,
                spec,
                every,
            } => match every {
                Some(every) => {
                    let next = now + every;
                    self.repeats.insert(info_hash, Repeat { spec, every, next });
                }
                None => {
                    self.repeats.remove(&info_hash);
                }
            },
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        // Only the lookups whose deadline came: driving every running one
        // on every wake-up was a tenth of a simulated node's time.
        let ids: Vec<LookupId> = self
            .running
            .iter()
            .filter(|(_, r)| {
                matches!(r.phase, Phase::Searching)
                    && r.lookup.poll_timeout().is_some_and(|t| t <= now)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.drive(now, id);
        }
        self.repeat_due(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.running
            .values()
            .filter(|r| matches!(r.phase, Phase::Searching))
            .filter_map(|r| r.lookup.poll_timeout())
            .chain(self.repeats.values().map(|r| r.next))
            .min()
    }

    fn outputs(&mut self) -> &mut Outputs {
        &mut self.outputs
    }
}

#[cfg(test)]
mod tests;
