//! Routing-table upkeep: the k-buckets, and everything done to keep them
//! healthy.
//!
//! - It learns from every answer and failure the transaction table reports,
//!   and from the queriers the responder reports. A querier the table
//!   holds, or has no room for, is settled at once; one worth a ping is
//!   judged again [`PUBLISH_DELAY`] after it was reported, with whatever
//!   arrived in the meantime: a node that queries us while answering our
//!   own query is then known, not pinged (and the decision does not depend
//!   on which of the two reports came first, which differs between
//!   drivers).
//! - It pings nodes worth adding and questionable nodes, each address at
//!   most once per [`PING_SPACING`] (many answers name the same new node,
//!   and one ping tells whether it lives).
//! - It refreshes buckets untouched for 15 minutes, and all buckets at once
//!   when the bootstrap asks: one find_node for a random id in the bucket's
//!   range, to the node nearest it (or a lookup of it, as the config says;
//!   see [`crate::routing::BucketRefresh`]).
//! - It estimates the size of the whole DHT: the reachable nodes from how
//!   close its nearest ones are, counting only nodes reached other than
//!   through the NAT mapping their own query opened, and the unreachable
//!   ones (behind NATs, read-only) from the share of searching queriers
//!   that fail a ping sent minutes after they queried (see
//!   [`QuerierReach`]).
//! - It publishes its nodes to the store and the lookup pool
//!   [`PUBLISH_DELAY`] after a change (a burst of changes once), with a
//!   summary for the supervisor, or at once when asked to.
//! - Routers are asked, not kept: a router answers everyone and would
//!   crowd out a real node. The one exception is a router that our own-id
//!   lookup found among our k closest nodes: in a network that small it is
//!   a neighbour, and leaving it out would cut it off (a private network
//!   where each node was started with the one before as its router).

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;

use super::{
    Envelope, LookupsInput, NodeConfig, OutQuery, OutboundQuery, Outputs, Piece, RateLimiterInput,
    Requester, RoutingInput, StartLookup, StoreInput, SupervisorInput, TableSummary,
};
use crate::compact::NodeInfo;
use crate::family::Family;
use crate::id::NodeId;
use crate::lookup::LookupKind;
use crate::node::{Asker, BootstrapLookup};
use crate::rate_limit::{Spacing, SpacingVerdict};
use crate::routing::{
    BucketRefresh, FailOutcome, HeardOutcome, InsertOutcome, Maintenance, NodeFilter, QuerierReach,
    RejectReason, RoutingStats, RoutingTable,
};
use crate::telemetry::{AddressFamily, Component, NodeState, RoutingRefusal, Telemetry};
use crate::K;

/// How soon a changed table is published: soon enough that answers carry
/// the nodes just learned (a fresh node's table changes fast), late enough
/// to publish a burst of changes once.
pub const PUBLISH_DELAY: Duration = Duration::from_millis(50);
/// A node is pinged at most once in this long (a lost ping is retried by
/// the table's own upkeep).
pub const PING_SPACING: Duration = Duration::from_secs(10);
/// Addresses remembered for `PING_SPACING`; beyond, pings are skipped.
pub const PINGS_TRACKED: usize = 8192;
/// Queriers' pings whose answers are told apart, at most, and for how
/// long (answers come within seconds).
const QUERIER_PINGS: usize = 64;
const QUERIER_ANSWER_WAIT: Duration = Duration::from_secs(30);
/// Seeds handed to a lookup started from the table.
pub const SEEDS: usize = 2 * K;

/// The table's own upkeep (pings of questionable nodes, refreshes of quiet
/// buckets) runs on this tick, all that is due at once: each entry turns
/// questionable at its own time, and waking for each was a quarter of all
/// events in a simulated network. A minute late on a 15-minute timer
/// changes nothing BEP 5 asks for. A bucket's refresh waits one tick more
/// than its nodes' pings: their answers change the bucket, which makes
/// most refreshes unnecessary (refreshing on the pings' tick sent 11% more
/// datagrams).
pub const MAINTENANCE_TICK: Duration = Duration::from_secs(60);

