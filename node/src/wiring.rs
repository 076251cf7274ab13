//! Starting a node: bind the socket, load the state dir, make the pieces
//! (`dhtd_protocol::node::Pieces`, the same constructor the simulator
//! uses), put each in its actor on the runtime's Arbiters, and wire them
//! with one [`Links`]. Also what the node does besides its actors:
//! telemetry export and warnings once a second, saving the table soon
//! after bootstrap and then every `save_interval`, and the I/O the pieces
//! ask for.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use actix::{Addr, Context};
use dhtd_actors::mailboxes::{mailbox, mailboxes, Addresses};
use dhtd_actors::metrics::MetricsExport;
use dhtd_actors::socket::{DatagramSender, SocketActor};
use dhtd_actors::supervision::StopActor;
use dhtd_actors::{ApiSinks, In, Inspect, IoHandler, SupervisorActor};
use dhtd_protocol::node::bootstrap::Sources;
use dhtd_protocol::node::{families::PerFamily, upkeep::Upkeep};
use dhtd_protocol::node::{IoRequest, Pieces, SupervisorInput};
use dhtd_protocol::telemetry::{derive_warnings, Component, Telemetry, Warning};
use dhtd_protocol::{Families, Family, NodeId, NodeInfo};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::config::{Config, NodeConfig, NodeIdChoice};
use crate::persist::{self, SavedTable};
use crate::runtime::Runtime;
use crate::state::StateDir;
use crate::udp_drops::SocketDrops;
use crate::StartError;

/// The addresses of a node's actors.
#[derive(Clone)]
pub(crate) struct Actors {
    /// One per socket (per address family).
    pub(crate) sockets: Vec<Addr<SocketActor>>,
    pub(crate) shells: Addresses,
}

/// A running node, as its handles see it.
pub(crate) struct Node {
    pub(crate) actors: Actors,
    pub(crate) api: ApiSinks,
    pub(crate) telemetry: Arc<Telemetry>,
    pub(crate) metrics: Arc<MetricsExport>,
    /// The bound addresses, one per family, IPv4 first.
    pub(crate) local_addrs: Vec<SocketAddr>,
    pub(crate) own_id: NodeId,
    pub(crate) started: Instant,
    pub(crate) config: Config,
    /// `config.dht` as changed since by reloads ([`crate::Dht::reconfigure`]).
    pub(crate) live: parking_lot::Mutex<NodeConfig>,
    /// The state dir, if the node keeps one.
    pub(crate) state: Option<Arc<StateDir>>,
    /// The kernel's count of datagrams it dropped for our sockets.
    socket_drops: Vec<SocketDrops>,
    /// The sockets, dead once every actor holding one has let go: then the
    /// ports are free.
    bound: Vec<Weak<UdpSocket>>,
    stopping: Arc<AtomicBool>,
}

/// How long a stopping node waits for its actors to let go of its sockets
/// (they do so as they stop, on their own threads, moments after saying
/// they stop).
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// How often warnings are derived and the telemetry pushed to the recorder.
const REPORT_EVERY: Duration = Duration::from_secs(1);

fn choose_id(config: &Config, state: Option<&StateDir>, rng: &mut StdRng) -> NodeId {
    match (config.node_id, state) {
        (NodeIdChoice::Fixed(id), _) => id,
        (NodeIdChoice::Random, _) | (NodeIdChoice::Persisted, None) => NodeId::random(rng),
        (NodeIdChoice::Persisted, Some(state)) => state.node_id(rng),
    }
}

fn load_cache(dir: Option<&Path>) -> Vec<NodeInfo> {
    let Some(dir) = dir else { return Vec::new() };
    match persist::load_table(dir) {
        Ok(Some(table)) => table
            .nodes
            .into_iter()
            .map(crate::NodeInfo::to_core)
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::warn!(target: "dht::state", error = %e, "ignoring the routing-table cache");
            Vec::new()
        }
    }
}

