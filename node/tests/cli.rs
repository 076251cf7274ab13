//! The `dhtd` program, run as a process: every command on loopback.
//! Every process started here is stopped by its PID (see `Proc`); nodes
//! bootstrap only from numeric loopback addresses (`--bootstrap none`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn swarm_finishes_with_every_lookup_successful() {
    let _serial = serial();
    let home = scratch("swarm");
    let out = run({
        let mut c = dhtd(&home);
        c.args(["swarm", "--nodes", "40", "--metrics-listen", "off"]);
        c
    });
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("bootstrap: 40 of 40 nodes complete"),
        "{stdout}"
    );
    assert!(stdout.contains("40 of 40 info hashes accepted"), "{stdout}");
    assert!(
        stdout.contains("40 of 40 lookups found the announcer"),
        "{stdout}"
    );
}

/// `dhtd sim`: a small Internet-like network (on two threads, the
/// default), a table and six plots; a bad share or no thread is refused
/// by name.
#[test]
fn sim_writes_a_table_and_plots_and_refuses_a_bad_share() {
    let _serial = serial();
    let home = scratch("sim");
    let dir = home.join("sim-out");
    let out = run({
        let mut c = dhtd(&home);
        c.args([
            "sim",
            "--nodes",
            "60",
            "--duration",
            "5m",
            "--join-over",
            "30s",
        ]);
        c.args(["--settle", "1m", "--out", dir.to_str().unwrap()]);
        c
    });
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("N = 60:"), "a progress line");
    let table = std::fs::read_to_string(dir.join("report.md")).unwrap();
    let row = table
        .lines()
        .find(|l| l.starts_with("| 60 |"))
        .expect(&table);
    let found: f64 = row
        .split('|')
        .nth(3)
        .unwrap()
        .trim()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    assert!(found >= 90.0, "{row}");
    for plot in [
        "lookups",
        "lookup-time",
        "cost",
        "size-estimate",
        "findable",
        "tables",
    ] {
        let svg = std::fs::read_to_string(dir.join(format!("{plot}.svg"))).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("<polyline"),
            "{plot}"
        );
    }
    assert!(dir.join("samples-60.csv").exists());
    for (flag, value) in [
        ("--nat-share", "1.5"),
        ("--threads", "0"),
        ("--shards", "0"),
    ] {
        let bad = run({
            let mut c = dhtd(&home);
            c.args(["sim", "--nodes", "60", flag, value]);
            c
        });
        assert_eq!(bad.status.code(), Some(2), "{flag} {value}");
        assert!(text(&bad.stderr).contains(flag), "{}", text(&bad.stderr));
    }
}

#[test]
fn decode_prints_every_fixture_the_decoder_accepts_and_refuses_the_rest() {
    let _serial = serial();
    let home = scratch("decode");
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/krpc");
    let root = if shared.is_dir() {
        shared
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../protocol/tests/vectors/krpc")
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).into_iter().flatten())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    files.sort();
    assert!(
        files.len() > 300,
        "{} fixtures under {}",
        files.len(),
        root.display()
    );
    let (mut ok, mut refused) = (0, 0);
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let out = run({
            let mut c = dhtd(&home);
            c.arg("decode").arg(f);
            c
        });
        match dhtd_protocol::krpc::Message::decode(&bytes) {
            Ok(m) => {
                assert_eq!(
                    out.status.code(),
                    Some(0),
                    "{}: {}",
                    f.display(),
                    text(&out.stderr)
                );
                let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                let tid: String = m
                    .transaction_id
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                assert_eq!(json["t"], tid, "{}", f.display());
                assert!(["q", "r", "e"].contains(&json["y"].as_str().unwrap()));
                ok += 1;
            }
            Err(_) => {
                assert_eq!(out.status.code(), Some(1), "{}", f.display());
                assert!(
                    text(&out.stderr).contains("not a KRPC message"),
                    "{}",
                    text(&out.stderr)
                );
                refused += 1;
            }
        }
    }
    assert!(ok > 250 && refused > 5, "{ok} decoded, {refused} refused");
    // From standard input too.
    let mut c = dhtd(&home);
    let mut child = c
        .args(["decode", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe",
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["q"], "ping");
}

