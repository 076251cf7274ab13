//! The shipped node in a network shaped like the Internet's mainline DHT:
//! churn with heavy-tailed sessions, nodes behind NATs, read-only and slow
//! nodes, heavy-tailed round trips and loss ([`Model`]); and what a user
//! of the DHT would ask of it ([`InternetReport`]).
//!
//! A run: the first nodes start over [`Model::join_over`] from a saved
//! table of nodes already running (as after a restart), then the network
//! settles for [`Model::settle`]; from then on, for [`Model::duration`],
//! nodes leave when their session ends and newcomers join from the
//! routers, keeping N steady. Some nodes announce, half of them again
//! every [`Model::reannounce_every`], half once; every
//! [`Model::sample_every`] random nodes look the info hashes up, and the
//! tables, the size estimates and the traffic are sampled.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use super::driver::{sim_addr, NodeSpec, Simulation};
use super::experiments::percentile;
use super::network::{Endpoint, NetworkConfig};
use super::parallel::Threads;
use crate::id::{InfoHash, NodeId};
use crate::lookup::LookupKind;
use crate::node::bootstrap::Sources;
use crate::node::{AnnounceSpec, CallerId, NodeConfig};

/// The network's model. Each default is drawn from measurements of the
/// mainline DHT (the README's "Internet scale" section gives the sources).
#[derive(Debug, Clone)]
pub struct Model {
    /// Nodes online at any time (N).
    pub nodes: usize,
    /// Seed of every random choice: a seed replays a run exactly.
    pub seed: u64,
    /// Measured time, after joining and settling. Defaults to 1 hour.
    pub duration: Duration,
    /// The first N nodes start over this long. Defaults to 5 minutes.
    pub join_over: Duration,
    /// Time between the last start and the first measurement. Defaults to
    /// 10 minutes.
    pub settle: Duration,
    /// Probability that a datagram is lost. Defaults to 2%.
    pub loss: f64,
    /// Median of a node's share of each one-way delay (log-normal across
    /// nodes). Defaults to 40 ms: a median round trip of about 160 ms.
    pub access_median: Duration,
    /// Spread (σ of the logarithm) of the access delays. Defaults to 0.9:
    /// one round trip in a hundred is over a second.
    pub access_sigma: f64,
    /// The smallest access delay: no round trip is under four times this.
    /// Defaults to 2 ms (round trips from 8 ms; the measurements start at
    /// "a few ms"), which touches one node in 2,300. The shards of a run
    /// ([`Model::shards`]) run apart by the least access delays of the
    /// fastest two, less the jitter: 38 ms for two shards split at the
    /// median (2 ms + 40 ms).
    pub access_floor: Duration,
    /// Share of nodes behind a NAT that lets in only answers. Defaults to
    /// 30%.
    pub nat_share: f64,
    /// Share of read-only nodes (BEP 43). Defaults to 5%.
    pub read_only_share: f64,
    /// Share of nodes that answer slowly. Defaults to 5%.
    pub slow_share: f64,
    /// A slow node's extra delay on everything it sends, drawn between
    /// half this and twice this. Defaults to 1 second.
    pub slow_delay: Duration,
    /// Median session length (Weibull). Defaults to 200 minutes.
    pub session_median: Duration,
    /// Shape of the Weibull session lengths; below 1, heavy-tailed: many
    /// short sessions, a few very long ones. Defaults to 0.5.
    pub session_shape: f64,
    /// Nodes that never leave and that newcomers bootstrap from.
    /// Defaults to 2.
    pub routers: usize,
    /// Nodes that announce an info hash of their own. Defaults to 40.
    pub announcers: usize,
    /// How often the re-announcing half announces again. Defaults to 15
    /// minutes (the store keeps an announce 45).
    pub reannounce_every: Duration,
    /// Time between two samples. Defaults to 5 minutes.
    pub sample_every: Duration,
    /// get_peers lookups per sample, each for a re-announced info hash
    /// whose announcer is online, from a random online node. Defaults to 100.
    pub lookups_per_sample: usize,
    /// Nodes whose tables and size estimates are sampled. Defaults to 200.
    pub nodes_sampled: usize,
    /// Every node's configuration (the shipped defaults unless changed).
    pub node: NodeConfig,
    /// Shards the nodes are split in, by access delay (equal shares of its
    /// distribution), each run on a thread of its own by
    /// [`run_internet_on`]. A seed replays exactly for a given number (on
    /// threads or not); another number is another run. Defaults to 1.
    pub shards: usize,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            nodes: 1000,
            seed: 1,
            duration: Duration::from_secs(3600),
            join_over: Duration::from_secs(300),
            settle: Duration::from_secs(600),
            loss: 0.02,
            access_median: Duration::from_millis(40),
            access_sigma: 0.9,
            access_floor: Duration::from_millis(2),
            nat_share: 0.3,
            read_only_share: 0.05,
            slow_share: 0.05,
            slow_delay: Duration::from_secs(1),
            session_median: Duration::from_secs(200 * 60),
            session_shape: 0.5,
            routers: 2,
            announcers: 40,
            reannounce_every: Duration::from_secs(15 * 60),
            sample_every: Duration::from_secs(300),
            lookups_per_sample: 100,
            nodes_sampled: 200,
            node: NodeConfig::default(),
            shards: 1,
        }
    }
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut impl RngCore) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A Gamma(`shape`, 1) draw, `shape` at least 1 (Marsaglia and Tsang,
/// "A simple method for generating gamma variables", 2000).
fn gamma(shape: f64, rng: &mut impl RngCore) -> f64 {
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

impl Model {
    /// The Weibull scale, in seconds, that gives the median session asked for.
    fn session_scale(&self) -> f64 {
        let k = self.session_shape;
        self.session_median.as_secs_f64() / std::f64::consts::LN_2.powf(1.0 / k)
    }

    /// A session length: Weibull with [`Self::session_median`] and
    /// [`Self::session_shape`], by inverting its distribution function.
    fn session(&self, rng: &mut impl RngCore) -> Duration {
        let (k, scale) = (self.session_shape, self.session_scale());
        let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        Duration::from_secs_f64((scale * (-u.ln()).powf(1.0 / k)).min(1e9))
    }

    /// What is left of the session of a node found online in a network
    /// that has run for long: the first N nodes draw this, not a fresh
    /// session, or the run would start with every node just arrived, and
    /// with sessions this heavy-tailed the first hours would see many
    /// times the steady rate of departures (N over the mean session).
    /// A renewal process's remaining time is a uniform share of a session
    /// drawn in proportion to its length; for the Weibull, such a length
    /// is the scale times `G^(1/k)` with `G` drawn from Gamma(1 + 1/k).
    fn remaining_session(&self, rng: &mut impl RngCore) -> Duration {
        let (k, scale) = (self.session_shape, self.session_scale());
        let length = scale * gamma(1.0 + 1.0 / k, rng).powf(1.0 / k);
        let share: f64 = rng.random();
        Duration::from_secs_f64((share * length).min(1e9))
    }

    /// A node's share of each one-way delay.
    fn access(&self, rng: &mut impl RngCore) -> Duration {
        self.access_median
            .mul_f64((self.access_sigma * normal(rng)).exp().min(100.0))
            .max(self.access_floor)
    }

    /// Access delays that split nodes in `shards` bands of equal shares
    /// (the quantiles of a large sample, drawn apart from the run's
    /// randomness).
    fn access_bands(&self, shards: usize) -> Vec<Duration> {
        const SAMPLE: usize = 16_384;
        let mut rng = StdRng::seed_from_u64(self.seed ^ 0x0062_616e_6473);
        let mut sample: Vec<Duration> = (0..SAMPLE).map(|_| self.access(&mut rng)).collect();
        sample.sort_unstable();
        (1..shards).map(|k| sample[k * SAMPLE / shards]).collect()
    }

    /// A new node's connection and traits.
    fn draw(&self, rng: &mut impl RngCore) -> Traits {
        let access = self.access(rng);
        let slow = if rng.random::<f64>() < self.slow_share {
            self.slow_delay.mul_f64(0.5 + 1.5 * rng.random::<f64>())
        } else {
            Duration::ZERO
        };
        Traits {
            endpoint: Endpoint {
                access,
                slow,
                behind_nat: rng.random::<f64>() < self.nat_share,
            },
            read_only: rng.random::<f64>() < self.read_only_share,
        }
    }
}

#[derive(Debug, Clone)]
struct Traits {
    endpoint: Endpoint,
    read_only: bool,
}

/// What the run knows of each node beyond the simulator.
#[derive(Debug, Clone)]
struct Member {
    reachable: bool,
    router: bool,
    /// On a slow link (the model's slow share).
    slow: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Again {
    Every,
    Once,
}

#[derive(Debug, Clone)]
struct Announced {
    info_hash: InfoHash,
    by: usize,
    peer: SocketAddr,
    again: Again,
    at: Instant,
}

#[derive(Debug, Clone)]
struct Probe {
    from: usize,
    caller: CallerId,
    announced: usize,
    started: Instant,
    /// The k closest reachable nodes to the info hash when it started.
    truth: Vec<NodeId>,
    counted: bool,
}

/// One sample of the network over simulated time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// Minutes since measuring started.
    pub minute: f64,
    /// Nodes online.
    pub online: usize,
    /// Share of lookups (for re-announced info hashes) that found the peer.
    pub found_reannounced: f64,
    /// Share of info hashes announced once that a lookup still finds.
    pub found_once: f64,
    /// Minutes since the announces made once.
    pub once_age_minutes: f64,
    /// Share of sampled table entries that are online, reachable and
    /// under the id the table holds.
    pub table_live: f64,
    /// Share of sampled table entries whose node has left.
    pub table_departed: f64,
    /// Share of sampled table entries behind a NAT (unreachable).
    pub table_unreachable: f64,
    /// Median of the sampled nodes' size estimate over the true number of
    /// nodes online.
    pub size_ratio_median: f64,
    /// Queries each node received per second over the last interval (mean
    /// over online nodes, routers left out).
    pub queries_in_per_node: f64,
}

/// What a run measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InternetReport {
    /// N.
    pub nodes: usize,
    /// Seed of the run.
    pub seed: u64,
    /// Simulated time measured.
    pub duration: Duration,
    /// get_peers lookups for re-announced info hashes whose announcer was
    /// online.
    pub lookups: usize,
    /// Of those, the ones that found the announced peer.
    pub found: usize,
    /// Of those, the ones whose k closest answering nodes were exactly the
    /// true k closest reachable nodes.
    pub exact: usize,
    /// Of those, the ones that found at least k-2 of the true k closest.
    pub nearly: usize,
    /// Virtual time until a lookup ended, per lookup.
    pub durations: Vec<Duration>,
    /// Virtual time until a lookup's first peer, per lookup that found one.
    pub first_peer: Vec<Duration>,
    /// The same two, for lookups from nodes not on slow links: a node
    /// whose every datagram waits 0.5–2 s more cannot look up in under a
    /// second, and those lookups are the tail of the figures above.
    pub durations_ordinary: Vec<Duration>,
    /// See [`Self::durations_ordinary`].
    pub first_peer_ordinary: Vec<Duration>,
    /// Hops per lookup.
    pub hops: Vec<u32>,
    /// Queries per lookup.
    pub queries: Vec<usize>,
    /// Queries that failed or timed out, per lookup: what holds a lookup's
    /// end ([`Self::time_by_failures`]).
    pub failures: Vec<usize>,
    /// Nodes that left, and as many newcomers.
    pub departures: usize,
    /// Per sample over simulated time.
    pub samples: Vec<Sample>,
    /// Queries received per second, per node online the whole run (routers
    /// left out): p50, p99, max.
    pub queries_in_per_s: [f64; 3],
    /// Queries sent per second, the same nodes: p50, p99, max.
    pub queries_out_per_s: [f64; 3],
    /// Queries each router received per second (mean over routers).
    pub router_queries_in_per_s: f64,
    /// Size estimate over the true number of nodes online (routers left
    /// out), at the end, over the sampled nodes: p10, p50, p90.
    pub size_ratio: [f64; 3],
    /// Nodes online at the end (the size estimate's truth), routers left out.
    pub online_at_end: usize,
    /// Of those, the reachable ones (neither behind a NAT nor read-only).
    pub reachable_at_end: usize,
    /// The share of queriers the sampled nodes found they cannot reach
    /// (the median over those that counted enough), at the end: what
    /// scales their estimate up from the reachable nodes.
    pub unreachable_share_seen: f64,
    /// The same median, over the sampled nodes that are reachable and over
    /// those that are not: a node behind a NAT hears only from nodes it
    /// has just sent to, and so hardly ever from another behind a NAT.
    pub unreachable_share_seen_by: [f64; 2],
    /// The size estimate's median over the true N, the same two ways.
    pub size_ratio_by: [f64; 2],
    /// Datagrams sent, lost, undeliverable, blocked by NATs.
    pub datagrams: [u64; 4],
    /// Datagrams the simulator delivered after their time: always zero,
    /// unless its threads are at fault.
    pub late: u64,
    /// Events the simulator ran.
    pub events: u64,
}

fn median_p90_p99(times: &[Duration]) -> [Duration; 3] {
    [0.5, 0.9, 0.99].map(|p| percentile(times, p).unwrap_or_default())
}

fn ratio(n: usize, of: usize) -> f64 {
    n as f64 / of.max(1) as f64
}

fn f64_percentiles(values: &mut [f64], ps: [f64; 3]) -> [f64; 3] {
    values.sort_by(f64::total_cmp);
    ps.map(|p| {
        if values.is_empty() {
            0.0
        } else {
            values[((values.len() - 1) as f64 * p).round() as usize]
        }
    })
}

impl InternetReport {
    /// Share of lookups that found the announced peer.
    pub fn found_rate(&self) -> f64 {
        ratio(self.found, self.lookups)
    }

    /// Share of lookups that found exactly the true k closest.
    pub fn exact_rate(&self) -> f64 {
        ratio(self.exact, self.lookups)
    }

    /// Lookup time: median, p90, p99.
    pub fn lookup_time(&self) -> [Duration; 3] {
        median_p90_p99(&self.durations)
    }

    /// Time to the first peer: median, p90, p99.
    pub fn first_peer_time(&self) -> [Duration; 3] {
        median_p90_p99(&self.first_peer)
    }

    /// Lookup time and time to the first peer (median, p90, p99), of
    /// lookups from nodes not on slow links.
    pub fn ordinary_link_times(&self) -> ([Duration; 3], [Duration; 3]) {
        (
            median_p90_p99(&self.durations_ordinary),
            median_p90_p99(&self.first_peer_ordinary),
        )
    }

    /// Mean of a list of counts.
    fn mean<T: Copy + Into<f64>>(v: &[T]) -> f64 {
        v.iter().map(|&x| x.into()).sum::<f64>() / v.len().max(1) as f64
    }

    /// Mean hops per lookup.
    pub fn mean_hops(&self) -> f64 {
        Self::mean(&self.hops)
    }

    /// Mean queries per lookup.
    pub fn mean_queries(&self) -> f64 {
        let q: Vec<f64> = self.queries.iter().map(|&q| q as f64).collect();
        Self::mean(&q)
    }

    /// Lookups with no failed query, one or two, three or more: how many,
    /// and their median time to the end.
    pub fn time_by_failures(&self) -> [(usize, Duration); 3] {
        let group = |range: std::ops::RangeInclusive<usize>| {
            let times: Vec<Duration> = self
                .durations
                .iter()
                .zip(&self.failures)
                .filter(|(_, f)| range.contains(f))
                .map(|(d, _)| *d)
                .collect();
            (times.len(), percentile(&times, 0.5).unwrap_or_default())
        };
        [group(0..=0), group(1..=2), group(3..=usize::MAX)]
    }

    /// Mean share of live table entries over the samples.
    pub fn table_live(&self) -> f64 {
        let v: Vec<f64> = self.samples.iter().map(|s| s.table_live).collect();
        Self::mean(&v)
    }
}

impl std::fmt::Display for InternetReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let [t50, t90, t99] = self.lookup_time();
        let [p50, p90, p99] = self.first_peer_time();
        writeln!(
            f,
            "N = {}, seed {}, {} min measured, {} left and as many joined",
            self.nodes,
            self.seed,
            self.duration.as_secs() / 60,
            self.departures
        )?;
        writeln!(
            f,
            "lookups: {} · found the peer {:.1}% · exact 8 closest {:.1}% · ≥6 of 8 {:.1}%",
            self.lookups,
            100.0 * self.found_rate(),
            100.0 * self.exact_rate(),
            100.0 * ratio(self.nearly, self.lookups)
        )?;
        writeln!(
            f,
            "lookup time (ms): median {:.0} · p90 {:.0} · p99 {:.0}; first peer: median {:.0} · p90 {:.0} · p99 {:.0}",
            ms(t50), ms(t90), ms(t99), ms(p50), ms(p90), ms(p99)
        )?;
        let ([o50, _, o99], [q50, _, q99]) = self.ordinary_link_times();
        writeln!(
            f,
            "from nodes not on slow links ({} lookups): lookup median {:.0} · p99 {:.0}; first peer median {:.0} · p99 {:.0}",
            self.durations_ordinary.len(), ms(o50), ms(o99), ms(q50), ms(q99)
        )?;
        let [none, few, many] = self.time_by_failures();
        writeln!(
            f,
            "lookup median by failed queries: none {} lookups, {:.0} ms · 1–2: {}, {:.0} ms · 3 or more: {}, {:.0} ms",
            none.0, ms(none.1), few.0, ms(few.1), many.0, ms(many.1)
        )?;
        writeln!(
            f,
            "per lookup: {:.2} hops, {:.1} queries; tables {:.1}% live",
            self.mean_hops(),
            self.mean_queries(),
            100.0 * self.table_live()
        )?;
        writeln!(
            f,
            "queries/s per node in: p50 {:.2} · p99 {:.2} · max {:.2}; out: p50 {:.2} · p99 {:.2} · max {:.2}; per router in: {:.1}",
            self.queries_in_per_s[0],
            self.queries_in_per_s[1],
            self.queries_in_per_s[2],
            self.queries_out_per_s[0],
            self.queries_out_per_s[1],
            self.queries_out_per_s[2],
            self.router_queries_in_per_s
        )?;
        write!(
            f,
            "size estimate / {} online ({} reachable; unreachable share seen by nodes {:.2}, by reachable ones {:.2}, by the others {:.2}): p10 {:.2} · median {:.2} · p90 {:.2} (median by reachable nodes {:.2}, by the others {:.2}); datagrams {} ({} lost, {} to departed, {} kept out by NATs); {} events",
            self.online_at_end,
            self.reachable_at_end,
            self.unreachable_share_seen,
            self.unreachable_share_seen_by[0],
            self.unreachable_share_seen_by[1],
            self.size_ratio[0],
            self.size_ratio[1],
            self.size_ratio[2],
            self.size_ratio_by[0],
            self.size_ratio_by[1],
            self.datagrams[0],
            self.datagrams[1],
            self.datagrams[2],
            self.datagrams[3],
            self.events
        )?;
        if self.late > 0 {
            write!(f, "; SIMULATOR FAULT: {} delivered late", self.late)?;
        }
        Ok(())
    }
}

