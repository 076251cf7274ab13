//! The peer store: who announced which info hash to us, until when.
//!
//! Bounded on purpose, and so that a flood cannot lock anyone out. The
//! policy, for each cap:
//!
//! | cap | when reached |
//! | --- | --- |
//! | [`max_info_hashes`](PeerStoreConfig::max_info_hashes) | the info hash farthest from our id is evicted; an announce for an info hash farther than all stored ones is refused (`info_hashes_full`) |
//! | [`max_peers_per_info_hash`](PeerStoreConfig::max_peers_per_info_hash) | a peer is evicted: the oldest of the network (/24, /64) holding most entries in that list, or a random one when no network holds two |
//! | [`max_ports_per_ip`](PeerStoreConfig::max_ports_per_ip) | that address's oldest port in the list is replaced |
//! | [`max_announces_per_ip`](PeerStoreConfig::max_announces_per_ip) | refused (`ip_quota`) |
//! | [`max_announces_per_prefix`](PeerStoreConfig::max_announces_per_prefix) | refused (`prefix_quota`) |
//!
//! Why these: a node is asked to store the info hashes it is among the
//! closest to, so a flood of random info hashes lands far from our id and
//! evicts itself first (libtorrent evicts the info hash with the fewest
//! peers, which a flood of one-peer info hashes ties with everyone). A
//! full peer list always takes a newcomer, and its evictions fall first on
//! the network that crowds it. The quotas bound what one address or one
//! network can hold at all: with the defaults, one /24 holds at most 256 of
//! the 50,000 info hashes. A real client announces each torrent to the 8
//! nodes closest to it, so one address rarely has more than a handful of
//! announces on any one node. Entries expire after
//! [`PeerStoreConfig::peer_ttl`]; BEP 5's 24 hours is an upper bound, and
//! clients re-announce every 15 to 30 minutes.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::compact::{decode_peer, peer_bytes, PEER_V6_LEN};
use crate::family::{host_key, Family};
use crate::id::{Distance, InfoHash, NodeId};
use crate::ip_prefix::IpPrefix;
use crate::scrape::ScrapeBloom;
pub use crate::telemetry::StoreCap;

/// Limits and timings of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerStoreConfig {
    /// Info hashes held at once; beyond, the farthest from our id is
    /// evicted. Defaults to 50,000.
    pub max_info_hashes: usize,
    /// Peers held per info hash; beyond, one is evicted. Defaults to 500
    /// (libtorrent's `max_peers`).
    pub max_peers_per_info_hash: usize,
    /// Ports one address holds in one info hash's list; beyond, its oldest
    /// is replaced. Defaults to 4 (a few clients behind one NAT).
    pub max_ports_per_ip: usize,
    /// Announces stored from one address over all info hashes. Defaults
    /// to 64.
    pub max_announces_per_ip: usize,
    /// Announces stored from one /24 (IPv4) or /64 (IPv6). Defaults to 256.
    pub max_announces_per_prefix: usize,
    /// How long an announce is kept. Defaults to 45 minutes (one and a half
    /// times a 30-minute re-announce, as libtorrent does).
    pub peer_ttl: Duration,
    /// How often expired entries are swept out. Defaults to 1 minute.
    pub sweep_interval: Duration,
    /// How long a BEP 51 sample stands before the next slice of the store
    /// replaces it (the `interval` a crawler is asked to wait). Defaults to
    /// 10 minutes: with about 30 info hashes a reply, a crawler that
    /// comes back every interval sees a store of 1,000 info hashes in
    /// under 6 hours, the longest interval BEP 51 allows.
    pub sample_interval: Duration,
}

impl Default for PeerStoreConfig {
    fn default() -> Self {
        PeerStoreConfig {
            max_info_hashes: 50_000,
            max_peers_per_info_hash: 500,
            max_ports_per_ip: 4,
            max_announces_per_ip: 64,
            max_announces_per_prefix: 256,
            peer_ttl: Duration::from_secs(45 * 60),
            sweep_interval: Duration::from_secs(60),
            sample_interval: Duration::from_secs(600),
        }
    }
}

/// What became of an announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceOutcome {
    /// A new peer was stored.
    Stored,
    /// A new peer was stored in place of another, evicted by this cap.
    StoredEvicting(StoreCap),
    /// The peer was already known; its expiry was pushed back.
    Refreshed,
    /// Refused by this cap.
    Rejected(StoreCap),
}

/// Sizes, for gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Info hashes with at least one peer.
    pub info_hashes: usize,
    /// Peers over all info hashes.
    pub peers: usize,
}

