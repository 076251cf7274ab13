//! Bootstrap: from the routing-table cache of the last run, the configured
//! routers, nodes added at run time (by hand, from a .torrent's `nodes`, from
//! BitTorrent peers' PORT messages) to a working table.
//!
//! The steps, as libtorrent and rTorrent do them: resolve the sources (off
//! the actor threads: a name lookup blocks), look up our own id starting
//! from them, then refresh every bucket with a lookup of a random id in its
//! range; then "bootstrap complete", and the lookups callers asked for in
//! the meantime run. An attempt that reaches no node says so and is retried
//! with a doubling wait; a node added by hand cuts the wait short.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use actix::{ActorFutureExt, AsyncContext, Context, Handler, Message, SpawnHandle, WrapFuture};
use dhtd_actors::messages::{
    ConsiderNodes, LookupFinished, LookupFromTable, LookupSink, OutQuery, RefreshAllBuckets,
    RoutingSummaryQuery, SendQuery, SetRouters, StartLookup,
};
use dhtd_protocol::lookup::LookupKind;
use dhtd_protocol::NodeInfo;

use crate::config::Config;
use crate::supervisor::SupervisorActor;

/// The id of the own-id lookup; refresh lookups report with their bucket index.
const OWN_ID_LOOKUP: u64 = u64::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Resolving,
    OwnIdLookup,
    /// `started` is known once the routing table answers; refreshes may finish before that.
    Refreshing {
        started: Option<usize>,
        finished: usize,
    },
    Waiting,
    Complete,
}

/// Bootstrap progress, kept by the supervisor.
pub(crate) struct Bootstrap {
    cached: Vec<NodeInfo>,
    routers: Vec<String>,
    nodes: Vec<String>,
    added: Vec<SocketAddr>,
    state: State,
    attempts: u32,
    wait: Duration,
    retry_max: Duration,
    retry: Option<SpawnHandle>,
}

impl Bootstrap {
    pub(crate) fn new(cached: Vec<NodeInfo>, config: &Config) -> Self {
        Bootstrap {
            cached,
            routers: config.routers.clone(),
            nodes: config.bootstrap_nodes.clone(),
            added: Vec::new(),
            state: State::Resolving,
            attempts: 0,
            wait: config.bootstrap_retry,
            retry_max: config.bootstrap_retry_max,
            retry: None,
        }
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.state == State::Complete
    }
}

