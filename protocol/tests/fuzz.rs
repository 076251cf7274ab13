//! The fuzz targets of `fuzz/` (cargo-fuzz: libFuzzer, coverage-guided),
//! each run for a bounded time with the golden vectors as seed corpus; a
//! crash, a timeout or an out-of-memory fails the test with the input's path.
//!
//! It needs `cargo-fuzz` (`cargo install cargo-fuzz --locked`) and a C++
//! compiler (libFuzzer is C++; Debian package `g++`), both installed by
//! the test command (`cargo run -p dhtd-suite`). Without them the test says so and passes, except under CI
//! (`CI` set), where it fails. On the stable toolchain cargo-fuzz builds
//! with `-s none` (no AddressSanitizer, which needs nightly; the crate
//! forbids unsafe code): the instrumentation, debug assertions and overflow
//! checks are cargo-fuzz's own.
//!
//! Bounded: 60 s of fuzzing in all, split evenly between the targets
//! (`DHTD_FUZZ_SECONDS` sets the total, for a longer run by hand), after a
//! build of at most 20 minutes (about a minute from scratch on two cores).
//! The build has its own target dir (`fuzz/target`, ignored by git), so it
//! never waits on the workspace's build lock. Nothing is written into the
//! repository outside it: the corpus and the crash artifacts live in a
//! temporary directory, kept only when something was found.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// This test bounds real processes by the wall clock.
#![allow(clippy::disallowed_methods)]

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The targets of `fuzz/Cargo.toml`.
const TARGETS: [&str; 3] = ["decode_datagram", "classify_datagram", "put_item"];
/// Fuzzing time for all targets together.
const FUZZ_TOTAL: Duration = Duration::from_secs(60);
/// The longest the fuzz build may take.
const BUILD_LIMIT: Duration = Duration::from_secs(20 * 60);
/// libFuzzer's limit for one input: beyond it, the input is a hang.
const INPUT_TIMEOUT_SECS: u64 = 10;

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `cargo-fuzz` where `cargo fuzz` finds it: on `PATH`, else in cargo's
/// own `bin` directory.
fn cargo_fuzz() -> Option<PathBuf> {
    on_path("cargo-fuzz").or_else(|| {
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))?;
        Some(home.join("bin/cargo-fuzz")).filter(|p| p.is_file())
    })
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Runs `cmd` in a process group of its own, output to `log`; kills the
/// whole group (cargo, rustc, the fuzzer) if it outlives `limit`. `None`
/// when it was killed.
fn run_bounded(mut cmd: Command, log: &Path, limit: Duration) -> Option<ExitStatus> {
    use std::os::unix::process::CommandExt;
    let out = File::create(log).unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            // The group's id is the child's pid (process_group(0)).
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The last `n` lines of a log.
fn tail(log: &Path, n: usize) -> String {
    let text = String::from_utf8_lossy(&fs::read(log).unwrap_or_default()).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Copies every golden vector into `corpus`, named `<client>-<file>`.
fn seed(corpus: &Path) -> usize {
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/krpc");
    fs::create_dir_all(corpus).unwrap();
    let mut n = 0;
    for client in fs::read_dir(&vectors).unwrap() {
        let client = client.unwrap().path();
        if !client.is_dir() {
            continue;
        }
        for file in fs::read_dir(&client).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|x| x == "bin") {
                let name = format!(
                    "{}-{}",
                    client.file_name().unwrap().to_string_lossy(),
                    file.file_name().unwrap().to_string_lossy()
                );
                fs::copy(&file, corpus.join(name)).unwrap();
                n += 1;
            }
        }
    }
    n
}

/// The built target: `<target dir>/<host triple>/release/<name>`.
fn binary(target_dir: &Path, name: &str) -> Option<PathBuf> {
    fs::read_dir(target_dir)
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("release").join(name)))
        .find(|p| p.is_file())
}

