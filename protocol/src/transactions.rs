//! Outstanding outbound queries: transaction ids, deadlines, retransmits.
//!
//! Ids are 4 random bytes, unique among the pending ones: the `mainline`
//! crate answers only 4-byte ids, and randomness makes replies hard to forge.
//! A response matches only if it comes from the address queried. The table
//! is bounded by [`TransactionConfig::max_pending`]; when it is full a new
//! query is refused, so the caller can queue or drop it and count that.
//!
//! A node on a slow link (a saturated uplink, a satellite hop) may see every
//! round trip take longer than the configured timeout. So a query that
//! timed out is remembered until [`MAX_TIMEOUT`] after it was sent, and an
//! answer that comes in that time is reported as late, with its round trip
//! ([`Unmatched::Late`]); the measured round trips then lengthen the
//! timeout, up to [`MAX_TIMEOUT`] ([`TransactionTable::set_measured_timeout`]).
//! Without this, such a node never hears an answer and never bootstraps.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::RngCore;

/// Length of the transaction ids we send.
pub const TRANSACTION_ID_LEN: usize = 4;

/// A transaction id we allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(pub [u8; TRANSACTION_ID_LEN]);

impl TransactionId {
    /// The bytes sent as `t`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Timing and size of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionConfig {
    /// How long to wait for each attempt. Defaults to 2 seconds.
    pub timeout: Duration,
    /// Sends per query, the first included. Defaults to 1 (no
    /// retransmission): a lookup routes around a silent node faster than
    /// it can wait for it; a lossy network may want 2 or more.
    pub attempts: u8,
    /// Queries pending at once. Defaults to 1024.
    pub max_pending: usize,
}

impl Default for TransactionConfig {
    fn default() -> Self {
        TransactionConfig {
            timeout: Duration::from_secs(2),
            attempts: 1,
            max_pending: 1024,
        }
    }
}

#[derive(Debug, Clone)]
struct Pending<T> {
    to: SocketAddr,
    sent_at: Instant,
    deadline: Instant,
    attempts_left: u8,
    payload: T,
}

/// The shortest wait before a retransmission, whatever round trips say.
pub const MIN_RETRANSMIT_AFTER: Duration = Duration::from_millis(250);

/// The longest the timeout grows to, and how long after its last send a
/// timed-out query is still recognised when its answer comes late.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a response matched nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmatched {
    /// No pending query has this id (late, duplicate or forged).
    UnknownId,
    /// The id is pending, but for another address.
    WrongAddress,
    /// An answer to a query that timed out, from the address asked, this
    /// long after the query's last send.
    Late {
        /// The round trip it took.
        rtt: Duration,
    },
}

/// A query that was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed<T> {
    /// Whom it was sent to.
    pub to: SocketAddr,
    /// Time since the last send.
    pub rtt: Duration,
    /// What the caller attached.
    pub payload: T,
}

/// What a deadline produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expired<T> {
    /// Send the query again (same id); it stays pending.
    Retransmit {
        /// The id.
        id: TransactionId,
        /// Where to send.
        to: SocketAddr,
    },
    /// No answer after every attempt; the query is removed.
    TimedOut {
        /// The id.
        id: TransactionId,
        /// Whom it was sent to.
        to: SocketAddr,
        /// What the caller attached.
        payload: T,
    },
}

/// The table is at [`TransactionConfig::max_pending`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many pending queries")]
pub struct TableFull;

/// Pending queries, each with a caller's payload `T`.
#[derive(Debug, Clone)]
pub struct TransactionTable<T> {
    pending: BTreeMap<TransactionId, Pending<T>>,
    deadlines: BTreeSet<(Instant, TransactionId)>,
    config: TransactionConfig,
    waits: Waits,
    /// Queries that timed out: their answers may still come (at most
    /// `max_pending`), with when each was last sent and where to.
    timed_out: HashMap<TransactionId, (Instant, SocketAddr)>,
    /// The same, oldest first, to forget them in order.
    timed_out_order: VecDeque<(Instant, TransactionId)>,
}

/// How long attempts wait.
#[derive(Debug, Clone, Copy)]
struct Waits {
    /// An attempt that will be retried.
    retransmit_after: Duration,
    /// The last attempt: the configured timeout, or longer where measured
    /// round trips say so.
    timeout: Duration,
}

impl Waits {
    /// How long an attempt with `attempts_left` retries after it waits.
    fn after(self, attempts_left: u8) -> Duration {
        if attempts_left > 0 {
            self.retransmit_after
        } else {
            self.timeout
        }
    }
}

impl<T> TransactionTable<T> {
    /// Applies a new cap from now on; queries already pending stay.
    pub fn set_max_pending(&mut self, max_pending: usize) {
        self.config.max_pending = max_pending;
    }

