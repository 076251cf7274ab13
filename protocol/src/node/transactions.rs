//! The transaction table's piece: our outstanding queries.
//!
//! It encodes and sends each query the pacer lets through, sends it again
//! with the same transaction id after each timeout while attempts remain
//! ([`TransactionConfig::attempts`]), matches responses and errors by
//! transaction id *and* address, tells the asker how its query went,
//! tells the routing table who answered and who did not, and votes on our
//! external address from the responses' `ip` key (BEP 42).
//!
//! [`TransactionConfig::attempts`]: crate::transactions::TransactionConfig::attempts

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;

use super::{
    Asker, Envelope, InboundResponse, NodeConfig, OutQuery, OutboundQuery, Outputs, Piece,
    QueryDone, QueryFailure, RoutingInput, SupervisorInput, TransactionsInput,
};
use crate::compact::NodeInfo;
use crate::family::Family;
use crate::id::NodeId;
use crate::ip_vote::ExternalIpVotes;
use crate::krpc::{Body, Message, PutArgs, Query, SignedArgs, Want};
use crate::rtt::RttEstimate;
use crate::server::VERSION;
use crate::telemetry::{Component, DropReason, ErrorLabel, NotSent, Telemetry};
use crate::transactions::{Expired, TransactionId, TransactionTable, Unmatched};
use crate::upload::UploadBudget;

#[derive(Debug)]
struct Pending {
    asker: Asker,
    node: Option<NodeId>,
    query: OutQuery,
}

/// The transaction table's piece.
#[derive(Debug)]
pub struct Transactions {
    table: TransactionTable<Pending>,
    own_id: NodeId,
    read_only: bool,
    rng: StdRng,
    /// One vote per family: each family's address is learned from the
    /// answers that came over it.
    votes: [ExternalIpVotes; 2],
    /// BEP 32 `want` on our queries: both families when both are on, so
    /// that every answer feeds both tables.
    want: Option<Want>,
    /// The node's upload budget: a query let through by the pacer goes,
    /// its bytes counted (into debt if need be).
    upload: Arc<UploadBudget>,
    rtt: RttEstimate,
    telemetry: Arc<Telemetry>,
    buf: Vec<u8>,
    outputs: Outputs,
}

impl Transactions {
    /// An empty table of at most `config.transactions.max_pending` queries.
    pub fn new(
        own_id: NodeId,
        config: &NodeConfig,
        rng: StdRng,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        Transactions {
            table: TransactionTable::new(config.transactions),
            own_id,
            read_only: config.read_only,
            rng,
            votes: Default::default(),
            want: (config.families.len() > 1).then_some(Want::BOTH),
            upload: Arc::new(UploadBudget::new(config.limits.upload)),
            rtt: RttEstimate::default(),
            telemetry,
            buf: Vec::with_capacity(256),
            outputs: Outputs::default(),
        }
    }

    /// Shares the node's upload budget.
    pub fn with_upload(mut self, upload: Arc<UploadBudget>) -> Self {
        self.upload = upload;
        self
    }

    /// Queries awaiting an answer.
    pub fn pending(&self) -> usize {
        self.table.len()
    }

    /// Our external address in `family`, once a majority of its
    /// responders agree.
    pub fn external_ip(&self, family: Family) -> Option<std::net::IpAddr> {
        self.votes[family.index()].current()
    }

