//! Addresses caught answering under more than one id (mldht's ID-change
//! detector): a Sybil that echoes whatever id it is asked for passes one
//! lookup's checks, but not the next lookup's, which asks it for another.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::id::NodeId;
use crate::rate_limit::{retain_and_shrink, sweep_due};

/// An id change at one address within this long is a lie; later, it may be
/// a restart.
pub const ID_CHANGE_WINDOW: Duration = Duration::from_secs(10 * 60);
/// How long a lying address is kept out of lookups.
pub const DISTRUST_FOR: Duration = Duration::from_secs(60 * 60);
/// Addresses remembered, and distrusted, at most (48 and 32 bytes each).
const ID_WATCH_CAPACITY: usize = 65_536;

/// The ids addresses answered with, and the addresses distrusted.
#[derive(Debug, Default)]
pub struct IdWatch {
    seen: HashMap<SocketAddr, (NodeId, Instant)>,
    distrusted: HashMap<IpAddr, Instant>,
    next_sweep: Option<Instant>,
}

impl IdWatch {
    /// `addr` answered as `id`. Returns whether that made its IP distrusted
    /// just now.
    pub fn observe(&mut self, now: Instant, addr: SocketAddr, id: NodeId) -> bool {
        if let Some((known, at)) = self.seen.get_mut(&addr) {
            let changed = *known != id && now.saturating_duration_since(*at) < ID_CHANGE_WINDOW;
            *known = id;
            *at = now;
            return changed && self.distrust(now, addr.ip());
        }
        self.sweep(now);
        if self.seen.len() >= ID_WATCH_CAPACITY {
            return false;
        }
        self.seen.insert(addr, (id, now));
        false
    }

    fn distrust(&mut self, now: Instant, ip: IpAddr) -> bool {
        if self.is_distrusted(now, ip) {
            return false;
        }
        self.sweep(now);
        if self.distrusted.len() >= ID_WATCH_CAPACITY {
            return false;
        }
        self.distrusted.insert(ip, now + DISTRUST_FOR);
        true
    }

    /// Forgets what has aged out, at most once per
    /// [`crate::rate_limit::FULL_SWEEP_EVERY`].
    fn sweep(&mut self, now: Instant) {
        if !sweep_due(&mut self.next_sweep, now) {
            return;
        }
        retain_and_shrink(&mut self.seen, |_, (_, at)| {
            now.saturating_duration_since(*at) < ID_CHANGE_WINDOW
        });
        retain_and_shrink(&mut self.distrusted, |_, until| *until > now);
    }

    /// Whether lookups should leave `ip` out.
    pub fn is_distrusted(&self, now: Instant, ip: IpAddr) -> bool {
        self.distrusted.get(&ip).is_some_and(|until| *until > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_that_changes_its_id_soon_is_distrusted_for_a_while() {
        let t0 = crate::test_epoch();
        let mut w = IdWatch::default();
        let a: SocketAddr = "192.0.2.1:6881".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:6881".parse().unwrap();
        assert!(!w.observe(t0, a, NodeId([1; 20])));
        assert!(!w.observe(t0, a, NodeId([1; 20])), "the same id again");
        assert!(!w.observe(t0, b, NodeId([2; 20])));
        let later = t0 + Duration::from_secs(5);
        assert!(
            w.observe(later, a, NodeId([3; 20])),
            "a new id within the window"
        );
        assert!(w.is_distrusted(later, a.ip()));
        assert!(!w.is_distrusted(later, b.ip()));
        assert!(!w.observe(later, a, NodeId([4; 20])), "already distrusted");
        assert!(!w.is_distrusted(later + DISTRUST_FOR, a.ip()));
        // A new id long after the last answer is a restart, not a lie.
        let much_later = later + ID_CHANGE_WINDOW;
        assert!(!w.observe(much_later, b, NodeId([5; 20])));
        assert!(!w.is_distrusted(much_later, b.ip()));
    }
}
