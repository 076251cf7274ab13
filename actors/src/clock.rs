//! The one clock a node's actors read: the real one in production, a
//! manual one in tests (nearcore's `Clock` / `FakeClock`).
//!
//! With a manual clock, time moves only when the test calls
//! [`ManualClock::advance`], and every actor subscribed to it is then told
//! to look at its deadlines: token rotations, store expiry, idle timeouts
//! and lookup deadlines happen exactly when the test says, whatever the
//! machine's load. The network stays real.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Message, Recipient};
use parking_lot::Mutex;

/// Time for one node (or several: a swarm shares one manual clock).
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// `Instant::now()`.
    #[default]
    Real,
    /// Moved by hand.
    Manual(ManualClock),
}

impl Clock {
    /// A manual clock starting at the real now.
    pub fn manual() -> Clock {
        Clock::Manual(ManualClock::new())
    }

    /// Now.
    pub fn now(&self) -> Instant {
        match self {
            Clock::Real => Instant::now(),
            Clock::Manual(m) => m.now(),
        }
    }

    /// The manual clock, if this is one.
    pub fn as_manual(&self) -> Option<&ManualClock> {
        match self {
            Clock::Real => None,
            Clock::Manual(m) => Some(m),
        }
    }
}

/// Tells an actor that the manual clock moved: it runs what is due.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Tick;

#[derive(Debug)]
struct Inner {
    now: Instant,
    subscribers: Vec<Recipient<Tick>>,
}

/// What the nodes on a manual clock have done, for a test to tell when
/// they have done all they will do until the clock moves (see
/// [`ManualClock::activity`]).
#[derive(Debug, Default)]
struct Counters {
    /// Inputs, wake-ups and received batches handled.
    handled: AtomicU64,
    /// Wake-ups asked for and not yet handled.
    pending: AtomicU64,
}

/// A reading of [`ManualClock::activity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    /// Inputs, wake-ups and received batches handled so far.
    pub handled: u64,
    /// Wake-ups asked for and not yet handled.
    pub pending: u64,
}

/// A clock that moves only when told to.
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<Mutex<Inner>>,
    counters: Arc<Counters>,
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl ManualClock {
    /// Starts at the real now.
    pub fn new() -> Self {
        ManualClock {
            inner: Arc::new(Mutex::new(Inner {
                // The one read of the real clock: the epoch.
                now: Instant::now(),
                subscribers: Vec::new(),
            })),
            counters: Arc::default(),
        }
    }

    /// Now, as far as the clock's users know.
    pub fn now(&self) -> Instant {
        self.inner.lock().now
    }

    /// Moves time on by `d` and tells every subscribed actor.
    pub fn advance(&self, d: Duration) {
        let subscribers = {
            let mut inner = self.inner.lock();
            inner.now += d;
            // Actors that stopped have closed mailboxes: forget them.
            inner.subscribers.retain(Recipient::connected);
            inner.subscribers.clone()
        };
        for s in subscribers {
            self.wake_up(&s);
        }
    }

    /// Tells `actor` to look at its deadlines, counted as pending until it
    /// has (see [`ManualClock::handled_wake_up`]).
    pub fn wake_up(&self, actor: &Recipient<Tick>) {
        self.counters.pending.fetch_add(1, Ordering::SeqCst);
        actor.do_send(Tick);
    }

    /// An actor handled a [`Tick`].
    pub fn handled_wake_up(&self) {
        self.counters.pending.fetch_sub(1, Ordering::SeqCst);
        self.handled();
    }

    /// An actor handled an input, or handed on received datagrams: called
    /// after whatever the handling sent is in its addressees' mailboxes.
    pub fn handled(&self) {
        self.counters.handled.fetch_add(1, Ordering::SeqCst);
    }

    /// What the clock's actors have done. A test knows they are idle when
    /// a reading, then a message through every actor's mailbox (a
    /// heartbeat), then another reading find nothing handled in between and
    /// no wake-up pending, and every datagram sent was received: whatever
    /// was queued before the first reading was handled before the
    /// heartbeat, and would have counted.
    pub fn activity(&self) -> Activity {
        Activity {
            handled: self.counters.handled.load(Ordering::SeqCst),
            pending: self.counters.pending.load(Ordering::SeqCst),
        }
    }

    /// `actor` is told of every move.
    pub fn subscribe(&self, actor: Recipient<Tick>) {
        self.inner.lock().subscribers.push(actor);
    }
}
