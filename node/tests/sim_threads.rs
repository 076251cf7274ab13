//! The simulator's shards on threads (`dhtd sim --threads`, `--shards`):
//! run at once, each as far ahead as no datagram from another can reach
//! it, on any number of threads, they must do exactly what they do one
//! event at a time, in time order. A shard
//! that ran past a datagram from another would deliver it late, and the
//! runs would part.

#![cfg(feature = "cli")]
// Test helpers, not only #[test] fns, may panic on a broken fixture.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use dhtd::sim_threads::SimThreads;
use dhtd_protocol::sim::{run_internet_on, InternetReport, Model, Threads};

#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

fn model(shards: usize) -> Model {
    Model {
        nodes: 300,
        seed: 5,
        duration: Duration::from_secs(15 * 60),
        join_over: Duration::from_secs(60),
        settle: Duration::from_secs(120),
        lookups_per_sample: 40,
        shards,
        ..Model::default()
    }
}

/// A run on `threads` threads, or (0) one event at a time in time order.
fn run(model: Model, threads: usize) -> InternetReport {
    let threads = (threads > 0).then(|| Arc::new(SimThreads { threads }) as Arc<dyn Threads>);
    let report = run_internet_on(epoch(), model, threads, |_| {});
    println!("{report}");
    report
}

#[test]
fn shards_on_threads_do_what_they_do_one_event_at_a_time() {
    // Three shards (split by access delay) on two threads: one thread
    // runs two of them.
    let on_threads = run(model(3), 2);
    assert_eq!(on_threads.late, 0, "no datagram delivered late");
    assert_eq!(on_threads, run(model(3), 0), "running ahead loses nothing");
    assert_eq!(
        on_threads,
        run(model(3), 1),
        "the number of threads and their timing change nothing"
    );
    let one = run(model(1), 0);
    assert_ne!(one, on_threads, "shards draw their own randomness");
    // Datagrams between shards go as within one: the same network.
    for r in [&one, &on_threads] {
        assert!(r.lookups >= 100, "{r}");
        assert!(r.found_rate() >= 0.97, "{r}");
        assert!(r.nearly as f64 >= 0.9 * r.lookups as f64, "{r}");
        assert!(r.table_live() >= 0.8, "{r}");
    }
    let ratio = on_threads.datagrams[0] as f64 / one.datagrams[0] as f64;
    assert!(
        (0.9..1.1).contains(&ratio),
        "as much traffic: {one} against {on_threads}"
    );
}
