//! One wake-up's datagrams, handed on as slices of one buffer.

use std::net::SocketAddr;

use bytes::Bytes;
use dhtd_protocol::node::Datagram;
use dhtd_protocol::telemetry::{AddressFamily, Telemetry};

use super::MAX_BATCH;

/// The datagrams of one batch, gathered in a reused staging buffer and
/// handed on as slices of one exact-size [`Bytes`]: a queued datagram holds
/// only its own bytes (`UdpFramed` kept a 64 KiB buffer alive per queued
/// datagram), and a batch costs one allocation however many it holds.
pub(super) struct Batch {
    /// Receives one datagram at a time (the largest UDP payload fits).
    pub(super) buf: Vec<u8>,
    staging: Vec<u8>,
    pub(super) spans: Vec<(SocketAddr, usize, usize)>,
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
    /// Keeps a datagram of `len` bytes from `from`, read on a socket of
    /// `family` (one per socket, so not looked up per datagram).
    pub(super) fn keep(
        &mut self,
        len: usize,
        from: SocketAddr,
        family: AddressFamily,
        telemetry: &Telemetry,
    ) {
        telemetry.packets_in.incr(family);
        telemetry.bytes_in.add(family, len as u64);
        self.spans.push((from, self.staging.len(), len));
        self.staging.extend_from_slice(&self.buf[..len]);
    }

    pub(super) fn take(&mut self) -> Vec<Datagram> {
        let shared = Bytes::copy_from_slice(&self.staging);
        self.staging.clear();
        // A burst of large datagrams should not pin a large staging buffer.
        self.staging.shrink_to(64 * 1024);
        self.spans
            .drain(..)
            .map(|(from, start, len)| Datagram {
                from,
                bytes: shared.slice(start..start + len),
            })
            .collect()
    }
}
