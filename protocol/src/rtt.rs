//! Round-trip times, measured as answers come, and the timeout they
//! suggest: what lookups and retransmissions wait for, instead of a fixed
//! guess.

use std::time::Duration;

/// Samples kept.
const WINDOW: usize = 64;
/// Samples before the estimate is used.
const MIN_SAMPLES: usize = 8;

/// Round-trip times measured recently, and the slot timeout they suggest:
/// half again the 90th percentile. A lookup frees a query's slot after it
/// (about one live node in ten gives up its slot early; its answer is still
/// taken when it comes), and the transaction layer retransmits after it,
/// so that a dead contact costs a fraction of the fixed timeouts.
#[derive(Debug, Clone)]
pub struct RttEstimate {
    /// The last [`WINDOW`] round trips in nanoseconds, in arrival order
    /// from `next` on once the window is full.
    arrived: [u64; WINDOW],
    /// The same round trips in ascending order: this runs on every answer,
    /// and keeping them sorted costs two short moves where taking the
    /// percentile afresh each time was most of its cost in a profile.
    sorted: [u64; WINDOW],
    len: usize,
    next: usize,
    timeout: Option<Duration>,
}

impl Default for RttEstimate {
    fn default() -> Self {
        RttEstimate {
            arrived: [0; WINDOW],
            sorted: [0; WINDOW],
            len: 0,
            next: 0,
            timeout: None,
        }
    }
}

impl RttEstimate {
    /// Adds one measured round trip.
    pub fn record(&mut self, rtt: Duration) {
        let nanos = u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX);
        if self.len == WINDOW {
            let oldest = self.arrived[self.next];
            let at = self.sorted.partition_point(|&s| s < oldest);
            self.sorted.copy_within(at + 1.., at);
            self.len -= 1;
        }
        self.arrived[self.next] = nanos;
        self.next = (self.next + 1) % WINDOW;
        let at = self.sorted[..self.len].partition_point(|&s| s < nanos);
        self.sorted.copy_within(at..self.len, at + 1);
        self.sorted[at] = nanos;
        self.len += 1;
        if self.len >= MIN_SAMPLES {
            let p90 = self.sorted[(self.len * 9 / 10).min(self.len - 1)];
            self.timeout = Some(Duration::from_nanos(p90) * 3 / 2);
        }
    }

    /// The suggested slot timeout; `None` until enough samples came.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slot_timeout_follows_the_90th_percentile_of_round_trips() {
        let mut e = RttEstimate::default();
        for ms in 1..=7 {
            e.record(Duration::from_millis(ms * 10));
        }
        assert_eq!(e.timeout(), None, "too few samples");
        for ms in 8..=100 {
            e.record(Duration::from_millis(ms * 10));
        }
        // The last 64 samples: 370 ms to 1 s; their 90th percentile is 940 ms.
        assert_eq!(e.timeout(), Some(Duration::from_millis(1410)));
    }

    /// Round trips in any order, repeats included: the kept order gives the
    /// 90th percentile of the last 64 as a sort of them would.
    #[test]
    fn the_window_in_order_matches_a_sort_of_the_last_64() {
        let mut e = RttEstimate::default();
        let mut all = Vec::new();
        let mut x: u64 = 7;
        for _ in 0..1000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let rtt = Duration::from_micros((x >> 33) % 3000);
            e.record(rtt);
            all.push(rtt);
            let mut last: Vec<Duration> = all.iter().rev().take(64).copied().collect();
            last.sort();
            let n = last.len();
            let want = (n >= 8).then(|| last[(n * 9 / 10).min(n - 1)] * 3 / 2);
            assert_eq!(e.timeout(), want);
        }
    }
}
