//! The nodes closest to a target, found bucket by bucket.
//!
//! Bucket *i* holds the nodes whose id shares exactly *i* leading bits with
//! ours (the last bucket, at least that many). For a target that falls in
//! bucket *b*, this layout orders whole buckets by their distance to it:
//! first bucket *b* (its nodes share more than *b* bits with the target),
//! then all the buckets past *b* together (exactly *b* bits), then bucket
//! *b − 1*, *b − 2*, … (exactly *i* bits). So the k closest come from
//! sorting a bucket or a few, never the whole table: a `find_node` or
//! `get_peers` answer touches about k nodes however large the table grows.
//! libtorrent's `routing_table::find_node` walks its buckets in the same
//! order.

use std::ops::Range;

use crate::compact::NodeInfo;
use crate::id::{Distance, NodeId};

/// The `n` nodes of `nodes` closest to `target`, closest first, by a full
/// scan. For node lists that are not grouped by bucket (a lookup's
/// candidates, a reply's nodes).
pub fn closest_among(
    nodes: impl IntoIterator<Item = NodeInfo>,
    target: &NodeId,
    n: usize,
) -> Vec<NodeInfo> {
    let mut all: Vec<(Distance, NodeInfo)> = nodes
        .into_iter()
        .map(|info| (target.distance(&info.id), info))
        .collect();
    if all.len() > n && n > 0 {
        all.select_nth_unstable_by_key(n - 1, |(d, _)| *d);
    }
    all.truncate(n);
    all.sort_unstable_by_key(|(d, _)| *d);
    all.into_iter().map(|(_, info)| info).collect()
}

/// The bucket of `target` in a table of `bucket_count` buckets around `own`.
fn bucket_of(own: &NodeId, target: &NodeId, bucket_count: usize) -> usize {
    (own.distance(target).leading_zeros() as usize).min(bucket_count - 1)
}

/// Nodes gathered for [`closest_in_buckets`], each with its distance.
/// Held by reference, so that sorting moves 32 bytes per node, not a
/// whole `NodeInfo`.
pub(super) struct Gathered<'t, 'a> {
    target: &'t NodeId,
    found: Vec<(Distance, &'a NodeInfo)>,
}

impl<'a> Gathered<'_, 'a> {
    /// Adds a node of the bucket being gathered.
    pub(super) fn push(&mut self, info: &'a NodeInfo) {
        self.found.push((self.target.distance(&info.id), info));
    }
}

/// The `n` nodes closest to `target` in a table of `bucket_count` buckets
/// around `own`, closest first. `bucket(i, gathered)` pushes the nodes of
/// bucket `i` that may be returned.
pub(super) fn closest_in_buckets<'a>(
    own: &NodeId,
    target: &NodeId,
    bucket_count: usize,
    n: usize,
    mut bucket: impl FnMut(usize, &mut Gathered<'_, 'a>),
) -> Vec<NodeInfo> {
    if bucket_count == 0 || n == 0 {
        return Vec::new();
    }
    let b = bucket_of(own, target, bucket_count);
    let mut g = Gathered {
        target,
        // Room for the few buckets a group holds, often more than n = k.
        found: Vec::with_capacity(4 * crate::K),
    };
    // Adds one group of buckets, equally far as a whole, in distance order;
    // says whether `n` nodes are found.
    let mut group = |buckets: Range<usize>, g: &mut Gathered<'_, 'a>| {
        let start = g.found.len();
        for i in buckets {
            bucket(i, g);
        }
        g.found[start..].sort_unstable_by_key(|(d, _)| *d);
        g.found.len() >= n
    };
    let done = group(b..b + 1, &mut g) || group(b + 1..bucket_count, &mut g);
    if !done {
        for i in (0..b).rev() {
            if group(i..i + 1, &mut g) {
                break;
            }
        }
    }
    g.found.iter().take(n).map(|(_, info)| **info).collect()
}

/// The routing table's nodes at one moment, grouped by bucket: what an
/// actor that answers queries without owning the table (the announce
/// store) needs to find the closest nodes as cheaply as the table does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSnapshot {
    own_id: NodeId,
    nodes: Vec<NodeInfo>,
    /// Where each bucket's nodes end in `nodes`, bucket 0 first.
    ends: Vec<usize>,
}

impl NodeSnapshot {
    /// A snapshot with no nodes.
    pub fn empty(own_id: NodeId) -> Self {
        NodeSnapshot {
            own_id,
            nodes: Vec::new(),
            ends: Vec::new(),
        }
    }

    /// A snapshot of `buckets`, bucket 0 (the farthest) first.
    /// `room` is the most nodes they hold: the snapshot is allocated once.
    pub(super) fn from_buckets<'a>(
        own_id: NodeId,
        room: usize,
        buckets: impl ExactSizeIterator<Item = impl IntoIterator<Item = &'a NodeInfo>>,
    ) -> Self {
        let mut snapshot = NodeSnapshot {
            own_id,
            nodes: Vec::with_capacity(room),
            ends: Vec::with_capacity(buckets.len()),
        };
        for bucket in buckets {
            snapshot.nodes.extend(bucket.into_iter().copied());
            snapshot.ends.push(snapshot.nodes.len());
        }
        snapshot
    }

    /// Nodes held.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether it holds no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every node, bucket 0 first.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// The `n` nodes closest to `target`, closest first.
    pub fn closest(&self, target: &NodeId, n: usize) -> Vec<NodeInfo> {
        closest_in_buckets(&self.own_id, target, self.ends.len(), n, |i, g| {
            let start = if i == 0 { 0 } else { self.ends[i - 1] };
            for info in &self.nodes[start..self.ends[i]] {
                g.push(info);
            }
        })
    }
}
