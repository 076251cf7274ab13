//! Bootstrap: from the sources to a working table, and keeping it working.
//!
//! The sources are the routing-table cache of the last run, the configured
//! routers, ordinary nodes given at start, and nodes added at run time (by
//! hand, a .torrent's `nodes`, BitTorrent peers' PORT messages; the newest
//! [`BootstrapConfig::max_added_nodes`] are kept). An attempt, as libtorrent
//! and rTorrent make it:
//!
//! 1. the driver resolves the sources' names ([`IoRequest::Resolve`]);
//! 2. a lookup of our own id, asking the sources first;
//! 3. a refresh of every bucket, with a lookup of a random id in its range;
//! 4. the table is checked: bootstrap is complete only when it holds at
//!    least one node that answered. The application's lookups run then.
//!
//! An attempt that reached no node, or found none to keep, is retried after
//! a wait that doubles from [`BootstrapConfig::retry`] up to
//! [`BootstrapConfig::retry_max`]; a node added meanwhile, or a node that
//! joins our table by querying us, starts the next attempt at once. A node
//! whose table empties bootstraps again.
//!
//! A complete node keeps looking up its own id on the same doubling wait,
//! then every [`BootstrapConfig::look_again_max`]: the nodes that join near us after we did learn
//! of us only if they happen to ask us, and we of them only by looking (a
//! private network grows one node at a time; a node that bootstrapped
//! first would otherwise stay unknown to the later ones until the
//! 15-minute bucket refresh). A look that finds no node nearer than the
//! last look's k-th that the last look did not find says the
//! neighbourhood is settled: the next waits the longest wait at once. In
//! a large network that is nearly every look, and the doubling's first
//! half dozen lookups (about a dozen queries each) found nothing (`dhtd
//! sim`, README "Defaults chosen by data"). These looks start from the
//! table, and ask the sources too only while the table holds fewer than
//! k nodes: a router hears from a node as it joins, not every look.
//!
//! Routers that the own-id lookup finds among our k closest nodes are
//! neighbours, not mere entry points, and join the table (see
//! [`super::upkeep`]).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;

use super::{
    ApiEvent, Asker, BootstrapConfig, BootstrapLookup, Envelope, IoRequest, LogEvent,
    LookupSummary, LookupsInput, NodeConfig, OutQuery, OutboundQuery, Outputs, Piece,
    RateLimiterInput, Requester, RoutingInput, StartLookup, SupervisorInput, TableSummary,
};
use crate::compact::NodeInfo;
use crate::family::Family;
use crate::id::{bep42, NodeId};
use crate::lookup::LookupKind;
use crate::telemetry::{Component, Telemetry};

/// Where a node bootstraps from, as configured (names not yet resolved).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    /// Routers as `host:port`: asked, kept out of the table.
    pub routers: Vec<String>,
    /// Ordinary nodes as `host:port`: asked, kept when they answer.
    pub nodes: Vec<String>,
    /// The routing-table cache of the last run.
    pub cached: Vec<NodeInfo>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the driver to resolve the sources.
    Resolving,
    /// Looking up our own id.
    OwnIdLookup,
    /// Refreshing every bucket; `started` is known once the table said.
    Refreshing {
        started: Option<usize>,
        finished: usize,
    },
    /// Waiting for the table's size.
    Checking,
    /// Waiting until the next attempt.
    Waiting { until: Instant },
    /// Bootstrapped.
    Complete,
}

/// The supervisor's piece.
#[derive(Debug)]
pub struct Bootstrap {
    family: Family,
    own_id: NodeId,
    config: BootstrapConfig,
    k: usize,
    bep42: bool,
    sources: Sources,
    routers: Vec<SocketAddr>,
    nodes: Vec<SocketAddr>,
    added: VecDeque<SocketAddr>,
    state: State,
    attempts: u32,
    wait: Duration,
    table: TableSummary,
    /// While complete with fewer than k nodes: the next own-id lookup.
    look_again_at: Option<Instant>,
    look_again_wait: Duration,
    looking_again: bool,
    /// The k closest nodes the last own-id lookup found, closest first.
    neighbours: Vec<NodeId>,
    bep42_for: Option<IpAddr>,
    rng: StdRng,
    telemetry: Arc<Telemetry>,
    outputs: Outputs,
}