/// Resolves `host:port` strings. Numeric addresses never touch DNS.
pub(crate) fn resolve(sources: &[String]) -> Vec<SocketAddr> {
    use std::net::ToSocketAddrs;
    let mut out = Vec::new();
    for s in sources {
        if let Ok(addr) = s.parse::<SocketAddr>() {
            out.push(addr);
            continue;
        }
        match s.to_socket_addrs() {
            Ok(addrs) => out.extend(addrs),
            Err(e) => {
                tracing::warn!(target: "dht::bootstrap", source = %s, error = %e, "cannot resolve bootstrap node")
            }
        }
    }
    out
}

/// Resolves `names` on the runtime's blocking pool (a name lookup blocks:
/// never on an Arbiter, and never a thread per name), then hands the
/// addresses to `done`. Numeric addresses are answered at once.
pub(crate) fn resolve_then(
    runtime: &actix_rt::ArbiterHandle,
    names: Vec<String>,
    done: impl FnOnce(Vec<SocketAddr>) + Send + 'static,
) {
    if names.iter().all(|s| s.parse::<SocketAddr>().is_ok()) {
        return done(resolve(&names));
    }
    runtime.spawn(async move {
        let addrs = actix_rt::task::spawn_blocking(move || resolve(&names))
            .await
            .unwrap_or_default();
        done(addrs);
    });
}

/// The driver's I/O: name resolution and files, off the actor threads.
fn io_handler(
    supervisor: Addr<SupervisorActor>,
    state: Option<Arc<StateDir>>,
    blocking: actix_rt::ArbiterHandle,
) -> IoHandler {
    Arc::new(move |request| match request {
        IoRequest::Resolve { routers, nodes } => {
            let to = supervisor.clone();
            let blocking = blocking.clone();
            resolve_then(&blocking.clone(), routers, move |routers| {
                resolve_then(&blocking, nodes, move |nodes| {
                    to.do_send(In(SupervisorInput::SourcesResolved { routers, nodes }));
                });
            });
        }
        IoRequest::SaveNodeId(id) => {
            if let Some(state) = state.clone() {
                blocking.spawn(async move {
                    let _ = actix_rt::task::spawn_blocking(move || state.save_node_id(id)).await;
                });
            }
        }
    })
}

