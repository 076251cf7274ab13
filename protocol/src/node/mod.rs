//! The node: every decision a DHT node makes, as pure pieces that two
//! drivers run unchanged.
//!
//! ```text
//!            datagrams                    Envelope::* (one per piece)
//!  socket ─────────────► RateLimiter ──Store(Queries)────────► Store ──► answers (outbox)
//!                        (gate+pacer) ──Transactions(Responses)─┐  │
//!                            ▲    │                             ▼  │ Routing(Queried)
//!    Lookups, Routing, API ──┘    └──Transactions(Send)──► Transactions ──► queries (outbox)
//!      RateLimiter(Send)                                  │   │   └──► Supervisor(ExternalAddress)
//!                                         Routing(Responded/Failed)   └──► Lookups / Api (QueryDone)
//!                                                         ▼
//!                       Routing (table upkeep) ──Store/Lookups(Snapshot), Supervisor(TableSummary)
//!                                              ──Lookups(Start) refreshes, RateLimiter(Send) pings
//!                       Lookups (pool) ──RateLimiter(Send), Store(LocalPeers), Api(Lookup), Supervisor(LookupFinished)
//!                       Supervisor (bootstrap) ──Lookups(Start/Bootstrapped), Routing(..), Io(..), Api(Bootstrapped)
//! ```
//!
//! Each piece is a [`Piece`]: it takes inputs that describe what was
//! observed (`handle`, with `now`), keeps its state, and leaves its
//! outputs as data in its [`Outputs`]: datagrams to send, and [`Envelope`]s
//! that name the piece (or the driver service: API, I/O, log) that must act
//! on them. A driver only delivers: it reads the clock, calls the piece,
//! hands each envelope to its addressee ([`Envelope::deliver`]) and sends
//! the datagrams, and wakes the piece at [`Piece::poll_timeout`]. The actor
//! driver (`dhtd-actors`) puts each piece in an actor; the simulator
//! (`sim`, behind the `sim` feature) puts all of a node's pieces in one
//! struct and thousands of nodes on one virtual network. Nothing else
//! differs between them.

pub mod bootstrap;
mod config;
pub mod families;
mod log;
pub mod lookups;
mod messages;
pub mod outbox;
pub mod rate_limiter;
pub mod responder;
pub mod transactions;
pub mod upkeep;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

pub use config::*;
pub use log::*;
pub use messages::*;
pub use outbox::Outbox;

use crate::id::NodeId;
use crate::telemetry::{Component, Telemetry};

/// One piece of a node: its state, and what it decided to do.
pub trait Piece {
    /// What the piece is told.
    type Input;
    /// Which component it is (the actor that owns it, for counting).
    const COMPONENT: Component;
    /// Something was observed at `now`.
    fn handle(&mut self, now: Instant, input: Self::Input);
    /// `now` is at or past [`Piece::poll_timeout`]: do what is due.
    fn handle_timeout(&mut self, now: Instant);
    /// When to call [`Piece::handle_timeout`] next, if ever.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Its outputs, for the driver to take.
    fn outputs(&mut self) -> &mut Outputs;
}

/// What a piece decided: messages for the other pieces and services, and
/// datagrams for the socket, in the order they were decided.
#[derive(Debug, Default)]
pub struct Outputs {
    envelopes: VecDeque<Envelope>,
    /// Datagrams to send.
    pub outbox: Outbox,
}

impl Outputs {
    /// Queues a message.
    pub fn push(&mut self, envelope: Envelope) {
        self.envelopes.push_back(envelope);
    }

    /// The oldest message not yet taken.
    pub fn pop(&mut self) -> Option<Envelope> {
        self.envelopes.pop_front()
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.envelopes.len()
    }

    /// Whether no message waits.
    pub fn is_empty(&self) -> bool {
        self.envelopes.is_empty()
    }

    /// Whether nothing waits to be taken: no message and no datagram.
    pub fn is_drained(&self) -> bool {
        self.envelopes.is_empty() && self.outbox.is_empty()
    }

    /// Gives back the memory of a burst, once everything was taken: for a
    /// driver that holds many nodes (the simulator), where each piece's
    /// peak would otherwise stay for good. A driver of one node keeps it.
    pub fn release_peak(&mut self) {
        if self.envelopes.is_empty() && self.envelopes.capacity() > 0 {
            self.envelopes = VecDeque::new();
        }
        if self.outbox.is_empty() {
            self.outbox = Outbox::default();
        }
    }

    /// Moves everything `other` holds to the end of these outputs.
    pub fn append(&mut self, other: &mut Outputs) {
        self.envelopes.append(&mut other.envelopes);
        self.outbox.append(&mut other.outbox);
        // The part's queue is empty now: it keeps no more than a usual
        // handling needs (a bootstrap's hundreds of pings once, not for good).
        if other.envelopes.capacity() > 32 {
            other.envelopes = VecDeque::new();
        }
    }
}

