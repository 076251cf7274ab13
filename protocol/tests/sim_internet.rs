//! The shipped node in a simulated Internet-like network (issue "Internet
//! scale by simulation"): 1,000 nodes with churn (Weibull sessions, median
//! 200 minutes), 30% behind NATs, 5% read-only, 5% slow, 2% loss and
//! heavy-tailed round trips, for two simulated hours after joining.
//! `dhtd sim` runs the same model at larger N.

// Test helpers, not only #[test] fns, may panic on a broken fixture.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use dhtd_protocol::sim::{run_internet, InternetReport, Model};

#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

fn run(model: Model) -> InternetReport {
    let report = run_internet(epoch(), model, |_| {});
    println!("{report}");
    report
}

#[test]
fn lookups_find_announces_and_the_size_estimate_holds_under_churn_and_nat() {
    let r = run(Model {
        nodes: 1000,
        duration: Duration::from_secs(2 * 3600),
        ..Model::default()
    });
    // Churn at the steady rate, N over the mean session (832 minutes),
    // over the 135 minutes after the first start: about 160 departures.
    // A network of nodes that had all just arrived would lose twice that.
    assert!(
        (80..=320).contains(&r.departures),
        "the run had churn, at the steady rate: {r}"
    );
    assert!(r.datagrams[3] > 0, "NATs kept datagrams out: {r}");
    assert!(r.lookups >= 2000, "{r}");
    assert!(r.found_rate() >= 0.98, "{r}");
    assert!(
        r.nearly as f64 >= 0.95 * r.lookups as f64,
        "at least 6 of the true 8 closest: {r}"
    );
    let [_, median, _] = r.size_ratio;
    assert!((0.8..1.25).contains(&median), "size estimate: {r}");
    // Reachable nodes hear from every querier, so their trials measure
    // the share that cannot be reached (a trial's ping that reached a
    // querier through the NAT its query had just opened made it 0.17).
    let truth = 1.0 - r.reachable_at_end as f64 / r.online_at_end as f64;
    let seen = r.unreachable_share_seen_by[0];
    assert!(
        (seen - truth).abs() < 0.1,
        "share seen {seen}, truth {truth}: {r}"
    );
    assert!(r.table_live() >= 0.7, "{r}");
    // Announced once: found until the store's 45 minutes run out, then not.
    let once = |minute: f64| {
        r.samples
            .iter()
            .find(|s| s.once_age_minutes >= minute)
            .map(|s| s.found_once)
            .unwrap()
    };
    assert!(once(30.0) >= 0.9, "{:?}", r.samples);
    assert!(once(60.0) <= 0.1, "{:?}", r.samples);
    // Re-announced every 15 minutes: found all along.
    for s in &r.samples[1..] {
        assert!(s.found_reannounced >= 0.95, "{s:?}");
    }
}

#[test]
fn a_seed_replays_a_run_exactly() {
    let model = |seed| Model {
        nodes: 300,
        seed,
        duration: Duration::from_secs(10 * 60),
        join_over: Duration::from_secs(60),
        settle: Duration::from_secs(120),
        lookups_per_sample: 20,
        ..Model::default()
    };
    let first = run(model(3));
    assert_eq!(first, run(model(3)));
    assert_ne!(first, run(model(4)), "another seed, another run");
}
