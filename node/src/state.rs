//! The state dir as a running node uses it: which node id to run with,
//! saving the routing table, and what became of the latest write.
//!
//! A write that fails (a read-only or full disk) is logged, counted in
//! `dht_state_save_failures_total`, raises `Warning::StateNotSaved` until a
//! write succeeds, and is kept for [`StateDir::last_error`], so that
//! `dhtd run` can exit with a failure. A node id that could not be written
//! is written again with each table save, so that a disk that fills up for
//! a while does not cost the node its id at the next start. The files
//! themselves are [`crate::persist`]'s.

use std::path::PathBuf;
use std::sync::Arc;

use dhtd_protocol::telemetry::{Telemetry, Warning};
use dhtd_protocol::NodeId;
use parking_lot::Mutex;
use rand::rngs::StdRng;

use crate::persist::{self, SavedTable, StateError};

/// A node's state dir.
pub(crate) struct StateDir {
    dir: PathBuf,
    telemetry: Arc<Telemetry>,
    /// A node id still to be written: its first write failed.
    pending_id: Mutex<Option<NodeId>>,
    /// The error of the latest write, if it failed.
    last_error: Mutex<Option<Arc<StateError>>>,
    /// One write at a time: the periodic save, the shutdown's and a BEP 42
    /// id's write the same temporary files. Taken on the threads that
    /// write, never on an Arbiter.
    writing: Mutex<()>,
}

impl StateDir {
    /// Opens `dir`, removing what a crash mid-write left there.
    pub(crate) fn open(dir: PathBuf, telemetry: Arc<Telemetry>) -> Arc<StateDir> {
        for tmp in persist::remove_stale_temp_files(&dir) {
            tracing::info!(target: "dht::state", file = %tmp.display(), "removed a temporary file left by an interrupted write");
        }
        Arc::new(StateDir {
            dir,
            telemetry,
            pending_id: Mutex::new(None),
            last_error: Mutex::new(None),
            writing: Mutex::new(()),
        })
    }

    /// The saved node id, or a fresh one, saved. A saved id that cannot be
    /// read is left alone (the node runs with a fresh one this time), so
    /// that a fault of the disk never replaces a good id.
    pub(crate) fn node_id(&self, rng: &mut StdRng) -> NodeId {
        match persist::load_node_id(&self.dir) {
            Ok(Some(id)) => return id,
            Ok(None) => {}
            Err(e @ StateError::Corrupt { .. }) => {
                tracing::warn!(target: "dht::state", error = %e, "replacing the saved node id");
            }
            Err(e @ StateError::Io { .. }) => {
                let id = NodeId::random(rng);
                tracing::warn!(target: "dht::state", error = %e, "cannot read the saved node id; running with {id} this time and leaving the file alone");
                return id;
            }
        }
        let id = NodeId::random(rng);
        self.save_node_id(id);
        id
    }

    /// Writes `id` as the id of the next start (blocking; off the actor
    /// threads). If it fails, it is written again with the next table save.
    pub(crate) fn save_node_id(&self, id: NodeId) {
        let _one_at_a_time = self.writing.lock();
        let written = self.write_id(id);
        self.settle(written);
    }

    fn write_id(&self, id: NodeId) -> Result<(), StateError> {
        let written = self.note("node id", persist::save_node_id(&self.dir, &id));
        *self.pending_id.lock() = written.is_err().then_some(id);
        written
    }

    /// Saves the routing table's `nodes` (and a node id still to be
    /// written), on the blocking pool. An empty table is not written: it
    /// would replace a cache that may serve the next start (a node whose
    /// network is down loses every node).
    pub(crate) async fn save_table(self: &Arc<Self>, table: SavedTable) {
        let state = self.clone();
        let written = actix_rt::task::spawn_blocking(move || {
            let _one_at_a_time = state.writing.lock();
            let pending = *state.pending_id.lock();
            let id = pending.map(|id| state.write_id(id));
            if table.nodes.is_empty() {
                tracing::debug!(target: "dht::state", "the routing table is empty; the saved one is kept");
                return id;
            }
            let written = persist::save_table(&state.dir, &table);
            if written.is_ok() {
                tracing::debug!(target: "dht::state", nodes = table.nodes.len(), "routing table saved");
            }
            let table = state.note("routing table", written);
            // A failed id write is not hidden by a table written after it.
            Some(id.unwrap_or(Ok(())).and(table))
        })
        .await;
        match written {
            Ok(Some(outcome)) => self.settle(outcome),
            Ok(None) => {}
            Err(e) => {
                // The write itself never panics; this is the pool gone at exit.
                let error = StateError::Io {
                    path: self.dir.join(persist::TABLE_FILE),
                    source: std::io::Error::other(e.to_string()),
                };
                let outcome = self.note("routing table", Err(error));
                self.settle(outcome);
            }
        }
    }

    /// Logs and counts a write that failed.
    fn note(&self, what: &str, written: Result<(), StateError>) -> Result<(), StateError> {
        if let Err(e) = &written {
            tracing::warn!(target: "dht::state", error = %e, "cannot save the {what}");
            // Raised before the count: a scrape that sees the failure
            // counted sees the warning too.
            self.telemetry.warnings.set(Warning::StateNotSaved, 1);
            self.telemetry.state_save_failures.incr(());
        }
        written
    }

    /// The outcome of the latest save: the warning and the last error.
    fn settle(&self, outcome: Result<(), StateError>) {
        let failed = outcome.is_err();
        self.telemetry
            .warnings
            .set(Warning::StateNotSaved, u64::from(failed));
        *self.last_error.lock() = outcome.err().map(Arc::new);
    }

    /// The error of the latest write, if it failed.
    pub(crate) fn last_error(&self) -> Option<Arc<StateError>> {
        self.last_error.lock().clone()
    }
}