/// Where a run is, for a progress line.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Simulated time so far (joining and settling included).
    pub simulated: Duration,
    /// Simulated time the run will take.
    pub total: Duration,
    /// Nodes online.
    pub online: usize,
    /// Events so far.
    pub events: u64,
}

/// Where a node's session stands when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    /// One of the first N: a node of a network already running, part-way
    /// through its session.
    UnderWay,
    /// A newcomer replacing a node that left: its session begins.
    Newcomer,
}

/// A run in progress.
struct Run {
    model: Model,
    sim: Simulation,
    rng: StdRng,
    members: Vec<Member>,
    /// Sorted departure times (time, node).
    leaving: BTreeMap<(Instant, usize), ()>,
    routers: Vec<SocketAddr>,
    announced: Vec<Announced>,
    probes: Vec<Probe>,
    report: InternetReport,
    started: Instant,
    /// Queries in and out of each node online when measuring began.
    counted_from: BTreeMap<usize, (u64, u64)>,
}

impl Run {
    fn new(epoch: Instant, model: Model) -> Run {
        let network = NetworkConfig {
            loss: model.loss,
            ..NetworkConfig::default()
        };
        let mut sim = Simulation::sharded(epoch, network, model.seed, model.shards);
        // Shards of like access delays run far apart (see
        // `Simulation::place_by_access`).
        sim.place_by_access(model.access_bands(model.shards));
        let rng = StdRng::seed_from_u64(model.seed ^ 0x696e_7465_726e_6574);
        let routers = (0..model.routers.max(1)).map(sim_addr).collect();
        Run {
            report: InternetReport {
                nodes: model.nodes,
                seed: model.seed,
                duration: model.duration,
                ..InternetReport::default()
            },
            model,
            sim,
            rng,
            members: Vec::new(),
            leaving: BTreeMap::new(),
            routers,
            announced: Vec::new(),
            probes: Vec::new(),
            started: epoch,
            counted_from: BTreeMap::new(),
        }
    }

