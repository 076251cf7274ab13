//! The dashboards and alert rules in `dashboards/`, checked against what a
//! node really exports, with the real tools: `promtool` and a Prometheus
//! server on loopback scraping a swarm (Debian package `prometheus`,
//! installed by the test command, `cargo run -p dhtd-suite`). Without them the test says so and passes,
//! except under CI (`CI` set), where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn dashboards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards")
}

/// Every PromQL expression of the dashboard, with Grafana's variables
/// replaced by what they would be: all instances, a short rate window.
fn dashboard_exprs() -> Vec<(String, String)> {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dashboards_dir().join("dhtd.json")).unwrap())
            .unwrap();
    let mut out = Vec::new();
    for panel in json["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            let concrete = expr
                .replace("$instance", ".*")
                .replace("$family", ".*")
                .replace("$__rate_interval", "10s");
            out.push((panel["title"].as_str().unwrap().to_owned(), concrete));
        }
    }
    out
}

/// The `expr:` of every alert rule (each on one line in alerts.yml).
fn rule_exprs() -> Vec<String> {
    std::fs::read_to_string(dashboards_dir().join("alerts.yml"))
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .map(|e| e.trim().to_owned())
        .collect()
}

/// The `dht_*` metric names an expression reads.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("dht_") {
        let start = i + at;
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = start
            + expr[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(expr.len() - start);
        if boundary {
            names.insert(expr[start..end].to_owned());
        }
        i = end;
    }
    names
}

/// The families a scrape declares (`# TYPE name kind`), with the series
/// names a histogram family brings.
fn exported(scrape: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for l in scrape.lines() {
        let mut parts = l
            .strip_prefix("# TYPE ")
            .unwrap_or_default()
            .split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        names.insert(name.to_owned());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    names
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs `query` on Prometheus; the status and the number of series returned.
fn query(prometheus: &str, q: &str) -> (String, usize, String) {
    let (_, body) = http_get(
        prometheus,
        &format!("/api/v1/query?query={}", url_encode(q)),
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let status = v["status"].as_str().unwrap_or("unreadable").to_owned();
    let series = v["data"]["result"].as_array().map_or(0, Vec::len);
    (status, series, body)
}

#[test]
fn every_dashboard_and_alert_expression_reads_exported_metrics_through_a_real_prometheus() {
    let _serial = serial();
    let (Some(promtool), Some(prometheus)) = (on_path("promtool"), on_path("prometheus")) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool and prometheus are missing; the test command (`cargo run -p dhtd-suite`) installs the Debian package `prometheus`"
        );
        eprintln!(
            "skipped: promtool/prometheus not installed (apt-get install prometheus; CI does)"
        );
        return;
    };
    let home = scratch("dashboards");

    // The rules and the example config are valid.
    let rules = dashboards_dir().join("alerts.yml");
    let check = Command::new(&promtool)
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", text(&check.stdout));
    // Every rule fires on the series that should fire it, and only on
    // those (alerts_test.yml); no rule goes untested.
    let unit = Command::new(&promtool)
        .args(["test", "rules", "alerts_test.yml"])
        .current_dir(dashboards_dir())
        .output()
        .unwrap();
    assert!(
        unit.status.success(),
        "{}{}",
        text(&unit.stdout),
        text(&unit.stderr)
    );
    let names = |file: &str, key: &str| -> std::collections::BTreeSet<String> {
        std::fs::read_to_string(dashboards_dir().join(file))
            .unwrap()
            .lines()
            .filter_map(|l| l.trim().trim_start_matches("- ").strip_prefix(key))
            .map(|n| n.trim().to_owned())
            .collect()
    };
    let rules_named = names("alerts.yml", "alert:");
    assert_eq!(rules_named.len(), 9, "{rules_named:?}");
    assert_eq!(
        rules_named,
        names("alerts_test.yml", "alertname:"),
        "every rule has a test"
    );
    let check = Command::new(&promtool)
        .args(["check", "config", "--syntax-only"])
        .arg(dashboards_dir().join("prometheus.yml"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        text(&check.stdout),
        text(&check.stderr)
    );

    // A swarm with traffic, serving its metrics.
    let metrics = free_local_addr().to_string();
    let (_swarm, _) = background_swarm(&home, 30, &metrics);
    let scrape = scrape_when_ready(&metrics, 30);

    // promtool accepts the scrape as it is served.
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    // Every metric a dashboard panel or a rule names is exported.
    let exported = exported(&scrape);
    let dashboard = dashboard_exprs();
    let rule_list = rule_exprs();
    assert!(dashboard.len() >= 30 && rule_list.len() >= 7);
    for expr in dashboard.iter().map(|(_, e)| e).chain(&rule_list) {
        for name in metric_names(expr) {
            assert!(
                exported.contains(&name),
                "`{name}` (in `{expr}`) is not exported by dhtd"
            );
        }
    }

    // A real Prometheus scrapes the swarm every second and loads the rules.
    let web = free_local_addr().to_string();
    let config = home.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: dhtd\n    static_configs:\n      - targets: [\"{metrics}\"]\n",
            rules.display()
        ),
    )
    .unwrap();
    let mut c = Command::new(&prometheus);
    c.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            home.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={web}"));
    let _prometheus = spawn(c);
    let up = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(200));
        std::net::TcpStream::connect(&web).is_ok() && query(&web, "up{job=\"dhtd\"} == 1").1 == 1
    });
    assert!(up, "Prometheus did not scrape the swarm");
    // Rates need a few samples.
    std::thread::sleep(Duration::from_secs(4));

    // Every dashboard expression parses and returns data.
    for (title, expr) in &dashboard {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, series, body) = query(&web, expr);
            assert_eq!(status, "success", "panel {title:?}: `{expr}`: {body}");
            if series > 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "panel {title:?}: `{expr}` returned no data"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    // Every rule parses, and every metric it reads has data.
    for expr in &rule_list {
        let (status, _, body) = query(&web, expr);
        assert_eq!(status, "success", "rule `{expr}`: {body}");
        for name in metric_names(expr) {
            let (_, series, _) = query(&web, &format!("count({name})"));
            assert_eq!(series, 1, "rule `{expr}`: no data for {name}");
        }
    }
    let (_, body) = http_get(&web, "/api/v1/rules");
    let rules: serde_json::Value = serde_json::from_str(&body).unwrap();
    let loaded: Vec<&serde_json::Value> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert_eq!(loaded.len(), rule_list.len());
    assert!(loaded.iter().all(|r| r["health"] == "ok"), "{body}");
}

