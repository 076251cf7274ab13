//! The state dir when things go wrong: a node that dies without shutting
//! down, a disk that refuses writes, a cache that must not be overwritten
//! by nothing. (The same from the `dhtd` program, killed by SIGKILL or
//! ending with a failed save, is in `node/tests/cli.rs`.)

use std::path::Path;
use std::time::Duration;

use dhtd::persist::{self, NODE_ID_FILE, TABLE_FILE};
use dhtd::{Dht, NodeId, Warning};
use dhtd_tests::{node_ip, start_swarm, temp_state_dir, test_config, wait_until};

use crate::restart::restart_without_bootstrap;

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

async fn save_failures(node: &Dht) -> (u64, bool) {
    let s = node.stats().await.unwrap();
    (
        s.traffic.get("dht_state_save_failures_total", &[]),
        s.warnings.contains(&Warning::StateNotSaved),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_dies_soon_after_bootstrap_restarts_from_its_table() {
    let swarm = start_swarm(30, 21, |_, _| {}).await;
    let dir = temp_state_dir("crash");
    let mut config = test_config(node_ip(970), &[swarm.nodes[0].local_addr()]);
    config.state_dir = Some(dir.clone());
    // Only the save that follows bootstrap can write the table in time.
    config.save_interval = Duration::from_secs(3600);
    // On threads of its own: dropping its last handle stops them with no
    // shutdown and so no final save, as a crash would.
    let node = Dht::builder(config.clone()).start().unwrap();
    node.wait_bootstrapped().await;
    let id = node.id();
    let saved = wait_until(Duration::from_secs(10), || async {
        matches!(persist::load_table(&dir), Ok(Some(t)) if !t.nodes.is_empty())
    })
    .await;
    assert!(saved, "the table was saved soon after bootstrap");
    drop(node);

    // Rejoins from the table saved at bootstrap.
    let again = restart_without_bootstrap(config, &swarm.runtime, id).await;
    again.shutdown().await;
    swarm.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_that_cannot_be_written_is_reported_and_the_id_is_kept() {
    let swarm = start_swarm(20, 22, |_, _| {}).await;
    let dir = temp_state_dir("unwritable");
    // A directory where the table goes: every save fails at the rename, for
    // root too (a read-only mode would not stop root).
    std::fs::create_dir_all(dir.join(TABLE_FILE).join("keep")).unwrap();
    let mut config = test_config(node_ip(971), &[swarm.nodes[0].local_addr()]);
    config.state_dir = Some(dir.clone());
    config.save_interval = Duration::from_secs(3600);
    let node = Dht::builder(config.clone())
        .runtime(&swarm.runtime)
        .start()
        .unwrap();
    let id = node.id();
    node.wait_bootstrapped().await;
    let reported = wait_until(Duration::from_secs(10), || async {
        let (failures, warned) = save_failures(&node).await;
        failures >= 1 && warned
    })
    .await;
    assert!(
        reported,
        "the failed save after bootstrap is counted and warned: {:?}",
        save_failures(&node).await
    );
    let error = node
        .last_save_error()
        .expect("the failure is kept")
        .to_string();
    assert!(error.contains(TABLE_FILE), "{error}");
    assert_eq!(
        names(&dir),
        [NODE_ID_FILE, TABLE_FILE],
        "no temporary file is left"
    );

    node.shutdown().await;
    assert!(
        node.last_save_error().is_some(),
        "the final save failed as well"
    );
    assert_eq!(names(&dir), [NODE_ID_FILE, TABLE_FILE]);
    let again = Dht::builder(config)
        .runtime(&swarm.runtime)
        .start()
        .unwrap();
    assert_eq!(again.id(), id, "the id file was written and is kept");
    assert!(
        again.last_save_error().is_none(),
        "a fresh start has no failure yet"
    );
    again.shutdown().await;
    swarm.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_id_that_cannot_be_written_is_written_when_the_disk_allows() {
    let dir = temp_state_dir("id-later");
    // The id's temporary name is taken by a directory: its write fails, as
    // on a full disk, until the directory goes.
    let obstacle = persist::temp_path(&dir.join(NODE_ID_FILE));
    std::fs::create_dir_all(&obstacle).unwrap();
    let mut config = test_config(node_ip(972), &[]);
    config.state_dir = Some(dir.clone());
    config.save_interval = Duration::from_secs(1);
    let node = Dht::builder(config).start().unwrap();
    let (failures, warned) = save_failures(&node).await;
    assert!(failures >= 1 && warned, "reported at start");
    assert!(persist::load_node_id(&dir).unwrap().is_none());
    let still_failing = wait_until(Duration::from_secs(5), || async {
        save_failures(&node).await.0 > failures
    })
    .await;
    assert!(still_failing, "tried again with the table's save");

    std::fs::remove_dir(&obstacle).unwrap();
    let written = wait_until(Duration::from_secs(5), || async {
        persist::load_node_id(&dir).ok().flatten() == Some(node.id())
    })
    .await;
    assert!(written, "the running node's id is written once it can be");
    assert!(!save_failures(&node).await.1, "and the warning is gone");
    assert!(node.last_save_error().is_none());
    node.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_table_does_not_replace_the_saved_one() {
    let dir = temp_state_dir("keep-cache");
    // A cache of nodes that are all gone (nothing listens on these ports):
    // the node starts with an empty table and keeps it empty.
    let gone: Vec<dhtd::NodeInfo> = (1..=8u8)
        .map(|i| dhtd::NodeInfo {
            id: NodeId([i; 20]),
            addr: std::net::SocketAddr::new(node_ip(973), u16::from(i)),
        })
        .collect();
    let gone = persist::SavedTable {
        id: NodeId([0x11; 20]),
        nodes: gone,
    };
    persist::save_table(&dir, &gone).unwrap();
    let mut config = test_config(node_ip(974), &[]);
    config.state_dir = Some(dir.clone());
    config.save_interval = Duration::from_secs(1);
    let node = Dht::builder(config).start().unwrap();
    let attempted = wait_until(Duration::from_secs(10), || async {
        node.stats()
            .await
            .unwrap()
            .traffic
            .get("dht_bootstrap_attempts_total", &[])
            > 0
    })
    .await;
    assert!(attempted, "it tried the cached nodes");
    // Two saves' time (an absence cannot be waited for).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(node.stats().await.unwrap().nodes(), 0);
    node.shutdown().await;
    let kept = persist::load_table(&dir).unwrap().unwrap();
    assert_eq!(kept, gone, "the saved table is kept");
    let _ = std::fs::remove_dir_all(dir);
}
