//! SocketActor: owns the UDP socket's receive side.
//!
//! A receive loop reads each datagram into one reusable 64 KiB buffer and
//! copies it into an exact-size `Bytes` before handing it on, so a queued
//! datagram holds only its own bytes (`UdpFramed` kept a 64 KiB buffer alive
//! per queued datagram). The hand-off is `try_send`: when the rate
//! limiter's mailbox is full the datagram is dropped and counted, because
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
use crate::messages::DatagramReceived;
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

/// Owns the receive side of the node's socket.
pub struct SocketActor {
    socket: UdpSocket,
    inbound: Recipient<DatagramReceived>,
    counters: Arc<Counters>,
    recv_loop: Option<SpawnHandle>,
}

impl SocketActor {
    /// Reads from `socket` (bound by the caller) and hands datagrams to `inbound`.
    pub fn new(
        socket: UdpSocket,
        inbound: Recipient<DatagramReceived>,
        counters: Arc<Counters>,
    ) -> Self {
        SocketActor {
            socket,
            inbound,
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
        let recv = async move {
            let mut buf = vec![0u8; 65536];
            loop {
                match socket.recv_from(&mut buf).await {
                    Ok((len, from)) => {
                        counters.received(len);
                        let bytes = Bytes::copy_from_slice(&buf[..len]);
                        if inbound.try_send(DatagramReceived { from, bytes }).is_ok() {
                            counters.queued_inbound();
                        } else {
                            counters.dropped(DropReason::MailboxFull);
                        }
                    }
                    // ICMP port-unreachable surfaces here on some systems; it
                    // says nothing about our socket, so keep reading.
                    Err(e) => tracing::debug!(target: "dht::socket", error = %e, "recv error"),
                }
            }
        };
        self.recv_loop = Some(ctx.spawn(recv.into_actor(self)));
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
