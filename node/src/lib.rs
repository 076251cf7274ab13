//! # dhtd
//!
//! A BitTorrent mainline DHT node ([BEP 5](https://www.bittorrent.org/beps/bep_0005.html))
//! to embed: start one with [`Dht::builder`], then ask its [`DhtHandle`] for
//! the peers of an info hash, to announce us, to ping or add a node, or for
//! statistics, the way a BitTorrent client uses a tracker.
//!
//! The node is a set of actix actors on their own threads (see [`Runtime`]);
//! nothing actix appears in this API, and the handle's async methods work
//! from any executor: an application with its own tokio runtime, or none,
//! can use it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use dhtd::{Config, Dht, InfoHash, PortChoice};
//!
//! // A node on loopback that bootstraps from one other node.
//! let config = Config::local("127.0.0.1:0".parse().unwrap(), &["127.0.0.2:6881".parse().unwrap()]);
//! let dht = Dht::builder(config).start()?;
//! dht.wait_bootstrapped().await;
//!
//! let info_hash: InfoHash = "0123456789abcdef0123456789abcdef01234567".parse().unwrap();
//! let report = dht.announce(info_hash, PortChoice::Port(6881)).await?;
//! println!("{} of {} nodes accepted the announce", report.accepted, report.tried);
//!
//! let mut peers = dht.get_peers(info_hash);
//! while let Some(peer) = peers.next_peer().await {
//!     println!("peer {peer}");
//! }
//! println!("{:?}", peers.summary());
//! dht.shutdown().await;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

pub mod config;
pub mod metrics;
pub mod persist;
mod runtime;
mod service;
mod state;
mod stats;
pub mod swarm;
pub mod torrent;
mod udp_drops;
mod wiring;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use dhtd_actors::{In, NodeState};
use dhtd_protocol::lookup::LookupKind;
use dhtd_protocol::node::{
    AnnounceSpec, Asker, LookupsInput, OutQuery, OutboundQuery, QueryFailure, RateLimiterInput,
    Requester, StartLookup, SupervisorInput,
};
use tokio::sync::{mpsc, watch};

pub use config::{Config, NodeIdChoice, DEFAULT_RECV_BUFFER, DEFAULT_ROUTERS};
pub use dhtd_actors::{Clock, ManualClock};
pub use dhtd_protocol::lookup::LookupEnd;
pub use dhtd_protocol::node::{AnnounceReport, Confidence, LookupEvent, LookupSummary, NodeConfig};
pub use dhtd_protocol::routing::{BucketStats, RoutingStats};
pub use dhtd_protocol::store::StoreStats;
pub use dhtd_protocol::telemetry::{
    AnnounceRefusal, Component, DropReason, Method, NotSent, RestartReason, StoreCap,
    TelemetrySnapshot, Warning,
};
pub use dhtd_protocol::{InfoHash, NodeId};
pub use runtime::Runtime;
pub use service::{DhtService, Mode};
pub use stats::Stats;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The UDP socket could not be bound.
    #[error("cannot bind UDP {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The socket's receive buffer could not be set ([`Config::recv_buffer`]).
    #[error("recv_buffer: cannot set the UDP receive buffer to {bytes} bytes: {source}")]
    RecvBuffer {
        /// The size asked for.
        bytes: usize,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The actor threads could not be started.
    #[error("cannot start the actor threads: {0}")]
    Runtime(#[source] std::io::Error),
    /// The runtime given to the builder has been stopped.
    #[error("the runtime has stopped")]
    RuntimeStopped,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The node has been shut down.
    #[error("the DHT node has shut down")]
    Shutdown,
    /// `host:port` did not resolve to any address.
    #[error("cannot resolve {0}")]
    Resolve(String),
    /// The node did not answer in time.
    #[error("no answer (timeout)")]
    Timeout,
    /// The node answered with a KRPC error.
    #[error("the node answered with error {0}")]
    Remote(i64),
    /// We did not send the query.
    #[error("query not sent: {}", .0.label())]
    NotSent(NotSent),
}

impl From<QueryFailure> for Error {
    fn from(f: QueryFailure) -> Self {
        match f {
            QueryFailure::Timeout => Error::Timeout,
            QueryFailure::Remote(code) => Error::Remote(code),
            QueryFailure::NotSent(why) => Error::NotSent(why),
        }
    }
}

/// Which port an announce stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortChoice {
    /// This port (where our BitTorrent client listens).
    Port(u16),
    /// The UDP source port the receivers see (`implied_port`, for peers
    /// behind NAT whose mapped port differs).
    Implied,
}

