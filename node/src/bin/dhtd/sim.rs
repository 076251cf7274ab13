//! `dhtd sim`: the node that ships, in simulated networks shaped like the
//! Internet's mainline DHT, one run per size N; a table and plots of what
//! a user of the DHT would ask (see `dhtd_protocol::sim::internet`).

// A program: the wall clock times the runs and names the epoch.
#![allow(clippy::disallowed_methods)]

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use dhtd::sim_threads::SimThreads;
use dhtd_protocol::routing::BucketRefresh;
use dhtd_protocol::sim::{run_internet_on, InternetReport, Model, Threads};
use plotters::prelude::*;

use crate::{parse_duration, Failure};

#[derive(Args, Debug)]
pub(crate) struct SimArgs {
    /// Network sizes, one run each (e.g. `1000,10000,100000`).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    nodes: Vec<usize>,
    /// Simulated time measured per run, after joining and settling.
    #[arg(long, value_parser = parse_duration, default_value = "60m", value_name = "DURATION")]
    duration: Duration,
    /// Simulated time over which the first N nodes start.
    #[arg(long, value_parser = parse_duration, default_value = "5m", value_name = "DURATION")]
    join_over: Duration,
    /// Simulated time between the last start and the first measurement.
    #[arg(long, value_parser = parse_duration, default_value = "10m", value_name = "DURATION")]
    settle: Duration,
    /// Seed: a seed replays a run exactly (for a given `--shards`).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Threads to run the shards on; any number gives the same run.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Shards the nodes are split in, by access delay, each with its own
    /// randomness: each number is its own run of a seed (shard k runs on
    /// thread k mod threads). Default: 2 below 50,000 nodes, 4 from there
    /// (see `default_shards`).
    #[arg(long)]
    shards: Option<usize>,
    /// Where the table (`report.md`), the samples (CSV) and the plots (SVG) go.
    #[arg(long, default_value = "sim-out", value_name = "DIR")]
    out: PathBuf,
    /// Share of datagrams lost.
    #[arg(long, default_value_t = Model::default().loss)]
    loss: f64,
    /// Share of nodes behind a NAT that lets in only answers.
    #[arg(long, default_value_t = Model::default().nat_share)]
    nat_share: f64,
    /// Share of read-only nodes (BEP 43).
    #[arg(long, default_value_t = Model::default().read_only_share)]
    read_only_share: f64,
    /// Share of nodes that answer slowly.
    #[arg(long, default_value_t = Model::default().slow_share)]
    slow_share: f64,
    /// Median session length.
    #[arg(long, value_parser = parse_duration, default_value = "200m", value_name = "DURATION")]
    session_median: Duration,
    /// Median one-way access delay of a node (a round trip is about four).
    #[arg(long, value_parser = parse_duration, default_value = "40ms", value_name = "DURATION")]
    access_median: Duration,
    /// Experiment: queries in flight per lookup (the node's α).
    #[arg(long)]
    alpha: Option<usize>,
    /// Experiment: α counts only queries to nodes closer than the next one
    /// to ask (libtorrent's aggressive lookups).
    #[arg(long)]
    aggressive: Option<bool>,
    /// Experiment: the transaction timeout (the node's `timeout`).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    query_timeout: Option<Duration>,
    /// Experiment: tries per query (the node's `attempts`).
    #[arg(long)]
    attempts: Option<u8>,
    /// Experiment: the shortest time a query holds a lookup's slot.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    min_slot: Option<Duration>,
    /// Experiment: whether a query past its slot holds a lookup's end.
    #[arg(long)]
    wait_for_slow: Option<bool>,
    /// Experiment: a get_peers lookup ends once this many nodes answered
    /// with peers (0: at the k closest).
    #[arg(long)]
    enough_holders: Option<usize>,
    /// Experiment: nodes kept per bucket to replace failing ones.
    #[arg(long)]
    replacements: Option<usize>,
    /// Experiment: how long a bucket stays quiet before it is refreshed.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    refresh_after: Option<Duration>,
    /// Experiment: the longest wait between two lookups of our own id.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    look_again_max: Option<Duration>,
    /// Experiment: the four farthest buckets hold 16, 8, 4 and 2 times k
    /// nodes (libtorrent's extended routing table).
    #[arg(long)]
    extended_table: Option<bool>,
    /// Experiment: how a quiet bucket is refreshed (`lookup`: a find_node
    /// lookup; `query`: one find_node to the nearest node).
    #[arg(long, value_name = "HOW")]
    refresh_by: Option<RefreshBy>,
    /// Experiment: a full bucket trades its slowest node for one that
    /// answered in under half its round trip (proximity neighbour selection).
    #[arg(long)]
    prefer_fast: Option<bool>,
}