impl Bootstrap {
    /// A bootstrap that starts at `now` (its first timeout).
    pub fn new(
        now: Instant,
        family: Family,
        own_id: NodeId,
        config: &NodeConfig,
        sources: Sources,
        rng: StdRng,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        // One id serves both families: it follows the IPv4 address when
        // IPv4 is on (most nodes check IPv4 ids), else the IPv6 one.
        let id_family = if config.families.contains(Family::V4) {
            Family::V4
        } else {
            Family::V6
        };
        Bootstrap {
            family,
            own_id,
            config: config.bootstrap,
            k: config.routing.k,
            bep42: config.bep42 && family == id_family,
            sources,
            routers: Vec::new(),
            nodes: Vec::new(),
            added: VecDeque::new(),
            state: State::Waiting { until: now },
            attempts: 0,
            wait: config.bootstrap.retry,
            table: TableSummary::default(),
            look_again_at: None,
            look_again_wait: config.bootstrap.retry,
            looking_again: false,
            neighbours: Vec::new(),
            bep42_for: None,
            rng,
            telemetry,
            outputs: Outputs::default(),
        }
    }

    /// Whether bootstrap has completed (and not been lost since).
    pub fn is_complete(&self) -> bool {
        self.state == State::Complete
    }

    /// Attempts so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The nodes added at run time that are kept as sources, oldest first.
    pub fn added_nodes(&self) -> impl Iterator<Item = &SocketAddr> {
        self.added.iter()
    }

    fn push(&mut self, e: Envelope) {
        self.outputs.push(e);
    }

    fn begin_attempt(&mut self) {
        self.attempts += 1;
        self.telemetry.bootstrap_attempts.incr(());
        self.state = State::Resolving;
        self.push(Envelope::Io(IoRequest::Resolve {
            routers: self.sources.routers.clone(),
            nodes: self.sources.nodes.clone(),
        }));
    }

    /// Every source address: routers, nodes, and the nodes added at run time.
    fn source_addrs(&self) -> Vec<SocketAddr> {
        let mut addrs: Vec<SocketAddr> = self.routers.clone();
        addrs.extend(&self.nodes);
        addrs.extend(&self.added);
        addrs.sort_unstable();
        addrs.dedup();
        addrs
    }

    /// A lookup of our own id, from `seeds` and the table, and from the
    /// sources too when `ask_sources`.
    fn look_up_own_id(&mut self, seeds: Vec<NodeInfo>, ask_sources: bool) {
        let mut start = StartLookup::new(
            self.own_id,
            LookupKind::FindNode,
            Requester::Bootstrap(BootstrapLookup::OwnId),
        )
        .in_family(self.family);
        start.seeds = seeds;
        if ask_sources {
            start.addr_seeds = self.source_addrs();
        }
        self.push(Envelope::Lookups(LookupsInput::Start(start)));
    }

    fn resolved(&mut self, routers: Vec<SocketAddr>, nodes: Vec<SocketAddr>) {
        if self.state != State::Resolving {
            return;
        }
        self.routers = routers;
        self.nodes = nodes;
        self.state = State::OwnIdLookup;
        self.push(Envelope::Routing(RoutingInput::SetRouters(
            self.routers.clone(),
        )));
        let cached = std::mem::take(&mut self.sources.cached);
        if !cached.is_empty() {
            // Saved nodes are pinged into the table, and seed the lookup.
            self.push(Envelope::Routing(RoutingInput::Consider(cached.clone())));
        }
        self.look_up_own_id(cached, true);
    }

    /// Routers among our k closest are neighbours: they join the table.
    fn admit_neighbour_routers(&mut self, summary: &LookupSummary) {
        let neighbours: Vec<NodeInfo> = summary
            .closest
            .iter()
            .take(self.k)
            .filter(|n| self.routers.contains(&n.addr))
            .copied()
            .collect();
        if !neighbours.is_empty() {
            self.push(Envelope::Routing(RoutingInput::AdmitRouters(neighbours)));
        }
    }

