//! Read-only views of file ranges. This module holds the engine's only `unsafe` code: creating
//! a memory map of a segment file.

use std::fs::File;
use std::ops::Deref;
use std::sync::Arc;

/// A read-only byte range of a file: a memory map for real files, a copy for in-memory ones.
#[derive(Debug, Clone)]
pub struct Mapped {
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    Map {
        map: Arc<memmap2::Mmap>,
        skip: usize,
        len: usize,
    },
    Owned(Arc<[u8]>),
    Empty,
}

const PAGE_BYTES: u64 = 4096;

impl Mapped {
    /// Maps `len` bytes of `file` from `pos` read-only.
    ///
    /// The caller guarantees that the range lies within the durable part of the file, which the
    /// writer never shrinks nor rewrites except for slot erasure (which readers tolerate: a slot
    /// changing under a reader fails its CRC and is re-read).
    pub fn map_file(file: &File, pos: u64, len: u64) -> std::io::Result<Mapped> {
        if len == 0 {
            return Ok(Mapped {
                inner: Inner::Empty,
            });
        }
        let aligned = pos - pos % PAGE_BYTES;
        let skip = usize::try_from(pos - aligned).map_err(std::io::Error::other)?;
        let len_usize = usize::try_from(len).map_err(std::io::Error::other)?;
        let map_len = skip + len_usize;
        // memmap2 requires that the mapped file is not truncated or modified in ways that break
        // Rust's aliasing rules while the map lives. The log never shrinks a file below a
        // published durable end (readers map only below it) and never writes through a map;
        // the one in-place rewrite, slot erasure, replaces bytes with zeros of the same length,
        // which readers observe as a CRC failure and re-read, never as UB in safe code since
        // `[u8]` has no invalid bit patterns.
        debug_assert!(
            file.metadata().is_ok_and(|m| m.len() >= pos + len),
            "range within the file"
        );
        #[expect(unsafe_code, reason = "see SAFETY")]
        // SAFETY: a read-only map of a range below the durable end (see the paragraph above).
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(aligned)
                .len(map_len)
                .map(file)?
        };
        debug_assert_eq!(map.len(), map_len, "map covers the requested range");
        Ok(Mapped {
            inner: Inner::Map {
                map: Arc::new(map),
                skip,
                len: len_usize,
            },
        })
    }

    /// Wraps bytes that are already in memory.
    pub fn owned(bytes: Vec<u8>) -> Mapped {
        Mapped {
            inner: Inner::Owned(bytes.into()),
        }
    }
}

impl Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.inner {
            Inner::Map { map, skip, len } => map.get(*skip..*skip + *len).unwrap_or(&[]),
            Inner::Owned(bytes) => bytes,
            Inner::Empty => &[],
        }
    }
}
