//! A BitTorrent client's use of the DHT: find the peers of a magnet link,
//! and keep announcing ourselves while the client runs (stored announces
//! expire, so a client repeats them).
//!
//! ```text
//! cargo run -p dhtd --example magnet -- MAGNET --bootstrap 127.0.0.2:6881 [--port 6881]
//!     [--listen 127.0.0.1:0] [--seconds 60] [--every 30]
//! cargo run -p dhtd --example magnet -- MAGNET --public   # the real DHT, via its routers
//! ```
//!
//! It prints `peer ADDR` for each new peer, a line per search, and stops
//! after `--seconds` or at Ctrl-C. Without `--public` it talks only to the
//! nodes given with `--bootstrap`.

use std::collections::HashSet;
use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use dhtd::{Config, Dht, InfoHash, PortChoice};

/// How often an announce is repeated: well within the 45 minutes that
/// nodes keep it.
const ANNOUNCE_EVERY: Duration = Duration::from_secs(15 * 60);

struct Args {
    info_hash: InfoHash,
    bootstrap: Vec<SocketAddr>,
    public: bool,
    listen: Option<SocketAddr>,
    port: u16,
    seconds: Option<u64>,
    every: Duration,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("magnet: {e}\nusage: magnet MAGNET (--bootstrap ADDR... | --public) [--port N] [--listen ADDR] [--seconds N] [--every N]");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("magnet: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let config = if args.public {
        Config {
            listen: args.listen.map_or(Config::default().listen, |a| vec![a]),
            ..Config::default()
        }
    } else {
        let listen = args.listen.unwrap_or(([127, 0, 0, 1], 0).into());
        Config::local(listen, &args.bootstrap)
    };
    let dht = Dht::builder(config).start()?;
    let addrs: Vec<String> = dht.local_addrs().iter().map(ToString::to_string).collect();
    println!("node {} on {}", dht.id(), addrs.join(" and "));
    tokio::time::timeout(Duration::from_secs(60), dht.wait_bootstrapped())
        .await
        .map_err(|_| "no DHT node answered within a minute")?;

    // Announce now, then keep the announce alive while we run.
    let port = PortChoice::Port(args.port);
    let report = dht.announce(args.info_hash, port).await?;
    println!(
        "announced to {} of {} nodes ({} confidence)",
        report.accepted,
        report.tried,
        report.confidence.as_str()
    );
    dht.announce_every(args.info_hash, port, ANNOUNCE_EVERY)
        .await?;

    let stop = async {
        match args.seconds {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    tokio::pin!(stop);
    let mut known = HashSet::new();
    loop {
        let mut peers = dht.get_peers(args.info_hash);
        while let Some(peer) = peers.next_peer().await {
            if known.insert(peer) {
                println!("peer {peer}");
            }
        }
        if let Some(s) = peers.summary() {
            println!(
                "search: {} peers known, {} nodes answered in {:.1?}",
                known.len(),
                s.responses,
                s.duration
            );
        }
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(args.every) => {}
        }
    }
    dht.stop_announcing(args.info_hash).await?;
    // Dropping the last handle stops the node (and saves its table, had
    // it a state dir).
    drop(dht);
    Ok(())
}

fn parse(mut words: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut magnet = None;
    let mut args = Args {
        info_hash: InfoHash([0; 20]),
        bootstrap: Vec::new(),
        public: false,
        listen: None,
        port: 6881,
        seconds: None,
        every: Duration::from_secs(30),
    };
    while let Some(word) = words.next() {
        let mut value = |flag: &str| words.next().ok_or(format!("{flag} needs a value"));
        match word.as_str() {
            "--bootstrap" => {
                let v = value("--bootstrap")?;
                let addr = v
                    .parse()
                    .map_err(|_| format!("--bootstrap: `{v}` is not IP:PORT"))?;
                args.bootstrap.push(addr);
            }
            "--public" => args.public = true,
            "--listen" => {
                let v = value("--listen")?;
                args.listen = Some(
                    v.parse()
                        .map_err(|_| format!("--listen: `{v}` is not IP:PORT"))?,
                );
            }
            "--port" => {
                let v = value("--port")?;
                args.port = v
                    .parse()
                    .map_err(|_| format!("--port: `{v}` is not a port"))?;
            }
            "--seconds" => {
                let v = value("--seconds")?;
                args.seconds = Some(
                    v.parse()
                        .map_err(|_| format!("--seconds: `{v}` is not a number"))?,
                );
            }
            "--every" => {
                let v = value("--every")?;
                let secs: u64 = v
                    .parse()
                    .map_err(|_| format!("--every: `{v}` is not a number"))?;
                args.every = Duration::from_secs(secs.max(1));
            }
            _ if magnet.is_none() && !word.starts_with("--") => magnet = Some(word),
            _ => return Err(format!("unexpected `{word}`")),
        }
    }
    let magnet = magnet.ok_or("no magnet link")?;
    args.info_hash = info_hash_of(&magnet)?;
    if args.bootstrap.is_empty() && !args.public {
        return Err("give --bootstrap nodes, or --public for the real DHT".into());
    }
    Ok(args)
}

/// The info hash of a magnet link's `xt=urn:btih:` (40 hex digits, or 32
/// base32 characters).
fn info_hash_of(magnet: &str) -> Result<InfoHash, String> {
    let query = magnet
        .strip_prefix("magnet:?")
        .ok_or("a magnet link starts with `magnet:?`")?;
    let btih = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("xt=urn:btih:"))
        .ok_or("the magnet link has no `xt=urn:btih:`")?;
    match btih.len() {
        40 => btih
            .parse()
            .map_err(|_| format!("`{btih}` is not 40 hex digits")),
        32 => base32(btih)
            .map(InfoHash)
            .ok_or(format!("`{btih}` is not base32")),
        _ => Err(format!("`{btih}` is not an info hash")),
    }
}

/// RFC 4648 base32, 32 characters to 20 bytes.
fn base32(text: &str) -> Option<[u8; 20]> {
    let mut out = [0u8; 20];
    let (mut acc, mut bits, mut at) = (0u64, 0, 0);
    for c in text.bytes() {
        let v = match c.to_ascii_uppercase() {
            c @ b'A'..=b'Z' => c - b'A',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        acc = acc << 5 | u64::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out[at] = (acc >> bits) as u8;
            at += 1;
        }
    }
    Some(out)
}
