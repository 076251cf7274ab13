//! The status page at `/`, in a real headless browser (Debian's
//! `chromium`): it renders, its pictures carry the live figures of
//! `/stats.json`, it moves on as the node does, and a screenshot of it is
//! written (its path is printed) for the README.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn chromium() -> Option<&'static str> {
    let found = ["chromium", "chromium-browser"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is not installed; the test command (`cargo run -p dhtd-suite`) installs Debian's `chromium`"
        );
        eprintln!("skipped: chromium is not installed (the test command installs it)");
    }
    found
}

/// What the browser made of the page: the DOM after rendering.
fn dump_dom(browser: &str, url: &str) -> String {
    let out = Command::new(browser)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--virtual-time-budget=2000",
            "--dump-dom",
            url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of `attr` on the first element that has it after `anchor`.
fn attr(dom: &str, anchor: &str, attr: &str) -> u64 {
    let from = dom
        .find(anchor)
        .unwrap_or_else(|| panic!("no {anchor} in the page"));
    let key = format!("{attr}=\"");
    let rest = &dom[from..];
    let at = rest
        .find(&key)
        .unwrap_or_else(|| panic!("no {attr} after {anchor}"))
        + key.len();
    rest[at..]
        .split('"')
        .next()
        .unwrap()
        .parse::<f64>()
        .unwrap() as u64
}

#[test]
fn the_status_page_renders_live_figures_in_a_browser() {
    let Some(browser) = chromium() else { return };
    let _serial = serial();
    let home = scratch("status-page");
    let metrics = {
        let l = std::net::TcpListener::bind("127.0.0.86:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let (_swarm, node0) = background_swarm(&home, 24, &metrics);
    let url = format!("http://{metrics}/");
    let stats = || -> serde_json::Value {
        serde_json::from_str(&http_get(&metrics, "/stats.json").1).unwrap()
    };

    let dom = dump_dom(browser, &url);
    assert!(dom.contains("<h1>dhtd node "), "{dom}");
    // The routing table's picture: a bar per bucket, stacked by state;
    // its figures are node 0's.
    let s = stats();
    let drawn_nodes = attr(&dom, "id=\"table-ipv4\"", "data-nodes");
    let drawn_good = attr(&dom, "id=\"table-ipv4\"", "data-good");
    let drawn_buckets = attr(&dom, "id=\"table-ipv4\"", "data-buckets");
    let live = s["families"][0]["nodes"].as_u64().unwrap();
    assert!(live > 0 && drawn_nodes > 0);
    assert!(
        drawn_nodes.abs_diff(live) <= 2,
        "drawn {drawn_nodes}, live {live}"
    );
    assert_eq!(
        drawn_buckets,
        s["families"][0]["buckets"].as_u64().unwrap(),
        "a bar per bucket"
    );
    let good_bars: u64 = dom
        .split("data-state=\"good\" data-count=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(
        good_bars, drawn_good,
        "the good bars add up to the good nodes"
    );
    assert_eq!(
        dom.matches("data-bucket=").count() as u64,
        drawn_buckets * 4,
        "four states per bucket"
    );
    // The warnings, the store, lookups.
    assert_eq!(dom.matches("data-warning=").count(), 6);
    assert!(dom.contains("id=\"store\""));
    assert!(dom.contains("id=\"lookups\""));

    // A minute's traffic later (a sample every 5 s), the picture has moved.
    let before = attr(&dom, "id=\"traffic\"", "data-samples");
    // Pings meanwhile, so that node 0 has traffic to draw.
    let pinger = std::net::UdpSocket::bind("127.0.0.87:0").unwrap();
    let ping = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
    for _ in 0..60 {
        pinger.send_to(ping, node0).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let dom = dump_dom(browser, &url);
    let after = attr(&dom, "id=\"traffic\"", "data-samples");
    assert!(after > before, "samples {before} then {after}");
    let received = attr(&dom, "id=\"traffic\"", "data-in");
    assert!(received > 0, "packets per second received, drawn");

    // A screenshot, for the README.
    let shot = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let out = Command::new(browser)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=900,1500",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    println!("status page screenshot: {}", shot.display());
}
