//! `dhtd load`: a KRPC load generator for a DHT node (dhtd or any other),
//! and `dhtd echo`, the physical limit it is compared with: a responder
//! that answers every query with one fixed, pre-encoded reply.
//!
//! Each socket runs on its own thread with plain blocking calls, so that
//! the generator costs as little as possible per query. Closed loop keeps
//! `concurrency` queries in flight per socket; open loop (`--rate`) sends
//! at a fixed rate whatever comes back; `--flood` sends as fast as a thread
//! can (or at `--rate`) without reading replies, to a loopback target only:
//! one abusive source, run beside an ordinary one (a second `dhtd load`
//! from another 127.x address) to see what the flood costs it.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dhtd::{InfoHash, NodeId};
use dhtd_protocol::krpc::{Body, Message, Query};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::json;

use crate::Failure;

/// What a load run asks, and how: the flags of `dhtd load`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct LoadArgs {
    /// The node to load.
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) target: SocketAddr,
    /// How long.
    #[arg(long, value_parser = crate::parse_duration, default_value = "10s", value_name = "DURATION")]
    pub(crate) duration: Duration,
    /// Queries in flight per socket (closed loop).
    #[arg(long, default_value_t = 32)]
    pub(crate) concurrency: usize,
    /// Sockets, each on its own thread.
    #[arg(long, default_value_t = 2)]
    pub(crate) sockets: usize,
    /// Query mix by weight.
    #[arg(long, default_value = "ping=1,find_node=1,get_peers=1,announce=1")]
    pub(crate) mix: Mix,
    /// Open loop: this many queries per second in all, whatever comes back.
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// Fraction of get_peers (and announces) on one hot info hash.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) hot: f64,
    /// A query unanswered this long is a timeout.
    #[arg(long, value_parser = crate::parse_duration, default_value = "1s", value_name = "DURATION")]
    pub(crate) timeout: Duration,
    /// Local address to send from (a distinct 127.x keeps per-IP limits
    /// apart; `::1` for an IPv6 target).
    /// Default 127.0.0.1, or ::1 for an IPv6 target.
    #[arg(long)]
    pub(crate) bind: Option<std::net::IpAddr>,
    /// BEP 32 `want` on find_node and get_peers: `n4`, `n6` or `n4,n6`
    /// (default none: the target answers with nodes of the family asked
    /// over).
    #[arg(long, value_parser = parse_want, value_name = "n4|n6|n4,n6")]
    pub(crate) want: Option<dhtd_protocol::krpc::Want>,
    /// Only the final JSON line.
    #[arg(long)]
    pub(crate) json: bool,
    /// Send without reading replies, as fast as each socket's thread can, or
    /// at `--rate` in all; loopback targets only.
    #[arg(long)]
    pub(crate) flood: bool,
}

fn parse_want(text: &str) -> Result<dhtd_protocol::krpc::Want, String> {
    let mut want = dhtd_protocol::krpc::Want::default();
    for part in text.split(',') {
        match part.trim() {
            "n4" => want.v4 = true,
            "n6" => want.v6 = true,
            other => return Err(format!("`{other}` is not n4 or n6")),
        }
    }
    Ok(want)
}

/// Datagrams a flooding socket sends between two looks at the clock, at
/// most: pacing to a millisecond without a clock read per datagram.
const FLOOD_BATCH: usize = 64;

/// Relative weights of the query kinds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Mix {
    weights: [u32; 4],
}

const KINDS: [&str; 4] = ["ping", "find_node", "get_peers", "announce"];

impl std::str::FromStr for Mix {
    type Err = String;
    /// `ping=1,find_node=1,get_peers=1,announce=1`; kinds left out weigh 0.
    fn from_str(text: &str) -> Result<Mix, String> {
        let mut weights = [0u32; 4];
        for part in text.split(',').filter(|p| !p.is_empty()) {
            let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
            let i = KINDS
                .iter()
                .position(|k| *k == name.trim())
                .ok_or_else(|| {
                    format!("unknown query kind `{name}` (ping, find_node, get_peers, announce)")
                })?;
            weights[i] = weight
                .trim()
                .parse()
                .map_err(|_| format!("`{weight}` is not a weight"))?;
        }
        if weights.iter().all(|w| *w == 0) {
            return Err("the mix has no query kind with a weight above 0".into());
        }
        Ok(Mix { weights })
    }
}

