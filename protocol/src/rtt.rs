//! Round-trip times, measured as answers come, and the timeout they
//! suggest: what lookups and retransmissions wait for, instead of a fixed
//! guess.

use std::collections::VecDeque;
use std::time::Duration;

/// Round-trip times measured recently, and the slot timeout they suggest:
/// half again the 90th percentile. A lookup frees a query's slot after it
/// (about one live node in ten gives up its slot early; its answer is still
/// taken when it comes), and the transaction layer retransmits after it,
/// so that a dead contact costs a fraction of the fixed timeouts.
#[derive(Debug, Clone, Default)]
pub struct RttEstimate {
    samples: VecDeque<Duration>,
    timeout: Option<Duration>,
}

impl RttEstimate {
    /// Samples kept.
    const WINDOW: usize = 64;
    /// Samples before the estimate is used.
    const MIN_SAMPLES: usize = 8;

    /// Adds one measured round trip.
    pub fn record(&mut self, rtt: Duration) {
        if self.samples.len() == Self::WINDOW {
            self.samples.pop_front();
        }
        self.samples.push_back(rtt);
        if self.samples.len() >= Self::MIN_SAMPLES {
            // On the stack: this runs on every answer, and an allocation
            // each time was most of its cost in the simulator's profile.
            let mut window = [Duration::ZERO; Self::WINDOW];
            let n = self.samples.len();
            for (slot, sample) in window.iter_mut().zip(&self.samples) {
                *slot = *sample;
            }
            let sorted = &mut window[..n];
            let at = (n * 9 / 10).min(n - 1);
            let (_, p90, _) = sorted.select_nth_unstable(at);
            self.timeout = Some(*p90 * 3 / 2);
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
}
