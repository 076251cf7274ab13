//! The threads a node runs on: an actix `System` and two Arbiters.
//!
//! | thread | actors | why there |
//! | --- | --- | --- |
//! | `net` | Socket, RateLimiter, RoutingTable, AnnounceStore | the whole serving path (a query in, its answer out) stays on one thread: each hop is a local queue, never a cross-thread wake-up, which is what an answer cost when they were apart (measured with `dhtd load`: 17 µs of CPU per reply across two threads, 9.6 µs on one) |
//! | `work` | Transactions, Lookups | our own queries and their answers, off the serving thread |
//! | system | Supervisor | API requests, bootstrap, saving; file writes and DNS go to a blocking pool |
//!
//! One [`Runtime`] can carry many nodes (a test swarm of hundreds of nodes
//! uses one); a node started without one gets its own.

use std::sync::Arc;
use std::thread::JoinHandle;

use actix_rt::{Arbiter, ArbiterHandle, System};
use parking_lot::Mutex;

/// An actix system with its Arbiters, running on its own threads so that an
/// application with its own async runtime (or none) can embed nodes.
///
/// Nodes started on one runtime share its three threads:
///
/// ```
/// use dhtd::{Config, Dht, Runtime};
///
/// let runtime = Runtime::new()?;
/// let nodes = (1..=3u8)
///     .map(|i| {
///         let config = Config::local(([127, 0, 7, i], 0).into(), &[]);
///         Dht::builder(config).runtime(&runtime).start()
///     })
///     .collect::<Result<Vec<Dht>, _>>()?;
/// assert_eq!(nodes.len(), 3);
/// // The threads end with the last node and the last clone of the runtime.
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    system: System,
    net: ArbiterHandle,
    work: ArbiterHandle,
    control: ArbiterHandle,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

impl Runtime {
    /// Starts the system thread and its two Arbiters.
    pub fn new() -> std::io::Result<Runtime> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("dhtd-system".into())
            .spawn(move || {
                let system = System::new();
                let handles = system.block_on(async {
                    let arbiters = [Arbiter::new(), Arbiter::new()];
                    let handles = arbiters.map(|a| a.handle());
                    (
                        System::current(),
                        handles,
                        System::current().arbiter().clone(),
                    )
                });
                if tx.send(handles).is_ok() {
                    // Returns when `System::stop` is called.
                    let _ = system.run();
                }
            })?;
        let (system, [net, work], control) = rx
            .recv()
            .map_err(|_| std::io::Error::other("the actix system thread did not start"))?;
        Ok(Runtime {
            inner: Arc::new(Inner {
                system,
                net,
                work,
                control,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    pub(crate) fn net(&self) -> &ArbiterHandle {
        &self.inner.net
    }
    pub(crate) fn work(&self) -> &ArbiterHandle {
        &self.inner.work
    }
    pub(crate) fn control(&self) -> &ArbiterHandle {
        &self.inner.control
    }

    /// Whether the calling thread is one of this runtime's (its system
    /// thread or an Arbiter): there, blocking on the runtime deadlocks.
    pub(crate) fn is_current_thread_ours(&self) -> bool {
        System::try_current().is_some_and(|s| s.id() == self.inner.system.id())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.system.stop();
        if let Some(t) = self.thread.lock().take() {
            // The system thread may be the one dropping us (a node's last
            // handle dropped inside an actor); never join ourselves.
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}
