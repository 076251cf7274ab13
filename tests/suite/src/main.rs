//! `cargo run -q -p dhtd-suite`: the whole test suite on a fresh machine
//! with only the Rust toolchain. It installs what the tests need and the
//! machine lacks, then runs `cargo test --workspace` (with any arguments
//! given after `--`), with nothing skipped:
//!
//! - Debian packages, with `apt-get` (as root, or through `sudo`):
//!   `prometheus` (promtool and a real Prometheus, for the dashboard and
//!   alert-rule tests), `python3-libtorrent` (libtorrent-rasterbar, for the
//!   interop tests), `nodejs` and `npm` (for the next step), `g++`
//!   (libFuzzer is C++), `systemd` (`systemd-analyze` on the unit file),
//!   `lintian` (on the Debian package), `util-linux` (`unshare`, `setpriv`),
//!   `chromium` (the status page, in a headless browser), `python3-seccomp`
//!   (the unit's system-call filter, applied without systemd);
//! - the npm projects pinned by their lockfiles: Grafana's dashboard schema
//!   (`dashboards/schema-check`) and webtorrent's bittorrent-dht
//!   (`tests/interop/bittorrent-dht`);
//! - `cargo-fuzz` (crates.io, `--locked`), for the fuzz targets' test.
//!
//! The tests then run with `CI=true` (unless it is set already): a test
//! whose tool is missing fails instead of skipping.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Whether `program` is on the PATH.
fn has(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs a step, saying what it does; false if it failed.
fn step(what: &str, command: &mut Command) -> bool {
    eprintln!("dhtd-suite: {what}");
    match command.status() {
        Ok(status) if status.success() => true,
        Ok(status) => {
            eprintln!("dhtd-suite: {what}: {status}");
            false
        }
        Err(e) => {
            eprintln!("dhtd-suite: {what}: cannot run it: {e}");
            false
        }
    }
}

/// A command run as root: directly when we are, else through sudo.
fn as_root(args: &[&str]) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let mut command = if root {
        Command::new(args[0])
    } else {
        let mut c = Command::new("sudo");
        c.arg(args[0]);
        c
    };
    command.args(&args[1..]);
    command
}

/// The Debian packages the tests need that this machine lacks.
fn missing_packages() -> Vec<&'static str> {
    let mut missing = Vec::new();
    if !(has("promtool") && has("prometheus")) {
        missing.push("prometheus");
    }
    if !runs("/usr/bin/python3", &["-c", "import libtorrent"]) {
        missing.push("python3-libtorrent");
    }
    if !has("npm") {
        missing.extend(["nodejs", "npm"]);
    }
    if !has("c++") {
        missing.push("g++");
    }
    if !has("systemd-analyze") {
        missing.push("systemd");
    }
    if !has("lintian") {
        missing.push("lintian");
    }
    if !(has("setpriv") && has("unshare")) {
        missing.push("util-linux");
    }
    if !runs("/usr/bin/python3", &["-c", "import seccomp"]) {
        missing.push("python3-seccomp");
    }
    if !has("chromium") {
        missing.push("chromium");
    }
    missing
}

fn cargo_fuzz_installed() -> bool {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    has("cargo-fuzz") || home.is_some_and(|h| h.join("bin/cargo-fuzz").exists())
}

fn main() -> ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());

    let missing = missing_packages();
    if !missing.is_empty() {
        let mut install = vec![
            "env",
            "DEBIAN_FRONTEND=noninteractive",
            "apt-get",
            "install",
            "-y",
            "--no-install-recommends",
        ];
        install.extend(&missing);
        let done = step("apt-get update", &mut as_root(&["apt-get", "update"]))
            && step(
                &format!("installing Debian packages: {}", missing.join(" ")),
                &mut as_root(&install),
            );
        if !done {
            eprintln!(
                "dhtd-suite: the tests need these Debian packages: {}; install them (as root) and run again",
                missing.join(" ")
            );
            return ExitCode::FAILURE;
        }
    }
    for project in ["dashboards/schema-check", "tests/interop/bittorrent-dht"] {
        let mut npm = Command::new("npm");
        npm.args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(root.join(project));
        if !step(&format!("npm ci in {project}"), &mut npm) {
            return ExitCode::FAILURE;
        }
    }
    if !cargo_fuzz_installed() {
        let mut install = Command::new(&cargo);
        install.args(["install", "cargo-fuzz", "--locked"]);
        if !step("cargo install cargo-fuzz", &mut install) {
            return ExitCode::FAILURE;
        }
    }

    let mut test = Command::new(&cargo);
    test.current_dir(&root)
        .args(["test", "--workspace"])
        .args(std::env::args().skip(1));
    if std::env::var_os("CI").is_none() {
        // A missing tool fails its test instead of skipping it.
        test.env("CI", "true");
    }
    if step("cargo test --workspace", &mut test) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
