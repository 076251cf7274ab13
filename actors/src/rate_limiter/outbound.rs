//! Outbound: the query budget, its queue, and the spacing rule.

use std::time::{Duration, Instant};

use actix::{Context, Handler};

use crate::wakeup::{wake_at, Arm};
use dhtd_protocol::rate_limit::SpacingVerdict;

use super::RateLimiterActor;
use crate::counters::Refusal;
use crate::messages::{QueryDone, QueryFailure, SendQuery};
use crate::supervision::guarded;

/// How often idle per-IP buckets are forgotten when nothing else wakes us.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Tells the asker its query was not sent.
pub(crate) fn refuse(query: SendQuery, why: Refusal, counters: &crate::counters::Counters) {
    counters.refused(why);
    if let Some(reply_to) = query.reply_to {
        reply_to.do_send(QueryDone {
            tag: query.tag,
            to: query.to,
            node: query.node,
            rtt: None,
            result: Err(QueryFailure::Refused(why)),
        });
    }
}

impl Handler<SendQuery> for RateLimiterActor {
    type Result = ();

    fn handle(&mut self, query: SendQuery, ctx: &mut Context<Self>) {
        guarded(self, ctx, |this, ctx| this.on_send_query(query, ctx));
    }
}

impl RateLimiterActor {
    fn on_send_query(&mut self, query: SendQuery, ctx: &mut Context<Self>) {
        let now = Instant::now();
        // Pings count too (target zero): a stranger's every query must not
        // make us ping it again.
        let key = (query.to, query.query.target(), query.query.method() as u8);
        match self.spacing.try_use(now, key) {
            SpacingVerdict::Go => {}
            SpacingVerdict::WaitUntil(ready) => {
                // A repeat waits for its spacing; it is not sent early.
                if self.queued() >= self.limits.max_queued_queries {
                    refuse(query, Refusal::QueueFull, &self.counters);
                    return;
                }
                self.counters.refused(Refusal::Spacing);
                self.spaced.insert((ready, self.next_seq), query);
                self.next_seq += 1;
                self.arm(ctx);
                return;
            }
            SpacingVerdict::Full => {
                refuse(query, Refusal::Spacing, &self.counters);
                return;
            }
        }
        if self.queue.is_empty() && self.outbound.try_take(now, self.limits.outbound_queries) {
            self.links.transactions.do_send(query);
            return;
        }
        if self.queued() >= self.limits.max_queued_queries {
            refuse(query, Refusal::QueueFull, &self.counters);
            return;
        }
        self.queue.push_back(query);
        if self.queue.len() == 1 {
            self.arm(ctx);
        }
    }

    fn queued(&self) -> usize {
        self.queue.len() + self.spaced.len()
    }

    pub(super) fn on_timer(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        while let Some(entry) = self.spaced.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let query = entry.remove();
            self.on_send_query(query, ctx);
        }
        while !self.queue.is_empty() && self.outbound.try_take(now, self.limits.outbound_queries) {
            if let Some(q) = self.queue.pop_front() {
                self.links.transactions.do_send(q);
            }
        }
        if self.queue.is_empty() {
            self.queries_in.forget_idle(now);
            self.responses_in.forget_idle(now);
        }
        self.arm(ctx);
    }

    /// One timer: the next budget token while queries wait, else the sweep.
    pub(super) fn arm(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let mut wait = if self.queue.is_empty() {
            SWEEP_EVERY
        } else {
            self.outbound
                .wait_time(now, self.limits.outbound_queries)
                .max(Duration::from_millis(1))
        };
        if let Some((ready, _)) = self.spaced.keys().next() {
            wait = wait.min(ready.saturating_duration_since(now));
        }
        wake_at(self, ctx, now + wait, Arm::Replace);
    }
}
