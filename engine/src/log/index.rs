//! The writer's side of the sparse index: one entry every `index_interval_bytes` of segment,
//! appended to `<base>.idx` with each flush and never fsynced (it is a rebuildable hint).

use std::sync::Arc;

use crate::error::Error;
use crate::format::index::{encode_header, IndexEntry};
use crate::storage::{OpenMode, Storage, StorageFile};

use super::segments::index_file_name;

/// Index state of the active segment.
#[derive(Debug)]
pub struct IndexWriter {
    file: Arc<dyn StorageFile>,
    name: String,
    file_len: u64,
    pending: Vec<u8>,
    last_position: Option<u64>,
    interval_bytes: u64,
}

impl IndexWriter {
    /// Creates (or replaces) the index of segment `base` holding `entries`.
    pub fn create(
        storage: &dyn Storage,
        base: u64,
        entries: &[IndexEntry],
        interval_bytes: u64,
    ) -> Result<IndexWriter, Error> {
        let name = index_file_name(base);
        let file = storage
            .open(&name, OpenMode::CreateOrOpen)
            .map_err(|e| Error::io(format!("opening {name}"), e))?;
        let mut bytes = encode_header().to_vec();
        for e in entries {
            bytes.extend_from_slice(&e.encode());
        }
        file.set_len(0)
            .map_err(|e| Error::io(format!("truncating {name}"), e))?;
        file.write_all_at(&bytes, 0)
            .map_err(|e| Error::io(format!("writing {name}"), e))?;
        Ok(IndexWriter {
            file,
            name,
            file_len: bytes.len() as u64,
            pending: Vec::new(),
            last_position: entries.last().map(|e| e.position),
            interval_bytes,
        })
    }

    /// Offers a record; it gets an entry when it starts a new interval.
    pub fn offer(&mut self, offset: u64, position: u64, timestamp_ns: u64) {
        let due = self
            .last_position
            .is_none_or(|last| position >= last + self.interval_bytes);
        if due {
            self.pending.extend_from_slice(
                &IndexEntry {
                    offset,
                    position,
                    timestamp_ns,
                }
                .encode(),
            );
            self.last_position = Some(position);
        }
    }

    /// Writes pending entries to the file (no fsync).
    pub fn flush(&mut self) -> Result<(), Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.file
            .write_all_at(&self.pending, self.file_len)
            .map_err(|e| Error::io(format!("writing {}", self.name), e))?;
        self.file_len += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }
}
