//! `dhtd sample`: a BEP 51 crawler. It walks the keyspace asking node
//! after node for a sample of the info hashes they store, goes where each
//! answer's `nodes` point, asks a node again no sooner than the `interval`
//! it gave, and prints every info hash it has not seen before.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dhtd::{Dht, Error, InfoHash, NodeId, Samples};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::task::JoinSet;

use crate::settings::{self, Defaults, NodeArgs};
use crate::Failure;

/// Nodes asked at once: a crawl that stays well within the node's
/// outbound query budget.
const IN_FLIGHT: usize = 8;
/// How long the crawl may wait for bootstrap.
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(90);

/// What the crawl counted.
#[derive(Default)]
struct Tally {
    asked: usize,
    answered: usize,
    without_bep51: usize,
    failed: usize,
}

pub(crate) async fn sample(
    max_nodes: usize,
    duration: Duration,
    json: bool,
    args: &NodeArgs,
) -> Result<(), Failure> {
    let settings = settings::resolve(args, Defaults::TOOL)?;
    let dht = Dht::builder(settings.config).start()?;
    tokio::time::timeout(BOOTSTRAP_TIMEOUT, dht.wait_bootstrapped())
        .await
        .map_err(|_| {
            Failure::Failed(format!(
                "no DHT nodes available: bootstrap did not complete within {BOOTSTRAP_TIMEOUT:?}"
            ))
        })?;
    let started = Instant::now();
    let deadline = started + duration;
    let progress = std::io::stderr().is_terminal() && !json;
    let mut rng = StdRng::from_os_rng();

    let table = dht
        .export_table()
        .await
        .map_err(|e| Failure::Failed(e.to_string()))?;
    let mut frontier: VecDeque<SocketAddr> = table.nodes.iter().map(|n| n.addr).collect();
    let mut known: HashSet<SocketAddr> = frontier.iter().copied().collect();
    // Nodes to ask again once their interval has passed, soonest first.
    let mut again: BinaryHeap<Reverse<(Instant, SocketAddr)>> = BinaryHeap::new();
    let mut found: HashSet<InfoHash> = HashSet::new();
    let mut tally = Tally::default();
    let mut asking: JoinSet<(SocketAddr, Result<Samples, Error>)> = JoinSet::new();

    loop {
        let now = Instant::now();
        while let Some(Reverse((due, addr))) = again.peek().copied() {
            if due > now {
                break;
            }
            again.pop();
            frontier.push_back(addr);
        }
        while asking.len() < IN_FLIGHT && tally.asked < max_nodes && now < deadline {
            let Some(addr) = frontier.pop_front() else {
                break;
            };
            let target = NodeId(rng.random());
            let dht = dht.clone();
            asking.spawn(async move { (addr, dht.sample_infohashes(addr, target).await) });
            tally.asked += 1;
        }
        if asking.is_empty() {
            let next = again.peek().map(|Reverse((due, _))| *due);
            match next {
                Some(due) if due < deadline && tally.asked < max_nodes => {
                    tokio::time::sleep_until(due.into()).await;
                    continue;
                }
                _ => break,
            }
        }
        let Some(Ok((addr, result))) = asking.join_next().await else {
            continue;
        };
        match result {
            Ok(s) => {
                tally.answered += 1;
                for h in &s.info_hashes {
                    if found.insert(*h) {
                        if json {
                            println!(
                                "{}",
                                json!({"info_hash": h.to_string(), "from": addr.to_string()})
                            );
                        } else {
                            if progress {
                                eprint!("\r\x1b[K");
                            }
                            println!("{h}");
                        }
                    }
                }
                for n in &s.nodes {
                    if known.insert(n.addr) {
                        frontier.push_back(n.addr);
                    }
                }
                // A node that stores more than it showed is worth asking
                // again, once its sample has changed.
                if s.num as usize > s.info_hashes.len() {
                    let due = Instant::now() + s.interval.max(Duration::from_secs(1));
                    again.push(Reverse((due, addr)));
                }
            }
            Err(Error::Unsupported) => tally.without_bep51 += 1,
            Err(_) => tally.failed += 1,
        }
        if progress {
            let secs = started.elapsed().as_secs_f64().max(0.001);
            eprint!(
                "\r\x1b[K{} nodes asked, {} answered, {} info hashes ({:.1}/s)",
                tally.asked,
                tally.answered,
                found.len(),
                found.len() as f64 / secs
            );
        }
    }
    asking.shutdown().await;
    if progress {
        eprint!("\r\x1b[K");
    }
    let elapsed = started.elapsed();
    if json {
        println!(
            "{}",
            json!({"summary": {
                "info_hashes": found.len(), "nodes_asked": tally.asked, "answered": tally.answered,
                "without_bep51": tally.without_bep51, "failed": tally.failed,
                "duration_ms": elapsed.as_millis() as u64,
            }})
        );
    } else {
        eprintln!(
            "{} info hashes from {} nodes asked: {} answered with a sample, {} do not support BEP 51, {} failed; {elapsed:.1?}",
            found.len(),
            tally.asked,
            tally.answered,
            tally.without_bep51,
            tally.failed
        );
    }
    dht.shutdown().await;
    if tally.answered == 0 {
        return Err(Failure::Failed("no node answered with a sample".into()));
    }
    Ok(())
}
