//! The one clock a node's actors read: the real one in production, a
//! manual one in tests (nearcore's `Clock` / `FakeClock`).
//!
//! With a manual clock, time moves only when the test calls
//! [`ManualClock::advance`], and every actor subscribed to it is then told
//! to look at its deadlines: token rotations, store expiry, idle timeouts
//! and lookup deadlines happen exactly when the test says, whatever the
//! machine's load. The network stays real.

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

/// A clock that moves only when told to.
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<Mutex<Inner>>,
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
            s.do_send(Tick);
        }
    }

    /// `actor` is told of every move.
    pub fn subscribe(&self, actor: Recipient<Tick>) {
        self.inner.lock().subscribers.push(actor);
    }
}
