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
    // Positional argument `i`, or its default, parsed as T.
    fn arg<T: std::str::FromStr>(
        args: &[String],
        i: usize,
        name: &str,
        default: T,
    ) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        match args.get(i) {
            Some(v) => v.parse().map_err(|e| format!("{name}: {e}")),
            None => Ok(default),
        }
    }
    let parsed = (|| -> Result<(SimConfig, usize), String> {
        let loss: f64 = arg(&args, 2, "loss", 0.05)?;
        if !(0.0..1.0).contains(&loss) {
            return Err("loss: must be at least 0 and below 1".into());
        }
        let mut config = SimConfig {
            nodes: arg(&args, 0, "nodes", 1000)?,
            seed: arg(&args, 3, "seed", 1)?,
            ..SimConfig::default()
        };
        config.network.loss = loss;
        Ok((config, arg(&args, 1, "lookups", 100)?))
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
