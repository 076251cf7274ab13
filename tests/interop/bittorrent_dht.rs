//! webtorrent's bittorrent-dht (npm, pinned by `bittorrent-dht/package-lock.json`),
//! driven by `bittorrent-dht/node.mjs`.

use std::path::{Path, PathBuf};
use std::process::Command;

use dhtd_tests::ScriptNode;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/bittorrent-dht")
}

fn installed() -> bool {
    dir().join("node_modules/bittorrent-dht").is_dir()
        && Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bittorrent_dht_and_dhtd_serve_each_other() {
    if !super::available(
        "bittorrent-dht (npm ci --prefix tests/interop/bittorrent-dht)",
        installed(),
    ) {
        return;
    }
    let script = dir().join("node.mjs");
    // k-rpc adds every node that queries it; it does not read `ro` (BEP 43).
    super::check_client(
        "bittorrent-dht",
        72,
        710,
        super::Queriers::All,
        |ip, bootstrap| {
            Box::new(ScriptNode::start(
                "node",
                &[
                    script.display().to_string(),
                    ip.to_string(),
                    bootstrap.to_string(),
                ],
                ip,
            ))
        },
    )
    .await;
}
