//! The peer store: who announced which info hash to us, until when.
//!
//! Bounded on purpose: [`PeerStoreConfig::max_info_hashes`] and
//! [`PeerStoreConfig::max_peers_per_info_hash`] exist so that no flood of
//! announces can make us allocate without limit (libtorrent's `max_torrents`
//! and `max_peers` have the same reason). Announces beyond a cap are refused
//! and reported, never silently dropped. Entries expire after
//! [`PeerStoreConfig::peer_ttl`]; BEP 5's 24 hours is an upper bound, and
//! clients re-announce every 15 to 30 minutes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::compact::{decode_peer, peer_bytes, PEER_V6_LEN};
use crate::id::InfoHash;

/// Limits and timings of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerStoreConfig {
    /// Info hashes held at once; announces for new ones beyond this are
    /// refused. Defaults to 50,000.
    pub max_info_hashes: usize,
    /// Peers held per info hash; announces beyond this are refused.
    /// Defaults to 500 (libtorrent's `max_peers`).
    pub max_peers_per_info_hash: usize,
    /// How long an announce is kept. Defaults to 45 minutes (one and a half
    /// times a 30-minute re-announce, as libtorrent does).
    pub peer_ttl: Duration,
    /// How often expired entries are swept out. Defaults to 1 minute.
    pub sweep_interval: Duration,
}

impl Default for PeerStoreConfig {
    fn default() -> Self {
        PeerStoreConfig {
            max_info_hashes: 50_000,
            max_peers_per_info_hash: 500,
            peer_ttl: Duration::from_secs(45 * 60),
            sweep_interval: Duration::from_secs(60),
        }
    }
}

/// What became of an announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceOutcome {
    /// A new peer was stored.
    Stored,
    /// The peer was already known; its expiry was pushed back.
    Refreshed,
    /// Refused because a cap was reached.
    Rejected(StoreFull),
}

/// Which cap refused an announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFull {
    /// [`PeerStoreConfig::max_info_hashes`].
    InfoHashes,
    /// [`PeerStoreConfig::max_peers_per_info_hash`].
    PeersPerInfoHash,
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
    expires: u32,
}

