//! Threads for the simulator's shards: `protocol/` starts none, so the
//! driver that wants a sharded simulation run at once lends them.

use dhtd_protocol::sim::Threads;

/// Each task on a thread of its own, the first on the caller's.
#[derive(Debug, Default, Clone, Copy)]
pub struct SimThreads;

impl Threads for SimThreads {
    fn run_together<'a>(&self, tasks: Vec<Box<dyn FnOnce() + Send + 'a>>) {
        let mut tasks = tasks.into_iter();
        let Some(first) = tasks.next() else {
            return;
        };
        std::thread::scope(|scope| {
            for task in tasks {
                scope.spawn(task);
            }
            first();
        });
    }
}