/// `--refresh-by`'s values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RefreshBy {
    Lookup,
    Query,
}

impl SimArgs {
    fn model(&self, nodes: usize) -> Result<Model, Failure> {
        for (name, share) in [
            ("--loss", self.loss),
            ("--nat-share", self.nat_share),
            ("--read-only-share", self.read_only_share),
            ("--slow-share", self.slow_share),
        ] {
            if !(0.0..1.0).contains(&share) {
                return Err(Failure::Usage(format!(
                    "{name}: {share} is not a share (at least 0, below 1)"
                )));
            }
        }
        if self.threads == 0 {
            return Err(Failure::Usage("--threads: at least 1".into()));
        }
        if self.shards == Some(0) {
            return Err(Failure::Usage("--shards: at least 1".into()));
        }
        if nodes < 10 {
            return Err(Failure::Usage(format!(
                "--nodes: {nodes} is too few for a DHT (at least 10)"
            )));
        }
        let mut model = Model {
            nodes,
            seed: self.seed,
            duration: self.duration,
            join_over: self.join_over,
            settle: self.settle,
            loss: self.loss,
            nat_share: self.nat_share,
            read_only_share: self.read_only_share,
            slow_share: self.slow_share,
            session_median: self.session_median,
            access_median: self.access_median,
            shards: self.shards.unwrap_or(default_shards(nodes)),
            ..Model::default()
        };
        let node = &mut model.node;
        if let Some(alpha) = self.alpha {
            if alpha == 0 {
                return Err(Failure::Usage("--alpha: at least 1".into()));
            }
            node.lookup.alpha = alpha;
        }
        if let Some(aggressive) = self.aggressive {
            node.lookup.aggressive = aggressive;
        }
        if let Some(t) = self.query_timeout {
            node.transactions.timeout = t;
            node.lookup.query_timeout = t * u32::from(node.transactions.attempts.max(1));
        }
        if let Some(a) = self.attempts {
            if a == 0 {
                return Err(Failure::Usage("--attempts: at least 1".into()));
            }
            node.transactions.attempts = a;
            node.lookup.query_timeout = node.transactions.timeout * u32::from(a);
        }
        if let Some(m) = self.min_slot {
            node.lookup.min_query_timeout = m;
        }
        if let Some(w) = self.wait_for_slow {
            node.lookup.wait_for_slow = w;
        }
        if let Some(n) = self.enough_holders {
            node.lookup.enough_holders = n;
        }
        if let Some(r) = self.replacements {
            node.routing.replacement_cache = r;
        }
        if let Some(r) = self.refresh_after {
            node.routing.refresh_after = r;
        }
        if let Some(m) = self.look_again_max {
            node.bootstrap.look_again_max = m;
        }
        if let Some(e) = self.extended_table {
            node.routing.extended_table = e;
        }
        if let Some(fast) = self.prefer_fast {
            node.routing.prefer_fast = fast;
        }
        if let Some(how) = self.refresh_by {
            node.routing.refresh = match how {
                RefreshBy::Lookup => BucketRefresh::Lookup,
                RefreshBy::Query => BucketRefresh::OneQuery,
            };
        }
        Ok(model)
    }
}

/// The shards of a run of `nodes` when `--shards` is not given. More
/// shards than threads shorten the windows the shards run apart (21 ms for
/// 4 against 38 ms for 2), and each thread runs two shards a window. At
/// 10^4 nodes, where a window holds a few hundred events, 4 measured no
/// faster than 2 (43.9 and 44.9 s against 42.6 and 43.0 s); at 10^5, where
/// it holds thousands, the join's first 2.4 simulated minutes took
/// 141–150 s with 4 against 160–163 s with 2, back to back, and 153 s with
/// 8 (README, "The simulator itself").
fn default_shards(nodes: usize) -> usize {
    if nodes >= 50_000 {
        4
    } else {
        2
    }
}