/// Binds `addr`; an IPv6 socket IPv6-only, so that an IPv4 socket can
/// share its port (Linux binds `[::]` dual-stack by default).
fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    if addr.is_ipv4() {
        return UdpSocket::bind(addr);
    }
    let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_only_v6(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Binds the sockets, loads the state dir and starts every actor.
pub(crate) fn start(
    mut config: Config,
    imported: Vec<crate::NodeInfo>,
    runtime: &Runtime,
) -> Result<Arc<Node>, StartError> {
    // IPv4 first: the first address is the one a single-address caller
    // asks for (`Dht::local_addr`).
    config.listen.sort_by_key(Family::of);
    config.dht.families = Families::of(&config.listen);
    let telemetry = Arc::new(Telemetry::default());
    let mut sockets = Vec::new();
    let mut local_addrs = Vec::new();
    for &addr in &config.listen {
        let bind_error = |source| StartError::Bind { addr, source };
        let socket = bind(addr).map_err(bind_error)?;
        local_addrs.push(socket.local_addr().map_err(bind_error)?);
        size_recv_buffer(&socket, config.recv_buffer, &telemetry)?;
        sockets.push(Arc::new(socket));
    }
    let local_addr = local_addrs[0];
    let bind_error = |source| StartError::Bind {
        addr: local_addr,
        source,
    };
    telemetry.running.set((), 1);
    let socket_drops = sockets.iter().filter_map(|s| SocketDrops::of(s)).collect();
    let bound = sockets.iter().map(Arc::downgrade).collect();
    let mut rng = match config.rng_seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_os_rng(),
    };
    let state = config
        .state_dir
        .clone()
        .map(|dir| StateDir::open(dir, telemetry.clone()));
    let own_id = choose_id(&config, state.as_deref(), &mut rng);
    let mut sender = DatagramSender::on_sockets(&sockets, telemetry.clone()).map_err(bind_error)?;
    if let Some(tap) = &config.tap {
        sender = sender.with_tap(tap.driver()).map_err(bind_error)?;
    }
    let sources = Sources {
        routers: config.routers.clone(),
        nodes: config.bootstrap_nodes.clone(),
        // An application's own saved table first, then the state dir's.
        cached: imported
            .into_iter()
            .map(crate::NodeInfo::to_core)
            .chain(load_cache(config.state_dir.as_deref()))
            .collect(),
    };
    let now = config.clock.now();
    let pieces = Pieces::new(
        now,
        own_id,
        &config.dht,
        sources,
        &mut rng,
        telemetry.clone(),
    );

    // Mailboxes first, so that actors that talk to each other can hold each other's addresses.
    let cap = config.inbound_queue;
    let (addresses, mailboxes) = mailboxes(cap);
    let api = ApiSinks::default();
    let io = io_handler(
        addresses.supervisor.clone(),
        state.clone(),
        runtime.control().clone(),
    );
    let links = addresses.links(api.clone(), io, telemetry.clone());
    let mut spawned = true;
    let mut socket_addrs = Vec::new();
    for socket in sockets {
        let (socket_addr, socket_rx) = mailbox::<SocketActor>(16);
        let actor = SocketActor::new(
            socket,
            links.rate_limiter.clone(),
            cap,
            telemetry.clone(),
            config.clock.driver(),
        );
        spawned &= runtime.net().spawn_fn(move || {
            Context::with_receiver(socket_rx).run(actor);
        });
        socket_addrs.push(socket_addr);
    }
    // The serving path on one thread; our own queries on another; the
    // supervisor on the system thread (see runtime.rs).
    for (component, start) in mailboxes.shells(pieces, &config.clock.driver(), &links, &sender, cap)
    {
        let arbiter = match component {
            Component::Transactions | Component::Lookups => runtime.work(),
            Component::Supervisor => runtime.control(),
            _ => runtime.net(),
        };
        spawned &= arbiter.spawn_fn(start);
    }
    if !spawned {
        return Err(StartError::RuntimeStopped);
    }
    for addr in &local_addrs {
        let family = Family::of(addr);
        tracing::info!(target: "dht::node", %addr, %family, node_id = %own_id, "DHT server started on {addr}, node id {own_id}, {family}");
    }
    let node = Arc::new(Node {
        actors: Actors {
            sockets: socket_addrs,
            shells: addresses,
        },
        api,
        telemetry,
        metrics: Arc::new(MetricsExport::default()),
        local_addrs,
        own_id,
        started: now,
        live: parking_lot::Mutex::new(config.dht.clone()),
        config,
        state,
        socket_drops,
        bound,
        stopping: Arc::new(AtomicBool::new(false)),
    });
    let weak = Arc::downgrade(&node);
    if !runtime.control().spawn(housekeeping(weak)) {
        return Err(StartError::RuntimeStopped);
    }
    Ok(node)
}

/// Asks for the configured receive buffer and says what the kernel gave.
fn size_recv_buffer(
    socket: &UdpSocket,
    asked: Option<usize>,
    telemetry: &Telemetry,
) -> Result<(), StartError> {
    use dhtd_actors::socket::{recv_buffer, set_recv_buffer};
    let effective = match asked {
        Some(bytes) => {
            let got = set_recv_buffer(socket, bytes)
                .map_err(|source| StartError::RecvBuffer { bytes, source })?;
            if got.cut() {
                tracing::warn!(target: "dht::socket", asked = bytes, effective = got.effective, "UDP receive buffer: asked for {bytes} bytes, the kernel gives {} (reported {}); raise net.core.rmem_max to at least {bytes}", got.effective / 2, got.effective);
            } else {
                tracing::info!(target: "dht::socket", asked = bytes, effective = got.effective, forced = got.forced, "UDP receive buffer: {bytes} bytes (the kernel reports {})", got.effective);
            }
            got.effective
        }
        None => match recv_buffer(socket) {
            Ok(n) => {
                tracing::info!(target: "dht::socket", effective = n, "UDP receive buffer: the system's default, {n} bytes");
                n
            }
            Err(_) => 0,
        },
    };
    telemetry.socket_recv_buffer.set((), effective as u64);
    Ok(())
}

