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
//! Sending does not go through this actor: [`DatagramSender`] is a cloned,
//! non-blocking handle on the same socket, so the actor that builds an
//! answer sends it directly and the hot path saves a hop.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use actix::{Actor, AsyncContext, Context, Recipient, SpawnHandle, WrapFuture};
use bytes::Bytes;

use crate::counters::{ActorKind, Counters, DropReason};
use crate::messages::{DatagramReceived, DatagramsReceived};
use crate::supervision::{lifecycle, Supervised};

/// Sends datagrams on the node's socket without blocking.
#[derive(Debug, Clone)]
pub struct DatagramSender {
    /// `None`: datagrams are counted and dropped (a benchmark of the actor
    /// pipeline without a socket).
    socket: Option<Arc<UdpSocket>>,
    counters: Arc<Counters>,
}

impl DatagramSender {
    /// A sender on a clone of `socket` (set non-blocking).
    pub fn new(socket: &UdpSocket, counters: Arc<Counters>) -> io::Result<Self> {
        let socket = socket.try_clone()?;
        socket.set_nonblocking(true)?;
        Ok(DatagramSender {
            socket: Some(Arc::new(socket)),
            counters,
        })
    }

    /// A sender with no socket: each datagram is counted as sent and
    /// dropped. For measuring the actors alone.
    pub fn discarding(counters: Arc<Counters>) -> Self {
        DatagramSender {
            socket: None,
            counters,
        }
    }

    /// Sends one datagram; a full socket buffer drops it (counted), since
    /// UDP may lose it anyway and blocking would stall the actor.
    pub fn send(&self, to: SocketAddr, datagram: &[u8]) -> bool {
        let Some(socket) = &self.socket else {
            self.counters.sent(datagram.len());
            return true;
        };
        match socket.send_to(datagram, to) {
            Ok(_) => {
                self.counters.sent(datagram.len());
                true
            }
            Err(e) => {
                tracing::debug!(target: "dht::socket", %to, error = %e, "send failed");
                self.counters.dropped(DropReason::SendFailed);
                false
            }
        }
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.socket {
            Some(s) => s.local_addr(),
            None => Err(io::Error::other("a discarding sender has no socket")),
        }
    }
}

/// Datagrams handed on in one message at most; a full batch also lets the
/// rest of the Arbiter run before the loop reads on.
const MAX_BATCH: usize = 64;

/// Owns the receive side of the node's socket.
pub struct SocketActor {
    socket: UdpSocket,
    inbound: Recipient<DatagramsReceived>,
    max_backlog: usize,
    counters: Arc<Counters>,
    recv_loop: Option<SpawnHandle>,
}

impl SocketActor {
    /// Reads from `socket` (bound by the caller) and hands datagrams to
    /// `inbound`; beyond `max_backlog` datagrams waiting there, new ones are
    /// dropped and counted.
    pub fn new(
        socket: UdpSocket,
        inbound: Recipient<DatagramsReceived>,
        max_backlog: usize,
        counters: Arc<Counters>,
    ) -> Self {
        SocketActor {
            socket,
            inbound,
            max_backlog,
            counters,
            recv_loop: None,
        }
    }

    fn start_recv_loop(&mut self, ctx: &mut Context<Self>) {
        let socket = match self.socket.try_clone().and_then(|s| {
            s.set_nonblocking(true)?;
            tokio::net::UdpSocket::from_std(s)
        }) {
            Ok(s) => s,
            Err(e) => {
                // Without a receive side the node is deaf; say so loudly.
                tracing::error!(target: "dht::socket", error = %e, "cannot read from the UDP socket");
                return;
            }
        };
        let inbound = self.inbound.clone();
        let counters = self.counters.clone();
        let max_backlog = self.max_backlog;
        let recv = async move {
            let mut batch = Batch::default();
            loop {
                match socket.recv_from(&mut batch.buf).await {
                    Ok((len, from)) => batch.keep(len, from, &counters),
                    // ICMP port-unreachable surfaces here on some systems; it
                    // says nothing about our socket, so keep reading.
                    Err(e) => {
                        tracing::debug!(target: "dht::socket", error = %e, "recv error");
                        continue;
                    }
                }
                // Whatever else is waiting joins the same batch.
                for _ in 1..MAX_BATCH {
                    match socket.try_recv_from(&mut batch.buf) {
                        Ok((len, from)) => batch.keep(len, from, &counters),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            tracing::debug!(target: "dht::socket", error = %e, "recv error")
                        }
                    }
                }
                let full = batch.spans.len() == MAX_BATCH;
                let datagrams = batch.take();
                let n = datagrams.len();
                if counters.inbound_backlog() + n > max_backlog {
                    counters.dropped_many(DropReason::MailboxFull, n);
                } else if inbound.try_send(DatagramsReceived(datagrams)).is_ok() {
                    counters.queued_inbound(n);
                } else {
                    counters.dropped_many(DropReason::MailboxFull, n);
                }
                if full {
                    tokio::task::yield_now().await;
                }
            }
        };
        self.recv_loop = Some(ctx.spawn(recv.into_actor(self)));
    }
}

/// The datagrams of one batch, gathered in a reused staging buffer and
/// handed on as slices of one exact-size [`Bytes`]: a queued datagram holds
/// only its own bytes (`UdpFramed` kept a 64 KiB buffer alive per queued
/// datagram), and a batch costs one allocation however many it holds.
struct Batch {
    /// Receives one datagram at a time (the largest UDP payload fits).
    buf: Vec<u8>,
    staging: Vec<u8>,
    spans: Vec<(SocketAddr, usize, usize)>,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            buf: vec![0; 65536],
            staging: Vec::new(),
            spans: Vec::with_capacity(MAX_BATCH),
        }
    }
}

impl Batch {
    fn keep(&mut self, len: usize, from: SocketAddr, counters: &Counters) {
        counters.received(len);
        self.spans.push((from, self.staging.len(), len));
        self.staging.extend_from_slice(&self.buf[..len]);
    }

    fn take(&mut self) -> Vec<DatagramReceived> {
        let shared = Bytes::copy_from_slice(&self.staging);
        self.staging.clear();
        // A burst of large datagrams should not pin a large staging buffer.
        self.staging.shrink_to(64 * 1024);
        self.spans
            .drain(..)
            .map(|(from, start, len)| DatagramReceived {
                from,
                bytes: shared.slice(start..start + len),
            })
            .collect()
    }
}

impl Actor for SocketActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.start_recv_loop(ctx);
    }
}

impl Supervised for SocketActor {
    const KIND: ActorKind = ActorKind::Socket;

    fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    fn restart(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.recv_loop.take() {
            ctx.cancel_future(h);
        }
        self.start_recv_loop(ctx);
    }
}

lifecycle!(SocketActor);
