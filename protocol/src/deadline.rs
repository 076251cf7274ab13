//! A piece's next deadline, kept until the piece changes. Drivers ask for
//! it after every message; rescanning every entry each time was a fifth
//! (routing table) and a sixth (lookups) of a simulated node's time.

use std::cell::Cell;
use std::time::Instant;

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

    /// The owner changed: scan again when next asked.
    pub(crate) fn forget(&self) {
        self.0.set(None);
    }
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
}
