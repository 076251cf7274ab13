//! Embedding a dhtd node in an application that has its own tokio runtime,
//! as a BitTorrent client would: announce a torrent, find its peers, read
//! the statistics, shut down.
//!
//! With no argument it first starts a private network of 16 nodes on
//! loopback to talk to (it never contacts the public DHT):
//!
//! ```text
//! cargo run --release -p dhtd --example embed
//! cargo run --release -p dhtd --example embed -- 127.0.0.2:6881   # an existing node
//! ```

use std::net::SocketAddr;

use dhtd::{Config, Dht, InfoHash, PortChoice, Runtime};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut private_net: Vec<Dht> = Vec::new();
    let bootstrap: Vec<SocketAddr> = match std::env::args().nth(1) {
        Some(addr) => vec![addr.parse()?],
        None => {
            // The helper nodes share a small set of threads.
            let runtime = Runtime::new()?;
            for i in 0..16u8 {
                let seeds: Vec<SocketAddr> =
                    private_net.iter().take(3).map(|n| n.local_addr()).collect();
                let config = Config::local(SocketAddr::from(([127, 0, 1, i + 1], 0)), &seeds);
                private_net.push(Dht::builder(config).runtime(&runtime).start()?);
            }
            for n in &private_net {
                n.wait_bootstrapped().await;
            }
            vec![private_net[0].local_addr()]
        }
    };

    // The embedded node: our application's own.
    let dht = Dht::builder(Config::local("127.0.0.1:0".parse()?, &bootstrap)).start()?;
    println!("node {} on {}", dht.id(), dht.local_addr());
    dht.wait_bootstrapped().await;

    let info_hash: InfoHash = "c9e15763f722f23e98a29decdfae341b98d53056".parse()?;
    if let Some(helper) = private_net.get(5) {
        let r = helper.announce(info_hash, PortChoice::Port(51413)).await?;
        println!("helper announced: {} of {} accepted", r.accepted, r.tried);
    }
    let report = dht.announce(info_hash, PortChoice::Port(6881)).await?;
    println!(
        "announced: {} of {} nodes accepted",
        report.accepted, report.tried
    );

    let mut peers = dht.get_peers(info_hash);
    while let Some(peer) = peers.next_peer().await {
        println!("peer {peer}");
    }
    if let Some(s) = peers.summary() {
        println!(
            "lookup: {} queries, {} answers, {} closest, {:?}",
            s.queries,
            s.responses,
            s.closest.len(),
            s.duration
        );
    }

    let stats = dht.stats().await?;
    println!(
        "table: {} nodes in {} buckets; store: {} info hashes; packets in/out {}/{}",
        stats.nodes(),
        stats.routing.buckets.len(),
        stats.store.info_hashes,
        stats.traffic.get("dht_packets_received_total", &[]),
        stats.traffic.get("dht_packets_sent_total", &[])
    );
    dht.shutdown().await;
    for n in &private_net {
        n.shutdown().await;
    }
    Ok(())
}