    /// An empty table.
    pub fn new(config: TransactionConfig) -> Self {
        TransactionTable {
            pending: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            config,
            waits: Waits {
                retransmit_after: config.timeout,
                timeout: config.timeout,
            },
            timed_out: HashMap::new(),
            timed_out_order: VecDeque::new(),
        }
    }

    /// Sets how long an attempt that will be retried waits: measured round
    /// trips say when an answer is overdue, within
    /// [`MIN_RETRANSMIT_AFTER`] and the configured timeout. The last
    /// attempt always waits the full timeout: it is the slow node's last
    /// chance. With one attempt (the default) nothing changes.
    ///
    /// Where round trips are longer than the configured timeout (our own
    /// link is slow), the last attempt waits as long as they say, up to
    /// [`MAX_TIMEOUT`]; never shorter than configured.
    pub fn set_measured_timeout(&mut self, after: Duration) {
        let full = self.config.timeout;
        self.waits = Waits {
            retransmit_after: after.clamp(MIN_RETRANSMIT_AFTER.min(full), full),
            timeout: after.clamp(full, MAX_TIMEOUT.max(full)),
        };
    }

    /// How long the last attempt waits now.
    pub fn timeout(&self) -> Duration {
        self.waits.timeout
    }

    /// Registers a query to `to` and returns its fresh id.
    pub fn start(
        &mut self,
        now: Instant,
        rng: &mut impl RngCore,
        to: SocketAddr,
        payload: T,
    ) -> Result<TransactionId, TableFull> {
        if self.pending.len() >= self.config.max_pending {
            return Err(TableFull);
        }
        let id = loop {
            let id = TransactionId(rng.next_u32().to_be_bytes());
            if !self.pending.contains_key(&id) {
                break id;
            }
        };
        let attempts_left = self.config.attempts.max(1) - 1;
        let deadline = now + self.waits.after(attempts_left);
        self.pending.insert(
            id,
            Pending {
                to,
                sent_at: now,
                deadline,
                attempts_left,
                payload,
            },
        );
        self.deadlines.insert((deadline, id));
        Ok(id)
    }

    /// Matches a response or error with transaction id `raw_id` from `from`.
    pub fn on_response(
        &mut self,
        now: Instant,
        raw_id: &[u8],
        from: SocketAddr,
    ) -> Result<Completed<T>, Unmatched> {
        let id = <[u8; TRANSACTION_ID_LEN]>::try_from(raw_id)
            .map(TransactionId)
            .map_err(|_| Unmatched::UnknownId)?;
        match self.pending.get(&id) {
            None => return Err(self.late(now, id, from)),
            Some(p) if p.to != from => return Err(Unmatched::WrongAddress),
            Some(_) => {}
        }
        let p = self.pending.remove(&id).ok_or(Unmatched::UnknownId)?;
        self.deadlines.remove(&(p.deadline, id));
        Ok(Completed {
            to: p.to,
            rtt: now.saturating_duration_since(p.sent_at),
            payload: p.payload,
        })
    }

    /// Forgets a pending query (its requester lost interest).
    pub fn cancel(&mut self, id: TransactionId) -> Option<T> {
        let p = self.pending.remove(&id)?;
        self.deadlines.remove(&(p.deadline, id));
        Some(p.payload)
    }

