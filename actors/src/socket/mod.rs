//! SocketActor: owns the UDP socket's receive side.
//!
//! A receive loop waits for the socket, then reads every datagram already
//! waiting (up to [`MAX_BATCH`]) and hands them on in one message, their
//! bytes copied into one exact-size `Bytes`: under load one hop and one
//! allocation serve many datagrams. The hand-off is `try_send`, and the
//! datagrams waiting at the rate limiter are capped: beyond the cap, or
//! when its mailbox is full, they are dropped and counted, because
//! `do_send` would queue past the mailbox's capacity.
//!
//! Sending does not go through this actor: [`DatagramSender`] is a shared,
//! non-blocking handle on the same socket, so the actor that builds an
//! answer sends it directly and the hot path saves a hop.
//!
//! Every holder of the socket's descriptors holds the one
//! `Arc<UdpSocket>` the node bound, and lets go of it last (the receive
//! loop's own descriptor first): when the node's `Weak` to it is dead,
//! the port is free again, which a stopping node waits for.

use std::io;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use actix::{
    Actor, ActorContext, AsyncContext, Context, Handler, Recipient, SpawnHandle, WrapFuture,
};
use dhtd_protocol::node::RateLimiterInput;
use dhtd_protocol::telemetry::{AddressFamily, Component, DropReason, Telemetry};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::clock::Clock;
use crate::shell::In;
use crate::supervision::{StopActor, Supervised};

mod batch;
#[cfg(target_os = "linux")]
mod mmsg;
mod options;
mod send;

use batch::Batch;
pub use options::{recv_buffer, set_recv_buffer, RecvBuffer, MAX_RECV_BUFFER};
pub use send::{DatagramSender, Tap, TapLog};

/// Datagrams handed on in one message at most; a full batch also lets the
/// rest of the Arbiter run before the loop reads on.
const MAX_BATCH: usize = 64;

/// Owns the receive side of the node's socket.
pub struct SocketActor {
    socket: Arc<UdpSocket>,
    inbound: Recipient<In<RateLimiterInput>>,
    max_backlog: usize,
    telemetry: Arc<Telemetry>,
    clock: Clock,
    recv_loop: Option<SpawnHandle>,
}

impl SocketActor {
    /// Reads from `socket` (bound by the caller) and hands datagrams to
    /// `inbound`; beyond `max_backlog` datagrams waiting there, new ones are
    /// dropped and counted.
    pub fn new(
        socket: Arc<UdpSocket>,
        inbound: Recipient<In<RateLimiterInput>>,
        max_backlog: usize,
        telemetry: Arc<Telemetry>,
        clock: Clock,
    ) -> Self {
        SocketActor {
            socket,
            inbound,
            max_backlog,
            telemetry,
            clock,
            recv_loop: None,
        }
    }