    /// Records the k closest of an own-id lookup that answered, and says
    /// whether it found a node nearer than the last such lookup's k-th
    /// (any node while it had fewer than k) that the last did not.
    fn found_new_neighbours(&mut self, summary: &LookupSummary) -> bool {
        let closest = summary.closest.iter().take(self.k).map(|n| n.id);
        let farthest_known = match self.neighbours.last() {
            Some(far) if self.neighbours.len() >= self.k => Some(self.own_id.distance(far)),
            _ => None,
        };
        let found_new = closest.clone().any(|id| {
            !self.neighbours.contains(&id)
                && farthest_known.is_none_or(|far| self.own_id.distance(&id) < far)
        });
        self.neighbours.clear();
        self.neighbours.extend(closest);
        found_new
    }

    fn own_id_found(&mut self, now: Instant, summary: LookupSummary) {
        self.admit_neighbour_routers(&summary);
        // A look that reached nobody says nothing about the neighbourhood.
        let settled = summary.responses > 0 && !self.found_new_neighbours(&summary);
        match self.state {
            State::OwnIdLookup if summary.responses == 0 && summary.queries == 0 => {
                // Nothing to ask: the first node of a private network waits
                // for another to join it.
                let family = self.family;
                self.retry_later(now, |retry_in| LogEvent::BootstrapNoSources {
                    family,
                    retry_in,
                });
            }
            State::OwnIdLookup if summary.responses == 0 => {
                let attempt = self.attempts;
                let family = self.family;
                self.retry_later(now, |retry_in| LogEvent::BootstrapUnanswered {
                    family,
                    attempt,
                    retry_in,
                });
            }
            State::OwnIdLookup => {
                self.state = State::Refreshing {
                    started: None,
                    finished: 0,
                };
                self.push(Envelope::Routing(RoutingInput::RefreshAll(self.family)));
            }
            State::Complete if self.looking_again => {
                self.looking_again = false;
                if settled {
                    self.look_again_wait = self.config.look_again_max;
                }
                self.schedule_look_again(now);
            }
            _ => {}
        }
    }

    fn refreshed(&mut self, started: Option<usize>, finished: usize) {
        if let State::Refreshing { .. } = self.state {
            self.state = State::Refreshing { started, finished };
            if started.is_some_and(|n| finished >= n) {
                self.state = State::Checking;
                self.push(Envelope::Routing(RoutingInput::Summarize));
            }
        }
    }

    fn retry_later(&mut self, now: Instant, log: impl FnOnce(Duration) -> LogEvent) {
        let wait = self.wait;
        self.push(Envelope::Log(log(wait)));
        self.state = State::Waiting { until: now + wait };
        self.wait = (wait * 2).min(self.config.retry_max);
    }

    fn complete(&mut self, now: Instant) {
        self.state = State::Complete;
        self.telemetry
            .family_bootstrapped
            .set(self.family.into(), 1);
        self.wait = self.config.retry;
        self.look_again_wait = self.config.retry;
        self.push(Envelope::Lookups(LookupsInput::Bootstrapped(
            self.family,
            true,
        )));
        self.push(Envelope::Api(ApiEvent::Bootstrapped(true)));
        self.push(Envelope::Log(LogEvent::BootstrapComplete(self.table)));
        self.schedule_look_again(now);
    }

    fn schedule_look_again(&mut self, now: Instant) {
        if self.look_again_at.is_none() && !self.looking_again {
            self.look_again_at = Some(now + self.look_again_wait);
            self.look_again_wait = (self.look_again_wait * 2).min(self.config.look_again_max);
        }
    }

