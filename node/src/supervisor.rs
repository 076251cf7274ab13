//! The supervisor: starts a node's actors on their Arbiters, fronts the
//! public API, runs the bootstrap, saves the routing table, and stops it
//! all on shutdown.
//!
//! Panics inside the other actors are caught at their handler boundary and
//! the actor is restarted in place with its state (see
//! `dhtd_actors::supervision`); the supervisor reads the restart counts
//! from the shared counters and reports them in [`crate::Stats`].

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::dev::channel::{channel, AddressReceiver};
use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message,
    ResponseFuture, SpawnHandle, WrapFuture,
};
use dhtd_actors::announce::AnnounceActor;
use dhtd_actors::counters::Counters;
use dhtd_actors::lookups::LookupsActor;
use dhtd_actors::messages::{
    AnnounceSpec, ExternalAddressLearned, LookupFromTable, LookupSink, OutQuery, QueryDone,
    QueryFailure, Reply, RoutingSummaryQuery, SendQuery, StartLookup, StoreSummaryQuery,
    TableSnapshot,
};
use dhtd_actors::metrics::NodeGauges;
use dhtd_actors::rate_limiter::{RateLimiterActor, RateLimiterLinks};
use dhtd_actors::routing::{RoutingActor, RoutingLinks};
use dhtd_actors::socket::{DatagramSender, SocketActor};
use dhtd_actors::supervision::StopActor;
use dhtd_actors::transactions::{TransactionLinks, TransactionsActor};
use dhtd_protocol::lookup::LookupKind;
use dhtd_protocol::{InfoHash, NodeId, NodeInfo};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use tokio::sync::{oneshot, watch};

use crate::bootstrap::Bootstrap;
use crate::config::Config;
use crate::runtime::Runtime;
use crate::stats::Stats;
use crate::{persist, StartError};

/// Where a ping's answer and round-trip time go.
pub(crate) type PingReply = oneshot::Sender<Result<(Reply, Duration), QueryFailure>>;

/// The addresses of a node's actors.
#[derive(Clone)]
pub(crate) struct Actors {
    pub(crate) socket: Addr<SocketActor>,
    pub(crate) rate_limiter: Addr<RateLimiterActor>,
    pub(crate) routing: Addr<RoutingActor>,
    pub(crate) transactions: Addr<TransactionsActor>,
    pub(crate) announce: Addr<AnnounceActor>,
    pub(crate) lookups: Addr<LookupsActor>,
}

/// The node's supervisor actor.
pub(crate) struct SupervisorActor {
    pub(crate) config: Config,
    pub(crate) own_id: NodeId,
    pub(crate) local_addr: SocketAddr,
    pub(crate) started: Instant,
    pub(crate) counters: Arc<Counters>,
    pub(crate) actors: Actors,
    pub(crate) boot: Bootstrap,
    pub(crate) bootstrapped: watch::Sender<bool>,
    /// Lookups asked for before bootstrap completed; they run when it does.
    pub(crate) queued: Vec<StartLookup>,
    pings: HashMap<u64, PingReply>,
    next_tag: u64,
    reannounces: HashMap<InfoHash, SpawnHandle>,
    shutting_down: bool,
    /// Our address as most responders see it (BEP 42 `ip`).
    external_ip: Option<std::net::IpAddr>,
    /// This node's share of the process's gauges.
    gauges: NodeGauges,
}

/// What `start` hands back to the public handle.
pub(crate) struct Started {
    pub(crate) supervisor: Addr<SupervisorActor>,
    pub(crate) local_addr: SocketAddr,
    pub(crate) own_id: NodeId,
    pub(crate) bootstrapped: watch::Receiver<bool>,
    pub(crate) actors: Actors,
}

fn choose_id(config: &Config, rng: &mut StdRng) -> NodeId {
    use crate::config::NodeIdChoice;
    match config.node_id {
        NodeIdChoice::Fixed(id) => id,
        NodeIdChoice::Random => NodeId::random(rng),
        NodeIdChoice::Persisted => {
            let Some(dir) = &config.state_dir else {
                return NodeId::random(rng);
            };
            match persist::load_node_id(dir) {
                Ok(Some(id)) => return id,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(target: "dht::state", error = %e, "ignoring the saved node id")
                }
            }
            let id = NodeId::random(rng);
            if let Err(e) = persist::save_node_id(dir, &id) {
                tracing::warn!(target: "dht::state", error = %e, "cannot save the node id");
            }
            id
        }
    }
}

