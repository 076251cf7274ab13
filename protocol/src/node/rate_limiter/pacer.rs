//! Outbound: the query budget, its queue, and the spacing rule, so that
//! the node never sends a burst that gets it banned as a spammer.
//!
//! A query first passes the spacing rule: the same method for the same
//! target to the same node at most once per [`RateLimits::query_spacing`]
//! (pings count too, with target zero, so that a stranger's every query
//! cannot make us ping it again); a repeat waits until the spacing has
//! passed. Then the budget: a token per query, at
//! [`RateLimits::outbound_queries`]; without one it waits in a queue, in
//! order. Both waits share [`RateLimits::max_queued_queries`]; beyond it a
//! query is not sent, and its asker is told.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use crate::node::{
    Asker, Envelope, LookupsInput, OutboundQuery, Outputs, QueryDone, QueryFailure, RateLimits,
    TransactionsInput,
};
use crate::rate_limit::{QueryKey, Spacing, SpacingVerdict, TokenBucket};
use crate::telemetry::{Delay, NotSent, Telemetry};
use crate::upload::{UploadBudget, QUERY_ESTIMATE};

/// The outbound pacer.
#[derive(Debug)]
pub struct Pacer {
    limits: RateLimits,
    /// The node's upload budget: a query waits for a query's worth.
    pub(super) upload: Arc<UploadBudget>,
    budget: TokenBucket,
    spacing: Spacing<QueryKey>,
    queue: VecDeque<OutboundQuery>,
    /// Repeats waiting for their spacing, by the time they may go.
    spaced: BTreeMap<(Instant, u64), OutboundQuery>,
    next_seq: u64,
}

/// Tells the asker of `query` that it was not sent.
fn not_sent(query: OutboundQuery, why: NotSent, telemetry: &Telemetry, out: &mut Outputs) {
    telemetry.not_sent.incr(why);
    let done = QueryDone {
        to: query.to,
        node: query.node,
        rtt: None,
        result: Err(QueryFailure::NotSent(why)),
    };
    if let Some(e) = query.asker.told(done) {
        out.push(e);
    }
}

impl Pacer {
    /// Applies new limits from now on; what is queued stays queued.
    pub fn reconfigure(&mut self, limits: &RateLimits) {
        self.limits = *limits;
        self.spacing = Spacing::new(limits.query_spacing, limits.max_queued_queries * 16);
    }