impl PortChoice {
    fn spec(self) -> AnnounceSpec {
        match self {
            PortChoice::Port(port) => AnnounceSpec {
                port,
                implied_port: false,
            },
            PortChoice::Implied => AnnounceSpec {
                port: 0,
                implied_port: true,
            },
        }
    }
}

/// A node's answer to a ping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pong {
    /// Its id.
    pub id: NodeId,
    /// Its `v` (client and version), if sent.
    pub version: Option<Vec<u8>>,
    /// Round-trip time.
    pub rtt: Duration,
}

/// Starts a node.
#[derive(Debug)]
pub struct Dht {
    config: Config,
    runtime: Option<Runtime>,
}

impl Dht {
    /// A builder for a node with this configuration.
    pub fn builder(config: Config) -> Dht {
        Dht {
            config,
            runtime: None,
        }
    }

    /// Runs the node on a shared [`Runtime`] (many nodes, few threads)
    /// instead of threads of its own.
    pub fn runtime(mut self, runtime: &Runtime) -> Dht {
        self.runtime = Some(runtime.clone());
        self
    }

    /// Binds the socket, loads the state dir, starts the actors and begins
    /// bootstrapping. Returns at once; requests made before bootstrap
    /// completes wait for it.
    pub fn start(self) -> Result<DhtHandle, StartError> {
        let runtime = match self.runtime {
            Some(rt) => rt,
            None => Runtime::new().map_err(StartError::Runtime)?,
        };
        let node = wiring::start(self.config, &runtime)?;
        Ok(DhtHandle {
            inner: Arc::new(Inner {
                state: node.api.state(),
                node,
                _runtime: runtime,
            }),
        })
    }
}

struct Inner {
    node: Arc<wiring::Node>,
    state: watch::Receiver<NodeState>,
    _runtime: Runtime,
}

/// A running node. Cheap to clone; `Send + Sync`; usable from any executor.
#[derive(Clone)]
pub struct DhtHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DhtHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhtHandle")
            .field("local_addr", &self.inner.node.local_addr)
            .field("own_id", &self.inner.node.own_id)
            .finish()
    }
}

