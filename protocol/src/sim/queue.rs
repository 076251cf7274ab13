//! The simulator's event queue: events in order of time, and of scheduling
//! at equal times (so a seed replays exactly).
//!
//! An event's key is its time, then where it was scheduled (the shard,
//! for an event another shard sent) and that shard's count of events
//! scheduled so far: an order no thread's timing changes.
//!
//! A radix heap of small keys (time and sequence packed in one integer, and
//! a slot) over a slab of the events themselves. Virtual time never goes
//! back, so every key pushed is above the last one taken, which is all a
//! radix heap needs: a key waits in the bucket of the highest bit where it
//! differs from the last key taken, and moves down at most once per bit.
//! At 10^5 nodes the queue holds about a million events, and a binary
//! heap's sift through them was a tenth of the simulator's time; pushes
//! here append to a vector and pops scan only the lowest bucket.

use std::time::{Duration, Instant};

/// Buckets: one per bit of a key, and one for the key equal to the last.
const BUCKETS: usize = 129;
/// Room a bucket keeps once emptied.
const KEPT_ROOM: usize = 1024;

/// Events of type `E` by virtual time.
#[derive(Debug)]
pub(crate) struct EventQueue<E> {
    epoch: Instant,
    /// The last key taken: every key held is above it.
    last: u128,
    /// (nanoseconds since the epoch << 64 | origin << 56 | sequence, slot), by the highest
    /// bit where the key differs from `last`.
    buckets: Vec<Vec<(u128, u32)>>,
    slots: Vec<Option<E>>,
    free: Vec<u32>,
    /// The shard this queue's own events are scheduled by.
    origin: u64,
    /// The first key, when known: a shard waiting for others asks often.
    first: Option<u128>,
    seq: u64,
}

/// Bits of a key's low half that count events; the rest name the shard.
const SEQ_BITS: u32 = 56;

fn bucket_of(key: u128, last: u128) -> usize {
    (u128::BITS - (key ^ last).leading_zeros()) as usize
}

impl<E> EventQueue<E> {
    /// An empty queue for times from `epoch` on, of shard `origin`.
    pub(crate) fn new(epoch: Instant, origin: usize) -> Self {
        EventQueue {
            epoch,
            last: 0,
            buckets: (0..BUCKETS).map(|_| Vec::new()).collect(),
            slots: Vec::new(),
            free: Vec::new(),
            origin: origin as u64,
            first: None,
            seq: 0,
        }
    }

    fn key(&self, at: Instant, origin: u64, seq: u64) -> u128 {
        let nanos = at.saturating_duration_since(self.epoch).as_nanos();
        // 2^64 ns is 584 years of virtual time. A time before the last one
        // taken runs at that time (after what is already there): the
        // driver's clock never goes back either.
        let nanos = nanos.min(u64::MAX as u128).max(self.last >> 64);
        let low = origin << SEQ_BITS | (seq & ((1 << SEQ_BITS) - 1));
        (nanos << 64) | low as u128
    }

    /// A number for one more event scheduled by this queue's shard (its
    /// own, or one it sends to another shard's queue).
    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Adds `event` at `at`, after every event already at `at`.
    pub(crate) fn push(&mut self, at: Instant, event: E) {
        let seq = self.next_seq();
        self.push_from(at, self.origin, seq, event);
    }

