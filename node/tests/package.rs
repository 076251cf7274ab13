//! The Debian package (`node/dist/build-deb`): built from the binary under
//! test, its contents and control data checked, lintian run on it, and the
//! packaged binary run from the extracted tree with the packaged config.
//!
//! Installing it and starting its unit needs a machine whose process 1 is
//! systemd; the test machines' is not, so that part is the README's
//! instructions, not a test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

fn present(tool: &str, package: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is not installed; the test command (`cargo run -p dhtd-suite`) installs Debian's {package}"
        );
        eprintln!("skipped: {tool} is not installed");
    }
    found
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

#[test]
fn the_debian_package_holds_the_service_and_passes_lintian() {
    if !present("dpkg-deb", "dpkg") || !present("lintian", "lintian") {
        return;
    }
    let home = scratch("deb");
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist");
    let built = Command::new(dist.join("build-deb"))
        .arg(env!("CARGO_BIN_EXE_dhtd"))
        .arg(home.join("out"))
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", text(&built.stderr));
    let deb = text(&built.stdout).trim().to_owned();
    assert!(deb.ends_with(".deb") && Path::new(&deb).exists(), "{deb}");

    let listing = text(
        &Command::new("dpkg-deb")
            .args(["-c", &deb])
            .output()
            .unwrap()
            .stdout,
    );
    for path in [
        "./usr/bin/dhtd",
        "./lib/systemd/system/dhtd.service",
        "./etc/dhtd/dhtd.toml",
        "./usr/share/man/man1/dhtd.1.gz",
        "./usr/share/man/man1/dhtd-run.1.gz",
        "./usr/share/bash-completion/completions/dhtd",
        "./usr/share/zsh/vendor-completions/_dhtd",
        "./usr/share/fish/vendor_completions.d/dhtd.fish",
        "./usr/share/dhtd/dhtd.json",
        "./usr/share/dhtd/alerts.yml",
        "./usr/share/dhtd/prometheus.yml",
        "./usr/share/doc/dhtd/copyright",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(path)),
            "{path} is not in the package:\n{listing}"
        );
    }
    let field = |name: &str| {
        text(
            &Command::new("dpkg-deb")
                .args(["-f", &deb, name])
                .output()
                .unwrap()
                .stdout,
        )
        .trim()
        .to_owned()
    };
    assert_eq!(field("Package"), "dhtd");
    assert_eq!(field("Version"), env!("CARGO_PKG_VERSION"));
    let conffiles = text(
        &Command::new("dpkg-deb")
            .args(["-I", &deb, "conffiles"])
            .output()
            .unwrap()
            .stdout,
    );
    assert_eq!(conffiles.trim(), "/etc/dhtd/dhtd.toml");

    let lintian = Command::new("lintian")
        .args(["--fail-on", "error,warning", &deb])
        .output()
        .unwrap();
    let said = text(&lintian.stdout);
    assert!(
        lintian.status.success(),
        "lintian:\n{said}{}",
        text(&lintian.stderr)
    );

    // The packaged binary, unit and config, as installed.
    let tree = home.join("tree");
    let x = Command::new("dpkg-deb")
        .args(["-x", &deb])
        .arg(&tree)
        .status()
        .unwrap();
    assert!(x.success());
    assert_eq!(
        std::fs::read_to_string(tree.join("lib/systemd/system/dhtd.service")).unwrap(),
        std::fs::read_to_string(dist.join("dhtd.service")).unwrap()
    );
    let _serial = serial();
    let mut c = Command::new(tree.join("usr/bin/dhtd"));
    c.args(["run", "--config"])
        .arg(tree.join("etc/dhtd/dhtd.toml"))
        .args([
            "--listen",
            "127.0.0.84:0",
            "--bootstrap",
            "none",
            "--metrics-listen",
            "off",
        ])
        .arg("--state-dir")
        .arg(home.join("st"))
        .env("HOME", &home)
        .env_remove("DHTD_LOG");
    let node = spawn(c);
    node.wait_for("DHT server started on 127.0.0.84:", Duration::from_secs(10));
    assert_eq!(node.terminate(), Some(0));
}
