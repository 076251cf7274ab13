//! The wiring: where each envelope goes in the actor driver. One `Links`
//! serves every actor, so the map from addressee to actor is written once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use actix::Recipient;
use dhtd_protocol::node::{
    ApiEvent, CallerId, Deliver, IoRequest, LogEvent, LogLevel, LookupEvent, LookupsInput,
    QueryDone, RateLimiterInput, RoutingInput, StoreInput, SupervisorInput, TransactionsInput,
};
use dhtd_protocol::telemetry::{DropReason, Telemetry};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch};

use crate::shell::In;

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

#[derive(Debug)]
struct Registry {
    lookups: HashMap<CallerId, mpsc::UnboundedSender<LookupEvent>>,
    pongs: HashMap<u64, oneshot::Sender<QueryDone>>,
    next: u64,
    external_ip: Option<IpAddr>,
    /// The node stopped: no caller will hear anything more.
    closed: bool,
}

/// The application's callers waiting for events, by the ids the pieces
/// know them by.
#[derive(Debug, Clone)]
pub struct ApiSinks {
    registry: Arc<Mutex<Registry>>,
    state: Arc<watch::Sender<NodeState>>,
}

/// Where a node is, for the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Bootstrap has not completed (or was lost).
    Bootstrapping,
    /// Bootstrapped.
    Ready,
    /// Shut down.
    Stopped,
}

impl Default for ApiSinks {
    fn default() -> Self {
        ApiSinks {
            registry: Arc::new(Mutex::new(Registry {
                lookups: HashMap::new(),
                pongs: HashMap::new(),
                next: 1,
                external_ip: None,
                closed: false,
            })),
            state: Arc::new(watch::channel(NodeState::Bootstrapping).0),
        }
    }
}

impl ApiSinks {
    /// A caller of a lookup: its id, and where its events arrive.
    pub fn register_lookup(&self) -> (CallerId, mpsc::UnboundedReceiver<LookupEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut r = self.registry.lock();
        let id = CallerId(r.next);
        r.next += 1;
        if !r.closed {
            r.lookups.insert(id, tx);
        }
        (id, rx)
    }

    /// A ping's tag, and where its outcome arrives.
    pub fn register_pong(&self) -> (u64, oneshot::Receiver<QueryDone>) {
        let (tx, rx) = oneshot::channel();
        let mut r = self.registry.lock();
        let tag = r.next;
        r.next += 1;
        if !r.closed {
            r.pongs.insert(tag, tx);
        }
        (tag, rx)
    }

    /// The node stopped: every waiting caller's stream ends now, and later
    /// ones end at once.
    pub fn close(&self) {
        let mut r = self.registry.lock();
        r.closed = true;
        r.lookups.clear();
        r.pongs.clear();
        self.state.send_replace(NodeState::Stopped);
    }

    /// Where the node is, as a watch.
    pub fn state(&self) -> watch::Receiver<NodeState> {
        self.state.subscribe()
    }

    /// Our address as other nodes see it.
    pub fn external_ip(&self) -> Option<IpAddr> {
        self.registry.lock().external_ip
    }

    /// Delivers one event; returns the caller that stopped listening, if any.
    fn deliver(&self, event: ApiEvent) -> Option<CallerId> {
        let mut r = self.registry.lock();
        match event {
            ApiEvent::Lookup { caller, event } => {
                let finished = matches!(event, LookupEvent::Finished(_));
                let sent = r.lookups.get(&caller).map(|tx| tx.send(event).is_ok());
                if finished || sent == Some(false) {
                    r.lookups.remove(&caller);
                }
                (sent == Some(false) && !finished).then_some(caller)
            }
            ApiEvent::Pong { tag, done } => {
                if let Some(tx) = r.pongs.remove(&tag) {
                    let _ = tx.send(done);
                }
                None
            }
            ApiEvent::Bootstrapped(b) => {
                if !r.closed {
                    self.state.send_replace(if b {
                        NodeState::Ready
                    } else {
                        NodeState::Bootstrapping
                    });
                }
                None
            }
            ApiEvent::ExternalAddress(ip) => {
                r.external_ip = Some(ip);
                None
            }
        }
    }
}
