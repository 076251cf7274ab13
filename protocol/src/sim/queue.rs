//! The simulator's event queue: events in order of time, and of scheduling
//! at equal times (so a seed replays exactly).
//!
//! A binary heap of small keys (time and sequence packed in one integer,
//! and a slot) over a slab of the events themselves: at 10^5 nodes the
//! queue holds about a million events, and a heap that moves 32-byte keys
//! touches far less memory per event than a B-tree of whole events.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// Events of type `E` by virtual time.
#[derive(Debug)]
pub(crate) struct EventQueue<E> {
    epoch: Instant,
    /// (nanoseconds since the epoch << 64 | sequence, slot).
    heap: BinaryHeap<Reverse<(u128, u32)>>,
    slots: Vec<Option<E>>,
    free: Vec<u32>,
    seq: u64,
}

impl<E> EventQueue<E> {
    /// An empty queue for times from `epoch` on.
    pub(crate) fn new(epoch: Instant) -> Self {
        EventQueue {
            epoch,
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            seq: 0,
        }
    }

    fn key(&self, at: Instant) -> u128 {
        let nanos = at.saturating_duration_since(self.epoch).as_nanos();
        // 2^64 ns is 584 years of virtual time.
        (nanos.min(u64::MAX as u128) << 64) | self.seq as u128
    }

    /// Adds `event` at `at`, after every event already at `at`.
    pub(crate) fn push(&mut self, at: Instant, event: E) {
        self.seq += 1;
        let key = self.key(at);
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
        self.heap.push(Reverse((key, slot)));
    }

    /// Takes the first event, with its time, if it is not after `until`.
    pub(crate) fn pop_until(&mut self, until: Instant) -> Option<(Instant, E)> {
        let Reverse((key, slot)) = *self.heap.peek()?;
        let at = self.epoch + Duration::from_nanos((key >> 64) as u64);
        if at > until {
            return None;
        }
        self.heap.pop();
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
        let mut q = EventQueue::new(t0);
        q.push(t0 + ms(5), "c");
        q.push(t0 + ms(1), "a");
        q.push(t0 + ms(5), "d");
        q.push(t0 + ms(1), "b");
        assert_eq!(q.pop_until(t0), None, "nothing is due yet");
        assert_eq!(q.pop_until(t0 + ms(1)), Some((t0 + ms(1), "a")));
        // A slot freed is reused, and order still holds.
        q.push(t0 + ms(3), "x");
        let end = t0 + ms(5);
        let rest: Vec<_> = std::iter::from_fn(|| q.pop_until(end))
            .map(|(_, e)| e)
            .collect();
        assert_eq!(rest, ["b", "x", "c", "d"]);
        assert_eq!(q.pop_until(end), None);
    }

    #[test]
    fn time_before_the_epoch_counts_as_the_epoch() {
        let t0 = crate::test_epoch() + Duration::from_secs(10);
        let mut q = EventQueue::new(t0);
        q.push(t0 - Duration::from_secs(1), 1);
        assert_eq!(q.pop_until(t0), Some((t0, 1)));
    }
}
