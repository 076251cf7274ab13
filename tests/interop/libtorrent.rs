//! libtorrent-rasterbar (Debian's python3-libtorrent), driven by
//! `libtorrent_node.py`.

use std::path::Path;
use std::process::Command;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libtorrent_and_dhtd_serve_each_other() {
    if !super::available("python3-libtorrent", installed()) {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/libtorrent_node.py");
    super::check_client(
        "libtorrent",
        71,
        700,
        super::Queriers::Writable,
        |ip, bootstrap| {
            Box::new(ScriptNode::start(
                PYTHON,
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