#[test]
fn fuzz_targets_find_nothing_from_the_golden_vectors_in_bounded_time() {
    let tools = (
        cargo_fuzz(),
        std::env::var_os("CXX").is_some() || on_path("c++").is_some(),
    );
    let (Some(cargo_fuzz), true) = tools else {
        let missing = match tools {
            (None, false) => "cargo-fuzz and a C++ compiler (c++)",
            (None, true) => "cargo-fuzz",
            _ => "a C++ compiler (c++)",
        };
        assert!(
            std::env::var_os("CI").is_none(),
            "not installed: {missing}; the test command installs cargo-fuzz (cargo install cargo-fuzz --locked) and g++"
        );
        eprintln!(
            "skipped: {missing} not installed (cargo install cargo-fuzz --locked; apt-get install g++; CI does)"
        );
        return;
    };

    let scratch = std::env::temp_dir().join(format!("dhtd-fuzz-{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch).unwrap();

    // Build every target once: cargo-fuzz's flags, release with debug
    // assertions, no sanitizer (stable).
    let target_dir = fuzz_dir().join("target");
    let build_log = scratch.join("build.log");
    let started = Instant::now();
    let mut build = Command::new(&cargo_fuzz);
    build
        .args(["fuzz", "build", "-s", "none", "--target-dir"])
        .arg(&target_dir)
        .current_dir(fuzz_dir());
    match run_bounded(build, &build_log, BUILD_LIMIT) {
        Some(status) if status.success() => {}
        Some(status) => panic!(
            "cargo fuzz build failed ({status}); log {}:\n{}",
            build_log.display(),
            tail(&build_log, 40)
        ),
        None => panic!(
            "cargo fuzz build took over {BUILD_LIMIT:?}; log {}:\n{}",
            build_log.display(),
            tail(&build_log, 40)
        ),
    }
    eprintln!("fuzz build: {:.1?}", started.elapsed());

    let total = std::env::var("DHTD_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(FUZZ_TOTAL, Duration::from_secs);
    let each = (total / TARGETS.len() as u32).max(Duration::from_secs(1));

    let mut failures = Vec::new();
    for target in TARGETS {
        let bin = binary(&target_dir, target).unwrap_or_else(|| {
            panic!(
                "{target} not found under {} after the build",
                target_dir.display()
            )
        });
        let dir = scratch.join(target);
        let corpus = dir.join("corpus");
        let artifacts = dir.join("artifacts");
        let seeds = seed(&corpus);
        assert!(seeds > 300, "only {seeds} golden vectors");
        fs::create_dir_all(&artifacts).unwrap();
        let log = dir.join("fuzz.log");
        let mut run = Command::new(&bin);
        // The panic's message and place are enough; libFuzzer adds the input.
        run.env("RUST_BACKTRACE", "0")
            .arg(format!("-max_total_time={}", each.as_secs()))
            .arg(format!("-timeout={INPUT_TIMEOUT_SECS}"))
            .arg("-max_len=4096")
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg(&corpus);
        let started = Instant::now();
        // libFuzzer stops itself; the margin covers a last slow input
        // and loading the corpus.
        let status = run_bounded(
            run,
            &log,
            each + Duration::from_secs(2 * INPUT_TIMEOUT_SECS + 60),
        );
        let mut found: Vec<PathBuf> = fs::read_dir(&artifacts)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        found.sort();
        let done = tail(&log, 200)
            .lines()
            .rev()
            .find(|l| l.starts_with("Done "))
            .unwrap_or("no summary")
            .to_owned();
        eprintln!("{target}: {seeds} seeds, {:.1?}: {done}", started.elapsed());
        if !found.is_empty() || status.is_none_or(|s| !s.success()) {
            let inputs: Vec<String> = found.iter().map(|p| p.display().to_string()).collect();
            failures.push(format!(
                "{target}: {} (exit {}); input(s): {}\n  reproduce: cd protocol/fuzz && cargo fuzz run -s none {target} {}\n  log {}:\n{}",
                if found.is_empty() { "failed" } else { "found a failing input" },
                status.map_or("none: killed after its time limit".into(), |s| s.to_string()),
                if inputs.is_empty() { "none written".into() } else { inputs.join(", ") },
                inputs.first().map_or("<input>", |s| s.as_str()),
                log.display(),
                tail(&log, 20)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let _ = fs::remove_dir_all(&scratch);
}
