//! A dual-stack node (BEP 32): one routing table, lookup pool and
//! bootstrap per address family, under one node id, each run as a single
//! piece so that the drivers see no difference.
//!
//! - [`PerFamily`] holds one piece per family that is on and hands each
//!   input to the family it concerns ([`FamilyInput::split`]): by the
//!   address it names, the family it carries, or to every family.
//! - [`LookupPools`] also runs the application's lookups in every family
//!   that has bootstrapped and merges what they report into one stream of
//!   peers and one summary; a lookup asked for before any family
//!   bootstrapped waits for the first.
//! - [`Bootstraps`] tells the application that the node is bootstrapped
//!   once any family is, and that it is lost once every family is.
//!
//! With one family on, each holds one piece and adds nothing but a move of
//! its outputs.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::{
    ApiEvent, CallerId, Envelope, IoRequest, LookupEvent, LookupSummary, LookupsInput, NodeConfig,
    Outputs, Piece, Requester, RoutingInput, StartLookup, SupervisorInput,
};
use crate::compact::NodeInfo;
use crate::family::{Families, Family};
use crate::lookup::LookupEnd;
use crate::node::bootstrap::Bootstrap;
use crate::node::lookups::LookupPool;
use crate::telemetry::{Component, Telemetry};

/// An input that concerns one family, some, or all.
pub trait FamilyInput: Sized {
    /// The parts of `self` for each family, among those `on`.
    fn split(self, on: Families) -> Parts<Self>;
}

/// The parts of an input, at most one per family, in the order made. Held
/// inline: nearly every input has one part, and every input of a
/// per-family piece is split.
#[derive(Debug)]
pub struct Parts<T>([Option<(Family, T)>; 2]);

impl<T> Parts<T> {
    fn none() -> Self {
        Parts([None, None])
    }

    fn one(family: Family, part: T) -> Self {
        Parts([Some((family, part)), None])
    }

    fn push(&mut self, family: Family, part: T) {
        let free = self.0.iter_mut().find(|slot| slot.is_none());
        debug_assert!(free.is_some(), "a part per family at most");
        if let Some(slot) = free {
            *slot = Some((family, part));
        }
    }
}

impl<T> FromIterator<(Family, T)> for Parts<T> {
    fn from_iter<I: IntoIterator<Item = (Family, T)>>(parts: I) -> Self {
        let mut all = Parts::none();
        for (family, part) in parts {
            all.push(family, part);
        }
        all
    }
}

impl<T> IntoIterator for Parts<T> {
    type Item = (Family, T);
    type IntoIter = std::iter::Flatten<std::array::IntoIter<Option<(Family, T)>, 2>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter().flatten()
    }
}

/// Splits `items` by the family of each one's address.
fn by_family<T>(items: Vec<T>, addr: impl Fn(&T) -> SocketAddr) -> [Vec<T>; 2] {
    let mut parts = [Vec::new(), Vec::new()];
    // Nearly always of one family: the list then moves whole.
    if let Some(family) = items.first().map(|item| Family::of(&addr(item))) {
        if items.iter().all(|item| Family::of(&addr(item)) == family) {
            parts[family.index()] = items;
            return parts;
        }
    }
    for item in items {
        parts[Family::of(&addr(&item)).index()].push(item);
    }
    parts
}

/// Each family's part of `nodes`, as `make` wraps it; empty parts left out.
fn split_nodes<T, I>(
    nodes: Vec<T>,
    addr: impl Fn(&T) -> SocketAddr,
    make: impl Fn(Vec<T>) -> I,
) -> Parts<I> {
    let [v4, v6] = by_family(nodes, addr);
    let mut out = Parts::none();
    if !v4.is_empty() {
        out.push(Family::V4, make(v4));
    }
    if !v6.is_empty() {
        out.push(Family::V6, make(v6));
    }
    out
}

