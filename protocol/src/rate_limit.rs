//! Rate limits: per-IP inbound budgets, the outbound query budget, and the
//! spacing between repeated queries for one target to one node.
//!
//! Nothing here reads the clock; every method takes `now`. Each limiter is
//! bounded: a flood from many source addresses cannot grow it past its
//! configured number of tracked entries.
//!
//! [Implementation notes] libtorrent's `dos_blocker` counts packets per IP
//! and blocks an IP for a while once it passes a threshold; we use a token
//! bucket per IP instead, so that a node that bursts briefly (a bootstrap)
//! is not punished for minutes. rTorrent throttles the DHT's outbound bytes;
//! we bound outbound queries per second, which is what gets a node banned.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// A rate and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Sustained events per second.
    pub per_second: f64,
    /// Events allowed at once from a full bucket.
    pub burst: f64,
}

/// A token bucket: `rate.burst` tokens, refilled at `rate.per_second`.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(now: Instant, rate: Rate) -> Self {
        TokenBucket {
            tokens: rate.burst,
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant, rate: Rate) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.updated = now;
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant, rate: Rate) -> bool {
        self.refill(now, rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until a token is available (zero if one is now).
    pub fn wait_time(&mut self, now: Instant, rate: Rate) -> Duration {
        self.refill(now, rate);
        if self.tokens >= 1.0 || rate.per_second <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / rate.per_second)
        }
    }

    /// When a token will be available, without taking one (`updated` if
    /// one is now).
    pub fn ready_at(&self, rate: Rate) -> Instant {
        if rate.per_second <= 0.0 {
            // Never refills: nothing to wake for.
            self.updated + Duration::from_secs(3600)
        } else if self.tokens >= 1.0 {
            self.updated
        } else {
            // Rounded up: a wait that rounds to zero nanoseconds would wake
            // the caller at once to find the token still short.
            let wait = Duration::from_secs_f64((1.0 - self.tokens) / rate.per_second);
            self.updated + wait.max(Duration::from_micros(1))
        }
    }

    fn is_full(&mut self, now: Instant, rate: Rate) -> bool {
        self.refill(now, rate);
        self.tokens >= rate.burst
    }
}

/// Why an inbound datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// The source IP is over its budget.
    OverRate,
    /// Too many source IPs are being tracked and none is idle: a flood from
    /// many addresses. Refusing is the bounded choice.
    TooManySources,
}

/// A full memory is swept for stale entries at most this often: sweeping
/// on every new source would cost a scan of all of them per datagram once
/// a flood from many addresses fills it (2.7 times the CPU per query at
/// 20,000 sources, before this bound).
pub const FULL_SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Whether a full memory may be swept now; if so, notes when it was.
pub(crate) fn sweep_due(next_sweep: &mut Option<Instant>, now: Instant) -> bool {
    if next_sweep.is_some_and(|at| now < at) {
        return false;
    }
    *next_sweep = Some(now + FULL_SWEEP_EVERY);
    true
}

/// Keeps the entries `keep` approves, and gives memory back once the map is
/// mostly empty: a burst of sources (a node's first minutes, a flood) must
/// not hold its peak for good. A simulated network of 10^5 nodes showed it:
/// 170 KB per node, most of it empty hash tables.
pub(crate) fn retain_and_shrink<K: Eq + Hash, V>(
    map: &mut HashMap<K, V>,
    keep: impl FnMut(&K, &mut V) -> bool,
) {
    map.retain(keep);
    if map.capacity() > 4 * map.len().max(8) {
        map.shrink_to(2 * map.len());
    }
}

/// Token buckets per source (an address, or a network) for inbound
/// traffic. Each datagram costs one hash lookup, however many sources are
/// tracked.
#[derive(Debug)]
pub struct KeyedRateLimiter<Key> {
    rate: Rate,
    max_tracked: usize,
    buckets: HashMap<Key, TokenBucket>,
    next_sweep: Option<Instant>,
}

