//! Datagrams a piece decided to send, waiting for the driver's socket.

use std::net::SocketAddr;

/// Datagrams waiting to go out together: each one's bytes in one reused
/// buffer, so that filling it allocates nothing once it has grown, and a
/// driver can hand the lot to the kernel in one system call.
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
    pub fn iter(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.spans
            .iter()
            .map(|&(to, start, len)| (to, &self.bytes[start..start + len]))
    }

    /// Moves every datagram of `other` to the end of this one.
    pub fn append(&mut self, other: &mut Outbox) {
        if self.is_empty() {
            std::mem::swap(self, other);
            return;
        }
        let base = self.bytes.len();
        self.spans.extend(
            other
                .spans
                .iter()
                .map(|&(to, start, len)| (to, base + start, len)),
        );
        self.bytes.extend_from_slice(&other.bytes);
        other.clear();
    }

    /// Forgets every datagram (once they are sent).
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
        // One burst of large replies should not pin a large buffer.
        self.bytes.shrink_to(64 * 1024);
    }
}