impl FamilyInput for RoutingInput {
    fn split(self, on: Families) -> Parts<Self> {
        match self {
            RoutingInput::Responded { info, heard, rtt } => {
                let family = Family::of(&info.addr);
                let [v4, v6] = by_family(heard, |n: &NodeInfo| n.addr);
                let (same, other) = match family {
                    Family::V4 => (v4, v6),
                    Family::V6 => (v6, v4),
                };
                let mut out = Parts::one(
                    family,
                    RoutingInput::Responded {
                        info,
                        heard: same,
                        rtt,
                    },
                );
                // Nodes of the other family (a `want` for both) are pinged
                // into its table.
                let other_family = match family {
                    Family::V4 => Family::V6,
                    Family::V6 => Family::V4,
                };
                if !other.is_empty() && on.contains(other_family) {
                    out.push(other_family, RoutingInput::Consider(other));
                }
                out
            }
            RoutingInput::Failed { info } => {
                Parts::one(Family::of(&info.addr), RoutingInput::Failed { info })
            }
            RoutingInput::Queried {
                info,
                read_only,
                searching,
            } => Parts::one(
                Family::of(&info.addr),
                RoutingInput::Queried {
                    info,
                    read_only,
                    searching,
                },
            ),
            RoutingInput::Consider(nodes) => split_nodes(nodes, |n| n.addr, RoutingInput::Consider),
            RoutingInput::SetRouters(addrs) => split_nodes(addrs, |a| *a, RoutingInput::SetRouters),
            RoutingInput::AdmitRouters(nodes) => {
                split_nodes(nodes, |n| n.addr, RoutingInput::AdmitRouters)
            }
            RoutingInput::RefreshAll(family) => {
                Parts::one(family, RoutingInput::RefreshAll(family))
            }
            RoutingInput::Summarize => on.iter().map(|f| (f, RoutingInput::Summarize)).collect(),
        }
    }
}

impl FamilyInput for SupervisorInput {
    fn split(self, on: Families) -> Parts<Self> {
        match self {
            SupervisorInput::SourcesResolved { routers, nodes } => {
                // Every family hears, even of no source: it then waits.
                let mut routers = by_family(routers, |a| *a);
                let mut nodes = by_family(nodes, |a| *a);
                on.iter()
                    .map(|f| {
                        let i = f.index();
                        let resolved = SupervisorInput::SourcesResolved {
                            routers: std::mem::take(&mut routers[i]),
                            nodes: std::mem::take(&mut nodes[i]),
                        };
                        (f, resolved)
                    })
                    .collect()
            }
            SupervisorInput::AddNodes(addrs) => {
                split_nodes(addrs, |a| *a, SupervisorInput::AddNodes)
            }
            SupervisorInput::LookupFinished {
                family,
                purpose,
                summary,
            } => Parts::one(
                family,
                SupervisorInput::LookupFinished {
                    family,
                    purpose,
                    summary,
                },
            ),
            SupervisorInput::RefreshStarted(family, n) => {
                Parts::one(family, SupervisorInput::RefreshStarted(family, n))
            }
            SupervisorInput::TableSummary(s) => {
                Parts::one(s.family, SupervisorInput::TableSummary(s))
            }
            SupervisorInput::ExternalAddress(ip) => {
                Parts::one(Family::of_ip(ip), SupervisorInput::ExternalAddress(ip))
            }
        }
    }
}