/// Resolves `host:port` strings. Numeric addresses never touch DNS.
pub(crate) fn resolve(sources: &[String]) -> Vec<SocketAddr> {
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

/// The bootstrap sources, resolved.
#[derive(Message)]
#[rtype(result = "()")]
struct SourcesResolved {
    routers: Vec<SocketAddr>,
    nodes: Vec<SocketAddr>,
}

/// Nodes handed to us at run time (`add_node`, a .torrent's `nodes`, PORT messages).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct AddNodes(pub(crate) Vec<SocketAddr>);

impl SupervisorActor {
    pub(crate) fn begin_bootstrap(&mut self, ctx: &mut Context<Self>) {
        self.boot.state = State::Resolving;
        self.boot.retry = None;
        let (routers, nodes) = (self.boot.routers.clone(), self.boot.nodes.clone());
        let resolving = async move {
            actix_rt::task::spawn_blocking(move || (resolve(&routers), resolve(&nodes)))
                .await
                .unwrap_or_default()
        };
        ctx.spawn(resolving.into_actor(self).map(|(routers, nodes), _, ctx| {
            ctx.notify(SourcesResolved { routers, nodes });
        }));
    }

    fn look_up_own_id(&mut self, sources: SourcesResolved, ctx: &mut Context<Self>) {
        self.boot.attempts += 1;
        self.boot.state = State::OwnIdLookup;
        let SourcesResolved { routers, nodes } = sources;
        let mut addr_seeds = routers.clone();
        addr_seeds.extend(nodes);
        addr_seeds.extend(self.boot.added.iter().copied());
        self.actors.routing.do_send(SetRouters(routers));
        if self.boot.attempts == 1 && !self.boot.cached.is_empty() {
            // Saved nodes are pinged into the table, and seed the lookup.
            self.actors
                .routing
                .do_send(ConsiderNodes(self.boot.cached.clone()));
        }
        self.actors.routing.do_send(LookupFromTable(StartLookup {
            id: OWN_ID_LOOKUP,
            target: self.own_id,
            kind: LookupKind::FindNode,
            seeds: self.boot.cached.clone(),
            addr_seeds,
            announce: None,
            sink: LookupSink::Actor(ctx.address().recipient()),
        }));
    }

    fn retry_later(&mut self, ctx: &mut Context<Self>) {
        let wait = self.boot.wait;
        tracing::warn!(
            target: "dht::bootstrap",
            attempt = self.boot.attempts,
            "bootstrap reached no DHT node; retrying in {wait:?}"
        );
        self.boot.state = State::Waiting;
        self.boot.wait = (wait * 2).min(self.boot.retry_max);
        self.boot.retry = Some(ctx.run_later(wait, |this, ctx| this.begin_bootstrap(ctx)));
    }

    fn refresh_buckets(&mut self, ctx: &mut Context<Self>) {
        self.boot.state = State::Refreshing {
            started: None,
            finished: 0,
        };
        let sink = LookupSink::Actor(ctx.address().recipient());
        let refresh = self.actors.routing.send(RefreshAllBuckets { sink });
        ctx.spawn(refresh.into_actor(self).map(|started, this, ctx| {
            if let State::Refreshing { finished, .. } = this.boot.state {
                let started = started.unwrap_or(0);
                this.boot.state = State::Refreshing {
                    started: Some(started),
                    finished,
                };
                if finished >= started {
                    this.complete_bootstrap(ctx);
                }
            }
        }));
    }

    /// A node that lost every node (a long network outage) bootstraps again
    /// from its sources; lookups wait for it as at the start.
    pub(crate) fn rejoin_if_alone(&mut self, ctx: &mut Context<Self>) {
        if !self.boot.is_complete() {
            return;
        }
        let summary = self.actors.routing.send(RoutingSummaryQuery);
        ctx.spawn(summary.into_actor(self).map(|summary, this, ctx| {
            let alone = summary.is_ok_and(|s| s.stats.total.good + s.stats.total.questionable == 0);
            if alone && this.boot.is_complete() {
                tracing::warn!(target: "dht::bootstrap", "no DHT nodes available; bootstrapping again");
                let _ = this.bootstrapped.send(false);
                this.begin_bootstrap(ctx);
            }
        }));
    }

    fn complete_bootstrap(&mut self, ctx: &mut Context<Self>) {
        self.boot.state = State::Complete;
        self.boot.wait = self.config.bootstrap_retry;
        for start in std::mem::take(&mut self.queued) {
            self.actors.routing.do_send(LookupFromTable(start));
        }
        let _ = self.bootstrapped.send(true);
        let summary = self.actors.routing.send(RoutingSummaryQuery);
        ctx.spawn(summary.into_actor(self).map(|summary, _, _| {
            if let Ok(s) = summary {
                let size = s.estimated_dht_size.unwrap_or(0);
                tracing::info!(
                    target: "dht::bootstrap",
                    nodes = s.stats.total.good + s.stats.total.questionable + s.stats.total.bad,
                    buckets = s.stats.buckets.len(),
                    estimated_dht_size = size,
                    "bootstrap complete: {} nodes in {} buckets, about {size} nodes in the DHT",
                    s.stats.total.good + s.stats.total.questionable + s.stats.total.bad,
                    s.stats.buckets.len()
                );
            }
        }));
    }
}

impl Handler<SourcesResolved> for SupervisorActor {
    type Result = ();
    fn handle(&mut self, m: SourcesResolved, ctx: &mut Context<Self>) {
        if self.boot.state == State::Resolving {
            self.look_up_own_id(m, ctx);
        }
    }
}

impl Handler<LookupFinished> for SupervisorActor {
    type Result = ();
    fn handle(&mut self, m: LookupFinished, ctx: &mut Context<Self>) {
        match (m.id, self.boot.state) {
            (OWN_ID_LOOKUP, State::OwnIdLookup) => {
                if m.summary.responses == 0 {
                    self.retry_later(ctx);
                } else {
                    self.refresh_buckets(ctx);
                }
            }
            (id, State::Refreshing { started, finished }) if id != OWN_ID_LOOKUP => {
                let finished = finished + 1;
                self.boot.state = State::Refreshing { started, finished };
                if started.is_some_and(|n| finished >= n) {
                    self.complete_bootstrap(ctx);
                }
            }
            _ => {}
        }
    }
}

impl Handler<AddNodes> for SupervisorActor {
    type Result = ();
    fn handle(&mut self, m: AddNodes, ctx: &mut Context<Self>) {
        for addr in &m.0 {
            // Its answer puts it in the table (it is not a router).
            self.actors.rate_limiter.do_send(SendQuery {
                to: *addr,
                node: None,
                query: OutQuery::Ping,
                reply_to: None,
                tag: 0,
            });
        }
        self.boot.added.extend(m.0);
        if self.boot.state == State::Waiting {
            if let Some(h) = self.boot.retry.take() {
                ctx.cancel_future(h);
            }
            self.begin_bootstrap(ctx);
        }
    }
}
