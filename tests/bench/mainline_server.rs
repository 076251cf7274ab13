//! The `mainline` crate (8.0.1) as a server node for `tests/bench/bench.py`:
//! `mainline-server IP PORT [BOOTSTRAP]`. BOOTSTRAP (a numeric loopback
//! IP:PORT) replaces its built-in routers; without it, no bootstrap at all:
//! nothing leaves the machine either way. Stores up to 2,000,000 info
//! hashes so the store benchmark fits. Runs until killed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};

use mainline::{Dht, ServerSettings};

fn main() {
    let mut args = std::env::args().skip(1);
    let ip: Ipv4Addr = args.next().expect("IP").parse().expect("an IPv4 address");
    let port: u16 = args.next().expect("PORT").parse().expect("a port");
    let settings = ServerSettings {
        max_info_hashes: 2_000_000,
        ..ServerSettings::default()
    };
    let bootstrap: Option<SocketAddr> = args
        .next()
        .map(|b| b.parse().expect("BOOTSTRAP is a numeric IP:PORT"));
    let mut builder = Dht::builder();
    match bootstrap {
        Some(b) => builder.bootstrap(&[b]),
        None => builder.no_bootstrap(),
    };
    let dht = builder
        .server_mode()
        .server_settings(settings)
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
