//! Announces in a network with a share of hostile nodes: Sybils that
//! answer every lookup with made-up ids close to the target, or contacts
//! that are handed out but dead. Each announce is checked against the
//! ground truth: how many of the true k closest honest, live nodes store
//! it.

use std::time::{Duration, Instant};

use std::net::SocketAddr;

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use super::driver::{Behaviour, Simulation};
use super::experiments::{percentile, sample_indices, SimConfig};
use crate::compact::{encode_node, CompactNodes, NodeInfo};
use crate::id::{InfoHash, NodeId};
use crate::krpc::{Body, Message, Query, Response};
use crate::lookup::LookupKind;
use crate::node::{AnnounceSpec, Confidence};

/// A Sybil's answer to `query`, a datagram from `from`: under its own id
/// `id` (or, `echo`ing, under the closest of the ids it makes up), k
/// made-up ids sharing their first 12 bytes with the target (closer than
/// any real node of a network of any real size), all at its own address
/// `addr`, and a token for any `find_node` or `get_peers`; a bare answer
/// to anything else. `None` if `query` is not a query. The simulator's
/// Sybils and the loopback tests' use it.
pub fn sybil_reply(
    query: &[u8],
    id: NodeId,
    addr: SocketAddr,
    from: SocketAddr,
    echo: bool,
    rng: &mut impl RngCore,
) -> Option<Vec<u8>> {
    let m = Message::decode(query).ok()?;
    let Body::Query { query, .. } = m.body else {
        return None;
    };
    let target = match query {
        Query::FindNode { target, .. } => Some(target),
        Query::GetPeers { info_hash, .. } => Some(NodeId(info_hash.0)),
        _ => None,
    };
    let mut id = id;
    let mut nodes = Vec::new();
    if let Some(target) = target {
        let mut fakes: Vec<NodeId> = (0..crate::K)
            .map(|_| {
                let mut fake = target;
                for b in &mut fake.0[12..] {
                    *b = (rng.next_u32() & 0xff) as u8;
                }
                fake
            })
            .collect();
        fakes.sort_by_key(|f| target.distance(f));
        if echo {
            id = fakes[0];
        }
        for fake in fakes {
            encode_node(&NodeInfo { id: fake, addr }, &mut nodes);
        }
    }
    let reply = Message {
        transaction_id: m.transaction_id,
        version: None,
        requester_ip: Some(from),
        read_only: false,
        body: Body::Response(Response {
            nodes: target.and_then(|_| CompactNodes::v4(&nodes).ok()),
            token: target.map(|_| &b"sybil"[..]),
            ..Response::bare(id)
        }),
    };
    Some(reply.to_bytes())
}

/// Which nodes turn hostile, after the network has formed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Hostile {
    /// None: the clean baseline.
    None,
    /// This share of nodes answers as [`Behaviour::Sybil`].
    Sybils(f64),
    /// This share answers as [`Behaviour::EchoingSybil`].
    EchoingSybils(f64),
    /// This share goes silent, still in everyone's tables.
    Dead(f64),
}

/// What [`run_hostile_experiment`] measured.
#[derive(Debug, Clone, Default)]
pub struct HostileReport {
    /// Announces made.
    pub announces: usize,
    /// Per announce: how many of the true k closest honest live nodes
    /// store it.
    pub reached: Vec<usize>,
    /// Per announce: the time its lookup and announce took.
    pub durations: Vec<Duration>,
    /// Per announce: how sure the node said it was.
    pub confidence: Vec<Confidence>,
}

impl HostileReport {
    /// Share of announces that reached at least `n` of the true k closest.
    pub fn share_reaching(&self, n: usize) -> f64 {
        let hits = self.reached.iter().filter(|&&r| r >= n).count();
        hits as f64 / self.reached.len().max(1) as f64
    }

    /// Median announce time.
    pub fn median_duration(&self) -> Duration {
        percentile(&self.durations, 0.5).unwrap_or_default()
    }
}

impl std::fmt::Display for HostileReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let high = self
            .confidence
            .iter()
            .filter(|&&c| c == Confidence::High)
            .count();
        write!(
            f,
            "{} announces: {:.0}% reached ≥6 of the true 8 closest, {:.0}% all 8; time median {:?}, p90 {:?}; confidence high in {}",
            self.announces,
            self.share_reaching(6) * 100.0,
            self.share_reaching(crate::K) * 100.0,
            self.median_duration(),
            percentile(&self.durations, 0.9).unwrap_or_default(),
            high,
        )
    }
}

/// Joins `config.nodes` nodes, turns a share hostile, lets the tables
/// settle for `settle`, then announces `announces` random info hashes from
/// random honest nodes, one after another.
pub fn run_hostile_experiment(
    epoch: Instant,
    config: &SimConfig,
    hostile: Hostile,
    settle: Duration,
    announces: usize,
) -> HostileReport {
    let mut sim = Simulation::join(config, epoch);
    let mut rng = StdRng::seed_from_u64(config.seed ^ 0x686f_7374);
    let (share, behaviour) = match hostile {
        Hostile::None => (0.0, None),
        Hostile::Sybils(s) => (s, Some(Behaviour::Sybil)),
        Hostile::EchoingSybils(s) => (s, Some(Behaviour::EchoingSybil)),
        Hostile::Dead(s) => (s, None),
    };
    let bad = sample_indices(
        &mut rng,
        sim.len(),
        (share * sim.len() as f64).round() as usize,
    );
    for &i in &bad {
        match behaviour {
            Some(b) => sim.node_mut(i).behaviour = b,
            None => sim.set_online(i, false),
        }
    }
    sim.run_for(settle);
    let honest: Vec<usize> = (0..sim.len()).filter(|i| !bad.contains(i)).collect();
    let mut report = HostileReport {
        announces,
        ..HostileReport::default()
    };
    let k = config.node.lookup.k;
    let port = 6881;
    for _ in 0..announces {
        let from = honest[rng.random_range(0..honest.len())];
        let target = NodeId::random(&mut rng);
        let started = sim.now();
        let limit = config.node.lookup.max_duration + Duration::from_secs(5);
        let spec = AnnounceSpec {
            port,
            implied_port: false,
            seed: false,
        };
        let Some(summary) = sim.lookup(from, target, LookupKind::GetPeers, Some(spec), limit)
        else {
            report.reached.push(0);
            continue;
        };
        report.durations.push(sim.now() - started);
        if let Some(a) = summary.announce {
            report.confidence.push(a.confidence);
        }
        let mut truth: Vec<usize> = honest.iter().copied().filter(|&i| i != from).collect();
        truth.sort_by_key(|&i| target.distance(&sim.node(i).id));
        truth.truncate(k);
        let now = sim.now();
        let info_hash = InfoHash(target.0);
        let reached = truth
            .iter()
            .filter(|&&i| sim.node(i).pieces.store.peer_count(now, &info_hash) > 0)
            .count();
        report.reached.push(reached);
    }
    report
}