fn load_cache(dir: &Option<PathBuf>) -> Vec<NodeInfo> {
    let Some(dir) = dir else { return Vec::new() };
    match persist::load_table(dir) {
        Ok(Some((_, nodes))) => nodes,
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::warn!(target: "dht::state", error = %e, "ignoring the routing-table cache");
            Vec::new()
        }
    }
}

/// An actor's address and the mailbox to start it on, made before the actor
/// so that actors can be wired to each other in any order.
fn mailbox<A: Actor<Context = Context<A>>>(capacity: usize) -> (Addr<A>, AddressReceiver<A>) {
    let (tx, rx) = channel::<A>(capacity);
    (Addr::new(tx), rx)
}

/// Binds the socket, loads the state dir and starts every actor.
pub(crate) fn start(config: Config, runtime: &Runtime) -> Result<Started, StartError> {
    let socket = UdpSocket::bind(config.listen).map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let local_addr = socket.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let mut rng = match config.rng_seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_os_rng(),
    };
    let own_id = choose_id(&config, &mut rng);
    let cached = load_cache(&config.state_dir);
    let counters = Arc::new(Counters::default());
    let sender =
        DatagramSender::new(&socket, counters.clone()).map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let mut fork = || StdRng::seed_from_u64(rng.next_u64());

    // Mailboxes first, so that actors that talk to each other can hold each other's addresses.
    let cap = config.inbound_queue;
    let (socket_addr, socket_rx) = mailbox::<SocketActor>(16);
    let (limiter_addr, limiter_rx) = mailbox::<RateLimiterActor>(cap);
    let (routing_addr, routing_rx) = mailbox::<RoutingActor>(cap);
    let (tx_addr, tx_rx) = mailbox::<TransactionsActor>(cap);
    let (announce_addr, announce_rx) = mailbox::<AnnounceActor>(cap);
    let (lookups_addr, lookups_rx) = mailbox::<LookupsActor>(cap);
    let (supervisor, sup_rx) = mailbox::<SupervisorActor>(64);
    let actors = Actors {
        socket: socket_addr,
        rate_limiter: limiter_addr,
        routing: routing_addr,
        transactions: tx_addr,
        announce: announce_addr,
        lookups: lookups_addr,
    };

    let socket_actor = SocketActor::new(
        socket,
        actors.rate_limiter.clone().recipient(),
        config.inbound_queue,
        counters.clone(),
    );
    let limiter = RateLimiterActor::new(
        config.limits,
        config.read_only,
        RateLimiterLinks {
            routing: actors.routing.clone(),
            announce: actors.announce.clone(),
            responses: actors.transactions.clone().recipient(),
            transactions: actors.transactions.clone().recipient(),
        },
        sender.clone(),
        counters.clone(),
        config.inbound_queue,
    );
    let routing = RoutingActor::new(
        own_id,
        config.routing,
        fork(),
        RoutingLinks {
            outbound: actors.rate_limiter.clone().recipient(),
            lookups: actors.lookups.clone(),
            snapshot: actors.announce.clone().recipient(),
        },
        sender.clone(),
        counters.clone(),
    );
    let transactions = TransactionsActor::new(
        config.transactions,
        own_id,
        config.read_only,
        fork(),
        sender.clone(),
        TransactionLinks {
            responded: actors.routing.clone().recipient(),
            failed: actors.routing.clone().recipient(),
            external_address: Some(supervisor.clone().recipient()),
        },
        counters.clone(),
    );
    let announce = AnnounceActor::new(
        own_id,
        config.store,
        config.tokens,
        fork(),
        sender.clone(),
        actors.routing.clone().recipient(),
        counters.clone(),
    );
    let lookups = LookupsActor::new(
        own_id,
        config.lookup,
        config.lookup_limits,
        actors.rate_limiter.clone().recipient(),
        counters.clone(),
    );
    let (boot_tx, boot_rx) = watch::channel(false);
    let sup = SupervisorActor {
        boot: Bootstrap::new(cached, &config),
        config,
        own_id,
        local_addr,
        started: Instant::now(),
        counters,
        actors: actors.clone(),
        bootstrapped: boot_tx,
        queued: Vec::new(),
        pings: HashMap::new(),
        next_tag: 1,
        reannounces: HashMap::new(),
        shutting_down: false,
        external_ip: None,
        gauges: NodeGauges::default(),
    };

    // The serving path on one thread; our own queries on another (see runtime.rs).
    let spawned = runtime.net().spawn(async move {
        Context::with_receiver(limiter_rx).run(limiter);
        Context::with_receiver(socket_rx).run(socket_actor);
        Context::with_receiver(routing_rx).run(routing);
        Context::with_receiver(announce_rx).run(announce);
    }) && runtime.work().spawn(async move {
        Context::with_receiver(tx_rx).run(transactions);
        Context::with_receiver(lookups_rx).run(lookups);
    }) && runtime.control().spawn(async move {
        Context::with_receiver(sup_rx).run(sup);
    });
    if !spawned {
        return Err(StartError::RuntimeStopped);
    }
    tracing::info!(target: "dht::node", %local_addr, node_id = %own_id, "DHT server started on {local_addr}, node id {own_id}");
    Ok(Started {
        supervisor,
        local_addr,
        own_id,
        bootstrapped: boot_rx,
        actors,
    })
}

