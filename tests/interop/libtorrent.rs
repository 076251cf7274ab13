//! libtorrent-rasterbar (Debian's python3-libtorrent), driven by
//! `libtorrent_node.py`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use dhtd_tests::ScriptNode;

/// Debian's Python, which carries the libtorrent binding (a Python on PATH
/// may be another one).
const PYTHON: &str = "/usr/bin/python3";

fn installed() -> bool {
    Command::new(PYTHON)
        .args(["-c", "import libtorrent"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A libtorrent node at `ip`, bootstrapping from `bootstrap` only.
fn libtorrent_at(ip: std::net::IpAddr, bootstrap: std::net::SocketAddr) -> ScriptNode {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/libtorrent_node.py");
    ScriptNode::start(
        PYTHON,
        &[
            script.display().to_string(),
            ip.to_string(),
            bootstrap.to_string(),
        ],
        ip,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libtorrent_and_dhtd_serve_each_other() {
    if !super::available("python3-libtorrent", installed()) {
        return;
    }
    super::check_client(
        "libtorrent",
        71,
        700,
        super::Queriers::Writable,
        |ip, bootstrap| Box::new(libtorrent_at(ip, bootstrap)),
    )
    .await;
}

/// BEP 51 both ways: libtorrent samples what a dhtd node stores, and dhtd
/// samples what libtorrent stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libtorrent_and_dhtd_sample_each_others_info_hashes() {
    if !super::available("python3-libtorrent", installed()) {
        return;
    }
    let swarm = dhtd_tests::start_swarm(6, 72, |_, _| {}).await;
    let mut lt = libtorrent_at(dhtd_tests::node_ip(710), swarm.nodes[0].local_addr());
    // An info hash equal to libtorrent's id: it is the closest node, so
    // the announce reaches it once it is in the swarm's tables.
    let closest_to_lt = dhtd::InfoHash(lt.id.0);
    let stored_by_lt = dhtd_tests::poll_until(Duration::from_secs(30), || {
        let rt = tokio::runtime::Handle::current();
        tokio::task::block_in_place(|| {
            rt.block_on(async {
                let _ = swarm.nodes[3]
                    .announce(closest_to_lt, dhtd::PortChoice::Port(5151))
                    .await;
                swarm.nodes[3]
                    .sample_infohashes(lt.addr, dhtd::NodeId([0; 20]))
                    .await
                    .is_ok_and(|s| s.info_hashes.contains(&closest_to_lt))
            })
        })
    });
    assert!(
        stored_by_lt,
        "dhtd's sample of libtorrent shows the announce it stored"
    );

    // libtorrent asks a dhtd node, which stores it too.
    let dhtd_node = swarm.nodes[0].local_addr();
    let answer = lt.ask(&format!("sample {dhtd_node}"), Duration::from_secs(30));
    let samples: Vec<String> = answer["samples"]
        .as_array()
        .unwrap_or_else(|| panic!("libtorrent got no sample: {answer}"))
        .iter()
        .filter_map(|h| h.as_str().map(str::to_owned))
        .collect();
    assert!(samples.contains(&closest_to_lt.to_string()), "{answer}");
    assert_eq!(
        answer["num"].as_u64(),
        Some(samples.len() as u64),
        "{answer}"
    );
    assert!(answer["interval"].as_f64().unwrap() > 0.0, "{answer}");
}

/// BEP 33 with libtorrent: it stores dhtd's `seed = 1`, and its scrape
/// filters are read by dhtd. The network is dhtd node A, libtorrent
/// (bootstrapped from A) and dhtd node B (bootstrapped from libtorrent);
/// B announces as a seed, then A leaves, so that only libtorrent answers
/// B's scrape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libtorrent_counts_dhtd_seeds_in_its_scrape_filters() {
    if !super::available("python3-libtorrent", installed()) {
        return;
    }
    let runtime = dhtd::Runtime::new().unwrap();
    let start = |ip_index: usize, bootstrap: &[std::net::SocketAddr]| {
        dhtd::Dht::builder(dhtd_tests::test_config(
            dhtd_tests::node_ip(ip_index),
            bootstrap,
        ))
        .runtime(&runtime)
        .start()
        .unwrap()
    };
    let a = start(740, &[]);
    let lt = libtorrent_at(dhtd_tests::node_ip(741), a.local_addr());
    let b = start(742, &[lt.addr]);
    tokio::time::timeout(Duration::from_secs(30), b.wait_bootstrapped())
        .await
        .expect("bootstrapped from libtorrent");
    let info_hash = dhtd::InfoHash([0x33; 20]);
    let stored = dhtd_tests::poll_until(Duration::from_secs(30), || {
        let rt = tokio::runtime::Handle::current();
        tokio::task::block_in_place(|| {
            rt.block_on(b.announce_seeding(info_hash, dhtd::PortChoice::Port(6333)))
                .is_ok_and(|r| r.accepted >= 2)
        })
    });
    assert!(stored, "libtorrent and A took the announce");
    a.shutdown().await;
    // Right after the announce: the scrape's get_peers to libtorrent waits
    // for the spacing rule, which must not fail it.
    let (_, summary) = b.scrape(info_hash).collect().await;
    let summary = summary.unwrap();
    assert!(
        summary.closest.iter().any(|n| n.addr == lt.addr),
        "{summary:?}"
    );
    assert_eq!(
        summary.scrape,
        Some(dhtd::ScrapeEstimate { seeds: 1, peers: 0 }),
        "libtorrent's BFsd holds B's IP as a seed"
    );
}

/// BEP 44 with libtorrent: immutable and mutable items put by one are got
/// by the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libtorrent_and_dhtd_put_and_get_each_others_items() {
    if !super::available("python3-libtorrent", installed()) {
        return;
    }
    let swarm = dhtd_tests::start_swarm(8, 75, |_, _| {}).await;
    let mut lt = libtorrent_at(dhtd_tests::node_ip(750), swarm.nodes[0].local_addr());
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let dhtd = &swarm.nodes[5];
    let wait = Duration::from_secs(40);
    // libtorrent's table fills within seconds; its put waits for it.
    let mut their_target = String::new();
    let put = dhtd_tests::poll_until(wait, || {
        let answer = lt.ask("put_immutable from-libtorrent", wait);
        their_target = answer["target"].as_str().unwrap_or_default().to_owned();
        answer["num_success"].as_u64().is_some_and(|n| n > 0)
    });
    assert!(put, "libtorrent stored its immutable item");
    let target = dhtd_protocol::item::immutable_target(b"15:from-libtorrent");
    assert_eq!(
        their_target,
        target.to_string(),
        "the same target: SHA-1 of the bencoded value"
    );
    let got = dhtd.get_immutable(target).await.unwrap();
    assert_eq!(got.as_deref(), Some(&b"from-libtorrent"[..]));

    let ours = dhtd.put_immutable(b"from-dhtd").await.unwrap();
    assert!(ours.accepted > 0);
    let answer = lt.ask(&format!("get_immutable {}", ours.target), wait);
    assert_eq!(answer["value"], "from-dhtd", "{answer}");

    let key = dhtd::SigningKey::from_seed([8; 32]);
    let put = dhtd
        .put_mutable(&key, b"mutable-from-dhtd", 3, b"s", None)
        .await
        .unwrap();
    assert!(put.accepted > 0);
    let answer = lt.ask(&format!("get_mutable {} s", hex(&key.public_key())), wait);
    assert_eq!(
        (answer["value"].as_str(), answer["seq"].as_i64()),
        (Some("mutable-from-dhtd"), Some(3)),
        "{answer}"
    );

    let seed = [9u8; 32];
    let theirs = dhtd::SigningKey::from_seed(seed);
    let answer = lt.ask(
        &format!(
            "put_mutable {} {} t mutable-from-libtorrent",
            hex(&seed),
            hex(&theirs.public_key())
        ),
        wait,
    );
    assert!(
        answer["num_success"].as_u64().is_some_and(|n| n > 0),
        "{answer}"
    );
    let got = dhtd
        .get_mutable(&theirs.public_key(), b"t", None)
        .await
        .unwrap()
        .expect("dhtd finds libtorrent's signed item");
    assert_eq!(got.value(), b"mutable-from-libtorrent");
}

/// BEP 32 with libtorrent over IPv6: a dhtd swarm on ::1 alone, and
/// libtorrent listening on ::1 and bootstrapping from it. libtorrent keeps
/// dhtd nodes in its IPv6 table, dhtd finds libtorrent's announce at its
/// IPv6 address, and libtorrent finds dhtd's. All the nodes share ::1, so
/// the rules per address are off on both sides (`one_host`, and the
/// script's `dht_restrict_*_ips`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libtorrent_and_dhtd_find_each_others_announces_over_ipv6() {
    use dhtd::swarm::{ipv6_loopback, one_host};
    use dhtd_tests::Client;
    use std::net::{IpAddr, Ipv6Addr, SocketAddr};
    if !super::available("python3-libtorrent", installed()) {
        return;
    }
    let swarm = dhtd_tests::start_swarm(8, 76, |_, c| {
        c.listen = vec![ipv6_loopback()];
        one_host(c);
    })
    .await;
    let mut lt = libtorrent_at(IpAddr::V6(Ipv6Addr::LOCALHOST), swarm.nodes[0].local_addr());
    let swarm_addrs: Vec<SocketAddr> = swarm.nodes.iter().map(|n| n.local_addr()).collect();
    let kept = dhtd_tests::poll_until(Duration::from_secs(30), || {
        lt.table()
            .iter()
            .filter(|a| swarm_addrs.contains(a))
            .count()
            >= 3
    });
    assert!(kept, "libtorrent's IPv6 table: {:?}", lt.table());

    let theirs = dhtd::InfoHash([0x60; 20]);
    let port = lt.announce(&theirs);
    let their_peer = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port);
    let found = super::look_up_until_found(&swarm.nodes[5], theirs, their_peer).await;
    assert!(
        found.contains(&their_peer),
        "dhtd found {found:?}, not {their_peer}"
    );

    let ours = dhtd::InfoHash([0x61; 20]);
    let report = swarm.nodes[6]
        .announce(ours, dhtd::PortChoice::Port(4646))
        .await
        .unwrap();
    assert!(report.accepted > 0, "{report:?}");
    let our_peer: SocketAddr = "[::1]:4646".parse().unwrap();
    let found = dhtd_tests::poll_until(Duration::from_secs(30), || {
        lt.get_peers(&ours).contains(&our_peer)
    });
    assert!(found, "libtorrent did not find {our_peer} over IPv6");
}
