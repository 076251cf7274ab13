//! Threads for the simulator's shards: `protocol/` starts none, so the
//! driver that wants a sharded simulation run at once lends them.

use dhtd_protocol::sim::Threads;

/// Each task on a thread of its own, the first on the caller's; the
/// simulation runs as many tasks as `threads`.
#[derive(Debug, Clone, Copy)]
pub struct SimThreads {
    /// How many threads: the caller's and one more for each after it.
    pub threads: usize,
}

impl Threads for SimThreads {
    fn count(&self) -> usize {
        self.threads
    }

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
