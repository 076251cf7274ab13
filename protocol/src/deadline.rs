//! A piece's next deadline, kept until the piece changes. Drivers ask for
//! it after every message; rescanning every entry each time was a fifth
//! (routing table) and a sixth (lookups) of a simulated node's time.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// The result of a deadline scan, or nothing until the next scan.
#[derive(Debug, Clone, Default)]
pub(crate) struct CachedDeadline(Cell<Option<Option<Instant>>>);

impl CachedDeadline {
    /// The kept deadline, or `scan`'s, kept from now on.
    pub(crate) fn get_or(&self, scan: impl FnOnce() -> Option<Instant>) -> Option<Instant> {
        if let Some(due) = self.0.get() {
            return due;
        }
        let due = scan();
        self.0.set(Some(due));
        due
    }

    /// The owner changed in a way that adds no deadline before `at` and
    /// moves none earlier: the kept deadline stays a lower bound (at worst
    /// its owner is asked once for nothing, and scans again), without a
    /// scan now.
    pub(crate) fn lower_to(&self, at: Instant) {
        if let Some(due) = self.0.get() {
            self.0.set(Some(Some(due.map_or(at, |d| d.min(at)))));
        }
    }

    /// The owner changed: scan again when next asked.
    pub(crate) fn forget(&self) {
        self.0.set(None);
    }
}

/// The first instant at or after `t` on the grid of `tick` from `from`:
/// when work due at `t` runs on a periodic tick.
pub(crate) fn tick_at_or_after(from: Instant, tick: Duration, t: Instant) -> Instant {
    let tick = tick.as_nanos().max(1);
    let since = t.saturating_duration_since(from).as_nanos();
    let ticks = since.div_ceil(tick);
    from + Duration::from_nanos((ticks * tick).min(u64::MAX as u128) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_once_until_forgotten() {
        let t0 = crate::test_epoch();
        let cache = CachedDeadline::default();
        let scans = Cell::new(0);
        let scan = || {
            scans.set(scans.get() + 1);
            Some(t0)
        };
        assert_eq!(cache.get_or(scan), Some(t0));
        assert_eq!(cache.get_or(scan), Some(t0));
        assert_eq!(scans.get(), 1);
        cache.forget();
        assert_eq!(cache.get_or(|| None), None);
        assert_eq!(cache.get_or(scan), None, "no deadline is kept too");
        assert_eq!(scans.get(), 1);
    }

    #[test]
    fn a_lowered_deadline_is_the_earlier_one_and_an_unknown_one_stays_unknown() {
        let t0 = crate::test_epoch();
        let later = t0 + std::time::Duration::from_secs(60);
        let cache = CachedDeadline::default();
        cache.lower_to(t0);
        assert_eq!(cache.get_or(|| Some(later)), Some(later), "scanned");
        cache.lower_to(t0);
        assert_eq!(cache.get_or(|| None), Some(t0));
        cache.lower_to(later);
        assert_eq!(cache.get_or(|| None), Some(t0));
        cache.forget();
        assert_eq!(cache.get_or(|| None), None);
        cache.lower_to(later);
        assert_eq!(cache.get_or(|| None), Some(later));
    }
}
