//! The sending side: a non-blocking handle on the node's socket, through
//! which every actor sends what its piece put in its outbox.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use parking_lot::Mutex;

use dhtd_protocol::node::Outbox;
use dhtd_protocol::telemetry::{DropReason, Telemetry};

/// A copy of every datagram a node sends (sender, destination, bytes): a
/// test hook, for comparing what two drivers of the same node send.
pub type Tap = Arc<Mutex<Vec<(SocketAddr, SocketAddr, Vec<u8>)>>>;

/// Sends datagrams on the node's socket without blocking.
#[derive(Debug, Clone)]
pub struct DatagramSender {
    /// `None`: datagrams are counted and dropped (a benchmark of the actor
    /// pipeline without a socket).
    socket: Option<Arc<UdpSocket>>,
    telemetry: Arc<Telemetry>,
    tap: Option<(SocketAddr, Tap)>,
}

impl DatagramSender {
    /// A sender on a clone of `socket` (set non-blocking).
    pub fn new(socket: &UdpSocket, telemetry: Arc<Telemetry>) -> io::Result<Self> {
        let socket = socket.try_clone()?;
        socket.set_nonblocking(true)?;
        Ok(DatagramSender {
            socket: Some(Arc::new(socket)),
            telemetry,
            tap: None,
        })
    }

    /// A sender with no socket: each datagram is counted as sent and
    /// dropped. For measuring the actors alone.
    pub fn discarding(telemetry: Arc<Telemetry>) -> Self {
        DatagramSender {
            socket: None,
            telemetry,
            tap: None,
        }
    }

    /// Keeps a copy of every datagram sent from now on in `tap`.
    pub fn with_tap(mut self, tap: Tap) -> io::Result<Self> {
        self.tap = Some((self.local_addr()?, tap));
        Ok(self)
    }

    fn record<'a>(&self, datagrams: impl IntoIterator<Item = (SocketAddr, &'a [u8])>) {
        if let Some((from, tap)) = &self.tap {
            let mut tap = tap.lock();
            for (to, d) in datagrams {
                tap.push((*from, to, d.to_vec()));
            }
        }
    }

    /// Sends one datagram; a full socket buffer drops it (counted), since
    /// UDP may lose it anyway and blocking would stall the actor.
    pub fn send(&self, to: SocketAddr, datagram: &[u8]) -> bool {
        self.record([(to, datagram)]);
        let Some(socket) = &self.socket else {
            self.sent(datagram.len());
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
        self.record(outbox.iter());
        match &self.socket {
            None => {
                for (_, datagram) in outbox.iter() {
                    self.sent(datagram.len());
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

    fn sent(&self, len: usize) {
        self.telemetry.packets_out.incr(());
        self.telemetry.bytes_out.add((), len as u64);
    }

    fn sent_or_failed(&self, to: SocketAddr, len: usize, result: io::Result<()>) -> bool {
        match result {
            Ok(()) => {
                self.sent(len);
                true
            }
            Err(e) => {
                tracing::debug!(target: "dht::socket", %to, error = %e, "send failed");
                self.telemetry.dropped.incr(DropReason::SendFailed);
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
        let telemetry = Arc::new(Telemetry::default());
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender = DatagramSender::new(&socket, telemetry.clone()).unwrap();
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
        let snapshot = telemetry.snapshot();
        assert_eq!(snapshot.packets_out.value(), 100);
        assert_eq!(snapshot.dropped.get(DropReason::SendFailed), 1);
    }
}