/// Type-checks `dashboard_json` against `Dashboard` from @grafana/schema:
/// the JSON becomes an object literal assigned to a `Dashboard` variable,
/// so TypeScript checks every field's type and refuses unknown keys.
fn schema_check(tsc: &Path, dashboard_json: &str, name: &str) -> std::process::Output {
    let work = scratch(name);
    std::os::unix::fs::symlink(
        dashboards_dir().join("schema-check/node_modules"),
        work.join("node_modules"),
    )
    .unwrap();
    std::fs::write(
        work.join("check.ts"),
        format!("import type {{ Dashboard }} from '@grafana/schema';\nexport const dashboard: Dashboard = {dashboard_json};\n"),
    )
    .unwrap();
    std::fs::write(
        work.join("tsconfig.json"),
        r#"{ "compilerOptions": { "strict": true, "noEmit": true, "moduleResolution": "bundler", "module": "esnext", "target": "es2020", "skipLibCheck": true }, "files": ["check.ts"] }"#,
    )
    .unwrap();
    Command::new(tsc).arg("-p").arg(&work).output().unwrap()
}

#[test]
fn the_dashboard_matches_grafanas_published_schema() {
    let _serial = serial();
    let tsc = dashboards_dir().join("schema-check/node_modules/.bin/tsc");
    if !tsc.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "dashboards/schema-check is not installed; the test command runs `npm ci` there"
        );
        eprintln!("skipped: run `npm ci --prefix dashboards/schema-check` (the test command does)");
        return;
    }
    let dashboard = std::fs::read_to_string(dashboards_dir().join("dhtd.json")).unwrap();
    let out = schema_check(&tsc, &dashboard, "schema");
    assert!(
        out.status.success(),
        "dhtd.json does not match Grafana's schema:\n{}",
        text(&out.stdout)
    );

    // The check can fail: a panel with a key Grafana does not know is refused.
    let broken = dashboard.replacen(
        "\"title\": \"Traffic\",",
        "\"title\": \"Traffic\", \"colour\": \"blue\",",
        1,
    );
    assert_ne!(broken, dashboard);
    let out = schema_check(&tsc, &broken, "schema-broken");
    assert!(!out.status.success());
    assert!(
        text(&out.stdout).contains("colour"),
        "{}",
        text(&out.stdout)
    );
}