impl Mix {
    fn pick(&self, rng: &mut StdRng) -> usize {
        let total: u32 = self.weights.iter().sum();
        let mut x = rng.random_range(0..total);
        for (i, w) in self.weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        0
    }
}

/// Counters shared by the socket threads.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    replies: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    invalid: AtomicU64,
    /// Nodes in find_node and get_peers replies, and how many such replies:
    /// whether the target answered from a populated table.
    nodes: AtomicU64,
    node_replies: AtomicU64,
}

/// A query in flight.
struct InFlight {
    sent: Instant,
    kind: usize,
    /// For an announce: the get_peers step is done and this is announce_peer.
    second_step: bool,
    info_hash: InfoHash,
}

struct Worker {
    socket: UdpSocket,
    target: SocketAddr,
    rng: StdRng,
    next_tid: u32,
    in_flight: HashMap<u32, InFlight>,
    hot: InfoHash,
    args: LoadArgs,
    buf: Vec<u8>,
    latencies: Vec<u32>,
}

impl Worker {
    fn info_hash(&mut self) -> InfoHash {
        if self.args.hot > 0.0 && self.rng.random::<f64>() < self.args.hot {
            self.hot
        } else {
            InfoHash::random(&mut self.rng)
        }
    }

    fn send(
        &mut self,
        kind: usize,
        second_step: bool,
        info_hash: InfoHash,
        token: &[u8],
        tally: &Tally,
    ) {
        let tid = self.next_tid;
        self.next_tid = self.next_tid.wrapping_add(1);
        let sender = NodeId::random(&mut self.rng);
        let query = match (kind, second_step) {
            (0, _) => Query::Ping,
            (1, _) => Query::FindNode {
                target: NodeId::random(&mut self.rng),
                want: self.args.want,
            },
            (2, _) | (3, false) => Query::GetPeers {
                info_hash,
                want: self.args.want,
                scrape: false,
                noseed: false,
            },
            _ => Query::AnnouncePeer {
                info_hash,
                port: 6881,
                implied_port: false,
                token,
                seed: false,
            },
        };
        self.buf.clear();
        Message {
            transaction_id: &tid.to_be_bytes(),
            version: None,
            requester_ip: None,
            read_only: false,
            body: Body::Query { sender, query },
        }
        .encode(&mut self.buf);
        if self.socket.send_to(&self.buf, self.target).is_ok() {
            tally.sent.fetch_add(1, Relaxed);
        }
        if self.args.flood {
            return;
        }
        self.in_flight.insert(
            tid,
            InFlight {
                sent: Instant::now(),
                kind,
                second_step,
                info_hash,
            },
        );
    }

    fn send_new(&mut self, tally: &Tally) {
        let kind = self.args.mix.pick(&mut self.rng);
        let ih = self.info_hash();
        self.send(kind, false, ih, &[], tally);
    }

