//! Shards run at once, one thread each (the driver's: see [`Threads`]), in
//! windows of virtual time.
//!
//! No datagram from one shard to another arrives sooner than the
//! lookahead after it was sent (`World::lookahead`), so what one shard
//! does in a window that starts at the earliest event of all shards and is shorter
//! than the lookahead cannot change what another does in it. Each shard
//! runs its window alone; at its end, the datagrams that crossed shards
//! are queued where they go, and the next window starts. An event's place
//! among equal times is fixed by the shard that scheduled it (see `queue`),
//! so each shard runs the same events in the same order as when the shards
//! run one event at a time in time order, whichever thread is faster: a
//! seed replays exactly for a given number of shards (the conservative
//! scheme of Chandy and Misra, with a global window as in YAWNS). Without
//! the barrier, each shard going as far as the others' published bounds
//! allow, it was no faster (10^4 nodes, interleaved: 50 and 44 s against
//! 43 and 47 s).
//!
//! Each thread keeps its shards (shard k goes to thread k mod threads) for
//! the whole run: a shard's nodes then stay in one core's caches and one
//! allocator arena. Handing each window's shards to whichever thread was
//! free instead took 20% longer at 10^4 nodes on two threads.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::shard::{Away, Event, Shard, World};

/// A barrier whose waiters spin, then yield: windows are short (a
/// millisecond of virtual time is about a hundred events at 10^5 nodes),
/// and a sleeping thread's wake-up would cost as much as the window.
struct SpinBarrier {
    parties: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    /// A party panicked: it will never arrive.
    broken: AtomicBool,
}

/// Spins before a waiter yields its core (about a millisecond): on two
/// cores the other thread is running, and will arrive.
const SPINS: u32 = 20_000;

impl SpinBarrier {
    fn new(parties: usize) -> Self {
        SpinBarrier {
            parties,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            broken: AtomicBool::new(false),
        }
    }

    /// Waits for every party.
    fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.parties {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0;
        while self.generation.load(Ordering::Acquire) == generation {
            assert!(
                !self.broken.load(Ordering::Relaxed),
                "another shard's thread panicked"
            );
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// What the shards' threads share.
struct Exchange {
    barrier: SpinBarrier,
    shards: usize,
    /// Each shard's next event, in nanoseconds after the epoch.
    next: Vec<AtomicU64>,
    /// Datagrams crossing shards, by (sending shard, receiving shard).
    crossing: Vec<Mutex<Vec<Away>>>,
}

impl Exchange {
    fn slot(&self, from: usize, to: usize) -> std::sync::MutexGuard<'_, Vec<Away>> {
        self.crossing[from * self.shards + to]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn publish_next(&self, shard: &mut Shard, epoch: Instant) {
        let next = shard.events.peek().map_or(u64::MAX, |t| nanos(epoch, t));
        self.next[shard.index].store(next, Ordering::Relaxed);
    }
}

/// Runs tasks at the same time, each on a thread of its own: what a
/// sharded simulation needs from its driver, since `protocol/` starts no
/// thread ("The pure core and its two drivers").
pub trait Threads: Send + Sync {
    /// How many tasks it runs at once.
    fn count(&self) -> usize;

    /// Runs every task at once and returns when all have returned. The
    /// tasks wait for each other, so they must not run one after another.
    fn run_together<'a>(&self, tasks: Vec<Box<dyn FnOnce() + Send + 'a>>);
}

/// Runs every shard up to `until` (inclusive), on as many of `threads` as
/// there are shards. `lookahead` must be above zero and no longer than any
/// datagram takes.
pub(crate) fn run_shards(
    threads: &dyn Threads,
    shards: &mut [Shard],
    world: &World,
    epoch: Instant,
    until: Instant,
    lookahead: Duration,
) {
    let n = shards.len();
    let tasks_count = threads.count().clamp(1, n);
    let exchange = Exchange {
        barrier: SpinBarrier::new(tasks_count),
        shards: n,
        next: (0..n).map(|_| AtomicU64::new(u64::MAX)).collect(),
        crossing: (0..n * n).map(|_| Mutex::new(Vec::new())).collect(),
    };
    let mut groups: Vec<Vec<&mut Shard>> = (0..tasks_count).map(|_| Vec::new()).collect();
    for (k, shard) in shards.iter_mut().enumerate() {
        exchange.publish_next(shard, epoch);
        groups[k % tasks_count].push(shard);
    }
    let at = |t: Instant| nanos(epoch, t);
    let (until, lookahead) = (at(until), lookahead.as_nanos() as u64);
    let exchange = &exchange;
    let tasks = groups
        .into_iter()
        .map(|mut group| {
            Box::new(move || run_windows(world, exchange, &mut group, epoch, until, lookahead))
                as Box<dyn FnOnce() + Send + '_>
        })
        .collect();
    threads.run_together(tasks);
}

fn nanos(epoch: Instant, t: Instant) -> u64 {
    t.saturating_duration_since(epoch)
        .as_nanos()
        .min(u64::MAX as u128) as u64
}

/// One thread's part: in each window, run its shards, then queue the
/// datagrams that crossed into them.
fn run_windows(
    world: &World,
    exchange: &Exchange,
    shards: &mut [&mut Shard],
    epoch: Instant,
    until: u64,
    lookahead: u64,
) {
    /// Breaks the barrier if its thread unwinds, so that the others stop
    /// waiting and the panic reaches the caller instead of a hang.
    struct Breaker<'a>(&'a SpinBarrier);
    impl Drop for Breaker<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.broken.store(true, Ordering::Relaxed);
            }
        }
    }
    let _breaker = Breaker(&exchange.barrier);
    let n = exchange.shards;
    // The lists of crossing datagrams change hands (sender, exchange,
    // receiver) instead of being allocated, grown and freed (by another
    // thread than the one that grew them) in every window.
    let mut arrived = Vec::new();
    loop {
        // Every thread reads the same values: none is written again
        // before the barrier that ends this window's runs.
        let start = exchange
            .next
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .min()
            .unwrap_or(u64::MAX);
        if start > until {
            return;
        }
        let end = start.saturating_add(lookahead - 1).min(until);
        for shard in shards.iter_mut() {
            shard.run_through(world, epoch + Duration::from_nanos(end));
            for (to, away) in shard.away.iter_mut().enumerate() {
                if !away.is_empty() {
                    let mut slot = exchange.slot(shard.index, to);
                    if slot.is_empty() {
                        std::mem::swap(&mut *slot, away);
                    } else {
                        slot.append(away);
                    }
                }
            }
        }
        exchange.barrier.wait();
        for shard in shards.iter_mut() {
            for from in 0..n {
                std::mem::swap(&mut *exchange.slot(from, shard.index), &mut arrived);
                queue_arrivals(shard, arrived.drain(..));
            }
            exchange.publish_next(shard, epoch);
        }
        exchange.barrier.wait();
    }
}

/// Queues datagrams from other shards in this one.
pub(crate) fn queue_arrivals(shard: &mut Shard, arrived: impl Iterator<Item = Away>) {
    for a in arrived {
        let event = Event::Deliver {
            to: a.to,
            from: a.from,
            bytes: a.bytes,
        };
        shard.events.push_from(a.at, a.origin as u64, a.seq, event);
    }
}