    fn encode(&mut self, tid: TransactionId, query: &OutQuery) {
        let want = self.want;
        let query = match query {
            OutQuery::Ping => Query::Ping,
            OutQuery::FindNode(target) => Query::FindNode {
                target: *target,
                want,
            },
            OutQuery::GetPeers(info_hash) => Query::GetPeers {
                info_hash: *info_hash,
                want,
                scrape: false,
                noseed: false,
            },
            OutQuery::Scrape(info_hash) => Query::GetPeers {
                info_hash: *info_hash,
                want,
                scrape: true,
                noseed: false,
            },
            OutQuery::Get { target, seq } => Query::Get {
                target: *target,
                seq: *seq,
                want,
            },
            OutQuery::Put(p, token) => {
                let signed = p.item.signed.as_ref();
                Query::Put(PutArgs {
                    token: token.as_bytes(),
                    value: &p.item.value,
                    signed: signed.map(|s| SignedArgs {
                        key: &s.key,
                        salt: &s.salt,
                        seq: s.seq,
                        sig: &s.sig,
                    }),
                    cas: p.cas,
                })
            }
            OutQuery::SampleInfohashes(target) => Query::SampleInfohashes {
                target: *target,
                want,
            },
            OutQuery::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
                seed,
            } => Query::AnnouncePeer {
                info_hash: *info_hash,
                port: *port,
                implied_port: *implied_port,
                token: token.as_bytes(),
                seed: *seed,
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
    }

    fn tell(&mut self, asker: Asker, done: QueryDone) {
        if let Some(e) = asker.told(done) {
            self.outputs.push(e);
        }
    }

    fn send(&mut self, now: Instant, q: OutboundQuery) {
        let pending = Pending {
            asker: q.asker,
            node: q.node,
            // Kept for retransmission; a put's item is shared, not copied.
            query: q.query.clone(),
        };
        let Ok(tid) = self.table.start(now, &mut self.rng, q.to, pending) else {
            self.telemetry.not_sent.incr(NotSent::TooManyPending);
            let done = QueryDone {
                to: q.to,
                node: q.node,
                rtt: None,
                result: Err(QueryFailure::NotSent(NotSent::TooManyPending)),
            };
            self.tell(q.asker, done);
            return;
        };
        self.encode(tid, &q.query);
        self.upload.spend(now, self.buf.len());
        self.outputs.outbox.push(q.to, &self.buf);
        self.telemetry.queries_out.incr(q.query.method());
    }

    /// Learns a round trip: retransmissions and the timeout follow them.
    fn measured(&mut self, rtt: Duration) {
        self.rtt.record(rtt);
        if let Some(after) = self.rtt.timeout() {
            self.table.set_measured_timeout(after);
        }
    }

    fn response(&mut self, now: Instant, r: InboundResponse) {
        let done = match self.table.on_response(now, &r.tid, r.from) {
            Ok(done) => done,
            Err(Unmatched::Late { rtt }) => return self.late_response(rtt, r),
            Err(Unmatched::UnknownId | Unmatched::WrongAddress) => {
                self.telemetry.dropped.incr(DropReason::UnknownTransaction);
                return;
            }
        };
        self.measured(done.rtt);
        let Pending { asker, node, .. } = done.payload;
        let result = match r.result {
            Ok(reply) => {
                self.telemetry.responses_in.incr(());
                if let Some(seen) = r.requester_ip {
                    let family = Family::of(&r.from);
                    let votes = &mut self.votes[family.index()];
                    let vote = (Family::of(&seen) == family)
                        .then(|| votes.vote(r.from.ip(), seen.ip()))
                        .flatten();
                    if let Some(ip) = vote {
                        self.outputs
                            .push(Envelope::Supervisor(SupervisorInput::ExternalAddress(ip)));
                    }
                }
                self.outputs
                    .push(Envelope::Routing(RoutingInput::Responded {
                        info: NodeInfo {
                            id: reply.id,
                            addr: r.from,
                        },
                        heard: reply.nodes.clone(),
                        rtt: Some(done.rtt),
                    }));
                Ok(reply)
            }
            Err(error) => {
                self.telemetry.errors_in.incr(ErrorLabel::of(error.code));
                if let Some(id) = node {
                    self.outputs.push(Envelope::Routing(RoutingInput::Failed {
                        info: NodeInfo { id, addr: r.from },
                    }));
                }
                Err(QueryFailure::Remote(error))
            }
        };
        let done = QueryDone {
            to: r.from,
            node,
            rtt: Some(done.rtt),
            result,
        };
        self.tell(asker, done);
    }

    /// An answer after its query timed out: its asker was told already,
    /// but its round trip says how long to wait from now on, and its
    /// sender lives (a node on a slow link learns its table this way).
    fn late_response(&mut self, rtt: Duration, r: InboundResponse) {
        self.telemetry.late_responses.incr(());
        self.measured(rtt);
        if let Ok(reply) = r.result {
            self.outputs
                .push(Envelope::Routing(RoutingInput::Responded {
                    info: NodeInfo {
                        id: reply.id,
                        addr: r.from,
                    },
                    heard: reply.nodes,
                    rtt: Some(rtt),
                }));
        }
    }
}

impl Piece for Transactions {
    type Input = TransactionsInput;
    const COMPONENT: Component = Component::Transactions;