#[test]
fn config_precedence_is_flag_then_env_then_file() {
    let _serial = serial();
    let home = scratch("precedence");
    let file = home.join("dhtd.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.61:0\"\nbootstrap = [\"none\"]\nmetrics_listen = \"off\"\n",
    )
    .unwrap();
    let started_on = |env: Option<&str>, flag: Option<&str>| {
        let mut c = dhtd(&home);
        c.args(["run", "--config"]).arg(&file);
        if let Some(e) = env {
            c.env("DHTD_LISTEN", e);
        }
        if let Some(f) = flag {
            c.args(["--listen", f]);
        }
        c.args(["--state-dir"]).arg(home.join("st"));
        let p = spawn(c);
        let line = p.wait_for("DHT server started on", Duration::from_secs(10));
        assert_eq!(
            p.terminate(),
            Some(0),
            "SIGTERM ends the daemon with status 0"
        );
        line
    };
    assert!(started_on(None, None).contains("127.0.0.61:"));
    assert!(started_on(Some("127.0.0.62:0"), None).contains("127.0.0.62:"));
    assert!(started_on(Some("127.0.0.62:0"), Some("127.0.0.63:0")).contains("127.0.0.63:"));
}

#[test]
fn config_errors_name_the_problem_and_exit_2() {
    let _serial = serial();
    let home = scratch("config-errors");
    let file = home.join("bad.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\n\nlisen = 3\n").unwrap();
    let out = run({
        let mut c = dhtd(&home);
        c.args(["run", "--config"]).arg(&file);
        c
    });
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("line 3") && err.contains("lisen"), "{err}");

    std::fs::write(&file, "max_peers_per_info_hash = \"many\"\n").unwrap();
    let out = run({
        let mut c = dhtd(&home);
        c.args(["run", "--config"]).arg(&file);
        c
    });
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("max_peers_per_info_hash"),
        "{}",
        text(&out.stderr)
    );

    let out = run({
        let mut c = dhtd(&home);
        c.args([
            "run",
            "--node-id",
            "xyz",
            "--bootstrap",
            "none",
            "--metrics-listen",
            "off",
        ]);
        c
    });
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("node_id"),
        "{}",
        text(&out.stderr)
    );
    let out = run({
        let mut c = dhtd(&home);
        c.args(["run", "--recv-buffer", "lots", "--bootstrap", "none"]);
        c
    });
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("recv_buffer"),
        "{}",
        text(&out.stderr)
    );
    // A usage error is 2 as well.
    let out = run({
        let mut c = dhtd(&home);
        c.args(["lookup"]);
        c
    });
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn sigterm_saves_the_cache_and_a_restart_loads_it_and_the_daemon_answers_stats_and_add_node() {
    let _serial = serial();
    let home = scratch("daemon");
    let (_swarm, swarm_node) = background_swarm(&home, 30, "off");
    let state = home.join("state-dir");
    let metrics = free_local_addr().to_string();
    let daemon = |extra: &[&str]| {
        let mut c = dhtd(&home);
        c.args([
            "run",
            "--listen",
            "127.0.0.70:0",
            "--bootstrap",
            "none",
            "--metrics-listen",
            &metrics,
        ]);
        c.arg("--state-dir").arg(&state).args(extra);
        spawn(c)
    };
    let stats = || {
        let out = run({
            let mut c = dhtd(&home);
            c.args(["stats", "--json", "--metrics-listen", &metrics]);
            c
        });
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default()
    };
    let wait_nodes = |at_least: u64| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let s = stats();
            if s["bootstrap_complete"] == true && s["nodes"].as_u64().unwrap_or(0) >= at_least {
                return s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the daemon did not reach {at_least} nodes: {}", stats());
    };

    // Alone at first; `add-node` hands it a swarm node, and it joins.
    let first = daemon(&[]);
    first.wait_for("DHT server started", Duration::from_secs(10));
    let add = run({
        let mut c = dhtd(&home);
        c.args([
            "add-node",
            &swarm_node.to_string(),
            "--metrics-listen",
            &metrics,
        ]);
        c
    });
    assert_eq!(add.status.code(), Some(0), "{}", text(&add.stderr));
    let joined = wait_nodes(8);
    let id = joined["node_id"].clone();
    let text_stats = run({
        let mut c = dhtd(&home);
        c.args(["stats", "--metrics-listen", &metrics]);
        c
    });
    assert!(
        text(&text_stats.stdout).contains("routing table:"),
        "{}",
        text(&text_stats.stdout)
    );
    assert_eq!(first.terminate(), Some(0));
    assert!(
        state.join("routing_table.dat").exists(),
        "SIGTERM saved the cache"
    );

    // Restarted with no bootstrap source at all: the cache is enough.
    let second = daemon(&[]);
    let rejoined = wait_nodes(8);
    assert_eq!(rejoined["node_id"], id, "the node id is kept");
    assert_eq!(second.terminate(), Some(0));
}

