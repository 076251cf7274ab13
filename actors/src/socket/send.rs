//! The sending side: a non-blocking handle on the node's socket, through
//! which every actor sends what its piece put in its outbox.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use parking_lot::Mutex;

use dhtd_protocol::node::Outbox;
use dhtd_protocol::telemetry::{AddressFamily, DropReason, Telemetry};
use dhtd_protocol::Family;

/// A copy of every datagram a node sends: a test hook, for comparing what
/// two drivers of the same node send.
pub type Tap = Arc<Mutex<TapLog>>;

/// A datagram sent: sender, destination, bytes.
type Sent = (SocketAddr, SocketAddr, Vec<u8>);

/// A datagram held back, with the socket it leaves by.
type Held = (Arc<UdpSocket>, Sent);

/// What a [`Tap`] holds.
#[derive(Debug, Default)]
pub struct TapLog {
    /// Every datagram sent: sender, destination, bytes.
    pub sent: Vec<Sent>,
    /// While the network is held: the datagrams not yet sent, each with
    /// the socket it leaves by.
    held: Option<Vec<Held>>,
}

impl TapLog {
    /// Keeps what is sent from now on, unsent, until [`TapLog::release`]:
    /// a test that moves a manual clock lets every node run what fell due
    /// before any of them hears what the others sent then, as a simulator
    /// does, whatever the threads' order.
    pub fn hold(&mut self) {
        self.held.get_or_insert_with(Vec::new);
    }

    /// Sends what was held, in the order it was sent, and stops holding.
    pub fn release(&mut self) {
        for (socket, sent) in self.held.take().unwrap_or_default() {
            // As a full socket buffer would, a failure loses the datagram.
            let _ = socket.send_to(&sent.2, sent.1);
            self.sent.push(sent);
        }
    }
}

fn no_socket() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "no socket of this address family",
    )
}

/// The family of every datagram of `outbox`, if they share one.
fn one_family(outbox: &Outbox) -> Option<Family> {
    let mut datagrams = outbox.iter();
    let first = Family::of(&datagrams.next()?.0);
    datagrams
        .all(|(to, _)| Family::of(&to) == first)
        .then_some(first)
}

/// Sends datagrams on the node's sockets (one per address family)
/// without blocking.
#[derive(Debug, Clone)]
pub struct DatagramSender {
    /// Each family's socket, IPv4 first; none at all: datagrams are counted
    /// and dropped (a benchmark of the actor pipeline without a socket).
    sockets: [Option<Arc<UdpSocket>>; 2],
    discarding: bool,
    telemetry: Arc<Telemetry>,
    tap: Option<(SocketAddr, Tap)>,
}

impl DatagramSender {
    /// A sender on `socket` (set non-blocking).
    pub fn new(socket: &Arc<UdpSocket>, telemetry: Arc<Telemetry>) -> io::Result<Self> {
        Self::on_sockets(std::slice::from_ref(socket), telemetry)
    }

    /// A sender on `sockets`, at most one per family: each datagram leaves
    /// by the socket of its destination's family.
    pub fn on_sockets(sockets: &[Arc<UdpSocket>], telemetry: Arc<Telemetry>) -> io::Result<Self> {
        let mut by_family: [Option<Arc<UdpSocket>>; 2] = [None, None];
        for socket in sockets {
            let family = Family::of(&socket.local_addr()?);
            socket.set_nonblocking(true)?;
            by_family[family.index()] = Some(socket.clone());
        }
        Ok(DatagramSender {
            sockets: by_family,
            discarding: false,
            telemetry,
            tap: None,
        })
    }

    /// A sender with no socket: each datagram is counted as sent and
    /// dropped. For measuring the actors alone.
    pub fn discarding(telemetry: Arc<Telemetry>) -> Self {
        DatagramSender {
            sockets: [None, None],
            discarding: true,
            telemetry,
            tap: None,
        }
    }

    /// Keeps a copy of every datagram sent from now on in `tap`.
    pub fn with_tap(mut self, tap: Tap) -> io::Result<Self> {
        self.tap = Some((self.local_addr()?, tap));
        Ok(self)
    }