    fn handle(&mut self, now: Instant, input: TransactionsInput) {
        match input {
            TransactionsInput::Send(q) => self.send(now, q),
            TransactionsInput::Responses(batch) => {
                for r in batch {
                    self.response(now, r);
                }
            }
            TransactionsInput::Reconfigure(config) => {
                self.read_only = config.read_only;
                self.table.set_max_pending(config.transactions.max_pending);
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        for expired in self.table.expire(now) {
            match expired {
                Expired::Retransmit { id, to } => {
                    let Some(query) = self.table.payload(id).map(|p| p.query.clone()) else {
                        continue;
                    };
                    self.encode(id, &query);
                    self.upload.spend(now, self.buf.len());
                    self.outputs.outbox.push(to, &self.buf);
                    self.telemetry.retransmits.incr(());
                }
                Expired::TimedOut { to, payload, .. } => {
                    self.telemetry.timeouts.incr(());
                    if let Some(id) = payload.node {
                        self.outputs.push(Envelope::Routing(RoutingInput::Failed {
                            info: NodeInfo { id, addr: to },
                        }));
                    }
                    let done = QueryDone {
                        to,
                        node: payload.node,
                        rtt: None,
                        result: Err(QueryFailure::Timeout),
                    };
                    self.tell(payload.asker, done);
                }
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.table.poll_timeout()
    }

    fn outputs(&mut self) -> &mut Outputs {
        &mut self.outputs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{LookupId, LookupsInput, Reply};
    use crate::transactions::TransactionConfig;
    use bytes::Bytes;
    use rand::SeedableRng;
    use std::net::SocketAddr;
    use std::time::Duration;

    fn piece(attempts: u8) -> Transactions {
        let config = NodeConfig {
            transactions: TransactionConfig {
                timeout: Duration::from_secs(1),
                attempts,
                max_pending: 2,
            },
            ..NodeConfig::default()
        };
        Transactions::new(
            NodeId([9; 20]),
            &config,
            StdRng::seed_from_u64(3),
            Arc::new(Telemetry::default()),
        )
    }

    fn ping_to(port: u16) -> OutboundQuery {
        OutboundQuery {
            to: SocketAddr::from(([10, 0, 0, 1], port)),
            node: Some(NodeId([port as u8; 20])),
            query: OutQuery::Ping,
            asker: Asker::Lookup(LookupId(7)),
        }
    }

    fn sent(t: &mut Transactions) -> Vec<Vec<u8>> {
        let v = t.outputs.outbox.iter().map(|(_, d)| d.to_vec()).collect();
        t.outputs.outbox.clear();
        v
    }

    fn results(t: &mut Transactions) -> Vec<Result<Reply, QueryFailure>> {
        let mut v = Vec::new();
        while let Some(e) = t.outputs.pop() {
            if let Envelope::Lookups(LookupsInput::QueryDone { done, .. }) = e {
                v.push(done.result);
            }
        }
        v
    }

    /// `attempts = 2`: after the first timeout the same query goes again
    /// with the same transaction id; after the second, the asker hears of
    /// the timeout and the routing table of the failure.
    #[test]
    fn a_query_is_sent_again_while_attempts_remain() {
        let t0 = crate::test_epoch();
        let mut t = piece(2);
        t.handle(t0, TransactionsInput::Send(ping_to(1)));
        let first = sent(&mut t);
        assert_eq!(first.len(), 1);
        t.handle_timeout(t0 + Duration::from_secs(1));
        assert_eq!(sent(&mut t), first, "the same datagram again");
        assert!(results(&mut t).is_empty());
        t.handle_timeout(t0 + Duration::from_secs(2));
        assert!(sent(&mut t).is_empty());
        assert_eq!(results(&mut t), vec![Err(QueryFailure::Timeout)]);
        let s = t.telemetry.snapshot();
        assert_eq!((s.retransmits.value(), s.timeouts.value()), (1, 1));
    }

    #[test]
    fn responses_match_by_id_and_address_and_the_table_is_bounded() {
        let t0 = crate::test_epoch();
        let mut t = piece(1);
        for port in 1..=3 {
            t.handle(t0, TransactionsInput::Send(ping_to(port)));
        }
        assert_eq!(
            results(&mut t),
            vec![Err(QueryFailure::NotSent(NotSent::TooManyPending))]
        );
        let datagrams = sent(&mut t);
        let tid = Message::decode(&datagrams[0])
            .unwrap()
            .transaction_id
            .to_vec();
        let response = |from: SocketAddr| InboundResponse {
            from,
            tid: Bytes::from(tid.clone()),
            requester_ip: None,
            result: Ok(Reply {
                id: NodeId([1; 20]),
                ..Reply::default()
            }),
        };
        let wrong = SocketAddr::from(([10, 0, 0, 2], 1));
        t.handle(t0, TransactionsInput::Responses(vec![response(wrong)]));
        assert!(results(&mut t).is_empty());
        let right = SocketAddr::from(([10, 0, 0, 1], 1));
        t.handle(t0, TransactionsInput::Responses(vec![response(right)]));
        assert_eq!(results(&mut t).len(), 1);
        assert_eq!(
            t.telemetry
                .snapshot()
                .dropped
                .get(DropReason::UnknownTransaction),
            1
        );
    }
}