impl StoredPeer {
    fn addr(&self) -> Option<SocketAddr> {
        decode_peer(&self.addr[..usize::from(self.addr_len)])
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

    /// Drops peers that expired by `now_s`; returns how many. May leave
    /// the swarm empty, for the caller to remove.
    fn expire(&mut self, now_s: u32) -> usize {
        match self {
            Swarm::One(p) if p.expires > now_s => 0,
            Swarm::One(_) => {
                *self = Swarm::Many(Vec::new());
                1
            }
            Swarm::Many(v) => {
                let before = v.len();
                v.retain(|p| p.expires > now_s);
                let removed = before - v.len();
                if let [only] = v.as_slice() {
                    *self = Swarm::One(*only);
                } else if v.capacity() > 2 * v.len() + 4 {
                    v.shrink_to_fit();
                }
                removed
            }
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
    peers: usize,
    epoch: Instant,
    last_sweep: Instant,
    config: PeerStoreConfig,
}

impl PeerStore {
    /// An empty store.
    pub fn new(now: Instant, config: PeerStoreConfig) -> Self {
        PeerStore {
            swarms: HashMap::new(),
            peers: 0,
            epoch: now,
            last_sweep: now,
            config,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &PeerStoreConfig {
        &self.config
    }

    fn secs(&self, t: Instant) -> u32 {
        u32::try_from(t.saturating_duration_since(self.epoch).as_secs()).unwrap_or(u32::MAX)
    }

    /// Stores (or refreshes) `peer` for `info_hash`.
    pub fn announce(
        &mut self,
        now: Instant,
        info_hash: InfoHash,
        peer: SocketAddr,
    ) -> AnnounceOutcome {
        let now_s = self.secs(now);
        let expires = self.secs(now + self.config.peer_ttl);
        let (addr, len) = peer_bytes(&peer);
        let entry = StoredPeer {
            addr,
            addr_len: len as u8,
            expires,
        };
        let max_peers = self.config.max_peers_per_info_hash;
        match self.swarms.get_mut(&info_hash) {
            Some(peers) => {
                if let Some(p) = peers
                    .as_mut_slice()
                    .iter_mut()
                    .find(|p| p.addr == addr && usize::from(p.addr_len) == len)
                {
                    p.expires = expires;
                    return AnnounceOutcome::Refreshed;
                }
                if peers.as_slice().len() >= max_peers {
                    self.peers -= peers.expire(now_s);
                }
                if peers.as_slice().len() >= max_peers {
                    return AnnounceOutcome::Rejected(StoreFull::PeersPerInfoHash);
                }
                peers.push(entry);
            }
            None => {
                if self.swarms.len() >= self.config.max_info_hashes || max_peers == 0 {
                    return AnnounceOutcome::Rejected(StoreFull::InfoHashes);
                }
                self.swarms.insert(info_hash, Swarm::One(entry));
            }
        }
        self.peers += 1;
        AnnounceOutcome::Stored
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
        let mut at = start;
        for _ in 0..n {
            let p = &peers[at];
            at = (at + stride) % n;
            if p.expires <= now_s {
                continue;
            }
            let Some(addr) = p.addr() else { continue };
            let cost = encoded_value_len(&addr);
            if spent + cost > byte_budget {
                break;
            }
            spent += cost;
            sample.push(addr);
        }
        sample
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
        self.swarms.retain(|_, peers| {
            removed.peers += peers.expire(now_s);
            let empty = peers.as_slice().is_empty();
            removed.info_hashes += usize::from(empty);
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

    fn peer(n: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, (n >> 8) as u8, n as u8], 6881))
    }

    #[test]
    fn announces_are_stored_refreshed_and_expire() {
        let t0 = crate::test_epoch();
        let cfg = PeerStoreConfig {
            peer_ttl: Duration::from_secs(600),
            ..Default::default()
        };
        let mut s = PeerStore::new(t0, cfg);
        assert_eq!(s.announce(t0, ih(1), peer(1)), AnnounceOutcome::Stored);
        assert_eq!(s.announce(t0, ih(1), peer(1)), AnnounceOutcome::Refreshed);
        assert_eq!(
            s.stats(),
            StoreStats {
                info_hashes: 1,
                peers: 1
            }
        );
        // Refreshed at t0+500: lives until t0+1100.
        s.announce(t0 + Duration::from_secs(500), ih(1), peer(1));
        s.announce(t0, ih(2), peer(2));
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

    #[test]
    fn caps_refuse_new_entries_but_not_refreshes() {
        let t0 = crate::test_epoch();
        let cfg = PeerStoreConfig {
            max_info_hashes: 2,
            max_peers_per_info_hash: 3,
            ..Default::default()
        };
        let mut s = PeerStore::new(t0, cfg);
        for n in 0..3 {
            assert_eq!(s.announce(t0, ih(1), peer(n)), AnnounceOutcome::Stored);
        }
        assert_eq!(
            s.announce(t0, ih(1), peer(9)),
            AnnounceOutcome::Rejected(StoreFull::PeersPerInfoHash)
        );
        assert_eq!(s.announce(t0, ih(1), peer(0)), AnnounceOutcome::Refreshed);
        s.announce(t0, ih(2), peer(0));
        assert_eq!(
            s.announce(t0, ih(3), peer(0)),
            AnnounceOutcome::Rejected(StoreFull::InfoHashes)
        );
        assert_eq!(
            s.stats(),
            StoreStats {
                info_hashes: 2,
                peers: 4
            }
        );
    }

    #[test]
    fn a_full_swarm_makes_room_from_expired_peers() {
        let t0 = crate::test_epoch();
        let cfg = PeerStoreConfig {
            max_peers_per_info_hash: 2,
            peer_ttl: Duration::from_secs(60),
            ..Default::default()
        };
        let mut s = PeerStore::new(t0, cfg);
        s.announce(t0, ih(1), peer(1));
        s.announce(t0, ih(1), peer(2));
        let later = t0 + Duration::from_secs(61);
        assert_eq!(s.announce(later, ih(1), peer(3)), AnnounceOutcome::Stored);
        assert_eq!(s.stats().peers, 1);
    }

    /// BEP 32: replies should stay under 1024 bytes, so a sample is cut to a
    /// byte budget, and it is a random subset without repeats.
    #[test]
    fn samples_fit_the_budget_and_vary() {
        let t0 = crate::test_epoch();
        let mut s = PeerStore::new(t0, PeerStoreConfig::default());
        for n in 0..300 {
            s.announce(t0, ih(1), peer(n));
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
        let mut s = PeerStore::new(t0, cfg);
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(s.announce(t0, ih(1), peer(1)), AnnounceOutcome::Stored);
        assert_eq!(s.announce(t0, ih(1), peer(1)), AnnounceOutcome::Refreshed);
        let t30 = t0 + Duration::from_secs(30);
        assert_eq!(s.announce(t30, ih(1), peer(2)), AnnounceOutcome::Stored);
        assert_eq!(s.announce(t30, ih(1), peer(3)), AnnounceOutcome::Stored);
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
        assert_eq!(s.announce(t80, ih(1), peer(2)), AnnounceOutcome::Refreshed);
        let t91 = t0 + Duration::from_secs(91);
        assert_eq!(
            s.expire(t91),
            StoreStats {
                info_hashes: 0,
                peers: 1
            }
        );
        assert_eq!(s.sample(t91, &mut rng, &ih(1), 1000), [peer(2)]);
        assert_eq!(s.announce(t91, ih(1), peer(4)), AnnounceOutcome::Stored);
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
        let mut s = PeerStore::new(t0, cfg);
        for n in 0..30 {
            s.announce(t0, ih(1), peer(n));
        }
        let later = t0 + Duration::from_secs(30);
        for n in 30..90 {
            s.announce(later, ih(1), peer(n));
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
