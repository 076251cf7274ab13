//! AnnounceActor: owns the peer store and the token secrets.
//!
//! It answers `get_peers` (stored peers within BEP 32's reply budget, the
//! closest nodes from the routing table's latest snapshot, and always a
//! token), BEP 44 `get` (nodes and a token, no value: we store no items) and `announce_peer` (token checked against the querier's IP;
//! `implied_port` stores the UDP source port), expires stale announces and
//! rotates the token secret on its one timer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Context, Handler, MessageResult, Recipient};
use dhtd_protocol::krpc::ErrorCode;
use dhtd_protocol::rate_limit::{Spacing, SpacingVerdict};
use dhtd_protocol::routing::NodeSnapshot;
use dhtd_protocol::server::{self, Answer, Needs};
use dhtd_protocol::store::{AnnounceOutcome, PeerStore, PeerStoreConfig};
use dhtd_protocol::token::{TokenConfig, TokenSecrets};
use dhtd_protocol::{NodeId, NodeInfo, K};
use rand::rngs::StdRng;

use crate::counters::{ActorKind, AnnounceRejection, Counters};
use crate::messages::{
    InboundQueries, InboundQuery, NodeQueried, RoutingSnapshot, StoreSummary, StoreSummaryQuery,
};
use crate::socket::{DatagramSender, Outbox};
use crate::supervision::{guarded, lifecycle, Supervised};
use crate::wakeup::{self, wake_at, Arm, Timed, Wakeup};

/// A querier is reported to the routing table at most this often.
const REPORT_QUERIER_EVERY: Duration = Duration::from_secs(10);
/// Queriers remembered for that; beyond, reports are skipped.
const QUERIERS_TRACKED: usize = 8192;

/// The announce store's actor.
pub struct AnnounceActor {
    store: PeerStore,
    tokens: TokenSecrets,
    rng: StdRng,
    own_id: NodeId,
    nodes: Arc<NodeSnapshot>,
    sender: DatagramSender,
    routing: Recipient<NodeQueried>,
    counters: Arc<Counters>,
    wakeup: Wakeup,
    reported: Spacing<SocketAddr>,
    buf: Vec<u8>,
    /// Answers to the batch being handled, sent together at its end.
    outbox: Outbox,
}

impl AnnounceActor {
    /// A store with these caps; queriers are reported to `routing`.
    pub fn new(
        own_id: NodeId,
        store: PeerStoreConfig,
        tokens: TokenConfig,
        mut rng: StdRng,
        sender: DatagramSender,
        routing: Recipient<NodeQueried>,
        counters: Arc<Counters>,
    ) -> Self {
        let now = Instant::now();
        AnnounceActor {
            store: PeerStore::new(now, store),
            tokens: TokenSecrets::new(now, &mut rng, tokens),
            rng,
            own_id,
            nodes: Arc::new(NodeSnapshot::empty(own_id)),
            sender,
            routing,
            counters,
            wakeup: Wakeup::default(),
            reported: Spacing::new(REPORT_QUERIER_EVERY, QUERIERS_TRACKED),
            buf: Vec::with_capacity(1024),
            outbox: Outbox::default(),
        }
    }

