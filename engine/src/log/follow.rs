//! Followers: iterate durable records and wait for new ones. In the writer's process a
//! follower sleeps on the writer's publication counter; elsewhere it polls HEAD.

use std::time::{Duration, Instant};

use crate::error::Error;

use super::reader::{LogReader, Record, Scan};

/// How long a cross-process follower sleeps between looks at HEAD.
const POLL_INTERVAL: Duration = Duration::from_millis(2);

/// A reader that waits for records that are not durable yet.
#[derive(Debug)]
pub struct Follower {
    reader: LogReader,
    next_offset: u64,
    scan: Option<Scan>,
}

impl LogReader {
    /// A follower starting at `from`.
    pub fn follow(&self, from: u64) -> Follower {
        Follower {
            reader: self.clone(),
            next_offset: from,
            scan: None,
        }
    }
}

impl Follower {
    /// The offset of the next record this follower returns.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// The next durable record, waiting up to `timeout` for one; `Ok(None)` on timeout.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Record>, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.reader.notify.as_ref().map(|n| n.current());
            if let Some(record) = self.poll()? {
                return Ok(Some(record));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let wait = (deadline - now).min(Duration::from_millis(100));
            match (&self.reader.notify, seen) {
                (Some(n), Some(seen)) => n.wait_past(seen, wait),
                _ => std::thread::sleep(wait.min(POLL_INTERVAL)),
            }
        }
    }

    /// The next durable record if one is there now.
    pub fn poll(&mut self) -> Result<Option<Record>, Error> {
        if let Some(scan) = self.scan.as_mut() {
            if let Some(record) = scan.next().transpose()? {
                self.next_offset = record.offset() + 1;
                return Ok(Some(record));
            }
        }
        // The snapshot is exhausted: take a new one if HEAD moved.
        let snapshot = self.reader.snapshot()?;
        if snapshot.head.next_offset <= self.next_offset {
            self.scan = None;
            return Ok(None);
        }
        let mut scan = self.reader.scan_snapshot(snapshot, self.next_offset)?;
        let record = scan.next().transpose()?;
        self.scan = Some(scan);
        if let Some(r) = &record {
            self.next_offset = r.offset() + 1;
        }
        Ok(record)
    }
}
