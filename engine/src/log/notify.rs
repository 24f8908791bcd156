//! In-process wake-ups: the sequencer bumps a counter after every HEAD publication and
//! followers in the same process wait on it instead of polling the HEAD file.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// A publication counter with a condition variable.
#[derive(Debug, Default)]
pub struct Notify {
    generation: Mutex<u64>,
    changed: Condvar,
}

impl Notify {
    /// Records a publication and wakes every waiter.
    pub fn publish(&self) {
        let mut g = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        *g += 1;
        self.changed.notify_all();
    }

    /// The current publication count.
    pub fn current(&self) -> u64 {
        *self.generation.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until the count differs from `seen` or `timeout` passes.
    pub fn wait_past(&self, seen: u64, timeout: Duration) {
        let g = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self.changed.wait_timeout_while(g, timeout, |g| *g == seen);
    }
}
