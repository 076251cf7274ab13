//! The routing table: k-buckets over the 160-bit id space (BEP 5).
//!
//! Nodes enter the table only after they have answered one of our queries
//! ([`RoutingTable::node_responded`]); nodes we merely hear about — in a
//! reply's `nodes`, or because they queried us — are reported as worth a
//! ping ([`RoutingTable::heard_about`]) and enter when they answer it. The
//! table sends nothing: its outcomes say whom the caller should ping.
//!
//! ## Where the policy departs from, or adds to, BEP 5
//!
//! - **Buckets.** Bucket *i* holds the nodes whose id shares exactly *i*
//!   leading bits with ours; the last bucket holds everything closer. Only
//!   the last bucket (the one covering our own id) splits, as in BEP 5; this
//!   is libtorrent's layout, with at most 160 buckets.
//! - **Verified entry only.** BEP 5 lets a node that queries us into the
//!   table; we ping it first, so that a spoofed source address cannot take a
//!   slot (libtorrent does the same for nodes it has not heard from).
//! - **Failures.** A node is bad after [`RoutingConfig::max_failures`]
//!   consecutive failures (2 by default; BEP 5 says "multiple"). A bad node
//!   is replaced at once from the replacement cache, or kept (and marked)
//!   until a newcomer takes its place.
//! - **Replacement cache.** Each bucket keeps up to
//!   [`RoutingConfig::replacement_cache`] nodes that answered us while it
//!   was full, most recent last; they are the first choice for replacing a
//!   bad node.
//! - **Questionable nodes.** A full bucket asked to take a newcomer returns
//!   [`InsertOutcome::PingOldest`] for its longest-silent questionable node
//!   and caches the newcomer; [`RoutingTable::poll_maintenance`] also asks
//!   for pings of questionable nodes, so the table stays fresh without
//!   waiting for newcomers (libtorrent pings the oldest node on a timer for
//!   the same reason).
//! - **Our k closest are kept.** A bucket that cannot split still takes a
//!   node that would be among the k closest to our own id that the table
//!   holds, up to 2k nodes (Kademlia §4.2: "nodes keep all valid contacts
//!   in a subtree of size at least k nodes, even if this requires
//!   splitting buckets in which the node's own ID does not reside"). On the
//!   real network our closest live in the buckets that split anyway; in a
//!   small network they can fall in a full bucket, and a node would not
//!   know its own neighbours.
//! - **One node per IP per bucket**, unless [`RoutingConfig::restrict_ips`]
//!   is off (test swarms on one address need that), and **at most
//!   [`RoutingConfig::max_per_prefix`] live nodes of one /24 (IPv4) or /64
//!   (IPv6) per bucket**, 1 by default as libtorrent's
//!   `restrict_routing_ips`: one party holds addresses of one network far
//!   more cheaply than of many, and without the rule one /24 could take all
//!   the buckets near our id, whose nodes we hand out to everyone. The
//!   replacement cache keeps the newest of a network's nodes.
//! - **Never** our own id, and never a read-only node (BEP 43).
//! - **Ids and addresses.** A known id answering from a new address is
//!   refused while the old entry is healthy (it may be spoofed); a known
//!   address answering with a new id replaces the old entry (the node
//!   restarted with a new id).
//! - **Verified ids first** ([`RoutingConfig::prefer_verified_ids`]): a
//!   full bucket trades a node whose id is not valid for its address under
//!   BEP 42 for one whose id is, and of two nodes of one network the
//!   verified one keeps the place (libtorrent's `prefer_verified_node_ids`).
//! - **Refreshes** ([`RoutingConfig::refresh`]): BEP 5 refreshes a quiet
//!   bucket with a find_node lookup of a random id in its range; we send
//!   one find_node for that id to the node we hold nearest it, as
//!   libtorrent does. Every node it names lies in the bucket's range, and
//!   the bucket fills as well: in a simulated network of 10^4 nodes the
//!   tables, lookups and announces were as good, for 17% fewer datagrams
//!   (most of them the bootstrap's refresh of every bucket).
//! - **Faster nodes first**, off by default ([`RoutingConfig::prefer_fast`]):
//!   BEP 5 discards a newcomer to a full bucket of good nodes; with it on,
//!   the bucket trades its slowest node for the newcomer when that
//!   answered in under half the node's smoothed round trip (libtorrent's
//!   last replacement rule, a form of proximity neighbour selection), and
//!   caches the one traded. Only full buckets trade, the far ones, which
//!   serve a lookup's first hops; the last hops go to nodes near the
//!   target, named from others' near buckets: simulated, it saved 3–4% of
//!   the time to a lookup's first peer and none of its end.