/// Once a second: the warnings that depend on time, the kernel's drop
/// count, and the telemetry pushed to the recorder. The routing table is
/// saved as soon as bootstrap completes (a node killed minutes later still
/// restarts from it), then every `save_interval`.
async fn housekeeping(node: std::sync::Weak<Node>) {
    let mut tick = actix_rt::time::interval(REPORT_EVERY);
    let mut last_save = Instant::now();
    let mut was_bootstrapped = false;
    loop {
        tick.tick().await;
        let Some(node) = node.upgrade() else { return };
        if node.stopping.load(Ordering::Relaxed) {
            return;
        }
        let drops: Vec<u64> = node.socket_drops.iter().filter_map(|d| d.read()).collect();
        if !drops.is_empty() {
            node.telemetry.socket_overflows.set((), drops.iter().sum());
        }
        node.report();
        let bootstrapped = node.telemetry.bootstrapped.value() > 0;
        let just_bootstrapped = bootstrapped && !was_bootstrapped;
        was_bootstrapped = bootstrapped;
        if just_bootstrapped || last_save.elapsed() >= node.config.save_interval {
            last_save = Instant::now();
            node.save_table().await;
            // A failed save shows on /metrics now, not a report later.
            node.report();
        }
    }
}

impl Node {
    /// The warnings of now, into the telemetry, and the telemetry to the
    /// recorder.
    pub(crate) fn report(&self) {
        let t = &self.telemetry;
        let snapshot = t.snapshot();
        let nodes = snapshot.routing_nodes.total() as usize;
        let warnings = derive_warnings(
            &snapshot,
            nodes,
            snapshot.bootstrapped.value() > 0,
            self.uptime(),
            self.live.lock().read_only,
        );
        for w in [
            Warning::NoNodes,
            Warning::PortUnreachable,
            Warning::PortFirewalled,
        ] {
            t.warnings.set(w, u64::from(warnings.contains(&w)));
        }
        self.metrics.sync(t);
    }

    /// Time since start, on the node's clock.
    pub(crate) fn uptime(&self) -> Duration {
        self.config
            .clock
            .now()
            .saturating_duration_since(self.started)
    }

    /// The routing table's nodes now; `None` once the node has stopped.
    pub(crate) async fn table(&self) -> Option<SavedTable> {
        // Every family's table: the state dir keeps both.
        let read = Inspect(Box::new(|p: &PerFamily<Upkeep>, _| {
            p.iter()
                .flat_map(|(_, u)| u.table().nodes())
                .collect::<Vec<_>>()
        }));
        let nodes = self.actors.shells.routing.send(read).await.ok()??;
        Some(SavedTable {
            id: self.own_id,
            nodes: nodes.into_iter().map(crate::NodeInfo::from_core).collect(),
        })
    }

    /// Saves the routing table off the actor threads.
    pub(crate) async fn save_table(&self) {
        let Some(state) = &self.state else { return };
        if let Some(table) = self.table().await {
            state.save_table(table).await;
        }
    }

    /// Saves the table, withdraws the node's gauges, stops every actor.
    pub(crate) async fn shutdown(&self) {
        if self.stopping.swap(true, Ordering::Relaxed) {
            return;
        }
        self.save_table().await;
        self.telemetry.zero_gauges();
        self.metrics.sync(&self.telemetry);
        self.api.close();
        for socket in &self.actors.sockets {
            let _ = socket.send(StopActor).await;
        }
        let a = &self.actors.shells;
        let _ = a.rate_limiter.send(StopActor).await;
        let _ = a.lookups.send(StopActor).await;
        let _ = a.transactions.send(StopActor).await;
        let _ = a.store.send(StopActor).await;
        let _ = a.routing.send(StopActor).await;
        let _ = a.supervisor.send(StopActor).await;
        // An actor answers before it is dropped on its own thread; a caller
        // told that the node stopped may bind its port at once.
        let released = async {
            while self.bound.iter().any(|s| s.strong_count() > 0) {
                actix_rt::time::sleep(Duration::from_millis(1)).await;
            }
        };
        if actix_rt::time::timeout(RELEASE_WAIT, released)
            .await
            .is_err()
        {
            tracing::warn!(target: "dht::node", "stopped, but a socket was still open {RELEASE_WAIT:?} later");
        }
    }

    /// Whether shutdown has begun.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }
}
