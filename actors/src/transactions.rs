//! TransactionsActor: our outstanding queries.
//!
//! Owns `dhtd_protocol::transactions::TransactionTable`. It encodes and
//! sends each query the rate limiter lets through, matches responses and
//! errors by transaction id *and* address, reports the outcome to whoever
//! asked, tells the routing table who answered and who did not, and votes
//! on our external address from the responses' `ip` key (BEP 42).

use std::sync::Arc;
use std::time::Instant;

use actix::{Actor, Context, Handler, Recipient};
use dhtd_protocol::ip_vote::ExternalIpVotes;
use dhtd_protocol::krpc::{Body, Message, Query};
use dhtd_protocol::server::VERSION;
use dhtd_protocol::transactions::{Expired, TransactionConfig, TransactionTable};
use dhtd_protocol::{NodeId, NodeInfo};
use rand::rngs::StdRng;

use crate::counters::{ActorKind, Counters, DropReason, Refusal};
use crate::messages::{
    ExternalAddressLearned, InboundResponse, InboundResponses, NodeFailed, NodeResponded, OutQuery,
    QueryDone, QueryFailure, SendQuery,
};
use crate::rate_limiter::refuse;
use crate::supervision::{guarded, lifecycle, Supervised};
use crate::wakeup::{self, wake_at, Arm, Timed, Wakeup};

struct Pending {
    reply_to: Option<Recipient<QueryDone>>,
    tag: u64,
    node: Option<NodeId>,
}

/// Where the transaction table reports.
pub struct TransactionLinks {
    /// Nodes that answered.
    pub responded: Recipient<NodeResponded>,
    /// Nodes that failed.
    pub failed: Recipient<NodeFailed>,
    /// Our external address, when the vote changes.
    pub external_address: Option<Recipient<ExternalAddressLearned>>,
}

/// The transaction table's actor.
pub struct TransactionsActor {
    table: TransactionTable<Pending>,
    own_id: NodeId,
    read_only: bool,
    rng: StdRng,
    sender: crate::socket::DatagramSender,
    links: TransactionLinks,
    votes: ExternalIpVotes,
    counters: Arc<Counters>,
    wakeup: Wakeup,
    buf: Vec<u8>,
}

impl TransactionsActor {
    /// A table of at most `config.max_pending` queries.
    pub fn new(
        config: TransactionConfig,
        own_id: NodeId,
        read_only: bool,
        rng: StdRng,
        sender: crate::socket::DatagramSender,
        links: TransactionLinks,
        counters: Arc<Counters>,
    ) -> Self {
        TransactionsActor {
            table: TransactionTable::new(config),
            own_id,
            read_only,
            rng,
            sender,
            links,
            votes: ExternalIpVotes::new(),
            counters,
            wakeup: Wakeup::default(),
            buf: Vec::with_capacity(256),
        }
    }

    fn on_send(&mut self, q: SendQuery, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let pending = Pending {
            reply_to: q.reply_to.clone(),
            tag: q.tag,
            node: q.node,
        };
        let Ok(tid) = self.table.start(now, &mut self.rng, q.to, pending) else {
            refuse(q, Refusal::TooManyPending, &self.counters);
            return;
        };
        let query = match &q.query {
            OutQuery::Ping => Query::Ping,
            OutQuery::FindNode(target) => Query::FindNode {
                target: *target,
                want: None,
            },
            OutQuery::GetPeers(info_hash) => Query::GetPeers {
                info_hash: *info_hash,
                want: None,
            },
            OutQuery::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
            } => Query::AnnouncePeer {
                info_hash: *info_hash,
                port: *port,
                implied_port: *implied_port,
                token: token.as_bytes(),
            },
        };
        self.buf.clear();
        Message {
            transaction_id: tid.as_bytes(),
            version: Some(VERSION),
            requester_ip: None,
            read_only: self.read_only,
            body: Body::Query {
                sender: self.own_id,
                query,
            },
        }
        .encode(&mut self.buf);
        if !self.sender.send(q.to, &self.buf) {
            self.table.cancel(tid);
            refuse(q, Refusal::SendFailed, &self.counters);
            return;
        }
        self.counters.query_out(q.query.method());
        self.arm(ctx);
    }

    fn on_response(&mut self, now: Instant, r: InboundResponse) {
        let Ok(done) = self.table.on_response(now, &r.tid, r.from) else {
            self.counters.dropped(DropReason::UnknownTransaction);
            return;
        };
        let Pending {
            reply_to,
            tag,
            node,
        } = done.payload;
        let result = match r.result {
            Ok(reply) => {
                self.counters.response_in();
                if let Some(seen) = r.requester_ip {
                    if let Some(ip) = self.votes.vote(r.from.ip(), seen.ip()) {
                        if let Some(to) = &self.links.external_address {
                            to.do_send(ExternalAddressLearned(ip));
                        }
                    }
                }
                let info = NodeInfo {
                    id: reply.id,
                    addr: r.from,
                };
                self.links.responded.do_send(NodeResponded {
                    info,
                    heard: reply.nodes.clone(),
                });
                Ok(reply)
            }
            Err(code) => {
                self.counters.error_in(code);
                if let Some(id) = node {
                    self.links.failed.do_send(NodeFailed {
                        info: NodeInfo { id, addr: r.from },
                    });
                }
                Err(QueryFailure::Remote(code))
            }
        };
        if let Some(reply_to) = reply_to {
            reply_to.do_send(QueryDone {
                tag,
                to: r.from,
                node,
                rtt: Some(done.rtt),
                result,
            });
        }
    }

    fn arm(&mut self, ctx: &mut Context<Self>) {
        if let Some(deadline) = self.table.poll_timeout() {
            wake_at(self, ctx, deadline, Arm::KeepEarlier);
        }
    }
}

impl Actor for TransactionsActor {
    type Context = Context<Self>;
}

impl Supervised for TransactionsActor {
    const KIND: ActorKind = ActorKind::Transactions;

    fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    fn restart(&mut self, ctx: &mut Context<Self>) {
        wakeup::restart(self, ctx);
    }
}

impl Timed for TransactionsActor {
    fn wakeup(&mut self) -> &mut Wakeup {
        &mut self.wakeup
    }

    fn on_wakeup(&mut self, ctx: &mut Context<Self>) {
        for expired in self.table.expire(Instant::now()) {
            // Retransmission is off (one attempt): a lookup asks another node instead.
            let Expired::TimedOut { to, payload, .. } = expired else {
                continue;
            };
            self.counters.timeout();
            if let Some(id) = payload.node {
                self.links.failed.do_send(NodeFailed {
                    info: NodeInfo { id, addr: to },
                });
            }
            if let Some(reply_to) = payload.reply_to {
                reply_to.do_send(QueryDone {
                    tag: payload.tag,
                    to,
                    node: payload.node,
                    rtt: None,
                    result: Err(QueryFailure::Timeout),
                });
            }
        }
        self.arm(ctx);
    }
}

impl Handler<SendQuery> for TransactionsActor {
    type Result = ();

    fn handle(&mut self, q: SendQuery, ctx: &mut Context<Self>) {
        guarded(self, ctx, |this, ctx| this.on_send(q, ctx));
    }
}

impl Handler<InboundResponses> for TransactionsActor {
    type Result = ();

    fn handle(&mut self, batch: InboundResponses, ctx: &mut Context<Self>) {
        guarded(self, ctx, |this, _| {
            let now = Instant::now();
            for r in batch.0 {
                this.on_response(now, r);
            }
        });
    }
}

lifecycle!(TransactionsActor);