/// A daemon at `listen` with `state` as its state dir, `args` added.
fn daemon_with_state(home: &Path, listen: &str, state: &Path, args: &[&str]) -> Proc {
    let mut c = dhtd(home);
    c.args(["run", "--listen", listen, "--bootstrap", "none"])
        .arg("--state-dir")
        .arg(state)
        .args(args);
    spawn(c)
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn a_daemon_killed_soon_after_bootstrap_restarts_from_its_table() {
    let _serial = serial();
    let home = scratch("killed");
    let (_swarm, swarm_node) = background_swarm(&home, 20, "off");
    let state = home.join("state-dir");
    let first = daemon_with_state(
        &home,
        "127.0.0.72:0",
        &state,
        &["--node", &swarm_node.to_string(), "--metrics-listen", "off"],
    );
    first.wait_for("bootstrap complete", Duration::from_secs(20));
    let table = state.join("routing_table.dat");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !table.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(table.exists(), "the table is saved soon after bootstrap");
    let id = std::fs::read_to_string(state.join("node_id")).unwrap();
    first.kill();

    // No bootstrap source but the table saved before the kill.
    let metrics = free_local_addr().to_string();
    let second = daemon_with_state(
        &home,
        "127.0.0.72:0",
        &state,
        &["--metrics-listen", &metrics],
    );
    second.wait_for("DHT server started", Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(20);
    let joined = loop {
        let out = run({
            let mut c = dhtd(&home);
            c.args(["stats", "--json", "--metrics-listen", &metrics]);
            c
        });
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if s["bootstrap_complete"] == true && s["nodes"].as_u64().unwrap_or(0) >= 8 {
            break s;
        }
        assert!(Instant::now() < deadline, "did not rejoin: {s}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(joined["node_id"], id.trim(), "the node id is kept");
    assert_eq!(second.terminate(), Some(0));
}

#[test]
fn a_daemon_whose_state_cannot_be_saved_reports_it_and_exits_1() {
    let _serial = serial();
    let home = scratch("unsaved");
    let (_swarm, swarm_node) = background_swarm(&home, 20, "off");
    let state = home.join("state-dir");
    // A directory where the table goes: every save fails at the rename,
    // for root too (whom a read-only mode would not stop).
    std::fs::create_dir_all(state.join("routing_table.dat").join("keep")).unwrap();
    let metrics = free_local_addr().to_string();
    let daemon = || {
        daemon_with_state(
            &home,
            "127.0.0.73:0",
            &state,
            &[
                "--node",
                &swarm_node.to_string(),
                "--metrics-listen",
                &metrics,
            ],
        )
    };
    let first = daemon();
    first.wait_for("UDP receive buffer", Duration::from_secs(10));
    first.wait_for("cannot save the routing table", Duration::from_secs(20));
    // The log line comes a moment before the metrics move.
    let deadline = Instant::now() + Duration::from_secs(10);
    let scrape = loop {
        let scrape = scrape_when_ready(&metrics, 1);
        let failed = sample(&scrape, "dht_state_save_failures_total") >= 1.0;
        if failed || Instant::now() > deadline {
            break scrape;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // 2 MiB asked; Linux reports twice what it grants, at least the
    // default 208 KiB capped by net.core.rmem_max.
    assert!(
        sample(&scrape, "dht_socket_recv_buffer_bytes") >= 2.0 * 212_992.0,
        "{scrape}"
    );
    assert!(
        sample(&scrape, "dht_state_save_failures_total") >= 1.0,
        "{scrape}"
    );
    assert_eq!(
        sample(&scrape, "dht_warning{warning=\"state_not_saved\"}"),
        1.0
    );
    assert_eq!(
        names(&state),
        ["node_id", "routing_table.dat"],
        "no temporary file is left"
    );
    let id = std::fs::read_to_string(state.join("node_id")).unwrap();
    assert_eq!(
        first.terminate(),
        Some(1),
        "the final save failed: status 1"
    );

    let second = daemon();
    second.wait_for(id.trim(), Duration::from_secs(10));
    second.wait_for("cannot save the routing table", Duration::from_secs(20));
    assert_eq!(second.terminate(), Some(1));
    assert_eq!(names(&state), ["node_id", "routing_table.dat"]);
    assert_eq!(
        std::fs::read_to_string(state.join("node_id")).unwrap(),
        id,
        "the node id is kept"
    );
}

#[test]
fn one_off_commands_against_a_swarm() {
    let _serial = serial();
    let home = scratch("tools");
    let (_swarm, node) = background_swarm(&home, 30, "off");
    let node_s = node.to_string();
    let tool = |args: &[&str]| {
        run({
            let mut c = dhtd(&home);
            c.args(args).args([
                "--listen",
                "127.0.0.71:0",
                "--bootstrap",
                "none",
                "--node",
                &node_s,
            ]);
            c
        })
    };
    let ih = "0123456789abcdef0123456789abcdef01234567";

    let out = tool(&["announce", ih, "--port", "4567"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("nodes accepted"),
        "{}",
        text(&out.stdout)
    );

    let out = tool(&["lookup", &format!("magnet:?xt=urn:btih:{ih}&dn=demo")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).lines().any(|l| l == "127.0.0.71:4567"),
        "{}",
        text(&out.stdout)
    );
    let out = tool(&["lookup", ih, "--json"]);
    let last: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().last().unwrap()).unwrap();
    assert!(last["summary"]["responses"].as_u64().unwrap() > 0);

    // BEP 44: an immutable item put from a file and got by its target; a
    // mutable one by its key and salt; a bad combination refused (exit 2).
    let value = home.join("value.txt");
    std::fs::write(&value, "Hello World!").unwrap();
    let value_s = value.to_str().unwrap();
    let out = tool(&["put", value_s]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "e5f96f6f38320f0f33959cb4d3d656452117aadb",
        "BEP 44's immutable test vector"
    );
    let out = tool(&["get", "e5f96f6f38320f0f33959cb4d3d656452117aadb"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Hello World!");
    let secret = "07".repeat(32);
    let out = tool(&[
        "put", value_s, "--secret", &secret, "--salt", "s", "--seq", "3", "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let put: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = put["public_key"].as_str().unwrap().to_owned();
    let out = tool(&["get", &key, "--salt", "s", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (got["value"].as_str(), got["seq"].as_i64()),
        (Some("Hello World!"), Some(3))
    );
    let out = tool(&["put", value_s, "--seq", "2"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = tool(&["get", "0000000000000000000000000000000000000001"]);
    assert_eq!(out.status.code(), Some(1), "not found is a failure");

    // BEP 33: announced as a seed, scraped as one.
    let seeded = "89abcdef0123456789abcdef0123456789abcdef";
    let out = tool(&["announce", seeded, "--port", "4568", "--seed"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = tool(&["lookup", seeded, "--scrape", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let last: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(
        last["summary"]["scrape"],
        serde_json::json!({"seeds": 1, "peers": 0}),
        "{last}"
    );

    // BEP 51: a crawl of the swarm finds every announced info hash (the
    // swarm's round announced one per node) and ours.
    let out = tool(&["sample", "--duration", "20s", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let found: std::collections::HashSet<&str> = lines
        .iter()
        .filter_map(|l| l["info_hash"].as_str())
        .collect();
    assert!(found.contains(ih), "{found:?}");
    assert!(found.len() >= 31, "{} info hashes", found.len());
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!(summary["info_hashes"].as_u64(), Some(found.len() as u64));
    assert!(summary["answered"].as_u64().unwrap() >= 20, "{summary}");

    let out = tool(&["ping", &node_s]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("id "),
        "{}",
        text(&out.stdout)
    );
    let out = tool(&["find-node", &node_s]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("node "), "{}", text(&out.stdout));
    let out = tool(&["get-peers", &node_s, ih]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains("token "),
        "{}",
        text(&out.stdout)
    );
    // Nobody listens there: failure, exit 1.
    let out = tool(&["ping", "127.0.0.72:9"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn the_swarm_serves_prometheus_metrics_that_move_with_traffic() {
    let _serial = serial();
    let home = scratch("metrics");
    let metrics = free_local_addr().to_string();
    let (_swarm, node) = background_swarm(&home, 30, &metrics);

    let (status, health) = http_get(&metrics, "/health");
    assert_eq!(
        (status, health.trim()),
        (200, "ok: 30 of 30 nodes bootstrapped")
    );
    let good = |scrape: &str| sample(scrape, "dht_routing_nodes{family=\"ipv4\",state=\"good\"}");
    // Bootstrapped, each node then pings those that queried it: the
    // tables fill within moments.
    let mut before = scrape_when_ready(&metrics, 30);
    let filled = Instant::now() + Duration::from_secs(10);
    while good(&before) < 30.0 * 8.0 && Instant::now() < filled {
        std::thread::sleep(Duration::from_millis(200));
        before = scrape_when_ready(&metrics, 30);
    }
    // Every family of the catalogue is there, with its help text.
    for family in [
        "dht_packets_received_total",
        "dht_packets_sent_total",
        "dht_queries_received_total",
        "dht_queries_sent_total",
        "dht_responses_received_total",
        "dht_errors_sent_total",
        "dht_packets_dropped_total",
        "dht_routing_nodes",
        "dht_store_peers",
        "dht_lookups_finished_total",
        "dht_lookup_duration_seconds",
        "dht_lookup_queries",
        "dht_warning",
        "dht_actor_restarts_total",
        "dht_build_info",
    ] {
        assert!(
            before.contains(&format!("# HELP {family} ")),
            "no help for {family}"
        );
    }
    assert_eq!(sample(&before, "dht_nodes_running"), 30.0);
    assert_eq!(sample(&before, "dht_bootstrapped_nodes"), 30.0);
    let good = good(&before);
    assert!(good >= 30.0 * 8.0, "{good} good nodes in 30 tables");
    assert!(sample(&before, "dht_announces_stored_total") >= 30.0);
    let finished = sample(
        &before,
        "dht_lookups_finished_total{kind=\"get_peers\",outcome=\"answered\"}",
    );
    assert!(finished >= 30.0, "{finished}");
    assert!(before.contains("dht_lookup_duration_seconds_bucket{kind=\"get_peers\",le=\"0.005\"}"));

    // Traffic from outside: the swarm's counters move.
    let pings_before = sample(&before, "dht_queries_received_total{method=\"ping\"}");
    for _ in 0..5 {
        let out = run({
            let mut c = dhtd(&home);
            c.args(["ping", &node.to_string(), "--listen", "127.0.0.73:0"]);
            c
        });
        assert_eq!(out.status.code(), Some(0));
    }
    let (_, after) = http_get(&metrics, "/metrics");
    assert!(sample(&after, "dht_queries_received_total{method=\"ping\"}") >= pings_before + 5.0);
    assert!(
        sample(&after, "dht_packets_received_total{family=\"ipv4\"}")
            > sample(&before, "dht_packets_received_total{family=\"ipv4\"}")
    );
}

#[test]
fn load_measures_a_node_and_the_echo_responder() {
    let _serial = serial();
    let home = scratch("load");
    let load = |target: &str| {
        let out = run({
            let mut c = dhtd(&home);
            c.args([
                "load",
                "--target",
                target,
                "--duration",
                "2s",
                "--bind",
                "127.0.0.75",
                "--json",
            ]);
            c
        });
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        serde_json::from_str::<serde_json::Value>(text(&out.stdout).trim()).unwrap()
    };
    // The echo responder: every reply valid, none an error.
    let mut c = dhtd(&home);
    c.args(["echo", "--listen", "127.0.0.76:0"]);
    let echo = spawn(c);
    let line = echo.wait_for("echo responder on", Duration::from_secs(10));
    let echo_addr = line.rsplit(' ').next().unwrap().to_owned();
    let r = load(&echo_addr);
    assert!(r["replies"].as_u64().unwrap() > 1000, "{r}");
    assert_eq!(
        (r["invalid"].as_u64(), r["errors"].as_u64()),
        (Some(0), Some(0)),
        "{r}"
    );

    // A lone dhtd node: every method answered and valid (an empty table
    // still sends the required `nodes` key).
    let mut c = dhtd(&home);
    c.args([
        "run",
        "--listen",
        "127.0.0.77:0",
        "--bootstrap",
        "none",
        "--metrics-listen",
        "off",
    ]);
    c.args([
        "--queries-per-ip",
        "1000000000",
        "--queries-per-prefix",
        "1000000000",
    ]);
    c.args(["--state-dir"]).arg(home.join("st"));
    let node = spawn(c);
    let line = node.wait_for("DHT server started on", Duration::from_secs(10));
    let addr = line
        .split("started on ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .trim()
        .to_owned();
    let r = load(&addr);
    assert!(r["replies"].as_u64().unwrap() > 1000, "{r}");
    assert_eq!(r["invalid"].as_u64(), Some(0), "{r}");
    assert!(r["latency_us"]["p99"].as_u64().unwrap() >= r["latency_us"]["p50"].as_u64().unwrap());
    // A mix that names an unknown kind is a usage error.
    let out = run({
        let mut c = dhtd(&home);
        c.args(["load", "--target", &addr, "--mix", "ping=1,store=1"]);
        c
    });
    assert_eq!(out.status.code(), Some(2));
    // A flood, paced: about the rate asked, replies not awaited.
    let out = run({
        let mut c = dhtd(&home);
        c.args(["load", "--flood", "--rate", "2000", "--sockets", "1"])
            .args(["--duration", "1s", "--bind", "127.0.0.75", "--json"])
            .args(["--target", &addr]);
        c
    });
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let r: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    let sent = r["sent"].as_u64().unwrap();
    assert!((1000..=2500).contains(&sent), "{r}");
    // Only at our own loopback: refused before anything is sent.
    let out = run({
        let mut c = dhtd(&home);
        c.args(["load", "--flood", "--target", "192.0.2.1:6881"]);
        c
    });
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("loopback"),
        "{}",
        text(&out.stderr)
    );
}

/// The bug as a user met it: three daemons on loopback, each started with
/// `--bootstrap` set to the one before. Each must come to know both others,
/// and none may say "bootstrap complete" with 0 nodes.
#[test]
fn three_daemons_each_bootstrapping_from_the_one_before_know_each_other() {
    let _serial = serial();
    let home = scratch("chain");
    let mut daemons = Vec::new();
    let mut metrics = Vec::new();
    let mut before: Option<String> = None;
    for i in 0..3 {
        // Each on its own /24: one node of a /24 per bucket.
        let listen = format!("127.0.{}.1:0", 85 + i);
        let m = free_local_addr().to_string();
        let mut c = dhtd(&home);
        c.args(["run", "--listen", &listen, "--metrics-listen", &m]);
        c.args(["--bootstrap", before.as_deref().unwrap_or("none")]);
        c.arg("--state-dir").arg(home.join(format!("state-{i}")));
        let p = spawn(c);
        let line = p.wait_for("DHT server started on", Duration::from_secs(10));
        let addr = line
            .split("started on ")
            .nth(1)
            .and_then(|rest| rest.split([',', ' ']).next())
            .unwrap()
            .to_owned();
        before = Some(addr);
        daemons.push(p);
        metrics.push(m);
    }
    let stats = |m: &str| {
        let out = run({
            let mut c = dhtd(&home);
            c.args(["stats", "--json", "--metrics-listen", m]);
            c
        });
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let all: Vec<serde_json::Value> = metrics.iter().map(|m| stats(m)).collect();
        let done = all
            .iter()
            .all(|s| s["bootstrap_complete"] == true && s["nodes"].as_u64() == Some(2));
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every daemon knows both others: {all:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for p in daemons {
        let line = p.wait_for("bootstrap complete", Duration::from_secs(1));
        assert!(!line.contains("complete: 0 nodes"), "{line}");
        assert_eq!(p.terminate(), Some(0));
    }
}

#[test]
fn man_pages_and_completions_come_from_the_command_definitions() {
    let home = scratch("man");
    let pages = home.join("man");
    let out = run({
        let mut c = dhtd(&home);
        c.arg("man").arg("--out").arg(&pages);
        c
    });
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Every command that --help lists has its page.
    let help = text(
        &run({
            let mut c = dhtd(&home);
            c.arg("--help");
            c
        })
        .stdout,
    );
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 15, "{commands:?}");
    // roff writes a hyphen as `\-`.
    let main = std::fs::read_to_string(pages.join("dhtd.1"))
        .unwrap()
        .replace("\\-", "-");
    assert!(main.contains(".TH dhtd"), "{main}");
    for command in &commands {
        assert!(main.contains(command), "dhtd.1 names {command}");
        let page = pages.join(format!("dhtd-{command}.1"));
        assert!(page.exists(), "no page for {command}");
    }
    for shell in ["bash", "zsh", "fish"] {
        let out = run({
            let mut c = dhtd(&home);
            c.args(["completions", shell]);
            c
        });
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = text(&out.stdout);
        assert!(
            commands.iter().all(|c| script.contains(c)),
            "{shell} completes every command"
        );
    }
    let out = run({
        let mut c = dhtd(&home);
        c.args(["completions", "tcsh"]);
        c
    });
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

/// The HTTP listener is hyper's: a malformed request gets 400, a client
/// that sends its request head endlessly slowly is cut off, and neither
/// keeps `/metrics` from answering meanwhile.
#[test]
fn the_http_listener_survives_malformed_and_slow_clients() {
    use std::io::{Read, Write};
    let _serial = serial();
    let home = scratch("http");
    let metrics = {
        let l = std::net::TcpListener::bind("127.0.0.78:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mut c = dhtd(&home);
    c.args([
        "run",
        "--listen",
        "127.0.0.78:0",
        "--bootstrap",
        "none",
        "--metrics-listen",
        &metrics,
    ]);
    c.arg("--state-dir").arg(home.join("st"));
    let node = spawn(c);
    node.wait_for("metrics on http://", Duration::from_secs(10));

    // Slow clients: each sends part of a request head and then nothing.
    let slow: Vec<std::net::TcpStream> = (0..20)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(&metrics).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    // A malformed one.
    let mut bad = std::net::TcpStream::connect(&metrics).unwrap();
    bad.write_all(b"\x00\x01 not http at all\r\n\r\n").unwrap();
    bad.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = String::new();
    let _ = bad.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer:?}");

    // /metrics answers at once, slow clients or not.
    let started = Instant::now();
    let (status, body) = http_get(&metrics, "/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("dht_nodes_running 1"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // The slow clients are cut off within the header timeout (5 s).
    for mut s in slow {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut rest = Vec::new();
        let cut = s.read_to_end(&mut rest).is_ok();
        assert!(cut, "a slow client was held past the header timeout");
    }
    assert!(started.elapsed() < Duration::from_secs(9));

    // A POST from loopback passes the control gate (here to be told its
    // query lacks `addr`); the refusal of other hosts is a unit test of
    // `control::refused`.
    let mut post = std::net::TcpStream::connect(&metrics).unwrap();
    post.write_all(b"POST /add-node HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    post.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.0 400 "),
        "missing addr: {answer:?}"
    );
    assert_eq!(node.terminate(), Some(0));
}

/// SIGHUP and `POST /reload` reread the config file: the caps and budgets
/// change in the running node, a setting that cannot change live is named
/// in a warning, and a file that does not parse is refused with the start's
/// message while the running settings stay.
#[test]
fn sighup_and_post_reload_apply_what_can_change_live() {
    let _serial = serial();
    let home = scratch("reload");
    let metrics = {
        let l = std::net::TcpListener::bind("127.0.0.79:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let file = home.join("dhtd.toml");
    let write = |extra: &str| {
        std::fs::write(
            &file,
            format!(
                "listen = \"127.0.0.79:0\"\nbootstrap = [\"none\"]\nmetrics_listen = \"{metrics}\"\n{extra}"
            ),
        )
        .unwrap();
    };
    write("max_info_hashes = 100\n");
    let mut c = dhtd(&home);
    c.args(["run", "--config"]).arg(&file);
    c.arg("--state-dir").arg(home.join("st"));
    let node = spawn(c);
    node.wait_for("metrics on http://", Duration::from_secs(10));
    let stats = || -> serde_json::Value {
        serde_json::from_str(&http_get(&metrics, "/stats.json").1).unwrap()
    };
    assert_eq!(stats()["store"]["info_hashes_limit"], 100);

    // SIGHUP: a cap and a budget change; the listen address cannot.
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.79:4321\"\nbootstrap = [\"none\"]\nmetrics_listen = \"{metrics}\"\nmax_info_hashes = 200\nqueries_per_ip = 5\noutbound_queries = 100\nupload_rate = \"64K\"\nlog = \"info,dht::node=debug\"\n"
        ),
    )
    .unwrap();
    node.hangup();
    let line = node.wait_for("settings reloaded", Duration::from_secs(10));
    for applied in [
        "max_info_hashes",
        "queries_per_ip",
        "outbound_queries",
        "upload_rate",
        "log",
    ] {
        assert!(line.contains(applied), "{applied} not applied: {line}");
    }
    assert!(
        line.contains("restart") && line.contains("listen"),
        "{line}"
    );
    assert_eq!(stats()["store"]["info_hashes_limit"], 200);
    let (_, scrape) = http_get(&metrics, "/metrics");
    assert_eq!(sample(&scrape, "dht_store_info_hashes_limit"), 200.0);
    assert_eq!(
        sample(&scrape, "dht_upload_limit_bytes_per_second"),
        65536.0
    );

    // A file that does not parse: refused, named, nothing changes.
    std::fs::write(&file, "max_info_hashes = \"lots\"\n").unwrap();
    let (status, body) = http(&metrics, "POST", "/reload");
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("max_info_hashes") && body.contains("line 1"),
        "{body}"
    );
    node.wait_for("reload refused", Duration::from_secs(10));
    assert_eq!(stats()["store"]["info_hashes_limit"], 200);

    // POST /reload: read-only mode, live.
    write("max_info_hashes = 200\nread_only = true\n");
    let (status, body) = http(&metrics, "POST", "/reload");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("read_only"), "{body}");
    assert_eq!(stats()["read_only"], true);
    assert_eq!(node.terminate(), Some(0));
}

/// `systemd-analyze`, which the unit tests need; in CI it must be there
/// (the test command, `cargo run -p dhtd-suite`, installs Debian's `systemd`).
fn systemd_analyze() -> bool {
    let present = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is not installed; the test command (`cargo run -p dhtd-suite`) installs it"
        );
        eprintln!("skipped: systemd-analyze is not installed (the test command installs it)");
    }
    present
}

/// The unit file, with the binary under test in place of /usr/bin/dhtd.
fn unit_file(dir: &Path) -> PathBuf {
    let unit =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/dhtd.service"))
            .unwrap()
            .replace("/usr/bin/dhtd", env!("CARGO_BIN_EXE_dhtd"));
    let path = dir.join("dhtd.service");
    std::fs::write(&path, unit).unwrap();
    path
}

/// The unit passes `systemd-analyze verify`, and its exposure score (what
/// the README shows) stays low.
#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    if !systemd_analyze() {
        return;
    }
    let home = scratch("unit");
    let unit = unit_file(&home);
    let verify = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .unwrap();
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let security = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--man=no"])
        .arg(&unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&security.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for dhtd.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in: {text}"));
    println!("systemd-analyze security: exposure {score}");
    assert!(score <= 2.0, "exposure {score}:\n{text}");
}

/// Started by a service manager (`NOTIFY_SOCKET`, `WATCHDOG_USEC`), the
/// daemon says READY=1 once it serves, feeds the watchdog while its
/// actors answer, and says STOPPING=1 on SIGTERM.
#[test]
fn the_daemon_tells_systemd_it_is_ready_and_feeds_its_watchdog() {
    use std::os::unix::net::UnixDatagram;
    let _serial = serial();
    let home = scratch("notify");
    let path = home.join("notify");
    let manager = UnixDatagram::bind(&path).unwrap();
    manager
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut c = dhtd(&home);
    c.args([
        "run",
        "--listen",
        "127.0.0.81:0",
        "--bootstrap",
        "none",
        "--metrics-listen",
        "off",
    ]);
    c.arg("--state-dir").arg(home.join("st"));
    c.env("NOTIFY_SOCKET", &path).env("WATCHDOG_USEC", "400000");
    let node = spawn(c);
    let mut buf = [0u8; 512];
    let mut next = || {
        let n = manager.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let ready = next();
    assert!(
        ready.starts_with("READY=1\nSTATUS=serving on 127.0.0.81:"),
        "{ready:?}"
    );
    let started = Instant::now();
    let feeds = (0..3).filter(|_| next() == "WATCHDOG=1").count();
    assert_eq!(feeds, 3);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "fed every 0.2 s"
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let watcher = std::thread::spawn(move || {
        let mut seen = Vec::new();
        while let Ok(n) = manager.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let stop = text == "STOPPING=1";
            seen.push(text);
            if stop {
                break;
            }
        }
        let _ = tx.send(seen);
    });
    assert_eq!(node.terminate(), Some(0));
    let seen = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    watcher.join().unwrap();
    assert_eq!(seen.last().map(String::as_str), Some("STOPPING=1"));
}

/// The daemon runs under the unit's restrictions, as far as the tools the
/// tests have can apply them: an unprivileged user, no capabilities, no new
/// privileges, a read-only file system but for its state dir
/// (`ProtectSystem=strict`, `StateDirectory=`), and the unit's system-call
/// filter, expanded by `systemd-analyze syscall-filter` and loaded with
/// libseccomp (`seccomp_exec.py`). It answers and saves its state there.
/// (The address-family restriction needs systemd as process 1.)
#[test]
fn the_daemon_serves_and_saves_its_state_under_the_units_restrictions() {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "this test makes a mount namespace and drops to an unprivileged user: it needs root"
        );
        eprintln!("skipped: not root");
        return;
    }
    let _serial = serial();
    let home = scratch("restricted");
    let state = home.join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::process::Command::new("chown")
        .args(["65534:65534"])
        .arg(&state)
        .status()
        .unwrap();
    let metrics = {
        let l = std::net::TcpListener::bind("127.0.0.82:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let seccomp = std::process::Command::new("/usr/bin/python3")
        .args(["-c", "import seccomp"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        seccomp || std::env::var_os("CI").is_none(),
        "python3-seccomp is missing; the test command installs it"
    );
    let filter = if seccomp && systemd_analyze() {
        format!(
            "/usr/bin/python3 {} {}",
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/seccomp_exec.py")
                .display(),
            unit_file(&home).display()
        )
    } else {
        String::new()
    };
    let script = format!(
        "set -e; mount --make-rprivate /; mount --bind {state} {state}; \
         mount -o remount,bind,ro /; \
         exec setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
         --bounding-set=-all --inh-caps=-all {filter} {dhtd} run --listen 127.0.0.82:0 \
         --bootstrap none --metrics-listen {metrics} --state-dir {state}",
        state = state.display(),
        dhtd = env!("CARGO_BIN_EXE_dhtd"),
    );
    let mut c = std::process::Command::new("unshare");
    c.args(["--mount", "--", "sh", "-c", &script])
        .env("HOME", &home)
        .env_remove("DHTD_LOG");
    let node = spawn(c);
    if !filter.is_empty() {
        node.wait_for("seccomp: ", Duration::from_secs(10));
    }
    node.wait_for("metrics on http://", Duration::from_secs(10));
    let (status, body) = http_get(&metrics, "/health");
    assert_eq!(status, 200, "{body}");
    // It answers on the DHT too: a ping over UDP.
    let out = run({
        let mut c = dhtd(&home);
        let addr = http_get(&metrics, "/stats.json").1;
        let s: serde_json::Value = serde_json::from_str(&addr).unwrap();
        c.args(["ping", s["listen"].as_str().unwrap()]);
        c.args(["--listen", "127.0.0.83:0"]);
        c
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(node.terminate(), Some(0), "it saved its state at shutdown");
    assert!(state.join("node_id").exists());
}