impl DhtHandle {
    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.node.local_addr
    }

    /// Our node id.
    pub fn id(&self) -> NodeId {
        self.inner.node.own_id
    }

    /// Whether bootstrap has completed.
    pub fn is_bootstrapped(&self) -> bool {
        *self.inner.state.borrow() == NodeState::Ready
    }

    /// Waits until bootstrap completes (or the node shuts down).
    pub async fn wait_bootstrapped(&self) {
        let mut rx = self.inner.state.clone();
        let _ = rx.wait_for(|s| *s != NodeState::Bootstrapping).await;
    }

    fn node(&self) -> &wiring::Node {
        &self.inner.node
    }

    fn lookup(
        &self,
        target: NodeId,
        kind: LookupKind,
        announce: Option<AnnounceSpec>,
    ) -> PeerStream {
        let node = self.node();
        let (caller, rx) = node.api.register_lookup();
        let mut start = StartLookup::new(target, kind, Requester::Caller(caller));
        start.announce = announce;
        // `do_send`, not `try_send`: a burst of API calls must not be
        // dropped (the pool bounds how many run). If the node is gone, the
        // request is dropped and the stream ends at once.
        if !node.is_stopping() {
            node.actors
                .shells
                .lookups
                .do_send(In(LookupsInput::Start(start)));
        }
        PeerStream { rx, summary: None }
    }

    /// Looks up the peers of `info_hash`: they stream in as found, then the
    /// summary. The DHT is sloppy: a lookup finds most peers, not always all.
    pub fn get_peers(&self, info_hash: InfoHash) -> PeerStream {
        self.lookup(NodeId::from(info_hash), LookupKind::GetPeers, None)
    }

    /// Looks up `info_hash` and announces us to the k closest nodes that gave
    /// a token. The peers found on the way are in the returned summary's count.
    pub async fn announce(
        &self,
        info_hash: InfoHash,
        port: PortChoice,
    ) -> Result<AnnounceReport, Error> {
        let mut stream = self.lookup(
            NodeId::from(info_hash),
            LookupKind::GetPeers,
            Some(port.spec()),
        );
        let summary = stream.finish().await.ok_or(Error::Shutdown)?;
        Ok(summary.announce.unwrap_or_default())
    }

    async fn announce_every_inner(
        &self,
        info_hash: InfoHash,
        port: PortChoice,
        every: Option<Duration>,
    ) -> Result<(), Error> {
        let node = self.node();
        if node.is_stopping() {
            return Err(Error::Shutdown);
        }
        let m = LookupsInput::AnnounceEvery {
            info_hash,
            spec: port.spec(),
            every,
        };
        node.actors
            .shells
            .lookups
            .send(In(m))
            .await
            .map_err(|_| Error::Shutdown)
    }

    /// Re-announces `info_hash` every `every` until [`DhtHandle::stop_announcing`]:
    /// stored announces expire, so a peer that wants to stay findable repeats.
    pub async fn announce_every(
        &self,
        info_hash: InfoHash,
        port: PortChoice,
        every: Duration,
    ) -> Result<(), Error> {
        self.announce_every_inner(info_hash, port, Some(every))
            .await
    }

    /// Stops the repeated announce of `info_hash`.
    pub async fn stop_announcing(&self, info_hash: InfoHash) -> Result<(), Error> {
        self.announce_every_inner(info_hash, PortChoice::Implied, None)
            .await
    }

    /// Looks up the nodes closest to `target`.
    pub async fn find_node(&self, target: NodeId) -> Result<LookupSummary, Error> {
        self.lookup(target, LookupKind::FindNode, None)
            .finish()
            .await
            .ok_or(Error::Shutdown)
    }

    /// Pings one node.
    pub async fn ping(&self, addr: SocketAddr) -> Result<Pong, Error> {
        let node = self.node();
        if node.is_stopping() {
            return Err(Error::Shutdown);
        }
        let (tag, rx) = node.api.register_pong();
        let query = OutboundQuery {
            to: addr,
            node: None,
            query: OutQuery::Ping,
            asker: Asker::Api(tag),
        };
        node.actors
            .shells
            .rate_limiter
            .send(In(RateLimiterInput::Send(query)))
            .await
            .map_err(|_| Error::Shutdown)?;
        let done = rx.await.map_err(|_| Error::Shutdown)?;
        let reply = done.result?;
        Ok(Pong {
            id: reply.id,
            version: reply.version,
            rtt: done.rtt.unwrap_or_default(),
        })
    }

    /// Adds a node by `host:port`, as rTorrent's `dht_add_node`: for nodes
    /// typed by hand, a .torrent's `nodes` and BitTorrent peers' PORT
    /// messages. It is pinged, joins the table when it answers, and seeds
    /// bootstrap if that has not succeeded yet (the newest nodes added are
    /// kept for that; see `BootstrapConfig::max_added_nodes`). Names are
    /// resolved on a separate thread.
    pub async fn add_node(&self, host_port: &str) -> Result<(), Error> {
        let addrs = match host_port.parse::<SocketAddr>() {
            Ok(a) => vec![a],
            Err(_) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let source = host_port.to_owned();
                std::thread::spawn(move || {
                    let _ = tx.send(wiring::resolve(&[source]));
                });
                rx.await.unwrap_or_default()
            }
        };
        if addrs.is_empty() {
            return Err(Error::Resolve(host_port.to_owned()));
        }
        let node = self.node();
        if node.is_stopping() {
            return Err(Error::Shutdown);
        }
        node.actors
            .shells
            .supervisor
            .send(In(SupervisorInput::AddNodes(addrs)))
            .await
            .map_err(|_| Error::Shutdown)
    }

    /// Adds every node of a .torrent's `nodes` list (see [`torrent`]).
    pub async fn add_nodes(&self, nodes: &[String]) -> Result<usize, Error> {
        let mut added = 0;
        for n in nodes {
            if self.add_node(n).await.is_ok() {
                added += 1;
            }
        }
        Ok(added)
    }

    /// Statistics: the table per bucket and state, the estimated DHT size,
    /// the store, traffic counters, restarts and warnings.
    pub async fn stats(&self) -> Result<Stats, Error> {
        stats::gather(self.node()).await
    }

    /// Pushes the node's telemetry to the installed metrics recorder now
    /// (it is pushed every second anyway); call before rendering a scrape.
    pub fn publish_metrics(&self) {
        self.node().report();
    }

    /// Saves the routing table and stops the node. Other handles' requests
    /// fail with [`Error::Shutdown`] afterwards. The node stops whether or
    /// not the save succeeds: [`DhtHandle::last_save_error`] then says.
    pub async fn shutdown(&self) {
        self.node().shutdown().await;
    }

    /// Why the latest write of the state dir failed (the routing table, or
    /// a node id), or `None` if it succeeded or nothing has been written
    /// yet. After [`DhtHandle::shutdown`] it is the outcome of the final
    /// save, so an application can tell its operator (`dhtd run` exits
    /// with status 1). Each failure is also logged, counted in
    /// `dht_state_save_failures_total`, and raises
    /// [`Warning::StateNotSaved`] until a write succeeds.
    pub fn last_save_error(&self) -> Option<Arc<persist::StateError>> {
        self.node().state.as_ref()?.last_error()
    }

    /// Test hook: makes `actor` panic inside a handler. The node must carry
    /// on with its state.
    #[cfg(feature = "fault-injection")]
    pub fn inject_panic(&self, actor: Component) {
        use dhtd_actors::supervision::InjectPanic;
        let a = &self.node().actors.shells;
        match actor {
            Component::Socket => self.node().actors.socket.do_send(InjectPanic),
            Component::RateLimiter => a.rate_limiter.do_send(InjectPanic),
            Component::RoutingTable => a.routing.do_send(InjectPanic),
            Component::Transactions => a.transactions.do_send(InjectPanic),
            Component::AnnounceStore => a.store.do_send(InjectPanic),
            Component::Lookups => a.lookups.do_send(InjectPanic),
            Component::Supervisor => a.supervisor.do_send(InjectPanic),
            _ => {}
        }
    }
}

