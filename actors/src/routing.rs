//! RoutingActor: owns the k-buckets (`dhtd_protocol::routing::RoutingTable`).
//!
//! It answers `ping`, `find_node` and unknown methods that carry a target
//! (the queries that need only the table), learns from every response and
//! failure the transaction table reports, pings questionable nodes and
//! nodes worth adding, refreshes stale buckets with lookups, and publishes
//! a snapshot of its nodes to the announce store once a second when it
//! changed, so that `get_peers` is answered there without a second hop.
//! Routers are queried but never added.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Addr, Context, Handler, MessageResult, Recipient};
use dhtd_protocol::krpc::ErrorCode;
use dhtd_protocol::lookup::LookupKind;
use dhtd_protocol::rate_limit::{Spacing, SpacingVerdict};
use dhtd_protocol::routing::{
    HeardOutcome, InsertOutcome, Maintenance, NodeFilter, RoutingConfig, RoutingTable,
};
use dhtd_protocol::server::{self, Answer, Needs};
use dhtd_protocol::{NodeId, NodeInfo, K};
use rand::rngs::StdRng;

use crate::counters::{ActorKind, Counters};
use crate::lookups::LookupsActor;
use crate::messages::{
    ClosestNodes, ConsiderNodes, InboundQueries, InboundQuery, LookupFromTable, LookupSink,
    NodeFailed, NodeQueried, NodeResponded, OutQuery, RefreshAllBuckets, RoutingSnapshot,
    RoutingSummary, RoutingSummaryQuery, SendQuery, SetRouters, StartLookup, TableSnapshot,
};
use crate::socket::{DatagramSender, Outbox};
use crate::supervision::{guarded, lifecycle, Supervised};
use crate::wakeup::{self, wake_at, Arm, Timed, Wakeup};

/// How soon a changed table is published to the announce store: soon
/// enough that get_peers answers carry the nodes just learned (a fresh
/// node's table changes fast), late enough to publish a burst of changes once.
const PUBLISH_DELAY: Duration = Duration::from_millis(50);
/// A node is pinged at most once in this long (a lost ping is retried by
/// the table's own upkeep).
const PING_SPACING: Duration = Duration::from_secs(10);
/// Addresses remembered for `PING_SPACING`; beyond, pings are skipped.
const PINGS_TRACKED: usize = 8192;
/// The longest the timer sleeps when the table asks for nothing sooner.
const IDLE_WAKEUP: Duration = Duration::from_secs(60);
/// Seeds handed to a lookup started from the table.
const SEEDS: usize = 2 * K;

/// Where the routing table sends work.
pub struct RoutingLinks {
    /// Pings go out through the rate limiter.
    pub outbound: Recipient<SendQuery>,
    /// Refresh lookups.
    pub lookups: Addr<LookupsActor>,
    /// The announce store's copy of our nodes.
    pub snapshot: Recipient<RoutingSnapshot>,
}

/// The routing table's actor.
pub struct RoutingActor {
    table: RoutingTable,
    rng: StdRng,
    routers: HashSet<SocketAddr>,
    links: RoutingLinks,
    sender: DatagramSender,
    counters: Arc<Counters>,
    wakeup: Wakeup,
    changed: bool,
    recently_pinged: Spacing<SocketAddr>,
    recently_queried: Spacing<SocketAddr>,
    buf: Vec<u8>,
    /// Answers to the batch being handled, sent together at its end.
    outbox: Outbox,
}

impl RoutingActor {
    /// A table for `own_id`; `table` may be one kept from a previous actor.
    pub fn new(
        own_id: NodeId,
        config: RoutingConfig,
        rng: StdRng,
        links: RoutingLinks,
        sender: DatagramSender,
        counters: Arc<Counters>,
    ) -> Self {
        RoutingActor {
            table: RoutingTable::new(own_id, Instant::now(), config),
            rng,
            routers: HashSet::new(),
            links,
            sender,
            counters,
            wakeup: Wakeup::default(),
            changed: true,
            recently_pinged: Spacing::new(PING_SPACING, PINGS_TRACKED),
            recently_queried: Spacing::new(PING_SPACING, PINGS_TRACKED),
            buf: Vec::with_capacity(512),
            outbox: Outbox::default(),
        }
    }