    fn answer(&mut self, now: Instant, q: InboundQuery) {
        match (q.needs, &q.announce) {
            (Needs::Peers(info_hash), _) => {
                let nodes = self.nodes.closest(&NodeId::from(info_hash), K);
                let token = self.tokens.issue(now, q.from.ip());
                self.counters.token_issued();
                let budget = server::values_budget_for(&q.tid, q.from, &nodes, &token);
                let values = self.store.sample(now, &mut self.rng, &info_hash, budget);
                let answer = Answer {
                    nodes: &nodes,
                    values: &values,
                    token: Some(&token),
                    nodes_required: true,
                };
                server::encode_answer(&mut self.buf, &q.tid, self.own_id, q.from, answer);
            }
            (Needs::NodesAndToken(target), _) => {
                let nodes = self.nodes.closest(&target, K);
                let token = self.tokens.issue(now, q.from.ip());
                self.counters.token_issued();
                let answer = Answer {
                    nodes: &nodes,
                    values: &[],
                    token: Some(&token),
                    nodes_required: true,
                };
                server::encode_answer(&mut self.buf, &q.tid, self.own_id, q.from, answer);
            }
            (Needs::Store, Some(args)) => {
                if !self.tokens.check(now, q.from.ip(), &args.token) {
                    self.reject(
                        &q,
                        AnnounceRejection::BadToken,
                        ErrorCode::Protocol,
                        b"bad token",
                    );
                    return;
                }
                let port = if args.implied_port {
                    q.from.port()
                } else {
                    args.port
                };
                if port == 0 {
                    self.reject(
                        &q,
                        AnnounceRejection::BadPort,
                        ErrorCode::Protocol,
                        b"bad port",
                    );
                    return;
                }
                let peer = SocketAddr::new(q.from.ip(), port);
                match self.store.announce(now, args.info_hash, peer) {
                    AnnounceOutcome::Stored | AnnounceOutcome::Refreshed => {
                        self.counters.announce_stored();
                        server::encode_answer(
                            &mut self.buf,
                            &q.tid,
                            self.own_id,
                            q.from,
                            Answer::default(),
                        );
                    }
                    AnnounceOutcome::Rejected(_) => {
                        self.reject(
                            &q,
                            AnnounceRejection::Full,
                            ErrorCode::Server,
                            b"store full",
                        );
                        return;
                    }
                }
            }
            // The rate limiter sends only get_peers and announce_peer here.
            _ => {
                server::encode_error(
                    &mut self.buf,
                    &q.tid,
                    q.from,
                    ErrorCode::Protocol,
                    b"bad query",
                );
                self.counters.error_out(ErrorCode::Protocol.code());
            }
        }
        self.outbox.push(q.from, &self.buf);
        // The routing table needs to hear of a querier now and then, not for
        // every query it sends (a busy peer sends many).
        if self.reported.try_use(now, q.from) == SpacingVerdict::Go {
            self.routing.do_send(NodeQueried {
                info: NodeInfo {
                    id: q.sender,
                    addr: q.from,
                },
                read_only: q.read_only,
            });
        }
    }

    fn reject(&mut self, q: &InboundQuery, why: AnnounceRejection, code: ErrorCode, text: &[u8]) {
        self.counters.announce_rejected(why);
        self.counters.error_out(code.code());
        server::encode_error(&mut self.buf, &q.tid, q.from, code, text);
        self.outbox.push(q.from, &self.buf);
    }

    fn on_timer(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        self.store.expire(now);
        self.tokens.handle_timeout(now);
        self.arm(ctx);
    }

    fn arm(&mut self, ctx: &mut Context<Self>) {
        let next = self.store.poll_timeout().min(self.tokens.poll_timeout());
        wake_at(self, ctx, next, Arm::Replace);
    }
}

impl Actor for AnnounceActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.arm(ctx);
    }
}

impl Supervised for AnnounceActor {
    const KIND: ActorKind = ActorKind::AnnounceStore;

    fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    fn restart(&mut self, ctx: &mut Context<Self>) {
        wakeup::restart(self, ctx);
    }
}

impl Timed for AnnounceActor {
    fn wakeup(&mut self) -> &mut Wakeup {
        &mut self.wakeup
    }

    fn on_wakeup(&mut self, ctx: &mut Context<Self>) {
        self.on_timer(ctx);
    }
}

impl Handler<InboundQueries> for AnnounceActor {
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

impl Handler<RoutingSnapshot> for AnnounceActor {
    type Result = ();
    fn handle(&mut self, m: RoutingSnapshot, ctx: &mut Context<Self>) {
        guarded(self, ctx, |this, _| this.nodes = m.0);
    }
}

impl Handler<StoreSummaryQuery> for AnnounceActor {
    type Result = MessageResult<StoreSummaryQuery>;
    fn handle(&mut self, _: StoreSummaryQuery, ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(guarded(self, ctx, |this, _| {
            let s = this.store.stats();
            StoreSummary {
                info_hashes: s.info_hashes,
                peers: s.peers,
            }
        }))
    }
}

lifecycle!(AnnounceActor);
