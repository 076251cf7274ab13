//! The application's side of a node: callers waiting for their lookups'
//! events and pings' answers, by the ids the pieces know them by, and the
//! node's state as a watch.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use dhtd_protocol::node::{ApiEvent, CallerId, LookupEvent, QueryDone};
use dhtd_protocol::Family;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch};

#[derive(Debug)]
struct Registry {
    lookups: HashMap<CallerId, mpsc::UnboundedSender<LookupEvent>>,
    pongs: HashMap<u64, oneshot::Sender<QueryDone>>,
    next: u64,
    /// Per family, IPv4 first.
    external_ips: [Option<IpAddr>; 2],
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
                external_ips: [None, None],
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

    /// Our address as other nodes see it: the IPv4 one if known, else
    /// the IPv6 one.
    pub fn external_ip(&self) -> Option<IpAddr> {
        let r = self.registry.lock();
        r.external_ips[0].or(r.external_ips[1])
    }

    /// Our address in `family` as other nodes see it.
    pub fn external_ip_of(&self, family: Family) -> Option<IpAddr> {
        self.registry.lock().external_ips[family.index()]
    }

    /// Delivers one event; returns the caller that stopped listening, if any.
    pub(crate) fn deliver(&self, event: ApiEvent) -> Option<CallerId> {
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
                    let _ = tx.send(*done);
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
                r.external_ips[Family::of_ip(ip).index()] = Some(ip);
                None
            }
        }
    }
}