/// The routing gauges follow time alone at most this often (a change to
/// the table updates them at once). Entries turn questionable after 15
/// minutes, so a minute is fresh enough; at once a second, counting the
/// table on the wake-up that follows each query received was 5% of a
/// simulation's time.
const GAUGES_EVERY: Duration = MAINTENANCE_TICK;

/// The routing table's piece.
#[derive(Debug)]
pub struct Upkeep {
    family: Family,
    table: RoutingTable,
    rng: StdRng,
    routers: HashSet<SocketAddr>,
    admitted_routers: HashSet<SocketAddr>,
    recently_pinged: Spacing<SocketAddr>,
    publish_at: Option<Instant>,
    /// Queriers reported since the last decision (each with when it
    /// queried, and `ro`), and when to decide.
    queriers: Vec<(NodeInfo, Instant, bool)>,
    queriers_at: Option<Instant>,
    /// Queriers pinged when they queried, and when they queried: their
    /// answer came through the NAT mapping their query opened.
    querier_pings: VecDeque<(SocketAddr, Instant)>,
    /// How many queriers cannot be reached: what the size estimate made
    /// from the table does not see.
    reach: QuerierReach,
    /// When the gauges may be brought up to date with time alone again.
    gauges_at: Instant,
    /// Where the maintenance ticks are counted from.
    ticks_from: Instant,
    telemetry: Arc<Telemetry>,
    outputs: Outputs,
}

impl Upkeep {
    /// An empty table for `own_id`.
    pub fn new(
        now: Instant,
        family: Family,
        own_id: NodeId,
        config: &NodeConfig,
        rng: StdRng,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        let mut routing = config.routing;
        routing.refresh_after += MAINTENANCE_TICK;
        Upkeep {
            family,
            table: RoutingTable::new(own_id, now, routing),
            rng,
            routers: HashSet::new(),
            admitted_routers: HashSet::new(),
            recently_pinged: Spacing::new(PING_SPACING, PINGS_TRACKED),
            // Publish the empty table once, so that everyone starts from it.
            publish_at: Some(now),
            queriers: Vec::new(),
            queriers_at: None,
            querier_pings: VecDeque::new(),
            reach: QuerierReach::new(now, MAINTENANCE_TICK),
            gauges_at: now,
            ticks_from: now,
            telemetry,
            outputs: Outputs::default(),
        }
    }

    /// The table, for statistics and saving.
    pub fn table(&self) -> &RoutingTable {
        &self.table
    }

    /// Counts per bucket and state.
    pub fn stats(&self, now: Instant) -> RoutingStats {
        self.table.stats(now)
    }

    fn is_router(&self, addr: &SocketAddr) -> bool {
        self.routers.contains(addr) && !self.admitted_routers.contains(addr)
    }

    /// Estimated nodes in the whole DHT: those the table's density counts,
    /// and as many more as the share of queriers we cannot reach says.
    pub fn estimated_dht_size(&self, now: Instant) -> Option<u64> {
        let reachable = self.table.estimated_dht_size(now)?;
        Some(self.reach.all_nodes(reachable))
    }

    /// The share of queriers we cannot reach, once enough were counted.
    pub fn unreachable_share(&self) -> Option<f64> {
        self.reach.unreachable_share()
    }

    /// Pings `info` unless it was pinged a moment ago; says whether it did.
    fn ping(&mut self, now: Instant, info: NodeInfo) -> bool {
        if self.recently_pinged.try_use(now, info.addr) != SpacingVerdict::Go {
            return false;
        }
        self.outputs
            .push(Envelope::RateLimiter(RateLimiterInput::Send(
                OutboundQuery {
                    to: info.addr,
                    node: Some(info.id),
                    query: OutQuery::Ping,
                    asker: Asker::Nobody,
                },
            )));
        true
    }

    fn consider(&mut self, now: Instant, info: &NodeInfo) {
        if !self.is_router(&info.addr)
            && self.table.heard_about(now, info) == HeardOutcome::WorthPinging
        {
            self.ping(now, *info);
        }
    }