    fn start_recv_loop(&mut self, ctx: &mut Context<Self>) {
        // Registered for readability only: a socket registered for writes
        // too (as `tokio::net::UdpSocket` is) has the kernel run the epoll
        // callback for every datagram we send, when its buffer space is
        // released; we never wait to write.
        // A descriptor of its own (not the shared one): a restarted loop
        // registers it while the cancelled loop's may still be registered.
        let socket = match self.socket.try_clone().and_then(|s| {
            s.set_nonblocking(true)?;
            let own = LoopSocket {
                socket: s,
                _shared: self.socket.clone(),
            };
            // Deprecated because a type that does not own its descriptor
            // could close it while registered; `LoopSocket` owns its own,
            // and the safe form keeps this crate free of `unsafe`.
            #[allow(deprecated)]
            AsyncFd::with_interest(own, Interest::READABLE)
        }) {
            Ok(s) => s,
            Err(e) => {
                // Without a receive side the node is deaf; say so loudly.
                tracing::error!(target: "dht::socket", error = %e, "cannot read from the UDP socket");
                return;
            }
        };
        let inbound = self.inbound.clone();
        let telemetry = self.telemetry.clone();
        let max_backlog = self.max_backlog;
        let manual_clock = self.clock.as_manual().cloned();
        // A socket serves one family: its datagrams are counted under it.
        let family = self
            .socket
            .local_addr()
            .map_or(AddressFamily::V4, |a| AddressFamily::of(&a));
        let recv = async move {
            let mut batch = Batch::default();
            loop {
                let mut ready = match socket.readable().await {
                    Ok(ready) => ready,
                    Err(e) => {
                        tracing::error!(target: "dht::socket", error = %e, "cannot wait for the UDP socket");
                        return;
                    }
                };
                // Everything already waiting joins one batch.
                let mut failed = false;
                while batch.spans.len() < MAX_BATCH {
                    match ready.get_inner().socket.recv_from(&mut batch.buf) {
                        Ok((len, from)) => batch.keep(len, from, family, &telemetry),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            ready.clear_ready();
                            break;
                        }
                        // ICMP port-unreachable surfaces here on some
                        // systems; it says nothing about our socket. The
                        // loop yields after one, so that an error that
                        // repeats cannot hold the thread.
                        Err(e) => {
                            tracing::debug!(target: "dht::socket", error = %e, "recv error");
                            failed = true;
                            break;
                        }
                    }
                }
                drop(ready);
                if batch.spans.is_empty() {
                    if failed {
                        tokio::task::yield_now().await;
                    }
                    continue;
                }
                // A full batch, or an error: let the rest of the Arbiter
                // run before reading on.
                let yield_after = batch.spans.len() == MAX_BATCH || failed;
                let datagrams = batch.take();
                let n = datagrams.len();
                let backlog = &telemetry.inbound_backlog;
                let message = In(RateLimiterInput::Datagrams(datagrams));
                if backlog.value() as usize + n > max_backlog {
                    telemetry.dropped.add(DropReason::MailboxFull, n as u64);
                } else if inbound.try_send(message).is_ok() {
                    // The rate limiter takes them off when it handles them.
                    backlog.add((), n as u64);
                } else {
                    telemetry.dropped.add(DropReason::MailboxFull, n as u64);
                }
                if let Some(clock) = &manual_clock {
                    clock.handled();
                }
                if yield_after {
                    tokio::task::yield_now().await;
                }
            }
        };
        self.recv_loop = Some(ctx.spawn(recv.into_actor(self)));
    }
}

/// The receive loop's descriptor, closed before the shared socket it came
/// from is let go (fields drop in order).
struct LoopSocket {
    socket: UdpSocket,
    _shared: Arc<UdpSocket>,
}

impl AsRawFd for LoopSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl Actor for SocketActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.start_recv_loop(ctx);
    }
}

impl Supervised for SocketActor {
    fn component(&self) -> Component {
        Component::Socket
    }

    fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    fn restart(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.recv_loop.take() {
            ctx.cancel_future(h);
        }
        self.start_recv_loop(ctx);
    }
}

impl Handler<StopActor> for SocketActor {
    type Result = ();
    fn handle(&mut self, _: StopActor, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<crate::supervision::Heartbeat> for SocketActor {
    type Result = ();
    fn handle(&mut self, _: crate::supervision::Heartbeat, _: &mut Context<Self>) {}
}

#[cfg(feature = "fault-injection")]
impl Handler<crate::supervision::InjectStall> for SocketActor {
    type Result = ();
    fn handle(&mut self, stall: crate::supervision::InjectStall, _: &mut Context<Self>) {
        std::thread::sleep(stall.0);
    }
}

#[cfg(feature = "fault-injection")]
impl Handler<crate::supervision::InjectPanic> for SocketActor {
    type Result = ();
    fn handle(&mut self, _: crate::supervision::InjectPanic, ctx: &mut Context<Self>) {
        crate::supervision::guarded(self, ctx, |_, _| panic!("injected fault"));
    }
}
