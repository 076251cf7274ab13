//! LookupsActor: the lookup workers.
//!
//! Each running lookup is a `dhtd_protocol::lookup::Lookup` state machine;
//! this actor turns its `poll` into queries (through the rate limiter, so
//! the outbound budget and spacing apply) and the answers back into
//! `on_response` / `on_failure`. A lookup may start from addresses without
//! ids (routers, nodes added by hand): those are asked first, and their
//! answers seed the search. After a get_peers lookup that asked for it,
//! `announce_peer` goes to the k closest nodes that gave a token.
//!
//! One actor holds all lookups (a pool) so that its state survives a
//! restart with the rest: a lookup running when a handler panicked carries on.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, AsyncContext, Context, Handler, Recipient};
use dhtd_protocol::lookup::{Lookup, LookupConfig, LookupKind, LookupStep};
use dhtd_protocol::{InfoHash, NodeId, NodeInfo, K};

use crate::counters::{ActorKind, Counters, LookupLabel};
use crate::messages::{
    AnnounceReport, AnnounceSpec, LookupEvent, LookupFinished, LookupSink, LookupSummary, OutQuery,
    QueryDone, SendQuery, StartLookup,
};
use crate::supervision::{guarded, lifecycle, Supervised};
use crate::wakeup::{self, wake_at, Arm, Timed, Wakeup};

/// Limits of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupLimits {
    /// Lookups running at once; more wait their turn. Default 64.
    pub max_running: usize,
    /// Lookups waiting; beyond this a new one ends at once, empty. Default 1,024.
    pub max_waiting: usize,
}

impl Default for LookupLimits {
    fn default() -> Self {
        LookupLimits {
            max_running: 64,
            max_waiting: 1024,
        }
    }
}

enum Phase {
    /// Asking seed addresses; the lookup is not polled until all answered or failed.
    Probing {
        pending: usize,
    },
    Searching,
    Announcing {
        pending: usize,
        report: AnnounceReport,
    },
}

struct Running {
    request: StartLookup,
    lookup: Lookup,
    phase: Phase,
    started: Instant,
}

/// The pool of running lookups.
pub struct LookupsActor {
    own_id: NodeId,
    config: LookupConfig,
    limits: LookupLimits,
    outbound: Recipient<SendQuery>,
    running: HashMap<u64, Running>,
    waiting: VecDeque<StartLookup>,
    next_id: u64,
    counters: Arc<Counters>,
    wakeup: Wakeup,
}

fn query_for(kind: LookupKind, target: NodeId) -> OutQuery {
    match kind {
        LookupKind::FindNode => OutQuery::FindNode(target),
        LookupKind::GetPeers => OutQuery::GetPeers(InfoHash(target.0)),
    }
}

impl LookupsActor {
    /// A pool sending its queries to `outbound`.
    pub fn new(
        own_id: NodeId,
        config: LookupConfig,
        limits: LookupLimits,
        outbound: Recipient<SendQuery>,
        counters: Arc<Counters>,
    ) -> Self {
        LookupsActor {
            own_id,
            config,
            limits,
            outbound,
            running: HashMap::new(),
            waiting: VecDeque::new(),
            next_id: 1,
            counters,
            wakeup: Wakeup::default(),
        }
    }

    fn send(
        &self,
        ctx: &Context<Self>,
        id: u64,
        to: std::net::SocketAddr,
        node: Option<NodeId>,
        query: OutQuery,
    ) {
        self.outbound.do_send(SendQuery {
            to,
            node,
            query,
            reply_to: Some(ctx.address().recipient()),
            tag: id,
        });
    }

