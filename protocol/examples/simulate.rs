//! Runs the deterministic simulation: nodes join a simulated network with
//! packet loss, then random lookups are checked against the true closest
//! nodes.
//!
//! `cargo run --release -p dhtd-protocol --example simulate -- [nodes] [lookups] [loss] [seed]`

// A program, not protocol logic: it reads the clock once for the epoch and the wall time.
#![allow(clippy::disallowed_methods)]

use std::process::ExitCode;
use std::time::Instant;

use dhtd_protocol::sim::{run_lookup_experiment, SimConfig};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, name: &str, default: &str| -> Result<String, String> {
        Ok(args.get(i).cloned().unwrap_or_else(|| default.to_string())).and_then(|v| {
            if v.is_empty() {
                Err(format!("{name}: empty"))
            } else {
                Ok(v)
            }
        })
    };
    let parsed = (|| -> Result<(SimConfig, usize), String> {
        let nodes = arg(0, "nodes", "1000")?
            .parse()
            .map_err(|e| format!("nodes: {e}"))?;
        let lookups = arg(1, "lookups", "100")?
            .parse()
            .map_err(|e| format!("lookups: {e}"))?;
        let loss: f64 = arg(2, "loss", "0.05")?
            .parse()
            .map_err(|e| format!("loss: {e}"))?;
        if !(0.0..1.0).contains(&loss) {
            return Err("loss: must be at least 0 and below 1".into());
        }
        let seed = arg(3, "seed", "1")?
            .parse()
            .map_err(|e| format!("seed: {e}"))?;
        Ok((
            SimConfig {
                nodes,
                loss,
                seed,
                ..SimConfig::default()
            },
            lookups,
        ))
    })();
    let (config, lookups) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("simulate: {e}\nusage: simulate [nodes] [lookups] [loss] [seed]");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let report = run_lookup_experiment(started, config, lookups);
    println!("{report}");
    println!("wall time: {:.2?}", started.elapsed());
    ExitCode::SUCCESS
}
