//! The serving hot path, measured on loopback: a query in, its answer out,
//! through the receive loop, the rate limiter and the answering actor.
//!
//! `cargo bench -p dhtd --bench hot_path` prints answered queries per second
//! and round-trip times for ping (answered by the routing table) and
//! get_peers (answered by the announce store), with a window of queries in
//! flight from one client socket. Loopback only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use dhtd::{Config, Dht, InfoHash, NodeId};
use dhtd_protocol::krpc::{Body, Message, Query};
use dhtd_protocol::rate_limit::Rate;

const WINDOW: usize = 32;
const RUN: Duration = Duration::from_secs(3);

fn query(tid: u32, query: Query<'_>) -> Vec<u8> {
    Message {
        transaction_id: &tid.to_be_bytes(),
        version: None,
        requester_ip: None,
        read_only: false,
        body: Body::Query {
            sender: NodeId([7; 20]),
            query,
        },
    }
    .to_bytes()
}

fn run(name: &str, to: SocketAddr, make: impl Fn(u32) -> Vec<u8>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut sent_at = vec![None; 1 << 16];
    let mut next: u32 = 0;
    let mut rtts = Vec::new();
    let mut lost = 0u64;
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    for _ in 0..WINDOW {
        socket.send_to(&make(next), to).unwrap();
        sent_at[next as usize & 0xffff] = Some(Instant::now());
        next += 1;
    }
    while start.elapsed() < RUN {
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => {
                let Ok(m) = Message::decode(&buf[..n]) else {
                    continue;
                };
                if !matches!(m.body, Body::Response(_)) {
                    continue; // the node pings us back once
                }
                let tid = u32::from_be_bytes(m.transaction_id.try_into().unwrap());
                if let Some(at) = sent_at[tid as usize & 0xffff].take() {
                    rtts.push(at.elapsed());
                }
            }
            Err(_) => lost += 1, // keep the window full after a loss
        }
        socket.send_to(&make(next), to).unwrap();
        sent_at[next as usize & 0xffff] = Some(Instant::now());
        next += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    rtts.sort_unstable();
    let pct = |p: f64| rtts[((rtts.len() - 1) as f64 * p) as usize];
    println!(
        "{name:<10} {:>8.0} answers/s  rtt median {:>7.1?}  p99 {:>7.1?}  ({} answers, {lost} timeouts, window {WINDOW})",
        rtts.len() as f64 / secs,
        pct(0.5),
        pct(0.99),
        rtts.len()
    );
}

fn main() {
    let mut config = Config::local("127.0.0.1:0".parse().unwrap(), &[]);
    // One client sends everything: lift the per-IP budget for the measurement.
    config.limits.queries_per_ip = Rate {
        per_second: 1e9,
        burst: 1e9,
    };
    let node = Dht::builder(config).start().unwrap();
    let to = node.local_addr();
    run("ping", to, |t| query(t, Query::Ping));
    run("find_node", to, |t| {
        query(
            t,
            Query::FindNode {
                target: NodeId([t as u8; 20]),
                want: None,
            },
        )
    });
    run("get_peers", to, |t| {
        query(
            t,
            Query::GetPeers {
                info_hash: InfoHash([t as u8; 20]),
                want: None,
            },
        )
    });
}
