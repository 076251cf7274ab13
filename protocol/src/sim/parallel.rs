//! Shards run at once, their threads (the driver's: see [`Threads`]) each
//! as far ahead of the others as the network's lookahead allows.
//!
//! No datagram from one shard to another arrives sooner than the
//! lookahead after it was sent (`World::lookahead`). Each thread publishes
//! its frontier: a time before which none of its shards will run another
//! event. Nothing it sends from now on can then arrive before its frontier
//! plus the lookahead, so another thread, having queued what was sent to
//! its shards so far, may run every event before that bound, and no
//! further than a lookahead past its own earliest event (its shards send
//! to each other too). An event's place among equal times is fixed by the
//! shard that scheduled it (see `queue`), so each shard runs the same
//! events in the same order as when the shards run one event at a time in
//! time order, whichever thread is faster: a seed replays exactly for a
//! given number of shards (the conservative scheme of Chandy and Misra).
//!
//! A window shared by all threads, with a barrier at its end (YAWNS), made
//! the faster thread wait out every window's imbalance: 9–14% of a 10^5
//! run's time, mostly in waits of 0.1–5 ms against windows of 2–15 ms. A
//! thread that may run up to a lookahead past the slower one's frontier
//! waits only when the imbalance adds up to more than that. (Without the
//! barrier but with each shard's own frontier and windows of 3.6 ms, on
//! shards that mixed access delays, it was no faster.)
//!
//! Each thread keeps its shards (shard k goes to thread k mod threads) for
//! the whole run: a shard's nodes then stay in one core's caches and one
//! allocator arena. Handing each window's shards to whichever thread was
//! free instead took 20% longer at 10^4 nodes on two threads.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::shard::{Away, Event, Shard, World};

/// Spins before a waiting thread yields its core (about a millisecond): on
/// two cores the other thread is running, and will move its frontier.
const SPINS: u32 = 20_000;

/// How many steps a thread takes to cover a lookahead: the others see its
/// frontier move at the end of each, so a thread that waits for another
/// waits for a step of it, not for a lookahead's worth.
const STEPS_PER_LOOKAHEAD: u64 = 4;

/// What the shards' threads share.
struct Exchange {
    shards: usize,
    /// Each thread's frontier, in nanoseconds after the epoch: none of its
    /// shards will run an event before it. Each on a cache line of its own,
    /// as it is written at every step.
    frontier: Vec<Frontier>,
    /// A thread panicked: its frontier will never move.
    broken: AtomicBool,
    /// Datagrams crossing shards, by (sending shard, receiving shard).
    crossing: Vec<Mutex<Vec<Away>>>,
}

#[repr(align(128))]
struct Frontier(AtomicU64);

impl Exchange {
    fn slot(&self, from: usize, to: usize) -> std::sync::MutexGuard<'_, Vec<Away>> {
        self.crossing[from * self.shards + to]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands `away`'s datagrams from shard `from` to shard `to`.
    fn send(&self, from: usize, to: usize, away: &mut Vec<Away>) {
        let mut slot = self.slot(from, to);
        if slot.is_empty() {
            std::mem::swap(&mut *slot, away);
        } else {
            slot.append(away);
        }
    }