    /// The earliest deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|(t, _)| *t)
    }

    /// Handles every deadline at or before `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Expired<T>> {
        let mut out = Vec::new();
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            let Some(p) = self.pending.get_mut(&id) else {
                continue;
            };
            if p.attempts_left > 0 {
                p.attempts_left -= 1;
                p.sent_at = now;
                p.deadline = now + self.waits.after(p.attempts_left);
                self.deadlines.insert((p.deadline, id));
                out.push(Expired::Retransmit { id, to: p.to });
            } else if let Some(p) = self.pending.remove(&id) {
                self.remember_timed_out(now, p.sent_at, id, p.to);
                out.push(Expired::TimedOut {
                    id,
                    to: p.to,
                    payload: p.payload,
                });
            }
        }
        out
    }

    /// Keeps a timed-out query's id for its late answer, within bounds.
    fn remember_timed_out(
        &mut self,
        now: Instant,
        sent_at: Instant,
        id: TransactionId,
        to: SocketAddr,
    ) {
        self.forget_timed_out(now);
        if self.timed_out_order.len() >= self.config.max_pending {
            self.forget_oldest_timed_out();
        }
        self.timed_out.insert(id, (sent_at, to));
        self.timed_out_order.push_back((sent_at, id));
    }

    fn forget_oldest_timed_out(&mut self) {
        if let Some((sent_at, id)) = self.timed_out_order.pop_front() {
            // The id may have been used again since, and time out later.
            if self
                .timed_out
                .get(&id)
                .is_some_and(|(at, _)| *at == sent_at)
            {
                self.timed_out.remove(&id);
            }
        }
    }

    /// Drops the timed-out queries too old for an answer to count.
    fn forget_timed_out(&mut self, now: Instant) {
        while self
            .timed_out_order
            .front()
            .is_some_and(|(sent_at, _)| now.saturating_duration_since(*sent_at) > MAX_TIMEOUT)
        {
            self.forget_oldest_timed_out();
        }
    }

    /// Why a response with an id not pending matched nothing: late (its
    /// query timed out, and it comes from the address asked), or unknown.
    /// A late answer is recognised once.
    fn late(&mut self, now: Instant, id: TransactionId, from: SocketAddr) -> Unmatched {
        self.forget_timed_out(now);
        match self.timed_out.get(&id) {
            Some(&(sent_at, to)) if to == from => {
                self.timed_out.remove(&id);
                Unmatched::Late {
                    rtt: now.saturating_duration_since(sent_at),
                }
            }
            _ => Unmatched::UnknownId,
        }
    }

    /// The payload of a pending query, for retransmitting it.
    pub fn payload(&self, id: TransactionId) -> Option<&T> {
        self.pending.get(&id).map(|p| &p.payload)
    }

    /// The payload of a pending query, to complete it after the id is known.
    pub fn payload_mut(&mut self, id: TransactionId) -> Option<&mut T> {
        self.pending.get_mut(&id).map(|p| &mut p.payload)
    }

    /// Queries pending.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, n], 6881))
    }

    #[test]
    fn responses_match_by_id_and_address() {
        let t0 = crate::test_epoch();
        let mut rng = StdRng::seed_from_u64(1);
        let mut t = TransactionTable::new(TransactionConfig::default());
        let id = t.start(t0, &mut rng, addr(1), "q1").unwrap();
        assert_eq!(id.as_bytes().len(), 4);
        assert_eq!(
            t.on_response(t0, id.as_bytes(), addr(2)),
            Err(Unmatched::WrongAddress)
        );
        assert_eq!(t.on_response(t0, b"zz", addr(1)), Err(Unmatched::UnknownId));
        let done = t
            .on_response(t0 + Duration::from_millis(40), id.as_bytes(), addr(1))
            .unwrap();
        assert_eq!(done.payload, "q1");
        assert_eq!(done.rtt, Duration::from_millis(40));
        // A duplicate reply matches nothing.
        assert_eq!(
            t.on_response(t0, id.as_bytes(), addr(1)),
            Err(Unmatched::UnknownId)
        );
        assert!(t.is_empty());
    }

    #[test]
    fn ids_are_unique_and_the_table_is_bounded() {
        let t0 = crate::test_epoch();
        let mut rng = StdRng::seed_from_u64(2);
        let cfg = TransactionConfig {
            max_pending: 500,
            ..Default::default()
        };
        let mut t = TransactionTable::new(cfg);
        let mut ids = BTreeSet::new();
        for _ in 0..500 {
            ids.insert(t.start(t0, &mut rng, addr(1), ()).unwrap());
        }
        assert_eq!(ids.len(), 500);
        assert_eq!(t.start(t0, &mut rng, addr(1), ()), Err(TableFull));
    }

    #[test]
    fn deadlines_retransmit_then_time_out() {
        let t0 = crate::test_epoch();
        let mut rng = StdRng::seed_from_u64(3);
        let cfg = TransactionConfig {
            timeout: Duration::from_secs(1),
            attempts: 2,
            max_pending: 10,
        };
        let mut t = TransactionTable::new(cfg);
        let id = t.start(t0, &mut rng, addr(1), 7).unwrap();
        assert_eq!(t.poll_timeout(), Some(t0 + Duration::from_secs(1)));
        assert!(t.expire(t0 + Duration::from_millis(999)).is_empty());
        assert_eq!(
            t.expire(t0 + Duration::from_secs(1)),
            vec![Expired::Retransmit { id, to: addr(1) }]
        );
        assert_eq!(t.payload(id), Some(&7));
        assert_eq!(
            t.expire(t0 + Duration::from_secs(2)),
            vec![Expired::TimedOut {
                id,
                to: addr(1),
                payload: 7
            }]
        );
        assert!(t.is_empty());
        assert_eq!(t.poll_timeout(), None);
    }

    /// Measured round trips set when an attempt that will be retried is
    /// overdue; the last attempt waits the full timeout; a lone attempt is
    /// never shortened.
    #[test]
    fn retransmissions_follow_measured_round_trips_and_the_last_attempt_waits_in_full() {
        let t0 = crate::test_epoch();
        let mut rng = StdRng::seed_from_u64(3);
        let cfg = TransactionConfig {
            timeout: Duration::from_secs(1),
            attempts: 3,
            max_pending: 8,
        };
        let mut t = TransactionTable::new(cfg);
        t.set_measured_timeout(Duration::from_millis(300));
        t.start(t0, &mut rng, addr(1), ()).unwrap();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        assert_eq!(t.poll_timeout(), Some(ms(300)));
        assert!(matches!(
            t.expire(ms(300))[..],
            [Expired::Retransmit { .. }]
        ));
        assert!(matches!(
            t.expire(ms(600))[..],
            [Expired::Retransmit { .. }]
        ));
        assert!(t.expire(ms(1599)).is_empty(), "the last attempt waits 1 s");
        assert!(matches!(t.expire(ms(1600))[..], [Expired::TimedOut { .. }]));
        // Never below the floor, never above the timeout.
        t.set_measured_timeout(Duration::from_millis(1));
        t.start(ms(2000), &mut rng, addr(2), ()).unwrap();
        assert_eq!(t.poll_timeout(), Some(ms(2000) + MIN_RETRANSMIT_AFTER));
        let mut lone = TransactionTable::new(TransactionConfig { attempts: 1, ..cfg });
        lone.set_measured_timeout(Duration::from_millis(300));
        lone.start(t0, &mut rng, addr(3), ()).unwrap();
        assert_eq!(lone.poll_timeout(), Some(ms(1000)));
    }

    /// A node whose every round trip is longer than the timeout: the late
    /// answer is recognised (once, from the address asked, within
    /// MAX_TIMEOUT of the send), and the round trips it measures lengthen
    /// the timeout, up to MAX_TIMEOUT.
    #[test]
    fn late_answers_are_recognised_and_lengthen_the_timeout() {
        let t0 = crate::test_epoch();
        let mut rng = StdRng::seed_from_u64(4);
        let mut t = TransactionTable::new(TransactionConfig::default());
        let s = |n: f64| t0 + Duration::from_secs_f64(n);
        let a = t.start(t0, &mut rng, addr(1), ()).unwrap();
        let b = t.start(t0, &mut rng, addr(2), ()).unwrap();
        let c = t.start(t0, &mut rng, addr(3), ()).unwrap();
        assert_eq!(t.expire(s(2.0)).len(), 3, "all three time out at 2 s");
        let late = Unmatched::Late {
            rtt: Duration::from_millis(2500),
        };
        assert_eq!(t.on_response(s(2.5), a.as_bytes(), addr(1)), Err(late));
        assert_eq!(
            t.on_response(s(2.6), a.as_bytes(), addr(1)),
            Err(Unmatched::UnknownId),
            "a late answer counts once"
        );
        assert_eq!(
            t.on_response(s(2.5), b.as_bytes(), addr(9)),
            Err(Unmatched::UnknownId),
            "from another address"
        );
        assert_eq!(
            t.on_response(
                t0 + MAX_TIMEOUT + Duration::from_millis(1),
                c.as_bytes(),
                addr(3)
            ),
            Err(Unmatched::UnknownId),
            "too late"
        );
        // Round trips of 2.5 s: the next query waits for them.
        t.set_measured_timeout(Duration::from_millis(3750));
        assert_eq!(t.timeout(), Duration::from_millis(3750));
        t.start(s(20.0), &mut rng, addr(4), ()).unwrap();
        assert!(t.expire(s(23.0)).is_empty());
        assert_eq!(t.poll_timeout(), Some(s(23.75)));
        // Never beyond MAX_TIMEOUT, never below the configured timeout.
        t.set_measured_timeout(Duration::from_secs(60));
        assert_eq!(t.timeout(), MAX_TIMEOUT);
        t.set_measured_timeout(Duration::from_millis(100));
        assert_eq!(t.timeout(), Duration::from_secs(2));
    }

    /// What is kept for late answers is bounded by `max_pending`.
    #[test]
    fn timed_out_queries_kept_for_late_answers_are_bounded() {
        let t0 = crate::test_epoch();
        let mut rng = StdRng::seed_from_u64(5);
        let cfg = TransactionConfig {
            max_pending: 4,
            ..TransactionConfig::default()
        };
        let mut t = TransactionTable::new(cfg);
        let mut ids = Vec::new();
        for round in 0..3u64 {
            let at = t0 + Duration::from_millis(round);
            for n in 0..4 {
                ids.push((t.start(at, &mut rng, addr(n), ()).unwrap(), addr(n)));
            }
            t.expire(at + Duration::from_secs(2));
        }
        assert_eq!(t.timed_out.len(), 4);
        assert_eq!(t.timed_out_order.len(), 4);
        let now = t0 + Duration::from_secs(3);
        let (old, to) = ids[0];
        assert_eq!(
            t.on_response(now, old.as_bytes(), to),
            Err(Unmatched::UnknownId)
        );
        let (newest, to) = ids[11];
        assert!(matches!(
            t.on_response(now, newest.as_bytes(), to),
            Err(Unmatched::Late { .. })
        ));
    }
}
