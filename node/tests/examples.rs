//! The examples an embedder copies (`node/examples/`), run as programs
//! against a loopback swarm: each must do what it says. Every process is
//! bounded in time and killed by its PID if it overstays.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;
use dhtd::swarm::LocalSwarm;
use dhtd::{InfoHash, PortChoice};

/// The example's program, built if `cargo test` did not build it already
/// (as with `--test examples` alone).
fn example(name: &str) -> Command {
    let mut build = Command::new(env!("CARGO"));
    build
        .args(["build", "--quiet", "--example", name, "--manifest-path"])
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
    let built = run_bounded(build, Duration::from_secs(600));
    assert!(built.status.success(), "{}", text(&built.stderr));
    let deps = std::env::current_exe().unwrap();
    let profile_dir = deps.parent().and_then(|d| d.parent()).unwrap();
    Command::new(profile_dir.join("examples").join(name))
}

fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// 20 bytes as RFC 4648 base32, the other spelling of a magnet's btih.
fn base32(bytes: &[u8; 20]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut acc, mut bits) = (0u64, 0);
    for b in bytes {
        acc = acc << 8 | u64::from(*b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[(acc >> bits) as usize & 31]));
        }
    }
    out
}

#[test]
fn magnet_finds_the_swarm_peers_and_announces_itself() {
    let rt = tokio();
    let swarm = rt
        .block_on(LocalSwarm::start(8, 7, |i, c| {
            c.listen = vec![SocketAddr::new(dhtd::swarm::node_ip(1700 + i), 0)];
        }))
        .unwrap();
    rt.block_on(swarm.wait_bootstrapped(Duration::from_secs(30)));
    let info_hash = InfoHash([0x5a; 20]);
    let seeder = &swarm.nodes[5];
    let report = rt
        .block_on(seeder.announce(info_hash, PortChoice::Port(7001)))
        .unwrap();
    assert!(report.accepted > 0);

    let magnet = format!("magnet:?xt=urn:btih:{}&dn=test", base32(&info_hash.0));
    let mut cmd = example("magnet");
    cmd.arg(&magnet)
        .args(["--bootstrap", &swarm.nodes[0].local_addr().to_string()])
        .args(["--listen", "127.0.41.1:0", "--port", "7002"])
        .args(["--seconds", "2", "--every", "1"]);
    let out = run_bounded(cmd, Duration::from_secs(60));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let seeder_peer = SocketAddr::new(seeder.local_addr().ip(), 7001);
    assert!(
        stdout.contains(&format!("peer {seeder_peer}\n")),
        "{stdout}"
    );
    assert!(
        stdout.lines().filter(|l| l.starts_with("search:")).count() >= 2,
        "it searches again while it runs: {stdout}"
    );
    // What it announced stays findable after it stopped.
    let (peers, _) = rt.block_on(swarm.nodes[3].get_peers(info_hash).collect());
    assert!(
        peers.contains(&"127.0.41.1:7002".parse().unwrap()),
        "{peers:?}"
    );
}

#[test]
fn magnet_names_a_bad_argument() {
    let mut cmd = example("magnet");
    cmd.args(["magnet:?xt=urn:btih:zz", "--bootstrap", "127.0.0.1:1"]);
    let out = run_bounded(cmd, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("`zz` is not an info hash"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn many_nodes_on_one_runtime_all_find_the_announce() {
    let mut cmd = example("many_nodes");
    cmd.args(["--nodes", "10", "--first-ip", "127.0.60.1"]);
    let out = run_bounded(cmd, Duration::from_secs(60));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("10 nodes bootstrapped"), "{stdout}");
    assert!(
        stdout.contains("9 of 9 nodes found 127.0.65.1:51413"),
        "{stdout}"
    );
}

#[test]
fn signed_record_publishes_updates_and_resolves_the_latest() {
    let mut cmd = example("signed_record");
    cmd.args(["--record", "v=2;addr=127.0.0.1", "--first-ip", "127.0.90.1"]);
    let out = run_bounded(cmd, Duration::from_secs(60));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("resolved seq 2: v=2;addr=127.0.0.1"),
        "{stdout}"
    );
}