    /// The least frontier of the threads other than `me`.
    fn others(&self, me: usize) -> u64 {
        self.frontier
            .iter()
            .enumerate()
            .filter(|&(t, _)| t != me)
            .map(|(_, f)| f.0.load(Ordering::Acquire))
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Waits until the others' least frontier moves past `seen`.
    fn wait_past(&self, me: usize, seen: u64) {
        let mut spins = 0;
        while self.others(me) == seen {
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

    /// Queues in `shard` what the other shards sent it so far.
    fn take_arrivals(&self, shard: &mut Shard, arrived: &mut Vec<Away>) {
        for from in 0..self.shards {
            std::mem::swap(&mut *self.slot(from, shard.index), arrived);
            queue_arrivals(shard, arrived.drain(..));
        }
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
    let mut groups: Vec<Vec<&mut Shard>> = (0..tasks_count).map(|_| Vec::new()).collect();
    for (k, shard) in shards.iter_mut().enumerate() {
        groups[k % tasks_count].push(shard);
    }
    let lookahead_nanos = lookahead.as_nanos() as u64;
    let earliest_by_thread: Vec<u64> = groups.iter_mut().map(|g| earliest(g, epoch)).collect();
    let reach = earliest_by_thread
        .iter()
        .min()
        .map_or(u64::MAX, |&least| least.saturating_add(lookahead_nanos));
    let exchange = Exchange {
        shards: n,
        // Each thread's earliest event, or what the others' earliest can
        // send it, whichever is sooner: the rule of every step after, and
        // a promise from the start, as another thread may read it before
        // this one has taken a step. (Its earliest event alone let a
        // thread that started first run past what the other would send it
        // in reply to a datagram it sent: a late delivery, in about one
        // run of `sim_threads` in five.) A frontier below that would make
        // the threads step through idle time a lookahead at a time.
        // (The least earliest of all threads serves for the others': where
        // it is this thread's own, its own earliest is the lesser anyway.)
        frontier: earliest_by_thread
            .iter()
            .map(|&own| Frontier(AtomicU64::new(own.min(reach))))
            .collect(),
        broken: AtomicBool::new(false),
        crossing: (0..n * n).map(|_| Mutex::new(Vec::new())).collect(),
    };
    let at = |t: Instant| nanos(epoch, t);
    let (until, lookahead) = (at(until), lookahead_nanos);
    let exchange = &exchange;
    let tasks = groups
        .into_iter()
        .enumerate()
        .map(|(me, mut group)| {
            Box::new(move || run_ahead(world, exchange, me, &mut group, epoch, until, lookahead))
                as Box<dyn FnOnce() + Send + '_>
        })
        .collect();
    threads.run_together(tasks);
    // What was sent past `until` after its receiver's thread had stopped.
    let mut arrived = Vec::new();
    for shard in shards.iter_mut() {
        exchange.take_arrivals(shard, &mut arrived);
    }
}

/// The earliest event of `shards`, in nanoseconds after the epoch.
fn earliest(shards: &mut [&mut Shard], epoch: Instant) -> u64 {
    shards
        .iter_mut()
        .filter_map(|s| s.events.peek())
        .map(|t| nanos(epoch, t))
        .min()
        .unwrap_or(u64::MAX)
}

fn nanos(epoch: Instant, t: Instant) -> u64 {
    t.saturating_duration_since(epoch)
        .as_nanos()
        .min(u64::MAX as u128) as u64
}

/// Marks the exchange broken if its thread unwinds, so that the others
/// stop waiting and the panic reaches the caller instead of a hang.
struct Breaker<'a>(&'a AtomicBool);

impl Drop for Breaker<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// Thread `me`'s part: queue what crossed into its shards, publish its
/// frontier, run its shards as far as the others' frontiers allow, and
/// hand over what crossed out of them; until no event of its shards up to
/// `until` is left and none can still arrive.
fn run_ahead(
    world: &World,
    exchange: &Exchange,
    me: usize,
    shards: &mut [&mut Shard],
    epoch: Instant,
    until: u64,
    lookahead: u64,
) {
    let _breaker = Breaker(&exchange.broken);
    // The lists of crossing datagrams change hands (sender, exchange,
    // receiver) instead of being allocated, grown and freed (by another
    // thread than the one that grew them) in every step.
    let mut arrived = Vec::new();
    let step = (lookahead / STEPS_PER_LOOKAHEAD).max(1);
    loop {
        // Read before taking the arrivals: whatever the others send after
        // this read arrives at or after `bound`.
        let others = exchange.others(me);
        let bound = others.saturating_add(lookahead);
        for shard in shards.iter_mut() {
            exchange.take_arrivals(shard, &mut arrived);
        }
        let start = earliest(shards, epoch);
        let frontier = start.min(bound);
        exchange.frontier[me].0.store(frontier, Ordering::Release);
        if frontier > until {
            return;
        }
        if start >= bound {
            exchange.wait_past(me, others);
            continue;
        }
        let end = start.saturating_add(step - 1).min(bound - 1).min(until);
        for shard in shards.iter_mut() {
            shard.run_through(world, epoch + Duration::from_nanos(end));
            for (to, away) in shard.away.iter_mut().enumerate() {
                if !away.is_empty() {
                    exchange.send(shard.index, to, away);
                }
            }
        }
    }
}

/// Queues datagrams from other shards in this one, counting those it has
/// already run past.
pub(crate) fn queue_arrivals(shard: &mut Shard, arrived: impl Iterator<Item = Away>) {
    for a in arrived {
        if a.at < shard.now {
            shard.stats.late += 1;
        }
        let event = Event::Deliver {
            to: a.to,
            from: a.from,
            bytes: a.bytes,
        };
        shard.events.push_from(a.at, a.origin as u64, a.seq, event);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rand::SeedableRng;

    use super::*;

    fn datagram_at(at: Instant, seq: u64) -> Away {
        Away {
            at,
            origin: 1,
            seq,
            to: 0,
            from: "10.0.0.1:6881".parse().unwrap(),
            bytes: Bytes::from_static(b"d1:y1:qe"),
        }
    }

    /// A datagram handed to a shard that has run past its time is counted
    /// (and still delivered); one on time, or at the shard's own time (a
    /// serial run with no delay), is not.
    #[test]
    fn a_shard_counts_what_arrives_after_its_time() {
        let epoch = crate::test_epoch();
        let mut shard = Shard::new(0, 2, epoch, rand::rngs::StdRng::seed_from_u64(1));
        shard.now = epoch + Duration::from_millis(10);
        let arrivals = [5, 10, 20].map(|ms| epoch + Duration::from_millis(ms));
        queue_arrivals(
            &mut shard,
            arrivals
                .iter()
                .enumerate()
                .map(|(seq, &at)| datagram_at(at, seq as u64)),
        );
        assert_eq!(shard.stats.late, 1);
        let mut queued = 0;
        while shard
            .events
            .pop_until(epoch + Duration::from_secs(1))
            .is_some()
        {
            queued += 1;
        }
        assert_eq!(queued, 3, "a late datagram is delivered all the same");
    }

    fn exchange(threads: usize) -> Exchange {
        Exchange {
            shards: threads,
            frontier: (0..threads).map(|_| Frontier(AtomicU64::new(0))).collect(),
            broken: AtomicBool::new(false),
            crossing: (0..threads * threads)
                .map(|_| Mutex::new(Vec::new()))
                .collect(),
        }
    }

    /// A thread that panics while running its shards marks the exchange
    /// broken, and a thread waiting for its frontier to move then panics
    /// too instead of waiting for ever (the panic reaches the caller of
    /// `run_to`). A thread that returns leaves it whole.
    #[test]
    fn a_panicking_thread_stops_the_others_waiting() {
        let exchange = exchange(2);
        {
            let _breaker = Breaker(&exchange.broken);
        }
        assert!(!exchange.broken.load(Ordering::Relaxed), "a clean return");
        let unwound = std::panic::catch_unwind(|| {
            let _breaker = Breaker(&exchange.broken);
            panic!("a node's piece failed");
        });
        assert!(unwound.is_err());
        assert!(exchange.broken.load(Ordering::Relaxed));

        // Thread 0 waits for thread 1's frontier, which never moves.
        let waited = std::panic::catch_unwind(|| exchange.wait_past(0, 0));
        let message = waited.expect_err("it stops waiting");
        assert_eq!(
            message.downcast_ref::<&str>().copied(),
            Some("another shard's thread panicked")
        );
    }
}