    /// Handles one datagram; returns whether a query completed (a slot freed).
    fn on_reply(&mut self, datagram: &[u8], tally: &Tally) -> bool {
        let Ok(m) = Message::decode(datagram) else {
            tally.invalid.fetch_add(1, Relaxed);
            return false;
        };
        let Some(tid) = <[u8; 4]>::try_from(m.transaction_id)
            .ok()
            .map(u32::from_be_bytes)
        else {
            tally.invalid.fetch_add(1, Relaxed);
            return false;
        };
        let Some(q) = self.in_flight.remove(&tid) else {
            return false; // late, after its timeout
        };
        let micros = u32::try_from(q.sent.elapsed().as_micros()).unwrap_or(u32::MAX);
        match m.body {
            Body::Response(r) => {
                let valid = match (q.kind, q.second_step) {
                    (1, _) => r.nodes.is_some() || r.nodes6.is_some(),
                    (2, _) | (3, false) => {
                        r.token.is_some()
                            && (r.values.is_some() || r.nodes.is_some() || r.nodes6.is_some())
                    }
                    _ => true,
                };
                if !valid {
                    tally.invalid.fetch_add(1, Relaxed);
                    return true;
                }
                tally.replies.fetch_add(1, Relaxed);
                self.latencies.push(micros);
                if matches!((q.kind, q.second_step), (1 | 2, _) | (3, false)) {
                    let nodes = r.nodes.map_or(0, |n| n.len()) + r.nodes6.map_or(0, |n| n.len());
                    tally.nodes.fetch_add(nodes as u64, Relaxed);
                    tally.node_replies.fetch_add(1, Relaxed);
                }
                if let (3, false, Some(token)) = (q.kind, q.second_step, r.token) {
                    // The announce's second step, with the token just given.
                    let token = token.to_vec();
                    self.send(3, true, q.info_hash, &token, tally);
                    return false;
                }
                true
            }
            Body::Error(_) => {
                tally.errors.fetch_add(1, Relaxed);
                true
            }
            Body::Query { .. } => {
                self.in_flight.insert(tid, q);
                false
            }
        }
    }

    /// Forgets queries past the timeout; returns how many.
    fn expire(&mut self, tally: &Tally) -> usize {
        let timeout = self.args.timeout;
        let before = self.in_flight.len();
        self.in_flight.retain(|_, q| q.sent.elapsed() < timeout);
        let expired = before - self.in_flight.len();
        tally.timeouts.fetch_add(expired as u64, Relaxed);
        expired
    }

    /// Sends until stopped, replies unread, paced to `--rate` if given. A
    /// thread that falls behind its pace (descheduled) does not catch up
    /// in one burst.
    fn flood(mut self, tally: &Tally, stop: &AtomicBool) {
        let per_socket = self.args.rate.map(|r| r / self.args.sockets as f64);
        let batch = per_socket.map_or(FLOOD_BATCH, |r| (r / 1000.0).clamp(1.0, 64.0) as usize);
        let interval = per_socket.map(|r| Duration::from_secs_f64(batch as f64 / r));
        let mut next = Instant::now();
        while !stop.load(Relaxed) {
            for _ in 0..batch {
                self.send_new(tally);
            }
            let Some(interval) = interval else { continue };
            next += interval;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            } else if now - next > Duration::from_millis(10) {
                next = now;
            }
        }
    }

    fn run(mut self, tally: &Tally, stop: &AtomicBool) -> Vec<u32> {
        if self.args.flood {
            self.flood(tally, stop);
            return Vec::new();
        }
        let mut datagram = [0u8; 65536];
        let mut last_sweep = Instant::now();
        match self.args.rate {
            None => {
                for _ in 0..self.args.concurrency {
                    self.send_new(tally);
                }
                let _ = self
                    .socket
                    .set_read_timeout(Some(Duration::from_millis(20)));
                while !stop.load(Relaxed) {
                    if let Ok((n, from)) = self.socket.recv_from(&mut datagram) {
                        if from == self.target && self.on_reply(&datagram[..n], tally) {
                            self.send_new(tally);
                        }
                    }
                    if last_sweep.elapsed() >= Duration::from_millis(50) {
                        last_sweep = Instant::now();
                        for _ in 0..self.expire(tally) {
                            self.send_new(tally);
                        }
                    }
                }
            }
            Some(rate) => {
                let interval = Duration::from_secs_f64(self.args.sockets as f64 / rate);
                let mut next = Instant::now();
                while !stop.load(Relaxed) {
                    let now = Instant::now();
                    while next <= now {
                        self.send_new(tally);
                        next += interval;
                    }
                    let wait = next
                        .saturating_duration_since(Instant::now())
                        .max(Duration::from_micros(100));
                    let _ = self.socket.set_read_timeout(Some(wait));
                    if let Ok((n, from)) = self.socket.recv_from(&mut datagram) {
                        if from == self.target {
                            self.on_reply(&datagram[..n], tally);
                        }
                    }
                    if last_sweep.elapsed() >= Duration::from_millis(50) {
                        last_sweep = Instant::now();
                        self.expire(tally);
                    }
                }
            }
        }
        self.latencies
    }
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    sorted
        .get(((sorted.len().max(1) - 1) as f64 * p).round() as usize)
        .copied()
        .unwrap_or(0)
}