    fn is_up(&self, i: usize) -> bool {
        self.sim.node(i).online
    }

    /// Starts a node at `at` (now or later). Routers and the first nodes
    /// are always reachable enough to be found; newcomers bootstrap from
    /// the routers, the first N from `cached` (a saved table).
    fn start(
        &mut self,
        at: Instant,
        id: Option<NodeId>,
        cached: Vec<usize>,
        router: bool,
        arrival: Arrival,
    ) -> usize {
        let i = self.sim.len();
        let addr = sim_addr(i);
        let mut traits = self.model.draw(&mut self.rng);
        if router {
            traits = Traits {
                endpoint: Endpoint {
                    access: self.model.access_median,
                    ..Endpoint::default()
                },
                read_only: false,
            };
        }
        self.sim.attach(addr, traits.endpoint.clone());
        let mut config = self.model.node.clone();
        config.read_only = traits.read_only;
        let sources = Sources {
            routers: if router {
                Vec::new()
            } else {
                self.routers.iter().map(|r| r.to_string()).collect()
            },
            nodes: Vec::new(),
            cached: cached
                .iter()
                .map(|&j| crate::compact::NodeInfo {
                    id: self.sim.node(j).id,
                    addr: self.sim.node(j).addr,
                })
                .collect(),
        };
        if !router {
            let session = match arrival {
                Arrival::UnderWay => self.model.remaining_session(&mut self.rng),
                Arrival::Newcomer => self.model.session(&mut self.rng),
            };
            let leaves = at + session;
            self.leaving.insert((leaves, i), ());
        }
        self.members.push(Member {
            reachable: !traits.endpoint.behind_nat && !traits.read_only,
            router,
            slow: !traits.endpoint.slow.is_zero(),
        });
        let added = self.sim.add_node_at(
            at,
            NodeSpec {
                addr,
                id,
                seed: None,
                config,
                sources,
            },
        );
        debug_assert_eq!(added, i);
        i
    }