impl FamilyInput for LookupsInput {
    fn split(self, on: Families) -> Parts<Self> {
        match self {
            LookupsInput::Start(start) => match start.family {
                Some(f) => Parts::one(f, LookupsInput::Start(start)),
                // `LookupPools` gives every lookup its family first.
                None => on
                    .iter()
                    .map(|f| (f, LookupsInput::Start(start.clone().in_family(f))))
                    .collect(),
            },
            LookupsInput::QueryDone { lookup, done } => {
                Parts::one(lookup.family(), LookupsInput::QueryDone { lookup, done })
            }
            LookupsInput::Snapshot(f, nodes) => Parts::one(f, LookupsInput::Snapshot(f, nodes)),
            LookupsInput::LocalPeers { lookup, peers } => {
                Parts::one(lookup.family(), LookupsInput::LocalPeers { lookup, peers })
            }
            LookupsInput::Delayed {
                lookup,
                node,
                until,
            } => Parts::one(
                lookup.family(),
                LookupsInput::Delayed {
                    lookup,
                    node,
                    until,
                },
            ),
            LookupsInput::Bootstrapped(f, done) => {
                Parts::one(f, LookupsInput::Bootstrapped(f, done))
            }
            LookupsInput::Cancel(caller) => on
                .iter()
                .map(|f| (f, LookupsInput::Cancel(caller)))
                .collect(),
            LookupsInput::Reconfigure(config) => on
                .iter()
                .map(|f| (f, LookupsInput::Reconfigure(config.clone())))
                .collect(),
            LookupsInput::AnnounceEvery {
                info_hash,
                spec,
                every,
            } => on
                .iter()
                .map(|f| {
                    (
                        f,
                        LookupsInput::AnnounceEvery {
                            info_hash,
                            spec,
                            every,
                        },
                    )
                })
                .collect(),
        }
    }
}

/// One piece per family that is on, run as one piece.
#[derive(Debug)]
pub struct PerFamily<P> {
    pieces: Vec<(Family, P)>,
    outputs: Outputs,
}

impl<P: Piece> PerFamily<P> {
    /// One piece for each family of `on`, made by `make`.
    pub fn new(on: Families, mut make: impl FnMut(Family) -> P) -> Self {
        PerFamily {
            pieces: on.iter().map(|f| (f, make(f))).collect(),
            outputs: Outputs::default(),
        }
    }

    /// The piece of `family`, if it is on.
    pub fn get(&self, family: Family) -> Option<&P> {
        self.pieces
            .iter()
            .find(|(f, _)| *f == family)
            .map(|(_, p)| p)
    }

    fn get_mut(&mut self, family: Family) -> Option<&mut P> {
        self.pieces
            .iter_mut()
            .find(|(f, _)| *f == family)
            .map(|(_, p)| p)
    }

    /// Each family's piece, IPv4 first.
    pub fn iter(&self) -> impl Iterator<Item = (Family, &P)> {
        self.pieces.iter().map(|(f, p)| (*f, p))
    }

    /// The families on.
    pub fn families(&self) -> Families {
        let mut on = Families::of(&[]);
        for (f, _) in &self.pieces {
            on.insert(*f);
        }
        on
    }

    fn take_outputs(&mut self, family: Family) {
        if let Some(i) = self.pieces.iter().position(|(f, _)| *f == family) {
            let inner = self.pieces[i].1.outputs();
            self.outputs.append(inner);
        }
    }

    /// Hands `input` to the one piece of `family`.
    pub fn handle_in(&mut self, now: Instant, family: Family, input: P::Input) {
        if let Some(p) = self.get_mut(family) {
            p.handle(now, input);
            self.take_outputs(family);
        }
    }
}

