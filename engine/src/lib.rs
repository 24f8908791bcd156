//! meshflow-engine: a tamper-evident, append-only log of hash-chained records.
//!
//! The log is a directory of segment files. Every record carries a fixed header, a committed
//! body and zero or more erasable slots; one sequencer thread assigns offsets, extends the
//! global SHA-256 chain and group-commits many appenders' records under one fsync. Readers in
//! this and other processes map segments read-only and never read past the durable end that the
//! writer publishes in the `HEAD` file.
//!
//! ```
//! use meshflow_engine::log::{Durability, Log, LogOptions, RecordInput};
//!
//! # fn main() -> Result<(), meshflow_engine::Error> {
//! let dir = tempfile::tempdir().map_err(|e| meshflow_engine::Error::io("tempdir", e))?;
//! let (log, _report) = Log::open(dir.path(), LogOptions::default())?;
//! let record = RecordInput::new(0x0100, "acme", b"event".to_vec())
//!     .with_slot(b"personal data".to_vec());
//! let receipt = log.append(record, Durability::Sync)?;
//! assert_eq!(receipt.offset, 0);
//! let report = log.reader().verify()?;
//! assert_eq!(report.record_count, 1);
//! log.close()?;
//! # Ok(()) }
//! ```
//!
//! Layers: [`format`](mod@format) encodes and decodes bytes and never does I/O; [`storage`] is the file
//! system behind a trait (with a fault-injecting implementation for crash tests); [`log`] is the
//! writer, the readers, recovery, verification and erasure; [`ledger`] is agents' steps on the
//! log (per-run chains, the runs view and its checkpoints, exports, anchors); [`service`] is the
//! writer service (Unix socket and HTTP API) that lets many processes append; [`snapshot`] is the
//! compliance snapshots (deterministic ZIPs of the governance views at one offset).
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
#![warn(clippy::expect_used)]
#![deny(unsafe_code)]
// Tests may unwrap and index: a panic there is a test failure. The non-test build keeps the lints.
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)
)]

pub mod bench;
pub mod error;
pub mod format;
pub mod governance;
pub mod ledger;
pub mod log;
pub mod service;
pub mod snapshot;
pub mod storage;
pub mod workload;

pub use error::{Corruption, Error, VerifyFailure};
