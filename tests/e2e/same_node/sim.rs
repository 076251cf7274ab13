//! The scenario's simulator driver: the same nodes (ids, seeds, addresses,
//! configuration) on a network without loss or latency, on a virtual
//! clock that jumps as the manual one does.

use std::net::SocketAddr;
use std::time::Duration;

use dhtd::{InfoHash, NodeId};
use dhtd_protocol::lookup::LookupKind;
use dhtd_protocol::node::bootstrap::Sources;
use dhtd_protocol::node::{AnnounceSpec, NodeConfig};
use dhtd_protocol::sim::{NetworkConfig, NodeSpec, Simulation};

use super::{node_id, scenario, seed, Driver, Run, Sent};

struct Sim {
    sim: Simulation,
    addrs: Vec<SocketAddr>,
    raw: SocketAddr,
    trace: Vec<Sent>,
}

impl Sim {
    fn collect(&mut self) {
        let new = self.sim.take_trace();
        self.trace
            .extend(new.into_iter().map(|t| (t.from, t.to, t.bytes)));
    }

    fn lookup(
        &mut self,
        i: usize,
        target: NodeId,
        announce: Option<AnnounceSpec>,
    ) -> dhtd_protocol::node::LookupSummary {
        let caller = self
            .sim
            .start_lookup(i, target, LookupKind::GetPeers, announce);
        self.settle();
        let node = self.sim.node_mut(i);
        node.api
            .finished
            .remove(&caller)
            .expect("the lookup ends without the clock moving")
    }
}

impl Driver for Sim {
    fn start(&mut self, i: usize, routers: &[usize]) {
        let sources = Sources {
            routers: routers.iter().map(|&r| self.addrs[r].to_string()).collect(),
            ..Sources::default()
        };
        self.sim.add_node(NodeSpec {
            addr: self.addrs[i],
            id: Some(node_id(i)),
            seed: Some(seed(i)),
            config: NodeConfig::default(),
            sources,
        });
    }

    fn settle(&mut self) {
        let now = self.sim.now();
        self.sim.run_until(now, |_| false);
        self.collect();
    }

    fn advance(&mut self, d: Duration) {
        self.sim.jump(d);
        self.collect();
    }

    fn announce(&mut self, i: usize, info_hash: InfoHash, port: u16) -> (usize, usize) {
        let spec = AnnounceSpec {
            port,
            implied_port: false,
            seed: false,
        };
        let report = self
            .lookup(i, NodeId::from(info_hash), Some(spec))
            .announce
            .unwrap_or_default();
        (report.tried, report.accepted)
    }

    fn get_peers(&mut self, i: usize, info_hash: InfoHash) -> Vec<SocketAddr> {
        let caller = self
            .sim
            .start_lookup(i, NodeId::from(info_hash), LookupKind::GetPeers, None);
        self.settle();
        let api = &mut self.sim.node_mut(i).api;
        api.finished.remove(&caller).expect("the lookup ends");
        api.peers.remove(&caller).unwrap_or_default()
    }

    fn raw(&mut self, i: usize, datagram: &[u8]) -> Vec<u8> {
        let seen = self.trace.len();
        self.sim.inject(self.raw, i, datagram);
        self.settle();
        self.trace[seen..]
            .iter()
            .find(|(from, to, _)| *from == self.addrs[i] && *to == self.raw)
            .map(|(_, _, bytes)| bytes.clone())
            .expect("the node answers our peer")
    }

    fn bootstrapped(&mut self, i: usize) -> bool {
        self.sim.is_bootstrapped(i)
    }

    fn take_trace(&mut self) -> Vec<Sent> {
        std::mem::take(&mut self.trace)
    }
}

/// Runs the scenario in the simulator, with the real run's addresses.
pub(crate) fn run(addrs: &[SocketAddr], raw: SocketAddr) -> Run {
    #[allow(clippy::disallowed_methods)]
    let epoch = std::time::Instant::now();
    let network = NetworkConfig {
        loss: 0.0,
        min_latency: Duration::ZERO,
        max_latency: Duration::ZERO,
    };
    let mut sim = Simulation::new(epoch, network, 1);
    sim.start_trace();
    let mut driver = Sim {
        sim,
        addrs: addrs.to_vec(),
        raw,
        trace: Vec::new(),
    };
    scenario(&mut driver)
}