/// A peer in compact form with its expiry in whole seconds since the
/// store's epoch: 24 bytes, against 48 for `(SocketAddr, Instant)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StoredPeer {
    addr: [u8; PEER_V6_LEN],
    addr_len: u8,
    /// Announced with `seed = 1` (BEP 33); fits in what was padding.
    seed: bool,
    expires: u32,
}

impl StoredPeer {
    fn addr(&self) -> Option<SocketAddr> {
        decode_peer(&self.addr[..usize::from(self.addr_len)])
    }

    fn ip(&self) -> Option<IpAddr> {
        self.addr().map(|a| a.ip())
    }
}

/// The peers of one info hash. Most info hashes have one peer, kept
/// inline: no allocation of its own, and 24 bytes less per info hash than a
/// one-element `Vec`.
#[derive(Debug, Clone)]
enum Swarm {
    One(StoredPeer),
    Many(Vec<StoredPeer>),
}

impl Swarm {
    fn as_slice(&self) -> &[StoredPeer] {
        match self {
            Swarm::One(p) => std::slice::from_ref(p),
            Swarm::Many(v) => v,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [StoredPeer] {
        match self {
            Swarm::One(p) => std::slice::from_mut(p),
            Swarm::Many(v) => v,
        }
    }

    fn push(&mut self, peer: StoredPeer) {
        match self {
            Swarm::One(first) => *self = Swarm::Many(vec![*first, peer]),
            Swarm::Many(v) => v.push(peer),
        }
    }

    /// Drops the peers `gone` says so of, telling it each; may leave the
    /// swarm empty, for the caller to remove.
    fn remove_where(&mut self, mut gone: impl FnMut(&StoredPeer) -> bool) {
        match self {
            Swarm::One(p) => {
                if gone(p) {
                    *self = Swarm::Many(Vec::new());
                }
            }
            Swarm::Many(v) => {
                v.retain(|p| !gone(p));
                if let [only] = v.as_slice() {
                    *self = Swarm::One(*only);
                } else if v.capacity() > 2 * v.len() + 4 {
                    v.shrink_to_fit();
                }
            }
        }
    }
}

/// How many stored announces each address and each network holds.
#[derive(Debug, Clone, Default)]
struct Holdings {
    per_ip: HashMap<IpAddr, u32>,
    per_prefix: HashMap<IpPrefix, u32>,
}

impl Holdings {
    // Per host: an IPv6 address counts as its /64.
    fn of_ip(&self, ip: IpAddr) -> usize {
        self.per_ip.get(&host_key(ip)).map_or(0, |&n| n as usize)
    }

    fn of_prefix(&self, prefix: IpPrefix) -> usize {
        self.per_prefix.get(&prefix).map_or(0, |&n| n as usize)
    }

    fn add(&mut self, ip: IpAddr) {
        *self.per_ip.entry(host_key(ip)).or_default() += 1;
        *self.per_prefix.entry(IpPrefix::of(ip)).or_default() += 1;
    }

    fn remove(&mut self, ip: IpAddr) {
        decrement(&mut self.per_ip, host_key(ip));
        decrement(&mut self.per_prefix, IpPrefix::of(ip));
    }
}

/// Counts down, forgetting a key at zero so the maps hold only holders.
fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32>, key: K) {
    if let Some(n) = map.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            map.remove(&key);
        }
    }
}

/// Info hash → announced peers.
#[derive(Debug, Clone)]
pub struct PeerStore {
    /// Hashed with std's randomly keyed SipHash, so that attacker-chosen
    /// info hashes cannot be made to collide; nothing observable depends on
    /// its order (a sweep only counts), so a seeded simulation still replays
    /// exactly. A `BTreeMap` cost 2.5 times as much per lookup at 250,000
    /// info hashes (`cargo bench -p dhtd-protocol -- "peer store"`).
    swarms: HashMap<InfoHash, Swarm>,
    /// The stored info hashes by distance from our id, for eviction; only
    /// touched when an info hash comes or goes, never on a lookup.
    by_distance: BTreeSet<Distance>,
    holdings: Holdings,
    own_id: NodeId,
    peers: usize,
    epoch: Instant,
    last_sweep: Instant,
    config: PeerStoreConfig,
}

impl PeerStore {
    /// An empty store of the node `own_id`.
    pub fn new(now: Instant, own_id: NodeId, config: PeerStoreConfig) -> Self {
        PeerStore {
            swarms: HashMap::new(),
            by_distance: BTreeSet::new(),
            holdings: Holdings::default(),
            own_id,
            peers: 0,
            epoch: now,
            last_sweep: now,
            config,
        }
    }

    /// Applies new caps and lifetimes from now on.
    pub fn set_config(&mut self, config: PeerStoreConfig) {
        self.config = config;
    }

    /// The configuration in force.
    pub fn config(&self) -> &PeerStoreConfig {
        &self.config
    }

