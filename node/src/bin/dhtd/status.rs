//! The status page at `/` on the HTTP listener, for an operator without
//! Grafana: the routing tables as pictures (buckets by depth, nodes by
//! state), traffic and drops over the last ten minutes, the store, lookup
//! times, the warnings and the DHT size estimate. Everything is drawn here,
//! on the server, as inline SVG: the page loads nothing else (it works
//! offline) and refreshes itself every 5 s without a script.
//!
//! The figures of the pictures are also the elements' `data-*` attributes,
//! so that a test in a real browser can read back what it drew.

use std::collections::VecDeque;
use std::fmt::Write;
use std::time::{Duration, Instant};

use dhtd::{Counters, Stats, Warning};
use dhtd_protocol::telemetry::Label;
use parking_lot::Mutex;

/// How often a sample of the counters is kept, and how many.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(5);
const SAMPLES: usize = 120;

/// Counters at one moment.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    packets_in: u64,
    packets_out: u64,
    dropped: u64,
    /// `dht_lookup_duration_seconds`: cumulative bucket counts by upper
    /// bound, the sum and the count, over every kind of lookup.
    lookups: Histogram,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Histogram {
    buckets: Vec<(f64, u64)>,
    sum: f64,
    count: u64,
}

/// The last ten minutes of counters.
#[derive(Debug, Default)]
pub(crate) struct History {
    samples: Mutex<VecDeque<Sample>>,
}

impl History {
    /// Keeps a sample of `traffic` and of the exporter's `scrape`.
    pub(crate) fn record(&self, traffic: &Counters, scrape: &str) {
        let sample = Sample {
            at: Instant::now(),
            packets_in: traffic.get("dht_packets_received_total", &[]),
            packets_out: traffic.get("dht_packets_sent_total", &[]),
            dropped: traffic.get("dht_packets_dropped_total", &[]),
            lookups: histogram(scrape, "dht_lookup_duration_seconds"),
        };
        let mut samples = self.samples.lock();
        if samples.len() == SAMPLES {
            samples.pop_front();
        }
        samples.push_back(sample);
    }
}

/// A histogram of the Prometheus text `scrape`, summed over its labels.
fn histogram(scrape: &str, name: &str) -> Histogram {
    let mut h = Histogram::default();
    let bucket = format!("{name}_bucket{{");
    for line in scrape.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        if let Some(labels) = series.strip_prefix(&bucket) {
            let le = labels
                .split("le=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next());
            let (Some(le), Ok(n)) = (le, value.parse::<f64>()) else {
                continue;
            };
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::INFINITY)
            };
            match h.buckets.iter_mut().find(|(b, _)| *b == le) {
                Some((_, count)) => *count += n as u64,
                None => h.buckets.push((le, n as u64)),
            }
        } else if series.starts_with(&format!("{name}_sum")) {
            h.sum += value.parse::<f64>().unwrap_or(0.0);
        } else if series.starts_with(&format!("{name}_count")) {
            h.count += value.parse::<u64>().unwrap_or(0);
        }
    }
    h.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    h
}

