//! The syncer thread: makes a written prefix durable while the sequencer goes on sealing and
//! writing what follows.
//!
//! When a group needs durability and the sequencer has more work queued (or a sync is already
//! running), it hands the syncer a job: the file, the HEAD that describes exactly the bytes
//! written so far, and the group's waiters. The syncer takes every queued job, calls
//! `fdatasync` once (all jobs concern the active segment: the sequencer waits for the syncer to
//! be idle before it rolls, erases, closes or syncs inline), publishes the newest HEAD, and
//! wakes the waiters. HEAD is still published only after the bytes it describes are durable, and
//! in generation order: the sequencer assigns generations, and publishes HEAD itself only while
//! the syncer is idle.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::error::Error;
use crate::format::head::Head;
use crate::storage::StorageFile;

use super::notify::Notify;
use super::sequencer::{deliver, Delivery};

/// One durable point to reach.
pub struct SyncJob {
    pub file: Arc<dyn StorageFile>,
    pub file_name: String,
    pub head: Head,
    pub waiters: Delivery,
}

/// The sequencer's handle on its syncer thread.
pub struct SyncerHandle {
    jobs: Option<Sender<SyncJob>>,
    done: Receiver<u64>,
    thread: Option<JoinHandle<()>>,
    in_flight: usize,
}

impl std::fmt::Debug for SyncerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SyncerHandle {{ in_flight: {} }}", self.in_flight)
    }
}

fn poison_reason(poisoned: &Mutex<Option<String>>) -> Option<String> {
    poisoned.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// fsyncs the newest job's file once, publishes its HEAD, wakes everyone.
fn complete(
    mut jobs: Vec<SyncJob>,
    head_file: &Arc<dyn StorageFile>,
    notify: &Notify,
    poisoned: &Mutex<Option<String>>,
) -> u64 {
    let Some(newest) = jobs.last() else { return 0 };
    let durable_len = newest.head.durable_len;
    let result = match poison_reason(poisoned) {
        Some(reason) => Err(reason),
        None => newest
            .file
            .sync_data()
            .map_err(|e| Error::io(format!("syncing {}", newest.file_name), e))
            .and_then(|()| {
                head_file
                    .write_all_at(&newest.head.encode(), newest.head.copy_position())
                    .map_err(|e| Error::io("writing HEAD", e))
            })
            .map_err(|e| {
                let mut p = poisoned.lock().unwrap_or_else(|p| p.into_inner());
                p.get_or_insert_with(|| e.to_string()).clone()
            }),
    };
    if result.is_ok() {
        notify.publish();
    }
    for job in jobs.drain(..) {
        let mut waiters = job.waiters;
        waiters.failure = result.clone().err();
        deliver(waiters);
    }
    durable_len
}

impl SyncerHandle {
    /// Starts the syncer thread; `None` if the thread cannot be spawned (syncs then stay
    /// inline on the sequencer).
    pub fn start(
        head_file: Arc<dyn StorageFile>,
        notify: Arc<Notify>,
        poisoned: Arc<Mutex<Option<String>>>,
    ) -> Option<SyncerHandle> {
        let (jobs, rx) = crossbeam_channel::unbounded::<SyncJob>();
        let (done_tx, done) = crossbeam_channel::unbounded::<u64>();
        let thread = std::thread::Builder::new()
            .name("meshflow-syncer".to_string())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    batch.extend(rx.try_iter());
                    let count = batch.len();
                    let durable_len = complete(batch, &head_file, &notify, &poisoned);
                    for _ in 0..count {
                        let _ = done_tx.send(durable_len);
                    }
                }
            })
            .ok()?;
        Some(SyncerHandle { jobs: Some(jobs), done, thread: Some(thread), in_flight: 0 })
    }

    /// Hands a job over.
    pub fn submit(&mut self, job: SyncJob) {
        let Some(jobs) = self.jobs.as_ref() else {
            deliver(failed(job.waiters));
            return;
        };
        match jobs.send(job) {
            Ok(()) => self.in_flight += 1,
            Err(returned) => deliver(failed(returned.into_inner().waiters)),
        }
    }

    /// Whether a job is still running or queued.
    pub fn busy(&self) -> bool {
        self.in_flight > 0
    }

    /// Collects finished jobs without waiting; returns the newest durable length seen.
    pub fn poll(&mut self) -> Option<u64> {
        let mut newest = None;
        while let Ok(len) = self.done.try_recv() {
            self.in_flight = self.in_flight.saturating_sub(1);
            newest = Some(len);
        }
        newest
    }

    /// Waits for every job; returns the newest durable length seen.
    pub fn wait_idle(&mut self) -> Option<u64> {
        let mut newest = self.poll();
        while self.in_flight > 0 {
            match self.done.recv() {
                Ok(len) => {
                    self.in_flight -= 1;
                    newest = Some(len);
                }
                Err(_) => {
                    self.in_flight = 0;
                }
            }
        }
        newest
    }
}

fn failed(mut waiters: Delivery) -> Delivery {
    waiters.failure = Some("the syncer thread stopped".to_string());
    waiters
}

impl Drop for SyncerHandle {
    fn drop(&mut self) {
        self.wait_idle();
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