/// Budgets per source address.
pub type IpRateLimiter = KeyedRateLimiter<IpAddr>;
/// Budgets per source /24 (IPv4) or /64 (IPv6).
pub type PrefixRateLimiter = KeyedRateLimiter<crate::ip_prefix::IpPrefix>;

impl<Key: Eq + Hash + Copy> KeyedRateLimiter<Key> {
    /// A limiter allowing `rate` per source, tracking at most `max_tracked`.
    pub fn new(rate: Rate, max_tracked: usize) -> Self {
        KeyedRateLimiter {
            rate,
            max_tracked: max_tracked.max(1),
            buckets: HashMap::new(),
            next_sweep: None,
        }
    }

    /// Applies a new rate and bound from now on (a reload); the buckets
    /// already tracked keep what they hold.
    pub fn set_rate(&mut self, rate: Rate, max_tracked: usize) {
        self.rate = rate;
        self.max_tracked = max_tracked.max(1);
    }

    /// Whether a datagram from `ip` may be processed now.
    pub fn admit(&mut self, now: Instant, ip: Key) -> Result<(), Limited> {
        let rate = self.rate;
        // One hash for a known source, the common case under load.
        let taken = match self.buckets.get_mut(&ip) {
            Some(bucket) => bucket.try_take(now, rate),
            None => {
                if self.buckets.len() >= self.max_tracked {
                    if sweep_due(&mut self.next_sweep, now) {
                        self.forget_idle(now);
                    }
                    if self.buckets.len() >= self.max_tracked {
                        return Err(Limited::TooManySources);
                    }
                }
                let mut bucket = TokenBucket::new(now, rate);
                let taken = bucket.try_take(now, rate);
                self.buckets.insert(ip, bucket);
                taken
            }
        };
        if taken {
            Ok(())
        } else {
            Err(Limited::OverRate)
        }
    }

    /// Drops the buckets that have refilled completely: those IPs are
    /// treated as new when they come back, which is the same thing.
    pub fn forget_idle(&mut self, now: Instant) {
        let rate = self.rate;
        retain_and_shrink(&mut self.buckets, |_, b| !b.is_full(now, rate));
    }

    /// Sources tracked now.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

/// Remembers when a key was last used and refuses it again within `spacing`.
/// Used for "one query for the same target to the same node" per spacing.
#[derive(Debug)]
pub struct Spacing<Key> {
    spacing: Duration,
    max_tracked: usize,
    last: HashMap<Key, Instant>,
    next_sweep: Option<Instant>,
}

impl<Key: Eq + Hash + Copy> Spacing<Key> {
    /// Keys may repeat after `spacing`; at most `max_tracked` are remembered.
    pub fn new(spacing: Duration, max_tracked: usize) -> Self {
        Spacing {
            spacing,
            max_tracked: max_tracked.max(1),
            last: HashMap::new(),
            next_sweep: None,
        }
    }

    /// Records a use of `key` now if it was not used within the spacing.
    /// Otherwise says when it may be used. When the memory is full of
    /// recent keys, the key is refused: sending less is the safe side.
    pub fn try_use(&mut self, now: Instant, key: Key) -> SpacingVerdict {
        if self.spacing.is_zero() {
            return SpacingVerdict::Go;
        }
        // One hash for a key seen before, the common case.
        if let Some(at) = self.last.get_mut(&key) {
            let ready = *at + self.spacing;
            if now < ready {
                return SpacingVerdict::WaitUntil(ready);
            }
            *at = now;
            return SpacingVerdict::Go;
        }
        // Swept on time, not only when full: otherwise every key ever
        // used stays until the memory fills.
        if sweep_due(&mut self.next_sweep, now) {
            let spacing = self.spacing;
            retain_and_shrink(&mut self.last, |_, at| {
                now.saturating_duration_since(*at) < spacing
            });
        }
        if self.last.len() >= self.max_tracked {
            return SpacingVerdict::Full;
        }
        self.last.insert(key, now);
        SpacingVerdict::Go
    }