    fn table_changed(&mut self, now: Instant, summary: TableSummary) {
        self.table = summary;
        match self.state {
            State::Checking if summary.nodes > 0 => self.complete(now),
            State::Checking => {
                let attempt = self.attempts;
                let family = self.family;
                self.retry_later(now, |retry_in| LogEvent::BootstrapEmpty {
                    family,
                    attempt,
                    retry_in,
                });
            }
            // A node joined our table (it queried us): try again now.
            State::Waiting { .. } if summary.nodes > 0 => {
                self.state = State::Waiting { until: now };
            }
            State::Complete if summary.nodes == 0 => {
                self.telemetry
                    .family_bootstrapped
                    .set(self.family.into(), 0);
                self.look_again_at = None;
                self.looking_again = false;
                self.push(Envelope::Lookups(LookupsInput::Bootstrapped(
                    self.family,
                    false,
                )));
                self.push(Envelope::Api(ApiEvent::Bootstrapped(false)));
                self.push(Envelope::Log(LogEvent::Rejoining(self.family)));
                self.state = State::Waiting { until: now };
            }
            _ => {}
        }
    }

    fn add_nodes(&mut self, now: Instant, addrs: Vec<SocketAddr>) {
        for addr in addrs {
            if self.added.contains(&addr) {
                continue;
            }
            if self.added.len() >= self.config.max_added_nodes.max(1) {
                self.added.pop_front();
            }
            self.added.push_back(addr);
            // Its answer puts it in the table (it is not a router).
            self.push(Envelope::RateLimiter(RateLimiterInput::Send(
                OutboundQuery {
                    to: addr,
                    node: None,
                    query: OutQuery::Ping,
                    asker: Asker::Nobody,
                },
            )));
        }
        if let State::Waiting { .. } = self.state {
            self.state = State::Waiting { until: now };
        }
    }

    fn external_address(&mut self, ip: IpAddr) {
        self.push(Envelope::Api(ApiEvent::ExternalAddress(ip)));
        self.push(Envelope::Log(LogEvent::ExternalAddress(ip)));
        if !self.bep42 || bep42::is_valid(&self.own_id, ip) || self.bep42_for == Some(ip) {
            return;
        }
        // A node id cannot change under a running table without dropping
        // it, so the BEP 42 id is kept for the next start.
        self.bep42_for = Some(ip);
        let id = bep42::generate(ip, &mut self.rng);
        self.push(Envelope::Io(IoRequest::SaveNodeId(id)));
        self.push(Envelope::Log(LogEvent::Bep42Id(id)));
    }
}

impl Piece for Bootstrap {
    type Input = SupervisorInput;
    const COMPONENT: Component = Component::Supervisor;

    fn handle(&mut self, now: Instant, input: SupervisorInput) {
        match input {
            SupervisorInput::SourcesResolved { routers, nodes } => self.resolved(routers, nodes),
            SupervisorInput::AddNodes(addrs) => self.add_nodes(now, addrs),
            SupervisorInput::LookupFinished {
                purpose, summary, ..
            } => match purpose {
                BootstrapLookup::OwnId => self.own_id_found(now, summary),
                BootstrapLookup::Refresh => {
                    if let State::Refreshing { started, finished } = self.state {
                        self.refreshed(started, finished + 1);
                    }
                }
            },
            SupervisorInput::RefreshStarted(_, n) => {
                if let State::Refreshing { finished, .. } = self.state {
                    self.refreshed(Some(n), finished);
                }
            }
            SupervisorInput::TableSummary(summary) => self.table_changed(now, summary),
            SupervisorInput::ExternalAddress(ip) => self.external_address(ip),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Waiting { until } if until <= now => self.begin_attempt(),
            State::Complete if self.look_again_at.is_some_and(|at| at <= now) => {
                self.look_again_at = None;
                self.looking_again = true;
                self.telemetry.bootstrap_attempts.incr(());
                // A table of k nodes or more finds our neighbourhood alone;
                // asking the routers too was most of what they heard
                // (`dhtd sim`, README "Defaults chosen by data"), and each
                // look waited a round trip on their answers first.
                let thin = self.table.nodes < self.k;
                self.look_up_own_id(Vec::new(), thin);
            }
            _ => {}
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Waiting { until } => Some(until),
            State::Complete => self.look_again_at,
            _ => None,
        }
    }

    fn outputs(&mut self) -> &mut Outputs {
        &mut self.outputs
    }
}

#[cfg(test)]
mod tests;