    /// The reachable nodes started so far that a saved table of a node
    /// would hold: up to 8 per shared-prefix length with its id, the ones
    /// after a random point of that range.
    fn saved_table(&mut self, id: NodeId, started: &BTreeMap<NodeId, usize>) -> Vec<usize> {
        let mut out = Vec::new();
        for bits in 0..159u32 {
            let mut flipped = id;
            flipped.0[(bits / 8) as usize] ^= 0x80 >> (bits % 8);
            let (lo, hi) = id_range(&flipped, bits + 1);
            let from = id.random_at_prefix(bits, false, &mut self.rng);
            let picked = started
                .range(from..=hi)
                .chain(started.range(lo..from))
                .take(8)
                .map(|(_, &i)| i);
            out.extend(picked);
            let (lo, hi) = id_range(&id, bits + 1);
            if started.range(lo..=hi).next().is_none() {
                break; // no one shares more bits: every deeper range is empty
            }
        }
        out
    }

    /// The first N nodes: routers at once, the rest spread over
    /// `join_over`, each from a saved table of those before it.
    fn join(&mut self, progress: &mut impl FnMut(Progress)) {
        let now = self.sim.now();
        for _ in 0..self.model.routers.max(1) {
            self.start(now, None, Vec::new(), true, Arrival::UnderWay);
        }
        let rest = self.model.nodes.saturating_sub(self.model.routers.max(1));
        let step = self.model.join_over / rest.max(1) as u32;
        let mut started: BTreeMap<NodeId, usize> = (0..self.members.len())
            .map(|i| (self.sim.node(i).id, i))
            .collect();
        // Added a batch ahead of time, each at its own start: a run of the
        // shards for each, every few milliseconds of virtual time, kept a
        // core idle for much of the join.
        let mut at = now;
        let mut left = rest;
        while left > 0 {
            let batch = left.min(JOIN_BATCH);
            left -= batch;
            for _ in 0..batch {
                let id = NodeId::random(&mut self.rng);
                let cached = self.saved_table(id, &started);
                let i = self.start(at, Some(id), cached, false, Arrival::UnderWay);
                if self.members[i].reachable {
                    started.insert(id, i);
                }
                at += step;
            }
            self.sim.run_to(at);
            progress(self.progress());
        }
    }

