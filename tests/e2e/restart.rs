//! Restarts from the state dir, and requests made before bootstrap.

use std::time::Duration;

use dhtd::{Config, Dht, InfoHash, NodeId, PortChoice, Runtime};
use dhtd_tests::{node_ip, start_swarm, temp_state_dir, test_config, wait_until};

/// Starts `config`'s node again from its state dir with no bootstrap node
/// at all, and checks that it keeps `id` and rejoins from its saved table.
pub(crate) async fn restart_without_bootstrap(
    mut config: Config,
    runtime: &Runtime,
    id: NodeId,
) -> Dht {
    config.bootstrap_nodes.clear();
    let again = Dht::builder(config).runtime(runtime).start().unwrap();
    assert_eq!(again.id(), id, "the node id is kept");
    let joined = wait_until(Duration::from_secs(20), || {
        let again = again.clone();
        async move { again.is_bootstrapped() && again.stats().await.is_ok_and(|s| s.nodes() >= 8) }
    })
    .await;
    assert!(
        joined,
        "rejoined from the saved table: {:?}",
        again.stats().await.map(|s| s.nodes())
    );
    again
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_from_its_state_dir_rejoins_without_a_router() {
    let swarm = start_swarm(30, 11, |_, _| {}).await;
    let dir = temp_state_dir("restart");
    let bootstrap = [swarm.nodes[0].local_addr()];
    let mut config = test_config(node_ip(950), &bootstrap);
    config.state_dir = Some(dir.clone());
    let node = Dht::builder(config.clone())
        .runtime(&swarm.runtime)
        .start()
        .unwrap();
    node.wait_bootstrapped().await;
    let first_id = node.id();
    let known = node.stats().await.unwrap().nodes();
    assert!(known >= 8, "joined with {known} nodes");
    node.shutdown().await;
    assert!(dir.join(dhtd::persist::TABLE_FILE).exists());

    let again = restart_without_bootstrap(config, &swarm.runtime, first_id).await;
    // And it works: an announce from a swarm node is found through it.
    let ih = InfoHash([7; 20]);
    swarm.nodes[3]
        .announce(ih, PortChoice::Port(4321))
        .await
        .unwrap();
    let (peers, _) = again.get_peers(ih).collect().await;
    assert_eq!(peers.len(), 1);
    again.shutdown().await;
    swarm.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_made_before_bootstrap_run_when_it_completes() {
    let swarm = start_swarm(20, 12, |_, _| {}).await;
    let ih = InfoHash([9; 20]);
    swarm.nodes[4]
        .announce(ih, PortChoice::Port(5555))
        .await
        .unwrap();

    // A node with nowhere to bootstrap from, on its own clock: it retries,
    // and its lookup waits.
    let clock = dhtd::ManualClock::new();
    let mut config = test_config(node_ip(951), &[]);
    config.clock = dhtd::Clock::Manual(clock.clone());
    let late = Dht::builder(config)
        .runtime(&swarm.runtime)
        .start()
        .unwrap();
    let lookup = {
        let late = late.clone();
        tokio::spawn(async move { late.get_peers(ih).collect().await })
    };
    for _ in 0..3 {
        clock.advance(Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!late.is_bootstrapped());
    assert!(!lookup.is_finished(), "the lookup waits, it is not failed");
    let attempts = late
        .stats()
        .await
        .unwrap()
        .traffic
        .get("dht_bootstrap_attempts_total", &[]);
    assert!(attempts >= 2, "it kept trying: {attempts} attempts");
    // A node handed over by hand (as rTorrent's dht_add_node) lets it join
    // at once, without waiting for the next attempt.
    late.add_node(swarm.nodes[0].local_addr()).await.unwrap();
    let (peers, summary) = tokio::time::timeout(Duration::from_secs(20), lookup)
        .await
        .unwrap()
        .unwrap();
    assert!(late.is_bootstrapped());
    assert_eq!(
        peers,
        vec![std::net::SocketAddr::new(
            swarm.nodes[4].local_addr().ip(),
            5555
        )],
        "{summary:?}"
    );
    late.shutdown().await;
    swarm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_announce_outlives_the_store_expiry_until_stopped() {
    // Announces are kept 45 minutes (the default); the announcer repeats
    // every 30. The whole swarm reads one manual clock.
    let clock = dhtd::ManualClock::new();
    let swarm = dhtd_tests::start_swarm_on(&clock, 20, 13, |_, _| {}).await;
    let ttl = dhtd::NodeConfig::default().store.peer_ttl;
    let every = Duration::from_secs(30 * 60);
    let ih = InfoHash([0x33; 20]);
    let (announcer, seeker) = (&swarm.nodes[3], &swarm.nodes[15]);
    let expected = std::net::SocketAddr::new(announcer.local_addr().ip(), 7777);
    announcer
        .announce_every(ih, PortChoice::Port(7777), every)
        .await
        .unwrap();
    let found = |peers: &[std::net::SocketAddr]| peers.contains(&expected);
    let announces = || async {
        announcer
            .stats()
            .await
            .unwrap()
            .traffic
            .get("dht_lookups_finished_total", &[])
    };
    // Three repeats: at 30, 60 and 90 minutes; each one is let finish.
    for _ in 0..3 {
        let before = announces().await;
        clock.advance(every);
        let done = wait_until(Duration::from_secs(10), || async {
            announces().await > before
        })
        .await;
        assert!(done, "the repeated announce ran");
    }
    // At 100 minutes, more than twice the expiry after the first announce.
    clock.advance(Duration::from_secs(10 * 60));
    let (peers, _) = seeker.get_peers(ih).collect().await;
    assert!(
        found(&peers),
        "still stored after twice the expiry: {peers:?}"
    );

    announcer.stop_announcing(ih).await.unwrap();
    // The last announce (at 90 minutes) expires at 135; this is 146.
    clock.advance(ttl + Duration::from_secs(60) - Duration::from_secs(10 * 60));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (peers, _) = seeker.get_peers(ih).collect().await;
    assert!(!found(&peers), "expired once no longer repeated: {peers:?}");
    swarm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modes_start_and_stop_the_dht_at_run_time() {
    use dhtd::{DhtService, Mode};
    let swarm = start_swarm(10, 14, |_, _| {}).await;
    let config = test_config(node_ip(960), &[swarm.nodes[0].local_addr()]);

    // Off: nothing runs until started; stop ends it.
    let off = DhtService::new(config.clone(), Mode::Off, Some(&swarm.runtime)).unwrap();
    assert!(!off.is_running() && off.handle().unwrap().is_none());
    let h = off.start().unwrap();
    h.wait_bootstrapped().await;
    off.stop().await;
    assert!(!off.is_running());
    assert!(
        h.stats().await.is_err(),
        "the stopped node no longer answers its handle"
    );

    // Auto: the first request starts it; idleness stops it; the next
    // starts it again. Idleness is measured on the node's (manual) clock.
    let mut config = config;
    config.listen = vec![std::net::SocketAddr::new(node_ip(961), 0)];
    let clock = dhtd::ManualClock::new();
    config.clock = dhtd::Clock::Manual(clock.clone());
    let idle = Duration::from_secs(15 * 60);
    let auto = DhtService::new(config, Mode::Auto { idle }, Some(&swarm.runtime)).unwrap();
    assert!(!auto.is_running());
    let h = auto.handle().unwrap().unwrap();
    assert!(auto.is_running());
    h.wait_bootstrapped().await;
    clock.advance(idle - Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(auto.is_running(), "not idle long enough yet");
    clock.advance(Duration::from_secs(1));
    let stopped = wait_until(Duration::from_secs(5), || {
        let running = auto.is_running();
        async move { !running }
    })
    .await;
    assert!(stopped, "stopped after the idle time");
    assert!(
        auto.handle().unwrap().is_some() && auto.is_running(),
        "started again on use"
    );
    auto.stop().await;
    swarm.shutdown().await;
}
