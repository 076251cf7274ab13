//! Prometheus export. The nodes count into their telemetry cells (the
//! catalogue is `dhtd_protocol::telemetry`) and push them through the
//! `metrics` facade once a second and when asked
//! ([`crate::DhtHandle::publish_metrics`]); this installs the Prometheus
//! recorder, describes every metric, and renders the text format for a
//! `/metrics` endpoint. An application that prefers its own recorder
//! installs that instead, before starting nodes, and calls [`describe`].

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

pub use dhtd_actors::metrics::describe;
pub use dhtd_protocol::telemetry::CATALOGUE;

/// The installed Prometheus recorder.
#[derive(Clone)]
pub struct Exporter {
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Exporter")
    }
}

impl Exporter {
    /// Installs the Prometheus recorder as the process's metrics recorder
    /// (once per process; a second call fails), with explicit histogram
    /// buckets, and describes every metric. Install it before starting
    /// nodes: they take their metric handles at start.
    pub fn install() -> Result<Exporter, BuildError> {
        let mut builder = PrometheusBuilder::new();
        for def in CATALOGUE.iter().filter(|d| !d.buckets.is_empty()) {
            builder =
                builder.set_buckets_for_metric(Matcher::Full(def.name.into()), def.buckets)?;
        }
        let handle = builder.install_recorder()?;
        describe();
        dhtd_actors::metrics::build_info(env!("CARGO_PKG_VERSION"));
        Ok(Exporter { handle })
    }

    /// The Prometheus text format of every metric now.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Housekeeping the recorder needs now and then (histogram buffers).
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}
