#![allow(clippy::disallowed_methods)]
use std::time::{Duration, Instant};
use dhtd_protocol::sim::{run_internet, Model};
fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = a.first().map_or(1000, |s| s.parse().unwrap());
    let mins: u64 = a.get(1).map_or(60, |s| s.parse().unwrap());
    let started = Instant::now();
    let model = Model { nodes: n, duration: Duration::from_secs(mins * 60), ..Model::default() };
    let r = run_internet(started, model, |p| eprintln!("{:?} {:?}", started.elapsed(), p));
    println!("{r}");
    for s in &r.samples { println!("{s:?}"); }
    println!("wall {:?}", started.elapsed());
}
