//! Supervision: how an actor survives a panic in one of its handlers.
//!
//! actix does not restart a panicked actor (a panic in a handler closes its
//! mailbox for good), and its `Supervisor` restarts only actors that stop
//! themselves, which would also make a clean shutdown impossible while any
//! other actor holds the address. So every handler and timer body runs
//! inside [`guarded`]: a panic is caught at that boundary, counted
//! (`dht_actor_restarts_total{actor, reason="panicked"}`) and logged, and
//! the actor is restarted in place: its timers and loops are cancelled and
//! armed again by [`Supervised::restart`], while its mailbox, its address
//! and its piece's state (routing table, store, token secrets) are kept.
//! Callers holding the address never notice.
//!
//! What is lost is the one message whose handler panicked. A panic that
//! left a piece half-updated is a bug either way; the pieces keep their
//! invariants per call, so a half-finished handler leaves at worst a stale
//! entry, never a broken structure.

use std::panic::{catch_unwind, AssertUnwindSafe};

use actix::{Actor, Context};
use dhtd_protocol::telemetry::{Component, RestartReason, Telemetry};

/// An actor whose handlers run under [`guarded`].
pub trait Supervised: Actor<Context = Context<Self>> {
    /// Which component this is, for counting and logs.
    fn component(&self) -> Component;

    /// The node's telemetry, where the restart is counted.
    fn telemetry(&self) -> &Telemetry;

    /// Cancels and re-arms this actor's timers and loops after a caught
    /// panic. The actor's state is kept.
    fn restart(&mut self, ctx: &mut Context<Self>);
}

/// Runs `body`; if it panics, counts and logs the failure and restarts the
/// actor in place. Returns `None` in that case.
pub fn guarded<A, R>(
    actor: &mut A,
    ctx: &mut Context<A>,
    body: impl FnOnce(&mut A, &mut Context<A>) -> R,
) -> Option<R>
where
    A: Supervised,
{
    match catch_unwind(AssertUnwindSafe(|| body(actor, ctx))) {
        Ok(r) => Some(r),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let component = actor.component();
            tracing::error!(
                target: "dht::supervisor",
                actor = component.label(),
                panic = %what,
                "actor panicked; restarting it with its state"
            );
            actor
                .telemetry()
                .restarts
                .incr((component, RestartReason::Panicked));
            actor.restart(ctx);
            None
        }
    }
}

/// Stops the receiving actor for good (node shutdown).
#[derive(actix::Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct StopActor;

/// A test-only hook: the receiving actor panics inside its handler.
#[cfg(feature = "fault-injection")]
#[derive(actix::Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct InjectPanic;

/// Are you there? Answered at once by an actor whose thread is free: the
/// watchdog's heartbeat.
#[derive(actix::Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Heartbeat;

/// Test hook: blocks the actor's thread for this long inside a handler, as
/// a stuck actor would (not a panic: the actor is there, but answers
/// nothing).
#[cfg(feature = "fault-injection")]
#[derive(actix::Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct InjectStall(pub std::time::Duration);
