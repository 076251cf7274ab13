//! Starting and stopping the DHT at run time, as rTorrent's `dht` setting:
//! `on` (start at once), `off` (not running until started), and `auto`
//! (start on the first request, stop after a time without requests).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Clock;

use parking_lot::Mutex;

use crate::{Config, Dht, Runtime, StartError};

/// When the DHT runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Running from the start until stopped. The daemon's default.
    On,
    /// Not running until [`DhtService::start`].
    Off,
    /// Started by the first [`DhtService::handle`] call, stopped (its table
    /// saved) after `idle` without one, started again by the next.
    Auto {
        /// Time without requests before the DHT stops.
        idle: Duration,
    },
}

struct State {
    running: Option<Dht>,
    last_used: Instant,
    watchdog: bool,
}

/// A DHT node that an application starts and stops at run time.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use dhtd::{Config, DhtService, Mode};
///
/// let config = Config::local("127.0.0.1:0".parse()?, &[]);
/// let service = DhtService::new(config, Mode::Auto { idle: Duration::from_secs(900) }, None)?;
/// assert!(!service.is_running());
/// let dht = service.handle()?.expect("in auto mode a request starts the node");
/// assert!(service.is_running());
/// service.stop().await;
/// assert!(!service.is_running());
/// # drop(dht);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DhtService {
    config: Config,
    /// The node's clock: idleness is measured on it, so a test with a
    /// manual clock decides when the node has been idle.
    clock: Clock,
    runtime: Option<Runtime>,
    mode: Mode,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for DhtService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhtService")
            .field("mode", &self.mode)
            .field("running", &self.is_running())
            .finish()
    }
}

impl DhtService {
    /// A service for `config`; with [`Mode::On`] the node starts now.
    pub fn new(
        config: Config,
        mode: Mode,
        runtime: Option<&Runtime>,
    ) -> Result<DhtService, StartError> {
        let now = config.clock.now();
        let service = DhtService {
            clock: config.clock.clone(),
            config,
            runtime: runtime.cloned(),
            mode,
            state: Arc::new(Mutex::new(State {
                running: None,
                last_used: now,
                watchdog: false,
            })),
        };
        if mode == Mode::On {
            service.start()?;
        }
        Ok(service)
    }

    /// Starts the node if it is not running; returns its handle.
    pub fn start(&self) -> Result<Dht, StartError> {
        let mut state = self.state.lock();
        state.last_used = self.clock.now();
        if let Some(h) = &state.running {
            return Ok(h.clone());
        }
        let mut builder = Dht::builder(self.config.clone());
        if let Some(rt) = &self.runtime {
            builder = builder.runtime(rt);
        }
        let handle = builder.start()?;
        state.running = Some(handle.clone());
        if let Mode::Auto { idle } = self.mode {
            if !state.watchdog {
                state.watchdog = true;
                self.spawn_watchdog(idle);
            }
        }
        Ok(handle)
    }

    /// Stops the node (saving its table) if it is running.
    pub async fn stop(&self) {
        let running = self.state.lock().running.take();
        if let Some(h) = running {
            h.shutdown().await;
        }
    }

    /// The running node's handle. In [`Mode::Auto`] this starts the node
    /// if needed and counts as use; otherwise `None` when stopped.
    pub fn handle(&self) -> Result<Option<Dht>, StartError> {
        if let Mode::Auto { .. } = self.mode {
            return self.start().map(Some);
        }
        let mut state = self.state.lock();
        state.last_used = self.clock.now();
        Ok(state.running.clone())
    }

    /// Whether the node is running.
    pub fn is_running(&self) -> bool {
        self.state.lock().running.is_some()
    }

    /// Stops the node after `idle` without use. A thread of its own, so it
    /// works whatever executor the application runs.
    fn spawn_watchdog(&self, idle: Duration) {
        let state = Arc::downgrade(&self.state);
        let clock = self.clock.clone();
        // Real time between checks, whatever the clock: with a manual one,
        // the check notices a move within this long.
        let check = (idle / 4).clamp(Duration::from_millis(10), Duration::from_millis(250));
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
            else {
                return;
            };
            while let Some(state) = state.upgrade() {
                let idle_node = {
                    let mut s = state.lock();
                    if s.running.is_some()
                        && clock.now().saturating_duration_since(s.last_used) >= idle
                    {
                        s.running.take()
                    } else {
                        None
                    }
                };
                drop(state);
                if let Some(h) = idle_node {
                    tracing::info!(target: "dht::node", "stopping the DHT after {idle:?} without requests");
                    rt.block_on(h.shutdown());
                }
                std::thread::sleep(check);
            }
        });
    }
}
