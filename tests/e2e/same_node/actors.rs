//! The scenario's actor driver: real dhtd nodes on loopback, one manual
//! clock, every datagram tapped.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dhtd::{
    Activity, Clock, Config, Dht, InfoHash, ManualClock, NodeIdChoice, PortChoice, Runtime, Tap,
};
use dhtd_tests::{node_ip, RawPeer};

use super::{node_id, scenario, seed, Driver, Run, Sent};

/// The longest any one step may take in real time.
const STEP_LIMIT: Duration = Duration::from_secs(20);

pub(crate) struct Actors {
    rt: tokio::runtime::Runtime,
    runtime: Runtime,
    clock: ManualClock,
    tap: Tap,
    taken: usize,
    nodes: Vec<Dht>,
    raw: RawPeer,
    raw_sent: u64,
}

impl Actors {
    fn new() -> Actors {
        Actors {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            runtime: Runtime::new().unwrap(),
            clock: ManualClock::new(),
            tap: Tap::new(),
            taken: 0,
            nodes: Vec::new(),
            raw: RawPeer::bind(node_ip(1500)),
            raw_sent: 0,
        }
    }

    /// What the nodes have done: their activity, the datagrams sent to
    /// them (ours included) and those they received.
    fn reading(&self) -> (Activity, u64, u64) {
        let addrs: Vec<SocketAddr> = self.nodes.iter().map(Dht::local_addr).collect();
        let activity = self.clock.activity();
        let sent_to_nodes = self
            .tap
            .since(0)
            .iter()
            .filter(|(_, to, _)| addrs.contains(to))
            .count() as u64
            + self.raw_sent;
        (activity, sent_to_nodes, self.received())
    }

    fn received(&self) -> u64 {
        self.nodes
            .iter()
            .map(|n| {
                self.rt
                    .block_on(n.stats())
                    .unwrap()
                    .traffic
                    .get("dht_packets_received_total", &[])
            })
            .sum()
    }
}

impl Driver for Actors {
    fn start(&mut self, i: usize, routers: &[usize]) {
        assert_eq!(i, self.nodes.len());
        let mut config = Config::local(SocketAddr::new(node_ip(1400 + i), 0), &[]);
        config.routers = routers
            .iter()
            .map(|&r| self.nodes[r].local_addr().to_string())
            .collect();
        config.node_id = NodeIdChoice::Fixed(node_id(i));
        config.rng_seed = Some(seed(i));
        config.clock = Clock::Manual(self.clock.clone());
        config.tap = Some(self.tap.clone());
        let node = Dht::builder(config).runtime(&self.runtime).start().unwrap();
        self.nodes.push(node);
    }

    /// Returns once the nodes are idle: every datagram sent to a node was
    /// received, and a heartbeat through every actor's mailbox found
    /// nothing handled and no wake-up pending (see `ManualClock::activity`).
    /// Exact, not a quiet spell: a loaded machine only makes it slower.
    fn settle(&mut self) {
        let started = Instant::now();
        loop {
            assert!(started.elapsed() < STEP_LIMIT, "the nodes did not settle");
            let before = self.reading();
            for node in &self.nodes {
                self.rt
                    .block_on(node.heartbeat(STEP_LIMIT))
                    .expect("every actor answers");
            }
            let after = self.reading();
            let (activity, sent_to_nodes, received) = after;
            if before == after && activity.pending == 0 && received == sent_to_nodes {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// As the simulator orders it: every node runs what fell due before
    /// any hears what the others sent then.
    fn advance(&mut self, d: Duration) {
        self.tap.hold();
        self.clock.advance(d);
        self.settle();
        self.tap.release();
        self.settle();
    }

    fn announce(&mut self, i: usize, info_hash: InfoHash, port: u16) -> (usize, usize) {
        let node = self.nodes[i].clone();
        let report = self
            .rt
            .block_on(async {
                tokio::time::timeout(STEP_LIMIT, node.announce(info_hash, PortChoice::Port(port)))
                    .await
            })
            .expect("the announce ends without the clock moving")
            .unwrap();
        (report.tried, report.accepted)
    }

    fn get_peers(&mut self, i: usize, info_hash: InfoHash) -> Vec<SocketAddr> {
        let node = self.nodes[i].clone();
        let (peers, _) = self
            .rt
            .block_on(async {
                tokio::time::timeout(STEP_LIMIT, node.get_peers(info_hash).collect()).await
            })
            .expect("the lookup ends without the clock moving");
        peers
    }

    fn raw(&mut self, i: usize, datagram: &[u8]) -> Vec<u8> {
        self.raw_sent += 1;
        self.raw
            .ask(self.nodes[i].local_addr(), datagram)
            .expect("the node answers our peer")
    }

    fn bootstrapped(&mut self, i: usize) -> bool {
        self.nodes[i].is_bootstrapped()
    }

    fn take_trace(&mut self) -> Vec<Sent> {
        let new = self.tap.since(self.taken);
        self.taken += new.len();
        new
    }
}

/// Runs the scenario on real nodes: the run, the nodes' addresses (the
/// simulator uses the same ones) and our own peer's.
pub(crate) fn run() -> (Run, Vec<SocketAddr>, SocketAddr) {
    let mut actors = Actors::new();
    let run = scenario(&mut actors);
    let addrs = actors.nodes.iter().map(Dht::local_addr).collect();
    let raw = actors.raw.socket.local_addr().unwrap();
    for n in &actors.nodes {
        actors.rt.block_on(n.shutdown());
    }
    (run, addrs, raw)
}