    fn responded(&mut self, now: Instant, info: NodeInfo, rtt: Option<Duration>) {
        if self.is_router(&info.addr) {
            return;
        }
        self.reach.answered(&info.addr);
        let outcome = self.table.node_responded_in(now, info, rtt);
        if let Some(i) = self.querier_pings.iter().position(|(a, _)| *a == info.addr) {
            if let Some((_, queried_at)) = self.querier_pings.remove(i) {
                self.table.answered_after_its_query(&info, queried_at);
            }
        }
        match outcome {
            InsertOutcome::PingOldest(oldest) => {
                self.ping(now, oldest);
            }
            InsertOutcome::Inserted => self.changed(now),
            InsertOutcome::Rejected(why) => {
                let counted = match why {
                    RejectReason::SameIp => Some(RoutingRefusal::SameIp),
                    RejectReason::SamePrefix => Some(RoutingRefusal::SamePrefix),
                    RejectReason::IdAtOtherAddress => Some(RoutingRefusal::IdAtOtherAddress),
                    RejectReason::OwnId | RejectReason::ReadOnly | RejectReason::BucketFull => None,
                };
                if let Some(why) = counted {
                    self.telemetry.routing_refused.incr(why);
                }
            }
            _ => {}
        }
    }

    fn changed(&mut self, now: Instant) {
        let at = now + PUBLISH_DELAY;
        if self.publish_at.is_none_or(|p| p > at) {
            self.publish_at = Some(at);
        }
    }

    /// The first maintenance tick at or after `t`.
    fn tick_at_or_after(&self, t: Instant) -> Instant {
        crate::deadline::tick_at_or_after(self.ticks_from, MAINTENANCE_TICK, t)
    }

    /// Refreshes the bucket whose range holds `target` the way the table's
    /// config says (an empty table can only look up). Returns whether it
    /// started a lookup.
    fn refresh(&mut self, now: Instant, target: NodeId, requester: Requester) -> bool {
        let nearest = match self.table.config().refresh {
            BucketRefresh::Lookup => None,
            BucketRefresh::OneQuery => self
                .table
                .closest(now, &target, 1, NodeFilter::NotBad)
                .first()
                .copied(),
        };
        let out = match nearest {
            Some(to) => Envelope::RateLimiter(RateLimiterInput::Send(OutboundQuery {
                to: to.addr,
                node: Some(to.id),
                query: OutQuery::FindNode(target),
                asker: Asker::Nobody,
            })),
            None => self.lookup(now, target, requester),
        };
        self.outputs.push(out);
        nearest.is_none()
    }

    /// A lookup of `target` from the table's closest nodes.
    fn lookup(&self, now: Instant, target: NodeId, requester: Requester) -> Envelope {
        let mut start =
            StartLookup::new(target, LookupKind::FindNode, requester).in_family(self.family);
        start.seeds = self.table.closest(now, &target, SEEDS, NodeFilter::NotBad);
        Envelope::Lookups(LookupsInput::Start(start))
    }

    /// Brings the routing gauges up to date; returns the size estimate.
    fn gauges(&mut self, now: Instant) -> Option<u64> {
        self.gauges_at = now + GAUGES_EVERY;
        let t = &self.telemetry;
        let f = AddressFamily::from(self.family);
        let total = self.table.totals(now);
        t.routing_nodes.set((f, NodeState::Good), total.good as u64);
        t.routing_nodes
            .set((f, NodeState::Questionable), total.questionable as u64);
        t.routing_nodes.set((f, NodeState::Bad), total.bad as u64);
        t.routing_buckets.set(f, self.table.bucket_count() as u64);
        let reachable = self.table.estimated_dht_size(now);
        t.estimated_reachable.set(f, reachable.unwrap_or(0));
        let size = reachable.map(|r| self.reach.all_nodes(r));
        t.estimated_size.set(f, size.unwrap_or(0));
        size
    }

    fn publish(&mut self, now: Instant) {
        self.publish_at = None;
        let estimated_dht_size = self.gauges(now);
        let snapshot = Arc::new(self.table.snapshot(now, NodeFilter::NotBad));
        let summary = TableSummary {
            family: self.family,
            nodes: snapshot.len(),
            buckets: self.table.bucket_count(),
            estimated_dht_size,
        };
        self.outputs.push(Envelope::Store(StoreInput::Snapshot(
            self.family,
            snapshot.clone(),
        )));
        self.outputs.push(Envelope::Lookups(LookupsInput::Snapshot(
            self.family,
            snapshot,
        )));
        self.outputs
            .push(Envelope::Supervisor(SupervisorInput::TableSummary(summary)));
    }
}

