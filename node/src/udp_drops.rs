//! Datagrams the kernel dropped for the node's socket, its receive buffer
//! full: Linux counts them per socket in the `drops` column of
//! `/proc/net/udp` (`udp6` for an IPv6 socket), on the line of the socket's
//! inode. Read by the once-a-second housekeeping, not per datagram: the
//! other way, SO_RXQ_OVFL, puts a control message on every `recvmsg` of the
//! hot path.
//!
//! The file lists every UDP socket of the network namespace, so a process
//! reads it at most once a second however many nodes it runs (a swarm of
//! hundreds would otherwise read hundreds of lines hundreds of times). It
//! is generated from memory by the kernel: no disk is touched.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How old a reading may be before the file is read again.
const FRESH_FOR: Duration = Duration::from_millis(900);

/// The drop count of one socket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SocketDrops {
    inode: u64,
    v6: bool,
}

/// The latest reading of each file: when, and drops by inode.
type Reading = Option<(Instant, HashMap<u64, u64>)>;
static READINGS: Mutex<[Reading; 2]> = Mutex::new([None, None]);

impl SocketDrops {
    /// The counter of `socket`, where the system has one.
    pub(crate) fn of(socket: &UdpSocket) -> Option<SocketDrops> {
        use std::os::unix::fs::MetadataExt;
        use std::os::unix::io::AsRawFd;
        let v6 = socket.local_addr().ok()?.is_ipv6();
        // The descriptor's link in /proc leads to the socket's inode.
        let meta = std::fs::metadata(format!("/proc/self/fd/{}", socket.as_raw_fd())).ok()?;
        let found = SocketDrops {
            inode: meta.ino(),
            v6,
        };
        found.read().map(|_| found)
    }

    /// Datagrams dropped so far; `None` if the file cannot be read.
    pub(crate) fn read(&self) -> Option<u64> {
        let mut readings = READINGS.lock();
        let reading = &mut readings[usize::from(self.v6)];
        // A socket newer than the reading is not in it yet.
        let stale = reading.as_ref().is_none_or(|(at, drops)| {
            at.elapsed() >= FRESH_FOR || !drops.contains_key(&self.inode)
        });
        if stale {
            let file = if self.v6 {
                "/proc/net/udp6"
            } else {
                "/proc/net/udp"
            };
            let text = std::fs::read_to_string(file).ok()?;
            *reading = Some((Instant::now(), parse(&text)));
        }
        reading.as_ref()?.1.get(&self.inode).copied()
    }
}

/// Drops by inode, from the text of `/proc/net/udp` or `udp6`: after the
/// header line, the inode is the tenth field and drops the thirteenth.
fn parse(text: &str) -> HashMap<u64, u64> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let inode = fields.get(9)?.parse().ok()?;
            let drops = fields.get(12)?.parse().ok()?;
            Some((inode, drops))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drops_column_is_read_by_inode() {
        let text = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
          137: 0100007F:1AE1 00000000:0000 07 00000000:00034000 00:00000000 00000000     0        0 4242 2 0000000000000000 17\n\
          138: 0200007F:1AE2 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 4243 2 0000000000000000 0\n\
          bad line\n";
        let drops = parse(text);
        assert_eq!(drops.get(&4242), Some(&17));
        assert_eq!(drops.get(&4243), Some(&0));
        assert_eq!(drops.len(), 2);
    }

    /// A socket nobody reads, with the smallest buffer, flooded on
    /// loopback: the kernel drops, and the count says so.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_receive_buffer_is_counted() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        dhtd_actors::socket::set_recv_buffer(&socket, 4096).unwrap();
        let drops = SocketDrops::of(&socket).expect("this socket is in /proc/net/udp");
        assert_eq!(drops.read(), Some(0));
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = socket.local_addr().unwrap();
        for _ in 0..200 {
            sender.send_to(&[0u8; 1000], to).unwrap();
        }
        // The reading is cached for up to FRESH_FOR.
        std::thread::sleep(FRESH_FOR);
        let dropped = drops.read().unwrap();
        assert!(dropped > 100, "{dropped} of 200 dropped");
    }
}
