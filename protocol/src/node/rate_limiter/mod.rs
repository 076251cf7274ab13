//! The rate limiter: the gate on both directions of the node's traffic.
//!
//! Inbound, [`gate`] admits each datagram against a per-IP budget *before*
//! decoding it (as libtorrent's dos_blocker does), decodes it once and
//! hands queries to the store, which answers them, and responses to the
//! transaction table. Outbound, [`pacer`] holds the node's query budget:
//! queries beyond it wait in a bounded queue instead of going out in a
//! burst, and the same target is never asked of the same node twice within
//! the spacing: a repeat waits until the spacing has passed.

pub mod gate;
pub mod pacer;

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Datagram, NodeConfig, Outputs, Piece, RateLimiterInput};
use crate::telemetry::{Component, Telemetry};

/// How often per-IP budgets that have refilled completely are forgotten:
/// at the first datagram after this long, not on a timer of its own (a
/// budget forgotten late is the same as a full one, and a timer woke every
/// node every 10 s, a seventh of all events in a simulated network).
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// The gate and the pacer: the rate limiter's piece.
#[derive(Debug)]
pub struct RateLimiter {
    gate: gate::Gate,
    pacer: pacer::Pacer,
    next_sweep: Instant,
    telemetry: Arc<Telemetry>,
    outputs: Outputs,
}

/// The upload budget in force, as a gauge.
fn set_upload_gauge(telemetry: &Telemetry, config: &NodeConfig) {
    let rate = config.limits.upload.map_or(0.0, |r| r.per_second);
    telemetry.upload_limit.set((), rate as u64);
}

impl RateLimiter {
    /// With the limits of `config`.
    pub fn new(now: Instant, config: &NodeConfig, telemetry: Arc<Telemetry>) -> Self {
        set_upload_gauge(&telemetry, config);
        RateLimiter {
            gate: gate::Gate::new(config),
            pacer: pacer::Pacer::new(now, &config.limits),
            next_sweep: now + SWEEP_EVERY,
            telemetry,
            outputs: Outputs::default(),
        }
    }

    /// Shares the node's upload budget (one for every piece that sends).
    pub fn with_upload(mut self, upload: Arc<crate::upload::UploadBudget>) -> Self {
        self.gate.upload = upload.clone();
        self.pacer.upload = upload;
        self
    }

    /// Queries waiting for the budget or their spacing.
    pub fn queued(&self) -> usize {
        self.pacer.queued()
    }

    /// Admits and decodes datagrams: a socket's batch, or the simulator's
    /// one.
    fn datagrams<B>(&mut self, now: Instant, batch: B)
    where
        B: IntoIterator<Item = Datagram>,
        B::IntoIter: ExactSizeIterator,
    {
        let batch = batch.into_iter();
        // They have left the mailbox the socket counted them into.
        self.telemetry.inbound_backlog.sub((), batch.len() as u64);
        if now >= self.next_sweep {
            self.next_sweep = now + SWEEP_EVERY;
            self.gate.forget_idle(now);
        }
        self.gate
            .handle_datagrams(now, batch, &self.telemetry, &mut self.outputs);
    }
}

impl Piece for RateLimiter {
    type Input = RateLimiterInput;
    const COMPONENT: Component = Component::RateLimiter;

    fn handle(&mut self, now: Instant, input: RateLimiterInput) {
        match input {
            RateLimiterInput::Datagrams(batch) => self.datagrams(now, batch),
            RateLimiterInput::Datagram(datagram) => self.datagrams(now, [datagram]),
            RateLimiterInput::Send(query) => {
                self.pacer
                    .handle_send(now, query, &self.telemetry, &mut self.outputs)
            }
            RateLimiterInput::Reconfigure(config) => {
                self.gate.reconfigure(&config);
                self.pacer.reconfigure(&config.limits);
                // The one shared budget: set here, for every piece.
                self.pacer.upload.set_rate(config.limits.upload);
                set_upload_gauge(&self.telemetry, &config);
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.pacer
            .handle_timeout(now, &self.telemetry, &mut self.outputs);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.pacer.poll_timeout()
    }

    fn outputs(&mut self) -> &mut Outputs {
        &mut self.outputs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Datagram;
    use bytes::Bytes;
    use std::net::SocketAddr;

    fn ping_from(ip: [u8; 4]) -> RateLimiterInput {
        let bytes = Bytes::from_static(b"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:aa1:y1:qe");
        let from = SocketAddr::from((ip, 6881));
        RateLimiterInput::Datagrams(vec![Datagram { from, bytes }])
    }

    /// An idle node wakes for nothing here: budgets that refilled are
    /// forgotten at the first datagram after the sweep interval.
    #[test]
    fn refilled_budgets_are_forgotten_at_the_next_datagram_not_on_a_timer() {
        let t0 = crate::test_epoch();
        let telemetry = Arc::new(Telemetry::default());
        let mut r = RateLimiter::new(t0, &NodeConfig::default(), telemetry);
        r.telemetry.inbound_backlog.add((), 2);
        assert_eq!(r.poll_timeout(), None);
        r.handle(t0, ping_from([10, 0, 0, 1]));
        assert_eq!(r.gate.tracked(), 1);
        assert_eq!(r.poll_timeout(), None, "no timer for the sweep");
        r.handle(t0 + 6 * SWEEP_EVERY, ping_from([10, 0, 1, 1]));
        assert_eq!(r.gate.tracked(), 1, "the first source was forgotten");
    }
}
