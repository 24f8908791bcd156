//! A pipelined step appender over the log's [`Appender`]: `submit` builds the step's record on
//! the calling thread and returns at once; receipts come back in submission order. For agents
//! and importers that append steadily from one thread; a refused step (duplicate step id, stale
//! expectation) comes back as [`LedgerError::Conflict`] without the identical-retry check of
//! [`Ledger::append_batch`].

use std::collections::VecDeque;

use crate::error::Error;
use crate::log::{Appender, Durability};

use super::{Built, Ledger, LedgerError, StepReceipt, StepRequest};

/// See the module documentation.
pub struct LedgerAppender<'a> {
    ledger: &'a Ledger,
    inner: Appender<'a>,
    queued: VecDeque<Built>,
    now: (std::time::Instant, String),
}

impl std::fmt::Debug for LedgerAppender<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerAppender")
            .field("queued", &self.queued.len())
            .finish()
    }
}

impl Ledger {
    /// A pipelined appender (writable handles only).
    pub fn appender(&self) -> Result<LedgerAppender<'_>, LedgerError> {
        let (log, _) = self.writable()?;
        Ok(LedgerAppender {
            ledger: self,
            inner: log.appender(),
            queued: VecDeque::new(),
            now: (std::time::Instant::now(), super::time::now_iso8601()),
        })
    }
}

impl LedgerAppender<'_> {
    /// Queues one step.
    pub fn submit(
        &mut self,
        request: StepRequest,
        durability: Durability,
    ) -> Result<(), LedgerError> {
        if request.timestamp.is_none() && self.now.0.elapsed().as_micros() > 0 {
            self.now = (std::time::Instant::now(), super::time::now_iso8601());
        }
        let (built, record) = self.ledger.build_one(request, &self.now.1, None)?;
        self.inner.submit(record, durability)?;
        self.queued.push_back(built);
        Ok(())
    }

    /// Steps submitted whose receipts have not been collected.
    pub fn outstanding(&self) -> usize {
        self.inner.outstanding()
    }

    /// Waits for the receipt of the oldest outstanding step.
    pub fn next_receipt(&mut self) -> Result<StepReceipt, LedgerError> {
        let receipts = self.inner.next_receipts();
        self.finish(receipts)
    }

    /// The receipt of the oldest outstanding step if it is already back.
    pub fn try_next_receipt(&mut self) -> Option<Result<StepReceipt, LedgerError>> {
        let receipts = self.inner.try_next_receipts()?;
        Some(self.finish(receipts))
    }

    fn finish(
        &mut self,
        receipts: Result<Vec<crate::log::Receipt>, Error>,
    ) -> Result<StepReceipt, LedgerError> {
        let built = self
            .queued
            .pop_front()
            .ok_or(LedgerError::Log(Error::Closed))?;
        match receipts {
            Ok(r) => {
                let first = r.first().ok_or(LedgerError::Log(Error::Closed))?;
                built.receipt(first)
            }
            Err(Error::Rejected { reason }) => Err(LedgerError::Conflict { reason }),
            Err(e) => Err(e.into()),
        }
    }

    /// Makes everything submitted so far durable.
    pub fn sync(&mut self) -> Result<(), LedgerError> {
        self.inner.sync().map_err(LedgerError::from)
    }
}