/// glibc's malloc tunables for the simulator: transparent huge pages, and
/// a heap that keeps what it grew to. By default freed memory at the top of
/// the heap goes back to the kernel and is faulted in (and zeroed) again as
/// the heap regrows: 6,632 page faults in a 10^4-node run against 1,188
/// with these, where a fault of a fresh 2 MiB page took milliseconds on
/// this VM (4.1 s of system time against 5.6 s; 1-2.5% less wall time,
/// side by side). Large blocks come from the heap too (the kernel's fresh
/// pages for each are the same cost), and it grows 64 MiB at a time.
const MALLOC_TUNABLES: &str = "glibc.malloc.hugetlb=1:glibc.malloc.trim_threshold=4294967296:\
                               glibc.malloc.mmap_threshold=33554432:glibc.malloc.top_pad=67108864";

/// Starts this process again with glibc's heap on transparent huge pages,
/// where the kernel gives them only on request (`[madvise]`, Debian's
/// default); returns only if it does not (the tunable is read before
/// `main`, so it cannot be set from here). The simulator touches gigabytes
/// of node state at random, and with 4 KiB pages an event's time goes to
/// TLB misses: huge pages made a 10^4-node run 17% faster, side by side.
/// A `GLIBC_TUNABLES` already set is the user's choice, and left alone.
pub(crate) fn restart_with_huge_pages() {
    if !cfg!(all(target_os = "linux", target_env = "gnu"))
        || std::env::var_os("GLIBC_TUNABLES").is_some()
    {
        return;
    }
    let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled");
    if !thp.is_ok_and(|mode| mode.contains("[madvise]")) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    use std::os::unix::process::CommandExt as _;
    let error = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("GLIBC_TUNABLES", MALLOC_TUNABLES)
        .exec();
    eprintln!("dhtd sim: running without huge pages (cannot restart: {error})");
}

/// Peak resident memory of this process, from Linux's /proc.
fn peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// One run's figures beside the simulator's own.
struct Row {
    report: InternetReport,
    wall: Duration,
    peak_memory: Option<u64>,
}

pub(crate) fn sim(args: SimArgs) -> Result<(), Failure> {
    let models = args
        .nodes
        .iter()
        .map(|&n| args.model(n))
        .collect::<Result<Vec<_>, _>>()?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| Failure::Failed(format!("cannot create {}: {e}", args.out.display())))?;
    let mut rows = Vec::new();
    for model in models {
        let n = model.nodes;
        let started = Instant::now();
        let threads: Arc<dyn Threads> = Arc::new(SimThreads {
            threads: args.threads,
        });
        let report = run_internet_on(started, model, Some(threads), |p| {
            let elapsed = started.elapsed().as_secs_f64();
            eprint!(
                "\rN = {n}: {:>5.1} of {:.0} simulated minutes · {} online · {} events ({:.0}k/s) · {:.0} s  ",
                p.simulated.as_secs_f64() / 60.0,
                p.total.as_secs_f64() / 60.0,
                p.online,
                p.events,
                p.events as f64 / elapsed.max(1e-3) / 1000.0,
                elapsed
            );
            let _ = std::io::stderr().flush();
        });
        eprintln!();
        let row = Row {
            wall: started.elapsed(),
            peak_memory: peak_memory_bytes(),
            report,
        };
        println!("{}\n{}\n", row.report, simulator_line(&row));
        write_samples(&args.out, &row.report)?;
        rows.push(row);
    }
    let table = summary(&rows);
    write(&args.out.join("report.md"), &table)?;
    plot_all(&args.out, &rows)
        .map_err(|e| Failure::Failed(format!("cannot draw the plots: {e}")))?;
    println!("{table}");
    println!("written to {}", args.out.display());
    Ok(())
}

fn simulator_line(row: &Row) -> String {
    let r = &row.report;
    let mut line = format!(
        "simulator: {:.1} s wall, {:.0}k events/s",
        row.wall.as_secs_f64(),
        r.events as f64 / row.wall.as_secs_f64().max(1e-3) / 1000.0
    );
    if let Some(peak) = row.peak_memory {
        let nodes = r.nodes + r.departures;
        let _ = write!(
            line,
            ", peak memory {:.0} MiB ({:.0} KiB per simulated node, departed ones included)",
            peak as f64 / (1 << 20) as f64,
            peak as f64 / 1024.0 / nodes.max(1) as f64
        );
    }
    line
}