mod bucket;
mod closest;
mod reach;

use std::time::{Duration, Instant};

use rand::RngCore;

use crate::compact::NodeInfo;
use crate::deadline::CachedDeadline;
use crate::id::{BucketIndex, NodeId};
use crate::ip_prefix::IpPrefix;
use bucket::{Bucket, Entry};
pub use closest::{closest_among, NodeSnapshot};
pub use reach::QuerierReach;

/// Routing-table policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutingConfig {
    /// Nodes per bucket. Defaults to [`crate::K`] = 8.
    pub k: usize,
    /// Silence after which a node is questionable. Defaults to 15 minutes (BEP 5).
    pub questionable_after: Duration,
    /// Quiet time after which a bucket is refreshed. Defaults to 15 minutes (BEP 5).
    pub refresh_after: Duration,
    /// Consecutive failures that make a node bad. Defaults to 2.
    pub max_failures: u8,
    /// At most one node per IP address, and [`Self::max_per_prefix`] per
    /// network, in a bucket. Defaults to on; off lifts both.
    pub restrict_ips: bool,
    /// Live nodes of one /24 (IPv4) or /64 (IPv6) per bucket. Defaults to 1.
    pub max_per_prefix: usize,
    /// A full bucket, or a network's one place in it, goes to a node whose
    /// id is valid for its address (BEP 42) over one whose id is not.
    /// Defaults to on.
    pub prefer_verified_ids: bool,
    /// Replacement-cache size per bucket. Defaults to 8.
    pub replacement_cache: usize,
    /// The four farthest buckets hold 16, 8, 4 and 2 times k nodes
    /// (libtorrent's `dht_extended_routing_table`): half of all targets
    /// fall in the farthest bucket, and the k closest of 128 nodes there
    /// are four bits nearer the target than those of 8, which saves a
    /// lookup about one round trip. Defaults to off.
    pub extended_table: bool,
    /// How a quiet bucket is refreshed, and every bucket at the end of
    /// bootstrap. Defaults to [`BucketRefresh::OneQuery`].
    pub refresh: BucketRefresh,
    /// A full bucket of good nodes trades its slowest for a node that
    /// answered in under half that node's round trip (proximity neighbour
    /// selection; libtorrent's last replacement rule): lookups then go
    /// through nodes that answer sooner. The one it trades goes to the
    /// replacement cache. Defaults to off: in simulated networks of 10^4
    /// nodes it brought the first peer of a lookup 3–4% sooner and the
    /// lookup's end no sooner (README, "Defaults chosen by data").
    pub prefer_fast: bool,
}

/// How a bucket untouched for [`RoutingConfig::refresh_after`] is refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketRefresh {
    /// A find_node lookup of a random id in its range (BEP 5).
    Lookup,
    /// One find_node of a random id in its range, sent to the node nearest
    /// that id (libtorrent's `send_single_refresh`): every node it names
    /// falls in the bucket's range, and its answer marks the bucket fresh.
    OneQuery,
}

impl RoutingConfig {
    /// Nodes of one network a bucket's replacement cache keeps.
    fn prefix_share(&self) -> usize {
        if self.restrict_ips {
            self.max_per_prefix
        } else {
            usize::MAX
        }
    }

    /// Nodes bucket `index` (the number of leading bits shared with our
    /// id) holds.
    pub fn bucket_capacity(&self, index: usize) -> usize {
        const WIDER: [usize; 4] = [16, 8, 4, 2];
        match WIDER.get(index) {
            Some(times) if self.extended_table => self.k * times,
            _ => self.k,
        }
    }
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            k: crate::K,
            questionable_after: Duration::from_secs(15 * 60),
            refresh_after: Duration::from_secs(15 * 60),
            max_failures: 2,
            restrict_ips: true,
            max_per_prefix: 1,
            prefer_verified_ids: true,
            replacement_cache: 8,
            extended_table: false,
            refresh: BucketRefresh::OneQuery,
            prefer_fast: false,
        }
    }
}

/// Whether a node's id is valid for its address under BEP 42 (on a local
/// network, where BEP 42 cannot apply, every id is).
fn verified(info: &NodeInfo) -> bool {
    crate::id::bep42::is_valid(&info.id, info.addr.ip())
}

