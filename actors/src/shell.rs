//! The shell: the one actor type that runs a piece of the node.
//!
//! A handler reads the clock, calls the piece, hands each envelope it
//! emitted to its addressee through [`Links`], sends its datagrams, and
//! arms the actor's one timer at the piece's `poll_timeout()` (quinn's
//! `ConnectionDriver`). There is no other code in it: every decision is the
//! piece's, so the same behaviour runs in the simulator. Every handler and
//! the timer run inside the panic boundary ([`guarded`]).

use std::time::Instant;

use actix::{
    Actor, ActorContext, AsyncContext, Context, Handler, Message, MessageResult, SpawnHandle,
};
use dhtd_protocol::node::Piece;
use dhtd_protocol::telemetry::{Component, Telemetry};

use crate::clock::{Clock, Tick};
use crate::links::Links;
use crate::socket::DatagramSender;
use crate::supervision::{guarded, StopActor, Supervised};

/// An input for the piece of type `T`'s actor.
#[derive(Debug)]
pub struct In<T>(pub T);

impl<T: Send + 'static> Message for In<T> {
    type Result = ();
}

/// A function that reads a piece at a time.
pub type Reader<P, R> = Box<dyn FnOnce(&P, Instant) -> R + Send>;

/// Reads a piece's state (statistics, the table to save); `None` if the
/// reading panicked.
pub struct Inspect<P, R>(pub Reader<P, R>);

impl<P, R> std::fmt::Debug for Inspect<P, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inspect")
    }
}

impl<P: 'static, R: 'static> Message for Inspect<P, R> {
    type Result = Option<R>;
}

/// An actor that owns one piece.
pub struct Shell<P: Piece> {
    piece: P,
    clock: Clock,
    links: Links,
    sender: DatagramSender,
    /// The one pending wake-up, and its deadline.
    timer: Option<(Option<SpawnHandle>, Instant)>,
    mailbox_capacity: usize,
}

impl<P: Piece> std::fmt::Debug for Shell<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shell")
            .field("component", &P::COMPONENT)
            .finish_non_exhaustive()
    }
}

impl<P> Shell<P>
where
    P: Piece + Unpin + 'static,
{
    /// An actor for `piece`, whose messages go out through `links` and
    /// datagrams through `sender`.
    pub fn new(
        piece: P,
        clock: Clock,
        links: Links,
        sender: DatagramSender,
        mailbox_capacity: usize,
    ) -> Self {
        Shell {
            piece,
            clock,
            links,
            sender,
            timer: None,
            mailbox_capacity,
        }
    }

    /// Delivers what the piece decided and arms the next wake-up.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        let outputs = self.piece.outputs();
        while let Some(envelope) = outputs.pop() {
            envelope.deliver(&mut self.links);
        }
        self.sender.send_all(&mut outputs.outbox);
        self.arm(ctx);
    }

    fn arm(&mut self, ctx: &mut Context<Self>) {
        let next = self.piece.poll_timeout();
        if next == self.timer.as_ref().map(|(_, at)| *at) {
            return;
        }
        if let Some((Some(handle), _)) = self.timer.take() {
            ctx.cancel_future(handle);
        }
        self.timer = None;
        let Some(deadline) = next else { return };
        let now = self.clock.now();
        let handle = match &self.clock {
            Clock::Real => Some(ctx.run_later(
                deadline.saturating_duration_since(now),
                |this, ctx| {
                    this.timer = None;
                    this.wake(ctx);
                },
            )),
            // A manual clock's moves arrive as `Tick`s; only what is due now
            // needs a nudge.
            Clock::Manual(clock) if deadline <= now => {
                clock.wake_up(&ctx.address().recipient());
                None
            }
            Clock::Manual(_) => None,
        };
        self.timer = Some((handle, deadline));
    }

    fn wake(&mut self, ctx: &mut Context<Self>) {
        guarded(self, ctx, |this, ctx| {
            let now = this.clock.now();
            if this.piece.poll_timeout().is_some_and(|at| at <= now) {
                this.piece.handle_timeout(now);
            }
            this.flush(ctx);
        });
    }
}

impl<P> Actor for Shell<P>
where
    P: Piece + Unpin + 'static,
{
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
        if let Some(clock) = self.clock.as_manual() {
            clock.subscribe(ctx.address().recipient());
        }
        // What the piece decided when it was made (the first publication,
        // the first bootstrap attempt).
        self.flush(ctx);
    }
}

impl<P> Supervised for Shell<P>
where
    P: Piece + Unpin + 'static,
{
    fn component(&self) -> Component {
        P::COMPONENT
    }

    fn telemetry(&self) -> &Telemetry {
        &self.links.telemetry
    }

    fn restart(&mut self, ctx: &mut Context<Self>) {
        if let Some((Some(handle), _)) = self.timer.take() {
            ctx.cancel_future(handle);
        }
        self.timer = None;
        self.wake(ctx);
    }
}

impl<P> Handler<In<P::Input>> for Shell<P>
where
    P: Piece + Unpin + 'static,
    P::Input: Send + 'static,
{
    type Result = ();

    fn handle(&mut self, In(input): In<P::Input>, ctx: &mut Context<Self>) {
        guarded(self, ctx, |this, ctx| {
            let now = this.clock.now();
            this.piece.handle(now, input);
            this.flush(ctx);
        });
        if let Some(clock) = self.clock.as_manual() {
            clock.handled();
        }
    }
}

impl<P> Handler<Tick> for Shell<P>
where
    P: Piece + Unpin + 'static,
{
    type Result = ();

    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) {
        self.timer = None;
        self.wake(ctx);
        if let Some(clock) = self.clock.as_manual() {
            clock.handled_wake_up();
        }
    }
}

impl<P, R> Handler<Inspect<P, R>> for Shell<P>
where
    P: Piece + Unpin + 'static,
    R: 'static,
{
    type Result = MessageResult<Inspect<P, R>>;

    fn handle(&mut self, Inspect(f): Inspect<P, R>, ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(guarded(self, ctx, |this, _| {
            f(&this.piece, this.clock.now())
        }))
    }
}

impl<P> Handler<StopActor> for Shell<P>
where
    P: Piece + Unpin + 'static,
{
    type Result = ();

    fn handle(&mut self, _: StopActor, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl<P> Handler<crate::supervision::Heartbeat> for Shell<P>
where
    P: Piece + Unpin + 'static,
{
    type Result = ();

    fn handle(&mut self, _: crate::supervision::Heartbeat, _: &mut Context<Self>) {}
}

#[cfg(feature = "fault-injection")]
impl<P> Handler<crate::supervision::InjectStall> for Shell<P>
where
    P: Piece + Unpin + 'static,
{
    type Result = ();

    fn handle(&mut self, stall: crate::supervision::InjectStall, _: &mut Context<Self>) {
        std::thread::sleep(stall.0);
    }
}

#[cfg(feature = "fault-injection")]
impl<P> Handler<crate::supervision::InjectPanic> for Shell<P>
where
    P: Piece + Unpin + 'static,
{
    type Result = ();

    fn handle(&mut self, _: crate::supervision::InjectPanic, ctx: &mut Context<Self>) {
        guarded(self, ctx, |_, _| panic!("injected fault"));
    }
}