    fn progress(&self) -> Progress {
        Progress {
            simulated: self.sim.now() - self.started,
            total: self.model.join_over + self.model.settle + self.model.duration,
            online: self.members.len() - self.report.departures,
            events: self.sim.events(),
        }
    }

    /// Runs to `until`, letting nodes leave (and newcomers join) on time.
    fn run_to(&mut self, until: Instant) {
        loop {
            let next = self.leaving.keys().next().copied();
            match next {
                Some((at, i)) if at <= until => {
                    self.leaving.remove(&(at, i));
                    self.sim.run_to(at);
                    self.sim.retire(i);
                    self.report.departures += 1;
                    self.start(at, None, Vec::new(), false, Arrival::Newcomer);
                }
                _ => {
                    self.sim.run_to(until);
                    return;
                }
            }
        }
    }

    fn announce(&mut self) {
        let now = self.sim.now();
        let candidates: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.is_up(i) && !self.members[i].router)
            .collect();
        for a in 0..self.model.announcers {
            let by = candidates[self.rng.random_range(0..candidates.len())];
            let info_hash = InfoHash::random(&mut self.rng);
            let port = 10_000 + a as u16;
            let again = if a % 2 == 0 {
                Again::Every
            } else {
                Again::Once
            };
            let spec = AnnounceSpec {
                port,
                implied_port: false,
                seed: false,
            };
            // As the library's announce does: once now, then on a timer.
            self.sim
                .start_lookup(by, NodeId(info_hash.0), LookupKind::GetPeers, Some(spec));
            if again == Again::Every {
                let every = Some(self.model.reannounce_every);
                self.sim.announce_every(by, info_hash, spec, every);
            }
            let peer = SocketAddr::new(self.sim.node(by).addr.ip(), port);
            self.announced.push(Announced {
                info_hash,
                by,
                peer,
                again,
                at: now,
            });
        }
    }

    /// The k closest reachable online nodes to `target`, but `except`.
    fn truth(&self, target: &NodeId, except: usize) -> Vec<NodeId> {
        let k = self.model.node.lookup.k;
        let mut best: Vec<(crate::id::Distance, NodeId)> = Vec::with_capacity(k + 1);
        for (i, m) in self.members.iter().enumerate() {
            if i == except || !m.reachable || !self.is_up(i) {
                continue;
            }
            let id = self.sim.node(i).id;
            let d = target.distance(&id);
            if best.len() < k || d < best[best.len() - 1].0 {
                let at = best.partition_point(|(x, _)| *x < d);
                best.insert(at, (d, id));
                best.truncate(k);
            }
        }
        best.into_iter().map(|(_, id)| id).collect()
    }

    fn random_online(&mut self) -> usize {
        loop {
            let i = self.rng.random_range(0..self.members.len());
            if self.is_up(i) && !self.members[i].router {
                return i;
            }
        }
    }

    fn probe(&mut self, announced: usize, counted: bool) {
        let from = self.random_online();
        let target = NodeId(self.announced[announced].info_hash.0);
        let truth = self.truth(&target, from);
        let caller = self
            .sim
            .start_lookup(from, target, LookupKind::GetPeers, None);
        self.probes.push(Probe {
            from,
            caller,
            announced,
            started: self.sim.now(),
            truth,
            counted,
        });
    }

    /// Takes the finished probes: counts the counted ones, and returns the
    /// share of each kind that found the peer.
    fn collect_probes(&mut self) -> (f64, f64) {
        let mut tally = [[0usize; 2]; 2]; // [again][found?]
        let probes = std::mem::take(&mut self.probes);
        for p in probes {
            let api = &mut self.sim.node_mut(p.from).api;
            let Some(summary) = api.finished.remove(&p.caller) else {
                self.probes.push(p);
                continue;
            };
            let peers = api.peers.remove(&p.caller).unwrap_or_default();
            let first = api.first_peer_at.remove(&p.caller);
            let announced = &self.announced[p.announced];
            let found = peers.contains(&announced.peer);
            let kind = usize::from(announced.again == Again::Once);
            tally[kind][usize::from(found)] += 1;
            if !p.counted {
                continue;
            }
            let r = &mut self.report;
            r.lookups += 1;
            r.found += usize::from(found);
            let ids: Vec<NodeId> = summary.closest.iter().map(|n| n.id).collect();
            r.exact += usize::from(ids == p.truth);
            let hit = p.truth.iter().filter(|id| ids.contains(id)).count();
            r.nearly += usize::from(hit + 2 >= p.truth.len());
            let ordinary = !self.members[p.from].slow;
            r.durations.push(summary.duration);
            if ordinary {
                r.durations_ordinary.push(summary.duration);
            }
            if let (true, Some(at)) = (found, first) {
                r.first_peer.push(at - p.started);
                if ordinary {
                    r.first_peer_ordinary.push(at - p.started);
                }
            }
            r.hops.push(summary.hops);
            r.queries.push(summary.queries);
            r.failures.push(summary.failures);
        }
        let share = |t: [usize; 2]| ratio(t[1], t[0] + t[1]);
        (share(tally[0]), share(tally[1]))
    }

    /// Samples tables and size estimates of random online nodes.
    fn sample_tables(&mut self) -> ([f64; 3], Vec<f64>) {
        let now = self.sim.now();
        let online = (0..self.members.len())
            .filter(|&i| self.is_up(i) && !self.members[i].router)
            .count();
        let reachable = (0..self.members.len())
            .filter(|&i| self.members[i].reachable && self.is_up(i))
            .count();
        let mut counts = [0usize; 4]; // live, departed, unreachable, all
        let mut ratios = Vec::new();
        let mut shares = Vec::new();
        // By whether the sampled node is reachable: [yes, no].
        let mut ratios_by = [Vec::new(), Vec::new()];
        let mut shares_by = [Vec::new(), Vec::new()];
        for _ in 0..self.model.nodes_sampled {
            let i = self.random_online();
            for e in self.sim.table(i) {
                counts[3] += 1;
                match self.sim.node_at(&e.addr) {
                    Some(j) if !self.is_up(j) => counts[1] += 1,
                    Some(j) if !self.members[j].reachable => counts[2] += 1,
                    Some(j) if self.sim.node(j).id == e.id => counts[0] += 1,
                    _ => counts[1] += 1,
                }
            }
            let routing = &self.sim.node(i).pieces.routing;
            let upkeep = routing.get(crate::Family::V4);
            let by = usize::from(!self.members[i].reachable);
            if let Some(size) = upkeep.and_then(|u| u.estimated_dht_size(now)) {
                let ratio = size as f64 / online.max(1) as f64;
                ratios.push(ratio);
                ratios_by[by].push(ratio);
            }
            if let Some(share) = upkeep.and_then(|u| u.unreachable_share()) {
                shares.push(share);
                shares_by[by].push(share);
            }
        }
        self.report.online_at_end = online;
        self.report.reachable_at_end = reachable;
        fn median(v: &mut [f64]) -> f64 {
            f64_percentiles(v, [0.5; 3])[0]
        }
        self.report.unreachable_share_seen = median(&mut shares);
        self.report.unreachable_share_seen_by = shares_by.each_mut().map(|v| median(v));
        self.report.size_ratio_by = ratios_by.each_mut().map(|v| median(v));
        let shares = [0, 1, 2].map(|k| ratio(counts[k], counts[3]));
        (shares, ratios)
    }

    fn queries_in_total(&self) -> u64 {
        (0..self.members.len())
            .filter(|&i| self.is_up(i) && !self.members[i].router)
            .map(|i| self.sim.node(i).telemetry.queries_in.total())
            .sum()
    }

    fn measure(&mut self, progress: &mut impl FnMut(Progress)) {
        let begin = self.sim.now();
        let every = self.model.sample_every;
        let samples = (self.model.duration.as_secs_f64() / every.as_secs_f64()).ceil() as usize;
        let mut last_in = self.queries_in_total();
        self.counted_from = (0..self.members.len())
            .filter(|&i| self.is_up(i))
            .map(|i| {
                let t = &self.sim.node(i).telemetry;
                (i, (t.queries_in.total(), t.queries_out.total()))
            })
            .collect();
        for s in 1..=samples {
            // The last interval ends with the duration asked for.
            let start = begin + every * (s as u32 - 1);
            let end = (begin + every * s as u32).min(begin + self.model.duration);
            let span = end - start;
            // Lookups start through the interval, not all at its start.
            let per = self.model.lookups_per_sample;
            for l in 0..per {
                let at = start + span.mul_f64(l as f64 / per as f64);
                self.run_to(at);
                let live: Vec<usize> = (0..self.announced.len())
                    .filter(|&a| {
                        let an = &self.announced[a];
                        an.again == Again::Every && self.is_up(an.by)
                    })
                    .collect();
                if !live.is_empty() {
                    let a = live[self.rng.random_range(0..live.len())];
                    self.probe(a, true);
                }
            }
            for a in 0..self.announced.len() {
                if self.announced[a].again == Again::Once {
                    self.probe(a, false);
                }
            }
            // The lookups of the once-announced end well within a minute.
            self.run_to(end);
            let (found_again, found_once) = self.collect_probes();
            let (table, mut ratios) = self.sample_tables();
            let queries_in = self.queries_in_total();
            let online = (0..self.members.len()).filter(|&i| self.is_up(i)).count();
            let once_at = self
                .announced
                .iter()
                .find(|a| a.again == Again::Once)
                .map_or(begin, |a| a.at);
            self.report.samples.push(Sample {
                minute: (self.sim.now() - begin).as_secs_f64() / 60.0,
                online,
                found_reannounced: found_again,
                found_once,
                once_age_minutes: (self.sim.now() - once_at).as_secs_f64() / 60.0,
                table_live: table[0],
                table_departed: table[1],
                table_unreachable: table[2],
                size_ratio_median: f64_percentiles(&mut ratios, [0.1, 0.5, 0.9])[1],
                queries_in_per_node: queries_in.saturating_sub(last_in) as f64
                    / online.max(1) as f64
                    / span.as_secs_f64(),
            });
            last_in = queries_in;
            progress(self.progress());
        }
    }

    fn finish(mut self) -> InternetReport {
        let (_, mut ratios) = self.sample_tables();
        self.report.size_ratio = f64_percentiles(&mut ratios, [0.1, 0.5, 0.9]);
        let mut qin = Vec::new();
        let mut qout = Vec::new();
        let mut routers = Vec::new();
        let secs = self.model.duration.as_secs_f64().max(1.0);
        for (&i, &(was_in, was_out)) in &self.counted_from {
            if !self.sim.node(i).online {
                continue;
            }
            let t = &self.sim.node(i).telemetry;
            let rate_in = t.queries_in.total().saturating_sub(was_in) as f64 / secs;
            if self.members[i].router {
                routers.push(rate_in);
            } else {
                qin.push(rate_in);
                qout.push(t.queries_out.total().saturating_sub(was_out) as f64 / secs);
            }
        }
        self.report.queries_in_per_s = f64_percentiles(&mut qin, [0.5, 0.99, 1.0]);
        self.report.queries_out_per_s = f64_percentiles(&mut qout, [0.5, 0.99, 1.0]);
        self.report.router_queries_in_per_s =
            routers.iter().sum::<f64>() / routers.len().max(1) as f64;
        let net = self.sim.net_stats();
        self.report.datagrams = [net.sent, net.lost, net.undeliverable, net.blocked];
        self.report.late = net.late;
        self.report.events = self.sim.events();
        self.report
    }
}