    fn secs(&self, t: Instant) -> u32 {
        u32::try_from(t.saturating_duration_since(self.epoch).as_secs()).unwrap_or(u32::MAX)
    }

    /// Stores (or refreshes) `peer` for `info_hash`; `rng` picks a peer to
    /// evict where no network crowds a full list.
    pub fn announce(
        &mut self,
        now: Instant,
        rng: &mut impl RngCore,
        info_hash: InfoHash,
        peer: SocketAddr,
    ) -> AnnounceOutcome {
        self.announce_as(now, rng, info_hash, peer, false)
    }

    /// [`PeerStore::announce`], saying whether the peer is a seed (BEP 33:
    /// a refresh updates it).
    pub fn announce_as(
        &mut self,
        now: Instant,
        rng: &mut impl RngCore,
        info_hash: InfoHash,
        peer: SocketAddr,
        seed: bool,
    ) -> AnnounceOutcome {
        let expires = self.secs(now + self.config.peer_ttl);
        let (addr, len) = peer_bytes(&peer);
        let entry = StoredPeer {
            addr,
            addr_len: len as u8,
            seed,
            expires,
        };
        let ip = peer.ip();
        if let Some(swarm) = self.swarms.get_mut(&info_hash) {
            let peers = swarm.as_mut_slice();
            if let Some(p) = peers
                .iter_mut()
                .find(|p| p.addr == addr && usize::from(p.addr_len) == len)
            {
                p.expires = expires;
                p.seed = seed;
                return AnnounceOutcome::Refreshed;
            }
            // A new port of an address at its share takes the place of its
            // oldest: the address's holdings do not change.
            let host = Some(host_key(ip));
            let same_ip = || {
                peers
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.ip().map(host_key) == host)
            };
            if same_ip().count() >= self.config.max_ports_per_ip.max(1) {
                if let Some((oldest, _)) = same_ip().min_by_key(|(_, p)| p.expires) {
                    peers[oldest] = entry;
                    return AnnounceOutcome::StoredEvicting(StoreCap::PortsPerIp);
                }
            }
        }
        if self.holdings.of_ip(ip) >= self.config.max_announces_per_ip {
            return AnnounceOutcome::Rejected(StoreCap::AnnouncesPerIp);
        }
        if self.holdings.of_prefix(IpPrefix::of(ip)) >= self.config.max_announces_per_prefix {
            return AnnounceOutcome::Rejected(StoreCap::AnnouncesPerPrefix);
        }
        let max_peers = self.config.max_peers_per_info_hash;
        if max_peers == 0 {
            return AnnounceOutcome::Rejected(StoreCap::PeersPerInfoHash);
        }
        let mut evicted = None;
        let now_s = self.secs(now);
        match self.swarms.get_mut(&info_hash) {
            Some(swarm) => {
                if swarm.as_slice().len() >= max_peers {
                    self.peers -= drop_expired(swarm, now_s, &mut self.holdings);
                }
                if swarm.as_slice().len() >= max_peers {
                    let victim = eviction_victim(swarm.as_slice(), rng);
                    let gone = swarm.as_slice()[victim];
                    swarm.remove_where(|p| p.addr == gone.addr);
                    if let Some(ip) = gone.ip() {
                        self.holdings.remove(ip);
                    }
                    self.peers -= 1;
                    evicted = Some(StoreCap::PeersPerInfoHash);
                }
                swarm.push(entry);
            }
            None => {
                let distance = self.own_id.distance(&info_hash);
                if self.swarms.len() >= self.config.max_info_hashes {
                    match self.by_distance.last() {
                        Some(&farthest) if farthest > distance => {
                            self.remove_info_hash(&self.at_distance(farthest));
                            evicted = Some(StoreCap::InfoHashes);
                        }
                        _ => return AnnounceOutcome::Rejected(StoreCap::InfoHashes),
                    }
                }
                self.swarms.insert(info_hash, Swarm::One(entry));
                self.by_distance.insert(distance);
            }
        }
        self.holdings.add(ip);
        self.peers += 1;
        match evicted {
            Some(cap) => AnnounceOutcome::StoredEvicting(cap),
            None => AnnounceOutcome::Stored,
        }
    }

    /// The info hash at `distance` from our id.
    fn at_distance(&self, distance: Distance) -> InfoHash {
        let mut bytes = distance.0;
        for (b, own) in bytes.iter_mut().zip(self.own_id.0) {
            *b ^= own;
        }
        InfoHash(bytes)
    }

    fn remove_info_hash(&mut self, info_hash: &InfoHash) {
        if let Some(swarm) = self.swarms.remove(info_hash) {
            for p in swarm.as_slice() {
                if let Some(ip) = p.ip() {
                    self.holdings.remove(ip);
                }
            }
            self.peers -= swarm.as_slice().len();
        }
        self.by_distance.remove(&self.own_id.distance(info_hash));
    }

    /// Announces stored from `ip` now.
    pub fn held_by_ip(&self, ip: IpAddr) -> usize {
        self.holdings.of_ip(ip)
    }

    /// Up to as many live peers of `info_hash` as fit in `byte_budget`
    /// bytes of a `values` list (8 bytes per IPv4 peer, 21 per IPv6), chosen
    /// at random.
    pub fn sample(
        &self,
        now: Instant,
        rng: &mut impl RngCore,
        info_hash: &InfoHash,
        byte_budget: usize,
    ) -> Vec<SocketAddr> {
        self.sample_of(now, rng, info_hash, byte_budget, false, None)
    }

    /// The two BEP 33 filters of `info_hash`'s live entries, seeds' IPs and
    /// the other peers' IPs; `None` when nothing live is stored for it.
    pub fn blooms(&self, now: Instant, info_hash: &InfoHash) -> Option<(ScrapeBloom, ScrapeBloom)> {
        let now_s = self.secs(now);
        let peers = self.swarms.get(info_hash)?.as_slice();
        let (mut seeds, mut others) = (ScrapeBloom::default(), ScrapeBloom::default());
        let mut any = false;
        for p in peers.iter().filter(|p| p.expires > now_s) {
            let Some(ip) = p.ip() else { continue };
            if p.seed {
                seeds.insert(ip);
            } else {
                others.insert(ip);
            }
            any = true;
        }
        any.then_some((seeds, others))
    }

    /// [`PeerStore::sample`]; with `noseed`, seeds only where too few other
    /// peers fill the budget (BEP 33's best effort); with `family`, only
    /// the peers of that family.
    pub fn sample_of(
        &self,
        now: Instant,
        rng: &mut impl RngCore,
        info_hash: &InfoHash,
        byte_budget: usize,
        noseed: bool,
        family: Option<Family>,
    ) -> Vec<SocketAddr> {
        let now_s = self.secs(now);
        let Some(peers) = self.swarms.get(info_hash).map(Swarm::as_slice) else {
            return Vec::new();
        };
        // Visit every index once, from a random start with a random stride
        // coprime to the length: each peer is as likely as any other to be
        // picked, and a sample costs what it takes, not the swarm's size.
        let n = peers.len();
        if n == 0 {
            return Vec::new();
        }
        let start = (rng.next_u64() % n as u64) as usize;
        let stride = coprime_stride(rng, n);
        let mut sample = Vec::new();
        let mut spent = 0;
        // With `noseed`, a first pass over the non-seeds, then the seeds.
        let passes: &[Option<bool>] = if noseed {
            &[Some(false), Some(true)]
        } else {
            &[None]
        };
        for only in passes {
            let mut at = start;
            for _ in 0..n {
                let p = &peers[at];
                at = (at + stride) % n;
                if p.expires <= now_s || only.is_some_and(|seed| p.seed != seed) {
                    continue;
                }
                let Some(addr) = p.addr() else { continue };
                if family.is_some_and(|f| f != Family::of(&addr)) {
                    continue;
                }
                let cost = encoded_value_len(&addr);
                if spent + cost > byte_budget {
                    break;
                }
                spent += cost;
                sample.push(addr);
            }
        }
        sample
    }

    /// Up to `n` stored info hashes, the next ones after `after` in the
    /// store's order (by distance from our id), wrapping around: a BEP 51
    /// sample. Asked again from its last info hash, it goes on where the
    /// previous one ended, so a querier that asks every interval sees the
    /// whole store in turn.
    pub fn sample_info_hashes(&self, after: Option<&InfoHash>, n: usize) -> Vec<InfoHash> {
        use std::ops::Bound::{Excluded, Unbounded};
        let start = after.map(|h| self.own_id.distance(h));
        let tail = match &start {
            Some(d) => self.by_distance.range((Excluded(*d), Unbounded)),
            None => self.by_distance.range(..),
        };
        let head = self
            .by_distance
            .iter()
            .take_while(|d| start.is_some_and(|s| **d <= s));
        tail.chain(head)
            .take(n.min(self.by_distance.len()))
            .map(|d| InfoHash(self.own_id.distance(&NodeId(d.0)).0))
            .collect()
    }

    /// Info hashes stored.
    pub fn info_hash_count(&self) -> usize {
        self.swarms.len()
    }

    /// Number of live peers for `info_hash`.
    pub fn peer_count(&self, now: Instant, info_hash: &InfoHash) -> usize {
        let now_s = self.secs(now);
        self.swarms.get(info_hash).map_or(0, |p| {
            p.as_slice().iter().filter(|p| p.expires > now_s).count()
        })
    }

    /// When the next sweep is due.
    pub fn poll_timeout(&self) -> Instant {
        self.last_sweep + self.config.sweep_interval
    }

    /// Removes expired peers and empty info hashes; returns what was removed.
    pub fn expire(&mut self, now: Instant) -> StoreStats {
        let now_s = self.secs(now);
        let mut removed = StoreStats::default();
        let holdings = &mut self.holdings;
        let by_distance = &mut self.by_distance;
        let own_id = self.own_id;
        self.swarms.retain(|info_hash, peers| {
            removed.peers += drop_expired(peers, now_s, holdings);
            let empty = peers.as_slice().is_empty();
            if empty {
                removed.info_hashes += 1;
                by_distance.remove(&own_id.distance(info_hash));
            }
            !empty
        });
        self.peers -= removed.peers;
        self.last_sweep = now;
        removed
    }

    /// Current sizes.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            info_hashes: self.swarms.len(),
            peers: self.peers,
        }
    }
}

