//! The node an application holds ([`Dht`]) and how it is made
//! ([`DhtBuilder`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dhtd_actors::{In, NodeState};
use dhtd_protocol::lookup::LookupKind;
use dhtd_protocol::node::{
    AnnounceSpec, Asker, LookupsInput, OutQuery, OutboundQuery, RateLimiterInput, Reply, Requester,
    StartLookup, StoreInput, SupervisorInput, TransactionsInput,
};
use dhtd_protocol::Family;
use tokio::sync::watch;

use crate::persist::{SavedTable, StateError};
use crate::{
    stats, wiring, AnnounceReport, Config, Error, InfoHash, LookupEnd, LookupSummary, NodeConfig,
    NodeId, NodeInfo, PeerStream, Runtime, StartError, Stats,
};

/// How long dropping the last handle waits for the node to save its
/// table and stop, when it can wait (not on the node's own threads).
const DROP_WAIT: Duration = Duration::from_secs(10);

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
                seed: false,
            },
            PortChoice::Implied => AnnounceSpec {
                port: 0,
                implied_port: true,
                seed: false,
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

/// Makes a [`Dht`]: [`Dht::builder`], options, then [`DhtBuilder::start`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `start` is called"]
pub struct DhtBuilder {
    config: Config,
    runtime: Option<Runtime>,
    imported: Vec<NodeInfo>,
}

impl DhtBuilder {
    /// Runs the node on a shared [`Runtime`] (many nodes, few threads)
    /// instead of threads of its own.
    pub fn runtime(mut self, runtime: &Runtime) -> DhtBuilder {
        self.runtime = Some(runtime.clone());
        self
    }

    /// Starts from a routing table the application saved itself
    /// ([`Dht::export_table`]): its nodes are asked first at bootstrap,
    /// before the state dir's and the routers. The node keeps the id its
    /// [`Config::node_id`] gives; set
    /// [`NodeIdChoice::Fixed`](crate::NodeIdChoice::Fixed) to `table.id` to
    /// come back as the same node.
    pub fn import_table(mut self, table: SavedTable) -> DhtBuilder {
        self.imported.extend(table.nodes);
        self
    }

    /// Checks the configuration, binds the socket, loads the state dir,
    /// starts the actors and begins bootstrapping. Returns at once;
    /// requests made before bootstrap completes wait for it.
    ///
    /// A setting out of range is [`StartError::Config`], naming it.
    pub fn start(self) -> Result<Dht, StartError> {
        self.config.validate()?;
        let runtime = match self.runtime {
            Some(rt) => rt,
            None => Runtime::new().map_err(StartError::Runtime)?,
        };
        let node = wiring::start(self.config, self.imported, &runtime)?;
        Ok(Dht {
            inner: Arc::new(Inner {
                state: node.api.state(),
                node,
                runtime,
            }),
        })
    }
}

struct Inner {
    node: Arc<wiring::Node>,
    state: watch::Receiver<NodeState>,
    runtime: Runtime,
}

impl Drop for Inner {
    /// The last handle is gone: the node saves its table and stops, as it
    /// would on [`Dht::shutdown`].
    fn drop(&mut self) {
        if self.node.is_stopping() {
            return;
        }
        let node = self.node.clone();
        // The runtime lives until the node has stopped on it.
        let runtime = self.runtime.clone();
        let (done, stopped) = std::sync::mpsc::channel::<()>();
        let spawned = self.runtime.control().spawn(async move {
            node.shutdown().await;
            let _ = done.send(());
            drop(runtime);
        });
        // Waiting on one of the node's own threads would wait forever.
        if spawned && !self.runtime.is_current_thread_ours() {
            let _ = stopped.recv_timeout(DROP_WAIT);
        }
    }
}

/// A running DHT node. Cheap to clone, `Send + Sync`, usable from any
/// executor. The node runs until [`Dht::shutdown`] or until its last
/// clone is dropped; either way it saves its routing table (with a state
/// dir) and releases its socket.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use dhtd::{Config, Dht};
///
/// let dht = Dht::builder(Config::local("127.0.0.1:0".parse()?, &[])).start()?;
/// let addr = dht.local_addr();
/// drop(dht); // the last handle: the node stops and its port is free again
/// std::net::UdpSocket::bind(addr)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Dht {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Dht {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dht")
            .field("local_addrs", &self.inner.node.local_addrs)
            .field("id", &self.inner.node.own_id)
            .finish()
    }
}

