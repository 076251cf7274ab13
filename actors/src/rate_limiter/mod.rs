//! RateLimiterActor: the gate on both directions.
//!
//! Inbound, it admits each datagram against a per-IP budget *before*
//! decoding it (as libtorrent's dos_blocker does), then decodes it once and
//! sends queries to the actor that answers them and responses to the
//! transaction table. Outbound, it holds the node's query budget: queries
//! beyond the budget wait in a bounded queue instead of going out in a
//! burst, and the same target is never asked of the same node twice within
//! the configured spacing: a repeat waits until the spacing has passed.
//!
//! It runs on the socket's Arbiter, so the first hop of the hot path
//! (receive loop to here) never crosses threads.

mod inbound;
mod outbound;

pub(crate) use outbound::refuse;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Addr, Context, Recipient};
use dhtd_protocol::rate_limit::{IpRateLimiter, QueryKey, Rate, Spacing, TokenBucket};

use crate::announce::AnnounceActor;
use crate::counters::{ActorKind, Counters};
use crate::messages::{InboundQueries, InboundQuery, InboundResponse, InboundResponses, SendQuery};
use crate::routing::RoutingActor;
use crate::socket::DatagramSender;
use crate::supervision::{lifecycle, Supervised};
use crate::wakeup::{self, Timed, Wakeup};

/// Limits, each with the reason it exists.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// Queries accepted per source IP. Defends the node's CPU and upload
    /// against one abusive or broken peer. Default 20/s, burst 40.
    pub queries_per_ip: Rate,
    /// Responses and errors accepted per source IP; they are matched against
    /// our own queries, so this only bounds floods. Default 200/s, burst 400.
    pub responses_per_ip: Rate,
    /// Source IPs tracked at once; bounds the limiter's memory under a
    /// spoofed flood. Default 65,536.
    pub max_tracked_ips: usize,
    /// Queries we send per second, so that no node bans us as a spammer.
    /// Default 250/s, burst 100.
    pub outbound_queries: Rate,
    /// Queries waiting for the budget; beyond this they are refused.
    /// Default 4,096.
    pub max_queued_queries: usize,
    /// Minimum time between two queries of the same method for the same
    /// target to the same node; a repeat waits until then. Default 1 s.
    pub query_spacing: Duration,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            queries_per_ip: Rate {
                per_second: 20.0,
                burst: 40.0,
            },
            responses_per_ip: Rate {
                per_second: 200.0,
                burst: 400.0,
            },
            max_tracked_ips: 65_536,
            outbound_queries: Rate {
                per_second: 250.0,
                burst: 100.0,
            },
            max_queued_queries: 4096,
            query_spacing: Duration::from_secs(1),
        }
    }
}

/// Where the rate limiter hands admitted traffic.
pub struct RateLimiterLinks {
    /// Answers ping, find_node and unknown methods.
    pub routing: Addr<RoutingActor>,
    /// Answers get_peers and announce_peer.
    pub announce: Addr<AnnounceActor>,
    /// Matches responses; sends our queries.
    pub responses: Recipient<InboundResponses>,
    /// Sends our queries once the budget allows.
    pub transactions: Recipient<SendQuery>,
}

/// The gate; see the module docs.
pub struct RateLimiterActor {
    limits: RateLimits,
    read_only: bool,
    queries_in: IpRateLimiter,
    responses_in: IpRateLimiter,
    outbound: TokenBucket,
    spacing: Spacing<QueryKey>,
    queue: VecDeque<SendQuery>,
    /// Repeats waiting for their spacing, by the time they may go.
    spaced: BTreeMap<(Instant, u64), SendQuery>,
    next_seq: u64,
    links: RateLimiterLinks,
    /// What one batch of datagrams brought for each actor, sent on as one
    /// message each at the end of the batch.
    to_routing: Vec<InboundQuery>,
    to_store: Vec<InboundQuery>,
    to_transactions: Vec<InboundResponse>,
    sender: DatagramSender,
    counters: Arc<Counters>,
    wakeup: Wakeup,
    mailbox_capacity: usize,
}

impl RateLimiterActor {
    /// A gate with these limits. `read_only` nodes answer no queries (BEP 43).
    pub fn new(
        limits: RateLimits,
        read_only: bool,
        links: RateLimiterLinks,
        sender: DatagramSender,
        counters: Arc<Counters>,
        mailbox_capacity: usize,
    ) -> Self {
        RateLimiterActor {
            queries_in: IpRateLimiter::new(limits.queries_per_ip, limits.max_tracked_ips),
            responses_in: IpRateLimiter::new(limits.responses_per_ip, limits.max_tracked_ips),
            outbound: TokenBucket::new(Instant::now(), limits.outbound_queries),
            spacing: Spacing::new(limits.query_spacing, limits.max_queued_queries * 16),
            queue: VecDeque::new(),
            spaced: BTreeMap::new(),
            next_seq: 0,
            limits,
            read_only,
            links,
            to_routing: Vec::new(),
            to_store: Vec::new(),
            to_transactions: Vec::new(),
            sender,
            counters,
            wakeup: Wakeup::default(),
            mailbox_capacity,
        }
    }

    /// Sends what the batch brought, one message per actor; a full mailbox
    /// drops the lot, counted per datagram.
    fn flush(&mut self) {
        fn send_on<M, T>(
            pending: &mut Vec<T>,
            to: impl FnOnce(M) -> Result<(), actix::prelude::SendError<M>>,
            wrap: impl FnOnce(Vec<T>) -> M,
            counters: &Counters,
        ) {
            if pending.is_empty() {
                return;
            }
            // An exact-size copy: `pending` keeps its capacity for the next batch.
            let mut batch = Vec::with_capacity(pending.len());
            batch.append(pending);
            let n = batch.len();
            if to(wrap(batch)).is_err() {
                counters.dropped_many(crate::counters::DropReason::MailboxFull, n);
            }
        }
        let links = &self.links;
        let counters = &self.counters;
        send_on(
            &mut self.to_routing,
            |m| links.routing.try_send(m),
            InboundQueries,
            counters,
        );
        send_on(
            &mut self.to_store,
            |m| links.announce.try_send(m),
            InboundQueries,
            counters,
        );
        send_on(
            &mut self.to_transactions,
            |m| links.responses.try_send(m),
            InboundResponses,
            counters,
        );
    }
}

impl Actor for RateLimiterActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
        self.arm(ctx);
    }
}

impl Supervised for RateLimiterActor {
    const KIND: ActorKind = ActorKind::RateLimiter;

    fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    fn restart(&mut self, ctx: &mut Context<Self>) {
        wakeup::restart(self, ctx);
    }
}

impl Timed for RateLimiterActor {
    fn wakeup(&mut self) -> &mut Wakeup {
        &mut self.wakeup
    }

    fn on_wakeup(&mut self, ctx: &mut Context<Self>) {
        self.on_timer(ctx);
    }
}

lifecycle!(RateLimiterActor);