impl Actor for SupervisorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.begin_bootstrap(ctx);
        let every = self.config.save_interval;
        ctx.run_interval(every, |this, _| this.save_table(None));
        ctx.run_interval(REJOIN_CHECK, |this, ctx| this.rejoin_if_alone(ctx));
        ctx.run_interval(GAUGES_EVERY, |this, ctx| this.refresh_gauges(ctx));
    }
}

impl SupervisorActor {
    fn refresh_gauges(&mut self, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        let stats = ctx.address().send(GetStats);
        ctx.spawn(stats.into_actor(self).map(|stats, this, _| {
            if let (Ok(s), false) = (stats, this.shutting_down) {
                this.gauges.report(&s.gauge_values());
            }
        }));
    }

    /// Runs a lookup now, or queues it until bootstrap completes.
    pub(crate) fn run_lookup(&mut self, start: StartLookup) {
        if self.shutting_down {
            return; // dropping the request ends the caller's stream
        }
        if self.boot.is_complete() {
            self.actors.routing.do_send(LookupFromTable(start));
        } else {
            self.queued.push(start);
        }
    }

    /// Saves the routing table off the actor threads; `done` fires after.
    fn save_table(&self, done: Option<oneshot::Sender<()>>) {
        let Some(dir) = self.config.state_dir.clone() else {
            if let Some(done) = done {
                let _ = done.send(());
            }
            return;
        };
        let routing = self.actors.routing.clone();
        let own_id = self.own_id;
        actix_rt::spawn(async move {
            if let Ok(nodes) = routing.send(TableSnapshot).await {
                let count = nodes.len();
                let written = actix_rt::task::spawn_blocking(move || {
                    persist::save_table(&dir, &own_id, &nodes)
                })
                .await;
                match written {
                    Ok(Ok(())) => {
                        tracing::debug!(target: "dht::state", nodes = count, "routing table saved")
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(target: "dht::state", error = %e, "cannot save the routing table")
                    }
                    Err(e) => {
                        tracing::warn!(target: "dht::state", error = %e, "saving the routing table failed")
                    }
                }
            }
            if let Some(done) = done {
                let _ = done.send(());
            }
        });
    }
}

/// How often the node's gauges (table, store, warnings) are brought up to date.
const GAUGES_EVERY: Duration = Duration::from_secs(2);

/// How often a bootstrapped node checks that its table is not empty.
const REJOIN_CHECK: Duration = Duration::from_secs(60);

/// Look up (and optionally announce) an info hash, or find a node id.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Lookup {
    pub(crate) target: NodeId,
    pub(crate) kind: LookupKind,
    pub(crate) announce: Option<AnnounceSpec>,
    pub(crate) sink: LookupSink,
}

impl Handler<Lookup> for SupervisorActor {
    type Result = ();
    fn handle(&mut self, m: Lookup, _: &mut Context<Self>) {
        self.run_lookup(StartLookup {
            id: 0,
            target: m.target,
            kind: m.kind,
            seeds: Vec::new(),
            addr_seeds: Vec::new(),
            announce: m.announce,
            sink: m.sink,
        });
    }
}

/// Keep re-announcing `info_hash` every `every` (None: stop).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Reannounce {
    pub(crate) info_hash: InfoHash,
    pub(crate) spec: AnnounceSpec,
    pub(crate) every: Option<Duration>,
}

impl Handler<Reannounce> for SupervisorActor {
    type Result = ();
    fn handle(&mut self, m: Reannounce, ctx: &mut Context<Self>) {
        if let Some(old) = self.reannounces.remove(&m.info_hash) {
            ctx.cancel_future(old);
        }
        if let Some(every) = m.every {
            let (info_hash, spec) = (m.info_hash, m.spec);
            let handle = ctx.run_interval(every, move |this, _| {
                this.run_lookup(StartLookup {
                    id: 0,
                    target: NodeId::from(info_hash),
                    kind: LookupKind::GetPeers,
                    seeds: Vec::new(),
                    addr_seeds: Vec::new(),
                    announce: Some(spec),
                    sink: LookupSink::Discard,
                });
            });
            self.reannounces.insert(m.info_hash, handle);
        }
    }
}

