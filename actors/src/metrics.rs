//! Export of a node's telemetry through the `metrics` facade.
//!
//! The catalogue ([`dhtd_protocol::telemetry::CATALOGUE`]) says what each
//! metric is; this module only moves values: [`describe`] hands the names,
//! units and help texts to the installed recorder, and [`MetricsExport`]
//! pushes what changed in a node's cells since its last push. Counters and
//! gauges are pushed as increments, so that the nodes of one process add
//! up; histogram samples are taken out of the node and recorded. With no
//! recorder installed every call is a no-op. The hot path never touches
//! the facade: it counts into the node's cells.

use dhtd_protocol::telemetry::{CellValue, Kind, Telemetry, Unit, BUILD_INFO, CATALOGUE};
use metrics::{Counter, Gauge, Histogram, Label};
use parking_lot::Mutex;

fn unit(u: Unit) -> metrics::Unit {
    match u {
        Unit::Count => metrics::Unit::Count,
        Unit::Bytes => metrics::Unit::Bytes,
        Unit::Seconds => metrics::Unit::Seconds,
    }
}

/// Describes every metric to the installed recorder (help text and unit).
/// Call once, after installing a recorder.
pub fn describe() {
    for def in CATALOGUE {
        match def.kind {
            Kind::Counter => metrics::describe_counter!(def.name, unit(def.unit), def.help),
            Kind::Gauge => metrics::describe_gauge!(def.name, unit(def.unit), def.help),
            Kind::Histogram => metrics::describe_histogram!(def.name, unit(def.unit), def.help),
        }
    }
}

/// Sets `dht_build_info{version}` to 1.
pub fn build_info(version: &'static str) {
    metrics::gauge!(BUILD_INFO.name, "version" => version).set(1.0);
}

#[derive(Debug)]
enum Handle {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

#[derive(Debug)]
struct Cells {
    handles: Vec<Vec<Handle>>,
    /// What was pushed of each cell so far.
    pushed: Vec<Vec<u64>>,
}

/// One node's handles on the installed recorder, and what it pushed.
#[derive(Debug)]
pub struct MetricsExport {
    cells: Mutex<Cells>,
}

impl Default for MetricsExport {
    /// Handles on the recorder installed now (install it before starting
    /// nodes).
    fn default() -> Self {
        let handles = CATALOGUE
            .iter()
            .filter(|def| def.name != BUILD_INFO.name)
            .map(|def| {
                (0..def.cells)
                    .map(|cell| {
                        let labels: Vec<Label> = (def.labels)(cell)
                            .into_iter()
                            .map(|(k, v)| Label::new(k, v))
                            .collect();
                        match def.kind {
                            Kind::Counter => Handle::Counter(metrics::counter!(def.name, labels)),
                            Kind::Gauge => Handle::Gauge(metrics::gauge!(def.name, labels)),
                            Kind::Histogram => {
                                Handle::Histogram(metrics::histogram!(def.name, labels))
                            }
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>();
        let pushed = handles.iter().map(|h| vec![0; h.len()]).collect();
        MetricsExport {
            cells: Mutex::new(Cells { handles, pushed }),
        }
    }
}

impl MetricsExport {
    /// Pushes what changed in `telemetry` since the last call.
    pub fn sync(&self, telemetry: &Telemetry) {
        let mut guard = self.cells.lock();
        let Cells { handles, pushed } = &mut *guard;
        telemetry.for_each(|metric, cell, value| {
            let (Some(handle), Some(last)) = (
                handles.get(metric).and_then(|h| h.get(cell)),
                pushed.get_mut(metric).and_then(|p| p.get_mut(cell)),
            ) else {
                return;
            };
            match (handle, value) {
                (Handle::Counter(c), CellValue::Level(v)) => {
                    let v = v.load(std::sync::atomic::Ordering::Relaxed);
                    if v > *last {
                        c.increment(v - *last);
                        *last = v;
                    }
                }
                (Handle::Gauge(g), CellValue::Level(v)) => {
                    let v = v.load(std::sync::atomic::Ordering::Relaxed);
                    if v != *last {
                        g.increment(v as f64 - *last as f64);
                        *last = v;
                    }
                }
                (Handle::Histogram(h), CellValue::Samples(samples)) => {
                    for s in samples {
                        h.record(s);
                    }
                }
                _ => {}
            }
        });
    }
}