    /// Keys remembered now.
    pub fn tracked(&self) -> usize {
        self.last.len()
    }
}

/// What [`Spacing::try_use`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpacingVerdict {
    /// Use it now (recorded).
    Go,
    /// Used too recently: not before this time.
    WaitUntil(Instant),
    /// Too many recent keys are remembered to take another.
    Full,
}

/// The key of [`Spacing`] for outbound queries: node, target and method.
pub type QueryKey = (SocketAddr, [u8; 20], u8);

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate {
        per_second: 10.0,
        burst: 5.0,
    };

    #[test]
    fn per_ip_budget_refills_over_time() {
        let t0 = crate::test_epoch();
        let mut l = IpRateLimiter::new(RATE, 100);
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        for _ in 0..5 {
            assert_eq!(l.admit(t0, a), Ok(()));
        }
        assert_eq!(l.admit(t0, a), Err(Limited::OverRate));
        // Another IP has its own budget.
        assert_eq!(l.admit(t0, b), Ok(()));
        // 100 ms at 10/s gives one token back.
        assert_eq!(l.admit(t0 + Duration::from_millis(100), a), Ok(()));
        assert_eq!(
            l.admit(t0 + Duration::from_millis(100), a),
            Err(Limited::OverRate)
        );
    }

    #[test]
    fn tracked_sources_are_bounded_and_idle_ones_forgotten() {
        let t0 = crate::test_epoch();
        let mut l = IpRateLimiter::new(RATE, 3);
        for i in 0..3u8 {
            assert_eq!(l.admit(t0, [10, 0, 0, i].into()), Ok(()));
        }
        assert_eq!(
            l.admit(t0, [10, 0, 0, 9].into()),
            Err(Limited::TooManySources)
        );
        assert_eq!(l.tracked(), 3);
        // After a second every bucket is full again, so they are forgotten.
        assert_eq!(
            l.admit(t0 + Duration::from_secs(1), [10, 0, 0, 9].into()),
            Ok(())
        );
        assert_eq!(l.tracked(), 1);
    }

    #[test]
    fn outbound_wait_time_spreads_a_burst() {
        let t0 = crate::test_epoch();
        let rate = Rate {
            per_second: 4.0,
            burst: 1.0,
        };
        let mut b = TokenBucket::new(t0, rate);
        assert!(b.try_take(t0, rate));
        assert!(!b.try_take(t0, rate));
        assert_eq!(b.wait_time(t0, rate), Duration::from_millis(250));
        assert!(b.try_take(t0 + Duration::from_millis(250), rate));
    }

    #[test]
    fn spacing_delays_a_repeat_within_the_interval() {
        let t0 = crate::test_epoch();
        let mut s = Spacing::new(Duration::from_secs(5), 2);
        let a: QueryKey = ("127.0.0.1:1".parse().unwrap(), [1; 20], 0);
        let b: QueryKey = ("127.0.0.1:1".parse().unwrap(), [2; 20], 0);
        let c: QueryKey = ("127.0.0.1:2".parse().unwrap(), [1; 20], 0);
        let go = SpacingVerdict::Go;
        assert_eq!(s.try_use(t0, a), go);
        assert_eq!(
            s.try_use(t0 + Duration::from_secs(4), a),
            SpacingVerdict::WaitUntil(t0 + Duration::from_secs(5))
        );
        assert_eq!(s.try_use(t0, b), go);
        // Full of recent keys: refused rather than forgetting a recent one.
        assert_eq!(s.try_use(t0, c), SpacingVerdict::Full);
        assert_eq!(s.try_use(t0 + Duration::from_secs(5), a), go);
        assert_eq!(s.try_use(t0 + Duration::from_secs(6), c), go);
        assert!(s.tracked() <= 2);
    }
}