    /// Copies `datagrams` into the tap, if there is one; `true` if it is
    /// holding the network and took them, to send later, counted as sent.
    fn record<'a>(&self, datagrams: impl IntoIterator<Item = (SocketAddr, &'a [u8])>) -> bool {
        let Some((from, tap)) = &self.tap else {
            return false;
        };
        let mut tap = tap.lock();
        let TapLog { sent, held } = &mut *tap;
        for (to, d) in datagrams {
            match held {
                Some(held) => {
                    if let Some(socket) = &self.sockets[Family::of(&to).index()] {
                        held.push((socket.clone(), (*from, to, d.to_vec())));
                        self.sent(to, d.len());
                    }
                }
                None => sent.push((*from, to, d.to_vec())),
            }
        }
        held.is_some()
    }

    fn socket_for(&self, to: &SocketAddr) -> Option<&UdpSocket> {
        self.sockets[Family::of(to).index()].as_deref()
    }

    /// Sends one datagram; a full socket buffer drops it (counted), since
    /// UDP may lose it anyway and blocking would stall the actor.
    pub fn send(&self, to: SocketAddr, datagram: &[u8]) -> bool {
        if self.record([(to, datagram)]) {
            return true;
        }
        self.send_unrecorded(to, datagram)
    }

    fn send_unrecorded(&self, to: SocketAddr, datagram: &[u8]) -> bool {
        if self.discarding {
            self.sent(to, datagram.len());
            return true;
        }
        let result = match self.socket_for(&to) {
            Some(socket) => socket.send_to(datagram, to).map(|_| ()),
            None => Err(no_socket()),
        };
        self.sent_or_failed(to, datagram.len(), result)
    }

    /// Sends everything in `outbox` (on Linux with as few `sendmmsg` calls
    /// as it takes) and empties it. A datagram the kernel refuses, or one
    /// for a family without a socket, is dropped and counted; the others
    /// still go.
    pub fn send_all(&self, outbox: &mut Outbox) {
        if outbox.is_empty() {
            return;
        }
        if self.record(outbox.iter()) {
            // Held by a test's tap: sent when it lets go.
        } else if self.discarding {
            for (to, datagram) in outbox.iter() {
                self.sent(to, datagram.len());
            }
        } else if let [Some(socket), None] | [None, Some(socket)] = &self.sockets {
            // One family: no look at the destinations; the kernel refuses
            // one of the other family, counted as a failed send.
            self.send_on(socket, outbox);
        } else if let (Some(family), [Some(v4), Some(v6)]) = (one_family(outbox), &self.sockets) {
            self.send_on(if family == Family::V4 { v4 } else { v6 }, outbox);
        } else {
            // Both families in one batch (rare: answers go back the way
            // their queries came, in batches of one socket's reads).
            for (to, datagram) in outbox.iter() {
                self.send_unrecorded(to, datagram);
            }
        }
        outbox.clear();
    }

    fn send_on(&self, socket: &UdpSocket, outbox: &Outbox) {
        #[cfg(target_os = "linux")]
        super::mmsg::send_all(socket, outbox, |to, len, result| {
            self.sent_or_failed(to, len, result);
        });
        #[cfg(not(target_os = "linux"))]
        for (to, datagram) in outbox.iter() {
            let result = socket.send_to(datagram, to).map(|_| ());
            self.sent_or_failed(to, datagram.len(), result);
        }
    }

    fn sent(&self, to: SocketAddr, len: usize) {
        let family = AddressFamily::of(&to);
        self.telemetry.packets_out.incr(family);
        self.telemetry.bytes_out.add(family, len as u64);
    }

    fn sent_or_failed(&self, to: SocketAddr, len: usize, result: io::Result<()>) -> bool {
        match result {
            Ok(()) => {
                self.sent(to, len);
                true
            }
            Err(e) => {
                tracing::debug!(target: "dht::socket", %to, error = %e, "send failed");
                self.telemetry.dropped.incr(DropReason::SendFailed);
                false
            }
        }
    }

    /// The local address (the IPv4 socket's, when there are two).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self.sockets.iter().flatten().next() {
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
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
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
        assert_eq!(snapshot.packets_out.total(), 100);
        assert_eq!(snapshot.dropped.get(DropReason::SendFailed), 1);
    }
}