/// A message from one piece for another piece or a driver service.
#[derive(Debug)]
pub enum Envelope {
    /// For the inbound gate and outbound pacer.
    RateLimiter(RateLimiterInput),
    /// For the routing table's upkeep.
    Routing(RoutingInput),
    /// For the transaction table.
    Transactions(TransactionsInput),
    /// For the announce store, which answers queries.
    Store(StoreInput),
    /// For the lookup pool.
    Lookups(LookupsInput),
    /// For the supervisor's bootstrap.
    Supervisor(SupervisorInput),
    /// For the application that asked (a lookup's caller, a ping).
    Api(ApiEvent),
    /// For the driver's I/O: name resolution, files.
    Io(IoRequest),
    /// For the log.
    Log(LogEvent),
}

impl Envelope {
    /// Hands the message to its addressee. The one place that maps an
    /// envelope to a destination; both drivers use it.
    pub fn deliver(self, to: &mut impl Deliver) {
        match self {
            Envelope::RateLimiter(m) => to.rate_limiter(m),
            Envelope::Routing(m) => to.routing(m),
            Envelope::Transactions(m) => to.transactions(m),
            Envelope::Store(m) => to.store(m),
            Envelope::Lookups(m) => to.lookups(m),
            Envelope::Supervisor(m) => to.supervisor(m),
            Envelope::Api(m) => to.api(m),
            Envelope::Io(m) => to.io(m),
            Envelope::Log(m) => to.log(m),
        }
    }
}

/// A driver's transport: one method per addressee of an [`Envelope`].
pub trait Deliver {
    /// To the rate limiter.
    fn rate_limiter(&mut self, m: RateLimiterInput);
    /// To the routing table.
    fn routing(&mut self, m: RoutingInput);
    /// To the transaction table.
    fn transactions(&mut self, m: TransactionsInput);
    /// To the announce store.
    fn store(&mut self, m: StoreInput);
    /// To the lookup pool.
    fn lookups(&mut self, m: LookupsInput);
    /// To the supervisor.
    fn supervisor(&mut self, m: SupervisorInput);
    /// To the application.
    fn api(&mut self, m: ApiEvent);
    /// To the driver's I/O.
    fn io(&mut self, m: IoRequest);
    /// To the log.
    fn log(&mut self, m: LogEvent);
}

/// Every piece of one node, built from one configuration: what the actor
/// driver spreads over its actors and the simulator keeps together.
#[derive(Debug)]
pub struct Pieces {
    /// The gate and the pacer.
    pub rate_limiter: rate_limiter::RateLimiter,
    /// The routing tables (one per family) and their upkeep.
    pub routing: families::PerFamily<upkeep::Upkeep>,
    /// Outstanding queries.
    pub transactions: transactions::Transactions,
    /// Stored peers, tokens, answers.
    pub store: responder::Responder,
    /// Running lookups (a pool per family).
    pub lookups: families::LookupPools,
    /// Bootstrap (per family).
    pub supervisor: families::Bootstraps,
}

impl Pieces {
    /// A node with id `own_id`, its randomness drawn from `rng` (one
    /// independent stream per piece), counting into `telemetry`.
    pub fn new(
        now: Instant,
        own_id: NodeId,
        config: &NodeConfig,
        sources: bootstrap::Sources,
        rng: &mut impl RngCore,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        let mut fork = || StdRng::seed_from_u64(rng.next_u64());
        let on = config.families;
        // The streams are forked in the order a one-family node always
        // used, so that seeded simulations replay as before.
        let routing = families::PerFamily::new(on, |f| {
            upkeep::Upkeep::new(now, f, own_id, config, fork(), telemetry.clone())
        });
        // One upload budget for every piece that sends.
        let upload = Arc::new(crate::upload::UploadBudget::new(config.limits.upload));
        let transactions =
            transactions::Transactions::new(own_id, config, fork(), telemetry.clone())
                .with_upload(upload.clone());
        let store = responder::Responder::new(now, own_id, config, fork(), telemetry.clone())
            .with_upload(upload.clone());
        let pools = families::PerFamily::new(on, |f| {
            lookups::LookupPool::new(f, own_id, config, telemetry.clone())
        });
        let bootstraps = families::PerFamily::new(on, |f| {
            // Each family starts from its own part of the saved table.
            let sources = bootstrap::Sources {
                cached: sources
                    .cached
                    .iter()
                    .filter(|n| crate::Family::of(&n.addr) == f)
                    .copied()
                    .collect(),
                ..sources.clone()
            };
            bootstrap::Bootstrap::new(now, f, own_id, config, sources, fork(), telemetry.clone())
        });
        Pieces {
            rate_limiter: rate_limiter::RateLimiter::new(now, config, telemetry.clone())
                .with_upload(upload),
            routing,
            transactions,
            store,
            lookups: families::LookupPools::new(pools, config),
            supervisor: families::Bootstraps::new(bootstraps, telemetry),
        }
    }
}