/// The peers of a lookup as they are found, then its summary.
#[derive(Debug)]
pub struct PeerStream {
    rx: mpsc::UnboundedReceiver<LookupEvent>,
    summary: Option<LookupSummary>,
}

impl PeerStream {
    /// The next peer; `None` once the lookup has ended (see [`PeerStream::summary`]).
    pub async fn next_peer(&mut self) -> Option<SocketAddr> {
        loop {
            match self.rx.recv().await? {
                LookupEvent::Peer(p) => return Some(p),
                LookupEvent::Progress { .. } => {}
                LookupEvent::Finished(s) => self.summary = Some(s),
            }
        }
    }

    /// The next event: a peer, progress, or the summary (then `None`).
    pub async fn next_event(&mut self) -> Option<LookupEvent> {
        let event = self.rx.recv().await?;
        if let LookupEvent::Finished(s) = &event {
            self.summary = Some(s.clone());
        }
        Some(event)
    }

    /// The summary, once the stream has ended.
    pub fn summary(&self) -> Option<&LookupSummary> {
        self.summary.as_ref()
    }

    /// Runs the lookup to its end, dropping peers, and returns the summary
    /// (`None` if the node shut down first).
    pub async fn finish(&mut self) -> Option<LookupSummary> {
        while self.next_peer().await.is_some() {}
        self.summary.clone()
    }

    /// Collects every peer and the summary.
    pub async fn collect(mut self) -> (Vec<SocketAddr>, Option<LookupSummary>) {
        let mut peers = Vec::new();
        while let Some(p) = self.next_peer().await {
            peers.push(p);
        }
        (peers, self.summary)
    }
}

impl futures_core::Stream for PeerStream {
    type Item = LookupEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<LookupEvent>> {
        self.rx.poll_recv(cx)
    }
}
