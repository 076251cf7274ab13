//! Publishing and resolving a signed record (BEP 44 mutable items), as
//! pkarr-style naming does: the publisher signs a record under its key and
//! updates it with a higher sequence number; anyone who knows the public
//! key finds the latest version, checked against the signature.
//!
//! ```text
//! cargo run -p dhtd --example signed_record -- [--record TEXT] [--first-ip 127.0.80.1]
//! cargo run -p dhtd --example signed_record -- --record TEXT --bootstrap IP:PORT
//! ```
//!
//! Without `--bootstrap` it starts a private network of 8 nodes on
//! loopback (a /24 each from `--first-ip`) to publish into. Nothing leaves
//! the machine unless `--bootstrap` names another node.

use std::error::Error;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use dhtd::{Config, Dht, Runtime, SigningKey};

struct Args {
    record: String,
    bootstrap: Option<SocketAddr>,
    first_ip: Ipv4Addr,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("signed_record: {e}\nusage: signed_record [--record TEXT] [--bootstrap IP:PORT | --first-ip 127.X.Y.1]");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("signed_record: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let runtime = Runtime::new()?;
    let node_at = |i: u8, bootstrap: &[SocketAddr]| -> Result<Dht, Box<dyn Error>> {
        let [a, b, c, d] = args.first_ip.octets();
        let ip = Ipv4Addr::new(a, b, c.wrapping_add(i), d);
        let mut config = Config::local(SocketAddr::from((ip, 0)), bootstrap);
        config.dht.bootstrap.retry = Duration::from_millis(500);
        Ok(Dht::builder(config).runtime(&runtime).start()?)
    };
    // A network to publish into: the one given, or a private one.
    let mut network = Vec::new();
    let entry = match args.bootstrap {
        Some(addr) => addr,
        None => {
            for i in 0..8 {
                let seeds: Vec<SocketAddr> =
                    network.iter().rev().take(2).map(Dht::local_addr).collect();
                network.push(node_at(i, &seeds)?);
            }
            network[0].local_addr()
        }
    };
    let publisher = node_at(10, &[entry])?;
    let resolver = node_at(11, &[entry])?;
    for node in [&publisher, &resolver] {
        tokio::time::timeout(Duration::from_secs(30), node.wait_bootstrapped())
            .await
            .map_err(|_| "no DHT node answered")?;
    }

    // The publisher's key: keep its 32-byte seed to update the record later.
    let (key, _seed) = SigningKey::generate();
    let public_key = key.public_key();
    let hex: String = public_key.iter().map(|b| format!("{b:02x}")).collect();
    println!("public key {hex}");

    let salt = b"record";
    let first = publisher
        .put_mutable(&key, b"(no record yet)", 1, salt, None)
        .await?;
    println!(
        "published seq 1 to {} of {} nodes",
        first.accepted, first.tried
    );
    // An update: a higher sequence number, and `cas` so that a concurrent
    // writer's update is not overwritten unseen.
    let update = publisher
        .put_mutable(&key, args.record.as_bytes(), 2, salt, Some(1))
        .await?;
    println!(
        "updated to seq 2 on {} of {} nodes",
        update.accepted, update.tried
    );

    let found = resolver
        .get_mutable(&public_key, salt, None)
        .await?
        .ok_or("the record was not found")?;
    let seq = found.mutable.as_ref().map_or(0, |m| m.seq);
    println!(
        "resolved seq {seq}: {}",
        String::from_utf8_lossy(found.value())
    );
    if seq != 2 || found.value() != args.record.as_bytes() {
        return Err("resolved an old version".into());
    }
    Ok(())
}

fn parse(mut words: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        record: "hello from dhtd".into(),
        bootstrap: None,
        first_ip: Ipv4Addr::new(127, 0, 80, 1),
    };
    while let Some(word) = words.next() {
        let value = words.next().ok_or(format!("{word} needs a value"))?;
        match word.as_str() {
            "--record" if value.len() <= 900 => args.record = value,
            "--record" => {
                return Err("--record: at most 900 bytes (BEP 44 holds 1,000 bencoded)".into())
            }
            "--bootstrap" => {
                args.bootstrap = Some(
                    value
                        .parse()
                        .map_err(|_| format!("--bootstrap: `{value}` is not IP:PORT"))?,
                );
            }
            "--first-ip" => {
                args.first_ip = value
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
    Ok(args)
}