impl<P: Piece> Piece for PerFamily<P>
where
    P::Input: FamilyInput,
{
    type Input = P::Input;
    const COMPONENT: Component = P::COMPONENT;

    fn handle(&mut self, now: Instant, input: P::Input) {
        for (family, part) in input.split(self.families()) {
            self.handle_in(now, family, part);
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        for (_, p) in &mut self.pieces {
            if p.poll_timeout().is_some_and(|t| t <= now) {
                p.handle_timeout(now);
                self.outputs.append(p.outputs());
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.pieces
            .iter()
            .filter_map(|(_, p)| p.poll_timeout())
            .min()
    }

    fn outputs(&mut self) -> &mut Outputs {
        &mut self.outputs
    }
}

/// An application lookup run in several families at once.
#[derive(Debug)]
struct Group {
    /// Families still running.
    remaining: usize,
    /// Their summaries merged so far.
    summary: Option<LookupSummary>,
    /// Peers reported, so that one found in both is reported once.
    seen: HashSet<SocketAddr>,
}

/// The lookup pools of every family, merging the application's lookups.
#[derive(Debug)]
pub struct LookupPools {
    pools: PerFamily<LookupPool>,
    bootstrapped: Families,
    /// Lookups in every family asked for before any family bootstrapped.
    waiting: VecDeque<StartLookup>,
    max_waiting: usize,
    groups: HashMap<CallerId, Group>,
    outputs: Outputs,
}

impl LookupPools {
    /// A pool per family of `config.families`.
    pub fn new(pools: PerFamily<LookupPool>, config: &NodeConfig) -> Self {
        LookupPools {
            pools,
            bootstrapped: Families::of(&[]),
            waiting: VecDeque::new(),
            max_waiting: config.lookup_limits.max_waiting,
            groups: HashMap::new(),
            outputs: Outputs::default(),
        }
    }

    /// Each family's pool.
    pub fn pools(&self) -> &PerFamily<LookupPool> {
        &self.pools
    }

    /// Lookups running, over every family.
    pub fn running(&self) -> usize {
        self.pools.iter().map(|(_, p)| p.running()).sum()
    }

    /// Lookups waiting, over every family.
    pub fn waiting(&self) -> usize {
        self.waiting.len() + self.pools.iter().map(|(_, p)| p.waiting()).sum::<usize>()
    }

    fn start(&mut self, now: Instant, start: StartLookup) {
        let on = self.pools.families();
        if let Some(f) = start.family {
            self.pools.handle_in(now, f, LookupsInput::Start(start));
            return;
        }
        if on.len() == 1 {
            let f = on.iter().next().unwrap_or_default();
            self.pools
                .handle_in(now, f, LookupsInput::Start(start.in_family(f)));
            return;
        }
        if self.bootstrapped.is_empty() {
            if self.waiting.len() < self.max_waiting {
                self.waiting.push_back(start);
            } else {
                // The first pool queues it or refuses it, as it would alone.
                let f = on.iter().next().unwrap_or_default();
                self.pools
                    .handle_in(now, f, LookupsInput::Start(start.in_family(f)));
            }
            return;
        }
        let families: Vec<Family> = self.bootstrapped.iter().collect();
        if let Requester::Caller(caller) = start.requester {
            self.groups.insert(
                caller,
                Group {
                    remaining: families.len(),
                    summary: None,
                    seen: HashSet::new(),
                },
            );
        }
        for f in families {
            self.pools
                .handle_in(now, f, LookupsInput::Start(start.clone().in_family(f)));
        }
    }

    /// Moves the pools' outputs to ours, merging what a group reports.
    fn relay(&mut self) {
        let inner = self.pools.outputs();
        self.outputs.outbox.append(&mut inner.outbox);
        while let Some(e) = inner.pop() {
            let Envelope::Api(ApiEvent::Lookup { caller, event }) = e else {
                self.outputs.push(e);
                continue;
            };
            let Some(group) = self.groups.get_mut(&caller) else {
                self.outputs
                    .push(Envelope::Api(ApiEvent::Lookup { caller, event }));
                continue;
            };
            let event = match event {
                LookupEvent::Peer(p) if !group.seen.insert(p) => None,
                LookupEvent::Finished(s) => {
                    group.remaining -= 1;
                    let merged = match group.summary.take() {
                        Some(before) => merge(before, s),
                        None => s,
                    };
                    if group.remaining > 0 {
                        group.summary = Some(merged);
                        None
                    } else {
                        let peers = group.seen.len();
                        self.groups.remove(&caller);
                        Some(LookupEvent::Finished(LookupSummary { peers, ..merged }))
                    }
                }
                other => Some(other),
            };
            if let Some(event) = event {
                self.outputs
                    .push(Envelope::Api(ApiEvent::Lookup { caller, event }));
            }
        }
    }
}

/// One summary of a lookup run in two families: counts add up, the
/// closest nodes of both are kept (closest first), and it ended as the
/// better of the two ended.
fn merge(a: LookupSummary, b: LookupSummary) -> LookupSummary {
    let target = a.target;
    let mut closest = a.closest;
    closest.extend(b.closest);
    closest.sort_by_key(|n| n.id.distance(&target));
    let announce = match (a.announce, b.announce) {
        (Some(x), Some(y)) => Some(super::AnnounceReport {
            tried: x.tried + y.tried,
            accepted: x.accepted + y.accepted,
            networks: x.networks + y.networks,
            confidence: x.confidence.max(y.confidence),
        }),
        (x, y) => x.or(y),
    };
    let scrape = match (a.scrape, b.scrape) {
        (Some(mut x), Some(y)) => {
            x.0.union(&y.0);
            x.1.union(&y.1);
            Some(x)
        }
        (x, y) => x.or(y),
    };
    let seq =
        |i: &Option<Box<crate::item::Item>>| i.as_ref().map(|i| i.signed.as_ref().map(|s| s.seq));
    let item = if seq(&b.item) > seq(&a.item) {
        b.item
    } else {
        a.item
    };
    // Either family's lookup that came to its end says the search did.
    let end = [a.end, b.end]
        .into_iter()
        .find(|e| matches!(e, LookupEnd::Converged | LookupEnd::EnoughPeers))
        .unwrap_or(a.end);
    LookupSummary {
        target,
        queries: a.queries + b.queries,
        responses: a.responses + b.responses,
        failures: a.failures + b.failures,
        closest,
        peers: a.peers + b.peers,
        ignored_peers: a.ignored_peers + b.ignored_peers,
        hops: a.hops.max(b.hops),
        end,
        duration: a.duration.max(b.duration),
        announce,
        scrape,
        item,
    }
}

impl Piece for LookupPools {
    type Input = LookupsInput;
    const COMPONENT: Component = Component::Lookups;

    fn handle(&mut self, now: Instant, input: LookupsInput) {
        match input {
            LookupsInput::Start(start) => self.start(now, start),
            LookupsInput::Bootstrapped(f, done) => {
                if done {
                    self.bootstrapped.insert(f);
                } else {
                    let mut still = Families::of(&[]);
                    for g in self.bootstrapped.iter().filter(|g| *g != f) {
                        still.insert(g);
                    }
                    self.bootstrapped = still;
                }
                self.pools
                    .handle_in(now, f, LookupsInput::Bootstrapped(f, done));
                if done {
                    for start in std::mem::take(&mut self.waiting) {
                        self.start(now, start);
                    }
                }
            }
            LookupsInput::Reconfigure(config) => {
                self.max_waiting = config.lookup_limits.max_waiting;
                self.pools.handle(now, LookupsInput::Reconfigure(config));
            }
            LookupsInput::Cancel(caller) => {
                self.groups.remove(&caller);
                self.waiting
                    .retain(|s| s.requester != Requester::Caller(caller));
                self.pools.handle(now, LookupsInput::Cancel(caller));
            }
            other => self.pools.handle(now, other),
        }
        self.relay();
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.pools.handle_timeout(now);
        self.relay();
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.pools.poll_timeout()
    }

    fn outputs(&mut self) -> &mut Outputs {
        &mut self.outputs
    }
}

/// The bootstrap of every family; the application hears of the node as a
/// whole.
#[derive(Debug)]
pub struct Bootstraps {
    families: PerFamily<Bootstrap>,
    complete: bool,
    /// A resolution of the sources is under way: every family hears its
    /// answer, so a second family's request is not sent again.
    resolving: bool,
    telemetry: Arc<Telemetry>,
    outputs: Outputs,
}

impl Bootstraps {
    /// From each family's bootstrap.
    pub fn new(families: PerFamily<Bootstrap>, telemetry: Arc<Telemetry>) -> Self {
        Bootstraps {
            families,
            complete: false,
            resolving: false,
            telemetry,
            outputs: Outputs::default(),
        }
    }

    /// Each family's bootstrap.
    pub fn families(&self) -> &PerFamily<Bootstrap> {
        &self.families
    }

    /// Whether any family has bootstrapped.
    pub fn is_complete(&self) -> bool {
        self.families.iter().any(|(_, b)| b.is_complete())
    }

    fn relay(&mut self) {
        let inner = self.families.outputs();
        self.outputs.outbox.append(&mut inner.outbox);
        while let Some(e) = inner.pop() {
            match e {
                Envelope::Api(ApiEvent::Bootstrapped(_)) => {}
                Envelope::Io(IoRequest::Resolve { .. }) if self.resolving => {}
                e => {
                    if matches!(e, Envelope::Io(IoRequest::Resolve { .. })) {
                        self.resolving = true;
                    }
                    self.outputs.push(e);
                }
            }
        }
        let complete = self.is_complete();
        if complete != self.complete {
            self.complete = complete;
            self.telemetry.bootstrapped.set((), u64::from(complete));
            self.outputs
                .push(Envelope::Api(ApiEvent::Bootstrapped(complete)));
        }
    }
}

impl Piece for Bootstraps {
    type Input = SupervisorInput;
    const COMPONENT: Component = Component::Supervisor;

    fn handle(&mut self, now: Instant, input: SupervisorInput) {
        if matches!(input, SupervisorInput::SourcesResolved { .. }) {
            self.resolving = false;
        }
        self.families.handle(now, input);
        self.relay();
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.families.handle_timeout(now);
        self.relay();
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.families.poll_timeout()
    }

    fn outputs(&mut self) -> &mut Outputs {
        &mut self.outputs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeId;
    use crate::lookup::LookupKind;
    use crate::node::upkeep::Upkeep;
    use crate::node::{Asker, OutboundQuery, QueryDone, RateLimiterInput, Reply, RoutingInput};
    use crate::routing::{NodeSnapshot, RoutingConfig, RoutingTable};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn v4(i: u8) -> NodeInfo {
        NodeInfo {
            id: NodeId([i; 20]),
            addr: SocketAddr::from(([10, 0, i, 1], 6881)),
        }
    }

    fn v6(i: u8) -> NodeInfo {
        NodeInfo {
            id: NodeId([0x80 | i; 20]),
            addr: SocketAddr::from(([0x2001, 0xdb8, u16::from(i), 0, 0, 0, 0, 1], 6881)),
        }
    }

    fn dual() -> NodeConfig {
        NodeConfig {
            families: Families::BOTH,
            // No own store to ask: the lookups go straight to the nodes.
            read_only: true,
            ..NodeConfig::default()
        }
    }

    fn sent(outputs: &mut Outputs) -> (Vec<OutboundQuery>, Vec<Envelope>) {
        let (mut sent, mut other) = (Vec::new(), Vec::new());
        while let Some(e) = outputs.pop() {
            match e {
                Envelope::RateLimiter(RateLimiterInput::Send(q)) => sent.push(q),
                e => other.push(e),
            }
        }
        (sent, other)
    }

    fn snapshot(nodes: &[NodeInfo]) -> Arc<NodeSnapshot> {
        let t0 = crate::test_epoch();
        let mut table = RoutingTable::new(NodeId([0; 20]), t0, RoutingConfig::default());
        for n in nodes {
            table.node_responded(t0, *n);
        }
        Arc::new(table.snapshot(t0, crate::routing::NodeFilter::NotBad))
    }

    /// An answer over IPv4 that names IPv6 nodes (a `want` for both)
    /// fills the IPv4 table with the responder and pings the IPv6 nodes
    /// into the IPv6 table; each table publishes under its own family.
    #[test]
    fn each_family_keeps_its_own_table() {
        let t0 = crate::test_epoch();
        let config = dual();
        let telemetry = Arc::new(Telemetry::default());
        let mut seed = 0;
        let mut routing = PerFamily::new(config.families, |f| {
            seed += 1;
            Upkeep::new(
                t0,
                f,
                NodeId([0; 20]),
                &config,
                StdRng::seed_from_u64(seed),
                telemetry.clone(),
            )
        });
        routing.handle(
            t0,
            RoutingInput::Responded {
                info: v4(1),
                heard: vec![v4(2), v6(3)],
                rtt: None,
            },
        );
        let (pings, _) = sent(routing.outputs());
        let to: Vec<SocketAddr> = pings.iter().map(|q| q.to).collect();
        assert_eq!(to, [v4(2).addr, v6(3).addr]);
        routing.handle(
            t0,
            RoutingInput::Responded {
                info: v6(3),
                heard: Vec::new(),
                rtt: None,
            },
        );
        let table = |f| routing.get(f).unwrap().table().nodes();
        assert_eq!(table(Family::V4), [v4(1)]);
        assert_eq!(table(Family::V6), [v6(3)]);
        let later = t0 + std::time::Duration::from_secs(1);
        routing.handle_timeout(later);
        let (_, published) = sent(routing.outputs());
        let snapshots: Vec<(Family, usize)> = published
            .iter()
            .filter_map(|e| match e {
                Envelope::Store(crate::node::StoreInput::Snapshot(f, s)) => Some((*f, s.len())),
                _ => None,
            })
            .collect();
        assert_eq!(snapshots, [(Family::V4, 1), (Family::V6, 1)]);
        let t = telemetry.snapshot();
        use crate::telemetry::{AddressFamily, NodeState};
        assert_eq!(t.routing_nodes.get((AddressFamily::V6, NodeState::Good)), 1);
    }

    fn pools(config: &NodeConfig) -> LookupPools {
        let telemetry = Arc::new(Telemetry::default());
        let inner = PerFamily::new(config.families, |f| {
            LookupPool::new(f, NodeId([0; 20]), config, telemetry.clone())
        });
        LookupPools::new(inner, config)
    }

    fn answer(p: &mut LookupPools, now: Instant, q: &OutboundQuery, reply: Reply) {
        let Asker::Lookup(lookup) = q.asker else {
            panic!("{q:?}")
        };
        let done = QueryDone {
            to: q.to,
            node: q.node,
            rtt: None,
            result: Ok(reply),
        };
        p.handle(
            now,
            LookupsInput::QueryDone {
                lookup,
                done: Box::new(done),
            },
        );
    }

    /// The application's lookup, asked for before any family bootstrapped,
    /// waits; it runs in every family that has bootstrapped by then, and
    /// its caller hears each peer once and one summary of both.
    #[test]
    fn a_lookup_runs_in_both_families_and_reports_once() {
        let t0 = crate::test_epoch();
        let config = dual();
        let mut p = pools(&config);
        p.handle(t0, LookupsInput::Snapshot(Family::V4, snapshot(&[v4(1)])));
        p.handle(t0, LookupsInput::Snapshot(Family::V6, snapshot(&[v6(1)])));
        let caller = CallerId(7);
        let start = StartLookup::new(
            NodeId([1; 20]),
            LookupKind::GetPeers,
            Requester::Caller(caller),
        );
        p.handle(t0, LookupsInput::Start(start));
        assert!(sent(p.outputs()).0.is_empty(), "waits for a bootstrap");
        assert_eq!(p.waiting(), 1);
        p.handle(t0, LookupsInput::Bootstrapped(Family::V4, true));
        p.handle(t0, LookupsInput::Bootstrapped(Family::V6, true));
        // Released by the first family to bootstrap: it ran there alone.
        let (queries, _) = sent(p.outputs());
        assert_eq!(
            queries.iter().map(|q| q.to).collect::<Vec<_>>(),
            [v4(1).addr]
        );

        let caller = CallerId(8);
        let start = StartLookup::new(
            NodeId([1; 20]),
            LookupKind::GetPeers,
            Requester::Caller(caller),
        );
        p.handle(t0, LookupsInput::Start(start));
        let (queries, _) = sent(p.outputs());
        assert_eq!(
            queries.iter().map(|q| q.to).collect::<Vec<_>>(),
            [v4(1).addr, v6(1).addr],
            "one query in each family"
        );
        let shared: SocketAddr = "203.0.113.5:6881".parse().unwrap();
        let v6_peer: SocketAddr = "[2001:db8::5]:6881".parse().unwrap();
        for (q, peers) in queries.iter().zip([vec![shared], vec![shared, v6_peer]]) {
            let id = if Family::of(&q.to) == Family::V4 {
                v4(1).id
            } else {
                v6(1).id
            };
            answer(
                &mut p,
                t0,
                q,
                Reply {
                    id,
                    peers,
                    ..Reply::default()
                },
            );
        }
        let mut peers = Vec::new();
        let mut summaries = Vec::new();
        while let Some(e) = p.outputs().pop() {
            match e {
                Envelope::Api(ApiEvent::Lookup { caller: c, event }) if c == caller => {
                    match event {
                        LookupEvent::Peer(a) => peers.push(a),
                        LookupEvent::Finished(s) => summaries.push(s),
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        assert_eq!(peers, [shared, v6_peer], "each peer once");
        assert_eq!(summaries.len(), 1, "one summary");
        let s = &summaries[0];
        assert_eq!((s.queries, s.responses, s.peers), (2, 2, 2));
        assert_eq!(s.closest.len(), 2, "the closest of both families");
        assert_eq!(s.end, LookupEnd::Converged);
    }

    /// Both families bootstrap from the same sources: one resolution of
    /// their names serves both.
    #[test]
    fn the_sources_are_resolved_once_for_both_families() {
        use crate::node::bootstrap::Sources;
        use crate::node::IoRequest;
        let t0 = crate::test_epoch();
        let config = dual();
        let telemetry = Arc::new(Telemetry::default());
        let sources = Sources {
            routers: vec!["router.example:6881".into()],
            ..Sources::default()
        };
        let mut seed = 0;
        let inner = PerFamily::new(config.families, |f| {
            seed += 1;
            Bootstrap::new(
                t0,
                f,
                NodeId([0; 20]),
                &config,
                sources.clone(),
                StdRng::seed_from_u64(seed),
                telemetry.clone(),
            )
        });
        let mut b = Bootstraps::new(inner, telemetry);
        b.handle_timeout(t0);
        let resolves = |b: &mut Bootstraps| {
            let mut n = 0;
            while let Some(e) = b.outputs().pop() {
                n += usize::from(matches!(e, Envelope::Io(IoRequest::Resolve { .. })));
            }
            n
        };
        assert_eq!(resolves(&mut b), 1);
        let v4: SocketAddr = "192.0.2.1:6881".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:6881".parse().unwrap();
        b.handle(
            t0,
            SupervisorInput::SourcesResolved {
                routers: vec![v4, v6],
                nodes: Vec::new(),
            },
        );
        // Each family asks its own router for our id.
        let mut asked = Vec::new();
        while let Some(e) = b.outputs().pop() {
            if let Envelope::Lookups(LookupsInput::Start(s)) = e {
                asked.extend(
                    s.addr_seeds
                        .iter()
                        .filter(|a| s.family == Some(Family::of(a)))
                        .copied(),
                );
            }
        }
        asked.sort();
        assert_eq!(asked, [v4, v6]);
    }
}