    fn start(&mut self, request: StartLookup, ctx: &mut Context<Self>) {
        if self.running.len() >= self.limits.max_running {
            if self.waiting.len() >= self.limits.max_waiting {
                tracing::warn!(target: "dht::lookup", "too many lookups waiting; one ends unstarted");
                self.counters
                    .lookup_finished(label(&request), false, Duration::ZERO, 0);
                let summary = LookupSummary {
                    target: request.target,
                    ..LookupSummary::default()
                };
                report(&request, summary);
                return;
            }
            self.waiting.push_back(request);
            return;
        }
        self.counters.lookup_started(label(&request));
        let id = self.next_id;
        self.next_id += 1;
        let now = Instant::now();
        let lookup = Lookup::new(
            now,
            request.target,
            request.kind,
            Some(self.own_id),
            request.seeds.iter().copied(),
            self.config,
        );
        let probes = request.addr_seeds.len();
        for addr in &request.addr_seeds {
            self.send(
                ctx,
                id,
                *addr,
                None,
                query_for(request.kind, request.target),
            );
        }
        let phase = if probes > 0 {
            Phase::Probing { pending: probes }
        } else {
            Phase::Searching
        };
        self.running.insert(
            id,
            Running {
                request,
                lookup,
                phase,
                started: now,
            },
        );
        self.drive(id, ctx);
    }

    fn on_done(&mut self, done: QueryDone, ctx: &mut Context<Self>) {
        let id = done.tag;
        let Some(r) = self.running.get_mut(&id) else {
            return; // a late answer for a lookup that ended
        };
        let mut fresh = Vec::new();
        match &mut r.phase {
            Phase::Probing { pending } => {
                *pending = pending.saturating_sub(1);
                if let Ok(reply) = done.result {
                    let info = NodeInfo {
                        id: reply.id,
                        addr: done.to,
                    };
                    let token = reply.token.as_ref().map(|t| t.as_bytes());
                    fresh = r.lookup.add_responder(
                        info,
                        reply.nodes.iter().copied(),
                        reply.peers.iter().copied(),
                        token,
                    );
                }
                if *pending == 0 {
                    r.phase = Phase::Searching;
                }
            }
            Phase::Searching => {
                let Some(node) = done.node else { return };
                match done.result {
                    Ok(reply) => {
                        let token = reply.token.as_ref().map(|t| t.as_bytes());
                        fresh = r.lookup.on_response(
                            &node,
                            reply.nodes.iter().copied(),
                            reply.peers.iter().copied(),
                            token,
                        );
                    }
                    Err(_) => r.lookup.on_failure(&node),
                }
            }
            Phase::Announcing { pending, report } => {
                *pending = pending.saturating_sub(1);
                if done.result.is_ok() {
                    report.accepted += 1;
                }
            }
        }
        if let LookupSink::Caller(tx) = &r.request.sink {
            let (queries, responses, closest) = r.lookup.progress();
            let progress = LookupEvent::Progress {
                queries,
                responses,
                common_bits: closest.map_or(0, |d| d.leading_zeros()),
            };
            for event in fresh.into_iter().map(LookupEvent::Peer).chain([progress]) {
                if tx.send(event).is_err() {
                    // The caller stopped listening: stop working for it.
                    self.running.remove(&id);
                    self.start_waiting(ctx);
                    return;
                }
            }
        }
        self.drive(id, ctx);
    }

    fn drive(&mut self, id: u64, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let Some(r) = self.running.get_mut(&id) else {
            return;
        };
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
        let kind = r.request.kind;
        let target = r.lookup.target();
        for n in queries {
            self.send(ctx, id, n.addr, Some(n.id), query_for(kind, target));
        }
        if finished {
            self.search_finished(id, ctx);
        }
        self.arm(ctx);
    }