/// A node's standing (BEP 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeStatus {
    /// Answered recently.
    Good,
    /// Silent for a while.
    Questionable,
    /// Failed repeatedly.
    Bad,
}

/// How long a NAT may keep open the mapping a node's query to us opened:
/// until then, its answer to us says nothing of whether others can reach
/// it. RFC 4787 asks at least 2 minutes of a NAT, and recommends 5.
pub const NAT_MAPPING_MAX: Duration = Duration::from_secs(5 * 60);

/// Which nodes [`RoutingTable::closest`] may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeFilter {
    /// Only good nodes.
    Good,
    /// Good or questionable: every node that has answered us and is not bad.
    /// What a `find_node` answer or a lookup's seeds should use, since a
    /// quiet table has few strictly good nodes between refreshes.
    NotBad,
    /// Not bad, and reached other than through the NAT mapping its own
    /// query to us opened (what the size estimate counts: a node behind
    /// a NAT that keeps querying us stays good, and is no neighbour to
    /// anyone else).
    Reached,
}

/// Why a node was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// It is us.
    OwnId,
    /// It is read-only (BEP 43).
    ReadOnly,
    /// Its bucket already holds another node at that IP address.
    SameIp,
    /// Its bucket already holds its share of that address's /24 (/64).
    SamePrefix,
    /// Its id is in the table at another address.
    IdAtOtherAddress,
    /// Its bucket is full of good nodes and cannot split.
    BucketFull,
}

/// The result of [`RoutingTable::node_responded`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Added to a bucket.
    Inserted,
    /// Already there; its liveness was refreshed.
    Updated,
    /// Its bucket is full: it went to the replacement cache, and the caller
    /// should ping this questionable node (a failure makes room).
    PingOldest(NodeInfo),
    /// Its bucket is full and nobody is questionable: it went to the
    /// replacement cache.
    Cached,
    /// Not taken.
    Rejected(RejectReason),
}

/// The result of [`RoutingTable::heard_about`] and [`RoutingTable::node_queried`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeardOutcome {
    /// Already in the table (or its cache).
    Known,
    /// The table would take it: ping it, and report the answer.
    WorthPinging,
    /// Not wanted.
    Ignored(RejectReason),
}

/// The result of [`RoutingTable::node_failed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Not in the table.
    NotFound,
    /// One more failure; not bad yet.
    Failing(u8),
    /// Bad now, and no replacement was at hand; it stays until one comes.
    MarkedBad,
    /// Bad, and replaced by a node from the replacement cache.
    Replaced {
        /// The replacement.
        by: NodeInfo,
    },
    /// It was only in a replacement cache, and is gone from it.
    DroppedFromCache,
}

/// Upkeep the table wants done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Maintenance {
    /// Ping this questionable node.
    Ping(NodeInfo),
    /// Look up `target` (a random id in the bucket's range) to refresh the bucket.
    Refresh {
        /// The bucket.
        bucket: BucketIndex,
        /// The id to look up.
        target: NodeId,
    },
}

/// Per-bucket counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BucketStats {
    /// Good nodes.
    pub good: usize,
    /// Questionable nodes.
    pub questionable: usize,
    /// Bad nodes.
    pub bad: usize,
    /// Nodes in the replacement cache.
    pub replacements: usize,
}

impl BucketStats {
    fn plus(self, other: &BucketStats) -> BucketStats {
        BucketStats {
            good: self.good + other.good,
            questionable: self.questionable + other.questionable,
            bad: self.bad + other.bad,
            replacements: self.replacements + other.replacements,
        }
    }
}

/// Table-wide counts, for gauges and `stats`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoutingStats {
    /// Counts per bucket, bucket 0 (farthest) first.
    pub buckets: Vec<BucketStats>,
    /// Sum over the buckets.
    pub total: BucketStats,
}

/// The k-bucket routing table of one node.
///
/// ```
/// use std::time::Instant;
/// use dhtd_protocol::routing::{InsertOutcome, NodeFilter, RoutingConfig, RoutingTable};
/// use dhtd_protocol::{NodeId, NodeInfo};
///
/// let now = Instant::now(); // the caller's clock, passed in
/// let mut table = RoutingTable::new(NodeId([0; 20]), now, RoutingConfig::default());
/// let node = NodeInfo { id: NodeId([0x80; 20]), addr: "192.0.2.1:6881".parse().unwrap() };
/// // Only nodes that answered our queries get in.
/// assert_eq!(table.node_responded(now, node), InsertOutcome::Inserted);
/// assert_eq!(table.closest(now, &NodeId([0xff; 20]), 8, NodeFilter::Good), vec![node]);
/// ```
#[derive(Debug, Clone)]
pub struct RoutingTable {
    own_id: NodeId,
    buckets: Vec<Bucket>,
    config: RoutingConfig,
    /// [`Self::poll_timeout`], until the table next changes.
    next_due: CachedDeadline,
}