/// The ids that share the first `bits` bits of `prefix`: lowest, highest.
/// The first nodes added ahead of time at once.
const JOIN_BATCH: usize = 500;

fn id_range(prefix: &NodeId, bits: u32) -> (NodeId, NodeId) {
    let (mut lo, mut hi) = (prefix.0, prefix.0);
    for i in 0..lo.len() {
        let kept = bits.saturating_sub(8 * i as u32).min(8);
        let mask = if kept == 0 { 0 } else { 0xffu8 << (8 - kept) };
        lo[i] &= mask;
        hi[i] |= !mask;
    }
    (NodeId(lo), NodeId(hi))
}

/// Runs the model: joins N nodes, lets them settle, announces, then
/// measures for [`Model::duration`] with churn. `progress` is called now
/// and then. Its shards ([`Model::shards`]) run one after another in time
/// order: [`run_internet_on`] runs them at once.
pub fn run_internet(
    epoch: Instant,
    model: Model,
    progress: impl FnMut(Progress),
) -> InternetReport {
    run_internet_on(epoch, model, None, progress)
}

/// [`run_internet`], its shards each on one of `threads` (the same figures,
/// sooner).
pub fn run_internet_on(
    epoch: Instant,
    model: Model,
    threads: Option<Arc<dyn Threads>>,
    mut progress: impl FnMut(Progress),
) -> InternetReport {
    let mut run = Run::new(epoch, model);
    if let Some(threads) = threads {
        run.sim.set_threads(threads);
    }
    run.join(&mut progress);
    let settled = run.sim.now() + run.model.settle;
    run.run_to(settled);
    run.announce();
    run.measure(&mut progress);
    run.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share_below(draws: &[Duration], limit: Duration) -> f64 {
        draws.iter().filter(|d| **d < limit).count() as f64 / draws.len() as f64
    }

    /// Lookup times split by failed queries: none, one or two, three or
    /// more, each group's count and median.
    #[test]
    fn lookup_times_are_split_by_failed_queries() {
        let ms = Duration::from_millis;
        let report = InternetReport {
            durations: vec![ms(900), ms(1500), ms(1100), ms(2000), ms(2400), ms(4000)],
            failures: vec![0, 0, 0, 1, 2, 7],
            ..InternetReport::default()
        };
        assert_eq!(
            report.time_by_failures(),
            [(3, ms(1100)), (2, ms(2400)), (1, ms(4000))]
        );
        let none = InternetReport::default().time_by_failures();
        assert_eq!(none, [(0, Duration::ZERO); 3]);
    }

    /// Shards split by access delay run far apart: a datagram between the
    /// two halves of the model's nodes takes at least the least access of
    /// each (2 ms and the median, 40 ms), against twice the floor when
    /// both shards hold the fastest nodes; and each half holds about half.
    #[test]
    fn shards_of_like_access_delays_run_far_apart() {
        let model = Model {
            nodes: 2_000,
            shards: 2,
            ..Model::default()
        };
        let bands = model.access_bands(2);
        let median = bands[0].as_secs_f64() / model.access_median.as_secs_f64();
        assert!((median - 1.0).abs() < 0.05, "band at {:?}", bands[0]);
        let mut run = Run::new(crate::test_epoch(), model);
        for _ in 0..2_000 {
            run.start(run.sim.now(), None, Vec::new(), false, Arrival::Newcomer);
        }
        let (lookahead, counts) = run.sim.shard_layout();
        assert!(
            lookahead > Duration::from_millis(35),
            "lookahead {lookahead:?}"
        );
        assert!(
            counts.iter().all(|&c| (900..1_100).contains(&c)),
            "{counts:?}"
        );
        let fastest = (0..run.sim.len())
            .filter_map(|i| run.sim.endpoint_of(i).map(|e| (e.access, i)))
            .min()
            .map(|(_, i)| i);
        assert_eq!(
            fastest.map(|i| run.sim.shard_of(i)),
            Some(0),
            "the fastest node is in the first band"
        );
    }

    /// The first nodes leave at the steady rate (N over the mean session,
    /// 832 minutes with the defaults), not at the rate of nodes that just
    /// arrived, most of whose short sessions end in the first minutes.
    #[test]
    fn the_first_nodes_are_part_way_through_their_sessions() {
        let model = Model::default();
        let mut rng = StdRng::seed_from_u64(7);
        let fresh: Vec<Duration> = (0..100_000).map(|_| model.session(&mut rng)).collect();
        let under_way: Vec<Duration> = (0..100_000)
            .map(|_| model.remaining_session(&mut rng))
            .collect();
        let ten_minutes = Duration::from_secs(600);
        let mean_session_minutes = 2.0 * 200.0 / std::f64::consts::LN_2.powi(2);
        let steady = 10.0 / mean_session_minutes;
        let early = share_below(&under_way, ten_minutes);
        assert!(
            (early - steady).abs() < 0.2 * steady,
            "{early} of the first nodes left within 10 minutes, the steady rate is {steady}"
        );
        // A newcomer's session: Weibull with the median asked for.
        assert!((share_below(&fresh, model.session_median) - 0.5).abs() < 0.01);
        assert!(share_below(&fresh, ten_minutes) > 10.0 * steady);
        // The remaining time's mean is E[L²] / 2E[L]: six times the scale.
        let scale_minutes = 200.0 / std::f64::consts::LN_2.powi(2);
        let mean = under_way
            .iter()
            .map(|d| d.as_secs_f64() / 60.0)
            .sum::<f64>()
            / 1e5;
        assert!(
            (mean / (6.0 * scale_minutes) - 1.0).abs() < 0.05,
            "mean remaining session {mean} min"
        );
    }
}