    /// Adds `event` at `at`, scheduled by shard `origin` as its `seq`th.
    pub(crate) fn push_from(&mut self, at: Instant, origin: u64, seq: u64, event: E) {
        let key = self.key(at, origin, seq);
        self.first = self.first.map(|first| first.min(key));
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(event);
                slot
            }
            None => {
                self.slots.push(Some(event));
                (self.slots.len() - 1) as u32
            }
        };
        self.buckets[bucket_of(key, self.last)].push((key, slot));
    }

    /// The time of the first event, if any.
    pub(crate) fn peek(&mut self) -> Option<Instant> {
        if self.first.is_none() {
            let b = self.buckets.iter().position(|v| !v.is_empty())?;
            self.first = self.buckets[b].iter().map(|(key, _)| *key).min();
        }
        let key = self.first?;
        Some(self.epoch + Duration::from_nanos((key >> 64) as u64))
    }

    /// Takes the first event, with its time, if it is not after `until`.
    pub(crate) fn pop_until(&mut self, until: Instant) -> Option<(Instant, E)> {
        let b = self.buckets.iter().position(|v| !v.is_empty())?;
        let (i, &(key, slot)) = self.buckets[b]
            .iter()
            .enumerate()
            .min_by_key(|(_, (key, _))| *key)?;
        let at = self.epoch + Duration::from_nanos((key >> 64) as u64);
        if at > until {
            return None;
        }
        self.buckets[b].swap_remove(i);
        self.first = None;
        if b > 0 {
            // The rest of this bucket shares more bits with the new last
            // key: each moves to a lower bucket.
            self.last = key;
            let mut rest = std::mem::take(&mut self.buckets[b]);
            for (k, s) in rest.drain(..) {
                self.buckets[bucket_of(k, key)].push((k, s));
            }
            // A small bucket keeps its room; a large one gives it back, or
            // every bucket would keep the peak of a million-event queue
            // (refilling costs no more than the move just made).
            if rest.capacity() <= KEPT_ROOM {
                self.buckets[b] = rest;
            }
        }
        let event = self.slots[slot as usize].take()?;
        self.free.push(slot);
        Some((at, event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_by_time_then_in_the_order_they_were_scheduled() {
        let t0 = crate::test_epoch();
        let ms = Duration::from_millis;
        let mut q = EventQueue::new(t0, 0);
        q.push(t0 + ms(5), "c");
        q.push(t0 + ms(1), "a");
        q.push(t0 + ms(5), "d");
        q.push(t0 + ms(1), "b");
        assert_eq!(q.pop_until(t0), None, "nothing is due yet");
        assert_eq!(q.peek(), Some(t0 + ms(1)));
        assert_eq!(q.pop_until(t0 + ms(1)), Some((t0 + ms(1), "a")));
        // A slot freed is reused, and order still holds.
        q.push(t0 + ms(3), "x");
        let end = t0 + ms(5);
        let rest: Vec<_> = std::iter::from_fn(|| q.pop_until(end))
            .map(|(_, e)| e)
            .collect();
        assert_eq!(rest, ["b", "x", "c", "d"]);
        assert_eq!(q.pop_until(end), None);
        assert_eq!(q.peek(), None);
    }

    #[test]
    fn interleaved_pushes_and_pops_keep_time_then_scheduling_order() {
        use rand::{Rng, SeedableRng};
        let t0 = crate::test_epoch();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut q = EventQueue::new(t0, 0);
        // The reference: (time, order scheduled) in a sorted map.
        let mut reference = std::collections::BTreeMap::new();
        let mut now = t0;
        for n in 0..20_000u32 {
            if rng.random_bool(0.55) {
                // Many at equal times, some far ahead, as the driver does.
                let ahead = match rng.random_range(0..4) {
                    0 => Duration::ZERO,
                    1 => Duration::from_micros(rng.random_range(0..50)),
                    2 => Duration::from_millis(rng.random_range(0..2_000)),
                    _ => Duration::from_secs(rng.random_range(0..900)),
                };
                q.push(now + ahead, n);
                reference.insert((now + ahead, n), n);
            } else {
                let until = now + Duration::from_millis(rng.random_range(0..20));
                let first = reference.first_key_value().map(|((at, _), _)| *at);
                assert_eq!(q.peek(), first, "after {n} steps");
                let expected = reference
                    .first_key_value()
                    .filter(|((at, _), _)| *at <= until)
                    .map(|((at, _), &e)| (*at, e));
                let got = q.pop_until(until);
                assert_eq!(got, expected, "after {n} steps");
                match got {
                    Some((at, e)) => {
                        reference.remove(&(at, e));
                        now = at;
                    }
                    None => now = until,
                }
            }
        }
        while let Some(((at, _), e)) = reference.pop_first() {
            assert_eq!(q.pop_until(at), Some((at, e)));
        }
        assert_eq!(q.pop_until(t0 + Duration::from_secs(10_000)), None);
    }

    #[test]
    fn at_equal_times_events_go_by_the_shard_that_scheduled_them_then_its_count() {
        let t0 = crate::test_epoch();
        let at = t0 + Duration::from_millis(3);
        let mut q = EventQueue::new(t0, 1);
        // Handed over late, in any order: their keys were fixed when sent.
        q.push_from(at, 2, 9, "shard 2, 9th");
        q.push(at, "own, 1st");
        q.push_from(at, 0, 40, "shard 0, 40th");
        q.push_from(at, 2, 4, "shard 2, 4th");
        q.push(at, "own, 2nd");
        let order: Vec<_> = std::iter::from_fn(|| q.pop_until(at))
            .map(|(_, e)| e)
            .collect();
        assert_eq!(
            order,
            [
                "shard 0, 40th",
                "own, 1st",
                "own, 2nd",
                "shard 2, 4th",
                "shard 2, 9th"
            ]
        );
    }

    #[test]
    fn time_before_the_epoch_counts_as_the_epoch() {
        let t0 = crate::test_epoch() + Duration::from_secs(10);
        let mut q = EventQueue::new(t0, 0);
        q.push(t0 - Duration::from_secs(1), 1);
        assert_eq!(q.pop_until(t0), Some((t0, 1)));
    }
}
