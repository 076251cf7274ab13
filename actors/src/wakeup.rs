//! One timer per actor, armed at the next deadline its protocol state
//! reports (quinn's `poll_timeout` pattern), and fired inside the panic
//! boundary like any handler.

use std::time::Instant;

use actix::{AsyncContext, Context, SpawnHandle};

use crate::supervision::{guarded, Supervised};

/// The one pending wake-up of an actor.
#[derive(Debug, Default)]
pub(crate) struct Wakeup(Option<(SpawnHandle, Instant)>);

/// An actor driven by one timer.
pub(crate) trait Timed: Supervised {
    /// Its timer.
    fn wakeup(&mut self) -> &mut Wakeup;
    /// The timer fired: do what is due and arm the next deadline.
    fn on_wakeup(&mut self, ctx: &mut Context<Self>);
}

/// Whether a new deadline replaces a later one only, or any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arm {
    /// Keep an earlier wake-up already armed (the deadline only adds work).
    KeepEarlier,
    /// The deadline is the actor's next one, earlier or later.
    Replace,
}

/// Wakes `actor` at `deadline`.
pub(crate) fn wake_at<A: Timed>(actor: &mut A, ctx: &mut Context<A>, deadline: Instant, arm: Arm) {
    if let Some((handle, at)) = actor.wakeup().0 {
        if arm == Arm::KeepEarlier && at <= deadline {
            return;
        }
        ctx.cancel_future(handle);
    }
    let wait = deadline.saturating_duration_since(Instant::now());
    let handle = ctx.run_later(wait, |this: &mut A, ctx| {
        guarded(this, ctx, |this, ctx| {
            this.wakeup().0 = None;
            this.on_wakeup(ctx);
        });
    });
    actor.wakeup().0 = Some((handle, deadline));
}

/// After a caught panic: drops the pending wake-up and runs the timer's
/// work at once, which arms the next one.
pub(crate) fn restart<A: Timed>(actor: &mut A, ctx: &mut Context<A>) {
    if let Some((handle, _)) = actor.wakeup().0.take() {
        ctx.cancel_future(handle);
    }
    actor.on_wakeup(ctx);
}