fn write(path: &Path, text: &str) -> Result<(), Failure> {
    std::fs::write(path, text)
        .map_err(|e| Failure::Failed(format!("cannot write {}: {e}", path.display())))
}

fn write_samples(out: &Path, r: &InternetReport) -> Result<(), Failure> {
    let mut csv = String::from(
        "minute,online,found_reannounced,found_once,table_live,table_departed,table_unreachable,size_ratio_median,queries_in_per_node_per_s\n",
    );
    for s in &r.samples {
        let _ = writeln!(
            csv,
            "{:.1},{},{:.4},{:.4},{:.4},{:.4},{:.4},{:.3},{:.4}",
            s.minute,
            s.online,
            s.found_reannounced,
            s.found_once,
            s.table_live,
            s.table_departed,
            s.table_unreachable,
            s.size_ratio_median,
            s.queries_in_per_node
        );
    }
    write(&out.join(format!("samples-{}.csv", r.nodes)), &csv)
}

fn summary(rows: &[Row]) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut t = String::from(
        "| N | lookups | found peer | exact 8 | ≥6 of 8 | lookup median / p90 / p99 (ms) | first peer median / p90 / p99 (ms) | askers not on slow links: first peer median / p99 (ms) | hops | queries | tables live | size est. p10 / median / p90 | queries/s in p50 / p99 | wall (s) | events/s | memory/node (KiB) |\n| ---: | ---: | ---: | ---: | ---: | --- | --- | --- | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: |\n",
    );
    for row in rows {
        let r = &row.report;
        let [t50, t90, t99] = r.lookup_time();
        let [f50, f90, f99] = r.first_peer_time();
        let (_, [o50, _, o99]) = r.ordinary_link_times();
        let mem = row.peak_memory.map_or("?".into(), |p| {
            format!(
                "{:.0}",
                p as f64 / 1024.0 / (r.nodes + r.departures).max(1) as f64
            )
        });
        let _ = writeln!(
            t,
            "| {} | {} | {:.1}% | {:.1}% | {:.1}% | {:.0} / {:.0} / {:.0} | {:.0} / {:.0} / {:.0} | {:.0} / {:.0} | {:.2} | {:.1} | {:.1}% | {:.2} / {:.2} / {:.2} | {:.2} / {:.2} | {:.0} | {:.0}k | {} |",
            r.nodes,
            r.lookups,
            100.0 * r.found_rate(),
            100.0 * r.exact_rate(),
            100.0 * r.nearly as f64 / r.lookups.max(1) as f64,
            ms(t50), ms(t90), ms(t99),
            ms(f50), ms(f90), ms(f99),
            ms(o50), ms(o99),
            r.mean_hops(),
            r.mean_queries(),
            100.0 * r.table_live(),
            r.size_ratio[0], r.size_ratio[1], r.size_ratio[2],
            r.queries_in_per_s[0], r.queries_in_per_s[1],
            row.wall.as_secs_f64(),
            r.events as f64 / row.wall.as_secs_f64().max(1e-3) / 1000.0,
            mem
        );
    }
    t
}

type PlotResult = Result<(), Box<dyn std::error::Error>>;

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// One line of a plot.
struct Line {
    label: String,
    points: Vec<(f64, f64)>,
}

