//! Linux's `sendmmsg`: the replies to a batch of queries leave in one
//! system call instead of one each (measured with `dhtd load`: the system
//! call's own cost was most of what dhtd's CPU per reply had above a
//! minimal echo responder).

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use nix::sys::socket::{sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage};

use dhtd_protocol::node::Outbox;

/// Datagrams per system call at most.
const CHUNK: usize = 64;

thread_local! {
    /// The kernel's message headers, made once per thread (they hold raw
    /// pointers, so they cannot travel with the sender between threads).
    static HEADERS: RefCell<MultiHeaders<SockaddrStorage>> =
        RefCell::new(MultiHeaders::preallocate(CHUNK, None));
}

/// Sends every datagram of `outbox`, reporting each one's fate to `done`
/// (destination, length, result).
pub(super) fn send_all(
    socket: &UdpSocket,
    outbox: &Outbox,
    mut done: impl FnMut(SocketAddr, usize, io::Result<()>),
) {
    let datagrams: Vec<(SocketAddr, &[u8])> = outbox.iter().collect();
    let slices: Vec<[IoSlice<'_>; 1]> = datagrams.iter().map(|(_, d)| [IoSlice::new(d)]).collect();
    let addrs: Vec<Option<SockaddrStorage>> = datagrams
        .iter()
        .map(|(to, _)| Some(SockaddrStorage::from(*to)))
        .collect();
    let fd = socket.as_raw_fd();
    HEADERS.with_borrow_mut(|headers| {
        let mut next = 0;
        while next < datagrams.len() {
            let end = (next + CHUNK).min(datagrams.len());
            let no_control: [ControlMessage<'_>; 0] = [];
            let sent = sendmmsg(
                fd,
                headers,
                &slices[next..end],
                &addrs[next..end],
                no_control,
                MsgFlags::empty(),
            )
            .map(Iterator::count);
            match sent {
                Ok(count) if count > 0 => {
                    for (to, datagram) in &datagrams[next..next + count] {
                        done(*to, datagram.len(), Ok(()));
                    }
                    next += count;
                }
                // The first datagram of the chunk was refused (a full
                // buffer, an unreachable address): drop it, go on with the rest.
                Ok(_) => {
                    let (to, datagram) = datagrams[next];
                    done(to, datagram.len(), Err(io::ErrorKind::WouldBlock.into()));
                    next += 1;
                }
                Err(errno) => {
                    let (to, datagram) = datagrams[next];
                    done(to, datagram.len(), Err(io::Error::from(errno)));
                    next += 1;
                }
            }
        }
    });
}