    /// A pacer with a full budget.
    pub fn new(now: Instant, limits: &RateLimits) -> Self {
        Pacer {
            limits: *limits,
            upload: Arc::new(UploadBudget::new(limits.upload)),
            budget: TokenBucket::new(now, limits.outbound_queries),
            spacing: Spacing::new(limits.query_spacing, limits.max_queued_queries * 16),
            queue: VecDeque::new(),
            spaced: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// Queries waiting for the budget or their spacing.
    pub fn queued(&self) -> usize {
        self.queue.len() + self.spaced.len()
    }

    /// A query to send: through now, later, or not at all.
    pub fn handle_send(
        &mut self,
        now: Instant,
        query: OutboundQuery,
        telemetry: &Telemetry,
        out: &mut Outputs,
    ) {
        let key = (query.to, query.query.target(), query.query.method() as u8);
        match self.spacing.try_use(now, key) {
            SpacingVerdict::Go => {}
            SpacingVerdict::WaitUntil(ready) => {
                // A repeat waits for its spacing; it is never sent early.
                if self.queued() >= self.limits.max_queued_queries {
                    not_sent(query, NotSent::QueueFull, telemetry, out);
                    return;
                }
                telemetry.delayed.incr(Delay::Spacing);
                // A lookup that asks the same node for the same target
                // again soon (two lookups in a row) must not count the
                // wait as the node's silence.
                if let (Asker::Lookup(lookup), Some(node)) = (query.asker, query.node) {
                    out.push(Envelope::Lookups(LookupsInput::Delayed {
                        lookup,
                        node,
                        until: ready,
                    }));
                }
                self.spaced.insert((ready, self.next_seq), query);
                self.next_seq += 1;
                return;
            }
            SpacingVerdict::Full => {
                not_sent(query, NotSent::SpacingFull, telemetry, out);
                return;
            }
        }
        let upload_room = self.upload.room(now) >= QUERY_ESTIMATE;
        if self.queue.is_empty()
            && upload_room
            && self.budget.try_take(now, self.limits.outbound_queries)
        {
            out.push(Envelope::Transactions(TransactionsInput::Send(query)));
            return;
        }
        if self.queued() >= self.limits.max_queued_queries {
            not_sent(query, NotSent::QueueFull, telemetry, out);
            return;
        }
        telemetry.delayed.incr(if upload_room {
            Delay::Budget
        } else {
            Delay::Upload
        });
        self.queue.push_back(query);
    }

    /// Lets out the repeats whose spacing has passed and the queued queries
    /// the budget allows.
    pub fn handle_timeout(&mut self, now: Instant, telemetry: &Telemetry, out: &mut Outputs) {
        while let Some(entry) = self.spaced.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let query = entry.remove();
            // Its spacing has passed, so this goes straight to the budget.
            self.handle_send(now, query, telemetry, out);
        }
        while !self.queue.is_empty()
            && self.upload.room(now) >= QUERY_ESTIMATE
            && self.budget.try_take(now, self.limits.outbound_queries)
        {
            if let Some(q) = self.queue.pop_front() {
                out.push(Envelope::Transactions(TransactionsInput::Send(q)));
            }
        }
    }

    /// The next budget token while queries wait, or the next spaced repeat.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let budget = (!self.queue.is_empty()).then(|| {
            let queries = self.budget.ready_at(self.limits.outbound_queries);
            queries.max(self.upload.ready_at(queries, QUERY_ESTIMATE))
        });
        let spaced = self.spaced.keys().next().map(|(ready, _)| *ready);
        budget.into_iter().chain(spaced).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{Asker, LookupId, LookupsInput, OutQuery};
    use crate::rate_limit::Rate;
    use std::time::Duration;

    fn query(port: u16, q: OutQuery, asker: Asker) -> OutboundQuery {
        OutboundQuery {
            to: std::net::SocketAddr::from(([10, 0, 0, 1], port)),
            node: None,
            query: q,
            asker,
        }
    }

    fn sent(out: &mut Outputs) -> Vec<OutboundQuery> {
        let mut v = Vec::new();
        while let Some(e) = out.pop() {
            if let Envelope::Transactions(TransactionsInput::Send(q)) = e {
                v.push(q);
            }
        }
        v
    }

    /// With the upload budget spent, a query waits for a query's worth of
    /// it, counted as delayed by the upload throttle, then goes.
    #[test]
    fn a_query_waits_for_the_upload_budget() {
        let t0 = crate::test_epoch();
        let telemetry = Telemetry::default();
        let mut p = Pacer::new(t0, &RateLimits::default());
        p.upload = Arc::new(UploadBudget::new(Some(Rate {
            per_second: 1000.0,
            burst: 1024.0,
        })));
        p.upload.spend(t0, 1024);
        let mut out = Outputs::default();
        p.handle_send(
            t0,
            query(1, OutQuery::Ping, Asker::Nobody),
            &telemetry,
            &mut out,
        );
        assert!(sent(&mut out).is_empty());
        assert_eq!(telemetry.snapshot().delayed.get(Delay::Upload), 1);
        let wake = p.poll_timeout().unwrap();
        assert_eq!(wake, t0 + std::time::Duration::from_millis(150));
        p.handle_timeout(wake, &telemetry, &mut out);
        assert_eq!(sent(&mut out).len(), 1);
    }

    /// The budget spreads a burst: beyond it queries wait, in order, and
    /// leave one per token.
    #[test]
    fn a_burst_beyond_the_budget_waits_its_turn() {
        let t0 = crate::test_epoch();
        let telemetry = Telemetry::default();
        let limits = RateLimits {
            outbound_queries: Rate {
                per_second: 10.0,
                burst: 2.0,
            },
            ..RateLimits::default()
        };
        let mut p = Pacer::new(t0, &limits);
        let mut out = Outputs::default();
        for port in 1..=5 {
            p.handle_send(
                t0,
                query(port, OutQuery::Ping, Asker::Nobody),
                &telemetry,
                &mut out,
            );
        }
        assert_eq!(sent(&mut out).len(), 2);
        assert_eq!(p.queued(), 3);
        assert_eq!(telemetry.snapshot().delayed.get(Delay::Budget), 3);
        let wake = p.poll_timeout().unwrap();
        assert_eq!(wake, t0 + Duration::from_millis(100));
        p.handle_timeout(wake, &telemetry, &mut out);
        let next = sent(&mut out);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].to.port(), 3, "in order");
    }

    /// The same target to the same node within the spacing waits until the
    /// spacing has passed; another target goes at once.
    #[test]
    fn a_repeat_waits_for_its_spacing() {
        let t0 = crate::test_epoch();
        let telemetry = Telemetry::default();
        let limits = RateLimits {
            query_spacing: Duration::from_secs(1),
            ..RateLimits::default()
        };
        let mut p = Pacer::new(t0, &limits);
        let mut out = Outputs::default();
        let find = OutQuery::FindNode(crate::NodeId([7; 20]));
        p.handle_send(
            t0,
            query(1, find.clone(), Asker::Nobody),
            &telemetry,
            &mut out,
        );
        p.handle_send(
            t0,
            query(1, find.clone(), Asker::Nobody),
            &telemetry,
            &mut out,
        );
        p.handle_send(t0, query(2, find, Asker::Nobody), &telemetry, &mut out);
        assert_eq!(sent(&mut out).len(), 2);
        assert_eq!(p.poll_timeout(), Some(t0 + Duration::from_secs(1)));
        p.handle_timeout(t0 + Duration::from_millis(999), &telemetry, &mut out);
        assert!(sent(&mut out).is_empty(), "never early");
        p.handle_timeout(t0 + Duration::from_secs(1), &telemetry, &mut out);
        assert_eq!(sent(&mut out).len(), 1);
        assert_eq!(telemetry.snapshot().delayed.get(Delay::Spacing), 1);
    }

    /// A full queue refuses, and the asker hears why.
    #[test]
    fn beyond_the_queue_the_asker_is_told_not_sent() {
        let t0 = crate::test_epoch();
        let telemetry = Telemetry::default();
        let limits = RateLimits {
            outbound_queries: Rate {
                per_second: 1.0,
                burst: 1.0,
            },
            max_queued_queries: 1,
            ..RateLimits::default()
        };
        let mut p = Pacer::new(t0, &limits);
        let mut out = Outputs::default();
        let asker = Asker::Lookup(LookupId(4));
        for port in 1..=3 {
            p.handle_send(t0, query(port, OutQuery::Ping, asker), &telemetry, &mut out);
        }
        let mut told = Vec::new();
        while let Some(e) = out.pop() {
            if let Envelope::Lookups(LookupsInput::QueryDone { lookup, done }) = e {
                told.push((lookup, done.result));
            }
        }
        assert_eq!(
            told,
            vec![(LookupId(4), Err(QueryFailure::NotSent(NotSent::QueueFull)))]
        );
        assert_eq!(telemetry.snapshot().not_sent.get(NotSent::QueueFull), 1);
    }
}