/// A plot of `lines` to `path`; `log_x` for figures against N (drawn on
/// log10 N, labelled at the powers of ten).
fn plot(path: &Path, title: &str, x: &str, y: &str, log_x: bool, lines: &[Line]) -> PlotResult {
    let lines: Vec<Line> = lines
        .iter()
        .map(|l| Line {
            label: l.label.clone(),
            points: l
                .points
                .iter()
                .map(|&(px, py)| (if log_x { px.log10() } else { px }, py))
                .collect(),
        })
        .collect();
    let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let xs = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
    let ys = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
    let (x_lo, x_hi) = xs.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let y_hi = ys.fold(0.0f64, f64::max) * 1.1 + 1e-9;
    let pad = if log_x { 0.15 } else { 0.0 };
    let (x_lo, x_hi) = if x_lo >= x_hi {
        (x_lo - 0.5, x_hi + 0.5)
    } else {
        (x_lo - pad, x_hi + pad)
    };
    let power_of_ten = |v: &f64| {
        if (v - v.round()).abs() < 1e-6 {
            format!("{:.0}", 10f64.powf(v.round()))
        } else {
            String::new()
        }
    };
    let plain = |v: &f64| format!("{v:.0}");
    let x_format: &dyn Fn(&f64) -> String = if log_x { &power_of_ten } else { &plain };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x_lo..x_hi, 0.0..y_hi)?;
    chart
        .configure_mesh()
        .x_desc(x)
        .y_desc(y)
        .x_labels(if log_x { 30 } else { 10 })
        .x_label_formatter(x_format)
        .draw()?;
    for (i, line) in lines.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(line.points.clone(), color.stroke_width(2)))?
            .label(line.label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart.draw_series(
            line.points
                .iter()
                .map(|&p| Circle::new(p, 3, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::MiddleRight)
        .draw()?;
    root.present()?;
    Ok(())
}

fn plot_all(out: &Path, rows: &[Row]) -> PlotResult {
    let n = |r: &Row| r.report.nodes as f64;
    let against_n = |label: &str, f: &dyn Fn(&InternetReport) -> f64| Line {
        label: label.into(),
        points: rows.iter().map(|r| (n(r), f(&r.report))).collect(),
    };
    let secs = |d: Duration| d.as_secs_f64();
    plot(
        &out.join("lookups.svg"),
        "get_peers lookups that succeed",
        "nodes (N)",
        "% of lookups",
        true,
        &[
            against_n("found the announced peer", &|r| 100.0 * r.found_rate()),
            against_n("found the true 8 closest", &|r| 100.0 * r.exact_rate()),
            against_n("found at least 6 of them", &|r| {
                100.0 * r.nearly as f64 / r.lookups.max(1) as f64
            }),
        ],
    )?;
    plot(
        &out.join("lookup-time.svg"),
        "get_peers lookup time (virtual)",
        "nodes (N)",
        "seconds",
        true,
        &[
            against_n("to the end: median", &|r| secs(r.lookup_time()[0])),
            against_n("to the end: p90", &|r| secs(r.lookup_time()[1])),
            against_n("to the end: p99", &|r| secs(r.lookup_time()[2])),
            against_n("to the first peer: median", &|r| {
                secs(r.first_peer_time()[0])
            }),
            against_n("to the first peer: p90", &|r| secs(r.first_peer_time()[1])),
            against_n("to the first peer: p99", &|r| secs(r.first_peer_time()[2])),
        ],
    )?;
    plot(
        &out.join("cost.svg"),
        "cost per lookup and per node",
        "nodes (N)",
        "count",
        true,
        &[
            against_n("hops per lookup", &|r| r.mean_hops()),
            against_n("queries per lookup", &|r| r.mean_queries()),
            against_n("queries/s received per node, p99", &|r| {
                r.queries_in_per_s[1]
            }),
            against_n("queries/s sent per node, p99", &|r| r.queries_out_per_s[1]),
        ],
    )?;
    plot(
        &out.join("size-estimate.svg"),
        "network size estimate / true N (nodes online)",
        "nodes (N)",
        "ratio",
        true,
        &[
            against_n("p10", &|r| r.size_ratio[0]),
            against_n("median", &|r| r.size_ratio[1]),
            against_n("p90", &|r| r.size_ratio[2]),
        ],
    )?;
    let over_time = |f: &dyn Fn(&dhtd_protocol::sim::Sample) -> f64, label: &str| -> Vec<Line> {
        rows.iter()
            .map(|r| Line {
                label: format!("{label}N = {}", r.report.nodes),
                points: r.report.samples.iter().map(|s| (s.minute, f(s))).collect(),
            })
            .collect()
    };
    let mut findable = over_time(&|s| 100.0 * s.found_once, "announced once, ");
    findable.extend(over_time(
        &|s| 100.0 * s.found_reannounced,
        "re-announced every 15 min, ",
    ));
    plot(
        &out.join("findable.svg"),
        "announces still found, over simulated time",
        "minutes after the announce",
        "% found",
        false,
        &findable,
    )?;
    plot(
        &out.join("tables.svg"),
        "routing-table entries that are live (online, reachable)",
        "simulated minutes",
        "% of entries",
        false,
        &over_time(&|s| 100.0 * s.table_live, ""),
    )?;
    Ok(())
}