pub(crate) fn load(args: LoadArgs) -> Result<(), Failure> {
    if args.sockets == 0 || args.concurrency == 0 {
        return Err(Failure::Usage(
            "--sockets and --concurrency must be at least 1".into(),
        ));
    }
    if let Some(rate) = args.rate.filter(|r| !(r.is_finite() && *r > 0.0)) {
        return Err(Failure::Usage(format!(
            "--rate must be a positive number, not {rate}"
        )));
    }
    // A flood is a test of our own node, never of someone else's.
    if args.flood && !args.target.ip().is_loopback() {
        return Err(Failure::Usage(format!(
            "--flood is for loopback targets only, not {}",
            args.target
        )));
    }
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut seed_rng = StdRng::from_os_rng();
    let hot = InfoHash::random(&mut seed_rng);
    let mut threads = Vec::new();
    let bind = args.bind.unwrap_or(if args.target.is_ipv4() {
        std::net::Ipv4Addr::LOCALHOST.into()
    } else {
        std::net::Ipv6Addr::LOCALHOST.into()
    });
    for _ in 0..args.sockets {
        let socket = UdpSocket::bind(SocketAddr::new(bind, 0))
            .map_err(|e| Failure::Failed(format!("cannot bind a socket on {bind}: {e}")))?;
        let worker = Worker {
            socket,
            target: args.target,
            rng: StdRng::seed_from_u64(seed_rng.next_u64()),
            next_tid: seed_rng.next_u32(),
            in_flight: HashMap::new(),
            hot,
            args: args.clone(),
            buf: Vec::with_capacity(256),
            latencies: Vec::new(),
        };
        let (tally, stop) = (tally.clone(), stop.clone());
        threads.push(std::thread::spawn(move || worker.run(&tally, &stop)));
    }
    let started = Instant::now();
    let progress = std::io::stderr().is_terminal() && !args.json;
    while started.elapsed() < args.duration {
        std::thread::sleep(
            Duration::from_millis(250).min(args.duration.saturating_sub(started.elapsed())),
        );
        if progress {
            let secs = started.elapsed().as_secs_f64();
            eprint!(
                "\r\x1b[K{:.0}s: {} sent, {} replies ({:.0}/s), {} errors, {} timeouts",
                secs,
                tally.sent.load(Relaxed),
                tally.replies.load(Relaxed),
                tally.replies.load(Relaxed) as f64 / secs.max(0.001),
                tally.errors.load(Relaxed),
                tally.timeouts.load(Relaxed)
            );
        }
    }
    stop.store(true, Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies: Vec<u32> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap_or_default())
        .collect();
    latencies.sort_unstable();
    if progress {
        eprint!("\r\x1b[K");
    }
    let replies = tally.replies.load(Relaxed);
    let report = json!({
        "target": args.target.to_string(),
        "duration_s": elapsed,
        "sockets": args.sockets,
        "concurrency": args.concurrency,
        "rate": args.rate,
        "flood": args.flood,
        "sent": tally.sent.load(Relaxed),
        "sent_per_s": tally.sent.load(Relaxed) as f64 / elapsed,
        "replies": replies,
        "errors": tally.errors.load(Relaxed),
        "timeouts": tally.timeouts.load(Relaxed),
        "invalid": tally.invalid.load(Relaxed),
        "replies_per_s": replies as f64 / elapsed,
        "nodes_per_reply": tally.nodes.load(Relaxed) as f64
            / tally.node_replies.load(Relaxed).max(1) as f64,
        "latency_us": {
            "p50": percentile(&latencies, 0.5),
            "p90": percentile(&latencies, 0.9),
            "p99": percentile(&latencies, 0.99),
            "max": latencies.last().copied().unwrap_or(0),
        },
    });
    if args.flood {
        if !args.json {
            eprintln!(
                "flood: {} queries sent in {elapsed:.1}s: {:.0}/s (replies not read)",
                report["sent"],
                report["sent_per_s"].as_f64().unwrap_or(0.0)
            );
        }
        println!("{report}");
        return Ok(());
    }
    if !args.json {
        eprintln!(
            "{} replies in {elapsed:.1}s: {:.0}/s; {} errors, {} timeouts, {} invalid; latency p50 {} µs, p90 {} µs, p99 {} µs, max {} µs; {:.1} nodes per find_node/get_peers reply",
            replies,
            replies as f64 / elapsed,
            report["errors"],
            report["timeouts"],
            report["invalid"],
            report["latency_us"]["p50"],
            report["latency_us"]["p90"],
            report["latency_us"]["p99"],
            report["latency_us"]["max"],
            report["nodes_per_reply"].as_f64().unwrap_or(0.0)
        );
    }
    println!("{report}");
    if replies == 0 {
        return Err(Failure::Failed(format!(
            "no valid reply from {}",
            args.target
        )));
    }
    Ok(())
}

