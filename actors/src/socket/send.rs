//! The sending side: a non-blocking handle on the node's socket, and the
//! outbox an answering actor fills while it works through a batch.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use crate::counters::{Counters, DropReason};

/// Sends datagrams on the node's socket without blocking.
#[derive(Debug, Clone)]
pub struct DatagramSender {
    /// `None`: datagrams are counted and dropped (a benchmark of the actor
    /// pipeline without a socket).
    socket: Option<Arc<UdpSocket>>,
    counters: Arc<Counters>,
}

/// Datagrams waiting to go out together: each one's bytes in one reused
/// buffer, so that filling it allocates nothing once it has grown.
#[derive(Debug, Default)]
pub struct Outbox {
    bytes: Vec<u8>,
    spans: Vec<(SocketAddr, usize, usize)>,
}

impl Outbox {
    /// Adds a copy of `datagram`, for `to`.
    pub fn push(&mut self, to: SocketAddr, datagram: &[u8]) {
        self.spans.push((to, self.bytes.len(), datagram.len()));
        self.bytes.extend_from_slice(datagram);
    }

    /// Datagrams waiting.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The datagrams, in the order they were added.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.spans
            .iter()
            .map(|&(to, start, len)| (to, &self.bytes[start..start + len]))
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
        // One burst of large replies should not pin a large buffer.
        self.bytes.shrink_to(64 * 1024);
    }
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
        let result = socket.send_to(datagram, to).map(|_| ());
        self.sent_or_failed(to, datagram.len(), result)
    }

    /// Sends everything in `outbox` (on Linux with as few `sendmmsg` calls
    /// as it takes) and empties it. A datagram the kernel refuses is dropped
    /// and counted; the others still go.
    pub fn send_all(&self, outbox: &mut Outbox) {
        if outbox.is_empty() {
            return;
        }
        match &self.socket {
            None => {
                for (_, datagram) in outbox.iter() {
                    self.counters.sent(datagram.len());
                }
            }
            #[cfg(target_os = "linux")]
            Some(socket) => super::mmsg::send_all(socket, outbox, |to, len, result| {
                self.sent_or_failed(to, len, result);
            }),
            #[cfg(not(target_os = "linux"))]
            Some(socket) => {
                for (to, datagram) in outbox.iter() {
                    let result = socket.send_to(datagram, to).map(|_| ());
                    self.sent_or_failed(to, datagram.len(), result);
                }
            }
        }
        outbox.clear();
    }

    fn sent_or_failed(&self, to: SocketAddr, len: usize, result: io::Result<()>) -> bool {
        match result {
            Ok(()) => {
                self.counters.sent(len);
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    /// Everything in an outbox arrives, in order; a datagram the kernel
    /// refuses (an IPv6 destination on an IPv4 socket) is counted as a
    /// failed send and does not stop the ones after it.
    #[test]
    fn an_outbox_goes_out_whole_but_for_what_the_kernel_refuses() {
        let counters = Arc::new(Counters::default());
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender = DatagramSender::new(&socket, counters.clone()).unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let to = peer.local_addr().unwrap();
        let unreachable: SocketAddr = "[::1]:9".parse().unwrap();
        let mut outbox = Outbox::default();
        // More than one system call's worth.
        for i in 0..100u32 {
            outbox.push(to, format!("datagram {i}").as_bytes());
            if i == 50 {
                outbox.push(unreachable, b"refused");
            }
        }
        assert_eq!(outbox.len(), 101);
        sender.send_all(&mut outbox);
        assert!(outbox.is_empty());
        let mut buf = [0u8; 64];
        for i in 0..100u32 {
            let (n, from) = peer.recv_from(&mut buf).unwrap();
            assert_eq!(from, socket.local_addr().unwrap());
            assert_eq!(&buf[..n], format!("datagram {i}").as_bytes());
        }
        let snapshot = counters.snapshot();
        assert_eq!(snapshot.packets_out, 100);
        let failed = snapshot
            .dropped
            .iter()
            .find(|(r, _)| *r == DropReason::SendFailed)
            .map(|(_, n)| *n);
        assert_eq!(failed, Some(1));
    }
}
