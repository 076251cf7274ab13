//! Prometheus export. The nodes count into their telemetry cells (the
//! catalogue is `dhtd_protocol::telemetry`) and push them through the
//! `metrics` facade once a second and when asked
//! ([`crate::Dht::publish_metrics`]); this installs the Prometheus
//! recorder, describes every metric, and renders the text format for a
//! `/metrics` endpoint. An application that prefers its own recorder
//! installs that instead, before starting nodes, and calls [`describe`].

use dhtd_protocol::telemetry::CATALOGUE;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// Describes every metric (help text and unit) to the installed `metrics`
/// recorder; [`Exporter::install`] does it for its own.
pub fn describe() {
    dhtd_actors::metrics::describe();
}

/// Why the Prometheus recorder could not be installed (most often: a
/// recorder is installed already).
#[derive(Debug, thiserror::Error)]
#[error("cannot install the Prometheus recorder: {0}")]
pub struct InstallError(#[source] BuildError);

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
    pub fn install() -> Result<Exporter, InstallError> {
        let mut builder = PrometheusBuilder::new();
        for def in CATALOGUE.iter().filter(|d| !d.buckets.is_empty()) {
            builder = builder
                .set_buckets_for_metric(Matcher::Full(def.name.into()), def.buckets)
                .map_err(InstallError)?;
        }
        let handle = builder.install_recorder().map_err(InstallError)?;
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
