//! One k-bucket: its nodes, its replacement cache, and when it last changed.

use crate::family::host_key;
use std::time::{Duration, Instant};

use crate::compact::NodeInfo;
use crate::ip_prefix::IpPrefix;

use super::{NodeStatus, RoutingConfig};

/// How long a ping of a questionable node may stay unanswered before the
/// table asks for another one (the caller should report a failure sooner).
pub(super) const PING_GRACE: Duration = Duration::from_secs(60);

/// A node in a bucket or a replacement cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) info: NodeInfo,
    pub(super) last_response: Option<Instant>,
    pub(super) last_query: Option<Instant>,
    pub(super) failures: u8,
    pub(super) ping_sent: Option<Instant>,
    /// Its answers' round trip, smoothed (a quarter of each new one).
    pub(super) rtt: Option<Duration>,
    /// It answered a query of ours that its own query to us had not just
    /// let through a NAT (see [`super::NAT_MAPPING_MAX`]): it can be
    /// reached by others too.
    pub(super) reached: bool,
}

impl Entry {
    /// A node that answered at `now`, in `rtt` if that was measured.
    pub(super) fn responded(info: NodeInfo, now: Instant, rtt: Option<Duration>) -> Entry {
        Entry {
            info,
            last_response: Some(now),
            last_query: None,
            failures: 0,
            ping_sent: None,
            rtt,
            reached: true,
        }
    }

    /// It answered again at `now`, in `rtt` if that was measured: good
    /// again, its round trip smoothed.
    pub(super) fn answered_again(&mut self, now: Instant, rtt: Option<Duration>) {
        self.last_response = Some(now);
        self.failures = 0;
        self.ping_sent = None;
        if self
            .last_query
            .is_none_or(|q| now.saturating_duration_since(q) >= super::NAT_MAPPING_MAX)
        {
            self.reached = true;
        }
        if let Some(new) = rtt {
            self.rtt = Some(match self.rtt {
                Some(old) => (old * 3 + new) / 4,
                None => new,
            });
        }
    }

    /// BEP 5: good if it answered us within 15 minutes, or queried us within
    /// 15 minutes having answered before; bad after repeated failures;
    /// questionable otherwise.
    pub(super) fn status(&self, now: Instant, cfg: &RoutingConfig) -> NodeStatus {
        if self.is_bad(cfg) {
            return NodeStatus::Bad;
        }
        let recent = |t: Option<Instant>| {
            t.is_some_and(|t| now.saturating_duration_since(t) < cfg.questionable_after)
        };
        if recent(self.last_response) || (self.last_response.is_some() && recent(self.last_query)) {
            NodeStatus::Good
        } else {
            NodeStatus::Questionable
        }
    }

    /// Bad: failed too often in a row, whatever the time.
    pub(super) fn is_bad(&self, cfg: &RoutingConfig) -> bool {
        self.failures >= cfg.max_failures
    }

    /// Last time we heard from it in a way that keeps it good.
    pub(super) fn last_seen(&self) -> Option<Instant> {
        match (self.last_response, self.last_query) {
            (Some(r), Some(q)) => Some(r.max(q)),
            (Some(r), None) => Some(r),
            _ => None,
        }
    }

    /// When this entry turns questionable (if it is good now).
    pub(super) fn questionable_at(&self, cfg: &RoutingConfig) -> Option<Instant> {
        self.last_seen().map(|t| t + cfg.questionable_after)
    }

    pub(super) fn ping_pending(&self, now: Instant) -> bool {
        self.ping_sent
            .is_some_and(|t| now.saturating_duration_since(t) < PING_GRACE)
    }
}

#[derive(Debug, Clone)]
pub(super) struct Bucket {
    pub(super) nodes: Vec<Entry>,
    /// Most recently seen last.
    pub(super) replacements: Vec<Entry>,
    pub(super) last_changed: Instant,
}

impl Bucket {
    /// The place of the slowest good node whose round trip is over twice
    /// `rtt`, if any: a newcomer that answered that fast may take it.
    pub(super) fn slower_twice(
        &self,
        now: Instant,
        cfg: &RoutingConfig,
        rtt: Option<Duration>,
    ) -> Option<usize> {
        let rtt = rtt?;
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, e)| e.status(now, cfg) == NodeStatus::Good)
            .filter_map(|(i, e)| Some((e.rtt?, i)))
            .filter(|&(slow, _)| slow > rtt * 2)
            .max()
            .map(|(_, i)| i)
    }

    pub(super) fn new(now: Instant) -> Bucket {
        Bucket {
            nodes: Vec::new(),
            replacements: Vec::new(),
            last_changed: now,
        }
    }

    pub(super) fn has_ip(&self, info: &NodeInfo) -> bool {
        // An IPv6 host is its /64.
        let host = host_key(info.addr.ip());
        self.nodes
            .iter()
            .chain(&self.replacements)
            .any(|e| host_key(e.info.addr.ip()) == host && e.info.id != info.id)
    }

    /// Live entries of the bucket in `info`'s network (/24, /64), other
    /// than `info` itself.
    pub(super) fn in_prefix(&self, now: Instant, cfg: &RoutingConfig, info: &NodeInfo) -> usize {
        let prefix = IpPrefix::of(info.addr.ip());
        self.nodes
            .iter()
            .filter(|e| e.info.id != info.id && IpPrefix::of(e.info.addr.ip()) == prefix)
            .filter(|e| e.status(now, cfg) != NodeStatus::Bad)
            .count()
    }

    /// Adds to the replacement cache, replacing an older copy and the
    /// oldest of its network beyond `per_prefix`, and evicting the stalest
    /// when full.
    pub(super) fn cache(&mut self, entry: Entry, capacity: usize, per_prefix: usize) {
        self.replacements
            .retain(|e| e.info.id != entry.info.id && e.info.addr != entry.info.addr);
        let prefix = IpPrefix::of(entry.info.addr.ip());
        let same = |e: &Entry| IpPrefix::of(e.info.addr.ip()) == prefix;
        let crowd = self.replacements.iter().filter(|e| same(e)).count();
        if crowd >= per_prefix.max(1) {
            if let Some(oldest) = self.replacements.iter().position(same) {
                self.replacements.remove(oldest);
            }
        }
        if capacity == 0 {
            return;
        }
        if self.replacements.len() >= capacity {
            self.replacements.remove(0);
        }
        self.replacements.push(entry);
    }
}