/// Drops the peers of `swarm` that expired by `now_s`, releasing their
/// holdings; returns how many.
fn drop_expired(swarm: &mut Swarm, now_s: u32, holdings: &mut Holdings) -> usize {
    let mut expired = 0;
    swarm.remove_where(|p| {
        let gone = p.expires <= now_s;
        if gone {
            expired += 1;
            if let Some(ip) = p.ip() {
                holdings.remove(ip);
            }
        }
        gone
    });
    expired
}

/// Which peer of a full list to evict: the oldest of the network holding
/// most entries in it when one holds two or more, else a random one.
fn eviction_victim(peers: &[StoredPeer], rng: &mut impl RngCore) -> usize {
    let mut per_prefix: HashMap<IpPrefix, u32> = HashMap::new();
    for p in peers {
        if let Some(ip) = p.ip() {
            *per_prefix.entry(IpPrefix::of(ip)).or_default() += 1;
        }
    }
    // Ties broken by the prefix itself, not the map's random order, so that
    // a seeded simulation replays.
    let crowded = per_prefix
        .into_iter()
        .filter(|&(_, n)| n >= 2)
        .max_by_key(|&(prefix, n)| (n, prefix));
    match crowded {
        Some((prefix, _)) => peers
            .iter()
            .enumerate()
            .filter(|(_, p)| p.ip().map(IpPrefix::of) == Some(prefix))
            .min_by_key(|(_, p)| p.expires)
            .map_or(0, |(i, _)| i),
        None => (rng.next_u64() % peers.len().max(1) as u64) as usize,
    }
}

