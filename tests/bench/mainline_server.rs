//! The `mainline` crate (8.0.1) as a server node for `tests/bench/bench.py`:
//! `mainline-server IP PORT`, no bootstrap (nothing leaves the machine),
//! stores up to 2,000,000 info hashes so the store benchmark fits. Runs until
//! killed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;

use mainline::{Dht, ServerSettings};

fn main() {
    let mut args = std::env::args().skip(1);
    let ip: Ipv4Addr = args.next().expect("IP").parse().expect("an IPv4 address");
    let port: u16 = args.next().expect("PORT").parse().expect("a port");
    let settings = ServerSettings {
        max_info_hashes: 2_000_000,
        ..ServerSettings::default()
    };
    let dht = Dht::builder()
        .server_mode()
        .server_settings(settings)
        .no_bootstrap()
        .bind_address(ip)
        .port(port)
        .build()
        .expect("mainline starts");
    println!("mainline server on {ip}:{port}");
    let _keep = dht;
    loop {
        std::thread::park();
    }
}
