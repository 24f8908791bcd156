//! Segment files in the log directory: listing, naming, creating and reading headers.

use std::sync::Arc;

use crate::error::Error;
use crate::format::segment_header::{
    parse_segment_file_name, segment_file_name, SegmentHeader, SegmentHeaderError,
    SEGMENT_HEADER_BYTES,
};
use crate::storage::{OpenMode, Storage, StorageFile};

/// Name of the file that publishes the durable state.
pub const HEAD_FILE_NAME: &str = "HEAD";

/// The index file name of the segment with `base_offset`.
pub fn index_file_name(base_offset: u64) -> String {
    format!("{base_offset:020}.idx")
}

/// Base offsets of all segment files, ascending.
pub fn list_segments(storage: &dyn Storage) -> Result<Vec<u64>, Error> {
    let names = storage
        .list()
        .map_err(|e| Error::io("listing the log directory", e))?;
    let mut bases: Vec<u64> = names
        .iter()
        .filter_map(|n| parse_segment_file_name(n))
        .collect();
    bases.sort_unstable();
    Ok(bases)
}

/// Reads and checks the header of segment `base`.
pub fn read_header(
    storage: &dyn Storage,
    file: &dyn StorageFile,
    base: u64,
) -> Result<SegmentHeader, Error> {
    let name = segment_file_name(base);
    let mut buf = [0u8; SEGMENT_HEADER_BYTES];
    file.read_exact_at(&mut buf, 0).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::corrupt(&name, 0, None, "segment shorter than its header")
        } else {
            Error::io(format!("reading {name} in {}", storage.describe()), e)
        }
    })?;
    let header = SegmentHeader::decode(&buf).map_err(|e| match e {
        SegmentHeaderError::UnsupportedVersion(version) => Error::UnsupportedVersion {
            file: name.clone(),
            version,
        },
        other => Error::corrupt(&name, 0, None, format!("bad segment header: {other:?}")),
    })?;
    if header.base_offset != base {
        return Err(Error::corrupt(
            &name,
            16,
            None,
            format!(
                "header base offset {} disagrees with the file name",
                header.base_offset
            ),
        ));
    }
    Ok(header)
}

/// Creates segment `base` with its header, fsyncs it and the directory.
pub fn create_segment(
    storage: &dyn Storage,
    base: u64,
    base_prev_hash: [u8; 32],
) -> Result<Arc<dyn StorageFile>, Error> {
    let name = segment_file_name(base);
    let ctx = |what: &str| format!("{what} {name} in {}", storage.describe());
    let file = storage
        .open(&name, OpenMode::CreateNew)
        .map_err(|e| Error::io(ctx("creating"), e))?;
    let header = SegmentHeader {
        base_offset: base,
        base_prev_hash,
    }
    .encode();
    file.write_all_at(&header, 0)
        .map_err(|e| Error::io(ctx("writing the header of"), e))?;
    file.sync_data().map_err(|e| Error::io(ctx("syncing"), e))?;
    storage
        .sync_dir()
        .map_err(|e| Error::io(ctx("syncing the directory after creating"), e))?;
    Ok(file)
}

/// Opens segment `base`.
pub fn open_segment(
    storage: &dyn Storage,
    base: u64,
    mode: OpenMode,
) -> Result<Arc<dyn StorageFile>, Error> {
    let name = segment_file_name(base);
    storage
        .open(&name, mode)
        .map_err(|e| Error::io(format!("opening {name} in {}", storage.describe()), e))
}