/// A random step in `1..n` (1 for `n` ≤ 2) sharing no factor with `n`, so
/// that stepping by it from any index visits all `n` indices once.
fn coprime_stride(rng: &mut impl RngCore, n: usize) -> usize {
    if n <= 2 {
        return 1;
    }
    loop {
        let s = 1 + (rng.next_u64() % (n as u64 - 1)) as usize;
        if gcd(s, n) == 1 {
            return s;
        }
    }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Bytes one peer takes in a `values` list: the length prefix, the colon
/// and the compact address.
pub fn encoded_value_len(addr: &SocketAddr) -> usize {
    if addr.is_ipv4() {
        8 // "6:" + 6
    } else {
        21 // "18:" + 18
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn ih(n: u8) -> InfoHash {
        InfoHash([n; 20])
    }

    /// Each on its own /24, so that only the caps under test bite.
    fn peer(n: u16) -> SocketAddr {
        SocketAddr::from(([10, (n >> 8) as u8, n as u8, 1], 6881))
    }

    fn put(
        s: &mut PeerStore,
        now: Instant,
        info_hash: InfoHash,
        peer: SocketAddr,
    ) -> AnnounceOutcome {
        s.announce(now, &mut StdRng::seed_from_u64(0), info_hash, peer)
    }

    #[test]
    fn announces_are_stored_refreshed_and_expire() {
        let t0 = crate::test_epoch();
        let cfg = PeerStoreConfig {
            peer_ttl: Duration::from_secs(600),
            ..Default::default()
        };
        let mut s = PeerStore::new(t0, NodeId([0; 20]), cfg);
        assert_eq!(put(&mut s, t0, ih(1), peer(1)), AnnounceOutcome::Stored);
        assert_eq!(put(&mut s, t0, ih(1), peer(1)), AnnounceOutcome::Refreshed);
        assert_eq!(
            s.stats(),
            StoreStats {
                info_hashes: 1,
                peers: 1
            }
        );
        // Refreshed at t0+500: lives until t0+1100.
        put(&mut s, t0 + Duration::from_secs(500), ih(1), peer(1));
        put(&mut s, t0, ih(2), peer(2));
        let later = t0 + Duration::from_secs(700);
        assert_eq!(s.peer_count(later, &ih(1)), 1);
        assert_eq!(s.peer_count(later, &ih(2)), 0);
        let removed = s.expire(later);
        assert_eq!(
            removed,
            StoreStats {
                info_hashes: 1,
                peers: 1
            }
        );
        assert_eq!(
            s.stats(),
            StoreStats {
                info_hashes: 1,
                peers: 1
            }
        );
        s.expire(t0 + Duration::from_secs(1200));
        assert_eq!(s.stats(), StoreStats::default());
    }

    /// Our id is 0, so `ih(n)` lies at distance `n`.
    #[test]
    fn a_full_store_evicts_the_info_hash_farthest_from_our_id() {
        let t0 = crate::test_epoch();
        let cfg = PeerStoreConfig {
            max_info_hashes: 2,
            ..Default::default()
        };
        let mut s = PeerStore::new(t0, NodeId([0; 20]), cfg);
        assert_eq!(put(&mut s, t0, ih(1), peer(1)), AnnounceOutcome::Stored);
        assert_eq!(put(&mut s, t0, ih(3), peer(2)), AnnounceOutcome::Stored);
        assert_eq!(put(&mut s, t0, ih(3), peer(3)), AnnounceOutcome::Stored);
        assert_eq!(
            put(&mut s, t0, ih(2), peer(4)),
            AnnounceOutcome::StoredEvicting(StoreCap::InfoHashes)
        );
        assert_eq!(s.peer_count(t0, &ih(3)), 0);
        assert_eq!(
            s.held_by_ip(peer(2).ip()),
            0,
            "the evicted peers' holdings are released"
        );
        assert_eq!(
            put(&mut s, t0, ih(9), peer(5)),
            AnnounceOutcome::Rejected(StoreCap::InfoHashes)
        );
        assert_eq!(put(&mut s, t0, ih(1), peer(1)), AnnounceOutcome::Refreshed);
        assert_eq!(
            s.stats(),
            StoreStats {
                info_hashes: 2,
                peers: 2
            }
        );
    }

    #[test]
    fn a_full_peer_list_takes_a_newcomer() {
        let t0 = crate::test_epoch();
        let cfg = PeerStoreConfig {
            max_peers_per_info_hash: 3,
            ..Default::default()
        };
        let mut s = PeerStore::new(t0, NodeId([0; 20]), cfg);
        for n in 0..3 {
            assert_eq!(put(&mut s, t0, ih(1), peer(n)), AnnounceOutcome::Stored);
        }
        assert_eq!(
            put(&mut s, t0, ih(1), peer(9)),
            AnnounceOutcome::StoredEvicting(StoreCap::PeersPerInfoHash)
        );
        assert_eq!(s.peer_count(t0, &ih(1)), 3);
        let mut rng = StdRng::seed_from_u64(1);
        assert!(s.sample(t0, &mut rng, &ih(1), 1000).contains(&peer(9)));
        assert_eq!(s.stats().peers, 3);
    }

    /// Evictions fall first on the network that crowds a full list.
    #[test]
    fn the_crowding_network_loses_its_oldest_entry_first() {
        let t0 = crate::test_epoch();
        let cfg = PeerStoreConfig {
            max_peers_per_info_hash: 5,
            ..Default::default()
        };
        let mut s = PeerStore::new(t0, NodeId([0; 20]), cfg);
        let crowd = |n: u8| SocketAddr::from(([192, 0, 2, n], 6881));
        put(&mut s, t0, ih(1), peer(1));
        put(&mut s, t0, ih(1), crowd(1));
        put(&mut s, t0 + Duration::from_secs(1), ih(1), crowd(2));
        put(&mut s, t0 + Duration::from_secs(2), ih(1), crowd(3));
        put(&mut s, t0 + Duration::from_secs(2), ih(1), peer(2));
        let t3 = t0 + Duration::from_secs(3);
        for (newcomer, gone) in [(peer(3), crowd(1)), (peer(4), crowd(2))] {
            put(&mut s, t3, ih(1), newcomer);
            let left = s.sample(t3, &mut StdRng::seed_from_u64(2), &ih(1), 1000);
            assert!(
                left.contains(&newcomer) && !left.contains(&gone),
                "{left:?}"
            );
            assert_eq!(left.len(), 5);
        }
    }

    /// One address announcing many ports keeps its newest few, not the list.
    #[test]
    fn an_address_holds_a_few_ports_per_info_hash() {
        let t0 = crate::test_epoch();
        let cfg = PeerStoreConfig {
            max_ports_per_ip: 2,
            ..Default::default()
        };
        let mut s = PeerStore::new(t0, NodeId([0; 20]), cfg);
        let at = |port: u16| SocketAddr::from(([192, 0, 2, 1], port));
        for port in 1..=500u16 {
            let now = t0 + Duration::from_secs(u64::from(port));
            put(&mut s, now, ih(1), at(port));
        }
        let now = t0 + Duration::from_secs(500);
        let mut left = s.sample(now, &mut StdRng::seed_from_u64(3), &ih(1), 1000);
        left.sort();
        assert_eq!(left, [at(499), at(500)]);
        assert_eq!(s.held_by_ip(at(1).ip()), 2);
        assert_eq!(put(&mut s, now, ih(1), peer(1)), AnnounceOutcome::Stored);
    }

    #[test]
    fn quotas_bound_what_one_address_and_one_network_hold() {
        let t0 = crate::test_epoch();
        let cfg = PeerStoreConfig {
            max_announces_per_ip: 3,
            max_announces_per_prefix: 5,
            peer_ttl: Duration::from_secs(60),
            ..Default::default()
        };
        let mut s = PeerStore::new(t0, NodeId([0; 20]), cfg);
        let at = |n: u8| SocketAddr::from(([192, 0, 2, n], 6881));
        for n in 0..3 {
            assert_eq!(put(&mut s, t0, ih(n), at(1)), AnnounceOutcome::Stored);
        }
        assert_eq!(
            put(&mut s, t0, ih(3), at(1)),
            AnnounceOutcome::Rejected(StoreCap::AnnouncesPerIp)
        );
        assert_eq!(put(&mut s, t0, ih(0), at(1)), AnnounceOutcome::Refreshed);
        assert_eq!(put(&mut s, t0, ih(3), at(2)), AnnounceOutcome::Stored);
        assert_eq!(put(&mut s, t0, ih(4), at(3)), AnnounceOutcome::Stored);
        assert_eq!(
            put(&mut s, t0, ih(5), at(4)),
            AnnounceOutcome::Rejected(StoreCap::AnnouncesPerPrefix)
        );
        assert_eq!(put(&mut s, t0, ih(5), peer(4)), AnnounceOutcome::Stored);
        // Expiry releases the holdings.
        let later = t0 + Duration::from_secs(61);
        s.expire(later);
        assert_eq!(s.held_by_ip(at(1).ip()), 0);
        assert_eq!(put(&mut s, later, ih(3), at(1)), AnnounceOutcome::Stored);
    }

    /// The flood of the issue: 300,000 announces of distinct info hashes
    /// from 4,000 addresses (16 /24s). With the default caps the flood
    /// holds 16 × 256 announces, and a newcomer's announce of a new info
    /// hash is stored at once, during the flood and after it.
    #[test]
    fn an_announce_flood_from_many_addresses_does_not_keep_a_newcomer_out() {
        let t0 = crate::test_epoch();
        let mut s = PeerStore::new(t0, NodeId([0; 20]), PeerStoreConfig::default());
        let mut rng = StdRng::seed_from_u64(4);
        for i in 0..300_000u32 {
            let n = i % 4000;
            let from = SocketAddr::from(([127, 0, (n >> 8) as u8, n as u8], 6881));
            let info_hash = InfoHash::random(&mut rng);
            s.announce(t0, &mut rng, info_hash, from);
            if i == 150_000 {
                let newcomer = InfoHash::random(&mut rng);
                assert_eq!(put(&mut s, t0, newcomer, peer(1)), AnnounceOutcome::Stored);
            }
        }
        assert_eq!(s.stats().peers, 16 * 256 + 1);
        let newcomer = InfoHash::random(&mut rng);
        assert_eq!(put(&mut s, t0, newcomer, peer(2)), AnnounceOutcome::Stored);
    }

    #[test]
    fn a_full_swarm_makes_room_from_expired_peers() {
        let t0 = crate::test_epoch();
        let cfg = PeerStoreConfig {
            max_peers_per_info_hash: 2,
            peer_ttl: Duration::from_secs(60),
            ..Default::default()
        };
        let mut s = PeerStore::new(t0, NodeId([0; 20]), cfg);
        put(&mut s, t0, ih(1), peer(1));
        put(&mut s, t0, ih(1), peer(2));
        let later = t0 + Duration::from_secs(61);
        assert_eq!(put(&mut s, later, ih(1), peer(3)), AnnounceOutcome::Stored);
        assert_eq!(s.stats().peers, 1);
    }

    /// BEP 32: replies should stay under 1024 bytes, so a sample is cut to a
    /// byte budget, and it is a random subset without repeats.
    #[test]
    fn samples_fit_the_budget_and_vary() {
        let t0 = crate::test_epoch();
        let mut s = PeerStore::new(t0, NodeId([0; 20]), PeerStoreConfig::default());
        for n in 0..300 {
            put(&mut s, t0, ih(1), peer(n));
        }
        let mut rng = StdRng::seed_from_u64(5);
        let a = s.sample(t0, &mut rng, &ih(1), 800);
        assert_eq!(a.len(), 100);
        let mut dedup = a.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), a.len());
        let b = s.sample(t0, &mut rng, &ih(1), 800);
        assert_ne!(a, b);
        assert!(s.sample(t0, &mut rng, &ih(9), 800).is_empty());
        assert_eq!(s.sample(t0, &mut rng, &ih(1), 7).len(), 0);
    }

    /// A swarm grows from its inline single peer to a list and back as
    /// peers come and expire, and nothing is lost or double counted.
    #[test]
    fn one_peer_inline_then_many_then_one_again() {
        let t0 = crate::test_epoch();
        let cfg = PeerStoreConfig {
            peer_ttl: Duration::from_secs(60),
            ..Default::default()
        };
        let mut s = PeerStore::new(t0, NodeId([0; 20]), cfg);
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(put(&mut s, t0, ih(1), peer(1)), AnnounceOutcome::Stored);
        assert_eq!(put(&mut s, t0, ih(1), peer(1)), AnnounceOutcome::Refreshed);
        let t30 = t0 + Duration::from_secs(30);
        assert_eq!(put(&mut s, t30, ih(1), peer(2)), AnnounceOutcome::Stored);
        assert_eq!(put(&mut s, t30, ih(1), peer(3)), AnnounceOutcome::Stored);
        assert_eq!(
            s.stats(),
            StoreStats {
                info_hashes: 1,
                peers: 3
            }
        );
        let t61 = t0 + Duration::from_secs(61);
        assert_eq!(
            s.expire(t61),
            StoreStats {
                info_hashes: 0,
                peers: 1
            }
        );
        let mut left = s.sample(t61, &mut rng, &ih(1), 1000);
        left.sort();
        assert_eq!(left, [peer(2), peer(3)]);
        // Peer 2 refreshed: after 3 expires, it is the swarm's only peer.
        let t80 = t0 + Duration::from_secs(80);
        assert_eq!(put(&mut s, t80, ih(1), peer(2)), AnnounceOutcome::Refreshed);
        let t91 = t0 + Duration::from_secs(91);
        assert_eq!(
            s.expire(t91),
            StoreStats {
                info_hashes: 0,
                peers: 1
            }
        );
        assert_eq!(s.sample(t91, &mut rng, &ih(1), 1000), [peer(2)]);
        assert_eq!(put(&mut s, t91, ih(1), peer(4)), AnnounceOutcome::Stored);
        assert_eq!(
            s.stats(),
            StoreStats {
                info_hashes: 1,
                peers: 2
            }
        );
        let t200 = t0 + Duration::from_secs(200);
        assert_eq!(
            s.expire(t200),
            StoreStats {
                info_hashes: 1,
                peers: 2
            }
        );
        assert_eq!(s.stats(), StoreStats::default());
        assert!(s.sample(t200, &mut rng, &ih(1), 1000).is_empty());
    }

    /// The stride walk reaches every live peer, never an expired one, and
    /// over many samples picks each about equally often.
    #[test]
    fn samples_cover_live_peers_evenly() {
        let t0 = crate::test_epoch();
        let cfg = PeerStoreConfig {
            peer_ttl: Duration::from_secs(60),
            ..Default::default()
        };
        let mut s = PeerStore::new(t0, NodeId([0; 20]), cfg);
        for n in 0..30 {
            put(&mut s, t0, ih(1), peer(n));
        }
        let later = t0 + Duration::from_secs(30);
        for n in 30..90 {
            put(&mut s, later, ih(1), peer(n));
        }
        let now = t0 + Duration::from_secs(61);
        let mut rng = StdRng::seed_from_u64(8);
        let mut all = s.sample(now, &mut rng, &ih(1), 10_000);
        all.sort();
        let live: Vec<SocketAddr> = (30..90).map(peer).collect();
        assert_eq!(all, live);
        let mut picked = std::collections::HashMap::new();
        for _ in 0..6000 {
            for p in s.sample(now, &mut rng, &ih(1), 80) {
                *picked.entry(p).or_insert(0u32) += 1;
            }
        }
        // 6000 samples of 10 out of 60: each peer about 1000 times.
        assert_eq!(picked.len(), 60);
        assert!(
            picked.values().all(|&c| (800..1200).contains(&c)),
            "{picked:?}"
        );
    }
}
