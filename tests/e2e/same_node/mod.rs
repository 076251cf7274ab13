//! One node, two drivers: the same scripted scenario run through the
//! simulator and through real actors on loopback with a manual clock gives
//! the same queries sent and the same answers given, datagram for
//! datagram (transaction ids aside: they come from the order in which one
//! node's pieces hand queries over, which threads decide).
//!
//! The scenario: a router that knows no node; a node bootstrapping from it;
//! two more from the same router; an announce; a lookup that finds it; a
//! token that two rotations make too old; an announce that expires.

mod actors;
mod sim;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use dhtd::{InfoHash, NodeId};
use dhtd_protocol::krpc::{Body, Message, Query};
use dhtd_tests::{error_code, RawPeer};

/// A datagram a node sent: from, to, bytes.
pub(crate) type Sent = (SocketAddr, SocketAddr, Vec<u8>);

/// Node `i`'s id and seed: fixed, so both drivers make the same node.
pub(crate) fn node_id(i: usize) -> NodeId {
    // Spread over the id space, so each node has its own bucket layout.
    let mut id = [0x5a; 20];
    id[0] = (i as u8).wrapping_mul(0x47) ^ 0x80;
    id[19] = i as u8;
    NodeId(id)
}

pub(crate) fn seed(i: usize) -> u64 {
    0x5eed_0000 + i as u64
}

/// What a driver of a node must do for the scenario.
pub(crate) trait Driver {
    /// Starts node `i` with `routers` (node indices) as its routers.
    fn start(&mut self, i: usize, routers: &[usize]);
    /// Runs until nothing more happens without the clock moving.
    fn settle(&mut self);
    /// Moves the clock on by `d` (every node sees it at once), then settles.
    fn advance(&mut self, d: Duration);
    /// Node `i` announces `info_hash` on `port`: (tried, accepted).
    fn announce(&mut self, i: usize, info_hash: InfoHash, port: u16) -> (usize, usize);
    /// Node `i` looks up `info_hash`: the peers found.
    fn get_peers(&mut self, i: usize, info_hash: InfoHash) -> Vec<SocketAddr>;
    /// The test's own peer sends `datagram` to node `i`: the answer.
    fn raw(&mut self, i: usize, datagram: &[u8]) -> Vec<u8>;
    /// Whether node `i` has bootstrapped.
    fn bootstrapped(&mut self, i: usize) -> bool;
    /// Every datagram the nodes sent since the last call.
    fn take_trace(&mut self) -> Vec<Sent>;
}

/// A datagram with its transaction id left out, re-encoded: what two
/// drivers must agree on.
fn canonical(bytes: &[u8]) -> Vec<u8> {
    match Message::decode(bytes) {
        Ok(mut m) => {
            m.transaction_id = b"";
            m.to_bytes()
        }
        Err(_) => bytes.to_vec(),
    }
}

/// Each step's datagrams, as a sorted list, and what the scenario saw.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Run {
    pub(crate) steps: Vec<(&'static str, Vec<Sent>)>,
    pub(crate) outcomes: BTreeMap<&'static str, String>,
}

fn step(d: &mut dyn Driver, run: &mut Run, name: &'static str) {
    let mut trace: Vec<_> = d
        .take_trace()
        .into_iter()
        .map(|(from, to, bytes)| (from, to, canonical(&bytes)))
        .collect();
    trace.sort();
    run.steps.push((name, trace));
}

const ROUTER: usize = 0;
const TICK: Duration = Duration::from_millis(100);