/// Ping one address; the answer (or why there was none) goes to `reply`.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Ping {
    pub(crate) to: SocketAddr,
    pub(crate) reply: PingReply,
}

impl Handler<Ping> for SupervisorActor {
    type Result = ();
    fn handle(&mut self, m: Ping, ctx: &mut Context<Self>) {
        let tag = self.next_tag;
        self.next_tag += 1;
        self.pings.insert(tag, m.reply);
        self.actors.rate_limiter.do_send(SendQuery {
            to: m.to,
            node: None,
            query: OutQuery::Ping,
            reply_to: Some(ctx.address().recipient()),
            tag,
        });
    }
}

impl Handler<QueryDone> for SupervisorActor {
    type Result = ();
    fn handle(&mut self, m: QueryDone, _: &mut Context<Self>) {
        if let Some(reply) = self.pings.remove(&m.tag) {
            let _ = reply.send(m.result.map(|r| (r, m.rtt.unwrap_or_default())));
        }
    }
}

impl Handler<ExternalAddressLearned> for SupervisorActor {
    type Result = ();
    fn handle(&mut self, m: ExternalAddressLearned, _: &mut Context<Self>) {
        tracing::info!(target: "dht::node", ip = %m.0, "external address learned from other nodes");
        self.external_ip = Some(m.0);
        if !self.config.bep42 || dhtd_protocol::id::bep42::is_valid(&self.own_id, m.0) {
            return;
        }
        let Some(dir) = self.config.state_dir.clone() else {
            return;
        };
        // A node id cannot change under a running table without dropping it,
        // so the BEP 42 id is saved and taken at the next start.
        let id = dhtd_protocol::id::bep42::generate(m.0, &mut StdRng::from_os_rng());
        actix_rt::spawn(async move {
            let saved =
                actix_rt::task::spawn_blocking(move || persist::save_node_id(&dir, &id)).await;
            if let Ok(Ok(())) = saved {
                tracing::info!(target: "dht::node", node_id = %id, "BEP 42 node id saved for the next start");
            }
        });
    }
}

/// Statistics for the public API.
#[derive(Message)]
#[rtype(result = "Stats")]
pub(crate) struct GetStats;

impl Handler<GetStats> for SupervisorActor {
    type Result = ResponseFuture<Stats>;
    fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> Self::Result {
        let routing = self.actors.routing.clone();
        let announce = self.actors.announce.clone();
        let mut stats = Stats {
            own_id: self.own_id,
            local_addr: Some(self.local_addr),
            uptime: self.started.elapsed(),
            bootstrap_complete: self.boot.is_complete(),
            read_only: self.config.read_only,
            external_ip: self.external_ip,
            store_info_hashes_limit: self.config.store.max_info_hashes,
            traffic: self.counters.snapshot(),
            ..Stats::default()
        };
        Box::pin(async move {
            if let Ok(r) = routing.send(RoutingSummaryQuery).await {
                stats.routing = r.stats;
                stats.estimated_dht_size = r.estimated_dht_size;
            }
            if let Ok(s) = announce.send(StoreSummaryQuery).await {
                stats.store = s;
            }
            stats.warnings = stats.derive_warnings();
            stats
        })
    }
}

/// Save the table, stop every actor, then the supervisor itself.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Shutdown;

impl Handler<Shutdown> for SupervisorActor {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        self.shutting_down = true;
        self.gauges.withdraw();
        let (done_tx, done_rx) = oneshot::channel();
        self.save_table(Some(done_tx));
        let actors = self.actors.clone();
        let me = ctx.address();
        Box::pin(async move {
            let _ = done_rx.await;
            let _ = actors.socket.send(StopActor).await;
            let _ = actors.rate_limiter.send(StopActor).await;
            let _ = actors.lookups.send(StopActor).await;
            let _ = actors.transactions.send(StopActor).await;
            let _ = actors.announce.send(StopActor).await;
            let _ = actors.routing.send(StopActor).await;
            me.do_send(StopActor);
        })
    }
}

impl Handler<StopActor> for SupervisorActor {
    type Result = ();
    fn handle(&mut self, _: StopActor, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
