//! The socket's receive buffer (SO_RCVBUF): where datagrams wait while
//! the receive loop is busy. When it is full the kernel drops what arrives,
//! from every source alike, before the node can count or rate-limit it.
//!
//! Linux doubles the size set (the other half is its bookkeeping) and reports
//! the doubled figure; it caps an unprivileged request at
//! `net.core.rmem_max`. A process with CAP_NET_ADMIN (root) may go beyond
//! that with SO_RCVBUFFORCE, which is tried when the plain request was cut:
//! the size was asked for explicitly, and the administrator is the one
//! asking.

use std::io;
use std::net::UdpSocket;

/// What the kernel made of a receive-buffer request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvBuffer {
    /// The size asked for, in bytes.
    pub asked: usize,
    /// The size the kernel reports now (on Linux twice what it grants).
    pub effective: usize,
    /// Whether SO_RCVBUFFORCE went beyond `net.core.rmem_max`.
    pub forced: bool,
}

impl RecvBuffer {
    /// Whether the kernel gave less than asked.
    pub fn cut(&self) -> bool {
        self.effective < granted_as_reported(self.asked)
    }
}

/// The figure the kernel reports for a request of `bytes` granted in full.
fn granted_as_reported(bytes: usize) -> usize {
    if cfg!(target_os = "linux") {
        bytes.saturating_mul(2)
    } else {
        bytes
    }
}

/// The largest size that may be asked: the kernel takes an `int` and
/// doubles it.
pub const MAX_RECV_BUFFER: usize = 1 << 30;

/// Asks for a receive buffer of `bytes` and reads back what the kernel gave.
#[cfg(target_os = "linux")]
pub fn set_recv_buffer(socket: &UdpSocket, bytes: usize) -> io::Result<RecvBuffer> {
    use nix::sys::socket::{setsockopt, sockopt};
    if bytes == 0 || bytes > MAX_RECV_BUFFER {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{bytes} bytes is not between 1 and {MAX_RECV_BUFFER}"),
        ));
    }
    setsockopt(socket, sockopt::RcvBuf, &bytes)?;
    let mut got = RecvBuffer {
        asked: bytes,
        effective: recv_buffer(socket)?,
        forced: false,
    };
    // Refused (EPERM) without CAP_NET_ADMIN: then the plain size stands.
    if got.cut() && setsockopt(socket, sockopt::RcvBufForce, &bytes).is_ok() {
        got.effective = recv_buffer(socket)?;
        got.forced = true;
    }
    Ok(got)
}

/// Not done here: the node runs with the system's default.
#[cfg(not(target_os = "linux"))]
pub fn set_recv_buffer(_socket: &UdpSocket, _bytes: usize) -> io::Result<RecvBuffer> {
    Err(io::ErrorKind::Unsupported.into())
}

/// The receive buffer's size as the kernel reports it.
#[cfg(target_os = "linux")]
pub fn recv_buffer(socket: &UdpSocket) -> io::Result<usize> {
    Ok(nix::sys::socket::getsockopt(
        socket,
        nix::sys::socket::sockopt::RcvBuf,
    )?)
}

/// Not read here.
#[cfg(not(target_os = "linux"))]
pub fn recv_buffer(_socket: &UdpSocket) -> io::Result<usize> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn the_size_asked_is_read_back() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let got = set_recv_buffer(&socket, 64 * 1024).unwrap();
        assert_eq!(got.effective, 128 * 1024, "Linux doubles it: {got:?}");
        assert!(!got.cut() && !got.forced);
        assert_eq!(recv_buffer(&socket).unwrap(), got.effective);
        assert!(set_recv_buffer(&socket, 0).is_err());
        assert!(set_recv_buffer(&socket, MAX_RECV_BUFFER + 1).is_err());
    }
}