    /// Pings `info` unless we did within `PING_SPACING`: many answers name
    /// the same new node, and one ping is enough to learn whether it lives.
    fn ping(&mut self, info: NodeInfo) {
        if self.recently_pinged.try_use(Instant::now(), info.addr) != SpacingVerdict::Go {
            return;
        }
        self.links.outbound.do_send(SendQuery {
            to: info.addr,
            node: Some(info.id),
            query: OutQuery::Ping,
            reply_to: None,
            tag: 0,
        });
    }

    fn consider(&mut self, now: Instant, info: &NodeInfo) {
        if !self.routers.contains(&info.addr)
            && self.table.heard_about(now, info) == HeardOutcome::WorthPinging
        {
            self.ping(*info);
        }
    }

    fn answer(&mut self, now: Instant, q: InboundQuery) {
        let info = NodeInfo {
            id: q.sender,
            addr: q.from,
        };
        let own = self.table.own_id();
        match q.needs {
            Needs::Id => {
                server::encode_answer(&mut self.buf, &q.tid, own, q.from, Answer::default());
            }
            Needs::Nodes(target) => {
                let nodes = self.table.closest(now, &target, K, NodeFilter::NotBad);
                let answer = Answer {
                    nodes: &nodes,
                    nodes_required: true,
                    ..Answer::default()
                };
                server::encode_answer(&mut self.buf, &q.tid, own, q.from, answer);
            }
            Needs::MethodUnknown | Needs::Peers(_) | Needs::Store | Needs::NodesAndToken(_) => {
                server::encode_error(
                    &mut self.buf,
                    &q.tid,
                    q.from,
                    ErrorCode::MethodUnknown,
                    b"method unknown",
                );
                self.counters.error_out(ErrorCode::MethodUnknown.code());
            }
        }
        self.outbox.push(q.from, &self.buf);
        // A busy querier need not be looked up in the table on every query.
        if self.recently_queried.try_use(now, q.from) == SpacingVerdict::Go {
            self.queried(now, &info, q.read_only);
        }
    }

    fn queried(&mut self, now: Instant, info: &NodeInfo, read_only: bool) {
        if self.table.node_queried(now, info, read_only) == HeardOutcome::WorthPinging
            && !self.routers.contains(&info.addr)
        {
            self.ping(*info);
        }
    }

    fn responded(&mut self, msg: NodeResponded) {
        let now = Instant::now();
        if !self.routers.contains(&msg.info.addr) {
            match self.table.node_responded(now, msg.info) {
                InsertOutcome::PingOldest(oldest) => self.ping(oldest),
                InsertOutcome::Inserted => self.changed = true,
                _ => {}
            }
        }
        for n in &msg.heard {
            self.consider(now, n);
        }
    }

    fn start_from_table(&mut self, mut start: StartLookup) {
        let seeds = self
            .table
            .closest(Instant::now(), &start.target, SEEDS, NodeFilter::NotBad);
        start.seeds.extend(seeds);
        self.links.lookups.do_send(start);
    }

    fn on_timer(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        while let Some(work) = self.table.poll_maintenance(now, &mut self.rng) {
            match work {
                Maintenance::Ping(info) => self.ping(info),
                Maintenance::Refresh { target, .. } => self.start_from_table(StartLookup {
                    id: 0,
                    target,
                    kind: LookupKind::FindNode,
                    seeds: Vec::new(),
                    addr_seeds: Vec::new(),
                    announce: None,
                    sink: LookupSink::Discard,
                }),
            }
        }
        if self.changed {
            self.changed = false;
            let nodes = self.table.snapshot(now, NodeFilter::NotBad);
            self.links
                .snapshot
                .do_send(RoutingSnapshot(Arc::new(nodes)));
        }
        self.arm(ctx);
    }

    fn arm(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let mut next = self.table.poll_timeout().unwrap_or(now + IDLE_WAKEUP);
        if self.changed {
            next = next.min(now + PUBLISH_DELAY);
        }
        wake_at(self, ctx, next, Arm::Replace);
    }

    /// After a change to the table: publish it soon.
    fn publish_soon(&mut self, ctx: &mut Context<Self>) {
        if self.changed {
            wake_at(self, ctx, Instant::now() + PUBLISH_DELAY, Arm::KeepEarlier);
        }
    }
}

impl Actor for RoutingActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.arm(ctx);
    }
}

impl Supervised for RoutingActor {
    const KIND: ActorKind = ActorKind::RoutingTable;

    fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    fn restart(&mut self, ctx: &mut Context<Self>) {
        wakeup::restart(self, ctx);
    }
}

impl Timed for RoutingActor {
    fn wakeup(&mut self) -> &mut Wakeup {
        &mut self.wakeup
    }

    fn on_wakeup(&mut self, ctx: &mut Context<Self>) {
        self.on_timer(ctx);
    }
}

impl Handler<InboundQueries> for RoutingActor {
    type Result = ();
    fn handle(&mut self, batch: InboundQueries, ctx: &mut Context<Self>) {
        guarded(self, ctx, |this, _| {
            let now = Instant::now();
            for q in batch.0 {
                this.answer(now, q);
            }
            this.sender.send_all(&mut this.outbox);
        });
    }
}

impl Handler<NodeQueried> for RoutingActor {
    type Result = ();
    fn handle(&mut self, m: NodeQueried, ctx: &mut Context<Self>) {
        guarded(self, ctx, |this, _| {
            this.queried(Instant::now(), &m.info, m.read_only)
        });
    }
}

impl Handler<NodeResponded> for RoutingActor {
    type Result = ();
    fn handle(&mut self, m: NodeResponded, ctx: &mut Context<Self>) {
        guarded(self, ctx, |this, ctx| {
            this.responded(m);
            this.publish_soon(ctx);
        });
    }
}

impl Handler<NodeFailed> for RoutingActor {
    type Result = ();
    fn handle(&mut self, m: NodeFailed, ctx: &mut Context<Self>) {
        guarded(self, ctx, |this, _| {
            this.table
                .node_failed(Instant::now(), &m.info.id, m.info.addr);
            this.changed = true;
        });
    }
}

impl Handler<ConsiderNodes> for RoutingActor {
    type Result = ();
    fn handle(&mut self, m: ConsiderNodes, ctx: &mut Context<Self>) {
        guarded(self, ctx, |this, _| {
            let now = Instant::now();
            for n in &m.0 {
                this.consider(now, n);
            }
        });
    }
}

impl Handler<SetRouters> for RoutingActor {
    type Result = ();
    fn handle(&mut self, m: SetRouters, ctx: &mut Context<Self>) {
        guarded(self, ctx, |this, _| this.routers.extend(m.0));
    }
}

impl Handler<ClosestNodes> for RoutingActor {
    type Result = MessageResult<ClosestNodes>;
    fn handle(&mut self, m: ClosestNodes, ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(guarded(self, ctx, |this, _| {
            this.table
                .closest(Instant::now(), &m.target, m.n, NodeFilter::NotBad)
        }))
    }
}

impl Handler<TableSnapshot> for RoutingActor {
    type Result = MessageResult<TableSnapshot>;
    fn handle(&mut self, _: TableSnapshot, ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(guarded(self, ctx, |this, _| this.table.nodes()))
    }
}

impl Handler<RoutingSummaryQuery> for RoutingActor {
    type Result = MessageResult<RoutingSummaryQuery>;
    fn handle(&mut self, _: RoutingSummaryQuery, ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(guarded(self, ctx, |this, _| {
            let now = Instant::now();
            RoutingSummary {
                stats: this.table.stats(now),
                estimated_dht_size: this.table.estimated_dht_size(now),
                own_id: this.table.own_id(),
            }
        }))
    }
}

impl Handler<LookupFromTable> for RoutingActor {
    type Result = ();
    fn handle(&mut self, m: LookupFromTable, ctx: &mut Context<Self>) {
        guarded(self, ctx, |this, _| this.start_from_table(m.0));
    }
}

impl Handler<RefreshAllBuckets> for RoutingActor {
    type Result = usize;
    fn handle(&mut self, m: RefreshAllBuckets, ctx: &mut Context<Self>) -> usize {
        guarded(self, ctx, |this, _| {
            let targets = this.table.refresh_targets(&mut this.rng);
            let n = targets.len();
            for (i, target) in targets.into_iter().enumerate() {
                this.start_from_table(StartLookup {
                    id: i as u64,
                    target,
                    kind: LookupKind::FindNode,
                    seeds: Vec::new(),
                    addr_seeds: Vec::new(),
                    announce: None,
                    sink: m.sink.clone(),
                });
            }
            n
        })
    }
}

lifecycle!(RoutingActor);