    fn search_finished(&mut self, id: u64, ctx: &mut Context<Self>) {
        let Some(r) = self.running.get_mut(&id) else {
            return;
        };
        if let (Phase::Searching, Some(AnnounceSpec { port, implied_port })) =
            (&r.phase, r.request.announce)
        {
            let info_hash = InfoHash(r.lookup.target().0);
            let targets: Vec<_> = r
                .lookup
                .outcome()
                .closest
                .into_iter()
                .filter_map(|(n, t)| t.map(|t| (n, t)))
                .take(K)
                .collect();
            r.phase = Phase::Announcing {
                pending: targets.len(),
                report: AnnounceReport {
                    tried: targets.len(),
                    accepted: 0,
                },
            };
            if !targets.is_empty() {
                for (n, token) in targets {
                    let q = OutQuery::AnnouncePeer {
                        info_hash,
                        port,
                        implied_port,
                        token,
                    };
                    self.send(ctx, id, n.addr, Some(n.id), q);
                }
                return;
            }
        }
        let Some(r) = self.running.remove(&id) else {
            return;
        };
        let outcome = r.lookup.outcome();
        let summary = LookupSummary {
            target: r.lookup.target(),
            queries: outcome.queries,
            responses: outcome.responses,
            failures: outcome.failures,
            closest: outcome.closest.iter().map(|(n, _)| *n).collect(),
            peers: outcome.peers.len(),
            ignored_peers: outcome.ignored_peers,
            end: outcome.end,
            duration: r.started.elapsed(),
            announce: match r.phase {
                Phase::Announcing { report, .. } => Some(report),
                _ => None,
            },
        };
        self.counters.peers_ignored(summary.ignored_peers);
        self.counters.lookup_finished(
            label(&r.request),
            summary.responses > 0,
            summary.duration,
            summary.queries,
        );
        // rTorrent's warnings, for the searches a caller asked for.
        if matches!(r.request.sink, LookupSink::Caller(_)) {
            self.counters.search_result(summary.responses > 0);
            if let Some(a) = summary.announce {
                self.counters.announce_result(a.accepted > 0);
            }
            let target = summary.target;
            if summary.queries == 0 {
                tracing::warn!(target: "dht::lookup", %target, "no DHT nodes available for a search");
            } else if summary.responses == 0 {
                tracing::warn!(target: "dht::lookup", %target, queries = summary.queries, "search unsuccessful (no replies)");
            }
            if let Some(a) = summary.announce.filter(|a| a.accepted == 0) {
                tracing::warn!(target: "dht::lookup", %target, tried = a.tried, "announce failed: no node accepted it");
            }
        }
        report(&r.request, summary);
        self.start_waiting(ctx);
    }

    fn start_waiting(&mut self, ctx: &mut Context<Self>) {
        while self.running.len() < self.limits.max_running {
            let Some(next) = self.waiting.pop_front() else {
                break;
            };
            self.start(next, ctx);
        }
    }

    /// One timer, at the earliest deadline of any searching lookup.
    fn arm(&mut self, ctx: &mut Context<Self>) {
        let next = self
            .running
            .values()
            .filter(|r| matches!(r.phase, Phase::Searching))
            .filter_map(|r| r.lookup.poll_timeout())
            .min();
        if let Some(deadline) = next {
            wake_at(self, ctx, deadline, Arm::KeepEarlier);
        }
    }
}

fn label(request: &StartLookup) -> LookupLabel {
    match (request.kind, request.announce) {
        (LookupKind::FindNode, _) => LookupLabel::FindNode,
        (LookupKind::GetPeers, None) => LookupLabel::GetPeers,
        (LookupKind::GetPeers, Some(_)) => LookupLabel::Announce,
    }
}

fn report(request: &StartLookup, summary: LookupSummary) {
    match &request.sink {
        LookupSink::Discard => {}
        LookupSink::Caller(tx) => {
            let _ = tx.send(LookupEvent::Finished(summary));
        }
        LookupSink::Actor(to) => to.do_send(LookupFinished {
            id: request.id,
            summary,
        }),
    }
}

impl Actor for LookupsActor {
    type Context = Context<Self>;
}

impl Supervised for LookupsActor {
    const KIND: ActorKind = ActorKind::Lookups;

    fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    fn restart(&mut self, ctx: &mut Context<Self>) {
        wakeup::restart(self, ctx);
    }
}

impl Timed for LookupsActor {
    fn wakeup(&mut self) -> &mut Wakeup {
        &mut self.wakeup
    }

    fn on_wakeup(&mut self, ctx: &mut Context<Self>) {
        let ids: Vec<u64> = self.running.keys().copied().collect();
        for id in ids {
            self.drive(id, ctx);
        }
        self.arm(ctx);
    }
}

impl Handler<StartLookup> for LookupsActor {
    type Result = ();
    fn handle(&mut self, m: StartLookup, ctx: &mut Context<Self>) {
        guarded(self, ctx, |this, ctx| this.start(m, ctx));
    }
}

impl Handler<QueryDone> for LookupsActor {
    type Result = ();
    fn handle(&mut self, m: QueryDone, ctx: &mut Context<Self>) {
        guarded(self, ctx, |this, ctx| this.on_done(m, ctx));
    }
}

lifecycle!(LookupsActor);