impl Dht {
    /// A builder for a node with this configuration.
    pub fn builder(config: Config) -> DhtBuilder {
        DhtBuilder {
            config,
            runtime: None,
            imported: Vec::new(),
        }
    }

    /// The first bound UDP address: the IPv4 one when the node serves
    /// both families.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.node.local_addrs[0]
    }

    /// Every bound UDP address, one per address family, IPv4 first.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.inner.node.local_addrs
    }

    /// The bound address of `family`, if the node serves it.
    pub fn local_addr_of(&self, family: Family) -> Option<SocketAddr> {
        self.local_addrs()
            .iter()
            .copied()
            .find(|a| Family::of(a) == family)
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

    pub(crate) fn node(&self) -> &wiring::Node {
        &self.inner.node
    }

    /// Starts a lookup for this caller; `configure` sets what it does
    /// besides searching (announce, scrape, a BEP 44 item).
    pub(crate) fn start_lookup(
        &self,
        target: NodeId,
        kind: LookupKind,
        configure: impl FnOnce(&mut StartLookup),
    ) -> PeerStream {
        let node = self.node();
        let (caller, rx) = node.api.register_lookup();
        let mut start = StartLookup::new(target, kind, Requester::Caller(caller));
        configure(&mut start);
        // `do_send`, not `try_send`: a burst of API calls must not be
        // dropped (the pool bounds how many run). If the node is gone, the
        // request is dropped and the stream ends at once.
        if !node.is_stopping() {
            node.actors
                .shells
                .lookups
                .do_send(In(LookupsInput::Start(start)));
        }
        PeerStream::new(rx)
    }

    /// Looks up the peers of `info_hash`: they stream in as found, then the
    /// summary. The DHT is sloppy: a lookup finds most peers, not always all.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let swarm = dhtd::swarm::LocalSwarm::start(4, 1, |_, _| {}).await?;
    /// # swarm.wait_bootstrapped(std::time::Duration::from_secs(20)).await;
    /// # let dht = &swarm.nodes[3];
    /// let info_hash: dhtd::InfoHash = "0123456789abcdef0123456789abcdef01234567".parse()?;
    /// let mut peers = dht.get_peers(info_hash);
    /// while let Some(peer) = peers.next_peer().await {
    ///     println!("peer {peer}");
    /// }
    /// let summary = peers.summary().expect("the summary ends the stream");
    /// assert!(summary.responses > 0);
    /// # Ok(()) }
    /// ```
    pub fn get_peers(&self, info_hash: InfoHash) -> PeerStream {
        self.start_lookup(NodeId::from(info_hash), LookupKind::GetPeers, |_| {})
    }

    /// Looks up `info_hash` and announces us to the k closest nodes that gave
    /// a token.
    ///
    /// [`Error::NoNodeReached`] when no node that could take the announce
    /// answered (no contacts yet, or the network is down);
    /// [`Error::Overloaded`] when too many lookups were waiting.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let swarm = dhtd::swarm::LocalSwarm::start(4, 2, |_, _| {}).await?;
    /// # swarm.wait_bootstrapped(std::time::Duration::from_secs(20)).await;
    /// # let (dht, other) = (&swarm.nodes[3], &swarm.nodes[1]);
    /// use dhtd::PortChoice;
    ///
    /// let info_hash: dhtd::InfoHash = "0123456789abcdef0123456789abcdef01234567".parse()?;
    /// let report = dht.announce(info_hash, PortChoice::Port(6881)).await?;
    /// assert!(report.accepted > 0);
    /// // Another node finds us.
    /// let (peers, _) = other.get_peers(info_hash).collect().await;
    /// assert!(peers.iter().any(|p| p.port() == 6881));
    /// # Ok(()) }
    /// ```
    pub async fn announce(
        &self,
        info_hash: InfoHash,
        port: PortChoice,
    ) -> Result<AnnounceReport, Error> {
        self.announce_as(info_hash, port.spec()).await
    }

    async fn announce_as(
        &self,
        info_hash: InfoHash,
        spec: AnnounceSpec,
    ) -> Result<AnnounceReport, Error> {
        let mut stream = self.start_lookup(NodeId::from(info_hash), LookupKind::GetPeers, |s| {
            s.announce = Some(spec);
        });
        Self::stored(stream.finish().await)
    }

    /// What a lookup that stores at the closest nodes (an announce, a BEP
    /// 44 put) reports, or [`Error::NoNodeReached`] if it tried none.
    pub(crate) fn stored(summary: Option<LookupSummary>) -> Result<AnnounceReport, Error> {
        match Self::ended(summary)?.announce {
            Some(report) if report.tried > 0 => Ok(report),
            _ => Err(Error::NoNodeReached),
        }
    }

    /// [`Dht::announce`] as a seed: the nodes store that we have the whole
    /// torrent (BEP 33 `seed = 1`), which scrapes count apart.
    pub async fn announce_seeding(
        &self,
        info_hash: InfoHash,
        port: PortChoice,
    ) -> Result<AnnounceReport, Error> {
        let mut spec = port.spec();
        spec.seed = true;
        self.announce_as(info_hash, spec).await
    }

    /// Estimates the swarm of `info_hash` without joining it: a lookup
    /// that asks the nodes near it for the bloom filters of the seeds and
    /// peers they store (BEP 33 scrape) and counts their union. The peers
    /// found on the way stream in as with [`Dht::get_peers`]; the estimate
    /// is the summary's [`LookupSummary::scrape`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let swarm = dhtd::swarm::LocalSwarm::start(6, 9, |_, _| {}).await?;
    /// # swarm.wait_bootstrapped(std::time::Duration::from_secs(20)).await;
    /// use dhtd::{InfoHash, PortChoice};
    ///
    /// let info_hash = InfoHash([3; 20]);
    /// swarm.nodes[1].announce_seeding(info_hash, PortChoice::Port(6881)).await?;
    /// swarm.nodes[2].announce(info_hash, PortChoice::Port(6881)).await?;
    /// let (_, summary) = swarm.nodes[5].scrape(info_hash).collect().await;
    /// let swarm_size = summary.and_then(|s| s.scrape).expect("an estimate");
    /// assert_eq!((swarm_size.seeds, swarm_size.peers), (1, 1));
    /// # Ok(()) }
    /// ```
    pub fn scrape(&self, info_hash: InfoHash) -> PeerStream {
        self.start_lookup(NodeId::from(info_hash), LookupKind::GetPeers, |s| {
            s.scrape = true;
        })
    }

    /// A finished lookup's summary, or why there is none.
    fn ended(summary: Option<LookupSummary>) -> Result<LookupSummary, Error> {
        let summary = summary.ok_or(Error::Shutdown)?;
        if summary.end == LookupEnd::Refused {
            return Err(Error::Overloaded);
        }
        Ok(summary)
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

    /// Announces `info_hash` every `every`, the first one `every` from now
    /// (call [`Dht::announce`] for one at once), until
    /// [`Dht::stop_announcing`]: stored announces expire (after 45 minutes
    /// by default), so a peer that wants to stay findable repeats.
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

    /// Looks up the nodes closest to `target`;
    /// [`Error::NoNodeReached`] if none answered.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let swarm = dhtd::swarm::LocalSwarm::start(5, 4, |_, _| {}).await?;
    /// # swarm.wait_bootstrapped(std::time::Duration::from_secs(20)).await;
    /// # let dht = &swarm.nodes[4];
    /// let target = dhtd::NodeId([0x42; 20]);
    /// let summary = dht.find_node(target).await?;
    /// for node in &summary.closest {
    ///     println!("{} at {}", node.id, node.addr);
    /// }
    /// assert!(!summary.closest.is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn find_node(&self, target: NodeId) -> Result<LookupSummary, Error> {
        let mut stream = self.start_lookup(target, LookupKind::FindNode, |_| {});
        let summary = Self::ended(stream.finish().await)?;
        if summary.responses == 0 {
            return Err(Error::NoNodeReached);
        }
        Ok(summary)
    }

    /// Pings one node.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use dhtd::{Config, Dht};
    ///
    /// let a = Dht::builder(Config::local("127.0.0.1:0".parse()?, &[])).start()?;
    /// let b = Dht::builder(Config::local("127.0.0.2:0".parse()?, &[])).start()?;
    /// let pong = a.ping(b.local_addr()).await?;
    /// assert_eq!(pong.id, b.id());
    /// # Ok(()) }
    /// ```
    pub async fn ping(&self, addr: SocketAddr) -> Result<Pong, Error> {
        let (reply, rtt) = self.ask(addr, OutQuery::Ping).await?;
        Ok(Pong {
            id: reply.id,
            version: reply.version.map(|v| v.to_vec()),
            rtt,
        })
    }

    /// Sends one query to one node and waits for its answer (or why there
    /// is none), with the round-trip time.
    pub(crate) async fn ask(
        &self,
        addr: SocketAddr,
        query: OutQuery,
    ) -> Result<(Reply, Duration), Error> {
        let node = self.node();
        if node.is_stopping() {
            return Err(Error::Shutdown);
        }
        let (tag, rx) = node.api.register_pong();
        let query = OutboundQuery {
            to: addr,
            node: None,
            query,
            asker: Asker::Api(tag),
        };
        node.actors
            .shells
            .rate_limiter
            .send(In(RateLimiterInput::Send(query)))
            .await
            .map_err(|_| Error::Shutdown)?;
        let done = rx.await.map_err(|_| Error::Shutdown)?;
        let reply = done.result.map_err(Error::of)?;
        Ok((reply, done.rtt.unwrap_or_default()))
    }

    /// Adds a node, as rTorrent's `dht_add_node`: for nodes typed by hand,
    /// a .torrent's `nodes` and BitTorrent peers' PORT messages. It is
    /// pinged, joins the table when it answers, and seeds bootstrap if that
    /// has not succeeded yet (the newest nodes added are kept for that; see
    /// `dht.bootstrap.max_added_nodes`).
    pub async fn add_node(&self, addr: SocketAddr) -> Result<(), Error> {
        self.add_nodes(vec![addr]).await
    }

    async fn add_nodes(&self, addrs: Vec<SocketAddr>) -> Result<(), Error> {
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

    /// Adds the node(s) that `host:port` names (a .torrent's `nodes` are
    /// given this way; see [`crate::torrent`]): the name is resolved on the
    /// node's blocking pool, then each address is added as by
    /// [`Dht::add_node`]. Returns how many addresses were added;
    /// [`Error::Resolve`] if there were none.
    pub async fn add_node_by_name(&self, host_port: &str) -> Result<usize, Error> {
        if self.node().is_stopping() {
            return Err(Error::Shutdown);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        wiring::resolve_then(
            self.inner.runtime.control(),
            vec![host_port.to_owned()],
            move |addrs| {
                let _ = tx.send(addrs);
            },
        );
        let addrs = rx.await.map_err(|_| Error::Shutdown)?;
        if addrs.is_empty() {
            return Err(Error::Resolve(host_port.to_owned()));
        }
        let added = addrs.len();
        self.add_nodes(addrs).await?;
        Ok(added)
    }

    /// The routing table now, to save where the application keeps its
    /// state and give to [`DhtBuilder::import_table`] at the next start.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let swarm = dhtd::swarm::LocalSwarm::start(3, 3, |_, _| {}).await?;
    /// # swarm.wait_bootstrapped(std::time::Duration::from_secs(20)).await;
    /// # let dht = swarm.nodes[2].clone();
    /// use dhtd::persist::SavedTable;
    /// use dhtd::{Config, Dht, NodeIdChoice};
    ///
    /// let saved: Vec<u8> = dht.export_table().await?.to_bytes();
    /// dht.shutdown().await;
    ///
    /// // Later: the same node again, from the saved table alone.
    /// let table = SavedTable::from_bytes(&saved)?;
    /// let mut config = Config::local("127.0.0.1:0".parse()?, &[]);
    /// config.node_id = NodeIdChoice::Fixed(table.id);
    /// let again = Dht::builder(config).import_table(table).start()?;
    /// again.wait_bootstrapped().await;
    /// assert_eq!(again.id(), dht.id());
    /// # Ok(()) }
    /// ```
    pub async fn export_table(&self) -> Result<SavedTable, Error> {
        if self.node().is_stopping() {
            return Err(Error::Shutdown);
        }
        self.node().table().await.ok_or(Error::Shutdown)
    }

    /// Statistics: the table per bucket and state, the estimated DHT size,
    /// the store, every counter, and warnings. Its `Display` is the text
    /// of `dhtd stats`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let swarm = dhtd::swarm::LocalSwarm::start(3, 5, |_, _| {}).await?;
    /// # swarm.wait_bootstrapped(std::time::Duration::from_secs(20)).await;
    /// # let dht = &swarm.nodes[2];
    /// let stats = dht.stats().await?;
    /// assert!(stats.bootstrap_complete && stats.nodes() > 0);
    /// let received = stats.traffic.get("dht_packets_received_total", &[]);
    /// let pings = stats.traffic.get("dht_queries_received_total", &[("method", "ping")]);
    /// assert!(received >= pings);
    /// println!("{stats}");
    /// # Ok(()) }
    /// ```
    pub async fn stats(&self) -> Result<Stats, Error> {
        stats::gather(self.node()).await
    }

    /// Applies new settings to the running node (a reload): the inbound
    /// and outbound budgets and the query spacing (`limits`), the store's
    /// and the item store's caps and lifetimes, lookup parameters and
    /// limits, the cap on pending queries, and read-only mode. Lower caps
    /// bind what comes next; nothing held is evicted by a reload.
    ///
    /// The rest of `dht` cannot change under a running node (the routing
    /// table's rules, tokens, bootstrap, BEP 42, transaction timeouts, the
    /// families): it is kept as it was, and its names are returned, so
    /// that the caller can say a restart is needed for them. A setting that
    /// does not validate refuses the whole change with
    /// [`Error::Invalid`], and the running settings stay.
    pub fn reconfigure(&self, dht: NodeConfig) -> Result<Vec<&'static str>, Error> {
        dht.validate()
            .map_err(|e| Error::Invalid(format!("dht.{}: {}", e.setting, e.problem)))?;
        let node = self.node();
        if node.is_stopping() {
            return Err(Error::Shutdown);
        }
        let mut live = node.live.lock();
        let mut next = dht;
        let mut kept = Vec::new();
        macro_rules! keep {
            ($($field:ident).+, $name:literal) => {
                if next.$($field).+ != live.$($field).+ {
                    kept.push($name);
                    next.$($field).+ = live.$($field).+.clone();
                }
            };
        }
        keep!(routing, "dht.routing");
        keep!(tokens, "dht.tokens");
        keep!(bootstrap, "dht.bootstrap");
        keep!(bep42, "dht.bep42");
        keep!(families, "dht.families");
        keep!(transactions.timeout, "dht.transactions.timeout");
        keep!(transactions.attempts, "dht.transactions.attempts");
        let next = Arc::new(next);
        let shells = &node.actors.shells;
        shells
            .rate_limiter
            .do_send(In(RateLimiterInput::Reconfigure(next.clone())));
        shells
            .transactions
            .do_send(In(TransactionsInput::Reconfigure(next.clone())));
        shells
            .store
            .do_send(In(StoreInput::Reconfigure(next.clone())));
        shells
            .lookups
            .do_send(In(LookupsInput::Reconfigure(next.clone())));
        *live = (*next).clone();
        Ok(kept)
    }

    /// Asks every actor of the node (the sockets' and the pieces') to
    /// answer at once, and waits at most `deadline`: the actors that did
    /// not answer in time (stuck: alive, but not handling messages) are
    /// returned and counted in `dht_actor_heartbeats_missed_total`. What a
    /// systemd watchdog is fed by ([`crate::systemd`]). `Err` with no actor:
    /// the node has stopped.
    pub async fn heartbeat(&self, deadline: Duration) -> Result<(), Vec<crate::Component>> {
        use crate::Component;
        use dhtd_actors::supervision::Heartbeat;
        use std::future::Future;
        use std::pin::Pin;
        type Probe = Pin<Box<dyn Future<Output = bool> + Send>>;
        let node = self.node();
        if node.is_stopping() {
            return Err(Vec::new());
        }
        let a = &node.actors.shells;
        fn probe<A>(addr: &actix::Addr<A>) -> Probe
        where
            A: actix::Actor + actix::Handler<Heartbeat>,
            A::Context: actix::dev::ToEnvelope<A, Heartbeat>,
        {
            let reply = addr.send(Heartbeat);
            Box::pin(async move { reply.await.is_ok() })
        }
        let mut probes: Vec<(Component, Probe)> = node
            .actors
            .sockets
            .iter()
            .map(|s| (Component::Socket, probe(s)))
            .collect();
        probes.extend([
            (Component::RateLimiter, probe(&a.rate_limiter)),
            (Component::RoutingTable, probe(&a.routing)),
            (Component::Transactions, probe(&a.transactions)),
            (Component::AnnounceStore, probe(&a.store)),
            (Component::Lookups, probe(&a.lookups)),
            (Component::Supervisor, probe(&a.supervisor)),
        ]);
        // Every probe was sent above; one deadline for all of them, so that
        // awaiting them in turn waits no longer than it.
        let until = tokio::time::Instant::now() + deadline;
        let mut stuck = Vec::new();
        for (component, probe) in probes {
            let answered = tokio::time::timeout_at(until, probe).await == Ok(true);
            if !answered {
                node.telemetry.heartbeats_missed.incr(component);
                stuck.push(component);
            }
        }
        if stuck.is_empty() {
            Ok(())
        } else {
            Err(stuck)
        }
    }

    /// Test hook: blocks `actor`'s thread for `stall` inside a handler, as
    /// a stuck actor would (its heartbeat goes unanswered meanwhile).
    #[cfg(feature = "fault-injection")]
    pub fn inject_stall(&self, actor: crate::Component, stall: Duration) {
        use crate::Component;
        use dhtd_actors::supervision::InjectStall;
        let a = &self.node().actors.shells;
        let m = InjectStall(stall);
        match actor {
            Component::Socket => {
                for socket in &self.node().actors.sockets {
                    socket.do_send(m);
                }
            }
            Component::RateLimiter => a.rate_limiter.do_send(m),
            Component::RoutingTable => a.routing.do_send(m),
            Component::Transactions => a.transactions.do_send(m),
            Component::AnnounceStore => a.store.do_send(m),
            Component::Lookups => a.lookups.do_send(m),
            Component::Supervisor => a.supervisor.do_send(m),
            _ => {}
        }
    }

    /// The node's settings as they are now (after any reload).
    pub fn settings(&self) -> NodeConfig {
        self.node().live.lock().clone()
    }

    /// Pushes the node's telemetry to the installed metrics recorder now
    /// (it is pushed every second anyway); call before rendering a scrape.
    pub fn publish_metrics(&self) {
        self.node().report();
    }

    /// Saves the routing table and stops the node. Other handles' requests
    /// fail with [`Error::Shutdown`] afterwards. The node stops whether or
    /// not the save succeeds: [`Dht::last_save_error`] then says.
    pub async fn shutdown(&self) {
        self.node().shutdown().await;
    }

    /// Why the latest write of the state dir failed (the routing table, or
    /// a node id), or `None` if it succeeded or nothing has been written
    /// yet. After [`Dht::shutdown`] it is the outcome of the final save,
    /// so an application can tell its operator (`dhtd run` exits with
    /// status 1). Each failure is also logged, counted in
    /// `dht_state_save_failures_total`, and raises the warning
    /// `state_not_saved` until a write succeeds.
    pub fn last_save_error(&self) -> Option<Arc<StateError>> {
        self.node().state.as_ref()?.last_error()
    }

    /// Test hook: makes `actor` panic inside a handler. The node must carry
    /// on with its state.
    #[cfg(feature = "fault-injection")]
    pub fn inject_panic(&self, actor: crate::Component) {
        use crate::Component;
        use dhtd_actors::supervision::InjectPanic;
        let a = &self.node().actors.shells;
        match actor {
            Component::Socket => {
                for socket in &self.node().actors.sockets {
                    socket.do_send(InjectPanic);
                }
            }
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