/// The `q` quantile of the lookups between two histograms, by the upper
/// bound of the bucket it falls in (as Prometheus estimates it, coarser).
fn quantile(old: &Histogram, new: &Histogram, q: f64) -> Option<f64> {
    let total = new.count.checked_sub(old.count).filter(|n| *n > 0)?;
    let rank = (q * total as f64).ceil() as u64;
    new.buckets.iter().find_map(|(le, n)| {
        let before = old
            .buckets
            .iter()
            .find(|(b, _)| b == le)
            .map_or(0, |(_, c)| *c);
        (n.saturating_sub(before) >= rank).then_some(*le)
    })
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str =
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}\
h1{font-size:1.3em;margin:0 0 .2em}h2{font-size:1.05em;margin:1.2em 0 .3em}\
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.6em 1em;margin:.6em 0}\
.ok{color:#1a7f37}.warn{color:#b42318;font-weight:600}table{border-collapse:collapse}\
td{padding:1px 12px 1px 0}.legend span{display:inline-block;margin-right:1em}\
.sw{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}\
small{color:#666}";

const GOOD: &str = "#2da44e";
const QUESTIONABLE: &str = "#d4a72c";
const BAD: &str = "#cf222e";
const CACHED: &str = "#8c959f";

/// The page.
pub(crate) fn render(stats: &Stats, history: &History, nodes_in_process: usize) -> String {
    let mut page = String::with_capacity(16 * 1024);
    let _ = write!(
        page,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"refresh\" content=\"5\"><title>dhtd {}</title><style>{STYLE}</style></head><body>",
        stats.own_id
    );
    let addrs: Vec<String> = stats
        .families
        .iter()
        .map(|f| f.local_addr.to_string())
        .collect();
    let _ = write!(
        page,
        "<h1>dhtd node {}</h1><p>on {}; up {}s; bootstrap {}{}{}</p>",
        stats.own_id,
        escape(&addrs.join(" and ")),
        stats.uptime.as_secs(),
        if stats.bootstrap_complete {
            "complete"
        } else {
            "in progress"
        },
        if stats.read_only { "; read-only" } else { "" },
        if nodes_in_process > 1 {
            format!("; node 0 of the {nodes_in_process} nodes of this process")
        } else {
            String::new()
        }
    );
    warnings(&mut page, stats);
    for family in &stats.families {
        routing_table(&mut page, family);
    }
    traffic(&mut page, history);
    store(&mut page, stats);
    lookups(&mut page, history);
    page.push_str("<p><small>Refreshes every 5 s. The same figures: /stats, /stats.json, /metrics.</small></p></body></html>\n");
    page
}

fn warnings(page: &mut String, stats: &Stats) {
    page.push_str("<section><h2>Warnings</h2><table id=\"warnings\">");
    for w in Warning::ALL {
        let on = stats.warnings.contains(w);
        let _ = write!(
            page,
            "<tr data-warning=\"{}\" data-on=\"{on}\"><td class=\"{}\">{}</td><td>{}</td></tr>",
            w.label(),
            if on { "warn" } else { "ok" },
            if on { "WARNING" } else { "ok" },
            escape(&w.to_string())
        );
    }
    page.push_str("</table></section>");
}

fn routing_table(page: &mut String, f: &dhtd::FamilyStats) {
    let buckets = &f.routing.buckets;
    let (width, height) = (720.0, 170.0);
    let top = buckets
        .iter()
        .map(|b| b.good + b.questionable + b.bad + b.replacements)
        .max()
        .unwrap_or(0)
        .max(8) as f64;
    // At most 40 px a bucket: a young table's few buckets stay bars.
    let slot = (width / buckets.len().max(1) as f64).min(40.0);
    let scale = (height - 20.0) / top;
    let t = &f.routing.total;
    let _ = write!(
        page,
        "<section><h2>{} routing table</h2><p>{} nodes: {} good, {} questionable, {} bad, {} cached, in {} buckets; about {} nodes in the DHT</p>\
<svg id=\"table-{}\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" data-nodes=\"{}\" data-good=\"{}\" data-buckets=\"{}\" data-estimate=\"{}\" role=\"img\">\
<title>Nodes per bucket, the farthest (bucket 0) on the left</title>",
        f.family,
        f.nodes(),
        t.good,
        t.questionable,
        t.bad,
        t.replacements,
        buckets.len(),
        f.estimated_dht_size.unwrap_or(0),
        f.family,
        f.nodes(),
        t.good,
        buckets.len(),
        f.estimated_dht_size.unwrap_or(0),
    );
    for (i, b) in buckets.iter().enumerate() {
        let x = i as f64 * slot + 1.0;
        let mut y = height - 14.0;
        for (state, count, color) in [
            ("good", b.good, GOOD),
            ("questionable", b.questionable, QUESTIONABLE),
            ("bad", b.bad, BAD),
            ("cached", b.replacements, CACHED),
        ] {
            let h = count as f64 * scale;
            y -= h;
            let _ = write!(
                page,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{color}\" data-bucket=\"{i}\" data-state=\"{state}\" data-count=\"{count}\"/>",
                (slot - 2.0).max(1.0)
            );
        }
        let _ = write!(
            page,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"9\" text-anchor=\"middle\">{i}</text>",
            x + slot / 2.0 - 1.0,
            height - 3.0
        );
    }
    let _ = write!(
        page,
        "</svg><div class=\"legend\"><span><i class=\"sw\" style=\"background:{GOOD}\"></i>good</span>\
<span><i class=\"sw\" style=\"background:{QUESTIONABLE}\"></i>questionable</span>\
<span><i class=\"sw\" style=\"background:{BAD}\"></i>bad</span>\
<span><i class=\"sw\" style=\"background:{CACHED}\"></i>replacement cache</span></div></section>"
    );
}

/// Rates between consecutive samples.
fn rates(samples: &[Sample], field: impl Fn(&Sample) -> u64) -> Vec<f64> {
    samples
        .windows(2)
        .map(|w| {
            let dt = w[1].at.duration_since(w[0].at).as_secs_f64().max(1e-3);
            field(&w[1]).saturating_sub(field(&w[0])) as f64 / dt
        })
        .collect()
}

fn traffic(page: &mut String, history: &History) {
    let samples: Vec<Sample> = history.samples.lock().iter().cloned().collect();
    let series = [
        ("in", GOOD, rates(&samples, |s| s.packets_in)),
        ("out", "#0969da", rates(&samples, |s| s.packets_out)),
        ("dropped", BAD, rates(&samples, |s| s.dropped)),
    ];
    let (width, height) = (720.0, 150.0);
    let top = series
        .iter()
        .flat_map(|(_, _, v)| v.iter().copied())
        .fold(1.0_f64, f64::max);
    let last = |i: usize| series[i].2.last().copied().unwrap_or(0.0);
    let _ = write!(
        page,
        "<section><h2>Traffic, the last {} minutes</h2><p>now {:.0} packets/s in, {:.0} out, {:.0} dropped (peak {top:.0}/s)</p>\
<svg id=\"traffic\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" data-samples=\"{}\" data-in=\"{:.1}\" data-out=\"{:.1}\" data-dropped=\"{:.1}\" role=\"img\">\
<title>Packets per second received, sent and dropped</title>\
<rect x=\"0\" y=\"0\" width=\"{width}\" height=\"{height}\" fill=\"#fff\" stroke=\"#ddd\"/>",
        SAMPLES as u64 * SAMPLE_EVERY.as_secs() / 60,
        last(0),
        last(1),
        last(2),
        samples.len(),
        last(0),
        last(1),
        last(2),
    );
    let _ = write!(
        page,
        "<text x=\"4\" y=\"12\" font-size=\"10\" fill=\"#666\">{top:.0}/s</text>\
<text x=\"4\" y=\"{}\" font-size=\"10\" fill=\"#666\">0</text>",
        height - 6.0
    );
    let step = width / (SAMPLES - 1) as f64;
    for (name, color, values) in &series {
        let offset = SAMPLES.saturating_sub(values.len() + 1);
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let x = (offset + i + 1) as f64 * step;
                let y = height - 4.0 - v / top * (height - 10.0);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ = write!(
            page,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\" data-series=\"{name}\"/>",
            points.join(" ")
        );
    }
    let _ = write!(
        page,
        "</svg><div class=\"legend\"><span><i class=\"sw\" style=\"background:{GOOD}\"></i>received</span>\
<span><i class=\"sw\" style=\"background:#0969da\"></i>sent</span>\
<span><i class=\"sw\" style=\"background:{BAD}\"></i>dropped</span></div></section>"
    );
}

fn store(page: &mut String, stats: &Stats) {
    let t = &stats.traffic;
    let _ = write!(
        page,
        "<section id=\"store\" data-info-hashes=\"{}\" data-peers=\"{}\"><h2>Store</h2><table>\
<tr><td>info hashes</td><td>{} of {}</td></tr><tr><td>peers</td><td>{}</td></tr>\
<tr><td>BEP 44 items</td><td>{} ({} bytes)</td></tr><tr><td>announces stored</td><td>{}</td></tr></table></section>",
        stats.store.info_hashes,
        stats.store.peers,
        stats.store.info_hashes,
        stats.store_info_hashes_limit,
        stats.store.peers,
        t.get("dht_items_stored", &[]),
        t.get("dht_item_bytes", &[]),
        t.get("dht_announces_stored_total", &[]),
    );
}

fn lookups(page: &mut String, history: &History) {
    let samples = history.samples.lock();
    let (Some(first), Some(last)) = (samples.front(), samples.back()) else {
        page.push_str("<section><h2>Lookups</h2><p>no sample yet</p></section>");
        return;
    };
    let (old, new) = (&first.lookups, &last.lookups);
    let count = new.count.saturating_sub(old.count);
    let seconds = |v: Option<f64>| {
        v.filter(|s| s.is_finite())
            .map_or_else(|| "-".to_owned(), |s| format!("≤ {s} s"))
    };
    let mean = (count > 0).then(|| (new.sum - old.sum) / count as f64);
    let _ = write!(
        page,
        "<section id=\"lookups\" data-count=\"{count}\"><h2>Lookups, the last {} s</h2><table>\
<tr><td>finished</td><td>{count}</td></tr><tr><td>mean time</td><td>{}</td></tr>\
<tr><td>median</td><td>{}</td></tr><tr><td>90th percentile</td><td>{}</td></tr></table></section>",
        last.at.duration_since(first.at).as_secs(),
        mean.map_or_else(|| "-".to_owned(), |m| format!("{m:.2} s")),
        seconds(quantile(old, new, 0.5)),
        seconds(quantile(old, new, 0.9)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_quantiles_come_from_the_bucket_deltas() {
        let scrape = |b: [u64; 3], sum: f64| {
            format!(
                "dht_lookup_duration_seconds_bucket{{kind=\"get_peers\",le=\"0.5\"}} {}\n\
dht_lookup_duration_seconds_bucket{{kind=\"get_peers\",le=\"1\"}} {}\n\
dht_lookup_duration_seconds_bucket{{kind=\"get_peers\",le=\"+Inf\"}} {}\n\
dht_lookup_duration_seconds_sum{{kind=\"get_peers\"}} {sum}\n\
dht_lookup_duration_seconds_count{{kind=\"get_peers\"}} {}\n",
                b[0], b[1], b[2], b[2]
            )
        };
        let old = histogram(&scrape([2, 2, 2], 0.4), "dht_lookup_duration_seconds");
        // Since then: 6 under 0.5 s, 3 between 0.5 and 1 s, 1 over.
        let new = histogram(&scrape([8, 11, 12], 6.4), "dht_lookup_duration_seconds");
        assert_eq!(new.count, 12);
        assert_eq!(quantile(&old, &new, 0.5), Some(0.5));
        assert_eq!(quantile(&old, &new, 0.9), Some(1.0));
        assert_eq!(quantile(&old, &new, 0.99), Some(f64::INFINITY));
        assert_eq!(quantile(&new, &new, 0.5), None, "no lookup in the window");
    }

    #[test]
    fn the_page_escapes_and_draws_every_bucket() {
        let stats = Stats::default();
        let history = History::default();
        let page = render(&stats, &history, 1);
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("http-equiv=\"refresh\""));
        assert!(!page.contains("<script"), "no script, nothing loaded");
        assert!(!page.contains("http://") && !page.contains("https://"));
        assert_eq!(
            escape("<a href=\"x\">&"),
            "&lt;a href=&quot;x&quot;&gt;&amp;"
        );
    }
}