/// A KRPC message's transaction id: the value of its top-level key `t`.
/// The first `1:t` in the bytes will not do: a random node id that ends in
/// it (one query in 2^24) made the echo answer with a wrong id.
fn transaction_id(datagram: &[u8]) -> Option<&[u8]> {
    use dhtd_protocol::bencode::{Decoder, Limits};
    let mut d = Decoder::new(datagram, Limits::KRPC);
    d.begin_dict().ok()?;
    while let Some(key) = d.next_key().ok()? {
        if key == b"t" {
            return d.bytes().ok();
        }
        d.skip_value().ok()?;
    }
    None
}

/// `dhtd echo`: answers every query with one pre-encoded reply (an id,
/// 8 nodes and a token, valid for every method), changing only the
/// transaction id: the most any node could do on this machine.
pub(crate) fn echo(listen: SocketAddr) -> Result<(), Failure> {
    use std::io::Write;
    let socket = UdpSocket::bind(listen)
        .map_err(|e| Failure::Failed(format!("cannot bind {listen}: {e}")))?;
    eprintln!(
        "echo responder on {}",
        socket.local_addr().map_or(listen, |a| a)
    );
    let mut prefix = b"d1:rd2:id20:".to_vec();
    prefix.extend_from_slice(&[0x45; 20]);
    prefix.extend_from_slice(b"5:nodes208:");
    for i in 0..8u8 {
        prefix.extend_from_slice(&[i + 1; 20]);
        prefix.extend_from_slice(&[127, 0, 9, i + 1, 0x1a, 0xe1]);
    }
    prefix.extend_from_slice(b"5:token8:echotokne1:t");
    let mut buf = [0u8; 2048];
    let mut out = Vec::with_capacity(512);
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Some(tid) = transaction_id(&buf[..n]) else {
            continue;
        };
        out.clear();
        out.extend_from_slice(&prefix);
        let _ = write!(out, "{}:", tid.len());
        out.extend_from_slice(tid);
        out.extend_from_slice(b"1:y1:re");
        let _ = socket.send_to(&out, from);
    }
}

#[cfg(test)]
mod tests {
    use super::transaction_id;

    #[test]
    fn the_transaction_id_is_the_top_level_t_not_the_first_1_t_in_the_bytes() {
        // A sender id ending in "1:t", followed by the key "6:target": a
        // scan for "1:t" took "target" for the id.
        let mut query = b"d1:ad2:id20:".to_vec();
        query.extend_from_slice(&[0x41; 17]);
        query.extend_from_slice(b"1:t6:target20:");
        query.extend_from_slice(&[0x42; 20]);
        query.extend_from_slice(b"e1:q9:find_node1:t4:\x00\x00\x01\x02");
        query.extend_from_slice(b"1:y1:qe");
        assert_eq!(transaction_id(&query), Some(&b"\x00\x00\x01\x02"[..]));
        assert_eq!(transaction_id(b"d1:y1:qe"), None);
        assert_eq!(transaction_id(b"not bencode 1:t2:ab"), None);
    }
}