impl RoutingTable {
    /// An empty table for `own_id`.
    pub fn new(own_id: NodeId, now: Instant, config: RoutingConfig) -> Self {
        RoutingTable {
            own_id,
            buckets: vec![Bucket::new(now)],
            config,
            next_due: CachedDeadline::default(),
        }
    }

    /// Our id.
    pub fn own_id(&self) -> NodeId {
        self.own_id
    }

    /// The policy in force.
    pub fn config(&self) -> &RoutingConfig {
        &self.config
    }

    /// Number of buckets.
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// Nodes in buckets (not counting replacement caches).
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.nodes.len()).sum()
    }

    /// Whether no bucket holds a node.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bucket that covers `id`.
    pub fn bucket_index(&self, id: &NodeId) -> BucketIndex {
        let shared = self.own_id.distance(id).leading_zeros() as usize;
        BucketIndex(shared.min(self.buckets.len() - 1) as u8)
    }

    /// Whether `id` is in a bucket.
    pub fn contains(&self, id: &NodeId) -> bool {
        let b = &self.buckets[usize::from(self.bucket_index(id).0)];
        b.nodes.iter().any(|e| e.info.id == *id)
    }

    /// The status of `id`, if it is in a bucket.
    pub fn status(&self, now: Instant, id: &NodeId) -> Option<NodeStatus> {
        let b = &self.buckets[usize::from(self.bucket_index(id).0)];
        b.nodes
            .iter()
            .find(|e| e.info.id == *id)
            .map(|e| e.status(now, &self.config))
    }

    fn can_split(&self, index: usize) -> bool {
        index == self.buckets.len() - 1 && self.buckets.len() < 160
    }

    fn split_last(&mut self, now: Instant) {
        let index = self.buckets.len() - 1;
        let own = self.own_id;
        let moves = |e: &Entry| own.distance(&e.info.id).leading_zeros() as usize > index;
        let last = &mut self.buckets[index];
        let mut next = Bucket::new(now);
        let (far, near): (Vec<Entry>, Vec<Entry>) = last.nodes.drain(..).partition(|e| !moves(e));
        last.nodes = far;
        next.nodes = near;
        let (far, near): (Vec<Entry>, Vec<Entry>) =
            last.replacements.drain(..).partition(|e| !moves(e));
        last.replacements = far;
        next.replacements = near;
        next.last_changed = last.last_changed;
        // A wider bucket's near half can outnumber the narrower bucket it
        // moves to: the stalest go to its replacement cache.
        let capacity = self.config.bucket_capacity(index + 1);
        if next.nodes.len() > capacity {
            next.nodes.sort_by_key(|e| std::cmp::Reverse(e.last_seen()));
            let per_prefix = self.config.prefix_share();
            for e in next.nodes.split_off(capacity).into_iter().rev() {
                next.cache(e, self.config.replacement_cache, per_prefix);
            }
        }
        self.buckets.push(next);
    }

    /// A node answered one of our queries: the only way into the table.
    pub fn node_responded(&mut self, now: Instant, info: NodeInfo) -> InsertOutcome {
        self.node_responded_in(now, info, None)
    }

    /// [`RoutingTable::node_responded`], with the round trip of the answer
    /// when it was measured (see [`RoutingConfig::prefer_fast`]).
    pub fn node_responded_in(
        &mut self,
        now: Instant,
        info: NodeInfo,
        rtt: Option<Duration>,
    ) -> InsertOutcome {
        if info.id == self.own_id {
            return InsertOutcome::Rejected(RejectReason::OwnId);
        }
        let cfg = self.config;
        // The common case, first and without scanning the table: a node we
        // hold answers again from the address we hold. Its deadlines move
        // later but for the two set here, so the next one needs no scan.
        let index = usize::from(self.bucket_index(&info.id).0);
        let bucket = &mut self.buckets[index];
        if let Some(e) = bucket.nodes.iter_mut().find(|e| e.info == info) {
            e.answered_again(now, rtt);
            bucket.last_changed = now;
            let questionable = e.questionable_at(&cfg).unwrap_or(now);
            self.next_due
                .lower_to(questionable.min(now + cfg.refresh_after));
            return InsertOutcome::Updated;
        }
        self.next_due.forget();
        // The same address under another id: the node restarted; forget the old id.
        self.forget_address_with_other_id(&info);
        loop {
            let index = usize::from(self.bucket_index(&info.id).0);
            let can_split = self.can_split(index);
            let bucket = &mut self.buckets[index];
            if let Some(e) = bucket.nodes.iter_mut().find(|e| e.info.id == info.id) {
                if e.info.addr != info.addr {
                    if e.status(now, &cfg) != NodeStatus::Bad {
                        return InsertOutcome::Rejected(RejectReason::IdAtOtherAddress);
                    }
                    e.info.addr = info.addr;
                }
                e.answered_again(now, rtt);
                bucket.last_changed = now;
                return InsertOutcome::Updated;
            }
            if cfg.restrict_ips && bucket.has_ip(&info) {
                return InsertOutcome::Rejected(RejectReason::SameIp);
            }
            if cfg.restrict_ips && bucket.in_prefix(now, &cfg, &info) >= cfg.max_per_prefix {
                // libtorrent's rule: the node we hold keeps its place,
                // unless only the newcomer's id is valid for its address.
                let prefix = IpPrefix::of(info.addr.ip());
                let unverified = bucket
                    .nodes
                    .iter_mut()
                    .find(|e| IpPrefix::of(e.info.addr.ip()) == prefix && !verified(&e.info));
                return match unverified {
                    Some(e) if cfg.prefer_verified_ids && verified(&info) => {
                        *e = Entry::responded(info, now, rtt);
                        bucket.last_changed = now;
                        InsertOutcome::Inserted
                    }
                    _ => InsertOutcome::Rejected(RejectReason::SamePrefix),
                };
            }
            if bucket.nodes.len() < cfg.bucket_capacity(index) {
                bucket.replacements.retain(|e| e.info.id != info.id);
                bucket.nodes.push(Entry::responded(info, now, rtt));
                bucket.last_changed = now;
                return InsertOutcome::Inserted;
            }
            if let Some(bad) = bucket
                .nodes
                .iter_mut()
                .find(|e| e.status(now, &cfg) == NodeStatus::Bad)
            {
                *bad = Entry::responded(info, now, rtt);
                bucket.replacements.retain(|e| e.info.id != info.id);
                bucket.last_changed = now;
                return InsertOutcome::Inserted;
            }
            if can_split {
                self.split_last(now);
                continue;
            }
            if bucket.nodes.len() < 2 * cfg.k && self.among_our_closest(now, &info.id) {
                // Kademlia §4.2: keep every contact of the subtree of at
                // least k nodes around us, even in a bucket that cannot split.
                let bucket = &mut self.buckets[index];
                bucket.replacements.retain(|e| e.info.id != info.id);
                bucket.nodes.push(Entry::responded(info, now, rtt));
                bucket.last_changed = now;
                return InsertOutcome::Inserted;
            }
            let bucket = &mut self.buckets[index];
            if cfg.prefer_verified_ids && verified(&info) {
                // A full bucket trades its longest-silent node whose id is
                // not valid for its address for one whose id is
                // (libtorrent's `prefer_verified_node_ids`): a place near
                // an id is then bought with an address that hashes near it.
                let unverified = bucket
                    .nodes
                    .iter_mut()
                    .filter(|e| !verified(&e.info))
                    .min_by_key(|e| e.last_seen());
                if let Some(e) = unverified {
                    *e = Entry::responded(info, now, rtt);
                    bucket.replacements.retain(|r| r.info.id != info.id);
                    bucket.last_changed = now;
                    return InsertOutcome::Inserted;
                }
            }
            let per_prefix = cfg.prefix_share();
            if let Some(slowest) = cfg
                .prefer_fast
                .then(|| bucket.slower_twice(now, &cfg, rtt))
                .flatten()
            {
                let traded =
                    std::mem::replace(&mut bucket.nodes[slowest], Entry::responded(info, now, rtt));
                bucket.replacements.retain(|r| r.info.id != info.id);
                bucket.cache(traded, cfg.replacement_cache, per_prefix);
                bucket.last_changed = now;
                return InsertOutcome::Inserted;
            }
            bucket.cache(
                Entry::responded(info, now, rtt),
                cfg.replacement_cache,
                per_prefix,
            );
            let oldest = bucket
                .nodes
                .iter_mut()
                .filter(|e| e.status(now, &cfg) == NodeStatus::Questionable && !e.ping_pending(now))
                .min_by_key(|e| e.last_seen());
            return match oldest {
                Some(e) => {
                    e.ping_sent = Some(now);
                    InsertOutcome::PingOldest(e.info)
                }
                None => InsertOutcome::Cached,
            };
        }
    }

    /// Whether `id` would be among the k nodes closest to our own id that
    /// the table holds.
    ///
    /// Counted, not gathered: fewer than k nodes not bad are at least as
    /// close (`id` itself among them, if held). Every node of a bucket past
    /// `id`'s shares more leading bits with our id, so is closer; the count
    /// starts from the deepest bucket and stops at k. This runs for most
    /// nodes an answer names.
    fn among_our_closest(&self, now: Instant, id: &NodeId) -> bool {
        let k = self.config.k;
        let distance = self.own_id.distance(id);
        let its_bucket = usize::from(self.bucket_index(id).0);
        let mut as_close = 0;
        for i in (its_bucket..self.buckets.len()).rev() {
            for e in &self.buckets[i].nodes {
                let as_close_as_it = i > its_bucket || self.own_id.distance(&e.info.id) <= distance;
                if as_close_as_it && self.passes(now, e, NodeFilter::NotBad) {
                    as_close += 1;
                    if as_close >= k {
                        return false;
                    }
                }
            }
        }
        true
    }

    fn forget_address_with_other_id(&mut self, info: &NodeInfo) {
        for b in &mut self.buckets {
            b.nodes
                .retain(|e| e.info.addr != info.addr || e.info.id == info.id);
        }
    }

    /// We learned of a node (from a reply's `nodes`, or a saved table):
    /// whether it is worth pinging to add it.
    pub fn heard_about(&self, now: Instant, info: &NodeInfo) -> HeardOutcome {
        if info.id == self.own_id {
            return HeardOutcome::Ignored(RejectReason::OwnId);
        }
        let index = usize::from(self.bucket_index(&info.id).0);
        let bucket = &self.buckets[index];
        if bucket
            .nodes
            .iter()
            .chain(&bucket.replacements)
            .any(|e| e.info.id == info.id)
        {
            return HeardOutcome::Known;
        }
        if self.config.restrict_ips && bucket.has_ip(info) {
            return HeardOutcome::Ignored(RejectReason::SameIp);
        }
        if self.config.restrict_ips
            && bucket.in_prefix(now, &self.config, info) >= self.config.max_per_prefix
        {
            return HeardOutcome::Ignored(RejectReason::SamePrefix);
        }
        let has_room = bucket.nodes.len() < self.config.bucket_capacity(index)
            || self.can_split(index)
            || bucket
                .nodes
                .iter()
                .any(|e| e.status(now, &self.config) == NodeStatus::Bad)
            || (bucket.nodes.len() < 2 * self.config.k && self.among_our_closest(now, &info.id));
        if has_room {
            HeardOutcome::WorthPinging
        } else {
            HeardOutcome::Ignored(RejectReason::BucketFull)
        }
    }

    /// A node sent us a query. If it is in the table this keeps it good
    /// (BEP 5: it answered before and queries us now); otherwise it is
    /// judged like [`RoutingTable::heard_about`]. BEP 43: read-only nodes
    /// are never taken.
    pub fn node_queried(&mut self, now: Instant, info: &NodeInfo, read_only: bool) -> HeardOutcome {
        // Hearing from a node only moves its deadline later: the next one
        // is still the kept one, at worst early.
        if read_only {
            return HeardOutcome::Ignored(RejectReason::ReadOnly);
        }
        let index = usize::from(self.bucket_index(&info.id).0);
        if let Some(e) = self.buckets[index]
            .nodes
            .iter_mut()
            .find(|e| e.info.id == info.id && e.info.addr == info.addr)
        {
            e.last_query = Some(now);
            return HeardOutcome::Known;
        }
        self.heard_about(now, info)
    }

    /// The node answered a ping we sent right after it queried us at
    /// `queried_at`: a NAT in front of it would have let the ping through,
    /// so the answer does not show it reached (see [`NAT_MAPPING_MAX`]).
    pub fn answered_after_its_query(&mut self, info: &NodeInfo, queried_at: Instant) {
        let index = usize::from(self.bucket_index(&info.id).0);
        if let Some(e) = self.buckets[index]
            .nodes
            .iter_mut()
            .find(|e| e.info == *info && e.last_query.is_none_or(|q| q <= queried_at))
        {
            e.last_query = Some(queried_at);
            e.reached = false;
        }
    }

    /// A query to this node failed (timed out, or it answered an error).
    pub fn node_failed(
        &mut self,
        now: Instant,
        id: &NodeId,
        addr: std::net::SocketAddr,
    ) -> FailOutcome {
        let cfg = self.config;
        let index = usize::from(self.bucket_index(id).0);
        let bucket = &mut self.buckets[index];
        if let Some(pos) = bucket
            .nodes
            .iter()
            .position(|e| e.info.id == *id && e.info.addr == addr)
        {
            // Most failures are of nodes a lookup met, not of ours: only
            // ours have deadlines.
            self.next_due.forget();
            let e = &mut bucket.nodes[pos];
            e.failures = e.failures.saturating_add(1);
            e.ping_sent = None;
            if e.status(now, &cfg) != NodeStatus::Bad {
                return FailOutcome::Failing(e.failures);
            }
            return match bucket.replacements.pop() {
                Some(replacement) => {
                    let by = replacement.info;
                    bucket.nodes[pos] = replacement;
                    bucket.last_changed = now;
                    FailOutcome::Replaced { by }
                }
                None => FailOutcome::MarkedBad,
            };
        }
        let before = bucket.replacements.len();
        bucket
            .replacements
            .retain(|e| !(e.info.id == *id && e.info.addr == addr));
        if bucket.replacements.len() < before {
            FailOutcome::DroppedFromCache
        } else {
            FailOutcome::NotFound
        }
    }

    /// The `n` nodes closest to `target` that pass `filter`, closest first.
    /// Sorts about `n` nodes, not the table (see [`closest`]).
    pub fn closest(
        &self,
        now: Instant,
        target: &NodeId,
        n: usize,
        filter: NodeFilter,
    ) -> Vec<NodeInfo> {
        closest::closest_in_buckets(&self.own_id, target, self.buckets.len(), n, |i, g| {
            for e in &self.buckets[i].nodes {
                if self.passes(now, e, filter) {
                    g.push(&e.info);
                }
            }
        })
    }

    /// The nodes that pass `filter`, grouped by bucket, for answering
    /// queries elsewhere.
    pub fn snapshot(&self, now: Instant, filter: NodeFilter) -> NodeSnapshot {
        NodeSnapshot::from_buckets(
            self.own_id,
            self.buckets.iter().map(|b| b.nodes.len()).sum(),
            self.buckets.iter().map(|b| {
                b.nodes
                    .iter()
                    .filter(move |e| self.passes(now, e, filter))
                    .map(|e| &e.info)
            }),
        )
    }

    fn passes(&self, now: Instant, e: &Entry, filter: NodeFilter) -> bool {
        match filter {
            NodeFilter::Good => e.status(now, &self.config) == NodeStatus::Good,
            // Bad is a count of failures, not a matter of time: no clock
            // arithmetic for each node a find_node answer looks at.
            NodeFilter::NotBad => !e.is_bad(&self.config),
            NodeFilter::Reached => e.reached && !e.is_bad(&self.config),
        }
    }

    /// The nodes in bucket `index`, for inspection and tests.
    pub fn bucket_nodes(&self, index: BucketIndex) -> Vec<NodeInfo> {
        self.buckets
            .get(usize::from(index.0))
            .map(|b| b.nodes.iter().map(|e| e.info).collect())
            .unwrap_or_default()
    }

    /// Every node in the buckets (for saving the table).
    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.buckets
            .iter()
            .flat_map(|b| &b.nodes)
            .map(|e| e.info)
            .collect()
    }

    /// The next piece of upkeep due at `now`, if any. Call until `None`.
    /// Each call hands out a node or bucket once: a pinged node is not
    /// returned again until the ping is answered, fails, or a minute passes;
    /// a refreshed bucket counts as changed.
    pub fn poll_maintenance(
        &mut self,
        now: Instant,
        rng: &mut impl RngCore,
    ) -> Option<Maintenance> {
        self.next_due.forget();
        let cfg = self.config;
        for b in &mut self.buckets {
            if let Some(e) = b
                .nodes
                .iter_mut()
                .find(|e| e.status(now, &cfg) == NodeStatus::Questionable && !e.ping_pending(now))
            {
                e.ping_sent = Some(now);
                return Some(Maintenance::Ping(e.info));
            }
        }
        let last = self.buckets.len() - 1;
        let own = self.own_id;
        for (i, b) in self.buckets.iter_mut().enumerate() {
            if now.saturating_duration_since(b.last_changed) >= cfg.refresh_after {
                b.last_changed = now;
                let target = own.random_at_prefix(i as u32, i == last, rng);
                return Some(Maintenance::Refresh {
                    bucket: BucketIndex(i as u8),
                    target,
                });
            }
        }
        None
    }

    /// A random id in the range of each bucket, for a full refresh (at the
    /// end of bootstrap).
    pub fn refresh_targets(&self, rng: &mut impl RngCore) -> Vec<NodeId> {
        let last = self.buckets.len() - 1;
        (0..self.buckets.len())
            .map(|i| self.own_id.random_at_prefix(i as u32, i == last, rng))
            .collect()
    }

    /// When [`RoutingTable::poll_maintenance`] will next have work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_due.get_or(|| self.scan_deadlines())
    }

    fn scan_deadlines(&self) -> Option<Instant> {
        let cfg = &self.config;
        let refresh = self
            .buckets
            .iter()
            .map(|b| b.last_changed + cfg.refresh_after);
        // Exactly when poll_maintenance would hand the entry out: it is
        // questionable and no ping of it is pending. A deadline at the
        // end of a ping's grace alone would be in the past for good once
        // the node turned good again by querying us.
        let pings = self.buckets.iter().flat_map(|b| &b.nodes).filter_map(|e| {
            if e.failures >= cfg.max_failures {
                return None;
            }
            let questionable = e.questionable_at(cfg)?;
            Some(match e.ping_sent {
                Some(sent) => questionable.max(sent + bucket::PING_GRACE),
                None => questionable,
            })
        });
        refresh.chain(pings).min()
    }

    /// Counts by bucket and status.
    pub fn stats(&self, now: Instant) -> RoutingStats {
        let buckets: Vec<BucketStats> = self
            .buckets
            .iter()
            .map(|b| self.bucket_stats(now, b))
            .collect();
        let total = buckets
            .iter()
            .fold(BucketStats::default(), BucketStats::plus);
        RoutingStats { buckets, total }
    }

    /// The sum over the buckets alone: what the gauges need, without the
    /// allocation of a count per bucket (the gauges follow every change).
    pub fn totals(&self, now: Instant) -> BucketStats {
        self.buckets
            .iter()
            .map(|b| self.bucket_stats(now, b))
            .fold(BucketStats::default(), |sum, s| sum.plus(&s))
    }

    fn bucket_stats(&self, now: Instant, b: &Bucket) -> BucketStats {
        let mut s = BucketStats {
            replacements: b.replacements.len(),
            ..Default::default()
        };
        for e in &b.nodes {
            match e.status(now, &self.config) {
                NodeStatus::Good => s.good += 1,
                NodeStatus::Questionable => s.questionable += 1,
                NodeStatus::Bad => s.bad += 1,
            }
        }
        s
    }

    /// Estimated number of nodes in the whole DHT, from how close our
    /// nearest neighbours are: in a uniform id space with N nodes the i-th
    /// closest is about i·2¹⁶⁰/N away. N comes from the least-squares fit
    /// of that line through the k closest distances. (An average of
    /// i·2¹⁶⁰/dᵢ, the estimate before, is dominated by the nearest node's
    /// 1/d, whose mean is unbounded: 1.4 to 1.6 times N in simulated
    /// networks.) `None` with fewer than two known nodes.
    pub fn estimated_dht_size(&self, now: Instant) -> Option<u64> {
        let closest = self.closest(now, &self.own_id, self.config.k, NodeFilter::Reached);
        if closest.len() < 2 {
            return None;
        }
        let (mut ranks, mut weighted) = (0.0, 0.0);
        for (i, node) in closest.iter().enumerate() {
            let rank = i as f64 + 1.0;
            ranks += rank * rank;
            weighted += rank * self.own_id.distance(&node.id).as_f64();
        }
        Some((2f64.powi(160) * ranks / weighted.max(1.0)) as u64)
    }
}

#[cfg(test)]
mod tests;