/// The scenario, on any driver.
pub(crate) fn scenario(d: &mut dyn Driver) -> Run {
    let mut run = Run::default();
    let info_hash = InfoHash([0x3c; 20]);

    // A router that knows no node: it answers, with no nodes.
    d.start(ROUTER, &[]);
    d.settle();
    d.advance(Duration::from_secs(3));
    step(d, &mut run, "a lone router");

    // Node 1 bootstraps from it: the router is all there is, and joins its
    // table as a neighbour; bootstrap completes with that one node.
    d.start(1, &[ROUTER]);
    d.settle();
    let first = d.bootstrapped(1);
    d.advance(TICK);
    step(d, &mut run, "bootstrap from a router that knows no nodes");

    for i in [2, 3] {
        d.start(i, &[ROUTER]);
        d.settle();
        d.advance(TICK);
    }
    d.advance(Duration::from_secs(3));
    step(d, &mut run, "two more nodes bootstrap from the router");
    let all = (0..4).filter(|&i| d.bootstrapped(i)).count();
    run.outcomes.insert(
        "bootstrapped",
        format!("node 1 at once: {first}; all: {all}"),
    );

    let (tried, accepted) = d.announce(2, info_hash, 7000);
    d.settle();
    step(d, &mut run, "announce");
    run.outcomes
        .insert("announce", format!("{accepted} of {tried} accepted"));

    let peers = d.get_peers(3, info_hash);
    d.settle();
    step(d, &mut run, "lookup");
    run.outcomes.insert("lookup", format!("{peers:?}"));

    // Our own peer gets a token from node 1, and waits two rotations.
    let get = Query::GetPeers {
        info_hash,
        want: None,
        scrape: false,
        noseed: false,
    };
    let reply = d.raw(1, &RawPeer::query(b"g1", NodeId([7; 20]), get, false));
    let token = match Message::decode(&reply).map(|m| m.body) {
        Ok(Body::Response(r)) => r.token.unwrap_or_default().to_vec(),
        other => panic!("get_peers answered {other:?}"),
    };
    d.settle();
    d.advance(Duration::from_secs(11 * 60));
    let announce = Query::AnnouncePeer {
        info_hash,
        port: 6881,
        implied_port: false,
        token: &token,
        seed: false,
    };
    let reply = d.raw(1, &RawPeer::query(b"a1", NodeId([7; 20]), announce, false));
    d.settle();
    step(d, &mut run, "a token two rotations old");
    run.outcomes
        .insert("old token", format!("{:?}", error_code(&reply)));

    // 46 minutes after the announce, it has expired everywhere.
    d.advance(Duration::from_secs(35 * 60));
    let peers = d.get_peers(3, info_hash);
    d.settle();
    step(d, &mut run, "an expired announce");
    run.outcomes.insert("expired", format!("{peers:?}"));
    run
}

/// The scenario through both drivers: the same datagrams at every step.
#[test]
fn the_simulator_and_the_actors_run_the_same_node() {
    let (real, addrs, raw) = actors::run();
    let simulated = sim::run(&addrs, raw);
    assert_eq!(real.steps.len(), simulated.steps.len());
    let mut differences = Vec::new();
    for ((name, a), (_, b)) in real.steps.iter().zip(&simulated.steps) {
        println!(
            "{name}: {} datagrams with actors, {} simulated",
            a.len(),
            b.len()
        );
        if a != b {
            differences.push(format!(
                "step `{name}`: {} datagrams with actors, {} simulated\nonly with actors:\n{}\nonly simulated:\n{}",
                a.len(),
                b.len(),
                only_in(a, b).join("\n"),
                only_in(b, a).join("\n")
            ));
        }
        // Alone, the router has nobody to talk to; every later step talks.
        assert_eq!(a.is_empty(), *name == "a lone router", "step `{name}`");
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    assert_eq!(real.outcomes, simulated.outcomes);
    // What the scenario is about, on the real node.
    let o = &real.outcomes;
    assert_eq!(o["bootstrapped"], "node 1 at once: true; all: 4");
    assert_eq!(
        o["lookup"],
        format!("[{}]", SocketAddr::new(addrs[2].ip(), 7000))
    );
    assert_eq!(o["old token"], "Some(203)");
    assert_eq!(o["expired"], "[]");
}

/// The datagrams of `x` that `y` lacks (as many times as they are lacked).
fn only_in(x: &[Sent], y: &[Sent]) -> Vec<String> {
    let mut y = y.to_vec();
    x.iter()
        .filter(|r| match y.iter().position(|s| s == *r) {
            Some(i) => {
                y.remove(i);
                false
            }
            None => true,
        })
        .map(|(f, t, b)| format!("{f} -> {t}: {}", describe(b)))
        .collect()
}

/// A datagram in a line: the method, or the first bytes of the answer's
/// node ids (each node's id starts with its own byte).
fn describe(bytes: &[u8]) -> String {
    match Message::decode(bytes).map(|m| m.body) {
        Ok(Body::Query { query, .. }) => format!("{query:?}"),
        Ok(Body::Response(r)) => {
            let nodes: Vec<String> = r
                .nodes
                .iter()
                .flat_map(|n| n.iter())
                .map(|n| format!("{:02x}", n.id.0[0]))
                .collect();
            format!(
                "answer, nodes [{}], values {}, token {}",
                nodes.join(" "),
                r.values.map_or(0, |v| v.iter().count()),
                r.token.is_some()
            )
        }
        other => format!("{other:?}"),
    }
}
