//! Records handed out by scans: a frame borrowed zero-copy from a mapped window, and slot
//! reads that tolerate a concurrent erasure.

use std::sync::Arc;

use crate::error::Error;
use crate::format::frame::{self, FrameView};
use crate::format::segment_header::segment_file_name;
use crate::format::slot::{SlotError, SlotView};
use crate::storage::{Mapped, OpenMode, Storage};

use super::segments;

/// One durable record, borrowed zero-copy from a mapped window.
#[derive(Debug, Clone)]
pub struct Record {
    pub(super) window: Mapped,
    pub(super) start: usize,
    pub(super) len: usize,
    pub(super) segment_base: u64,
    pub(super) position: u64,
    pub(super) storage: Arc<dyn Storage>,
}

impl Record {
    /// The record's frame (already CRC-checked by the scan that produced it).
    #[expect(
        clippy::redundant_closure,
        reason = "the closure shortens the 'static view to the borrow"
    )]
    pub fn view(&self) -> FrameView<'_> {
        let bytes = self
            .window
            .get(self.start..self.start + self.len)
            .unwrap_or(&[]);
        // The scan decoded and checked these bytes before handing them out.
        frame::decode_unchecked(bytes).unwrap_or_else(|| frame::empty_view()) // a fn item would fix the lifetime to 'static
    }
    /// Log offset.
    pub fn offset(&self) -> u64 {
        self.view().offset()
    }
    /// Base offset of the segment holding the record.
    pub fn segment_base(&self) -> u64 {
        self.segment_base
    }
    /// Byte position of the frame in its segment.
    pub fn position(&self) -> u64 {
        self.position
    }
    /// The tenant id (tenant ids are validated UTF-8 when written).
    pub fn tenant(&self) -> String {
        String::from_utf8_lossy(self.view().tenant()).into_owned()
    }
    /// Reads slot `index`, tolerating a concurrent erasure: a slot that fails its CRC is
    /// re-read from the file before it is reported as corrupt.
    pub fn slot(&self, index: usize) -> Result<OwnedSlot, Error> {
        self.slot_with_salt(index).map(|(slot, _)| slot)
    }

    /// [`Record::slot`], with the slot's salt when it is live.
    pub fn slot_with_salt(&self, index: usize) -> Result<(OwnedSlot, Option<[u8; 32]>), Error> {
        let view = self.view();
        let first = view.slot(index).map(with_salt);
        let err = match first {
            Ok(slot) => return Ok(slot),
            Err(e) => e,
        };
        if index >= view.slot_count() {
            return Err(Error::InvalidInput {
                reason: format!("record has no slot {index}"),
            });
        }
        let range = view.slot_range(index).ok_or(SlotError::Truncated);
        for _attempt in 0..3 {
            std::thread::sleep(std::time::Duration::from_millis(1));
            if let Ok(Ok(slot)) = range
                .clone()
                .map(|r| self.reread_slot(r, view.slot_len(index)))
            {
                return Ok(slot);
            }
        }
        Err(Error::corrupt(
            segment_file_name(self.segment_base),
            self.position,
            Some(view.offset()),
            format!("slot {index}: {err}"),
        ))
    }

    fn reread_slot(
        &self,
        range: std::ops::Range<usize>,
        content_len: u64,
    ) -> Result<(OwnedSlot, Option<[u8; 32]>), Error> {
        let file =
            segments::open_segment(self.storage.as_ref(), self.segment_base, OpenMode::Read)?;
        let mut buf = vec![0u8; range.len()];
        file.read_exact_at(&mut buf, self.position + range.start as u64)
            .map_err(|e| Error::io("re-reading a slot", e))?;
        let slot = crate::format::slot::decode(&buf, content_len).map_err(|e| {
            Error::corrupt(
                segment_file_name(self.segment_base),
                self.position,
                None,
                e.to_string(),
            )
        })?;
        Ok(with_salt(slot))
    }
}

fn with_salt(slot: SlotView<'_>) -> (OwnedSlot, Option<[u8; 32]>) {
    let salt = match &slot {
        SlotView::Live { salt, .. } => Some(**salt),
        SlotView::Erased { .. } => None,
    };
    (OwnedSlot::from(slot), salt)
}

/// A slot's content, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedSlot {
    /// Content present.
    Live(Vec<u8>),
    /// Content erased; its length survives.
    Erased(u64),
}

impl From<SlotView<'_>> for OwnedSlot {
    fn from(v: SlotView<'_>) -> Self {
        match v {
            SlotView::Live { content, .. } => OwnedSlot::Live(content.to_vec()),
            SlotView::Erased { content_len } => OwnedSlot::Erased(content_len),
        }
    }
}
