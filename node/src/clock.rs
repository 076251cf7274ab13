//! The clock a node reads: the real one, or one a test moves by hand.

use std::time::{Duration, Instant};

/// Time for one node, or several (a swarm can share one manual clock).
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system's monotonic clock. The default.
    #[default]
    Real,
    /// Moved by hand: token rotations, expiry, timeouts and lookup
    /// deadlines happen exactly when a test says, whatever the machine's
    /// load. The network stays real.
    Manual(ManualClock),
}

impl Clock {
    /// Now.
    pub fn now(&self) -> Instant {
        self.driver().now()
    }

    pub(crate) fn driver(&self) -> dhtd_actors::Clock {
        match self {
            Clock::Real => dhtd_actors::Clock::Real,
            Clock::Manual(m) => dhtd_actors::Clock::Manual(m.0.clone()),
        }
    }
}

/// A clock that moves only when told to.
///
/// ```
/// use std::time::Duration;
/// let clock = dhtd::ManualClock::new();
/// let start = clock.now();
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(clock.now() - start, Duration::from_secs(60));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock(dhtd_actors::ManualClock);

impl ManualClock {
    /// A clock that starts at the real now.
    pub fn new() -> Self {
        ManualClock(dhtd_actors::ManualClock::new())
    }

    /// Now, as far as the clock's nodes know.
    pub fn now(&self) -> Instant {
        self.0.now()
    }

    /// Moves time on by `d`; every node on this clock then does what is due.
    pub fn advance(&self, d: Duration) {
        self.0.advance(d);
    }

    /// What the nodes on this clock have handled so far, and the wake-ups
    /// they have yet to handle: with [`crate::Dht::heartbeat`] and the
    /// datagram counts, how a test tells that they are idle (see
    /// `dhtd_actors::ManualClock::activity`).
    pub fn activity(&self) -> Activity {
        let a = self.0.activity();
        Activity {
            handled: a.handled,
            pending: a.pending,
        }
    }
}

/// A reading of [`ManualClock::activity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    /// Inputs, wake-ups and received batches handled so far.
    pub handled: u64,
    /// Wake-ups asked for and not yet handled.
    pub pending: u64,
}
