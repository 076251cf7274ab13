//! The wiring: where each envelope goes in the actor driver. One `Links`
//! serves every actor, so the map from addressee to actor is written once.

use std::sync::Arc;

use crate::api::ApiSinks;
use crate::shell::In;
use actix::Recipient;
use dhtd_protocol::node::{
    ApiEvent, Deliver, IoRequest, LogEvent, LogLevel, LookupsInput, RateLimiterInput, RoutingInput,
    StoreInput, SupervisorInput, TransactionsInput,
};
use dhtd_protocol::telemetry::{DropReason, Telemetry};

/// What the driver does with [`IoRequest`]s (name resolution, files): the
/// embedding crate decides, off the actor threads.
pub type IoHandler = Arc<dyn Fn(IoRequest) + Send + Sync>;

/// The addresses of a node's actors and services.
#[derive(Clone)]
pub struct Links {
    /// The rate limiter (gate and pacer).
    pub rate_limiter: Recipient<In<RateLimiterInput>>,
    /// The routing table.
    pub routing: Recipient<In<RoutingInput>>,
    /// The transaction table.
    pub transactions: Recipient<In<TransactionsInput>>,
    /// The announce store.
    pub store: Recipient<In<StoreInput>>,
    /// The lookup pool.
    pub lookups: Recipient<In<LookupsInput>>,
    /// The supervisor's bootstrap.
    pub supervisor: Recipient<In<SupervisorInput>>,
    /// The application's waiting callers.
    pub api: ApiSinks,
    /// I/O work.
    pub io: IoHandler,
    /// Where shed messages are counted.
    pub telemetry: Arc<Telemetry>,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Links")
    }
}

impl Links {
    /// Inbound traffic may be shed when an actor is overloaded (counted as
    /// `mailbox_full`); `do_send` would queue past the mailbox's capacity.
    fn shed_or_send<M: Send + 'static>(&self, to: &Recipient<In<M>>, m: M, sheddable: usize) {
        if sheddable == 0 {
            to.do_send(In(m));
        } else if to.try_send(In(m)).is_err() {
            self.telemetry
                .dropped
                .add(DropReason::MailboxFull, sheddable as u64);
        }
    }
}

impl Deliver for Links {
    fn rate_limiter(&mut self, m: RateLimiterInput) {
        self.rate_limiter.do_send(In(m));
    }
    fn routing(&mut self, m: RoutingInput) {
        self.routing.do_send(In(m));
    }
    fn transactions(&mut self, m: TransactionsInput) {
        let n = m.sheddable();
        self.shed_or_send(&self.transactions, m, n);
    }
    fn store(&mut self, m: StoreInput) {
        let n = m.sheddable();
        self.shed_or_send(&self.store, m, n);
    }
    fn lookups(&mut self, m: LookupsInput) {
        self.lookups.do_send(In(m));
    }
    fn supervisor(&mut self, m: SupervisorInput) {
        self.supervisor.do_send(In(m));
    }
    fn api(&mut self, m: ApiEvent) {
        if let Some(gone) = self.api.deliver(m) {
            // The caller stopped listening: stop working for it.
            self.lookups.do_send(In(LookupsInput::Cancel(gone)));
        }
    }
    fn io(&mut self, m: IoRequest) {
        (self.io)(m);
    }
    fn log(&mut self, m: LogEvent) {
        // tracing wants a literal target per call site.
        match (m.level(), m.target()) {
            (LogLevel::Info, "dht::bootstrap") => tracing::info!(target: "dht::bootstrap", "{m}"),
            (LogLevel::Info, "dht::lookup") => tracing::info!(target: "dht::lookup", "{m}"),
            (LogLevel::Info, _) => tracing::info!(target: "dht::node", "{m}"),
            (LogLevel::Warn, "dht::bootstrap") => tracing::warn!(target: "dht::bootstrap", "{m}"),
            (LogLevel::Warn, "dht::lookup") => tracing::warn!(target: "dht::lookup", "{m}"),
            (LogLevel::Warn, _) => tracing::warn!(target: "dht::node", "{m}"),
        }
    }
}