impl Piece for Upkeep {
    type Input = RoutingInput;
    const COMPONENT: Component = Component::RoutingTable;

    fn handle(&mut self, now: Instant, input: RoutingInput) {
        match input {
            RoutingInput::Responded { info, heard, rtt } => {
                self.responded(now, info, rtt);
                for n in &heard {
                    self.consider(now, n);
                }
            }
            RoutingInput::Failed { info } => {
                self.reach.failed(now, &info.addr);
                // What others are told of holds the nodes not bad: only a
                // node turning bad, or its replacement, changes it.
                match self.table.node_failed(now, &info.id, info.addr) {
                    FailOutcome::MarkedBad | FailOutcome::Replaced { .. } => self.changed(now),
                    FailOutcome::NotFound
                    | FailOutcome::Failing(_)
                    | FailOutcome::DroppedFromCache => {}
                }
            }
            RoutingInput::Queried {
                info,
                read_only,
                searching,
            } => {
                // Most queriers are held already, or have no room to join:
                // settled now, without a wake-up of their own (which was
                // three in five of a simulated node's). Only one worth a
                // ping waits, and is judged again then.
                // Whether it is a router is asked when its trial is due:
                // a router is admitted on its own report, which the two
                // drivers order differently against this one.
                self.reach.queried(now, info, read_only, searching);
                if self.table.node_queried(now, &info, read_only) != HeardOutcome::WorthPinging {
                    return;
                }
                // Bounded: the responder reports each querier at most every
                // 10 s, and a flood beyond this many is not worth a ping each.
                if self.queriers.len() < PINGS_TRACKED {
                    self.queriers.push((info, now, read_only));
                }
                self.queriers_at.get_or_insert(now + PUBLISH_DELAY);
            }
            RoutingInput::Consider(nodes) => {
                for n in &nodes {
                    self.consider(now, n);
                }
            }
            RoutingInput::SetRouters(routers) => self.routers.extend(routers),
            RoutingInput::AdmitRouters(routers) => {
                for info in routers {
                    if self.admitted_routers.insert(info.addr) {
                        // It answered our lookup just now.
                        self.responded(now, info, None);
                    }
                }
            }
            RoutingInput::RefreshAll(_) => {
                let targets = self.table.refresh_targets(&mut self.rng);
                let mut n = 0;
                for target in targets {
                    // The bootstrap waits for the lookups, not for the
                    // answers to single queries.
                    let requester = Requester::Bootstrap(BootstrapLookup::Refresh);
                    n += usize::from(self.refresh(now, target, requester));
                }
                self.outputs
                    .push(Envelope::Supervisor(SupervisorInput::RefreshStarted(
                        self.family,
                        n,
                    )));
            }
            RoutingInput::Summarize => self.publish(now),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.queriers_at.is_some_and(|at| at <= now) {
            self.queriers_at = None;
            for (info, queried_at, read_only) in std::mem::take(&mut self.queriers) {
                if self.table.node_queried(now, &info, read_only) == HeardOutcome::WorthPinging
                    && !self.is_router(&info.addr)
                    && self.ping(now, info)
                {
                    // Answers come within seconds: older pings got none.
                    while self.querier_pings.len() == QUERIER_PINGS
                        || self.querier_pings.front().is_some_and(|(_, at)| {
                            now.saturating_duration_since(*at) > QUERIER_ANSWER_WAIT
                        })
                    {
                        self.querier_pings.pop_front();
                    }
                    self.querier_pings.push_back((info.addr, queried_at));
                }
            }
        }
        while let Some(info) = self.reach.due(now) {
            if self.is_router(&info.addr) || !self.ping(now, info) {
                self.reach.not_pinged(&info);
            }
        }
        // The table says exactly when it has work (its poll_timeout), and
        // scanning it for none was most of a quiet wake-up.
        while self.table.poll_timeout().is_some_and(|t| t <= now) {
            let Some(work) = self.table.poll_maintenance(now, &mut self.rng) else {
                break;
            };
            match work {
                Maintenance::Ping(info) => {
                    self.ping(now, info);
                }
                Maintenance::Refresh { target, .. } => {
                    self.refresh(now, target, Requester::Refresh);
                }
            }
        }
        if self.publish_at.is_some_and(|at| at <= now) {
            self.publish(now);
        } else if now >= self.gauges_at {
            // Nodes turn questionable with time alone.
            self.gauges(now);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let maintenance = self.table.poll_timeout().map(|t| self.tick_at_or_after(t));
        [
            maintenance,
            self.publish_at,
            self.queriers_at,
            // Its trials wait for the tick too: minutes late, as they
            // are minutes long, and no wake-up of their own.
            self.reach.poll_timeout().map(|t| self.tick_at_or_after(t)),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn outputs(&mut self) -> &mut Outputs {
        &mut self.outputs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::NAT_MAPPING_MAX;
    use rand::SeedableRng;

    fn upkeep(now: Instant) -> Upkeep {
        upkeep_refreshing_by(now, BucketRefresh::Lookup)
    }

    fn upkeep_refreshing_by(now: Instant, refresh: BucketRefresh) -> Upkeep {
        let mut config = NodeConfig::default();
        config.routing.refresh = refresh;
        Upkeep::new(
            now,
            Family::V4,
            NodeId([0; 20]),
            &config,
            StdRng::seed_from_u64(1),
            Arc::new(Telemetry::default()),
        )
    }

    /// An upkeep whose table holds 39 nodes, asked for a full refresh.
    fn refreshing_all(t0: Instant, refresh: BucketRefresh) -> Upkeep {
        let mut u = upkeep_refreshing_by(t0, refresh);
        for i in 1..40 {
            u.handle(t0, answer_from(node(i)));
        }
        while u.outputs.pop().is_some() {}
        u.handle(t0, RoutingInput::RefreshAll(Family::V4));
        u
    }

    /// An answer from `info` naming no node, its round trip not measured.
    fn answer_from(info: NodeInfo) -> RoutingInput {
        RoutingInput::Responded {
            info,
            heard: vec![],
            rtt: None,
        }
    }

    fn node(i: u8) -> NodeInfo {
        NodeInfo {
            id: NodeId([i; 20]),
            addr: SocketAddr::from(([10, 0, i, 1], 6881)),
        }
    }

    fn pings(u: &mut Upkeep) -> Vec<SocketAddr> {
        let mut v = Vec::new();
        while let Some(e) = u.outputs.pop() {
            if let Envelope::RateLimiter(RateLimiterInput::Send(q)) = e {
                assert_eq!(q.query, OutQuery::Ping);
                v.push(q.to);
            }
        }
        v
    }

    #[test]
    fn nodes_heard_of_are_pinged_once_per_spacing() {
        let t0 = crate::test_epoch();
        let mut u = upkeep(t0);
        let heard = vec![node(1), node(2)];
        u.handle(
            t0,
            RoutingInput::Responded {
                info: node(3),
                heard: heard.clone(),
                rtt: None,
            },
        );
        u.handle(
            t0,
            RoutingInput::Responded {
                info: node(4),
                heard,
                rtt: None,
            },
        );
        assert_eq!(pings(&mut u), vec![node(1).addr, node(2).addr]);
        let later = t0 + PING_SPACING;
        u.handle(later, RoutingInput::Consider(vec![node(1)]));
        assert_eq!(pings(&mut u), vec![node(1).addr]);
    }

    /// Nodes turning questionable at their own times are pinged together,
    /// at the first maintenance tick after: one wake-up, not one each. The
    /// bucket's refresh waits a tick more, for the pings' answers.
    #[test]
    fn questionable_nodes_wait_for_the_maintenance_tick_and_refreshes_one_more() {
        let t0 = crate::test_epoch();
        let mut u = upkeep(t0);
        let quiet = crate::routing::RoutingConfig::default().questionable_after;
        let heard_at = [t0 + Duration::from_secs(5), t0 + Duration::from_secs(40)];
        for (i, at) in heard_at.into_iter().enumerate() {
            let info = node(0x80 + i as u8);
            u.handle(at, answer_from(info));
        }
        u.handle_timeout(heard_at[1] + PUBLISH_DELAY);
        pings(&mut u);
        let wake = u.poll_timeout().expect("upkeep is due");
        assert_eq!(wake, t0 + quiet + MAINTENANCE_TICK, "the tick after both");
        assert!(wake > heard_at[1] + quiet);
        u.handle_timeout(wake);
        let (mut pinged, mut refreshes) = (Vec::new(), 0);
        while let Some(e) = u.outputs.pop() {
            match e {
                Envelope::RateLimiter(RateLimiterInput::Send(q)) => pinged.push(q.to),
                Envelope::Lookups(LookupsInput::Start(_)) => refreshes += 1,
                _ => {}
            }
        }
        assert_eq!(pinged, vec![node(0x80).addr, node(0x81).addr]);
        assert_eq!(refreshes, 0, "no refresh on the pings' tick");
        // Unanswered, the bucket is refreshed on the next tick.
        let next = u.poll_timeout().expect("the refresh is due");
        assert_eq!(next, wake + MAINTENANCE_TICK);
        u.handle_timeout(next);
        let started = std::iter::from_fn(|| u.outputs.pop())
            .filter(|e| matches!(e, Envelope::Lookups(LookupsInput::Start(_))))
            .count();
        assert_eq!(started, 1);
    }

    /// Routers are asked, never kept, unless admitted as neighbours.
    #[test]
    fn routers_stay_out_unless_admitted() {
        let t0 = crate::test_epoch();
        let mut u = upkeep(t0);
        u.handle(t0, RoutingInput::SetRouters(vec![node(1).addr]));
        u.handle(t0, answer_from(node(1)));
        u.handle(
            t0,
            RoutingInput::Queried {
                info: node(1),
                read_only: false,
                searching: true,
            },
        );
        u.handle_timeout(t0 + PUBLISH_DELAY);
        u.handle(t0, RoutingInput::Consider(vec![node(1)]));
        assert!(u.table().is_empty());
        assert!(pings(&mut u).is_empty());
        u.handle(t0, RoutingInput::AdmitRouters(vec![node(1)]));
        assert_eq!(u.table().nodes(), vec![node(1)]);
    }

    /// A change is published once, after the delay, to the store, the
    /// lookups and the supervisor; `Summarize` publishes at once.
    #[test]
    fn changes_are_published_after_a_short_delay() {
        let t0 = crate::test_epoch();
        let mut u = upkeep(t0);
        u.handle_timeout(t0);
        while u.outputs.pop().is_some() {}
        u.handle(t0, answer_from(node(1)));
        u.handle(t0, answer_from(node(2)));
        assert_eq!(u.poll_timeout(), Some(t0 + PUBLISH_DELAY));
        u.handle_timeout(t0 + PUBLISH_DELAY);
        let mut kinds = Vec::new();
        while let Some(e) = u.outputs.pop() {
            kinds.push(match e {
                Envelope::Store(StoreInput::Snapshot(_, s)) => format!("store {}", s.len()),
                Envelope::Lookups(LookupsInput::Snapshot(_, s)) => format!("lookups {}", s.len()),
                Envelope::Supervisor(SupervisorInput::TableSummary(s)) => {
                    format!("summary {}", s.nodes)
                }
                other => panic!("{other:?}"),
            });
        }
        assert_eq!(kinds, ["store 2", "lookups 2", "summary 2"]);
        u.handle(t0 + PUBLISH_DELAY, RoutingInput::Summarize);
        assert_eq!(u.outputs.len(), 3);
    }

    /// A querier is judged a moment later, with what arrived meanwhile: one
    /// that answered our own query in between is known, not pinged.
    #[test]
    fn queriers_are_judged_after_what_arrives_meanwhile() {
        let t0 = crate::test_epoch();
        let mut u = upkeep(t0);
        u.handle_timeout(t0); // the first publication
        u.handle(
            t0,
            RoutingInput::Queried {
                info: node(1),
                read_only: false,
                searching: true,
            },
        );
        u.handle(
            t0,
            RoutingInput::Queried {
                info: node(2),
                read_only: false,
                searching: true,
            },
        );
        u.handle(
            t0,
            RoutingInput::Queried {
                info: node(3),
                read_only: true,
                searching: true,
            },
        );
        assert!(pings(&mut u).is_empty(), "not at once");
        u.handle(t0, answer_from(node(1)));
        assert_eq!(u.poll_timeout(), Some(t0 + PUBLISH_DELAY));
        u.handle_timeout(t0 + PUBLISH_DELAY);
        assert_eq!(
            pings(&mut u),
            vec![node(2).addr],
            "node 1 is known, node 3 read-only"
        );
    }

    /// A querier answers the ping sent as it queries (a NAT in front of
    /// it would let that in): it joins the table, but counts in the size
    /// estimate only once it answers a ping sent after that NAT would
    /// have closed.
    #[test]
    fn a_querier_answering_only_through_its_own_query_counts_in_no_estimate() {
        let t0 = crate::test_epoch();
        let mut u = upkeep(t0);
        for i in 1..40 {
            u.handle(t0, answer_from(node(i)));
        }
        let before = u.estimated_dht_size(t0).unwrap();
        let mut id = [0; 20];
        id[19] = 1;
        let nearest = NodeInfo {
            id: NodeId(id),
            addr: SocketAddr::from(([10, 2, 0, 1], 6881)),
        };
        u.handle(
            t0,
            RoutingInput::Queried {
                info: nearest,
                read_only: false,
                searching: false,
            },
        );
        let pinged_at = t0 + PUBLISH_DELAY;
        u.handle_timeout(pinged_at);
        assert_eq!(pings(&mut u), vec![nearest.addr]);
        u.handle(pinged_at, answer_from(nearest));
        let own = NodeId([0; 20]);
        let closest = u.table().closest(pinged_at, &own, 1, NodeFilter::NotBad);
        assert_eq!(closest, vec![nearest], "it joined");
        assert_eq!(u.estimated_dht_size(pinged_at), Some(before));
        let later = t0 + NAT_MAPPING_MAX;
        u.handle(later, answer_from(nearest));
        assert!(u.estimated_dht_size(later).unwrap() > before);
    }

    /// A node behind a NAT answers a ping sent as it queries us, so each
    /// search's querier (one per 30 s) is pinged again after its NAT
    /// would have closed; the share that fails then scales the estimate
    /// made from the table up to the whole DHT. Pings start no trial: a
    /// node we queried pings us to add us, and only reachable ones can.
    #[test]
    fn queriers_tried_after_their_nat_closed_scale_the_size_estimate() {
        let t0 = crate::test_epoch();
        let mut u = upkeep(t0);
        for i in 1..40 {
            u.handle(t0, answer_from(node(i)));
        }
        let reachable = u.estimated_dht_size(t0).unwrap();
        let querier = |i: u8| NodeInfo {
            id: NodeId([0x80 | i; 20]),
            addr: SocketAddr::from(([10, 1, i, 1], 6881)),
        };
        // A third of the trial pings fail (twice: the trial retries).
        let answer_trials = |u: &mut Upkeep, t, querying: Option<u8>, tried: &mut Vec<u8>| {
            for addr in pings(u) {
                let Some(i) = (0..13u8).find(|&i| querier(i).addr == addr) else {
                    continue;
                };
                if Some(i) == querying {
                    continue;
                }
                tried.push(i);
                if i % 3 == 0 {
                    u.handle(t, RoutingInput::Failed { info: querier(i) });
                } else {
                    u.handle(t, answer_from(querier(i)));
                }
            }
        };
        let mut tried = Vec::new();
        let mut t = t0;
        for i in 0..13u8 {
            assert_eq!(u.estimated_dht_size(t), Some(reachable), "none tried yet");
            u.handle(
                t,
                RoutingInput::Queried {
                    info: querier(i),
                    read_only: false,
                    // The last only pings: no trial.
                    searching: i < 12,
                },
            );
            // The ping sent at once goes unanswered here.
            u.handle_timeout(t + PUBLISH_DELAY);
            answer_trials(&mut u, t + PUBLISH_DELAY, Some(i), &mut tried);
            t += Duration::from_secs(31);
        }
        let end = t + NAT_MAPPING_MAX + MAINTENANCE_TICK * 3;
        while t < end {
            t += Duration::from_secs(5);
            u.handle_timeout(t);
            answer_trials(&mut u, t, None, &mut tried);
        }
        tried.sort();
        tried.dedup();
        assert_eq!(tried, (0..12).collect::<Vec<_>>(), "each searcher tried");
        // Four of twelve failed: the table sees two thirds of the DHT.
        let all = u.estimated_dht_size(t).unwrap() as f64;
        let ratio = all / reachable as f64;
        assert!((1.45..1.55).contains(&ratio), "{ratio}");
    }

    /// A querier the table holds is kept good at once, with no wake-up of
    /// its own: its query counts when the next tick looks for questionable
    /// nodes.
    #[test]
    fn a_held_querier_is_settled_at_once() {
        let t0 = crate::test_epoch();
        let mut u = upkeep(t0);
        u.handle(t0, answer_from(node(1)));
        u.handle_timeout(t0 + PUBLISH_DELAY);
        while u.outputs.pop().is_some() {}
        let before = u.poll_timeout();
        let quiet = crate::routing::RoutingConfig::default().questionable_after;
        let queried_at = t0 + quiet / 2;
        u.handle(
            queried_at,
            RoutingInput::Queried {
                info: node(1),
                read_only: false,
                // A ping (a search's query would start a trial of its
                // reach, minutes later).
                searching: false,
            },
        );
        assert_eq!(u.poll_timeout(), before, "no wake-up for the querier");
        let tick = before.expect("node 1 turns questionable some day");
        assert!(
            tick >= t0 + quiet && tick < queried_at + quiet,
            "{:?}",
            tick - t0
        );
        u.handle_timeout(tick);
        assert!(pings(&mut u).is_empty(), "it queried us: still good");
    }

    #[test]
    fn a_full_refresh_starts_one_lookup_per_bucket_and_says_how_many() {
        let t0 = crate::test_epoch();
        let mut u = refreshing_all(t0, BucketRefresh::Lookup);
        let buckets = u.table().bucket_count();
        let mut lookups = 0;
        let mut said = None;
        while let Some(e) = u.outputs.pop() {
            match e {
                Envelope::Lookups(LookupsInput::Start(s)) => {
                    assert_eq!(s.requester, Requester::Bootstrap(BootstrapLookup::Refresh));
                    assert!(!s.seeds.is_empty());
                    lookups += 1;
                }
                Envelope::Supervisor(SupervisorInput::RefreshStarted(_, n)) => said = Some(n),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!((lookups, said), (buckets, Some(buckets)));
    }

    /// Refreshing by one query, a full refresh sends a find_node for a
    /// random id in each bucket's range to the node nearest that id, and
    /// tells the bootstrap that no lookup is to be waited for; an empty
    /// table, with no one to ask, looks up instead.
    #[test]
    fn a_full_refresh_by_one_query_asks_the_node_nearest_each_bucket_target() {
        let t0 = crate::test_epoch();
        let mut empty = upkeep_refreshing_by(t0, BucketRefresh::OneQuery);
        while empty.outputs.pop().is_some() {}
        empty.handle(t0, RoutingInput::RefreshAll(Family::V4));
        let starts = std::iter::from_fn(|| empty.outputs.pop())
            .filter(|e| matches!(e, Envelope::Lookups(LookupsInput::Start(_))))
            .count();
        assert_eq!(starts, 1, "an empty table has one bucket, and looks it up");

        let mut u = refreshing_all(t0, BucketRefresh::OneQuery);
        let buckets = u.table().bucket_count();
        let (mut asked, mut said) = (Vec::new(), None);
        while let Some(e) = u.outputs.pop() {
            match e {
                Envelope::RateLimiter(RateLimiterInput::Send(q)) => {
                    let OutQuery::FindNode(target) = q.query else {
                        panic!("{:?}", q.query)
                    };
                    let nearest = u.table().closest(t0, &target, 1, NodeFilter::NotBad);
                    assert_eq!((q.to, q.node), (nearest[0].addr, Some(nearest[0].id)));
                    assert_eq!(q.asker, Asker::Nobody);
                    asked.push(target);
                }
                Envelope::Supervisor(SupervisorInput::RefreshStarted(_, n)) => said = Some(n),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!((asked.len(), said), (buckets, Some(0)));
        let mut in_buckets: Vec<usize> = asked
            .iter()
            .map(|t| usize::from(u.table().bucket_index(t).0))
            .collect();
        in_buckets.sort_unstable();
        assert_eq!(
            in_buckets,
            (0..buckets).collect::<Vec<_>>(),
            "one per bucket"
        );
    }
}
