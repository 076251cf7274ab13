//! An application that runs several DHT nodes on one runtime: a test
//! network, a crawler, or a client with one node per interface. The nodes
//! share the runtime's three threads, whatever their number.
//!
//! ```text
//! cargo run -p dhtd --example many_nodes -- [--nodes 12] [--first-ip 127.0.20.1]
//! ```
//!
//! Each node binds its own loopback address (127.0.20.1, 127.0.21.1, …: a
//! /24 each, as on the Internet) and bootstraps from earlier ones; one of
//! them announces, and every other one looks the announce up. Nothing
//! leaves the machine.

use std::error::Error;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use dhtd::{Config, Dht, InfoHash, PortChoice, Runtime};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let (nodes, first_ip) = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("many_nodes: {e}\nusage: many_nodes [--nodes N] [--first-ip 127.X.Y.1]");
            return ExitCode::from(2);
        }
    };
    match run(nodes, first_ip).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("many_nodes: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(count: usize, first_ip: Ipv4Addr) -> Result<(), Box<dyn Error>> {
    // One runtime for every node: no thread per node.
    let runtime = Runtime::new()?;
    let mut nodes: Vec<Dht> = Vec::new();
    for i in 0..count {
        let [a, b, c, d] = first_ip.octets();
        let ip = Ipv4Addr::new(a, b, c.wrapping_add(i as u8), d);
        // The first node and the two latest: each joins a network that
        // already knows itself.
        let mut seeds: Vec<SocketAddr> = nodes.iter().rev().take(2).map(Dht::local_addr).collect();
        seeds.extend(nodes.first().map(Dht::local_addr));
        let mut config = Config::local(SocketAddr::from((ip, 0)), &seeds);
        // A private network is small: a lone first node retries soon.
        config.dht.bootstrap.retry = Duration::from_millis(500);
        config.dht.bootstrap.retry_max = Duration::from_secs(2);
        nodes.push(Dht::builder(config).runtime(&runtime).start()?);
    }
    let started = Instant::now();
    for node in &nodes[1..] {
        tokio::time::timeout(Duration::from_secs(30), node.wait_bootstrapped())
            .await
            .map_err(|_| format!("{} did not bootstrap", node.local_addr()))?;
    }
    println!(
        "{} nodes bootstrapped in {:.1?}",
        nodes.len(),
        started.elapsed()
    );

    let info_hash: InfoHash = "5d3ba2a0e1f6ad1c1a5cb7d3f1a1c26d0f0c4b11".parse()?;
    let announcer = &nodes[nodes.len() / 2];
    let report = announcer
        .announce(info_hash, PortChoice::Port(51413))
        .await?;
    println!(
        "{} announced: {} of {} nodes stored it",
        announcer.local_addr(),
        report.accepted,
        report.tried
    );
    let wanted = SocketAddr::new(announcer.local_addr().ip(), 51413);

    // Every other node looks it up, all at once.
    let lookups: Vec<_> = nodes
        .iter()
        .filter(|n| n.id() != announcer.id())
        .map(|n| tokio::spawn(n.get_peers(info_hash).collect()))
        .collect();
    let mut found = 0;
    for lookup in lookups {
        let (peers, summary) = lookup.await?;
        if peers.contains(&wanted) {
            found += 1;
        }
        if let Some(s) = summary {
            println!(
                "  {} queries, {} answers, {:.1?}",
                s.queries, s.responses, s.duration
            );
        }
    }
    println!("{found} of {} nodes found {wanted}", nodes.len() - 1);
    for node in &nodes {
        let s = node.stats().await?;
        println!(
            "{}: {} nodes in the table, storing {} peers",
            node.local_addr(),
            s.nodes(),
            s.store.peers
        );
    }
    // Dropping the handles stops the nodes; the runtime's threads end
    // with its last clone.
    drop(nodes);
    if found + 1 < count {
        return Err("not every node found the announce".into());
    }
    Ok(())
}

fn parse(mut words: impl Iterator<Item = String>) -> Result<(usize, Ipv4Addr), String> {
    let (mut nodes, mut first_ip) = (12, Ipv4Addr::new(127, 0, 20, 1));
    while let Some(word) = words.next() {
        let value = words.next().ok_or(format!("{word} needs a value"))?;
        match word.as_str() {
            "--nodes" => {
                nodes = value
                    .parse()
                    .ok()
                    .filter(|n| (2..=200).contains(n))
                    .ok_or(format!("--nodes: `{value}` is not a number from 2 to 200"))?;
            }
            "--first-ip" => {
                first_ip = value
                    .parse()
                    .ok()
                    .filter(Ipv4Addr::is_loopback)
                    .ok_or(format!(
                        "--first-ip: `{value}` is not a loopback IPv4 address"
                    ))?;
            }
            _ => return Err(format!("unexpected `{word}`")),
        }
    }
    Ok((nodes, first_ip))
}
