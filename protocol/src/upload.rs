//! The upload throttle: one budget, in bytes per second, for everything the
//! node sends, answers included (rTorrent's DHT obeys its client's upload
//! throttle; libtorrent has `dht_upload_rate_limit`).
//!
//! When the budget runs short, what goes is shed in this order, each step
//! counted:
//!
//! 1. `values` in `get_peers` answers are trimmed to what the budget holds
//!    (`dht_upload_trimmed_total`): the answer still
//!    carries the closest nodes and a token, the part the asker needs most;
//! 2. answers that still do not fit are not sent
//!    (`dht_packets_dropped_total{reason="upload_throttled"}`): the asker
//!    loses one query and asks another node;
//! 3. our own queries wait in the pacer's queue until the budget holds a
//!    query's worth (`dht_queries_delayed_total{reason="upload"}`), and are
//!    refused beyond the queue (`not_sent{reason="queue_full"}`).
//!
//! Answers serve other nodes and queries serve ours, so answers give way
//! first; a query that has left may put the budget in debt (its exact size
//! is known only once encoded), which the answers after it pay for.
//!
//! One budget is shared by the pieces that send (the gate's error answers,
//! the responder, the pacer and the transaction table), each calling it with
//! its own `now`; it reads no clock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::rate_limit::Rate;

/// What a query is assumed to cost before it is encoded: a `get_peers` or
/// `find_node` with a 2-byte transaction id is about 100 bytes, a BEP 44
/// `put` up to 1,000.
pub const QUERY_ESTIMATE: usize = 150;

#[derive(Debug)]
struct Inner {
    rate: Option<Rate>,
    /// Bytes that may go now; negative: a debt.
    tokens: f64,
    updated: Option<Instant>,
}

/// The node's upload budget (see the module's text).
#[derive(Debug)]
pub struct UploadBudget {
    /// Whether a rate is set: the unlimited case, every answer's, takes no lock.
    limited: AtomicBool,
    inner: Mutex<Inner>,
}

impl Default for UploadBudget {
    fn default() -> Self {
        Self::new(None)
    }
}

impl UploadBudget {
    /// `rate` bytes per second with a burst of `rate.burst` bytes; `None`:
    /// unlimited.
    pub fn new(rate: Option<Rate>) -> Self {
        UploadBudget {
            limited: AtomicBool::new(rate.is_some()),
            inner: Mutex::new(Inner {
                rate,
                tokens: rate.map_or(0.0, |r| r.burst),
                updated: None,
            }),
        }
    }

    fn with<T>(&self, now: Instant, f: impl FnOnce(&mut Inner, Rate) -> T) -> Option<T> {
        if !self.limited.load(Ordering::Relaxed) {
            return None;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let rate = inner.rate?;
        let elapsed = inner
            .updated
            .map_or(0.0, |u| now.saturating_duration_since(u).as_secs_f64());
        inner.tokens = (inner.tokens + elapsed * rate.per_second).min(rate.burst);
        inner.updated = Some(now);
        Some(f(&mut inner, rate))
    }

    /// A new rate (a reload), from now on.
    pub fn set_rate(&self, rate: Option<Rate>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some(new), None) = (rate, inner.rate) {
            inner.tokens = new.burst;
        }
        inner.rate = rate;
        self.limited.store(rate.is_some(), Ordering::Relaxed);
    }

    /// The rate in force.
    pub fn rate(&self) -> Option<Rate> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).rate
    }

    /// Bytes that may be sent now (`usize::MAX` when unlimited).
    pub fn room(&self, now: Instant) -> usize {
        self.with(now, |inner, _| inner.tokens.max(0.0) as usize)
            .unwrap_or(usize::MAX)
    }

    /// Spends `bytes` if the budget holds them (an answer); false: it does
    /// not, and nothing is spent.
    pub fn try_spend(&self, now: Instant, bytes: usize) -> bool {
        self.with(now, |inner, _| {
            let fits = inner.tokens >= bytes as f64;
            if fits {
                inner.tokens -= bytes as f64;
            }
            fits
        })
        .unwrap_or(true)
    }

    /// Spends `bytes` even into debt (a query, already let through).
    pub fn spend(&self, now: Instant, bytes: usize) {
        self.with(now, |inner, _| inner.tokens -= bytes as f64);
    }

    /// When `bytes` will fit (`now` if they do, or when unlimited).
    pub fn ready_at(&self, now: Instant, bytes: usize) -> Instant {
        self.with(now, |inner, rate| {
            let short = bytes as f64 - inner.tokens;
            if short <= 0.0 {
                now
            } else if rate.per_second <= 0.0 {
                now + Duration::from_secs(3600)
            } else {
                // Rounded up, so that the wake-up finds the bytes there.
                now + Duration::from_secs_f64(short / rate.per_second).max(Duration::from_micros(1))
            }
        })
        .unwrap_or(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_wait_for_room_queries_may_borrow() {
        let t0 = crate::test_epoch();
        let b = UploadBudget::new(Some(Rate {
            per_second: 1000.0,
            burst: 1000.0,
        }));
        assert_eq!(b.room(t0), 1000);
        assert!(b.try_spend(t0, 600));
        assert!(!b.try_spend(t0, 600), "an answer that does not fit");
        assert_eq!(b.room(t0), 400);
        b.spend(t0, 600);
        assert_eq!(b.room(t0), 0, "a query's debt");
        let ready = b.ready_at(t0, 150);
        assert_eq!(ready, t0 + Duration::from_millis(350));
        assert_eq!(b.room(ready), 150);
        b.set_rate(None);
        assert_eq!(b.room(ready), usize::MAX);
        assert!(b.try_spend(ready, 1_000_000));
        assert_eq!(UploadBudget::default().ready_at(t0, 10_000), t0);
    }
}
