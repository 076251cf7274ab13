//! Shards run at once, one thread each (the driver's: see [`Threads`]).
//!
//! No datagram arrives sooner than the network's lookahead L after it was
//! sent ([`super::Network::lookahead`]). Each shard publishes a bound: a
//! time before which it will send nothing more (its next event, or what
//! others may still send it, plus L). A shard may run every event earlier
//! than the others' bounds plus L, for nothing can reach it before then:
//! it runs ahead as far as that, and waits only when it is that far ahead
//! (the conservative scheme of Chandy and Misra, with bounds read from
//! shared memory instead of null messages). An event's place among equal
//! times is fixed where it was scheduled (see `queue`), so each shard runs
//! the same events in the same order as when the shards run one event at
//! a time in time order: a seed replays exactly for a given number of
//! shards, whichever thread is faster.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::shard::{Away, Event, Shard, World};

/// Spins before a waiting shard yields its core: a wait is usually short
/// (the other shard catching up by less than L of virtual time).
const SPINS: u32 = 20_000;

/// What the shards' threads share.
struct Exchange {
    /// Each shard's bound, in nanoseconds after the epoch: it sends nothing
    /// more before it. Raised only after what was sent before it is in
    /// `crossing`.
    bounds: Vec<AtomicU64>,
    /// Datagrams crossing shards, by (sending shard, receiving shard).
    crossing: Vec<Mutex<Vec<Away>>>,
    /// A shard's thread panicked: the others stop waiting for it.
    broken: AtomicBool,
    shards: usize,
}

impl Exchange {
    fn take(&self, from: usize, to: usize) -> Vec<Away> {
        let mut slot = self.crossing[from * self.shards + to]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut *slot)
    }

    fn put(&self, from: usize, to: usize, away: &mut Vec<Away>) {
        if away.is_empty() {
            return;
        }
        let mut slot = self.crossing[from * self.shards + to]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        slot.append(away);
    }
}

/// Runs tasks at the same time, each on a thread of its own: what a
/// sharded simulation needs from its driver, since `protocol/` starts no
/// thread ("The pure core and its two drivers").
pub trait Threads: Send + Sync {
    /// Runs every task at once and returns when all have returned. The
    /// tasks wait for each other, so they must not run one after another.
    fn run_together<'a>(&self, tasks: Vec<Box<dyn FnOnce() + Send + 'a>>);
}

/// Runs every shard up to `until` (inclusive), each as one of `threads`'
/// tasks. `lookahead` must be above zero and no longer than any datagram
/// takes.
pub(crate) fn run_shards(
    threads: &dyn Threads,
    shards: &mut [Shard],
    world: &World,
    epoch: Instant,
    until: Instant,
    lookahead: Duration,
) {
    let n = shards.len();
    // Nothing is in flight: no shard sends before the first event of all.
    let first = shards
        .iter()
        .filter_map(|s| s.events.peek())
        .min()
        .map_or(u64::MAX, |t| nanos(epoch, t));
    let exchange = Exchange {
        bounds: (0..n).map(|_| AtomicU64::new(first)).collect(),
        crossing: (0..n * n).map(|_| Mutex::new(Vec::new())).collect(),
        broken: AtomicBool::new(false),
        shards: n,
    };
    let at = |t: Instant| nanos(epoch, t);
    let (until, lookahead) = (at(until), lookahead.as_nanos() as u64);
    let exchange = &exchange;
    let tasks = shards
        .iter_mut()
        .map(|shard| {
            Box::new(move || run_shard(shard, world, exchange, epoch, until, lookahead))
                as Box<dyn FnOnce() + Send + '_>
        })
        .collect();
    threads.run_together(tasks);
    // What was sent for after `until` waits in its shard's queue.
    for from in 0..n {
        for (to, shard) in shards.iter_mut().enumerate() {
            queue_arrivals(shard, exchange.take(from, to));
        }
    }
}

fn nanos(epoch: Instant, t: Instant) -> u64 {
    t.saturating_duration_since(epoch)
        .as_nanos()
        .min(u64::MAX as u128) as u64
}

fn run_shard(
    shard: &mut Shard,
    world: &World,
    exchange: &Exchange,
    epoch: Instant,
    until: u64,
    lookahead: u64,
) {
    /// Tells the others if this thread unwinds, so that the panic reaches
    /// the caller instead of a hang.
    struct Breaker<'a>(&'a AtomicBool);
    impl Drop for Breaker<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.store(true, Ordering::Relaxed);
            }
        }
    }
    let _breaker = Breaker(&exchange.broken);
    let me = shard.index;
    let mut idle = 0u32;
    loop {
        // The others' bounds first, then what they sent: everything sent
        // before a bound was raised is in `crossing` by then.
        let others = (0..exchange.shards)
            .filter(|&o| o != me)
            .map(|o| exchange.bounds[o].load(Ordering::Acquire))
            .min()
            .unwrap_or(u64::MAX);
        for from in (0..exchange.shards).filter(|&o| o != me) {
            queue_arrivals(shard, exchange.take(from, me));
        }
        let reach = others.saturating_add(lookahead);
        let next = shard.events.peek().map_or(u64::MAX, |t| nanos(epoch, t));
        if next > until && reach > until {
            // Nothing more here, and nothing more can come, before `until`.
            exchange.bounds[me].store(u64::MAX, Ordering::Release);
            return;
        }
        let horizon = (reach - 1).min(until);
        if next <= horizon {
            idle = 0;
            shard.run_through(world, epoch + Duration::from_nanos(horizon));
            for (to, away) in shard.away.iter_mut().enumerate() {
                exchange.put(me, to, away);
            }
        } else {
            idle += 1;
            assert!(
                !exchange.broken.load(Ordering::Relaxed),
                "another shard's thread panicked"
            );
            if idle < SPINS {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        let next = shard.events.peek().map_or(u64::MAX, |t| nanos(epoch, t));
        exchange.bounds[me].store(next.min(reach), Ordering::Release);
    }
}

/// Queues datagrams from other shards in this one.
pub(crate) fn queue_arrivals(shard: &mut Shard, arrived: Vec<Away>) {
    for a in arrived {
        let event = Event::Deliver {
            to: a.to,
            from: a.from,
            bytes: a.bytes,
        };
        shard.events.push_from(a.at, a.origin as u64, a.seq, event);
    }
}
