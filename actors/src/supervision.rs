//! Supervision: how an actor survives a panic in one of its handlers.
//!
//! actix does not restart a panicked actor (a panic in a handler closes its
//! mailbox for good), and its `Supervisor` restarts only actors that stop
//! themselves, which would also make a clean shutdown impossible while any
//! other actor holds the address. So every handler and timer body runs
//! inside [`guarded`]: a panic is caught at that boundary, counted and
//! logged, and the actor is restarted in place: its timers and loops are
//! cancelled and armed again by [`Supervised::restart`], while its mailbox,
//! its address and its protocol state (routing table, store, token
//! secrets) are kept. Callers holding the address never notice.
//!
//! What is lost is the one message whose handler panicked. A panic that
//! left protocol state half-updated is a bug either way; the state types
//! keep their invariants per call, so a half-finished handler leaves at
//! worst a stale entry, never a broken structure.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use actix::{Actor, Context};

use crate::counters::{ActorKind, Counters};

/// An actor whose handlers run under [`guarded`].
pub trait Supervised: Actor<Context = Context<Self>> {
    /// Which actor this is, for counting and logs.
    const KIND: ActorKind;

    /// The node's counters, where the restart is counted.
    fn counters(&self) -> &Arc<Counters>;

    /// Cancels and re-arms this actor's timers and loops after a caught
    /// panic. The actor's state is kept.
    fn restart(&mut self, ctx: &mut Context<Self>);
}

/// Runs `body`; if it panics, counts and logs the failure and restarts the
/// actor in place. Returns `R::default()` in that case.
pub fn guarded<A, R>(
    actor: &mut A,
    ctx: &mut Context<A>,
    body: impl FnOnce(&mut A, &mut Context<A>) -> R,
) -> R
where
    A: Supervised,
    R: Default,
{
    match catch_unwind(AssertUnwindSafe(|| body(actor, ctx))) {
        Ok(r) => r,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(
                target: "dht::supervisor",
                actor = A::KIND.label(),
                panic = %what,
                "actor panicked; restarting it with its state"
            );
            actor.counters().restarted(A::KIND);
            actor.restart(ctx);
            R::default()
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

/// Implements the lifecycle handlers every actor shares: [`StopActor`], and
/// `InjectPanic` when fault injection is compiled in.
macro_rules! lifecycle {
    ($actor:ty) => {
        impl actix::Handler<$crate::supervision::StopActor> for $actor {
            type Result = ();
            fn handle(
                &mut self,
                _: $crate::supervision::StopActor,
                ctx: &mut actix::Context<Self>,
            ) {
                actix::ActorContext::stop(ctx);
            }
        }
        $crate::supervision::fault_hook!($actor);
    };
}
pub(crate) use lifecycle;

#[cfg(feature = "fault-injection")]
macro_rules! fault_hook {
    ($actor:ty) => {
        impl actix::Handler<$crate::supervision::InjectPanic> for $actor {
            type Result = ();
            fn handle(
                &mut self,
                _: $crate::supervision::InjectPanic,
                ctx: &mut actix::Context<Self>,
            ) {
                $crate::supervision::guarded(self, ctx, |_, _| {
                    panic!("injected fault");
                })
            }
        }
    };
}
#[cfg(not(feature = "fault-injection"))]
macro_rules! fault_hook {
    ($actor:ty) => {};
}
pub(crate) use fault_hook;
